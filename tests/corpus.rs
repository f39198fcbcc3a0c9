//! The ICFP 2006 programs of the corpus (`UMDBT_CORPUS`, see `common::corpus`), run through
//! the `umdbt` binary under every engine configuration.
//!
//! Sandmark executes 5.56 G instructions and codex 2 G: run these tests with
//! `cargo test --release` (a debug build takes many minutes). Without a corpus every test here
//! returns early and says SKIPPED on stderr (with `UMDBT_REQUIRE_CORPUS=1` it fails instead).

mod common;

use common::{
    CliOutcome, ECHO_BANG, asm, corpus, engine_flags_for_long_runs, run_cli, run_cli_all, temp_path,
};
use std::path::Path;

/// SHA-256 of the 16,165,004-byte UM image that codex prints after `UM program follows
/// colon:` (recorded with `sha256sum`; an independent UM implementation written in C for
/// the purpose produced the same image).
const CODEX_IMAGE_SHA256: &str = "4cf39631e13b3415eba0b353d5328f4bb81cf6b8800fa7e4974f7702eb978332";
const CODEX_IMAGE_LEN: usize = 16_165_004;
const CODEX_MARKER: &[u8] = b"UM program follows colon:";

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Run `umdbt run FLAGS FILE` with `input` under every engine configuration (only the
/// default one under an emulator, see `engine_flags_for_long_runs`); return (engine name,
/// outcome) pairs.
fn run_file_everywhere(file: &Path, input: &[u8], extra: &[&str]) -> Vec<(String, CliOutcome)> {
    engine_flags_for_long_runs()
        .into_iter()
        .map(|(name, flags)| {
            let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
            let args = [&["run"], extra, &flags[..], &[path_str(file)]].concat();
            (name, run_cli(&args, input))
        })
        .collect()
}

/// Where two byte strings first differ (for readable failures on large outputs).
fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    a.iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .or_else(|| (a.len() != b.len()).then(|| a.len().min(b.len())))
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn sha256_helper_is_right() {
    // FIPS 180-2 test vector.
    assert_eq!(
        sha256_hex(b"abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[test]
fn sandmark_output_is_exact() {
    let Some(dir) = corpus() else { return };
    let expected = std::fs::read(dir.join("sandmark-output.txt")).unwrap();
    assert_eq!(expected.len(), 2946);
    for (name, out) in run_file_everywhere(&dir.join("sandmark.umz"), b"", &[]) {
        assert_eq!(out.status, Some(0), "{name}: stderr {}", out.stderr);
        assert_eq!(out.stderr, "", "{name}");
        if let Some(at) = first_difference(&out.stdout, &expected) {
            panic!(
                "{name}: sandmark output differs at byte {at}:\n{}",
                String::from_utf8_lossy(&out.stdout[at.saturating_sub(200)..])
            );
        }
    }
}

/// Profiling switches code memory to one mapping whose pages turn writable and back
/// (perf names code only in anonymous memory). Sandmark installs regions that take over links
/// from blocks pages away: every write must land (a crash here once).
#[test]
fn sandmark_under_the_profiler() {
    let Some(dir) = corpus() else { return };
    if common::emulated() {
        eprintln!("SKIPPED under an emulator: the native run covers it");
        return;
    }
    let expected = std::fs::read(dir.join("sandmark-output.txt")).unwrap();
    let child = common::umdbt()
        .args(["run", "--profile", "perfmap"])
        .arg(dir.join("sandmark.umz"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let map = format!("/tmp/perf-{}.map", child.id());
    let out = child.wait_with_output().unwrap();
    let _ = std::fs::remove_file(map);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stdout == expected,
        "sandmark output differs under the profiler"
    );
}

#[test]
fn codex_decrypts_the_umix_image() {
    let Some(dir) = corpus() else { return };
    let key = std::fs::read_to_string(dir.join("codex.key")).unwrap();
    let input = format!("{}\np\n", key.trim_end());
    for (name, out) in run_file_everywhere(&dir.join("codex.umz"), input.as_bytes(), &[]) {
        assert_eq!(out.status, Some(0), "{name}: stderr {}", out.stderr);
        assert_eq!(out.stderr, "", "{name}");
        let at = out
            .stdout
            .windows(CODEX_MARKER.len())
            .position(|w| w == CODEX_MARKER)
            .unwrap_or_else(|| {
                panic!(
                    "{name}: no '{}' in the output: {}",
                    String::from_utf8_lossy(CODEX_MARKER),
                    String::from_utf8_lossy(&out.stdout[..out.stdout.len().min(2000)])
                )
            });
        let text = String::from_utf8_lossy(&out.stdout[..at]);
        assert!(text.contains("self-check succeeded!"), "{name}: {text}");
        assert!(text.contains("decrypting..."), "{name}: {text}");
        let image = &out.stdout[at + CODEX_MARKER.len()..];
        assert_eq!(image.len(), CODEX_IMAGE_LEN, "{name}: image length");
        assert_eq!(image.len() % 4, 0);
        assert_eq!(
            sha256_hex(image),
            CODEX_IMAGE_SHA256,
            "{name}: image SHA-256"
        );
    }
}

#[test]
fn codex_with_a_wrong_key_says_so() {
    let Some(dir) = corpus() else { return };
    let out = run_cli_all(
        &umdbt::loader::load(&dir.join("codex.umz")).unwrap(),
        b"not the key\n",
    );
    assert_eq!(out.status, Some(0), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("self-check succeeded!"), "{text}");
    assert!(text.contains("wrong key"), "{text}");
    assert!(!text.contains("UM program follows colon:"), "{text}");
}

/// A program for um.um: a count-down loop, an array, multiplication and unsigned division.
/// Prints "54321ZFU\n".
const INNER_PROGRAM: &str = "
        literal r6, 5
        literal r5, '0'
        nand r4, r0, r0         ; -1
loop:   add r1, r6, r5
        output r1
        add r6, r6, r4
        literal r2, next
        literal r3, loop
        cmov r2, r3, r6
        loadprog r0, r2
next:   literal r1, 10
        alloc r2, r1
        literal r3, 9
        literal r1, 'Z'
        amend r2, r3, r1
        index r1, r2, r3
        output r1               ; Z
        abandon r2
        literal r1, 1000
        literal r3, 7
        mul r1, r1, r3
        literal r3, 100
        div r1, r1, r3          ; 7000 / 100 = 70 = 'F'
        output r1
        nand r1, r0, r0
        literal r3, 0x1000000
        div r1, r1, r3          ; 0xFFFFFFFF / 2^24 = 255
        literal r3, 3
        div r1, r1, r3          ; 85 = 'U'
        output r1
        literal r1, 10
        output r1
        halt
";

/// `um.um` followed by `program`.
fn with_um_um(dir: &Path, program: &[u32]) -> Vec<u32> {
    let mut words = umdbt::loader::load(&dir.join("um.um")).unwrap().to_vec();
    words.extend_from_slice(program);
    words
}

#[test]
fn um_um_runs_an_appended_program() {
    // The program by itself first.
    common::expect_output(INNER_PROGRAM, b"", b"54321ZFU\n");
    let Some(dir) = corpus() else { return };
    let out = run_cli_all(&with_um_um(&dir, &asm(INNER_PROGRAM)), b"");
    assert_eq!(out.status, Some(0), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "54321ZFU\n");
    assert_eq!(out.stderr, "");
}

#[test]
fn um_um_passes_input_through() {
    let Some(dir) = corpus() else { return };
    // Also as a file made with `cat um.um prog.um`, the way the corpus README says.
    let prog = temp_path("echo.um");
    std::fs::write(&prog, umdbt::assembler::to_bytes(&asm(ECHO_BANG))).unwrap();
    let both = temp_path("both.um");
    let mut bytes = std::fs::read(dir.join("um.um")).unwrap();
    bytes.extend(std::fs::read(&prog).unwrap());
    std::fs::write(&both, bytes).unwrap();
    for (name, out) in run_file_everywhere(&both, b"echo me\n", &[]) {
        assert_eq!(out.status, Some(0), "{name}: {out:?}");
        assert_eq!(out.stdout, b"echo me\n!", "{name}");
    }
}

#[test]
fn fact_halts_silently() {
    let Some(dir) = corpus() else { return };
    for (name, out) in run_file_everywhere(&dir.join("fact.161.um"), b"", &[]) {
        assert_eq!(out.status, Some(0), "{name}: {out:?}");
        assert_eq!(out.stdout, b"", "{name}");
        assert_eq!(out.stderr, "", "{name}");
    }
}

#[test]
fn quicksort_halts_and_reports_success() {
    // The corpus README says the .161 programs print nothing, but quicksort.161.um prints
    // ":)\n" when it halts (an independent C implementation of the UM prints the same).
    let Some(dir) = corpus() else { return };
    for (name, out) in run_file_everywhere(&dir.join("quicksort.161.um"), b"", &[]) {
        assert_eq!(out.status, Some(0), "{name}: {out:?}");
        assert_eq!(out.stdout, b":)\n", "{name}");
        assert_eq!(out.stderr, "", "{name}");
    }
}

#[test]
fn disassembly_of_the_corpus_reassembles_to_the_same_bytes() {
    let Some(dir) = corpus() else { return };
    for name in ["sandmark.umz", "codex.umz", "um.um", "quicksort.161.um"] {
        let file = dir.join(name);
        let out = run_cli(&["dis", path_str(&file)], b"");
        assert_eq!(out.status, Some(0), "dis {name}: {}", out.stderr);
        let source = temp_path("corpus.uma");
        std::fs::write(&source, &out.stdout).unwrap();
        let dest = temp_path("corpus.um");
        let asm = run_cli(&["asm", path_str(&source), "-o", path_str(&dest)], b"");
        assert_eq!(asm.status, Some(0), "asm of dis {name}: {}", asm.stderr);
        let original = std::fs::read(&file).unwrap();
        let again = std::fs::read(&dest).unwrap();
        if let Some(at) = first_difference(&again, &original) {
            panic!(
                "{name}: reassembled bytes differ at byte {at} (word {})",
                at / 4
            );
        }
    }
}

/// The "UM instructions" row of a `--stats` table.
fn total_instructions(stderr: &str) -> u64 {
    stderr
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("UM instructions ")
                .and_then(|n| n.trim().parse().ok())
        })
        .unwrap_or_else(|| panic!("no 'UM instructions' row in:\n{stderr}"))
}

#[test]
fn micro_benchmarks_halt() {
    let Some(dir) = corpus() else { return };
    let mut files: Vec<_> = std::fs::read_dir(dir.join("micro"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "um"))
        .collect();
    files.sort();
    assert!(files.len() >= 13, "micro benchmarks: {files:?}");
    for file in files {
        let stem = file.file_stem().unwrap().to_str().unwrap().to_string();
        // From micro/NOTES.txt: 100 M executions of the instruction under test (plus ~0.1%
        // loop overhead); loadprog0 runs 200 M; null and 10k execute a single instruction.
        let (low, high) = match stem.as_str() {
            "micro-null" | "micro-10k" => (1, 1),
            "micro-loadprog0" => (200_000_000, 200_000_000 * 1002 / 1000),
            _ => (100_000_000, 100_000_000 * 1002 / 1000),
        };
        for (name, out) in run_file_everywhere(&file, b"", &["--stats"]) {
            assert_eq!(out.status, Some(0), "{stem} on {name}: {out:?}");
            assert_eq!(out.stdout, b"", "{stem} on {name}");
            let n = total_instructions(&out.stderr);
            assert!(
                (low..=high).contains(&n),
                "{stem} on {name}: {n} instructions, expected {low}..={high}"
            );
        }
    }
}

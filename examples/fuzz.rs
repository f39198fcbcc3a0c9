//! The long-running differential fuzzer behind `tools/fuzz`: generates random programs
//! (src/generator.rs) for DURATION seconds, runs each under every engine configuration, and
//! when they disagree, minimises the program (deleting lines while the disagreement stays)
//! and saves it under tests/regressions/, where `cargo test` runs it from then on.
//!
//!     cargo run --release --example fuzz -- SECONDS [FIRST_SEED] [OUT_DIR]
//!     cargo run --release --example fuzz -- --check FILE.uma [INPUT_HEX]
//!
//! `--check` (used by the minimiser, in a child process so that a candidate that loops
//! forever can be killed) exits 1 when the engines disagree on the program, 0 when they
//! agree, 2 when it does not assemble.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use umdbt::assembler::assemble;
use umdbt::engine::{Engine, run_captured};
use umdbt::generator::{GenOptions, generate};

const LIMIT: u64 = 1 << 30;
/// A minimisation candidate that runs longer than this is rejected.
const CANDIDATE_TIMEOUT: Duration = Duration::from_secs(5);

/// The first engine configuration that disagrees with the interpreter, if any.
fn disagreement(program: &[u32], input: &[u8]) -> Option<String> {
    let configs = Engine::all_configurations();
    let reference = run_captured(program, input, &configs[0], LIMIT);
    configs[1..].iter().find_map(|engine| {
        let other = run_captured(program, input, engine, LIMIT);
        (other != reference).then(|| {
            format!(
                "{} disagrees with {}\n  reference: {:?}\n  other:     {:?}",
                engine.describe(),
                configs[0].describe(),
                (&reference.result, reference.regs, reference.pc),
                (&other.result, other.regs, other.pc),
            )
        })
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .filter_map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok())
        .collect()
}

/// `--check`: exit 1 if the engines disagree on FILE.
fn check(file: &str, input: &[u8]) -> ! {
    let source = std::fs::read_to_string(file).expect("read program");
    let Ok(program) = assemble(&source) else {
        std::process::exit(2)
    };
    std::process::exit(if disagreement(&program, input).is_some() {
        1
    } else {
        0
    })
}

/// Whether `source` still makes the engines disagree, checked in a child process that is
/// killed after `CANDIDATE_TIMEOUT`.
fn still_diverges(source: &str, input: &[u8], scratch: &Path) -> bool {
    if assemble(source).is_err() {
        return false;
    }
    std::fs::write(scratch, source).expect("write candidate");
    let me = std::env::current_exe().expect("own path");
    let Ok(mut child) = Command::new(me)
        .arg("--check")
        .arg(scratch)
        .arg(hex(input))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    else {
        return false;
    };
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status.code() == Some(1),
            Ok(None) if start.elapsed() > CANDIDATE_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(_) => return false,
        }
    }
}

/// Delete chunks of lines, then single lines, while the disagreement stays.
fn minimise(source: &str, input: &[u8], scratch: &Path) -> String {
    let mut lines: Vec<String> = source.lines().map(str::to_string).collect();
    let mut chunk = (lines.len() / 2).max(1);
    loop {
        let mut i = 0;
        let mut progress = false;
        while i < lines.len() {
            let mut candidate = lines.clone();
            candidate.drain(i..(i + chunk).min(lines.len()));
            if still_diverges(&candidate.join("\n"), input, scratch) {
                lines = candidate;
                progress = true;
            } else {
                i += chunk;
            }
        }
        if chunk == 1 && !progress {
            break;
        }
        chunk = (chunk / 2).max(1);
    }
    lines.join("\n") + "\n"
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--check") {
        let input = args.get(3).map_or_else(Vec::new, |h| unhex(h));
        check(args.get(2).expect("--check FILE"), &input);
    }
    let seconds: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(60);
    let first: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    let out_dir = PathBuf::from(args.get(3).map_or("tests/regressions", String::as_str));
    let start = Instant::now();
    let (mut n, mut faulted, mut diverged) = (0u64, 0u64, 0u64);
    let mut seed = first;
    while start.elapsed() < Duration::from_secs(seconds) {
        let g = generate(seed, GenOptions::default());
        faulted += run_captured(&g.program, &g.input, &Engine::Interpreter, LIMIT)
            .result
            .is_err() as u64;
        if let Some(why) = disagreement(&g.program, &g.input) {
            diverged += 1;
            eprintln!("seed {seed}: {why}\n  minimising...");
            std::fs::create_dir_all(&out_dir).expect("create output directory");
            let scratch = out_dir.join(format!(".candidate-{seed}.uma"));
            let small = minimise(&g.source, &g.input, &scratch);
            let _ = std::fs::remove_file(&scratch);
            let path = out_dir.join(format!("fuzz-seed-{seed}.uma"));
            // The interpreter is the reference: record what it does with the program.
            let small_program = assemble(&small).expect("a minimised program assembles");
            let want = run_captured(&small_program, &g.input, &Engine::Interpreter, LIMIT);
            let header = format!(
                "; Found by tools/fuzz (seed {seed}), minimised; input (hex): {}\n\
                 ; expect output (hex): {}\n; expect result: {}\n",
                hex(&g.input),
                hex(&want.stdout),
                want.result
                    .as_ref()
                    .map_or_else(|f| f.to_string(), |()| "halt".to_string())
            );
            std::fs::write(&path, header + &small).expect("write regression program");
            eprintln!(
                "  saved {} ({} lines, from {})",
                path.display(),
                small.lines().count(),
                g.source.lines().count()
            );
        }
        n += 1;
        seed = seed.wrapping_add(1);
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{n} programs ({} halted, {faulted} faulted) on {} engine configurations in {secs:.1} s: \
         {:.0} programs/s, {diverged} diverged (seeds {first}..{seed})",
        n - faulted,
        Engine::all_configurations().len(),
        n as f64 / secs
    );
    if diverged > 0 {
        std::process::exit(1);
    }
}

//! The shared test harness: every program runs under every engine configuration
//! (`Engine::all_configurations`), in-process and through the `umdbt` binary, and all of
//! them must agree before a test looks at the result.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use umdbt::assembler::{assemble, to_bytes};
use umdbt::engine::{Engine, Outcome, RunOptions, run_captured_with};
use umdbt::jit::JitOptions;
use umdbt::stats::{Counter, Stats};

/// A program that echoes its input to its output until end of input, then prints '!'.
pub const ECHO_BANG: &str = "
        literal r7, 1
loop:   input r1
        add r2, r1, r7          ; 0 exactly at end of input
        literal r3, done
        literal r4, body
        cmov r3, r4, r2
        loadprog r0, r3
body:   output r1
        literal r3, loop
        loadprog r0, r3
done:   literal r1, '!'
        output r1
        halt
";

/// Memory limit for in-process runs.
pub const TEST_MEMORY: u64 = 1 << 30;

/// Assemble `src`, panicking with the assembler's message on error.
pub fn asm(src: &str) -> Vec<u32> {
    assemble(src).unwrap_or_else(|e| panic!("test program does not assemble: {e}\n{src}"))
}

/// What every engine configuration did with one program: the outcome they agreed on, and
/// each configuration's statistics.
pub struct Runs {
    pub outcome: Outcome,
    pub stats: Vec<(Engine, Stats)>,
}

impl std::ops::Deref for Runs {
    type Target = Outcome;
    fn deref(&self) -> &Outcome {
        &self.outcome
    }
}

impl Runs {
    /// Assert `check` of every configuration that translates code at first sight: its
    /// options and statistics (`what` says what is being checked). Configurations that
    /// interpret code before translating it (the default) translate depending on how often
    /// code runs, so the counts these checks are about do not apply to them. Returns self,
    /// for chaining.
    pub fn translators(&self, what: &str, check: impl Fn(&JitOptions, &Stats) -> bool) -> &Self {
        for (engine, stats) in &self.stats {
            if let Engine::Translator(o) = engine
                && o.translate_after == 0
            {
                assert!(check(o, stats), "{}: {what}: {stats:?}", engine.describe());
            }
        }
        self
    }

    /// Assert that stores into translated code were seen by every translating
    /// configuration.
    pub fn hit_translated_code(&self) -> &Self {
        self.translators("stores hit translated code", |_, s| {
            s[Counter::SmcStores] > 0
        })
    }

    /// Assert that every translating configuration that chains made links (or, forming
    /// regions at first sight, compiled a region: its blocks are joined inside it, and it
    /// may have no exit left to link), and that no other did.
    pub fn chained(&self) -> &Self {
        self.translators("blocks chained", |o, s| {
            let joined = s[Counter::LinksMade] > 0
                || (o.opt_threshold == Some(0) && s[Counter::RegionsCompiled] > 0);
            joined == o.chain
        })
    }
}

/// Run `program` in-process under every engine configuration with `input`; assert that all
/// produce the same output, result, registers and final pc, and that every configuration
/// that translates at first sight really translated (so a translator that silently fell
/// back to the interpreter cannot pass); return that outcome with the statistics of each.
pub fn run_all(program: &[u32], input: &[u8]) -> Runs {
    run_all_with(program, input, RunOptions::default())
}

/// Assert that `engine`, when it translates code at first sight, translated something, so
/// that a translator that silently fell back to the interpreter cannot pass (`case` names
/// the run). Code that runs once is only interpreted where translation waits, so other
/// configurations are not asked.
pub fn assert_translated(engine: &Engine, stats: &Stats, case: &str) {
    if let Engine::Translator(o) = engine
        && o.translate_after == 0
    {
        assert!(
            stats[Counter::BlocksTranslated] + stats[Counter::RegionsCompiled] > 0,
            "{case} translated nothing: {stats:?}"
        );
    }
}

/// As [`run_all`], with run options (a step limit, counting) for every configuration.
pub fn run_all_with(program: &[u32], input: &[u8], opts: RunOptions) -> Runs {
    let mut outcome: Option<Outcome> = None;
    let mut stats = Vec::new();
    for engine in Engine::all_configurations() {
        let (out, s) = run_captured_with(program, input, &engine, TEST_MEMORY, opts);
        assert_translated(&engine, &s, &engine.describe());
        match &outcome {
            None => outcome = Some(out),
            Some(first) => assert_eq!(
                &out,
                first,
                "{} disagrees with {}",
                engine.describe(),
                Engine::Interpreter.describe()
            ),
        }
        stats.push((engine, s));
    }
    Runs {
        outcome: outcome.expect("at least one engine"),
        stats,
    }
}

/// Assemble and run `src` on every engine (see `run_all`).
pub fn run_src(src: &str, input: &[u8]) -> Runs {
    run_all(&asm(src), input)
}

/// Run `src` and assert that it halts having printed exactly `stdout`.
pub fn expect_output(src: &str, input: &[u8], stdout: &[u8]) -> Runs {
    let out = run_src(src, input);
    assert_eq!(out.result, Ok(()), "program did not halt cleanly\n{src}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(stdout),
        "output differs\n{src}"
    );
    out
}

/// Run `src` and assert that it faults with `message` (without the `umdbt: ` prefix)
/// after printing exactly `stdout`.
pub fn expect_fault(src: &str, input: &[u8], stdout: &[u8], message: &str) -> Runs {
    let out = run_src(src, input);
    match &out.result {
        Err(f) => assert_eq!(f.to_string(), message, "fault message\n{src}"),
        Ok(()) => panic!("expected fault '{message}', program halted\n{src}"),
    }
    assert_eq!(out.stdout, stdout, "output before the fault\n{src}");
    out
}

/// Whether the binary runs under an emulator (`UMDBT_TEST_RUNNER`, see [`umdbt`]).
pub fn emulated() -> bool {
    std::env::var("UMDBT_TEST_RUNNER").is_ok_and(|r| !r.trim().is_empty())
}

/// The configurations to run a long program on: all of them natively; under an emulator
/// (some 20 times slower) only the default one. The native run checks the others on the
/// same programs, the default configuration runs the baseline and the optimizing tier
/// both, and the short differential tests run every configuration under the emulator too:
/// what the emulated run is for is the host's backend, within CI's 20 minutes.
pub fn engine_flags_for_long_runs() -> Vec<(String, Vec<String>)> {
    let mut flags = engine_flags();
    if emulated() {
        flags.retain(|(_, f)| f.is_empty());
        assert_eq!(flags.len(), 1, "the emulated configuration: {flags:?}");
    }
    flags
}

/// The `umdbt` binary under test. When `UMDBT_TEST_RUNNER` is set (for example
/// `qemu-aarch64 -L /usr/aarch64-linux-gnu`, by `tools/test-aarch64`), the binary runs under
/// that command, so cross-built tests work without binfmt_misc.
pub fn umdbt() -> Command {
    let bin = env!("CARGO_BIN_EXE_umdbt");
    match std::env::var("UMDBT_TEST_RUNNER") {
        Ok(runner) if !runner.trim().is_empty() => {
            let mut words = runner.split_whitespace();
            let mut cmd = Command::new(words.next().expect("runner command"));
            cmd.args(words).arg(bin);
            cmd
        }
        _ => Command::new(bin),
    }
}

/// A fresh file path under the target's temporary directory.
pub fn temp_path(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("umdbt-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir.join(format!("{}-{name}", N.fetch_add(1, Ordering::Relaxed)))
}

/// Write `program` to a temporary `.um` file and return its path.
pub fn write_program(program: &[u32]) -> PathBuf {
    let p = temp_path("prog.um");
    std::fs::write(&p, to_bytes(program)).expect("write program");
    p
}

/// What one run of the binary produced.
#[derive(Debug, PartialEq, Eq)]
pub struct CliOutcome {
    pub stdout: Vec<u8>,
    pub stderr: String,
    pub status: Option<i32>,
}

/// The flags that select each engine configuration on the command line.
pub fn engine_flags() -> Vec<(String, Vec<String>)> {
    Engine::all_configurations()
        .iter()
        .map(|e| (e.describe(), e.cli_flags()))
        .collect()
}

/// Run the binary with `args` and `input` on stdin.
pub fn run_cli(args: &[&str], input: &[u8]) -> CliOutcome {
    use std::io::Write;
    let mut child = umdbt()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn umdbt");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().expect("wait for umdbt");
    writer.join().expect("stdin writer");
    CliOutcome {
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        status: out.status.code(),
    }
}

/// Run `program` through the binary under every engine configuration (`umdbt run FLAGS
/// FILE`); assert they agree (stdout, stderr, status) and return that outcome.
pub fn run_cli_all(program: &[u32], input: &[u8]) -> CliOutcome {
    let path = write_program(program);
    let path = path.to_str().expect("utf-8 temp path");
    let mut first: Option<(String, CliOutcome)> = None;
    for (name, flags) in engine_flags() {
        let mut args = vec!["run"];
        args.extend(flags.iter().map(String::as_str));
        args.push(path);
        let out = run_cli(&args, input);
        match &first {
            None => first = Some((name, out)),
            Some((first_name, f)) => assert_eq!(&out, f, "{name} disagrees with {first_name}"),
        }
    }
    first.expect("at least one engine").1
}

/// The corpus directory (`UMDBT_CORPUS`, default `../shared/corpus`), or `None` with a
/// note on stderr when it is absent (corpus tests then report themselves skipped). With
/// `UMDBT_REQUIRE_CORPUS=1` (set by `.ci/run`) a missing corpus fails the test instead.
pub fn corpus() -> Option<PathBuf> {
    let dir = std::env::var_os("UMDBT_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus"));
    if dir.join("sandmark.umz").is_file() {
        Some(dir)
    } else if std::env::var_os("UMDBT_REQUIRE_CORPUS").is_some_and(|v| v == "1") {
        panic!(
            "UM corpus not found at {} (UMDBT_REQUIRE_CORPUS=1)",
            dir.display()
        );
    } else {
        eprintln!(
            "SKIPPED: UM corpus not found at {} (set UMDBT_CORPUS)",
            dir.display()
        );
        None
    }
}

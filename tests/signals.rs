//! Interruption: SIGINT, SIGTERM and SIGHUP stop a run cleanly on every engine: the output
//! produced so far is written, `--stats` is printed if asked, then
//! `umdbt: interrupted at pc N`, and the exit status is 128 + the signal's number. Loops of
//! constant jumps (chained), computed jumps (through the dispatch table) and a wait for
//! input are all interrupted.

mod common;

use common::{asm, engine_flags, umdbt, write_program};
use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Prints "go\n", then loops for ever through a backward constant jump.
const CONSTANT_LOOP: &str = "
        literal r1, 'g'
        output r1
        literal r1, 'o'
        output r1
        literal r1, 10
        output r1
        literal r7, 1
loop:   add r2, r2, r7
        literal r4, loop
        loadprog r0, r4
";

/// Prints "go\n", then loops for ever through computed jumps (targets read from array 0).
const COMPUTED_LOOP: &str = "
        literal r1, 'g'
        output r1
        literal r1, 'o'
        output r1
        literal r1, 10
        output r1
        literal r7, 1
        literal r5, table
loop:   add r2, r2, r7
        index r4, r0, r5
        loadprog r0, r4
table:  word loop
";

/// Prints "go\n", then waits for input that never comes (standard input stays open).
const WAITS_FOR_INPUT: &str = "
        literal r1, 'g'
        output r1
        literal r1, 'o'
        output r1
        literal r1, 10
        output r1
        input r2
        halt
";

/// Run `source` with `flags`, wait for "go\n" on stdout, send `signal`, and return
/// (stdout, stderr, exit status).
fn interrupt(source: &str, flags: &[&str], signal: i32) -> (String, String, Option<i32>) {
    let path = write_program(&asm(source));
    let mut child = umdbt()
        .arg("run")
        .args(flags)
        .arg(&path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _stdin = child.stdin.take();
    let mut stdout = child.stdout.take().unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !got.ends_with(b"go\n") {
        let mut b = [0u8; 1];
        assert_eq!(stdout.read(&mut b).unwrap(), 1, "output ended early");
        got.push(b[0]);
        assert!(Instant::now() < deadline, "no output");
    }
    // Let it settle in its loop (or its wait), then interrupt it.
    std::thread::sleep(Duration::from_millis(200));
    // SAFETY: kill() takes a process id and a signal number; the child is ours and alive.
    assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
    stdout.read_to_end(&mut got).unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    (String::from_utf8(got).unwrap(), stderr, status.code())
}

#[test]
fn loops_stop_with_their_output_and_statistics() {
    for (name, flags) in engine_flags() {
        // The pc of each loop's `loop:` label.
        for (what, source, loop_pc) in [
            ("constant", CONSTANT_LOOP, 7),
            ("computed", COMPUTED_LOOP, 8),
        ] {
            for (signal, status) in [(libc::SIGINT, 130), (libc::SIGTERM, 143)] {
                let mut args: Vec<&str> = flags.iter().map(String::as_str).collect();
                args.push("--stats");
                let (out, err, code) = interrupt(source, &args, signal);
                let case = format!("{name}, {what} loop, signal {signal}:\n{err}");
                assert_eq!(out, "go\n", "{case}");
                assert_eq!(code, Some(status), "{case}");
                let last = err.lines().last().unwrap_or("");
                let pc: u32 = last
                    .strip_prefix("umdbt: interrupted at pc ")
                    .unwrap_or_else(|| panic!("{case}"))
                    .parse()
                    .unwrap();
                // Stopped at the loop's jump back, the next instruction is the loop's first;
                // without chaining every jump between blocks may notice it.
                if flags.iter().any(|f| f == "--no-chain") {
                    assert!((loop_pc..loop_pc + 3).contains(&pc), "{case}");
                } else {
                    assert_eq!(pc, loop_pc, "{case}");
                }
                assert!(
                    err.contains("umdbt statistics ("),
                    "statistics printed: {case}"
                );
                assert!(err.contains("bytes output"), "{case}");
            }
        }
    }
}

#[test]
fn a_wait_for_input_is_interrupted() {
    for (name, flags) in engine_flags() {
        let args: Vec<&str> = flags.iter().map(String::as_str).collect();
        let (out, err, code) = interrupt(WAITS_FOR_INPUT, &args, libc::SIGHUP);
        assert_eq!(out, "go\n", "{name}");
        assert_eq!(code, Some(128 + libc::SIGHUP), "{name}: {err}");
        // Stopped before the input instruction ran.
        assert_eq!(err, "umdbt: interrupted at pc 6\n", "{name}");
    }
}

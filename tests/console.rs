//! When `umdbt run` writes a program's output out: at each completed line on a terminal,
//! and, into a pipe, at a newline once 100 ms have passed since the last write-out. Each
//! test runs a program that prints a line, computes for a while without output, prints a
//! second line, computes again, prints a third line and halts, and checks when each line
//! reaches the reader, compared with the moment the process exits.

mod common;

use common::{asm, umdbt, write_program};
use std::fs::File;
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The lines the test program prints, in order.
const LINES: [&str; 3] = ["first", "second", "third"];

/// A program that prints `first`, counts down `rounds` times (4 UM instructions a round),
/// prints `second`, counts down again, prints `third` and halts.
fn program(rounds: u32) -> Vec<u32> {
    let mut src =
        String::from("        nand r3, r0, r0         ; r3 = 0xFFFFFFFF: adding it counts down\n");
    for (i, line) in LINES.iter().enumerate() {
        for b in line.bytes().chain([b'\n']) {
            src += &format!("        literal r1, {b}\n        output r1\n");
        }
        if i + 1 == LINES.len() {
            break;
        }
        // rounds = thousands * 1000 + rest, each part below 2^25.
        src += &format!(
            "        literal r6, {thousands}
        literal r5, 1000
        mul r6, r6, r5
        literal r5, {rest}
        add r6, r6, r5
        literal r5, spin{i}
spin{i}: add r6, r6, r3
        literal r4, done{i}
        cmov r4, r5, r6         ; back to spin{i} while r6 is not 0
        loadprog r0, r4
done{i}:
",
            thousands = rounds / 1000,
            rest = rounds % 1000,
        );
    }
    src += "        halt\n";
    asm(&src)
}

/// Rounds of the count-down between two lines for the engine `flags` selects: about half
/// a second each in a release build (the translator runs this loop at about 4 G UM
/// instructions a second, the interpreter at about 0.6 G, slower on a busy machine), so a
/// run takes 1 to 3 s.
fn rounds(flags: &[&str]) -> u32 {
    let interp = flags.contains(&"--interp") || !umdbt::arch::TRANSLATOR_AVAILABLE;
    let rounds = if interp { 75_000_000 } else { 500_000_000 };
    // A debug build interprets about four times more slowly (the translator's code is the
    // same). Under an emulator (see `common::emulated`) the interpreter runs some 20 times
    // more slowly and translated code some 10 times (at a twentieth, a pause under
    // qemu-aarch64 was down to 90 ms, too close to the 100 ms the checks need).
    if common::emulated() {
        rounds / if interp { 20 } else { 10 }
    } else if interp && cfg!(debug_assertions) {
        rounds / 4
    } else {
        rounds
    }
}

/// The engines the tests run: the default (the translator where there is one) and the
/// interpreter.
const ENGINES: [&[&str]; 2] = [&[], &["--interp"]];

/// What the reader and the waiter threads report.
enum Event {
    Output(Instant, Vec<u8>),
    /// End of output (end of file, or EIO from a terminal whose other side is closed).
    OutputEnd,
    Exit(Instant, std::process::ExitStatus),
}

/// When each line arrived and when the process exited.
struct Timeline {
    start: Instant,
    lines: Vec<(String, Instant)>,
    exit: Instant,
    /// How many reads returned output.
    reads: usize,
}

impl Timeline {
    fn ms(&self, t: Instant) -> u128 {
        (t - self.start).as_millis()
    }

    fn describe(&self) -> String {
        let mut s: Vec<String> = self
            .lines
            .iter()
            .map(|(l, t)| format!("'{l}' at {} ms", self.ms(*t)))
            .collect();
        s.push(format!("exit at {} ms", self.ms(self.exit)));
        s.join(", ")
    }
}

/// Run `umdbt run FLAGS PROGRAM` with standard output on `stdout_for_child`, read the
/// output from `output`, and return when each line arrived and when the process exited.
/// The program must halt and end its output with a newline.
fn observe(flags: &[&str], program: &[u32], stdout_for_child: Stdio, output: File) -> Timeline {
    let prog = write_program(program);
    let mut cmd = umdbt();
    cmd.arg("run")
        .args(flags)
        .arg(&prog)
        .stdin(Stdio::null())
        .stdout(stdout_for_child)
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd.spawn().expect("spawn umdbt");
    // The command holds the parent's copy of the child's stdout (the pty slave, or the
    // pipe's write end); close it, so the reader sees the end when the child exits.
    drop(cmd);
    let mut stderr = child.stderr.take().expect("stderr");
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    let reader = {
        let tx = tx.clone();
        let mut output = output;
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 1 << 20];
            loop {
                match output.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        if tx
                            .send(Event::Output(Instant::now(), buf[..n].to_vec()))
                            .is_err()
                        {
                            return;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    // Linux: reading a pty master whose slave is closed fails with EIO.
                    Err(_) => break,
                }
            }
            let _ = tx.send(Event::OutputEnd);
        })
    };
    let waiter = std::thread::spawn(move || {
        let status = child.wait().expect("wait for umdbt");
        let _ = tx.send(Event::Exit(Instant::now(), status));
    });

    let deadline = start + Duration::from_secs(120);
    let mut text = Vec::new();
    let mut lines = Vec::new();
    let mut reads = 0;
    let mut exit = None;
    let mut ended = false;
    while exit.is_none() || !ended {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = match rx.recv_timeout(left) {
            Ok(e) => e,
            Err(_) => {
                // SAFETY: kill takes no pointers; `pid` is our child, not yet waited for
                // (the waiter thread has not reported its exit), so it names no other
                // process.
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
                panic!(
                    "umdbt {flags:?} did not finish within 120 s; output so far: {:?}",
                    String::from_utf8_lossy(&text)
                );
            }
        };
        match event {
            Event::Output(t, bytes) => {
                reads += 1;
                // A terminal turns "\n" into "\r\n".
                text.extend(bytes.into_iter().filter(|&b| b != b'\r'));
                while let Some(nl) = text.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = text.drain(..=nl).collect();
                    let line = String::from_utf8_lossy(&line[..nl]).into_owned();
                    lines.push((line, t));
                }
            }
            Event::OutputEnd => ended = true,
            Event::Exit(t, status) => exit = Some((t, status)),
        }
    }
    reader.join().expect("reader thread");
    waiter.join().expect("waiter thread");
    let mut err = String::new();
    let _ = stderr.read_to_string(&mut err);
    let (exit, status) = exit.expect("exit seen");
    assert_eq!(
        status.code(),
        Some(0),
        "umdbt {flags:?}: {status:?}, stderr: {err}"
    );
    assert!(
        text.is_empty(),
        "umdbt {flags:?}: output after the last newline: {text:?}"
    );
    Timeline {
        start,
        lines,
        exit,
        reads,
    }
}

/// Check that the first and the second line each reached the reader while the program was
/// still computing, long before it exited, and that the pause between them was real.
fn assert_lines_arrive_as_printed(what: &str, t: &Timeline) {
    let got: Vec<&str> = t.lines.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(got, LINES, "{what}: {}", t.describe());
    let first = t.lines[0].1;
    let second = t.lines[1].1;
    let third = t.lines[2].1;
    let report = t.describe();
    // Each pause is about half a second; the lines printed before one must arrive before
    // it ends. Had the output waited for the halt, all three would arrive within a few
    // milliseconds of the exit.
    assert!(
        t.exit.saturating_duration_since(first) >= Duration::from_millis(200),
        "{what}: the first line arrived only as the program ended ({report})"
    );
    assert!(
        t.exit.saturating_duration_since(second) >= Duration::from_millis(100),
        "{what}: the second line arrived only as the program ended ({report})"
    );
    assert!(
        second - first >= Duration::from_millis(100),
        "{what}: the second line arrived with the first: either it was held back, or the \
         pause is too short to tell anything (then raise the rounds in `rounds`) ({report})"
    );
    assert!(third <= t.exit + Duration::from_secs(5), "{what}: {report}");
}

/// A pseudo-terminal: (master, slave).
fn openpty() -> (File, OwnedFd) {
    let mut master: libc::c_int = -1;
    let mut slave: libc::c_int = -1;
    // SAFETY: the two pointers are to live, writable c_ints; a null name, termios and
    // window size are allowed (defaults, and no name is returned).
    let r = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(r, 0, "openpty: {}", std::io::Error::last_os_error());
    for fd in [master, slave] {
        // Keep other tests' children from inheriting these descriptors (which would keep
        // the terminal open after our child exits).
        // SAFETY: fcntl on a descriptor openpty just returned to us; no pointers.
        let r = unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        assert_eq!(r, 0, "fcntl: {}", std::io::Error::last_os_error());
    }
    // SAFETY: openpty returned two new descriptors that nothing else owns; each is wrapped
    // exactly once and closed by its owner.
    unsafe { (File::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) }
}

#[test]
fn on_a_terminal_each_line_arrives_when_it_is_printed() {
    for flags in ENGINES {
        let (master, slave) = openpty();
        let t = observe(flags, &program(rounds(flags)), Stdio::from(slave), master);
        eprintln!("terminal, umdbt run {flags:?}: {}", t.describe());
        assert_lines_arrive_as_printed(&format!("terminal, umdbt run {flags:?}"), &t);
    }
}

#[test]
fn into_a_pipe_lines_arrive_after_a_pause() {
    for flags in ENGINES {
        let (read_end, write_end) = std::io::pipe().expect("pipe");
        let output = File::from(OwnedFd::from(read_end));
        let t = observe(
            flags,
            &program(rounds(flags)),
            Stdio::from(write_end),
            output,
        );
        eprintln!("pipe, umdbt run {flags:?}: {}", t.describe());
        assert_lines_arrive_as_printed(&format!("pipe, umdbt run {flags:?}"), &t);
    }
}

/// A program that prints `count` lines `line`, counting down `rounds` times before each.
fn flood(count: u32, rounds: u32) -> Vec<u32> {
    let mut src = String::from(
        "
        nand r3, r0, r0         ; r3 = 0xFFFFFFFF: adding it counts down
        literal r7, COUNT       ; lines left
line:   literal r6, ROUNDS
        literal r5, spin
spin:   add r6, r6, r3
        literal r4, spun
        cmov r4, r5, r6
        loadprog r0, r4
spun:
",
    )
    .replace("COUNT", &count.to_string())
    .replace("ROUNDS", &rounds.to_string());
    for b in b"line\n" {
        src += &format!("        literal r1, {b}\n        output r1\n");
    }
    src += "
        add r7, r7, r3
        literal r4, end
        literal r5, line
        cmov r4, r5, r7
        loadprog r0, r4
end:    halt
";
    asm(&src)
}

#[test]
fn into_a_pipe_a_stream_of_lines_goes_out_in_few_writes() {
    // 2000 lines over about half a second (more on a busy machine): a write per line would
    // make hundreds of reads or more; a write-out per 100 ms makes about five, plus the
    // first line and the rest at the halt.
    for flags in ENGINES {
        let (read_end, write_end) = std::io::pipe().expect("pipe");
        let output = File::from(OwnedFd::from(read_end));
        let count = 2_000;
        let t = observe(
            flags,
            &flood(count, rounds(flags) / count),
            Stdio::from(write_end),
            output,
        );
        let what = format!("pipe, umdbt run {flags:?}");
        eprintln!(
            "{what}: {} lines in {} reads, exit at {} ms",
            t.lines.len(),
            t.reads,
            t.ms(t.exit)
        );
        assert_eq!(t.lines.len(), count as usize, "{what}");
        assert!(t.lines.iter().all(|(l, _)| l == "line"), "{what}");
        // At most one write-out per 100 ms, the first line's and the one at the halt (the
        // buffer never fills: 10 kB); a read may find less than a write-out, rarely.
        let most = (t.exit - t.start).as_millis() as usize / 100 + 5;
        assert!(
            t.reads <= most,
            "{what}: {} reads for {count} lines in {} ms: the output is not buffered",
            t.reads,
            t.ms(t.exit)
        );
    }
}

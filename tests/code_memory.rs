//! W^X: while generated code runs, no page of the process is both writable and executable.
//! The program below runs translated loops, then reads input; the input is read while the
//! translator's code is live (called from generated code), and the reader looks at the
//! process's mappings at that moment.

mod common;

use common::{TEST_MEMORY, asm, umdbt, write_program};
use std::cell::RefCell;
use std::io::Read;
use std::rc::Rc;
use umdbt::console::{Console, SharedOutput};
use umdbt::engine::{self, Engine};
use umdbt::machine::Machine;
use umdbt::stats::Counter;

/// Mappings that are both writable and executable, from a `/proc/PID/maps` text.
fn writable_and_executable(maps: &str) -> Vec<String> {
    maps.lines()
        .filter(|l| {
            let perms = l.split_whitespace().nth(1).unwrap_or("");
            perms.contains('w') && perms.contains('x')
        })
        .map(str::to_string)
        .collect()
}

/// A console input that records the W^X violations it sees each time it is read.
struct MapsReader {
    seen: Rc<RefCell<Vec<Vec<String>>>>,
}

impl Read for MapsReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let maps = std::fs::read_to_string("/proc/self/maps")?;
        self.seen.borrow_mut().push(writable_and_executable(&maps));
        buf[0] = b'x';
        Ok(1)
    }
}

/// A loop that runs translated code, then reads input and echoes it, three times.
const PROGRAM: &str = "
        literal r7, 3
        nand r6, r0, r0       ; -1
again:  literal r1, 1000
spin:   add r1, r1, r6
        literal r3, spin
        literal r4, read
        cmov r4, r3, r1
        loadprog r0, r4
read:   input r5
        output r5
        add r7, r7, r6
        literal r3, again
        literal r4, done
        cmov r4, r3, r7
        loadprog r0, r4
done:   halt
";

#[test]
fn no_mapping_is_writable_and_executable_while_generated_code_runs() {
    let program = asm(PROGRAM);
    let seen = Rc::new(RefCell::new(Vec::new()));
    let sink = SharedOutput::default();
    let console = Console::new(
        Box::new(MapsReader { seen: seen.clone() }),
        Box::new(sink.clone()),
    );
    let mut m = Machine::new(&program, console, TEST_MEMORY).unwrap();
    let engine = Engine::Translator(Default::default());
    let (result, stats) = engine::run_with_stats(&mut m, &engine, Default::default());
    assert_eq!(result, Ok(()));
    assert_eq!(&*sink.0.borrow(), b"xxx");
    assert!(stats[Counter::BlocksTranslated] > 0, "the translator ran");
    let seen = seen.borrow();
    assert_eq!(
        seen.len(),
        3,
        "input was read from generated code three times"
    );
    for violations in seen.iter() {
        assert!(violations.is_empty(), "W and X at once: {violations:?}");
    }
}

/// The same through the binary, with code memory in either kind (two views of a memory
/// file, or one mapping whose protection switches): the parent looks at the child's
/// mappings while it waits for input inside generated code.
#[test]
fn the_binary_keeps_w_xor_x_with_either_kind_of_code_memory() {
    if std::env::var_os("UMDBT_TEST_RUNNER").is_some() {
        eprintln!("SKIPPED: the child runs under an emulator, whose own mappings are seen");
        return;
    }
    let path = write_program(&asm(PROGRAM));
    for kind in ["dual", "switch"] {
        let mut child = umdbt()
            .args(["run", path.to_str().unwrap()])
            .env("UMDBT_CODE_MEMORY", kind)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Let it reach the first input: it sleeps there, called from generated code.
        let stat_path = format!("/proc/{}/stat", child.id());
        for _ in 0..300 {
            std::thread::sleep(std::time::Duration::from_millis(10));
            let stat = std::fs::read_to_string(&stat_path).unwrap();
            let state = stat.rsplit_once(") ").map(|(_, rest)| &rest[..1]);
            if state == Some("S") {
                break;
            }
        }
        let maps = std::fs::read_to_string(format!("/proc/{}/maps", child.id())).unwrap();
        let violations = writable_and_executable(&maps);
        use std::io::Write;
        child.stdin.take().unwrap().write_all(b"abc").unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.stdout, b"abc", "{kind}");
        assert!(out.status.success(), "{kind}");
        assert!(
            violations.is_empty(),
            "{kind}: W and X at once: {violations:?}"
        );
        // The memory file appears twice (read-execute and read-write), or not at all.
        let views = maps.lines().filter(|l| l.contains("umdbt-code")).count();
        assert_eq!(views, if kind == "dual" { 2 } else { 0 }, "{kind}:\n{maps}");
    }
}

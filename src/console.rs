//! The console: buffered output, byte-at-a-time input.
//!
//! Output collects in a buffer. When it is written out depends on the [`FlushPolicy`]: at
//! every newline when the output is a terminal ([`FlushPolicy::Line`]), otherwise at a
//! newline once [`FLUSH_INTERVAL_MS`] have passed since the last write-out
//! ([`FlushPolicy::Interval`]). Whatever the policy, the buffer is also written out when it
//! fills, before every input read (so an interactive program shows its prompt before it
//! waits), and by [`Console::flush`], which the engines call at halt and at a fault. End of
//! input reads as 0xFFFF_FFFF.

use crate::fault::Reason;
use crate::signals;
use memmap2::MmapMut;
use std::io::{self, IsTerminal, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};

const OUT_CAPACITY: usize = 1 << 16;

/// Where the output routine's fast path (generated code) finds what [`Console::output`]
/// changes for a byte that is not a newline and leaves the buffer short of full.
pub mod out_layout {
    use super::Console;
    use std::mem::offset_of;
    /// The buffer's address.
    pub const BUFFER: i32 = offset_of!(Console, out_ptr) as i32;
    /// `out_len`, a `usize`.
    pub const LEN: i32 = offset_of!(Console, out_len) as i32;
    /// `bytes_out`, a `u64`.
    pub const BYTES: i32 = offset_of!(Console, bytes_out) as i32;
    /// The buffer's capacity: a byte that would fill it goes through Rust, which writes out.
    pub const CAPACITY: u64 = super::OUT_CAPACITY as u64;
    const _: () = assert!(BUFFER < 4096 && LEN < 4096 && BYTES < 4096);
}

/// Under [`FlushPolicy::Interval`], the least time between two write-outs caused by
/// newlines, in milliseconds.
pub const FLUSH_INTERVAL_MS: u64 = 100;

/// When buffered output is written out, besides a full buffer, an input read, halt and a
/// fault (which always write it out).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlushPolicy {
    /// Write out at every newline, as C's line buffering does: each line reaches the
    /// reader as soon as it is complete. For a terminal, where a person watches.
    Line,
    /// Write out at a newline when at least [`FLUSH_INTERVAL_MS`] have passed since the
    /// last write-out (or nothing has been written out yet), so a pipe or file receives
    /// progress a few times a second while a flood of output still goes out in large
    /// writes. The clock is read only at newlines. For pipes and files.
    Interval,
}

/// A monotonic clock in milliseconds; only differences between its readings matter.
pub type Clock = fn() -> u64;

/// The default [`Clock`]: the coarse monotonic clock (on Linux `CLOCK_MONOTONIC_COARSE`,
/// read from the vDSO without a system call, with a resolution of a few milliseconds).
pub fn monotonic_ms() -> u64 {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let clock = libc::CLOCK_MONOTONIC_COARSE;
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let clock = libc::CLOCK_MONOTONIC;
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec that outlives the call, and `clock` is a
    // clock identifier the platform defines.
    let r = unsafe { libc::clock_gettime(clock, &mut ts) };
    debug_assert_eq!(r, 0, "clock_gettime failed");
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

/// Standard output was closed when `umdbt` started (`umdbt run prog >&-`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StdoutClosed;

impl std::fmt::Display for StdoutClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("standard output is closed")
    }
}

impl std::error::Error for StdoutClosed {}

/// Whether file descriptor 1 was closed when the process started. The binary opens
/// `/dev/null` on a closed standard descriptor first thing, after which descriptor 1
/// looks open and output written to it is silently lost:
/// [`open_closed_standard_descriptors`] records the state before that.
static STDOUT_CLOSED_AT_START: AtomicBool = AtomicBool::new(false);

/// Whether `fd` is not an open file descriptor.
fn fd_is_closed(fd: libc::c_int) -> bool {
    // SAFETY: F_GETFD only reads the descriptor's flags; it takes no pointer, and a number
    // that is not an open descriptor makes it fail with EBADF.
    let r = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    r == -1 && io::Error::last_os_error().raw_os_error() == Some(libc::EBADF)
}

/// Open `/dev/null` on each standard descriptor (0, 1, 2) that is closed, as Rust's
/// runtime does before a Rust `main` (the binary starts at C's `main` instead: see
/// `src/main.rs`). Otherwise the first file umdbt opened would take the number, and
/// writes meant for standard output or errors would go into it.
pub fn open_closed_standard_descriptors() {
    for fd in 0..=2 {
        if fd_is_closed(fd) {
            if fd == 1 {
                STDOUT_CLOSED_AT_START.store(true, Ordering::Relaxed);
            }
            // The lowest free number is `fd`, as those below it are open.
            // SAFETY: the path is a NUL-terminated string, open's only pointer argument.
            unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
        }
    }
}

pub struct Console {
    /// Output not yet written out: `out[..out_len]`. An anonymous mapping of
    /// `OUT_CAPACITY` bytes rather than a zeroed allocation, so that only the pages output
    /// reaches are ever backed: a program that prints little costs one page fault, not 16.
    out: MmapMut,
    /// `out`'s first byte, where generated code finds the buffer.
    out_ptr: *mut u8,
    /// Always below `OUT_CAPACITY` between calls.
    out_len: usize,
    writer: Box<dyn Write>,
    reader: Box<dyn Read>,
    in_buf: Box<[u8]>,
    in_pos: usize,
    in_len: usize,
    eof: bool,
    policy: FlushPolicy,
    clock: Clock,
    /// [`FlushPolicy::Interval`]: a newline output when `clock()` has reached this writes
    /// the buffer out. 0 until the first write-out, so the first line goes out at once.
    next_write_ms: u64,
    /// Whether the output written out so far is empty or ends with a newline.
    ended_line: bool,
    /// Bytes written by the program so far.
    pub bytes_out: u64,
    /// Bytes read by the program so far (end of input not counted).
    pub bytes_in: u64,
}

impl Console {
    /// A console on `reader` and `writer` with [`FlushPolicy::Interval`] and the real clock
    /// ([`monotonic_ms`]); see [`Console::with_policy`] and [`Console::with_clock`].
    pub fn new(reader: Box<dyn Read>, writer: Box<dyn Write>) -> Console {
        let mut out = MmapMut::map_anon(OUT_CAPACITY).expect("mapping 64 KiB for output");
        Console {
            out_ptr: out.as_mut_ptr(),
            out,
            out_len: 0,
            writer,
            reader,
            in_buf: vec![0; 4096].into_boxed_slice(),
            in_pos: 0,
            in_len: 0,
            eof: false,
            policy: FlushPolicy::Interval,
            clock: monotonic_ms,
            next_write_ms: 0,
            ended_line: true,
            bytes_out: 0,
            bytes_in: 0,
        }
    }

    /// The same console with `policy`.
    pub fn with_policy(mut self, policy: FlushPolicy) -> Console {
        self.policy = policy;
        self
    }

    /// The same console reading the time from `clock` (for tests).
    pub fn with_clock(mut self, clock: Clock) -> Console {
        self.clock = clock;
        self
    }

    /// The policy in force.
    pub fn policy(&self) -> FlushPolicy {
        self.policy
    }

    /// The process's standard input and output: [`FlushPolicy::Line`] when standard output
    /// is a terminal, [`FlushPolicy::Interval`] otherwise.
    pub fn stdio() -> Console {
        let policy = if io::stdout().is_terminal() {
            FlushPolicy::Line
        } else {
            FlushPolicy::Interval
        };
        Console::new(Box::new(io::stdin()), Box::new(io::stdout())).with_policy(policy)
    }

    /// An error when standard output (descriptor 1) was closed when the process started or
    /// is closed now: output would be lost without a word, so `umdbt run` refuses to start.
    pub fn check_stdout() -> Result<(), StdoutClosed> {
        if STDOUT_CLOSED_AT_START.load(Ordering::Relaxed) || fd_is_closed(1) {
            Err(StdoutClosed)
        } else {
            Ok(())
        }
    }

    /// Op 10. Values above 255 are a fault.
    #[inline]
    pub fn output(&mut self, value: u32) -> Result<(), Reason> {
        if value > 255 {
            return Err(Reason::OutputTooLarge(value));
        }
        let len = self.out_len;
        // `len` is below OUT_CAPACITY, a power of two: the mask changes nothing but spares
        // the bounds check.
        self.out[len & (OUT_CAPACITY - 1)] = value as u8;
        self.out_len = len + 1;
        self.bytes_out += 1;
        if (value == u32::from(b'\n')) | (len + 1 == OUT_CAPACITY) {
            return self.newline_or_full();
        }
        Ok(())
    }

    /// After a newline or when the buffer is full: write out if the buffer is full or the
    /// policy says so. Out of line, to keep [`Console::output`] small.
    #[inline(never)]
    fn newline_or_full(&mut self) -> Result<(), Reason> {
        let due = self.out_len == OUT_CAPACITY
            || match self.policy {
                FlushPolicy::Line => true,
                FlushPolicy::Interval => (self.clock)() >= self.next_write_ms,
            };
        if due { self.flush() } else { Ok(()) }
    }

    /// Op 11: the next input byte, or 0xFFFF_FFFF at end of input.
    pub fn input(&mut self) -> Result<u32, Reason> {
        if self.in_pos == self.in_len {
            self.flush()?;
            if self.eof {
                return Ok(u32::MAX);
            }
            if let Some(signal) = signals::received() {
                return Err(Reason::Interrupted(signal));
            }
            loop {
                match self.reader.read(&mut self.in_buf) {
                    Ok(0) => {
                        self.eof = true;
                        return Ok(u32::MAX);
                    }
                    Ok(n) => {
                        self.in_pos = 0;
                        self.in_len = n;
                        break;
                    }
                    // A signal that asks the run to stop ends the wait (see `signals`).
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                        if let Some(signal) = signals::received() {
                            return Err(Reason::Interrupted(signal));
                        }
                    }
                    Err(e) => return Err(Reason::Io(format!("cannot read input: {e}"))),
                }
            }
        }
        let b = self.in_buf[self.in_pos];
        self.in_pos += 1;
        self.bytes_in += 1;
        Ok(b as u32)
    }

    /// Whether the output so far is empty or ends with a newline.
    pub fn ends_line(&self) -> bool {
        match self.out_len {
            0 => self.ended_line,
            n => self.out[n - 1] == b'\n',
        }
    }

    /// Write out everything buffered so far.
    pub fn flush(&mut self) -> Result<(), Reason> {
        let wrote = self.out_len > 0;
        if wrote {
            self.ended_line = self.out[self.out_len - 1] == b'\n';
        }
        let result = self
            .writer
            .write_all(&self.out[..self.out_len])
            .and_then(|_| self.writer.flush());
        self.out_len = 0;
        if wrote && self.policy == FlushPolicy::Interval {
            self.next_write_ms = (self.clock)().saturating_add(FLUSH_INTERVAL_MS);
        }
        result.map_err(|e| match e.kind() {
            io::ErrorKind::BrokenPipe => Reason::OutputClosed,
            _ => Reason::Io(format!("cannot write output: {e}")),
        })
    }
}

/// A `Write` that appends to a shared buffer, for running programs in-process (tests, fuzzing).
#[derive(Clone, Default)]
pub struct SharedOutput(pub std::rc::Rc<std::cell::RefCell<Vec<u8>>>);

impl Write for SharedOutput {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    thread_local! {
        /// The fake clock's time, per test thread.
        static NOW: Cell<u64> = const { Cell::new(1_000) };
        /// How often the fake clock was read.
        static READS: Cell<u64> = const { Cell::new(0) };
    }

    fn fake_clock() -> u64 {
        READS.with(|r| r.set(r.get() + 1));
        NOW.with(Cell::get)
    }

    fn set_now(ms: u64) {
        NOW.with(|n| n.set(ms));
    }

    fn clock_reads() -> u64 {
        READS.with(Cell::get)
    }

    fn no_clock() -> u64 {
        panic!("the clock was read under the line policy");
    }

    /// A console with `policy` and the fake clock (or, under the line policy, a clock that
    /// must not be read), writing to the returned buffer.
    fn console(policy: FlushPolicy, input: &'static [u8]) -> (Console, SharedOutput) {
        let sink = SharedOutput::default();
        let clock: Clock = match policy {
            FlushPolicy::Line => no_clock,
            FlushPolicy::Interval => fake_clock,
        };
        let c = Console::new(Box::new(input), Box::new(sink.clone()))
            .with_policy(policy)
            .with_clock(clock);
        (c, sink)
    }

    fn put(c: &mut Console, bytes: &[u8]) {
        for &b in bytes {
            c.output(u32::from(b)).unwrap();
        }
    }

    fn written(sink: &SharedOutput) -> String {
        String::from_utf8(sink.0.borrow().clone()).unwrap()
    }

    #[test]
    fn output_is_buffered_until_flush_and_input_flushes() {
        let sink = SharedOutput::default();
        let mut c = Console::new(Box::new(&b"hi"[..]), Box::new(sink.clone()));
        assert_eq!(c.policy(), FlushPolicy::Interval, "the default policy");
        c.output(b'?' as u32).unwrap();
        assert!(sink.0.borrow().is_empty());
        assert_eq!(c.input(), Ok(b'h' as u32));
        assert_eq!(&*sink.0.borrow(), b"?");
        assert_eq!(c.input(), Ok(b'i' as u32));
        assert_eq!(c.input(), Ok(u32::MAX));
        assert_eq!(c.input(), Ok(u32::MAX));
        assert_eq!(c.output(256), Err(Reason::OutputTooLarge(256)));
    }

    #[test]
    fn line_policy_writes_out_each_completed_line() {
        let (mut c, sink) = console(FlushPolicy::Line, b"x");
        put(&mut c, b"abc");
        assert_eq!(written(&sink), "", "a partial line stays in the buffer");
        put(&mut c, b"\n");
        assert_eq!(written(&sink), "abc\n");
        put(&mut c, b"\n");
        assert_eq!(written(&sink), "abc\n\n", "an empty line too");
        put(&mut c, b"de\nf");
        assert_eq!(written(&sink), "abc\n\nde\n");
        // A read writes out the partial line (the prompt).
        assert_eq!(c.input(), Ok(u32::from(b'x')));
        assert_eq!(written(&sink), "abc\n\nde\nf");
        put(&mut c, b"gh");
        c.flush().unwrap();
        assert_eq!(written(&sink), "abc\n\nde\nfgh");
        assert_eq!(c.bytes_out, 11);
    }

    #[test]
    fn interval_policy_writes_out_at_a_newline_after_the_interval() {
        let (mut c, sink) = console(FlushPolicy::Interval, b"");
        set_now(1_000);
        put(&mut c, b"one");
        assert_eq!(written(&sink), "");
        // Nothing written out yet: the first line goes out at once.
        put(&mut c, b"\n");
        assert_eq!(written(&sink), "one\n");
        // Within the interval of that write-out, lines stay in the buffer...
        set_now(1_050);
        put(&mut c, b"two\n");
        set_now(1_000 + FLUSH_INTERVAL_MS - 1);
        put(&mut c, b"three\n");
        assert_eq!(written(&sink), "one\n");
        // ...and time passing alone writes nothing: only a newline looks at the clock.
        set_now(5_000);
        put(&mut c, b"four");
        assert_eq!(written(&sink), "one\n");
        put(&mut c, b"\n");
        assert_eq!(written(&sink), "one\ntwo\nthree\nfour\n");
        // The interval counts from that write-out (at 5000).
        set_now(5_000 + FLUSH_INTERVAL_MS - 1);
        put(&mut c, b"five\n");
        assert_eq!(written(&sink), "one\ntwo\nthree\nfour\n");
        set_now(5_000 + FLUSH_INTERVAL_MS);
        put(&mut c, b"six\n");
        assert_eq!(written(&sink), "one\ntwo\nthree\nfour\nfive\nsix\n");
    }

    #[test]
    fn interval_policy_counts_from_any_write_out() {
        let (mut c, sink) = console(FlushPolicy::Interval, b"ab");
        set_now(2_000);
        put(&mut c, b"prompt> ");
        // The read writes out the prompt at 2000...
        assert_eq!(c.input(), Ok(u32::from(b'a')));
        assert_eq!(written(&sink), "prompt> ");
        // ...so a line ending soon after waits.
        set_now(2_010);
        put(&mut c, b"answer\n");
        assert_eq!(written(&sink), "prompt> ");
        set_now(2_000 + FLUSH_INTERVAL_MS);
        put(&mut c, b"more\n");
        assert_eq!(written(&sink), "prompt> answer\nmore\n");
        // A flush with nothing buffered writes nothing out and does not restart the
        // interval.
        set_now(2_150);
        c.flush().unwrap();
        set_now(2_000 + 2 * FLUSH_INTERVAL_MS);
        put(&mut c, b"last\n");
        assert_eq!(written(&sink), "prompt> answer\nmore\nlast\n");
    }

    #[test]
    fn interval_policy_reads_the_clock_only_at_newlines() {
        let (mut c, sink) = console(FlushPolicy::Interval, b"");
        set_now(3_000);
        let before = clock_reads();
        put(&mut c, &[b'x'; 10_000]);
        assert_eq!(clock_reads(), before, "no clock read without a newline");
        put(&mut c, b"\n");
        // One read to decide, one to note the time of the write-out.
        assert_eq!(clock_reads(), before + 2);
        put(&mut c, b"y\n");
        assert_eq!(
            clock_reads(),
            before + 3,
            "one read at a newline that waits"
        );
        assert_eq!(written(&sink).len(), 10_001);
    }

    #[test]
    fn a_full_buffer_is_written_out_under_both_policies() {
        for policy in [FlushPolicy::Line, FlushPolicy::Interval] {
            let (mut c, sink) = console(policy, b"");
            set_now(4_000);
            put(&mut c, &vec![b'z'; OUT_CAPACITY - 1]);
            assert_eq!(sink.0.borrow().len(), 0, "{policy:?}");
            put(&mut c, b"z");
            assert_eq!(sink.0.borrow().len(), OUT_CAPACITY, "{policy:?}");
            put(&mut c, b"tail");
            assert_eq!(sink.0.borrow().len(), OUT_CAPACITY, "{policy:?}");
            c.flush().unwrap();
            assert_eq!(sink.0.borrow().len(), OUT_CAPACITY + 4, "{policy:?}");
        }
    }

    #[test]
    fn nothing_is_lost_or_reordered() {
        for policy in [FlushPolicy::Line, FlushPolicy::Interval] {
            let (mut c, sink) = console(policy, b"");
            let mut expected = Vec::new();
            let mut t = 10_000;
            // Lines of varied lengths (some longer than the buffer), the clock moving
            // irregularly; a simple generator keeps the test reproducible.
            let mut seed: u32 = 12345;
            for i in 0..3_000u32 {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                let len = match i % 500 {
                    0 => OUT_CAPACITY + 17,
                    _ => (seed >> 20) as usize % 200,
                };
                let line: Vec<u8> = (0..len).map(|k| b'a' + (k % 26) as u8).collect();
                put(&mut c, &line);
                put(&mut c, b"\n");
                expected.extend_from_slice(&line);
                expected.push(b'\n');
                t += u64::from(seed >> 28);
                set_now(t);
            }
            put(&mut c, b"no newline at the end");
            expected.extend_from_slice(b"no newline at the end");
            c.flush().unwrap();
            assert!(*sink.0.borrow() == expected, "{policy:?}");
            assert_eq!(c.bytes_out, expected.len() as u64, "{policy:?}");
        }
    }

    /// A writer that fails with this error, as a closed pipe or a full disk does.
    struct Broken(io::ErrorKind);

    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(self.0.into())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_failed_write_out_at_a_newline_is_an_error() {
        let broken = |kind| {
            let mut c = Console::new(Box::new(&b""[..]), Box::new(Broken(kind)))
                .with_policy(FlushPolicy::Line);
            c.output(u32::from(b'a')).unwrap();
            c.output(u32::from(b'\n'))
        };
        match broken(io::ErrorKind::StorageFull) {
            Err(Reason::Io(msg)) => assert!(msg.starts_with("cannot write output"), "{msg}"),
            other => panic!("expected a write error, got {other:?}"),
        }
        // A pipe whose reader left is not an error of the program: its own reason.
        assert_eq!(broken(io::ErrorKind::BrokenPipe), Err(Reason::OutputClosed));
    }

    #[test]
    fn the_real_clock_is_monotonic_and_in_milliseconds() {
        let a = monotonic_ms();
        std::thread::sleep(std::time::Duration::from_millis(30));
        let b = monotonic_ms();
        // The coarse clock ticks every few milliseconds.
        assert!((20..1_000).contains(&(b - a)), "{a} then {b}");
    }

    #[test]
    fn stdout_of_the_test_process_is_open() {
        assert_eq!(Console::check_stdout(), Ok(()));
        assert!(fd_is_closed(-1));
        assert!(!fd_is_closed(1));
    }
}

//! Interruption: SIGINT, SIGTERM and SIGHUP ask a run to stop cleanly (output written,
//! statistics printed, `umdbt: interrupted at pc N`, exit status 128 + the signal).
//!
//! The handler only records the signal, in two process-wide atomics: [`received`], which
//! the engines read when they are in Rust (the interpreter at every jump, the translator at
//! every return from generated code), and [`INTERRUPT`], which generated code tests (through
//! a pointer in its context) at every backward jump and every computed jump (any loop
//! contains one), so that it leaves within a bounded time. A second signal ends the process
//! at once, as if umdbt had no handler.
//!
//! The handlers are installed without `SA_RESTART`, so a read of the program's input that
//! waits when the signal arrives returns (`EINTR`) and the console stops too. (The
//! signal-hook crate installs its handlers with `SA_RESTART`, which would leave Ctrl-C
//! unanswered while the program waits for input: hence `sigaction` here.)

use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};

/// The signals that interrupt a run.
pub const SIGNALS: [i32; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// The first signal received, 0 for none.
static RECEIVED: AtomicI32 = AtomicI32::new(0);
/// Non-zero once a signal arrived: what generated code tests.
pub static INTERRUPT: AtomicU32 = AtomicU32::new(0);

extern "C" fn on_signal(signal: libc::c_int) {
    if RECEIVED.swap(signal, Ordering::SeqCst) != 0 {
        // A second signal: stop now, the way the signal would without a handler.
        // SAFETY: signal() and raise() are async-signal-safe.
        unsafe {
            libc::signal(signal, libc::SIG_DFL);
            libc::raise(signal);
        }
        return;
    }
    INTERRUPT.store(1, Ordering::SeqCst);
}

/// Install the handlers (for the `umdbt` command; a library user keeps its own).
pub fn install() -> std::io::Result<()> {
    for signal in SIGNALS {
        // SAFETY: a zeroed sigaction is a valid value to fill in; `on_signal` has the
        // signature of a plain handler (no SA_SIGINFO) and only touches atomics and
        // async-signal-safe calls.
        let r = unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
            action.sa_flags = 0;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut())
        };
        if r != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The signal that asked the run to stop, if one did.
#[inline]
pub fn received() -> Option<i32> {
    match RECEIVED.load(Ordering::Relaxed) {
        0 => None,
        s => Some(s),
    }
}

//! Interruption: SIGINT, SIGTERM and SIGHUP ask a run to stop cleanly (output written,
//! statistics printed, `umdbt: interrupted at pc N`, exit status 128 + the signal).
//!
//! The handler only records the signal: in a process-wide atomic, [`received`], which the
//! engines read when they are in Rust (the interpreter at every jump, the translator at
//! every return from generated code), and in the flag of every run of generated code in
//! progress ([`Watch`]). Generated code tests its flag, a field of its context one load
//! away, at every backward jump and every computed jump (any loop contains one), so that
//! it leaves within a bounded time. A second signal ends the process at once, as if umdbt
//! had no handler.
//!
//! The handlers are installed without `SA_RESTART`, so a read of the program's input that
//! waits when the signal arrives returns (`EINTR`) and the console stops too. (The
//! signal-hook crate installs its handlers with `SA_RESTART`, which would leave Ctrl-C
//! unanswered while the program waits for input: hence `sigaction` here.)

use std::ptr;
use std::sync::atomic::{AtomicI32, AtomicPtr, AtomicU32, Ordering};

/// The signals that interrupt a run.
pub const SIGNALS: [i32; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// The first signal received, 0 for none.
static RECEIVED: AtomicI32 = AtomicI32::new(0);
/// How many runs of generated code can be watched at once (one per engine running).
const WATCH_SLOTS: usize = 64;
/// The flags of the runs watched now, null where a slot is free.
static WATCHED: [AtomicPtr<AtomicU32>; WATCH_SLOTS] =
    [const { AtomicPtr::new(ptr::null_mut()) }; WATCH_SLOTS];
/// Handlers setting flags now: a [`Watch`] that ends waits until none is.
static IN_HANDLER: AtomicU32 = AtomicU32::new(0);

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
    IN_HANDLER.fetch_add(1, Ordering::SeqCst);
    for slot in &WATCHED {
        let flag = slot.load(Ordering::SeqCst);
        if !flag.is_null() {
            // SAFETY: a flag stays valid while its slot holds it, and the `Watch` that
            // clears the slot waits for this handler to finish (`IN_HANDLER`).
            unsafe { (*flag).store(1, Ordering::SeqCst) };
        }
    }
    IN_HANDLER.fetch_sub(1, Ordering::SeqCst);
}

/// While it lives, a signal that interrupts the run also sets its flag to 1 (also when the
/// signal came before the watch began). Without a free slot (more than [`WATCH_SLOTS`]
/// runs at once) the flag is never set and the run notices the signal only when it returns
/// to Rust.
pub struct Watch {
    slot: Option<usize>,
}

impl Watch {
    /// Watch for signals on behalf of the run whose flag is `flag`.
    ///
    /// # Safety
    /// `flag` stays valid (not moved, not freed) until the `Watch` is dropped.
    pub unsafe fn new(flag: *const AtomicU32) -> Watch {
        let free = ptr::null_mut();
        let slot = WATCHED.iter().position(|s| {
            s.compare_exchange(free, flag.cast_mut(), Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        });
        if slot.is_none() {
            log::warn!("more than {WATCH_SLOTS} runs at once: signals reach this one late");
        }
        // A signal whose handler scanned the slots before this one was taken.
        if received().is_some() {
            // SAFETY: the caller keeps `flag` valid.
            unsafe { (*flag).store(1, Ordering::SeqCst) };
        }
        Watch { slot }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Some(i) = self.slot {
            WATCHED[i].store(ptr::null_mut(), Ordering::SeqCst);
            // A handler on another thread may have read the flag's address before the
            // store above: it is done with it once no handler runs.
            while IN_HANDLER.load(Ordering::SeqCst) != 0 {
                std::hint::spin_loop();
            }
        }
    }
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

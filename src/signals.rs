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

/// The flags of the runs watched now.
static WATCHED: Flags = Flags::new();

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
    WATCHED.raise();
}

/// A registry of flags, each valid while its slot holds it.
struct Flags {
    /// The flags, null where a slot is free.
    slots: [AtomicPtr<AtomicU32>; WATCH_SLOTS],
    /// Calls of `raise` under way: a slot given back waits until there are none.
    raising: AtomicU32,
}

impl Flags {
    const fn new() -> Flags {
        Flags {
            slots: [const { AtomicPtr::new(ptr::null_mut()) }; WATCH_SLOTS],
            raising: AtomicU32::new(0),
        }
    }

    /// Set every flag held to 1 (async-signal-safe: atomics only).
    fn raise(&self) {
        self.raising.fetch_add(1, Ordering::SeqCst);
        for slot in &self.slots {
            let flag = slot.load(Ordering::SeqCst);
            if !flag.is_null() {
                // SAFETY: a flag stays valid while its slot holds it, and `give_back`
                // waits for this call to finish before its flag may go.
                unsafe { (*flag).store(1, Ordering::SeqCst) };
            }
        }
        self.raising.fetch_sub(1, Ordering::SeqCst);
    }

    /// Hold `flag` in a free slot, if there is one.
    fn take(&self, flag: *const AtomicU32) -> Option<usize> {
        let free = ptr::null_mut();
        self.slots.iter().position(|s| {
            s.compare_exchange(free, flag.cast_mut(), Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        })
    }

    /// Free slot `i`; once this returns, no `raise` touches its flag.
    fn give_back(&self, i: usize) {
        self.slots[i].store(ptr::null_mut(), Ordering::SeqCst);
        // A `raise` on another thread may have read the flag's address before the store
        // above: it is done with it once none runs.
        while self.raising.load(Ordering::SeqCst) != 0 {
            std::hint::spin_loop();
        }
    }
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
        let slot = WATCHED.take(flag);
        if slot.is_none() {
            log::warn!("more than {WATCH_SLOTS} runs at once: signals reach this one late");
        }
        // A signal whose handler looked at the slots before this one was taken.
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
            WATCHED.give_back(i);
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

#[cfg(test)]
mod tests {
    use super::*;

    // A registry of the tests' own: raising the process-wide one would reach the runs of
    // other tests.

    #[test]
    fn raise_sets_the_flags_held_and_no_other() {
        let flags = Flags::new();
        let (a, b, c) = (AtomicU32::new(0), AtomicU32::new(0), AtomicU32::new(0));
        let ia = flags.take(&a).expect("a free slot");
        let ib = flags.take(&b).expect("a free slot");
        assert_ne!(ia, ib);
        flags.give_back(ib);
        flags.raise();
        assert_eq!(a.load(Ordering::SeqCst), 1);
        assert_eq!(b.load(Ordering::SeqCst), 0, "given back before the raise");
        assert_eq!(c.load(Ordering::SeqCst), 0, "never held");
        assert_eq!(flags.raising.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn slots_run_out_and_come_back() {
        let flags = Flags::new();
        let held: Vec<AtomicU32> = (0..WATCH_SLOTS).map(|_| AtomicU32::new(0)).collect();
        let slots: Vec<usize> = held.iter().map(|f| flags.take(f).unwrap()).collect();
        let late = AtomicU32::new(0);
        assert_eq!(flags.take(&late), None, "all {WATCH_SLOTS} slots are taken");
        flags.give_back(slots[7]);
        assert_eq!(flags.take(&late), Some(slots[7]));
        flags.raise();
        for (i, f) in held.iter().enumerate() {
            assert_eq!(f.load(Ordering::SeqCst), u32::from(i != 7), "flag {i}");
        }
        assert_eq!(late.load(Ordering::SeqCst), 1);
    }
}

//! The `umdbt` binary.
//!
//! It starts at C's `main`, without the set-up Rust's runtime does before a Rust `main`.
//! On Linux that set-up reads `/proc/self/maps` and maps a signal stack, so that a stack
//! overflow is reported by name: 0.06 to 0.08 ms of every run, measured on runs of an
//! empty program taking about 1 ms (AMD EPYC under KVM). umdbt does not recurse deeply
//! (the deepest recursion, SSA construction in region building, is bounded by the size
//! of a region, at most 64 UM blocks), so it goes without that report. What of the rest
//! umdbt needs, it does here. (The test harness built from this file has a `main` of its
//! own.)
#![cfg_attr(not(test), no_main)]

/// The process's entry point, called by the C library.
#[cfg(not(test))]
#[unsafe(no_mangle)]
extern "C" fn main(_argc: libc::c_int, _argv: *const *const libc::c_char) -> libc::c_int {
    umdbt::console::open_closed_standard_descriptors();
    // A write to a closed pipe fails with an error instead of killing the process, so that
    // umdbt can report it, or (for what `run` and `dis` print) take it as the reader
    // leaving and still finish its own work: the `--stats` table, trace and profile files.
    // SAFETY: setting a signal's disposition to "ignore" installs no code of ours.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    let status = umdbt::cli::main();
    // Rust's runtime flushes standard output after a Rust `main`; here nothing else would.
    let _ = std::io::Write::flush(&mut std::io::stdout());
    libc::c_int::from(status)
}

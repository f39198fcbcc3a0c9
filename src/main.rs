//! The `umdbt` binary.
//!
//! It starts at C's `main`, without the set-up Rust's runtime does before a Rust `main`.
//! On Linux that set-up reads `/proc/self/maps` and maps a signal stack, so that a stack
//! overflow is reported by name; that was 0.08 ms of a 1.05 ms run of an empty program
//! (AMD EPYC under KVM), more than umdbt's own work. What of it umdbt needs, it does
//! here. (The test harness built from this file has a `main` of its own.)
#![cfg_attr(not(test), no_main)]

/// The process's entry point, called by the C library.
#[cfg(not(test))]
#[unsafe(no_mangle)]
extern "C" fn main(_argc: libc::c_int, _argv: *const *const libc::c_char) -> libc::c_int {
    umdbt::console::open_closed_standard_descriptors();
    // A write to a closed pipe fails with an error that umdbt reports (or, for output,
    // takes as the reader leaving) instead of killing the process.
    // SAFETY: setting a signal's disposition to "ignore" installs no code of ours.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    let status = umdbt::cli::main();
    // Rust's runtime flushes standard output after a Rust `main`; here nothing else would.
    let _ = std::io::Write::flush(&mut std::io::stdout());
    libc::c_int::from(status)
}

//! Host instruction sets. Each folder in `arch/` implements the
//! [`Backend`](crate::backend::Backend) interface (instruction emission only); `Host` is the
//! one this build runs.
//!
//! Both backends are compiled on every host (dynasm assembles for either ISA anywhere), so
//! the encodings of each can be unit-tested on any machine; only the native one runs.

#[path = "../arch/x86_64/mod.rs"]
pub mod x86_64;

#[path = "../arch/aarch64/mod.rs"]
pub mod aarch64;

/// The backend for this host.
#[cfg(target_arch = "x86_64")]
pub type Host = x86_64::X64;

/// The backend for this host.
#[cfg(target_arch = "aarch64")]
pub type Host = aarch64::A64;

/// True when this build can translate to native code. The AArch64 backend keeps the heap's
/// slot base in x18 (see `arch/aarch64/regs.rs`), which only Linux leaves to programs (Darwin
/// and Windows reserve it, Android's shadow call stack lives in it): elsewhere the
/// interpreter runs.
pub const TRANSLATOR_AVAILABLE: bool = cfg!(any(
    target_arch = "x86_64",
    all(target_arch = "aarch64", target_os = "linux")
));

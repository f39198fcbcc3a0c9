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

/// True when this build can translate to native code: on x86-64, and on AArch64 under
/// Linux (the build script decides, and says why).
pub const TRANSLATOR_AVAILABLE: bool = cfg!(umdbt_translator);

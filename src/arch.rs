//! Host instruction sets. Each file in `arch/` only emits instructions for the
//! [`Emitter`](crate::translator::Emitter) interface; `host` is the one this build runs.

//!
//! Both backends are compiled on every host (dynasm assembles for either ISA anywhere), so
//! the encodings of each can be unit-tested on any machine; only the native one runs.

#[path = "../arch/x86_64.rs"]
pub mod x86_64;

#[path = "../arch/aarch64.rs"]
pub mod aarch64;

#[cfg(target_arch = "x86_64")]
pub use x86_64 as host;

#[cfg(target_arch = "aarch64")]
pub use aarch64 as host;

/// True when this build can translate to native code.
pub const TRANSLATOR_AVAILABLE: bool = cfg!(any(target_arch = "x86_64", target_arch = "aarch64"));

//! Host instruction sets. Each file in `arch/` only emits instructions for the
//! [`Emitter`](crate::translator::Emitter) interface; `host` is the one this build runs.

#[path = "../arch/x86_64.rs"]
pub mod x86_64;

#[cfg(target_arch = "x86_64")]
pub use x86_64 as host;

/// True when this build can translate to native code.
pub const TRANSLATOR_AVAILABLE: bool = cfg!(target_arch = "x86_64");

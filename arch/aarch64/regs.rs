//! AArch64 register assignment (AAPCS64).
//!
//! - UM r0..r7 live in w19..w26 (callee-saved, so runtime calls need not save them).
//! - x27 holds the `JitCtx`, x28 the `Heap`, x18 the base of the heap's slots (`Slab::base`,
//!   fixed once slots are in use): `enter` loads it, and every call into Rust loads it again
//!   after the call (x18 is a temporary in the Linux ABI), so that an access through a slot
//!   does not load it. Other systems reserve x18: there the translator is not used
//!   (`arch::TRANSLATOR_AVAILABLE`, decided in `build.rs`).
//! - x12/w13 and x6/w7 are the two array register pairs (see `ArrayUse`), holding the base
//!   and length of arrays recently indexed or amended.
//! - x9..x11 and x14..x17 are scratch; x0/x1 carry call arguments.

/// Host register number of each UM register.
pub(super) const HOST: [u8; 8] = [19, 20, 21, 22, 23, 24, 25, 26];

/// Base and length registers of each array register pair (see `ArrayUse`).
pub(super) const PAIRS: [(u8, u8); crate::backend::ARRAY_PAIRS] = [(12, 13), (6, 7)];

/// The host register of UM register `r`.
pub(super) fn h(r: u8) -> u8 {
    HOST[r as usize]
}

//! The x86-64 backend (System V ABI): only encoding lives here; what to emit is decided in
//! `src/translator.rs`. Split as a backend is split: [`regs`] (which host register holds
//! what), [`routines`] (the shared routines at the start of code memory), [`heap`] (the
//! heap's fast paths) and [`emit`] (per-operation emission, the [`Backend`] implementation).
//!
//! [`Backend`]: crate::backend::Backend

// dynasm's expansion of dynamic registers (`Rd(n)`) calls `.into()` on a `u8`.
#![allow(clippy::useless_conversion)]

use crate::backend::{OutOfLine, Routines};
use dynasmrt::x64::X64Relocation;
use dynasmrt::{DynamicLabel, VecAssembler};

macro_rules! asm {
    ($ops:expr; $($t:tt)*) => {
        dynasmrt::dynasm!($ops ; .arch x64 ; $($t)*)
    };
}

mod emit;
mod encode;
mod heap;
mod regs;
mod routines;
#[cfg(test)]
mod tests;

type Ops = VecAssembler<X64Relocation>;

/// A displacement that x86-64 encodes in one byte (`[BYTE reg + d8(..)]`); a layout that
/// moves a field out of reach fails to compile.
const fn d8(x: i32) -> i8 {
    assert!(-128 <= x && x < 128, "displacement does not fit in a byte");
    x as i8
}

/// The x86-64 emitter of one block.
pub struct X64 {
    ops: Ops,
    routines: Routines,
    /// Compare identifiers with the table length (only for a bounded table).
    check_ids: bool,
    /// The routine calls of fast paths, for the end of the block.
    out_of_line: Vec<OutOfLine<DynamicLabel>>,
}

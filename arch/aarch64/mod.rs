//! The AArch64 backend (AAPCS64): only encoding lives here; what to emit is decided in
//! `src/translator.rs`. Split as the x86-64 backend is: [`regs`], [`routines`], [`heap`]
//! (the heap's fast paths) and [`emit`] (per-operation emission, the [`Backend`]
//! implementation).
//!
//! Constants are built with `movz`/`movk` (never an immediate that might not encode), and
//! compare immediates are used only below 4096. Conditional branches reach +-1 MiB: a block
//! whose branches to its stubs do not reach fails to assemble (`Backend::finish`), and the
//! compiler translates it again, shorter. Code memory is smaller than the +-128 MiB reach of
//! `b`/`bl`, so every block reaches the routines at its start. After Rust writes or patches
//! code, `CodeMemory` cleans and invalidates the caches for it, and `enter` starts with an
//! `isb`.
//!
//! [`Backend`]: crate::backend::Backend

// dynasm's expansion of dynamic registers calls `.into()` on a `u8`.
#![allow(clippy::useless_conversion)]

use crate::backend::Routines;
use dynasmrt::aarch64::Aarch64Relocation;
use dynasmrt::{DynasmApi, VecAssembler};

macro_rules! asm {
    ($ops:expr; $($t:tt)*) => {
        dynasmrt::dynasm!($ops ; .arch aarch64 ; $($t)*)
    };
}

mod emit;
mod heap;
mod regs;
mod routines;
#[cfg(test)]
mod tests;

type Ops = VecAssembler<Aarch64Relocation>;

/// The AArch64 emitter of one block.
pub struct A64 {
    ops: Ops,
    routines: Routines,
    /// Compare identifiers with the table length (only for a bounded table).
    check_ids: bool,
}

/// `wd := value` with movz/movk.
fn load_w(ops: &mut Ops, rd: u8, value: u32) {
    let (lo, hi) = (value & 0xFFFF, value >> 16);
    asm!(ops ; movz W(rd), lo);
    if hi != 0 {
        asm!(ops ; movk W(rd), hi, lsl 16);
    }
}

/// `xd := value` with movz/movk.
fn load_x(ops: &mut Ops, rd: u8, value: u64) {
    asm!(ops ; movz X(rd), (value & 0xFFFF) as u32);
    for shift in [16u32, 32, 48] {
        let part = ((value >> shift) & 0xFFFF) as u32;
        if part != 0 {
            match shift {
                16 => asm!(ops ; movk X(rd), part, lsl 16),
                32 => asm!(ops ; movk X(rd), part, lsl 32),
                _ => asm!(ops ; movk X(rd), part, lsl 48),
            }
        }
    }
}

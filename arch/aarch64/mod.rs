//! The AArch64 backend (AAPCS64): only encoding lives here; what to emit is decided in
//! `src/translator.rs`. Split as the x86-64 backend is: [`regs`], [`routines`], [`heap`]
//! (the heap's fast paths) and [`emit`] (per-operation emission, the [`Backend`]
//! implementation).
//!
//! Constants are built in one instruction when one does (`movz`, `movn`, `orr`), else with
//! `movz`/`movk`. Arithmetic and compare immediates are used only within 12 bits (negated
//! into `sub`/`cmn` when that fits), logical ones only when `logical_imm` says they encode.
//! Conditional branches reach +-1 MiB: a block whose branches to its stubs do not reach
//! fails to assemble (`Backend::finish`), and the compiler translates it again, shorter. Code
//! memory is smaller than the +-128 MiB reach of `b`/`bl`, so every block reaches the
//! routines at its start. After Rust writes or patches code, `CodeMemory` cleans and
//! invalidates the caches for it, and `enter` starts with an `isb`.
//!
//! [`Backend`]: crate::backend::Backend

// dynasm's expansion of dynamic registers calls `.into()` on a `u8`.
#![allow(clippy::useless_conversion)]

use crate::backend::{OutOfLine, Routines};
use dynasmrt::aarch64::Aarch64Relocation;
use dynasmrt::{DynamicLabel, DynasmApi, VecAssembler};

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
    /// The routine calls of fast paths, for the end of the block.
    out_of_line: Vec<OutOfLine<DynamicLabel>>,
}

/// `wd := value` in one instruction when one does (movz, movn, or orr of a logical
/// immediate), else movz/movk.
fn load_w(ops: &mut Ops, rd: u8, value: u32) {
    let (lo, hi) = (value & 0xFFFF, value >> 16);
    let (nlo, nhi) = (!value & 0xFFFF, !value >> 16);
    if hi == 0 {
        asm!(ops ; movz W(rd), lo);
    } else if lo == 0 {
        asm!(ops ; movz W(rd), hi, lsl 16);
    } else if nhi == 0 {
        asm!(ops ; movn W(rd), nlo);
    } else if nlo == 0 {
        asm!(ops ; movn W(rd), nhi, lsl 16);
    } else if logical_imm(value) {
        asm!(ops ; orr WSP(rd), wzr, value);
    } else {
        asm!(ops
            ; movz W(rd), lo
            ; movk W(rd), hi, lsl 16
        );
    }
}

/// Whether `value` encodes as a 32-bit logical immediate (`and`, `orr`, `tst`): dynasm
/// assembles a dynamic one only after this test, and panics otherwise.
fn logical_imm(value: u32) -> bool {
    dynasmrt::aarch64::encode_logical_immediate_32bit(value).is_some()
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

//! The shared routines at the start of code memory: entering and leaving generated code,
//! the dispatch miss, and the calls into Rust.
//!
//! Conventions: `miss` takes the pc in w9; `exit_with` takes w9 = pc, w10 = b,
//! w11 = kind | a << 8 (`exit_as[kind]`: w9 and w10 only); each `call` routine takes its
//! argument in w1 and returns the result in x0, bit 32 set on failure.

use super::heap::{abandon_fast_path, alloc_fast_path};
use super::regs::HOST;
use super::{Ops, load_x};
use crate::backend::Routines;
use crate::console::out_layout;
use crate::memory::layout::HEAP_SLAB;
use crate::runtime::{ExitKind, RtFn, off};
use dynasmrt::{DynasmApi, DynasmLabelApi};

const SLAB: u32 = HEAP_SLAB as u32;

/// The output routine's fast path, `Console::output` for a byte in w1 that is not a
/// newline and leaves the buffer short of full: appends it and returns 0, or falls through
/// (having changed nothing) to the call into Rust that follows. Clobbers x9..x11, x14.
fn output_fast_path(ops: &mut Ops) {
    let slow = ops.new_dynamic_label();
    asm!(ops
        ; cmp w1, 255
        ; b.hi =>slow
        ; cmp w1, u32::from(b'\n')
        ; b.eq =>slow
        ; ldr x9, [x27, off::CONSOLE as u32]
        ; ldr x10, [x9, out_layout::LEN as u32]
        ; add x11, x10, 1
    );
    load_x(ops, 14, out_layout::CAPACITY);
    asm!(ops
        ; cmp x11, x14
        ; b.hs =>slow
        ; ldr x14, [x9, out_layout::BUFFER as u32]
        ; strb w1, [x14, x10]
        ; str x11, [x9, out_layout::LEN as u32]
        ; ldr x10, [x9, out_layout::BYTES as u32]
        ; add x10, x10, 1
        ; str x10, [x9, out_layout::BYTES as u32]
        ; mov x0, xzr
        ; ret
        ; =>slow
    );
}

/// Assemble the routines for code memory at `base`.
pub(super) fn routines(base: usize, counts_arrays: bool) -> (Vec<u8>, Routines) {
    let mut ops = Ops::new(base);
    // Both leave for pc w9, with their own exit kind.
    let miss = ops.offset().0;
    asm!(ops
        ; movz w10, ExitKind::Miss as u32
        ; b >leave
    );
    let hot = ops.offset().0;
    asm!(ops
        ; movz w10, ExitKind::Hot as u32
        ; leave:
        ; str w9, [x27, off::EXIT_PC as u32]
        ; str w10, [x27, off::EXIT_KIND as u32]
        ; str wzr, [x27, off::EXIT_B as u32]
    );
    let exit = ops.offset().0;
    for (r, &hr) in HOST.iter().enumerate() {
        asm!(ops ; str W(hr), [x27, (off::REGS + 4 * r as i32) as u32]);
    }
    asm!(ops
        ; ldp x19, x20, [sp, 16]
        ; ldp x21, x22, [sp, 32]
        ; ldp x23, x24, [sp, 48]
        ; ldp x25, x26, [sp, 64]
        ; ldp x27, x28, [sp, 80]
        ; ldp x29, x30, [sp], 96
        ; ret
    );
    let enter = ops.offset().0;
    asm!(ops
        ; stp x29, x30, [sp, -96]!
        ; stp x19, x20, [sp, 16]
        ; stp x21, x22, [sp, 32]
        ; stp x23, x24, [sp, 48]
        ; stp x25, x26, [sp, 64]
        ; stp x27, x28, [sp, 80]
        ; mov x27, x0
        ; ldr x28, [x27, off::HEAP as u32]
        ; ldr x18, [x28, SLAB]
    );
    for (r, &hr) in HOST.iter().enumerate() {
        asm!(ops ; ldr W(hr), [x27, (off::REGS + 4 * r as i32) as u32]);
    }
    asm!(ops
        ; isb
        ; br x1
    );
    let exit_with = ops.offset().0;
    asm!(ops
        ; str w9, [x27, off::EXIT_PC as u32]
        ; str w10, [x27, off::EXIT_B as u32]
        ; and w12, w11, 0xFF
        ; str w12, [x27, off::EXIT_KIND as u32]
        ; lsr w11, w11, 8
        ; str w11, [x27, off::EXIT_A as u32]
        ; b extern base + exit
    );
    // exit_with for each kind, with a = 0.
    let mut exit_as = [base + exit_with; ExitKind::LIMIT];
    for kind in ExitKind::ALL {
        exit_as[kind as usize] = base + ops.offset().0;
        asm!(ops
            ; movz w11, kind as u32
            ; b extern base + exit_with
        );
    }
    let mut call = [0; RtFn::COUNT];
    for f in RtFn::ALL {
        call[f.index()] = base + ops.offset().0;
        match f {
            RtFn::Alloc => alloc_fast_path(&mut ops, counts_arrays),
            RtFn::Abandon => abandon_fast_path(&mut ops, counts_arrays),
            RtFn::Output => output_fast_path(&mut ops),
            RtFn::Input => {}
        }
        asm!(ops ; stp x29, x30, [sp, -16]!);
        if f.takes_heap() {
            asm!(ops ; mov x0, x28);
        } else {
            asm!(ops ; mov x0, x27);
        }
        load_x(&mut ops, 16, f.address() as u64);
        asm!(ops
            ; blr x16
            // Rust may have used x18 (a temporary in the Linux ABI).
            ; ldr x18, [x28, SLAB]
            ; ldp x29, x30, [sp], 16
            ; ret
        );
    }
    let code = ops.finalize().expect("the routines' branches are short");
    (
        code,
        Routines {
            miss: base + miss,
            hot: base + hot,
            exit: base + exit,
            enter: base + enter,
            exit_with: base + exit_with,
            exit_as,
            call,
            counts_arrays,
        },
    )
}

//! The shared routines at the start of code memory: entering and leaving generated code,
//! the dispatch miss, and the calls into Rust.
//!
//! Conventions: `miss` takes the pc in ecx; `exit_with` takes ecx = pc, edx = b,
//! esi = kind | a << 8 (`exit_as[kind]`: ecx and edx only); each `call` routine takes its
//! argument in esi and returns the result in rax, carry set on failure.

use super::encode::{self as enc, Alu, Mem};
use super::heap::{abandon_fast_path, alloc_fast_path};
use super::regs::{CALLER_SAVED, HOST, R15, RAX, RCX, RDI, RDX, RSI, h};
use super::{Ops, d8};
use crate::backend::Routines;
use crate::console::out_layout;
use crate::runtime::{ExitKind, RtFn, off};
use dynasmrt::{DynasmApi, DynasmLabelApi};

const EXIT_PC: i8 = d8(off::EXIT_PC);
const EXIT_KIND: i8 = d8(off::EXIT_KIND);
const EXIT_A: i8 = d8(off::EXIT_A);
const EXIT_B: i8 = d8(off::EXIT_B);
const HEAP: i8 = d8(off::HEAP);

/// Where UM register `r` is kept in the context while Rust runs.
fn reg_at(r: usize) -> Mem {
    Mem::at(R15, d8(off::REGS + 4 * r as i32).into())
}

/// The output routine's fast path, `Console::output` for a byte in esi that is not a
/// newline and leaves the buffer short of full: appends it and returns 0 with carry clear,
/// or falls through (having changed nothing) to the call into Rust that follows. Clobbers
/// rax, rcx, rdx, rdi.
fn output_fast_path(ops: &mut Ops) {
    let slow = ops.new_dynamic_label();
    let at = |field: i32| Mem::at(RAX, field);
    asm!(ops
        ; cmp esi, 255
        ; ja =>slow
    );
    enc::alu_ri(ops, Alu::Cmp, RSI, i32::from(b'\n'));
    asm!(ops
        ; je =>slow
        ; mov rax, [r15 + off::CONSOLE]
    );
    enc::load64(ops, RCX, at(out_layout::LEN));
    asm!(ops ; lea rdx, [rcx + 1]);
    enc::alu64_ri(ops, Alu::Cmp, RDX, out_layout::CAPACITY as i32);
    asm!(ops ; jae =>slow);
    enc::load64(ops, RDI, at(out_layout::BUFFER));
    asm!(ops ; mov [rdi + rcx], sil);
    enc::store64(ops, at(out_layout::LEN), RDX);
    enc::alu64_mi(ops, Alu::Add, at(out_layout::BYTES), 1);
    asm!(ops
        ; xor eax, eax
        ; ret
        ; =>slow
    );
}

/// Assemble the routines for code memory at `base`.
pub(super) fn routines(base: usize, counts_arrays: bool) -> (Vec<u8>, Routines) {
    let mut ops = Ops::new(base);
    // Both leave for pc ecx, with their own exit kind.
    let miss = ops.offset().0;
    asm!(ops
        ; mov eax, ExitKind::Miss as i32
        ; jmp >leave
    );
    let hot = ops.offset().0;
    asm!(ops
        ; mov eax, ExitKind::Hot as i32
        ; leave:
        ; mov [BYTE r15 + EXIT_PC], ecx
        ; mov [BYTE r15 + EXIT_KIND], eax
        ; mov DWORD [BYTE r15 + EXIT_B], 0
    );
    let exit = ops.offset().0;
    for (r, &hr) in HOST.iter().enumerate() {
        enc::store(&mut ops, reg_at(r), hr);
    }
    asm!(ops
        ; add rsp, 8
        ; pop r15
        ; pop r14
        ; pop r13
        ; pop r12
        ; pop rbp
        ; pop rbx
        ; ret
    );
    let enter = ops.offset().0;
    asm!(ops
        ; push rbx
        ; push rbp
        ; push r12
        ; push r13
        ; push r14
        ; push r15
        ; sub rsp, 8
        ; mov r15, rdi
        ; mov r14, [BYTE r15 + HEAP]
    );
    for (r, &hr) in HOST.iter().enumerate() {
        enc::load(&mut ops, hr, reg_at(r));
    }
    asm!(ops ; jmp rsi);
    let exit_with = ops.offset().0;
    asm!(ops
        ; mov [BYTE r15 + EXIT_PC], ecx
        ; mov [BYTE r15 + EXIT_B], edx
        ; movzx eax, sil
        ; mov [BYTE r15 + EXIT_KIND], eax
        ; shr esi, 8
        ; mov [BYTE r15 + EXIT_A], esi
        ; jmp extern base + exit
    );
    // exit_with for each kind, with a = 0.
    let mut exit_as = [base + exit_with; ExitKind::LIMIT];
    for kind in ExitKind::ALL {
        exit_as[kind as usize] = base + ops.offset().0;
        asm!(ops
            ; mov esi, kind as i32
            ; jmp extern base + exit_with
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
        for r in CALLER_SAVED {
            enc::store(&mut ops, reg_at(r as usize), h(r));
        }
        if f.takes_heap() {
            asm!(ops ; mov rdi, r14);
        } else {
            asm!(ops ; mov rdi, r15);
        }
        // Entered with rsp = 8 (mod 16) after the block's call: realign for the ABI.
        asm!(ops
            ; sub rsp, 8
            ; mov rax, QWORD f.address() as i64
            ; call rax
            ; bt rax, 32
            ; lea rsp, [rsp + 8]
        );
        for r in CALLER_SAVED {
            enc::load(&mut ops, h(r), reg_at(r as usize));
        }
        asm!(ops ; ret);
    }
    let code = ops.finalize().expect("the routines have no long branches");
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

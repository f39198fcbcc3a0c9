//! x86-64 instruction emission (System V ABI). Only encoding lives here; what to emit is
//! decided in `src/translator.rs`.
//!
//! Host registers: UM r0..r7 live in ebx, ebp, r12d, r13d, r8d, r9d, r10d, r11d for the whole
//! time generated code runs (chained blocks included); r15 holds the `JitCtx`, r14 the
//! `Heap`; rax is scratch. Two register pairs (see `ArrayUse`) hold the base and length of
//! arrays recently indexed or amended: rdi/esi and rcx/edx (the translator decides when they
//! can be reused); rcx, rdx, rsi and rdi are also scratch for division, allocation, calls
//! and exits, after which the translator forgets the pairs. Runtime calls save and restore
//! the four caller-saved UM registers (r8d..r11d) through `JitCtx::regs`.
//!
//! Every write to a UM register is a 32-bit operation, so its host register is always
//! zero-extended and serves directly as an index in addresses.

// dynasm's expansion of dynamic registers (`Rd(n)`) calls `.into()` on a `u8`.
#![allow(clippy::useless_conversion)]

use crate::runtime::{ExitKind, Routines, RtFn, off};
use crate::translator::{ArrayUse, BinOp, Emitter, Val};
use dynasmrt::x64::X64Relocation;
use dynasmrt::{DynamicLabel, DynasmApi, DynasmLabelApi, VecAssembler, dynasm};

/// Host register number of each UM register.
const HOST: [u8; 8] = [3, 5, 12, 13, 8, 9, 10, 11];
/// UM registers held in caller-saved host registers.
const CALLER_SAVED: [u8; 4] = [4, 5, 6, 7];

const RAX: u8 = 0;
const RCX: u8 = 1;
const RDX: u8 = 2;
const RSI: u8 = 6;
const RDI: u8 = 7;
/// Base and length registers of each array register pair (see `ArrayUse`).
const PAIRS: [(u8, u8); 2] = [(RDI, RSI), (RCX, RDX)];

// dynasm encodes a displacement in one byte only when it is a literal, so the hot fields
// are written as numbers here; these assertions keep them equal to the real layout.
const _: () = {
    assert!(off::EXIT_KIND == 32 && off::EXIT_PC == 36 && off::EXIT_A == 40);
    assert!(off::EXIT_B == 44 && off::HEAP == 48 && off::DTABLE == 56);
    assert!(off::DTABLE_LEN == 64 && off::CODEMAP == 72 && off::CODE_BASE == 80);
    assert!(off::ICOUNT == 88 && off::LOOKUPS == 96 && off::REGS == 0);
    assert!(off::HEAP_TABLE == 0 && off::HEAP_TABLE_LEN == 8);
    assert!(off::ENTRY_BASE == 0 && off::ENTRY_LEN == 8 && off::ENTRY_SHIFT == 4);
};

fn h(r: u8) -> u8 {
    HOST[r as usize]
}

pub struct X64Emitter {
    ops: VecAssembler<X64Relocation>,
    base: usize,
    routines: Routines,
    /// Compare identifiers with the table length (only for a bounded table).
    check_ids: bool,
}

macro_rules! asm {
    ($ops:expr; $($t:tt)*) => {
        dynasm!($ops ; .arch x64 ; $($t)*)
    };
}

/// Assemble the shared routines for code memory at `base`. Conventions here: `miss` takes
/// the pc in ecx; `exit_with` takes ecx = pc, edx = b, esi = kind | a << 8; each `call`
/// routine takes its argument in esi and returns the result in rax, carry set on failure.
pub fn routines(base: usize) -> (Vec<u8>, Routines) {
    let mut ops = VecAssembler::<X64Relocation>::new(base);
    let miss = ops.offset().0;
    asm!(ops
        ; mov [r15 + 36], ecx
        ; mov DWORD [r15 + 32], ExitKind::Miss as i32
        ; mov DWORD [r15 + 44], 0
    );
    let exit = ops.offset().0;
    for (r, &hr) in HOST.iter().enumerate() {
        asm!(ops ; mov [r15 + off::REGS + 4 * r as i32], Rd(hr));
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
        ; mov r14, [r15 + 48]
    );
    for (r, &hr) in HOST.iter().enumerate() {
        asm!(ops ; mov Rd(hr), [r15 + off::REGS + 4 * r as i32]);
    }
    asm!(ops ; jmp rsi);
    let exit_with = ops.offset().0;
    asm!(ops
        ; mov [r15 + 36], ecx
        ; mov [r15 + 44], edx
        ; movzx eax, sil
        ; mov [r15 + 32], eax
        ; shr esi, 8
        ; mov [r15 + 40], esi
        ; jmp extern base + exit
    );
    let mut call = [0; 4];
    for f in [RtFn::Alloc, RtFn::Abandon, RtFn::Output, RtFn::Input] {
        call[f.index()] = base + ops.offset().0;
        match f {
            RtFn::Alloc => alloc_fast_path(&mut ops),
            RtFn::Abandon => abandon_fast_path(&mut ops),
            _ => {}
        }
        for r in CALLER_SAVED {
            asm!(ops ; mov [r15 + 4 * r as i32], Rd(h(r)));
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
            asm!(ops ; mov Rd(h(r)), [r15 + 4 * r as i32]);
        }
        asm!(ops ; ret);
    }
    let code = ops.finalize().expect("routines assemble");
    (
        code,
        Routines {
            miss: base + miss,
            exit: base + exit,
            enter: base + enter,
            exit_with: base + exit_with,
            call,
        },
    )
}

/// Offset of `Heap::slab`.
const SLAB: usize = 1104;

// Offsets in `Heap` and its stacks used by the allocation fast paths (literal, see above).
const _: () = {
    use crate::memory::{Heap, SMALL_MAX, Stack};
    use std::mem::{offset_of, size_of};
    assert!(offset_of!(Heap, free_ids) == 16);
    assert!(offset_of!(Stack<u32>, ptr) == 0 && offset_of!(Stack<u32>, len) == 8);
    assert!(offset_of!(Stack<u32>, cap) == 12 && size_of::<Stack<*mut u32>>() == 16);
    assert!(offset_of!(Heap, allocations) == 32 && offset_of!(Heap, abandonments) == 40);
    assert!(offset_of!(Heap, live) == 48 && offset_of!(Heap, peak_live) == 56);
    assert!(offset_of!(Heap, small) == 64 && SMALL_MAX == 64);
    assert!(offset_of!(Heap, slab_ids) == 12 && offset_of!(Heap, slab) == SLAB);
    assert!(crate::memory::SLOT_WORDS == 8);
    assert!(crate::memory::FREE_BASE == 8);
    assert!(offset_of!(crate::memory::Entry, active) == 12);
};

/// The fast path of `Heap::alloc` (esi = words): a recycled identifier and its slot, or a
/// cached buffer of that exact size; returns the identifier in eax with carry clear. Falls
/// through to the Rust call when a stack is empty.
fn alloc_fast_path(ops: &mut VecAssembler<X64Relocation>) {
    let slow = ops.new_dynamic_label();
    let buffers = ops.new_dynamic_label();
    let fill = ops.new_dynamic_label();
    let zeroed = ops.new_dynamic_label();
    let zero_loop = ops.new_dynamic_label();
    asm!(ops
        ; lea eax, [rsi - 1]
        ; cmp eax, 7
        ; ja =>buffers                    // not 1..=SLOT_WORDS words
        ; mov edx, [r14 + 24]             // free_ids.len
        ; test edx, edx
        ; jz =>slow
        ; mov rax, [r14 + 16]
        ; mov eax, [rax + rdx * 4 - 4]    // the identifier on top
        ; cmp eax, [r14 + 12]
        ; jae =>buffers                   // no slot
        ; dec edx
        ; mov [r14 + 24], edx
        ; mov edx, eax
        ; shl rax, 5                      // its slot
        ; add rax, [r14 + SLAB as i32]
        ; mov rdi, rax
        ; jmp =>fill
        ; =>buffers
        ; cmp esi, 64
        ; ja =>slow
        ; mov eax, esi
        ; shl eax, 4                      // rax = n * 16: small[n] at r14 + 64 + rax
        ; mov ecx, [r14 + rax + 72]       // small[n].len
        ; test ecx, ecx
        ; jz =>slow
        ; mov edx, [r14 + 24]             // free_ids.len
        ; test edx, edx
        ; jz =>slow
        ; dec ecx
        ; mov [r14 + rax + 72], ecx
        ; mov rdi, [r14 + rax + 64]
        ; mov rdi, [rdi + rcx * 8]        // the buffer
        ; dec edx
        ; mov [r14 + 24], edx
        ; mov rax, [r14 + 16]
        ; mov edx, [rax + rdx * 4]        // the identifier
        ; =>fill
        ; lea ecx, [rsi + 1]
        ; shr ecx, 1                      // 8-byte units (buffers are rounded up to them)
        ; jz =>zeroed
        ; =>zero_loop
        ; mov QWORD [rdi + rcx * 8 - 8], 0
        ; dec ecx
        ; jnz =>zero_loop
        ; =>zeroed
        ; mov eax, edx
        ; shl rax, 4
        ; add rax, [r14]                  // the entry
        ; mov [rax], rdi
        ; mov [rax + 8], esi
        ; mov DWORD [rax + 12], 1
    );
    count_alloc(ops);
    asm!(ops
        ; mov eax, edx
        ; clc
        ; ret
        ; =>slow
    );
}

/// Count a new array as `Heap::count_alloc` does: allocations, live arrays and their peak
/// (clobbers rax).
fn count_alloc(ops: &mut VecAssembler<X64Relocation>) {
    let no_peak = ops.new_dynamic_label();
    asm!(ops
        ; add QWORD [r14 + 32], 1
        ; mov rax, [r14 + 48]
        ; inc rax
        ; mov [r14 + 48], rax
        ; cmp rax, [r14 + 56]
        ; jbe =>no_peak
        ; mov [r14 + 56], rax
        ; =>no_peak
    );
}

/// The fast path of `Heap::abandon` (esi = identifier): an active array of 1 to 64 words
/// whose identifier (and buffer, unless it lives in its slot) fit on their stacks; returns
/// with carry clear. Falls through to the Rust call otherwise (faults included).
fn abandon_fast_path(ops: &mut VecAssembler<X64Relocation>) {
    let slow = ops.new_dynamic_label();
    let buffer = ops.new_dynamic_label();
    let counted = ops.new_dynamic_label();
    asm!(ops
        ; test esi, esi
        ; jz =>slow
        ; cmp esi, [r14 + 8]
        ; jae =>slow
        ; mov eax, esi
        ; shl rax, 4
        ; add rax, [r14]                  // the entry
        ; cmp DWORD [rax + 12], 0
        ; je =>slow
        ; mov ecx, [rax + 8]
        ; lea edx, [rcx - 1]
        ; cmp edx, 63
        ; ja =>slow                       // length 0 or above 64
        ; cmp edx, 7
        ; ja =>buffer                     // above SLOT_WORDS
        ; cmp esi, [r14 + 12]
        ; jae =>buffer                    // no slot
        ; mov edx, [r14 + 24]
        ; cmp edx, [r14 + 28]
        ; jae =>slow                      // identifier stack full
        ; mov rcx, [r14 + 16]
        ; mov [rcx + rdx * 4], esi
        ; inc edx
        ; mov [r14 + 24], edx
        ; mov QWORD [rax], 8              // Entry::FREE
        ; mov QWORD [rax + 8], 0
        ; jmp =>counted
        ; =>buffer
        ; shl ecx, 4                      // rcx = n * 16
        ; mov edx, [r14 + 24]
        ; cmp edx, [r14 + 28]
        ; jae =>slow                      // identifier stack full
        ; mov edi, [r14 + rcx + 72]
        ; cmp edi, [r14 + rcx + 76]
        ; jae =>slow                      // buffer stack full
        ; push rbx
        ; mov rbx, [r14 + 16]
        ; mov [rbx + rdx * 4], esi
        ; inc edx
        ; mov [r14 + 24], edx
        ; mov rbx, [r14 + rcx + 64]
        ; mov rdx, [rax]
        ; mov [rbx + rdi * 8], rdx
        ; inc edi
        ; mov [r14 + rcx + 72], edi
        ; mov QWORD [rax], 8              // Entry::FREE
        ; mov QWORD [rax + 8], 0
        ; pop rbx
        ; =>counted
        ; add QWORD [r14 + 40], 1
        ; sub QWORD [r14 + 48], 1
        ; xor eax, eax
        ; ret
        ; =>slow
    );
}

/// The bytes that make the jump at address `at` (from `jump_patchable`) go to `target`.
pub fn patch_jump(at: usize, target: usize) -> Vec<u8> {
    let rel = target as i64 - (at as i64 + 5);
    let rel = i32::try_from(rel).expect("jump within code memory");
    let mut b = vec![0xE9];
    b.extend_from_slice(&rel.to_le_bytes());
    b
}

impl X64Emitter {
    /// An emitter for a block that will be placed at address `base`; `check_ids` when the
    /// heap's table does not cover every identifier.
    pub fn new(base: usize, routines: Routines, check_ids: bool) -> X64Emitter {
        X64Emitter {
            ops: VecAssembler::new(base),
            base,
            routines,
            check_ids,
        }
    }

    /// The finished machine code.
    pub fn finish(self) -> Vec<u8> {
        self.ops.finalize().expect("block assembles")
    }

    /// The host register that holds `v`: its own, or `scratch` loaded with the constant.
    fn reg_of(&mut self, v: Val, scratch: u8) -> u8 {
        match v {
            Val::Reg(r) => h(r),
            Val::Imm(x) => {
                asm!(self.ops ; mov Rd(scratch), x as i32);
                scratch
            }
        }
    }

    /// rax := address of the heap entry for identifier `id`; `fail` if it is beyond the table.
    fn entry(&mut self, id: Val, fail: DynamicLabel) {
        match id {
            Val::Imm(0) => {
                asm!(self.ops ; mov rax, [r14]);
            }
            Val::Imm(x) if x < 1 << 24 => {
                if self.check_ids {
                    asm!(self.ops
                        ; cmp DWORD [r14 + 8], x as i32
                        ; jbe =>fail
                    );
                }
                asm!(self.ops
                    ; mov rax, [r14]
                    ; add rax, (x << off::ENTRY_SHIFT) as i32
                );
            }
            _ => {
                match id {
                    Val::Reg(r) => asm!(self.ops ; mov eax, Rd(h(r))),
                    Val::Imm(x) => asm!(self.ops ; mov eax, x as i32),
                }
                if self.check_ids {
                    asm!(self.ops
                        ; cmp eax, [r14 + 8]
                        ; jae =>fail
                    );
                }
                asm!(self.ops
                    ; shl rax, off::ENTRY_SHIFT as i8
                    ; add rax, [r14]
                );
            }
        }
    }

    /// Make the pair's registers hold the base and length of array `id` (unless cached),
    /// then check `offset` against the length unless known in bounds (`fail`). Returns the
    /// pair's base register and how to address the word: a constant displacement, or the
    /// host register holding the offset (a UM register, zero-extended, or rax).
    ///
    /// With `speculate` (for loads), an identifier in a register is assumed to name a small
    /// array in its slot (see `memory`): the base register is computed from the identifier
    /// alone and only compared with the entry's base afterwards, so the element's load need
    /// not wait for the entry's. Walking a linked structure then costs one cache miss per
    /// node, not two.
    fn element(
        &mut self,
        id: Val,
        arr: ArrayUse,
        offset: Val,
        fail: DynamicLabel,
        speculate: bool,
    ) -> (u8, Elem) {
        let (base, len) = PAIRS[arr.pair as usize];
        match id {
            _ if arr.cached => {}
            Val::Reg(r) if speculate => {
                let in_slot = self.ops.new_dynamic_label();
                self.entry(id, fail);
                asm!(self.ops
                    ; mov Rd(len), [rax + 8]
                    ; mov rax, [rax]
                    ; mov Rd(base), Rd(h(r))
                    ; shl Rq(base), 5
                    ; add Rq(base), [r14 + SLAB as i32]
                    ; cmp rax, Rq(base)
                    ; je =>in_slot
                    ; mov Rq(base), rax
                    ; =>in_slot
                );
            }
            _ => {
                self.entry(id, fail);
                asm!(self.ops
                    ; mov Rd(len), [rax + 8]
                    ; mov Rq(base), [rax]
                );
            }
        }
        let elem = match offset {
            Val::Imm(k) if k < 1 << 28 => {
                if !arr.checked {
                    asm!(self.ops
                        ; cmp Rd(len), k as i32
                        ; jbe =>fail
                    );
                }
                Elem::Disp(4 * k as i32)
            }
            Val::Imm(k) => {
                asm!(self.ops
                    ; mov eax, k as i32
                    ; cmp eax, Rd(len)
                    ; jae =>fail
                );
                Elem::Index(RAX)
            }
            Val::Reg(r) => {
                asm!(self.ops
                    ; cmp Rd(h(r)), Rd(len)
                    ; jae =>fail
                );
                Elem::Index(h(r))
            }
        };
        (base, elem)
    }
}

impl X64Emitter {
    /// rax := a cached buffer of `words` words and edx := a recycled identifier, both
    /// popped; `slow` if either stack is empty.
    fn pop_buffer(&mut self, words: u32, slow: DynamicLabel) {
        // small[words]: its pointer and length in the heap header.
        let stack = 64 + 16 * words as i32;
        asm!(self.ops
            ; mov ecx, [r14 + stack + 8]
            ; test ecx, ecx
            ; jz =>slow
            ; mov edx, [r14 + 24]             // free_ids.len
            ; test edx, edx
            ; jz =>slow
            ; dec ecx
            ; mov [r14 + stack + 8], ecx
            ; mov rax, [r14 + stack]
            ; mov rax, [rax + rcx * 8]        // the buffer
            ; dec edx
            ; mov [r14 + 24], edx
            ; mov rcx, [r14 + 16]
            ; mov edx, [rcx + rdx * 4]        // the identifier
        );
    }

    /// Zero the new array of `words` words at rax, fill in the entry of identifier edx,
    /// count it, and put the identifier into UM register `a`.
    fn fill_new_array(&mut self, a: u8, words: u32) {
        // Buffers are rounded up to whole 8-byte units (see `memory::layout`).
        for unit in 0..words.div_ceil(2) as i32 {
            asm!(self.ops ; mov QWORD [rax + 8 * unit], 0);
        }
        asm!(self.ops
            ; mov ecx, edx
            ; shl rcx, off::ENTRY_SHIFT as i8
            ; add rcx, [r14]                  // the entry
            ; mov [rcx], rax
            ; mov rax, QWORD (1i64 << 32) | words as i64
            ; mov [rcx + 8], rax              // len = words, active = 1
        );
        count_alloc(&mut self.ops);
        asm!(self.ops ; mov Rd(h(a)), edx);
    }
}

/// Where an element is, relative to its array's base register.
#[derive(Clone, Copy)]
enum Elem {
    /// At this byte displacement.
    Disp(i32),
    /// At 4 times this (zero-extended) host register.
    Index(u8),
}

impl Emitter for X64Emitter {
    type Label = DynamicLabel;

    fn new_label(&mut self) -> DynamicLabel {
        self.ops.new_dynamic_label()
    }

    fn bind(&mut self, label: DynamicLabel) {
        asm!(self.ops ; =>label);
    }

    fn offset(&self) -> usize {
        self.ops.offset().0
    }

    fn count_instructions(&mut self, n: u32) {
        asm!(self.ops ; add QWORD [r15 + 88], n as i32);
    }

    fn count_event(&mut self, field: i32) {
        asm!(self.ops ; add QWORD [r15 + field], 1);
    }

    fn load_imm(&mut self, r: u8, value: u32) {
        asm!(self.ops ; mov Rd(h(r)), value as i32);
    }

    fn mov(&mut self, a: u8, b: u8) {
        asm!(self.ops ; mov Rd(h(a)), Rd(h(b)));
    }

    fn cmov(&mut self, a: u8, b: Val, c: u8) {
        let hb = self.reg_of(b, RAX);
        asm!(self.ops
            ; test Rd(h(c)), Rd(h(c))
            ; cmovnz Rd(h(a)), Rd(hb)
        );
    }

    fn binop(&mut self, op: BinOp, a: u8, b: Val, c: Val) {
        let ha = h(a);
        match op {
            BinOp::Add | BinOp::Mul => {
                // Commutative: put a register operand first, preferring `a` itself.
                let (x, y) = match (b, c) {
                    (Val::Imm(_), Val::Reg(_)) => (c, b),
                    (_, Val::Reg(r)) if r == a => (c, b),
                    _ => (b, c),
                };
                let Val::Reg(x) = x else {
                    unreachable!("constant operands are folded")
                };
                match (op, y) {
                    (BinOp::Add, Val::Imm(k)) => {
                        if x != a {
                            asm!(self.ops ; mov Rd(ha), Rd(h(x)));
                        }
                        asm!(self.ops ; add Rd(ha), k as i32);
                    }
                    (BinOp::Add, Val::Reg(y)) => {
                        if x == a {
                            asm!(self.ops ; add Rd(ha), Rd(h(y)));
                        } else {
                            asm!(self.ops
                                ; mov eax, Rd(h(x))
                                ; add eax, Rd(h(y))
                                ; mov Rd(ha), eax
                            );
                        }
                    }
                    (_, Val::Imm(k)) => {
                        asm!(self.ops ; imul Rd(ha), Rd(h(x)), k as i32);
                    }
                    (_, Val::Reg(y)) => {
                        if x == a {
                            asm!(self.ops ; imul Rd(ha), Rd(h(y)));
                        } else {
                            asm!(self.ops
                                ; mov eax, Rd(h(x))
                                ; imul eax, Rd(h(y))
                                ; mov Rd(ha), eax
                            );
                        }
                    }
                }
            }
            BinOp::Nand => {
                let hb = self.reg_of(b, RAX);
                if hb != RAX {
                    asm!(self.ops ; mov eax, Rd(hb));
                }
                match c {
                    Val::Imm(k) => asm!(self.ops ; and eax, k as i32),
                    Val::Reg(r) => asm!(self.ops ; and eax, Rd(h(r))),
                }
                asm!(self.ops
                    ; not eax
                    ; mov Rd(ha), eax
                );
            }
        }
    }

    fn div(&mut self, a: u8, b: Val, c: Val, fail: DynamicLabel) {
        let hc = match c {
            Val::Reg(r) => {
                asm!(self.ops
                    ; test Rd(h(r)), Rd(h(r))
                    ; jz =>fail
                );
                h(r)
            }
            Val::Imm(k) => {
                asm!(self.ops ; mov ecx, k as i32);
                RCX
            }
        };
        match b {
            Val::Reg(r) => asm!(self.ops ; mov eax, Rd(h(r))),
            Val::Imm(k) => asm!(self.ops ; mov eax, k as i32),
        }
        asm!(self.ops
            ; xor edx, edx
            ; div Rd(hc)
            ; mov Rd(h(a)), eax
        );
    }

    fn index(&mut self, a: u8, b: Val, c: Val, arr: ArrayUse, fail: DynamicLabel) {
        match self.element(b, arr, c, fail, true) {
            (base, Elem::Disp(d)) => asm!(self.ops ; mov Rd(h(a)), [Rq(base) + d]),
            (base, Elem::Index(i)) => asm!(self.ops ; mov Rd(h(a)), [Rq(base) + Rq(i) * 4]),
        }
    }

    fn amend(
        &mut self,
        a: Val,
        b: Val,
        c: Val,
        arr: ArrayUse,
        fail: DynamicLabel,
        smc: Option<DynamicLabel>,
    ) {
        let (base, elem) = self.element(a, arr, b, fail, false);
        match (elem, c) {
            (Elem::Disp(d), Val::Imm(v)) => asm!(self.ops ; mov DWORD [Rq(base) + d], v as i32),
            (Elem::Disp(d), Val::Reg(r)) => asm!(self.ops ; mov [Rq(base) + d], Rd(h(r))),
            (Elem::Index(i), Val::Imm(v)) => {
                asm!(self.ops ; mov DWORD [Rq(base) + Rq(i) * 4], v as i32)
            }
            (Elem::Index(i), Val::Reg(r)) => asm!(self.ops ; mov [Rq(base) + Rq(i) * 4], Rd(h(r))),
        }
        let Some(smc) = smc else { return };
        let done = self.ops.new_dynamic_label();
        match a {
            Val::Imm(0) => {}
            Val::Imm(_) => return,
            Val::Reg(r) => asm!(self.ops
                ; test Rd(h(r)), Rd(h(r))
                ; jnz =>done
            ),
        }
        match elem {
            Elem::Disp(d) => asm!(self.ops
                ; mov rax, [r15 + 72]
                ; cmp BYTE [rax + d / 4], 0
            ),
            Elem::Index(RAX) => asm!(self.ops
                ; add rax, [r15 + 72]
                ; cmp BYTE [rax], 0
            ),
            Elem::Index(i) => asm!(self.ops
                ; mov rax, [r15 + 72]
                ; cmp BYTE [rax + Rq(i)], 0
            ),
        }
        asm!(self.ops
            ; jne =>smc
            ; =>done
        );
    }

    fn call(&mut self, f: RtFn, arg: Val, result: Option<u8>, fail: DynamicLabel) {
        match arg {
            Val::Reg(r) => asm!(self.ops ; mov esi, Rd(h(r))),
            Val::Imm(k) => asm!(self.ops ; mov esi, k as i32),
        }
        let helper = self.routines.call[f.index()];
        asm!(self.ops
            ; call extern helper
            ; jc =>fail
        );
        if let Some(r) = result {
            asm!(self.ops ; mov Rd(h(r)), eax);
        }
    }

    fn alloc_small(&mut self, a: u8, words: u32, fail: DynamicLabel) {
        debug_assert!((1..=64).contains(&words));
        let slow = self.ops.new_dynamic_label();
        let done = self.ops.new_dynamic_label();
        if words <= crate::memory::SLOT_WORDS {
            // The identifier on top of the stack and its slot (else the routine).
            asm!(self.ops
                ; mov edx, [r14 + 24]         // free_ids.len
                ; test edx, edx
                ; jz =>slow
                ; mov rax, [r14 + 16]
                ; mov ecx, [rax + rdx * 4 - 4]
                ; cmp ecx, [r14 + 12]
                ; jae =>slow
                ; dec edx
                ; mov [r14 + 24], edx
                ; mov edx, ecx                // the identifier
                ; shl rcx, 5
                ; mov rax, [r14 + SLAB as i32]
                ; add rax, rcx                // its slot
            );
        } else {
            self.pop_buffer(words, slow);
        }
        self.fill_new_array(a, words);
        asm!(self.ops
            ; jmp =>done
            ; =>slow
            ; mov esi, words as i32
            ; call extern self.routines.call[RtFn::Alloc.index()]
            ; jc =>fail
            ; mov Rd(h(a)), eax
            ; =>done
        );
    }

    fn branch_zero(&mut self, r: u8, target: DynamicLabel) {
        asm!(self.ops
            ; test Rd(h(r)), Rd(h(r))
            ; jz =>target
        );
    }

    fn branch_nonzero(&mut self, r: u8, target: DynamicLabel) {
        asm!(self.ops
            ; test Rd(h(r)), Rd(h(r))
            ; jnz =>target
        );
    }

    fn branch_eq(&mut self, r: u8, value: u32, target: DynamicLabel) {
        asm!(self.ops
            ; cmp Rd(h(r)), value as i32
            ; je =>target
        );
    }

    fn jump(&mut self, target: DynamicLabel) {
        asm!(self.ops ; jmp =>target);
    }

    fn jump_patchable(&mut self, stub: DynamicLabel) -> usize {
        let at = self.offset();
        asm!(self.ops ; jmp =>stub);
        debug_assert_eq!(self.offset() - at, 5, "patchable jumps are rel32");
        at
    }

    fn jump_dispatch(&mut self, target: Val, count: bool) {
        if count {
            asm!(self.ops ; add QWORD [r15 + 96], 1);
        }
        match target {
            Val::Reg(r) => asm!(self.ops ; mov ecx, Rd(h(r))),
            Val::Imm(k) => asm!(self.ops ; mov ecx, k as i32),
        }
        let miss = self.routines.miss;
        asm!(self.ops
            ; cmp ecx, [r15 + 64]
            ; jae extern miss
            ; mov rax, [r15 + 56]
            ; mov eax, [rax + rcx * 4]
            ; add rax, [r15 + 80]
            ; jmp rax
        );
    }

    fn exit(&mut self, kind: ExitKind, pc: u32, a: u32, b: u32) {
        debug_assert!(a < 1 << 24, "exit field a fits in 24 bits");
        let exit_with = self.routines.exit_with;
        asm!(self.ops
            ; mov ecx, pc as i32
            ; mov edx, b as i32
            ; mov esi, (kind as u32 | a << 8) as i32
            ; jmp extern exit_with
        );
    }
}

impl X64Emitter {
    /// Address the block is being assembled for.
    pub fn base(&self) -> usize {
        self.base
    }
}

/// The emitter `src/cache.rs` uses on this host.
pub type BlockEmitter = X64Emitter;

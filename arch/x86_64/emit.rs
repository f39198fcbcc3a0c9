//! Per-operation emission: the [`Backend`] implementation for x86-64.

use super::heap::alloc_inline;
use super::regs::{PAIRS, RAX, RCX, h};
use super::{Ops, X64, d8};
use crate::backend::{ArrayUse, Backend, BinOp, Routines, TooLong, Val};
use crate::memory::layout::{
    ENTRY_BASE, ENTRY_LEN, ENTRY_SHIFT, HEAP_ENTRIES, HEAP_IDS, HEAP_SLAB, SLOT_SHIFT,
};
use crate::runtime::{ExitKind, RtFn, off};
use crate::stats::Counter;
use dynasmrt::{DynamicLabel, DynasmApi, DynasmLabelApi};

const ENTRIES: i8 = d8(HEAP_ENTRIES);
const IDS: i8 = d8(HEAP_IDS);
const SLAB: i8 = d8(HEAP_SLAB);
const BASE: i8 = d8(ENTRY_BASE);
const LEN: i8 = d8(ENTRY_LEN);
const CODEMAP: i8 = d8(off::CODEMAP);
const DTABLE: i8 = d8(off::DTABLE);
const DTABLE_LEN: i8 = d8(off::DTABLE_LEN);
const CODE_BASE: i8 = d8(off::CODE_BASE);
const INTERRUPT: i8 = d8(off::INTERRUPT);
const BUDGET: i8 = d8(off::BUDGET);
const COUNTERS: i8 = d8(off::COUNTERS);
const PROFILE: i8 = d8(off::PROFILE);

/// Where an element is, relative to its array's base register.
#[derive(Clone, Copy)]
enum Elem {
    /// At this byte displacement.
    Disp(i32),
    /// At 4 times this (zero-extended) host register.
    Index(u8),
}

/// The shortest no-operation instructions of 1 to 4 bytes, to align patchable jumps.
const NOPS: [&[u8]; 5] = [
    &[],
    &[0x90],
    &[0x66, 0x90],
    &[0x0F, 0x1F, 0x00],
    &[0x0F, 0x1F, 0x40, 0x00],
];

impl X64 {
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

    /// rax := address of the heap entry for identifier `id`; `fail` if it is beyond the
    /// table.
    fn entry(&mut self, id: Val, fail: DynamicLabel) {
        match id {
            Val::Imm(0) => {
                asm!(self.ops ; mov rax, [BYTE r14 + ENTRIES]);
            }
            Val::Imm(x) if x < 1 << 24 => {
                if self.check_ids {
                    asm!(self.ops
                        ; cmp DWORD [BYTE r14 + IDS], x as i32
                        ; jbe =>fail
                    );
                }
                asm!(self.ops
                    ; mov rax, [BYTE r14 + ENTRIES]
                    ; add rax, (x << ENTRY_SHIFT) as i32
                );
            }
            _ => {
                match id {
                    Val::Reg(r) => asm!(self.ops ; mov eax, Rd(h(r))),
                    Val::Imm(x) => asm!(self.ops ; mov eax, x as i32),
                }
                if self.check_ids {
                    asm!(self.ops
                        ; cmp eax, [BYTE r14 + IDS]
                        ; jae =>fail
                    );
                }
                asm!(self.ops
                    ; shl rax, ENTRY_SHIFT as i8
                    ; add rax, [BYTE r14 + ENTRIES]
                );
            }
        }
    }

    /// Make the pair's registers hold the base and length of array `id` (unless cached),
    /// then check `offset` against the length unless known in bounds (`fail`). Returns the
    /// pair's base register and how to address the word: a constant displacement, or the
    /// host register holding the offset (a UM register, zero-extended, or rax).
    fn element(&mut self, id: Val, arr: ArrayUse, offset: Val, fail: DynamicLabel) -> (u8, Elem) {
        let (base, len) = PAIRS[arr.pair as usize];
        match id {
            _ if arr.cached => {}
            Val::Reg(r) if arr.speculate => {
                // The slot's address from the identifier alone; the entry's base replaces
                // it only when they differ (an array with a buffer of its own).
                let in_slot = self.ops.new_dynamic_label();
                self.entry(id, fail);
                asm!(self.ops
                    ; mov Rd(len), [BYTE rax + LEN]
                    ; mov rax, [BYTE rax + BASE]
                    ; mov Rd(base), Rd(h(r))
                    ; shl Rq(base), SLOT_SHIFT as i8
                    ; add Rq(base), [BYTE r14 + SLAB]
                    ; cmp rax, Rq(base)
                    ; je =>in_slot
                    ; mov Rq(base), rax
                    ; =>in_slot
                );
            }
            _ => {
                self.entry(id, fail);
                asm!(self.ops
                    ; mov Rd(len), [BYTE rax + LEN]
                    ; mov Rq(base), [BYTE rax + BASE]
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

    /// Call the routine of `f` (argument in esi); `fail` on failure.
    fn call_routine(&mut self, f: RtFn, fail: DynamicLabel) {
        let routine = self.routines.call[f.index()];
        asm!(self.ops
            ; call extern routine
            ; jc =>fail
        );
    }
}

impl Backend for X64 {
    const NAME: &'static str = "x86-64";
    /// Far below the +-2 GiB reach of a `jmp`/`call` with a 32-bit displacement.
    const CODE_CAPACITY: usize = 120 << 20;
    /// x86-64 branches reach anywhere in code memory; the bound is the same as AArch64's so
    /// that `--max-block` means the same on every host.
    const MAX_BLOCK_OPS: u32 = 2048;

    type Label = DynamicLabel;

    fn routines(base: usize) -> (Vec<u8>, Routines) {
        super::routines::routines(base)
    }

    fn new(base: usize, routines: &Routines, check_ids: bool) -> X64 {
        assert!(base.is_multiple_of(8), "blocks start 8-aligned");
        X64 {
            ops: Ops::new(base),
            routines: *routines,
            check_ids,
        }
    }

    fn finish(self) -> Result<Vec<u8>, TooLong> {
        self.ops
            .finalize()
            .map_err(|e| TooLong(format!("x86-64 block does not assemble: {e:?}")))
    }

    fn patch_jump(word: usize, old: u64, at: usize, target: usize) -> u64 {
        let pos = at - word;
        assert!(
            pos <= 3,
            "a patchable jump lies within one aligned 8-byte word"
        );
        let rel = target as i64 - (at as i64 + 5);
        let rel = i32::try_from(rel).expect("jump within code memory");
        let mut bytes = old.to_le_bytes();
        bytes[pos] = 0xE9;
        bytes[pos + 1..pos + 5].copy_from_slice(&rel.to_le_bytes());
        u64::from_le_bytes(bytes)
    }

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
        asm!(self.ops ; add QWORD [r15 + off::counter(Counter::Instructions)], n as i32);
    }

    fn take_budget(&mut self, n: u32, exhausted: DynamicLabel) {
        asm!(self.ops
            ; sub QWORD [BYTE r15 + BUDGET], n as i32
            ; jb =>exhausted
        );
    }

    fn branch_interrupted(&mut self, target: DynamicLabel) {
        asm!(self.ops
            ; mov rax, [BYTE r15 + INTERRUPT]
            ; cmp DWORD [rax], 0
            ; jne =>target
        );
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
                    // (A 32-bit lea keeps the low half of the 64-bit sum: the sum mod
                    // 2^32 whatever the upper halves hold.)
                    (BinOp::Add, Val::Imm(k)) => {
                        if x == a {
                            asm!(self.ops ; add Rd(ha), k as i32);
                        } else {
                            asm!(self.ops ; lea Rd(ha), [Rq(h(x)) + k as i32]);
                        }
                    }
                    // Here `y` is `a` only if `x` is too (the order above).
                    (BinOp::Add, Val::Reg(y)) => {
                        if x == a {
                            asm!(self.ops ; add Rd(ha), Rd(h(y)));
                        } else {
                            asm!(self.ops ; lea Rd(ha), [Rq(h(x)) + Rq(h(y))]);
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
                                ; mov Rd(ha), Rd(h(x))
                                ; imul Rd(ha), Rd(h(y))
                            );
                        }
                    }
                }
            }
            BinOp::Nand | BinOp::And if matches!((b, c), (Val::Reg(_), Val::Reg(_))) => {
                let (Val::Reg(x), Val::Reg(y)) = (b, c) else {
                    unreachable!("matched above")
                };
                let (hx, hy) = (h(x), h(y));
                // Commutative: into `a` directly (`x & x` is `x`).
                if hx == ha {
                    if hy != ha {
                        asm!(self.ops ; and Rd(ha), Rd(hy));
                    }
                } else if hy == ha {
                    asm!(self.ops ; and Rd(ha), Rd(hx));
                } else {
                    asm!(self.ops ; mov Rd(ha), Rd(hx));
                    if hy != hx {
                        asm!(self.ops ; and Rd(ha), Rd(hy));
                    }
                }
                if op == BinOp::Nand {
                    asm!(self.ops ; not Rd(ha));
                }
            }
            BinOp::Nand | BinOp::And => {
                let hb = self.reg_of(b, RAX);
                if hb != RAX {
                    asm!(self.ops ; mov eax, Rd(hb));
                }
                match c {
                    Val::Imm(k) => asm!(self.ops ; and eax, k as i32),
                    Val::Reg(r) => asm!(self.ops ; and eax, Rd(h(r))),
                }
                if op == BinOp::Nand {
                    asm!(self.ops ; not eax);
                }
                asm!(self.ops ; mov Rd(ha), eax);
            }
        }
    }

    fn div(&mut self, a: u8, b: Val, c: Val, fail: Option<DynamicLabel>) {
        // By a power of two: a shift (a division takes tens of cycles).
        if let Val::Imm(k) = c
            && k.is_power_of_two()
        {
            let s = k.trailing_zeros() as i8;
            match b {
                Val::Reg(r) if r == a => {}
                Val::Reg(r) => asm!(self.ops ; mov Rd(h(a)), Rd(h(r))),
                Val::Imm(x) => asm!(self.ops ; mov Rd(h(a)), x as i32),
            }
            if s > 0 {
                asm!(self.ops ; shr Rd(h(a)), s);
            }
            return;
        }
        let hc = match c {
            Val::Reg(r) => {
                if let Some(fail) = fail {
                    asm!(self.ops
                        ; test Rd(h(r)), Rd(h(r))
                        ; jz =>fail
                    );
                }
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

    fn select(&mut self, a: u8, cond: u8, t: Val, f: Val) {
        // Only eax is scratch here (the pairs' registers may hold arrays).
        let hc = h(cond);
        match (t, f) {
            (Val::Reg(rt), _) => {
                match f {
                    Val::Reg(rf) => asm!(self.ops ; mov eax, Rd(h(rf))),
                    Val::Imm(k) => asm!(self.ops ; mov eax, k as i32),
                }
                asm!(self.ops
                    ; test Rd(hc), Rd(hc)
                    ; cmovnz eax, Rd(h(rt))
                );
            }
            (Val::Imm(kt), Val::Reg(rf)) => asm!(self.ops
                ; mov eax, kt as i32
                ; test Rd(hc), Rd(hc)
                ; cmovz eax, Rd(h(rf))
            ),
            (Val::Imm(kt), Val::Imm(kf)) => asm!(self.ops
                // eax = f ^ ((t ^ f) & -(cond != 0))
                ; xor eax, eax
                ; test Rd(hc), Rd(hc)
                ; setnz al
                ; neg eax
                ; and eax, (kt ^ kf) as i32
                ; xor eax, kf as i32
            ),
        }
        asm!(self.ops ; mov Rd(h(a)), eax);
    }

    fn index(&mut self, a: u8, b: Val, c: Val, arr: ArrayUse, fail: DynamicLabel) {
        match self.element(b, arr, c, fail) {
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
        let (base, elem) = self.element(a, arr, b, fail);
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
                ; mov rax, [BYTE r15 + CODEMAP]
                ; cmp BYTE [rax + d / 4], 0
            ),
            Elem::Index(RAX) => asm!(self.ops
                ; add rax, [BYTE r15 + CODEMAP]
                ; cmp BYTE [rax], 0
            ),
            Elem::Index(i) => asm!(self.ops
                ; mov rax, [BYTE r15 + CODEMAP]
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
        self.call_routine(f, fail);
        if let Some(r) = result {
            asm!(self.ops ; mov Rd(h(r)), eax);
        }
    }

    fn alloc_small(&mut self, a: u8, words: u32, fail: DynamicLabel) {
        let slow = self.ops.new_dynamic_label();
        let done = self.ops.new_dynamic_label();
        alloc_inline(&mut self.ops, words, slow);
        asm!(self.ops
            ; mov Rd(h(a)), edx
            ; jmp =>done
            ; =>slow
            ; mov esi, words as i32
        );
        self.call_routine(RtFn::Alloc, fail);
        asm!(self.ops
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

    fn branch_ne(&mut self, r: u8, value: u32, target: DynamicLabel) {
        asm!(self.ops
            ; cmp Rd(h(r)), value as i32
            ; jne =>target
        );
    }

    fn branch_and(&mut self, r: u8, mask: Val, target: DynamicLabel) {
        match mask {
            Val::Imm(k) => asm!(self.ops ; test Rd(h(r)), k as i32),
            Val::Reg(m) => asm!(self.ops ; test Rd(h(r)), Rd(h(m))),
        }
        asm!(self.ops ; jnz =>target);
    }

    fn jump(&mut self, target: DynamicLabel) {
        asm!(self.ops ; jmp =>target);
    }

    fn jump_patchable(&mut self, stub: DynamicLabel) -> usize {
        // The 5-byte jump must lie within one aligned 8-byte word (blocks start 8-aligned).
        let misalign = self.offset() % 8;
        if misalign > 3 {
            self.ops.extend(NOPS[8 - misalign].iter().copied());
        }
        let at = self.offset();
        asm!(self.ops ; jmp =>stub);
        debug_assert_eq!(self.offset() - at, 5, "patchable jumps are rel32");
        at
    }

    fn jump_dispatch(&mut self, target: Val, count: bool, hot: bool) {
        if count {
            self.count_event(off::counter(Counter::Lookups));
        }
        match target {
            Val::Reg(r) => asm!(self.ops ; mov ecx, Rd(h(r))),
            Val::Imm(k) => asm!(self.ops ; mov ecx, k as i32),
        }
        let miss = self.routines.miss;
        asm!(self.ops
            ; mov rax, [BYTE r15 + INTERRUPT]
            ; cmp DWORD [rax], 0
            ; jne extern miss
            ; cmp ecx, [BYTE r15 + DTABLE_LEN]
            ; jae extern miss
        );
        if hot {
            let routine = self.routines.hot;
            asm!(self.ops
                ; mov rax, [BYTE r15 + COUNTERS]
                ; sub WORD [rax + rcx * 2], 1
                ; jb extern routine
            );
        }
        asm!(self.ops
            ; mov rax, [BYTE r15 + DTABLE]
            ; mov eax, [rax + rcx * 4]
            ; add rax, [BYTE r15 + CODE_BASE]
            ; jmp rax
        );
    }

    fn count_hot(&mut self, target: u32, hot: DynamicLabel) {
        asm!(self.ops
            ; mov rax, [BYTE r15 + COUNTERS]
            ; sub WORD [rax + 2 * target as i32], 1
            ; jb =>hot
        );
    }

    fn record_target(&mut self, r: u8, slot: u32) {
        let done = self.ops.new_dynamic_label();
        let hr = h(r);
        asm!(self.ops
            ; mov rax, [BYTE r15 + PROFILE]
            ; add rax, (slot * 16) as i32
            ; cmp [rax], Rd(hr)
            ; je =>done
            ; mov rdx, [rax + 4]
            ; mov [rax + 8], rdx
            ; mov edx, [rax]
            ; mov [rax + 4], edx
            ; mov [rax], Rd(hr)
            ; =>done
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

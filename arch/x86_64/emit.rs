//! Per-operation emission: the [`Backend`] implementation for x86-64.

use super::encode::{self as enc, Alu, Mem};
use super::heap::{abandon_inline, alloc_inline};
use super::regs::{PAIRS, R14, R15, RAX, RCX, RDX, RSI, h};
use super::{X64, d8};
use crate::backend::{
    ArrayUse, Backend, BinOp, OutOfLine, Routines, SlowCall, TooLong, Val, block_assembler,
};
use crate::memory::layout::{
    ENTRY_BASE, ENTRY_LEN, ENTRY_SHIFT, HEAP_ENTRIES, HEAP_IDS, HEAP_PROGRAM, HEAP_SLAB,
    HEAP_SLAB_IDS, PREFETCH_MAX_LEN, PREFETCH_SHIFT, SLOT_LEN, SLOT_PREFETCH_AHEAD, SLOT_SHIFT,
};
use crate::runtime::{ExitKind, RtFn, off};
use crate::stats::Counter;
use dynasmrt::{DynamicLabel, DynasmApi, DynasmLabelApi};

const ENTRIES: i8 = d8(HEAP_ENTRIES);
const IDS: i8 = d8(HEAP_IDS);
const SLAB: i8 = d8(HEAP_SLAB);
const SLAB_IDS: i8 = d8(HEAP_SLAB_IDS);
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

/// The bound an element's offset is checked against (the array's length).
#[derive(Clone, Copy)]
enum Bound {
    /// A constant offset.
    Below(u32),
    /// An offset in this (zero-extended) host register.
    Reg(u8),
}

impl Elem {
    /// The element as a memory operand on the array's base register.
    fn at(self, base: u8) -> Mem {
        match self {
            Elem::Disp(d) => Mem::at(base, d),
            Elem::Index(i) => Mem::indexed(base, i, 4, 0),
        }
    }
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
                enc::mov_ri(&mut self.ops, scratch, x);
                scratch
            }
        }
    }

    /// Make the pair's registers hold the base and length of array `id` (unless cached),
    /// then check `offset` against the length unless known in bounds (`fail`). Returns the
    /// pair's base register and how to address the word: a constant displacement, or the
    /// host register holding the offset (a UM register, zero-extended, or rax).
    fn element(&mut self, id: Val, arr: ArrayUse, offset: Val, fail: DynamicLabel) -> (u8, Elem) {
        let (base, len) = PAIRS[arr.pair as usize];
        // A constant offset too large for a displacement (`late`) goes to rax, after
        // `describe` (which clobbers rax), and is checked after it too.
        let (elem, bound, late) = match offset {
            Val::Imm(k) if k < 1 << 28 => (
                Elem::Disp(4 * k as i32),
                (!arr.checked).then_some(Bound::Below(k)),
                None,
            ),
            Val::Imm(k) => (Elem::Index(RAX), Some(Bound::Reg(RAX)), Some(k)),
            Val::Reg(r) => (Elem::Index(h(r)), Some(Bound::Reg(h(r))), None),
        };
        match id {
            _ if arr.cached => {}
            // Array 0's entry is the heap's own.
            Val::Imm(0) => {
                let ops = &mut self.ops;
                enc::load(ops, len, Mem::at(R14, HEAP_PROGRAM + ENTRY_LEN));
                enc::load64(ops, base, Mem::at(R14, HEAP_PROGRAM + ENTRY_BASE));
            }
            _ if late.is_some() => self.describe(id, base, len, arr.prefetch, None, fail),
            _ => {
                // `describe` checks the bound on its way.
                self.describe(id, base, len, arr.prefetch, bound, fail);
                return (base, elem);
            }
        }
        if let Some(k) = late {
            asm!(self.ops ; mov eax, k as i32);
        }
        if let Some(b) = bound {
            self.out_of_bounds(len, b, fail);
        }
        (base, elem)
    }

    /// Branch to `fail` unless the offset `b` is below the length in `len`.
    fn out_of_bounds(&mut self, len: u8, b: Bound, fail: DynamicLabel) {
        match b {
            Bound::Below(k) => {
                enc::alu_ri(&mut self.ops, Alu::Cmp, len, k as i32);
                asm!(self.ops ; jbe =>fail);
            }
            Bound::Reg(r) => {
                enc::alu_rr(&mut self.ops, Alu::Cmp, r, len);
                asm!(self.ops ; jae =>fail);
            }
        }
    }

    /// Branch to `ok` when the offset `b` is below the length in `len`.
    fn in_bounds(&mut self, len: u8, b: Bound, ok: DynamicLabel) {
        match b {
            Bound::Below(k) => {
                enc::alu_ri(&mut self.ops, Alu::Cmp, len, k as i32);
                asm!(self.ops ; ja =>ok);
            }
            Bound::Reg(r) => {
                enc::alu_rr(&mut self.ops, Alu::Cmp, r, len);
                asm!(self.ops ; jb =>ok);
            }
        }
    }

    /// `base` and `len` := the base and length of array `id` (a register or a non-zero
    /// constant), from its slot (see `memory::Slab`): the length word, when not zero, is
    /// the length of the array in the slot, else the descriptor at the slot's start says
    /// where the array is; one cache line either way. With a bounded table the identifier
    /// is first checked against the table's length (`fail`), and one without a slot is
    /// described by its table entry. An array in a small buffer has the buffer cut two
    /// before its own prefetched (see `PREFETCH_MAX_LEN`). Clobbers rax.
    ///
    /// With a `bound`, the offset about to be accessed is also checked against the length
    /// (`fail`), on the slot's path with the same compare that tells an array in the slot
    /// from a descriptor: one branch instead of two for the common case.
    fn describe(
        &mut self,
        id: Val,
        base: u8,
        len: u8,
        prefetch: bool,
        bound: Option<Bound>,
        fail: DynamicLabel,
    ) {
        let done = self.ops.new_dynamic_label();
        let table = self.ops.new_dynamic_label();
        // Where the descriptor's and the table's paths check the bound.
        let check = self.ops.new_dynamic_label();
        let ops = &mut self.ops;
        let from = match (id, self.check_ids) {
            (Val::Reg(r), false) => h(r),
            (Val::Imm(x), false) => {
                enc::mov_ri(ops, base, x);
                base
            }
            (id, true) => {
                match id {
                    Val::Reg(r) => enc::mov_rr(ops, RAX, h(r)),
                    Val::Imm(x) => enc::mov_ri(ops, RAX, x),
                }
                asm!(ops
                    ; cmp eax, [BYTE r14 + IDS]
                    ; jae =>fail
                    ; cmp eax, [BYTE r14 + SLAB_IDS]
                    ; jae =>table
                );
                RAX
            }
        };
        if from != base {
            enc::mov_rr(ops, base, from);
        }
        enc::shl64_ri(ops, base, SLOT_SHIFT as u8);
        enc::add64_rm(ops, base, Mem::at(R14, SLAB.into()));
        if prefetch {
            // The slots of the identifiers two and three on (see `SLOT_PREFETCH_AHEAD`).
            enc::prefetch(ops, Mem::at(base, SLOT_PREFETCH_AHEAD));
        }
        enc::load(ops, len, Mem::at(base, SLOT_LEN));
        match bound {
            // One branch on the common path: an offset below a length word (which is then
            // not zero) is in the array in the slot. A length word that is not zero and not
            // above the offset is an access out of bounds.
            Some(b) => {
                self.in_bounds(len, b, done);
                let ops = &mut self.ops;
                enc::test_rr(ops, len, len);
                asm!(ops ; jnz =>fail);
            }
            None => {
                enc::test_rr(ops, len, len);
                asm!(ops ; jnz =>done);
            }
        }
        let ops = &mut self.ops;
        enc::load(ops, len, Mem::at(base, LEN.into()));
        enc::load64(ops, base, Mem::at(base, BASE.into()));
        // In a buffer of the arenas: prefetch the one cut two before it (see
        // `PREFETCH_MAX_LEN`). The length register's upper half is zero.
        const _: () = assert!(PREFETCH_SHIFT == 3);
        if prefetch {
            enc::alu_ri(ops, Alu::Cmp, len, PREFETCH_MAX_LEN as i32);
            asm!(ops
                ; ja =>check
            );
            enc::lea_scaled(ops, RAX, len, 8, 8);
            asm!(ops
                ; and eax, -16
                ; neg rax
            );
            enc::prefetch(ops, Mem::indexed(base, RAX, 1, 0));
        }
        if self.check_ids {
            asm!(ops
                ; jmp =>check
                ; =>table
                ; shl rax, ENTRY_SHIFT as i8
                ; add rax, [BYTE r14 + ENTRIES]
            );
            enc::load(ops, len, Mem::at(RAX, LEN.into()));
            enc::load64(ops, base, Mem::at(RAX, BASE.into()));
        }
        asm!(ops ; =>check);
        if let Some(b) = bound {
            self.out_of_bounds(len, b, fail);
        }
        asm!(self.ops ; =>done);
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

    fn routines(base: usize, counts_arrays: bool) -> (Vec<u8>, Routines) {
        super::routines::routines(base, counts_arrays)
    }

    fn new(base: usize, routines: &Routines, check_ids: bool) -> X64 {
        assert!(base.is_multiple_of(8), "blocks start 8-aligned");
        X64 {
            ops: block_assembler(base),
            routines: *routines,
            check_ids,
            out_of_line: Vec::new(),
        }
    }

    fn finish(mut self) -> Result<Vec<u8>, TooLong> {
        self.emit_out_of_line();
        self.ops
            .finalize()
            .map_err(|e| TooLong(format!("x86-64 block does not assemble: {e:?}")))
    }

    fn out_of_line(&mut self) -> &mut Vec<OutOfLine<DynamicLabel>> {
        &mut self.out_of_line
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
        let at = Mem::at(R15, off::counter(Counter::Instructions));
        enc::alu64_mi(&mut self.ops, Alu::Add, at, n as i32);
    }

    fn take_budget(&mut self, n: u32, exhausted: DynamicLabel) {
        enc::alu64_mi(
            &mut self.ops,
            Alu::Sub,
            Mem::at(R15, BUDGET.into()),
            n as i32,
        );
        asm!(self.ops ; jb =>exhausted);
    }

    fn branch_interrupted(&mut self, target: DynamicLabel) {
        enc::alu32_mi(&mut self.ops, Alu::Cmp, Mem::at(R15, INTERRUPT.into()), 0);
        asm!(self.ops ; jne =>target);
    }

    fn jump_unless_interrupted(&mut self, target: DynamicLabel, interrupted: DynamicLabel) {
        enc::alu32_mi(&mut self.ops, Alu::Cmp, Mem::at(R15, INTERRUPT.into()), 0);
        asm!(self.ops
            ; je =>target
            ; jmp =>interrupted
        );
    }

    fn count_event(&mut self, field: i32) {
        enc::alu64_mi(&mut self.ops, Alu::Add, Mem::at(R15, field), 1);
    }

    fn load_imm(&mut self, r: u8, value: u32) {
        enc::mov_ri(&mut self.ops, h(r), value);
    }

    fn mov(&mut self, a: u8, b: u8) {
        enc::mov_rr(&mut self.ops, h(a), h(b));
    }

    fn cmov(&mut self, a: u8, b: Val, c: u8) {
        let hb = self.reg_of(b, RAX);
        enc::test_rr(&mut self.ops, h(c), h(c));
        enc::cmovnz(&mut self.ops, h(a), hb);
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
                            enc::alu_ri(&mut self.ops, Alu::Add, ha, k as i32);
                        } else {
                            enc::lea(&mut self.ops, ha, Mem::at(h(x), k as i32));
                        }
                    }
                    // Here `y` is `a` only if `x` is too (the order above).
                    (BinOp::Add, Val::Reg(y)) => {
                        if x == a {
                            enc::alu_rr(&mut self.ops, Alu::Add, ha, h(y));
                        } else {
                            enc::lea(&mut self.ops, ha, Mem::indexed(h(x), h(y), 1, 0));
                        }
                    }
                    (_, Val::Imm(k)) => {
                        enc::imul_rri(&mut self.ops, ha, h(x), k as i32);
                    }
                    (_, Val::Reg(y)) => {
                        if x != a {
                            enc::mov_rr(&mut self.ops, ha, h(x));
                        }
                        enc::imul_rr(&mut self.ops, ha, h(y));
                    }
                }
            }
            BinOp::Nand | BinOp::And if matches!((b, c), (Val::Reg(_), Val::Reg(_))) => {
                let (Val::Reg(x), Val::Reg(y)) = (b, c) else {
                    unreachable!("matched above")
                };
                let (hx, hy) = (h(x), h(y));
                // Commutative: into `a` directly (`x & x` is `x`).
                let ops = &mut self.ops;
                if hx == ha {
                    if hy != ha {
                        enc::alu_rr(ops, Alu::And, ha, hy);
                    }
                } else if hy == ha {
                    enc::alu_rr(ops, Alu::And, ha, hx);
                } else {
                    enc::mov_rr(ops, ha, hx);
                    if hy != hx {
                        enc::alu_rr(ops, Alu::And, ha, hy);
                    }
                }
                if op == BinOp::Nand {
                    enc::not(ops, ha);
                }
            }
            // A register and a constant: into `a` directly.
            BinOp::Nand | BinOp::And
                if matches!(
                    (b, c),
                    (Val::Reg(_), Val::Imm(_)) | (Val::Imm(_), Val::Reg(_))
                ) =>
            {
                let ((Val::Reg(x), Val::Imm(k)) | (Val::Imm(k), Val::Reg(x))) = (b, c) else {
                    unreachable!("matched above")
                };
                let ops = &mut self.ops;
                if h(x) != ha {
                    enc::mov_rr(ops, ha, h(x));
                }
                enc::alu_ri(ops, Alu::And, ha, k as i32);
                if op == BinOp::Nand {
                    enc::not(ops, ha);
                }
            }
            // Two constants (left unfolded): through rax.
            BinOp::Nand | BinOp::And => {
                let hb = self.reg_of(b, RAX);
                if hb != RAX {
                    enc::mov_rr(&mut self.ops, RAX, hb);
                }
                match c {
                    Val::Imm(k) => enc::alu_ri(&mut self.ops, Alu::And, RAX, k as i32),
                    Val::Reg(r) => enc::alu_rr(&mut self.ops, Alu::And, RAX, h(r)),
                }
                if op == BinOp::Nand {
                    asm!(self.ops ; not eax);
                }
                enc::mov_rr(&mut self.ops, ha, RAX);
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
                Val::Reg(r) => enc::mov_rr(&mut self.ops, h(a), h(r)),
                Val::Imm(x) => enc::mov_ri(&mut self.ops, h(a), x),
            }
            if s > 0 {
                enc::shr_ri(&mut self.ops, h(a), s as u8);
            }
            return;
        }
        let hc = match c {
            Val::Reg(r) => {
                if let Some(fail) = fail {
                    enc::test_rr(&mut self.ops, h(r), h(r));
                    asm!(self.ops ; jz =>fail);
                }
                h(r)
            }
            Val::Imm(k) => {
                asm!(self.ops ; mov ecx, k as i32);
                RCX
            }
        };
        match b {
            Val::Reg(r) => enc::mov_rr(&mut self.ops, RAX, h(r)),
            Val::Imm(k) => asm!(self.ops ; mov eax, k as i32),
        }
        asm!(self.ops ; xor edx, edx);
        enc::div(&mut self.ops, hc);
        enc::mov_rr(&mut self.ops, h(a), RAX);
    }

    fn select(&mut self, a: u8, cond: u8, t: Val, f: Val) {
        // Only eax is scratch here (the pairs' registers may hold arrays).
        let hc = h(cond);
        match (t, f) {
            (Val::Reg(rt), _) => {
                match f {
                    Val::Reg(rf) => enc::mov_rr(&mut self.ops, RAX, h(rf)),
                    Val::Imm(k) => asm!(self.ops ; mov eax, k as i32),
                }
                enc::test_rr(&mut self.ops, hc, hc);
                enc::cmovnz(&mut self.ops, RAX, h(rt));
            }
            (Val::Imm(kt), Val::Reg(rf)) => {
                asm!(self.ops ; mov eax, kt as i32);
                enc::test_rr(&mut self.ops, hc, hc);
                enc::cmovz(&mut self.ops, RAX, h(rf));
            }
            (Val::Imm(kt), Val::Imm(kf)) => {
                // eax = f ^ ((t ^ f) & -(cond != 0))
                asm!(self.ops ; xor eax, eax);
                enc::test_rr(&mut self.ops, hc, hc);
                asm!(self.ops
                    ; setnz al
                    ; neg eax
                );
                enc::alu_ri(&mut self.ops, Alu::And, RAX, (kt ^ kf) as i32);
                enc::alu_ri(&mut self.ops, Alu::Xor, RAX, kf as i32);
            }
        }
        enc::mov_rr(&mut self.ops, h(a), RAX);
    }

    fn may_hold_arrays(&self) -> bool {
        !self.check_ids
    }

    fn hold_array(&mut self, id: Val, pair: u8, from: Option<u8>) {
        let (base, len) = PAIRS[pair as usize];
        match from {
            Some(p) => {
                let (from_base, from_len) = PAIRS[p as usize];
                enc::mov64_rr(&mut self.ops, base, from_base);
                enc::mov_rr(&mut self.ops, len, from_len);
            }
            None => {
                assert!(
                    !self.check_ids,
                    "an array held without identifier checks only"
                );
                // Without identifier checks `describe` has no way to fail.
                let never = self.ops.new_dynamic_label();
                self.describe(id, base, len, true, None, never);
            }
        }
    }

    fn index(&mut self, a: u8, b: Val, c: Val, arr: ArrayUse, fail: DynamicLabel) {
        let (base, elem) = self.element(b, arr, c, fail);
        enc::load(&mut self.ops, h(a), elem.at(base));
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
        let m = elem.at(base);
        match c {
            Val::Imm(v) => enc::store_imm(&mut self.ops, m, v),
            Val::Reg(r) => enc::store(&mut self.ops, m, h(r)),
        }
        let Some(smc) = smc else { return };
        let done = self.ops.new_dynamic_label();
        match a {
            Val::Imm(0) => {}
            Val::Imm(_) => return,
            Val::Reg(r) => {
                enc::test_rr(&mut self.ops, h(r), h(r));
                asm!(self.ops ; jnz =>done);
            }
        }
        match elem {
            Elem::Disp(d) => {
                asm!(self.ops ; mov rax, [BYTE r15 + CODEMAP]);
                enc::cmp8_mi(&mut self.ops, Mem::at(RAX, d / 4), 0);
            }
            Elem::Index(RAX) => asm!(self.ops
                ; add rax, [BYTE r15 + CODEMAP]
                ; cmp BYTE [rax], 0
            ),
            Elem::Index(i) => {
                asm!(self.ops ; mov rax, [BYTE r15 + CODEMAP]);
                enc::cmp8_mi(&mut self.ops, Mem::indexed(RAX, i, 1, 0), 0);
            }
        }
        asm!(self.ops
            ; jne =>smc
            ; =>done
        );
    }

    fn call(&mut self, f: RtFn, arg: Val, result: Option<u8>, fail: DynamicLabel) {
        match arg {
            Val::Reg(r) => enc::mov_rr(&mut self.ops, RSI, h(r)),
            Val::Imm(k) => asm!(self.ops ; mov esi, k as i32),
        }
        self.call_routine(f, fail);
        if let Some(r) = result {
            enc::mov_rr(&mut self.ops, h(r), RAX);
        }
    }

    fn abandon(&mut self, id: Val, fail: DynamicLabel) {
        let Val::Reg(r) = id else {
            return self.call(RtFn::Abandon, id, None, fail);
        };
        let slow = self.ops.new_dynamic_label();
        let counts = self.routines.counts_arrays;
        abandon_inline(&mut self.ops, h(r), self.check_ids, counts, slow);
        self.call_out_of_line(SlowCall::Abandon { id: r }, slow, fail);
    }

    fn alloc_small(&mut self, a: u8, words: u32, fail: DynamicLabel) {
        let slow = self.ops.new_dynamic_label();
        let counts = self.routines.counts_arrays;
        alloc_inline(&mut self.ops, words, self.check_ids, counts, slow);
        enc::mov_rr(&mut self.ops, h(a), RDX);
        self.call_out_of_line(SlowCall::Alloc { a, words }, slow, fail);
    }

    fn branch_zero(&mut self, r: u8, target: DynamicLabel) {
        enc::test_rr(&mut self.ops, h(r), h(r));
        asm!(self.ops ; jz =>target);
    }

    fn branch_nonzero(&mut self, r: u8, target: DynamicLabel) {
        enc::test_rr(&mut self.ops, h(r), h(r));
        asm!(self.ops ; jnz =>target);
    }

    fn branch_eq(&mut self, r: u8, value: u32, target: DynamicLabel) {
        enc::alu_ri(&mut self.ops, Alu::Cmp, h(r), value as i32);
        asm!(self.ops ; je =>target);
    }

    fn branch_ne(&mut self, r: u8, value: u32, target: DynamicLabel) {
        enc::alu_ri(&mut self.ops, Alu::Cmp, h(r), value as i32);
        asm!(self.ops ; jne =>target);
    }

    fn branch_and(&mut self, r: u8, mask: Val, target: DynamicLabel) {
        match mask {
            Val::Imm(k) => enc::test_ri(&mut self.ops, h(r), k),
            Val::Reg(m) => enc::test_rr(&mut self.ops, h(r), h(m)),
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
            Val::Reg(r) => enc::mov_rr(&mut self.ops, RCX, h(r)),
            Val::Imm(k) => asm!(self.ops ; mov ecx, k as i32),
        }
        let miss = self.routines.miss;
        enc::alu32_mi(&mut self.ops, Alu::Cmp, Mem::at(R15, INTERRUPT.into()), 0);
        asm!(self.ops
            ; jne extern miss
            ; cmp ecx, [BYTE r15 + DTABLE_LEN]
            ; jae extern miss
        );
        if hot {
            let routine = self.routines.hot;
            asm!(self.ops ; mov rax, [BYTE r15 + COUNTERS]);
            // The 1-byte immediate: a 16-bit one after the operand-size prefix changes the
            // instruction's length, which stalls Intel's decoders.
            enc::dec16_m(&mut self.ops, Mem::indexed(RAX, RCX, 2, 0));
            asm!(self.ops ; jb extern routine);
        }
        asm!(self.ops
            ; mov rax, [BYTE r15 + DTABLE]
            ; mov eax, [rax + rcx * 4]
            ; add rax, [BYTE r15 + CODE_BASE]
            ; jmp rax
        );
    }

    fn count_hot(&mut self, target: u32, hot: DynamicLabel) {
        asm!(self.ops ; mov rax, [BYTE r15 + COUNTERS]);
        enc::dec16_m(&mut self.ops, Mem::at(RAX, 2 * target as i32));
        asm!(self.ops ; jb =>hot);
    }

    fn record_target(&mut self, r: u8, slot: u32) {
        let done = self.ops.new_dynamic_label();
        let hr = h(r);
        asm!(self.ops ; mov rax, [BYTE r15 + PROFILE]);
        enc::alu64_ri(&mut self.ops, Alu::Add, RAX, (slot * 16) as i32);
        enc::cmp_rm(&mut self.ops, hr, Mem::at(RAX, 0));
        asm!(self.ops
            ; je =>done
            ; mov rdx, [rax + 4]
            ; mov [rax + 8], rdx
            ; mov edx, [rax]
            ; mov [rax + 4], edx
        );
        enc::store(&mut self.ops, Mem::at(RAX, 0), hr);
        asm!(self.ops ; =>done);
    }

    fn exit(&mut self, kind: ExitKind, pc: u32, a: u32, b: u32) {
        debug_assert!(a < 1 << 24, "exit field a fits in 24 bits");
        // (Flags are dead at an exit.)
        asm!(self.ops ; mov ecx, pc as i32);
        if b == 0 {
            asm!(self.ops ; xor edx, edx);
        } else {
            asm!(self.ops ; mov edx, b as i32);
        }
        if a == 0 {
            let routine = self.routines.exit_as[kind as usize];
            asm!(self.ops ; jmp extern routine);
        } else {
            let exit_with = self.routines.exit_with;
            asm!(self.ops
                ; mov esi, (kind as u32 | a << 8) as i32
                ; jmp extern exit_with
            );
        }
    }
}

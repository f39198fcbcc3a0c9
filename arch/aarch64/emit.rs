//! Per-operation emission: the [`Backend`] implementation for AArch64.

use super::heap::{abandon_inline, alloc_inline};
use super::regs::{PAIRS, h};
use super::{A64, load_w, load_x, logical_imm};
use crate::backend::{
    ArrayUse, Backend, BinOp, OutOfLine, Routines, SlowCall, TooLong, Val, block_assembler,
};
use crate::memory::layout::{
    ENTRY_BASE, ENTRY_LEN, ENTRY_SHIFT, HEAP_ENTRIES, HEAP_IDS, HEAP_PROGRAM, HEAP_SLAB_IDS,
    PREFETCH_MAX_LEN, PREFETCH_SHIFT, SLOT_LEN, SLOT_PREFETCH_AHEAD, SLOT_SHIFT,
};
use crate::runtime::{ExitKind, RtFn, off};
use crate::stats::Counter;
use dynasmrt::{DynamicLabel, DynasmApi, DynasmLabelApi};

const ENTRIES: u32 = HEAP_ENTRIES as u32;
const IDS: u32 = HEAP_IDS as u32;
const PROGRAM: u32 = HEAP_PROGRAM as u32;
const SLAB_IDS: u32 = HEAP_SLAB_IDS as u32;
const BASE: u32 = ENTRY_BASE as u32;
const LEN: u32 = ENTRY_LEN as u32;

/// The bound an element's offset is checked against (the array's length).
#[derive(Clone, Copy)]
enum Bound {
    /// A constant offset below 4096 (an immediate).
    Below(u32),
    /// An offset in this host register.
    Reg(u8),
}

impl A64 {
    /// Compare UM register `r` with `value` (the Z flag, for `b.eq` or `b.ne` only: a
    /// small negative `value` is compared by adding its negation).
    fn compare(&mut self, r: u8, value: u32) {
        let neg = value.wrapping_neg();
        if value < 4096 {
            asm!(self.ops ; cmp WSP(h(r)), value);
        } else if neg < 4096 {
            asm!(self.ops ; cmn WSP(h(r)), neg);
        } else {
            load_w(&mut self.ops, 9, value);
            asm!(self.ops ; cmp W(h(r)), w9);
        }
    }

    /// The host register that holds `v`: its own, or `scratch` loaded with the constant.
    fn reg_of(&mut self, v: Val, scratch: u8) -> u8 {
        match v {
            Val::Reg(r) => h(r),
            Val::Imm(x) => {
                load_w(&mut self.ops, scratch, x);
                scratch
            }
        }
    }

    /// `fail` unless the identifier in `hid` is below the table's length (only for a
    /// bounded table).
    fn check_id(&mut self, hid: u8, fail: DynamicLabel) {
        if self.check_ids {
            asm!(self.ops
                ; ldr w11, [x28, IDS]
                ; cmp W(hid), w11
                ; b.hs =>fail
            );
        }
    }

    /// `base` and `len` := the base and length of the array whose identifier is in `hid`,
    /// from its slot (see `memory::Slab`): the length word, when not zero, is the length of
    /// the array in the slot, else the descriptor at the slot's start says where the array
    /// is; one cache line either way. With a bounded table the identifier is first checked
    /// against the table's length (`fail`), and one without a slot is described by its
    /// table entry. Clobbers x9, x11.
    ///
    /// With a `bound`, the offset about to be accessed is also checked against the length
    /// (`fail`), on the slot's path with the same compare that tells an array in the slot
    /// from a descriptor: one branch instead of two for the common case.
    fn describe(
        &mut self,
        hid: u8,
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
        if self.check_ids {
            self.check_id(hid, fail);
            asm!(self.ops
                ; ldr w11, [x28, SLAB_IDS]
                ; cmp W(hid), w11
                ; b.hs =>table
            );
        }
        asm!(self.ops
            ; ubfiz X(base), X(hid), SLOT_SHIFT, 32
            ; add X(base), X(base), x18
        );
        if prefetch {
            // The slots of the identifiers two and three on (see `SLOT_PREFETCH_AHEAD`).
            asm!(self.ops ; prfum 0, [X(base), SLOT_PREFETCH_AHEAD]);
        }
        asm!(self.ops ; ldr W(len), [X(base), SLOT_LEN as u32]);
        match bound {
            // One branch on the common path: an offset below a length word (which is then
            // not zero) is in the array in the slot. A length word that is not zero and not
            // above the offset is an access out of bounds.
            Some(b) => {
                self.in_bounds(len, b, done);
                // (Offset 0: a length word that is not 0 went to `done` already.)
                if !matches!(b, Bound::Below(0)) {
                    asm!(self.ops ; cbnz W(len), =>fail);
                }
            }
            None => asm!(self.ops ; cbnz W(len), =>done),
        }
        asm!(self.ops
            ; ldr W(len), [X(base), LEN]
            ; ldr X(base), [X(base), BASE]
        );
        if prefetch {
            // In a buffer of the arenas: prefetch the one cut two before it (see
            // `PREFETCH_MAX_LEN`); 0 is PLDL1KEEP (for loads, into L1).
            asm!(self.ops
                ; cmp WSP(len), PREFETCH_MAX_LEN
                ; b.hi =>check
                ; add w9, WSP(len), 1
                ; and w9, w9, 0xFFFF_FFFE
                ; neg x9, x9, lsl PREFETCH_SHIFT
                ; prfm 0, [X(base), x9]
            );
        }
        if self.check_ids {
            asm!(self.ops
                ; b =>check
                ; =>table
                ; ldr x9, [x28, ENTRIES]
                ; add x9, x9, W(hid), uxtw ENTRY_SHIFT
                ; ldr W(len), [x9, LEN]
                ; ldr X(base), [x9, BASE]
            );
        }
        asm!(self.ops ; =>check);
        if let Some(b) = bound {
            self.out_of_bounds(len, b, fail);
        }
        asm!(self.ops ; =>done);
    }

    /// Branch to `fail` unless the offset `b` is below the length in `len`.
    fn out_of_bounds(&mut self, len: u8, b: Bound, fail: DynamicLabel) {
        match b {
            // Offset 0 is out of bounds only of an empty array.
            Bound::Below(0) => asm!(self.ops ; cbz W(len), =>fail),
            Bound::Below(k) => asm!(self.ops
                ; cmp WSP(len), k
                ; b.ls =>fail
            ),
            Bound::Reg(r) => asm!(self.ops
                ; cmp W(r), W(len)
                ; b.hs =>fail
            ),
        }
    }

    /// Branch to `ok` when the offset `b` is below the length in `len`.
    fn in_bounds(&mut self, len: u8, b: Bound, ok: DynamicLabel) {
        match b {
            Bound::Below(0) => asm!(self.ops ; cbnz W(len), =>ok),
            Bound::Below(k) => asm!(self.ops
                ; cmp WSP(len), k
                ; b.hi =>ok
            ),
            Bound::Reg(r) => asm!(self.ops
                ; cmp W(r), W(len)
                ; b.lo =>ok
            ),
        }
    }

    /// Make the pair's registers hold the base and length of array `id` (unless cached),
    /// then check `offset` against the length unless known in bounds (`fail`). Returns the
    /// pair's base register and the constant offset when it can be an immediate, else the
    /// register holding the offset.
    fn element(
        &mut self,
        id: Val,
        arr: ArrayUse,
        offset: Val,
        fail: DynamicLabel,
    ) -> (u8, Result<u32, u8>) {
        let (base, len) = PAIRS[arr.pair as usize];
        // The offset's register is loaded first: `describe` checks it on its way (and
        // leaves x14 alone).
        let (elem, bound) = match offset {
            Val::Imm(k) if k < 4096 => (Ok(k), (!arr.checked).then_some(Bound::Below(k))),
            _ => {
                let ho = self.reg_of(offset, 14);
                (Err(ho), Some(Bound::Reg(ho)))
            }
        };
        match id {
            _ if arr.cached => {}
            // Array 0's entry is the heap's own.
            Val::Imm(0) => asm!(self.ops
                ; ldr W(len), [x28, PROGRAM + LEN]
                ; ldr X(base), [x28, PROGRAM + BASE]
            ),
            _ => {
                let hid = self.reg_of(id, 10);
                self.describe(hid, base, len, arr.prefetch, bound, fail);
                return (base, elem);
            }
        }
        if let Some(b) = bound {
            self.out_of_bounds(len, b, fail);
        }
        (base, elem)
    }

    /// `wa := wb op k` in immediate forms when `k` encodes as one; false (nothing emitted)
    /// when it does not.
    fn binop_imm(&mut self, op: BinOp, ha: u8, hb: u8, k: u32) -> bool {
        let neg = k.wrapping_neg();
        let high = |x: u32| x.trailing_zeros() >= 12 && x < 1 << 24;
        match op {
            BinOp::Add if k < 4096 => asm!(self.ops ; add WSP(ha), WSP(hb), k),
            BinOp::Add if neg < 4096 => asm!(self.ops ; sub WSP(ha), WSP(hb), neg),
            BinOp::Add if high(k) => asm!(self.ops ; add WSP(ha), WSP(hb), k >> 12, lsl 12),
            BinOp::Add if high(neg) => {
                asm!(self.ops ; sub WSP(ha), WSP(hb), neg >> 12, lsl 12)
            }
            BinOp::And if logical_imm(k) => asm!(self.ops ; and WSP(ha), W(hb), k),
            BinOp::Nand if logical_imm(k) => asm!(self.ops
                ; and WSP(ha), W(hb), k
                ; mvn W(ha), W(ha)
            ),
            _ => return false,
        }
        true
    }

    /// Call the routine of `f` (argument in w1); `fail` on failure.
    fn call_routine(&mut self, f: RtFn, fail: DynamicLabel) {
        let routine = self.routines.call[f.index()];
        asm!(self.ops
            ; bl extern routine
            ; lsr x9, x0, 32
            ; cbnz x9, =>fail
        );
    }
}

impl Backend for A64 {
    const NAME: &'static str = "aarch64";
    /// Below the +-128 MiB reach of `b` and `bl`, so every block reaches the routines at
    /// the start of code memory and every other block.
    const CODE_CAPACITY: usize = 120 << 20;
    /// With the largest operations (about 30 instructions) a block of this many stays far
    /// below the +-1 MiB reach of the conditional branches to its stubs; a block that does
    /// not is translated again, shorter.
    const MAX_BLOCK_OPS: u32 = 2048;

    type Label = DynamicLabel;

    fn routines(base: usize, counts_arrays: bool) -> (Vec<u8>, Routines) {
        super::routines::routines(base, counts_arrays)
    }

    fn new(base: usize, routines: &Routines, check_ids: bool) -> A64 {
        assert!(base.is_multiple_of(8), "blocks start 8-aligned");
        A64 {
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
            .map_err(|e| TooLong(format!("aarch64 block does not assemble: {e:?}")))
    }

    fn out_of_line(&mut self) -> &mut Vec<OutOfLine<DynamicLabel>> {
        &mut self.out_of_line
    }

    fn patch_jump(word: usize, old: u64, at: usize, target: usize) -> u64 {
        let pos = at - word;
        assert!(
            pos == 0 || pos == 4,
            "an aligned instruction inside the word"
        );
        let delta = (target as i64 - at as i64) / 4;
        assert!(
            (-(1 << 25)..(1 << 25)).contains(&delta),
            "branch within code memory"
        );
        let b = 0x1400_0000u32 | (delta as u32 & 0x03FF_FFFF);
        let mut bytes = old.to_le_bytes();
        bytes[pos..pos + 4].copy_from_slice(&b.to_le_bytes());
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
        let at = off::counter(Counter::Instructions) as u32;
        load_w(&mut self.ops, 10, n);
        asm!(self.ops
            ; ldr x9, [x27, at]
            ; add x9, x9, w10, uxtw
            ; str x9, [x27, at]
        );
    }

    fn take_budget(&mut self, n: u32, exhausted: DynamicLabel) {
        let budget = off::BUDGET as u32;
        load_w(&mut self.ops, 10, n);
        asm!(self.ops
            ; ldr x9, [x27, budget]
            ; subs x9, x9, x10
            ; str x9, [x27, budget]
            ; b.lo =>exhausted
        );
    }

    fn branch_interrupted(&mut self, target: DynamicLabel) {
        asm!(self.ops
            ; ldr w9, [x27, off::INTERRUPT as u32]
            ; cbnz w9, =>target
        );
    }

    fn jump_unless_interrupted(&mut self, target: DynamicLabel, interrupted: DynamicLabel) {
        asm!(self.ops
            ; ldr w9, [x27, off::INTERRUPT as u32]
            ; cbz w9, =>target
            ; b =>interrupted
        );
    }

    fn count_event(&mut self, field: i32) {
        asm!(self.ops
            ; ldr x9, [x27, field as u32]
            ; add x9, x9, 1
            ; str x9, [x27, field as u32]
        );
    }

    fn load_imm(&mut self, r: u8, value: u32) {
        load_w(&mut self.ops, h(r), value);
    }

    fn mov(&mut self, a: u8, b: u8) {
        asm!(self.ops ; mov W(h(a)), W(h(b)));
    }

    fn cmov(&mut self, a: u8, b: Val, c: u8) {
        let hb = self.reg_of(b, 9);
        asm!(self.ops
            ; cmp W(h(c)), wzr
            ; csel W(h(a)), W(hb), W(h(a)), ne
        );
    }

    fn binop(&mut self, op: BinOp, a: u8, b: Val, c: Val) {
        let ha = h(a);
        // All three are commutative: a constant goes second, as an immediate if it encodes.
        let (b, c) = match (b, c) {
            (Val::Imm(_), Val::Reg(_)) => (c, b),
            _ => (b, c),
        };
        if let (Val::Reg(rb), Val::Imm(k)) = (b, c)
            && self.binop_imm(op, ha, h(rb), k)
        {
            return;
        }
        if let (BinOp::Nand, Val::Reg(x), Val::Reg(y)) = (op, b, c)
            && x == y
        {
            asm!(self.ops ; mvn W(ha), W(h(x)));
            return;
        }
        let hb = self.reg_of(b, 9);
        let hc = self.reg_of(c, 10);
        match op {
            BinOp::Add => asm!(self.ops ; add W(ha), W(hb), W(hc)),
            BinOp::Mul => asm!(self.ops ; mul W(ha), W(hb), W(hc)),
            BinOp::Nand => asm!(self.ops
                ; and W(ha), W(hb), W(hc)
                ; mvn W(ha), W(ha)
            ),
            BinOp::And => asm!(self.ops ; and W(ha), W(hb), W(hc)),
        }
    }

    fn div(&mut self, a: u8, b: Val, c: Val, fail: Option<DynamicLabel>) {
        // By a power of two: a shift.
        if let Val::Imm(k) = c
            && k.is_power_of_two()
        {
            let hb = self.reg_of(b, 9);
            let s = k.trailing_zeros();
            asm!(self.ops ; lsr W(h(a)), W(hb), s);
            return;
        }
        let hc = match c {
            Val::Reg(r) => {
                if let Some(fail) = fail {
                    asm!(self.ops ; cbz W(h(r)), =>fail);
                }
                h(r)
            }
            Val::Imm(k) => {
                load_w(&mut self.ops, 10, k);
                10
            }
        };
        let hb = self.reg_of(b, 9);
        asm!(self.ops ; udiv W(h(a)), W(hb), W(hc));
    }

    fn select(&mut self, a: u8, cond: u8, t: Val, f: Val) {
        let ht = self.reg_of(t, 9);
        let hf = self.reg_of(f, 10);
        asm!(self.ops
            ; cmp W(h(cond)), wzr
            ; csel W(h(a)), W(ht), W(hf), ne
        );
    }

    fn may_hold_arrays(&self) -> bool {
        !self.check_ids
    }

    fn hold_array(&mut self, id: Val, pair: u8, from: Option<u8>) {
        let (base, len) = PAIRS[pair as usize];
        match from {
            Some(p) => {
                let (from_base, from_len) = PAIRS[p as usize];
                asm!(self.ops
                    ; mov X(base), X(from_base)
                    ; mov W(len), W(from_len)
                );
            }
            None => {
                assert!(
                    !self.check_ids,
                    "an array held without identifier checks only"
                );
                // Without identifier checks `describe` has no way to fail.
                let never = self.ops.new_dynamic_label();
                let hid = self.reg_of(id, 10);
                self.describe(hid, base, len, true, None, never);
            }
        }
    }

    fn index(&mut self, a: u8, b: Val, c: Val, arr: ArrayUse, fail: DynamicLabel) {
        match self.element(b, arr, c, fail) {
            (base, Ok(k)) => asm!(self.ops ; ldr W(h(a)), [X(base), 4 * k]),
            (base, Err(ho)) => asm!(self.ops ; ldr W(h(a)), [X(base), W(ho), uxtw 2]),
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
        let (base, k) = self.element(a, arr, b, fail);
        let hc = self.reg_of(c, 15);
        match k {
            Ok(k) => asm!(self.ops ; str W(hc), [X(base), 4 * k]),
            Err(ho) => asm!(self.ops ; str W(hc), [X(base), W(ho), uxtw 2]),
        }
        let Some(smc) = smc else { return };
        let done = self.ops.new_dynamic_label();
        match a {
            Val::Imm(0) => {}
            Val::Imm(_) => return,
            Val::Reg(r) => asm!(self.ops ; cbnz W(h(r)), =>done),
        }
        asm!(self.ops ; ldr x9, [x27, off::CODEMAP as u32]);
        match k {
            Ok(k) => asm!(self.ops ; ldrb w10, [x9, k]),
            Err(ho) => asm!(self.ops ; ldrb w10, [x9, W(ho), uxtw]),
        }
        asm!(self.ops
            ; cbnz w10, =>smc
            ; =>done
        );
    }

    fn call(&mut self, f: RtFn, arg: Val, result: Option<u8>, fail: DynamicLabel) {
        match arg {
            Val::Reg(r) => asm!(self.ops ; mov w1, W(h(r))),
            Val::Imm(k) => load_w(&mut self.ops, 1, k),
        }
        self.call_routine(f, fail);
        if let Some(r) = result {
            asm!(self.ops ; mov W(h(r)), w0);
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
        asm!(self.ops ; mov W(h(a)), w10);
        self.call_out_of_line(SlowCall::Alloc { a, words }, slow, fail);
    }

    fn branch_zero(&mut self, r: u8, target: DynamicLabel) {
        asm!(self.ops ; cbz W(h(r)), =>target);
    }

    fn branch_nonzero(&mut self, r: u8, target: DynamicLabel) {
        asm!(self.ops ; cbnz W(h(r)), =>target);
    }

    fn branch_eq(&mut self, r: u8, value: u32, target: DynamicLabel) {
        self.compare(r, value);
        asm!(self.ops ; b.eq =>target);
    }

    fn branch_ne(&mut self, r: u8, value: u32, target: DynamicLabel) {
        self.compare(r, value);
        asm!(self.ops ; b.ne =>target);
    }

    fn branch_and(&mut self, r: u8, mask: Val, target: DynamicLabel) {
        if let Val::Imm(k) = mask
            && logical_imm(k)
        {
            asm!(self.ops
                ; tst W(h(r)), k
                ; b.ne =>target
            );
            return;
        }
        let hm = self.reg_of(mask, 9);
        asm!(self.ops
            ; tst W(h(r)), W(hm)
            ; b.ne =>target
        );
    }

    fn jump(&mut self, target: DynamicLabel) {
        asm!(self.ops ; b =>target);
    }

    fn jump_patchable(&mut self, stub: DynamicLabel) -> usize {
        let at = self.offset();
        asm!(self.ops ; b =>stub);
        at
    }

    fn jump_dispatch(&mut self, target: Val, count: bool, hot: bool) {
        if count {
            self.count_event(off::counter(Counter::Lookups));
        }
        match target {
            Val::Reg(r) => asm!(self.ops ; mov w9, W(h(r))),
            Val::Imm(k) => load_w(&mut self.ops, 9, k),
        }
        let found = self.ops.new_dynamic_label();
        let to_miss = self.ops.new_dynamic_label();
        let miss = self.routines.miss;
        asm!(self.ops
            ; ldr w10, [x27, off::INTERRUPT as u32]
            ; cbnz w10, =>to_miss
            ; ldr w10, [x27, off::DTABLE_LEN as u32]
            ; cmp w9, w10
            ; b.lo =>found
            ; =>to_miss
            ; b extern miss
            ; =>found
        );
        if hot {
            let routine = self.routines.hot;
            let cool = self.ops.new_dynamic_label();
            asm!(self.ops
                ; ldr x10, [x27, off::COUNTERS as u32]
                ; add x10, x10, w9, uxtw 1
                ; ldrh w11, [x10]
                ; subs w11, w11, 1
                ; strh w11, [x10]
                ; b.hs =>cool
                ; b extern routine
                ; =>cool
            );
        }
        asm!(self.ops
            ; ldr x10, [x27, off::DTABLE as u32]
            ; ldr w10, [x10, w9, uxtw 2]
            ; ldr x11, [x27, off::CODE_BASE as u32]
            ; add x10, x11, x10
            ; br x10
        );
    }

    fn count_hot(&mut self, target: u32, hot: DynamicLabel) {
        asm!(self.ops ; ldr x10, [x27, off::COUNTERS as u32]);
        load_x(&mut self.ops, 11, 2 * target as u64);
        asm!(self.ops
            ; add x10, x10, x11
            ; ldrh w11, [x10]
            ; subs w11, w11, 1
            ; strh w11, [x10]
            ; b.lo =>hot
        );
    }

    fn record_target(&mut self, r: u8, slot: u32) {
        let done = self.ops.new_dynamic_label();
        let hr = h(r);
        asm!(self.ops ; ldr x10, [x27, off::PROFILE as u32]);
        load_x(&mut self.ops, 11, 16 * slot as u64);
        asm!(self.ops
            ; add x10, x10, x11
            ; ldr w11, [x10]
            ; cmp w11, W(hr)
            ; b.eq =>done
            ; ldur x14, [x10, 4]
            ; stur x14, [x10, 8]
            ; str w11, [x10, 4]
            ; str W(hr), [x10]
            ; =>done
        );
    }

    fn exit(&mut self, kind: ExitKind, pc: u32, a: u32, b: u32) {
        debug_assert!(a < 1 << 24, "exit field a fits in 24 bits");
        load_w(&mut self.ops, 9, pc);
        load_w(&mut self.ops, 10, b);
        if a == 0 {
            let routine = self.routines.exit_as[kind as usize];
            asm!(self.ops ; b extern routine);
        } else {
            load_w(&mut self.ops, 11, kind as u32 | a << 8);
            let exit_with = self.routines.exit_with;
            asm!(self.ops ; b extern exit_with);
        }
    }
}

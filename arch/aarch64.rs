//! AArch64 instruction emission (AAPCS64). Only encoding lives here; what to emit is decided
//! in `src/translator.rs`.
//!
//! Host registers: UM r0..r7 live in w19..w26 (callee-saved, so runtime calls need not save
//! them); x27 holds the `JitCtx`, x28 the `Heap`; x12/w13 and x6/w7 are the two array
//! register pairs (see `ArrayUse`), holding the base and length of arrays recently indexed
//! or amended; x9..x11, x14..x17 are scratch; x0/x1 carry call arguments.
//!
//! Constants are built with `movz`/`movk` (never an immediate that might not encode), and
//! compare immediates are used only below 4096. Conditional branches reach +-1 MiB, so a
//! block (with its stubs) must stay below that: the block length cap sees to it. Code memory
//! is smaller than the +-128 MiB reach of `b`/`bl`, so every block reaches the routines at
//! its start. After Rust writes or patches code, `CodeMemory` cleans and invalidates the
//! caches for it, and `enter` starts with an `isb`.

// dynasm's expansion of dynamic registers calls `.into()` on a `u8`.
#![allow(clippy::useless_conversion)]

use crate::memory::SLOT_WORDS;
use crate::runtime::{ExitKind, Routines, RtFn, off};
use crate::translator::{ArrayUse, BinOp, Emitter, Val};
use dynasmrt::aarch64::Aarch64Relocation;
use dynasmrt::{DynamicLabel, DynasmApi, DynasmLabelApi, VecAssembler, dynasm};

/// Host register number of each UM register.
const HOST: [u8; 8] = [19, 20, 21, 22, 23, 24, 25, 26];

/// Offset of `Heap::slab` (asserted below).
const SLAB: u32 = 1104;
const _: () = assert!(std::mem::offset_of!(crate::memory::Heap, slab) == SLAB as usize);
// Slots are 32 bytes: the speculative index shifts identifiers by 5.
const _: () = assert!(SLOT_WORDS * 4 == 1 << 5);

/// Base and length registers of each array register pair (see `ArrayUse`).
const PAIRS: [(u8, u8); 2] = [(12, 13), (6, 7)];

fn h(r: u8) -> u8 {
    HOST[r as usize]
}

macro_rules! asm {
    ($ops:expr; $($t:tt)*) => {
        dynasm!($ops ; .arch aarch64 ; $($t)*)
    };
}

type Ops = VecAssembler<Aarch64Relocation>;

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

/// Assemble the shared routines for code memory at `base`. Conventions here: `miss` takes
/// the pc in w9; `exit_with` takes w9 = pc, w10 = b, w11 = kind | a << 8; each `call`
/// routine takes its argument in w1 and returns the result in x0, bit 32 set on failure.
pub fn routines(base: usize) -> (Vec<u8>, Routines) {
    let mut ops = Ops::new(base);
    let miss = ops.offset().0;
    asm!(ops
        ; str w9, [x27, off::EXIT_PC as u32]
        ; movz w10, ExitKind::Miss as u32
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
    let mut call = [0; 4];
    for f in [RtFn::Alloc, RtFn::Abandon, RtFn::Output, RtFn::Input] {
        call[f.index()] = base + ops.offset().0;
        asm!(ops ; stp x29, x30, [sp, -16]!);
        if f.takes_heap() {
            asm!(ops ; mov x0, x28);
        } else {
            asm!(ops ; mov x0, x27);
        }
        load_x(&mut ops, 16, f.address() as u64);
        asm!(ops
            ; blr x16
            ; ldp x29, x30, [sp], 16
            ; ret
        );
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

/// The bytes that make the branch at address `at` (from `jump_patchable`) go to `target`.
pub fn patch_jump(at: usize, target: usize) -> Vec<u8> {
    let delta = (target as i64 - at as i64) / 4;
    assert!(
        (-(1 << 25)..(1 << 25)).contains(&delta),
        "branch within code memory"
    );
    let word = 0x1400_0000u32 | (delta as u32 & 0x03FF_FFFF);
    word.to_le_bytes().to_vec()
}

pub struct A64Emitter {
    ops: Ops,
    routines: Routines,
    /// Compare identifiers with the table length (only for a bounded table).
    check_ids: bool,
}

/// The emitter `src/cache.rs` uses on this host.
pub type BlockEmitter = A64Emitter;

impl A64Emitter {
    /// An emitter for a block that will be placed at address `base`; `check_ids` when the
    /// heap's table does not cover every identifier.
    pub fn new(base: usize, routines: Routines, check_ids: bool) -> A64Emitter {
        A64Emitter {
            ops: Ops::new(base),
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
                load_w(&mut self.ops, scratch, x);
                scratch
            }
        }
    }

    /// Make the pair's registers hold the base and length of array `id` (unless cached),
    /// then check `offset` against the length unless known in bounds (`fail`). Returns the
    /// pair's base register and the constant offset when it can be an immediate, else the
    /// register holding the offset.
    ///
    /// With `speculate` (for loads), as on x86-64: an identifier in a register is assumed to
    /// name an array in its slot, and the base computed from the identifier alone is compared
    /// with the entry's afterwards, so the element's load need not wait for the entry's.
    fn element(
        &mut self,
        id: Val,
        arr: ArrayUse,
        offset: Val,
        fail: DynamicLabel,
        speculate: bool,
    ) -> (u8, Result<u32, u8>) {
        let (base, len) = PAIRS[arr.pair as usize];
        if let (false, true, Val::Reg(r)) = (arr.cached, speculate, id) {
            let hid = h(r);
            if self.check_ids {
                asm!(self.ops
                    ; ldr w11, [x28, off::HEAP_TABLE_LEN as u32]
                    ; cmp W(hid), w11
                    ; b.hs =>fail
                );
            }
            let in_slot = self.ops.new_dynamic_label();
            asm!(self.ops
                ; ldr x9, [x28, off::HEAP_TABLE as u32]
                ; add x9, x9, W(hid), uxtw off::ENTRY_SHIFT as u32
                ; ldr W(len), [x9, off::ENTRY_LEN as u32]
                ; ldr x9, [x9, off::ENTRY_BASE as u32]
                ; ubfiz X(base), X(hid), 5, 32
                ; ldr x10, [x28, SLAB]
                ; add X(base), X(base), x10
                ; cmp x9, X(base)
                ; b.eq =>in_slot
                ; mov X(base), x9
                ; =>in_slot
            );
        } else if !arr.cached {
            let hid = self.reg_of(id, 10);
            if self.check_ids {
                asm!(self.ops
                    ; ldr w11, [x28, off::HEAP_TABLE_LEN as u32]
                    ; cmp W(hid), w11
                    ; b.hs =>fail
                );
            }
            asm!(self.ops
                ; ldr x9, [x28, off::HEAP_TABLE as u32]
                ; add x9, x9, W(hid), uxtw off::ENTRY_SHIFT as u32
                ; ldr W(len), [x9, off::ENTRY_LEN as u32]
                ; ldr X(base), [x9, off::ENTRY_BASE as u32]
            );
        }
        let elem = match offset {
            Val::Imm(k) if k < 4096 => {
                if !arr.checked {
                    asm!(self.ops
                        ; cmp WSP(len), k
                        ; b.ls =>fail
                    );
                }
                Ok(k)
            }
            _ => {
                let ho = self.reg_of(offset, 14);
                asm!(self.ops
                    ; cmp W(ho), W(len)
                    ; b.hs =>fail
                );
                Err(ho)
            }
        };
        (base, elem)
    }
}

impl Emitter for A64Emitter {
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
        load_w(&mut self.ops, 10, n);
        asm!(self.ops
            ; ldr x9, [x27, off::ICOUNT as u32]
            ; add x9, x9, w10, uxtw
            ; str x9, [x27, off::ICOUNT as u32]
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
        let hb = self.reg_of(b, 9);
        let hc = self.reg_of(c, 10);
        let ha = h(a);
        match op {
            BinOp::Add => asm!(self.ops ; add W(ha), W(hb), W(hc)),
            BinOp::Mul => asm!(self.ops ; mul W(ha), W(hb), W(hc)),
            BinOp::Nand => asm!(self.ops
                ; and W(ha), W(hb), W(hc)
                ; mvn W(ha), W(ha)
            ),
        }
    }

    fn div(&mut self, a: u8, b: Val, c: Val, fail: DynamicLabel) {
        let hc = match c {
            Val::Reg(r) => {
                asm!(self.ops ; cbz W(h(r)), =>fail);
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

    fn index(&mut self, a: u8, b: Val, c: Val, arr: ArrayUse, fail: DynamicLabel) {
        match self.element(b, arr, c, fail, true) {
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
        let (base, k) = self.element(a, arr, b, fail, false);
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
        let helper = self.routines.call[f.index()];
        asm!(self.ops
            ; bl extern helper
            ; lsr x9, x0, 32
            ; cbnz x9, =>fail
        );
        if let Some(r) = result {
            asm!(self.ops ; mov W(h(r)), w0);
        }
    }

    fn alloc_small(&mut self, a: u8, words: u32, fail: DynamicLabel) {
        debug_assert!((1..=64).contains(&words));
        let slow = self.ops.new_dynamic_label();
        let done = self.ops.new_dynamic_label();
        // Heap fields (layout asserted in arch/x86_64.rs, which uses the same ones).
        if words <= SLOT_WORDS {
            // The identifier on top of the stack and its slot (else the routine).
            asm!(self.ops
                ; ldr w9, [x28, 24]          // free_ids.len
                ; cbz w9, =>slow
                ; ldr x14, [x28, 16]
                ; sub w9, w9, 1
                ; ldr w10, [x14, x9, lsl 2]  // the identifier
                ; ldr w11, [x28, 12]         // slab_ids
                ; cmp w10, w11
                ; b.hs =>slow
                ; str w9, [x28, 24]
                ; ldr x11, [x28, SLAB]
                ; add x11, x11, x10, lsl 5   // its slot
            );
        } else {
            // small[words]: its pointer and length.
            let stack = 64 + 16 * words;
            asm!(self.ops
                ; ldr w9, [x28, stack + 8]
                ; cbz w9, =>slow
                ; ldr w10, [x28, 24]         // free_ids.len
                ; cbz w10, =>slow
                ; sub w9, w9, 1
                ; str w9, [x28, stack + 8]
                ; ldr x11, [x28, stack]
                ; ldr x11, [x11, x9, lsl 3]  // the buffer
                ; sub w10, w10, 1
                ; str w10, [x28, 24]
                ; ldr x14, [x28, 16]
                ; ldr w10, [x14, x10, lsl 2] // the identifier
            );
        }
        // Buffers are rounded up to whole 8-byte units (see `memory::layout`).
        let units = words.div_ceil(2);
        for pair in 0..units / 2 {
            asm!(self.ops ; stp xzr, xzr, [x11, 16 * pair as i32]);
        }
        if units % 2 == 1 {
            asm!(self.ops ; str xzr, [x11, 8 * (units - 1)]);
        }
        asm!(self.ops
            ; ldr x14, [x28, off::HEAP_TABLE as u32]
            ; add x14, x14, x10, lsl off::ENTRY_SHIFT as u32
            ; str x11, [x14, off::ENTRY_BASE as u32]
        );
        load_x(&mut self.ops, 15, (1u64 << 32) | words as u64);
        asm!(self.ops
            ; str x15, [x14, off::ENTRY_LEN as u32]   // len = words, active = 1
            ; ldr x15, [x28, 32]
            ; add x15, x15, 1
            ; str x15, [x28, 32]
            ; ldr x15, [x28, 48]
            ; add x15, x15, 1
            ; str x15, [x28, 48]
            ; ldr x16, [x28, 56]
            ; cmp x15, x16
            ; csel x16, x15, x16, hi
            ; str x16, [x28, 56]
            ; mov W(h(a)), w10
            ; b =>done
            ; =>slow
        );
        load_w(&mut self.ops, 1, words);
        let helper = self.routines.call[RtFn::Alloc.index()];
        asm!(self.ops
            ; bl extern helper
            ; lsr x9, x0, 32
            ; cbnz x9, =>fail
            ; mov W(h(a)), w0
            ; =>done
        );
    }

    fn branch_zero(&mut self, r: u8, target: DynamicLabel) {
        asm!(self.ops ; cbz W(h(r)), =>target);
    }

    fn branch_nonzero(&mut self, r: u8, target: DynamicLabel) {
        asm!(self.ops ; cbnz W(h(r)), =>target);
    }

    fn branch_eq(&mut self, r: u8, value: u32, target: DynamicLabel) {
        if value < 4096 {
            asm!(self.ops ; cmp WSP(h(r)), value);
        } else {
            load_w(&mut self.ops, 9, value);
            asm!(self.ops ; cmp W(h(r)), w9);
        }
        asm!(self.ops ; b.eq =>target);
    }

    fn jump(&mut self, target: DynamicLabel) {
        asm!(self.ops ; b =>target);
    }

    fn jump_patchable(&mut self, stub: DynamicLabel) -> usize {
        let at = self.offset();
        asm!(self.ops ; b =>stub);
        at
    }

    fn jump_dispatch(&mut self, target: Val, count: bool) {
        if count {
            self.count_event(off::LOOKUPS);
        }
        match target {
            Val::Reg(r) => asm!(self.ops ; mov w9, W(h(r))),
            Val::Imm(k) => load_w(&mut self.ops, 9, k),
        }
        let found = self.ops.new_dynamic_label();
        let miss = self.routines.miss;
        asm!(self.ops
            ; ldr w10, [x27, off::DTABLE_LEN as u32]
            ; cmp w9, w10
            ; b.lo =>found
            ; b extern miss
            ; =>found
            ; ldr x10, [x27, off::DTABLE as u32]
            ; ldr w10, [x10, w9, uxtw 2]
            ; ldr x11, [x27, off::CODE_BASE as u32]
            ; add x10, x11, x10
            ; br x10
        );
    }

    fn exit(&mut self, kind: ExitKind, pc: u32, a: u32, b: u32) {
        debug_assert!(a < 1 << 24, "exit field a fits in 24 bits");
        load_w(&mut self.ops, 9, pc);
        load_w(&mut self.ops, 10, b);
        load_w(&mut self.ops, 11, kind as u32 | a << 8);
        let exit_with = self.routines.exit_with;
        asm!(self.ops ; b extern exit_with);
    }
}

#[cfg(test)]
mod tests {
    //! Encodings checked against the Arm ARM by hand; these run on any host.
    use super::*;
    use crate::assembler::assemble;
    use crate::discoverer::discover;
    use crate::translator::{Options, translate};

    const BASE: usize = 0x40_0000;

    fn emitter() -> A64Emitter {
        let (_, routines) = routines(BASE - 0x1000);
        A64Emitter::new(BASE, routines, false)
    }

    fn words(code: &[u8]) -> Vec<u32> {
        assert!(code.len().is_multiple_of(4));
        code.chunks(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    }

    #[test]
    fn arithmetic_encodings() {
        let mut e = emitter();
        e.binop(BinOp::Add, 0, Val::Reg(1), Val::Reg(2)); // add w19, w20, w21
        e.binop(BinOp::Mul, 0, Val::Reg(1), Val::Reg(2)); // mul w19, w20, w21
        e.binop(BinOp::Nand, 0, Val::Reg(1), Val::Reg(2)); // and w19, w20, w21; mvn w19, w19
        assert_eq!(
            words(&e.finish()),
            [0x0B15_0293, 0x1B15_7E93, 0x0A15_0293, 0x2A33_03F3]
        );
    }

    #[test]
    fn constants_use_movz_movk() {
        let mut e = emitter();
        e.load_imm(0, 0x1234_5678); // movz w19, #0x5678; movk w19, #0x1234, lsl 16
        e.load_imm(0, 0x0000_0042); // movz only
        e.load_imm(0, 0xFFFF_0000); // movz w19, #0; movk w19, #0xffff, lsl 16
        assert_eq!(
            words(&e.finish()),
            [
                0x528A_CF13,
                0x72A2_4693,
                0x5280_0853,
                0x5280_0013,
                0x72BF_FFF3
            ]
        );
    }

    #[test]
    fn division_checks_for_zero_then_udiv() {
        let mut e = emitter();
        let fail = e.new_label();
        e.div(0, Val::Reg(1), Val::Reg(2), fail); // cbz w21, fail; udiv w19, w20, w21
        e.bind(fail);
        assert_eq!(words(&e.finish()), [0x3400_0055, 0x1AD5_0A93]);
    }

    #[test]
    fn speculative_index_through_a_slot() {
        // index r0, r1, 3 through register pair 1 (x6/w7), uncached.
        let mut e = emitter();
        let fail = e.new_label();
        let arr = ArrayUse {
            pair: 1,
            cached: false,
            checked: false,
        };
        e.index(0, Val::Reg(1), Val::Imm(3), arr, fail);
        e.bind(fail);
        let w = words(&e.finish());
        assert!(w.contains(&0xB940_0927), "ldr w7, [x9, #8]: the length");
        // ubfiz x6, x20, #5, #32: the slot of identifier r1 (w20), from it alone.
        assert!(w.contains(&0xD37B_7E86));
        assert!(
            w.contains(&0xEB06_013F),
            "cmp x9, x6: then compared with the entry"
        );
        // The element is loaded through x6: ldr w19, [x6, #12].
        assert_eq!(*w.last().unwrap(), 0xB940_0CD3);
    }

    #[test]
    fn patched_branches() {
        assert_eq!(patch_jump(0x1000, 0x2000), 0x1400_0400u32.to_le_bytes());
        assert_eq!(patch_jump(0x2000, 0x1000), 0x17FF_FC00u32.to_le_bytes());
        // A patchable jump is one `b` to its stub.
        let mut e = emitter();
        let stub = e.new_label();
        let at = e.jump_patchable(stub);
        e.load_imm(0, 1);
        e.bind(stub);
        assert_eq!(at, 0);
        assert_eq!(words(&e.finish())[0], 0x1400_0002);
    }

    #[test]
    fn whole_blocks_assemble() {
        // Every operator, two-way branches and exits, translated for this ISA.
        let program = assemble(
            "
                literal r1, 70000
                alloc r2, r1
                literal r3, 5
                amend r2, r3, r1
                index r4, r2, r3
                add r5, r4, r3
                mul r5, r5, r4
                div r6, r5, r3
                nand r7, r6, r5
                cmov r7, r6, r5
                input r0
                output r3
                abandon r2
                literal r0, 0
                amend r0, r3, r3
                literal r1, 30
                literal r2, 31
                cmov r1, r2, r4
                loadprog r0, r1
            ",
        )
        .unwrap();
        let run = discover(&program, 0, 256);
        for (chain, stats) in [(true, false), (false, true)] {
            let mut e = emitter();
            let t = translate(&mut e, &run, 7, Options { chain, stats }, &|_| true);
            let code = e.finish();
            assert!(code.len() > 100 && code.len().is_multiple_of(4));
            if chain {
                assert_eq!(t.exits.len(), 2, "two-way branch: two patchable exits");
                let w = words(&code);
                for x in &t.exits {
                    assert_eq!(w[x.jump_at / 4] >> 26, 0b000101, "exit is a `b`");
                    assert!(x.stub_at.expect("chained exits have stubs") > x.jump_at);
                }
            }
        }
    }
}

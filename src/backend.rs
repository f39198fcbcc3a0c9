//! The interface between ISA-neutral translation and a host instruction set: everything a
//! backend in `arch/` offers, in one trait, so that both ISAs offer the same surface and a
//! new backend (or a new tier) is written against one interface.
//!
//! A backend knows how to encode; what to emit is decided by the translator. Operands name
//! UM registers 0..8 (the backend maps each to a host register for as long as generated code
//! runs) or constants known at translation time ([`Val`]).

use crate::runtime::{ExitKind, RtFn};

/// An operand: a UM register or a constant known at translation time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Val {
    Reg(u8),
    Imm(u32),
}

/// Arithmetic operators with two inputs and no failure (`And` only from the optimizing
/// tier, where `nand(nand(a, b), nand(a, b))` becomes it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinOp {
    Add,
    Mul,
    Nand,
    And,
}

impl BinOp {
    pub fn eval(self, b: u32, c: u32) -> u32 {
        match self {
            BinOp::Add => b.wrapping_add(c),
            BinOp::Mul => b.wrapping_mul(c),
            BinOp::Nand => !(b & c),
            BinOp::And => b & c,
        }
    }
}

/// Whether [`Backend::div`] by `c` leaves the arrays kept in registers in place (a
/// division by a constant power of two is a shift).
pub fn div_keeps_arrays(c: Val) -> bool {
    matches!(c, Val::Imm(k) if k.is_power_of_two())
}

/// A new assembler for a block placed at `base` (each backend's `new`), with room for
/// 4 KiB of code and 64 dynamic labels and references to them. A UMIX session's baseline
/// blocks average 63 UM operations in 1.9 KB of code, so most are assembled without the
/// buffers growing (growing them was about 7 % of the session's time translating, by
/// `--stats`).
pub fn block_assembler<R: dynasmrt::relocations::Relocation>(
    base: usize,
) -> dynasmrt::VecAssembler<R> {
    const BYTES: usize = 4096;
    const LABELS: usize = 64;
    dynasmrt::VecAssembler::new_with_capacity(base, BYTES, 0, 0, LABELS, 0, LABELS)
}

/// The call into a routine that an inline fast path makes when it gives up, which a
/// backend emits after the block's code ([`Backend::finish`]) rather than inline: so the
/// fast path, taken nearly every time, falls through to the next operation instead of
/// jumping over the call. On AMD EPYC, sandmark ran in 0.98 of the time so, and
/// micro-allocfree (allocations and abandonments only) in 0.79 to 0.81.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlowCall {
    /// Op 9's routine on the identifier in UM register `id` (see [`Backend::abandon`]).
    Abandon { id: u8 },
    /// Op 8's routine for `words` words, the identifier into UM register `a` (see
    /// [`Backend::alloc_small`]).
    Alloc { a: u8, words: u32 },
}

/// A [`SlowCall`] waiting for the end of the block: its code starts at `entry`, goes to
/// `fail` when the routine fails and back to `back` (where the fast path ends) when it
/// does not.
#[derive(Clone, Copy, Debug)]
pub struct OutOfLine<L> {
    pub call: SlowCall,
    pub entry: L,
    pub back: L,
    pub fail: L,
}

/// For the backends' tests of [`OutOfLine`]: an allocation and an abandonment with their
/// fast paths, an addition, then what `fail` is bound to (a stub's constant); returns where
/// the allocation's fast path ends, where the abandonment's does, and where the stub ends.
#[cfg(test)]
pub(crate) fn emit_fast_paths<E: Backend>(e: &mut E) -> [usize; 3] {
    let fail = e.new_label();
    e.alloc_small(1, 1, fail);
    let alloc_end = e.offset();
    e.abandon(Val::Reg(1), fail);
    let abandon_end = e.offset();
    e.binop(BinOp::Add, 0, Val::Reg(1), Val::Imm(1));
    e.bind(fail);
    e.load_imm(2, 0xDEAD);
    [alloc_end, abandon_end, e.offset()]
}

/// How many arrays a backend keeps at hand (see [`ArrayUse`]).
pub const ARRAY_PAIRS: usize = 2;

/// How an index or amend reaches its array, as the translator decided: the backend keeps
/// the base and length of up to [`ARRAY_PAIRS`] arrays in pairs of host registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArrayUse {
    /// The register pair (below [`ARRAY_PAIRS`]) that holds, or is loaded with, the
    /// array's base and length.
    pub pair: u8,
    /// The pair already holds this array (same identifier since it was loaded).
    pub cached: bool,
    /// The constant offset is known to be in bounds (a larger one passed the check before),
    /// so no check is needed.
    pub checked: bool,
    /// Prefetch the cache line after the array's slot (see
    /// `memory::layout::SLOT_PREFETCH_AHEAD`) and, when the array is found in a buffer of
    /// the arenas, the buffer cut two before it (`PREFETCH_MAX_LEN`). Regions ask for it;
    /// baseline blocks, which hold code that runs far less, do not.
    pub prefetch: bool,
}

/// Which arrays the backend's register pairs hold, as a translator tracks them while it
/// emits code (the baseline's `translator` and the regions' `lower` alike). `Id` names an
/// array's identifier: a UM register or constant in a baseline block, an SSA value in a
/// region. A translator forgets a pair when what names it changes, and all of them when
/// anything but an index, amend or arithmetic runs (a runtime call may free an array;
/// division and allocation use those registers): nothing else moves or resizes an array.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArrayPairs<Id> {
    held: [Option<Held<Id>>; ARRAY_PAIRS],
    /// The pair to load next (the one used least recently).
    victim: usize,
}

/// An array held in a register pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Held<Id> {
    /// The identifier it was loaded for.
    id: Id,
    /// The largest constant offset that passed the bounds check since.
    checked: Option<u32>,
}

impl<Id: Copy + PartialEq> ArrayPairs<Id> {
    /// No array at hand.
    pub const EMPTY: ArrayPairs<Id> = ArrayPairs {
        held: [None; ARRAY_PAIRS],
        victim: 0,
    };

    /// Pair 0 holds array `id`, with no offset checked yet; pair 1 nothing.
    pub fn holding(id: Id) -> ArrayPairs<Id> {
        let mut pairs = ArrayPairs::EMPTY;
        pairs.held[0] = Some(Held { id, checked: None });
        pairs.victim = 1;
        pairs
    }

    /// The pair that holds array `id`, if one does.
    pub fn pair_of(&self, id: Id) -> Option<u8> {
        let pair = self
            .held
            .iter()
            .position(|h| h.is_some_and(|h| h.id == id))?;
        Some(pair as u8)
    }

    /// The pairs are clobbered.
    pub fn forget_all(&mut self) {
        self.held = [None; ARRAY_PAIRS];
    }

    /// `id` changes: the pair it names no longer holds its array.
    pub fn forget(&mut self, id: Id) {
        for pair in &mut self.held {
            if pair.is_some_and(|h| h.id == id) {
                *pair = None;
            }
        }
    }

    /// Where array `id` is to be accessed at constant offset `k` (`None`: an offset in a
    /// register): the pair already holding it, or the least recently used one, which from
    /// now on holds it. `in_bounds`: the offset is known to be in bounds without a check
    /// (a constant offset into array 0, whose length the translator knows).
    pub fn use_array(
        &mut self,
        id: Id,
        k: Option<u32>,
        in_bounds: bool,
        prefetch: bool,
    ) -> ArrayUse {
        let (pair, cached, checked) = match self.pair_of(id).map(usize::from) {
            Some(s) => {
                let known = self.held[s].and_then(|h| h.checked);
                (s, true, in_bounds || (k.is_some() && known >= k))
            }
            None => {
                let s = self.victim;
                self.held[s] = Some(Held { id, checked: None });
                (s, false, in_bounds)
            }
        };
        // Once this access has passed its check, `k` is known to be in bounds.
        if let Some(h) = &mut self.held[pair] {
            h.checked = h.checked.max(k);
        }
        self.victim = (pair + 1) % ARRAY_PAIRS;
        ArrayUse {
            pair: pair as u8,
            cached,
            checked,
            prefetch,
        }
    }
}

/// Addresses of the shared routines a backend assembles at the start of code memory (their
/// register conventions are the backend's).
#[derive(Clone, Copy, Debug, Default)]
pub struct Routines {
    /// Dispatch miss: the target pc is in the backend's dispatch register.
    pub miss: usize,
    /// The target of a computed jump is hot: its pc is in the dispatch register.
    pub hot: usize,
    /// Store the UM registers and return to Rust.
    pub exit: usize,
    /// The entry to generated code (see [`EnterFn`]).
    pub enter: usize,
    /// Store the exit fields passed in registers (pc, b, kind | a << 8), then `exit`.
    pub exit_with: usize,
    /// Per exit kind (indexed by its value): `exit_with` for that kind and `a` = 0, with
    /// only pc and b in registers (an exit stub one instruction shorter).
    pub exit_as: [usize; ExitKind::LIMIT],
    /// Per runtime function (`RtFn::index`): save what the call clobbers, call it, report
    /// failure; the allocation and abandonment routines first try the heap's fast path.
    pub call: [usize; RtFn::COUNT],
    /// Whether generated code keeps the heap's [`crate::memory::Counts`] (the routines'
    /// fast paths and the inline allocations and abandonments alike): statistics are all
    /// they are for, so only when they are wanted.
    pub counts_arrays: bool,
}

/// The signature of the `enter` routine: load the UM registers from the context, jump to
/// the code address, and return when generated code exits to Rust.
pub type EnterFn = unsafe extern "C" fn(ctx: *mut crate::runtime::JitCtx, code: usize);

/// A block's machine code did not assemble: a branch does not reach its target. The block
/// must be translated again, shorter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TooLong(pub String);

/// What a backend implements. Every `fail`/`smc` label is bound by the translator to a cold
/// stub.
pub trait Backend: Sized {
    /// The instruction set, for messages (`x86-64`, `aarch64`).
    const NAME: &'static str;
    /// Bytes of code memory: every block must reach the routines at its start with a direct
    /// jump or call, and every chained jump its target.
    const CODE_CAPACITY: usize;
    /// The most UM operations a block may have (the upper bound of `--max-block`).
    const MAX_BLOCK_OPS: u32;

    type Label: Copy;

    /// Assemble the shared routines for code memory at address `base`; with
    /// `counts_arrays`, their allocation and abandonment keep the heap's counts.
    fn routines(base: usize, counts_arrays: bool) -> (Vec<u8>, Routines);

    /// An emitter for a block that will be placed at address `base`; `check_ids` when the
    /// heap's table does not cover every identifier.
    fn new(base: usize, routines: &Routines, check_ids: bool) -> Self;

    /// The finished machine code: what was emitted, then the calls its fast paths make
    /// when they give up ([`Backend::emit_out_of_line`]).
    fn finish(self) -> Result<Vec<u8>, TooLong>;

    /// The calls left for the end of the block (see [`OutOfLine`]).
    fn out_of_line(&mut self) -> &mut Vec<OutOfLine<Self::Label>>;

    /// Leave `call` for the end of the block: the fast path just emitted goes to `entry`
    /// when it gives up, and the call comes back here.
    fn call_out_of_line(&mut self, call: SlowCall, entry: Self::Label, fail: Self::Label) {
        let back = self.new_label();
        self.bind(back);
        self.out_of_line().push(OutOfLine {
            call,
            entry,
            back,
            fail,
        });
    }

    /// Emit the calls left for the end of the block (`finish` does, after everything else).
    fn emit_out_of_line(&mut self) {
        for o in std::mem::take(self.out_of_line()) {
            self.bind(o.entry);
            match o.call {
                SlowCall::Abandon { id } => self.call(RtFn::Abandon, Val::Reg(id), None, o.fail),
                SlowCall::Alloc { a, words } => {
                    self.call(RtFn::Alloc, Val::Imm(words), Some(a), o.fail)
                }
            }
            self.jump(o.back);
        }
    }

    /// The new value of the aligned 8-byte word at address `word` (whose current value is
    /// `old`) that makes the patchable jump at address `at` (inside that word, see
    /// [`Backend::jump_patchable`]) go to `target`. Chaining is then one aligned store.
    fn patch_jump(word: usize, old: u64, at: usize, target: usize) -> u64;

    fn new_label(&mut self) -> Self::Label;
    /// Bind `label` here.
    fn bind(&mut self, label: Self::Label);
    /// Current offset from the start of the block.
    fn offset(&self) -> usize;
    /// Statistics: add `n` to the executed-instruction counter.
    fn count_instructions(&mut self, n: u32);
    /// Take `n` instructions from the step budget (`JitCtx::budget`); when fewer were left,
    /// branch to `exhausted` (the budget has wrapped by `n`, which Rust gives back).
    fn take_budget(&mut self, n: u32, exhausted: Self::Label);
    /// Branch to `target` when a signal asked the run to stop (the flag `JitCtx::interrupt`
    /// points to).
    fn branch_interrupted(&mut self, target: Self::Label);
    /// Jump to `target`, or to `interrupted` when a signal asked the run to stop: the same
    /// test as [`Backend::branch_interrupted`] followed by a jump, with one branch fewer on
    /// the path taken (a loop's jump back).
    fn jump_unless_interrupted(&mut self, target: Self::Label, interrupted: Self::Label);
    /// Statistics: increment the 64-bit counter at context offset `field`.
    fn count_event(&mut self, field: i32);
    /// Register `r` := `value`.
    fn load_imm(&mut self, r: u8, value: u32);
    /// Register `a` := `b`.
    fn mov(&mut self, a: u8, b: u8);
    /// Op 0 with an unknown condition register `c`.
    fn cmov(&mut self, a: u8, b: Val, c: u8);
    /// Op 3, 4 or 6 (or an and), with at most one constant operand.
    fn binop(&mut self, op: BinOp, a: u8, b: Val, c: Val);
    /// Op 5; `c` is a register (checked for zero, `fail` if so; with no `fail` it is known
    /// not to be zero) or a non-zero constant. A division by a constant power of two is a
    /// shift into `a` that leaves the array registers alone ([`div_keeps_arrays`]); any
    /// other may use them as scratch.
    fn div(&mut self, a: u8, b: Val, c: Val, fail: Option<Self::Label>);
    /// Register `a` := `t` when register `cond` is not zero, else `f` (any of `t`, `f`,
    /// `cond` may be `a` itself).
    fn select(&mut self, a: u8, cond: u8, t: Val, f: Val);
    /// Op 1 with inline checks; `fail` when the identifier or offset is not valid. `arr`
    /// says which register pair holds array `b`'s base and length, and how to get them.
    fn index(&mut self, a: u8, b: Val, c: Val, arr: ArrayUse, fail: Self::Label);
    /// Op 2 with inline checks (and `arr` as for `index`); with `smc`, after a store into
    /// array 0, go there when the word is covered by translated code.
    fn amend(
        &mut self,
        a: Val,
        b: Val,
        c: Val,
        arr: ArrayUse,
        fail: Self::Label,
        smc: Option<Self::Label>,
    );
    /// Whether [`Backend::hold_array`] may be used: only when identifiers need no checks
    /// (the heap's table covers every identifier).
    fn may_hold_arrays(&self) -> bool;
    /// Make register pair `pair` hold the base and length of array `id`, as an access does
    /// before its bounds check: copied from pair `from` when that one holds them, else
    /// looked up through the slot (with a region's prefetches). It never fails (see
    /// [`Backend::may_hold_arrays`]): every identifier has a slot, and an inactive one
    /// reads as length 0 there, for the access to fault on.
    fn hold_array(&mut self, id: Val, pair: u8, from: Option<u8>);
    /// Call a runtime function with argument `arg`; on failure go to `fail`; the result
    /// (alloc, input) goes to register `result`.
    fn call(&mut self, f: RtFn, arg: Val, result: Option<u8>, fail: Self::Label);
    /// Op 9 on the identifier `id`: the abandonment fast path inline where the backend has
    /// one (the abandonment routine, after the block's code, when it gives up), else the
    /// routine; `fail` if that fails. Forgets the register pairs, as a call does.
    fn abandon(&mut self, id: Val, fail: Self::Label) {
        self.call(RtFn::Abandon, id, None, fail);
    }
    /// Op 8 of a constant `words` (1 to `SMALL_MAX`) into register `a`, with the allocation
    /// fast path inline as far as a constant size allows (the allocation routine, after the
    /// block's code, when it gives up; `fail` if that fails).
    fn alloc_small(&mut self, a: u8, words: u32, fail: Self::Label);
    /// Branch to `target` when register `r` is zero.
    fn branch_zero(&mut self, r: u8, target: Self::Label);
    /// Branch to `target` when register `r` is not zero.
    fn branch_nonzero(&mut self, r: u8, target: Self::Label);
    /// Branch to `target` when register `r` equals `value`.
    fn branch_eq(&mut self, r: u8, value: u32, target: Self::Label);
    /// Branch to `target` when register `r` does not equal `value`.
    fn branch_ne(&mut self, r: u8, value: u32, target: Self::Label);
    /// Branch to `target` when `r & mask` is not zero.
    fn branch_and(&mut self, r: u8, mask: Val, target: Self::Label);
    /// Jump to `target`.
    fn jump(&mut self, target: Self::Label);
    /// A jump to another block that Rust may re-target later with [`Backend::patch_jump`];
    /// returns its offset. Initially it goes to `stub`.
    fn jump_patchable(&mut self, stub: Self::Label) -> usize;
    /// Jump to the block for pc `target` through the dispatch table; when a signal asked
    /// the run to stop, leave through the miss routine instead. With `hot`, count the jump
    /// down in the target's hotness counter (`JitCtx::counters`) and leave through the hot
    /// routine when it runs out.
    fn jump_dispatch(&mut self, target: Val, count: bool, hot: bool);
    /// Count down the hotness counter of pc `target`; branch to `hot` when it runs out.
    fn count_hot(&mut self, target: u32, hot: Self::Label);
    /// Record the value of register `r` as the most recent target of the computed jump of
    /// block `slot` (its profile in `JitCtx::profile`: four targets, most recent first).
    fn record_target(&mut self, r: u8, slot: u32);
    /// Leave generated code: store the exit fields and return to Rust.
    fn exit(&mut self, kind: ExitKind, pc: u32, a: u32, b: u32);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_pairs_reuse_a_held_array_and_skip_checks_a_larger_offset_passed() {
        let mut p = ArrayPairs::<u8>::EMPTY;
        let a = p.use_array(1, Some(5), false, false);
        assert_eq!((a.pair, a.cached, a.checked), (0, false, false));
        // A second array takes the other pair.
        let b = p.use_array(2, None, false, true);
        assert_eq!(
            (b.pair, b.cached, b.checked, b.prefetch),
            (1, false, false, true)
        );
        // Array 1 again: held; offset 3 is below the 5 that passed its check, 6 is not.
        let c = p.use_array(1, Some(3), false, false);
        assert_eq!((c.pair, c.cached, c.checked), (0, true, true));
        let d = p.use_array(1, Some(6), false, false);
        assert_eq!((d.pair, d.cached, d.checked), (0, true, false));
        assert!(p.use_array(1, Some(6), false, false).checked);
        // An offset in a register is always checked.
        assert!(!p.use_array(1, None, false, false).checked);
        // A third array replaces the one used least recently (2), not 1.
        let e = p.use_array(3, Some(0), false, false);
        assert_eq!((e.pair, e.cached), (1, false));
        assert!(p.use_array(1, Some(0), false, false).cached);
        // Known in bounds: no check, even on first use.
        assert!(p.use_array(4, Some(9), true, false).checked);
    }

    #[test]
    fn array_pairs_forget_what_changed() {
        let mut p = ArrayPairs::<u8>::EMPTY;
        p.use_array(1, Some(0), false, false);
        p.use_array(2, Some(0), false, false);
        p.forget(1);
        assert!(!p.use_array(1, Some(0), false, false).cached);
        assert!(p.use_array(2, Some(0), false, false).cached);
        p.forget_all();
        assert!(!p.use_array(2, Some(0), false, false).cached);
        assert_eq!(
            p.use_array(2, Some(0), false, false).pair,
            p.use_array(2, None, false, false).pair
        );
    }
}

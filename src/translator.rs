//! The ISA-neutral half of translation: it walks a discovered run of UM operations, tracks
//! which registers hold constants known at translation time, folds them, and drives an
//! [`Backend`] (one per host ISA in `arch/`) that only knows how to emit instructions.
//!
//! Constants: `literal` does not emit an instruction; the value is remembered and used as an
//! immediate by the operations that read it, and written into the host register only when
//! something needs the register itself (a block exit, an operation with a register operand).
//! Cold exit stubs write every pending constant before leaving, so Rust always sees exact
//! UM registers.
//!
//! Exits: a jump to a constant target is a patchable jump (initially to a stub that asks Rust
//! to chain it); the `literal T; literal F; cmov; loadprog` idiom becomes a compare and two
//! patchable exits; any other jump goes through the dispatch table.

use crate::backend::{ArrayPairs, ArrayUse, Backend, BinOp, Val, div_keeps_arrays};
use crate::cache::ExitSite;
use crate::decoder::{Instr, Op};
use crate::discoverer::{End, Run};
use crate::memory::SMALL_MAX;
use crate::runtime::{ExitKind, RtFn, off};
use crate::stats::Counter;

/// Translation knobs.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Chain constant-target exits (otherwise they go through the dispatch table).
    pub chain: bool,
    /// Emit statistics counters.
    pub stats: bool,
    /// Take each block's operations from the step budget on entry (`--max-steps`).
    pub budget: bool,
    /// Count each operator executed (`--stats=ops`).
    pub count_ops: bool,
    /// Feed the optimizing tier: count down the hotness of the targets of backward and
    /// computed jumps, and record the targets computed jumps take.
    pub hot: bool,
}

/// Whether a constant jump from the block starting at `block_start` to `target` goes
/// backwards (to a block starting at or before it). Every loop of constant jumps has one:
/// there generated code notices signals and, for the optimizing tier, counts the jumps
/// into `target` (which region formation reads back, see `region::form::COLD_JUMPS`).
pub fn jumps_back(block_start: u32, target: u32) -> bool {
    target <= block_start
}

/// The result of translating a run.
pub struct Translation {
    pub exits: Vec<ExitSite>,
    /// Words of array 0 this block may store into without checking for translated code
    /// there (constant offsets that no translation covers yet): whoever translates code
    /// covering one of them must first invalidate this block.
    pub watches: Vec<u32>,
}

/// Register `r`'s state during translation.
#[derive(Clone, Copy, Debug, Default)]
struct RegState {
    /// Value known at translation time.
    known: Option<u32>,
    /// The host register does not hold `known` yet.
    dirty: bool,
    /// Set by a cmov between two known constants: the value is one of these two.
    either: Option<(u32, u32)>,
}

enum StubKind {
    /// Exit with the given kind, pc, a, b after writing the pending constants.
    Exit(ExitKind, u32, u32, u32),
    /// Chain request for exit number `idx` to `target`.
    Link { idx: usize, target: u32 },
    /// Used with --no-chain: go through the dispatch table.
    Dispatch(u32),
}

struct Stub<L> {
    label: L,
    pending: Vec<(u8, u32)>,
    kind: StubKind,
    /// With `count_ops`, the operator this exit counts as executed (an amend that hit
    /// translated code, a runtime call whose failure ends the run).
    counts: Option<Op>,
}

struct Translator<'e, E: Backend> {
    e: &'e mut E,
    regs: [RegState; 8],
    stubs: Vec<Stub<E::Label>>,
    exits: Vec<ExitSite>,
    /// The arrays whose base and length the backend holds, from earlier index or amend
    /// operations, by the register or constant that named them.
    arrays: ArrayPairs<Val>,
    /// What this block's chain requests report (its index in the cache).
    link_tag: u32,
    /// The block's first pc.
    start: u32,
    opts: Options,
    n_ops: u32,
    /// Whether a word of array 0 is covered by another translation.
    is_code: &'e dyn Fn(u32) -> bool,
    /// Array 0's length (see [`translate`]).
    array0_len: u32,
    watches: Vec<u32>,
}

/// Translate `run` into `e`; its chain requests report `link_tag`. `is_code` says whether a
/// word of array 0 is covered by some other valid translation; `array0_len` is array 0's
/// length, which cannot change while the translation lives (load program from another
/// array flushes every translation), so a constant offset below it needs no check.
pub fn translate<E: Backend>(
    e: &mut E,
    run: &Run,
    link_tag: u32,
    opts: Options,
    is_code: &dyn Fn(u32) -> bool,
    array0_len: u32,
) -> Translation {
    let mut t = Translator {
        e,
        regs: [RegState::default(); 8],
        stubs: Vec::new(),
        exits: Vec::new(),
        arrays: ArrayPairs::EMPTY,
        link_tag,
        start: run.start,
        opts,
        n_ops: run.ops.len() as u32,
        is_code,
        array0_len,
        watches: Vec::new(),
    };
    if opts.budget {
        let exhausted = t.stub(ExitKind::Budget, run.start, 0, t.n_ops);
        t.e.take_budget(t.n_ops, exhausted);
    }
    if opts.stats {
        t.e.count_instructions(t.n_ops);
    }
    let mut ended = false;
    for (i, ins) in run.ops.iter().enumerate() {
        if t.op(run, i, *ins) {
            ended = true;
            break;
        }
        t.count_op(ins.op);
    }
    if !ended {
        match run.end {
            End::Cap => t.exit_to(run.next_pc()),
            End::OffEnd | End::Terminator => {
                t.materialize_all();
                t.e.exit(ExitKind::Interp, run.next_pc(), 0, 0);
            }
        }
    }
    t.emit_stubs();
    t.watches.sort_unstable();
    t.watches.dedup();
    Translation {
        exits: t.exits,
        watches: t.watches,
    }
}

impl<E: Backend> Translator<'_, E> {
    fn val(&self, r: u8) -> Val {
        match self.regs[r as usize].known {
            Some(v) => Val::Imm(v),
            None => Val::Reg(r),
        }
    }

    /// Make sure the host register holds `r`'s value.
    fn materialize(&mut self, r: u8) {
        let s = &mut self.regs[r as usize];
        if s.dirty {
            s.dirty = false;
            let v = s.known.expect("dirty register has a known value");
            self.e.load_imm(r, v);
        }
    }

    fn materialize_all(&mut self) {
        for r in 0..8 {
            self.materialize(r);
        }
    }

    fn pending(&self) -> Vec<(u8, u32)> {
        (0..8u8)
            .filter_map(|r| {
                let s = self.regs[r as usize];
                s.dirty
                    .then(|| (r, s.known.expect("dirty register has a known value")))
            })
            .collect()
    }

    /// A cold stub that leaves generated code (pending constants written first).
    fn stub(&mut self, kind: ExitKind, pc: u32, a: u32, b: u32) -> E::Label {
        let label = self.e.new_label();
        let pending = self.pending();
        self.stubs.push(Stub {
            label,
            pending,
            kind: StubKind::Exit(kind, pc, a, b),
            counts: None,
        });
        label
    }

    /// As [`Translator::stub`], for an exit after operator `op` ran (counted there).
    fn stub_after(&mut self, op: Op, kind: ExitKind, pc: u32, a: u32, b: u32) -> E::Label {
        let label = self.stub(kind, pc, a, b);
        self.stubs.last_mut().expect("just pushed").counts = Some(op);
        label
    }

    /// With `count_ops`, count one execution of `op`.
    fn count_op(&mut self, op: Op) {
        if self.opts.count_ops {
            self.e.count_event(off::counter(Counter::op(op)));
        }
    }

    /// Register `a` now holds an unknown value computed into the host register.
    fn written(&mut self, a: u8) {
        self.regs[a as usize] = RegState::default();
        self.forget_array(a);
    }

    /// A cached array is named by register `a`, which changes.
    fn forget_array(&mut self, a: u8) {
        self.arrays.forget(Val::Reg(a));
    }

    /// The backend's register pairs are clobbered.
    fn forget_arrays(&mut self) {
        self.arrays.forget_all();
    }

    /// Where array `id` is to be accessed at `offset` (see [`ArrayPairs::use_array`]).
    fn use_array(&mut self, id: Val, offset: Val) -> ArrayUse {
        let k = match offset {
            Val::Imm(k) => Some(k),
            Val::Reg(_) => None,
        };
        let in_array0 = matches!((id, k), (Val::Imm(0), Some(k)) if k < self.array0_len);
        self.arrays.use_array(id, k, in_array0, false)
    }

    /// Register `a` now holds the constant `v` (not yet in the host register).
    fn set_known(&mut self, a: u8, v: u32) {
        self.forget_array(a);
        self.regs[a as usize] = RegState {
            known: Some(v),
            dirty: true,
            either: None,
        };
    }

    /// A patchable exit to constant `target`; every register is materialized first.
    fn exit_to(&mut self, target: u32) {
        self.materialize_all();
        let label = self.e.new_label();
        let kind = if self.opts.chain {
            StubKind::Link {
                idx: self.exits.len(),
                target,
            }
        } else {
            StubKind::Dispatch(target)
        };
        if self.opts.stats {
            self.e.count_event(off::counter(Counter::ConstExits));
        }
        if jumps_back(self.start, target) {
            self.e.branch_interrupted(label);
            if self.opts.hot {
                let hot = self.stub(ExitKind::Hot, target, 0, 0);
                self.e.count_hot(target, hot);
            }
        }
        let jump_at = self.e.jump_patchable(label);
        self.exits.push(ExitSite {
            target,
            jump_at,
            stub_at: None,
        });
        self.stubs.push(Stub {
            label,
            pending: Vec::new(),
            kind,
            counts: None,
        });
    }

    /// Translate operation `i`; returns true when it ends the block.
    fn op(&mut self, run: &Run, i: usize, ins: Instr) -> bool {
        let pc = run.pc(i);
        let not_run = self.n_ops - i as u32;
        let (a, b, c) = (ins.a, ins.b, ins.c);
        match ins.op {
            Op::Literal => self.set_known(a, ins.value),
            Op::CMov => {
                let (sa, sb, sc) = (
                    self.regs[a as usize],
                    self.regs[b as usize],
                    self.regs[c as usize],
                );
                if let Some(cond) = sc.known {
                    if cond != 0 && a != b {
                        match sb.known {
                            Some(v) => self.set_known(a, v),
                            None => {
                                self.e.mov(a, b);
                                self.written(a);
                            }
                        }
                    }
                } else if a != b {
                    self.materialize(a);
                    let either = match (sa.known, sb.known) {
                        (Some(f), Some(t)) if f != t => Some((t, f)),
                        _ => None,
                    };
                    self.e.cmov(a, self.val(b), c);
                    self.written(a);
                    self.regs[a as usize].either = either;
                }
            }
            Op::Add | Op::Mul | Op::Nand => {
                let bin = match ins.op {
                    Op::Add => BinOp::Add,
                    Op::Mul => BinOp::Mul,
                    _ => BinOp::Nand,
                };
                match (self.regs[b as usize].known, self.regs[c as usize].known) {
                    (Some(x), Some(y)) => self.set_known(a, bin.eval(x, y)),
                    _ => {
                        let (vb, vc) = (self.val(b), self.val(c));
                        self.e.binop(bin, a, vb, vc);
                        self.written(a);
                    }
                }
            }
            Op::Div => match (self.regs[b as usize].known, self.regs[c as usize].known) {
                (_, Some(0)) => {
                    self.materialize_all();
                    self.e.exit(ExitKind::Interp, pc, 0, not_run);
                    return true;
                }
                (Some(x), Some(y)) => self.set_known(a, x / y),
                // x / x is 1 for every x but 0, which faults.
                (None, None) if b == c => {
                    let fail = self.stub(ExitKind::Interp, pc, 0, not_run);
                    self.e.branch_zero(c, fail);
                    self.set_known(a, 1);
                }
                _ => {
                    let fail = self.stub(ExitKind::Interp, pc, 0, not_run);
                    let (vb, vc) = (self.val(b), self.val(c));
                    self.e.div(a, vb, vc, Some(fail));
                    if !div_keeps_arrays(vc) {
                        self.forget_arrays();
                    }
                    self.written(a);
                }
            },
            Op::Index => {
                let fail = self.stub(ExitKind::Interp, pc, 0, not_run);
                let (vb, vc) = (self.val(b), self.val(c));
                let arr = self.use_array(vb, vc);
                self.e.index(a, vb, vc, arr, fail);
                self.written(a);
            }
            Op::Amend => {
                let fail = self.stub(ExitKind::Interp, pc, 0, not_run);
                let (va, vb, vc) = (self.val(a), self.val(b), self.val(c));
                // A store into array 0 needs a check for translated code at the word, except
                // at a constant word that no translation covers yet: the block watches that
                // word instead, and is invalidated before any translation covers it.
                let check = match (va, vb) {
                    (Val::Imm(id), _) if id != 0 => false,
                    (_, Val::Imm(k)) if !(self.is_code)(k) && !run.covers(k) => {
                        self.watches.push(k);
                        false
                    }
                    _ => true,
                };
                // The offset register must be exact in the stub: Rust reads it there.
                let smc = check.then(|| {
                    self.stub_after(Op::Amend, ExitKind::Smc, pc + 1, b as u32, not_run - 1)
                });
                let arr = self.use_array(va, vb);
                self.e.amend(va, vb, vc, arr, fail, smc);
            }
            Op::Alloc if matches!(self.val(c), Val::Imm(n) if (1..=SMALL_MAX as u32).contains(&n)) =>
            {
                let Val::Imm(words) = self.val(c) else {
                    unreachable!("matched above")
                };
                let fail = self.stub(ExitKind::Interp, pc, 0, not_run);
                self.e.alloc_small(b, words, fail);
                self.forget_arrays();
                self.written(b);
            }
            Op::Alloc | Op::Abandon | Op::Output | Op::Input => {
                let (f, arg, result) = match ins.op {
                    Op::Alloc => (RtFn::Alloc, self.val(c), Some(b)),
                    Op::Abandon => (RtFn::Abandon, self.val(c), None),
                    Op::Output => (RtFn::Output, self.val(c), None),
                    _ => (RtFn::Input, Val::Imm(0), Some(c)),
                };
                let fail = if f.reports_reason() {
                    // The interpreter counts a faulting instruction as executed.
                    self.stub_after(ins.op, ExitKind::Fault, pc, 0, not_run - 1)
                } else {
                    self.stub(ExitKind::Interp, pc, 0, not_run)
                };
                match f {
                    RtFn::Abandon => self.e.abandon(arg, fail),
                    _ => self.e.call(f, arg, result, fail),
                }
                self.forget_arrays();
                if let Some(r) = result {
                    self.written(r);
                }
            }
            Op::Halt => {
                self.materialize_all();
                self.count_op(Op::Halt);
                self.e.exit(ExitKind::Halt, pc, 0, 0);
                return true;
            }
            Op::Invalid14 | Op::Invalid15 => {
                self.materialize_all();
                self.e.exit(ExitKind::Interp, pc, 0, not_run);
                return true;
            }
            Op::LoadProg => {
                match self.regs[b as usize].known {
                    Some(0) => {}
                    Some(_) => {
                        // Replaces array 0: Rust runs it and flushes every translation.
                        self.materialize_all();
                        self.e.exit(ExitKind::Interp, pc, 0, not_run);
                        return true;
                    }
                    None => {
                        let copy = self.stub(ExitKind::Interp, pc, 0, not_run);
                        self.e.branch_nonzero(b, copy);
                    }
                }
                let sc = self.regs[c as usize];
                self.materialize_all();
                self.count_op(Op::LoadProg);
                if let Some(target) = sc.known {
                    self.exit_to(target);
                } else if let Some((t, f)) = sc.either {
                    let taken = self.e.new_label();
                    self.e.branch_eq(c, t, taken);
                    self.exit_to(f);
                    self.e.bind(taken);
                    self.exit_to(t);
                } else {
                    if self.opts.hot {
                        self.e.record_target(c, self.link_tag);
                    }
                    self.e
                        .jump_dispatch(Val::Reg(c), self.opts.stats, self.opts.hot);
                }
                return true;
            }
        }
        false
    }

    fn emit_stubs(&mut self) {
        for stub in std::mem::take(&mut self.stubs) {
            self.e.bind(stub.label);
            for (r, v) in &stub.pending {
                self.e.load_imm(*r, *v);
            }
            if let Some(op) = stub.counts {
                self.count_op(op);
            }
            match stub.kind {
                StubKind::Exit(kind, pc, a, b) => self.e.exit(kind, pc, a, b),
                StubKind::Link { idx, target } => {
                    self.exits[idx].stub_at = Some(self.e.offset());
                    if self.opts.stats {
                        self.e.count_event(off::counter(Counter::StubRuns));
                    }
                    self.e
                        .exit(ExitKind::Link, target, self.link_tag, idx as u32);
                }
                StubKind::Dispatch(target) => {
                    if self.opts.stats {
                        self.e.count_event(off::counter(Counter::StubRuns));
                    }
                    self.e
                        .jump_dispatch(Val::Imm(target), self.opts.stats, false);
                }
            }
        }
    }
}

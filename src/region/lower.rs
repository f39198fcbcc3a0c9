//! From an optimized region to machine code, through the [`Backend`] interface.
//!
//! Values of UM registers live in the registers' host registers (as in baseline code);
//! constants stay unmaterialized until an exit or a join needs them. Array bases and
//! lengths stay in the backend's register pairs from one access to the next, across blocks
//! entered from one place, until an allocation, abandonment, call or division clobbers
//! them; a bounds check with a constant offset no larger than one already passed on the same
//! array value is not repeated, and a word read again with nothing in between that may
//! have changed it is copied from the register that still holds it. Blocks where paths
//! join start with every register that is not a constant in its host register, and with
//! the first array they access in a register pair when a UM register names it (edges bring
//! them there: the array is copied from the pair that holds it where the edge leaves, else
//! looked up); the jumps back to a loop's first block test for a signal. Exits write back
//! exactly the UM registers the exit records, and leave as the baseline does.

use super::ir::*;
use crate::backend::{ArrayPairs, ArrayUse, Backend, BinOp, Val, div_keeps_arrays};
use crate::cache::ExitSite;
use crate::memory::SMALL_MAX;
use crate::runtime::{ExitKind, RtFn, off};
use crate::stats::Counter;
use crate::translator::Options;
use foldhash::{HashMap, HashMapExt};

/// What lowering a region produced, besides its code.
pub struct Lowered {
    /// Patchable exits to constant pcs, and whether each is a side exit (to be chained to
    /// baseline code only).
    pub exits: Vec<(ExitSite, bool)>,
}

/// A UM register's state: its value, and whether its host register holds it (else the
/// value is a constant not yet written there).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Reg {
    val: V,
    in_home: bool,
}

#[derive(Clone, Debug)]
struct State {
    regs: [Reg; 8],
    /// The arrays at hand, keyed by the earliest value known to equal their identifier
    /// (`Func::same`).
    arrays: ArrayPairs<V>,
}

enum StubKind {
    /// Leave through an exit (with the computed jump's target, if it is one).
    Exit(X, Option<Val>),
    /// An edge into a block: write these constants, make pair 0 hold the array the block
    /// starts with (see `Lower::held`), test for a signal (leaving through the exit when
    /// there is one), then jump there.
    Edge(Vec<(u8, u32)>, Option<Hold>, Option<X>, B),
    /// The stub of a patchable jump (exit `idx`): ask Rust to chain it to `pc`.
    Link(usize, u32),
}

/// On an edge into a block that starts with an array at hand: the UM register holding its
/// identifier, and the pair holding it already (else it is looked up).
type Hold = (u8, Option<u8>);

struct Stub<L> {
    label: L,
    /// Constants to write first (the state where the stub is branched to).
    pending: Vec<(u8, u32)>,
    kind: StubKind,
}

struct Lower<'a, E: Backend> {
    e: &'a mut E,
    f: &'a Func,
    opts: Options,
    link_tag: u32,
    labels: Vec<E::Label>,
    state: State,
    /// State at the end of each block lowered, for its successors.
    ends: HashMap<B, State>,
    stubs: Vec<Stub<E::Label>>,
    exits: Vec<(ExitSite, bool)>,
    /// Exits on the main path already emitted as stubs' targets: exit -> label.
    idom: HashMap<B, B>,
    seed: u32,
    /// Exits made while lowering (numbered after the function's).
    extra: Vec<Exit>,
    /// Array 0's length: a constant offset below it needs no check (see
    /// `translator::translate`).
    array0_len: u32,
    /// Blocks where paths join that start with pair 0 holding an array: the first array
    /// they access, before anything clobbers the pairs, when its identifier is what a UM
    /// register (the value here) holds there. Every edge into such a block makes pair 0
    /// hold it: it is usually at hand already at the end of the block the edge leaves
    /// (a loop that walks a list accesses the node where the loop goes back, and again
    /// first thing in the loop), else looked up there instead of in the block.
    held: HashMap<B, u8>,
}

/// Lower `f` (a region entered at pc `seed`) into `e`; its chain requests report
/// `link_tag`.
pub fn lower<E: Backend>(
    e: &mut E,
    f: &Func,
    seed: u32,
    link_tag: u32,
    opts: Options,
    array0_len: u32,
) -> Lowered {
    let labels = (0..f.blocks.len()).map(|_| e.new_label()).collect();
    let entry = State {
        regs: std::array::from_fn(|r| Reg {
            val: f.blocks[0].in_regs[r],
            in_home: true,
        }),
        arrays: ArrayPairs::EMPTY,
    };
    let mut l = Lower {
        e,
        f,
        opts,
        link_tag,
        labels,
        state: entry,
        ends: HashMap::new(),
        stubs: Vec::new(),
        exits: Vec::new(),
        idom: super::opt::dominators(f),
        seed,
        extra: Vec::new(),
        array0_len,
        held: HashMap::new(),
    };
    if l.e.may_hold_arrays() {
        l.held = held_arrays(f);
    }
    let order = f.rpo();
    for (i, &b) in order.iter().enumerate() {
        l.block(b, order.get(i + 1).copied());
    }
    l.emit_stubs();
    Lowered { exits: l.exits }
}

/// See `Lower::held`.
fn held_arrays(f: &Func) -> HashMap<B, u8> {
    let mut held = HashMap::new();
    for (i, blk) in f.blocks.iter().enumerate() {
        if i == 0 || blk.preds.len() < 2 {
            continue;
        }
        let Some(arr) = first_array(f, &blk.insts) else {
            continue;
        };
        let id = f.canonical(arr);
        let reg = (0..8u8).find(|&r| {
            let v = blk.in_regs[r as usize];
            f.konst(v).is_none() && f.canonical(v) == id
        });
        if let Some(r) = reg {
            held.insert(B(i as u32), r);
        }
    }
    held
}

/// The identifier of the first array `insts` access; none when something that clobbers the
/// pairs comes first, or when that identifier is a constant (which needs no lookup).
fn first_array(f: &Func, insts: &[Inst]) -> Option<V> {
    for inst in insts {
        let arr = match *inst {
            Inst::Def(v) => match *f.op(v) {
                Op::Index { arr, .. } => arr,
                Op::Alloc { .. } | Op::Input { .. } | Op::Div(..) => return None,
                _ => continue,
            },
            Inst::Amend { arr, .. } => arr,
            Inst::Abandon { .. } | Inst::Output { .. } => return None,
            _ => continue,
        };
        return f.konst(arr).is_none().then_some(arr);
    }
    None
}

impl<E: Backend> Lower<'_, E> {
    fn konst(&self, v: V) -> Option<u32> {
        self.f.konst(v)
    }

    /// An operand for value `v`: its constant, or a UM register whose host register holds it.
    fn val(&self, v: V) -> Val {
        if let Some(k) = self.konst(v) {
            return Val::Imm(k);
        }
        match self.holder(v) {
            Some(r) => Val::Reg(r),
            None => panic!("value v{} is in no register:\n{}", v.0, self.f),
        }
    }

    /// A UM register whose host register holds a value known to equal `v`
    /// ([`Func::canonical`]).
    fn holder_of_same(&self, v: V) -> Option<u8> {
        let c = self.f.canonical(v);
        (0..8u8).find(|&r| {
            let s = self.state.regs[r as usize];
            s.in_home && self.f.canonical(s.val) == c
        })
    }

    fn holder(&self, v: V) -> Option<u8> {
        (0..8u8).find(|&r| {
            let s = self.state.regs[r as usize];
            s.val == v && s.in_home
        })
    }

    /// A register holding `v`, which must be in one (not a constant).
    fn reg(&self, v: V) -> u8 {
        match self.val(v) {
            Val::Reg(r) => r,
            Val::Imm(_) => panic!("constant v{} where a register is needed", v.0),
        }
    }

    /// The constants not yet written to their host registers.
    fn pending(&self) -> Vec<(u8, u32)> {
        (0..8u8)
            .filter_map(|r| {
                let s = self.state.regs[r as usize];
                (!s.in_home).then(|| (r, self.konst(s.val).expect("pending values are constant")))
            })
            .collect()
    }

    fn stub(&mut self, kind: StubKind) -> E::Label {
        let label = self.e.new_label();
        let pending = self.pending();
        self.stubs.push(Stub {
            label,
            pending,
            kind,
        });
        label
    }

    fn exit_stub(&mut self, x: X) -> E::Label {
        // A computed jump's target is read where the stub is made: stubs are emitted after
        // the region, when the register holding it may hold something else.
        let target = match self.exit_of(x).to {
            ExitTo::Dispatch(v) => Some(self.val(v)),
            _ => None,
        };
        self.stub(StubKind::Exit(x, target))
    }

    /// Register `r` now holds `v` in its host register.
    fn placed(&mut self, r: u8, v: V) {
        self.state.regs[r as usize] = Reg {
            val: v,
            in_home: true,
        };
    }

    fn forget_arrays(&mut self) {
        self.state.arrays.forget_all();
    }

    /// As the baseline's: the pair holding array `id`, or the least recently used one (see
    /// [`ArrayPairs::use_array`]), keyed by the earliest value known to equal `id`.
    fn use_array(&mut self, id: V, offset: Val) -> ArrayUse {
        let k = match offset {
            Val::Imm(k) => Some(k),
            Val::Reg(_) => None,
        };
        // Array 0's length is known (see `translator::translate`).
        let in_array0 = self.konst(id) == Some(0) && k.is_some_and(|k| k < self.array0_len);
        let id = self.f.canonical(id);
        self.state.arrays.use_array(id, k, in_array0, true)
    }

    // ---- blocks ----

    fn block(&mut self, b: B, next: Option<B>) {
        let blk = &self.f.blocks[b.0 as usize];
        self.state = if b == B(0) {
            self.state.clone()
        } else if blk.preds.len() == 1 && self.ends.contains_key(&blk.preds[0]) {
            let mut state = self.ends[&blk.preds[0]].clone();
            // A register the block starts with as a constant its predecessor did not hold
            // (a select the branch here decided, `opt::decide_selects`).
            for (r, &want) in blk.in_regs.iter().enumerate() {
                self.pend_constant(&mut state, r, want);
            }
            state
        } else {
            self.join_state(b)
        };
        self.e.bind(self.labels[b.0 as usize]);
        let insts = blk.insts.clone();
        let mut i = 0;
        while i < insts.len() {
            i += self.inst(&insts, i);
        }
        self.ends.insert(b, self.state.clone());
        let term = blk.term.clone().expect("a reached block has a terminator");
        self.term(b, &term, next);
    }

    /// The state a block where paths join starts with: constants where every path agrees,
    /// everything else in its register; no array at hand but the one its edges bring
    /// (`held`).
    fn join_state(&self, b: B) -> State {
        let blk = &self.f.blocks[b.0 as usize];
        State {
            regs: std::array::from_fn(|r| {
                let v = blk.in_regs[r];
                Reg {
                    val: v,
                    in_home: self.konst(v).is_none(),
                }
            }),
            arrays: match self.held.get(&b) {
                Some(&r) => ArrayPairs::holding(self.f.canonical(blk.in_regs[r as usize])),
                None => ArrayPairs::EMPTY,
            },
        }
    }

    /// On the edge from the current state into `to`: what makes pair 0 hold the array `to`
    /// starts with (see `held`), unless it does already.
    fn edge_hold(&self, to: B) -> Option<Hold> {
        let &r = self.held.get(&to)?;
        let id = self.f.canonical(self.state.regs[r as usize].val);
        let from = self.state.arrays.pair_of(id);
        (from != Some(0)).then_some((r, from))
    }

    /// Bring the state to what an edge's target block starts with: write the constants,
    /// then make pair 0 hold an array as `hold` says. In that order: after the writes, every
    /// register the block does not start with as a constant is in its host register, the
    /// identifier `hold` names included.
    fn enter_edge(&mut self, writes: &[(u8, u32)], hold: Option<Hold>) {
        for &(r, k) in writes {
            self.e.load_imm(r, k);
        }
        if let Some((r, from)) = hold {
            self.e.hold_array(Val::Reg(r), 0, from);
        }
    }

    /// What must be written on the edge from the current state into block `to` (constants
    /// a join keeps in registers), or nothing when `to` has this one way in.
    fn edge_writes(&self, to: B) -> Vec<(u8, u32)> {
        let blk = &self.f.blocks[to.0 as usize];
        if blk.preds.len() == 1 {
            return vec![];
        }
        (0..8u8)
            .filter_map(|r| {
                let s = self.state.regs[r as usize];
                let want = blk.in_regs[r as usize];
                (self.konst(want).is_none() && !s.in_home)
                    .then(|| (r, self.konst(s.val).expect("pending values are constant")))
            })
            .collect()
    }

    /// Whether the edge into `to` from `from` goes back to a loop's first block.
    fn back_edge(&self, from: B, to: B) -> bool {
        let mut b = from;
        loop {
            if b == to {
                return true;
            }
            match self.idom.get(&b) {
                Some(&p) if p != b => b = p,
                _ => return false,
            }
        }
    }

    /// An exit made now, with the registers as they are.
    fn exit_now(&mut self, to: ExitTo, not_run: u32, side: bool) -> X {
        let regs: [V; 8] = std::array::from_fn(|r| self.state.regs[r].val);
        self.extra.push(Exit {
            to,
            regs,
            not_run,
            side,
        });
        X((self.f.exits.len() + self.extra.len() - 1) as u32)
    }

    fn exit_of(&self, x: X) -> Exit {
        let i = x.0 as usize;
        match self.f.exits.get(i) {
            Some(e) => e.clone(),
            None => self.extra[i - self.f.exits.len()].clone(),
        }
    }

    /// For the edge into `to`: the side exit taken there when a signal arrived, if the edge
    /// goes back to a loop's first block.
    fn signal_check(&mut self, from: B, to: B) -> Option<X> {
        self.back_edge(from, to).then(|| {
            let pc = self.f.blocks[to.0 as usize].pc;
            self.exit_now(ExitTo::Pc(pc), 0, true)
        })
    }

    /// Go along the edge to `to`: write what it needs, test for a signal when it goes
    /// back, jump (or fall through when `to` is next).
    fn go(&mut self, from: B, to: B, next: Option<B>) {
        self.on_edge(from, to, |l| {
            let writes = l.edge_writes(to);
            let hold = l.edge_hold(to);
            l.enter_edge(&writes, hold);
            let target = l.labels[to.0 as usize];
            match (l.signal_check(from, to), next == Some(to)) {
                (Some(x), true) => {
                    let stub = l.exit_stub(x);
                    l.e.branch_interrupted(stub);
                }
                (Some(x), false) => {
                    let stub = l.exit_stub(x);
                    l.e.jump_unless_interrupted(target, stub);
                }
                (None, true) => {}
                (None, false) => l.e.jump(target),
            }
        })
    }

    /// A label that takes the edge to `to` (through an edge stub when it must write or test
    /// for a signal).
    fn edge_label(&mut self, from: B, to: B) -> E::Label {
        self.on_edge(from, to, |l| {
            let writes = l.edge_writes(to);
            let hold = l.edge_hold(to);
            let signal = l.signal_check(from, to);
            if writes.is_empty() && hold.is_none() && signal.is_none() {
                return l.labels[to.0 as usize];
            }
            l.stub(StubKind::Edge(writes, hold, signal, to))
        })
    }

    /// Run `f` with the state as it is on the edge from `from` into `to`: a register whose
    /// phi there reads a constant on this edge holds that constant, pending (a select the
    /// branch along this edge decided, `opt::decide_selects`), whatever `from` left in it.
    fn on_edge<T>(&mut self, from: B, to: B, f: impl FnOnce(&mut Self) -> T) -> T {
        let blk = &self.f.blocks[to.0 as usize];
        let mut edge = self.state.clone();
        if blk.preds.len() > 1
            && let Some(k) = blk.preds.iter().position(|&p| p == from)
        {
            for (r, &phi) in blk.in_regs.iter().enumerate() {
                let Op::Phi(ops) = self.f.op(phi) else {
                    continue;
                };
                if self.f.values[phi.0 as usize].block != to {
                    continue;
                }
                self.pend_constant(&mut edge, r, ops[k]);
            }
        }
        let saved = std::mem::replace(&mut self.state, edge);
        let out = f(self);
        self.state = saved;
        out
    }

    /// Register `r` holds value `want` in `state` from here: when `want` is a constant the
    /// state does not have there already, that constant, pending.
    fn pend_constant(&self, state: &mut State, r: usize, want: V) {
        let had = state.regs[r].val;
        if let Some(k) = self.konst(want)
            && had != want
            && self.konst(had) != Some(k)
        {
            state.regs[r] = Reg {
                val: want,
                in_home: false,
            };
        }
    }

    // ---- instructions ----

    /// Lower instruction `i` of `insts`; returns how many it consumed.
    fn inst(&mut self, insts: &[Inst], i: usize) -> usize {
        match insts[i] {
            Inst::Segment { pc, ops } => {
                if self.opts.budget {
                    let x = self.budget_exit(pc, ops);
                    let stub = self.exit_stub(x);
                    self.e.take_budget(ops, stub);
                }
                if self.opts.stats {
                    self.e.count_instructions(ops);
                }
                1
            }
            Inst::Def(v) => {
                // A value computed into the register the next instruction sets.
                match insts.get(i + 1) {
                    Some(&Inst::Set(r, w)) if w == v => {
                        self.def(v, r, insts.get(i + 2));
                        2
                    }
                    _ => {
                        // A value without a register is part of what reads it (an and
                        // under a not, a branch's condition).
                        assert!(
                            !self.f.op(v).has_effect(),
                            "effect v{} without a register",
                            v.0
                        );
                        1
                    }
                }
            }
            Inst::Set(r, v) => {
                self.set(r, v);
                1
            }
            Inst::Check(ref c, x) => {
                let stub = self.exit_stub(x);
                match *c {
                    Check::NonZero(v) => match self.konst(v) {
                        Some(0) => self.e.jump(stub),
                        Some(_) => {}
                        None => {
                            let r = self.reg(v);
                            self.e.branch_zero(r, stub);
                        }
                    },
                    Check::Zero(v) => match self.konst(v) {
                        Some(0) => {}
                        Some(_) => self.e.jump(stub),
                        None => {
                            let r = self.reg(v);
                            self.e.branch_nonzero(r, stub);
                        }
                    },
                }
                1
            }
            Inst::Amend {
                arr,
                off,
                val,
                exit,
                smc,
            } => {
                let fail = self.exit_stub(exit);
                let smc = smc.map(|x| self.exit_stub(x));
                let (va, vb, vc) = (self.val(arr), self.val(off), self.val(val));
                let use_ = self.use_array(arr, vb);
                self.e.amend(va, vb, vc, use_, fail, smc);
                1
            }
            Inst::Abandon { id, exit } => {
                let fail = self.exit_stub(exit);
                let v = self.val(id);
                self.e.abandon(v, fail);
                self.forget_arrays();
                1
            }
            Inst::Output { v, exit } => {
                let fail = self.exit_stub(exit);
                let val = self.val(v);
                self.e.call(RtFn::Output, val, None, fail);
                self.forget_arrays();
                1
            }
        }
    }

    /// Compute value `v` into UM register `r`'s host register.
    fn def(&mut self, v: V, r: u8, after: Option<&Inst>) {
        let _ = after;
        match self.f.op(v).clone() {
            Op::Bin(op, x, y) => {
                let (vx, vy) = (self.val(x), self.val(y));
                self.e.binop(op, r, vx, vy);
            }
            Op::And(x, y) => {
                let (vx, vy) = self.pair_operands(x, y);
                self.e.binop(BinOp::And, r, vx, vy);
            }
            Op::Not(x) => match self.f.op(x).clone() {
                // not(and(a, b)) is a nand.
                Op::And(a, b) if self.holder(x).is_none() && self.konst(x).is_none() => {
                    let (va, vb) = self.pair_operands(a, b);
                    self.e.binop(BinOp::Nand, r, va, vb);
                }
                _ => {
                    let vx = self.val(x);
                    self.e.binop(BinOp::Nand, r, vx, vx);
                }
            },
            Op::Div(x, y) => {
                let (vx, vy) = (self.val(x), self.val(y));
                self.e.div(r, vx, vy, None);
                if !div_keeps_arrays(vy) {
                    self.forget_arrays();
                }
            }
            Op::Select(c, t, e) => {
                let (vt, ve) = (self.val(t), self.val(e));
                let rc = self.reg(c);
                self.e.select(r, rc, vt, ve);
            }
            Op::Index { arr, off, exit } => {
                // A word read (or stored) before, with nothing in between that may have
                // changed it (`opt::same_words`): that access was checked, and its value,
                // when still at hand, is copied instead of read again.
                let known = Some(self.f.canonical(v))
                    .filter(|&c| c != v)
                    .and_then(|c| match self.konst(c) {
                        Some(k) => Some(Val::Imm(k)),
                        None => self.holder_of_same(c).map(Val::Reg),
                    });
                match known {
                    Some(Val::Imm(k)) => self.e.load_imm(r, k),
                    Some(Val::Reg(h)) if h != r => self.e.mov(r, h),
                    Some(Val::Reg(_)) => {}
                    None => {
                        let fail = self.exit_stub(exit);
                        let (vb, vc) = (self.val(arr), self.val(off));
                        let use_ = self.use_array(arr, vc);
                        self.e.index(r, vb, vc, use_, fail);
                    }
                }
            }
            Op::Alloc { size, exit } => {
                let fail = self.exit_stub(exit);
                match self.val(size) {
                    Val::Imm(words) if (1..=SMALL_MAX as u32).contains(&words) => {
                        self.e.alloc_small(r, words, fail)
                    }
                    arg => self.e.call(RtFn::Alloc, arg, Some(r), fail),
                }
                self.forget_arrays();
            }
            Op::Input { exit } => {
                let fail = self.exit_stub(exit);
                self.e.call(RtFn::Input, Val::Imm(0), Some(r), fail);
                self.forget_arrays();
            }
            op @ (Op::Const(_) | Op::Entry(_) | Op::Phi(_)) => {
                panic!("v{} = {op:?} has no instruction", v.0)
            }
        }
        self.placed(r, v);
    }

    /// Two operands of a commutative operation, a register first when one is constant.
    fn pair_operands(&self, a: V, b: V) -> (Val, Val) {
        let (va, vb) = (self.val(a), self.val(b));
        match (va, vb) {
            (Val::Imm(_), Val::Reg(_)) => (vb, va),
            _ => (va, vb),
        }
    }

    /// Register `r` now holds value `v` (a constant, or a copy).
    fn set(&mut self, r: u8, v: V) {
        let s = self.state.regs[r as usize];
        if s.val == v && (s.in_home || self.konst(v).is_some()) {
            return;
        }
        if self.konst(v).is_some() {
            self.state.regs[r as usize] = Reg {
                val: v,
                in_home: false,
            };
            return;
        }
        let from = self.reg(v);
        if from != r {
            self.e.mov(r, from);
        }
        self.placed(r, v);
    }

    // ---- terminators and exits ----

    fn term(&mut self, b: B, term: &Term, next: Option<B>) {
        match *term {
            Term::Jump(to) => self.go(b, to, next),
            Term::Branch {
                cond,
                nonzero,
                zero,
            } => {
                let taken = self.edge_label(b, nonzero);
                self.branch_if(cond, taken);
                self.go(b, zero, next);
            }
            Term::Switch {
                target,
                ref cases,
                default,
            } => {
                let r = self.reg(target);
                if let Some(mut cases) = self.exhaustive(target, cases) {
                    // The target can only be one of the cases: the last needs no compare
                    // (and falls into the next block when one of them leads there).
                    cases.sort_by_key(|&(_, to)| Some(to) == next);
                    let (&(_, to_last), rest) = cases.split_last().expect("a case");
                    for &(k, to) in rest {
                        let l = self.edge_label(b, to);
                        self.e.branch_eq(r, k, l);
                    }
                    self.go(b, to_last, next);
                    return;
                }
                let Some((&(k_last, to_last), rest)) = cases.split_last() else {
                    self.exit(default);
                    return;
                };
                for &(k, to) in rest {
                    let l = self.edge_label(b, to);
                    self.e.branch_eq(r, k, l);
                }
                // The last case usually leads to the next block: fall into it, and keep
                // the way out (the dispatch table) in a stub, out of the hot path.
                if next == Some(to_last)
                    && self.on_edge(b, to_last, |l| {
                        l.edge_writes(to_last).is_empty() && l.edge_hold(to_last).is_none()
                    })
                    && !self.back_edge(b, to_last)
                {
                    let stub = self.exit_stub(default);
                    self.e.branch_ne(r, k_last, stub);
                    return;
                }
                let l = self.edge_label(b, to_last);
                self.e.branch_eq(r, k_last, l);
                self.exit(default);
            }
            Term::Exit(x) => self.exit(x),
        }
    }

    /// The cases a switch on `target` can take, in their order, when its value can only be
    /// one of them (a select between two constants that both are cases): no other value
    /// needs the way out.
    fn exhaustive(&self, target: V, cases: &[Case]) -> Option<Vec<Case>> {
        let (_, t, e) = self.f.select_cases(target, cases)?;
        Some(
            cases
                .iter()
                .copied()
                .filter(|&c| c == t || c == e)
                .collect(),
        )
    }

    /// Branch to `label` when value `cond` is not zero.
    fn branch_if(&mut self, cond: V, label: E::Label) {
        if let Some(r) = self.holder(cond) {
            self.e.branch_nonzero(r, label);
            return;
        }
        match self.f.op(cond).clone() {
            Op::And(a, b) => {
                let (va, vb) = self.pair_operands(a, b);
                let Val::Reg(r) = va else {
                    panic!("and of constants v{}", cond.0)
                };
                self.e.branch_and(r, vb, label);
            }
            op => panic!("branch on v{} = {op:?}, which is in no register", cond.0),
        }
    }

    /// Leave through exit `x` from the main path.
    fn exit(&mut self, x: X) {
        let pending = self.pending();
        self.leave(x, &pending, None);
    }

    /// Leave through exit `x`, writing `pending` constants first (`target`: where a computed
    /// jump's target is, when not where the current state says).
    fn leave(&mut self, x: X, pending: &[(u8, u32)], target: Option<Val>) {
        let ex = self.exit_of(x);
        for &(r, k) in pending {
            self.e.load_imm(r, k);
        }
        match ex.to {
            ExitTo::Pc(t) => {
                let stub = self.e.new_label();
                // A jump back (to the seed or before it) tests for a signal: every loop
                // through regions has one.
                if t <= self.seed {
                    self.e.branch_interrupted(stub);
                }
                if self.opts.stats {
                    self.e.count_event(off::counter(Counter::ConstExits));
                }
                if self.opts.chain {
                    let jump_at = self.e.jump_patchable(stub);
                    let idx = self.exits.len();
                    self.exits.push((
                        ExitSite {
                            target: t,
                            jump_at,
                            stub_at: None,
                        },
                        ex.side,
                    ));
                    self.stubs.push(Stub {
                        label: stub,
                        pending: vec![],
                        kind: StubKind::Link(idx, t),
                    });
                } else if ex.side {
                    // Baseline code is entered through Rust (the dispatch table would lead
                    // back into a region).
                    self.e.jump(stub);
                    self.e.bind(stub);
                    self.e.exit(ExitKind::Side, t, 0, 0);
                } else {
                    self.e.jump(stub);
                    self.e.bind(stub);
                    if self.opts.stats {
                        self.e.count_event(off::counter(Counter::StubRuns));
                    }
                    self.e.jump_dispatch(Val::Imm(t), self.opts.stats, false);
                }
            }
            ExitTo::Dispatch(v) => {
                let target = target.unwrap_or_else(|| self.val(v));
                if ex.side && self.opts.stats {
                    self.e.count_event(off::counter(Counter::GuardMisses));
                }
                self.e.jump_dispatch(target, self.opts.stats, self.opts.hot);
            }
            ExitTo::Halt(pc) => self.e.exit(ExitKind::Halt, pc, 0, 0),
            ExitTo::Interp(pc) => self.e.exit(ExitKind::Interp, pc, 0, ex.not_run),
            ExitTo::Fault(pc) => self.e.exit(ExitKind::Fault, pc, 0, ex.not_run),
            ExitTo::Smc(pc, r) => self.e.exit(ExitKind::Smc, pc, r as u32, ex.not_run),
            ExitTo::Budget(pc) => self.e.exit(ExitKind::Budget, pc, 0, ex.not_run),
        }
    }

    fn budget_exit(&mut self, pc: u32, ops: u32) -> X {
        self.exit_now(ExitTo::Budget(pc), ops, false)
    }

    fn emit_stubs(&mut self) {
        let mut i = 0;
        while i < self.stubs.len() {
            let label = self.stubs[i].label;
            let pending = std::mem::take(&mut self.stubs[i].pending);
            let kind = std::mem::replace(&mut self.stubs[i].kind, StubKind::Link(0, 0));
            self.e.bind(label);
            match kind {
                StubKind::Exit(x, target) => self.leave(x, &pending, target),
                StubKind::Edge(writes, hold, signal, to) => {
                    let target = self.labels[to.0 as usize];
                    self.enter_edge(&writes, hold);
                    if let Some(x) = signal {
                        // The signal's exit writes the constants still pending here.
                        let exit = self.e.new_label();
                        self.stubs.push(Stub {
                            label: exit,
                            pending: pending.clone(),
                            kind: StubKind::Exit(x, None),
                        });
                        self.e.jump_unless_interrupted(target, exit);
                    } else {
                        self.e.jump(target);
                    }
                }
                StubKind::Link(idx, t) => {
                    if self.opts.stats {
                        self.e.count_event(off::counter(Counter::StubRuns));
                    }
                    self.exits[idx].0.stub_at = Some(self.e.offset());
                    self.e.exit(ExitKind::Link, t, self.link_tag, idx as u32);
                }
            }
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::region::opt::tests::optimized;

    /// A list walk whose loop starts with `first` then reads the node in r1: the loop's
    /// first block is where paths join (the way in, the way back), and the blocks the
    /// entries of `held_arrays` name.
    fn walk(first: &str) -> Func {
        optimized(&format!(
            "
                literal r0, 0
                literal r7, 1
                input r1              ; (not a constant)
            loop:
                {first}
                index r2, r1, r0      ; pc 3 or 4
                output r2
                index r1, r1, r7
                literal r3, loop
                loadprog r0, r3
            "
        ))
    }

    fn held(f: &Func) -> Vec<(u32, u8)> {
        let mut held: Vec<_> = held_arrays(f)
            .into_iter()
            .map(|(b, r)| {
                let blk = &f.blocks[b.0 as usize];
                let first = first_array(f, &blk.insts).map(|a| f.canonical(a));
                assert_eq!(first, Some(f.canonical(blk.in_regs[r as usize])), "{f}");
                (blk.pc, r)
            })
            .collect();
        held.sort();
        held
    }

    #[test]
    fn a_join_starts_with_the_first_array_it_reads_through_a_register() {
        assert_eq!(held(&walk("")), [(3, 1)]);
        // Arithmetic first changes nothing.
        assert_eq!(held(&walk("add r4, r1, r7")), [(3, 1)]);
        // Nothing held when the block first reads an array through a constant (that needs no
        // lookup), or first does what clobbers the pairs.
        for first in [
            "index r4, r0, r7",
            "output r7",
            "alloc r4, r7",
            "abandon r7",
            "div r4, r7, r1",
        ] {
            assert_eq!(held(&walk(first)), [], "{first}");
        }
    }
}

//! The optimizing tier's intermediate representation: a region as a control-flow graph of
//! blocks, each a list of instructions whose results are SSA values, over the UM registers
//! and temporaries. Every instruction that may leave the region (a failed check, a store
//! into translated code, a prediction that does not hold) names an [`Exit`] holding the UM
//! state the baseline expects there: the pc to go on at and the value of each register.

use crate::backend::BinOp;
use foldhash::HashMap;
use std::fmt;

/// An SSA value (an index into [`Func::values`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct V(pub u32);

/// A block of the function (an index into [`Func::blocks`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct B(pub u32);

/// An exit of the function (an index into [`Func::exits`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct X(pub u32);

/// What defines a value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// A constant.
    Const(u32),
    /// UM register `r` when the region is entered.
    Entry(u8),
    /// One operand per predecessor of its block, in the block's `preds` order.
    Phi(Vec<V>),
    /// Add, Mul or Nand.
    Bin(BinOp, V, V),
    /// `a & b`, and `!a` (what Nand becomes when simplified).
    And(V, V),
    Not(V),
    /// `a / b` for a divisor known not to be zero (a [`Check::NonZero`] comes first).
    Div(V, V),
    /// `c != 0 ? t : f` (cmov).
    Select(V, V, V),
    /// Op 1: the word at `off` of array `arr` (checked: leaves through `exit`).
    Index {
        arr: V,
        off: V,
        exit: X,
    },
    /// Op 8: a new array of `size` words (leaves through `exit` when it fails).
    Alloc {
        size: V,
        exit: X,
    },
    /// Op 11: the next input (leaves through `exit` when reading fails).
    Input {
        exit: X,
    },
}

impl Op {
    /// Call `f` on each value it reads.
    pub fn each_use(&self, mut f: impl FnMut(V)) {
        match *self {
            Op::Const(_) | Op::Entry(_) | Op::Input { .. } => {}
            Op::Phi(ref vs) => vs.iter().copied().for_each(f),
            Op::Bin(_, a, b) | Op::And(a, b) | Op::Div(a, b) => {
                f(a);
                f(b)
            }
            Op::Not(a) | Op::Alloc { size: a, .. } => f(a),
            Op::Select(c, t, e) => {
                f(c);
                f(t);
                f(e)
            }
            Op::Index { arr, off, .. } => {
                f(arr);
                f(off)
            }
        }
    }

    /// The values it reads.
    pub fn uses(&self) -> Vec<V> {
        let mut out = Vec::new();
        self.each_use(|v| out.push(v));
        out
    }

    /// Whether it has an effect, or may leave the region, besides defining its value.
    pub fn has_effect(&self) -> bool {
        matches!(self, Op::Index { .. } | Op::Alloc { .. } | Op::Input { .. })
    }
}

/// A value and where it is defined.
#[derive(Clone, Debug)]
pub struct Value {
    pub op: Op,
    pub block: B,
}

/// A check that leaves the region through its exit when it fails.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Check {
    /// `v != 0` (a divisor).
    NonZero(V),
    /// `v == 0` (register B of a jump: otherwise it is a load program from another array).
    Zero(V),
}

/// An instruction of a block, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Inst {
    /// Define value `v` (its [`Op`]) here.
    Def(V),
    /// UM register `r` now holds value `v` (the result of the operation before it, a
    /// constant, or a copy).
    Set(u8, V),
    /// Fail through `exit` unless `check` holds.
    Check(Check, X),
    /// Op 2: store `val` at `off` of array `arr` (checked: `exit`); when `arr` may be array 0
    /// and translated code may be there, leave through `smc` after the store if it is.
    Amend {
        arr: V,
        off: V,
        val: V,
        exit: X,
        smc: Option<X>,
    },
    /// Op 9 (fails through `exit`).
    Abandon { id: V, exit: X },
    /// Op 10 (fails through `exit`).
    Output { v: V, exit: X },
    /// Start of the UM block at `pc` of `ops` operations (for instruction counts and step
    /// budgets).
    Segment { pc: u32, ops: u32 },
}

/// A case of a switch: a pc and the block that continues there.
pub type Case = (u32, B);

/// Where a block goes when it ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Term {
    /// To block `b`.
    Jump(B),
    /// To `nonzero` when `cond` is not zero, else to `zero`.
    Branch { cond: V, nonzero: B, zero: B },
    /// To the block of the case equal to `target`, else through `default`.
    Switch {
        target: V,
        cases: Vec<Case>,
        default: X,
    },
    /// Out of the region.
    Exit(X),
}

/// Where an exit goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExitTo {
    /// On at a constant pc (a jump Rust may chain).
    Pc(u32),
    /// On at the pc in a value (through the dispatch table).
    Dispatch(V),
    /// The instruction at this pc halts.
    Halt(u32),
    /// The interpreter runs the instruction at this pc (a fault, load program from another
    /// array, an invalid opcode, a check that failed).
    Interp(u32),
    /// A runtime call failed at this pc (its reason is pending).
    Fault(u32),
    /// A store hit translated code: go on at this pc; register `r` holds the word.
    Smc(u32, u8),
    /// The block at this pc did not start: the step budget is too small for it.
    Budget(u32),
}

/// An exit: where to go, the UM registers then, and how many operations of the current
/// segment did not run (for instruction counts and step budgets). A side exit (a check or
/// prediction that failed) goes on in baseline code, never back into a region.
#[derive(Clone, Debug)]
pub struct Exit {
    pub to: ExitTo,
    pub regs: [V; 8],
    pub not_run: u32,
    pub side: bool,
}

/// A block: its predecessors, instructions and terminator.
#[derive(Clone, Debug)]
pub struct Block {
    pub preds: Vec<B>,
    pub insts: Vec<Inst>,
    pub term: Option<Term>,
    /// The pc where the block's UM code starts (for messages and exits).
    pub pc: u32,
    /// The value of each UM register when the block starts, and when it ends.
    pub in_regs: [V; 8],
    pub out_regs: [V; 8],
}

impl Block {
    /// For each instruction: whether it is a register write that nothing reads through the
    /// register itself, so that it may go when its value is needed nowhere else. That is a
    /// write a later one in the same UM block (before the next `Segment`) overwrites, or any
    /// write in the block's last UM block: past it, the register is read only where the
    /// successors start (their `in_regs` and phis) and at exits, which count as uses of the
    /// value. Any other write is the register's value where a step budget may stop the
    /// region, at the start of the next UM block (an exit made only while lowering).
    pub fn droppable_sets(&self) -> Vec<bool> {
        let mut out = vec![false; self.insts.len()];
        let mut later = [false; 8];
        let mut last_ub = true;
        for (k, inst) in self.insts.iter().enumerate().rev() {
            match *inst {
                Inst::Set(r, _) => {
                    out[k] = last_ub || later[r as usize];
                    later[r as usize] = true;
                }
                Inst::Segment { .. } => {
                    later = [false; 8];
                    last_ub = false;
                }
                _ => {}
            }
        }
        out
    }
}

impl Default for Block {
    fn default() -> Block {
        Block {
            preds: Vec::new(),
            insts: Vec::new(),
            term: None,
            pc: 0,
            in_regs: [V(0); 8],
            out_regs: [V(0); 8],
        }
    }
}

/// A region in SSA form. Block 0 is the entry.
#[derive(Clone, Debug, Default)]
pub struct Func {
    pub values: Vec<Value>,
    pub blocks: Vec<Block>,
    pub exits: Vec<Exit>,
    /// Loads known to read what an earlier load read, or what a store wrote (see
    /// `opt::same_words`): load -> the earlier value it equals. The load still runs (the
    /// earlier value may be in no register by then), but an array it names is the array
    /// the earlier value names, already in a register pair.
    pub same: HashMap<V, V>,
}

impl Func {
    /// The earliest value `v` is known to equal (`v` itself when none).
    pub fn canonical(&self, v: V) -> V {
        canonical_in(&self.same, v)
    }

    pub fn op(&self, v: V) -> &Op {
        &self.values[v.0 as usize].op
    }

    /// The constant `v` is, if it is one.
    pub fn konst(&self, v: V) -> Option<u32> {
        match self.op(v) {
            Op::Const(k) => Some(*k),
            _ => None,
        }
    }

    /// The two-way idiom: for a switch on `target` = select(c, t, e) whose `t` and `e` are
    /// constants that both are among `cases`, `c` and the case (pc, block) of each.
    pub fn select_cases(&self, target: V, cases: &[Case]) -> Option<(V, Case, Case)> {
        let Op::Select(c, t, e) = *self.op(target) else {
            return None;
        };
        let case = |v: V| {
            let k = self.konst(v)?;
            cases.iter().find(|x| x.0 == k).copied()
        };
        Some((c, case(t)?, case(e)?))
    }

    /// The successors of block `b`.
    pub fn succs(&self, b: B) -> Vec<B> {
        match &self.blocks[b.0 as usize].term {
            Some(Term::Jump(t)) => vec![*t],
            Some(Term::Branch { nonzero, zero, .. }) => vec![*nonzero, *zero],
            Some(Term::Switch { cases, .. }) => cases.iter().map(|c| c.1).collect(),
            Some(Term::Exit(_)) | None => vec![],
        }
    }

    /// Blocks in reverse postorder from the entry (unreachable blocks left out).
    pub fn rpo(&self) -> Vec<B> {
        let n = self.blocks.len();
        let mut seen = vec![false; n];
        let mut post = Vec::new();
        // Iterative DFS: (block, next successor index).
        let mut stack = vec![(B(0), 0usize)];
        seen[0] = true;
        while let Some(&mut (b, ref mut i)) = stack.last_mut() {
            let succs = self.succs(b);
            if *i < succs.len() {
                let s = succs[*i];
                *i += 1;
                if !seen[s.0 as usize] {
                    seen[s.0 as usize] = true;
                    stack.push((s, 0));
                }
            } else {
                post.push(b);
                stack.pop();
            }
        }
        post.reverse();
        post
    }

    /// The exits block `b` may take.
    pub fn exits_of(&self, b: B) -> Vec<X> {
        let blk = &self.blocks[b.0 as usize];
        let mut out = Vec::new();
        for inst in &blk.insts {
            match *inst {
                Inst::Def(v) => match *self.op(v) {
                    Op::Index { exit, .. } | Op::Alloc { exit, .. } | Op::Input { exit } => {
                        out.push(exit)
                    }
                    _ => {}
                },
                Inst::Check(_, x)
                | Inst::Abandon { exit: x, .. }
                | Inst::Output { exit: x, .. } => out.push(x),
                Inst::Amend { exit, smc, .. } => {
                    out.push(exit);
                    out.extend(smc);
                }
                Inst::Set(..) | Inst::Segment { .. } => {}
            }
        }
        match blk.term {
            Some(Term::Switch { default, .. }) => out.push(default),
            Some(Term::Exit(x)) => out.push(x),
            _ => {}
        }
        out
    }

    /// The exits reachable code can take.
    pub fn live_exits(&self) -> Vec<X> {
        self.rpo()
            .into_iter()
            .flat_map(|b| self.exits_of(b))
            .collect()
    }

    /// Every use of a value: by instructions, phis, terminators, and exits (separately: a
    /// value only exits need can be computed on the way out).
    pub fn use_counts(&self) -> (Vec<u32>, Vec<u32>) {
        let mut main = vec![0u32; self.values.len()];
        let mut exits = vec![0u32; self.values.len()];
        let add = |v: V, c: &mut Vec<u32>| c[v.0 as usize] += 1;
        for b in &self.blocks {
            let droppable = b.droppable_sets();
            for (k, i) in b.insts.iter().enumerate() {
                match i {
                    Inst::Def(v) => {
                        for u in self.op(*v).uses() {
                            add(u, &mut main);
                        }
                    }
                    Inst::Check(Check::NonZero(v) | Check::Zero(v), _) => add(*v, &mut main),
                    Inst::Amend { arr, off, val, .. } => {
                        for u in [*arr, *off, *val] {
                            add(u, &mut main);
                        }
                    }
                    Inst::Abandon { id: v, .. } | Inst::Output { v, .. } => add(*v, &mut main),
                    // A register write that nothing reads but where the register is read
                    // (counted there, or at exits) is no use of its own; any other is the
                    // register's value where a step budget may stop the region (see
                    // `Block::droppable_sets`).
                    Inst::Set(_, v) => {
                        if !droppable[k] {
                            add(*v, &mut main)
                        }
                    }
                    Inst::Segment { .. } => {}
                }
            }
            match &b.term {
                Some(Term::Branch { cond, .. }) => add(*cond, &mut main),
                Some(Term::Switch { target, .. }) => add(*target, &mut main),
                _ => {}
            }
        }
        // Phis of blocks still reached read their operands on the way in.
        let reached: Vec<bool> = {
            let mut r = vec![false; self.blocks.len()];
            for b in self.rpo() {
                r[b.0 as usize] = true;
            }
            r
        };
        for v in &self.values {
            if let Op::Phi(ops) = &v.op
                && reached[v.block.0 as usize]
            {
                for &o in ops {
                    add(o, &mut main);
                }
            }
        }
        // The registers on entry to a block are what a step budget's exit at its start,
        // or a signal's on an edge into it, writes back (exits made while lowering).
        for (b, r) in self.blocks.iter().zip(&reached) {
            if *r {
                for &v in &b.in_regs {
                    add(v, &mut main);
                }
            }
        }
        for x in self.live_exits() {
            let x = &self.exits[x.0 as usize];
            for &r in &x.regs {
                add(r, &mut exits);
            }
            if let ExitTo::Dispatch(v) = x.to {
                add(v, &mut exits);
            }
        }
        (main, exits)
    }
}

/// `op` with every operand `v` replaced by `f(v)`.
pub fn rewrite_op(op: &Op, f: &dyn Fn(V) -> V) -> Op {
    match *op {
        Op::Const(_) | Op::Entry(_) => op.clone(),
        Op::Phi(ref vs) => Op::Phi(vs.iter().map(|&v| f(v)).collect()),
        Op::Bin(b, x, y) => Op::Bin(b, f(x), f(y)),
        Op::And(x, y) => Op::And(f(x), f(y)),
        Op::Not(x) => Op::Not(f(x)),
        Op::Div(x, y) => Op::Div(f(x), f(y)),
        Op::Select(c, t, e) => Op::Select(f(c), f(t), f(e)),
        Op::Index { arr, off, exit } => Op::Index {
            arr: f(arr),
            off: f(off),
            exit,
        },
        Op::Alloc { size, exit } => Op::Alloc {
            size: f(size),
            exit,
        },
        Op::Input { exit } => Op::Input { exit },
    }
}

/// `inst` with every operand `v` replaced by `f(v)`.
pub fn rewrite_inst(inst: &Inst, f: &dyn Fn(V) -> V) -> Inst {
    match *inst {
        Inst::Def(v) => Inst::Def(v),
        Inst::Set(r, v) => Inst::Set(r, f(v)),
        Inst::Check(Check::NonZero(v), x) => Inst::Check(Check::NonZero(f(v)), x),
        Inst::Check(Check::Zero(v), x) => Inst::Check(Check::Zero(f(v)), x),
        Inst::Amend {
            arr,
            off,
            val,
            exit,
            smc,
        } => Inst::Amend {
            arr: f(arr),
            off: f(off),
            val: f(val),
            exit,
            smc,
        },
        Inst::Abandon { id, exit } => Inst::Abandon { id: f(id), exit },
        Inst::Output { v, exit } => Inst::Output { v: f(v), exit },
        Inst::Segment { pc, ops } => Inst::Segment { pc, ops },
    }
}

/// `t` with every operand `v` replaced by `f(v)`.
pub fn rewrite_term(t: &Term, f: &dyn Fn(V) -> V) -> Term {
    match t {
        Term::Branch {
            cond,
            nonzero,
            zero,
        } => Term::Branch {
            cond: f(*cond),
            nonzero: *nonzero,
            zero: *zero,
        },
        Term::Switch {
            target,
            cases,
            default,
        } => Term::Switch {
            target: f(*target),
            cases: cases.clone(),
            default: *default,
        },
        other => other.clone(),
    }
}

/// Replace every value `v` of `x` by `f(v)`.
pub fn rewrite_exit(x: &mut Exit, f: &dyn Fn(V) -> V) {
    for r in &mut x.regs {
        *r = f(*r);
    }
    if let ExitTo::Dispatch(v) = &mut x.to {
        *v = f(*v);
    }
}

/// The earliest value `v` equals by `same` (see [`Func::same`]).
pub fn canonical_in(same: &HashMap<V, V>, mut v: V) -> V {
    while let Some(&w) = same.get(&v) {
        v = w;
    }
    v
}

impl fmt::Display for Func {
    /// A readable listing (for `-d` traces and tests).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.blocks.iter().enumerate() {
            let preds: Vec<String> = b.preds.iter().map(|p| format!("b{}", p.0)).collect();
            writeln!(f, "b{i} (pc {}) <- [{}]", b.pc, preds.join(", "))?;
            for inst in &b.insts {
                match inst {
                    Inst::Def(v) => match self.same.get(v) {
                        Some(w) => writeln!(f, "  v{} = {:?} (= v{})", v.0, self.op(*v), w.0)?,
                        None => writeln!(f, "  v{} = {:?}", v.0, self.op(*v))?,
                    },
                    other => writeln!(f, "  {other:?}")?,
                }
            }
            writeln!(f, "  {:?}", b.term)?;
        }
        Ok(())
    }
}

//! From a formed region to SSA: each UM operation becomes instructions over values, each
//! register a variable (SSA construction after Braun et al., "Simple and Efficient
//! Construction of Static Single Assignment Form": values are looked up through the
//! predecessors on demand, phis are made where paths join, and phis that turn out to have
//! one value are removed). Constants fold as they are made.

use super::form::{Edge, Ending, Plan};
use super::ir::*;
use crate::backend::BinOp;
use crate::decoder::Op as UmOp;
use crate::discoverer::End;
use foldhash::{HashMap, HashMapExt};

/// The result: the function, and the words of array 0 it stores into unchecked (see
/// `cache`'s watches).
pub struct Built {
    pub func: Func,
    pub watches: Vec<u32>,
}

struct Builder<'a> {
    f: Func,
    /// Current value of each register at the end of each block (or so far, for the block
    /// being filled).
    defs: Vec<[Option<V>; 8]>,
    sealed: Vec<bool>,
    filled: Vec<bool>,
    /// Phis made while a block was not sealed, to complete when it is.
    incomplete: Vec<Vec<(u8, V)>>,
    consts: HashMap<u32, V>,
    entries: [V; 8],
    /// Value replaced by another (trivial phis).
    forward: HashMap<V, V>,
    is_code: &'a dyn Fn(u32) -> bool,
    plan: &'a Plan,
    watches: Vec<u32>,
}

/// Build the SSA function of `plan`. `is_code` says whether a word of array 0 is covered by
/// another translation.
pub fn build(plan: &Plan, is_code: &dyn Fn(u32) -> bool) -> Built {
    // Block 0 is the entry: it only jumps to the seed's block (so that a loop back to the
    // seed has a block to come from). Blocks 1.. are the plan's nodes, then exit blocks.
    let n = plan.nodes.len() + 1;
    let mut b = Builder {
        f: Func::default(),
        defs: vec![[None; 8]; n],
        sealed: vec![false; n],
        filled: vec![false; n],
        incomplete: vec![Vec::new(); n],
        consts: HashMap::new(),
        entries: [V(0); 8],
        forward: HashMap::new(),
        is_code,
        plan,
        watches: Vec::new(),
    };
    b.f.blocks = vec![Block::default(); n];
    b.f.blocks[0].pc = plan.start(0);
    for (i, node) in plan.nodes.iter().enumerate() {
        b.f.blocks[i + 1].pc = node.run.start;
    }
    for r in 0..8u8 {
        let v = b.value(Op::Entry(r), B(0));
        b.entries[r as usize] = v;
        b.defs[0][r as usize] = Some(v);
    }
    // Predecessors, from the plan's edges.
    b.f.blocks[1].preds.push(B(0));
    for (i, node) in plan.nodes.iter().enumerate() {
        for e in super::form::edges(&node.ending) {
            if let Edge::Node(j) = e
                && !b.f.blocks[j + 1].preds.contains(&B(i as u32 + 1))
            {
                b.f.blocks[j + 1].preds.push(B(i as u32 + 1));
            }
        }
    }
    b.f.blocks[0].term = Some(Term::Jump(B(1)));
    b.sealed[0] = true;
    b.filled[0] = true;
    b.try_seal(B(1));
    // Fill the nodes' blocks in reverse postorder of the plan (so that every predecessor
    // but a loop's back edge is filled before a block).
    for i in plan_rpo(plan) {
        let blk = B(i as u32 + 1);
        let entry: [V; 8] = std::array::from_fn(|r| b.read(r as u8, blk));
        b.f.blocks[blk.0 as usize].in_regs = entry;
        b.fill(blk, i);
        b.filled[blk.0 as usize] = true;
        for s in b.f.succs(blk) {
            b.try_seal(s);
        }
    }
    for i in 1..n {
        b.try_seal(B(i as u32));
    }
    b.remove_trivial_phis();
    for (i, blk) in b.f.blocks.iter_mut().enumerate() {
        blk.out_regs = std::array::from_fn(|r| b.defs[i][r].unwrap_or(b.entries[r]));
    }
    b.f.blocks[0].in_regs = b.entries;
    b.resolve_all();
    let mut watches = b.watches;
    watches.sort_unstable();
    watches.dedup();
    Built { func: b.f, watches }
}

/// The plan's nodes in reverse postorder from node 0.
fn plan_rpo(plan: &Plan) -> Vec<usize> {
    let mut seen = vec![false; plan.nodes.len()];
    let mut post = Vec::new();
    let mut stack = vec![(0usize, 0usize)];
    seen[0] = true;
    while let Some(&mut (n, ref mut i)) = stack.last_mut() {
        let succs: Vec<usize> = super::form::edges(&plan.nodes[n].ending)
            .into_iter()
            .filter_map(|e| match e {
                Edge::Node(j) => Some(j),
                Edge::Out(_) => None,
            })
            .collect();
        if *i < succs.len() {
            let s = succs[*i];
            *i += 1;
            if !seen[s] {
                seen[s] = true;
                stack.push((s, 0));
            }
        } else {
            post.push(n);
            stack.pop();
        }
    }
    post.reverse();
    post
}

impl Builder<'_> {
    fn value(&mut self, op: Op, block: B) -> V {
        self.f.values.push(Value { op, block });
        V(self.f.values.len() as u32 - 1)
    }

    fn konst(&mut self, k: u32) -> V {
        if let Some(&v) = self.consts.get(&k) {
            return v;
        }
        let v = self.value(Op::Const(k), B(0));
        self.consts.insert(k, v);
        v
    }

    fn resolve(&self, mut v: V) -> V {
        while let Some(&w) = self.forward.get(&v) {
            v = w;
        }
        v
    }

    fn k(&self, v: V) -> Option<u32> {
        self.f.konst(self.resolve(v))
    }

    // ---- SSA construction ----

    fn write(&mut self, r: u8, b: B, v: V) {
        self.defs[b.0 as usize][r as usize] = Some(v);
    }

    fn read(&mut self, r: u8, b: B) -> V {
        match self.defs[b.0 as usize][r as usize] {
            Some(v) => self.resolve(v),
            None => self.read_recursive(r, b),
        }
    }

    fn read_recursive(&mut self, r: u8, b: B) -> V {
        let preds = self.f.blocks[b.0 as usize].preds.clone();
        let v = if !self.sealed[b.0 as usize] {
            let phi = self.value(Op::Phi(Vec::new()), b);
            self.incomplete[b.0 as usize].push((r, phi));
            phi
        } else if preds.len() == 1 {
            self.read(r, preds[0])
        } else {
            let phi = self.value(Op::Phi(Vec::new()), b);
            self.write(r, b, phi);
            self.add_phi_operands(r, phi)
        };
        self.write(r, b, v);
        v
    }

    fn add_phi_operands(&mut self, r: u8, phi: V) -> V {
        let b = self.f.values[phi.0 as usize].block;
        let preds = self.f.blocks[b.0 as usize].preds.clone();
        let ops: Vec<V> = preds.iter().map(|&p| self.read(r, p)).collect();
        self.f.values[phi.0 as usize].op = Op::Phi(ops);
        phi
    }

    fn try_seal(&mut self, b: B) {
        let i = b.0 as usize;
        if self.sealed[i] {
            return;
        }
        let preds = self.f.blocks[i].preds.clone();
        if preds.iter().all(|p| self.filled[p.0 as usize]) {
            for (r, phi) in std::mem::take(&mut self.incomplete[i]) {
                self.add_phi_operands(r, phi);
            }
            self.sealed[i] = true;
        }
    }

    /// Replace phis whose operands are all one value (or the phi itself) by that value,
    /// until none is left.
    fn remove_trivial_phis(&mut self) {
        loop {
            let mut changed = false;
            for i in 0..self.f.values.len() {
                let v = V(i as u32);
                if self.forward.contains_key(&v) {
                    continue;
                }
                let Op::Phi(ops) = &self.f.values[i].op else {
                    continue;
                };
                let mut same = None;
                let mut trivial = true;
                for &o in ops.clone().iter() {
                    let o = self.resolve(o);
                    if o == v || Some(o) == same {
                        continue;
                    }
                    if same.is_some() {
                        trivial = false;
                        break;
                    }
                    same = Some(o);
                }
                if trivial && let Some(s) = same {
                    self.forward.insert(v, s);
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
    }

    /// Rewrite every operand through `forward`.
    fn resolve_all(&mut self) {
        let forward = self.forward.clone();
        let fw = |mut v: V| {
            while let Some(&w) = forward.get(&v) {
                v = w;
            }
            v
        };
        let mut values = std::mem::take(&mut self.f.values);
        for val in &mut values {
            val.op = rewrite_op(&val.op, &fw);
        }
        let mut blocks = std::mem::take(&mut self.f.blocks);
        for b in &mut blocks {
            for r in b.in_regs.iter_mut().chain(b.out_regs.iter_mut()) {
                *r = fw(*r);
            }
            for inst in &mut b.insts {
                *inst = rewrite_inst(inst, &fw);
            }
            if let Some(t) = &mut b.term {
                *t = rewrite_term(t, &fw);
            }
        }
        let mut exits = std::mem::take(&mut self.f.exits);
        for x in &mut exits {
            rewrite_exit(x, &fw);
        }
        self.f.values = values;
        self.f.blocks = blocks;
        self.f.exits = exits;
    }

    // ---- translation of UM operations ----

    fn emit(&mut self, b: B, inst: Inst) {
        self.f.blocks[b.0 as usize].insts.push(inst);
    }

    /// Define `op` in block `b` (folding constants) and return its value.
    fn def(&mut self, b: B, op: Op) -> V {
        if let Some(v) = self.fold(&op) {
            return v;
        }
        let v = self.value(op, b);
        self.emit(b, Inst::Def(v));
        v
    }

    /// A value for `op` without an instruction, when constants decide it.
    fn fold(&mut self, op: &Op) -> Option<V> {
        match *op {
            Op::Bin(bin, x, y) => {
                let (kx, ky) = (self.k(x), self.k(y));
                match (bin, kx, ky) {
                    (_, Some(a), Some(c)) => Some(self.konst(bin.eval(a, c))),
                    (BinOp::Add, Some(0), _) => Some(y),
                    (BinOp::Add, _, Some(0)) => Some(x),
                    (BinOp::Mul, Some(1), _) => Some(y),
                    (BinOp::Mul, _, Some(1)) => Some(x),
                    (BinOp::Mul, Some(0), _) | (BinOp::Mul, _, Some(0)) => Some(self.konst(0)),
                    _ => None,
                }
            }
            Op::Div(x, y) => match (self.k(x), self.k(y)) {
                (Some(a), Some(c)) if c != 0 => Some(self.konst(a / c)),
                (_, Some(1)) => Some(x),
                _ if x == y => Some(self.konst(1)),
                _ => None,
            },
            Op::Select(c, t, f) => match self.k(c) {
                Some(0) => Some(f),
                Some(_) => Some(t),
                None if t == f => Some(t),
                None => None,
            },
            _ => None,
        }
    }

    /// An exit to `to` with the registers as they are in `b` now.
    fn exit(&mut self, b: B, to: ExitTo, not_run: u32, side: bool) -> X {
        let regs: [V; 8] = std::array::from_fn(|r| self.read(r as u8, b));
        self.f.exits.push(Exit {
            to,
            regs,
            not_run,
            side,
        });
        X(self.f.exits.len() as u32 - 1)
    }

    /// The block for an edge: a node's block, or a new block that leaves through a normal
    /// exit to the pc (with the registers of `from`).
    fn edge_block(&mut self, from: B, e: Edge) -> B {
        match e {
            Edge::Node(j) => B(j as u32 + 1),
            Edge::Out(pc) => {
                let x = self.exit(from, ExitTo::Pc(pc), 0, false);
                self.exit_block(from, x)
            }
        }
    }

    /// A new block (its one predecessor `from`) that leaves through `x`.
    fn exit_block(&mut self, from: B, x: X) -> B {
        let regs: [V; 8] = std::array::from_fn(|r| self.read(r as u8, from));
        self.f.blocks.push(Block {
            preds: vec![from],
            term: Some(Term::Exit(x)),
            pc: self.f.blocks[from.0 as usize].pc,
            in_regs: regs,
            out_regs: regs,
            ..Block::default()
        });
        // Keep the per-block tables in step (an exit block defines nothing).
        self.defs.push(self.defs[from.0 as usize]);
        self.sealed.push(true);
        self.filled.push(true);
        self.incomplete.push(Vec::new());
        B(self.f.blocks.len() as u32 - 1)
    }

    fn covers(&self, w: u32) -> bool {
        self.plan.nodes.iter().any(|n| n.run.covers(w))
    }

    /// Fill block `b` with node `i`'s operations.
    fn fill(&mut self, b: B, i: usize) {
        let node = &self.plan.nodes[i];
        let run = node.run.clone();
        let n = run.ops.len() as u32;
        self.emit(
            b,
            Inst::Segment {
                pc: run.start,
                ops: n,
            },
        );
        for (j, ins) in run.ops.iter().enumerate() {
            let pc = run.pc(j);
            let not_run = n - j as u32;
            let (a, bb, c) = (ins.a, ins.b, ins.c);
            match ins.op {
                UmOp::Literal => {
                    let v = self.konst(ins.value);
                    self.set(b, a, v);
                }
                UmOp::CMov => {
                    let (va, vb, vc) = (self.read(a, b), self.read(bb, b), self.read(c, b));
                    let v = self.def(b, Op::Select(vc, vb, va));
                    self.set(b, a, v);
                }
                UmOp::Add | UmOp::Mul | UmOp::Nand => {
                    let bin = match ins.op {
                        UmOp::Add => BinOp::Add,
                        UmOp::Mul => BinOp::Mul,
                        _ => BinOp::Nand,
                    };
                    let (vb, vc) = (self.read(bb, b), self.read(c, b));
                    let v = self.def(b, Op::Bin(bin, vb, vc));
                    self.set(b, a, v);
                }
                UmOp::Div => {
                    let (vb, vc) = (self.read(bb, b), self.read(c, b));
                    // A known zero divisor keeps its check, which always fails.
                    if self.k(vc).is_none_or(|k| k == 0) {
                        let x = self.exit(b, ExitTo::Interp(pc), not_run, false);
                        self.emit(b, Inst::Check(Check::NonZero(vc), x));
                    }
                    let v = self.def(b, Op::Div(vb, vc));
                    self.set(b, a, v);
                }
                UmOp::Index => {
                    let (vb, vc) = (self.read(bb, b), self.read(c, b));
                    let exit = self.exit(b, ExitTo::Interp(pc), not_run, false);
                    let v = self.value(
                        Op::Index {
                            arr: vb,
                            off: vc,
                            exit,
                        },
                        b,
                    );
                    self.emit(b, Inst::Def(v));
                    self.set(b, a, v);
                }
                UmOp::Amend => {
                    let (va, vb, vc) = (self.read(a, b), self.read(bb, b), self.read(c, b));
                    let exit = self.exit(b, ExitTo::Interp(pc), not_run, false);
                    // As in the baseline: a store that cannot reach array 0 needs no check
                    // for translated code, nor one at a constant word no translation covers
                    // (watched instead).
                    let check = match (self.k(va), self.k(vb)) {
                        (Some(id), _) if id != 0 => false,
                        (_, Some(w)) if !(self.is_code)(w) && !self.covers(w) => {
                            self.watches.push(w);
                            false
                        }
                        _ => true,
                    };
                    let smc =
                        check.then(|| self.exit(b, ExitTo::Smc(pc + 1, bb), not_run - 1, false));
                    self.emit(
                        b,
                        Inst::Amend {
                            arr: va,
                            off: vb,
                            val: vc,
                            exit,
                            smc,
                        },
                    );
                }
                UmOp::Alloc => {
                    let vc = self.read(c, b);
                    let exit = self.exit(b, ExitTo::Interp(pc), not_run, false);
                    let v = self.value(Op::Alloc { size: vc, exit }, b);
                    self.emit(b, Inst::Def(v));
                    self.set(b, bb, v);
                }
                UmOp::Abandon => {
                    let vc = self.read(c, b);
                    let exit = self.exit(b, ExitTo::Interp(pc), not_run, false);
                    self.emit(b, Inst::Abandon { id: vc, exit });
                }
                UmOp::Output => {
                    let vc = self.read(c, b);
                    let exit = self.exit(b, ExitTo::Fault(pc), not_run - 1, false);
                    self.emit(b, Inst::Output { v: vc, exit });
                }
                UmOp::Input => {
                    let exit = self.exit(b, ExitTo::Fault(pc), not_run - 1, false);
                    let v = self.value(Op::Input { exit }, b);
                    self.emit(b, Inst::Def(v));
                    self.set(b, c, v);
                }
                UmOp::Halt => {
                    let x = self.exit(b, ExitTo::Halt(pc), 0, false);
                    self.f.blocks[b.0 as usize].term = Some(Term::Exit(x));
                    return;
                }
                UmOp::Invalid14 | UmOp::Invalid15 => {
                    let x = self.exit(b, ExitTo::Interp(pc), not_run, false);
                    self.f.blocks[b.0 as usize].term = Some(Term::Exit(x));
                    return;
                }
                UmOp::LoadProg => {
                    let vb = self.read(bb, b);
                    match self.k(vb) {
                        Some(0) => {}
                        Some(_) => {
                            let x = self.exit(b, ExitTo::Interp(pc), not_run, false);
                            self.f.blocks[b.0 as usize].term = Some(Term::Exit(x));
                            return;
                        }
                        None => {
                            let x = self.exit(b, ExitTo::Interp(pc), not_run, false);
                            self.emit(b, Inst::Check(Check::Zero(vb), x));
                        }
                    }
                    let vc = self.read(c, b);
                    let term = self.jump(b, vc, &node.ending);
                    self.f.blocks[b.0 as usize].term = Some(term);
                    return;
                }
            }
        }
        // The block did not end with a jump: it was cut short, or array 0 ends.
        let term = match (run.end, &node.ending) {
            (End::Cap, Ending::Next(e)) => Term::Jump(self.edge_block(b, *e)),
            _ => Term::Exit(self.exit(b, ExitTo::Interp(run.next_pc()), 0, false)),
        };
        self.f.blocks[b.0 as usize].term = Some(term);
    }

    /// The terminator of a jump to the value `target` as the plan's `ending` says.
    fn jump(&mut self, b: B, target: V, ending: &Ending) -> Term {
        match ending {
            Ending::Jump(e) => Term::Jump(self.edge_block(b, *e)),
            Ending::TwoWay { .. } | Ending::Computed { .. } => {
                let edges = super::form::edges(ending);
                let mut cases = Vec::new();
                for e in edges {
                    let pc = match e {
                        Edge::Node(j) => self.plan.start(j),
                        Edge::Out(pc) => pc,
                    };
                    if cases.iter().any(|&(k, _)| k == pc) {
                        continue;
                    }
                    let blk = self.edge_block(b, e);
                    cases.push((pc, blk));
                }
                // Anything else (a prediction that fails) goes through the dispatch table.
                let default = self.exit(b, ExitTo::Dispatch(target), 0, true);
                Term::Switch {
                    target,
                    cases,
                    default,
                }
            }
            // A jump whose target the plan did not resolve: through the dispatch table.
            Ending::Next(_) | Ending::Stop => {
                Term::Exit(self.exit(b, ExitTo::Dispatch(target), 0, false))
            }
        }
    }

    fn set(&mut self, b: B, r: u8, v: V) {
        self.write(r, b, v);
        self.emit(b, Inst::Set(r, v));
    }
}

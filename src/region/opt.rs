//! Optimization of a region in SSA form. Each pass can be turned off (for measuring what it
//! buys, `Passes`).
//!
//! - [`simplify`]: constant folding and propagation across the whole region, algebra
//!   (`nand` becomes `not (and ..)`, double negations vanish), copies forwarded (a select
//!   whose condition is known), branches and switches on known or two-valued targets, checks
//!   that cannot fail removed, edges that can no longer be taken pruned.
//! - [`hoist`]: checks on values defined before a loop move out of it, to where the loop
//!   is entered (failing there leaves for the baseline at the loop's first pc).
//! - [`facts`]: what a check, a branch, an allocation or an abandonment proves holds where
//!   it dominates: a value checked zero is the constant 0, a divisor checked non-zero (and
//!   an allocated or abandoned identifier) is not zero, so repeated checks and selects on it
//!   fold, and a store into an array known not zero needs no test for translated code.
//! - [`decide_selects`]: a select on the condition a branch then tests is a constant on
//!   each side of the branch (`cmov` then `loadprog`, a two-way jump, needs no target).
//! - [`dce`]: pure values nothing uses, and the register writes of them, are removed.
//! - [`same_words`]: a load of a word that an earlier load read (or a store wrote), with no
//!   store that may change it and no abandonment in between, is known to read the same
//!   value; lowering then finds an array it names already in a register pair, and copies
//!   the value instead of reading the word when a register still holds it.

use super::ir::*;
use crate::backend::BinOp;
use foldhash::{HashMap, HashMapExt, HashSet};

/// Which passes run (all by default).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Passes {
    pub simplify: bool,
    pub hoist: bool,
    pub facts: bool,
    pub selects: bool,
    pub dce: bool,
    pub same_words: bool,
}

impl Default for Passes {
    fn default() -> Passes {
        Passes {
            simplify: true,
            hoist: true,
            facts: true,
            selects: true,
            dce: true,
            same_words: true,
        }
    }
}

/// Run the passes on `f`.
pub fn optimize(f: &mut Func, passes: Passes) {
    if passes.simplify {
        simplify(f);
    }
    if passes.hoist {
        hoist(f);
    }
    if passes.facts {
        facts(f);
        if passes.simplify {
            simplify(f);
        }
    }
    if passes.selects {
        decide_selects(f);
    }
    if passes.dce {
        dce(f);
        if fuse_not_nand(f) {
            dce(f);
        }
    }
    // Last: the passes before it replace and remove values, and would leave `same` stale.
    if passes.same_words {
        same_words(f);
    }
}

/// Find loads that read what an earlier load read or a store wrote (`Func::same`).
///
/// A block entered from one place starts with what its predecessor ended with; any other
/// block (a join, a loop's head) with nothing known. Within a block, a load of word `off`
/// of array `arr` is known after the load, or after a store there. A store to another word
/// may change any known word unless both offsets are constants that differ: different
/// words are different memory, whether or not the arrays are the same. An abandonment
/// forgets everything (a load after it must still find out whether the array is gone);
/// an allocation changes no word of an array that is live (its new array's identifier is
/// a new value), nor does input or output.
pub fn same_words(f: &mut Func) {
    /// At most this many words are followed (the oldest is dropped first).
    const KNOWN: usize = 32;
    let mut ends: HashMap<B, Vec<(V, V, V)>> = HashMap::new();
    let mut same = HashMap::new();
    for b in f.rpo() {
        let blk = &f.blocks[b.0 as usize];
        // (array, offset, value), as canonical values.
        let mut known: Vec<(V, V, V)> = match blk.preds.as_slice() {
            [p] => ends.get(p).cloned().unwrap_or_default(),
            _ => Vec::new(),
        };
        for inst in &blk.insts {
            match *inst {
                Inst::Def(v) => {
                    if let Op::Index { arr, off, .. } = *f.op(v) {
                        let (arr, off) = (canonical_in(&same, arr), canonical_in(&same, off));
                        match known.iter().find(|k| k.0 == arr && k.1 == off) {
                            Some(&(_, _, earlier)) => {
                                same.insert(v, earlier);
                            }
                            None => known.push((arr, off, v)),
                        }
                    }
                }
                Inst::Amend { arr, off, val, .. } => {
                    let (arr, off, val) = (
                        canonical_in(&same, arr),
                        canonical_in(&same, off),
                        canonical_in(&same, val),
                    );
                    let k = f.konst(off);
                    known.retain(
                        |&(_, o, _)| matches!((k, f.konst(o)), (Some(a), Some(b)) if a != b),
                    );
                    known.push((arr, off, val));
                }
                Inst::Abandon { .. } => known.clear(),
                Inst::Set(..) | Inst::Check(..) | Inst::Output { .. } | Inst::Segment { .. } => {}
            }
            if known.len() > KNOWN {
                known.remove(0);
            }
        }
        ends.insert(b, known);
    }
    f.same = same;
}

/// `not(nand(a, b))` where nothing else reads the nand (no other operation, register at an
/// exit or register write that is read): the nand becomes `and(a, b)`, computed where its
/// operands are at hand, and the not is that value. (Simplification does this only when
/// `a` and `b` can still be read at the not, which a UM program overwriting its register
/// in place prevents.) Returns whether anything changed.
fn fuse_not_nand(f: &mut Func) -> bool {
    let (main, exits) = f.use_counts();
    let mut map: HashMap<V, V> = HashMap::new();
    for i in 0..f.values.len() {
        if let Op::Not(x) = f.values[i].op
            && let Op::Bin(BinOp::Nand, a, b) = f.values[x.0 as usize].op
            && main[x.0 as usize] == 1
            && exits[x.0 as usize] == 0
            && f.blocks[f.values[i].block.0 as usize]
                .insts
                .contains(&Inst::Def(V(i as u32)))
        {
            f.values[x.0 as usize].op = Op::And(a, b);
            map.insert(V(i as u32), x);
        }
    }
    if map.is_empty() {
        return false;
    }
    fold_away(f, map);
    true
}

/// Values folded to others (`map`): their definitions go, their uses follow.
fn fold_away(f: &mut Func, map: HashMap<V, V>) {
    for b in &mut f.blocks {
        b.insts
            .retain(|inst| !matches!(inst, Inst::Def(v) if map.contains_key(v)));
    }
    replace_all(f, &map);
    for v in map.into_keys() {
        f.values[v.0 as usize].op = Op::Const(0xDEAD_DEAD);
    }
}

/// Replace every use of a value by another, everywhere.
fn replace_all(f: &mut Func, map: &HashMap<V, V>) {
    if map.is_empty() {
        return;
    }
    let resolve = |mut v: V| {
        let mut n = 0;
        while let Some(&w) = map.get(&v) {
            v = w;
            n += 1;
            assert!(n < 1 << 20, "a cycle of replacements");
        }
        v
    };
    for val in &mut f.values {
        val.op = rewrite_op(&val.op, &resolve);
    }
    for b in &mut f.blocks {
        for r in b.in_regs.iter_mut().chain(b.out_regs.iter_mut()) {
            *r = resolve(*r);
        }
        for inst in &mut b.insts {
            *inst = rewrite_inst(inst, &resolve);
        }
        if let Some(t) = &mut b.term {
            *t = rewrite_term(t, &resolve);
        }
    }
    for x in &mut f.exits {
        rewrite_exit(x, &resolve);
    }
}

fn konst(f: &mut Func, consts: &mut HashMap<u32, V>, k: u32) -> V {
    if let Some(&v) = consts.get(&k) {
        return v;
    }
    f.values.push(Value {
        op: Op::Const(k),
        block: B(0),
    });
    let v = V(f.values.len() as u32 - 1);
    consts.insert(k, v);
    v
}

fn const_table(f: &Func) -> HashMap<u32, V> {
    let mut t = HashMap::new();
    for (i, v) in f.values.iter().enumerate() {
        if let Op::Const(k) = v.op {
            t.entry(k).or_insert(V(i as u32));
        }
    }
    t
}

/// What a value folds to: another value, a new operation for it, or nothing.
enum Fold {
    Same,
    To(V),
    Const(u32),
    Op(Op),
    /// The sum of a value and a constant.
    AddConst(V, u32),
}

/// The values the registers hold where each value is defined (just before its `Def`):
/// what its operands, or what it folds to, may name (lowering keeps values only in the
/// registers that hold them).
fn regs_at_defs(f: &Func) -> HashMap<V, [V; 8]> {
    let mut at = HashMap::new();
    for b in &f.blocks {
        let mut regs = b.in_regs;
        for inst in &b.insts {
            match *inst {
                Inst::Def(v) => {
                    at.insert(v, regs);
                }
                Inst::Set(r, v) => regs[r as usize] = v,
                _ => {}
            }
        }
    }
    at
}

fn fold(f: &Func, v: V, regs: Option<&[V; 8]>) -> Fold {
    let k = |x: V| f.konst(x);
    // Whether `x` can be read where `v` is defined.
    let readable = |x: V| k(x).is_some() || regs.is_some_and(|r| r.contains(&x));
    match *f.op(v) {
        Op::Bin(bin, x, y) => match (bin, k(x), k(y)) {
            (_, Some(a), Some(c)) => Fold::Const(bin.eval(a, c)),
            (BinOp::Add, Some(0), _) | (BinOp::Mul, Some(1), _) => Fold::To(y),
            (BinOp::Add, _, Some(0)) | (BinOp::Mul, _, Some(1)) => Fold::To(x),
            (BinOp::Mul, Some(0), _) | (BinOp::Mul, _, Some(0)) => Fold::Const(0),
            // nand becomes not(and): double negations then cancel.
            (BinOp::Nand, _, _) if x == y => Fold::Op(Op::Not(x)),
            // (z + c1) + c2 = z + (c1 + c2), when z is still there to read.
            (BinOp::Add, None, Some(c2)) | (BinOp::Add, Some(c2), None) => {
                let w = if k(x).is_some() { y } else { x };
                match *f.op(w) {
                    Op::Bin(BinOp::Add, p, q) => match (k(p), k(q)) {
                        (None, Some(c1)) if readable(p) => Fold::AddConst(p, c1.wrapping_add(c2)),
                        (Some(c1), None) if readable(q) => Fold::AddConst(q, c1.wrapping_add(c2)),
                        _ => Fold::Same,
                    },
                    _ => Fold::Same,
                }
            }
            _ => Fold::Same,
        },
        Op::Not(x) => match *f.op(x) {
            Op::Const(a) => Fold::Const(!a),
            Op::Not(y) if readable(y) => Fold::To(y),
            // not(nand(a, b)) = and(a, b)
            Op::Bin(BinOp::Nand, a, b) if readable(a) && readable(b) => Fold::Op(Op::And(a, b)),
            _ => Fold::Same,
        },
        Op::And(x, y) => match (k(x), k(y)) {
            (Some(a), Some(c)) => Fold::Const(a & c),
            (Some(0), _) | (_, Some(0)) => Fold::Const(0),
            (Some(u32::MAX), _) => Fold::To(y),
            (_, Some(u32::MAX)) => Fold::To(x),
            _ if x == y => Fold::To(x),
            _ => Fold::Same,
        },
        Op::Div(x, y) => match (k(x), k(y)) {
            (Some(a), Some(c)) if c != 0 => Fold::Const(a / c),
            (_, Some(1)) => Fold::To(x),
            _ if x == y => Fold::Const(1),
            _ => Fold::Same,
        },
        Op::Select(c, t, e) => match k(c) {
            Some(0) => Fold::To(e),
            Some(_) => Fold::To(t),
            None if t == e => Fold::To(t),
            None => Fold::Same,
        },
        Op::Phi(ref ops) => {
            let mut same = None;
            for &o in ops {
                if o == v || Some(o) == same {
                    continue;
                }
                if same.is_some() {
                    return Fold::Same;
                }
                same = Some(o);
            }
            same.map_or(Fold::Same, Fold::To)
        }
        _ => Fold::Same,
    }
}

/// Constant folding, algebra, copies, branches and checks, to a fixed point. Values are
/// visited in the order they were made (operands first, but for phis), each with its
/// operands already replaced, so that a chain of folds takes one round.
pub fn simplify(f: &mut Func) {
    let mut consts = const_table(f);
    loop {
        let mut changed = false;
        let mut map: HashMap<V, V> = HashMap::new();
        let regs = regs_at_defs(f);
        for i in 0..f.values.len() {
            let v = V(i as u32);
            let resolve = |mut w: V| {
                while let Some(&x) = map.get(&w) {
                    w = x;
                }
                w
            };
            let op = rewrite_op(f.op(v), &resolve);
            f.values[i].op = op;
            let here = regs.get(&v).map(|r| r.map(resolve));
            match fold(f, v, here.as_ref()) {
                Fold::Same => {}
                Fold::To(w) if w != v => {
                    map.insert(v, w);
                }
                Fold::To(_) => {}
                Fold::Const(c) => {
                    let w = konst(f, &mut consts, c);
                    if w != v {
                        map.insert(v, w);
                    }
                }
                Fold::Op(op) => {
                    f.values[i].op = op;
                    changed = true;
                }
                Fold::AddConst(z, 0) => {
                    map.insert(v, z);
                }
                Fold::AddConst(z, c) => {
                    let kc = konst(f, &mut consts, c);
                    f.values[i].op = Op::Bin(BinOp::Add, z, kc);
                    changed = true;
                }
            }
        }
        if !map.is_empty() {
            changed = true;
            fold_away(f, map);
        }
        changed |= simplify_control(f, &mut consts);
        if !changed {
            break;
        }
    }
}

/// Whether value `v` can be read where block `b` ends: a constant, the value of a register
/// then, or an and of such (a branch can test it).
fn available_at_end(f: &Func, b: usize, v: V) -> bool {
    let blk = &f.blocks[b];
    f.konst(v).is_some()
        || blk.out_regs.contains(&v)
        || matches!(*f.op(v), Op::And(x, y)
            if [x, y].iter().all(|&w| f.konst(w).is_some() || blk.out_regs.contains(&w)))
}

/// Checks that cannot fail go; branches and switches on what is known become jumps or
/// branches; then edges no longer taken are pruned.
fn simplify_control(f: &mut Func, consts: &mut HashMap<u32, V>) -> bool {
    let mut changed = false;
    for bi in 0..f.blocks.len() {
        let before = f.blocks[bi].insts.len();
        let values = &f.values;
        f.blocks[bi].insts.retain(|inst| match inst {
            Inst::Check(Check::NonZero(v), _) => {
                !matches!(values[v.0 as usize].op, Op::Const(k) if k != 0)
            }
            Inst::Check(Check::Zero(v), _) => !matches!(values[v.0 as usize].op, Op::Const(0)),
            _ => true,
        });
        changed |= f.blocks[bi].insts.len() != before;
        let term = f.blocks[bi].term.clone();
        let new = match term {
            Some(Term::Branch {
                cond,
                nonzero,
                zero,
            }) => match f.konst(cond) {
                Some(0) => Some(Term::Jump(zero)),
                Some(_) => Some(Term::Jump(nonzero)),
                None => None,
            },
            Some(Term::Switch {
                target,
                ref cases,
                default,
            }) => match f.konst(target) {
                Some(k) => Some(match cases.iter().find(|c| c.0 == k) {
                    Some(&(_, b)) => Term::Jump(b),
                    // A jump to a known pc outside the region: an exit Rust can chain.
                    None => {
                        let regs = f.exits[default.0 as usize].regs;
                        f.exits.push(Exit {
                            to: ExitTo::Pc(k),
                            regs,
                            not_run: 0,
                            side: false,
                        });
                        Term::Exit(X(f.exits.len() as u32 - 1))
                    }
                }),
                // The two-way idiom: a select between two constants, each a case.
                None => match f.select_cases(target, cases) {
                    Some((c, (_, bt), (_, be))) if available_at_end(f, bi, c) => {
                        Some(Term::Branch {
                            cond: c,
                            nonzero: bt,
                            zero: be,
                        })
                    }
                    _ => None,
                },
            },
            _ => None,
        };
        if let Some(t) = new {
            f.blocks[bi].term = Some(t);
            changed = true;
        }
    }
    if changed {
        prune_edges(f);
    }
    let _ = consts;
    changed
}

/// Make every block's predecessors those that still jump to it (in the old order, phi
/// operands following), and empty the blocks no longer reached.
fn prune_edges(f: &mut Func) {
    let reachable: HashSet<B> = f.rpo().into_iter().collect();
    let mut jumps_to: HashMap<B, Vec<B>> = HashMap::new();
    for bi in 0..f.blocks.len() {
        let b = B(bi as u32);
        if !reachable.contains(&b) {
            continue;
        }
        for s in f.succs(b) {
            let e = jumps_to.entry(s).or_default();
            if !e.contains(&b) {
                e.push(b);
            }
        }
    }
    let mut phis: HashMap<B, Vec<usize>> = HashMap::new();
    for (vi, v) in f.values.iter().enumerate() {
        if matches!(v.op, Op::Phi(_)) {
            phis.entry(v.block).or_default().push(vi);
        }
    }
    for bi in 0..f.blocks.len() {
        let b = B(bi as u32);
        let now = jumps_to.get(&b).cloned().unwrap_or_default();
        let old = f.blocks[bi].preds.clone();
        if old == now {
            continue;
        }
        let keep: Vec<usize> = old
            .iter()
            .enumerate()
            .filter(|(_, p)| now.contains(p))
            .map(|(i, _)| i)
            .collect();
        // Phis of this block lose the operands of predecessors gone.
        for &vi in phis.get(&b).map(Vec::as_slice).unwrap_or(&[]) {
            if let Op::Phi(ops) = &f.values[vi].op {
                let kept: Vec<V> = keep.iter().map(|&i| ops[i]).collect();
                f.values[vi].op = Op::Phi(kept);
            }
        }
        f.blocks[bi].preds = keep.iter().map(|&i| old[i]).collect();
        if b != B(0) && f.blocks[bi].preds.is_empty() {
            f.blocks[bi].insts.clear();
            f.blocks[bi].term = None;
        }
    }
}

/// Immediate dominators of the reachable blocks (Cooper, Harvey and Kennedy's iteration).
pub fn dominators(f: &Func) -> HashMap<B, B> {
    let rpo = f.rpo();
    let order: HashMap<B, usize> = rpo.iter().enumerate().map(|(i, &b)| (b, i)).collect();
    let mut idom: HashMap<B, B> = HashMap::new();
    idom.insert(B(0), B(0));
    let intersect = |idom: &HashMap<B, B>, mut a: B, mut b: B| {
        while a != b {
            while order[&a] > order[&b] {
                a = idom[&a];
            }
            while order[&b] > order[&a] {
                b = idom[&b];
            }
        }
        a
    };
    loop {
        let mut changed = false;
        for &b in &rpo[1..] {
            let preds: Vec<B> = f.blocks[b.0 as usize]
                .preds
                .iter()
                .copied()
                .filter(|p| idom.contains_key(p))
                .collect();
            let Some(&first) = preds.first() else {
                continue;
            };
            let mut new = first;
            for &p in &preds[1..] {
                new = intersect(&idom, p, new);
            }
            if idom.get(&b) != Some(&new) {
                idom.insert(b, new);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    idom
}

/// The children of each block in the dominator tree `idom`, in block order.
fn dominator_children(idom: &HashMap<B, B>) -> HashMap<B, Vec<B>> {
    let mut children: HashMap<B, Vec<B>> = HashMap::new();
    for (&b, &p) in idom {
        if b != p {
            children.entry(p).or_default().push(b);
        }
    }
    for c in children.values_mut() {
        c.sort();
    }
    children
}

/// Whether `a` dominates `b`.
fn dominates(idom: &HashMap<B, B>, a: B, mut b: B) -> bool {
    loop {
        if a == b {
            return true;
        }
        match idom.get(&b) {
            Some(&p) if p != b => b = p,
            _ => return false,
        }
    }
}

/// A loop: its header, the blocks in it, and the one block it is entered from (which
/// jumps only to the header), if there is one.
pub struct Loop {
    pub header: B,
    pub body: HashSet<B>,
    pub entered_from: Option<B>,
}

/// The natural loops of the region (back edges to a dominating header).
pub fn loops(f: &Func) -> Vec<Loop> {
    let idom = dominators(f);
    let mut by_header: HashMap<B, HashSet<B>> = HashMap::new();
    for &b in idom.keys() {
        for s in f.succs(b) {
            if dominates(&idom, s, b) {
                // Back edge b -> s: the body is s plus what reaches b without s.
                let body = by_header
                    .entry(s)
                    .or_insert_with(|| HashSet::from_iter([s]));
                let mut work = vec![b];
                while let Some(x) = work.pop() {
                    if body.insert(x) {
                        work.extend(f.blocks[x.0 as usize].preds.iter().copied());
                    }
                }
            }
        }
    }
    by_header
        .into_iter()
        .map(|(header, body)| {
            let outside: Vec<B> = f.blocks[header.0 as usize]
                .preds
                .iter()
                .copied()
                .filter(|p| !body.contains(p))
                .collect();
            let entered_from = match outside.as_slice() {
                [p] if f.blocks[p.0 as usize].term == Some(Term::Jump(header)) => Some(*p),
                _ => None,
            };
            Loop {
                header,
                body,
                entered_from,
            }
        })
        .collect()
}

/// Move checks on values defined outside a loop to the end of the block the loop is
/// entered from. Failing there leaves, as a side exit, for the loop's first pc with the
/// registers as they were on entering the loop: the baseline then runs the loop as written.
pub fn hoist(f: &mut Func) {
    for l in loops(f) {
        let Some(pre) = l.entered_from else { continue };
        let inside = |v: V| l.body.contains(&f.values[v.0 as usize].block);
        let mut moved: Vec<Check> = Vec::new();
        let mut blocks: Vec<B> = l.body.iter().copied().collect();
        blocks.sort();
        for b in blocks {
            let insts = std::mem::take(&mut f.blocks[b.0 as usize].insts);
            let mut kept = Vec::with_capacity(insts.len());
            for inst in insts {
                match &inst {
                    Inst::Check(c @ (Check::Zero(v) | Check::NonZero(v)), _) if !inside(*v) => {
                        if !moved.contains(c) {
                            moved.push(c.clone());
                        }
                    }
                    _ => kept.push(inst),
                }
            }
            f.blocks[b.0 as usize].insts = kept;
        }
        for c in moved {
            let regs = f.blocks[pre.0 as usize].out_regs;
            f.exits.push(Exit {
                to: ExitTo::Pc(f.blocks[l.header.0 as usize].pc),
                regs,
                not_run: 0,
                side: true,
            });
            let x = X(f.exits.len() as u32 - 1);
            f.blocks[pre.0 as usize].insts.push(Inst::Check(c, x));
        }
    }
}

/// What checks, branches, allocations and abandonments prove, applied where they dominate:
/// a value checked zero becomes the constant 0; a divisor checked non-zero, an allocated or
/// abandoned identifier and a branch condition on its non-zero side are not zero (so
/// repeated checks and selects on them fold, and a store into such an array is not into
/// array 0: it needs no test for translated code).
pub fn facts(f: &mut Func) {
    let idom = dominators(f);
    let mut consts = const_table(f);
    let zero = konst(f, &mut consts, 0);
    let children = dominator_children(&idom);
    // Facts in force: value -> is zero (else not zero). Walk the tree, each block seeing
    // the facts of the blocks that dominate it.
    let mut known: HashMap<V, bool> = HashMap::new();
    let mut stack: Vec<(B, Vec<V>)> = vec![(B(0), Vec::new())];
    // (block, facts it added: undone after its subtree) — iterative preorder.
    let mut order: Vec<(B, bool)> = vec![(B(0), true)];
    while let Some((b, enter)) = order.pop() {
        if !enter {
            let (_, added) = stack.pop().expect("a block entered");
            for v in added {
                known.remove(&v);
            }
            continue;
        }
        let mut added = Vec::new();
        // The non-zero side of a branch, entered only from its block.
        let preds = &f.blocks[b.0 as usize].preds;
        if let [p] = preds.as_slice()
            && let Some(Term::Branch { cond, nonzero, .. }) = f.blocks[p.0 as usize].term
            && nonzero == b
            && f.konst(cond).is_none()
            && known.insert(cond, false).is_none()
        {
            added.push(cond);
        }
        let mut insts = std::mem::take(&mut f.blocks[b.0 as usize].insts);
        insts.retain_mut(|inst| {
            let to_zero = |w: V| match known.get(&w) {
                Some(true) => zero,
                _ => w,
            };
            // A repeated non-zero check of a value known not zero goes.
            if let Inst::Check(Check::NonZero(w), _) = *inst
                && known.get(&w) == Some(&false)
            {
                return false;
            }
            if let Inst::Def(d) = *inst {
                let op = rewrite_op(f.op(d), &to_zero);
                // A select on a value known not zero picks its first operand.
                let op = match op {
                    Op::Select(c, t, _) if known.get(&c) == Some(&false) => Op::Select(c, t, t),
                    op => op,
                };
                f.values[d.0 as usize].op = op;
            }
            *inst = rewrite_inst(inst, &to_zero);
            // A store into an array known not to be array 0 cannot hit translated code.
            if let Inst::Amend { arr, smc, .. } = inst
                && known.get(arr) == Some(&false)
            {
                *smc = None;
            }
            let fact = match *inst {
                Inst::Check(Check::Zero(v), _) => Some((v, true)),
                Inst::Check(Check::NonZero(v), _) | Inst::Abandon { id: v, .. } => Some((v, false)),
                Inst::Def(v) if matches!(f.op(v), Op::Alloc { .. }) => Some((v, false)),
                _ => None,
            };
            if let Some((v, z)) = fact
                && f.konst(v).is_none()
                && !known.contains_key(&v)
            {
                known.insert(v, z);
                added.push(v);
            }
            true
        });
        f.blocks[b.0 as usize].insts = insts;
        if let Some(t) = &mut f.blocks[b.0 as usize].term {
            let to_zero = |w: V| match known.get(&w) {
                Some(true) => zero,
                _ => w,
            };
            *t = rewrite_term(t, &to_zero);
        }
        stack.push((b, added));
        order.push((b, false));
        for &c in children
            .get(&b)
            .map(Vec::as_slice)
            .unwrap_or(&[])
            .iter()
            .rev()
        {
            order.push((c, true));
        }
    }
}

/// Selects a branch decides. Where block `p` ends with a branch on `c`, a select on `c`
/// between two constants is the first of them on the branch's non-zero side and the second
/// on its zero side. In a side entered only from `p` and the blocks it dominates, the
/// select becomes its constant where it is a register's value or a word written out: in
/// register writes, the registers blocks start and end with, the exits only one such block
/// takes, the phis of the edges that leave them, outputs and the words amends store. A
/// select some operation, check, terminator, array or offset reads is left alone (lowering
/// expects constants there folded). Usually nothing else reads the select, and [`dce`]
/// removes it with its register write at the end of `p`: a two-way jump (`cmov` of a
/// target, then `loadprog`) then costs the branch alone.
pub fn decide_selects(f: &mut Func) {
    let order = f.rpo();
    // Selects between two constants on a condition some branch tests.
    let conds: HashSet<V> = order
        .iter()
        .filter_map(|&b| match f.blocks[b.0 as usize].term {
            Some(Term::Branch { cond, .. }) => Some(cond),
            _ => None,
        })
        .collect();
    let mut candidates: HashMap<V, (V, V, V)> = HashMap::new();
    for &b in &order {
        for inst in &f.blocks[b.0 as usize].insts {
            if let Inst::Def(v) = *inst
                && let Op::Select(c, t, e) = *f.op(v)
                && conds.contains(&c)
                && f.konst(t).is_some()
                && f.konst(e).is_some()
            {
                candidates.insert(v, (c, t, e));
            }
        }
    }
    if candidates.is_empty() {
        return;
    }
    // Those read only where a constant needs no folding, by condition.
    for &b in &order {
        let blk = &f.blocks[b.0 as usize];
        let mut pin = |v: V| {
            candidates.remove(&v);
        };
        for inst in &blk.insts {
            match *inst {
                Inst::Def(v) if !matches!(f.op(v), Op::Phi(_)) => f.op(v).each_use(&mut pin),
                Inst::Check(Check::NonZero(v) | Check::Zero(v), _)
                | Inst::Abandon { id: v, .. } => pin(v),
                Inst::Amend { arr, off, .. } => {
                    pin(arr);
                    pin(off)
                }
                _ => {}
            }
        }
        match blk.term {
            Some(Term::Branch { cond: v, .. }) | Some(Term::Switch { target: v, .. }) => pin(v),
            _ => {}
        }
    }
    let mut by_cond: HashMap<V, Vec<(V, V, V)>> = HashMap::new();
    for (&s, &(c, t, e)) in &candidates {
        by_cond.entry(c).or_default().push((s, t, e));
    }
    if by_cond.is_empty() {
        return;
    }
    let idom = dominators(f);
    let children = dominator_children(&idom);
    // How many blocks take each exit, and the phis of each block.
    let mut takers: HashMap<X, u32> = HashMap::new();
    for &b in idom.keys() {
        for x in f.exits_of(b) {
            *takers.entry(x).or_default() += 1;
        }
    }
    let mut phis: HashMap<B, Vec<V>> = HashMap::new();
    for (i, v) in f.values.iter().enumerate() {
        if matches!(v.op, Op::Phi(_)) {
            phis.entry(v.block).or_default().push(V(i as u32));
        }
    }
    // Walk the dominator tree with the selects decided where each block runs.
    // (A preorder walk: each block adds what its branch decided, undone after its subtree.)
    let mut decided: HashMap<V, V> = HashMap::new();
    let mut walk: Vec<(B, Option<Vec<V>>)> = vec![(B(0), None)];
    while let Some((b, undo)) = walk.pop() {
        if let Some(added) = undo {
            for s in added {
                decided.remove(&s);
            }
            continue;
        }
        let mut added = Vec::new();
        let bi = b.0 as usize;
        if let [p] = f.blocks[bi].preds[..]
            && let Some(Term::Branch {
                cond,
                nonzero,
                zero,
            }) = f.blocks[p.0 as usize].term
            && nonzero != zero
            && let Some(selects) = by_cond.get(&cond)
        {
            for &(s, t, e) in selects {
                // Only a select made before the branch (one made after it is computed
                // where it is needed, if anywhere). A select already decided above stays
                // as it was decided there.
                if !dominates(&idom, f.values[s.0 as usize].block, p) {
                    continue;
                }
                if let std::collections::hash_map::Entry::Vacant(v) = decided.entry(s) {
                    v.insert(if b == nonzero { t } else { e });
                    added.push(s);
                }
            }
        }
        let to = |v: V| decided.get(&v).copied().unwrap_or(v);
        if !decided.is_empty() {
            let blk = &mut f.blocks[bi];
            for r in blk.in_regs.iter_mut().chain(blk.out_regs.iter_mut()) {
                *r = to(*r);
            }
            for inst in &mut blk.insts {
                match inst {
                    Inst::Set(_, v) | Inst::Output { v, .. } | Inst::Amend { val: v, .. } => {
                        *v = to(*v)
                    }
                    _ => {}
                }
            }
            for x in f.exits_of(b) {
                if takers.get(&x) == Some(&1) {
                    rewrite_exit(&mut f.exits[x.0 as usize], &to);
                }
            }
        }
        // The phi operands of this block's edges: what is decided here, and on an edge of
        // a branch, what the branch decides for that side.
        let branch = match f.blocks[bi].term {
            Some(Term::Branch {
                cond,
                nonzero,
                zero,
            }) if nonzero != zero => by_cond.get(&cond).map(|selects| (nonzero, selects)),
            _ => None,
        };
        if !decided.is_empty() || branch.is_some() {
            for s in f.succs(b) {
                let Some(join_phis) = phis.get(&s) else {
                    continue;
                };
                let preds = &f.blocks[s.0 as usize].preds;
                let Some(k) = preds.iter().position(|&q| q == b) else {
                    continue;
                };
                for &phi in join_phis {
                    if let Op::Phi(ops) = &mut f.values[phi.0 as usize].op
                        && let Some(o) = ops.get_mut(k)
                    {
                        let mut w = to(*o);
                        if let Some((nonzero, selects)) = branch
                            && let Some(&(_, t, e)) = selects.iter().find(|x| x.0 == w)
                        {
                            w = if s == nonzero { t } else { e };
                        }
                        *o = w;
                    }
                }
            }
        }
        walk.push((b, Some(added)));
        for &c in children.get(&b).into_iter().flatten() {
            walk.push((c, None));
        }
    }
}

/// Remove pure values nothing uses (counting exits and the register writes that stay), and
/// the register writes of them that nothing reads (see [`Block::droppable_sets`]).
pub fn dce(f: &mut Func) {
    loop {
        let (main, exits) = f.use_counts();
        let dead_values: Vec<bool> = (0..f.values.len())
            .map(|i| main[i] == 0 && exits[i] == 0 && !f.values[i].op.has_effect())
            .collect();
        let dead = |v: V| dead_values[v.0 as usize];
        let mut removed = false;
        for b in &mut f.blocks {
            let before = b.insts.len();
            let droppable = b.droppable_sets();
            let mut k = 0;
            b.insts.retain(|inst| {
                let keep = match *inst {
                    Inst::Def(v) => !dead(v),
                    Inst::Set(_, v) => !(dead(v) && droppable[k]),
                    _ => true,
                };
                k += 1;
                keep
            });
            removed |= b.insts.len() != before;
        }
        if !removed {
            break;
        }
        // Uses by the values removed are gone too: count again.
        for i in 0..f.values.len() {
            if dead(V(i as u32)) && !matches!(f.values[i].op, Op::Const(_) | Op::Entry(_)) {
                f.values[i].op = Op::Const(0xDEAD_DEAD);
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::assembler::assemble;
    use crate::region::{build, form};

    /// The optimized IR of the region at pc 0 of `src` (every block counts as run); also
    /// for the tests of lowering.
    pub(crate) fn optimized(src: &str) -> Func {
        let program = assemble(src).unwrap();
        let plan = form::form(&program, 0, 256, &form::Seen::EVERYTHING_RAN);
        let mut f = build::build(&plan, &|_| false).func;
        optimize(&mut f, Passes::default());
        f
    }

    fn defined_ops(f: &Func) -> Vec<Op> {
        f.blocks
            .iter()
            .flat_map(|b| &b.insts)
            .filter_map(|i| match i {
                Inst::Def(v) => Some(f.op(*v).clone()),
                _ => None,
            })
            .collect()
    }

    /// A two-way jump (`cmov` of the target, `loadprog`) whose target register each side
    /// outputs, overwrites or carries into a join: the branch decides the select, which
    /// then goes. An operation that reads the select keeps it.
    #[test]
    fn a_branch_decides_the_select_of_its_target() {
        let two_way = |before_jump: &str| {
            optimized(&format!(
                "
                    literal r0, 0         ; (else the jump checks r0 with the select in r4)
                    input r1
                    literal r4, zero
                    literal r5, nonzero
                    cmov r4, r5, r1
                    {before_jump}
                    loadprog r0, r4
                nonzero:
                    output r4
                    halt
                zero:
                    literal r4, 'z'
                    output r4
                    input r1
                    literal r4, nonzero
                    loadprog r0, r4
                "
            ))
        };
        let selects = |f: &Func| {
            defined_ops(f)
                .iter()
                .filter(|o| matches!(o, Op::Select(..)))
                .count()
        };
        // `nonzero` is entered from `zero` too: it starts with r4 = a phi of the select's
        // constant and `nonzero`.
        let f = two_way("");
        assert_eq!(selects(&f), 0, "{f}");
        let f = two_way("add r3, r4, r1");
        assert_eq!(selects(&f), 1, "{f}");
    }

    /// A store into an array that a branch proved not zero (on the branch's non-zero side),
    /// or that was just allocated, cannot be into array 0, so it has no test for translated
    /// code; the same store before the branch, and a store into an array nothing is known
    /// of, keep theirs.
    #[test]
    fn a_store_into_an_array_known_not_zero_has_no_code_test() {
        let f = optimized(
            "
                literal r0, 0
                input r2
                input r3
                input r6
                alloc r7, r3
                amend r7, r0, r3      ; allocated: not 0
                amend r2, r3, r3      ; r2 may be 0: tested
                literal r4, zero
                literal r5, nonzero
                cmov r4, r5, r2
                loadprog r0, r4
            nonzero:
                amend r2, r3, r6      ; r2 is not 0 here
                amend r6, r3, r2      ; r6 may be 0: tested
                halt
            zero:
                halt
            ",
        );
        let mut tested = Vec::new();
        for b in &f.blocks {
            for i in &b.insts {
                if let Inst::Amend { smc, .. } = i {
                    tested.push(smc.is_some());
                }
            }
        }
        tested.sort();
        assert_eq!(tested, [false, false, true, true], "{f}");
    }

    /// `nand r4, r4, r2` then `nand r4, r4, r4` (how UM code ands, in place): one and.
    #[test]
    fn a_nand_then_its_not_become_one_and() {
        let f = optimized(
            "
                input r4
                input r2
                nand r4, r4, r2
                nand r4, r4, r4
                output r4
                halt
            ",
        );
        let ops = defined_ops(&f);
        assert!(ops.iter().any(|o| matches!(o, Op::And(..))), "{f}");
        assert!(
            !ops.iter()
                .any(|o| matches!(o, Op::Not(_) | Op::Bin(BinOp::Nand, ..))),
            "{f}"
        );
    }

    /// `x - 3`, then `+ 1`, then `+ k` (the input still in its register): one addition,
    /// of the sum of the constants, or none when that is zero. With the input overwritten
    /// (and each sum overwriting the one before), no operand of a fold is left to read.
    #[test]
    fn additions_of_constants_fold_into_one() {
        let count_adds = |f: &Func| {
            defined_ops(f)
                .iter()
                .filter(|o| matches!(o, Op::Bin(BinOp::Add, ..)))
                .count()
        };
        let sums = |last: u32, clobber: &str| {
            optimized(&format!(
                "
                    input r1
                    literal r5, 2
                    nand r5, r5, r5      ; r5 = -3
                    add r6, r1, r5       ; r6 = r1 - 3
                    {clobber}
                    literal r7, 1
                    add r6, r6, r7       ; r6 = r1 - 2
                    literal r7, {last}
                    add r6, r6, r7
                    output r6
                    halt
                "
            ))
        };
        let f = sums(2, "");
        assert_eq!(count_adds(&f), 0, "r1 - 3 + 1 + 2 is r1\n{f}");
        let f = sums(5, "");
        assert_eq!(count_adds(&f), 1, "r1 - 3 + 1 + 5 is r1 + 3\n{f}");
        let f = sums(5, "input r1");
        assert_eq!(
            count_adds(&f),
            3,
            "r1 is overwritten, then r6: nothing folds\n{f}"
        );
    }

    /// The same, but the nand is output before the not: both stay.
    #[test]
    fn a_nand_read_elsewhere_stays() {
        let f = optimized(
            "
                input r4
                input r2
                nand r4, r4, r2
                output r4
                nand r4, r4, r4
                output r4
                halt
            ",
        );
        let ops = defined_ops(&f);
        assert!(
            ops.iter().any(|o| matches!(o, Op::Bin(BinOp::Nand, ..))),
            "{f}"
        );
        assert!(ops.iter().any(|o| matches!(o, Op::Not(_))), "{f}");
    }

    /// The loads of a region in order, each with the index (in that order) of the earlier
    /// load it is known to read the same as, if any (`usize::MAX` for a stored value that
    /// is not a load).
    fn same_loads(src: &str) -> Vec<Option<usize>> {
        let f = optimized(src);
        let loads: Vec<V> = f
            .blocks
            .iter()
            .flat_map(|b| &b.insts)
            .filter_map(|i| match *i {
                Inst::Def(v) if matches!(f.op(v), Op::Index { .. }) => Some(v),
                _ => None,
            })
            .collect();
        loads
            .iter()
            .map(|v| {
                let c = f.canonical(*v);
                (c != *v).then(|| loads.iter().position(|&w| w == c).unwrap_or(usize::MAX))
            })
            .collect()
    }

    /// What ends the knowledge of a word: each load below reads word 1 of the array in r2
    /// again after something that may have changed it, or that did not.
    #[test]
    fn same_words_follows_stores_and_abandonments() {
        let none = None;
        let stored = Some(usize::MAX);
        let loads = same_loads(
            "
                input r2
                input r3
                input r4
                input r6
                literal r1, 1
                literal r0, 0
                index r7, r2, r1   ; 0
                index r5, r2, r1   ; 1: as 0
                amend r2, r0, r4   ; another constant word
                index r5, r2, r1   ; 2: as 0
                amend r3, r0, r4   ; another constant word of another array
                index r5, r2, r1   ; 3: as 0
                amend r3, r1, r4   ; the same word of another array (maybe r2's)
                index r5, r2, r1   ; 4: anew
                amend r2, r6, r4   ; a variable word
                index r5, r2, r1   ; 5: anew
                amend r2, r1, r4   ; the word itself: a store's value
                index r5, r2, r1   ; 6: r4
                abandon r3
                index r5, r2, r1   ; 7: anew
                index r5, r2, r1   ; 8: as 7
                alloc r3, r1
                output r3
                index r5, r2, r1   ; 9: as 7
                halt
            ",
        );
        assert_eq!(
            loads,
            [
                none,
                Some(0),
                Some(0),
                Some(0),
                none,
                none,
                stored,
                none,
                Some(7),
                Some(7)
            ]
        );
    }
}

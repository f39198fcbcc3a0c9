//! Region formation: from a hot pc, the blocks of UM code that run together.
//!
//! Starting at the seed, the former follows what a block's own code says about where it
//! goes next: the next pc when the block was cut short, a constant jump, both sides of the
//! two-way `literal T; literal F; cmov; loadprog` idiom, and for a computed jump the targets
//! the baseline code saw (its profile), each to be guarded. A jump to a block already in
//! the region (a loop) stays inside; everything else leaves it. So does a jump to a pc
//! where another region starts: that code is already compiled on its own, and copying it
//! into every region that reaches it (the loops of a routine called from many hot places,
//! such as UMIX's garbage collector) costs compile time and code size for no speed: on a
//! UMIX session the copies doubled the UM operations in regions, and the session ran 10 %
//! slower than with each region chained to the others. Last, a block reached by a jump
//! backwards that baseline code has counted fewer than [`COLD_JUMPS`] times is left out: a
//! path rarely taken, such as the entry of a garbage collector that every allocation site
//! jumps to when its budget runs out (sandmark's at pc 4248, UMIX's at 4250). Baseline
//! blocks count exactly those jumps (and computed ones) for the tier, so a path that is
//! hot was counted many times before the region's seed got hot; one that turns hot later
//! gets a region of its own. A region stops growing at
//! [`MAX_NODES`] blocks or [`MAX_OPS`] UM operations; it never follows a halt, an invalid
//! opcode or a load program from another array.

use crate::decoder::Op;
use crate::discoverer::{End, Run, discover};
use crate::translator::jumps_back;
use foldhash::{HashMap, HashMapExt};

/// The most blocks in a region.
pub const MAX_NODES: usize = 64;
/// The most UM operations in a region. The tier costs several times what baseline
/// translation does per operation, and on a UMIX session 1024 compiled twice the code of
/// 384 (4096 a third more again) for no gain elsewhere.
pub const MAX_OPS: usize = 384;
/// A block reached by a jump backwards is taken in once baseline code has counted this
/// many jumps into it (see the module's description). Leaving such blocks out took
/// sandmark's regions from 25,379 UM operations to 16,491 (the collector's entry had been
/// copied into nearly every one); run times moved by 2 % at most, within noise.
pub const COLD_JUMPS: u32 = 64;

/// Where control goes from a block of the region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Edge {
    /// Block `i` of the region.
    Node(usize),
    /// Out of the region, to this pc.
    Out(u32),
}

/// How a block of the region ends, as its own code says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ending {
    /// The block was cut short (length cap): execution continues at the next pc.
    Next(Edge),
    /// A jump to a constant target.
    Jump(Edge),
    /// The two-way idiom on register `cond`: `nonzero` when it is not zero, else `zero`.
    TwoWay { cond: u8, nonzero: Edge, zero: Edge },
    /// A jump through register `reg` to a target known only at run time; `predicted` are
    /// the targets seen, most recent first.
    Computed { reg: u8, predicted: Vec<Edge> },
    /// The block leaves through its last operation (halt, invalid opcode, load program
    /// from another array, the end of array 0).
    Stop,
}

/// A block of the region: its operations and where they go.
#[derive(Clone, Debug)]
pub struct Node {
    pub run: Run,
    pub ending: Ending,
}

/// A region: `nodes[0]` starts at the seed.
#[derive(Clone, Debug)]
pub struct Plan {
    pub nodes: Vec<Node>,
}

impl Plan {
    /// UM operations in the region.
    pub fn ops(&self) -> usize {
        self.nodes.iter().map(|n| n.run.ops.len()).sum()
    }

    /// The pc of block `i`.
    pub fn start(&self, i: usize) -> u32 {
        self.nodes[i].run.start
    }
}

/// What is known of a register's value in a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum K {
    Unknown,
    Const(u32),
    /// One of two constants (a cmov chose).
    Either(u32, u32),
}

/// The registers after the run's operations (its last one, a jump, aside), from `regs` on
/// entry.
fn eval(run: &Run, mut regs: [K; 8]) -> [K; 8] {
    let body = match run.end {
        End::Terminator => &run.ops[..run.ops.len() - 1],
        _ => &run.ops[..],
    };
    for ins in body {
        let (a, b, c) = (ins.a as usize, ins.b as usize, ins.c as usize);
        match ins.op {
            Op::Literal => regs[a] = K::Const(ins.value),
            Op::CMov => match (regs[a], regs[b], regs[c]) {
                (_, _, K::Const(0)) => {}
                (_, kb, K::Const(_)) => regs[a] = kb,
                (K::Const(f), K::Const(t), _) if f != t => regs[a] = K::Either(t, f),
                (K::Const(f), K::Const(t), _) if f == t => {}
                _ => regs[a] = K::Unknown,
            },
            Op::Index | Op::Add | Op::Mul | Op::Div | Op::Nand => regs[a] = K::Unknown,
            Op::Alloc => regs[b] = K::Unknown,
            Op::Input => regs[c] = K::Unknown,
            _ => {}
        }
    }
    regs
}

/// What a run's last operation does, from the constants its own operations load (this is
/// what the region's code relies on), and the targets a computed jump may take given what
/// is known on entry (`entry`, from the block the run was reached from: a prediction,
/// checked when the region runs).
fn classify(run: &Run, entry: [K; 8]) -> (Ending, Vec<u32>) {
    let regs = eval(run, [K::Unknown; 8]);
    let last = run.ops[run.ops.len() - 1];
    match (run.end, last.op) {
        (End::Cap, _) => (Ending::Next(Edge::Out(run.next_pc())), vec![]),
        (End::Terminator, Op::LoadProg) => {
            // A jump only when register B is known to be 0, or not known (then guarded).
            if matches!(regs[last.b as usize], K::Const(b) if b != 0) {
                return (Ending::Stop, vec![]);
            }
            match regs[last.c as usize] {
                K::Const(t) => (Ending::Jump(Edge::Out(t)), vec![]),
                K::Either(t, f) => {
                    // The cmov that chose between them names the condition register.
                    let cond = run.ops[..run.ops.len() - 1]
                        .iter()
                        .rev()
                        .find(|i| i.op == Op::CMov && i.a == last.c)
                        .map(|i| i.c)
                        .expect("an either value comes from a cmov");
                    let ending = Ending::TwoWay {
                        cond,
                        nonzero: Edge::Out(t),
                        zero: Edge::Out(f),
                    };
                    (ending, vec![])
                }
                K::Unknown => {
                    let ending = Ending::Computed {
                        reg: last.c,
                        predicted: vec![],
                    };
                    let known = match eval(run, entry)[last.c as usize] {
                        K::Const(t) => vec![t],
                        K::Either(t, f) => vec![t, f],
                        K::Unknown => vec![],
                    };
                    (ending, known)
                }
            }
        }
        _ => (Ending::Stop, vec![]),
    }
}

/// What the code cache knows of the code around a seed, which decides what the former
/// takes in: every question is about a pc of array 0.
pub struct Seen<'a> {
    /// Whether the block at the pc has run (paths not yet taken stay side exits, so that a
    /// region is what is hot, not all that is reachable).
    pub entered: &'a dyn Fn(u32) -> bool,
    /// Whether another region starts there (its code is left to it).
    pub claimed: &'a dyn Fn(u32) -> bool,
    /// The jumps into the pc that baseline code counted (a block reached by a jump
    /// backwards with fewer than [`COLD_JUMPS`] is left out).
    pub counted: &'a dyn Fn(u32) -> u32,
    /// The targets seen for the computed jump at that word, most recent first.
    pub predicted: &'a dyn Fn(u32) -> Vec<u32>,
}

#[cfg(test)]
impl Seen<'static> {
    /// For tests: every block has run often, none is claimed, no computed jump was seen.
    pub(crate) const EVERYTHING_RAN: Seen<'static> = Seen {
        entered: &|_| true,
        claimed: &|_| false,
        counted: &|_| u32::MAX,
        predicted: &|_| Vec::new(),
    };
}

/// Form the region that starts at `seed` (inside `program`, array 0), with blocks of at
/// most `max_block` operations, taking in what `seen` says is hot (see [`Seen`]).
pub fn form(program: &[u32], seed: u32, max_block: u32, seen: &Seen) -> Plan {
    let mut nodes: Vec<Node> = Vec::new();
    let mut index: HashMap<u32, usize> = HashMap::new();
    let mut ops = 0;
    let mut queue = std::collections::VecDeque::from([seed]);
    index.insert(seed, 0);
    // Blocks are numbered as they are discovered; a pc is enqueued once.
    // What is known of the registers on entry to each block, from the block it was first
    // reached from (for predicting computed jumps only).
    let mut entry: Vec<[K; 8]> = vec![[K::Unknown; 8]];
    while let Some(pc) = queue.pop_front() {
        let run = discover(program, pc, max_block);
        ops += run.ops.len();
        let node = nodes.len();
        let (mut ending, known) = classify(&run, entry[node]);
        if let Ending::Computed { predicted: p, .. } = &mut ending {
            let mut targets = known;
            for t in (seen.predicted)(run.next_pc() - 1) {
                if !targets.contains(&t) {
                    targets.push(t);
                }
            }
            *p = targets.into_iter().take(4).map(Edge::Out).collect();
        }
        let out = eval(&run, entry[node]);
        nodes.push(Node { run, ending });
        // Resolve edges to blocks in (or now added to) the region.
        let room = |n: usize, ops: usize| n < MAX_NODES && ops < MAX_OPS;
        let from = nodes[node].run.start;
        let mut edges = edges_mut(&mut nodes[node].ending);
        for e in edges.iter_mut() {
            let Edge::Out(t) = **e else { continue };
            if (t as usize) >= program.len() {
                continue;
            }
            if let Some(&i) = index.get(&t) {
                **e = Edge::Node(i);
            } else if room(index.len(), ops)
                && (seen.entered)(t)
                && !(seen.claimed)(t)
                && !(jumps_back(from, t) && (seen.counted)(t) < COLD_JUMPS)
            {
                let i = index.len();
                index.insert(t, i);
                queue.push_back(t);
                entry.push(out);
                **e = Edge::Node(i);
            }
        }
    }
    Plan { nodes }
}

/// The edges of an ending, to resolve.
fn edges_mut(e: &mut Ending) -> Vec<&mut Edge> {
    match e {
        Ending::Next(x) | Ending::Jump(x) => vec![x],
        Ending::TwoWay { nonzero, zero, .. } => vec![nonzero, zero],
        Ending::Computed { predicted, .. } => predicted.iter_mut().collect(),
        Ending::Stop => vec![],
    }
}

/// The edges of an ending.
pub fn edges(e: &Ending) -> Vec<Edge> {
    match e {
        Ending::Next(x) | Ending::Jump(x) => vec![*x],
        Ending::TwoWay { nonzero, zero, .. } => vec![*nonzero, *zero],
        Ending::Computed { predicted, .. } => predicted.clone(),
        Ending::Stop => vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assembler::assemble;

    /// A loop of three rounds (the test at its head in r7), followed by `done`.
    const LOOP: &str = "
                literal r7, 3
        loop:   literal r1, body
                literal r2, done
                cmov r2, r1, r7
                loadprog r0, r2
        body:   nand r6, r0, r0
                add r7, r7, r6
                literal r5, loop
                loadprog r0, r5
";

    #[test]
    fn a_loop_with_a_two_way_branch_and_a_computed_return() {
        let p = assemble(&format!("{LOOP}        done:   loadprog r0, r3\n")).unwrap();
        let predicted = |pc| if pc == 9 { vec![1, 4] } else { vec![] };
        let seen = Seen {
            predicted: &predicted,
            ..Seen::EVERYTHING_RAN
        };
        let plan = form(&p, 1, 256, &seen);
        let starts: Vec<u32> = plan.nodes.iter().map(|n| n.run.start).collect();
        assert_eq!(starts, [1, 5, 9, 4]);
        assert_eq!(
            plan.nodes[0].ending,
            Ending::TwoWay {
                cond: 7,
                nonzero: Edge::Node(1),
                zero: Edge::Node(2)
            }
        );
        assert_eq!(plan.nodes[1].ending, Ending::Jump(Edge::Node(0)));
        // The computed jump's predicted targets: the loop head, and pc 4 (mid-block: a
        // block of its own, appended).
        match &plan.nodes[2].ending {
            Ending::Computed { reg, predicted } => {
                assert_eq!(*reg, 3);
                assert_eq!(predicted, &[Edge::Node(0), Edge::Node(3)]);
            }
            e => panic!("{e:?}"),
        }
        assert_eq!(plan.nodes[3].run.start, 4);
    }

    #[test]
    fn limits_and_stops() {
        // Load program from an array known not to be 0 ends the region.
        let p = assemble("literal r1, 5\nliteral r2, 1\nloadprog r2, r1\nhalt\n").unwrap();
        let plan = form(&p, 0, 256, &Seen::EVERYTHING_RAN);
        assert_eq!(plan.nodes.len(), 1);
        assert_eq!(plan.nodes[0].ending, Ending::Stop);
        // From an array not known: a jump (guarded in the region's code that B is 0).
        let p = assemble("literal r1, 3\nalloc r2, r1\nloadprog r2, r1\nhalt\n").unwrap();
        let plan = form(&p, 0, 256, &Seen::EVERYTHING_RAN);
        assert_eq!(plan.nodes.len(), 2);
        assert_eq!(plan.nodes[0].ending, Ending::Jump(Edge::Node(1)));
        // A long chain of blocks stops at MAX_NODES, the rest leaving the region.
        let chain = "literal r1, 1\n".repeat(200);
        let p = assemble(&(chain + "halt\n")).unwrap();
        let plan = form(&p, 0, 2, &Seen::EVERYTHING_RAN);
        assert_eq!(plan.nodes.len(), MAX_NODES);
        assert!(matches!(
            plan.nodes.last().unwrap().ending,
            Ending::Next(Edge::Out(_))
        ));
    }

    /// The region formed from pc 1 when another region starts at `claimed`.
    fn form_from_1_with_a_region_at(p: &[u32], claimed: u32) -> Plan {
        let seen = Seen {
            claimed: &|pc| pc == claimed,
            ..Seen::EVERYTHING_RAN
        };
        form(p, 1, 256, &seen)
    }

    #[test]
    fn code_where_another_region_starts_stays_outside() {
        let p = assemble(&format!("{LOOP}        done:   halt\n")).unwrap();
        // Another region starts at the loop's body (pc 5): the region leaves for it, and
        // what lies beyond it (the jump back to the head) is not taken in either.
        let plan = form_from_1_with_a_region_at(&p, 5);
        let starts: Vec<u32> = plan.nodes.iter().map(|n| n.run.start).collect();
        assert_eq!(starts, [1, 9]);
        assert_eq!(
            plan.nodes[0].ending,
            Ending::TwoWay {
                cond: 7,
                nonzero: Edge::Out(5),
                zero: Edge::Node(1)
            }
        );
        // The seed itself may be where a region starts (one compiled again): it is formed.
        let plan = form_from_1_with_a_region_at(&p, 1);
        let starts: Vec<u32> = plan.nodes.iter().map(|n| n.run.start).collect();
        assert_eq!(starts, [1, 5, 9]);
        assert_eq!(plan.nodes[1].ending, Ending::Jump(Edge::Node(0)));
    }

    #[test]
    fn a_jump_backwards_rarely_counted_stays_outside() {
        let p = assemble(&format!("{LOOP}        done:   halt\n")).unwrap();
        // From the loop's body (pc 5), the jump back to the head (pc 1): counted only a
        // few times, the head is left out; counted often, it is taken in.
        let few = |pc| if pc == 1 { COLD_JUMPS - 1 } else { 0 };
        let plan = form(
            &p,
            5,
            256,
            &Seen {
                counted: &few,
                ..Seen::EVERYTHING_RAN
            },
        );
        assert_eq!(plan.nodes.len(), 1);
        assert_eq!(plan.nodes[0].ending, Ending::Jump(Edge::Out(1)));
        let often = |pc| if pc == 1 { COLD_JUMPS } else { 0 };
        let plan = form(
            &p,
            5,
            256,
            &Seen {
                counted: &often,
                ..Seen::EVERYTHING_RAN
            },
        );
        let starts: Vec<u32> = plan.nodes.iter().map(|n| n.run.start).collect();
        assert_eq!(starts, [5, 1, 9]);
        // Blocks reached forwards (here the loop's exit at pc 9, counted 0 times) are
        // taken in whatever their count.
        assert_eq!(
            plan.nodes[1].ending,
            Ending::TwoWay {
                cond: 7,
                nonzero: Edge::Node(0),
                zero: Edge::Node(2)
            }
        );
    }

    #[test]
    fn paths_not_yet_taken_stay_outside() {
        let p = assemble(&format!("{LOOP}        done:   halt\n")).unwrap();
        // Only the loop has run: `done` (pc 9) is left as an exit.
        let plan = form(
            &p,
            1,
            256,
            &Seen {
                entered: &|pc| pc != 9,
                ..Seen::EVERYTHING_RAN
            },
        );
        let starts: Vec<u32> = plan.nodes.iter().map(|n| n.run.start).collect();
        assert_eq!(starts, [1, 5]);
        assert_eq!(
            plan.nodes[0].ending,
            Ending::TwoWay {
                cond: 7,
                nonzero: Edge::Node(1),
                zero: Edge::Out(9)
            }
        );
    }
}

//! The block discoverer: from a pc, the straight-line run of UM operations that the
//! translator turns into one block.

use crate::decoder::Instr;

/// How a run of operations ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// The last operation ends the block (load program, halt, an invalid opcode).
    Terminator,
    /// The length cap was reached; execution continues at `next_pc`.
    Cap,
    /// Array 0 ends after the last operation; executing `next_pc` is a fetch fault.
    OffEnd,
}

/// A discovered block: its operations, decoded once.
#[derive(Clone, Debug)]
pub struct Run {
    pub start: u32,
    pub ops: Vec<Instr>,
    pub end: End,
}

impl Run {
    /// The pc after the last operation.
    pub fn next_pc(&self) -> u32 {
        self.start + self.ops.len() as u32
    }

    /// Whether the run's operations include the word at `pc`.
    pub fn covers(&self, pc: u32) -> bool {
        self.start <= pc && pc < self.next_pc()
    }

    /// The pc of operation `i`.
    pub fn pc(&self, i: usize) -> u32 {
        self.start + i as u32
    }
}

/// Cut array 0 (`program`) into the run that starts at `pc` (which must be inside it),
/// at most `max_ops` long (at least 1).
pub fn discover(program: &[u32], pc: u32, max_ops: u32) -> Run {
    debug_assert!((pc as usize) < program.len());
    let mut ops = Vec::new();
    let mut at = pc as usize;
    let end = loop {
        let i = Instr::decode(program[at]);
        ops.push(i);
        at += 1;
        if i.op.ends_block() {
            break End::Terminator;
        }
        if at >= program.len() {
            break End::OffEnd;
        }
        if ops.len() as u32 >= max_ops.max(1) {
            break End::Cap;
        }
    };
    Run {
        start: pc,
        ops,
        end,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assembler::assemble;
    use crate::decoder::Op;

    #[test]
    fn cuts_at_terminators_caps_and_the_end() {
        let p =
            assemble("literal r1, 1\nadd r1, r1, r1\nloadprog r0, r1\nhalt\noutput r1").unwrap();
        let r = discover(&p, 0, 100);
        assert_eq!(r.ops.len(), 3);
        assert_eq!(r.end, End::Terminator);
        assert_eq!(r.ops[2].op, Op::LoadProg);
        assert_eq!(r.next_pc(), 3);
        let r = discover(&p, 1, 1);
        assert_eq!((r.ops.len(), r.end), (1, End::Cap));
        let r = discover(&p, 4, 100);
        assert_eq!((r.ops.len(), r.end), (1, End::OffEnd));
        let r = discover(&p, 3, 100);
        assert_eq!((r.ops.len(), r.end), (1, End::Terminator));
    }
}

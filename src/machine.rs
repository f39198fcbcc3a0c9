//! The state of a Universal Machine, shared by every engine.

use crate::console::Console;
use crate::decoder::Op;
use crate::fault::{Reason, Stop};
use crate::memory::{Heap, Words};

pub struct Machine {
    pub regs: [u32; 8],
    /// The execution finger: the next instruction to run. After a run ends it names the
    /// instruction that halted or faulted.
    pub pc: u32,
    pub heap: Box<Heap>,
    pub console: Console,
    /// Instructions executed per opcode, when the engine was asked to count.
    pub op_counts: [u64; 16],
}

impl Machine {
    /// A machine about to run `program` from pc 0 with all registers zero; fails when the
    /// program itself does not fit within `memory_limit`.
    pub fn new(program: &[u32], console: Console, memory_limit: u64) -> Result<Machine, Reason> {
        Machine::from_words(Words::from_slice(program)?, console, memory_limit)
    }

    /// As [`Machine::new`], with `program`'s buffer becoming array 0 as it is (no copy).
    pub fn from_words(
        program: Words,
        console: Console,
        memory_limit: u64,
    ) -> Result<Machine, Reason> {
        let heap = Heap::from_words(program, memory_limit)?;
        Ok(Machine {
            regs: [0; 8],
            pc: 0,
            heap,
            console,
            op_counts: [0; 16],
        })
    }

    /// Total instructions counted.
    pub fn instructions(&self) -> u64 {
        self.op_counts.iter().sum()
    }

    /// Flush the console after the run ended; a failed write becomes the run's result.
    pub fn finish(&mut self, result: Result<(), Stop>) -> Result<(), Stop> {
        match (result, self.console.flush()) {
            (Err(s), _) => Err(s),
            (Ok(()), Err(reason)) => Err(Stop::at(self.pc, Some(Op::Halt), reason)),
            (Ok(()), Ok(())) => Ok(()),
        }
    }
}

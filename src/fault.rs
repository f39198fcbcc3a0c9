//! How a run ends when the program does not halt: a [`Fault`] (the "may Fail" cases of the
//! specification, reported the same way by every engine), or a [`Stop`] asked for from
//! outside (a signal, a step budget).

use crate::decoder::Op;
use std::fmt;

/// Why the machine failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The execution finger points past the end of array 0.
    PcOutOfBounds {
        len: u32,
    },
    /// Opcode 14 or 15.
    InvalidOpcode(u32),
    /// Index, amend or load program named an identifier that is not active.
    InactiveArray(u32),
    /// Index or amend past the end of an active array.
    OutOfBounds {
        id: u32,
        offset: u32,
        len: u32,
    },
    /// Abandon of array 0.
    AbandonZero,
    DivisionByZero,
    OutputTooLarge(u32),
    /// An allocation the host cannot (or may not) satisfy.
    OutOfMemory {
        words: u32,
    },
    /// No identifier is left to hand out (2^32 - 1 arrays are live).
    OutOfIdentifiers,
    /// The console could not be read or written.
    Io(String),
    /// Standard output is a pipe whose reader has gone (as with `umdbt run prog | head`):
    /// the run stops there, as it would on SIGPIPE (see `cli::EXIT_SIGNAL_BASE`).
    OutputClosed,
    /// A signal arrived while the console waited for input (not a fault: the engines turn
    /// it into [`Stop::Interrupted`] at the input instruction).
    Interrupted(i32),
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::PcOutOfBounds { len } => {
                write!(f, "execution finger outside array 0 (length {len})")
            }
            Reason::InvalidOpcode(n) => write!(f, "invalid opcode {n}"),
            Reason::InactiveArray(id) => write!(f, "array {id} is not active"),
            Reason::OutOfBounds { id, offset, len } => {
                write!(f, "offset {offset} outside array {id} (length {len})")
            }
            Reason::AbandonZero => write!(f, "abandoning array 0"),
            Reason::DivisionByZero => write!(f, "division by zero"),
            Reason::OutputTooLarge(v) => write!(f, "output value {v} is larger than 255"),
            Reason::OutOfMemory { words } => {
                write!(
                    f,
                    "cannot allocate an array of {words} words: out of memory"
                )
            }
            Reason::OutOfIdentifiers => write!(f, "no array identifier left"),
            Reason::Io(msg) => write!(f, "{msg}"),
            Reason::OutputClosed => write!(f, "standard output was closed by its reader"),
            Reason::Interrupted(sig) => write!(f, "interrupted by signal {sig}"),
        }
    }
}

/// A fault: where the machine was, what it was doing and why it failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    pub pc: u32,
    /// The operator being executed; `None` when the instruction could not be fetched.
    pub op: Option<Op>,
    pub reason: Reason,
}

impl Fault {
    pub fn new(pc: u32, op: Op, reason: Reason) -> Fault {
        Fault {
            pc,
            op: Some(op),
            reason,
        }
    }
}

impl fmt::Display for Fault {
    /// `fault at pc N (OPNAME): REASON`; the CLI puts `umdbt: ` in front.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.op.map_or("fetch", Op::name);
        write!(f, "fault at pc {} ({name}): {}", self.pc, self.reason)
    }
}

impl std::error::Error for Fault {}

/// Why a run ended without halting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stop {
    /// The program failed.
    Fault(Fault),
    /// A signal (SIGINT, SIGTERM, SIGHUP) asked umdbt to stop; `pc` is the next
    /// instruction.
    Interrupted { pc: u32, signal: i32 },
    /// `--max-steps`: `limit` instructions ran; `pc` is the next instruction.
    StepLimit { pc: u32, limit: u64 },
}

impl Stop {
    /// The instruction that faulted, or the next one to run.
    pub fn pc(&self) -> u32 {
        match self {
            Stop::Fault(f) => f.pc,
            Stop::Interrupted { pc, .. } | Stop::StepLimit { pc, .. } => *pc,
        }
    }

    /// The fault, if the program failed.
    pub fn fault(&self) -> Option<&Fault> {
        match self {
            Stop::Fault(f) => Some(f),
            _ => None,
        }
    }

    /// A fault at `pc` for `reason`, or the interruption it stands for.
    pub fn at(pc: u32, op: Option<Op>, reason: Reason) -> Stop {
        match reason {
            Reason::Interrupted(signal) => Stop::Interrupted { pc, signal },
            reason => Stop::Fault(Fault { pc, op, reason }),
        }
    }
}

impl From<Fault> for Stop {
    fn from(f: Fault) -> Stop {
        Stop::at(f.pc, f.op, f.reason)
    }
}

impl fmt::Display for Stop {
    /// `fault at pc N (OPNAME): REASON`, `interrupted at pc N`, or
    /// `step limit N reached at pc P`; the CLI puts `umdbt: ` in front.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stop::Fault(fault) => fault.fmt(f),
            Stop::Interrupted { pc, .. } => write!(f, "interrupted at pc {pc}"),
            Stop::StepLimit { pc, limit } => write!(f, "step limit {limit} reached at pc {pc}"),
        }
    }
}

impl std::error::Error for Stop {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_format() {
        let f = Fault::new(7, Op::Div, Reason::DivisionByZero);
        assert_eq!(f.to_string(), "fault at pc 7 (div): division by zero");
        let f = Fault {
            pc: 9,
            op: None,
            reason: Reason::PcOutOfBounds { len: 9 },
        };
        assert_eq!(
            f.to_string(),
            "fault at pc 9 (fetch): execution finger outside array 0 (length 9)"
        );
    }
}

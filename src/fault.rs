//! Faults: the "may Fail" cases of the specification, reported the same way by every engine.

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

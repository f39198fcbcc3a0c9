//! The one place that knows the UM-32 instruction format.
//!
//! Standard operators: opcode in bits 28..32, register A in bits 6..9, B in 3..6 and
//! C in 0..3. Op 13 (orthography): register A in bits 25..28, a 25-bit value below.

use std::fmt;

/// The 14 operators plus the two opcodes that are invalid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Op {
    CMov = 0,
    Index = 1,
    Amend = 2,
    Add = 3,
    Mul = 4,
    Div = 5,
    Nand = 6,
    Halt = 7,
    Alloc = 8,
    Abandon = 9,
    Output = 10,
    Input = 11,
    LoadProg = 12,
    Literal = 13,
    Invalid14 = 14,
    Invalid15 = 15,
}

impl Op {
    /// All sixteen opcode values, in numeric order.
    pub const ALL: [Op; 16] = [
        Op::CMov,
        Op::Index,
        Op::Amend,
        Op::Add,
        Op::Mul,
        Op::Div,
        Op::Nand,
        Op::Halt,
        Op::Alloc,
        Op::Abandon,
        Op::Output,
        Op::Input,
        Op::LoadProg,
        Op::Literal,
        Op::Invalid14,
        Op::Invalid15,
    ];

    #[inline(always)]
    pub fn from_number(n: u32) -> Op {
        Op::ALL[(n & 15) as usize]
    }

    /// The short name used in fault messages, statistics and the disassembler.
    pub fn name(self) -> &'static str {
        match self {
            Op::CMov => "cmov",
            Op::Index => "index",
            Op::Amend => "amend",
            Op::Add => "add",
            Op::Mul => "mul",
            Op::Div => "div",
            Op::Nand => "nand",
            Op::Halt => "halt",
            Op::Alloc => "alloc",
            Op::Abandon => "abandon",
            Op::Output => "output",
            Op::Input => "input",
            Op::LoadProg => "loadprog",
            Op::Literal => "literal",
            Op::Invalid14 => "invalid14",
            Op::Invalid15 => "invalid15",
        }
    }

    /// True for the operators that end a straight-line run of code.
    pub fn ends_block(self) -> bool {
        matches!(
            self,
            Op::Halt | Op::LoadProg | Op::Invalid14 | Op::Invalid15
        )
    }
}

/// Opcode number of an instruction word.
#[inline(always)]
pub fn opcode(word: u32) -> u32 {
    word >> 28
}
/// Register A of a standard operator.
#[inline(always)]
pub fn reg_a(word: u32) -> usize {
    ((word >> 6) & 7) as usize
}
/// Register B of a standard operator.
#[inline(always)]
pub fn reg_b(word: u32) -> usize {
    ((word >> 3) & 7) as usize
}
/// Register C of a standard operator.
#[inline(always)]
pub fn reg_c(word: u32) -> usize {
    (word & 7) as usize
}
/// Register A of op 13.
#[inline(always)]
pub fn lit_reg(word: u32) -> usize {
    ((word >> 25) & 7) as usize
}
/// The 25-bit value of op 13.
#[inline(always)]
pub fn lit_value(word: u32) -> u32 {
    word & 0x01FF_FFFF
}

/// A decoded instruction: the form the disassembler and the block discoverer use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Instr {
    pub op: Op,
    pub a: u8,
    pub b: u8,
    pub c: u8,
    /// The value of op 13 (zero for every other operator).
    pub value: u32,
}

impl Instr {
    pub fn decode(word: u32) -> Instr {
        let op = Op::from_number(opcode(word));
        if op == Op::Literal {
            Instr {
                op,
                a: lit_reg(word) as u8,
                b: 0,
                c: 0,
                value: lit_value(word),
            }
        } else {
            Instr {
                op,
                a: reg_a(word) as u8,
                b: reg_b(word) as u8,
                c: reg_c(word) as u8,
                value: 0,
            }
        }
    }

    /// Encode a standard operator (the inverse of `decode`).
    pub fn encode(op: Op, a: u8, b: u8, c: u8) -> u32 {
        debug_assert!(op != Op::Literal);
        ((op as u32) << 28) | (((a & 7) as u32) << 6) | (((b & 7) as u32) << 3) | (c & 7) as u32
    }

    /// Encode op 13; `value` must fit in 25 bits.
    pub fn encode_literal(a: u8, value: u32) -> u32 {
        debug_assert!(value <= 0x01FF_FFFF);
        (13 << 28) | (((a & 7) as u32) << 25) | (value & 0x01FF_FFFF)
    }
}

impl Instr {
    /// The word that the assembly text of this instruction (its `Display`) encodes to: the
    /// fields an operator ignores are zero.
    pub fn canonical_word(&self) -> u32 {
        let (a, b, c) = (self.a, self.b, self.c);
        match self.op {
            Op::Literal => Instr::encode_literal(a, self.value),
            Op::Halt | Op::Invalid14 | Op::Invalid15 => Instr::encode(self.op, 0, 0, 0),
            Op::Alloc | Op::LoadProg => Instr::encode(self.op, 0, b, c),
            Op::Abandon | Op::Output | Op::Input => Instr::encode(self.op, 0, 0, c),
            _ => Instr::encode(self.op, a, b, c),
        }
    }

    /// Assembly text for `word`: the instruction, or `word 0x...` when the word has bits
    /// its operator ignores (data), so that the text assembles back to exactly `word`.
    pub fn disassemble(word: u32) -> String {
        let i = Instr::decode(word);
        if i.canonical_word() == word {
            i.to_string()
        } else {
            format!("word     {word:#010x}")
        }
    }
}

impl fmt::Display for Instr {
    /// Assembly syntax, matching what `crate::assembler` reads.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (a, b, c) = (self.a, self.b, self.c);
        let name = self.op.name();
        match self.op {
            Op::Literal => write!(f, "{name:<8} r{a}, {}", self.value),
            Op::CMov | Op::Index | Op::Amend | Op::Add | Op::Mul | Op::Div | Op::Nand => {
                write!(f, "{name:<8} r{a}, r{b}, r{c}")
            }
            Op::Halt | Op::Invalid14 | Op::Invalid15 => write!(f, "{name}"),
            Op::Alloc => write!(f, "{name:<8} r{b}, r{c}"),
            Op::Abandon | Op::Output | Op::Input => write!(f, "{name:<8} r{c}"),
            Op::LoadProg => write!(f, "{name:<8} r{b}, r{c}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_of_standard_operator() {
        // op 3, A=5, B=2, C=7
        let w = (3 << 28) | (5 << 6) | (2 << 3) | 7;
        let i = Instr::decode(w);
        assert_eq!(i.op, Op::Add);
        assert_eq!((i.a, i.b, i.c), (5, 2, 7));
        assert_eq!(Instr::encode(Op::Add, 5, 2, 7), w);
    }

    #[test]
    fn unused_bits_are_ignored() {
        let w = (6 << 28) | 0x0FFF_FE00 | (1 << 6) | (2 << 3) | 3;
        let i = Instr::decode(w);
        assert_eq!(i.op, Op::Nand);
        assert_eq!((i.a, i.b, i.c), (1, 2, 3));
    }

    #[test]
    fn literal_fields() {
        let w = Instr::encode_literal(6, 0x01FF_FFFF);
        assert_eq!(w, 0xDDFF_FFFF);
        let i = Instr::decode(w);
        assert_eq!(i.op, Op::Literal);
        assert_eq!(i.a, 6);
        assert_eq!(i.value, 0x01FF_FFFF);
    }

    #[test]
    fn disassembly_keeps_every_bit() {
        assert_eq!(Instr::disassemble(0x7000_0000), "halt");
        assert_eq!(Instr::disassemble(0x7000_0001), "word     0x70000001");
        assert_eq!(Instr::disassemble(0xD200_0041), "literal  r1, 65");
        assert_eq!(Instr::disassemble(0x3000_0053), "add      r1, r2, r3");
        assert_eq!(Instr::disassemble(0x3FFF_FE53), "word     0x3ffffe53");
    }

    #[test]
    fn invalid_opcodes_and_names() {
        assert_eq!(Instr::decode(0xE000_0000).op, Op::Invalid14);
        assert_eq!(Instr::decode(0xF000_0000).op, Op::Invalid15);
        for (n, op) in Op::ALL.iter().enumerate() {
            assert_eq!(*op as usize, n);
            assert_eq!(Op::from_number(n as u32), *op);
        }
        assert!(Op::LoadProg.ends_block() && Op::Halt.ends_block());
        assert!(!Op::Amend.ends_block());
    }
}

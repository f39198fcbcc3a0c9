//! A small UM assembler, so that test programs are readable.
//!
//! One instruction per line; `;` or `#` starts a comment; `name:` defines a label at the next
//! word. Operands are registers `r0`..`r7` and values: decimal, `0x` hex, a character `'A'`
//! (escapes `\n`, `\t`, `\\`, `\'`, `\0`), a label, or `label+N` / `label-N`. Numbers are
//! unsigned 32-bit; a number too large, a negative number or a register that does not exist
//! is an error that says so.
//!
//! ```text
//! cmov  rA, rB, rC      index rA, rB, rC     amend rA, rB, rC
//! add   rA, rB, rC      mul   rA, rB, rC     div   rA, rB, rC     nand rA, rB, rC
//! halt                  alloc rB, rC         abandon rC
//! output rC             input rC             loadprog rB, rC
//! literal rA, VALUE     (VALUE < 2^25)
//! word VALUE            (a raw 32-bit word)
//! invalid14, invalid15  (the two invalid opcodes)
//! ```
//!
//! The disassembler prints the same syntax; its `PC: XXXXXXXX` columns are skipped, so
//! `umdbt dis` output assembles back to the same program.

use crate::decoder::{Instr, Op};
use std::collections::HashMap;

/// An assembly error with its 1-based line number.
#[derive(Debug, PartialEq, Eq)]
pub struct AsmError {
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for AsmError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for AsmError {}

/// The largest value `literal` can load (25 bits).
const LITERAL_MAX: u32 = (1 << 25) - 1;

enum Item<'a> {
    Std(Op, [u8; 3]),
    Literal(u8, &'a str),
    Word(&'a str),
}

/// Assemble `source` into program words.
pub fn assemble(source: &str) -> Result<Vec<u32>, AsmError> {
    let mut labels: HashMap<&str, u32> = HashMap::new();
    let mut items: Vec<(usize, Item)> = Vec::new();
    for (n, raw) in source.lines().enumerate() {
        let line = n + 1;
        let err = |message: String| AsmError { line, message };
        let mut text = skip_dis_columns(strip_comment(raw).trim());
        while let Some(colon) = label_end(text) {
            let name = text[..colon].trim();
            if !is_ident(name) {
                return Err(err(format!("bad label name '{name}'")));
            }
            if labels.insert(name, items.len() as u32).is_some() {
                return Err(err(format!("label '{name}' defined twice")));
            }
            text = text[colon + 1..].trim();
        }
        if text.is_empty() {
            continue;
        }
        let (mnemonic, rest) = match text.find(char::is_whitespace) {
            Some(i) => (&text[..i], text[i..].trim()),
            None => (text, ""),
        };
        let operands: Vec<&str> = if rest.is_empty() {
            Vec::new()
        } else {
            rest.split(',').map(str::trim).collect()
        };
        let item = parse_item(&mnemonic.to_ascii_lowercase(), &operands).map_err(err)?;
        items.push((line, item));
    }
    items
        .iter()
        .map(|(line, item)| {
            let err = |message| AsmError {
                line: *line,
                message,
            };
            Ok(match item {
                Item::Std(op, [a, b, c]) => Instr::encode(*op, *a, *b, *c),
                Item::Literal(a, v) => {
                    let v = value(v, &labels).map_err(err)?;
                    if v > LITERAL_MAX {
                        return Err(err(format!(
                            "value {v} does not fit in 25 bits (literal takes 0 to {LITERAL_MAX})"
                        )));
                    }
                    Instr::encode_literal(*a, v)
                }
                Item::Word(v) => value(v, &labels).map_err(err)?,
            })
        })
        .collect()
}

/// Program words as the big-endian bytes of a program file.
pub fn to_bytes(words: &[u32]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_be_bytes()).collect()
}

fn strip_comment(line: &str) -> &str {
    // A ';' or '#' outside a character literal starts a comment.
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\'' => {
                i += 1;
                if i < bytes.len() && bytes[i] == b'\\' {
                    i += 1;
                }
                i += 2;
                continue;
            }
            b';' | b'#' => return &line[..i],
            _ => i += 1,
        }
    }
    line
}

/// Skip the `PC: XXXXXXXX` columns of a `umdbt dis` line.
fn skip_dis_columns(text: &str) -> &str {
    let mut parts = text.splitn(3, char::is_whitespace);
    let (Some(pc), Some(word)) = (parts.next(), parts.next()) else {
        return text;
    };
    let is_pc =
        pc.len() > 1 && pc.ends_with(':') && pc[..pc.len() - 1].bytes().all(|b| b.is_ascii_digit());
    if is_pc && word.len() == 8 && word.bytes().all(|b| b.is_ascii_hexdigit()) {
        parts.next().unwrap_or("").trim()
    } else {
        text
    }
}

fn label_end(text: &str) -> Option<usize> {
    let colon = text.find(':')?;
    is_ident(text[..colon].trim()).then_some(colon)
}

fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == '.')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}

fn parse_item<'a>(mnemonic: &str, ops: &[&'a str]) -> Result<Item<'a>, String> {
    let want = |n: usize| {
        if ops.len() == n {
            Ok(())
        } else {
            Err(format!(
                "'{mnemonic}' takes {n} operand(s), got {}",
                ops.len()
            ))
        }
    };
    let std_op = match mnemonic {
        "cmov" => Some(Op::CMov),
        "index" => Some(Op::Index),
        "amend" => Some(Op::Amend),
        "add" => Some(Op::Add),
        "mul" => Some(Op::Mul),
        "div" => Some(Op::Div),
        "nand" => Some(Op::Nand),
        _ => None,
    };
    if let Some(op) = std_op {
        want(3)?;
        return Ok(Item::Std(op, [reg(ops[0])?, reg(ops[1])?, reg(ops[2])?]));
    }
    Ok(match mnemonic {
        "halt" | "invalid14" | "invalid15" => {
            want(0)?;
            let op = match mnemonic {
                "halt" => Op::Halt,
                "invalid14" => Op::Invalid14,
                _ => Op::Invalid15,
            };
            Item::Std(op, [0, 0, 0])
        }
        "alloc" | "loadprog" => {
            want(2)?;
            let op = if mnemonic == "alloc" {
                Op::Alloc
            } else {
                Op::LoadProg
            };
            Item::Std(op, [0, reg(ops[0])?, reg(ops[1])?])
        }
        "abandon" | "output" | "input" => {
            want(1)?;
            let op = match mnemonic {
                "abandon" => Op::Abandon,
                "output" => Op::Output,
                _ => Op::Input,
            };
            Item::Std(op, [0, 0, reg(ops[0])?])
        }
        "literal" => {
            want(2)?;
            Item::Literal(reg(ops[0])?, ops[1])
        }
        "word" => {
            want(1)?;
            Item::Word(ops[0])
        }
        _ => return Err(format!("unknown mnemonic '{mnemonic}'")),
    })
}

fn reg(s: &str) -> Result<u8, String> {
    match s.as_bytes() {
        [b'r' | b'R', d @ b'0'..=b'7'] => Ok(d - b'0'),
        _ if looks_like_register(s) => {
            Err(format!("there is no register {s}: registers are r0 to r7"))
        }
        _ => Err(format!("'{s}' is not a register (r0..r7)")),
    }
}

/// Whether `s` is written like a register (`r` or `R` and decimal digits), in range or not.
fn looks_like_register(s: &str) -> bool {
    s.strip_prefix(['r', 'R'])
        .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
}

fn value(s: &str, labels: &HashMap<&str, u32>) -> Result<u32, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("a value is missing".to_string());
    }
    if s.starts_with('-') {
        return Err(format!("negative numbers are not allowed: {s}"));
    }
    if let Some(ch) = s.strip_prefix('\'').and_then(|t| t.strip_suffix('\'')) {
        return match ch {
            "\\n" => Ok(10),
            "\\t" => Ok(9),
            "\\\\" => Ok(92),
            "\\'" => Ok(39),
            "\\0" => Ok(0),
            _ if ch.chars().count() == 1 && ch.is_ascii() => Ok(ch.as_bytes()[0] as u32),
            _ => Err(format!("bad character literal {s}")),
        };
    }
    if let Some(pos) = s.rfind(['+', '-']).filter(|&p| p > 0) {
        let base = value(&s[..pos], labels)?;
        let off = value(&s[pos + 1..], labels)?;
        return Ok(if &s[pos..=pos] == "+" {
            base.wrapping_add(off)
        } else {
            base.wrapping_sub(off)
        });
    }
    let parsed = if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(u32::from_str_radix(&hex.replace('_', ""), 16))
    } else if s.starts_with(|c: char| c.is_ascii_digit()) {
        Some(s.replace('_', "").parse::<u32>())
    } else {
        None
    };
    match parsed {
        Some(Ok(n)) => Ok(n),
        Some(Err(e)) if *e.kind() == std::num::IntErrorKind::PosOverflow => {
            Err(format!("number {s} is too large for a 32-bit word"))
        }
        Some(Err(_)) => Err(format!("'{s}' is not a number")),
        None => match labels.get(s) {
            Some(&v) => Ok(v),
            None if looks_like_register(s) => {
                Err(format!("expected a value, found the register {s}"))
            }
            None => Err(format!("unknown value or label '{s}'")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assembles_every_form() {
        let src = "
            start: literal r1, 'A'   ; comment
            output r1
            literal r2, end
            loadprog r0, r2
            word 0xE0000000
            end: halt # done
            alloc r3, r4
            cmov r7, r6, r5
            literal r0, end+2
        ";
        let w = assemble(src).unwrap();
        assert_eq!(w[0], Instr::encode_literal(1, 65));
        assert_eq!(w[1], Instr::encode(Op::Output, 0, 0, 1));
        assert_eq!(w[2], Instr::encode_literal(2, 5));
        assert_eq!(w[3], Instr::encode(Op::LoadProg, 0, 0, 2));
        assert_eq!(w[4], 0xE000_0000);
        assert_eq!(w[5], 0x7000_0000);
        assert_eq!(w[6], Instr::encode(Op::Alloc, 0, 3, 4));
        assert_eq!(w[7], Instr::encode(Op::CMov, 7, 6, 5));
        assert_eq!(w[8], Instr::encode_literal(0, 7));
    }

    #[test]
    fn errors_name_the_line() {
        let e = assemble("halt\nadd r1, r2\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(assemble("literal r1, 0x2000000").is_err());
        assert!(assemble("output r8").is_err());
        assert!(assemble("literal r1, nowhere").is_err());
        assert!(assemble("a: halt\na: halt").is_err());
    }

    /// The message of the error `src` fails with, on line 1.
    fn error(src: &str) -> String {
        let e = assemble(src).expect_err(src);
        assert_eq!(e.line, 1, "{src}");
        e.message
    }

    #[test]
    fn numbers_out_of_range_say_so() {
        assert_eq!(
            assemble("literal r1, 33554431").unwrap(),
            [Instr::encode_literal(1, LITERAL_MAX)]
        );
        for src in [
            "literal r1, 33554432",
            "literal r1, 0x2000000",
            "literal r1, 4294967295",
        ] {
            let v = src.rsplit(' ').next().unwrap();
            let v = if let Some(hex) = v.strip_prefix("0x") {
                u32::from_str_radix(hex, 16).unwrap()
            } else {
                v.parse().unwrap()
            };
            assert_eq!(
                error(src),
                format!("value {v} does not fit in 25 bits (literal takes 0 to 33554431)")
            );
        }
        assert_eq!(
            assemble(
                "word 4294967295
word 0xFFFFFFFF"
            )
            .unwrap(),
            [u32::MAX, u32::MAX]
        );
        for v in ["4294967296", "99999999999", "0x100000000", "0x1_0000_0000"] {
            assert_eq!(
                error(&format!("word {v}")),
                format!("number {v} is too large for a 32-bit word")
            );
        }
        assert_eq!(
            error("literal r1, 99999999999"),
            "number 99999999999 is too large for a 32-bit word"
        );
        assert_eq!(
            error("literal r1, lab+4294967296\nlab: halt"),
            "number 4294967296 is too large for a 32-bit word"
        );
    }

    #[test]
    fn negative_numbers_say_so() {
        assert_eq!(
            error("literal r1, -5"),
            "negative numbers are not allowed: -5"
        );
        assert_eq!(error("word -1"), "negative numbers are not allowed: -1");
        assert_eq!(
            error("word -0x10"),
            "negative numbers are not allowed: -0x10"
        );
        // A '-' between two values is a subtraction, and a character literal may be '-'.
        assert_eq!(assemble("word 7-5").unwrap(), [2]);
        assert_eq!(assemble("word '-'").unwrap(), [45]);
    }

    #[test]
    fn registers_out_of_range_say_so() {
        for (src, reg) in [
            ("output r8", "r8"),
            ("add r1, r2, r12", "r12"),
            ("literal R9, 1", "R9"),
        ] {
            assert_eq!(
                error(src),
                format!("there is no register {reg}: registers are r0 to r7")
            );
        }
        assert_eq!(error("output x1"), "'x1' is not a register (r0..r7)");
        // A register where a value belongs.
        assert_eq!(
            error("literal r1, r2"),
            "expected a value, found the register r2"
        );
        assert_eq!(error("word r8"), "expected a value, found the register r8");
        // ...unless a label has that name.
        assert_eq!(assemble("word r8\nr8: halt").unwrap(), [1, 0x7000_0000]);
    }

    #[test]
    fn malformed_numbers_and_unknown_labels() {
        assert_eq!(error("word 12ab"), "'12ab' is not a number");
        assert_eq!(error("word 0x"), "'0x' is not a number");
        assert_eq!(error("word 0xG1"), "'0xG1' is not a number");
        assert_eq!(error("word nowhere"), "unknown value or label 'nowhere'");
        assert_eq!(error("word nowhere+1"), "unknown value or label 'nowhere'");
        assert_eq!(error("word 1+"), "a value is missing");
    }

    #[test]
    fn a_source_without_instructions_assembles_to_nothing() {
        // `umdbt asm` rejects it (tests/cli.rs); the library leaves that to its callers.
        for src in [
            "",
            "\n\n",
            "; comment\n# another\n",
            "start:\nend: ; nothing\n",
        ] {
            assert_eq!(assemble(src), Ok(vec![]), "{src:?}");
        }
    }

    #[test]
    fn disassembly_reassembles() {
        let src = "nand r1, r2, r3\nliteral r4, 12345\nabandon r5\ninput r6\nloadprog r1, r2\n";
        let w = assemble(src).unwrap();
        let text: String = w
            .iter()
            .map(|&x| format!("{}\n", Instr::decode(x)))
            .collect();
        assert_eq!(assemble(&text).unwrap(), w);
    }
}

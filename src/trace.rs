//! Trace output, like QEMU's `-d`: `umdbt run -d in_asm,out_asm,exec [-D FILE]`.
//!
//! - `in_asm`: the UM disassembly of each block as it is translated;
//! - `out_asm`: the host code made for it, disassembled (iced-x86 on x86-64, yaxpeax-arm on
//!   AArch64);
//! - `exec`: each block entry, with its pc (chaining and the dispatch table are off, so
//!   that every entry passes through Rust: slow).
//!
//! Traces go to standard error or to a file, never into the program's output.

use crate::decoder::Instr;
use std::fmt::Write as _;
use std::io::{self, Write};
use std::str::FromStr;

/// Which traces to write.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TraceSet {
    pub in_asm: bool,
    pub out_asm: bool,
    pub exec: bool,
    /// The optimizing tier's IR of each region, after optimization.
    pub ir: bool,
}

impl TraceSet {
    /// Whether any trace is asked for.
    pub fn any(self) -> bool {
        self.in_asm || self.out_asm || self.exec || self.ir
    }
}

impl FromStr for TraceSet {
    type Err = String;

    /// A comma-separated list of `in_asm`, `out_asm`, `exec`.
    fn from_str(s: &str) -> Result<TraceSet, String> {
        let mut t = TraceSet::default();
        for item in s.split(',').map(str::trim) {
            match item {
                "in_asm" => t.in_asm = true,
                "out_asm" => t.out_asm = true,
                "exec" => t.exec = true,
                "ir" => t.ir = true,
                _ => {
                    return Err(format!(
                        "unknown trace '{item}' (known: in_asm, out_asm, exec, ir)"
                    ));
                }
            }
        }
        Ok(t)
    }
}

/// Writes the traces asked for.
pub struct Tracer {
    set: TraceSet,
    out: Box<dyn Write>,
}

impl Tracer {
    /// Trace `set` to `out`.
    pub fn new(set: TraceSet, out: Box<dyn Write>) -> Tracer {
        Tracer { set, out }
    }

    /// Which traces are written.
    pub fn set(&self) -> TraceSet {
        self.set
    }

    /// A block of `kind` (`block`, `region`) was translated: UM words `ops` from `start`,
    /// into `code` placed at `addr`.
    pub fn translated(&mut self, kind: &str, start: u32, ops: &[u32], addr: usize, code: &[u8]) {
        let end = start + ops.len() as u32;
        let mut s = String::new();
        if self.set.in_asm {
            let _ = writeln!(s, "IN: {kind} pc {start}..{end}");
            for (i, &w) in ops.iter().enumerate() {
                let _ = writeln!(
                    s,
                    "  {:>8}: {w:08x}  {}",
                    start as usize + i,
                    Instr::disassemble(w)
                );
            }
        }
        if self.set.out_asm {
            let _ = writeln!(
                s,
                "OUT: {kind} pc {start}..{end}: {} bytes at {addr:#x}",
                code.len()
            );
            for line in disassemble_host(addr as u64, code) {
                let _ = writeln!(s, "  {line}");
            }
        }
        if !s.is_empty() {
            self.write(&s);
        }
    }

    /// A region entered at `seed`, made of the UM `blocks` (pc and words of each), was
    /// translated into `code` at `addr`.
    pub fn region(&mut self, seed: u32, blocks: &[(u32, &[u32])], addr: usize, code: &[u8]) {
        let mut s = String::new();
        if self.set.in_asm {
            let _ = writeln!(s, "IN: region at pc {seed}, {} blocks", blocks.len());
            for &(start, ops) in blocks {
                for (i, &w) in ops.iter().enumerate() {
                    let _ = writeln!(
                        s,
                        "  {:>8}: {w:08x}  {}",
                        start as usize + i,
                        Instr::disassemble(w)
                    );
                }
                let _ = writeln!(s, "  --");
            }
        }
        if self.set.out_asm {
            let _ = writeln!(
                s,
                "OUT: region at pc {seed}: {} bytes at {addr:#x}",
                code.len()
            );
            for line in disassemble_host(addr as u64, code) {
                let _ = writeln!(s, "  {line}");
            }
        }
        if !s.is_empty() {
            self.write(&s);
        }
    }

    /// The IR of the region at `seed`, after optimization.
    pub fn ir(&mut self, seed: u32, ir: &str) {
        if self.set.ir {
            self.write(&format!("IR: region at pc {seed}\n{ir}"));
        }
    }

    /// Generated code enters the block at `pc`.
    pub fn exec(&mut self, pc: u32) {
        if self.set.exec {
            self.write(&format!("Trace: pc {pc}\n"));
        }
    }

    fn write(&mut self, s: &str) {
        if let Err(e) = self.out.write_all(s.as_bytes()) {
            log::warn!("cannot write the trace: {e}; tracing stops");
            self.set = TraceSet::default();
        }
    }

    /// Write out what is buffered.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Host machine code at `addr`, one line per instruction: address, bytes, assembly.
#[cfg(target_arch = "x86_64")]
pub fn disassemble_host(addr: u64, code: &[u8]) -> Vec<String> {
    use iced_x86::{Decoder, DecoderOptions, Formatter, Instruction, IntelFormatter};
    let mut decoder = Decoder::with_ip(64, code, addr, DecoderOptions::NONE);
    let mut formatter = IntelFormatter::new();
    let mut instr = Instruction::default();
    let mut lines = Vec::new();
    while decoder.can_decode() {
        decoder.decode_out(&mut instr);
        let at = (instr.ip() - addr) as usize;
        let bytes: String = code[at..at + instr.len()]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let mut text = String::new();
        formatter.format(&instr, &mut text);
        lines.push(format!("{:#x}: {bytes:<20} {text}", instr.ip()));
    }
    lines
}

/// Host machine code at `addr`, one line per instruction: address, word, assembly.
#[cfg(target_arch = "aarch64")]
pub fn disassemble_host(addr: u64, code: &[u8]) -> Vec<String> {
    use yaxpeax_arch::{Decoder, U8Reader};
    use yaxpeax_arm::armv8::a64::InstDecoder;
    let decoder = InstDecoder::default();
    code.chunks(4)
        .enumerate()
        .map(|(i, word)| {
            let at = addr + 4 * i as u64;
            let w = u32::from_le_bytes(word.try_into().unwrap_or([0; 4]));
            match decoder.decode(&mut U8Reader::new(word)) {
                Ok(inst) => format!("{at:#x}: {w:08x}  {inst}"),
                Err(e) => format!("{at:#x}: {w:08x}  ({e})"),
            }
        })
        .collect()
}

/// Host machine code cannot be disassembled on this host.
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub fn disassemble_host(_addr: u64, code: &[u8]) -> Vec<String> {
    vec![format!("({} bytes)", code.len())]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_sets_parse() {
        let t: TraceSet = "in_asm,exec".parse().unwrap();
        assert_eq!(
            t,
            TraceSet {
                in_asm: true,
                out_asm: false,
                exec: true,
                ir: false
            }
        );
        assert!("in_asm,bogus".parse::<TraceSet>().is_err());
        assert!(!TraceSet::default().any());
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn host_code_disassembles() {
        // mov ebx, 0x12345678; ret
        let lines = disassemble_host(0x1000, &[0xBB, 0x78, 0x56, 0x34, 0x12, 0xC3]);
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("0x1000: bb78563412"), "{}", lines[0]);
        assert!(lines[0].ends_with("mov ebx,12345678h"), "{}", lines[0]);
        assert!(lines[1].ends_with("ret"), "{}", lines[1]);
    }

    #[test]
    #[cfg(target_arch = "aarch64")]
    fn host_code_disassembles() {
        // add w19, w20, w21; ret
        let lines = disassemble_host(0x1000, &[0x93, 0x02, 0x15, 0x0B, 0xC0, 0x03, 0x5F, 0xD6]);
        assert_eq!(lines.len(), 2);
        assert!(lines[0].contains("add w19, w20, w21"), "{}", lines[0]);
        assert!(lines[1].contains("ret"), "{}", lines[1]);
    }
}

//! The reference interpreter: every operator exactly as the specification says.
//!
//! The translator is checked against it, so it stays simple: fetch, decode, execute, one
//! instruction at a time, straight from array 0 (self-modifying code needs no special care).

use crate::decoder::{Op, lit_reg, lit_value, opcode, reg_a, reg_b, reg_c};
use crate::fault::{Fault, Reason};
use crate::machine::Machine;

/// Run from `m.pc` until halt or a fault. With `count`, `m.op_counts` is kept up to date.
pub fn run(m: &mut Machine, count: bool) -> Result<(), Fault> {
    let result = if count {
        run_loop::<true, false>(m, 0)
    } else {
        run_loop::<false, false>(m, 0)
    };
    match result {
        Step::Halted => Ok(()),
        Step::Faulted(f) => Err(f),
        Step::Budget => unreachable!("unbounded run stopped on its budget"),
    }
}

/// How a bounded run ended.
#[derive(Debug)]
pub enum Step {
    Halted,
    Faulted(Fault),
    /// The instruction budget ran out; `m.pc` is the next instruction.
    Budget,
}

/// Run at most `budget` instructions (for engines that fall back to interpretation).
pub fn run_for(m: &mut Machine, count: bool, budget: u64) -> Step {
    if count {
        run_loop::<true, true>(m, budget)
    } else {
        run_loop::<false, true>(m, budget)
    }
}

#[inline(always)]
fn run_loop<const COUNT: bool, const BOUNDED: bool>(m: &mut Machine, mut budget: u64) -> Step {
    let mut r = m.regs;
    let mut pc = m.pc;
    let (mut prog, mut prog_len) = m.heap.program();
    let step = loop {
        if BOUNDED {
            if budget == 0 {
                break Step::Budget;
            }
            budget -= 1;
        }
        if pc >= prog_len {
            break Step::Faulted(Fault {
                pc,
                op: None,
                reason: Reason::PcOutOfBounds { len: prog_len },
            });
        }
        // SAFETY: `pc < prog_len` and `prog` points at array 0's `prog_len` words; it is
        // refreshed whenever array 0 is replaced (op 12 with B != 0).
        let w = unsafe { *prog.add(pc as usize) };
        let op = opcode(w);
        if COUNT {
            m.op_counts[op as usize] += 1;
        }
        let (a, b, c) = (reg_a(w), reg_b(w), reg_c(w));
        let fault = |reason| Step::Faulted(Fault::new(pc, Op::from_number(op), reason));
        match op {
            0 => {
                if r[c] != 0 {
                    r[a] = r[b];
                }
            }
            1 => match m.heap.load(r[b], r[c]) {
                Ok(v) => r[a] = v,
                Err(e) => break fault(e),
            },
            2 => {
                if let Err(e) = m.heap.store(r[a], r[b], r[c]) {
                    break fault(e);
                }
            }
            3 => r[a] = r[b].wrapping_add(r[c]),
            4 => r[a] = r[b].wrapping_mul(r[c]),
            5 => {
                if r[c] == 0 {
                    break fault(Reason::DivisionByZero);
                }
                r[a] = r[b] / r[c];
            }
            6 => r[a] = !(r[b] & r[c]),
            7 => break Step::Halted,
            8 => match m.heap.alloc(r[c]) {
                Ok(id) => r[b] = id,
                Err(e) => break fault(e),
            },
            9 => {
                if let Err(e) = m.heap.abandon(r[c]) {
                    break fault(e);
                }
            }
            10 => {
                if let Err(e) = m.console.output(r[c]) {
                    break fault(e);
                }
            }
            11 => match m.console.input() {
                Ok(v) => r[c] = v,
                Err(e) => break fault(e),
            },
            12 => {
                if r[b] != 0 {
                    if let Err(e) = m.heap.load_program(r[b]) {
                        break fault(e);
                    }
                    (prog, prog_len) = m.heap.program();
                }
                pc = r[c];
                continue;
            }
            13 => r[lit_reg(w)] = lit_value(w),
            _ => break fault(Reason::InvalidOpcode(op)),
        }
        pc += 1;
    };
    m.regs = r;
    m.pc = pc;
    step
}

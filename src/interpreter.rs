//! The reference interpreter: every operator exactly as the specification says.
//!
//! The translator is checked against it, so it stays simple: fetch, decode, execute, one
//! instruction at a time, straight from array 0 (self-modifying code needs no special care).

use crate::decoder::{Op, lit_reg, lit_value, opcode, reg_a, reg_b, reg_c};
use crate::fault::{Reason, Stop};
use crate::machine::Machine;
use crate::signals;

/// Run from `m.pc` until halt, a fault, a signal or `max_steps` instructions. With `count`,
/// `m.op_counts` is kept up to date.
pub fn run(m: &mut Machine, count: bool, max_steps: Option<u64>) -> Result<(), Stop> {
    let (step, _) = match (count, max_steps) {
        (true, None) => run_loop::<true, false, false>(m, 0),
        (false, None) => run_loop::<false, false, false>(m, 0),
        (true, Some(n)) => run_loop::<true, true, false>(m, n),
        (false, Some(n)) => run_loop::<false, true, false>(m, n),
    };
    match step {
        Step::Halted => Ok(()),
        Step::Stopped(s) => Err(s),
        Step::Budget => Err(Stop::StepLimit {
            pc: m.pc,
            limit: max_steps.expect("only a bounded run runs out"),
        }),
        Step::Jumped | Step::Stored(_) => unreachable!("only run_to_jump stops there"),
    }
}

/// How a bounded run ended.
#[derive(Debug)]
pub enum Step {
    Halted,
    /// A fault or a signal.
    Stopped(Stop),
    /// The instruction budget ran out; `m.pc` is the next instruction.
    Budget,
    /// (Only from [`run_to_jump`].) A jump (op 12) ran; `m.pc` is its target.
    Jumped,
    /// (Only from [`run_to_jump`].) A store into array 0 ran, at this word; `m.pc` is the
    /// next instruction.
    Stored(u32),
}

/// Run at most `budget` instructions (for engines that fall back to interpretation); also
/// returns how many ran (an instruction that faults counts, as it does for the step limit).
pub fn run_for(m: &mut Machine, count: bool, budget: u64) -> (Step, u64) {
    let (step, left) = if count {
        run_loop::<true, true, false>(m, budget)
    } else {
        run_loop::<false, true, false>(m, budget)
    };
    (step, budget - left)
}

/// Run at most `budget` instructions, and stop after the first jump or store into array 0
/// (for the translator, which interprets code before it is worth translating, and must
/// hear of stores that hit its translations); also returns how many ran.
pub fn run_to_jump(m: &mut Machine, count: bool, budget: u64) -> (Step, u64) {
    let (step, left) = if count {
        run_loop::<true, true, true>(m, budget)
    } else {
        run_loop::<false, true, true>(m, budget)
    };
    (step, budget - left)
}

/// The loop; returns how it ended and, when `BOUNDED`, how much of the budget is left.
/// `TO_JUMP` stops it after a jump or a store into array 0.
#[inline(always)]
fn run_loop<const COUNT: bool, const BOUNDED: bool, const TO_JUMP: bool>(
    m: &mut Machine,
    mut budget: u64,
) -> (Step, u64) {
    let mut r = m.regs;
    let mut pc = m.pc;
    let (mut prog, mut prog_len) = m.heap.program();
    // Borrowed once: the compiler then need not reload `m.heap` before each access.
    let heap: &mut crate::memory::Heap = &mut m.heap;
    let console = &mut m.console;
    let op_counts = &mut m.op_counts;
    let step = loop {
        if BOUNDED {
            if budget == 0 {
                break Step::Budget;
            }
            budget -= 1;
        }
        if pc >= prog_len {
            break Step::Stopped(Stop::at(pc, None, Reason::PcOutOfBounds { len: prog_len }));
        }
        // SAFETY: `pc < prog_len` and `prog` points at array 0's `prog_len` words; it is
        // refreshed whenever array 0 is replaced (op 12 with B != 0).
        let w = unsafe { *prog.add(pc as usize) };
        let op = opcode(w);
        if COUNT {
            op_counts[op as usize] += 1;
        }
        // Literals are two in five instructions of a typical program: they get the first
        // test, which the branch predictor learns per place in the program much better
        // than one jump through a table for every operator.
        if op == 13 {
            r[lit_reg(w)] = lit_value(w);
            pc += 1;
            continue;
        }
        let (a, b, c) = (reg_a(w), reg_b(w), reg_c(w));
        // Made mutable here, not at the fetch: so written, the compiler places the literal's
        // code just before the loop's head, where it falls through into the next fetch (one
        // taken branch per literal); with `let mut op` at the fetch it put that code far
        // away (two taken branches), and sandmark ran 9 to 10 % slower.
        let mut op = op;
        let stop = |op, reason| Step::Stopped(Stop::at(pc, Some(Op::from_number(op)), reason));
        // The five most frequent operators after literals (in sandmark, nine in ten of the
        // rest) are tested one by one, in order of frequency, like the literal test above: a
        // chain of compares, each of which the branch predictor learns on its own, instead
        // of one jump through a table for all of them (sandmark ran 7 % faster so).
        // Each test reads the opcode through `reread`, which the compiler cannot see
        // through, so it cannot fold the chain back into that table; and as each test reads
        // what the previous one left, no copy of the opcode is made for the next (sandmark
        // ran 0.5 to 1 % faster than with a copy per test).
        if reread(&mut op) == 1 {
            // Array 0 is the one array whose base and length are already at hand (it is
            // never abandoned, and only load program replaces it), so its words skip the
            // heap's lookup: programs read their own tables of constants there.
            if r[b] == 0 && r[c] < prog_len {
                // SAFETY: `r[c] < prog_len`, and `prog` is array 0's base (see the fetch).
                r[a] = unsafe { *prog.add(r[c] as usize) };
            } else {
                match heap.load(r[b], r[c]) {
                    Ok(v) => r[a] = v,
                    Err(e) => break stop(op, e),
                }
            }
        } else if reread(&mut op) == 2 {
            if r[a] == 0 && r[b] < prog_len {
                // SAFETY: as for op 1 above.
                unsafe { *prog.add(r[b] as usize) = r[c] };
            } else if let Err(e) = heap.store(r[a], r[b], r[c]) {
                break stop(op, e);
            }
            if TO_JUMP && r[a] == 0 {
                pc += 1;
                break Step::Stored(r[b]);
            }
        } else if reread(&mut op) == 12 {
            if r[b] != 0 {
                if let Err(e) = heap.load_program(r[b]) {
                    break stop(op, e);
                }
                (prog, prog_len) = heap.program();
            }
            pc = r[c];
            if TO_JUMP {
                break Step::Jumped;
            }
            // Every loop jumps: a signal is noticed here.
            if let Some(signal) = signals::received() {
                break Step::Stopped(Stop::Interrupted { pc, signal });
            }
            continue;
        } else if reread(&mut op) == 6 {
            r[a] = !(r[b] & r[c]);
        } else if reread(&mut op) == 0 {
            if r[c] != 0 {
                r[a] = r[b];
            }
        } else {
            match reread(&mut op) {
                3 => r[a] = r[b].wrapping_add(r[c]),
                4 => r[a] = r[b].wrapping_mul(r[c]),
                5 => {
                    if r[c] == 0 {
                        break stop(op, Reason::DivisionByZero);
                    }
                    r[a] = r[b] / r[c];
                }
                7 => break Step::Halted,
                8 => match heap.alloc(r[c]) {
                    Ok(id) => r[b] = id,
                    Err(e) => break stop(op, e),
                },
                9 => {
                    if let Err(e) = heap.abandon(r[c]) {
                        break stop(op, e);
                    }
                }
                10 => {
                    if let Err(e) = console.output(r[c]) {
                        break stop(op, e);
                    }
                }
                11 => match console.input() {
                    Ok(v) => r[c] = v,
                    Err(e) => break stop(op, e),
                },
                0 | 1 | 2 | 6 | 12 => unreachable!("tested before the match"),
                13 => unreachable!("literals are handled before the match"),
                _ => break stop(op, Reason::InvalidOpcode(op)),
            }
        }
        pc += 1;
    };
    m.regs = r;
    m.pc = pc;
    (step, budget)
}

/// `op` as [`opaque`] sees it, kept for the next test: each test reads the value the previous
/// one left, so the compiler needs no copy of the opcode to hand to the next.
#[inline(always)]
fn reread(op: &mut u32) -> u32 {
    *op = opaque(*op);
    *op
}

/// `op`, as a value the compiler cannot see through: without it, the chain of tests in
/// `run_loop` is folded back into one jump through a table.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[inline(always)]
fn opaque(mut op: u32) -> u32 {
    // SAFETY: the assembly is empty: it reads and writes nothing but `op`'s register.
    unsafe {
        #[cfg(target_arch = "x86_64")]
        core::arch::asm!("/* {0:e} */", inout(reg) op, options(nomem, nostack, preserves_flags));
        #[cfg(target_arch = "aarch64")]
        core::arch::asm!("/* {0:w} */", inout(reg) op, options(nomem, nostack, preserves_flags));
    }
    op
}

/// Elsewhere the chain may become a table again; it is correct either way.
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
#[inline(always)]
fn opaque(op: u32) -> u32 {
    op
}

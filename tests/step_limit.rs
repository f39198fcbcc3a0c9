//! Step budgets: `--max-steps N` stops a run after exactly N UM instructions on every
//! engine configuration alike: the same pc, output, registers, and `step limit N reached at
//! pc P`; a program that ends within N instructions ends as it would without a limit.

mod common;

use common::*;
use umdbt::engine::{Engine, RunOptions, run_captured_with};
use umdbt::fault::Stop;
use umdbt::generator::{GenOptions, generate};
use umdbt::stats::Counter;

/// How many steps `program` takes to its end (on the interpreter, counting): its
/// instructions, and the fetch outside array 0 that ends it if one does.
fn length(program: &[u32], input: &[u8]) -> u64 {
    let opts = RunOptions {
        count: true,
        ..RunOptions::default()
    };
    let (out, stats) = run_captured_with(program, input, &Engine::Interpreter, TEST_MEMORY, opts);
    let fetch = matches!(&out.result, Err(Stop::Fault(f)) if f.op.is_none());
    stats[Counter::Instructions] + u64::from(fetch)
}

/// Run with a limit of `n` on every configuration; check the ending against the program's
/// length without a limit.
fn check(program: &[u32], input: &[u8], n: u64, total: u64) -> Runs {
    let opts = RunOptions {
        max_steps: Some(n),
        ..RunOptions::default()
    };
    let out = run_all_with(program, input, opts);
    match &out.result {
        Err(Stop::StepLimit { pc, limit }) => {
            assert!(n < total, "stopped after {n} of {total} instructions");
            assert_eq!(*limit, n);
            assert_eq!(*pc, out.pc);
            assert_eq!(
                out.result.as_ref().unwrap_err().to_string(),
                format!("step limit {n} reached at pc {pc}")
            );
        }
        _ => assert!(
            n >= total,
            "{n} steps allowed, {total} needed: {:?}",
            out.result
        ),
    }
    out
}

#[test]
fn a_loop_stops_after_exactly_n_instructions() {
    // Prints a letter per round of 9 instructions, 20 rounds.
    let program = asm("
            literal r7, 20
            nand r6, r0, r0       ; -1
            literal r1, 'a'
    loop:   output r1
            add r1, r1, r0
            add r7, r7, r6
            literal r3, loop
            literal r4, done
            cmov r4, r3, r7
            literal r5, 1
            add r1, r1, r5
            loadprog r0, r4
    done:   halt
        ");
    let total = length(&program, b"");
    assert_eq!(total, 3 + 20 * 9 + 1);
    for n in [0, 1, 3, 4, 5, 12, 13, 100, 183, 184, 185, 1000] {
        let out = check(&program, b"", n, total);
        // The first output is the 4th instruction, then one every 9.
        let printed = if n < 4 { 0 } else { ((n - 4) / 9 + 1).min(20) };
        assert_eq!(out.stdout.len() as u64, printed, "n = {n}");
    }
}

#[test]
fn random_programs_stop_alike_on_every_engine() {
    // A third of them under an emulator (CI's time; the native run does all).
    let seeds = if emulated() { 100 } else { 300 };
    for seed in 0..seeds {
        let g = generate(seed, GenOptions::default());
        let total = length(&g.program, &g.input);
        let mut ns = vec![0, 1, total / 3, total / 2, total.saturating_sub(1), total];
        ns.extend((0..4).map(|i| (seed * 7919 + i * 104_729) % (total + 2)));
        for n in ns {
            std::panic::catch_unwind(|| check(&g.program, &g.input, n, total))
                .unwrap_or_else(|_| panic!("seed {seed}, max steps {n}; program:\n{}", g.source));
        }
    }
}

//! Engines and how a program is run on one: the interface the CLI, the tests and the benchmarks
//! share.

use crate::console::{Console, SharedOutput};
use crate::decoder::Op;
use crate::fault::Stop;
use crate::interpreter;
use crate::jit::{self, JitOptions};
use crate::machine::Machine;
use crate::observe::Observers;
use crate::stats::{Counter, Stats};

/// Which engine runs a program, with its knobs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Engine {
    /// The reference interpreter.
    Interpreter,
    /// The translator to host machine code.
    Translator(JitOptions),
}

impl Engine {
    /// Every engine configuration the tests compare against each other.
    pub fn all_configurations() -> Vec<Engine> {
        let mut v = vec![Engine::Interpreter];
        if crate::arch::TRANSLATOR_AVAILABLE {
            v.push(Engine::Translator(JitOptions::default()));
            v.push(Engine::Translator(JitOptions {
                chain: false,
                translate_after: 0,
                ..JitOptions::default()
            }));
            v.push(Engine::Translator(JitOptions {
                max_block: 1,
                translate_after: 0,
                ..JitOptions::default()
            }));
            v.push(Engine::Translator(JitOptions {
                opt_threshold: None,
                translate_after: 0,
                ..JitOptions::default()
            }));
            v.push(Engine::Translator(JitOptions {
                opt_threshold: Some(0),
                translate_after: 0,
                ..JitOptions::default()
            }));
        }
        v
    }

    /// The `umdbt run` flags that select this configuration.
    pub fn cli_flags(&self) -> Vec<String> {
        match self {
            Engine::Interpreter => vec!["--interp".to_string()],
            Engine::Translator(o) => {
                let mut f = Vec::new();
                if !o.chain {
                    f.push("--no-chain".to_string());
                }
                if o.max_block != jit::DEFAULT_MAX_BLOCK {
                    f.push("--max-block".to_string());
                    f.push(o.max_block.to_string());
                }
                if o.translate_after != jit::DEFAULT_TRANSLATE_AFTER {
                    f.push("--translate-after".to_string());
                    f.push(o.translate_after.to_string());
                }
                match o.opt_threshold {
                    None => f.push("--no-opt".to_string()),
                    Some(jit::DEFAULT_OPT_THRESHOLD) => {}
                    Some(t) => {
                        f.push("--opt-threshold".to_string());
                        f.push(t.to_string());
                    }
                }
                f
            }
        }
    }

    /// A short name for messages and statistics.
    pub fn describe(&self) -> String {
        match self {
            Engine::Interpreter => "interpreter".to_string(),
            Engine::Translator(o) => format!(
                "translator (chaining {}, max block {}, translated after {} run(s), {})",
                if o.chain { "on" } else { "off" },
                o.max_block,
                o.translate_after,
                match o.opt_threshold {
                    None => "no regions".to_string(),
                    Some(0) => "regions at once".to_string(),
                    Some(t) => format!("regions after {t}"),
                }
            ),
        }
    }
}

/// How to run, whatever the engine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunOptions {
    /// Count instructions (per operator for the interpreter) and the counters of generated
    /// code, for `--stats`; generated code then also keeps the heap's counts of arrays.
    pub count: bool,
    /// With `count`, the translator also counts each operator (`--stats=ops`).
    pub count_ops: bool,
    /// Stop after this many UM instructions (`--max-steps`).
    pub max_steps: Option<u64>,
}

/// Run `m` from its pc on `engine` until it halts, faults, is interrupted or reaches the
/// step limit, flushing the console at the end.
pub fn run(m: &mut Machine, engine: &Engine, opts: RunOptions) -> Result<(), Stop> {
    run_with_stats(m, engine, opts).0
}

/// As [`run`], also returning the engine's statistics (heap and console counts included;
/// the instruction count and the counters of generated code only with `count`).
pub fn run_with_stats(
    m: &mut Machine,
    engine: &Engine,
    opts: RunOptions,
) -> (Result<(), Stop>, Stats) {
    run_observed(m, engine, opts, &mut Observers::default())
}

/// As [`run_with_stats`], telling `observers` about the code the translator makes.
pub fn run_observed(
    m: &mut Machine,
    engine: &Engine,
    opts: RunOptions,
    observers: &mut Observers,
) -> (Result<(), Stop>, Stats) {
    let (result, mut stats) = match engine {
        Engine::Interpreter => (
            interpreter::run(m, opts.count, opts.max_steps),
            Stats::default(),
        ),
        Engine::Translator(o) => {
            jit::run(m, *o, opts.count, opts.count_ops, opts.max_steps, observers)
        }
    };
    // What the interpreter ran (all of it, or what the translator left to it).
    for op in Op::ALL {
        stats[Counter::op(op)] += m.op_counts[op as usize];
    }
    stats[Counter::Instructions] += m.instructions();
    let result = m.finish(result);
    stats.record_heap(&m.heap);
    stats.record_console(&m.console);
    (result, stats)
}

/// What an in-process run produced.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    pub stdout: Vec<u8>,
    pub result: Result<(), Stop>,
    /// Registers when the run ended.
    pub regs: [u32; 8],
    /// The pc of the instruction that halted or faulted, or of the next one.
    pub pc: u32,
}

/// Run `program` in-process with `input` as its console input, collecting its output.
pub fn run_captured(program: &[u32], input: &[u8], engine: &Engine, memory_limit: u64) -> Outcome {
    run_captured_with(program, input, engine, memory_limit, RunOptions::default()).0
}

/// As [`run_captured`], with run options, also returning the run's statistics. A program
/// that does not fit in `memory_limit` is reported as a fault at pc 0.
pub fn run_captured_with(
    program: &[u32],
    input: &[u8],
    engine: &Engine,
    memory_limit: u64,
    opts: RunOptions,
) -> (Outcome, Stats) {
    let sink = SharedOutput::default();
    let console = Console::new(
        Box::new(std::io::Cursor::new(input.to_vec())),
        Box::new(sink.clone()),
    );
    let (result, regs, pc, stats) = match Machine::new(program, console, memory_limit) {
        Ok(mut m) => {
            let (r, stats) = run_with_stats(&mut m, engine, opts);
            (r, m.regs, m.pc, stats)
        }
        Err(reason) => (Err(Stop::at(0, None, reason)), [0; 8], 0, Stats::default()),
    };
    let stdout = sink.0.borrow().clone();
    let outcome = Outcome {
        stdout,
        result,
        regs,
        pc,
    };
    (outcome, stats)
}

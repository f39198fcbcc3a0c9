//! Engines and how a program is run on one: the interface the CLI, the tests and the benchmarks
//! share.

use crate::console::{Console, SharedOutput};
use crate::fault::Fault;
use crate::interpreter;
use crate::jit::{self, JitOptions};
use crate::machine::Machine;
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
                ..JitOptions::default()
            }));
            v.push(Engine::Translator(JitOptions {
                max_block: 1,
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
                f
            }
        }
    }

    /// A short name for messages and statistics.
    pub fn describe(&self) -> String {
        match self {
            Engine::Interpreter => "interpreter".to_string(),
            Engine::Translator(o) => format!(
                "translator (chaining {}, max block {})",
                if o.chain { "on" } else { "off" },
                o.max_block
            ),
        }
    }
}

/// Run `m` from its pc to halt or fault on `engine`, flushing the console at the end.
/// With `count`, per-opcode instruction counts are kept in `m.op_counts`.
pub fn run(m: &mut Machine, engine: &Engine, count: bool) -> Result<(), Fault> {
    run_with_stats(m, engine, count).0
}

/// As [`run`], also returning the engine's statistics (heap and console counts included;
/// the instruction count and the counters of generated code only with `count`).
pub fn run_with_stats(m: &mut Machine, engine: &Engine, count: bool) -> (Result<(), Fault>, Stats) {
    let (result, mut stats) = match engine {
        Engine::Interpreter => {
            let r = interpreter::run(m, count);
            let mut s = Stats::default();
            s[Counter::Instructions] = m.instructions();
            (r, s)
        }
        Engine::Translator(o) => jit::run(m, *o, count),
    };
    let result = m.finish(result);
    stats.record_heap(&m.heap);
    stats.record_console(&m.console);
    (result, stats)
}

/// What an in-process run produced.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    pub stdout: Vec<u8>,
    pub result: Result<(), Fault>,
    /// Registers when the run ended.
    pub regs: [u32; 8],
    /// The pc of the instruction that halted or faulted.
    pub pc: u32,
}

/// Run `program` in-process with `input` as its console input, collecting its output.
pub fn run_captured(program: &[u32], input: &[u8], engine: &Engine, memory_limit: u64) -> Outcome {
    run_captured_with_stats(program, input, engine, memory_limit, false).0
}

/// As [`run_captured`], also returning the run's statistics (`count` as for
/// [`run_with_stats`]).
pub fn run_captured_with_stats(
    program: &[u32],
    input: &[u8],
    engine: &Engine,
    memory_limit: u64,
    count: bool,
) -> (Outcome, Stats) {
    let sink = SharedOutput::default();
    let console = Console::new(
        Box::new(std::io::Cursor::new(input.to_vec())),
        Box::new(sink.clone()),
    );
    let (result, regs, pc, stats) = match Machine::new(program, console, memory_limit) {
        Ok(mut m) => {
            let (r, stats) = run_with_stats(&mut m, engine, count);
            (r, m.regs, m.pc, stats)
        }
        Err(f) => (Err(f), [0; 8], 0, Stats::default()),
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

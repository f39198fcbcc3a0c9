//! Engines and how a program is run on one: the interface the CLI, the tests and the benchmarks
//! share.

use crate::console::{Console, SharedOutput};
use crate::fault::Fault;
use crate::interpreter;
use crate::jit::{self, JitOptions, JitStats};
use crate::machine::Machine;

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

/// As [`run`], also returning the translator's statistics (None for the interpreter).
pub fn run_with_stats(
    m: &mut Machine,
    engine: &Engine,
    count: bool,
) -> (Result<(), Fault>, Option<JitStats>) {
    let (result, stats) = match engine {
        Engine::Interpreter => (interpreter::run(m, count), None),
        Engine::Translator(o) => {
            let (r, s) = jit::run(m, *o, count);
            (r, Some(s))
        }
    };
    (m.finish(result), stats)
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
    let sink = SharedOutput::default();
    let console = Console::new(
        Box::new(std::io::Cursor::new(input.to_vec())),
        Box::new(sink.clone()),
    );
    let (result, regs, pc) = match Machine::new(program, console, memory_limit) {
        Ok(mut m) => {
            let r = run(&mut m, engine, false);
            (r, m.regs, m.pc)
        }
        Err(f) => (Err(f), [0; 8], 0),
    };
    let stdout = sink.0.borrow().clone();
    Outcome {
        stdout,
        result,
        regs,
        pc,
    }
}

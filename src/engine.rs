//! Engines and how a program is run on one: the interface the CLI, the tests and the benchmarks
//! share.

use crate::console::{Console, SharedOutput};
use crate::fault::Fault;
use crate::interpreter;
use crate::machine::Machine;

/// Which engine runs a program, with its knobs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Engine {
    /// The reference interpreter.
    Interpreter,
}

impl Engine {
    /// Every engine configuration the tests compare against each other.
    pub fn all_configurations() -> Vec<Engine> {
        vec![Engine::Interpreter]
    }

    /// The `umdbt run` flags that select this configuration.
    pub fn cli_flags(&self) -> Vec<&'static str> {
        match self {
            Engine::Interpreter => vec!["--interp"],
        }
    }

    /// A short name for messages and statistics.
    pub fn describe(&self) -> String {
        match self {
            Engine::Interpreter => "interpreter".to_string(),
        }
    }
}

/// Run `m` from its pc to halt or fault on `engine`, flushing the console at the end.
/// With `count`, per-opcode instruction counts are kept in `m.op_counts`.
pub fn run(m: &mut Machine, engine: &Engine, count: bool) -> Result<(), Fault> {
    let result = match engine {
        Engine::Interpreter => interpreter::run(m, count),
    };
    m.finish(result)
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

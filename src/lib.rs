//! umdbt: a dynamic binary translator for the Universal Machine (UM-32) of ICFP 2006.
//!
//! The pieces, each in the file named after it: [`loader`] (program files to words),
//! [`decoder`] (the instruction format), [`memory`] (the array heap), [`console`] (I/O),
//! [`fault`] (what can go wrong), [`machine`] (the state every engine shares),
//! [`interpreter`] (the reference engine), [`stats`] (every counter, its label and unit),
//! [`assembler`] (text to UM programs, for tests), [`engine`] (choosing an engine and
//! running a program on it) and [`cli`] (the `umdbt` command).
//!
//! The translator: [`jit`] (the engine loop) asks the [`compiler`] for the block at a pc;
//! the compiler cuts the run with the [`discoverer`], has the [`translator`] drive a
//! [`backend`] (one per host ISA, from [`arch`]) and installs the result in the [`cache`]
//! (blocks, dispatch table, chaining, invalidation), which keeps it in [`code_memory`].
//! [`runtime`] is what generated code shares with Rust; [`profile`] tells `perf` where
//! generated code lies.

pub mod arch;
pub mod assembler;
pub mod backend;
pub mod cache;
pub mod cli;
pub mod code_memory;
pub mod compiler;
pub mod console;
pub mod decoder;
pub mod discoverer;
pub mod engine;
pub mod fault;
pub mod generator;
pub mod interpreter;
pub mod jit;
pub mod loader;
pub mod machine;
pub mod memory;
pub mod observe;
pub mod profile;
pub mod region;
pub mod runtime;
pub mod signals;
pub mod stats;
pub mod trace;
pub mod translator;

//! umdbt: a dynamic binary translator for the Universal Machine (UM-32) of ICFP 2006.
//!
//! The pieces, each in the file named after it: [`loader`] (program files to words),
//! [`decoder`] (the instruction format), [`memory`] (the array heap), [`console`] (I/O),
//! [`fault`] (what can go wrong), [`machine`] (the state every engine shares),
//! [`interpreter`] (the reference engine), [`assembler`] (text to UM programs, for tests),
//! [`engine`] (choosing an engine and running a program on it) and [`cli`] (the `umdbt`
//! command). The translator: [`discoverer`] (cutting array 0 into blocks), [`translator`]
//! (ISA-neutral translation driving an emitter from `arch/`), [`code_memory`], [`cache`]
//! (blocks, dispatch table, chaining, invalidation), [`runtime`] (what generated code shares
//! with Rust) and [`jit`] (the engine loop). [`profile`]: perf map and jitdump files for `perf`.

pub mod arch;
pub mod assembler;
pub mod cache;
pub mod cli;
pub mod code_memory;
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
pub mod profile;
pub mod runtime;
pub mod translator;

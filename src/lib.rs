//! umdbt: a dynamic binary translator for the Universal Machine (UM-32) of ICFP 2006.
//!
//! The pieces, each in the file named after it: [`loader`] (program files to words),
//! [`decoder`] (the instruction format), [`memory`] (the array heap), [`console`] (I/O),
//! [`fault`] (what can go wrong), [`machine`] (the state every engine shares),
//! [`interpreter`] (the reference engine), [`assembler`] (text to UM programs, for tests),
//! [`engine`] (choosing an engine and running a program on it) and [`cli`] (the `umdbt`
//! command).

pub mod assembler;
pub mod cli;
pub mod console;
pub mod decoder;
pub mod engine;
pub mod fault;
pub mod interpreter;
pub mod loader;
pub mod machine;
pub mod memory;

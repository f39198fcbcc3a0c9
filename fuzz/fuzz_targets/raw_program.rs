//! libFuzzer target: arbitrary bytes as a UM program, run for at most `STEPS` UM
//! instructions. The translator must never crash the host, and must agree with the
//! interpreter (output, halt, fault or step limit, registers, pc) in every configuration.
//! Run with `tools/cargo-fuzz`. The step limit ends programs that never halt, so every
//! input ends in a verdict instead of a timeout.
#![no_main]

use libfuzzer_sys::fuzz_target;
use umdbt::engine::{Engine, RunOptions, run_captured_with};
use umdbt::jit::JitOptions;
use umdbt::loader::words_from_bytes;

/// Instructions each program may run (a few milliseconds on either engine).
const STEPS: u64 = 200_000;

fuzz_target!(|data: &[u8]| {
    let program = words_from_bytes(data);
    if program.is_empty() {
        return;
    }
    let input = b"some input\n";
    let limit = 64 << 20;
    let opts = RunOptions {
        max_steps: Some(STEPS),
        ..RunOptions::default()
    };
    let (reference, _) = run_captured_with(&program, input, &Engine::Interpreter, limit, opts);
    for (chain, max_block) in [(true, 256), (false, 256), (true, 1)] {
        let engine = Engine::Translator(JitOptions { chain, max_block });
        let (out, _) = run_captured_with(&program, input, &engine, limit, opts);
        assert_eq!(
            out,
            reference,
            "{} disagrees with the interpreter",
            engine.describe()
        );
    }
});

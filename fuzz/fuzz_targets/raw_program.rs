//! libFuzzer target: arbitrary bytes as a UM program. The translator must never crash the
//! host, and must agree with the interpreter (output, halt or fault, registers, pc).
//! Run with `tools/cargo-fuzz` (it uses fork mode, so programs that never halt are skipped
//! as timeouts instead of ending the run).
#![no_main]

use libfuzzer_sys::fuzz_target;
use umdbt::engine::{Engine, run_captured};
use umdbt::jit::JitOptions;
use umdbt::loader::words_from_bytes;

fuzz_target!(|data: &[u8]| {
    let program = words_from_bytes(data);
    if program.is_empty() {
        return;
    }
    let input = b"some input\n";
    let limit = 64 << 20;
    let reference = run_captured(&program, input, &Engine::Interpreter, limit);
    for chain in [true, false] {
        let engine = Engine::Translator(JitOptions {
            chain,
            ..JitOptions::default()
        });
        let out = run_captured(&program, input, &engine, limit);
        assert_eq!(
            out,
            reference,
            "{} disagrees with the interpreter",
            engine.describe()
        );
    }
});

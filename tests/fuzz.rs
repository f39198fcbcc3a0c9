//! Differential fuzzing: random programs (src/generator.rs) must behave identically under
//! every engine configuration: output, halt or fault message, final registers and pc.

mod common;
use common::*;
use umdbt::generator::{GenOptions, generate};

/// How many seeded programs `cargo test` runs (UMDBT_FUZZ_PROGRAMS overrides).
fn programs() -> u64 {
    std::env::var("UMDBT_FUZZ_PROGRAMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000)
}

#[test]
fn seeded_programs_agree_on_every_engine() {
    let mut faulted = 0;
    let mut printed = 0;
    for seed in 0..programs() {
        let g = generate(seed, GenOptions::default());
        let out = std::panic::catch_unwind(|| run_all(&g.program, &g.input))
            .unwrap_or_else(|_| panic!("seed {seed} diverged; program:\n{}", g.source));
        faulted += out.result.is_err() as u32;
        printed += !out.stdout.is_empty() as u32;
    }
    // The generator is meant to produce both kinds of ending, and output.
    assert!(
        faulted > 0 && printed > 0,
        "faulted {faulted}, printed {printed}"
    );
}

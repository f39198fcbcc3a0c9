//! The long-running differential fuzzer behind `tools/fuzz`: generates random programs
//! (src/generator.rs) for DURATION seconds, runs each under every engine configuration,
//! and saves any program on which they disagree.
//!
//!     cargo run --release --example fuzz -- SECONDS [FIRST_SEED] [OUT_DIR]

use std::time::{Duration, Instant};
use umdbt::engine::{Engine, run_captured};
use umdbt::generator::{GenOptions, generate};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seconds: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(60);
    let first: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    let out_dir = args
        .get(3)
        .cloned()
        .unwrap_or_else(|| "fuzz-failures".to_string());
    let configs = Engine::all_configurations();
    let limit = 1 << 30;
    let start = Instant::now();
    let (mut n, mut halted, mut faulted, mut diverged) = (0u64, 0u64, 0u64, 0u64);
    let mut seed = first;
    while start.elapsed() < Duration::from_secs(seconds) {
        let g = generate(seed, GenOptions::default());
        let reference = run_captured(&g.program, &g.input, &configs[0], limit);
        match reference.result {
            Ok(()) => halted += 1,
            Err(_) => faulted += 1,
        }
        for engine in &configs[1..] {
            let other = run_captured(&g.program, &g.input, engine, limit);
            if other != reference {
                diverged += 1;
                std::fs::create_dir_all(&out_dir).expect("create output directory");
                let path = format!("{out_dir}/seed-{seed}.uma");
                std::fs::write(&path, &g.source).expect("write diverging program");
                eprintln!(
                    "seed {seed}: {} disagrees with {}; saved {path}\n  reference: {:?}\n  other:     {:?}",
                    engine.describe(),
                    configs[0].describe(),
                    (&reference.result, reference.regs, reference.pc),
                    (&other.result, other.regs, other.pc),
                );
                break;
            }
        }
        n += 1;
        seed = seed.wrapping_add(1);
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{n} programs ({halted} halted, {faulted} faulted) on {} engine configurations in \
         {secs:.1} s: {:.0} programs/s, {diverged} diverged (seeds {first}..{seed})",
        configs.len(),
        n as f64 / secs
    );
    if diverged > 0 {
        std::process::exit(1);
    }
}

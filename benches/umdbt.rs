//! `cargo bench`: criterion benchmarks (HTML reports under target/criterion/).
//!
//! - `translate/*`: translation speed in UM operations per second, over the code of
//!   sandmark (its image after it unpacks itself) and of UMIX (the image codex decrypts),
//!   cut into blocks one after the other from pc 0 as the discoverer cuts them.
//! - `execute/*`: execution speed in UM instructions per second, translator and
//!   interpreter, of the micro-benchmarks and of slices (the first N instructions) of
//!   sandmark and codex.
//!
//! They need the UM corpus (`UMDBT_CORPUS`, default `../shared/corpus`); without it they
//! say so and measure nothing. `tools/bench` times whole runs instead.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::path::PathBuf;
use std::time::Duration;
use umdbt::arch::Host;
use umdbt::cache::Cache;
use umdbt::compiler::Compiler;
use umdbt::console::{Console, SharedOutput};
use umdbt::discoverer::discover;
use umdbt::engine::{Engine, RunOptions, run_captured_with};
use umdbt::interpreter;
use umdbt::loader;
use umdbt::machine::Machine;
use umdbt::translator::Options;

const MEMORY: u64 = 4 << 30;

fn corpus() -> Option<PathBuf> {
    let dir = std::env::var_os("UMDBT_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus"));
    if dir.join("sandmark.umz").is_file() {
        Some(dir)
    } else {
        eprintln!(
            "no UM corpus at {} (set UMDBT_CORPUS): nothing to measure",
            dir.display()
        );
        None
    }
}

/// Sandmark's array 0 once it has unpacked itself (two load programs).
fn sandmark_image(dir: &std::path::Path) -> Vec<u32> {
    let program = loader::load(&dir.join("sandmark.umz")).expect("sandmark.umz");
    let console = Console::new(
        Box::new(std::io::empty()),
        Box::new(SharedOutput::default()),
    );
    let mut m = Machine::new(&program, console, MEMORY).expect("sandmark fits");
    while m.heap.generation() < 2 {
        let r = interpreter::run(&mut m, false, Some(1_000_000));
        assert!(
            matches!(r, Err(umdbt::fault::Stop::StepLimit { .. })),
            "sandmark ended before unpacking: {r:?}"
        );
    }
    m.heap.array(0).to_vec()
}

/// The UMIX image that codex prints once decrypted.
fn umix_image(dir: &std::path::Path) -> Vec<u32> {
    let program = loader::load(&dir.join("codex.umz")).expect("codex.umz");
    let key = std::fs::read_to_string(dir.join("codex.key")).expect("codex.key");
    let input = format!("{}\np\n", key.trim_end());
    let engine = Engine::Translator(Default::default());
    let (out, _) = run_captured_with(
        &program,
        input.as_bytes(),
        &engine,
        MEMORY,
        RunOptions::default(),
    );
    let marker = b"UM program follows colon:";
    let at = out
        .stdout
        .windows(marker.len())
        .position(|w| w == marker)
        .expect("codex printed the image");
    loader::words_from_bytes(&out.stdout[at + marker.len()..])
}

/// Translate `program` block after block from pc 0 (flushing code memory when it fills);
/// returns the UM operations translated.
fn translate_all(program: &[u32]) -> u64 {
    let mut cache = Cache::<Host>::new(program.len() as u32, umdbt::code_memory::Kind::Dual)
        .expect("code memory");
    let compiler = Compiler {
        opts: Options {
            chain: true,
            stats: false,
            budget: false,
            count_ops: false,
            hot: true,
        },
        max_block: umdbt::jit::DEFAULT_MAX_BLOCK,
        check_ids: false,
        // Baseline translation speed (regions are measured by whole runs).
        regions: None,
    };
    let (mut pc, mut ops) = (0u32, 0u64);
    while (pc as usize) < program.len() {
        let run = discover(program, pc, compiler.max_block);
        let compiled = compiler.compile(&cache, program, run);
        pc = compiled.end.0;
        ops += (compiled.end.0 - compiled.start.0) as u64;
        if cache.install(&compiled, false).is_err() {
            cache.flush(program.len() as u32);
        }
    }
    ops
}

fn translate(c: &mut Criterion) {
    let Some(dir) = corpus() else { return };
    let mut g = c.benchmark_group("translate");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    for (name, image) in [
        ("sandmark", sandmark_image(&dir)),
        ("umix", umix_image(&dir)),
    ] {
        let ops = translate_all(&image);
        g.throughput(Throughput::Elements(ops));
        g.bench_function(name, |b| b.iter(|| translate_all(&image)));
    }
    g.finish();
}

/// Run `program` (with `input`) for at most `steps` instructions on `engine`; returns the
/// instructions run.
fn execute_once(program: &[u32], input: &[u8], engine: &Engine, steps: Option<u64>) -> u64 {
    let opts = RunOptions {
        count: true,
        max_steps: steps,
        ..RunOptions::default()
    };
    let (_, stats) = run_captured_with(program, input, engine, MEMORY, opts);
    stats[umdbt::stats::Counter::Instructions]
}

/// A program to run: name, words, input, step limit.
struct Work {
    name: String,
    program: Vec<u32>,
    input: Vec<u8>,
    steps: Option<u64>,
}

fn execute(c: &mut Criterion) {
    let Some(dir) = corpus() else { return };
    let engines = [
        ("translator", Engine::Translator(Default::default())),
        ("interpreter", Engine::Interpreter),
    ];
    let mut work: Vec<Work> = Vec::new();
    let mut micros: Vec<_> = std::fs::read_dir(dir.join("micro"))
        .map(|d| d.filter_map(|e| Some(e.ok()?.path())).collect())
        .unwrap_or_default();
    micros.retain(|p| p.extension().is_some_and(|e| e == "um"));
    micros.sort();
    for p in micros {
        let name = p.file_stem().unwrap().to_string_lossy().into_owned();
        work.push(Work {
            name,
            program: loader::load(&p).expect("micro benchmark").to_vec(),
            input: Vec::new(),
            steps: None,
        });
    }
    let sandmark = loader::load(&dir.join("sandmark.umz")).expect("sandmark.umz");
    work.push(Work {
        name: "sandmark-300M".into(),
        program: sandmark.to_vec(),
        input: Vec::new(),
        steps: Some(300_000_000),
    });
    let codex = loader::load(&dir.join("codex.umz")).expect("codex.umz");
    let key = std::fs::read_to_string(dir.join("codex.key")).expect("codex.key");
    let input = format!("{}\np\n", key.trim_end()).into_bytes();
    work.push(Work {
        name: "codex-300M".into(),
        program: codex.to_vec(),
        input,
        steps: Some(300_000_000),
    });
    let mut g = c.benchmark_group("execute");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    for w in &work {
        for (engine_name, engine) in &engines {
            let n = execute_once(&w.program, &w.input, engine, w.steps);
            g.throughput(Throughput::Elements(n));
            g.bench_with_input(BenchmarkId::new(*engine_name, &w.name), &(), |b, ()| {
                b.iter(|| execute_once(&w.program, &w.input, engine, w.steps))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, translate, execute);
criterion_main!(benches);

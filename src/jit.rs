//! The translating engine: runs generated code, and handles in Rust what makes it return
//! (a jump to untranslated code, a chain request, a fault, a store into translated code,
//! load program from another array, the end of the step budget, a signal).

use crate::arch::Host;
use crate::backend::{Backend, EnterFn};
use crate::cache::{Cache, Pc};
use crate::code_memory;
use crate::compiler::{Compiler, RegionOptions};
use crate::decoder::Instr;
use crate::fault::{Reason, Stop};
use crate::interpreter::{self, Step};
use crate::machine::Machine;
use crate::observe::Observers;
use crate::region::Passes;
use crate::runtime::{ExitKind, JitCtx};
use crate::signals;
use crate::stats::{Counter, Stats};
use crate::translator::Options;

/// Translator knobs (the `umdbt run` flags).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JitOptions {
    /// Chain constant-target exits block to block (`--no-chain` turns it off).
    pub chain: bool,
    /// Most UM operations per block (`--max-block`).
    pub max_block: u32,
    /// The optimizing tier: jumps to a pc before a region is compiled there
    /// (`--opt-threshold`; 0 compiles every block as a region at once); `None` turns the
    /// tier off (`--no-opt`).
    pub opt_threshold: Option<u32>,
    /// Code is interpreted the first this many times it is reached before it is
    /// translated (`--translate-after`; 0 translates at first sight).
    pub translate_after: u8,
}

impl Default for JitOptions {
    fn default() -> Self {
        JitOptions {
            chain: true,
            max_block: DEFAULT_MAX_BLOCK,
            opt_threshold: Some(DEFAULT_OPT_THRESHOLD),
            translate_after: DEFAULT_TRANSLATE_AFTER,
        }
    }
}

pub const DEFAULT_MAX_BLOCK: u32 = 256;
/// Default for `--translate-after`: code that has run once is translated the next time.
pub const DEFAULT_TRANSLATE_AFTER: u8 = 1;
/// Default for `--opt-threshold`.
pub const DEFAULT_OPT_THRESHOLD: u32 = 1000;
/// Upper bound for `--opt-threshold` (hotness counters are 16 bits).
pub const MAX_OPT_THRESHOLD: u32 = u16::MAX as u32 - 1;
/// Upper bound for `--max-block`: the host backend's.
pub const MAX_MAX_BLOCK: u32 = Host::MAX_BLOCK_OPS;

/// Run `m` from its pc to halt, a fault, a signal or `max_steps` instructions, with
/// translation. With `stats`, counters are kept (generated code then carries counting
/// instructions) and returned, each operator's too with `count_ops`; the instructions the
/// interpreter ran are in `m.op_counts`.
pub fn run(
    m: &mut Machine,
    opts: JitOptions,
    stats: bool,
    count_ops: bool,
    max_steps: Option<u64>,
    observers: &mut Observers,
) -> (Result<(), Stop>, Stats) {
    // perf names code in anonymous memory only: profiling wants the single mapping.
    let kind = match observers.profiler {
        Some(_) => code_memory::Kind::Switching,
        None => code_memory::Kind::Dual,
    };
    // The tier needs exact per-operator counts it does not keep: off with --stats=ops.
    let threshold = opts.opt_threshold.filter(|_| !(stats && count_ops));
    let counter_start = threshold.map_or(u16::MAX, |t| t.min(MAX_OPT_THRESHOLD) as u16);
    // Tracing every block entry: no chaining and no dispatch table, so that every entry
    // passes through Rust.
    let exec_trace = observers.traces_exec();
    let mut ctx = Box::new(JitCtx::new());
    // SAFETY: the context is boxed (its flag does not move) and outlives the watch, which
    // is declared after it and so dropped before it.
    let _watch = unsafe { signals::Watch::new(&ctx.interrupt) };
    ctx.regs = m.regs;
    ctx.budget = max_steps.unwrap_or(u64::MAX);
    // Tracing every block entry wants every entry translated.
    let cold_runs = if exec_trace { 0 } else { opts.translate_after };
    let mut pc = m.pc;
    // Code that has not run `cold_runs` times yet is interpreted, the first stretch (up to
    // the first jump) included. It runs before code memory is even mapped, so that a
    // program that ends there (an empty one, one that faults at once) does not pay for
    // the translator's set-up, a tenth of such a run.
    let first = (cold_runs > 0 && pc < m.heap.program().1).then_some(pc);
    if first.is_some() {
        match run_cold::<Host>(m, &mut ctx, None, pc, stats, max_steps) {
            Ok(next) => pc = next,
            Err(result) => return leave(m, &ctx, result, observers),
        }
    }
    let mut cache =
        match Cache::<Host>::with_options(m.heap.program().1, kind, counter_start, stats) {
            Ok(c) => c,
            Err(e) => {
                log::warn!("cannot map code memory ({e}); interpreting instead");
                m.regs = ctx.regs;
                m.pc = pc;
                // The step limit counts what already ran.
                let result = match interpreter::run(m, stats, max_steps.map(|_| ctx.budget)) {
                    Err(Stop::StepLimit { pc, .. }) => Err(Stop::StepLimit {
                        pc,
                        limit: max_steps.unwrap_or_default(),
                    }),
                    result => result,
                };
                return leave(m, &ctx, result, observers);
            }
        };
    if let Some(first) = first {
        // The visit counts as one of the runs before translation.
        cache.still_cold(first, cold_runs);
    }
    let routines = cache.routines_code();
    observers.code_loaded("routines", 0, &[], cache.code_base(), routines);
    let compiler = Compiler {
        opts: Options {
            chain: opts.chain && !exec_trace,
            stats,
            budget: max_steps.is_some(),
            count_ops: stats && count_ops,
            hot: threshold.is_some_and(|t| t > 0),
        },
        max_block: opts.max_block.clamp(1, MAX_MAX_BLOCK),
        check_ids: !m.heap.covers_whole_space(),
        regions: threshold.map(|t| RegionOptions {
            first_sight: t == 0,
            passes: Passes::default(),
        }),
    };
    ctx.code_base = cache.code_base() as u64;
    // SAFETY: `enter` is the routine `Backend::routines` assembled with exactly the
    // `EnterFn` signature.
    let enter = unsafe { std::mem::transmute::<usize, EnterFn>(cache.routines().enter) };
    // Where to enter next when it is not the code entered at `pc` (baseline code after a
    // region's side exit).
    let mut code_override: Option<usize> = None;
    let result = loop {
        if let Some(signal) = signals::received() {
            break Err(Stop::Interrupted { pc, signal });
        }
        let prog_len = m.heap.program().1;
        if pc >= prog_len {
            // Let the interpreter report the fetch fault.
            match interpret(m, &mut ctx, pc, 1, stats, max_steps) {
                Ok(next) => {
                    pc = next;
                    continue;
                }
                Err(r) => break r,
            }
        }
        let code = match code_override.take() {
            Some(code) => code,
            None if cache.still_cold(pc, cold_runs) => {
                match run_cold(m, &mut ctx, Some(&mut cache), pc, stats, max_steps) {
                    Ok(next) => {
                        pc = next;
                        continue;
                    }
                    Err(r) => break r,
                }
            }
            None => {
                let id = compiler.block_at(&mut cache, m.heap.array(0), pc, observers);
                cache.code_address(id)
            }
        };
        // The tables may have been reallocated by a flush; the heap and console pointers
        // are made afresh from `m` for every run, and `m` is not used until it returns.
        (ctx.dtable, ctx.dtable_len) = cache.dtable();
        if exec_trace {
            // Every computed jump misses.
            ctx.dtable_len = 0;
            observers.exec(pc);
        }
        ctx.codemap = cache.codemap();
        ctx.counters = cache.counters();
        ctx.profile = cache.profiles();
        ctx.heap = &raw mut *m.heap;
        ctx.console = &raw mut m.console;
        ctx.stats[Counter::Exits] += 1;
        cache.ready_to_run();
        // SAFETY: `code` is the entry of a valid block of code memory, which was made
        // executable just above and is not written while generated code runs; the context
        // holds the dispatch table and code map of this cache, and the machine's heap and
        // console, which nothing else references until `enter` returns. Generated code
        // checks every array access against the heap's table and never touches other
        // memory (see the README).
        unsafe { enter(&raw mut *ctx, code) };
        let kind = ExitKind::from_u32(ctx.exit_kind).expect("generated code sets an exit kind");
        let (epc, ea, eb) = (ctx.exit_pc, ctx.exit_a, ctx.exit_b);
        log::trace!("exit {kind:?} pc {epc} a {ea} b {eb}");
        match kind {
            ExitKind::Halt => {
                m.pc = epc;
                break Ok(());
            }
            ExitKind::Miss => {
                ctx.stats[Counter::Misses] += 1;
                pc = epc;
            }
            ExitKind::Link => {
                pc = epc;
                if epc < m.heap.program().1 && signals::received().is_none() {
                    let src = cache.block_id(ea);
                    let side_exit = cache.is_side_exit(src, eb);
                    // A target reached fewer than `cold_runs` times so far is interpreted,
                    // as code reached any other way is (the loop's top counts the visit);
                    // the jump stays unchained and asks again when it next runs. Much code
                    // that a constant jump reaches runs only once (on the UMIX session,
                    // translating it at once cost 0.3 M more UM operations translated).
                    if !side_exit && cache.is_cold(epc, cold_runs) {
                        continue;
                    }
                    let program = m.heap.array(0);
                    // A region's side exit goes on in baseline code.
                    let dst = if side_exit {
                        ctx.stats[Counter::SideExits] += 1;
                        let dst = compiler.baseline_block_at(&mut cache, program, epc, observers);
                        code_override = Some(cache.code_address(dst));
                        dst
                    } else {
                        compiler.block_at(&mut cache, program, epc, observers)
                    };
                    // Rejected when compiling `dst` flushed the cache: `src` is stale then.
                    cache.link(src, eb, dst);
                }
            }
            ExitKind::Side => {
                pc = epc;
                ctx.stats[Counter::SideExits] += 1;
                if epc < m.heap.program().1 {
                    let program = m.heap.array(0);
                    let dst = compiler.baseline_block_at(&mut cache, program, epc, observers);
                    code_override = Some(cache.code_address(dst));
                }
            }
            ExitKind::Hot => {
                pc = epc;
                if epc < m.heap.program().1 && !cache.has_region(Pc(epc)) {
                    compiler.region_at(&mut cache, m.heap.array(0), epc, observers);
                }
                // Counted down again from the top: not asked again soon.
                cache.reset_counter(epc, u16::MAX);
            }
            ExitKind::Interp => {
                give_back(&mut ctx, &compiler.opts, eb);
                if let Some(signal) = signals::received() {
                    break Err(Stop::Interrupted { pc: epc, signal });
                }
                let generation = m.heap.generation();
                match interpret(m, &mut ctx, epc, 1, stats, max_steps) {
                    Ok(next) => pc = next,
                    Err(r) => break r,
                }
                if m.heap.generation() != generation {
                    cache.flush(m.heap.program().1);
                }
            }
            ExitKind::Fault => {
                give_back(&mut ctx, &compiler.opts, eb);
                let reason = ctx
                    .pending
                    .take()
                    .unwrap_or(Reason::Io("runtime fault".into()));
                let word = m.heap.array(0)[epc as usize];
                m.pc = epc;
                break Err(Stop::at(epc, Some(Instr::decode(word).op), reason));
            }
            ExitKind::Smc => {
                give_back(&mut ctx, &compiler.opts, eb);
                let word = ctx.regs[(ea & 7) as usize];
                cache.invalidate_word(word);
                pc = epc;
            }
            ExitKind::Budget => {
                // The block did not start (nothing counted for statistics): give back what
                // it took, and interpret what is left, fewer instructions than the block.
                ctx.budget = ctx.budget.wrapping_add(eb as u64);
                match interpret(m, &mut ctx, epc, eb as u64, stats, max_steps) {
                    Ok(next) => pc = next,
                    Err(r) => break r,
                }
            }
        }
    };
    if let Some(path) = std::env::var_os("UMDBT_DUMP_CODE") {
        // Debugging aid: the code memory, for `objdump -b binary --adjust-vma=BASE`.
        let bytes = cache.code_bytes();
        match std::fs::write(&path, bytes) {
            Ok(()) => log::warn!(
                "code memory ({} bytes, base {:#x}) written to {}",
                bytes.len(),
                cache.code_base(),
                std::path::Path::new(&path).display()
            ),
            Err(e) => log::warn!("cannot write code dump: {e}"),
        }
    }
    ctx.stats.add(&cache.stats);
    leave(m, &ctx, result, observers)
}

/// How a run ended (`result`) with its statistics, the machine left as the run left it.
fn leave(
    m: &mut Machine,
    ctx: &JitCtx,
    result: Result<(), Stop>,
    observers: &mut Observers,
) -> (Result<(), Stop>, Stats) {
    m.regs = ctx.regs;
    if let Err(s) = &result {
        m.pc = s.pc();
    }
    observers.flush();
    (result, ctx.stats)
}

/// Give back the `n` operations of a block that did not run: to the step budget (which
/// blocks take from only when it is on) and to the instruction count (kept only with
/// statistics).
fn give_back(ctx: &mut JitCtx, opts: &Options, n: u32) {
    if opts.budget {
        ctx.budget += n as u64;
    }
    if opts.stats {
        ctx.stats[Counter::Instructions] -= n as u64;
    }
}

/// Interpret code that is not worth translating yet, from `pc` to the first jump (or the
/// end of the step budget): the jump's target when it ran, else how the run ended. Stores
/// into array 0 invalidate the translations of `cache` they hit, and replacing array 0
/// flushes them (no cache: nothing is translated yet).
fn run_cold<B: Backend>(
    m: &mut Machine,
    ctx: &mut JitCtx,
    mut cache: Option<&mut Cache<B>>,
    pc: u32,
    stats: bool,
    max_steps: Option<u64>,
) -> Result<u32, Result<(), Stop>> {
    m.regs = ctx.regs;
    m.pc = pc;
    let generation = m.heap.generation();
    let end = loop {
        let (step, ran) = interpreter::run_to_jump(m, stats, ctx.budget);
        ctx.budget -= ran;
        ctx.stats[Counter::Interpreted] += ran;
        match step {
            Step::Stored(word) => {
                if let Some(cache) = cache.as_deref_mut()
                    && cache.covers(word)
                {
                    cache.invalidate_word(word);
                }
            }
            step => break ended(step, m.pc, ctx.budget, max_steps),
        }
    };
    ctx.regs = m.regs;
    if let Some(cache) = cache
        && m.heap.generation() != generation
    {
        cache.flush(m.heap.program().1);
    }
    end
}

/// Interpret at most `n` instructions from `pc`, and fewer when the step budget runs out
/// first: the next pc when they ran, else how the run ended (`max_steps` reached
/// included).
fn interpret(
    m: &mut Machine,
    ctx: &mut JitCtx,
    pc: u32,
    n: u64,
    stats: bool,
    max_steps: Option<u64>,
) -> Result<u32, Result<(), Stop>> {
    m.regs = ctx.regs;
    m.pc = pc;
    let (step, ran) = interpreter::run_for(m, stats, n.min(ctx.budget));
    ctx.regs = m.regs;
    ctx.budget -= ran;
    ctx.stats[Counter::Interpreted] += ran;
    ended(step, m.pc, ctx.budget, max_steps)
}

/// Where an interpreted stretch left off (`pc`, with `budget` steps left): the pc to go on
/// from, else how the run ended (`max_steps` reached included).
fn ended(
    step: Step,
    pc: u32,
    budget: u64,
    max_steps: Option<u64>,
) -> Result<u32, Result<(), Stop>> {
    match step {
        Step::Budget => match max_steps {
            Some(limit) if budget == 0 => Err(Err(Stop::StepLimit { pc, limit })),
            _ => Ok(pc),
        },
        Step::Jumped => Ok(pc),
        Step::Halted => Err(Ok(())),
        Step::Stopped(s) => Err(Err(s)),
        Step::Stored(_) => unreachable!("the caller goes on after a store"),
    }
}

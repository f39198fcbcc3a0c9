//! The translating engine: runs generated code, and handles in Rust what makes it return
//! (a jump to untranslated code, a chain request, a fault, a store into translated code,
//! load program from another array).

use crate::arch::Host;
use crate::backend::{Backend, EnterFn};
use crate::cache::Cache;
use crate::compiler::Compiler;
use crate::decoder::Instr;
use crate::fault::{Fault, Reason};
use crate::interpreter::{self, Step};
use crate::machine::Machine;
use crate::runtime::{ExitKind, JitCtx};
use crate::stats::{Counter, Stats};
use crate::translator::Options;

/// Translator knobs (the `umdbt run` flags).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JitOptions {
    /// Chain constant-target exits block to block (`--no-chain` turns it off).
    pub chain: bool,
    /// Most UM operations per block (`--max-block`).
    pub max_block: u32,
}

impl Default for JitOptions {
    fn default() -> Self {
        JitOptions {
            chain: true,
            max_block: DEFAULT_MAX_BLOCK,
        }
    }
}

pub const DEFAULT_MAX_BLOCK: u32 = 256;
/// Upper bound for `--max-block`: the host backend's.
pub const MAX_MAX_BLOCK: u32 = Host::MAX_BLOCK_OPS;

/// Run `m` from its pc to halt or fault with translation. With `stats`, counters are kept
/// (generated code then carries counting instructions) and returned.
pub fn run(m: &mut Machine, opts: JitOptions, stats: bool) -> (Result<(), Fault>, Stats) {
    let mut cache = match Cache::<Host>::new(m.heap.program().1) {
        Ok(c) => c,
        Err(e) => {
            log::warn!("cannot map code memory ({e}); interpreting instead");
            let r = interpreter::run(m, stats);
            let mut s = Stats::default();
            s[Counter::Instructions] = m.instructions();
            return (r, s);
        }
    };
    let compiler = Compiler {
        opts: Options {
            chain: opts.chain,
            stats,
        },
        max_block: opts.max_block.clamp(1, MAX_MAX_BLOCK),
        check_ids: !m.heap.covers_whole_space(),
    };
    let mut ctx = Box::new(JitCtx::new());
    ctx.regs = m.regs;
    ctx.code_base = cache.code_base() as u64;
    // SAFETY: `enter` is the routine `Backend::routines` assembled with exactly the
    // `EnterFn` signature.
    let enter = unsafe { std::mem::transmute::<usize, EnterFn>(cache.routines().enter) };
    let mut pc = m.pc;
    let result = loop {
        let prog_len = m.heap.program().1;
        if pc >= prog_len {
            // Let the interpreter report the fetch fault.
            match interpret_one(m, &mut ctx, pc, stats) {
                Ok(next) => {
                    pc = next;
                    continue;
                }
                Err(r) => break r,
            }
        }
        let id = compiler.block_at(&mut cache, m.heap.array(0), pc);
        let code = cache.code_address(id);
        // The tables may have been reallocated by a flush; the heap and console pointers
        // are made afresh from `m` for every run, and `m` is not used until it returns.
        (ctx.dtable, ctx.dtable_len) = cache.dtable();
        ctx.codemap = cache.codemap();
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
                if epc < prog_len {
                    let src = cache.block_id(ea);
                    let dst = compiler.block_at(&mut cache, m.heap.array(0), epc);
                    // Rejected when compiling `dst` flushed the cache: `src` is stale then.
                    cache.link(src, eb, dst);
                }
            }
            ExitKind::Interp => {
                uncount(&mut ctx, stats, eb);
                let generation = m.heap.generation();
                match interpret_one(m, &mut ctx, epc, stats) {
                    Ok(next) => pc = next,
                    Err(r) => break r,
                }
                if m.heap.generation() != generation {
                    cache.flush(m.heap.program().1);
                }
            }
            ExitKind::Fault => {
                uncount(&mut ctx, stats, eb);
                let reason = ctx
                    .pending
                    .take()
                    .unwrap_or(Reason::Io("runtime fault".into()));
                let word = m.heap.array(0)[epc as usize];
                m.pc = epc;
                break Err(Fault::new(epc, Instr::decode(word).op, reason));
            }
            ExitKind::Smc => {
                uncount(&mut ctx, stats, eb);
                let word = ctx.regs[(ea & 7) as usize];
                cache.invalidate_word(word);
                pc = epc;
            }
        }
    };
    m.regs = ctx.regs;
    if let Err(f) = &result {
        m.pc = f.pc;
    }
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
    let mut s = ctx.stats;
    s.add(&cache.stats);
    s[Counter::Instructions] += m.instructions();
    (result, s)
}

/// Take back the `n` instructions a block counted on entry but did not run (the counters
/// exist only with statistics).
fn uncount(ctx: &mut JitCtx, stats: bool, n: u32) {
    if stats {
        ctx.stats[Counter::Instructions] -= n as u64;
    }
}

/// Interpret the one instruction at `pc`; returns the next pc, or how the run ended.
fn interpret_one(
    m: &mut Machine,
    ctx: &mut JitCtx,
    pc: u32,
    stats: bool,
) -> Result<u32, Result<(), Fault>> {
    m.regs = ctx.regs;
    m.pc = pc;
    ctx.stats[Counter::Interpreted] += 1;
    let step = interpreter::run_for(m, stats, 1);
    ctx.regs = m.regs;
    match step {
        Step::Budget => Ok(m.pc),
        Step::Halted => Err(Ok(())),
        Step::Faulted(f) => Err(Err(f)),
    }
}

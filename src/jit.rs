//! The translating engine: runs generated code, and handles in Rust what makes it return
//! (a jump to untranslated code, a chain request, a fault, a store into translated code,
//! load program from another array).

use crate::cache::{Cache, CacheStats};
use crate::decoder::Instr;
use crate::fault::{Fault, Reason};
use crate::interpreter::{self, Step};
use crate::machine::Machine;
use crate::runtime::{ExitKind, JitCtx};
use crate::translator::Options;
use std::time::Duration;

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
/// Upper bound for `--max-block` (keeps a block and its stubs within the +-1 MiB reach of an
/// AArch64 conditional branch).
pub const MAX_MAX_BLOCK: u32 = 2048;

/// What `--stats` reports for the translator.
#[derive(Clone, Debug, Default)]
pub struct JitStats {
    pub cache: CacheStats,
    /// UM instructions executed (generated code and interpreted steps).
    pub instructions: u64,
    /// Jumps through the dispatch table from generated code, and how many found no block.
    pub lookups: u64,
    pub misses: u64,
    /// Constant-target exits taken, and how many of them went through their stub
    /// (unchained) instead of straight to the next block.
    pub const_exits: u64,
    pub stub_runs: u64,
    /// Exits to Rust of each kind.
    pub exits: u64,
    pub interpreted: u64,
    pub code_used: u64,
    pub translate_time: Duration,
}

/// Run `m` from its pc to halt or fault with translation. With `stats`, counters are kept
/// (generated code then carries counting instructions) and returned.
pub fn run(m: &mut Machine, opts: JitOptions, stats: bool) -> (Result<(), Fault>, JitStats) {
    let mut js = JitStats::default();
    let prog_len = m.heap.program().1;
    let topts = Options {
        chain: opts.chain,
        stats,
    };
    let check_ids = !m.heap.whole_space;
    let max_block = opts.max_block.clamp(1, MAX_MAX_BLOCK);
    let mut cache = match Cache::new(prog_len, topts, max_block, check_ids) {
        Ok(c) => c,
        Err(e) => {
            log::warn!("cannot map code memory ({e}); interpreting instead");
            return (interpreter::run(m, stats), js);
        }
    };
    let heap: *mut crate::memory::Heap = &mut *m.heap;
    let mut ctx = Box::new(JitCtx::new(m as *mut Machine, heap));
    ctx.regs = m.regs;
    ctx.code_base = cache.code_base() as u64;
    let enter_addr = cache.routines().enter;
    // SAFETY: `enter` is the routine assembled by `arch::host::routines` with exactly this
    // signature: it saves the callee-saved registers, loads the UM registers from the context
    // and jumps to the given code, which eventually returns through the exit routine.
    let enter: extern "C" fn(*mut JitCtx, usize) =
        unsafe { std::mem::transmute::<usize, extern "C" fn(*mut JitCtx, usize)>(enter_addr) };
    let mut pc = m.pc;
    let result = loop {
        let (prog, prog_len) = m.heap.program();
        if pc >= prog_len {
            // Let the interpreter report the fetch fault.
            match interpret_one(m, &mut ctx, pc, stats, &mut js) {
                Ok(next) => {
                    pc = next;
                    continue;
                }
                Err(r) => break r,
            }
        }
        let id = block_at(&mut cache, m, pc);
        // The tables may have been reallocated by a flush.
        let (dt, dt_len) = cache.dtable();
        ctx.dtable = dt;
        ctx.dtable_len = dt_len;
        ctx.codemap = cache.codemap();
        let code = cache.code_address(id);
        js.exits += 1;
        enter(&mut *ctx, code);
        let kind = ExitKind::from_u32(ctx.exit_kind).expect("generated code sets an exit kind");
        let (epc, ea, eb) = (ctx.exit_pc, ctx.exit_a, ctx.exit_b);
        match kind {
            ExitKind::Halt => {
                m.pc = epc;
                break Ok(());
            }
            ExitKind::Miss => {
                js.misses += 1;
                pc = epc;
            }
            ExitKind::Link => {
                pc = epc;
                if epc < prog_len {
                    let flushes = cache.stats.flushes;
                    let dst = block_at(&mut cache, m, epc);
                    // A flush while translating made the source block id stale.
                    if cache.stats.flushes == flushes {
                        cache.link(ea, eb, dst);
                    }
                }
            }
            ExitKind::Interp => {
                uncount(&mut ctx, stats, eb);
                let before = m.heap.program();
                match interpret_one(m, &mut ctx, epc, stats, &mut js) {
                    Ok(next) => pc = next,
                    Err(r) => break r,
                }
                let after = m.heap.program();
                if after != before {
                    cache.flush(after.1);
                }
            }
            ExitKind::Fault => {
                uncount(&mut ctx, stats, eb);
                let reason = ctx
                    .pending
                    .take()
                    .unwrap_or(Reason::Io("runtime fault".into()));
                // SAFETY: `epc` is inside array 0 (it is in a valid block).
                let word = unsafe { *prog.add(epc as usize) };
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
    js.cache = cache.stats.clone();
    js.translate_time = cache.stats.translate_time;
    js.instructions = ctx.icount + m.instructions();
    js.lookups = ctx.lookups;
    js.const_exits = ctx.const_exits;
    js.stub_runs = ctx.stub_runs;
    js.code_used = cache.code_used() as u64;
    (result, js)
}

/// The block for `pc` (inside array 0), translated now if there is none.
fn block_at(cache: &mut Cache, m: &Machine, pc: u32) -> u32 {
    if let Some(id) = cache.lookup(pc) {
        return id;
    }
    let (prog, prog_len) = m.heap.program();
    // SAFETY: array 0 has `prog_len` words at `prog`, and nothing writes it while this
    // shared view lives (only the translator reads it, from Rust, between runs).
    let program = unsafe { std::slice::from_raw_parts(prog, prog_len as usize) };
    cache.translate(program, pc)
}

/// Take back the `n` instructions a block counted on entry but did not run (the counters
/// exist only with statistics).
fn uncount(ctx: &mut JitCtx, stats: bool, n: u32) {
    if stats {
        ctx.icount -= n as u64;
    }
}

/// Interpret the one instruction at `pc`; returns the next pc, or how the run ended.
fn interpret_one(
    m: &mut Machine,
    ctx: &mut JitCtx,
    pc: u32,
    stats: bool,
    js: &mut JitStats,
) -> Result<u32, Result<(), Fault>> {
    m.regs = ctx.regs;
    m.pc = pc;
    js.interpreted += 1;
    let step = interpreter::run_for(m, stats, 1);
    ctx.regs = m.regs;
    match step {
        Step::Budget => Ok(m.pc),
        Step::Halted => Err(Ok(())),
        Step::Faulted(f) => Err(Err(f)),
    }
}

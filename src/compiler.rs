//! Compiling a block, from a pc of array 0 to machine code in the cache. This is where a
//! block is made; follow it through three files:
//!
//! 1. here: the discoverer (`src/discoverer.rs`) cuts the straight-line run of UM
//!    operations that starts at the pc, and the block is put together and installed;
//! 2. `src/translator.rs`: what to emit for each operation (constant folding, array
//!    register pairs, exits and their stubs), driving a [`Backend`];
//! 3. `arch/<isa>/emit.rs`: how each piece is encoded for the host.

use crate::backend::{Backend, TooLong};
use crate::cache::{BlockId, Cache, Compiled, Full, Pc};
use crate::discoverer::{Run, discover};
use crate::observe::Observers;
use crate::region::{self, Passes};
use crate::stats::Counter;
use crate::translator::{self, Options};
use std::time::Instant;

/// How blocks are compiled (the translator's knobs).
#[derive(Clone, Copy, Debug)]
pub struct Compiler {
    pub opts: Options,
    /// Most UM operations per block.
    pub max_block: u32,
    /// Generated code must compare identifiers with the heap's table length (the table does
    /// not cover every identifier).
    pub check_ids: bool,
    /// The optimizing tier: `None` when it is off; with `first_sight`, every block is
    /// compiled as a region from the start.
    pub regions: Option<RegionOptions>,
}

/// The optimizing tier's knobs.
#[derive(Clone, Copy, Debug)]
pub struct RegionOptions {
    pub first_sight: bool,
    pub passes: Passes,
}

impl Compiler {
    /// The block for `pc` (inside `program`, which is array 0), compiled and installed now
    /// if the cache has none. May flush the cache (when code memory or the block table is
    /// full): block identifiers from before the call may be stale after it.
    pub fn block_at<B: Backend>(
        &self,
        cache: &mut Cache<B>,
        program: &[u32],
        pc: u32,
        observers: &mut Observers,
    ) -> BlockId {
        if let Some(id) = cache.lookup(Pc(pc)) {
            return id;
        }
        if self.regions.is_some_and(|r| r.first_sight)
            && let Some(id) = self.region_at(cache, program, pc, observers)
        {
            return id;
        }
        self.baseline_block_at(cache, program, pc, observers)
    }

    /// The baseline block for `pc`, compiled and installed now if there is none (a region's
    /// side exits go on in baseline code). May flush the cache, as [`Compiler::block_at`].
    pub fn baseline_block_at<B: Backend>(
        &self,
        cache: &mut Cache<B>,
        program: &[u32],
        pc: u32,
        observers: &mut Observers,
    ) -> BlockId {
        if let Some(id) = cache.lookup_base(Pc(pc)) {
            return id;
        }
        let t0 = Instant::now();
        let run = discover(program, pc, self.max_block);
        cache.prepare(Pc(run.start), Pc(run.next_pc()), program.len() as u32);
        let mut flushed = false;
        let id = loop {
            let compiled = self.compile(cache, program, run.clone());
            match cache.install(&compiled, self.opts.chain) {
                Ok(id) => {
                    let (start, end) = (compiled.start.0, compiled.end.0);
                    let ops = &program[start as usize..end as usize];
                    let addr = cache.code_address(id);
                    observers.code_loaded("block", start, ops, addr, &compiled.code);
                    break id;
                }
                Err(Full) if flushed => panic!("a single block exceeds code memory"),
                Err(Full) => {
                    cache.flush(program.len() as u32);
                    flushed = true;
                }
            }
        };
        cache.stats.add_time(Counter::TranslateTime, t0.elapsed());
        id
    }

    /// A region entered at `pc`, compiled and installed now (`None` when the tier is off or
    /// the region's code does not assemble). May flush the cache, as
    /// [`Compiler::block_at`].
    pub fn region_at<B: Backend>(
        &self,
        cache: &mut Cache<B>,
        program: &[u32],
        pc: u32,
        observers: &mut Observers,
    ) -> Option<BlockId> {
        let opts = self.regions?;
        let t0 = Instant::now();
        // At first sight nothing has run or been counted yet: take in all that is reachable.
        let seen = region::Seen {
            entered: &|p| opts.first_sight || cache.entered(p),
            claimed: &|p| cache.has_region(Pc(p)),
            counted: &|p| match opts.first_sight {
                true => u32::MAX,
                false => cache.jumps_counted(p),
            },
            predicted: &|p| cache.predicted(p),
        };
        let plan = region::plan(program, pc, self.max_block, &seen);
        let ranges: Vec<(u32, u32)> = plan
            .nodes
            .iter()
            .map(|n| (n.run.start, n.run.next_pc()))
            .collect();
        cache.prepare_ranges(&ranges, program.len() as u32);
        let mut flushed = false;
        let id = loop {
            let is_code = |w: u32| cache.covers(w);
            let compiled = match region::compile::<B>(
                &plan,
                &is_code,
                opts.passes,
                cache.next_address(),
                cache.routines(),
                self.check_ids,
                cache.next_id().index(),
                self.opts,
                observers.wants_ir(),
                program.len() as u32,
            ) {
                Ok(c) => c,
                Err(TooLong(why)) => {
                    log::debug!("region at pc {pc} not compiled: {why}");
                    return None;
                }
            };
            match cache.install_region(&compiled, self.opts.chain) {
                Ok(id) => {
                    if let Some(ir) = &compiled.ir {
                        observers.region_ir(pc, ir);
                    }
                    if observers.wants_code() {
                        let addr = cache.code_address(id);
                        observers.region_loaded(
                            pc,
                            &compiled.ranges,
                            program,
                            addr,
                            &compiled.code,
                        );
                    }
                    break id;
                }
                Err(Full) if flushed => return None,
                Err(Full) => {
                    cache.flush(program.len() as u32);
                    flushed = true;
                }
            }
        };
        let took = t0.elapsed();
        cache.stats.add_time(Counter::OptTime, took);
        cache.stats.add_time(Counter::TranslateTime, took);
        Some(id)
    }

    /// Translate `run` for the cache's next address. A run whose machine code does not
    /// assemble (a branch does not reach its stub) is cut in half until it does.
    pub fn compile<B: Backend>(&self, cache: &Cache<B>, program: &[u32], mut run: Run) -> Compiled {
        loop {
            let mut e = B::new(cache.next_address(), cache.routines(), self.check_ids);
            let is_code = |w: u32| cache.covers(w);
            let link_tag = cache.next_id().index();
            let array0_len = program.len() as u32;
            let t = translator::translate(&mut e, &run, link_tag, self.opts, &is_code, array0_len);
            match e.finish() {
                Ok(code) => {
                    return Compiled {
                        start: Pc(run.start),
                        end: Pc(run.next_pc()),
                        code,
                        exits: t.exits,
                        watches: t.watches,
                    };
                }
                Err(TooLong(why)) => {
                    let shorter = run.ops.len() as u32 / 2;
                    assert!(shorter >= 1, "a single operation does not assemble: {why}");
                    log::debug!(
                        "pc {}: {why}; translating {shorter} operations instead of {}",
                        run.start,
                        run.ops.len()
                    );
                    run = discover(program, run.start, shorter);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::aarch64::A64;
    use crate::assembler::assemble;

    #[test]
    fn an_aarch64_block_beyond_branch_range_is_translated_shorter() {
        // 100,000 indexes (12 bytes each once the array is in a register pair), each with
        // a cold stub of 16 bytes after the block: the last ones' branches to their stubs
        // are 1.6 MB away, beyond the 1 MiB reach of a conditional branch. (AArch64 code assembles on any host;
        // it is only placed in code memory here, never run.)
        let n = 100_000;
        let src = "index r1, r2, r3\n".repeat(n) + "halt\n";
        let program = assemble(&src).unwrap();
        let mut cache =
            Cache::<A64>::new(program.len() as u32, crate::code_memory::Kind::Dual).unwrap();
        let compiler = Compiler {
            opts: Options {
                chain: true,
                stats: false,
                budget: false,
                count_ops: false,
                hot: false,
            },
            max_block: u32::MAX,
            check_ids: false,
            regions: None,
        };
        let whole = discover(&program, 0, u32::MAX);
        assert_eq!(whole.ops.len(), n + 1);
        let c = compiler.compile(&cache, &program, whole);
        let len = c.end.0 - c.start.0;
        assert!(len <= n as u32 / 2, "cut at least in half: {len} ops");
        assert!(len > 1000, "not cut further than needed: {len} ops");
        let id = cache.install(&c, true).unwrap();
        assert_eq!(cache.lookup(Pc(0)), Some(id));
    }
}

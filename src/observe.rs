//! What the translator tells the outside about the code it makes: profilers
//! ([`crate::profile`]: perf map, jitdump) and traces ([`crate::trace`]).

use crate::profile::Profiler;
use crate::trace::Tracer;

/// The observers of a translating run (none by default).
#[derive(Default)]
pub struct Observers {
    pub profiler: Option<Profiler>,
    pub tracer: Option<Tracer>,
}

impl Observers {
    /// Whether every block entry is to be traced (chaining and the dispatch table must then
    /// be off, so that each entry passes through Rust).
    pub fn traces_exec(&self) -> bool {
        self.tracer.as_ref().is_some_and(|t| t.set().exec)
    }

    /// Whether anyone looks at the code (so that it is worth gathering what they need).
    pub fn wants_code(&self) -> bool {
        self.profiler.is_some() || self.tracer.is_some()
    }

    /// Code of `kind` (`routines`, `block`, `region`) for UM words `ops` from `start` was
    /// placed at `addr`.
    pub fn code_loaded(&mut self, kind: &str, start: u32, ops: &[u32], addr: usize, code: &[u8]) {
        if let Some(p) = &mut self.profiler {
            let name = match kind {
                "routines" => "umdbt_routines".to_string(),
                _ => format!("um_{kind}_{start}_{}", start as usize + ops.len()),
            };
            if let Err(e) = p.code_loaded(addr, code, &name) {
                log::warn!("cannot write the profile ({e}); profiling stops");
                self.profiler = None;
            }
        }
        if let Some(t) = &mut self.tracer
            && kind != "routines"
        {
            t.translated(kind, start, ops, addr, code);
        }
    }

    /// A region entered at `seed` covering the UM words `ranges` of `program` was placed at
    /// `addr`.
    pub fn region_loaded(
        &mut self,
        seed: u32,
        ranges: &[(u32, u32)],
        program: &[u32],
        addr: usize,
        code: &[u8],
    ) {
        if let Some(p) = &mut self.profiler {
            let lo = ranges.iter().map(|r| r.0).min().unwrap_or(seed);
            let hi = ranges.iter().map(|r| r.1).max().unwrap_or(seed);
            if let Err(e) = p.code_loaded(addr, code, &format!("um_region_{lo}_{hi}")) {
                log::warn!("cannot write the profile ({e}); profiling stops");
                self.profiler = None;
            }
        }
        if let Some(t) = &mut self.tracer {
            let blocks: Vec<(u32, &[u32])> = ranges
                .iter()
                .map(|&(s, e)| (s, &program[s as usize..e as usize]))
                .collect();
            t.region(seed, &blocks, addr, code);
        }
    }

    /// Whether the optimized IR of regions is wanted.
    pub fn wants_ir(&self) -> bool {
        self.tracer.as_ref().is_some_and(|t| t.set().ir)
    }

    /// The optimized IR of the region at `seed`.
    pub fn region_ir(&mut self, seed: u32, ir: &str) {
        if let Some(t) = &mut self.tracer {
            t.ir(seed, ir);
        }
    }

    /// Generated code enters the block at `pc`.
    pub fn exec(&mut self, pc: u32) {
        if let Some(t) = &mut self.tracer {
            t.exec(pc);
        }
    }

    /// Write out what is buffered (at the end of a run).
    pub fn flush(&mut self) {
        if let Some(p) = &mut self.profiler
            && let Err(e) = p.flush()
        {
            log::warn!("cannot write the profile: {e}");
        }
        if let Some(t) = &mut self.tracer
            && let Err(e) = t.flush()
        {
            log::warn!("cannot write the trace: {e}");
        }
    }
}

//! The block cache: translated blocks keyed by UM pc, the dispatch table generated code
//! jumps through, the map of array-0 words covered by translations, chaining and precise
//! invalidation.
//!
//! - `by_pc` (hash map) finds the block record for a pc; `dtable` (one `u32` per word of
//!   array 0, the block's offset in code memory, 0 for none) lets generated code jump to any
//!   pc in O(1) without calling Rust. Offset 0 of code memory is the miss routine, so an
//!   empty entry lands there.
//! - `codemap` (one byte per word of array 0) is non-zero where some valid block covers the
//!   word; generated stores into array 0 test it inline and leave only on a hit.
//! - Each block records its patchable exits (target pc, where the jump is, where its stub
//!   is, which block it is chained to) and its incoming links, so invalidating a block
//!   unchains every jump into it.
//! - `pages` lists, per 64-word page, the blocks that touch it, to find the blocks covering a
//!   stored word.
//! - A store at a constant word that no translation covers (sandmark's globals) has no
//!   inline check at all: its block *watches* the word (`watches`), and translating code
//!   that covers a watched word first invalidates the watchers, which are retranslated with
//!   the check when they run again.

use crate::arch::host;
use crate::code_memory::CodeMemory;
use crate::discoverer::discover;
use crate::runtime::Routines;
use crate::translator::{self, Options};
use std::collections::HashMap;
use std::time::{Duration, Instant};

const PAGE_SHIFT: u32 = 6;
/// Code memory reserved (only written pages use memory); below the +-128 MiB reach of an
/// AArch64 `b`, so every block reaches the routines at the start.
const CODE_CAPACITY: usize = 120 << 20;
/// Flush everything once this many block records (valid or dead) exist.
const MAX_BLOCKS: usize = 1 << 20;

#[derive(Clone, Debug)]
pub struct ExitRec {
    pub target: u32,
    /// Offsets in code memory of the patchable jump and of its stub (`None` without
    /// chaining: such an exit is never linked).
    pub jump_at: usize,
    pub stub_at: Option<usize>,
    pub linked: Option<u32>,
}

#[derive(Clone, Debug)]
pub struct Block {
    pub start: u32,
    /// One past the last pc.
    pub end: u32,
    pub code_off: usize,
    pub code_len: usize,
    pub exits: Vec<ExitRec>,
    /// (source block, exit index) of every jump chained to this block.
    pub incoming: Vec<(u32, u32)>,
    pub valid: bool,
}

/// Counters for `--stats`.
#[derive(Clone, Debug, Default)]
pub struct CacheStats {
    pub blocks_translated: u64,
    pub ops_translated: u64,
    pub code_bytes: u64,
    pub links_made: u64,
    pub links_broken: u64,
    /// Stores into array 0 that hit translated code.
    pub smc_stores: u64,
    /// Blocks invalidated by those stores.
    pub blocks_invalidated: u64,
    /// Flushes of every translation (load program from a non-zero array, full code memory).
    pub flushes: u64,
    pub translate_time: Duration,
}

pub struct Cache {
    mem: CodeMemory,
    routines: Routines,
    routines_len: usize,
    blocks: Vec<Block>,
    by_pc: HashMap<u32, u32>,
    dtable: Vec<u32>,
    codemap: Vec<u8>,
    pages: HashMap<u32, Vec<u32>>,
    /// Word of array 0 -> blocks that store there unchecked (see the module notes).
    watches: HashMap<u32, Vec<u32>>,
    pub opts: Options,
    pub max_block: u32,
    /// Generated code must compare identifiers with the heap's table length.
    check_ids: bool,
    pub stats: CacheStats,
}

impl Cache {
    /// An empty cache for an array 0 of `program_len` words; `check_ids` when the heap's
    /// table does not cover every identifier.
    pub fn new(
        program_len: u32,
        opts: Options,
        max_block: u32,
        check_ids: bool,
    ) -> std::io::Result<Cache> {
        let mut mem = CodeMemory::new(CODE_CAPACITY)?;
        let (code, routines) = host::routines(mem.next_address());
        let at = mem.append(&code).expect("routines fit");
        debug_assert_eq!(at, 0, "the miss routine sits at offset 0");
        Ok(Cache {
            routines_len: mem.used(),
            mem,
            routines,
            blocks: Vec::new(),
            by_pc: HashMap::new(),
            dtable: vec![0; program_len as usize],
            codemap: vec![0; program_len as usize],
            pages: HashMap::new(),
            watches: HashMap::new(),
            opts,
            max_block,
            check_ids,
            stats: CacheStats::default(),
        })
    }

    pub fn routines(&self) -> Routines {
        self.routines
    }

    pub fn code_base(&self) -> usize {
        self.mem.base()
    }

    pub fn dtable(&self) -> (*const u32, u32) {
        (self.dtable.as_ptr(), self.dtable.len() as u32)
    }

    pub fn codemap(&self) -> *const u8 {
        self.codemap.as_ptr()
    }

    /// Forget every translation; array 0 now has `program_len` words.
    pub fn flush(&mut self, program_len: u32) {
        self.blocks.clear();
        self.by_pc.clear();
        self.pages.clear();
        self.watches.clear();
        self.dtable = vec![0; program_len as usize];
        self.codemap = vec![0; program_len as usize];
        self.mem.truncate(self.routines_len);
        self.stats.flushes += 1;
        log::debug!("flushed all translations");
    }

    pub fn block(&self, id: u32) -> &Block {
        &self.blocks[id as usize]
    }

    /// Number of block records (valid or not) since the last flush.
    pub fn block_count(&self) -> usize {
        self.blocks.len()
    }

    /// Address of block `id`'s code.
    pub fn code_address(&self, id: u32) -> usize {
        self.mem.base() + self.blocks[id as usize].code_off
    }

    /// The valid block that starts at `pc`.
    pub fn lookup(&self, pc: u32) -> Option<u32> {
        self.by_pc.get(&pc).copied()
    }

    /// Translate the block at `pc` (inside `program`, which is array 0). May flush the cache
    /// first when code memory or the block table is full: callers must not keep block ids
    /// across this call.
    pub fn translate(&mut self, program: &[u32], pc: u32) -> u32 {
        let t0 = Instant::now();
        let run = discover(program, pc, self.max_block);
        if self.blocks.len() >= MAX_BLOCKS {
            self.flush(program.len() as u32);
        }
        // Blocks that store unchecked into the words this one covers must go first.
        let watchers: Vec<u32> = (run.start..run.next_pc())
            .filter_map(|w| self.watches.remove(&w))
            .flatten()
            .collect();
        if !watchers.is_empty() {
            log::debug!("pc {}..{} is watched", run.start, run.next_pc());
            self.invalidate_blocks(&watchers);
        }
        let (id, off, code_len, exits, watches) = loop {
            let id = self.blocks.len() as u32;
            let base = self.mem.next_address();
            let mut e = host::BlockEmitter::new(base, self.routines, self.check_ids);
            let codemap = &self.codemap;
            let is_code = |w: u32| codemap.get(w as usize).is_some_and(|&c| c != 0);
            let t = translator::translate(&mut e, &run, id, self.opts, &is_code);
            let code = e.finish();
            match self.mem.append(&code) {
                Some(off) => break (id, off, code.len(), t.exits, t.watches),
                None if self.blocks.is_empty() => panic!("a single block exceeds code memory"),
                None => self.flush(program.len() as u32),
            }
        };
        let (start, end) = (run.start, run.next_pc());
        self.blocks.push(Block {
            start,
            end,
            code_off: off,
            code_len,
            exits: exits
                .iter()
                .map(|x| ExitRec {
                    target: x.target,
                    jump_at: off + x.jump_at,
                    stub_at: x.stub_at.map(|s| off + s),
                    linked: None,
                })
                .collect(),
            incoming: Vec::new(),
            valid: true,
        });
        self.by_pc.insert(start, id);
        self.dtable[start as usize] = off as u32;
        self.codemap[start as usize..end as usize].fill(1);
        for page in (start >> PAGE_SHIFT)..=((end - 1) >> PAGE_SHIFT) {
            self.pages.entry(page).or_default().push(id);
        }
        for w in watches {
            self.watches.entry(w).or_default().push(id);
        }
        self.stats.blocks_translated += 1;
        self.stats.ops_translated += run.ops.len() as u64;
        self.stats.code_bytes += code_len as u64;
        log::debug!(
            "block {id}: pc {start}..{end} ({} UM ops) -> {code_len} bytes at +{off:#x}",
            run.ops.len()
        );
        // Chain exits whose targets are already translated.
        if self.opts.chain {
            for idx in 0..self.blocks[id as usize].exits.len() {
                let target = self.blocks[id as usize].exits[idx].target;
                if let Some(dst) = self.lookup(target) {
                    self.link(id, idx as u32, dst);
                }
            }
        }
        self.stats.translate_time += t0.elapsed();
        id
    }

    /// Point exit `idx` of block `src` straight at block `dst`.
    pub fn link(&mut self, src: u32, idx: u32, dst: u32) {
        let (s, d) = (src as usize, dst as usize);
        if !self.blocks[s].valid || !self.blocks[d].valid {
            return;
        }
        let exit = &self.blocks[s].exits[idx as usize];
        if exit.linked.is_some() || exit.stub_at.is_none() || exit.target != self.blocks[d].start {
            return;
        }
        let at = exit.jump_at;
        let target = self.blocks[d].code_off;
        let bytes = host::patch_jump(self.mem.base() + at, self.mem.base() + target);
        self.mem.patch(at, &bytes);
        self.blocks[s].exits[idx as usize].linked = Some(dst);
        self.blocks[d].incoming.push((src, idx));
        self.stats.links_made += 1;
    }

    fn invalidate(&mut self, id: u32) {
        let b = &mut self.blocks[id as usize];
        if !b.valid {
            return;
        }
        b.valid = false;
        let (start, code_off) = (b.start, b.code_off);
        let incoming = std::mem::take(&mut b.incoming);
        let outgoing: Vec<(u32, Option<u32>)> = b
            .exits
            .iter()
            .enumerate()
            .map(|(i, x)| (i as u32, x.linked))
            .collect();
        if self.by_pc.get(&start) == Some(&id) {
            self.by_pc.remove(&start);
        }
        if self.dtable[start as usize] == code_off as u32 {
            self.dtable[start as usize] = 0;
        }
        for (src, idx) in incoming {
            let sb = &mut self.blocks[src as usize];
            let exit = &mut sb.exits[idx as usize];
            if sb.valid
                && exit.linked == Some(id)
                && let Some(stub) = exit.stub_at
            {
                exit.linked = None;
                let at = exit.jump_at;
                let bytes = host::patch_jump(self.mem.base() + at, self.mem.base() + stub);
                self.mem.patch(at, &bytes);
                self.stats.links_broken += 1;
            }
        }
        for (idx, linked) in outgoing {
            if let Some(t) = linked {
                self.blocks[t as usize]
                    .incoming
                    .retain(|&(s, i)| (s, i) != (id, idx));
            }
        }
        self.stats.blocks_invalidated += 1;
    }

    /// A store into array 0 at `word` hit translated code: invalidate every block covering
    /// it. Returns how many blocks were invalidated.
    pub fn invalidate_word(&mut self, word: u32) -> usize {
        self.stats.smc_stores += 1;
        let page = word >> PAGE_SHIFT;
        let hit: Vec<u32> = self
            .pages
            .get(&page)
            .map(|ids| {
                ids.iter()
                    .copied()
                    .filter(|&id| {
                        let b = &self.blocks[id as usize];
                        b.valid && b.start <= word && word < b.end
                    })
                    .collect()
            })
            .unwrap_or_default();
        self.invalidate_blocks(&hit);
        log::debug!("store at {word} invalidated {} block(s)", hit.len());
        hit.len()
    }

    /// Invalidate blocks (valid or not) and unmark the words only they covered.
    fn invalidate_blocks(&mut self, ids: &[u32]) {
        let mut pages_touched = Vec::new();
        for &id in ids {
            if !self.blocks[id as usize].valid {
                continue;
            }
            self.invalidate(id);
            let b = &self.blocks[id as usize];
            self.codemap[b.start as usize..b.end as usize].fill(0);
            pages_touched.extend((b.start >> PAGE_SHIFT)..=((b.end - 1) >> PAGE_SHIFT));
        }
        pages_touched.sort_unstable();
        pages_touched.dedup();
        // Words still covered by other valid blocks stay marked.
        for p in pages_touched {
            if let Some(ids) = self.pages.get_mut(&p) {
                ids.retain(|&id| self.blocks[id as usize].valid);
                for &id in ids.iter() {
                    let b = &self.blocks[id as usize];
                    self.codemap[b.start as usize..b.end as usize].fill(1);
                }
            }
        }
    }

    /// Everything written to code memory so far.
    pub fn code_bytes(&self) -> &[u8] {
        self.mem.bytes(0, self.mem.used())
    }

    /// Code memory in use.
    pub fn code_used(&self) -> usize {
        self.mem.used()
    }
}

//! The block cache: translated blocks keyed by UM pc, the dispatch table generated code
//! jumps through, the map of array-0 words covered by translations, chaining and precise
//! invalidation. The cache installs blocks the compiler made (`src/compiler.rs`), looks
//! them up, links them and invalidates them; it never translates.
//!
//! - `by_pc` (hash map) finds the block record for a pc; `dtable` (one [`CodeOffset`] per
//!   word of array 0, 0 for none) lets generated code jump to any pc in O(1) without
//!   calling Rust. Offset 0 of code memory is the miss routine, so an empty entry lands
//!   there.
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
//! - Block identifiers carry the flush epoch they were made in: an identifier from before a
//!   flush is stale, and every operation rejects it.
//! - Regions (the optimizing tier, `src/region/`) are blocks too, covering several ranges of
//!   array 0. A region is entered at its seed pc in place of the baseline block there (the
//!   dispatch table and the links into that block go to it); the baseline block stays, for
//!   the region's side exits, which are chained to baseline blocks only.
//! - Hotness: baseline code counts down, per pc, the jumps back to it and the computed jumps
//!   to it (`counters`); at zero it asks Rust for a region there. The targets each baseline
//!   block's computed jump took last (`profile`, four per block, most recent first) predict
//!   a region's computed jumps.

use crate::backend::{Backend, Routines};
use crate::code_memory::{self, CodeMemory};
use crate::runtime::Profile;
use crate::stats::{Counter, Stats};
use foldhash::{HashMap, HashMapExt};
use std::marker::PhantomData;

const PAGE_SHIFT: u32 = 6;
/// Flush everything once this many block records (valid or dead) exist.
const MAX_BLOCKS: usize = 1 << 20;

/// A pc of array 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pc(pub u32);

/// An offset in code memory (of a block, a jump, a stub). Offset 0 is the miss routine.
/// The dispatch table holds the `u32` inside, which generated code reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CodeOffset(pub u32);

/// A block of the cache: its index among the blocks installed since the last flush, and
/// that flush's epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BlockId {
    index: u32,
    epoch: u32,
}

impl BlockId {
    /// The index generated code reports in a chain request (`ExitKind::Link`).
    pub fn index(self) -> u32 {
        self.index
    }
}

/// A constant-target exit of a compiled block, offsets relative to the block's start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExitSite {
    /// Target pc.
    pub target: u32,
    /// Offset of the patchable jump in the block.
    pub jump_at: usize,
    /// Offset of its stub (where the jump goes while unchained); `None` without chaining.
    pub stub_at: Option<usize>,
}

/// A compiled block, ready to be installed.
pub struct Compiled {
    /// The first pc and one past the last.
    pub start: Pc,
    pub end: Pc,
    /// Its machine code, assembled for [`Cache::next_address`].
    pub code: Vec<u8>,
    pub exits: Vec<ExitSite>,
    /// Words of array 0 it stores into without checking for translated code there (see
    /// the module notes).
    pub watches: Vec<u32>,
}

/// A compiled region (the optimizing tier's output, `src/region/`), ready to be installed.
pub struct CompiledRegion {
    /// The pc it is entered at.
    pub seed: u32,
    /// The UM code it covers: (start, end) pc ranges, one per block.
    pub ranges: Vec<(u32, u32)>,
    pub code: Vec<u8>,
    /// Patchable exits, each with whether it is a side exit.
    pub exits: Vec<(ExitSite, bool)>,
    /// Words it stores into unchecked (see the cache's watches).
    pub watches: Vec<u32>,
    /// UM operations and blocks in it.
    pub ops: u32,
    pub blocks: usize,
    /// The optimized IR, printed (only when asked for).
    pub ir: Option<String>,
}

#[derive(Clone, Debug)]
struct ExitRec {
    target: Pc,
    jump_at: CodeOffset,
    /// Where the jump goes while unchained (`None` without chaining: never linked).
    stub_at: Option<CodeOffset>,
    linked: Option<u32>,
    /// A region's side exit: chained to baseline code only.
    side: bool,
}

#[derive(Clone, Debug)]
struct Block {
    /// The pc it is entered at.
    entry: Pc,
    /// The UM code it covers: (start, one past the end) ranges (one for a baseline block).
    ranges: Vec<(Pc, Pc)>,
    code_off: CodeOffset,
    exits: Vec<ExitRec>,
    /// (source block index, exit index) of every jump chained to this block.
    incoming: Vec<(u32, u32)>,
    valid: bool,
    region: bool,
}

impl Block {
    fn covers(&self, word: u32) -> bool {
        self.ranges.iter().any(|&(s, e)| s.0 <= word && word < e.0)
    }

    fn pages(&self) -> Vec<u32> {
        let mut p: Vec<u32> = self
            .ranges
            .iter()
            .flat_map(|&(s, e)| (s.0 >> PAGE_SHIFT)..=((e.0 - 1) >> PAGE_SHIFT))
            .collect();
        p.sort_unstable();
        p.dedup();
        p
    }
}

/// Code memory has no room for a block: flush and compile it again.
#[derive(Debug)]
pub struct Full;

pub struct Cache<B: Backend> {
    mem: CodeMemory,
    routines: Routines,
    routines_len: usize,
    blocks: Vec<Block>,
    epoch: u32,
    /// The code entered at a pc: a region if there is one, else the baseline block.
    by_pc: HashMap<Pc, u32>,
    /// The baseline block at a pc.
    base_by_pc: HashMap<Pc, u32>,
    /// Per pc of array 0: the [`CodeOffset`] of the code entered there, 0 (the dispatch
    /// miss) for none. Plain words, so that the table is allocated zeroed: the system
    /// backs only the pages that blocks are entered through (a 16 MB image's table is
    /// 16 MB).
    dtable: Vec<u32>,
    /// Per pc of array 0: jumps to it left before it is hot (see the module notes).
    counters: Vec<u16>,
    /// Per block: the targets its computed jump took (allocated once: generated code keeps
    /// its address).
    profile: Vec<Profile>,
    /// Last word of a baseline block (its computed jump, if it ends with one) -> the blocks
    /// ending there, whose profiles predict that jump.
    jump_sites: HashMap<Pc, Vec<u32>>,
    /// Where counters start.
    threshold: u16,
    codemap: Vec<u8>,
    /// Per pc of array 0: how often code there was interpreted, not yet translated (code
    /// that runs once is cheaper to interpret than to translate).
    visits: Vec<u8>,
    pages: HashMap<u32, Vec<u32>>,
    /// Word of array 0 -> blocks that store there unchecked (see the module notes).
    watches: HashMap<u32, Vec<u32>>,
    /// Counters of what the cache did (blocks, links, invalidations, flushes).
    pub stats: Stats,
    backend: PhantomData<B>,
}

impl<B: Backend> Cache<B> {
    /// An empty cache for an array 0 of `program_len` words, with the backend's routines at
    /// the start of code memory of `kind`.
    pub fn new(program_len: u32, kind: code_memory::Kind) -> std::io::Result<Cache<B>> {
        Cache::with_options(program_len, kind, u16::MAX, true)
    }

    /// As [`Cache::new`], with hotness counters starting at `threshold`, and generated code
    /// that keeps the heap's counts of arrays only if `counts_arrays` (see
    /// [`Routines::counts_arrays`]).
    pub fn with_options(
        program_len: u32,
        kind: code_memory::Kind,
        threshold: u16,
        counts_arrays: bool,
    ) -> std::io::Result<Cache<B>> {
        let mut mem = CodeMemory::new(B::CODE_CAPACITY, kind)?;
        let (code, routines) = B::routines(mem.next_address(), counts_arrays);
        let at = mem.append(&code).expect("routines fit");
        assert_eq!(at, 0, "the miss routine sits at offset 0");
        Ok(Cache {
            routines_len: mem.used(),
            mem,
            routines,
            blocks: Vec::new(),
            epoch: 0,
            by_pc: HashMap::new(),
            base_by_pc: HashMap::new(),
            dtable: vec![0; program_len as usize],
            counters: vec![threshold; program_len as usize],
            profile: Vec::with_capacity(MAX_BLOCKS),
            jump_sites: HashMap::new(),
            threshold,
            codemap: vec![0; program_len as usize],
            visits: vec![0; program_len as usize],
            pages: HashMap::new(),
            watches: HashMap::new(),
            stats: Stats::default(),
            backend: PhantomData,
        })
    }

    pub fn routines(&self) -> &Routines {
        &self.routines
    }

    /// Address of code memory as generated code runs it.
    pub fn code_base(&self) -> usize {
        self.mem.base()
    }

    /// The dispatch table (the `u32` of each pc's [`CodeOffset`]) and its length.
    pub fn dtable(&self) -> (*const u32, u32) {
        (self.dtable.as_ptr(), self.dtable.len() as u32)
    }

    pub fn codemap(&self) -> *const u8 {
        self.codemap.as_ptr()
    }

    /// The hotness counters (one per pc of array 0).
    pub fn counters(&mut self) -> *mut u16 {
        self.counters.as_mut_ptr()
    }

    /// The computed-jump profiles (one per block; the allocation never moves).
    pub fn profiles(&mut self) -> *mut Profile {
        self.profile.as_mut_ptr()
    }

    /// Set the hotness counter of `pc` (to count again, or not to ask again soon).
    pub fn reset_counter(&mut self, pc: u32, to: u16) {
        if let Some(c) = self.counters.get_mut(pc as usize) {
            *c = to;
        }
    }

    /// How many jumps baseline code has counted into `pc` (see `reset_counter`): any
    /// number at or above the threshold once the counter ran out.
    pub fn jumps_counted(&self, pc: u32) -> u32 {
        match self.counters.get(pc as usize) {
            Some(&c) if c <= self.threshold => u32::from(self.threshold - c),
            _ => u32::MAX,
        }
    }

    /// Where counters start.
    pub fn threshold(&self) -> u16 {
        self.threshold
    }

    /// Whether baseline code has been entered at `pc` (a block was translated there and is
    /// still valid).
    pub fn entered(&self, pc: u32) -> bool {
        self.base_by_pc.contains_key(&Pc(pc))
    }

    /// The targets the computed jump at word `pc` took in baseline code, most recent first.
    pub fn predicted(&self, pc: u32) -> Vec<u32> {
        let mut seen: Vec<u32> = Vec::new();
        // Every baseline block ending with this jump (blocks entered at different pcs may
        // end at the same word), most recently installed first.
        for &i in self.jump_sites.get(&Pc(pc)).into_iter().flatten().rev() {
            let p = self.profile.get(i as usize).copied().unwrap_or_default();
            // 0 is an empty slot (a jump to pc 0 is not predicted).
            for t in p.into_iter().filter(|&t| t != 0) {
                if !seen.contains(&t) {
                    seen.push(t);
                }
            }
        }
        seen
    }

    /// Whether code at `pc` is still to be interpreted rather than translated: it has no
    /// translation and has been reached fewer than `runs` times (`--translate-after`; never
    /// with 0). [`Cache::still_cold`] also counts the visit.
    pub fn is_cold(&self, pc: u32, runs: u8) -> bool {
        self.visits.get(pc as usize).is_some_and(|&v| v < runs) && self.lookup(Pc(pc)).is_none()
    }

    /// Whether code entered at `pc` is still to be interpreted (see [`Cache::is_cold`]),
    /// counting this visit when it is: true the first `runs` times it is asked.
    pub fn still_cold(&mut self, pc: u32, runs: u8) -> bool {
        let cold = self.is_cold(pc, runs);
        if cold {
            self.visits[pc as usize] += 1;
        }
        cold
    }

    /// Whether some valid block covers word `w` of array 0.
    pub fn covers(&self, w: u32) -> bool {
        self.codemap.get(w as usize).is_some_and(|&c| c != 0)
    }

    /// Address at which the next installed block will be placed.
    pub fn next_address(&self) -> usize {
        self.mem.next_address()
    }

    /// The identifier the next installed block will have (its index is what its chain
    /// requests report).
    pub fn next_id(&self) -> BlockId {
        BlockId {
            index: self.blocks.len() as u32,
            epoch: self.epoch,
        }
    }

    /// Forget every translation; array 0 now has `program_len` words.
    pub fn flush(&mut self, program_len: u32) {
        self.blocks.clear();
        self.profile.clear();
        self.jump_sites.clear();
        self.epoch += 1;
        self.by_pc.clear();
        self.base_by_pc.clear();
        self.counters = vec![self.threshold; program_len as usize];
        self.pages.clear();
        self.watches.clear();
        self.dtable = vec![0; program_len as usize];
        self.codemap = vec![0; program_len as usize];
        self.visits = vec![0; program_len as usize];
        self.mem.truncate(self.routines_len);
        self.stats[Counter::Flushes] += 1;
        log::debug!("flushed all translations");
    }

    /// Make room for a block (flushing when too many records exist), and invalidate the
    /// blocks that watch words in `start..end`, which a block about to be compiled covers.
    pub fn prepare(&mut self, start: Pc, end: Pc, program_len: u32) {
        self.prepare_ranges(&[(start.0, end.0)], program_len);
    }

    /// As [`Cache::prepare`], for code covering several ranges (a region).
    pub fn prepare_ranges(&mut self, ranges: &[(u32, u32)], program_len: u32) {
        if self.blocks.len() >= MAX_BLOCKS {
            self.flush(program_len);
        }
        let watchers: Vec<u32> = ranges
            .iter()
            .flat_map(|&(s, e)| s..e)
            .filter_map(|w| self.watches.remove(&w))
            .flatten()
            .collect();
        if !watchers.is_empty() {
            log::debug!("{ranges:?} is watched");
            self.invalidate_blocks(&watchers);
        }
    }

    /// The block's current index if `id` is not stale.
    fn live(&self, id: BlockId) -> Option<usize> {
        (id.epoch == self.epoch && (id.index as usize) < self.blocks.len())
            .then_some(id.index as usize)
    }

    /// The identifier of block number `index` of the current epoch (as reported by a
    /// chain request from generated code).
    pub fn block_id(&self, index: u32) -> BlockId {
        BlockId {
            index,
            epoch: self.epoch,
        }
    }

    /// Address of a block's code.
    pub fn code_address(&self, id: BlockId) -> usize {
        let i = self.live(id).expect("a block identifier of this epoch");
        self.mem.base() + self.blocks[i].code_off.0 as usize
    }

    /// The code entered at `pc`: a region if there is one, else the baseline block.
    pub fn lookup(&self, pc: Pc) -> Option<BlockId> {
        self.by_pc.get(&pc).map(|&index| self.block_id(index))
    }

    /// The baseline block at `pc`.
    pub fn lookup_base(&self, pc: Pc) -> Option<BlockId> {
        self.base_by_pc.get(&pc).map(|&index| self.block_id(index))
    }

    /// Whether a region is entered at `pc`.
    pub fn has_region(&self, pc: Pc) -> bool {
        self.by_pc
            .get(&pc)
            .is_some_and(|&i| self.blocks[i as usize].region)
    }

    /// Whether exit `idx` of block `src` is a region's side exit (chained to baseline code
    /// only).
    pub fn is_side_exit(&self, src: BlockId, idx: u32) -> bool {
        self.live(src)
            .and_then(|i| self.blocks[i].exits.get(idx as usize))
            .is_some_and(|x| x.side)
    }

    /// Put a compiled block into code memory and the tables, and chain its exits whose
    /// targets are translated. `Err(Full)` when code memory has no room (nothing changed).
    pub fn install(&mut self, c: &Compiled, chain: bool) -> Result<BlockId, Full> {
        let exits: Vec<(ExitSite, bool)> = c.exits.iter().map(|&x| (x, false)).collect();
        let id = self.place(c.start, vec![(c.start, c.end)], &c.code, &exits, false)?;
        for &w in &c.watches {
            self.watches.entry(w).or_default().push(id.index);
        }
        self.stats[Counter::BlocksTranslated] += 1;
        self.stats[Counter::OpsTranslated] += (c.end.0 - c.start.0) as u64;
        self.stats[Counter::CodeBytes] += c.code.len() as u64;
        if chain {
            self.chain_exits(id);
        }
        Ok(id)
    }

    /// Put a compiled region into code memory and the tables: entered at its seed from now
    /// on, in place of the baseline block there (whose incoming links it takes over).
    pub fn install_region(&mut self, r: &CompiledRegion, chain: bool) -> Result<BlockId, Full> {
        let ranges = r.ranges.iter().map(|&(s, e)| (Pc(s), Pc(e))).collect();
        let seed = Pc(r.seed);
        let old = self.lookup(seed);
        let id = self.place(seed, ranges, &r.code, &r.exits, true)?;
        for &w in &r.watches {
            self.watches.entry(w).or_default().push(id.index);
        }
        // Links into the baseline block at the seed now go to the region.
        if let Some(old) = old
            && let Some(o) = self.live(old)
            && o != id.index as usize
        {
            let incoming = std::mem::take(&mut self.blocks[o].incoming);
            let target = self.blocks[id.index as usize].code_off;
            for (src, idx) in incoming {
                let exit = &self.blocks[src as usize].exits[idx as usize];
                if exit.side {
                    // A side exit stays with the baseline block.
                    self.blocks[o].incoming.push((src, idx));
                    continue;
                }
                let at = exit.jump_at;
                self.patch_jump(at, target);
                self.blocks[src as usize].exits[idx as usize].linked = Some(id.index);
                self.blocks[id.index as usize].incoming.push((src, idx));
            }
        }
        self.stats[Counter::RegionsCompiled] += 1;
        self.stats[Counter::RegionOps] += r.ops as u64;
        self.stats[Counter::CodeBytes] += r.code.len() as u64;
        if chain {
            self.chain_exits(id);
        }
        Ok(id)
    }

    /// Append code and record it: a block entered at `entry` covering `ranges`.
    fn place(
        &mut self,
        entry: Pc,
        ranges: Vec<(Pc, Pc)>,
        code: &[u8],
        exits: &[(ExitSite, bool)],
        region: bool,
    ) -> Result<BlockId, Full> {
        let id = self.next_id();
        let off = self.mem.append(code).ok_or(Full)?;
        let at = |x: usize| CodeOffset((off + x) as u32);
        self.blocks.push(Block {
            entry,
            ranges,
            code_off: at(0),
            exits: exits
                .iter()
                .map(|&(x, side)| ExitRec {
                    target: Pc(x.target),
                    jump_at: at(x.jump_at),
                    stub_at: x.stub_at.map(at),
                    linked: None,
                    side,
                })
                .collect(),
            incoming: Vec::new(),
            valid: true,
            region,
        });
        self.profile.push([0; 4]);
        let index = id.index;
        let code_off = self.blocks[index as usize].code_off;
        // A baseline block does not replace a region entered at the same pc.
        if region || !self.has_region(entry) {
            self.by_pc.insert(entry, index);
            self.dtable[entry.0 as usize] = code_off.0;
        }
        if !region {
            self.base_by_pc.insert(entry, index);
            if let Some(&(_, end)) = self.blocks[index as usize].ranges.last() {
                self.jump_sites
                    .entry(Pc(end.0 - 1))
                    .or_default()
                    .push(index);
            }
        }
        let ranges = self.blocks[index as usize].ranges.clone();
        for &(s, e) in &ranges {
            self.codemap[s.0 as usize..e.0 as usize].fill(1);
        }
        for page in self.blocks[index as usize].pages() {
            self.pages.entry(page).or_default().push(index);
        }
        log::debug!(
            "{} {index}: pc {:?} -> {} bytes at +{off:#x}",
            if region { "region" } else { "block" },
            ranges.iter().map(|r| (r.0.0, r.1.0)).collect::<Vec<_>>(),
            code.len()
        );
        Ok(id)
    }

    /// Chain the exits of a new block whose targets are translated.
    fn chain_exits(&mut self, id: BlockId) {
        for idx in 0..self.blocks[id.index as usize].exits.len() {
            let x = &self.blocks[id.index as usize].exits[idx];
            let (target, side) = (x.target, x.side);
            let dst = if side {
                self.lookup_base(target)
            } else {
                self.lookup(target)
            };
            if let Some(dst) = dst {
                self.link(id, idx as u32, dst);
            }
        }
    }

    /// Point exit `idx` of block `src` straight at block `dst`. Nothing happens when either
    /// is stale or invalid, or the exit is linked already or does not go to `dst`.
    pub fn link(&mut self, src: BlockId, idx: u32, dst: BlockId) {
        let (Some(s), Some(d)) = (self.live(src), self.live(dst)) else {
            return;
        };
        if !self.blocks[s].valid || !self.blocks[d].valid {
            return;
        }
        let exit = &self.blocks[s].exits[idx as usize];
        if exit.linked.is_some()
            || exit.stub_at.is_none()
            || exit.target != self.blocks[d].entry
            || (exit.side && self.blocks[d].region)
        {
            return;
        }
        let (at, target) = (exit.jump_at, self.blocks[d].code_off);
        self.patch_jump(at, target);
        self.blocks[s].exits[idx as usize].linked = Some(d as u32);
        self.blocks[d].incoming.push((s as u32, idx));
        self.stats[Counter::LinksMade] += 1;
    }

    /// Make the patchable jump at `at` go to `target`: one aligned 8-byte store.
    fn patch_jump(&mut self, at: CodeOffset, target: CodeOffset) {
        let at = at.0 as usize;
        let word = at & !7;
        let base = self.mem.base();
        self.mem.patch_word(word, |old| {
            B::patch_jump(base + word, old, base + at, base + target.0 as usize)
        });
    }

    fn invalidate(&mut self, index: u32) {
        let b = &mut self.blocks[index as usize];
        if !b.valid {
            return;
        }
        b.valid = false;
        let (start, region) = (b.entry, b.region);
        let incoming = std::mem::take(&mut b.incoming);
        let outgoing: Vec<(u32, Option<u32>)> = b
            .exits
            .iter()
            .enumerate()
            .map(|(i, x)| (i as u32, x.linked))
            .collect();
        if self.base_by_pc.get(&start) == Some(&index) {
            self.base_by_pc.remove(&start);
        }
        if self.by_pc.get(&start) == Some(&index) {
            self.by_pc.remove(&start);
            self.dtable[start.0 as usize] = 0;
            // A region gone: the baseline block there is entered again.
            if region && let Some(&base) = self.base_by_pc.get(&start) {
                self.by_pc.insert(start, base);
                self.dtable[start.0 as usize] = self.blocks[base as usize].code_off.0;
            }
        }
        for (src, idx) in incoming {
            let sb = &mut self.blocks[src as usize];
            let exit = &mut sb.exits[idx as usize];
            if sb.valid
                && exit.linked == Some(index)
                && let Some(stub) = exit.stub_at
            {
                exit.linked = None;
                let at = exit.jump_at;
                self.patch_jump(at, stub);
                self.stats[Counter::LinksBroken] += 1;
            }
        }
        for (idx, linked) in outgoing {
            if let Some(t) = linked {
                self.blocks[t as usize]
                    .incoming
                    .retain(|&(s, i)| (s, i) != (index, idx));
            }
        }
        self.stats[Counter::BlocksInvalidated] += 1;
    }

    /// A store into array 0 at `word` hit translated code: invalidate every block covering
    /// it. Returns how many blocks were invalidated.
    pub fn invalidate_word(&mut self, word: u32) -> usize {
        self.stats[Counter::SmcStores] += 1;
        let page = word >> PAGE_SHIFT;
        let hit: Vec<u32> = self
            .pages
            .get(&page)
            .map(|ids| {
                ids.iter()
                    .copied()
                    .filter(|&i| {
                        let b = &self.blocks[i as usize];
                        b.valid && b.covers(word)
                    })
                    .collect()
            })
            .unwrap_or_default();
        self.invalidate_blocks(&hit);
        log::debug!("store at {word} invalidated {} block(s)", hit.len());
        hit.len()
    }

    /// Invalidate blocks (valid or not) and unmark the words only they covered.
    fn invalidate_blocks(&mut self, indices: &[u32]) {
        let mut pages_touched = Vec::new();
        for &i in indices {
            if !self.blocks[i as usize].valid {
                continue;
            }
            self.invalidate(i);
            let b = &self.blocks[i as usize];
            for &(s, e) in &b.ranges {
                self.codemap[s.0 as usize..e.0 as usize].fill(0);
            }
            pages_touched.extend(b.pages());
        }
        pages_touched.sort_unstable();
        pages_touched.dedup();
        // Words still covered by other valid blocks stay marked.
        for p in pages_touched {
            if let Some(ids) = self.pages.get_mut(&p) {
                ids.retain(|&i| self.blocks[i as usize].valid);
                for &i in ids.iter() {
                    for &(s, e) in &self.blocks[i as usize].ranges {
                        self.codemap[s.0 as usize..e.0 as usize].fill(1);
                    }
                }
            }
        }
    }

    /// Make code memory executable before generated code runs (only the fallback without a
    /// second mapping switches protections).
    pub fn ready_to_run(&mut self) {
        self.mem.make_executable();
    }

    /// The routines' machine code (at the start of code memory).
    pub fn routines_code(&self) -> &[u8] {
        self.mem.bytes(0, self.routines_len)
    }

    /// Everything written to code memory so far.
    pub fn code_bytes(&self) -> &[u8] {
        self.mem.bytes(0, self.mem.used())
    }
}

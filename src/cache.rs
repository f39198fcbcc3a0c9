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

use crate::backend::{Backend, Routines};
use crate::code_memory::{self, CodeMemory};
use crate::stats::{Counter, Stats};
use std::collections::HashMap;
use std::marker::PhantomData;

const PAGE_SHIFT: u32 = 6;
/// Flush everything once this many block records (valid or dead) exist.
const MAX_BLOCKS: usize = 1 << 20;

/// A pc of array 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pc(pub u32);

/// An offset in code memory (of a block, a jump, a stub). Offset 0 is the miss routine.
/// Transparent: the dispatch table is read by generated code as `u32`s.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
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

#[derive(Clone, Debug)]
struct ExitRec {
    target: Pc,
    jump_at: CodeOffset,
    /// Where the jump goes while unchained (`None` without chaining: never linked).
    stub_at: Option<CodeOffset>,
    linked: Option<u32>,
}

#[derive(Clone, Debug)]
struct Block {
    start: Pc,
    /// One past the last pc.
    end: Pc,
    code_off: CodeOffset,
    exits: Vec<ExitRec>,
    /// (source block index, exit index) of every jump chained to this block.
    incoming: Vec<(u32, u32)>,
    valid: bool,
}

impl Block {
    fn covers(&self, word: u32) -> bool {
        self.start.0 <= word && word < self.end.0
    }

    fn pages(&self) -> std::ops::RangeInclusive<u32> {
        (self.start.0 >> PAGE_SHIFT)..=((self.end.0 - 1) >> PAGE_SHIFT)
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
    by_pc: HashMap<Pc, u32>,
    dtable: Vec<CodeOffset>,
    codemap: Vec<u8>,
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
        let mut mem = CodeMemory::new(B::CODE_CAPACITY, kind)?;
        let (code, routines) = B::routines(mem.next_address());
        let at = mem.append(&code).expect("routines fit");
        assert_eq!(at, 0, "the miss routine sits at offset 0");
        Ok(Cache {
            routines_len: mem.used(),
            mem,
            routines,
            blocks: Vec::new(),
            epoch: 0,
            by_pc: HashMap::new(),
            dtable: vec![CodeOffset(0); program_len as usize],
            codemap: vec![0; program_len as usize],
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

    /// The dispatch table (code offsets, `#[repr(transparent)]` `u32`s) and its length.
    pub fn dtable(&self) -> (*const u32, u32) {
        (self.dtable.as_ptr().cast(), self.dtable.len() as u32)
    }

    pub fn codemap(&self) -> *const u8 {
        self.codemap.as_ptr()
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
        self.epoch += 1;
        self.by_pc.clear();
        self.pages.clear();
        self.watches.clear();
        self.dtable = vec![CodeOffset(0); program_len as usize];
        self.codemap = vec![0; program_len as usize];
        self.mem.truncate(self.routines_len);
        self.stats[Counter::Flushes] += 1;
        log::debug!("flushed all translations");
    }

    /// Make room for a block (flushing when too many records exist), and invalidate the
    /// blocks that watch words in `start..end`, which a block about to be compiled covers.
    pub fn prepare(&mut self, start: Pc, end: Pc, program_len: u32) {
        if self.blocks.len() >= MAX_BLOCKS {
            self.flush(program_len);
        }
        let watchers: Vec<u32> = (start.0..end.0)
            .filter_map(|w| self.watches.remove(&w))
            .flatten()
            .collect();
        if !watchers.is_empty() {
            log::debug!("pc {}..{} is watched", start.0, end.0);
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

    /// The valid block that starts at `pc`.
    pub fn lookup(&self, pc: Pc) -> Option<BlockId> {
        self.by_pc.get(&pc).map(|&index| self.block_id(index))
    }

    /// Put a compiled block into code memory and the tables, and chain its exits whose
    /// targets are translated. `Err(Full)` when code memory has no room (nothing changed).
    pub fn install(&mut self, c: &Compiled, chain: bool) -> Result<BlockId, Full> {
        let id = self.next_id();
        let off = self.mem.append(&c.code).ok_or(Full)?;
        let (start, end) = (c.start, c.end);
        let at = |x: usize| CodeOffset((off + x) as u32);
        self.blocks.push(Block {
            start,
            end,
            code_off: at(0),
            exits: c
                .exits
                .iter()
                .map(|x| ExitRec {
                    target: Pc(x.target),
                    jump_at: at(x.jump_at),
                    stub_at: x.stub_at.map(at),
                    linked: None,
                })
                .collect(),
            incoming: Vec::new(),
            valid: true,
        });
        let b = &self.blocks[id.index as usize];
        self.by_pc.insert(start, id.index);
        self.dtable[start.0 as usize] = b.code_off;
        self.codemap[start.0 as usize..end.0 as usize].fill(1);
        for page in b.pages() {
            self.pages.entry(page).or_default().push(id.index);
        }
        for &w in &c.watches {
            self.watches.entry(w).or_default().push(id.index);
        }
        self.stats[Counter::BlocksTranslated] += 1;
        self.stats[Counter::OpsTranslated] += (end.0 - start.0) as u64;
        self.stats[Counter::CodeBytes] += c.code.len() as u64;
        log::debug!(
            "block {}: pc {}..{} ({} UM ops) -> {} bytes at +{off:#x}",
            id.index,
            start.0,
            end.0,
            end.0 - start.0,
            c.code.len()
        );
        if chain {
            for idx in 0..c.exits.len() {
                if let Some(dst) = self.lookup(Pc(c.exits[idx].target)) {
                    self.link(id, idx as u32, dst);
                }
            }
        }
        Ok(id)
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
        if exit.linked.is_some() || exit.stub_at.is_none() || exit.target != self.blocks[d].start {
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
        let (start, code_off) = (b.start, b.code_off);
        let incoming = std::mem::take(&mut b.incoming);
        let outgoing: Vec<(u32, Option<u32>)> = b
            .exits
            .iter()
            .enumerate()
            .map(|(i, x)| (i as u32, x.linked))
            .collect();
        if self.by_pc.get(&start) == Some(&index) {
            self.by_pc.remove(&start);
        }
        if self.dtable[start.0 as usize] == code_off {
            self.dtable[start.0 as usize] = CodeOffset(0);
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
            self.codemap[b.start.0 as usize..b.end.0 as usize].fill(0);
            pages_touched.extend(b.pages());
        }
        pages_touched.sort_unstable();
        pages_touched.dedup();
        // Words still covered by other valid blocks stay marked.
        for p in pages_touched {
            if let Some(ids) = self.pages.get_mut(&p) {
                ids.retain(|&i| self.blocks[i as usize].valid);
                for &i in ids.iter() {
                    let b = &self.blocks[i as usize];
                    self.codemap[b.start.0 as usize..b.end.0 as usize].fill(1);
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

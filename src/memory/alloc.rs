//! Allocator policy: where a new array's words go, how abandoned arrays are recycled, and
//! the memory limit.
//!
//! - Identifiers are recycled through a stack (`free_ids`), so the ones in use stay dense;
//!   when none is free, the next never-used one is taken (a program that keeps millions of
//!   arrays, like UMIX, does this millions of times, so the fast paths do it too).
//! - Arrays of 1 to [`SLOT_CAPACITY`] words (95 % of sandmark's 92 M allocations) live in
//!   their identifier's own slot of a reserved region ([`Slab`]): they need no buffer of
//!   their own, and arrays with neighbouring identifiers (a list allocated in a row) sit
//!   next to each other in memory, which keeps walks over them in cache. A slot's last
//!   word repeats the length of the array living in it (0 when none does, and the slot
//!   then starts with the identifier's entry), so that generated code reaches any array,
//!   and allocates and abandons it, through one cache line (see [`Slab`]).
//! - Other arrays of up to [`SMALL_MAX`] words get buffers cut from one arena per size
//!   ([`Arenas`](super::arena::Arenas)), recycled through one stack of free buffers per
//!   exact size (`small[n]`); larger ones come from the system allocator and go back to it.
//! - Every byte (buffers, cached buffers, slots, and table entries of identifiers handed out
//!   without a slot) is charged against the limit; before an allocation fails, the arena
//!   chunks whose buffers are all cached are given back.
//!
//! # The fast paths
//!
//! [`Heap::alloc_fast`] and [`Heap::abandon_fast`] are the one description of the fast
//! paths: the Rust engines run them as written, and each backend's machine code
//! (`arch/*/heap.rs`: the routines, the inline allocation of a constant size and the
//! inline abandonment of an array in its slot) is a transcription of them, step by step
//! (A1..A6, B1..B5). When a step cannot be taken without growing a stack
//! or asking the system for memory, the fast path gives up before changing anything and
//! the slow path in Rust does the whole operation. `tests/heap_fast_paths.rs` drives the
//! machine code and these functions with the same random sequences and compares the
//! heaps afterwards.

use super::populator::Populator;
use super::reserve::{self, Reservation};
use super::table::Entry;
use super::{Heap, SMALL_MAX};
use crate::fault::Reason;
use std::alloc::{self, Layout};
use std::cell::OnceCell;
use std::ptr::{self, NonNull};

/// Words in a slot: the array's words, then its length (see [`Slab`]).
pub const SLOT_WORDS: u32 = 8;
/// Arrays of 1 to this many words live in their identifier's slot.
pub const SLOT_CAPACITY: u32 = SLOT_WORDS - 1;
/// The word of a slot that holds the length of the array living in it.
pub const SLOT_LEN_WORD: u32 = SLOT_WORDS - 1;
/// Identifiers with a slot when the identifier table covers the whole space (every one
/// but `u32::MAX`, which is never handed out; 128 GiB of address space are reserved, so
/// that a slot exists for every identifier), and with a bounded table (32 MiB).
pub(super) const SLAB_IDS_WHOLE: u32 = u32::MAX;
pub(super) const SLAB_IDS_BOUNDED: u32 = 1 << 20;
/// Table entries and slots are backed with memory this many identifiers at a time, once
/// identifiers reach the second such group (see `Heap::populate`).
pub(super) const POPULATE_IDS: u32 = 1 << 14;
/// Once the arenas have used this many chunks (1 MiB), each new chunk has the next one
/// backed with memory ahead of use by the helper thread (see `Arenas::cut`).
const POPULATE_AFTER_CHUNKS: usize = 16;
/// Bytes charged to the memory limit for an identifier without a slot (its table entry).
const ENTRY_BYTES: u64 = std::mem::size_of::<Entry>() as u64;
/// What a never-used identifier with a slot costs: its slot, which holds its entry too.
pub const FRESH_BYTES: u64 = SLOT_WORDS as u64 * 4;

/// The slots: [`SLOT_WORDS`] words for each identifier below `ids`, at `base + id *
/// SLOT_WORDS`. `base` and `ids` are read by generated code.
///
/// Invariant: word [`SLOT_LEN_WORD`] of a slot is the length of the array living in it,
/// and 0 when none does (the identifier is inactive or its array has a buffer). When it is
/// 0, the slot starts with the identifier's [`Entry`] (its descriptor: base, length,
/// active; all zero, so inactive, in a slot never used), so that an identifier with a slot
/// needs nothing outside its slot's cache line: neither an access, nor an allocation, nor
/// an abandonment touches the table for it. Every path that puts an array in a slot or
/// abandons one keeps this (the fast paths' machine code included). With the whole-space
/// table the reservation covers all 2^32 slots, so that generated code may read any
/// identifier's slot without checking the identifier first: a non-zero length word there
/// is a complete check of the identifier and its length.
#[repr(C)]
pub struct Slab {
    pub(super) base: *mut u32,
    /// Identifiers below this have a slot (0 when the reservation failed).
    pub(super) ids: u32,
    /// The slots below this identifier have been asked to be backed with memory.
    populated: u32,
    reservation: Option<Reservation>,
}

impl Slab {
    /// Slots for the identifiers below `ids` (none if the host refuses the reservation).
    pub(super) fn new(ids: u32) -> Slab {
        // One slot more than `ids`: with `SLAB_IDS_WHOLE`, every identifier has one.
        let bytes = (ids as usize + 1) * SLOT_WORDS as usize * 4;
        match Reservation::new(bytes + reserve::PLACEMENT_SLACK) {
            Ok(mut r) => Slab {
                base: r.as_mut_ptr().cast(),
                ids,
                populated: 0,
                reservation: Some(r),
            },
            Err(e) => {
                log::info!("cannot reserve array slots ({e}); small arrays get their own buffers");
                Slab {
                    base: ptr::null_mut(),
                    ids: 0,
                    populated: 0,
                    reservation: None,
                }
            }
        }
    }

    /// Whether an array of `words` words with identifier `id` lives in its slot.
    /// (Identifier 0, array 0, never does: its words are replaced by load program.)
    #[inline(always)]
    pub fn holds(&self, id: u32, words: u32) -> bool {
        id != 0 && id < self.ids && words.wrapping_sub(1) < SLOT_CAPACITY
    }

    /// Start the slots `offset` bytes into the reservation (see
    /// [`reserve::page_offset_apart`]); only before any slot is used.
    pub(super) fn place(&mut self, offset: usize) {
        if let Some(r) = &mut self.reservation {
            assert!(offset < reserve::PLACEMENT_SLACK && offset.is_multiple_of(64));
            self.base = r.as_mut_ptr().wrapping_add(offset).cast();
        }
    }

    /// Whether every identifier has a slot that generated code may read (see [`Slab`]).
    pub fn covers_whole_space(&self) -> bool {
        self.ids == SLAB_IDS_WHOLE
    }

    /// Word [`SLOT_LEN_WORD`] of the slot of `id` (which must be below `ids`).
    #[inline(always)]
    pub fn len_word(&self, id: u32) -> u32 {
        // SAFETY: the slot of `id` is inside the reservation (see `slot`); the word is
        // plain data.
        unsafe { *self.slot(id).add(SLOT_LEN_WORD as usize) }
    }

    #[inline(always)]
    fn set_len_word(&mut self, id: u32, len: u32) {
        // SAFETY: as in `len_word`; `&mut self` makes this the only access.
        unsafe { *self.slot(id).add(SLOT_LEN_WORD as usize) = len };
    }

    /// The descriptor at the start of the slot of `id` (below `ids`): its entry, when the
    /// length word is 0.
    #[inline(always)]
    pub(super) fn descriptor(&self, id: u32) -> Entry {
        // SAFETY: a slot is 32-byte aligned and starts with an `Entry`'s worth of plain data
        // (see `slot`); any bits are a valid `Entry` (a raw pointer and two integers).
        unsafe { *self.slot(id).cast::<Entry>() }
    }

    /// Write the descriptor of `id` (below `ids`; see [`Slab`]).
    #[inline(always)]
    pub(super) fn set_descriptor(&mut self, id: u32, e: Entry) {
        // SAFETY: as in `descriptor`; `&mut self` makes this the only access.
        unsafe { *self.slot(id).cast::<Entry>() = e };
    }

    /// The program starts on the `n` identifiers from `id`: have their slots and those of
    /// the `n` after them (those that have one) backed with memory, by the `helper` thread
    /// (see [`Populator`]), or now where there is none (see [`reserve::populate`]).
    fn populate(&mut self, id: u32, n: u32, helper: Option<&Populator>) {
        let from = id.max(self.populated).min(self.ids);
        let end = id.saturating_add(n).saturating_add(n).min(self.ids);
        if from >= end {
            return;
        }
        self.populated = end;
        let (start, bytes) = (
            self.slot(from).cast(),
            (end - from) as usize * SLOT_WORDS as usize * 4,
        );
        match helper {
            Some(p) => p.request(start, bytes),
            None => reserve::populate(start, bytes),
        }
    }

    /// The slot of identifier `id`, which must be below `ids`.
    #[inline(always)]
    pub fn slot(&self, id: u32) -> *mut u32 {
        assert!(id < self.ids, "identifier {id} has no slot");
        // SAFETY: the reservation holds `SLOT_WORDS` words for each identifier below `ids`.
        unsafe { self.base.add(id as usize * SLOT_WORDS as usize) }
    }
}

/// The counts of arrays, for statistics: kept by every allocation path in Rust, and by
/// generated code when statistics are on ([`crate::backend::Routines::counts_arrays`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Arrays allocated (op 8) so far.
    pub allocations: u64,
    /// Arrays abandoned (op 9) so far.
    pub abandonments: u64,
    /// Currently active arrays, array 0 included.
    pub live: u64,
    /// The most there ever were.
    pub peak_live: u64,
}

impl Counts {
    /// One more allocation, one more live array, and perhaps a new peak.
    #[inline(always)]
    fn count_alloc(&mut self) {
        self.allocations += 1;
        self.live += 1;
        self.peak_live = self.peak_live.max(self.live);
    }

    /// One more abandonment, one fewer live array.
    ///
    /// The two stores are kept apart on purpose. Left to itself, LLVM fuses these two
    /// neighbouring fields into one 16-byte load, add and store. The next allocation then
    /// writes `live` alone (8 bytes), and the next abandonment's 16-byte load spans that
    /// store, which the core cannot forward: it waits for the store to reach the cache. With
    /// the stores apart, `--interp` runs micro-allocfree (50 M allocations and abandonments)
    /// in 0.43 s instead of 0.97 s (AMD EPYC).
    #[inline(always)]
    fn count_abandon(&mut self) {
        // SAFETY: both pointers are to fields of `self`, live and aligned; a volatile store
        // is an ordinary store that the compiler may not merge with another.
        unsafe {
            ptr::write_volatile(&mut self.abandonments, self.abandonments + 1);
            ptr::write_volatile(&mut self.live, self.live - 1);
        }
    }
}

/// The helper thread in a heap's `populator` field, once it is started and where one could
/// be. A function of the field alone, so that a caller can hold the helper while it changes
/// the heap's other fields (a stack, the slab, the arenas).
fn helper(populator: &OnceCell<Option<Populator>>) -> Option<&Populator> {
    populator.get().and_then(Option::as_ref)
}

/// Layout of a buffer of `words` words: 8-aligned and rounded up to whole 8-byte units, so
/// that small buffers can be zeroed 8 bytes at a time.
pub(super) fn layout(words: u32) -> Layout {
    // Cannot fail: at most 2^32 * 4 + 4 bytes, far below isize::MAX on a 64-bit host.
    Layout::from_size_align(charge_of(words) as usize, 8).expect("array layout")
}

/// Bytes allocated (and charged) for a buffer of `words` words.
pub(super) fn charge_of(words: u32) -> u64 {
    (words as u64).div_ceil(2) * 8
}

/// Zero a cached buffer or a slot of `n <= SMALL_MAX` words (whole 8-byte units, see
/// `layout`; slots are 8-aligned and `SLOT_WORDS` is even).
/// Volatile stores keep the compiler from turning a handful of stores into `memset`.
#[inline(always)]
fn zero_small(p: *mut u32, n: u32) {
    let q = p.cast::<u64>();
    for i in 0..n.div_ceil(2) as usize {
        // SAFETY: the buffer is 8-aligned and holds `n.div_ceil(2)` 8-byte units.
        unsafe { ptr::write_volatile(q.add(i), 0) };
    }
}

impl Heap {
    /// Op 8: a new zeroed array of `words` words; returns its identifier (never 0).
    #[inline(always)]
    pub fn alloc(&mut self, words: u32) -> Result<u32, Reason> {
        match self.alloc_fast(words) {
            Some(id) => Ok(id),
            None => self.alloc_slow(words),
        }
    }

    /// Op 9: abandon array `id`.
    #[inline(always)]
    pub fn abandon(&mut self, id: u32) -> Result<(), Reason> {
        match self.abandon_fast(id) {
            Some(()) => Ok(()),
            None => self.abandon_slow(id),
        }
    }

    /// The allocation fast path (see the module notes); `None`, having changed nothing,
    /// when the slow path must allocate.
    #[inline(always)]
    pub fn alloc_fast(&mut self, words: u32) -> Option<u32> {
        // A1. 1..=SLOT_CAPACITY words and a recycled identifier with a slot on top of
        //     `free_ids`: pop it; the words go in its slot. (A recycled identifier is
        //     never 0, so machine code only compares it with `slab.ids`.)
        // A2. Else, at most SMALL_MAX words, a cached buffer of exactly that size and a
        //     recycled identifier: pop both.
        // A3. Else, 1..=SLOT_CAPACITY words, no recycled identifier, and the next never-used
        //     identifier below `fresh_end` (so it has a slot, and the table needs neither
        //     to grow nor to be backed with memory ahead), with the bytes of its slot
        //     within the limit: take it and charge them.
        //     Else give up.
        let (id, base, in_slot) = match self.free_ids.top() {
            Some(id) if self.slab.holds(id, words) => {
                self.free_ids.pop();
                (id, self.slab.slot(id), true)
            }
            Some(_) if (words as usize) <= SMALL_MAX && !self.small[words as usize].is_empty() => {
                let base = self.small[words as usize].pop()?;
                let id = self.free_ids.pop()?;
                (id, base, false)
            }
            None if words.wrapping_sub(1) < SLOT_CAPACITY
                && self.table.len < self.fresh_end
                && self.used_bytes + FRESH_BYTES <= self.limit_bytes =>
            {
                let id = self.table.len;
                self.table.len += 1;
                self.used_bytes += FRESH_BYTES;
                (id, self.slab.slot(id), true)
            }
            _ => return None,
        };
        // A4. Zero the words, in whole 8-byte units (buffers and slots are rounded up);
        //     in a slot, then its length word (which the zeroing may have reached). The
        //     routines zero a slot whole instead, the length word in its last unit: the
        //     words beyond an array's length are never read, so both leave the same heap.
        zero_small(base, words);
        if in_slot {
            self.slab.set_len_word(id, words);
        } else {
            // A5. A buffer's entry: base, length, active (in the slot's descriptor when
            //     the identifier has a slot).
            self.set_entry(id, Entry::active(base, words));
        }
        // A6. Count it.
        self.counts.count_alloc();
        Some(id)
    }

    /// The abandonment fast path (see the module notes); `None`, having changed nothing,
    /// when the slow path must do it (faults included).
    #[inline(always)]
    pub fn abandon_fast(&mut self, id: u32) -> Option<()> {
        // B1. Only an active array of 1..=SMALL_MAX words other than array 0, with an
        //     identifier below the table's length: in its slot when the slot's length
        //     word is not 0, else as the descriptor (or the table, beyond the slots) says.
        if id == 0 || id >= self.table.len {
            return None;
        }
        let e = self.entry(id);
        if e.active == 0 || e.len.wrapping_sub(1) >= SMALL_MAX as u32 {
            return None;
        }
        let n = e.len as usize;
        // B2. In its slot: push the identifier on `free_ids`, unless that stack is full.
        // B3. Else: push the identifier on `free_ids` and the buffer on `small[n]`, unless
        //     either stack is full.
        let in_slot = self.slab.holds(id, e.len);
        if in_slot {
            if self.free_ids.is_full() {
                return None;
            }
        } else {
            if self.free_ids.is_full() || self.small[n].is_full() {
                return None;
            }
            self.small[n].push_within(e.base);
        }
        self.free_ids.push_within(id);
        // B4. The entry becomes inactive, and so does the slot's length word.
        self.set_entry(id, Entry::FREE);
        if in_slot {
            self.slab.set_len_word(id, 0);
        }
        // B5. Count it.
        self.counts.count_abandon();
        Some(())
    }

    #[inline(never)]
    fn alloc_slow(&mut self, words: u32) -> Result<u32, Reason> {
        let oom = |e| match e {
            Reason::OutOfMemory { .. } => Reason::OutOfMemory { words },
            other => other,
        };
        let (id, base) = if words.wrapping_sub(1) < SLOT_CAPACITY {
            // The identifier comes first: it decides whether a buffer is needed.
            let id = match self.free_ids.pop() {
                Some(id) => id,
                None => self.fresh_id().map_err(oom)?,
            };
            if self.slab.holds(id, words) {
                zero_small(self.slab.slot(id), words);
                self.slab.set_len_word(id, words);
                self.counts.count_alloc();
                return Ok(id);
            } else {
                match self.new_buffer(words) {
                    Ok(b) => (id, b.as_ptr()),
                    Err(e) => {
                        self.free_ids.push(id);
                        return Err(e);
                    }
                }
            }
        } else {
            let base = self.new_buffer(words)?.as_ptr();
            match self.free_ids.pop().map_or_else(|| self.fresh_id(), Ok) {
                Ok(id) => (id, base),
                Err(e) => {
                    self.drop_buffer(base, words);
                    return Err(oom(e));
                }
            }
        };
        self.set_entry(id, Entry::active(base, words));
        self.counts.count_alloc();
        Ok(id)
    }

    #[inline(never)]
    fn abandon_slow(&mut self, id: u32) -> Result<(), Reason> {
        let e = self.entry(id);
        if id == 0 {
            return Err(Reason::AbandonZero);
        }
        if e.active == 0 {
            return Err(Reason::InactiveArray(id));
        }
        self.set_entry(id, Entry::FREE);
        if self.slab.holds(id, e.len) {
            self.slab.set_len_word(id, 0);
        } else {
            self.drop_buffer(e.base, e.len);
        }
        let helper = helper(&self.populator);
        self.free_ids.push_with(id, helper);
        self.counts.count_abandon();
        Ok(())
    }

    /// A never-used identifier, charged to the limit (with its slot, if it has one: a
    /// slot's memory is never given back).
    pub(super) fn fresh_id(&mut self) -> Result<u32, Reason> {
        let next = self.table.len();
        let bytes = if next < self.slab.ids {
            FRESH_BYTES
        } else {
            ENTRY_BYTES
        };
        if next == u32::MAX {
            return Err(Reason::OutOfIdentifiers);
        }
        self.charge(bytes)
            .map_err(|_| Reason::OutOfMemory { words: 0 })?;
        let id = self.table.next_id().ok_or(Reason::OutOfIdentifiers)?;
        if id.is_multiple_of(POPULATE_IDS) && id >= POPULATE_IDS {
            self.populate(id);
        }
        self.fresh_end = self.fresh_end();
        Ok(id)
    }

    /// Where the fast path's run of never-used identifiers (step A3) ends: each one below
    /// it has a slot the table already counts, and none is one where
    /// `fresh_id` backs the next ones with memory (a multiple of `POPULATE_IDS`). Recomputed by
    /// `fresh_id`, the only other place identifiers are first handed out.
    fn fresh_end(&self) -> u32 {
        // The first multiple of POPULATE_IDS at or after the next identifier (identifiers
        // below POPULATE_IDS are never populated for; a bounded table never is).
        let populate_at = if self.slab.covers_whole_space() {
            let next = u64::from(self.table.len).max(u64::from(POPULATE_IDS));
            let at = next.div_ceil(u64::from(POPULATE_IDS)) * u64::from(POPULATE_IDS);
            u32::try_from(at).unwrap_or(u32::MAX)
        } else {
            u32::MAX
        };
        self.slab.ids.min(populate_at).min(self.table.capacity())
    }

    /// Start the helper thread that backs memory ahead of use (see
    /// [`Populator`]), unless it was started (or tried) before. Only programs that have
    /// used 16 K identifiers or 16 arena chunks get one: the others never wait for a
    /// thread to start.
    fn start_populator(&mut self) {
        self.populator.get_or_init(Populator::new);
    }

    /// Back the slots of the `POPULATE_IDS` identifiers from `id` with memory in one call,
    /// instead of a page fault per page (a program that gets this far is likely to use
    /// them; one that never does pays nothing). Only with the whole-space table, where
    /// every identifier has a slot and the table has no entries; a bounded slab is small,
    /// and a bounded table a heap allocation, written when it grows.
    #[cold]
    fn populate(&mut self, id: u32) {
        if self.slab.covers_whole_space() {
            self.start_populator();
            let helper = helper(&self.populator);
            self.slab.populate(id, POPULATE_IDS, helper);
        }
    }

    fn charge(&mut self, bytes: u64) -> Result<(), ()> {
        if self.used_bytes + bytes > self.limit_bytes {
            self.release_cached();
            if self.used_bytes + bytes > self.limit_bytes {
                return Err(());
            }
        }
        self.used_bytes += bytes;
        Ok(())
    }

    /// Give back the memory of cached free buffers where the arenas can: every chunk whose
    /// buffers are all cached (see `Arenas::release`).
    fn release_cached(&mut self) {
        for words in 1..=SMALL_MAX as u32 {
            let gone = self.arenas.release(words, &mut self.small[words as usize]);
            self.used_bytes -= u64::from(gone) * charge_of(words);
        }
    }

    /// A zeroed buffer of `words` words, charged to the limit.
    pub(super) fn new_buffer(&mut self, words: u32) -> Result<NonNull<u32>, Reason> {
        if words == 0 {
            return Ok(NonNull::new(Entry::FREE.base).expect("non-null"));
        }
        if (words as usize) <= SMALL_MAX
            && let Some(buf) = self.small[words as usize].pop()
        {
            zero_small(buf, words);
            return Ok(NonNull::new(buf).expect("cached buffers are non-null"));
        }
        let oom = Reason::OutOfMemory { words };
        self.charge(charge_of(words)).map_err(|_| oom.clone())?;
        if words as usize <= SMALL_MAX {
            if self.arenas.fresh_chunks() >= POPULATE_AFTER_CHUNKS {
                self.start_populator();
            }
            let helper = helper(&self.populator);
            return match self.arenas.cut(words, helper) {
                Some(p) => Ok(NonNull::new(p).expect("arenas are not at address 0")),
                None => {
                    self.used_bytes -= charge_of(words);
                    Err(oom)
                }
            };
        }
        // SAFETY: the layout has a non-zero size.
        let p = unsafe { alloc::alloc_zeroed(layout(words)) }.cast::<u32>();
        match NonNull::new(p) {
            Some(p) => Ok(p),
            None => {
                self.used_bytes -= charge_of(words);
                Err(oom)
            }
        }
    }

    /// Charge the limit for a buffer of `words` words that did not come from
    /// `new_buffer` (array 0's, see `Words`), as `new_buffer` would have.
    pub(super) fn charge_buffer(&mut self, words: u32) -> Result<(), Reason> {
        if words == 0 {
            return Ok(());
        }
        self.charge(charge_of(words))
            .map_err(|_| Reason::OutOfMemory { words })
    }

    /// Return a buffer of `words` words obtained from `new_buffer` (or adopted, see
    /// `charge_buffer`).
    pub(super) fn drop_buffer(&mut self, base: *mut u32, words: u32) {
        if words == 0 {
            return;
        }
        if words as usize <= SMALL_MAX {
            debug_assert!(
                self.arenas.holds(base),
                "a small array's buffer is the arenas'"
            );
            let helper = helper(&self.populator);
            self.small[words as usize].push_with(base, helper);
            return;
        }
        // SAFETY: `base` was allocated by `new_buffer` with this layout and is no longer used.
        unsafe { alloc::dealloc(base.cast(), layout(words)) };
        self.used_bytes -= charge_of(words);
    }

    /// Free every buffer (the heap is being dropped).
    pub(super) fn free_all_buffers(&mut self) {
        for id in 0..self.table.len() {
            let e = self.entry(id);
            // (Buffers of up to SMALL_MAX words go with the arenas.)
            if e.active != 0 && e.len as usize > SMALL_MAX {
                // SAFETY: active entries own their buffers, allocated by `new_buffer`.
                unsafe { alloc::dealloc(e.base.cast(), layout(e.len)) };
            }
        }
        // The arenas and the stacks free themselves.
    }
}

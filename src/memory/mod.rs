//! The array heap: the arrays of a Universal Machine and the operations on them.
//!
//! Every array is described by an [`Entry`] (base pointer, length, active flag). An
//! identifier's 32-byte slot ([`Slab`]) holds either a small array and its length, or its
//! entry: generated machine code reaches any array through the one cache line of its slot.
//! Array 0's entry is a field of the [`Heap`]; identifiers beyond the slots, when they are
//! bounded, have theirs in a table indexed by identifier ([`table`]). An
//! identifier that is not active (never allocated, or abandoned) has length 0, so the single
//! check `offset < len` guards every index and amend. Where arrays live and how they are
//! recycled is the allocator's business ([`alloc`]); what generated code may assume about
//! all this is in [`layout`].
//!
//! - [`arena`]: where the buffers of arrays of up to [`SMALL_MAX`] words come from.
//! - [`buffer`]: a buffer of words allocated as an array's, which a new heap adopts as
//!   array 0.
//! - [`stack`]: the raw stacks of free identifiers and buffers.
//! - [`reserve`]: zero-filled reservations of address space from the system.
//! - [`populator`]: a helper thread that backs slots and arena chunks with memory ahead of
//!   use.
//! - [`table`]: the identifier table.
//! - [`alloc`]: allocation policy, the fast paths, the memory limit.
//! - [`layout`]: offsets and sizes for generated code.

pub mod alloc;
pub mod arena;
pub mod buffer;
pub mod layout;
pub mod populator;
pub mod reserve;
pub mod stack;
pub mod table;

pub use alloc::{Counts, SLOT_CAPACITY, SLOT_WORDS, Slab};
use arena::Arenas;
pub use buffer::Words;
use populator::Populator;
pub use stack::Stack;
pub use table::{Entry, Table};

use crate::fault::Reason;
use std::cell::OnceCell;
use std::ptr;

/// A hint to bring the cache line at `p` in: it reads nothing the program can see and never
/// faults, whatever `p` is.
#[inline(always)]
fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint that does not access memory architecturally; it never
    // faults, so any address is allowed.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast())
    };
    #[cfg(target_arch = "aarch64")]
    // SAFETY: as on x86-64: `prfm` is a hint that never faults.
    unsafe {
        std::arch::asm!("prfm pldl1keep, [{0}]", in(reg) p, options(readonly, nostack, preserves_flags))
    };
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let _ = p;
}

/// Arrays of at most this many words are recycled through size-class free lists.
pub const SMALL_MAX: usize = 64;

/// The set of arrays. `#[repr(C)]`: generated code reads and updates the header fields
/// through the offsets in [`layout`]; array 0's entry and the fields it touches on every
/// allocation come first (within a one-byte displacement on x86-64).
#[repr(C)]
pub struct Heap {
    /// Array 0's entry (repeated in slot 0's descriptor, see [`Heap::set_entry`]).
    pub(crate) program: Entry,
    /// The identifier table.
    pub(crate) table: Table,
    /// Identifiers free for reuse.
    pub(crate) free_ids: Stack<u32>,
    /// Arrays allocated, abandoned, live.
    pub(crate) counts: Counts,
    /// The slots of small arrays.
    pub(crate) slab: Slab,
    /// `small[n]`: free buffers of exactly `n` words.
    pub(crate) small: [Stack<*mut u32>; SMALL_MAX + 1],
    /// Bytes in live arrays, cached free buffers, slots and table entries.
    used_bytes: u64,
    limit_bytes: u64,
    /// Never-used identifiers below this may be handed out by the allocation fast path
    /// (see `Heap::fresh_end`).
    fresh_end: u32,
    /// How many times array 0 was replaced by load program.
    generation: u64,
    /// The buffers of arrays of up to `SMALL_MAX` words.
    arenas: Arenas,
    /// The helper thread that backs slots and arena chunks with memory ahead of use
    /// ([`populator`]): set once a program has used many of them (to `None` where no
    /// thread can be started); dropped first.
    populator: OnceCell<Option<Populator>>,
}

impl Heap {
    /// A heap whose array 0 holds `program`; allocations beyond `limit_bytes` fail cleanly.
    /// Every identifier has a slot (the whole-space table) unless the host refuses the
    /// reservation, or `UMDBT_BOUNDED_TABLE=1` asks for the bounded fallback (a debugging
    /// knob).
    pub fn new(program: &[u32], limit_bytes: u64) -> Result<Box<Heap>, Reason> {
        Heap::from_words(Words::from_slice(program)?, limit_bytes)
    }

    /// As [`Heap::new`], with `program`'s own buffer as array 0 (no copy).
    pub fn from_words(program: Words, limit_bytes: u64) -> Result<Box<Heap>, Reason> {
        let bounded = std::env::var_os("UMDBT_BOUNDED_TABLE").is_some_and(|v| v == "1");
        Heap::with_program(program, limit_bytes, !bounded)
    }

    /// As [`Heap::new`], choosing the table kind: `whole_space` tries the reservation of a
    /// slot for every identifier, otherwise the slab is bounded and the table grows.
    pub fn with_table(
        program: &[u32],
        limit_bytes: u64,
        whole_space: bool,
    ) -> Result<Box<Heap>, Reason> {
        Heap::with_program(Words::from_slice(program)?, limit_bytes, whole_space)
    }

    /// As [`Heap::with_table`], with `program`'s own buffer as array 0 (no copy).
    pub fn with_program(
        program: Words,
        limit_bytes: u64,
        whole_space: bool,
    ) -> Result<Box<Heap>, Reason> {
        // With a slot for every identifier the table needs no entries (and generated code
        // checks neither identifiers against the table nor slots against the slab); else
        // the slab is bounded and the table holds the entries of identifiers beyond it.
        let whole = match whole_space {
            true => Some(Slab::new(alloc::SLAB_IDS_WHOLE)).filter(Slab::covers_whole_space),
            false => None,
        };
        let (table, slab) = match whole {
            Some(slab) => (Table::without_entries(), slab),
            None => (Table::bounded(), Slab::new(alloc::SLAB_IDS_BOUNDED)),
        };
        let mut heap = Box::new(Heap {
            program: Entry::FREE,
            table,
            free_ids: Stack::new(),
            counts: Counts {
                live: 1,
                peak_live: 1,
                ..Counts::default()
            },
            slab,
            small: std::array::from_fn(|_| Stack::new()),
            used_bytes: 0,
            limit_bytes,
            fresh_end: 0,
            generation: 0,
            arenas: Arenas::new(),
            populator: OnceCell::new(),
        });
        // Slots 2 KiB apart from the heap's fields in their pages.
        let offset = reserve::page_offset_apart(&*heap as *const Heap as usize);
        heap.slab.place(offset);
        // Array 0 is charged as `new_buffer` charges a buffer (from which `drop_buffer`
        // will take it back when load program replaces it).
        let id = heap.fresh_id()?;
        debug_assert_eq!(id, 0);
        let (base, words) = if program.len() <= SMALL_MAX {
            // Buffers this small come from the arenas (so that load program may recycle
            // this one with the others).
            let base = heap.new_buffer(program.len() as u32)?;
            // SAFETY: `base` was just allocated with room for the program's words, and
            // does not overlap `program`'s own buffer.
            unsafe { ptr::copy_nonoverlapping(program.as_ptr(), base.as_ptr(), program.len()) };
            (base.as_ptr(), program.len() as u32)
        } else {
            heap.charge_buffer(program.len() as u32)?;
            program.into_raw()
        };
        heap.set_entry(0, Entry::active(base, words));
        Ok(heap)
    }

    /// Whether the slab has a slot for every identifier (else generated code must check
    /// identifiers against `table.len()` and `slab.ids`, and reaches those beyond the
    /// slots through their table entries).
    pub fn covers_whole_space(&self) -> bool {
        self.slab.covers_whole_space()
    }

    /// The identifier table.
    pub fn table(&self) -> &Table {
        &self.table
    }

    /// The counts of arrays allocated, abandoned and live (see [`Counts`] for when they are
    /// kept).
    pub fn counts(&self) -> Counts {
        self.counts
    }

    /// The slots of small arrays.
    pub fn slab(&self) -> &Slab {
        &self.slab
    }

    /// How many times load program replaced array 0 (a translation of array 0 made at
    /// another generation is stale).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The entry of `id` (inactive for identifiers never handed out). An identifier with a
    /// slot keeps its entry there (see [`Slab`]): an array in the slot is told by the
    /// slot's length word, any other by the descriptor at the start of the slot. Array 0
    /// has its own in the heap, and identifiers beyond the slots theirs in the table.
    #[inline(always)]
    pub fn entry(&self, id: u32) -> Entry {
        if id == 0 {
            return self.program;
        }
        if id >= self.slab.ids {
            return self.table.get(id);
        }
        match self.slab.len_word(id) {
            0 => match self.slab.descriptor(id) {
                e if e.active == 0 => Entry::FREE,
                e => e,
            },
            len => Entry::active(self.slab.slot(id), len),
        }
    }

    /// Set the entry of `id` to an array that does not live in its slot, or to inactive
    /// (the length word of its slot, if any, is the caller's). Array 0's entry is the
    /// heap's own field, repeated where the entry of identifier 0 would otherwise be (slot
    /// 0's descriptor, or the table's first entry when there are no slots), for generated
    /// code and `word` that reach array 0 through an identifier that is not a constant.
    #[inline(always)]
    pub(crate) fn set_entry(&mut self, id: u32, e: Entry) {
        if id == 0 {
            self.program = e;
        }
        if id < self.slab.ids {
            self.slab.set_descriptor(id, e);
        } else {
            self.table.set(id, e);
        }
    }

    /// Array 0: base pointer and length.
    #[inline(always)]
    pub fn program(&self) -> (*mut u32, u32) {
        (self.program.base, self.program.len)
    }

    /// The words of an active array (empty for an inactive identifier).
    pub fn array(&self, id: u32) -> &[u32] {
        let e = self.entry(id);
        if e.len == 0 {
            return &[];
        }
        // SAFETY: an entry with a non-zero length points at a live buffer of `len` words that
        // only this heap frees, and `&self` keeps it from being freed or written meanwhile.
        unsafe { std::slice::from_raw_parts(e.base, e.len as usize) }
    }

    /// The reason an access to `id` at `offset` failed.
    #[cold]
    pub fn access_fault(&self, id: u32, offset: u32) -> Reason {
        let e = self.entry(id);
        if e.active == 0 {
            Reason::InactiveArray(id)
        } else {
            Reason::OutOfBounds {
                id,
                offset,
                len: e.len,
            }
        }
    }

    /// Where word `offset` of array `id` is; `None` when the access faults. Like generated
    /// code in regions: through the slot's length word, or else the descriptor beside it
    /// (one cache line; see [`Slab`]), or the table entry for an identifier without a slot;
    /// and, as they do, prefetching the slots two and three identifiers on (see
    /// [`layout::SLOT_PREFETCH_AHEAD`]): sandmark ran about 5 % faster under the interpreter
    /// so. (The regions' other prefetch, of the buffer cut before a small array's, made it
    /// 4 % slower here.)
    #[inline(always)]
    fn word(&self, id: u32, offset: u32) -> Option<*mut u32> {
        let e = if id < self.slab.ids {
            let slot = self.slab.slot(id);
            prefetch(
                slot.cast::<u8>()
                    .wrapping_add(layout::SLOT_PREFETCH_AHEAD as usize),
            );
            match self.slab.len_word(id) {
                0 => self.slab.descriptor(id),
                len => Entry::active(slot, len),
            }
        } else {
            self.table.get(id)
        };
        if offset < e.len {
            // SAFETY: `offset < len` and the entry describes a live buffer of `len` words.
            return Some(unsafe { e.base.add(offset as usize) });
        }
        None
    }

    /// Op 1: word `offset` of array `id`.
    #[inline(always)]
    pub fn load(&self, id: u32, offset: u32) -> Result<u32, Reason> {
        match self.word(id, offset) {
            // SAFETY: `word` returns addresses of live array words.
            Some(p) => Ok(unsafe { *p }),
            None => Err(self.access_fault(id, offset)),
        }
    }

    /// Op 2: store `value` at `offset` in array `id`.
    #[inline(always)]
    pub fn store(&mut self, id: u32, offset: u32, value: u32) -> Result<(), Reason> {
        match self.word(id, offset) {
            Some(p) => {
                // SAFETY: as in `load`; `&mut self` makes this the only access.
                unsafe { *p = value };
                Ok(())
            }
            None => Err(self.access_fault(id, offset)),
        }
    }

    /// Op 12 with a non-zero identifier: array 0 becomes a copy of array `id`.
    pub fn load_program(&mut self, id: u32) -> Result<(), Reason> {
        let src = self.entry(id);
        if src.active == 0 {
            return Err(Reason::InactiveArray(id));
        }
        if id == 0 {
            return Ok(());
        }
        let base = self.new_buffer(src.len)?;
        // SAFETY: both buffers hold `src.len` words and are distinct allocations.
        unsafe { ptr::copy_nonoverlapping(src.base, base.as_ptr(), src.len as usize) };
        let old = self.entry(0);
        self.set_entry(0, Entry::active(base.as_ptr(), src.len));
        self.drop_buffer(old.base, old.len);
        self.generation += 1;
        Ok(())
    }

    /// The heap's state as plain data, for comparing two heaps in tests (buffer addresses
    /// are left out: two heaps never share them).
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            entries: (0..self.table.len())
                .map(|id| {
                    let e = self.entry(id);
                    let in_slot = e.active != 0 && self.slab.holds(id, e.len);
                    let len_word = match id < self.slab.ids {
                        true => self.slab.len_word(id),
                        false => 0,
                    };
                    (e.len, e.active, in_slot, len_word, self.array(id).to_vec())
                })
                .collect(),
            free_ids: self.free_ids.as_slice().to_vec(),
            small: self.small.iter().map(Stack::len).collect(),
            counts: self.counts,
            used_bytes: self.used_bytes,
        }
    }
}

/// See [`Heap::snapshot`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// Per identifier handed out: length, active flag, whether it lives in its slot, its
    /// slot's length word (0 without a slot), words.
    pub entries: Vec<(u32, u32, bool, u32, Vec<u32>)>,
    /// The stack of free identifiers, bottom first.
    pub free_ids: Vec<u32>,
    /// How many cached buffers of each size.
    pub small: Vec<u32>,
    pub counts: Counts,
    /// Bytes charged against the memory limit.
    pub used_bytes: u64,
}

impl Drop for Heap {
    fn drop(&mut self) {
        // First, so that nothing backs memory that is about to be unmapped.
        drop(self.populator.take());
        self.free_all_buffers();
        // The table, slab and stacks free themselves.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BIG: u64 = 1 << 30;

    #[test]
    fn alloc_zeroes_and_reuses_ids() {
        let mut h = Heap::new(&[1, 2, 3], BIG).unwrap();
        let a = h.alloc(5).unwrap();
        assert_ne!(a, 0);
        h.store(a, 4, 99).unwrap();
        assert_eq!(h.load(a, 4), Ok(99));
        h.abandon(a).unwrap();
        let b = h.alloc(5).unwrap();
        assert_eq!(a, b, "identifier reused");
        assert_eq!(h.array(b), &[0, 0, 0, 0, 0], "reused buffer zeroed");
    }

    #[test]
    fn faults() {
        let mut h = Heap::new(&[1, 2, 3], BIG).unwrap();
        assert_eq!(
            h.load(0, 3),
            Err(Reason::OutOfBounds {
                id: 0,
                offset: 3,
                len: 3
            })
        );
        assert_eq!(h.load(7, 0), Err(Reason::InactiveArray(7)));
        assert_eq!(h.abandon(0), Err(Reason::AbandonZero));
        let z = h.alloc(0).unwrap();
        assert_eq!(
            h.store(z, 0, 1),
            Err(Reason::OutOfBounds {
                id: z,
                offset: 0,
                len: 0
            })
        );
        h.abandon(z).unwrap();
        assert_eq!(h.abandon(z), Err(Reason::InactiveArray(z)));
        assert_eq!(h.load_program(z), Err(Reason::InactiveArray(z)));
    }

    #[test]
    fn limit_is_a_clean_failure() {
        let mut h = Heap::new(&[0], 4096).unwrap();
        assert_eq!(
            h.alloc(u32::MAX),
            Err(Reason::OutOfMemory { words: u32::MAX })
        );
        // Small allocations still work after the failure.
        let a = h.alloc(10).unwrap();
        assert_eq!(h.load(a, 9), Ok(0));
    }

    #[test]
    fn freed_buffers_of_one_size_make_room_for_another_under_the_limit() {
        // 6,000 arrays of 47 words take 1.15 MB of buffers (and 192 KB of slots); freed,
        // their buffers stay cached for 47-word arrays, until arrays of 48 words need the
        // room: the arena chunks holding only cached buffers are given back.
        let limit = 2 << 20;
        let mut h = Heap::new(&[0], limit).unwrap();
        let ids: Vec<u32> = (0..6000).map(|_| h.alloc(47).unwrap()).collect();
        h.store(ids[0], 46, 7).unwrap();
        let charged = h.used_bytes;
        for &id in &ids {
            h.abandon(id).unwrap();
        }
        assert_eq!(h.used_bytes, charged, "cached buffers stay charged");
        let again: Vec<u32> = (0..6000).map(|_| h.alloc(48).unwrap()).collect();
        assert!(h.used_bytes <= limit);
        for &id in again.iter().step_by(97) {
            assert_eq!(h.load(id, 47), Ok(0));
            assert_eq!(h.load(id, 0), Ok(0));
        }
        // Without the room, a clean failure.
        let mut tight = Heap::new(&[0], 1 << 20).unwrap();
        let failed = (0..6000).map(|_| tight.alloc(47)).find(Result::is_err);
        assert_eq!(failed, Some(Err(Reason::OutOfMemory { words: 47 })));
    }

    #[test]
    fn both_table_kinds_reuse_and_grow() {
        for whole in [true, false] {
            let mut h = Heap::with_table(&[1, 2], BIG, whole).unwrap();
            let ids: Vec<u32> = (0..3000).map(|i| h.alloc(i % 70).unwrap()).collect();
            assert_eq!(ids[0], 1);
            assert_eq!(ids[2999], 3000, "fresh identifiers are handed out in order");
            assert_eq!(h.table().len(), 3001);
            for &id in &ids[..1500] {
                h.abandon(id).unwrap();
            }
            let again = h.alloc(3).unwrap();
            assert!(
                ids[..1500].contains(&again),
                "an abandoned identifier is reused"
            );
            assert_eq!(h.load(u32::MAX, 0), Err(Reason::InactiveArray(u32::MAX)));
            assert_eq!(h.load(ids[0], 0), Err(Reason::InactiveArray(ids[0])));
            assert_eq!(h.array(0), &[1, 2], "array 0 survives the table growing");
        }
    }

    #[test]
    fn small_arrays_live_in_their_slots() {
        let mut h = Heap::new(&[0], BIG).unwrap();
        assert!(h.slab.ids > 0, "the slot reservation succeeds here");
        let a = h.alloc(3).unwrap();
        let b = h.alloc(SLOT_CAPACITY).unwrap();
        let big = h.alloc(SLOT_CAPACITY + 1).unwrap();
        assert_eq!(h.entry(a).base, h.slab.slot(a));
        assert_eq!(h.entry(b).base, h.slab.slot(b));
        assert_eq!(
            h.entry(b).base,
            h.slab.slot(a).wrapping_add(SLOT_WORDS as usize),
            "neighbouring identifiers are neighbours"
        );
        assert_ne!(
            h.entry(big).base,
            h.slab.slot(big),
            "larger arrays have buffers"
        );
        // Each slot's last word repeats the length of the array in it.
        assert_eq!(h.slab.len_word(a), 3);
        assert_eq!(h.slab.len_word(b), SLOT_CAPACITY);
        assert_eq!(h.slab.len_word(big), 0, "no array in this slot");
        assert_eq!(h.slab.len_word(0), 0, "array 0 never lives in its slot");
        h.store(b, SLOT_CAPACITY - 1, 5).unwrap();
        assert_eq!(
            h.slab.len_word(b),
            SLOT_CAPACITY,
            "the last word is not the length"
        );
        h.store(a, 2, 7).unwrap();
        h.abandon(a).unwrap();
        assert_eq!(h.slab.len_word(a), 0, "abandoned");
        // The same identifier comes back with another small size, zeroed.
        assert_eq!(h.alloc(5).unwrap(), a);
        assert_eq!(h.array(a), &[0; 5]);
        assert_eq!(h.slab.len_word(a), 5);
        h.abandon(a).unwrap();
        // ... or with a size that needs a buffer, and then its slot stays unused.
        assert_eq!(h.alloc(20).unwrap(), a);
        assert_ne!(h.entry(a).base, h.slab.slot(a));
        assert_eq!(h.array(a), &[0; 20]);
        assert_eq!(h.slab.len_word(a), 0);
        // A slot's whole capacity, after its last word held a length: zeroed again.
        h.abandon(b).unwrap();
        let c = h.alloc(SLOT_CAPACITY).unwrap();
        assert_eq!(c, b);
        assert_eq!(h.array(c), &[0; SLOT_CAPACITY as usize]);
        assert_eq!(h.slab.len_word(c), SLOT_CAPACITY);
    }

    #[test]
    fn index_and_amend_reach_slots_and_buffers_alike() {
        for whole in [true, false] {
            let mut h = Heap::with_table(&[0], BIG, whole).unwrap();
            let sizes = [1, 3, SLOT_CAPACITY, SLOT_CAPACITY + 1, 20];
            let ids: Vec<u32> = sizes.iter().map(|&n| h.alloc(n).unwrap()).collect();
            for (&id, &n) in ids.iter().zip(&sizes) {
                for i in 0..n {
                    h.store(id, i, id * 100 + i).unwrap();
                }
                let want: Vec<u32> = (0..n).map(|i| id * 100 + i).collect();
                assert_eq!(
                    h.array(id),
                    &want[..],
                    "stores land in the array (whole: {whole})"
                );
                for i in 0..n {
                    assert_eq!(h.load(id, i), Ok(id * 100 + i));
                }
                let past = Reason::OutOfBounds {
                    id,
                    offset: n,
                    len: n,
                };
                assert_eq!(h.load(id, n), Err(past.clone()));
                assert_eq!(h.store(id, n, 1), Err(past));
            }
            // Abandoned: through its slot or its entry, the array is gone.
            for &id in ids.iter().rev() {
                h.abandon(id).unwrap();
                assert_eq!(h.load(id, 0), Err(Reason::InactiveArray(id)));
                assert_eq!(h.store(id, 0, 1), Err(Reason::InactiveArray(id)));
            }
            // A slot's identifier reused with a buffer: the slot now describes the buffer,
            // and the words of the array that lived there are not reached.
            let reused = h.alloc(30).unwrap();
            assert_eq!(reused, ids[0]);
            let buffer = h.slab.descriptor(reused);
            assert_eq!((buffer.len, buffer.active), (30, 1));
            assert_ne!(buffer.base, h.slab.slot(reused));
            assert_eq!(h.slab.len_word(reused), 0);
            assert_eq!(h.load(reused, 0), Ok(0), "the buffer, not the stale slot");
            h.store(reused, 0, 9).unwrap();
            assert_eq!(h.array(reused)[0], 9);
        }
    }

    #[test]
    fn slots_are_placed_half_a_page_from_the_heap() {
        let mut h = Heap::new(&[0], BIG).unwrap();
        let heap = &*h as *const Heap as usize % 4096;
        let a = h.alloc(2).unwrap();
        let slots = h.slab.slot(0) as usize;
        let apart = (slots % 4096 + 4096 - heap) % 4096;
        assert!((0x7C0..=0x800).contains(&apart), "{heap:#x} {slots:#x}");
        assert_eq!(h.entry(a).base, h.slab.slot(a));
        h.store(a, 1, 5).unwrap();
        assert_eq!(h.array(a), &[0, 5]);
    }

    #[test]
    fn every_identifier_has_a_slot_with_the_whole_space_table() {
        let h = Heap::new(&[0], BIG).unwrap();
        if h.covers_whole_space() {
            assert!(h.slab.covers_whole_space());
            assert_eq!(h.slab.len_word(u32::MAX - 1), 0);
            assert!(h.table.entries.is_null(), "no table entries then");
            assert_eq!(h.entry(0), h.slab.descriptor(0), "array 0 in slot 0 too");
        }
        let h = Heap::with_table(&[0], BIG, false).unwrap();
        assert!(!h.covers_whole_space() && !h.slab.covers_whole_space());
    }

    #[test]
    fn identifiers_beyond_the_slots_get_buffers() {
        let mut h = Heap::with_table(&[0], BIG, false).unwrap();
        let n = h.slab.ids;
        assert_eq!(n, alloc::SLAB_IDS_BOUNDED);
        let ids: Vec<u32> = (0..n + 10).map(|_| h.alloc(2).unwrap()).collect();
        let last = *ids.last().unwrap();
        assert!(last > n);
        assert_eq!(h.entry(n - 1).base, h.slab.slot(n - 1));
        assert!(!h.slab.holds(last, 2));
        h.store(last, 1, 9).unwrap();
        assert_eq!(h.array(last), &[0, 9]);
        for &id in ids.iter().rev() {
            h.abandon(id).unwrap();
        }
        assert_eq!(
            h.alloc(2).unwrap(),
            1,
            "the lowest identifier was freed last"
        );
        assert_eq!(h.entry(1).base, h.slab.slot(1));
    }

    #[test]
    fn load_program_copies_and_counts_a_generation() {
        let mut h = Heap::new(&[1], BIG).unwrap();
        let a = h.alloc(2).unwrap();
        h.store(a, 1, 42).unwrap();
        assert_eq!(h.generation(), 0);
        h.load_program(0).unwrap();
        assert_eq!(
            h.generation(),
            0,
            "load program from array 0 copies nothing"
        );
        h.load_program(a).unwrap();
        assert_eq!(h.generation(), 1);
        h.store(a, 1, 7).unwrap();
        assert_eq!(h.array(0), &[0, 42]);
        assert_eq!(h.array(a), &[0, 7]);
    }

    #[test]
    fn fast_paths_give_up_without_changing_anything() {
        let mut h = Heap::new(&[0], BIG).unwrap();
        // Nothing recycled yet: an array too large for a slot, and abandonments of
        // array 0 or of an identifier never handed out, are the slow paths' to do.
        let before = h.snapshot();
        assert_eq!(h.alloc_fast(SLOT_CAPACITY + 1), None);
        assert_eq!(h.abandon_fast(0), None);
        assert_eq!(h.abandon_fast(5), None);
        assert_eq!(h.snapshot(), before);
        // One that fits in a slot takes the next never-used identifier.
        let a = h.alloc_fast(3).expect("a never-used identifier");
        assert_eq!(a, 1);
        assert_eq!(
            h.snapshot().used_bytes,
            before.used_bytes + alloc::FRESH_BYTES
        );
        let big = h.alloc(100).unwrap();
        // A large array is the slow path's to abandon.
        let before = h.snapshot();
        assert_eq!(h.abandon_fast(big), None);
        assert_eq!(h.snapshot(), before);
        // The first abandonment grows the stack of free identifiers: the slow path's job.
        assert_eq!(h.abandon_fast(a), None);
        h.abandon(a).unwrap();
        // From then on the identifier is recycled through the fast paths.
        assert_eq!(h.alloc_fast(4), Some(a));
        assert_eq!(h.abandon_fast(a), Some(()));
        assert_eq!(h.alloc_fast(2), Some(a));
    }

    #[test]
    fn never_used_identifiers_stop_at_the_limit_and_where_memory_is_backed_ahead() {
        // Room for exactly two more identifiers with slots.
        let mut h = Heap::new(&[0], BIG).unwrap();
        h.limit_bytes = h.used_bytes + 2 * alloc::FRESH_BYTES + alloc::FRESH_BYTES / 2;
        assert!(h.alloc_fast(1).is_some());
        assert!(h.alloc_fast(1).is_some());
        let before = h.snapshot();
        assert_eq!(h.alloc_fast(1), None, "the third is over the limit");
        assert_eq!(h.snapshot(), before);
        assert!(matches!(h.alloc(1), Err(Reason::OutOfMemory { .. })));

        // The slow path hands out the identifiers at which memory is backed ahead (the
        // whole-space table) or the table grows (a bounded one); the fast path all others.
        for whole_space in [true, false] {
            let mut h = Heap::with_table(&[0], BIG, whole_space).unwrap();
            let mut slow = Vec::new();
            for _ in 0..3 * alloc::POPULATE_IDS {
                let (next, cap) = (h.table.len, h.table.capacity());
                match h.alloc_fast(1) {
                    Some(id) => assert_eq!(id, next),
                    None => {
                        slow.push(next);
                        assert_eq!(h.alloc(1), Ok(next));
                        if !h.covers_whole_space() {
                            assert_eq!(next, cap, "a bounded table grows here");
                        }
                    }
                }
            }
            if h.covers_whole_space() {
                let p = alloc::POPULATE_IDS;
                assert_eq!(slow, [p, 2 * p, 3 * p]);
            } else {
                assert!(!slow.is_empty(), "the bounded table grew");
            }
        }
    }
}

//! The heap's layout as generated code sees it: every offset and size that machine code
//! uses to reach the identifier table, the slots, the free stacks and the counters, defined
//! once from the Rust types and checked at compile time. Backends use these names, never
//! numbers.

use super::alloc::{Counts, SLOT_LEN_WORD, SLOT_WORDS, Slab};
use super::stack::Stack;
use super::table::{Entry, FREE_BASE, Table};
use super::{Heap, SMALL_MAX};
use std::mem::{offset_of, size_of};

/// `log2(size_of::<Entry>())`: an identifier shifted left by this is its entry's offset.
pub const ENTRY_SHIFT: u32 = size_of::<Entry>().trailing_zeros();
/// Offsets in an [`Entry`]: a table entry, or a slot's descriptor (at the slot's start).
pub const ENTRY_BASE: i32 = offset_of!(Entry, base) as i32;
pub const ENTRY_LEN: i32 = offset_of!(Entry, len) as i32;
pub const ENTRY_ACTIVE: i32 = offset_of!(Entry, active) as i32;
/// An active entry's `len` and `active` as one 64-bit store at `ENTRY_LEN`: `len | 1 << 32`.
pub const fn entry_len_active(len: u32) -> u64 {
    len as u64 | 1 << 32
}
/// An inactive entry is `FREE_BASE` at `ENTRY_BASE` and zero at `ENTRY_LEN` (8 bytes).
pub const ENTRY_FREE_BASE: u64 = FREE_BASE as u64;

/// `log2` of a slot's size in bytes: an identifier shifted left by this is its slot's
/// offset in the slab.
pub const SLOT_SHIFT: u32 = (SLOT_WORDS * 4).trailing_zeros();
/// Offset in a slot of its length word: the length of the array living in the slot, 0
/// when none does (see `Slab`).
pub const SLOT_LEN: i32 = (SLOT_LEN_WORD * 4) as i32;

/// Arrays of up to this many words reached through their slot's descriptor have buffers
/// cut from the arenas, one size per arena in address order (see `memory::arena`): the
/// buffer cut just before such an array's, for an array of the same size, ends where its
/// own begins. Generated code that finds an array of at most this length in a buffer
/// prefetches the buffer cut two before it, at `base - (round_even(len) << PREFETCH_SHIFT)`
/// (two buffers of `charge_of(len)` bytes). A program that walks a list it built by
/// prepending (as UMIX's collector walks every object of the system) visits the arrays of
/// each size in the reverse of the order they were allocated in, so that is where its next
/// visits of that size go: with about thirty sizes interleaved, the hardware's prefetchers
/// lose track of these streams, and each visit was a miss to memory. The UMIX session ran
/// about 10 % faster with it. A prefetch never faults, so an array that did not come from the
/// arenas in this order costs only the wasted fetch.
pub const PREFETCH_MAX_LEN: u32 = SMALL_MAX as u32;
/// See [`PREFETCH_MAX_LEN`].
pub const PREFETCH_SHIFT: u32 = 3;

/// Generated code in regions that reaches an array through its slot also prefetches this
/// many bytes past the slot: the cache line after the slot's own, which holds the slots
/// two and three identifiers on. A program that walks arrays in the order it allocated
/// them (sandmark's lists) goes up through fresh identifiers, and with other memory
/// traffic in between the hardware's prefetchers do not run ahead of it: sandmark ran
/// about 4.5 % faster with it, other programs the same. A prefetch never faults, so past
/// the slab's end it costs only the fetch.
pub const SLOT_PREFETCH_AHEAD: i32 = 64;

/// Offsets in a [`Stack`] (the same for every element type).
pub const STACK_PTR: i32 = offset_of!(Stack<u32>, ptr) as i32;
pub const STACK_LEN: i32 = offset_of!(Stack<u32>, len) as i32;
pub const STACK_CAP: i32 = offset_of!(Stack<u32>, cap) as i32;
pub const STACK_SIZE: i32 = size_of::<Stack<*mut u32>>() as i32;

/// Offsets in the [`Heap`].
pub const HEAP_ENTRIES: i32 = (offset_of!(Heap, table) + offset_of!(Table, entries)) as i32;
/// Array 0's entry: add `ENTRY_BASE` or `ENTRY_LEN`.
pub const HEAP_PROGRAM: i32 = offset_of!(Heap, program) as i32;
pub const HEAP_IDS: i32 = (offset_of!(Heap, table) + offset_of!(Table, len)) as i32;
pub const HEAP_SLAB: i32 = (offset_of!(Heap, slab) + offset_of!(Slab, base)) as i32;
pub const HEAP_SLAB_IDS: i32 = (offset_of!(Heap, slab) + offset_of!(Slab, ids)) as i32;
pub const HEAP_FREE_IDS: i32 = offset_of!(Heap, free_ids) as i32;
pub const HEAP_ALLOCATIONS: i32 =
    (offset_of!(Heap, counts) + offset_of!(Counts, allocations)) as i32;
pub const HEAP_ABANDONMENTS: i32 =
    (offset_of!(Heap, counts) + offset_of!(Counts, abandonments)) as i32;
pub const HEAP_LIVE: i32 = (offset_of!(Heap, counts) + offset_of!(Counts, live)) as i32;
pub const HEAP_PEAK_LIVE: i32 = (offset_of!(Heap, counts) + offset_of!(Counts, peak_live)) as i32;
/// The memory charged so far and its limit (u64 each), and the end of the run of
/// never-used identifiers the allocation fast path may hand out (u32).
pub const HEAP_USED_BYTES: i32 = offset_of!(Heap, used_bytes) as i32;
pub const HEAP_LIMIT_BYTES: i32 = offset_of!(Heap, limit_bytes) as i32;
pub const HEAP_FRESH_END: i32 = offset_of!(Heap, fresh_end) as i32;
/// What step A3 charges for a never-used identifier: its slot.
pub use super::alloc::FRESH_BYTES;
/// `small[0]`; `small[n]` is at `HEAP_SMALL + n * STACK_SIZE` ([`heap_small`]).
pub const HEAP_SMALL: i32 = offset_of!(Heap, small) as i32;

/// Offset of `small[words]`, the stack of free buffers of exactly `words` words.
pub const fn heap_small(words: u32) -> i32 {
    assert!(words as usize <= SMALL_MAX);
    HEAP_SMALL + words as i32 * STACK_SIZE
}

/// The bytes below a buffer of `len` words that generated code prefetches (see
/// [`PREFETCH_MAX_LEN`]).
pub const fn prefetch_distance(len: u32) -> u64 {
    ((len as u64 + 1) & !1) << PREFETCH_SHIFT
}

const _: () = {
    // Entries and slots are powers of two, so an identifier becomes an offset by a shift.
    assert!(size_of::<Entry>() == 1 << ENTRY_SHIFT);
    assert!(SLOT_WORDS * 4 == 1 << SLOT_SHIFT);
    // `len` and `active` are adjacent, in that order: one 64-bit store writes both.
    assert!(ENTRY_ACTIVE == ENTRY_LEN + 4 && ENTRY_LEN % 8 == 0);
    // The length word is the slot's last, and slots are aligned to their size: an array in
    // its slot and its length share one cache line.
    assert!(SLOT_LEN as u32 == (SLOT_WORDS - 1) * 4 && SLOT_WORDS * 4 <= 64);
    // A slot's descriptor ends before its length word, which tells whether it is one.
    assert!(size_of::<Entry>() <= SLOT_LEN as usize);
    // A slot or buffer is zeroed in whole 8-byte units.
    assert!(SLOT_WORDS.is_multiple_of(2));
    // Stacks of identifiers and of buffers have the same layout, length and capacity
    // adjacent.
    assert!(size_of::<Stack<u32>>() == size_of::<Stack<*mut u32>>());
    assert!(STACK_CAP == STACK_LEN + 4);
    assert!((STACK_SIZE as u32).is_power_of_two());
    // The fields the fast paths touch on every allocation are within a signed byte of the
    // heap pointer, so x86-64 reaches them with one-byte displacements.
    assert!(HEAP_ENTRIES < 128 && HEAP_IDS < 128 && HEAP_SLAB < 128 && HEAP_SLAB_IDS < 128);
    assert!(HEAP_PROGRAM + ENTRY_ACTIVE < 128);
    assert!(HEAP_FREE_IDS + STACK_CAP < 128);
    assert!(HEAP_ALLOCATIONS < 128 && HEAP_ABANDONMENTS < 128);
    assert!(HEAP_LIVE < 128 && HEAP_PEAK_LIVE < 128);
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::alloc::charge_of;

    #[test]
    fn the_slot_prefetch_reaches_the_next_cache_line() {
        use crate::memory::SLOT_WORDS;
        // A whole line past the slot's own (slots are 32-byte aligned, two to a line), so
        // never the line the access itself brings in.
        assert_eq!(SLOT_WORDS * 4, 32);
        assert_eq!(SLOT_PREFETCH_AHEAD, 64);
    }

    #[test]
    fn the_prefetch_reaches_the_buffer_cut_two_before() {
        for len in 1..=PREFETCH_MAX_LEN {
            assert_eq!(prefetch_distance(len), 2 * charge_of(len), "len {len}");
        }
    }
}

//! The heap's fast paths in AArch64 machine code: a transcription of `Heap::alloc_fast` and
//! `Heap::abandon_fast` (`src/memory/alloc.rs`), step by step (A1..A6, B1..B5), on the
//! fields named in `memory::layout`: in the routines, and inline (an allocation of a
//! constant size, an abandonment of an array in its slot). x28 is the heap, x18 the base of
//! its slots (see `regs`).

use super::{Ops, load_x};
use crate::memory::layout::*;
use crate::memory::{SLOT_CAPACITY, SLOT_WORDS, SMALL_MAX};
use dynasmrt::{DynamicLabel, DynasmApi, DynasmLabelApi};

/// `free_ids`: its pointer, length and capacity.
const FREE_PTR: u32 = (HEAP_FREE_IDS + STACK_PTR) as u32;
const FREE_LEN: u32 = (HEAP_FREE_IDS + STACK_LEN) as u32;
const FREE_CAP: u32 = (HEAP_FREE_IDS + STACK_CAP) as u32;
/// `small[n]` is at `HEAP_SMALL + (n << SMALL_SHIFT)`.
const SMALL_SHIFT: u32 = STACK_SIZE.trailing_zeros();
const SMALL_PTR: u32 = (HEAP_SMALL + STACK_PTR) as u32;
const SMALL_LEN: u32 = (HEAP_SMALL + STACK_LEN) as u32;
const SMALL_CAP: u32 = (HEAP_SMALL + STACK_CAP) as u32;
const ENTRIES: u32 = HEAP_ENTRIES as u32;
const IDS: u32 = HEAP_IDS as u32;
const SLAB_IDS: u32 = HEAP_SLAB_IDS as u32;
const FRESH_END: u32 = HEAP_FRESH_END as u32;
const USED_BYTES: u32 = HEAP_USED_BYTES as u32;
const LIMIT_BYTES: u32 = HEAP_LIMIT_BYTES as u32;
const BASE: u32 = ENTRY_BASE as u32;
const LEN: u32 = ENTRY_LEN as u32;
const ACTIVE: u32 = ENTRY_ACTIVE as u32;
const SLOT_LEN_AT: u32 = SLOT_LEN as u32;
// A slot is zeroed with two `stp`, the length word in the upper half of the last unit.
const _: () = assert!(SLOT_WORDS == 8 && SLOT_LEN == 28);
// The extended-register forms used below shift by at most 4.
const _: () = assert!(SMALL_SHIFT <= 4 && ENTRY_SHIFT <= 4);

/// The allocation routine's fast path, `Heap::alloc_fast` with the size in w1: returns the
/// identifier in x0, or falls through (having changed nothing) to the call into Rust that
/// follows. Clobbers x9..x11, x14..x17.
pub(super) fn alloc_fast_path(ops: &mut Ops, counts: bool) {
    let slow = ops.new_dynamic_label();
    let buffers = ops.new_dynamic_label();
    let fresh = ops.new_dynamic_label();
    let fill = ops.new_dynamic_label();
    let fill_slot = ops.new_dynamic_label();
    let zeroed = ops.new_dynamic_label();
    let zero_loop = ops.new_dynamic_label();
    let counted = ops.new_dynamic_label();
    asm!(ops
        // A1. 1..=SLOT_CAPACITY words, and the identifier on top of `free_ids` has a slot.
        ; sub w9, w1, 1
        ; cmp w9, SLOT_CAPACITY - 1
        ; b.hi =>buffers
        ; ldr w10, [x28, FREE_LEN]
        ; cbz w10, =>fresh
        ; ldr x11, [x28, FREE_PTR]
        ; sub w10, w10, 1
        ; ldr w14, [x11, x10, lsl 2]          // w14 = the identifier
        ; ldr w15, [x28, SLAB_IDS]
        ; cmp w14, w15
        ; b.hs =>buffers
        ; str w10, [x28, FREE_LEN]
        ; add x15, x18, x14, lsl SLOT_SHIFT   // x15 = its slot
        ; b =>fill_slot
        // A3. No recycled identifier: the next never-used one, below `fresh_end`, with
        //     its slot charged within the limit.
        ; =>fresh
        ; ldr w14, [x28, IDS]                 // w14 = the identifier
        ; ldr w15, [x28, FRESH_END]
        ; cmp w14, w15
        ; b.hs =>slow
        ; ldr x16, [x28, USED_BYTES]
        ; add x16, x16, FRESH_BYTES as u32
        ; ldr x17, [x28, LIMIT_BYTES]
        ; cmp x16, x17
        ; b.hi =>slow
        ; str x16, [x28, USED_BYTES]
        ; add w9, w14, 1
        ; str w9, [x28, IDS]
        ; add x15, x18, x14, lsl SLOT_SHIFT   // x15 = its slot (on into A4)
        // A4 in a slot: zero it whole, its last unit holding the length word.
        ; =>fill_slot
        ; ubfiz x9, x1, 32, 32
        ; stp xzr, xzr, [x15]
        ; stp xzr, x9, [x15, 16]
        ; b =>counted
        // A2. At most SMALL_MAX words, a cached buffer of that size and a recycled
        //     identifier: pop both.
        ; =>buffers
        ; cmp w1, SMALL_MAX as u32
        ; b.hi =>slow
        ; add x9, x28, w1, uxtw SMALL_SHIFT   // x9 + SMALL_* = small[n]
        ; ldr w10, [x9, SMALL_LEN]
        ; cbz w10, =>slow
        ; ldr w11, [x28, FREE_LEN]
        ; cbz w11, =>slow
        ; sub w10, w10, 1
        ; str w10, [x9, SMALL_LEN]
        ; ldr x15, [x9, SMALL_PTR]
        ; ldr x15, [x15, x10, lsl 3]          // x15 = the buffer
        ; sub w11, w11, 1
        ; str w11, [x28, FREE_LEN]
        ; ldr x16, [x28, FREE_PTR]
        ; ldr w14, [x16, x11, lsl 2]          // w14 = the identifier
        // A4. Zero the words in whole 8-byte units.
        ; =>fill
        ; add w9, w1, 1
        ; lsr w9, w9, 1
        ; cbz w9, =>zeroed
        ; =>zero_loop
        ; sub w9, w9, 1
        ; str xzr, [x15, x9, lsl 3]
        ; cbnz w9, =>zero_loop
        ; =>zeroed
    );
    // A5. A buffer's entry: base, length, active.
    entry_of(ops, 14, 16, true);
    asm!(ops
        ; str x15, [x16, BASE]
        ; str w1, [x16, LEN]
        ; movz w17, 1
        ; str w17, [x16, ACTIVE]
        ; =>counted
    );
    // A6. Count it.
    if counts {
        count_alloc(ops);
    }
    asm!(ops
        ; mov w0, w14
        ; ret
        ; =>slow
    );
}

/// Step A6 (when generated code counts): count a new array as `Heap::alloc_fast` does:
/// allocations, live arrays and their peak (clobbers x16, x17).
fn count_alloc(ops: &mut Ops) {
    let peak = HEAP_PEAK_LIVE as u32;
    bump(ops, 16, HEAP_ALLOCATIONS, true);
    bump(ops, 16, HEAP_LIVE, true);
    asm!(ops
        ; ldr x17, [x28, peak]
        ; cmp x16, x17
        ; csel x17, x16, x17, hi
        ; str x17, [x28, peak]
    );
}

/// The abandonment routine's fast path, `Heap::abandon_fast` with the identifier in w1:
/// returns 0 in x0, or falls through (having changed nothing) to the call into Rust that
/// follows (faults included). Clobbers x9..x11, x14..x17.
pub(super) fn abandon_fast_path(ops: &mut Ops, counts: bool) {
    let slow = ops.new_dynamic_label();
    let table = ops.new_dynamic_label();
    let described = ops.new_dynamic_label();
    let free = ops.new_dynamic_label();
    asm!(ops
        // B1. An active array of 1..=SMALL_MAX words other than array 0, with an identifier
        //     below the table's length: in its slot when the length word is not 0, else
        //     described at the start of the slot, or in the table for an identifier
        //     without a slot.
        ; cbz w1, =>slow
        ; ldr w9, [x28, IDS]
        ; cmp w1, w9
        ; b.hs =>slow
        ; ldr w14, [x28, FREE_LEN]
        ; ldr w15, [x28, FREE_CAP]
        ; cmp w14, w15
        ; b.hs =>slow
        ; ldr w9, [x28, SLAB_IDS]
        ; cmp w1, w9
        ; b.hs =>table
        ; ubfiz x10, x1, SLOT_SHIFT, 32
        ; add x10, x10, x18                   // x10 = the slot
        ; ldr w11, [x10, SLOT_LEN_AT]
        ; cbz w11, =>described
        // B2. In its slot: push the identifier (`free_ids` is not full).
        ; str wzr, [x10, SLOT_LEN_AT]
        ; b =>free
        ; =>table
        ; ldr x10, [x28, ENTRIES]
        ; add x10, x10, w1, uxtw ENTRY_SHIFT  // x10 = the entry
        ; =>described
        ; ldr w11, [x10, ACTIVE]
        ; cbz w11, =>slow
        ; ldr w11, [x10, LEN]                 // w11 = its length
        ; sub w9, w11, 1
        ; cmp w9, SMALL_MAX as u32 - 1
        ; b.hi =>slow
        // B3. Else push the identifier and the buffer on `small[n]`, unless that stack is
        //     full too.
        ; add x16, x28, w11, uxtw SMALL_SHIFT // x16 + SMALL_* = small[n]
        ; ldr w15, [x16, SMALL_LEN]
        ; ldr w17, [x16, SMALL_CAP]
        ; cmp w15, w17
        ; b.hs =>slow
        ; ldr x17, [x16, SMALL_PTR]
        ; ldr x9, [x10, BASE]
        ; str x9, [x17, x15, lsl 3]
        ; add w15, w15, 1
        ; str w15, [x16, SMALL_LEN]
        ; =>free                              // (w14 = free_ids.len)
        ; ldr x16, [x28, FREE_PTR]
        ; str w1, [x16, x14, lsl 2]
        ; add w14, w14, 1
        ; str w14, [x28, FREE_LEN]
    );
    release_entry(ops, counts);
    asm!(ops
        ; movz x0, 0
        ; ret
        ; =>slow
    );
}

/// The inline allocation of a constant `words` (`Backend::alloc_small`): steps A1 or A2 as
/// far as the constant decides them, then A4..A6, leaving the identifier in w10; `slow`
/// (having changed nothing) when the step cannot be taken, for the routine to try all of
/// it. Clobbers x9..x11, x14..x17.
pub(super) fn alloc_inline(
    ops: &mut Ops,
    words: u32,
    check_ids: bool,
    counts: bool,
    slow: DynamicLabel,
) {
    debug_assert!((1..=SMALL_MAX as u32).contains(&words));
    if words <= SLOT_CAPACITY {
        // A1. The identifier on top of `free_ids` and its slot (which, with the
        //     whole-space table, every identifier has).
        asm!(ops
            ; ldr w9, [x28, FREE_LEN]
            ; cbz w9, =>slow
            ; ldr x14, [x28, FREE_PTR]
            ; sub w9, w9, 1
            ; ldr w10, [x14, x9, lsl 2]       // w10 = the identifier
        );
        if check_ids {
            asm!(ops
                ; ldr w11, [x28, SLAB_IDS]
                ; cmp w10, w11
                ; b.hs =>slow
            );
        }
        asm!(ops
            ; str w9, [x28, FREE_LEN]
            ; add x11, x18, x10, lsl SLOT_SHIFT // x11 = its slot
        );
    } else {
        // A2. A cached buffer of exactly this size and a recycled identifier.
        let len_at = (heap_small(words) + STACK_LEN) as u32;
        let ptr_at = (heap_small(words) + STACK_PTR) as u32;
        asm!(ops
            ; ldr w9, [x28, len_at]
            ; cbz w9, =>slow
            ; ldr w10, [x28, FREE_LEN]
            ; cbz w10, =>slow
            ; sub w9, w9, 1
            ; str w9, [x28, len_at]
            ; ldr x11, [x28, ptr_at]
            ; ldr x11, [x11, x9, lsl 3]       // x11 = the buffer
            ; sub w10, w10, 1
            ; str w10, [x28, FREE_LEN]
            ; ldr x14, [x28, FREE_PTR]
            ; ldr w10, [x14, x10, lsl 2]      // w10 = the identifier
        );
    }
    // A4. Zero the words in whole 8-byte units; in a slot, then its length word.
    let units = words.div_ceil(2);
    for pair in 0..units / 2 {
        asm!(ops ; stp xzr, xzr, [x11, 16 * pair as i32]);
    }
    if units % 2 == 1 {
        asm!(ops ; str xzr, [x11, 8 * (units - 1)]);
    }
    if words <= SLOT_CAPACITY {
        // In a slot, then its length word.
        asm!(ops
            ; movz w9, words
            ; str w9, [x11, SLOT_LEN_AT]
        );
    } else {
        // A5. A buffer's entry, base then length and active in one store.
        entry_of(ops, 10, 14, check_ids);
        asm!(ops ; str x11, [x14, BASE]);
        load_x(ops, 15, entry_len_active(words));
        asm!(ops ; str x15, [x14, LEN]);
    }
    // A6. Count it.
    if counts {
        count_alloc(ops);
    }
}

/// x`at` := where the entry of the identifier in w`id` (zero-extended into x`id`) is: its
/// slot's descriptor, or, when `bounded` and the identifier has no slot, its table entry.
fn entry_of(ops: &mut Ops, id: u8, at: u8, bounded: bool) {
    let table = ops.new_dynamic_label();
    let done = ops.new_dynamic_label();
    if bounded {
        asm!(ops
            ; ldr W(at), [x28, SLAB_IDS]
            ; cmp W(id), W(at)
            ; b.hs =>table
        );
    }
    asm!(ops
        ; add X(at), x18, X(id), lsl SLOT_SHIFT
    );
    if bounded {
        asm!(ops
            ; b =>done
            ; =>table
            ; ldr X(at), [x28, ENTRIES]
            ; add X(at), X(at), X(id), lsl ENTRY_SHIFT
            ; =>done
        );
    }
}

/// The inline abandonment (`Backend::abandon`) of the identifier in host register `id`:
/// steps B1, B2, B4 and B5 for an array in its slot, which is what nearly every
/// abandonment is; `slow` (having changed nothing) for anything else, for the routine to
/// try all of it. B1's test of `active` is folded into the length's: an inactive entry has
/// length 0. With `check_ids`, the table is bounded and the identifier is checked first
/// against its length and the slab's (B1's and B2's tests of the identifier; without,
/// every identifier has an entry and a slot). Clobbers x9..x11, x14..x16.
pub(super) fn abandon_inline(
    ops: &mut Ops,
    id: u8,
    check_ids: bool,
    counts: bool,
    slow: DynamicLabel,
) {
    // B1. Not array 0; below the table's length; active with 1..=SLOT_CAPACITY words.
    asm!(ops ; cbz W(id), =>slow);
    if check_ids {
        for bound in [IDS, SLAB_IDS] {
            asm!(ops
                ; ldr w9, [x28, bound]
                ; cmp W(id), w9
                ; b.hs =>slow
            );
        }
    }
    asm!(ops
        ; ubfiz x10, X(id), SLOT_SHIFT, 32
        ; add x10, x10, x18                   // x10 = the slot
        ; ldr w11, [x10, SLOT_LEN_AT]
        ; sub w9, w11, 1
        ; cmp w9, SLOT_CAPACITY - 1
        ; b.hi =>slow
    );
    // B2. In its slot: push the identifier, unless `free_ids` is full.
    asm!(ops
        ; ldr w14, [x28, FREE_LEN]
        ; ldr w15, [x28, FREE_CAP]
        ; cmp w14, w15
        ; b.hs =>slow
        ; ldr x16, [x28, FREE_PTR]
        ; str W(id), [x16, x14, lsl 2]
        ; add w14, w14, 1
        ; str w14, [x28, FREE_LEN]
        ; str wzr, [x10, SLOT_LEN_AT]
    );
    release_entry(ops, counts);
}

/// Steps B4 and B5, as `Heap::abandon_fast` ends: the entry at x10 (a slot's descriptor or
/// a table entry) becomes inactive, and
/// with `counts` the abandonment is counted (clobbers x9).
fn release_entry(ops: &mut Ops, counts: bool) {
    // B4. The entry becomes inactive.
    load_x(ops, 9, ENTRY_FREE_BASE);
    asm!(ops
        ; str x9, [x10, BASE]
        ; str xzr, [x10, LEN]
    );
    // B5. Count it.
    if counts {
        bump(ops, 9, HEAP_ABANDONMENTS, true);
        bump(ops, 9, HEAP_LIVE, false);
    }
}

/// Add 1 to (`up`) or take 1 from the heap's 64-bit counter at `field`, leaving its new
/// value in x`reg`.
fn bump(ops: &mut Ops, reg: u8, field: i32, up: bool) {
    let at = field as u32;
    asm!(ops ; ldr X(reg), [x28, at]);
    match up {
        true => asm!(ops ; add XSP(reg), XSP(reg), 1),
        false => asm!(ops ; sub XSP(reg), XSP(reg), 1),
    }
    asm!(ops ; str X(reg), [x28, at]);
}

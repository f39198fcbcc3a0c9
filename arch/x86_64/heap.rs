//! The heap's fast paths in x86-64 machine code: a transcription of `Heap::alloc_fast` and
//! `Heap::abandon_fast` (`src/memory/alloc.rs`), step by step (A1..A6, B1..B5), on the
//! fields named in `memory::layout`: in the routines, and inline (an allocation of a
//! constant size, an abandonment of an array in its slot). r14 is the heap.

use super::encode::{self as enc, Alu, Mem};
use super::regs::{R14, RAX, RCX, RDX, RSI};
use super::{Ops, d8};
use crate::memory::SMALL_MAX;
use crate::memory::layout::*;
use crate::memory::{SLOT_CAPACITY, SLOT_WORDS, Stack};
use dynasmrt::{DynamicLabel, DynasmApi, DynasmLabelApi};

/// `free_ids`: its pointer, length and capacity.
const FREE_PTR: i8 = d8(HEAP_FREE_IDS + STACK_PTR);
const FREE_LEN: i8 = d8(HEAP_FREE_IDS + STACK_LEN);
const FREE_CAP: i8 = d8(HEAP_FREE_IDS + STACK_CAP);
const ENTRIES: i8 = d8(HEAP_ENTRIES);
const IDS: i8 = d8(HEAP_IDS);
const SLAB: i8 = d8(HEAP_SLAB);
const SLAB_IDS: i8 = d8(HEAP_SLAB_IDS);
const ALLOCATIONS: i8 = d8(HEAP_ALLOCATIONS);
const ABANDONMENTS: i8 = d8(HEAP_ABANDONMENTS);
const LIVE: i8 = d8(HEAP_LIVE);
const PEAK_LIVE: i8 = d8(HEAP_PEAK_LIVE);
const BASE: i8 = d8(ENTRY_BASE);
const LEN: i8 = d8(ENTRY_LEN);
const ACTIVE: i8 = d8(ENTRY_ACTIVE);
/// `small[n]` is at `HEAP_SMALL + (n << SMALL_SHIFT)`.
const SMALL_SHIFT: i8 = STACK_SIZE.trailing_zeros() as i8;
const _: () = assert!(std::mem::size_of::<Stack<*mut u32>>() == 1 << SMALL_SHIFT);
const SMALL_PTR: i32 = HEAP_SMALL + STACK_PTR;
const SMALL_LEN: i32 = HEAP_SMALL + STACK_LEN;
const SMALL_CAP: i32 = HEAP_SMALL + STACK_CAP;
/// The allocation routine fills a slot with four 8-byte stores, the last one ending in the
/// length word.
const _: () = assert!(SLOT_WORDS == 8 && SLOT_LEN == 28);

/// The allocation routine's fast path, `Heap::alloc_fast` with the size in esi: returns
/// the identifier in eax with carry clear, or falls through (having changed nothing) to the
/// call into Rust that follows. Clobbers rax, rcx, rdx, rdi.
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
        ; lea eax, [rsi - 1]
    );
    enc::alu_ri(ops, Alu::Cmp, RAX, (SLOT_CAPACITY - 1) as i32);
    asm!(ops
        ; ja =>buffers
    );
    pop_slot(ops, fresh, Some(buffers));
    asm!(ops
        ; mov rdi, rax                            // rdi = its slot
        ; jmp =>fill_slot
        // A3. No recycled identifier: the next never-used one, below `fresh_end`, with
        //     its slot charged within the limit.
        ; =>fresh
        ; mov edx, [BYTE r14 + IDS]
        ; cmp edx, [r14 + HEAP_FRESH_END]
        ; jae =>slow
        ; mov rax, [r14 + HEAP_USED_BYTES]
    );
    enc::alu64_ri(ops, Alu::Add, RAX, FRESH_BYTES as i32);
    asm!(ops
        ; cmp rax, [r14 + HEAP_LIMIT_BYTES]
        ; ja =>slow
        ; mov [r14 + HEAP_USED_BYTES], rax
        ; lea eax, [rdx + 1]
        ; mov [BYTE r14 + IDS], eax
        ; mov eax, edx
        ; shl rax, SLOT_SHIFT as i8
        ; add rax, [BYTE r14 + SLAB]
        ; mov rdi, rax                            // rdi = its slot (on into A4)
        // A4 in a slot: zero it whole, its last unit holding the length word (four
        //     stores, no loop: the words beyond the length are never read).
        ; =>fill_slot
        ; xor ecx, ecx
        ; mov [rdi], rcx
        ; mov [BYTE rdi + 8], rcx
        ; mov [BYTE rdi + 16], rcx
        ; mov ecx, esi
        ; shl rcx, 32
        ; mov [BYTE rdi + 24], rcx
        ; jmp =>counted
        // A2. At most SMALL_MAX words, a cached buffer of that size and a recycled
        //     identifier: pop both.
        ; =>buffers
    );
    enc::alu_ri(ops, Alu::Cmp, RSI, SMALL_MAX as i32);
    asm!(ops
        ; ja =>slow
        ; mov eax, esi
        ; shl eax, SMALL_SHIFT                    // rax = offset of small[n] from small[0]
        ; mov ecx, [r14 + rax + SMALL_LEN]
        ; test ecx, ecx
        ; jz =>slow
        ; mov edx, [BYTE r14 + FREE_LEN]
        ; test edx, edx
        ; jz =>slow
        ; dec ecx
        ; mov [r14 + rax + SMALL_LEN], ecx
        ; mov rdi, [r14 + rax + SMALL_PTR]
        ; mov rdi, [rdi + rcx * 8]                // rdi = the buffer
        ; dec edx
        ; mov [BYTE r14 + FREE_LEN], edx
        ; mov rax, [BYTE r14 + FREE_PTR]
        ; mov edx, [rax + rdx * 4]                // edx = the identifier
        // A4. Zero the words in whole 8-byte units.
        ; =>fill
        ; lea ecx, [rsi + 1]
        ; shr ecx, 1
        ; jz =>zeroed
        ; =>zero_loop
        ; mov QWORD [rdi + rcx * 8 - 8], 0
        ; dec ecx
        ; jnz =>zero_loop
        ; =>zeroed
    );
    // A5. A buffer's entry: base, length, active.
    entry_of(ops, RDX, RAX, true);
    asm!(ops
        ; mov [BYTE rax + BASE], rdi
        ; mov [BYTE rax + LEN], esi
        ; mov DWORD [BYTE rax + ACTIVE], 1
        ; =>counted
    );
    // A6. Count it.
    if counts {
        count_alloc(ops);
    }
    asm!(ops
        ; mov eax, edx
        ; clc
        ; ret
        ; =>slow
    );
}

/// Step A6 (when generated code counts): count a new array as `Heap::alloc_fast` does:
/// allocations, live arrays and their peak (clobbers rax).
pub(super) fn count_alloc(ops: &mut Ops) {
    let no_peak = ops.new_dynamic_label();
    asm!(ops
        ; inc QWORD [BYTE r14 + ALLOCATIONS]
        ; mov rax, [BYTE r14 + LIVE]
        ; inc rax
        ; mov [BYTE r14 + LIVE], rax
        ; cmp rax, [BYTE r14 + PEAK_LIVE]
        ; jbe =>no_peak
        ; mov [BYTE r14 + PEAK_LIVE], rax
        ; =>no_peak
    );
}

/// The abandonment routine's fast path, `Heap::abandon_fast` with the identifier in esi:
/// returns with carry clear, or falls through (having changed nothing) to the call into
/// Rust that follows (faults included). Clobbers rax, rcx, rdx, rdi.
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
        ; test esi, esi
        ; jz =>slow
        ; cmp esi, [BYTE r14 + IDS]
        ; jae =>slow
        ; mov eax, esi
        ; cmp esi, [BYTE r14 + SLAB_IDS]
        ; jae =>table
        ; shl rax, SLOT_SHIFT as i8
        ; add rax, [BYTE r14 + SLAB]         // rax = the slot
    );
    enc::alu32_mi(ops, Alu::Cmp, Mem::at(RAX, SLOT_LEN), 0);
    asm!(ops
        ; je =>described
        // B2. In its slot: push the identifier, unless `free_ids` is full.
        ; mov edx, [BYTE r14 + FREE_LEN]
        ; cmp edx, [BYTE r14 + FREE_CAP]
        ; jae =>slow
        ; mov DWORD [BYTE rax + SLOT_LEN as i8], 0
        ; jmp =>free
        ; =>table
        ; shl rax, ENTRY_SHIFT as i8
        ; add rax, [BYTE r14 + ENTRIES]      // rax = the entry
        ; =>described
    );
    enc::alu32_mi(ops, Alu::Cmp, Mem::at(RAX, ACTIVE.into()), 0);
    asm!(ops
        ; je =>slow
        ; mov ecx, [BYTE rax + LEN]
        ; lea edx, [rcx - 1]
    );
    enc::alu_ri(ops, Alu::Cmp, RDX, (SMALL_MAX - 1) as i32);
    asm!(ops
        ; ja =>slow
        // B3. Else push the identifier and the buffer on `small[n]`, unless either stack
        //     is full.
        ; shl ecx, SMALL_SHIFT                    // rcx = offset of small[n] from small[0]
        ; mov edx, [BYTE r14 + FREE_LEN]
        ; cmp edx, [BYTE r14 + FREE_CAP]
        ; jae =>slow
        ; mov edi, [r14 + rcx + SMALL_LEN]
        ; cmp edi, [r14 + rcx + SMALL_CAP]
        ; jae =>slow
        ; lea edi, [rdi + 1]
        ; mov [r14 + rcx + SMALL_LEN], edi
        ; mov rcx, [r14 + rcx + SMALL_PTR]
        ; lea rcx, [rcx + rdi * 8 - 8]            // rcx = the buffer stack's new top
        ; mov rdi, [BYTE rax + BASE]
        ; mov [rcx], rdi
        ; =>free                                  // (edx = free_ids.len)
        ; mov rcx, [BYTE r14 + FREE_PTR]
        ; mov [rcx + rdx * 4], esi
        ; inc edx
        ; mov [BYTE r14 + FREE_LEN], edx
    );
    release_entry(ops, counts);
    asm!(ops
        ; xor eax, eax
        ; ret
        ; =>slow
    );
}

/// The inline allocation of a constant `words` (`Backend::alloc_small`): steps A1 or A2 as
/// far as the constant decides them, then A4..A6, leaving the identifier in edx; `slow`
/// (having changed nothing) when the step cannot be taken, for the routine to try all of
/// it. Clobbers rax, rcx, rdx.
pub(super) fn alloc_inline(
    ops: &mut Ops,
    words: u32,
    check_ids: bool,
    counts: bool,
    slow: DynamicLabel,
) {
    debug_assert!((1..=SMALL_MAX as u32).contains(&words));
    if words <= SLOT_CAPACITY {
        // With the whole-space table every identifier has a slot.
        pop_slot(ops, slow, check_ids.then_some(slow));
    } else {
        // A2. A cached buffer of exactly this size and a recycled identifier.
        let len_at = heap_small(words) + STACK_LEN;
        let ptr_at = heap_small(words) + STACK_PTR;
        asm!(ops
            ; mov ecx, [r14 + len_at]
            ; test ecx, ecx
            ; jz =>slow
            ; mov edx, [BYTE r14 + FREE_LEN]
            ; test edx, edx
            ; jz =>slow
            ; dec ecx
            ; mov [r14 + len_at], ecx
            ; mov rax, [r14 + ptr_at]
            ; mov rax, [rax + rcx * 8]            // rax = the buffer
            ; dec edx
            ; mov [BYTE r14 + FREE_LEN], edx
            ; mov rcx, [BYTE r14 + FREE_PTR]
            ; mov edx, [rcx + rdx * 4]            // edx = the identifier
        );
    }
    // A4. Zero the words in whole 8-byte units; in a slot, then its length word.
    zero_units(ops, words.div_ceil(2));
    if words <= SLOT_CAPACITY {
        asm!(ops ; mov DWORD [BYTE rax + SLOT_LEN as i8], words as i32);
    } else {
        // A5. A buffer's entry, base then length and active in one store.
        entry_of(ops, RDX, RCX, check_ids);
        asm!(ops
            ; mov [BYTE rcx + BASE], rax
            ; mov rax, QWORD entry_len_active(words) as i64
            ; mov [BYTE rcx + LEN], rax
        );
    }
    // A6. Count it.
    if counts {
        count_alloc(ops);
    }
}

/// Step A4: zero `units` 8-byte units from rax (clobbers rcx).
fn zero_units(ops: &mut Ops, units: u32) {
    asm!(ops ; xor ecx, ecx);
    for unit in 0..units as i32 {
        match i8::try_from(8 * unit) {
            Ok(d) => asm!(ops ; mov [BYTE rax + d], rcx),
            Err(_) => asm!(ops ; mov [rax + 8 * unit], rcx),
        }
    }
}

/// Step A1 once the size is known to fit in a slot: pop the identifier on top of
/// `free_ids` into edx and its slot into rax; having changed nothing, go to `empty` when
/// there is none or to `no_slot` when it has no slot (`None`: every identifier has one).
/// Clobbers rcx.
fn pop_slot(ops: &mut Ops, empty: DynamicLabel, no_slot: Option<DynamicLabel>) {
    asm!(ops
        ; mov edx, [BYTE r14 + FREE_LEN]
        ; test edx, edx
        ; jz =>empty
        ; mov rax, [BYTE r14 + FREE_PTR]
        ; mov ecx, [rax + rdx * 4 - 4]
    );
    if let Some(no_slot) = no_slot {
        asm!(ops
            ; cmp ecx, [BYTE r14 + SLAB_IDS]
            ; jae =>no_slot
        );
    }
    asm!(ops
        ; dec edx
        ; mov [BYTE r14 + FREE_LEN], edx
        ; mov edx, ecx                        // edx = the identifier
        ; shl rcx, SLOT_SHIFT as i8
        ; mov rax, [BYTE r14 + SLAB]
        ; add rax, rcx                        // rax = its slot
    );
}

/// `at` := where the entry of the identifier in the 32-bit register `id` is: its slot's
/// descriptor, or, when `bounded` and the identifier has no slot, its table entry.
fn entry_of(ops: &mut Ops, id: u8, at: u8, bounded: bool) {
    let table = ops.new_dynamic_label();
    let done = ops.new_dynamic_label();
    enc::mov_rr(ops, at, id);
    if bounded {
        enc::cmp_rm(ops, id, Mem::at(R14, SLAB_IDS.into()));
        asm!(ops ; jae =>table);
    }
    enc::shl64_ri(ops, at, SLOT_SHIFT as u8);
    enc::add64_rm(ops, at, Mem::at(R14, SLAB.into()));
    if bounded {
        asm!(ops ; jmp =>done ; =>table);
        enc::shl64_ri(ops, at, ENTRY_SHIFT as u8);
        enc::add64_rm(ops, at, Mem::at(R14, ENTRIES.into()));
        asm!(ops ; =>done);
    }
}

/// The inline abandonment (`Backend::abandon`) of the identifier in host register `id`:
/// steps B1, B2, B4 and B5 for an array in its slot, which is what nearly every
/// abandonment is; `slow` (having changed nothing) for anything else, for the routine to
/// try all of it. B1's test of `active` is folded into the length's: an inactive entry has
/// length 0. With `check_ids`, the table is bounded and the identifier is checked first
/// against its length and the slab's (B1's and B2's tests of the identifier; without,
/// every identifier has an entry and a slot). Clobbers rax, rcx, rdx.
pub(super) fn abandon_inline(
    ops: &mut Ops,
    id: u8,
    check_ids: bool,
    counts: bool,
    slow: DynamicLabel,
) {
    // B1. Not array 0; below the table's length; active with 1..=SLOT_CAPACITY words.
    enc::test_rr(ops, id, id);
    asm!(ops ; jz =>slow);
    if check_ids {
        for bound in [IDS, SLAB_IDS] {
            enc::cmp_rm(ops, id, Mem::at(R14, bound.into()));
            asm!(ops ; jae =>slow);
        }
    }
    enc::mov_rr(ops, RAX, id);
    asm!(ops
        ; shl rax, SLOT_SHIFT as i8
        ; add rax, [BYTE r14 + SLAB]             // rax = the slot
        ; mov ecx, [BYTE rax + SLOT_LEN as i8]
        ; dec ecx
    );
    enc::alu_ri(ops, Alu::Cmp, RCX, (SLOT_CAPACITY - 1) as i32);
    asm!(ops
        ; ja =>slow
    );
    // B2. In its slot: push the identifier, unless `free_ids` is full.
    asm!(ops
        ; mov ecx, [BYTE r14 + FREE_LEN]
        ; cmp ecx, [BYTE r14 + FREE_CAP]
        ; jae =>slow
        ; mov rdx, [BYTE r14 + FREE_PTR]
    );
    enc::store(ops, Mem::indexed(RDX, RCX, 4, 0), id);
    asm!(ops
        ; inc ecx
        ; mov [BYTE r14 + FREE_LEN], ecx
        ; mov DWORD [BYTE rax + SLOT_LEN as i8], 0
    );
    release_entry(ops, counts);
}

/// Steps B4 and B5, as `Heap::abandon_fast` ends: the entry at rax (a slot's descriptor or
/// a table entry) becomes inactive, and with `counts` the abandonment is counted.
fn release_entry(ops: &mut Ops, counts: bool) {
    // B4. The entry becomes inactive.
    asm!(ops
        ; mov QWORD [BYTE rax + BASE], ENTRY_FREE_BASE as i32
        ; mov QWORD [BYTE rax + LEN], 0
    );
    // B5. Count it.
    if counts {
        asm!(ops
            ; inc QWORD [BYTE r14 + ABANDONMENTS]
            ; dec QWORD [BYTE r14 + LIVE]
        );
    }
}

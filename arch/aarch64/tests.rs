//! AArch64 encodings checked against the Arm ARM by hand; these run on any host.
use super::A64;
use crate::assembler::assemble;
use crate::backend::{ArrayUse, Backend, BinOp, Val};
use crate::discoverer::discover;
use crate::translator::{Options, translate};

const BASE: usize = 0x40_0000;

fn emitter() -> A64 {
    let (_, routines) = A64::routines(BASE - 0x1000, true);
    A64::new(BASE, &routines, false)
}

fn finish(e: A64) -> Vec<u8> {
    e.finish().expect("assembles")
}

fn words(code: &[u8]) -> Vec<u32> {
    assert!(code.len().is_multiple_of(4));
    code.chunks(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Allocation and abandonment fall through on their fast paths: the calls into their
/// routines (`bl`), for when a fast path gives up, come after the block's code (after what
/// the block emits last, here a fault stub), and each goes back (`b`) to where its fast
/// path ends.
#[test]
fn fast_paths_fall_through_and_their_routine_calls_come_last() {
    let mut e = emitter();
    let [alloc_end, abandon_end, stub_end] = crate::backend::emit_fast_paths(&mut e);
    let code = words(&finish(e));
    // b imm26 is 0b000101, bl imm26 0b100101, in the top six bits.
    let (b, bl) = (0x1400_0000u32, 0x9400_0000u32);
    let kind = |w: u32| w & 0xFC00_0000;
    for (n, &w) in code[..stub_end / 4].iter().enumerate() {
        assert!(
            kind(w) != b && kind(w) != bl,
            "+{:#x}: {w:#010x} in the block's code",
            4 * n
        );
    }
    let rest = &code[stub_end / 4..];
    assert_eq!(
        rest.iter().filter(|&&w| kind(w) == bl).count(),
        2,
        "one call per fast path, after the block"
    );
    let backs: Vec<usize> = rest
        .iter()
        .enumerate()
        .filter(|&(_, &w)| kind(w) == b)
        .map(|(n, &w)| {
            let at = stub_end + 4 * n;
            // imm26, signed, in words.
            let delta = (((w & 0x03FF_FFFF) << 6) as i32 >> 6) * 4;
            (at as i64 + delta as i64) as usize
        })
        .collect();
    assert_eq!(
        backs,
        [alloc_end, abandon_end],
        "each goes back after its fast path"
    );
}

#[test]
fn arithmetic_encodings() {
    let mut e = emitter();
    e.binop(BinOp::Add, 0, Val::Reg(1), Val::Reg(2)); // add w19, w20, w21
    e.binop(BinOp::Mul, 0, Val::Reg(1), Val::Reg(2)); // mul w19, w20, w21
    e.binop(BinOp::Nand, 0, Val::Reg(1), Val::Reg(2)); // and w19, w20, w21; mvn w19, w19
    assert_eq!(
        words(&finish(e)),
        [0x0B15_0293, 0x1B15_7E93, 0x0A15_0293, 0x2A33_03F3]
    );
}

#[test]
fn constants_take_one_instruction_when_one_does() {
    let mut e = emitter();
    e.load_imm(0, 0x1234_5678); // movz w19, #0x5678; movk w19, #0x1234, lsl 16
    e.load_imm(0, 0x0000_0042); // movz w19, #0x42
    e.load_imm(0, 0xFFFF_0000); // movz w19, #0xffff, lsl 16
    e.load_imm(0, 0xFFFF_FFFD); // movn w19, #2
    e.load_imm(0, 0xEDCB_FFFF); // movn w19, #0x1234, lsl 16
    e.load_imm(0, 0xFF00_FF00); // orr w19, wzr, #0xff00ff00
    assert_eq!(
        words(&finish(e)),
        [
            0x528A_CF13,
            0x72A2_4693,
            0x5280_0853,
            0x52BF_FFF3,
            0x1280_0053,
            0x12A2_4693,
            0x3208_9FF3
        ]
    );
}

#[test]
fn constant_operands_are_immediates_when_they_encode() {
    let mut e = emitter();
    e.binop(BinOp::Add, 0, Val::Reg(1), Val::Imm(5)); // add w19, w20, #5
    e.binop(BinOp::Add, 0, Val::Imm(3u32.wrapping_neg()), Val::Reg(1)); // sub w19, w20, #3
    e.binop(BinOp::Add, 0, Val::Reg(1), Val::Imm(0x12_3000)); // add w19, w20, #0x123, lsl 12
    e.binop(BinOp::Add, 0, Val::Reg(1), Val::Imm(0xFFFF_F000)); // sub w19, w20, #1, lsl 12
    e.binop(BinOp::And, 0, Val::Reg(1), Val::Imm(0xFF)); // and w19, w20, #0xff
    e.binop(BinOp::Nand, 0, Val::Reg(1), Val::Imm(0xFFFF_FFF0)); // and w19, w20, #..f0; mvn
    e.binop(BinOp::Nand, 0, Val::Reg(1), Val::Reg(1)); // mvn w19, w20
    e.binop(BinOp::Add, 0, Val::Reg(1), Val::Imm(0x1001)); // movz w10, #0x1001; add
    e.binop(BinOp::And, 0, Val::Reg(1), Val::Imm(0x5)); // movz w10, #5; and (0b101: no)
    let label = e.new_label();
    e.branch_eq(0, 3u32.wrapping_neg(), label); // cmn w19, #3; b.eq
    e.branch_and(0, Val::Imm(1), label); // tst w19, #1; b.ne
    e.bind(label);
    let w = words(&finish(e));
    assert_eq!(
        w[..13],
        [
            0x1100_1693,
            0x5100_0E93,
            0x1144_8E93,
            0x5140_0693,
            0x1200_1E93,
            0x121C_6E93,
            0x2A33_03F3,
            0x2A34_03F3,
            0x5282_002A,
            0x0B0A_0293,
            0x5280_00AA,
            0x0A0A_0293,
            0x3100_0E7F,
        ]
    );
    assert_eq!(w[14], 0x7200_027F, "tst w19, #1");
}

#[test]
fn division_checks_for_zero_then_udiv() {
    let mut e = emitter();
    let fail = e.new_label();
    e.div(0, Val::Reg(1), Val::Reg(2), Some(fail)); // cbz w21, fail; udiv w19, w20, w21
    e.bind(fail);
    assert_eq!(words(&finish(e)), [0x3400_0055, 0x1AD5_0A93]);
}

/// index r0, r1, k through register pair 1 (x6/w7), uncached, with the table of the whole
/// identifier space (`check_ids` false) or a bounded one.
fn index_r1_at(k: u32, check_ids: bool) -> Vec<u32> {
    index_r1(k, check_ids, false)
}

/// As [`index_r1_at`], with the prefetch that regions ask for, or without.
fn index_r1(k: u32, check_ids: bool, prefetch: bool) -> Vec<u32> {
    let (_, routines) = A64::routines(BASE - 0x1000, true);
    let mut e = A64::new(BASE, &routines, check_ids);
    let fail = e.new_label();
    let arr = ArrayUse {
        pair: 1,
        cached: false,
        checked: false,
        prefetch,
    };
    e.index(0, Val::Reg(1), Val::Imm(k), arr, fail);
    e.bind(fail);
    words(&finish(e))
}

/// ubfiz x6, x20, #5, #32: the slot of identifier r1 (w20), from it alone.
const SLOT_OF_R1: u32 = 0xD37B_7E86;
/// ldr w7, [x6, #8] and ldr x6, [x6]: the descriptor at the slot's start.
const DESCRIPTOR: [u32; 2] = [0xB940_08C7, 0xF940_00C6];
/// ldr w7, [x9, #8] and ldr x6, [x9]: a table entry.
const TABLE_ENTRY: [u32; 2] = [0xB940_0927, 0xF940_0126];

#[test]
fn index_through_a_slot_its_length_word_and_its_descriptor() {
    assert_eq!(crate::memory::layout::SLOT_LEN, 28);
    // Any offset, also one beyond a slot's capacity: an array in its slot is told by the
    // length word, never by what the descriptor's place holds (its words).
    for k in [3, crate::memory::SLOT_CAPACITY] {
        let w = index_r1_at(k, false);
        assert_eq!(w[0], SLOT_OF_R1);
        let at = w.iter().position(|&x| x == 0xB940_1CC7);
        let at = at.expect("ldr w7, [x6, #28]: the slot's length word");
        // One compare with the offset: in the slot and in bounds.
        assert_eq!(w[at + 1], 0x7100_00FF | k << 10, "cmp w7, #k");
        assert_eq!(w[at + 2] & 0xFF00_001F, 0x5400_0008, "b.hi: to the load");
        // Else a length word that is not zero means out of bounds.
        assert_eq!(w[at + 3] & 0xFF00_001F, 0x3500_0007, "cbnz w7: fail");
        assert_eq!(w[at + 4..at + 6], DESCRIPTOR, "else the descriptor");
        // Then the offset against the descriptor's length.
        assert_eq!(w[at + 6], 0x7100_00FF | k << 10, "cmp w7, #k");
        assert_eq!(w[at + 7] & 0xFF00_001F, 0x5400_0009, "b.ls: fail");
        assert!(!w.contains(&TABLE_ENTRY[0]), "no table entry");
        // The element is loaded through x6: ldr w19, [x6, #4k].
        assert_eq!(*w.last().unwrap(), 0xB940_00D3 | k << 10);
    }
}

/// Offset 0 is in bounds of any array that is not empty: the length word, then the
/// descriptor's length, is tested for zero (`cbnz`, `cbz`) instead of compared.
#[test]
fn index_at_offset_zero_tests_the_length_for_zero() {
    let w = index_r1_at(0, false);
    assert_eq!(w[0], SLOT_OF_R1);
    let at = w.iter().position(|&x| x == 0xB940_1CC7);
    let at = at.expect("ldr w7, [x6, #28]: the slot's length word");
    assert_eq!(w[at + 1] & 0xFF00_001F, 0x3500_0007, "cbnz w7: to the load");
    assert_eq!(w[at + 2..at + 4], DESCRIPTOR, "else the descriptor");
    assert_eq!(w[at + 4] & 0xFF00_001F, 0x3400_0007, "cbz w7: fail");
    assert!(
        !w.iter().any(|&x| x & 0xFF00_001F == 0x7100_001F),
        "no compare with an immediate: {w:x?}"
    );
    assert_eq!(*w.last().unwrap(), 0xB940_00D3, "ldr w19, [x6]");
}

#[test]
fn holding_an_array_looks_it_up_as_an_access_does_or_copies_the_other_pair() {
    let mut e = emitter();
    assert!(e.may_hold_arrays());
    e.hold_array(Val::Reg(1), 1, None);
    let lookup = words(&finish(e));
    // A region's access through pair 1 makes the same lookup, prefetches included: the
    // same code up to the slot's length word (ldr w7, [x6, #28]), where the access also
    // compares the offset; then the same descriptor and prefetch of its buffer (from the
    // descriptor on, where the hold ends; branches aside, whose distances differ).
    let access = index_r1(3, false, true);
    let word = lookup.iter().position(|&x| x == 0xB940_1CC7);
    let word = word.expect("the slot's length word") + 1;
    assert!(access.starts_with(&lookup[..word]), "{lookup:08x?}");
    let descriptor = lookup.iter().position(|&x| x == DESCRIPTOR[0]);
    let descriptor: Vec<u32> = lookup[descriptor.expect("the descriptor")..]
        .iter()
        .filter(|&&x| x & 0xFF00_0010 != 0x5400_0000)
        .copied()
        .collect();
    assert!(descriptor.len() > 4);
    assert!(
        descriptor.iter().all(|x| access.contains(x)),
        "{access:08x?}"
    );
    let mut e = emitter();
    e.hold_array(Val::Reg(1), 0, Some(1));
    e.hold_array(Val::Reg(1), 1, Some(0));
    assert_eq!(
        words(&finish(e)),
        [
            0xAA06_03EC, // mov x12, x6
            0x2A07_03ED, // mov w13, w7
            0xAA0C_03E6, // mov x6, x12
            0x2A0D_03E7, // mov w7, w13
        ]
    );
    // With a bounded table a lookup may fail: no array is held then.
    let (_, routines) = A64::routines(BASE - 0x1000, true);
    assert!(!A64::new(BASE, &routines, true).may_hold_arrays());
}

#[test]
fn a_region_prefetches_the_buffer_cut_two_before_an_arrays_own() {
    assert_eq!(crate::memory::layout::PREFETCH_MAX_LEN, 64);
    let w = index_r1(3, false, true);
    let at = w.windows(2).position(|p| p == DESCRIPTOR);
    let at = at.expect("the descriptor") + 2;
    // cmp w7, #64; b.hi (past)
    assert_eq!(w[at], 0x7101_00FF);
    assert_eq!(w[at + 1] & 0xFF00_001F, 0x5400_0008);
    // add w9, w7, #1; and w9, w9, #0xfffffffe; neg x9, x9, lsl #3; prfm pldl1keep, [x6, x9]
    assert_eq!(
        w[at + 2..at + 6],
        [0x1100_04E9, 0x121F_7929, 0xCB09_0FE9, 0xF8A9_68C0]
    );
    // A baseline block's access has none.
    assert!(!index_r1(3, false, false).contains(&0xF8A9_68C0));
}

#[test]
fn a_region_prefetches_the_cache_line_after_the_slot() {
    assert_eq!(crate::memory::layout::SLOT_PREFETCH_AHEAD, 64);
    // prfum pldl1keep, [x6, #64], then the slot's length word: ldr w7, [x6, #28].
    const PRFM: u32 = 0xF884_00C0;
    for check_ids in [false, true] {
        let w = index_r1(3, check_ids, true);
        let at = w.iter().position(|&x| x == PRFM).expect("the prefetch");
        assert_eq!(w[at + 1], 0xB940_1CC7);
    }
    // A baseline block's access has none.
    assert!(!index_r1(3, false, false).contains(&PRFM));
}

/// An `ldr` (32 or 64 bits, unsigned offset) from the heap (x28).
fn loads_from_heap(x: u32) -> bool {
    x & 0xBFC0_03E0 == 0xB940_0380
}

/// The slots' base lives in x18 (see `regs`): an access through a slot adds it to the
/// slot's offset and loads nothing from the heap.
#[test]
fn a_slot_access_adds_the_slab_base_held_in_x18() {
    for prefetch in [false, true] {
        let w = index_r1(3, false, prefetch);
        assert_eq!(w[..2], [SLOT_OF_R1, 0x8B12_00C6], "add x6, x6, x18: {w:x?}");
        assert!(!w.iter().any(|&x| loads_from_heap(x)), "{w:x?}");
    }
}

/// x18 holds the slots' base whenever generated code runs: `enter` loads it, and every call
/// into Rust loads it again after the call returns.
#[test]
fn entering_and_every_call_into_rust_load_the_slab_base_into_x18() {
    let (code, routines) = A64::routines(BASE, true);
    let w = words(&code);
    let slab = crate::memory::layout::HEAP_SLAB as u32;
    let load_x18 = 0xF940_0000 | (slab / 8) << 10 | 28 << 5 | 18;
    let enter = (routines.enter - BASE) / 4;
    let br_x1 = enter
        + w[enter..]
            .iter()
            .position(|&x| x == 0xD61F_0020)
            .expect("br x1");
    assert!(w[enter..br_x1].contains(&load_x18), "enter: {w:x?}");
    let blr_x16 = 0xD63F_0200;
    let calls: Vec<usize> = (0..w.len()).filter(|&i| w[i] == blr_x16).collect();
    assert_eq!(calls.len(), crate::runtime::RtFn::COUNT);
    for i in calls {
        assert_eq!(w[i + 1], load_x18, "after the call at word {i}");
    }
    assert_eq!(
        w.iter().filter(|&&x| x == load_x18).count(),
        1 + crate::runtime::RtFn::COUNT
    );
}

#[test]
fn index_with_a_bounded_table_checks_the_identifier_then_takes_slot_or_entry() {
    let w = index_r1_at(3, true);
    // cmp w20, w11: against the table's length, then against the slab's.
    assert_eq!(w.iter().filter(|&&x| x == 0x6B0B_029F).count(), 2);
    assert!(w.contains(&SLOT_OF_R1));
    assert!(w.windows(2).any(|p| p == DESCRIPTOR));
    assert!(w.windows(2).any(|p| p == TABLE_ENTRY));
    assert_eq!(*w.last().unwrap(), 0xB940_0CD3);
}

#[test]
fn patched_branches() {
    // `b` forwards and backwards, in either half of the aligned word; the other half of
    // the word is kept.
    let old = 0xAAAA_AAAA_BBBB_BBBBu64;
    assert_eq!(
        A64::patch_jump(0x1000, old, 0x1000, 0x2000),
        0xAAAA_AAAA_1400_0400
    );
    assert_eq!(
        A64::patch_jump(0x2000, old, 0x2004, 0x1000),
        0x17FF_FBFF_BBBB_BBBB
    );
    // A patchable jump is one `b` to its stub.
    let mut e = emitter();
    let stub = e.new_label();
    let at = e.jump_patchable(stub);
    e.load_imm(0, 1);
    e.bind(stub);
    assert_eq!(at, 0);
    assert_eq!(words(&finish(e))[0], 0x1400_0002);
}

#[test]
fn whole_blocks_assemble() {
    // Every operator, two-way branches and exits, translated for this ISA.
    let program = assemble(
        "
            literal r1, 70000
            alloc r2, r1
            literal r3, 5
            amend r2, r3, r1
            index r4, r2, r3
            add r5, r4, r3
            mul r5, r5, r4
            div r6, r5, r3
            nand r7, r6, r5
            cmov r7, r6, r5
            input r0
            output r3
            abandon r2
            literal r0, 0
            amend r0, r3, r3
            literal r1, 30
            literal r2, 31
            cmov r1, r2, r4
            loadprog r0, r1
        ",
    )
    .unwrap();
    let run = discover(&program, 0, 256);
    for (chain, stats) in [(true, false), (false, true)] {
        let mut e = emitter();
        let opts = Options {
            chain,
            stats,
            budget: stats,
            count_ops: stats,
            hot: chain,
        };
        let t = translate(&mut e, &run, 7, opts, &|_| true, program.len() as u32);
        let code = finish(e);
        assert!(code.len() > 100 && code.len().is_multiple_of(4));
        if chain {
            assert_eq!(t.exits.len(), 2, "two-way branch: two patchable exits");
            let w = words(&code);
            for x in &t.exits {
                assert_eq!(w[x.jump_at / 4] >> 26, 0b000101, "exit is a `b`");
                assert!(x.stub_at.expect("chained exits have stubs") > x.jump_at);
            }
        }
    }
}

//! x86-64 encodings, checked by hand against the Intel SDM (and `objdump -M intel`); these
//! run on any host, except the decoding of the short encodings with iced-x86 (a dependency
//! of x86-64 builds only).
use super::X64;
use crate::assembler::assemble;
use crate::backend::{ArrayUse, Backend, BinOp, Val};
use crate::discoverer::discover;
use crate::translator::{Options, translate};

const BASE: usize = 0x40_0000;

fn emitter() -> X64 {
    let (_, routines) = X64::routines(BASE - 0x1000, true);
    X64::new(BASE, &routines, false)
}

fn finish(e: X64) -> Vec<u8> {
    e.finish().expect("assembles")
}

/// Whether `needle` occurs in `code`.
fn contains(code: &[u8], needle: &[u8]) -> bool {
    code.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn arithmetic_encodings() {
    let mut e = emitter();
    // r0 := r1 + r2 (ebx := ebp + r12d): one lea.
    e.binop(BinOp::Add, 0, Val::Reg(1), Val::Reg(2));
    // r0 := r1 + 5: one lea.
    e.binop(BinOp::Add, 0, Val::Reg(1), Val::Imm(5));
    // r0 := r1 nand r1: a move and a not.
    e.binop(BinOp::Nand, 0, Val::Reg(1), Val::Reg(1));
    // r0 := r2 nand r0: into r0 directly.
    e.binop(BinOp::Nand, 0, Val::Reg(2), Val::Reg(0));
    // r0 := r1 * r2: a move and a multiplication.
    e.binop(BinOp::Mul, 0, Val::Reg(1), Val::Reg(2));
    // r0 := 0x12345678.
    e.load_imm(0, 0x1234_5678);
    assert_eq!(
        finish(e),
        [
            0x42, 0x8D, 0x5C, 0x25, 0x00, // lea ebx, [rbp + r12]
            0x8D, 0x5D, 0x05, // lea ebx, [rbp + 5]
            0x89, 0xEB, // mov ebx, ebp
            0xF7, 0xD3, // not ebx
            0x44, 0x21, 0xE3, // and ebx, r12d
            0xF7, 0xD3, // not ebx
            0x89, 0xEB, // mov ebx, ebp
            0x41, 0x0F, 0xAF, 0xDC, // imul ebx, r12d
            0xBB, 0x78, 0x56, 0x34, 0x12, // mov ebx, 0x12345678
        ]
    );
}

/// An and (or nand) of a register and a constant goes into its register directly, with the
/// constant's short form when it fits, whichever operand the constant is.
#[test]
fn and_with_a_constant_goes_into_its_register() {
    let mut e = emitter();
    // r0 := r0 and 6: in place.
    e.binop(BinOp::And, 0, Val::Reg(0), Val::Imm(6));
    // r0 := r1 nand 0x100: a move, the and, a not.
    e.binop(BinOp::Nand, 0, Val::Reg(1), Val::Imm(0x100));
    // r0 := 0xff and r1 (the constant first).
    e.binop(BinOp::And, 0, Val::Imm(0xFF), Val::Reg(1));
    assert_eq!(
        finish(e),
        [
            0x83, 0xE3, 0x06, // and ebx, 6
            0x89, 0xEB, // mov ebx, ebp
            0x81, 0xE3, 0x00, 0x01, 0x00, 0x00, // and ebx, 0x100
            0xF7, 0xD3, // not ebx
            0x89, 0xEB, // mov ebx, ebp
            0x81, 0xE3, 0xFF, 0x00, 0x00, 0x00, // and ebx, 0xff
        ]
    );
}

#[test]
fn division_checks_for_zero_then_divides() {
    let mut e = emitter();
    let fail = e.new_label();
    e.div(0, Val::Reg(1), Val::Reg(2), Some(fail));
    e.bind(fail);
    assert_eq!(
        finish(e),
        [
            0x45, 0x85, 0xE4, // test r12d, r12d
            0x0F, 0x84, 0x09, 0x00, 0x00, 0x00, // je fail (+9)
            0x89, 0xE8, // mov eax, ebp
            0x31, 0xD2, // xor edx, edx
            0x41, 0xF7, 0xF4, // div r12d
            0x89, 0xC3, // mov ebx, eax
        ]
    );
}

/// index r0, r1, k through register pair 0 (rdi/esi), uncached, with the table of the
/// whole identifier space (`check_ids` false) or a bounded one.
fn index_r1_at(k: u32, check_ids: bool) -> Vec<u8> {
    index_r1(k, check_ids, false)
}

/// As [`index_r1_at`], with the prefetch that regions ask for, or without.
fn index_r1(k: u32, check_ids: bool, prefetch: bool) -> Vec<u8> {
    let (_, routines) = X64::routines(BASE - 0x1000, true);
    let mut e = X64::new(BASE, &routines, check_ids);
    let fail = e.new_label();
    let arr = ArrayUse {
        pair: 0,
        cached: false,
        checked: false,
        prefetch,
    };
    e.index(0, Val::Reg(1), Val::Imm(k), arr, fail);
    e.bind(fail);
    finish(e)
}

/// The table entry of the identifier in eax: shl rax, 4; add rax, [r14 + entries].
const TABLE_ENTRY: [u8; 8] = [
    0x48,
    0xC1,
    0xE0,
    0x04,
    0x49,
    0x03,
    0x46,
    crate::memory::layout::HEAP_ENTRIES as u8,
];

#[test]
fn index_through_a_slot_its_length_word_and_its_descriptor() {
    let slab = crate::memory::layout::HEAP_SLAB as u8;
    let len = crate::memory::layout::SLOT_LEN as u8;
    // Any offset, also one beyond a slot's capacity: an array in its slot is told by the
    // length word, never by what the descriptor's place holds (its words).
    for k in [3, crate::memory::SLOT_CAPACITY] {
        let code = index_r1_at(k, false);
        // The slot from the identifier alone: rdi := ebp << 5 + [r14 + slab].
        assert!(code.starts_with(&[0x89, 0xEF, 0x48, 0xC1, 0xE7, 0x05, 0x49, 0x03, 0x7E, slab]));
        // Its length word, and one compare with the offset: mov esi, [rdi + 28];
        // cmp esi, k; ja (in the slot and in bounds: to the load).
        let word = [0x8B, 0x77, len, 0x83, 0xFE, k as u8, 0x0F, 0x87];
        let at = code.windows(word.len()).position(|w| w == word);
        let at = at.expect("the length word, compared with the offset") + word.len() + 4;
        // Else a length word that is not zero means out of bounds: test esi, esi; jnz.
        assert_eq!(code[at..at + 4], [0x85, 0xF6, 0x0F, 0x85]);
        // Else the descriptor at the slot's start: mov esi, [rdi + 8]; mov rdi, [rdi];
        // then the offset against its length: cmp esi, k; jbe (fail).
        let descriptor = [
            0x8B, 0x77, 0x08, 0x48, 0x8B, 0x3F, 0x83, 0xFE, k as u8, 0x0F, 0x86,
        ];
        assert_eq!(code[at + 8..at + 8 + descriptor.len()], descriptor);
        // No table entry.
        assert!(!contains(&code, &TABLE_ENTRY));
        // The element is loaded through rdi: mov ebx, [rdi + 4k] (last), with no SIB byte
        // and a 1-byte displacement.
        assert!(code.ends_with(&[0x8B, 0x5F, 4 * k as u8]));
    }
}

/// prefetcht0 [rdi + rax].
const PREFETCH_RDI_RAX: [u8; 4] = [0x0F, 0x18, 0x0C, 0x07];

#[test]
fn a_region_prefetches_the_buffer_cut_two_before_an_arrays_own() {
    let max = crate::memory::layout::PREFETCH_MAX_LEN as u8;
    let code = index_r1(3, false, true);
    // After the descriptor (mov esi, [rdi + 8]; mov rdi, [rdi]): cmp esi, 64; ja (past);
    // lea eax, [rsi * 8 + 8]; and eax, -16; neg rax; prefetcht0 [rdi + rax].
    let mut seq = vec![
        0x8B, 0x77, 0x08, 0x48, 0x8B, 0x3F, 0x83, 0xFE, max, 0x0F, 0x87,
    ];
    assert!(contains(&code, &seq));
    seq = vec![
        0x8D, 0x04, 0xF5, 8, 0, 0, 0, 0x83, 0xE0, 0xF0, 0x48, 0xF7, 0xD8,
    ];
    seq.extend(PREFETCH_RDI_RAX);
    assert!(contains(&code, &seq));
    // A baseline block's access has none.
    assert!(!contains(
        &index_r1(3, false, false),
        &PREFETCH_RDI_RAX[..2]
    ));
}

#[test]
fn a_region_prefetches_the_cache_line_after_the_slot() {
    let slab = crate::memory::layout::HEAP_SLAB as u8;
    let len = crate::memory::layout::SLOT_LEN as u8;
    let ahead = crate::memory::layout::SLOT_PREFETCH_AHEAD as u8;
    // add rdi, [r14 + slab]; prefetcht0 [rdi + 64]; mov esi, [rdi + 28] (the length word).
    let seq = [
        0x49, 0x03, 0x7E, slab, 0x0F, 0x18, 0x4F, ahead, 0x8B, 0x77, len,
    ];
    assert!(contains(&index_r1(3, false, true), &seq));
    // Also past the identifier checks of a bounded table.
    assert!(contains(&index_r1(3, true, true), &seq[4..]));
    // A baseline block's access has none.
    assert!(!contains(&index_r1(3, false, false), &seq[4..8]));
}

#[test]
fn holding_an_array_looks_it_up_as_an_access_does_or_copies_the_other_pair() {
    let mut e = emitter();
    assert!(e.may_hold_arrays());
    e.hold_array(Val::Reg(1), 0, None);
    let lookup = finish(e);
    // A region's access through pair 0 makes the same lookup, prefetches included: the
    // same code up to the slot's length word (mov esi, [rdi + 28]), where the access also
    // compares the offset; then the same descriptor and prefetch of its buffer (from
    // mov esi, [rdi + 8] on, where the hold ends).
    let access = index_r1(3, false, true);
    let len = crate::memory::layout::SLOT_LEN as u8;
    let word = lookup.windows(3).position(|w| w == [0x8B, 0x77, len]);
    let word = word.expect("the slot's length word") + 3;
    assert!(access.starts_with(&lookup[..word]), "{lookup:02x?}");
    let descriptor = lookup.windows(3).position(|w| w == [0x8B, 0x77, 0x08]);
    let descriptor = &lookup[descriptor.expect("the descriptor")..];
    let ja = descriptor
        .windows(2)
        .position(|w| w == [0x0F, 0x87])
        .unwrap()
        + 2;
    assert!(contains(&access, &descriptor[..ja]), "{access:02x?}");
    assert!(contains(&access, &descriptor[ja + 4..]), "{access:02x?}");
    let mut e = emitter();
    e.hold_array(Val::Reg(1), 0, Some(1));
    e.hold_array(Val::Reg(1), 1, Some(0));
    assert_eq!(
        finish(e),
        [
            0x48, 0x89, 0xCF, // mov rdi, rcx
            0x89, 0xD6, // mov esi, edx
            0x48, 0x89, 0xF9, // mov rcx, rdi
            0x89, 0xF2, // mov edx, esi
        ]
    );
    // With a bounded table a lookup may fail: no array is held then.
    let (_, routines) = X64::routines(BASE - 0x1000, true);
    assert!(!X64::new(BASE, &routines, true).may_hold_arrays());
}

#[test]
fn index_with_a_bounded_table_checks_the_identifier_then_takes_slot_or_entry() {
    let code = index_r1_at(3, true);
    let ids = crate::memory::layout::HEAP_IDS as u8;
    let slab_ids = crate::memory::layout::HEAP_SLAB_IDS as u8;
    // mov eax, ebp; cmp eax, [r14 + ids]; jae (fail); cmp eax, [r14 + slab_ids].
    assert!(code.starts_with(&[0x89, 0xE8, 0x41, 0x3B, 0x46, ids, 0x0F, 0x83]));
    assert!(contains(&code, &[0x41, 0x3B, 0x46, slab_ids, 0x0F, 0x83]));
    // The slot from the identifier: mov edi, eax; shl rdi, 5; then the descriptor.
    assert!(contains(&code, &[0x89, 0xC7, 0x48, 0xC1, 0xE7, 0x05]));
    assert!(contains(&code, &[0x8B, 0x77, 0x08, 0x48, 0x8B, 0x3F]));
    // Beyond the slots, the table entry: mov esi, [rax + 8]; mov rdi, [rax].
    let mut entry = TABLE_ENTRY.to_vec();
    entry.extend([0x8B, 0x70, 0x08, 0x48, 0x8B, 0x38]);
    assert!(contains(&code, &entry));
    assert!(code.ends_with(&[0x8B, 0x5F, 0x0C]));
}

#[test]
fn patchable_jumps_lie_in_one_aligned_word() {
    for prefix in 0..16 {
        let mut e = emitter();
        for _ in 0..prefix {
            e.mov(0, 0); // 2 bytes each
        }
        let stub = e.new_label();
        let at = e.jump_patchable(stub);
        e.bind(stub);
        let code = finish(e);
        assert!(at % 8 <= 3, "jump at {at} crosses an aligned word");
        assert!(
            at >= 2 * prefix && at <= 2 * prefix + 4,
            "at most 4 bytes of padding"
        );
        assert_eq!(code[at..], [0xE9, 0, 0, 0, 0], "jmp rel32 to the next byte");
    }
}

#[test]
fn patched_jumps() {
    // A jump at byte 3 of the word at 0x1000, to 0x2000: rel32 = 0x2000 - 0x1008.
    let old = 0x1122_3344_5566_7788u64;
    let new = X64::patch_jump(0x1000, old, 0x1003, 0x2000);
    assert_eq!(
        new.to_le_bytes(),
        [0x88, 0x77, 0x66, 0xE9, 0xF8, 0x0F, 0x00, 0x00]
    );
    // Backwards, at the start of the word: the three bytes after it are kept.
    let new = X64::patch_jump(0x2000, old, 0x2000, 0x1000);
    assert_eq!(
        new.to_le_bytes(),
        [0xE9, 0xFB, 0xEF, 0xFF, 0xFF, 0x33, 0x22, 0x11]
    );
}

/// Allocation and abandonment fall through on their fast paths: the calls into their
/// routines, for when a fast path gives up, come after the block's code (after what the
/// block emits last, here a fault stub), and each goes back to where its fast path ends.
#[cfg(target_arch = "x86_64")]
#[test]
fn fast_paths_fall_through_and_their_routine_calls_come_last() {
    use iced_x86::{Decoder, DecoderOptions, Mnemonic};
    let mut e = emitter();
    let [alloc_end, abandon_end, stub_end] = crate::backend::emit_fast_paths(&mut e);
    let code = finish(e);
    let insts: Vec<_> = Decoder::with_ip(64, &code, BASE as u64, DecoderOptions::NONE)
        .into_iter()
        .collect();
    for i in insts.iter().filter(|i| (i.ip() as usize) < BASE + stub_end) {
        assert!(
            !matches!(i.mnemonic(), Mnemonic::Jmp | Mnemonic::Call),
            "+{:#x}: {:?} in the block's code",
            i.ip() as usize - BASE,
            i.mnemonic(),
        );
    }
    let rest: Vec<_> = insts
        .iter()
        .filter(|i| (i.ip() as usize) >= BASE + stub_end)
        .collect();
    let calls = rest.iter().filter(|i| i.mnemonic() == Mnemonic::Call);
    assert_eq!(calls.count(), 2, "one call per fast path, after the block");
    let backs: Vec<usize> = rest
        .iter()
        .filter(|i| i.mnemonic() == Mnemonic::Jmp)
        .map(|i| i.near_branch_target() as usize - BASE)
        .collect();
    assert_eq!(
        backs,
        [alloc_end, abandon_end],
        "each goes back after its fast path"
    );
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
        assert!(code.len() > 100);
        if chain {
            assert_eq!(t.exits.len(), 2, "two-way branch: two patchable exits");
            for x in &t.exits {
                assert_eq!(code[x.jump_at], 0xE9, "exit is a jmp rel32");
                assert!(x.jump_at % 8 <= 3, "within an aligned word");
                assert!(x.stub_at.expect("chained exits have stubs") > x.jump_at);
            }
        }
    }
}

/// The short encodings of `encode`, decoded back with iced-x86 (a decoder independent of
/// dynasm and of these tests): every register and base, with and without an index, across
/// displacement and immediate sizes.
#[cfg(target_arch = "x86_64")]
mod short_encodings {
    use super::super::Ops;
    use super::super::encode::{self, Alu, Mem};
    use iced_x86::{Decoder, DecoderOptions, Instruction, Mnemonic, OpKind, Register};

    const R32: [Register; 16] = {
        use Register::*;
        [
            EAX, ECX, EDX, EBX, ESP, EBP, ESI, EDI, R8D, R9D, R10D, R11D, R12D, R13D, R14D, R15D,
        ]
    };
    const R64: [Register; 16] = {
        use Register::*;
        [
            RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8, R9, R10, R11, R12, R13, R14, R15,
        ]
    };
    const DISPS: [i32; 8] = [0, 1, -1, 127, -128, 128, -129, 0x1234_5678];

    /// The one instruction that `emit` assembles, and its length.
    fn one(emit: impl FnOnce(&mut Ops)) -> (Instruction, usize) {
        let mut ops = Ops::new(0);
        emit(&mut ops);
        let bytes = ops.finalize().expect("assembles");
        let mut d = Decoder::with_ip(64, &bytes, 0, DecoderOptions::NONE);
        let i = d.decode();
        assert!(!i.is_invalid(), "{bytes:02x?} does not decode");
        assert_eq!(i.len(), bytes.len(), "{bytes:02x?} is one instruction: {i}");
        assert_ne!(bytes[0], 0x40, "{bytes:02x?}: an empty REX prefix");
        (i, bytes.len())
    }

    fn mems() -> Vec<Mem> {
        let mut all = Vec::new();
        for base in 0..16 {
            for disp in DISPS {
                all.push(Mem::at(base, disp));
                for index in (0..16).filter(|&i| i != 4) {
                    for scale in [1, 4] {
                        all.push(Mem::indexed(base, index, scale, disp));
                    }
                }
            }
        }
        all
    }

    /// The decoded memory operand is `m`, with the shortest displacement.
    fn check_mem(i: &Instruction, m: Mem, len: usize, reg: u8, w: bool) {
        assert_eq!(i.memory_base(), R64[m.base as usize], "{i}");
        match m.index {
            Some((x, s)) => {
                assert_eq!(i.memory_index(), R64[x as usize], "{i}");
                assert_eq!(i.memory_index_scale(), s as u32, "{i}");
            }
            None => assert_eq!(i.memory_index(), Register::None, "{i}"),
        }
        assert_eq!(i.memory_displacement64(), m.disp as i64 as u64, "{i}");
        // REX (if needed) + opcode + ModRM + SIB (if needed) + displacement, nothing more.
        let rex = (w || reg >= 8 || m.base >= 8 || m.index.is_some_and(|(x, _)| x >= 8)) as usize;
        let sib = (m.index.is_some() || m.base & 7 == 4) as usize;
        let disp = match m.disp {
            0 if m.base & 7 != 5 => 0,
            d if i8::try_from(d).is_ok() => 1,
            _ => 4,
        };
        assert_eq!(len, rex + 2 + sib + disp, "{i}");
    }

    #[test]
    fn loads_stores_and_leas_decode_to_their_operands() {
        for m in mems() {
            for r in [0u8, 3, 5, 8, 13] {
                let (i, len) = one(|o| encode::load(o, r, m));
                assert_eq!(
                    (i.mnemonic(), i.op0_register()),
                    (Mnemonic::Mov, R32[r as usize])
                );
                check_mem(&i, m, len, r, false);
                let (i, len) = one(|o| encode::load64(o, r, m));
                assert_eq!(
                    (i.mnemonic(), i.op0_register()),
                    (Mnemonic::Mov, R64[r as usize])
                );
                check_mem(&i, m, len, r, true);
                let (i, len) = one(|o| encode::lea(o, r, m));
                assert_eq!(
                    (i.mnemonic(), i.op0_register()),
                    (Mnemonic::Lea, R32[r as usize])
                );
                check_mem(&i, m, len, r, false);
                let (i, len) = one(|o| encode::cmp_rm(o, r, m));
                assert_eq!(
                    (i.mnemonic(), i.op0_register()),
                    (Mnemonic::Cmp, R32[r as usize])
                );
                check_mem(&i, m, len, r, false);
                let (i, len) = one(|o| encode::add64_rm(o, r, m));
                assert_eq!(
                    (i.mnemonic(), i.op0_register()),
                    (Mnemonic::Add, R64[r as usize])
                );
                check_mem(&i, m, len, r, true);
                let (i, _) = one(|o| encode::store(o, m, r));
                assert_eq!(
                    (i.mnemonic(), i.op0_kind()),
                    (Mnemonic::Mov, OpKind::Memory)
                );
                assert_eq!(i.op1_register(), R32[r as usize]);
            }
            let (i, _) = one(|o| encode::store_imm(o, m, 0xDEAD_BEEF));
            assert_eq!(
                (i.mnemonic(), i.immediate32()),
                (Mnemonic::Mov, 0xDEAD_BEEF)
            );
            assert_eq!(i.memory_displacement64(), m.disp as i64 as u64);
        }
    }

    #[test]
    fn register_forms_decode_to_their_operands() {
        let alus = [
            (Alu::Add, Mnemonic::Add),
            (Alu::And, Mnemonic::And),
            (Alu::Cmp, Mnemonic::Cmp),
        ];
        for a in 0..16u8 {
            for b in 0..16u8 {
                let (ra, rb) = (R32[a as usize], R32[b as usize]);
                let pair = |i: &Instruction| (i.mnemonic(), i.op0_register(), i.op1_register());
                let (i, len) = one(|o| encode::mov_rr(o, a, b));
                assert_eq!(pair(&i), (Mnemonic::Mov, ra, rb));
                assert_eq!(len, 2 + (a >= 8 || b >= 8) as usize);
                let (i, _) = one(|o| encode::test_rr(o, a, b));
                assert_eq!(pair(&i), (Mnemonic::Test, ra, rb));
                let (i, _) = one(|o| encode::cmovnz(o, a, b));
                assert_eq!(pair(&i), (Mnemonic::Cmovne, ra, rb));
                let (i, _) = one(|o| encode::cmovz(o, a, b));
                assert_eq!(pair(&i), (Mnemonic::Cmove, ra, rb));
                let (i, _) = one(|o| encode::imul_rr(o, a, b));
                assert_eq!(pair(&i), (Mnemonic::Imul, ra, rb));
                for (op, mn) in alus {
                    let (i, _) = one(|o| encode::alu_rr(o, op, a, b));
                    assert_eq!(pair(&i), (mn, ra, rb));
                }
                for imm in [5, -3, 1000, -1000, i32::MIN] {
                    let (i, len) = one(|o| encode::imul_rri(o, a, b, imm));
                    assert_eq!(pair(&i), (Mnemonic::Imul, ra, rb));
                    assert_eq!(i.immediate(2) as i32, imm);
                    let rex = (a >= 8 || b >= 8) as usize;
                    assert_eq!(
                        len,
                        rex + 2 + if (-128..128).contains(&imm) { 1 } else { 4 }
                    );
                }
            }
            let r = R32[a as usize];
            for imm in [0u32, 1, 0x7F, 0x80, 0xFFFF_FFFF, 0x1234_5678] {
                let (i, _) = one(|o| encode::mov_ri(o, a, imm));
                assert_eq!(
                    (i.mnemonic(), i.op0_register(), i.immediate32()),
                    (Mnemonic::Mov, r, imm)
                );
                let (i, _) = one(|o| encode::test_ri(o, a, imm));
                assert_eq!(
                    (i.mnemonic(), i.op0_register(), i.immediate32()),
                    (Mnemonic::Test, r, imm)
                );
                for (op, mn) in alus {
                    let (i, len) = one(|o| encode::alu_ri(o, op, a, imm as i32));
                    assert_eq!((i.mnemonic(), i.op0_register()), (mn, r));
                    assert_eq!(i.immediate(1) as u32, imm, "{i}");
                    if (imm as i32) >= -128 && (imm as i32) < 128 {
                        assert_eq!(len, 3 + (a >= 8) as usize, "{i}");
                    }
                }
            }
            let (i, _) = one(|o| encode::not(o, a));
            assert_eq!((i.mnemonic(), i.op0_register()), (Mnemonic::Not, r));
            let (i, _) = one(|o| encode::shr_ri(o, a, 7));
            assert_eq!(
                (i.mnemonic(), i.op0_register(), i.immediate8()),
                (Mnemonic::Shr, r, 7)
            );
            let (i, _) = one(|o| encode::shl64_ri(o, a, 5));
            let r64 = R64[a as usize];
            assert_eq!(
                (i.mnemonic(), i.op0_register(), i.immediate8()),
                (Mnemonic::Shl, r64, 5)
            );
        }
    }

    #[test]
    fn memory_immediate_forms_decode_to_their_operands() {
        for m in mems() {
            for imm in [0i32, 1, -1, 127, -128, 128, -129, 0x1234_5678] {
                for (op, mn) in [(Alu::Add, Mnemonic::Add), (Alu::Sub, Mnemonic::Sub)] {
                    let (i, len) = one(|o| encode::alu64_mi(o, op, m, imm));
                    assert_eq!(i.mnemonic(), mn, "{i}");
                    assert_eq!(i.memory_size(), iced_x86::MemorySize::UInt64, "{i}");
                    assert_eq!(i.immediate(1) as i64, imm as i64, "{i}");
                    // As a load of the operand (REX.W, one opcode byte), then the
                    // immediate: 1 byte where it fits.
                    let imm_len = if i8::try_from(imm).is_ok() { 1 } else { 4 };
                    check_mem(&i, m, len - imm_len, 0, true);
                }
            }
            let (i, len) = one(|o| encode::cmp8_mi(o, m, 0));
            assert_eq!((i.mnemonic(), i.immediate8()), (Mnemonic::Cmp, 0), "{i}");
            assert_eq!(i.memory_size(), iced_x86::MemorySize::UInt8, "{i}");
            check_mem(&i, m, len - 1, 0, false);
            let (i, len) = one(|o| encode::dec16_m(o, m));
            assert_eq!((i.mnemonic(), i.immediate(1)), (Mnemonic::Sub, 1), "{i}");
            assert_eq!(i.memory_size(), iced_x86::MemorySize::UInt16, "{i}");
            // The operand-size prefix, then as a load, then the 1-byte immediate.
            check_mem(&i, m, len - 2, 0, false);
            for r in [0u8, 6, 9] {
                let (i, len) = one(|o| encode::store64(o, m, r));
                assert_eq!(
                    (i.mnemonic(), i.op1_register()),
                    (Mnemonic::Mov, R64[r as usize])
                );
                check_mem(&i, m, len, r, true);
            }
            for imm in [0, -1, 300] {
                let (i, len) = one(|o| encode::alu32_mi(o, Alu::Cmp, m, imm));
                assert_eq!((i.mnemonic(), i.immediate(1) as i32), (Mnemonic::Cmp, imm));
                assert_eq!(i.memory_size(), iced_x86::MemorySize::UInt32, "{i}");
                check_mem(&i, m, len - if imm == 300 { 4 } else { 1 }, 0, false);
            }
        }
    }

    #[test]
    fn register_immediate_forms_on_64_bits_decode_to_their_operands() {
        let alus = [(Alu::Add, Mnemonic::Add), (Alu::Cmp, Mnemonic::Cmp)];
        for r in 0..16u8 {
            for imm in [0i32, 5, -128, 127, 128, 0x1234_5678] {
                for (op, mn) in alus {
                    let (i, len) = one(|o| encode::alu64_ri(o, op, r, imm));
                    assert_eq!(
                        (i.mnemonic(), i.op0_register()),
                        (mn, R64[r as usize]),
                        "{i}"
                    );
                    assert_eq!(i.immediate(1) as i64, imm as i64, "{i}");
                    // REX.W, opcode, ModRM and the immediate (eax's own form has no ModRM).
                    let want = match (i8::try_from(imm).is_ok(), r) {
                        (true, _) => 4,
                        (false, 0) => 6,
                        (false, _) => 7,
                    };
                    assert_eq!(len, want, "{i}");
                }
            }
        }
    }

    #[test]
    fn division_and_scaled_leas_decode_to_their_operands() {
        for r in 0..16u8 {
            let (i, len) = one(|o| encode::div(o, r));
            assert_eq!(
                (i.mnemonic(), i.op0_register()),
                (Mnemonic::Div, R32[r as usize])
            );
            assert_eq!(len, 2 + (r >= 8) as usize, "{i}");
            if r == 4 {
                continue;
            }
            for dst in [0u8, 3, 9] {
                let (i, len) = one(|o| encode::lea_scaled(o, dst, r, 8, 8));
                assert_eq!(
                    (i.mnemonic(), i.op0_register()),
                    (Mnemonic::Lea, R32[dst as usize])
                );
                assert_eq!(i.memory_base(), Register::None, "{i}");
                assert_eq!(i.memory_index(), R64[r as usize], "{i}");
                assert_eq!(i.memory_index_scale(), 8, "{i}");
                assert_eq!(i.memory_displacement64(), 8, "{i}");
                assert_eq!(len, 7 + (dst >= 8 || r >= 8) as usize, "{i}");
            }
        }
    }
}

/// Every instruction of generated code, decoded with iced-x86: no empty REX prefix, no
/// 4-byte immediate where the 1-byte form of the same instruction holds it, no 4-byte
/// displacement where a 1-byte one reaches (the "short encodings" in the x86-64
/// backend), no 2-byte immediate behind the operand-size prefix (a length-changing prefix,
/// which stalls Intel's decoders), in the routines, in baseline blocks and in regions,
/// with every option that changes what is emitted.
#[cfg(target_arch = "x86_64")]
mod no_wasted_bytes {
    use super::{BASE, X64};
    use crate::assembler::assemble;
    use crate::backend::Backend;
    use crate::discoverer::discover;
    use crate::generator::{GenOptions, generate};
    use crate::region::{self, Passes, form};
    use crate::translator::{Options, translate};
    use iced_x86::{Decoder, DecoderOptions, OpKind, Register};

    /// What is wasted in `code` (assembled at `BASE`), one line per instruction.
    fn waste(code: &[u8]) -> Vec<String> {
        let mut found = Vec::new();
        let mut d = Decoder::with_ip(64, code, BASE as u64, DecoderOptions::NONE);
        while d.can_decode() {
            let i = d.decode();
            let at = i.ip() as usize - BASE;
            let bytes = &code[at..at + i.len()];
            assert!(!i.is_invalid(), "+{at:#x}: {bytes:02x?} does not decode");
            let mut k = 0;
            while matches!(
                bytes[k],
                0x66 | 0xF2 | 0xF3 | 0x2E | 0x3E | 0x26 | 0x36 | 0x64 | 0x65
            ) {
                k += 1;
            }
            let mut why = Vec::new();
            // spl, bpl, sil and dil exist only behind a REX prefix, even an empty one.
            let low_bytes = [Register::SPL, Register::BPL, Register::SIL, Register::DIL];
            let needs_rex = (0..i.op_count()).any(|n| low_bytes.contains(&i.op_register(n)));
            if bytes[k] == 0x40 && !needs_rex {
                why.push("an empty REX prefix");
            }
            let op = bytes[k + (bytes[k] & 0xF0 == 0x40) as usize];
            let operand_size = bytes[..k].contains(&0x66);
            // A 2-byte immediate after the operand-size prefix changes the instruction's
            // length, which stalls Intel's decoders for several cycles.
            let imm16 = (0..i.op_count()).any(|n| i.op_kind(n) == OpKind::Immediate16);
            if operand_size && imm16 {
                why.push("a 2-byte immediate behind the operand-size prefix");
            }
            // The 0x81 group, its forms on eax (0x05, 0x0D, .., 0x3D) and imul's 0x69 have
            // 1-byte-immediate twins (0x83, 0x6B).
            if !operand_size
                && matches!(
                    op,
                    0x81 | 0x69 | 0x05 | 0x0D | 0x15 | 0x1D | 0x25 | 0x2D | 0x35 | 0x3D
                )
            {
                let imm = i32::from_le_bytes(bytes[bytes.len() - 4..].try_into().unwrap());
                if i8::try_from(imm).is_ok() {
                    why.push("a 4-byte immediate that fits in 1");
                }
            }
            // (iced gives a 4-byte displacement's size as 8 in 64-bit code.)
            if i.memory_displ_size() >= 4
                && !matches!(i.memory_base(), Register::None | Register::RIP)
                && i8::try_from(i.memory_displacement64() as i64).is_ok()
            {
                why.push("a 4-byte displacement that fits in 1");
            }
            for w in why {
                found.push(format!("+{at:#x}: {i} ({bytes:02x?}): {w}"));
            }
        }
        found
    }

    fn assert_no_waste(what: &str, code: &[u8]) {
        let w = waste(code);
        assert!(w.is_empty(), "{what}:\n{}", w.join("\n"));
    }

    #[test]
    fn the_checker_finds_waste() {
        // add ebx, 1 with a 4-byte immediate; mov eax, [rdi + 0] with a 4-byte displacement;
        // lea eax, [rsi * 8 + 8] behind an empty REX.
        assert_eq!(waste(&[0x81, 0xC3, 1, 0, 0, 0]).len(), 1);
        assert_eq!(waste(&[0x8B, 0x87, 0, 0, 0, 0]).len(), 1);
        assert_eq!(waste(&[0x40, 0x8D, 0x04, 0xF5, 8, 0, 0, 0]).len(), 1);
        // sub word [rax + rcx * 2], 1 with a 2-byte immediate (and its 1-byte form below).
        assert_eq!(waste(&[0x66, 0x81, 0x2C, 0x48, 1, 0]).len(), 1);
        // Their short forms, and forms with nothing shorter.
        assert!(waste(&[0x83, 0xC3, 1, 0x8B, 0x07, 0x8D, 0x04, 0xF5, 8, 0, 0, 0]).is_empty());
        assert!(waste(&[0x66, 0x83, 0x2C, 0x48, 1]).is_empty());
        assert!(waste(&[0x81, 0xC3, 0, 1, 0, 0, 0x8B, 0x87, 0, 1, 0, 0]).is_empty());
    }

    #[test]
    fn generated_code_has_no_wasted_bytes() {
        for counts in [false, true] {
            assert_no_waste("routines", &X64::routines(BASE, counts).0);
        }
        let (_, routines) = X64::routines(BASE - 0x1000, true);
        // Generated programs, and one with what they rarely hold: a loop back to a low pc
        // (its hot counter is within a 1-byte displacement of the counters' base), stores
        // into array 0 at an offset in a register (also in one of rax..rdi, which needs no
        // REX prefix) and in a constant, a select between two constants. Each of the fixes
        // this test came with was undone in turn to see the test fail.
        let own = assemble(
            "
            top:
                literal r1, 0
                literal r2, 7
                amend r1, r3, r2
                amend r1, r2, r3
                amend r1, r0, r3
                amend r4, r3, r2
                div r5, r3, r2
                literal r6, 3
                literal r7, 4
                cmov r6, r7, r5
                output r6
                literal r7, top
                loadprog r1, r7
            ",
        )
        .unwrap();
        let programs = (0..24)
            .map(|seed| generate(seed, GenOptions::default()).program)
            .chain([own]);
        for (seed, program) in programs.enumerate() {
            let len = program.len() as u32;
            let mut pc = 0;
            while pc < len {
                let run = discover(&program, pc, 256);
                for bits in 0..16u32 {
                    let bit = |n: u32| bits & 1 << n != 0;
                    let (chain, stats, budget, check_ids) = (bit(0), bit(1), bit(2), bit(3));
                    // Operator counts come with statistics only.
                    let count_ops = stats && !chain;
                    let opts = Options {
                        chain,
                        stats,
                        budget,
                        count_ops,
                        hot: chain,
                    };
                    let mut e = X64::new(BASE, &routines, check_ids);
                    translate(&mut e, &run, 7, opts, &|_| true, len);
                    let code = e.finish().expect("assembles");
                    assert_no_waste(&format!("seed {seed}, block at {pc}, {opts:?}"), &code);
                    if count_ops {
                        continue;
                    }
                    let plan = form::form(&program, pc, 256, &form::Seen::EVERYTHING_RAN);
                    let region = region::compile::<X64>(
                        &plan,
                        &|_| false,
                        Passes::default(),
                        BASE,
                        &routines,
                        check_ids,
                        7,
                        opts,
                        false,
                        len,
                    )
                    .expect("assembles");
                    let what = format!("seed {seed}, region at {pc}, {opts:?}, {check_ids}");
                    assert_no_waste(&what, &region.code);
                }
                pc = run.next_pc();
            }
        }
    }
}

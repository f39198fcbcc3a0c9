//! x86-64 encodings, checked by hand against the Intel SDM (and `objdump -M intel`); these
//! run on any host.
use super::X64;
use crate::assembler::assemble;
use crate::backend::{ArrayUse, Backend, BinOp, Val};
use crate::discoverer::discover;
use crate::translator::{Options, translate};

const BASE: usize = 0x40_0000;

fn emitter() -> X64 {
    let (_, routines) = X64::routines(BASE - 0x1000);
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
            0x40, 0x8D, 0x9C, 0x25, 0x05, 0x00, 0x00,
            0x00, // lea ebx, [rbp + 5] (dynasm's SIB form)
            0x40, 0x89, 0xEB, // mov ebx, ebp
            0x40, 0xF7, 0xD3, // not ebx
            0x44, 0x21, 0xE3, // and ebx, r12d
            0x40, 0xF7, 0xD3, // not ebx
            0x40, 0x89, 0xEB, // mov ebx, ebp
            0x41, 0x0F, 0xAF, 0xDC, // imul ebx, r12d
            0x40, 0xBB, 0x78, 0x56, 0x34, 0x12, // mov ebx, 0x12345678
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
            0x0F, 0x84, 0x0B, 0x00, 0x00, 0x00, // je fail (+11)
            0x40, 0x89, 0xE8, // mov eax, ebp
            0x31, 0xD2, // xor edx, edx
            0x41, 0xF7, 0xF4, // div r12d
            0x40, 0x89, 0xC3, // mov ebx, eax
        ]
    );
}

#[test]
fn speculative_index_through_a_slot() {
    // index r0, r1, 3 through register pair 0 (rdi/esi), uncached.
    let mut e = emitter();
    let fail = e.new_label();
    let arr = ArrayUse {
        pair: 0,
        cached: false,
        checked: false,
        speculate: true,
    };
    e.index(0, Val::Reg(1), Val::Imm(3), arr, fail);
    e.bind(fail);
    let code = finish(e);
    // The entry: identifier ebp shifted by 4 plus the table pointer [r14 + 0].
    assert!(contains(
        &code,
        &[0x48, 0xC1, 0xE0, 0x04, 0x49, 0x03, 0x46, 0x00]
    ));
    // The slot from the identifier alone: rdi := ebp << 5 + [r14 + slab].
    let slab = crate::memory::layout::HEAP_SLAB as u8;
    assert!(contains(
        &code,
        &[
            0x40, 0x89, 0xEF, 0x48, 0xC1, 0xE7, 0x05, 0x49, 0x03, 0x7E, slab
        ]
    ));
    // Then compared with the entry's base: cmp rax, rdi.
    assert!(contains(&code, &[0x48, 0x3B, 0xC7]));
    // The element is loaded through rdi: mov ebx, [rdi + 12] (last).
    assert!(code.ends_with(&[0x40, 0x8B, 0x9C, 0x27, 0x0C, 0x00, 0x00, 0x00]));
}

#[test]
fn patchable_jumps_lie_in_one_aligned_word() {
    for prefix in 0..16 {
        let mut e = emitter();
        for _ in 0..prefix {
            e.mov(0, 0); // 3 bytes each
        }
        let stub = e.new_label();
        let at = e.jump_patchable(stub);
        e.bind(stub);
        let code = finish(e);
        assert!(at % 8 <= 3, "jump at {at} crosses an aligned word");
        assert!(
            at >= 3 * prefix && at <= 3 * prefix + 4,
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
        let t = translate(&mut e, &run, 7, opts, &|_| true);
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

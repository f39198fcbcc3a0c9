//! Every operator of the UM-32 specification (/work/shared/corpus/um-spec.txt), with its edge
//! cases, run in-process on every engine configuration (see `common::run_all`).
//!
//! A register cannot be printed directly (output takes one byte), so most tests look at the
//! registers the run ended with (`Outcome::regs`). Values above 2^25 - 1 are built with
//! `nand` (all registers start at 0, so `nand rX, r0, r0` gives 0xFFFFFFFF), `mul` and `add`.

mod common;

use common::{asm, expect_output, run_src};
use umdbt::decoder::{Instr, Op};

/// Run `src` (no input), assert that it halts, return the registers it ended with.
fn regs(src: &str) -> [u32; 8] {
    let out = run_src(src, b"");
    assert_eq!(out.result, Ok(()), "program did not halt cleanly\n{src}");
    out.regs
}

/// Assembly that sets `reg` to `value` (any 32-bit value) using only `reg` and `scratch`.
fn set(reg: u8, scratch: u8, value: u32) -> String {
    let hi = value >> 16;
    let lo = value & 0xFFFF;
    format!(
        "literal r{reg}, {hi}\nliteral r{scratch}, 65536\nmul r{reg}, r{reg}, r{scratch}\n\
         literal r{scratch}, {lo}\nadd r{reg}, r{reg}, r{scratch}\n"
    )
}

/// Run `r1 OP= ...`: set r2 = b, r3 = c, execute `op r1, r2, r3`, return r1.
fn binop(op: &str, b: u32, c: u32) -> u32 {
    let src = format!("{}{}{op} r1, r2, r3\nhalt\n", set(2, 7, b), set(3, 7, c));
    let r = regs(&src);
    assert_eq!((r[2], r[3]), (b, c), "operands were not built right\n{src}");
    r[1]
}

#[test]
fn set_helper_builds_any_value() {
    for v in [
        0,
        1,
        0xFFFF,
        0x1_0000,
        0x1FF_FFFF,
        0x8000_0000,
        0xFFFF_FFFF,
        0xDEAD_BEEF,
    ] {
        assert_eq!(regs(&format!("{}halt", set(4, 5, v)))[4], v);
    }
}

// ---- operator 0: conditional move ----

#[test]
fn cmov_moves_when_c_is_not_zero() {
    let r = regs("literal r1, 5\nliteral r2, 7\nliteral r3, 1\ncmov r1, r2, r3\nhalt");
    assert_eq!(r[1], 7);
    // Only the top bit of C set still counts as non-zero.
    let src = format!(
        "literal r1, 5\nliteral r2, 7\n{}cmov r1, r2, r3\nhalt",
        set(3, 6, 0x8000_0000)
    );
    assert_eq!(regs(&src)[1], 7);
    let src = format!(
        "literal r1, 5\n{}nand r3, r0, r0\ncmov r1, r2, r3\nhalt",
        set(2, 6, 0xCAFE_F00D)
    );
    assert_eq!(regs(&src)[1], 0xCAFE_F00D);
}

#[test]
fn cmov_keeps_a_when_c_is_zero() {
    let r = regs("literal r1, 5\nliteral r2, 7\nliteral r3, 0\ncmov r1, r2, r3\nhalt");
    assert_eq!((r[1], r[2], r[3]), (5, 7, 0));
    // Moving zero when C is non-zero.
    let r = regs("literal r1, 5\nliteral r3, 1\ncmov r1, r2, r3\nhalt");
    assert_eq!(r[1], 0);
}

#[test]
fn cmov_with_aliased_registers() {
    // A = B = C: never changes anything, whether the register is zero or not.
    assert_eq!(regs("cmov r3, r3, r3\nhalt")[3], 0);
    assert_eq!(regs("literal r3, 9\ncmov r3, r3, r3\nhalt")[3], 9);
    // A = C: when A is non-zero it receives B.
    assert_eq!(
        regs("literal r1, 4\nliteral r2, 8\ncmov r1, r2, r1\nhalt")[1],
        8
    );
    assert_eq!(regs("literal r2, 8\ncmov r1, r2, r1\nhalt")[1], 0);
    // B = C: A receives B when B is non-zero.
    assert_eq!(
        regs("literal r1, 4\nliteral r2, 8\ncmov r1, r2, r2\nhalt")[1],
        8
    );
    assert_eq!(regs("literal r1, 4\ncmov r1, r2, r2\nhalt")[1], 4);
    // A = B: no change either way.
    assert_eq!(
        regs("literal r1, 4\nliteral r2, 1\ncmov r1, r1, r2\nhalt")[1],
        4
    );
}

// ---- operators 3, 4, 5, 6: arithmetic ----

#[test]
fn add_wraps_modulo_2_32() {
    assert_eq!(binop("add", 2, 3), 5);
    assert_eq!(binop("add", 0xFFFF_FFFF, 1), 0);
    assert_eq!(binop("add", 0xFFFF_FFFF, 0xFFFF_FFFF), 0xFFFF_FFFE);
    assert_eq!(binop("add", 0x8000_0000, 0x8000_0000), 0);
    assert_eq!(binop("add", 0x7FFF_FFFF, 1), 0x8000_0000);
    assert_eq!(binop("add", 0xDEAD_BEEF, 0x2152_4111), 0);
}

#[test]
fn mul_wraps_modulo_2_32() {
    assert_eq!(binop("mul", 6, 7), 42);
    assert_eq!(binop("mul", 0x1_0000, 0x1_0000), 0);
    assert_eq!(binop("mul", 0xFFFF_FFFF, 0xFFFF_FFFF), 1);
    assert_eq!(binop("mul", 0xFFFF_FFFF, 2), 0xFFFF_FFFE);
    assert_eq!(binop("mul", 0x1_0001, 0x1_0001), 0x0002_0001);
    assert_eq!(binop("mul", 0x8000_0000, 3), 0x8000_0000);
    assert_eq!(binop("mul", 12345, 0), 0);
}

#[test]
fn div_is_unsigned() {
    assert_eq!(binop("div", 100, 7), 14);
    assert_eq!(binop("div", 7, 8), 0);
    assert_eq!(binop("div", 0, 5), 0);
    // A signed division would give 0, -1 and an overflow trap for these.
    assert_eq!(binop("div", 0xFFFF_FFFF, 2), 0x7FFF_FFFF);
    assert_eq!(binop("div", 0xFFFF_FFFF, 0xFFFF_FFFF), 1);
    assert_eq!(binop("div", 0x8000_0000, 0xFFFF_FFFF), 0);
    assert_eq!(binop("div", 0xFFFF_FFFF, 0x8000_0000), 1);
    assert_eq!(binop("div", 0xFFFF_FFFE, 0x7FFF_FFFF), 2);
    assert_eq!(binop("div", 0x8000_0000, 1), 0x8000_0000);
    assert_eq!(binop("div", 5, 0xFFFF_FFFF), 0);
}

#[test]
fn nand_truth_table() {
    let ones = 0xFFFF_FFFF;
    assert_eq!(binop("nand", 0, 0), ones);
    assert_eq!(binop("nand", 0, ones), ones);
    assert_eq!(binop("nand", ones, 0), ones);
    assert_eq!(binop("nand", ones, ones), 0);
    // Bit by bit: only the positions where both are 1 become 0.
    assert_eq!(binop("nand", 0b1100, 0b1010), !0b1000);
    assert_eq!(binop("nand", 0xF0F0_F0F0, 0xFF00_FF00), !0xF000_F000);
    assert_eq!(binop("nand", 0x8000_0001, ones), 0x7FFF_FFFE);
}

#[test]
fn arithmetic_with_a_equal_b_equal_c() {
    // add r1, r1, r1 doubles.
    let src = format!("{}add r1, r1, r1\nhalt", set(1, 2, 0x8000_0001));
    assert_eq!(regs(&src)[1], 2);
    // mul r1, r1, r1 squares.
    let src = format!("{}mul r1, r1, r1\nhalt", set(1, 2, 0x1_0001));
    assert_eq!(regs(&src)[1], 0x0002_0001);
    // div r1, r1, r1 is 1 for any non-zero value.
    let src = format!("{}div r1, r1, r1\nhalt", set(1, 2, 0xFFFF_FFFF));
    assert_eq!(regs(&src)[1], 1);
    assert_eq!(regs("literal r1, 7\ndiv r1, r1, r1\nhalt")[1], 1);
    // nand r2, r2, r2 is bitwise not.
    assert_eq!(regs("nand r2, r2, r2\nhalt")[2], 0xFFFF_FFFF);
    let src = format!("{}nand r2, r2, r2\nhalt", set(2, 3, 0x1234_5678));
    assert_eq!(regs(&src)[2], !0x1234_5678);
}

#[test]
fn arithmetic_with_partly_aliased_registers() {
    // A = B
    assert_eq!(
        regs("literal r1, 10\nliteral r2, 3\nadd r1, r1, r2\nhalt")[1],
        13
    );
    assert_eq!(
        regs("literal r1, 10\nliteral r2, 3\ndiv r1, r1, r2\nhalt")[1],
        3
    );
    // A = C
    assert_eq!(
        regs("literal r1, 3\nliteral r2, 10\ndiv r1, r2, r1\nhalt")[1],
        3
    );
    assert_eq!(
        regs("literal r1, 3\nliteral r2, 10\nmul r1, r2, r1\nhalt")[1],
        30
    );
    // B = C, A different
    let r = regs("literal r2, 12\nmul r1, r2, r2\nadd r3, r2, r2\nnand r4, r2, r2\nhalt");
    assert_eq!((r[1], r[2], r[3], r[4]), (144, 12, 24, !12));
}

#[test]
fn unused_instruction_bits_are_ignored() {
    // add r1, r2, r3 with every bit between the opcode and register A set.
    let add = Instr::encode(Op::Add, 1, 2, 3) | 0x0FFF_FE00;
    let src = format!("literal r2, 40\nliteral r3, 2\nword {add:#x}\nhalt");
    assert_eq!(regs(&src)[1], 42);
    // halt with garbage in the register fields.
    let halt = 0x7FFF_FFFF_u32;
    let out = expect_output(
        &format!("literal r1, 'a'\noutput r1\nword {halt:#x}\noutput r1\nhalt"),
        b"",
        b"a",
    );
    assert_eq!(out.pc, 2);
}

// ---- operator 13: orthography ----

#[test]
fn literal_max_value_and_only_its_register() {
    for a in 0..8u8 {
        // Every register starts as 0xFFFFFFFF; the literal must replace all 32 bits of
        // register A and touch nothing else.
        let mut src = String::from("nand r0, r0, r0\n");
        for r in 1..8 {
            src += &format!("cmov r{r}, r0, r0\n");
        }
        src += &format!("literal r{a}, 0x1FFFFFF\nhalt\n");
        let r = regs(&src);
        for (i, v) in r.iter().enumerate() {
            let want = if i == a as usize {
                0x01FF_FFFF
            } else {
                0xFFFF_FFFF
            };
            assert_eq!(*v, want, "r{i} after literal r{a}, 0x1FFFFFF");
        }
        let src = src.replace("0x1FFFFFF", "0");
        assert_eq!(regs(&src)[a as usize], 0, "literal r{a}, 0");
    }
}

// ---- operator 7: halt ----

#[test]
fn halt_stops_at_once() {
    let out = expect_output(
        "literal r1, 'A'\noutput r1\nhalt\nliteral r2, 'B'\noutput r2\nhalt",
        b"",
        b"A",
    );
    assert_eq!(out.pc, 2, "pc names the halt instruction");
    assert_eq!(out.regs[2], 0, "nothing after halt ran");
    // A halt that is reached by a jump.
    let out = expect_output(
        "literal r1, end\nloadprog r0, r1\nliteral r2, 'x'\noutput r2\nend: halt",
        b"",
        b"",
    );
    assert_eq!((out.pc, out.regs[2]), (4, 0));
}

// ---- operators 10, 11: output and input ----

#[test]
fn output_of_0_and_255() {
    expect_output(
        "output r0\nliteral r1, 255\noutput r1\nliteral r1, 'z'\noutput r1\nhalt",
        b"",
        &[0, 255, b'z'],
    );
}

#[test]
fn input_bytes_then_end_of_input() {
    let src = "input r1\ninput r2\ninput r3\ninput r4\ninput r5\ninput r6\nhalt";
    let out = run_src(src, &[b'A', 0xFF, 0x00]);
    assert_eq!(out.result, Ok(()));
    // 0xFF is the byte 255, not end of input; every read after the end gives all ones.
    assert_eq!(
        out.regs[1..7],
        [65, 255, 0, 0xFFFF_FFFF, 0xFFFF_FFFF, 0xFFFF_FFFF]
    );
    // No input at all.
    let r = run_src("input r7\ninput r7\nhalt", b"").regs;
    assert_eq!(r[7], 0xFFFF_FFFF);
}

#[test]
fn input_replaces_all_bits_of_c() {
    let src = "nand r3, r0, r0\ninput r3\nhalt";
    assert_eq!(run_src(src, b"\x01").regs[3], 1);
}

/// Echo input to output until end of input.
pub const ECHO: &str = "
        literal r7, 1
loop:   input r1
        add r2, r1, r7          ; 0 exactly at end of input
        literal r3, done
        literal r4, body
        cmov r3, r4, r2
        loadprog r0, r3
body:   output r1
        literal r3, loop
        loadprog r0, r3
done:   halt
";

#[test]
fn echo_until_end_of_input() {
    let input: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    expect_output(ECHO, &input, &input);
    expect_output(ECHO, b"", b"");
}

// ---- operators 8, 9: allocation and abandonment ----

#[test]
fn zero_length_arrays() {
    let src = "alloc r1, r0\nalloc r2, r0\nhalt";
    let r = regs(src);
    assert_ne!(r[1], 0, "identifier must not be 0");
    assert_ne!(r[2], 0, "identifier must not be 0");
    assert_ne!(r[1], r[2], "two live arrays share an identifier");
    // Any index or amend faults; abandoning is fine.
    let out = run_src("alloc r1, r0\nindex r2, r1, r0\nhalt", b"");
    let f = out.result.clone().expect_err("index into an empty array");
    assert_eq!(
        f.to_string(),
        format!(
            "fault at pc 1 (index): offset 0 outside array {} (length 0)",
            out.regs[1]
        )
    );
    let out = run_src("alloc r1, r0\namend r1, r0, r0\nhalt", b"");
    let f = out.result.clone().expect_err("amend of an empty array");
    assert_eq!(
        f.to_string(),
        format!(
            "fault at pc 1 (amend): offset 0 outside array {} (length 0)",
            out.regs[1]
        )
    );
    regs("alloc r1, r0\nabandon r1\nhalt");
}

#[test]
fn new_arrays_are_zeroed_and_sized() {
    // Allocate arrays of 1, 100 and 70000 words; add up their words into r0 (must stay 0);
    // the last word of each is writable and readable.
    let mut s = String::from(
        "literal r7, 1\nliteral r6, 100\nliteral r5, 70000\n\
         alloc r1, r7\nalloc r2, r6\nalloc r3, r5\nliteral r0, 0\n",
    );
    s += "index r4, r1, r0\nadd r0, r0, r4\n";
    for i in 0..100 {
        s += &format!("literal r6, {i}\nindex r4, r2, r6\nadd r0, r0, r4\n");
    }
    for i in (0..70000).step_by(997).chain([69_999]) {
        s += &format!("literal r6, {i}\nindex r4, r3, r6\nadd r0, r0, r4\n");
    }
    s += "literal r6, 99\namend r2, r6, r7\nindex r4, r2, r6\n";
    s += "literal r6, 69999\namend r3, r6, r7\nindex r5, r3, r6\nhalt\n";
    let r = regs(&s);
    assert_eq!(r[0], 0, "a new array held a non-zero word");
    assert_eq!((r[4], r[5]), (1, 1));
    assert!(r[1] != 0 && r[2] != 0 && r[3] != 0);
    assert!(r[1] != r[2] && r[2] != r[3] && r[1] != r[3]);
}

/// A program that allocates arrays (sizes from `sizes`, abandoning those marked `true`
/// right after the next allocation), writes a distinct marker into word 0 of each, then
/// checks every marker of the arrays still live: prints, per live array, its marker
/// ('A' + k) if it is intact and its identifier is non-zero.
fn distinct_ids_program(sizes: &[(u32, bool)]) -> (String, Vec<u8>) {
    let n = sizes.len();
    assert!(n < 60);
    // r7 = table of identifiers (n words), r0 stays 0.
    let mut s = format!("literal r1, {n}\nalloc r7, r1\n");
    let mut expected = Vec::new();
    for (k, &(size, _)) in sizes.iter().enumerate() {
        s += &format!(
            "literal r1, {size}\nalloc r2, r1\nliteral r3, {k}\namend r7, r3, r2\n\
             literal r4, {}\namend r2, r0, r4\n",
            b'A' + k as u8
        );
        // Abandon the previous array if it was marked.
        if k > 0 && sizes[k - 1].1 {
            s += &format!("literal r3, {}\nindex r2, r7, r3\nabandon r2\n", k - 1);
        }
    }
    for (k, &(_, abandoned)) in sizes.iter().enumerate() {
        if abandoned && k + 1 < n {
            continue;
        }
        s += &format!(
            "literal r3, {k}\nindex r2, r7, r3\nindex r4, r2, r0\noutput r4\n\
             literal r5, '!'\nliteral r6, '.'\ncmov r5, r6, r2\noutput r5\n"
        );
        expected.push(b'A' + k as u8);
        expected.push(b'.');
    }
    s += "halt\n";
    (s, expected)
}

#[test]
fn allocations_return_identifiers_distinct_from_live_ones() {
    let sizes: Vec<(u32, bool)> = (0..40u32)
        .map(|k| (1 + (k * 37) % 90, k % 3 == 1))
        .collect();
    let (src, expected) = distinct_ids_program(&sizes);
    expect_output(&src, b"", &expected);
    // Without abandonment.
    let sizes: Vec<(u32, bool)> = (0..50u32).map(|k| (1 + k % 5, false)).collect();
    let (src, expected) = distinct_ids_program(&sizes);
    expect_output(&src, b"", &expected);
}

#[test]
fn identifier_reuse_after_abandon() {
    // alloc a (3 words), write a[2] = 77, abandon a, alloc b (5 words).
    let src = "
        literal r7, 3
        alloc r1, r7
        literal r6, 2
        literal r5, 77
        amend r1, r6, r5
        abandon r1
        literal r7, 5
        alloc r2, r7
        index r3, r2, r6        ; b[2]: must be 0 even if b reuses a's identifier
        literal r6, 4
        index r4, r2, r6        ; b[4]: within b's 5 words
        literal r5, 9
        amend r2, r6, r5
        index r5, r2, r6
    ";
    let r = regs(&format!("{src}halt"));
    assert_eq!((r[3], r[4], r[5]), (0, 0, 9));
    // Not required by the specification, but this test is only meaningful when the
    // identifier really is recycled, which the shared heap does.
    assert_eq!(r[1], r[2], "the abandoned identifier was not reused");
    // Through the reused identifier the new length applies: offset 5 is out of bounds.
    let out = run_src(&format!("{src}literal r6, 5\nindex r3, r2, r6\nhalt"), b"");
    let f = out.result.clone().expect_err("offset 5 of a 5-word array");
    assert_eq!(
        f.to_string(),
        format!(
            "fault at pc 15 (index): offset 5 outside array {} (length 5)",
            out.regs[2]
        )
    );
}

#[test]
fn reused_arrays_are_zeroed() {
    // For each size: alloc, fill every word with 0xFFFFFFFF, abandon, alloc again with the
    // same size, add up every word (must be 0). Sizes cover small (recycled) and large
    // buffers.
    for size in [1u32, 2, 5, 16, 63, 64, 65, 300] {
        let mut s = String::from("nand r7, r0, r0\n");
        s += &format!("literal r6, {size}\nalloc r1, r6\n");
        for i in 0..size {
            s += &format!("literal r5, {i}\namend r1, r5, r7\n");
        }
        s += "abandon r1\nalloc r2, r6\nliteral r3, 0\n";
        for i in 0..size {
            s += &format!("literal r5, {i}\nindex r4, r2, r5\nadd r3, r3, r4\n");
        }
        s += "halt\n";
        let r = regs(&s);
        assert_eq!(r[3], 0, "reallocated array of {size} words not zeroed");
    }
}

#[test]
fn reused_arrays_are_zeroed_after_other_allocations() {
    // alloc A (5 words, filled with ones), abandon A, alloc B (7 words: may take A's
    // identifier), alloc C (5 words: may take A's storage with a fresh identifier). Every
    // word of B and C must be 0.
    let mut s = String::from("nand r7, r0, r0\nliteral r6, 5\nalloc r1, r6\n");
    for i in 0..5 {
        s += &format!("literal r5, {i}\namend r1, r5, r7\n");
    }
    s += "abandon r1\nliteral r5, 7\nalloc r2, r5\nalloc r3, r6\nliteral r4, 0\n";
    for i in 0..7 {
        s += &format!("literal r5, {i}\nindex r6, r2, r5\nadd r4, r4, r6\n");
    }
    for i in 0..5 {
        s += &format!("literal r5, {i}\nindex r6, r3, r5\nadd r4, r4, r6\n");
    }
    s += "halt\n";
    assert_eq!(regs(&s)[4], 0, "a recycled array was not zeroed");
}

#[test]
fn array_after_loadprog_replaced_array_0_is_zeroed() {
    // A 40-word program loads a copy of itself (so the old array 0, 40 words, is released),
    // then allocates 40 words and adds them up: they must all be 0, not old code.
    let body = "
        literal r6, 40
        alloc r1, r6
        literal r7, 1
        literal r3, 0
copy:   index r2, r0, r3        ; r1[i] = array0[i] for i in 0..40
        amend r1, r3, r2
        add r3, r3, r7
        nand r4, r3, r3
        add r4, r4, r7
        add r4, r4, r6          ; r4 = 40 - i
        literal r2, copied
        literal r0, copy
        cmov r2, r0, r4
        literal r0, 0
        loadprog r0, r2
copied: literal r2, started
        loadprog r1, r2         ; array 0 becomes the copy; continue at 'started'
started:
        alloc r1, r6            ; 40 fresh words
        literal r3, 0
        literal r4, 0
        literal r7, 1
sum:    index r2, r1, r3
        add r4, r4, r2
        add r3, r3, r7
        nand r2, r3, r3
        add r2, r2, r7
        add r2, r2, r6          ; 40 - i
        literal r5, done
        literal r0, sum
        cmov r5, r0, r2
        literal r0, 0
        loadprog r0, r5
done:   halt
";
    let words = asm(body);
    assert!(words.len() <= 40, "program is {} words", words.len());
    let padding = "halt\n".repeat(40 - words.len());
    let r = regs(&format!("{body}{padding}"));
    assert_eq!(r[4], 0, "memory of the old array 0 leaked into a new array");
    assert_eq!(r[3], 40);
}

#[test]
fn many_alloc_abandon_cycles() {
    // 5000 rounds of alloc(3) / amend / abandon in a loop; the program then halts.
    let src = "
        literal r7, 1
        literal r6, 5000
        literal r5, 3
loop:   alloc r1, r5
        amend r1, r7, r6
        index r2, r1, r7
        abandon r1
        nand r3, r0, r0        ; r3 = -1
        add r6, r6, r3          ; r6 -= 1
        literal r3, done
        literal r4, loop
        cmov r3, r4, r6
        loadprog r0, r3
done:   halt
    ";
    let r = regs(src);
    assert_eq!((r[6], r[2]), (0, 1));
}

#[test]
fn abandon_then_use_other_arrays() {
    // Abandoning one array leaves the others intact.
    let src = "
        literal r7, 4
        alloc r1, r7
        alloc r2, r7
        alloc r3, r7
        literal r6, 3
        literal r5, 11
        amend r1, r6, r5
        literal r5, 22
        amend r3, r6, r5
        abandon r2
        alloc r2, r7
        index r4, r1, r6
        index r5, r3, r6
        index r6, r2, r6
        halt
    ";
    let r = regs(src);
    assert_eq!((r[4], r[5], r[6]), (11, 22, 0));
}

// ---- operators 1, 2: index and amend ----

#[test]
fn index_and_amend_on_an_allocated_array() {
    let src = format!(
        "literal r7, 10\nalloc r1, r7\n{}literal r2, 9\namend r1, r2, r3\nindex r4, r1, r2\n\
         literal r2, 0\nindex r5, r1, r2\nhalt",
        set(3, 6, 0xFEED_FACE)
    );
    let r = regs(&src);
    assert_eq!((r[4], r[5]), (0xFEED_FACE, 0));
}

#[test]
fn index_reads_array_0() {
    let src = "literal r1, data\nindex r2, r0, r1\nindex r3, r0, r0\nhalt\ndata: word 0x12345678";
    let r = regs(src);
    assert_eq!(r[2], 0x1234_5678);
    assert_eq!(
        r[3],
        asm(src)[0],
        "word 0 of array 0 is the first instruction"
    );
    // A = B = C = 0: index r1, r1, r1 reads word 0 of array 0, which is itself.
    let r = regs("index r1, r1, r1\nhalt");
    assert_eq!(r[1], Instr::encode(Op::Index, 1, 1, 1));
    assert_eq!(r[1], 0x1000_0049);
}

/// A program that makes array 0 a 3-word array holding `code` (3 words) and jumps to its
/// word 0, with r5 = `r5` and r6 = 77.
fn into_three_words(code: [u32; 3], r5: u32) -> String {
    let mut s = String::from("literal r7, 3\nalloc r1, r7\n");
    for (i, w) in code.iter().enumerate() {
        s += &format!("{}literal r4, {i}\namend r1, r4, r3\n", set(3, 2, *w));
    }
    s + &format!("literal r5, {r5}\nliteral r6, 77\nliteral r4, 0\nloadprog r1, r4\n")
}

#[test]
fn index_and_amend_of_array_0_after_load_program_replaced_it() {
    // The old program is much longer than 3 words: an engine that kept its length or its
    // base would read the old words or let offset 3 through.
    let index = Instr::encode(Op::Index, 2, 0, 5); // r2 = array0[r5]
    let amend = Instr::encode(Op::Amend, 0, 5, 6); // array0[r5] = r6
    let halt = Instr::encode(Op::Halt, 0, 0, 0);
    let r = regs(&into_three_words([index, halt, 0xABCDE], 2));
    assert_eq!(r[2], 0xABCDE, "the new array 0's word 2");
    let r = regs(&into_three_words([amend, index, halt], 0));
    assert_eq!(r[2], 77, "amend of the new array 0, then index of it");
    for (code, op) in [([index, halt, 0], "index"), ([amend, halt, 0], "amend")] {
        let out = run_src(&into_three_words(code, 3), b"");
        let f = out
            .result
            .clone()
            .expect_err("offset 3 of a 3-word array 0");
        assert_eq!(
            f.to_string(),
            format!("fault at pc 0 ({op}): offset 3 outside array 0 (length 3)")
        );
    }
}

#[test]
fn index_and_amend_with_aliased_registers() {
    // index A = B: r1 = r1[r2]
    let src = "literal r7, 8\nalloc r1, r7\nliteral r2, 5\nliteral r3, 66\namend r1, r2, r3\n\
               index r1, r1, r2\nhalt";
    assert_eq!(regs(src)[1], 66);
    // index A = C: r2 = r1[r2]
    let src = "literal r7, 8\nalloc r1, r7\nliteral r2, 5\nliteral r3, 66\namend r1, r2, r3\n\
               index r2, r1, r2\nhalt";
    assert_eq!(regs(src)[2], 66);
    // amend B = C: r1[r2] = r2
    let src =
        "literal r7, 8\nalloc r1, r7\nliteral r2, 6\namend r1, r2, r2\nindex r3, r1, r2\nhalt";
    assert_eq!(regs(src)[3], 6);
    // amend A = C: r1[r2] = r1 (the identifier itself)
    let src =
        "literal r7, 8\nalloc r1, r7\nliteral r2, 7\namend r1, r2, r1\nindex r3, r1, r2\nhalt";
    let r = regs(src);
    assert_eq!(r[3], r[1]);
    // amend A = B = C with 0: array 0 word 0 becomes 0.
    let src = "literal r1, 0\namend r1, r1, r1\nindex r2, r0, r0\nhalt";
    assert_ne!(asm(src)[0], 0);
    assert_eq!(regs(src)[2], 0);
}

#[test]
fn self_modifying_code_patches_an_instruction_ahead() {
    // 'target' is 'output r5' (prints 'N') until it is replaced by a copy of 'repl'
    // ('output r3', prints 'Y').
    let src = "
        literal r3, 'Y'
        literal r5, 'N'
        literal r1, repl
        index r4, r0, r1
        literal r2, target
        amend r0, r2, r4
target: output r5
        halt
repl:   output r3
    ";
    expect_output(src, b"", b"Y");
    // Patching a later instruction, not the next one.
    let src = "
        literal r3, 'Y'
        literal r5, 'N'
        literal r1, repl
        index r4, r0, r1
        literal r2, target
        amend r0, r2, r4
        output r5
        output r5
target: output r5
        halt
repl:   output r3
    ";
    expect_output(src, b"", b"NNY");
}

#[test]
fn self_modifying_code_patches_a_loop_that_already_ran() {
    // The loop prints the value of the literal at 'lit', then adds 1 to that instruction
    // word (its low bits are the value), three times.
    let src = "
        literal r7, 1
        literal r6, 3
loop:
lit:    literal r1, 'a'
        output r1
        literal r2, lit
        index r3, r0, r2
        add r3, r3, r7
        amend r0, r2, r3
        nand r3, r0, r0        ; r3 = -1
        add r6, r6, r3
        literal r3, done
        literal r4, loop
        cmov r3, r4, r6
        loadprog r0, r3
done:   halt
    ";
    expect_output(src, b"", b"abc");
}

#[test]
fn self_modifying_code_replaces_halt_with_a_jump() {
    // The amend turns the halt at 'stop' into word 0 (cmov r0, r0, r0, a no-op) before
    // execution reaches it.
    let src = "
        literal r1, 'x'
        output r1
        literal r2, stop
        amend r0, r2, r0
stop:   halt
        literal r1, 'y'
        output r1
        halt
    ";
    expect_output(src, b"", b"xy");
}

// ---- operator 12: load program ----

#[test]
fn loadprog_zero_jumps_forward() {
    let src = "
        literal r1, fwd
        loadprog r0, r1
        literal r2, 'N'
        output r2
fwd:    literal r2, 'Y'
        output r2
        halt
    ";
    expect_output(src, b"", b"Y");
}

#[test]
fn loadprog_zero_jumps_backward_in_a_loop() {
    // Prints "54321" counting r6 down from 5.
    let src = "
        literal r7, 1
        literal r6, 5
        literal r5, '0'
        nand r4, r0, r0          ; r4 = -1
loop:   add r1, r6, r5
        output r1
        add r6, r6, r4
        literal r2, done
        literal r3, loop
        cmov r2, r3, r6
        loadprog r0, r2
done:   halt
    ";
    expect_output(src, b"", b"54321");
}

#[test]
fn loadprog_zero_to_zero_with_b_equal_c() {
    // First pass prints byte 0 and jumps to 0 with 'loadprog r6, r6' (r6 = 0); the second
    // pass prints 'x' and halts.
    let src = "
        output r1
        literal r2, done
        literal r3, again
        cmov r3, r2, r1
        literal r1, 'x'
        loadprog r0, r3
again:  loadprog r6, r6
done:   halt
    ";
    expect_output(src, b"", b"\0x");
}

#[test]
fn loadprog_zero_to_the_next_instruction() {
    let src = "literal r1, next\nloadprog r0, r1\nnext: literal r2, 'k'\noutput r2\nhalt";
    expect_output(src, b"", b"k");
}

/// Assembly that copies the `n` words at label `from` of array 0 into array `r7` (which
/// must hold at least `n` words), using r1 and r2.
fn copy_to_r7(from: &str, n: usize) -> String {
    (0..n)
        .map(|i| {
            format!("literal r1, {from}+{i}\nindex r2, r0, r1\nliteral r1, {i}\namend r7, r1, r2\n")
        })
        .collect()
}

#[test]
fn loadprog_from_another_array_copies_it() {
    // The new program (words newprog..end) first overwrites its own source array's word
    // at 'p_out' with a halt. Array 0 is a copy, so it still prints 'O' afterwards; then it
    // reads the source array back (it stays active and holds the halt).
    let n = 8;
    let src = format!(
        "
        literal r1, {n}
        alloc r7, r1
        {copy}
        literal r3, 'O'
        literal r4, halt_word
        index r4, r0, r4        ; r4 = a halt instruction
        literal r1, 'L'
        output r1
        literal r5, 0
        loadprog r7, r5
        halt                    ; never reached: array 0 was replaced
halt_word: halt

newprog:
        literal r1, p_out-newprog
        amend r7, r1, r4
p_out:  output r3
        index r6, r7, r1        ; the source array holds the halt now
        literal r2, 'E'
        output r2
        halt
end:    halt
",
        copy = copy_to_r7("newprog", n)
    );
    let out = expect_output(&src, b"", b"LOE");
    assert_eq!(out.regs[6], 0x7000_0000, "source array holds the halt");
    assert_eq!(out.pc, 6, "halted at pc 6 of the new program");
}

#[test]
fn loadprog_replaces_array_0_and_starts_at_offset_c() {
    // The new program is 4 words long; execution starts at its word 2, which reads word 0
    // of the new array 0 (the copied data word).
    let program = |start: &str| {
        format!(
            "
        literal r1, 4
        alloc r7, r1
        {copy}
        literal r5, 2
        literal r6, 4
        loadprog r7, r5
        halt
newprog:
        word 0xABCDEF
        halt
        {start}
        halt
",
            copy = copy_to_r7("newprog", 4)
        )
    };
    let out = expect_output(&program("index r3, r0, r0"), b"", b"");
    assert_eq!((out.regs[3], out.pc), (0x00AB_CDEF, 3));
    // Offset 4 was inside the old (long) array 0 but is past the end of the new one.
    let out = run_src(&program("index r3, r0, r6"), b"");
    assert_eq!(
        out.result
            .clone()
            .expect_err("array 0 has 4 words now")
            .to_string(),
        "fault at pc 2 (index): offset 4 outside array 0 (length 4)"
    );
}

#[test]
fn loadprog_source_can_be_abandoned_afterwards() {
    let src = format!(
        "
        literal r1, 5
        alloc r7, r1
        {copy}
        loadprog r7, r0
newprog:
        abandon r7
        literal r1, 'a'
        output r1
        halt
        halt
",
        copy = copy_to_r7("newprog", 5)
    );
    expect_output(&src, b"", b"a");
}

#[test]
fn loadprog_of_a_smaller_array_then_running_off_its_end() {
    // A 2-word program without halt: running off its end faults at pc 2 of the new array 0.
    let src = format!(
        "
        literal r1, 2
        alloc r7, r1
        {copy}
        literal r3, 'z'
        loadprog r7, r0
        halt
newprog:
        output r3
        output r3
",
        copy = copy_to_r7("newprog", 2)
    );
    let out = run_src(&src, b"");
    assert_eq!(out.stdout, b"zz");
    assert_eq!(
        out.result
            .clone()
            .expect_err("runs off the end")
            .to_string(),
        "fault at pc 2 (fetch): execution finger outside array 0 (length 2)"
    );
}

#[test]
fn loadprog_zero_after_amend_runs_the_amended_code() {
    // Jumping with B = 0 keeps array 0, including words amended before the jump.
    let src = "
        literal r1, target
        literal r2, repl
        index r2, r0, r2
        amend r0, r1, r2
        loadprog r0, r1
        halt
target: halt
        halt
repl:   output r3
    ";
    let src = format!("literal r3, 'q'\n{src}");
    // target now is 'output r3' followed by 'halt'.
    expect_output(&src, b"", b"q");
}

/// Division of a value the translator cannot know (it comes from an array) by a constant
/// power of two, which generated code does with a shift; into another register and into
/// the dividend's own.
#[test]
fn div_by_a_constant_power_of_two() {
    for (b, c) in [
        (0xFFFF_FFFF, 1),
        (0xFFFF_FFFF, 2),
        (0xFFFF_FFFF, 8),
        (0xDEAD_BEEF, 1 << 31),
        (0x7FFF_FFFF, 1 << 31),
        (12345, 1 << 16),
        (0x8000_0000, 1 << 4),
    ] {
        let unknown = format!(
            "{}literal r6, 1\nalloc r5, r6\nliteral r6, 0\namend r5, r6, r2\nindex r2, r5, r6\n{}",
            set(2, 7, b),
            set(3, 7, c)
        );
        let r = regs(&format!("{unknown}div r1, r2, r3\nhalt\n"));
        assert_eq!(r[1], b / c, "{b:#x} / {c:#x}");
        let r = regs(&format!("{unknown}div r2, r2, r3\nhalt\n"));
        assert_eq!(r[2], b / c, "{b:#x} / {c:#x} in place");
    }
}

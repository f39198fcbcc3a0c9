//! Programs aimed at the translator's own machinery (constant folding, immediates of every
//! size, two-way branches, exits), compared across every engine configuration by the shared
//! harness and checked against values worked out by hand.

mod common;
use common::*;
use umdbt::jit::JitOptions;
use umdbt::stats::{Counter, Stats};

/// x / x folds to 1 for a register the translator does not know, and still faults for 0.
#[test]
fn divide_register_by_itself() {
    let out = run_src(
        "
            literal r1, 7
            alloc r2, r1          ; r2: a non-zero value unknown to the translator
            div r3, r2, r2
            abandon r2
            input r4              ; 0xFFFFFFFF at end of input
            div r5, r4, r4
            halt
        ",
        b"",
    );
    assert_eq!(out.result, Ok(()));
    assert_eq!(out.regs[3], 1);
    assert_eq!(out.regs[5], 1);
    expect_fault(
        "
            input r1              ; 0 from the input below
            literal r2, 'z'
            output r2
            div r1, r1, r1
            halt
        ",
        b"\0",
        b"z",
        "fault at pc 3 (div): division by zero",
    );
}

/// Constants folded through every arithmetic operator, including ones wider than a literal.
#[test]
fn folded_constants_match_the_spec() {
    let out = run_src(
        "
            literal r0, 0
            nand r1, r0, r0       ; 0xFFFFFFFF
            literal r2, 0x1FFFFFF
            mul r3, r2, r2        ; (2^25-1)^2 mod 2^32
            add r4, r1, r1        ; 0xFFFFFFFE
            div r5, r1, r2        ; 0xFFFFFFFF / 0x1FFFFFF
            nand r6, r4, r2       ; ~(0xFFFFFFFE & 0x1FFFFFF)
            literal r7, 3
            cmov r7, r1, r0       ; condition known zero: r7 stays 3
            cmov r0, r2, r1       ; condition known non-zero: r0 = r2
            halt
        ",
        b"",
    );
    let (ones, big) = (0xFFFF_FFFFu32, 0x01FF_FFFFu32);
    assert_eq!(out.result, Ok(()));
    assert_eq!(out.regs[1], ones);
    assert_eq!(out.regs[3], big.wrapping_mul(big));
    assert_eq!(out.regs[4], 0xFFFF_FFFE);
    assert_eq!(out.regs[5], ones / big);
    assert_eq!(out.regs[6], !(0xFFFF_FFFEu32 & big));
    assert_eq!(out.regs[7], 3);
    assert_eq!(out.regs[0], big);
}

/// Known identifiers and offsets of every size: small ones become displacements, large ones
/// (which cannot) go through registers, and all of them fault exactly like the interpreter.
#[test]
fn constant_identifiers_and_offsets_of_every_size() {
    // A 100-word array; offsets 0, 99 and the huge 0xFFFFFFFF (folded from nand).
    let out = run_src(
        "
            literal r1, 100
            alloc r2, r1
            literal r3, 99
            literal r4, 0x77
            amend r2, r3, r4
            index r5, r2, r3
            literal r0, 0
            index r6, r0, r0      ; word 0 of array 0: 'literal r1, 100'
            halt
        ",
        b"",
    );
    assert_eq!(out.result, Ok(()));
    assert_eq!(out.regs[5], 0x77);
    assert_eq!(out.regs[6], 0xD200_0064);
    for (setup, message) in [
        (
            "literal r0, 0\nnand r3, r0, r0\nindex r5, r2, r3",
            "fault at pc 4 (index): offset 4294967295 outside array 1 (length 100)",
        ),
        (
            "literal r0, 0\nnand r3, r0, r0\namend r2, r3, r3",
            "fault at pc 4 (amend): offset 4294967295 outside array 1 (length 100)",
        ),
        (
            "literal r0, 0\nnand r3, r0, r0\nindex r5, r3, r0",
            "fault at pc 4 (index): array 4294967295 is not active",
        ),
        (
            "literal r3, 0x1000000\nliteral r0, 0\nindex r5, r3, r0",
            "fault at pc 4 (index): array 16777216 is not active",
        ),
        (
            "literal r3, 0x1FFFFFF\nliteral r0, 0\namend r3, r0, r0",
            "fault at pc 4 (amend): array 33554431 is not active",
        ),
        (
            "literal r3, 0x1000000\nliteral r4, 16\nmul r3, r3, r4\nindex r5, r2, r3",
            "fault at pc 5 (index): offset 268435456 outside array 1 (length 100)",
        ),
        (
            "literal r3, 100\nindex r5, r2, r3",
            "fault at pc 3 (index): offset 100 outside array 1 (length 100)",
        ),
    ] {
        let src = format!("literal r1, 100\nalloc r2, r1\n{setup}\nhalt\n");
        let out = run_src(&src, b"");
        assert_eq!(
            out.result.clone().map_err(|f| f.to_string()),
            Err(message.to_string()),
            "{src}"
        );
    }
}

/// The two-way branch idiom: count down from `start`, printing 'e' or 'o' through one of
/// two arms. With `overwrite`, the jump register is overwritten after the cmov, so the
/// branch must not use the stale pair (and the loop ends after one round).
fn two_way_program(start: u32, overwrite: bool) -> String {
    let clobber = if overwrite {
        "literal r4, done      ; overwrites the pair: always 'done'"
    } else {
        ""
    };
    format!(
        "
            literal r7, {start}
        top:
            literal r1, 1
            nand r2, r7, r1
            nand r2, r2, r2       ; r7 & 1
            literal r3, odd
            literal r4, even
            cmov r4, r3, r2
            loadprog r0, r4
        odd:
            literal r5, 'o'
            output r5
            literal r4, next
            loadprog r0, r4
        even:
            literal r5, 'e'
            output r5
        next:
            nand r6, r0, r0
            add r7, r7, r6
            literal r3, top
            literal r4, done
            cmov r4, r3, r7
            {clobber}
            loadprog r0, r4
        done:
            halt
        "
    )
}

#[test]
fn two_way_branches() {
    expect_output(&two_way_program(5, true), b"", b"o");
    expect_output(&two_way_program(6, false), b"", b"eoeoeo")
        .chained()
        .translators("nothing left to the interpreter", |_, s| {
            s[Counter::Interpreted] == 0
        });
}

/// A two-way jump whose target register each side then reads: the select the branch
/// decides is that side's constant there (the optimizing tier's `decide_selects`), on both
/// sides, in a loop run often enough for regions to form at the default threshold too.
#[test]
fn each_side_of_a_two_way_jump_reads_its_target() {
    let src = "
            literal r7, 1
    loop:   input r1                ; a byte, or all ones at the end of input
            add r2, r1, r7          ; zero only at the end
            literal r4, done
            literal r5, body
            cmov r4, r5, r2         ; r4 = body (pc 7) or done (pc 10)
            loadprog r0, r4
    body:   output r4
            literal r3, loop
            loadprog r0, r3
    done:   output r4
            halt
    ";
    let input = vec![b'x'; 3000];
    let mut want = vec![7u8; 3000];
    want.push(10);
    expect_output(src, &input, &want).translators("a region was compiled", |o, s| {
        o.opt_threshold.is_none() || s[Counter::RegionsCompiled] > 0
    });
}

/// Jumps to pcs outside array 0, to a constant and through a register, fault at fetch.
#[test]
fn jumps_outside_array_zero() {
    expect_fault(
        "literal r1, 1000\nloadprog r0, r1\n",
        b"",
        b"",
        "fault at pc 1000 (fetch): execution finger outside array 0 (length 2)",
    );
    expect_fault(
        "literal r1, 0\nnand r1, r1, r1\ninput r2\nloadprog r0, r1\n",
        b"",
        b"",
        "fault at pc 4294967295 (fetch): execution finger outside array 0 (length 4)",
    );
}

/// Load program from an array whose identifier is a known constant, and from one that is
/// not, then more translation in the new program.
#[test]
fn load_program_flushes_translations() {
    expect_output(
        "
            literal r1, 3
            alloc r2, r1          ; array 1 (known to be 1 only at run time)
            literal r3, 0
            literal r4, prog1
            index r4, r0, r4
            amend r2, r3, r4      ; [0] = 'output r6'
            literal r3, 1
            literal r4, prog2
            index r4, r0, r4
            amend r2, r3, r4      ; [1] = 'halt'
            literal r6, 'L'
            literal r5, 0
            loadprog r2, r5
        prog1:
            output r6
        prog2:
            halt
        ",
        b"",
        b"L",
    )
    .translators("load program interpreted, then a flush", |_, s| {
        s[Counter::Interpreted] == 1 && s[Counter::Flushes] == 1
    });
}

/// With the bounded identifier table (the fallback when the host refuses to reserve the
/// whole identifier space) generated code compares identifiers with the table length; the
/// faults and results must not change.
#[test]
fn bounded_identifier_table() {
    let program = asm("
            literal r1, 5
            alloc r2, r1          ; 1
            alloc r3, r1          ; 2
            abandon r2
            literal r4, 'a'
            output r4
            literal r5, 4
            amend r3, r5, r4
            index r6, r3, r5
            output r6
            literal r7, 0x1FFFFFF
            index r6, r7, r5      ; never allocated: beyond the table
            halt
        ");
    let path = write_program(&program);
    let path = path.to_str().unwrap();
    let want = "umdbt: fault at pc 11 (index): array 33554431 is not active\n";
    for (name, flags) in engine_flags() {
        for bounded in ["0", "1"] {
            let mut args = vec!["run"];
            args.extend(flags.iter().map(String::as_str));
            args.push(path);
            let out = umdbt()
                .args(&args)
                .env("UMDBT_BOUNDED_TABLE", bounded)
                .output()
                .unwrap();
            assert_eq!(out.stdout, b"aa", "{name}, bounded={bounded}");
            assert_eq!(
                String::from_utf8_lossy(&out.stderr),
                want,
                "{name}, bounded={bounded}"
            );
            assert_eq!(out.status.code(), Some(1));
        }
    }
}

/// The translator reuses an array's base and length across consecutive accesses through the
/// same identifier; every way the identifier or the array can change must end that reuse.
/// (No output in between: a runtime call would end the reuse anyway.)
#[test]
fn array_reuse_ends_when_identifier_or_array_changes() {
    expect_fault(
        "
            literal r1, 4
            alloc r2, r1          ; array 1
            alloc r3, r1          ; array 2
            literal r5, 1
            literal r0, 0
            literal r4, 'x'
            amend r2, r5, r4      ; 1[1] = 'x'
            literal r4, 'y'
            amend r3, r5, r4      ; 2[1] = 'y'
            amend r3, r0, r5      ; 2[0] = 1
            index r6, r2, r5      ; 'x'
            cmov r2, r3, r5       ; r2 names array 2
            index r7, r2, r5      ; 'y'
            index r2, r3, r0      ; r2 = 2[0] = 1: array 1 again
            index r1, r2, r5      ; 'x'
            output r6
            output r7
            output r1
            literal r4, 'z'
            amend r2, r5, r4      ; 1[1] = 'z'
            literal r2, 2         ; r2 names array 2 again
            index r6, r2, r5      ; 'y'
            abandon r3
            alloc r3, r5          ; array 2 again, one word long
            index r6, r2, r5      ; offset 1 of a 1-word array
            output r6
            halt
        ",
        b"",
        b"xyx",
        "fault at pc 24 (index): offset 1 outside array 2 (length 1)",
    );
}

/// A word read again names the array it named before only while nothing may have changed
/// it: a store at a variable offset, a store at the same offset (through the array's own
/// register or through another register naming the same array) and an abandonment each end
/// that. (Straight-line code with no output until the end, so that the optimizing tier's
/// configuration compiles it as one region and keeps arrays in register pairs throughout;
/// each read is folded into r5 with arithmetic, which leaves the pairs alone.)
#[test]
fn a_word_read_again_names_the_same_array_only_while_unchanged() {
    // r5 = 2 * r5 + r7 after each read.
    let fold = "add r5, r5, r5\nadd r5, r5, r7\n";
    let src = format!(
        "
            input r6              ; 1, a variable offset
            literal r0, 0
            literal r1, 2
            alloc r2, r1          ; G
            alloc r3, r1          ; A, A[0] = 'a'
            alloc r4, r1          ; B, B[0] = 'b'
            literal r5, 'a'
            amend r3, r0, r5
            literal r5, 'b'
            amend r4, r0, r5
            literal r1, 1
            literal r5, 0
            ; a store at a variable offset
            amend r2, r1, r3      ; G[1] = A
            index r7, r2, r1
            index r7, r7, r0      ; 'a'
            {fold}
            amend r2, r6, r4      ; G[1] = B
            index r7, r2, r1
            index r7, r7, r0      ; 'b'
            {fold}
            ; a store at the same constant offset
            amend r2, r1, r3      ; G[1] = A
            index r7, r2, r1
            index r7, r7, r0      ; 'a'
            {fold}
            amend r2, r1, r4      ; G[1] = B
            index r7, r2, r1
            index r7, r7, r0      ; 'b'
            {fold}
            ; the same word through another register naming the same array
            amend r4, r6, r2      ; B[1] = G (at a variable offset: nothing is known of
            index r6, r4, r1      ; r6 but that it names an array, G too)
            amend r2, r1, r3      ; G[1] = A
            index r7, r2, r1
            index r7, r7, r0      ; 'a'
            {fold}
            amend r6, r1, r4      ; G[1] = B, through r6
            index r7, r2, r1
            index r7, r7, r0      ; 'b'
            {fold}
            ; r5 in two bytes
            literal r1, 256
            div r7, r5, r1
            mul r6, r7, r1
            nand r6, r6, r6
            literal r1, 1
            add r6, r6, r1
            add r6, r5, r6
            output r7
            output r6
            ; an abandonment
            amend r2, r1, r3      ; G[1] = A
            index r7, r2, r1
            index r5, r7, r0
            abandon r7
            index r7, r2, r1      ; A again, abandoned
            index r5, r7, r0
            halt
        "
    );
    let reads = [b'a', b'b', b'a', b'b', b'a', b'b'];
    let r5 = reads.iter().fold(0u32, |acc, &r| 2 * acc + r as u32);
    let fault_pc = umdbt::assembler::assemble(&src).unwrap().len() - 2;
    expect_fault(
        &src,
        b"\x01",
        &[(r5 / 256) as u8, (r5 % 256) as u8],
        &format!("fault at pc {fault_pc} (index): array 2 is not active"),
    );
}

/// A word read again, with nothing in between that may have changed it, is the value read
/// or stored before; the optimizing tier copies it from where it still is (a constant
/// stored, a register stored, an earlier read) instead of reading memory again, and reads
/// again once a store may have changed the word.
#[test]
fn a_word_read_again_is_the_value_read_or_stored_before() {
    // Straight-line code: only the configurations that compile regions at first sight
    // compile it as one (and must have).
    let compiled_a_region =
        |o: &JitOptions, s: &Stats| o.opt_threshold != Some(0) || s[Counter::RegionsCompiled] > 0;
    expect_output(
        "
            literal r0, 0
            literal r1, 128
            alloc r2, r1
            literal r3, 'x'
            amend r2, r0, r3      ; word 0 = 'x' (a constant)
            index r4, r2, r0      ; 'x'
            output r4
            literal r5, 1
            input r6
            amend r2, r5, r6      ; word 1 = the input (a register)
            index r4, r2, r5      ; the input
            output r4
            input r6              ; the register stored is overwritten
            index r7, r2, r5      ; the first input still (in r4)
            output r7
            amend r2, r0, r6      ; word 0 = the second input: word 1 unchanged
            index r3, r2, r5      ; the first input (in r4 and r7)
            output r3
            index r3, r2, r0      ; the second input
            output r3
            amend r2, r6, r3      ; a variable offset ('B'): word 1 may change
            index r3, r2, r5      ; read again (the second case below changes it)
            output r3
            halt
        ",
        b"AB",
        b"xAAABA",
    )
    .translators("a region was compiled", compiled_a_region);
    expect_output(
        "
            literal r0, 0
            literal r1, 3
            alloc r2, r1
            literal r5, 1
            input r6
            amend r2, r5, r6
            input r6
            index r4, r2, r5
            output r4
            amend r2, r5, r4      ; the value read, stored back
            index r4, r2, r5      ; the same, already in r4
            output r4
            amend r2, r6, r6      ; r6 = 1 (the second input): word 1 = 1
            index r3, r2, r5
            output r3
            halt
        ",
        b"A\x01",
        b"AA\x01",
    )
    .translators("a region was compiled", compiled_a_region);
}

/// A constant offset into array 0 below its length needs no check while a translation
/// lives, because replacing array 0 flushes every translation: after load program from a
/// shorter copy, the same code reading past the new end must fault.
#[test]
fn array_zero_offsets_are_checked_again_after_load_program() {
    let src = "
        top:
            literal r0, 0
            literal r7, far
            index r1, r0, r7      ; in bounds while array 0 is the whole program
            output r1
            literal r2, end       ; copy words 0..end of array 0, then run the copy
            alloc r3, r2
            nand r6, r0, r0       ; -1
            literal r4, end
        copy:
            add r4, r4, r6
            index r5, r0, r4
            amend r3, r4, r5
            literal r1, done
            literal r5, copy
            cmov r1, r5, r4       ; r4 != 0 ? copy : done
            loadprog r0, r1
        done:
            literal r1, top
            loadprog r3, r1
        end:
            word 0
            word 0
        far:
            word 'F'
    ";
    let program = asm(src);
    let far = program.len() - 1;
    let end = far - 2;
    expect_fault(
        src,
        b"",
        b"F",
        &format!("fault at pc 2 (index): offset {far} outside array 0 (length {end})"),
    );
}

/// Output goes through the output routine's fast path in generated code except for a
/// newline, a byte that fills the buffer, and a value above 255: 150,000 bytes with a
/// newline every 40,000 (so the buffer fills between newlines), then 256, which faults.
#[test]
fn output_through_the_fast_path_and_around_it() {
    let src = "
            literal r7, 15000      ; r7 = 150,000, counted down
            literal r1, 10
            mul r7, r7, r1
            literal r5, 40000
            literal r6, 0          ; r6: bytes since the last newline
        top:
            nand r2, r7, r7        ; r2 = 'a' + (r7 & 15)
            nand r2, r2, r2
            literal r1, 15
            nand r2, r2, r1
            nand r2, r2, r2
            literal r1, 'a'
            add r2, r2, r1
            output r2
            literal r1, 1
            add r6, r6, r1
            nand r3, r6, r6        ; r3 = r6 - 40000: zero when a newline is due
            literal r1, 40001
            add r3, r3, r1
            nand r3, r3, r3
            literal r1, 1
            add r3, r3, r1
            literal r4, line
            literal r1, count
            cmov r4, r1, r3
            loadprog r0, r4
        line:
            literal r1, 10
            output r1
            literal r6, 0
        count:
            literal r1, 0
            nand r1, r1, r1
            add r7, r7, r1         ; r7 -= 1
            literal r4, last
            literal r1, top
            cmov r4, r1, r7
            loadprog r0, r4
        last:
            literal r1, 256
            output r1
            halt
    ";
    let mut expected = Vec::new();
    let mut since = 0;
    for r7 in (1..=150_000u32).rev() {
        expected.push(b'a' + (r7 & 15) as u8);
        since += 1;
        if since == 40_000 {
            expected.push(b'\n');
            since = 0;
        }
    }
    let out = run_src(src, b"");
    assert_eq!(out.stdout.len(), expected.len(), "bytes before the fault");
    assert!(out.stdout == expected, "output differs");
    match &out.result {
        Err(f) => assert!(f.to_string().contains("256"), "{f}"),
        Ok(()) => panic!("output 256 must fault"),
    }
}

/// A loop whose first block reads an array named by a register the edges into it bring:
/// the optimizing tier has that array looked up on each edge, or taken from the register
/// pair that holds it already where the edge leaves (here the loop's end reads the next
/// node too, so the array is at hand when the loop goes back). A walk around a cycle of two
/// nodes, A (3) and B (5), adding each node's value and the next one's: 8 per turn.
#[test]
fn a_loop_starts_with_the_array_its_edges_bring() {
    let src = "
            literal r0, 0
            literal r7, 1
            literal r1, 2
            alloc r3, r1          ; A
            alloc r4, r1          ; B
            amend r3, r7, r4      ; A.next = B
            amend r4, r7, r3      ; B.next = A
            literal r2, 3
            amend r3, r0, r2
            literal r2, 5
            amend r4, r0, r2
            literal r6, 0         ; the sum
            literal r5, 30        ; turns
            add r1, r3, r0        ; the node: A
    loop:   index r2, r1, r0      ; the node's value
            add r6, r6, r2
            index r1, r1, r7      ; the next node
            index r2, r1, r0      ; and its value
            add r6, r6, r2
            nand r3, r0, r0
            add r5, r5, r3        ; one turn fewer
            literal r3, done
            literal r4, loop
            cmov r3, r4, r5
            loadprog r0, r3
    done:   output r6
            halt
    ";
    expect_output(src, b"", &[240]).translators("a region was compiled", |o, s| {
        o.opt_threshold != Some(0) || s[Counter::RegionsCompiled] > 0
    });
}

/// The same kind of loop reaching an abandoned array: the lookup on the edge back finds it
/// inactive (length 0), and the access at the loop's start faults as it should.
#[test]
fn a_loop_that_starts_with_an_array_its_edges_bring_faults_on_an_inactive_one() {
    let src = "
            literal r0, 0
            literal r7, 1
            literal r1, 2
            alloc r3, r1          ; A (identifier 1)
            alloc r4, r1          ; B (2)
            alloc r5, r1          ; C (3)
            amend r3, r7, r4      ; A.next = B
            amend r4, r7, r5      ; B.next = C
            literal r2, 'a'
            amend r3, r0, r2
            literal r2, 'b'
            amend r4, r0, r2
            abandon r5
            add r1, r3, r0        ; the node: A
    loop:   index r2, r1, r0      ; (pc 14) faults at C
            output r2
            index r1, r1, r7
            literal r4, loop
            loadprog r0, r4
    ";
    expect_fault(
        src,
        b"",
        b"ab",
        "fault at pc 14 (index): array 3 is not active",
    );
}

/// A loop left through a two-way branch `rounds` times, for
/// `a_constant_jump_target_is_interpreted_until_it_is_warm`.
fn leave_a_loop(rounds: u32) -> String {
    format!(
        "
            literal r6, 0
            nand r6, r6, r6         ; -1
            literal r5, {rounds}
    again:  literal r7, 4
    loop:   add r7, r7, r6
            literal r3, loop
            literal r4, tail
            cmov r4, r3, r7         ; to loop while r7 is not 0, else to tail
            loadprog r0, r4
    tail:   literal r1, 'T'
            output r1
            add r5, r5, r6
            literal r3, again
            literal r4, done
            cmov r4, r3, r5
            loadprog r0, r4
    done:   halt
    "
    )
}

/// Under the default `--translate-after 1`, a constant jump out of translated code leaves
/// its target to the interpreter the first time, as any other way of reaching code does,
/// and is chained to it once the target is translated (the second time).
#[test]
fn a_constant_jump_target_is_interpreted_until_it_is_warm() {
    if !umdbt::arch::TRANSLATOR_AVAILABLE {
        eprintln!("SKIPPED: no translator for this host");
        return;
    }
    // The statistics of the default configuration (the others translate at first sight).
    let default = |runs: &Runs| -> umdbt::stats::Stats {
        let found = runs.stats.iter().find(|(e, _)| {
            matches!(e, umdbt::engine::Engine::Translator(o) if *o == umdbt::jit::JitOptions::default())
        });
        match found {
            Some((_, s)) => *s,
            None => panic!("no default translator configuration"),
        }
    };
    // The block at `loop` is translated the second time it is reached there, and jumps to
    // itself (chained); its last run jumps to `tail`, which runs once: interpreted, never
    // translated.
    let once = expect_output(&leave_a_loop(1), b"", b"T");
    let s = default(&once);
    assert_eq!(s[Counter::BlocksTranslated], 1, "{s:?}");
    assert_eq!(s[Counter::LinksMade], 1, "{s:?}");
    // Reached again from the translated loop, `tail` is translated and the jump chained.
    let twice = expect_output(&leave_a_loop(2), b"", b"TT");
    let s = default(&twice);
    assert_eq!(s[Counter::BlocksTranslated], 2, "{s:?}");
    assert_eq!(s[Counter::LinksMade], 2, "{s:?}");
}

//! Every way a UM program can fail ("Cost-Cutting Measures" in the specification, plus the
//! console and memory-limit cases), in-process and through the `umdbt` binary.
//!
//! For each fault: the exact message (`fault at pc N (OP): REASON`), the output printed
//! before it is kept, and nothing after the faulting instruction runs.

mod common;

use common::{expect_fault, run_cli, run_cli_all, run_src, write_program};

/// A prefix that prints "ok" (4 instructions), so every fault below has output to keep.
const OK: &str = "literal r1, 'o'\noutput r1\nliteral r1, 'k'\noutput r1\n";

/// Run `src`, assert that it faults after printing `stdout`, and compare the message with
/// the one `message` builds from the registers at the fault (for identifiers the program
/// obtained from `alloc`). Through the binary the same message must appear on stderr.
fn expect_fault_with(src: &str, stdout: &[u8], message: impl Fn(&[u32; 8]) -> String) {
    let out = run_src(src, b"");
    let want = message(&out.regs);
    match &out.result {
        Err(f) => assert_eq!(f.to_string(), want, "fault message\n{src}"),
        Ok(()) => panic!("expected fault '{want}', program halted\n{src}"),
    }
    assert_eq!(out.stdout, stdout, "output before the fault\n{src}");
    let cli = run_cli_all(&common::asm(src), b"");
    assert_eq!(cli.status, Some(1), "exit status\n{src}");
    assert_eq!(cli.stdout, stdout, "stdout before the fault\n{src}");
    assert_eq!(cli.stderr, format!("umdbt: {want}\n"), "stderr\n{src}");
}

/// `src` must fault with `message` after printing "ok", in-process and through the binary
/// (one line on stderr, exit status 1, "ok" on stdout).
fn fault_everywhere(src: &str, message: &str) {
    let out = expect_fault(src, b"", b"ok", message);
    // Nothing after the faulting instruction ran: the pc names it.
    let pc: u32 = message
        .strip_prefix("fault at pc ")
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("message names the pc");
    assert_eq!(out.pc, pc, "final pc");
    let cli = run_cli_all(&common::asm(src), b"");
    assert_eq!(cli.status, Some(1), "exit status\n{src}");
    assert_eq!(cli.stdout, b"ok", "stdout before the fault\n{src}");
    assert_eq!(cli.stderr, format!("umdbt: {message}\n"), "stderr\n{src}");
}

// ---- invalid instructions ----

#[test]
fn invalid_opcode_14() {
    fault_everywhere(
        &format!("{OK}invalid14\nhalt"),
        "fault at pc 4 (invalid14): invalid opcode 14",
    );
    // With the other bits set.
    fault_everywhere(
        &format!("{OK}word 0xEFFFFFFF\nhalt"),
        "fault at pc 4 (invalid14): invalid opcode 14",
    );
}

#[test]
fn invalid_opcode_15() {
    fault_everywhere(
        &format!("{OK}invalid15\nhalt"),
        "fault at pc 4 (invalid15): invalid opcode 15",
    );
    fault_everywhere(
        &format!("{OK}word 0xFFFFFFFF\nhalt"),
        "fault at pc 4 (invalid15): invalid opcode 15",
    );
}

#[test]
fn invalid_opcode_reached_by_a_jump_and_by_self_modification() {
    // Jumping over an invalid instruction is fine; landing on one is not.
    fault_everywhere(
        &format!("{OK}literal r2, bad\nloadprog r0, r2\nhalt\nbad: invalid15\nhalt"),
        "fault at pc 7 (invalid15): invalid opcode 15",
    );
    let src = "literal r2, skip\nloadprog r0, r2\ninvalid14\nskip: halt";
    common::expect_output(src, b"", b"");
    // An amend that writes an invalid instruction ahead of the pc.
    fault_everywhere(
        &format!("{OK}nand r3, r0, r0\nliteral r2, target\namend r0, r2, r3\ntarget: halt\nhalt"),
        "fault at pc 7 (invalid15): invalid opcode 15",
    );
}

// ---- the execution finger leaves array 0 ----

#[test]
fn running_off_the_end_of_array_0() {
    fault_everywhere(
        OK,
        "fault at pc 4 (fetch): execution finger outside array 0 (length 4)",
    );
    // A program of one word that is not a halt.
    let out = expect_fault(
        "literal r1, 1",
        b"",
        b"",
        "fault at pc 1 (fetch): execution finger outside array 0 (length 1)",
    );
    assert_eq!(out.regs[1], 1);
}

#[test]
fn jumping_past_the_end_of_array_0() {
    // To exactly the length, far past it and to 0xFFFFFFFF.
    fault_everywhere(
        &format!("{OK}literal r2, 7\nloadprog r0, r2\nhalt"),
        "fault at pc 7 (fetch): execution finger outside array 0 (length 7)",
    );
    fault_everywhere(
        &format!("{OK}literal r2, 1000000\nloadprog r0, r2\nhalt"),
        "fault at pc 1000000 (fetch): execution finger outside array 0 (length 7)",
    );
    fault_everywhere(
        &format!("{OK}nand r2, r0, r0\nloadprog r0, r2\nhalt"),
        "fault at pc 4294967295 (fetch): execution finger outside array 0 (length 7)",
    );
}

// ---- index and amend ----

#[test]
fn index_out_of_bounds() {
    // offset == length
    let src = format!("{OK}literal r7, 3\nalloc r1, r7\nindex r2, r1, r7\nhalt");
    expect_fault_with(&src, b"ok", |r| {
        format!(
            "fault at pc 6 (index): offset 3 outside array {} (length 3)",
            r[1]
        )
    });
    // huge offset
    let src = format!("{OK}literal r7, 3\nalloc r1, r7\nnand r6, r0, r0\nindex r2, r1, r6\nhalt");
    expect_fault_with(&src, b"ok", |r| {
        format!(
            "fault at pc 7 (index): offset 4294967295 outside array {} (length 3)",
            r[1]
        )
    });
    // array 0: offset == length and beyond
    fault_everywhere(
        &format!("{OK}literal r2, 7\nindex r3, r0, r2\nhalt"),
        "fault at pc 5 (index): offset 7 outside array 0 (length 7)",
    );
    fault_everywhere(
        &format!("{OK}nand r2, r0, r0\nindex r3, r0, r2\nhalt"),
        "fault at pc 5 (index): offset 4294967295 outside array 0 (length 7)",
    );
}

#[test]
fn amend_out_of_bounds() {
    let src = format!("{OK}literal r7, 3\nalloc r1, r7\namend r1, r7, r7\nhalt");
    expect_fault_with(&src, b"ok", |r| {
        format!(
            "fault at pc 6 (amend): offset 3 outside array {} (length 3)",
            r[1]
        )
    });
    let src = format!("{OK}literal r7, 3\nalloc r1, r7\nnand r6, r0, r0\namend r1, r6, r7\nhalt");
    expect_fault_with(&src, b"ok", |r| {
        format!(
            "fault at pc 7 (amend): offset 4294967295 outside array {} (length 3)",
            r[1]
        )
    });
    fault_everywhere(
        &format!("{OK}literal r2, 7\namend r0, r2, r2\nhalt"),
        "fault at pc 5 (amend): offset 7 outside array 0 (length 7)",
    );
}

#[test]
fn out_of_bounds_fault_leaves_the_destination_alone() {
    let src = "literal r3, 33\nliteral r7, 2\nalloc r1, r7\nindex r3, r1, r7\nhalt";
    let out = run_src(src, b"");
    assert!(out.result.is_err());
    assert_eq!(out.regs[3], 33, "index that faulted wrote its register");
}

#[test]
fn index_and_amend_of_a_never_allocated_array() {
    fault_everywhere(
        &format!("{OK}literal r1, 12345\nindex r2, r1, r0\nhalt"),
        "fault at pc 5 (index): array 12345 is not active",
    );
    fault_everywhere(
        &format!("{OK}literal r1, 12345\namend r1, r0, r0\nhalt"),
        "fault at pc 5 (amend): array 12345 is not active",
    );
    fault_everywhere(
        &format!("{OK}nand r1, r0, r0\nindex r2, r1, r0\nhalt"),
        "fault at pc 5 (index): array 4294967295 is not active",
    );
    fault_everywhere(
        &format!("{OK}literal r1, 1\namend r1, r0, r0\nhalt"),
        "fault at pc 5 (amend): array 1 is not active",
    );
}

/// A small array's slot ends with a copy of its length (the word generated code checks
/// offsets against): no offset reaches that word. The identifiers are read back from an
/// array, so that translated code has them in a register, not as constants.
#[test]
fn the_slot_length_word_is_not_an_element() {
    let full = "literal r7, 7\nalloc r1, r7\nliteral r6, 1\nalloc r2, r6\namend r2, r0, r1\n\
                index r3, r2, r0\nliteral r5, 7\n";
    for (op, line) in [("index", "index r4, r3, r5"), ("amend", "amend r3, r5, r5")] {
        let src = format!("{OK}{full}{line}\nhalt");
        expect_fault_with(&src, b"ok", |r| {
            format!(
                "fault at pc 11 ({op}): offset 7 outside array {} (length 7)",
                r[1]
            )
        });
    }
    // The last element is not the length word either.
    let src = format!("{OK}{full}literal r5, 6\namend r3, r5, r7\nindex r4, r3, r5\nhalt");
    let out = run_src(&src, b"");
    assert_eq!(out.result, Ok(()));
    assert_eq!(out.regs[4], 7);
    // The largest identifier, never allocated.
    fault_everywhere(
        &format!(
            "{OK}literal r6, 1\nalloc r2, r6\nnand r4, r0, r0\namend r2, r0, r4\n\
             index r3, r2, r0\nindex r5, r3, r0\nhalt"
        ),
        "fault at pc 9 (index): array 4294967295 is not active",
    );
}

#[test]
fn index_and_amend_of_an_abandoned_array() {
    let src = format!("{OK}literal r7, 4\nalloc r1, r7\nabandon r1\nindex r2, r1, r0\nhalt");
    expect_fault_with(&src, b"ok", |r| {
        format!("fault at pc 7 (index): array {} is not active", r[1])
    });
    let src = format!("{OK}literal r7, 4\nalloc r1, r7\nabandon r1\namend r1, r0, r7\nhalt");
    expect_fault_with(&src, b"ok", |r| {
        format!("fault at pc 7 (amend): array {} is not active", r[1])
    });
    // Abandoning a zero-length array makes it inactive too.
    let src = format!("{OK}alloc r1, r0\nabandon r1\nindex r2, r1, r0\nhalt");
    expect_fault_with(&src, b"ok", |r| {
        format!("fault at pc 6 (index): array {} is not active", r[1])
    });
}

// ---- abandon ----

#[test]
fn abandon_array_0() {
    fault_everywhere(
        &format!("{OK}abandon r0\nhalt"),
        "fault at pc 4 (abandon): abandoning array 0",
    );
}

#[test]
fn abandon_an_inactive_array() {
    fault_everywhere(
        &format!("{OK}literal r1, 5\nabandon r1\nhalt"),
        "fault at pc 5 (abandon): array 5 is not active",
    );
    // Twice.
    let src = format!("{OK}literal r7, 2\nalloc r1, r7\nabandon r1\nabandon r1\nhalt");
    expect_fault_with(&src, b"ok", |r| {
        format!("fault at pc 7 (abandon): array {} is not active", r[1])
    });
}

// ---- arithmetic and console ----

#[test]
fn division_by_zero() {
    let out = expect_fault(
        &format!("{OK}literal r1, 5\nliteral r2, 77\ndiv r2, r1, r0\nhalt"),
        b"",
        b"ok",
        "fault at pc 6 (div): division by zero",
    );
    assert_eq!(
        out.regs[2], 77,
        "the division that faulted wrote its register"
    );
    fault_everywhere(
        &format!("{OK}div r2, r0, r0\nhalt"),
        "fault at pc 4 (div): division by zero",
    );
    fault_everywhere(
        &format!("{OK}nand r1, r0, r0\ndiv r1, r1, r0\nhalt"),
        "fault at pc 5 (div): division by zero",
    );
}

#[test]
fn output_larger_than_255() {
    fault_everywhere(
        &format!("{OK}literal r1, 256\noutput r1\nhalt"),
        "fault at pc 5 (output): output value 256 is larger than 255",
    );
    fault_everywhere(
        &format!("{OK}nand r1, r0, r0\noutput r1\nhalt"),
        "fault at pc 5 (output): output value 4294967295 is larger than 255",
    );
    // Echoing the end-of-input value is a classic mistake.
    fault_everywhere(
        &format!("{OK}input r1\noutput r1\nhalt"),
        "fault at pc 5 (output): output value 4294967295 is larger than 255",
    );
}

// ---- load program ----

#[test]
fn load_program_from_an_inactive_array() {
    fault_everywhere(
        &format!("{OK}literal r1, 7\nloadprog r1, r0\nhalt"),
        "fault at pc 5 (loadprog): array 7 is not active",
    );
    let src = format!("{OK}literal r7, 3\nalloc r1, r7\nabandon r1\nloadprog r1, r0\nhalt");
    expect_fault_with(&src, b"ok", |r| {
        format!("fault at pc 7 (loadprog): array {} is not active", r[1])
    });
}

#[test]
fn load_program_of_an_empty_array_then_fetch_fails() {
    // Loading a zero-length array is allowed; the next fetch is outside the new array 0.
    let src = format!("{OK}alloc r1, r0\nloadprog r1, r0\nhalt");
    let out = run_src(&src, b"");
    assert_eq!(out.stdout, b"ok");
    assert_eq!(
        out.result.clone().expect_err("nothing to run").to_string(),
        "fault at pc 0 (fetch): execution finger outside array 0 (length 0)"
    );
}

// ---- memory ----

#[test]
fn allocation_too_large_for_the_memory_limit() {
    // The in-process limit is 1 GiB (common::TEST_MEMORY).
    // (In-process only: the binary's default limit depends on the machine's RAM.)
    let out = expect_fault(
        &format!("{OK}nand r1, r0, r0\nalloc r2, r1\nhalt"),
        b"",
        b"ok",
        "fault at pc 5 (alloc): cannot allocate an array of 4294967295 words: out of memory",
    );
    assert_eq!(out.regs[2], 0, "the failed alloc wrote its register");
    // 2^28 words are exactly 1 GiB, which does not fit next to array 0.
    expect_fault(
        &format!("{OK}literal r1, 0x1000000\nliteral r2, 16\nmul r1, r1, r2\nalloc r2, r1\nhalt"),
        b"",
        b"ok",
        "fault at pc 7 (alloc): cannot allocate an array of 268435456 words: out of memory",
    );
}

#[test]
fn cli_max_memory_limit() {
    // 1M words (4 MiB) do not fit in --max-memory 1M; 1000 words do.
    let big = write_program(&common::asm(&format!(
        "{OK}literal r1, 1000\nalloc r2, r1\nliteral r1, 0x100000\nalloc r2, r1\nhalt"
    )));
    let small = write_program(&common::asm(&format!(
        "{OK}literal r1, 1000\nalloc r2, r1\nliteral r3, 999\namend r2, r3, r1\nhalt"
    )));
    for (name, flags) in common::engine_flags() {
        let mut args = vec!["run", "--max-memory", "1M"];
        args.extend(flags.iter().map(String::as_str));
        let out = run_cli(&[&args[..], &[big.to_str().unwrap()]].concat(), b"");
        assert_eq!(out.status, Some(1), "{name}: {out:?}");
        assert_eq!(out.stdout, b"ok", "{name}");
        assert_eq!(
            out.stderr,
            "umdbt: fault at pc 7 (alloc): cannot allocate an array of 1048576 words: out of \
             memory\n",
            "{name}"
        );
        let out = run_cli(&[&args[..], &[small.to_str().unwrap()]].concat(), b"");
        assert_eq!(
            (out.status, &out.stdout[..]),
            (Some(0), &b"ok"[..]),
            "{name}: {out:?}"
        );
        assert_eq!(out.stderr, "", "{name}");
    }
}

#[test]
fn cli_fault_after_much_output_keeps_all_of_it() {
    // 100,000 bytes (more than any output buffer) and then a division by zero.
    let src = "
        literal r7, 1
        literal r6, 100000
        nand r5, r0, r0
loop:   literal r1, 'a'
        output r1
        add r6, r6, r5
        literal r2, done
        literal r3, loop
        cmov r2, r3, r6
        loadprog r0, r2
done:   div r1, r1, r0
    ";
    let out = run_cli_all(&common::asm(src), b"");
    assert_eq!(out.status, Some(1));
    assert_eq!(out.stdout.len(), 100_000);
    assert!(out.stdout.iter().all(|&b| b == b'a'));
    assert_eq!(
        out.stderr,
        "umdbt: fault at pc 10 (div): division by zero\n"
    );
}

#[test]
fn cli_fault_message_is_one_line_without_panic() {
    for src in [
        "invalid14",
        "abandon r0",
        "literal r1, 9\nindex r1, r1, r1",
        "literal r1, 1\ndiv r1, r1, r0",
    ] {
        let out = run_cli_all(&common::asm(src), b"");
        assert_eq!(out.status, Some(1), "{src}: {out:?}");
        assert!(
            out.stderr.starts_with("umdbt: fault at pc "),
            "{src}: {out:?}"
        );
        assert_eq!(out.stderr.lines().count(), 1, "{src}: {out:?}");
        assert!(!out.stderr.contains("panicked"), "{src}: {out:?}");
    }
}

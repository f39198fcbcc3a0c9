//! Hostile input: every program here either runs or ends in a clean fault, on every engine
//! configuration, never a panic, abort, crash or runaway memory use.

mod common;
use common::*;

/// Run `program` through the binary on every engine with `extra` flags; all must agree.
fn cli_everywhere(program: &[u32], extra: &[&str]) -> CliOutcome {
    let path = write_program(program);
    let path = path.to_str().expect("utf-8 temp path");
    let mut first: Option<CliOutcome> = None;
    for (name, flags) in engine_flags() {
        let mut args = vec!["run"];
        args.extend(flags.iter().map(String::as_str));
        args.extend_from_slice(extra);
        args.push(path);
        let out = run_cli(&args, b"");
        assert!(!out.stderr.contains("panicked"), "{name}: {}", out.stderr);
        match &first {
            None => first = Some(out),
            Some(f) => assert_eq!(&out, f, "{name} disagrees"),
        }
    }
    first.expect("at least one engine")
}

/// A loop that runs `body` `count` times (count < 2^25); r6 and r7 are used by the loop.
fn counted(count: u32, body: &str) -> String {
    format!(
        "
            literal r6, {count}
        top:
            {body}
            literal r7, 0
            nand r7, r7, r7
            add r6, r6, r7
            literal r7, top
            literal r5, done
            cmov r5, r7, r6
            literal r7, 0
            loadprog r7, r5
        done:
            halt
        "
    )
}

#[test]
fn allocating_every_word_is_a_clean_fault() {
    let program = asm("literal r0, 0\nnand r1, r0, r0\nalloc r2, r1\nhalt\n");
    let out = cli_everywhere(&program, &["--max-memory", "64M"]);
    assert_eq!(out.status, Some(1));
    assert_eq!(
        out.stderr,
        "umdbt: fault at pc 2 (alloc): cannot allocate an array of 4294967295 words: out of memory\n"
    );
}

#[test]
fn two_million_live_arrays() {
    let out = run_src(&counted(2_000_000, "literal r1, 1\n alloc r2, r1"), b"");
    assert_eq!(out.result, Ok(()));
    assert_eq!(
        out.regs[2], 2_000_000,
        "identifiers 1..=2,000,000 are all live"
    );
}

#[test]
fn endless_allocation_meets_the_memory_limit() {
    // One byte of output per array: every engine must stop at the same allocation (the
    // fast paths charge never-used identifiers against the limit themselves).
    let program = asm(&counted(
        20_000_000,
        "literal r1, 3\n alloc r2, r1\n literal r3, 46\n output r3",
    ));
    let out = cli_everywhere(&program, &["--max-memory", "32M"]);
    assert_eq!(out.status, Some(1));
    assert!(out.stdout.len() > 100_000, "{} arrays", out.stdout.len());
    assert!(
        out.stderr
            .starts_with("umdbt: fault at pc 2 (alloc): cannot allocate an array of 3 words"),
        "{}",
        out.stderr
    );
}

#[test]
fn hundred_megabyte_program() {
    let mut program = asm("literal r1, 'O'\noutput r1\nliteral r1, 'K'\noutput r1\nhalt\n");
    program.resize(25 << 20, 0);
    let out = cli_everywhere(&program, &[]);
    assert_eq!((out.status, out.stdout.as_slice()), (Some(0), &b"OK"[..]));
}

#[test]
fn loop_storing_over_its_own_code() {
    // Every iteration rewrites the first instruction of its own body (with the same word),
    // which invalidates the running block each time.
    let src = counted(
        20_000,
        "
        body:
            literal r0, 0
            literal r1, body
            index r2, r0, r1
            amend r0, r1, r2
            add r3, r3, r2
        ",
    );
    let out = run_src(&src, b"");
    assert_eq!(out.result, Ok(()));
    let word = asm("literal r0, 0")[0];
    assert_eq!(out.regs[3], word.wrapping_mul(20_000));
}

#[test]
fn long_chain_of_load_program_copies() {
    // Array 1 is a copy of the program; each iteration loads it (flushing every
    // translation) and continues after the load.
    let src = "
            literal r1, end
            alloc r2, r1          ; array 1: room for a copy
            literal r3, 0
            literal r4, 1
        copy:
            index r5, r0, r3
            amend r2, r3, r5
            add r3, r3, r4
            nand r5, r3, r3
            add r5, r5, r4
            add r5, r5, r1        ; end - i
            literal r6, copy
            literal r7, copied
            cmov r7, r6, r5
            loadprog r0, r7
        copied:
            literal r6, 5000      ; iterations
        again:
            literal r7, next
            loadprog r2, r7       ; array 0 := copy of array 1
        next:
            nand r5, r0, r0
            add r6, r6, r5
            literal r5, again
            literal r7, done
            cmov r7, r5, r6
            loadprog r0, r7
        done:
            halt
        end:
        ";
    let out = run_src(src, b"");
    assert_eq!(out.result, Ok(()));
    assert_eq!(out.regs[6], 0);
}

#[test]
fn output_flood() {
    let program = asm(&counted(3_000_000, "literal r1, 'x'\n output r1"));
    let out = cli_everywhere(&program, &[]);
    assert_eq!(out.status, Some(0));
    assert_eq!(out.stdout.len(), 3_000_000);
    assert!(out.stdout.iter().all(|&b| b == b'x'));
}

/// After load program, identifier 0 names the new array 0: an access at its length faults
/// with the new length, and one inside it reads the new contents.
#[test]
fn identifier_zero_after_load_program() {
    // The new program (4 words), copied from `new` below:
    //   index r3, r0, r6    ; r6 = 3: the last word of the new array 0 (the halt)
    //   literal r1, 4
    //   index r2, r0, r1    ; offset 4 = the new length: fault
    //   halt
    let src = "
            literal r0, 0
            literal r1, 4
            alloc r2, r1          ; array 1: the new program
            literal r4, 0
            literal r5, 1
        copy:
            literal r6, new
            add r6, r6, r4
            index r7, r0, r6
            amend r2, r4, r7
            add r4, r4, r5
            nand r7, r4, r4
            add r7, r7, r5
            add r7, r7, r1        ; 4 - i
            literal r6, copy
            literal r3, load
            cmov r3, r6, r7
            loadprog r0, r3
        load:
            literal r6, 3
            loadprog r2, r0       ; array 0 := array 1, pc 0
        new:
            index r3, r0, r6
            literal r1, 4
            index r2, r0, r1
            halt
        ";
    let out = expect_fault(
        src,
        b"",
        b"",
        "fault at pc 2 (index): offset 4 outside array 0 (length 4)",
    );
    assert_eq!(out.regs[3], 0x7000_0000, "read the halt of the new array 0");
}

//! Self-modifying code: every engine configuration (interpreter, translator with and without
//! chaining, one-op blocks) must see a store into array 0 before the next instruction runs.

mod common;
use common::*;
use umdbt::stats::Counter;

/// A store into the very next instruction of the running block.
#[test]
fn store_into_next_instruction_of_running_block() {
    let out = expect_output(
        "
            literal r0, 0
            literal r4, 'A'
            literal r3, 'B'
            literal r1, new
            index r2, r0, r1      ; r2 = encoding of 'output r3'
            literal r1, target
            amend r0, r1, r2      ; patch the next instruction
        target:
            output r4             ; becomes 'output r3'
            halt
        new:
            output r3
        ",
        b"",
        b"B",
    );
    assert_eq!(out.regs[2], 0xA000_0003);
    // With one-operation blocks the target is not translated yet when it is stored to.
    out.translators("the store hit the running block", |o, s| {
        (s[Counter::SmcStores] > 0) == (o.max_block > 1)
    });
}

/// An instruction that overwrites itself: it finishes as the old instruction, and the new
/// one runs the next time around.
#[test]
fn amend_overwrites_itself() {
    expect_output(
        "
            literal r0, 0
            literal r1, self
            literal r2, new
            index r2, r0, r2      ; encoding of 'output r5'
            literal r5, '!'
            literal r6, 'x'
            literal r7, 2         ; passes left
        again:
            output r6
        self:
            amend r0, r1, r2      ; first pass: becomes 'output r5'
            literal r6, 'y'
            nand r3, r0, r0       ; -1
            add r7, r7, r3
            literal r3, again
            literal r4, done
            cmov r4, r3, r7
            loadprog r0, r4
        done:
            halt
        new:
            output r5
        ",
        b"",
        b"xy!",
    )
    .hit_translated_code();
}

/// A loop whose body is patched on every iteration.
#[test]
fn loop_body_patched_each_iteration() {
    expect_output(
        "
            literal r0, 0
            literal r1, seed
            index r2, r0, r1      ; r2 = encoding of 'literal r6, 'a''
            literal r3, 5         ; iterations left
            literal r7, 1
        loop:
        body:
            literal r6, 'z'
            output r6
            literal r1, body
            amend r0, r1, r2      ; next time: the next letter
            add r2, r2, r7
            nand r4, r0, r0       ; -1
            add r3, r3, r4
            literal r4, loop
            literal r5, done
            cmov r5, r4, r3
            loadprog r0, r5
        done:
            halt
        seed:
            literal r6, 'a'
        ",
        b"",
        b"zabcd",
    )
    .hit_translated_code()
    .chained();
}

/// A block reached by chained jumps many times is patched, then reached again.
#[test]
fn hot_chained_block_patched() {
    let src = "
            literal r0, 0
            literal r6, 'x'
            literal r5, 'y'
            literal r7, 1
            literal r2, 2         ; rounds
        round:
            literal r3, 60        ; calls per round
        call:
            literal r1, f
            loadprog r0, r1       ; constant jump: chained
        back:
            nand r4, r0, r0
            add r3, r3, r4
            literal r4, call
            literal r1, next
            cmov r1, r4, r3
            loadprog r0, r1
        next:
            ; patch f's output to print r5 instead of r6
            literal r1, new
            index r4, r0, r1
            literal r1, f
            amend r0, r1, r4
            nand r4, r0, r0
            add r2, r2, r4
            literal r4, round
            literal r1, done
            cmov r1, r4, r2
            loadprog r0, r1
        done:
            literal r1, 10
            output r1
            halt
        f:
            output r6
            literal r1, back
            loadprog r0, r1
        new:
            output r5
        ";
    let mut want = vec![b'x'; 60];
    want.extend([b'y'; 60]);
    want.push(b'\n');
    expect_output(src, b"", &want)
        .hit_translated_code()
        .chained();
}

/// Stores into words that were never executed (data, and code after a halt) change
/// nothing translated and read back correctly.
#[test]
fn patch_word_never_executed() {
    expect_output(
        "
            literal r0, 0
            literal r1, data
            literal r2, 'Q'
            amend r0, r1, r2
            index r3, r0, r1
            output r3
            literal r1, later
            literal r2, new
            index r2, r0, r2
            amend r0, r1, r2      ; 'later' becomes 'output r3'
            literal r1, later
            loadprog r0, r1
        data:
            word 0
        new:
            output r3
            halt
        later:
            halt
            halt
        ",
        b"",
        b"QQ",
    )
    // (A region formed at first sight covers `later` before it runs: there the store
    // does hit translated code.)
    .translators("no store hit translated code", |o, s| {
        (s[Counter::SmcStores] == 0) != (o.opt_threshold == Some(0))
    });
}

/// Load program from a copy of array 0 with one word patched.
#[test]
fn load_program_from_patched_copy() {
    expect_output(
        "
            literal r0, 0
            literal r7, 1
            literal r1, end       ; program length
            alloc r2, r1          ; r2 = copy
            literal r3, 0         ; i
        copy:
            index r4, r0, r3
            amend r2, r3, r4
            add r3, r3, r7
            nand r4, r3, r3       ; r4 = ~i
            add r4, r4, r7        ; -i
            add r4, r4, r1        ; len - i
            literal r5, copy
            literal r6, copied
            cmov r6, r5, r4
            loadprog r0, r6
        copied:
            literal r3, patch
            literal r4, new
            index r4, r0, r4
            amend r2, r3, r4      ; patch the copy only
            literal r5, 'C'
            literal r6, 'O'
            literal r3, patch
            loadprog r2, r3
        patch:
            output r6             ; in the copy: 'output r5'
            halt
        new:
            output r5
        end:
        ",
        b"",
        b"C",
    )
    .translators("load program flushed", |_, s| s[Counter::Flushes] == 1);
}

/// A jump into the middle of a block that was translated from its start, then a store
/// into a word both translations cover, then both entry points again.
#[test]
fn jump_into_middle_of_former_block() {
    expect_output(
        "
            literal r0, 0
            literal r7, 0         ; pass number
            literal r5, 'a'
            literal r6, 'b'
        start:
            output r5
        middle:
            output r6
            literal r4, 10
            output r4
            literal r1, table
            add r1, r1, r7
            index r2, r0, r1      ; next target from the table
            literal r4, 1
            add r7, r7, r4
            loadprog r0, r2       ; computed jump
        patch:
            literal r1, middle
            literal r2, new
            index r2, r0, r2
            amend r0, r1, r2      ; 'middle' now prints r5
            literal r1, start
            loadprog r0, r1
        done:
            halt
        new:
            output r5
        table:
            word middle
            word patch
            word middle
            word done
        ",
        b"",
        b"ab\nb\naa\na\n",
    )
    .hit_translated_code();
}

/// Instruction counts agree between the engines (the translator corrects its per-block
/// counts on every early exit).
#[test]
fn stats_instruction_counts_agree() {
    let program = asm("
            literal r0, 0
            literal r1, 9
            alloc r2, r1
            literal r3, 'k'
            output r3
            literal r1, 20
            index r4, r2, r1      ; out of bounds: faults mid-block
            halt
        ");
    let path = write_program(&program);
    let path = path.to_str().unwrap();
    let count = |flags: &[&str]| -> u64 {
        let mut args = vec!["run", "--stats"];
        args.extend_from_slice(flags);
        args.push(path);
        let out = run_cli(&args, b"");
        assert_eq!(out.status, Some(1), "{}", out.stderr);
        let line = out
            .stderr
            .lines()
            .find(|l| {
                l.trim_start().starts_with("UM instructions ")
                    || l.trim_start().starts_with("total")
            })
            .unwrap_or_else(|| panic!("no instruction count in\n{}", out.stderr));
        line.split_whitespace().last().unwrap().parse().unwrap()
    };
    assert_eq!(count(&["--interp"]), 7);
    for (_, flags) in engine_flags() {
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        assert_eq!(count(&flags), 7, "{flags:?}");
    }
}

/// A store at a constant word that no translation covers yet needs no inline check; the
/// word then becomes code, and the storing block must check from then on: every pass
/// stores a different instruction there and runs it. The array is named by a constant and
/// by a register the translator cannot know.
#[test]
fn store_at_a_word_before_and_after_it_becomes_code() {
    for id in ["literal r0, 0", "add r0, r0, r0"] {
        let src = format!(
            "
                literal r0, 0
                literal r4, '1'
                literal r5, '2'
                literal r6, '3'
                literal r7, 3         ; passes left, also the index into encs
                literal r1, loop
                loadprog r0, r1       ; the loop is a block of its own
            loop:
                {id}
                literal r1, encs
                add r1, r1, r7
                index r2, r0, r1
                literal r1, word
                amend r0, r1, r2      ; a constant word
                loadprog r0, r1       ; run it
            word:
                halt                  ; replaced before it first runs
                nand r3, r0, r0
                add r7, r7, r3
                literal r1, loop
                literal r3, done
                cmov r3, r1, r7
                loadprog r0, r3
            done:
                halt
            encs:
                halt
                output r6
                output r5
                output r4
            "
        );
        expect_output(&src, b"", b"123").hit_translated_code();
    }
}

/// Code that is interpreted before it is translated (the default) stores into code that has
/// been translated: the translation is invalidated before it runs again. Here the code
/// after the second call runs once, so it is interpreted, and the subroutine it patches was
/// translated on its second call.
#[test]
fn interpreted_store_into_translated_code() {
    let out = expect_output(
        "
            literal r1, 'A'
            literal r2, 'B'
            literal r6, target
            literal r5, ret1
            loadprog r0, r6       ; first call: interpreted
        ret1:
            literal r5, ret2
            loadprog r0, r6       ; second call: translated
        ret2:
            literal r3, target
            literal r4, new
            index r4, r0, r4
            amend r0, r3, r4      ; interpreted, into the translation
            literal r5, ret3
            loadprog r0, r6
        ret3:
            halt
        target:
            output r1             ; becomes 'output r2'
            loadprog r0, r5
        new:
            output r2
        ",
        b"",
        b"AAB",
    );
    let waits = out
        .stats
        .iter()
        .filter_map(|(e, s)| match e {
            umdbt::engine::Engine::Translator(o) if o.translate_after > 0 => Some(s),
            _ => None,
        })
        .collect::<Vec<_>>();
    assert!(
        !waits.is_empty(),
        "no configuration interprets before translating"
    );
    for s in waits {
        assert!(s[Counter::Interpreted] > 0, "{s:?}");
        assert_eq!(s[Counter::SmcStores], 1, "{s:?}");
        assert_eq!(s[Counter::BlocksInvalidated], 1, "{s:?}");
    }
}

//! Seeing inside the translator: `--profile perfmap|jitdump` (files perf reads) and
//! `-d in_asm,out_asm,exec [-D FILE]` (traces), through the binary. The files are parsed
//! back; traces never mix with the program's output.

mod common;

use common::{asm, temp_path, umdbt, write_program};
use std::process::Output;
use umdbt::decoder::Instr;
use umdbt::profile::parse;

/// Prints "ABCDE" through a loop of two blocks (a counted loop and its exit). The tests that
/// list every block translate at first sight (`--translate-after 0`).
const LOOP: &str = "
        literal r1, 'A'
        literal r7, 5
        nand r6, r0, r0       ; -1
loop:   output r1
        literal r2, 1
        add r1, r1, r2
        add r7, r7, r6
        literal r3, loop
        literal r4, done
        cmov r4, r3, r7
        loadprog r0, r4
done:   halt
";

fn run(args: &[&str], program: &[u32]) -> Output {
    let path = write_program(program);
    umdbt().arg("run").args(args).arg(&path).output().unwrap()
}

/// Blocks translated, from a `--stats` table on stderr.
fn blocks_translated(stderr: &str) -> u64 {
    stderr
        .lines()
        .find(|l| l.trim_start().starts_with("blocks translated"))
        .and_then(|l| l.split_whitespace().last()?.parse().ok())
        .unwrap_or_else(|| panic!("no block count in\n{stderr}"))
}

#[test]
fn perf_map_names_every_block_by_its_pc_range() {
    if common::emulated() {
        eprintln!("SKIPPED: the process id under an emulator is the emulator's");
        return;
    }
    let path = write_program(&asm(LOOP));
    let child = umdbt()
        .args([
            "run",
            "--profile",
            "perfmap",
            "--stats",
            "--translate-after",
            "0",
        ])
        .arg(&path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.stdout, b"ABCDE");
    let map_path = format!("/tmp/perf-{pid}.map");
    let text = std::fs::read_to_string(&map_path).unwrap();
    std::fs::remove_file(&map_path).unwrap();
    let lines = parse::perf_map(&text).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(lines[0].name, "umdbt_routines");
    let blocks = &lines[1..];
    assert_eq!(blocks.len() as u64, blocks_translated(&stderr));
    // The first block is pc 0..11 (up to the loadprog), the others start at the loop.
    assert_eq!(blocks[0].name, "um_block_0_11");
    assert!(
        blocks[1..]
            .iter()
            .any(|b| b.name.starts_with("um_block_3_"))
    );
    // Blocks do not overlap and lie after the routines.
    let mut spans: Vec<(u64, u64)> = lines.iter().map(|l| (l.start, l.start + l.size)).collect();
    spans.sort();
    assert!(spans.windows(2).all(|w| w[0].1 <= w[1].0), "{spans:?}");
}

#[test]
fn jitdump_holds_the_code_of_every_block() {
    if common::emulated() {
        eprintln!("SKIPPED: the process id under an emulator is the emulator's");
        return;
    }
    let path = write_program(&asm(LOOP));
    let child = umdbt()
        .args([
            "run",
            "--profile",
            "jitdump",
            "--stats",
            "--translate-after",
            "0",
        ])
        .arg(&path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.stdout, b"ABCDE");
    let dump_path = format!("/tmp/jit-{pid}.dump");
    let bytes = std::fs::read(&dump_path).unwrap();
    std::fs::remove_file(&dump_path).unwrap();
    let dump = parse::jitdump(&bytes).unwrap();
    assert_eq!(dump.header.pid, pid);
    let loads: Vec<_> = dump
        .records
        .iter()
        .filter_map(|r| r.load.as_ref())
        .collect();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(loads.len() as u64, 1 + blocks_translated(&stderr));
    assert_eq!(loads[0].name, "umdbt_routines");
    for l in &loads {
        assert_eq!(l.code.len() as u64, l.code_size);
        assert!(!l.code.is_empty(), "{}", l.name);
        assert_eq!(l.vma, l.code_addr);
    }
    assert_eq!(loads[1].name, "um_block_0_11");
    // The block's code is what the disassembly trace shows at that address.
    let lines = umdbt::trace::disassemble_host(loads[1].code_addr, &loads[1].code);
    assert!(lines.len() > 5);
}

#[test]
fn traces_show_um_code_host_code_and_block_entries() {
    let program = asm(LOOP);
    let file = temp_path("trace.txt");
    let out = run(
        &["-d", "in_asm,out_asm,exec", "-D", file.to_str().unwrap()],
        &program,
    );
    assert!(out.status.success());
    assert_eq!(out.stdout, b"ABCDE", "traces never mix with the output");
    assert!(out.stderr.is_empty(), "traces went to the file");
    let trace = std::fs::read_to_string(&file).unwrap();
    // in_asm: the first block, word by word, as `umdbt dis` prints it.
    assert!(trace.starts_with("IN: block pc 0..11\n"), "{trace}");
    for (pc, &w) in program.iter().enumerate().take(11) {
        let line = format!("  {pc:>8}: {w:08x}  {}\n", Instr::disassemble(w));
        assert!(trace.contains(&line), "missing {line:?}");
    }
    // out_asm: host code for each block, at increasing addresses.
    let outs = trace
        .lines()
        .filter(|l| l.starts_with("OUT: block"))
        .count();
    assert!(outs >= 2, "{trace}");
    // exec: every block entry, chaining off: pc 0 (a block that runs the first round of
    // the loop too), the loop four more times, then `done`.
    let entries: Vec<&str> = trace.lines().filter(|l| l.starts_with("Trace: ")).collect();
    let want: Vec<String> = [0, 3, 3, 3, 3, 11]
        .iter()
        .map(|pc| format!("Trace: pc {pc}"))
        .collect();
    assert_eq!(entries, want, "{trace}");
}

#[test]
fn traces_go_to_standard_error_by_default() {
    // (Translating at first sight: code that runs once is otherwise only interpreted.)
    let out = run(&["-d", "in_asm", "--translate-after", "0"], &asm(LOOP));
    assert!(out.status.success());
    assert_eq!(out.stdout, b"ABCDE");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("IN: block pc 0..11\n"), "{err}");
    assert!(!err.contains("OUT:"), "only what was asked for: {err}");
}

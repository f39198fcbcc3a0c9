//! Regression programs: every `tests/regressions/*.uma` (minimised by `tools/fuzz`, or
//! written by hand for a bug once found) must behave the same under every engine
//! configuration. A header line `... input (hex): XXXX` gives the program's input.

mod common;
use common::*;

fn input_of(source: &str) -> Vec<u8> {
    let hex = source
        .lines()
        .take_while(|l| l.trim_start().starts_with(';'))
        .find_map(|l| l.split("(hex):").nth(1))
        .unwrap_or("")
        .trim();
    (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex input"))
        .collect()
}

#[test]
fn regression_programs_agree_on_every_engine() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/regressions");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/regressions")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "uma"))
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "no regression programs in {}",
        dir.display()
    );
    for file in files {
        let source = std::fs::read_to_string(&file).expect("read regression program");
        let out = std::panic::catch_unwind(|| run_src(&source, &input_of(&source)))
            .unwrap_or_else(|_| panic!("{} diverged", file.display()));
        eprintln!("{}: {:?}", file.display(), out.result);
    }
}

#[test]
fn stale_array_regression_reads_the_second_array() {
    let source = include_str!("regressions/stale-array-after-register-write.uma");
    expect_output(source, b"", b"k");
}

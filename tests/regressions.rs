//! Regression programs: every `tests/regressions/*.uma` (minimised by `tools/fuzz`, or
//! written by hand for a bug once found) must behave as its header records, under every
//! engine configuration. Header lines (comments before the first instruction):
//!
//! ```text
//! ; ... input (hex): 0a0b          the program's input (may be empty)
//! ; expect output (hex): 6b        what it must print
//! ; expect result: halt            or the fault message, e.g. `fault at pc 3 (div): ...`
//! ```

mod common;
use common::*;

/// The value of the header field `key` (after `key`), if present.
fn header<'a>(source: &'a str, key: &str) -> Option<&'a str> {
    source
        .lines()
        .take_while(|l| l.trim_start().starts_with(';'))
        .find_map(|l| l.split_once(key).map(|(_, v)| v.trim()))
}

fn unhex(hex: &str) -> Vec<u8> {
    (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}

#[test]
fn regression_programs_behave_as_recorded_on_every_engine() {
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
        let name = file.display();
        let source = std::fs::read_to_string(&file).expect("read regression program");
        let input = unhex(header(&source, "input (hex):").unwrap_or(""));
        let output = header(&source, "expect output (hex):")
            .unwrap_or_else(|| panic!("{name}: no 'expect output (hex):' header"));
        let result = header(&source, "expect result:")
            .unwrap_or_else(|| panic!("{name}: no 'expect result:' header"));
        let out = std::panic::catch_unwind(|| run_src(&source, &input))
            .unwrap_or_else(|_| panic!("{name} diverged"));
        assert_eq!(out.stdout, unhex(output), "{name}: output");
        let got = match &out.result {
            Ok(()) => "halt".to_string(),
            Err(f) => f.to_string(),
        };
        assert_eq!(got, result, "{name}: result");
    }
}

//! Statistics: one declarative list of every counter an engine keeps, with its label and
//! unit ([`Counter`]), and the rows of the `--stats` table built from them ([`TABLE`]).
//!
//! Counters live in a [`Stats`] value wherever they are counted: in the context generated
//! code runs with (it bumps its own counters at offsets computed from this list), in the
//! block cache, and in the engine loop; at the end of a run the engine adds them up and
//! reads the heap's and the console's counts in. `--stats` prints [`Stats::table`]; tests
//! read counters by name.

use crate::console::Console;
use crate::memory::Heap;
use std::fmt::Write;

/// What a counter's value measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Events or things.
    Count,
    /// Bytes.
    Bytes,
    /// Nanoseconds (printed as seconds).
    Nanos,
}

/// Which engines keep a counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every engine.
    All,
    /// Only the translator.
    Translator,
}

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident: $label:literal, $unit:ident, $scope:ident;)*) => {
        /// Every counter, in the order of this list.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[repr(usize)]
        pub enum Counter {
            $($(#[$doc])* $name,)*
        }

        impl Counter {
            /// Every counter, in order.
            pub const ALL: &'static [Counter] = &[$(Counter::$name),*];
            /// How many there are.
            pub const COUNT: usize = Counter::ALL.len();

            /// The label in the `--stats` table.
            pub fn label(self) -> &'static str {
                match self {
                    $(Counter::$name => $label,)*
                }
            }

            /// What the value measures.
            pub fn unit(self) -> Unit {
                match self {
                    $(Counter::$name => Unit::$unit,)*
                }
            }

            /// Which engines keep it.
            pub fn scope(self) -> Scope {
                match self {
                    $(Counter::$name => Scope::$scope,)*
                }
            }
        }
    };
}

counters! {
    /// UM instructions executed (by generated code and by the interpreter).
    Instructions: "UM instructions", Count, All;
    /// Blocks translated (again after an invalidation or a flush).
    BlocksTranslated: "blocks translated", Count, Translator;
    /// UM operations in those blocks.
    OpsTranslated: "UM ops translated", Count, Translator;
    /// Host code bytes written for them.
    CodeBytes: "host code bytes", Bytes, Translator;
    /// Jumps through the dispatch table from generated code.
    Lookups: "dispatch lookups", Count, Translator;
    /// Of those, jumps that found no block there.
    Misses: "dispatch misses", Count, Translator;
    /// Jumps to a constant target taken by generated code (chained or not).
    ConstExits: "constant-target jumps", Count, Translator;
    /// Of those, jumps that went through their stub (not chained yet, or chaining off).
    StubRuns: "unchained jumps", Count, Translator;
    /// Jumps patched to go straight to their target block.
    LinksMade: "links made", Count, Translator;
    /// Chained jumps unpatched because their target was invalidated.
    LinksBroken: "links broken", Count, Translator;
    /// Stores into array 0 that hit translated code.
    SmcStores: "stores hitting code", Count, Translator;
    /// Blocks invalidated by those stores, or because they watch a word being translated.
    BlocksInvalidated: "blocks invalidated", Count, Translator;
    /// Flushes of every translation (load program from another array, full code memory).
    Flushes: "flushes", Count, Translator;
    /// Times generated code returned to Rust.
    Exits: "exits to Rust", Count, Translator;
    /// Instructions the translator left to the interpreter.
    Interpreted: "instructions interpreted", Count, Translator;
    /// Time spent translating.
    TranslateTime: "time translating", Nanos, Translator;
    /// Regions compiled by the optimizing tier.
    RegionsCompiled: "regions compiled", Count, Translator;
    /// UM operations in those regions.
    RegionOps: "UM ops in regions", Count, Translator;
    /// Side exits taken out of regions (a check or hoisted guard that failed, a signal).
    SideExits: "side exits taken", Count, Translator;
    /// Computed jumps in regions whose target no prediction matched.
    GuardMisses: "guard misses", Count, Translator;
    /// Time spent forming, optimizing and lowering regions (part of the time translating).
    OptTime: "time in the optimizer", Nanos, Translator;
    /// Arrays allocated (op 8).
    Allocations: "arrays allocated", Count, All;
    /// Arrays abandoned (op 9).
    Abandonments: "arrays abandoned", Count, All;
    /// The most arrays live at once, array 0 included.
    PeakLive: "peak live arrays", Count, All;
    /// Bytes the program output.
    BytesOut: "bytes output", Bytes, All;
    /// Bytes the program read (end of input not counted).
    BytesIn: "bytes input", Bytes, All;
    /// Wall time of the run, loading included.
    WallTime: "wall time", Nanos, All;
    /// Operator 0 (conditional move) executed (`--stats=ops` for the translator).
    OpCmov: "cmov", Count, All;
    /// Operator 1 (array index) executed (`--stats=ops` for the translator).
    OpIndex: "index", Count, All;
    /// Operator 2 (array amendment) executed (`--stats=ops` for the translator).
    OpAmend: "amend", Count, All;
    /// Operator 3 (addition) executed (`--stats=ops` for the translator).
    OpAdd: "add", Count, All;
    /// Operator 4 (multiplication) executed (`--stats=ops` for the translator).
    OpMul: "mul", Count, All;
    /// Operator 5 (division) executed (`--stats=ops` for the translator).
    OpDiv: "div", Count, All;
    /// Operator 6 (not-and) executed (`--stats=ops` for the translator).
    OpNand: "nand", Count, All;
    /// Operator 7 (halt) executed (`--stats=ops` for the translator).
    OpHalt: "halt", Count, All;
    /// Operator 8 (allocation) executed (`--stats=ops` for the translator).
    OpAlloc: "alloc", Count, All;
    /// Operator 9 (abandonment) executed (`--stats=ops` for the translator).
    OpAbandon: "abandon", Count, All;
    /// Operator 10 (output) executed (`--stats=ops` for the translator).
    OpOutput: "output", Count, All;
    /// Operator 11 (input) executed (`--stats=ops` for the translator).
    OpInput: "input", Count, All;
    /// Operator 12 (load program) executed (`--stats=ops` for the translator).
    OpLoadProg: "loadprog", Count, All;
    /// Operator 13 (orthography) executed (`--stats=ops` for the translator).
    OpLiteral: "literal", Count, All;
    /// Operator 14 (opcode 14) executed (`--stats=ops` for the translator).
    OpInvalid14: "invalid14", Count, All;
    /// Operator 15 (opcode 15) executed (`--stats=ops` for the translator).
    OpInvalid15: "invalid15", Count, All;
}

/// A value for every counter. `#[repr(C)]`: generated code bumps counters in place at
/// `offset_of!(.., stats) + 8 * counter`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stats([u64; Counter::COUNT]);

impl Default for Stats {
    fn default() -> Stats {
        Stats([0; Counter::COUNT])
    }
}

impl Counter {
    /// The counter of operator `op` (the per-operator counts follow each other in opcode
    /// order).
    pub fn op(op: crate::decoder::Op) -> Counter {
        Counter::ALL[Counter::OpCmov as usize + op as usize]
    }
}

impl std::ops::Index<Counter> for Stats {
    type Output = u64;
    fn index(&self, c: Counter) -> &u64 {
        &self.0[c as usize]
    }
}

impl std::ops::IndexMut<Counter> for Stats {
    fn index_mut(&mut self, c: Counter) -> &mut u64 {
        &mut self.0[c as usize]
    }
}

/// Byte offset of counter `c` in a [`Stats`].
pub const fn offset_of(c: Counter) -> usize {
    c as usize * std::mem::size_of::<u64>()
}

impl Stats {
    /// Add every counter of `other` (the totals of several places that count).
    pub fn add(&mut self, other: &Stats) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a += b;
        }
    }

    /// Read in the counts the heap keeps.
    pub fn record_heap(&mut self, heap: &Heap) {
        let c = heap.counts();
        self[Counter::Allocations] = c.allocations;
        self[Counter::Abandonments] = c.abandonments;
        self[Counter::PeakLive] = c.peak_live;
    }

    /// Read in the counts the console keeps.
    pub fn record_console(&mut self, console: &Console) {
        self[Counter::BytesOut] = console.bytes_out;
        self[Counter::BytesIn] = console.bytes_in;
    }

    /// Add a duration to a time counter.
    pub fn add_time(&mut self, c: Counter, d: std::time::Duration) {
        debug_assert_eq!(c.unit(), Unit::Nanos);
        self[c] += d.as_nanos() as u64;
    }

    /// The `--stats` table's rows for an engine (`translator` or not), each `  LABEL VALUE`.
    pub fn table(&self, translator: bool) -> String {
        let mut s = String::new();
        for row in TABLE {
            if let Some(text) = row.text(self, translator) {
                let _ = writeln!(s, "  {:<28} {:>16}", row.label(), text);
            }
        }
        s
    }
}

/// A row of the `--stats` table.
pub enum Row {
    /// A counter as it is.
    Counter(Counter),
    /// A value worked out from counters, for the translator only: label and formula.
    Derived(&'static str, fn(&Stats) -> String),
}

impl Row {
    fn label(&self) -> &'static str {
        match self {
            Row::Counter(c) => c.label(),
            Row::Derived(label, _) => label,
        }
    }

    /// The row's value, or `None` when the engine does not keep it.
    fn text(&self, s: &Stats, translator: bool) -> Option<String> {
        match self {
            Row::Counter(c) if c.scope() == Scope::Translator && !translator => None,
            Row::Counter(c) => Some(match (c.unit(), *c) {
                (Unit::Nanos, Counter::TranslateTime | Counter::OptTime) => format!(
                    "{:.3} s ({})",
                    secs(s[*c]),
                    percent(s[*c], s[Counter::WallTime])
                ),
                (Unit::Nanos, _) => format!("{:.3} s", secs(s[*c])),
                _ => s[*c].to_string(),
            }),
            Row::Derived(..) if !translator => None,
            Row::Derived(_, f) => Some(f(s)),
        }
    }
}

fn secs(nanos: u64) -> f64 {
    nanos as f64 / 1e9
}

fn percent(part: u64, whole: u64) -> String {
    format!("{:.1}%", 100.0 * part as f64 / whole.max(1) as f64)
}

/// Jumps between blocks that were chained (went straight to their target).
fn chained(s: &Stats) -> u64 {
    s[Counter::ConstExits].saturating_sub(s[Counter::StubRuns])
}

use Counter::*;

/// The `--stats` table, in order (the interpreter's per-operator counts come before it).
pub const TABLE: &[Row] = &[
    Row::Counter(BlocksTranslated),
    Row::Counter(OpsTranslated),
    Row::Counter(CodeBytes),
    Row::Derived("average block length", |s| {
        format!(
            "{:.2} ops",
            s[OpsTranslated] as f64 / s[BlocksTranslated].max(1) as f64
        )
    }),
    Row::Counter(Lookups),
    Row::Derived("  hit a translated block", |s| {
        let hits = s[Lookups].saturating_sub(s[Misses]);
        format!("{hits} ({})", percent(hits, s[Lookups]))
    }),
    Row::Derived("jumps between blocks", |s| {
        (chained(s) + s[Lookups]).to_string()
    }),
    Row::Derived("  chained (direct)", |s| {
        let c = chained(s);
        format!("{c} ({})", percent(c, c + s[Lookups]))
    }),
    Row::Derived("  through the table", |s| s[Lookups].to_string()),
    Row::Counter(LinksMade),
    Row::Counter(LinksBroken),
    Row::Counter(SmcStores),
    Row::Counter(BlocksInvalidated),
    Row::Counter(Flushes),
    Row::Counter(Exits),
    Row::Counter(Interpreted),
    Row::Counter(TranslateTime),
    Row::Counter(RegionsCompiled),
    Row::Counter(RegionOps),
    Row::Counter(SideExits),
    Row::Counter(GuardMisses),
    Row::Counter(OptTime),
    Row::Counter(Instructions),
    Row::Counter(Allocations),
    Row::Counter(Abandonments),
    Row::Counter(PeakLive),
    Row::Counter(BytesOut),
    Row::Counter(BytesIn),
    Row::Counter(WallTime),
    Row::Derived("UM instructions/s", |s| {
        format!(
            "{:.1} M",
            s[Instructions] as f64 / secs(s[WallTime]).max(1e-9) / 1e6
        )
    }),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_counter_appears_in_the_table_once() {
        for &c in Counter::ALL {
            let n = TABLE
                .iter()
                .filter(|r| matches!(r, Row::Counter(x) if *x == c))
                .count();
            // Misses, ConstExits and StubRuns are shown through derived rows, the
            // per-operator counts in a table of their own.
            let shown = !matches!(c, Misses | ConstExits | StubRuns) && c < OpCmov;
            let expected = usize::from(shown);
            assert_eq!(n, expected, "{c:?}");
        }
    }

    #[test]
    fn interpreter_rows_leave_out_the_translator() {
        let mut s = Stats::default();
        s[Instructions] = 42;
        s[BlocksTranslated] = 3;
        s[WallTime] = 2_000_000_000;
        let interp = s.table(false);
        assert!(interp.contains("UM instructions"));
        assert!(interp.contains("42"));
        assert!(!interp.contains("blocks translated"));
        assert!(!interp.contains("average block length"));
        let jit = s.table(true);
        assert!(jit.contains("blocks translated"));
        assert!(
            jit.lines()
                .any(|l| l.contains("wall time") && l.ends_with(" 2.000 s"))
        );
    }

    #[test]
    fn add_and_offsets() {
        let mut a = Stats::default();
        let mut b = Stats::default();
        a[Lookups] = 1;
        b[Lookups] = 2;
        b[Exits] = 5;
        a.add(&b);
        assert_eq!((a[Lookups], a[Exits]), (3, 5));
        assert_eq!(offset_of(Instructions), 0);
        assert_eq!(offset_of(Lookups), 8 * Lookups as usize);
    }

    #[test]
    fn operator_counters_follow_opcode_order() {
        for op in crate::decoder::Op::ALL {
            assert_eq!(Counter::op(op).label(), op.name());
        }
    }
}

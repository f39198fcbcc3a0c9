//! The heap's fast paths exist once in Rust (`Heap::alloc_fast`, `Heap::abandon_fast`) and
//! once per backend in machine code (the allocation and abandonment routines, and the
//! inline allocation of a constant size). Random sequences of allocations and abandonments
//! run as UM programs on the translator must leave exactly the heap that the same sequence
//! of `Heap::alloc` and `Heap::abandon` calls leaves: the same identifiers, entries, words,
//! stacks of free identifiers and buffers, and counts.

mod common;

use common::{TEST_MEMORY, asm, assert_translated, emulated};
use umdbt::console::{Console, SharedOutput};
use umdbt::engine::{self, Engine, RunOptions};
use umdbt::generator::Rng;
use umdbt::machine::Machine;
use umdbt::memory::Heap;

/// Slots of the bookkeeping array that holds the identifiers of live arrays.
const SLOTS: u32 = 200;

enum Step {
    /// Allocate `words` words, with the size a constant the translator sees (the inline
    /// path) or hidden in a register (the routine), and keep the identifier in `slot`.
    Alloc {
        words: u32,
        constant: bool,
        slot: u32,
    },
    /// Abandon the array whose identifier is in `slot`.
    Abandon { slot: u32 },
}

fn steps(seed: u64, n: usize) -> Vec<Step> {
    let mut rng = Rng::new(seed);
    let mut live: Vec<u32> = Vec::new();
    let mut free: Vec<u32> = (0..SLOTS).rev().collect();
    let mut v = Vec::new();
    for _ in 0..n {
        if !live.is_empty() && (free.is_empty() || rng.chance(1, 2)) {
            let slot = live.swap_remove(rng.below(live.len() as u64) as usize);
            free.push(slot);
            v.push(Step::Abandon { slot });
        } else {
            let words = match rng.below(10) {
                0..=4 => 1 + rng.below(8) as u32,  // slots
                5..=7 => 9 + rng.below(56) as u32, // cached buffers
                8 => 0,
                _ => 65 + rng.below(100) as u32, // the system allocator
            };
            let slot = free.pop().expect("a free slot");
            live.push(slot);
            let constant = rng.chance(1, 2);
            v.push(Step::Alloc {
                words,
                constant,
                slot,
            });
        }
    }
    v
}

/// The steps as a UM program: r6 is the bookkeeping array (identifier 1), r7 a zero the
/// translator cannot know (read from the fresh array 2), used to hide constant sizes.
fn program(steps: &[Step]) -> Vec<u32> {
    let mut src = format!(
        "literal r1, {SLOTS}\nalloc r6, r1\nliteral r1, 1\nalloc r5, r1\nliteral r1, 0\nindex r7, r5, r1\n"
    );
    for s in steps {
        match *s {
            Step::Alloc {
                words,
                constant,
                slot,
            } => {
                src += &format!("literal r2, {words}\n");
                if !constant {
                    src += "add r2, r2, r7\n";
                }
                src += &format!("alloc r3, r2\nliteral r1, {slot}\namend r6, r1, r3\n");
            }
            Step::Abandon { slot } => {
                src += &format!("literal r1, {slot}\nindex r3, r6, r1\nabandon r3\n");
            }
        }
    }
    src += "halt\n";
    asm(&src)
}

/// The same steps on a heap, through `Heap::alloc` and `Heap::abandon`.
fn reference(program: &[u32], steps: &[Step], whole_space: bool) -> Heap {
    let mut h = *Heap::with_table(program, TEST_MEMORY, whole_space).unwrap();
    let book = h.alloc(SLOTS).unwrap();
    h.alloc(1).unwrap();
    for s in steps {
        match *s {
            Step::Alloc { words, slot, .. } => {
                let id = h.alloc(words).unwrap();
                h.store(book, slot, id).unwrap();
            }
            Step::Abandon { slot } => {
                let id = h.load(book, slot).unwrap();
                h.abandon(id).unwrap();
            }
        }
    }
    h
}

#[test]
fn machine_code_fast_paths_leave_the_heap_rust_leaves() {
    // Fewer seeds under an emulator (CI's time; the native run does all twelve).
    let seeds = if emulated() { 4 } else { 12 };
    for seed in 1..=seeds {
        let steps = steps(seed, 3000);
        let program = program(&steps);
        for whole_space in [true, false] {
            let want = reference(&program, &steps, whole_space).snapshot();
            // Generated code keeps the counts of arrays only when statistics are on; the
            // rest of the heap must be the same either way.
            for (engine, count) in Engine::all_configurations()
                .into_iter()
                .flat_map(|e| [(e.clone(), true), (e, false)])
            {
                let console = Console::new(
                    Box::new(std::io::empty()),
                    Box::new(SharedOutput::default()),
                );
                let mut m = Machine::new(&program, console, TEST_MEMORY).unwrap();
                m.heap = Heap::with_table(&program, TEST_MEMORY, whole_space).unwrap();
                let opts = RunOptions {
                    count,
                    ..Default::default()
                };
                let (result, stats) = engine::run_with_stats(&mut m, &engine, opts);
                let case = format!(
                    "seed {seed}, whole space {whole_space}, statistics {count}, {}",
                    engine.describe()
                );
                assert_eq!(result, Ok(()), "{case}");
                assert_translated(&engine, &stats, &case);
                let mut got = m.heap.snapshot();
                if count {
                    assert_eq!(got.counts, want.counts, "{case}");
                } else {
                    got.counts = want.counts;
                }
                assert!(got == want, "{case}: heaps differ");
            }
        }
    }
}

/// With a bounded table, identifiers beyond the slots (the first 2^20) have no slot: their
/// arrays live in buffers described by table entries. Generated code reaches them through
/// the table, and its fast paths write those entries; every engine must leave the heap the
/// interpreter leaves.
#[test]
fn identifiers_beyond_the_slots_of_a_bounded_table() {
    let src = "
        literal r1, 1048584     ; 2^20 + 8 arrays, never abandoned
        literal r2, 2
        nand r7, r0, r0         ; r7 = -1
loop:   alloc r3, r2
        add r1, r1, r7
        literal r4, done
        literal r5, loop
        cmov r4, r5, r1
        loadprog r0, r4
done:   literal r1, 1           ; r3: an identifier beyond the slots
        literal r4, 'a'
        amend r3, r1, r4
        index r5, r3, r1
        output r5               ; through its table entry
        abandon r3              ; to the routine, which frees it through the entry
        alloc r3, r2            ; its identifier again, with the buffer just cached
        literal r4, 'b'
        amend r3, r0, r4
        index r5, r3, r0
        output r5
        index r5, r3, r1
        literal r4, '0'
        add r5, r5, r4
        output r5               ; '0': the buffer was zeroed
        literal r6, 20
        alloc r4, r6            ; a 20-word buffer (the slow path), beyond the slots too
        abandon r4
        literal r5, 20
        alloc r4, r5            ; inline: the cached buffer and that identifier again
        literal r6, 19
        literal r5, 'c'
        amend r4, r6, r5
        index r5, r4, r6
        output r5
        halt
    ";
    let program = asm(src);
    let mut want: Option<(Vec<u8>, umdbt::memory::Snapshot)> = None;
    for engine in Engine::all_configurations() {
        let out = SharedOutput::default();
        let console = Console::new(Box::new(std::io::empty()), Box::new(out.clone()));
        let mut m = Machine::new(&program, console, TEST_MEMORY).unwrap();
        m.heap = Heap::with_table(&program, TEST_MEMORY, false).unwrap();
        let (result, stats) = engine::run_with_stats(&mut m, &engine, RunOptions::default());
        assert_eq!(result, Ok(()), "{}", engine.describe());
        assert_translated(&engine, &stats, &engine.describe());
        m.console.flush().unwrap();
        let mut snap = m.heap.snapshot();
        snap.counts = Default::default(); // kept by generated code only with statistics
        assert!(snap.entries.len() > 1 << 20, "identifiers beyond the slots");
        let got = (out.0.borrow().clone(), snap);
        assert_eq!(got.0, b"ab0c", "{}", engine.describe());
        match &want {
            None => want = Some(got),
            Some(w) => assert!(got == *w, "{}: heaps differ", engine.describe()),
        }
    }
}

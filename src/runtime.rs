//! What generated code shares with Rust: the context it runs with, the reasons it leaves,
//! and the Rust functions it calls for the operators that are not inlined (allocation and
//! abandonment when their fast paths give up, output, input).
//!
//! Generated code keeps a pointer to [`JitCtx`] in a host register and reaches every field
//! through the offsets in [`off`], computed with `offset_of!`.

use crate::console::Console;
use crate::fault::Reason;
use crate::memory::Heap;
use crate::stats::{Counter, Stats};
use std::mem::offset_of;
use std::sync::atomic::AtomicU32;

/// Why generated code returned to Rust (`JitCtx::exit_kind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum ExitKind {
    /// Op 7 at `exit_pc`.
    Halt = 1,
    /// A jump found no translation for `exit_pc` (or `exit_pc` is outside array 0).
    Miss = 2,
    /// A constant-target exit that is not chained yet: block `exit_a`, exit `exit_b`,
    /// target `exit_pc`.
    Link = 3,
    /// Interpret the instruction at `exit_pc` (a fault, load program from a non-zero array,
    /// an invalid opcode); `exit_b` operations of the block did not run.
    Interp = 4,
    /// A runtime call failed at `exit_pc`; the reason is in `JitCtx::pending`.
    Fault = 5,
    /// A store into array 0 hit translated code; the offset is in register `exit_a`;
    /// continue at `exit_pc`; `exit_b` operations of the block did not run.
    Smc = 6,
    /// The block at `exit_pc` did not start: fewer than its `exit_b` operations are left
    /// in the step budget (which it took and gives back through `exit_b`).
    Budget = 7,
    /// Code at `exit_pc` is hot: compile a region there, then go on at `exit_pc`.
    Hot = 8,
    /// A region's side exit without chaining: go on at `exit_pc` in baseline code.
    Side = 9,
}

impl ExitKind {
    /// Every kind, in order of value: `ALL[i]` is the kind of value `i + 1`.
    pub const ALL: [ExitKind; 9] = [
        ExitKind::Halt,
        ExitKind::Miss,
        ExitKind::Link,
        ExitKind::Interp,
        ExitKind::Fault,
        ExitKind::Smc,
        ExitKind::Budget,
        ExitKind::Hot,
        ExitKind::Side,
    ];
    /// One more than the largest kind's value (for tables indexed by kind).
    pub const LIMIT: usize = ExitKind::ALL.len() + 1;

    pub fn from_u32(v: u32) -> Option<ExitKind> {
        ExitKind::ALL.get((v as usize).wrapping_sub(1)).copied()
    }
}

// `ALL` lists the kinds in order of value, from 1, with none missing.
const _: () = {
    let mut i = 0;
    while i < ExitKind::ALL.len() {
        assert!(ExitKind::ALL[i] as usize == i + 1);
        i += 1;
    }
};

/// Bit set in a runtime function's 64-bit result when it failed.
pub const RT_FAILED: u64 = 1 << 32;

/// The targets a block's computed jump took last, most recent first (0: none). Generated
/// code writes them; the cache keeps one per block ([`JitCtx::profile`]).
pub type Profile = [u32; 4];

/// The context generated code runs with. The fields generated code reads on hot paths come
/// first, within a signed byte of the context pointer.
#[repr(C)]
pub struct JitCtx {
    /// The UM registers while Rust runs; generated code keeps them in host registers.
    pub regs: [u32; 8],
    pub exit_kind: u32,
    pub exit_pc: u32,
    pub exit_a: u32,
    pub exit_b: u32,
    /// The array heap (its header is read and updated by generated code).
    pub heap: *mut Heap,
    /// Dispatch table: code offset of the block at each pc of array 0, 0 when none.
    pub dtable: *const u32,
    pub dtable_len: u32,
    /// Non-zero once a signal asked the run to stop: set by the signal handler while a
    /// [`crate::signals::Watch`] holds it, tested by generated code at backward and
    /// computed jumps. Rust code never reads it.
    pub interrupt: AtomicU32,
    /// One byte per word of array 0: non-zero where translated code covers the word.
    pub codemap: *const u8,
    /// Address of the code memory (dispatch table offsets are relative to it).
    pub code_base: u64,
    /// Instructions left in the step budget (`--max-steps`); blocks take theirs on entry
    /// when the budget is on.
    pub budget: u64,
    /// Hotness counters, one per pc of array 0 (see `cache`).
    pub counters: *mut u16,
    /// Computed-jump profiles, one per block (see `cache`).
    pub profile: *mut Profile,
    /// Counters bumped by generated code (only when statistics are on) and by the engine
    /// loop.
    pub stats: Stats,
    /// The console, for the output and input functions.
    pub console: *mut Console,
    /// Why the last runtime call failed.
    pub pending: Option<Reason>,
}

impl JitCtx {
    /// A context with no heap or console yet (the engine sets them before every entry).
    pub fn new() -> JitCtx {
        JitCtx {
            regs: [0; 8],
            exit_kind: 0,
            exit_pc: 0,
            exit_a: 0,
            exit_b: 0,
            heap: std::ptr::null_mut(),
            dtable: std::ptr::null(),
            dtable_len: 0,
            interrupt: AtomicU32::new(0),
            codemap: std::ptr::null(),
            code_base: 0,
            budget: u64::MAX,
            counters: std::ptr::null_mut(),
            profile: std::ptr::null_mut(),
            stats: Stats::default(),
            console: std::ptr::null_mut(),
            pending: None,
        }
    }
}

impl Default for JitCtx {
    fn default() -> JitCtx {
        JitCtx::new()
    }
}

/// Field offsets for the backends.
pub mod off {
    use super::*;
    pub const REGS: i32 = offset_of!(JitCtx, regs) as i32;
    pub const EXIT_KIND: i32 = offset_of!(JitCtx, exit_kind) as i32;
    pub const EXIT_PC: i32 = offset_of!(JitCtx, exit_pc) as i32;
    pub const EXIT_A: i32 = offset_of!(JitCtx, exit_a) as i32;
    pub const EXIT_B: i32 = offset_of!(JitCtx, exit_b) as i32;
    pub const HEAP: i32 = offset_of!(JitCtx, heap) as i32;
    pub const DTABLE: i32 = offset_of!(JitCtx, dtable) as i32;
    pub const DTABLE_LEN: i32 = offset_of!(JitCtx, dtable_len) as i32;
    pub const CODEMAP: i32 = offset_of!(JitCtx, codemap) as i32;
    pub const CODE_BASE: i32 = offset_of!(JitCtx, code_base) as i32;
    pub const INTERRUPT: i32 = offset_of!(JitCtx, interrupt) as i32;
    pub const BUDGET: i32 = offset_of!(JitCtx, budget) as i32;
    pub const COUNTERS: i32 = offset_of!(JitCtx, counters) as i32;
    pub const PROFILE: i32 = offset_of!(JitCtx, profile) as i32;
    pub const CONSOLE: i32 = offset_of!(JitCtx, console) as i32;

    /// Offset of a statistics counter.
    pub const fn counter(c: Counter) -> i32 {
        (offset_of!(JitCtx, stats) + crate::stats::offset_of(c)) as i32
    }

    // The fields of every exit and every computed jump are reachable with one-byte
    // displacements on x86-64.
    const _: () = {
        assert!(REGS + 32 <= 128 && EXIT_KIND < 128 && EXIT_PC < 128);
        assert!(EXIT_A < 128 && EXIT_B < 128 && HEAP < 128 && DTABLE < 128);
        assert!(DTABLE_LEN < 128 && CODEMAP < 128 && CODE_BASE < 128);
        assert!(INTERRUPT < 128 && BUDGET < 128 && COUNTERS < 128 && PROFILE < 128);
    };
}

fn finish(ctx: &mut JitCtx, r: Result<u64, Reason>) -> u64 {
    match r {
        Ok(v) => v,
        Err(reason) => {
            ctx.pending = Some(reason);
            RT_FAILED
        }
    }
}

/// Op 8: returns the new identifier, or `RT_FAILED` (the failure has no effect, so the
/// interpreter re-executes the instruction to report it).
///
/// # Safety
/// `heap` is the heap of the machine generated code runs for, which nothing else borrows
/// while generated code runs.
pub unsafe extern "C" fn rt_alloc(heap: *mut Heap, words: u32) -> u64 {
    // SAFETY: see the function's contract.
    let heap = unsafe { &mut *heap };
    heap.alloc(words).map_or(RT_FAILED, u64::from)
}

/// Op 9: returns 0, or `RT_FAILED` (no effect, as for `rt_alloc`).
///
/// # Safety
/// As for [`rt_alloc`].
pub unsafe extern "C" fn rt_abandon(heap: *mut Heap, id: u32) -> u64 {
    // SAFETY: see the function's contract.
    let heap = unsafe { &mut *heap };
    heap.abandon(id).map_or(RT_FAILED, |()| 0)
}

/// Op 10: returns 0, or `RT_FAILED` with the reason in `JitCtx::pending`.
///
/// # Safety
/// `ctx` is the context generated code was entered with; its `console` points at the
/// machine's console, which nothing else borrows while generated code runs.
pub unsafe extern "C" fn rt_output(ctx: *mut JitCtx, value: u32) -> u64 {
    // SAFETY: see the function's contract. The console pointer is read before the
    // reference to the context is made, and the two objects are distinct.
    let console = unsafe { &mut *(*ctx).console };
    // SAFETY: as above.
    let ctx = unsafe { &mut *ctx };
    let r = console.output(value).map(|()| 0);
    finish(ctx, r)
}

/// Op 11: returns the input value, or `RT_FAILED` with the reason in `JitCtx::pending`.
///
/// # Safety
/// As for [`rt_output`].
pub unsafe extern "C" fn rt_input(ctx: *mut JitCtx, _unused: u32) -> u64 {
    // SAFETY: as in `rt_output`.
    let console = unsafe { &mut *(*ctx).console };
    // SAFETY: as in `rt_output`.
    let ctx = unsafe { &mut *ctx };
    let r = console.input().map(u64::from);
    finish(ctx, r)
}

/// The runtime functions generated code calls, in one place for the backends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RtFn {
    Alloc,
    Abandon,
    Output,
    Input,
}

impl RtFn {
    /// Every runtime function, in the order of [`RtFn::index`].
    pub const ALL: [RtFn; 4] = [RtFn::Alloc, RtFn::Abandon, RtFn::Output, RtFn::Input];
    /// How many there are.
    pub const COUNT: usize = RtFn::ALL.len();

    pub fn address(self) -> usize {
        match self {
            RtFn::Alloc => rt_alloc as unsafe extern "C" fn(*mut Heap, u32) -> u64 as usize,
            RtFn::Abandon => rt_abandon as unsafe extern "C" fn(*mut Heap, u32) -> u64 as usize,
            RtFn::Output => rt_output as unsafe extern "C" fn(*mut JitCtx, u32) -> u64 as usize,
            RtFn::Input => rt_input as unsafe extern "C" fn(*mut JitCtx, u32) -> u64 as usize,
        }
    }

    /// Position in `Routines::call`.
    pub fn index(self) -> usize {
        self as usize
    }

    /// True when the first argument is the heap (else the context).
    pub fn takes_heap(self) -> bool {
        matches!(self, RtFn::Alloc | RtFn::Abandon)
    }

    /// True when a failure leaves its reason in `JitCtx::pending` (else the instruction is
    /// re-executed by the interpreter, which reports it).
    pub fn reports_reason(self) -> bool {
        !self.takes_heap()
    }
}

//! What generated code shares with Rust: the context it runs with, the reasons it leaves,
//! and the Rust functions it calls for the operators that are not inlined (allocation,
//! abandonment, output, input).
//!
//! Generated code keeps a pointer to [`JitCtx`] in a host register and reaches every field
//! through `offset_of!`, never through Rust's layout of other types.

use crate::fault::Reason;
use crate::machine::Machine;
use crate::memory::Heap;
use std::mem::offset_of;

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
}

impl ExitKind {
    pub fn from_u32(v: u32) -> Option<ExitKind> {
        Some(match v {
            1 => ExitKind::Halt,
            2 => ExitKind::Miss,
            3 => ExitKind::Link,
            4 => ExitKind::Interp,
            5 => ExitKind::Fault,
            6 => ExitKind::Smc,
            _ => return None,
        })
    }
}

/// Bit set in a runtime function's 64-bit result when it failed.
pub const RT_FAILED: u64 = 1 << 32;

/// The context generated code runs with.
#[repr(C)]
pub struct JitCtx {
    /// The UM registers while Rust runs; generated code keeps them in host registers.
    pub regs: [u32; 8],
    pub exit_kind: u32,
    pub exit_pc: u32,
    pub exit_a: u32,
    pub exit_b: u32,
    /// The array heap (its `table`/`table_len` header is read by generated code).
    pub heap: *mut Heap,
    /// Dispatch table: code offset of the block at each pc of array 0, 0 when none.
    pub dtable: *const u32,
    pub dtable_len: u32,
    _pad: u32,
    /// One byte per word of array 0: non-zero where translated code covers the word.
    pub codemap: *const u8,
    /// Address of the code memory (dispatch table offsets are relative to it).
    pub code_base: u64,
    /// Statistics counters, bumped by generated code only when statistics are on.
    pub icount: u64,
    pub lookups: u64,
    pub const_exits: u64,
    pub stub_runs: u64,
    /// The machine, for the runtime functions.
    pub machine: *mut Machine,
    /// Why the last runtime call failed.
    pub pending: Option<Reason>,
}

impl JitCtx {
    pub fn new(machine: *mut Machine, heap: *mut Heap) -> JitCtx {
        JitCtx {
            regs: [0; 8],
            exit_kind: 0,
            exit_pc: 0,
            exit_a: 0,
            exit_b: 0,
            heap,
            dtable: std::ptr::null(),
            dtable_len: 0,
            _pad: 0,
            codemap: std::ptr::null(),
            code_base: 0,
            icount: 0,
            lookups: 0,
            const_exits: 0,
            stub_runs: 0,
            machine,
            pending: None,
        }
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
    pub const ICOUNT: i32 = offset_of!(JitCtx, icount) as i32;
    pub const LOOKUPS: i32 = offset_of!(JitCtx, lookups) as i32;
    pub const CONST_EXITS: i32 = offset_of!(JitCtx, const_exits) as i32;
    pub const STUB_RUNS: i32 = offset_of!(JitCtx, stub_runs) as i32;
    /// `Heap::table`, `Heap::table_len`.
    pub const HEAP_TABLE: i32 = offset_of!(Heap, table) as i32;
    pub const HEAP_TABLE_LEN: i32 = offset_of!(Heap, table_len) as i32;
    /// `Entry::base`, `Entry::len` and the entry size (a power of two).
    pub const ENTRY_BASE: i32 = offset_of!(crate::memory::Entry, base) as i32;
    pub const ENTRY_LEN: i32 = offset_of!(crate::memory::Entry, len) as i32;
    pub const ENTRY_SHIFT: u8 = std::mem::size_of::<crate::memory::Entry>().trailing_zeros() as u8;
    const _: () = assert!(std::mem::size_of::<crate::memory::Entry>() == 1 << ENTRY_SHIFT);
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
/// Called only by generated code, with the pointer it was entered with.
pub unsafe extern "C" fn rt_alloc(heap: *mut Heap, words: u32) -> u64 {
    // SAFETY: generated code passes the heap of the machine it runs; nothing else borrows it
    // while generated code runs.
    let heap = unsafe { &mut *heap };
    heap.alloc(words).map_or(RT_FAILED, u64::from)
}

/// Op 9: returns 0, or `RT_FAILED` (no effect, as for `rt_alloc`).
///
/// # Safety
/// Called only by generated code, with the pointer it was entered with.
pub unsafe extern "C" fn rt_abandon(heap: *mut Heap, id: u32) -> u64 {
    // SAFETY: as in `rt_alloc`.
    let heap = unsafe { &mut *heap };
    heap.abandon(id).map_or(RT_FAILED, |()| 0)
}

/// Op 10: returns 0, or `RT_FAILED` with the reason in `JitCtx::pending`.
///
/// # Safety
/// Called only by generated code, with the pointer it was entered with.
pub unsafe extern "C" fn rt_output(ctx: *mut JitCtx, value: u32) -> u64 {
    // SAFETY: generated code passes the context it was entered with; the machine it points
    // to is not otherwise borrowed while generated code runs.
    let ctx = unsafe { &mut *ctx };
    let m = unsafe { &mut *ctx.machine };
    let r = m.console.output(value).map(|()| 0);
    finish(ctx, r)
}

/// Op 11: returns the input value, or `RT_FAILED` with the reason in `JitCtx::pending`.
///
/// # Safety
/// Called only by generated code, with the pointer it was entered with.
pub unsafe extern "C" fn rt_input(ctx: *mut JitCtx, _unused: u32) -> u64 {
    // SAFETY: as in `rt_output`.
    let ctx = unsafe { &mut *ctx };
    let m = unsafe { &mut *ctx.machine };
    let r = m.console.input().map(u64::from);
    finish(ctx, r)
}

/// Addresses of the shared routines each backend assembles at the start of code memory
/// (their register conventions are the backend's).
#[derive(Clone, Copy, Debug, Default)]
pub struct Routines {
    /// Dispatch miss: the target pc is in the backend's dispatch register.
    pub miss: usize,
    /// Store the UM registers and return to Rust.
    pub exit: usize,
    /// `extern "C" fn(ctx, code)`: load the UM registers and jump to `code`.
    pub enter: usize,
    /// Store the exit fields passed in registers (pc, b, kind | a << 8), then `exit`.
    pub exit_with: usize,
    /// Per runtime function (`RtFn::index`): save what the call clobbers, call it, report
    /// failure.
    pub call: [usize; 4],
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
        match self {
            RtFn::Alloc => 0,
            RtFn::Abandon => 1,
            RtFn::Output => 2,
            RtFn::Input => 3,
        }
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

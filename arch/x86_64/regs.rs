//! x86-64 register assignment (System V ABI).
//!
//! - UM r0..r7 live in ebx, ebp, r12d, r13d, r8d, r9d, r10d, r11d for the whole time
//!   generated code runs (chained blocks included).
//! - r15 holds the `JitCtx`, r14 the `Heap`.
//! - rax is scratch.
//! - Two register pairs (see `ArrayUse`) hold the base and length of arrays recently indexed
//!   or amended: rdi/esi and rcx/edx. rcx, rdx, rsi and rdi are also scratch for division,
//!   allocation, calls and exits, after which the translator forgets the pairs.
//! - Runtime calls save and restore the four UM registers in caller-saved host registers
//!   (r8d..r11d) through `JitCtx::regs`.
//!
//! Every write to a UM register is a 32-bit operation, so its host register is always
//! zero-extended and serves directly as an index in addresses.

/// Host register number of each UM register.
pub(super) const HOST: [u8; 8] = [3, 5, 12, 13, 8, 9, 10, 11];
/// UM registers held in caller-saved host registers.
pub(super) const CALLER_SAVED: [u8; 4] = [4, 5, 6, 7];

pub(super) const RAX: u8 = 0;
pub(super) const RCX: u8 = 1;
pub(super) const RDX: u8 = 2;
pub(super) const RSI: u8 = 6;
pub(super) const RDI: u8 = 7;
pub(super) const R14: u8 = 14;
pub(super) const R15: u8 = 15;

/// Base and length registers of each array register pair (see `ArrayUse`).
pub(super) const PAIRS: [(u8, u8); crate::backend::ARRAY_PAIRS] = [(RDI, RSI), (RCX, RDX)];

/// The host register of UM register `r`.
pub(super) fn h(r: u8) -> u8 {
    HOST[r as usize]
}

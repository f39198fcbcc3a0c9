//! Short encodings of the instructions generated code uses most, on registers chosen at run
//! time.
//!
//! dynasm fixes an instruction's layout when umdbt is compiled, so an operand register
//! chosen at run time (`Rd(n)`) always gets a REX prefix (0x40 when none is needed), a
//! memory operand on such a base always gets a SIB byte, and a run-time displacement or
//! immediate always takes 4 bytes. The functions here choose at run time: a REX prefix only
//! for r8..r15 or a 64-bit operand, a SIB byte only for an index or an rsp/r12 base, and
//! 1-byte displacements and immediates where the value fits. Labels, jumps and the
//! instructions with fixed registers stay with dynasm, which encodes those well.
//!
//! Registers are host register numbers (0 = rax .. 15 = r15). Operations are 32-bit unless
//! the name says 64.

use super::Ops;
use dynasmrt::DynasmApi;

/// A memory operand: `[base + index * scale + disp]`, `scale` 1, 2, 4 or 8.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Mem {
    pub base: u8,
    pub index: Option<(u8, u8)>,
    pub disp: i32,
}

impl Mem {
    /// `[base + disp]`.
    pub fn at(base: u8, disp: i32) -> Mem {
        Mem {
            base,
            index: None,
            disp,
        }
    }

    /// `[base + index * scale + disp]` (the index is never rsp).
    pub fn indexed(base: u8, index: u8, scale: u8, disp: i32) -> Mem {
        debug_assert!(index != 4, "rsp cannot be an index");
        debug_assert!(matches!(scale, 1 | 2 | 4 | 8));
        Mem {
            base,
            index: Some((index, scale)),
            disp,
        }
    }
}

/// The two-operand arithmetic group: each one's `/digit` in the immediate forms (0x81,
/// 0x83); its register form's opcode is `digit * 8 + 1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Alu {
    Add = 0,
    And = 4,
    Sub = 5,
    Xor = 6,
    Cmp = 7,
}

/// The REX prefix for a 64-bit operand (`w`) and the high bits of the ModRM reg field
/// (`r`), the SIB index (`x`) and the ModRM r/m or SIB base (`b`), if one is needed.
fn rex(ops: &mut Ops, w: bool, r: u8, x: u8, b: u8) {
    let byte = 0x40 | (w as u8) << 3 | (r >> 3) << 2 | (x >> 3) << 1 | (b >> 3);
    if byte != 0x40 {
        ops.push(byte);
    }
}

/// `opcode reg, rm` with a register r/m operand.
fn reg_reg(ops: &mut Ops, w: bool, opcode: &[u8], reg: u8, rm: u8) {
    rex(ops, w, reg, 0, rm);
    ops.extend(opcode.iter().copied());
    ops.push(0xC0 | (reg & 7) << 3 | (rm & 7));
}

/// `opcode reg, [m]`: ModRM, SIB if needed and the shortest displacement.
fn reg_mem(ops: &mut Ops, w: bool, opcode: &[u8], reg: u8, m: Mem) {
    let (index, scale) = m.index.unwrap_or((4, 1));
    rex(
        ops,
        w,
        reg,
        if m.index.is_some() { index } else { 0 },
        m.base,
    );
    ops.extend(opcode.iter().copied());
    // rbp and r13 as a base have no form without a displacement.
    let mode: u8 = if m.disp == 0 && m.base & 7 != 5 {
        0
    } else if i8::try_from(m.disp).is_ok() {
        1
    } else {
        2
    };
    // rsp and r12 as a base, or any index, need a SIB byte (index 100: none).
    if m.index.is_some() || m.base & 7 == 4 {
        ops.push(mode << 6 | (reg & 7) << 3 | 4);
        let ss = scale.trailing_zeros() as u8;
        ops.push(ss << 6 | (index & 7) << 3 | (m.base & 7));
    } else {
        ops.push(mode << 6 | (reg & 7) << 3 | (m.base & 7));
    }
    match mode {
        0 => {}
        1 => ops.push(m.disp as u8),
        _ => ops.extend(m.disp.to_le_bytes()),
    }
}

/// `mov dst, src`.
pub(super) fn mov_rr(ops: &mut Ops, dst: u8, src: u8) {
    reg_reg(ops, false, &[0x89], src, dst);
}

/// `mov dst, src` on 64-bit registers.
pub(super) fn mov64_rr(ops: &mut Ops, dst: u8, src: u8) {
    reg_reg(ops, true, &[0x89], src, dst);
}

/// `mov dst, imm` (zero-extends into the 64-bit register).
pub(super) fn mov_ri(ops: &mut Ops, dst: u8, imm: u32) {
    rex(ops, false, 0, 0, dst);
    ops.push(0xB8 | (dst & 7));
    ops.extend(imm.to_le_bytes());
}

/// `op dst, src`.
pub(super) fn alu_rr(ops: &mut Ops, op: Alu, dst: u8, src: u8) {
    reg_reg(ops, false, &[(op as u8) << 3 | 1], src, dst);
}

/// `op dst, imm`: a 1-byte immediate where it fits.
pub(super) fn alu_ri(ops: &mut Ops, op: Alu, dst: u8, imm: i32) {
    alu_ri_w(ops, false, op, dst, imm);
}

/// `op dst, imm` on the 64-bit register (the immediate sign-extended): a 1-byte immediate
/// where it fits.
pub(super) fn alu64_ri(ops: &mut Ops, op: Alu, dst: u8, imm: i32) {
    alu_ri_w(ops, true, op, dst, imm);
}

fn alu_ri_w(ops: &mut Ops, w: bool, op: Alu, dst: u8, imm: i32) {
    if let Ok(b) = i8::try_from(imm) {
        reg_reg(ops, w, &[0x83], op as u8, dst);
        ops.push(b as u8);
    } else if dst == 0 {
        rex(ops, w, 0, 0, 0);
        ops.push((op as u8) << 3 | 5);
        ops.extend(imm.to_le_bytes());
    } else {
        reg_reg(ops, w, &[0x81], op as u8, dst);
        ops.extend(imm.to_le_bytes());
    }
}

/// `test a, b`.
pub(super) fn test_rr(ops: &mut Ops, a: u8, b: u8) {
    reg_reg(ops, false, &[0x85], b, a);
}

/// `test r, imm`.
pub(super) fn test_ri(ops: &mut Ops, r: u8, imm: u32) {
    if r == 0 {
        ops.push(0xA9);
    } else {
        reg_reg(ops, false, &[0xF7], 0, r);
    }
    ops.extend(imm.to_le_bytes());
}

/// `mov dst, DWORD [m]`.
pub(super) fn load(ops: &mut Ops, dst: u8, m: Mem) {
    reg_mem(ops, false, &[0x8B], dst, m);
}

/// `mov dst, QWORD [m]`.
pub(super) fn load64(ops: &mut Ops, dst: u8, m: Mem) {
    reg_mem(ops, true, &[0x8B], dst, m);
}

/// `mov DWORD [m], src`.
pub(super) fn store(ops: &mut Ops, m: Mem, src: u8) {
    reg_mem(ops, false, &[0x89], src, m);
}

/// `mov DWORD [m], imm`.
pub(super) fn store_imm(ops: &mut Ops, m: Mem, imm: u32) {
    reg_mem(ops, false, &[0xC7], 0, m);
    ops.extend(imm.to_le_bytes());
}

/// `cmp dst, DWORD [m]`.
pub(super) fn cmp_rm(ops: &mut Ops, r: u8, m: Mem) {
    reg_mem(ops, false, &[0x3B], r, m);
}

/// `lea dst, [m]` with a 32-bit result (the low half of the 64-bit address).
pub(super) fn lea(ops: &mut Ops, dst: u8, m: Mem) {
    reg_mem(ops, false, &[0x8D], dst, m);
}

/// `prefetcht0 [m]`: a hint to bring the line into every cache level; it never faults.
pub(super) fn prefetch(ops: &mut Ops, m: Mem) {
    reg_mem(ops, false, &[0x0F, 0x18], 1, m);
}

/// `cmovnz dst, src`.
pub(super) fn cmovnz(ops: &mut Ops, dst: u8, src: u8) {
    reg_reg(ops, false, &[0x0F, 0x45], dst, src);
}

/// `cmovz dst, src`.
pub(super) fn cmovz(ops: &mut Ops, dst: u8, src: u8) {
    reg_reg(ops, false, &[0x0F, 0x44], dst, src);
}

/// `imul dst, src`.
pub(super) fn imul_rr(ops: &mut Ops, dst: u8, src: u8) {
    reg_reg(ops, false, &[0x0F, 0xAF], dst, src);
}

/// `imul dst, src, imm`: a 1-byte immediate where it fits.
pub(super) fn imul_rri(ops: &mut Ops, dst: u8, src: u8, imm: i32) {
    if let Ok(b) = i8::try_from(imm) {
        reg_reg(ops, false, &[0x6B], dst, src);
        ops.push(b as u8);
    } else {
        reg_reg(ops, false, &[0x69], dst, src);
        ops.extend(imm.to_le_bytes());
    }
}

/// `not r`.
pub(super) fn not(ops: &mut Ops, r: u8) {
    reg_reg(ops, false, &[0xF7], 2, r);
}

/// `shr r, n` (1 <= n < 32).
pub(super) fn shr_ri(ops: &mut Ops, r: u8, n: u8) {
    reg_reg(ops, false, &[0xC1], 5, r);
    ops.push(n);
}

/// `shl r, n` on the 64-bit register (1 <= n < 64).
pub(super) fn shl64_ri(ops: &mut Ops, r: u8, n: u8) {
    reg_reg(ops, true, &[0xC1], 4, r);
    ops.push(n);
}

/// `add dst, QWORD [m]`.
pub(super) fn add64_rm(ops: &mut Ops, dst: u8, m: Mem) {
    reg_mem(ops, true, &[0x03], dst, m);
}

/// `div r` (edx:eax by r).
pub(super) fn div(ops: &mut Ops, r: u8) {
    reg_reg(ops, false, &[0xF7], 6, r);
}

/// `lea dst, [index * scale + disp]`, with no base: the one form whose displacement is
/// always 4 bytes.
pub(super) fn lea_scaled(ops: &mut Ops, dst: u8, index: u8, scale: u8, disp: i32) {
    debug_assert!(index != 4, "rsp cannot be an index");
    rex(ops, false, dst, index, 0);
    ops.push(0x8D);
    ops.push((dst & 7) << 3 | 4);
    ops.push((scale.trailing_zeros() as u8) << 6 | (index & 7) << 3 | 5);
    ops.extend(disp.to_le_bytes());
}

/// `cmp BYTE [m], imm`.
pub(super) fn cmp8_mi(ops: &mut Ops, m: Mem, imm: i8) {
    reg_mem(ops, false, &[0x80], 7, m);
    ops.push(imm as u8);
}

/// `op DWORD [m], imm` (`w`: QWORD): a 1-byte immediate where it fits.
fn alu_mi(ops: &mut Ops, w: bool, op: Alu, m: Mem, imm: i32) {
    match i8::try_from(imm) {
        Ok(b) => {
            reg_mem(ops, w, &[0x83], op as u8, m);
            ops.push(b as u8);
        }
        Err(_) => {
            reg_mem(ops, w, &[0x81], op as u8, m);
            ops.extend(imm.to_le_bytes());
        }
    }
}

/// `op DWORD [m], imm`: a 1-byte immediate where it fits.
pub(super) fn alu32_mi(ops: &mut Ops, op: Alu, m: Mem, imm: i32) {
    alu_mi(ops, false, op, m, imm);
}

/// `sub WORD [m], 1`.
pub(super) fn dec16_m(ops: &mut Ops, m: Mem) {
    ops.push(0x66);
    reg_mem(ops, false, &[0x83], Alu::Sub as u8, m);
    ops.push(1);
}

/// `mov QWORD [m], src`.
pub(super) fn store64(ops: &mut Ops, m: Mem, src: u8) {
    reg_mem(ops, true, &[0x89], src, m);
}

/// `op QWORD [m], imm` (sign-extended): a 1-byte immediate where it fits.
pub(super) fn alu64_mi(ops: &mut Ops, op: Alu, m: Mem, imm: i32) {
    alu_mi(ops, true, op, m, imm);
}

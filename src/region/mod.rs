//! The optimizing tier: hot code is compiled again as a *region*, several blocks that run
//! together (loops included), through an SSA intermediate representation.
//!
//! 1. [`form`]: from a hot pc, the blocks the code goes through (constant jumps, both sides
//!    of two-way branches, the targets computed jumps were seen to take);
//! 2. [`build`]: SSA over the UM registers, with an exit holding the exact UM state at
//!    every place the region may be left;
//! 3. [`opt`]: constant propagation and folding, copy propagation, algebra, branch
//!    simplification, check hoisting out of loops, facts that checks prove, dead code;
//! 4. [`lower`]: machine code through the backend, keeping constants unmaterialized and
//!    array bases and lengths in registers across blocks.
//!
//! A region is entered at its seed pc instead of the baseline block there. Everything it
//! cannot handle leaves through an exit to baseline code, with the registers written back
//! as the baseline expects them; stores into any of its words invalidate it like a block.

pub mod build;
pub mod form;
pub mod ir;
pub mod lower;
pub mod opt;

use crate::backend::{Backend, Routines, TooLong};
use crate::cache::CompiledRegion;
use crate::translator::Options;
pub use form::Seen;
pub use opt::Passes;

/// Form the region at `seed` of `program` (array 0): its blocks, before anything is
/// compiled (so that the cache can make room for the words it covers).
pub fn plan(program: &[u32], seed: u32, max_block: u32, seen: &form::Seen) -> form::Plan {
    form::form(program, seed, max_block, seen)
}

/// Build, optimize and lower `plan` for placement at `base`; its chain requests report
/// `link_tag`. `is_code` says whether a word of array 0 is covered by another translation;
/// `array0_len` is array 0's length (as for `translator::translate`).
#[allow(clippy::too_many_arguments)]
pub fn compile<B: Backend>(
    plan: &form::Plan,
    is_code: &dyn Fn(u32) -> bool,
    passes: Passes,
    base: usize,
    routines: &Routines,
    check_ids: bool,
    link_tag: u32,
    opts: Options,
    want_ir: bool,
    array0_len: u32,
) -> Result<CompiledRegion, TooLong> {
    let seed = plan.start(0);
    let built = build::build(plan, is_code);
    let mut func = built.func;
    opt::optimize(&mut func, passes);
    let ir = want_ir.then(|| func.to_string());
    let mut e = B::new(base, routines, check_ids);
    let lowered = lower::lower(&mut e, &func, seed, link_tag, opts, array0_len);
    let code = e.finish()?;
    let ranges = plan
        .nodes
        .iter()
        .map(|n| (n.run.start, n.run.next_pc()))
        .collect();
    log::debug!(
        "region at pc {seed}: {} blocks, {} UM ops -> {} bytes",
        plan.nodes.len(),
        plan.ops(),
        code.len()
    );
    Ok(CompiledRegion {
        seed,
        ranges,
        code,
        exits: lowered.exits,
        watches: built.watches,
        ops: plan.ops() as u32,
        blocks: plan.nodes.len(),
        ir,
    })
}

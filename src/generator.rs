//! Random UM programs that actually run, for differential testing of the engines.
//!
//! A program is assembly text built from snippets: straight-line arithmetic, array work on a
//! data array and on array 0, counted loops, calls and returns through computed jumps, jump
//! tables, two-way branches, allocation churn, output, input, self-modification (patching
//! code ahead, behind and in the running block), load program from a modified copy of array
//! 0, and now and then a fault. Loops are counted, so every program ends.
//!
//! Register conventions: r0..r3 hold data; r4 and r7 are scratch; r5 names a 64-word data
//! array; r6 counts loop iterations.

use crate::assembler::assemble;

/// A small deterministic generator (SplitMix64).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True with probability `num/den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// What the generator may put in a program.
#[derive(Clone, Copy, Debug)]
pub struct GenOptions {
    /// Snippets in the main line.
    pub snippets: usize,
    /// End in a fault instead of halt now and then.
    pub faults: bool,
}

impl Default for GenOptions {
    fn default() -> Self {
        GenOptions {
            snippets: 24,
            faults: true,
        }
    }
}

/// A generated program: its source (kept for reports) and its words.
#[derive(Clone, Debug)]
pub struct Generated {
    pub source: String,
    pub program: Vec<u32>,
    /// Input to feed it.
    pub input: Vec<u8>,
}

struct Gen {
    rng: Rng,
    out: String,
    /// Subroutines and other code placed after the main line.
    tail: String,
    labels: usize,
    /// Labels of `literal r0, V` instructions that self-modification may patch.
    patch_sites: Vec<String>,
    /// Subroutine labels (return address in r3).
    subs: Vec<String>,
}

const DATA_WORDS: u32 = 16;

impl Gen {
    fn label(&mut self, what: &str) -> String {
        self.labels += 1;
        format!("{what}{}", self.labels)
    }

    fn line(&mut self, s: &str) {
        self.out.push_str("    ");
        self.out.push_str(s);
        self.out.push('\n');
    }

    fn data_reg(&mut self) -> u8 {
        self.rng.below(4) as u8
    }

    fn value(&mut self) -> u32 {
        match self.rng.below(4) {
            0 => self.rng.below(4) as u32,
            1 => self.rng.below(256) as u32,
            2 => 0x01FF_FFFF - self.rng.below(4) as u32,
            _ => self.rng.below(1 << 25) as u32,
        }
    }

    /// One straight-line operation on the data registers.
    fn arith(&mut self) {
        let (a, b, c) = (self.data_reg(), self.data_reg(), self.data_reg());
        let s = match self.rng.below(10) {
            0 | 1 => format!("literal r{a}, {}", self.value()),
            2 => format!("add r{a}, r{b}, r{c}"),
            3 => format!("mul r{a}, r{b}, r{c}"),
            4 => format!("nand r{a}, r{b}, r{c}"),
            5 => format!("cmov r{a}, r{b}, r{c}"),
            6 => {
                // Division by a non-zero constant, or by itself after making it non-zero.
                let k = 1 + self.rng.below(1000);
                format!("literal r7, {k}\n    div r{a}, r{b}, r7")
            }
            7 => format!(
                "literal r7, 1\n    add r{c}, r{c}, r7\n    cmov r7, r{c}, r{c}\n    div r{a}, r{b}, r7"
            ),
            8 => {
                let k = self.operand();
                let op = match self.rng.below(3) {
                    0 => format!("add r{a}, r{b}, r7"),
                    1 => format!("nand r{a}, r{b}, r7"),
                    _ => format!("nand r{a}, r{b}, r7\n    nand r{a}, r{a}, r{a}"),
                };
                format!("{k}\n    {op}")
            }
            _ => format!("add r{a}, r{a}, r{b}"),
        };
        self.line(&s);
    }

    /// Instructions that leave in r7 a constant of the kinds host immediates take (small,
    /// a multiple of 4096, the negation of either, a run of ones or its complement) or any
    /// other.
    fn operand(&mut self) -> String {
        let (m, run) = match self.rng.below(4) {
            0 => (self.rng.below(4096) as u32, false),
            1 => ((self.rng.below(4096) as u32) << 12, false),
            2 => (((1u64 << (1 + self.rng.below(24))) - 1) as u32, true),
            _ => return format!("literal r7, {}", self.value()),
        };
        if self.rng.chance(1, 2) {
            return format!("literal r7, {m}");
        }
        // The nand of x with itself is !x: the complement of a run, or -m for x = m - 1.
        let x = if run {
            m
        } else {
            m.wrapping_sub(1) & 0x01FF_FFFF
        };
        format!("literal r7, {x}\n    nand r7, r7, r7")
    }

    /// Index or amend the data array (r5) at an offset made valid by masking.
    fn data_array(&mut self) {
        let (a, b) = (self.data_reg(), self.data_reg());
        if self.rng.chance(1, 2) {
            let k = self.rng.below(64);
            self.line(&format!("literal r7, {k}"));
        } else {
            // Offset from a data register, masked to 0..63.
            self.line(&format!(
                "literal r7, 63\n    nand r7, r{b}, r7\n    nand r7, r7, r7"
            ));
        }
        if self.rng.chance(1, 2) {
            self.line(&format!("index r{a}, r5, r7"));
        } else {
            self.line(&format!("amend r5, r7, r{a}"));
        }
    }

    /// Read or write the data area of array 0.
    fn array0(&mut self) {
        let a = self.data_reg();
        let k = self.rng.below(DATA_WORDS as u64);
        self.line(&format!("literal r4, 0\n    literal r7, data+{k}"));
        if self.rng.chance(1, 2) {
            self.line(&format!("index r{a}, r4, r7"));
        } else {
            self.line(&format!("amend r4, r7, r{a}"));
        }
    }

    /// Print the low byte of a data register.
    fn output(&mut self) {
        let a = self.data_reg();
        self.line(&format!(
            "literal r7, 255\n    nand r4, r{a}, r7\n    nand r4, r4, r4\n    output r4"
        ));
    }

    fn input(&mut self) {
        let a = self.data_reg();
        self.line(&format!("input r{a}"));
    }

    /// A patchable instruction (`literal r0, V`) that self-modification may rewrite.
    fn patch_site(&mut self) {
        let l = self.label("site");
        let v = self.value();
        self.out.push_str(&format!("{l}:\n"));
        self.line(&format!("literal r0, {v}"));
        self.patch_sites.push(l);
    }

    /// Store a template instruction into a patch site (ahead, behind, or the next word).
    fn patch(&mut self) {
        let t = self.rng.below(4);
        let here_next = self.rng.chance(1, 3) || self.patch_sites.is_empty();
        if here_next {
            // Patch the instruction right after the store, in the running block.
            let l = self.label("next");
            self.line(&format!(
                "literal r4, 0\n    literal r7, templates+{t}\n    index r1, r4, r7\n    literal r7, {l}\n    amend r4, r7, r1"
            ));
            self.out.push_str(&format!("{l}:\n"));
            let v = self.value();
            self.line(&format!("literal r0, {v}"));
            self.patch_sites.push(l);
        } else {
            let site = self.rng.pick(&self.patch_sites).clone();
            self.line(&format!(
                "literal r4, 0\n    literal r7, templates+{t}\n    index r1, r4, r7\n    literal r7, {site}\n    amend r4, r7, r1"
            ));
        }
    }

    /// A counted loop around a few operations.
    fn counted_loop(&mut self) {
        let (top, exit) = (self.label("loop"), self.label("endloop"));
        let n = 1 + self.rng.below(6);
        self.line(&format!("literal r6, {n}"));
        self.out.push_str(&format!("{top}:\n"));
        for _ in 0..1 + self.rng.below(5) {
            match self.rng.below(6) {
                0 => self.data_array(),
                1 => self.patch(),
                2 => self.patch_site(),
                _ => self.arith(),
            }
        }
        self.line(&format!(
            "literal r7, 0\n    nand r7, r7, r7\n    add r6, r6, r7\n    literal r4, {exit}\n    literal r7, {top}\n    cmov r4, r7, r6\n    literal r7, 0\n    loadprog r7, r4"
        ));
        self.out.push_str(&format!("{exit}:\n"));
    }

    /// A two-way branch on a data register.
    fn branch(&mut self) {
        let (t, f, join) = (self.label("then"), self.label("else"), self.label("join"));
        let c = self.data_reg();
        self.line(&format!(
            "literal r4, {f}\n    literal r7, {t}\n    cmov r4, r7, r{c}\n    literal r7, 0\n    loadprog r7, r4"
        ));
        self.out.push_str(&format!("{t}:\n"));
        self.arith();
        self.line(&format!(
            "literal r7, 0\n    literal r4, {join}\n    loadprog r7, r4"
        ));
        self.out.push_str(&format!("{f}:\n"));
        self.arith();
        self.out.push_str(&format!("{join}:\n"));
    }

    /// Call a subroutine (return address in r3), defining it in the tail if needed.
    fn call(&mut self) {
        if self.subs.is_empty() || self.rng.chance(1, 3) {
            let sub = self.label("sub");
            let body_len = 1 + self.rng.below(4);
            let saved = std::mem::take(&mut self.out);
            self.out.push_str(&format!("{sub}:\n"));
            for _ in 0..body_len {
                // Subroutines keep r3 (the return address) intact.
                let (a, b) = (self.rng.below(3) as u8, self.rng.below(3) as u8);
                self.line(&format!("add r{a}, r{a}, r{b}"));
            }
            self.line("literal r7, 0\n    loadprog r7, r3");
            let body = std::mem::replace(&mut self.out, saved);
            self.tail.push_str(&body);
            self.subs.push(sub);
        }
        let sub = self.rng.pick(&self.subs).clone();
        let back = self.label("ret");
        self.line(&format!(
            "literal r3, {back}\n    literal r7, 0\n    literal r4, {sub}\n    loadprog r7, r4"
        ));
        self.out.push_str(&format!("{back}:\n"));
    }

    /// Jump through a table in array 0 indexed by a data register.
    fn jump_table(&mut self) {
        let (table, join) = (self.label("table"), self.label("join"));
        let arms: Vec<String> = (0..4).map(|_| self.label("arm")).collect();
        let c = self.data_reg();
        self.line(&format!(
            "literal r7, 3\n    nand r4, r{c}, r7\n    nand r4, r4, r4\n    literal r7, {table}\n    add r7, r7, r4\n    literal r4, 0\n    index r4, r4, r7\n    literal r7, 0\n    loadprog r7, r4"
        ));
        for arm in &arms {
            self.out.push_str(&format!("{arm}:\n"));
            self.arith();
            self.line(&format!(
                "literal r7, 0\n    literal r4, {join}\n    loadprog r7, r4"
            ));
        }
        self.out.push_str(&format!("{table}:\n"));
        for arm in &arms {
            self.line(&format!("word {arm}"));
        }
        self.out.push_str(&format!("{join}:\n"));
    }

    /// Allocate, use and abandon a few arrays.
    fn churn(&mut self) {
        let n = 1 + self.rng.below(20);
        let a = self.data_reg();
        let k = self.rng.below(n);
        self.line(&format!(
            "literal r7, {n}\n    alloc r4, r7\n    literal r7, {k}\n    amend r4, r7, r{a}\n    index r{a}, r4, r7\n    abandon r4"
        ));
    }

    /// Access a fresh array through r4, then make r4 name the data array and access it
    /// again: the translator must not keep using the first array's base and length.
    fn array_switch(&mut self) {
        let n = 1 + self.rng.below(8);
        let (a, b) = (self.data_reg(), self.data_reg());
        let k1 = self.rng.below(n);
        let k2 = self.rng.below(64);
        self.line(&format!(
            "literal r7, {n}\n    alloc r4, r7\n    literal r7, {k1}\n    amend r4, r7, r{a}\n    index r{a}, r4, r7\n    literal r7, 0\n    add r4, r5, r7\n    literal r7, {k2}\n    index r{b}, r4, r7"
        ));
    }

    /// Copy array 0 into a new array, patch a site in the copy, and load it, continuing
    /// right after the load.
    fn load_modified_copy(&mut self) {
        let (copy, cont) = (self.label("copy"), self.label("cont"));
        let t = self.rng.below(4);
        // The site patched in the copy: an earlier one, or one right where the copy resumes
        // (`cont` is followed by a `literal r0`, which is what templates replace).
        let site = if self.patch_sites.is_empty() || self.rng.chance(1, 2) {
            cont.clone()
        } else {
            self.rng.pick(&self.patch_sites).clone()
        };
        // r6: index, r4: the copy; r1 scratch (data), r2 holds the length.
        self.line(&format!(
            "literal r2, end\n    alloc r4, r2\n    literal r6, 0\n{copy}:\n    literal r7, 0\n    index r1, r7, r6\n    amend r4, r6, r1\n    literal r7, 1\n    add r6, r6, r7\n    nand r7, r6, r6\n    literal r1, 1\n    add r7, r7, r1\n    add r7, r7, r2\n    literal r1, {copy}\n    literal r3, {cont}x\n    cmov r3, r1, r7\n    literal r7, 0\n    loadprog r7, r3\n{cont}x:\n    literal r7, templates+{t}\n    literal r1, 0\n    index r1, r1, r7\n    literal r7, {site}\n    amend r4, r7, r1\n    literal r7, {cont}\n    loadprog r4, r7\n{cont}:"
        ));
        let v = self.value();
        self.line(&format!("literal r0, {v}"));
        self.patch_sites.push(cont);
    }

    fn ending(&mut self) {
        if self.rng.chance(1, 4) {
            let a = self.data_reg();
            let s = match self.rng.below(10) {
                0 => "word 0xE0000000".to_string(),
                1 => "word 0xF1234567".to_string(),
                2 => "literal r7, 0\n    abandon r7".to_string(),
                3 => format!("literal r7, 0\n    div r{a}, r{a}, r7"),
                4 => "literal r7, 300\n    output r7".to_string(),
                5 => "literal r7, 64\n    index r0, r5, r7".to_string(),
                6 => "literal r7, 0x1FFFFFF\n    index r0, r7, r7".to_string(),
                7 => "abandon r5\n    abandon r5".to_string(),
                8 => "literal r7, 0x1FFFFFF\n    literal r4, 0\n    loadprog r4, r7".to_string(),
                _ => "literal r7, 0x1FFFFFF\n    loadprog r7, r7".to_string(),
            };
            self.line(&s);
        }
        self.line("halt");
    }
}

/// Generate a program from `seed`.
pub fn generate(seed: u64, opts: GenOptions) -> Generated {
    let mut g = Gen {
        rng: Rng::new(seed),
        out: String::new(),
        tail: String::new(),
        labels: 0,
        patch_sites: Vec::new(),
        subs: Vec::new(),
    };
    for r in 0..4 {
        let v = g.value();
        g.line(&format!("literal r{r}, {v}"));
    }
    g.line("literal r7, 64\n    alloc r5, r7");
    for _ in 0..opts.snippets {
        match g.rng.below(16) {
            0..=3 => g.arith(),
            4 => g.data_array(),
            5 => g.array0(),
            6 => g.output(),
            7 => g.input(),
            8 => g.patch_site(),
            9 => g.patch(),
            10 => g.counted_loop(),
            11 => g.branch(),
            12 => g.call(),
            13 => g.jump_table(),
            14 => {
                if g.rng.chance(1, 2) {
                    g.churn()
                } else {
                    g.array_switch()
                }
            }
            _ => {
                if g.rng.chance(1, 3) {
                    g.load_modified_copy();
                } else {
                    g.arith();
                }
            }
        }
    }
    if opts.faults {
        g.ending();
    } else {
        g.line("halt");
    }
    let mut source = std::mem::take(&mut g.out);
    source.push_str(&g.tail);
    source.push_str("templates:\n");
    for r in 0..4 {
        let v = g.value();
        source.push_str(&format!("    literal r{r}, {v}\n"));
    }
    source.push_str("data:\n");
    for _ in 0..DATA_WORDS {
        let v = g.value();
        source.push_str(&format!("    word {v}\n"));
    }
    source.push_str("end:\n");
    let program = assemble(&source)
        .unwrap_or_else(|e| panic!("generated program does not assemble: {e}\n{source}"));
    let input = (0..g.rng.below(8))
        .map(|_| g.rng.below(256) as u8)
        .collect();
    Generated {
        source,
        program,
        input,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_varied() {
        let a = generate(1, GenOptions::default());
        let b = generate(1, GenOptions::default());
        let c = generate(2, GenOptions::default());
        assert_eq!(a.program, b.program);
        assert_ne!(a.program, c.program);
    }
}

//! Memory for generated code: one fixed mapping that never moves.
//!
//! dynasmrt's own `Assembler` moves its buffer when it grows and re-protects the whole buffer
//! on every commit and alter, which gets slow as code grows (see `shared/NOTES.md`). Instead,
//! each block is assembled with dynasmrt's `VecAssembler` for the address it will occupy, then
//! copied into this mapping, which is readable, writable and executable for its whole life.
//! Nothing moves, so code offsets stay valid, and chaining a jump is a plain write of a few
//! bytes. Translations are only written while no generated code runs (the engine is
//! single-threaded and writes from Rust between runs of generated code).
//!
//! The mapping is reserved with `MAP_NORESERVE`: only pages actually written use memory.

use std::io;

pub struct CodeMemory {
    base: *mut u8,
    capacity: usize,
    used: usize,
}

impl CodeMemory {
    /// Reserve `capacity` bytes (rounded up to pages) of executable memory.
    pub fn new(capacity: usize) -> io::Result<CodeMemory> {
        let page = 1 << 16;
        let capacity = capacity.div_ceil(page) * page;
        // SAFETY: an anonymous private mapping with no address hint has no preconditions; the
        // result is checked for MAP_FAILED below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                capacity,
                libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(CodeMemory {
            base: p.cast(),
            capacity,
            used: 0,
        })
    }

    /// Address of the first byte.
    pub fn base(&self) -> usize {
        self.base as usize
    }

    /// Bytes handed out so far.
    pub fn used(&self) -> usize {
        self.used
    }

    /// Bytes still free.
    pub fn free(&self) -> usize {
        self.capacity - self.used
    }

    /// Address at which the next `append` will place its code (aligned to 16 bytes).
    pub fn next_address(&self) -> usize {
        self.base() + self.used.next_multiple_of(16)
    }

    /// Copy `code` (assembled for `next_address()`) in; returns its offset, or `None` when
    /// there is no room.
    pub fn append(&mut self, code: &[u8]) -> Option<usize> {
        let start = self.used.next_multiple_of(16);
        if start + code.len() > self.capacity {
            return None;
        }
        // SAFETY: `start + len <= capacity`, the mapping is writable, and no generated code
        // runs while Rust writes (single-threaded engine).
        unsafe {
            std::ptr::copy_nonoverlapping(code.as_ptr(), self.base.add(start), code.len());
        }
        self.used = start + code.len();
        self.sync(start, code.len());
        Some(start)
    }

    /// Overwrite `bytes` at `offset` (a jump being chained or unchained).
    pub fn patch(&mut self, offset: usize, bytes: &[u8]) {
        assert!(
            offset + bytes.len() <= self.used,
            "patch outside written code"
        );
        // SAFETY: the range lies inside code written earlier, in a writable mapping, and no
        // generated code runs while Rust writes.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.base.add(offset), bytes.len());
        }
        self.sync(offset, bytes.len());
    }

    /// Read back `len` bytes at `offset`.
    pub fn bytes(&self, offset: usize, len: usize) -> &[u8] {
        assert!(offset + len <= self.used);
        // SAFETY: the range lies inside written code; `&self` keeps it from being patched.
        unsafe { std::slice::from_raw_parts(self.base.add(offset), len) }
    }

    /// Forget every translation except the first `keep` bytes.
    pub fn truncate(&mut self, keep: usize) {
        self.used = keep.min(self.used);
    }

    /// Make written bytes visible to instruction fetch (a no-op on x86-64).
    fn sync(&self, offset: usize, len: usize) {
        // SAFETY: the range lies inside the mapping.
        let slice = unsafe { std::slice::from_raw_parts(self.base.add(offset), len) };
        dynasmrt::cache_control::synchronize_icache(slice);
    }
}

impl Drop for CodeMemory {
    fn drop(&mut self) {
        // SAFETY: `base`/`capacity` describe the mapping made in `new`; no code runs any more.
        unsafe { libc::munmap(self.base.cast(), self.capacity) };
    }
}

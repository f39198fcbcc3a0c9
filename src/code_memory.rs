//! Memory for generated code: one fixed region that never moves, and is never writable and
//! executable at the same time (W^X).
//!
//! The region is a memory file (`memfd_create`) mapped twice: generated code runs from a
//! read-execute view, and Rust writes blocks and patches chained jumps through a separate
//! read-write view of the same pages. Nothing is re-protected, ever: a chain patch is one
//! aligned 8-byte store through the writable view. Where the system refuses a memory file,
//! the region is one anonymous mapping whose pages switch protection: the pages Rust writes
//! become writable (and not executable) until generated code runs again
//! ([`CodeMemory::make_executable`]), which makes just those pages executable again.
//!
//! Each block is assembled (dynasmrt's `VecAssembler`) for the address it will run at, then
//! copied in. Code offsets stay valid for the region's life. Only written pages use
//! memory. Generated code never runs while Rust writes: the engine is single-threaded.

use crate::memory::reserve::page_size;
use memmap2::{Mmap, MmapMut, MmapOptions};
use std::fs::File;
use std::io;
use std::os::fd::FromRawFd;

/// How the region is kept W^X.
enum Views {
    /// One memory file, two mappings (kept for their `Drop`, which unmaps them).
    Dual { _exec: Mmap, _write: MmapMut },
    /// One anonymous mapping whose written pages switch between writable and executable;
    /// `dirty` is the range of pages writable since they last became executable.
    Switching {
        _map: MmapMut,
        dirty: Option<(usize, usize)>,
    },
}

pub struct CodeMemory {
    views: Views,
    /// Where code runs (the executable view).
    exec_base: *mut u8,
    /// Where Rust writes it (the writable view; the same as `exec_base` when switching).
    write_base: *mut u8,
    capacity: usize,
    used: usize,
}

/// How to keep code memory W^X.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Two views of a memory file (falls back to `Switching` where that is refused).
    Dual,
    /// One anonymous mapping whose written pages switch protection. Profilers need it:
    /// `perf` looks up the names of code in anonymous executable memory only.
    Switching,
}

/// `UMDBT_CODE_MEMORY=switch` asks for the switching kind (a debugging knob).
fn force_switching() -> bool {
    std::env::var_os("UMDBT_CODE_MEMORY").is_some_and(|v| v == "switch")
}

impl CodeMemory {
    /// Reserve `capacity` bytes (rounded up to 64 KiB) of code memory of the `kind` asked
    /// for.
    pub fn new(capacity: usize, kind: Kind) -> io::Result<CodeMemory> {
        let capacity = capacity.next_multiple_of(1 << 16);
        if kind == Kind::Dual && !force_switching() {
            match CodeMemory::dual(capacity) {
                Ok(m) => return Ok(m),
                Err(e) => log::warn!(
                    "cannot map code memory twice ({e}); switching its protection instead"
                ),
            }
        }
        CodeMemory::switching(capacity)
    }

    fn dual(capacity: usize) -> io::Result<CodeMemory> {
        // SAFETY: the name is a NUL-terminated string; the result is checked below.
        let fd = unsafe { libc::memfd_create(c"umdbt-code".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a new descriptor that nothing else owns.
        let file = unsafe { File::from_raw_fd(fd) };
        file.set_len(capacity as u64)?;
        let mut opts = MmapOptions::new();
        opts.len(capacity);
        // SAFETY: the file is private to this process (an unnamed memory file) and never
        // truncated, so the mappings stay valid; the two views alias, which is the point:
        // Rust only writes through `write` while no generated code runs from `exec`.
        let (exec, mut write) = unsafe { (opts.map_exec(&file)?, opts.map_mut(&file)?) };
        let exec_base = exec.as_ptr().cast_mut();
        let write_base = write.as_mut_ptr();
        Ok(CodeMemory {
            views: Views::Dual {
                _exec: exec,
                _write: write,
            },
            exec_base,
            write_base,
            capacity,
            used: 0,
        })
    }

    fn switching(capacity: usize) -> io::Result<CodeMemory> {
        let mut map = MmapOptions::new()
            .len(capacity)
            .no_reserve_swap()
            .map_anon()?;
        let base = map.as_mut_ptr();
        Ok(CodeMemory {
            views: Views::Switching {
                _map: map,
                dirty: None,
            },
            exec_base: base,
            write_base: base,
            capacity,
            used: 0,
        })
    }

    /// Whether the region is two views of one memory file (else protections switch).
    pub fn is_dual(&self) -> bool {
        matches!(self.views, Views::Dual { .. })
    }

    /// Address of the first byte, as generated code runs it.
    pub fn base(&self) -> usize {
        self.exec_base as usize
    }

    /// Bytes handed out so far.
    pub fn used(&self) -> usize {
        self.used
    }

    /// Address at which the next `append` will place its code (aligned to 16 bytes).
    pub fn next_address(&self) -> usize {
        self.base() + self.used.next_multiple_of(16)
    }

    /// Make bytes `start..end` writable (only the switching kind changes anything).
    fn make_writable(&mut self, start: usize, end: usize) {
        let base = self.exec_base;
        if let Views::Switching { dirty, .. } = &mut self.views {
            let page = page_size();
            let (lo, hi) = (start / page * page, end.next_multiple_of(page));
            let (lo, hi) = match *dirty {
                // Already writable.
                Some((a, b)) if a <= lo && hi <= b => return,
                // One writable range is tracked: the pages between the two ranges become
                // writable too (they were not before: a later write there would fault).
                Some((a, b)) => {
                    let (lo, hi) = (a.min(lo), b.max(hi));
                    protect(base, lo, hi, libc::PROT_READ | libc::PROT_WRITE);
                    (lo, hi)
                }
                None => {
                    protect(base, lo, hi, libc::PROT_READ | libc::PROT_WRITE);
                    (lo, hi)
                }
            };
            *dirty = Some((lo, hi));
        }
    }

    /// Make the pages written since the last call executable (and not writable) before
    /// generated code runs (only the switching kind changes anything).
    pub fn make_executable(&mut self) {
        let base = self.exec_base;
        if let Views::Switching { dirty, .. } = &mut self.views
            && let Some((lo, hi)) = dirty.take()
        {
            protect(base, lo, hi, libc::PROT_READ | libc::PROT_EXEC);
        }
    }

    /// Copy `code` (assembled for `next_address()`) in; returns its offset, or `None` when
    /// there is no room.
    pub fn append(&mut self, code: &[u8]) -> Option<usize> {
        let start = self.used.next_multiple_of(16);
        if start + code.len() > self.capacity {
            return None;
        }
        self.make_writable(start, start + code.len());
        // SAFETY: `start + len <= capacity`, the write view is writable, and no generated
        // code runs while Rust writes (single-threaded engine).
        unsafe {
            std::ptr::copy_nonoverlapping(code.as_ptr(), self.write_base.add(start), code.len());
        }
        self.used = start + code.len();
        self.sync(start, code.len());
        Some(start)
    }

    /// Replace the aligned 8-byte word at `offset` (inside written code) by `f` of its
    /// value: one aligned store, so a jump patched within it is never seen half-written.
    pub fn patch_word(&mut self, offset: usize, f: impl FnOnce(u64) -> u64) {
        assert!(
            offset.is_multiple_of(8) && offset + 8 <= self.used.next_multiple_of(8),
            "patch outside written code"
        );
        self.make_writable(offset, offset + 8);
        // SAFETY: the word lies inside the region (written code rounded up to 8 bytes, all
        // within `capacity`, a multiple of 64 KiB), is 8-aligned (the region is
        // page-aligned), and no generated code runs while Rust writes.
        unsafe {
            let p = self.write_base.add(offset).cast::<u64>();
            p.write_volatile(f(p.read_volatile()));
        }
        self.sync(offset, 8);
    }

    /// Read back `len` bytes at `offset`.
    pub fn bytes(&self, offset: usize, len: usize) -> &[u8] {
        assert!(offset + len <= self.used);
        // SAFETY: the range lies inside written code, readable through either view; `&self`
        // keeps it from being written meanwhile.
        unsafe { std::slice::from_raw_parts(self.write_base.add(offset), len) }
    }

    /// Forget every translation except the first `keep` bytes.
    pub fn truncate(&mut self, keep: usize) {
        self.used = keep.min(self.used);
    }

    /// Make written bytes visible to instruction fetch (a no-op on x86-64).
    fn sync(&self, offset: usize, len: usize) {
        // SAFETY: the range lies inside the region, readable through the executable view
        // (the switching kind is readable in both states).
        let slice = unsafe { std::slice::from_raw_parts(self.exec_base.add(offset), len) };
        dynasmrt::cache_control::synchronize_icache(slice);
    }
}

/// Set the protection of bytes `lo..hi` (page-aligned, inside the region at `base`).
fn protect(base: *mut u8, lo: usize, hi: usize, prot: libc::c_int) {
    // SAFETY: the range is whole pages of the anonymous mapping this module owns, which no
    // Rust reference covers (it is only reached through raw pointers), and no generated code
    // runs while Rust changes it. (memmap2 can only re-protect a whole mapping.)
    let r = unsafe { libc::mprotect(base.add(lo).cast(), hi - lo, prot) };
    assert_eq!(
        r,
        0,
        "mprotect of code memory: {}",
        io::Error::last_os_error()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The permissions of the mapping that contains `addr`, from /proc/self/maps.
    fn perms_at(addr: usize) -> String {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        for line in maps.lines() {
            let mut f = line.split_whitespace();
            let range = f.next().unwrap();
            let perms = f.next().unwrap();
            let (lo, hi) = range.split_once('-').unwrap();
            let (lo, hi) = (
                usize::from_str_radix(lo, 16).unwrap(),
                usize::from_str_radix(hi, 16).unwrap(),
            );
            if (lo..hi).contains(&addr) {
                return perms[..3].to_string();
            }
        }
        panic!("{addr:#x} is not mapped")
    }

    #[test]
    fn dual_views_alias_and_are_never_writable_and_executable() {
        let mut m = CodeMemory::dual(1 << 16).expect("memfd_create works here");
        let at = m.append(&[1, 2, 3, 4, 5, 6, 7, 8, 9]).unwrap();
        assert_eq!(at, 0);
        m.patch_word(0, |old| {
            assert_eq!(old, u64::from_le_bytes([1, 2, 3, 4, 5, 6, 7, 8]));
            old + 1
        });
        // SAFETY: the first 8 bytes of the executable view are mapped and written.
        let seen = unsafe { std::ptr::read(m.exec_base.cast::<[u8; 8]>()) };
        assert_eq!(
            seen,
            [2, 2, 3, 4, 5, 6, 7, 8],
            "written through the other view"
        );
        assert_eq!(perms_at(m.base()), "r-x");
        assert_eq!(perms_at(m.write_base as usize), "rw-");
        assert_ne!(m.base(), m.write_base as usize);
    }

    #[test]
    fn switching_changes_protection_of_written_pages_only() {
        let page = page_size();
        let mut m = CodeMemory::switching(1 << 20).unwrap();
        m.append(&[0xC3; 16]).unwrap();
        assert_eq!(perms_at(m.base()), "rw-");
        m.make_executable();
        assert_eq!(perms_at(m.base()), "r-x");
        m.patch_word(8, |old| old ^ 1);
        assert_eq!(perms_at(m.base()), "rw-");
        assert_eq!(m.bytes(8, 1), &[0xC2]);
        m.make_executable();
        assert_eq!(perms_at(m.base()), "r-x");
        // A block on the third page: only that page becomes writable.
        m.truncate(0);
        m.used = 2 * page;
        m.append(&[0x90; 32]).unwrap();
        assert_eq!(perms_at(m.base()), "r-x", "the first page stays executable");
        assert_eq!(perms_at(m.base() + 2 * page), "rw-");
        m.make_executable();
        assert_eq!(perms_at(m.base() + 2 * page), "r-x");
    }

    /// Writes to two distant pages, then to one between them, before the code runs again
    /// (a region installed far from the blocks whose links it takes over): every write
    /// lands, and all of it becomes executable again.
    #[test]
    fn switching_writes_between_two_writable_pages() {
        let page = page_size();
        let mut m = CodeMemory::switching(1 << 20).unwrap();
        m.append(&vec![0u8; 6 * page]).unwrap();
        m.make_executable();
        m.patch_word(0, |old| old ^ 1);
        m.patch_word(5 * page, |old| old ^ 1);
        m.patch_word(2 * page, |old| old ^ 1);
        assert_eq!(m.bytes(2 * page, 1), &[1]);
        m.make_executable();
        for p in 0..6 {
            assert_eq!(perms_at(m.base() + p * page), "r-x", "page {p}");
        }
    }
}

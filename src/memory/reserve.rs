//! Reservations of address space from the operating system: zero-filled, readable and
//! writable, and backed by memory only where they are written (`MAP_NORESERVE`), so that a
//! slot for every one of the 2^32 identifiers costs only the pages actually used.

use memmap2::{MmapMut, MmapOptions};
use std::io;

/// A zero-filled anonymous mapping that stays at one address until it is dropped (which
/// unmaps it). No slice of the whole mapping is ever made: users keep the raw pointer from
/// [`Reservation::as_mut_ptr`], which generated code may also use.
pub struct Reservation(MmapMut);

impl Reservation {
    /// Reserve `bytes` bytes (which must be non-zero).
    pub fn new(bytes: usize) -> io::Result<Reservation> {
        MmapOptions::new()
            .len(bytes)
            .no_reserve_swap()
            .map_anon()
            .map(Reservation)
    }

    /// The first byte.
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.0.as_mut_ptr()
    }

    /// The first byte, for reading addresses only (where `&mut` is not at hand).
    pub fn as_ptr(&self) -> *const u8 {
        self.0.as_ptr()
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True for an empty reservation (never: `new` needs a non-zero size).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Extra bytes reserved before a table placed by [`page_offset_apart`].
pub const PLACEMENT_SLACK: usize = 4096;

/// Where in its page a table indexed by identifier should start so that the entries of
/// small identifiers do not share their 4 KiB page offset with the `header` (the heap's
/// fields that generated code reads on every access): 2 KiB away from it, on a 64-byte
/// boundary. Loads and stores whose addresses agree in their low 12 bits are taken for
/// dependent by x86-64 cores until the full addresses are known ("4K aliasing"); with the
/// header and the entry or slot of identifier 1 at the same offset, an allocation and
/// abandonment loop ran 2.5 times slower.
pub fn page_offset_apart(header: usize) -> usize {
    ((header & (PLACEMENT_SLACK - 1)) + PLACEMENT_SLACK / 2) & (PLACEMENT_SLACK - 64)
}

/// The system's page size.
pub fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions and only reads a configuration value.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 { n as usize } else { 4096 }
}

/// Ask the system to back `bytes` bytes at `start` (memory of ours) with memory now:
/// one call instead of a page fault per page on first touch. Best effort: where the host
/// cannot (Linux before 5.14, other systems), the pages come on first touch as before.
pub fn populate(start: *mut u8, bytes: usize) {
    #[cfg(target_os = "linux")]
    {
        let page = page_size();
        let from = (start as usize).next_multiple_of(page);
        let to = (start as usize + bytes) & !(page - 1);
        if to > from {
            // SAFETY: this advice only faults pages in as a write would, without writing:
            // on a mapping of ours (a reservation, or a heap allocation) it changes no
            // contents (a fresh page reads as zero before and after, a page already written
            // keeps what it holds), and where it cannot apply (memory no longer mapped, or
            // not writable) it fails and does nothing.
            unsafe {
                libc::madvise(
                    from as *mut libc::c_void,
                    to - from,
                    libc::MADV_POPULATE_WRITE,
                )
            };
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (start, bytes);
}

/// For tests: how many of the whole pages within the `bytes` bytes at `start` are in
/// memory, and how many whole pages there are.
#[cfg(test)]
pub(super) fn resident(start: *const u8, bytes: usize) -> (usize, usize) {
    let page = page_size();
    let from = (start as usize).next_multiple_of(page);
    let to = (start as usize + bytes) & !(page - 1);
    assert!(to > from, "a whole page between {from:#x} and {to:#x}");
    let mut pages = vec![0u8; (to - from) / page];
    // SAFETY: the range is page-aligned and `pages` has a byte for each of its pages.
    let r = unsafe { libc::mincore(from as *mut libc::c_void, to - from, pages.as_mut_ptr()) };
    assert_eq!(r, 0, "mincore: {}", io::Error::last_os_error());
    (pages.iter().filter(|&&p| p & 1 == 1).count(), pages.len())
}

/// For tests: whether this system backs memory when asked to ([`populate`]); qemu-user and
/// Linux before 5.14 ignore the advice.
#[cfg(test)]
pub(super) fn populate_backs() -> bool {
    let page = page_size();
    let mut probe = Reservation::new(page).expect("reserve a page");
    populate(probe.as_mut_ptr(), page);
    resident(probe.as_ptr(), page).0 == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_start_half_a_page_from_the_header() {
        for header in [0, 8, 0x7F0, 0x800, 0xFB0, 0xFF8, 0x1234_5FB0] {
            let at = page_offset_apart(header);
            assert!(
                at < PLACEMENT_SLACK && at.is_multiple_of(64),
                "{header:#x}: {at:#x}"
            );
            // The first 1.9 KiB of the table are at least 1.9 KiB from the header's page
            // offset, either way round.
            let h = header % PLACEMENT_SLACK;
            let apart = (at + PLACEMENT_SLACK - h) % PLACEMENT_SLACK;
            assert!((0x7C0..=0x800).contains(&apart), "{header:#x}: {at:#x}");
        }
    }

    #[test]
    fn a_large_reservation_is_zeroed_and_writable() {
        let mut r = Reservation::new(1 << 30).expect("reserve 1 GiB");
        assert_eq!(r.len(), 1 << 30);
        let p = r.as_mut_ptr();
        let last = (1usize << 30) - 1;
        // SAFETY: both offsets are inside the reservation, which is readable and writable.
        unsafe {
            assert_eq!(*p.add(last), 0);
            *p.add(last) = 7;
            assert_eq!(*p.add(last), 7);
        }
    }

    #[test]
    fn populated_pages_stay_zero_and_writable() {
        let mut r = Reservation::new(1 << 24).expect("reserve 16 MiB");
        let p = r.as_mut_ptr();
        // SAFETY: both ranges and every offset touched are inside the reservation.
        unsafe {
            *p.add(5000) = 9;
            // An unaligned range over a page already written, and the tail end.
            populate(p.add(100), 3 << 20);
            populate(p.add((1 << 24) - 8192), 8192);
            assert_eq!(*p.add(5000), 9, "populating keeps what was written");
            for off in [0, 4095, 4096, 1 << 20, (3 << 20) + 99, (1 << 24) - 1] {
                assert_eq!(*p.add(off), 0, "offset {off}");
                *p.add(off) = 1;
                assert_eq!(*p.add(off), 1);
            }
        }
    }
}

//! Reservations of address space from the operating system: zero-filled, readable and
//! writable, and backed by memory only where they are written (`MAP_NORESERVE`), so that a
//! table for every one of the 2^32 identifiers costs only the pages actually used.

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

    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True for an empty reservation (never: `new` needs a non-zero size).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}

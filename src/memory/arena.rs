//! Where the buffers of arrays of up to [`SMALL_MAX`] words come from (those that do not
//! live in a slot): one arena per size, cut into 64 KiB chunks of one reservation, and
//! handed out in order, so that arrays of the same size allocated one after another sit
//! one after another in memory.
//!
//! That order is what a program's own pointer walks find. UMIX's garbage collector sweeps
//! every object in the order they were allocated: objects of 3 to 7 words live in their
//! slots, which are in identifier order, but the 7 % with buffers (objects of 8 to 64
//! words) came from the system allocator, which interleaves sizes and recycles its free
//! chunks in its own order, and each such object was a cache miss. From per-size arenas
//! the sweep takes a fifth less time in all (see the README's performance notes).
//!
//! Buffers are recycled by the heap through its per-size stacks (`Heap::small`), never
//! returned here one by one. When the memory limit presses, [`Arenas::release`] gives back
//! every chunk whose buffers are all in such a stack (its memory goes back to the system;
//! the chunk can then serve any size). Chunk tails and the chunks in use are not charged to
//! the limit; only the buffers are, as before: at most one partly cut chunk per size, 4 MiB
//! in all.

use super::SMALL_MAX;
use super::alloc::charge_of;
use super::reserve::Reservation;
use super::stack::Stack;
use std::collections::{HashMap, HashSet};
use std::ptr;

/// Bytes in a chunk (a multiple of the page size on every host we run on).
pub const CHUNK_BYTES: usize = 64 << 10;
/// The most address space the arenas reserve (they reserve less with a lower memory
/// limit). Every heap reserves its own, as it does its slots (128 GiB), so this bounds how
/// many heaps fit in the address space at once (tests make many).
const MAX_RESERVE: usize = 1 << 38;
/// The least they settle for when the host refuses more.
const MIN_RESERVE: usize = 64 << 20;

/// The per-size arenas (see the module notes).
pub struct Arenas {
    base: *mut u8,
    /// Chunks in the reservation.
    capacity: usize,
    /// Chunks from here on were never used.
    fresh: usize,
    /// Chunks given back, to be used again (by any size).
    released: Vec<u32>,
    /// Per chunk in use or released: how many buffers were cut from it (0 when released).
    cut: Vec<u32>,
    /// Per size: the chunk being cut, and the offset of its next buffer (`None`: no chunk).
    cutting: [Option<(u32, usize)>; SMALL_MAX + 1],
    _reservation: Option<Reservation>,
}

impl Arenas {
    /// Arenas for a heap whose arrays may take `limit_bytes` bytes: address space for the
    /// limit, what chunks lose at their ends (under 256 bytes in 64 KiB), and one chunk
    /// per size; less if the host refuses it, and then an allocation that finds the
    /// reservation used up fails as one beyond the limit does.
    pub fn new(limit_bytes: u64) -> Arenas {
        let limit = usize::try_from(limit_bytes).unwrap_or(usize::MAX);
        let want = limit
            .saturating_add(limit / 128)
            .saturating_add((SMALL_MAX + 1) * CHUNK_BYTES)
            .clamp(MIN_RESERVE, MAX_RESERVE)
            .next_multiple_of(CHUNK_BYTES);
        let mut bytes = want;
        loop {
            match Reservation::new(bytes) {
                Ok(mut r) => {
                    return Arenas {
                        base: r.as_mut_ptr(),
                        capacity: bytes / CHUNK_BYTES,
                        fresh: 0,
                        released: Vec::new(),
                        cut: Vec::new(),
                        cutting: [None; SMALL_MAX + 1],
                        _reservation: Some(r),
                    };
                }
                Err(e) if bytes <= MIN_RESERVE => {
                    log::warn!("cannot reserve memory for small arrays' buffers ({e})");
                    return Arenas {
                        base: ptr::null_mut(),
                        capacity: 0,
                        fresh: 0,
                        released: Vec::new(),
                        cut: Vec::new(),
                        cutting: [None; SMALL_MAX + 1],
                        _reservation: None,
                    };
                }
                Err(_) => bytes = (bytes / 2).next_multiple_of(CHUNK_BYTES),
            }
        }
    }

    /// A new zeroed buffer for an array of `words` (1..=SMALL_MAX) words, 8-aligned, of
    /// `charge_of(words)` bytes; `None` when the reservation is used up.
    pub fn cut(&mut self, words: u32) -> Option<*mut u32> {
        debug_assert!((1..=SMALL_MAX as u32).contains(&words));
        let bytes = charge_of(words) as usize;
        let (chunk, at) = match self.cutting[words as usize] {
            Some((chunk, at)) if at + bytes <= CHUNK_BYTES => (chunk, at),
            _ => (self.new_chunk()?, 0),
        };
        self.cutting[words as usize] = Some((chunk, at + bytes));
        self.cut[chunk as usize] += 1;
        // The chunk's memory was never written, or given back since (so it reads as zero).
        Some(self.chunk_start(chunk).wrapping_add(at).cast())
    }

    fn new_chunk(&mut self) -> Option<u32> {
        let chunk = match self.released.pop() {
            Some(c) => c,
            None if self.fresh < self.capacity => {
                self.fresh += 1;
                self.cut.push(0);
                (self.fresh - 1) as u32
            }
            None => return None,
        };
        Some(chunk)
    }

    fn chunk_start(&self, chunk: u32) -> *mut u8 {
        self.base.wrapping_add(chunk as usize * CHUNK_BYTES)
    }

    /// Give back every chunk of `words`-word buffers that are all in `free` (the heap's
    /// stack of free buffers of that size), taking them out of it; returns how many buffers
    /// went.
    pub fn release(&mut self, words: u32, free: &mut Stack<*mut u32>) -> u32 {
        let mut per_chunk: HashMap<u32, u32> = HashMap::new();
        for &b in free.as_slice() {
            *per_chunk.entry(self.chunk_of(b)).or_default() += 1;
        }
        let empty: HashSet<u32> = per_chunk
            .into_iter()
            .filter(|&(c, n)| n == self.cut[c as usize])
            .map(|(c, _)| c)
            .collect();
        if empty.is_empty() {
            return 0;
        }
        let mut kept = Vec::with_capacity(free.len() as usize);
        let mut gone = 0;
        while let Some(b) = free.pop() {
            if empty.contains(&self.chunk_of(b)) {
                gone += 1;
            } else {
                kept.push(b);
            }
        }
        for &b in kept.iter().rev() {
            free.push(b);
        }
        for c in empty {
            let start = self.chunk_start(c);
            // SAFETY: the chunk is whole pages of our reservation, and none of its buffers
            // is in use (every one cut from it was in `free`, now taken out): dropping its
            // contents is what releasing means, and it reads as zero from now on.
            unsafe { libc::madvise(start.cast(), CHUNK_BYTES, libc::MADV_DONTNEED) };
            self.cut[c as usize] = 0;
            if self.cutting[words as usize].is_some_and(|(k, _)| k == c) {
                self.cutting[words as usize] = None;
            }
            self.released.push(c);
        }
        gone
    }

    /// The chunk that buffer `b` was cut from.
    fn chunk_of(&self, b: *mut u32) -> u32 {
        ((b as usize - self.base as usize) / CHUNK_BYTES) as u32
    }

    /// Whether `b` was cut from these arenas.
    pub fn holds(&self, b: *const u32) -> bool {
        (b as usize).wrapping_sub(self.base as usize) < self.fresh * CHUNK_BYTES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_of_one_size_follow_each_other() {
        let mut a = Arenas::new(1 << 30);
        let x = a.cut(47).unwrap();
        let y = a.cut(47).unwrap();
        let z = a.cut(9).unwrap();
        assert_eq!(y as usize - x as usize, 192);
        assert_ne!(a.chunk_of(x), a.chunk_of(z));
        assert!(a.holds(x) && a.holds(z));
        assert!(!a.holds(&0u32));
    }

    #[test]
    fn a_chunk_whose_buffers_are_all_free_is_given_back() {
        let mut a = Arenas::new(1 << 30);
        let per_chunk = CHUNK_BYTES / 256;
        let bufs: Vec<_> = (0..per_chunk + 2).map(|_| a.cut(64).unwrap()).collect();
        // SAFETY: the buffer was just cut, 256 bytes long.
        unsafe { bufs[0].write(7) };
        let mut free = Stack::new();
        // All of the first chunk's buffers but one: nothing goes.
        for &b in &bufs[1..per_chunk] {
            free.push(b);
        }
        assert_eq!(a.release(64, &mut free), 0);
        assert_eq!(free.len() as usize, per_chunk - 1);
        // And the last one, and one of the second chunk's two: only the first chunk's go.
        free.push(bufs[0]);
        free.push(bufs[per_chunk]);
        assert_eq!(a.release(64, &mut free) as usize, per_chunk);
        assert_eq!(free.as_slice(), &[bufs[per_chunk]]);
        // The chunk serves another size, zeroed.
        let again = a.cut(5).unwrap();
        assert_eq!(again, bufs[0]);
        // SAFETY: as above.
        assert_eq!(unsafe { *again }, 0);
    }

    #[test]
    fn every_chunk_whose_buffers_are_all_free_goes() {
        // 400 chunks of 256 buffers each, all free (the free chunks are looked up in a set:
        // with a list, a release like this would take 40 M steps).
        let mut a = Arenas::new(1 << 30);
        let mut free = Stack::new();
        for _ in 0..400 * (CHUNK_BYTES / 256) {
            free.push(a.cut(64).unwrap());
        }
        assert_eq!(a.release(64, &mut free) as usize, 400 * (CHUNK_BYTES / 256));
        assert!(free.is_empty());
        assert_eq!(a.released.len(), 400);
    }

    #[test]
    fn cutting_stops_at_the_end_of_the_reservation() {
        let mut a = Arenas::new(0);
        let chunks = a.capacity;
        for _ in 0..chunks {
            a.cut(64).unwrap();
            for _ in 1..CHUNK_BYTES / 256 {
                a.cut(64).unwrap();
            }
        }
        assert!(a.cut(64).is_none());
    }
}

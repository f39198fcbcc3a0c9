//! Where the buffers of arrays of up to [`SMALL_MAX`] words come from (those that do not
//! live in a slot): one arena per size, cut into 64 KiB chunks of address space reserved
//! 1 GiB at a time, and handed out in order, so that arrays of the same size allocated
//! one after another sit one after another in memory.
//!
//! That order is what a program's own pointer walks find. UMIX's garbage collector sweeps
//! every object in the order they were allocated: objects of 3 to 7 words live in their
//! slots, which are in identifier order, but the 7 % with buffers (objects of 8 to 64
//! words) came from the system allocator, which interleaves sizes and recycles its free
//! chunks in its own order, and each such object was a cache miss. With per-size arenas
//! the UMIX session takes a fifth less time (see the README).
//!
//! Buffers are recycled by the heap through its per-size stacks (`Heap::small`), never
//! returned here one by one. When the memory limit presses, [`Arenas::release`] gives back
//! every chunk whose buffers are all in such a stack (its memory goes back to the system;
//! the chunk can then serve any size). The limit is charged for buffers, as before, not
//! for chunks: what is not charged is the uncut rest of one chunk per size (4 MiB at most
//! in all) and chunk ends too short for one more buffer.

use super::SMALL_MAX;
use super::alloc::charge_of;
use super::populator::Populator;
use super::reserve::Reservation;
use super::stack::Stack;
use std::collections::{HashMap, HashSet};

/// Bytes in a chunk (a multiple of the page size on every host we run on).
pub const CHUNK_BYTES: usize = 64 << 10;
/// Chunks in a segment: the arenas reserve address space one segment (1 GiB) at a time, as
/// they grow, so that a heap that never needs much reserves little (under qemu-user every
/// reserved page costs bookkeeping, and tests run many heaps at once).
const SEGMENT_CHUNKS: usize = 1 << 14;
const SEGMENT_BYTES: usize = SEGMENT_CHUNKS * CHUNK_BYTES;

/// The per-size arenas (see the module notes).
pub struct Arenas {
    /// The segments, in the order they were reserved; chunk `c` is chunk
    /// `c % SEGMENT_CHUNKS` of segment `c / SEGMENT_CHUNKS`.
    segments: Vec<Reservation>,
    /// Chunks from here on were never used.
    fresh: usize,
    /// Chunks given back, to be used again (by any size).
    released: Vec<u32>,
    /// Per chunk in use or released: how many buffers were cut from it (0 when released).
    cut: Vec<u32>,
    /// Per size: the chunk being cut, and the offset of its next buffer (`None`: no chunk).
    cutting: [Option<(u32, usize)>; SMALL_MAX + 1],
}

impl Arenas {
    /// Arenas with nothing reserved yet.
    pub fn new() -> Arenas {
        Arenas {
            segments: Vec::new(),
            fresh: 0,
            released: Vec::new(),
            cut: Vec::new(),
            cutting: [None; SMALL_MAX + 1],
        }
    }

    /// A new zeroed buffer for an array of `words` (1..=SMALL_MAX) words, 8-aligned, of
    /// `charge_of(words)` bytes; `None` when the reservation is used up.
    /// Once there is a `helper`, starting a chunk never used before asks it to back the
    /// next such chunk with memory, so that the program's first writes there do not fault.
    pub fn cut(&mut self, words: u32, helper: Option<&Populator>) -> Option<*mut u32> {
        debug_assert!((1..=SMALL_MAX as u32).contains(&words));
        let bytes = charge_of(words) as usize;
        let (chunk, at) = match self.cutting[words as usize] {
            Some((chunk, at)) if at + bytes <= CHUNK_BYTES => (chunk, at),
            _ => (self.new_chunk(helper)?, 0),
        };
        self.cutting[words as usize] = Some((chunk, at + bytes));
        self.cut[chunk as usize] += 1;
        // The chunk's memory was never written, or given back since (so it reads as zero).
        Some(self.chunk_start(chunk).wrapping_add(at).cast())
    }

    fn new_chunk(&mut self, helper: Option<&Populator>) -> Option<u32> {
        if let Some(c) = self.released.pop() {
            return Some(c);
        }
        if self.fresh == self.reserved_chunks() {
            match Reservation::new(SEGMENT_BYTES) {
                Ok(r) => self.segments.push(r),
                Err(e) => {
                    log::warn!("cannot reserve memory for small arrays' buffers ({e})");
                    return None;
                }
            }
        }
        self.fresh += 1;
        self.cut.push(0);
        if let Some(h) = helper
            && self.fresh < self.reserved_chunks()
        {
            h.request(self.chunk_start(self.fresh as u32), CHUNK_BYTES);
        }
        u32::try_from(self.fresh - 1).ok()
    }

    /// How many chunks the segments reserved so far hold.
    fn reserved_chunks(&self) -> usize {
        self.segments.len() * SEGMENT_CHUNKS
    }

    /// How many chunks were ever used.
    pub fn fresh_chunks(&self) -> usize {
        self.fresh
    }

    fn chunk_start(&self, chunk: u32) -> *mut u8 {
        let c = chunk as usize;
        let segment = self.segments[c / SEGMENT_CHUNKS].as_ptr().cast_mut();
        segment.wrapping_add(c % SEGMENT_CHUNKS * CHUNK_BYTES)
    }

    /// Give back every chunk of `words`-word buffers that are all in `free` (the heap's
    /// stack of free buffers of that size), taking them out of it; returns how many buffers
    /// went.
    pub fn release(&mut self, words: u32, free: &mut Stack<*mut u32>) -> u32 {
        let mut per_chunk: HashMap<u32, u32> = HashMap::new();
        for &b in free.as_slice() {
            let c = self
                .chunk_of(b)
                .expect("a cached small buffer is the arenas'");
            *per_chunk.entry(c).or_default() += 1;
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
            if self.chunk_of(b).is_some_and(|c| empty.contains(&c)) {
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

    /// The chunk that buffer `b` was cut from, if it was.
    fn chunk_of(&self, b: *const u32) -> Option<u32> {
        let b = b as usize;
        let (segment, base) = self
            .segments
            .iter()
            .map(|r| r.as_ptr() as usize)
            .enumerate()
            .find(|&(_, base)| b.wrapping_sub(base) < SEGMENT_BYTES)?;
        let chunk = segment * SEGMENT_CHUNKS + (b - base) / CHUNK_BYTES;
        (chunk < self.fresh).then_some(chunk as u32)
    }

    /// Whether `b` was cut from these arenas.
    pub fn holds(&self, b: *const u32) -> bool {
        self.chunk_of(b).is_some()
    }
}

impl Default for Arenas {
    fn default() -> Arenas {
        Arenas::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ptr;

    #[test]
    fn buffers_of_one_size_follow_each_other() {
        let mut a = Arenas::new();
        let x = a.cut(47, None).unwrap();
        let y = a.cut(47, None).unwrap();
        let z = a.cut(9, None).unwrap();
        assert_eq!(y as usize - x as usize, 192);
        assert_ne!(a.chunk_of(x), a.chunk_of(z));
        assert!(a.chunk_of(x).is_some());
        assert!(a.holds(x) && a.holds(z));
        assert!(!a.holds(&0u32));
    }

    #[test]
    fn a_chunk_whose_buffers_are_all_free_is_given_back() {
        let mut a = Arenas::new();
        let per_chunk = CHUNK_BYTES / 256;
        let bufs: Vec<_> = (0..per_chunk + 2)
            .map(|_| a.cut(64, None).unwrap())
            .collect();
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
        let again = a.cut(5, None).unwrap();
        assert_eq!(again, bufs[0]);
        // SAFETY: as above.
        assert_eq!(unsafe { *again }, 0);
    }

    #[test]
    fn every_chunk_whose_buffers_are_all_free_goes() {
        // 400 chunks of 256 buffers each, all free (the free chunks are looked up in a set:
        // with a list, a release like this would take 40 M steps).
        let mut a = Arenas::new();
        let mut free = Stack::new();
        for _ in 0..400 * (CHUNK_BYTES / 256) {
            free.push(a.cut(64, None).unwrap());
        }
        assert_eq!(a.release(64, &mut free) as usize, 400 * (CHUNK_BYTES / 256));
        assert!(free.is_empty());
        assert_eq!(a.released.len(), 400);
    }

    #[test]
    fn chunks_go_on_in_a_second_segment() {
        let mut a = Arenas::new();
        let per_chunk = CHUNK_BYTES / 256;
        let mut last = ptr::null_mut();
        for _ in 0..(SEGMENT_CHUNKS + 1) * per_chunk {
            last = a.cut(64, None).unwrap();
        }
        assert_eq!(a.segments.len(), 2);
        assert_eq!(a.chunk_of(last), Some(SEGMENT_CHUNKS as u32));
        let mut free = Stack::new();
        free.push(last);
        assert_eq!(
            a.release(64, &mut free),
            0,
            "the second segment's chunk is not all free"
        );
    }
}

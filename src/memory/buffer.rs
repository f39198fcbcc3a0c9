//! An array's words in a buffer of its own, allocated exactly as the heap allocates the
//! buffers of its arrays, so that a new heap adopts one as array 0 without copying it
//! ([`Heap::with_program`](super::Heap::with_program)). The loader reads a program file
//! straight into one: a 16 MB image such as UMIX is then written once, instead of being
//! read into bytes, converted into words and copied into the heap.

use super::alloc::layout;
use super::table::FREE_BASE;
use crate::fault::Reason;
use std::alloc;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

/// An owned buffer of words (see the module notes).
pub struct Words {
    base: NonNull<u32>,
    len: u32,
}

impl Words {
    /// `len` zero words; `None` when the system has not that much memory to give. The
    /// zeroes cost nothing until written: large buffers come as fresh zero pages.
    pub fn zeroed(len: u32) -> Option<Words> {
        if len == 0 {
            return Some(Words {
                base: NonNull::new(FREE_BASE as *mut u32).expect("non-null"),
                len,
            });
        }
        // SAFETY: the layout has a non-zero size.
        let p = unsafe { alloc::alloc_zeroed(layout(len)) }.cast::<u32>();
        NonNull::new(p).map(|base| Words { base, len })
    }

    /// A copy of `words`; out of memory when they are more than an array holds or the
    /// system has no room for them (as a heap reports a program it cannot hold).
    pub fn from_slice(words: &[u32]) -> Result<Words, Reason> {
        let len =
            u32::try_from(words.len()).map_err(|_| Reason::OutOfMemory { words: u32::MAX })?;
        let mut w = Words::zeroed(len).ok_or(Reason::OutOfMemory { words: len })?;
        w.copy_from_slice(words);
        Ok(w)
    }

    /// The words' bytes, in memory order (for reading a file into).
    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: the buffer holds `len` words, so `4 * len` bytes, borrowed mutably for
        // as long as the result lives; any byte pattern is a valid `u32`.
        unsafe { std::slice::from_raw_parts_mut(self.base.as_ptr().cast(), 4 * self.len as usize) }
    }

    /// Give up the buffer, to be freed as an array's (`Heap::drop_buffer`).
    pub(super) fn into_raw(self) -> (*mut u32, u32) {
        let parts = (self.base.as_ptr(), self.len);
        std::mem::forget(self);
        parts
    }
}

impl Deref for Words {
    type Target = [u32];
    fn deref(&self) -> &[u32] {
        // SAFETY: `base` holds `len` initialized words (a zero-length buffer's dangling
        // base is non-null and aligned); `&self` keeps them from being written meanwhile.
        unsafe { std::slice::from_raw_parts(self.base.as_ptr(), self.len as usize) }
    }
}

impl DerefMut for Words {
    fn deref_mut(&mut self) -> &mut [u32] {
        // SAFETY: as in `deref`, borrowed mutably.
        unsafe { std::slice::from_raw_parts_mut(self.base.as_ptr(), self.len as usize) }
    }
}

impl Drop for Words {
    fn drop(&mut self) {
        if self.len != 0 {
            // SAFETY: allocated in `zeroed` with this layout, and not given up.
            unsafe { alloc::dealloc(self.base.as_ptr().cast(), layout(self.len)) };
        }
    }
}

impl std::fmt::Debug for Words {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Words({} words)", self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_the_words_in_memory_order() {
        let mut w = Words::from_slice(&[0x0102_0304, 5]).unwrap();
        assert_eq!(&w[..], &[0x0102_0304, 5]);
        w.as_bytes_mut()[..4].copy_from_slice(&[1, 2, 3, 4]);
        assert_eq!(w[0], u32::from_ne_bytes([1, 2, 3, 4]));
        assert_eq!(w.as_bytes_mut().len(), 8);
    }

    #[test]
    fn zeroed_is_zero_and_empty_is_allowed() {
        assert!(Words::zeroed(1000).unwrap().iter().all(|&x| x == 0));
        assert!(Words::zeroed(0).unwrap().is_empty());
    }
}

//! A stack of plain values whose raw parts generated code reads and updates in place.

use super::populator::Populator;
use std::alloc::{self, Layout};
use std::ptr::NonNull;

/// A stack whose allocation grows past this many bytes has the part it grew by backed with
/// memory ahead of use, by the helper thread (see [`Stack::push_with`]).
const POPULATE_FROM_BYTES: usize = 1 << 18;

/// A stack of `T`: `ptr[..len]` are the elements, `ptr[..cap]` the allocation.
///
/// `#[repr(C)]` with 32-bit length and capacity, so that generated code can pop and push
/// without calling Rust (the offsets are in [`super::layout`]). The buffer is this type's
/// own allocation (never a `Vec`'s), made with exactly `Layout::array::<T>(cap)`, so the
/// capacity generated code sees is the one freed in `Drop`.
#[repr(C)]
pub struct Stack<T> {
    pub(super) ptr: *mut T,
    pub(super) len: u32,
    pub(super) cap: u32,
}

impl<T: Copy> Stack<T> {
    /// An empty stack that owns no allocation.
    pub(super) fn new() -> Stack<T> {
        Stack {
            ptr: NonNull::dangling().as_ptr(),
            len: 0,
            cap: 0,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> u32 {
        self.len
    }

    /// True when the stack holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True when a push would have to grow the allocation.
    pub fn is_full(&self) -> bool {
        self.len == self.cap
    }

    /// The elements, bottom first.
    pub fn as_slice(&self) -> &[T] {
        // SAFETY: `ptr` is valid for `len` initialised elements (dangling but aligned when
        // `len` is 0, which `from_raw_parts` allows).
        unsafe { std::slice::from_raw_parts(self.ptr, self.len as usize) }
    }

    #[inline(always)]
    pub(super) fn top(&self) -> Option<T> {
        self.as_slice().last().copied()
    }

    #[inline(always)]
    pub(super) fn pop(&mut self) -> Option<T> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        // SAFETY: elements below the old length are initialised.
        Some(unsafe { *self.ptr.add(self.len as usize) })
    }

    /// Push without growing: `false` (and no effect) when the stack is full. This is the
    /// step generated code takes; it calls Rust when it would have to grow.
    #[inline(always)]
    pub(super) fn push_within(&mut self, v: T) -> bool {
        if self.len == self.cap {
            return false;
        }
        // SAFETY: `len < cap`, so the slot is inside the allocation.
        unsafe { self.ptr.add(self.len as usize).write(v) };
        self.len += 1;
        true
    }

    #[inline(always)]
    pub(super) fn push(&mut self, v: T) {
        self.push_with(v, None);
    }

    /// Push, growing if needed (see [`Stack::grow`] for the `helper`).
    #[inline(always)]
    pub(super) fn push_with(&mut self, v: T, helper: Option<&Populator>) {
        if !self.push_within(v) {
            self.grow(helper);
            let pushed = self.push_within(v);
            debug_assert!(pushed, "a grown stack has room");
        }
    }

    /// Double the capacity (at least 64 elements, at most `u32::MAX`). When a large stack
    /// grows, the `helper` thread (if any) is asked to back the new part of its allocation
    /// with memory, which the stack then fills an element at a time: the page faults of a
    /// stack that grows to tens of MB (UMIX's free identifiers) leave the thread that runs
    /// the program.
    #[inline(never)]
    fn grow(&mut self, helper: Option<&Populator>) {
        let old_cap = self.cap;
        let new_cap = self.cap.saturating_mul(2).max(64);
        assert!(new_cap > self.cap, "stack of 2^32 - 1 elements is full");
        let layout = Layout::array::<T>(new_cap as usize).expect("stack layout");
        // SAFETY: `T` is not zero-sized in this crate (u32 and pointers), so the layout has
        // a non-zero size; an old buffer was allocated by this function with
        // `Layout::array::<T>(cap)` and holds `len` initialised elements.
        let p = unsafe {
            if self.cap == 0 {
                alloc::alloc(layout)
            } else {
                let old = Layout::array::<T>(self.cap as usize).expect("stack layout");
                alloc::realloc(self.ptr.cast(), old, layout.size())
            }
        };
        if p.is_null() {
            alloc::handle_alloc_error(layout);
        }
        self.ptr = p.cast();
        self.cap = new_cap;
        if let Some(h) = helper
            && new_cap as usize * size_of::<T>() > POPULATE_FROM_BYTES
        {
            // SAFETY: `old_cap < new_cap`: the offset is inside the new allocation.
            let start = unsafe { self.ptr.add(old_cap as usize) };
            h.request(start.cast(), (new_cap - old_cap) as usize * size_of::<T>());
        }
    }
}

impl<T> Drop for Stack<T> {
    fn drop(&mut self) {
        if self.cap != 0 {
            let layout = Layout::array::<T>(self.cap as usize).expect("stack layout");
            // SAFETY: a non-zero capacity means `ptr` was allocated by `grow` with exactly
            // this layout; the elements are plain data with nothing to drop.
            unsafe { alloc::dealloc(self.ptr.cast(), layout) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::reserve;
    use super::*;

    #[test]
    fn push_pop_grow_and_push_within() {
        let mut s: Stack<u32> = Stack::new();
        assert!(!s.push_within(1), "an empty stack has no room");
        for i in 0..1000 {
            s.push(i);
        }
        assert_eq!(s.len(), 1000);
        assert!(s.cap >= 1000);
        assert_eq!(s.top(), Some(999));
        assert_eq!(s.as_slice()[10], 10);
        for i in (0..1000).rev() {
            assert_eq!(s.pop(), Some(i));
        }
        assert_eq!(s.pop(), None);
        assert!(s.push_within(7), "capacity is kept after popping");
        assert_eq!(s.as_slice(), &[7]);
    }

    /// Whether every whole page from `from` up to `to` is in memory.
    #[cfg(target_os = "linux")]
    fn resident(from: usize, to: usize) -> bool {
        let (n, of) = reserve::resident(from as *const u8, to - from);
        n == of
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn a_large_stack_has_what_it_grew_by_backed_by_the_helper() {
        let helper = Populator::new().expect("a helper thread");
        let mut s: Stack<u32> = Stack::new();
        // Past 2^23 elements, the last growth doubles the allocation to 64 MiB: always a
        // fresh mapping of its own, whose pages are not in memory until touched (or
        // populated); the upper half is never written here.
        let n = (1u32 << 23) + 1;
        for i in 0..n {
            s.push_with(i, Some(&helper));
        }
        assert_eq!(s.cap, 1 << 24);
        // Dropping the helper finishes its requests.
        drop(helper);
        assert!(
            s.as_slice().iter().copied().eq(0..n),
            "the elements are kept"
        );
        // Where the system ignores the advice (qemu-user, Linux before 5.14), nothing is
        // ever backed ahead, by the helper or otherwise.
        if !reserve::populate_backs() {
            eprintln!("this system does not back memory on advice: residency not checked");
            return;
        }
        let (base, size) = (s.ptr as usize, size_of::<u32>());
        assert!(resident(
            base + n as usize * size,
            base + s.cap as usize * size
        ));
        // Without a helper, nothing is backed ahead (checked from 4 MiB past the last
        // element: where the system backs memory in 2 MiB pages, the page that holds the
        // last element may reach beyond it).
        let mut t: Stack<u32> = Stack::new();
        for i in 0..n {
            t.push_with(i, None);
        }
        let (base, cap) = (t.ptr as usize, t.cap as usize);
        assert!(!resident(
            base + n as usize * size + (4 << 20),
            base + cap * size
        ));
    }
}

//! The array heap.
//!
//! Every array is described by an [`Entry`] in one table indexed by identifier. The table is
//! `#[repr(C)]` so that generated machine code reaches an array with two loads: the table
//! pointer from the [`Heap`] header, then the entry's `base` and `len`. An identifier that
//! is not active (never allocated, or abandoned) has `len == 0`.
//!
//! The table normally covers the whole identifier space: 2^32 entries reserved with
//! `MAP_NORESERVE`, all zero (inactive) until used, so only the pages of identifiers actually
//! handed out cost memory and the single check `offset < len` guards every index and amend
//! (`Heap::whole_space`). Where the host refuses such a reservation the table is an ordinary
//! growable allocation and the check is `id < table_len && offset < len`. Either way the slow
//! path then works out which fault it was.
//!
//! Identifiers are recycled through a stack (`free_ids`), so the ones in use stay dense.
//! Arrays of 1 to [`SLOT_WORDS`] words (95 % of sandmark's 92 M allocations) live in their
//! identifier's own slot of a reserved region, `slab + id * SLOT_WORDS`: they need no buffer
//! of their own, and arrays with neighbouring identifiers (a list allocated in a row) sit
//! next to each other in memory, which keeps walks over them in cache. The slab covers the
//! identifiers below `slab_ids`; the other small arrays are recycled through one stack of
//! free buffers per exact size (`small[n]`). All these are raw `#[repr(C)]` fields in the
//! header, so the translator's allocation code can take the same fast paths as
//! [`Heap::alloc`] and [`Heap::abandon`] without calling Rust; everything else goes
//! through Rust.

use crate::fault::Reason;
use std::alloc::{self, Layout};
use std::ptr::{self, NonNull};

/// One array: where its words are and how many there are.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Entry {
    pub base: *mut u32,
    /// Length in words; 0 for an inactive identifier.
    pub len: u32,
    /// 1 while the identifier is allocated, 0 otherwise.
    pub active: u32,
}

/// The `base` of an inactive entry (never dereferenced: its length is 0).
pub const FREE_BASE: usize = std::mem::align_of::<u64>();

impl Entry {
    pub const FREE: Entry = Entry {
        base: FREE_BASE as *mut u32,
        len: 0,
        active: 0,
    };
}

/// Arrays of at most this many words are recycled through size-class free lists.
pub const SMALL_MAX: usize = 64;
/// Arrays of 1 to this many words live in their identifier's slot (see the module notes).
pub const SLOT_WORDS: u32 = 8;
/// Identifiers with a slot when the identifier table covers the whole space (8 GiB
/// reserved), and with a bounded table (32 MiB).
const SLAB_IDS_WHOLE: u32 = 1 << 28;
const SLAB_IDS_BOUNDED: u32 = 1 << 20;
/// Bytes charged to the memory limit for each table entry.
const ENTRY_BYTES: u64 = std::mem::size_of::<Entry>() as u64;

/// The set of arrays. Generated code reads and updates the fields before `entries`
/// (offsets through `offset_of!`).
#[repr(C)]
pub struct Heap {
    /// The entries, indexed by identifier (moves only when a bounded table grows).
    pub table: *mut Entry,
    /// Identifiers handed out so far: every identifier at or above it is inactive.
    pub table_len: u32,
    /// Identifiers below this have a slot in `slab` (0 if the reservation failed).
    pub slab_ids: u32,
    /// Identifiers free for reuse.
    pub free_ids: Stack<u32>,
    /// Arrays allocated (op 8) so far.
    pub allocations: u64,
    /// Arrays abandoned (op 9) so far.
    pub abandonments: u64,
    /// Currently active arrays, array 0 included, and the most there ever were.
    pub live: u64,
    pub peak_live: u64,
    /// `small[n]`: free buffers of exactly `n` words.
    pub small: [Stack<*mut u32>; SMALL_MAX + 1],
    /// The slots: `SLOT_WORDS` words for each identifier below `slab_ids`.
    pub slab: *mut u32,
    /// Entries readable at `table` (zero-initialised): 2^32 when the table covers the whole
    /// identifier space.
    table_cap: u64,
    /// Whether `table` is a reservation of the whole identifier space (else a heap block).
    pub whole_space: bool,
    /// Bytes in live arrays, cached free buffers and the table.
    used_bytes: u64,
    limit_bytes: u64,
}

/// A stack of `T` whose raw parts generated code can use: `ptr[..len]`, capacity `cap`.
#[repr(C)]
pub struct Stack<T> {
    pub ptr: *mut T,
    pub len: u32,
    pub cap: u32,
}

impl<T: Copy> Stack<T> {
    fn new() -> Stack<T> {
        Stack {
            ptr: NonNull::dangling().as_ptr(),
            len: 0,
            cap: 0,
        }
    }

    #[inline(always)]
    fn top(&self) -> Option<&T> {
        if self.len == 0 {
            return None;
        }
        // SAFETY: elements below the length are initialised.
        Some(unsafe { &*self.ptr.add(self.len as usize - 1) })
    }

    #[inline(always)]
    fn pop(&mut self) -> Option<T> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        // SAFETY: elements below the old length are initialised.
        Some(unsafe { *self.ptr.add(self.len as usize) })
    }

    #[inline(always)]
    fn push(&mut self, v: T) {
        if self.len == self.cap {
            self.grow();
        }
        // SAFETY: `len < cap` after growing.
        unsafe { *self.ptr.add(self.len as usize) = v };
        self.len += 1;
    }

    #[inline(never)]
    fn grow(&mut self) {
        // SAFETY: `ptr`/`cap` are the raw parts of a Vec<T> this stack owns (or dangling
        // with capacity 0), with `len` initialised elements.
        let mut v = unsafe { Vec::from_raw_parts(self.ptr, self.len as usize, self.cap as usize) };
        v.reserve(v.len().max(64));
        let mut v = std::mem::ManuallyDrop::new(v);
        self.ptr = v.as_mut_ptr();
        self.cap = v.capacity().min(u32::MAX as usize) as u32;
    }
}

impl<T> Drop for Stack<T> {
    fn drop(&mut self) {
        // SAFETY: as in `grow`; the elements are plain data.
        drop(unsafe { Vec::from_raw_parts(self.ptr, 0, self.cap as usize) });
    }
}

/// Layout of a buffer of `words` words: 8-aligned and rounded up to whole 8-byte units, so
/// that small buffers can be zeroed 8 bytes at a time.
fn layout(words: u32) -> Layout {
    // Cannot fail: at most 2^32 * 4 + 4 bytes, far below isize::MAX on a 64-bit host.
    Layout::from_size_align(charge_of(words) as usize, 8).expect("array layout")
}

/// Bytes allocated (and charged) for a buffer of `words` words.
fn charge_of(words: u32) -> u64 {
    (words as u64).div_ceil(2) * 8
}

/// Zero a cached buffer or a slot of `n <= SMALL_MAX` words (whole 8-byte units, see
/// `layout`; slots are 8-aligned and `SLOT_WORDS` is even).
/// Volatile stores keep the compiler from turning a handful of stores into `memset`.
#[inline(always)]
fn zero_small(p: *mut u32, n: usize) {
    let q = p.cast::<u64>();
    for i in 0..n.div_ceil(2) {
        // SAFETY: the buffer is 8-aligned and holds `n.div_ceil(2)` 8-byte units.
        unsafe { ptr::write_volatile(q.add(i), 0) };
    }
}

impl Heap {
    /// A heap whose array 0 holds `program`; allocations beyond `limit_bytes` fail cleanly.
    /// The table covers the whole identifier space unless the host refuses, or
    /// `UMDBT_BOUNDED_TABLE=1` asks for the bounded fallback (a debugging knob).
    pub fn new(program: &[u32], limit_bytes: u64) -> Result<Box<Heap>, Reason> {
        let bounded = std::env::var_os("UMDBT_BOUNDED_TABLE").is_some_and(|v| v == "1");
        Heap::with_table(program, limit_bytes, !bounded)
    }

    /// As [`Heap::new`], choosing the table kind: `whole_space` tries the reservation of
    /// every identifier, otherwise the table is bounded and grows.
    pub fn with_table(
        program: &[u32],
        limit_bytes: u64,
        whole_space: bool,
    ) -> Result<Box<Heap>, Reason> {
        let mut heap = Box::new(Heap {
            table: ptr::null_mut(),
            table_len: 0,
            slab_ids: 0,
            free_ids: Stack::new(),
            allocations: 0,
            abandonments: 0,
            live: 1,
            peak_live: 1,
            small: std::array::from_fn(|_| Stack::new()),
            slab: ptr::null_mut(),
            table_cap: 0,
            whole_space: false,
            used_bytes: 0,
            limit_bytes,
        });
        let words =
            u32::try_from(program.len()).map_err(|_| Reason::OutOfMemory { words: u32::MAX })?;
        let base = heap.new_buffer(words)?;
        // SAFETY: `base` was just allocated with room for `words` words and does not overlap
        // `program`.
        unsafe { ptr::copy_nonoverlapping(program.as_ptr(), base.as_ptr(), program.len()) };
        if whole_space {
            heap.map_table();
        } else {
            heap.grow_bounded_table();
        }
        heap.map_slab(if heap.whole_space {
            SLAB_IDS_WHOLE
        } else {
            SLAB_IDS_BOUNDED
        });
        let id = heap.fresh_id()?;
        debug_assert_eq!(id, 0);
        *heap.slot_mut(0) = Entry {
            base: base.as_ptr(),
            len: words,
            active: 1,
        };
        Ok(heap)
    }

    /// Reserve the whole identifier space, or start a bounded table if the host refuses.
    fn map_table(&mut self) {
        let bytes = (1usize << 32) * std::mem::size_of::<Entry>();
        // SAFETY: an anonymous private mapping with no address hint has no preconditions; the
        // result is checked for MAP_FAILED.
        let p = unsafe {
            libc::mmap(
                ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p != libc::MAP_FAILED {
            self.table = p.cast();
            self.table_cap = 1 << 32;
            self.whole_space = true;
        } else {
            log::info!(
                "cannot reserve the identifier space ({}); using a bounded table",
                std::io::Error::last_os_error()
            );
            self.grow_bounded_table();
        }
    }

    /// Reserve slots for identifiers below `ids` (none if the host refuses).
    fn map_slab(&mut self, ids: u32) {
        // SAFETY: as in `map_table`.
        let p = unsafe {
            libc::mmap(
                ptr::null_mut(),
                Heap::slab_bytes(ids),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p != libc::MAP_FAILED {
            self.slab = p.cast();
            self.slab_ids = ids;
        } else {
            log::info!(
                "cannot reserve array slots ({}); small arrays get their own buffers",
                std::io::Error::last_os_error()
            );
        }
    }

    fn slab_bytes(ids: u32) -> usize {
        ids as usize * SLOT_WORDS as usize * 4
    }

    /// Whether an array of `words` words with identifier `id` lives in its slot.
    #[inline(always)]
    fn in_slot(&self, id: u32, words: u32) -> bool {
        id != 0 && id < self.slab_ids && words.wrapping_sub(1) < SLOT_WORDS
    }

    /// The slot of identifier `id < slab_ids`.
    #[inline(always)]
    fn slot_of(&self, id: u32) -> *mut u32 {
        debug_assert!(id < self.slab_ids);
        // SAFETY: the slab holds `SLOT_WORDS` words for each identifier below `slab_ids`.
        unsafe { self.slab.add(id as usize * SLOT_WORDS as usize) }
    }

    /// Double a bounded table (zero-filling the new entries).
    fn grow_bounded_table(&mut self) {
        let new_cap = (self.table_cap * 2).clamp(1024, 1 << 32);
        let layout = Layout::array::<Entry>(new_cap as usize).expect("table layout");
        // SAFETY: the layout has a non-zero size.
        let p = unsafe { alloc::alloc_zeroed(layout) }.cast::<Entry>();
        if p.is_null() {
            alloc::handle_alloc_error(layout);
        }
        if !self.table.is_null() {
            let old = Layout::array::<Entry>(self.table_cap as usize).expect("table layout");
            // SAFETY: the old table holds `table_cap` initialised entries and was allocated
            // with `old`; the new one is larger and distinct.
            unsafe {
                ptr::copy_nonoverlapping(self.table, p, self.table_cap as usize);
                alloc::dealloc(self.table.cast(), old);
            }
        }
        self.table = p;
        self.table_cap = new_cap;
    }

    /// The entry slot of an identifier below `table_cap`.
    #[inline(always)]
    fn slot_mut(&mut self, id: u32) -> &mut Entry {
        debug_assert!((id as u64) < self.table_cap);
        // SAFETY: identifiers below `table_cap` index initialised entries of the table.
        unsafe { &mut *self.table.add(id as usize) }
    }

    /// The entry of `id`, if the table has one (every identifier, for a whole-space table).
    #[inline(always)]
    fn slot(&self, id: u32) -> Option<&Entry> {
        if (id as u64) < self.table_cap {
            // SAFETY: as in `slot_mut`.
            Some(unsafe { &*self.table.add(id as usize) })
        } else {
            None
        }
    }

    /// A never-used identifier, with its entry slot available.
    fn fresh_id(&mut self) -> Result<u32, Reason> {
        let id = self.table_len;
        if id == u32::MAX {
            return Err(Reason::OutOfIdentifiers);
        }
        // A slot's memory is charged with its identifier: it is never given back.
        let slot = if id < self.slab_ids {
            SLOT_WORDS as u64 * 4
        } else {
            0
        };
        self.charge(ENTRY_BYTES + slot)
            .map_err(|_| Reason::OutOfMemory { words: 0 })?;
        if id as u64 >= self.table_cap {
            self.grow_bounded_table();
        }
        self.table_len = id + 1;
        Ok(id)
    }

    /// The entry of `id`, or an inactive one for identifiers beyond the table.
    #[inline(always)]
    pub fn entry(&self, id: u32) -> Entry {
        match self.slot(id) {
            Some(e) => *e,
            None => Entry::FREE,
        }
    }

    /// Array 0: base pointer and length.
    #[inline(always)]
    pub fn program(&self) -> (*mut u32, u32) {
        let e = self.entry(0);
        (e.base, e.len)
    }

    /// The words of an active array (empty for an inactive identifier).
    pub fn array(&self, id: u32) -> &[u32] {
        let e = self.entry(id);
        if e.len == 0 {
            return &[];
        }
        // SAFETY: an entry with a non-zero length points at a live buffer of `len` words that
        // only this heap frees, and `&self` keeps it from being freed or written meanwhile.
        unsafe { std::slice::from_raw_parts(e.base, e.len as usize) }
    }

    /// The reason an access to `id` at `offset` failed.
    #[cold]
    pub fn access_fault(&self, id: u32, offset: u32) -> Reason {
        let e = self.entry(id);
        if e.active == 0 {
            Reason::InactiveArray(id)
        } else {
            Reason::OutOfBounds {
                id,
                offset,
                len: e.len,
            }
        }
    }

    /// Op 1: the word at `offset` in array `id`.
    #[inline(always)]
    pub fn load(&self, id: u32, offset: u32) -> Result<u32, Reason> {
        if let Some(e) = self.slot(id)
            && offset < e.len
        {
            // SAFETY: `offset < len` and the entry describes a live buffer of `len` words.
            return Ok(unsafe { *e.base.add(offset as usize) });
        }
        Err(self.access_fault(id, offset))
    }

    /// Op 2: store `value` at `offset` in array `id`.
    #[inline(always)]
    pub fn store(&mut self, id: u32, offset: u32, value: u32) -> Result<(), Reason> {
        if let Some(e) = self.slot(id)
            && offset < e.len
        {
            // SAFETY: as in `load`; `&mut self` makes this the only access.
            unsafe { *e.base.add(offset as usize) = value };
            return Ok(());
        }
        Err(self.access_fault(id, offset))
    }

    fn charge(&mut self, bytes: u64) -> Result<(), ()> {
        if self.used_bytes + bytes > self.limit_bytes {
            self.release_cached();
            if self.used_bytes + bytes > self.limit_bytes {
                return Err(());
            }
        }
        self.used_bytes += bytes;
        Ok(())
    }

    /// Give every cached free buffer back to the system allocator.
    fn release_cached(&mut self) {
        for words in 1..=SMALL_MAX {
            while let Some(buf) = self.small[words].pop() {
                // SAFETY: every cached buffer was allocated by `new_buffer` with `words` words
                // and is referenced by no entry.
                unsafe { alloc::dealloc(buf.cast(), layout(words as u32)) };
                self.used_bytes -= charge_of(words as u32);
            }
        }
    }

    /// A zeroed buffer of `words` words, charged to the limit.
    fn new_buffer(&mut self, words: u32) -> Result<NonNull<u32>, Reason> {
        if words == 0 {
            return Ok(NonNull::new(FREE_BASE as *mut u32).expect("non-null"));
        }
        if (words as usize) <= SMALL_MAX
            && let Some(buf) = self.small[words as usize].pop()
        {
            zero_small(buf, words as usize);
            return Ok(NonNull::new(buf).expect("cached buffers are non-null"));
        }
        let oom = Reason::OutOfMemory { words };
        self.charge(charge_of(words)).map_err(|_| oom.clone())?;
        // SAFETY: the layout has a non-zero size.
        let p = unsafe { alloc::alloc_zeroed(layout(words)) }.cast::<u32>();
        match NonNull::new(p) {
            Some(p) => Ok(p),
            None => {
                self.used_bytes -= charge_of(words);
                Err(oom)
            }
        }
    }

    /// Return a buffer of `words` words obtained from `new_buffer`.
    #[inline(always)]
    fn drop_buffer(&mut self, base: *mut u32, words: u32) {
        if words == 0 {
            return;
        }
        if words as usize <= SMALL_MAX {
            self.small[words as usize].push(base);
            return;
        }
        // SAFETY: `base` was allocated by `new_buffer` with this layout and is no longer used.
        unsafe { alloc::dealloc(base.cast(), layout(words)) };
        self.used_bytes -= charge_of(words);
    }

    /// Op 8: a new zeroed array of `words` words; returns its identifier (never 0).
    /// (The translator's allocation routine takes the same fast path; keep them alike.)
    #[inline(always)]
    pub fn alloc(&mut self, words: u32) -> Result<u32, Reason> {
        let n = words as usize;
        if let Some(&id) = self.free_ids.top()
            && self.in_slot(id, words)
        {
            self.free_ids.len -= 1;
            let base = self.slot_of(id);
            zero_small(base, n);
            *self.slot_mut(id) = Entry {
                base,
                len: words,
                active: 1,
            };
            self.count_alloc();
            return Ok(id);
        }
        if n <= SMALL_MAX && self.small[n].len > 0 && self.free_ids.len > 0 {
            let buf = self.small[n].pop().expect("checked non-empty");
            let id = self.free_ids.pop().expect("checked non-empty");
            zero_small(buf, n);
            *self.slot_mut(id) = Entry {
                base: buf,
                len: words,
                active: 1,
            };
            self.count_alloc();
            return Ok(id);
        }
        self.alloc_slow(words)
    }

    #[inline(always)]
    fn count_alloc(&mut self) {
        self.allocations += 1;
        self.live += 1;
        if self.live > self.peak_live {
            self.peak_live = self.live;
        }
    }

    #[inline(never)]
    fn alloc_slow(&mut self, words: u32) -> Result<u32, Reason> {
        if words.wrapping_sub(1) < SLOT_WORDS {
            // The identifier comes first: it decides whether a buffer is needed.
            let id = match self.free_ids.pop() {
                Some(id) => id,
                None => self.fresh_id().map_err(|e| match e {
                    Reason::OutOfMemory { .. } => Reason::OutOfMemory { words },
                    other => other,
                })?,
            };
            let base = if self.in_slot(id, words) {
                let base = self.slot_of(id);
                zero_small(base, words as usize);
                base
            } else {
                match self.new_buffer(words) {
                    Ok(b) => b.as_ptr(),
                    Err(e) => {
                        self.free_ids.push(id);
                        return Err(e);
                    }
                }
            };
            *self.slot_mut(id) = Entry {
                base,
                len: words,
                active: 1,
            };
            self.count_alloc();
            return Ok(id);
        }
        let base = self.new_buffer(words)?.as_ptr();
        let entry = Entry {
            base,
            len: words,
            active: 1,
        };
        let id = match self.free_ids.pop() {
            Some(id) => id,
            None => match self.fresh_id() {
                Ok(id) => id,
                Err(e) => {
                    self.drop_buffer(base, words);
                    return Err(match e {
                        Reason::OutOfMemory { .. } => Reason::OutOfMemory { words },
                        other => other,
                    });
                }
            },
        };
        *self.slot_mut(id) = entry;
        self.count_alloc();
        Ok(id)
    }

    /// Op 9: abandon array `id`.
    /// (The translator's abandonment routine takes the same fast path; keep them alike.)
    #[inline(always)]
    pub fn abandon(&mut self, id: u32) -> Result<(), Reason> {
        let e = self.entry(id);
        if id == 0 || e.active == 0 {
            return Err(if id == 0 {
                Reason::AbandonZero
            } else {
                Reason::InactiveArray(id)
            });
        }
        *self.slot_mut(id) = Entry::FREE;
        if !self.in_slot(id, e.len) {
            self.drop_buffer(e.base, e.len);
        }
        self.free_ids.push(id);
        self.abandonments += 1;
        self.live -= 1;
        Ok(())
    }

    /// Op 12 with a non-zero identifier: array 0 becomes a copy of array `id`.
    pub fn load_program(&mut self, id: u32) -> Result<(), Reason> {
        let src = self.entry(id);
        if src.active == 0 {
            return Err(Reason::InactiveArray(id));
        }
        if id == 0 {
            return Ok(());
        }
        let base = self.new_buffer(src.len)?;
        // SAFETY: both buffers hold `src.len` words and are distinct allocations.
        unsafe { ptr::copy_nonoverlapping(src.base, base.as_ptr(), src.len as usize) };
        let old = self.entry(0);
        *self.slot_mut(0) = Entry {
            base: base.as_ptr(),
            len: src.len,
            active: 1,
        };
        self.drop_buffer(old.base, old.len);
        Ok(())
    }
}

impl Drop for Heap {
    fn drop(&mut self) {
        for id in 0..self.table_len {
            let e = self.entry(id);
            if e.active != 0 && e.len != 0 && !self.in_slot(id, e.len) {
                // SAFETY: active entries own their buffers, allocated by `new_buffer`.
                unsafe { alloc::dealloc(e.base.cast(), layout(e.len)) };
            }
        }
        self.release_cached();
        if !self.slab.is_null() {
            // SAFETY: the reservation made in `map_slab`; nothing refers to it any more.
            unsafe { libc::munmap(self.slab.cast(), Heap::slab_bytes(self.slab_ids)) };
        }
        if self.whole_space {
            // SAFETY: the reservation made in `map_table`; nothing refers to it any more.
            unsafe {
                libc::munmap(
                    self.table.cast(),
                    (1usize << 32) * std::mem::size_of::<Entry>(),
                )
            };
        } else if !self.table.is_null() {
            let layout = Layout::array::<Entry>(self.table_cap as usize).expect("table layout");
            // SAFETY: the bounded table was allocated with this layout.
            unsafe { alloc::dealloc(self.table.cast(), layout) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BIG: u64 = 1 << 30;

    #[test]
    fn alloc_zeroes_and_reuses_ids() {
        let mut h = Heap::new(&[1, 2, 3], BIG).unwrap();
        let a = h.alloc(5).unwrap();
        assert_ne!(a, 0);
        h.store(a, 4, 99).unwrap();
        assert_eq!(h.load(a, 4), Ok(99));
        h.abandon(a).unwrap();
        let b = h.alloc(5).unwrap();
        assert_eq!(a, b, "identifier reused");
        assert_eq!(h.array(b), &[0, 0, 0, 0, 0], "reused buffer zeroed");
    }

    #[test]
    fn faults() {
        let mut h = Heap::new(&[1, 2, 3], BIG).unwrap();
        assert_eq!(
            h.load(0, 3),
            Err(Reason::OutOfBounds {
                id: 0,
                offset: 3,
                len: 3
            })
        );
        assert_eq!(h.load(7, 0), Err(Reason::InactiveArray(7)));
        assert_eq!(h.abandon(0), Err(Reason::AbandonZero));
        let z = h.alloc(0).unwrap();
        assert_eq!(
            h.store(z, 0, 1),
            Err(Reason::OutOfBounds {
                id: z,
                offset: 0,
                len: 0
            })
        );
        h.abandon(z).unwrap();
        assert_eq!(h.abandon(z), Err(Reason::InactiveArray(z)));
        assert_eq!(h.load_program(z), Err(Reason::InactiveArray(z)));
    }

    #[test]
    fn limit_is_a_clean_failure() {
        let mut h = Heap::new(&[0], 4096).unwrap();
        assert_eq!(
            h.alloc(u32::MAX),
            Err(Reason::OutOfMemory { words: u32::MAX })
        );
        // Small allocations still work after the failure.
        let a = h.alloc(10).unwrap();
        assert_eq!(h.load(a, 9), Ok(0));
    }

    #[test]
    fn both_table_kinds_reuse_and_grow() {
        for whole in [true, false] {
            let mut h = Heap::with_table(&[1, 2], BIG, whole).unwrap();
            let ids: Vec<u32> = (0..3000).map(|i| h.alloc(i % 70).unwrap()).collect();
            assert_eq!(ids[0], 1);
            assert_eq!(ids[2999], 3000, "fresh identifiers are handed out in order");
            assert_eq!(h.table_len, 3001);
            for &id in &ids[..1500] {
                h.abandon(id).unwrap();
            }
            let again = h.alloc(3).unwrap();
            assert!(
                ids[..1500].contains(&again),
                "an abandoned identifier is reused"
            );
            assert_eq!(h.load(u32::MAX, 0), Err(Reason::InactiveArray(u32::MAX)));
            assert_eq!(h.load(ids[0], 0), Err(Reason::InactiveArray(ids[0])));
            assert_eq!(h.array(0), &[1, 2], "array 0 survives the table growing");
        }
    }

    #[test]
    fn small_arrays_live_in_their_slots() {
        let mut h = Heap::new(&[0], BIG).unwrap();
        assert!(h.slab_ids > 0, "the slot reservation succeeds here");
        let a = h.alloc(3).unwrap();
        let b = h.alloc(SLOT_WORDS).unwrap();
        let big = h.alloc(SLOT_WORDS + 1).unwrap();
        assert_eq!(h.entry(a).base, h.slot_of(a));
        assert_eq!(h.entry(b).base, h.slot_of(b));
        // SAFETY: pointer arithmetic only, within the slab.
        let next = unsafe { h.entry(a).base.add(SLOT_WORDS as usize) };
        assert_eq!(
            h.entry(b).base,
            next,
            "neighbouring identifiers are neighbours"
        );
        assert_ne!(
            h.entry(big).base,
            h.slot_of(big),
            "larger arrays have buffers"
        );
        h.store(a, 2, 7).unwrap();
        h.abandon(a).unwrap();
        // The same identifier comes back with another small size, zeroed.
        assert_eq!(h.alloc(5).unwrap(), a);
        assert_eq!(h.array(a), &[0; 5]);
        h.abandon(a).unwrap();
        // ... or with a size that needs a buffer, and then its slot stays unused.
        assert_eq!(h.alloc(20).unwrap(), a);
        assert_ne!(h.entry(a).base, h.slot_of(a));
        assert_eq!(h.array(a), &[0; 20]);
    }

    #[test]
    fn identifiers_beyond_the_slots_get_buffers() {
        let mut h = Heap::with_table(&[0], BIG, false).unwrap();
        let n = h.slab_ids;
        assert_eq!(n, SLAB_IDS_BOUNDED);
        let ids: Vec<u32> = (0..n + 10).map(|_| h.alloc(2).unwrap()).collect();
        let last = *ids.last().unwrap();
        assert!(last > n);
        assert_eq!(h.entry(n - 1).base, h.slot_of(n - 1));
        assert!(!h.in_slot(last, 2));
        h.store(last, 1, 9).unwrap();
        assert_eq!(h.array(last), &[0, 9]);
        for &id in ids.iter().rev() {
            h.abandon(id).unwrap();
        }
        assert_eq!(
            h.alloc(2).unwrap(),
            1,
            "the lowest identifier was freed last"
        );
        assert_eq!(h.entry(1).base, h.slot_of(1));
    }

    #[test]
    fn load_program_copies() {
        let mut h = Heap::new(&[1], BIG).unwrap();
        let a = h.alloc(2).unwrap();
        h.store(a, 1, 42).unwrap();
        h.load_program(a).unwrap();
        h.store(a, 1, 7).unwrap();
        assert_eq!(h.array(0), &[0, 42]);
        assert_eq!(h.array(a), &[0, 7]);
    }
}

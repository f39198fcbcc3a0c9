//! The identifier table: it counts the identifiers handed out, and, when the slots of
//! small arrays are bounded (see `Slab`), holds one [`Entry`] per identifier beyond them, in
//! one `#[repr(C)]` array that generated code indexes directly (`entries + id *
//! size_of::<Entry>()`). Identifiers with a slot keep their entry in it, and array 0 has
//! its own in the heap, so with a slot for every identifier (the normal case: the slab
//! reserves 2^32 slots) the table has no entries at all. The bounded table is an ordinary
//! allocation that doubles as identifiers are handed out, and generated code must then
//! also check `id < len`.

use std::alloc::{self, Layout};
use std::ptr;

/// One array: where its words are and how many there are.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
    /// An inactive identifier.
    pub const FREE: Entry = Entry {
        base: FREE_BASE as *mut u32,
        len: 0,
        active: 0,
    };

    /// An active array of `len` words at `base`.
    pub fn active(base: *mut u32, len: u32) -> Entry {
        Entry {
            base,
            len,
            active: 1,
        }
    }
}

/// Whether there are entries.
enum Storage {
    /// None: every identifier has a slot, which holds its entry.
    None,
    /// A heap allocation of `cap` entries.
    Bounded,
}

/// The entries, indexed by identifier. `entries` and `len` are read by generated code.
#[repr(C)]
pub struct Table {
    /// The first entry (null without entries). Moves when a bounded table grows.
    pub(super) entries: *mut Entry,
    /// Identifiers handed out so far: every identifier at or above it is inactive.
    pub(super) len: u32,
    /// Entries readable at `entries`, all initialised.
    cap: u64,
    storage: Storage,
}

impl Table {
    /// A table without entries, for when every identifier has a slot.
    pub(super) fn without_entries() -> Table {
        Table {
            entries: ptr::null_mut(),
            len: 0,
            cap: 0,
            storage: Storage::None,
        }
    }

    /// A table that grows as identifiers are handed out.
    pub(super) fn bounded() -> Table {
        let mut t = Table {
            entries: ptr::null_mut(),
            len: 0,
            cap: 0,
            storage: Storage::Bounded,
        };
        t.grow();
        t
    }

    /// Identifiers handed out so far.
    pub fn len(&self) -> u32 {
        self.len
    }

    /// True before the first identifier is handed out.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Double a bounded table (zero-filling the new entries).
    fn grow(&mut self) {
        let new_cap = (self.cap * 2).clamp(1024, 1 << 32);
        let layout = Layout::array::<Entry>(new_cap as usize).expect("table layout");
        // SAFETY: the layout has a non-zero size.
        let p = unsafe { alloc::alloc_zeroed(layout) }.cast::<Entry>();
        if p.is_null() {
            alloc::handle_alloc_error(layout);
        }
        if !self.entries.is_null() {
            let old = Layout::array::<Entry>(self.cap as usize).expect("table layout");
            // SAFETY: the old table holds `cap` initialised entries and was allocated with
            // `old` by this function; the new one is larger and distinct.
            unsafe {
                ptr::copy_nonoverlapping(self.entries, p, self.cap as usize);
                alloc::dealloc(self.entries.cast(), old);
            }
        }
        self.entries = p;
        self.cap = new_cap;
    }

    /// How many identifiers can be handed out without the table growing (at most
    /// `u32::MAX`, which is never handed out; all of them without entries).
    pub(super) fn capacity(&self) -> u32 {
        match self.storage {
            Storage::None => u32::MAX,
            Storage::Bounded => self.cap.min(u32::MAX as u64) as u32,
        }
    }

    /// Hand out the next never-used identifier (`None` when only `u32::MAX` is left, which
    /// is never handed out).
    pub(super) fn next_id(&mut self) -> Option<u32> {
        let id = self.len;
        if id == u32::MAX {
            return None;
        }
        if id >= self.capacity() {
            self.grow();
        }
        self.len = id + 1;
        Some(id)
    }

    /// The entry of `id`; an inactive one for identifiers beyond a bounded table (and for
    /// every identifier without entries).
    #[inline(always)]
    pub fn get(&self, id: u32) -> Entry {
        if (id as u64) < self.cap {
            // SAFETY: identifiers below `cap` index initialised entries.
            unsafe { *self.entries.add(id as usize) }
        } else {
            Entry::FREE
        }
    }

    /// Set the entry of an identifier that was handed out (with entries only).
    #[inline(always)]
    pub(super) fn set(&mut self, id: u32, e: Entry) {
        assert!(id < self.len, "entry {id} was never handed out");
        assert!(
            matches!(self.storage, Storage::Bounded),
            "a table without entries"
        );
        // SAFETY: `id < len <= cap`, so it indexes an initialised entry.
        unsafe { *self.entries.add(id as usize) = e };
    }
}

impl Drop for Table {
    fn drop(&mut self) {
        if let Storage::Bounded = self.storage
            && !self.entries.is_null()
        {
            let layout = Layout::array::<Entry>(self.cap as usize).expect("table layout");
            // SAFETY: a bounded table was allocated by `grow` with this layout.
            unsafe { alloc::dealloc(self.entries.cast(), layout) };
        }
    }
}

//! The identifier table: one [`Entry`] per array identifier, in one `#[repr(C)]` array that
//! generated code indexes directly (`entries + id * size_of::<Entry>()`). Identifiers with a
//! slot keep their entry in it (see `Slab`), so the table's entries are used only for
//! array 0 and, when the slots are bounded, for identifiers beyond them; the table also
//! counts the identifiers handed out.
//!
//! The table normally covers the whole identifier space: 2^32 entries reserved at once
//! ([`Reservation`]), all zero (inactive) until used, so only the pages of identifiers
//! actually handed out cost memory and no identifier indexes outside the table. Where the
//! host refuses such a reservation the table is an ordinary allocation that doubles as
//! identifiers are handed out, and generated code must then also check `id < len`.

use super::reserve::{self, Reservation};
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

/// Where the entries are.
enum Storage {
    /// A reservation of all 2^32 entries (kept for its `Drop`, which unmaps it).
    WholeSpace { _mapping: Reservation },
    /// A heap allocation of `cap` entries.
    Bounded,
}

/// The entries, indexed by identifier. `entries` and `len` are read by generated code.
#[repr(C)]
pub struct Table {
    /// The first entry. Moves only when a bounded table grows.
    pub(super) entries: *mut Entry,
    /// Identifiers handed out so far: every identifier at or above it is inactive.
    pub(super) len: u32,
    /// Entries readable at `entries`, all initialised (2^32 for the whole space).
    cap: u64,
    storage: Storage,
}

impl Table {
    /// A table of the whole identifier space, or `None` when the host refuses the
    /// reservation.
    pub(super) fn whole_space() -> Option<Table> {
        let bytes = (1usize << 32) * std::mem::size_of::<Entry>();
        match Reservation::new(bytes + reserve::PLACEMENT_SLACK) {
            Ok(mut r) => Some(Table {
                entries: r.as_mut_ptr().cast(),
                len: 0,
                cap: 1 << 32,
                storage: Storage::WholeSpace { _mapping: r },
            }),
            Err(e) => {
                log::info!("cannot reserve the identifier space ({e}); using a bounded table");
                None
            }
        }
    }

    /// Start the whole-space table `offset` bytes into its reservation (see
    /// [`reserve::page_offset_apart`]); only before any entry is used.
    pub(super) fn place(&mut self, offset: usize) {
        if let Storage::WholeSpace { _mapping: r } = &mut self.storage {
            assert!(self.len == 0 && offset < reserve::PLACEMENT_SLACK);
            assert!(offset.is_multiple_of(std::mem::size_of::<Entry>()));
            self.entries = r.as_mut_ptr().wrapping_add(offset).cast();
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

    /// Whether every identifier has an entry (else generated code checks `id < len`).
    pub fn covers_whole_space(&self) -> bool {
        matches!(self.storage, Storage::WholeSpace { .. })
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

    /// How many identifiers have an entry without the table growing (at most `u32::MAX`,
    /// which is never handed out).
    pub(super) fn capacity(&self) -> u32 {
        self.cap.min(u32::MAX as u64) as u32
    }

    /// Hand out the next never-used identifier (`None` when only `u32::MAX` is left, which
    /// is never handed out).
    pub(super) fn next_id(&mut self) -> Option<u32> {
        let id = self.len;
        if id == u32::MAX {
            return None;
        }
        if id as u64 >= self.cap {
            self.grow();
        }
        self.len = id + 1;
        Some(id)
    }

    /// The entry of `id`; an inactive one for identifiers beyond a bounded table.
    #[inline(always)]
    pub fn get(&self, id: u32) -> Entry {
        if (id as u64) < self.cap {
            // SAFETY: identifiers below `cap` index initialised entries.
            unsafe { *self.entries.add(id as usize) }
        } else {
            Entry::FREE
        }
    }

    /// Set the entry of an identifier that was handed out.
    #[inline(always)]
    pub(super) fn set(&mut self, id: u32, e: Entry) {
        assert!(id < self.len, "entry {id} was never handed out");
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
        // A whole-space table is unmapped when its reservation drops.
    }
}

//! A helper thread that backs reserved memory with pages ahead of use.
//!
//! A program that keeps millions of arrays (UMIX keeps up to 5.8 million) needs a slot for
//! each, and the kernel must find, zero and map every page of them: in the UMIX session
//! that was about a tenth of the run, all of it on the one thread that runs the program.
//! Backing pages (`MADV_POPULATE_WRITE`, see [`reserve::populate`]) changes no contents: a
//! page reads as zero before and after, and a page already written keeps what it holds.
//! So another thread can do it while the program runs, on the host's other core: the slab
//! asks for the next group of slots to be backed when the program starts on the current
//! one, and the arenas for the next chunk when they start cutting one (see
//! `Heap::start_populator` for when the helper starts). If the program gets there first,
//! its first touches fault the pages in as they would without the helper; nothing waits
//! for the helper, except dropping it, which finishes the requests queued. What is backed
//! ahead is at most one group of slots and one chunk beyond what the program has been
//! charged for. The heap's stacks (free identifiers, free buffers) ask too, for the part
//! a large stack's allocation grew by, which the program then fills.
//!
//! The thread blocks the signals that interrupt a run (`signals::SIGNALS`), so that they
//! reach the thread that runs the program, whose wait for input they must cut short.

use super::reserve;
use std::sync::mpsc::{self, Sender};
use std::thread::{self, JoinHandle};

/// The helper thread and its queue of requests (start address and length in bytes).
pub struct Populator {
    requests: Option<Sender<(usize, usize)>>,
    thread: Option<JoinHandle<()>>,
}

impl Populator {
    /// Start the helper; `None` when the system will not start a thread.
    pub fn new() -> Option<Populator> {
        let (requests, queue) = mpsc::channel::<(usize, usize)>();
        let spawned = with_signals_blocked(|| {
            thread::Builder::new()
                .name("umdbt-populate".into())
                .spawn(move || {
                    for (start, bytes) in queue {
                        reserve::populate(start as *mut u8, bytes);
                    }
                })
        });
        match spawned {
            Ok(thread) => Some(Populator {
                requests: Some(requests),
                thread: Some(thread),
            }),
            Err(e) => {
                log::info!("no helper thread to back memory ahead of use ({e})");
                None
            }
        }
    }

    /// Ask for the `bytes` bytes at `start`, memory of this process's own, to be backed with
    /// pages. Backing changes no contents, wherever it lands: if the memory is given back or
    /// moved before the helper gets to it (a stack reallocated), the request backs what
    /// took its place or fails, and changes nothing the program sees either way. The
    /// slab's and the arenas' reservations outlive the populator (their owner drops it
    /// first).
    pub fn request(&self, start: *mut u8, bytes: usize) {
        if let Some(requests) = &self.requests {
            // A send fails only if the thread is gone (it panicked): then the pages come
            // on first touch, as without it.
            let _ = requests.send((start as usize, bytes));
        }
    }
}

impl Drop for Populator {
    /// Close the queue and wait for the thread to finish the requests in it (one or two:
    /// each is one group or chunk ahead), so that no populate runs on memory after its
    /// reservation is unmapped.
    fn drop(&mut self) {
        drop(self.requests.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Run `f` (which starts a thread) with the run-interrupting signals blocked, so that the
/// new thread inherits the mask; the caller's mask is restored afterwards.
fn with_signals_blocked<T>(f: impl FnOnce() -> T) -> T {
    // SAFETY: the sigset is initialised by sigemptyset before use, and pthread_sigmask
    // only changes this thread's signal mask, which is restored before returning.
    unsafe {
        let mut block: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut block);
        for s in crate::signals::SIGNALS {
            libc::sigaddset(&mut block, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &block, &mut old);
        let out = f();
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::reserve::{Reservation, page_size};

    /// How many of the `pages` pages from `p` (page-aligned) are resident.
    fn resident(p: *mut u8, pages: usize) -> usize {
        reserve::resident(p, pages * page_size()).0
    }

    #[test]
    fn requested_pages_are_backed_and_still_zero_when_it_is_dropped() {
        let page = page_size();
        let mut r = Reservation::new(64 * page).expect("reserve");
        let p = r.as_mut_ptr();
        assert_eq!(resident(p, 64), 0, "nothing is backed before");
        // Whether this host backs pages on request at all (qemu-user ignores the advice).
        let backs = reserve::populate_backs();
        let helper = Populator::new().expect("a thread");
        // SAFETY: both ranges are inside the reservation, which outlives `helper`.
        unsafe {
            *p.add(5 * page + 3) = 7;
            helper.request(p.add(4 * page), 16 * page);
            helper.request(p.add(40 * page), 8 * page);
        }
        drop(helper);
        if backs {
            assert_eq!(resident(p, 64), 24, "exactly the requested pages");
        }
        // SAFETY: every offset read is inside the reservation.
        unsafe {
            assert_eq!(*p.add(5 * page + 3), 7, "what was written stays");
            for off in (4 * page..20 * page).chain(40 * page..48 * page) {
                if off != 5 * page + 3 {
                    assert_eq!(*p.add(off), 0, "offset {off}");
                }
            }
        }
    }
}

//! Signing at query time, for what cannot be signed when the snapshot is
//! built: multivalue combinations, denial of names that do not exist and
//! wildcard expansions.
//!
//! Each DNS worker thread keeps its own bounded cache (no lock, no sharing)
//! and its own budget: signing may take at most [`SHARE_PERCENT`] of each
//! [`BUDGET_WINDOW`] of the thread's time; past it the caller falls back
//! (see `dns::answer`). The clock is read only here, around a signature,
//! never on the precompiled path. Counts go to `/metrics`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rustc_hash::FxBuildHasher;

/// Signatures (RRSIG RDATAs) for one RRset, shared by cache and reply.
pub type Signatures = Rc<[Box<[u8]>]>;

/// Entries each worker's cache holds before it is emptied.
pub const CACHE_ENTRIES: usize = 4096;
/// Largest share of a worker's time spent signing, in percent.
pub const SHARE_PERCENT: u32 = 25;
/// The period the share is measured over.
pub const BUDGET_WINDOW: Duration = Duration::from_secs(1);

static SIGNED: AtomicU64 = AtomicU64::new(0);
static CACHE_HITS: AtomicU64 = AtomicU64::new(0);
static REFUSED: AtomicU64 = AtomicU64::new(0);

/// Process-wide counts of online signing, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OnlineCounts {
    /// RRsets signed at query time.
    pub signed: u64,
    /// Answers whose signatures came from a worker's cache.
    pub cache_hits: u64,
    /// Signatures not made because the worker's budget was spent.
    pub refused: u64,
}

/// The counts so far.
pub fn counts() -> OnlineCounts {
    OnlineCounts {
        signed: SIGNED.load(Ordering::Relaxed),
        cache_hits: CACHE_HITS.load(Ordering::Relaxed),
        refused: REFUSED.load(Ordering::Relaxed),
    }
}

/// One worker thread's cache and signing budget.
#[derive(Default)]
struct Worker {
    cache: HashMap<Box<[u8]>, Signatures, FxBuildHasher>,
    window_start: Option<Instant>,
    spent: Duration,
}

thread_local! {
    static WORKER: RefCell<Worker> = RefCell::new(Worker::default());
}

/// The signatures cached under `key` on this thread, or those `sign` makes
/// (then cached) if the thread's budget allows; `None` when over budget or
/// when signing failed.
pub fn signatures(key: &[u8], sign: impl FnOnce() -> Option<Vec<Box<[u8]>>>) -> Option<Signatures> {
    WORKER.with(|worker| worker.borrow_mut().signatures(key, Instant::now, sign))
}

/// Spends this thread's signing budget for the current window, so that a
/// test can see what answers do past it.
#[cfg(test)]
pub(crate) fn spend_budget() {
    WORKER.with(|worker| {
        let mut worker = worker.borrow_mut();
        worker.window_start = Some(Instant::now());
        worker.spent = BUDGET_WINDOW;
    });
}

impl Worker {
    /// [`signatures`] with the clock passed in (read before and after
    /// signing), so the budget can be tested without real time.
    fn signatures(
        &mut self,
        key: &[u8],
        mut now: impl FnMut() -> Instant,
        sign: impl FnOnce() -> Option<Vec<Box<[u8]>>>,
    ) -> Option<Signatures> {
        if let Some(found) = self.cache.get(key) {
            CACHE_HITS.fetch_add(1, Ordering::Relaxed);
            return Some(found.clone());
        }
        let start = now();
        let window_start = *self.window_start.get_or_insert(start);
        if start.duration_since(window_start) >= BUDGET_WINDOW {
            self.window_start = Some(start);
            self.spent = Duration::ZERO;
        }
        if self.spent >= BUDGET_WINDOW * SHARE_PERCENT / 100 {
            REFUSED.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let made: Signatures = sign()?.into();
        self.spent += now().duration_since(start);
        SIGNED.fetch_add(1, Ordering::Relaxed);
        if self.cache.len() >= CACHE_ENTRIES {
            self.cache.clear();
        }
        self.cache.insert(key.into(), made.clone());
        Some(made)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_request_is_a_cache_hit() {
        let mut calls = 0;
        let key = b"online-test-key";
        let first = signatures(key, || {
            calls += 1;
            Some(vec![Box::from(&b"sig"[..])])
        });
        let second = signatures(key, || {
            calls += 1;
            Some(vec![])
        });
        assert_eq!(calls, 1);
        assert_eq!(first.as_deref(), second.as_deref());
    }

    fn one_signature() -> Option<Vec<Box<[u8]>>> {
        Some(vec![Box::from(&b"sig"[..])])
    }

    /// A clock that moves only when told: each reading returns the time
    /// set last.
    struct TestClock(std::cell::Cell<Instant>);

    impl TestClock {
        fn read(&self) -> impl FnMut() -> Instant + '_ {
            || self.0.get()
        }
        /// A clock for one signature that takes `took`: read before, then after.
        fn signing_for(&self, took: Duration) -> impl FnMut() -> Instant + '_ {
            let mut readings = 0;
            move || {
                readings += 1;
                if readings == 2 {
                    self.0.set(self.0.get() + took);
                }
                self.0.get()
            }
        }
    }

    #[test]
    fn signing_stops_at_its_share_of_the_window_and_resumes_in_the_next() {
        let clock = TestClock(std::cell::Cell::new(Instant::now()));
        let opened = clock.0.get();
        let mut worker = Worker::default();
        let slow = Duration::from_millis(100);
        // 0, 100 and 200 ms spent before each: under the 250 ms share.
        for key in [&b"a"[..], b"b", b"c"] {
            assert!(
                worker
                    .signatures(key, clock.signing_for(slow), one_signature)
                    .is_some()
            );
        }
        // 300 ms spent: refused, and again while the window lasts.
        let mut called = false;
        let refused = worker.signatures(b"d", clock.read(), || {
            called = true;
            one_signature()
        });
        assert!(refused.is_none() && !called);
        clock
            .0
            .set(opened + BUDGET_WINDOW - Duration::from_millis(1));
        assert!(
            worker
                .signatures(b"d", clock.read(), one_signature)
                .is_none()
        );
        // Cached signatures are still served over budget.
        assert!(worker.signatures(b"a", clock.read(), || None).is_some());
        // The next window starts with nothing spent.
        clock.0.set(opened + BUDGET_WINDOW);
        assert!(
            worker
                .signatures(b"d", clock.read(), one_signature)
                .is_some()
        );
        assert_eq!(worker.spent, Duration::ZERO);
    }

    #[test]
    fn the_cache_never_holds_more_than_its_bound() {
        let clock = TestClock(std::cell::Cell::new(Instant::now()));
        let mut worker = Worker::default();
        for n in 0..=CACHE_ENTRIES {
            let key = n.to_be_bytes();
            assert!(
                worker
                    .signatures(&key, clock.read(), one_signature)
                    .is_some()
            );
            assert!(worker.cache.len() <= CACHE_ENTRIES);
        }
        assert_eq!(worker.cache.len(), 1);
    }
}

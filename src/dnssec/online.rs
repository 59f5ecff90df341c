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
    WORKER.with(|worker| {
        let mut worker = worker.borrow_mut();
        if let Some(found) = worker.cache.get(key) {
            CACHE_HITS.fetch_add(1, Ordering::Relaxed);
            return Some(found.clone());
        }
        let start = Instant::now();
        let window_start = *worker.window_start.get_or_insert(start);
        if start.duration_since(window_start) >= BUDGET_WINDOW {
            worker.window_start = Some(start);
            worker.spent = Duration::ZERO;
        }
        if worker.spent >= BUDGET_WINDOW * SHARE_PERCENT / 100 {
            REFUSED.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let made: Signatures = sign()?.into();
        worker.spent += start.elapsed();
        SIGNED.fetch_add(1, Ordering::Relaxed);
        if worker.cache.len() >= CACHE_ENTRIES {
            worker.cache.clear();
        }
        worker.cache.insert(key.into(), made.clone());
        Some(made)
    })
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
}

//! What the DNS workers answer from, swapped whole on reload: a snapshot,
//! the answers precompiled from it and the rate limiter's settings. Built
//! here, by the data plane, from a snapshot the control plane validated, so
//! the snapshot knows nothing of how it is served.
//!
//! The rate limiter's budgets are not part of it: a new `Served` takes the
//! previous one's budget table (when its size is unchanged), so a reload
//! never resets rate limiting.

use std::sync::Arc;

use arc_swap::ArcSwap;

use super::precompiled::PrecompiledAnswers;
use super::rrl::RateLimiter;
use crate::snapshot::Snapshot;

/// The served state currently answering queries, replaced whole on reload.
pub type SharedServed = Arc<ArcSwap<Served>>;

/// One snapshot as the workers serve it (see the module docs).
#[derive(Debug)]
pub struct Served {
    /// The configuration-derived data every answer comes from.
    pub snapshot: Arc<Snapshot>,
    /// Answers serialised from `snapshot` for the fast path.
    pub precompiled: PrecompiledAnswers,
    /// Response rate limiting for UDP answers, when `[rrl]` is on.
    pub rrl: Option<RateLimiter>,
}

impl Served {
    /// Precompiles `snapshot`'s answers. `previous` is the state being
    /// replaced, whose rate-limit budgets carry over.
    pub fn new(snapshot: Arc<Snapshot>, previous: Option<&Served>) -> Self {
        let precompiled = PrecompiledAnswers::build(&snapshot);
        let rrl = snapshot
            .rrl
            .map(|settings| RateLimiter::new(settings, previous.and_then(|p| p.rrl.as_ref())));
        Self {
            snapshot,
            precompiled,
            rrl,
        }
    }
}

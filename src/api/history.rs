//! [`StatusHistory`]: samples of the answer counters, every few seconds,
//! from which `/status` computes its "last minute" figures.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::control::Control;
use crate::metrics::PoolTotals;

/// The window of the "last minute" figures.
const WINDOW: Duration = Duration::from_secs(60);

/// Samples of the answer counters over the last minute.
#[derive(Debug, Default)]
pub struct StatusHistory {
    inner: Mutex<HistoryInner>,
}

#[derive(Debug, Default)]
pub(super) struct HistoryInner {
    /// Kept samples, oldest first (the first at least a window old).
    pub(super) samples: VecDeque<Sample>,
    /// Dense ids of the endpoint and (service, pool) keys kept samples use,
    /// so a sample holds numbers only: with 10,000 services a sample of
    /// keyed maps took ~8 MB, and a minute of samples ~250 MB.
    endpoint_ids: HashMap<String, usize>,
    pool_ids: HashMap<(String, String), usize>,
}

/// The counters as read, by key.
#[derive(Debug)]
pub(super) struct Counters {
    /// Answers naming each endpoint.
    pub(super) endpoints: HashMap<String, u64>,
    /// Totals per (service, pool).
    pub(super) pools: HashMap<(String, String), PoolTotals>,
}

/// Counters kept for the window, by the ids in [`HistoryInner`].
#[derive(Debug)]
pub(super) struct Sample {
    at: Instant,
    endpoints: Vec<u64>,
    pools: Vec<PoolTotals>,
}

impl HistoryInner {
    /// `counters` by dense id, interning keys seen for the first time.
    fn compact(&mut self, at: Instant, counters: &Counters) -> Sample {
        let mut endpoints = vec![0; self.endpoint_ids.len()];
        for (key, &answers) in &counters.endpoints {
            let next = self.endpoint_ids.len();
            let id = *self.endpoint_ids.entry(key.clone()).or_insert(next);
            if id >= endpoints.len() {
                endpoints.resize(id + 1, 0);
            }
            endpoints[id] = answers;
        }
        let mut pools = vec![PoolTotals::default(); self.pool_ids.len()];
        for (key, &totals) in &counters.pools {
            let next = self.pool_ids.len();
            let id = *self.pool_ids.entry(key.clone()).or_insert(next);
            if id >= pools.len() {
                pools.resize(id + 1, PoolTotals::default());
            }
            pools[id] = totals;
        }
        Sample {
            at,
            endpoints,
            pools,
        }
    }

    /// An endpoint's answer count in `sample` (0 if it had none then).
    pub(super) fn endpoint_in(&self, sample: &Sample, key: &str) -> u64 {
        self.endpoint_ids
            .get(key)
            .and_then(|&id| sample.endpoints.get(id).copied())
            .unwrap_or(0)
    }

    /// A (service, pool)'s totals in `sample`.
    pub(super) fn pool_in(&self, sample: &Sample, key: &(String, String)) -> PoolTotals {
        self.pool_ids
            .get(key)
            .and_then(|&id| sample.pools.get(id).copied())
            .unwrap_or_default()
    }
}

impl StatusHistory {
    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, HistoryInner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes a sample of the counters.
    pub fn sample(&self, control: &Control) {
        let now = Instant::now();
        let counters = read_counters(control);
        let mut guard = self.lock();
        let inner = &mut *guard;
        let sample = inner.compact(now, &counters);
        let samples = &mut inner.samples;
        samples.push_back(sample);
        // Keep one sample at least a window old as the base.
        while samples.len() > 1
            && samples
                .get(1)
                .is_some_and(|s| now.duration_since(s.at) >= WINDOW)
        {
            samples.pop_front();
        }
    }
}

pub(super) fn read_counters(control: &Control) -> Counters {
    Counters {
        endpoints: control.metrics.endpoint_answers(),
        pools: control.metrics.pool_totals(),
    }
}

//! [`StatusHistory`]: samples of the answer counters and of health, every
//! few seconds. `/status` computes its "last minute" figures from the
//! samples; `/history` serves the last hour in buckets of
//! [`BUCKET_SECS`]: answers per endpoint and per (service, pool), and how
//! often each endpoint and pool was healthy at the samples in the bucket.
//!
//! Control plane only (a mutex is fine). Kept compact for 10,000 services:
//! samples and buckets hold numbers by interned id, and a bucket's answers
//! only the ids that answered.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use crate::control::Control;
use crate::metrics::PoolTotals;

/// Width of one bucket of the hour's history, in seconds.
pub const BUCKET_SECS: u64 = 30;
/// Buckets kept: an hour.
const BUCKETS: u64 = 3600 / BUCKET_SECS;

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
    /// Dense ids of pool names, for pool health.
    pool_name_ids: HashMap<String, usize>,
    /// The last hour.
    hour: Hour,
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

impl HistoryInner {
    /// What `sample` adds to the hour: answers since the previous sample
    /// (none for the first) and the health seen now.
    fn hour_sample(&mut self, sample: &Sample, health: &HealthNow) -> HourSample {
        let mut out = HourSample::default();
        if let Some(previous) = self.samples.back() {
            for (id, &now) in sample.endpoints.iter().enumerate() {
                let delta = now.saturating_sub(previous.endpoints.get(id).copied().unwrap_or(0));
                if delta > 0 {
                    out.endpoint_answers.push((id, delta));
                }
            }
            for (id, now) in sample.pools.iter().enumerate() {
                let before = previous.pools.get(id).map_or(0, |p| p.answers);
                let delta = now.answers.saturating_sub(before);
                if delta > 0 {
                    out.pool_answers.push((id, delta));
                }
            }
        }
        for (key, usable, probe_up) in &health.endpoints {
            let next = self.endpoint_ids.len();
            let id = *self.endpoint_ids.entry(key.clone()).or_insert(next);
            out.endpoint_health.push((id, *usable, *probe_up));
        }
        for (name, up, full) in &health.pools {
            let next = self.pool_name_ids.len();
            let id = *self.pool_name_ids.entry(name.clone()).or_insert(next);
            out.pool_health.push((id, *up, *full));
        }
        out
    }
}

impl StatusHistory {
    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, HistoryInner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes a sample of the counters and of health.
    pub fn sample(&self, control: &Control) {
        let now = Instant::now();
        let unix_secs = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let counters = read_counters(control);
        let health = read_health(control);
        let mut guard = self.lock();
        let inner = &mut *guard;
        let sample = inner.compact(now, &counters);
        let hour_sample = inner.hour_sample(&sample, &health);
        inner.hour.add(unix_secs, &hour_sample);
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

/// Health as seen at one sample.
#[derive(Debug, Default)]
struct HealthNow {
    /// Endpoint key, whether answers may use it, whether its probes say up.
    endpoints: Vec<(String, bool, bool)>,
    /// Pool name, whether it is up (enough healthy endpoints), whether all
    /// its endpoints are healthy.
    pools: Vec<(String, bool, bool)>,
}

fn read_health(control: &Control) -> HealthNow {
    let snapshot = control.snapshot();
    let view = control.health.view();
    let mut now = HealthNow::default();
    let mut seen_endpoints = std::collections::HashSet::new();
    let mut seen_pools = std::collections::HashSet::new();
    for service in &snapshot.services {
        for pool in &service.pools {
            if !seen_pools.insert(pool.name.as_str()) {
                continue;
            }
            let healthy = pool
                .endpoints
                .iter()
                .filter(|e| e.is_healthy(&view))
                .count();
            let up = healthy >= pool.min_healthy.needed(pool.endpoints.len());
            now.pools
                .push((pool.name.clone(), up, healthy == pool.endpoints.len()));
            for endpoint in &pool.endpoints {
                if !seen_endpoints.insert(endpoint.key.as_str()) {
                    continue;
                }
                let probe_up = control
                    .health
                    .record(endpoint.id)
                    .is_none_or(|r| r.probe_up());
                now.endpoints
                    .push((endpoint.key.clone(), endpoint.is_healthy(&view), probe_up));
            }
        }
    }
    now
}

/// What one sample adds to the hour, by dense ids.
#[derive(Debug, Default)]
struct HourSample {
    /// (endpoint id, answers since the previous sample).
    endpoint_answers: Vec<(usize, u64)>,
    /// ((service, pool) id, answers since the previous sample).
    pool_answers: Vec<(usize, u64)>,
    /// (endpoint id, usable, probes up).
    endpoint_health: Vec<(usize, bool, bool)>,
    /// (pool name id, up, every endpoint healthy).
    pool_health: Vec<(usize, bool, bool)>,
}

/// One bucket of the last hour.
#[derive(Debug, Default)]
struct Bucket {
    /// Unix seconds / [`BUCKET_SECS`].
    index: u64,
    /// Samples taken in it (at most 15 at one per 2 s).
    samples: u8,
    /// Answers per endpoint id that had any.
    endpoint_answers: Answers,
    /// Answers per (service, pool) id that had any.
    pool_answers: Answers,
    /// Per endpoint id: samples with it usable, and with its probes up.
    endpoint_health: Vec<[u8; 2]>,
    /// Per pool name id: samples with it up, and with all endpoints healthy.
    pool_health: Vec<[u8; 2]>,
}

/// The last hour's buckets, oldest first; the last one may still fill.
#[derive(Debug, Default)]
struct Hour {
    buckets: VecDeque<Bucket>,
}

fn add_count(counts: &mut Vec<[u8; 2]>, id: usize, first: bool, second: bool) {
    if counts.len() <= id {
        counts.resize(id + 1, [0, 0]);
    }
    if let Some(slot) = counts.get_mut(id) {
        slot[0] = slot[0].saturating_add(u8::from(first));
        slot[1] = slot[1].saturating_add(u8::from(second));
    }
}

/// Answers per id in one bucket: a map while the bucket fills, then a
/// sorted list (8 bytes an entry: with 10,000 services answering, an
/// hour of closed buckets holds about 40 MB instead of twice that).
#[derive(Debug)]
enum Answers {
    /// The bucket still takes samples.
    Open(HashMap<u32, u32>),
    /// Sorted by id.
    Closed(Box<[(u32, u32)]>),
}

impl Default for Answers {
    fn default() -> Self {
        Answers::Open(HashMap::new())
    }
}

impl Answers {
    /// Adds `delta` answers to `id` (closed buckets take no samples).
    fn add(&mut self, id: usize, delta: u64) {
        if let Answers::Open(map) = self {
            let slot = map
                .entry(u32::try_from(id).unwrap_or(u32::MAX))
                .or_default();
            *slot = slot.saturating_add(u32::try_from(delta).unwrap_or(u32::MAX));
        }
    }

    /// The answers of `id` (0 when it had none).
    fn get(&self, id: usize) -> u64 {
        let Ok(id) = u32::try_from(id) else {
            return 0;
        };
        let count = match self {
            Answers::Open(map) => map.get(&id).copied(),
            Answers::Closed(list) => list
                .binary_search_by_key(&id, |&(i, _)| i)
                .ok()
                .and_then(|i| list.get(i))
                .map(|&(_, count)| count),
        };
        u64::from(count.unwrap_or(0))
    }

    /// Every (id, answers).
    fn entries(&self) -> Vec<(u32, u32)> {
        match self {
            Answers::Open(map) => map.iter().map(|(&id, &count)| (id, count)).collect(),
            Answers::Closed(list) => list.to_vec(),
        }
    }

    /// Freezes a filled bucket's answers into the compact sorted list.
    fn close(&mut self) {
        if let Answers::Open(map) = self {
            let mut list: Vec<(u32, u32)> = map.drain().collect();
            list.sort_unstable();
            *self = Answers::Closed(list.into_boxed_slice());
        }
    }
}

impl Hour {
    /// Adds a sample taken at `unix_secs` to its bucket, dropping buckets
    /// older than an hour.
    fn add(&mut self, unix_secs: u64, sample: &HourSample) {
        let index = unix_secs / BUCKET_SECS;
        if self.buckets.back().is_none_or(|b| b.index != index) {
            if let Some(previous) = self.buckets.back_mut() {
                previous.endpoint_answers.close();
                previous.pool_answers.close();
            }
            self.buckets.push_back(Bucket {
                index,
                ..Bucket::default()
            });
        }
        while self
            .buckets
            .front()
            .is_some_and(|b| b.index + BUCKETS <= index)
        {
            self.buckets.pop_front();
        }
        let Some(bucket) = self.buckets.back_mut() else {
            return;
        };
        bucket.samples = bucket.samples.saturating_add(1);
        for &(id, delta) in &sample.endpoint_answers {
            bucket.endpoint_answers.add(id, delta);
        }
        for &(id, delta) in &sample.pool_answers {
            bucket.pool_answers.add(id, delta);
        }
        for &(id, usable, probe_up) in &sample.endpoint_health {
            add_count(&mut bucket.endpoint_health, id, usable, probe_up);
        }
        for &(id, up, full) in &sample.pool_health {
            add_count(&mut bucket.pool_health, id, up, full);
        }
    }
}

/// The `/history` document: the last hour, one value per bucket, oldest
/// first, aligned with `buckets`. Health values are the fraction of the
/// bucket's samples in that state (`null`: no sample).
#[derive(Debug, Serialize)]
pub struct HistoryDoc {
    /// Bucket width in seconds.
    pub bucket_secs: u64,
    /// When each bucket starts (Unix seconds); the last one is still filling.
    pub buckets: Vec<u64>,
    /// Per endpoint key.
    pub endpoints: BTreeMap<String, EndpointHistory>,
    /// Per pool name.
    pub pools: BTreeMap<String, PoolHistory>,
    /// Per service: answers per bucket by pool (`""`: answered by no pool).
    pub services: BTreeMap<String, BTreeMap<String, Vec<u64>>>,
}

/// One endpoint's hour.
#[derive(Debug, Default, Serialize)]
pub struct EndpointHistory {
    /// Answers naming it.
    pub answers: Vec<u64>,
    /// Fraction of samples answers could use it.
    pub usable: Vec<Option<f32>>,
    /// Fraction of samples its probes said up.
    pub probe_up: Vec<Option<f32>>,
}

/// One pool's hour.
#[derive(Debug, Default, Serialize)]
pub struct PoolHistory {
    /// Answers from it (all services).
    pub answers: Vec<u64>,
    /// Answers of the services that list it (any pool): the whole its
    /// endpoints' shares are taken of.
    pub service_answers: Vec<u64>,
    /// Fraction of samples it was up (enough healthy endpoints).
    pub up: Vec<Option<f32>>,
    /// Fraction of samples all its endpoints were healthy.
    pub full: Vec<Option<f32>>,
}

/// Answers by name (service or pool) in one bucket.
type Totals<'a> = HashMap<&'a str, u64>;

fn fraction(count: u8, samples: u8) -> Option<f32> {
    (samples > 0).then(|| (f32::from(count) / f32::from(samples) * 100.0).round() / 100.0)
}

/// The fraction of a bucket's `samples` in which record `id` of `health` (a
/// bucket's `endpoint_health` or `pool_health`) was in state `which`; a
/// record the bucket does not know counts 0.
fn health_share(health: &[[u8; 2]], id: Option<usize>, which: usize, samples: u8) -> Option<f32> {
    let count = id.and_then(|id| health.get(id)).map_or(0, |c| c[which]);
    fraction(count, samples)
}

impl StatusHistory {
    /// The last hour of the endpoints, pools and services configured now.
    pub fn hour(&self, control: &Control) -> HistoryDoc {
        let snapshot = control.snapshot();
        let inner = self.lock();
        let buckets = &inner.hour.buckets;
        let mut doc = HistoryDoc {
            bucket_secs: BUCKET_SECS,
            buckets: buckets.iter().map(|b| b.index * BUCKET_SECS).collect(),
            endpoints: BTreeMap::new(),
            pools: BTreeMap::new(),
            services: BTreeMap::new(),
        };
        let mut pool_keys: Vec<Option<&(String, String)>> = vec![None; inner.pool_ids.len()];
        for (key, &id) in &inner.pool_ids {
            if let Some(slot) = pool_keys.get_mut(id) {
                *slot = Some(key);
            }
        }
        // Per bucket: answers per service and per pool name.
        let per_bucket: Vec<(Totals<'_>, Totals<'_>)> = buckets
            .iter()
            .map(|bucket| {
                let (mut services, mut pools) = (HashMap::new(), HashMap::new());
                for (id, answers) in bucket.pool_answers.entries() {
                    if let Some(Some((service, pool))) = pool_keys.get(id as usize) {
                        *services.entry(service.as_str()).or_default() += u64::from(answers);
                        *pools.entry(pool.as_str()).or_default() += u64::from(answers);
                    }
                }
                (services, pools)
            })
            .collect();
        for service in &snapshot.services {
            let mut by_pool = BTreeMap::new();
            for pool in service.pools.iter().map(|p| p.name.as_str()).chain([""]) {
                let id = inner
                    .pool_ids
                    .get(&(service.name.clone(), pool.to_string()));
                let answers: Vec<u64> = buckets
                    .iter()
                    .map(|b| id.map_or(0, |&id| b.pool_answers.get(id)))
                    .collect();
                if !pool.is_empty() || answers.iter().any(|&a| a > 0) {
                    by_pool.insert(pool.to_string(), answers);
                }
            }
            doc.services.insert(service.name.clone(), by_pool);
            for pool in &service.pools {
                if doc.pools.contains_key(&pool.name) {
                    continue;
                }
                let listing: Vec<&str> = snapshot
                    .services
                    .iter()
                    .filter(|s| s.pools.iter().any(|p| p.name == pool.name))
                    .map(|s| s.name.as_str())
                    .collect();
                let name_id = inner.pool_name_ids.get(&pool.name).copied();
                let health =
                    |b: &Bucket, which| health_share(&b.pool_health, name_id, which, b.samples);
                doc.pools.insert(
                    pool.name.clone(),
                    PoolHistory {
                        answers: per_bucket
                            .iter()
                            .map(|(_, pools)| pools.get(pool.name.as_str()).copied().unwrap_or(0))
                            .collect(),
                        service_answers: per_bucket
                            .iter()
                            .map(|(services, _)| {
                                listing.iter().filter_map(|s| services.get(s)).sum()
                            })
                            .collect(),
                        up: buckets.iter().map(|b| health(b, 0)).collect(),
                        full: buckets.iter().map(|b| health(b, 1)).collect(),
                    },
                );
                for endpoint in &pool.endpoints {
                    let id = inner.endpoint_ids.get(&endpoint.key).copied();
                    let health =
                        |b: &Bucket, which| health_share(&b.endpoint_health, id, which, b.samples);
                    doc.endpoints.insert(
                        endpoint.key.clone(),
                        EndpointHistory {
                            answers: buckets
                                .iter()
                                .map(|b| id.map_or(0, |id| b.endpoint_answers.get(id)))
                                .collect(),
                            usable: buckets.iter().map(|b| health(b, 0)).collect(),
                            probe_up: buckets.iter().map(|b| health(b, 1)).collect(),
                        },
                    );
                }
            }
        }
        doc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(answers: u64, usable: bool) -> HourSample {
        HourSample {
            endpoint_answers: vec![(0, answers)],
            pool_answers: vec![(0, answers)],
            endpoint_health: vec![(0, usable, usable)],
            pool_health: vec![(0, usable, usable)],
        }
    }

    #[test]
    fn samples_fall_into_half_minute_buckets_for_an_hour() {
        let start = 33_333 * BUCKET_SECS;
        let mut hour = Hour::default();
        // 15 samples in the first bucket: 10 answers each, down for 5.
        for i in 0..15 {
            hour.add(start + i * 2, &sample(10, i >= 5));
        }
        hour.add(start + 30, &sample(7, true));
        assert_eq!(hour.buckets.len(), 2);
        let first = &hour.buckets[0];
        assert_eq!((first.index, first.samples), (33_333, 15));
        assert_eq!(first.endpoint_answers.get(0), 150);
        // A filled bucket keeps the compact list.
        assert!(matches!(first.endpoint_answers, Answers::Closed(_)));
        assert_eq!(first.endpoint_health[0], [10, 10]);
        assert_eq!(fraction(10, 15), Some(0.67));
        // An hour later the first bucket is gone; gaps leave no buckets.
        hour.add(start + 3600, &sample(1, true));
        assert_eq!(hour.buckets.len(), 2);
        assert_eq!(hour.buckets[0].index, 33_334);
        assert_eq!(hour.buckets[1].index, 33_333 + 120);
    }
}

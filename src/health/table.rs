//! The health table: all runtime state that can change an answer, in one
//! value with one owner, apart from the snapshot.
//!
//! Writers (probers, the admin API, the `fastest` updater, snapshot builds
//! registering endpoints) change per-endpoint records under the table's
//! lock, then [`HealthTable::publish`] turns the records into an immutable
//! [`HealthView`] with a new epoch and swaps it in (as a reload swaps a
//! snapshot). The query path loads one view per query or UDP batch and
//! hands it to `policy::select`, so a census and the pick that follows it
//! see the same state, and memoised pool choices stay valid exactly while
//! the view's epoch is the one they were made under.
//!
//! Endpoints are addressed by [`EndpointId`]s, assigned when a snapshot is
//! built by looking up the endpoint's identity (`pool/target`) here: the
//! same identity gets the same id and record across reloads, so verdicts,
//! overrides, weights and the preferred endpoint survive them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use arc_swap::cache::Cache;
use arc_swap::{ArcSwap, Guard};

use super::{EndpointHealth, FULL_WEIGHT_PERCENT, FailureReason, Override};
use super::{ServiceSplits, Split};

/// A stable index of an endpoint's record in the [`HealthTable`], assigned
/// when a snapshot is built; the same endpoint identity keeps its id across
/// reloads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EndpointId(u32);

impl EndpointId {
    /// The id at `index` of a view built by hand ([`HealthView::from_states`]);
    /// a table assigns its own.
    pub fn new(index: u32) -> Self {
        Self(index)
    }

    /// The id's position in [`HealthView`]'s per-endpoint array.
    #[inline]
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// One endpoint's state as the query path reads it: the effective result of
/// the probes' verdict, overrides and weight, plus what `fastest` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndpointState {
    /// Whether answers may name it (verdict and overrides combined; the
    /// configuration's `down` is the snapshot's business).
    pub usable: bool,
    /// Weight factor in percent (100 unless a JSON health body reports load).
    pub weight_percent: u8,
    /// Whether `fastest` selection prefers it in its pool.
    pub preferred: bool,
    /// The endpoint's own operator override (for explanations).
    pub own_override: Override,
    /// Whether an operator took it out (force-down or drain, its own or
    /// its pool's): failing open never answers it.
    pub operator_down: bool,
    /// Smoothed probe RTT in microseconds, 0 when not measured (as of the
    /// last publish: RTTs alone publish only with the `fastest` updater).
    pub rtt_us: u32,
    /// The operator's runtime weight, replacing the configured one
    /// (`POST /weight`).
    pub operator_weight: Option<u32>,
}

impl EndpointState {
    /// The state of an id the view does not know (not possible for ids of
    /// a served snapshot: its endpoints are published before it is swapped
    /// in): up, full weight.
    pub const UNKNOWN: EndpointState = EndpointState {
        usable: true,
        weight_percent: FULL_WEIGHT_PERCENT,
        preferred: false,
        own_override: Override::None,
        operator_down: false,
        rtt_us: 0,
        operator_weight: None,
    };

    /// Smoothed RTT, if measured.
    pub fn rtt(&self) -> Option<u32> {
        (self.rtt_us != 0).then_some(self.rtt_us)
    }
}

/// A `fastest` service's measured pool order, for the snapshot build whose
/// service had `serial` (a reload's services start from their configured
/// order again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeasuredOrder {
    /// `Service::serial` of the service it was measured for.
    pub serial: u64,
    /// Indices into the service's pools, leader first.
    pub order: Box<[u16]>,
}

/// An immutable picture of the health table, published whole; what the
/// query path reads. Nothing in it changes after it is published.
#[derive(Debug, Clone, Default)]
pub struct HealthView {
    /// Moves with every publish; per-thread memos of pool choices are keyed
    /// by it.
    epoch: u64,
    /// By [`EndpointId`].
    endpoints: Box<[EndpointState]>,
    /// By a `fastest` service's measured-order slot.
    measured: Box<[Option<MeasuredOrder>]>,
    /// By a load-aware service's slot (`LoadRules::slot`): its spill
    /// splits, planned off the query path.
    splits: Box<[Option<Arc<ServiceSplits>>]>,
}

impl HealthView {
    /// The publish this view came from.
    #[inline]
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The state of endpoint `id`.
    #[inline]
    pub fn endpoint(&self, id: EndpointId) -> EndpointState {
        self.endpoints
            .get(id.index())
            .copied()
            .unwrap_or(EndpointState::UNKNOWN)
    }

    /// The measured pool order in `slot`, if it was measured for the
    /// service with `serial`.
    #[inline]
    pub fn measured_order(&self, slot: u32, serial: u64) -> Option<&[u16]> {
        match self.measured.get(slot as usize) {
            Some(Some(measured)) if measured.serial == serial => Some(&measured.order),
            _ => None,
        }
    }

    /// The split of order `order` of the load-aware service in `slot`, if
    /// one is in force for the service with `serial`, and why.
    #[inline]
    pub fn split(&self, slot: u32, serial: u64, order: u32) -> Option<(&Split, &str)> {
        match self.splits.get(slot as usize) {
            Some(Some(splits)) if splits.serial == serial => {
                let split = splits.splits.get(order as usize).filter(|s| !s.is_none())?;
                let why = splits.reasons.get(order as usize).map_or("", |r| &**r);
                Some((split, why))
            }
            _ => None,
        }
    }

    /// A view where every endpoint in `states` has that state (tests and
    /// benchmarks that need health without a table).
    pub fn from_states(epoch: u64, states: Vec<EndpointState>) -> Self {
        Self {
            epoch,
            endpoints: states.into_boxed_slice(),
            measured: Box::default(),
            splits: Box::default(),
        }
    }
}

/// The health table: records by endpoint identity, pool overrides, the
/// `fastest` updater's results, and the published view.
#[derive(Debug, Default)]
pub struct HealthTable {
    /// Locked by writers and control-plane readers only.
    inner: Mutex<Inner>,
    /// What the query path loads (lock-free).
    view: ArcSwap<HealthView>,
    /// Woken by every publish (for `events`; off the query path).
    published: tokio::sync::Notify,
}

#[derive(Debug, Default)]
struct Inner {
    /// Endpoint identity → id.
    ids: HashMap<String, EndpointId>,
    /// By id; `None` for a free slot.
    records: Vec<Option<Arc<EndpointHealth>>>,
    /// Slots freed by [`HealthTable::retain`], reused by later builds.
    free: Vec<EndpointId>,
    /// Pool overrides by pool name; kept across reloads and applied to
    /// records created later in that pool.
    pool_overrides: HashMap<String, Override>,
    /// Operator weight factors by pool name, like `pool_overrides`.
    pool_weights: HashMap<String, u8>,
    /// `fastest` services' measured orders, by slot.
    measured: Vec<Option<MeasuredOrder>>,
    /// Load-aware services' splits, by slot.
    splits: Vec<Option<Arc<ServiceSplits>>>,
    /// The epoch of the last publish.
    epoch: u64,
}

impl HealthTable {
    /// The current view: one lock-free load. Load the snapshot first: a
    /// view loaded after a snapshot knows every endpoint of it.
    #[inline]
    pub fn view(&self) -> Guard<Arc<HealthView>> {
        self.view.load()
    }

    /// A cache of the current view for one thread that loads it often (a
    /// UDP worker, per batch): a load checks one pointer while the view
    /// stays the same. It keeps the view it last loaded alive until the
    /// next load.
    pub fn view_cache(&self) -> Cache<&ArcSwap<HealthView>, Arc<HealthView>> {
        Cache::new(&self.view)
    }

    /// The current view as an `Arc` (for holders that keep it).
    pub fn view_arc(&self) -> Arc<HealthView> {
        self.view.load_full()
    }

    /// The id and record for endpoint identity `key`, created in
    /// `initially_up` state (with its pool's override) if new. New records
    /// reach the view with the next [`HealthTable::publish`], which a
    /// snapshot build makes before it is served.
    pub fn register(&self, key: &str, initially_up: bool) -> (EndpointId, Arc<EndpointHealth>) {
        let mut inner = self.lock();
        if let Some(&id) = inner.ids.get(key)
            && let Some(Some(record)) = inner.records.get(id.index())
        {
            return (id, record.clone());
        }
        let id = match inner.free.pop() {
            Some(id) => id,
            None => EndpointId(u32::try_from(inner.records.len()).unwrap_or(u32::MAX)),
        };
        let record = Arc::new(EndpointHealth::new(id, initially_up));
        record.set_pool_override(
            inner
                .pool_overrides
                .get(pool_of(key))
                .copied()
                .unwrap_or(Override::None),
        );
        record.set_pool_weight_percent(
            inner
                .pool_weights
                .get(pool_of(key))
                .copied()
                .unwrap_or(FULL_WEIGHT_PERCENT),
        );
        if id.index() >= inner.records.len() {
            inner.records.resize(id.index() + 1, None);
        }
        inner.records[id.index()] = Some(record.clone());
        inner.ids.insert(key.to_string(), id);
        (id, record)
    }

    /// The record for endpoint identity `key`, if registered.
    pub fn get(&self, key: &str) -> Option<Arc<EndpointHealth>> {
        let inner = self.lock();
        let id = inner.ids.get(key)?;
        inner.records.get(id.index())?.clone()
    }

    /// Publishes the records as a new view with a new epoch.
    pub fn publish(&self) {
        let mut inner = self.lock();
        self.publish_locked(&mut inner);
    }

    /// Frees every record whose id is not in `live` (the served snapshot's
    /// endpoints); their slots are reused by later builds.
    pub fn retain(&self, live: impl IntoIterator<Item = EndpointId>) {
        let mut inner = self.lock();
        let mut keep = vec![false; inner.records.len()];
        for id in live {
            if let Some(slot) = keep.get_mut(id.index()) {
                *slot = true;
            }
        }
        let Inner {
            ids, records, free, ..
        } = &mut *inner;
        ids.retain(|_, id| keep[id.index()]);
        for (index, record) in records.iter_mut().enumerate() {
            if !keep[index] && record.take().is_some() {
                free.push(EndpointId(index as u32));
            }
        }
        self.publish_locked(&mut inner);
    }

    // --- probers ---

    /// Records a successful probe of `record` (counters, RTT, weight);
    /// publishes if the weight factor changed.
    pub fn handle_success(
        &self,
        record: &EndpointHealth,
        rtt: Duration,
        weight_percent: u8,
        now: SystemTime,
    ) {
        if record.handle_success(rtt, weight_percent, now) {
            self.publish();
        }
    }

    /// Records a failed probe of `record`.
    pub fn handle_failure(
        &self,
        record: &EndpointHealth,
        reason: FailureReason,
        error: &str,
        now: SystemTime,
    ) {
        record.handle_failure(reason, error, now);
    }

    /// Records the probes' new verdict on `record`; publishes if it changed.
    pub fn handle_verdict(&self, record: &EndpointHealth, up: bool, now: SystemTime) {
        if record.handle_verdict(up, now) {
            self.publish();
        }
    }

    // --- operators ---

    /// Sets or clears endpoint `key`'s own override; false if no such
    /// endpoint is registered.
    pub fn set_admin_override(&self, key: &str, value: Override) -> bool {
        let Some(record) = self.get(key) else {
            return false;
        };
        if record.set_admin_override(value) {
            self.publish();
        }
        true
    }

    /// The override set on pool `pool` (`None` when unset).
    pub fn pool_override(&self, pool: &str) -> Override {
        self.lock()
            .pool_overrides
            .get(pool)
            .copied()
            .unwrap_or(Override::None)
    }

    /// Every pool override in force, by pool name.
    pub fn pool_overrides(&self) -> Vec<(String, Override)> {
        let inner = self.lock();
        let mut list: Vec<_> = inner
            .pool_overrides
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        list.sort_by(|a, b| a.0.cmp(&b.0));
        list
    }

    /// Sets (or with [`Override::None`] clears) the override of every
    /// endpoint of `pool`, now and after reloads. An endpoint's own
    /// override, when set, wins over its pool's.
    pub fn set_pool_override(&self, pool: &str, value: Override) {
        let mut inner = self.lock();
        if value == Override::None {
            inner.pool_overrides.remove(pool);
        } else {
            inner.pool_overrides.insert(pool.to_string(), value);
        }
        let mut changed = false;
        for (key, id) in &inner.ids {
            if pool_of(key) == pool
                && let Some(Some(record)) = inner.records.get(id.index())
            {
                changed |= record.set_pool_override(value);
            }
        }
        if changed {
            self.publish_locked(&mut inner);
        }
    }

    /// Sets (`None`: clears) endpoint `key`'s runtime weight; false if no
    /// such endpoint is registered.
    pub fn set_operator_weight(&self, key: &str, weight: Option<u32>) -> bool {
        let Some(record) = self.get(key) else {
            return false;
        };
        if record.set_operator_weight(weight) {
            self.publish();
        }
        true
    }

    /// The operator weight factor of pool `pool` (100 when unset).
    pub fn pool_weight_percent(&self, pool: &str) -> u8 {
        self.lock()
            .pool_weights
            .get(pool)
            .copied()
            .unwrap_or(FULL_WEIGHT_PERCENT)
    }

    /// Sets (`None`: clears) the weight factor of every endpoint of `pool`,
    /// now and after reloads.
    pub fn set_pool_weight_percent(&self, pool: &str, percent: Option<u8>) {
        let mut inner = self.lock();
        match percent {
            Some(p) => inner
                .pool_weights
                .insert(pool.to_string(), p.min(FULL_WEIGHT_PERCENT)),
            None => inner.pool_weights.remove(pool),
        };
        let value = percent.unwrap_or(FULL_WEIGHT_PERCENT);
        let mut changed = false;
        for (key, id) in &inner.ids {
            if pool_of(key) == pool
                && let Some(Some(record)) = inner.records.get(id.index())
            {
                changed |= record.set_pool_weight_percent(value);
            }
        }
        if changed {
            self.publish_locked(&mut inner);
        }
    }

    // --- the cluster (see `cluster`) ---

    /// Sets the cluster's verdicts (`None`: this member's own probes
    /// decide); publishes once if any changed.
    pub fn set_quorum_verdicts(
        &self,
        verdicts: impl IntoIterator<Item = (EndpointId, Option<bool>)>,
    ) {
        let mut inner = self.lock();
        let mut changed = false;
        for (id, verdict) in verdicts {
            if let Some(Some(record)) = inner.records.get(id.index()) {
                changed |= record.set_quorum_verdict(verdict);
            }
        }
        if changed {
            self.publish_locked(&mut inner);
        }
    }

    // --- the `fastest` updater ---

    /// Applies the `fastest` updater's results: the preferred endpoint of
    /// each pool (`preferred`: per pool, its endpoints and the chosen one)
    /// and the measured orders by slot; publishes (RTTs included).
    pub fn set_fastest(
        &self,
        preferred: &[(Vec<EndpointId>, Option<EndpointId>)],
        measured: Vec<Option<MeasuredOrder>>,
    ) {
        let mut inner = self.lock();
        for (endpoints, chosen) in preferred {
            for &id in endpoints {
                if let Some(Some(record)) = inner.records.get(id.index()) {
                    record.set_preferred(Some(id) == *chosen);
                }
            }
        }
        inner.measured = measured;
        self.publish_locked(&mut inner);
    }

    /// The measured order in `slot` as last set (for the updater's
    /// hysteresis), if it was measured for `serial`.
    pub fn measured_order(&self, slot: u32, serial: u64) -> Option<Box<[u16]>> {
        match self.lock().measured.get(slot as usize) {
            Some(Some(measured)) if measured.serial == serial => Some(measured.order.clone()),
            _ => None,
        }
    }

    /// The record with `id`, if registered.
    pub fn record(&self, id: EndpointId) -> Option<Arc<EndpointHealth>> {
        self.lock().records.get(id.index())?.clone()
    }

    /// Waits for the next publish (one since the last wait counts).
    pub async fn changed(&self) {
        self.published.notified().await;
    }

    fn publish_locked(&self, inner: &mut Inner) {
        inner.epoch += 1;
        let endpoints = inner
            .records
            .iter()
            .map(|record| record.as_deref().map_or(EndpointState::UNKNOWN, effective))
            .collect();
        self.view.store(Arc::new(HealthView {
            epoch: inner.epoch,
            endpoints,
            measured: inner.measured.clone().into_boxed_slice(),
            splits: inner.splits.clone().into_boxed_slice(),
        }));
        self.published.notify_one();
    }

    /// Replaces the load-aware services' splits (by slot) and publishes
    /// them: the query path's memoised choices move to them at once.
    pub fn set_splits(&self, splits: Vec<Option<Arc<ServiceSplits>>>) {
        let mut inner = self.lock();
        inner.splits = splits;
        self.publish_locked(&mut inner);
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Inner is consistent between statements; a panic elsewhere leaves it usable.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The state answers use, from a record's inputs. The one place where they
/// are combined: operator override first, else the cluster's quorum when
/// there is one, else the probes' verdict; the JSON weight factor times the
/// operator's pool weight factor; the operator's weight.
fn effective(record: &EndpointHealth) -> EndpointState {
    let weight_percent = u16::from(record.weight_percent())
        * u16::from(record.pool_weight_percent())
        / u16::from(FULL_WEIGHT_PERCENT);
    EndpointState {
        usable: record.is_usable(),
        weight_percent: u8::try_from(weight_percent).unwrap_or(FULL_WEIGHT_PERCENT),
        operator_weight: record.operator_weight(),
        preferred: record.preferred(),
        own_override: record.admin_override(),
        operator_down: matches!(
            record.effective_override(),
            Override::ForceDown | Override::Drain
        ),
        rtt_us: record.rtt_us().unwrap_or(0),
    }
}

/// The pool part of an endpoint key `pool/target`.
fn pool_of(key: &str) -> &str {
    key.split_once('/').map_or(key, |(pool, _)| pool)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_keeps_its_id_and_record_across_registrations() {
        let table = HealthTable::default();
        let (a, record) = table.register("eu/192.0.2.1", true);
        table.handle_verdict(&record, false, SystemTime::now());
        let (b, again) = table.register("eu/192.0.2.1", true);
        assert_eq!(a, b);
        assert!(Arc::ptr_eq(&record, &again));
        assert!(!table.view().endpoint(a).usable);
    }

    #[test]
    fn a_view_does_not_change_after_it_is_loaded() {
        let table = HealthTable::default();
        let (id, record) = table.register("eu/192.0.2.1", true);
        table.publish();
        let before = table.view_arc();
        table.handle_verdict(&record, false, SystemTime::now());
        let after = table.view_arc();
        assert!(before.endpoint(id).usable);
        assert!(!after.endpoint(id).usable);
        assert!(after.epoch() > before.epoch());
    }

    #[test]
    fn pool_override_applies_to_later_records_and_yields_to_endpoint_override() {
        let table = HealthTable::default();
        let (a, _) = table.register("eu/192.0.2.1", true);
        let (other, _) = table.register("us/192.0.2.9", true);
        table.set_pool_override("eu", Override::ForceDown);
        let view = table.view_arc();
        assert!(!view.endpoint(a).usable);
        assert!(view.endpoint(other).usable);
        // An endpoint that appears in the pool later (a reload) gets it too.
        let (b, record) = table.register("eu/192.0.2.2", true);
        table.publish();
        assert_eq!(record.pool_override(), Override::ForceDown);
        assert!(!table.view().endpoint(b).usable);
        // The endpoint's own override wins.
        assert!(table.set_admin_override("eu/192.0.2.2", Override::ForceUp));
        assert!(table.view().endpoint(b).usable);
        table.set_pool_override("eu", Override::None);
        assert!(table.view().endpoint(a).usable);
        assert!(table.pool_overrides().is_empty());
    }

    #[test]
    fn quorum_verdicts_and_operator_weights_reach_the_view() {
        let table = HealthTable::default();
        let (a, record) = table.register("eu/192.0.2.1", true);
        table.set_quorum_verdicts([(a, Some(false))]);
        assert!(!table.view().endpoint(a).usable);
        assert!(record.probe_up(), "the local verdict is kept beside it");
        table.set_quorum_verdicts([(a, None)]);
        assert!(table.view().endpoint(a).usable);
        assert!(table.set_operator_weight("eu/192.0.2.1", Some(7)));
        assert_eq!(table.view().endpoint(a).operator_weight, Some(7));
        table.set_pool_weight_percent("eu", Some(25));
        assert_eq!(table.view().endpoint(a).weight_percent, 25);
        let (b, _) = table.register("eu/192.0.2.2", true);
        table.publish();
        assert_eq!(table.view().endpoint(b).weight_percent, 25);
        table.set_pool_weight_percent("eu", None);
        assert_eq!(table.view().endpoint(a).weight_percent, 100);
        assert!(!table.set_operator_weight("eu/192.0.2.9", Some(1)));
    }

    #[test]
    fn retain_frees_slots_for_reuse_and_forgets_identities() {
        let table = HealthTable::default();
        let (a, _) = table.register("eu/192.0.2.1", true);
        let (b, _) = table.register("eu/192.0.2.2", true);
        table.retain([b]);
        assert!(table.get("eu/192.0.2.1").is_none());
        let (c, _) = table.register("eu/192.0.2.3", true);
        assert_eq!(c, a);
        assert!(table.get("eu/192.0.2.2").is_some());
    }
}

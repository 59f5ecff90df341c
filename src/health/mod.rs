//! Endpoint health: one record of atomics per endpoint, written by probers
//! and admin overrides, read lock-free by the query path.
//!
//! Records live in a `HealthRegistry` keyed by endpoint identity (pool name
//! and target), which outlives snapshots: a reload hands the same record to
//! the new snapshot, so health and overrides survive unrelated config changes.
//!
//! Probing lives in the submodules: `check` compiles `[checks]` into
//! [`CheckSpec`]s, `plan` turns pools into a [`ProbePlan`], `probe` does the
//! network I/O of one probe, `state` is the pure rise/fall state machine and
//! `monitor` schedules probers (one tokio task per probed endpoint) and
//! writes their verdicts here. Probers write only to these records.

mod check;
pub mod fastest;
mod monitor;
mod plan;
mod probe;
mod state;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

pub use check::{CheckSet, CheckSpec, JsonSpec, LinearReduce, build_checks};
pub use monitor::{EndpointStatus, HealthMonitor, LatenessSummary};
pub use plan::{
    HealthSettings, PlannedEndpoint, Probe, ProbePlan, ProbeTarget, build_health_settings,
    plan_probe, resolve_pool_check,
};
pub use probe::{FailureReason, ProbeOutcome, Prober, evaluate_json};
pub use state::Hysteresis;

/// Weight factor of an endpoint that is not degraded, in percent.
pub const FULL_WEIGHT_PERCENT: u8 = 100;

/// A configured weight scaled by a health weight factor in percent: the
/// weight answers are picked by (shown by `/status`, `/metrics`, `explain`).
pub fn effective_weight(weight: u32, percent: u8) -> f64 {
    f64::from(weight) * f64::from(percent) / 100.0
}

/// Probe verdict values stored in [`EndpointHealth`].
const PROBE_UP: u8 = 0;
const PROBE_DOWN: u8 = 1;

/// An operator's override of the probes' verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Override {
    /// Follow the probes.
    None,
    /// Always answer with this endpoint.
    ForceUp,
    /// Never answer with this endpoint.
    ForceDown,
    /// No new answers; probes continue (for maintenance).
    Drain,
}

impl Override {
    /// The name used by the admin API and status page.
    pub fn as_str(self) -> &'static str {
        match self {
            Override::None => "none",
            Override::ForceUp => "force-up",
            Override::ForceDown => "force-down",
            Override::Drain => "drain",
        }
    }

    fn to_u8(self) -> u8 {
        match self {
            Override::None => 0,
            Override::ForceUp => 1,
            Override::ForceDown => 2,
            Override::Drain => 3,
        }
    }

    fn from_u8(value: u8) -> Self {
        match value {
            1 => Override::ForceUp,
            2 => Override::ForceDown,
            3 => Override::Drain,
            _ => Override::None,
        }
    }
}

/// What the control plane (status page, admin API) reads about the probes;
/// never read by the query path, so a mutex is fine.
#[derive(Debug, Clone)]
pub struct ProbeStatus {
    /// When the probe verdict last changed (or the record was created).
    pub state_since: SystemTime,
    /// When the last probe finished.
    pub last_probe_at: Option<SystemTime>,
    /// Text of the last failure.
    pub last_error: Option<String>,
    /// Why the last failure failed.
    pub last_error_reason: Option<FailureReason>,
    /// When the last failure happened.
    pub last_error_at: Option<SystemTime>,
    /// Successes in a row, up to now.
    pub consecutive_successes: u32,
    /// Failures in a row, up to now.
    pub consecutive_failures: u32,
}

/// Changes whenever any endpoint's usability or weight changes (probe
/// verdict, operator override, pool override, JSON health weight), so the
/// query path can keep pool choices until it moves (`policy::plan_cache`).
static HEALTH_EPOCH: AtomicU64 = AtomicU64::new(0);

/// The current health epoch. Acquire: a reader that sees an epoch also sees
/// every health change made before it was bumped.
#[inline]
pub fn health_epoch() -> u64 {
    HEALTH_EPOCH.load(Ordering::Acquire)
}

/// Marks a change; called after the changed value is stored.
fn bump_health_epoch() {
    HEALTH_EPOCH.fetch_add(1, Ordering::Release);
}

/// Health of one endpoint. What the query path reads are atomics: readers
/// never block writers.
#[derive(Debug)]
pub struct EndpointHealth {
    probe: AtomicU8,
    admin: AtomicU8,
    /// The override of the endpoint's pool (see [`HealthRegistry::set_pool_override`]);
    /// an endpoint's own override, when set, wins.
    pool_admin: AtomicU8,
    /// Smoothed probe round-trip time in microseconds (0 = not measured).
    rtt_us: AtomicU32,
    /// Weight factor in percent, lowered while a JSON health body reports load.
    weight_percent: AtomicU8,
    /// Probes finished.
    probes_total: AtomicU64,
    /// Failed probes, indexed by [`FailureReason::index`].
    failures: [AtomicU64; FailureReason::COUNT],
    /// Details for the control plane.
    status: Mutex<ProbeStatus>,
}

/// Weight of the newest sample in the RTT moving average, in tenths.
const RTT_EWMA_NEW_TENTHS: u64 = 3;

impl EndpointHealth {
    /// A record in the given initial probe state.
    pub fn new(initially_up: bool) -> Self {
        Self {
            probe: AtomicU8::new(if initially_up { PROBE_UP } else { PROBE_DOWN }),
            admin: AtomicU8::new(Override::None.to_u8()),
            pool_admin: AtomicU8::new(Override::None.to_u8()),
            rtt_us: AtomicU32::new(0),
            weight_percent: AtomicU8::new(FULL_WEIGHT_PERCENT),
            probes_total: AtomicU64::new(0),
            failures: Default::default(),
            status: Mutex::new(ProbeStatus {
                state_since: SystemTime::now(),
                last_probe_at: None,
                last_error: None,
                last_error_reason: None,
                last_error_at: None,
                consecutive_successes: 0,
                consecutive_failures: 0,
            }),
        }
    }

    /// Weight factor in percent (100 unless a JSON health body reported load).
    #[inline]
    pub fn weight_percent(&self) -> u8 {
        self.weight_percent.load(Ordering::Relaxed)
    }

    /// Sets the weight factor (clamped to 0..=100).
    pub fn set_weight_percent(&self, percent: u8) {
        let percent = percent.min(FULL_WEIGHT_PERCENT);
        if self.weight_percent.swap(percent, Ordering::Relaxed) != percent {
            bump_health_epoch();
        }
    }

    /// Records a successful probe: counters, RTT average and weight factor.
    pub fn handle_success(&self, rtt: Duration, weight_percent: u8, now: SystemTime) {
        self.probes_total.fetch_add(1, Ordering::Relaxed);
        let sample = u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX).max(1);
        let smoothed = match self.rtt_us() {
            None => sample,
            Some(old) => {
                (u64::from(old) * (10 - RTT_EWMA_NEW_TENTHS) + sample * RTT_EWMA_NEW_TENTHS) / 10
            }
        };
        self.set_rtt_us(u32::try_from(smoothed).unwrap_or(u32::MAX));
        self.set_weight_percent(weight_percent);
        let mut status = self.lock_status();
        status.last_probe_at = Some(now);
        status.consecutive_successes = status.consecutive_successes.saturating_add(1);
        status.consecutive_failures = 0;
    }

    /// Records a failed probe: counters and the error text.
    pub fn handle_failure(&self, reason: FailureReason, error: &str, now: SystemTime) {
        self.probes_total.fetch_add(1, Ordering::Relaxed);
        self.failures[reason.index()].fetch_add(1, Ordering::Relaxed);
        let mut status = self.lock_status();
        status.last_probe_at = Some(now);
        status.last_error = Some(error.to_string());
        status.last_error_reason = Some(reason);
        status.last_error_at = Some(now);
        status.consecutive_failures = status.consecutive_failures.saturating_add(1);
        status.consecutive_successes = 0;
    }

    /// Records a new probe verdict and when it changed.
    pub fn handle_verdict(&self, up: bool, now: SystemTime) {
        if self.probe_up() != up {
            self.set_probe_up(up);
            self.lock_status().state_since = now;
        }
    }

    /// Probes finished so far.
    pub fn probes_total(&self) -> u64 {
        self.probes_total.load(Ordering::Relaxed)
    }

    /// Failed probes for `reason` so far.
    pub fn failures(&self, reason: FailureReason) -> u64 {
        self.failures[reason.index()].load(Ordering::Relaxed)
    }

    /// A copy of the control-plane details.
    pub fn probe_status(&self) -> ProbeStatus {
        self.lock_status().clone()
    }

    fn lock_status(&self) -> std::sync::MutexGuard<'_, ProbeStatus> {
        // The status holds plain data; a panic while it was held leaves it usable.
        self.status
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether answers may name this endpoint (probes and override combined).
    #[inline]
    pub fn is_usable(&self) -> bool {
        match self.effective_override() {
            Override::ForceUp => true,
            Override::ForceDown | Override::Drain => false,
            Override::None => self.probe.load(Ordering::Relaxed) == PROBE_UP,
        }
    }

    /// The probes' current verdict.
    pub fn probe_up(&self) -> bool {
        self.probe.load(Ordering::Relaxed) == PROBE_UP
    }

    /// Records the probes' verdict.
    pub fn set_probe_up(&self, up: bool) {
        let value = if up { PROBE_UP } else { PROBE_DOWN };
        if self.probe.swap(value, Ordering::Relaxed) != value {
            bump_health_epoch();
        }
    }

    /// The operator override in force.
    pub fn admin_override(&self) -> Override {
        Override::from_u8(self.admin.load(Ordering::Relaxed))
    }

    /// Sets or clears the operator override.
    pub fn set_admin_override(&self, value: Override) {
        if self.admin.swap(value.to_u8(), Ordering::Relaxed) != value.to_u8() {
            bump_health_epoch();
        }
    }

    // --- pool overrides (admin API) ---

    /// The override of the endpoint's pool.
    pub fn pool_override(&self) -> Override {
        Override::from_u8(self.pool_admin.load(Ordering::Relaxed))
    }

    /// The override in force: the endpoint's own, else its pool's.
    #[inline]
    pub fn effective_override(&self) -> Override {
        match Override::from_u8(self.admin.load(Ordering::Relaxed)) {
            Override::None => Override::from_u8(self.pool_admin.load(Ordering::Relaxed)),
            own => own,
        }
    }

    fn set_pool_override(&self, value: Override) {
        if self.pool_admin.swap(value.to_u8(), Ordering::Relaxed) != value.to_u8() {
            bump_health_epoch();
        }
    }

    /// Smoothed RTT in microseconds, if measured.
    pub fn rtt_us(&self) -> Option<u32> {
        match self.rtt_us.load(Ordering::Relaxed) {
            0 => None,
            rtt => Some(rtt),
        }
    }

    /// Stores the smoothed RTT.
    pub fn set_rtt_us(&self, rtt_us: u32) {
        self.rtt_us.store(rtt_us.max(1), Ordering::Relaxed);
    }
}

/// Long-lived map from endpoint identity to its health record.
///
/// Locked only by the control plane (snapshot builds, probers starting,
/// the admin API); the query path holds `Arc<EndpointHealth>` directly.
#[derive(Debug, Default)]
pub struct HealthRegistry {
    records: Mutex<HashMap<String, Arc<EndpointHealth>>>,
    /// Pool overrides by pool name; kept across reloads and applied to
    /// records created later in that pool.
    pool_overrides: Mutex<HashMap<String, Override>>,
}

impl HealthRegistry {
    /// The record for `key`, created in `initially_up` state if new.
    pub fn record(&self, key: &str, initially_up: bool) -> Arc<EndpointHealth> {
        let pool_override = self.pool_override(pool_of(key));
        let mut records = self
            .records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        records
            .entry(key.to_string())
            .or_insert_with(|| {
                let record = EndpointHealth::new(initially_up);
                record.set_pool_override(pool_override);
                Arc::new(record)
            })
            .clone()
    }

    /// The live record for `key` (`pool/target`), if any snapshot uses it.
    pub fn get(&self, key: &str) -> Option<Arc<EndpointHealth>> {
        let records = self
            .records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        records.get(key).cloned()
    }

    /// The override set on pool `pool` (`None` when unset).
    pub fn pool_override(&self, pool: &str) -> Override {
        let overrides = self
            .pool_overrides
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        overrides.get(pool).copied().unwrap_or(Override::None)
    }

    /// Every pool override in force, by pool name.
    pub fn pool_overrides(&self) -> Vec<(String, Override)> {
        let overrides = self
            .pool_overrides
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut list: Vec<_> = overrides.iter().map(|(k, v)| (k.clone(), *v)).collect();
        list.sort_by(|a, b| a.0.cmp(&b.0));
        list
    }

    /// Sets (or with [`Override::None`] clears) the override of every
    /// endpoint of `pool`, now and after reloads. An endpoint's own
    /// override, when set, wins over its pool's.
    pub fn set_pool_override(&self, pool: &str, value: Override) {
        {
            let mut overrides = self
                .pool_overrides
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if value == Override::None {
                overrides.remove(pool);
            } else {
                overrides.insert(pool.to_string(), value);
            }
        }
        let records = self
            .records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (key, record) in records.iter() {
            if pool_of(key) == pool {
                record.set_pool_override(value);
            }
        }
    }

    /// Drops records no longer referenced by any snapshot.
    pub fn prune(&self) {
        let mut records = self
            .records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        records.retain(|_, record| Arc::strong_count(record) > 1);
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
    fn overrides_beat_probes() {
        let health = EndpointHealth::new(true);
        assert!(health.is_usable());
        health.set_probe_up(false);
        assert!(!health.is_usable());
        health.set_admin_override(Override::ForceUp);
        assert!(health.is_usable());
        health.set_probe_up(true);
        health.set_admin_override(Override::Drain);
        assert!(!health.is_usable());
    }

    #[test]
    fn rtt_is_smoothed_and_counters_kept() {
        let health = EndpointHealth::new(true);
        let now = SystemTime::now();
        health.handle_success(Duration::from_micros(1000), 100, now);
        assert_eq!(health.rtt_us(), Some(1000));
        health.handle_success(Duration::from_micros(2000), 50, now);
        assert_eq!(health.rtt_us(), Some(1300));
        assert_eq!(health.weight_percent(), 50);
        health.handle_failure(FailureReason::Timeout, "slow", now);
        assert_eq!(health.probes_total(), 3);
        assert_eq!(health.failures(FailureReason::Timeout), 1);
        let status = health.probe_status();
        assert_eq!(status.consecutive_failures, 1);
        assert_eq!(status.consecutive_successes, 0);
        assert_eq!(status.last_error.as_deref(), Some("slow"));
    }

    #[test]
    fn registry_keeps_identity() {
        let registry = HealthRegistry::default();
        let a = registry.record("eu/192.0.2.1", true);
        a.set_probe_up(false);
        let b = registry.record("eu/192.0.2.1", true);
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!b.probe_up());
    }

    #[test]
    fn pool_override_applies_to_later_records_and_yields_to_endpoint_override() {
        let registry = HealthRegistry::default();
        let a = registry.record("eu/192.0.2.1", true);
        let other = registry.record("us/192.0.2.9", true);
        registry.set_pool_override("eu", Override::ForceDown);
        assert!(!a.is_usable());
        assert!(other.is_usable());
        // An endpoint that appears in the pool later (a reload) gets it too.
        let b = registry.record("eu/192.0.2.2", true);
        assert_eq!(b.pool_override(), Override::ForceDown);
        assert!(!b.is_usable());
        // The endpoint's own override wins.
        b.set_admin_override(Override::ForceUp);
        assert!(b.is_usable());
        registry.set_pool_override("eu", Override::None);
        assert!(a.is_usable());
        assert!(registry.pool_overrides().is_empty());
    }
}

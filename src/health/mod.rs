//! Endpoint health: one record of inputs per endpoint (the probes'
//! verdict, overrides, RTT, weight factor, counters), kept in the
//! [`HealthTable`], which publishes their effective state as immutable
//! [`HealthView`]s for the query path (see `table`).
//!
//! Records are keyed by endpoint identity (pool name and target) and
//! outlive snapshots: a reload gets the same [`EndpointId`] and record for
//! the same endpoint, so health and overrides survive unrelated config
//! changes. Only this module writes records; everyone else reads them.
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
mod split;
mod state;
mod table;

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

pub use check::{CheckSet, CheckSpec, JsonSpec, LinearReduce, build_checks};
pub use monitor::{EndpointStatus, HealthMonitor, LatenessSummary};
pub use plan::{
    HealthSettings, PlannedEndpoint, Probe, ProbePlan, ProbeTarget, build_health_settings,
    plan_probe, resolve_pool_check,
};
pub use probe::{FailureReason, ProbeOutcome, Prober, evaluate_json};
pub(crate) use probe::{ensure_crypto_provider, error_chain, verifying_tls};
pub use split::{MAX_SPLIT, SPLIT_RANGE, ServiceSplits, Split, split_position};
pub use state::Hysteresis;
pub use table::{EndpointId, EndpointState, HealthTable, HealthView, MeasuredOrder};

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

/// Cluster quorum values stored in [`EndpointHealth`]: no quorum (follow
/// this member's probes), or the cluster's verdict.
const QUORUM_NONE: u8 = 0;
const QUORUM_UP: u8 = 1;
const QUORUM_DOWN: u8 = 2;

/// No operator weight: the configured weight applies.
const NO_OPERATOR_WEIGHT: u32 = u32::MAX;

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

/// The inputs of one endpoint's health, written by this module only (the
/// [`HealthTable`] publishes what answers use). Atomics, so control-plane
/// readers (status, metrics) never block writers.
#[derive(Debug)]
pub struct EndpointHealth {
    /// Its id in the table.
    id: EndpointId,
    probe: AtomicU8,
    admin: AtomicU8,
    /// The override of the endpoint's pool (see [`HealthTable::set_pool_override`]);
    /// an endpoint's own override, when set, wins.
    pool_admin: AtomicU8,
    /// Smoothed probe round-trip time in microseconds (0 = not measured).
    rtt_us: AtomicU32,
    /// Weight factor in percent, lowered while a JSON health body reports load.
    weight_percent: AtomicU8,
    /// Whether `fastest` selection prefers it in its pool.
    preferred: AtomicBool,
    // --- cluster and operator inputs (see `cluster`, `operator`) ---
    /// The cluster's quorum over every live member's verdict
    /// ([`QUORUM_NONE`] standalone, or while the store is unreachable).
    quorum: AtomicU8,
    /// The operator's runtime weight ([`NO_OPERATOR_WEIGHT`]: the configured one).
    operator_weight: AtomicU32,
    /// The operator's weight factor of the endpoint's pool, in percent.
    pool_weight_percent: AtomicU8,
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
    fn new(id: EndpointId, initially_up: bool) -> Self {
        Self {
            id,
            probe: AtomicU8::new(if initially_up { PROBE_UP } else { PROBE_DOWN }),
            admin: AtomicU8::new(Override::None.to_u8()),
            pool_admin: AtomicU8::new(Override::None.to_u8()),
            rtt_us: AtomicU32::new(0),
            weight_percent: AtomicU8::new(FULL_WEIGHT_PERCENT),
            preferred: AtomicBool::new(false),
            quorum: AtomicU8::new(QUORUM_NONE),
            operator_weight: AtomicU32::new(NO_OPERATOR_WEIGHT),
            pool_weight_percent: AtomicU8::new(FULL_WEIGHT_PERCENT),
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

    /// Its id in the table.
    pub fn id(&self) -> EndpointId {
        self.id
    }

    /// Weight factor in percent (100 unless a JSON health body reported load).
    pub fn weight_percent(&self) -> u8 {
        self.weight_percent.load(Ordering::Relaxed)
    }

    /// Sets the weight factor (clamped to 0..=100); true if it changed.
    fn set_weight_percent(&self, percent: u8) -> bool {
        let percent = percent.min(FULL_WEIGHT_PERCENT);
        self.weight_percent.swap(percent, Ordering::Relaxed) != percent
    }

    /// Whether `fastest` selection prefers it in its pool.
    pub fn preferred(&self) -> bool {
        self.preferred.load(Ordering::Relaxed)
    }

    fn set_preferred(&self, preferred: bool) {
        self.preferred.store(preferred, Ordering::Relaxed);
    }

    /// Records a successful probe: counters, RTT average and weight factor;
    /// true if the weight factor changed.
    fn handle_success(&self, rtt: Duration, weight_percent: u8, now: SystemTime) -> bool {
        self.probes_total.fetch_add(1, Ordering::Relaxed);
        let sample = u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX).max(1);
        let smoothed = match self.rtt_us() {
            None => sample,
            Some(old) => {
                (u64::from(old) * (10 - RTT_EWMA_NEW_TENTHS) + sample * RTT_EWMA_NEW_TENTHS) / 10
            }
        };
        self.set_rtt_us(u32::try_from(smoothed).unwrap_or(u32::MAX));
        let weight_changed = self.set_weight_percent(weight_percent);
        let mut status = self.lock_status();
        status.last_probe_at = Some(now);
        status.consecutive_successes = status.consecutive_successes.saturating_add(1);
        status.consecutive_failures = 0;
        weight_changed
    }

    /// Records a failed probe: counters and the error text.
    fn handle_failure(&self, reason: FailureReason, error: &str, now: SystemTime) {
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

    /// Records a new probe verdict and when it changed; true if it did.
    fn handle_verdict(&self, up: bool, now: SystemTime) -> bool {
        let changed = self.set_probe_up(up);
        if changed {
            self.lock_status().state_since = now;
        }
        changed
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

    /// Whether answers may name this endpoint: the operator's override
    /// first, else the verdict ([`Self::verdict_up`]).
    pub fn is_usable(&self) -> bool {
        match self.effective_override() {
            Override::ForceUp => true,
            Override::ForceDown | Override::Drain => false,
            Override::None => self.verdict_up(),
        }
    }

    /// The verdict answers follow before overrides: the cluster's quorum
    /// when there is one, else this member's probes.
    pub fn verdict_up(&self) -> bool {
        match self.quorum.load(Ordering::Relaxed) {
            QUORUM_UP => true,
            QUORUM_DOWN => false,
            _ => self.probe_up(),
        }
    }

    /// This member's probes' current verdict.
    pub fn probe_up(&self) -> bool {
        self.probe.load(Ordering::Relaxed) == PROBE_UP
    }

    /// The cluster's verdict, when a quorum decides.
    pub fn quorum_verdict(&self) -> Option<bool> {
        match self.quorum.load(Ordering::Relaxed) {
            QUORUM_UP => Some(true),
            QUORUM_DOWN => Some(false),
            _ => None,
        }
    }

    /// Sets (`None`: clears) the cluster's verdict; true if it changed.
    fn set_quorum_verdict(&self, verdict: Option<bool>) -> bool {
        let value = match verdict {
            Some(true) => QUORUM_UP,
            Some(false) => QUORUM_DOWN,
            None => QUORUM_NONE,
        };
        self.quorum.swap(value, Ordering::Relaxed) != value
    }

    /// The operator's runtime weight, if one is set.
    pub fn operator_weight(&self) -> Option<u32> {
        match self.operator_weight.load(Ordering::Relaxed) {
            NO_OPERATOR_WEIGHT => None,
            weight => Some(weight),
        }
    }

    /// Sets (`None`: clears) the operator's runtime weight; true if it changed.
    fn set_operator_weight(&self, weight: Option<u32>) -> bool {
        let value = weight.map_or(NO_OPERATOR_WEIGHT, |w| w.min(NO_OPERATOR_WEIGHT - 1));
        self.operator_weight.swap(value, Ordering::Relaxed) != value
    }

    /// The operator's weight factor of the endpoint's pool, in percent.
    pub fn pool_weight_percent(&self) -> u8 {
        self.pool_weight_percent.load(Ordering::Relaxed)
    }

    fn set_pool_weight_percent(&self, percent: u8) -> bool {
        let percent = percent.min(FULL_WEIGHT_PERCENT);
        self.pool_weight_percent.swap(percent, Ordering::Relaxed) != percent
    }

    /// Records the probes' verdict; true if it changed.
    fn set_probe_up(&self, up: bool) -> bool {
        let value = if up { PROBE_UP } else { PROBE_DOWN };
        self.probe.swap(value, Ordering::Relaxed) != value
    }

    /// The operator override in force.
    pub fn admin_override(&self) -> Override {
        Override::from_u8(self.admin.load(Ordering::Relaxed))
    }

    /// Sets or clears the operator override; true if it changed.
    fn set_admin_override(&self, value: Override) -> bool {
        self.admin.swap(value.to_u8(), Ordering::Relaxed) != value.to_u8()
    }

    // --- pool overrides (admin API) ---

    /// The override of the endpoint's pool.
    pub fn pool_override(&self) -> Override {
        Override::from_u8(self.pool_admin.load(Ordering::Relaxed))
    }

    /// The override in force: the endpoint's own, else its pool's.
    pub fn effective_override(&self) -> Override {
        match Override::from_u8(self.admin.load(Ordering::Relaxed)) {
            Override::None => Override::from_u8(self.pool_admin.load(Ordering::Relaxed)),
            own => own,
        }
    }

    fn set_pool_override(&self, value: Override) -> bool {
        self.pool_admin.swap(value.to_u8(), Ordering::Relaxed) != value.to_u8()
    }

    /// Smoothed RTT in microseconds, if measured.
    pub fn rtt_us(&self) -> Option<u32> {
        match self.rtt_us.load(Ordering::Relaxed) {
            0 => None,
            rtt => Some(rtt),
        }
    }

    /// Stores the smoothed RTT.
    fn set_rtt_us(&self, rtt_us: u32) {
        self.rtt_us.store(rtt_us.max(1), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> EndpointHealth {
        EndpointHealth::new(EndpointId::default(), true)
    }

    #[test]
    fn overrides_beat_probes() {
        let health = record();
        assert!(health.is_usable());
        assert!(health.set_probe_up(false));
        assert!(!health.is_usable());
        health.set_admin_override(Override::ForceUp);
        assert!(health.is_usable());
        health.set_probe_up(true);
        health.set_admin_override(Override::Drain);
        assert!(!health.is_usable());
    }

    #[test]
    fn the_quorum_decides_before_the_local_verdict_and_overrides_before_both() {
        let health = record();
        assert!(health.set_quorum_verdict(Some(true)));
        health.set_probe_up(false);
        assert!(health.is_usable(), "the quorum says up");
        health.set_quorum_verdict(Some(false));
        health.set_probe_up(true);
        assert!(
            !health.is_usable(),
            "a local verdict does not beat the quorum"
        );
        health.set_admin_override(Override::ForceUp);
        assert!(health.is_usable());
        health.set_admin_override(Override::None);
        assert!(health.set_quorum_verdict(None));
        assert!(health.is_usable(), "back on this member's own verdict");
    }

    #[test]
    fn rtt_is_smoothed_and_counters_kept() {
        let health = record();
        let now = SystemTime::now();
        assert!(!health.handle_success(Duration::from_micros(1000), 100, now));
        assert_eq!(health.rtt_us(), Some(1000));
        assert!(health.handle_success(Duration::from_micros(2000), 50, now));
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
}

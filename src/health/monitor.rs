//! Runs the probers: one tokio task per probed endpoint, probing at the
//! check's interval with random jitter, at most `max_concurrent_probes` at
//! once. Verdicts pass through [`Hysteresis`] into the [`HealthTable`]
//! (the endpoint's record), the only thing probers write.
//!
//! On reload the new plan is diffed against the running one: an endpoint
//! whose key, check definition and target are unchanged keeps its task;
//! removed ones stop; new or changed ones start from the record's current
//! state, so health survives reloads.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::runtime::Handle;
use tokio::sync::{Notify, Semaphore};
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::plan::{PlannedEndpoint, Probe, ProbePlan};
use super::probe::{FailureReason, ProbeOutcome, Prober};
use super::state::Hysteresis;
use super::{EndpointHealth, HealthTable, Override};
use crate::hash::{SplitMix64, hash_str};

/// Starts, re-plans and reports on the probers.
#[derive(Debug)]
pub struct HealthMonitor {
    /// Where verdicts go.
    table: Arc<HealthTable>,
    inner: Mutex<Inner>,
    shared: Arc<Shared>,
}

/// What the probe tasks share.
#[derive(Debug)]
struct Shared {
    /// Global bound on probes in flight.
    semaphore: Semaphore,
    /// How late probes start against their schedule.
    lateness: LatenessHistogram,
    /// Probers that have not yet reported once (first round).
    first_round_pending: AtomicUsize,
    /// Signalled when `first_round_pending` reaches zero.
    first_round_done: Notify,
}

#[derive(Debug, Default)]
struct Inner {
    /// Set by `start`; tasks are spawned only once it is.
    runtime: Option<Handle>,
    /// Whether the first round skips jitter (wait_for_first_round).
    first_round_immediate: bool,
    /// Permits currently in the semaphore's budget.
    permits: usize,
    /// The plan last applied.
    plan: ProbePlan,
    /// Running probe tasks by endpoint key.
    running: HashMap<String, Running>,
}

#[derive(Debug)]
struct Running {
    probe: Probe,
    task: AbortHandle,
}

/// One endpoint's health as the admin API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct EndpointStatus {
    /// Endpoint identity, `pool/target`.
    pub key: String,
    /// Check name, if probed.
    pub check: Option<String>,
    /// Probe target (URL or `tcp://addr`), if probed.
    pub target: Option<String>,
    /// Whether answers may name it (probes and override combined).
    pub usable: bool,
    /// The probes' verdict: `up` or `down`.
    pub state: &'static str,
    /// Operator override: `none`, `force-up`, `force-down` or `drain`.
    #[serde(rename = "override")]
    pub admin_override: &'static str,
    /// Since when (Unix seconds) the probe verdict holds.
    pub state_since_unix: f64,
    /// Smoothed probe RTT in microseconds.
    pub rtt_us: Option<u32>,
    /// Weight factor in percent (JSON health bodies lower it).
    pub weight_percent: u8,
    /// Last failure text.
    pub last_error: Option<String>,
    /// Last failure category.
    pub last_error_reason: Option<FailureReason>,
    /// When the last failure happened (Unix seconds).
    pub last_error_unix: Option<f64>,
    /// When the last probe finished (Unix seconds).
    pub last_probe_unix: Option<f64>,
    /// Successes in a row.
    pub consecutive_successes: u32,
    /// Failures in a row.
    pub consecutive_failures: u32,
    /// Probes finished.
    pub probes_total: u64,
    /// Failures by reason.
    pub failures: HashMap<&'static str, u64>,
}

/// Percentiles of probe start lateness against schedule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LatenessSummary {
    /// Probes counted.
    pub count: u64,
    /// Median lateness.
    pub p50: Duration,
    /// 99th percentile lateness.
    pub p99: Duration,
    /// Largest lateness (bucket bound).
    pub max: Duration,
}

impl HealthMonitor {
    /// A monitor with no plan and no tasks, writing verdicts to `table`.
    pub fn new(table: Arc<HealthTable>) -> Self {
        Self {
            table,
            inner: Mutex::new(Inner::default()),
            shared: Arc::new(Shared {
                semaphore: Semaphore::new(0),
                lateness: LatenessHistogram::default(),
                first_round_pending: AtomicUsize::new(0),
                first_round_done: Notify::new(),
            }),
        }
    }

    /// Starts probing on `runtime` with the plan last given to [`Self::replan`].
    pub fn start(&self, runtime: Handle) {
        let mut inner = self.lock();
        if inner.runtime.is_some() {
            return;
        }
        inner.first_round_immediate = inner.plan.settings.wait_for_first_round;
        inner.runtime = Some(runtime);
        let plan = inner.plan.clone();
        let probed = plan.endpoints.iter().filter(|e| e.probe.is_some()).count();
        self.shared
            .first_round_pending
            .store(probed, Ordering::SeqCst);
        if probed == 0 {
            self.shared.first_round_done.notify_waiters();
        }
        self.apply(&mut inner, plan, true);
    }

    /// Takes a new plan: unchanged probers keep running, removed ones stop,
    /// new or changed ones start. Before [`Self::start`] it only stores it.
    pub fn replan(&self, plan: &ProbePlan) {
        let mut inner = self.lock();
        self.apply(&mut inner, plan.clone(), false);
    }

    /// Waits until every prober started by [`Self::start`] has reported once,
    /// or `limit` passed. Returns whether all reported.
    pub async fn wait_first_round(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            let notified = self.shared.first_round_done.notified();
            if self.shared.first_round_pending.load(Ordering::SeqCst) == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.shared.first_round_pending.load(Ordering::SeqCst) == 0;
            }
        }
    }

    /// Every planned endpoint's health, in configuration order.
    pub fn status(&self) -> Vec<EndpointStatus> {
        let inner = self.lock();
        inner.plan.endpoints.iter().map(endpoint_status).collect()
    }

    /// Lateness of probe starts against their schedule, since start.
    pub fn lateness(&self) -> LatenessSummary {
        self.shared.lateness.summary()
    }

    /// Number of running probe tasks.
    pub fn running(&self) -> usize {
        self.lock().running.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Inner is consistent between statements; a panic elsewhere leaves it usable.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn apply(&self, inner: &mut Inner, plan: ProbePlan, first_round: bool) {
        let wanted = plan.settings.max_concurrent_probes;
        if inner.runtime.is_some() && wanted != inner.permits {
            if wanted > inner.permits {
                self.shared.semaphore.add_permits(wanted - inner.permits);
                inner.permits = wanted;
            } else {
                // Only idle permits can be forgotten; the rest go when the
                // next re-plan runs with fewer probes in flight.
                let forgotten = self.shared.semaphore.forget_permits(inner.permits - wanted);
                inner.permits -= forgotten;
            }
        }
        if let Some(runtime) = inner.runtime.clone() {
            let mut keep: HashMap<String, Running> = HashMap::new();
            let (mut started, mut stopped) = (0usize, 0usize);
            for endpoint in &plan.endpoints {
                let Some(probe) = &endpoint.probe else {
                    continue;
                };
                match inner.running.remove(&endpoint.key) {
                    Some(running) if running.probe == *probe => {
                        keep.insert(endpoint.key.clone(), running);
                    }
                    previous => {
                        if let Some(previous) = previous {
                            previous.task.abort();
                            stopped += 1;
                        }
                        let task = runtime.spawn(run_prober(
                            self.shared.clone(),
                            self.table.clone(),
                            endpoint.key.clone(),
                            endpoint.health.clone(),
                            probe.clone(),
                            first_round,
                            first_round && inner.first_round_immediate,
                        ));
                        started += 1;
                        keep.insert(
                            endpoint.key.clone(),
                            Running {
                                probe: probe.clone(),
                                task: task.abort_handle(),
                            },
                        );
                    }
                }
            }
            for (_, removed) in inner.running.drain() {
                removed.task.abort();
                stopped += 1;
            }
            inner.running = keep;
            tracing::info!(
                probers = inner.running.len(),
                started,
                stopped,
                "health probers planned"
            );
        }
        inner.plan = plan;
    }
}

impl Drop for HealthMonitor {
    fn drop(&mut self) {
        for running in self.lock().running.values() {
            running.task.abort();
        }
    }
}

/// One endpoint's prober: sleep to the next slot, take a permit, probe,
/// judge, record; forever (until aborted).
async fn run_prober(
    shared: Arc<Shared>,
    table: Arc<HealthTable>,
    key: String,
    health: Arc<EndpointHealth>,
    probe: Probe,
    mut first_round: bool,
    immediate: bool,
) {
    let check = probe.check.clone();
    let prober = Prober::new(check.clone(), probe.target.clone(), probe.source);
    let mut hysteresis = Hysteresis::new(check.rise, check.fall, health.probe_up());
    let seed = hash_str(&key)
        ^ SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
    let mut rng = SplitMix64(seed);
    let jitter_span = check.interval.mul_f64(check.jitter);
    // Each prober's grid starts at a random phase of the interval, so that
    // thousands of probers spread over the whole interval instead of firing
    // together; jitter then moves each probe a little off its grid point.
    let phase = if immediate {
        Duration::ZERO
    } else {
        check.interval.mul_f64(unit_random(&mut rng))
    };
    let start = Instant::now() + phase;
    let mut tick: u32 = 0;
    let mut scheduled = start;
    loop {
        tokio::time::sleep_until(scheduled).await;
        let Ok(permit) = shared.semaphore.acquire().await else {
            return; // the semaphore is never closed; stop quietly if it is
        };
        shared
            .lateness
            .record(Instant::now().saturating_duration_since(scheduled));
        let outcome = prober.probe().await;
        drop(permit);
        let now = SystemTime::now();
        let reason = match &outcome {
            ProbeOutcome::Success {
                rtt,
                weight_percent,
            } => {
                table.handle_success(&health, *rtt, *weight_percent, now);
                format!("probe ok in {rtt:?}")
            }
            ProbeOutcome::Failure { reason, error } => {
                tracing::debug!(endpoint = %key, target = %probe.target, reason = reason.as_str(), error = %error, "probe failed");
                table.handle_failure(&health, *reason, error, now);
                format!("{}: {error}", reason.as_str())
            }
        };
        let verdict = if first_round && immediate {
            // gdnsd style: when serving waits for the first round, its result
            // is the initial state, without rise/fall.
            let ok = outcome.is_success();
            hysteresis = Hysteresis::new(check.rise, check.fall, ok);
            (health.probe_up() != ok).then_some(ok)
        } else {
            hysteresis.handle_result(outcome.is_success())
        };
        if let Some(up) = verdict {
            table.handle_verdict(&health, up, now);
            tracing::info!(
                endpoint = %key,
                state = if up { "up" } else { "down" },
                reason = %reason,
                "endpoint health changed"
            );
        }
        if first_round {
            first_round = false;
            if shared.first_round_pending.fetch_sub(1, Ordering::SeqCst) == 1 {
                shared.first_round_done.notify_waiters();
            }
        }
        // Next slot: the next grid point after now, plus fresh jitter, so a
        // slow probe skips missed slots instead of bunching them.
        let elapsed = Instant::now().saturating_duration_since(start);
        // (`start` may lie ahead of a fast first probe; then elapsed is 0.)
        let interval_ns = check.interval.as_nanos().max(1);
        tick = tick.max(u32::try_from(elapsed.as_nanos() / interval_ns).unwrap_or(u32::MAX)) + 1;
        scheduled = start + check.interval * tick + jitter_span.mul_f64(unit_random(&mut rng));
    }
}

/// A uniform value in [0, 1).
fn unit_random(rng: &mut SplitMix64) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

fn endpoint_status(endpoint: &PlannedEndpoint) -> EndpointStatus {
    let health = &endpoint.health;
    let status = health.probe_status();
    let unix = |t: SystemTime| {
        t.duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64())
    };
    EndpointStatus {
        key: endpoint.key.clone(),
        check: endpoint.probe.as_ref().map(|p| p.check.name.clone()),
        target: endpoint.probe.as_ref().map(|p| p.target.to_string()),
        usable: health.is_usable(),
        state: if health.probe_up() { "up" } else { "down" },
        admin_override: match health.admin_override() {
            Override::None => "none",
            Override::ForceUp => "force-up",
            Override::ForceDown => "force-down",
            Override::Drain => "drain",
        },
        state_since_unix: unix(status.state_since),
        rtt_us: health.rtt_us(),
        weight_percent: health.weight_percent(),
        last_error: status.last_error,
        last_error_reason: status.last_error_reason,
        last_error_unix: status.last_error_at.map(unix),
        last_probe_unix: status.last_probe_at.map(unix),
        consecutive_successes: status.consecutive_successes,
        consecutive_failures: status.consecutive_failures,
        probes_total: health.probes_total(),
        failures: FailureReason::ALL
            .iter()
            .map(|&r| (r.as_str(), health.failures(r)))
            .collect(),
    }
}

/// Sub-buckets per power of two (12.5% resolution).
const SUB_BUCKETS: usize = 8;
/// Buckets: exact values below 8 µs, then 8 per power of two up to 2^40 µs.
const BUCKETS: usize = SUB_BUCKETS + 40 * SUB_BUCKETS;

/// A lock-free log-linear histogram of durations in microseconds.
#[derive(Debug)]
struct LatenessHistogram {
    buckets: Box<[AtomicU64]>,
}

impl Default for LatenessHistogram {
    fn default() -> Self {
        Self {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl LatenessHistogram {
    fn record(&self, value: Duration) {
        let us = u64::try_from(value.as_micros()).unwrap_or(u64::MAX);
        let index = bucket_of(us).min(BUCKETS - 1);
        if let Some(bucket) = self.buckets.get(index) {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn summary(&self) -> LatenessSummary {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let count: u64 = counts.iter().sum();
        if count == 0 {
            return LatenessSummary::default();
        }
        let quantile = |q: f64| -> Duration {
            let rank = ((count as f64 * q).ceil() as u64).max(1);
            let mut seen = 0;
            for (index, &c) in counts.iter().enumerate() {
                seen += c;
                if seen >= rank {
                    return Duration::from_micros(bucket_upper(index));
                }
            }
            Duration::from_micros(bucket_upper(BUCKETS - 1))
        };
        LatenessSummary {
            count,
            p50: quantile(0.5),
            p99: quantile(0.99),
            max: quantile(1.0),
        }
    }
}

fn bucket_of(us: u64) -> usize {
    if us < SUB_BUCKETS as u64 {
        return us as usize;
    }
    let exponent = 63 - us.leading_zeros() as usize; // >= 3
    let sub = ((us >> (exponent - 3)) & 7) as usize;
    SUB_BUCKETS + (exponent - 3) * SUB_BUCKETS + sub
}

/// Largest value (µs) falling in bucket `index`.
fn bucket_upper(index: usize) -> u64 {
    if index < SUB_BUCKETS {
        return index as u64;
    }
    let exponent = (index - SUB_BUCKETS) / SUB_BUCKETS + 3;
    let sub = ((index - SUB_BUCKETS) % SUB_BUCKETS) as u64;
    ((8 + sub + 1) << (exponent - 3)) - 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CheckKind;
    use crate::health::{CheckSpec, HealthSettings, ProbeTarget};

    fn tcp_check(interval_ms: u64) -> Arc<CheckSpec> {
        Arc::new(CheckSpec {
            name: "tcp".to_string(),
            kind: CheckKind::Tcp,
            interval: Duration::from_millis(interval_ms),
            timeout: Duration::from_millis(interval_ms / 2),
            rise: 1,
            fall: 1,
            method: "GET".to_string(),
            path: "/".to_string(),
            port: 1,
            host: None,
            expect_status: vec![(200, 399)],
            body_contains: None,
            tls_verify: true,
            initial_up: false,
            jitter: 0.1,
            json: None,
        })
    }

    fn endpoint(
        table: &HealthTable,
        key: &str,
        check: &Arc<CheckSpec>,
        addr: std::net::SocketAddr,
    ) -> PlannedEndpoint {
        PlannedEndpoint {
            key: key.to_string(),
            health: table.register(key, false).1,
            probe: Some(Probe {
                check: check.clone(),
                target: ProbeTarget::Tcp(addr),
                source: None,
            }),
            check_from: None,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn first_round_probes_and_replan_keeps_unchanged_tasks() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let live = listener.local_addr().unwrap();
        let dead = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let check = tcp_check(100);
        let table = Arc::new(HealthTable::default());
        let a = endpoint(&table, "p/a", &check, live);
        let b = endpoint(&table, "p/b", &check, dead);
        let plan = ProbePlan {
            endpoints: vec![a.clone(), b.clone()],
            settings: HealthSettings {
                wait_for_first_round: true,
                max_concurrent_probes: 4,
            },
        };
        let monitor = HealthMonitor::new(table.clone());
        monitor.replan(&plan);
        monitor.start(Handle::current());
        assert!(monitor.wait_first_round(Duration::from_secs(5)).await);
        // The first round decides directly (rise = 1 anyway here).
        assert!(a.health.probe_up());
        assert!(!b.health.probe_up());
        let status = monitor.status();
        assert_eq!(status.len(), 2);
        assert_eq!(status[0].state, "up");
        assert!(
            status[1]
                .last_error
                .as_deref()
                .is_some_and(|e| e.contains("connect"))
        );
        assert!(status[1].failures["connect"] >= 1);

        // Re-plan: a unchanged, b removed, c new.
        let first_task = monitor.lock().running["p/a"].task.id();
        let c = endpoint(&table, "p/c", &check, live);
        monitor.replan(&ProbePlan {
            endpoints: vec![a.clone(), c.clone()],
            settings: plan.settings,
        });
        {
            let inner = monitor.lock();
            assert_eq!(inner.running.len(), 2);
            assert_eq!(inner.running["p/a"].task.id(), first_task);
            assert!(!inner.running.contains_key("p/b"));
        }
        // A changed check restarts a's task but keeps its record's state.
        let slower = tcp_check(200);
        let mut a2 = a.clone();
        a2.probe = Some(Probe {
            check: slower,
            target: ProbeTarget::Tcp(live),
            source: None,
        });
        monitor.replan(&ProbePlan {
            endpoints: vec![a2, c],
            settings: plan.settings,
        });
        assert_ne!(monitor.lock().running["p/a"].task.id(), first_task);
        assert!(a.health.probe_up());
        drop(listener);
    }

    #[test]
    fn histogram_buckets_are_monotonic_and_tight() {
        let mut last = 0;
        for us in [0u64, 1, 7, 8, 9, 15, 16, 17, 100, 1000, 12_345, 1 << 30] {
            let index = bucket_of(us);
            assert!(index >= last, "{us}");
            last = index;
            let upper = bucket_upper(index);
            assert!(upper >= us, "{us} > {upper}");
            assert!(upper as f64 <= us as f64 * 1.125 + 1.0, "{us} -> {upper}");
        }
    }

    #[test]
    fn histogram_percentiles() {
        let h = LatenessHistogram::default();
        for us in 1..=100u64 {
            h.record(Duration::from_micros(us * 100));
        }
        let s = h.summary();
        assert_eq!(s.count, 100);
        assert!(s.p50 >= Duration::from_micros(5000) && s.p50 < Duration::from_micros(5700));
        assert!(s.p99 >= Duration::from_micros(9900) && s.p99 < Duration::from_micros(11200));
    }
}

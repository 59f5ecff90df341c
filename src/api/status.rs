//! `/status`: every zone, service, pool and endpoint with its health,
//! overrides and share of answers over the last minute, plus recent
//! events (from `events`). The "last minute" figures come from
//! [`StatusHistory`], which samples the answer counters every few seconds.

use std::collections::HashMap;

use serde::Serialize;

use super::history::{StatusHistory, read_counters};
use crate::control::Control;
use crate::health::{EndpointStatus, Override};
use crate::metrics::PoolTotals;
use crate::policy::{Endpoint, EndpointTarget, Pool};

/// The `/status` document.
#[derive(Debug, Serialize)]
pub struct Status {
    /// gslb version.
    pub version: &'static str,
    /// When this document was made (Unix seconds): durations on the page
    /// count from it, not from the browser's clock.
    pub now_unix: f64,
    /// The configuration in service.
    pub config: ConfigStatus,
    /// Whether mutating calls need a bearer token.
    pub auth_required: bool,
    /// Served zones.
    pub zones: Vec<String>,
    /// Dynamic services.
    pub services: Vec<ServiceStatus>,
    /// Every pool used by a service, once, in name order.
    pub pools: Vec<PoolStatus>,
    /// Pool overrides in force (also those of pools not configured now).
    pub pool_overrides: HashMap<String, &'static str>,
    /// Recent events (health, failover, overrides, reloads), newest first,
    /// repeats folded.
    pub events: Vec<crate::events::Event>,
    /// Per zone with transfer settings (by origin): serial, last transfer
    /// in and out, pending NOTIFYs.
    pub transfers: std::collections::BTreeMap<String, crate::transfer::ZoneStatus>,
    /// Signed zones: keys (never private parts), expiry, next re-sign.
    pub dnssec: Vec<DnssecStatus>,
    /// Overrides and weights in force and the recent changes (who, when).
    pub operator: super::cluster::OperatorStatus,
    /// The cluster (members, store, config digests), when `[cluster]` is set.
    pub cluster: Option<super::cluster::ClusterStatus>,
    /// The published configuration this member follows (`[cluster]
    /// config = "etcd"`).
    pub fleet: Option<crate::fleet::member::FleetStatus>,
}

/// One signed zone.
#[derive(Debug, Serialize)]
pub struct DnssecStatus {
    /// The zone.
    pub zone: String,
    /// When it was signed (Unix seconds).
    pub signed: i64,
    /// When its signatures expire (Unix seconds).
    pub expires: i64,
    /// When it is signed again (Unix seconds).
    pub next_resign: i64,
    /// Its keys.
    pub keys: Vec<crate::dnssec::KeyStatus>,
}

/// The configuration in service.
#[derive(Debug, Serialize)]
pub struct ConfigStatus {
    /// Its file.
    pub path: String,
    /// When it was loaded (Unix seconds).
    pub loaded_unix: f64,
    /// Successful reloads since start.
    pub reloads_ok: u64,
    /// Failed reloads since start.
    pub reloads_failed: u64,
    /// Whether file watching is on.
    pub watch: bool,
}

/// One service.
#[derive(Debug, Serialize)]
pub struct ServiceStatus {
    /// Name.
    pub name: String,
    /// How pools are ordered.
    pub policy: String,
    /// How endpoints are picked.
    pub selection: String,
    /// Answer TTL.
    pub ttl: u32,
    /// What happens when all pools are down.
    pub all_down: String,
    /// Answers in the last minute.
    pub answers_last_minute: u64,
    /// Failover answers in the last minute.
    pub failovers_last_minute: u64,
    /// Its pools in configuration order, with their share of its answers.
    pub pools: Vec<PoolStatus>,
    /// Load-aware spill-over, when the service has it.
    pub spill: Option<SpillStatus>,
}

/// A load-aware service's spill-over as planned now.
#[derive(Debug, Serialize)]
pub struct SpillStatus {
    /// `capacity` or `ordered`.
    pub mode: &'static str,
    /// For each pool order with a split: where its clients go and why.
    pub splits: Vec<crate::load::SplitReport>,
}

/// One pool.
#[derive(Debug, Clone, Serialize)]
pub struct PoolStatus {
    /// Name.
    pub name: String,
    /// Used only when all primaries are down.
    pub backup: bool,
    /// `[latitude, longitude]`, when configured.
    pub coordinates: Option<[f64; 2]>,
    /// The pool override (`none`, `force-up`, `force-down`, `drain`).
    #[serde(rename = "override")]
    pub pool_override: &'static str,
    /// Healthy endpoints now.
    pub healthy: usize,
    /// Answers from this pool in the last minute (of the service, inside a
    /// service; of all services, at the top level).
    pub answers_last_minute: u64,
    /// Those answers as a percentage of the service's (inside a service),
    /// or of the answers of all services listing the pool (top level).
    pub share_percent: Option<f64>,
    /// Failover answers from this pool in the last minute.
    pub failovers_last_minute: u64,
    /// Declared capacity.
    pub capacity: Option<f64>,
    /// Own demand learned from answers, per second.
    pub demand_per_second: f64,
    /// All answers it gives, per second (own and spilled-in).
    pub load_per_second: f64,
    /// Its endpoints.
    pub endpoints: Vec<EndpointView>,
}

/// One endpoint.
#[derive(Debug, Clone, Serialize)]
pub struct EndpointView {
    /// Identity, `pool/target`: what `POST /override` takes.
    pub key: String,
    /// Address or CNAME target.
    pub target: String,
    /// Configured weight.
    pub weight: u32,
    /// `down = true` in the configuration.
    pub config_down: bool,
    /// Whether answers may name it now.
    pub usable: bool,
    /// One word for people and colours: `up`, `down`, `drain`, `force-up`,
    /// `force-down` or `config-down`.
    pub state: &'static str,
    /// The probes' verdict (`up` or `down`); `up` when not probed.
    pub probe: &'static str,
    /// Whether a check probes it.
    pub probed: bool,
    /// The check's name.
    pub check: Option<String>,
    /// The endpoint's own override.
    #[serde(rename = "override")]
    pub own_override: &'static str,
    /// Its pool's override.
    pub pool_override: &'static str,
    /// The override in force (own, else pool's).
    pub effective_override: &'static str,
    /// Smoothed probe RTT in milliseconds.
    pub rtt_ms: Option<f64>,
    /// Weight factor from JSON health bodies.
    pub weight_percent: u8,
    /// The weight answers are picked by now: `weight` × `weight_percent` / 100.
    pub effective_weight: f64,
    /// Answers naming it since it was configured.
    pub answers_total: u64,
    /// Answers naming it in the last minute.
    pub answers_last_minute: u64,
    /// Its share of the answers the services listing its pool gave in the
    /// last minute, in percent: its part of its pool's answers (of the
    /// records they named, for multi-record answers) times the pool's part
    /// of those services' answers. Answers actually given: a dead
    /// endpoint's share falls as its services answer from elsewhere.
    pub share_percent: Option<f64>,
    /// Last probe failure.
    pub last_error: Option<String>,
    /// Its category.
    pub last_error_reason: Option<String>,
    /// When it happened (Unix seconds).
    pub last_error_unix: Option<f64>,
    /// Since when `state` holds (Unix seconds): an override's since it was
    /// set; otherwise the probe verdict's, or the last override clearing's
    /// when later.
    pub state_since_unix: Option<f64>,
    /// The operator's runtime weight (`POST /weight`), when set.
    pub operator_weight: Option<u32>,
    /// The verdict answers follow before overrides (`up`/`down`): in a
    /// cluster the quorum over every member's verdict, else `probe`.
    pub cluster_verdict: &'static str,
    /// Each live cluster member's verdict (`up`/`down`), by member.
    pub member_verdicts: std::collections::BTreeMap<String, &'static str>,
    /// Whether its probes fail now: the verdict is down or the last probe
    /// failed (the page shows `last_error` only then).
    pub failing: bool,
    /// When the last probe finished (Unix seconds).
    pub last_probe_unix: Option<f64>,
    /// Whether the last probe succeeded.
    pub last_probe_ok: Option<bool>,
    /// Probes finished.
    pub probes_total: u64,
    /// Probes failed, all reasons.
    pub probe_failures_total: u64,
    /// Successes in a row (toward `rise` while the verdict is down).
    pub consecutive_successes: u32,
    /// Failures in a row (toward `fall` while the verdict is up).
    pub consecutive_failures: u32,
    /// How it is probed.
    pub check_settings: Option<CheckSettings>,
}

/// A check as applied to one endpoint.
#[derive(Debug, Clone, Serialize)]
pub struct CheckSettings {
    /// `http`, `https` or `tcp`.
    pub kind: String,
    /// What is probed (URL or `tcp://addr`).
    pub target: String,
    /// Seconds between probes.
    pub interval_secs: f64,
    /// Seconds one probe may take.
    pub timeout_secs: f64,
    /// Successes in a row to come up.
    pub rise: u32,
    /// Failures in a row to go down.
    pub fall: u32,
}

/// Since when an endpoint's shown state holds. An override in force (its
/// own first, else its pool's) holds since it was set, whatever the probes
/// did meanwhile; with none, the state is the probes' verdict, since it
/// last changed or since an override was cleared, whichever is later (a
/// drained endpoint back in service has been up for as long as it has been
/// back, not since its last probe change).
fn state_since(
    own: Override,
    pool: Override,
    probe_since: Option<f64>,
    own_changed: Option<f64>,
    pool_changed: Option<f64>,
) -> Option<f64> {
    let latest = |times: &[Option<f64>]| times.iter().flatten().copied().reduce(f64::max);
    if own != Override::None {
        own_changed.or(probe_since)
    } else if pool != Override::None {
        latest(&[own_changed, pool_changed]).or(probe_since)
    } else {
        latest(&[probe_since, own_changed, pool_changed])
    }
}

fn percent(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| (part as f64 * 1000.0 / whole as f64).round() / 10.0)
}

/// Builds the `/status` document.
pub fn build_status(control: &Control, history: &StatusHistory, auth_required: bool) -> Status {
    let snapshot = control.snapshot();
    let now = read_counters(control);
    let inner = history.lock();
    let load = control.lock_load();
    let base = inner.samples.front();
    let endpoint_window =
        |key: &str, total: u64| total.saturating_sub(base.map_or(0, |b| inner.endpoint_in(b, key)));
    let pool_window = |key: &(String, String)| {
        let total = now.pools.get(key).copied().unwrap_or_default();
        let before = base.map_or_else(PoolTotals::default, |b| inner.pool_in(b, key));
        PoolTotals {
            answers: total.answers.saturating_sub(before.answers),
            failovers: total.failovers.saturating_sub(before.failovers),
            fail_open: total.fail_open.saturating_sub(before.fail_open),
        }
    };
    let probes: HashMap<String, EndpointStatus> = control
        .monitor
        .status()
        .into_iter()
        .map(|s| (s.key.clone(), s))
        .collect();
    let view = control.health.view_arc();
    let cluster_view = control.cluster.as_ref().map(|c| c.view());
    let checks: HashMap<&str, CheckSettings> = snapshot
        .probes
        .endpoints
        .iter()
        .filter_map(|planned| {
            let probe = planned.probe.as_ref()?;
            let check = &probe.check;
            Some((
                planned.key.as_str(),
                CheckSettings {
                    kind: format!("{:?}", check.kind).to_lowercase(),
                    target: probe.target.to_string(),
                    interval_secs: check.interval.as_secs_f64(),
                    timeout_secs: check.timeout.as_secs_f64(),
                    rise: check.rise,
                    fall: check.fall,
                },
            ))
        })
        .collect();
    let endpoint_view = |endpoint: &Endpoint| {
        let health = control.health.record(endpoint.id)?;
        let probe = probes.get(&endpoint.key);
        let effective = health.effective_override();
        let state = if endpoint.config_down {
            "config-down"
        } else {
            match effective {
                Override::ForceDown => "force-down",
                Override::Drain => "drain",
                Override::ForceUp => "force-up",
                Override::None if health.verdict_up() => "up",
                Override::None => "down",
            }
        };
        let answers_total = now.endpoints.get(&endpoint.key).copied().unwrap_or(0);
        Some(EndpointView {
            key: endpoint.key.clone(),
            target: match &endpoint.target {
                EndpointTarget::Address(address) => address.to_string(),
                EndpointTarget::Cname(_) => endpoint
                    .key
                    .split_once('/')
                    .map_or(endpoint.key.clone(), |(_, t)| t.to_string()),
            },
            weight: endpoint.weight,
            config_down: endpoint.config_down,
            usable: endpoint.is_healthy(&view),
            state,
            probe: if health.probe_up() { "up" } else { "down" },
            probed: probe.is_some_and(|p| p.check.is_some()),
            check: probe.and_then(|p| p.check.clone()),
            own_override: health.admin_override().as_str(),
            pool_override: health.pool_override().as_str(),
            effective_override: effective.as_str(),
            rtt_ms: health.rtt_us().map(|us| f64::from(us) / 1000.0),
            weight_percent: health.weight_percent(),
            effective_weight: crate::health::effective_weight(
                view.endpoint(endpoint.id)
                    .operator_weight
                    .unwrap_or(endpoint.weight),
                view.endpoint(endpoint.id).weight_percent,
            ),
            answers_total,
            answers_last_minute: endpoint_window(&endpoint.key, answers_total),
            share_percent: None,
            last_error: probe.and_then(|p| p.last_error.clone()),
            last_error_reason: probe
                .and_then(|p| p.last_error_reason)
                .map(|r| r.as_str().to_string()),
            last_error_unix: probe.and_then(|p| p.last_error_unix),
            state_since_unix: {
                let pool = endpoint.key.split_once('/').map_or("", |(pool, _)| pool);
                let (own_ms, pool_ms) = control.operator.override_changed_ms(&endpoint.key, pool);
                state_since(
                    health.admin_override(),
                    health.pool_override(),
                    probe.map(|p| p.state_since_unix),
                    own_ms.map(|ms| ms as f64 / 1000.0),
                    pool_ms.map(|ms| ms as f64 / 1000.0),
                )
            },
            operator_weight: health.operator_weight(),
            cluster_verdict: if health.verdict_up() { "up" } else { "down" },
            member_verdicts: cluster_view
                .as_ref()
                .map(|view| {
                    super::cluster::verdict_words(crate::cluster::member_verdicts(
                        view,
                        &endpoint.key,
                    ))
                })
                .unwrap_or_default(),
            failing: probe.is_some_and(|p| p.state == "down" || p.consecutive_failures > 0),
            last_probe_unix: probe.and_then(|p| p.last_probe_unix),
            last_probe_ok: probe
                .filter(|p| p.last_probe_unix.is_some())
                .map(|p| p.consecutive_failures == 0),
            probes_total: probe.map_or(0, |p| p.probes_total),
            probe_failures_total: probe.map_or(0, |p| p.failures.values().sum()),
            consecutive_successes: probe.map_or(0, |p| p.consecutive_successes),
            consecutive_failures: probe.map_or(0, |p| p.consecutive_failures),
            check_settings: checks.get(endpoint.key.as_str()).cloned(),
        })
    };
    // Each service's answers in the last minute, by any pool or none.
    let service_answers: HashMap<&str, u64> = snapshot
        .services
        .iter()
        .map(|service| {
            let answers = service
                .pools
                .iter()
                .map(|p| p.name.as_str())
                .chain([""])
                .map(|pool| pool_window(&(service.name.clone(), pool.to_string())).answers)
                .sum();
            (service.name.as_str(), answers)
        })
        .collect();
    // Shares are of the answers of the services that list the pool:
    // answers actually given, so once an endpoint is down and its services
    // answer from elsewhere, its share falls (of its pool's own answers, a
    // dead pool's only endpoint would keep 100 %).
    let listing_answers = |pool: &str| -> u64 {
        snapshot
            .services
            .iter()
            .filter(|s| s.pools.iter().any(|p| p.name == pool))
            .map(|s| service_answers.get(s.name.as_str()).copied().unwrap_or(0))
            .sum()
    };
    let answers_from = |pool: &str| -> u64 {
        snapshot
            .services
            .iter()
            .filter(|s| s.pools.iter().any(|p| p.name == pool))
            .map(|s| pool_window(&(s.name.clone(), pool.to_string())).answers)
            .sum()
    };
    let pool_view = |pool: &Pool| {
        let mut endpoints: Vec<EndpointView> =
            pool.endpoints.iter().filter_map(endpoint_view).collect();
        let pool_answers: u64 = endpoints.iter().map(|e| e.answers_last_minute).sum();
        // An endpoint's part of its pool's answers (an answer of several
        // records names several endpoints: parts of the namings), times the
        // pool's part of its services' answers.
        let (whole, from_pool) = (listing_answers(&pool.name), answers_from(&pool.name));
        for endpoint in &mut endpoints {
            endpoint.share_percent = (whole > 0 && pool_answers > 0).then(|| {
                let share = endpoint.answers_last_minute as f64 / pool_answers as f64
                    * from_pool as f64
                    / whole as f64;
                (share * 1000.0).round() / 10.0
            });
        }
        PoolStatus {
            name: pool.name.clone(),
            backup: pool.backup,
            coordinates: pool.coordinates.map(|(lat, lon)| [lat, lon]),
            pool_override: control.health.pool_override(&pool.name).as_str(),
            healthy: pool
                .endpoints
                .iter()
                .filter(|e| e.is_healthy(&view))
                .count(),
            answers_last_minute: pool_answers,
            share_percent: None,
            failovers_last_minute: 0,
            capacity: pool.capacity,
            demand_per_second: load.demand.demand(&pool.name),
            load_per_second: load.demand.load(&pool.name),
            endpoints,
        }
    };
    let mut all_pools: std::collections::BTreeMap<String, PoolStatus> = Default::default();
    let services = snapshot
        .services
        .iter()
        .map(|service| {
            let mut pools: Vec<PoolStatus> = service.pools.iter().map(|p| pool_view(p)).collect();
            let windows: Vec<PoolTotals> = pools
                .iter()
                .map(|p| pool_window(&(service.name.clone(), p.name.clone())))
                .collect();
            let no_pool = pool_window(&(service.name.clone(), String::new()));
            let answers = windows.iter().map(|w| w.answers).sum::<u64>() + no_pool.answers;
            for (pool, window) in pools.iter_mut().zip(&windows) {
                let overall = all_pools.entry(pool.name.clone()).or_insert_with(|| {
                    let mut overall = pool.clone();
                    overall.answers_last_minute = 0;
                    overall
                });
                overall.failovers_last_minute += window.failovers;
                overall.answers_last_minute += window.answers;
                pool.answers_last_minute = window.answers;
                pool.failovers_last_minute = window.failovers;
                pool.share_percent = percent(window.answers, answers);
            }
            ServiceStatus {
                name: service.name.clone(),
                policy: format!("{:?}", service.route.policy).to_lowercase(),
                selection: format!("{:?}", service.selection).to_lowercase(),
                ttl: service.ttl,
                all_down: match service.all_down {
                    crate::policy::AllDown::FailOpen => "fail-open",
                    crate::policy::AllDown::Nodata => "nodata",
                    crate::policy::AllDown::Servfail => "servfail",
                }
                .to_string(),
                answers_last_minute: answers,
                failovers_last_minute: windows.iter().map(|w| w.failovers).sum(),
                pools,
                spill: load.plans.get(&service.serial).map(|plan| SpillStatus {
                    mode: match plan.spill {
                        crate::policy::spill::Spill::Capacity => "capacity",
                        crate::policy::spill::Spill::Ordered => "ordered",
                    },
                    splits: plan.report(service),
                }),
            }
        })
        .collect();
    for pool in all_pools.values_mut() {
        pool.share_percent = percent(pool.answers_last_minute, listing_answers(&pool.name));
    }
    let (reloads_ok, reloads_failed) = control.metrics.reload_counts();
    Status {
        version: env!("CARGO_PKG_VERSION"),
        now_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64()),
        config: ConfigStatus {
            path: control.source().config_path.display().to_string(),
            loaded_unix: control.metrics.loaded_unix(),
            reloads_ok,
            reloads_failed,
            watch: control.watch_enabled(),
        },
        auth_required,
        zones: snapshot
            .zones
            .iter()
            .map(|z| z.origin_text().to_string())
            .collect(),
        services,
        pools: all_pools.into_values().collect(),
        pool_overrides: control
            .health
            .pool_overrides()
            .into_iter()
            .map(|(pool, value)| (pool, value.as_str()))
            .collect(),
        events: control.events.recent(),
        transfers: control.transfers.status(),
        dnssec: snapshot
            .dnssec
            .signed_zones()
            .map(|z| DnssecStatus {
                zone: z.origin_text().to_string(),
                signed: z.signed_at,
                expires: z.expires,
                next_resign: z.next_resign,
                keys: z.key_status.clone(),
            })
            .collect(),
        operator: super::cluster::operator_status(control),
        cluster: super::cluster::cluster_status(control),
        fleet: control.fleet.as_ref().map(|f| f.status()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_since_follows_the_override_in_force_else_the_later_of_probe_and_clearing() {
        let (probe, own, pool) = (Some(100.0), Some(200.0), Some(300.0));
        let cases = [
            // Own override in force: since it was set, whatever the probes.
            (Override::Drain, Override::None, Some(50.0), own, None, own),
            (
                Override::ForceUp,
                Override::Drain,
                Some(500.0),
                own,
                pool,
                own,
            ),
            // The pool's: since it was set, or since the own one was
            // cleared after it.
            (Override::None, Override::Drain, probe, None, pool, pool),
            (
                Override::None,
                Override::Drain,
                probe,
                Some(400.0),
                pool,
                Some(400.0),
            ),
            // None: the probe verdict's, unless an override was cleared later.
            (Override::None, Override::None, probe, None, None, probe),
            (Override::None, Override::None, probe, own, None, own),
            (
                Override::None,
                Override::None,
                Some(900.0),
                own,
                pool,
                Some(900.0),
            ),
            // Nothing known.
            (Override::None, Override::None, None, None, None, None),
        ];
        for (own_now, pool_now, probe_since, own_at, pool_at, want) in cases {
            assert_eq!(
                state_since(own_now, pool_now, probe_since, own_at, pool_at),
                want,
                "{own_now:?} {pool_now:?} {probe_since:?} {own_at:?} {pool_at:?}"
            );
        }
    }
}

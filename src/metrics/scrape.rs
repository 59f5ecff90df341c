//! The `/metrics` scrape: every family in the OpenMetrics text format
//! (`prometheus-client`), from the counters and the inputs its caller
//! gathers ([`ScrapeInputs`]); it reaches for nothing else.

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::process::ProcessFigures;
use super::{
    Metrics, PoolTotals, QTYPE_CELLS, QTYPES, RCODES, SlotCells, TRANSPORTS, ms_to_secs, unix_ms,
};
use crate::cluster::ClusterView;
use crate::fleet::member::FleetStatus;
use crate::health::{FailureReason, HealthView, Override};
use crate::querylog::QueryLogCounts;
use crate::snapshot::Snapshot;
use crate::transfer::ZoneStatus;

/// Content type of [`render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Renders every metric in the OpenMetrics text format.
///
/// # Errors
/// Only a formatting error of the encoder (not expected with a `String`).
pub fn render(inputs: ScrapeInputs) -> Result<String, std::fmt::Error> {
    let mut registry = prometheus_client::registry::Registry::default();
    registry.register_collector(Box::new(Scrape(inputs)));
    let mut out = String::with_capacity(16 * 1024);
    prometheus_client::encoding::text::encode(&mut out, &registry)?;
    Ok(out)
}

/// Everything a scrape reads besides the process's own figures, gathered by
/// its caller (owned: the encoder's collectors are `'static`).
pub struct ScrapeInputs {
    /// The counters.
    pub metrics: Arc<Metrics>,
    /// The snapshot in service (zones, services, endpoints, signatures).
    pub snapshot: Arc<Snapshot>,
    /// The health view in service.
    pub health: Arc<HealthView>,
    /// Per pool name, its own demand and its load learned from answers
    /// (answers per second; load-aware answers).
    pub pool_demand: HashMap<String, (f64, f64)>,
    /// The query log's counters.
    pub query_log: QueryLogCounts,
    /// Zone transfer status by zone.
    pub transfers: BTreeMap<String, ZoneStatus>,
    /// What this member knows of its cluster, and the write requests and
    /// keys written it sent to the store (none without `[cluster]`).
    pub cluster: Option<(ClusterView, u64, u64)>,
    /// A fleet member's published-configuration figures (none unless
    /// `config = "etcd"`).
    pub fleet: Option<FleetFigures>,
}

/// What `/metrics` shows of a fleet member's published configuration.
pub struct FleetFigures {
    /// Its state (version, newest, failed version, local files).
    pub status: FleetStatus,
    /// Versions that failed to build on it since it started.
    pub failures: u64,
    /// Live members more than one version behind for over a minute
    /// (`None` without a cluster view).
    pub members_lagging: Option<usize>,
}

/// The collector run on each scrape.
struct Scrape(ScrapeInputs);

impl std::fmt::Debug for Scrape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Scrape")
    }
}

type Labels = Vec<(&'static str, String)>;

/// Writes one metric family from `(labels, value)` rows.
fn family<V>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    kind: MetricType,
    rows: impl IntoIterator<Item = (Labels, V)>,
) -> Result<(), std::fmt::Error>
where
    V: prometheus_client::encoding::EncodeCounterValue
        + prometheus_client::encoding::EncodeGaugeValue,
{
    let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, value) in rows {
        if labels.is_empty() {
            // A metric without labels is written bare (`name 1`, not `name{} 1`).
            return match kind {
                MetricType::Counter => ConstCounter::new(value).encode(metric),
                _ => ConstGauge::new(value).encode(metric),
            };
        }
        let encoder = metric.encode_family(&labels)?;
        match kind {
            MetricType::Counter => ConstCounter::new(value).encode(encoder)?,
            _ => ConstGauge::new(value).encode(encoder)?,
        }
    }
    Ok(())
}

impl prometheus_client::collector::Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let inputs = &self.0;
        let metrics = &inputs.metrics;
        let e = &mut encoder;

        // --- build and process ---
        let info = vec![("version", env!("CARGO_PKG_VERSION").to_string())];
        let mut metric = e.encode_descriptor(
            "gslb_build",
            "gslb build information",
            None,
            MetricType::Info,
        )?;
        metric.encode_info(&info)?;
        let process = ProcessFigures::read();
        family(
            e,
            "process_cpu_seconds",
            "user and system CPU time",
            MetricType::Counter,
            [(vec![], process.cpu_seconds)],
        )?;
        family(
            e,
            "process_resident_memory_bytes",
            "resident set size",
            MetricType::Gauge,
            [(vec![], process.resident_bytes)],
        )?;
        family(
            e,
            "process_open_fds",
            "open file descriptors",
            MetricType::Gauge,
            [(vec![], process.open_fds)],
        )?;
        family(
            e,
            "process_start_time_seconds",
            "start time, Unix seconds",
            MetricType::Gauge,
            [(vec![], ms_to_secs(unix_ms(metrics.started)))],
        )?;

        // --- reloads ---
        let r = &metrics.reloads;
        family(
            e,
            "gslb_config_reloads",
            "configuration reloads by result",
            MetricType::Counter,
            [
                (
                    vec![("result", "ok".to_string())],
                    r.ok.load(Ordering::Relaxed),
                ),
                (
                    vec![("result", "error".to_string())],
                    r.failed.load(Ordering::Relaxed),
                ),
            ],
        )?;
        family(
            e,
            "gslb_config_last_reload_timestamp_seconds",
            "last reload attempt by result, Unix seconds (0 = never)",
            MetricType::Gauge,
            [
                (
                    vec![("result", "ok".to_string())],
                    ms_to_secs(r.last_ok_ms.load(Ordering::Relaxed)),
                ),
                (
                    vec![("result", "error".to_string())],
                    ms_to_secs(r.last_failed_ms.load(Ordering::Relaxed)),
                ),
            ],
        )?;
        family(
            e,
            "gslb_config_loaded_timestamp_seconds",
            "when the configuration in service was loaded, Unix seconds",
            MetricType::Gauge,
            [(vec![], ms_to_secs(r.loaded_ms.load(Ordering::Relaxed)))],
        )?;
        family(
            e,
            "gslb_config_file_mtime_seconds",
            "modification time of the configuration file in service, Unix seconds",
            MetricType::Gauge,
            [(
                vec![],
                ms_to_secs(r.config_mtime_ms.load(Ordering::Relaxed)),
            )],
        )?;

        // --- queries ---
        let (slots, zones, pools) = {
            let cells = metrics.lock();
            (
                cells.slots.clone(),
                cells
                    .zones
                    .iter()
                    .map(|((z, _), c)| (z.clone(), c.clone()))
                    .collect::<Vec<_>>(),
                cells
                    .pools
                    .iter()
                    .map(|((s, p, _), c)| (s.clone(), p.clone(), c.clone()))
                    .collect::<Vec<_>>(),
            )
        };
        let mut queries: std::collections::BTreeMap<(String, usize), u64> = Default::default();
        for (zone, cells) in &zones {
            for (index, cell) in cells.0.iter().enumerate() {
                let value = cell.load(Ordering::Relaxed);
                if value > 0 {
                    *queries.entry((zone.clone(), index)).or_default() += value;
                }
            }
        }
        family(
            e,
            "gslb_dns_queries",
            "answered queries by zone, transport, query type and rcode",
            MetricType::Counter,
            queries.into_iter().map(|((zone, index), value)| {
                let qtype = index % QTYPE_CELLS;
                let rcode = (index / QTYPE_CELLS) % RCODES.len();
                let transport = index / QTYPE_CELLS / RCODES.len();
                let qtype = match qtype {
                    i if i < QTYPES.len() => QTYPES[i].1,
                    i if i == QTYPES.len() => "other",
                    _ => "none",
                };
                (
                    vec![
                        ("zone", zone),
                        (
                            "transport",
                            TRANSPORTS
                                .get(transport)
                                .copied()
                                .unwrap_or("?")
                                .to_string(),
                        ),
                        ("type", qtype.to_string()),
                        ("rcode", RCODES[rcode].to_string()),
                    ],
                    value,
                )
            }),
        )?;
        let sum = |f: fn(&SlotCells) -> &AtomicU64| {
            slots
                .iter()
                .map(|s| f(s).load(Ordering::Relaxed))
                .sum::<u64>()
        };
        family(
            e,
            "gslb_dns_dropped_packets",
            "packets dropped without a reply (not a query, too short)",
            MetricType::Counter,
            [(vec![], sum(|s| &s.dropped))],
        )?;
        family(
            e,
            "gslb_rrl_limited_responses",
            "UDP responses over a client prefix's rate limit, by action",
            MetricType::Counter,
            [
                (
                    vec![("action", "dropped".to_string())],
                    sum(|s| &s.rrl_dropped),
                ),
                (
                    vec![("action", "slipped".to_string())],
                    sum(|s| &s.rrl_slipped),
                ),
            ],
        )?;
        family(
            e,
            "gslb_dns_truncated_replies",
            "replies truncated (TC set)",
            MetricType::Counter,
            [(vec![], sum(|s| &s.truncated))],
        )?;
        family(
            e,
            "gslb_dns_ecs_queries",
            "queries with and without an EDNS Client Subnet option",
            MetricType::Counter,
            [
                (
                    vec![("ecs", "present".to_string())],
                    sum(|s| &s.ecs_present),
                ),
                (vec![("ecs", "absent".to_string())], sum(|s| &s.ecs_absent)),
            ],
        )?;
        let mut by_pool: std::collections::BTreeMap<(String, String), PoolTotals> =
            Default::default();
        for (service, pool, cells) in &pools {
            let t = by_pool.entry((service.clone(), pool.clone())).or_default();
            t.answers += cells.answers.load(Ordering::Relaxed);
            t.failovers += cells.failovers.load(Ordering::Relaxed);
            t.fail_open += cells.fail_open.load(Ordering::Relaxed);
        }
        let pool_rows = |f: fn(&PoolTotals) -> u64| {
            by_pool
                .iter()
                .filter(|(_, t)| f(t) > 0 || t.answers > 0)
                .map(|((service, pool), t)| {
                    (
                        vec![("service", service.clone()), ("pool", pool.clone())],
                        f(t),
                    )
                })
                .collect::<Vec<_>>()
        };
        family(
            e,
            "gslb_service_answers",
            "service answers by the pool that answered (pool \"\" = no pool: nodata or servfail)",
            MetricType::Counter,
            pool_rows(|t| t.answers),
        )?;
        family(
            e,
            "gslb_failover_answers",
            "service answers from a pool other than the client's first choice, or failing open",
            MetricType::Counter,
            pool_rows(|t| t.failovers),
        )?;
        family(
            e,
            "gslb_fail_open_answers",
            "service answers given with every pool down (fail-open)",
            MetricType::Counter,
            pool_rows(|t| t.fail_open),
        )?;

        // --- pools' capacity and learned demand (load-aware answers) ---
        {
            let demand = |pool: &str| inputs.pool_demand.get(pool).copied().unwrap_or_default();
            let mut seen = std::collections::HashSet::new();
            let pools: Vec<_> = inputs
                .snapshot
                .services
                .iter()
                .flat_map(|s| s.pools.iter())
                .filter(|pool| seen.insert(pool.name.as_str()))
                .collect();
            let label = |name: &str| vec![("pool", name.to_string())];
            family(
                e,
                "gslb_pool_capacity",
                "declared capacity of the pool",
                MetricType::Gauge,
                pools
                    .iter()
                    .filter_map(|p| p.capacity.map(|c| (label(&p.name), c))),
            )?;
            family(
                e,
                "gslb_pool_demand",
                "own demand learned from answers (answers per second to clients whose first pool it is, sliding window)",
                MetricType::Gauge,
                pools.iter().map(|p| (label(&p.name), demand(&p.name).0)),
            )?;
            family(
                e,
                "gslb_pool_load",
                "answers per second the pool gives (own and spilled-in clients, sliding window)",
                MetricType::Gauge,
                pools.iter().map(|p| (label(&p.name), demand(&p.name).1)),
            )?;
        }

        // --- endpoints (the snapshot in service) ---
        let (snapshot, health) = (&inputs.snapshot, &inputs.health);
        let endpoints = &snapshot.probes.endpoints;
        let endpoint_answers = metrics.endpoint_answers();
        let label = |key: &str| {
            let (pool, _) = key.split_once('/').unwrap_or((key, ""));
            vec![("pool", pool.to_string()), ("endpoint", key.to_string())]
        };
        family(
            e,
            "gslb_endpoint_answers",
            "answers naming the endpoint",
            MetricType::Counter,
            endpoints.iter().map(|p| {
                let answers = endpoint_answers.get(&p.key).copied().unwrap_or(0);
                (label(&p.key), answers)
            }),
        )?;
        family(
            e,
            "gslb_endpoint_up",
            "1 when answers may name the endpoint (probes, overrides; not config `down`)",
            MetricType::Gauge,
            endpoints
                .iter()
                .map(|p| (label(&p.key), u64::from(p.health.is_usable()))),
        )?;
        family(
            e,
            "gslb_endpoint_probe_up",
            "the probes' verdict (1 = up)",
            MetricType::Gauge,
            endpoints
                .iter()
                .map(|p| (label(&p.key), u64::from(p.health.probe_up()))),
        )?;
        family(
            e,
            "gslb_endpoint_override",
            "operator override in force (1 for the state shown)",
            MetricType::Gauge,
            endpoints
                .iter()
                .filter(|p| p.health.effective_override() != Override::None)
                .map(|p| {
                    let mut l = label(&p.key);
                    l.push(("state", p.health.effective_override().as_str().to_string()));
                    (l, 1u64)
                }),
        )?;
        family(
            e,
            "gslb_endpoint_rtt_seconds",
            "smoothed probe round-trip time",
            MetricType::Gauge,
            endpoints.iter().filter_map(|p| {
                p.health
                    .rtt_us()
                    .map(|us| (label(&p.key), f64::from(us) / 1e6))
            }),
        )?;
        family(
            e,
            "gslb_endpoint_weight_percent",
            "weight factor from JSON health bodies",
            MetricType::Gauge,
            endpoints
                .iter()
                .map(|p| (label(&p.key), u64::from(p.health.weight_percent()))),
        )?;
        // Every endpoint of the snapshot once (pools are shared by services).
        let mut seen = std::collections::HashSet::new();
        let configured = snapshot
            .services
            .iter()
            .flat_map(|s| s.pools.iter())
            .flat_map(|pool| pool.endpoints.iter())
            .filter(|endpoint| seen.insert(endpoint.key.as_str()));
        family(
            e,
            "gslb_endpoint_effective_weight",
            "weight answers are picked by: configured (or operator) weight x JSON health factor x pool weight percent",
            MetricType::Gauge,
            configured.map(|endpoint| {
                (
                    label(&endpoint.key),
                    crate::health::effective_weight(
                        health
                            .endpoint(endpoint.id)
                            .operator_weight
                            .unwrap_or(endpoint.weight),
                        health.endpoint(endpoint.id).weight_percent,
                    ),
                )
            }),
        )?;
        // --- cluster (see cluster/) ---
        if let Some((view, writes, keys_written)) = &inputs.cluster {
            family(
                e,
                "gslb_cluster_store_up",
                "whether this member's etcd session is live",
                MetricType::Gauge,
                [(vec![], u64::from(view.connected))],
            )?;
            family(
                e,
                "gslb_cluster_members",
                "live cluster members",
                MetricType::Gauge,
                [(vec![], view.members.len() as u64)],
            )?;
            let digests: std::collections::BTreeSet<&str> = view
                .members
                .values()
                .map(|m| m.config_digest.as_str())
                .collect();
            family(
                e,
                "gslb_cluster_config_digests",
                "distinct config digests among live members (1: no drift)",
                MetricType::Gauge,
                [(vec![], digests.len() as u64)],
            )?;
            family(
                e,
                "gslb_cluster_store_writes",
                "write requests (put, delete or transaction) this member sent to etcd",
                MetricType::Counter,
                [(vec![], *writes)],
            )?;
            family(
                e,
                "gslb_cluster_store_keys_written",
                "keys this member wrote or deleted in etcd",
                MetricType::Counter,
                [(vec![], *keys_written)],
            )?;
            family(
                e,
                "gslb_cluster_member_verdict_up",
                "each live member's verdict per endpoint (1 up, 0 down)",
                MetricType::Gauge,
                endpoints.iter().flat_map(|p| {
                    crate::cluster::member_verdicts(view, &p.key)
                        .into_iter()
                        .map(|(member, up)| {
                            let mut labels = label(&p.key);
                            labels.push(("member", member));
                            (labels, u64::from(up))
                        })
                }),
            )?;
            family(
                e,
                "gslb_endpoint_cluster_up",
                "the verdict answers follow before overrides (quorum over members)",
                MetricType::Gauge,
                endpoints
                    .iter()
                    .map(|p| (label(&p.key), u64::from(p.health.verdict_up()))),
            )?;
        }
        // --- published configuration (see fleet/) ---
        if let Some(FleetFigures {
            status,
            failures,
            members_lagging,
        }) = &inputs.fleet
        {
            family(
                e,
                "gslb_config_version",
                "the published configuration version this member serves (0: none yet)",
                MetricType::Gauge,
                [(vec![], status.version.unwrap_or(0))],
            )?;
            family(
                e,
                "gslb_config_version_newest",
                "the newest published configuration version this member has seen",
                MetricType::Gauge,
                [(vec![], status.newest.unwrap_or(0))],
            )?;
            family(
                e,
                "gslb_config_version_failed",
                "the newest configuration version that failed to build on this member (0: none; the version in service keeps serving)",
                MetricType::Gauge,
                [(vec![], status.failed.as_ref().map_or(0, |f| f.version))],
            )?;
            family(
                e,
                "gslb_config_version_failures",
                "configuration versions that failed to build on this member",
                MetricType::Counter,
                [(vec![], *failures)],
            )?;
            family(
                e,
                "gslb_config_local_files_differing",
                "local files (GeoIP databases, keys) that differ from the published version's",
                MetricType::Gauge,
                [(vec![], status.local_files.len() as u64)],
            )?;
            if let Some(lagging) = members_lagging {
                family(
                    e,
                    "gslb_cluster_members_lagging",
                    "live members more than one configuration version behind for over a minute",
                    MetricType::Gauge,
                    [(vec![], *lagging as u64)],
                )?;
            }
        }
        family(
            e,
            "gslb_endpoint_probes",
            "probes finished",
            MetricType::Counter,
            endpoints
                .iter()
                .filter(|p| p.probe.is_some())
                .map(|p| (label(&p.key), p.health.probes_total())),
        )?;
        family(
            e,
            "gslb_endpoint_probe_failures",
            "failed probes by reason",
            MetricType::Counter,
            endpoints
                .iter()
                .filter(|p| p.probe.is_some())
                .flat_map(|p| {
                    FailureReason::ALL.iter().map(move |&reason| {
                        let mut l = label(&p.key);
                        l.push(("reason", reason.as_str().to_string()));
                        (l, p.health.failures(reason))
                    })
                }),
        )?;

        // --- query log ---
        let log = inputs.query_log;
        family(
            e,
            "gslb_query_log_lines",
            "query log lines written",
            MetricType::Counter,
            [(vec![], log.written)],
        )?;
        family(
            e,
            "gslb_query_log_dropped",
            "query log lines not written, by reason",
            MetricType::Counter,
            [
                (vec![("reason", "queue_full".to_string())], log.queue_full),
                (vec![("reason", "rate_limit".to_string())], log.rate_limited),
            ],
        )?;
        // --- zone transfers (per zone with transfer settings) ---
        let transfers = &inputs.transfers;
        family(
            e,
            "gslb_zone_serial",
            "SOA serial served, per zone with transfer settings",
            MetricType::Gauge,
            transfers
                .iter()
                .filter_map(|(zone, s)| Some((vec![("zone", zone.clone())], u64::from(s.serial?)))),
        )?;
        for (name, help, pick) in [
            (
                "gslb_zone_transfers_out",
                "transfers to secondaries (and refusals) by result",
                (|s: &crate::transfer::ZoneStatus| &s.transfers_out)
                    as fn(&crate::transfer::ZoneStatus) -> &std::collections::BTreeMap<String, u64>,
            ),
            (
                "gslb_zone_transfers_in",
                "transfers from primaries by result",
                |s: &crate::transfer::ZoneStatus| &s.transfers_in,
            ),
        ] {
            family(
                e,
                name,
                help,
                MetricType::Counter,
                transfers.iter().flat_map(|(zone, s)| {
                    pick(s).iter().map(|(result, count)| {
                        (
                            vec![("zone", zone.clone()), ("result", result.clone())],
                            *count,
                        )
                    })
                }),
            )?;
        }
        family(
            e,
            "gslb_zone_notifies_pending",
            "NOTIFYs sent and not acknowledged yet",
            MetricType::Gauge,
            transfers.iter().map(|(zone, s)| {
                (
                    vec![("zone", zone.clone())],
                    s.pending_notifies.len() as u64,
                )
            }),
        )?;
        encode_dnssec(e, snapshot)
    }
}

/// The DNSSEC families: each signed zone's keys, expiry and next re-sign,
/// and what was signed at query time.
fn encode_dnssec(
    e: &mut DescriptorEncoder<'_>,
    snapshot: &crate::snapshot::Snapshot,
) -> Result<(), std::fmt::Error> {
    let zones: Vec<&crate::dnssec::SignedZone> = snapshot.dnssec.signed_zones().collect();
    let zone_label = |z: &crate::dnssec::SignedZone| vec![("zone", z.origin_text().to_string())];
    family(
        e,
        "gslb_dnssec_signatures_expire_timestamp_seconds",
        "earliest expiration of a signed zone's signatures, Unix seconds",
        MetricType::Gauge,
        zones.iter().map(|z| (zone_label(z), z.expires as f64)),
    )?;
    family(
        e,
        "gslb_dnssec_next_resign_timestamp_seconds",
        "when a signed zone is signed again, Unix seconds",
        MetricType::Gauge,
        zones.iter().map(|z| (zone_label(z), z.next_resign as f64)),
    )?;
    family(
        e,
        "gslb_dnssec_key",
        "a signed zone's keys (1 per key) by tag, algorithm, role and state",
        MetricType::Gauge,
        zones.iter().flat_map(|z| {
            z.key_status.iter().map(|k| {
                (
                    vec![
                        ("zone", z.origin_text().to_string()),
                        ("tag", k.tag.to_string()),
                        ("algorithm", k.algorithm.to_string()),
                        ("role", k.role.to_string()),
                        ("state", k.state.to_string()),
                    ],
                    1u64,
                )
            })
        }),
    )?;
    let online = crate::dnssec::online::counts();
    family(
        e,
        "gslb_dnssec_online_signatures",
        "RRsets signed at query time (multivalue combinations, denial of missing names, wildcard expansions)",
        MetricType::Counter,
        [(vec![], online.signed)],
    )?;
    family(
        e,
        "gslb_dnssec_online_cache_hits",
        "answers whose query-time signatures came from a worker's cache",
        MetricType::Counter,
        [(vec![], online.cache_hits)],
    )?;
    family(
        e,
        "gslb_dnssec_online_refused",
        "query-time signatures not made because the worker's signing budget was spent",
        MetricType::Counter,
        [(vec![], online.refused)],
    )
}

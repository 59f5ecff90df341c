//! Counters for `/metrics` and the status page: queries by zone, type, rcode
//! and transport; answers and failovers by service and pool; reloads; and
//! the scrape itself (Prometheus/OpenMetrics text via `prometheus-client`).
//!
//! The query path writes only relaxed atomics it reaches without a lock:
//! each DNS worker thread (and all TCP connections of a listener together)
//! is a *slot* with its own cells, found through a per-slot [`View`] that is
//! rebuilt, under the registry lock, only when the snapshot changes. A
//! scrape sums the slots. Cells are keyed by names (zone origin, service and
//! pool), so counters survive reloads. Endpoint answer counts live in
//! [`crate::health::EndpointHealth`], next to the endpoint's health.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::SystemTime;

use arc_swap::ArcSwapOption;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::control::Control;
use crate::dns::answer::{Outcome, Transport};
use crate::dns::rrl::RrlVerdict;
use crate::hash::SplitMix64;
use crate::health::{FailureReason, Override};
use crate::policy::Endpoint;
use crate::querylog::{QueryLog, QueryLogEntry};
use crate::snapshot::Snapshot;
use crate::wire::Rcode;

/// Transports, in cell order.
const TRANSPORTS: [&str; 2] = ["udp", "tcp"];
/// Rcode labels, in cell order (the last one catches any other value).
const RCODES: [&str; 9] = [
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "BADVERS", "NOTAUTH",
    "other",
];
/// Query types with their own label; everything else is `other`, and `none`
/// is a packet without a readable question.
const QTYPES: [(u16, &str); 15] = [
    (1, "A"),
    (2, "NS"),
    (5, "CNAME"),
    (6, "SOA"),
    (12, "PTR"),
    (15, "MX"),
    (16, "TXT"),
    (28, "AAAA"),
    (33, "SRV"),
    (43, "DS"),
    (48, "DNSKEY"),
    (64, "SVCB"),
    (65, "HTTPS"),
    (255, "ANY"),
    (257, "CAA"),
];
/// `QTYPES`, then `other`, then `none`.
const QTYPE_CELLS: usize = QTYPES.len() + 2;
/// Cells per zone and slot.
const ZONE_CELLS: usize = TRANSPORTS.len() * RCODES.len() * QTYPE_CELLS;

/// Zone label of queries that reached no zone (refused, malformed).
const NO_ZONE: &str = "";

/// Per-slot counters that have no zone or service.
#[derive(Debug, Default)]
struct SlotCells {
    /// Packets dropped without a reply (QR=1, under 12 bytes).
    dropped: AtomicU64,
    /// Queries with an EDNS Client Subnet option.
    ecs_present: AtomicU64,
    /// Queries without one.
    ecs_absent: AtomicU64,
    /// Replies truncated (TC).
    truncated: AtomicU64,
    /// UDP responses dropped by response rate limiting.
    rrl_dropped: AtomicU64,
    /// UDP responses replaced by a truncated "slip" reply by rate limiting.
    rrl_slipped: AtomicU64,
}

/// Query counts of one zone in one slot: transport × rcode × type.
#[derive(Debug)]
struct ZoneCells(Box<[AtomicU64]>);

impl ZoneCells {
    fn new() -> Self {
        Self((0..ZONE_CELLS).map(|_| AtomicU64::new(0)).collect())
    }

    /// The counter of queries over `transport` answered `rcode` for `qtype`.
    #[inline]
    fn cell(&self, transport: Transport, rcode: Rcode, qtype: u16) -> Option<&AtomicU64> {
        let t = match transport {
            Transport::Udp => 0,
            Transport::Tcp => 1,
        };
        let index = (t * RCODES.len() + rcode_index(rcode)) * QTYPE_CELLS + qtype_index(qtype);
        self.0.get(index)
    }
}

#[inline]
fn rcode_index(rcode: Rcode) -> usize {
    match rcode.value() {
        value @ 0..=5 => usize::from(value),
        16 => 6,
        9 => 7,
        _ => 8,
    }
}

#[inline]
fn qtype_index(qtype: u16) -> usize {
    match QTYPE_INDEX.get(usize::from(qtype)) {
        Some(&index) => usize::from(index),
        None => QTYPES
            .iter()
            .position(|&(t, _)| t == qtype)
            .unwrap_or(QTYPES.len()),
    }
}

/// `qtype_index` of the types below 256, looked up rather than searched.
const QTYPE_INDEX: [u8; 256] = {
    let mut table = [QTYPES.len() as u8; 256];
    table[0] = QTYPES.len() as u8 + 1;
    let mut i = 0;
    while i < QTYPES.len() {
        if QTYPES[i].0 < 256 {
            table[QTYPES[i].0 as usize] = i as u8;
        }
        i += 1;
    }
    table
};

/// Answers of one service from one pool in one slot.
#[derive(Debug, Default)]
pub struct PoolCells {
    /// Answers given from this pool (or, for the no-pool cell, without one).
    answers: AtomicU64,
    /// Of those, answers where the pool was not the client's first choice.
    failovers: AtomicU64,
    /// Of those, answers given with every pool down (fail-open).
    fail_open: AtomicU64,
}

/// Everything the scrape sums; locked only by the control plane (views
/// being built after a reload, scrapes, the status sampler).
#[derive(Debug, Default)]
struct Cells {
    slots: Vec<Arc<SlotCells>>,
    /// (zone origin, slot) → cells.
    zones: HashMap<(String, usize), Arc<ZoneCells>>,
    /// (service, pool, slot) → cells; pool `""` = answers without a pool.
    pools: HashMap<(String, String, usize), Arc<PoolCells>>,
    /// (endpoint key, slot) → answers naming the endpoint. Counted per slot
    /// like everything else: a counter shared by the workers would be a
    /// cross-core read-modify-write per answer, on a cache line the
    /// endpoint's health (read per answer) would share.
    endpoints: HashMap<(String, usize), Arc<AtomicU64>>,
}

/// Reload outcomes, for `/metrics`.
#[derive(Debug, Default)]
struct ReloadCells {
    ok: AtomicU64,
    failed: AtomicU64,
    /// Unix milliseconds of the last reload attempt by result.
    last_ok_ms: AtomicU64,
    last_failed_ms: AtomicU64,
    /// Unix milliseconds when the configuration in service was loaded.
    loaded_ms: AtomicU64,
    /// Unix milliseconds of the modification time of that configuration file.
    config_mtime_ms: AtomicU64,
}

/// The process's counters (one per process, shared by every listener).
#[derive(Debug)]
pub struct Metrics {
    cells: Mutex<Cells>,
    reloads: ReloadCells,
    started: SystemTime,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Totals of one service and pool, summed over slots.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolTotals {
    /// Answers.
    pub answers: u64,
    /// Failover answers.
    pub failovers: u64,
    /// Fail-open answers.
    pub fail_open: u64,
}

impl Metrics {
    /// Empty counters.
    pub fn new() -> Self {
        Self {
            cells: Mutex::new(Cells::default()),
            reloads: ReloadCells::default(),
            started: SystemTime::now(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cells> {
        // Cells only ever grow; a panic elsewhere leaves the map usable.
        self.cells
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A recorder for one DNS worker thread (UDP) or for all TCP connections
    /// of a listener (clone it per connection).
    pub fn recorder(
        self: &Arc<Self>,
        transport: Transport,
        query_log: Arc<QueryLog>,
    ) -> QueryRecorder {
        let mut cells = self.lock();
        let slot = cells.slots.len();
        let fixed = Arc::new(SlotCells::default());
        cells.slots.push(fixed.clone());
        QueryRecorder {
            metrics: self.clone(),
            query_log,
            slot,
            transport,
            sole_writer: transport == Transport::Udp,
            fixed,
            view: Arc::new(ArcSwapOption::empty()),
            rng: crate::hash::hash_str(&format!("{slot}")) ^ unix_ms(SystemTime::now()),
        }
    }

    /// Records a reload attempt: `config_mtime` of the configuration file
    /// on success.
    pub fn record_reload(&self, ok: bool, config_mtime: Option<SystemTime>) {
        let now = unix_ms(SystemTime::now());
        if ok {
            self.reloads.ok.fetch_add(1, Ordering::Relaxed);
            self.reloads.last_ok_ms.store(now, Ordering::Relaxed);
            self.record_loaded(config_mtime);
        } else {
            self.reloads.failed.fetch_add(1, Ordering::Relaxed);
            self.reloads.last_failed_ms.store(now, Ordering::Relaxed);
        }
    }

    /// Records that a configuration was loaded and put in service (at start
    /// or by a reload).
    pub fn record_loaded(&self, config_mtime: Option<SystemTime>) {
        let now = unix_ms(SystemTime::now());
        self.reloads.loaded_ms.store(now, Ordering::Relaxed);
        self.reloads
            .config_mtime_ms
            .store(config_mtime.map_or(0, unix_ms), Ordering::Relaxed);
    }

    /// Successful and failed reloads so far.
    pub fn reload_counts(&self) -> (u64, u64) {
        (
            self.reloads.ok.load(Ordering::Relaxed),
            self.reloads.failed.load(Ordering::Relaxed),
        )
    }

    /// Unix seconds when the configuration in service was loaded.
    pub fn loaded_unix(&self) -> f64 {
        ms_to_secs(self.reloads.loaded_ms.load(Ordering::Relaxed))
    }

    /// Answers naming each endpoint (by key), summed over slots.
    pub fn endpoint_answers(&self) -> HashMap<String, u64> {
        let cells = self.lock();
        let mut totals: HashMap<String, u64> = HashMap::new();
        for ((key, _), answers) in &cells.endpoints {
            *totals.entry(key.clone()).or_default() += answers.load(Ordering::Relaxed);
        }
        totals
    }

    /// Answers, failovers and fail-opens by (service, pool), summed over slots.
    pub fn pool_totals(&self) -> HashMap<(String, String), PoolTotals> {
        let cells = self.lock();
        let mut totals: HashMap<(String, String), PoolTotals> = HashMap::new();
        for ((service, pool, _), c) in &cells.pools {
            let t = totals.entry((service.clone(), pool.clone())).or_default();
            t.answers += c.answers.load(Ordering::Relaxed);
            t.failovers += c.failovers.load(Ordering::Relaxed);
            t.fail_open += c.fail_open.load(Ordering::Relaxed);
        }
        totals
    }

    /// Builds a slot's view of `snapshot`: its zones' and services' cells.
    fn build_view(&self, slot: usize, snapshot: &Arc<Snapshot>) -> View {
        let mut cells = self.lock();
        let mut zone_cells = |origin: &str| {
            cells
                .zones
                .entry((origin.to_string(), slot))
                .or_insert_with(|| Arc::new(ZoneCells::new()))
                .clone()
        };
        let no_zone = zone_cells(NO_ZONE);
        let zones = snapshot
            .zones
            .iter()
            .map(|zone| zone_cells(zone.origin_text()))
            .collect();
        let services = snapshot
            .services
            .iter()
            .map(|service| {
                let mut pool_view = |pool: &str, endpoints: &[Endpoint]| PoolView {
                    cells: cells
                        .pools
                        .entry((service.name.clone(), pool.to_string(), slot))
                        .or_insert_with(|| Arc::new(PoolCells::default()))
                        .clone(),
                    endpoint_answers: endpoints
                        .iter()
                        .map(|endpoint| {
                            cells
                                .endpoints
                                .entry((endpoint.key.clone(), slot))
                                .or_default()
                                .clone()
                        })
                        .collect(),
                };
                // One view per pool, then the no-pool one.
                let mut list: Vec<PoolView> = service
                    .pools
                    .iter()
                    .map(|p| pool_view(&p.name, &p.endpoints))
                    .collect();
                list.push(pool_view("", &[]));
                list
            })
            .collect();
        View {
            snapshot: Arc::downgrade(snapshot),
            zones,
            no_zone,
            services,
        }
    }
}

/// What the DNS server needs to record queries: the counters and the query log.
#[derive(Debug, Clone)]
pub struct Observer {
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Query log.
    pub query_log: Arc<QueryLog>,
}

impl Observer {
    /// A recorder with a slot of its own (see [`Metrics::recorder`]).
    pub fn recorder(&self, transport: Transport) -> QueryRecorder {
        self.metrics.recorder(transport, self.query_log.clone())
    }
}

/// A slot's cells for one snapshot, looked up without locks.
#[derive(Debug)]
pub struct View {
    /// The snapshot it was built for (weak: only its address is compared,
    /// and the allocation it keeps alive cannot be reused by a new snapshot).
    snapshot: Weak<Snapshot>,
    /// Cells of each zone, by its index in the snapshot's zone set.
    zones: Vec<Arc<ZoneCells>>,
    /// Cells of queries outside every zone.
    no_zone: Arc<ZoneCells>,
    /// `[service index][pool index]`, the last entry of each = no pool.
    services: Vec<Vec<PoolView>>,
}

/// A slot's cells for one pool of one service.
#[derive(Debug)]
struct PoolView {
    cells: Arc<PoolCells>,
    /// Answer counters of the pool's endpoints, by index in the pool.
    endpoint_answers: Box<[Arc<AtomicU64>]>,
}

/// Records what happened to each query of one slot: metrics, endpoint answer
/// counts and the query log. TCP connections share a slot through
/// [`fork`](Self::fork); a UDP worker has one of its own.
#[derive(Debug)]
pub struct QueryRecorder {
    metrics: Arc<Metrics>,
    query_log: Arc<QueryLog>,
    slot: usize,
    transport: Transport,
    /// Whether this recorder is the only writer of its slot's cells (a UDP
    /// worker's, never forked): it then counts with a plain load and store,
    /// sparing the locked read-modify-write per counter and query.
    sole_writer: bool,
    fixed: Arc<SlotCells>,
    view: Arc<ArcSwapOption<View>>,
    /// State of the query log's sampling generator ([`SplitMix64`]).
    rng: u64,
}

impl QueryRecorder {
    /// Counts a response that rate limiting dropped or slipped.
    pub fn record_rate_limited(&self, verdict: RrlVerdict) {
        let cell = match verdict {
            RrlVerdict::Send => return,
            RrlVerdict::Drop => &self.fixed.rrl_dropped,
            RrlVerdict::Slip => &self.fixed.rrl_slipped,
        };
        self.bump(cell);
    }

    /// A recorder sharing the slot, with a random stream of its own (one
    /// per TCP connection). Neither is the slot's sole writer afterwards.
    pub fn fork(&mut self) -> Self {
        self.sole_writer = false;
        let mut rng = SplitMix64(self.rng ^ unix_ms(SystemTime::now()).rotate_left(17));
        Self {
            metrics: self.metrics.clone(),
            query_log: self.query_log.clone(),
            slot: self.slot,
            transport: self.transport,
            sole_writer: false,
            fixed: self.fixed.clone(),
            view: self.view.clone(),
            rng: rng.next_u64() ^ (Arc::strong_count(&self.view) as u64),
        }
    }

    /// Adds one to a cell of this recorder's slot.
    #[inline]
    fn bump(&self, cell: &AtomicU64) {
        if self.sole_writer {
            // No other thread writes it; readers see either value.
            cell.store(cell.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        } else {
            cell.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The view for `snapshot`; rebuilt (under the registry lock) only when
    /// the snapshot changed since the last call. Call once per batch.
    pub fn view(&self, snapshot: &Arc<Snapshot>) -> Arc<View> {
        if let Some(view) = self.view.load_full()
            && std::ptr::eq(view.snapshot.as_ptr(), Arc::as_ptr(snapshot))
        {
            return view;
        }
        let view = Arc::new(self.metrics.build_view(self.slot, snapshot));
        self.view.store(Some(view.clone()));
        view
    }

    /// Records one query: `outcome` is what `handle_packet` returned
    /// (`None`: dropped), `packet` the query bytes (for the query log).
    /// Takes no lock and allocates nothing unless the query is logged.
    #[inline(always)]
    pub fn record(
        &mut self,
        view: &View,
        snapshot: &Arc<Snapshot>,
        packet: &[u8],
        peer: IpAddr,
        outcome: Option<&Outcome<'_>>,
    ) {
        let Some(outcome) = outcome else {
            self.bump(&self.fixed.dropped);
            return;
        };
        let zone_cells = outcome
            .zone
            .and_then(|index| view.zones.get(index))
            .unwrap_or(&view.no_zone);
        if let Some(cell) = zone_cells.cell(self.transport, outcome.rcode, outcome.qtype) {
            self.bump(cell);
        }
        self.bump(if outcome.had_client_subnet {
            &self.fixed.ecs_present
        } else {
            &self.fixed.ecs_absent
        });
        if outcome.truncated {
            self.bump(&self.fixed.truncated);
        }
        if let Some((service, selection)) = &outcome.service {
            let pools = view.services.get(*service);
            // The pool's view, or the last one (no pool).
            let pool = pools.and_then(|pools| match selection.pool {
                Some(_) => pools.get(usize::from(selection.pool_index)),
                None => pools.last(),
            });
            if let Some(pool) = pool {
                self.bump(&pool.cells.answers);
                if selection.is_failover() {
                    self.bump(&pool.cells.failovers);
                }
                if selection.failed_open {
                    self.bump(&pool.cells.fail_open);
                }
                for &chosen in selection.chosen() {
                    if let Some(answers) = pool.endpoint_answers.get(usize::from(chosen)) {
                        self.bump(answers);
                    }
                }
            }
        }
        let mut rng = SplitMix64(self.rng);
        let wanted = self.query_log.wants(&mut rng);
        self.rng = rng.0;
        if wanted {
            self.log(snapshot, packet, peer, outcome);
        }
    }

    /// Queues the query log entry of a sampled query (kept out of line:
    /// `record` stays small for the queries that are not logged).
    #[cold]
    #[inline(never)]
    fn log(&self, snapshot: &Arc<Snapshot>, packet: &[u8], peer: IpAddr, outcome: &Outcome<'_>) {
        let chosen = outcome.service.as_ref().map(|(service, selection)| {
            (
                *service,
                selection.pool.map(|_| usize::from(selection.pool_index)),
                (selection.chosen, usize::from(selection.count)),
                selection.is_failover(),
            )
        });
        self.query_log.submit(QueryLogEntry::new(
            snapshot,
            self.transport,
            peer,
            packet,
            outcome,
            chosen,
        ));
    }
}

fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn ms_to_secs(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

// ---------------------------------------------------------------------------
// Scrape
// ---------------------------------------------------------------------------

/// Content type of [`render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Renders every metric in the OpenMetrics text format.
///
/// # Errors
/// Only a formatting error of the encoder (not expected with a `String`).
pub fn render(control: &Arc<Control>) -> Result<String, std::fmt::Error> {
    let mut registry = prometheus_client::registry::Registry::default();
    registry.register_collector(Box::new(Scrape(control.clone())));
    let mut out = String::with_capacity(16 * 1024);
    prometheus_client::encoding::text::encode(&mut out, &registry)?;
    Ok(out)
}

/// The collector run on each scrape.
struct Scrape(Arc<Control>);

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
        let control = &self.0;
        let metrics = &control.metrics;
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
            let load = control.lock_load();
            let snapshot = control.snapshot();
            let mut seen = std::collections::HashSet::new();
            let pools: Vec<_> = snapshot
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
                pools
                    .iter()
                    .map(|p| (label(&p.name), load.demand.demand(&p.name))),
            )?;
            family(
                e,
                "gslb_pool_load",
                "answers per second the pool gives (own and spilled-in clients, sliding window)",
                MetricType::Gauge,
                pools
                    .iter()
                    .map(|p| (label(&p.name), load.demand.load(&p.name))),
            )?;
        }

        // --- endpoints (the snapshot in service) ---
        let snapshot = control.snapshot();
        let health = control.health.view_arc();
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
        if let Some(cluster) = &control.cluster {
            let view = cluster.view();
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
                "writes this member sent to etcd",
                MetricType::Counter,
                [(vec![], cluster.writes())],
            )?;
            family(
                e,
                "gslb_cluster_member_verdict_up",
                "each live member's verdict per endpoint (1 up, 0 down)",
                MetricType::Gauge,
                endpoints.iter().flat_map(|p| {
                    crate::cluster::member_verdicts(&view, &p.key)
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
        let log = control.query_log.counts();
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
        let transfers = control.transfers.status();
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
        encode_dnssec(e, &control.snapshot())
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

/// CPU, memory and file descriptors of this process, from `/proc/self`.
#[derive(Debug, Default, Clone, Copy)]
struct ProcessFigures {
    cpu_seconds: f64,
    resident_bytes: u64,
    open_fds: u64,
}

/// Clock ticks per second of `/proc/self/stat` times: USER_HZ, which the
/// Linux ABI fixes at 100 for user space.
const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

impl ProcessFigures {
    fn read() -> Self {
        let mut figures = Self::default();
        if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
            // Fields after the parenthesised command name; utime and stime
            // are fields 14 and 15 of the whole line.
            if let Some((_, rest)) = stat.rsplit_once(") ") {
                let fields: Vec<&str> = rest.split_whitespace().collect();
                let ticks = |i: usize| {
                    fields
                        .get(i)
                        .and_then(|f| f.parse::<f64>().ok())
                        .unwrap_or(0.0)
                };
                figures.cpu_seconds = (ticks(11) + ticks(12)) / CLOCK_TICKS_PER_SECOND;
            }
        }
        if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
            figures.resident_bytes = status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|kb| kb.parse::<u64>().ok())
                .map_or(0, |kb| kb * 1024);
        }
        if let Ok(entries) = std::fs::read_dir("/proc/self/fd") {
            figures.open_fds = entries.count() as u64;
        }
        figures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_unforked_udp_recorder_counts_as_its_slots_sole_writer() {
        let metrics = Arc::new(Metrics::new());
        let log = Arc::new(QueryLog::default());
        let udp = metrics.recorder(Transport::Udp, log.clone());
        assert!(udp.sole_writer);
        let mut tcp = metrics.recorder(Transport::Tcp, log.clone());
        assert!(!tcp.sole_writer);
        let fork = tcp.fork();
        assert!(!tcp.sole_writer && !fork.sole_writer);
        // A UDP recorder forked (never done today) stops being one too.
        let mut shared = metrics.recorder(Transport::Udp, log);
        let other = shared.fork();
        assert!(!shared.sole_writer && !other.sole_writer);
        // Either way each count lands once.
        for recorder in [&udp, &shared, &other] {
            recorder.bump(&recorder.fixed.dropped);
        }
        assert_eq!(udp.fixed.dropped.load(Ordering::Relaxed), 1);
        assert_eq!(shared.fixed.dropped.load(Ordering::Relaxed), 2);
    }

    /// A wire-format A query for `www.example.test` (the fixture's service).
    fn www_query(id: u16) -> Vec<u8> {
        let mut packet = id.to_be_bytes().to_vec();
        packet.extend_from_slice(&[1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
        packet.extend_from_slice(b"\x03www\x07example\x04test\x00\x00\x01\x00\x01");
        packet
    }

    #[test]
    fn endpoint_answers_are_summed_over_worker_slots_and_kept_across_reloads() {
        let source = crate::snapshot::SnapshotSource {
            config_path: std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("benches/fixtures/bench.toml"),
            extra_zones: Vec::new(),
        };
        let (control, _) =
            crate::control::Control::start(source).unwrap_or_else(|errors| panic!("{errors}"));
        let log = Arc::new(QueryLog::default());
        let mut workers = [
            control.metrics.recorder(Transport::Udp, log.clone()),
            control.metrics.recorder(Transport::Udp, log),
        ];
        let client = IpAddr::V4(std::net::Ipv4Addr::new(81, 2, 69, 7));
        let mut expected: HashMap<String, u64> = HashMap::new();
        let mut reply = Vec::new();
        let mut answer_all = |workers: &mut [QueryRecorder; 2],
                              expected: &mut HashMap<String, u64>,
                              rounds: u16| {
            let served = control.served.load_full();
            let snapshot = &served.snapshot;
            for (slot, recorder) in workers.iter_mut().enumerate() {
                let view = recorder.view(snapshot);
                for id in 0..rounds {
                    let seed = u64::from(id) * 2 + slot as u64;
                    let packet = www_query(id);
                    let outcome = crate::dns::served::handle_packet(
                        &served,
                        &control.health.view(),
                        &packet,
                        client,
                        Transport::Udp,
                        seed,
                        &mut reply,
                    );
                    let Some((_, selection)) = outcome.as_ref().and_then(|o| o.service.as_ref())
                    else {
                        panic!("www.example.test is a service");
                    };
                    for endpoint in selection.endpoints() {
                        *expected.entry(endpoint.key.clone()).or_default() += 1;
                    }
                    recorder.record(&view, snapshot, &packet, client, outcome.as_ref());
                }
            }
        };
        // Endpoints never named have a counter too, at zero.
        let named = || -> HashMap<String, u64> {
            let mut totals = control.metrics.endpoint_answers();
            totals.retain(|_, answers| *answers > 0);
            totals
        };
        answer_all(&mut workers, &mut expected, 50);
        assert_eq!(named(), expected);
        // After a reload each worker counts into a new view, on top.
        control
            .reload("test")
            .unwrap_or_else(|errors| panic!("{errors}"));
        answer_all(&mut workers, &mut expected, 30);
        let totals = named();
        assert_eq!(totals, expected);
        assert_eq!(totals.values().sum::<u64>(), 160);
        // Both of the eu pool's IPv4 endpoints were drawn.
        assert!(
            totals
                .keys()
                .filter(|key| key.starts_with("eu/192."))
                .count()
                == 2,
            "{totals:?}"
        );
    }

    #[test]
    fn cell_indices_cover_every_label() {
        assert_eq!(rcode_index(Rcode::NoError), 0);
        assert_eq!(rcode_index(Rcode::Refused), 5);
        assert_eq!(rcode_index(Rcode::BadVers), 6);
        assert_eq!(rcode_index(Rcode::NotAuth), 7);
        assert_eq!(qtype_index(1), 0);
        assert_eq!(qtype_index(28), 7);
        assert_eq!(qtype_index(257), QTYPES.len() - 1);
        assert_eq!(qtype_index(999), QTYPES.len());
        assert_eq!(qtype_index(0), QTYPES.len() + 1);
        let cells = ZoneCells::new();
        if let Some(cell) = cells.cell(Transport::Tcp, Rcode::BadVers, 0) {
            cell.fetch_add(1, Ordering::Relaxed);
        }
        assert_eq!(
            cells
                .0
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .sum::<u64>(),
            1
        );
        // TCP's BADVERS row is third from the end (NOTAUTH, other follow).
        assert_eq!(
            cells.0[ZONE_CELLS - 1 - 2 * QTYPE_CELLS].load(Ordering::Relaxed),
            1
        );
    }
}

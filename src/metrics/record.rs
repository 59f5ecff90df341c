//! Per-query recording: what each DNS worker calls once per query. A
//! recorder owns a slot (see the module above); its [`View`] of the
//! snapshot in service finds every cell without a lock, and the query log
//! gets the sampled queries through a bounded queue.

use std::cell::Cell;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::SystemTime;

use arc_swap::ArcSwapOption;

use super::{Metrics, NO_ZONE, PoolCells, SlotCells, ZoneCells, unix_ms};
use crate::dns::answer::{Outcome, Transport};
use crate::dns::rrl::RrlVerdict;
use crate::dns::server::{Observe, RecordQueries};
use crate::hash::SplitMix64;
use crate::policy::Endpoint;
use crate::querylog::{QueryLog, QueryLogEntry};
use crate::snapshot::Snapshot;

impl Metrics {
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
            shared_view: Arc::new(ArcSwapOption::empty()),
            current: None,
            rng: Cell::new(crate::hash::hash_str(&format!("{slot}")) ^ unix_ms(SystemTime::now())),
        }
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
    /// The view last built for the slot, shared by its forks (so a new
    /// TCP connection does not rebuild it).
    shared_view: Arc<ArcSwapOption<View>>,
    /// The view of the snapshot set by [`set_snapshot`](Self::set_snapshot),
    /// kept here so that a batch costs no shared load while the snapshot
    /// stays the same.
    current: Option<Arc<View>>,
    /// State of the query log's sampling generator ([`SplitMix64`]).
    rng: Cell<u64>,
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
        let mut rng = SplitMix64(self.rng.get() ^ unix_ms(SystemTime::now()).rotate_left(17));
        Self {
            metrics: self.metrics.clone(),
            query_log: self.query_log.clone(),
            slot: self.slot,
            transport: self.transport,
            sole_writer: false,
            fixed: self.fixed.clone(),
            shared_view: self.shared_view.clone(),
            current: self.current.clone(),
            rng: Cell::new(rng.next_u64() ^ (Arc::strong_count(&self.shared_view) as u64)),
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
        if let Some(view) = self.shared_view.load_full()
            && std::ptr::eq(view.snapshot.as_ptr(), Arc::as_ptr(snapshot))
        {
            return view;
        }
        let view = Arc::new(self.metrics.build_view(self.slot, snapshot));
        self.shared_view.store(Some(view.clone()));
        view
    }

    /// Sets the snapshot the next queries are answered from (call once per
    /// batch): its view is kept in the recorder, looked up again only when
    /// the snapshot changed.
    #[inline]
    pub fn set_snapshot(&mut self, snapshot: &Arc<Snapshot>) {
        if let Some(view) = &self.current
            && std::ptr::eq(view.snapshot.as_ptr(), Arc::as_ptr(snapshot))
        {
            return;
        }
        self.current = Some(self.view(snapshot));
    }

    /// Records one query answered from the snapshot last set with
    /// [`set_snapshot`](Self::set_snapshot), as [`record`](Self::record).
    #[inline(always)]
    pub fn record_current(
        &self,
        snapshot: &Arc<Snapshot>,
        packet: &[u8],
        peer: IpAddr,
        outcome: Option<&Outcome<'_>>,
    ) {
        if let Some(view) = &self.current {
            self.record(view, snapshot, packet, peer, outcome);
        }
    }

    /// Records one query: `outcome` is what `handle_packet` returned
    /// (`None`: dropped), `packet` the query bytes (for the query log).
    /// Takes no lock and allocates nothing unless the query is logged.
    #[inline(always)]
    pub fn record(
        &self,
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
        let mut rng = SplitMix64(self.rng.get());
        let wanted = self.query_log.wants(&mut rng);
        self.rng.set(rng.0);
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

impl Observe for Observer {
    type Recorder = QueryRecorder;

    fn recorder(&self, transport: Transport) -> QueryRecorder {
        Observer::recorder(self, transport)
    }
}

impl RecordQueries for QueryRecorder {
    #[inline(always)]
    fn set_snapshot(&mut self, snapshot: &Arc<Snapshot>) {
        QueryRecorder::set_snapshot(self, snapshot);
    }

    #[inline(always)]
    fn record(
        &self,
        snapshot: &Arc<Snapshot>,
        packet: &[u8],
        peer: IpAddr,
        outcome: Option<&Outcome<'_>>,
    ) {
        self.record_current(snapshot, packet, peer, outcome);
    }

    #[inline(always)]
    fn record_rate_limited(&self, verdict: RrlVerdict) {
        QueryRecorder::record_rate_limited(self, verdict);
    }

    fn fork(&mut self) -> Self {
        QueryRecorder::fork(self)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

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
}

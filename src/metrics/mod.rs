//! Counters for `/metrics` and the status page: queries by zone, type, rcode
//! and transport; answers and failovers by service and pool; reloads. One
//! job per file: `record.rs` is what each DNS worker calls per query,
//! `scrape.rs` renders everything for `/metrics` from inputs its caller
//! gathers, `process.rs` reads this process's CPU, memory and descriptors.
//!
//! The query path writes only relaxed atomics it reaches without a lock:
//! each DNS worker thread (and all TCP connections of a listener together)
//! is a *slot* with its own cells, found through a per-slot [`View`] that is
//! rebuilt, under the registry lock, only when the snapshot changes. A
//! scrape sums the slots. Cells are keyed by names (zone origin, service and
//! pool), so counters survive reloads.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use crate::dns::answer::Transport;
use crate::wire::Rcode;

mod process;
mod record;
mod scrape;

pub use record::{Observer, QueryRecorder, View};
pub use scrape::{CONTENT_TYPE, FleetFigures, ScrapeInputs, render};

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
}

fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn ms_to_secs(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

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

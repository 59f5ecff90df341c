//! The transfer runtime that outlives snapshots: zone versions kept for
//! IXFR, per-zone status (serial, last transfer in and out, pending
//! NOTIFYs), the concurrent-transfer limits, and the background task that
//! follows applied snapshots (NOTIFY out, secondary refresh tasks, the
//! served-serial state file).
//!
//! Only transfer requests, NOTIFYs and the admin API take its lock; the
//! query path never does.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::mpsc;

use super::{ZoneVersion, unix_now};
use crate::snapshot::Snapshot;
use crate::zone::WireName;

/// Versions of a zone kept for IXFR (the current one included).
pub(super) const HISTORY_VERSIONS: usize = 4;
/// Concurrent outgoing transfers to one client address.
pub const MAX_TRANSFERS_PER_CLIENT: usize = 2;
/// Concurrent outgoing transfers overall.
pub const MAX_TRANSFERS_TOTAL: usize = 16;

/// The snapshot in service, whenever asked (it changes on every reload).
pub type CurrentSnapshot = Arc<dyn Fn() -> Arc<Snapshot> + Send + Sync>;
/// Rebuilds the snapshot (a transferred zone was stored or expired).
pub type Reload = Arc<dyn Fn() + Send + Sync>;

/// One transfer, in or out, as `/status` and the log show it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TransferEvent {
    /// The other server.
    pub peer: String,
    /// `AXFR`, `IXFR` or `IXFR-as-AXFR`, `SOA` (up to date).
    pub kind: String,
    /// Records carried.
    pub records: usize,
    /// `ok`, or why it failed or was refused.
    pub result: String,
    /// When it ended, seconds since the epoch.
    pub at_unix: u64,
}

/// A NOTIFY not yet acknowledged.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PendingNotify {
    /// The secondary told.
    pub target: String,
    /// Serial announced.
    pub serial: u32,
    /// Attempts so far.
    pub attempts: u32,
}

/// A zone's transfer status.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ZoneStatus {
    /// `primary` (served from a file) or `secondary`.
    pub role: &'static str,
    /// Serial served now (none: a secondary without data).
    pub serial: Option<u32>,
    /// Last transfer from a primary (secondary zones).
    pub last_transfer_in: Option<TransferEvent>,
    /// Last transfer to a secondary.
    pub last_transfer_out: Option<TransferEvent>,
    /// NOTIFYs sent and not acknowledged yet.
    pub pending_notifies: Vec<PendingNotify>,
    /// Transfers out counted by result (`ok`, `refused`, `tsig`, …).
    pub transfers_out: BTreeMap<String, u64>,
    /// Transfers in counted by result.
    pub transfers_in: BTreeMap<String, u64>,
}

#[derive(Default)]
pub(super) struct HubState {
    /// Versions kept per zone for IXFR, oldest first.
    pub(super) history: HashMap<WireName, VecDeque<Arc<ZoneVersion>>>,
    status: BTreeMap<String, ZoneStatus>,
    per_client: HashMap<IpAddr, usize>,
    total: usize,
    /// Wakes a secondary zone's refresh task (NOTIFY from its primary).
    pub(super) triggers: HashMap<WireName, Arc<tokio::sync::Notify>>,
    /// Bumped per zone when a newer serial is announced, so retries of an
    /// older NOTIFY stop.
    notify_generation: HashMap<WireName, u64>,
}

/// See the module docs.
pub struct Hub {
    state: Mutex<HubState>,
    applied: mpsc::UnboundedSender<Arc<Snapshot>>,
    /// Taken by the task that follows applied snapshots (`follow.rs`).
    pub(super) applied_rx: Mutex<Option<mpsc::UnboundedReceiver<Arc<Snapshot>>>>,
}

impl Default for Hub {
    fn default() -> Self {
        let (applied, rx) = mpsc::unbounded_channel();
        Self {
            state: Mutex::new(HubState::default()),
            applied,
            applied_rx: Mutex::new(Some(rx)),
        }
    }
}

/// A slot among the concurrent transfers; released on drop.
pub struct TransferSlot<'h> {
    hub: &'h Hub,
    client: IpAddr,
}

impl Drop for TransferSlot<'_> {
    fn drop(&mut self) {
        let mut state = self.hub.lock();
        state.total = state.total.saturating_sub(1);
        if let Some(count) = state.per_client.get_mut(&self.client) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                state.per_client.remove(&self.client);
            }
        }
    }
}

impl Hub {
    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, HubState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Called after a snapshot was swapped in (and for the first one).
    /// Cheap: the work happens in the task [`Hub::start`] runs (`follow.rs`).
    pub fn applied(&self, snapshot: Arc<Snapshot>) {
        {
            let mut state = self.lock();
            for (origin, zone) in &snapshot.transfer.zones {
                let entry = state.status.entry(zone.origin_text.clone()).or_default();
                entry.role = if zone.secondary.is_some() {
                    "secondary"
                } else {
                    "primary"
                };
                entry.serial = snapshot
                    .zones
                    .find(origin)
                    .filter(|z| z.origin() == &origin[..] && !z.is_unavailable())
                    .map(|z| z.serial());
            }
            let configured: Vec<String> = snapshot
                .transfer
                .zones
                .values()
                .map(|z| z.origin_text.clone())
                .collect();
            state.status.retain(|origin, _| configured.contains(origin));
        }
        // Nobody listens in `gslb check`: the send fails quietly.
        let _ = self.applied.send(snapshot);
    }

    /// The version of a zone with this serial, if still kept.
    pub fn version(&self, origin: &[u8], serial: u32) -> Option<Arc<ZoneVersion>> {
        self.lock()
            .history
            .get(origin)?
            .iter()
            .find(|v| v.serial == serial)
            .cloned()
    }

    /// Takes a transfer slot for `client`, or says why not.
    pub fn take_slot(&self, client: IpAddr) -> Result<TransferSlot<'_>, String> {
        let mut state = self.lock();
        if state.total >= MAX_TRANSFERS_TOTAL {
            return Err(format!(
                "too many concurrent transfers ({MAX_TRANSFERS_TOTAL} overall)"
            ));
        }
        let count = state.per_client.entry(client).or_default();
        if *count >= MAX_TRANSFERS_PER_CLIENT {
            return Err(format!(
                "too many concurrent transfers from this client ({MAX_TRANSFERS_PER_CLIENT})"
            ));
        }
        *count += 1;
        state.total += 1;
        Ok(TransferSlot { hub: self, client })
    }

    /// Records a transfer (or refusal) to a secondary.
    pub fn record_out(&self, origin: &str, event: TransferEvent) {
        let mut state = self.lock();
        let status = state.status.entry(origin.to_string()).or_default();
        *status
            .transfers_out
            .entry(result_label(&event.result).to_string())
            .or_default() += 1;
        status.last_transfer_out = Some(event);
    }

    /// Records a transfer from a primary.
    pub fn record_in(&self, origin: &str, event: TransferEvent, serial: Option<u32>) {
        let mut state = self.lock();
        let status = state.status.entry(origin.to_string()).or_default();
        *status
            .transfers_in
            .entry(result_label(&event.result).to_string())
            .or_default() += 1;
        if serial.is_some() {
            status.serial = serial;
        }
        status.last_transfer_in = Some(event);
    }

    /// Wakes the refresh task of a secondary zone.
    pub fn trigger(&self, origin: &[u8]) -> bool {
        match self.lock().triggers.get(origin) {
            Some(trigger) => {
                trigger.notify_one();
                true
            }
            None => false,
        }
    }

    /// Whether a secondary zone's task should keep running.
    pub fn secondary_active(&self, origin: &[u8]) -> bool {
        self.lock().triggers.contains_key(origin)
    }

    /// A new NOTIFY round for a zone: its generation number.
    pub fn next_notify_generation(&self, origin: &[u8]) -> u64 {
        let mut state = self.lock();
        let generation = state.notify_generation.entry(origin.into()).or_default();
        *generation += 1;
        *generation
    }

    /// Whether a NOTIFY round is still the latest for its zone.
    pub fn notify_current(&self, origin: &[u8], generation: u64) -> bool {
        self.lock().notify_generation.get(origin) == Some(&generation)
    }

    /// Sets (attempts > 0) or clears (None) a pending NOTIFY.
    pub fn set_pending(&self, origin: &str, target: SocketAddr, pending: Option<PendingNotify>) {
        let mut state = self.lock();
        let status = state.status.entry(origin.to_string()).or_default();
        let key = target.to_string();
        status.pending_notifies.retain(|p| p.target != key);
        if let Some(pending) = pending {
            status.pending_notifies.push(pending);
        }
    }

    /// Every zone's status, by origin.
    pub fn status(&self) -> BTreeMap<String, ZoneStatus> {
        self.lock().status.clone()
    }
}

/// The counter label of a result text: `ok` or its first word.
fn result_label(result: &str) -> &str {
    if result == "ok" {
        return "ok";
    }
    result.split([':', ' ']).next().unwrap_or("error")
}

/// A transfer event ending now.
pub fn event(
    peer: impl ToString,
    kind: &str,
    records: usize,
    result: impl Into<String>,
) -> TransferEvent {
    TransferEvent {
        peer: peer.to_string(),
        kind: kind.to_string(),
        records,
        result: result.into(),
        at_unix: unix_now(),
    }
}

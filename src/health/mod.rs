//! Endpoint health: one record of atomics per endpoint, written by probers
//! and admin overrides, read lock-free by the query path.
//!
//! Records live in a `HealthRegistry` keyed by endpoint identity (pool name
//! and target), which outlives snapshots: a reload hands the same record to
//! the new snapshot, so health and overrides survive unrelated config changes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

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

/// Health of one endpoint. All fields are atomics: readers never block writers.
#[derive(Debug)]
pub struct EndpointHealth {
    probe: AtomicU8,
    admin: AtomicU8,
    /// Smoothed probe round-trip time in microseconds (0 = not measured).
    rtt_us: AtomicU32,
}

impl EndpointHealth {
    /// A record in the given initial probe state.
    pub fn new(initially_up: bool) -> Self {
        Self {
            probe: AtomicU8::new(if initially_up { PROBE_UP } else { PROBE_DOWN }),
            admin: AtomicU8::new(Override::None.to_u8()),
            rtt_us: AtomicU32::new(0),
        }
    }

    /// Whether answers may name this endpoint (probes and override combined).
    #[inline]
    pub fn is_usable(&self) -> bool {
        match Override::from_u8(self.admin.load(Ordering::Relaxed)) {
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
        self.probe
            .store(if up { PROBE_UP } else { PROBE_DOWN }, Ordering::Relaxed);
    }

    /// The operator override in force.
    pub fn admin_override(&self) -> Override {
        Override::from_u8(self.admin.load(Ordering::Relaxed))
    }

    /// Sets or clears the operator override.
    pub fn set_admin_override(&self, value: Override) {
        self.admin.store(value.to_u8(), Ordering::Relaxed);
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
}

impl HealthRegistry {
    /// The record for `key`, created in `initially_up` state if new.
    pub fn record(&self, key: &str, initially_up: bool) -> Arc<EndpointHealth> {
        let mut records = self
            .records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        records
            .entry(key.to_string())
            .or_insert_with(|| Arc::new(EndpointHealth::new(initially_up)))
            .clone()
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
    fn registry_keeps_identity() {
        let registry = HealthRegistry::default();
        let a = registry.record("eu/192.0.2.1", true);
        a.set_probe_up(false);
        let b = registry.record("eu/192.0.2.1", true);
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!b.probe_up());
    }
}

//! The task that follows applied snapshots: for each, records the zone
//! versions kept for IXFR, sends NOTIFYs when a serial changed, records the
//! served serial, and keeps one refresh task per secondary zone. Apart from
//! the [`Hub`]'s state so the hub stays a plain store that the NOTIFY and
//! secondary tasks it starts can use.

use std::sync::Arc;

use super::hub::{CurrentSnapshot, HISTORY_VERSIONS, Hub, Reload};
use crate::snapshot::Snapshot;

impl Hub {
    /// Starts the task that follows applied snapshots: records versions,
    /// sends NOTIFYs, keeps one refresh task per secondary zone.
    pub fn start(self: &Arc<Self>, snapshot: CurrentSnapshot, reload: Reload) {
        let receiver = self
            .applied_rx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        let Some(mut receiver) = receiver else {
            return;
        };
        let hub = self.clone();
        tokio::spawn(async move {
            let mut first = true;
            while let Some(applied) = receiver.recv().await {
                hub.handle_applied(&applied, first, &snapshot, &reload);
                first = false;
            }
        });
    }

    fn handle_applied(
        self: &Arc<Self>,
        snapshot: &Snapshot,
        first: bool,
        shared: &CurrentSnapshot,
        reload: &Reload,
    ) {
        let settings = &snapshot.transfer;
        for (origin, zone) in &settings.zones {
            if let Some(spec) = &zone.secondary {
                let start = {
                    let mut state = self.lock();
                    if state.triggers.contains_key(origin) {
                        None
                    } else {
                        let trigger = Arc::new(tokio::sync::Notify::new());
                        state.triggers.insert(origin.clone(), trigger.clone());
                        Some(trigger)
                    }
                };
                if let Some(trigger) = start {
                    super::secondary::spawn(
                        self.clone(),
                        origin.clone(),
                        zone.origin_text.clone(),
                        spec.clone(),
                        trigger,
                        shared.clone(),
                        reload.clone(),
                    );
                }
            }
            let Some(version) = &zone.version else {
                continue;
            };
            let previous = {
                let mut state = self.lock();
                let history = state.history.entry(origin.clone()).or_default();
                let previous = history.back().cloned();
                let changed = previous
                    .as_ref()
                    .is_none_or(|p| p.serial != version.serial || p.digest != version.digest);
                if changed {
                    // Same serial, new content: the older copy cannot be
                    // told apart by serial any more, so it goes.
                    history.retain(|v| v.serial != version.serial);
                    history.push_back(version.clone());
                    while history.len() > HISTORY_VERSIONS {
                        history.pop_front();
                    }
                }
                previous
            };
            let served = settings
                .state_dir
                .as_ref()
                .and_then(|s| s.load_served(&zone.origin_text));
            let last = previous
                .as_ref()
                .map(|p| (p.serial, p.digest.clone()))
                .or(if first { served.clone() } else { None });
            match &last {
                Some((serial, digest))
                    if *serial == version.serial && *digest != version.digest =>
                {
                    tracing::warn!(
                        zone = %zone.origin_text,
                        serial,
                        "zone content changed but its SOA serial did not: secondaries will not transfer it (raise the serial or set serial = \"auto\")"
                    );
                }
                _ => {}
            }
            let serial_changed = last
                .as_ref()
                .is_none_or(|(serial, _)| *serial != version.serial);
            if serial_changed && !zone.notify.is_empty() {
                super::notify::spawn_notifies(self.clone(), snapshot, origin, zone, version.serial);
            }
            if served.as_ref() != Some(&(version.serial, version.digest.clone()))
                && let Some(state_dir) = &settings.state_dir
                && let Err(err) =
                    state_dir.store_served(&zone.origin_text, version.serial, &version.digest)
            {
                tracing::warn!(zone = %zone.origin_text, "cannot record the served serial: {err}");
            }
        }
        // Secondary tasks of zones no longer configured stop by themselves.
        let mut state = self.lock();
        state.triggers.retain(|origin, _| {
            settings
                .zones
                .get(origin)
                .is_some_and(|z| z.secondary.is_some())
        });
    }
}

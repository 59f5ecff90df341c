//! The control plane's shared state: where the configuration comes from,
//! the health registry and the snapshot being served, and reloading.

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::config::LoadedConfig;
use crate::health::{HealthMonitor, HealthRegistry};
use crate::snapshot::{BuildErrors, Snapshot, SnapshotSource};

/// How often `fastest` preferences are recomputed from probe RTTs.
const FASTEST_UPDATE_INTERVAL: std::time::Duration = std::time::Duration::from_millis(500);

/// State shared by the server, signal handlers and the admin API.
pub struct Control {
    /// Where snapshots are built from.
    pub source: SnapshotSource,
    /// Endpoint health, kept across reloads.
    pub health: Arc<HealthRegistry>,
    /// The snapshot answering queries.
    pub snapshot: Arc<ArcSwap<Snapshot>>,
    /// The health probers (started by `serve` with [`Control::start_probers`]).
    pub monitor: Arc<HealthMonitor>,
}

impl Control {
    /// Builds the first snapshot.
    ///
    /// # Errors
    /// Every problem in the configuration and the files it names.
    pub fn start(source: SnapshotSource) -> Result<(Self, LoadedConfig), BuildErrors> {
        let health = Arc::new(HealthRegistry::default());
        let (snapshot, loaded) = Snapshot::build(&source, &health)?;
        let monitor = Arc::new(HealthMonitor::new());
        monitor.replan(&snapshot.probes);
        Ok((
            Self {
                source,
                health,
                snapshot: Arc::new(ArcSwap::from_pointee(snapshot)),
                monitor,
            },
            loaded,
        ))
    }

    /// Builds a new snapshot and swaps it in; on error the old one stays.
    ///
    /// # Errors
    /// Every problem found; nothing changed.
    pub fn reload(&self) -> Result<(), BuildErrors> {
        let (snapshot, _) = Snapshot::build(&self.source, &self.health)?;
        let snapshot = Arc::new(snapshot);
        self.snapshot.store(snapshot.clone());
        // Re-plan the probers: unchanged endpoints keep their tasks.
        self.monitor.replan(&snapshot.probes);
        self.health.prune();
        Ok(())
    }

    /// Starts the health probers on `runtime` (they follow every reload), and
    /// the task that keeps `fastest` preferences in step with their RTTs.
    pub fn start_probers(&self, runtime: tokio::runtime::Handle) {
        self.monitor.start(runtime.clone());
        // `fastest` choices follow the probes' RTTs, with hysteresis.
        let snapshot = self.snapshot.clone();
        runtime.spawn(async move {
            let mut tick = tokio::time::interval(FASTEST_UPDATE_INTERVAL);
            loop {
                tick.tick().await;
                crate::health::fastest::update(&snapshot.load());
            }
        });
    }
}

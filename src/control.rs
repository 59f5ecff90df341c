//! The control plane's shared state: where the configuration comes from,
//! the health registry and the snapshot being served, and reloading.

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::config::LoadedConfig;
use crate::health::HealthRegistry;
use crate::snapshot::{BuildErrors, Snapshot, SnapshotSource};

/// State shared by the server, signal handlers and the admin API.
pub struct Control {
    /// Where snapshots are built from.
    pub source: SnapshotSource,
    /// Endpoint health, kept across reloads.
    pub health: Arc<HealthRegistry>,
    /// The snapshot answering queries.
    pub snapshot: Arc<ArcSwap<Snapshot>>,
}

impl Control {
    /// Builds the first snapshot.
    ///
    /// # Errors
    /// Every problem in the configuration and the files it names.
    pub fn start(source: SnapshotSource) -> Result<(Self, LoadedConfig), BuildErrors> {
        let health = Arc::new(HealthRegistry::default());
        let (snapshot, loaded) = Snapshot::build(&source, &health)?;
        Ok((
            Self {
                source,
                health,
                snapshot: Arc::new(ArcSwap::from_pointee(snapshot)),
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
        self.snapshot.store(Arc::new(snapshot));
        self.health.prune();
        Ok(())
    }
}

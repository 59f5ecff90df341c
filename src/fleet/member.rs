//! A member with `[cluster] config = "etcd"`: serves the newest published
//! version, follows new ones, and reports which it runs.
//!
//! At start it takes, in order, the newest version in etcd, the version it
//! last served (cached in `state_dir/fleet/current.json`, so a restart
//! with etcd down serves it), or nothing but its own `[server]` and
//! `[cluster]` (no zones) until a version arrives. It then watches
//! `PREFIX/config/`; each new version is written out under
//! `state_dir/fleet/vN/` ([`super::bundle::materialize`]), built in the
//! background and swapped in like a reload (`super::follow`, through
//! `Control::apply_source`). A version that does not build here (a
//! database missing on this host) changes nothing: the previous one keeps
//! serving, the failure is in the log, `/status`, `/metrics` and this
//! member's record, and it is tried again every [`RETRY_FAILED`]. Never on
//! the query path.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::bundle::{Bundle, BundleError, materialize};
use super::store::{ConfigKey, Store, VersionMeta, parse_latest, parse_meta};
use crate::cluster::etcd::{EtcdError, WatchEvent};
use crate::cluster::{ClusterSettings, FailedVersion, MemberConfig};
use crate::config::{ConfigError, LoadedConfig};
use crate::operator::unix_ms;
use crate::snapshot::SnapshotSource;
use crate::transfer::StateDir;

/// How often a version that failed to build here is tried again (a
/// database may have been installed meanwhile).
pub const RETRY_FAILED: Duration = Duration::from_secs(15);
/// How long a member may run a version more than one behind the newest
/// before it is flagged.
pub const LAG_GRACE: Duration = Duration::from_secs(60);
/// How long the start waits for etcd before it uses the cached version.
const START_TIMEOUT: Duration = Duration::from_secs(3);
pub(super) const FIRST_BACKOFF: Duration = Duration::from_millis(250);
pub(super) const MAX_BACKOFF: Duration = crate::cluster::MAX_BACKOFF;

/// This member's fleet state, as `/status` shows it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FleetStatus {
    /// The version in service (`None`: none yet, no zones served).
    pub version: Option<u64>,
    /// Its config digest.
    pub digest: Option<String>,
    /// Since when it serves it (ms since the epoch).
    pub since_ms: u64,
    /// Where it came from: `etcd`, `cache` (etcd was unreachable at
    /// start) or `none`.
    pub from: &'static str,
    /// The newest version that failed to build here.
    pub failed: Option<FailedVersion>,
    /// The newest published version seen.
    pub newest: Option<u64>,
    /// Local files that differ from the published ones.
    pub local_files: Vec<String>,
    /// Whether the watch on the versions is live.
    pub store_connected: bool,
    /// The last store error, while disconnected.
    pub store_error: Option<String>,
    /// The kept versions' metadata (for lag and `/status`).
    #[serde(skip)]
    pub versions: BTreeMap<u64, VersionMeta>,
}

/// How far a member is behind the newest version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Lag {
    /// Versions published after the one it runs.
    pub behind: u64,
    /// More than one behind for longer than [`LAG_GRACE`].
    pub lagging: bool,
}

/// How far a member running `version` is behind `newest` at `now_ms`: it
/// counts as lagging once it has been more than one version behind (the
/// version two after its own was published) for [`LAG_GRACE`].
pub fn lag(
    version: Option<u64>,
    newest: Option<u64>,
    versions: &BTreeMap<u64, VersionMeta>,
    now_ms: u64,
) -> Lag {
    let running = version.unwrap_or(0);
    let behind = newest.unwrap_or(0).saturating_sub(running);
    // A version no longer kept was published long ago.
    let since = versions.get(&(running + 2)).map_or(0, |m| m.published_ms);
    Lag {
        behind,
        lagging: behind > 1 && now_ms.saturating_sub(since) > LAG_GRACE.as_millis() as u64,
    }
}

/// One configuration a member can start with.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The version (`None`: only the member's own sections).
    pub version: Option<(VersionMeta, Bundle)>,
    /// `etcd`, `cache` or `none`.
    pub from: &'static str,
}

/// What the member keeps in `state_dir/fleet/current.json`.
#[derive(Serialize, Deserialize)]
struct Cached {
    meta: VersionMeta,
    bundle: Bundle,
}

/// A member's fleet runtime, shared with the admin API and metrics.
#[derive(Debug)]
pub struct Fleet {
    pub(super) store: Store,
    /// The member's own file (`[server]`, `[cluster]`).
    local: LoadedConfig,
    /// `state_dir/fleet`.
    dir: PathBuf,
    status: Mutex<FleetStatus>,
    failures: AtomicU64,
}

/// Checks a member's own file: with `config = "etcd"` it holds only
/// `[server]` and `[cluster]` (the rest is published).
pub fn check_local(loaded: &LoadedConfig) -> Vec<ConfigError> {
    let Ok(table) = loaded.text.parse::<toml::Table>() else {
        return Vec::new();
    };
    table
        .keys()
        .filter(|key| !matches!(key.as_str(), "server" | "cluster"))
        .map(|key| {
            let line = loaded.text.lines().position(|line| {
                let line = line.trim_start().trim_start_matches('[').trim_start();
                line.strip_prefix(key.as_str())
                    .and_then(|rest| rest.trim_start().chars().next())
                    .is_some_and(|c| matches!(c, ']' | '.' | '='))
            });
            let message = format!(
                "`{key}` in a member's own file: with [cluster] config = \"etcd\" everything but [server] and [cluster] comes from the published version (publish it with `gslb publish`, and keep only [server] and [cluster] here)"
            );
            match line {
                Some(line) => ConfigError {
                    file: loaded.path.clone(),
                    position: Some((line + 1, 1)),
                    message,
                },
                None => loaded.error(message),
            }
        })
        .collect()
}

impl Fleet {
    /// The runtime of the member whose own file is `local`.
    ///
    /// # Errors
    /// The etcd client cannot be built.
    pub fn new(local: LoadedConfig, settings: &ClusterSettings) -> Result<Self, EtcdError> {
        let state_dir =
            StateDir::for_config(&local.path, local.config.server.state_dir.as_deref()).0;
        Ok(Self {
            store: Store::new(settings)?,
            dir: state_dir.join("fleet"),
            local,
            status: Mutex::new(FleetStatus {
                from: "none",
                ..FleetStatus::default()
            }),
            failures: AtomicU64::new(0),
        })
    }

    /// A copy of the state `/status` shows.
    pub fn status(&self) -> FleetStatus {
        self.lock().clone()
    }

    /// Builds that failed on this member since it started.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// What this member's record says.
    pub fn member_config(&self) -> MemberConfig {
        let status = self.lock();
        MemberConfig {
            version: status.version,
            since_ms: status.since_ms,
            failed: status.failed.clone(),
            local_files: status.local_files.clone(),
        }
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, FleetStatus> {
        // Plain data; a panic while it was held leaves it usable.
        self.status
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// What to start with, best first: the newest version in etcd (if
    /// etcd answers within [`START_TIMEOUT`]), the cached one, nothing.
    pub async fn candidates(&self) -> Vec<Candidate> {
        let cached = self.read_cache();
        let newest = match tokio::time::timeout(START_TIMEOUT, self.fetch_newest()).await {
            Ok(Ok(newest)) => {
                self.set_connected(true, None);
                newest
            }
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "etcd unreachable at start: serving the cached configuration version, if any");
                self.set_connected(false, Some(err.to_string()));
                None
            }
            Err(_) => {
                tracing::warn!(timeout = ?START_TIMEOUT, "etcd did not answer at start: serving the cached configuration version, if any");
                self.set_connected(false, Some("no answer at start".into()));
                None
            }
        };
        let mut list = Vec::new();
        let cached_version = cached.as_ref().map(|c| c.meta.version);
        if let Some((meta, bundle)) = newest
            && Some(meta.version) != cached_version
        {
            list.push(Candidate {
                version: Some((meta, bundle)),
                from: "etcd",
            });
        }
        if let Some(cached) = cached {
            list.push(Candidate {
                from: if list.is_empty() && self.lock().store_connected {
                    "etcd"
                } else {
                    "cache"
                },
                version: Some((cached.meta, cached.bundle)),
            });
        }
        list.push(Candidate {
            version: None,
            from: "none",
        });
        list
    }

    /// Writes out the configuration of `candidate`; returns where it is
    /// and the digest the member reports for it.
    ///
    /// # Errors
    /// It cannot be written (see [`materialize`]).
    pub fn prepare(
        &self,
        candidate: &Candidate,
    ) -> Result<(SnapshotSource, Option<String>), BundleError> {
        let (dir, bundle, digest) = match &candidate.version {
            Some((meta, bundle)) => (
                self.dir.join(format!("v{}", meta.version)),
                Some(bundle),
                Some(meta.digest.clone()),
            ),
            None => (self.dir.join("none"), None, None),
        };
        let config_path = materialize(bundle, &self.local, &dir)?;
        Ok((
            SnapshotSource {
                config_path,
                extra_zones: Vec::new(),
            },
            digest,
        ))
    }

    /// Records that `candidate` serves now: caches it, removes the other
    /// versions' directories, compares the local files.
    pub fn now_serving(&self, candidate: &Candidate) {
        let version = candidate.version.as_ref().map(|(m, _)| m.version);
        let mismatches = candidate
            .version
            .as_ref()
            .map(|(_, bundle)| bundle.local_mismatches(&self.local.path))
            .unwrap_or_default();
        for mismatch in &mismatches {
            tracing::warn!(
                version,
                "local file differs from the published version: {mismatch}"
            );
        }
        if let Some((meta, bundle)) = &candidate.version {
            let cached = serde_json::to_vec(&Cached {
                meta: meta.clone(),
                bundle: bundle.clone(),
            })
            .unwrap_or_default();
            if let Err(err) = crate::operator::write_atomically(&self.cache_path(), &cached) {
                tracing::error!(error = %err, "cannot cache the configuration version in state_dir; a restart with etcd down would not serve it");
            }
        }
        let keep = self
            .dir
            .join(version.map_or("none".to_string(), |v| format!("v{v}")));
        self.remove_version_dirs(Some(&keep));
        {
            let mut status = self.lock();
            status.version = version;
            status.digest = candidate.version.as_ref().map(|(m, _)| m.digest.clone());
            status.since_ms = unix_ms(SystemTime::now());
            status.from = candidate.from;
            status.local_files = mismatches;
            if status
                .failed
                .as_ref()
                .is_some_and(|f| version.is_some_and(|v| f.version <= v))
            {
                status.failed = None;
            }
        }
        match &candidate.version {
            Some((meta, _)) => tracing::info!(
                version = meta.version,
                from = candidate.from,
                digest = %meta.digest,
                "serving configuration version {}",
                meta.version
            ),
            None => tracing::error!(
                "no configuration version to serve (none published, or etcd unreachable and none cached): serving no zones until one arrives"
            ),
        }
    }

    /// Records that `version` did not build here.
    pub fn failed(&self, version: u64, errors: Vec<String>) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        let mut status = self.lock();
        let running = status.version;
        let again = status
            .failed
            .as_ref()
            .filter(|f| f.version == version && f.errors == errors)
            .map(|f| f.at_ms);
        if again.is_some() {
            // Retries that fail the same way are logged once.
            tracing::debug!(
                version,
                running,
                "configuration version {version} still does not build on this member"
            );
        } else {
            for err in &errors {
                tracing::error!(
                    version,
                    running,
                    "configuration version {version} does not build on this member: {err}"
                );
            }
            tracing::error!(
                version,
                running,
                "configuration version {version} not applied; the version in service keeps serving (tried again every {RETRY_FAILED:?})"
            );
        }
        let first = again.unwrap_or_else(|| unix_ms(SystemTime::now()));
        status.failed = Some(FailedVersion {
            version,
            at_ms: first,
            errors,
        });
        drop(status);
        let _ = std::fs::remove_dir_all(self.dir.join(format!("v{version}")));
    }

    fn cache_path(&self) -> PathBuf {
        self.dir.join("current.json")
    }

    fn read_cache(&self) -> Option<Cached> {
        let bytes = match std::fs::read(self.cache_path()) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return None,
            Err(err) => {
                tracing::error!(error = %err, "cannot read the cached configuration version");
                return None;
            }
        };
        match serde_json::from_slice::<Cached>(&bytes) {
            Ok(cached) if cached.bundle.format <= super::bundle::FORMAT => Some(cached),
            Ok(_) => None,
            Err(err) => {
                tracing::error!(error = %err, path = %self.cache_path().display(), "ignoring a damaged cached configuration version");
                None
            }
        }
    }

    /// Removes the `vN` directories but `keep`.
    fn remove_version_dirs(&self, keep: Option<&Path>) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let versioned = name == "none"
                || name
                    .strip_prefix('v')
                    .is_some_and(|n| n.parse::<u64>().is_ok());
            if versioned && path.is_dir() && Some(path.as_path()) != keep {
                let _ = std::fs::remove_dir_all(&path);
            }
        }
    }

    pub(super) fn set_connected(&self, connected: bool, error: Option<String>) {
        let mut status = self.lock();
        status.store_connected = connected;
        status.store_error = error;
    }

    /// Reads the versions' metadata and the newest version with its bundle.
    async fn fetch_newest(&self) -> Result<Option<(VersionMeta, Bundle)>, String> {
        let (versions, _) = self.store.versions().await.map_err(|e| e.to_string())?;
        let (newest, _) = self.store.latest().await.map_err(|e| e.to_string())?;
        self.set_versions(versions, newest);
        match newest {
            Some(version) => self.fetch(version).await,
            None => Ok(None),
        }
    }

    pub(super) async fn fetch(
        &self,
        version: u64,
    ) -> Result<Option<(VersionMeta, Bundle)>, String> {
        let meta = self.lock().versions.get(&version).cloned();
        let Some(meta) = meta else {
            return Err(format!("version {version} has no metadata"));
        };
        match self.store.bundle(version).await {
            Ok(Some(bundle)) => Ok(Some((meta, bundle))),
            Ok(None) => Err(format!("version {version} has no bundle")),
            Err(err) => Err(err.to_string()),
        }
    }

    pub(super) fn set_versions(&self, versions: Vec<VersionMeta>, newest: Option<u64>) {
        let mut status = self.lock();
        status.versions = versions.into_iter().map(|m| (m.version, m)).collect();
        status.newest = newest;
    }

    /// Whether `newest` should be built now: not in service, and not
    /// already failed unless `retry`.
    pub(super) fn wants(&self, newest: Option<u64>, retry: bool) -> Option<u64> {
        let status = self.lock();
        let newest = newest?;
        if status.version == Some(newest) {
            return None;
        }
        let failed = status.failed.as_ref().is_some_and(|f| f.version == newest);
        (!failed || retry).then_some(newest)
    }

    pub(super) fn handle_event(&self, event: WatchEvent, arrived: &mut Option<(u64, Bundle)>) {
        match event {
            WatchEvent::Put(kv) => match self.store.classify(&kv.key) {
                Some(ConfigKey::Latest) => match parse_latest(&kv.value) {
                    Ok(newest) => self.lock().newest = Some(newest),
                    Err(err) => {
                        tracing::error!(key = %kv.key, error = %err, "ignoring a newest-version value that does not parse")
                    }
                },
                Some(ConfigKey::Meta(_)) => match parse_meta(&kv.value) {
                    Ok(meta) => {
                        self.lock().versions.insert(meta.version, meta);
                    }
                    Err(err) => {
                        tracing::error!(key = %kv.key, error = %err, "ignoring version metadata that does not parse")
                    }
                },
                Some(ConfigKey::Bundle(version)) => match Bundle::parse(&kv.value) {
                    Ok(bundle) => *arrived = Some((version, bundle)),
                    Err(err) => {
                        tracing::error!(key = %kv.key, error = %err, "ignoring a configuration bundle that does not parse")
                    }
                },
                None => {
                    tracing::warn!(key = %kv.key, "ignoring an unknown key under the configuration prefix")
                }
            },
            WatchEvent::Delete { key, .. } => {
                if let Some(ConfigKey::Meta(version)) = self.store.classify(&key) {
                    self.lock().versions.remove(&version);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(version: u64, published_ms: u64) -> VersionMeta {
        VersionMeta {
            version,
            published_ms,
            by: "ops@host".into(),
            message: String::new(),
            digest: "d".into(),
            bytes: 1,
            rollback_of: None,
        }
    }

    #[test]
    fn lagging_means_more_than_one_behind_for_a_minute() {
        let versions: BTreeMap<u64, VersionMeta> = [(3, meta(3, 100_000)), (4, meta(4, 200_000))]
            .into_iter()
            .collect();
        // One behind: never flagged.
        let one = lag(Some(3), Some(4), &versions, 10_000_000);
        assert_eq!((one.behind, one.lagging), (1, false));
        // Two behind since version 4 (= 2 + 2) was published at 200 s.
        let fresh = lag(Some(2), Some(4), &versions, 250_000);
        assert_eq!((fresh.behind, fresh.lagging), (2, false));
        let stale = lag(Some(2), Some(4), &versions, 260_001);
        assert_eq!((stale.behind, stale.lagging), (2, true));
        // Up to date.
        assert_eq!(lag(Some(4), Some(4), &versions, 1).behind, 0);
    }

    #[test]
    fn a_members_file_holds_only_server_and_cluster() {
        let text = "[server]\nlisten = []\n\n[cluster]\nname = \"a\"\netcd = []\n\n[[zone]]\norigin = \"x\"\n";
        let loaded = crate::config::parse_config(Path::new("m.toml"), text.to_string()).unwrap();
        let errors = check_local(&loaded);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].position, Some((8, 1)));
        assert!(errors[0].message.contains("`zone`"), "{}", errors[0]);
    }
}

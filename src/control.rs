//! The control plane's shared state: where the configuration comes from,
//! the health table and the snapshot being served, and reloading.
//!
//! Reloads come from SIGHUP, the admin API and the file watcher; they are
//! serialised here, logged, and counted in [`Metrics`].

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::ArcSwap;

use crate::cluster::{Cluster, ClusterSettings};
use crate::config::LoadedConfig;
use crate::dns::served::{Served, SharedServed};
use crate::events::{Event, EventKind, Events};
use crate::health::{HealthMonitor, HealthTable};
use crate::metrics::Metrics;
use crate::operator::OperatorState;
use crate::querylog::QueryLog;
use crate::snapshot::{BuildError, BuildErrors, Snapshot, SnapshotSource};

/// How often `fastest` preferences are recomputed from probe RTTs.
const FASTEST_UPDATE_INTERVAL: std::time::Duration = std::time::Duration::from_millis(500);

/// State shared by the server, signal handlers and the admin API.
pub struct Control {
    /// Where snapshots are built from, and the config digest to report
    /// instead of computing one (a fleet member reports its version's).
    origin: Mutex<(SnapshotSource, Option<String>)>,
    /// Runtime state of endpoints (verdicts, overrides, weights, `fastest`
    /// results), kept across reloads; the query path reads its views.
    pub health: Arc<HealthTable>,
    /// What the DNS workers answer from: the snapshot in service and what
    /// the data plane built from it (see [`Control::snapshot`]).
    pub served: SharedServed,
    /// The health probers (started by `serve` with [`Control::start_probers`]).
    pub monitor: Arc<HealthMonitor>,
    // --- operations (admin API, metrics, query log, watching) ---
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// The query log (configured from `[query_log]` on every load).
    pub query_log: Arc<QueryLog>,
    /// Health, override and reload events, and the alert webhooks.
    pub events: Arc<Events>,
    /// Zone transfer state: versions for IXFR, status, NOTIFY and
    /// secondary zone tasks (started by `serve`).
    pub transfers: Arc<crate::transfer::Hub>,
    /// Load-aware answers: learned demand and the spill plans in force.
    load: Arc<Mutex<crate::load::LoadState>>,
    /// Files the configuration in service was read from (for `watch`).
    watched: Mutex<Vec<PathBuf>>,
    /// Whether `[server] watch` is on in the configuration in service.
    watch: std::sync::atomic::AtomicBool,
    /// Serialises reloads (SIGHUP, API and watcher may race).
    reloading: Mutex<()>,
    /// Counts the configurations applied, so background tasks with nothing
    /// to do in the current one can sleep until the next.
    applied: tokio::sync::watch::Sender<u64>,
    // --- fleet (operator state, cluster membership) ---
    /// Overrides and runtime weights, kept in `[server] state_dir`.
    pub operator: Arc<OperatorState>,
    /// The cluster runtime when `[cluster]` is configured (started by
    /// `serve` with [`crate::cluster::session::run`]).
    pub cluster: Option<Arc<Cluster>>,
    /// Digest of the configuration in service and when it was loaded.
    identity: Mutex<(String, SystemTime)>,
    /// The published configuration this member follows (`[cluster] config
    /// = "etcd"`; started by `serve` with [`crate::fleet::follow::run`]).
    pub fleet: Option<Arc<crate::fleet::member::Fleet>>,
}

/// What a successful reload reports.
#[derive(Debug, Clone)]
pub struct ReloadReport {
    /// Modification time of the configuration file that was loaded.
    pub config_mtime: Option<SystemTime>,
}

impl Control {
    /// Builds the first snapshot, with no operator state (`check`, offline
    /// `explain`, tests and benches: the files alone).
    ///
    /// # Errors
    /// Every problem in the configuration and the files it names.
    pub fn start(source: SnapshotSource) -> Result<(Self, LoadedConfig), BuildErrors> {
        Self::build(source, false, None, None)
    }

    /// [`Control::start`] for `serve`: the operator state kept in `[server]
    /// state_dir` (overrides, weights) is restored and kept there.
    ///
    /// # Errors
    /// Every problem in the configuration and the files it names.
    pub fn start_serving(source: SnapshotSource) -> Result<(Self, LoadedConfig), BuildErrors> {
        Self::build(source, true, None, None)
    }

    /// [`Control::start_serving`] for a fleet member, from the
    /// configuration `fleet` wrote for a published version (`digest`: the
    /// version's).
    ///
    /// # Errors
    /// Every problem in the configuration and the files it names.
    pub fn start_member(
        source: SnapshotSource,
        fleet: Arc<crate::fleet::member::Fleet>,
        digest: Option<String>,
    ) -> Result<(Self, LoadedConfig), BuildErrors> {
        Self::build(source, true, Some(fleet), digest)
    }

    fn build(
        source: SnapshotSource,
        restore_state: bool,
        fleet: Option<Arc<crate::fleet::member::Fleet>>,
        digest: Option<String>,
    ) -> Result<(Self, LoadedConfig), BuildErrors> {
        let health = Arc::new(HealthTable::default());
        let (snapshot, loaded) =
            Snapshot::build(&source, &health).map_err(|errors| with_ops_errors(&source, errors))?;
        let cluster_settings = check_ops_settings(&loaded)?;
        let cluster = match cluster_settings {
            Some(settings) => Some(Arc::new(Cluster::new(settings).map_err(|err| {
                BuildErrors(vec![BuildError::Config(
                    loaded.error(format!("[cluster]: {err}")),
                )])
            })?)),
            None => None,
        };
        let monitor = Arc::new(HealthMonitor::new(health.clone()));
        monitor.replan(&snapshot.probes);
        let control = Self {
            health,
            served: Arc::new(ArcSwap::from_pointee(Served::new(Arc::new(snapshot), None))),
            monitor,
            metrics: Arc::new(Metrics::new()),
            query_log: Arc::new(QueryLog::default()),
            events: Arc::new(Events::default()),
            transfers: Arc::new(crate::transfer::Hub::default()),
            load: Arc::new(Mutex::new(crate::load::LoadState::default())),
            watched: Mutex::new(Vec::new()),
            watch: std::sync::atomic::AtomicBool::new(false),
            reloading: Mutex::new(()),
            applied: tokio::sync::watch::Sender::new(0),
            operator: Arc::new(OperatorState::default()),
            cluster,
            identity: Mutex::new((String::new(), SystemTime::now())),
            origin: Mutex::new((source, digest)),
            fleet,
        };
        if restore_state
            && let Some(warning) = control
                .operator
                .restore(&state_dir(&loaded), &control.health)
        {
            tracing::error!("operator state not restored: {warning}");
        }
        control.apply_ops_settings(&loaded);
        control.metrics.record_loaded(mtime(&loaded.path));
        // The starting state: later changes are events.
        control
            .events
            .observe(&control.snapshot(), &control.health.view());
        control.transfers.applied(control.snapshot());
        Ok((control, loaded))
    }

    /// Builds a new snapshot and swaps it in; on error the old one stays.
    /// Logs the result (with `trigger`: "sighup", "api", "watch") and counts
    /// it in the metrics.
    ///
    /// # Errors
    /// Every problem found; nothing changed.
    pub fn reload(&self, trigger: &str) -> Result<ReloadReport, BuildErrors> {
        self.rebuild(None, trigger)
    }

    /// Like [`Control::reload`], from another configuration (a fleet
    /// member's next version, reporting `digest` as its config digest),
    /// which reloads then rebuild when it is in service.
    ///
    /// # Errors
    /// Every problem found; nothing changed (the old configuration stays
    /// the one reloads read).
    pub fn apply_source(
        &self,
        source: SnapshotSource,
        digest: Option<String>,
        trigger: &str,
    ) -> Result<ReloadReport, BuildErrors> {
        self.rebuild(Some((source, digest)), trigger)
    }

    /// Where snapshots are built from now.
    pub fn source(&self) -> SnapshotSource {
        self.lock_origin().0.clone()
    }

    fn lock_origin(&self) -> std::sync::MutexGuard<'_, (SnapshotSource, Option<String>)> {
        self.origin
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn rebuild(
        &self,
        next: Option<(SnapshotSource, Option<String>)>,
        trigger: &str,
    ) -> Result<ReloadReport, BuildErrors> {
        let _serialised = self
            .reloading
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (source, digest) = next.unwrap_or_else(|| self.lock_origin().clone());
        let built = Snapshot::build(&source, &self.health)
            .map_err(|errors| with_ops_errors(&source, errors))
            .and_then(|(snapshot, loaded)| {
                check_ops_settings(&loaded).map(|cluster| (snapshot, loaded, cluster))
            });
        let (snapshot, loaded, cluster) = match built {
            Ok(built) => built,
            Err(errors) => {
                self.metrics.record_reload(false, None);
                tracing::error!(
                    trigger,
                    errors = errors.0.len(),
                    "reload failed, keeping the running configuration"
                );
                for err in &errors.0 {
                    tracing::error!(trigger, "reload error: {err}");
                }
                let reasons: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
                self.events.record(
                    Event::new(
                        EventKind::ReloadFailed,
                        source.config_path.display().to_string(),
                        format!("reload ({trigger}) failed, the running configuration stays"),
                    )
                    .because(reasons.join("; ")),
                );
                return Err(errors);
            }
        };
        if cluster.as_ref() != self.cluster.as_ref().map(|c| &c.settings) {
            tracing::warn!("[cluster] changed: it is read at start only; restart to apply it");
        }
        snapshot.log_warnings();
        *self.lock_origin() = (source, digest);
        let snapshot = Arc::new(snapshot);
        let served = Served::new(snapshot.clone(), Some(&self.served.load()));
        self.served.store(Arc::new(served));
        self.transfers.applied(snapshot.clone());
        // New endpoint records get the operator state in force.
        self.operator.apply_all(&self.health);
        // Re-plan the probers: unchanged endpoints keep their tasks.
        self.monitor.replan(&snapshot.probes);
        // Endpoints the new snapshot no longer has leave the table.
        self.health
            .retain(snapshot.probes.endpoints.iter().map(|e| e.health.id()));
        self.apply_ops_settings(&loaded);
        let config_mtime = mtime(&loaded.path);
        self.metrics.record_reload(true, config_mtime);
        self.events.record(Event::new(
            EventKind::Reload,
            loaded.path.display().to_string(),
            format!("reloaded ({trigger})"),
        ));
        self.events.observe(&snapshot, &self.health.view());
        tracing::info!(
            trigger,
            config = %loaded.path.display(),
            config_mtime = config_mtime.map_or(0.0, unix_secs),
            zones = snapshot.zones.len(),
            services = snapshot.services.len(),
            "reloaded configuration"
        );
        Ok(ReloadReport { config_mtime })
    }

    /// Starts the health probers on `runtime` (they follow every reload), and
    /// the task that keeps `fastest` preferences in step with their RTTs.
    pub fn start_probers(&self, runtime: tokio::runtime::Handle) {
        self.monitor.start(runtime.clone());
        // Events follow health changes (not traffic), and alerts go out.
        self.events.start(runtime.clone());
        let (events, served, health) = (
            self.events.clone(),
            self.served.clone(),
            self.health.clone(),
        );
        runtime.spawn(async move {
            loop {
                health.changed().await;
                events.observe(&served.load().snapshot, &health.view());
            }
        });
        // `fastest` choices follow the probes' RTTs, with hysteresis; with
        // no `fastest` service, the task sleeps until a reload.
        let served = self.served.clone();
        let health = self.health.clone();
        let mut applied = self.applied.subscribe();
        runtime.spawn(async move {
            let mut tick = tokio::time::interval(FASTEST_UPDATE_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                if !served.load().snapshot.fastest.has_work() {
                    if applied.changed().await.is_err() {
                        return;
                    }
                    continue;
                }
                tick.tick().await;
                crate::health::fastest::update(&health, &served.load().snapshot.fastest);
            }
        });
    }

    /// Starts the zone transfer tasks (NOTIFY out, secondary zone
    /// refreshes); call inside the tokio runtime. A transferred or expired
    /// secondary zone is served through a reload (trigger "transfer").
    pub fn start_transfers(self: &Arc<Self>) {
        let control = Arc::downgrade(self);
        let reload: crate::transfer::Reload = Arc::new(move || {
            if let Some(control) = control.upgrade() {
                tokio::task::spawn_blocking(move || {
                    // Logged and counted by `reload` itself.
                    let _ = control.reload("transfer");
                });
            }
        });
        let served = self.served.clone();
        self.transfers
            .start(Arc::new(move || served.load().snapshot.clone()), reload);
    }

    /// The load-aware answers' state (control plane only: the loop,
    /// `/status`, `/metrics`).
    pub fn lock_load(&self) -> std::sync::MutexGuard<'_, crate::load::LoadState> {
        lock_load(&self.load)
    }

    /// Starts the load-aware answers' loop on `runtime`: once a second while
    /// some service is load-aware (otherwise asleep until a reload), it
    /// samples the answer counters, re-plans the splits and publishes them
    /// with the health view when they moved by more than noise.
    pub fn start_load_planner(&self, runtime: &tokio::runtime::Handle) {
        let served = self.served.clone();
        let health = self.health.clone();
        let metrics = self.metrics.clone();
        let load = self.load.clone();
        let mut applied = self.applied.subscribe();
        runtime.spawn(async move {
            let mut tick = tokio::time::interval(crate::load::PLAN_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                if !served
                    .load()
                    .snapshot
                    .services
                    .iter()
                    .any(|s| s.load.is_some())
                {
                    if applied.changed().await.is_err() {
                        return;
                    }
                    continue;
                }
                tick.tick().await;
                let snapshot = served.load().snapshot.clone();
                let view = health.view_arc();
                let totals = metrics.pool_totals();
                let usable = |pool: &crate::policy::Pool| crate::load::pool_usable(pool, &view);
                let plans = lock_load(&load).handle_tick(
                    std::time::Instant::now(),
                    &snapshot.services,
                    &totals,
                    &usable,
                );
                if let Some(plans) = plans {
                    health.set_splits(crate::load::published_splits(&snapshot.services, &plans));
                }
            }
        });
    }

    /// The snapshot in service (for the control plane; DNS workers load
    /// [`Control::served`] once per query or batch instead).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.served.load().snapshot.clone()
    }

    /// Whether `[server] watch` is on.
    pub fn watch_enabled(&self) -> bool {
        self.watch.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The files the configuration in service was read from: the config
    /// file, zone files, GeoIP databases and latency tables.
    pub fn watched_files(&self) -> Vec<PathBuf> {
        self.watched
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The name operator changes made here carry: the cluster member's
    /// name, or `standalone`.
    pub fn member_name(&self) -> &str {
        self.cluster
            .as_ref()
            .map_or("standalone", |c| c.settings.name.as_str())
    }

    /// The digest of the configuration in service (what must be equal
    /// across a fleet: everything but `[server]` and `[cluster]`, plus the
    /// files it reads) and when it was loaded.
    pub fn config_identity(&self) -> (String, SystemTime) {
        self.identity
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn apply_ops_settings(&self, loaded: &LoadedConfig) {
        let (source, pinned) = self.lock_origin().clone();
        let digest = pinned.unwrap_or_else(|| config_digest(&source, loaded));
        *self
            .identity
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = (digest, SystemTime::now());
        self.query_log.configure(&loaded.config.query_log);
        self.events.configure_alerts(&loaded.config.alerts);
        self.watch.store(
            loaded.config.server.watch,
            std::sync::atomic::Ordering::Relaxed,
        );
        let files = files_of(&source, loaded);
        *self
            .watched
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = files;
        self.applied.send_modify(|count| *count += 1);
    }
}

/// How often [`watch_files`] looks at modification times.
const WATCH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

/// Polls the modification times (and sizes) of the configuration's files
/// every [`WATCH_INTERVAL`] while `[server] watch` is on, and reloads when
/// one changed; while it is off, sleeps until a reload turns it on. A
/// failed reload is not retried until a file changes again.
pub async fn watch_files(control: Arc<Control>) -> std::io::Result<()> {
    type Stamp = Vec<(PathBuf, Option<(SystemTime, u64)>)>;
    let stamp = |files: Vec<PathBuf>| -> Stamp {
        files
            .into_iter()
            .map(|path| {
                let meta = std::fs::metadata(&path)
                    .ok()
                    .and_then(|m| m.modified().ok().map(|t| (t, m.len())));
                (path, meta)
            })
            .collect()
    };
    let mut last: Option<Stamp> = None;
    let mut applied = control.applied.subscribe();
    let mut tick = tokio::time::interval(WATCH_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if !control.watch_enabled() {
            last = None;
            if applied.changed().await.is_err() {
                return Ok(());
            }
            continue;
        }
        tick.tick().await;
        if !control.watch_enabled() {
            continue;
        }
        let current = stamp(control.watched_files());
        match &last {
            Some(previous) if *previous != current => {
                let changed: Vec<String> = current
                    .iter()
                    .filter(|entry| !previous.contains(entry))
                    .map(|(path, _)| path.display().to_string())
                    .collect();
                tracing::info!(files = ?changed, "configuration files changed");
                let reloader = control.clone();
                let _ = tokio::task::spawn_blocking(move || reloader.reload("watch")).await;
                // Stamp again: a good reload may name other files.
                last = Some(stamp(control.watched_files()));
            }
            Some(_) => {}
            None => last = Some(current),
        }
    }
}

/// How long a failed re-sign waits before it is tried again.
const RESIGN_RETRY: std::time::Duration = std::time::Duration::from_secs(10);

/// Longest sleep of the re-sign task between two readings of the wall
/// clock. Signatures expire by the wall clock, but tokio sleeps on the
/// monotonic one, which does not move while a machine is suspended and
/// does not follow a clock stepped forward: one long sleep could outlast
/// the signatures.
const RESIGN_CLOCK_CHECK: std::time::Duration = std::time::Duration::from_secs(5);

/// Keeps signed zones' signatures fresh: when the wall clock reaches the
/// serving snapshot's earliest re-sign time (halfway through the
/// signatures' validity, or a key's next timing event), rebuilds it like a
/// reload and swaps it in. A failed re-sign keeps the old snapshot (its
/// signatures are still valid) and is retried; without signed zones the
/// task sleeps until a reload.
pub async fn resign_zones(control: Arc<Control>) -> std::io::Result<()> {
    let mut applied = control.applied.subscribe();
    loop {
        let Some(next) = control.snapshot().dnssec.next_resign() else {
            if applied.changed().await.is_err() {
                return Ok(());
            }
            continue;
        };
        let now = unix_secs(SystemTime::now());
        if now < next as f64 {
            let wait = std::time::Duration::from_secs_f64(next as f64 - now);
            tokio::select! {
                changed = applied.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                    // A reload signed afresh: look at the new re-sign time.
                }
                () = tokio::time::sleep(wait.min(RESIGN_CLOCK_CHECK)) => {}
            }
            // Read the wall clock again (it may have jumped meanwhile).
            continue;
        }
        tracing::info!("re-signing zones before their signatures expire");
        let reloader = control.clone();
        let result = tokio::task::spawn_blocking(move || reloader.reload("resign")).await;
        if !matches!(result, Ok(Ok(_))) {
            tokio::time::sleep(RESIGN_RETRY).await;
        }
    }
}

/// Where runtime state is kept: `[server] state_dir`, relative to the
/// config file, default `state/` beside it (as zone transfers keep theirs).
pub fn state_dir(loaded: &LoadedConfig) -> PathBuf {
    crate::transfer::StateDir::for_config(&loaded.path, loaded.config.server.state_dir.as_deref()).0
}

/// SHA-256 (hex) of the configuration without `[server]` and `[cluster]`
/// (re-serialised, so comments and layout do not count), then of every
/// file it reads, in path order.
fn config_digest(source: &SnapshotSource, loaded: &LoadedConfig) -> String {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    if let Ok(mut table) = loaded.text.parse::<toml::Table>() {
        table.remove("server");
        table.remove("cluster");
        context.update(toml::to_string(&table).unwrap_or_default().as_bytes());
    }
    for file in files_of(source, loaded) {
        if file == loaded.path {
            continue;
        }
        // A file that cannot be read counts as empty (the build read it).
        let bytes = std::fs::read(&file).unwrap_or_default();
        context.update(&(bytes.len() as u64).to_be_bytes());
        context.update(&bytes);
    }
    context
        .finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A failed build's errors, with those of the operations settings when
/// the configuration file itself loads: every mistake is reported at once,
/// not the next one only after the first is fixed.
fn with_ops_errors(source: &SnapshotSource, mut errors: BuildErrors) -> BuildErrors {
    if let Ok(loaded) = crate::config::load_config(&source.config_path)
        && let Err(more) = check_ops_settings(&loaded)
    {
        errors.0.extend(more.0);
    }
    errors
}

/// Checks the operations settings the snapshot does not read; returns the
/// cluster settings when `[cluster]` is present.
fn check_ops_settings(loaded: &LoadedConfig) -> Result<Option<ClusterSettings>, BuildErrors> {
    let mut errors = Vec::new();
    for alert in &loaded.config.alerts {
        if !(alert.url.starts_with("http://") || alert.url.starts_with("https://")) {
            errors.push(BuildError::Config(loaded.error(format!(
                "[[alerts]] url = {:?}: use an http:// or https:// URL",
                alert.url
            ))));
        }
        for name in alert.events.iter().flatten() {
            if EventKind::subscribed_by(name.get_ref()).is_none() {
                errors.push(BuildError::Config(loaded.error_at(
                    name.span(),
                    format!(
                        "unknown alert event {:?} (use endpoint-down, pool-down, failover, override, weight, reload, reload-failed or another event name)",
                        name.get_ref()
                    ),
                )));
            }
        }
    }
    if let Err(err) = loaded.in_range(&loaded.config.query_log.sample_rate, 0.0..=1.0, |rate| {
        format!("sample_rate = {rate} is out of range: use 0..=1")
    }) {
        errors.push(BuildError::Config(err));
    }
    let mut cluster_errors = Vec::new();
    let cluster = crate::cluster::build_cluster_settings(loaded, &mut cluster_errors);
    errors.extend(cluster_errors.into_iter().map(BuildError::Config));
    if errors.is_empty() {
        Ok(cluster)
    } else {
        Err(BuildErrors(errors))
    }
}

/// Every file a configuration reads.
fn files_of(source: &SnapshotSource, loaded: &LoadedConfig) -> Vec<PathBuf> {
    let config = &loaded.config;
    let mut files = vec![loaded.path.clone()];
    files.extend(
        config
            .zones
            .iter()
            .filter_map(|z| z.file.as_ref())
            .map(|file| loaded.resolve_path(file.get_ref())),
    );
    files.extend(source.extra_zones.iter().map(|(_, path)| path.clone()));
    if let Some(geoip) = &config.geoip {
        files.extend(
            [&geoip.database, &geoip.asn_database]
                .into_iter()
                .flatten()
                .map(|p| loaded.resolve_path(p.get_ref())),
        );
    }
    files.extend(
        config
            .services
            .values()
            .filter_map(|s| s.get_ref().latency_table.as_ref())
            .map(|p| loaded.resolve_path(p.get_ref())),
    );
    files.extend(crate::dnssec::key_files(loaded));
    files.sort();
    files.dedup();
    files
}

/// A file's modification time, if it can be read.
pub fn mtime(path: &std::path::Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn unix_secs(time: SystemTime) -> f64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn lock_load(
    load: &Mutex<crate::load::LoadState>,
) -> std::sync::MutexGuard<'_, crate::load::LoadState> {
    // Plain data, consistent between statements.
    load.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::rrl::RrlVerdict;

    #[test]
    fn reload_keeps_rate_limit_budgets() {
        let dir = std::env::temp_dir().join(format!("gslb-control-rrl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("rrl.test.zone"),
            "$TTL 300\n@ SOA ns1 hostmaster 1 7200 900 1209600 60\n@ NS ns1\nns1 A 192.0.2.53\n",
        )
        .unwrap();
        let config = |slip: u32| {
            let text = format!(
                "[[zone]]\norigin = \"rrl.test\"\nfile = \"rrl.test.zone\"\n\
                 [rrl]\nenabled = true\nresponses_per_second = 3\nslip = {slip}\n"
            );
            std::fs::write(dir.join("gslb.toml"), text).unwrap();
        };
        config(0);
        let source = SnapshotSource {
            config_path: dir.join("gslb.toml"),
            extra_zones: Vec::new(),
        };
        let (control, _) = Control::start(source).unwrap_or_else(|errors| panic!("{errors}"));
        let client: std::net::IpAddr = "198.51.100.7".parse().unwrap();
        let check = || {
            let served = control.served.load();
            served.rrl.as_ref().expect("rrl is on").check(client, 42)
        };
        for _ in 0..3 {
            assert_eq!(check(), RrlVerdict::Send);
        }
        assert_eq!(check(), RrlVerdict::Drop);
        // A reload (here with another slip) within the same second: the
        // client's budget is still spent.
        config(2);
        control
            .reload("test")
            .unwrap_or_else(|errors| panic!("{errors}"));
        assert_eq!(check(), RrlVerdict::Slip);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

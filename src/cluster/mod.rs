//! Several gslb instances acting as one through etcd: membership, shared
//! health verdicts combined by a quorum, and shared operator state.
//!
//! Owns `[cluster]` (validated here), this member's session with etcd and
//! the view of the other members it keeps from its watch. Writes only to
//! the health records (the quorum verdict, [`EndpointHealth::set_quorum_verdict`])
//! and to [`OperatorState`]; never on the query path, which keeps reading
//! atomics whatever the store does. When etcd is unreachable the member
//! answers from its own verdicts and the last operator state it saw, and
//! retries with a backoff capped at [`MAX_BACKOFF`].
//!
//! Keys under `[cluster] prefix` (see ARCHITECTURE.md):
//! `members/NAME` (leased [`MemberRecord`]), `verdicts/NAME/POOL/TARGET`
//! (leased [`VerdictRecord`], written on change), `operator/SLOT` (a
//! [`Change`], kept; `SLOT` as [`Change::slot`]).

pub mod etcd;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, LoadedConfig, QuorumToml};
use crate::control::Control;
use crate::health::PlannedEndpoint;
use crate::operator::{Change, unix_ms};
use etcd::{Etcd, EtcdError, TxnOp, WatchEvent};

/// Longest wait between reconnection attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// First wait after a failure.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// How often local verdicts, pending operator changes and the member
/// record are compared with what was published.
const PUBLISH_INTERVAL: Duration = Duration::from_millis(100);
/// Shortest lease.
const MIN_MEMBER_TTL: Duration = Duration::from_secs(2);
/// Most operations in one transaction (etcd's `--max-txn-ops` default):
/// verdict changes are written in as few requests as that allows, so a
/// region outage costs each member a few requests, not one per endpoint.
const MAX_TXN_OPS: usize = 128;

/// `[cluster]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterSettings {
    /// This member's name.
    pub name: String,
    /// etcd client URLs.
    pub etcd: Vec<String>,
    /// Key prefix, without a trailing `/`.
    pub prefix: String,
    /// When an endpoint is down cluster-wide.
    pub down_quorum: Quorum,
    /// Lease TTL.
    pub member_ttl: Duration,
    /// Local address probes are sent from.
    pub probe_source: Option<IpAddr>,
    /// Whether the configuration (all but `[server]` and `[cluster]`) is
    /// the newest version published to etcd (`config = "etcd"`, see
    /// `crate::fleet`) rather than this file.
    pub config_from_etcd: bool,
    /// Published configuration versions kept in etcd.
    pub keep_versions: u64,
}

/// `down_quorum`: the share of the voters that must see an endpoint down.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Quorum {
    /// One voter is enough.
    Any,
    /// More than half.
    Majority,
    /// Every voter.
    All,
    /// At least this fraction (0, 1].
    Fraction(f64),
}

impl Quorum {
    /// Whether `down` of `voters` voters make the endpoint down.
    pub fn is_down(self, down: usize, voters: usize) -> bool {
        if voters == 0 || down == 0 {
            return false;
        }
        match self {
            Quorum::Any => true,
            Quorum::Majority => down * 2 > voters,
            Quorum::All => down == voters,
            Quorum::Fraction(f) => down as f64 >= f * voters as f64 - 1e-9,
        }
    }

    /// The name as configured.
    pub fn describe(self) -> String {
        match self {
            Quorum::Any => "any".into(),
            Quorum::Majority => "majority".into(),
            Quorum::All => "all".into(),
            Quorum::Fraction(f) => f.to_string(),
        }
    }
}

/// Checks `[cluster]`; `None` when absent (standalone) or invalid (the
/// errors are pushed).
pub fn build_cluster_settings(
    loaded: &LoadedConfig,
    errors: &mut Vec<ConfigError>,
) -> Option<ClusterSettings> {
    let cluster = loaded.config.cluster.as_ref()?.get_ref();
    let before = errors.len();
    let name = cluster.name.get_ref().trim().to_string();
    if name.is_empty() || name.contains('/') || name.chars().any(char::is_whitespace) {
        errors.push(loaded.error_at(
            cluster.name.span(),
            format!("[cluster] name {name:?} must be a non-empty word without '/' or spaces, e.g. \"ns1\""),
        ));
    }
    let etcd = cluster.etcd.get_ref().clone();
    if etcd.is_empty() {
        errors.push(loaded.error_at(
            cluster.etcd.span(),
            "[cluster] etcd is empty: list at least one endpoint, e.g. [\"http://127.0.0.1:2379\"]",
        ));
    }
    for url in &etcd {
        let ok = reqwest::Url::parse(url)
            .is_ok_and(|u| u.scheme() == "http" && u.host_str().is_some() && u.path() == "/");
        if !ok {
            errors.push(loaded.error_at(
                cluster.etcd.span(),
                format!("[cluster] etcd endpoint {url:?} must be http://HOST:PORT (no path)"),
            ));
        }
    }
    let prefix = cluster.prefix.get_ref().trim_end_matches('/').to_string();
    if !prefix.starts_with('/') {
        errors.push(loaded.error_at(
            cluster.prefix.span(),
            format!("[cluster] prefix {prefix:?} must start with '/', e.g. \"/gslb/prod\""),
        ));
    }
    let down_quorum = match cluster.down_quorum.get_ref() {
        QuorumToml::Name(n) if n == "any" => Some(Quorum::Any),
        QuorumToml::Name(n) if n == "majority" => Some(Quorum::Majority),
        QuorumToml::Name(n) if n == "all" => Some(Quorum::All),
        QuorumToml::Fraction(f) if *f > 0.0 && *f <= 1.0 => Some(Quorum::Fraction(*f)),
        other => {
            let given = match other {
                QuorumToml::Name(name) => format!("{name:?}"),
                QuorumToml::Fraction(fraction) => fraction.to_string(),
            };
            errors.push(loaded.error_at(
                cluster.down_quorum.span(),
                format!(
                    "[cluster] down_quorum = {given} is not valid: use \"any\", \"majority\", \"all\" or a fraction in (0, 1] like 0.34"
                ),
            ));
            None
        }
    };
    let member_ttl = match cluster.member_ttl.get_ref().to_duration() {
        Ok(ttl) if ttl >= MIN_MEMBER_TTL => Some(ttl),
        Ok(ttl) => {
            errors.push(loaded.error_at(
                cluster.member_ttl.span(),
                format!("[cluster] member_ttl {ttl:?} is too short: use at least \"2s\""),
            ));
            None
        }
        Err(err) => {
            errors.push(loaded.error_at(
                cluster.member_ttl.span(),
                format!("[cluster] member_ttl: {err}"),
            ));
            None
        }
    };
    let config_from_etcd = match cluster.config.get_ref().as_str() {
        "etcd" => true,
        "file" => false,
        other => {
            errors.push(loaded.error_at(
                cluster.config.span(),
                format!("[cluster] config {other:?} is not valid: use \"file\" (this file) or \"etcd\" (the version `gslb publish` wrote)"),
            ));
            false
        }
    };
    let keep_versions = *cluster.keep_versions.get_ref();
    if keep_versions == 0 {
        errors.push(loaded.error_at(
            cluster.keep_versions.span(),
            "[cluster] keep_versions = 0 would remove the version in service: use at least 1 (default 50)",
        ));
    }
    if errors.len() > before {
        return None;
    }
    Some(ClusterSettings {
        config_from_etcd,
        keep_versions,
        name,
        etcd,
        prefix,
        down_quorum: down_quorum?,
        member_ttl: member_ttl?,
        probe_source: cluster.probe_source.as_ref().map(|s| *s.get_ref()),
    })
}

/// What a member publishes about itself (leased).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRecord {
    /// Member name.
    pub name: String,
    /// gslb version.
    pub version: String,
    /// DNS listeners.
    pub listen: Vec<SocketAddr>,
    /// Admin API address.
    pub api: Option<SocketAddr>,
    /// SHA-256 of the configuration that must be equal across the fleet.
    pub config_digest: String,
    /// When the configuration in service was loaded (ms since the epoch).
    pub last_reload_ms: u64,
    /// When the member started (ms since the epoch).
    pub started_ms: u64,
    /// The published configuration version it serves (members with
    /// `config = "etcd"`; see `crate::fleet`).
    #[serde(default)]
    pub config: Option<crate::fleet::member::MemberConfig>,
}

/// One member's verdict on one endpoint (leased, written on change).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerdictRecord {
    /// Whether its probes see the endpoint up (rise/fall applied).
    pub up: bool,
    /// Since when (ms since the epoch).
    pub since_ms: u64,
    /// The last probe error, if any.
    pub last_error: Option<String>,
    /// Smoothed probe RTT in microseconds, when measured.
    pub rtt_us: Option<u32>,
}

/// What this member knows of the cluster (control plane only).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ClusterView {
    /// Whether etcd is reachable and this member's session is live.
    pub connected: bool,
    /// Since when (ms since the epoch) it has been connected or not.
    pub since_ms: u64,
    /// The last store error, while disconnected.
    pub last_error: Option<String>,
    /// Live members by name (this one included once its record is seen).
    pub members: BTreeMap<String, MemberRecord>,
    /// Verdicts by member, then endpoint key.
    pub verdicts: BTreeMap<String, BTreeMap<String, VerdictRecord>>,
}

/// This member's cluster runtime, shared with the admin API and metrics.
#[derive(Debug)]
pub struct Cluster {
    /// The settings it started with (`[cluster]` is read at start only).
    pub settings: ClusterSettings,
    etcd: Etcd,
    connected: AtomicBool,
    view: Mutex<ClusterView>,
    /// Write requests (put, delete or transaction) this member sent to etcd.
    writes: AtomicU64,
    /// Keys those requests wrote or deleted.
    keys_written: AtomicU64,
    /// This member's DNS listeners and API, once bound.
    addresses: Mutex<(Vec<SocketAddr>, Option<SocketAddr>)>,
    /// When the member started.
    started: SystemTime,
}

impl Cluster {
    /// The runtime for `settings` (nothing is contacted yet).
    ///
    /// # Errors
    /// The etcd client cannot be built.
    pub fn new(settings: ClusterSettings) -> Result<Self, EtcdError> {
        Ok(Self {
            etcd: Etcd::new(&settings.etcd)?,
            settings,
            connected: AtomicBool::new(false),
            view: Mutex::new(ClusterView {
                since_ms: unix_ms(SystemTime::now()),
                ..ClusterView::default()
            }),
            writes: AtomicU64::new(0),
            keys_written: AtomicU64::new(0),
            addresses: Mutex::new((Vec::new(), None)),
            started: SystemTime::now(),
        })
    }

    /// Whether the store is reachable and the session live.
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// A copy of what this member knows of the cluster.
    pub fn view(&self) -> ClusterView {
        self.lock_view().clone()
    }

    /// Write requests sent to etcd so far.
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    /// Keys written or deleted in etcd so far.
    pub fn keys_written(&self) -> u64 {
        self.keys_written.load(Ordering::Relaxed)
    }

    /// Counts one write request of `keys` keys.
    fn count_write(&self, keys: usize) {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.keys_written.fetch_add(keys as u64, Ordering::Relaxed);
    }

    /// Records the addresses this member serves on (for its record).
    pub fn set_addresses(&self, listen: Vec<SocketAddr>, api: Option<SocketAddr>) {
        *self
            .addresses
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = (listen, api);
    }

    /// Writes an operator change to the store now; `false` when it could
    /// not (it then stays pending and is written when the store returns).
    pub async fn store_change(&self, change: &Change) -> bool {
        if !self.connected() {
            return false;
        }
        let key = self.key(&format!("operator/{}", change.slot()));
        match self.etcd.put(&key, &change.to_bytes(), 0).await {
            Ok(_) => {
                self.count_write(1);
                true
            }
            Err(err) => {
                tracing::warn!(error = %err, slot = %change.slot(), "operator change not stored; pending");
                false
            }
        }
    }

    fn key(&self, rest: &str) -> String {
        format!("{}/{rest}", self.settings.prefix)
    }

    fn lock_view(&self) -> std::sync::MutexGuard<'_, ClusterView> {
        // Plain data; a panic while it was held leaves it usable.
        self.view
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn set_connected(&self, connected: bool, error: Option<String>) {
        let was = self.connected.swap(connected, Ordering::Relaxed);
        let mut view = self.lock_view();
        if was != connected {
            view.since_ms = unix_ms(SystemTime::now());
        }
        view.connected = connected;
        view.last_error = error;
        if !connected {
            view.members.clear();
            view.verdicts.clear();
        }
    }

    fn member_record(&self, control: &Control) -> MemberRecord {
        let (listen, api) = self
            .addresses
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let (config_digest, last_reload) = control.config_identity();
        MemberRecord {
            name: self.settings.name.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            listen,
            api,
            config_digest,
            last_reload_ms: unix_ms(last_reload),
            started_ms: unix_ms(self.started),
            config: control.fleet.as_ref().map(|fleet| fleet.member_config()),
        }
    }
}

/// Runs this member's cluster session forever: connect, publish, watch,
/// and on any store failure fall back to local verdicts and retry.
pub async fn run(control: Arc<Control>, cluster: Arc<Cluster>) {
    let mut backoff = FIRST_BACKOFF;
    let mut previous_lease = 0;
    loop {
        let mut session = Session::new(control.clone(), cluster.clone());
        let result = session.run(&mut backoff, previous_lease).await;
        session.end();
        if session.lease != 0 {
            previous_lease = session.lease;
        }
        if let Err(err) = result {
            let first = cluster.connected() || backoff == FIRST_BACKOFF;
            cluster.set_connected(false, Some(err.to_string()));
            if first {
                tracing::warn!(error = %err, retry_in = ?backoff, "cluster store unreachable: serving on this member's own verdicts and the last operator state");
            } else {
                tracing::debug!(error = %err, retry_in = ?backoff, "cluster store still unreachable");
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Stops the watch task when the session ends, however it ends.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One lease's worth of connection to etcd.
struct Session {
    control: Arc<Control>,
    cluster: Arc<Cluster>,
    lease: i64,
    /// Verdicts this session published, by endpoint key.
    published: HashMap<String, bool>,
    /// The member record last published.
    record: Option<MemberRecord>,
    /// Last revision seen (read or watched).
    revision: i64,
}

impl Session {
    fn new(control: Arc<Control>, cluster: Arc<Cluster>) -> Self {
        Self {
            control,
            cluster,
            lease: 0,
            published: HashMap::new(),
            record: None,
            revision: 0,
        }
    }

    /// Connects and runs until the store fails. `previous_lease` is the
    /// last session's: once everything is re-published under the new
    /// lease it is revoked, so keys only it still holds (verdicts of
    /// endpoints no longer probed) go at once rather than at its expiry.
    async fn run(&mut self, backoff: &mut Duration, previous_lease: i64) -> Result<(), EtcdError> {
        let ttl = self.cluster.settings.member_ttl;
        self.lease = self.cluster.etcd.grant_lease(ttl).await?;
        self.publish_record().await?;
        self.publish_verdicts().await?;
        self.flush_pending().await?;
        if previous_lease != 0
            && let Err(err) = self.cluster.etcd.revoke_lease(previous_lease).await
        {
            // Usually already expired; it expires by itself otherwise.
            tracing::debug!(lease = previous_lease, error = %err, "previous cluster lease not revoked");
        }
        self.full_read().await?;
        self.cluster.set_connected(true, None);
        *backoff = FIRST_BACKOFF;
        tracing::info!(
            member = %self.cluster.settings.name,
            lease = self.lease,
            revision = self.revision,
            "cluster session established"
        );
        self.apply_quorum();
        let (events_tx, mut events_rx) = tokio::sync::mpsc::channel(64);
        let mut watcher = AbortOnDrop(self.start_watch(events_tx.clone()));
        let mut keepalive = tokio::time::interval(ttl / 3);
        keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut publish = tokio::time::interval(PUBLISH_INTERVAL);
        publish.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = keepalive.tick() => {
                    self.cluster.etcd.keep_alive(self.lease).await?;
                }
                _ = publish.tick() => {
                    self.publish_record().await?;
                    if self.publish_verdicts().await? {
                        self.apply_quorum();
                    }
                    self.flush_pending().await?;
                }
                batch = events_rx.recv() => match batch {
                    Some(Ok(events)) => {
                        self.handle_events(events);
                        self.apply_quorum();
                    }
                    Some(Err(EtcdError::Compacted(oldest))) => {
                        tracing::warn!(oldest, "cluster watch fell behind compaction: reading everything again");
                        watcher.0.abort();
                        self.full_read().await?;
                        self.apply_quorum();
                        watcher = AbortOnDrop(self.start_watch(events_tx.clone()));
                    }
                    Some(Err(err)) => return Err(err),
                    None => {
                        return Err(EtcdError::Unreachable { endpoint: String::new(), message: "watch ended".into() });
                    }
                }
            }
        }
    }

    /// After a failure: every endpoint back on this member's own verdict.
    fn end(&self) {
        let plan = self.control.snapshot().probes.clone();
        self.control
            .health
            .set_quorum_verdicts(plan.endpoints.iter().map(|e| (e.health.id(), None)));
    }

    fn start_watch(
        &self,
        events: tokio::sync::mpsc::Sender<Result<Vec<WatchEvent>, EtcdError>>,
    ) -> tokio::task::AbortHandle {
        let cluster = self.cluster.clone();
        let start = self.revision + 1;
        tokio::spawn(async move {
            let prefix = format!("{}/", cluster.settings.prefix);
            let mut watch = match cluster.etcd.watch_prefix(&prefix, start).await {
                Ok(watch) => watch,
                Err(err) => {
                    let _ = events.send(Err(err)).await;
                    return;
                }
            };
            loop {
                let batch = watch.next().await;
                let failed = batch.is_err();
                if events.send(batch).await.is_err() || failed {
                    return;
                }
            }
        })
        .abort_handle()
    }

    async fn publish_record(&mut self) -> Result<(), EtcdError> {
        let record = self.cluster.member_record(&self.control);
        if self.record.as_ref() == Some(&record) {
            return Ok(());
        }
        let key = self.cluster.key(&format!("members/{}", record.name));
        let bytes = serde_json::to_vec(&record).unwrap_or_default();
        self.cluster.etcd.put(&key, &bytes, self.lease).await?;
        self.cluster.count_write(1);
        self.record = Some(record);
        Ok(())
    }

    /// Publishes this member's verdicts that changed (and removes those of
    /// endpoints it no longer probes), in transactions of up to
    /// [`MAX_TXN_OPS`] keys. Returns whether any changed.
    async fn publish_verdicts(&mut self) -> Result<bool, EtcdError> {
        let plan = self.control.snapshot().probes.clone();
        // Each write with what `published` holds once it is stored
        // (`None`: deleted).
        let mut writes: Vec<(TxnOp, String, Option<bool>)> = Vec::new();
        let mut probed = BTreeSet::new();
        for endpoint in plan.endpoints.iter().filter(|e| e.probe.is_some()) {
            probed.insert(endpoint.key.as_str());
            let up = endpoint.health.probe_up();
            if self.published.get(&endpoint.key) == Some(&up) {
                continue;
            }
            let status = endpoint.health.probe_status();
            let record = VerdictRecord {
                up,
                since_ms: unix_ms(status.state_since),
                last_error: if up { None } else { status.last_error },
                rtt_us: endpoint.health.rtt_us(),
            };
            let op = TxnOp::Put {
                key: self.verdict_key(&endpoint.key),
                value: serde_json::to_vec(&record).unwrap_or_default(),
                lease: self.lease,
            };
            writes.push((op, endpoint.key.clone(), Some(up)));
        }
        for key in self.published.keys() {
            if !probed.contains(key.as_str()) {
                let op = TxnOp::Delete {
                    key: self.verdict_key(key),
                };
                writes.push((op, key.clone(), None));
            }
        }
        for batch in writes.chunks(MAX_TXN_OPS) {
            let ops: Vec<TxnOp> = batch.iter().map(|(op, _, _)| op.clone()).collect();
            self.cluster.etcd.txn(&[], &ops, &[]).await?;
            self.cluster.count_write(ops.len());
            for (_, key, up) in batch {
                match up {
                    Some(up) => self.published.insert(key.clone(), *up),
                    None => self.published.remove(key),
                };
            }
        }
        Ok(!writes.is_empty())
    }

    fn verdict_key(&self, endpoint: &str) -> String {
        self.cluster.key(&format!(
            "verdicts/{}/{endpoint}",
            self.cluster.settings.name
        ))
    }

    /// Writes the operator changes made while the store was unreachable;
    /// a newer change to the same slot made elsewhere wins.
    async fn flush_pending(&mut self) -> Result<(), EtcdError> {
        for change in self.control.operator.pending() {
            let key = self.cluster.key(&format!("operator/{}", change.slot()));
            let stored = self.cluster.etcd.get(&key).await?;
            let mod_revision = stored.as_ref().map_or(0, |kv| kv.mod_revision);
            if let Some(theirs) = stored
                .as_ref()
                .and_then(|kv| Change::parse(&change.slot(), &kv.value).ok())
                && theirs.at_ms >= change.at_ms
            {
                self.control
                    .operator
                    .handle_stored(theirs, &self.control.health);
                continue;
            }
            if self
                .cluster
                .etcd
                .put_if_unchanged(&key, &change.to_bytes(), mod_revision)
                .await?
            {
                self.cluster.count_write(1);
                self.control.operator.mark_stored(&change);
                tracing::info!(slot = %change.slot(), "operator change made while the store was unreachable is now stored");
            }
        }
        Ok(())
    }

    /// Reads the whole prefix and rebuilds the view from it.
    async fn full_read(&mut self) -> Result<(), EtcdError> {
        let prefix = format!("{}/", self.cluster.settings.prefix);
        let range = self.cluster.etcd.range_prefix(&prefix).await?;
        self.revision = range.revision;
        {
            let mut view = self.cluster.lock_view();
            view.members.clear();
            view.verdicts.clear();
        }
        let mut slots = BTreeSet::new();
        for kv in range.kvs {
            if let Some(slot) = kv
                .key
                .strip_prefix(&prefix)
                .and_then(|k| k.strip_prefix("operator/"))
            {
                slots.insert(slot.to_string());
            }
            self.handle_put(&kv.key, &kv.value);
        }
        self.control
            .operator
            .retain_stored(&slots, &self.control.health);
        Ok(())
    }

    fn handle_events(&mut self, events: Vec<WatchEvent>) {
        for event in events {
            self.revision = self.revision.max(event.revision());
            match event {
                WatchEvent::Put(kv) => self.handle_put(&kv.key, &kv.value),
                WatchEvent::Delete { key, .. } => self.handle_delete(&key),
            }
        }
    }

    /// Takes one stored value; one that does not parse is logged and
    /// ignored (the last good value for that key stays in force).
    fn handle_put(&mut self, key: &str, value: &[u8]) {
        let prefix = format!("{}/", self.cluster.settings.prefix);
        let Some(rest) = key.strip_prefix(&prefix) else {
            return;
        };
        let garbage = |what: &str, err: String| {
            tracing::error!(key, error = %err, "ignoring a {what} in the cluster store that does not parse (the last good value stays in force)");
        };
        if let Some(name) = rest.strip_prefix("members/") {
            match serde_json::from_slice::<MemberRecord>(value) {
                Ok(record) if record.name == name => {
                    self.cluster
                        .lock_view()
                        .members
                        .insert(name.to_string(), record);
                }
                Ok(record) => garbage("member record", format!("names {:?}", record.name)),
                Err(err) => garbage("member record", err.to_string()),
            }
        } else if let Some(rest) = rest.strip_prefix("verdicts/") {
            let Some((member, endpoint)) = rest.split_once('/') else {
                garbage("verdict", "key has no endpoint".into());
                return;
            };
            match serde_json::from_slice::<VerdictRecord>(value) {
                Ok(record) => {
                    self.cluster
                        .lock_view()
                        .verdicts
                        .entry(member.to_string())
                        .or_default()
                        .insert(endpoint.to_string(), record);
                }
                Err(err) => garbage("verdict", err.to_string()),
            }
        } else if let Some(slot) = rest.strip_prefix("operator/") {
            match Change::parse(slot, value) {
                Ok(change) => {
                    let event = change.event();
                    let received = self
                        .control
                        .operator
                        .handle_stored(change, &self.control.health);
                    if received == crate::operator::Received::Applied {
                        self.control.events.record(event);
                    }
                }
                Err(err) => garbage("operator change", err),
            }
        } else if rest.starts_with("config/") {
            // Published configuration versions: `fleet::member` follows them.
        } else {
            tracing::warn!(key, "ignoring an unknown key in the cluster prefix");
        }
    }

    fn handle_delete(&mut self, key: &str) {
        let prefix = format!("{}/", self.cluster.settings.prefix);
        let Some(rest) = key.strip_prefix(&prefix) else {
            return;
        };
        let mut view = self.cluster.lock_view();
        if let Some(name) = rest.strip_prefix("members/") {
            if view.members.remove(name).is_some() {
                tracing::info!(member = name, "cluster member left (lease ended)");
            }
            if name == self.cluster.settings.name {
                // Our own record vanished (a revoked lease, an operator's
                // delete): publish it again on the next round.
                self.record = None;
            }
        } else if let Some(rest) = rest.strip_prefix("verdicts/")
            && let Some((member, endpoint)) = rest.split_once('/')
        {
            if let Some(verdicts) = view.verdicts.get_mut(member) {
                verdicts.remove(endpoint);
                if verdicts.is_empty() {
                    view.verdicts.remove(member);
                }
            }
            if member == self.cluster.settings.name {
                self.published.remove(endpoint);
            }
        }
    }

    /// Sets every endpoint's verdict from the quorum over live members.
    fn apply_quorum(&self) {
        let plan = self.control.snapshot().probes.clone();
        let verdicts: Vec<_> = {
            let view = self.cluster.lock_view();
            plan.endpoints
                .iter()
                .map(|endpoint| {
                    let verdict = quorum_verdict(
                        endpoint,
                        &self.cluster.settings.name,
                        self.cluster.settings.down_quorum,
                        &view,
                    );
                    (endpoint.health.id(), verdict)
                })
                .collect()
        };
        self.control.health.set_quorum_verdicts(verdicts);
    }
}

/// The cluster's verdict on `endpoint`: the quorum over the verdicts of
/// live members that probe it (this member's own verdict read locally);
/// `None` when nobody has a verdict (follow the local state).
pub fn quorum_verdict(
    endpoint: &PlannedEndpoint,
    me: &str,
    quorum: Quorum,
    view: &ClusterView,
) -> Option<bool> {
    let votes_for = |member: &str| {
        endpoint
            .check_from
            .as_ref()
            .is_none_or(|list| list.iter().any(|m| m == member))
    };
    let (mut voters, mut down) = (0usize, 0usize);
    if endpoint.probe.is_some() {
        voters += 1;
        down += usize::from(!endpoint.health.probe_up());
    }
    for name in view.members.keys() {
        if name == me || !votes_for(name) {
            continue;
        }
        if let Some(verdict) = view.verdicts.get(name).and_then(|v| v.get(&endpoint.key)) {
            voters += 1;
            down += usize::from(!verdict.up);
        }
    }
    (voters > 0).then(|| !quorum.is_down(down, voters))
}

/// A member's verdict as the status page and metrics show it.
pub fn member_verdicts(view: &ClusterView, key: &str) -> Vec<(String, bool)> {
    view.verdicts
        .iter()
        .filter(|(member, _)| view.members.contains_key(*member))
        .filter_map(|(member, verdicts)| verdicts.get(key).map(|v| (member.clone(), v.up)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::HealthTable;

    #[test]
    fn quorum_rules() {
        assert!(!Quorum::Majority.is_down(1, 3));
        assert!(Quorum::Majority.is_down(2, 3));
        assert!(!Quorum::Majority.is_down(1, 2));
        assert!(Quorum::Any.is_down(1, 3));
        assert!(!Quorum::Any.is_down(0, 3));
        assert!(!Quorum::All.is_down(2, 3));
        assert!(Quorum::All.is_down(3, 3));
        assert!(!Quorum::Fraction(0.34).is_down(1, 3));
        assert!(Quorum::Fraction(0.34).is_down(2, 3));
        assert!(Quorum::Fraction(0.3).is_down(1, 3));
        assert!(!Quorum::Majority.is_down(0, 0));
    }

    fn member(name: &str) -> MemberRecord {
        MemberRecord {
            name: name.into(),
            version: "0".into(),
            listen: vec![],
            api: None,
            config_digest: "d".into(),
            last_reload_ms: 0,
            started_ms: 0,
            config: None,
        }
    }

    fn verdict(up: bool) -> VerdictRecord {
        VerdictRecord {
            up,
            since_ms: 0,
            last_error: None,
            rtt_us: None,
        }
    }

    #[test]
    fn quorum_counts_live_members_in_check_from() {
        let endpoint = PlannedEndpoint {
            key: "eu/192.0.2.1".into(),
            health: HealthTable::default().register("eu/192.0.2.1", true).1,
            probe: None,
            check_from: Some(vec!["ns2".to_string(), "ns3".to_string()].into()),
        };
        let mut view = ClusterView::default();
        assert_eq!(
            quorum_verdict(&endpoint, "ns1", Quorum::Majority, &view),
            None
        );
        for name in ["ns1", "ns2", "ns3", "ns4"] {
            view.members.insert(name.into(), member(name));
        }
        for (name, up) in [
            ("ns2", false),
            ("ns3", true),
            ("ns4", false),
            ("ns9", false),
        ] {
            view.verdicts
                .entry(name.into())
                .or_default()
                .insert(endpoint.key.clone(), verdict(up));
        }
        // ns4 is outside check_from, ns9 is not live: one of two is down.
        assert_eq!(
            quorum_verdict(&endpoint, "ns1", Quorum::Majority, &view),
            Some(true)
        );
        assert_eq!(
            quorum_verdict(&endpoint, "ns1", Quorum::Any, &view),
            Some(false)
        );
        view.members.remove("ns3");
        assert_eq!(
            quorum_verdict(&endpoint, "ns1", Quorum::Majority, &view),
            Some(false)
        );
    }
}

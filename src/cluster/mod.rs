//! Several gslb instances acting as one through etcd: membership, shared
//! health verdicts combined by a quorum, and shared operator state.
//!
//! Owns `[cluster]` (validated here), this member's session with etcd
//! (`session`, which runs beside the control plane) and the view of the
//! other members it keeps from its watch. Writes only to the health records (the quorum verdict, [`EndpointHealth::set_quorum_verdict`])
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
pub mod session;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, LoadedConfig, QuorumToml};
use crate::health::PlannedEndpoint;
use crate::operator::{Change, unix_ms};
use etcd::{Etcd, EtcdError};

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
pub(crate) const MAX_TXN_OPS: usize = 128;

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
    pub config: Option<MemberConfig>,
}

/// A version that failed to build on this member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedVersion {
    /// Its number.
    pub version: u64,
    /// When it first failed (ms since the epoch).
    pub at_ms: u64,
    /// The build errors.
    pub errors: Vec<String>,
}

/// What a member's record says about its configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberConfig {
    /// The version in service (`None`: none yet).
    pub version: Option<u64>,
    /// Since when (ms since the epoch).
    pub since_ms: u64,
    /// The newest version that failed to build here, while it is newer
    /// than the one in service.
    pub failed: Option<FailedVersion>,
    /// Local files (GeoIP databases, keys) that differ from the published
    /// ones.
    pub local_files: Vec<String>,
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

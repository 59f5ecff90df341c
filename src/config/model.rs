//! The TOML model exactly as operators write it (see README "Configuration").

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

/// Default DNS listener.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:5300";
/// Default admin API listener.
pub const DEFAULT_API: &str = "127.0.0.1:9300";
/// Default EDNS UDP payload we offer (the 2020 DNS flag day value).
pub const DEFAULT_MAX_UDP_PAYLOAD: u16 = 1232;

/// The whole configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigToml {
    /// Listeners and protocol limits.
    #[serde(default)]
    pub server: ServerToml,
    /// Zones served from zone files.
    #[serde(default, rename = "zone")]
    pub zones: Vec<ZoneToml>,
    /// GeoIP databases.
    pub geoip: Option<GeoIpToml>,
    /// EDNS Client Subnet handling.
    #[serde(default)]
    pub ecs: EcsToml,
    /// Response rate limiting of UDP answers.
    #[serde(default)]
    pub rrl: RrlToml,
    /// Pools (regions) of endpoints, by name.
    #[serde(default)]
    pub pools: std::collections::BTreeMap<String, Spanned<PoolToml>>,
    /// Geo maps shared by several services, by name.
    #[serde(default)]
    pub maps: std::collections::BTreeMap<String, Spanned<GeoMapToml>>,
    /// Dynamically answered names, by fully qualified name.
    #[serde(default)]
    pub services: std::collections::BTreeMap<String, Spanned<ServiceToml>>,
    // --- health checks (see config/check.rs) ---
    /// Process-wide probing settings.
    #[serde(default)]
    pub health: super::HealthToml,
    /// Health checks, by name; pools name one with `check`.
    #[serde(default)]
    pub checks: std::collections::BTreeMap<String, Spanned<super::CheckToml>>,
    // --- operations ---
    /// The query log.
    #[serde(default)]
    pub query_log: QueryLogToml,
    /// Webhooks that receive events (`[[alerts]]`).
    #[serde(default)]
    pub alerts: Vec<AlertToml>,
    // --- zone transfers ---
    /// TSIG keys (RFC 8945), by name: `[tsig.NAME]`.
    #[serde(default)]
    pub tsig: std::collections::BTreeMap<String, Spanned<TsigToml>>,
    /// Several instances acting as one through etcd (absent: standalone).
    pub cluster: Option<Spanned<ClusterToml>>,
}

/// `[cluster]`: this instance's membership in a cluster coordinated through
/// etcd (see `cluster`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterToml {
    /// This member's name, unique in the cluster.
    pub name: Spanned<String>,
    /// etcd client URLs (`http://host:port`).
    pub etcd: Spanned<Vec<String>>,
    /// Key prefix; several clusters can share one etcd.
    #[serde(default = "default_cluster_prefix")]
    pub prefix: Spanned<String>,
    /// Share of the live members probing an endpoint that must see it down
    /// for it to be down cluster-wide.
    #[serde(default = "default_down_quorum")]
    pub down_quorum: Spanned<QuorumToml>,
    /// Lease TTL of this member's records (at least 2 s).
    #[serde(default = "default_member_ttl")]
    pub member_ttl: Spanned<super::DurationToml>,
    /// Local address probes are sent from (this member's vantage point).
    pub probe_source: Option<Spanned<std::net::IpAddr>>,
    /// Where the rest of the configuration comes from: `"file"` (this
    /// file) or `"etcd"` (the newest version `gslb publish` wrote).
    #[serde(default = "default_cluster_config")]
    pub config: Spanned<String>,
    /// Published configuration versions kept in etcd (older ones are
    /// removed by the next publish).
    #[serde(default = "default_keep_versions")]
    pub keep_versions: Spanned<u64>,
}

/// `down_quorum`: a name or a fraction.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum QuorumToml {
    /// `"any"`, `"majority"` or `"all"`.
    Name(String),
    /// A fraction in (0, 1].
    Fraction(f64),
}

fn default_cluster_prefix() -> Spanned<String> {
    Spanned::new(0..0, "/gslb".to_string())
}

fn default_down_quorum() -> Spanned<QuorumToml> {
    Spanned::new(0..0, QuorumToml::Name("majority".to_string()))
}

fn default_cluster_config() -> Spanned<String> {
    Spanned::new(0..0, "file".to_string())
}

fn default_keep_versions() -> Spanned<u64> {
    Spanned::new(0..0, 50)
}

fn default_member_ttl() -> Spanned<super::DurationToml> {
    Spanned::new(0..0, super::DurationToml::Text("5s".to_string()))
}

/// `[tsig.NAME]`: a shared secret for signing transfers and NOTIFYs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TsigToml {
    /// `"hmac-sha256"`, `"hmac-sha512"` or `"hmac-sha1"`.
    pub algorithm: Spanned<String>,
    /// The secret, base64 (as `tsig-keygen` and `keymgr` print it).
    pub secret: Option<Spanned<Secret>>,
    /// A file holding the base64 secret (relative to the config file).
    pub secret_file: Option<Spanned<PathBuf>>,
}

/// `[server]`: sockets and protocol limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerToml {
    /// DNS listeners; each serves UDP and TCP.
    #[serde(default = "default_listen")]
    pub listen: Vec<Spanned<SocketAddr>>,
    /// Admin API listener.
    #[serde(default = "default_api")]
    pub api: Spanned<SocketAddr>,
    /// Largest UDP reply we send to EDNS clients (512..=4096).
    #[serde(default = "default_max_udp_payload")]
    pub max_udp_payload: Spanned<u16>,
    /// UDP worker sockets per listener (SO_REUSEPORT); 0 = one per core.
    #[serde(default)]
    pub udp_workers: usize,
    /// Concurrent TCP connections per listener; more are closed at once.
    #[serde(default = "default_tcp_max_connections")]
    pub tcp_max_connections: usize,
    /// Seconds a TCP connection may stay idle, or take to send one query.
    #[serde(default = "default_tcp_idle_timeout")]
    pub tcp_idle_timeout: super::Seconds,
    /// Queries answered per TCP connection before it is closed.
    #[serde(default = "default_tcp_max_queries")]
    pub tcp_max_queries: u32,
    // --- operations (admin API, reload) ---
    /// Bearer token required by mutating admin API calls. Without one,
    /// `serve` creates a token file in `state_dir` (unless
    /// `api_require_token = false`).
    pub api_token: Option<Secret>,
    /// Require a token for mutating calls (default); `false` is the explicit
    /// opt-out for a trusted single-user box with a loopback API.
    #[serde(default = "default_true")]
    pub api_require_token: bool,
    /// Poll the configuration and the files it names every ~2 s and reload
    /// when one changes.
    #[serde(default)]
    pub watch: bool,
    /// Where state that outlives a restart is kept (secondary zone caches,
    /// served zone versions, the generated admin API token, operator
    /// overrides and weights); default `state/` beside the config file.
    pub state_dir: Option<PathBuf>,
}

/// `[[alerts]]`: a webhook that receives events as JSON.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertToml {
    /// Where events are POSTed (http or https).
    pub url: String,
    /// Event names subscribed to (all when absent), e.g. `endpoint-down`,
    /// `pool-down`, `failover`, `reload-failed`.
    pub events: Option<Vec<Spanned<String>>>,
}

/// A secret from the configuration: never printed by `Debug`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// `[query_log]`: one log line per (sampled) query, off by default.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryLogToml {
    /// Log queries at all.
    #[serde(default)]
    pub enabled: bool,
    /// Fraction of queries logged (0..=1).
    #[serde(default = "full_rate")]
    pub sample_rate: Spanned<f64>,
    /// Most lines per second (token bucket); 0 = no limit.
    #[serde(default)]
    pub max_per_second: u32,
}

impl Default for QueryLogToml {
    fn default() -> Self {
        Self {
            enabled: false,
            sample_rate: full_rate(),
            max_per_second: 0,
        }
    }
}

fn full_rate() -> Spanned<f64> {
    Spanned::new(0..0, 1.0)
}

impl Default for ServerToml {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            api: default_api(),
            max_udp_payload: Spanned::new(0..0, DEFAULT_MAX_UDP_PAYLOAD),
            udp_workers: 0,
            tcp_max_connections: default_tcp_max_connections(),
            tcp_idle_timeout: default_tcp_idle_timeout(),
            tcp_max_queries: default_tcp_max_queries(),
            api_token: None,
            api_require_token: true,
            watch: false,
            state_dir: None,
        }
    }
}

fn default_listen() -> Vec<Spanned<SocketAddr>> {
    // The constant is a valid socket address literal.
    vec![Spanned::new(
        0..0,
        DEFAULT_LISTEN
            .parse()
            .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 5300))),
    )]
}

fn default_true() -> bool {
    true
}

fn default_tcp_max_connections() -> usize {
    512
}

fn default_tcp_idle_timeout() -> super::Seconds {
    super::Seconds(10)
}

fn default_tcp_max_queries() -> u32 {
    1_000
}

fn default_api() -> Spanned<SocketAddr> {
    Spanned::new(
        0..0,
        DEFAULT_API
            .parse()
            .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 9300))),
    )
}

fn default_max_udp_payload() -> Spanned<u16> {
    Spanned::new(0..0, DEFAULT_MAX_UDP_PAYLOAD)
}

/// `[[zone]]`: one zone served from an RFC 1035 file, or transferred from
/// primaries (a secondary zone).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneToml {
    /// The zone's origin, e.g. `example.test`.
    pub origin: Spanned<String>,
    /// The zone file, relative to this config file's directory (primary zones).
    pub file: Option<Spanned<PathBuf>>,
    // --- zone transfers ---
    /// Who may transfer the zone (nothing by default).
    #[serde(default)]
    pub allow_transfer: Vec<Spanned<AllowTransferToml>>,
    /// Secondaries told of a new serial (RFC 1996), as `"ip:port"`.
    #[serde(default)]
    pub notify: Vec<Spanned<String>>,
    /// `"auto"`: gslb sets the SOA serial to the reload time when the
    /// content changed.
    pub serial: Option<Spanned<String>>,
    /// Primaries to transfer this zone from, as `"ip:port"` (a secondary zone).
    #[serde(default)]
    pub primaries: Vec<Spanned<String>>,
    /// Key (from `[tsig]`) signing transfers from the primaries and
    /// required on their NOTIFYs.
    pub tsig: Option<Spanned<String>>,
    // --- DNSSEC ---
    /// Sign the zone (DNSSEC) with `dnssec_keys`.
    #[serde(default = "unset_bool")]
    pub dnssec: Spanned<bool>,
    /// BIND-format key pairs: the `.private` files (the `.key` beside each).
    #[serde(default = "no_keys")]
    pub dnssec_keys: Spanned<Vec<DnssecKeyToml>>,
    /// Signature validity, e.g. `"14d"` (default 14 days).
    pub dnssec_validity: Option<Spanned<super::DurationToml>>,
}

/// One `allow_transfer` entry: a client network and, optionally, its key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowTransferToml {
    /// Client network, e.g. `"192.0.2.0/24"` (or one address).
    pub from: String,
    /// Key (from `[tsig]`) the request must be signed with.
    pub tsig: Option<String>,
}

fn unset_bool() -> Spanned<bool> {
    Spanned::new(0..0, false)
}

fn no_keys() -> Spanned<Vec<DnssecKeyToml>> {
    Spanned::new(0..0, Vec::new())
}

/// One entry of `dnssec_keys`: a path, or a table with options.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum DnssecKeyToml {
    /// `"keys/Kexample.test.+013+12345.private"`.
    Path(PathBuf),
    /// `{ path = "…", publish_only = true }`.
    Table(DnssecKeyTableToml),
}

/// The table form of a `dnssec_keys` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnssecKeyTableToml {
    /// The `.private` file.
    #[serde(alias = "file")]
    pub path: PathBuf,
    /// Publish the key in the DNSKEY set without signing with it (rollovers).
    #[serde(default)]
    pub publish_only: bool,
}

impl DnssecKeyToml {
    /// The `.private` file as written.
    pub fn path(&self) -> &std::path::Path {
        match self {
            DnssecKeyToml::Path(path) => path,
            DnssecKeyToml::Table(table) => &table.path,
        }
    }

    /// Whether the key is only published.
    pub fn publish_only(&self) -> bool {
        matches!(self, DnssecKeyToml::Table(t) if t.publish_only)
    }
}

/// `[geoip]`: the databases that locate clients.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeoIpToml {
    /// City or country database (MaxMind DB format).
    pub database: Option<Spanned<PathBuf>>,
    /// Which fields hold the location: a preset name or explicit paths.
    #[serde(default = "default_fields")]
    pub fields: Spanned<FieldsToml>,
    /// Optional ASN database (GeoLite2-ASN layout).
    pub asn_database: Option<Spanned<PathBuf>>,
}

/// Where the location fields live in the database's records.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum FieldsToml {
    /// `"auto"` (default: detect from the database type), `"maxmind"` or `"flat"`.
    Preset(String),
    /// Explicit dotted paths such as `"country.iso_code"`.
    Paths(FieldPathsToml),
}

/// `"auto"`, at no place in the file.
fn default_fields() -> Spanned<FieldsToml> {
    Spanned::new(0..0, FieldsToml::Preset("auto".to_string()))
}

/// Explicit field paths into mmdb records (dotted, array indices as numbers).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldPathsToml {
    /// ISO 3166-1 alpha-2 country code, e.g. `"country.iso_code"`.
    pub country: Option<String>,
    /// Continent code, e.g. `"continent.code"` (derived from the country when absent).
    pub continent: Option<String>,
    /// Subdivision code or name, e.g. `"subdivisions.0.iso_code"` or
    /// `"state1"` (normalised to ISO 3166-2 at load).
    pub subdivision: Option<String>,
    /// Subdivision name read when `subdivision` is absent, e.g.
    /// `"subdivisions.0.names.en"`.
    pub subdivision_name: Option<String>,
    /// Latitude, e.g. `"location.latitude"`.
    pub latitude: Option<String>,
    /// Longitude, e.g. `"location.longitude"`.
    pub longitude: Option<String>,
}

/// `[ecs]`: EDNS Client Subnet handling (RFC 7871).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EcsToml {
    /// Use the client subnet of queries when present.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Longest IPv4 source prefix used (longer ones are shortened).
    #[serde(default = "default_v4_cap")]
    pub max_source_prefix_v4: Spanned<u8>,
    /// Longest IPv6 source prefix used.
    #[serde(default = "default_v6_cap")]
    pub max_source_prefix_v6: Spanned<u8>,
}

impl Default for EcsToml {
    fn default() -> Self {
        Self {
            enabled: true,
            max_source_prefix_v4: default_v4_cap(),
            max_source_prefix_v6: default_v6_cap(),
        }
    }
}

fn yes() -> bool {
    true
}

fn default_v4_cap() -> Spanned<u8> {
    Spanned::new(0..0, 24)
}

fn default_v6_cap() -> Spanned<u8> {
    Spanned::new(0..0, 56)
}

/// `[pools.NAME]`: one region's endpoints.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolToml {
    /// Endpoints answered from this pool.
    pub endpoints: Vec<Spanned<EndpointToml>>,
    /// Location of the region as `[latitude, longitude]`, for `nearest`.
    pub coordinates: Option<Spanned<[f64; 2]>>,
    /// Only used when every primary pool of a service is down.
    #[serde(default)]
    pub backup: bool,
    /// Geoproximity bias −99..99: positive grows the region's reach.
    pub bias: Option<Spanned<i8>>,
    /// Healthy endpoints needed for the pool to count as up: a count (`2`)
    /// or a fraction of its endpoints (`0.5`). Default: 1.
    pub min_healthy: Option<Spanned<MinHealthyToml>>,
    /// Name of the `[checks]` entry probing every endpoint of this pool.
    pub check: Option<Spanned<String>>,
    // --- load-aware answers (README "Load-aware answers") ---
    /// What the pool can take, relative to the other pools (e.g. requests
    /// per second, or its share of the total capacity).
    pub capacity: Option<Spanned<f64>>,
    /// Share of `capacity` above which the pool sheds its newest clients
    /// to its fallback (NS1 `shed_load`), e.g. `0.9`.
    pub overflow_at: Option<Spanned<f64>>,
    /// Cluster members that probe (and vote on) this pool's endpoints;
    /// default: every member.
    pub check_from: Option<Spanned<Vec<String>>>,
}

/// A pool's up threshold.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(untagged)]
pub enum MinHealthyToml {
    /// At least this many healthy endpoints.
    Count(u32),
    /// At least this fraction (0..=1) of the endpoints, rounded up.
    Fraction(f64),
}

/// One endpoint: an address or a CNAME target.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointToml {
    /// IPv4 (A answers) or IPv6 (AAAA answers) address.
    pub address: Option<std::net::IpAddr>,
    /// Target name for CNAME answers.
    pub cname: Option<String>,
    /// Relative weight (default 1; 0 = never chosen unless all others are down).
    #[serde(default = "one")]
    pub weight: u32,
    /// Forced down in configuration (maintenance), whatever the probes say.
    #[serde(default)]
    pub down: bool,
    // --- health check target overrides ---
    /// Probe this address instead of `address` (a health port behind a VIP).
    pub check_address: Option<std::net::IpAddr>,
    /// Probe this port instead of the check's `port`.
    pub check_port: Option<u16>,
    /// Probe this whole URL instead (http and https checks).
    pub check_url: Option<String>,
    /// Cluster members that probe (and vote on) this endpoint; overrides
    /// the pool's `check_from`.
    pub check_from: Option<Vec<String>>,
}

fn one() -> u32 {
    1
}

/// `[services."NAME"]`: a name answered dynamically.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceToml {
    /// How regions are ordered for a client: geo, nearest, latency, or
    /// failover (the `pools` list in order, for every client).
    pub policy: Spanned<PolicyKind>,
    /// Candidate pools, in fallback order.
    #[serde(default)]
    pub pools: Vec<Spanned<String>>,
    /// Geo map inline (`[services."NAME".geo]`).
    pub geo: Option<GeoMapToml>,
    /// Name of a shared map in `[maps]`, instead of an inline `geo`.
    pub map: Option<Spanned<String>>,
    /// Latency table file (CSV: prefix,region,milliseconds) for `latency`.
    pub latency_table: Option<Spanned<PathBuf>>,
    /// How endpoints are picked inside the chosen pool.
    #[serde(default)]
    pub selection: SelectionKind,
    /// Records per answer (1..=16): how many endpoints are returned.
    #[serde(default = "one_u8")]
    pub max_records: Spanned<u8>,
    /// Answer TTL in seconds (`30` or `"30s"`).
    #[serde(default = "default_ttl")]
    pub ttl: super::Seconds,
    /// TTL of answers given while failing over (the client's first pool is
    /// down, or all are and we fail open), so clients come back sooner.
    pub failover_ttl: Option<super::Seconds>,
    /// What to answer when no pool has a healthy endpoint.
    #[serde(default)]
    pub all_down: AllDownKind,
    /// Prefix length hashed for `sticky` selection (default: the ECS caps).
    pub sticky_prefix_v4: Option<u8>,
    /// Prefix length hashed for `sticky` selection over IPv6.
    pub sticky_prefix_v6: Option<u8>,
    // --- load-aware answers ---
    /// How a failed or overflowing pool's clients are spread (default
    /// `capacity` when every primary pool declares a capacity, else `ordered`).
    pub spill: Option<Spanned<SpillKind>>,
    /// Default `overflow_at` for this service's pools that declare a capacity.
    pub overflow_at: Option<Spanned<f64>>,
    /// What a zone transfer carries for this name: `"default"`, `"omit"`,
    /// or a list of addresses or one CNAME target.
    pub transfer_answer: Option<Spanned<TransferAnswerToml>>,
}

/// How a service spreads the clients of a failed, drained or overflowing pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SpillKind {
    /// All to the next usable pool of the client's order (classic failover).
    Ordered,
    /// Over the next candidate pools in proportion to their spare capacity.
    Capacity,
}

/// `transfer_answer` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum TransferAnswerToml {
    /// `"default"` or `"omit"`.
    Keyword(String),
    /// Addresses, or one CNAME target.
    Records(Vec<String>),
}

fn one_u8() -> Spanned<u8> {
    Spanned::new(0..0, 1)
}

fn default_ttl() -> super::Seconds {
    super::Seconds(30)
}

/// How a service orders its regions for a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PolicyKind {
    /// By the geo map (CIDR > ASN > subdivision > country > continent > default).
    Geo,
    /// By great-circle distance to each pool's coordinates (with bias).
    Nearest,
    /// By a client-network → region latency table.
    Latency,
    /// The `pools` list in order for everyone (primary, secondary, ...).
    Failover,
    /// Pools ordered by their measured probe RTT (best healthy endpoint),
    /// with hysteresis; the same order for every client.
    Fastest,
}

/// How endpoints are picked inside the chosen pool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SelectionKind {
    /// Weighted random, weights as ratios.
    #[default]
    Weighted,
    /// Consistent (rendezvous) hashing of the client subnet.
    Sticky,
    /// Up to `max_records` healthy endpoints.
    Multivalue,
    /// The healthy endpoint with the lowest measured probe RTT, with
    /// hysteresis so answers don't flap on noise.
    Fastest,
}

/// What a service answers when nothing is healthy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AllDownKind {
    /// Answer as if everything were up (Route 53, gdnsd).
    #[default]
    FailOpen,
    /// NOERROR with no records (PowerDNS `backupSelector='empty'`).
    Nodata,
    /// SERVFAIL, so resolvers try again later.
    Servfail,
}

/// A geo map: ordered pool lists by client location.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeoMapToml {
    /// Operator networks, the most specific match wins: `"10.1.0.0/16" = ["eu"]`.
    #[serde(default)]
    pub nets: std::collections::BTreeMap<String, Spanned<Vec<String>>>,
    /// Autonomous system numbers (needs `geoip.asn_database`): `"15169" = ["us"]`.
    #[serde(default)]
    pub asn: std::collections::BTreeMap<String, Spanned<Vec<String>>>,
    /// ISO 3166-2 subdivisions as COUNTRY-CODE: `"US-WA" = ["us"]`.
    #[serde(default)]
    pub subdivision: std::collections::BTreeMap<String, Spanned<Vec<String>>>,
    /// ISO 3166-1 alpha-2 countries: `GB = ["eu", "us"]`.
    #[serde(default)]
    pub country: std::collections::BTreeMap<String, Spanned<Vec<String>>>,
    /// Continents (AF AN AS EU NA OC SA): `EU = ["eu", "us"]`.
    #[serde(default)]
    pub continent: std::collections::BTreeMap<String, Spanned<Vec<String>>>,
    /// Everyone else.
    pub default: Option<Spanned<Vec<String>>>,
}

/// `[rrl]`: response rate limiting (BIND/Knot RRL), off by default.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RrlToml {
    /// Limit UDP responses per client prefix.
    #[serde(default)]
    pub enabled: bool,
    /// Responses per second per prefix.
    #[serde(default = "default_rrl_rate")]
    pub responses_per_second: Spanned<u32>,
    /// Every `slip`-th limited response goes out truncated (TC) so real
    /// clients retry over TCP; 0 drops them all.
    #[serde(default = "default_rrl_slip")]
    pub slip: u32,
    /// IPv4 prefix length clients are grouped by.
    #[serde(default = "default_v4_cap")]
    pub ipv4_prefix_len: Spanned<u8>,
    /// IPv6 prefix length clients are grouped by.
    #[serde(default = "default_v6_cap")]
    pub ipv6_prefix_len: Spanned<u8>,
    /// Slots in the limiter's table (more: fewer prefixes sharing a budget).
    #[serde(default = "default_rrl_table")]
    pub table_size: usize,
}

impl Default for RrlToml {
    fn default() -> Self {
        Self {
            enabled: false,
            responses_per_second: default_rrl_rate(),
            slip: default_rrl_slip(),
            ipv4_prefix_len: default_v4_cap(),
            ipv6_prefix_len: default_v6_cap(),
            table_size: default_rrl_table(),
        }
    }
}

fn default_rrl_rate() -> Spanned<u32> {
    Spanned::new(0..0, 20)
}

fn default_rrl_slip() -> u32 {
    2
}

fn default_rrl_table() -> usize {
    65_536
}

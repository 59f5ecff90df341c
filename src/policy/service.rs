//! Compiled services, pools and endpoints: what the operator configured,
//! resolved and checked, in the shape the query path reads.

use std::net::IpAddr;
use std::sync::Arc;

use super::{Family, MAX_RECORDS};
use crate::geo::prefix_trie::PrefixTable;
use crate::health::{EndpointId, HealthView};

/// How a service orders its regions for a client (mapped from the
/// configuration's `policy` by the snapshot build).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyKind {
    /// By the geo map (CIDR > ASN > subdivision > country > continent > default).
    Geo,
    /// By great-circle distance to each pool's coordinates (with bias).
    Nearest,
    /// By a client-network → region latency table.
    Latency,
    /// The pools in configured order for everyone.
    Failover,
    /// Pools ordered by measured probe RTT (from the health view).
    Fastest,
}

/// How endpoints are picked inside the chosen pool (mapped from the
/// configuration's `selection`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectionKind {
    /// Weighted random, weights as ratios.
    Weighted,
    /// Consistent (rendezvous) hashing of the client subnet.
    Sticky,
    /// Up to `max_records` healthy endpoints.
    Multivalue,
    /// The preferred endpoint, then the others by measured RTT.
    Fastest,
}

/// What a service answers when nothing is healthy (mapped from the
/// configuration's `all_down`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllDown {
    /// Answer as if the probed-down endpoints were up.
    FailOpen,
    /// NOERROR with no records.
    Nodata,
    /// SERVFAIL.
    Servfail,
}

/// What an endpoint answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointTarget {
    /// An address: A for IPv4, AAAA for IPv6.
    Address(IpAddr),
    /// A CNAME target (lowercase wire format).
    Cname(Box<[u8]>),
}

/// One endpoint of a pool.
#[derive(Debug)]
pub struct Endpoint {
    /// Identity across reloads: `pool/target`.
    pub key: String,
    /// What it answers with.
    pub target: EndpointTarget,
    /// Its RDATA, encoded once.
    pub rdata: Box<[u8]>,
    /// Relative weight.
    pub weight: u32,
    /// Forced down in the configuration.
    pub config_down: bool,
    /// Its record in the health table (stable across reloads).
    pub id: EndpointId,
    /// Stable hash of `key`, for consistent hashing.
    pub key_hash: u64,
}

impl Endpoint {
    /// Whether answers may name it in `health`.
    #[inline]
    pub fn is_healthy(&self, health: &HealthView) -> bool {
        !self.config_down && health.endpoint(self.id).usable
    }

    /// Whether an operator took it out of service: `down = true` in the
    /// configuration, or a force-down or drain override. Failing open never
    /// answers such an endpoint: fail-open distrusts probes, not operators.
    #[inline]
    pub fn is_operator_down(&self, health: &HealthView) -> bool {
        self.config_down || health.endpoint(self.id).operator_down
    }

    /// Weight used for picking: the configured weight scaled by the health
    /// weight factor in percent (lowered while a JSON health body reports
    /// load), so ratios between endpoints are kept exactly.
    #[inline]
    pub fn effective_weight(&self, health: &HealthView) -> u64 {
        let state = health.endpoint(self.id);
        u64::from(state.operator_weight.unwrap_or(self.weight)) * u64::from(state.weight_percent)
    }

    /// Whether it answers queries for `family`.
    #[inline]
    pub fn serves(&self, family: Family) -> bool {
        matches!(
            (&self.target, family),
            (EndpointTarget::Cname(_), _)
                | (EndpointTarget::Address(IpAddr::V4(_)), Family::V4)
                | (EndpointTarget::Address(IpAddr::V6(_)), Family::V6)
        )
    }

    /// The record type it is answered as for `family`.
    pub fn record_type(&self) -> u16 {
        use crate::wire::rtype;
        match &self.target {
            EndpointTarget::Cname(_) => rtype::CNAME,
            EndpointTarget::Address(IpAddr::V4(_)) => rtype::A,
            EndpointTarget::Address(IpAddr::V6(_)) => rtype::AAAA,
        }
    }
}

/// How many healthy endpoints a pool needs to count as up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MinHealthy {
    /// A fixed count.
    Count(u32),
    /// A fraction of the endpoints serving the family, rounded up.
    Fraction(f64),
}

impl MinHealthy {
    /// Healthy endpoints needed out of `total` (at least 1).
    pub fn needed(&self, total: usize) -> usize {
        let needed = match *self {
            MinHealthy::Count(count) => count as usize,
            MinHealthy::Fraction(fraction) => (fraction * total as f64).ceil() as usize,
        };
        needed.clamp(1, total.max(1))
    }
}

/// A region: named endpoints with optional coordinates.
#[derive(Debug)]
pub struct Pool {
    /// Name from the configuration.
    pub name: String,
    /// Its endpoints.
    pub endpoints: Vec<Endpoint>,
    /// `(latitude, longitude)`.
    pub coordinates: Option<(f64, f64)>,
    /// Used only when all primaries are down.
    pub backup: bool,
    /// Geoproximity bias −99..99.
    pub bias: i8,
    /// Up threshold.
    pub min_healthy: MinHealthy,
    /// Declared capacity, for load-aware spill-over.
    pub capacity: Option<f64>,
    /// Share of the capacity above which it sheds clients (`overflow_at`).
    pub overflow_at: Option<f64>,
}

/// A pool's endpoints of one family in one health view, counted in one pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Census {
    /// Endpoints answering the family (u32: the census sits in each DNS
    /// worker's pool memo, copied out per query, so smaller is cheaper).
    pub total: u32,
    /// Of those, the healthy ones.
    pub healthy: u32,
    /// Bit i: endpoint i answers the family and is healthy (first 64 only).
    pub healthy_mask: u64,
    /// Sum of the healthy endpoints' effective weights (first 64 only).
    pub healthy_weight: u64,
}

impl Pool {
    /// Counts the endpoints answering `family`, and the healthy ones in `health`.
    #[inline]
    pub fn census(&self, health: &HealthView, family: Family) -> Census {
        let mut census = Census::default();
        for (i, endpoint) in self.endpoints.iter().enumerate() {
            if !endpoint.serves(family) {
                continue;
            }
            census.total += 1;
            if endpoint.is_healthy(health) {
                census.healthy += 1;
                if i < 64 {
                    census.healthy_mask |= 1 << i;
                    census.healthy_weight += endpoint.effective_weight(health);
                }
            }
        }
        census
    }

    /// Index of the endpoint `fastest` selection prefers in `health`.
    pub fn preferred_endpoint(&self, health: &HealthView) -> Option<u16> {
        self.endpoints
            .iter()
            .position(|e| health.endpoint(e.id).preferred)
            .and_then(|i| u16::try_from(i).ok())
    }
}

/// Client prefix → index of an ordered pool list, compiled at load time with
/// equal neighbours merged, so the leaf's prefix length is the widest honest
/// ECS scope.
#[derive(Debug, Clone)]
pub struct RegionTable {
    /// The compiled prefixes.
    pub prefixes: PrefixTable<u32>,
}

impl RegionTable {
    /// A table sending every client to order 0 (scope 0).
    pub fn uniform() -> Self {
        Self {
            prefixes: PrefixTable::new(0),
        }
    }

    /// The order index for `address` and the prefix length it holds for.
    #[inline]
    pub fn lookup(&self, address: IpAddr) -> (u32, u8) {
        self.prefixes.lookup(address)
    }
}

/// A name answered dynamically.
#[derive(Debug)]
pub struct Service {
    /// Unique for the life of the process (assigned by the snapshot
    /// build): identifies the service in memos of pool choices and in the
    /// health view's measured orders across reloads.
    pub serial: u64,
    /// Fully qualified name, as text.
    pub name: String,
    /// Candidate pools; orders index into this.
    pub pools: Vec<Arc<Pool>>,
    /// Distinct ordered pool lists.
    pub orders: Vec<Box<[u16]>>,
    /// Client prefix → order.
    pub table: RegionTable,
    /// How endpoints are picked inside a pool.
    pub selection: SelectionKind,
    /// Records per answer (1..=MAX_RECORDS).
    pub max_records: u8,
    /// Answer TTL.
    pub ttl: u32,
    /// What to do when nothing is healthy.
    pub all_down: AllDown,
    /// Prefix lengths hashed for sticky selection.
    pub sticky_prefix_v4: u8,
    /// Prefix lengths hashed for sticky selection (IPv6).
    pub sticky_prefix_v6: u8,
    /// The rules the table was compiled from (for `explain`).
    pub route: super::route::RouteRules,
    /// TTL while failing over, if shorter answers are wanted then.
    pub failover_ttl: Option<u32>,
    /// For `policy = "fastest"`: its slot among the health view's measured
    /// pool orders (kept with hysteresis by the control plane; until one
    /// is measured, `orders` applies).
    pub measured_slot: Option<u32>,
    /// Load-aware spill-over; `None`: classic failover, no split is looked up.
    pub load: Option<LoadRules>,
}

/// A service's load-aware answer rules (README "Load-aware answers").
#[derive(Debug, Clone, PartialEq)]
pub struct LoadRules {
    /// How failed or overflowing pools' clients are spread.
    pub spill: super::spill::Spill,
    /// Per pool of the service (same index): its `overflow_at`, its own or
    /// the service's, when it has a capacity.
    pub overflow_at: Vec<Option<f64>>,
    /// Where its splits are in the health view (numbered per build).
    pub slot: u32,
}

impl Service {
    /// Whether every endpoint of every pool is operator-disabled (`down =
    /// true`, force-down, drain) in `health`, so the service answers no records.
    pub fn only_operator_down(&self, health: &HealthView) -> bool {
        let mut endpoints = self
            .pools
            .iter()
            .flat_map(|p| p.endpoints.iter())
            .peekable();
        endpoints.peek().is_some() && endpoints.all(|e| e.is_operator_down(health))
    }

    /// The ordered pool list with this index (empty if out of range).
    pub fn order(&self, index: u32) -> &[u16] {
        self.orders.get(index as usize).map_or(&[], |o| &o[..])
    }

    /// The prefix length hashed for sticky selection of `address`.
    pub fn sticky_prefix_len(&self, address: IpAddr) -> u8 {
        match address {
            IpAddr::V4(_) => self.sticky_prefix_v4,
            IpAddr::V6(_) => self.sticky_prefix_v6,
        }
    }
}

/// The outcome of [`super::select`].
#[derive(Debug, Clone)]
pub struct Selection<'s> {
    /// The pool answering, if any.
    pub pool: Option<&'s Pool>,
    /// Index of `pool` in `Service::pools` (meaningless while `pool` is `None`).
    pub pool_index: u16,
    /// Indices of the chosen endpoints in the pool.
    pub chosen: [u16; MAX_RECORDS],
    /// How many of `chosen` are set.
    pub count: u8,
    /// Answer TTL.
    pub ttl: u32,
    /// ECS scope prefix length for the reply.
    pub scope_prefix_len: u8,
    /// Answer SERVFAIL (all down, `all_down = "servfail"`).
    pub servfail: bool,
    /// Whether this answer is given with every candidate down (fail-open).
    pub failed_open: bool,
    /// Whether the answer comes from another pool than the client's first.
    pub failed_over: bool,
}

impl<'s> Selection<'s> {
    /// A selection with no records yet.
    pub fn empty(service: &Service, scope_prefix_len: u8) -> Self {
        Self {
            pool: None,
            pool_index: 0,
            chosen: [0; MAX_RECORDS],
            count: 0,
            ttl: service.ttl,
            scope_prefix_len,
            servfail: false,
            failed_open: false,
            failed_over: false,
        }
    }

    /// Adds endpoint `index` of the pool to the chosen ones.
    pub fn push(&mut self, index: u16) {
        if let Some(slot) = self.chosen.get_mut(usize::from(self.count)) {
            *slot = index;
            self.count += 1;
        }
    }

    /// Whether the answer is not the client's first choice: another pool
    /// answered, or every candidate was down (fail-open).
    pub fn is_failover(&self) -> bool {
        self.failed_over || self.failed_open
    }

    /// Indices in the pool of the chosen endpoints.
    pub fn chosen(&self) -> &[u16] {
        &self.chosen[..usize::from(self.count)]
    }

    /// The chosen endpoints.
    pub fn endpoints(&self) -> impl Iterator<Item = &'s Endpoint> + '_ {
        let pool = self.pool;
        self.chosen()
            .iter()
            .filter_map(move |&i| pool.and_then(|p| p.endpoints.get(usize::from(i))))
    }
}

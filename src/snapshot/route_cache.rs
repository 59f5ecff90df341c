//! Shares compiled region tables between services whose routing is the same.
//!
//! A service's region table is a function of its policy, its geo map and
//! latency rows with pool names resolved to indices, and its candidate
//! pools' count, coordinates and bias: not of which pools those are. So
//! services built from one shared map (or from equal inline maps over other
//! pools) compile to equal tables. Compiling one walks the whole GeoIP prefix
//! table (millions of nodes for a city database), so the cache compiles each
//! distinct routing once per snapshot build and hands out clones, which share
//! the node arena (see `PrefixTrie`): ten thousand services cost the time and
//! memory of their distinct routings. Used only while a snapshot is built.

use std::cell::RefCell;
use std::collections::HashMap;

use ipnet::IpNet;

use super::GeoTables;
use crate::policy::PolicyKind;
use crate::policy::RegionTable;
use crate::policy::route::{GeoRules, Order, RouteRules};

/// Compiled tables by routing, for one snapshot build.
#[derive(Default)]
pub struct RouteCache {
    inner: RefCell<CacheState>,
}

/// What `RouteRules::compile` returns: the distinct orders and the table.
type Compiled = (Vec<Box<[u16]>>, RegionTable);

#[derive(Default)]
struct CacheState {
    tables: HashMap<RouteKey, Compiled>,
    /// Compilations asked for, and how many of them were answered by the cache.
    requests: usize,
}

/// What the cache found, for the load log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RouteCacheStats {
    /// Services compiled through the cache.
    pub services: usize,
    /// Distinct tables compiled (the rest were shared).
    pub tables: usize,
    /// CIDR blocks over all distinct tables (both families).
    pub leaves: usize,
    /// Ranges with one answer over all distinct tables (both families).
    pub ranges: usize,
    /// The most CIDR blocks in one table.
    pub largest_leaves: usize,
    /// Bytes held by all distinct tables.
    pub bytes: usize,
}

impl RouteCache {
    /// `route.compile(...)` against `geo`, or a shared copy of an earlier
    /// result for an equal routing.
    pub fn compile(&self, route: &RouteRules, geo: &GeoTables) -> Compiled {
        let key = RouteKey::of(route);
        let mut state = self.inner.borrow_mut();
        state.requests += 1;
        if let Some((orders, table)) = state.tables.get(&key) {
            return (orders.clone(), table.clone());
        }
        let compiled = route.compile(geo.locations.as_deref(), geo.asn.as_deref());
        state.tables.insert(key, compiled.clone());
        compiled
    }

    /// Counts for the load log (walks every distinct table once).
    pub fn stats(&self) -> RouteCacheStats {
        let state = self.inner.borrow();
        let mut stats = RouteCacheStats {
            services: state.requests,
            tables: state.tables.len(),
            ..RouteCacheStats::default()
        };
        for (_, table) in state.tables.values() {
            let leaves = table.prefixes.leaf_count();
            stats.leaves += leaves;
            stats.ranges += table.prefixes.range_count();
            stats.largest_leaves = stats.largest_leaves.max(leaves);
            stats.bytes += table.prefixes.arena_bytes();
        }
        stats
    }
}

/// Everything `RouteRules::compile` reads, in a hashable, canonical form.
#[derive(PartialEq, Eq, Hash)]
struct RouteKey {
    policy: PolicyKind,
    /// The geo map, unless the policy ignores it (failover, fastest).
    geo: Option<GeoKey>,
    latency: Vec<(IpNet, Order)>,
    /// Per candidate pool: coordinates (as bits) and bias where the policy
    /// measures distances (nearest, latency), else nothing: only the count
    /// matters (the fallback order). Names only appear in explanations,
    /// which compiling discards.
    pools: Vec<(Option<(u64, u64)>, i8)>,
}

#[derive(PartialEq, Eq, Hash)]
struct GeoKey {
    nets: Vec<(IpNet, Order)>,
    asn: Vec<(u32, Order)>,
    subdivision: Vec<(String, Order)>,
    country: Vec<(String, Order)>,
    continent: Vec<(String, Order)>,
    default: Option<Order>,
}

impl RouteKey {
    fn of(route: &RouteRules) -> Self {
        let (uses_map, uses_distance) = match route.policy {
            PolicyKind::Failover | PolicyKind::Fastest => (false, false),
            PolicyKind::Geo => (true, false),
            PolicyKind::Nearest | PolicyKind::Latency => (true, true),
        };
        RouteKey {
            policy: route.policy,
            geo: route.geo.as_ref().filter(|_| uses_map).map(GeoKey::of),
            latency: route.latency.clone(),
            pools: route
                .pools
                .iter()
                .map(|pool| match (uses_distance, pool.coordinates) {
                    (true, coordinates) => (
                        coordinates.map(|(lat, lon)| (lat.to_bits(), lon.to_bits())),
                        pool.bias,
                    ),
                    (false, _) => (None, 0),
                })
                .collect(),
        }
    }
}

impl GeoKey {
    fn of(geo: &GeoRules) -> Self {
        fn sorted<K: Ord + Clone>(map: &HashMap<K, Order>) -> Vec<(K, Order)> {
            let mut entries: Vec<(K, Order)> = map
                .iter()
                .map(|(key, order)| (key.clone(), order.clone()))
                .collect();
            entries.sort();
            entries
        }
        GeoKey {
            nets: geo.nets.clone(),
            asn: sorted(&geo.asn),
            subdivision: sorted(&geo.subdivision),
            country: sorted(&geo.country),
            continent: sorted(&geo.continent),
            default: geo.default.clone(),
        }
    }
}

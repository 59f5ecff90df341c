//! Resolves `[pools]`, `[maps]` and `[services]` into compiled services:
//! names checked, pools resolved, latency tables read, region tables built.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::rr::Name;
use ipnet::IpNet;
use toml::Spanned;

use super::BuildError;
use super::latency::parse_latency_table;
use super::route_cache::RouteCache;
use crate::config;
use crate::config::{AllDownKind, GeoMapToml, LoadedConfig, MinHealthyToml, PoolToml, ServiceToml};
use crate::geo::subdivision::SubdivisionTable;
use crate::geo::{LocationTable, continent_of_country};
use crate::hash::hash_str;
use crate::health::fastest::{FastestPlan, FastestPool, FastestService};
use crate::health::{CheckSet, HealthTable, PlannedEndpoint};
use crate::policy::route::{GeoRules, Order, RouteRules};
use crate::policy::{
    AllDown, Endpoint, EndpointTarget, MAX_RECORDS, MinHealthy, PolicyKind, Pool, SelectionKind,
    Service,
};
use crate::zone::{ZoneSet, wire_name};

/// Continent codes accepted in geo maps.
const CONTINENTS: [&str; 7] = ["AF", "AN", "AS", "EU", "NA", "OC", "SA"];

/// GeoIP tables available to services.
#[derive(Debug, Clone, Default)]
pub struct GeoTables {
    /// City/country database.
    pub locations: Option<Arc<LocationTable>>,
    /// ASN database.
    pub asn: Option<Arc<LocationTable>>,
}

/// Everything `build_services` needs besides the config.
pub struct ServiceInputs<'a> {
    /// Parsed configuration.
    pub loaded: &'a LoadedConfig,
    /// GeoIP tables.
    pub geo: &'a GeoTables,
    /// The health table, which assigns endpoint ids (stable across reloads).
    pub health: &'a HealthTable,
    /// ECS caps, the default sticky prefixes.
    pub ecs_caps: (u8, u8),
    /// Compiled health checks, for pools' `check`.
    pub checks: &'a CheckSet,
    /// Region tables already compiled for an equal routing.
    pub route_cache: &'a RouteCache,
    /// Configured zones whose files did not load (their errors are
    /// reported; names inside them get no second error).
    pub failed_zones: &'a [Name],
}

/// Compiles pools and services, attaching each service to its zone; adds
/// every endpoint and how it is probed to `plan`.
pub fn build_services(
    inputs: &ServiceInputs<'_>,
    zones: &mut ZoneSet,
    plan: &mut Vec<PlannedEndpoint>,
    errors: &mut Vec<BuildError>,
) -> Vec<Service> {
    let loaded = inputs.loaded;
    let config = &loaded.config;
    let mut pools: BTreeMap<String, Arc<Pool>> = BTreeMap::new();
    for (name, pool) in &config.pools {
        if let Some(built) = build_pool(inputs, name, pool, plan, errors) {
            pools.insert(name.clone(), Arc::new(built));
        }
    }
    check_unused_maps(inputs, errors);
    let mut services: Vec<Service> = Vec::new();
    for (name, service) in &config.services {
        let index = services.len();
        let measured_slots = services
            .iter()
            .filter(|s| s.measured_slot.is_some())
            .count();
        if let Some(built) = build_service(
            inputs,
            name,
            service,
            &pools,
            zones,
            (index, measured_slots as u32),
            errors,
        ) {
            services.push(built);
        }
    }
    super::load::assign_load_slots(&mut services);
    services
}

/// A serial no other service of this process has had (see `Service::serial`).
fn next_serial() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// What the `fastest` updater maintains for `services`: every pool's
/// preferred endpoint and the measured orders, when some service uses
/// `fastest` (else nothing).
pub fn fastest_plan(services: &[Service]) -> FastestPlan {
    let mut plan = FastestPlan::default();
    let has_work = services
        .iter()
        .any(|s| s.measured_slot.is_some() || s.selection == SelectionKind::Fastest);
    if !has_work {
        return plan;
    }
    let mut pool_index: HashMap<&str, usize> = HashMap::new();
    for service in services {
        let mut pools = Vec::with_capacity(service.pools.len());
        for pool in &service.pools {
            let index = *pool_index.entry(&pool.name).or_insert_with(|| {
                plan.pools.push(FastestPool {
                    endpoints: pool
                        .endpoints
                        .iter()
                        .map(|e| (e.id, e.config_down))
                        .collect(),
                });
                plan.pools.len() - 1
            });
            pools.push(index);
        }
        if let Some(slot) = service.measured_slot {
            plan.services.push(FastestService {
                name: service.name.clone(),
                serial: service.serial,
                slot,
                pools,
                initial: service.route.fallback().into_boxed_slice(),
            });
        }
    }
    plan
}

/// Validates maps no service uses, so `gslb check` catches their mistakes
/// before a later edit starts using them.
fn check_unused_maps(inputs: &ServiceInputs<'_>, errors: &mut Vec<BuildError>) {
    let config = &inputs.loaded.config;
    let known: Vec<&str> = config.pools.keys().map(String::as_str).collect();
    for (map_name, map) in &config.maps {
        if config.services.values().any(|s| {
            s.get_ref()
                .map
                .as_ref()
                .is_some_and(|m| m.get_ref() == map_name)
        }) {
            continue;
        }
        let mut resolve = |list: &Spanned<Vec<String>>, errors: &mut Vec<BuildError>| -> Order {
            let mut order = Vec::new();
            for pool in list.get_ref() {
                match known.iter().position(|k| k == pool) {
                    Some(i) => order.push(i as u16),
                    None => errors.push(
                        inputs
                            .loaded
                            .error_at(
                                list.span(),
                                format!(
                                    "unknown pool {pool:?} in map {map_name} (known: {})",
                                    list_or_none(&known)
                                ),
                            )
                            .into(),
                    ),
                }
            }
            order
        };
        compile_map(
            inputs.loaded,
            map.get_ref(),
            &mut resolve,
            inputs.geo,
            errors,
        );
    }
}

/// A `check_from` list as the plan keeps it; an empty list is an error.
fn check_from_list(
    list: &[String],
    span: std::ops::Range<usize>,
    push: &mut impl FnMut(std::ops::Range<usize>, String),
) -> Option<std::sync::Arc<[String]>> {
    if list.is_empty() {
        push(
            span,
            "check_from is empty: name at least one member, or leave it out (every member probes)"
                .into(),
        );
        return None;
    }
    Some(list.iter().cloned().collect())
}

fn build_pool(
    inputs: &ServiceInputs<'_>,
    name: &str,
    pool: &Spanned<PoolToml>,
    plan: &mut Vec<PlannedEndpoint>,
    errors: &mut Vec<BuildError>,
) -> Option<Pool> {
    let loaded = inputs.loaded;
    let before = errors.len();
    let span = pool.span();
    let pool = pool.get_ref();
    // One pass per section, in the order their errors are reported.
    let check = crate::health::resolve_pool_check(loaded, name, pool.check.as_ref(), inputs.checks)
        .unwrap_or_else(|err| {
            errors.push(err.into());
            None
        });
    let (endpoints, planned) = pool_endpoints(inputs, name, span, pool, check.as_ref(), errors);
    let coordinates = pool_coordinates(loaded, name, pool, errors);
    let bias = pool.bias.as_ref().map_or(0, |bias| {
        loaded
            .in_range(bias, -99..=99, |b| {
                format!("bias {b} of pool {name} is out of range -99..99")
            })
            .unwrap_or_else(|err| {
                errors.push(err.into());
                0
            })
    });
    let min_healthy = pool_min_healthy(loaded, pool, errors);
    let (capacity, overflow_at) = super::load::pool_load_keys(loaded, name, pool, errors);
    if errors.len() == before {
        plan.extend(planned);
    }
    (errors.len() == before).then(|| Pool {
        name: name.to_string(),
        endpoints,
        coordinates,
        backup: pool.backup,
        bias,
        min_healthy,
        capacity,
        overflow_at,
    })
}

/// A pool's endpoints, each registered in the health table, and how each
/// is probed (and by which cluster members).
fn pool_endpoints(
    inputs: &ServiceInputs<'_>,
    name: &str,
    span: std::ops::Range<usize>,
    pool: &PoolToml,
    check: Option<&Arc<crate::health::CheckSpec>>,
    errors: &mut Vec<BuildError>,
) -> (Vec<Endpoint>, Vec<PlannedEndpoint>) {
    let (loaded, health) = (inputs.loaded, inputs.health);
    let mut planned = Vec::new();
    let mut push = |span: std::ops::Range<usize>, message: String| {
        errors.push(loaded.error_at(span, message).into())
    };
    if pool.endpoints.is_empty() {
        push(
            span.clone(),
            format!("pool {name} has no endpoints: add at least one"),
        );
    }
    // --- cluster settings this pool's probes depend on ---
    let cluster = loaded.config.cluster.as_ref().map(|c| c.get_ref());
    let member = cluster.map(|c| c.name.get_ref().as_str());
    let probe_source = cluster.and_then(|c| c.probe_source.as_ref().map(|s| *s.get_ref()));
    let pool_check_from = pool
        .check_from
        .as_ref()
        .and_then(|list| check_from_list(list.get_ref(), list.span(), &mut push));
    let mut endpoints = Vec::new();
    let mut kinds = (0, 0);
    for endpoint in &pool.endpoints {
        let espan = endpoint.span();
        let e = endpoint.get_ref();
        let target = match (&e.address, &e.cname) {
            (Some(address), None) => {
                kinds.0 += 1;
                EndpointTarget::Address(*address)
            }
            (None, Some(cname)) => match Name::from_ascii(cname) {
                Ok(mut target) => {
                    kinds.1 += 1;
                    target.set_fqdn(true);
                    EndpointTarget::Cname(wire_name(&target))
                }
                Err(err) => {
                    push(espan, format!("bad cname {cname:?} in pool {name}: {err}"));
                    continue;
                }
            },
            _ => {
                push(
                    espan,
                    format!("an endpoint of pool {name} needs exactly one of `address` or `cname`"),
                );
                continue;
            }
        };
        let rdata: Box<[u8]> = match &target {
            EndpointTarget::Address(IpAddr::V4(v4)) => Box::new(v4.octets()),
            EndpointTarget::Address(IpAddr::V6(v6)) => Box::new(v6.octets()),
            EndpointTarget::Cname(wire) => wire.clone(),
        };
        let key = match (&e.address, &e.cname) {
            (Some(address), _) => format!("{name}/{address}"),
            (_, Some(cname)) => format!(
                "{name}/{}",
                cname.trim_end_matches('.').to_ascii_lowercase()
            ),
            _ => continue,
        };
        if endpoints.iter().any(|other: &Endpoint| other.key == key) {
            push(espan, format!("endpoint {key} is listed twice"));
            continue;
        }
        let probe = match crate::health::plan_probe(loaded, name, check, endpoint) {
            Ok(probe) => probe.map(|probe| crate::health::Probe {
                source: probe_source,
                ..probe
            }),
            // The pool names a check with errors of its own: those were reported.
            Err(_) if pool.check.is_some() && check.is_none() => None,
            Err(err) => {
                push(espan, err.message);
                continue;
            }
        };
        // --- cluster: which members probe and vote on it (see cluster) ---
        let check_from = match &e.check_from {
            Some(list) => check_from_list(list, espan.clone(), &mut push),
            None => pool_check_from.clone(),
        };
        if check_from.is_some() && check.is_none() && pool.check.is_none() {
            push(
                espan.clone(),
                format!(
                    "check_from needs `check = \"NAME\"` on pool {name}: only probed endpoints have voters"
                ),
            );
        }
        let probe = match (&check_from, member) {
            (Some(list), Some(me)) if !list.iter().any(|m| m == me) => None,
            _ => probe,
        };
        let (id, record) = health.register(&key, probe.as_ref().is_none_or(|p| p.check.initial_up));
        planned.push(PlannedEndpoint {
            key: key.clone(),
            health: record,
            probe,
            check_from,
        });
        endpoints.push(Endpoint {
            id,
            key_hash: hash_str(&key),
            key,
            target,
            rdata,
            weight: e.weight,
            config_down: e.down,
        });
    }
    if kinds.0 > 0 && kinds.1 > 0 {
        push(
            span.clone(),
            format!("pool {name} mixes address and cname endpoints: use one kind per pool"),
        );
    }
    (endpoints, planned)
}

/// A pool's `coordinates`, checked.
fn pool_coordinates(
    loaded: &LoadedConfig,
    name: &str,
    pool: &PoolToml,
    errors: &mut Vec<BuildError>,
) -> Option<(f64, f64)> {
    let c = pool.coordinates.as_ref()?;
    let [lat, lon] = *c.get_ref();
    if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
        let message = format!(
            "coordinates [{lat}, {lon}] of pool {name} are out of range: [latitude -90..90, longitude -180..180]"
        );
        errors.push(loaded.error_at(c.span(), message).into());
    }
    Some((lat, lon))
}

/// A pool's `min_healthy`, checked.
fn pool_min_healthy(
    loaded: &LoadedConfig,
    pool: &PoolToml,
    errors: &mut Vec<BuildError>,
) -> MinHealthy {
    let mut push = |span: std::ops::Range<usize>, message: String| {
        errors.push(loaded.error_at(span, message).into())
    };
    match &pool.min_healthy {
        None => MinHealthy::Count(1),
        Some(m) => match *m.get_ref() {
            MinHealthyToml::Count(0) => {
                push(
                    m.span(),
                    "min_healthy must be at least 1 (or a fraction in (0, 1])".to_string(),
                );
                MinHealthy::Count(1)
            }
            MinHealthyToml::Count(n) => MinHealthy::Count(n),
            MinHealthyToml::Fraction(f) if f > 0.0 && f <= 1.0 => MinHealthy::Fraction(f),
            MinHealthyToml::Fraction(f) => {
                push(
                    m.span(),
                    format!("min_healthy fraction {f} must be in (0, 1]"),
                );
                MinHealthy::Count(1)
            }
        },
    }
}

#[allow(clippy::too_many_arguments)]
fn build_service(
    inputs: &ServiceInputs<'_>,
    name: &str,
    service: &Spanned<ServiceToml>,
    pools: &BTreeMap<String, Arc<Pool>>,
    zones: &mut ZoneSet,
    (index, measured_slot): (usize, u32),
    errors: &mut Vec<BuildError>,
) -> Option<Service> {
    let loaded = inputs.loaded;
    let before = errors.len();
    let span = service.span();
    let s = service.get_ref();
    // One pass per section, in the order their errors are reported.
    let fqdn = attach_service(inputs, name, span.clone(), zones, index, errors)?;
    let map = service_map(loaded, s, errors);
    let (pool_names, service_pools, index_of) =
        service_pools(loaded, &fqdn, span, s, map, pools, errors);
    let geo = map.map(|map| {
        let pools = ServicePools {
            configured: pools,
            names: &pool_names,
            index_of: &index_of,
        };
        service_geo(loaded, &fqdn, map, &pools, inputs.geo, errors)
    });
    let policy = policy_kind(*s.policy.get_ref());
    check_locations(
        inputs,
        &fqdn,
        s,
        policy,
        geo.as_ref(),
        &service_pools,
        errors,
    );
    let latency = service_latency(loaded, s, policy, &index_of, service_pools.len(), errors);
    let max_records = loaded
        .in_range(&s.max_records, 1..=MAX_RECORDS as u8, |m| {
            format!("max_records = {m}: use 1..={MAX_RECORDS}")
        })
        .unwrap_or_else(|err| {
            errors.push(err.into());
            0
        });
    let load = super::load::service_load_rules(loaded, &fqdn, s, &service_pools, errors);
    if errors.len() != before {
        return None;
    }
    let route = RouteRules {
        policy,
        geo,
        latency,
        pools: service_pools.clone(),
    };
    let (orders, table) = inputs.route_cache.compile(&route, inputs.geo);
    let (v4_cap, v6_cap) = inputs.ecs_caps;
    Some(Service {
        serial: next_serial(),
        name: fqdn.to_ascii(),
        pools: service_pools,
        orders,
        table,
        selection: selection_kind(s.selection),
        max_records,
        ttl: s.ttl.0,
        all_down: all_down(s.all_down),
        sticky_prefix_v4: s.sticky_prefix_v4.unwrap_or(v4_cap).min(32),
        sticky_prefix_v6: s.sticky_prefix_v6.unwrap_or(v6_cap).min(128),
        measured_slot: (policy == PolicyKind::Fastest).then_some(measured_slot),
        route,
        failover_ttl: s.failover_ttl.map(|t| t.0),
        load,
    })
    .inspect(|service| {
        if service.selection == SelectionKind::Sticky {
            tracing::debug!(service = %service.name, "sticky selection");
        }
    })
}

/// A service's pools as its map may name them.
struct ServicePools<'p> {
    /// Every pool that built.
    configured: &'p BTreeMap<String, Arc<Pool>>,
    /// The service's pools, as written.
    names: &'p [Spanned<String>],
    /// Each of the service's pools by name: its index in the service.
    index_of: &'p HashMap<String, u16>,
}

/// The service's geo map compiled, each pool list resolved to indices.
fn service_geo(
    loaded: &LoadedConfig,
    fqdn: &Name,
    map: &GeoMapToml,
    service_pools: &ServicePools<'_>,
    geo: &GeoTables,
    errors: &mut Vec<BuildError>,
) -> GeoRules {
    let ServicePools {
        configured: pools,
        names: pool_names,
        index_of,
    } = *service_pools;
    let error = |span: std::ops::Range<usize>, message: String| -> BuildError {
        loaded.error_at(span, message).into()
    };
    let mut resolve = |list: &Spanned<Vec<String>>, errors: &mut Vec<BuildError>| -> Order {
        let mut order = Vec::new();
        let mut failed_pool = false;
        for pool in list.get_ref() {
            match index_of.get(pool) {
                Some(&i) => order.push(i),
                // A configured pool with errors of its own (reported).
                None if loaded.config.pools.contains_key(pool) && !pools.contains_key(pool) => {
                    failed_pool = true;
                }
                None => errors.push(error(
                    list.span(),
                    format!("unknown pool {pool:?} in the map of service {fqdn} (pools of this service: {})", list_or_none(&pool_names.iter().map(|p| p.get_ref().as_str()).collect::<Vec<_>>())),
                )),
            }
        }
        if order.is_empty() && !failed_pool {
            errors.push(error(
                list.span(),
                "an empty pool list: name at least one pool".to_string(),
            ));
        }
        order
    };

    compile_map(loaded, map, &mut resolve, geo, errors)
}

/// A service's name, checked and attached to the zone that serves it.
fn attach_service(
    inputs: &ServiceInputs<'_>,
    name: &str,
    span: std::ops::Range<usize>,
    zones: &mut ZoneSet,
    index: usize,
    errors: &mut Vec<BuildError>,
) -> Option<Name> {
    let loaded = inputs.loaded;
    let error = |span: std::ops::Range<usize>, message: String| -> BuildError {
        loaded.error_at(span, message).into()
    };
    // The name must be in a served zone and free of static records.
    let mut fqdn = match Name::from_ascii(name) {
        Ok(n) => n,
        Err(err) => {
            errors.push(error(span, format!("bad service name {name:?}: {err}")));
            return None;
        }
    };
    fqdn.set_fqdn(true);
    let wire = wire_name(&fqdn);
    let origin: Option<Box<[u8]>> = zones.find(&wire).map(|z| z.origin().into());
    match origin.as_deref().and_then(|o| zones.get_mut(o)) {
        // Its zone failed to load: that error is the root cause.
        None if inputs.failed_zones.iter().any(|z| z.zone_of(&fqdn)) => {}
        None => errors.push(error(
            span.clone(),
            format!("service {fqdn} is not inside any served zone: add its zone or fix the name"),
        )),
        Some(zone) => {
            if let Err(message) = zone.attach_service(&wire, index) {
                errors.push(error(span.clone(), message));
            }
        }
    }
    Some(fqdn)
}

/// The service's geo map: inline or shared.
fn service_map<'c>(
    loaded: &'c LoadedConfig,
    s: &'c ServiceToml,
    errors: &mut Vec<BuildError>,
) -> Option<&'c GeoMapToml> {
    let error = |span: std::ops::Range<usize>, message: String| -> BuildError {
        loaded.error_at(span, message).into()
    };
    match (&s.geo, &s.map) {
        (Some(_), Some(m)) => {
            errors.push(error(
                m.span(),
                "use either an inline `geo` table or `map`, not both".to_string(),
            ));
            None
        }
        (Some(geo), None) => Some(geo),
        (None, Some(m)) => match loaded.config.maps.get(m.get_ref()) {
            Some(map) => Some(map.get_ref()),
            None => {
                let known: Vec<&str> = loaded.config.maps.keys().map(String::as_str).collect();
                errors.push(error(
                    m.span(),
                    format!(
                        "unknown map {:?} (known: {})",
                        m.get_ref(),
                        list_or_none(&known)
                    ),
                ));
                None
            }
        },
        (None, None) => None,
    }
}

/// The pools a service answers from, in its order: as listed, else in
/// order of first mention in its map; and each one's index.
#[allow(clippy::type_complexity)]
fn service_pools(
    loaded: &LoadedConfig,
    fqdn: &Name,
    span: std::ops::Range<usize>,
    s: &ServiceToml,
    map: Option<&GeoMapToml>,
    pools: &BTreeMap<String, Arc<Pool>>,
    errors: &mut Vec<BuildError>,
) -> (Vec<Spanned<String>>, Vec<Arc<Pool>>, HashMap<String, u16>) {
    let error = |span: std::ops::Range<usize>, message: String| -> BuildError {
        loaded.error_at(span, message).into()
    };
    let mut pool_names: Vec<Spanned<String>> = s.pools.clone();
    if pool_names.is_empty()
        && let Some(map) = map
    {
        for list in map_lists(map) {
            for pool in list.get_ref() {
                if !pool_names.iter().any(|p| p.get_ref() == pool) {
                    pool_names.push(Spanned::new(list.span(), pool.clone()));
                }
            }
        }
    }
    if pool_names.is_empty() {
        errors.push(error(
            span.clone(),
            format!("service {fqdn} has no pools: list them in `pools`"),
        ));
    }
    let known: Vec<&str> = pools.keys().map(String::as_str).collect();
    let mut service_pools: Vec<Arc<Pool>> = Vec::new();
    let mut index_of: HashMap<String, u16> = HashMap::new();
    for pool_name in &pool_names {
        match pools.get(pool_name.get_ref()) {
            Some(pool) if !index_of.contains_key(pool_name.get_ref()) => {
                index_of.insert(pool_name.get_ref().clone(), service_pools.len() as u16);
                service_pools.push(pool.clone());
            }
            Some(_) => errors.push(error(
                pool_name.span(),
                format!("pool {} is listed twice", pool_name.get_ref()),
            )),
            None if loaded.config.pools.contains_key(pool_name.get_ref()) => {} // its own errors were reported
            None => errors.push(error(
                pool_name.span(),
                format!(
                    "unknown pool {:?} in service {fqdn} (known: {})",
                    pool_name.get_ref(),
                    list_or_none(&known)
                ),
            )),
        }
    }
    (pool_names, service_pools, index_of)
}

/// Whether the service can locate its clients: a database for the map's
/// countries and continents or for `nearest`, coordinates on every pool.
fn check_locations(
    inputs: &ServiceInputs<'_>,
    fqdn: &Name,
    s: &ServiceToml,
    policy: PolicyKind,
    geo: Option<&GeoRules>,
    service_pools: &[Arc<Pool>],
    errors: &mut Vec<BuildError>,
) {
    let loaded = inputs.loaded;
    let error = |span: std::ops::Range<usize>, message: String| -> BuildError {
        loaded.error_at(span, message).into()
    };
    let uses_locations = matches!(policy, PolicyKind::Nearest)
        || geo.is_some_and(|g| {
            !g.subdivision.is_empty() || !g.country.is_empty() || !g.continent.is_empty()
        });
    // A configured database that failed to load was reported as such.
    let database_configured = loaded
        .config
        .geoip
        .as_ref()
        .is_some_and(|g| g.database.is_some());
    if uses_locations
        && inputs.geo.locations.is_none()
        && !database_configured
        && policy != PolicyKind::Failover
    {
        errors.push(error(s.policy.span(), format!("service {fqdn} locates clients by country, continent or coordinates, but no [geoip] database is configured")));
    }
    if policy == PolicyKind::Nearest {
        for pool in service_pools {
            if pool.coordinates.is_none() {
                errors.push(error(
                    s.policy.span(),
                    format!(
                        "policy nearest needs coordinates on every pool; pool {} has none",
                        pool.name
                    ),
                ));
            }
        }
    }
}

/// The orders of a `latency` service, from its latency table.
fn service_latency(
    loaded: &LoadedConfig,
    s: &ServiceToml,
    policy: PolicyKind,
    index_of: &HashMap<String, u16>,
    pool_count: usize,
    errors: &mut Vec<BuildError>,
) -> Vec<(IpNet, Order)> {
    let error = |span: std::ops::Range<usize>, message: String| -> BuildError {
        loaded.error_at(span, message).into()
    };
    let mut latency = Vec::new();
    match (&s.latency_table, policy) {
        (Some(path), PolicyKind::Latency) => {
            let file = loaded.resolve_path(path.get_ref());
            // An unreadable file is reported at the key that names it.
            match std::fs::read_to_string(&file).map(|text| parse_latency_table(&text, &file)) {
                Ok(Ok(rows)) => {
                    latency = latency_orders(&rows, index_of, pool_count, &file, errors)
                }
                Ok(Err(list)) => errors.extend(list.into_iter().map(BuildError::from)),
                Err(err) => errors.push(error(
                    path.span(),
                    format!(
                        "latency_table: cannot read {}: {err}: fix the path (relative to the config file's directory)",
                        file.display()
                    ),
                )),
            }
        }
        (None, PolicyKind::Latency) => errors.push(error(
            s.policy.span(),
            "policy latency needs `latency_table` (CSV: prefix,region,milliseconds)".to_string(),
        )),
        (Some(path), _) => errors.push(error(
            path.span(),
            "latency_table is only used by policy = \"latency\"".to_string(),
        )),
        _ => {}
    }
    latency
}

// --- the configuration's enums, mapped once into policy's own ---

fn policy_kind(kind: config::PolicyKind) -> PolicyKind {
    match kind {
        config::PolicyKind::Geo => PolicyKind::Geo,
        config::PolicyKind::Nearest => PolicyKind::Nearest,
        config::PolicyKind::Latency => PolicyKind::Latency,
        config::PolicyKind::Failover => PolicyKind::Failover,
        config::PolicyKind::Fastest => PolicyKind::Fastest,
    }
}

fn selection_kind(kind: config::SelectionKind) -> SelectionKind {
    match kind {
        config::SelectionKind::Weighted => SelectionKind::Weighted,
        config::SelectionKind::Sticky => SelectionKind::Sticky,
        config::SelectionKind::Multivalue => SelectionKind::Multivalue,
        config::SelectionKind::Fastest => SelectionKind::Fastest,
    }
}

fn all_down(kind: AllDownKind) -> AllDown {
    match kind {
        AllDownKind::FailOpen => AllDown::FailOpen,
        AllDownKind::Nodata => AllDown::Nodata,
        AllDownKind::Servfail => AllDown::Servfail,
    }
}

fn map_lists(map: &GeoMapToml) -> impl Iterator<Item = &Spanned<Vec<String>>> {
    map.nets
        .values()
        .chain(map.asn.values())
        .chain(map.subdivision.values())
        .chain(map.country.values())
        .chain(map.continent.values())
        .chain(map.default.iter())
}

fn compile_map(
    loaded: &LoadedConfig,
    map: &GeoMapToml,
    resolve: &mut impl FnMut(&Spanned<Vec<String>>, &mut Vec<BuildError>) -> Order,
    geo: &GeoTables,
    errors: &mut Vec<BuildError>,
) -> GeoRules {
    let mut rules = GeoRules::default();
    // In file order, so a duplicate is reported at its second line.
    let mut nets: Vec<(&String, &Spanned<Vec<String>>)> = map.nets.iter().collect();
    nets.sort_by_key(|(_, list)| list.span().start);
    let mut seen: Vec<(IpNet, &String, &Spanned<Vec<String>>)> = Vec::new();
    for (key, list) in nets {
        match key.parse::<IpNet>() {
            Ok(net) if net.trunc() != net => errors.push(
                loaded
                    .error_at(
                        list.span(),
                        format!(
                            "network {key:?} in nets has host bits set: write {} (or the host as /{})",
                            net.trunc(),
                            net.max_prefix_len()
                        ),
                    )
                    .into(),
            ),
            Ok(net) => {
                if let Some((_, first, first_list)) = seen.iter().find(|(n, ..)| *n == net) {
                    errors.push(
                        loaded
                            .error_at(
                                list.span(),
                                format!(
                                    "network {key:?} in nets is the same network as {first:?} at line {}: remove one of the two",
                                    loaded.line_of(&first_list.span())
                                ),
                            )
                            .into(),
                    );
                    continue;
                }
                seen.push((net, key, list));
                rules.nets.push((net, resolve(list, errors)));
            }
            Err(_) => {
                // A bare address is a host: say how to write it.
                let fix = match key.parse::<IpAddr>() {
                    Ok(host) => format!(": write {}", IpNet::from(host)),
                    Err(_) => String::new(),
                };
                errors.push(
                    loaded
                        .error_at(
                            list.span(),
                            format!(
                                "bad network {key:?} in nets: expected CIDR like 10.0.0.0/8{fix}"
                            ),
                        )
                        .into(),
                );
            }
        }
    }
    let asn_configured = loaded
        .config
        .geoip
        .as_ref()
        .is_some_and(|g| g.asn_database.is_some());
    if geo.asn.is_none()
        && !asn_configured
        && let Some(list) = map.asn.values().next()
    {
        errors.push(
            loaded
                .error_at(list.span(), "asn rules need geoip.asn_database")
                .into(),
        );
    }
    for (key, list) in &map.asn {
        let digits = key.trim_start_matches(['A', 'S', 'a', 's']);
        match digits.parse::<u32>() {
            Ok(number) => {
                rules.asn.insert(number, resolve(list, errors));
            }
            Err(_) => errors.push(
                loaded
                    .error_at(
                        list.span(),
                        format!("bad ASN {key:?}: expected a number like 15169 or AS15169"),
                    )
                    .into(),
            ),
        }
    }
    for (key, list) in &map.subdivision {
        let upper = key.to_ascii_uppercase();
        match upper.split_once('-') {
            Some((country, sub)) if country.len() == 2 && !sub.is_empty() => {
                rules
                    .subdivision
                    .insert(upper.clone(), resolve(list, errors));
            }
            _ => {
                let named = SubdivisionTable::get().codes_named(key);
                let fix = match named.as_slice() {
                    [] => String::new(),
                    [one] => format!(": write {one:?}"),
                    some => {
                        let quoted: Vec<String> = some.iter().map(|c| format!("{c:?}")).collect();
                        format!(": write one of {}", quoted.join(", "))
                    }
                };
                errors.push(
                    loaded
                        .error_at(
                            list.span(),
                            format!(
                                "bad subdivision {key:?}: expected an ISO 3166-2 code like US-WA{fix}"
                            ),
                        )
                        .into(),
                );
            }
        }
    }
    for (key, list) in &map.country {
        let upper = key.to_ascii_uppercase();
        if continent_of_country(&upper).is_none() {
            errors.push(
                loaded
                    .error_at(
                        list.span(),
                        format!(
                            "unknown country code {key:?}: expected ISO 3166-1 alpha-2 like GB"
                        ),
                    )
                    .into(),
            );
            continue;
        }
        rules.country.insert(upper, resolve(list, errors));
    }
    for (key, list) in &map.continent {
        let upper = key.to_ascii_uppercase();
        if !CONTINENTS.contains(&upper.as_str()) {
            errors.push(
                loaded
                    .error_at(
                        list.span(),
                        format!(
                            "unknown continent {key:?}: expected one of {}",
                            CONTINENTS.join(", ")
                        ),
                    )
                    .into(),
            );
            continue;
        }
        rules.continent.insert(upper, resolve(list, errors));
    }
    if let Some(list) = &map.default {
        rules.default = Some(resolve(list, errors));
    }
    rules
}

/// Groups latency rows by network; each network's order is its regions by
/// latency, then the service's other pools in configured order.
fn latency_orders(
    rows: &[super::latency::LatencyRow],
    index_of: &HashMap<String, u16>,
    pool_count: usize,
    file: &std::path::Path,
    errors: &mut Vec<BuildError>,
) -> Vec<(IpNet, Order)> {
    let mut by_network: BTreeMap<IpNet, Vec<(f64, u16)>> = BTreeMap::new();
    for row in rows {
        match index_of.get(&row.region) {
            Some(&i) => by_network
                .entry(row.network)
                .or_default()
                .push((row.latency_ms, i)),
            None => errors.push(
                super::latency::LatencyError {
                    file: file.to_path_buf(),
                    line: row.line,
                    message: format!("region {:?} is not a pool of this service", row.region),
                }
                .into(),
            ),
        }
    }
    by_network
        .into_iter()
        .map(|(net, mut measured)| {
            measured.sort_by(|a, b| a.0.total_cmp(&b.0));
            let mut order: Order = Vec::new();
            for (_, i) in measured {
                if !order.contains(&i) {
                    order.push(i);
                }
            }
            for i in 0..pool_count as u16 {
                if !order.contains(&i) {
                    order.push(i);
                }
            }
            (net, order)
        })
        .collect()
}

fn list_or_none(names: &[&str]) -> String {
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}

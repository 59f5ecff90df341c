//! Pure, table-driven tests of answer selection: tiny services built in
//! code, health set by hand in a view, no sockets, no clock.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use ipnet::IpNet;

use super::route::{GeoRules, RouteRules};
use super::*;
use crate::geo::{FieldPaths, LocationTable, MmdbValue, write_mmdb};
use crate::hash::{SplitMix64, hash_str};
use crate::health::{EndpointId, EndpointState, HealthView, Override};

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// Health set by hand: a state per endpoint id, as a table would publish.
#[derive(Default)]
struct Health {
    states: Vec<EndpointState>,
}

impl Health {
    /// A new endpoint's id, up.
    fn add(&mut self) -> EndpointId {
        self.states.push(EndpointState::UNKNOWN);
        EndpointId::new(self.states.len() as u32 - 1)
    }

    fn state(&mut self, e: &Endpoint) -> &mut EndpointState {
        &mut self.states[e.id.index()]
    }

    fn set_up(&mut self, e: &Endpoint, up: bool) {
        self.state(e).usable = up;
    }

    fn force_down(&mut self, e: &Endpoint) {
        self.set_override(e, Override::ForceDown);
    }

    /// An endpoint's own override, as the table would publish it.
    fn set_override(&mut self, e: &Endpoint, value: Override) {
        let state = self.state(e);
        state.own_override = value;
        state.operator_down = matches!(value, Override::ForceDown | Override::Drain);
        if state.operator_down {
            state.usable = false;
        }
    }

    fn view(&self) -> HealthView {
        HealthView::from_states(1, self.states.clone())
    }
}

fn endpoint(h: &mut Health, pool: &str, address: &str, weight: u32) -> Endpoint {
    let address = ip(address);
    let key = format!("{pool}/{address}");
    Endpoint {
        rdata: match address {
            IpAddr::V4(v4) => Box::new(v4.octets()),
            IpAddr::V6(v6) => Box::new(v6.octets()),
        },
        target: EndpointTarget::Address(address),
        weight,
        config_down: false,
        id: h.add(),
        key_hash: hash_str(&key),
        key,
    }
}

fn pool(
    h: &mut Health,
    name: &str,
    addresses: &[(&str, u32)],
    coordinates: Option<(f64, f64)>,
) -> Arc<Pool> {
    Arc::new(Pool {
        name: name.to_string(),
        endpoints: addresses
            .iter()
            .map(|(a, w)| endpoint(h, name, a, *w))
            .collect(),
        coordinates,
        backup: false,
        bias: 0,
        min_healthy: MinHealthy::Count(1),
        capacity: None,
        overflow_at: None,
    })
}

/// A location table: GB /24 in EU, US-WA /24, JP /32 v6, and one
/// coordinates-only network.
fn locations() -> LocationTable {
    let city = |country: &str, continent: &str, sub: Option<&str>, lat: f64, lon: f64| {
        let mut fields = vec![
            (
                "country",
                MmdbValue::map([("iso_code", MmdbValue::string(country))]),
            ),
            (
                "continent",
                MmdbValue::map([("code", MmdbValue::string(continent))]),
            ),
            (
                "location",
                MmdbValue::map([
                    ("latitude", MmdbValue::Double(lat)),
                    ("longitude", MmdbValue::Double(lon)),
                ]),
            ),
        ];
        if let Some(sub) = sub {
            fields.push((
                "subdivisions",
                MmdbValue::Array(vec![MmdbValue::map([("iso_code", MmdbValue::string(sub))])]),
            ));
        }
        MmdbValue::map(fields)
    };
    let entries: Vec<(IpNet, MmdbValue)> = vec![
        (
            "81.2.69.0/24".parse().unwrap(),
            city("GB", "EU", None, 51.51, -0.09),
        ),
        (
            "216.160.83.0/24".parse().unwrap(),
            city("US", "NA", Some("WA"), 47.25, -122.31),
        ),
        (
            "12.0.0.0/8".parse().unwrap(),
            city("US", "NA", Some("NY"), 40.71, -74.0),
        ),
        (
            "2001:218::/32".parse().unwrap(),
            city("JP", "AS", None, 35.69, 139.69),
        ),
    ];
    let bytes = write_mmdb("GeoIP2-City", &entries).unwrap();
    LocationTable::from_bytes(bytes, Path::new("test.mmdb"), &FieldPaths::maxmind()).unwrap()
}

struct Fixture {
    service: Service,
}

fn service(
    policy: PolicyKind,
    pools: Vec<Arc<Pool>>,
    geo: Option<GeoRules>,
    selection: SelectionKind,
) -> Fixture {
    let route = RouteRules {
        policy,
        geo,
        latency: Vec::new(),
        pools,
    };
    let mut service = compiled(route, &locations(), None);
    service.selection = selection;
    Fixture { service }
}

/// A service compiled from `route` (weighted, one record, TTL 30, fail-open).
fn compiled(route: RouteRules, locations: &LocationTable, asn: Option<&LocationTable>) -> Service {
    let (orders, table) = route.compile(Some(locations), asn);
    Service {
        serial: 1,
        name: "www.example.test.".to_string(),
        pools: route.pools.clone(),
        orders,
        table,
        selection: SelectionKind::Weighted,
        max_records: 1,
        ttl: 30,
        all_down: AllDown::FailOpen,
        sticky_prefix_v4: 24,
        sticky_prefix_v6: 56,
        route,
        failover_ttl: None,
        measured_slot: None,
        load: None,
    }
}

fn three_pools(h: &mut Health) -> Vec<Arc<Pool>> {
    vec![
        pool(
            h,
            "eu",
            &[("192.0.2.10", 1), ("192.0.2.11", 1)],
            Some((50.11, 8.68)),
        ),
        pool(h, "us", &[("198.51.100.10", 1)], Some((39.04, -77.49))),
        pool(
            h,
            "ap",
            &[("203.0.113.10", 1), ("2001:db8:f::10", 1)],
            Some((35.68, 139.69)),
        ),
    ]
}

fn geo_rules() -> GeoRules {
    GeoRules {
        nets: vec![("10.1.0.0/16".parse().unwrap(), vec![2])],
        asn: HashMap::new(),
        subdivision: HashMap::from([("US-WA".to_string(), vec![2, 1])]),
        country: HashMap::from([("GB".to_string(), vec![0, 1])]),
        continent: HashMap::from([
            ("NA".to_string(), vec![1, 0]),
            ("AS".to_string(), vec![2, 1]),
        ]),
        default: Some(vec![1]),
    }
}

fn answer(
    service: &Service,
    h: &Health,
    client: ClientAddress,
    family: Family,
) -> (Vec<String>, u8) {
    let selection = select(service, &h.view(), client, family, 7, None);
    (
        selection.endpoints().map(|e| e.key.clone()).collect(),
        selection.scope_prefix_len,
    )
}

#[test]
fn geo_most_specific_rule_wins() {
    let mut h = Health::default();
    let fixture = service(
        PolicyKind::Geo,
        three_pools(&mut h),
        Some(geo_rules()),
        SelectionKind::Weighted,
    );
    let s = &fixture.service;
    let cases = [
        // (client, prefix, expected pool, expected scope)
        ("81.2.69.0", 24, "eu", 24),    // country GB
        ("216.160.83.0", 24, "ap", 24), // subdivision US-WA beats continent NA
        ("12.1.2.0", 24, "us", 8),      // continent NA; the /8 is uniform
        ("10.1.2.0", 24, "ap", 16),     // operator net
        ("192.0.2.0", 24, "us", 4),     // default: 192.0.0.0/4 holds no other data
    ];
    for (address, prefix, pool_name, scope) in cases {
        let (keys, got_scope) = answer(
            s,
            &h,
            ClientAddress::subnet(ip(address), prefix),
            Family::V4,
        );
        assert!(
            keys[0].starts_with(&format!("{pool_name}/")),
            "{address}: {keys:?}"
        );
        assert_eq!(got_scope, scope, "{address}");
    }
    let (keys, scope) = answer(
        s,
        &h,
        ClientAddress::subnet(ip("2001:218::"), 32),
        Family::V6,
    );
    assert_eq!(keys, vec!["ap/2001:db8:f::10"]);
    assert_eq!(scope, 32);
}

#[test]
fn scope_is_where_the_answer_for_the_first_address_holds() {
    let mut h = Health::default();
    // Property: the reply's scope covers only addresses the table sends
    // where it sent the source block's first address; it is at most the
    // source prefix unless the block is mixed (RFC 7871 §7.2.1).
    let fixture = service(
        PolicyKind::Geo,
        three_pools(&mut h),
        Some(geo_rules()),
        SelectionKind::Weighted,
    );
    let table = &fixture.service.table;
    let mut rng = SplitMix64(1);
    for _ in 0..5_000 {
        let bits = rng.next_u64() as u32;
        let prefix = (rng.next_u64() % 33) as u8;
        let client = ClientAddress::subnet(IpAddr::V4(bits.into()), prefix);
        let selection = select(
            &fixture.service,
            &h.view(),
            client,
            Family::V4,
            rng.next_u64(),
            None,
        );
        let scope = selection.scope_prefix_len;
        let (order, depth) = table.lookup(client.address);
        assert_eq!(scope, depth, "{client:?}");
        let IpAddr::V4(first) = client.address else {
            unreachable!("an IPv4 client")
        };
        let inside = (u32::from(first) & !(u32::MAX.checked_shr(u32::from(scope)).unwrap_or(0)))
            | (rng.next_u64() as u32 & u32::MAX.checked_shr(u32::from(scope)).unwrap_or(0));
        assert_eq!(
            table.lookup(IpAddr::V4(inside.into())).0,
            order,
            "{client:?} scope {scope}: {inside:#x}"
        );
    }
}

/// Issue 18: a source block that the database splits gets the scope of the
/// part its first address is in, longer than the source prefix.
#[test]
fn mixed_source_blocks_get_a_scope_longer_than_the_source() {
    let mut h = Health::default();
    let country = |code: &str| MmdbValue::map([("country_code", MmdbValue::string(code))]);
    let entries: Vec<(IpNet, MmdbValue)> = vec![
        ("198.51.100.0/24".parse().unwrap(), country("GB")),
        ("198.51.100.128/25".parse().unwrap(), country("US")),
        ("10.0.0.0/8".parse().unwrap(), country("GB")),
        ("10.5.0.0/16".parse().unwrap(), country("US")),
        ("203.0.113.0/24".parse().unwrap(), country("GB")),
    ];
    let bytes = write_mmdb("city ipv4", &entries).unwrap();
    let table = LocationTable::from_bytes(bytes, Path::new("t.mmdb"), &FieldPaths::flat()).unwrap();
    let route = RouteRules {
        policy: PolicyKind::Geo,
        geo: Some(GeoRules {
            country: HashMap::from([("GB".to_string(), vec![0]), ("US".to_string(), vec![1])]),
            ..GeoRules::default()
        }),
        latency: Vec::new(),
        pools: three_pools(&mut h),
    };
    let s = compiled(route, &table, None);
    let cases = [
        // (source block, pool, scope)
        ("198.51.100.0", 24, "eu", 25),
        ("198.51.100.128", 25, "us", 25),
        ("198.51.100.0", 26, "eu", 25),
        // 10.0.0.0/8 minus 10.5.0.0/16: 10.0.0.0 lies in the uniform /14.
        ("10.0.0.0", 8, "eu", 14),
        ("10.5.0.0", 16, "us", 16),
        // A uniform source block keeps a scope no longer than the source.
        ("203.0.113.0", 24, "eu", 24),
    ];
    for (address, prefix, pool_name, scope) in cases {
        let (keys, got) = answer(
            &s,
            &h,
            ClientAddress::subnet(ip(address), prefix),
            Family::V4,
        );
        assert!(
            keys[0].starts_with(&format!("{pool_name}/")),
            "{address}/{prefix}: {keys:?}"
        );
        assert_eq!(got, scope, "{address}/{prefix}");
    }
}

#[test]
fn failover_skips_pool_without_healthy_endpoint_and_comes_back() {
    let mut h = Health::default();
    let fixture = service(
        PolicyKind::Geo,
        three_pools(&mut h),
        Some(geo_rules()),
        SelectionKind::Weighted,
    );
    let s = &fixture.service;
    let gb = ClientAddress::subnet(ip("81.2.69.0"), 24);
    for e in &s.pools[0].endpoints {
        h.set_up(e, false);
    }
    assert_eq!(answer(s, &h, gb, Family::V4).0, vec!["us/198.51.100.10"]);
    // One endpoint back is enough for min_healthy = 1, and only it is answered.
    h.set_up(&s.pools[0].endpoints[1], true);
    for seed in 0..50 {
        let selection = select(s, &h.view(), gb, Family::V4, seed, None);
        let keys: Vec<&str> = selection.endpoints().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, vec!["eu/192.0.2.11"]);
    }
}

#[test]
fn backup_pools_only_when_all_primaries_are_down() {
    let mut h = Health::default();
    let mut pools = three_pools(&mut h);
    let backup = Arc::new(Pool {
        backup: true,
        ..Arc::try_unwrap(pool(&mut h, "dr", &[("192.0.2.99", 1)], None)).unwrap()
    });
    pools.push(backup);
    let rules = GeoRules {
        default: Some(vec![3, 0, 1]),
        ..GeoRules::default()
    };
    let fixture = service(PolicyKind::Geo, pools, Some(rules), SelectionKind::Weighted);
    let s = &fixture.service;
    let client = ClientAddress::full(ip("192.0.2.1"));
    assert!(
        answer(s, &h, client, Family::V4).0[0].starts_with("eu/"),
        "backup listed first must still wait"
    );
    for e in s.pools[0].endpoints.iter().chain(&s.pools[1].endpoints) {
        h.force_down(e);
    }
    assert_eq!(answer(s, &h, client, Family::V4).0, vec!["dr/192.0.2.99"]);
}

#[test]
fn all_down_fail_open_nodata_and_servfail() {
    let mut h = Health::default();
    let mut fixture = service(
        PolicyKind::Failover,
        three_pools(&mut h),
        None,
        SelectionKind::Weighted,
    );
    for pool in &fixture.service.pools {
        for e in &pool.endpoints {
            h.set_up(e, false);
        }
    }
    let client = ClientAddress::full(ip("192.0.2.1"));
    let selection = select(&fixture.service, &h.view(), client, Family::V4, 3, None);
    assert!(selection.failed_open);
    assert_eq!(selection.pool.map(|p| p.name.as_str()), Some("eu"));
    assert_eq!(
        selection.scope_prefix_len, 0,
        "failover does not depend on the client"
    );
    fixture.service.all_down = AllDown::Nodata;
    let selection = select(&fixture.service, &h.view(), client, Family::V4, 3, None);
    assert_eq!((selection.count, selection.servfail), (0, false));
    fixture.service.all_down = AllDown::Servfail;
    assert!(select(&fixture.service, &h.view(), client, Family::V4, 3, None).servfail);
}

/// Issue 18: fail-open answers endpoints the probes call down, never the
/// ones an operator took out (`down = true`, force-down, drain).
#[test]
fn fail_open_never_answers_operator_disabled_endpoints() {
    let mut h = Health::default();
    let mut pools = three_pools(&mut h);
    // eu: one endpoint down in config, one forced down by the operator.
    let mut eu = Arc::try_unwrap(pool(
        &mut h,
        "eu",
        &[("192.0.2.10", 1), ("192.0.2.11", 1)],
        None,
    ))
    .unwrap();
    eu.endpoints[0].config_down = true;
    h.force_down(&eu.endpoints[1]);
    pools[0] = Arc::new(eu);
    let mut fixture = service(PolicyKind::Failover, pools, None, SelectionKind::Multivalue);
    fixture.service.max_records = 4;
    // Every other endpoint is down by its probes.
    for pool in &fixture.service.pools[1..] {
        for e in &pool.endpoints {
            h.set_up(e, false);
        }
    }
    let client = ClientAddress::full(ip("192.0.2.1"));
    let mut lines = Vec::new();
    let selection = select(
        &fixture.service,
        &h.view(),
        client,
        Family::V4,
        3,
        Some(&mut lines),
    );
    let keys: Vec<&str> = selection.endpoints().map(|e| e.key.as_str()).collect();
    assert!(selection.failed_open);
    assert_eq!(keys, vec!["us/198.51.100.10"], "{lines:?}");
    // Now the probed-down ones are taken out by the operator too: nothing
    // is left that fail-open may answer, so no data, and the trace says why.
    for pool in &fixture.service.pools[1..] {
        for e in &pool.endpoints {
            h.set_override(e, Override::Drain);
        }
    }
    for selection_kind in [SelectionKind::Weighted, SelectionKind::Multivalue] {
        fixture.service.selection = selection_kind;
        let mut lines = Vec::new();
        let selection = select(
            &fixture.service,
            &h.view(),
            client,
            Family::V4,
            3,
            Some(&mut lines),
        );
        assert_eq!(
            (selection.count, selection.servfail),
            (0, false),
            "{lines:?}"
        );
        assert!(
            lines.iter().any(|l| l.contains("down by the operator")),
            "{lines:?}"
        );
        // The memoised path (no trace) agrees.
        let selection = select(&fixture.service, &h.view(), client, Family::V4, 3, None);
        assert_eq!(selection.count, 0);
    }
}

#[test]
fn pools_without_the_family_are_skipped() {
    let mut h = Health::default();
    let fixture = service(
        PolicyKind::Failover,
        three_pools(&mut h),
        None,
        SelectionKind::Weighted,
    );
    let (keys, _) = answer(
        &fixture.service,
        &h,
        ClientAddress::full(ip("192.0.2.1")),
        Family::V6,
    );
    assert_eq!(keys, vec!["ap/2001:db8:f::10"]);
}

#[test]
fn min_healthy_fraction_marks_pool_down() {
    let mut h = Health::default();
    let mut pools = three_pools(&mut h);
    pools[0] = Arc::new(Pool {
        min_healthy: MinHealthy::Fraction(0.75),
        ..Arc::try_unwrap(pool(
            &mut h,
            "eu",
            &[
                ("192.0.2.10", 1),
                ("192.0.2.11", 1),
                ("192.0.2.12", 1),
                ("192.0.2.13", 1),
            ],
            None,
        ))
        .unwrap()
    });
    let fixture = service(PolicyKind::Failover, pools, None, SelectionKind::Weighted);
    let client = ClientAddress::full(ip("192.0.2.1"));
    h.set_up(&fixture.service.pools[0].endpoints[0], false);
    assert!(
        answer(&fixture.service, &h, client, Family::V4).0[0].starts_with("eu/"),
        "3 of 4 is enough"
    );
    h.set_up(&fixture.service.pools[0].endpoints[1], false);
    assert!(
        answer(&fixture.service, &h, client, Family::V4).0[0].starts_with("us/"),
        "2 of 4 is not"
    );
}

#[test]
fn weighted_choice_follows_weights() {
    let mut h = Health::default();
    // Seeded: deterministic. 3:1 weights over 40,000 draws; the expected
    // share of the heavy endpoint is 0.75, tolerance ±0.01 (≈ 7 sigma).
    let pools = vec![pool(
        &mut h,
        "eu",
        &[("192.0.2.10", 3), ("192.0.2.11", 1)],
        None,
    )];
    let fixture = service(PolicyKind::Failover, pools, None, SelectionKind::Weighted);
    let client = ClientAddress::full(ip("192.0.2.1"));
    let mut rng = SplitMix64(42);
    let draws = 40_000;
    let heavy = (0..draws)
        .filter(|_| {
            select(
                &fixture.service,
                &h.view(),
                client,
                Family::V4,
                rng.next_u64(),
                None,
            )
            .chosen[0]
                == 0
        })
        .count();
    let share = heavy as f64 / f64::from(draws);
    assert!((share - 0.75).abs() < 0.01, "share {share}");
}

#[test]
fn weight_zero_is_never_chosen_while_others_are_up() {
    let mut h = Health::default();
    let pools = vec![pool(
        &mut h,
        "eu",
        &[("192.0.2.10", 0), ("192.0.2.11", 1)],
        None,
    )];
    let fixture = service(PolicyKind::Failover, pools, None, SelectionKind::Weighted);
    let client = ClientAddress::full(ip("192.0.2.1"));
    for seed in 0..1000 {
        assert_eq!(
            select(&fixture.service, &h.view(), client, Family::V4, seed, None).chosen[0],
            1
        );
    }
}

#[test]
fn sticky_removing_an_endpoint_moves_only_its_clients() {
    let mut h = Health::default();
    let addresses = [
        ("192.0.2.1", 1),
        ("192.0.2.2", 1),
        ("192.0.2.3", 2),
        ("192.0.2.4", 1),
    ];
    let fixture = service(
        PolicyKind::Failover,
        vec![pool(&mut h, "eu", &addresses, None)],
        None,
        SelectionKind::Sticky,
    );
    let s = &fixture.service;
    let clients: Vec<ClientAddress> = (0..2000u32)
        .map(|i| ClientAddress::subnet(IpAddr::V4((0x0a00_0000 + (i << 8)).into()), 24))
        .collect();
    let before: Vec<u16> = clients
        .iter()
        .map(|&c| select(s, &h.view(), c, Family::V4, 1, None).chosen[0])
        .collect();
    // Stable whatever the seed.
    let again: Vec<u16> = clients
        .iter()
        .map(|&c| select(s, &h.view(), c, Family::V4, 99, None).chosen[0])
        .collect();
    assert_eq!(before, again);
    h.set_up(&s.pools[0].endpoints[1], false);
    let after: Vec<u16> = clients
        .iter()
        .map(|&c| select(s, &h.view(), c, Family::V4, 1, None).chosen[0])
        .collect();
    let mut moved = 0;
    for (b, a) in before.iter().zip(&after) {
        if *b != 1 {
            assert_eq!(b, a, "a client of another endpoint moved");
        } else {
            moved += 1;
            assert_ne!(*a, 1);
        }
    }
    // Weight 2 of 5 total gets about 40% of clients; weight 1 about 20%.
    let heavy = before.iter().filter(|&&i| i == 2).count() as f64 / 2000.0;
    assert!((heavy - 0.4).abs() < 0.05, "heavy share {heavy}");
    assert!(moved > 300, "{moved}");
}

#[test]
fn sticky_scope_covers_the_hashed_prefix() {
    let mut h = Health::default();
    let fixture = service(
        PolicyKind::Failover,
        three_pools(&mut h),
        None,
        SelectionKind::Sticky,
    );
    let selection = select(
        &fixture.service,
        &h.view(),
        ClientAddress::subnet(ip("10.0.0.0"), 24),
        Family::V4,
        0,
        None,
    );
    assert_eq!(selection.scope_prefix_len, 24);
}

#[test]
fn multivalue_returns_up_to_n_healthy() {
    let mut h = Health::default();
    let addresses = [("192.0.2.1", 1), ("192.0.2.2", 1), ("192.0.2.3", 1)];
    let mut fixture = service(
        PolicyKind::Failover,
        vec![pool(&mut h, "eu", &addresses, None)],
        None,
        SelectionKind::Multivalue,
    );
    fixture.service.max_records = 8;
    h.set_up(&fixture.service.pools[0].endpoints[0], false);
    let selection = select(
        &fixture.service,
        &h.view(),
        ClientAddress::full(ip("192.0.2.9")),
        Family::V4,
        5,
        None,
    );
    let mut keys: Vec<&str> = selection.endpoints().map(|e| e.key.as_str()).collect();
    keys.sort();
    assert_eq!(keys, vec!["eu/192.0.2.2", "eu/192.0.2.3"]);
}

#[test]
fn nearest_orders_by_distance_and_bias() {
    let mut h = Health::default();
    let fixture = service(
        PolicyKind::Nearest,
        three_pools(&mut h),
        Some(GeoRules {
            default: Some(vec![1]),
            ..GeoRules::default()
        }),
        SelectionKind::Weighted,
    );
    let s = &fixture.service;
    let (keys, scope) = answer(
        s,
        &h,
        ClientAddress::subnet(ip("81.2.69.0"), 24),
        Family::V4,
    );
    assert!(keys[0].starts_with("eu/"), "{keys:?}");
    assert_eq!(scope, 24);
    let (keys, _) = answer(
        s,
        &h,
        ClientAddress::subnet(ip("2001:218::"), 48),
        Family::V6,
    );
    assert_eq!(keys, vec!["ap/2001:db8:f::10"]);
    // No coordinates: the geo default.
    let (keys, _) = answer(
        s,
        &h,
        ClientAddress::subnet(ip("192.0.2.0"), 24),
        Family::V4,
    );
    assert!(keys[0].starts_with("us/"));
    // Seattle is nearer to Virginia than to Frankfurt; a strong eu bias flips it.
    let mut pools = three_pools(&mut h);
    pools[0] = Arc::new(Pool {
        bias: 80,
        ..Arc::try_unwrap(pool(
            &mut h,
            "eu",
            &[("192.0.2.10", 1)],
            Some((50.11, 8.68)),
        ))
        .unwrap()
    });
    let biased = service(PolicyKind::Nearest, pools, None, SelectionKind::Weighted);
    let seattle = ClientAddress::subnet(ip("216.160.83.0"), 24);
    assert!(answer(&fixture.service, &h, seattle, Family::V4).0[0].starts_with("us/"));
    assert!(answer(&biased.service, &h, seattle, Family::V4).0[0].starts_with("eu/"));
}

#[test]
fn latency_rows_override_the_fallback() {
    let mut h = Health::default();
    let pools = three_pools(&mut h);
    let route = RouteRules {
        policy: PolicyKind::Latency,
        geo: Some(geo_rules()),
        latency: vec![("81.2.69.128/25".parse().unwrap(), vec![2, 0, 1])],
        pools,
    };
    let table = locations();
    let s = compiled(route, &table, None);
    let (keys, scope) = answer(&s, &h, ClientAddress::full(ip("81.2.69.200")), Family::V4);
    assert!(keys[0].starts_with("ap/"), "{keys:?}");
    assert_eq!(scope, 25);
    let (keys, scope) = answer(&s, &h, ClientAddress::full(ip("81.2.69.10")), Family::V4);
    assert!(keys[0].starts_with("eu/"), "{keys:?}");
    assert_eq!(scope, 25);
    assert!(
        s.route
            .describe(ip("81.2.69.200"), Some(&table), None)
            .contains("latency table row 81.2.69.128/25")
    );
}

#[test]
fn trace_explains_each_step() {
    let mut h = Health::default();
    let fixture = service(
        PolicyKind::Geo,
        three_pools(&mut h),
        Some(geo_rules()),
        SelectionKind::Weighted,
    );
    let mut lines = Vec::new();
    select(
        &fixture.service,
        &h.view(),
        ClientAddress::subnet(ip("81.2.69.0"), 24),
        Family::V4,
        1,
        Some(&mut lines),
    );
    let text = lines.join("\n");
    assert!(text.contains("order: eu, us"), "{text}");
    assert!(text.contains("pool eu: 2/2 healthy"), "{text}");
}

#[test]
fn asn_rules_override_location_rules_but_not_nets() {
    let mut h = Health::default();
    let entries: Vec<(IpNet, MmdbValue)> = vec![(
        "81.2.0.0/16".parse().unwrap(),
        MmdbValue::map([
            ("autonomous_system_number", MmdbValue::U32(64500)),
            (
                "autonomous_system_organization",
                MmdbValue::string("Example Transit"),
            ),
        ]),
    )];
    let bytes = write_mmdb("GeoLite2-ASN", &entries).unwrap();
    let asn = LocationTable::from_bytes(bytes, Path::new("asn.mmdb"), &FieldPaths::asn()).unwrap();
    let table = locations();
    let mut rules = geo_rules();
    rules.asn.insert(64500, vec![2]);
    rules
        .nets
        .push(("81.2.69.128/25".parse().unwrap(), vec![1]));
    let pools = three_pools(&mut h);
    let route = RouteRules {
        policy: PolicyKind::Geo,
        geo: Some(rules),
        latency: Vec::new(),
        pools: pools.clone(),
    };
    let s = compiled(route, &table, Some(&asn));
    // GB by country, but AS64500 is more specific.
    assert!(
        answer(&s, &h, ClientAddress::full(ip("81.2.69.10")), Family::V4).0[0].starts_with("ap/")
    );
    // The operator net beats the ASN.
    assert!(
        answer(&s, &h, ClientAddress::full(ip("81.2.69.200")), Family::V4).0[0].starts_with("us/")
    );
    // Outside the AS: location rules again.
    assert!(
        answer(&s, &h, ClientAddress::full(ip("12.1.1.1")), Family::V4).0[0].starts_with("us/")
    );
    assert!(
        s.route
            .describe(ip("81.2.69.10"), Some(&table), Some(&asn))
            .contains("asn 64500")
    );
}

#[test]
fn fastest_takes_the_preferred_then_lowest_rtt() {
    let mut h = Health::default();
    let addresses = [("192.0.2.1", 1), ("192.0.2.2", 1), ("192.0.2.3", 1)];
    let mut fixture = service(
        PolicyKind::Failover,
        vec![pool(&mut h, "eu", &addresses, None)],
        None,
        SelectionKind::Fastest,
    );
    fixture.service.max_records = 2;
    let pool = &fixture.service.pools[0];
    h.state(&pool.endpoints[0]).rtt_us = 9_000;
    h.state(&pool.endpoints[1]).rtt_us = 3_000;
    h.state(&pool.endpoints[2]).rtt_us = 5_000;
    let client = ClientAddress::full(ip("192.0.2.9"));
    let chosen = |s: &Service, h: &Health| {
        select(s, &h.view(), client, Family::V4, 1, None).chosen[..2].to_vec()
    };
    assert_eq!(chosen(&fixture.service, &h), vec![1, 2]);
    // The control plane's hysteresis keeps endpoint 2 preferred: it comes first.
    h.state(&pool.endpoints[2]).preferred = true;
    assert_eq!(chosen(&fixture.service, &h), vec![2, 1]);
    // A preferred endpoint that went down is skipped.
    h.set_up(&pool.endpoints[2], false);
    assert_eq!(chosen(&fixture.service, &h), vec![1, 0]);
}

#[test]
fn failover_ttl_applies_only_when_failing_over() {
    let mut h = Health::default();
    let mut fixture = service(
        PolicyKind::Failover,
        three_pools(&mut h),
        None,
        SelectionKind::Weighted,
    );
    fixture.service.failover_ttl = Some(5);
    let client = ClientAddress::full(ip("192.0.2.9"));
    let first = select(&fixture.service, &h.view(), client, Family::V4, 1, None);
    assert_eq!((first.ttl, first.failed_over), (30, false));
    for e in &fixture.service.pools[0].endpoints {
        h.set_up(e, false);
    }
    let over = select(&fixture.service, &h.view(), client, Family::V4, 1, None);
    assert_eq!((over.ttl, over.failed_over), (5, true));
    assert_eq!(over.pool.map(|p| p.name.as_str()), Some("us"));
}

#[test]
fn a_pool_down_to_one_healthy_endpoint_answers_it_whatever_the_selection() {
    let mut h = Health::default();
    // 70 endpoints: past the 64 the census's mask covers.
    let many: Vec<(String, u32)> = (0..70).map(|i| (format!("192.0.2.{i}"), 1)).collect();
    let many: Vec<(&str, u32)> = many.iter().map(|(a, w)| (a.as_str(), *w)).collect();
    for survivor in [0, 2, 65] {
        for selection in [
            SelectionKind::Weighted,
            SelectionKind::Sticky,
            SelectionKind::Multivalue,
            SelectionKind::Fastest,
        ] {
            let pools = vec![
                pool(&mut h, "first", &[("198.51.100.1", 1)], None),
                pool(&mut h, "second", &many, None),
            ];
            let mut fixture = service(PolicyKind::Failover, pools, None, selection);
            fixture.service.max_records = 4;
            fixture.service.failover_ttl = Some(5);
            h.set_up(&fixture.service.pools[0].endpoints[0], false);
            for (i, e) in fixture.service.pools[1].endpoints.iter().enumerate() {
                h.set_up(e, i == survivor);
            }
            let client = ClientAddress::full(ip("203.0.113.9"));
            // Twice without a trace (computed, then memoised), then with one
            // (never memoised): the same answer each time.
            let mut lines = Vec::new();
            for trace in [None, None, Some(&mut lines)] {
                let chosen = select(&fixture.service, &h.view(), client, Family::V4, 3, trace);
                let keys: Vec<&str> = chosen.endpoints().map(|e| e.key.as_str()).collect();
                let label = format!("{selection:?}, survivor {survivor}");
                assert_eq!(keys, [format!("second/192.0.2.{survivor}")], "{label}");
                assert_eq!(chosen.pool_index, 1, "{label}");
                assert!(chosen.failed_over && !chosen.failed_open, "{label}");
                assert_eq!(chosen.ttl, 5, "{label}");
            }
        }
    }
}

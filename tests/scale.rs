//! Correctness at scale (issue #6): 100,000 static records and 10,000
//! services over 1,000 pools, with a generated GeoIP database of 200,000
//! networks, served by the real binary and queried with dig. Checks answers,
//! never timing (benches/scale.sh measures that).

mod common;

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::Duration;

use common::{GslbServer, TempDir, dig};

const RECORDS: usize = 100_000;
const SERVICES: usize = 10_000;
const POOLS: usize = 1_000;
const CLUSTERS: usize = POOLS / 4;
const NETWORKS: u32 = 200_000;
/// Generous: a debug build loads this much more slowly.
const START_DEADLINE: Duration = Duration::from_secs(180);

/// Countries of the generated database: code, continent, subdivision,
/// coordinates. Canada and Washington State are overridden by the maps.
const PLACES: [(&str, &str, &str, f64, f64); 9] = [
    ("GB", "EU", "ENG", 50.1, 8.7),
    ("DE", "EU", "BE", 50.1, 8.7),
    ("US", "NA", "NY", 39.0, -77.5),
    ("US", "NA", "WA", 39.0, -77.5),
    ("CA", "NA", "ON", 39.0, -77.5),
    ("JP", "AS", "13", 35.7, 139.7),
    ("SG", "AS", "01", 35.7, 139.7),
    ("BR", "SA", "SP", -23.5, -46.6),
    ("AU", "OC", "NSW", 35.7, 139.7),
];

/// Pool roles inside a cluster of four, with the coordinates of each.
const ROLES: [(&str, f64, f64); 4] = [
    ("eu", 50.1, 8.7),
    ("na", 39.0, -77.5),
    ("ap", 35.7, 139.7),
    ("sa", -23.5, -46.6),
];
const EU: usize = 0;
const NA: usize = 1;
const AP: usize = 2;
const SA: usize = 3;

/// The place of generated network `k` (`1.0.0.0/24` + k): neighbours differ.
fn place_of(k: u32) -> usize {
    (k.wrapping_mul(2_654_435_761) >> 7) as usize % PLACES.len()
}

fn network(k: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(1, 0, 0, 0)) + (k << 8))
}

fn geoip_csv() -> String {
    let mut csv = String::from("network,country,continent,subdivision,latitude,longitude\n");
    for k in 0..NETWORKS {
        let (country, continent, subdivision, lat, lon) = PLACES[place_of(k)];
        writeln!(
            csv,
            "{}/24,{country},{continent},{subdivision},{lat},{lon}",
            network(k)
        )
        .unwrap();
    }
    csv
}

/// Static record `i`: (name, type, rdata as dig prints it).
fn record(i: usize) -> (String, &'static str, String) {
    let name = format!("h{i}.g{}.scale.test.", i % 500);
    match i % 100 {
        0..40 => (name, "A", format!("198.18.{}.{}", (i >> 8) & 255, i & 255)),
        40..60 => (
            name,
            "AAAA",
            format!("2001:db8:{:x}:{:x}::1", (i >> 16) & 0xffff, i & 0xffff),
        ),
        60..75 => (name, "TXT", format!("\"record {i} v=scale1\"")),
        75..85 => (name, "MX", format!("10 mx{}.scale.test.", i % 50)),
        _ => {
            let target = i - i % 100 + i % 40;
            (
                name,
                "CNAME",
                format!("h{target}.g{}.scale.test.", target % 500),
            )
        }
    }
}

fn zone() -> String {
    let mut zone = String::from(
        "$ORIGIN scale.test.\n$TTL 3600\n\
         @ SOA ns1 hostmaster 1 7200 900 1209600 300\n@ NS ns1\nns1 A 192.0.2.53\n",
    );
    for i in 0..RECORDS {
        let (name, kind, rdata) = record(i);
        writeln!(zone, "{name} {kind} {rdata}").unwrap();
    }
    zone
}

fn pool_name(pool: usize) -> String {
    format!("p{pool:04}")
}

/// IPv4 address of endpoint `j` of `pool` (2 to 4 endpoints per pool).
fn endpoint(pool: usize, j: usize) -> Ipv4Addr {
    Ipv4Addr::new(100, 64 + (pool >> 8) as u8, (pool & 255) as u8, j as u8 + 1)
}

/// The pool an answer address belongs to.
fn pool_of_answer(address: Ipv4Addr) -> usize {
    let [_, b, c, _] = address.octets();
    usize::from(b - 64) << 8 | usize::from(c)
}

fn cluster_pool(cluster: usize, role: usize) -> usize {
    cluster * 4 + role
}

/// Odd clusters differ from even ones in what compiles into a region
/// table (their map sends Europe to `na`, their `eu` and `na` pools swap
/// coordinates), so sharing tables between unequal routings would show.
fn is_odd(cluster: usize) -> bool {
    cluster % 2 == 1
}

/// Coordinates of `pool`: its role's, with `eu` and `na` swapped in odd clusters.
fn pool_coordinates(pool: usize) -> (f64, f64) {
    let role = match (is_odd(pool / 4), pool % 4) {
        (true, EU) => NA,
        (true, NA) => EU,
        (_, role) => role,
    };
    (ROLES[role].1, ROLES[role].2)
}

/// What a service is, and so which pool must answer a client.
#[derive(Clone, Copy, Debug)]
enum Kind {
    /// `map = cNNN`.
    GeoMap(usize),
    /// Inline map: EU to `.0`, everyone else to `.1`.
    GeoInline(usize, usize),
    /// Nearest over a cluster's pools (no map: in pool order without coordinates).
    Nearest(usize),
    /// Failover over the cluster's eu then na pools.
    Failover(usize),
}

fn service_kind(i: usize) -> Kind {
    let cluster = i % CLUSTERS;
    match i % 10 {
        0..=4 => Kind::GeoMap(cluster),
        5 | 6 => Kind::GeoInline((i * 7) % POOLS, (i * 13 + 1) % POOLS),
        7 | 8 => Kind::Nearest(cluster),
        _ => Kind::Failover(cluster),
    }
}

fn config(dir: &Path) -> String {
    let mut toml = format!(
        "[server]\napi = \"127.0.0.1:0\"\n\n[[zone]]\norigin = \"scale.test\"\nfile = \"{}\"\n\n\
         [geoip]\ndatabase = \"{}\"\n\n",
        dir.join("scale.test.zone").display(),
        dir.join("city.mmdb").display()
    );
    for pool in 0..POOLS {
        let (lat, lon) = pool_coordinates(pool);
        let endpoints: Vec<String> = (0..2 + pool % 3)
            .map(|j| {
                format!(
                    "{{ address = \"{}\", weight = {} }}",
                    endpoint(pool, j),
                    1 + j
                )
            })
            .collect();
        writeln!(
            toml,
            "[pools.{}]\ncoordinates = [{lat}, {lon}]\nendpoints = [{}]\n",
            pool_name(pool),
            endpoints.join(", ")
        )
        .unwrap();
    }
    for cluster in 0..CLUSTERS {
        let [eu, na, ap, sa] = [EU, NA, AP, SA].map(|role| pool_name(cluster_pool(cluster, role)));
        let (europe, then) = if is_odd(cluster) {
            (&na, &eu)
        } else {
            (&eu, &na)
        };
        writeln!(
            toml,
            "[maps.c{cluster:03}]\n\
             continent = {{ EU = [\"{europe}\", \"{then}\"], AF = [\"{eu}\", \"{na}\"], NA = [\"{na}\", \"{eu}\"], \
             SA = [\"{sa}\", \"{na}\"], AS = [\"{ap}\", \"{na}\"], OC = [\"{ap}\", \"{na}\"] }}\n\
             country = {{ CA = [\"{eu}\", \"{na}\"] }}\n\
             subdivision = {{ \"US-WA\" = [\"{ap}\", \"{na}\"] }}\n\
             default = [\"{na}\"]\n"
        )
        .unwrap();
    }
    for i in 0..SERVICES {
        writeln!(toml, "[services.\"s{i}.svc.scale.test\"]").unwrap();
        match service_kind(i) {
            Kind::GeoMap(cluster) => {
                writeln!(toml, "policy = \"geo\"\nmap = \"c{cluster:03}\"\n").unwrap();
            }
            Kind::GeoInline(a, b) => writeln!(
                toml,
                "policy = \"geo\"\npools = [\"{}\", \"{}\"]\n\
                 geo = {{ continent = {{ EU = [\"{0}\"] }}, default = [\"{1}\"] }}\n",
                pool_name(a),
                pool_name(b)
            )
            .unwrap(),
            // Pools in role order and no map, so only odd clusters'
            // swapped coordinates tell their tables from even ones'.
            Kind::Nearest(cluster) => writeln!(
                toml,
                "policy = \"nearest\"\npools = [{}]\n",
                (0..4)
                    .map(|role| format!("\"{}\"", pool_name(cluster_pool(cluster, role))))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
            .unwrap(),
            Kind::Failover(cluster) => writeln!(
                toml,
                "policy = \"failover\"\npools = [\"{}\", \"{}\"]\n",
                pool_name(cluster_pool(cluster, EU)),
                pool_name(cluster_pool(cluster, NA))
            )
            .unwrap(),
        }
    }
    toml
}

/// The pool that must answer service `i` for a client in network `k`
/// (`None`: a client outside the database).
fn expected_pool(i: usize, k: Option<u32>) -> usize {
    let place = k.map(|k| PLACES[place_of(k)]);
    match service_kind(i) {
        Kind::GeoMap(cluster) => {
            let role = match place {
                None => NA,
                Some(("CA", ..)) => EU,
                Some(("US", _, "WA", ..)) => AP,
                Some((_, "EU", ..)) if is_odd(cluster) => NA,
                Some((_, "EU" | "AF", ..)) => EU,
                Some((_, "NA", ..)) => NA,
                Some((_, "SA", ..)) => SA,
                Some((_, "AS" | "OC", ..)) => AP,
                Some(_) => NA,
            };
            cluster_pool(cluster, role)
        }
        Kind::GeoInline(a, b) => match place {
            Some((_, "EU", ..)) => a,
            _ => b,
        },
        Kind::Nearest(cluster) => match place {
            // Every place sits on one pool's coordinates: that pool.
            Some((.., lat, lon)) => (0..4)
                .map(|role| cluster_pool(cluster, role))
                .find(|&pool| pool_coordinates(pool) == (lat, lon))
                .expect("places sit on pools"),
            // No coordinates: the pools in configured order.
            None => cluster_pool(cluster, EU),
        },
        Kind::Failover(cluster) => cluster_pool(cluster, EU),
    }
}

/// A small deterministic sequence (xorshift) for sampling.
struct Sample(u64);

impl Sample {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

#[test]
fn issue_6_hundred_thousand_records_and_ten_thousand_services_answer_correctly() {
    let dir = TempDir::new("scale");
    dir.write("scale.test.zone", &zone());
    let mmdb = gslb::geo::build_demo_mmdb(&geoip_csv()).expect("build the generated mmdb");
    std::fs::write(dir.path().join("city.mmdb"), mmdb).expect("write mmdb");
    let config = dir.write("scale.toml", &config(dir.path()));
    let config = config.to_str().expect("utf-8 temp path");
    let server = GslbServer::start_within(&["-c", config], START_DEADLINE);
    let addr = server.addr();
    let mut sample = Sample(0x9E37_79B9_7F4A_7C15);

    // Static records: the first, the last, and a sample of every kind.
    let mut picks = vec![0, 40, 60, 75, 85, RECORDS - 1];
    picks.extend((0..60).map(|_| sample.below(RECORDS)));
    for i in picks {
        let (name, kind, rdata) = record(i);
        let reply = dig(addr, &[&name, kind]);
        assert_eq!(reply.status, "NOERROR", "{name} {kind}:\n{}", reply.raw);
        let want = format!("{name} 3600 IN {kind} {rdata}");
        assert_eq!(
            reply.answer.first(),
            Some(&want),
            "{name} {kind}:\n{}",
            reply.raw
        );
        if kind == "CNAME" {
            // The target is in the zone and chased in the same answer.
            assert_eq!(reply.answer.len(), 1, "asked for the CNAME itself");
            let chased = dig(addr, &[&name, "A"]);
            assert_eq!(chased.answer.len(), 2, "{}", chased.raw);
        }
    }
    let missing = dig(addr, &["h100000.g0.scale.test", "A"]);
    assert_eq!(missing.status, "NXDOMAIN", "{}", missing.raw);

    // Services: every kind, clients spread over the generated database
    // (through ECS) and one outside it.
    let mut checked = 0;
    for round in 0..120 {
        let i = match round {
            0..10 => round,
            10 => SERVICES - 1,
            _ => sample.below(SERVICES),
        };
        let k = (round % 12 != 0).then(|| sample.below(NETWORKS as usize) as u32);
        let client = match k {
            Some(k) => IpAddr::V4(network(k)),
            None => IpAddr::V4(Ipv4Addr::new(198, 18, 0, 0)),
        };
        let name = format!("s{i}.svc.scale.test");
        let subnet = format!("+subnet={client}/24");
        let reply = dig(addr, &[&name, "A", &subnet]);
        assert_eq!(reply.status, "NOERROR", "{name} {subnet}:\n{}", reply.raw);
        let address: Ipv4Addr = reply
            .answer
            .first()
            .and_then(|line| line.split(' ').nth(4))
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("{name} {subnet}: no A record:\n{}", reply.raw));
        let want = expected_pool(i, k);
        assert_eq!(
            pool_name(pool_of_answer(address)),
            pool_name(want),
            "{name} ({:?}) for {client} ({:?}) answered {address}:\n{}",
            service_kind(i),
            k.map(|k| PLACES[place_of(k)]),
            reply.raw
        );
        let scope = reply.client_subnet.as_ref().map(|s| s.scope_prefix_len);
        match service_kind(i) {
            Kind::Failover(_) => assert_eq!(scope, Some(0), "{}", reply.raw),
            _ => assert!(scope.is_some_and(|s| s <= 24), "{}", reply.raw),
        }
        checked += 1;
    }
    assert_eq!(checked, 120);
}

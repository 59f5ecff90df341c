//! Geo routing through the real binary and dig: every policy, selection,
//! failover path, ECS scope, the shipped default, explain, config errors and
//! compatibility with MaxMind's and a real-world database.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{GslbServer, TempDir, dig, run_gslb};

/// A GeoIP fixture built by `gslb geoip build` from readable CSV.
const CITY_CSV: &str = "network,country,continent,subdivision,latitude,longitude
81.2.69.0/24,GB,EU,ENG,51.51,-0.09
89.160.20.0/24,SE,EU,,59.33,18.06
216.160.83.0/24,US,NA,WA,47.25,-122.31
12.0.0.0/8,US,NA,NY,40.71,-74.0
175.16.199.0/24,CN,,,43.88,125.32
2001:218::/32,JP,AS,13,35.69,139.69
1.128.0.0/11,AU,OC,NSW,-33.87,151.21
";

const ZONE: &str = "$TTL 300
@ SOA ns1 hostmaster 1 7200 900 1209600 60
@ NS ns1
ns1 A 192.0.2.53
static A 192.0.2.1
";

/// A temp dir holding a zone, the GeoIP fixture and a config around `body`.
struct Setup {
    dir: TempDir,
    config: PathBuf,
}

fn setup(label: &str, body: &str) -> Setup {
    let dir = TempDir::new(label);
    dir.write("geo.test.zone", ZONE);
    let csv = dir.write("city.csv", CITY_CSV);
    let mmdb = dir.path().join("city.mmdb");
    let built = run_gslb(&["geoip", "build", path_str(&csv), path_str(&mmdb)]);
    assert_eq!(built.code(), Some(0), "geoip build: {}", built.stderr);
    let config = dir.write(
        "gslb.toml",
        &format!(
            "[[zone]]\norigin = \"geo.test\"\nfile = \"geo.test.zone\"\n\n[geoip]\ndatabase = \"city.mmdb\"\n\n\
             [pools.eu]\ncoordinates = [50.11, 8.68]\nendpoints = [{{ address = \"192.0.2.10\" }}, {{ address = \"2001:db8:e::10\" }}]\n\
             [pools.us]\ncoordinates = [39.04, -77.49]\nendpoints = [{{ address = \"198.51.100.10\" }}]\n\
             [pools.ap]\ncoordinates = [35.68, 139.69]\nendpoints = [{{ address = \"203.0.113.10\" }}, {{ address = \"2001:db8:f::10\" }}]\n\n{body}"
        ),
    );
    Setup { dir, config }
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

fn serve(setup: &Setup) -> GslbServer {
    GslbServer::start(&["-c", path_str(&setup.config)])
}

/// The addresses answered (A/AAAA/CNAME rdata, sorted).
fn answers(server: &GslbServer, args: &[&str]) -> Vec<String> {
    let result = dig(server.addr(), args);
    assert_eq!(result.status, "NOERROR", "{}", result.raw);
    result.sorted_rdata()
}

const GEO_SERVICE: &str = r#"
[services."www.geo.test"]
policy = "geo"
ttl = 20
[services."www.geo.test".geo]
nets = { "10.1.0.0/16" = ["ap"] }
subdivision = { "US-WA" = ["ap", "us"] }
country = { SE = ["us", "eu"] }
continent = { EU = ["eu", "us"], NA = ["us", "eu"], AS = ["ap", "us"], OC = ["ap", "us"] }
default = ["us"]
"#;

#[test]
fn geo_policy_most_specific_match_wins() {
    let setup = setup("geo", GEO_SERVICE);
    let server = serve(&setup);
    let cases = [
        ("81.2.69.160/24", "192.0.2.10"),    // continent EU
        ("89.160.20.0/24", "198.51.100.10"), // country SE beats continent EU
        ("216.160.83.0/24", "203.0.113.10"), // subdivision US-WA beats country/continent
        ("12.34.0.0/16", "198.51.100.10"),   // continent NA
        ("10.1.2.0/24", "203.0.113.10"),     // operator net beats everything
        ("175.16.199.0/24", "203.0.113.10"), // no continent in the data: derived from CN → AS
        ("192.0.2.0/24", "198.51.100.10"),   // default
    ];
    for (subnet, expected) in cases {
        let got = answers(&server, &["www.geo.test", &format!("+subnet={subnet}")]);
        assert_eq!(got, vec![expected.to_string()], "client {subnet}");
    }
    let v6 = answers(&server, &["www.geo.test", "AAAA", "+subnet=2001:218::/32"]);
    assert_eq!(v6, vec!["2001:db8:f::10"]);
    // Without ECS the source address (127.0.0.1: default) decides.
    let plain = dig(server.addr(), &["www.geo.test"]);
    assert_eq!(plain.answer, vec!["www.geo.test. 20 IN A 198.51.100.10"]);
    assert!(
        plain.client_subnet.is_none(),
        "no ECS in the query, none in the reply"
    );
}

#[test]
fn ecs_scope_is_honest_and_capped() {
    let setup = setup("scope", GEO_SERVICE);
    let server = serve(&setup);
    let gb = dig(server.addr(), &["www.geo.test", "+subnet=81.2.69.160/24"]);
    let ecs = gb.client_subnet.expect("ECS echoed");
    assert_eq!((ecs.source_prefix_len, ecs.scope_prefix_len), (24, 24));
    assert_eq!(ecs.address.to_string(), "81.2.69.0");
    // A /32 source is used only up to the /24 cap; the scope never exceeds it.
    let long = dig(server.addr(), &["www.geo.test", "+subnet=81.2.69.160/32"]);
    let ecs = long.client_subnet.expect("ECS echoed");
    assert_eq!(ecs.source_prefix_len, 32);
    assert!(
        ecs.scope_prefix_len <= 24 && ecs.scope_prefix_len > 0,
        "{ecs:?}"
    );
    // The operator net 10.1.0.0/16 answers the same for its whole /16.
    let net = dig(server.addr(), &["www.geo.test", "+subnet=10.1.2.0/24"]);
    assert_eq!(net.client_subnet.expect("ECS").scope_prefix_len, 16);
    // A wide source prefix that the map splits (81.2.69.0/24 is GB inside
    // 81.0.0.0/8) is answered for its first address, with the scope of the
    // part that address is in, longer than the source (RFC 7871 §7.2.1;
    // issue 18): 81.0.0.0/15 holds no other data.
    let wide = dig(server.addr(), &["www.geo.test", "+subnet=81.0.0.0/8"]);
    assert_eq!(wide.answer, vec!["www.geo.test. 20 IN A 198.51.100.10"]);
    assert_eq!(wide.client_subnet.expect("ECS").scope_prefix_len, 15);
    // Static names do not depend on the client: scope 0.
    let stat = dig(
        server.addr(),
        &["static.geo.test", "+subnet=81.2.69.160/24"],
    );
    assert_eq!(stat.client_subnet.expect("ECS echoed").scope_prefix_len, 0);
    // Source prefix 0: the resolver opts out; the source address decides, scope 0.
    let zero = dig(server.addr(), &["www.geo.test", "+subnet=0.0.0.0/0"]);
    assert_eq!(zero.answer, vec!["www.geo.test. 20 IN A 198.51.100.10"]);
    assert_eq!(zero.client_subnet.expect("ECS echoed").scope_prefix_len, 0);
}

#[test]
fn nearest_policy_orders_by_distance_with_bias_and_falls_back() {
    let body = r#"
[services."www.geo.test"]
policy = "nearest"
pools = ["eu", "us", "ap"]
[services."www.geo.test".geo]
default = ["eu"]
"#;
    let setup = setup("nearest", body);
    let server = serve(&setup);
    assert_eq!(
        answers(&server, &["www.geo.test", "+subnet=89.160.20.0/24"]),
        vec!["192.0.2.10"]
    );
    assert_eq!(
        answers(&server, &["www.geo.test", "+subnet=216.160.83.0/24"]),
        vec!["198.51.100.10"]
    );
    assert_eq!(
        answers(&server, &["www.geo.test", "+subnet=1.128.0.0/16"]),
        vec!["203.0.113.10"]
    );
    // No coordinates: the geo default.
    assert_eq!(
        answers(&server, &["www.geo.test", "+subnet=192.0.2.0/24"]),
        vec!["192.0.2.10"]
    );

    // A strong bias on eu pulls Seattle (nearer to Virginia) to Frankfurt.
    let biased = std::fs::read_to_string(&setup.config)
        .unwrap()
        .replace("[pools.eu]\n", "[pools.eu]\nbias = 80\n");
    std::fs::write(&setup.config, biased).unwrap();
    let server = serve(&setup);
    assert_eq!(
        answers(&server, &["www.geo.test", "+subnet=216.160.83.0/24"]),
        vec!["192.0.2.10"]
    );
}

#[test]
fn latency_policy_uses_the_table_then_the_map() {
    let body = r#"
[ecs]
max_source_prefix_v4 = 32

[services."www.geo.test"]
policy = "latency"
pools = ["eu", "us", "ap"]
latency_table = "latency.csv"
[services."www.geo.test".geo]
continent = { EU = ["eu", "us"] }
default = ["us"]
"#;
    let setup = setup("latency", body);
    setup.dir.write(
        "latency.csv",
        "prefix,region,ms\n81.2.69.0/25,ap,10\n81.2.69.0/25,eu,30\n216.160.83.0/24,eu,5\n",
    );
    let server = serve(&setup);
    assert_eq!(
        answers(&server, &["www.geo.test", "+subnet=81.2.69.10/32"]),
        vec!["203.0.113.10"]
    );
    // The other half of the /24 has no row: the map (continent EU).
    assert_eq!(
        answers(&server, &["www.geo.test", "+subnet=81.2.69.200/32"]),
        vec!["192.0.2.10"]
    );
    assert_eq!(
        answers(&server, &["www.geo.test", "+subnet=216.160.83.0/24"]),
        vec!["192.0.2.10"]
    );
}

#[test]
fn failover_backup_and_all_down_rules() {
    let body = r#"
[pools.down]
endpoints = [{ address = "192.0.2.66", down = true }]
[pools.dr]
backup = true
endpoints = [{ address = "192.0.2.99" }]

[services."a.geo.test"]
policy = "failover"
pools = ["down", "dr", "us"]

[services."b.geo.test"]
policy = "failover"
pools = ["down", "dr"]

[services."c.geo.test"]
policy = "failover"
pools = ["down"]
all_down = "nodata"

[services."d.geo.test"]
policy = "failover"
pools = ["down"]
all_down = "servfail"

[services."e.geo.test"]
policy = "failover"
pools = ["down"]
"#;
    let setup = setup("failover", body);
    let server = serve(&setup);
    // The first healthy primary serves; the backup waits though listed before it.
    assert_eq!(answers(&server, &["a.geo.test"]), vec!["198.51.100.10"]);
    // Every primary down: the backup.
    assert_eq!(answers(&server, &["b.geo.test"]), vec!["192.0.2.99"]);
    // Nothing healthy at all.
    let nodata = dig(server.addr(), &["c.geo.test"]);
    assert_eq!(
        (nodata.status.as_str(), nodata.answer.len()),
        ("NOERROR", 0)
    );
    assert_eq!(
        nodata.authority.len(),
        1,
        "SOA in authority: {}",
        nodata.raw
    );
    assert_eq!(dig(server.addr(), &["d.geo.test"]).status, "SERVFAIL");
    // Default fail-open answers as if the probes were wrong, but never an
    // endpoint the operator took out (`down = true`): no data (issue 18).
    let e = dig(server.addr(), &["e.geo.test"]);
    assert_eq!(
        (e.status.as_str(), e.answer.len()),
        ("NOERROR", 0),
        "{}",
        e.raw
    );
    // A service with only IPv4 endpoints: AAAA is NODATA.
    let aaaa = dig(server.addr(), &["a.geo.test", "AAAA"]);
    assert_eq!((aaaa.status.as_str(), aaaa.answer.len()), ("NOERROR", 0));
}

/// Many queries in one dig run (dig accepts several names).
fn many_answers(
    server: &GslbServer,
    name: &str,
    extra: &[&str],
    count: usize,
) -> BTreeMap<String, usize> {
    let mut args: Vec<&str> = vec!["+short"];
    args.extend_from_slice(extra);
    for _ in 0..count {
        args.push(name);
    }
    let output = std::process::Command::new("dig")
        .arg(format!("@{}", server.addr().ip()))
        .args([
            "-p",
            &server.addr().port().to_string(),
            "+norec",
            "+time=2",
            "+tries=2",
        ])
        .args(&args)
        .output()
        .expect("dig");
    let mut counts = BTreeMap::new();
    // Only answer lines: dig prints warnings (e.g. about a stray packet
    // from a neighbouring test) with a ";;" prefix.
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        if line.trim().is_empty() || line.starts_with(';') {
            continue;
        }
        *counts.entry(line.trim().to_string()).or_insert(0) += 1;
    }
    counts
}

#[test]
fn weighted_selection_follows_weights() {
    let body = r#"
[pools.w]
endpoints = [{ address = "192.0.2.1", weight = 3 }, { address = "192.0.2.2", weight = 1 }, { address = "192.0.2.3", weight = 0 }]
[services."w.geo.test"]
policy = "failover"
pools = ["w"]
"#;
    let setup = setup("weighted", body);
    let server = serve(&setup);
    let counts = many_answers(&server, "w.geo.test", &[], 800);
    let total: usize = counts.values().sum();
    // dig retries a lost query; a rare reply it could not match is tolerated.
    assert!(total >= 790, "{counts:?}");
    let heavy = counts.get("192.0.2.1").copied().unwrap_or(0) as f64 / total as f64;
    // Expected 0.75; ±0.08 is over 5 standard deviations for 800 draws.
    assert!((heavy - 0.75).abs() < 0.08, "share {heavy}: {counts:?}");
    assert!(
        !counts.contains_key("192.0.2.3"),
        "weight 0 answered: {counts:?}"
    );
}

#[test]
fn sticky_and_multivalue_selection() {
    let body = r#"
[pools.m]
endpoints = [{ address = "192.0.2.1" }, { address = "192.0.2.2" }, { address = "192.0.2.3" }, { address = "192.0.2.4", down = true }]
[services."s.geo.test"]
policy = "failover"
pools = ["m"]
selection = "sticky"
[services."mv.geo.test"]
policy = "failover"
pools = ["m"]
selection = "multivalue"
max_records = 8
"#;
    let setup = setup("sticky", body);
    let server = serve(&setup);
    let mut seen = std::collections::BTreeSet::new();
    for third in 0..40 {
        let subnet = format!("+subnet=10.9.{third}.0/24");
        let counts = many_answers(&server, "s.geo.test", &[&subnet], 5);
        assert_eq!(counts.len(), 1, "one client, one answer: {counts:?}");
        seen.extend(counts.into_keys());
    }
    assert!(
        seen.len() >= 2,
        "40 subnets spread over endpoints: {seen:?}"
    );
    assert!(!seen.contains("192.0.2.4"));
    let sticky = dig(server.addr(), &["s.geo.test", "+subnet=10.9.1.0/24"]);
    assert_eq!(sticky.client_subnet.expect("ECS").scope_prefix_len, 24);
    assert_eq!(
        answers(&server, &["mv.geo.test"]),
        vec!["192.0.2.1", "192.0.2.2", "192.0.2.3"]
    );
}

#[test]
fn cname_endpoints_are_answered_as_cname() {
    let body = r#"
[pools.cdn]
endpoints = [{ cname = "edge.cdn.example.net" }]
[services."c.geo.test"]
policy = "failover"
pools = ["cdn"]
ttl = 45
"#;
    let setup = setup("cname", body);
    let server = serve(&setup);
    for qtype in ["A", "AAAA", "CNAME"] {
        let result = dig(server.addr(), &["c.geo.test", qtype]);
        assert_eq!(
            result.answer,
            vec!["c.geo.test. 45 IN CNAME edge.cdn.example.net."],
            "{qtype}"
        );
    }
}

#[test]
fn shipped_default_config_answers_per_region() {
    let server = GslbServer::start(&[]);
    assert_eq!(
        answers(&server, &["www.example.test", "+subnet=81.2.69.160/24"]),
        vec!["192.0.2.10"]
    );
    let gb = dig(
        server.addr(),
        &["www.example.test", "+subnet=81.2.69.160/24"],
    );
    assert!(gb.client_subnet.expect("ECS").scope_prefix_len > 0);
    assert_eq!(
        answers(&server, &["www.example.test"]),
        vec!["198.51.100.10"]
    );
    assert_eq!(
        answers(&server, &["www.example.test", "+subnet=216.160.83.0/24"]),
        vec!["198.51.100.10"]
    );
    assert_eq!(
        answers(
            &server,
            &["www.example.test", "AAAA", "+subnet=2001:218::/32"]
        ),
        vec!["2001:db8:f::10"]
    );
    assert_eq!(
        answers(
            &server,
            &["www.example.test", "AAAA", "+subnet=89.160.20.0/24"]
        ),
        vec!["2001:db8:e::10"]
    );
}

#[test]
fn explain_shows_location_rule_and_answer() {
    let europe = run_gslb(&[
        "explain",
        "--offline",
        "--client",
        "81.2.69.160/24",
        "www.example.test",
    ]);
    assert_eq!(europe.code(), Some(0), "{}", europe.stderr);
    for expected in [
        "client: 81.2.69.0/24 (EDNS Client Subnet)",
        "country GB",
        "continent EU",
        "rule: geo map continent EU: [eu, us]",
        "pool eu: 1/1 healthy",
        "answer: www.example.test. 30 IN A 192.0.2.10",
        "ecs: 81.2.69.0/24 scope /24",
    ] {
        assert!(
            europe.stdout.contains(expected),
            "missing {expected:?} in:\n{}",
            europe.stdout
        );
    }
    let asia = run_gslb(&[
        "explain",
        "--offline",
        "--client",
        "2001:218::1",
        "www.example.test",
        "AAAA",
    ]);
    assert!(asia.stdout.contains("country JP"), "{}", asia.stdout);
    assert!(
        asia.stdout
            .contains("answer: www.example.test. 30 IN AAAA 2001:db8:f::10"),
        "{}",
        asia.stdout
    );
}

#[test]
fn config_errors_name_file_and_line() {
    let cases: [(&str, &str); 6] = [
        (
            "[services.\"static.geo.test\"]\npolicy = \"failover\"\npools = [\"eu\"]\n",
            "has static records",
        ),
        (
            "[services.\"x.geo.test\"]\npolicy = \"failover\"\npools = [\"nowhere\"]\n",
            "unknown pool \"nowhere\"",
        ),
        (
            "[services.\"www.other.test\"]\npolicy = \"failover\"\npools = [\"eu\"]\n",
            "not inside any served zone",
        ),
        (
            "[services.\"x.geo.test\"]\npolicy = \"geo\"\n[services.\"x.geo.test\".geo]\ncontinent = { XX = [\"eu\"] }\n",
            "unknown continent",
        ),
        (
            "[services.\"x.geo.test\"]\npolicy = \"latency\"\npools = [\"eu\"]\n",
            "latency_table",
        ),
        (
            "[pools.bad]\nbias = 120\nendpoints = [{ address = \"192.0.2.1\" }]\n",
            "out of range",
        ),
    ];
    for (body, message) in cases {
        let setup = setup("errors", body);
        let out = run_gslb(&["check", "-c", path_str(&setup.config)]);
        assert_eq!(out.code(), Some(1), "{body}");
        let config = setup.config.display().to_string();
        let line = out
            .stderr
            .lines()
            .find(|l| l.contains(message))
            .unwrap_or_else(|| panic!("no {message:?} in {}", out.stderr));
        assert!(line.starts_with(&format!("{config}:")), "{line}");
        let position = &line[config.len() + 1..];
        assert!(
            position
                .split(':')
                .next()
                .is_some_and(|n| n.parse::<usize>().is_ok()),
            "no line number: {line}"
        );
    }
    // GeoIP settings: a bad preset, a bad field path and an unreadable
    // database are each reported at their own line.
    for (geoip, message, line) in [
        ("fields = \"bogus\"\n", "geoip.fields: unknown preset", 7),
        (
            "fields = { country = \"country..iso_code\" }\n",
            "geoip.fields: ",
            7,
        ),
        ("", "geoip.database: ", 6),
    ] {
        let setup = setup("geoip-errors", "");
        let text = std::fs::read_to_string(&setup.config).unwrap();
        let text = text.replace(
            "database = \"city.mmdb\"\n",
            &format!("database = \"city.mmdb\"\n{geoip}"),
        );
        std::fs::write(&setup.config, text).unwrap();
        if geoip.is_empty() {
            std::fs::write(setup.dir.path().join("city.mmdb"), b"not a database").unwrap();
        }
        let out = run_gslb(&["check", "-c", path_str(&setup.config)]);
        assert_eq!(out.code(), Some(1), "{geoip}");
        let config = setup.config.display().to_string();
        let wanted = format!("{config}:{line}:");
        assert!(
            out.stderr
                .lines()
                .any(|l| l.starts_with(&wanted) && l.contains(message)),
            "no {wanted}...{message} in {}",
            out.stderr
        );
    }
    // A missing database is a clear startup error.
    let setup = setup("nodb", "");
    std::fs::remove_file(setup.dir.path().join("city.mmdb")).unwrap();
    let out = run_gslb(&["check", "-c", path_str(&setup.config)]);
    assert_eq!(out.code(), Some(1));
    assert!(out.stderr.contains("city.mmdb"), "{}", out.stderr);
}

/// Path of a file in ../shared/geoip, or None (with the reason printed).
fn shared_geoip(name: &str) -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/geoip")
        .join(name);
    if path.exists() {
        Some(path)
    } else {
        println!("skipping: {} not found", path.display());
        None
    }
}

#[test]
fn maxmind_test_databases_route_like_the_demo() {
    for name in [
        "GeoIP2-City-Test.mmdb",
        "GeoLite2-City-Test.mmdb",
        "GeoIP2-Country-Test.mmdb",
        "GeoLite2-Country-Test.mmdb",
    ] {
        let Some(database) = shared_geoip(name) else {
            continue;
        };
        let dir = TempDir::new("maxmind");
        dir.write("geo.test.zone", ZONE);
        let config = dir.write(
            "gslb.toml",
            &format!(
                "[[zone]]\norigin = \"geo.test\"\nfile = \"geo.test.zone\"\n[geoip]\ndatabase = \"{}\"\n\
                 [ecs]\nmax_source_prefix_v4 = 32\n\
                 [pools.eu]\nendpoints = [{{ address = \"192.0.2.10\" }}]\n[pools.us]\nendpoints = [{{ address = \"198.51.100.10\" }}]\n\
                 [pools.ap]\nendpoints = [{{ address = \"203.0.113.10\" }}]\n{GEO_SERVICE}",
                database.display()
            ),
        );
        let server = GslbServer::start(&["-c", path_str(&config)]);
        // MaxMind's test data maps 81.2.69.160/27 (London), not the whole /24.
        assert_eq!(
            answers(&server, &["www.geo.test", "+subnet=81.2.69.160/27"]),
            vec!["192.0.2.10"],
            "{name}"
        );
        assert_eq!(
            answers(&server, &["www.geo.test", "+subnet=2001:218::/32"]),
            vec!["203.0.113.10"],
            "{name}"
        );
    }
}

#[test]
fn real_world_country_database_routes_by_country() {
    let Some(database) = shared_geoip("geo-whois-asn-country.mmdb") else {
        return;
    };
    let dir = TempDir::new("realworld");
    dir.write("geo.test.zone", ZONE);
    let config = dir.write(
        "gslb.toml",
        &format!(
            "[[zone]]\norigin = \"geo.test\"\nfile = \"geo.test.zone\"\n[geoip]\ndatabase = \"{}\"\n\
             [pools.eu]\nendpoints = [{{ address = \"192.0.2.10\" }}]\n[pools.us]\nendpoints = [{{ address = \"198.51.100.10\" }}]\n\
             [pools.ap]\nendpoints = [{{ address = \"203.0.113.10\" }}]\n{GEO_SERVICE}",
            database.display()
        ),
    );
    let server = GslbServer::start(&["-c", path_str(&config)]);
    // Google's public resolver is registered in the US; a DFN (German research net) address in Europe.
    assert_eq!(
        answers(&server, &["www.geo.test", "+subnet=8.8.8.0/24"]),
        vec!["198.51.100.10"]
    );
    assert_eq!(
        answers(&server, &["www.geo.test", "+subnet=193.174.0.0/16"]),
        vec!["192.0.2.10"]
    );
    let scope = dig(server.addr(), &["www.geo.test", "+subnet=8.8.8.0/24"])
        .client_subnet
        .expect("ECS")
        .scope_prefix_len;
    assert!(scope > 0 && scope <= 24, "{scope}");
}

//! Issue 18: answers that hold on real-world data and checks that catch
//! real mistakes, through the real binary: subdivision rules on every
//! database layout, honest ECS scopes over mixed source blocks, operator
//! "down" under fail-open, databases other readers accept, warnings for
//! rules that match nothing, and the config mistakes `check` must catch.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{GslbServer, TempDir, dig, run_gslb};

const ZONE: &str = "$TTL 300
@ SOA ns1 hostmaster 1 7200 900 1209600 60
@ NS ns1
ns1 A 192.0.2.53
";

/// Pools every test config has: one address each, easy to tell apart.
const POOLS: &str = r#"
[pools.a]
endpoints = [{ address = "192.0.2.1" }]
[pools.b]
endpoints = [{ address = "192.0.2.2" }]
[pools.c]
endpoints = [{ address = "192.0.2.3" }]
[pools.other]
endpoints = [{ address = "192.0.2.99" }]
"#;

/// (network, country, code part, English name, ASCII name).
type Place = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
);

/// Subdivisions as each vendor writes them: (network, country, ISO code
/// part, name as written by English-language vendors, the same name
/// without diacritics). Amazonas is both a Brazilian state and a Colombian
/// department; Bavaria is how GeoIP vendors write Bayern.
const PLACES: [Place; 7] = [
    ("216.160.83.0/24", "US", "WA", "Washington", "Washington"),
    ("81.2.69.0/24", "CH", "ZH", "Zürich", "Zurich"),
    ("89.160.20.0/24", "BR", "SP", "São Paulo", "Sao Paulo"),
    ("175.16.199.0/24", "BR", "AM", "Amazonas", "Amazonas"),
    ("1.128.0.0/11", "CO", "AMA", "Amazonas", "Amazonas"),
    ("41.0.0.0/11", "DE", "BY", "Bavaria", "Bavaria"),
    (
        "99.224.0.0/11",
        "FR",
        "IDF",
        "Île-de-France",
        "Ile de France",
    ),
];

/// The answer each place must get from the subdivision rules below.
const EXPECTED: [&str; 7] = [
    "192.0.2.1",
    "192.0.2.2",
    "192.0.2.3",
    "192.0.2.1",
    "192.0.2.2",
    "192.0.2.3",
    "192.0.2.1",
];

const SUBDIVISION_RULES: &str = r#"
[services."www.geo.test"]
policy = "geo"
pools = ["a", "b", "c", "other"]
[services."www.geo.test".geo]
subdivision = { "US-WA" = ["a"], "CH-ZH" = ["b"], "BR-SP" = ["c"], "BR-AM" = ["a"], "CO-AMA" = ["b"], "DE-BY" = ["c"], "FR-IDF" = ["a"] }
default = ["other"]
"#;

fn path_str(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

/// `gslb geoip build [--layout LAYOUT] CSV OUT` in `dir`; returns OUT.
fn build_db(dir: &TempDir, name: &str, csv: &str, layout: &str) -> PathBuf {
    let source = dir.write(&format!("{name}.csv"), csv);
    let out = dir.path().join(format!("{name}.mmdb"));
    let built = run_gslb(&[
        "geoip",
        "build",
        "--layout",
        layout,
        path_str(&source),
        path_str(&out),
    ]);
    assert_eq!(built.code(), Some(0), "geoip build: {}", built.stderr);
    out
}

/// A config serving geo.test with `database` and `body`.
fn write_config(dir: &TempDir, database: &Path, body: &str) -> PathBuf {
    dir.write("geo.test.zone", ZONE);
    dir.write(
        "gslb.toml",
        &format!(
            "[[zone]]\norigin = \"geo.test\"\nfile = \"geo.test.zone\"\n\n[geoip]\ndatabase = \"{}\"\n{POOLS}{body}",
            path_str(database)
        ),
    )
}

fn answer(server: &GslbServer, subnet: &str) -> Vec<String> {
    let result = dig(
        server.addr(),
        &["www.geo.test", &format!("+subnet={subnet}")],
    );
    assert_eq!(result.status, "NOERROR", "{}", result.raw);
    result.sorted_rdata()
}

/// The first address of a network, as an ECS /24 (or the network itself).
fn subnet_of(network: &str) -> String {
    let (address, len) = network.split_once('/').expect("CIDR");
    let len: u8 = len.parse().expect("prefix");
    format!("{address}/{}", len.max(24))
}

#[test]
fn subdivision_rules_match_on_every_database_layout() {
    let dir = TempDir::new("layouts");
    let header = "network,country,continent,subdivision,latitude,longitude,subdivision_name\n";
    let rows = |cell: &dyn Fn(&Place) -> (String, String)| -> String {
        let mut csv = header.to_string();
        for place in &PLACES {
            let (code, name) = cell(place);
            csv.push_str(&format!("{},{},,{code},,,{name}\n", place.0, place.1));
        }
        csv
    };
    let layouts = [
        // GeoIP2-City: codes (WA) and English names.
        (
            "geoip2-city",
            "maxmind",
            rows(&|p| (p.2.to_string(), p.3.to_string())),
        ),
        // DB-IP Lite City (mmdb): names, no codes.
        (
            "dbip-lite",
            "maxmind",
            rows(&|p| (String::new(), p.3.to_string())),
        ),
        // ip-location-db flat city: `state1` names, with diacritics.
        (
            "ip-location-db",
            "flat",
            rows(&|p| (String::new(), p.3.to_string())),
        ),
        // The same, spelled without diacritics.
        (
            "ip-location-db-ascii",
            "flat",
            rows(&|p| (String::new(), p.4.to_string())),
        ),
        // A flat database that writes codes in `state1`.
        (
            "flat-codes",
            "flat",
            rows(&|p| (p.2.to_string(), String::new())),
        ),
    ];
    for (name, layout, csv) in &layouts {
        let layout_dir = TempDir::new(name);
        let database = build_db(&layout_dir, name, csv, layout);
        let config = write_config(&layout_dir, &database, SUBDIVISION_RULES);
        let server = GslbServer::start(&["-c", path_str(&config)]);
        for (place, want) in PLACES.iter().zip(EXPECTED) {
            assert_eq!(
                answer(&server, &subnet_of(place.0)),
                vec![want],
                "{name}: {} {}",
                place.1,
                place.3
            );
        }
        // No rule is reported as matching nothing: every code was found.
        let check = run_gslb(&["check", "--strict", "-c", path_str(&config)]);
        assert_eq!(check.code(), Some(0), "{name}: {}", check.stderr);
        assert!(
            !check.stderr.contains("warning"),
            "{name}: {}",
            check.stderr
        );
    }
    drop(dir);
    // explain shows both what the database wrote and the code.
    let explain_dir = TempDir::new("layouts-explain");
    let database = build_db(&explain_dir, "flat", &layouts[2].2, "flat");
    let config = write_config(&explain_dir, &database, SUBDIVISION_RULES);
    let out = run_gslb(&[
        "explain",
        "--offline",
        "-c",
        path_str(&config),
        "--client",
        "81.2.69.10/24",
        "www.geo.test",
    ]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert!(
        out.stdout
            .contains("subdivision CH-ZH (database: \"Zürich\")"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("geo map subdivision CH-ZH"),
        "{}",
        out.stdout
    );
}

/// RFC 7871 §7.2.1: the reply's scope is where the answer given holds,
/// longer than the source prefix when the source block is mixed.
#[test]
fn mixed_source_blocks_get_an_honest_scope() {
    let dir = TempDir::new("scope");
    let csv = "network,country,continent,subdivision,latitude,longitude
198.51.100.0/24,GB,,,,
198.51.100.128/25,US,,,,
10.0.0.0/8,GB,,,,
10.5.0.0/16,US,,,,
203.0.113.0/24,GB,,,,
";
    let database = build_db(&dir, "mixed", csv, "maxmind");
    let config = write_config(
        &dir,
        &database,
        r#"
[services."www.geo.test"]
policy = "geo"
pools = ["a", "b", "other"]
[services."www.geo.test".geo]
country = { GB = ["a"], US = ["b"] }
default = ["other"]
"#,
    );
    let server = GslbServer::start(&["-c", path_str(&config)]);
    for (subnet, want, scope) in [
        // A /24 the database splits into two /25s.
        ("198.51.100.0/24", "192.0.2.1", 25),
        // (A /25 source is capped to the /24: max_source_prefix_v4.)
        ("198.51.100.128/25", "192.0.2.1", 25),
        // A /8 with a /16 of another country: 10.0.0.0 is in a uniform /14.
        ("10.0.0.0/8", "192.0.2.1", 14),
        ("10.5.0.0/16", "192.0.2.2", 16),
        // A uniform block: the scope is not longer than the source.
        ("203.0.113.0/24", "192.0.2.1", 24),
    ] {
        let result = dig(
            server.addr(),
            &["www.geo.test", &format!("+subnet={subnet}")],
        );
        assert_eq!(
            result.sorted_rdata(),
            vec![want],
            "{subnet}: {}",
            result.raw
        );
        let ecs = result.client_subnet.expect("ECS echoed");
        assert_eq!(ecs.scope_prefix_len, scope, "{subnet}: {}", result.raw);
    }
}

#[test]
fn operator_disabled_endpoints_are_never_answered_even_failing_open() {
    let dir = TempDir::new("down");
    let database = build_db(
        &dir,
        "db",
        "network,country,continent,subdivision,latitude,longitude\n81.2.69.0/24,GB,,,,\n",
        "maxmind",
    );
    let config = write_config(
        &dir,
        &database,
        r#"
[pools.maint]
endpoints = [{ address = "192.0.2.66", down = true }, { address = "192.0.2.67", down = true }]
[services."www.geo.test"]
policy = "failover"
pools = ["maint"]
all_down = "fail-open"
[services."api.geo.test"]
policy = "failover"
pools = ["a"]
[server]
api_require_token = false
"#,
    );
    let server = GslbServer::start(&["-c", path_str(&config), "--api", "127.0.0.1:0"]);
    let result = dig(server.addr(), &["www.geo.test"]);
    assert_eq!(
        (result.status.as_str(), result.answer.len()),
        ("NOERROR", 0),
        "{}",
        result.raw
    );
    // The load log says why, with the service's line.
    assert!(
        server
            .stderr()
            .contains("is down = true: it answers no records"),
        "{}",
        server.stderr()
    );
    let explain = run_gslb(&[
        "explain",
        "--offline",
        "-c",
        path_str(&config),
        "--client",
        "81.2.69.1",
        "www.geo.test",
    ]);
    assert!(
        explain.stdout.contains("down by the operator"),
        "{}",
        explain.stdout
    );
    // An operator's force-down through the API is the same word: the
    // answer goes (no fail-open), and the log says why.
    assert_eq!(
        dig(server.addr(), &["api.geo.test"]).sorted_rdata(),
        vec!["192.0.2.1"]
    );
    let set = common::http(
        server.api(),
        "POST",
        "/override",
        &[("Content-Type", "application/json")],
        r#"{"pool":"a","state":"down"}"#,
    );
    assert_eq!(set.status, 200, "{}", set.body);
    let result = dig(server.addr(), &["api.geo.test"]);
    assert_eq!(
        (result.status.as_str(), result.answer.len()),
        ("NOERROR", 0),
        "{}",
        result.raw
    );
    assert!(
        server
            .stderr()
            .contains("every endpoint of the service is down by the operator"),
        "{}",
        server.stderr()
    );
}

/// Runs an independent MaxMind DB reader on `file`: libmaxminddb's
/// `mmdblookup` and Python's `maxminddb` (its C extension, libmaxminddb
/// again, and its pure-Python reader). Returns what mmdblookup printed.
fn read_independently(file: &Path, address: &str) -> String {
    let lookup = Command::new("mmdblookup")
        .args(["--file", path_str(file), "--ip", address])
        .output()
        .expect("run mmdblookup (install mmdb-bin)");
    let printed = String::from_utf8_lossy(&lookup.stdout).into_owned()
        + &String::from_utf8_lossy(&lookup.stderr);
    assert!(
        lookup.status.success(),
        "mmdblookup rejects {}: {printed}",
        file.display()
    );
    let script = "import sys, maxminddb\n\
                  for mode in (maxminddb.MODE_AUTO, maxminddb.MODE_FILE):\n\
                  \x20   reader = maxminddb.open_database(sys.argv[1], mode)\n\
                  \x20   assert reader.metadata().build_epoch > 0\n\
                  \x20   assert reader.get(sys.argv[2]) is not None, mode\n\
                  print('ok')\n";
    let python = Command::new("/usr/bin/python3")
        .args(["-c", script, path_str(file), address])
        .output()
        .expect("run /usr/bin/python3 (install python3-maxminddb)");
    assert!(
        python.status.success(),
        "python maxminddb rejects {}: {}",
        file.display(),
        String::from_utf8_lossy(&python.stderr)
    );
    printed
}

#[test]
fn every_database_gslb_writes_is_read_by_independent_readers() {
    let dir = TempDir::new("readers");
    let csv = "network,country,continent,subdivision,latitude,longitude,subdivision_name
216.160.83.0/24,US,NA,WA,47.25,-122.31,Washington
2001:218::/32,JP,AS,13,35.69,139.69,Tokyo
";
    let city = build_db(&dir, "city", csv, "maxmind");
    let printed = read_independently(&city, "216.160.83.56");
    assert!(printed.contains("\"WA\""), "{printed}");
    assert!(printed.contains("\"Washington\""), "{printed}");
    read_independently(&city, "2001:218::1");
    let flat = build_db(&dir, "flat", csv, "flat");
    let printed = read_independently(&flat, "216.160.83.56");
    assert!(printed.contains("\"state1\""), "{printed}");
    assert!(printed.contains("\"Washington\""), "{printed}");
    // The shipped demo database.
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("geoip/demo-city.mmdb");
    let printed = read_independently(&demo, "81.2.69.160");
    assert!(printed.contains("\"GB\""), "{printed}");
    // A build epoch of 0 is refused rather than written.
    let source = dir.write("zero.csv", csv);
    let zero = run_gslb(&[
        "geoip",
        "build",
        "--build-epoch",
        "0",
        path_str(&source),
        path_str(&dir.path().join("zero.mmdb")),
    ]);
    assert_eq!(zero.code(), Some(1));
    assert!(zero.stderr.contains("build epoch 0"), "{}", zero.stderr);
}

#[test]
fn rules_matching_no_network_are_warnings_and_strict_makes_them_errors() {
    let dir = TempDir::new("unmatched");
    let database = build_db(
        &dir,
        "db",
        "network,country,continent,subdivision,latitude,longitude\n216.160.83.0/24,US,NA,WA,,\n",
        "maxmind",
    );
    let config = write_config(
        &dir,
        &database,
        r#"
[maps.world]
subdivision = { "US-WA" = ["a"], "US-OR" = ["b"], "US-XX" = ["b"], "US-Washington" = ["a"] }
country = { US = ["a"], FR = ["c"] }
continent = { EU = ["c"] }
default = ["other"]

[services."www.geo.test"]
policy = "geo"
map = "world"
"#,
    );
    let check = run_gslb(&["check", "-c", path_str(&config)]);
    assert_eq!(check.code(), Some(0), "{}", check.stderr);
    let config_path = path_str(&config);
    for expected in [
        format!("{config_path}:18:"),
        "subdivision rule \"US-OR\" matches no network".to_string(),
        "\"US-XX\" matches no network of the geoip database and is not an ISO 3166-2 code"
            .to_string(),
        // A name where the code belongs: the fix is the code.
        "\"US-Washington\" matches no network of the geoip database and is not an ISO 3166-2 code: rules name subdivisions by code: write \"US-WA\"".to_string(),
        format!("{config_path}:19:"),
        "country rule \"FR\" matches no network of the geoip database: use a two-letter ISO 3166-1 code (GB, US) the database has, or remove the rule".to_string(),
        "continent rule \"EU\" matches no network of the geoip database: use a continent code it has (NA), or remove the rule".to_string(),
    ] {
        assert!(
            check.stderr.contains(&expected),
            "missing {expected:?} in:\n{}",
            check.stderr
        );
    }
    // Each warning once: `check` prints them itself and does not log them
    // as well.
    for rule in [
        "\"US-OR\"",
        "\"US-XX\"",
        "\"US-Washington\"",
        "\"FR\"",
        "\"EU\"",
    ] {
        assert_eq!(
            check.stderr.matches(rule).count(),
            1,
            "{rule} once in:\n{}",
            check.stderr
        );
    }
    assert!(!check.stderr.contains("rule \"US-WA\""), "{}", check.stderr);
    assert!(!check.stderr.contains("rule \"US\""), "{}", check.stderr);
    let strict = run_gslb(&["check", "--strict", "-c", config_path]);
    assert_eq!(strict.code(), Some(1), "{}", strict.stderr);
    assert!(strict.stderr.contains("5 warnings"), "{}", strict.stderr);
    // The load log has them too, at start and at every reload.
    let server = GslbServer::start(&["-c", config_path]);
    let logged = || {
        server
            .stderr()
            .matches("country rule \"FR\" matches no network")
            .count()
    };
    assert_eq!(logged(), 1, "{}", server.stderr());
    server.signal("HUP");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !server.stderr().contains("reloaded configuration")
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(logged(), 2, "{}", server.stderr());
}

#[test]
fn a_subdivision_rule_keyed_by_a_bare_name_names_the_codes_it_may_mean() {
    let dir = TempDir::new("bare-name");
    let (code, stderr) = check_config(
        &dir,
        r#"
[services."www.geo.test"]
policy = "geo"
pools = ["a", "b"]
[services."www.geo.test".geo]
subdivision = { Amazonas = ["a"], "Zürich" = ["b"] }
default = ["b"]
"#,
    );
    assert_eq!(code, Some(1), "{stderr}");
    let file = dir.path().join("gslb.toml");
    let file = path_str(&file);
    for expected in [
        format!(
            "{file}:18:28: bad subdivision \"Amazonas\": expected an ISO 3166-2 code like US-WA: write one of \"BR-AM\", \"CO-AMA\", \"VE-Z\""
        ),
        format!(
            "{file}:18:46: bad subdivision \"Zürich\": expected an ISO 3166-2 code like US-WA: write \"CH-ZH\""
        ),
    ] {
        assert!(
            stderr.contains(&expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }
}

/// `check` exit code and stderr for a config with `body`.
fn check_config(dir: &TempDir, body: &str) -> (Option<i32>, String) {
    dir.write("geo.test.zone", ZONE);
    let config = dir.write(
        "gslb.toml",
        &format!("[[zone]]\norigin = \"geo.test\"\nfile = \"geo.test.zone\"\n{POOLS}{body}"),
    );
    let out = run_gslb(&["check", "-c", path_str(&config)]);
    (out.code(), out.stderr)
}

#[test]
fn nets_duplicates_and_host_bits_are_errors_naming_both_lines() {
    let dir = TempDir::new("nets");
    let (code, stderr) = check_config(
        &dir,
        r#"
[services."www.geo.test"]
policy = "geo"
pools = ["a", "b", "other"]
[services."www.geo.test".geo.nets]
"10.0.0.0/8" = ["a"]
"10.0.0.0/08" = ["b"]
"10.1.2.3/16" = ["b"]
"192.0.2.0/24" = ["a"]
"192.0.2.7" = ["a"]
"#,
    );
    assert_eq!(code, Some(1), "{stderr}");
    let file = dir.path().join("gslb.toml");
    let file = path_str(&file);
    assert!(
        stderr.contains(&format!(
            "{file}:19:17: network \"10.0.0.0/08\" in nets is the same network as \"10.0.0.0/8\" at line 18"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{file}:20:17: network \"10.1.2.3/16\" in nets has host bits set: write 10.1.0.0/16"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{file}:22:15: bad network \"192.0.2.7\" in nets: expected CIDR like 10.0.0.0/8: write 192.0.2.7/32"
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("192.0.2.0/24"), "{stderr}");
}

#[test]
fn check_refuses_a_public_api_without_a_token_as_serve_does() {
    let dir = TempDir::new("api");
    let body = "[server]\napi = \"0.0.0.0:9300\"\n";
    dir.write("geo.test.zone", ZONE);
    let config = dir.write(
        "gslb.toml",
        &format!("{body}[[zone]]\norigin = \"geo.test\"\nfile = \"geo.test.zone\"\n{POOLS}"),
    );
    let check = run_gslb(&["check", "-c", path_str(&config)]);
    assert_eq!(check.code(), Some(1), "{}", check.stderr);
    assert!(
        check.stderr.contains(&format!(
            "{}:2:7: admin API on 0.0.0.0:9300 needs a token",
            path_str(&config)
        )),
        "{}",
        check.stderr
    );
    let serve = run_gslb(&["serve", "-c", path_str(&config), "--listen", "127.0.0.1:0"]);
    assert_eq!(serve.code(), Some(1), "{}", serve.stderr);
    assert!(serve.stderr.contains("needs a token"), "{}", serve.stderr);
    // With a token both accept it.
    std::fs::write(
        &config,
        format!(
            "[server]\napi = \"0.0.0.0:9300\"\napi_token = \"t0ken\"\n[[zone]]\norigin = \"geo.test\"\nfile = \"geo.test.zone\"\n{POOLS}"
        ),
    )
    .expect("write config");
    let check = run_gslb(&["check", "-c", path_str(&config)]);
    assert_eq!(check.code(), Some(0), "{}", check.stderr);
}

#[test]
fn root_causes_are_reported_without_their_cascades() {
    let services = r#"
[services."www.geo.test"]
policy = "geo"
pools = ["a", "b"]
[services."www.geo.test".geo]
country = { GB = ["a"] }
default = ["b"]
"#;
    let cascades = [
        "is not inside any served zone",
        "unknown pool",
        "no [geoip] database is configured",
        "no zones configured",
    ];
    // A zone file that does not parse, a missing one, a missing $INCLUDE.
    for (label, zone_file, zone_text, root) in [
        (
            "parse",
            "geo.test.zone",
            Some(
                "$TTL 300\n@ SOA ns1 hostmaster 1 7200 900 1209600 60\n@ NS ns1\nwww A not-an-address\n",
            ),
            "geo.test.zone:4",
        ),
        // (At the key that names it, with the fix.)
        (
            "missing",
            "absent.zone",
            None,
            "gslb.toml:3:8: zone geo.test.: cannot read zone file ",
        ),
        (
            "include",
            "geo.test.zone",
            Some(
                "$TTL 300\n@ SOA ns1 hostmaster 1 7200 900 1209600 60\n@ NS ns1\n$INCLUDE gone.zone\n",
            ),
            "gone.zone",
        ),
    ] {
        let dir = TempDir::new(&format!("root-{label}"));
        if let Some(text) = zone_text {
            dir.write(zone_file, text);
        }
        let db = build_db(
            &dir,
            "db",
            "network,country,continent,subdivision,latitude,longitude\n81.2.69.0/24,GB,,,,\n",
            "maxmind",
        );
        let config = dir.write(
            "gslb.toml",
            &format!(
                "[[zone]]\norigin = \"geo.test\"\nfile = \"{zone_file}\"\n[geoip]\ndatabase = \"{}\"\n{POOLS}{services}",
                path_str(&db)
            ),
        );
        let out = run_gslb(&["check", "-c", path_str(&config)]);
        assert_eq!(out.code(), Some(1), "{label}: {}", out.stderr);
        assert!(out.stderr.contains(root), "{label}: {}", out.stderr);
        for cascade in cascades {
            assert!(!out.stderr.contains(cascade), "{label}: {}", out.stderr);
        }
    }
    // A missing database.
    let dir = TempDir::new("root-database");
    dir.write("geo.test.zone", ZONE);
    let config = dir.write(
        "gslb.toml",
        &format!(
            "[[zone]]\norigin = \"geo.test\"\nfile = \"geo.test.zone\"\n[geoip]\ndatabase = \"nowhere.mmdb\"\n{POOLS}{services}"
        ),
    );
    let out = run_gslb(&["check", "-c", path_str(&config)]);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("nowhere.mmdb"), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("gslb.toml:5:12: geoip.database: cannot read geoip database")
            && out.stderr.contains("fix the path"),
        "{}",
        out.stderr
    );
    for cascade in cascades {
        assert!(!out.stderr.contains(cascade), "{}", out.stderr);
    }
    // A pool with an error of its own is reported once, not as unknown
    // wherever it is named.
    let dir = TempDir::new("root-pool");
    let (code, stderr) = check_config(
        &dir,
        r#"
[pools.broken]
endpoints = [{ address = "192.0.2.7", cname = "x.example" }]
[maps.m]
default = ["broken", "a"]
[services."www.geo.test"]
policy = "geo"
map = "m"
"#,
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(stderr.matches("exactly one of").count(), 1, "{stderr}");
    assert!(!stderr.contains("unknown pool"), "{stderr}");
}

#[test]
fn durations_everywhere_and_type_errors_name_the_key() {
    let dir = TempDir::new("durations");
    let (code, stderr) = check_config(
        &dir,
        r#"
[server]
tcp_idle_timeout = "1m"
[services."www.geo.test"]
policy = "failover"
pools = ["a"]
ttl = "30s"
failover_ttl = "1m 30s"
[checks.web]
kind = "tcp"
port = 80
interval = "1m30s"
"#,
    );
    assert_eq!(code, Some(0), "{stderr}");
    let (code, stderr) = check_config(
        &dir,
        r#"
[services."www.geo.test"]
policy = "failover"
pools = ["a"]
ttl = "soon"
"#,
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(":17:7: `ttl`: bad duration \"soon\""),
        "{stderr}"
    );
    assert!(stderr.contains("\"30s\""), "{stderr}");
    // A key that only a signed zone reads is not ignored on an unsigned one.
    let (code, stderr) = check_config(
        &dir,
        "[[zone]]\norigin = \"b.geo.test\"\nfile = \"geo.test.zone\"\ndnssec_validity = \"2w\"\n",
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(":16:19: zone b.geo.test. sets dnssec_validity but is not signed: add `dnssec = true` or remove it"),
        "{stderr}"
    );
    // A file the config names and cannot be read is reported at its key.
    let (code, stderr) = check_config(
        &dir,
        "[services.\"www.geo.test\"]\npolicy = \"latency\"\npools = [\"a\", \"b\"]\nlatency_table = \"absent.csv\"\n",
    );
    assert_eq!(code, Some(1), "{stderr}");
    let file = dir.path().join("gslb.toml");
    assert!(
        stderr.contains(&format!(
            "{}:16:17: latency_table: cannot read {}",
            path_str(&file),
            path_str(&dir.path().join("absent.csv"))
        )),
        "{stderr}"
    );
    assert!(stderr.contains("fix the path"), "{stderr}");
}

#[test]
fn reload_with_a_config_that_does_not_load_sends_nothing() {
    let dir = TempDir::new("reload-bad");
    dir.write("geo.test.zone", ZONE);
    let good = dir.write(
        "gslb.toml",
        &format!("[[zone]]\norigin = \"geo.test\"\nfile = \"geo.test.zone\"\n{POOLS}"),
    );
    let server = GslbServer::start(&["-c", path_str(&good), "--api", "127.0.0.1:0"]);
    let api = server.api().to_string();
    let broken = dir.write("broken.toml", "[server]\napi = \n");
    for args in [
        vec!["reload", "-c", path_str(&broken)],
        vec!["reload", "-c", path_str(&broken), "--api", &api],
    ] {
        let out = run_gslb(&args);
        assert_eq!(out.code(), Some(1), "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains(&format!("{}:2:", path_str(&broken))),
            "{args:?}: {}",
            out.stderr
        );
        assert!(out.stderr.contains("not reloading"), "{}", out.stderr);
    }
    assert!(
        // (Every reload is logged with its trigger; the temp dir's name,
        // in the token file's path, has "reload" in it.)
        !server.stderr().contains("trigger="),
        "no reload reached the server: {}",
        server.stderr()
    );
}

//! `gslb diff` (issue 21, what-if): the real binary compiles two
//! configurations and reports how clients move between pools. Exactness is
//! checked against independent oracles: the demo database's CSV source, a
//! real server's query log, and for the real-world country database
//! (`../shared/geoip`, skipped when absent) python3-maxminddb walking the
//! mmdb tree itself.

mod common;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{GslbServer, TempDir, dig, gslb_command, poll_until, run_gslb};
use serde_json::Value;

const WWW: &str = "www.example.test.";

fn repo(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(path)
        .display()
        .to_string()
}

const POOLS: &str = r#"
[pools.eu]
endpoints = [{ address = "192.0.2.10" }, { address = "2001:db8:e::10" }]
[pools.us]
endpoints = [{ address = "198.51.100.10" }, { address = "2001:db8:a::10" }]
[pools.ap]
endpoints = [{ address = "203.0.113.10" }, { address = "2001:db8:f::10" }]
"#;

/// A configuration on the demo database with `geo` as the service's map.
fn config(geo: &str, extra: &str) -> String {
    format!(
        r#"
[[zone]]
origin = "example.test"
file = "{zone}"

[geoip]
database = "{db}"
fields = "auto"
{extra}
{POOLS}
[services."www.example.test"]
policy = "geo"

[services."www.example.test".geo]
continent = {{ EU = ["eu", "us"], NA = ["us", "eu"], AS = ["ap", "us"], OC = ["ap", "us"] }}
default = ["us"]
{geo}
"#,
        zone = repo("zones/example.test.zone"),
        db = repo("geoip/demo-city.mmdb"),
    )
}

fn diff_json(args: &[&str]) -> Value {
    let mut all = vec!["diff", "--json"];
    all.extend_from_slice(args);
    let out = run_gslb(&all);
    assert_eq!(
        out.code(),
        Some(0),
        "gslb {all:?}:\n{}{}",
        out.stdout,
        out.stderr
    );
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}:\n{}", out.stdout))
}

/// The family report of service `name`.
fn family<'a>(report: &'a Value, name: &str, family: &str) -> &'a Value {
    let service = report["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no service {name} in {report:#}"));
    service["families"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["family"] == family)
        .unwrap_or_else(|| panic!("no {family} in {service:#}"))
}

/// The weight flowing `from` → `to` (0 when there is no such flow).
fn flow(family: &Value, from: &str, to: &str) -> f64 {
    family["flows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["from"] == from && f["to"] == to)
        .map_or(0.0, |f| f["weight"].as_f64().unwrap())
}

fn flows_total(family: &Value) -> f64 {
    family["flows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["weight"].as_f64().unwrap())
        .sum()
}

/// IPv4 addresses the demo database's CSV source gives `countries` (its
/// networks of those countries do not overlap).
fn demo_ipv4_addresses(countries: &[&str]) -> f64 {
    let csv = std::fs::read_to_string(repo("geoip/demo-city.csv")).unwrap();
    csv.lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("network,"))
        .filter_map(|l| {
            let mut fields = l.split(',');
            let net: ipnet::IpNet = fields.next()?.parse().ok()?;
            let country = fields.next()?;
            (countries.contains(&country) && matches!(net.addr(), IpAddr::V4(_)))
                .then(|| 2f64.powi(32 - i32::from(net.prefix_len())))
        })
        .sum()
}

#[test]
fn issue_21_diff_is_exact_over_the_address_space() {
    let dir = TempDir::new("diff-space");
    let old = dir.write("old.toml", &config("", ""));
    let new = dir.write(
        "new.toml",
        &config(
            "country = { GB = [\"us\", \"eu\"] }\nnets = { \"10.0.0.0/8\" = [\"ap\"] }",
            "",
        ),
    );
    let (old, new) = (old.to_str().unwrap(), new.to_str().unwrap());
    let report = diff_json(&["-c", old, new, "--family", "4"]);
    let v4 = family(&report, WWW, "ipv4");
    let gb = demo_ipv4_addresses(&["GB"]);
    assert!(gb > 0.0);
    assert_eq!(flow(v4, "eu", "us"), gb, "{v4:#}");
    // 10.0.0.0/8 is in no database network: the default (us) before.
    assert_eq!(flow(v4, "us", "ap"), 16_777_216.0, "{v4:#}");
    assert_eq!(v4["moved"].as_f64().unwrap(), gb + 16_777_216.0);
    assert_eq!(v4["total"].as_f64().unwrap(), 4_294_967_296.0);
    assert_eq!(
        flows_total(v4),
        4_294_967_296.0,
        "flows cover every address"
    );
    let top: Vec<(String, String)> = v4["top_moved"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["network"].as_str().unwrap().to_string(),
                n["locations"][0][0].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        top,
        [
            ("10.0.0.0/8".to_string(), "unknown".to_string()),
            ("81.2.69.0/24".to_string(), "GB-ENG".to_string())
        ]
    );
    // Only IPv4 was asked for.
    assert_eq!(
        report["services"][0]["families"].as_array().unwrap().len(),
        1
    );

    // The text report says the same for people.
    let out = run_gslb(&["diff", "-c", old, new]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    for needle in [
        "www.example.test. (changed)",
        "us -> ap",
        "eu -> us",
        "10.0.0.0/8",
        "81.2.69.0/24",
        "GB-ENG",
        "IPv6: nothing moves",
    ] {
        assert!(
            out.stdout.contains(needle),
            "missing {needle:?}:\n{}",
            out.stdout
        );
    }
    assert!(
        out.stderr.is_empty(),
        "diff logs nothing at INFO:\n{}",
        out.stderr
    );

    // Equal configurations: nothing moves.
    let same = diff_json(&["-c", old, old]);
    assert_eq!(same["services"][0]["change"], "unchanged");
}

#[test]
fn issue_21_diff_down_shows_where_a_failed_pools_clients_go() {
    let dir = TempDir::new("diff-down");
    let path = dir.write("gslb.toml", &config("", ""));
    let path = path.to_str().unwrap();
    let report = diff_json(&["-c", path, path, "--family", "4", "--down", "eu"]);
    let v4 = family(&report, WWW, "ipv4");
    // Europe's clients fail over to their second pool, us.
    assert_eq!(
        flow(v4, "eu", "us"),
        demo_ipv4_addresses(&["GB", "SE"]),
        "{v4:#}"
    );
    assert_eq!(v4["moved"].as_f64().unwrap(), flow(v4, "eu", "us"));

    // Load-aware: with capacities, a failed pool's clients spread over the
    // next pools of their order by spare capacity (no demand learned
    // offline: by capacity, us 400 and ap 200).
    let spill = dir.write(
        "spill.toml",
        &config("", "")
            .replace("[pools.eu]\n", "[pools.eu]\ncapacity = 400.0\n")
            .replace("[pools.us]\n", "[pools.us]\ncapacity = 400.0\n")
            .replace("[pools.ap]\n", "[pools.ap]\ncapacity = 200.0\n")
            .replace("EU = [\"eu\", \"us\"]", "EU = [\"eu\", \"us\", \"ap\"]"),
    );
    let spill = spill.to_str().unwrap();
    let report = diff_json(&["-c", spill, spill, "--family", "4", "--down", "eu"]);
    let v4 = family(&report, WWW, "ipv4");
    let europe = demo_ipv4_addresses(&["GB", "SE"]);
    let (to_us, to_ap) = (flow(v4, "eu", "us"), flow(v4, "eu", "ap"));
    assert_eq!(to_us + to_ap, europe, "{v4:#}");
    // Shares are 16-bit hash ranges: 2/3 within one part in 65,536.
    assert!(
        (to_us / europe - 2.0 / 3.0).abs() < 1.0 / 65_536.0,
        "{v4:#}"
    );
    let moved = &v4["top_moved"][0]["moves"];
    assert_eq!(moved.as_array().unwrap().len(), 2, "{v4:#}");
    // And why (issue 24): the split of eu's clients with each receiver's
    // room, in the JSON and the text.
    let why = "eu, us, ap: eu down: us 66.7 % (spare 400 of capacity 400, own demand 0/s), ap 33.3 % (spare 200 of capacity 200, own demand 0/s)";
    let service = report["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == WWW)
        .unwrap();
    assert!(
        service["spill"]
            .as_array()
            .unwrap()
            .iter()
            .any(|line| line == why),
        "{service:#}"
    );
    let text = run_gslb(&["diff", "-c", spill, spill, "--family", "4", "--down", "eu"]);
    assert!(
        text.stdout.contains(&format!("\n  spill: {why}\n")),
        "{}",
        text.stdout
    );

    let out = run_gslb(&["diff", "-c", path, path, "--down", "mars"]);
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stderr
            .contains("--down \"mars\": no such pool or endpoint"),
        "{}",
        out.stderr
    );
}

#[test]
fn issue_21_diff_weighs_a_real_query_log_and_client_lists() {
    let dir = TempDir::new("diff-clients");
    let old = dir.write(
        "old.toml",
        &config("", "\n[query_log]\nenabled = true\nsample_rate = 1.0\n"),
    );
    let new = dir.write(
        "new.toml",
        &config("country = { GB = [\"us\", \"eu\"] }", ""),
    );
    let (old, new) = (old.to_str().unwrap(), new.to_str().unwrap());

    // A day's traffic in miniature, logged by the server the old
    // configuration runs.
    let server = GslbServer::start(&["-c", old, "--api", "127.0.0.1:0"]);
    let queries: [(&str, &str, usize); 4] = [
        ("A", "+subnet=81.2.69.0/24", 3),     // London: eu, moves to us
        ("A", "+subnet=216.160.83.0/24", 2),  // Washington: us, stays
        ("AAAA", "+subnet=2001:218::/32", 1), // Tokyo: ap, stays
        ("MX", "+subnet=81.2.69.0/24", 1),    // not an A/AAAA answer
    ];
    for (qtype, subnet, times) in queries {
        for _ in 0..times {
            dig(server.addr(), &["www.example.test", qtype, subnet]);
        }
    }
    dig(server.addr(), &["mail.example.test", "MX"]);
    let logged = || {
        server
            .stderr()
            .lines()
            .filter(|l| l.contains("gslb::query"))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert!(
        poll_until(Duration::from_secs(20), || logged().len() >= 8),
        "query log:\n{}",
        server.stderr()
    );
    // What an operator would keep: `grep gslb::query`.
    let log = dir.write("queries.log", &(logged().join("\n") + "\n"));
    let report = diff_json(&["-c", old, new, "--clients", log.to_str().unwrap()]);
    let v4 = family(&report, WWW, "ipv4");
    assert_eq!(v4["unit"], "clients");
    assert_eq!(v4["total"].as_f64().unwrap(), 5.0, "{v4:#}");
    assert_eq!(flow(v4, "eu", "us"), 3.0);
    assert_eq!(flow(v4, "us", "us"), 2.0);
    assert_eq!(v4["top_moved"][0]["network"], "81.2.69.0/24");
    assert_eq!(v4["top_moved"][0]["locations"][0][0], "GB-ENG");
    let v6 = family(&report, WWW, "ipv6");
    assert_eq!(v6["total"].as_f64().unwrap(), 1.0);
    assert_eq!(flow(v6, "ap", "ap"), 1.0);

    // Networks with weights: a network is spread over its addresses.
    let csv = dir.write(
        "clients.csv",
        "network,weight\n81.2.69.0/25,10\n216.160.83.0/24,5\n81.2.68.0/23,4\n",
    );
    let report = diff_json(&[
        "-c",
        old,
        new,
        "--clients",
        csv.to_str().unwrap(),
        "--family",
        "4",
    ]);
    let v4 = family(&report, WWW, "ipv4");
    assert_eq!(v4["total"].as_f64().unwrap(), 19.0);
    // All of the /25 and half of the /23 (81.2.69.0/24) are in London.
    assert_eq!(flow(v4, "eu", "us"), 12.0, "{v4:#}");
    assert_eq!(flow(v4, "us", "us"), 7.0);

    // A plain list of networks and addresses, each weighing one.
    let list = dir.write("clients.txt", "# resolvers\n81.2.69.7\n89.160.20.0/24\n");
    let report = diff_json(&[
        "-c",
        old,
        new,
        "--clients",
        list.to_str().unwrap(),
        "--family",
        "4",
    ]);
    let v4 = family(&report, WWW, "ipv4");
    assert_eq!((flow(v4, "eu", "us"), flow(v4, "eu", "eu")), (1.0, 1.0));

    // A line that is none of these: file and line, and nothing else runs.
    let bad = dir.write("bad.txt", "81.2.69.7\nlondon\n");
    let out = run_gslb(&["diff", "-c", old, new, "--clients", bad.to_str().unwrap()]);
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stderr
            .contains(&format!("{}:2: \"london\" is not a network", bad.display())),
        "{}",
        out.stderr
    );
    // A configuration that does not load is named.
    let broken = dir.write("broken.toml", "[pools.eu]\nendpoints = 3\n");
    let out = run_gslb(&["diff", "-c", old, broken.to_str().unwrap()]);
    assert_eq!(out.code(), Some(1));
    assert!(out.stderr.contains("broken.toml"), "{}", out.stderr);
}

fn shared_geoip(name: &str) -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/geoip")
        .join(name);
    if path.exists() {
        Some(path)
    } else {
        println!("skipped: {} not found", path.display());
        None
    }
}

/// IPv4 addresses per country by python3-maxminddb, or why not.
fn python_country_sizes(database: &Path, countries: &[&str]) -> Result<Vec<f64>, String> {
    let out = Command::new("/usr/bin/python3")
        .arg(repo("tests/fixtures/mmdb_country_sizes.py"))
        .arg(database)
        .args(countries)
        .output()
        .map_err(|e| format!("/usr/bin/python3: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1)?.parse().ok())
        .collect())
}

#[test]
fn issue_21_diff_on_the_real_world_database_matches_an_independent_reader() {
    let Some(database) = shared_geoip("geo-whois-asn-country.mmdb") else {
        return;
    };
    let countries = ["GB", "RU", "IN"];
    let expected = match python_country_sizes(&database, &countries) {
        Ok(sizes) if sizes.len() == 3 => sizes,
        other => {
            println!("skipped: python3-maxminddb cannot walk the database: {other:?}");
            return;
        }
    };
    let dir = TempDir::new("diff-realworld");
    let base = format!(
        "[[zone]]\norigin = \"example.test\"\nfile = \"{}\"\n[geoip]\ndatabase = \"{}\"\n{POOLS}\n\
         [services.\"www.example.test\"]\npolicy = \"geo\"\n[services.\"www.example.test\".geo]\n\
         continent = {{ EU = [\"eu\", \"us\"], AF = [\"eu\", \"us\"], NA = [\"us\", \"eu\"], SA = [\"us\", \"eu\"], AS = [\"ap\", \"us\"], OC = [\"ap\", \"us\"] }}\n\
         default = [\"us\"]\n",
        repo("zones/example.test.zone"),
        database.display()
    );
    let old = dir.write(
        "old.toml",
        &format!("{base}country = {{ RU = [\"eu\", \"ap\"] }}\n"),
    );
    let new = dir.write(
        "new.toml",
        &format!("{base}country = {{ RU = [\"ap\", \"eu\"], GB = [\"us\", \"eu\"], IN = [\"eu\", \"ap\"] }}\n"),
    );
    // A debug build is several times slower than the release build CI
    // uses, so the deadline is generous; the time is printed, not judged.
    let started = Instant::now();
    let mut child = gslb_command()
        .args(["diff", "--json", "--family", "4", "-c"])
        .arg(&old)
        .arg(&new)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn gslb");
    let stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut { stdout }, &mut text);
        text
    });
    let deadline = Instant::now() + Duration::from_secs(600);
    while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let out = child.wait_with_output().expect("gslb output");
    let stdout = reader.join().unwrap_or_default();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_str(&stdout).expect("JSON report");
    println!(
        "gslb diff on {}: {:.2} s wall clock ({:.2} s compiling both configurations, {:.2} s comparing)",
        database.display(),
        started.elapsed().as_secs_f64(),
        report["seconds_compiling"].as_f64().unwrap_or(0.0),
        report["seconds_comparing"].as_f64().unwrap_or(0.0),
    );
    let v4 = family(&report, WWW, "ipv4");
    assert_eq!(flow(v4, "eu", "us"), expected[0], "GB: {v4:#}");
    assert_eq!(flow(v4, "eu", "ap"), expected[1], "RU");
    assert_eq!(flow(v4, "ap", "eu"), expected[2], "IN");
    assert_eq!(flows_total(v4), 4_294_967_296.0);
    for network in v4["top_moved"].as_array().unwrap() {
        let country = network["locations"][0][0].as_str().unwrap();
        assert!(countries.contains(&country), "{network:#}");
    }
}

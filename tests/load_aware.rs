//! Load-aware answers end to end (issue 24): the real `gslb` binary probes
//! real HTTP backends (`python3 -m http.server` serving a health file on
//! loopback addresses), a backend is killed, and thousands of client
//! subnets sent as EDNS Client Subnet show how its clients are spread.
//!
//! Every wait is a bounded poll for a state to appear; no timing
//! thresholds. Proportions are checked within a binomial tolerance
//! derived from the number of subnets.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{GslbServer, QueryBuilder, TempDir, ecs_option, http, poll_until, udp_query};

/// Longest wait for an expected change (probes every 200 ms, planner every second).
const DEADLINE: Duration = Duration::from_secs(20);
/// Distinct client /24s queried.
const SUBNETS: usize = 2_000;
const WWW: &str = "www.example.test";

/// `python3 -m http.server` on `ip`, serving `dir` (where the test writes
/// the health body); killed on drop.
struct Backend {
    child: Child,
    port: u16,
}

impl Backend {
    fn start(ip: &str, dir: &TempDir) -> Backend {
        let mut child = Command::new("python3")
            .args(["-u", "-m", "http.server", "0", "--bind", ip, "--directory"])
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 must be installed");
        let stdout = child.stdout.take().expect("piped stdout");
        // "Serving HTTP on 127.0.0.181 port 40123 (http://127.0.0.181:40123/) ..."
        let port = BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find_map(|line| {
                let rest = line.split(" port ").nth(1)?;
                rest.split_whitespace().next()?.parse().ok()
            })
            .expect("http.server prints its port");
        Backend { child, port }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.kill();
    }
}

fn config(zone: &str, pools: &str, service: &str) -> String {
    format!(
        r#"
[[zone]]
origin = "example.test"
file = "{zone}"

[checks.web]
kind = "http"
interval = "200ms"
timeout = "150ms"
fall = 2
rise = 2
path = "/health"
{pools}
[services."{WWW}"]
policy = "failover"
pools = ["a", "b", "c"]
ttl = 5
{service}
"#
    )
}

fn repo(path: &str) -> String {
    format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))
}

fn start(dir: &TempDir, text: &str) -> GslbServer {
    let path = dir.write("gslb.toml", text);
    GslbServer::start(&[
        "-c",
        path.to_str().expect("utf-8 path"),
        "--api",
        "127.0.0.1:0",
    ])
}

/// The A record answered to client subnet `10.X.Y.0/24` number `n`, and
/// the ECS scope of the reply.
fn answer_for(server: &GslbServer, n: usize) -> (String, u8) {
    let subnet = Ipv4Addr::from(0x0a00_0000u32 + ((n as u32) << 8));
    let query = QueryBuilder::new(n as u16, WWW, 1)
        .edns(1232, 0, ecs_option(1, 24, 0, &subnet.octets()[..3]))
        .build();
    let reply = udp_query(server.addr(), &query);
    let address = reply
        .answer
        .iter()
        .find(|r| r.rtype == 1 && r.rdata.len() == 4)
        .map(|r| Ipv4Addr::new(r.rdata[0], r.rdata[1], r.rdata[2], r.rdata[3]).to_string())
        .unwrap_or_default();
    let scope = reply
        .opt()
        .and_then(|opt| opt.rdata.get(7).copied())
        .unwrap_or(0);
    (address, scope)
}

fn answers(server: &GslbServer) -> Vec<String> {
    (0..SUBNETS).map(|n| answer_for(server, n).0).collect()
}

/// [`answers`] at most one query a millisecond: a demand of at most 1,000
/// answers per second whatever the machine.
fn paced_answers(server: &GslbServer) -> Vec<String> {
    (0..SUBNETS)
        .map(|n| {
            std::thread::sleep(Duration::from_millis(1));
            answer_for(server, n).0
        })
        .collect()
}

fn count(answers: &[String]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for a in answers {
        *counts.entry(a.clone()).or_default() += 1;
    }
    counts
}

/// Binomial tolerance: `n` subnets each going to a pool with probability
/// `p` (the subnet hash acting as a fair draw) give a count with standard
/// deviation sqrt(n p (1 - p)); four of them (a 1 in 15,000 chance for a
/// fair hash to fall outside) is the accepted error.
fn within_binomial(count: usize, n: usize, p: f64) -> bool {
    let mean = n as f64 * p;
    let sigma = (n as f64 * p * (1.0 - p)).sqrt();
    (count as f64 - mean).abs() <= 4.0 * sigma
}

#[test]
fn issue_24_a_killed_pools_clients_are_split_by_spare_capacity_and_stay_put() {
    let dir = TempDir::new("load-split");
    let ips = ["127.0.0.181", "127.0.0.182", "127.0.0.183"];
    let mut pools = ThreePools::start(ips, "load-split-health");
    let path = dir.write(
        "gslb.toml",
        &config(
            &repo("zones/example.test.zone"),
            &pools.toml(["capacity = 200.0", "capacity = 300.0", "capacity = 100.0"]),
            r#"spill = "capacity""#,
        ),
    );
    let path = path.to_str().expect("utf-8 path");
    let server = GslbServer::start(&["-c", path, "--api", "127.0.0.1:0"]);
    assert!(poll_until(DEADLINE, || answer_for(&server, 0).0 == ips[0]));
    pools.kill(0);
    // Its clients leave it, and the split reaches the query path (at most a
    // second after the probes' verdict): some subnet lands on c.
    let mut last = Vec::new();
    let split = poll_until(DEADLINE, || {
        last = answers(&server);
        let counts = count(&last);
        !counts.contains_key(ips[0]) && counts.contains_key(ips[2])
    });
    assert!(split, "no split: {:?}", count(&last));
    // That pass may have straddled the split's arrival: measure afresh.
    let last = answers(&server);
    // Neither b nor c has clients of its own: spare = capacity, so
    // b takes 300 / (300 + 100) = 75 % and c 25 %.
    let counts = count(&last);
    let to_b = counts.get(ips[1]).copied().unwrap_or(0);
    let to_c = counts.get(ips[2]).copied().unwrap_or(0);
    assert_eq!(to_b + to_c, SUBNETS, "{counts:?}");
    eprintln!("split over {SUBNETS} subnets: b {to_b}, c {to_c} (expected 1,500 / 500)");
    assert!(
        within_binomial(to_b, SUBNETS, 0.75),
        "b answered {to_b} of {SUBNETS} subnets, expected 1,500 ± {:.0}",
        4.0 * (SUBNETS as f64 * 0.75 * 0.25).sqrt()
    );
    // Nothing changes, so every subnet keeps its pool, query after query.
    for _ in 0..2 {
        assert_eq!(answers(&server), last);
    }
    // The scope covers the hashed /24, so resolvers cache the answer for
    // that subnet only.
    assert_eq!(answer_for(&server, 7).1, 24);

    // /status shows the split and why.
    let spill = spill_status(&server);
    assert_eq!(spill["mode"], "capacity", "{spill}");
    let split = &spill["splits"][0];
    assert_eq!(split["why"], "a down", "{spill}");
    assert_eq!(split["shares"][0]["pool"], "b", "{spill}");
    assert_eq!(split["shares"][0]["percent"], 75.0, "{spill}");
    assert_eq!(split["shares"][1]["pool"], "c", "{spill}");
    assert_eq!(split["shares"][1]["percent"], 25.0, "{spill}");
    let metrics = http(server.api(), "GET", "/metrics", &[], "").body;
    assert!(
        metrics.contains("gslb_pool_capacity{pool=\"b\"} 300"),
        "{metrics}"
    );

    // The live explain says which share of a's clients goes where and why,
    // and where this client lands: where the DNS answer sent it.
    let api = server.api().to_string();
    let out = common::run_gslb(&[
        "explain",
        "-c",
        path,
        "--api",
        &api,
        "--client",
        "10.0.7.0/24",
        WWW,
    ]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert!(
        out.stdout.contains(
            "spill: a, b, c: a down: b 75.0 % (spare 300 of capacity 300, own demand 0/s), c 25.0 % (spare 100 of capacity 100, own demand 0/s)"
        ),
        "{}",
        out.stdout
    );
    let landed = if answer_for(&server, 7).0 == ips[1] {
        "b"
    } else {
        "c"
    };
    assert!(
        out.stdout
            .contains("spill: client subnet 10.0.7.0/24 hashes to position ")
            && out.stdout.contains(&format!("of 65536: pool {landed}")),
        "{}",
        out.stdout
    );
}

/// A drained pool is out like a failed one: its clients spill by spare
/// capacity, and come back when the drain is lifted.
#[test]
fn issue_24_a_drained_pools_clients_spill_and_return() {
    let dir = TempDir::new("load-drain");
    let pools = r#"
[pools.a]
capacity = 200.0
endpoints = [{ address = "192.0.2.1" }]
[pools.b]
capacity = 100.0
endpoints = [{ address = "192.0.2.2" }]
[pools.c]
capacity = 100.0
endpoints = [{ address = "192.0.2.3" }]
"#;
    let server = start(&dir, &config(&repo("zones/example.test.zone"), pools, ""));
    assert!(poll_until(DEADLINE, || answer_for(&server, 0).0 == "192.0.2.1"));
    let drain = server.admin("POST", "/override", &[], r#"{"pool":"a","state":"drain"}"#);
    assert_eq!(drain.status, 200, "{}", drain.body);
    let mut last = Vec::new();
    let split = poll_until(DEADLINE, || {
        last = answers(&server);
        let counts = count(&last);
        !counts.contains_key("192.0.2.1") && counts.contains_key("192.0.2.3")
    });
    assert!(split, "no split: {:?}", count(&last));
    // Equal spare room: half each.
    let counts = count(&answers(&server));
    let to_b = counts.get("192.0.2.2").copied().unwrap_or(0);
    assert!(within_binomial(to_b, SUBNETS, 0.5), "{counts:?}");
    assert_eq!(spill_status(&server)["splits"][0]["why"], "a down");
    let up = server.admin("POST", "/override", &[], r#"{"pool":"a","state":"none"}"#);
    assert_eq!(up.status, 200, "{}", up.body);
    assert!(poll_until(DEADLINE, || {
        count(&answers(&server)).get("192.0.2.1") == Some(&SUBNETS)
    }));
}

/// Three pools a, b, c on their own loopback addresses, each with a real
/// backend; `extra[i]` goes into pool i's section (capacity, overflow_at).
struct ThreePools {
    backends: Vec<Backend>,
    ips: [&'static str; 3],
    _health: TempDir,
}

impl ThreePools {
    fn start(ips: [&'static str; 3], label: &str) -> ThreePools {
        let health = TempDir::new(label);
        health.write("health", "ok\n");
        let backends = ips.iter().map(|ip| Backend::start(ip, &health)).collect();
        ThreePools {
            backends,
            ips,
            _health: health,
        }
    }

    fn toml(&self, extra: [&str; 3]) -> String {
        let mut out = String::new();
        for (i, name) in ["a", "b", "c"].iter().enumerate() {
            out.push_str(&format!(
                "[pools.{name}]\ncheck = \"web\"\n{}\nendpoints = [{{ address = \"{}\", check_port = {} }}]\n",
                extra[i], self.ips[i], self.backends[i].port
            ));
        }
        out
    }

    fn kill(&mut self, pool: usize) {
        self.backends[pool].kill();
    }
}

/// The `spill` section of service www in `/status` (null when it has none).
fn spill_status(server: &GslbServer) -> serde_json::Value {
    let status = http(server.api(), "GET", "/status", &[], "").json();
    status["services"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == "www.example.test."))
        .map(|s| s["spill"].clone())
        .unwrap_or_default()
}

/// Classic failover, checked twice: without capacities (`spill` defaults
/// to `ordered` and no load rules exist) and with capacities but `spill =
/// "ordered"`. Either way a killed pool's clients all go to the next pool,
/// with the ECS scope they had before (no subnet hashing), and `/status`
/// shows no spill.
#[test]
fn issue_24_ordered_spill_keeps_classic_failover() {
    for (case, ips, extra, service) in [
        (
            "no capacities",
            ["127.0.0.184", "127.0.0.185", "127.0.0.186"],
            ["", "", ""],
            "",
        ),
        (
            "capacities, spill = ordered",
            ["127.0.0.188", "127.0.0.189", "127.0.0.190"],
            ["capacity = 200.0", "capacity = 300.0", "capacity = 100.0"],
            r#"spill = "ordered""#,
        ),
    ] {
        let dir = TempDir::new("load-ordered");
        let mut pools = ThreePools::start(ips, "load-ordered-health");
        let server = start(
            &dir,
            &config(
                &repo("zones/example.test.zone"),
                &pools.toml(extra),
                service,
            ),
        );
        assert!(
            poll_until(DEADLINE, || answer_for(&server, 0).0 == ips[0]),
            "{case}"
        );
        let scope_before = answer_for(&server, 7).1;
        pools.kill(0);
        assert!(
            poll_until(DEADLINE, || answer_for(&server, 0).0 == ips[1]),
            "{case}"
        );
        let counts = count(&answers(&server));
        assert_eq!(counts.get(ips[1]), Some(&SUBNETS), "{case}: {counts:?}");
        assert_eq!(answer_for(&server, 7).1, scope_before, "{case}: scope");
        assert!(spill_status(&server).is_null(), "{case}");
        let metrics = http(server.api(), "GET", "/metrics", &[], "").body;
        assert_eq!(
            metrics.contains("gslb_pool_capacity{"),
            !extra[0].is_empty(),
            "{case}"
        );
    }
}

/// NS1's `shed_load`: a pool whose own demand, learned from the answers it
/// gives, is above `overflow_at` × capacity keeps the share of its clients
/// its overflow share covers and sheds the rest to its fallback — the top
/// of the subnet-hash range, so the clients shed stay shed as the overload
/// grows. The demand here is the test's own queries, so the share kept is
/// not known in advance: the answers are checked against the split
/// `/status` published before and after each pass, within a binomial
/// tolerance of 4 standard deviations over the 2,000 subnets, and each
/// subnet's side of the split against its hash position as explain shows it.
#[test]
fn issue_24_a_pool_over_its_overflow_share_sheds_its_newest_clients_to_its_fallback() {
    let dir = TempDir::new("load-shed");
    let ips = ["127.0.0.191", "127.0.0.192", "127.0.0.193"];
    let pools = ThreePools::start(ips, "load-shed-health");
    // a sheds above 100 answers per second (the paced passes ask up to
    // 1,000: it keeps at least a tenth); b and c have room to spare.
    let server = start(
        &dir,
        &config(
            &repo("zones/example.test.zone"),
            &pools.toml([
                "capacity = 200.0\noverflow_at = 0.5",
                "capacity = 10000.0",
                "capacity = 10000.0",
            ]),
            r#"spill = "ordered""#,
        ),
    );
    assert!(poll_until(DEADLINE, || answer_for(&server, 0).0 == ips[0]));
    // The kept share of a, in percent, when a split sheds from it.
    let kept = |server: &GslbServer| {
        spill_status(server)["splits"]
            .as_array()
            .and_then(|splits| {
                splits.iter().find_map(|s| {
                    let shares = s["shares"].as_array()?;
                    let first = shares.first()?;
                    (first["pool"] == "a" && first["kept"] == true)
                        .then(|| first["percent"].as_f64())?
                })
            })
    };
    // Every pass of 2,000 queries is demand for a: query until a sheds a
    // tenth or more of its clients (past 111 answers per second).
    let mut passes = 0;
    let shedding = poll_until(Duration::from_secs(30), || {
        passes += 1;
        let _ = paced_answers(&server);
        kept(&server).is_some_and(|k| k <= 90.0)
    });
    assert!(
        shedding,
        "a never shed after {passes} passes: {}",
        spill_status(&server)
    );
    let split = spill_status(&server);
    let text = split["splits"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        text.starts_with("a, b, c: a over 50 % of its capacity: a "),
        "{text}"
    );
    assert!(text.contains("(kept: own demand "), "{text}");
    assert_eq!(split["splits"][0]["shares"][1]["pool"], "b", "{split}");
    assert_eq!(
        split["splits"][0]["shares"].as_array().map(Vec::len),
        Some(2),
        "{split}"
    );

    for _ in 0..2 {
        let before = kept(&server).unwrap_or(100.0);
        let answers = paced_answers(&server);
        let after = kept(&server).unwrap_or(100.0);
        let counts = count(&answers);
        let on_a = counts.get(ips[0]).copied().unwrap_or(0);
        let on_b = counts.get(ips[1]).copied().unwrap_or(0);
        // Shed to the fallback only (ordered spill): none to c.
        assert_eq!(on_a + on_b, SUBNETS, "{counts:?}");
        let (low, high) = (before.min(after) / 100.0, before.max(after) / 100.0);
        let sigma = |p: f64| (SUBNETS as f64 * p * (1.0 - p)).sqrt();
        let share = on_a as f64;
        eprintln!(
            "kept by a: {on_a} of {SUBNETS} subnets; /status said {before} % before, {after} % after"
        );
        assert!(
            share >= SUBNETS as f64 * low - 4.0 * sigma(low)
                && share <= SUBNETS as f64 * high + 4.0 * sigma(high),
            "a kept {on_a} of {SUBNETS}, published {before} % .. {after} %"
        );
        assert!(on_b > 0, "{counts:?}");
    }
    // What it sheds is the top of the subnet-hash range: the live explain
    // gives, from one health view, a subnet's position, its pool and the
    // split, and every subnet below the kept share's bound stays on a,
    // every one above goes to b (the percentage is rounded to 0.1 %, 66
    // positions).
    for n in 0..50 {
        let query = format!("/explain?client=10.0.{n}.0/24&name={WWW}");
        let out = http(server.api(), "GET", &query, &[], "").body;
        let position = out
            .split("hashes to position ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|p| p.parse::<f64>().ok());
        let pool = out
            .split("of 65536: pool ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next());
        let kept = out
            .split("of its capacity: a ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|p| p.parse::<f64>().ok());
        let (Some(position), Some(pool), Some(kept)) = (position, pool, kept) else {
            panic!("no split in the explain of subnet {n}: {out}");
        };
        let bound = kept / 100.0 * 65536.0;
        match pool {
            "a" => assert!(position < bound + 66.0, "{out}"),
            "b" => assert!(position >= bound - 66.0, "{out}"),
            other => panic!("subnet {n} went to {other}: {out}"),
        }
    }
    let metrics = http(server.api(), "GET", "/metrics", &[], "").body;
    let demand = metrics
        .lines()
        .find_map(|l| l.strip_prefix("gslb_pool_demand{pool=\"a\"} "))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(demand > 100.0, "a's learned demand {demand}: {metrics}");
}

#[test]
fn issue_24_json_reduce_lowers_the_effective_weight_linearly() {
    let dir = TempDir::new("load-reduce");
    let health = TempDir::new("load-reduce-health");
    health.write("health", r#"{"status":"healthy","connections":750}"#);
    let backend = Backend::start("127.0.0.187", &health);
    let text = format!(
        r#"
[[zone]]
origin = "example.test"
file = "{}"

[checks.json]
kind = "http"
interval = "200ms"
timeout = "150ms"
fall = 2
rise = 2
path = "/health"
[checks.json.json]
reduce = {{ connections = [500.0, 1000.0] }}
down_when = {{ connections = 2000.0 }}
[pools.a]
check = "json"
endpoints = [{{ address = "127.0.0.187", check_port = {}, weight = 4 }}]
[services."{WWW}"]
policy = "failover"
pools = ["a"]
all_down = "nodata"
"#,
        repo("zones/example.test.zone"),
        backend.port
    );
    let server = start(&dir, &text);
    let endpoint = |server: &GslbServer| {
        let status = http(server.api(), "GET", "/status", &[], "").json();
        status["pools"]
            .as_array()
            .and_then(|p| p.iter().find(|p| p["name"] == "a"))
            .and_then(|p| p["endpoints"].get(0).cloned())
            .unwrap_or_default()
    };
    // 750 is half way from 500 to 1,000: half the weight.
    let halved = poll_until(DEADLINE, || endpoint(&server)["weight_percent"] == 50);
    assert!(halved, "{}", endpoint(&server));
    assert_eq!(endpoint(&server)["effective_weight"], 2.0);
    let metrics = http(server.api(), "GET", "/metrics", &[], "").body;
    assert!(
        metrics.contains("gslb_endpoint_effective_weight{pool=\"a\",endpoint=\"a/127.0.0.187\"} 2"),
        "{metrics}"
    );
    health.write("health", r#"{"status":"healthy","connections":900}"#);
    assert!(poll_until(DEADLINE, || endpoint(&server)["weight_percent"] == 20));
    // Past the hard limit, down_when takes it out.
    health.write("health", r#"{"status":"healthy","connections":2500}"#);
    assert!(poll_until(DEADLINE, || answer_for(&server, 1).0.is_empty()));
}

#[test]
fn issue_24_explain_shows_the_split_and_check_rejects_bad_keys() {
    let dir = TempDir::new("load-explain");
    let pools = r#"
[pools.a]
capacity = 200.0
endpoints = [{ address = "192.0.2.1" }]
[pools.b]
capacity = 300.0
endpoints = [{ address = "192.0.2.2" }]
[pools.c]
capacity = 100.0
endpoints = [{ address = "192.0.2.3" }]
"#;
    let path = dir.write(
        "gslb.toml",
        &config(&repo("zones/example.test.zone"), pools, ""),
    );
    let path = path.to_str().expect("utf-8 path");
    let out = common::run_gslb(&[
        "explain",
        "--offline",
        "-c",
        path,
        "--client",
        "10.0.7.0/24",
        WWW,
    ]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    // Every primary pool has a capacity: spill = "capacity" by default.
    assert!(
        out.stdout.contains(
            "spill (capacity): if a fails, its clients go b 75.0 % (spare 300 of capacity 300, own demand 0/s), c 25.0 % (spare 100 of capacity 100, own demand 0/s)"
        ),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("spill: this client (hash of 10.0.7.0/24, position"),
        "{}",
        out.stdout
    );

    let bad = r#"
[pools.a]
capacity = -1.0
endpoints = [{ address = "192.0.2.1" }]
[pools.b]
overflow_at = 0.9
endpoints = [{ address = "192.0.2.2" }]
[pools.c]
capacity = 100.0
overflow_at = 1.5
endpoints = [{ address = "192.0.2.3" }]
"#;
    let path = dir.write(
        "bad.toml",
        &config(
            &repo("zones/example.test.zone"),
            bad,
            r#"spill = "capacity""#,
        ),
    );
    let out = common::run_gslb(&["check", "-c", path.to_str().expect("utf-8 path")]);
    assert_eq!(out.code(), Some(1), "{}", out.stdout);
    for wanted in [
        "capacity -1 of pool a must be a number above zero",
        "overflow_at of pool b is a share of its capacity: add `capacity` to the pool",
        "overflow_at 1.5 of pool c must be a share of the capacity in (0, 1]",
    ] {
        assert!(out.stderr.contains(wanted), "{wanted}: {}", out.stderr);
    }
    // The pools with errors are not built, so the service names them as unknown
    // or its spill check reports them; either way check fails with lines.
    assert!(out.stderr.contains("bad.toml:"), "{}", out.stderr);

    // A measured order is the same for every client: nothing to split.
    let fastest = config(&repo("zones/example.test.zone"), pools, "overflow_at = 0.9")
        .replace(r#"policy = "failover""#, r#"policy = "fastest""#);
    let path = dir.write("fastest.toml", &fastest);
    let out = common::run_gslb(&["check", "-c", path.to_str().expect("utf-8 path")]);
    assert_eq!(out.code(), Some(1), "{}", out.stdout);
    assert!(
        out.stderr.contains(
            "overflow_at in service www.example.test. cannot follow policy = \"fastest\""
        ),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("fastest.toml:"), "{}", out.stderr);
}

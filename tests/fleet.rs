//! Fleet configuration through a real etcd (issue 22): `gslb publish`,
//! `versions`, `rollback` and `diff` against etcd started on free loopback
//! ports with a temporary data dir, and real `gslb` members with `[cluster]
//! config = "etcd"` answering `dig`.
//!
//! Every wait is a bounded poll for an answer or a status to change; no
//! timing thresholds. Each test skips (with a message) when `etcd` is not
//! installed; CI installs it (`.ci/run`).

mod common;
use common::browser::{chromium, chromium_command, run_bounded};
use common::etcd::EtcdServer;
use common::{GslbServer, TempDir, dig, http, poll_until, run_gslb};

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Longest wait for any expected change (debug builds on a busy machine;
/// a failed version is retried every 15 s).
const DEADLINE: Duration = Duration::from_secs(45);
const NAME: &str = "www.example.test";
/// A latency service: clients in 10.0.0.0/8 go where `latency.csv` says.
const LATENCY_NAME: &str = "lat.example.test";
const LATENCY_TABLE: &str = "prefix,region,ms\n10.0.0.0/8,alt,5\n";
const ZONE: &str = "$ORIGIN example.test.\n$TTL 300\n@ IN SOA ns1 hostmaster 1 7200 900 1209600 300\n@ IN NS ns1\nns1 IN A 192.0.2.53\n";

/// The configuration published: `www` answers `address`, `lat` the pool
/// `latency.csv` names for 10.0.0.0/8 (else `main`); `geoip` adds a
/// `[geoip]` section naming `geo/city.mmdb` beside the file.
fn fleet_config(etcd: &EtcdServer, prefix: &str, address: &str, geoip: bool) -> String {
    let geoip = if geoip {
        "[geoip]\ndatabase = \"geo/city.mmdb\"\n"
    } else {
        ""
    };
    format!(
        r#"[server]
api_require_token = false

[[zone]]
origin = "example.test"
file = "zones/example.test.zone"

{geoip}
[pools.main]
endpoints = [{{ address = "{address}" }}]
[pools.alt]
endpoints = [{{ address = "198.51.100.7" }}]

[services."{NAME}"]
policy = "failover"
pools = ["main"]
ttl = 5

[services."{LATENCY_NAME}"]
policy = "latency"
pools = ["main", "alt"]
latency_table = "latency.csv"
ttl = 5

[cluster]
name = "publisher"
etcd = ["{}"]
prefix = "{prefix}"
"#,
        etcd.url()
    )
}

/// The operator's side: a directory with the configuration to publish.
struct Publisher {
    dir: TempDir,
    etcd_url: String,
}

impl Publisher {
    fn new(etcd: &EtcdServer) -> Publisher {
        let dir = TempDir::new("publisher");
        std::fs::create_dir_all(dir.path().join("zones")).unwrap();
        dir.write("zones/example.test.zone", ZONE);
        dir.write("latency.csv", LATENCY_TABLE);
        Publisher {
            dir,
            etcd_url: etcd.url(),
        }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("gslb.toml")
    }

    fn write(&self, text: &str) {
        std::fs::write(self.config(), text).unwrap();
    }

    fn run(&self, args: &[&str]) -> common::CommandOutput {
        let config = self.config();
        let mut all = args.to_vec();
        all.extend(["-c", config.to_str().unwrap()]);
        run_gslb(&all)
    }

    /// Publishes and returns the new version's number.
    fn publish(&self, message: &str) -> u64 {
        published_version(&self.publish_line(message))
    }

    /// Publishes and returns what `publish` printed.
    fn publish_line(&self, message: &str) -> String {
        let out = self.run(&["publish", "--message", message]);
        assert_eq!(out.code(), Some(0), "publish failed:\n{}", out.stderr);
        out.stdout
    }
}

/// The digest (short) and publisher of `published version N (B bytes,
/// digest D, by WHO)`.
fn digest_and_by(line: &str) -> (String, String) {
    let field = |name: &str| {
        line.split_once(name)
            .map(|(_, rest)| rest.trim_end().trim_end_matches(')'))
            .and_then(|rest| rest.split([',', ' ']).next())
            .unwrap_or_else(|| panic!("no {name:?} in {line:?}"))
            .to_string()
    };
    (field("digest "), field("by "))
}

/// The 1-based number of the line of `path` holding `text`.
fn publisher_text_line(path: &Path, text: &str) -> usize {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .position(|l| l.contains(text))
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("{text:?} not in {}", path.display()))
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn published_version(stdout: &str) -> u64 {
    stdout
        .strip_prefix("published version ")
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no version number in {stdout:?}"))
}

/// A member: its own file holds only `[server]` and `[cluster]`.
struct Member {
    name: String,
    dir: TempDir,
    server: Option<GslbServer>,
}

impl Member {
    fn start(index: u8, etcd_url: &str, prefix: &str) -> Member {
        let name = format!("ns{index}");
        let dir = TempDir::new(&name);
        dir.write(
            "gslb.toml",
            &format!(
                r#"[server]
api = "127.0.0.1:0"
api_require_token = false

[cluster]
name = "{name}"
etcd = ["{etcd_url}"]
prefix = "{prefix}"
member_ttl = "2s"
config = "etcd"
"#
            ),
        );
        let mut member = Member {
            name,
            dir,
            server: None,
        };
        member.spawn();
        member
    }

    fn spawn(&mut self) {
        let config = self.dir.path().join("gslb.toml");
        self.server = Some(GslbServer::start(&["-c", config.to_str().unwrap()]));
    }

    fn kill(&mut self) {
        self.server = None;
    }

    fn server(&self) -> &GslbServer {
        self.server.as_ref().expect("member running")
    }

    fn answers(&self) -> Vec<String> {
        dig(self.server().addr(), &[NAME, "A"]).sorted_rdata()
    }

    /// What the latency service answers a client in 10.0.0.0/8.
    fn latency_answers(&self) -> Vec<String> {
        dig(
            self.server().addr(),
            &[LATENCY_NAME, "A", "+subnet=10.1.2.0/24"],
        )
        .sorted_rdata()
    }

    fn wait_for(&self, want: &str) {
        let mut last = Vec::new();
        let ok = poll_until(DEADLINE, || {
            last = self.answers();
            last == [want]
        });
        assert!(
            ok,
            "{}: wanted {want}, still {last:?}\n{}",
            self.name,
            self.server().stderr()
        );
    }

    fn status(&self) -> serde_json::Value {
        let reply = http(self.server().api(), "GET", "/status", &[], "");
        serde_json::from_str(&reply.body).expect("/status is JSON")
    }

    fn metrics(&self) -> String {
        http(self.server().api(), "GET", "/metrics", &[], "").body
    }

    /// The status page as headless Chromium renders it; `None` (with a
    /// message) when Chromium is not installed.
    fn page_dom(&self) -> Option<String> {
        let Some(browser) = chromium() else {
            eprintln!(
                "skipped the page check: chromium is not installed (apt-get install chromium)"
            );
            return None;
        };
        let mut dump = chromium_command(&browser, &self.dir.path().join("chromium-profile"));
        dump.arg("--dump-dom")
            .arg(format!("http://{}/", self.server().api()));
        Some(run_bounded(dump).0)
    }

    /// The cluster's view of `member` in this member's /status.
    fn member_view(&self, member: &str) -> serde_json::Value {
        self.status()["cluster"]["members"]
            .as_array()
            .and_then(|list| list.iter().find(|m| m["name"] == member).cloned())
            .unwrap_or(serde_json::Value::Null)
    }
}

/// The metric's value (unlabelled).
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
}

fn copy_demo_db(to: &Path) {
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("geoip/demo-city.mmdb");
    std::fs::copy(demo, to).unwrap();
}

#[test]
fn publish_reaches_every_member_and_bad_racing_and_rolled_back_versions_behave() {
    let Some(etcd) = EtcdServer::start() else {
        return;
    };
    let prefix = "/gslb/t1";
    let publisher = Publisher::new(&etcd);
    publisher.write(&fleet_config(&etcd, prefix, "192.0.2.1", false));
    assert_eq!(publisher.publish("first"), 1);
    let members: Vec<Member> = (1..=3)
        .map(|i| Member::start(i, &publisher.etcd_url, prefix))
        .collect();
    for member in &members {
        member.wait_for("192.0.2.1");
        // The bundled latency table is the one served.
        assert_eq!(member.latency_answers(), ["198.51.100.7"]);
    }

    // A change reaches all three: the TOML, the zone file and the latency
    // table.
    publisher.write(&fleet_config(&etcd, prefix, "192.0.2.2", false));
    publisher.dir.write(
        "zones/example.test.zone",
        &format!("{ZONE}txt IN TXT \"v2\"\n"),
    );
    publisher
        .dir
        .write("latency.csv", &LATENCY_TABLE.replace(",alt,", ",main,"));
    let before = unix_now().floor();
    let line = publisher.publish_line("move to .2");
    let after = unix_now().ceil();
    assert_eq!(published_version(&line), 2);
    let (digest, by) = digest_and_by(&line);
    for member in &members {
        member.wait_for("192.0.2.2");
        assert_eq!(member.latency_answers(), ["192.0.2.2"]);
        assert_eq!(
            dig(member.server().addr(), &["txt.example.test", "TXT"]).sorted_rdata(),
            ["\"v2\""]
        );
    }
    // Every member's record says it runs version 2, since it took it.
    assert!(
        poll_until(DEADLINE, || {
            members[0].status()["cluster"]["members"]
                .as_array()
                .is_some_and(|list| {
                    list.len() == 3
                        && list.iter().all(|m| {
                            m["config_version"] == 2
                                && m["config_since_unix"].as_f64().is_some_and(|t| t >= before)
                        })
                })
        }),
        "{}",
        members[0].status()["cluster"]
    );
    let versions = publisher.run(&["versions"]);
    assert_eq!(versions.code(), Some(0), "{}", versions.stderr);
    let lines: Vec<&str> = versions.stdout.lines().collect();
    // Number, time (UTC), who, digest, which members run it, message.
    let fields: Vec<&str> = lines[0].split("  ").collect();
    assert_eq!(fields[0], "2", "{}", versions.stdout);
    assert!(
        fields[1].len() == "2026-12-06 13:40:01 UTC".len() && fields[1].ends_with(" UTC"),
        "{}",
        versions.stdout
    );
    assert_eq!(
        fields[2..],
        [
            by.as_str(),
            digest.as_str(),
            "running on ns1,ns2,ns3",
            "move to .2"
        ],
        "{}",
        versions.stdout
    );
    assert!(lines[1].starts_with("1 "), "{}", versions.stdout);
    let json: serde_json::Value =
        serde_json::from_str(&publisher.run(&["versions", "--json"]).stdout).unwrap();
    assert_eq!(json["newest"], 2);
    let v2 = &json["versions"][0];
    assert_eq!(
        (&v2["version"], &v2["message"], &v2["by"]),
        (&2.into(), &"move to .2".into(), &by.as_str().into()),
        "{v2}"
    );
    assert!(
        v2["digest"]
            .as_str()
            .is_some_and(|d| d.len() == 64 && d.starts_with(&digest)),
        "{v2}"
    );
    let published = v2["published_unix"].as_f64().unwrap();
    assert!((before..=after).contains(&published), "{v2}");
    assert_eq!(v2["running_on"], serde_json::json!(["ns1", "ns2", "ns3"]));
    assert_eq!(json["versions"][1]["running_on"], serde_json::json!([]));
    let members_json = json["members"].as_array().unwrap();
    assert!(
        members_json.len() == 3
            && members_json
                .iter()
                .all(|m| m["version"] == 2 && m["behind"] == 0 && m["lagging"] == false),
        "{json}"
    );
    let diff = publisher.run(&["diff", "1", "2"]);
    assert_eq!(diff.code(), Some(0), "{}", diff.stderr);
    assert!(
        diff.stdout
            .contains("-endpoints = [{ address = \"192.0.2.1\" }]\n+endpoints = [{ address = \"192.0.2.2\" }]\n"),
        "{}",
        diff.stdout
    );
    assert!(
        diff.stdout.contains("zone file zones/example.test.zone:\n")
            && diff.stdout.contains("\n+txt IN TXT \"v2\"\n")
            && diff
                .stdout
                .contains("latency table latency.csv:\n--- 1/latency.csv\n+++ 2/latency.csv\n")
            && diff
                .stdout
                .contains("\n-10.0.0.0/8,alt,5\n+10.0.0.0/8,main,5\n"),
        "{}",
        diff.stdout
    );

    // With --db the client-movement report of `gslb diff -c OLD NEW`
    // follows, on both versions built here.
    let moves = publisher.run(&["diff", "1", "2", "--db"]);
    assert_eq!(moves.code(), Some(0), "{}", moves.stderr);
    assert!(
        moves
            .stdout
            .contains("+endpoints = [{ address = \"192.0.2.2\" }]")
            && moves.stdout.contains("old: version 1\nnew: version 2\n")
            && moves.stdout.contains(NAME),
        "{}",
        moves.stdout
    );

    // With --clients FILE, only those clients are weighed: the latency
    // table moved 10.0.0.0/8 from alt to main.
    publisher.dir.write("clients.txt", "10.1.2.0/24\n");
    let clients = publisher.dir.path().join("clients.txt");
    let moved = publisher.run(&["diff", "1", "2", "--clients", clients.to_str().unwrap()]);
    assert_eq!(moved.code(), Some(0), "{}", moved.stderr);
    assert!(
        moved.stdout.contains(
            "lat.example.test. (changed)\n  IPv4: 100.00% of the clients move (1 of 1 clients"
        ) && moved.stdout.contains("alt -> main"),
        "{}",
        moved.stdout
    );

    // A configuration that does not check is refused and reaches nobody.
    let good = fleet_config(&etcd, prefix, "192.0.2.3", false);
    publisher.write(&good.replace("pools = [\"main\"]", "pools = [\"nowhere\"]"));
    let refused = publisher.run(&["publish", "-m", "broken"]);
    assert_eq!(refused.code(), Some(1), "{}", refused.stdout);
    let config = publisher.config();
    let line = publisher_text_line(&config, "pools = [\"nowhere\"]");
    assert!(
        refused.stderr.contains(&format!(
            "{}:{line}:10: unknown pool \"nowhere\"",
            config.display()
        )),
        "{}",
        refused.stderr
    );
    let json: serde_json::Value =
        serde_json::from_str(&publisher.run(&["versions", "--json"]).stdout).unwrap();
    assert_eq!(json["newest"], 2, "the refused config was not published");
    for member in &members {
        assert_eq!(member.answers(), ["192.0.2.2"]);
    }

    // Rollback: version 1 again, as version 3.
    let rollback = publisher.run(&["rollback", "1"]);
    assert_eq!(rollback.code(), Some(0), "{}", rollback.stderr);
    assert_eq!(published_version(&rollback.stdout), 3);
    for member in &members {
        member.wait_for("192.0.2.1");
    }
    let versions = publisher.run(&["versions"]).stdout;
    assert!(
        versions.lines().next().is_some_and(
            |l| l.starts_with("3 ") && l.ends_with("  (rollback to 1)  rollback to version 1")
        ),
        "{versions}"
    );

    // Two publishes racing from version 3: exactly one wins.
    publisher.write(&good);
    let config = config.to_str().unwrap().to_string();
    let racers: Vec<std::thread::JoinHandle<common::CommandOutput>> = (0..2)
        .map(|i| {
            let config = config.clone();
            std::thread::spawn(move || {
                run_gslb(&[
                    "publish",
                    "-c",
                    &config,
                    "--expect-version",
                    "3",
                    "-m",
                    &format!("racer {i}"),
                ])
            })
        })
        .collect();
    let results: Vec<common::CommandOutput> =
        racers.into_iter().map(|r| r.join().unwrap()).collect();
    let winners: Vec<&common::CommandOutput> =
        results.iter().filter(|r| r.code() == Some(0)).collect();
    let losers: Vec<&common::CommandOutput> =
        results.iter().filter(|r| r.code() != Some(0)).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    assert_eq!(published_version(&winners[0].stdout), 4);
    assert!(
        losers[0].stderr.contains("nothing was published")
            && (losers[0].stderr.contains("another publish won the race")
                || losers[0].stderr.contains("the newest version is 4, not 3")),
        "{}",
        losers[0].stderr
    );
    for member in &members {
        member.wait_for("192.0.2.3");
    }
}

#[test]
fn a_member_missing_a_database_stays_on_its_version_and_reports_it() {
    let Some(etcd) = EtcdServer::start() else {
        return;
    };
    let prefix = "/gslb/t2";
    let publisher = Publisher::new(&etcd);
    publisher.write(&fleet_config(&etcd, prefix, "192.0.2.1", false));
    publisher.publish("no database yet");
    let members: Vec<Member> = (1..=3)
        .map(|i| Member::start(i, &publisher.etcd_url, prefix))
        .collect();
    for member in &members {
        member.wait_for("192.0.2.1");
    }
    // Version 2 reads geo/city.mmdb: ns1 has the publisher's copy, ns2 a
    // different build of it, ns3 none.
    copy_demo_db(&publisher.dir.path().join("geo/city.mmdb"));
    copy_demo_db(&members[0].dir.path().join("geo/city.mmdb"));
    let other = members[1].dir.path().join("geo/city.mmdb");
    std::fs::create_dir_all(other.parent().unwrap()).unwrap();
    let csv = Path::new(env!("CARGO_MANIFEST_DIR")).join("geoip/demo-city.csv");
    let built = run_gslb(&[
        "geoip",
        "build",
        "--build-epoch",
        "1700000001",
        csv.to_str().unwrap(),
        other.to_str().unwrap(),
    ]);
    assert_eq!(built.code(), Some(0), "{}", built.stderr);
    publisher.write(&fleet_config(&etcd, prefix, "192.0.2.2", true));
    assert_eq!(publisher.publish("with a database"), 2);
    members[0].wait_for("192.0.2.2");
    members[1].wait_for("192.0.2.2");

    // ns3 keeps version 1 and says why: its /status, metrics, log, record.
    let ns3 = &members[2];
    assert!(
        poll_until(DEADLINE, || ns3.status()["fleet"]["failed"]["version"] == 2),
        "{}",
        ns3.status()["fleet"]
    );
    assert_eq!(ns3.answers(), ["192.0.2.1"]);
    let fleet = ns3.status()["fleet"].clone();
    assert_eq!(fleet["version"], 1, "{fleet}");
    assert!(
        fleet["failed"]["errors"].to_string().contains("city.mmdb"),
        "{fleet}"
    );
    let metrics = ns3.metrics();
    assert_eq!(metric(&metrics, "gslb_config_version"), Some(1.0));
    assert_eq!(metric(&metrics, "gslb_config_version_failed"), Some(2.0));
    assert!(
        ns3.server()
            .stderr()
            .contains("configuration version 2 does not build on this member"),
        "{}",
        ns3.server().stderr()
    );
    assert!(
        poll_until(DEADLINE, || {
            members[0].member_view("ns3")["config_failed"]["version"] == 2
        }),
        "{}",
        members[0].member_view("ns3")
    );
    // The status page shows each member's version, ns3's failure marked.
    if let Some(dom) = members[0].page_dom() {
        assert!(dom.contains("v2 since"), "{dom}");
        assert!(
            dom.contains("v1 since") && dom.contains("v2 FAILED"),
            "{dom}"
        );
        assert!(
            dom.contains("serving published version 2 (from etcd)"),
            "{dom}"
        );
    }
    let versions = publisher.run(&["versions"]);
    assert!(
        versions
            .stdout
            .lines()
            .next()
            .is_some_and(|l| l.starts_with("2 ")
                && l.contains("running on ns1,ns2")
                && l.contains("FAILED on ns3")),
        "{}",
        versions.stdout
    );
    // ns2's database differs from the published one: served, and reported.
    let ns2 = &members[1];
    assert!(
        poll_until(DEADLINE, || {
            ns2.status()["fleet"]["local_files"]
                .to_string()
                .contains("differs from the published one")
        }),
        "{}",
        ns2.status()["fleet"]
    );
    assert_eq!(
        metric(&ns2.metrics(), "gslb_config_local_files_differing"),
        Some(1.0)
    );

    // Version 3 needs the database too: ns3 is two behind, and not flagged
    // before a minute has passed.
    publisher.write(&fleet_config(&etcd, prefix, "192.0.2.3", true));
    assert_eq!(publisher.publish("again with a database"), 3);
    members[0].wait_for("192.0.2.3");
    members[1].wait_for("192.0.2.3");
    assert!(
        poll_until(DEADLINE, || {
            let ns3 = members[0].member_view("ns3");
            ns3["config_behind"] == 2 && ns3["config_failed"]["version"] == 3
        }),
        "{}",
        members[0].member_view("ns3")
    );
    assert_eq!(members[0].member_view("ns3")["config_lagging"], false);
    assert_eq!(
        metric(&members[0].metrics(), "gslb_cluster_members_lagging"),
        Some(0.0)
    );

    // A minute passes: version 3's publication time, which lag is counted
    // from, is moved two minutes back in etcd (no test waits a minute).
    let key = format!("{prefix}/config/meta/0000000003");
    let (_, raw) = etcd.range(&key).pop().expect("version 3's metadata");
    let mut meta: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    meta["published_ms"] = (meta["published_ms"].as_u64().unwrap() - 120_000).into();
    etcd.put(&key, meta.to_string().as_bytes());
    assert!(
        poll_until(
            DEADLINE,
            || members[0].status()["cluster"]["lagging_members"] == serde_json::json!(["ns3"])
        ),
        "{}",
        members[0].status()["cluster"]
    );
    assert_eq!(members[0].member_view("ns3")["config_lagging"], true);
    assert_eq!(
        metric(&members[0].metrics(), "gslb_cluster_members_lagging"),
        Some(1.0)
    );
    let versions = publisher.run(&["versions"]);
    assert!(
        versions.stdout.contains(
            "# member ns3: version 1, 2 behind (LAGGING: more than one behind for over a minute); version 3 failed: "
        ),
        "{}",
        versions.stdout
    );
    let json: serde_json::Value =
        serde_json::from_str(&publisher.run(&["versions", "--json"]).stdout).unwrap();
    let lagging: Vec<&serde_json::Value> = json["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["lagging"] == true)
        .map(|m| &m["name"])
        .collect();
    assert_eq!(lagging, ["ns3"], "{json}");
    if let Some(dom) = members[1].page_dom() {
        assert!(
            dom.contains("v1 since") && dom.contains("2 behind (LAGGING) · v3 FAILED"),
            "{dom}"
        );
    }

    // Once the database is there, ns3 takes version 3 on its next try and
    // is no longer flagged.
    copy_demo_db(&ns3.dir.path().join("geo/city.mmdb"));
    ns3.wait_for("192.0.2.3");
    assert!(ns3.status()["fleet"]["failed"].is_null());
    assert!(
        poll_until(
            DEADLINE,
            || members[0].status()["cluster"]["lagging_members"] == serde_json::json!([])
        ),
        "{}",
        members[0].status()["cluster"]
    );
}

#[test]
fn with_etcd_down_members_keep_serving_and_a_restarted_member_serves_its_cache() {
    let Some(mut etcd) = EtcdServer::start() else {
        return;
    };
    let prefix = "/gslb/t3";
    let publisher = Publisher::new(&etcd);
    publisher.write(&fleet_config(&etcd, prefix, "192.0.2.1", false));
    publisher.publish("first");
    let mut members: Vec<Member> = (1..=3)
        .map(|i| Member::start(i, &publisher.etcd_url, prefix))
        .collect();
    for member in &members {
        member.wait_for("192.0.2.1");
    }

    etcd.stop();
    // Publishing fails clearly; members answer as before.
    publisher.write(&fleet_config(&etcd, prefix, "192.0.2.2", false));
    let failed = publisher.run(&["publish", "-m", "while down"]);
    assert_eq!(failed.code(), Some(1), "{}", failed.stdout);
    assert!(
        failed.stderr.contains("etcd unreachable")
            && failed.stderr.contains("nothing was published"),
        "{}",
        failed.stderr
    );
    assert!(
        poll_until(DEADLINE, || members[0].status()["fleet"]["store_connected"]
            == false),
        "{}",
        members[0].status()["fleet"]
    );
    for member in &members {
        assert_eq!(member.answers(), ["192.0.2.1"]);
    }
    // The other commands say so too.
    for args in [&["versions"][..], &["rollback", "1"], &["diff", "1", "1"]] {
        let out = publisher.run(args);
        assert_eq!(out.code(), Some(1), "{args:?}: {}", out.stdout);
        assert!(
            out.stderr.contains("etcd unreachable"),
            "{args:?}: {}",
            out.stderr
        );
    }
    // A reload rebuilds the version in service, etcd or not.
    let reload = http(members[1].server().api(), "POST", "/reload", &[], "");
    assert_eq!(reload.status, 200, "{}", reload.body);
    assert_eq!(members[1].answers(), ["192.0.2.1"]);
    assert_eq!(members[1].status()["fleet"]["version"], 1);

    // A member restarted while etcd is down serves its cached version.
    members[0].kill();
    members[0].spawn();
    assert_eq!(members[0].answers(), ["192.0.2.1"]);
    let fleet = members[0].status()["fleet"].clone();
    assert_eq!(
        (fleet["version"].clone(), fleet["from"].clone()),
        (1.into(), "cache".into()),
        "{fleet}"
    );

    // etcd back: the next publish reaches everyone, the restarted member too.
    etcd.restart();
    assert_eq!(publisher.publish("after the outage"), 2);
    for member in &members {
        member.wait_for("192.0.2.2");
    }
}

#[test]
fn keep_versions_removes_older_versions_at_publish() {
    let Some(etcd) = EtcdServer::start() else {
        return;
    };
    let publisher = Publisher::new(&etcd);
    for (i, address) in ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"]
        .iter()
        .enumerate()
    {
        let config = fleet_config(&etcd, "/gslb/t4", address, false);
        publisher.write(&format!("{config}keep_versions = 2\n"));
        assert_eq!(publisher.publish(address), i as u64 + 1);
    }
    let json: serde_json::Value =
        serde_json::from_str(&publisher.run(&["versions", "--json"]).stdout).unwrap();
    let kept: Vec<u64> = json["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_u64().unwrap())
        .collect();
    assert_eq!(kept, [4, 3]);
    // The bundles went with their metadata.
    let keys: Vec<String> = etcd
        .range("/gslb/t4/config/")
        .into_iter()
        .map(|(key, _)| key)
        .collect();
    assert_eq!(
        keys,
        [
            "/gslb/t4/config/bundle/0000000003",
            "/gslb/t4/config/bundle/0000000004",
            "/gslb/t4/config/latest",
            "/gslb/t4/config/meta/0000000003",
            "/gslb/t4/config/meta/0000000004",
        ]
    );
    // A member's own file with more than [server] and [cluster] does not
    // check: the rest is published.
    let member = publisher.dir.write(
        "member.toml",
        &format!(
            "[cluster]\nname = \"ns1\"\netcd = [\"{}\"]\nprefix = \"/gslb/t4\"\nconfig = \"etcd\"\n\n[[zone]]\norigin = \"example.test\"\nfile = \"zones/example.test.zone\"\n",
            etcd.url()
        ),
    );
    let checked = run_gslb(&["check", "-c", member.to_str().unwrap()]);
    assert_eq!(checked.code(), Some(1));
    assert!(
        checked.stderr.contains(&format!(
            "{}:7:1: `zone` in a member's own file",
            member.display()
        )),
        "{}",
        checked.stderr
    );
    let gone = publisher.run(&["rollback", "2"]);
    assert_eq!(gone.code(), Some(1));
    assert!(
        gone.stderr.contains("version 2 is not kept (kept: 3 to 4"),
        "{}",
        gone.stderr
    );
}

#[test]
fn an_oversize_bundle_is_refused_at_publish_and_nothing_is_written() {
    let Some(etcd) = EtcdServer::start() else {
        return;
    };
    let publisher = Publisher::new(&etcd);
    publisher.write(&fleet_config(&etcd, "/gslb/t5", "192.0.2.1", false));
    assert_eq!(publisher.publish("small"), 1);
    // A valid zone padded with comments to 1.7 MB (over etcd's 1.5 MiB
    // --max-request-bytes, which etcd itself refuses) and to 3 MB (over
    // its gRPC limit of that plus 0.5 MiB, refused before etcd's check).
    let comment = format!("; {}\n", "x".repeat(98));
    for lines in [17_000, 30_000] {
        publisher.dir.write(
            "zones/example.test.zone",
            &format!("{ZONE}{}", comment.repeat(lines)),
        );
        let refused = publisher.run(&["publish", "-m", "too big"]);
        assert_eq!(refused.code(), Some(1), "{lines}: {}", refused.stdout);
        assert!(
            refused
                .stderr
                .contains("more than etcd accepts in one request")
                && refused.stderr.contains("nothing was published"),
            "{lines}: {}",
            refused.stderr
        );
    }
    let json: serde_json::Value =
        serde_json::from_str(&publisher.run(&["versions", "--json"]).stdout).unwrap();
    assert_eq!(json["newest"], 1, "{json}");
    assert_eq!(etcd.range("/gslb/t5/config/bundle/").len(), 1);
}

/// A publisher's config under `prefix`, its bundle and the fleet store it
/// publishes to, for tests that call the library directly. The publisher
/// owns the files, so it is returned to be kept alive.
fn published_store(
    etcd: &EtcdServer,
    prefix: &str,
) -> (Publisher, gslb::fleet::Bundle, gslb::fleet::Store) {
    let publisher = Publisher::new(etcd);
    publisher.write(&fleet_config(etcd, prefix, "192.0.2.1", false));
    let loaded = gslb::config::load_config(&publisher.config()).unwrap();
    let mut errors = Vec::new();
    let settings = gslb::cluster::build_cluster_settings(&loaded, &mut errors).unwrap();
    let bundle = gslb::fleet::Bundle::collect(&loaded).unwrap();
    let store = gslb::fleet::Store::new(&settings).unwrap();
    (publisher, bundle, store)
}

/// Two publishes that read the same newest version: exactly one commits
/// (the compare-and-swap on `latest`), the other is told why. The library
/// calls are used so that both reads happen before either write, every
/// time.
#[test]
fn racing_commits_from_one_base_exactly_one_wins() {
    let Some(etcd) = EtcdServer::start() else {
        return;
    };
    let (_publisher, bundle, store) = published_store(&etcd, "/gslb/t6");
    let new = |message: &str| gslb::fleet::NewVersion {
        by: "test".into(),
        message: message.into(),
        digest: "0".repeat(64),
        rollback_of: None,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let a = store.read_base(None).await.unwrap();
        let b = store.read_base(None).await.unwrap();
        let won = store.commit(a, &bundle, new("a"), 50).await.unwrap();
        assert_eq!(won.version, 1);
        let lost = store.commit(b, &bundle, new("b"), 50).await.unwrap_err();
        assert!(
            matches!(
                lost,
                gslb::fleet::PublishError::Raced {
                    base: None,
                    newest: 1
                }
            ),
            "{lost}"
        );
        assert!(
            lost.to_string().starts_with(
                "another publish won the race: version 1 was published while this one was being written (it was based on no version); nothing was published"
            ),
            "{lost}"
        );
        let (versions, _) = store.versions().await.unwrap();
        assert_eq!(versions.len(), 1);
        assert_eq!(versions[0].message, "a");
    });
}

/// Lowering `keep_versions` far below the versions kept removes more of
/// them than etcd allows operations in one transaction: the publish still
/// succeeds and the rest go with the next publishes.
#[test]
fn lowering_keep_versions_below_many_kept_versions_still_publishes() {
    let Some(etcd) = EtcdServer::start() else {
        return;
    };
    let (_publisher, bundle, store) = published_store(&etcd, "/gslb/t7");
    let new = || gslb::fleet::NewVersion {
        by: "test".into(),
        message: String::new(),
        digest: "0".repeat(64),
        rollback_of: None,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        for _ in 0..100 {
            store.publish(&bundle, new(), None, 100).await.unwrap();
        }
        let mut kept = 100;
        for version in 101.. {
            let meta = store
                .publish(&bundle, new(), None, 1)
                .await
                .unwrap_or_else(|err| panic!("version {version} with {kept} kept: {err}"));
            assert_eq!(meta.version, version);
            let (versions, _) = store.versions().await.unwrap();
            assert!(versions.len() < kept + 1, "nothing removed");
            kept = versions.len();
            if kept == 1 {
                break;
            }
        }
    });
    assert_eq!(etcd.range("/gslb/t7/config/bundle/").len(), 1);
}

/// The README's walkthrough ("Publishing configuration to a fleet") is
/// `scripts/cluster-demo.sh`: it runs as written (with this build's
/// binary instead of a release build) and shows what the README says.
#[test]
fn the_readme_walkthrough_scripts_cluster_demo_runs_as_written() {
    for tool in ["etcd", "dig", "curl", "python3", "timeout"] {
        if std::process::Command::new(tool)
            .arg("--version")
            .output()
            .is_err()
        {
            eprintln!("skipped: {tool} is not installed");
            return;
        }
    }
    let out = std::process::Command::new("timeout")
        .args(["--kill-after=10", "180", "scripts/cluster-demo.sh"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("GSLB", env!("CARGO_BIN_EXE_gslb"))
        .output()
        .expect("run scripts/cluster-demo.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let every =
        |address: &str| format!("  ns1: {address} \n  ns2: {address} \n  ns3: {address} \n");
    for expected in [
        "published version 1 (".to_string(),
        format!(
            "== www.example.test before (eu first):\n{}",
            every("192.0.2.10")
        ),
        "(www: us first)".to_string(),
        format!(
            "== www.example.test on every member:\n{}== gslb versions",
            every("198.51.100.10")
        ),
        "running on ns1,ns2,ns3  us first\n".to_string(),
        "  -pools = [\"eu\", \"us\"]\n  +pools = [\"us\", \"eu\"]\n".to_string(),
        "published version 3 (version 1 again".to_string(),
        format!("(eu first again):\n{}", every("192.0.2.10")),
        "ns3 serves version 3 behind 0".to_string(),
    ] {
        assert!(stdout.contains(&expected), "no {expected:?} in:\n{stdout}");
    }
}

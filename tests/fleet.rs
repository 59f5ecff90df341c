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
const ZONE: &str = "$ORIGIN example.test.\n$TTL 300\n@ IN SOA ns1 hostmaster 1 7200 900 1209600 300\n@ IN NS ns1\nns1 IN A 192.0.2.53\n";

/// The configuration published: `www` answers `address`; `geoip` adds a
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

[services."{NAME}"]
policy = "failover"
pools = ["main"]
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
        let out = self.run(&["publish", "-m", message]);
        assert_eq!(out.code(), Some(0), "publish failed:\n{}", out.stderr);
        published_version(&out.stdout)
    }
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
    }

    // A change reaches all three.
    publisher.write(&fleet_config(&etcd, prefix, "192.0.2.2", false));
    assert_eq!(publisher.publish("move to .2"), 2);
    for member in &members {
        member.wait_for("192.0.2.2");
    }
    // Every member's record says it runs version 2.
    assert!(
        poll_until(DEADLINE, || {
            members[0].status()["cluster"]["members"]
                .as_array()
                .is_some_and(|list| {
                    list.len() == 3 && list.iter().all(|m| m["config_version"] == 2)
                })
        }),
        "{}",
        members[0].status()["cluster"]
    );
    let versions = publisher.run(&["versions"]);
    assert_eq!(versions.code(), Some(0), "{}", versions.stderr);
    let lines: Vec<&str> = versions.stdout.lines().collect();
    assert!(lines[0].starts_with("2 "), "{}", versions.stdout);
    assert!(
        lines[0].contains("running on ns1,ns2,ns3") && lines[0].contains("move to .2"),
        "{}",
        versions.stdout
    );
    assert!(lines[1].starts_with("1 "), "{}", versions.stdout);
    let json: serde_json::Value =
        serde_json::from_str(&publisher.run(&["versions", "--json"]).stdout).unwrap();
    assert_eq!(json["newest"], 2);
    assert_eq!(json["versions"][0]["message"], "move to .2");
    let diff = publisher.run(&["diff", "1", "2"]);
    assert_eq!(diff.code(), Some(0), "{}", diff.stderr);
    assert!(
        diff.stdout
            .contains("-endpoints = [{ address = \"192.0.2.1\" }]\n+endpoints = [{ address = \"192.0.2.2\" }]\n"),
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

    // A configuration that does not check is refused and reaches nobody.
    let good = fleet_config(&etcd, prefix, "192.0.2.3", false);
    publisher.write(&good.replace("pools = [\"main\"]", "pools = [\"nowhere\"]"));
    let refused = publisher.run(&["publish", "-m", "broken"]);
    assert_eq!(refused.code(), Some(1), "{}", refused.stdout);
    let config = publisher.config();
    assert!(
        refused.stderr.contains(&format!("{}:", config.display()))
            && refused.stderr.contains("nowhere"),
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

    // Once the database is there, ns3 takes version 2 on its next try.
    copy_demo_db(&ns3.dir.path().join("geo/city.mmdb"));
    ns3.wait_for("192.0.2.2");
    assert!(ns3.status()["fleet"]["failed"].is_null());
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

//! Several gslb instances acting as one through a real etcd (issue 19):
//! real `etcd` started on free loopback ports with a temporary data dir,
//! real `gslb` members, real HTTP backends, answers read with `dig`.
//!
//! Every wait is a bounded poll for an answer to change; no timing
//! thresholds. Each test skips (with a message) when `etcd` is not
//! installed; CI installs it (`.ci/run`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod common;
use common::browser::{chromium, chromium_command, run_bounded};
use common::etcd::EtcdServer as Etcd;
use common::{http, poll_until};

/// Longest wait for any expected change (debug builds on a busy machine).
const DEADLINE: Duration = Duration::from_secs(40);
const EU: &str = "192.0.2.1";
const US: &str = "198.51.100.1";
const NAME: &str = "www.example.test";
/// The members' admin API token.
const TOKEN: &str = "cluster-test-token";

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn temp_dir(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "gslb-cluster-{}-{}-{label}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

// ---------------------------------------------------------------- backends

/// An HTTP health endpoint on 127.0.0.1 answering 200, or 503 to probes
/// from the addresses it refuses; `kill` closes its listener for good.
struct Backend {
    port: u16,
    alive: Arc<AtomicBool>,
    refused: Arc<Mutex<Vec<IpAddr>>>,
}

impl Backend {
    fn start() -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let alive = Arc::new(AtomicBool::new(true));
        let refused: Arc<Mutex<Vec<IpAddr>>> = Arc::default();
        let (a, r) = (alive.clone(), refused.clone());
        std::thread::spawn(move || {
            while a.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut stream, peer)) => {
                        let _ = stream.set_nonblocking(false);
                        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
                        let mut buf = [0u8; 1024];
                        let _ = stream.read(&mut buf);
                        let refuse = r.lock().unwrap().contains(&peer.ip());
                        let reply = if refuse {
                            "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        } else {
                            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                        };
                        let _ = stream.write_all(reply.as_bytes());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Backend {
            port,
            alive,
            refused,
        }
    }

    fn refuse(&self, source: &str) {
        self.refused.lock().unwrap().push(source.parse().unwrap());
    }

    fn kill(&self) {
        self.alive.store(false, Ordering::Relaxed);
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.kill();
    }
}

// ---------------------------------------------------------------- members

/// What a member's configuration says.
struct Setup<'a> {
    etcd: Option<&'a Etcd>,
    prefix: &'a str,
    quorum: &'a str,
    eu_port: u16,
    us_port: u16,
    /// More keys for pool eu (e.g. `check_from = ["ns3"]`).
    eu_extra: &'a str,
    /// `[cluster] member_ttl`.
    member_ttl: &'a str,
}

/// A running `gslb serve`, SIGKILLed on drop.
struct Member {
    name: String,
    child: Option<Child>,
    dns: SocketAddr,
    api: SocketAddr,
    dir: PathBuf,
}

impl Member {
    /// Writes the configuration of member `index` (name `ns{index}`, probes
    /// from 127.0.0.{10+index}) into a new directory and serves it.
    fn start(index: u8, setup: &Setup<'_>) -> Member {
        let dir = temp_dir(&format!("ns{index}"));
        Self::start_in(dir, index, setup)
    }

    fn start_in(dir: PathBuf, index: u8, setup: &Setup<'_>) -> Member {
        let name = format!("ns{index}");
        std::fs::write(
            dir.join("example.test.zone"),
            "$ORIGIN example.test.\n$TTL 300\n@ IN SOA ns1 hostmaster 1 7200 900 1209600 300\n@ IN NS ns1\nns1 IN A 192.0.2.53\n",
        )
        .unwrap();
        let cluster = match setup.etcd {
            Some(etcd) => format!(
                "[cluster]\nname = \"{name}\"\netcd = [\"{}\"]\nprefix = \"{}\"\ndown_quorum = \"{}\"\nmember_ttl = \"{}\"\nprobe_source = \"127.0.0.{}\"\n",
                etcd.url(),
                setup.prefix,
                setup.quorum,
                setup.member_ttl,
                10 + index
            ),
            None => String::new(),
        };
        let config = format!(
            r#"
[server]
state_dir = "state"
api_token = "{TOKEN}"

[[zone]]
origin = "example.test"
file = "example.test.zone"

[checks.web]
kind = "http"
path = "/health"
interval = "200ms"
timeout = "150ms"
rise = 1
fall = 2

[pools.eu]
check = "web"
endpoints = [{{ address = "{EU}", check_address = "127.0.0.1", check_port = {eu} }}]
{eu_extra}

[pools.us]
check = "web"
endpoints = [
  {{ address = "{US}", check_address = "127.0.0.1", check_port = {us} }},
  {{ address = "198.51.100.2", check_address = "127.0.0.1", check_port = {us}, weight = 0 }},
]

[services."{NAME}"]
policy = "failover"
pools = ["eu", "us"]
ttl = 5

{cluster}
"#,
            eu = setup.eu_port,
            us = setup.us_port,
            eu_extra = setup.eu_extra,
        );
        std::fs::write(dir.join("gslb.toml"), config).unwrap();
        let mut member = Member {
            name,
            child: None,
            dns: "127.0.0.1:0".parse().unwrap(),
            api: "127.0.0.1:0".parse().unwrap(),
            dir,
        };
        member.spawn();
        member
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("gslb.log"))
            .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_gslb"))
            .args(["serve", "-c"])
            .arg(self.dir.join("gslb.toml"))
            .args(["--listen", "127.0.0.1:0", "--api", "127.0.0.1:0"])
            .env("RUST_LOG", "gslb=info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        loop {
            let Some(Ok(line)) = lines.next() else {
                panic!("{} exited before listening:\n{}", self.name, self.log());
            };
            if let Some(rest) = line.strip_prefix("admin api listening on http://") {
                self.api = rest.trim_end_matches('/').parse().unwrap();
            } else if let Some(rest) = line.strip_prefix("listening on ") {
                self.dns = rest.split_whitespace().next().unwrap().parse().unwrap();
                break;
            }
        }
        // Keep reading stdout so the member never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        self.child = Some(child);
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("gslb.log")).unwrap_or_default()
    }

    /// The addresses answered for the service, sorted.
    fn ips(&self) -> Vec<String> {
        let output = Command::new("dig")
            .arg(format!("@{}", self.dns.ip()))
            .args(["-p", &self.dns.port().to_string()])
            .args(["+norec", "+short", "+time=1", "+tries=1", NAME, "A"])
            .output()
            .expect("dig must be installed");
        let mut ips: Vec<String> = String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with(';'))
            .map(str::to_string)
            .collect();
        ips.sort();
        ips
    }

    fn wait_for(&self, want: &str) {
        let mut last = Vec::new();
        let ok = poll_until(DEADLINE, || {
            last = self.ips();
            last == [want]
        });
        assert!(
            ok,
            "{}: wanted {want}, still {last:?}\n{}",
            self.name,
            self.log()
        );
    }

    fn post(&self, path: &str, body: &str) -> serde_json::Value {
        let auth = format!("Bearer {TOKEN}");
        let reply = http(
            self.api,
            "POST",
            path,
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            body,
        );
        assert_eq!(reply.status, 200, "{path} {body}: {}", reply.body);
        reply.json()
    }

    /// Runs `gslb SUBCOMMAND ARGS` against this member's API (address and
    /// token from its configuration); its standard output.
    fn gslb(&self, subcommand: &str, args: &[&str]) -> String {
        let output = Command::new(env!("CARGO_BIN_EXE_gslb"))
            .arg(subcommand)
            .arg("-c")
            .arg(self.dir.join("gslb.toml"))
            .args(["--api", &self.api.to_string()])
            .args(args)
            .output()
            .expect("run gslb");
        assert!(
            output.status.success(),
            "gslb {subcommand} {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn status(&self) -> serde_json::Value {
        http(self.api, "GET", "/status", &[], "").json()
    }

    fn metrics(&self) -> String {
        http(self.api, "GET", "/metrics", &[], "").body
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
        let mut dump = chromium_command(&browser, &self.dir.join("chromium-profile"));
        dump.arg("--dump-dom").arg(format!("http://{}/", self.api));
        Some(run_bounded(dump).0)
    }

    /// `member`'s verdict on `endpoint` as this member sees it.
    fn verdict_of(&self, member: &str, endpoint: &str) -> Option<String> {
        let status = self.status();
        let pools = status["pools"].as_array()?;
        pools
            .iter()
            .flat_map(|p| p["endpoints"].as_array().cloned().unwrap_or_default())
            .find(|e| e["key"] == endpoint)
            .and_then(|e| e["member_verdicts"][member].as_str().map(str::to_string))
    }

    fn live_members(&self) -> usize {
        self.status()["cluster"]["members"]
            .as_array()
            .map_or(0, Vec::len)
    }

    fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.kill9();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn cluster_of(etcd: &Etcd, prefix: &str, quorum: &str, eu: &Backend, us: &Backend) -> Vec<Member> {
    cluster_with(Setup {
        etcd: Some(etcd),
        prefix,
        quorum,
        eu_port: eu.port,
        us_port: us.port,
        eu_extra: "",
        member_ttl: "2s",
    })
}

/// Three members (ns1..ns3) on `setup`, once each sees all three.
fn cluster_with(setup: Setup<'_>) -> Vec<Member> {
    let members: Vec<Member> = (1..=3).map(|i| Member::start(i, &setup)).collect();
    for member in &members {
        assert!(
            poll_until(DEADLINE, || member.live_members() == 3),
            "{} does not see 3 members: {}\n{}",
            member.name,
            member.status()["cluster"],
            member.log()
        );
    }
    members
}

// ---------------------------------------------------------------- tests

/// (1) A drain through member A's API changes B's and C's answers.
#[test]
fn issue_19_drain_on_one_member_reaches_every_member() {
    let Some(etcd) = Etcd::start() else { return };
    let (eu, us) = (Backend::start(), Backend::start());
    let members = cluster_of(&etcd, "/gslb/drain", "majority", &eu, &us);
    for member in &members {
        member.wait_for(EU);
    }
    let reply = members[0].post(
        "/override",
        r#"{"endpoint":"eu/192.0.2.1","state":"drain"}"#,
    );
    assert_eq!(reply["pending"], false, "{reply}");
    for member in &members {
        member.wait_for(US);
    }
    // B lists the change: who made it, from which member.
    let status = members[1].status();
    let change = &status["operator"]["recent_changes"][0];
    assert_eq!(change["subject"], "eu/192.0.2.1", "{status}");
    assert_eq!(change["value"], "drain");
    assert_eq!(change["member"], "ns1");
    assert_eq!(change["token"], "api_token");
    members[2].post("/override", r#"{"endpoint":"eu/192.0.2.1","state":"none"}"#);
    for member in &members {
        member.wait_for(EU);
    }
    // Runtime weights travel the same way: the weight-0 endpoint of us
    // gets the answers once weights are swapped on one member.
    members[0].post("/override", r#"{"pool":"eu","state":"down"}"#);
    for member in &members {
        member.wait_for(US);
    }
    members[1].post("/weight", r#"{"endpoint":"us/198.51.100.1","weight":0}"#);
    members[1].post("/weight", r#"{"endpoint":"us/198.51.100.2","weight":5}"#);
    for member in &members {
        member.wait_for("198.51.100.2");
    }
    let metrics = members[2].metrics();
    assert!(metrics.contains("gslb_cluster_members 3"), "{metrics}");
    assert!(
        metrics.contains("gslb_cluster_config_digests 1"),
        "{metrics}"
    );
    // Drift: ns3 reloads a policy of its own (another TTL); the others see
    // two digests and name ns3.
    let config = members[2].dir.join("gslb.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("ttl = 5", "ttl = 6")).unwrap();
    members[2].post("/reload", "");
    assert!(
        poll_until(DEADLINE, || members[0]
            .metrics()
            .contains("gslb_cluster_config_digests 2")),
        "no drift seen: {}",
        members[0].status()["cluster"]
    );
    let cluster = &members[0].status()["cluster"];
    let drifted: Vec<&str> = cluster["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["drift"] == true)
        .filter_map(|m| m["name"].as_str())
        .collect();
    assert_eq!(drifted, ["ns3"], "{cluster}");
}

/// (2) A backend unreachable from one member only stays up under
/// `majority` and goes down under `any`.
#[test]
fn issue_19_one_vantage_point_moves_nothing_under_majority_but_does_under_any() {
    let Some(etcd) = Etcd::start() else { return };
    let (eu, us) = (Backend::start(), Backend::start());
    // ns3 probes from 127.0.0.13: the eu backend refuses it.
    eu.refuse("127.0.0.13");
    let members = cluster_of(&etcd, "/gslb/majority", "majority", &eu, &us);
    assert!(
        poll_until(DEADLINE, || members[0]
            .verdict_of("ns3", "eu/192.0.2.1")
            .as_deref()
            == Some("down")),
        "ns3's down verdict never reached ns1: {}",
        members[0].status()
    );
    for member in &members {
        member.wait_for(EU);
    }
    // ns3's explain says why it answers eu although its probes say down.
    let explain = std::process::Command::new(env!("CARGO_BIN_EXE_gslb"))
        .args(["explain", "-c"])
        .arg(members[2].dir.join("gslb.toml"))
        .args(["--api", &members[2].api.to_string()])
        .args(["--client", "192.0.2.99", NAME])
        .output()
        .expect("gslb explain");
    let text = String::from_utf8_lossy(&explain.stdout);
    assert!(
        text.contains("eu/192.0.2.1: usable")
            && text.contains(", probe down since ")
            && text.contains(", cluster quorum up"),
        "{text}"
    );
    // The status page shows every member's verdict beside the cluster's.
    if let Some(dom) = members[0].page_dom() {
        for needle in [
            r#"data-member="ns3" data-verdict="down""#,
            r#"data-member="ns2" data-verdict="up""#,
            r#"class="member" data-member="ns2" data-drift="false""#,
            r#"class="endpoint state-up" data-endpoint="eu/192.0.2.1""#,
            "quorum majority",
        ] {
            assert!(dom.contains(needle), "missing {needle:?} in:\n{dom}");
        }
    }
    drop(members);

    let members = cluster_of(&etcd, "/gslb/any", "any", &eu, &us);
    for member in &members {
        member.wait_for(US);
    }
}

/// (3) A backend killed for real moves all three members' answers.
#[test]
fn issue_19_a_dead_backend_moves_every_member() {
    let Some(etcd) = Etcd::start() else { return };
    let (eu, us) = (Backend::start(), Backend::start());
    let members = cluster_of(&etcd, "/gslb/dead", "majority", &eu, &us);
    for member in &members {
        member.wait_for(EU);
    }
    eu.kill();
    for member in &members {
        member.wait_for(US);
    }
}

/// (4) A member killed with SIGKILL drops out of the quorum after its lease.
#[test]
fn issue_19_a_killed_member_drops_out_after_its_lease() {
    let Some(etcd) = Etcd::start() else { return };
    let (eu, us) = (Backend::start(), Backend::start());
    eu.refuse("127.0.0.12");
    eu.refuse("127.0.0.13");
    let mut members = cluster_of(&etcd, "/gslb/lease", "majority", &eu, &us);
    // Two of three see eu down: down everywhere, even on ns1 which sees it up.
    for member in &members {
        member.wait_for(US);
    }
    members[2].kill9();
    // After ns3's lease: one of two sees it down, which is no majority.
    assert!(
        poll_until(DEADLINE, || members[0].live_members() == 2),
        "ns3 never dropped out: {}",
        members[0].status()["cluster"]
    );
    members[0].wait_for(EU);
    members[1].wait_for(EU);
}

/// The most queries [`QueryLoad`] sends (its bound when nobody stops it).
const LOAD_MAX_QUERIES: u32 = 60_000;

/// A bounded query load: one query at a time to each server in turn, until
/// stopped, [`LOAD_MAX_QUERIES`] or 3 × [`DEADLINE`]; a query with no
/// reply within a second is lost.
struct QueryLoad {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<(u32, u32)>,
}

impl QueryLoad {
    fn start(servers: Vec<SocketAddr>) -> QueryLoad {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
            socket
                .set_read_timeout(Some(Duration::from_secs(1)))
                .unwrap();
            let end = std::time::Instant::now() + 3 * DEADLINE;
            let (mut sent, mut lost) = (0u32, 0u32);
            while !flag.load(Ordering::Relaxed)
                && sent < LOAD_MAX_QUERIES
                && std::time::Instant::now() < end
            {
                let server = servers[sent as usize % servers.len()];
                let id = (sent % 65_536) as u16;
                let mut packet = id.to_be_bytes().to_vec();
                packet.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
                for label in NAME.split('.') {
                    packet.push(label.len() as u8);
                    packet.extend_from_slice(label.as_bytes());
                }
                packet.extend_from_slice(&[0, 0, 1, 0, 1]);
                socket.send_to(&packet, server).unwrap();
                let mut buf = [0u8; 1500];
                let answered = loop {
                    match socket.recv_from(&mut buf) {
                        Ok((n, from)) if from == server && n >= 2 && buf[..2] == packet[..2] => {
                            break true;
                        }
                        Ok(_) => continue,
                        Err(_) => break false,
                    }
                };
                sent += 1;
                lost += u32::from(!answered);
                std::thread::sleep(Duration::from_millis(2));
            }
            (sent, lost)
        });
        QueryLoad { stop, thread }
    }

    /// Stops the load; (queries sent, queries lost).
    fn finish(self) -> (u32, u32) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

/// (5) etcd stopped while members serve: no query lost under a bounded
/// load (from before the outage until the members have converged after
/// it), answers follow local probes, overrides are kept, a member
/// restarted during the outage serves with the operator state it kept; a
/// change made meanwhile is pending and reaches the others when etcd
/// returns.
#[test]
fn issue_19_members_serve_through_an_etcd_outage_and_converge_after() {
    let Some(mut etcd) = Etcd::start() else {
        return;
    };
    let (eu, us) = (Backend::start(), Backend::start());
    let mut members = cluster_of(&etcd, "/gslb/outage", "majority", &eu, &us);
    // An override from before the outage: the weight-0 us endpoint preferred.
    members[0].post("/weight", r#"{"endpoint":"us/198.51.100.1","weight":0}"#);
    members[0].post("/weight", r#"{"endpoint":"us/198.51.100.2","weight":1}"#);
    for member in &members {
        member.wait_for(EU);
    }
    // Every member holds the weights (ns3 in its state_dir too).
    assert!(
        poll_until(DEADLINE, || members[2].status()["operator"]["in_force"]
            .as_array()
            .map(Vec::len)
            == Some(2)),
        "ns3 never got the weights: {}",
        members[2].status()["operator"]
    );
    // ns3 is restarted during the outage, so the load goes to ns1 and ns2.
    let load = QueryLoad::start(vec![members[0].dns, members[1].dns]);
    etcd.stop();
    assert!(
        poll_until(
            DEADLINE,
            || members[1].status()["cluster"]["store_connected"] == false
        ),
        "ns2 never noticed the outage"
    );
    assert!(members[1].metrics().contains("gslb_cluster_store_up 0"));
    // Local probes are followed: eu dies, every member moves on its own,
    // to the endpoint the (kept) weights prefer.
    eu.kill();
    for member in &members {
        member.wait_for("198.51.100.2");
    }
    // A member started while etcd is unreachable serves at once, on its
    // own probes and the operator state kept in its state_dir.
    members[2].kill9();
    members[2].spawn();
    members[2].wait_for("198.51.100.2");
    assert_eq!(
        members[2].status()["cluster"]["store_connected"],
        false,
        "{}",
        members[2].status()["cluster"]
    );
    // A change made during the outage applies at once and is pending.
    let said = members[0].gslb("override", &["us/198.51.100.2", "drain"]);
    assert!(
        said.starts_with("us/198.51.100.2: override drain (pending:"),
        "{said}"
    );
    members[0].wait_for(US);
    members[1].wait_for("198.51.100.2");
    etcd.restart();
    for member in &members {
        member.wait_for(US);
    }
    assert!(
        poll_until(DEADLINE, || members.iter().all(
            |m| m.live_members() == 3 && m.status()["cluster"]["store_connected"] == true
        )),
        "members did not come back: {}",
        members[2].status()["cluster"]
    );
    let (sent, lost) = load.finish();
    assert_eq!(lost, 0, "{lost} of {sent} queries lost across the outage");
}

/// A counter's value in a member's `/metrics` (0 when absent).
fn counter(member: &Member, name: &str) -> u64 {
    member
        .metrics()
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0)
}

/// etcd away for less than the lease (here restarted, which renews every
/// lease): each member resumes its lease, finds its keys still there and
/// writes nothing again, where a new lease would re-publish every verdict.
#[test]
fn issue_19_a_member_resumes_its_lease_after_a_short_store_outage() {
    let Some(mut etcd) = Etcd::start() else {
        return;
    };
    let (eu, us) = (Backend::start(), Backend::start());
    let setup = Setup {
        etcd: Some(&etcd),
        prefix: "/gslb/resume",
        quorum: "majority",
        eu_port: eu.port,
        us_port: us.port,
        eu_extra: "",
        member_ttl: "120s",
    };
    let members: Vec<Member> = (1..=2).map(|i| Member::start(i, &setup)).collect();
    // Settled: each member has published its record and an up verdict on
    // all three endpoints.
    for member in &members {
        member.wait_for(EU);
        assert!(
            poll_until(DEADLINE, || member.live_members() == 2
                && counter(member, "gslb_cluster_store_keys_written_total") == 4),
            "{} never settled: {}",
            member.name,
            member.metrics()
        );
    }
    etcd.stop();
    for member in &members {
        assert!(
            poll_until(DEADLINE, || member.status()["cluster"]["store_connected"]
                == false),
            "{} never noticed the outage",
            member.name
        );
    }
    etcd.restart();
    for member in &members {
        assert!(
            poll_until(DEADLINE, || member.status()["cluster"]["store_connected"]
                == true),
            "{} did not reconnect:\n{}",
            member.name,
            member.log()
        );
        assert!(
            member.log().contains("resumed=true"),
            "{}:\n{}",
            member.name,
            member.log()
        );
        assert_eq!(
            counter(member, "gslb_cluster_store_keys_written_total"),
            4,
            "{} wrote its keys again",
            member.name
        );
        assert_eq!(member.live_members(), 2);
        member.wait_for(EU);
    }
    // The resumed sessions still publish changes.
    eu.kill();
    for member in &members {
        member.wait_for(US);
    }
    assert!(
        poll_until(DEADLINE, || members[1]
            .verdict_of("ns1", "eu/192.0.2.1")
            .as_deref()
            == Some("down")),
        "ns1's new verdict never reached ns2"
    );
}

/// (6) A standalone instance keeps its overrides and weights across a
/// restart (`[server] state_dir`).
#[test]
fn issue_19_standalone_restart_keeps_overrides_and_weights() {
    let (eu, us) = (Backend::start(), Backend::start());
    let setup = Setup {
        etcd: None,
        prefix: "",
        quorum: "",
        eu_port: eu.port,
        us_port: us.port,
        eu_extra: "",
        member_ttl: "2s",
    };
    let dir = temp_dir("standalone");
    let mut member = Member::start_in(dir.clone(), 1, &setup);
    member.wait_for(EU);
    // Through the subcommands, which call the API as `gslb reload` does.
    assert_eq!(
        member.gslb("override", &["eu", "drain"]),
        "eu: override drain\n"
    );
    assert_eq!(
        member.gslb("weight", &["us/198.51.100.1", "0"]),
        "us/198.51.100.1: weight 0\n"
    );
    member.gslb("weight", &["us/198.51.100.2", "3"]);
    member.wait_for("198.51.100.2");
    assert!(dir.join("state/operator-state.json").exists());
    member.kill9();
    member.spawn();
    member.wait_for("198.51.100.2");
    let status = member.status();
    assert_eq!(
        status["operator"]["in_force"].as_array().map(Vec::len),
        Some(3),
        "{status}"
    );
    assert_eq!(
        member.gslb("weight", &["us/198.51.100.2", "none"]),
        "us/198.51.100.2: weight none (configured)\n"
    );
    member.gslb("weight", &["us/198.51.100.1", "none"]);
    member.wait_for(US);
}

/// (7) Garbage values written into the prefix are ignored with a logged
/// error; the last good value stays in force.
#[test]
fn issue_19_garbage_in_the_store_is_logged_and_ignored() {
    let Some(etcd) = Etcd::start() else { return };
    let (eu, us) = (Backend::start(), Backend::start());
    let setup = Setup {
        etcd: Some(&etcd),
        prefix: "/gslb/garbage",
        quorum: "majority",
        eu_port: eu.port,
        us_port: us.port,
        eu_extra: "",
        member_ttl: "2s",
    };
    let members: Vec<Member> = (1..=2).map(|i| Member::start(i, &setup)).collect();
    members[0].post(
        "/override",
        r#"{"endpoint":"eu/192.0.2.1","state":"drain"}"#,
    );
    for member in &members {
        member.wait_for(US);
    }
    etcd.put(
        "/gslb/garbage/operator/override/endpoint/eu/192.0.2.1",
        b"{not json",
    );
    etcd.put(
        "/gslb/garbage/verdicts/ns1/eu/192.0.2.1",
        &[0xff, 0x00, 0x13],
    );
    etcd.put("/gslb/garbage/members/ns9", b"[]");
    etcd.put("/gslb/garbage/elsewhere", b"hello");
    for member in &members {
        assert!(
            poll_until(DEADLINE, || member.log().contains("does not parse")),
            "{} logged no error:\n{}",
            member.name,
            member.log()
        );
        // Still drained (the last good value), still serving.
        member.wait_for(US);
    }
    assert_eq!(members[1].live_members(), 2);
}

/// `check_from` on a pool: only the listed members probe its endpoints and
/// vote on them; the others follow their verdict.
#[test]
fn issue_19_check_from_limits_who_probes_and_votes() {
    let Some(etcd) = Etcd::start() else { return };
    let (eu, us) = (Backend::start(), Backend::start());
    // Only ns3 probes eu, and eu refuses ns3: down for everyone, although
    // ns1 and ns2 could reach it.
    eu.refuse("127.0.0.13");
    let members = cluster_with(Setup {
        etcd: Some(&etcd),
        prefix: "/gslb/check-from",
        quorum: "majority",
        eu_port: eu.port,
        us_port: us.port,
        eu_extra: r#"check_from = ["ns3"]"#,
        member_ttl: "2s",
    });
    for member in &members {
        member.wait_for(US);
    }
    let endpoint = |member: &Member| {
        member.status()["pools"]
            .as_array()
            .and_then(|pools| pools.iter().find(|p| p["name"] == "eu").cloned())
            .map(|pool| pool["endpoints"][0].clone())
            .unwrap_or_default()
    };
    let seen = endpoint(&members[0]);
    assert_eq!(seen["probed"], false, "ns1 must not probe eu: {seen}");
    assert_eq!(
        seen["member_verdicts"],
        serde_json::json!({"ns3": "down"}),
        "{seen}"
    );
    assert_eq!(endpoint(&members[2])["probed"], true);
}

/// `[cluster]` and `check_from` mistakes are found by `gslb check`, each
/// at its file:line with the fix.
#[test]
fn issue_19_cluster_settings_are_checked() {
    let dir = temp_dir("check");
    std::fs::write(
        dir.join("example.test.zone"),
        "$ORIGIN example.test.\n$TTL 300\n@ IN SOA ns1 hostmaster 1 7200 900 1209600 300\n@ IN NS ns1\nns1 IN A 192.0.2.53\n",
    )
    .unwrap();
    let config = dir.join("gslb.toml");
    std::fs::write(
        &config,
        r#"[[zone]]
origin = "example.test"
file = "example.test.zone"

[pools.eu]
check_from = []
endpoints = [{ address = "192.0.2.1" }]

[services."www.example.test"]
policy = "failover"
pools = ["eu"]

[cluster]
name = "ns 1"
etcd = ["https://127.0.0.1:2379/v3"]
prefix = "gslb"
down_quorum = "most"
member_ttl = "1s"
"#,
    )
    .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_gslb"))
        .arg("check")
        .arg("-c")
        .arg(&config)
        .output()
        .expect("gslb check");
    assert_eq!(output.status.code(), Some(1));
    let text = String::from_utf8_lossy(&output.stderr);
    let path = config.display().to_string();
    for (line, message) in [
        (6, "check_from is empty"),
        (14, "[cluster] name \"ns 1\" must be a non-empty word"),
        (15, "must be http://HOST:PORT (no path)"),
        (16, "[cluster] prefix \"gslb\" must start with '/'"),
        (17, "down_quorum = \"most\" is not valid"),
        (18, "member_ttl 1s is too short: use at least \"2s\""),
    ] {
        let located = format!("{path}:{line}:");
        assert!(
            text.lines()
                .any(|l| l.contains(&located) && l.contains(message)),
            "no {message:?} at {located}\n{text}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

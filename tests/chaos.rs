//! Chaos drill: the real `gslb` binary under steady query load while its
//! health-checked backends die and come back, its configuration is reloaded
//! (good and bad, alternating) and its GeoIP database is swapped underneath it.
//!
//! Three regions (eu, us, ap) of two endpoints each, every endpoint a tiny
//! HTTP server on its own loopback address (127.0.0.11/12, .21/22, .31/32)
//! probed every 200 ms (timeout 150 ms, fall 2, rise 2, no jitter). A client
//! thread sends 500 queries/s with ECS from the three regions' networks and
//! records every reply. Meanwhile the drill kills and restarts backends
//! (one endpoint or a whole region, never more than two regions at once),
//! sends SIGHUP with good and bad configurations, and rebuilds the mmdb with
//! `gslb geoip build` and renames it over the served one.
//!
//! Asserted afterwards: no query lost (no reply within 1 s), no SERVFAIL,
//! no answer naming an endpoint that had been dead longer than the fall
//! bound (2 × interval + timeout + 500 ms grace), every reload logged with
//! the expected outcome, the process alive, and bounded RSS growth.
//!
//! Loopback only; bounded in time: the load phase lasts `GSLB_CHAOS_SECS`
//! seconds (default 25; `scripts/chaos.sh` runs it longer).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{TempDir, ecs_option, gslb_command, parse_reply};

/// Probe interval, timeout and fall of the drill's check.
const INTERVAL: Duration = Duration::from_millis(200);
const TIMEOUT: Duration = Duration::from_millis(150);
const FALL: u32 = 2;
/// Slack for scheduling, the reply in flight and a loaded 2-core machine.
const GRACE: Duration = Duration::from_millis(500);
/// Queries per second of the load thread.
const QUERIES_PER_SEC: u64 = 500;
/// A query without a reply within this long counts as lost.
const LOST_AFTER: Duration = Duration::from_secs(1);
/// Allowed RSS growth over the drill (measured: +0.2 to +0.3 MiB on an
/// ~8.5 MiB server). The steady state holds one snapshot (about 100 KiB
/// here), fixed per-worker UDP buffers (256 KiB each, allocated before the
/// first sample), six probers and a few TCP buffers; none of it grows with
/// the number of queries. A reload builds a new snapshot and frees the old
/// one, so what may legitimately grow is allocator slack: a second snapshot
/// in flight, glibc arenas of reload threads, fragmentation. 4 MiB covers
/// that with margin, while a leaked snapshot per reload (~30 reloads here,
/// ~60 in the script's 60 s run) or 150 bytes per query (12 500 queries
/// here, 30 000 there) would cross it.
const RSS_GROWTH_LIMIT_KB: u64 = 4 * 1024;

/// The six endpoints: region name and loopback address.
const ENDPOINTS: [(&str, Ipv4Addr); 6] = [
    ("eu", Ipv4Addr::new(127, 0, 0, 11)),
    ("eu", Ipv4Addr::new(127, 0, 0, 12)),
    ("us", Ipv4Addr::new(127, 0, 0, 21)),
    ("us", Ipv4Addr::new(127, 0, 0, 22)),
    ("ap", Ipv4Addr::new(127, 0, 0, 31)),
    ("ap", Ipv4Addr::new(127, 0, 0, 32)),
];

/// The longest an endpoint may still be answered after it died.
fn fall_bound() -> Duration {
    INTERVAL * FALL + TIMEOUT + GRACE
}

fn load_duration() -> Duration {
    let secs = std::env::var("GSLB_CHAOS_SECS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(25)
        .clamp(8, 600);
    Duration::from_secs(secs)
}

#[test]
fn chaos_drill_loses_no_query_and_serves_no_stale_endpoint() {
    let duration = load_duration();
    let dir = TempDir::new("chaos");
    let mut backends: Vec<Backend> = ENDPOINTS
        .iter()
        .map(|(_, ip)| Backend::start(*ip))
        .collect();
    let ports: Vec<u16> = backends.iter().map(|b| b.addr.port()).collect();
    let csv_a = std::fs::read_to_string(repo_path("geoip/demo-city.csv")).expect("demo csv");
    let csv_b = format!("{csv_a}# swapped-in variant\n198.18.0.0/15,DE,EU,HE,50.11,8.68\n");
    build_mmdb(dir.path(), &csv_a);
    let config_path = dir.path().join("gslb.toml");
    std::fs::write(&config_path, config(&ports, Variant::Good(0))).expect("write config");

    let mut gslb = Gslb::start(&config_path, dir.path());
    // Every endpoint starts up (initial = "up") and is alive.
    let load = Load::start(gslb.addr, duration);
    let schedule = schedule(duration);
    let start = load.start;
    let mut kills: Vec<(Ipv4Addr, Instant, Option<Instant>)> = Vec::new();
    let (mut good_reloads, mut bad_reloads, mut db_swaps) = (0usize, 0usize, 0usize);
    let mut rss_start = None;
    for (at, event) in schedule {
        let now = start.elapsed();
        if at > now {
            std::thread::sleep(at - now);
        }
        match event {
            Event::SampleRss => rss_start = Some(rss_kb(gslb.child.id())),
            Event::Kill(indices) => {
                for index in indices {
                    backends[index].stop();
                    kills.push((ENDPOINTS[index].1, Instant::now(), None));
                }
            }
            Event::Restart(indices) => {
                for index in indices {
                    backends[index].restart();
                    let ip = ENDPOINTS[index].1;
                    if let Some(kill) = kills.iter_mut().rev().find(|k| k.0 == ip) {
                        kill.2 = Some(Instant::now());
                    }
                }
            }
            Event::Reload(good) => {
                let variant = if good {
                    good_reloads += 1;
                    Variant::Good(good_reloads)
                } else {
                    bad_reloads += 1;
                    Variant::Bad(bad_reloads)
                };
                std::fs::write(&config_path, config(&ports, variant)).expect("write config");
                gslb.hangup();
            }
            Event::RestoreGoodFile => {
                std::fs::write(&config_path, config(&ports, Variant::Good(good_reloads)))
                    .expect("write config");
            }
            Event::SwapDb => {
                db_swaps += 1;
                build_mmdb(dir.path(), if db_swaps % 2 == 1 { &csv_b } else { &csv_a });
                gslb.hangup();
            }
        }
    }
    let replies = load.finish();
    let alive = gslb.is_running();
    let rss_end = rss_kb(gslb.child.id());
    let rss_start = rss_start.expect("RSS sampled");
    // Let the last reload's log line land.
    std::thread::sleep(Duration::from_millis(300));
    let log = gslb.log();

    // --- evaluate ------------------------------------------------------------
    let bound = fall_bound();
    let sent = replies.len();
    let mut lost = 0usize;
    let mut servfail = 0usize;
    let mut other_rcode = 0usize;
    let mut empty = 0usize;
    let mut stale: Vec<String> = Vec::new();
    // Per kill: the latest answer still naming the endpoint while it was dead.
    let mut worst_lag = Duration::ZERO;
    let mut within_bound = 0usize;
    // Answers whose first address is outside the client's home region:
    // failovers (the load cycles eu, us, ap clients by query number).
    let mut failovers = 0usize;
    for (n, (sent_at, reply)) in replies.iter().enumerate() {
        let Some((received_at, rcode, addresses)) = reply else {
            lost += 1;
            continue;
        };
        if *received_at - *sent_at > LOST_AFTER {
            lost += 1;
            continue;
        }
        match rcode {
            0 => {}
            2 => servfail += 1,
            _ => other_rcode += 1,
        }
        if *rcode == 0 && addresses.is_empty() {
            empty += 1;
        }
        let home = ["eu", "us", "ap"][n % 3];
        let region_of = |a: &Ipv4Addr| ENDPOINTS.iter().find(|(_, ip)| ip == a).map(|(r, _)| *r);
        if addresses
            .first()
            .and_then(region_of)
            .is_some_and(|r| r != home)
        {
            failovers += 1;
        }
        for address in addresses {
            // Dead at the moment the reply was generated (it was sent after
            // `sent_at`), and for longer than the bound.
            let dead_since = kills
                .iter()
                .filter(|(ip, killed, restarted)| {
                    ip == address
                        && *killed <= *sent_at
                        && restarted.is_none_or(|r| r > *received_at)
                })
                .map(|(_, killed, _)| *killed)
                .min();
            if let Some(killed) = dead_since {
                worst_lag = worst_lag.max(*sent_at - killed);
                within_bound += 1;
            }
            if let Some(killed) = dead_since
                && *sent_at - killed > bound
            {
                stale.push(format!(
                    "{address} answered at +{:?}, dead since +{:?} ({:?} > {bound:?})",
                    *sent_at - start,
                    killed.saturating_duration_since(start),
                    *sent_at - killed
                ));
            }
        }
    }
    let reloaded = log.matches("reloaded configuration").count();
    let reload_failed = log.matches("reload failed").count();
    let endpoint_kills = kills.len();
    let report = format!(
        "chaos drill over {duration:?}: queries sent {sent}, lost {lost}, servfail {servfail}, \
         other rcodes {other_rcode}, empty answers {empty}, stale answers {} (fall bound {bound:?}); \
         answers naming a dead endpoint within the bound {within_bound} (latest {worst_lag:?} after its death), \
         failover answers {failovers}; endpoint kills {endpoint_kills}; reloads sent good {good_reloads} / bad {bad_reloads}, \
         db swaps {db_swaps}; logged reloaded {reloaded} / failed {reload_failed}; \
         process alive {alive}; RSS {rss_start} kB -> {rss_end} kB ({:+} kB, limit +{RSS_GROWTH_LIMIT_KB} kB)",
        stale.len(),
        rss_end as i64 - rss_start as i64
    );
    println!("{report}");
    let tail: String = log.lines().rev().take(40).collect::<Vec<_>>().join("\n");
    assert!(alive, "{report}\n{tail}");
    assert_eq!(lost, 0, "{report}");
    assert_eq!(servfail, 0, "{report}");
    assert_eq!(other_rcode + empty, 0, "{report}");
    assert!(stale.is_empty(), "{report}\n{}", stale.join("\n"));
    assert_eq!(reloaded, good_reloads + db_swaps, "{report}\n{tail}");
    assert_eq!(reload_failed, bad_reloads, "{report}\n{tail}");
    assert!(
        rss_end.saturating_sub(rss_start) <= RSS_GROWTH_LIMIT_KB,
        "{report}"
    );
}

// ---------------------------------------------------------------- schedule

#[derive(Debug, Clone)]
enum Event {
    SampleRss,
    Kill(Vec<usize>),
    Restart(Vec<usize>),
    /// `true`: a good configuration; `false`: a bad one.
    Reload(bool),
    /// Puts a good configuration back (no signal) after a bad reload, so a
    /// later SIGHUP for a database swap reloads a valid file.
    RestoreGoodFile,
    SwapDb,
}

/// The drill's timeline, relative to the start of the load.
///
/// Kills every 1.2 s, each lasting 2.4 s, cycling eu, us, ap: even steps kill
/// both endpoints of the region (failover to the next region), odd steps one
/// endpoint. At most two steps overlap and they hit different regions, so
/// one region is always whole and no answer has to fail open. Reloads every
/// 1 s alternate good and bad; database swaps every 3 s fall between them.
fn schedule(duration: Duration) -> Vec<(Duration, Event)> {
    let secs = |s: f64| Duration::from_secs_f64(s);
    let end = duration.as_secs_f64();
    let mut events = vec![(secs(1.0), Event::SampleRss)];
    let mut step = 0usize;
    loop {
        let at = 1.5 + 1.2 * step as f64;
        if at + 2.4 > end - 1.0 {
            break;
        }
        let region = step % 3;
        let victims = if step.is_multiple_of(2) {
            vec![2 * region, 2 * region + 1]
        } else {
            vec![2 * region + (step / 2) % 2]
        };
        events.push((secs(at), Event::Kill(victims.clone())));
        events.push((secs(at + 2.4), Event::Restart(victims)));
        step += 1;
    }
    let mut reload = 0usize;
    loop {
        let at = 0.7 + reload as f64;
        if at > end - 1.0 {
            break;
        }
        let good = reload.is_multiple_of(2);
        events.push((secs(at), Event::Reload(good)));
        if !good {
            events.push((secs(at + 0.3), Event::RestoreGoodFile));
        }
        reload += 1;
    }
    let mut swap = 0usize;
    loop {
        let at = 2.2 + 3.0 * swap as f64;
        if at > end - 1.0 {
            break;
        }
        events.push((secs(at), Event::SwapDb));
        swap += 1;
    }
    // Restarts before kills at the same instant (a restart ends an older step).
    events.sort_by(|a, b| {
        let rank = |e: &Event| match e {
            Event::Restart(_) => 0,
            _ => 1,
        };
        a.0.cmp(&b.0).then(rank(&a.1).cmp(&rank(&b.1)))
    });
    events
}

// ---------------------------------------------------------------- config

#[derive(Debug, Clone, Copy)]
enum Variant {
    /// A valid configuration; the number varies the TTL, and every third
    /// one changes the check (which restarts the probers).
    Good(usize),
    /// An invalid one: odd numbers are TOML syntax errors, even ones name
    /// an unknown pool.
    Bad(usize),
}

fn config(ports: &[u16], variant: Variant) -> String {
    let zone = repo_path("zones/example.test.zone");
    let endpoints = |region: &str| {
        ENDPOINTS
            .iter()
            .zip(ports)
            .filter(|((r, _), _)| *r == region)
            .map(|((_, ip), port)| format!("{{ address = \"{ip}\", check_port = {port} }}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (ttl, expect, broken) = match variant {
        Variant::Good(n) => (
            5 + (n % 2) as u32,
            if n % 3 == 2 {
                "expect_status = [\"200-299\"]"
            } else {
                ""
            },
            "",
        ),
        Variant::Bad(n) if n % 2 == 1 => (5, "", "[services.\"broken\n"),
        Variant::Bad(_) => (
            5,
            "",
            "[services.\"bad.example.test\"]\npolicy = \"failover\"\npools = [\"nowhere\"]\n",
        ),
    };
    format!(
        r#"
[server]
max_udp_payload = 1232
udp_workers = 2

[[zone]]
origin = "example.test"
file = "{zone}"

[geoip]
database = "geo.mmdb"

[ecs]
enabled = true

[checks.web]
kind = "http"
interval = "{interval}ms"
timeout = "{timeout}ms"
fall = {FALL}
rise = 2
jitter = 0.0
path = "/health"
{expect}

[pools.eu]
check = "web"
endpoints = [{eu}]

[pools.us]
check = "web"
endpoints = [{us}]

[pools.ap]
check = "web"
endpoints = [{ap}]

[services."www.example.test"]
policy = "geo"
selection = "multivalue"
max_records = 2
ttl = {ttl}

[services."www.example.test".geo]
continent = {{ EU = ["eu", "us", "ap"], NA = ["us", "eu", "ap"], AS = ["ap", "us", "eu"] }}
default = ["us", "eu", "ap"]
{broken}"#,
        zone = zone.display(),
        interval = INTERVAL.as_millis(),
        timeout = TIMEOUT.as_millis(),
        eu = endpoints("eu"),
        us = endpoints("us"),
        ap = endpoints("ap"),
    )
}

fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// Builds `geo.mmdb` in `dir` from CSV text with `gslb geoip build`, then
/// renames it over the served file (atomic on one file system).
fn build_mmdb(dir: &Path, csv: &str) {
    let source = dir.join("geo.csv");
    std::fs::write(&source, csv).expect("write csv");
    let fresh = dir.join("geo.mmdb.new");
    let output = gslb_command()
        .args(["geoip", "build"])
        .arg(&source)
        .arg(&fresh)
        .output()
        .expect("run gslb geoip build");
    assert!(
        output.status.success(),
        "geoip build failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::rename(&fresh, dir.join("geo.mmdb")).expect("rename mmdb");
}

/// Resident set size of a process in kB (`VmRSS` of /proc/PID/status).
fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kb| kb.parse().ok())
        .unwrap_or(0)
}

// ---------------------------------------------------------------- gslb

/// `gslb serve -c CONFIG --listen 127.0.0.1:0`, stderr to a log file, killed on drop.
struct Gslb {
    child: Child,
    addr: SocketAddr,
    log_path: PathBuf,
}

impl Gslb {
    fn start(config: &Path, dir: &Path) -> Gslb {
        let log_path = dir.join("gslb.log");
        let log = std::fs::File::create(&log_path).expect("create log");
        let mut child = gslb_command()
            .args(["serve", "-c"])
            .arg(config)
            .args(["--listen", "127.0.0.1:0"])
            .env("RUST_LOG", "gslb=info")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn gslb");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(rest) = line.strip_prefix("listening on ")
                        && let Some(addr) = rest.split_whitespace().next()
                    {
                        break addr.parse().expect("listening address");
                    }
                }
                _ => panic!(
                    "gslb exited before listening:\n{}",
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                ),
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Gslb {
            child,
            addr,
            log_path,
        }
    }

    fn hangup(&self) {
        let status = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -HUP failed");
    }

    fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

impl Drop for Gslb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------- load

/// One query's fate: when it was sent, and (reply time, rcode, A records).
type Fate = (Instant, Option<(Instant, u16, Vec<Ipv4Addr>)>);

/// The client thread: paced UDP queries with ECS, every reply recorded.
struct Load {
    start: Instant,
    thread: JoinHandle<Vec<Fate>>,
}

impl Load {
    fn start(server: SocketAddr, duration: Duration) -> Load {
        let start = Instant::now();
        let thread = std::thread::spawn(move || run_load(server, start, duration));
        Load { start, thread }
    }

    fn finish(self) -> Vec<Fate> {
        self.thread.join().expect("load thread panicked")
    }
}

fn run_load(server: SocketAddr, start: Instant, duration: Duration) -> Vec<Fate> {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind client");
    socket.connect(server).expect("connect");
    socket
        .set_read_timeout(Some(Duration::from_millis(1)))
        .expect("timeout");
    let options = [
        ecs_option(1, 24, 0, &[81, 2, 69]),           // GB: EU
        ecs_option(1, 24, 0, &[216, 160, 83]),        // US: NA
        ecs_option(2, 32, 0, &[0x20, 0x01, 2, 0x18]), // JP: AS
    ];
    let total = (duration.as_millis() as u64 * QUERIES_PER_SEC / 1000) as usize;
    assert!(total <= usize::from(u16::MAX), "IDs would wrap");
    let mut fates: Vec<Fate> = Vec::with_capacity(total);
    let gap = Duration::from_micros(1_000_000 / QUERIES_PER_SEC);
    let mut buf = vec![0u8; 4096];
    let mut drain = |socket: &UdpSocket, fates: &mut Vec<Fate>| {
        while let Ok(len) = socket.recv(&mut buf) {
            let now = Instant::now();
            let Some(reply) = parse_reply(&buf[..len]) else {
                continue;
            };
            let Some(fate) = fates.get_mut(usize::from(reply.id)) else {
                continue;
            };
            if fate.1.is_some() {
                continue;
            }
            let addresses = reply
                .answer
                .iter()
                .filter(|r| r.rtype == common::rtype::A && r.rdata.len() == 4)
                .map(|r| Ipv4Addr::new(r.rdata[0], r.rdata[1], r.rdata[2], r.rdata[3]))
                .collect();
            fate.1 = Some((now, reply.rcode(), addresses));
        }
    };
    for n in 0..total {
        let due = start + gap * n as u32;
        while Instant::now() < due {
            drain(&socket, &mut fates);
        }
        let query = common::QueryBuilder::new(n as u16, "www.example.test", common::rtype::A)
            .edns(1232, 0, options[n % options.len()].clone())
            .build();
        fates.push((Instant::now(), None));
        let _ = socket.send(&query);
    }
    let last = Instant::now();
    while last.elapsed() < LOST_AFTER + Duration::from_millis(200) {
        drain(&socket, &mut fates);
    }
    fates
}

// ---------------------------------------------------------------- backends

/// A minimal HTTP server on a loopback address answering 200 to anything;
/// `stop` closes its listener (connections refused), `restart` rebinds the
/// same address and port.
struct Backend {
    addr: SocketAddr,
    running: Option<(Arc<AtomicBool>, JoinHandle<()>)>,
}

impl Backend {
    fn start(ip: Ipv4Addr) -> Backend {
        let listener = TcpListener::bind((IpAddr::V4(ip), 0)).expect("bind backend");
        let mut backend = Backend {
            addr: listener.local_addr().expect("backend address"),
            running: None,
        };
        backend.serve(listener);
        backend
    }

    fn stop(&mut self) {
        if let Some((stop, thread)) = self.running.take() {
            stop.store(true, Ordering::SeqCst);
            // Wake the blocking accept.
            let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
            let _ = thread.join();
        }
    }

    fn restart(&mut self) {
        assert!(self.running.is_none(), "restart of a running backend");
        let listener = TcpListener::bind(self.addr).expect("rebind backend");
        self.serve(listener);
    }

    fn serve(&mut self, listener: TcpListener) {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    break; // drops the listener
                }
                if let Ok(stream) = stream {
                    respond(stream);
                }
            }
        });
        self.running = Some((stop, thread));
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop();
    }
}

fn respond(mut stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let _ = stream.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n",
    );
}

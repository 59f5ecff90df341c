//! Health checking end to end: the real `gslb` binary probes real HTTP,
//! HTTPS and TCP servers on loopback addresses, and `dig` shows the answers
//! move when those servers die, recover or report trouble.
//!
//! Every wait is a bounded poll (deadline 10 s) for an answer to change;
//! there are no timing thresholds. The harness is self-contained on purpose.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Longest wait for any expected change.
const DEADLINE: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------- gslb

/// A running `gslb serve`, killed on drop.
struct Gslb {
    child: Child,
    addr: SocketAddr,
    config: PathBuf,
    dir: PathBuf,
}

impl Gslb {
    /// Writes `config` (with `@ZONE@` replaced by the demo zone's path) and serves it.
    fn start(name: &str, config: &str) -> Gslb {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "gslb-health-{}-{}-{name}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("gslb.toml");
        std::fs::write(&path, expand(config)).unwrap();
        let log = std::fs::File::create(dir.join("gslb.log")).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_gslb"))
            .args(["serve", "-c"])
            .arg(&path)
            .args(["--listen", "127.0.0.1:0"])
            .env("RUST_LOG", "gslb=debug")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            let line = match lines.next() {
                Some(Ok(line)) => line,
                _ => {
                    let log = std::fs::read_to_string(dir.join("gslb.log")).unwrap_or_default();
                    panic!("gslb exited before listening:\n{log}");
                }
            };
            if let Some(rest) = line.strip_prefix("listening on ") {
                let addr = rest.split_whitespace().next().unwrap();
                break addr.parse().unwrap();
            }
        };
        Gslb {
            child,
            addr,
            config: path,
            dir,
        }
    }

    /// `dig +noall +answer` lines for `name`.
    fn answer(&self, name: &str) -> Vec<String> {
        let output = Command::new("dig")
            .arg(format!("@{}", self.addr.ip()))
            .args(["-p", &self.addr.port().to_string()])
            .args([
                "+norec", "+noall", "+answer", "+time=1", "+tries=1", name, "A",
            ])
            .output()
            .expect("dig must be installed");
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .filter(|l| !l.is_empty() && !l.starts_with(';'))
            .collect()
    }

    /// The addresses answered for `name`, sorted.
    fn ips(&self, name: &str) -> Vec<String> {
        let mut ips: Vec<String> = self
            .answer(name)
            .iter()
            .filter_map(|l| l.split(' ').next_back().map(str::to_string))
            .collect();
        ips.sort();
        ips
    }

    /// Polls until `name` is answered with exactly `want`; returns how long it took.
    fn wait_for(&self, name: &str, want: &[&str]) -> Duration {
        let start = Instant::now();
        let mut last = Vec::new();
        while start.elapsed() < DEADLINE {
            last = self.ips(name);
            if last == want {
                return start.elapsed();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "{name}: wanted {want:?}, still {last:?} after {DEADLINE:?}\n{}",
            self.log()
        );
    }

    /// Rewrites the configuration and sends SIGHUP.
    fn reload(&self, config: &str) {
        std::fs::write(&self.config, expand(config)).unwrap();
        let status = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("gslb.log")).unwrap_or_default()
    }
}

impl Drop for Gslb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn expand(config: &str) -> String {
    let zone = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("zones/example.test.zone");
    config.replace("@ZONE@", &zone.display().to_string())
}

// ---------------------------------------------------------------- backends

/// What a backend answers.
#[derive(Clone)]
struct Reply {
    status: u16,
    body: String,
    delay: Duration,
}

/// A tiny HTTP (or HTTPS, or bare TCP) server on a loopback address whose
/// reply can be changed and which can really stop listening and restart on
/// the same port.
struct Backend {
    addr: SocketAddr,
    reply: Arc<Mutex<Reply>>,
    tls: Option<Arc<rustls::ServerConfig>>,
    raw_tcp: bool,
    running: Option<(Arc<AtomicBool>, JoinHandle<()>)>,
}

impl Backend {
    fn http(ip: &str) -> Backend {
        Self::new(ip, None, false)
    }

    fn https(ip: &str, config: Arc<rustls::ServerConfig>) -> Backend {
        Self::new(ip, Some(config), false)
    }

    /// Accepts and closes connections; nothing else.
    fn tcp(ip: &str) -> Backend {
        Self::new(ip, None, true)
    }

    fn new(ip: &str, tls: Option<Arc<rustls::ServerConfig>>, raw_tcp: bool) -> Backend {
        let ip: IpAddr = ip.parse().unwrap();
        let listener = TcpListener::bind((ip, 0)).unwrap();
        let mut backend = Backend {
            addr: listener.local_addr().unwrap(),
            reply: Arc::new(Mutex::new(Reply {
                status: 200,
                body: "ok\n".to_string(),
                delay: Duration::ZERO,
            })),
            tls,
            raw_tcp,
            running: None,
        };
        backend.serve(listener);
        backend
    }

    fn port(&self) -> u16 {
        self.addr.port()
    }

    fn set(&self, status: u16, body: &str) {
        let mut reply = self.reply.lock().unwrap();
        reply.status = status;
        reply.body = body.to_string();
    }

    /// Makes every response wait `delay` before it is written.
    fn set_delay(&self, delay: Duration) {
        self.reply.lock().unwrap().delay = delay;
    }

    /// Closes the listener: connections are refused from now on.
    fn stop(&mut self) {
        if let Some((stop, thread)) = self.running.take() {
            stop.store(true, Ordering::SeqCst);
            // Wake the blocking accept.
            let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
            thread.join().unwrap();
        }
    }

    /// Listens again on the same address and port.
    fn restart(&mut self) {
        assert!(self.running.is_none());
        let listener = TcpListener::bind(self.addr).unwrap();
        self.serve(listener);
    }

    fn serve(&mut self, listener: TcpListener) {
        let stop = Arc::new(AtomicBool::new(false));
        let (reply, tls, raw_tcp) = (self.reply.clone(), self.tls.clone(), self.raw_tcp);
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    break; // drops the listener
                }
                let Ok(stream) = stream else { continue };
                if raw_tcp {
                    continue;
                }
                let reply = reply.lock().unwrap().clone();
                let tls = tls.clone();
                std::thread::spawn(move || handle(stream, &reply, tls));
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

fn handle(stream: TcpStream, reply: &Reply, tls: Option<Arc<rustls::ServerConfig>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    match tls {
        None => respond(stream, reply),
        Some(config) => {
            let Ok(connection) = rustls::ServerConnection::new(config) else {
                return;
            };
            respond(rustls::StreamOwned::new(connection, stream), reply);
        }
    }
}

fn respond(mut stream: impl Read + Write, reply: &Reply) {
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    std::thread::sleep(reply.delay);
    let response = format!(
        "HTTP/1.1 {} X\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        reply.status,
        reply.body.len(),
        reply.body
    );
    let _ = stream.write_all(response.as_bytes());
    let _ = stream.flush();
}

fn self_signed_tls(name: &str) -> Arc<rustls::ServerConfig> {
    let certified = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![certified.cert.der().clone()], key)
    .unwrap();
    Arc::new(config)
}

// ---------------------------------------------------------------- configs

/// A zone plus fast checks; pools and services are appended by each test.
fn config(rest: &str) -> String {
    format!(
        r#"
[[zone]]
origin = "example.test"
file = "@ZONE@"

[checks.web]
kind = "http"
interval = "200ms"
timeout = "150ms"
fall = 2
rise = 2
path = "/health"
{rest}
"#
    )
}

fn failover_service(name: &str, pools: &str, extra: &str) -> String {
    format!(
        r#"
[services."{name}"]
policy = "failover"
pools = [{pools}]
ttl = 5
{extra}
"#
    )
}

const WWW: &str = "www.example.test";

// ---------------------------------------------------------------- tests

#[test]
fn dead_backend_moves_answers_to_next_pool_and_back() {
    let mut eu = Backend::http("127.0.0.11");
    let us = Backend::http("127.0.0.12");
    let gslb = Gslb::start(
        "failover",
        &config(&format!(
            r#"
[pools.eu]
check = "web"
endpoints = [{{ address = "127.0.0.11", check_port = {} }}]
[pools.us]
check = "web"
endpoints = [{{ address = "127.0.0.12", check_port = {} }}]
{}"#,
            eu.port(),
            us.port(),
            failover_service(WWW, r#""eu", "us""#, "")
        )),
    );
    gslb.wait_for(WWW, &["127.0.0.11"]);
    for run in 1..=3 {
        eu.stop();
        let down = gslb.wait_for(WWW, &["127.0.0.12"]);
        eu.restart();
        let up = gslb.wait_for(WWW, &["127.0.0.11"]);
        println!(
            "run {run}: backend killed -> first answer without it after {} ms; restarted -> back after {} ms (interval 200 ms, fall 2, rise 2)",
            down.as_millis(),
            up.as_millis()
        );
    }
}

#[test]
fn one_endpoint_down_leaves_the_other() {
    let a = Backend::http("127.0.0.11");
    let mut b = Backend::http("127.0.0.21");
    let gslb = Gslb::start(
        "two",
        &config(&format!(
            r#"
[pools.eu]
check = "web"
endpoints = [
  {{ address = "127.0.0.11", check_port = {} }},
  {{ address = "127.0.0.21", check_port = {} }},
]
{}"#,
            a.port(),
            b.port(),
            failover_service(
                WWW,
                r#""eu""#,
                "selection = \"multivalue\"\nmax_records = 2"
            )
        )),
    );
    gslb.wait_for(WWW, &["127.0.0.11", "127.0.0.21"]);
    b.stop();
    gslb.wait_for(WWW, &["127.0.0.11"]);
    b.restart();
    gslb.wait_for(WWW, &["127.0.0.11", "127.0.0.21"]);
}

#[test]
fn https_self_signed_passes_only_without_verification() {
    let tls = self_signed_tls("secure.example.test");
    let backend = Backend::https("127.0.0.31", tls);
    let checks = r#"
[checks.insecure]
kind = "https"
interval = "200ms"
timeout = "150ms"
fall = 2
rise = 2
host = "secure.example.test"
tls_verify = false
initial = "down"
[checks.strict]
kind = "https"
interval = "200ms"
timeout = "150ms"
fall = 2
rise = 2
host = "secure.example.test"
tls_verify = true
initial = "up"
"#;
    let gslb = Gslb::start(
        "https",
        &config(&format!(
            r#"{checks}
[pools.insecure]
check = "insecure"
endpoints = [{{ address = "127.0.0.31", check_port = {port} }}]
[pools.strict]
check = "strict"
endpoints = [{{ address = "127.0.0.32", check_address = "127.0.0.31", check_port = {port} }}]
{}{}"#,
            failover_service(
                "insecure.example.test",
                r#""insecure""#,
                "all_down = \"nodata\""
            ),
            failover_service(
                "strict.example.test",
                r#""strict""#,
                "all_down = \"nodata\""
            ),
            port = backend.port(),
        )),
    );
    // Initially down: answered only once probes over TLS succeeded.
    gslb.wait_for("insecure.example.test", &["127.0.0.31"]);
    // Initially up: the unverifiable certificate takes it down.
    gslb.wait_for("strict.example.test", &[]);
    let log = gslb.log();
    assert!(
        log.contains("reason=tls") || log.contains("reason=\"tls\""),
        "{log}"
    );
}

#[test]
fn body_mismatch_takes_endpoint_down() {
    let backend = Backend::http("127.0.0.41");
    let gslb = Gslb::start(
        "body",
        &config(&format!(
            r#"
[checks.body]
kind = "http"
interval = "200ms"
timeout = "150ms"
fall = 2
rise = 2
body_contains = "ok"
[pools.eu]
check = "body"
endpoints = [{{ address = "127.0.0.41", check_port = {} }}]
{}"#,
            backend.port(),
            failover_service(WWW, r#""eu""#, "all_down = \"nodata\"")
        )),
    );
    gslb.wait_for(WWW, &["127.0.0.41"]);
    backend.set(200, "starting");
    gslb.wait_for(WWW, &[]);
    backend.set(200, "all ok");
    gslb.wait_for(WWW, &["127.0.0.41"]);
}

#[test]
fn json_unhealthy_is_down_and_degraded_is_answered() {
    let backend = Backend::http("127.0.0.51");
    backend.set(200, r#"{"status":"degraded","cpu":50}"#);
    let gslb = Gslb::start(
        "json",
        &config(&format!(
            r#"
[checks.json]
kind = "http"
interval = "200ms"
timeout = "150ms"
fall = 2
rise = 2
initial = "down"
[checks.json.json]
degraded_weight_percent = 50
down_when = {{ cpu = 95.0 }}
[pools.eu]
check = "json"
endpoints = [{{ address = "127.0.0.51", check_port = {} }}]
{}"#,
            backend.port(),
            failover_service(WWW, r#""eu""#, "all_down = \"nodata\"")
        )),
    );
    // Initially down: degraded counts as passing, so it comes up.
    gslb.wait_for(WWW, &["127.0.0.51"]);
    backend.set(200, r#"{"status":"unhealthy"}"#);
    gslb.wait_for(WWW, &[]);
    backend.set(200, r#"{"status":"healthy","cpu":20}"#);
    gslb.wait_for(WWW, &["127.0.0.51"]);
    backend.set(200, r#"{"status":"healthy","cpu":99}"#);
    gslb.wait_for(WWW, &[]);
    backend.set(200, "not json");
    std::thread::sleep(Duration::from_millis(500));
    assert!(gslb.ips(WWW).is_empty());
    let log = gslb.log();
    assert!(
        log.contains("reason=json") || log.contains("reason=\"json\""),
        "{log}"
    );
}

#[test]
fn tcp_check_follows_the_listener() {
    let mut backend = Backend::tcp("127.0.0.61");
    let gslb = Gslb::start(
        "tcp",
        &config(&format!(
            r#"
[checks.tcp]
kind = "tcp"
interval = "200ms"
timeout = "150ms"
fall = 2
rise = 2
port = {}
[pools.eu]
check = "tcp"
endpoints = [{{ address = "127.0.0.61" }}]
{}"#,
            backend.port(),
            failover_service(WWW, r#""eu""#, "all_down = \"nodata\"")
        )),
    );
    gslb.wait_for(WWW, &["127.0.0.61"]);
    backend.stop();
    gslb.wait_for(WWW, &[]);
    backend.restart();
    gslb.wait_for(WWW, &["127.0.0.61"]);
}

#[test]
fn down_state_survives_reload() {
    let eu = Backend::http("127.0.0.71");
    let us = Backend::http("127.0.0.72");
    let body = |ttl: u32, interval: &str| {
        format!(
            r#"
[[zone]]
origin = "example.test"
file = "@ZONE@"
[checks.web]
kind = "http"
interval = "{interval}"
timeout = "150ms"
fall = 2
rise = 2
[pools.eu]
check = "web"
endpoints = [{{ address = "127.0.0.71", check_port = {} }}]
[pools.us]
check = "web"
endpoints = [{{ address = "127.0.0.72", check_port = {} }}]
[services."{WWW}"]
policy = "failover"
pools = ["eu", "us"]
ttl = {ttl}
"#,
            eu.port(),
            us.port()
        )
    };
    let gslb = Gslb::start("reload", &body(5, "200ms"));
    gslb.wait_for(WWW, &["127.0.0.71"]);
    eu.set(503, "maintenance");
    gslb.wait_for(WWW, &["127.0.0.72"]);
    // Reload with a new TTL and a changed check (so eu's prober restarts).
    gslb.reload(&body(6, "250ms"));
    let start = Instant::now();
    let first = loop {
        let answer = gslb.answer(WWW);
        if answer.iter().any(|l| l.contains(" 6 IN A ")) {
            break answer;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "reload not applied\n{}",
            gslb.log()
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    assert_eq!(first, vec![format!("{WWW}. 6 IN A 127.0.0.72")]);
    // And it stays down until the backend recovers.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(gslb.ips(WWW), vec!["127.0.0.72"]);
    eu.set(200, "ok");
    gslb.wait_for(WWW, &["127.0.0.71"]);
}

#[test]
fn first_round_decides_before_the_first_answer() {
    let live = Backend::http("127.0.0.81");
    let mut dead = Backend::http("127.0.0.82");
    dead.stop();
    let gslb = Gslb::start(
        "first-round",
        &format!(
            r#"
[health]
wait_for_first_round = true
[[zone]]
origin = "example.test"
file = "@ZONE@"
[checks.slow]
kind = "http"
interval = "2s"
timeout = "500ms"
rise = 3
fall = 3
[checks.late]
kind = "http"
interval = "2s"
timeout = "500ms"
rise = 3
fall = 3
initial = "down"
[pools.eu]
check = "late"
endpoints = [{{ address = "127.0.0.81", check_port = {} }}]
[pools.us]
check = "slow"
endpoints = [{{ address = "127.0.0.82", check_port = {} }}]
{}"#,
            live.port(),
            dead.port(),
            failover_service(WWW, r#""us", "eu""#, "all_down = \"nodata\"")
        ),
    );
    // Without the first round, us (initially up) would answer for seconds
    // and eu (initially down) would need three probes.
    assert_eq!(gslb.ips(WWW), vec!["127.0.0.81"], "{}", gslb.log());
}

#[test]
fn shipped_failover_example_is_valid() {
    let example = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/examples/failover.toml");
    let output = Command::new(env!("CARGO_BIN_EXE_gslb"))
        .args(["check", "-c"])
        .arg(&example)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn fastest_prefers_the_lowest_rtt_and_follows_changes() {
    let fast = Backend::http("127.0.0.41");
    let slow = Backend::http("127.0.0.42");
    slow.set_delay(Duration::from_millis(60));
    let pools = format!(
        r#"
[pools.main]
check = "web"
endpoints = [{{ address = "127.0.0.42", check_port = {} }}, {{ address = "127.0.0.41", check_port = {} }}]
"#,
        slow.port(),
        fast.port()
    );
    let gslb = Gslb::start(
        "fastest",
        &config(&format!(
            "{pools}{}",
            failover_service(WWW, "\"main\"", "selection = \"fastest\"")
        )),
    );
    // The slow endpoint is listed first: only measured RTTs can pick the other.
    let took = gslb.wait_for(WWW, &["127.0.0.41"]);
    println!("fastest chose the quick endpoint after {took:?}");
    // Swap the latencies: the preference follows once the other is clearly faster.
    fast.set_delay(Duration::from_millis(80));
    slow.set_delay(Duration::ZERO);
    let took = gslb.wait_for(WWW, &["127.0.0.42"]);
    println!("fastest moved to the other endpoint after {took:?}");
    // Steady state: the choice does not flap.
    for _ in 0..10 {
        assert_eq!(gslb.ips(WWW), vec!["127.0.0.42"]);
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn failover_answers_use_the_failover_ttl() {
    let mut primary = Backend::http("127.0.0.43");
    let secondary = Backend::http("127.0.0.44");
    let pools = format!(
        r#"
[pools.primary]
check = "web"
endpoints = [{{ address = "127.0.0.43", check_port = {} }}]
[pools.secondary]
check = "web"
endpoints = [{{ address = "127.0.0.44", check_port = {} }}]
"#,
        primary.port(),
        secondary.port()
    );
    let gslb = Gslb::start(
        "failover-ttl",
        &config(&format!(
            "{pools}{}",
            failover_service(WWW, "\"primary\", \"secondary\"", "failover_ttl = 2")
        )),
    );
    gslb.wait_for(WWW, &["127.0.0.43"]);
    assert!(
        gslb.answer(WWW)[0].contains(" 5 IN A "),
        "{:?}",
        gslb.answer(WWW)
    );
    primary.stop();
    gslb.wait_for(WWW, &["127.0.0.44"]);
    let answer = gslb.answer(WWW);
    assert!(answer[0].contains(" 2 IN A 127.0.0.44"), "{answer:?}");
}

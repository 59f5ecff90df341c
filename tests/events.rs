//! Issue 21: events come from health state, not traffic, each once, and go
//! to `[[alerts]]` webhooks. The real binary probes a real loopback HTTP
//! backend whose health answer the test flips; a real loopback HTTP
//! receiver takes the webhook posts (failing the first, so the retry is
//! seen), and a second webhook that never answers shows delivery holds up
//! nothing. Every wait is a bounded poll.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{GslbServer, TempDir, dig, http, poll_until};

const DEADLINE: Duration = Duration::from_secs(20);
const WWW: &str = "www.example.test";

/// A loopback HTTP server answering every request with `status`, keeping
/// the bodies it was sent.
struct Receiver {
    addr: SocketAddr,
    status: Arc<AtomicU16>,
    bodies: Arc<Mutex<Vec<String>>>,
    /// Requests answered with a failure status.
    failed: Arc<Mutex<usize>>,
}

impl Receiver {
    /// `fail_first`: the first request gets a 500 (the sender must retry).
    fn start(status: u16, fail_first: bool) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let status = Arc::new(AtomicU16::new(status));
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let failed = Arc::new(Mutex::new(0));
        let (s, b, f) = (status.clone(), bodies.clone(), failed.clone());
        std::thread::spawn(move || {
            let mut first = fail_first;
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let mut reader = BufReader::new(stream);
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    let line = line.trim_end();
                    if line.is_empty() {
                        break;
                    }
                    if let Some((k, v)) = line.split_once(':')
                        && k.eq_ignore_ascii_case("content-length")
                    {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0u8; length];
                let _ = reader.read_exact(&mut body);
                let mut code = s.load(Ordering::SeqCst);
                if first && length > 0 {
                    first = false;
                    code = 500;
                }
                if code >= 300 {
                    *f.lock().unwrap() += 1;
                } else if length > 0 {
                    b.lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&body).into_owned());
                }
                let mut stream = reader.into_inner();
                let _ = write!(
                    stream,
                    "HTTP/1.1 {code} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                );
            }
        });
        Receiver {
            addr,
            status,
            bodies,
            failed,
        }
    }

    /// The posted JSON bodies so far.
    fn events(&self) -> Vec<serde_json::Value> {
        self.bodies
            .lock()
            .unwrap()
            .iter()
            .map(|b| serde_json::from_str(b).unwrap_or_else(|e| panic!("{e}: {b}")))
            .collect()
    }

    fn count(&self, kind: &str) -> usize {
        self.events().iter().filter(|e| e["kind"] == kind).count()
    }
}

/// A listener that accepts and never answers (a hung webhook).
fn blackhole() -> (SocketAddr, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let thread = std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().take(64) {
            held.push(stream);
        }
    });
    (addr, thread)
}

/// Health and reload-failure webhooks at `hooks`; `operator`, if given,
/// takes operator changes and reloads.
fn config(
    zone: &Path,
    backend: SocketAddr,
    hooks: &[SocketAddr],
    operator: Option<SocketAddr>,
) -> String {
    let alerts: String = hooks
        .iter()
        .map(|addr| {
            format!(
                "[[alerts]]\nurl = \"http://{addr}/hook\"\nevents = [\"endpoint-down\", \"pool-down\", \"failover\", \"reload-failed\"]\n\n"
            )
        })
        .chain(operator.map(|addr| {
            format!(
                "[[alerts]]\nurl = \"http://{addr}/operator\"\nevents = [\"override\", \"weight\", \"reload\"]\n\n"
            )
        }))
        .collect();
    format!(
        r#"
{alerts}
[[zone]]
origin = "example.test"
file = "{zone}"

[checks.web]
kind = "http"
interval = "200ms"
timeout = "150ms"
rise = 1
fall = 1
port = {port}
path = "/health"

[pools.eu]
check = "web"
endpoints = [{{ address = "127.0.0.1" }}]

[pools.us]
endpoints = [{{ address = "198.51.100.10" }}]

[services."{WWW}"]
policy = "failover"
pools = ["eu", "us"]
ttl = 5

# eu is no client's first pool here: its loss moves nobody.
[services."api2.example.test"]
policy = "failover"
pools = ["us", "eu"]
"#,
        zone = zone.display(),
        port = backend.port(),
    )
}

fn answer(server: &GslbServer) -> Vec<String> {
    dig(server.addr(), &[WWW, "A"]).sorted_rdata()
}

#[test]
fn issue_21_health_events_once_each_and_webhooks_with_retry() {
    let dir = TempDir::new("events");
    let zone = Path::new(env!("CARGO_MANIFEST_DIR")).join("zones/example.test.zone");
    let backend = Receiver::start(200, false);
    let hook = Receiver::start(200, true);
    let operator = Receiver::start(200, false);
    let (hung, _hung_thread) = blackhole();
    let path = dir.write(
        "gslb.toml",
        &config(&zone, backend.addr, &[hung, hook.addr], Some(operator.addr)),
    );
    let server = GslbServer::start(&["-c", path.to_str().unwrap(), "--api", "127.0.0.1:0"]);
    assert!(poll_until(DEADLINE, || answer(&server) == ["127.0.0.1"]));

    // The backend fails its health check: endpoint down, pool down and the
    // service's failover, each once, without a single query being needed.
    backend.status.store(503, Ordering::SeqCst);
    let all_down = ["endpoint-down", "pool-down", "failover-started"];
    assert!(
        poll_until(DEADLINE, || all_down.iter().all(|k| hook.count(k) == 1)),
        "webhook got {:?}\n{}",
        hook.events(),
        server.stderr()
    );
    // The first post was answered 500 and retried.
    assert!(*hook.failed.lock().unwrap() >= 1);
    assert_eq!(answer(&server), ["198.51.100.10"]);
    let events = hook.events();
    let down = events
        .iter()
        .find(|e| e["kind"] == "endpoint-down")
        .unwrap();
    assert_eq!(down["subject"], "eu/127.0.0.1");
    assert_eq!(down["level"], "warn");
    assert!(
        down["text"]
            .as_str()
            .unwrap()
            .starts_with("[gslb] endpoint eu/127.0.0.1 down ("),
        "{down}"
    );
    assert!(down["reason"].as_str().unwrap().contains("503"), "{down}");
    let failover = events
        .iter()
        .find(|e| e["kind"] == "failover-started")
        .unwrap();
    assert_eq!(failover["subject"], "www.example.test.");
    assert!(
        !events
            .iter()
            .any(|e| e["subject"] == "api2.example.test." && e["kind"] == "failover-started"),
        "a down second pool is no failover: {events:?}"
    );
    assert!(
        failover["reason"]
            .as_str()
            .unwrap()
            .contains("eu down; answers from us"),
        "{failover}"
    );

    // Recovery: INFO events with how long the outage lasted.
    backend.status.store(200, Ordering::SeqCst);
    let all_up = ["endpoint-up", "pool-up", "failover-ended"];
    assert!(
        poll_until(DEADLINE, || all_up.iter().all(|k| hook.count(k) == 1)),
        "webhook got {:?}",
        hook.events()
    );
    for event in hook
        .events()
        .iter()
        .filter(|e| all_up.contains(&e["kind"].as_str().unwrap()))
    {
        assert_eq!(event["level"], "info", "{event}");
        assert!(event["duration_secs"].as_f64().unwrap() > 0.0, "{event}");
        assert!(
            event["text"].as_str().unwrap().contains(" after "),
            "{event}"
        );
    }
    assert_eq!(answer(&server), ["127.0.0.1"]);

    // Traffic alone makes no event: queries while healthy add nothing.
    for _ in 0..20 {
        answer(&server);
    }
    // An override is an event (on /status and in the log) but not one
    // these webhooks subscribed to; a failed reload is.
    let reply = server.admin(
        "POST",
        "/override?endpoint=us/198.51.100.10&state=up",
        &[],
        "",
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    // A weight change and a good reload are events too; the operator
    // webhook takes those and the override, each once.
    let reply = server.admin(
        "POST",
        "/weight",
        &[],
        r#"{"endpoint":"us/198.51.100.10","weight":0}"#,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(server.admin("POST", "/reload", &[], "").status, 200);
    assert!(
        poll_until(DEADLINE, || ["override", "weight", "reload"]
            .iter()
            .all(|k| operator.count(k) == 1)),
        "operator webhook got {:?}",
        operator.events()
    );
    let weight = operator
        .events()
        .into_iter()
        .find(|e| e["kind"] == "weight")
        .unwrap();
    assert_eq!(weight["subject"], "us/198.51.100.10");
    assert_eq!(weight["level"], "warn", "weight 0 is a loss: {weight}");
    assert!(
        weight["text"]
            .as_str()
            .unwrap()
            .contains("weight us/198.51.100.10: 0"),
        "{weight}"
    );
    // It took none of the health events it did not ask for.
    assert_eq!(operator.count("endpoint-down"), 0);
    std::fs::write(&path, "[server\n").unwrap();
    assert_eq!(server.admin("POST", "/reload", &[], "").status, 422);
    assert!(poll_until(DEADLINE, || hook.count("reload-failed") == 1));
    assert_eq!(hook.count("override"), 0);
    let status = http(server.api(), "GET", "/status", &[], "").json();
    let kinds: Vec<&str> = status["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    for kind in [
        "reload-failed",
        "reload",
        "weight",
        "override",
        "failover-ended",
        "failover-started",
        "endpoint-down",
    ] {
        assert!(kinds.contains(&kind), "{kind} not in {kinds:?}");
    }
    // Each state change once: no kind was posted twice.
    for kind in all_down.iter().chain(&all_up) {
        assert_eq!(hook.count(kind), 1, "{kind}: {:?}", hook.events());
    }
    // Logged once each, WARN for loss and INFO for recovery.
    let stderr = server.stderr();
    let lines = |needle: &str| stderr.lines().filter(|l| l.contains(needle)).count();
    assert_eq!(lines("event=\"endpoint-down\""), 1, "{stderr}");
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("WARN") && l.contains("event=\"pool-down\"")),
        "{stderr}"
    );
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("INFO") && l.contains("event=\"pool-up\"")),
        "{stderr}"
    );
    // The hung webhook held up nothing: DNS answered and the other webhook
    // got everything.
    assert_eq!(answer(&server), ["127.0.0.1"]);
}

#[test]
fn issue_21_alert_settings_are_checked() {
    let dir = TempDir::new("alerts-check");
    let zone = Path::new(env!("CARGO_MANIFEST_DIR")).join("zones/example.test.zone");
    let text = config(&zone, "127.0.0.1:1".parse().unwrap(), &[], None)
        + "\n[[alerts]]\nurl = \"ftp://x\"\nevents = [\"endpoint-down\", \"sideways\"]\n";
    let path = dir.write("gslb.toml", &text);
    let out = common::run_gslb(&["check", "-c", path.to_str().unwrap()]);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("use an http:// or https:// URL"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("unknown alert event \"sideways\""),
        "{}",
        out.stderr
    );
}

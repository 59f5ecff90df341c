//! The status page in a real browser: headless Chromium renders `GET /`,
//! the rendered DOM shows every endpoint with its state class, a screenshot
//! is taken, and a real mouse click (Chrome DevTools Protocol
//! `Input.dispatchMouseEvent` at the button's position) on "force down"
//! takes the endpoint out of the DNS answers, as `dig` shows.
//!
//! Issue 21: the page an operator leaves open, with real probes against a
//! real backend that fails (a long error, shown whole), a forced-up
//! endpoint whose probes fail, shares of answers actually given, the
//! hour's charts and folded events, laid out at 360, 768, 1280 and
//! 1920 px without horizontal overflow (measured in the rendered page) and
//! screenshotted at 360 and 1920 px.
//!
//! Skips with a printed reason when Chromium is not installed
//! (`.ci/run` installs it). The CDP client is a minimal hand-written
//! WebSocket client (RFC 6455 text frames), so no extra crate is needed.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use common::browser::{chromium, chromium_command, run_bounded};
use common::{GslbServer, TempDir, dig, http, poll_until};

const DEADLINE: Duration = Duration::from_secs(20);
const WWW: &str = "www.example.test";

/// The page's configuration: `zone` signed with the key at `key` (a
/// `.private` file), so the DNSSEC panel has a zone to show.
fn config(zone: &str, key: &str) -> String {
    format!(
        r#"
[[zone]]
origin = "example.test"
file = "{zone}"
dnssec = true
dnssec_keys = ["{key}"]

[pools.eu]
coordinates = [50.11, 8.68]
endpoints = [{{ address = "192.0.2.10" }}, {{ address = "192.0.2.11", weight = 2 }}]

[pools.us]
coordinates = [39.04, -77.49]
endpoints = [{{ address = "198.51.100.10" }}, {{ address = "198.51.100.11" }}]

[pools.ap]
backup = true
endpoints = [{{ address = "203.0.113.10" }}]

[services."{WWW}"]
policy = "failover"
pools = ["eu", "us", "ap"]
selection = "multivalue"
max_records = 4
ttl = 5

[services."api2.example.test"]
policy = "failover"
pools = ["us", "eu"]
"#
    )
}

fn answers(server: &GslbServer) -> Vec<String> {
    dig(server.addr(), &[WWW, "A"]).sorted_rdata()
}

#[test]
fn status_page_renders_and_its_buttons_override() {
    let Some(browser) = chromium() else {
        println!("skipped: chromium is not installed (apt-get install chromium)");
        return;
    };
    let dir = TempDir::new("page");
    let zone = Path::new(env!("CARGO_MANIFEST_DIR")).join("zones/example.test.zone");
    let key = gslb::dnssec::keys::generate(
        "example.test.",
        gslb::dnssec::keys::Algorithm::EcdsaP256Sha256,
        &dir.path().join("keys"),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64),
    )
    .expect("generate a key");
    let tag = key
        .to_str()
        .and_then(|k| k.strip_suffix(".private")?.rsplit('+').next())
        .and_then(|t| t.parse::<u16>().ok())
        .expect("key tag in the file name");
    let path = dir.write(
        "gslb.toml",
        &config(&zone.display().to_string(), &key.display().to_string()),
    );
    let server = GslbServer::start(&["-c", path.to_str().unwrap(), "--api", "127.0.0.1:0"]);
    let api = server.api();
    for _ in 0..20 {
        dig(server.addr(), &[WWW, "A"]);
    }
    dig(server.addr(), &["api2.example.test", "A"]);
    // One forced state and one pool override to show.
    let forced = server.admin(
        "POST",
        "/override?endpoint=us/198.51.100.11&state=down",
        &[],
        "",
    );
    assert_eq!(forced.status, 200, "{}", forced.body);
    server.admin("POST", "/override?pool=ap&state=drain", &[], "");
    let url = format!("http://{api}/");

    // 1. The rendered DOM.
    let panel_key = format!("ksk {tag} (alg 13, active)");
    let profile = dir.path().join("profile-dump");
    let mut dump = chromium_command(&browser, &profile);
    dump.arg("--dump-dom").arg(&url);
    let (dom, log) = run_bounded(dump);
    assert!(
        dom.contains("data-endpoint=\"eu/192.0.2.10\""),
        "endpoint row missing:\n{dom}\n{log}"
    );
    for needle in [
        r#"class="endpoint state-up" data-endpoint="eu/192.0.2.11""#,
        r#"class="endpoint state-force-down" data-endpoint="us/198.51.100.11""#,
        r#"class="endpoint state-drain" data-endpoint="ap/203.0.113.10""#,
        r#"class="pool pool-up" data-pool="eu""#,
        r#"class="pool pool-degraded" data-pool="us""#,
        r#"class="pool pool-down" data-pool="ap""#,
        "pool drain",
        r#"data-service="www.example.test.""#,
        "50.1, 8.7",
        r#"<button type="submit" name="state" value="down""#,
        // The DNSSEC panel (issue 20): the zone, its key, re-sign and expiry.
        r#"data-zone="example.test.""#,
        panel_key.as_str(),
        "signatures expire ",
    ] {
        assert!(dom.contains(needle), "missing {needle:?} in:\n{dom}");
    }

    // 2. A screenshot, to look at.
    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("status-page.png");
    let _ = std::fs::remove_file(&shot);
    let mut screenshot = chromium_command(&browser, &dir.path().join("profile-shot"));
    screenshot
        .arg(format!("--screenshot={}", shot.display()))
        .arg("--window-size=1200,900")
        .arg(&url);
    let (_, log) = run_bounded(screenshot);
    assert!(shot.is_file(), "no screenshot: {log}");
    println!("status page screenshot: {}", shot.display());

    // 3. A real click on "force down" of eu/192.0.2.10.
    assert_eq!(answers(&server), ["192.0.2.10", "192.0.2.11"]);
    let mut cdp = Cdp::launch(&browser, &dir.path().join("profile-cdp"));
    cdp.call("Page.enable", serde_json::json!({}));
    cdp.call("Page.navigate", serde_json::json!({ "url": url }));
    let button =
        r#"document.querySelector('[data-endpoint="eu/192.0.2.10"] button[value="down"]')"#;
    assert!(
        poll_until(DEADLINE, || cdp.evaluate(&format!("!!{button}"))
            == serde_json::json!(true)),
        "the button never rendered"
    );
    // The operator types the API token into the page's token field.
    assert_eq!(
        cdp.evaluate("!document.getElementById('token').hidden"),
        serde_json::json!(true),
        "the page asks for no token"
    );
    cdp.evaluate(&format!(
        "(() => {{ const t = document.getElementById('token'); t.value = '{}'; t.dispatchEvent(new Event('change')); }})()",
        server.token()
    ));
    let position = cdp.evaluate(&format!(
        "(() => {{ const b = {button}; b.scrollIntoView({{block: 'center'}}); const r = b.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; }})()"
    ));
    let (x, y) = (position[0].as_f64().unwrap(), position[1].as_f64().unwrap());
    for kind in ["mousePressed", "mouseReleased"] {
        cdp.call(
            "Input.dispatchMouseEvent",
            serde_json::json!({ "type": kind, "x": x, "y": y, "button": "left", "clickCount": 1 }),
        );
    }
    let mut last = Vec::new();
    assert!(
        poll_until(DEADLINE, || {
            last = answers(&server);
            last == ["192.0.2.11"]
        }),
        "the click did not take eu/192.0.2.10 out: {last:?}"
    );
    // The page shows it after its refresh.
    let row = r#"document.querySelector('[data-endpoint="eu/192.0.2.10"]').dataset.state"#;
    assert!(
        poll_until(DEADLINE, || cdp.evaluate(row)
            == serde_json::json!("force-down")),
        "page state: {}",
        cdp.evaluate(row)
    );
    // And "clear" brings it back.
    let clear =
        r#"document.querySelector('[data-endpoint="eu/192.0.2.10"] button[value="none"]').click()"#;
    cdp.evaluate(clear);
    assert!(poll_until(DEADLINE, || answers(&server)
        == ["192.0.2.10", "192.0.2.11"]));
}

/// A loopback HTTP backend answering every request with `status`.
struct Backend {
    addr: SocketAddr,
    status: Arc<AtomicU16>,
}

impl Backend {
    fn start() -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let status = Arc::new(AtomicU16::new(200));
        let answer = status.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                let mut head = [0u8; 2048];
                let _ = stream.read(&mut head);
                let code = answer.load(Ordering::SeqCst);
                let _ = write!(
                    stream,
                    "HTTP/1.1 {code} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                );
            }
        });
        Backend { addr, status }
    }
}

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// A health path long enough that its failure cannot fit a narrow column.
const LONG_PATH: &str = "/healthz/frankfurt-primary/database-and-cache-dependencies?verbose=1&region=eu-central-1&include=replication-lag,connection-pool";

fn incident_config(zone: &Path, backend: SocketAddr, dead_port: u16) -> String {
    format!(
        r#"
[[zone]]
origin = "example.test"
file = "{zone}"

[checks.deep]
kind = "http"
interval = "200ms"
timeout = "150ms"
rise = 1
fall = 2
port = {port}
path = "{LONG_PATH}"

[checks.dead]
kind = "tcp"
interval = "300ms"
timeout = "150ms"
rise = 2
fall = 1
port = {dead_port}

[pools.eu]
check = "deep"
endpoints = [{{ address = "127.0.0.1" }}]

[pools.us]
endpoints = [{{ address = "198.51.100.10" }}, {{ address = "198.51.100.11" }}]

[pools.ap]
check = "dead"
backup = true
endpoints = [{{ address = "127.0.0.1" }}]

[services."{WWW}"]
policy = "failover"
pools = ["eu", "us", "ap"]
ttl = 5

[services."api2.example.test"]
policy = "failover"
pools = ["us", "eu"]
"#,
        zone = zone.display(),
        port = backend.port(),
    )
}

/// What the page shows at one width, measured in the rendered layout.
const LAYOUT_PROBE: &str = r#"(() => {
  const width = document.documentElement.clientWidth;
  // Elements sticking out to the right, outside the tables that scroll.
  const over = [...document.querySelectorAll("body *")]
    .filter((e) => !e.closest(".scroll") && e.getClientRects().length > 0)
    .filter((e) => e.getBoundingClientRect().right > width + 0.5)
    .map((e) => e.tagName + "." + e.className.baseVal + e.className + " " + (e.textContent || "").slice(0, 40));
  const err = document.querySelector('[data-endpoint="eu/127.0.0.1"] .err');
  const ap = document.querySelector('[data-endpoint="ap/127.0.0.1"]');
  const bar = document.querySelector('[data-endpoint="eu/127.0.0.1"] .bar span');
  return {
    width,
    scroll_width: document.documentElement.scrollWidth,
    over,
    endpoints: document.querySelectorAll(".endpoint").length,
    endpoint_charts: document.querySelectorAll("svg.endpoint-chart").length,
    pool_charts: document.querySelectorAll("svg.pool-chart").length,
    service_charts: document.querySelectorAll("svg.service-chart").length,
    // The health strip shows the outage: red (down all bucket) or amber (part of it).
    outage_in_eu_chart: [...document.querySelectorAll('[data-endpoint="eu/127.0.0.1"] svg.endpoint-chart rect')]
      .some((r) => ["var(--down)", "var(--drain)"].includes(r.getAttribute("fill"))),
    error_text: err ? err.textContent : null,
    error_clipped: err ? err.scrollWidth > err.clientWidth + 1 : null,
    error_lines: err ? Math.round(err.getBoundingClientRect().height / parseFloat(getComputedStyle(err).lineHeight)) : 0,
    eu_share_width: bar ? bar.style.width : null,
    forced_up_warns: ap ? !!ap.querySelector(".tag.warn") : false,
    forced_up_state: ap ? ap.dataset.state : null,
    check_line: document.querySelector('[data-endpoint="eu/127.0.0.1"] .check')?.textContent,
    counters: document.querySelector('[data-endpoint="eu/127.0.0.1"] .counters')?.textContent,
    folded: [...document.querySelectorAll("li.ev-folded")].map((li) => li.textContent.slice(0, 200)),
    panels: [...document.querySelectorAll("main section h2")].map((h) => h.textContent),
    // Self-contained: nothing fetched from anywhere but the server itself,
    // nothing linked.
    foreign: performance.getEntriesByType("resource").map((r) => r.name)
      .filter((n) => !n.startsWith(location.origin + "/")),
    linked: document.querySelectorAll("script[src], link[href], img, iframe, object, embed, [style*='url(']").length,
    eu_pool_share_line: !!document.querySelector('[data-pool="eu"] svg.pool-chart path.pool-share'),
    us_weight_tag: [...document.querySelectorAll('[data-pool="us"] .pool-head .tag.ov')].map((t) => t.textContent),
  };
})()"#;

#[test]
fn issue_21_status_page_reads_at_360_and_1920_px() {
    let Some(browser) = chromium() else {
        println!("skipped: chromium is not installed (apt-get install chromium)");
        return;
    };
    let dir = TempDir::new("page-widths");
    let zone = Path::new(env!("CARGO_MANIFEST_DIR")).join("zones/example.test.zone");
    let backend = Backend::start();
    let path = dir.write(
        "gslb.toml",
        &incident_config(&zone, backend.addr, closed_port()),
    );
    let server = GslbServer::start(&["-c", path.to_str().unwrap(), "--api", "127.0.0.1:0"]);
    let api = server.api();
    let status = || http(api, "GET", "/status", &[], "").json();
    let endpoint = |status: &serde_json::Value, key: &str| {
        status["pools"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|p| p["endpoints"].as_array().unwrap().clone())
            .find(|e| e["key"] == key)
            .unwrap_or_else(|| panic!("no endpoint {key}"))
    };
    assert!(poll_until(DEADLINE, || answers(&server) == ["127.0.0.1"]));
    for _ in 0..10 {
        answers(&server);
    }
    // The ap endpoint's probes fail (nothing listens), and an operator
    // forces it up all the same.
    let forced = server.admin("POST", "/override?endpoint=ap/127.0.0.1&state=up", &[], "");
    assert_eq!(forced.status, 200, "{}", forced.body);
    // A pool's runtime weight percent shows on its head.
    let weighted = server.admin(
        "POST",
        "/weight",
        &[],
        r#"{"pool":"us","weight_percent":50}"#,
    );
    assert_eq!(weighted.status, 200, "{}", weighted.body);

    // eu's backend flaps, then stays down: its clients go to us.
    for status_code in [503, 200, 503, 200, 503] {
        backend.status.store(status_code, Ordering::SeqCst);
        let want = if status_code == 200 { "up" } else { "down" };
        assert!(
            poll_until(DEADLINE, || endpoint(&status(), "eu/127.0.0.1")["probe"]
                == want),
            "eu never went {want}"
        );
    }
    assert!(poll_until(DEADLINE, || answers(&server)
        == ["198.51.100.10"]
        || answers(&server) == ["198.51.100.11"]));
    for _ in 0..10 {
        answers(&server);
    }

    // /status: what the page is drawn from.
    let now = status();
    let eu = endpoint(&now, "eu/127.0.0.1");
    assert_eq!(eu["state"], "down");
    assert_eq!(eu["failing"], true);
    let error = eu["last_error"].as_str().unwrap();
    assert!(error.contains(LONG_PATH), "{error}");
    assert_eq!(eu["check_settings"]["kind"], "http");
    assert_eq!(eu["check_settings"]["interval_secs"], 0.2);
    assert_eq!(
        (
            eu["check_settings"]["rise"].as_u64(),
            eu["check_settings"]["fall"].as_u64()
        ),
        (Some(1), Some(2))
    );
    assert!(eu["probe_failures_total"].as_u64().unwrap() >= 2, "{eu}");
    assert!(eu["probes_total"].as_u64().unwrap() > eu["probe_failures_total"].as_u64().unwrap());
    // Its share is of the answers its services gave: some went to us since
    // it died, so it is not 100 % although it gave all of eu's answers.
    let share = eu["share_percent"].as_f64().unwrap();
    assert!(share > 0.0 && share < 100.0, "{eu}");
    let ap = endpoint(&now, "ap/127.0.0.1");
    assert_eq!(
        (
            ap["state"].as_str(),
            ap["probe"].as_str(),
            ap["failing"].as_bool()
        ),
        (Some("force-up"), Some("down"), Some(true)),
        "{ap}"
    );
    // /history: a sample saw eu down (samples every 2 s).
    let history = || http(api, "GET", "/history", &[], "").json();
    assert!(
        poll_until(DEADLINE, || {
            let h = history();
            h["endpoints"]["eu/127.0.0.1"]["usable"]
                .as_array()
                .and_then(|v| v.last().cloned())
                .and_then(|v| v.as_f64())
                .is_some_and(|v| v < 1.0)
        }),
        "history: {}",
        history()
    );
    let h = history();
    assert_eq!(h["bucket_secs"], 30);
    assert!(
        h["services"][format!("{WWW}.")]["us"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a.as_u64() > Some(0))
    );
    assert!(
        h["pools"]["eu"]["answers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a.as_u64() > Some(0))
    );

    // The page at both widths and two between (a tablet, a laptop), laid
    // out by Chromium.
    let url = format!("http://{api}/");
    let mut cdp = Cdp::launch(&browser, &dir.path().join("profile-cdp"));
    cdp.call("Page.enable", serde_json::json!({}));
    for width in [360, 768, 1280, 1920] {
        cdp.call(
            "Emulation.setDeviceMetricsOverride",
            serde_json::json!({ "width": width, "height": 900, "deviceScaleFactor": 1, "mobile": width < 800 }),
        );
        cdp.call("Page.navigate", serde_json::json!({ "url": url }));
        let mut layout = serde_json::Value::Null;
        assert!(
            poll_until(DEADLINE, || {
                layout = cdp.evaluate(LAYOUT_PROBE);
                layout["endpoints"] == 4 && layout["width"] == width
            }),
            "page at {width} px: {layout:#}"
        );
        println!("layout at {width} px: {layout:#}");
        assert_eq!(
            layout["over"],
            serde_json::json!([]),
            "overflow at {width} px: {layout:#}"
        );
        assert_eq!(layout["scroll_width"], width, "{layout:#}");
        assert_eq!(layout["endpoint_charts"], 4, "{layout:#}");
        assert_eq!(layout["pool_charts"], 3, "{layout:#}");
        assert_eq!(layout["service_charts"], 2, "{layout:#}");
        assert_eq!(layout["outage_in_eu_chart"], true, "{layout:#}");
        assert_eq!(layout["eu_pool_share_line"], true, "{layout:#}");
        assert_eq!(layout["foreign"], serde_json::json!([]), "{layout:#}");
        assert_eq!(layout["linked"], 0, "{layout:#}");
        assert_eq!(
            layout["us_weight_tag"],
            serde_json::json!(["weight 50%"]),
            "{layout:#}"
        );
        // The error in full, wrapped (several lines at 360 px), not cut.
        // (Which failure it is may change between probes on a busy
        // machine, a 503 or a timeout; both name the whole URL.)
        let shown = layout["error_text"].as_str().unwrap_or("");
        assert!(shown.contains(LONG_PATH), "{shown:?} lacks {LONG_PATH:?}");
        assert_eq!(layout["error_clipped"], false, "{layout:#}");
        if width == 360 {
            assert!(layout["error_lines"].as_u64().unwrap() >= 3, "{layout:#}");
        }
        assert_ne!(layout["eu_share_width"], "100%", "{layout:#}");
        assert_eq!(layout["forced_up_warns"], true, "{layout:#}");
        assert_eq!(layout["forced_up_state"], "force-up");
        let check = layout["check_line"].as_str().unwrap_or("");
        assert!(
            check.contains("every 200ms") && check.contains("rise 1 / fall 2"),
            "{check}"
        );
        assert!(
            layout["counters"]
                .as_str()
                .unwrap_or("")
                .contains("failures"),
            "{layout:#}"
        );
        // The flapping endpoint's events take one line with counts.
        let folded = layout["folded"].as_array().unwrap();
        assert!(
            folded.iter().any(|f| {
                let f = f.as_str().unwrap();
                f.contains("eu/127.0.0.1")
                    && f.contains("endpoint-down ×3")
                    && f.contains("endpoint-up ×2")
            }),
            "{layout:#}"
        );
    }

    // Screenshots at both widths (whole pages), to look at.
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    for (width, height) in [(360, 3200), (1920, 1400)] {
        let shot = shots.join(format!("status-{width}.png"));
        let _ = std::fs::remove_file(&shot);
        let mut command = chromium_command(&browser, &dir.path().join(format!("profile-{width}")));
        command
            .arg(format!("--screenshot={}", shot.display()))
            .arg(format!("--window-size={width},{height}"))
            .arg(&url);
        let (_, log) = run_bounded(command);
        assert!(shot.is_file(), "no screenshot at {width} px: {log}");
        println!("status page at {width} px: {}", shot.display());
    }
}

/// GETs a DevTools HTTP endpoint (it keeps connections open, so the body is
/// read by its Content-Length); empty on any failure.
fn devtools_get(addr: SocketAddr, path: &str) -> String {
    let Ok(mut stream) = TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    if write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").is_err() {
        return String::new();
    }
    let mut reader = BufReader::new(stream);
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return String::new();
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0u8; length];
    if reader.read_exact(&mut body).is_err() {
        return String::new();
    }
    String::from_utf8_lossy(&body).into_owned()
}

/// A Chromium with a DevTools WebSocket to its first page.
struct Cdp {
    child: Child,
    ws: TcpStream,
    next_id: u64,
}

impl Cdp {
    fn launch(binary: &Path, profile: &Path) -> Cdp {
        let mut command = chromium_command(binary, profile);
        let mut child = command
            .args([
                "--remote-debugging-port=0",
                "--window-size=1200,900",
                "about:blank",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn chromium");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    let _ = tx.send(url.trim().to_string());
                }
            }
        });
        let browser_url = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("DevTools URL");
        let port: SocketAddr = browser_url
            .trim_start_matches("ws://")
            .split('/')
            .next()
            .and_then(|a| a.parse().ok())
            .expect("DevTools address");
        let mut page = None;
        poll_until(DEADLINE, || {
            let list = devtools_get(port, "/json/list");
            page = serde_json::from_str::<serde_json::Value>(&list)
                .ok()
                .and_then(|v| {
                    v.as_array()?
                        .iter()
                        .find(|t| t["type"] == "page")
                        .and_then(|t| t["webSocketDebuggerUrl"].as_str().map(str::to_string))
                });
            page.is_some()
        });
        let page = page.expect("a page target");
        let path = page
            .trim_start_matches("ws://")
            .split_once('/')
            .map(|(_, p)| format!("/{p}"))
            .expect("ws path");
        let mut ws = TcpStream::connect(port).expect("connect DevTools");
        ws.set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        write!(
            ws,
            "GET {path} HTTP/1.1\r\nHost: {port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .expect("handshake");
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            ws.read_exact(&mut byte).expect("handshake reply");
            head.push(byte[0]);
        }
        assert!(
            String::from_utf8_lossy(&head).starts_with("HTTP/1.1 101"),
            "{}",
            String::from_utf8_lossy(&head)
        );
        Cdp {
            child,
            ws,
            next_id: 1,
        }
    }

    /// Calls a CDP method and returns its result (events are skipped).
    fn call(&mut self, method: &str, params: serde_json::Value) -> serde_json::Value {
        let id = self.next_id;
        self.next_id += 1;
        let message = serde_json::json!({ "id": id, "method": method, "params": params });
        self.send(message.to_string().as_bytes());
        loop {
            let reply: serde_json::Value =
                serde_json::from_slice(&self.receive()).expect("CDP JSON");
            if reply["id"] == id {
                assert!(reply.get("error").is_none(), "{method}: {reply}");
                return reply["result"].clone();
            }
        }
    }

    /// Evaluates a JavaScript expression in the page; returns its value.
    fn evaluate(&mut self, expression: &str) -> serde_json::Value {
        let result = self.call(
            "Runtime.evaluate",
            serde_json::json!({ "expression": expression, "returnByValue": true }),
        );
        result["result"]["value"].clone()
    }

    /// Sends one masked text frame (clients must mask, RFC 6455 §5.3).
    fn send(&mut self, payload: &[u8]) {
        let mut frame = vec![0x81u8];
        match payload.len() {
            len if len < 126 => frame.push(0x80 | len as u8),
            len if len < 65_536 => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(len as u16).to_be_bytes());
            }
            len => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        let mask = [0x12u8, 0x34, 0x56, 0x78];
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.ws.write_all(&frame).expect("send frame");
    }

    /// Receives one complete message (text or binary), skipping control frames.
    fn receive(&mut self) -> Vec<u8> {
        let mut message = Vec::new();
        loop {
            let mut head = [0u8; 2];
            self.ws.read_exact(&mut head).expect("frame header");
            let fin = head[0] & 0x80 != 0;
            let opcode = head[0] & 0x0f;
            let len = match head[1] & 0x7f {
                126 => {
                    let mut b = [0u8; 2];
                    self.ws.read_exact(&mut b).expect("len16");
                    u64::from(u16::from_be_bytes(b))
                }
                127 => {
                    let mut b = [0u8; 8];
                    self.ws.read_exact(&mut b).expect("len64");
                    u64::from_be_bytes(b)
                }
                n => u64::from(n),
            };
            let mut payload = vec![0u8; usize::try_from(len).expect("frame size")];
            self.ws.read_exact(&mut payload).expect("frame payload");
            match opcode {
                0x0..=0x2 => {
                    message.extend_from_slice(&payload);
                    if fin {
                        return message;
                    }
                }
                0x8 => panic!("DevTools closed the connection"),
                _ => {} // ping/pong
            }
        }
    }
}

impl Drop for Cdp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

//! The status page in a real browser: headless Chromium renders `GET /`,
//! the rendered DOM shows every endpoint with its state class, a screenshot
//! is taken, and a real mouse click (Chrome DevTools Protocol
//! `Input.dispatchMouseEvent` at the button's position) on "force down"
//! takes the endpoint out of the DNS answers, as `dig` shows.
//!
//! Skips with a printed reason when Chromium is not installed
//! (`.ci/run` installs it). The CDP client is a minimal hand-written
//! WebSocket client (RFC 6455 text frames), so no extra crate is needed.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use common::browser::{chromium, chromium_command, run_bounded};
use common::{GslbServer, TempDir, dig, poll_until};

const DEADLINE: Duration = Duration::from_secs(20);
const WWW: &str = "www.example.test";

fn config(zone: &str) -> String {
    format!(
        r#"
[[zone]]
origin = "example.test"
file = "{zone}"

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
    let path = dir.write("gslb.toml", &config(&zone.display().to_string()));
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
        r#"document.querySelector('tr[data-endpoint="eu/192.0.2.10"] button[value="down"]')"#;
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
    let row = r#"document.querySelector('tr[data-endpoint="eu/192.0.2.10"]').dataset.state"#;
    assert!(
        poll_until(DEADLINE, || cdp.evaluate(row)
            == serde_json::json!("force-down")),
        "page state: {}",
        cdp.evaluate(row)
    );
    // And "clear" brings it back.
    let clear = r#"document.querySelector('tr[data-endpoint="eu/192.0.2.10"] button[value="none"]').click()"#;
    cdp.evaluate(clear);
    assert!(poll_until(DEADLINE, || answers(&server)
        == ["192.0.2.10", "192.0.2.11"]));
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

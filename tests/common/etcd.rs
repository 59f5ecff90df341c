//! A throw-away single-node etcd for tests: started on free loopback ports
//! with a temporary `--data-dir`, stopped (SIGKILL) and its directory
//! removed on drop. Tests that need it skip, saying why, when `etcd` is not
//! installed (CI installs Debian's `etcd-server`, see `.ci/run`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{TempDir, poll_until};

/// How long etcd may take to say it is healthy (debug builds of the tests
/// share a busy machine).
const HEALTHY_DEADLINE: Duration = Duration::from_secs(40);

/// A running etcd (see the module doc).
pub struct EtcdServer {
    child: Option<Child>,
    client_port: u16,
    peer_port: u16,
    dir: TempDir,
}

impl EtcdServer {
    /// Starts etcd and waits until it is healthy; `None` (with a message)
    /// when it is not installed.
    pub fn start() -> Option<EtcdServer> {
        if Command::new("etcd").arg("--version").output().is_err() {
            eprintln!("skipped: etcd is not installed (apt-get install etcd-server)");
            return None;
        }
        let mut etcd = EtcdServer {
            child: None,
            client_port: free_port(),
            peer_port: free_port(),
            dir: TempDir::new("etcd"),
        };
        etcd.spawn();
        Some(etcd)
    }

    /// The client URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// The client address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.client_port))
    }

    /// Stops etcd (SIGKILL), keeping its data for [`EtcdServer::restart`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same ports and data, and waits until healthy.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Writes a raw value under `key` through the JSON gateway (tests use
    /// it to put what gslb would never write).
    pub fn put(&self, key: &str, value: &[u8]) {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        let body = format!(
            r#"{{"key":"{}","value":"{}"}}"#,
            b64.encode(key),
            b64.encode(value)
        );
        self.post_json("/v3/kv/put", &body);
    }

    /// Every key under `prefix` with its raw value, in key order, read
    /// through the JSON gateway (tests look at what gslb wrote).
    pub fn range(&self, prefix: &str) -> Vec<(String, Vec<u8>)> {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        // The range end of a prefix: its last byte plus one.
        let mut end = prefix.as_bytes().to_vec();
        if let Some(last) = end.last_mut() {
            *last += 1;
        }
        let body = format!(
            r#"{{"key":"{}","range_end":"{}"}}"#,
            b64.encode(prefix),
            b64.encode(&end)
        );
        let reply = post(self.addr(), "/v3/kv/range", &body).expect("etcd request");
        assert!(reply.starts_with("HTTP/1.1 200"), "etcd range: {reply}");
        let json = reply
            .split_once("\r\n\r\n")
            .and_then(|(_, body)| body.find('{').map(|at| &body[at..]))
            .and_then(|body| {
                serde_json::Deserializer::from_str(body)
                    .into_iter::<serde_json::Value>()
                    .next()
            })
            .and_then(Result::ok)
            .unwrap_or(serde_json::Value::Null);
        let decode = |v: &serde_json::Value| b64.decode(v.as_str().unwrap_or("")).unwrap();
        json["kvs"]
            .as_array()
            .map(|kvs| {
                kvs.iter()
                    .map(|kv| {
                        (
                            String::from_utf8(decode(&kv["key"])).unwrap(),
                            decode(&kv["value"]),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// POSTs a JSON body to a gateway path and asserts it was accepted.
    pub fn post_json(&self, path: &str, body: &str) {
        let reply = post(self.addr(), path, body).expect("etcd request");
        assert!(reply.starts_with("HTTP/1.1 200"), "etcd {path}: {reply}");
    }

    /// etcd's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("etcd.log")).unwrap_or_default()
    }

    fn spawn(&mut self) {
        let client = self.url();
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("etcd.log"))
            .expect("etcd log file");
        let child = Command::new("etcd")
            .args(["--name", "t", "--data-dir"])
            .arg(self.dir.path().join("data"))
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("t={peer}")])
            .args(["--initial-cluster-state", "new"])
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn etcd");
        self.child = Some(child);
        let addr = self.addr();
        assert!(
            poll_until(HEALTHY_DEADLINE, || {
                get(addr, "/health").is_some_and(|reply| reply.contains("\"health\":\"true\""))
            }),
            "etcd did not become healthy:\n{}",
            self.log()
        );
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A free TCP port on 127.0.0.1 (etcd binds it right after).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn get(addr: SocketAddr, path: &str) -> Option<String> {
    exchange(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
    )
}

fn post(addr: SocketAddr, path: &str, body: &str) -> Option<String> {
    exchange(
        addr,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
}

/// One request; the whole reply as text, `None` while etcd is not up.
fn exchange(addr: SocketAddr, request: &str) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream.write_all(request.as_bytes()).ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    Some(String::from_utf8_lossy(&raw).into_owned())
}

//! Integration-test harness: runs the real `gslb` binary on loopback ports,
//! queries it with `dig` and with hand-built packets, and cleans up after
//! itself.
//!
//! Owns process lifetime (every spawned server is killed in `Drop`) and
//! temporary files; never touches the repository's files. Each test crate
//! uses a different subset of these helpers, hence the `dead_code` allowance.
#![allow(dead_code)]

pub mod browser;
pub mod etcd;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a server may take to print all its "listening on" lines.
const START_DEADLINE: Duration = Duration::from_secs(20);
/// How long a one-shot command (`gslb check`, a failing `serve`) may run.
const COMMAND_DEADLINE: Duration = Duration::from_secs(20);
/// How long raw-socket helpers wait for a reply that must come.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------
// The server process
// ---------------------------------------------------------------------------

/// A running `gslb serve`, killed when dropped.
pub struct GslbServer {
    child: Child,
    addrs: Vec<SocketAddr>,
    /// The admin API address, when the server printed it.
    api: Option<SocketAddr>,
    /// The API token file `serve` made or reused, when it printed one.
    token_file: Option<PathBuf>,
    stderr: Arc<Mutex<String>>,
    stderr_thread: Option<JoinHandle<()>>,
}

impl GslbServer {
    /// Starts `gslb serve --listen 127.0.0.1:0 ARGS` and waits until every
    /// listener is bound. Panics (with the server's stderr) if it is not.
    pub fn start(args: &[&str]) -> GslbServer {
        Self::try_start(args).unwrap_or_else(|err| panic!("{err}"))
    }

    /// Like [`GslbServer::start`], but returns why the server did not come up
    /// (for tests that skip when, e.g., `::1` cannot be bound).
    pub fn try_start(args: &[&str]) -> Result<GslbServer, String> {
        Self::try_start_within(args, START_DEADLINE)
    }

    /// Like [`GslbServer::start`], with a longer deadline for configurations
    /// that take a while to load (scale tests; slower in debug builds).
    pub fn start_within(args: &[&str], start_deadline: Duration) -> GslbServer {
        Self::try_start_within(args, start_deadline).unwrap_or_else(|err| panic!("{err}"))
    }

    /// Like [`GslbServer::start`], with more environment variables (e.g.
    /// libfaketime's, to move the server's wall clock).
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> GslbServer {
        Self::try_start_with(args, env, START_DEADLINE).unwrap_or_else(|err| panic!("{err}"))
    }

    fn try_start_within(args: &[&str], start_deadline: Duration) -> Result<GslbServer, String> {
        Self::try_start_with(args, &[], start_deadline)
    }

    fn try_start_with(
        args: &[&str],
        env: &[(&str, &str)],
        start_deadline: Duration,
    ) -> Result<GslbServer, String> {
        let expected = 1 + args.iter().filter(|a| **a == "--listen").count();
        let mut child = gslb_command()
            .envs(env.iter().copied())
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|err| format!("cannot spawn gslb: {err}"))?;
        let stderr = Arc::new(Mutex::new(String::new()));
        let stderr_thread = child.stderr.take().map(|pipe| {
            let sink = Arc::clone(&stderr);
            std::thread::spawn(move || collect_lines(pipe, &sink))
        });
        let (lines_tx, lines_rx) = mpsc::channel::<String>();
        if let Some(pipe) = child.stdout.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    if lines_tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        let mut server = GslbServer {
            child,
            addrs: Vec::new(),
            api: None,
            token_file: None,
            stderr,
            stderr_thread,
        };
        let deadline = Instant::now() + start_deadline;
        while server.addrs.len() < expected {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines_rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(addr) = parse_listening_line(&line) {
                        server.addrs.push(addr);
                    } else if let Some(addr) = parse_api_line(&line) {
                        server.api = Some(addr);
                    } else if let Some(path) = line.strip_prefix("admin api token file: ") {
                        server.token_file = Some(PathBuf::from(path));
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "gslb did not report {expected} listener(s) within {start_deadline:?}; \
                         got {:?}; stderr:\n{}",
                        server.addrs,
                        server.stderr()
                    ));
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = server.child.wait().ok();
                    if let Some(thread) = server.stderr_thread.take() {
                        let _ = thread.join();
                    }
                    return Err(format!(
                        "gslb exited ({status:?}) before reporting {expected} listener(s); \
                         stderr:\n{}",
                        server.stderr()
                    ));
                }
            }
        }
        Ok(server)
    }

    /// The first listener (always `127.0.0.1:PORT`).
    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// Every listener, in the order the server reported them.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The admin API address (start the server with `--api 127.0.0.1:0`).
    pub fn api(&self) -> SocketAddr {
        self.api
            .unwrap_or_else(|| panic!("gslb printed no admin api line; stderr:\n{}", self.stderr()))
    }

    /// The admin API token `serve` keeps in its state directory (panics
    /// when it printed no token file: a configured token or no token).
    pub fn token(&self) -> String {
        let path = self.token_file.as_ref().unwrap_or_else(|| {
            panic!(
                "gslb printed no token file line; stderr:\n{}",
                self.stderr()
            )
        });
        std::fs::read_to_string(path)
            .unwrap_or_else(|err| panic!("read {}: {err}", path.display()))
            .trim()
            .to_string()
    }

    /// A request to the admin API with the server's token (see
    /// [`GslbServer::token`]) as bearer, after `headers`.
    pub fn admin(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> HttpReply {
        let bearer = format!("Bearer {}", self.token());
        let mut all = headers.to_vec();
        all.push(("Authorization", bearer.as_str()));
        http(self.api(), method, path, &all, body)
    }

    /// What the server wrote on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .map(|s| s.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    /// How often the server's threads whose name starts with `prefix`
    /// went to sleep and woke up during the next `period` (their voluntary
    /// context switches, from Linux `/proc`).
    pub fn wakeups_during(&self, prefix: &str, period: Duration) -> u64 {
        let before = self.wakeups_so_far(prefix);
        std::thread::sleep(period);
        self.wakeups_so_far(prefix) - before
    }

    fn wakeups_so_far(&self, prefix: &str) -> u64 {
        let tasks = format!("/proc/{}/task", self.child.id());
        let mut total = 0;
        let mut found = false;
        for task in std::fs::read_dir(&tasks).expect("read /proc/PID/task") {
            let path = task.expect("task entry").path();
            let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
            if !comm.starts_with(prefix) {
                continue;
            }
            found = true;
            let status = std::fs::read_to_string(path.join("status")).unwrap_or_default();
            total += status
                .lines()
                .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or_else(|| panic!("no voluntary_ctxt_switches in {status}"));
        }
        assert!(found, "no thread named {prefix}* in {tasks}");
        total
    }

    /// Whether the process is still alive.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends a signal (e.g. `"HUP"`) to the server with `kill(1)`.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }
}

impl Drop for GslbServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(thread) = self.stderr_thread.take() {
            let _ = thread.join();
        }
        if std::thread::panicking() {
            eprintln!(
                "--- gslb stderr ({:?}) ---\n{}--- end of gslb stderr ---",
                self.addrs,
                self.stderr()
            );
        }
    }
}

fn collect_lines(pipe: impl Read, sink: &Mutex<String>) {
    for line in BufReader::new(pipe).lines() {
        let Ok(line) = line else { break };
        if let Ok(mut text) = sink.lock() {
            text.push_str(&line);
            text.push('\n');
        }
    }
}

/// Parses `admin api listening on http://ADDR/`.
fn parse_api_line(line: &str) -> Option<SocketAddr> {
    let rest = line.strip_prefix("admin api listening on http://")?;
    rest.trim_end_matches('/').parse().ok()
}

/// Parses `listening on ADDR (udp+tcp)`.
fn parse_listening_line(line: &str) -> Option<SocketAddr> {
    let rest = line.strip_prefix("listening on ")?;
    let addr = rest.split_whitespace().next()?;
    addr.parse().ok()
}

/// A `gslb` command with the crate root as current directory, so relative
/// default paths (`config/gslb.toml`) resolve as they do for a developer.
pub fn gslb_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gslb"));
    command.current_dir(env!("CARGO_MANIFEST_DIR"));
    command.env_remove("RUST_LOG");
    // Plain log lines, so a failing test prints readable server stderr.
    command.env("NO_COLOR", "1");
    command
}

/// What a finished command printed and how it exited.
#[derive(Debug)]
pub struct CommandOutput {
    /// Exit status.
    pub status: ExitStatus,
    /// Captured stdout.
    pub stdout: String,
    /// Captured stderr.
    pub stderr: String,
}

impl CommandOutput {
    /// The exit code (`None` if killed by a signal).
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

/// Runs `gslb ARGS` to completion (killed and reported after a deadline).
pub fn run_gslb(args: &[&str]) -> CommandOutput {
    let mut child = gslb_command()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn gslb");
    let stdout = child.stdout.take().map(read_all_in_thread);
    let stderr = child.stderr.take().map(read_all_in_thread);
    let deadline = Instant::now() + COMMAND_DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for gslb") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let err = stderr.map(|t| t.join().unwrap_or_default());
            panic!(
                "gslb {args:?} still running after {COMMAND_DEADLINE:?}; stderr:\n{}",
                err.unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    CommandOutput {
        status,
        stdout: stdout
            .map(|t| t.join().unwrap_or_default())
            .unwrap_or_default(),
        stderr: stderr
            .map(|t| t.join().unwrap_or_default())
            .unwrap_or_default(),
    }
}

fn read_all_in_thread(mut pipe: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

// ---------------------------------------------------------------------------
// Temporary directories
// ---------------------------------------------------------------------------

/// A directory under the system temp dir, removed with its contents on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates a fresh, empty directory; `label` only helps when debugging.
    pub fn new(label: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("gslb-test-{}-{n}-{label}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir { path }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `contents` to `name` inside the directory and returns its path.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.path.join(name);
        std::fs::write(&path, contents).expect("write temp file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

// ---------------------------------------------------------------------------
// dig
// ---------------------------------------------------------------------------

/// The EDNS pseudosection of a dig reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigEdns {
    /// EDNS version.
    pub version: u8,
    /// The responder's UDP payload size.
    pub udp_payload: u16,
    /// The `flags:` field as printed (e.g. `""` or `"do"`).
    pub flags: String,
}

/// A `; CLIENT-SUBNET: ADDR/SOURCE/SCOPE` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigClientSubnet {
    /// Address as printed.
    pub address: IpAddr,
    /// SOURCE PREFIX-LENGTH.
    pub source_prefix_len: u8,
    /// SCOPE PREFIX-LENGTH.
    pub scope_prefix_len: u8,
}

/// One dig reply, parsed from its default output.
#[derive(Debug, Clone, Default)]
pub struct DigResult {
    /// Opcode as printed (`QUERY`, `NOTIFY`, ...).
    pub opcode: String,
    /// Status as printed (`NOERROR`, `NXDOMAIN`, ...).
    pub status: String,
    /// Message ID.
    pub id: u16,
    /// Header flags (`qr`, `aa`, `tc`, `rd`, `ra`, `ad`, `cd`).
    pub flags: BTreeSet<String>,
    /// Question lines without the leading `;`, whitespace collapsed.
    pub question: Vec<String>,
    /// Answer records as `name ttl class type rdata`, whitespace collapsed.
    pub answer: Vec<String>,
    /// Authority records, same form.
    pub authority: Vec<String>,
    /// Additional records (OPT excluded), same form.
    pub additional: Vec<String>,
    /// The OPT record, when the reply had one.
    pub edns: Option<DigEdns>,
    /// The ECS option of the reply, when present.
    pub client_subnet: Option<DigClientSubnet>,
    /// `MSG SIZE rcvd`.
    pub msg_size: Option<usize>,
    /// dig's full output, for assertion messages.
    pub raw: String,
}

impl DigResult {
    /// Whether a header flag is set.
    pub fn has_flag(&self, flag: &str) -> bool {
        self.flags.contains(flag)
    }

    /// RDATA of the answer records, sorted (the addresses of an A/AAAA answer).
    pub fn sorted_rdata(&self) -> Vec<String> {
        let mut rdata: Vec<String> = self
            .answer
            .iter()
            .filter_map(|r| r.split(' ').nth(4).map(str::to_string))
            .collect();
        rdata.sort();
        rdata
    }

    /// Types of the answer records, in order.
    pub fn answer_types(&self) -> Vec<String> {
        self.answer
            .iter()
            .filter_map(|r| r.split(' ').nth(3).map(str::to_string))
            .collect()
    }
}

/// Collapses runs of whitespace to one space.
pub fn normalise(line: &str) -> String {
    line.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Runs `dig @ADDR -p PORT +norec +time=2 +tries=1 +nocmd ARGS` and parses
/// the reply. Panics with dig's output when dig fails (no reply at all).
pub fn dig(server: SocketAddr, args: &[&str]) -> DigResult {
    let output = Command::new("dig")
        .arg(format!("@{}", server.ip()))
        .args(["-p", &server.port().to_string()])
        .args(["+norec", "+time=2", "+tries=1", "+nocmd"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run dig (install dnsutils)");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "dig {args:?} @{server} failed ({}):\n{stdout}{stderr}",
        output.status
    );
    let result = parse_dig(&stdout);
    assert!(
        !result.status.is_empty(),
        "dig {args:?} @{server} printed no header:\n{stdout}{stderr}"
    );
    result
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum DigSection {
    None,
    Question,
    Answer,
    Authority,
    Additional,
}

/// Parses dig's default output; tolerant of lines it does not know. When
/// dig prints several replies (e.g. a retry), the last one wins.
pub fn parse_dig(text: &str) -> DigResult {
    let mut result = DigResult::default();
    let mut section = DigSection::None;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            section = DigSection::None;
            continue;
        }
        if trimmed.starts_with(";; Got answer:") {
            result = DigResult::default();
            section = DigSection::None;
            continue;
        }
        if let Some(header) = trimmed.strip_prefix(";; ->>HEADER<<-") {
            for field in header.split(',') {
                let Some((key, value)) = field.split_once(':') else {
                    continue;
                };
                match key.trim() {
                    "opcode" => result.opcode = value.trim().to_string(),
                    "status" => result.status = value.trim().to_string(),
                    "id" => result.id = value.trim().parse().unwrap_or(0),
                    _ => {}
                }
            }
            continue;
        }
        if let Some(flags) = trimmed.strip_prefix(";; flags:") {
            let flags = flags.split(';').next().unwrap_or("");
            result.flags = flags.split_whitespace().map(str::to_string).collect();
            continue;
        }
        if let Some(edns) = trimmed.strip_prefix("; EDNS:") {
            result.edns = Some(parse_dig_edns(edns));
            continue;
        }
        if let Some(ecs) = trimmed.strip_prefix("; CLIENT-SUBNET:") {
            result.client_subnet = parse_dig_subnet(ecs.trim());
            continue;
        }
        if let Some(size) = trimmed.strip_prefix(";; MSG SIZE") {
            result.msg_size = size.split(':').nth(1).and_then(|n| n.trim().parse().ok());
            continue;
        }
        let new_section = match trimmed {
            ";; QUESTION SECTION:" => Some(DigSection::Question),
            ";; ANSWER SECTION:" => Some(DigSection::Answer),
            ";; AUTHORITY SECTION:" => Some(DigSection::Authority),
            ";; ADDITIONAL SECTION:" => Some(DigSection::Additional),
            _ => None,
        };
        if let Some(new_section) = new_section {
            section = new_section;
            continue;
        }
        match section {
            DigSection::Question => {
                if let Some(q) = trimmed.strip_prefix(';') {
                    result.question.push(normalise(q));
                }
            }
            _ if trimmed.starts_with(';') => {}
            DigSection::Answer => result.answer.push(normalise(trimmed)),
            DigSection::Authority => result.authority.push(normalise(trimmed)),
            DigSection::Additional => result.additional.push(normalise(trimmed)),
            DigSection::None => {}
        }
    }
    result.raw = text.to_string();
    result
}

/// Parses ` version: 0, flags:; udp: 1232`.
fn parse_dig_edns(text: &str) -> DigEdns {
    let mut edns = DigEdns {
        version: 0,
        udp_payload: 0,
        flags: String::new(),
    };
    for part in text.split([',', ';']) {
        let Some((key, value)) = part.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key.trim() {
            "version" => edns.version = value.parse().unwrap_or(u8::MAX),
            "udp" => edns.udp_payload = value.parse().unwrap_or(0),
            "flags" => edns.flags = value.to_string(),
            _ => {}
        }
    }
    edns
}

/// Parses `81.2.69.0/24/16`.
fn parse_dig_subnet(text: &str) -> Option<DigClientSubnet> {
    let mut parts = text.split('/');
    let address = parts.next()?.trim().parse().ok()?;
    let source_prefix_len = parts.next()?.trim().parse().ok()?;
    let scope_prefix_len = parts.next()?.trim().parse().ok()?;
    Some(DigClientSubnet {
        address,
        source_prefix_len,
        scope_prefix_len,
    })
}

// ---------------------------------------------------------------------------
// Raw packets
// ---------------------------------------------------------------------------

/// Record types used by raw-packet tests.
pub mod rtype {
    /// A.
    pub const A: u16 = 1;
    /// NS.
    pub const NS: u16 = 2;
    /// CNAME.
    pub const CNAME: u16 = 5;
    /// SOA.
    pub const SOA: u16 = 6;
    /// TXT.
    pub const TXT: u16 = 16;
    /// AAAA.
    pub const AAAA: u16 = 28;
    /// OPT.
    pub const OPT: u16 = 41;
    /// AXFR.
    pub const AXFR: u16 = 252;
    /// ANY.
    pub const ANY: u16 = 255;
}

/// Response codes (the full 12-bit value).
pub mod rcode {
    /// NOERROR.
    pub const NOERROR: u16 = 0;
    /// FORMERR.
    pub const FORMERR: u16 = 1;
    /// SERVFAIL.
    pub const SERVFAIL: u16 = 2;
    /// NXDOMAIN.
    pub const NXDOMAIN: u16 = 3;
    /// NOTIMP.
    pub const NOTIMP: u16 = 4;
    /// REFUSED.
    pub const REFUSED: u16 = 5;
    /// BADVERS (extended).
    pub const BADVERS: u16 = 16;
}

/// Encodes a dotted name (`"www.core.test"`, trailing dot optional) in
/// uncompressed wire format, keeping its case.
pub fn wire_name(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in name.trim_end_matches('.').split('.') {
        if label.is_empty() {
            continue;
        }
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out
}

/// A query under construction: header fields, one question, optional OPT.
#[derive(Debug, Clone)]
pub struct QueryBuilder {
    /// Message ID.
    pub id: u16,
    /// Opcode (0 = QUERY, 2 = STATUS, 4 = NOTIFY).
    pub opcode: u8,
    /// RD flag.
    pub recursion_desired: bool,
    /// Question name, wire format.
    pub qname: Vec<u8>,
    /// Question type.
    pub qtype: u16,
    /// Question class.
    pub qclass: u16,
    /// OPT record: (udp payload, version, option bytes).
    pub opt: Option<(u16, u8, Vec<u8>)>,
}

impl QueryBuilder {
    /// A class-IN query for `name`/`qtype` without EDNS.
    pub fn new(id: u16, name: &str, qtype: u16) -> QueryBuilder {
        QueryBuilder {
            id,
            opcode: 0,
            recursion_desired: false,
            qname: wire_name(name),
            qtype,
            qclass: 1,
            opt: None,
        }
    }

    /// Adds an OPT record (RFC 6891 §6.1.2) with raw option bytes.
    pub fn edns(mut self, udp_payload: u16, version: u8, options: Vec<u8>) -> QueryBuilder {
        self.opt = Some((udp_payload, version, options));
        self
    }

    /// Sets the opcode.
    pub fn opcode(mut self, opcode: u8) -> QueryBuilder {
        self.opcode = opcode;
        self
    }

    /// Encodes the query.
    pub fn build(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(&self.id.to_be_bytes());
        let mut flags: u16 = u16::from(self.opcode & 0x0f) << 11;
        if self.recursion_desired {
            flags |= 0x0100;
        }
        out.extend_from_slice(&flags.to_be_bytes());
        out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, u8::from(self.opt.is_some())]);
        out.extend_from_slice(&self.qname);
        out.extend_from_slice(&self.qtype.to_be_bytes());
        out.extend_from_slice(&self.qclass.to_be_bytes());
        if let Some((payload, version, options)) = &self.opt {
            out.push(0);
            out.extend_from_slice(&rtype::OPT.to_be_bytes());
            out.extend_from_slice(&payload.to_be_bytes());
            out.extend_from_slice(&[0, *version, 0, 0]);
            out.extend_from_slice(&(options.len() as u16).to_be_bytes());
            out.extend_from_slice(options);
        }
        out
    }
}

/// An EDNS Client Subnet option (RFC 7871 §6), fields exactly as given so
/// tests can build invalid ones.
pub fn ecs_option(
    family: u16,
    source_prefix_len: u8,
    scope_prefix_len: u8,
    address: &[u8],
) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&8u16.to_be_bytes());
    out.extend_from_slice(&((4 + address.len()) as u16).to_be_bytes());
    out.extend_from_slice(&family.to_be_bytes());
    out.push(source_prefix_len);
    out.push(scope_prefix_len);
    out.extend_from_slice(address);
    out
}

/// One resource record of a parsed reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRecord {
    /// Owner name, dotted, as in the packet (pointers followed).
    pub owner: String,
    /// Type.
    pub rtype: u16,
    /// Class (for OPT: the UDP payload size).
    pub class: u16,
    /// TTL (for OPT: extended rcode, version, flags).
    pub ttl: u32,
    /// RDATA bytes.
    pub rdata: Vec<u8>,
}

/// A reply decoded by the test's own minimal parser.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Message ID.
    pub id: u16,
    /// The 16-bit flags word.
    pub flags: u16,
    /// Question names (dotted) with type and class.
    pub questions: Vec<(String, u16, u16)>,
    /// Answer section.
    pub answer: Vec<RawRecord>,
    /// Authority section.
    pub authority: Vec<RawRecord>,
    /// Additional section, OPT included.
    pub additional: Vec<RawRecord>,
}

impl Reply {
    /// QR bit.
    pub fn is_response(&self) -> bool {
        self.flags & 0x8000 != 0
    }

    /// Opcode.
    pub fn opcode(&self) -> u8 {
        ((self.flags >> 11) & 0x0f) as u8
    }

    /// AA bit.
    pub fn authoritative(&self) -> bool {
        self.flags & 0x0400 != 0
    }

    /// TC bit.
    pub fn truncated(&self) -> bool {
        self.flags & 0x0200 != 0
    }

    /// The OPT record, if any.
    pub fn opt(&self) -> Option<&RawRecord> {
        self.additional.iter().find(|r| r.rtype == rtype::OPT)
    }

    /// The full rcode: header bits plus the OPT's extended bits (RFC 6891 §6.1.3).
    pub fn rcode(&self) -> u16 {
        let low = self.flags & 0x000f;
        let high = self.opt().map_or(0, |o| (o.ttl >> 24) as u16);
        (high << 4) | low
    }
}

/// Decodes a reply; `None` when it is not a well-formed DNS message.
pub fn parse_reply(packet: &[u8]) -> Option<Reply> {
    let word = |at: usize| -> Option<u16> {
        Some(u16::from_be_bytes([*packet.get(at)?, *packet.get(at + 1)?]))
    };
    let id = word(0)?;
    let flags = word(2)?;
    let counts = [word(4)?, word(6)?, word(8)?, word(10)?];
    let mut pos = 12;
    let mut questions = Vec::new();
    for _ in 0..counts[0] {
        let (name, next) = read_name(packet, pos)?;
        pos = next;
        questions.push((name, word(pos)?, word(pos + 2)?));
        pos += 4;
    }
    let mut sections: [Vec<RawRecord>; 3] = Default::default();
    for (index, section) in sections.iter_mut().enumerate() {
        for _ in 0..counts[index + 1] {
            let (owner, next) = read_name(packet, pos)?;
            pos = next;
            let rtype = word(pos)?;
            let class = word(pos + 2)?;
            let ttl = (u32::from(word(pos + 4)?) << 16) | u32::from(word(pos + 6)?);
            let rdlen = usize::from(word(pos + 8)?);
            pos += 10;
            let rdata = packet.get(pos..pos + rdlen)?.to_vec();
            pos += rdlen;
            section.push(RawRecord {
                owner,
                rtype,
                class,
                ttl,
                rdata,
            });
        }
    }
    if pos != packet.len() {
        return None;
    }
    let [answer, authority, additional] = sections;
    Some(Reply {
        id,
        flags,
        questions,
        answer,
        authority,
        additional,
    })
}

/// Reads a possibly compressed name; returns it dotted and the position after it.
fn read_name(packet: &[u8], start: usize) -> Option<(String, usize)> {
    let mut name = String::new();
    let mut pos = start;
    let mut end = None;
    for _ in 0..128 {
        let len = *packet.get(pos)?;
        match len & 0xc0 {
            0x00 if len == 0 => {
                if name.is_empty() {
                    name.push('.');
                }
                return Some((name, end.unwrap_or(pos + 1)));
            }
            0x00 => {
                let label = packet.get(pos + 1..pos + 1 + usize::from(len))?;
                name.push_str(&String::from_utf8_lossy(label));
                name.push('.');
                pos += 1 + usize::from(len);
            }
            0xc0 => {
                let target = usize::from(u16::from_be_bytes([len, *packet.get(pos + 1)?]) & 0x3fff);
                end.get_or_insert(pos + 2);
                pos = target;
            }
            _ => return None,
        }
    }
    None
}

/// A UDP socket connected to `server`, with a receive timeout.
pub fn udp_socket(server: SocketAddr) -> UdpSocket {
    let bind: SocketAddr = if server.is_ipv6() {
        "[::1]:0".parse().expect("literal address")
    } else {
        "127.0.0.1:0".parse().expect("literal address")
    };
    let socket = UdpSocket::bind(bind).expect("bind client UDP socket");
    socket.connect(server).expect("connect UDP socket");
    socket
        .set_read_timeout(Some(REPLY_TIMEOUT))
        .expect("set UDP timeout");
    socket
}

/// Receives one datagram, or `None` on timeout.
pub fn udp_recv(socket: &UdpSocket) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 65_535];
    match socket.recv(&mut buf) {
        Ok(len) => {
            buf.truncate(len);
            Some(buf)
        }
        Err(_) => None,
    }
}

/// Sends `packet` over UDP and waits for one reply (up to [`REPLY_TIMEOUT`]).
pub fn udp_exchange(server: SocketAddr, packet: &[u8]) -> Option<Vec<u8>> {
    let socket = udp_socket(server);
    socket.send(packet).expect("send UDP");
    udp_recv(&socket)
}

/// Like [`udp_exchange`] but the reply must come and parse.
pub fn udp_query(server: SocketAddr, packet: &[u8]) -> Reply {
    let bytes = udp_exchange(server, packet).expect("no UDP reply within the timeout");
    parse_reply(&bytes).unwrap_or_else(|| panic!("malformed reply: {bytes:02x?}"))
}

/// A TCP connection to `server` with read/write timeouts.
pub fn tcp_connect(server: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&server, REPLY_TIMEOUT).expect("connect TCP");
    stream
        .set_read_timeout(Some(REPLY_TIMEOUT))
        .expect("set TCP read timeout");
    stream
        .set_write_timeout(Some(REPLY_TIMEOUT))
        .expect("set TCP write timeout");
    stream
}

/// Writes one length-prefixed message (RFC 1035 §4.2.2).
pub fn tcp_send(stream: &mut TcpStream, message: &[u8]) {
    let mut framed = (message.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(message);
    stream.write_all(&framed).expect("write TCP message");
}

/// Reads one length-prefixed message; `None` on EOF or timeout.
pub fn tcp_recv(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).ok()?;
    let mut message = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut message).ok()?;
    Some(message)
}

/// Writes all `messages` back to back on one connection, then reads one
/// reply per message.
pub fn tcp_exchange(server: SocketAddr, messages: &[Vec<u8>]) -> Vec<Reply> {
    let mut stream = tcp_connect(server);
    let mut batch = Vec::new();
    for message in messages {
        batch.extend_from_slice(&(message.len() as u16).to_be_bytes());
        batch.extend_from_slice(message);
    }
    stream.write_all(&batch).expect("write TCP messages");
    (0..messages.len())
        .map(|i| {
            let bytes = tcp_recv(&mut stream)
                .unwrap_or_else(|| panic!("no TCP reply to message {i} within the timeout"));
            parse_reply(&bytes).unwrap_or_else(|| panic!("malformed TCP reply: {bytes:02x?}"))
        })
        .collect()
}

/// A small deterministic PRNG (xorshift64*) for junk-packet tests.
pub struct Xorshift(u64);

impl Xorshift {
    /// Seeds the generator (a zero seed is replaced).
    pub fn new(seed: u64) -> Xorshift {
        Xorshift(if seed == 0 {
            0x9e37_79b9_7f4a_7c15
        } else {
            seed
        })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..bound` (bound > 0).
    pub fn below(&mut self, bound: usize) -> usize {
        (self.next_u64() % bound as u64) as usize
    }

    /// A random byte.
    pub fn byte(&mut self) -> u8 {
        (self.next_u64() >> 56) as u8
    }
}

// ---------------------------------------------------------------------------
// HTTP (admin API)
// ---------------------------------------------------------------------------

/// A reply of the admin API.
#[derive(Debug, Clone)]
pub struct HttpReply {
    /// Status code.
    pub status: u16,
    /// Header lines, lowercase names.
    pub headers: Vec<(String, String)>,
    /// Body text.
    pub body: String,
}

impl HttpReply {
    /// The body as JSON (panics with the body when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|err| panic!("not JSON ({err}): {}", self.body))
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request (`Connection: close`) to `addr`.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> HttpReply {
    let mut stream = TcpStream::connect_timeout(&addr, REPLY_TIMEOUT).expect("connect to the API");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("set timeout");
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(request.as_bytes()).expect("write request");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read reply");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP reply: {text}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    HttpReply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// Polls `check` every 50 ms until it returns true or `deadline` passes;
/// returns whether it did.
pub fn poll_until(deadline: Duration, mut check: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + deadline;
    loop {
        if check() {
            return true;
        }
        if Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

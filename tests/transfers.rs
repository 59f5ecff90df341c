//! Zone transfers, NOTIFY and TSIG against real peers on loopback (issue 23):
//! gslb as primary for a Knot DNS secondary, gslb as secondary of NSD,
//! refusals answered and logged, and a cached secondary zone served after a
//! restart with the primary down.

mod common;

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{GslbServer, QueryBuilder, TempDir, dig, poll_until, udp_query};

/// How long peers get to transfer, notify and refresh.
const DEADLINE: Duration = Duration::from_secs(30);
/// A fixed test secret (base64 of 32 bytes).
const SECRET: &str = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTMyYg==";
/// Another secret, for the wrong-key cases.
const WRONG_SECRET: &str = "d3Jvbmctd3Jvbmctd3Jvbmctd3Jvbmctd3Jvbmc0Mg==";

/// A port free on 127.0.0.1 for both UDP and TCP right now.
fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        let port = udp.local_addr().expect("local addr").port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A peer name server process, killed when dropped.
struct Peer {
    child: Child,
    log: PathBuf,
}

impl Peer {
    fn start(program: &str, args: &[&str], log: PathBuf) -> Peer {
        let file = std::fs::File::create(&log).expect("create peer log");
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("clone log handle"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|err| {
                panic!("cannot start {program} ({err}): install knot and nsd (see .ci/run)")
            });
        Peer { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Knot DNS as a secondary of gslb (`gslb_port`), with TSIG key `xfr`.
fn start_knot(dir: &Path, port: u16, gslb_port: u16) -> Peer {
    let run = dir.join("knot");
    std::fs::create_dir_all(&run).expect("knot dir");
    let config = format!(
        r#"server:
    rundir: "{run}"
    listen: 127.0.0.1@{port}
    pidfile: "{run}/knot.pid"
log:
  - target: stderr
    any: info
database:
    storage: "{run}"
key:
  - id: xfr
    algorithm: hmac-sha256
    secret: {SECRET}
remote:
  - id: gslb
    address: 127.0.0.1@{gslb_port}
    key: xfr
acl:
  - id: notify_from_gslb
    address: 127.0.0.1
    key: xfr
    action: notify
template:
  - id: default
    storage: "{run}"
    journal-content: all
zone:
  - domain: example.test
    master: gslb
    acl: notify_from_gslb
"#,
        run = run.display()
    );
    let path = run.join("knot.conf");
    std::fs::write(&path, config).expect("write knot.conf");
    Peer::start(
        "knotd",
        &["-c", path.to_str().expect("utf-8 path")],
        run.join("knot.log"),
    )
}

/// NSD as a primary of `corp.test` on `port`, notifying gslb on `gslb_port`.
fn start_nsd(dir: &Path, port: u16, gslb_port: u16) -> Peer {
    let run = dir.join("nsd");
    let config = format!(
        r#"server:
    ip-address: 127.0.0.1
    port: {port}
    zonesdir: "{run}"
    pidfile: "{run}/nsd.pid"
    database: ""
    xfrdfile: "{run}/xfrd.state"
    zonelistfile: "{run}/zone.list"
    username: ""
    chroot: ""
    verbosity: 2
    rrl-ratelimit: 0
remote-control:
    control-enable: no
key:
    name: xfr
    algorithm: hmac-sha256
    secret: "{SECRET}"
zone:
    name: corp.test
    zonefile: corp.zone
    provide-xfr: 127.0.0.1 xfr
    notify: 127.0.0.1@{gslb_port} xfr
"#,
        run = run.display()
    );
    let path = run.join("nsd.conf");
    std::fs::write(&path, config).expect("write nsd.conf");
    Peer::start(
        "nsd",
        &["-d", "-c", path.to_str().expect("utf-8 path")],
        run.join("nsd.log"),
    )
}

fn write_corp_zone(dir: &Path, serial: u32, intranet: &str) {
    let run = dir.join("nsd");
    std::fs::create_dir_all(&run).expect("nsd dir");
    // REFRESH 2 s, RETRY 1 s, EXPIRE 8 s: the test sees refreshes and expiry.
    let zone = format!(
        "$ORIGIN corp.test.\n$TTL 300\n@ IN SOA ns1 hostmaster {serial} 2 1 8 60\n@ IN NS ns1\nns1 IN A 127.0.0.1\nintranet IN A {intranet}\n"
    );
    std::fs::write(run.join("corp.zone"), zone).expect("write corp.zone");
}

fn example_zone(serial: u32, mail: &str) -> String {
    format!(
        "$ORIGIN example.test.\n$TTL 300\n@ IN SOA ns1 hostmaster {serial} 3600 600 86400 60\n@ IN NS ns1\nns1 IN A 127.0.0.1\nmail IN A {mail}\n@ IN MX 10 mail\n"
    )
}

/// gslb as primary of `example.test` for the Knot secondary.
fn primary_config(zone: &Path, knot_port: u16) -> String {
    format!(
        r#"
[tsig.xfr]
algorithm = "hmac-sha256"
secret = "{SECRET}"

[[zone]]
origin = "example.test"
file = "{zone}"
allow_transfer = [{{ from = "127.0.0.1", tsig = "xfr" }}]
notify = ["127.0.0.1:{knot_port}"]

[pools.eu]
endpoints = [{{ address = "192.0.2.10" }}, {{ address = "192.0.2.11", weight = 3 }}]

[services."www.example.test"]
policy = "failover"
pools = ["eu"]

[services."api.example.test"]
policy = "failover"
pools = ["eu"]
transfer_answer = ["192.0.2.50", "192.0.2.51"]

[services."edge.example.test"]
policy = "failover"
pools = ["eu"]
transfer_answer = ["edge.cdn.example."]

[services."hidden.example.test"]
policy = "failover"
pools = ["eu"]
transfer_answer = "omit"
"#,
        zone = zone.display()
    )
}

/// The answer's RDATA (whole, sorted); empty when the server does not
/// answer (a peer still starting).
fn short(server: SocketAddr, name: &str, qtype: &str) -> Vec<String> {
    let output = Command::new("dig")
        .arg(format!("@{}", server.ip()))
        .args([
            "-p",
            &server.port().to_string(),
            "+norec",
            "+time=2",
            "+tries=1",
        ])
        .args([name, qtype])
        .output()
        .expect("run dig");
    let result = common::parse_dig(&String::from_utf8_lossy(&output.stdout));
    let mut rdata: Vec<String> = result
        .answer
        .iter()
        .filter_map(|r| r.splitn(5, ' ').nth(4).map(str::to_string))
        .collect();
    rdata.sort();
    rdata
}

fn knot_addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

#[test]
fn issue_23_gslb_primary_to_knot_secondary_axfr_ixfr_notify_with_tsig() {
    let dir = TempDir::new("xfr-knot");
    let knot_port = free_port();
    let zone = dir.write("example.zone", &example_zone(1, "192.0.2.25"));
    let config = dir.write("gslb.toml", &primary_config(&zone, knot_port));
    let server = GslbServer::start(&[
        "-c",
        config.to_str().expect("utf-8"),
        "--api",
        "127.0.0.1:0",
    ]);
    let knot = start_knot(dir.path(), knot_port, server.addr().port());
    let knot_dns = knot_addr(knot_port);

    // AXFR at bootstrap: the secondary answers the zone's records.
    assert!(
        poll_until(DEADLINE, || short(knot_dns, "mail.example.test", "A")
            == ["192.0.2.25"]),
        "knot never served the transferred zone; knot log:\n{}\ngslb log:\n{}",
        knot.log(),
        server.stderr()
    );
    assert_eq!(
        short(knot_dns, "example.test", "MX"),
        ["10 mail.example.test."]
    );
    // Service names as transfer_answer says: default (heaviest endpoint of
    // the first pool), a list, one CNAME target, omitted.
    assert_eq!(short(knot_dns, "www.example.test", "A"), ["192.0.2.11"]);
    assert_eq!(
        short(knot_dns, "api.example.test", "A"),
        ["192.0.2.50", "192.0.2.51"]
    );
    assert_eq!(
        short(knot_dns, "edge.example.test", "CNAME"),
        ["edge.cdn.example."]
    );
    assert_eq!(
        dig(knot_dns, &["hidden.example.test", "A"]).status,
        "NXDOMAIN"
    );
    assert!(
        server.stderr().contains("kind=\"AXFR\""),
        "{}",
        server.stderr()
    );
    assert!(knot.log().contains("AXFR, incoming"), "{}", knot.log());

    // A reload with a new serial: NOTIFY, then IXFR of the difference.
    std::fs::write(&zone, example_zone(2, "192.0.2.26")).expect("rewrite zone");
    server.signal("HUP");
    assert!(
        poll_until(DEADLINE, || short(knot_dns, "mail.example.test", "A")
            == ["192.0.2.26"]),
        "knot never picked up serial 2; knot log:\n{}\ngslb log:\n{}",
        knot.log(),
        server.stderr()
    );
    let log = server.stderr();
    assert!(log.contains("NOTIFY acknowledged"), "{log}");
    assert!(log.contains("kind=\"IXFR\""), "{log}");
    assert!(knot.log().contains("IXFR, incoming"), "{}", knot.log());
    assert_eq!(short(knot_dns, "www.example.test", "A"), ["192.0.2.11"]);

    // /status shows the zone's serial and last transfer out.
    let status = common::http(server.api(), "GET", "/status", &[], "");
    let doc: serde_json::Value = serde_json::from_str(&status.body).expect("status json");
    let zone_status = &doc["transfers"]["example.test."];
    assert_eq!(zone_status["serial"], 2, "{doc}");
    assert_eq!(zone_status["last_transfer_out"]["kind"], "IXFR", "{doc}");
    assert_eq!(zone_status["last_transfer_out"]["result"], "ok", "{doc}");
}

/// Runs dig for a transfer with extra arguments; returns its output.
fn dig_transfer(server: SocketAddr, args: &[&str]) -> String {
    let output = Command::new("dig")
        .arg(format!("@{}", server.ip()))
        .args(["-p", &server.port().to_string(), "+time=3", "+tries=1"])
        .args(args)
        .output()
        .expect("run dig");
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn issue_23_refused_transfers_and_notifies_are_answered_and_logged() {
    let dir = TempDir::new("xfr-refused");
    let zone = dir.write("example.zone", &example_zone(5, "192.0.2.25"));
    let other = dir.write(
        "other.zone",
        "$ORIGIN other.test.\n$TTL 300\n@ IN SOA ns1 hostmaster 1 3600 600 86400 60\n@ IN NS ns1\nns1 IN A 127.0.0.1\n",
    );
    let config = dir.write(
        "gslb.toml",
        &format!(
            r#"
[tsig.xfr]
algorithm = "hmac-sha256"
secret = "{SECRET}"

[[zone]]
origin = "example.test"
file = "{zone}"
allow_transfer = [{{ from = "127.0.0.0/8", tsig = "xfr" }}]
# Nobody listens there: the NOTIFY stays pending, retried.
notify = ["127.0.0.1:9"]

[[zone]]
origin = "other.test"
file = "{other}"
allow_transfer = [{{ from = "192.0.2.0/24" }}]

[[zone]]
origin = "corp.test"
primaries = ["127.0.0.2:9"]
"#,
            zone = zone.display(),
            other = other.display()
        ),
    );
    let server = GslbServer::start(&[
        "-c",
        config.to_str().expect("utf-8"),
        "--api",
        "127.0.0.1:0",
    ]);
    let addr = server.addr();

    // The right key transfers.
    let good = dig_transfer(
        addr,
        &[
            "example.test",
            "AXFR",
            "-y",
            &format!("hmac-sha256:xfr:{SECRET}"),
        ],
    );
    assert!(good.contains("XFR size: 6 records"), "{good}");

    // No key: REFUSED, logged with the reason.
    let unsigned = dig_transfer(addr, &["example.test", "AXFR"]);
    assert!(unsigned.contains("Transfer failed"), "{unsigned}");
    // Wrong secret: BADSIG in the TSIG of a NOTAUTH answer.
    let wrong = dig_transfer(
        addr,
        &[
            "example.test",
            "AXFR",
            "-y",
            &format!("hmac-sha256:xfr:{WRONG_SECRET}"),
        ],
    );
    assert!(wrong.contains("BADSIG"), "{wrong}");
    // Unknown key name: BADKEY.
    let unknown = dig_transfer(
        addr,
        &[
            "example.test",
            "AXFR",
            "-y",
            &format!("hmac-sha256:nokey:{SECRET}"),
        ],
    );
    assert!(unknown.contains("BADKEY"), "{unknown}");
    // Address not listed.
    let unlisted = dig_transfer(addr, &["other.test", "AXFR"]);
    assert!(unlisted.contains("Transfer failed"), "{unlisted}");
    // A zone without allow_transfer... corp.test is a secondary without one.
    let secondary = dig_transfer(addr, &["corp.test", "AXFR"]);
    assert!(secondary.contains("Transfer failed"), "{secondary}");

    // UDP IXFR: the SOA, signed.
    let udp_ixfr = dig_transfer(
        addr,
        &[
            "example.test",
            "IXFR=1",
            "+notcp",
            "-y",
            &format!("hmac-sha256:xfr:{SECRET}"),
        ],
    );
    assert!(
        udp_ixfr.contains("SOA\tns1.example.test. hostmaster.example.test. 5"),
        "{udp_ixfr}"
    );

    // A NOTIFY from an address that is not a primary: REFUSED.
    let notify = QueryBuilder::new(0x4242, "corp.test", 6).opcode(4).build();
    let reply = udp_query(addr, &notify);
    assert_eq!(
        reply.rcode(),
        5,
        "NOTIFY from a non-primary must be REFUSED"
    );
    // A NOTIFY for a zone we are not secondary for: NOTAUTH.
    let notify = QueryBuilder::new(0x4243, "example.test", 6)
        .opcode(4)
        .build();
    let reply = udp_query(addr, &notify);
    assert_eq!(
        reply.rcode(),
        9,
        "NOTIFY for a primary zone must be NOTAUTH"
    );

    let log = server.stderr();
    for reason in [
        "not signed: allow_transfer requires TSIG key \\\"xfr\\\"",
        "BADSIG",
        "BADKEY",
        "address not in allow_transfer",
        "sender is not one of the zone's primaries",
        "not a secondary zone here",
    ] {
        // The reader of the server's stderr may lag behind its answers.
        let logged =
            |log: &str| log.contains(reason) || log.contains(&reason.replace("\\\"", "\""));
        assert!(
            poll_until(DEADLINE, || logged(&server.stderr())),
            "no log line with {reason:?}:\n{log}"
        );
    }
    assert!(log.contains("peer=127.0.0.1"), "{log}");

    // /status shows the unacknowledged NOTIFY being retried, and the
    // refusals counted; /metrics the same per zone.
    assert!(
        poll_until(DEADLINE, || {
            let status = common::http(server.api(), "GET", "/status", &[], "");
            let doc: serde_json::Value = serde_json::from_str(&status.body).unwrap_or_default();
            let pending = &doc["transfers"]["example.test."]["pending_notifies"][0];
            pending["target"] == "127.0.0.1:9" && pending["attempts"].as_u64() >= Some(2)
        }),
        "no pending NOTIFY in /status"
    );
    let metrics = common::http(server.api(), "GET", "/metrics", &[], "").body;
    for line in [
        "gslb_zone_serial{zone=\"example.test.\"} 5",
        "gslb_zone_notifies_pending{zone=\"example.test.\"} 1",
        "gslb_zone_transfers_out_total{zone=\"example.test.\",result=\"ok\"} 1",
        "gslb_zone_transfers_out_total{zone=\"example.test.\",result=\"refused\"} 1",
        "gslb_zone_transfers_out_total{zone=\"example.test.\",result=\"tsig\"} 2",
    ] {
        assert!(
            metrics.contains(line),
            "no {line:?} in /metrics:\n{metrics}"
        );
    }
}

#[test]
fn issue_23_gslb_secondary_of_nsd_refreshes_serves_cache_and_expires() {
    let dir = TempDir::new("xfr-nsd");
    let nsd_port = free_port();
    let gslb_port = free_port();
    write_corp_zone(dir.path(), 1, "10.0.0.1");
    let state = dir.path().join("state");
    let config = dir.write(
        "gslb.toml",
        &format!(
            r#"
[server]
state_dir = "{state}"

[tsig.xfr]
algorithm = "hmac-sha256"
secret = "{SECRET}"

[[zone]]
origin = "corp.test"
primaries = ["127.0.0.1:{nsd_port}"]
tsig = "xfr"

[pools.a]
endpoints = [{{ address = "192.0.2.10" }}]

[services."app.corp.test"]
policy = "failover"
pools = ["a"]
"#,
            state = state.display()
        ),
    );
    let listen = format!("127.0.0.1:{gslb_port}");
    let config_arg = config.to_str().expect("utf-8").to_string();
    let args = [
        "-c",
        config_arg.as_str(),
        "--listen",
        listen.as_str(),
        "--api",
        "127.0.0.1:0",
    ];
    let nsd = start_nsd(dir.path(), nsd_port, gslb_port);
    let nsd_dns = SocketAddr::from(([127, 0, 0, 1], nsd_port));
    assert!(
        poll_until(DEADLINE, || short(nsd_dns, "corp.test", "SOA").len() == 1),
        "nsd did not start:\n{}",
        nsd.log()
    );
    let server = GslbServer::start(&args);
    let gslb = SocketAddr::from(([127, 0, 0, 1], gslb_port));

    // Fetched at start; the service lives in the secondary zone.
    assert!(
        poll_until(DEADLINE, || short(gslb, "intranet.corp.test", "A")
            == ["10.0.0.1"]),
        "gslb never served the zone from NSD; log:\n{}",
        server.stderr()
    );
    assert_eq!(short(gslb, "app.corp.test", "A"), ["192.0.2.10"]);

    // The primary's zone changes; NSD NOTIFYs gslb, which refreshes.
    write_corp_zone(dir.path(), 2, "10.0.0.2");
    let status = Command::new("kill")
        .args(["-HUP", &nsd.child.id().to_string()])
        .status()
        .expect("kill -HUP nsd");
    assert!(status.success());
    assert!(
        poll_until(DEADLINE, || short(gslb, "intranet.corp.test", "A")
            == ["10.0.0.2"]),
        "gslb never picked up serial 2; log:\n{}\nnsd log:\n{}",
        server.stderr(),
        nsd.log()
    );
    assert!(
        server.stderr().contains("NOTIFY received"),
        "{}",
        server.stderr()
    );

    // Restart with the primary down: the cached copy serves...
    drop(nsd);
    drop(server);
    let server = GslbServer::start(&args);
    assert_eq!(short(gslb, "intranet.corp.test", "A"), ["10.0.0.2"]);
    assert_eq!(short(gslb, "app.corp.test", "A"), ["192.0.2.10"]);
    // ...until EXPIRE (8 s after the last refresh), then SERVFAIL.
    assert!(
        poll_until(DEADLINE, || dig(gslb, &["intranet.corp.test", "A"]).status
            == "SERVFAIL"),
        "the zone never expired; log:\n{}",
        server.stderr()
    );
    let log = server.stderr();
    assert!(log.contains("transfer in failed"), "{log}");
    assert!(log.contains("expired"), "{log}");
}

#[test]
fn issue_23_secondary_with_wrong_key_keeps_nothing_and_logs_why() {
    let dir = TempDir::new("xfr-wrongkey");
    let nsd_port = free_port();
    let gslb_port = free_port();
    write_corp_zone(dir.path(), 1, "10.0.0.1");
    let config = dir.write(
        "gslb.toml",
        &format!(
            r#"
[tsig.xfr]
algorithm = "hmac-sha256"
secret = "{WRONG_SECRET}"

[[zone]]
origin = "corp.test"
primaries = ["127.0.0.1:{nsd_port}"]
tsig = "xfr"
"#
        ),
    );
    let nsd = start_nsd(dir.path(), nsd_port, gslb_port);
    let nsd_dns = SocketAddr::from(([127, 0, 0, 1], nsd_port));
    assert!(
        poll_until(DEADLINE, || short(nsd_dns, "corp.test", "SOA").len() == 1),
        "{}",
        nsd.log()
    );
    let listen = format!("127.0.0.1:{gslb_port}");
    let server = GslbServer::start(&[
        "-c",
        config.to_str().expect("utf-8"),
        "--listen",
        &listen,
        "--api",
        "127.0.0.1:0",
    ]);
    assert!(
        poll_until(DEADLINE, || server.stderr().contains("transfer in failed")),
        "{}",
        server.stderr()
    );
    assert!(server.stderr().contains("TSIG"), "{}", server.stderr());
    assert_eq!(
        dig(server.addr(), &["intranet.corp.test", "A"]).status,
        "SERVFAIL"
    );
}

#[test]
fn issue_23_gslb_secondary_of_gslb_primary_applies_incremental_ixfr() {
    let dir = TempDir::new("xfr-gslb-gslb");
    let secondary_port = free_port();
    let zone = dir.write("example.zone", &example_zone(10, "192.0.2.25"));
    let primary_config = dir.write(
        "primary.toml",
        &format!(
            r#"
[server]
state_dir = "primary-state"

[tsig.xfr]
algorithm = "hmac-sha512"
secret = "{SECRET}"

[[zone]]
origin = "example.test"
file = "{zone}"
allow_transfer = [{{ from = "127.0.0.1", tsig = "xfr" }}]
notify = ["127.0.0.1:{secondary_port}"]
"#,
            zone = zone.display()
        ),
    );
    let primary = GslbServer::start(&[
        "-c",
        primary_config.to_str().expect("utf-8"),
        "--api",
        "127.0.0.1:0",
    ]);
    let secondary_config = dir.write(
        "secondary.toml",
        &format!(
            r#"
[server]
state_dir = "secondary-state"

[tsig.xfr]
algorithm = "hmac-sha512"
secret = "{SECRET}"

[[zone]]
origin = "example.test"
primaries = ["{primary}"]
tsig = "xfr"
"#,
            primary = primary.addr()
        ),
    );
    let listen = format!("127.0.0.1:{secondary_port}");
    let secondary = GslbServer::start(&[
        "-c",
        secondary_config.to_str().expect("utf-8"),
        "--listen",
        &listen,
        "--api",
        "127.0.0.1:0",
    ]);
    let at = secondary.addr();
    assert!(
        poll_until(DEADLINE, || short(at, "mail.example.test", "A")
            == ["192.0.2.25"]),
        "{}",
        secondary.stderr()
    );
    std::fs::write(&zone, example_zone(11, "192.0.2.27")).expect("rewrite zone");
    primary.signal("HUP");
    assert!(
        poll_until(DEADLINE, || short(at, "mail.example.test", "A")
            == ["192.0.2.27"]),
        "secondary never applied serial 11; secondary log:\n{}\nprimary log:\n{}",
        secondary.stderr(),
        primary.stderr()
    );
    // The difference travelled, not the zone: old SOA, one deletion, new
    // SOA, one addition, between the new SOA twice.
    let log = secondary.stderr();
    assert!(log.contains("kind=\"IXFR\" serial=11"), "{log}");
    assert!(log.contains("carried=6"), "{log}");
    assert!(
        primary.stderr().contains("NOTIFY acknowledged"),
        "{}",
        primary.stderr()
    );
}

#[test]
fn issue_23_serial_auto_and_unchanged_serial_warning() {
    let dir = TempDir::new("xfr-serial");
    let plain = dir.write("plain.zone", &example_zone(3, "192.0.2.25"));
    let auto = dir.write(
        "auto.zone",
        "$ORIGIN auto.test.\n$TTL 300\n@ IN SOA ns1 hostmaster 1 3600 600 86400 60\n@ IN NS ns1\nns1 IN A 127.0.0.1\nhost IN A 192.0.2.1\n",
    );
    let config = dir.write(
        "gslb.toml",
        &format!(
            r#"
[[zone]]
origin = "example.test"
file = "{plain}"
allow_transfer = [{{ from = "127.0.0.1" }}]

[[zone]]
origin = "auto.test"
file = "{auto}"
allow_transfer = [{{ from = "127.0.0.1" }}]
serial = "auto"
"#,
            plain = plain.display(),
            auto = auto.display()
        ),
    );
    let config_arg = config.to_str().expect("utf-8");
    let server = GslbServer::start(&["-c", config_arg, "--api", "127.0.0.1:0"]);
    let serial_of = |zone: &str| -> u64 {
        short(server.addr(), zone, "SOA")
            .first()
            .and_then(|soa| soa.split(' ').nth(2).and_then(|s| s.parse().ok()))
            .unwrap_or(0)
    };
    let first_auto = serial_of("auto.test");
    assert!(
        first_auto > 1_700_000_000,
        "auto serial is the load time: {first_auto}"
    );
    // The served serials are recorded in state/ beside the config.
    let served = dir.path().join("state/served/example.test.serial");
    assert!(
        poll_until(DEADLINE, || served.exists()),
        "no {}",
        served.display()
    );
    assert!(poll_until(DEADLINE, || dir
        .path()
        .join("state/served/auto.test.serial")
        .exists()));

    // Content changes, serials in the files do not.
    std::fs::write(&plain, example_zone(3, "192.0.2.99")).expect("rewrite");
    std::fs::write(
        &auto,
        "$ORIGIN auto.test.\n$TTL 300\n@ IN SOA ns1 hostmaster 1 3600 600 86400 60\n@ IN NS ns1\nns1 IN A 127.0.0.1\nhost IN A 192.0.2.2\n",
    )
    .expect("rewrite");
    let check = common::run_gslb(&["check", "-c", config_arg]);
    assert_eq!(check.code(), Some(0), "{}{}", check.stdout, check.stderr);
    let text = format!("{}{}", check.stdout, check.stderr);
    assert!(
        text.contains("zone example.test.: content changed since it was last served but the SOA serial is still 3"),
        "{text}"
    );
    assert!(
        !text.contains("zone auto.test."),
        "auto serial zone warned: {text}"
    );
    let strict = common::run_gslb(&["check", "--strict", "-c", config_arg]);
    assert_eq!(strict.code(), Some(1), "{}{}", strict.stdout, strict.stderr);

    server.signal("HUP");
    assert!(
        poll_until(DEADLINE, || serial_of("auto.test") > first_auto
            || short(server.addr(), "host.auto.test", "A") == ["192.0.2.2"]),
        "{}",
        server.stderr()
    );
    assert!(
        poll_until(DEADLINE, || serial_of("auto.test") > first_auto),
        "auto serial did not move past {first_auto}"
    );
    assert!(
        poll_until(DEADLINE, || server
            .stderr()
            .contains("zone content changed but its SOA serial did not")),
        "{}",
        server.stderr()
    );
}

/// A scripted primary: answers each TCP transfer request with the next
/// canned reply (built from the request's ID and question), then closes.
struct FakePrimary {
    addr: SocketAddr,
}

/// How the fake primary answers one request.
#[derive(Clone)]
enum Script {
    /// These records (wire, owner uncompressed) in one message, then close.
    Records(Vec<Vec<u8>>),
    /// The first records in a message, then close before the rest.
    CutAfter(Vec<Vec<u8>>),
}

fn record(owner: &str, rtype: u16, rdata: &[u8]) -> Vec<u8> {
    let mut out = common::wire_name(owner);
    out.extend_from_slice(&rtype.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&300u32.to_be_bytes());
    out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    out.extend_from_slice(rdata);
    out
}

fn soa(serial: u32) -> Vec<u8> {
    let mut rdata = common::wire_name("ns1.fake.test");
    rdata.extend(common::wire_name("hostmaster.fake.test"));
    for value in [serial, 3600, 3600, 86400, 60] {
        rdata.extend_from_slice(&value.to_be_bytes());
    }
    record("fake.test", 6, &rdata)
}

fn fake_zone(serial: u32, host: [u8; 4]) -> Vec<Vec<u8>> {
    vec![
        soa(serial),
        record("fake.test", 2, &common::wire_name("ns1.fake.test")),
        record("ns1.fake.test", 1, &[127, 0, 0, 1]),
        record("host.fake.test", 1, &host),
        soa(serial),
    ]
}

impl FakePrimary {
    fn start(scripts: Vec<Script>) -> FakePrimary {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake primary");
        let addr = listener.local_addr().expect("addr");
        std::thread::spawn(move || {
            let mut scripts = scripts.into_iter();
            let mut last = None;
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let Some(request) = common::tcp_recv(&mut stream) else {
                    continue;
                };
                let script = scripts.next().or_else(|| last.clone());
                let Some(script) = script else { continue };
                last = Some(script.clone());
                let (records, cut) = match script {
                    Script::Records(records) => (records, false),
                    Script::CutAfter(records) => (records, true),
                };
                let question_end = 12 + request[12..].iter().position(|&b| b == 0).unwrap_or(0) + 5;
                let mut reply = request[..2].to_vec();
                reply.extend_from_slice(&[0x84, 0x00, 0, 1]);
                reply.extend_from_slice(&(records.len() as u16).to_be_bytes());
                reply.extend_from_slice(&[0, 0, 0, 0]);
                reply.extend_from_slice(&request[12..question_end]);
                for r in &records {
                    reply.extend_from_slice(r);
                }
                if cut {
                    // Announce more than is sent, then close.
                    reply[6..8].copy_from_slice(&(records.len() as u16 + 5).to_be_bytes());
                    let mut framed = ((reply.len() + 200) as u16).to_be_bytes().to_vec();
                    framed.extend_from_slice(&reply);
                    let _ = std::io::Write::write_all(&mut stream, &framed);
                } else {
                    common::tcp_send(&mut stream, &reply);
                }
            }
        });
        FakePrimary { addr }
    }
}

#[test]
fn issue_23_malformed_transfers_leave_the_previous_zone_serving() {
    let dir = TempDir::new("xfr-malformed");
    let mut outside = fake_zone(2, [192, 0, 2, 99]);
    outside.insert(3, record("evil.other.test", 1, &[192, 0, 2, 66]));
    let mut no_soa = fake_zone(2, [192, 0, 2, 99]);
    no_soa.remove(0);
    let scripts = vec![
        Script::Records(fake_zone(1, [192, 0, 2, 1])),
        Script::Records(outside),
        Script::Records(no_soa),
        Script::CutAfter(fake_zone(2, [192, 0, 2, 99])[..3].to_vec()),
    ];
    let primary = FakePrimary::start(scripts);
    let config = dir.write(
        "gslb.toml",
        &format!(
            "[[zone]]\norigin = \"fake.test\"\nprimaries = [\"{}\"]\n",
            primary.addr
        ),
    );
    let server = GslbServer::start(&[
        "-c",
        config.to_str().expect("utf-8"),
        "--api",
        "127.0.0.1:0",
    ]);
    let at = server.addr();
    assert!(
        poll_until(DEADLINE, || short(at, "host.fake.test", "A")
            == ["192.0.2.1"]),
        "{}",
        server.stderr()
    );
    // Each NOTIFY (from 127.0.0.1, the primary's address) starts a refresh
    // that gets the next bad transfer.
    for (round, reason) in [
        "is outside the zone fake.test.",
        "does not start with the zone's SOA",
        "connection closed mid-transfer",
    ]
    .into_iter()
    .enumerate()
    {
        let notify = QueryBuilder::new(0x7000 + round as u16, "fake.test", 6)
            .opcode(4)
            .build();
        assert!(
            poll_until(DEADLINE, || {
                let reply = udp_query(at, &notify);
                reply.rcode() == 0 && server.stderr().contains(reason)
            }),
            "no failure {reason:?} logged:\n{}",
            server.stderr()
        );
        assert_eq!(short(at, "host.fake.test", "A"), ["192.0.2.1"]);
    }
    assert!(server.stderr().contains("the previous copy keeps serving"));
}

#[test]
fn issue_23_axfr_flood_is_limited_per_client() {
    let dir = TempDir::new("xfr-flood");
    // ~24 MB of TXT records: more than loopback socket buffers hold, so a
    // client that does not read keeps its transfer (and its slot) open
    // (until the 30 s write timeout).
    let mut zone = String::from(
        "$ORIGIN big.test.\n$TTL 300\n@ IN SOA ns1 hostmaster 1 3600 600 86400 60\n@ IN NS ns1\nns1 IN A 127.0.0.1\n",
    );
    let filler = format!("\"{}\" ", "x".repeat(250)).repeat(8);
    for i in 0..12_000 {
        zone.push_str(&format!("t{i} IN TXT {filler}\n"));
    }
    let zone = dir.write("big.zone", &zone);
    let config = dir.write(
        "gslb.toml",
        &format!(
            "[[zone]]\norigin = \"big.test\"\nfile = \"{}\"\nallow_transfer = [{{ from = \"127.0.0.1\" }}]\n",
            zone.display()
        ),
    );
    let server = GslbServer::start_within(
        &[
            "-c",
            config.to_str().expect("utf-8"),
            "--api",
            "127.0.0.1:0",
        ],
        Duration::from_secs(120),
    );
    let axfr = QueryBuilder::new(0x0a0a, "big.test", 252).build();
    // Transfers that are never read past their first message keep their
    // slots; once two are held, the next one from this address is refused
    // with an answer (REFUSED) and a log line.
    let mut held = Vec::new();
    assert!(
        poll_until(Duration::from_secs(120), || {
            let mut stream = common::tcp_connect(server.addr());
            common::tcp_send(&mut stream, &axfr);
            let refused = common::tcp_recv(&mut stream)
                .and_then(|reply| common::parse_reply(&reply))
                .is_some_and(|reply| reply.rcode() == 5);
            if !refused {
                held.push(stream);
            }
            refused
        }),
        "no concurrent transfer was refused:\n{}",
        server.stderr()
    );
    assert!(
        held.len() >= 2,
        "refused with {} transfers open",
        held.len()
    );
    assert!(
        server
            .stderr()
            .contains("too many concurrent transfers from this client"),
        "{}",
        server.stderr()
    );
    drop(held);
}

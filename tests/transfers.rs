//! Zone transfers, NOTIFY and TSIG against real peers on loopback (issue 23):
//! gslb as primary for a Knot DNS secondary, gslb as secondary of a Knot DNS
//! primary, of NSD and of another gslb; RFC 8945 answers checked by the
//! test's own TSIG code (module `tsig` below); refusals answered and logged;
//! malformed transfers from a scripted primary; cached secondary zones
//! served after a restart with the primary down; flood limits; `gslb check`.
//! Every wait is a poll with a deadline.

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

/// Knot DNS as a primary of `knot.test` on `port` (its zone file in
/// `dir/knot-primary`), computing differences from zone file reloads so it
/// answers IXFR incrementally, and NOTIFYing gslb on `gslb_port`; TSIG key
/// `xfr` for both.
fn start_knot_primary(dir: &Path, port: u16, gslb_port: u16) -> Peer {
    let run = dir.join("knot-primary");
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
  - id: transfer_to_gslb
    address: 127.0.0.1
    key: xfr
    action: transfer
template:
  - id: default
    storage: "{run}"
    zonefile-load: difference
    journal-content: changes
zone:
  - domain: knot.test
    notify: gslb
    acl: transfer_to_gslb
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

/// `knot.test` at `serial` (REFRESH an hour: within a test only NOTIFY
/// makes a secondary fetch it again) with these extra lines.
fn write_knot_zone(dir: &Path, serial: u32, extra: &str) {
    let run = dir.join("knot-primary");
    std::fs::create_dir_all(&run).expect("knot dir");
    let zone = format!(
        "$ORIGIN knot.test.\n$TTL 300\n@ IN SOA ns1 hostmaster {serial} 3600 1 3600 60\n@ IN NS ns1\nns1 IN A 127.0.0.1\nkeep IN A 10.9.9.9\n{extra}"
    );
    std::fs::write(run.join("knot.test.zone"), zone).expect("write knot.test.zone");
}

/// NSD as a primary of `corp.test` (which it NOTIFYs gslb on `gslb_port`
/// about) and `timer.test` (which it does not) on `port`.
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
zone:
    name: timer.test
    zonefile: timer.zone
    provide-xfr: 127.0.0.1 xfr
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

/// NSD's two zones at `serial`, `intranet` being the address that changes.
fn write_nsd_zones(dir: &Path, serial: u32, intranet: &str) {
    let run = dir.join("nsd");
    std::fs::create_dir_all(&run).expect("nsd dir");
    // corp.test: REFRESH an hour, so within the test only a NOTIFY makes
    // gslb fetch it again; EXPIRE an hour, so its cache outlives the test.
    // timer.test: REFRESH 1 s, RETRY 1 s, EXPIRE 6 s: refreshed by the
    // timers alone (NSD does not notify for it), and expiring soon once
    // NSD is gone.
    for (zone, timers) in [("corp", "3600 1 3600"), ("timer", "1 1 6")] {
        let text = format!(
            "$ORIGIN {zone}.test.\n$TTL 300\n@ IN SOA ns1 hostmaster {serial} {timers} 60\n@ IN NS ns1\nns1 IN A 127.0.0.1\nintranet IN A {intranet}\n"
        );
        std::fs::write(run.join(format!("{zone}.zone")), text).expect("write zone");
    }
}

fn example_zone(serial: u32, mail: &str) -> String {
    format!(
        "$ORIGIN example.test.\n$TTL 300\n@ IN SOA ns1 hostmaster {serial} 3600 600 86400 60\n@ IN NS ns1\nns1 IN A 127.0.0.1\nmail IN A {mail}\n@ IN MX 10 mail\n"
    )
}

/// gslb as primary of `example.test` for the Knot secondary; `api` is the
/// `transfer_answer` list of `api.example.test`.
fn primary_config(zone: &Path, knot_port: u16, api: &str) -> String {
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
transfer_answer = {api}

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
    let config = dir.write(
        "gslb.toml",
        &primary_config(&zone, knot_port, r#"["192.0.2.50", "192.0.2.51"]"#),
    );
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

    // A reload with a new serial and a service's transfer_answer changed:
    // NOTIFY, then IXFR of the difference (Knot's REFRESH is an hour, so
    // only the NOTIFY brings it).
    std::fs::write(&zone, example_zone(2, "192.0.2.26")).expect("rewrite zone");
    std::fs::write(
        &config,
        primary_config(&zone, knot_port, r#"["192.0.2.52"]"#),
    )
    .expect("rewrite config");
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
    assert!(knot.log().contains("notify, incoming"), "{}", knot.log());
    assert_eq!(short(knot_dns, "api.example.test", "A"), ["192.0.2.52"]);
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

/// The zone's entry in `/status`'s `transfers`.
fn zone_status(server: &GslbServer, zone: &str) -> serde_json::Value {
    let status = common::http(server.api(), "GET", "/status", &[], "");
    let doc: serde_json::Value = serde_json::from_str(&status.body).unwrap_or_default();
    doc["transfers"][zone].clone()
}

#[test]
fn issue_23_gslb_secondary_of_nsd_refreshes_on_notify_and_timers_serves_cache_and_expires() {
    let dir = TempDir::new("xfr-nsd");
    let nsd_port = free_port();
    let gslb_port = free_port();
    write_nsd_zones(dir.path(), 1, "10.0.0.1");
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

[[zone]]
origin = "timer.test"
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
        poll_until(DEADLINE, || short(nsd_dns, "timer.test", "SOA").len() == 1),
        "nsd did not start:\n{}",
        nsd.log()
    );
    let server = GslbServer::start(&args);
    let gslb = SocketAddr::from(([127, 0, 0, 1], gslb_port));

    // Both fetched at start; a service lives in the secondary zone.
    for zone in ["corp", "timer"] {
        let name = format!("intranet.{zone}.test");
        assert!(
            poll_until(DEADLINE, || short(gslb, &name, "A") == ["10.0.0.1"]),
            "gslb never served {zone}.test from NSD; log:\n{}",
            server.stderr()
        );
    }
    assert_eq!(short(gslb, "app.corp.test", "A"), ["192.0.2.10"]);
    let corp = zone_status(&server, "corp.test.");
    assert_eq!(corp["role"], "secondary", "{corp}");
    assert_eq!(corp["serial"], 1, "{corp}");
    assert_eq!(
        corp["last_transfer_in"]["peer"],
        nsd_dns.to_string(),
        "{corp}"
    );
    assert_eq!(corp["last_transfer_in"]["result"], "ok", "{corp}");

    // The primary's zones change. corp.test is fetched again only because
    // NSD NOTIFYs gslb (its REFRESH is an hour); timer.test only because
    // its REFRESH (1 s) comes round (NSD sends no NOTIFY for it).
    write_nsd_zones(dir.path(), 2, "10.0.0.2");
    let status = Command::new("kill")
        .args(["-HUP", &nsd.child.id().to_string()])
        .status()
        .expect("kill -HUP nsd");
    assert!(status.success());
    for zone in ["corp", "timer"] {
        let name = format!("intranet.{zone}.test");
        assert!(
            poll_until(DEADLINE, || short(gslb, &name, "A") == ["10.0.0.2"]),
            "gslb never picked up serial 2 of {zone}.test; log:\n{}\nnsd log:\n{}",
            server.stderr(),
            nsd.log()
        );
    }
    let log = server.stderr();
    assert!(
        log_has_line(&log, &["NOTIFY received", "zone=corp.test."]),
        "{log}"
    );
    assert!(
        !log_has_line(&log, &["NOTIFY received", "zone=timer.test."]),
        "{log}"
    );
    assert!(
        log_has_line(&log, &["transfer in", "zone=timer.test.", "serial=2"]),
        "{log}"
    );
    // /status and /metrics per zone.
    assert!(
        poll_until(DEADLINE, || zone_status(&server, "corp.test.")["serial"]
            == 2),
        "{}",
        zone_status(&server, "corp.test.")
    );
    let metrics = common::http(server.api(), "GET", "/metrics", &[], "").body;
    for line in [
        "gslb_zone_serial{zone=\"corp.test.\"} 2",
        "gslb_zone_serial{zone=\"timer.test.\"} 2",
        "gslb_zone_transfers_in_total{zone=\"corp.test.\",result=\"ok\"} 2",
        "gslb_zone_transfers_in_total{zone=\"timer.test.\",result=\"ok\"} 2",
    ] {
        assert!(
            metrics.contains(line),
            "no {line:?} in /metrics:\n{metrics}"
        );
    }
    // timer.test's SOA checks between transfers are counted apart.
    let up_to_date = "gslb_zone_transfers_in_total{zone=\"timer.test.\",result=\"up_to_date\"}";
    assert!(
        poll_until(DEADLINE, || common::http(
            server.api(),
            "GET",
            "/metrics",
            &[],
            ""
        )
        .body
        .contains(up_to_date)),
        "no up_to_date refresh of timer.test counted"
    );

    // Restart with the primary down: the cached copies serve, the service
    // in the zone too...
    drop(nsd);
    drop(server);
    let server = GslbServer::start(&args);
    assert_eq!(short(gslb, "intranet.corp.test", "A"), ["10.0.0.2"]);
    assert_eq!(short(gslb, "app.corp.test", "A"), ["192.0.2.10"]);
    // ...each until its EXPIRE after its last refresh: timer.test's 6 s
    // pass, then SERVFAIL (RFC 1035 §4.3.5); corp.test's hour does not.
    assert!(
        poll_until(DEADLINE, || dig(gslb, &["intranet.timer.test", "A"]).status
            == "SERVFAIL"),
        "timer.test never expired; log:\n{}",
        server.stderr()
    );
    assert_eq!(short(gslb, "intranet.corp.test", "A"), ["10.0.0.2"]);
    for parts in [
        &[
            "transfer in failed",
            "zone=corp.test.",
            "the previous copy keeps serving",
        ][..],
        &["secondary zone expired", "zone=timer.test."],
    ] {
        assert!(
            poll_until(DEADLINE, || log_has_line(&server.stderr(), parts)),
            "no log line with {parts:?}:\n{}",
            server.stderr()
        );
    }
    assert!(
        poll_until(DEADLINE, || {
            zone_status(&server, "corp.test.")["last_transfer_in"]["result"]
                .as_str()
                .is_some_and(|r| r.starts_with("error: "))
        }),
        "{}",
        zone_status(&server, "corp.test.")
    );
}

#[test]
fn issue_23_gslb_secondary_of_knot_primary_applies_its_incremental_ixfr_on_notify() {
    let dir = TempDir::new("xfr-knot-primary");
    let knot_port = free_port();
    let gslb_port = free_port();
    write_knot_zone(dir.path(), 1, "old IN A 10.0.0.1\n");
    let knot = start_knot_primary(dir.path(), knot_port, gslb_port);
    let knot_dns = knot_addr(knot_port);
    assert!(
        poll_until(DEADLINE, || short(knot_dns, "knot.test", "SOA").len() == 1),
        "knot did not start:\n{}",
        knot.log()
    );
    let config = dir.write(
        "gslb.toml",
        &format!(
            r#"
[tsig.xfr]
algorithm = "hmac-sha256"
secret = "{SECRET}"

[[zone]]
origin = "knot.test"
primaries = ["127.0.0.1:{knot_port}"]
tsig = "xfr"
"#
        ),
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
    let gslb = server.addr();
    assert!(
        poll_until(DEADLINE, || short(gslb, "old.knot.test", "A")
            == ["10.0.0.1"]),
        "gslb never served the zone from Knot; log:\n{}\nknot log:\n{}",
        server.stderr(),
        knot.log()
    );

    // Serial 2 deletes a record and adds one; Knot computes the difference
    // on reload, NOTIFYs (signed), and answers gslb's IXFR with it.
    write_knot_zone(dir.path(), 2, "new IN A 10.0.0.2\n");
    let status = Command::new("kill")
        .args(["-HUP", &knot.child.id().to_string()])
        .status()
        .expect("kill -HUP knotd");
    assert!(status.success());
    assert!(
        poll_until(DEADLINE, || short(gslb, "new.knot.test", "A")
            == ["10.0.0.2"]),
        "gslb never applied serial 2; log:\n{}\nknot log:\n{}",
        server.stderr(),
        knot.log()
    );
    assert_eq!(dig(gslb, &["old.knot.test", "A"]).status, "NXDOMAIN");
    assert_eq!(short(gslb, "keep.knot.test", "A"), ["10.9.9.9"]);
    let log = server.stderr();
    assert!(
        log_has_line(&log, &["NOTIFY received", "zone=knot.test."]),
        "{log}"
    );
    // Old SOA, one deletion, new SOA, one addition, between the new SOA
    // twice: six records, an incremental transfer.
    assert!(
        log_has_line(
            &log,
            &["transfer in", "kind=\"IXFR\" serial=2", "carried=6"]
        ),
        "{log}"
    );
    assert!(
        knot.log().contains("IXFR, outgoing") && knot.log().contains("serial 1 -> 2"),
        "{}",
        knot.log()
    );
}

#[test]
fn issue_23_secondary_with_wrong_key_keeps_nothing_and_logs_why() {
    let dir = TempDir::new("xfr-wrongkey");
    let nsd_port = free_port();
    let gslb_port = free_port();
    write_nsd_zones(dir.path(), 1, "10.0.0.1");
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
/// canned reply (built from the request's ID and question, signed with
/// `key` over the request's MAC when there is one), then closes.
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
    /// These records in one message whose TSIG MAC is wrong.
    BadMac(Vec<Vec<u8>>),
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
    fn start(scripts: Vec<Script>, key: Option<tsig::Key>) -> FakePrimary {
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
                let (records, cut, bad_mac) = match script {
                    Script::Records(records) => (records, false, false),
                    Script::CutAfter(records) => (records, true, false),
                    Script::BadMac(records) => (records, false, true),
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
                    if let Some(key) = &key {
                        let request_mac = tsig::read(&request, &key.name)
                            .map(|r| r.mac)
                            .unwrap_or_default();
                        if bad_mac {
                            tsig::append(key, &mut reply, tsig::now(), &request_mac);
                        } else {
                            tsig::sign(key, &mut reply, Some(&request_mac), tsig::now());
                        }
                    }
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
        Script::BadMac(fake_zone(2, [192, 0, 2, 99])),
        Script::CutAfter(fake_zone(2, [192, 0, 2, 99])[..3].to_vec()),
    ];
    let key = tsig::Key::new("xfr", "hmac-sha256", SECRET);
    let primary = FakePrimary::start(scripts, Some(key.clone()));
    let config = dir.write(
        "gslb.toml",
        &format!(
            "[tsig.xfr]\nalgorithm = \"hmac-sha256\"\nsecret = \"{SECRET}\"\n\n[[zone]]\norigin = \"fake.test\"\nprimaries = [\"{}\"]\ntsig = \"xfr\"\n",
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
    // Each signed NOTIFY (from 127.0.0.1, the primary's address) starts a
    // refresh that gets the next bad transfer.
    for (round, reason) in [
        "is outside the zone fake.test.",
        "does not start with the zone's SOA",
        "TSIG: TSIG signature does not verify (BADSIG)",
        "connection closed mid-transfer",
    ]
    .into_iter()
    .enumerate()
    {
        assert!(
            poll_until(DEADLINE, || {
                let mut notify = QueryBuilder::new(0x7000 + round as u16, "fake.test", 6)
                    .opcode(4)
                    .build();
                tsig::sign(&key, &mut notify, None, tsig::now());
                let reply = udp_query(at, &notify);
                reply.rcode() == 0 && server.stderr().contains(reason)
            }),
            "no failure {reason:?} logged:\n{}",
            server.stderr()
        );
        assert_eq!(short(at, "host.fake.test", "A"), ["192.0.2.1"]);
        // Reported in /status; the serial served stays the good copy's.
        let status = zone_status(&server, "fake.test.");
        assert_eq!(status["serial"], 1, "{status}");
    }
    assert!(server.stderr().contains("the previous copy keeps serving"));
    // The log line comes just before the status is recorded.
    assert!(
        poll_until(DEADLINE, || {
            zone_status(&server, "fake.test.")["last_transfer_in"]["result"]
                .as_str()
                .is_some_and(|r| r.contains("connection closed mid-transfer"))
        }),
        "{}",
        zone_status(&server, "fake.test.")
    );
}

/// Starts an AXFR from `from` and reads only its first message, through a
/// 4 KiB receive window: the rest of a zone bigger than the server's send
/// buffer (4 MiB at most on Linux) stays unsent, so the transfer keeps its
/// slot until gslb's write timeout (30 s). `None` when it was refused.
fn hold_transfer(from: [u8; 4], server: SocketAddr, request: &[u8]) -> Option<std::net::TcpStream> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
        .expect("tcp socket");
    socket
        .set_recv_buffer_size(4096)
        .expect("small receive buffer");
    socket
        .bind(&SocketAddr::from((from, 0)).into())
        .expect("bind the source address");
    socket
        .connect_timeout(&server.into(), Duration::from_secs(5))
        .expect("connect");
    let mut stream: std::net::TcpStream = socket.into();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("read timeout");
    common::tcp_send(&mut stream, request);
    let first = common::tcp_recv(&mut stream).expect("an answer, never a closed connection");
    (rcode_of(&first) == 0).then_some(stream)
}

#[test]
fn issue_23_axfr_flood_is_limited_per_client_and_overall() {
    let dir = TempDir::new("xfr-flood");
    // ~8 MB of TXT records: twice the most a server's send buffer holds.
    let mut zone = String::from(
        "$ORIGIN big.test.\n$TTL 300\n@ IN SOA ns1 hostmaster 1 3600 600 86400 60\n@ IN NS ns1\nns1 IN A 127.0.0.1\n",
    );
    let filler = format!("\"{}\" ", "x".repeat(250)).repeat(8);
    for i in 0..4_000 {
        zone.push_str(&format!("t{i} IN TXT {filler}\n"));
    }
    let zone = dir.write("big.zone", &zone);
    let config = dir.write(
        "gslb.toml",
        &format!(
            "[[zone]]\norigin = \"big.test\"\nfile = \"{}\"\nallow_transfer = [{{ from = \"127.0.0.0/8\" }}]\n",
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
    let localhost = [127, 0, 0, 1];
    // Two held transfers from one address; the third is refused with an
    // answer (REFUSED) and a log line.
    let mut held: Vec<_> = (0..2)
        .map(|i| {
            hold_transfer(localhost, server.addr(), &axfr)
                .unwrap_or_else(|| panic!("transfer {i} refused:\n{}", server.stderr()))
        })
        .collect();
    assert!(
        hold_transfer(localhost, server.addr(), &axfr).is_none(),
        "a third concurrent transfer from one client must be REFUSED"
    );
    assert!(
        poll_until(DEADLINE, || server
            .stderr()
            .contains("too many concurrent transfers from this client (2)")),
        "{}",
        server.stderr()
    );

    // The overall limit: two held transfers from each of seven more
    // addresses make 16; a client holding none is then refused too.
    for host in 2..=8u8 {
        for _ in 0..2 {
            let stream = hold_transfer([127, 0, 0, host], server.addr(), &axfr)
                .unwrap_or_else(|| panic!("127.0.0.{host} refused under the limit"));
            held.push(stream);
        }
    }
    assert!(
        hold_transfer([127, 0, 0, 9], server.addr(), &axfr).is_none(),
        "the 17th concurrent transfer must be REFUSED"
    );
    assert!(
        poll_until(DEADLINE, || server
            .stderr()
            .contains("too many concurrent transfers (16 overall)")),
        "{}",
        server.stderr()
    );
    // Slots come back when transfers end: closing one lets a new one in.
    drop(held.pop());
    assert!(
        poll_until(DEADLINE, || {
            match hold_transfer([127, 0, 0, 9], server.addr(), &axfr) {
                Some(stream) => {
                    held.push(stream);
                    true
                }
                None => false,
            }
        }),
        "a slot freed by a closed transfer was never given again"
    );
}

/// TSIG done by the test itself (RFC 8945 §4.3), independent of gslb's
/// code: signing requests, NOTIFYs and a scripted primary's answers, and
/// checking gslb's answers field by field.
mod tsig {
    use crate::common;
    use base64::Engine;
    use ring::hmac;

    /// TSIG error codes (RFC 8945 §4.3).
    pub const BADSIG: u16 = 16;
    pub const BADKEY: u16 = 17;
    pub const BADTIME: u16 = 18;
    pub const BADTRUNC: u16 = 22;

    /// A key as `dig -y` takes it.
    #[derive(Clone)]
    pub struct Key {
        pub name: String,
        pub algorithm: &'static str,
        pub secret_base64: String,
        secret: Vec<u8>,
    }

    impl Key {
        pub fn new(name: &str, algorithm: &'static str, secret_base64: &str) -> Key {
            let secret = base64::engine::general_purpose::STANDARD
                .decode(secret_base64)
                .expect("test secret is base64");
            Key {
                name: name.to_string(),
                algorithm,
                secret_base64: secret_base64.to_string(),
                secret,
            }
        }

        fn hmac(&self) -> hmac::Key {
            let algorithm = match self.algorithm {
                "hmac-sha1" => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
                "hmac-sha256" => hmac::HMAC_SHA256,
                "hmac-sha512" => hmac::HMAC_SHA512,
                other => panic!("no such algorithm {other}"),
            };
            hmac::Key::new(algorithm, &self.secret)
        }
    }

    /// A TSIG record read back from a message.
    #[derive(Debug)]
    pub struct Record {
        /// Where it starts in the message.
        pub start: usize,
        pub algorithm: Vec<u8>,
        pub time_signed: u64,
        pub fudge: u16,
        pub mac: Vec<u8>,
        pub original_id: u16,
        pub error: u16,
        pub other: Vec<u8>,
    }

    fn lower(name: &[u8]) -> Vec<u8> {
        name.iter().map(u8::to_ascii_lowercase).collect()
    }

    /// The TSIG variables (RFC 8945 §4.3.3), or only the timers (§4.3.1,
    /// later messages of a stream).
    fn variables(
        key: &Key,
        time: u64,
        fudge: u16,
        error: u16,
        other: &[u8],
        full: bool,
    ) -> Vec<u8> {
        let mut out = Vec::new();
        if full {
            out.extend(lower(&common::wire_name(&key.name)));
            out.extend_from_slice(&255u16.to_be_bytes());
            out.extend_from_slice(&0u32.to_be_bytes());
            out.extend(common::wire_name(key.algorithm));
        }
        out.extend_from_slice(&time.to_be_bytes()[2..]);
        out.extend_from_slice(&fudge.to_be_bytes());
        if full {
            out.extend_from_slice(&error.to_be_bytes());
            out.extend_from_slice(&(other.len() as u16).to_be_bytes());
            out.extend_from_slice(other);
        }
        out
    }

    fn mac(key: &Key, prior: Option<&[u8]>, message: &[u8], vars: &[u8]) -> Vec<u8> {
        let mut context = hmac::Context::with_key(&key.hmac());
        if let Some(prior) = prior {
            context.update(&(prior.len() as u16).to_be_bytes());
            context.update(prior);
        }
        context.update(message);
        context.update(vars);
        context.sign().as_ref().to_vec()
    }

    /// Signs `message` at `time` (over `prior`, a request MAC, for an
    /// answer), appending the TSIG record; returns the MAC.
    pub fn sign(key: &Key, message: &mut Vec<u8>, prior: Option<&[u8]>, time: u64) -> Vec<u8> {
        let digest = mac(
            key,
            prior,
            message,
            &variables(key, time, 300, 0, &[], true),
        );
        append(key, message, time, &digest);
        digest
    }

    /// Appends a TSIG record with this MAC (right or wrong).
    pub fn append(key: &Key, message: &mut Vec<u8>, time: u64, mac: &[u8]) {
        let id = [message[0], message[1]];
        let mut rdata = common::wire_name(key.algorithm);
        rdata.extend_from_slice(&time.to_be_bytes()[2..]);
        rdata.extend_from_slice(&300u16.to_be_bytes());
        rdata.extend_from_slice(&(mac.len() as u16).to_be_bytes());
        rdata.extend_from_slice(mac);
        rdata.extend_from_slice(&id);
        rdata.extend_from_slice(&[0, 0, 0, 0]);
        message.extend(common::wire_name(&key.name));
        message.extend_from_slice(&250u16.to_be_bytes());
        message.extend_from_slice(&255u16.to_be_bytes());
        message.extend_from_slice(&0u32.to_be_bytes());
        message.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        message.extend_from_slice(&rdata);
        let arcount = u16::from_be_bytes([message[10], message[11]]) + 1;
        message[10..12].copy_from_slice(&arcount.to_be_bytes());
    }

    /// The TSIG record ending `message`, whose owner is `key_name`
    /// (uncompressed, as gslb and this module write it).
    pub fn read(message: &[u8], key_name: &str) -> Option<Record> {
        let owner = lower(&common::wire_name(key_name));
        let reply = common::parse_reply(message)?;
        let last = reply.additional.last().filter(|r| r.rtype == 250)?;
        let start = message.len() - last.rdata.len() - 10 - owner.len();
        if lower(&message[start..start + owner.len()]) != owner {
            return None;
        }
        let rdata = &last.rdata;
        let algorithm_len = rdata.iter().position(|&b| b == 0)? + 1;
        let mut algorithm = Vec::new();
        let mut at = 0;
        while at + 1 < algorithm_len {
            let len = usize::from(rdata[at]);
            algorithm.push(rdata[at]);
            algorithm.extend(lower(rdata.get(at + 1..at + 1 + len)?));
            at += 1 + len;
        }
        algorithm.push(0);
        let p = algorithm_len;
        let word = |at: usize| Some(u16::from_be_bytes([*rdata.get(at)?, *rdata.get(at + 1)?]));
        let time_signed = rdata
            .get(p..p + 6)?
            .iter()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
        let fudge = word(p + 6)?;
        let mac_len = usize::from(word(p + 8)?);
        let mac = rdata.get(p + 10..p + 10 + mac_len)?.to_vec();
        let q = p + 10 + mac_len;
        let other_len = usize::from(word(q + 4)?);
        Some(Record {
            start,
            algorithm,
            time_signed,
            fudge,
            mac,
            original_id: word(q)?,
            error: word(q + 2)?,
            other: rdata.get(q + 6..q + 6 + other_len)?.to_vec(),
        })
    }

    /// The message as it was signed: TSIG cut off, ARCOUNT one less, the
    /// original ID.
    fn unsigned(message: &[u8], record: &Record) -> Vec<u8> {
        let mut out = message[..record.start].to_vec();
        out[0..2].copy_from_slice(&record.original_id.to_be_bytes());
        let arcount = u16::from_be_bytes([out[10], out[11]]) - 1;
        out[10..12].copy_from_slice(&arcount.to_be_bytes());
        out
    }

    /// Checks the MAC of one signed message of a stream: the first over
    /// `prior` (the request MAC) with all variables, later ones over the
    /// previous MAC with the timers only. Returns the record.
    pub fn verify(key: &Key, message: &[u8], prior: &[u8], first: bool) -> Result<Record, String> {
        let record = read(message, &key.name).ok_or("no TSIG record")?;
        if record.algorithm != common::wire_name(key.algorithm) {
            return Err(format!("algorithm {:?}", record.algorithm));
        }
        let vars = variables(
            key,
            record.time_signed,
            record.fudge,
            record.error,
            &record.other,
            first,
        );
        let expected = mac(key, Some(prior), &unsigned(message, &record), &vars);
        if expected != record.mac {
            return Err("MAC does not verify".into());
        }
        Ok(record)
    }

    /// Seconds since the epoch.
    pub fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs()
    }
}

/// A TCP connection to `server` from the local address `from` (any
/// 127.0.0.0/8 address works on loopback), with timeouts.
fn tcp_from(from: [u8; 4], server: SocketAddr) -> std::net::TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
        .expect("tcp socket");
    socket
        .bind(&SocketAddr::from((from, 0)).into())
        .expect("bind the source address");
    socket
        .connect_timeout(&server.into(), Duration::from_secs(5))
        .expect("connect");
    let stream: std::net::TcpStream = socket.into();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("read timeout");
    stream
}

/// Sends `request` on a new connection from `from` and reads the answer:
/// every message up to the closing SOA of a transfer, or the one message
/// of a refusal or of an up-to-date IXFR. Panics when the connection closes without an answer.
fn transfer_from(from: [u8; 4], server: SocketAddr, request: &[u8]) -> Vec<Vec<u8>> {
    let mut stream = tcp_from(from, server);
    common::tcp_send(&mut stream, request);
    let mut messages = Vec::new();
    let mut soas = 0;
    loop {
        let message = common::tcp_recv(&mut stream).unwrap_or_else(|| {
            panic!(
                "connection closed (or timed out) after {} messages, without an answer",
                messages.len()
            )
        });
        let reply = common::parse_reply(&message).expect("a DNS message");
        soas += reply.answer.iter().filter(|r| r.rtype == 6).count();
        // A lone SOA first is a whole IXFR answer (RFC 1995 §4: up to date).
        let lone_soa = messages.is_empty() && reply.answer.len() == 1 && soas == 1;
        let done = reply.rcode() != 0 || soas >= 2 || lone_soa;
        messages.push(message);
        if done {
            return messages;
        }
    }
}

fn rcode_of(message: &[u8]) -> u16 {
    common::parse_reply(message).expect("a DNS message").rcode()
}

#[test]
fn issue_23_tsig_answers_follow_rfc_8945_and_every_refusal_is_answered() {
    let dir = TempDir::new("xfr-rfc8945");
    let zone = dir.write("example.zone", &example_zone(7, "192.0.2.25"));
    // secret_file, relative to the config file, for the SHA-1 and SHA-512 keys.
    dir.write("old.key", &format!("{WRONG_SECRET}\n"));
    std::fs::create_dir_all(dir.path().join("keys")).expect("keys dir");
    dir.write("keys/big.key", SECRET);
    let config = dir.write(
        "gslb.toml",
        &format!(
            r#"
[tsig.xfr]
algorithm = "hmac-sha256"
secret = "{SECRET}"

[tsig.old]
algorithm = "hmac-sha1"
secret_file = "old.key"

[tsig.big]
algorithm = "hmac-sha512"
secret_file = "keys/big.key"

[[zone]]
origin = "example.test"
file = "{zone}"
allow_transfer = [
    {{ from = "127.0.0.1", tsig = "xfr" }},
    {{ from = "127.0.0.1", tsig = "old" }},
    {{ from = "127.0.0.1", tsig = "big" }},
]

# A secondary whose primary (port 9) never answers: NOTIFYs to it are
# checked, and refresh attempts fail harmlessly.
[[zone]]
origin = "corp.test"
primaries = ["127.0.0.1:9"]
tsig = "xfr"
"#,
            zone = zone.display()
        ),
    );
    let server = GslbServer::start(&[
        "-c",
        config.to_str().expect("utf-8"),
        "--api",
        "127.0.0.1:0",
    ]);
    let addr = server.addr();
    let sha256 = tsig::Key::new("xfr", "hmac-sha256", SECRET);
    let sha1 = tsig::Key::new("old", "hmac-sha1", WRONG_SECRET);
    let sha512 = tsig::Key::new("big", "hmac-sha512", SECRET);
    let axfr = |id: u16| QueryBuilder::new(id, "example.test", 252).build();
    let localhost = [127, 0, 0, 1];

    // Each algorithm, its secret inline or from a file: dig verifies every
    // message, and so does this test (the chained MACs of RFC 8945 §5.3.1).
    for key in [&sha256, &sha1, &sha512] {
        let out = dig_transfer(
            addr,
            &[
                "example.test",
                "AXFR",
                "-y",
                &format!("{}:{}:{}", key.algorithm, key.name, key.secret_base64),
            ],
        );
        assert!(
            out.contains("XFR size: 6 records"),
            "{}: {out}",
            key.algorithm
        );
        // dig says "Couldn't verify signature" / "tsig verify failure".
        assert!(!out.contains("verify"), "{}: {out}", key.algorithm);

        let mut request = axfr(0x1000);
        let request_mac = tsig::sign(key, &mut request, None, tsig::now());
        let messages = transfer_from(localhost, addr, &request);
        let mut prior = request_mac;
        for (index, message) in messages.iter().enumerate() {
            assert_eq!(rcode_of(message), 0, "{}", key.algorithm);
            let record = tsig::verify(key, message, &prior, index == 0)
                .unwrap_or_else(|e| panic!("{} message {index}: {e}", key.algorithm));
            assert_eq!(record.error, 0);
            prior = record.mac;
        }
    }

    // IXFR (RFC 1995 §4) from a serial whose difference gslb does not
    // keep: the whole zone, AXFR style; from the current serial: its SOA.
    let ixfr = |id: u16, serial: u32| {
        let mut request = QueryBuilder::new(id, "example.test", 251).build();
        request[9] = 1; // NSCOUNT: the client's SOA
        let mut rdata = common::wire_name("ns1.example.test");
        rdata.extend(common::wire_name("hostmaster.example.test"));
        for value in [serial, 3600, 600, 86400, 60] {
            rdata.extend_from_slice(&value.to_be_bytes());
        }
        request.extend(common::wire_name("example.test"));
        request.extend_from_slice(&[0, 6, 0, 1, 0, 0, 0, 0]);
        request.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        request.extend(rdata);
        request
    };
    let mut request = ixfr(0x1100, 3);
    let request_mac = tsig::sign(&sha256, &mut request, None, tsig::now());
    let messages = transfer_from(localhost, addr, &request);
    tsig::verify(&sha256, &messages[0], &request_mac, true).expect("IXFR answer signed");
    let types: Vec<u16> = messages
        .iter()
        .flat_map(|m| common::parse_reply(m).expect("message").answer)
        .map(|r| r.rtype)
        .collect();
    assert_eq!(types.len(), 6, "the whole zone: {types:?}");
    // AXFR style: SOA, the records (no second SOA: no difference), SOA.
    assert!(
        types[0] == 6 && types[5] == 6 && types[1..5].iter().all(|&t| t != 6),
        "{types:?}"
    );
    let mut request = ixfr(0x1101, 7);
    tsig::sign(&sha256, &mut request, None, tsig::now());
    let answer =
        common::parse_reply(&transfer_from(localhost, addr, &request)[0]).expect("message");
    assert_eq!(
        answer.answer.iter().map(|r| r.rtype).collect::<Vec<_>>(),
        [6],
        "up to date: the SOA alone"
    );

    // No key: REFUSED (the entry needs one), unsigned.
    let unsigned = transfer_from(localhost, addr, &axfr(0x2000));
    assert_eq!(rcode_of(&unsigned[0]), 5, "unsigned AXFR must be REFUSED");
    assert!(tsig::read(&unsigned[0], "xfr").is_none());

    // Wrong secret: NOTAUTH, BADSIG in an unsigned TSIG record (§5.2.2).
    let wrong = tsig::Key::new("xfr", "hmac-sha256", WRONG_SECRET);
    let mut request = axfr(0x2001);
    tsig::sign(&wrong, &mut request, None, tsig::now());
    let answer = &transfer_from(localhost, addr, &request)[0];
    assert_eq!(rcode_of(answer), 9, "BADSIG is answered NOTAUTH");
    let record = tsig::read(answer, "xfr").expect("a TSIG record");
    assert_eq!((record.error, record.mac.len()), (tsig::BADSIG, 0));

    // Unknown key, and a known key name with another algorithm: BADKEY,
    // unsigned (§5.2.1).
    for key in [
        tsig::Key::new("nokey", "hmac-sha256", SECRET),
        tsig::Key::new("xfr", "hmac-sha512", SECRET),
    ] {
        let mut request = axfr(0x2002);
        tsig::sign(&key, &mut request, None, tsig::now());
        let answer = &transfer_from(localhost, addr, &request)[0];
        assert_eq!(rcode_of(answer), 9, "BADKEY is answered NOTAUTH");
        let record = tsig::read(answer, &key.name).expect("a TSIG record");
        assert_eq!(
            (record.error, record.mac.len()),
            (tsig::BADKEY, 0),
            "{}",
            key.name
        );
    }

    // Signed 1000 s ago (the fudge is 300 s): NOTAUTH, BADTIME, signed
    // with the key over the request's MAC, Time Signed the request's and
    // our clock in Other Data (§5.2.3, §5.3.2).
    let signed_at = tsig::now() - 1000;
    let mut request = axfr(0x2003);
    let request_mac = tsig::sign(&sha256, &mut request, None, signed_at);
    let answer = &transfer_from(localhost, addr, &request)[0];
    assert_eq!(rcode_of(answer), 9, "BADTIME is answered NOTAUTH");
    let record = tsig::verify(&sha256, answer, &request_mac, true).expect("BADTIME answer signed");
    assert_eq!(record.error, tsig::BADTIME);
    assert_eq!(record.time_signed, signed_at);
    assert_eq!(record.other.len(), 6, "Other Data holds the server's time");
    let server_time = record
        .other
        .iter()
        .fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    assert!(server_time.abs_diff(tsig::now()) < 60, "{server_time}");

    // A good signature from an address no entry lists: REFUSED, signed.
    let mut request = axfr(0x2004);
    let request_mac = tsig::sign(&sha256, &mut request, None, tsig::now());
    let answer = &transfer_from([127, 0, 0, 2], addr, &request)[0];
    assert_eq!(rcode_of(answer), 5, "unlisted address must be REFUSED");
    tsig::verify(&sha256, answer, &request_mac, true).expect("refusal signed");

    // NOTIFY for the secondary zone: unsigned, wrong secret, from another
    // address, and signed right (the only one acknowledged).
    let notify = |id: u16| QueryBuilder::new(id, "corp.test", 6).opcode(4).build();
    let notify_from = |from: [u8; 4], message: &[u8]| -> Vec<u8> {
        let socket = UdpSocket::bind(SocketAddr::from((from, 0))).expect("bind");
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        socket.send_to(message, addr).expect("send NOTIFY");
        let mut buffer = vec![0u8; 4096];
        let len = socket.recv(&mut buffer).expect("a NOTIFY answer");
        buffer.truncate(len);
        buffer
    };
    assert_eq!(rcode_of(&notify_from(localhost, &notify(0x3000))), 5);
    let mut message = notify(0x3001);
    tsig::sign(&wrong, &mut message, None, tsig::now());
    let answer = notify_from(localhost, &message);
    assert_eq!(rcode_of(&answer), 9);
    assert_eq!(
        tsig::read(&answer, "xfr").map(|r| r.error),
        Some(tsig::BADSIG)
    );
    let mut message = notify(0x3002);
    let mac = tsig::sign(&sha256, &mut message, None, tsig::now());
    let answer = notify_from([127, 0, 0, 2], &message);
    assert_eq!(rcode_of(&answer), 5, "NOTIFY from a non-primary");
    tsig::verify(&sha256, &answer, &mac, true).expect("refusal signed");
    let mut message = notify(0x3003);
    let mac = tsig::sign(&sha256, &mut message, None, tsig::now());
    let answer = notify_from(localhost, &message);
    assert_eq!(rcode_of(&answer), 0, "signed NOTIFY from the primary");
    tsig::verify(&sha256, &answer, &mac, true).expect("acknowledgement signed");
    // A NOTIFY whose question is cut short: FORMERR, not silence.
    let mut cut = notify(0x3004);
    cut.truncate(cut.len() - 3);
    assert_eq!(rcode_of(&notify_from(localhost, &cut)), 1, "cut NOTIFY");

    // Each refusal is logged with the peer and the reason.
    for parts in [
        &[
            "transfer refused",
            "peer=127.0.0.1:",
            "zone=example.test.",
            "not signed",
        ][..],
        &[
            "transfer refused",
            "peer=127.0.0.1:",
            "zone=example.test.",
            "(BADSIG)",
        ],
        &[
            "transfer refused",
            "peer=127.0.0.1:",
            "zone=example.test.",
            "(BADKEY)",
        ],
        &[
            "transfer refused",
            "peer=127.0.0.1:",
            "zone=example.test.",
            "(BADTIME)",
        ],
        &[
            "transfer refused",
            "peer=127.0.0.2:",
            "address not in allow_transfer",
        ],
        &[
            "NOTIFY refused",
            "peer=127.0.0.1 ",
            "zone=corp.test.",
            "not signed with the zone's key",
        ],
        &[
            "NOTIFY refused",
            "peer=127.0.0.1 ",
            "zone=corp.test.",
            "(BADSIG)",
        ],
        &[
            "NOTIFY refused",
            "peer=127.0.0.2 ",
            "zone=corp.test.",
            "not one of the zone's primaries",
        ],
        &["NOTIFY received", "peer=127.0.0.1 ", "zone=corp.test."],
        &["NOTIFY refused: malformed", "peer=127.0.0.1 "],
    ] {
        assert!(
            poll_until(DEADLINE, || log_has_line(&server.stderr(), parts)),
            "no log line with {parts:?}:\n{}",
            server.stderr()
        );
    }
    // A reload whose key file has gone fails whole: the running keys stay.
    std::fs::remove_file(dir.path().join("keys/big.key")).expect("remove key file");
    server.signal("HUP");
    assert!(
        poll_until(DEADLINE, || log_has_line(
            &server.stderr(),
            &["reload error", "tsig.big: cannot read"]
        )),
        "{}",
        server.stderr()
    );
    let mut request = axfr(0x4000);
    let request_mac = tsig::sign(&sha512, &mut request, None, tsig::now());
    let messages = transfer_from(localhost, addr, &request);
    assert_eq!(rcode_of(&messages[0]), 0, "the running key must still work");
    tsig::verify(&sha512, &messages[0], &request_mac, true).expect("still signed");
}

#[test]
fn issue_23_tsig_mac_sizes_and_earlier_times_follow_rfc_8945() {
    let dir = TempDir::new("xfr-mac-size");
    let zone = dir.write("example.zone", &example_zone(7, "192.0.2.25"));
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
allow_transfer = [{{ from = "127.0.0.1", tsig = "xfr" }}]
"#,
            zone = zone.display()
        ),
    );
    let server = GslbServer::start(&["-c", config.to_str().expect("utf-8")]);
    let addr = server.addr();
    let key = tsig::Key::new("xfr", "hmac-sha256", SECRET);
    let localhost = [127, 0, 0, 1];
    // An AXFR request signed at `time` whose MAC is `cut` from the right
    // one (a prefix, or the whole MAC and more octets).
    type Cut = fn(Vec<u8>) -> Vec<u8>;
    let request_with_mac = |id: u16, time: u64, cut: Cut| {
        let unsigned = QueryBuilder::new(id, "example.test", 252).build();
        let mut signed = unsigned.clone();
        let full = tsig::sign(&key, &mut signed, None, time);
        let mac = cut(full);
        let mut request = unsigned;
        tsig::append(&key, &mut request, time, &mac);
        (request, mac)
    };

    // RFC 8945 §5.2.2.1: a MAC Size above the hash length (32 octets for
    // SHA-256) or below the larger of 10 and half of it (16) is FORMERR.
    let cuts: [(&str, Cut); 2] = [
        ("33 octets", |mut mac| {
            mac.push(0);
            mac
        }),
        ("15 octets", |mac| mac[..15].to_vec()),
    ];
    for (what, cut) in cuts {
        let (request, _) = request_with_mac(0x5000, tsig::now(), cut);
        let answer = &transfer_from(localhost, addr, &request)[0];
        assert_eq!(rcode_of(answer), 1, "MAC of {what} is FORMERR");
        assert!(tsig::read(answer, "xfr").is_none(), "{what}: no TSIG");
    }

    // A permitted truncation (16 octets) that local policy (full MACs)
    // refuses: NOTAUTH, BADTRUNC, signed over the truncated request MAC
    // (§5.2.4, §5.3.2).
    let (request, truncated) = request_with_mac(0x5001, tsig::now(), |mac| mac[..16].to_vec());
    let answer = &transfer_from(localhost, addr, &request)[0];
    assert_eq!(rcode_of(answer), 9, "BADTRUNC is answered NOTAUTH");
    let record = tsig::verify(&key, answer, &truncated, true).expect("BADTRUNC answer signed");
    assert_eq!(record.error, tsig::BADTRUNC);

    // §5.2.3: once a request signed now verified, one signed 10 s earlier
    // (well within the fudge) is BADTIME, signed; a later one still works.
    let now = tsig::now();
    let (request, mac) = request_with_mac(0x5002, now, |mac| mac);
    let answer = &transfer_from(localhost, addr, &request)[0];
    assert_eq!(rcode_of(answer), 0, "signed now");
    tsig::verify(&key, answer, &mac, true).expect("answer signed");
    let (request, mac) = request_with_mac(0x5003, now - 10, |mac| mac);
    let answer = &transfer_from(localhost, addr, &request)[0];
    assert_eq!(rcode_of(answer), 9, "an earlier Time Signed is NOTAUTH");
    let record = tsig::verify(&key, answer, &mac, true).expect("BADTIME answer signed");
    assert_eq!(
        (record.error, record.time_signed),
        (tsig::BADTIME, now - 10)
    );
    let (request, _) = request_with_mac(0x5004, now + 1, |mac| mac);
    assert_eq!(rcode_of(&transfer_from(localhost, addr, &request)[0]), 0);

    for parts in [
        &["transfer refused", "(FORMERR)"][..],
        &["transfer refused", "(BADTRUNC)"],
        &[
            "transfer refused",
            "earlier than the key's last",
            "(BADTIME)",
        ],
    ] {
        assert!(
            poll_until(DEADLINE, || log_has_line(&server.stderr(), parts)),
            "no log line with {parts:?}:\n{}",
            server.stderr()
        );
    }
}

/// Whether one line of the log holds every one of `parts`.
fn log_has_line(log: &str, parts: &[&str]) -> bool {
    log.lines()
        .any(|line| parts.iter().all(|part| line.contains(part)))
}

#[test]
fn issue_23_check_names_file_and_line_of_each_bad_transfer_setting() {
    let dir = TempDir::new("xfr-check");
    let zone = dir.write("example.zone", &example_zone(1, "192.0.2.25"));
    let text = format!(
        r#"[tsig.md5]
algorithm = "hmac-md5"
secret = "{SECRET}"

[tsig.notbase64]
algorithm = "hmac-sha256"
secret = "not base64!"

[tsig.nofile]
algorithm = "hmac-sha256"
secret_file = "missing.key"

[[zone]]
origin = "example.test"
file = "{zone}"
allow_transfer = [{{ from = "192.0.2.0/33" }}, {{ from = "127.0.0.1", tsig = "nokey" }}]
notify = ["nowhere"]
serial = "yes"

[[zone]]
origin = "corp.test"
primaries = ["nowhere"]

[pools.eu]
endpoints = [{{ address = "192.0.2.10" }}]

[services."www.example.test"]
policy = "failover"
pools = ["eu"]
transfer_answer = ["a.example.", "b.example."]

[services."api.example.test"]
policy = "failover"
pools = ["eu"]
transfer_answer = "sometimes"
"#,
        zone = zone.display()
    );
    let config = dir.write("gslb.toml", &text);
    let check = common::run_gslb(&["check", "-c", config.to_str().expect("utf-8")]);
    let output = format!("{}{}", check.stdout, check.stderr);
    assert_eq!(check.code(), Some(1), "{output}");
    let line_of = |needle: &str| {
        text.lines()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle:?} not in the config"))
            + 1
    };
    for (needle, message) in [
        ("\"hmac-md5\"", "tsig.md5: unknown algorithm \"hmac-md5\""),
        (
            "\"not base64!\"",
            "tsig.notbase64: the secret is not base64",
        ),
        ("\"missing.key\"", "tsig.nofile: cannot read"),
        (
            "192.0.2.0/33",
            "\"192.0.2.0/33\" is not an address or CIDR network",
        ),
        (
            "\"nokey\"",
            "unknown TSIG key \"nokey\": define it as [tsig.nokey]",
        ),
        ("notify = [", "notify: \"nowhere\" is not \"ip:port\""),
        ("serial = \"yes\"", "the only value is \"auto\""),
        ("primaries = [", "primaries: \"nowhere\" is not \"ip:port\""),
        (
            "\"b.example.\"",
            "give addresses only, or exactly one CNAME target",
        ),
        (
            "\"sometimes\"",
            "transfer_answer = \"sometimes\": use \"default\", \"omit\"",
        ),
    ] {
        let at = format!("gslb.toml:{}:", line_of(needle));
        assert!(
            output
                .lines()
                .any(|line| line.contains(&at) && line.contains(message)),
            "no {message:?} at {at}:\n{output}"
        );
    }
}

#[test]
fn issue_23_notify_is_retried_until_a_late_secondary_acknowledges() {
    let dir = TempDir::new("xfr-notify-retry");
    let secondary_port = free_port();
    let zone = dir.write("example.zone", &example_zone(4, "192.0.2.25"));
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
allow_transfer = [{{ from = "127.0.0.1", tsig = "xfr" }}]
notify = ["127.0.0.1:{secondary_port}"]
"#,
            zone = zone.display()
        ),
    );
    let server = GslbServer::start(&[
        "-c",
        config.to_str().expect("utf-8"),
        "--api",
        "127.0.0.1:0",
    ]);
    // Nobody listens yet: the first attempt goes unanswered.
    assert!(
        poll_until(DEADLINE, || log_has_line(
            &server.stderr(),
            &["NOTIFY not acknowledged yet", "attempt=1"]
        )),
        "{}",
        server.stderr()
    );
    // The secondary comes up and answers the next attempt.
    let socket = UdpSocket::bind(("127.0.0.1", secondary_port)).expect("bind the secondary");
    socket
        .set_read_timeout(Some(DEADLINE))
        .expect("read timeout");
    let mut buffer = vec![0u8; 4096];
    let (len, from) = socket.recv_from(&mut buffer).expect("a retried NOTIFY");
    let notify = &buffer[..len];
    let parsed = common::parse_reply(notify).expect("a DNS message");
    assert_eq!(parsed.opcode(), 4, "opcode NOTIFY");
    assert!(!parsed.is_response());
    assert_eq!(parsed.questions[0], ("example.test.".to_string(), 6, 1));
    // Signed with the key of the allow_transfer entry covering the target.
    let key = tsig::Key::new("xfr", "hmac-sha256", SECRET);
    let record = tsig::read(notify, "xfr").expect("NOTIFY signed");
    let mut unsigned = notify[..record.start].to_vec();
    let arcount = u16::from_be_bytes([unsigned[10], unsigned[11]]) - 1;
    unsigned[10..12].copy_from_slice(&arcount.to_be_bytes());
    let mut resigned = unsigned.clone();
    let mac = tsig::sign(&key, &mut resigned, None, record.time_signed);
    assert_eq!(mac, record.mac, "NOTIFY's MAC does not verify");
    // Acknowledge: the same message as a response, signed over its MAC.
    let mut answer = unsigned;
    answer[2] |= 0x84; // QR, AA
    tsig::sign(&key, &mut answer, Some(&record.mac), tsig::now());
    socket.send_to(&answer, from).expect("acknowledge");

    assert!(
        poll_until(DEADLINE, || log_has_line(
            &server.stderr(),
            &["NOTIFY acknowledged", "zone=example.test.", "serial=4"]
        )),
        "{}",
        server.stderr()
    );
    assert!(
        !log_has_line(&server.stderr(), &["NOTIFY acknowledged", "attempt=1"]),
        "{}",
        server.stderr()
    );
    let status = zone_status(&server, "example.test.");
    assert_eq!(
        status["pending_notifies"],
        serde_json::json!([]),
        "{status}"
    );
}

//! DNSSEC (issue 20) through the real binary: keys made with `gslb dnssec
//! keygen` (and once with BIND's `dnssec-keygen`), every kind of answer
//! validated by a real validator — `delv` against the zone's trust anchor,
//! and dnspython's `dns.dnssec.validate` where delv cannot ask (ECS,
//! referrals) — plus truncation, a rollover by config, re-signing when the
//! server's clock moves (libfaketime), key checks and reloads, and private
//! keys kept out of every output.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{GslbServer, TempDir, dig, http, run_gslb};

const ZONE: &str = "$ORIGIN signed.test.
$TTL 300
@ SOA ns1 hostmaster 1 7200 900 1209600 60
@ NS ns1
@ MX 10 mail
ns1 A 127.0.0.1
mail A 192.0.2.25
mail AAAA 2001:db8::25
www A 192.0.2.10
alias CNAME alias2
alias2 CNAME www
*.wild A 192.0.2.80
a.b.ent A 192.0.2.90
deleg NS ns.deleg
ns.deleg A 192.0.2.53
sec NS ns.sec
ns.sec A 192.0.2.54
sec DS 12345 13 2 8AE3B1B0D4A6D1D5F3F5C86B2E7E3D1B3C1D8F0A2B4C6D8E0F1A3B5C7D9E1F3A
big TXT \"big-1-abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij\"
big TXT \"big-2-abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij\"
big TXT \"big-3-abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij\"
big TXT \"big-4-abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij\"
big TXT \"big-5-abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcd\"
";

const SERVICES: &str = r#"
[pools.eu]
endpoints = [{ address = "192.0.2.1" }, { address = "2001:db8::1" }]
[pools.us]
endpoints = [{ address = "198.51.100.1" }]
[pools.many]
endpoints = [{ address = "203.0.113.1" }, { address = "203.0.113.2" }, { address = "203.0.113.3" }]

[services."geo.signed.test"]
policy = "geo"
ttl = 20
failover_ttl = 5
[services."geo.signed.test".geo]
nets = { "10.1.0.0/16" = ["eu", "us"], "10.2.0.0/16" = ["us", "eu"], "127.0.0.3/32" = ["us", "eu"] }
default = ["eu", "us"]

[services."multi.signed.test"]
policy = "failover"
pools = ["many"]
selection = "multivalue"
max_records = 3
"#;

/// A signed zone served from a temp dir.
struct Signed {
    dir: TempDir,
    config: PathBuf,
    /// The DS of the SEP key, "TAG ALG 2 HEX".
    ds: String,
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

/// `gslb dnssec keygen` into `dir/keys`; returns the .private path.
fn keygen(dir: &TempDir, algorithm: &str) -> PathBuf {
    let keys = dir.path().join("keys");
    let out = run_gslb(&[
        "dnssec",
        "keygen",
        "signed.test",
        "--algorithm",
        algorithm,
        "--dir",
        path_str(&keys),
    ]);
    assert_eq!(out.code(), Some(0), "keygen: {}", out.stderr);
    PathBuf::from(out.stdout.trim())
}

/// Writes the zone and a config signing it with `keys` (TOML array items).
fn setup(label: &str, keys: &str, extra: &str) -> Signed {
    let dir = TempDir::new(label);
    dir.write("signed.zone", ZONE);
    let config = dir.write(
        "gslb.toml",
        &format!(
            "[server]\napi = \"127.0.0.1:0\"\napi_require_token = false\n\n[[zone]]\norigin = \"signed.test\"\nfile = \"signed.zone\"\ndnssec = true\ndnssec_keys = [{keys}]\n{extra}\n{SERVICES}"
        ),
    );
    Signed {
        dir,
        config,
        ds: String::new(),
    }
}

/// A zone signed with a fresh `gslb dnssec keygen` CSK of `algorithm`.
fn signed_with_keygen(label: &str, algorithm: &str, extra: &str) -> Signed {
    let dir = TempDir::new(label);
    let key = keygen(&dir, algorithm);
    let mut signed = setup(label, &format!("{:?}", path_str(&key)), extra);
    // The zone's files go in the first dir; keep the keys alive with it.
    std::fs::rename(dir.path().join("keys"), signed.dir.path().join("keys")).expect("move keys");
    let moved = signed
        .dir
        .path()
        .join("keys")
        .join(key.file_name().expect("key name"));
    let text = std::fs::read_to_string(&signed.config).expect("config");
    std::fs::write(
        &signed.config,
        text.replace(path_str(&key), path_str(&moved)),
    )
    .expect("config");
    signed.ds = ds_of(&signed.config);
    signed
}

/// `gslb dnssec ds -c CONFIG signed.test` → "TAG ALG 2 HEX".
fn ds_of(config: &Path) -> String {
    let out = run_gslb(&["dnssec", "ds", "-c", path_str(config), "signed.test"]);
    assert_eq!(out.code(), Some(0), "ds: {}", out.stderr);
    let line = out.stdout.lines().next().expect("a DS line").to_string();
    assert!(line.starts_with("signed.test. IN DS "), "{line}");
    line["signed.test. IN DS ".len()..].to_string()
}

/// A delv trust anchor file for `ds` ("TAG ALG DIGESTTYPE HEX").
fn anchor_file(dir: &TempDir, ds: &str) -> PathBuf {
    let fields: Vec<&str> = ds.split_whitespace().collect();
    dir.write(
        "anchors.conf",
        &format!(
            "trust-anchors {{ \"signed.test.\" static-ds {} {} {} \"{}\"; }};\n",
            fields[0], fields[1], fields[2], fields[3]
        ),
    )
}

/// `delv @127.0.0.1 -p PORT -a ANCHORS +root=signed.test +tcp NAME TYPE`.
fn delv(server: &GslbServer, anchors: &Path, name: &str, rtype: &str) -> String {
    delv_with(server, anchors, &["+tcp"], name, rtype)
}

/// [`delv`] with other options (`-b SOURCE`, UDP).
fn delv_with(
    server: &GslbServer,
    anchors: &Path,
    options: &[&str],
    name: &str,
    rtype: &str,
) -> String {
    let out = Command::new("delv")
        .args([
            "@127.0.0.1",
            "-p",
            &server.addr().port().to_string(),
            "-a",
            path_str(anchors),
            "+root=signed.test",
        ])
        .args(options)
        .args([name, rtype])
        .output()
        .expect("run delv (bind9-dnsutils)");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn assert_validated(output: &str, what: &str) {
    assert!(
        output.contains("; fully validated"),
        "{what}: not fully validated:\n{output}"
    );
}

fn assert_negative_validated(output: &str, what: &str) {
    assert!(
        output.contains("; negative response, fully validated"),
        "{what}: negative answer not validated:\n{output}"
    );
}

/// dnspython's validation of one query (optionally with ECS).
fn validate_py(
    server: &GslbServer,
    ds: &str,
    name: &str,
    rtype: &str,
    subnet: Option<&str>,
) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dnssec_validate.py");
    let port = server.addr().port().to_string();
    let mut args = vec![path_str(&script), &port, "signed.test.", ds, name, rtype];
    if let Some(subnet) = subnet {
        args.push(subnet);
    }
    let out = Command::new("/usr/bin/python3")
        .args(&args)
        .output()
        .expect("run python3 (python3-dnspython)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.starts_with("fully validated"),
        "{name} {rtype} {subnet:?}:\n{text}"
    );
    text
}

fn serve(signed: &Signed) -> GslbServer {
    GslbServer::start(&["-c", path_str(&signed.config)])
}

#[test]
fn issue_20_every_static_answer_validates_with_delv() {
    let signed = signed_with_keygen("dnssec-static", "13", "");
    let unix_now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs() as i64
    };
    let before = unix_now();
    let server = serve(&signed);
    let anchors = anchor_file(&signed.dir, &signed.ds);
    // Signed at load: inception an hour back, expiry after the default
    // dnssec_validity of 14 days.
    let www = dig(
        server.addr(),
        &["+dnssec", "+norec", "www.signed.test", "A"],
    );
    let after = unix_now();
    let rrsig: Vec<&str> = www
        .answer
        .iter()
        .find(|r| r.split(' ').nth(3) == Some("RRSIG"))
        .unwrap_or_else(|| panic!("no RRSIG:\n{}", www.raw))
        .split(' ')
        .collect();
    let field = |n: usize| {
        rrsig
            .get(n)
            .and_then(|t| gslb::dnssec::keys::parse_timestamp(t))
            .unwrap_or_else(|| panic!("RRSIG field {n}: {rrsig:?}"))
    };
    let (expiry, inception) = (field(8), field(9));
    assert!(
        (before - 3600..=after - 3600).contains(&inception),
        "inception {inception} not an hour before signing ({before}..={after})"
    );
    assert_eq!(expiry - inception, 14 * 86_400 + 3600, "{rrsig:?}");
    for (name, rtype) in [
        ("www.signed.test", "A"),
        ("signed.test", "DNSKEY"),
        ("signed.test", "SOA"),
        ("signed.test", "CDS"),
        ("signed.test", "CDNSKEY"),
        ("alias.signed.test", "A"),
        ("x.wild.signed.test", "A"),
        ("a.b.ent.signed.test", "A"),
        ("sec.signed.test", "DS"),
    ] {
        let out = delv(&server, &anchors, name, rtype);
        assert_validated(&out, &format!("{name} {rtype}"));
    }
    // `gslb dnssec ds` prints what BIND's dnssec-dsfromkey makes of the
    // .key file keygen wrote, and the apex's CDS and CDNSKEY (RFC 7344) are
    // that DS and that key.
    let public = std::fs::read_dir(signed.dir.path().join("keys"))
        .expect("keys")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "key"))
        .expect("a .key file");
    let bind_ds = Command::new("dnssec-dsfromkey")
        .args(["-2", path_str(&public)])
        .output()
        .expect("run dnssec-dsfromkey (bind9-utils)");
    let bind_ds = String::from_utf8_lossy(&bind_ds.stdout);
    assert_eq!(
        bind_ds.trim(),
        format!("signed.test. IN DS {}", signed.ds),
        "gslb dnssec ds and dnssec-dsfromkey differ"
    );
    let compact = |text: &str| text.split_whitespace().collect::<String>();
    // The RDATA of the one record in the answer to `signed.test TYPE`.
    let apex_rdata = |rtype: &str| -> String {
        let reply = dig(server.addr(), &["+norec", "signed.test", rtype]);
        let records: Vec<&String> = reply.answer.iter().collect();
        assert_eq!(records.len(), 1, "{}", reply.raw);
        compact(records[0].splitn(5, ' ').nth(4).unwrap_or(""))
    };
    assert_eq!(apex_rdata("CDS"), compact(&signed.ds));
    let key_text = std::fs::read_to_string(&public).expect("key");
    let key_rdata = key_text
        .lines()
        .find_map(|l| l.split_once(" IN DNSKEY "))
        .map(|(_, rdata)| rdata.to_string())
        .expect("DNSKEY line");
    assert_eq!(apex_rdata("CDNSKEY"), compact(&key_rdata));
    // The CNAME chain is followed inside the zone, every link signed.
    let chain = delv(&server, &anchors, "alias.signed.test", "A");
    assert!(chain.contains("alias2.signed.test."), "{chain}");
    assert!(chain.contains("192.0.2.10"), "{chain}");
    // MX with its in-zone addresses in the additional section, signed too.
    let mx = delv(&server, &anchors, "signed.test", "MX");
    assert_validated(&mx, "MX");
    let raw = dig(server.addr(), &["+dnssec", "+norec", "signed.test", "MX"]);
    assert!(
        raw.raw
            .contains("mail.signed.test.\t300\tIN\tRRSIG\tA 13 3 300"),
        "additional A unsigned:\n{}",
        raw.raw
    );
    // Negative answers: a name that does not exist (compact denial: NOERROR
    // with an NSEC listing NXNAME), a missing type, an empty non-terminal,
    // a missing type at a wildcard, the DS of an insecure delegation.
    for (name, rtype) in [
        ("nope.signed.test", "A"),
        ("www.signed.test", "AAAA"),
        ("b.ent.signed.test", "A"),
        ("x.wild.signed.test", "TXT"),
        ("deleg.signed.test", "DS"),
        ("geo.signed.test", "MX"),
    ] {
        let out = delv(&server, &anchors, name, rtype);
        assert_negative_validated(&out, &format!("{name} {rtype}"));
    }
    let nx = dig(
        server.addr(),
        &["+dnssec", "+norec", "nope.signed.test", "A"],
    );
    assert_eq!(nx.status, "NOERROR", "{}", nx.raw);
    assert!(
        nx.raw
            .contains("NSEC\t\\000.nope.signed.test. RRSIG NSEC TYPE128")
            || nx.raw.contains("RRSIG NSEC NXNAME"),
        "{}",
        nx.raw
    );
    // Names asked in mixed case (resolvers' 0x20 bits) validate too, the
    // ones signed at query time included: a wildcard expansion, a denial,
    // a service answer.
    for (name, rtype) in [
        ("X.Wild.Signed.TEST.", "A"),
        ("NoPe.signed.test.", "A"),
        ("GEO.signed.test.", "A"),
        ("Www.Signed.Test.", "AAAA"),
    ] {
        validate_py(&server, &signed.ds, name, rtype, None);
    }
    // The referral to the insecure child carries the NSEC proving it has no
    // DS; the one to the secure child carries its signed DS.
    let referral = validate_py(&server, &signed.ds, "host.deleg.signed.test.", "A", None);
    assert!(
        referral.contains("deleg.signed.test. 60 IN NSEC \\000.deleg.signed.test. NS RRSIG NSEC"),
        "{referral}"
    );
    let secure = validate_py(&server, &signed.ds, "host.sec.signed.test.", "A", None);
    assert!(
        secure.contains("sec.signed.test. 300 IN DS 12345 13 2"),
        "{secure}"
    );
}

#[test]
fn issue_20_without_the_do_bit_nothing_changes() {
    let signed = signed_with_keygen("dnssec-plain", "13", "");
    let server = serve(&signed);
    for (name, rtype) in [
        ("www.signed.test", "A"),
        ("nope.signed.test", "A"),
        ("geo.signed.test", "A"),
        ("signed.test", "MX"),
    ] {
        let plain = dig(server.addr(), &["+norec", name, rtype]);
        assert!(
            !plain.raw.contains("RRSIG") && !plain.raw.contains("NSEC"),
            "{}",
            plain.raw
        );
        assert!(!plain.has_flag("do"), "{}", plain.raw);
    }
    let nx = dig(server.addr(), &["+norec", "nope.signed.test", "A"]);
    assert_eq!(nx.status, "NXDOMAIN", "{}", nx.raw);
    let signed_reply = dig(
        server.addr(),
        &["+dnssec", "+norec", "www.signed.test", "A"],
    );
    assert!(
        signed_reply.raw.contains("; EDNS: version: 0, flags: do;"),
        "{}",
        signed_reply.raw
    );
}

#[test]
fn issue_20_a_signed_answer_past_the_udp_limit_is_truncated_and_complete_over_tcp() {
    let signed = signed_with_keygen("dnssec-tc", "13", "");
    let server = serve(&signed);
    let anchors = anchor_file(&signed.dir, &signed.ds);
    // The five TXT records fit in 1,232 bytes; with their RRSIG they do not.
    let plain = dig(
        server.addr(),
        &[
            "+norec",
            "+ignore",
            "+bufsize=1232",
            "big.signed.test",
            "TXT",
        ],
    );
    assert!(!plain.has_flag("tc"), "{}", plain.raw);
    assert_eq!(plain.answer.len(), 5, "{}", plain.raw);
    let udp = dig(
        server.addr(),
        &[
            "+dnssec",
            "+norec",
            "+ignore",
            "+bufsize=1232",
            "big.signed.test",
            "TXT",
        ],
    );
    assert!(udp.has_flag("tc"), "{}", udp.raw);
    assert!(udp.msg_size.is_some_and(|size| size <= 1232), "{}", udp.raw);
    let tcp = dig(
        server.addr(),
        &["+dnssec", "+norec", "+tcp", "big.signed.test", "TXT"],
    );
    assert!(!tcp.has_flag("tc"), "{}", tcp.raw);
    assert_eq!(
        tcp.answer_types(),
        ["TXT", "TXT", "TXT", "TXT", "TXT", "RRSIG"],
        "{}",
        tcp.raw
    );
    // A validator asking over UDP gets TC, retries over TCP and validates.
    let out = delv_with(&server, &anchors, &[], "big.signed.test", "TXT");
    assert_validated(&out, "big TXT over UDP then TCP");
    assert_eq!(out.matches("\tTXT\t\"big-").count(), 5, "{out}");
}

#[test]
fn issue_20_service_answers_validate_per_client_subnet_after_failover_and_multivalue() {
    let signed = signed_with_keygen("dnssec-services", "15", "");
    let server = serve(&signed);
    let anchors = anchor_file(&signed.dir, &signed.ds);
    // Per client subnet (ECS): each answer and its scope, validated.
    let eu = validate_py(
        &server,
        &signed.ds,
        "geo.signed.test.",
        "A",
        Some("10.1.2.0/24"),
    );
    assert!(eu.contains("geo.signed.test. 20 IN A 192.0.2.1"), "{eu}");
    // The scope is the existing ECS behaviour (the merged prefix), unchanged by signing.
    let scope: u8 = eu
        .lines()
        .find_map(|l| l.strip_prefix("scope "))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    assert!((1..=24).contains(&scope), "{eu}");
    let us = validate_py(
        &server,
        &signed.ds,
        "geo.signed.test.",
        "A",
        Some("10.2.3.0/24"),
    );
    assert!(us.contains("geo.signed.test. 20 IN A 198.51.100.1"), "{us}");
    let v6 = validate_py(
        &server,
        &signed.ds,
        "geo.signed.test.",
        "AAAA",
        Some("10.1.2.0/24"),
    );
    assert!(
        v6.contains("geo.signed.test. 20 IN AAAA 2001:db8::1"),
        "{v6}"
    );
    let other = validate_py(
        &server,
        &signed.ds,
        "geo.signed.test.",
        "A",
        Some("192.0.2.0/24"),
    );
    assert!(other.contains("192.0.2.1"), "{other}");
    // Per client as delv asks (no ECS: the source address locates it):
    // the default answer from 127.0.0.1, the `us` one from 127.0.0.3.
    let default = delv(&server, &anchors, "geo.signed.test", "A");
    assert_validated(&default, "geo A from 127.0.0.1");
    assert!(default.contains("192.0.2.1"), "{default}");
    let from_us = delv_with(
        &server,
        &anchors,
        &["+tcp", "-b", "127.0.0.3"],
        "geo.signed.test",
        "A",
    );
    assert_validated(&from_us, "geo A from 127.0.0.3");
    assert!(from_us.contains("198.51.100.1"), "{from_us}");
    // Failover: eu forced down, answers come from us with the failover TTL.
    let reply = http(
        server.api(),
        "POST",
        "/override",
        &[("Content-Type", "application/json")],
        r#"{"pool":"eu","state":"down"}"#,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let failed_over = validate_py(
        &server,
        &signed.ds,
        "geo.signed.test.",
        "A",
        Some("10.1.2.0/24"),
    );
    assert!(
        failed_over.contains("geo.signed.test. 5 IN A 198.51.100.1"),
        "{failed_over}"
    );
    assert_validated(
        &delv(&server, &anchors, "geo.signed.test", "A"),
        "geo A after failover",
    );
    // Every answer so far, the failover TTL's included, was signed at build.
    let metrics = http(server.api(), "GET", "/metrics", &[], "").body;
    assert_eq!(
        counter(&metrics, "gslb_dnssec_online_signatures_total"),
        Some(0),
        "{metrics}"
    );
    // Multivalue: three records, signed as one set on demand.
    let multi = delv(&server, &anchors, "multi.signed.test", "A");
    assert_validated(&multi, "multivalue");
    assert_eq!(multi.matches("IN\tA\t203.0.113.").count(), 3, "{multi}");
    let metrics = http(server.api(), "GET", "/metrics", &[], "").body;
    assert!(
        counter(&metrics, "gslb_dnssec_online_signatures_total").is_some_and(|n| n >= 1),
        "{metrics}"
    );
}

/// Services of every policy (and selection, a CNAME pool, a load-aware
/// pair), beside the zone of [`SERVICES`]; `nearest` needs the demo GeoIP
/// database for client coordinates.
const POLICIES: &str = r#"
[geoip]
database = "DEMO_DB"

[pools.near]
coordinates = [48.85, 2.35]
endpoints = [{ address = "192.0.2.101", weight = 3 }, { address = "192.0.2.102" }, { address = "2001:db8::101" }]
[pools.far]
coordinates = [35.68, 139.69]
endpoints = [{ address = "198.51.100.101" }, { address = "198.51.100.102" }]
[pools.edge]
endpoints = [{ cname = "edge.cdn.example.net" }]
[pools.big]
capacity = 100
endpoints = [{ address = "203.0.113.101" }]
[pools.small]
capacity = 10
endpoints = [{ address = "203.0.113.102" }]

[services."near.signed.test"]
policy = "nearest"
pools = ["near", "far"]
geo = { default = ["far", "near"] }
[services."lat.signed.test"]
policy = "latency"
pools = ["near", "far"]
latency_table = "latency.csv"
[services."sticky.signed.test"]
policy = "failover"
pools = ["far", "near"]
selection = "sticky"
[services."fast.signed.test"]
policy = "fastest"
pools = ["near", "far"]
selection = "fastest"
[services."cdn.signed.test"]
policy = "failover"
pools = ["edge"]
[services."load.signed.test"]
policy = "failover"
pools = ["big", "small"]
"#;

/// The value of an unlabelled counter in a `/metrics` body.
fn counter(metrics: &str, name: &str) -> Option<u64> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn issue_20_a_service_of_every_policy_validates_and_was_signed_at_build() {
    let db = Path::new(env!("CARGO_MANIFEST_DIR")).join("geoip/demo-city.mmdb");
    let signed = signed_with_keygen(
        "dnssec-policies",
        "13",
        &POLICIES.replace("DEMO_DB", path_str(&db)),
    );
    signed.dir.write("latency.csv", "127.0.0.0/8,far,5\n");
    let server = serve(&signed);
    let anchors = anchor_file(&signed.dir, &signed.ds);
    // (name, type, delv options, the answers it may give)
    let near = ["192.0.2.101", "192.0.2.102"];
    let far = ["198.51.100.101", "198.51.100.102"];
    let cases: [(&str, &str, &[&str], &[&str]); 10] = [
        ("geo.signed.test", "A", &[], &["192.0.2.1"]),
        (
            "geo.signed.test",
            "A",
            &["-b", "127.0.0.3"],
            &["198.51.100.1"],
        ),
        ("geo.signed.test", "AAAA", &[], &["2001:db8::1"]),
        // No coordinates for loopback: the map's order.
        ("near.signed.test", "A", &[], &far),
        ("lat.signed.test", "A", &[], &far),
        ("sticky.signed.test", "A", &[], &far),
        ("sticky.signed.test", "A", &["-b", "127.0.0.3"], &far),
        ("fast.signed.test", "A", &[], &near),
        ("cdn.signed.test", "CNAME", &[], &["edge.cdn.example.net."]),
        ("load.signed.test", "A", &[], &["203.0.113.101"]),
    ];
    for (name, rtype, options, expected) in cases {
        let options: Vec<&str> = ["+tcp"].iter().chain(options).copied().collect();
        let out = delv_with(&server, &anchors, &options, name, rtype);
        let what = format!("{name} {rtype} {options:?}");
        assert_validated(&out, &what);
        assert!(
            expected
                .iter()
                .any(|rdata| out.contains(&format!("\tIN\t{rtype}\t{rdata}\n"))),
            "{what}: not one of {expected:?}:\n{out}"
        );
    }
    // nearest by the client's coordinates (ECS): London is nearer Paris,
    // Sydney nearer Tokyo.
    let london = validate_py(
        &server,
        &signed.ds,
        "near.signed.test.",
        "A",
        Some("81.2.69.0/24"),
    );
    assert!(
        near.iter()
            .any(|a| london.contains(&format!(" IN A {a}\n"))),
        "{london}"
    );
    let london6 = validate_py(
        &server,
        &signed.ds,
        "near.signed.test.",
        "AAAA",
        Some("81.2.69.0/24"),
    );
    assert!(london6.contains(" IN AAAA 2001:db8::101\n"), "{london6}");
    let sydney = validate_py(
        &server,
        &signed.ds,
        "near.signed.test.",
        "A",
        Some("1.128.0.0/11"),
    );
    assert!(
        far.iter().any(|a| sydney.contains(&format!(" IN A {a}\n"))),
        "{sydney}"
    );
    // Every one of these answers was signed when the zone loaded: nothing
    // was signed at query time.
    let metrics = http(server.api(), "GET", "/metrics", &[], "").body;
    assert_eq!(
        counter(&metrics, "gslb_dnssec_online_signatures_total"),
        Some(0),
        "{metrics}"
    );
}

#[test]
fn issue_20_bind_dnssec_keygen_ksk_and_zsk_validate_and_a_wrong_anchor_is_rejected() {
    let dir = TempDir::new("dnssec-bind");
    let keys = dir.path().join("keys");
    std::fs::create_dir_all(&keys).expect("keys dir");
    let bind_keygen = |options: &[&str]| -> String {
        let out = Command::new("dnssec-keygen")
            .current_dir(&keys)
            .args(["-a", "ECDSAP256SHA256", "-n", "ZONE"])
            .args(options)
            .arg("signed.test")
            .output()
            .expect("run dnssec-keygen (bind9-utils)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        format!(
            "keys/{}.private",
            String::from_utf8_lossy(&out.stdout).trim()
        )
    };
    let ksk = bind_keygen(&["-f", "KSK"]);
    let zsk = bind_keygen(&[]);
    // A ZSK published now that signs only from tomorrow (BIND timing fields).
    let next_zsk = bind_keygen(&["-P", "now", "-A", "now+1d"]);
    // A ZSK retired yesterday (Inactive: published, no longer signing) and
    // one deleted yesterday (Delete: out of the DNSKEY set).
    let old_zsk = bind_keygen(&["-P", "now-2d", "-A", "now-2d", "-I", "now-1d"]);
    let deleted_zsk = bind_keygen(&[
        "-P", "now-3d", "-A", "now-3d", "-I", "now-2d", "-D", "now-1d",
    ]);
    let tag = |file: &str| -> String {
        file.trim_end_matches(".private")
            .rsplit('+')
            .next()
            .expect("tag")
            .trim_start_matches('0')
            .to_string()
    };
    let mut signed = setup(
        "dnssec-bind",
        &format!("{ksk:?}, {zsk:?}, {next_zsk:?}, {old_zsk:?}, {deleted_zsk:?}"),
        "",
    );
    std::fs::rename(&keys, signed.dir.path().join("keys")).expect("move keys");
    signed.ds = ds_of(&signed.config);
    let server = serve(&signed);
    let anchors = anchor_file(&signed.dir, &signed.ds);
    for (name, rtype) in [
        ("www.signed.test", "A"),
        ("signed.test", "DNSKEY"),
        ("geo.signed.test", "A"),
    ] {
        assert_validated(&delv(&server, &anchors, name, rtype), name);
    }
    // The DNSKEY set (all keys but the deleted one) is signed by the KSK,
    // data by the active ZSK only.
    let rrsig_tags = |name: &str, rtype: &str| -> Vec<String> {
        let reply = dig(server.addr(), &["+dnssec", "+norec", name, rtype]);
        let tags: Vec<String> = reply
            .answer
            .iter()
            .filter(|r| r.split(' ').nth(3) == Some("RRSIG"))
            .filter_map(|r| r.split(' ').nth(10).map(str::to_string))
            .collect();
        assert!(!tags.is_empty(), "{}", reply.raw);
        tags
    };
    let keyset = dig(
        server.addr(),
        &["+dnssec", "+norec", "signed.test", "DNSKEY"],
    );
    assert_eq!(
        keyset.raw.matches("\tDNSKEY\t").count(),
        4,
        "{}",
        keyset.raw
    );
    assert_eq!(rrsig_tags("signed.test", "DNSKEY"), [tag(&ksk)]);
    assert_eq!(rrsig_tags("www.signed.test", "A"), [tag(&zsk)]);
    assert_eq!(rrsig_tags("geo.signed.test", "A"), [tag(&zsk)]);
    let status = http(server.api(), "GET", "/status", &[], "").json();
    // The next re-sign is the next ZSK's activation (tomorrow), before the
    // halfway point of the signatures' 14 days.
    let activation = std::fs::read_to_string(signed.dir.path().join(&next_zsk))
        .expect("next ZSK")
        .lines()
        .find_map(|l| l.strip_prefix("Activate: "))
        .and_then(gslb::dnssec::keys::parse_timestamp)
        .expect("an Activate time");
    assert_eq!(
        status["dnssec"][0]["next_resign"].as_i64(),
        Some(activation),
        "{status}"
    );
    let states: Vec<(String, String)> = status["dnssec"][0]["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| {
            (
                k["tag"].to_string(),
                k["state"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    for key in [&next_zsk, &old_zsk] {
        assert!(
            states.contains(&(tag(key), "published".to_string())),
            "{key}: {status}"
        );
    }
    assert!(
        states.contains(&(tag(&deleted_zsk), "retired".to_string())),
        "{status}"
    );
    // An anchor for another key (a key the zone does not have) is rejected.
    let other = TempDir::new("dnssec-other-key");
    let stranger = keygen(&other, "13");
    let stranger_key = std::fs::read_to_string(stranger.with_extension("key")).expect("key");
    let config = other.write(
        "gslb.toml",
        &format!(
            "[[zone]]\norigin = \"signed.test\"\nfile = {:?}\ndnssec = true\ndnssec_keys = [{:?}]\n",
            path_str(&signed.dir.path().join("signed.zone")),
            path_str(&stranger)
        ),
    );
    assert!(stranger_key.contains("DNSKEY"));
    let wrong = anchor_file(&other, &ds_of(&config));
    let out = delv(&server, &wrong, "www.signed.test", "A");
    assert!(
        !out.contains("; fully validated"),
        "accepted with a wrong anchor:\n{out}"
    );
    assert!(
        out.contains("resolution failed") || out.contains("no valid"),
        "{out}"
    );
}

#[test]
fn issue_20_a_key_rollover_is_done_by_editing_the_config_and_reloading() {
    let signed = signed_with_keygen("dnssec-rollover", "13", "");
    let old_key = std::fs::read_dir(signed.dir.path().join("keys"))
        .expect("keys")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "private"))
        .expect("a .private file");
    let new_key = keygen(&signed.dir, "13");
    let config_text = std::fs::read_to_string(&signed.config).expect("config");
    let with_keys = |keys: &str| {
        let text = config_text.replace(&format!("[{:?}]", path_str(&old_key)), keys);
        assert_ne!(text, config_text);
        std::fs::write(&signed.config, text).expect("config");
    };
    let old = format!("{:?}", path_str(&old_key));
    let new = format!("{:?}", path_str(&new_key));
    // Phase 1: the new key published, not signing.
    with_keys(&format!("[{old}, {{ path = {new}, publish_only = true }}]"));
    let ds_lines = run_gslb(&[
        "dnssec",
        "ds",
        "-c",
        path_str(&signed.config),
        "signed.test",
    ]);
    assert_eq!(ds_lines.code(), Some(0), "{}", ds_lines.stderr);
    // The parent holds both DS records during the rollover.
    let anchors: String = ds_lines
        .stdout
        .lines()
        .map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            format!(
                "\"signed.test.\" static-ds {} {} {} \"{}\";",
                f[3], f[4], f[5], f[6]
            )
        })
        .collect();
    assert_eq!(ds_lines.stdout.lines().count(), 2, "{}", ds_lines.stdout);
    let anchors = signed
        .dir
        .write("anchors.conf", &format!("trust-anchors {{ {anchors} }};\n"));
    let server = serve(&signed);
    let key_tag = |path: &Path| -> String {
        path_str(path)
            .trim_end_matches(".private")
            .rsplit('+')
            .next()
            .expect("tag")
            .trim_start_matches('0')
            .to_string()
    };
    let (old_tag, new_tag) = (key_tag(&old_key), key_tag(&new_key));
    let look = |name: &str, rtype: &str| -> (usize, Vec<String>) {
        let reply = dig(server.addr(), &["+dnssec", "+norec", name, rtype]);
        let tags = reply
            .answer
            .iter()
            .filter(|r| r.split(' ').nth(3) == Some("RRSIG"))
            .filter_map(|r| r.split(' ').nth(10).map(str::to_string))
            .collect();
        let dnskeys = reply
            .answer
            .iter()
            .filter(|r| r.split(' ').nth(3) == Some("DNSKEY"))
            .count();
        (dnskeys, tags)
    };
    assert_eq!(look("signed.test", "DNSKEY"), (2, vec![old_tag.clone()]));
    assert_eq!(look("www.signed.test", "A").1, vec![old_tag.clone()]);
    assert_validated(&delv(&server, &anchors, "www.signed.test", "A"), "phase 1");
    // Phase 2: the new key signs, the old one is only published.
    with_keys(&format!("[{{ path = {old}, publish_only = true }}, {new}]"));
    let reload = http(server.api(), "POST", "/reload", &[], "");
    assert_eq!(reload.status, 200, "{}", reload.body);
    assert_eq!(look("signed.test", "DNSKEY"), (2, vec![new_tag.clone()]));
    assert_eq!(look("www.signed.test", "A").1, vec![new_tag.clone()]);
    assert_eq!(look("geo.signed.test", "A").1, vec![new_tag.clone()]);
    assert_validated(&delv(&server, &anchors, "www.signed.test", "A"), "phase 2");
    let metrics = http(server.api(), "GET", "/metrics", &[], "").body;
    for (tag, state) in [(&old_tag, "published"), (&new_tag, "active")] {
        assert!(
            metrics.lines().any(|l| l.starts_with("gslb_dnssec_key{")
                && l.contains(&format!("tag=\"{tag}\""))
                && l.contains(&format!("state=\"{state}\""))),
            "key {tag} not {state}:\n{metrics}"
        );
    }
    assert_validated(
        &delv(&server, &anchors, "multi.signed.test", "A"),
        "phase 2 multivalue",
    );
    // Phase 3: the old key removed.
    with_keys(&format!("[{new}]"));
    let reload = http(server.api(), "POST", "/reload", &[], "");
    assert_eq!(reload.status, 200, "{}", reload.body);
    assert_eq!(look("signed.test", "DNSKEY"), (1, vec![new_tag.clone()]));
    assert_validated(&delv(&server, &anchors, "signed.test", "DNSKEY"), "phase 3");
}

/// libfaketime (Debian `faketime`), preloaded into the server: its wall
/// clock runs at the offset written in a file, reread every second; the
/// monotonic clock (tokio's timers) is left alone, as when a machine
/// resumes from suspend or its clock is stepped.
const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

#[test]
fn issue_20_signatures_are_renewed_before_they_expire_when_the_clock_moves() {
    let signed = signed_with_keygen("dnssec-resign", "13", "dnssec_validity = \"10m\"");
    let offset = signed.dir.write("faketime.rc", "+0\n");
    let server = GslbServer::start_with_env(
        &["-c", path_str(&signed.config)],
        &[
            ("LD_PRELOAD", LIBFAKETIME),
            ("FAKETIME_TIMESTAMP_FILE", path_str(&offset)),
            ("FAKETIME_CACHE_DURATION", "1"),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
        ],
    );
    let anchors = anchor_file(&signed.dir, &signed.ds);
    // The RRSIG of www A: (expiration, inception) in Unix seconds.
    let window = || -> (i64, i64) {
        let reply = dig(
            server.addr(),
            &["+dnssec", "+norec", "www.signed.test", "A"],
        );
        let line = reply
            .raw
            .lines()
            .find(|l| l.contains("\tRRSIG\tA "))
            .unwrap_or_else(|| panic!("no RRSIG:\n{}", reply.raw))
            .to_string();
        let field = |n: usize| {
            line.split_whitespace()
                .nth(n)
                .and_then(gslb::dnssec::keys::parse_timestamp)
                .unwrap_or_else(|| panic!("RRSIG field {n}: {line}"))
        };
        (field(8), field(9))
    };
    let (first_expiry, first_inception) = window();
    // Signed for ten minutes, from an hour back.
    assert_eq!(first_expiry - first_inception, 600 + 3600);
    assert_validated(
        &delv(&server, &anchors, "www.signed.test", "A"),
        "before the clock moved",
    );
    // Six minutes on: past the re-sign time (halfway), before the expiry.
    // The server must notice on its own and sign again.
    std::fs::write(&offset, "+360\n").expect("move the clock");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut renewed = (first_expiry, first_inception);
    while Instant::now() < deadline && renewed.0 == first_expiry {
        std::thread::sleep(Duration::from_millis(500));
        renewed = window();
    }
    assert!(
        renewed.0 >= first_expiry + 300,
        "not re-signed after the clock moved 6 minutes: expiry {} then {}\n{}",
        first_expiry,
        renewed.0,
        server.stderr()
    );
    // delv (real clock) accepts the new signatures too.
    assert_validated(
        &delv(&server, &anchors, "www.signed.test", "A"),
        "after re-signing",
    );
    let status = http(server.api(), "GET", "/status", &[], "");
    let json = status.json();
    let zone = &json["dnssec"][0];
    assert_eq!(zone["zone"], "signed.test.", "{json}");
    assert_eq!(zone["expires"].as_i64(), Some(renewed.0), "{json}");
    assert!(
        zone["next_resign"]
            .as_i64()
            .is_some_and(|t| t > first_expiry - 300 && t < renewed.0),
        "{json}"
    );
    // /metrics shows the same times.
    let metrics = http(server.api(), "GET", "/metrics", &[], "").body;
    let gauge = |name: &str| -> Option<f64> {
        metrics.lines().find_map(|line| {
            line.strip_prefix(&format!("{name}{{zone=\"signed.test.\"}} "))?
                .parse()
                .ok()
        })
    };
    assert_eq!(
        gauge("gslb_dnssec_signatures_expire_timestamp_seconds"),
        Some(renewed.0 as f64),
        "{metrics}"
    );
    assert_eq!(
        gauge("gslb_dnssec_next_resign_timestamp_seconds"),
        zone["next_resign"].as_f64(),
        "{metrics}"
    );
}

#[test]
fn issue_20_check_reports_key_problems_and_a_bad_reload_keeps_signing() {
    let signed = signed_with_keygen("dnssec-check", "13", "");
    let key = signed.dir.path().join("keys");
    let private = std::fs::read_dir(&key)
        .expect("keys")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "private"))
        .expect("a .private file");
    let public = PathBuf::from(path_str(&private).replace(".private", ".key"));
    let check = |config: &Path| run_gslb(&["check", "-c", path_str(config)]);
    let ok = check(&signed.config);
    assert_eq!(ok.code(), Some(0), "{}", ok.stderr);
    let config_text = std::fs::read_to_string(&signed.config).expect("config");
    let variant =
        |label: &str, text: &str| -> PathBuf { signed.dir.write(&format!("{label}.toml"), text) };

    // A missing key file.
    let missing = variant("missing", &config_text.replace(".private", "-gone.private"));
    let out = check(&missing);
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stderr
            .contains("-gone.private: cannot read private key file"),
        "{}",
        out.stderr
    );
    // An unreadable key file (a directory where the .private should be).
    let unreadable = signed.dir.path().join("keys/Kunreadable.private");
    std::fs::create_dir_all(&unreadable).expect("dir");
    let out = check(&variant(
        "unreadable",
        &config_text.replace(path_str(&private), path_str(&unreadable)),
    ));
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "{}: cannot read private key file",
            path_str(&unreadable)
        )),
        "{}",
        out.stderr
    );
    // A .private without its .key beside it.
    let lonely = signed.dir.path().join("keys/Klonely.private");
    std::fs::copy(&private, &lonely).expect("copy");
    let out = check(&variant(
        "lonely",
        &config_text.replace(path_str(&private), path_str(&lonely)),
    ));
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("Klonely.key: cannot read the public key file beside"),
        "{}",
        out.stderr
    );
    // dnssec = true with no active signing key.
    let publish_only = variant(
        "publish-only",
        &config_text.replace(
            &format!("dnssec_keys = [{:?}]", path_str(&private)),
            &format!(
                "dnssec_keys = [{{ path = {:?}, publish_only = true }}]",
                path_str(&private)
            ),
        ),
    );
    let out = check(&publish_only);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("has no active signing key"),
        "{}",
        out.stderr
    );
    // A .key that is not the .private's other half.
    let other = TempDir::new("dnssec-check-other");
    let stranger = keygen(&other, "13");
    let original_public = std::fs::read_to_string(&public).expect("key");
    let stranger_public = std::fs::read_to_string(stranger.with_extension("key")).expect("key");
    std::fs::write(&public, &stranger_public).expect("swap key");
    let out = check(&signed.config);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "{}: the private key does not match",
            path_str(&private)
        )),
        "{}",
        out.stderr
    );
    // An unsupported algorithm (8, RSASHA256).
    std::fs::write(&public, original_public.replace(" 257 3 13 ", " 257 3 8 ")).expect("alg");
    let out = check(&signed.config);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("algorithm 8 is not supported: use 13"),
        "{}",
        out.stderr
    );
    // A key for another zone.
    std::fs::write(
        &public,
        original_public.replace("signed.test. IN DNSKEY", "other.test. IN DNSKEY"),
    )
    .expect("owner");
    let out = check(&signed.config);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("this key is for other.test., not for zone signed.test."),
        "{}",
        out.stderr
    );
    std::fs::write(&public, &original_public).expect("restore");
    // A private key readable by others: a warning, an error with --strict.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = check(&signed.config);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert!(
        out.stderr.contains("warning:") && out.stderr.contains("readable by other users"),
        "{}",
        out.stderr
    );
    let strict = run_gslb(&["check", "--strict", "-c", path_str(&signed.config)]);
    assert_eq!(strict.code(), Some(1), "{}", strict.stderr);
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    // No private key material in any output.
    let secret = std::fs::read_to_string(&private).expect("private");
    let secret = secret
        .lines()
        .find_map(|l| l.strip_prefix("PrivateKey: "))
        .expect("PrivateKey");
    assert!(!out.stderr.contains(secret) && !out.stdout.contains(secret));

    // Nor in explain (here from the files, with debug logging; below
    // asking the server).
    for (name, rtype) in [
        ("www.signed.test", "A"),
        ("geo.signed.test", "A"),
        ("signed.test", "DNSKEY"),
    ] {
        let config = path_str(&signed.config);
        let out = run_gslb(&[
            "explain",
            "--offline",
            "-vv",
            "-c",
            config,
            "--client",
            "10.1.2.3/24",
            name,
            rtype,
        ]);
        assert_eq!(out.code(), Some(0), "{}", out.stderr);
        assert!(
            !out.stdout.contains(secret) && !out.stderr.contains(secret),
            "{name} {rtype}:\n{}{}",
            out.stdout,
            out.stderr
        );
    }

    // A reload with a broken key keeps serving the signed snapshot (debug
    // logging: still no private key in the log).
    let server = GslbServer::start(&["-vv", "-c", path_str(&signed.config)]);
    let anchors = anchor_file(&signed.dir, &signed.ds);
    let api = server.api().to_string();
    let explained = run_gslb(&[
        "explain",
        "-c",
        path_str(&signed.config),
        "--api",
        &api,
        "--client",
        "10.1.2.3",
        "geo.signed.test",
    ]);
    assert_eq!(explained.code(), Some(0), "{}", explained.stderr);
    assert!(!explained.stdout.contains(secret), "{}", explained.stdout);
    std::fs::write(&public, &stranger_public).expect("break key");
    let reload = http(server.api(), "POST", "/reload", &[], "");
    assert_ne!(reload.status, 200, "{}", reload.body);
    assert!(reload.body.contains("does not match"), "{}", reload.body);
    assert!(!reload.body.contains(secret));
    assert_validated(
        &delv(&server, &anchors, "www.signed.test", "A"),
        "after a failed reload",
    );
    let multi = delv(&server, &anchors, "multi.signed.test", "A");
    assert_validated(&multi, "online signing after a failed reload");
    for path in ["/status", "/metrics", "/"] {
        let body = http(server.api(), "GET", path, &[], "").body;
        assert!(!body.contains(secret), "{path}: {body}");
        assert!(!body.contains("PrivateKey"), "{path}: {body}");
    }
    let log = server.stderr();
    assert!(log.contains("DEBUG"), "not at debug level:\n{log}");
    assert!(!log.contains(secret), "{log}");
}

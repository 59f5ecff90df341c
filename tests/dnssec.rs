//! DNSSEC (issue 20) through the real binary: keys made with `gslb dnssec
//! keygen` (and once with BIND's `dnssec-keygen`), every kind of answer
//! validated by a real validator — `delv` against the zone's trust anchor,
//! and dnspython's `dns.dnssec.validate` where delv cannot ask (ECS,
//! referrals) — plus re-signing, key checks and reloads.

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
big TXT \"big-5-abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij\"
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
nets = { "10.1.0.0/16" = ["eu", "us"], "10.2.0.0/16" = ["us", "eu"] }
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

/// `delv @127.0.0.1 -p PORT -a ANCHORS +root=signed.test NAME TYPE`.
fn delv(server: &GslbServer, anchors: &Path, name: &str, rtype: &str) -> String {
    let out = Command::new("delv")
        .args([
            "@127.0.0.1",
            "-p",
            &server.addr().port().to_string(),
            "-a",
            path_str(anchors),
            "+root=signed.test",
            "+tcp",
            name,
            rtype,
        ])
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
    let server = serve(&signed);
    let anchors = anchor_file(&signed.dir, &signed.ds);
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
    assert_validated(&delv(&server, &anchors, "geo.signed.test", "A"), "geo A");
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
    // Multivalue: three records, signed as one set on demand.
    let multi = delv(&server, &anchors, "multi.signed.test", "A");
    assert_validated(&multi, "multivalue");
    assert_eq!(multi.matches("IN\tA\t203.0.113.").count(), 3, "{multi}");
    let metrics = http(server.api(), "GET", "/metrics", &[], "");
    assert!(
        metrics
            .body
            .lines()
            .any(|l| l.starts_with("gslb_dnssec_online_signatures_total ") && !l.ends_with(" 0")),
        "{}",
        metrics.body
    );
}

#[test]
fn issue_20_bind_dnssec_keygen_ksk_and_zsk_validate_and_a_wrong_anchor_is_rejected() {
    let dir = TempDir::new("dnssec-bind");
    let keys = dir.path().join("keys");
    std::fs::create_dir_all(&keys).expect("keys dir");
    let bind_keygen = |ksk: bool| -> String {
        let mut command = Command::new("dnssec-keygen");
        command
            .current_dir(&keys)
            .args(["-a", "ECDSAP256SHA256", "-n", "ZONE"]);
        if ksk {
            command.args(["-f", "KSK"]);
        }
        let out = command
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
    let ksk = bind_keygen(true);
    let zsk = bind_keygen(false);
    let mut signed = setup("dnssec-bind", &format!("{ksk:?}, {zsk:?}"), "");
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
    // The DNSKEY set is signed by the KSK, data by the ZSK.
    let keyset = dig(
        server.addr(),
        &["+dnssec", "+norec", "signed.test", "DNSKEY"],
    );
    assert_eq!(
        keyset.raw.matches("\tDNSKEY\t").count(),
        2,
        "{}",
        keyset.raw
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
fn issue_20_signatures_are_renewed_before_they_expire() {
    let signed = signed_with_keygen("dnssec-resign", "13", "dnssec_validity = \"40s\"");
    let server = serve(&signed);
    let anchors = anchor_file(&signed.dir, &signed.ds);
    let rrsig = || -> String {
        let reply = dig(
            server.addr(),
            &["+dnssec", "+norec", "www.signed.test", "A"],
        );
        reply
            .raw
            .lines()
            .find(|l| l.contains("\tRRSIG\tA "))
            .unwrap_or_default()
            .to_string()
    };
    let first = rrsig();
    let expiration = |line: &str| {
        line.split_whitespace()
            .nth(8)
            .unwrap_or_default()
            .to_string()
    };
    assert!(!first.is_empty());
    assert_validated(
        &delv(&server, &anchors, "www.signed.test", "A"),
        "before re-signing",
    );
    // Re-signed halfway through the validity, long before the expiry.
    let deadline = Instant::now() + Duration::from_secs(35);
    let mut renewed = String::new();
    while Instant::now() < deadline {
        renewed = rrsig();
        if expiration(&renewed) != expiration(&first) {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_ne!(
        expiration(&renewed),
        expiration(&first),
        "not re-signed: {first}"
    );
    assert_validated(
        &delv(&server, &anchors, "www.signed.test", "A"),
        "after re-signing",
    );
    let status = http(server.api(), "GET", "/status", &[], "");
    let json = status.json();
    let zone = &json["dnssec"][0];
    assert_eq!(zone["zone"], "signed.test.", "{json}");
    assert!(
        zone["next_resign"].as_i64().is_some() && zone["expires"].as_i64().is_some(),
        "{json}"
    );
    assert!(!status.body.contains("PrivateKey"), "{}", status.body);
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
    assert!(out.stderr.contains("does not match"), "{}", out.stderr);
    // An unsupported algorithm (8, RSASHA256).
    std::fs::write(&public, original_public.replace(" 257 3 13 ", " 257 3 8 ")).expect("alg");
    let out = check(&signed.config);
    assert!(
        out.stderr.contains("algorithm 8 is not supported"),
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

    // A reload with a broken key keeps serving the signed snapshot.
    let server = serve(&signed);
    let anchors = anchor_file(&signed.dir, &signed.ds);
    std::fs::write(&public, &stranger_public).expect("break key");
    let reload = http(server.api(), "POST", "/reload", &[], "");
    assert_ne!(reload.status, 200, "{}", reload.body);
    assert!(reload.body.contains("does not match"), "{}", reload.body);
    assert!(!reload.body.contains(secret));
    assert_validated(
        &delv(&server, &anchors, "www.signed.test", "A"),
        "after a failed reload",
    );
    assert!(!server.stderr().contains(secret));
}

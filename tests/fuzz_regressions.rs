//! Regressions found by fuzzing and by the chaos drill, one test per
//! finding, each citing where it was found. Tests of open bugs are
//! `#[ignore = "bug: ..."]` until the fix lands; run them with
//! `cargo test --test fuzz_regressions -- --ignored`.

mod common;

use common::{GslbServer, QueryBuilder, TempDir, http, parse_reply, run_gslb, udp_exchange};

/// Found while writing the chaos drill (tests/chaos.rs): a `[maps.NAME]`
/// that no service uses is never resolved, so a pool name in it that does
/// not exist passes `gslb check` and a reload, although the same name in a
/// service's map or `pools` is an error. A typo in a map that is about to
/// be used therefore goes unnoticed until a service names the map.
#[test]

fn unused_map_naming_an_unknown_pool_is_rejected() {
    let dir = TempDir::new("unused-map");
    let zone = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("zones/example.test.zone");
    let config = dir.write(
        "gslb.toml",
        &format!(
            r#"
[[zone]]
origin = "example.test"
file = "{}"

[pools.eu]
endpoints = [{{ address = "192.0.2.1" }}]

[services."www.example.test"]
policy = "failover"
pools = ["eu"]

[maps.spare]
default = ["nowhere"]
"#,
            zone.display()
        ),
    );
    let output = run_gslb(&["check", "-c", config.to_str().expect("utf-8 path")]);
    assert_eq!(
        output.code(),
        Some(1),
        "gslb check accepted a map naming an unknown pool:\n{}{}",
        output.stdout,
        output.stderr
    );
    assert!(output.stderr.contains("nowhere"), "{}", output.stderr);
}

/// Found by the `packet` fuzz target (issue 18; input in
/// `fuzz/corpus/packet/regress-udp-ixfr-formerr`): a UDP IXFR whose
/// question is readable but whose additional record's owner is a pointer
/// past the end got a FORMERR without its question, while every other
/// reply echoes a readable question (the transfer code reads records with
/// its own parser, which follows pointers the query path only skips).
#[test]
fn udp_ixfr_with_an_unreadable_record_gets_formerr_with_its_question() {
    let zone = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("zones/example.test.zone");
    let zone = zone.to_str().expect("utf-8 path");
    let dir = TempDir::new("udp-ixfr");
    let config = dir.write("gslb.toml", "[server]\n");
    let config = config.to_str().expect("utf-8 path");
    let server = GslbServer::start(&["-c", config, "--zone", &format!("example.test={zone}")]);
    let mut query = QueryBuilder::new(0x1234, "example.test", 251).build();
    // One additional record: owner a pointer to offset 0x3fff (past the
    // end), type A, class IN, TTL 0, no RDATA.
    query[11] = 1;
    query.extend_from_slice(&[0xff, 0xff, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0]);
    let reply = udp_exchange(server.addr(), &query).expect("a reply");
    let reply = parse_reply(&reply).expect("a well-formed reply");
    assert_eq!(reply.id, 0x1234);
    assert_eq!(reply.rcode(), 1, "FORMERR: {reply:?}");
    assert_eq!(
        reply.questions,
        vec![("example.test.".to_string(), 251, 1)],
        "{reply:?}"
    );
    assert!(reply.answer.is_empty() && reply.authority.is_empty());
}

/// Found by the `packet` fuzz target (issue 18; input in
/// `fuzz/corpus/packet/regress-udp-ixfr-bad-tsig-rcode`): a UDP IXFR whose
/// TSIG record cannot be read is answered FORMERR, but the query path
/// reported NOTAUTH, so `/metrics` and the query log counted an answer
/// that was never sent.
#[test]
fn udp_ixfr_with_an_unreadable_tsig_is_counted_as_the_formerr_it_gets() {
    let zone = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("zones/example.test.zone");
    let dir = TempDir::new("udp-ixfr-tsig");
    let config = dir.write("gslb.toml", "[server]\napi_require_token = false\n");
    let config = config.to_str().expect("utf-8 path");
    let server = GslbServer::start(&[
        "-c",
        config,
        "--api",
        "127.0.0.1:0",
        "--zone",
        &format!("example.test={}", zone.display()),
    ]);
    let mut query = QueryBuilder::new(0x4321, "example.test", 251).build();
    // One additional record: a TSIG (type 250, class ANY) with no RDATA.
    query[11] = 1;
    query.extend_from_slice(&[0, 0, 250, 0, 255, 0, 0, 0, 0, 0, 0]);
    let reply = udp_exchange(server.addr(), &query).expect("a reply");
    let reply = parse_reply(&reply).expect("a well-formed reply");
    assert_eq!(reply.rcode(), 1, "FORMERR: {reply:?}");
    let metrics = http(server.api(), "GET", "/metrics", &[], "").body;
    let counted = |rcode: &str| {
        metrics.lines().any(|line| {
            line.starts_with("gslb_dns_queries_total{")
                && line.contains(&format!("rcode=\"{rcode}\""))
                && line.contains("type=\"other\"")
                && !line.ends_with(" 0")
        })
    };
    assert!(counted("FORMERR"), "{metrics}");
    assert!(!counted("NOTAUTH"), "{metrics}");
}

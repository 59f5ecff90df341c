//! DNS behaviour of the authoritative core, against the real binary.
//!
//! Each test starts its own `gslb serve` on loopback port 0 with the fixture
//! zones in `tests/fixtures/` and an explicit minimal config, queries it with
//! dig or raw packets, and asserts exact records, flags and rcodes. Expected
//! records are written as zone-file lines (`name ttl class type rdata`).

mod common;

use std::net::SocketAddr;

use common::{
    DigResult, GslbServer, QueryBuilder, TempDir, Xorshift, dig, ecs_option, normalise,
    parse_reply, rcode, rtype, run_gslb, tcp_connect, tcp_exchange, tcp_recv, tcp_send, udp_query,
    udp_recv, udp_socket,
};

const CORE_ZONE: &str = "core.test=tests/fixtures/core.test.zone";
const SUB_ZONE: &str = "sub.core.test=tests/fixtures/sub.core.test.zone";
const EDGE_ZONE: &str = "edge.test=tests/fixtures/edge.test.zone";

/// core.test's SOA as it appears in negative answers: TTL min(3600, 300) (RFC 2308 §5).
const CORE_SOA_NEGATIVE: &str =
    "core.test. 300 IN SOA ns1.core.test. hostmaster.core.test. 2024010101 7200 900 1209600 300";
/// sub.core.test's SOA in negative answers: TTL min(60, 600).
const SUB_SOA_NEGATIVE: &str =
    "sub.core.test. 60 IN SOA ns.sub.core.test. hostmaster.sub.core.test. 1 7200 900 1209600 600";
const WWW_A: &str = "www.core.test. 3600 IN A 192.0.2.10";

/// A server plus the temp dir holding its config.
struct Fixture {
    server: GslbServer,
    _dir: TempDir,
}

impl Fixture {
    /// Serves `zones` (ORIGIN=FILE) with a minimal config setting max_udp_payload = 1232.
    fn start(zones: &[&str], extra: &[&str]) -> Fixture {
        let dir = TempDir::new("dns-core");
        let config = dir.write("gslb.toml", "[server]\nmax_udp_payload = 1232\n");
        let config = config.to_str().expect("utf-8 temp path").to_string();
        let mut args: Vec<&str> = vec!["-c", &config];
        for zone in zones {
            args.extend(["--zone", zone]);
        }
        args.extend(extra);
        let server = GslbServer::start(&args);
        Fixture { server, _dir: dir }
    }

    fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    fn dig(&self, args: &[&str]) -> DigResult {
        dig(self.addr(), args)
    }
}

fn core() -> Fixture {
    Fixture::start(&[CORE_ZONE], &[])
}

#[track_caller]
fn assert_rrs(actual: &[String], expected: &[&str], section: &str, reply: &DigResult) {
    let mut actual = actual.to_vec();
    actual.sort();
    let mut expected: Vec<String> = expected.iter().map(|l| normalise(l)).collect();
    expected.sort();
    assert_eq!(
        actual, expected,
        "{section} section differs; dig output:\n{}",
        reply.raw
    );
}

#[track_caller]
fn assert_reply(
    reply: &DigResult,
    status: &str,
    flags: &[&str],
    answer: &[&str],
    authority: &[&str],
    additional: &[&str],
) {
    assert_eq!(reply.status, status, "status; dig output:\n{}", reply.raw);
    let expected_flags: Vec<&str> = flags.to_vec();
    let actual_flags: Vec<&str> = reply.flags.iter().map(String::as_str).collect();
    let mut sorted_flags = expected_flags.clone();
    sorted_flags.sort_unstable();
    assert_eq!(
        actual_flags, sorted_flags,
        "flags; dig output:\n{}",
        reply.raw
    );
    assert_rrs(&reply.answer, answer, "answer", reply);
    assert_rrs(&reply.authority, authority, "authority", reply);
    assert_rrs(&reply.additional, additional, "additional", reply);
}

/// The server still gives the right answer to an ordinary query.
#[track_caller]
fn assert_still_answers(addr: SocketAddr) {
    let reply = dig(addr, &["www.core.test", "A"]);
    assert_reply(&reply, "NOERROR", &["qr", "aa"], &[WWW_A], &[], &[]);
}

// ---------------------------------------------------------------------------
// 1. Authoritative answers and case
// ---------------------------------------------------------------------------

#[test]
fn authoritative_answer_sets_aa_and_has_exact_records() {
    let f = core();
    assert_reply(
        &f.dig(&["www.core.test", "A"]),
        "NOERROR",
        &["qr", "aa"],
        &[WWW_A],
        &[],
        &[],
    );
    assert_reply(
        &f.dig(&["www.core.test", "AAAA"]),
        "NOERROR",
        &["qr", "aa"],
        &["www.core.test. 3600 IN AAAA 2001:db8::10"],
        &[],
        &[],
    );
    assert_reply(
        &f.dig(&["mail.core.test", "A"]),
        "NOERROR",
        &["qr", "aa"],
        &["mail.core.test. 300 IN A 192.0.2.25"],
        &[],
        &[],
    );
    assert_reply(
        &f.dig(&["core.test", "MX"]),
        "NOERROR",
        &["qr", "aa"],
        &["core.test. 3600 IN MX 10 mail.core.test."],
        &[],
        &["mail.core.test. 300 IN A 192.0.2.25"],
    );
    assert_reply(
        &f.dig(&["core.test", "TXT"]),
        "NOERROR",
        &["qr", "aa"],
        &["core.test. 3600 IN TXT \"v=spf1 -all\""],
        &[],
        &[],
    );
}

#[test]
fn mx_and_srv_answers_carry_in_zone_host_addresses_once() {
    let f = core();
    // mail twice, an out-of-zone host, and a host below the deleg cut
    // (glue, not this zone's data): mail's address once, nothing else.
    for transport in [&[][..], &["+tcp"][..]] {
        let mut args = vec!["hosts.core.test", "MX"];
        args.extend_from_slice(transport);
        assert_reply(
            &f.dig(&args),
            "NOERROR",
            &["qr", "aa"],
            &[
                "hosts.core.test. 3600 IN MX 10 mail.core.test.",
                "hosts.core.test. 3600 IN MX 20 mail.core.test.",
                "hosts.core.test. 3600 IN MX 30 mx.outside.example.",
                "hosts.core.test. 3600 IN MX 40 ns1.deleg.core.test.",
            ],
            &[],
            &["mail.core.test. 300 IN A 192.0.2.25"],
        );
    }
    assert_reply(
        &f.dig(&["_sip._udp.core.test", "SRV"]),
        "NOERROR",
        &["qr", "aa"],
        &["_sip._udp.core.test. 3600 IN SRV 0 5 5060 www.core.test."],
        &[],
        &[WWW_A, "www.core.test. 3600 IN AAAA 2001:db8::10"],
    );
    // ANY stays minimal (RFC 8482).
    let any = f.dig(&["hosts.core.test", "ANY"]);
    assert!(any.additional.is_empty(), "{}", any.raw);
}

#[test]
fn apex_ns_answer_carries_in_zone_addresses() {
    let f = core();
    assert_reply(
        &f.dig(&["core.test", "NS"]),
        "NOERROR",
        &["qr", "aa"],
        &[
            "core.test. 3600 IN NS ns1.core.test.",
            "core.test. 3600 IN NS ns2.core.test.",
        ],
        &[],
        &[
            "ns1.core.test. 3600 IN A 192.0.2.1",
            "ns1.core.test. 3600 IN AAAA 2001:db8::1",
            "ns2.core.test. 3600 IN A 192.0.2.2",
        ],
    );
}

#[test]
fn query_name_matches_case_insensitively_and_question_keeps_client_case() {
    let f = core();
    let reply = f.dig(&["WwW.CoRe.TeSt", "A"]);
    assert_eq!(reply.status, "NOERROR", "{}", reply.raw);
    assert!(reply.has_flag("aa"), "{}", reply.raw);
    // RFC 1034 §3.1 / RFC 4343: names compare case-insensitively; the question is echoed as sent.
    assert_eq!(
        reply.question,
        vec!["WwW.CoRe.TeSt. IN A".to_string()],
        "{}",
        reply.raw
    );
    assert_eq!(reply.answer.len(), 1, "{}", reply.raw);
    let (owner, rest) = reply.answer[0].split_once(' ').expect("record line");
    assert!(
        owner.eq_ignore_ascii_case("www.core.test."),
        "{}",
        reply.raw
    );
    assert_eq!(rest, "3600 IN A 192.0.2.10", "{}", reply.raw);
}

// ---------------------------------------------------------------------------
// 2. Negative answers (RFC 2308)
// ---------------------------------------------------------------------------

#[test]
fn nxdomain_has_soa_with_negative_ttl() {
    let f = core();
    assert_reply(
        &f.dig(&["nope.core.test", "A"]),
        "NXDOMAIN",
        &["qr", "aa"],
        &[],
        &[CORE_SOA_NEGATIVE],
        &[],
    );
    assert_reply(
        &f.dig(&["deeper.nope.core.test", "TXT"]),
        "NXDOMAIN",
        &["qr", "aa"],
        &[],
        &[CORE_SOA_NEGATIVE],
        &[],
    );
}

#[test]
fn nodata_has_soa_with_negative_ttl() {
    let f = core();
    assert_reply(
        &f.dig(&["www.core.test", "MX"]),
        "NOERROR",
        &["qr", "aa"],
        &[],
        &[CORE_SOA_NEGATIVE],
        &[],
    );
    assert_reply(
        &f.dig(&["ns2.core.test", "AAAA"]),
        "NOERROR",
        &["qr", "aa"],
        &[],
        &[CORE_SOA_NEGATIVE],
        &[],
    );
}

// ---------------------------------------------------------------------------
// 3. Names outside every zone
// ---------------------------------------------------------------------------

#[test]
fn name_outside_every_zone_is_refused_without_aa() {
    let f = core();
    for name in ["www.example.org", "test", "xcore.test", "."] {
        let reply = f.dig(&[name, "A"]);
        assert_reply(&reply, "REFUSED", &["qr"], &[], &[], &[]);
    }
}

// ---------------------------------------------------------------------------
// 4. CNAME
// ---------------------------------------------------------------------------

#[test]
fn cname_chain_is_followed_within_the_zone() {
    let f = core();
    let reply = f.dig(&["alias.core.test", "A"]);
    assert_eq!(reply.status, "NOERROR", "{}", reply.raw);
    assert!(reply.has_flag("aa"), "{}", reply.raw);
    // Order matters: each CNAME precedes the data it leads to (RFC 1034 §4.3.2 step 3a).
    assert_eq!(
        reply.answer,
        vec![
            "alias.core.test. 3600 IN CNAME alias2.core.test.".to_string(),
            "alias2.core.test. 3600 IN CNAME www.core.test.".to_string(),
            WWW_A.to_string(),
        ],
        "{}",
        reply.raw
    );
    assert!(reply.authority.is_empty(), "{}", reply.raw);
}

#[test]
fn cname_to_missing_in_zone_name_is_nxdomain_with_the_cname() {
    let f = core();
    // RFC 6604 §3: the rcode describes the last name in the chain.
    assert_reply(
        &f.dig(&["dangling.core.test", "A"]),
        "NXDOMAIN",
        &["qr", "aa"],
        &["dangling.core.test. 3600 IN CNAME missing.core.test."],
        &[CORE_SOA_NEGATIVE],
        &[],
    );
}

#[test]
fn cname_query_returns_only_the_cname() {
    let f = core();
    assert_reply(
        &f.dig(&["alias.core.test", "CNAME"]),
        "NOERROR",
        &["qr", "aa"],
        &["alias.core.test. 3600 IN CNAME alias2.core.test."],
        &[],
        &[],
    );
}

#[test]

fn cname_loop_lists_each_cname_once() {
    let f = core();
    let reply = f.dig(&["loop1.core.test", "A"]);
    assert_eq!(reply.status, "NOERROR", "{}", reply.raw);
    assert_eq!(
        reply.answer,
        vec![
            "loop1.core.test. 3600 IN CNAME loop2.core.test.".to_string(),
            "loop2.core.test. 3600 IN CNAME loop1.core.test.".to_string(),
        ],
        "{}",
        reply.raw
    );
}

// ---------------------------------------------------------------------------
// 5. Wildcards and empty non-terminals (RFC 4592)
// ---------------------------------------------------------------------------

#[test]
fn wildcard_synthesises_records_owned_by_the_query_name() {
    let f = core();
    assert_reply(
        &f.dig(&["foo.wild.core.test", "A"]),
        "NOERROR",
        &["qr", "aa"],
        &["foo.wild.core.test. 3600 IN A 192.0.2.80"],
        &[],
        &[],
    );
    // A wildcard matches any number of missing labels below its parent.
    assert_reply(
        &f.dig(&["x.y.wild.core.test", "TXT"]),
        "NOERROR",
        &["qr", "aa"],
        &["x.y.wild.core.test. 3600 IN TXT \"wildcard\""],
        &[],
        &[],
    );
    // A synthesised name with no data of the asked type is NODATA.
    assert_reply(
        &f.dig(&["foo.wild.core.test", "MX"]),
        "NOERROR",
        &["qr", "aa"],
        &[],
        &[CORE_SOA_NEGATIVE],
        &[],
    );
}

#[test]
fn wildcard_does_not_apply_at_or_under_an_existing_name() {
    let f = core();
    assert_reply(
        &f.dig(&["host.wild.core.test", "A"]),
        "NOERROR",
        &["qr", "aa"],
        &["host.wild.core.test. 3600 IN A 192.0.2.81"],
        &[],
        &[],
    );
    // host.wild exists, so its missing TXT is NODATA, not the wildcard's TXT.
    assert_reply(
        &f.dig(&["host.wild.core.test", "TXT"]),
        "NOERROR",
        &["qr", "aa"],
        &[],
        &[CORE_SOA_NEGATIVE],
        &[],
    );
    // RFC 4592 §2.2.1: the closest encloser is host.wild, which has no wildcard child.
    assert_reply(
        &f.dig(&["sub.host.wild.core.test", "A"]),
        "NXDOMAIN",
        &["qr", "aa"],
        &[],
        &[CORE_SOA_NEGATIVE],
        &[],
    );
}

#[test]
fn empty_non_terminal_is_nodata_not_nxdomain() {
    let f = core();
    for name in ["ent.core.test", "b.ent.core.test", "wild.core.test"] {
        assert_reply(
            &f.dig(&[name, "A"]),
            "NOERROR",
            &["qr", "aa"],
            &[],
            &[CORE_SOA_NEGATIVE],
            &[],
        );
    }
    assert_reply(
        &f.dig(&["a.b.ent.core.test", "A"]),
        "NOERROR",
        &["qr", "aa"],
        &["a.b.ent.core.test. 3600 IN A 192.0.2.90"],
        &[],
        &[],
    );
    assert_reply(
        &f.dig(&["nope.ent.core.test", "A"]),
        "NXDOMAIN",
        &["qr", "aa"],
        &[],
        &[CORE_SOA_NEGATIVE],
        &[],
    );
}

// ---------------------------------------------------------------------------
// 6. Delegation
// ---------------------------------------------------------------------------

#[test]
fn delegation_is_a_referral_with_glue_at_and_below_the_cut() {
    let f = core();
    let referral_ns = [
        "deleg.core.test. 3600 IN NS ns1.deleg.core.test.",
        "deleg.core.test. 3600 IN NS ns.outside.example.",
    ];
    let glue = [
        "ns1.deleg.core.test. 3600 IN A 192.0.2.53",
        "ns1.deleg.core.test. 3600 IN AAAA 2001:db8::53",
    ];
    for (name, qtype) in [
        ("deleg.core.test", "A"),
        ("deleg.core.test", "NS"),
        ("www.deleg.core.test", "A"),
        ("x.y.deleg.core.test", "AAAA"),
        // Glue is not authoritative data: its own name is referred too.
        ("ns1.deleg.core.test", "A"),
    ] {
        let reply = f.dig(&[name, qtype]);
        // RFC 1034 §4.3.2 step 3b: a referral, not an authoritative answer.
        assert_reply(&reply, "NOERROR", &["qr"], &[], &referral_ns, &glue);
    }
}

/// The referral to big.edge.test: 12 NS, each with in-domain A and AAAA glue.
fn big_referral() -> (Vec<String>, Vec<String>) {
    let ns = (1..=12)
        .map(|i| format!("big.edge.test. 3600 IN NS ns{i:02}.big.edge.test."))
        .collect();
    let glue = (1..=12)
        .flat_map(|i| {
            [
                format!("ns{i:02}.big.edge.test. 3600 IN A 192.0.2.{}", 100 + i),
                format!("ns{i:02}.big.edge.test. 3600 IN AAAA 2001:db8::{}", 100 + i),
            ]
        })
        .collect();
    (ns, glue)
}

#[test]
fn referral_over_tcp_carries_all_in_domain_glue() {
    let f = Fixture::start(&[EDGE_ZONE], &[]);
    let (ns, glue) = big_referral();
    let ns: Vec<&str> = ns.iter().map(String::as_str).collect();
    let glue: Vec<&str> = glue.iter().map(String::as_str).collect();
    let reply = f.dig(&["www.big.edge.test", "A", "+tcp", "+noedns"]);
    assert_reply(&reply, "NOERROR", &["qr"], &[], &ns, &glue);
}

#[test]

fn referral_whose_in_domain_glue_does_not_fit_sets_tc() {
    let f = Fixture::start(&[EDGE_ZONE], &[]);
    let (_, glue) = big_referral();
    let reply = f.dig(&["www.big.edge.test", "A", "+noedns", "+ignore"]);
    assert_eq!(reply.status, "NOERROR", "{}", reply.raw);
    assert!(!reply.has_flag("aa"), "{}", reply.raw);
    // "If all in-domain glue records do not fit into a UDP response, an
    // authoritative server MUST set the TC flag" (RFC 9471 §3.1).
    if reply.additional.len() < glue.len() {
        assert!(
            reply.has_flag("tc"),
            "incomplete glue without TC:\n{}",
            reply.raw
        );
    }
}

#[test]
fn wildcard_at_the_apex_covers_missing_names_but_not_the_apex() {
    let f = Fixture::start(&[EDGE_ZONE], &[]);
    assert_reply(
        &f.dig(&["foo.edge.test", "TXT"]),
        "NOERROR",
        &["qr", "aa"],
        &["foo.edge.test. 3600 IN TXT \"apex wildcard\""],
        &[],
        &[],
    );
    assert_reply(
        &f.dig(&["edge.test", "TXT"]),
        "NOERROR",
        &["qr", "aa"],
        &[],
        &["edge.test. 300 IN SOA ns1.edge.test. hostmaster.edge.test. 1 7200 900 1209600 300"],
        &[],
    );
    // An existing name is not covered either.
    assert_reply(
        &f.dig(&["ns1.edge.test", "TXT"]),
        "NOERROR",
        &["qr", "aa"],
        &[],
        &["edge.test. 300 IN SOA ns1.edge.test. hostmaster.edge.test. 1 7200 900 1209600 300"],
        &[],
    );
}

// ---------------------------------------------------------------------------
// 7. EDNS and truncation
// ---------------------------------------------------------------------------

#[test]
fn edns_query_gets_opt_with_our_payload_size_and_plain_query_none() {
    let f = core();
    for bufsize in ["+bufsize=1232", "+bufsize=4096", "+bufsize=512"] {
        let reply = f.dig(&["www.core.test", "A", bufsize]);
        let edns = reply
            .edns
            .clone()
            .unwrap_or_else(|| panic!("no OPT:\n{}", reply.raw));
        assert_eq!(edns.version, 0, "{}", reply.raw);
        assert_eq!(edns.udp_payload, 1232, "{}", reply.raw);
        assert_eq!(reply.answer, vec![WWW_A.to_string()], "{}", reply.raw);
    }
    let reply = f.dig(&["www.core.test", "A", "+noedns"]);
    assert_eq!(reply.edns, None, "{}", reply.raw);
    assert_reply(&reply, "NOERROR", &["qr", "aa"], &[WWW_A], &[], &[]);
}

fn txt_records(name: &str, count: usize) -> Vec<String> {
    (1..=count)
        .map(|i| {
            let prefix = format!("{name}-{i}-");
            let text: String = "abcdefghij"
                .repeat(30)
                .chars()
                .take(250 - prefix.len())
                .collect();
            format!("{name}.core.test. 3600 IN TXT \"{prefix}{text}\"")
        })
        .collect()
}

#[track_caller]
fn assert_truncated(reply: &DigResult, limit: usize) {
    assert_eq!(reply.status, "NOERROR", "{}", reply.raw);
    assert!(reply.has_flag("tc"), "TC not set:\n{}", reply.raw);
    assert!(reply.answer.is_empty(), "{}", reply.raw);
    let size = reply.msg_size.expect("MSG SIZE line");
    assert!(
        size <= limit,
        "reply of {size} bytes exceeds {limit}:\n{}",
        reply.raw
    );
}

#[test]
fn large_answer_without_edns_is_truncated_and_complete_over_tcp() {
    let f = core();
    let medium = txt_records("medium", 3);
    let big = txt_records("big", 6);
    let medium_refs: Vec<&str> = medium.iter().map(String::as_str).collect();
    let big_refs: Vec<&str> = big.iter().map(String::as_str).collect();
    // RFC 1035 §4.2.1: 512 bytes without EDNS. +ignore keeps dig from retrying over TCP.
    assert_truncated(
        &f.dig(&["medium.core.test", "TXT", "+noedns", "+ignore"]),
        512,
    );
    assert_truncated(&f.dig(&["big.core.test", "TXT", "+noedns", "+ignore"]), 512);
    let reply = f.dig(&["medium.core.test", "TXT", "+noedns", "+tcp"]);
    assert_reply(&reply, "NOERROR", &["qr", "aa"], &medium_refs, &[], &[]);
    let reply = f.dig(&["big.core.test", "TXT", "+tcp"]);
    assert_reply(&reply, "NOERROR", &["qr", "aa"], &big_refs, &[], &[]);
    assert!(reply.msg_size.expect("MSG SIZE") > 1232, "{}", reply.raw);
}

#[test]
fn udp_payload_is_capped_by_max_udp_payload() {
    let f = core();
    let medium = txt_records("medium", 3);
    let medium_refs: Vec<&str> = medium.iter().map(String::as_str).collect();
    // The client offers 4096 but the server limits itself to 1232.
    let reply = f.dig(&["big.core.test", "TXT", "+bufsize=4096", "+ignore"]);
    assert_truncated(&reply, 1232);
    assert_eq!(
        reply.edns.as_ref().map(|e| e.udp_payload),
        Some(1232),
        "{}",
        reply.raw
    );
    let reply = f.dig(&["medium.core.test", "TXT", "+bufsize=4096", "+ignore"]);
    assert_reply(&reply, "NOERROR", &["qr", "aa"], &medium_refs, &[], &[]);
    assert!(reply.msg_size.expect("MSG SIZE") > 512, "{}", reply.raw);
    // The client's own limit is respected when smaller.
    assert_truncated(
        &f.dig(&["medium.core.test", "TXT", "+bufsize=512", "+ignore"]),
        512,
    );
    // RFC 6891 §6.2.5: values below 512 are treated as 512.
    assert_truncated(
        &f.dig(&["medium.core.test", "TXT", "+bufsize=100", "+ignore"]),
        512,
    );
    assert_reply(
        &f.dig(&["www.core.test", "A", "+bufsize=100"]),
        "NOERROR",
        &["qr", "aa"],
        &[WWW_A],
        &[],
        &[],
    );
}

#[test]
fn client_subnet_is_echoed_with_scope_zero_for_static_answers() {
    let f = core();
    let reply = f.dig(&["www.core.test", "A", "+subnet=81.2.69.0/24"]);
    assert_reply(&reply, "NOERROR", &["qr", "aa"], &[WWW_A], &[], &[]);
    let subnet = reply
        .client_subnet
        .clone()
        .unwrap_or_else(|| panic!("no CLIENT-SUBNET:\n{}", reply.raw));
    assert_eq!(subnet.address.to_string(), "81.2.69.0", "{}", reply.raw);
    assert_eq!(subnet.source_prefix_len, 24, "{}", reply.raw);
    // The static answer does not depend on the client: valid for all of them (RFC 7871 §7.2.1).
    assert_eq!(subnet.scope_prefix_len, 0, "{}", reply.raw);
}

// ---------------------------------------------------------------------------
// 8. ANY (RFC 8482)
// ---------------------------------------------------------------------------

#[test]
fn any_at_the_apex_returns_exactly_one_complete_rrset() {
    let f = core();
    let reply = f.dig(&["core.test", "ANY"]);
    assert_eq!(reply.status, "NOERROR", "{}", reply.raw);
    assert!(reply.has_flag("aa"), "{}", reply.raw);
    assert!(!reply.answer.is_empty(), "{}", reply.raw);
    let types = reply.answer_types();
    assert!(
        types.iter().all(|t| *t == types[0]),
        "more than one RRset:\n{}",
        reply.raw
    );
    assert!(
        reply.answer.iter().all(|r| r.starts_with("core.test. ")),
        "{}",
        reply.raw
    );
    // The RRset is whole: the same as asking for that type.
    let same_type = f.dig(&["core.test", &types[0]]);
    assert_rrs(
        &reply.answer,
        &same_type
            .answer
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        "ANY answer vs typed answer",
        &reply,
    );
}

// ---------------------------------------------------------------------------
// 9. Class, opcode, zone transfer
// ---------------------------------------------------------------------------

#[test]
fn chaos_class_query_is_refused() {
    let f = core();
    let reply = f.dig(&["CH", "TXT", "version.bind"]);
    assert_reply(&reply, "REFUSED", &["qr"], &[], &[], &[]);
    assert_eq!(
        reply.question,
        vec!["version.bind. CH TXT".to_string()],
        "{}",
        reply.raw
    );
}

#[test]
fn opcode_other_than_query_is_notimp() {
    let f = core();
    // NOTIFY is implemented (issue 23): for a zone that is not a secondary
    // here the answer is NOTAUTH, as BIND and Knot give.
    let reply = f.dig(&["+opcode=notify", "+noedns", "core.test", "SOA"]);
    assert_eq!(reply.status, "NOTAUTH", "{}", reply.raw);
    assert_eq!(reply.opcode, "NOTIFY", "{}", reply.raw);
    assert!(!reply.has_flag("aa"), "{}", reply.raw);
    // STATUS (opcode 2), as a raw packet.
    let query = QueryBuilder::new(0x5a5a, "core.test", rtype::SOA).opcode(2);
    let reply = udp_query(f.addr(), &query.build());
    assert_eq!(reply.id, 0x5a5a);
    assert!(reply.is_response());
    assert_eq!(reply.opcode(), 2);
    assert_eq!(reply.rcode(), rcode::NOTIMP);
    assert!(reply.answer.is_empty() && reply.authority.is_empty());
}

#[test]

fn notimp_reply_to_edns_query_carries_opt() {
    let f = core();
    let query = QueryBuilder::new(0x4e4e, "core.test", rtype::SOA)
        .opcode(2)
        .edns(1232, 0, Vec::new());
    let reply = udp_query(f.addr(), &query.build());
    assert_eq!(reply.rcode(), rcode::NOTIMP);
    assert!(
        reply.opt().is_some(),
        "NOTIMP reply to an EDNS query has no OPT: {reply:?}"
    );
    // A NOTIFY answer (issue 23) carries one too.
    let query = QueryBuilder::new(0x4e4f, "core.test", rtype::SOA)
        .opcode(4)
        .edns(1232, 0, Vec::new());
    let reply = udp_query(f.addr(), &query.build());
    assert_eq!(reply.rcode(), 9);
    assert!(
        reply.opt().is_some(),
        "NOTIMP reply to an EDNS query has no OPT: {reply:?}"
    );
}

#[test]
fn zone_transfer_is_refused() {
    let f = core();
    let query = QueryBuilder::new(0x0a0a, "core.test", rtype::AXFR).build();
    let replies = tcp_exchange(f.addr(), std::slice::from_ref(&query));
    let reply = &replies[0];
    assert_eq!(reply.id, 0x0a0a);
    assert_eq!(reply.rcode(), rcode::REFUSED, "{reply:?}");
    assert!(reply.answer.is_empty(), "{reply:?}");
    let reply = udp_query(f.addr(), &query);
    assert_eq!(reply.rcode(), rcode::REFUSED, "{reply:?}");
    assert!(reply.answer.is_empty(), "{reply:?}");
}

// ---------------------------------------------------------------------------
// 10. Malformed packets
// ---------------------------------------------------------------------------

/// A good query whose reply identifies itself by ID and question name.
fn probe(id: u16, label: &str) -> (Vec<u8>, String) {
    let name = format!("{label}.probe.core.test");
    (
        QueryBuilder::new(id, &name, rtype::A).build(),
        format!("{name}."),
    )
}

#[test]
fn short_packets_and_responses_get_no_reply() {
    let f = core();
    let socket = udp_socket(f.addr());
    let mut response = QueryBuilder::new(0x1111, "www.core.test", rtype::A).build();
    response[2] |= 0x80; // QR=1
    let bad: [&[u8]; 4] = [&[], &[0x12, 0x34], &[0u8; 11], &response];
    for (i, packet) in bad.iter().enumerate() {
        socket.send(packet).expect("send");
        // Same socket, same server worker: the probe is answered after the bad
        // packet was handled, so if the bad one got a reply it would come first.
        let (probe, name) = probe(0x7000 + i as u16, "short");
        socket.send(&probe).expect("send probe");
        let reply = udp_recv(&socket).expect("probe answered");
        let reply = parse_reply(&reply).expect("well-formed reply");
        assert_eq!(
            reply.id,
            0x7000 + i as u16,
            "packet {i} ({packet:02x?}) got a reply"
        );
        assert_eq!(reply.questions[0].0, name);
        assert_eq!(reply.rcode(), rcode::NXDOMAIN);
    }
    assert_still_answers(f.addr());
}

#[track_caller]
fn assert_formerr(addr: SocketAddr, packet: &[u8], id: u16) {
    let reply = udp_query(addr, packet);
    assert_eq!(reply.id, id, "{reply:?}");
    assert!(reply.is_response(), "{reply:?}");
    assert_eq!(reply.rcode(), rcode::FORMERR, "{packet:02x?} -> {reply:?}");
    assert!(
        reply.answer.is_empty() && reply.authority.is_empty(),
        "{reply:?}"
    );
}

fn header(id: u16, qdcount: u16) -> Vec<u8> {
    let mut out = id.to_be_bytes().to_vec();
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&qdcount.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    out
}

#[test]
fn header_with_garbage_body_is_formerr_with_the_same_id() {
    let f = core();
    let mut packet = header(0xbeef, 1);
    packet.extend_from_slice(&[0xff; 9]);
    assert_formerr(f.addr(), &packet, 0xbeef);
    // A label running past the end of the packet.
    let mut packet = header(0xbee0, 1);
    packet.extend_from_slice(&[0x3f, b'a', b'b']);
    assert_formerr(f.addr(), &packet, 0xbee0);
    // A name without its type and class.
    let mut packet = header(0xbee1, 1);
    packet.extend_from_slice(&common::wire_name("www.core.test"));
    assert_formerr(f.addr(), &packet, 0xbee1);
    assert_still_answers(f.addr());
}

#[test]
fn question_count_other_than_one_is_formerr() {
    let f = core();
    let one = QueryBuilder::new(0x2222, "www.core.test", rtype::A).build();
    let mut two = one.clone();
    two[5] = 2;
    two.extend_from_slice(&one[12..]);
    assert_formerr(f.addr(), &two, 0x2222);
    assert_formerr(f.addr(), &header(0x2223, 0), 0x2223);
    assert_still_answers(f.addr());
}

#[test]
fn compression_pointer_in_question_is_formerr() {
    let f = core();
    let mut packet = header(0x3333, 1);
    packet.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1]);
    assert_formerr(f.addr(), &packet, 0x3333);
    // A pointer after a first label.
    let mut packet = header(0x3334, 1);
    packet.extend_from_slice(&[3, b'w', b'w', b'w', 0xc0, 0x0c, 0, 1, 0, 1]);
    assert_formerr(f.addr(), &packet, 0x3334);
    assert_still_answers(f.addr());
}

#[test]
fn edns_version_1_is_badvers() {
    let f = core();
    let query = QueryBuilder::new(0x4444, "www.core.test", rtype::A).edns(1232, 1, Vec::new());
    let reply = udp_query(f.addr(), &query.build());
    assert_eq!(reply.id, 0x4444);
    // RFC 6891 §6.1.3: BADVERS is 16, its upper bits in the OPT's extended rcode.
    assert_eq!(reply.flags & 0x000f, 0, "{reply:?}");
    assert_eq!(reply.rcode(), rcode::BADVERS, "{reply:?}");
    let opt = reply.opt().expect("BADVERS reply carries an OPT");
    assert_eq!(
        (opt.ttl >> 16) & 0xff,
        0,
        "OPT version must be the one we speak: {opt:?}"
    );
    assert!(reply.answer.is_empty(), "{reply:?}");
    assert_still_answers(f.addr());
}

#[test]
fn invalid_client_subnet_option_is_formerr() {
    let f = core();
    let cases: [(&str, Vec<u8>); 6] = [
        (
            "source prefix 33 for IPv4",
            ecs_option(1, 33, 0, &[81, 2, 69, 1, 0]),
        ),
        (
            "source prefix 129 for IPv6",
            ecs_option(2, 129, 0, &[0x20; 17]),
        ),
        (
            "bits set past the source prefix",
            ecs_option(1, 20, 0, &[81, 2, 0x4f]),
        ),
        (
            "address longer than the prefix",
            ecs_option(1, 24, 0, &[81, 2, 69, 0]),
        ),
        (
            "address shorter than the prefix",
            ecs_option(1, 24, 0, &[81, 2]),
        ),
        (
            "nonzero scope in a query",
            ecs_option(1, 24, 16, &[81, 2, 69]),
        ),
    ];
    for (i, (what, option)) in cases.iter().enumerate() {
        let id = 0x5500 + i as u16;
        let query = QueryBuilder::new(id, "www.core.test", rtype::A).edns(1232, 0, option.clone());
        let reply = udp_query(f.addr(), &query.build());
        assert_eq!(reply.id, id, "{what}");
        assert_eq!(reply.rcode(), rcode::FORMERR, "{what}: {reply:?}");
        assert!(reply.answer.is_empty(), "{what}: {reply:?}");
    }
    let mut truncated_option = ecs_option(1, 24, 0, &[81, 2, 69]);
    truncated_option[3] = 9; // option length claims more than the OPT holds
    let query =
        QueryBuilder::new(0x55ff, "www.core.test", rtype::A).edns(1232, 0, truncated_option);
    assert_eq!(udp_query(f.addr(), &query.build()).rcode(), rcode::FORMERR);

    // The same option, valid, is accepted and echoed with scope 0.
    let query = QueryBuilder::new(0x5600, "www.core.test", rtype::A).edns(
        1232,
        0,
        ecs_option(1, 24, 0, &[81, 2, 69]),
    );
    let reply = udp_query(f.addr(), &query.build());
    assert_eq!(reply.rcode(), rcode::NOERROR, "{reply:?}");
    assert_eq!(reply.answer.len(), 1, "{reply:?}");
    let opt = reply.opt().expect("OPT in reply");
    assert_eq!(opt.rdata, ecs_option(1, 24, 0, &[81, 2, 69]), "{reply:?}");
    assert_still_answers(f.addr());
}

/// A junk datagram: pure noise, a header plus noise, or a mutated real query.
fn junk_packet(rng: &mut Xorshift, template: &[u8]) -> Vec<u8> {
    match rng.below(4) {
        0 => (0..rng.below(64)).map(|_| rng.byte()).collect(),
        1 => {
            let mut packet: Vec<u8> = (0..12 + rng.below(300)).map(|_| rng.byte()).collect();
            packet[2] &= 0x7f;
            packet
        }
        _ => {
            let mut packet = template.to_vec();
            for _ in 0..1 + rng.below(6) {
                let at = rng.below(packet.len());
                packet[at] = rng.byte();
            }
            match rng.below(4) {
                0 => packet.truncate(rng.below(packet.len() + 1)),
                1 => packet.extend((0..rng.below(40)).map(|_| rng.byte())),
                _ => {}
            }
            if packet.len() > 2 && rng.below(4) != 0 {
                packet[2] &= 0x7f;
            }
            packet
        }
    }
}

#[test]
fn random_junk_over_udp_never_kills_the_server() {
    let mut f = core();
    let socket = udp_socket(f.addr());
    let template = QueryBuilder::new(0x6000, "www.core.test", rtype::A)
        .edns(1232, 0, ecs_option(1, 24, 0, &[81, 2, 69]))
        .build();
    let mut rng = Xorshift::new(0x0123_4567_89ab_cdef);
    const BATCHES: u16 = 60;
    const PER_BATCH: usize = 50;
    for batch in 0..BATCHES {
        for _ in 0..PER_BATCH {
            let packet = junk_packet(&mut rng, &template);
            socket.send(&packet).expect("send junk");
        }
        // Every reply the junk provoked must be a well-formed response, and
        // the probe sent after it must be answered.
        let (probe, name) = probe(0xf000 + batch, &format!("udp{batch}"));
        socket.send(&probe).expect("send probe");
        loop {
            let bytes = udp_recv(&socket)
                .unwrap_or_else(|| panic!("no answer to the probe after junk batch {batch}"));
            let reply = parse_reply(&bytes)
                .unwrap_or_else(|| panic!("malformed reply to junk: {bytes:02x?}"));
            assert!(reply.is_response(), "{reply:?}");
            if reply.id == 0xf000 + batch && reply.questions.first().map(|q| &q.0) == Some(&name) {
                assert_eq!(reply.rcode(), rcode::NXDOMAIN, "{reply:?}");
                break;
            }
        }
    }
    assert!(f.server.is_running(), "server exited");
    assert_still_answers(f.addr());
}

#[test]
fn random_junk_over_tcp_never_kills_the_server() {
    let mut f = core();
    let template = QueryBuilder::new(0x6100, "www.core.test", rtype::A).build();
    let mut rng = Xorshift::new(0xfeed_face_cafe_beef);
    let mut stream = tcp_connect(f.addr());
    for batch in 0..10u16 {
        for _ in 0..20 {
            tcp_send(&mut stream, &junk_packet(&mut rng, &template));
        }
        let (probe, name) = probe(0xe000 + batch, &format!("tcp{batch}"));
        tcp_send(&mut stream, &probe);
        loop {
            let bytes = tcp_recv(&mut stream)
                .unwrap_or_else(|| panic!("no TCP answer to the probe after junk batch {batch}"));
            let reply = parse_reply(&bytes)
                .unwrap_or_else(|| panic!("malformed reply to junk: {bytes:02x?}"));
            assert!(reply.is_response(), "{reply:?}");
            if reply.id == 0xe000 + batch && reply.questions.first().map(|q| &q.0) == Some(&name) {
                break;
            }
        }
    }
    assert!(f.server.is_running(), "server exited");
    assert_still_answers(f.addr());
}

// ---------------------------------------------------------------------------
// 11. Several zones
// ---------------------------------------------------------------------------

#[test]
fn longest_matching_origin_wins() {
    // Parent alone: sub.core.test is a delegation.
    let parent_only = core();
    assert_reply(
        &parent_only.dig(&["www.sub.core.test", "A"]),
        "NOERROR",
        &["qr"],
        &[],
        &["sub.core.test. 3600 IN NS ns.sub.core.test."],
        &["ns.sub.core.test. 3600 IN A 192.0.2.60"],
    );
    drop(parent_only);

    // Parent and child together: the child answers for its names.
    let f = Fixture::start(&[CORE_ZONE, SUB_ZONE], &[]);
    assert_reply(
        &f.dig(&["www.sub.core.test", "A"]),
        "NOERROR",
        &["qr", "aa"],
        &["www.sub.core.test. 60 IN A 192.0.2.61"],
        &[],
        &[],
    );
    assert_reply(
        &f.dig(&["sub.core.test", "SOA"]),
        "NOERROR",
        &["qr", "aa"],
        &[
            "sub.core.test. 60 IN SOA ns.sub.core.test. hostmaster.sub.core.test. 1 7200 900 1209600 600",
        ],
        &[],
        &[],
    );
    // Negative TTL here is the SOA's own TTL, smaller than its MINIMUM.
    assert_reply(
        &f.dig(&["nope.sub.core.test", "A"]),
        "NXDOMAIN",
        &["qr", "aa"],
        &[],
        &[SUB_SOA_NEGATIVE],
        &[],
    );
    assert_reply(
        &f.dig(&["www.core.test", "A"]),
        "NOERROR",
        &["qr", "aa"],
        &[WWW_A],
        &[],
        &[],
    );
    assert_reply(
        &f.dig(&["nope.core.test", "A"]),
        "NXDOMAIN",
        &["qr", "aa"],
        &[],
        &[CORE_SOA_NEGATIVE],
        &[],
    );
}

// ---------------------------------------------------------------------------
// 12. IPv6
// ---------------------------------------------------------------------------

#[test]
fn ipv6_listener_answers_over_udp_and_tcp() {
    if let Err(err) = std::net::UdpSocket::bind("[::1]:0") {
        eprintln!("skipping ipv6_listener_answers_over_udp_and_tcp: cannot bind [::1]: {err}");
        return;
    }
    let f = Fixture::start(&[CORE_ZONE], &["--listen", "[::1]:0"]);
    let addrs = f.server.addrs();
    assert_eq!(addrs.len(), 2, "{addrs:?}");
    assert!(addrs[0].is_ipv4(), "{addrs:?}");
    let v6 = addrs[1];
    assert!(v6.is_ipv6() && v6.ip().is_loopback(), "{addrs:?}");
    for transport in ["+notcp", "+tcp"] {
        let reply = dig(v6, &["www.core.test", "A", transport]);
        assert_reply(&reply, "NOERROR", &["qr", "aa"], &[WWW_A], &[], &[]);
    }
    let query = QueryBuilder::new(0x6666, "www.core.test", rtype::AAAA).build();
    let reply = udp_query(v6, &query);
    assert_eq!(reply.rcode(), rcode::NOERROR);
    assert_eq!(reply.answer.len(), 1, "{reply:?}");
    assert_still_answers(f.addr());
}

// ---------------------------------------------------------------------------
// 13. TCP
// ---------------------------------------------------------------------------

#[test]
fn tcp_query_is_answered() {
    let f = core();
    assert_reply(
        &f.dig(&["www.core.test", "A", "+tcp"]),
        "NOERROR",
        &["qr", "aa"],
        &[WWW_A],
        &[],
        &[],
    );
    assert_reply(
        &f.dig(&["nope.core.test", "A", "+tcp"]),
        "NXDOMAIN",
        &["qr", "aa"],
        &[],
        &[CORE_SOA_NEGATIVE],
        &[],
    );
}

#[test]
fn pipelined_tcp_queries_on_one_connection_are_all_answered() {
    let f = core();
    let queries = vec![
        QueryBuilder::new(0x7101, "www.core.test", rtype::A).build(),
        QueryBuilder::new(0x7102, "nope.core.test", rtype::A).build(),
        QueryBuilder::new(0x7103, "big.core.test", rtype::TXT).build(),
    ];
    let mut replies = tcp_exchange(f.addr(), &queries);
    // RFC 7766 §6.2.1.1: replies may come in any order; match them by ID.
    replies.sort_by_key(|r| r.id);
    let ids: Vec<u16> = replies.iter().map(|r| r.id).collect();
    assert_eq!(ids, vec![0x7101, 0x7102, 0x7103]);
    assert_eq!(replies[0].rcode(), rcode::NOERROR);
    assert_eq!(replies[0].answer.len(), 1);
    assert_eq!(replies[0].answer[0].rdata, vec![192, 0, 2, 10]);
    assert_eq!(replies[1].rcode(), rcode::NXDOMAIN);
    assert_eq!(replies[1].authority.len(), 1);
    assert_eq!(replies[1].authority[0].rtype, rtype::SOA);
    assert_eq!(replies[2].rcode(), rcode::NOERROR);
    assert!(
        !replies[2].truncated(),
        "TCP replies are never truncated here"
    );
    assert_eq!(replies[2].answer.len(), 6);
}

// ---------------------------------------------------------------------------
// 14. gslb check and start-up validation
// ---------------------------------------------------------------------------

#[test]
fn check_accepts_the_shipped_config() {
    let out = run_gslb(&["check", "-c", "config/gslb.toml"]);
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert!(
        out.stdout
            .contains("config/gslb.toml: ok (1 zone, 1 service)"),
        "{out:?}"
    );
}

/// Lines of `text` that start with `prefix`, for comparing check and serve.
fn lines_starting_with<'t>(text: &'t str, prefix: &str) -> Vec<&'t str> {
    text.lines().filter(|l| l.starts_with(prefix)).collect()
}

#[test]
fn unknown_config_key_is_reported_with_line_and_column() {
    let dir = TempDir::new("bad-config");
    let config = dir.write(
        "gslb.toml",
        "[server]\nlisten = [\"127.0.0.1:0\"]\nlisen = [\"127.0.0.1:0\"]\n",
    );
    let config = config.to_str().expect("utf-8 path");
    let prefix = format!("{config}:3:1: ");

    let check = run_gslb(&["check", "-c", config]);
    assert_ne!(check.code(), Some(0), "{check:?}");
    let check_lines = lines_starting_with(&check.stderr, &prefix);
    assert_eq!(check_lines.len(), 1, "{check:?}");
    assert!(check_lines[0].contains("lisen"), "{check:?}");

    let serve = run_gslb(&["serve", "-c", config, "--listen", "127.0.0.1:0"]);
    assert_ne!(serve.code(), Some(0), "{serve:?}");
    assert_eq!(
        lines_starting_with(&serve.stderr, &prefix),
        check_lines,
        "{serve:?}"
    );
    assert!(!serve.stdout.contains("listening on"), "{serve:?}");
}

#[test]
fn every_bad_zone_line_is_reported_and_serve_refuses_to_start() {
    let dir = TempDir::new("bad-zone");
    let zone = dir.write(
        "bad.zone",
        "$TTL 60\n\
         @ SOA ns1 hostmaster 1 7200 900 1209600 60\n\
         www A 192.0.2.300\n\
         @ NS ns1\n\
         ns1 A 192.0.2.1\n\
         bad AAAA not-an-address\n",
    );
    let config = dir.write(
        "gslb.toml",
        "[[zone]]\norigin = \"bad.test\"\nfile = \"bad.zone\"\n",
    );
    let config = config.to_str().expect("utf-8 path");
    let zone = zone.to_str().expect("utf-8 path");

    let check = run_gslb(&["check", "-c", config]);
    assert_ne!(check.code(), Some(0), "{check:?}");
    let check_lines = lines_starting_with(&check.stderr, zone);
    assert_eq!(check_lines.len(), 2, "{check:?}");
    assert!(
        check_lines[0].starts_with(&format!("{zone}:3: ")),
        "{check:?}"
    );
    assert!(
        check_lines[1].starts_with(&format!("{zone}:6: ")),
        "{check:?}"
    );

    let serve = run_gslb(&["serve", "-c", config, "--listen", "127.0.0.1:0"]);
    assert_ne!(serve.code(), Some(0), "{serve:?}");
    assert_eq!(
        lines_starting_with(&serve.stderr, zone),
        check_lines,
        "{serve:?}"
    );
    assert!(!serve.stdout.contains("listening on"), "{serve:?}");
}

// ---------------------------------------------------------------------------
// 15. The shipped default
// ---------------------------------------------------------------------------

#[test]
fn shipped_config_serves_example_test() {
    let server = GslbServer::start(&["-c", "config/gslb.toml"]);
    let reply = dig(server.addr(), &["ns1.example.test", "A"]);
    assert_reply(
        &reply,
        "NOERROR",
        &["qr", "aa"],
        &["ns1.example.test. 3600 IN A 192.0.2.53"],
        &[],
        &[],
    );
}

//! The precompiled fast path answers exactly as the general path does.
//!
//! For several configurations (the shipped ones, the benchmark fixture, and
//! one built on the core test zones with delegations, wildcards, CNAME chains
//! and loops, empty non-terminals, large RRsets, nested zones and services of
//! every selection kind), every name of every zone and some that do not
//! exist are asked for many types, in mixed case, with and without EDNS,
//! with Client Subnets of both families (including source prefix 0), with
//! RD/CD set, over UDP and TCP; with all endpoints up and again with some
//! down. `handle_packet` (fast path first) must write the same bytes as the
//! general path alone, and the fast path must actually answer the ordinary
//! queries (static names and address services).

mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::TempDir;
use gslb::dns::answer::{Transport, handle_packet_traced};
use gslb::dns::reply_buffer::UdpReply;
use gslb::dns::served::{Served, handle_packet, handle_udp_query};
use gslb::dns::udp_batch::UDP_QUERY_MAX;
use gslb::dns::wire::Rcode;
use gslb::health::{HealthTable, HealthView};
use gslb::snapshot::{Snapshot, SnapshotSource};

const TYPES: [u16; 12] = [1, 2, 5, 6, 15, 16, 28, 33, 43, 255, 257, 99];

/// An EDNS Client Subnet option: family, source prefix, address bytes.
type Ecs = (u16, u8, Vec<u8>);

/// An OPT record: payload size, Client Subnet, DO bit.
type Edns = (u16, Option<Ecs>, bool);

/// A query with the knobs the fast path looks at.
fn query(id: u16, name: &[u8], qtype: u16, flags: u16, edns: Option<Edns>) -> Vec<u8> {
    let mut packet = Vec::new();
    packet.extend_from_slice(&id.to_be_bytes());
    packet.extend_from_slice(&flags.to_be_bytes());
    packet.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, u8::from(edns.is_some())]);
    packet.extend_from_slice(name);
    packet.extend_from_slice(&qtype.to_be_bytes());
    packet.extend_from_slice(&1u16.to_be_bytes());
    if let Some((payload, ecs, dnssec_ok)) = edns {
        packet.push(0);
        packet.extend_from_slice(&41u16.to_be_bytes());
        packet.extend_from_slice(&payload.to_be_bytes());
        packet.extend_from_slice(&[0, 0, if dnssec_ok { 0x80 } else { 0 }, 0]);
        match ecs {
            None => packet.extend_from_slice(&[0, 0]),
            Some((family, source, address)) => {
                let option_len = 4 + address.len() as u16;
                packet.extend_from_slice(&(4 + option_len).to_be_bytes());
                packet.extend_from_slice(&8u16.to_be_bytes());
                packet.extend_from_slice(&option_len.to_be_bytes());
                packet.extend_from_slice(&family.to_be_bytes());
                packet.extend_from_slice(&[source, 0]);
                packet.extend_from_slice(&address);
            }
        }
    }
    packet
}

/// `name` with every other letter uppercased (label lengths untouched).
fn mixed_case(name: &[u8]) -> Vec<u8> {
    let mut out = name.to_vec();
    let mut pos = 0;
    while let Some(&len) = name.get(pos) {
        if len == 0 {
            break;
        }
        for (k, byte) in out[pos + 1..pos + 1 + usize::from(len)]
            .iter_mut()
            .enumerate()
        {
            if k % 2 == 0 {
                *byte = byte.to_ascii_uppercase();
            }
        }
        pos += 1 + usize::from(len);
    }
    out
}

fn edns_variants() -> Vec<Option<Edns>> {
    vec![
        None,
        // DO queries (signed zones answer them with RRSIGs and NSECs).
        Some((1232, None, true)),
        Some((4096, Some((1, 24, vec![81, 2, 69])), true)),
        Some((
            4096,
            Some((2, 48, vec![0x20, 0x01, 0x02, 0x18, 0, 0])),
            true,
        )),
        Some((512, None, false)),
        Some((1232, None, false)),
        Some((4096, Some((1, 24, vec![81, 2, 69])), false)),
        Some((4096, Some((1, 24, vec![203, 0, 113])), false)),
        Some((4096, Some((1, 16, vec![8, 8])), false)),
        Some((1232, Some((1, 32, vec![175, 16, 199, 7])), false)),
        Some((4096, Some((1, 0, vec![])), false)),
        Some((
            4096,
            Some((2, 48, vec![0x20, 0x01, 0x02, 0x18, 0, 0])),
            false,
        )),
        Some((4096, Some((2, 32, vec![0x2a, 0x02, 0xdd, 0xc0])), false)),
        // Invalid (FORMERR on the general path): an address byte too many,
        // bits past the source prefix, an unknown family.
        Some((4096, Some((1, 24, vec![81, 2, 69, 7])), false)),
        Some((4096, Some((1, 20, vec![81, 2, 0x4f])), false)),
        Some((4096, Some((3, 8, vec![81])), false)),
    ]
}

struct Tally {
    compared: usize,
    fast: usize,
    /// A and AAAA queries for names of the zones, and how many of them the
    /// fast path answered.
    address_queries: usize,
    address_fast: usize,
    /// Replies compared as a UDP worker writes them.
    udp: usize,
}

/// Compares both paths on every query variant for `names`.
fn compare(
    served: &Served,
    health: &HealthView,
    names: &[Vec<u8>],
    label: &str,
    tally: &mut Tally,
) {
    let snapshot = &*served.snapshot;
    let exists = |name: &[u8]| snapshot.zones.iter().any(|z| z.node(name).is_some());
    let sources = [
        IpAddr::V4(Ipv4Addr::new(81, 2, 69, 7)),
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(Ipv6Addr::new(0x2001, 0x218, 0, 0, 0, 0, 0, 1)),
    ];
    let mut general = Vec::new();
    let mut combined = Vec::new();
    let mut fast_only = Vec::new();
    let mut received = Box::new([0u8; UDP_QUERY_MAX]);
    let mut udp_reply = UdpReply::new();
    let mut id = 0u16;
    for name in names {
        for variant_name in [name.clone(), mixed_case(name)] {
            for qtype in TYPES {
                for flags in [0x0000u16, 0x0110] {
                    for edns in edns_variants() {
                        let packet = query(id, &variant_name, qtype, flags, edns);
                        id = id.wrapping_add(1);
                        for transport in [Transport::Udp, Transport::Tcp] {
                            let source = sources[usize::from(id) % sources.len()];
                            let seed = u64::from(id) * 0x9e37_79b9;
                            let want = handle_packet_traced(
                                snapshot,
                                health,
                                &packet,
                                source,
                                transport,
                                seed,
                                &mut general,
                                None,
                            );
                            let got = handle_packet(
                                served,
                                health,
                                &packet,
                                source,
                                transport,
                                seed,
                                &mut combined,
                            );
                            let answered = want.is_some();
                            assert_eq!(
                                answered,
                                got.is_some(),
                                "{label}: dropped by one path only: {packet:02x?}"
                            );
                            if want.is_some() {
                                assert_eq!(
                                    general, combined,
                                    "{label}: replies differ for {packet:02x?}"
                                );
                                tally.compared += 1;
                            }
                            let fast = served.precompiled.answer(
                                snapshot,
                                health,
                                &packet,
                                packet.len(),
                                source,
                                transport,
                                seed,
                                &mut fast_only,
                            );
                            // Queries the general path rejects are not the fast path's.
                            let rejected = want.as_ref().is_some_and(|w| w.rcode == Rcode::FormErr);
                            if matches!(qtype, 1 | 28) && exists(name) && !rejected {
                                tally.address_queries += 1;
                                tally.address_fast += usize::from(fast.is_some());
                            }
                            if let Some(outcome) = fast {
                                assert_eq!(
                                    fast_only, general,
                                    "{label}: fast reply differs for {packet:02x?}"
                                );
                                let want = want.expect("answered by the general path");
                                assert_eq!(outcome.rcode, want.rcode);
                                assert_eq!(outcome.truncated, want.truncated);
                                assert_eq!(outcome.service.is_some(), want.service.is_some());
                                tally.fast += 1;
                            }
                            if transport == Transport::Udp {
                                // As a UDP worker answers: the query in a
                                // receive buffer whose bytes past it are
                                // left from a longer datagram, the reply in
                                // a fixed buffer.
                                received.fill(0xa5);
                                received[..packet.len()].copy_from_slice(&packet);
                                let udp = handle_udp_query(
                                    served,
                                    health,
                                    &received,
                                    packet.len(),
                                    source,
                                    seed,
                                    &mut udp_reply,
                                );
                                assert_eq!(answered, udp.is_some(), "{label}: UDP path");
                                if answered {
                                    assert_eq!(
                                        udp_reply.as_bytes(),
                                        &general[..],
                                        "{label}: UDP reply differs for {packet:02x?}"
                                    );
                                    tally.udp += 1;
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Every zone name plus names that do not exist or come from wildcards.
fn names_of(snapshot: &Snapshot) -> Vec<Vec<u8>> {
    let mut names: Vec<Vec<u8>> = Vec::new();
    for zone in snapshot.zones.iter() {
        for (name, _) in zone.nodes() {
            names.push(name.to_vec());
        }
        let origin = zone.origin();
        for prefix in [
            &b"\x07missing"[..],
            b"\x01x\x04wild",
            b"\x03foo\x04apps",
            b"\x01z\x05deleg",
        ] {
            names.push([prefix, origin].concat());
        }
    }
    names.sort();
    names.dedup();
    names
}

fn build(config: &Path) -> (Served, HealthTable) {
    let health = HealthTable::default();
    let source = SnapshotSource {
        config_path: config.to_path_buf(),
        extra_zones: Vec::new(),
    };
    let (snapshot, _) =
        Snapshot::build(&source, &health).unwrap_or_else(|errors| panic!("{errors}"));
    (Served::new(Arc::new(snapshot), None), health)
}

/// Marks the first endpoint of every pool of every service down.
fn take_first_endpoints_down(snapshot: &Snapshot, health: &HealthTable) {
    for service in &snapshot.services {
        for pool in &service.pools {
            if let Some(record) = pool.endpoints.first().and_then(|e| health.record(e.id)) {
                health.handle_verdict(&record, false, std::time::SystemTime::now());
            }
        }
    }
}

fn check_config(config: &Path) {
    let (served, health) = build(config);
    let snapshot = &served.snapshot;
    let names = names_of(snapshot);
    let label = config.display().to_string();
    let mut tally = Tally {
        compared: 0,
        fast: 0,
        address_queries: 0,
        address_fast: 0,
        udp: 0,
    };
    compare(&served, &health.view(), &names, &label, &mut tally);
    take_first_endpoints_down(snapshot, &health);
    compare(
        &served,
        &health.view(),
        &names,
        &format!("{label} (endpoints down)"),
        &mut tally,
    );
    eprintln!(
        "{label}: {} replies compared ({} as UDP workers write them), {} from the fast path; \
         A/AAAA for zone names: {} of {} fast",
        tally.compared, tally.udp, tally.fast, tally.address_fast, tally.address_queries
    );
    // The rest are the general path's by design: CNAME endpoints, answers
    // that need truncation, all-down services.
    assert!(
        tally.address_fast * 10 > tally.address_queries * 8,
        "{label}: the fast path answered too few A/AAAA queries"
    );
}

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

#[test]
fn shipped_configurations_answer_the_same_on_both_paths() {
    for config in [
        "config/gslb.toml",
        "config/examples/geo.toml",
        "config/examples/nearest.toml",
        "config/examples/latency.toml",
        "config/examples/weighted.toml",
        "config/examples/multi-zone.toml",
        "benches/fixtures/bench.toml",
    ] {
        check_config(&repo(config));
    }
}

#[test]
fn core_zones_with_every_selection_answer_the_same_on_both_paths() {
    let dir = TempDir::new("precompiled");
    let fixture = |name: &str| {
        repo(&format!("tests/fixtures/{name}"))
            .display()
            .to_string()
    };
    let config = format!(
        r#"
[[zone]]
origin = "core.test"
file = "{core}"

[[zone]]
origin = "sub.core.test"
file = "{sub}"

[[zone]]
origin = "edge.test"
file = "{edge}"

[geoip]
database = "{geoip}"

[ecs]
max_source_prefix_v4 = 24
max_source_prefix_v6 = 48

[pools.eu]
coordinates = [50.11, 8.68]
endpoints = [{{ address = "192.0.2.10", weight = 3 }}, {{ address = "192.0.2.11" }}, {{ address = "2001:db8:e::10" }}]

[pools.us]
coordinates = [39.04, -77.49]
endpoints = [{{ address = "198.51.100.10" }}, {{ address = "198.51.100.11" }}, {{ address = "2001:db8:a::10" }}]

[pools.cdn]
endpoints = [{{ cname = "eu.cdn.example.net" }}, {{ cname = "www.core.test" }}]

[services."geo.core.test"]
policy = "geo"
ttl = 30
failover_ttl = 10
[services."geo.core.test".geo]
continent = {{ EU = ["eu", "us"], NA = ["us", "eu"] }}
default = ["us", "eu"]

[services."near.core.test"]
policy = "nearest"
pools = ["eu", "us"]
selection = "sticky"

[services."multi.core.test"]
policy = "failover"
pools = ["us", "eu"]
selection = "multivalue"
max_records = 4

[services."cdn.core.test"]
policy = "failover"
pools = ["cdn"]

# Names of 32 and 33 wire bytes (either side of the name table's word
# keys) and of 53 (a question too long for the reply buffer's one-piece
# header-and-question copy).
[services."twenty-byte-label-xx.core.test"]
policy = "failover"
pools = ["eu", "us"]

[services."twenty-one-byte-label.core.test"]
policy = "failover"
pools = ["us", "eu"]

[services."a-service-name-longer-than-forty-bytes-xx.core.test"]
policy = "failover"
pools = ["eu", "us"]
"#,
        core = fixture("core.test.zone"),
        sub = fixture("sub.core.test.zone"),
        edge = fixture("edge.test.zone"),
        geoip = repo("geoip/demo-city.mmdb").display(),
    );
    let path = dir.write("gslb.toml", &config);
    check_config(&path);
    // The same zones signed (issue 20): DO queries get RRSIGs and NSECs,
    // from the fast path for static names and one-endpoint answers.
    let key = gslb::dnssec::keys::generate(
        "core.test.",
        gslb::dnssec::keys::Algorithm::EcdsaP256Sha256,
        &dir.path().join("keys"),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64),
    )
    .expect("generate a key");
    let signed = config.replacen(
        "\n\n[[zone]]\norigin = \"sub.core.test\"",
        &format!(
            "\ndnssec = true\ndnssec_keys = [{:?}]\n\n[[zone]]\norigin = \"sub.core.test\"",
            key.display().to_string()
        ),
        1,
    );
    assert_ne!(signed, config);
    let path = dir.write("signed.toml", &signed);
    check_config(&path);
}

//! Fuzz harness for gslb: one function per target, each feeding arbitrary
//! input to a public entry point and asserting what must hold for any input.
//!
//! Shared by the cargo-fuzz targets in `fuzz_targets/` and by the plain test
//! `tests/fuzz_corpus.rs` (which includes this file with `#[path]`), so the
//! committed corpora are replayed by `cargo test` without cargo-fuzz. It must
//! therefore use only crates the main crate also depends on (`gslb`,
//! `hickory-proto`). Owns no files: `$INCLUDE` is skipped in zone input so
//! fuzzing never reads the file system.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use gslb::dns::answer::{Transport, handle_packet};
use gslb::dns::wire;
use gslb::health::HealthRegistry;
use gslb::snapshot::{Snapshot, SnapshotSource};
use hickory_proto::op::{Message, MessageType};
use hickory_proto::rr::Name;
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};

/// Names of the fuzz targets, which are also the corpus directory names.
pub const TARGETS: [&str; 4] = ["packet", "config", "zone", "latency"];

/// Packet sources the `packet` target answers from, picked by the query's
/// first ID byte: loopback, GB, US, JP (IPv6), a CIDR-map network, and an
/// address no database knows.
const CLIENTS: [IpAddr; 6] = [
    IpAddr::V4(Ipv4Addr::LOCALHOST),
    IpAddr::V4(Ipv4Addr::new(81, 2, 69, 160)),
    IpAddr::V4(Ipv4Addr::new(216, 160, 83, 1)),
    IpAddr::V6(Ipv6Addr::new(0x2001, 0x218, 0, 0, 0, 0, 0, 1)),
    IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)),
    IpAddr::V6(Ipv6Addr::LOCALHOST),
];

/// Largest DNS message over TCP (RFC 1035 §4.2.2).
const TCP_LIMIT: usize = 65_535;
/// Largest UDP reply without EDNS (RFC 1035 §4.2.1).
const PLAIN_UDP_LIMIT: usize = 512;

/// The packet fixture config, given the directory holding `fuzz/`'s files.
pub fn packet_fixture_config(fuzz_dir: &Path) -> PathBuf {
    fuzz_dir.join("fixtures").join("packet.toml")
}

/// Builds the snapshot the `packet` target answers from (once per process).
///
/// # Panics
/// When the fixture does not build: that is a broken fixture, not a finding.
pub fn packet_snapshot(config_path: &Path) -> Snapshot {
    let source = SnapshotSource {
        config_path: config_path.to_path_buf(),
        extra_zones: Vec::new(),
    };
    let health = HealthRegistry::default();
    match Snapshot::build(&source, &health) {
        Ok((snapshot, _)) => snapshot,
        Err(errors) => panic!(
            "fuzz fixture {} does not build:\n{errors}",
            config_path.display()
        ),
    }
}

/// `packet`: raw bytes through the whole query handler, over UDP and TCP.
///
/// For any input: only short packets and responses are dropped; every reply
/// decodes with hickory, echoes the ID and the question, is a response with
/// the rcode the handler reported, fits the transport's size limit (UDP: the
/// query's EDNS payload clamped to 512..=max_udp_payload, else 512), carries
/// no records with REFUSED or with a header-only error, and echoes ECS with a
/// scope no longer than the source prefix (RFC 7871 §7.2.1).
pub fn fuzz_packet(snapshot: &Snapshot, data: &[u8]) {
    let client = CLIENTS[usize::from(data.first().copied().unwrap_or(0)) % CLIENTS.len()];
    let must_drop = data.len() < wire::HEADER_LEN || data[2] & 0x80 != 0;
    let parsed = wire::parse_query(data);
    let mut out = Vec::with_capacity(4096);
    for transport in [Transport::Udp, Transport::Tcp] {
        let seed = u64::from(data.len() as u32);
        let outcome = handle_packet(snapshot, data, client, transport, seed, &mut out);
        let Some(outcome) = outcome else {
            assert!(must_drop, "a query was dropped: {data:02x?}");
            continue;
        };
        assert!(
            !must_drop,
            "a packet that must be dropped was answered: {data:02x?}"
        );
        let limit = match (transport, &parsed) {
            (Transport::Tcp, _) => TCP_LIMIT,
            (Transport::Udp, Ok(query)) => match query.edns {
                None => PLAIN_UDP_LIMIT,
                Some(edns) => usize::from(edns.udp_payload.clamp(512, snapshot.max_udp_payload)),
            },
            (Transport::Udp, Err(_)) => PLAIN_UDP_LIMIT,
        };
        assert!(
            out.len() <= limit,
            "{transport:?} reply of {} bytes exceeds {limit}: query {data:02x?}",
            out.len()
        );
        let reply = match Message::from_vec(&out) {
            Ok(reply) => reply,
            Err(err) => panic!(
                "{transport:?} reply does not decode: {err}\nquery {data:02x?}\nreply {out:02x?}"
            ),
        };
        let id = u16::from_be_bytes([data[0], data[1]]);
        assert_eq!(reply.metadata.id, id, "reply ID differs from the query's");
        assert_eq!(reply.metadata.message_type, MessageType::Response);
        assert_eq!(
            u16::from(reply.metadata.response_code),
            outcome.rcode.value(),
            "rcode on the wire differs from the outcome: reply {out:02x?}"
        );
        if transport == Transport::Tcp {
            assert!(!reply.metadata.truncation, "TC set over TCP: {data:02x?}");
        }
        match &parsed {
            Ok(query) => {
                assert_eq!(reply.queries.len(), 1, "question not echoed");
                let echoed = out.get(wire::HEADER_LEN..wire::HEADER_LEN + query.qname.len());
                assert_eq!(
                    echoed,
                    Some(query.qname),
                    "question name not echoed verbatim"
                );
                assert_eq!(u16::from(reply.queries[0].query_type()), query.qtype);
                assert_eq!(u16::from(reply.queries[0].query_class()), query.qclass);
            }
            Err(_) => {
                // Header-only error reply: nothing but, at most, an OPT.
                assert!(reply.queries.is_empty() && reply.answers.is_empty());
                assert!(reply.authorities.is_empty() && reply.additionals.is_empty());
            }
        }
        if outcome.rcode == wire::Rcode::Refused {
            // No amplification: a refusal carries no records.
            assert!(reply.answers.is_empty() && reply.authorities.is_empty());
            assert!(reply.additionals.is_empty());
        }
        let query_subnet = parsed
            .ok()
            .and_then(|q| q.edns)
            .and_then(|e| e.client_subnet);
        let reply_subnet =
            reply
                .edns
                .as_ref()
                .and_then(|edns| match edns.option(EdnsCode::Subnet) {
                    Some(EdnsOption::Subnet(subnet)) => Some(*subnet),
                    _ => None,
                });
        match (query_subnet, reply_subnet) {
            (Some(sent), Some(echoed)) => {
                assert_eq!(echoed.source_prefix(), sent.source_prefix_len);
                assert!(
                    echoed.scope_prefix() <= echoed.source_prefix(),
                    "ECS scope /{} exceeds source /{}: query {data:02x?}",
                    echoed.scope_prefix(),
                    echoed.source_prefix()
                );
            }
            (None, Some(_)) => panic!("ECS in a reply to a query without it: {data:02x?}"),
            (Some(_), None) if outcome.rcode == wire::Rcode::NoError => {
                panic!("ECS not echoed: {data:02x?}")
            }
            _ => {}
        }
    }
}

/// `config`: arbitrary text through `parse_config`; for texts that parse,
/// the pure checks the snapshot build runs on durations and status ranges,
/// and the span-to-line mapping of errors.
pub fn fuzz_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("fuzz.toml");
    match gslb::config::parse_config(path, text.to_string()) {
        Ok(loaded) => {
            let config = &loaded.config;
            for check in config.checks.values() {
                let check = check.get_ref();
                for duration in [&check.interval, &check.timeout].into_iter().flatten() {
                    let _ = duration.get_ref().to_duration();
                    let _ = loaded.error_at(duration.span(), "fuzz").to_string();
                }
                if let Some(statuses) = &check.expect_status {
                    for status in statuses.get_ref() {
                        let _ = status.to_range();
                    }
                }
            }
            for (name, pool) in &config.pools {
                let _ = loaded
                    .error_at(pool.span(), format!("pool {name}"))
                    .to_string();
            }
            for service in config.services.values() {
                let _ = loaded.error_at(service.span(), "service").to_string();
            }
            let _ = loaded.error_at(config.server.max_udp_payload.span(), "max");
        }
        Err(err) => {
            let shown = err.to_string();
            assert!(shown.starts_with("fuzz.toml"), "error not located: {shown}");
        }
    }
}

/// `zone`: text through `parse_zone_text` and `Zone::build` at origin
/// `example.test.`; for zones that build, resolves every owner name and a
/// name below it. Texts mentioning `$INCLUDE` are skipped (no file reads).
pub fn fuzz_zone(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if text.to_ascii_uppercase().contains("INCLUDE") {
        return;
    }
    let Ok(origin) = Name::from_ascii("example.test.") else {
        return;
    };
    let path = Path::new("fuzz.zone");
    let records = match gslb::zone::parse_zone_text(text, path, &origin) {
        Ok(records) => records,
        Err(errors) => {
            assert!(!errors.is_empty());
            for error in errors {
                let _ = error.to_string();
            }
            return;
        }
    };
    let owners: Vec<Name> = records.iter().map(|r| r.record.name.clone()).collect();
    let zone = match gslb::zone::Zone::build(&origin, path, records) {
        Ok(zone) => zone,
        Err(errors) => {
            assert!(!errors.is_empty(), "Zone::build failed without an error");
            return;
        }
    };
    for owner in owners.iter().take(64) {
        let wire = gslb::zone::wire_name(owner);
        let _ = zone.resolve(&wire);
        let mut below = vec![1, b'x'];
        below.extend_from_slice(&wire);
        if below.len() <= wire::MAX_NAME_LEN {
            let _ = zone.resolve(&below);
        }
    }
}

/// `latency`: text through `parse_latency_table`; rows come with their line
/// numbers, and every error names one.
pub fn fuzz_latency(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let lines = text.lines().count();
    match gslb::snapshot::latency::parse_latency_table(text, Path::new("fuzz.csv")) {
        Ok(rows) => {
            for row in rows {
                assert!((1..=lines).contains(&row.line));
                assert!(row.latency_ms.is_finite() && row.latency_ms >= 0.0);
                assert!(!row.region.is_empty());
            }
        }
        Err(errors) => {
            assert!(!errors.is_empty());
            for error in errors {
                assert!((1..=lines).contains(&error.line), "{error}");
            }
        }
    }
}

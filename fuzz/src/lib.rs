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

use gslb::dns::answer::Transport;
use gslb::dns::served::{Served, handle_packet};
use gslb::dns::wire;
use gslb::health::{HealthTable, HealthView};
use gslb::snapshot::{Snapshot, SnapshotSource};
use hickory_proto::op::{Message, MessageType};
use hickory_proto::rr::Name;
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};

/// Names of the fuzz targets, which are also the corpus directory names.
pub const TARGETS: [&str; 6] = ["packet", "config", "zone", "latency", "answer", "geoip_csv"];

/// Services of the packet fixture whose answers depend on the client: geo
/// (weighted), nearest (sticky) and latency (multivalue).
const CLIENT_DEPENDENT_SERVICES: [&str; 3] = [
    "www.example.test.",
    "near.example.test.",
    "lat.example.test.",
];

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

/// What the `packet` target answers from: a snapshot as the DNS workers
/// serve it and the health view its build published.
pub struct PacketFixture {
    /// The snapshot and its precompiled answers.
    pub served: Served,
    /// Its endpoints' health (as built: no probes run).
    pub health: std::sync::Arc<HealthView>,
}

/// Builds what the `packet` target answers from (once per process).
///
/// # Panics
/// When the fixture does not build: that is a broken fixture, not a finding.
pub fn packet_snapshot(config_path: &Path) -> PacketFixture {
    let source = SnapshotSource {
        config_path: config_path.to_path_buf(),
        extra_zones: Vec::new(),
    };
    let health = HealthTable::default();
    match Snapshot::build(&source, &health) {
        Ok((snapshot, _)) => PacketFixture {
            served: Served::new(std::sync::Arc::new(snapshot), None),
            health: health.view_arc(),
        },
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
/// no records with REFUSED or with a header-only error, and echoes ECS with
/// the query's source prefix and a scope within the family's length (it may
/// be longer than the source when the source block is mixed: RFC 7871
/// §7.2.1; the `answer` target checks that such scopes are honest).
pub fn fuzz_packet(fixture: &PacketFixture, data: &[u8]) {
    let snapshot = &fixture.served.snapshot;
    let client = CLIENTS[usize::from(data.first().copied().unwrap_or(0)) % CLIENTS.len()];
    let must_drop = data.len() < wire::HEADER_LEN || data[2] & 0x80 != 0;
    let parsed = wire::parse_query(data);
    let mut out = Vec::with_capacity(4096);
    for transport in [Transport::Udp, Transport::Tcp] {
        let seed = u64::from(data.len() as u32);
        let outcome = handle_packet(
            &fixture.served,
            &fixture.health,
            data,
            client,
            transport,
            seed,
            &mut out,
        );
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
                let family_bits = match echoed.addr() {
                    IpAddr::V4(_) => 32,
                    IpAddr::V6(_) => 128,
                };
                assert!(
                    echoed.scope_prefix() <= family_bits,
                    "ECS scope /{} exceeds the address length: query {data:02x?}",
                    echoed.scope_prefix(),
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

/// `answer`: the query path with EDNS Client Subnet against services whose
/// answer depends on the client. The input picks the service, the type (A
/// or AAAA), the family, the source prefix and the address; the reply must
/// be NOERROR, echo the subnet, and carry a scope at which the answer is
/// honest: a second query from another address inside the scope block
/// (taken from the input's remaining bytes) gets the same records.
pub fn fuzz_answer(fixture: &PacketFixture, data: &[u8]) {
    let [selector, family, prefix, rest @ ..] = data else {
        return;
    };
    let name = CLIENT_DEPENDENT_SERVICES[usize::from(selector % 3)];
    let qtype = if selector & 0x80 == 0 { 1u16 } else { 28 };
    let v6 = family & 1 == 1;
    let bits: u8 = if v6 { 128 } else { 32 };
    let source = prefix % (bits + 1);
    let (address, other) = take_address(rest, v6);
    let first = mask_address(address, source);
    let query = ecs_query(0x4242, name, qtype, first, source);
    let (records, scope) = answer_with_ecs(fixture, &query, data);
    let Some(scope) = scope else {
        return;
    };
    assert!(
        scope <= bits,
        "scope /{scope} past the address: {data:02x?}"
    );
    if source == 0 {
        assert_eq!(scope, 0, "ECS source 0 is not used: scope must be 0");
        return;
    }
    // Another address of the scope block, asked with its full length: the
    // server caps it as it did the first; the answer must be the same.
    let inside = merge_address(first, other, scope);
    let query = ecs_query(0x4343, name, qtype, inside, bits);
    let (again, _) = answer_with_ecs(fixture, &query, data);
    assert_eq!(
        again, records,
        "{name} scope /{scope} of {first}/{source} is not honest: {inside} gets another answer ({data:02x?})"
    );
}

/// The first address of `rest` (4 or 16 bytes, zero-padded) and the rest.
fn take_address(rest: &[u8], v6: bool) -> (IpAddr, &[u8]) {
    let len = if v6 { 16 } else { 4 };
    let mut bytes = [0u8; 16];
    let taken = rest.len().min(len);
    bytes[..taken].copy_from_slice(&rest[..taken]);
    let address = if v6 {
        IpAddr::V6(Ipv6Addr::from(bytes))
    } else {
        IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]))
    };
    (address, &rest[taken..])
}

fn address_bits(address: IpAddr) -> (u128, u8) {
    match address {
        IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32),
        IpAddr::V6(v6) => (u128::from(v6), 128),
    }
}

fn address_from_bits(bits: u128, width: u8) -> IpAddr {
    if width == 32 {
        IpAddr::V4(Ipv4Addr::from(bits as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(bits))
    }
}

/// High `len` bits of the address's width, as a mask.
fn high_mask(len: u8, width: u8) -> u128 {
    let all = if width == 32 {
        u128::from(u32::MAX)
    } else {
        u128::MAX
    };
    let low = all.checked_shr(u32::from(len)).unwrap_or(0);
    all & !low
}

fn mask_address(address: IpAddr, len: u8) -> IpAddr {
    let (bits, width) = address_bits(address);
    address_from_bits(bits & high_mask(len, width), width)
}

/// `first`'s leading `len` bits, then bits from `other`.
fn merge_address(first: IpAddr, other: &[u8], len: u8) -> IpAddr {
    let (bits, width) = address_bits(first);
    let mut fill = [0u8; 16];
    let taken = other.len().min(16);
    fill[..taken].copy_from_slice(&other[..taken]);
    let fill = u128::from_be_bytes(fill) >> (128 - u32::from(width));
    let keep = high_mask(len, width);
    address_from_bits((bits & keep) | (fill & !keep), width)
}

/// A query for `name` and `qtype` with an OPT record holding ECS.
fn ecs_query(id: u16, name: &str, qtype: u16, address: IpAddr, source: u8) -> Vec<u8> {
    let mut packet = Vec::with_capacity(64);
    packet.extend_from_slice(&id.to_be_bytes());
    packet.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 1]);
    for label in name.trim_end_matches('.').split('.') {
        packet.push(label.len() as u8);
        packet.extend_from_slice(label.as_bytes());
    }
    packet.push(0);
    packet.extend_from_slice(&qtype.to_be_bytes());
    packet.extend_from_slice(&1u16.to_be_bytes());
    let (family, bytes): (u16, Vec<u8>) = match address {
        IpAddr::V4(v4) => (1, v4.octets().to_vec()),
        IpAddr::V6(v6) => (2, v6.octets().to_vec()),
    };
    let address_len = usize::from(source).div_ceil(8);
    let option_len = 4 + address_len;
    packet.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0]);
    packet.extend_from_slice(&((4 + option_len) as u16).to_be_bytes());
    packet.extend_from_slice(&8u16.to_be_bytes());
    packet.extend_from_slice(&(option_len as u16).to_be_bytes());
    packet.extend_from_slice(&family.to_be_bytes());
    packet.extend_from_slice(&[source, 0]);
    packet.extend_from_slice(&bytes[..address_len]);
    packet
}

/// Answers `query` from loopback over UDP: the answer records (sorted, as
/// text) and the reply's ECS scope.
fn answer_with_ecs(
    fixture: &PacketFixture,
    query: &[u8],
    data: &[u8],
) -> (Vec<String>, Option<u8>) {
    let mut out = Vec::with_capacity(4096);
    let client = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let outcome = handle_packet(
        &fixture.served,
        &fixture.health,
        query,
        client,
        Transport::Udp,
        7,
        &mut out,
    );
    let Some(outcome) = outcome else {
        panic!("an ECS query was dropped: {query:02x?} (input {data:02x?})");
    };
    assert_eq!(
        outcome.rcode,
        wire::Rcode::NoError,
        "query {query:02x?} (input {data:02x?})"
    );
    let reply = match Message::from_vec(&out) {
        Ok(reply) => reply,
        Err(err) => panic!("reply does not decode: {err}: {out:02x?}"),
    };
    let mut records: Vec<String> = reply.answers.iter().map(|r| r.data.to_string()).collect();
    records.sort();
    let scope = reply
        .edns
        .as_ref()
        .and_then(|edns| match edns.option(EdnsCode::Subnet) {
            Some(EdnsOption::Subnet(subnet)) => Some(subnet.scope_prefix()),
            _ => None,
        });
    assert!(scope.is_some(), "ECS not echoed: {out:02x?}");
    (records, scope)
}

/// `geoip_csv`: text through `geo::build_mmdb_from_csv` in the layout the
/// first byte picks; what builds must load back through the database
/// loader (which normalises subdivisions to ISO 3166-2), and every
/// subdivision code it finds belongs to the location's country. Errors
/// name a line of the text.
pub fn fuzz_geoip_csv(data: &[u8]) {
    let Some((&selector, text)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let (layout, fields) = if selector & 1 == 0 {
        (gslb::geo::Layout::MaxMind, gslb::geo::FieldPaths::maxmind())
    } else {
        (gslb::geo::Layout::Flat, gslb::geo::FieldPaths::flat())
    };
    let lines = text.lines().count().max(1);
    let bytes = match gslb::geo::build_mmdb_from_csv(text, layout, gslb::geo::BUILD_EPOCH) {
        Ok(bytes) => bytes,
        Err(gslb::geo::GeoError::DemoCsv { line, message }) => {
            assert!((1..=lines).contains(&line), "line {line}: {message}");
            return;
        }
        Err(gslb::geo::GeoError::MmdbWrite { .. }) => return,
        Err(other) => panic!("unexpected error: {other}"),
    };
    let table = match gslb::geo::LocationTable::from_bytes(bytes, Path::new("fuzz.mmdb"), &fields) {
        Ok(table) => table,
        // Rows with no field at all: a clear error, not a bug.
        Err(gslb::geo::GeoError::FieldsNotFound { .. }) => return,
        Err(err) => panic!("a database gslb wrote does not load: {err}"),
    };
    for location in table.locations() {
        if let Some(code) = &location.subdivision {
            let country = location.country.as_deref().unwrap_or("");
            assert!(
                code.starts_with(country) && code.get(2..3) == Some("-"),
                "subdivision {code} outside country {country:?}"
            );
        }
    }
}

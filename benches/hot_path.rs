//! Hot-path micro-benchmarks (criterion): decode a query, locate a client,
//! run each policy, encode a reply, and the whole `handle_packet` seam
//! (and `handle_udp_query`, the same as a UDP worker calls it).
//!
//! Run with `cargo bench --bench hot_path`; see benches/README.md. The
//! snapshot is built from `benches/fixtures/bench.toml` (one zone, three
//! regions, a geo map over `geoip/demo-city.mmdb`, ECS on).

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use criterion::{Criterion, criterion_group, criterion_main};

use gslb::control::Control;
use gslb::dns::answer::{Outcome, Transport, handle_packet_traced};
use gslb::dns::reply_buffer::UdpReply;
use gslb::dns::served::{Served, handle_packet, handle_udp_query};
use gslb::dns::udp_batch::UDP_QUERY_MAX;
use gslb::dns::wire::{self, ReplyEdns, ReplyWriter, Section};
use gslb::health::HealthView;
use gslb::policy::{self, ClientAddress, Family};
use gslb::snapshot::{Snapshot, SnapshotSource};

#[path = "support/queries.rs"]
mod queries;

/// Rotating inputs: a power of two so the index is a mask, not a division.
/// A whole-packet handler: `handle_packet`, or the general path alone.
type Handler = for<'s> fn(
    &'s Served,
    &HealthView,
    &[u8],
    IpAddr,
    Transport,
    u64,
    &mut Vec<u8>,
) -> Option<Outcome<'s>>;

const ROTATION: usize = 1024;

fn build_snapshot() -> (
    Control,
    std::sync::Arc<Snapshot>,
    std::sync::Arc<HealthView>,
) {
    let source = SnapshotSource {
        config_path: queries::fixture_config(),
        extra_zones: Vec::new(),
    };
    let (control, _) =
        Control::start(source).unwrap_or_else(|errors| panic!("bench config: {errors}"));
    let snapshot = control.snapshot();
    let health = control.health.view_arc();
    (control, snapshot, health)
}

fn service_index(snapshot: &Snapshot, name: &str) -> usize {
    snapshot
        .services
        .iter()
        .position(|s| s.name.trim_end_matches('.') == name)
        .unwrap_or_else(|| panic!("service {name} not in the bench config"))
}

fn clients() -> Vec<ClientAddress> {
    queries::ecs_clients(ROTATION)
        .into_iter()
        .map(|(address, prefix_len)| ClientAddress::subnet(address, prefix_len.min(24)))
        .collect()
}

fn bench_wire(c: &mut Criterion) {
    let ecs = queries::query(
        1,
        "www.example.test",
        queries::A,
        Some(("81.2.69.0".parse().expect("literal"), 24)),
    );
    let plain = queries::query(1, "static.example.test", queries::A, None);
    let mut group = c.benchmark_group("wire");
    group.bench_function("parse_query/ecs", |b| {
        b.iter(|| wire::parse_query(black_box(&ecs)).is_ok())
    });
    group.bench_function("parse_query/plain", |b| {
        b.iter(|| wire::parse_query(black_box(&plain)).is_ok())
    });
    // Encoding alone: header + question, one A record, OPT with ECS echo.
    let query = wire::parse_query(&ecs).unwrap_or_else(|e| panic!("bench query: {e:?}"));
    let rdata: &[u8] = &[192, 0, 2, 10];
    let owner = query.qname.to_ascii_lowercase();
    let mut out = Vec::with_capacity(4096);
    group.bench_function("write_reply/a_ecs", |b| {
        b.iter(|| {
            let edns = query.edns.map(|e| ReplyEdns {
                udp_payload: 1232,
                client_subnet: e.client_subnet.map(|s| (s, 0)),
                dnssec_ok: e.dnssec_ok,
            });
            let mut reply = ReplyWriter::new(&mut out, black_box(&query), &owner, 1232, edns);
            reply.set_authoritative(true);
            reply.push_rrset(Section::Answer, &owner, wire::rtype::A, 60, [rdata]);
            reply.set_ecs_scope(24);
            reply.finish(wire::Rcode::NoError)
        })
    });
    group.finish();
}

fn bench_locate(c: &mut Criterion) {
    let (_control, snapshot, _) = build_snapshot();
    let clients = clients();
    let locations = snapshot
        .geo
        .locations
        .clone()
        .unwrap_or_else(|| panic!("bench config has a geoip database"));
    let www = &snapshot.services[service_index(&snapshot, "www.example.test")];
    let mut group = c.benchmark_group("locate");
    let mut i = 0usize;
    group.bench_function("location_table_lookup", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            locations.lookup(black_box(clients[i & (ROTATION - 1)].address))
        })
    });
    group.bench_function("region_table_lookup/geo", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            www.table
                .lookup(black_box(clients[i & (ROTATION - 1)].address))
        })
    });
    group.finish();
}

fn bench_policy(c: &mut Criterion) {
    let (_control, snapshot, health) = build_snapshot();
    let clients = clients();
    let mut group = c.benchmark_group("policy_select");
    for (label, name) in [
        ("geo", "www.example.test"),
        ("nearest", "near.example.test"),
        ("latency", "lat.example.test"),
        ("sticky", "sticky.example.test"),
    ] {
        let service = &snapshot.services[service_index(&snapshot, name)];
        let mut i = 0usize;
        group.bench_function(label, |b| {
            b.iter(|| {
                i = i.wrapping_add(1);
                let selection = policy::select(
                    service,
                    &health,
                    black_box(clients[i & (ROTATION - 1)]),
                    Family::V4,
                    i as u64,
                    None,
                );
                selection.count
            })
        });
    }
    group.finish();
}

/// What is timed must be a real answer (this also runs under `cargo test`):
/// NOERROR with at least one answer record.
fn assert_answered(name: &str, outcome: Option<Outcome<'_>>, reply: &[u8]) {
    let answers = reply
        .get(6..8)
        .map_or(0, |c| u16::from_be_bytes([c[0], c[1]]));
    assert!(
        outcome.is_some_and(|o| o.rcode == wire::Rcode::NoError) && answers >= 1,
        "{name}: no NOERROR answer in {reply:02x?}"
    );
}

fn bench_handle_packet(c: &mut Criterion) {
    let (control, _, health) = build_snapshot();
    // What a DNS worker answers from: the snapshot and its precompiled answers.
    let served = control.served.load_full();
    let source = IpAddr::V4(Ipv4Addr::new(81, 2, 69, 7));
    let static_a = queries::query(7, "static.example.test", queries::A, None);
    let geo = queries::query(7, "www.example.test", queries::A, None);
    let geo_ecs: Vec<Vec<u8>> = queries::ecs_clients(ROTATION)
        .into_iter()
        .enumerate()
        .map(|(n, ecs)| queries::query(n as u16, "www.example.test", queries::A, Some(ecs)))
        .collect();
    let mut out = Vec::with_capacity(4096);
    let mut group = c.benchmark_group("handle_packet");
    // The general path alone: what the precompiled answers save.
    let general: Handler = |served, health, packet, source, transport, seed, out| {
        handle_packet_traced(
            &served.snapshot,
            health,
            packet,
            source,
            transport,
            seed,
            out,
            None,
        )
    };
    let cases: [(&str, &[Vec<u8>], Handler); 4] = [
        ("static_a", std::slice::from_ref(&static_a), handle_packet),
        ("geo_no_ecs", std::slice::from_ref(&geo), handle_packet),
        ("geo_ecs_many_subnets", &geo_ecs, handle_packet),
        ("general_path/geo_ecs_many_subnets", &geo_ecs, general),
    ];
    let mut i = 0usize;
    for (name, packets, handler) in cases {
        for packet in packets.iter().take(8) {
            let outcome = handler(
                &served,
                &health,
                packet,
                source,
                Transport::Udp,
                1,
                &mut out,
            );
            assert_answered(name, outcome, &out);
        }
        // Packet counts are powers of two (1 or ROTATION): a mask, no division.
        let mask = packets.len() - 1;
        group.bench_function(name, |b| {
            b.iter(|| {
                i = i.wrapping_add(1);
                handler(
                    &served,
                    &health,
                    black_box(&packets[i & mask]),
                    source,
                    Transport::Udp,
                    i as u64,
                    &mut out,
                )
            })
        });
    }
    group.finish();

    // As a UDP worker answers: each query in a receive buffer, the reply
    // in the worker's fixed reply buffer.
    let received = |packets: &[Vec<u8>]| -> Vec<(Box<[u8; UDP_QUERY_MAX]>, usize)> {
        packets
            .iter()
            .map(|packet| {
                let mut buffer = Box::new([0u8; UDP_QUERY_MAX]);
                buffer[..packet.len()].copy_from_slice(packet);
                (buffer, packet.len())
            })
            .collect()
    };
    let mut reply = UdpReply::new();
    let mut group = c.benchmark_group("handle_udp_query");
    for (name, packets) in [
        ("static_a", received(std::slice::from_ref(&static_a))),
        ("geo_no_ecs", received(std::slice::from_ref(&geo))),
        ("geo_ecs_many_subnets", received(&geo_ecs)),
    ] {
        for (buffer, len) in packets.iter().take(8) {
            let outcome = handle_udp_query(&served, &health, buffer, *len, source, 1, &mut reply);
            assert_answered(name, outcome, reply.as_bytes());
        }
        let mask = packets.len() - 1;
        group.bench_function(name, |b| {
            b.iter(|| {
                i = i.wrapping_add(1);
                let (buffer, len) = &packets[i & mask];
                handle_udp_query(
                    &served,
                    &health,
                    black_box(buffer),
                    *len,
                    source,
                    i as u64,
                    &mut reply,
                )
                .is_some()
            })
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    bench_wire,
    bench_locate,
    bench_policy,
    bench_handle_packet
);
criterion_main!(benches);

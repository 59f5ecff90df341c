//! Instruction counts per query under callgrind (not a test: `#[ignore]`).
//!
//!     cargo test --release --test callgrind_harness --no-run
//!     CG_KIND=geo_ecs valgrind --tool=callgrind \
//!         --toggle-collect='callgrind_harness::run_one' \
//!         target/release/deps/callgrind_harness-HASH --ignored --exact run
//!
//! Divide the total by `CG_N` (default 10,000). With `CG_RECORD=1` each
//! query is also recorded in the metrics, as the UDP loop does. With
//! `CG_DNSSEC=1` the zone is signed (a fresh key, `queries::signed_fixture_config`);
//! `CG_DO=0` / `CG_DO=1` give every query an OPT record without / with the
//! DO bit (the DNSSEC cost per query is the difference of the two). Kinds: `static_a`,
//! `geo_no_ecs` (source 81.2.69.7), `geo_ecs` (1,024 rotating subnets), the
//! same inputs as `benches/hot_path.rs`'s `handle_packet` group, answered
//! as the UDP loop answers them (`handle_udp_query`, the query in a receive
//! buffer, the reply in a fixed reply buffer).

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use gslb::control::Control;
use gslb::dns::answer::Transport;
use gslb::dns::reply_buffer::UdpReply;
use gslb::dns::served::{Served, handle_udp_query};
use gslb::dns::udp_batch::UDP_QUERY_MAX;
use gslb::health::HealthView;
use gslb::metrics::{QueryRecorder, View};
use gslb::snapshot::SnapshotSource;

#[path = "../benches/support/queries.rs"]
mod queries;

/// A query as the UDP loop has it: in a receive buffer, with its length.
type Received = (Box<[u8; UDP_QUERY_MAX]>, usize);

#[inline(never)]
fn run_one(
    served: &Served,
    health: &HealthView,
    (buffer, len): &Received,
    seed: u64,
    out: &mut UdpReply,
    recording: Option<(&mut QueryRecorder, &View)>,
) -> usize {
    let source = IpAddr::V4(Ipv4Addr::new(81, 2, 69, 7));
    let outcome = handle_udp_query(served, health, buffer, *len, source, seed, out);
    if let Some((recorder, view)) = recording {
        recorder.record(
            view,
            &served.snapshot,
            &buffer[..*len],
            source,
            outcome.as_ref(),
        );
    }
    outcome.map_or(0, |_| out.as_bytes().len())
}

#[test]
#[ignore = "run under callgrind, see the module doc"]
fn run() {
    let signed_dir = std::env::temp_dir().join(format!("gslb-cg-{}", std::process::id()));
    let config_path = if std::env::var("CG_DNSSEC").is_ok_and(|v| v == "1") {
        queries::signed_fixture_config(&signed_dir)
    } else {
        queries::fixture_config()
    };
    let dnssec_ok = match std::env::var("CG_DO").as_deref() {
        Ok("1") => Some(true),
        Ok("0") => Some(false),
        _ => None,
    };
    let source = SnapshotSource {
        config_path,
        extra_zones: Vec::new(),
    };
    let (control, _) = Control::start(source).unwrap_or_else(|errors| panic!("{errors}"));
    let kind = std::env::var("CG_KIND").unwrap_or_else(|_| "static_a".into());
    let n: usize = std::env::var("CG_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let packets: Vec<Vec<u8>> = match kind.as_str() {
        "static_a" => vec![queries::query_edns(
            7,
            "static.example.test",
            queries::A,
            None,
            dnssec_ok,
        )],
        "geo_no_ecs" => vec![queries::query_edns(
            7,
            "www.example.test",
            queries::A,
            None,
            dnssec_ok,
        )],
        "geo_ecs" => queries::ecs_clients(1024)
            .into_iter()
            .enumerate()
            .map(|(i, ecs)| {
                queries::query_edns(
                    i as u16,
                    "www.example.test",
                    queries::A,
                    Some(ecs),
                    dnssec_ok,
                )
            })
            .collect(),
        other => panic!("unknown CG_KIND {other}"),
    };
    let served = control.served.load_full();
    let health = control.health.view_arc();
    let recording = std::env::var("CG_RECORD").is_ok_and(|v| v == "1");
    let mut recorder = control
        .metrics
        .recorder(Transport::Udp, control.query_log.clone());
    let view = recorder.view(&served.snapshot);
    let packets: Vec<Received> = packets
        .iter()
        .map(|packet| {
            let mut buffer = Box::new([0u8; UDP_QUERY_MAX]);
            buffer[..packet.len()].copy_from_slice(packet);
            (buffer, packet.len())
        })
        .collect();
    let mut out = UdpReply::new();
    let mut total = 0usize;
    for i in 0..n {
        total += run_one(
            &served,
            &health,
            black_box(&packets[i % packets.len()]),
            i as u64,
            &mut out,
            recording.then_some((&mut recorder, &*view)),
        );
    }
    assert!(total > 0);
    let _ = std::fs::remove_dir_all(&signed_dir);
}

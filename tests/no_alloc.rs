//! The query path allocates nothing: `handle_packet`, and the UDP loop's
//! `handle_udp_query`, are run under a global allocator that counts allocations made by the current thread, after one
//! warm-up call (so the reused reply buffer has its capacity).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::{IpAddr, Ipv4Addr};

use gslb::control::Control;
use gslb::dns::answer::Transport;
use gslb::dns::reply_buffer::UdpReply;
use gslb::dns::served::{handle_packet, handle_udp_query};
use gslb::dns::udp_batch::UDP_QUERY_MAX;
use gslb::dns::wire::Rcode;
use gslb::snapshot::SnapshotSource;

#[path = "../benches/support/queries.rs"]
mod queries;

/// Counts allocations (alloc, alloc_zeroed, realloc) per thread, then
/// forwards to the system allocator.
struct CountingAllocator;

thread_local! {
    // `const` initialiser: no lazy initialisation, no destructor, so reading
    // it from inside the allocator never allocates or recurses.
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count_one() {
    // `try_with`: during thread teardown the slot may be gone; not counting then is fine.
    let _ = ALLOCATIONS.try_with(|count| count.set(count.get() + 1));
}

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged, so `System`'s guarantees hold; counting touches only a
// thread-local `Cell<u64>`, which neither allocates nor panics.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: same contract as the caller's (non-zero size layout).
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout` (all our paths forward to it).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        // SAFETY: as for `dealloc`; `new_size` is the caller's, non-zero.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

/// Runs each packet once to warm up, then again counting allocations;
/// returns the count for each packet and checks its rcode.
fn count_allocations(cases: &[(&str, Vec<u8>, Rcode)]) -> Vec<(String, u64)> {
    count_allocations_with(queries::fixture_config(), |_| {}, cases)
}

/// [`count_allocations`] on the configuration at `config_path`, with
/// `prepare` run on the control state first.
fn count_allocations_with(
    config_path: std::path::PathBuf,
    prepare: impl FnOnce(&Control),
    cases: &[(&str, Vec<u8>, Rcode)],
) -> Vec<(String, u64)> {
    let source = SnapshotSource {
        config_path,
        extra_zones: Vec::new(),
    };
    let (control, _) = Control::start(source).unwrap_or_else(|errors| panic!("{errors}"));
    prepare(&control);
    let client = IpAddr::V4(Ipv4Addr::new(81, 2, 69, 7));
    let mut out = Vec::with_capacity(4096);
    let mut received = Box::new([0u8; UDP_QUERY_MAX]);
    let mut udp_reply = UdpReply::new();
    let mut counts = Vec::new();
    for (label, packet, want) in cases {
        let served = control.served.load();
        let health = control.health.view();
        let warm = handle_packet(
            &served,
            &health,
            packet,
            client,
            Transport::Udp,
            1,
            &mut out,
        );
        assert_eq!(warm.map(|o| o.rcode), Some(*want), "{label}");
        let before = allocations();
        for seed in 0..64 {
            // As the UDP loop does: load the served state and the health view
            // (lock-free), answer.
            let served = control.served.load();
            let health = control.health.view();
            let outcome = handle_packet(
                &served,
                &health,
                packet,
                client,
                Transport::Udp,
                seed,
                &mut out,
            );
            assert_eq!(outcome.map(|o| o.rcode), Some(*want), "{label}");
            // And as it really does: the query in its receive buffer, the
            // reply in its fixed buffer.
            received[..packet.len()].copy_from_slice(packet);
            let outcome = handle_udp_query(
                &served,
                &health,
                &received,
                packet.len(),
                client,
                seed,
                &mut udp_reply,
            );
            assert_eq!(outcome.map(|o| o.rcode), Some(*want), "{label} (UDP)");
        }
        let allocated = allocations() - before;
        counts.push((label.to_string(), allocated));
    }
    counts
}

#[test]
fn counting_allocator_sees_allocations() {
    let before = allocations();
    let v: Vec<u8> = std::hint::black_box(Vec::with_capacity(16));
    drop(v);
    assert!(allocations() > before);
}

#[test]
fn handle_packet_does_not_allocate() {
    let mut formerr = queries::query(9, "www.example.test", queries::A, None);
    formerr[5] = 2; // QDCOUNT 2 with one question: FORMERR
    let mut cases = vec![
        (
            "static A",
            queries::query(1, "static.example.test", queries::A, None),
            Rcode::NoError,
        ),
        (
            "geo A, no ECS",
            queries::query(2, "www.example.test", queries::A, None),
            Rcode::NoError,
        ),
        (
            "geo AAAA, no ECS",
            queries::query(3, "www.example.test", queries::AAAA, None),
            Rcode::NoError,
        ),
        (
            "NXDOMAIN",
            queries::query(4, "nope.example.test", queries::A, None),
            Rcode::NxDomain,
        ),
        ("FORMERR", formerr, Rcode::FormErr),
    ];
    for (n, ecs) in queries::ecs_clients(32).into_iter().enumerate() {
        cases.push((
            "geo A with ECS",
            queries::query(100 + n as u16, "www.example.test", queries::A, Some(ecs)),
            Rcode::NoError,
        ));
    }
    for name in ["near", "lat", "sticky"] {
        cases.push((
            name,
            queries::query(
                5,
                &format!("{name}.example.test"),
                queries::A,
                Some(("216.160.83.0".parse().expect("literal"), 24)),
            ),
            Rcode::NoError,
        ));
    }
    let counts = count_allocations(&cases);
    let allocating: Vec<_> = counts.iter().filter(|(_, n)| *n > 0).collect();
    assert!(
        allocating.is_empty(),
        "handle_packet allocated (64 calls each): {allocating:?}"
    );
}

#[test]
fn a_split_order_does_not_allocate() {
    // Issue 24: a load-aware service whose first pool is down answers
    // through the split the planner published (each query hashes its
    // client subnet into it).
    let dir = std::env::temp_dir().join(format!("gslb-no-alloc-split-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let zone =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/fixtures/example.test.zone");
    let config = dir.join("gslb.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[[zone]]
origin = "example.test"
file = "{}"
[pools.a]
capacity = 2.0
endpoints = [{{ address = "192.0.2.1" }}]
[pools.b]
capacity = 3.0
endpoints = [{{ address = "192.0.2.2" }}, {{ address = "192.0.2.3" }}]
[pools.c]
capacity = 1.0
endpoints = [{{ address = "192.0.2.4" }}]
[services."www.example.test"]
policy = "failover"
pools = ["a", "b", "c"]
spill = "capacity"
"#,
            zone.display()
        ),
    )
    .expect("write config");
    let prepare = |control: &Control| {
        control
            .health
            .set_pool_override("a", gslb::health::Override::ForceDown);
        let snapshot = control.snapshot();
        let view = control.health.view_arc();
        let usable = |pool: &gslb::policy::Pool| gslb::load::pool_usable(pool, &view);
        let plans: Vec<_> = snapshot
            .services
            .iter()
            .enumerate()
            .filter_map(|(index, service)| {
                gslb::load::plan_service(service, &usable, &gslb::load::DemandLearner::default())
                    .map(|plan| (index, plan))
            })
            .collect();
        assert!(
            plans
                .iter()
                .any(|(_, p)| p.splits.iter().any(|s| !s.is_none()))
        );
        control
            .health
            .set_splits(gslb::load::published_splits(&snapshot.services, &plans));
    };
    let cases: Vec<_> = queries::ecs_clients(32)
        .into_iter()
        .enumerate()
        .map(|(n, ecs)| {
            (
                "split A with ECS",
                queries::query(200 + n as u16, "www.example.test", queries::A, Some(ecs)),
                Rcode::NoError,
            )
        })
        .collect();
    let counts = count_allocations_with(config, prepare, &cases);
    let _ = std::fs::remove_dir_all(&dir);
    let allocating: Vec<_> = counts.iter().filter(|(_, n)| *n > 0).collect();
    assert!(
        allocating.is_empty(),
        "a split answer allocated (64 calls each): {allocating:?}"
    );
}

#[test]
fn signed_answers_to_do_queries_do_not_allocate() {
    // Issue 20: with the zone signed, DO queries for static names and
    // one-endpoint service answers copy signatures made at build; nothing
    // is signed (or allocated) per query.
    let dir = std::env::temp_dir().join(format!("gslb-no-alloc-signed-{}", std::process::id()));
    let config = queries::signed_fixture_config(&dir);
    let dnssec_ok = Some(true);
    let mut cases = vec![
        (
            "static A, DO",
            queries::query_edns(1, "static.example.test", queries::A, None, dnssec_ok),
            Rcode::NoError,
        ),
        (
            "geo A, DO",
            queries::query_edns(2, "www.example.test", queries::A, None, dnssec_ok),
            Rcode::NoError,
        ),
        (
            "geo AAAA, DO",
            queries::query_edns(3, "www.example.test", queries::AAAA, None, dnssec_ok),
            Rcode::NoError,
        ),
    ];
    for (n, ecs) in queries::ecs_clients(32).into_iter().enumerate() {
        cases.push((
            "geo A with ECS, DO",
            queries::query_edns(
                100 + n as u16,
                "www.example.test",
                queries::A,
                Some(ecs),
                dnssec_ok,
            ),
            Rcode::NoError,
        ));
    }
    for name in ["near", "lat", "sticky"] {
        cases.push((
            name,
            queries::query_edns(
                5,
                &format!("{name}.example.test"),
                queries::A,
                Some(("216.160.83.0".parse().expect("literal"), 24)),
                dnssec_ok,
            ),
            Rcode::NoError,
        ));
    }
    let counts = count_allocations_with(config.clone(), |_| {}, &cases);
    // The answers do carry their signature: one A and its RRSIG.
    let source = SnapshotSource {
        config_path: config,
        extra_zones: Vec::new(),
    };
    let (control, _) = Control::start(source).unwrap_or_else(|errors| panic!("{errors}"));
    let mut out = Vec::new();
    for (label, packet, _) in &cases {
        handle_packet(
            &control.served.load(),
            &control.health.view(),
            packet,
            IpAddr::V4(Ipv4Addr::new(81, 2, 69, 7)),
            Transport::Udp,
            1,
            &mut out,
        );
        // ANCOUNT: the one record each of these answers holds, and its RRSIG.
        let answers = out.get(6..8).map(|c| u16::from_be_bytes([c[0], c[1]]));
        assert_eq!(answers, Some(2), "{label}: {out:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
    let allocating: Vec<_> = counts.iter().filter(|(_, n)| *n > 0).collect();
    assert!(
        allocating.is_empty(),
        "a signed answer allocated (64 calls each): {allocating:?}"
    );
}

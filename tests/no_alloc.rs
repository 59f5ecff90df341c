//! The query path allocates nothing: `handle_packet`, and the UDP loop's
//! `handle_udp_query`, are run under a global allocator that counts allocations made by the current thread, after one
//! warm-up call (so the reused reply buffer has its capacity).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::{IpAddr, Ipv4Addr};

use gslb::control::Control;
use gslb::dns::answer::{Transport, handle_packet, handle_udp_query};
use gslb::dns::reply_buffer::UdpReply;
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
    let source = SnapshotSource {
        config_path: queries::fixture_config(),
        extra_zones: Vec::new(),
    };
    let (control, _) = Control::start(source).unwrap_or_else(|errors| panic!("{errors}"));
    let client = IpAddr::V4(Ipv4Addr::new(81, 2, 69, 7));
    let mut out = Vec::with_capacity(4096);
    let mut received = Box::new([0u8; UDP_QUERY_MAX]);
    let mut udp_reply = UdpReply::new();
    let mut counts = Vec::new();
    for (label, packet, want) in cases {
        let snapshot = control.snapshot.load();
        let health = control.health.view();
        let warm = handle_packet(
            &snapshot,
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
            // As the UDP loop does: load the snapshot and the health view
            // (lock-free), answer.
            let snapshot = control.snapshot.load();
            let health = control.health.view();
            let outcome = handle_packet(
                &snapshot,
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
                &snapshot,
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

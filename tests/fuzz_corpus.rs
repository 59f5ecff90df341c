//! Replays the committed fuzz corpora (`fuzz/corpus/<target>/`) through the
//! same harness functions the cargo-fuzz targets call, so `cargo test`
//! exercises every seed without cargo-fuzz or a nightly compiler; then
//! mutates each packet seed a few hundred times with a fixed-seed PRNG (a
//! small, bounded in-process fuzzer for the query handler).
//!
//! The harness lives in `fuzz/src/lib.rs` and is included here as a module,
//! so both run exactly the same assertions.

mod common;

#[path = "../fuzz/src/lib.rs"]
mod harness;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use common::Xorshift;

/// Mutations tried per packet seed by the in-process fuzzer.
const MUTATIONS_PER_SEED: usize = 300;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// Every file of one target's corpus, sorted by name.
fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = fuzz_dir().join("corpus").join(target);
    let mut files: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", dir.display()))
        .map(|entry| entry.expect("corpus directory entry").path())
        .filter(|path| path.is_file())
        .map(|path| {
            let bytes = std::fs::read(&path).expect("read corpus file");
            (path, bytes)
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} has no seeds", dir.display());
    files
}

/// Runs `check` on every input, collecting which ones panicked (with the
/// panic message) so one failure does not hide the others.
fn replay(inputs: &[(PathBuf, Vec<u8>)], check: impl Fn(&[u8])) {
    let mut failures = Vec::new();
    for (path, bytes) in inputs {
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| check(bytes))) {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failures.push(format!("{}: {message}", path.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} input(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_target_has_a_committed_corpus() {
    for target in harness::TARGETS {
        assert!(!corpus(target).is_empty());
    }
}

#[test]
fn packet_corpus_replays_cleanly() {
    let snapshot = harness::packet_snapshot(&harness::packet_fixture_config(&fuzz_dir()));
    replay(&corpus("packet"), |bytes| {
        harness::fuzz_packet(&snapshot, bytes)
    });
}

#[test]
fn config_corpus_replays_cleanly() {
    replay(&corpus("config"), harness::fuzz_config);
}

#[test]
fn zone_corpus_replays_cleanly() {
    replay(&corpus("zone"), harness::fuzz_zone);
}

#[test]
fn latency_corpus_replays_cleanly() {
    replay(&corpus("latency"), harness::fuzz_latency);
}

#[test]
fn answer_corpus_replays_cleanly() {
    let snapshot = harness::packet_snapshot(&harness::packet_fixture_config(&fuzz_dir()));
    replay(&corpus("answer"), |bytes| {
        harness::fuzz_answer(&snapshot, bytes)
    });
}

#[test]
fn geoip_csv_corpus_replays_cleanly() {
    replay(&corpus("geoip_csv"), harness::fuzz_geoip_csv);
}

/// Issue 18: a bounded in-process fuzzer for the ECS answer path: random
/// services, families, source prefixes and addresses (biased towards the
/// fixture's networks), each checked for an honest scope.
#[test]
fn random_ecs_queries_get_honest_scopes() {
    let snapshot = harness::packet_snapshot(&harness::packet_fixture_config(&fuzz_dir()));
    let mut rng = Xorshift::new(0x00ec_5c0e);
    let networks: [&[u8]; 6] = [
        &[81, 2, 69],
        &[216, 160, 83],
        &[10, 1],
        &[0x20, 0x01, 0x02, 0x18],
        &[89, 160, 20],
        &[],
    ];
    let mut inputs = Vec::new();
    for round in 0..3_000 {
        let mut input = vec![rng.byte(), rng.byte(), rng.byte()];
        let start = networks[rng.below(networks.len())];
        input.extend_from_slice(start);
        for _ in 0..rng.below(36) {
            input.push(rng.byte());
        }
        inputs.push((PathBuf::from(format!("random-ecs-{round}")), input));
    }
    replay(&inputs, |bytes| harness::fuzz_answer(&snapshot, bytes));
}

/// A bounded mutational fuzzer: bit flips, byte overwrites, truncation,
/// duplication and insertion applied to each packet seed, deterministically.
#[test]
fn mutated_packet_seeds_hold_the_handler_invariants() {
    let snapshot = harness::packet_snapshot(&harness::packet_fixture_config(&fuzz_dir()));
    let mut rng = Xorshift::new(0x6f75_7a7a);
    let mut inputs = Vec::new();
    for (path, seed) in corpus("packet") {
        for round in 0..MUTATIONS_PER_SEED {
            let mut packet = seed.clone();
            for _ in 0..1 + rng.below(4) {
                mutate(&mut packet, &mut rng);
            }
            inputs.push((path.with_extension(format!("mutation-{round}")), packet));
        }
    }
    replay(&inputs, |bytes| harness::fuzz_packet(&snapshot, bytes));
}

fn mutate(packet: &mut Vec<u8>, rng: &mut Xorshift) {
    let len = packet.len();
    match rng.below(6) {
        0 if len > 0 => {
            let at = rng.below(len);
            packet[at] ^= 1 << rng.below(8);
        }
        1 if len > 0 => {
            let at = rng.below(len);
            packet[at] = rng.byte();
        }
        2 if len > 0 => packet.truncate(rng.below(len)),
        3 => {
            let at = rng.below(len + 1);
            packet.insert(at, rng.byte());
        }
        4 if len > 2 => {
            // Duplicate a slice: repeated records, labels, options.
            let start = rng.below(len);
            let end = (start + 1 + rng.below(32)).min(len);
            let copy = packet[start..end].to_vec();
            let at = rng.below(len + 1);
            packet.splice(at..at, copy);
        }
        _ if len > 12 => {
            // Interesting values in the header counts and lengths.
            let at = rng.below(len - 1);
            let value: u16 = [0, 1, 2, 0xff, 0x3f, 0xc00c, 0xffff][rng.below(7)];
            packet[at..at + 2].copy_from_slice(&value.to_be_bytes());
        }
        _ => packet.push(rng.byte()),
    }
}

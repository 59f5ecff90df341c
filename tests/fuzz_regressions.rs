//! Regressions found by fuzzing and by the chaos drill, one test per
//! finding, each citing where it was found. Tests of open bugs are
//! `#[ignore = "bug: ..."]` until the fix lands; run them with
//! `cargo test --test fuzz_regressions -- --ignored`.

mod common;

use common::{TempDir, run_gslb};

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

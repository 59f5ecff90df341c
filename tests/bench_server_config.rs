//! Smoke run of the whole-server benchmark's gslb side, which CI does not
//! run (it needs gdnsd, dnsperf and pinned cores): `benches/server.sh
//! --configs` writes the configuration it benchmarks, `gslb check` accepts
//! it, and a server started on it answers the static name, and the geo
//! service per client subnet by the same continent map gdnsd is given.
//!
//! The script needs the shared bench harness and MaxMind's test database
//! next to the repository; without them the test prints why and skips.

mod common;

use std::path::Path;
use std::process::Command;

use common::{GslbServer, TempDir, dig, run_gslb};

#[test]
fn benchmark_configuration_checks_and_routes_by_continent() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let shared = root.join("../shared");
    for needed in [
        "bench/lib/common.sh",
        "bench/lib/gen_queries.py",
        "geoip/GeoLite2-City-Test.mmdb",
    ] {
        if !shared.join(needed).exists() {
            println!("skipping: {} not found", shared.join(needed).display());
            return;
        }
    }
    let dir = TempDir::new("bench-configs");
    let written = Command::new("bash")
        .arg(root.join("benches/server.sh"))
        .arg("--configs")
        .arg(dir.path())
        .output()
        .expect("run bash benches/server.sh");
    assert!(
        written.status.success(),
        "server.sh --configs failed:\n{}{}",
        String::from_utf8_lossy(&written.stdout),
        String::from_utf8_lossy(&written.stderr)
    );
    let config = dir.path().join("gslb/gslb.toml");
    let config = config.to_str().expect("utf-8 temp path");

    let checked = run_gslb(&["check", "-c", config]);
    assert_eq!(checked.code(), Some(0), "{}", checked.stderr);

    // Its own listen and API addresses are fixed ports: override both.
    let server = GslbServer::start(&["-c", config, "--api", "127.0.0.1:0"]);
    let static_a = dig(server.addr(), &["static.example.test", "A"]);
    assert_eq!(static_a.sorted_rdata(), ["192.0.2.1"], "{}", static_a.raw);
    // GB (Europe) → eu, US (North America) → us, CN (Asia) → ap, and a
    // network the database does not know → the default order's first, eu.
    // (The test database only knows some addresses of its networks.)
    for (subnet, expected) in [
        ("81.2.69.142/32", "192.0.2.10"),
        ("216.160.83.56/32", "192.0.2.20"),
        ("175.16.199.0/24", "192.0.2.30"),
        ("192.0.2.0/24", "192.0.2.10"),
    ] {
        let subnet_arg = format!("+subnet={subnet}");
        let reply = dig(server.addr(), &["www.example.test", "A", &subnet_arg]);
        assert_eq!(reply.sorted_rdata(), [expected], "{subnet}:\n{}", reply.raw);
    }
}

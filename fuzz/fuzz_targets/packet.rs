//! Raw bytes through the whole query handler (UDP and TCP); see
//! `gslb_fuzz::fuzz_packet` for what is asserted.
#![no_main]

use std::path::Path;
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;

/// Built once per process from `fixtures/packet.toml`.
static SNAPSHOT: LazyLock<gslb_fuzz::PacketFixture> = LazyLock::new(|| {
    gslb_fuzz::packet_snapshot(&gslb_fuzz::packet_fixture_config(Path::new(env!(
        "CARGO_MANIFEST_DIR"
    ))))
});

fuzz_target!(|data: &[u8]| gslb_fuzz::fuzz_packet(&SNAPSHOT, data));

//! Arbitrary text through gslb's latency parser; see `gslb_fuzz::fuzz_latency`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| gslb_fuzz::fuzz_latency(data));

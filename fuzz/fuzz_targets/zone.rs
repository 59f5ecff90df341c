//! Arbitrary text through gslb's zone parser; see `gslb_fuzz::fuzz_zone`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| gslb_fuzz::fuzz_zone(data));

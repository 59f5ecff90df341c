//! Arbitrary text through gslb's config parser; see `gslb_fuzz::fuzz_config`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| gslb_fuzz::fuzz_config(data));

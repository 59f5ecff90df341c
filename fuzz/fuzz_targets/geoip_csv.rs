//! CSV sources through `gslb geoip build`'s writer (both layouts) and back
//! through the database loader; see `gslb_fuzz::fuzz_geoip_csv`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| gslb_fuzz::fuzz_geoip_csv(data));

//! gslb: an authoritative DNS server that answers service names per client
//! from GeoIP, latency, weights and health.
#![forbid(unsafe_code)]

pub mod config;
pub mod dns;
pub mod geo;
pub mod snapshot;
pub mod zone;

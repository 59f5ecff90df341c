//! gslb: an authoritative DNS server that answers service names per client
//! from GeoIP, latency, weights and health.
// Only `dns::udp_batch` (batched socket I/O) allows `unsafe`, on its own.
#![deny(unsafe_code)]

pub mod api;
pub mod cluster;
pub mod config;
pub mod control;
pub mod diff;
pub mod dns;
pub mod dnssec;
pub mod events;
pub mod explain;
pub mod fleet;
pub mod geo;
pub mod hash;
pub mod health;
pub mod load;
pub mod metrics;
pub mod operator;
pub mod policy;
pub mod querylog;
pub mod snapshot;
pub mod transfer;
pub mod wire;
pub mod zone;

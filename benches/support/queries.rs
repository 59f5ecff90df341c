//! Builds DNS query packets for the hot-path benchmarks and the allocation
//! test (included by both with `#[path]`): plain queries, EDNS queries with
//! an RFC 7871 Client Subnet option, and a reproducible set of client
//! subnets spread over the networks of `geoip/demo-city.mmdb`.

#![allow(dead_code)]

use std::net::IpAddr;

/// Record type A.
pub const A: u16 = 1;
/// Record type AAAA.
pub const AAAA: u16 = 28;

/// The configuration the benchmarks and the allocation test build a snapshot from.
pub fn fixture_config() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/fixtures/bench.toml")
}

/// A QUERY for `qname`/`qtype` class IN with RD set (as dnsperf sends it).
/// With `ecs`, the query carries an OPT record (payload 4096) whose Client
/// Subnet option holds `address` truncated to `prefix_len` bits.
pub fn query(id: u16, qname: &str, qtype: u16, ecs: Option<(IpAddr, u8)>) -> Vec<u8> {
    let mut packet = Vec::with_capacity(64);
    packet.extend_from_slice(&id.to_be_bytes());
    packet.extend_from_slice(&0x0100u16.to_be_bytes());
    packet.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, u8::from(ecs.is_some())]);
    for label in qname.trim_end_matches('.').split('.') {
        packet.push(label.len() as u8);
        packet.extend_from_slice(label.as_bytes());
    }
    packet.push(0);
    packet.extend_from_slice(&qtype.to_be_bytes());
    packet.extend_from_slice(&1u16.to_be_bytes());
    if let Some((address, prefix_len)) = ecs {
        let (family, octets): (u16, Vec<u8>) = match address {
            IpAddr::V4(a) => (1, a.octets().to_vec()),
            IpAddr::V6(a) => (2, a.octets().to_vec()),
        };
        let len = usize::from(prefix_len.div_ceil(8));
        let mut bytes = octets[..len].to_vec();
        // RFC 7871 §6: no address bits past the source prefix.
        if prefix_len % 8 != 0
            && let Some(last) = bytes.last_mut()
        {
            *last &= 0xff << (8 - prefix_len % 8);
        }
        let option_len = 4 + bytes.len() as u16;
        packet.push(0); // root owner
        packet.extend_from_slice(&41u16.to_be_bytes()); // OPT
        packet.extend_from_slice(&4096u16.to_be_bytes());
        packet.extend_from_slice(&[0, 0, 0, 0]);
        packet.extend_from_slice(&(4 + option_len).to_be_bytes());
        packet.extend_from_slice(&8u16.to_be_bytes()); // CLIENT-SUBNET
        packet.extend_from_slice(&option_len.to_be_bytes());
        packet.extend_from_slice(&family.to_be_bytes());
        packet.push(prefix_len);
        packet.push(0);
        packet.extend_from_slice(&bytes);
    }
    packet
}

/// `n` client subnets, reproducible: IPv4 /24s and /32s and IPv6 /56s drawn
/// from every network of the demo database (GB, SE, NL, US, CA, JP, AU, BR,
/// ZA), plus one in five from networks it does not know (default route).
pub fn ecs_clients(n: usize) -> Vec<(IpAddr, u8)> {
    // (network, prefix length of the network, prefix length sent)
    const NETS: &[(&str, u8, u8)] = &[
        ("81.2.69.0", 24, 32),
        ("89.160.20.0", 24, 24),
        ("2001:67c:2e8::", 48, 56),
        ("216.160.83.0", 24, 24),
        ("99.224.0.0", 11, 24),
        ("2001:218::", 32, 56),
        ("1.128.0.0", 11, 24),
        ("200.160.0.0", 20, 24),
        ("41.0.0.0", 11, 24),
        // Unknown to the database.
        ("198.18.0.0", 15, 24),
        ("2c0f:f000::", 20, 56),
    ];
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        state >> 16
    };
    (0..n)
        .map(|_| {
            let (net, net_len, sent_len) = NETS[(next() % NETS.len() as u64) as usize];
            let base: IpAddr = net.parse().expect("constant address literal");
            let r = u128::from(next()) << 64 | u128::from(next());
            let address = match base {
                IpAddr::V4(a) => {
                    let host_mask = u32::MAX.checked_shr(u32::from(net_len)).unwrap_or(0);
                    IpAddr::V4((u32::from(a) | (r as u32 & host_mask)).into())
                }
                IpAddr::V6(a) => {
                    let host_mask = u128::MAX.checked_shr(u32::from(net_len)).unwrap_or(0);
                    IpAddr::V6((u128::from(a) | (r & host_mask)).into())
                }
            };
            (address, sent_len)
        })
        .collect()
}

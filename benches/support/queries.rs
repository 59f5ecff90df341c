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
    query_edns(id, qname, qtype, ecs, None)
}

/// [`query`] with an OPT record also without ECS when `dnssec_ok` is
/// given, its DO bit set as asked (RFC 3225).
pub fn query_edns(
    id: u16,
    qname: &str,
    qtype: u16,
    ecs: Option<(IpAddr, u8)>,
    dnssec_ok: Option<bool>,
) -> Vec<u8> {
    let with_opt = ecs.is_some() || dnssec_ok.is_some();
    let do_flag = if dnssec_ok == Some(true) { 0x80 } else { 0 };
    let mut packet = Vec::with_capacity(64);
    packet.extend_from_slice(&id.to_be_bytes());
    packet.extend_from_slice(&0x0100u16.to_be_bytes());
    packet.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, u8::from(with_opt)]);
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
        packet.extend_from_slice(&[0, 0, do_flag, 0]);
        packet.extend_from_slice(&(4 + option_len).to_be_bytes());
        packet.extend_from_slice(&8u16.to_be_bytes()); // CLIENT-SUBNET
        packet.extend_from_slice(&option_len.to_be_bytes());
        packet.extend_from_slice(&family.to_be_bytes());
        packet.push(prefix_len);
        packet.push(0);
        packet.extend_from_slice(&bytes);
    } else if with_opt {
        packet.push(0);
        packet.extend_from_slice(&41u16.to_be_bytes());
        packet.extend_from_slice(&4096u16.to_be_bytes());
        packet.extend_from_slice(&[0, 0, do_flag, 0, 0, 0]);
    }
    packet
}

/// The benchmark configuration with its zone signed (DNSSEC) by a fresh
/// CSK: written to `dir` with the fixture's relative paths made absolute.
pub fn signed_fixture_config(dir: &std::path::Path) -> std::path::PathBuf {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/fixtures");
    let text = std::fs::read_to_string(fixture_config()).expect("read bench.toml");
    let key = gslb::dnssec::keys::generate(
        "example.test.",
        gslb::dnssec::keys::Algorithm::EcdsaP256Sha256,
        &dir.join("keys"),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64),
    )
    .expect("generate a key");
    let absolute = |name: &str| format!("{:?}", fixtures.join(name).display().to_string());
    let text = text
        .replace(
            "file = \"example.test.zone\"",
            &format!(
                "file = {}\ndnssec = true\ndnssec_keys = [{:?}]",
                absolute("example.test.zone"),
                key.display().to_string()
            ),
        )
        .replace(
            "\"../../geoip/demo-city.mmdb\"",
            &absolute("../../geoip/demo-city.mmdb"),
        )
        .replace("\"latency.csv\"", &absolute("latency.csv"));
    let path = dir.join("bench-signed.toml");
    std::fs::write(&path, text).expect("write the signed configuration");
    path
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

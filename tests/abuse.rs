//! Hostile and malformed packets against the real binary, over raw UDP and
//! TCP: oversized and truncated queries, compression-pointer loops, bad
//! names, bad EDNS, responses sent as queries, ANY and out-of-zone names.
//!
//! Each malformed packet must get FORMERR (or the documented rcode) or no
//! reply at all, never a crash; the server must answer a normal query
//! afterwards; and no UDP reply may exceed the query's advertised payload
//! (512 without EDNS). "No reply" is proven without waiting for a timeout:
//! a normal sentinel query follows on the same socket and its reply must
//! come with nothing for the dropped packet before it.
//!
//! Serves `fuzz/fixtures/packet.toml` (the packet fuzz target's fixture: the
//! demo zone with geo services and ECS, plus the core.test fixture zones).

mod common;

use std::net::{SocketAddr, UdpSocket};

use common::{
    GslbServer, QueryBuilder, Reply, ecs_option, parse_reply, rcode, rtype, tcp_connect, tcp_recv,
    tcp_send, udp_recv, udp_socket, wire_name,
};

const FIXTURE: &str = "fuzz/fixtures/packet.toml";
/// The fixture's `max_udp_payload`.
const MAX_UDP_PAYLOAD: usize = 1232;
/// Addresses of the `eu` pool, which answers clients in 81.2.69.0/24.
const EU_V4: [&str; 2] = ["192.0.2.10", "192.0.2.11"];
/// ID of sentinel queries; test packets use other IDs.
const SENTINEL_ID: u16 = 0x5e57;

fn start() -> GslbServer {
    GslbServer::start(&["-c", FIXTURE])
}

/// The geo service queried from a GB client network (ECS 81.2.69.0/24).
fn ecs_query(id: u16) -> Vec<u8> {
    QueryBuilder::new(id, "www.example.test", rtype::A)
        .edns(1232, 0, ecs_option(1, 24, 0, &[81, 2, 69]))
        .build()
}

fn sentinel() -> Vec<u8> {
    ecs_query(SENTINEL_ID)
}

/// Asserts that `reply` is a correct answer to [`ecs_query`].
#[track_caller]
fn assert_eu_answer(reply: &Reply) {
    assert_eq!(reply.rcode(), rcode::NOERROR, "{reply:?}");
    assert_eq!(reply.answer.len(), 1, "{reply:?}");
    let rdata = &reply.answer[0].rdata;
    let address = format!("{}.{}.{}.{}", rdata[0], rdata[1], rdata[2], rdata[3]);
    assert!(EU_V4.contains(&address.as_str()), "{address} is not in eu");
}

/// Largest reply allowed over UDP for `query` (RFC 6891 §6.2.3, §6.2.5:
/// values below 512 are treated as 512; we cap at our own payload size).
fn udp_limit(query: &[u8]) -> usize {
    let advertised = common::parse_reply(query)
        .and_then(|q| q.opt().map(|o| usize::from(o.class)))
        .map(|size| size.max(512));
    advertised.map_or(512, |size| size.min(MAX_UDP_PAYLOAD))
}

/// Sends `packet`, then a sentinel, on one socket; returns the reply to
/// `packet` if one came before the sentinel's. The sentinel must be answered.
fn udp_send_then_sentinel(socket: &UdpSocket, packet: &[u8]) -> Option<Vec<u8>> {
    socket.send(packet).expect("send UDP");
    socket.send(&sentinel()).expect("send sentinel");
    let mut reply_to_packet = None;
    loop {
        let bytes = udp_recv(socket).expect("the sentinel query was not answered");
        let reply = parse_reply(&bytes).expect("malformed reply");
        if reply.id == SENTINEL_ID && reply.questions.len() == 1 {
            assert_eu_answer(&reply);
            return reply_to_packet;
        }
        assert!(reply_to_packet.is_none(), "two replies to one packet");
        reply_to_packet = Some(bytes);
    }
}

/// Sends `packet` over UDP; returns its reply (checked: well-formed, same
/// ID, within the UDP size limit), or `None` when it was dropped.
#[track_caller]
fn udp_probe(server: SocketAddr, packet: &[u8]) -> Option<Reply> {
    let socket = udp_socket(server);
    let bytes = udp_send_then_sentinel(&socket, packet)?;
    let limit = udp_limit(packet);
    assert!(
        bytes.len() <= limit,
        "UDP reply of {} bytes exceeds {limit}",
        bytes.len()
    );
    let reply = parse_reply(&bytes).expect("malformed reply");
    assert!(reply.is_response());
    if packet.len() >= 2 {
        assert_eq!(reply.id, u16::from_be_bytes([packet[0], packet[1]]));
    }
    Some(reply)
}

/// Like [`udp_probe`], but over one fresh TCP connection.
#[track_caller]
fn tcp_probe(server: SocketAddr, packet: &[u8]) -> Option<Reply> {
    let mut stream = tcp_connect(server);
    tcp_send(&mut stream, packet);
    tcp_send(&mut stream, &sentinel());
    let mut reply_to_packet = None;
    loop {
        let bytes = tcp_recv(&mut stream).expect("the sentinel query was not answered over TCP");
        let reply = parse_reply(&bytes).expect("malformed TCP reply");
        if reply.id == SENTINEL_ID && reply.questions.len() == 1 {
            assert_eu_answer(&reply);
            return reply_to_packet;
        }
        assert!(reply_to_packet.is_none(), "two replies to one packet");
        reply_to_packet = Some(reply);
    }
}

/// The packet must get exactly `want` over UDP and TCP.
#[track_caller]
fn assert_rcode_both(server: SocketAddr, packet: &[u8], want: u16) -> Reply {
    let reply = udp_probe(server, packet).expect("no UDP reply");
    assert_eq!(reply.rcode(), want, "UDP: {reply:?}");
    let tcp = tcp_probe(server, packet).expect("no TCP reply");
    assert_eq!(tcp.rcode(), want, "TCP: {tcp:?}");
    reply
}

/// A header-only error reply: no question or records, OPT only if asked.
#[track_caller]
fn assert_bare(reply: &Reply) {
    assert!(
        reply.questions.is_empty() && reply.answer.is_empty(),
        "{reply:?}"
    );
    assert!(reply.authority.is_empty(), "{reply:?}");
    assert!(
        reply.additional.iter().all(|r| r.rtype == rtype::OPT),
        "{reply:?}"
    );
}

/// Header (ID, flags, counts) followed by `body`.
fn packet(id: u16, flags: u16, counts: [u16; 4], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
    for count in counts {
        out.extend_from_slice(&count.to_be_bytes());
    }
    out.extend_from_slice(body);
    out
}

/// A question for `name` (wire format) type A class IN.
fn question(name: &[u8]) -> Vec<u8> {
    let mut out = name.to_vec();
    out.extend_from_slice(&[0, 1, 0, 1]);
    out
}

/// A resource record with a raw owner.
fn record(owner: &[u8], rtype: u16, rdata: &[u8]) -> Vec<u8> {
    let mut out = owner.to_vec();
    out.extend_from_slice(&rtype.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    out.extend_from_slice(rdata);
    out
}

/// An OPT record (RFC 6891 §6.1.2).
fn opt(udp_payload: u16, version: u8, options: &[u8]) -> Vec<u8> {
    let mut out = vec![0];
    out.extend_from_slice(&rtype::OPT.to_be_bytes());
    out.extend_from_slice(&udp_payload.to_be_bytes());
    out.extend_from_slice(&[0, version, 0, 0]);
    out.extend_from_slice(&(options.len() as u16).to_be_bytes());
    out.extend_from_slice(options);
    out
}

// ---------------------------------------------------------------------------

#[test]
fn oversized_udp_queries_get_an_answer_or_nothing() {
    let server = start();
    let addr = server.addr();
    let valid = QueryBuilder::new(0x0a01, "www.example.test", rtype::A).build();
    // Valid header and question, then junk (not counted by any section):
    // trailing bytes are ignored, so the question is answered.
    for size in [600, 3000, 4096] {
        let mut query = valid.clone();
        query.resize(size, 0xa5);
        let reply = udp_probe(addr, &query).expect("a 3000-byte query with trailing junk");
        assert_eq!(reply.rcode(), rcode::NOERROR, "{size} bytes: {reply:?}");
        assert_eq!(reply.answer.len(), 1);
    }
    // The same junk counted as an additional record: FORMERR, header only.
    let mut counted = packet(
        0x0a02,
        0,
        [1, 0, 0, 1],
        &question(&wire_name("www.example.test")),
    );
    counted.resize(3000, 0xa5);
    let reply = udp_probe(addr, &counted).expect("FORMERR expected");
    assert_eq!(reply.rcode(), rcode::FORMERR);
    assert_bare(&reply);
    // Datagrams longer than the server's 4096-byte receive buffer arrive
    // truncated and are dropped, whatever they hold.
    for size in [4097, 9000, 65_000] {
        let mut query = valid.clone();
        query.resize(size, 0);
        assert!(udp_probe(addr, &query).is_none(), "{size} bytes answered");
    }
    let reply = common::udp_query(addr, &sentinel());
    assert_eu_answer(&reply);
}

#[test]
fn every_truncation_of_an_ecs_query_gets_formerr_or_nothing() {
    let server = start();
    let addr = server.addr();
    let full = ecs_query(0x7e01);
    let socket = udp_socket(addr);
    for len in 0..full.len() {
        let prefix = &full[..len];
        let reply = udp_send_then_sentinel(&socket, prefix);
        match (len < 12, reply) {
            (true, None) => {}
            (true, Some(bytes)) => panic!("{len}-byte packet answered: {bytes:02x?}"),
            (false, None) => panic!("{len}-byte truncation dropped, FORMERR expected"),
            (false, Some(bytes)) => {
                let reply = parse_reply(&bytes).expect("malformed reply");
                assert_eq!(reply.id, 0x7e01);
                assert_eq!(reply.rcode(), rcode::FORMERR, "{len} bytes: {reply:?}");
                assert_bare(&reply);
            }
        }
    }
    // Over TCP, all truncations on one connection, then the full query.
    let mut stream = tcp_connect(addr);
    for len in 0..full.len() {
        tcp_send(&mut stream, &full[..len]);
    }
    tcp_send(&mut stream, &full);
    let mut formerr = 0;
    loop {
        let bytes = tcp_recv(&mut stream).expect("TCP reply");
        let reply = parse_reply(&bytes).expect("malformed TCP reply");
        if reply.questions.len() == 1 {
            assert_eu_answer(&reply);
            break;
        }
        assert_eq!(reply.rcode(), rcode::FORMERR);
        formerr += 1;
    }
    assert_eq!(
        formerr,
        full.len() - 12,
        "one FORMERR per truncation of 12+ bytes"
    );
    assert_eu_answer(&common::udp_query(addr, &full));
}

#[test]
fn compression_pointer_loops_are_not_followed() {
    let server = start();
    let addr = server.addr();
    let www = question(&wire_name("www.example.test"));
    // The question may not be compressed at all (it is the first name).
    let self_pointer = packet(0x0c01, 0, [1, 0, 0, 0], &[0xc0, 0x0c, 0, 1, 0, 1]);
    let reply = assert_rcode_both(addr, &self_pointer, rcode::FORMERR);
    assert_bare(&reply);
    // A label followed by a pointer back to it: a loop if followed.
    let looped = packet(0x0c02, 0, [1, 0, 0, 0], &[1, b'a', 0xc0, 0x0c, 0, 1, 0, 1]);
    assert_rcode_both(addr, &looped, rcode::FORMERR);
    // Loops in answer and additional owners: pointers there are skipped,
    // never followed, so the question is answered normally.
    let at = 12 + www.len() as u8;
    for (counts, owner) in [
        ([1, 1, 0, 0], vec![0xc0, at]),           // points at itself
        ([1, 0, 0, 1], vec![0xc0, at]),           // same, in additional
        ([1, 0, 1, 0], vec![1, b'x', 0xc0, at]),  // label + pointer to itself
        ([1, 0, 0, 1], vec![0xc0, 0xff]),         // points past the end
        ([1, 1, 0, 0], vec![0xc0, at + 2, 0xc0]), // two pointers in a chain, then cut
    ] {
        let mut body = www.clone();
        body.extend(record(&owner, rtype::A, &[192, 0, 2, 1]));
        let query = packet(0x0c03, 0, counts, &body);
        let reply = udp_probe(addr, &query).expect("reply");
        assert!(
            [rcode::NOERROR, rcode::FORMERR].contains(&reply.rcode()),
            "{owner:02x?}: {reply:?}"
        );
        let tcp = tcp_probe(addr, &query).expect("TCP reply");
        assert_eq!(tcp.rcode(), reply.rcode());
    }
}

#[test]
fn overlong_labels_and_names_get_formerr() {
    let server = start();
    let addr = server.addr();
    // Length byte 64 (0x40: the reserved "extended label" type) and 0x80.
    for first in [64u8, 0x7f, 0x80, 0xbf] {
        let mut name = vec![first];
        name.extend(std::iter::repeat_n(b'a', usize::from(first & 0x3f)));
        name.extend(wire_name("example.test"));
        let query = packet(0x1a01, 0, [1, 0, 0, 0], &question(&name));
        let reply = assert_rcode_both(addr, &query, rcode::FORMERR);
        assert_bare(&reply);
    }
    // 63-octet labels are fine (NXDOMAIN in the zone).
    let ok = format!("{}.example.test", "a".repeat(63));
    let query = QueryBuilder::new(0x1a02, &ok, rtype::A).build();
    assert_rcode_both(addr, &query, rcode::NXDOMAIN);
    // 256 octets in wire format: one too many (RFC 1035 §2.3.4).
    let long = format!(
        "{}.{}.{}.{}.example.test",
        "a".repeat(63),
        "b".repeat(63),
        "c".repeat(63),
        "d".repeat(49)
    );
    assert_eq!(wire_name(&long).len(), 256);
    let query = QueryBuilder::new(0x1a03, &long, rtype::A).build();
    assert_rcode_both(addr, &query, rcode::FORMERR);
    // 255 exactly is allowed.
    let longest = format!(
        "{}.{}.{}.{}.example.test",
        "a".repeat(63),
        "b".repeat(63),
        "c".repeat(63),
        "d".repeat(48)
    );
    assert_eq!(wire_name(&longest).len(), 255);
    let query = QueryBuilder::new(0x1a04, &longest, rtype::A).build();
    assert_rcode_both(addr, &query, rcode::NXDOMAIN);
    // A name that runs off the end of the packet.
    let query = packet(0x1a05, 0, [1, 0, 0, 0], &[63, b'a', b'b']);
    assert_rcode_both(addr, &query, rcode::FORMERR);
}

#[test]
fn question_counts_other_than_one_get_formerr() {
    let server = start();
    let addr = server.addr();
    let www = question(&wire_name("www.example.test"));
    let mut two = www.clone();
    two.extend(question(&wire_name("example.test")));
    for (qdcount, body) in [
        (2u16, two.clone()),
        (0, Vec::new()),
        (0, www.clone()),
        (0xffff, two),
    ] {
        let query = packet(0x2b01, 0, [qdcount, 0, 0, 0], &body);
        let reply = assert_rcode_both(addr, &query, rcode::FORMERR);
        assert_bare(&reply);
    }
}

#[test]
fn many_additional_records_are_skipped_and_the_query_answered() {
    let server = start();
    let addr = server.addr();
    let mut body = question(&wire_name("www.example.test"));
    let junk = record(&[0], 16, b"\x03abc");
    for _ in 0..200 {
        body.extend(&junk);
    }
    body.extend(opt(1232, 0, &ecs_option(1, 24, 0, &[81, 2, 69])));
    let query = packet(0x3c01, 0, [1, 0, 0, 201], &body);
    assert!(query.len() < 4096, "{}", query.len());
    assert_eu_answer(&udp_probe(addr, &query).expect("reply"));
    // Over TCP the query may be far larger than any datagram.
    let mut body = question(&wire_name("www.example.test"));
    for _ in 0..3000 {
        body.extend(&junk);
    }
    body.extend(opt(1232, 0, &ecs_option(1, 24, 0, &[81, 2, 69])));
    let query = packet(0x3c02, 0, [1, 0, 0, 3001], &body);
    assert_eu_answer(&tcp_probe(addr, &query).expect("TCP reply"));
    // Counts larger than what is there: FORMERR.
    let query = packet(
        0x3c03,
        0,
        [1, 0, 0, 0xffff],
        &question(&wire_name("www.example.test")),
    );
    assert_rcode_both(addr, &query, rcode::FORMERR);
    let query = packet(
        0x3c04,
        0,
        [1, 0xffff, 0xffff, 0],
        &question(&wire_name("www.example.test")),
    );
    assert_rcode_both(addr, &query, rcode::FORMERR);
}

#[test]
fn unknown_edns_options_are_ignored() {
    let server = start();
    let addr = server.addr();
    let mut options = Vec::new();
    for (code, value) in [
        (65001u16, &b"abcd"[..]),
        (10, &[1u8; 8][..]),
        (3, &[][..]),
        (12, &[0u8; 40][..]),
    ] {
        options.extend_from_slice(&code.to_be_bytes());
        options.extend_from_slice(&(value.len() as u16).to_be_bytes());
        options.extend_from_slice(value);
    }
    options.extend(ecs_option(1, 24, 0, &[81, 2, 69]));
    let query = QueryBuilder::new(0x4d01, "www.example.test", rtype::A)
        .edns(1232, 0, options)
        .build();
    let reply = udp_probe(addr, &query).expect("reply");
    assert_eu_answer(&reply);
    let opt = reply.opt().expect("OPT in the reply");
    // Only ECS is echoed: 4 bytes of option header + 4 + 3 address bytes.
    assert_eq!(
        opt.rdata.len(),
        11,
        "unknown options echoed: {:02x?}",
        opt.rdata
    );
    assert_eu_answer(&tcp_probe(addr, &query).expect("TCP reply"));
}

#[test]
fn edns_version_1_gets_badvers() {
    let server = start();
    let addr = server.addr();
    let query = QueryBuilder::new(0x5e01, "www.example.test", rtype::A)
        .edns(1232, 1, Vec::new())
        .build();
    let reply = assert_rcode_both(addr, &query, rcode::BADVERS);
    let opt = reply.opt().expect("BADVERS needs an OPT (RFC 6891 §6.1.3)");
    assert_eq!((opt.ttl >> 16) & 0xff, 0, "we speak EDNS version 0");
    assert_eq!(
        reply.flags & 0x000f,
        0,
        "low rcode bits of BADVERS (16) are 0"
    );
}

#[test]
fn bad_client_subnet_options_get_formerr() {
    let server = start();
    let addr = server.addr();
    let mut two = ecs_option(1, 24, 0, &[81, 2, 69]);
    two.extend(ecs_option(1, 24, 0, &[81, 2, 69]));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("family 3", ecs_option(3, 24, 0, &[81, 2, 69])),
        ("scope in a query", ecs_option(1, 24, 16, &[81, 2, 69])),
        ("source past 32", ecs_option(1, 33, 0, &[81, 2, 69, 1, 0])),
        ("address too long", ecs_option(1, 16, 0, &[81, 2, 69])),
        ("address too short", ecs_option(1, 24, 0, &[81, 2])),
        ("stray bits", ecs_option(1, 23, 0, &[81, 2, 69])),
        ("v6 source past 128", ecs_option(2, 129, 0, &[0; 17])),
        ("two ECS options", two),
        ("option shorter than 4", vec![0, 8, 0, 2, 0, 1]),
        ("option length past the end", vec![0, 8, 0, 40, 0, 1, 24, 0]),
    ];
    for (what, options) in cases {
        let query = QueryBuilder::new(0x6f01, "www.example.test", rtype::A)
            .edns(1232, 0, options)
            .build();
        let reply = udp_probe(addr, &query).unwrap_or_else(|| panic!("{what}: no reply"));
        assert_eq!(reply.rcode(), rcode::FORMERR, "{what}: {reply:?}");
        assert_bare(&reply);
        assert!(
            reply.opt().is_some(),
            "{what}: an EDNS query's error carries OPT"
        );
    }
}

#[test]
fn responses_are_never_answered() {
    let server = start();
    let addr = server.addr();
    let mut query = ecs_query(0x7a01);
    query[2] |= 0x80;
    assert!(udp_probe(addr, &query).is_none(), "QR=1 answered over UDP");
    assert!(tcp_probe(addr, &query).is_none(), "QR=1 answered over TCP");
    // Also with a bad body and with every other flag set.
    let mut junk = packet(0x7a02, 0xffff, [9, 9, 9, 9], &[0xc0; 40]);
    assert!(udp_probe(addr, &junk).is_none());
    junk[2] = 0x80;
    assert!(tcp_probe(addr, &junk).is_none());
}

#[test]
fn any_is_answered_minimally_with_one_rrset() {
    let server = start();
    let addr = server.addr();
    for name in [
        "example.test",
        "ns1.example.test",
        "www.example.test",
        "big.core.test",
        "core.test",
    ] {
        let query = QueryBuilder::new(0x8b01, name, rtype::ANY)
            .edns(4096, 0, Vec::new())
            .build();
        for reply in [
            udp_probe(addr, &query).expect("reply"),
            tcp_probe(addr, &query).expect("TCP reply"),
        ] {
            assert_eq!(reply.rcode(), rcode::NOERROR, "{name}: {reply:?}");
            if reply.truncated() {
                // Too big for UDP (big.core.test): TC and no records; the
                // TCP reply of the same loop shows the one RRset.
                assert!(reply.answer.is_empty(), "{name}: {reply:?}");
                continue;
            }
            let types: std::collections::BTreeSet<u16> =
                reply.answer.iter().map(|r| r.rtype).collect();
            assert_eq!(
                types.len(),
                1,
                "{name}: one RRset (RFC 8482), got {types:?}"
            );
            assert!(
                reply.additional.iter().all(|r| r.rtype == rtype::OPT),
                "{name}: no additional data for ANY"
            );
        }
    }
}

#[test]
fn out_of_zone_names_are_refused_without_records() {
    let server = start();
    let addr = server.addr();
    for (name, qtype) in [
        ("example.com", rtype::ANY),
        (".", rtype::NS),
        ("com", rtype::ANY),
        ("test", rtype::SOA),
        ("www.example.org", rtype::A),
        ("xexample.test", rtype::TXT),
    ] {
        for query in [
            QueryBuilder::new(0x9c01, name, qtype).build(),
            QueryBuilder::new(0x9c02, name, qtype)
                .edns(4096, 0, ecs_option(1, 24, 0, &[81, 2, 69]))
                .build(),
        ] {
            for reply in [
                udp_probe(addr, &query).expect("reply"),
                tcp_probe(addr, &query).expect("TCP reply"),
            ] {
                assert_eq!(reply.rcode(), rcode::REFUSED, "{name}: {reply:?}");
                assert!(reply.answer.is_empty() && reply.authority.is_empty());
                assert!(reply.additional.iter().all(|r| r.rtype == rtype::OPT));
                assert!(!reply.authoritative());
            }
            let bytes = common::udp_exchange(addr, &query).expect("reply");
            assert!(
                bytes.len() <= query.len() + 11,
                "{name}: reply of {} bytes to a {}-byte query amplifies",
                bytes.len(),
                query.len()
            );
        }
    }
}

#[test]
fn udp_replies_never_exceed_the_advertised_payload() {
    let server = start();
    let addr = server.addr();
    let names = [
        ("big.core.test", 16u16),
        ("medium.core.test", 16),
        ("x.big.edge.test", rtype::A),
        ("core.test", rtype::ANY),
        ("lat.example.test", rtype::A),
        ("example.test", rtype::NS),
    ];
    for (name, qtype) in names {
        let mut queries = vec![QueryBuilder::new(0xad01, name, qtype).build()];
        for payload in [
            0u16, 100, 511, 512, 513, 600, 1000, 1232, 1233, 4096, 65_535,
        ] {
            queries.push(
                QueryBuilder::new(0xad02, name, qtype)
                    .edns(payload, 0, Vec::new())
                    .build(),
            );
            queries.push(
                QueryBuilder::new(0xad03, name, qtype)
                    .edns(
                        payload,
                        0,
                        ecs_option(2, 56, 0, &[0x20, 1, 2, 0x18, 0, 0, 0]),
                    )
                    .build(),
            );
        }
        for query in queries {
            // udp_probe asserts the size limit.
            let reply = udp_probe(addr, &query).expect("reply");
            assert!(
                [rcode::NOERROR, rcode::NXDOMAIN].contains(&reply.rcode()),
                "{name}: {reply:?}"
            );
            if reply.truncated() {
                // The complete answer comes over TCP.
                let tcp = tcp_probe(addr, &query).expect("TCP reply");
                assert!(!tcp.truncated());
            }
        }
    }
}

#[test]
fn junk_flood_leaves_the_server_answering() {
    let server = start();
    let addr = server.addr();
    let socket = udp_socket(addr);
    let mut rng = common::Xorshift::new(0xabad_cafe);
    let seed = ecs_query(0xee01);
    // Batches of 100, so neither side's socket buffer overflows and the
    // sentinel after each batch must be answered.
    for _ in 0..20 {
        for _ in 0..100 {
            let mut junk = seed.clone();
            for _ in 0..1 + rng.below(6) {
                let at = rng.below(junk.len());
                junk[at] = rng.byte();
            }
            junk.truncate(rng.below(junk.len() + 8).clamp(1, junk.len()));
            socket.send(&junk).expect("send junk");
        }
        socket.send(&sentinel()).expect("send sentinel");
        loop {
            let bytes = udp_recv(&socket).expect("the server stopped answering");
            if let Some(reply) = parse_reply(&bytes)
                && reply.id == SENTINEL_ID
                && reply.questions.len() == 1
            {
                assert_eu_answer(&reply);
                break;
            }
        }
    }
}

//! Answers one query packet from a snapshot: the seam between sockets and
//! logic. Takes the query's bytes and the client's address, writes the
//! reply's bytes; shared by UDP and TCP. Does no I/O and takes no locks.

use std::net::IpAddr;

use super::wire::{
    self, ClientSubnet, MAX_NAME_LEN, Query, QueryError, Rcode, ReplyEdns, ReplyWriter, Section,
    lowercase_name, rtype,
};
use crate::snapshot::Snapshot;
use crate::zone::{Node, RRset, Resolution, Zone};

/// Largest reply over UDP without EDNS (RFC 1035 §4.2.1).
const PLAIN_UDP_LIMIT: usize = 512;
/// Largest DNS message over TCP (two-byte length prefix, RFC 1035 §4.2.2).
const TCP_LIMIT: usize = 65_535;
/// Longest CNAME chain followed inside a zone.
const MAX_CNAME_CHAIN: usize = 8;

/// How the query arrived; decides the size limit of the reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Datagram: replies limited by EDNS payload size, truncated with TC.
    Udp,
    /// Stream: replies up to 64 KiB.
    Tcp,
}

/// What happened to one query, for metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// The reply's rcode.
    pub rcode: Rcode,
    /// The query type (0 when the packet had no readable question).
    pub qtype: u16,
    /// Whether the reply was truncated.
    pub truncated: bool,
}

/// Answers one packet. Returns `None` when the packet must be dropped;
/// otherwise the reply is in `out`.
pub fn handle_packet(
    snapshot: &Snapshot,
    packet: &[u8],
    client: IpAddr,
    transport: Transport,
    out: &mut Vec<u8>,
) -> Option<Outcome> {
    let query = match wire::parse_query(packet) {
        Ok(query) => query,
        Err(QueryError::Drop) => return None,
        Err(QueryError::Reject {
            id,
            opcode,
            rcode,
            had_edns,
        }) => {
            wire::write_reject(out, id, opcode, rcode, had_edns);
            return Some(Outcome {
                rcode,
                qtype: 0,
                truncated: false,
            });
        }
    };
    let _ = client;
    let edns = query.edns.map(|e| ReplyEdns {
        udp_payload: snapshot.max_udp_payload,
        client_subnet: e.client_subnet.map(|s| (s, 0)),
    });
    let max_len = match (transport, query.edns) {
        (Transport::Tcp, _) => TCP_LIMIT,
        (Transport::Udp, None) => PLAIN_UDP_LIMIT,
        (Transport::Udp, Some(e)) => {
            usize::from(e.udp_payload.clamp(512, snapshot.max_udp_payload))
        }
    };
    let mut reply = ReplyWriter::new(out, &query, max_len, edns);
    let rcode = answer(snapshot, &query, &mut reply);
    let truncated = reply.is_truncated();
    reply.finish(rcode);
    Some(Outcome {
        rcode,
        qtype: query.qtype,
        truncated,
    })
}

/// Fills the reply's sections and returns its rcode.
fn answer(snapshot: &Snapshot, query: &Query<'_>, reply: &mut ReplyWriter<'_>) -> Rcode {
    // RFC 1035 §4.1.2: we serve class IN only (and QCLASS * as IN).
    if query.qclass != wire::CLASS_IN && query.qclass != wire::CLASS_ANY {
        return Rcode::Refused;
    }
    match query.qtype {
        rtype::OPT => return Rcode::FormErr,
        // Zone transfers are not offered.
        rtype::AXFR | rtype::IXFR => return Rcode::Refused,
        rtype::MAILA | rtype::MAILB | 128..=250 => return Rcode::NotImp,
        _ => {}
    }
    let mut qname = [0u8; MAX_NAME_LEN];
    let Some(qname_len) = lowercase_name(query.qname, &mut qname) else {
        return Rcode::FormErr;
    };
    let qname = &qname[..qname_len];
    let Some(zone) = snapshot.zones.find(qname) else {
        // Not authoritative: refuse rather than answer (no amplification, no referral to root).
        return Rcode::Refused;
    };
    reply.set_authoritative(true);
    let _ = ClientSubnet::family;
    answer_in_zone(zone, qname, query.qtype, reply)
}

fn answer_in_zone(zone: &Zone, qname: &[u8], qtype: u16, reply: &mut ReplyWriter<'_>) -> Rcode {
    let mut name: &[u8] = qname;
    for _ in 0..MAX_CNAME_CHAIN {
        match zone.resolve(name) {
            Resolution::Referral { cut, ns } => {
                if reply.count(Section::Answer) > 0 {
                    // A CNAME led below a zone cut: the answer so far stands.
                    return Rcode::NoError;
                }
                reply.set_authoritative(false);
                reply.push_rrset(
                    Section::Authority,
                    cut,
                    rtype::NS,
                    ns.ttl,
                    ns.rdata_slices(),
                );
                push_addresses(zone, &ns.targets, reply);
                return Rcode::NoError;
            }
            Resolution::NxDomain => {
                push_negative(zone, reply);
                // RFC 6604: the rcode describes the last name in the chain.
                return Rcode::NxDomain;
            }
            Resolution::Node { node, .. } => {
                if let Some(rrset) = pick_rrset(node, qtype) {
                    reply.push_rrset(
                        Section::Answer,
                        name,
                        rrset.rtype,
                        rrset.ttl,
                        rrset.rdata_slices(),
                    );
                    if rrset.rtype == rtype::NS {
                        push_addresses(zone, &rrset.targets, reply);
                    }
                    return Rcode::NoError;
                }
                match node.rrset(rtype::CNAME) {
                    Some(cname) if qtype != rtype::CNAME => {
                        if !reply.push_rrset(
                            Section::Answer,
                            name,
                            rtype::CNAME,
                            cname.ttl,
                            cname.rdata_slices(),
                        ) {
                            return Rcode::NoError;
                        }
                        match cname.targets.first() {
                            Some(target) if target.ends_with(zone.origin()) => name = target,
                            _ => return Rcode::NoError,
                        }
                    }
                    _ => {
                        push_negative(zone, reply);
                        return Rcode::NoError;
                    }
                }
            }
        }
    }
    Rcode::NoError
}

/// The RRset answering `qtype` at a node; for ANY, one RRset only (RFC 8482 §4.1).
fn pick_rrset(node: &Node, qtype: u16) -> Option<&RRset> {
    if qtype == rtype::ANY {
        node.rrsets.first()
    } else {
        node.rrset(qtype)
    }
}

/// NODATA / NXDOMAIN authority: the SOA with the negative TTL (RFC 2308 §3, §5).
fn push_negative(zone: &Zone, reply: &mut ReplyWriter<'_>) {
    let soa = zone.soa();
    reply.push_rrset(
        Section::Authority,
        zone.origin(),
        rtype::SOA,
        zone.negative_ttl(),
        soa.rdata_slices(),
    );
}

/// Adds A/AAAA records for in-zone targets (glue for referrals and NS answers).
fn push_addresses(zone: &Zone, targets: &[Box<[u8]>], reply: &mut ReplyWriter<'_>) {
    for target in targets {
        let Some(node) = zone.node(target) else {
            continue;
        };
        for address_type in [rtype::A, rtype::AAAA] {
            if let Some(rrset) = node.rrset(address_type) {
                reply.push_rrset(
                    Section::Additional,
                    target,
                    address_type,
                    rrset.ttl,
                    rrset.rdata_slices(),
                );
            }
        }
    }
}

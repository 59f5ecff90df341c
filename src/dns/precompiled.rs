//! Answers serialised when a snapshot is put in service, so the common query costs
//! one hash lookup, a copy and a few patches.
//!
//! For every name of every zone, the static answers (each RRset type present
//! plus A and AAAA, which are asked for everywhere) are produced once by the
//! general path, [`answer::handle_packet_traced`], and kept as the bytes
//! after the question. Their names are compressed against the question at
//! offset 12, which has the same length whatever the client's case, so the
//! bytes are valid for any query of that name. Service names keep their A and
//! AAAA answers dynamic: the policy runs per query and each chosen endpoint is
//! written as a pointer to the question plus its pre-encoded RDATA.
//!
//! Anything unusual (other classes, extra records, unknown EDNS versions,
//! NXDOMAIN, wildcards, CNAME endpoints, answers that need truncation)
//! returns `None` and takes the general path, which therefore stays the one
//! definition of every answer; `tests/precompiled.rs` checks the two agree
//! byte for byte.

use std::net::{IpAddr, Ipv4Addr};

use super::answer::{self, Outcome, Transport};
use super::choice_memo::ThreadMemo;
use super::name_table::NameTable;
use super::reply_buffer::ReplyBuffer;
use super::wire::{self, CLASS_IN, EdnsInfo, HEADER_LEN, MAX_NAME_LEN, Rcode, ReplyEdns, rtype};
use crate::dnssec::sign::RRSIG;
use crate::health::HealthView;
use crate::policy::{self, EndpointTarget, Family};
use crate::snapshot::Snapshot;
use crate::zone::Resolution;

/// Static answers by name, built from a snapshot (see the module docs).
#[derive(Debug, Default)]
pub struct PrecompiledAnswers {
    /// Lowercase wire name → what is known about it.
    names: NameTable<NameAnswers>,
    /// Every name's canned answers, each name's in one run.
    canned: Vec<Canned>,
    /// The bytes after the question of every canned answer.
    bodies: Vec<u8>,
}

/// One name's entry.
#[derive(Debug, Clone, Copy)]
struct NameAnswers {
    /// Index of the answering zone in `Snapshot::zones`.
    zone: u32,
    /// The service answering A and AAAA here, if any.
    service: Option<u32>,
    /// Whether the zone is signed: DO queries then have answers of their own.
    signed: bool,
    /// This name's run in `canned`.
    canned_start: u32,
    canned_end: u32,
}

/// A static answer to one query type.
#[derive(Debug, Clone, Copy)]
struct Canned {
    qtype: u16,
    /// Answer to a query with the DO bit (RRSIGs and NSEC included).
    dnssec_ok: bool,
    rcode: Rcode,
    authoritative: bool,
    /// Answer, authority and additional counts (no OPT).
    counts: [u16; 3],
    /// Its bytes in `bodies`.
    body_start: u32,
    body_end: u32,
}

/// Pointer to the question name, the owner of every service record.
const QNAME_POINTER: [u8; 2] = [0xc0, HEADER_LEN as u8];

impl PrecompiledAnswers {
    /// Builds the answers for every name of `snapshot`'s zones.
    pub fn build(snapshot: &Snapshot) -> Self {
        let mut answers = Self::default();
        let mut query = Vec::with_capacity(HEADER_LEN + MAX_NAME_LEN + 4);
        let mut reply = Vec::with_capacity(4096);
        let source = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        // Answers naming endpoints are not kept, so health does not matter.
        let no_health = HealthView::default();
        for (zone_index, zone) in snapshot.zones.iter().enumerate() {
            if zone.is_unavailable() {
                // Answered SERVFAIL by the general path.
                continue;
            }
            for (name, node) in zone.nodes() {
                // A name inside a more specific zone is that zone's to answer.
                if snapshot.zones.find_index(name) != Some(zone_index) {
                    continue;
                }
                let service = match zone.resolve(name) {
                    Resolution::Node {
                        node,
                        from_wildcard: false,
                    } => node.service,
                    _ => None,
                };
                let mut qtypes: Vec<u16> = node.rrsets.iter().map(|r| r.rtype).collect();
                if service.is_none() {
                    qtypes.extend([rtype::A, rtype::AAAA]);
                }
                qtypes.sort_unstable();
                qtypes.dedup();
                let signed = snapshot.dnssec.zone(zone_index).is_some();
                let canned_start = answers.canned.len() as u32;
                let variants = qtypes
                    .iter()
                    .flat_map(|&qtype| [(qtype, false), (qtype, true)])
                    .filter(|&(_, dnssec_ok)| signed || !dnssec_ok);
                for (qtype, dnssec_ok) in variants {
                    write_plain_query(&mut query, name, qtype, dnssec_ok);
                    // The OPT record the reply ends with (no Client Subnet).
                    let opt_len = if dnssec_ok { 11 } else { 0 };
                    let Some(outcome) = answer::handle_packet_traced(
                        snapshot,
                        &no_health,
                        &query,
                        source,
                        Transport::Tcp,
                        0,
                        &mut reply,
                        None,
                    ) else {
                        continue;
                    };
                    // Only answers that cannot depend on the client or the draw.
                    if outcome.service.is_some() || outcome.truncated {
                        continue;
                    }
                    let question_end = query.len() - opt_len;
                    let Some(body) = reply.get(question_end..reply.len().saturating_sub(opt_len))
                    else {
                        continue;
                    };
                    let count = |i: usize| u16::from_be_bytes([reply[6 + 2 * i], reply[7 + 2 * i]]);
                    let body_start = answers.bodies.len() as u32;
                    answers.bodies.extend_from_slice(body);
                    answers.canned.push(Canned {
                        qtype,
                        dnssec_ok,
                        rcode: outcome.rcode,
                        authoritative: reply[2] & 0x04 != 0,
                        counts: [count(0), count(1), count(2) - u16::from(dnssec_ok)],
                        body_start,
                        body_end: answers.bodies.len() as u32,
                    });
                }
                answers.names.insert(
                    name,
                    NameAnswers {
                        zone: zone_index as u32,
                        service: service.map(|s| s as u32),
                        signed,
                        canned_start,
                        canned_end: answers.canned.len() as u32,
                    },
                );
            }
        }
        answers.canned.shrink_to_fit();
        answers.bodies.shrink_to_fit();
        answers
    }

    /// Number of names and of canned answers (for the load log).
    pub fn stats(&self) -> (usize, usize) {
        (self.names.name_count(), self.canned.len())
    }

    /// Answers `packet` from the precompiled answers, when it is an ordinary
    /// query for a name they cover. Writes the same bytes the general path
    /// would; `None` leaves the query to it (`out` may then hold anything).
    ///
    /// The query is `buffer[..len]`. A receive buffer may be passed whole: the
    /// bytes past `len` are never read as part of the query, only copied along
    /// with its header and question by a fixed-size copy (see
    /// [`ReplyBuffer::start_with`]).
    #[allow(clippy::too_many_arguments)]
    pub fn answer<'s, R: ReplyBuffer>(
        &self,
        snapshot: &'s Snapshot,
        health: &HealthView,
        buffer: &[u8],
        len: usize,
        source: IpAddr,
        transport: Transport,
        seed: u64,
        out: &mut R,
    ) -> Option<Outcome<'s>> {
        let packet = buffer.get(..len)?;
        let query = parse(packet)?;
        let precompiled = self;
        let qname = packet.get(HEADER_LEN..HEADER_LEN + query.qname_len)?;
        // The keys are lowercase and names usually come so: look the name up
        // as it is, and only when that misses, lowercase a copy if it has
        // capitals (a mixed-case name cannot equal a lowercase key).
        let entry = match precompiled
            .names
            .get_at(buffer.get(HEADER_LEN..)?, query.qname_len)
        {
            Some(entry) => entry,
            None if has_uppercase(qname) => {
                let mut lower = [0u8; MAX_NAME_LEN];
                let len = wire::lowercase_name(qname, &mut lower)?;
                precompiled.names.get(lower.get(..len)?)?
            }
            None => return None,
        };
        let subnet = query.edns.and_then(|e| e.client_subnet);
        let family = match query.qtype {
            rtype::A => Some(Family::V4),
            rtype::AAAA => Some(Family::V6),
            _ => None,
        };
        // DO queries to a signed zone get the signed answers (RFC 4035 §3.1).
        let dnssec_ok = entry.signed && query.edns.is_some_and(|e| e.dnssec_ok);
        match (entry.service, family) {
            (Some(index), Some(family)) => {
                let service = snapshot.services.get(index as usize)?;
                // Only a service answer depends on the client.
                let (client, subnet_used) = answer::routing_client(snapshot, subnet, source);
                let selection = policy::select_with(
                    service,
                    health,
                    client,
                    family,
                    seed,
                    None,
                    &mut ThreadMemo,
                );
                let first = selection.endpoints().next()?;
                if selection.servfail || matches!(first.target, EndpointTarget::Cname(_)) {
                    return None;
                }
                // Signed answers of one endpoint were signed at build; the
                // general path signs combinations.
                let rrsigs: &[Box<[u8]>] = if dnssec_ok {
                    if selection.count != 1 {
                        return None;
                    }
                    snapshot.dnssec.service(index as usize)?.get(
                        selection.pool_index,
                        *selection.chosen().first()?,
                        selection.ttl,
                    )?
                } else {
                    &[]
                };
                let record_type = first.record_type().to_be_bytes();
                let ttl = selection.ttl.to_be_bytes();
                write_header_and_question(
                    out,
                    buffer,
                    &query,
                    true,
                    Rcode::NoError,
                    [u16::from(selection.count) + rrsigs.len() as u16, 0, 0],
                );
                for endpoint in selection.endpoints() {
                    // Owner pointer, type, class, TTL, RDLENGTH, then RDATA: an
                    // address (what endpoints hold here) goes in one fixed-size
                    // copy; a copy of variable length is a call to memcpy.
                    let rdata = &endpoint.rdata[..];
                    let [l0, l1] = (rdata.len() as u16).to_be_bytes();
                    let [p0, p1] = QNAME_POINTER;
                    let [t0, t1] = record_type;
                    let [c0, c1] = CLASS_IN.to_be_bytes();
                    let [s0, s1, s2, s3] = ttl;
                    let head = [p0, p1, t0, t1, c0, c1, s0, s1, s2, s3, l0, l1];
                    if let Some(record) = fixed_record::<16>(head, rdata) {
                        out.append_array(&record, record.len());
                    } else if let Some(record) = fixed_record::<28>(head, rdata) {
                        out.append_array(&record, record.len());
                    } else {
                        out.append_array(&head, head.len());
                        out.append(rdata);
                    }
                }
                for rrsig in rrsigs {
                    let [l0, l1] = (rrsig.len() as u16).to_be_bytes();
                    let [p0, p1] = QNAME_POINTER;
                    let [t0, t1] = RRSIG.to_be_bytes();
                    let [c0, c1] = CLASS_IN.to_be_bytes();
                    let [s0, s1, s2, s3] = ttl;
                    let head = [p0, p1, t0, t1, c0, c1, s0, s1, s2, s3, l0, l1];
                    out.append_array(&head, head.len());
                    out.append(rrsig);
                }
                let scope = if subnet_used {
                    selection.scope_prefix_len
                } else {
                    0
                };
                if !finish(out, snapshot, &query, transport, scope) {
                    return None;
                }
                Some(Outcome {
                    rcode: Rcode::NoError,
                    qtype: query.qtype,
                    truncated: false,
                    zone: Some(entry.zone as usize),
                    had_client_subnet: subnet.is_some(),
                    service: Some((index as usize, selection)),
                })
            }
            _ => {
                let runs = precompiled
                    .canned
                    .get(entry.canned_start as usize..entry.canned_end as usize)?;
                let canned = runs
                    .iter()
                    .find(|c| c.qtype == query.qtype && c.dnssec_ok == dnssec_ok)?;
                let body = precompiled
                    .bodies
                    .get(canned.body_start as usize..canned.body_end as usize)?;
                write_header_and_question(
                    out,
                    buffer,
                    &query,
                    canned.authoritative,
                    canned.rcode,
                    canned.counts,
                );
                out.append(body);
                if !finish(out, snapshot, &query, transport, 0) {
                    return None;
                }
                Some(Outcome {
                    rcode: canned.rcode,
                    qtype: query.qtype,
                    truncated: false,
                    zone: Some(entry.zone as usize),
                    had_client_subnet: subnet.is_some(),
                    service: None,
                })
            }
        }
    }
}

/// A plain query (class IN; no EDNS, or with `dnssec_ok` an OPT record
/// with the DO bit and no options) for `name` and `qtype`.
fn write_plain_query(out: &mut Vec<u8>, name: &[u8], qtype: u16, dnssec_ok: bool) {
    out.clear();
    out.extend_from_slice(&[0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, u8::from(dnssec_ok)]);
    out.extend_from_slice(name);
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    if dnssec_ok {
        let [o0, o1] = rtype::OPT.to_be_bytes();
        out.extend_from_slice(&[0, o0, o1, 0x10, 0x00, 0, 0, 0x80, 0, 0, 0]);
    }
}

/// What the fast path reads from a query.
struct FastQuery {
    /// Length of the question name.
    qname_len: usize,
    /// Offset just past the question.
    question_end: usize,
    qtype: u16,
    /// Header bytes 2 and 3 (the flags).
    flags: [u8; 2],
    edns: Option<EdnsInfo>,
}

/// Reads an ordinary query: QUERY opcode, one class-IN question, no answer
/// or authority records, and nothing or one EDNS(0) OPT as additional.
/// `None`: leave it to the general path (which also decides the errors).
#[inline(always)]
fn parse(packet: &[u8]) -> Option<FastQuery> {
    let header = packet.get(..HEADER_LEN)?;
    // QR = 0 and opcode QUERY.
    if header[2] & 0xf8 != 0 {
        return None;
    }
    let counts = u64::from_be_bytes(header[4..12].try_into().ok()?);
    let has_opt = match counts {
        0x0001_0000_0000_0000 => false,
        0x0001_0000_0000_0001 => true,
        _ => return None,
    };
    let mut pos = HEADER_LEN;
    loop {
        let len = usize::from(*packet.get(pos)?);
        pos += 1 + len;
        if len == 0 {
            break;
        }
        // Compression pointers and extended labels are not valid here.
        if len > 63 || pos - HEADER_LEN > MAX_NAME_LEN {
            return None;
        }
    }
    let qname_len = pos - HEADER_LEN;
    let question: [u8; 4] = packet.get(pos..pos + 4)?.try_into().ok()?;
    let qtype = u16::from_be_bytes([question[0], question[1]]);
    if u16::from_be_bytes([question[2], question[3]]) != CLASS_IN {
        return None;
    }
    let question_end = pos + 4;
    let mut edns = None;
    if has_opt {
        let fixed: [u8; 11] = packet
            .get(question_end..question_end + 11)?
            .try_into()
            .ok()?;
        // Root owner, type OPT, version 0.
        if fixed[0] != 0 || u16::from_be_bytes([fixed[1], fixed[2]]) != rtype::OPT || fixed[6] != 0
        {
            return None;
        }
        let rdata_len = usize::from(u16::from_be_bytes([fixed[9], fixed[10]]));
        let rdata_start = question_end + 11;
        let rdata = packet.get(rdata_start..rdata_start + rdata_len)?;
        edns = Some(EdnsInfo {
            udp_payload: u16::from_be_bytes([fixed[3], fixed[4]]),
            version: 0,
            dnssec_ok: fixed[7] & 0x80 != 0,
            client_subnet: wire::parse_edns_options(rdata).ok()?,
        });
    }
    Some(FastQuery {
        qname_len,
        question_end,
        qtype,
        flags: [header[2], header[3]],
        edns,
    })
}

/// Appends the OPT record if the query had one, echoing its Client Subnet
/// option with `scope`; false if the reply is then too long for
/// `transport` (truncation is the general path's business).
#[inline(always)]
fn finish<R: ReplyBuffer>(
    out: &mut R,
    snapshot: &Snapshot,
    query: &FastQuery,
    transport: Transport,
    scope: u8,
) -> bool {
    if let Some(edns) = query.edns {
        let edns = ReplyEdns {
            udp_payload: snapshot.max_udp_payload,
            client_subnet: edns.client_subnet.map(|s| (s, scope)),
            dnssec_ok: edns.dnssec_ok,
        };
        wire::write_opt(out, &edns, 0);
    }
    // Every limit is at least 512 bytes, which most replies stay within.
    let written = out.written();
    written <= answer::PLAIN_UDP_LIMIT
        || written <= answer::reply_limit(snapshot, transport, query.edns)
}

/// A resource record of `N` bytes: the 12 of `head`, then `rdata` when it
/// fills the rest exactly (`N` fixes every copy's size at compile time).
#[inline(always)]
fn fixed_record<const N: usize>(head: [u8; 12], rdata: &[u8]) -> Option<[u8; N]> {
    if rdata.len() + 12 != N {
        return None;
    }
    let mut record = [0u8; N];
    let (record_head, record_rdata) = record.split_at_mut_checked(12)?;
    record_head.copy_from_slice(&head);
    record_rdata.copy_from_slice(rdata);
    Some(record)
}

/// Whether `bytes` hold an ASCII capital letter. Eight bytes at a time:
/// a byte's top bit is set in `upper` when it lies in `A..=Z`.
#[inline]
fn has_uppercase(bytes: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    let upper = |word: u64| {
        // Per byte b < 0x80: (b + 0x3f) has bit 7 set iff b >= 'A';
        // (b + 0x25) has it set iff b > 'Z'. Bytes >= 0x80 are masked out.
        let low = word & !HIGH;
        (low + ONES * 0x3f) & !(low + ONES * 0x25) & !word & HIGH
    };
    // Whole words, then the last eight bytes (overlapping, which does not
    // matter for "any").
    let Some(last) = bytes.last_chunk::<8>() else {
        return bytes.iter().any(u8::is_ascii_uppercase);
    };
    let (words, _) = bytes.as_chunks::<8>();
    let mut found = upper(u64::from_ne_bytes(*last));
    for word in words {
        found |= upper(u64::from_ne_bytes(*word));
    }
    found != 0
}

/// Starts the reply with the query's header and question (one copy from
/// `buffer`, which holds the query), then sets the header: QR, opcode
/// QUERY, AA as given, RD and CD as the query had them, the rcode, one
/// question, `counts`, and one more additional record when the reply
/// carries an OPT.
#[inline(always)]
fn write_header_and_question<R: ReplyBuffer>(
    out: &mut R,
    buffer: &[u8],
    query: &FastQuery,
    authoritative: bool,
    rcode: Rcode,
    counts: [u16; 3],
) {
    out.start_with(buffer, query.question_end);
    let flag_bytes = query.flags;
    let with_opt = query.edns.is_some();
    let flags = 0x8000
        | u64::from(flag_bytes[0] & 0x01) << 8
        | u64::from(authoritative) << 10
        | u64::from(flag_bytes[1] & 0x10)
        | u64::from(rcode.value() & 0x0f);
    // Flags, then the four counts: one question, `counts`, the OPT.
    let head = flags << 48 | 1 << 32 | u64::from(counts[0]) << 16 | u64::from(counts[1]);
    let additional = counts[2] + u16::from(with_opt);
    out.overwrite(2, &head.to_be_bytes());
    out.overwrite(10, &additional.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::has_uppercase;

    #[test]
    fn has_uppercase_matches_the_bytewise_test_for_every_byte_and_position() {
        for len in 1..=17 {
            for position in 0..len {
                for byte in 0..=255u8 {
                    let mut bytes = vec![b'a'; len];
                    bytes[position] = byte;
                    assert_eq!(
                        has_uppercase(&bytes),
                        byte.is_ascii_uppercase(),
                        "byte {byte:#04x} at {position} of {len}"
                    );
                }
            }
        }
        assert!(!has_uppercase(b""));
    }
}

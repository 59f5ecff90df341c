//! DNS wire format for the query path: decoding one query and writing one reply.
//!
//! Hand-written rather than hickory's `Message` because the query path must
//! not allocate per query and must decide FORMERR/NOTIMP/drop precisely
//! (RFC 1035 §4.1, RFC 6891, RFC 7871 §7.1). Zone data reaches this module as
//! pre-encoded RDATA, so writing a record is a name pointer plus a copy.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::reply_buffer::ReplyBuffer;
pub use crate::wire::{
    CLASS_ANY, CLASS_IN, HEADER_LEN, MAX_NAME_LEN, Rcode, label_offsets, lowercase_name, rtype,
};

/// Offset of the question name in every message we write.
const QNAME_OFFSET: usize = HEADER_LEN;

/// The EDNS Client Subnet option of a query (RFC 7871 §6), already validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientSubnet {
    /// The client network address, bits past `source_prefix_len` zero.
    pub address: IpAddr,
    /// SOURCE PREFIX-LENGTH as sent by the resolver.
    pub source_prefix_len: u8,
}

impl ClientSubnet {
    /// Address family number (1 = IPv4, 2 = IPv6).
    pub fn family(&self) -> u16 {
        match self.address {
            IpAddr::V4(_) => 1,
            IpAddr::V6(_) => 2,
        }
    }
}

/// EDNS(0) information of a query (RFC 6891 §6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EdnsInfo {
    /// Requestor's UDP payload size.
    pub udp_payload: u16,
    /// EDNS version requested.
    pub version: u8,
    /// The DO bit: the client wants DNSSEC records (RFC 3225).
    pub dnssec_ok: bool,
    /// The client subnet, when the query carried one.
    pub client_subnet: Option<ClientSubnet>,
}

/// A decoded query. Borrows the packet; nothing is copied.
#[derive(Debug, Clone, Copy)]
pub struct Query<'p> {
    /// Message ID.
    pub id: u16,
    /// Opcode (0 = QUERY).
    pub opcode: u8,
    /// RD flag as sent.
    pub recursion_desired: bool,
    /// CD flag as sent.
    pub checking_disabled: bool,
    /// The question name in wire format, in the client's case.
    pub qname: &'p [u8],
    /// Question type.
    pub qtype: u16,
    /// Question class.
    pub qclass: u16,
    /// EDNS information, when the query had an OPT record.
    pub edns: Option<EdnsInfo>,
}

/// Why a packet could not be turned into a [`Query`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryError {
    /// Not worth answering: too short for a header, or a response (QR=1),
    /// which must never be answered to avoid reflection loops.
    Drop,
    /// A readable header with a bad body: answer with this rcode.
    Reject {
        /// Message ID to echo.
        id: u16,
        /// Opcode to echo.
        opcode: u8,
        /// FORMERR, NOTIMP or BADVERS.
        rcode: Rcode,
        /// Whether the query had an OPT record (BADVERS needs one back).
        had_edns: bool,
    },
}

/// Decodes a query packet.
///
/// # Errors
/// [`QueryError::Drop`] for packets that must be ignored, and
/// [`QueryError::Reject`] for those that get an error reply.
pub fn parse_query(packet: &[u8]) -> Result<Query<'_>, QueryError> {
    if packet.len() < HEADER_LEN {
        return Err(QueryError::Drop);
    }
    let id = u16::from_be_bytes([packet[0], packet[1]]);
    let flags = u16::from_be_bytes([packet[2], packet[3]]);
    if flags & 0x8000 != 0 {
        // "Don't process response messages to avoid DoS attacks from reflection."
        return Err(QueryError::Drop);
    }
    let opcode = ((flags >> 11) & 0x0f) as u8;
    let reject = |rcode| QueryError::Reject {
        id,
        opcode,
        rcode,
        had_edns: false,
    };
    if opcode != 0 {
        // RFC 6891 §7: an error reply to an EDNS query carries an OPT too.
        return Err(QueryError::Reject {
            id,
            opcode,
            rcode: Rcode::NotImp,
            had_edns: has_opt_record(packet),
        });
    }
    let count = |i: usize| u16::from_be_bytes([packet[4 + 2 * i], packet[5 + 2 * i]]);
    let (qdcount, ancount, nscount, arcount) = (count(0), count(1), count(2), count(3));
    if qdcount != 1 {
        return Err(reject(Rcode::FormErr));
    }
    let mut reader = Reader {
        packet,
        pos: HEADER_LEN,
    };
    let qname_end = reader
        .skip_name(false)
        .ok_or_else(|| reject(Rcode::FormErr))?;
    let qname = &packet[HEADER_LEN..qname_end];
    let qtype = reader.u16().ok_or_else(|| reject(Rcode::FormErr))?;
    let qclass = reader.u16().ok_or_else(|| reject(Rcode::FormErr))?;
    for _ in 0..(u32::from(ancount) + u32::from(nscount)) {
        reader.skip_record().ok_or_else(|| reject(Rcode::FormErr))?;
    }
    let mut edns = None;
    for _ in 0..arcount {
        let record = reader.read_record().ok_or_else(|| reject(Rcode::FormErr))?;
        if record.rtype != rtype::OPT {
            continue;
        }
        // RFC 6891 §6.1.1: more than one OPT, or an OPT not owned by the root, is FORMERR.
        if edns.is_some() || !record.owner_is_root {
            return Err(reject(Rcode::FormErr));
        }
        let version = ((record.ttl >> 16) & 0xff) as u8;
        if version != 0 {
            return Err(QueryError::Reject {
                id,
                opcode,
                rcode: Rcode::BadVers,
                had_edns: true,
            });
        }
        let client_subnet = parse_edns_options(record.rdata).map_err(|()| QueryError::Reject {
            id,
            opcode,
            rcode: Rcode::FormErr,
            had_edns: true,
        })?;
        edns = Some(EdnsInfo {
            udp_payload: record.class,
            version,
            dnssec_ok: record.ttl & 0x8000 != 0,
            client_subnet,
        });
    }
    Ok(Query {
        id,
        opcode,
        recursion_desired: flags & 0x0100 != 0,
        checking_disabled: flags & 0x0010 != 0,
        qname,
        qtype,
        qclass,
        edns,
    })
}

/// Best-effort scan for an OPT record in any well-formed packet.
fn has_opt_record(packet: &[u8]) -> bool {
    let count = |i: usize| usize::from(u16::from_be_bytes([packet[4 + 2 * i], packet[5 + 2 * i]]));
    let mut reader = Reader {
        packet,
        pos: HEADER_LEN,
    };
    for _ in 0..count(0) {
        if reader.skip_name(true).is_none() || reader.u16().is_none() || reader.u16().is_none() {
            return false;
        }
    }
    for _ in 0..count(1) + count(2) + count(3) {
        match reader.read_record() {
            Some(record) if record.rtype == rtype::OPT => return true,
            Some(_) => {}
            None => return false,
        }
    }
    false
}

/// EDNS option code of Client Subnet (RFC 7871 §6).
const OPTION_CLIENT_SUBNET: u16 = 8;

/// Walks the OPT RDATA and validates the Client Subnet option if present.
#[inline(always)]
pub(crate) fn parse_edns_options(mut rdata: &[u8]) -> Result<Option<ClientSubnet>, ()> {
    // A resolver's usual OPT: one Client Subnet option, nothing else.
    if let [c0, c1, l0, l1, value @ ..] = rdata
        && u16::from_be_bytes([*c0, *c1]) == OPTION_CLIENT_SUBNET
        && usize::from(u16::from_be_bytes([*l0, *l1])) == value.len()
    {
        return parse_client_subnet(value).map(Some);
    }
    let mut subnet = None;
    while !rdata.is_empty() {
        let [c0, c1, l0, l1, rest @ ..] = rdata else {
            return Err(());
        };
        let code = u16::from_be_bytes([*c0, *c1]);
        let len = usize::from(u16::from_be_bytes([*l0, *l1]));
        let value = rest.get(..len).ok_or(())?;
        rdata = &rest[len..];
        if code == OPTION_CLIENT_SUBNET {
            if subnet.is_some() {
                return Err(());
            }
            subnet = Some(parse_client_subnet(value)?);
        }
    }
    Ok(subnet)
}

/// Validates one ECS option strictly, as gdnsd and knot do (RFC 7871 §6, §7.1.2).
///
/// Source prefix > 0 is returned as a subnet; source prefix 0 means the
/// resolver opts out of ECS ("MUST NOT use it"), which we express by a
/// subnet of prefix 0 so the reply still echoes the option.
#[inline(always)]
fn parse_client_subnet(value: &[u8]) -> Result<ClientSubnet, ()> {
    let [
        f0,
        f1,
        source_prefix_len,
        scope_prefix_len,
        address_bytes @ ..,
    ] = value
    else {
        return Err(());
    };
    let family = u16::from_be_bytes([*f0, *f1]);
    let max_len = match family {
        1 => 32,
        2 => 128,
        _ => return Err(()),
    };
    // "SCOPE PREFIX-LENGTH ... In queries, it MUST be set to 0." (§6)
    if *source_prefix_len > max_len || *scope_prefix_len != 0 {
        return Err(());
    }
    // "ADDRESS ... MUST be truncated to the number of bits indicated by the
    // SOURCE PREFIX-LENGTH field" (§6): exact length, no stray bits.
    let needed = usize::from(source_prefix_len.div_ceil(8));
    if address_bytes.len() != needed {
        return Err(());
    }
    let stray_bits = source_prefix_len % 8;
    if stray_bits != 0
        && address_bytes
            .last()
            .is_some_and(|b| b & (0xff >> stray_bits) != 0)
    {
        return Err(());
    }
    let address = match (family, address_bytes) {
        // IPv4 by pattern: no call to memcpy for at most four bytes.
        (1, []) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        (1, [a]) => IpAddr::V4(Ipv4Addr::new(*a, 0, 0, 0)),
        (1, [a, b]) => IpAddr::V4(Ipv4Addr::new(*a, *b, 0, 0)),
        (1, [a, b, c]) => IpAddr::V4(Ipv4Addr::new(*a, *b, *c, 0)),
        (1, [a, b, c, d]) => IpAddr::V4(Ipv4Addr::new(*a, *b, *c, *d)),
        (1, _) => return Err(()),
        _ => {
            let mut full = [0u8; 16];
            full[..needed].copy_from_slice(address_bytes);
            IpAddr::V6(Ipv6Addr::from(full))
        }
    };
    Ok(ClientSubnet {
        address,
        source_prefix_len: *source_prefix_len,
    })
}

/// One resource record as seen while skipping through a query.
struct RawRecord<'p> {
    owner_is_root: bool,
    rtype: u16,
    class: u16,
    ttl: u32,
    rdata: &'p [u8],
}

/// A bounds-checked cursor over a packet.
struct Reader<'p> {
    packet: &'p [u8],
    pos: usize,
}

impl<'p> Reader<'p> {
    fn u16(&mut self) -> Option<u16> {
        let bytes = self.packet.get(self.pos..self.pos + 2)?;
        self.pos += 2;
        Some(u16::from_be_bytes([bytes[0], bytes[1]]))
    }

    fn u32(&mut self) -> Option<u32> {
        let bytes = self.packet.get(self.pos..self.pos + 4)?;
        self.pos += 4;
        Some(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    /// Skips a name, returning the position after it. Compression pointers
    /// are allowed only when `allow_pointers` (never in the question, whose
    /// name is the first in the message). Pointed-to names are not followed:
    /// we never need their content, only the length of this record.
    fn skip_name(&mut self, allow_pointers: bool) -> Option<usize> {
        let start = self.pos;
        loop {
            let len = *self.packet.get(self.pos)?;
            match len & 0xc0 {
                0x00 => {
                    self.pos += 1 + usize::from(len);
                    if self.pos - start > MAX_NAME_LEN {
                        return None;
                    }
                    if len == 0 {
                        return Some(self.pos);
                    }
                }
                0xc0 if allow_pointers => {
                    self.packet.get(self.pos + 1)?;
                    self.pos += 2;
                    return Some(self.pos);
                }
                _ => return None,
            }
        }
    }

    fn read_record(&mut self) -> Option<RawRecord<'p>> {
        let owner_start = self.pos;
        self.skip_name(true)?;
        let owner_is_root = self.pos == owner_start + 1;
        let rtype = self.u16()?;
        let class = self.u16()?;
        let ttl = self.u32()?;
        let rdlen = usize::from(self.u16()?);
        let rdata = self.packet.get(self.pos..self.pos + rdlen)?;
        self.pos += rdlen;
        Some(RawRecord {
            owner_is_root,
            rtype,
            class,
            ttl,
            rdata,
        })
    }

    fn skip_record(&mut self) -> Option<()> {
        self.read_record().map(|_| ())
    }
}

/// Sections of a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// Answer section.
    Answer,
    /// Authority section.
    Authority,
    /// Additional section.
    Additional,
}

/// The EDNS part of a reply.
#[derive(Debug, Clone, Copy)]
pub struct ReplyEdns {
    /// Our UDP payload size.
    pub udp_payload: u16,
    /// Client subnet to echo, with the scope prefix we answer for.
    pub client_subnet: Option<(ClientSubnet, u8)>,
    /// The query's DO bit, copied into the reply (RFC 3225 §3).
    pub dnssec_ok: bool,
}

impl ReplyEdns {
    fn wire_len(&self) -> usize {
        11 + self
            .client_subnet
            .map_or(0, |(s, _)| 8 + usize::from(s.source_prefix_len.div_ceil(8)))
    }
}

/// Writes one reply into a caller-owned buffer (reused across queries).
///
/// The question is copied from the query so the client sees its own case.
/// Owner names equal to (a suffix of) the question name are compressed to a
/// pointer into the question; other names are written whole.
pub struct ReplyWriter<'b> {
    buf: &'b mut Vec<u8>,
    limit: usize,
    counts: [u16; 3],
    truncated: bool,
    edns: Option<ReplyEdns>,
    /// The question name in lowercase, as the caller already has it.
    qname_lower: &'b [u8],
    question_end: usize,
}

impl<'b> ReplyWriter<'b> {
    /// Starts a reply to `query`, limited to `max_len` bytes in total.
    ///
    /// `qname_lower` is `query.qname` in lowercase (see [`lowercase_name`]),
    /// which the caller needs anyway for its lookups; names written later are
    /// compressed against it.
    pub fn new(
        buf: &'b mut Vec<u8>,
        query: &Query<'_>,
        qname_lower: &'b [u8],
        max_len: usize,
        edns: Option<ReplyEdns>,
    ) -> Self {
        buf.clear();
        let mut flags: u16 = 0x8000 | (u16::from(query.opcode) << 11);
        if query.recursion_desired {
            flags |= 0x0100;
        }
        if query.checking_disabled {
            flags |= 0x0010;
        }
        let [id0, id1] = query.id.to_be_bytes();
        let [f0, f1] = flags.to_be_bytes();
        buf.extend_from_slice(&[id0, id1, f0, f1, 0, 1, 0, 0, 0, 0, 0, 0]);
        buf.extend_from_slice(query.qname);
        let [t0, t1] = query.qtype.to_be_bytes();
        let [c0, c1] = query.qclass.to_be_bytes();
        buf.extend_from_slice(&[t0, t1, c0, c1]);
        let question_end = buf.len();
        let reserve = edns.map_or(0, |e| e.wire_len());
        Self {
            buf,
            limit: max_len.saturating_sub(reserve),
            counts: [0; 3],
            truncated: false,
            edns,
            qname_lower,
            question_end,
        }
    }

    /// Sets the AA flag.
    pub fn set_authoritative(&mut self, authoritative: bool) {
        if authoritative {
            self.buf[2] |= 0x04;
        } else {
            self.buf[2] &= !0x04;
        }
    }

    /// Sets the ECS scope prefix length echoed in the reply (RFC 7871 §7.2.1).
    pub fn set_ecs_scope(&mut self, scope_prefix_len: u8) {
        if let Some(edns) = &mut self.edns
            && let Some((_, scope)) = &mut edns.client_subnet
        {
            *scope = scope_prefix_len;
        }
    }

    /// Sets TC while keeping what was written: the reply is usable but
    /// incomplete, and the client should retry over TCP.
    pub fn set_truncated(&mut self) {
        self.truncated = true;
        self.buf[2] |= 0x02;
    }

    /// Whether the reply had to be truncated.
    pub fn is_truncated(&self) -> bool {
        self.truncated
    }

    /// Appends a whole RRset; `false` when it did not fit.
    ///
    /// An answer or authority RRset that does not fit truncates the reply
    /// (TC=1, sections emptied, RFC 2181 §9); an additional one is just left
    /// out, since the answer is complete without it.
    pub fn push_rrset<'r>(
        &mut self,
        section: Section,
        owner: &[u8],
        rtype: u16,
        ttl: u32,
        rdatas: impl IntoIterator<Item = &'r [u8]>,
    ) -> bool {
        if self.truncated {
            return false;
        }
        let rollback = self.buf.len();
        let mut added = 0u16;
        let [t0, t1] = rtype.to_be_bytes();
        let [c0, c1] = CLASS_IN.to_be_bytes();
        let [l0, l1, l2, l3] = ttl.to_be_bytes();
        for rdata in rdatas {
            self.write_name(owner);
            let [r0, r1] = (rdata.len().min(usize::from(u16::MAX)) as u16).to_be_bytes();
            self.buf
                .extend_from_slice(&[t0, t1, c0, c1, l0, l1, l2, l3, r0, r1]);
            self.buf.extend_from_slice(rdata);
            added += 1;
        }
        if self.buf.len() > self.limit {
            self.buf.truncate(rollback);
            if section != Section::Additional {
                self.truncate_all();
            }
            return false;
        }
        let index = match section {
            Section::Answer => 0,
            Section::Authority => 1,
            Section::Additional => 2,
        };
        self.counts[index] += added;
        true
    }

    /// Number of records already in a section.
    pub fn count(&self, section: Section) -> u16 {
        match section {
            Section::Answer => self.counts[0],
            Section::Authority => self.counts[1],
            Section::Additional => self.counts[2],
        }
    }

    fn truncate_all(&mut self) {
        self.truncated = true;
        self.buf.truncate(self.question_end);
        self.counts = [0; 3];
        self.buf[2] |= 0x02;
    }

    /// Writes `name` (lowercase wire format), compressed against the question.
    fn write_name(&mut self, name: &[u8]) {
        let qname = self.qname_lower;
        // Find the longest suffix of `name` that is also a suffix of the question name.
        let mut pos = 0usize;
        while let Some(&len) = name.get(pos) {
            if len == 0 {
                break;
            }
            let suffix = &name[pos..];
            if suffix.len() <= qname.len() && qname.ends_with(suffix) {
                let q_offset = qname.len() - suffix.len();
                if is_label_boundary(qname, q_offset) {
                    self.buf.extend_from_slice(&name[..pos]);
                    let pointer = 0xc000 | (QNAME_OFFSET + q_offset) as u16;
                    self.buf.extend_from_slice(&pointer.to_be_bytes());
                    return;
                }
            }
            pos += 1 + usize::from(len);
        }
        self.buf.extend_from_slice(name);
    }

    /// Finishes the reply with `rcode`, appending the OPT record if any.
    pub fn finish(self, rcode: Rcode) -> usize {
        let value = rcode.value();
        self.buf[3] = (self.buf[3] & 0xf0) | (value & 0x0f) as u8;
        let mut additional = self.counts[2];
        if let Some(edns) = self.edns {
            write_opt(self.buf, &edns, (value >> 4) as u8);
            additional += 1;
        }
        self.buf[6..8].copy_from_slice(&self.counts[0].to_be_bytes());
        self.buf[8..10].copy_from_slice(&self.counts[1].to_be_bytes());
        self.buf[10..12].copy_from_slice(&additional.to_be_bytes());
        self.buf.len()
    }
}

fn is_label_boundary(name: &[u8], offset: usize) -> bool {
    let mut pos = 0usize;
    while pos < offset {
        match name.get(pos) {
            Some(&len) if len != 0 => pos += 1 + usize::from(len),
            _ => return false,
        }
    }
    pos == offset
}

#[inline(always)]
pub(crate) fn write_opt<R: ReplyBuffer>(buf: &mut R, edns: &ReplyEdns, extended_rcode: u8) {
    // Root owner, type, class (our payload size), TTL field (extended rcode,
    // version 0, the DO flag copied from the query), RDLENGTH, then the
    // Client Subnet option if any: written on the stack, appended in one copy.
    let mut record = [0u8; 11 + 8 + 16];
    let [p0, p1] = edns.udp_payload.to_be_bytes();
    let [o0, o1] = rtype::OPT.to_be_bytes();
    record[..8].copy_from_slice(&[
        0,
        o0,
        o1,
        p0,
        p1,
        extended_rcode,
        0,
        u8::from(edns.dnssec_ok) << 7,
    ]);
    let mut len = 11;
    if let Some((subnet, scope_prefix_len)) = edns.client_subnet {
        let address_len = usize::from(subnet.source_prefix_len.div_ceil(8));
        let option_len = 4 + address_len as u16;
        let [d0, d1] = (4 + option_len).to_be_bytes();
        let [c0, c1] = OPTION_CLIENT_SUBNET.to_be_bytes();
        let [n0, n1] = option_len.to_be_bytes();
        let [f0, f1] = subnet.family().to_be_bytes();
        record[9..19].copy_from_slice(&[
            d0,
            d1,
            c0,
            c1,
            n0,
            n1,
            f0,
            f1,
            subnet.source_prefix_len,
            scope_prefix_len,
        ]);
        // Whole addresses (fixed-size copies, no memcpy call); only the
        // `address_len` bytes the source prefix needs are sent.
        match subnet.address {
            IpAddr::V4(a) => record[19..23].copy_from_slice(&a.octets()),
            IpAddr::V6(a) => record[19..35].copy_from_slice(&a.octets()),
        }
        len = 19 + address_len;
    }
    buf.append_array(&record, len);
}

/// Writes a header-only error reply (FORMERR/NOTIMP/BADVERS) for a rejected packet.
pub fn write_reject(
    buf: &mut Vec<u8>,
    id: u16,
    opcode: u8,
    rcode: Rcode,
    had_edns: bool,
    udp_payload: u16,
) -> usize {
    buf.clear();
    let value = rcode.value();
    let flags: u16 = 0x8000 | (u16::from(opcode) << 11) | (value & 0x0f);
    buf.extend_from_slice(&id.to_be_bytes());
    buf.extend_from_slice(&flags.to_be_bytes());
    buf.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, u8::from(had_edns)]);
    if had_edns {
        let edns = ReplyEdns {
            udp_payload,
            client_subnet: None,
            dnssec_ok: false,
        };
        write_opt(buf, &edns, (value >> 4) as u8);
    }
    buf.len()
}

/// Turns a written reply into a bare truncated one: header and question
/// only, TC set. Used for RRL "slip" replies, which tell a real client to
/// retry over TCP without giving a spoofed flood anything to amplify.
///
/// The header is rewritten in place; the caller shortens the reply to the
/// length returned (the end of the question).
pub fn truncate_reply(reply: &mut [u8]) -> usize {
    let mut reader = Reader {
        packet: reply,
        pos: HEADER_LEN,
    };
    let question_end = match reader.skip_name(false) {
        Some(end) if reply.len() >= end + 4 && reply.get(4..6) == Some(&[0, 1]) => end + 4,
        _ => HEADER_LEN,
    };
    let Some(header) = reply.get_mut(..HEADER_LEN) else {
        return reply.len().min(question_end);
    };
    header[2] |= 0x02;
    if question_end == HEADER_LEN {
        header[4..6].fill(0);
    }
    header[6..12].fill(0);
    question_end
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ECS option value: family, source prefix, scope 0, the address
    /// bytes the prefix needs.
    fn ecs_value(address: IpAddr, source_prefix_len: u8) -> Vec<u8> {
        let (family, octets): (u16, Vec<u8>) = match address {
            IpAddr::V4(a) => (1, a.octets().to_vec()),
            IpAddr::V6(a) => (2, a.octets().to_vec()),
        };
        let needed = usize::from(source_prefix_len.div_ceil(8));
        [
            &family.to_be_bytes()[..],
            &[source_prefix_len, 0],
            &octets[..needed],
        ]
        .concat()
    }

    #[test]
    fn client_subnets_of_every_prefix_length_parse_to_their_masked_address() {
        let v4 = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 77));
        let v6 = IpAddr::V6(Ipv6Addr::new(
            0x2001, 0xdb8, 0x1234, 0x5678, 0x9abc, 0xdef0, 0x1357, 0x9bdf,
        ));
        for (address, max) in [(v4, 32u8), (v6, 128)] {
            for len in 0..=max {
                let masked = crate::policy::mask(address, len);
                let parsed = parse_client_subnet(&ecs_value(masked, len));
                assert_eq!(
                    parsed,
                    Ok(ClientSubnet {
                        address: masked,
                        source_prefix_len: len,
                    }),
                    "{masked}/{len}"
                );
                // A bit set past the prefix, inside the last byte sent.
                if len % 8 != 0 {
                    let mut stray = ecs_value(masked, len);
                    if let Some(last) = stray.last_mut() {
                        *last |= 0x80 >> (len % 8);
                    }
                    assert_eq!(parse_client_subnet(&stray), Err(()), "stray bit /{len}");
                }
                // One address byte too many, or too few.
                let mut long = ecs_value(masked, len);
                long.push(0);
                assert_eq!(parse_client_subnet(&long), Err(()), "long /{len}");
                if len > 0 {
                    let mut short = ecs_value(masked, len);
                    short.pop();
                    assert_eq!(parse_client_subnet(&short), Err(()), "short /{len}");
                }
            }
            let mut too_long_prefix = ecs_value(address, max);
            too_long_prefix[2] = max + 1;
            assert_eq!(parse_client_subnet(&too_long_prefix), Err(()));
        }
    }

    #[test]
    fn truncate_reply_keeps_header_and_question() {
        let query: Vec<u8> = [
            &[0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0][..],
            b"\x03www\x07example\x04test\x00",
            &[0, 1, 0, 1],
        ]
        .concat();
        let parsed = parse_query(&query).unwrap();
        let mut buf = Vec::new();
        let lower = parsed.qname.to_ascii_lowercase();
        let mut writer = ReplyWriter::new(&mut buf, &parsed, &lower, 512, None);
        writer.set_authoritative(true);
        writer.push_rrset(
            Section::Answer,
            b"\x03www\x07example\x04test\x00",
            rtype::A,
            30,
            [&[192, 0, 2, 1][..]],
        );
        writer.finish(Rcode::NoError);
        let len = truncate_reply(&mut buf);
        buf.truncate(len);
        assert_eq!(buf.len(), query.len());
        assert_eq!(buf[2] & 0x02, 0x02, "TC");
        assert_eq!(&buf[6..12], &[0; 6]);
        assert_eq!(&buf[12..], &query[12..]);
    }
}

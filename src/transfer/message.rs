//! Wire format for transfers and NOTIFY: reading a request's question, its
//! IXFR SOA and where its TSIG record starts, and writing multi-record
//! messages with owner-name compression. Works on bytes; no I/O.
//!
//! The query path's decoder (`dns::wire`) stays minimal and allocation-free;
//! transfers are rare and large, so this module allocates freely.

use std::collections::HashMap;

use crate::wire::{HEADER_LEN, MAX_NAME_LEN};
use crate::zone::WireName;

/// Record type TSIG (RFC 8945).
pub const TYPE_TSIG: u16 = 250;
/// Record type SOA.
pub const TYPE_SOA: u16 = 6;
/// Record type OPT (RFC 6891).
pub const TYPE_OPT: u16 = 41;
/// UDP payload size our OPT records offer.
const OPT_PAYLOAD: u16 = 1232;
/// Opcode NOTIFY (RFC 1996).
pub const OPCODE_NOTIFY: u8 = 4;
/// Largest message we put on a TCP stream before starting the next one
/// (room left for the TSIG record; RFC 5936 §2.2 lets us choose).
pub const MESSAGE_TARGET: usize = 16_000;

/// Rcodes this module writes (RFC 1035, RFC 2136 §2.2 for NOTAUTH).
pub mod rcode {
    /// No error.
    pub const NOERROR: u8 = 0;
    /// Format error.
    pub const FORMERR: u8 = 1;
    /// Server failure.
    pub const SERVFAIL: u8 = 2;
    /// Not implemented.
    pub const NOTIMP: u8 = 4;
    /// Refused.
    pub const REFUSED: u8 = 5;
    /// Not authoritative / not authorized (TSIG failures, RFC 8945 §5.2).
    pub const NOTAUTH: u8 = 9;
}

/// A packet that cannot be read as a DNS message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed message: {0}")]
pub struct Malformed(pub &'static str);

/// The parts of a request (or response) the transfer code needs.
#[derive(Debug, Clone)]
pub struct Request {
    /// Message ID.
    pub id: u16,
    /// Header flags (QR, opcode, AA, …, rcode).
    pub flags: u16,
    /// Question name, lowercase wire format.
    pub qname: WireName,
    /// Question type.
    pub qtype: u16,
    /// Question class.
    pub qclass: u16,
    /// The question as it was sent (name, type, class), to echo back.
    pub question: Vec<u8>,
    /// The serial of an SOA in the authority section (IXFR, RFC 1995 §3)
    /// or the answer section (NOTIFY, RFC 1996 §3.7).
    pub soa_serial: Option<u32>,
    /// Offset of the TSIG record, when the message ends with one.
    pub tsig_start: Option<usize>,
    /// Whether it carried an OPT record (RFC 6891: the answer carries one too).
    pub edns: bool,
}

impl Request {
    /// The opcode.
    pub fn opcode(&self) -> u8 {
        ((self.flags >> 11) & 0x0f) as u8
    }

    /// The rcode (low four bits of the header).
    pub fn rcode(&self) -> u8 {
        (self.flags & 0x0f) as u8
    }
}

/// Big-endian u16 at `pos`.
pub fn read_u16(packet: &[u8], pos: usize) -> Option<u16> {
    Some(u16::from_be_bytes([
        *packet.get(pos)?,
        *packet.get(pos + 1)?,
    ]))
}

/// Big-endian u32 at `pos`.
pub fn read_u32(packet: &[u8], pos: usize) -> Option<u32> {
    let bytes = packet.get(pos..pos + 4)?;
    Some(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

/// Reads a (possibly compressed) name at `pos` into lowercase wire format;
/// returns it and the offset just past it in the packet.
///
/// # Errors
/// Truncated names, pointer loops, names over 255 bytes.
pub fn read_name(packet: &[u8], mut pos: usize) -> Result<(WireName, usize), Malformed> {
    let mut out = Vec::with_capacity(64);
    let mut end = None;
    let mut jumps = 0;
    loop {
        let len = *packet.get(pos).ok_or(Malformed("name runs past the end"))?;
        match len {
            0 => {
                out.push(0);
                break;
            }
            1..=63 => {
                let label = packet
                    .get(pos + 1..pos + 1 + usize::from(len))
                    .ok_or(Malformed("label runs past the end"))?;
                out.push(len);
                out.extend(label.iter().map(u8::to_ascii_lowercase));
                if out.len() >= MAX_NAME_LEN {
                    return Err(Malformed("name longer than 255 bytes"));
                }
                pos += 1 + usize::from(len);
            }
            0xc0..=0xff => {
                let low = *packet
                    .get(pos + 1)
                    .ok_or(Malformed("pointer runs past the end"))?;
                if end.is_none() {
                    end = Some(pos + 2);
                }
                jumps += 1;
                if jumps > 64 {
                    return Err(Malformed("name pointer loop"));
                }
                pos = (usize::from(len & 0x3f) << 8) | usize::from(low);
            }
            _ => return Err(Malformed("bad label type")),
        }
    }
    Ok((out.into_boxed_slice(), end.unwrap_or(pos + 1)))
}

/// Offset just past a record starting at `pos`, with its type and RDATA range.
fn skip_record(packet: &[u8], pos: usize) -> Result<(usize, u16, usize), Malformed> {
    let (_, after_name) = read_name(packet, pos)?;
    let rtype = read_u16(packet, after_name).ok_or(Malformed("record header cut short"))?;
    let rdlen = read_u16(packet, after_name + 8).ok_or(Malformed("record header cut short"))?;
    let rdata = after_name + 10;
    let end = rdata + usize::from(rdlen);
    if end > packet.len() {
        return Err(Malformed("record data runs past the end"));
    }
    Ok((end, rtype, rdata))
}

/// Reads the header, the single question, an SOA serial in the answer or
/// authority section and the position of a final TSIG record.
///
/// # Errors
/// Anything unreadable, or a TSIG record that is not the last one
/// (RFC 8945 §5.1: FORMERR).
pub fn parse_request(packet: &[u8]) -> Result<Request, Malformed> {
    if packet.len() < HEADER_LEN {
        return Err(Malformed("shorter than a header"));
    }
    let id = read_u16(packet, 0).ok_or(Malformed("header"))?;
    let flags = read_u16(packet, 2).ok_or(Malformed("header"))?;
    let count = |i: usize| read_u16(packet, 4 + 2 * i).unwrap_or(0);
    let (qdcount, ancount, nscount, arcount) = (count(0), count(1), count(2), count(3));
    let is_response = flags & 0x8000 != 0;
    // Requests carry one question; responses one or, after the first
    // message of a transfer (RFC 5936 §2.2.1), none.
    let (qname, qtype, qclass, question, mut pos) = match (qdcount, is_response) {
        (1, _) => {
            let (qname, after) = read_name(packet, HEADER_LEN)?;
            let qtype = read_u16(packet, after).ok_or(Malformed("question cut short"))?;
            let qclass = read_u16(packet, after + 2).ok_or(Malformed("question cut short"))?;
            let question = packet
                .get(HEADER_LEN..after + 4)
                .ok_or(Malformed("question cut short"))?
                .to_vec();
            (qname, qtype, qclass, question, after + 4)
        }
        (0, true) => (Box::from(&b"\0"[..]), 0, 0, Vec::new(), HEADER_LEN),
        _ => return Err(Malformed("expected exactly one question")),
    };
    let mut soa_serial = None;
    let mut tsig_start = None;
    let mut edns = false;
    let total = u32::from(ancount) + u32::from(nscount) + u32::from(arcount);
    for index in 0..total {
        let start = pos;
        let (end, rtype, rdata) = skip_record(packet, pos)?;
        if rtype == TYPE_SOA && soa_serial.is_none() {
            soa_serial = soa_serial_of(packet, rdata).ok();
        }
        edns |= rtype == TYPE_OPT && index >= u32::from(ancount) + u32::from(nscount);
        if rtype == TYPE_TSIG {
            if index + 1 != total {
                return Err(Malformed("TSIG record is not the last record"));
            }
            tsig_start = Some(start);
        }
        pos = end;
    }
    Ok(Request {
        id,
        flags,
        qname,
        qtype,
        qclass,
        question,
        soa_serial,
        tsig_start,
        edns,
    })
}

/// The serial of SOA RDATA starting at `rdata` (names may be compressed).
///
/// # Errors
/// The RDATA is cut short.
pub fn soa_serial_of(packet: &[u8], rdata: usize) -> Result<u32, Malformed> {
    let (_, after_mname) = read_name(packet, rdata)?;
    let (_, after_rname) = read_name(packet, after_mname)?;
    read_u32(packet, after_rname).ok_or(Malformed("SOA cut short"))
}

/// One record in uncompressed wire format: owner, type, class, TTL,
/// RDLENGTH and RDATA. Zone versions are lists of these.
pub type RecordBytes = Box<[u8]>;

/// Encodes one record (owner already lowercase wire format).
pub fn record_bytes(owner: &[u8], rtype: u16, ttl: u32, rdata: &[u8]) -> RecordBytes {
    let mut out = Vec::with_capacity(owner.len() + 10 + rdata.len());
    out.extend_from_slice(owner);
    out.extend_from_slice(&rtype.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&ttl.to_be_bytes());
    out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    out.extend_from_slice(rdata);
    out.into_boxed_slice()
}

/// Length of the uncompressed owner name at the start of `record`.
pub fn owner_len(record: &[u8]) -> usize {
    let mut pos = 0;
    while let Some(&len) = record.get(pos) {
        pos += 1 + usize::from(len);
        if len == 0 {
            break;
        }
    }
    pos.min(record.len())
}

/// The type of an uncompressed record.
pub fn record_type(record: &[u8]) -> u16 {
    read_u16(record, owner_len(record)).unwrap_or(0)
}

/// A response message being filled with records, owner names compressed.
pub struct MessageBuilder {
    buf: Vec<u8>,
    answers: u16,
    /// Append an OPT record when finishing.
    edns: bool,
    /// Lowercase name suffixes already written → their offset.
    names: HashMap<Box<[u8]>, u16>,
}

impl MessageBuilder {
    /// A response to `request` (QR set, opcode copied, AA as given) with its
    /// question echoed.
    pub fn response(request: &Request, authoritative: bool) -> Self {
        let mut buf = Vec::with_capacity(MESSAGE_TARGET + 512);
        buf.extend_from_slice(&request.id.to_be_bytes());
        let mut flags: u16 = 0x8000 | (request.flags & 0x7800);
        if authoritative {
            flags |= 0x0400;
        }
        buf.extend_from_slice(&flags.to_be_bytes());
        buf.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
        buf.extend_from_slice(&request.question);
        let mut builder = Self {
            buf,
            answers: 0,
            edns: request.edns,
            names: HashMap::new(),
        };
        builder.remember_name(&request.qname, HEADER_LEN);
        builder
    }

    /// A query (or NOTIFY) with one question and no records.
    pub fn query(id: u16, opcode: u8, qname: &[u8], qtype: u16, authoritative: bool) -> Self {
        let mut buf = Vec::with_capacity(512);
        buf.extend_from_slice(&id.to_be_bytes());
        let mut flags = u16::from(opcode & 0x0f) << 11;
        if authoritative {
            flags |= 0x0400;
        }
        buf.extend_from_slice(&flags.to_be_bytes());
        buf.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
        buf.extend_from_slice(qname);
        buf.extend_from_slice(&qtype.to_be_bytes());
        buf.extend_from_slice(&1u16.to_be_bytes());
        let mut builder = Self {
            buf,
            answers: 0,
            edns: false,
            names: HashMap::new(),
        };
        builder.remember_name(qname, HEADER_LEN);
        builder
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether no record was added.
    pub fn is_empty(&self) -> bool {
        self.answers == 0
    }

    /// Appends one uncompressed record to the answer section.
    pub fn push_answer(&mut self, record: &[u8]) {
        let owner_end = owner_len(record);
        let owner = &record[..owner_end];
        let start = self.buf.len();
        // Find the longest suffix already written.
        let mut pos = 0;
        let mut pointer = None;
        while pos < owner.len() {
            let len = usize::from(owner[pos]);
            if len == 0 {
                break;
            }
            if let Some(&offset) = self.names.get(&owner[pos..]) {
                pointer = Some(offset);
                break;
            }
            pos += 1 + len;
        }
        match pointer {
            Some(offset) => {
                self.buf.extend_from_slice(&owner[..pos]);
                self.buf.extend_from_slice(&(0xc000 | offset).to_be_bytes());
            }
            None => self.buf.extend_from_slice(owner),
        }
        self.remember_prefix(owner, pos, start);
        self.buf.extend_from_slice(&record[owner_end..]);
        self.answers = self.answers.saturating_add(1);
    }

    /// Records every suffix of `name`, written at `offset`.
    fn remember_name(&mut self, name: &[u8], offset: usize) {
        self.remember_prefix(name, name.len(), offset);
    }

    /// Records the suffixes of `name` that start before `until`, written at `offset`.
    fn remember_prefix(&mut self, name: &[u8], until: usize, offset: usize) {
        let mut pos = 0;
        while pos < until.min(name.len()) {
            let len = usize::from(name[pos]);
            if len == 0 || offset + pos > 0x3fff {
                break;
            }
            self.names
                .entry(name[pos..].to_ascii_lowercase().into_boxed_slice())
                .or_insert((offset + pos) as u16);
            pos += 1 + len;
        }
    }

    /// The finished message with `rcode`.
    pub fn finish(mut self, rcode: u8) -> Vec<u8> {
        self.buf[3] = (self.buf[3] & 0xf0) | (rcode & 0x0f);
        self.buf[6..8].copy_from_slice(&self.answers.to_be_bytes());
        if self.edns {
            self.buf.push(0);
            self.buf.extend_from_slice(&TYPE_OPT.to_be_bytes());
            self.buf.extend_from_slice(&OPT_PAYLOAD.to_be_bytes());
            self.buf.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
            self.buf[10..12].copy_from_slice(&1u16.to_be_bytes());
        }
        self.buf
    }
}

/// A header-and-question response with `rcode` and no records.
pub fn empty_response(request: &Request, rcode: u8, authoritative: bool) -> Vec<u8> {
    MessageBuilder::response(request, authoritative).finish(rcode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_names_are_compressed_against_the_question() {
        let request = Request {
            id: 7,
            flags: 0,
            qname: b"\x07example\x04test\x00".to_vec().into_boxed_slice(),
            qtype: 252,
            qclass: 1,
            question: b"\x07example\x04test\x00\x00\xfc\x00\x01".to_vec(),
            soa_serial: None,
            tsig_start: None,
            edns: false,
        };
        let mut builder = MessageBuilder::response(&request, true);
        builder.push_answer(&record_bytes(
            b"\x03www\x07example\x04test\x00",
            1,
            60,
            &[1, 2, 3, 4],
        ));
        builder.push_answer(&record_bytes(
            b"\x03www\x07example\x04test\x00",
            1,
            60,
            &[1, 2, 3, 5],
        ));
        let message = builder.finish(0);
        let parsed = parse_request(&message).unwrap();
        assert_eq!(parsed.qtype, 252);
        // www + pointer, then a bare pointer to "www.example.test".
        let first = HEADER_LEN + request.question.len();
        assert_eq!(&message[first..first + 6], b"\x03www\xc0\x0c");
        let second = first + 6 + 10 + 4;
        assert_eq!(&message[second..second + 2], &[0xc0, first as u8]);
        let (name, _) = read_name(&message, second).unwrap();
        assert_eq!(&name[..], b"\x03www\x07example\x04test\x00");
    }

    #[test]
    fn pointer_loops_are_malformed() {
        let mut packet = vec![0u8; 12];
        packet.extend_from_slice(&[0xc0, 12]);
        assert!(read_name(&packet, 12).is_err());
    }
}

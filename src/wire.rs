//! The DNS vocabulary every layer shares: header and name limits, record
//! types, classes, response codes and wire-format name helpers. A leaf: it
//! imports nothing of the crate, so `zone`, `policy` and `dns` can all speak
//! DNS without the lower floors importing the query path (`dns`).

use std::fmt::Write as _;

/// Size of the fixed DNS header (RFC 1035 §4.1.1).
pub const HEADER_LEN: usize = 12;
/// Maximum length of a domain name in wire format (RFC 1035 §2.3.4).
pub const MAX_NAME_LEN: usize = 255;
/// Record types the query path treats specially.
pub mod rtype {
    /// IPv4 address.
    pub const A: u16 = 1;
    /// Name server.
    pub const NS: u16 = 2;
    /// Canonical name.
    pub const CNAME: u16 = 5;
    /// Start of authority.
    pub const SOA: u16 = 6;
    /// Mail exchanger.
    pub const MX: u16 = 15;
    /// IPv6 address.
    pub const AAAA: u16 = 28;
    /// Service locator.
    pub const SRV: u16 = 33;
    /// EDNS(0) pseudo-record.
    pub const OPT: u16 = 41;
    /// Incremental zone transfer.
    pub const IXFR: u16 = 251;
    /// Full zone transfer.
    pub const AXFR: u16 = 252;
    /// Obsolete mailbox query types.
    pub const MAILB: u16 = 253;
    /// Obsolete mailbox query types.
    pub const MAILA: u16 = 254;
    /// "All records" query type.
    pub const ANY: u16 = 255;
}

/// Class IN.
pub const CLASS_IN: u16 = 1;
/// Class ANY (RFC 1035 §3.2.5), only meaningful in queries.
pub const CLASS_ANY: u16 = 255;

/// Response codes used by gslb (RFC 1035 §4.1.1, RFC 6891 §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rcode {
    /// No error.
    NoError,
    /// The query could not be interpreted.
    FormErr,
    /// The server failed to answer.
    ServFail,
    /// The name does not exist.
    NxDomain,
    /// The kind of query is not implemented.
    NotImp,
    /// The server refuses to answer (e.g. a name outside its zones).
    Refused,
    /// Not authorised (RFC 8945 §5.2: a transfer request whose TSIG fails).
    NotAuth,
    /// Unsupported EDNS version (extended rcode 16).
    BadVers,
}

impl Rcode {
    /// The full 12-bit rcode value.
    pub fn value(self) -> u16 {
        match self {
            Rcode::NoError => 0,
            Rcode::FormErr => 1,
            Rcode::ServFail => 2,
            Rcode::NxDomain => 3,
            Rcode::NotImp => 4,
            Rcode::Refused => 5,
            Rcode::NotAuth => 9,
            Rcode::BadVers => 16,
        }
    }

    /// Lowercase name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Rcode::NoError => "noerror",
            Rcode::FormErr => "formerr",
            Rcode::ServFail => "servfail",
            Rcode::NxDomain => "nxdomain",
            Rcode::NotImp => "notimp",
            Rcode::Refused => "refused",
            Rcode::NotAuth => "notauth",
            Rcode::BadVers => "badvers",
        }
    }
}

/// Lowercases a wire-format name into `out` (ASCII only, as DNS compares names).
/// Returns `None` when the name is not a valid uncompressed wire name.
pub fn lowercase_name(name: &[u8], out: &mut [u8; MAX_NAME_LEN]) -> Option<usize> {
    let len = name.len();
    if len > MAX_NAME_LEN {
        return None;
    }
    for (dst, src) in out.iter_mut().zip(name) {
        *dst = src.to_ascii_lowercase();
    }
    // Length bytes are < 64 so lowercasing never changes them.
    Some(len)
}

/// Offsets of each label start in a wire name, root excluded: for
/// `3www7example4test0` that is [0, 4, 12]. Each offset starts a valid
/// wire-format suffix name.
pub fn label_offsets(name: &[u8], out: &mut [u8; 128]) -> usize {
    let mut count = 0;
    let mut pos = 0usize;
    while let Some(&len) = name.get(pos) {
        if len == 0 || count == out.len() {
            break;
        }
        out[count] = pos as u8;
        count += 1;
        pos += 1 + usize::from(len);
    }
    count
}

/// Formats a wire name (uncompressed labels) as dotted text, for logs.
pub fn name_text(name: &[u8], out: &mut String) {
    let mut pos = 0;
    while let Some(&len) = name.get(pos) {
        if len == 0 || len & 0xc0 != 0 {
            break;
        }
        let Some(label) = name.get(pos + 1..pos + 1 + usize::from(len)) else {
            break;
        };
        for &b in label {
            if b.is_ascii_graphic() && b != b'.' && b != b'\\' {
                out.push(char::from(b));
            } else {
                let _ = write!(out, "\\{b:03}");
            }
        }
        out.push('.');
        pos += 1 + usize::from(len);
    }
    if out.is_empty() {
        out.push('.');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_print_dotted() {
        let mut out = String::new();
        name_text(b"\x03www\x07example\x04test\x00", &mut out);
        assert_eq!(out, "www.example.test.");
        let mut root = String::new();
        name_text(b"\x00", &mut root);
        assert_eq!(root, ".");
    }
}

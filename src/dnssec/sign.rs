//! RRSIG and NSEC RDATA: the canonical form of an RRset (RFC 4034 §6) and
//! its signature (RFC 4034 §3.1.8.1), and the compact-denial NSEC records
//! (RFC 9824). Pure functions of their inputs; the clock is the caller's.

use std::borrow::Cow;

use super::keys::ZoneKey;
use crate::wire::{CLASS_IN, rtype};

/// RRSIG type code.
pub const RRSIG: u16 = 46;
/// NSEC type code.
pub const NSEC: u16 = 47;
/// DNSKEY type code.
pub const DNSKEY: u16 = 48;
/// DS type code.
pub const DS: u16 = 43;
/// CDS type code (RFC 7344).
pub const CDS: u16 = 59;
/// CDNSKEY type code (RFC 7344).
pub const CDNSKEY: u16 = 60;
/// NXNAME pseudo-type of compact denial (RFC 9824 §2).
pub const NXNAME: u16 = 128;

/// The validity period written into every signature (Unix seconds, RFC 1982
/// serial arithmetic on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Signature inception.
    pub inception: u32,
    /// Signature expiration.
    pub expiration: u32,
}

/// Number of labels of a wire name for the RRSIG Labels field: the root
/// and a leading wildcard label are not counted (RFC 4034 §3.1.3).
pub fn rrsig_labels(owner: &[u8]) -> u8 {
    let mut count = 0u8;
    let mut pos = 0usize;
    while let Some(&len) = owner.get(pos) {
        if len == 0 {
            break;
        }
        if !(pos == 0 && len == 1 && owner.get(1) == Some(&b'*')) {
            count += 1;
        }
        pos += 1 + usize::from(len);
    }
    count
}

/// The RRSIG RDATA covering the RRset (`owner`, `rtype`, `ttl`, `rdatas`)
/// made with `key`; `owner` and `signer` are lowercase wire names.
/// `None` only if the system random source fails.
pub fn rrsig<'r>(
    key: &ZoneKey,
    signer: &[u8],
    owner: &[u8],
    record_type: u16,
    ttl: u32,
    window: Window,
    rdatas: impl IntoIterator<Item = &'r [u8]>,
) -> Option<Box<[u8]>> {
    let mut rdata = Vec::with_capacity(18 + signer.len() + 64);
    rdata.extend_from_slice(&record_type.to_be_bytes());
    rdata.push(key.algorithm.number());
    rdata.push(rrsig_labels(owner));
    rdata.extend_from_slice(&ttl.to_be_bytes());
    rdata.extend_from_slice(&window.expiration.to_be_bytes());
    rdata.extend_from_slice(&window.inception.to_be_bytes());
    rdata.extend_from_slice(&key.tag.to_be_bytes());
    rdata.extend_from_slice(signer);
    // RFC 4034 §6.3: the RRs sorted by their canonical RDATA, duplicates removed.
    let mut canonical: Vec<Cow<'_, [u8]>> = rdatas
        .into_iter()
        .map(|r| canonical_rdata(record_type, r))
        .collect();
    canonical.sort();
    canonical.dedup();
    let mut data = rdata.clone();
    let [t0, t1] = record_type.to_be_bytes();
    let [c0, c1] = CLASS_IN.to_be_bytes();
    let [l0, l1, l2, l3] = ttl.to_be_bytes();
    for record in &canonical {
        data.extend_from_slice(owner);
        let [r0, r1] = (record.len().min(usize::from(u16::MAX)) as u16).to_be_bytes();
        data.extend_from_slice(&[t0, t1, c0, c1, l0, l1, l2, l3, r0, r1]);
        data.extend_from_slice(record);
    }
    let signature = key.sign(&data).ok()?;
    rdata.extend_from_slice(&signature);
    Some(rdata.into_boxed_slice())
}

/// RDATA with the embedded domain names of the RFC 4034 §6.2 types (as
/// narrowed by RFC 6840 §5.1) in lowercase.
pub fn canonical_rdata(record_type: u16, rdata: &[u8]) -> Cow<'_, [u8]> {
    // (offset of the first name, names in a row) for each type that has them.
    let layout: Option<(usize, usize)> = match record_type {
        rtype::NS | 3 | 4 | rtype::CNAME | 7 | 8 | 9 | 12 | 39 => Some((0, 1)),
        rtype::SOA | 14 | 17 => Some((0, 2)),
        rtype::MX | 18 | 21 | 36 => Some((2, 1)),
        26 => Some((2, 2)),
        rtype::SRV => Some((6, 1)),
        35 => naptr_name_offset(rdata).map(|offset| (offset, 1)),
        _ => None,
    };
    let Some((mut pos, names)) = layout else {
        return Cow::Borrowed(rdata);
    };
    if !rdata.iter().any(u8::is_ascii_uppercase) {
        return Cow::Borrowed(rdata);
    }
    let mut out = rdata.to_vec();
    for _ in 0..names {
        while let Some(&len) = out.get(pos) {
            let end = pos + 1 + usize::from(len);
            if let Some(label) = out.get_mut(pos + 1..end) {
                label.make_ascii_lowercase();
            }
            pos = end;
            if len == 0 {
                break;
            }
        }
    }
    Cow::Owned(out)
}

/// Offset of the replacement name of a NAPTR RDATA: after order,
/// preference and three character strings.
fn naptr_name_offset(rdata: &[u8]) -> Option<usize> {
    let mut pos = 4usize;
    for _ in 0..3 {
        pos += 1 + usize::from(*rdata.get(pos)?);
    }
    Some(pos)
}

/// The NSEC RDATA of compact denial at `owner` (RFC 9824 §3): next name
/// `\000.owner`, then the type bitmap of `types` (RRSIG and NSEC added).
pub fn compact_nsec(owner: &[u8], types: &[u16]) -> Vec<u8> {
    let mut rdata = Vec::with_capacity(owner.len() + 2 + 40);
    rdata.extend_from_slice(&[1, 0]);
    rdata.extend_from_slice(owner);
    let mut all: Vec<u16> = types.to_vec();
    all.extend([RRSIG, NSEC]);
    all.sort_unstable();
    all.dedup();
    write_type_bitmap(&mut rdata, &all);
    rdata
}

/// RFC 4034 §4.1.2 type bitmap of sorted `types`.
fn write_type_bitmap(out: &mut Vec<u8>, types: &[u16]) {
    let mut window_start = 0usize;
    while window_start < types.len() {
        let window = (types[window_start] >> 8) as u8;
        let window_end = types[window_start..]
            .iter()
            .position(|t| (t >> 8) as u8 != window)
            .map_or(types.len(), |p| window_start + p);
        let mut bits = [0u8; 32];
        let mut used = 0usize;
        for &t in &types[window_start..window_end] {
            let low = usize::from(t & 0xff);
            bits[low / 8] |= 0x80 >> (low % 8);
            used = used.max(low / 8 + 1);
        }
        out.push(window);
        out.push(used as u8);
        out.extend_from_slice(&bits[..used]);
        window_start = window_end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_skip_root_and_wildcard() {
        assert_eq!(rrsig_labels(b"\x03www\x07example\x04test\x00"), 3);
        assert_eq!(rrsig_labels(b"\x01*\x07example\x04test\x00"), 2);
        assert_eq!(rrsig_labels(b"\x00"), 0);
    }

    #[test]
    fn nxname_bitmap_is_one_window_of_17_bytes() {
        let rdata = compact_nsec(b"\x01a\x00", &[NXNAME]);
        // next name \000.a.
        assert_eq!(&rdata[..5], b"\x01\x00\x01a\x00");
        let bitmap = &rdata[5..];
        assert_eq!(bitmap[0], 0);
        assert_eq!(bitmap[1], 17);
        assert_eq!(bitmap[2 + 5], 0x03, "RRSIG (46) and NSEC (47)");
        assert_eq!(bitmap[2 + 16], 0x80, "NXNAME (128)");
    }

    #[test]
    fn canonical_form_lowercases_names_only_where_rfc_4034_says() {
        let mx = b"\x00\x0a\x04MAIL\x07Example\x00";
        assert_eq!(
            &canonical_rdata(rtype::MX, mx)[..],
            b"\x00\x0a\x04mail\x07example\x00"
        );
        let txt = b"\x05HELLO";
        assert_eq!(&canonical_rdata(16, txt)[..], txt);
    }
}

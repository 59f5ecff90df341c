//! Static zone data: RFC 1035 files compiled into name → RRset maps, and the
//! lookup that turns a question name into a node, a referral or NXDOMAIN.
//!
//! Everything here is built once per snapshot and read-only afterwards; the
//! query path only does hash lookups on lowercase wire-format names. RDATA is
//! encoded at load time so answering is a copy.

mod load;

use std::collections::HashMap;

use rustc_hash::FxBuildHasher;
use std::path::{Path, PathBuf};

use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};

pub use load::{LocatedRecord, load_zone_file, parse_zone_text};

use crate::wire::{label_offsets, rtype};

/// Problems found while loading or validating a zone.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ZoneError {
    /// The file could not be read.
    #[error("{}: cannot read zone file: {message}", file.display())]
    Read {
        /// The zone file.
        file: PathBuf,
        /// The I/O error.
        message: String,
    },
    /// A line could not be parsed or breaks a zone rule.
    #[error("{}:{line}: {message}", file.display())]
    Syntax {
        /// The zone file.
        file: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A rule about the zone as a whole (no line to point at).
    #[error("{}: {message}", file.display())]
    Zone {
        /// The zone file.
        file: PathBuf,
        /// What is wrong and how to fix it.
        message: String,
    },
}

/// A domain name in lowercase, uncompressed wire format: the key of every map here.
pub type WireName = Box<[u8]>;

/// Converts a hickory name to lowercase wire format.
pub fn wire_name(name: &Name) -> WireName {
    let mut out = Vec::with_capacity(name.len() + 2);
    for label in name.iter() {
        out.push(label.len() as u8);
        out.extend(label.iter().map(u8::to_ascii_lowercase));
    }
    out.push(0);
    out.into_boxed_slice()
}

/// Offset of the serial in uncompressed SOA RDATA (after MNAME and RNAME).
fn soa_serial_offset(rdata: &[u8]) -> Option<usize> {
    let mut pos = 0usize;
    for _ in 0..2 {
        loop {
            let len = usize::from(*rdata.get(pos)?);
            pos += 1 + len;
            if len == 0 {
                break;
            }
        }
    }
    (pos + 4 <= rdata.len()).then_some(pos)
}

/// Renders a wire-format name as text, for logs and errors.
pub fn wire_name_to_string(name: &[u8]) -> String {
    let mut out = String::new();
    let mut pos = 0usize;
    while let Some(&len) = name.get(pos) {
        if len == 0 {
            break;
        }
        let label = name
            .get(pos + 1..pos + 1 + usize::from(len))
            .unwrap_or_default();
        out.push_str(&String::from_utf8_lossy(label));
        out.push('.');
        pos += 1 + usize::from(len);
    }
    if out.is_empty() {
        out.push('.');
    }
    out
}

/// The records of one name and type, pre-encoded.
#[derive(Debug, Clone)]
pub struct RRset {
    /// Record type.
    pub rtype: u16,
    /// TTL of the set (the smallest of its records, RFC 2181 §5.2).
    pub ttl: u32,
    /// Uncompressed RDATA of each record.
    pub rdatas: Vec<Box<[u8]>>,
    /// Names this set points at (NS, MX, SRV, CNAME targets), for additional
    /// processing and CNAME chasing.
    pub targets: Vec<WireName>,
    /// RRSIG RDATAs covering the set (empty unless the zone is signed;
    /// filled by `dnssec` when the snapshot is built).
    pub rrsigs: Vec<Box<[u8]>>,
}

impl RRset {
    /// The RDATA slices, as the reply writer takes them.
    pub fn rdata_slices(&self) -> impl Iterator<Item = &[u8]> {
        self.rdatas.iter().map(|r| &r[..])
    }
}

/// One name in a zone: its RRsets, or the service that answers for it.
#[derive(Debug, Clone, Default)]
pub struct Node {
    /// Static RRsets, sorted by type.
    pub rrsets: Vec<RRset>,
    /// The dynamic service answering at this name, if any.
    pub service: Option<usize>,
}

impl Node {
    /// The RRset of one type.
    pub fn rrset(&self, rtype: u16) -> Option<&RRset> {
        self.rrsets.iter().find(|r| r.rtype == rtype)
    }
}

/// Where a question name leads inside a zone.
#[derive(Debug)]
pub enum Resolution<'z> {
    /// The name exists (or a wildcard synthesises it).
    Node {
        /// Its data.
        node: &'z Node,
        /// Whether the node is the wildcard that matched (RFC 4592).
        from_wildcard: bool,
    },
    /// The name is at or below a zone cut: refer the client to the child.
    Referral {
        /// Owner of the delegation NS set.
        cut: &'z [u8],
        /// The delegation NS set.
        ns: &'z RRset,
    },
    /// The name does not exist.
    NxDomain,
}

/// A compiled authoritative zone.
#[derive(Debug, Clone)]
pub struct Zone {
    origin: WireName,
    /// Number of labels in `origin` (the root has none).
    origin_labels: usize,
    origin_text: String,
    /// Name → node, hashed with FxHash: keys are zone data, not attacker-chosen
    /// insertions, so a fast non-keyed hash is fine on the query path.
    nodes: HashMap<WireName, Node, FxBuildHasher>,
    soa: RRset,
    negative_ttl: u32,
    /// A secondary zone without data (never transferred, or expired):
    /// every query in it gets SERVFAIL (RFC 1035 §4.3.5).
    unavailable: bool,
}

impl Zone {
    /// Builds a zone from parsed records, checking the rules every zone must follow.
    ///
    /// # Errors
    /// Every problem found: missing or misplaced SOA, no apex NS, records
    /// outside the origin, CNAME beside other data.
    pub fn build(
        origin: &Name,
        file: &Path,
        records: Vec<LocatedRecord>,
    ) -> Result<Zone, Vec<ZoneError>> {
        let origin_wire = wire_name(origin);
        let mut errors = Vec::new();
        let syntax = |r: &LocatedRecord, message: String| ZoneError::Syntax {
            file: r.file.clone(),
            line: r.line,
            message,
        };
        let mut grouped: HashMap<(WireName, u16), (Vec<&LocatedRecord>, u32)> = HashMap::new();
        let mut soa_minimum = None;
        for located in &records {
            let record = &located.record;
            if !origin.zone_of(&record.name) {
                errors.push(syntax(
                    located,
                    format!(
                        "{} is outside the zone {}: fix the owner name or $ORIGIN",
                        record.name, origin
                    ),
                ));
                continue;
            }
            let owner = wire_name(&record.name);
            let type_code = u16::from(record.record_type());
            if let RData::SOA(soa) = &record.data {
                if owner != origin_wire {
                    errors.push(syntax(
                        located,
                        format!(
                            "SOA must be at the zone apex {origin}, not at {}",
                            record.name
                        ),
                    ));
                    continue;
                }
                if soa_minimum.is_some() {
                    errors.push(syntax(
                        located,
                        "a zone has exactly one SOA record; remove this one".to_string(),
                    ));
                    continue;
                }
                soa_minimum = Some(soa.minimum);
            }
            let entry = grouped
                .entry((owner, type_code))
                .or_insert_with(|| (Vec::new(), u32::MAX));
            entry.0.push(located);
            entry.1 = entry.1.min(record.ttl);
        }

        let mut nodes: HashMap<WireName, Node, FxBuildHasher> = HashMap::default();
        for ((owner, type_code), (located, ttl)) in grouped {
            let mut rrset = RRset {
                rtype: type_code,
                ttl,
                rdatas: Vec::with_capacity(located.len()),
                targets: Vec::new(),
                rrsigs: Vec::new(),
            };
            for item in &located {
                match encode_rdata(&item.record) {
                    Ok(bytes) => {
                        if !rrset.rdatas.contains(&bytes) {
                            rrset.rdatas.push(bytes);
                        }
                    }
                    Err(message) => errors.push(syntax(item, message)),
                }
                if let Some(target) = rdata_target(&item.record.data) {
                    rrset.targets.push(wire_name(target));
                }
            }
            if type_code == rtype::CNAME && rrset.rdatas.len() > 1 {
                errors.push(syntax(
                    located[1],
                    "a name can have only one CNAME record".to_string(),
                ));
            }
            add_empty_ancestors(&mut nodes, &owner, origin_wire.len());
            nodes.entry(owner).or_default().rrsets.push(rrset);
        }
        for (owner, node) in &mut nodes {
            node.rrsets.sort_by_key(|r| r.rtype);
            if node.rrset(rtype::CNAME).is_some() && node.rrsets.len() > 1 {
                let line = records.iter().find(|r| {
                    r.record.record_type() == RecordType::CNAME
                        && wire_name(&r.record.name) == *owner
                });
                if let Some(r) = line {
                    errors.push(syntax(r, format!("{} has a CNAME and other records; a CNAME must stand alone (RFC 1034 §3.6.2)", r.record.name)));
                }
            }
        }
        let soa = nodes
            .get(&origin_wire)
            .and_then(|n| n.rrset(rtype::SOA))
            .cloned();
        let apex_has_ns = nodes
            .get(&origin_wire)
            .is_some_and(|n| n.rrset(rtype::NS).is_some());
        let zone_error = |message: String| ZoneError::Zone {
            file: file.to_path_buf(),
            message,
        };
        let (Some(soa), Some(minimum)) = (soa, soa_minimum) else {
            errors.push(zone_error(format!(
                "zone {origin} has no SOA record at its apex: add one"
            )));
            return Err(errors);
        };
        if !apex_has_ns {
            errors.push(zone_error(format!(
                "zone {origin} has no NS records at its apex: add at least one"
            )));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Zone {
            origin_text: origin.to_ascii(),
            origin_labels: label_count(&origin_wire),
            origin: origin_wire,
            nodes,
            // RFC 2308 §5: negative answers are cached for min(SOA TTL, SOA MINIMUM).
            negative_ttl: soa.ttl.min(minimum),
            soa,
            unavailable: false,
        })
    }

    /// A zone with no data that answers SERVFAIL: a secondary zone before
    /// its first transfer or after it expired.
    pub fn unavailable(origin: &Name) -> Zone {
        let origin_wire = wire_name(origin);
        Zone {
            origin_text: origin.to_ascii(),
            origin_labels: label_count(&origin_wire),
            origin: origin_wire,
            nodes: HashMap::default(),
            soa: RRset {
                rtype: rtype::SOA,
                ttl: 0,
                rdatas: Vec::new(),
                targets: Vec::new(),
                rrsigs: Vec::new(),
            },
            negative_ttl: 0,
            unavailable: true,
        }
    }

    /// Whether the zone has no data to answer from (SERVFAIL).
    pub fn is_unavailable(&self) -> bool {
        self.unavailable
    }

    /// The SOA serial (0 for an unavailable zone).
    pub fn serial(&self) -> u32 {
        self.soa
            .rdatas
            .first()
            .and_then(|rdata| soa_serial_offset(rdata).map(|at| (rdata, at)))
            .and_then(|(rdata, at)| rdata.get(at..at + 4))
            .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Replaces the SOA serial (`serial = "auto"`).
    pub fn set_serial(&mut self, serial: u32) {
        let patch = |rrset: &mut RRset| {
            for rdata in &mut rrset.rdatas {
                if let Some(at) = soa_serial_offset(rdata)
                    && let Some(bytes) = rdata.get_mut(at..at + 4)
                {
                    bytes.copy_from_slice(&serial.to_be_bytes());
                }
            }
        };
        patch(&mut self.soa);
        if let Some(node) = self.nodes.get_mut(&self.origin)
            && let Some(rrset) = node.rrsets.iter_mut().find(|r| r.rtype == rtype::SOA)
        {
            patch(rrset);
        }
    }

    /// The zone's origin in lowercase wire format.
    pub fn origin(&self) -> &[u8] {
        &self.origin
    }

    /// The zone's origin as text.
    pub fn origin_text(&self) -> &str {
        &self.origin_text
    }

    /// The SOA RRset, for the authority section of negative answers.
    pub fn soa(&self) -> &RRset {
        &self.soa
    }

    /// TTL for the SOA in negative answers (RFC 2308 §5).
    pub fn negative_ttl(&self) -> u32 {
        self.negative_ttl
    }

    /// The node at exactly this name, if any.
    pub fn node(&self, name: &[u8]) -> Option<&Node> {
        self.nodes.get(name)
    }

    /// Every name of the zone with its node (empty non-terminals included).
    pub fn nodes(&self) -> impl Iterator<Item = (&[u8], &Node)> {
        self.nodes.iter().map(|(name, node)| (&name[..], node))
    }

    /// Every name of the zone with its node, for signing at build.
    pub fn nodes_mut(&mut self) -> impl Iterator<Item = (&[u8], &mut Node)> {
        self.nodes.iter_mut().map(|(name, node)| (&name[..], node))
    }

    /// Adds (or replaces) an RRset at the apex: the DNSKEY, CDS and
    /// CDNSKEY sets of a signed zone.
    pub fn set_apex_rrset(&mut self, rrset: RRset) {
        let node = self.nodes.entry(self.origin.clone()).or_default();
        node.rrsets.retain(|r| r.rtype != rrset.rtype);
        node.rrsets.push(rrset);
        node.rrsets.sort_by_key(|r| r.rtype);
    }

    /// Copies the apex SOA set (with its signatures, once signed) to the
    /// copy negative answers use.
    pub fn sync_soa(&mut self) {
        if let Some(soa) = self
            .nodes
            .get(&self.origin)
            .and_then(|n| n.rrset(rtype::SOA))
        {
            self.soa = soa.clone();
        }
    }

    /// Whether a name has static records.
    pub fn has_records(&self, name: &[u8]) -> bool {
        self.nodes.get(name).is_some_and(|n| !n.rrsets.is_empty())
    }

    /// Marks `name` as answered by service `service`.
    ///
    /// # Errors
    /// A description of the clash when the name already has static records or
    /// lies under a delegation.
    pub fn attach_service(&mut self, name: &[u8], service: usize) -> Result<(), String> {
        if let Some(node) = self.nodes.get(name)
            && !node.rrsets.is_empty()
        {
            let types: Vec<String> = node
                .rrsets
                .iter()
                .map(|r| RecordType::from(r.rtype).to_string())
                .collect();
            return Err(format!(
                "{} has static records ({}) in the zone file; a service name must not: remove them or rename the service",
                wire_name_to_string(name),
                types.join(", ")
            ));
        }
        if let Resolution::Referral { cut, .. } = self.resolve(name) {
            return Err(format!(
                "{} is below the delegation {}; serve it from the child zone instead",
                wire_name_to_string(name),
                wire_name_to_string(cut)
            ));
        }
        add_empty_ancestors(&mut self.nodes, name, self.origin.len());
        self.nodes.entry(name.into()).or_default().service = Some(service);
        Ok(())
    }

    /// Resolves a lowercase wire name that lies in this zone.
    pub fn resolve(&self, qname: &[u8]) -> Resolution<'_> {
        let mut offsets = [0u8; 128];
        let count = label_offsets(qname, &mut offsets);
        let origin_labels = self.origin_labels;
        // Walk down from just below the apex to the name itself, looking for a
        // zone cut; stop at the first missing name (nothing exists below it).
        let mut closest_encloser = &self.origin[..];
        // The last step of the walk (depth 0) is the name itself: keep its
        // node rather than looking it up again.
        let mut found = None;
        for depth in (0..count.saturating_sub(origin_labels)).rev() {
            let suffix = &qname[usize::from(offsets[depth])..];
            let Some((owner, node)) = self.nodes.get_key_value(suffix) else {
                return self.resolve_wildcard(closest_encloser);
            };
            if let Some(ns) = node.rrset(rtype::NS) {
                return Resolution::Referral { cut: owner, ns };
            }
            closest_encloser = suffix;
            found = Some(node);
        }
        // No step taken: the name is at (or above) the apex.
        match found.or_else(|| self.nodes.get(qname)) {
            Some(node) => Resolution::Node {
                node,
                from_wildcard: false,
            },
            None => self.resolve_wildcard(closest_encloser),
        }
    }

    /// RFC 4592 §3.3.1: the wildcard at the closest encloser answers for a
    /// name that does not exist.
    fn resolve_wildcard(&self, closest_encloser: &[u8]) -> Resolution<'_> {
        let mut wildcard = [0u8; 256];
        let len = closest_encloser.len() + 2;
        if len > wildcard.len() {
            return Resolution::NxDomain;
        }
        wildcard[0] = 1;
        wildcard[1] = b'*';
        wildcard[2..len].copy_from_slice(closest_encloser);
        match self.nodes.get(&wildcard[..len]) {
            Some(node) => Resolution::Node {
                node,
                from_wildcard: true,
            },
            None => Resolution::NxDomain,
        }
    }
}

/// Inserts empty nodes for every name between the apex and `owner`
/// (empty non-terminals exist: they get NODATA, not NXDOMAIN, RFC 4592 §2.2.2).
fn add_empty_ancestors(
    nodes: &mut HashMap<WireName, Node, FxBuildHasher>,
    owner: &[u8],
    origin_len: usize,
) {
    let mut offsets = [0u8; 128];
    let count = label_offsets(owner, &mut offsets);
    for &offset in &offsets[1..count.max(1)] {
        let suffix = &owner[usize::from(offset)..];
        if suffix.len() < origin_len {
            break;
        }
        nodes.entry(suffix.into()).or_default();
    }
}

fn label_count(name: &[u8]) -> usize {
    let mut offsets = [0u8; 128];
    label_offsets(name, &mut offsets)
}

/// Encodes RDATA without name compression (always legal, RFC 3597 §4).
fn encode_rdata(record: &Record) -> Result<Box<[u8]>, String> {
    let mut bytes = Vec::new();
    let mut encoder = BinEncoder::new(&mut bytes);
    encoder.set_name_encoding(NameEncoding::Uncompressed);
    record
        .data
        .emit(&mut encoder)
        .map_err(|err| format!("cannot encode {} record: {err}", record.record_type()))?;
    if bytes.len() > usize::from(u16::MAX) {
        return Err("record data longer than 65535 bytes".to_string());
    }
    Ok(bytes.into_boxed_slice())
}

fn rdata_target(data: &RData) -> Option<&Name> {
    match data {
        RData::NS(ns) => Some(&ns.0),
        RData::CNAME(cname) => Some(&cname.0),
        RData::MX(mx) => Some(&mx.exchange),
        RData::SRV(srv) => Some(&srv.target),
        _ => None,
    }
}

/// All served zones, found by longest matching origin.
#[derive(Debug, Clone, Default)]
pub struct ZoneSet {
    zones: Vec<Zone>,
    /// Origin → index in `zones`.
    by_origin: HashMap<WireName, usize, FxBuildHasher>,
    /// Bit `n` is set when some origin is `n` bytes long in wire format, so
    /// `find` hashes only the suffixes that can be an origin.
    origin_lengths: [u64; 4],
}

impl ZoneSet {
    /// Adds a zone; `false` if one with the same origin is already present.
    pub fn insert(&mut self, zone: Zone) -> bool {
        if self.by_origin.contains_key(zone.origin()) {
            return false;
        }
        let len = zone.origin.len();
        if let Some(word) = self.origin_lengths.get_mut(len / 64) {
            *word |= 1 << (len % 64);
        }
        self.by_origin.insert(zone.origin.clone(), self.zones.len());
        self.zones.push(zone);
        true
    }

    /// The zone with the longest origin that contains `qname` (lowercase wire).
    pub fn find(&self, qname: &[u8]) -> Option<&Zone> {
        self.find_index(qname)
            .and_then(|index| self.zones.get(index))
    }

    /// The index (see [`ZoneSet::get`]) of the zone [`ZoneSet::find`] returns.
    pub fn find_index(&self, qname: &[u8]) -> Option<usize> {
        // Longest suffix first: each label boundary, then the root.
        let mut pos = 0usize;
        while let Some(&len) = qname.get(pos) {
            if len == 0 {
                break;
            }
            let suffix = &qname[pos..];
            if self.may_be_origin(suffix.len())
                && let Some(&index) = self.by_origin.get(suffix)
            {
                return Some(index);
            }
            pos += 1 + usize::from(len);
        }
        let root = &qname[qname.len().saturating_sub(1)..];
        if self.may_be_origin(root.len()) {
            self.by_origin.get(root).copied()
        } else {
            None
        }
    }

    /// Whether some origin is `len` bytes long.
    fn may_be_origin(&self, len: usize) -> bool {
        self.origin_lengths
            .get(len / 64)
            .is_some_and(|word| word & (1 << (len % 64)) != 0)
    }

    /// The zone with exactly this origin, for attaching services.
    pub fn get_mut(&mut self, origin: &[u8]) -> Option<&mut Zone> {
        let index = *self.by_origin.get(origin)?;
        self.zones.get_mut(index)
    }

    /// The zone at `index` (stable for the life of the set).
    pub fn get(&self, index: usize) -> Option<&Zone> {
        self.zones.get(index)
    }

    /// The zones, in index order.
    pub fn as_slice(&self) -> &[Zone] {
        &self.zones
    }

    /// Iterates mutably over the zones, in index order (signing at build).
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Zone> {
        self.zones.iter_mut()
    }

    /// Iterates over the zones, in index order.
    pub fn iter(&self) -> impl Iterator<Item = &Zone> {
        self.zones.iter()
    }

    /// Number of zones.
    pub fn len(&self) -> usize {
        self.zones.len()
    }

    /// Whether there are no zones.
    pub fn is_empty(&self) -> bool {
        self.zones.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ZONE: &str = "$TTL 300
@ SOA ns1 hostmaster 1 7200 900 1209600 60
@ NS ns1
ns1 A 192.0.2.1
www A 192.0.2.10
*.wild TXT \"wild\"
a.b.c A 192.0.2.20
sub NS ns.sub
ns.sub A 192.0.2.53
";

    fn zone() -> Zone {
        let origin = Name::from_ascii("example.test.").unwrap();
        let records = parse_zone_text(ZONE, Path::new("t.zone"), &origin).unwrap();
        Zone::build(&origin, Path::new("t.zone"), records).unwrap()
    }

    fn wire(text: &str) -> WireName {
        wire_name(&Name::from_ascii(text).unwrap())
    }

    #[test]
    fn exact_wildcard_empty_nonterminal_referral_and_nxdomain() {
        let zone = zone();
        assert!(
            matches!(zone.resolve(&wire("www.example.test.")), Resolution::Node { from_wildcard: false, node } if node.rrset(rtype::A).is_some())
        );
        assert!(matches!(
            zone.resolve(&wire("x.wild.example.test.")),
            Resolution::Node {
                from_wildcard: true,
                ..
            }
        ));
        assert!(
            matches!(zone.resolve(&wire("b.c.example.test.")), Resolution::Node { node, .. } if node.rrsets.is_empty())
        );
        assert!(matches!(
            zone.resolve(&wire("deep.host.sub.example.test.")),
            Resolution::Referral { .. }
        ));
        assert!(matches!(
            zone.resolve(&wire("nope.example.test.")),
            Resolution::NxDomain
        ));
        // The wildcard does not answer below an existing name (RFC 4592 §2.2.1).
        assert!(matches!(
            zone.resolve(&wire("x.www.example.test.")),
            Resolution::NxDomain
        ));
        assert_eq!(zone.negative_ttl(), 60);
    }

    #[test]
    fn cname_beside_other_data_and_outside_records_are_errors() {
        let origin = Name::from_ascii("example.test.").unwrap();
        let text = "$TTL 60\n@ SOA ns1 h 1 2 3 4 5\n@ NS ns1\nwww CNAME x\nwww A 192.0.2.1\nother.test. A 192.0.2.2\n";
        let records = parse_zone_text(text, Path::new("t"), &origin).unwrap();
        let errors = Zone::build(&origin, Path::new("t"), records).unwrap_err();
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert!(
            text.iter()
                .any(|e| e.starts_with("t:6: ") && e.contains("outside")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|e| e.starts_with("t:4: ") && e.contains("CNAME")),
            "{text:?}"
        );
    }

    #[test]
    fn missing_soa_and_ns_are_reported() {
        let origin = Name::from_ascii("example.test.").unwrap();
        let records =
            parse_zone_text("$TTL 60\nwww A 192.0.2.1\n", Path::new("t"), &origin).unwrap();
        let errors = Zone::build(&origin, Path::new("t"), records).unwrap_err();
        assert!(errors[0].to_string().contains("no SOA"));
    }

    #[test]
    fn longest_origin_wins() {
        let mut set = ZoneSet::default();
        set.insert(zone());
        let origin = Name::from_ascii("sub.example.test.").unwrap();
        let records = parse_zone_text(
            "$TTL 60\n@ SOA ns h 1 2 3 4 5\n@ NS ns\nns A 192.0.2.9\n",
            Path::new("s"),
            &origin,
        )
        .unwrap();
        set.insert(Zone::build(&origin, Path::new("s"), records).unwrap());
        assert_eq!(
            set.find(&wire("a.sub.example.test."))
                .unwrap()
                .origin_text(),
            "sub.example.test."
        );
        assert_eq!(
            set.find(&wire("www.example.test.")).unwrap().origin_text(),
            "example.test."
        );
        assert!(set.find(&wire("example.org.")).is_none());
    }
}

//! A small MaxMind DB writer, and the builder of the demo City database.
//!
//! Owns the encoding of the subset of the MaxMind DB format 2.0
//! (<https://maxmind.github.io/MaxMind-DB/>) that gslb needs to produce test
//! and demo databases: an IPv6 search tree with IPv4 at `::/96` (aliased at
//! `::ffff:0:0/96`), a data section of maps, arrays, UTF-8 strings, doubles,
//! unsigned integers and booleans, and the metadata section. Identical
//! records are stored once. It does no I/O: callers write the returned bytes.
//!
//! Invariant kept: output is a pure function of the input (the build epoch is
//! a parameter, [`BUILD_EPOCH`] by default), so a committed database can be
//! checked against its source. Every file written is one libmaxminddb
//! accepts (it rejects a build epoch of 0, so none is written).

use std::collections::HashMap;

use ipnet::IpNet;

use super::GeoError;
use super::continent::{CONTINENT_CODES, continent_of_country};
use super::prefix_trie::PrefixTrie;

/// A value in the data section of a MaxMind DB.
#[derive(Clone, Debug, PartialEq)]
pub enum MmdbValue {
    /// A map with UTF-8 string keys, written in the given order.
    Map(Vec<(String, MmdbValue)>),
    /// A UTF-8 string.
    String(String),
    /// An IEEE 754 double.
    Double(f64),
    /// An unsigned 16-bit integer.
    U16(u16),
    /// An unsigned 32-bit integer.
    U32(u32),
    /// An unsigned 64-bit integer.
    U64(u64),
    /// A boolean.
    Bool(bool),
    /// An array of values.
    Array(Vec<MmdbValue>),
}

impl MmdbValue {
    /// Builds a map value from `(key, value)` pairs.
    pub fn map<K: Into<String>>(pairs: impl IntoIterator<Item = (K, MmdbValue)>) -> Self {
        MmdbValue::Map(pairs.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    /// Builds a string value.
    pub fn string(s: impl Into<String>) -> Self {
        MmdbValue::String(s.into())
    }
}

/// Header of the demo CSV source, see [`build_demo_mmdb`].
pub const DEMO_CSV_HEADER: &str = "network,country,continent,subdivision,latitude,longitude";

/// The same header with the optional subdivision name column.
pub const DEMO_CSV_HEADER_WITH_NAME: &str =
    "network,country,continent,subdivision,latitude,longitude,subdivision_name";

/// `database_type` of databases written in the flat (ip-location-db) layout.
pub const FLAT_DATABASE_TYPE: &str = "city ipvAll";

/// Build epoch written by default (2026-01-01T00:00:00Z): fixed so output
/// is reproducible, and not 0, which libmaxminddb rejects as invalid
/// metadata.
pub const BUILD_EPOCH: u64 = 1_767_225_600;

/// How records are shaped in a database built from the CSV source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    /// GeoIP2-City: `country.iso_code`, `continent.code`,
    /// `subdivisions[0].iso_code` and `.names.en`, `location.latitude` /
    /// `.longitude`.
    #[default]
    MaxMind,
    /// ip-location-db / DB-IP Lite flat city records: `country_code`,
    /// `continent_code` (when the CSV gives one), `state1` (the subdivision
    /// name, else its code), `latitude`, `longitude`.
    Flat,
}

/// `database_type` written into the demo database's metadata.
pub const DEMO_DATABASE_TYPE: &str = "gslb-Demo-City";

/// Writes a MaxMind DB (IPv6 tree, IPv4 at `::/96`) holding `entries`, with
/// build epoch [`BUILD_EPOCH`] so the output is reproducible.
///
/// Entries may overlap: later entries win over the range they cover (so list
/// general networks before specific ones). IPv4 networks are stored in the
/// IPv4 subtree and found by IPv4 lookups; the subtree is also aliased at
/// `::ffff:0:0/96` unless an entry already covers that range.
///
/// # Errors
///
/// [`GeoError::MmdbWrite`] if a value cannot be encoded (a string or
/// container over 16 MiB) or the file would exceed 32-bit record pointers.
pub fn write_mmdb(
    database_type: &str,
    entries: &[(IpNet, MmdbValue)],
) -> Result<Vec<u8>, GeoError> {
    write_mmdb_with_epoch(database_type, entries, BUILD_EPOCH)
}

/// Same as [`write_mmdb`] with an explicit `build_epoch` (Unix seconds)
/// written into the metadata.
///
/// # Errors
///
/// As [`write_mmdb`], and [`GeoError::MmdbWrite`] for a build epoch of 0.
pub fn write_mmdb_with_epoch(
    database_type: &str,
    entries: &[(IpNet, MmdbValue)],
    build_epoch: u64,
) -> Result<Vec<u8>, GeoError> {
    let mut data = DataSection::default();
    let mut placed = Vec::with_capacity(entries.len());
    for (net, value) in entries {
        placed.push((*net, data.add(value)?));
    }
    write_placed(database_type, data, &placed, build_epoch)
}

/// The data section being written: each distinct record encoded once.
#[derive(Default)]
struct DataSection {
    bytes: Vec<u8>,
    offsets: HashMap<Vec<u8>, u32>,
    scratch: Vec<u8>,
}

impl DataSection {
    /// Encodes `value` (or finds its earlier copy) and returns its offset.
    fn add(&mut self, value: &MmdbValue) -> Result<u32, GeoError> {
        self.scratch.clear();
        encode_value(value, &mut self.scratch)?;
        if let Some(offset) = self.offsets.get(&self.scratch) {
            return Ok(*offset);
        }
        let offset = u32::try_from(self.bytes.len())
            .ok()
            .filter(|o| *o < u32::MAX)
            .ok_or_else(|| write_error("data section exceeds 4 GiB"))?;
        self.bytes.extend_from_slice(&self.scratch);
        self.offsets.insert(self.scratch.clone(), offset);
        Ok(offset)
    }
}

/// Writes the search tree for `placed` (networks with data-section offsets,
/// later entries winning where they overlap), the data and the metadata.
fn write_placed(
    database_type: &str,
    data: DataSection,
    placed: &[(IpNet, u32)],
    build_epoch: u64,
) -> Result<Vec<u8>, GeoError> {
    if build_epoch == 0 {
        return Err(write_error(
            "build epoch 0: readers (libmaxminddb) reject it as invalid metadata",
        ));
    }
    let data = data.bytes;
    // Trie values: 0 = no data, otherwise data offset + 1.
    let mut trie = PrefixTrie::new(0u32, 128);
    for &(net, offset) in placed {
        let (bits, prefix_len) = match net.trunc() {
            IpNet::V4(v4) => (u128::from(u32::from(v4.network())), v4.prefix_len() + 96),
            IpNet::V6(v6) => (u128::from(v6.network()), v6.prefix_len()),
        };
        trie.insert(bits, prefix_len, offset + 1);
    }
    trie.collapse();

    let mut tree = SearchTree::new();
    for (bits, prefix_len, value) in trie.iter_leaves() {
        if let Some(offset) = value.checked_sub(1) {
            tree.insert(bits, prefix_len, Record::Data(offset));
        }
    }
    tree.alias_ipv4_mapped();

    let node_count = u32::try_from(tree.nodes.len())
        .map_err(|_| write_error("search tree exceeds 2^32 nodes"))?;
    let max_record = u64::from(node_count) + DATA_SEPARATOR_LEN as u64 + data.len() as u64;
    let record_size: u16 = if max_record < 1 << 24 {
        24
    } else if max_record < 1 << 28 {
        28
    } else if max_record <= u64::from(u32::MAX) {
        32
    } else {
        return Err(write_error("search tree and data exceed 32-bit records"));
    };

    let mut out = Vec::with_capacity(tree.nodes.len() * 8 + data.len() + 512);
    for node in &tree.nodes {
        let [left, right] = node.map(|record| match record {
            Record::Empty => node_count,
            Record::Node(idx) => idx,
            // Cannot overflow: bounded by `max_record` checked above.
            Record::Data(offset) => node_count + DATA_SEPARATOR_LEN as u32 + offset,
        });
        write_node(&mut out, record_size, left, right);
    }
    out.extend_from_slice(&[0u8; DATA_SEPARATOR_LEN]);
    out.extend_from_slice(&data);
    out.extend_from_slice(METADATA_MARKER);
    let metadata = MmdbValue::map([
        ("binary_format_major_version", MmdbValue::U16(2)),
        ("binary_format_minor_version", MmdbValue::U16(0)),
        ("build_epoch", MmdbValue::U64(build_epoch)),
        ("database_type", MmdbValue::string(database_type)),
        (
            "description",
            MmdbValue::map([(
                "en",
                MmdbValue::string(format!("{database_type} written by gslb")),
            )]),
        ),
        ("ip_version", MmdbValue::U16(6)),
        ("languages", MmdbValue::Array(vec![MmdbValue::string("en")])),
        ("node_count", MmdbValue::U32(node_count)),
        ("record_size", MmdbValue::U16(record_size)),
    ]);
    encode_value(&metadata, &mut out)?;
    Ok(out)
}

/// Builds the demo GeoIP2-City-shaped database from its CSV source: the
/// [`Layout::MaxMind`] layout, database type [`DEMO_DATABASE_TYPE`], build
/// epoch [`BUILD_EPOCH`]. See [`build_mmdb_from_csv`].
///
/// # Errors
///
/// As [`build_mmdb_from_csv`].
pub fn build_demo_mmdb(source_text: &str) -> Result<Vec<u8>, GeoError> {
    build_mmdb_from_csv(source_text, Layout::MaxMind, BUILD_EPOCH)
}

/// Builds a database in `layout` from a CSV source.
///
/// The source has the header [`DEMO_CSV_HEADER`] (or
/// [`DEMO_CSV_HEADER_WITH_NAME`]) and one network per line:
/// `network,country,continent,subdivision,latitude,longitude[,subdivision_name]`.
/// Cells may be empty (latitude and longitude together); cells cannot
/// contain commas. Blank lines and lines starting with `#` are ignored. An
/// empty continent is derived from the country (in the MaxMind layout).
///
/// # Errors
///
/// [`GeoError::DemoCsv`] naming the line of a malformed header, network,
/// country, continent or coordinate; [`GeoError::MmdbWrite`] as in
/// [`write_mmdb_with_epoch`].
pub fn build_mmdb_from_csv(
    source_text: &str,
    layout: Layout,
    build_epoch: u64,
) -> Result<Vec<u8>, GeoError> {
    // A city-sized source has millions of networks but far fewer distinct
    // locations: each distinct row is parsed and encoded once.
    let mut data = DataSection::default();
    let mut by_row: HashMap<[&str; 6], u32> = HashMap::new();
    let mut placed = Vec::new();
    let mut columns = 0;
    for (idx, raw) in source_text.lines().enumerate() {
        let line = idx + 1;
        let text = raw.trim();
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        let cells: Vec<&str> = text.split(',').map(str::trim).collect();
        if columns == 0 {
            let header = cells.join(",");
            columns = if header == DEMO_CSV_HEADER {
                6
            } else if header == DEMO_CSV_HEADER_WITH_NAME {
                7
            } else {
                return Err(csv_error(
                    line,
                    format!(
                        "expected header \"{DEMO_CSV_HEADER}\" (optionally with \",subdivision_name\"), found \"{text}\""
                    ),
                ));
            };
            continue;
        }
        if cells.len() != columns {
            return Err(csv_error(
                line,
                format!("expected {columns} cells, found {}", cells.len()),
            ));
        }
        let net = parse_demo_network(line, cells[0])?;
        let row = [
            cells[1],
            cells[2],
            cells[3],
            cells[4],
            cells[5],
            cells.get(6).copied().unwrap_or(""),
        ];
        let offset = match by_row.get(&row) {
            Some(offset) => *offset,
            None => {
                let offset = data.add(&parse_demo_record(line, row, layout)?)?;
                by_row.insert(row, offset);
                offset
            }
        };
        placed.push((net, offset));
    }
    if columns == 0 {
        return Err(csv_error(
            1,
            format!("missing header \"{DEMO_CSV_HEADER}\""),
        ));
    }
    let database_type = match layout {
        Layout::MaxMind => DEMO_DATABASE_TYPE,
        Layout::Flat => FLAT_DATABASE_TYPE,
    };
    write_placed(database_type, data, &placed, build_epoch)
}

/// Size of the all-zero separator between search tree and data section.
const DATA_SEPARATOR_LEN: usize = 16;

/// Marks the start of the metadata section.
const METADATA_MARKER: &[u8] = b"\xAB\xCD\xEFMaxMind.com";

fn write_error(message: impl Into<String>) -> GeoError {
    GeoError::MmdbWrite {
        message: message.into(),
    }
}

fn csv_error(line: usize, message: impl Into<String>) -> GeoError {
    GeoError::DemoCsv {
        line,
        message: message.into(),
    }
}

fn parse_demo_network(line: usize, network: &str) -> Result<IpNet, GeoError> {
    let net: IpNet = network
        .parse()
        .map_err(|_| csv_error(line, format!("invalid network \"{network}\"")))?;
    if net.trunc() != net {
        return Err(csv_error(
            line,
            format!("network \"{network}\" has host bits set"),
        ));
    }
    Ok(net)
}

/// The record of a CSV row's cells after the network, shaped by `layout`.
fn parse_demo_record(line: usize, cells: [&str; 6], layout: Layout) -> Result<MmdbValue, GeoError> {
    let [
        country,
        continent,
        subdivision,
        latitude,
        longitude,
        subdivision_name,
    ] = cells;
    let continent_given = !continent.is_empty();
    let country = if country.is_empty() {
        None
    } else if country.len() == 2 && country.bytes().all(|b| b.is_ascii_alphabetic()) {
        Some(country.to_ascii_uppercase())
    } else {
        return Err(csv_error(
            line,
            format!("invalid country code \"{country}\""),
        ));
    };
    let continent = if continent.is_empty() {
        match &country {
            Some(c) => Some(
                continent_of_country(c)
                    .ok_or_else(|| {
                        csv_error(line, format!("unknown country \"{c}\": give its continent"))
                    })?
                    .to_owned(),
            ),
            None => None,
        }
    } else {
        let upper = continent.to_ascii_uppercase();
        if !CONTINENT_CODES.contains(&upper.as_str()) {
            return Err(csv_error(
                line,
                format!(
                    "invalid continent \"{continent}\" (known: {})",
                    CONTINENT_CODES.join(", ")
                ),
            ));
        }
        Some(upper)
    };
    let coordinates = match (latitude.is_empty(), longitude.is_empty()) {
        (true, true) => None,
        (false, false) => Some((
            parse_coordinate(line, "latitude", latitude, 90.0)?,
            parse_coordinate(line, "longitude", longitude, 180.0)?,
        )),
        _ => {
            return Err(csv_error(
                line,
                "give both latitude and longitude or neither",
            ));
        }
    };

    if layout == Layout::Flat {
        let mut record = Vec::new();
        if let Some(code) = country {
            record.push(("country_code".to_owned(), MmdbValue::String(code)));
        }
        if continent_given && let Some(code) = continent {
            record.push(("continent_code".to_owned(), MmdbValue::String(code)));
        }
        let state = if subdivision_name.is_empty() {
            subdivision
        } else {
            subdivision_name
        };
        if !state.is_empty() {
            record.push(("state1".to_owned(), MmdbValue::string(state)));
        }
        if let Some((lat, lon)) = coordinates {
            record.push(("latitude".to_owned(), MmdbValue::Double(lat)));
            record.push(("longitude".to_owned(), MmdbValue::Double(lon)));
        }
        return Ok(MmdbValue::Map(record));
    }
    let mut record = Vec::new();
    if let Some(code) = continent {
        record.push((
            "continent".to_owned(),
            MmdbValue::map([("code", MmdbValue::String(code))]),
        ));
    }
    if let Some(code) = country {
        record.push((
            "country".to_owned(),
            MmdbValue::map([("iso_code", MmdbValue::String(code))]),
        ));
    }
    let mut first_subdivision = Vec::new();
    if !subdivision.is_empty() {
        first_subdivision.push(("iso_code", MmdbValue::string(subdivision)));
    }
    if !subdivision_name.is_empty() {
        first_subdivision.push((
            "names",
            MmdbValue::map([("en", MmdbValue::string(subdivision_name))]),
        ));
    }
    if !first_subdivision.is_empty() {
        record.push((
            "subdivisions".to_owned(),
            MmdbValue::Array(vec![MmdbValue::map(first_subdivision)]),
        ));
    }
    if let Some((lat, lon)) = coordinates {
        record.push((
            "location".to_owned(),
            MmdbValue::map([
                ("latitude", MmdbValue::Double(lat)),
                ("longitude", MmdbValue::Double(lon)),
            ]),
        ));
    }
    Ok(MmdbValue::Map(record))
}

fn parse_coordinate(line: usize, name: &str, text: &str, limit: f64) -> Result<f64, GeoError> {
    match text.parse::<f64>() {
        Ok(value) if value.is_finite() && value.abs() <= limit => Ok(value),
        _ => Err(csv_error(
            line,
            format!("invalid {name} \"{text}\" (must be within ±{limit})"),
        )),
    }
}

/// One record of a search-tree node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Record {
    /// No data for this range.
    Empty,
    /// Index of a child node.
    Node(u32),
    /// Offset of the record in the data section.
    Data(u32),
}

/// The search tree as an arena of nodes; node 0 is the root.
struct SearchTree {
    nodes: Vec<[Record; 2]>,
}

impl SearchTree {
    fn new() -> Self {
        SearchTree {
            nodes: vec![[Record::Empty; 2]],
        }
    }

    fn push(&mut self) -> u32 {
        // The node count is checked against u32 before writing; the arena
        // cannot grow past it without first exhausting memory.
        let idx = self.nodes.len() as u32;
        self.nodes.push([Record::Empty; 2]);
        idx
    }

    /// Sets the 128-bit prefix to `record`. Prefixes come from a collapsed
    /// trie's leaves, so they are disjoint and never replace a subtree.
    fn insert(&mut self, bits: u128, prefix_len: u8, record: Record) {
        if prefix_len == 0 {
            // A record cannot sit at the root: split it into both halves.
            self.nodes[0] = [record; 2];
            return;
        }
        let mut node = 0usize;
        for depth in 0..prefix_len - 1 {
            let bit = bit_at(bits, depth);
            node = match self.nodes[node][bit] {
                Record::Node(idx) => idx as usize,
                // Empty (or, defensively, data being split): descend into a
                // new node that keeps the old record on both sides.
                old => {
                    let idx = self.push();
                    self.nodes[idx as usize] = [old; 2];
                    self.nodes[node][bit] = Record::Node(idx);
                    idx as usize
                }
            };
        }
        self.nodes[node][bit_at(bits, prefix_len - 1)] = record;
    }

    /// Points `::ffff:0:0/96` at the IPv4 subtree (the node at `::/96`), as
    /// MaxMind's writer does, when the IPv4 subtree exists and nothing else
    /// is stored in the alias range.
    fn alias_ipv4_mapped(&mut self) {
        let mut node = 0usize;
        for _ in 0..96 {
            match self.nodes[node][0] {
                Record::Node(idx) => node = idx as usize,
                _ => return,
            }
        }
        let ipv4_node = node as u32;
        let mapped: u128 = 0xffff << 32;
        let mut node = 0usize;
        for depth in 0..95 {
            let bit = bit_at(mapped, depth);
            node = match self.nodes[node][bit] {
                Record::Node(idx) => idx as usize,
                Record::Empty => {
                    let idx = self.push();
                    self.nodes[node][bit] = Record::Node(idx);
                    idx as usize
                }
                Record::Data(_) => return,
            };
        }
        let last = &mut self.nodes[node][bit_at(mapped, 95)];
        if *last == Record::Empty {
            *last = Record::Node(ipv4_node);
        }
    }
}

fn bit_at(bits: u128, depth: u8) -> usize {
    ((bits >> (127 - depth)) & 1) as usize
}

fn write_node(out: &mut Vec<u8>, record_size: u16, left: u32, right: u32) {
    let [_, l1, l2, l3] = left.to_be_bytes();
    let [_, r1, r2, r3] = right.to_be_bytes();
    match record_size {
        24 => out.extend_from_slice(&[l1, l2, l3, r1, r2, r3]),
        28 => {
            let middle = (((left >> 24) & 0x0f) << 4 | ((right >> 24) & 0x0f)) as u8;
            out.extend_from_slice(&[l1, l2, l3, middle, r1, r2, r3]);
        }
        _ => {
            out.extend_from_slice(&left.to_be_bytes());
            out.extend_from_slice(&right.to_be_bytes());
        }
    }
}

// Data-section type numbers (spec: "Output Data Section").
const TYPE_STRING: u8 = 2;
const TYPE_DOUBLE: u8 = 3;
const TYPE_U16: u8 = 5;
const TYPE_U32: u8 = 6;
const TYPE_MAP: u8 = 7;
const TYPE_U64: u8 = 9;
const TYPE_ARRAY: u8 = 11;
const TYPE_BOOL: u8 = 14;

/// Appends `value` in data-section encoding.
fn encode_value(value: &MmdbValue, out: &mut Vec<u8>) -> Result<(), GeoError> {
    match value {
        MmdbValue::String(s) => {
            write_control(out, TYPE_STRING, s.len())?;
            out.extend_from_slice(s.as_bytes());
        }
        MmdbValue::Double(d) => {
            write_control(out, TYPE_DOUBLE, 8)?;
            out.extend_from_slice(&d.to_be_bytes());
        }
        MmdbValue::U16(n) => write_uint(out, TYPE_U16, u64::from(*n))?,
        MmdbValue::U32(n) => write_uint(out, TYPE_U32, u64::from(*n))?,
        MmdbValue::U64(n) => write_uint(out, TYPE_U64, *n)?,
        MmdbValue::Bool(b) => write_control(out, TYPE_BOOL, usize::from(*b))?,
        MmdbValue::Map(pairs) => {
            write_control(out, TYPE_MAP, pairs.len())?;
            for (key, value) in pairs {
                write_control(out, TYPE_STRING, key.len())?;
                out.extend_from_slice(key.as_bytes());
                encode_value(value, out)?;
            }
        }
        MmdbValue::Array(items) => {
            write_control(out, TYPE_ARRAY, items.len())?;
            for item in items {
                encode_value(item, out)?;
            }
        }
    }
    Ok(())
}

/// Unsigned integers are stored big-endian without leading zero bytes.
fn write_uint(out: &mut Vec<u8>, type_num: u8, n: u64) -> Result<(), GeoError> {
    let bytes = n.to_be_bytes();
    let skip = (n.leading_zeros() / 8) as usize;
    write_control(out, type_num, bytes.len() - skip)?;
    out.extend_from_slice(&bytes[skip..]);
    Ok(())
}

/// Control byte: type in the top 3 bits (0 plus an extension byte holding
/// `type - 7` for types above 7), size in the low 5 bits, with 29/30/31
/// meaning 1/2/3 following size bytes.
fn write_control(out: &mut Vec<u8>, type_num: u8, size: usize) -> Result<(), GeoError> {
    let (first_type, extended) = if type_num <= 7 {
        (type_num << 5, None)
    } else {
        (0, Some(type_num - 7))
    };
    let (size_bits, size_bytes): (u8, Vec<u8>) = if size < 29 {
        (size as u8, Vec::new())
    } else if size < 29 + 256 {
        (29, vec![(size - 29) as u8])
    } else if size < 285 + 65_536 {
        (30, ((size - 285) as u16).to_be_bytes().to_vec())
    } else if size < 65_821 + (1 << 24) {
        (31, ((size - 65_821) as u32).to_be_bytes()[1..].to_vec())
    } else {
        return Err(write_error(format!(
            "value of size {size} exceeds the format's limit"
        )));
    };
    out.push(first_type | size_bits);
    if let Some(ext) = extended {
        out.push(ext);
    }
    out.extend_from_slice(&size_bytes);
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::net::IpAddr;

    use serde::Deserialize;

    use super::*;

    #[derive(Deserialize, Debug, PartialEq)]
    struct Everything {
        name: String,
        score: f64,
        small: u16,
        mid: u32,
        big: u64,
        flag: bool,
        tags: Vec<String>,
        nested: BTreeMap<String, u32>,
    }

    fn everything(name: &str) -> MmdbValue {
        MmdbValue::map([
            ("name", MmdbValue::string(name)),
            ("score", MmdbValue::Double(-12.5)),
            ("small", MmdbValue::U16(0)),
            ("mid", MmdbValue::U32(70_000)),
            ("big", MmdbValue::U64(u64::MAX)),
            ("flag", MmdbValue::Bool(true)),
            (
                "tags",
                MmdbValue::Array(
                    (0..40)
                        .map(|i| MmdbValue::string(format!("t{i}")))
                        .collect(),
                ),
            ),
            (
                "nested",
                MmdbValue::map([("x".repeat(300), MmdbValue::U32(1))]),
            ),
        ])
    }

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn reader(bytes: Vec<u8>) -> maxminddb::Reader<Vec<u8>> {
        maxminddb::Reader::from_source(bytes).unwrap()
    }

    fn name_at(reader: &maxminddb::Reader<Vec<u8>>, addr: &str) -> Option<(String, u8)> {
        let result = reader.lookup(ip(addr)).unwrap();
        let network = result.network().unwrap();
        result
            .decode_path::<String>(&[maxminddb::PathElement::Key("name")])
            .unwrap()
            .map(|name| (name, network.prefix()))
    }

    #[test]
    fn written_database_reads_back_with_maxminddb() {
        let long = "é".repeat(70_000); // forces the 3-byte size form
        let entries = vec![
            (net("81.2.69.0/24"), everything("london")),
            (net("2001:218::/32"), everything("tokyo")),
            (
                net("10.0.0.0/8"),
                MmdbValue::map([("name", MmdbValue::string(long.clone()))]),
            ),
        ];
        let bytes = write_mmdb("Test-DB", &entries).unwrap();
        let reader = reader(bytes);
        reader.verify().unwrap();
        let meta = reader.metadata();
        assert_eq!(meta.database_type, "Test-DB");
        assert_eq!(meta.ip_version, 6);
        assert_eq!(meta.binary_format_major_version, 2);
        assert_eq!(meta.languages, vec!["en".to_owned()]);
        assert_eq!(meta.build_epoch, BUILD_EPOCH);

        let london: Everything = reader
            .lookup(ip("81.2.69.160"))
            .unwrap()
            .decode()
            .unwrap()
            .unwrap();
        assert_eq!(london.name, "london");
        assert_eq!(london.score, -12.5);
        assert_eq!(
            (london.small, london.mid, london.big),
            (0, 70_000, u64::MAX)
        );
        assert!(london.flag);
        assert_eq!(london.tags.len(), 40);
        assert_eq!(london.nested.get(&"x".repeat(300)), Some(&1));

        assert_eq!(name_at(&reader, "81.2.69.1"), Some(("london".into(), 24)));
        assert_eq!(
            name_at(&reader, "::ffff:81.2.69.1").map(|(n, _)| n),
            Some("london".into())
        );
        assert_eq!(
            name_at(&reader, "2001:218:ffff::1"),
            Some(("tokyo".into(), 32))
        );
        assert_eq!(name_at(&reader, "10.1.2.3").map(|(n, _)| n), Some(long));
        assert_eq!(name_at(&reader, "81.2.70.1"), None);
        assert_eq!(name_at(&reader, "2001:219::1"), None);
    }

    /// Issue 18: libmaxminddb (`mmdblookup`, Debian's mmdb-bin, which
    /// .ci/run installs) opens what `write_mmdb` writes: test fixtures and
    /// generated databases share this writer with `gslb geoip build`.
    #[test]
    fn libmaxminddb_accepts_what_the_writer_writes() {
        let dir = std::env::temp_dir().join(format!("gslb-mmdb-writer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("fixture.mmdb");
        let entries = vec![
            (net("81.2.69.0/24"), everything("london")),
            (net("2001:218::/32"), everything("tokyo")),
        ];
        std::fs::write(&file, write_mmdb("Test-DB", &entries).unwrap()).unwrap();
        for address in ["81.2.69.1", "2001:218::1", "::ffff:81.2.69.1"] {
            let out = std::process::Command::new("mmdblookup")
                .arg("--file")
                .arg(&file)
                .args(["--ip", address, "name"])
                .output()
                .expect("run mmdblookup (apt-get install mmdb-bin)");
            let printed = String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{address}: {printed}");
            assert!(printed.contains("<utf8_string>"), "{address}: {printed}");
        }
        assert!(matches!(
            write_mmdb_with_epoch("Test-DB", &entries, 0),
            Err(GeoError::MmdbWrite { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn later_entries_override_and_identical_records_are_stored_once() {
        let a = MmdbValue::map([("name", MmdbValue::string("a"))]);
        let b = MmdbValue::map([("name", MmdbValue::string("b"))]);
        let entries = vec![
            (net("10.0.0.0/8"), a.clone()),
            (net("10.1.0.0/16"), b.clone()),
            (net("11.0.0.0/8"), a.clone()),
        ];
        let bytes = write_mmdb("T", &entries).unwrap();
        let one = write_mmdb("T", &entries[..1]).unwrap();
        let reader = reader(bytes);
        assert_eq!(name_at(&reader, "10.1.0.1"), Some(("b".into(), 16)));
        assert_eq!(
            name_at(&reader, "10.2.0.1").map(|(n, _)| n),
            Some("a".into())
        );
        assert_eq!(
            name_at(&reader, "11.2.0.1").map(|(n, _)| n),
            Some("a".into())
        );
        let offsets: std::collections::HashSet<_> = ["10.2.0.1", "11.2.0.1"]
            .iter()
            .map(|a| reader.lookup(ip(a)).unwrap().offset())
            .collect();
        assert_eq!(offsets.len(), 1);
        assert!(reader.lookup(ip("12.0.0.1")).unwrap().offset().is_none());
        // Deterministic output.
        assert_eq!(write_mmdb("T", &entries[..1]).unwrap(), one);
    }

    #[test]
    fn default_route_and_host_routes_are_representable() {
        let entries = vec![
            (
                net("::/0"),
                MmdbValue::map([("name", MmdbValue::string("v6"))]),
            ),
            (
                net("0.0.0.0/0"),
                MmdbValue::map([("name", MmdbValue::string("v4"))]),
            ),
            (
                net("1.2.3.4/32"),
                MmdbValue::map([("name", MmdbValue::string("host"))]),
            ),
        ];
        let reader = reader(write_mmdb("T", &entries).unwrap());
        reader.verify().unwrap();
        assert_eq!(name_at(&reader, "1.2.3.4"), Some(("host".into(), 32)));
        assert_eq!(
            name_at(&reader, "1.2.3.5").map(|(n, _)| n),
            Some("v4".into())
        );
        assert_eq!(
            name_at(&reader, "2001:db8::1").map(|(n, _)| n),
            Some("v6".into())
        );
    }

    #[test]
    fn large_databases_switch_record_size() {
        let entries: Vec<_> = (0..3500u32)
            .map(|i| {
                let net = IpNet::new(IpAddr::from((i << 12).to_be_bytes()), 20).unwrap();
                (
                    net,
                    MmdbValue::map([("name", MmdbValue::string(format!("{i:0>5000}")))]),
                )
            })
            .collect();
        let reader = reader(write_mmdb("T", &entries).unwrap());
        assert_eq!(reader.metadata().record_size, 28);
        reader.verify().unwrap();
        let probe = IpAddr::from((3499u32 << 12).to_be_bytes());
        let name: String = reader
            .lookup(probe)
            .unwrap()
            .decode_path(&[maxminddb::PathElement::Key("name")])
            .unwrap()
            .unwrap();
        assert_eq!(name, format!("{:0>5000}", 3499));
    }

    #[test]
    fn demo_csv_rows_become_city_records() {
        let csv = format!(
            "# comment\n{DEMO_CSV_HEADER}\n81.2.69.0/24,gb,,,51.51,-0.09\n\n\
             216.160.83.0/24,US,NA,WA,47.25,-122.31\n2001:218::/32,JP,AS,,,\n"
        );
        let reader = reader(build_demo_mmdb(&csv).unwrap());
        assert_eq!(reader.metadata().database_type, DEMO_DATABASE_TYPE);
        let city: maxminddb::geoip2::City = reader
            .lookup(ip("81.2.69.1"))
            .unwrap()
            .decode()
            .unwrap()
            .unwrap();
        assert_eq!(city.country.iso_code, Some("GB"));
        assert_eq!(city.continent.code, Some("EU"));
        assert_eq!(city.location.latitude, Some(51.51));
        assert_eq!(city.location.longitude, Some(-0.09));
        let city: maxminddb::geoip2::City = reader
            .lookup(ip("216.160.83.56"))
            .unwrap()
            .decode()
            .unwrap()
            .unwrap();
        assert_eq!(
            city.subdivisions.first().and_then(|s| s.iso_code),
            Some("WA")
        );
        let city: maxminddb::geoip2::City = reader
            .lookup(ip("2001:218::1"))
            .unwrap()
            .decode()
            .unwrap()
            .unwrap();
        assert_eq!(city.country.iso_code, Some("JP"));
        assert_eq!(city.location.latitude, None);
    }

    #[test]
    fn demo_csv_errors_name_the_line() {
        let cases = [
            ("network,country\n", 1, "expected header"),
            ("", 1, "missing header"),
            (
                &format!("{DEMO_CSV_HEADER}\n1.2.3.0/24,GB,EU,,51\n"),
                2,
                "expected 6 cells",
            ),
            (
                &format!("{DEMO_CSV_HEADER}\n1.2.3.0/33,GB,EU,,,\n"),
                2,
                "invalid network",
            ),
            (
                &format!("{DEMO_CSV_HEADER}\n1.2.3.4/24,GB,EU,,,\n"),
                2,
                "host bits",
            ),
            (
                &format!("{DEMO_CSV_HEADER}\n\n1.2.3.0/24,GBR,EU,,,\n"),
                3,
                "invalid country",
            ),
            (
                &format!("{DEMO_CSV_HEADER}\n1.2.3.0/24,ZZ,,,,\n"),
                2,
                "unknown country",
            ),
            (
                &format!("{DEMO_CSV_HEADER}\n1.2.3.0/24,GB,XX,,,\n"),
                2,
                "invalid continent",
            ),
            (
                &format!("{DEMO_CSV_HEADER}\n1.2.3.0/24,GB,EU,,91,0\n"),
                2,
                "invalid latitude",
            ),
            (
                &format!("{DEMO_CSV_HEADER}\n1.2.3.0/24,GB,EU,,1,NaN\n"),
                2,
                "invalid longitude",
            ),
            (
                &format!("{DEMO_CSV_HEADER}\n1.2.3.0/24,GB,EU,,1,\n"),
                2,
                "both latitude",
            ),
        ];
        for (csv, want_line, want) in cases {
            match build_demo_mmdb(csv) {
                Err(GeoError::DemoCsv { line, message }) => {
                    assert_eq!(line, want_line, "{csv:?}: {message}");
                    assert!(message.contains(want), "{csv:?}: {message}");
                }
                other => panic!("{csv:?}: expected a csv error, got {other:?}"),
            }
        }
    }

    fn demo_paths() -> (std::path::PathBuf, std::path::PathBuf) {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("geoip");
        (dir.join("demo-city.csv"), dir.join("demo-city.mmdb"))
    }

    #[test]
    fn committed_demo_mmdb_matches_its_csv() {
        let (csv_path, mmdb_path) = demo_paths();
        let csv = std::fs::read_to_string(&csv_path).unwrap();
        let built = build_demo_mmdb(&csv).unwrap();
        if std::env::var_os("GSLB_REGENERATE_DEMO_MMDB").is_some() {
            std::fs::write(&mmdb_path, &built).unwrap();
        }
        let committed = std::fs::read(&mmdb_path).unwrap();
        assert!(
            committed == built,
            "{} is stale: rebuild it from {} (see geoip/README.md)",
            mmdb_path.display(),
            csv_path.display()
        );
    }
}

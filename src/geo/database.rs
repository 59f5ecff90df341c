//! Loads MaxMind DB (mmdb) files into a [`LocationTable`]: interned
//! [`Location`]s behind a per-family [`PrefixTable`].
//!
//! Owns the only use of the `maxminddb` reader in gslb, at build time: every
//! network of the database is read once, its record resolved through
//! configurable [`FieldPaths`], and the result compiled into collapsed
//! prefix tries. Lookups never touch the file again, allocate nothing and
//! take no locks. IPv4 data is read once from the IPv4 subtree (`::/96`);
//! its IPv6 aliases are skipped and IPv4-mapped addresses are looked up as
//! IPv4.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::path::Path;

use ipnet::IpNet;
use maxminddb::{Metadata, PathElement, Reader, WithinOptions};
use serde::Deserialize;
use serde::de::{self, Visitor};

use super::GeoError;
use super::continent::continent_of_country;
use super::prefix_trie::{Family, PrefixTable, net_bits};
use super::subdivision::SubdivisionTable;

/// Where each location field lives in a database record: a path of map keys
/// and array indices from the record's root. An empty path means the field
/// is not read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldPaths {
    /// ISO 3166-1 alpha-2 country code.
    pub country: Vec<String>,
    /// Continent code (`EU`, `NA`...); derived from the country when absent.
    pub continent: Vec<String>,
    /// First-level subdivision: a code (`WA`, `US-WA`) or a name
    /// (`Washington`), normalised to ISO 3166-2 at load.
    pub subdivision: Vec<String>,
    /// The subdivision's name, read when `subdivision` gives nothing (DB-IP
    /// Lite City has names but no codes).
    pub subdivision_name: Vec<String>,
    /// Latitude in degrees (number, or a string holding one).
    pub latitude: Vec<String>,
    /// Longitude in degrees (number, or a string holding one).
    pub longitude: Vec<String>,
    /// Autonomous system number.
    pub asn: Vec<String>,
    /// Autonomous system organisation name.
    pub as_org: Vec<String>,
}

impl FieldPaths {
    /// Layout of MaxMind GeoIP2/GeoLite2 City and Country databases (and
    /// compatible ones such as DB-IP Lite): `country.iso_code`,
    /// `continent.code`, `subdivisions.0.iso_code` (else
    /// `subdivisions.0.names.en`), `location.latitude`,
    /// `location.longitude`.
    pub fn maxmind() -> Self {
        FieldPaths {
            country: path(&["country", "iso_code"]),
            continent: path(&["continent", "code"]),
            subdivision: path(&["subdivisions", "0", "iso_code"]),
            subdivision_name: path(&["subdivisions", "0", "names", "en"]),
            latitude: path(&["location", "latitude"]),
            longitude: path(&["location", "longitude"]),
            ..FieldPaths::default()
        }
    }

    /// Flat layout of the ip-location-db databases: top-level
    /// `country_code`, `continent_code`, `state1`, `latitude`, `longitude`.
    pub fn flat() -> Self {
        FieldPaths {
            country: path(&["country_code"]),
            continent: path(&["continent_code"]),
            subdivision: path(&["state1"]),
            latitude: path(&["latitude"]),
            longitude: path(&["longitude"]),
            ..FieldPaths::default()
        }
    }

    /// Layout of GeoLite2-ASN (and compatible) databases:
    /// `autonomous_system_number`, `autonomous_system_organization`.
    pub fn asn() -> Self {
        FieldPaths {
            asn: path(&["autonomous_system_number"]),
            as_org: path(&["autonomous_system_organization"]),
            ..FieldPaths::default()
        }
    }

    /// Guesses the layout from the metadata `database_type`: names with
    /// `ASN` get [`asn`](Self::asn); `GeoIP2-*`, `GeoLite2-*`, `GeoIP-*` and
    /// `DBIP-*` get [`maxmind`](Self::maxmind); ip-location-db names
    /// (`country ...`, `city ...`) get [`flat`](Self::flat). `None` otherwise.
    pub fn auto(metadata: &Metadata) -> Option<Self> {
        let database_type = metadata.database_type.as_str();
        let lower = database_type.to_ascii_lowercase();
        if lower.contains("asn") {
            Some(Self::asn())
        } else if ["GeoIP2-", "GeoLite2-", "GeoIP-", "DBIP-"]
            .iter()
            .any(|prefix| database_type.starts_with(prefix))
        {
            Some(Self::maxmind())
        } else if lower.starts_with("country") || lower.starts_with("city") {
            Some(Self::flat())
        } else {
            None
        }
    }

    /// Parses a dotted path such as `subdivisions.0.iso_code`; all-digit
    /// segments index arrays. An empty string gives the empty path (field
    /// not read).
    ///
    /// # Errors
    ///
    /// [`GeoError::FieldPath`] if a segment is empty (`a..b`, `.a`, `a.`).
    pub fn parse_path(dotted: &str) -> Result<Vec<String>, GeoError> {
        if dotted.is_empty() {
            return Ok(Vec::new());
        }
        dotted
            .split('.')
            .map(|segment| {
                if segment.is_empty() {
                    Err(GeoError::FieldPath {
                        path: dotted.to_owned(),
                        message: "empty segment".to_owned(),
                    })
                } else {
                    Ok(segment.to_owned())
                }
            })
            .collect()
    }

    /// The configured (non-empty) paths, with the field names used in errors.
    fn configured(&self) -> impl Iterator<Item = (Field, &[String])> {
        [
            (Field::Country, &self.country),
            (Field::Continent, &self.continent),
            (Field::Subdivision, &self.subdivision),
            (Field::SubdivisionName, &self.subdivision_name),
            (Field::Latitude, &self.latitude),
            (Field::Longitude, &self.longitude),
            (Field::Asn, &self.asn),
            (Field::AsOrg, &self.as_org),
        ]
        .into_iter()
        .filter(|(_, p)| !p.is_empty())
        .map(|(f, p)| (f, p.as_slice()))
    }

    /// `field=dotted.path` list for error messages.
    fn describe(&self) -> String {
        self.configured()
            .map(|(field, p)| format!("{}={}", field.name(), p.join(".")))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn path(segments: &[&str]) -> Vec<String> {
    segments.iter().map(|s| (*s).to_owned()).collect()
}

/// Where a client is, as far as one database knows. Equality and hashing
/// compare coordinates by bit pattern so locations can be interned.
#[derive(Clone, Debug, Default)]
pub struct Location {
    /// ISO 3166-1 alpha-2 country code, upper case.
    pub country: Option<Box<str>>,
    /// ISO 3166-2 subdivision code (`US-WA`), whatever the database wrote
    /// (see [`super::subdivision`]); `None` when it wrote none or a name
    /// the ISO 3166-2 table does not know.
    pub subdivision: Option<Box<str>>,
    /// The subdivision as the database wrote it (`WA`, `Washington`), for
    /// `explain`.
    pub subdivision_raw: Option<Box<str>>,
    /// Continent code, upper case (`AF`, `AN`, `AS`, `EU`, `NA`, `OC`, `SA`).
    pub continent: Option<Box<str>>,
    /// `(latitude, longitude)` in degrees, when the database has both.
    pub latitude_longitude: Option<(f64, f64)>,
    /// Autonomous system number.
    pub asn: Option<u32>,
    /// Autonomous system organisation.
    pub as_org: Option<Box<str>>,
}

impl Location {
    /// The location with no known field (what [`LocationId::UNKNOWN`] names).
    pub const UNKNOWN: Location = Location {
        country: None,
        subdivision: None,
        subdivision_raw: None,
        continent: None,
        latitude_longitude: None,
        asn: None,
        as_org: None,
    };

    /// Whether no field is known.
    pub fn is_unknown(&self) -> bool {
        *self == Location::UNKNOWN
    }

    fn coordinate_bits(&self) -> Option<(u64, u64)> {
        self.latitude_longitude
            .map(|(lat, lon)| (lat.to_bits(), lon.to_bits()))
    }
}

impl PartialEq for Location {
    fn eq(&self, other: &Self) -> bool {
        self.country == other.country
            && self.subdivision == other.subdivision
            && self.subdivision_raw == other.subdivision_raw
            && self.continent == other.continent
            && self.coordinate_bits() == other.coordinate_bits()
            && self.asn == other.asn
            && self.as_org == other.as_org
    }
}

impl Eq for Location {}

impl Hash for Location {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.country.hash(state);
        self.subdivision.hash(state);
        self.subdivision_raw.hash(state);
        self.continent.hash(state);
        self.coordinate_bits().hash(state);
        self.asn.hash(state);
        self.as_org.hash(state);
    }
}

impl fmt::Display for Location {
    /// Compact form for traces: `EU/GB/GB-ENG (51.5142,-0.0931) AS123 Org`,
    /// `-` for unknown parts.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let part = |p: &Option<Box<str>>| p.as_deref().unwrap_or("-").to_owned();
        write!(
            f,
            "{}/{}/{}",
            part(&self.continent),
            part(&self.country),
            part(&self.subdivision)
        )?;
        if let Some((lat, lon)) = self.latitude_longitude {
            write!(f, " ({lat},{lon})")?;
        }
        if let Some(asn) = self.asn {
            write!(f, " AS{asn}")?;
        }
        if let Some(org) = &self.as_org {
            write!(f, " {org}")?;
        }
        Ok(())
    }
}

/// Index of an interned [`Location`] in its [`LocationTable`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LocationId(pub u32);

impl LocationId {
    /// The unknown (empty) location, for addresses the database does not
    /// cover or whose record has none of the configured fields.
    pub const UNKNOWN: LocationId = LocationId(0);
}

/// Counts from loading one database, for logs and reports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadStats {
    /// Networks read from the database (IPv4 networks once).
    pub networks: usize,
    /// IPv6 networks skipped because they alias IPv4 (`::ffff:0:0/96`).
    pub aliases_skipped: usize,
    /// Distinct data records decoded.
    pub records: usize,
    /// Distinct locations, including the unknown one.
    pub locations: usize,
    /// Nodes in the collapsed IPv4 trie.
    pub v4_nodes: usize,
    /// Nodes in the collapsed IPv6 trie.
    pub v6_nodes: usize,
    /// Bytes held by both collapsed tries.
    pub prefix_bytes: usize,
    /// For each configured field, how many distinct records had it.
    pub fields_found: Vec<(&'static str, usize)>,
}

/// A GeoIP database compiled into prefix tries of interned locations.
#[derive(Clone, Debug)]
pub struct LocationTable {
    /// Address → location id, collapsed so lookup depths are maximal.
    prefixes: PrefixTable<LocationId>,
    /// Interned locations; index 0 is [`Location::UNKNOWN`].
    locations: Vec<Location>,
    /// What loading found.
    stats: LoadStats,
}

impl LocationTable {
    /// Reads the mmdb at `path` and compiles it with `fields`.
    ///
    /// # Errors
    ///
    /// [`GeoError::Io`] if the file cannot be read, [`GeoError::NotMmdb`] if it
    /// is not a MaxMind DB, [`GeoError::Corrupt`] if its tree or data is bad,
    /// [`GeoError::FieldDecode`] if a field holds a value of the wrong type,
    /// [`GeoError::FieldsNotFound`] if no configured field occurs anywhere.
    pub fn load(path: &Path, fields: &FieldPaths) -> Result<Self, GeoError> {
        let reader = open(path)?;
        Self::build(path, &reader, fields)
    }

    /// Reads the mmdb at `path` with the field layout detected by
    /// [`FieldPaths::auto`], or else by probing which preset's fields its
    /// first records contain.
    ///
    /// # Errors
    ///
    /// As [`load`](Self::load), plus [`GeoError::UnknownLayout`] if no preset fits.
    pub fn load_auto(path: &Path) -> Result<Self, GeoError> {
        let reader = open(path)?;
        let fields = detect_fields(path, &reader)?;
        Self::build(path, &reader, &fields)
    }

    /// Compiles an mmdb held in memory; `origin` names it in errors.
    ///
    /// # Errors
    ///
    /// As [`load`](Self::load), without [`GeoError::Io`].
    pub fn from_bytes(
        bytes: Vec<u8>,
        origin: &Path,
        fields: &FieldPaths,
    ) -> Result<Self, GeoError> {
        let reader = Reader::from_source(bytes).map_err(|source| GeoError::NotMmdb {
            path: origin.to_owned(),
            source,
        })?;
        Self::build(origin, &reader, fields)
    }

    /// The location id for `ip` and the prefix length (in `ip`'s family,
    /// IPv4 for IPv4-mapped IPv6) over which the database gives that same
    /// location: the widest honest ECS scope for an answer that depends
    /// only on the location.
    #[inline]
    pub fn lookup(&self, ip: IpAddr) -> (LocationId, u8) {
        self.prefixes.lookup(ip)
    }

    /// [`lookup`](Self::lookup) followed by [`location`](Self::location).
    pub fn lookup_location(&self, ip: IpAddr) -> (&Location, u8) {
        let (id, prefix_len) = self.lookup(ip);
        (self.location(id), prefix_len)
    }

    /// The location named by `id`; [`Location::UNKNOWN`] for an id not from
    /// this table.
    pub fn location(&self, id: LocationId) -> &Location {
        self.locations
            .get(id.0 as usize)
            .unwrap_or(&Location::UNKNOWN)
    }

    /// All interned locations, indexed by [`LocationId`].
    pub fn locations(&self) -> &[Location] {
        &self.locations
    }

    /// The compiled prefix tables, e.g. to [`PrefixTable::map`] locations to
    /// decisions (which merges prefixes and widens scopes).
    pub fn prefixes(&self) -> &PrefixTable<LocationId> {
        &self.prefixes
    }

    /// What loading found.
    pub fn stats(&self) -> &LoadStats {
        &self.stats
    }

    fn build<S: AsRef<[u8]>>(
        path: &Path,
        reader: &Reader<S>,
        fields: &FieldPaths,
    ) -> Result<Self, GeoError> {
        let configured: Vec<(Field, Vec<PathElement<'_>>)> = fields
            .configured()
            .map(|(field, p)| (field, path_elements(p)))
            .collect();
        if configured.is_empty() {
            return Err(GeoError::FieldPath {
                path: String::new(),
                message: format!("no field paths configured for {}", path.display()),
            });
        }
        let corrupt = |source| GeoError::Corrupt {
            path: path.to_owned(),
            source,
        };

        let mut prefixes = PrefixTable::new(LocationId::UNKNOWN);
        let mut locations = vec![Location::UNKNOWN];
        let mut interned: HashMap<Location, LocationId> = HashMap::new();
        interned.insert(Location::UNKNOWN, LocationId::UNKNOWN);
        let mut by_offset: HashMap<usize, LocationId> = HashMap::new();
        let mut found = vec![0usize; configured.len()];
        let mut stats = LoadStats::default();

        // Default options skip networks without data and the IPv6 aliases
        // of the IPv4 subtree, so IPv4 networks come once, as IPv4.
        let networks = reader.networks(WithinOptions::default()).map_err(corrupt)?;
        for item in networks {
            let result = item.map_err(corrupt)?;
            let Some(offset) = result.offset() else {
                continue;
            };
            let network = result.network().map_err(corrupt)?;
            let net = IpNet::new(network.ip(), network.prefix()).map_err(|_| {
                corrupt(maxminddb::MaxMindDbError::invalid_database(format!(
                    "network {network} has an invalid prefix length"
                )))
            })?;
            if is_ipv4_mapped_alias(&net) {
                // Looked up as IPv4 anyway (see `addr_bits`).
                stats.aliases_skipped += 1;
                continue;
            }
            stats.networks += 1;
            let id = match by_offset.entry(offset) {
                Entry::Occupied(e) => *e.get(),
                Entry::Vacant(e) => {
                    let location = resolve(path, &net, &result, &configured, &mut found)?;
                    let next = LocationId(u32::try_from(locations.len()).map_err(|_| {
                        GeoError::TooManyLocations {
                            path: path.to_owned(),
                            max: u32::MAX,
                        }
                    })?);
                    let id = *interned.entry(location).or_insert_with_key(|location| {
                        locations.push(location.clone());
                        next
                    });
                    *e.insert(id)
                }
            };
            insert_network(&mut prefixes, net, id);
        }
        prefixes.collapse();

        stats.records = by_offset.len();
        stats.locations = locations.len();
        stats.v4_nodes = prefixes.v4.node_count();
        stats.v6_nodes = prefixes.v6.node_count();
        stats.prefix_bytes = prefixes.arena_bytes();
        stats.fields_found = configured
            .iter()
            .zip(&found)
            .map(|((field, _), n)| (field.name(), *n))
            .collect();
        if stats.networks > 0 && found.iter().all(|n| *n == 0) {
            return Err(GeoError::FieldsNotFound {
                path: path.to_owned(),
                fields: fields.describe(),
                networks: stats.networks,
            });
        }
        Ok(LocationTable {
            prefixes,
            locations,
            stats,
        })
    }
}

fn open(path: &Path) -> Result<Reader<Vec<u8>>, GeoError> {
    let bytes = std::fs::read(path).map_err(|source| GeoError::Io {
        path: path.to_owned(),
        source,
    })?;
    Reader::from_source(bytes).map_err(|source| GeoError::NotMmdb {
        path: path.to_owned(),
        source,
    })
}

/// Picks the field layout: from the metadata if it names a known database,
/// otherwise the preset whose fields occur most in the first records.
fn detect_fields<S: AsRef<[u8]>>(path: &Path, reader: &Reader<S>) -> Result<FieldPaths, GeoError> {
    if let Some(fields) = FieldPaths::auto(reader.metadata()) {
        return Ok(fields);
    }
    const PROBE_NETWORKS: usize = 1000;
    let presets = [FieldPaths::maxmind(), FieldPaths::flat(), FieldPaths::asn()];
    let mut hits = [0usize; 3];
    let corrupt = |source| GeoError::Corrupt {
        path: path.to_owned(),
        source,
    };
    let networks = reader.networks(WithinOptions::default()).map_err(corrupt)?;
    for item in networks.take(PROBE_NETWORKS) {
        let result = item.map_err(corrupt)?;
        for (preset, hit) in presets.iter().zip(hits.iter_mut()) {
            // Only the first configured field (country or asn) is probed.
            if let Some((_, p)) = preset.configured().next() {
                let elements = path_elements(p);
                if let Ok(Some(_)) = result.decode_path::<Scalar>(&elements) {
                    *hit += 1;
                }
            }
        }
    }
    presets
        .into_iter()
        .zip(hits)
        .filter(|(_, hit)| *hit > 0)
        .max_by_key(|(_, hit)| *hit)
        .map(|(preset, _)| preset)
        .ok_or_else(|| GeoError::UnknownLayout {
            path: path.to_owned(),
            database_type: reader.metadata().database_type.clone(),
        })
}

/// Networks in `::ffff:0:0/96`: IPv4-mapped addresses, which lookups fold
/// into IPv4, so data stored there would only shadow the IPv4 subtree.
fn is_ipv4_mapped_alias(net: &IpNet) -> bool {
    match net {
        IpNet::V6(v6) => v6.prefix_len() >= 96 && v6.network().to_ipv4_mapped().is_some(),
        IpNet::V4(_) => false,
    }
}

/// Inserts a database network. An IPv6 network covering `::/96` whole (a
/// database without a separate IPv4 subtree) also covers all of IPv4, as
/// mmdb lookups of IPv4 addresses walk 96 zero bits.
fn insert_network(prefixes: &mut PrefixTable<LocationId>, net: IpNet, id: LocationId) {
    if let (Family::V6, 0, prefix_len) = net_bits(net)
        && prefix_len <= 96
    {
        prefixes.v4.insert(0, 0, id);
    }
    prefixes.insert(net, id);
}

fn path_elements(p: &[String]) -> Vec<PathElement<'_>> {
    p.iter()
        .map(|segment| match segment.parse::<usize>() {
            Ok(index) if segment.bytes().all(|b| b.is_ascii_digit()) => PathElement::Index(index),
            _ => PathElement::Key(segment),
        })
        .collect()
}

/// Location fields, named as in [`FieldPaths`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    Country,
    Continent,
    Subdivision,
    SubdivisionName,
    Latitude,
    Longitude,
    Asn,
    AsOrg,
}

impl Field {
    fn name(self) -> &'static str {
        match self {
            Field::Country => "country",
            Field::Continent => "continent",
            Field::Subdivision => "subdivision",
            Field::SubdivisionName => "subdivision_name",
            Field::Latitude => "latitude",
            Field::Longitude => "longitude",
            Field::Asn => "asn",
            Field::AsOrg => "as_org",
        }
    }
}

/// Resolves the configured fields of one record into a location.
fn resolve<S: AsRef<[u8]>>(
    path: &Path,
    net: &IpNet,
    result: &maxminddb::LookupResult<'_, S>,
    configured: &[(Field, Vec<PathElement<'_>>)],
    found: &mut [usize],
) -> Result<Location, GeoError> {
    let mut location = Location::default();
    let (mut latitude, mut longitude) = (None, None);
    for ((field, elements), count) in configured.iter().zip(found.iter_mut()) {
        let fail = |message: String| GeoError::FieldDecode {
            path: path.to_owned(),
            field: field.name(),
            field_path: elements
                .iter()
                .map(|e| match e {
                    PathElement::Key(k) => (*k).to_owned(),
                    PathElement::Index(i) | PathElement::IndexFromEnd(i) => i.to_string(),
                })
                .collect::<Vec<_>>()
                .join("."),
            network: net.to_string(),
            message,
        };
        let value = match result.decode_path::<Scalar>(elements) {
            Ok(Some(value)) => value,
            Ok(None) => continue,
            Err(e) => return Err(fail(e.to_string())),
        };
        let before = location.clone();
        match field {
            Field::Country => location.country = value.code().map_err(fail)?,
            Field::Continent => location.continent = value.code().map_err(fail)?,
            Field::Subdivision => location.subdivision_raw = value.text().map_err(fail)?,
            Field::SubdivisionName if location.subdivision_raw.is_none() => {
                location.subdivision_raw = value.text().map_err(fail)?
            }
            Field::SubdivisionName => {}
            Field::AsOrg => location.as_org = value.text().map_err(fail)?,
            Field::Latitude => latitude = value.degrees(90.0).map_err(fail)?,
            Field::Longitude => longitude = value.degrees(180.0).map_err(fail)?,
            Field::Asn => location.asn = value.asn().map_err(fail)?,
        }
        let got_coordinate = match field {
            Field::Latitude => latitude.is_some(),
            Field::Longitude => longitude.is_some(),
            _ => false,
        };
        if got_coordinate || location != before {
            *count += 1;
        }
    }
    if let (Some(lat), Some(lon)) = (latitude, longitude) {
        location.latitude_longitude = Some((lat, lon));
    }
    if location.continent.is_none()
        && let Some(country) = &location.country
    {
        location.continent = continent_of_country(country).map(Box::from);
    }
    if let (Some(country), Some(raw)) = (&location.country, &location.subdivision_raw) {
        location.subdivision = subdivision_code(country, raw);
    }
    Ok(location)
}

/// The ISO 3166-2 code of a subdivision the database wrote as `raw`: from
/// the table, else, for a short code the table does not know yet (`XX`),
/// `COUNTRY-XX` as written, so rules still match it.
fn subdivision_code(country: &str, raw: &str) -> Option<Box<str>> {
    SubdivisionTable::get().normalise(country, raw).or_else(|| {
        let code = raw.trim();
        (code.len() <= 3 && code.bytes().all(|b| b.is_ascii_alphanumeric()))
            .then(|| format!("{country}-{}", code.to_ascii_uppercase()).into_boxed_str())
    })
}

/// A scalar decoded from a record without knowing its type in advance.
#[derive(Debug)]
enum Scalar {
    Str(String),
    Float(f64),
    Uint(u64),
    Int(i64),
    Bool(bool),
}

impl Scalar {
    /// Non-empty text; numbers are rejected.
    fn text(self) -> Result<Option<Box<str>>, String> {
        match self {
            Scalar::Str(s) if s.is_empty() => Ok(None),
            Scalar::Str(s) => Ok(Some(s.into_boxed_str())),
            other => Err(format!("expected a string, found {other:?}")),
        }
    }

    /// Non-empty text in upper case (country and continent codes).
    fn code(self) -> Result<Option<Box<str>>, String> {
        Ok(self
            .text()?
            .map(|s| s.to_ascii_uppercase().into_boxed_str()))
    }

    /// A coordinate within ±`limit` degrees, from a number or numeric string.
    fn degrees(self, limit: f64) -> Result<Option<f64>, String> {
        let value = match self {
            Scalar::Float(f) => f,
            Scalar::Uint(n) => n as f64,
            Scalar::Int(n) => n as f64,
            Scalar::Str(s) if s.is_empty() => return Ok(None),
            Scalar::Str(s) => s
                .trim()
                .parse()
                .map_err(|_| format!("expected degrees, found \"{s}\""))?,
            Scalar::Bool(b) => return Err(format!("expected degrees, found {b}")),
        };
        if value.is_finite() && value.abs() <= limit {
            Ok(Some(value))
        } else {
            Err(format!("{value} is not within ±{limit} degrees"))
        }
    }

    /// An AS number, from an integer or a string like `64496` / `AS64496`.
    fn asn(self) -> Result<Option<u32>, String> {
        let parsed = match &self {
            Scalar::Uint(n) => u32::try_from(*n).ok(),
            Scalar::Int(n) => u32::try_from(*n).ok(),
            Scalar::Str(s) if s.is_empty() => return Ok(None),
            Scalar::Str(s) => {
                let digits = s
                    .strip_prefix("AS")
                    .or_else(|| s.strip_prefix("as"))
                    .unwrap_or(s);
                digits.parse().ok()
            }
            Scalar::Float(_) | Scalar::Bool(_) => None,
        };
        parsed
            .map(Some)
            .ok_or_else(|| format!("expected an AS number, found {self:?}"))
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ScalarVisitor)
    }
}

struct ScalarVisitor;

impl Visitor<'_> for ScalarVisitor {
    type Value = Scalar;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string, number or boolean")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
        Ok(Scalar::Str(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Scalar, E> {
        Ok(Scalar::Str(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
        Ok(Scalar::Float(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
        Ok(Scalar::Uint(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
        Ok(Scalar::Int(v))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
        Ok(Scalar::Bool(v))
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Instant;

    use super::super::mmdb_writer::{MmdbValue, build_demo_mmdb, write_mmdb};
    use super::*;

    /// Path of a database in the shared compatibility set, for tests.
    fn shared_db(name: &str) -> Option<PathBuf> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/geoip")
            .join(name);
        if path.exists() {
            Some(path)
        } else {
            eprintln!("skipping: {} not found", path.display());
            None
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn origin() -> PathBuf {
        PathBuf::from("test.mmdb")
    }

    fn flat_record(country: &str) -> MmdbValue {
        MmdbValue::map([("country_code", MmdbValue::string(country))])
    }

    #[test]
    fn parse_path_splits_dots_and_rejects_empty_segments() {
        assert_eq!(
            FieldPaths::parse_path("subdivisions.0.iso_code").unwrap(),
            path(&["subdivisions", "0", "iso_code"])
        );
        assert_eq!(FieldPaths::parse_path("").unwrap(), Vec::<String>::new());
        for bad in ["a..b", ".a", "a."] {
            assert!(
                matches!(FieldPaths::parse_path(bad), Err(GeoError::FieldPath { .. })),
                "{bad}"
            );
        }
        assert_eq!(
            FieldPaths::parse_path("location.latitude").unwrap(),
            FieldPaths::maxmind().latitude
        );
    }

    #[test]
    fn demo_database_loads_with_detected_maxmind_layout() {
        let bytes = build_demo_mmdb(include_str!("../../geoip/demo-city.csv")).unwrap();
        let table = LocationTable::from_bytes(bytes, &origin(), &FieldPaths::maxmind()).unwrap();
        let (london, scope) = table.lookup_location(ip("81.2.69.160"));
        assert_eq!(london.country.as_deref(), Some("GB"));
        assert_eq!(london.continent.as_deref(), Some("EU"));
        assert_eq!(london.latitude_longitude, Some((51.51, -0.09)));
        assert_eq!(scope, 24);
        let (milton, _) = table.lookup_location(ip("216.160.83.56"));
        assert_eq!(milton.subdivision.as_deref(), Some("US-WA"));
        assert_eq!(milton.subdivision_raw.as_deref(), Some("WA"));
        let (tokyo, scope) = table.lookup_location(ip("2001:218:1::1"));
        assert_eq!((tokyo.country.as_deref(), scope), (Some("JP"), 32));
        // Continent derived from the country where the CSV left it empty.
        let (nl, _) = table.lookup_location(ip("2001:67c:2e8::1"));
        assert_eq!(nl.continent.as_deref(), Some("EU"));
        // IPv4-mapped IPv6 finds IPv4 data; the alias was not loaded twice.
        let (mapped, scope) = table.lookup_location(ip("::ffff:81.2.69.160"));
        assert_eq!((mapped.country.as_deref(), scope), (Some("GB"), 24));
        assert_eq!(table.stats().aliases_skipped, 0);
        assert_eq!(table.stats().networks, 9);
        let (unknown, _) = table.lookup(ip("192.0.2.1"));
        assert_eq!(unknown, LocationId::UNKNOWN);
        assert!(table.location(unknown).is_unknown());
    }

    #[test]
    fn scopes_widen_over_adjacent_networks_with_equal_locations() {
        let entries = vec![
            (net("10.0.0.0/9"), flat_record("SE")),
            (net("10.128.0.0/9"), flat_record("SE")),
            (net("10.64.0.0/10"), flat_record("GB")),
        ];
        let bytes = write_mmdb("country ipv4", &entries).unwrap();
        let table = LocationTable::from_bytes(bytes, &origin(), &FieldPaths::flat()).unwrap();
        let (se, scope) = table.lookup_location(ip("10.200.0.1"));
        assert_eq!(
            (se.country.as_deref(), se.continent.as_deref(), scope),
            (Some("SE"), Some("EU"), 9)
        );
        // The mapped table merges SE and GB into one decision: /8.
        let europe = table
            .prefixes()
            .map(|id| table.location(id).continent.is_some());
        assert_eq!(europe.lookup(ip("10.200.0.1")), (true, 8));
        assert_eq!(table.locations().len(), 3);
    }

    #[test]
    fn database_without_ipv4_subtree_covers_ipv4_from_an_ipv6_record() {
        let bytes = write_mmdb("country ipvAll", &[(net("::/0"), flat_record("JP"))]).unwrap();
        let table = LocationTable::from_bytes(bytes, &origin(), &FieldPaths::flat()).unwrap();
        assert_eq!(
            table
                .lookup_location(ip("2001:db8::1"))
                .0
                .country
                .as_deref(),
            Some("JP")
        );
        assert_eq!(
            table.lookup_location(ip("192.0.2.1")),
            (table.location(LocationId(1)), 0)
        );
    }

    #[test]
    fn numeric_strings_and_asn_strings_are_accepted() {
        let record = MmdbValue::map([
            ("latitude", MmdbValue::string("12.5")),
            ("longitude", MmdbValue::U32(7)),
            ("autonomous_system_number", MmdbValue::string("AS64496")),
            (
                "autonomous_system_organization",
                MmdbValue::string("Example"),
            ),
        ]);
        let bytes = write_mmdb("T", &[(net("192.0.2.0/24"), record)]).unwrap();
        let mut fields = FieldPaths::asn();
        fields.latitude = path(&["latitude"]);
        fields.longitude = path(&["longitude"]);
        let table = LocationTable::from_bytes(bytes, &origin(), &fields).unwrap();
        let (loc, _) = table.lookup_location(ip("192.0.2.1"));
        assert_eq!(loc.asn, Some(64496));
        assert_eq!(loc.as_org.as_deref(), Some("Example"));
        assert_eq!(loc.latitude_longitude, Some((12.5, 7.0)));
        assert_eq!(loc.to_string(), "-/-/- (12.5,7) AS64496 Example");
    }

    #[test]
    fn wrong_types_and_missing_fields_are_clear_errors() {
        let bytes = write_mmdb("T", &[(net("192.0.2.0/24"), flat_record("SE"))]).unwrap();
        let err = LocationTable::from_bytes(bytes.clone(), &origin(), &FieldPaths::maxmind())
            .unwrap_err();
        assert!(matches!(err, GeoError::FieldsNotFound { .. }), "{err}");
        assert!(
            err.to_string().contains("country=country.iso_code"),
            "{err}"
        );

        let mut fields = FieldPaths::flat();
        fields.latitude = path(&["country_code"]);
        let err = LocationTable::from_bytes(bytes.clone(), &origin(), &fields).unwrap_err();
        assert!(
            err.to_string()
                .contains("field latitude (path \"country_code\") of network 192.0.2.0/24"),
            "{err}"
        );

        let err = LocationTable::from_bytes(bytes, &origin(), &FieldPaths::default()).unwrap_err();
        assert!(
            err.to_string().contains("no field paths configured"),
            "{err}"
        );

        let err =
            LocationTable::from_bytes(b"not an mmdb".to_vec(), &origin(), &FieldPaths::flat())
                .unwrap_err();
        assert!(matches!(err, GeoError::NotMmdb { .. }), "{err}");
        assert!(
            err.to_string()
                .starts_with("test.mmdb is not a valid MaxMind DB file"),
            "{err}"
        );

        let missing = Path::new("/nonexistent/GeoIP2-City.mmdb");
        let err = LocationTable::load(missing, &FieldPaths::maxmind()).unwrap_err();
        assert!(matches!(err, GeoError::Io { .. }), "{err}");
        assert!(
            err.to_string().contains("/nonexistent/GeoIP2-City.mmdb"),
            "{err}"
        );
    }

    #[test]
    fn layout_detection_uses_metadata_then_probes_records() {
        let meta = |t: &str| {
            let bytes = write_mmdb(t, &[]).unwrap();
            Reader::from_source(bytes).unwrap().metadata().clone()
        };
        assert_eq!(
            FieldPaths::auto(&meta("GeoIP2-City")),
            Some(FieldPaths::maxmind())
        );
        assert_eq!(
            FieldPaths::auto(&meta("GeoLite2-ASN")),
            Some(FieldPaths::asn())
        );
        assert_eq!(
            FieldPaths::auto(&meta("country ipvAll")),
            Some(FieldPaths::flat())
        );
        assert_eq!(FieldPaths::auto(&meta("gslb-Demo-City")), None);

        let dir = std::env::temp_dir().join(format!("gslb-geo-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("custom.mmdb");
        std::fs::write(
            &file,
            write_mmdb("custom", &[(net("192.0.2.0/24"), flat_record("SE"))]).unwrap(),
        )
        .unwrap();
        let table = LocationTable::load_auto(&file).unwrap();
        assert_eq!(
            table.lookup_location(ip("192.0.2.1")).0.country.as_deref(),
            Some("SE")
        );
        let empty = MmdbValue::map([("other", MmdbValue::U32(1))]);
        std::fs::write(
            &file,
            write_mmdb("custom", &[(net("192.0.2.0/24"), empty)]).unwrap(),
        )
        .unwrap();
        let err = LocationTable::load_auto(&file).unwrap_err();
        assert!(matches!(err, GeoError::UnknownLayout { .. }), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Checks the compiled table against the mmdb reader itself: same
    /// country for the first and last address of every `stride`-th network
    /// and for random addresses, and a scope never narrower than the
    /// reader's network (the table may only merge, never split).
    fn assert_agrees_with_reader(
        file: &Path,
        table: &LocationTable,
        country: &[&str],
        stride: usize,
    ) {
        let reader = Reader::open_readfile(file).unwrap();
        let country: Vec<PathElement<'_>> = country.iter().map(|k| PathElement::Key(k)).collect();
        let mut probes = Vec::new();
        for (i, item) in reader
            .networks(WithinOptions::default())
            .unwrap()
            .enumerate()
        {
            if i % stride == 0 {
                let network = item.unwrap().network().unwrap();
                probes.push(network.network());
                probes.push(network.broadcast());
            }
        }
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..2000 {
            probes.push(IpAddr::from((next() as u32).to_be_bytes()));
            // Global unicast, minus 6to4 (2002::/16) and Teredo (2001::/32)
            // which mmdb files alias to IPv4 and the table does not.
            let v6 = (u128::from(next()) << 64 | u128::from(next())) & !(0xe000u128 << 112)
                | 0x2000u128 << 112;
            if v6 >> 112 != 0x2002 && v6 >> 96 != 0x2001_0000 {
                probes.push(IpAddr::from(v6.to_be_bytes()));
            }
        }
        for addr in probes {
            let result = reader.lookup(addr).unwrap();
            let want: Option<String> = result.decode_path(&country).unwrap();
            let (location, scope) = table.lookup_location(addr);
            assert_eq!(
                location.country.as_deref(),
                want.as_deref(),
                "{}: {addr}",
                file.display()
            );
            let reader_prefix = result.network().unwrap().prefix();
            assert!(
                scope <= reader_prefix,
                "{}: {addr}: scope {scope} > /{reader_prefix}",
                file.display()
            );
        }
    }

    fn check_maxmind_test_db(name: &str, city: bool) {
        let Some(file) = shared_db(name) else {
            return;
        };
        let table = LocationTable::load_auto(&file).unwrap();
        let country = |addr: &str| {
            table
                .lookup_location(ip(addr))
                .0
                .country
                .as_deref()
                .map(str::to_owned)
        };
        let (london, scope) = table.lookup_location(ip("81.2.69.160"));
        assert_eq!(london.country.as_deref(), Some("GB"), "{name}");
        assert_eq!(london.continent.as_deref(), Some("EU"), "{name}");
        assert!(scope >= 24, "{name}: scope {scope}");
        assert_eq!(country("89.160.20.112").as_deref(), Some("SE"), "{name}");
        assert_eq!(country("216.160.83.56").as_deref(), Some("US"), "{name}");
        assert_eq!(country("2001:218::1").as_deref(), Some("JP"), "{name}");
        assert_eq!(
            country("::ffff:81.2.69.160").as_deref(),
            Some("GB"),
            "{name}"
        );
        if city {
            assert_eq!(
                london.latitude_longitude,
                Some((51.5142, -0.0931)),
                "{name}"
            );
            let (milton, _) = table.lookup_location(ip("216.160.83.56"));
            assert_eq!(milton.subdivision.as_deref(), Some("US-WA"), "{name}");
            assert_eq!(
                milton.latitude_longitude,
                Some((47.2513, -122.3149)),
                "{name}"
            );
        }
        // ECS: 81.2.69.0 is outside the London /27 (the MaxMind test data
        // has nothing in 81.2.69.0/25), so it gets the unknown location with
        // a scope that does not reach the London networks.
        let (id, scope) = table.lookup(ip("81.2.69.0"));
        assert_eq!((id, scope), (LocationId::UNKNOWN, 25), "{name}");
        assert_agrees_with_reader(&file, &table, &["country", "iso_code"], 1);
        eprintln!("{name}: {:?}", table.stats());
    }

    #[test]
    fn maxmind_test_databases_give_known_answers() {
        check_maxmind_test_db("GeoIP2-City-Test.mmdb", true);
        check_maxmind_test_db("GeoLite2-City-Test.mmdb", true);
        check_maxmind_test_db("GeoIP2-Country-Test.mmdb", false);
        check_maxmind_test_db("GeoLite2-Country-Test.mmdb", false);
    }

    #[test]
    fn real_world_country_database_loads() {
        let Some(file) = shared_db("geo-whois-asn-country.mmdb") else {
            return;
        };
        let start = Instant::now();
        let table = LocationTable::load_auto(&file).unwrap();
        let elapsed = start.elapsed();
        eprintln!(
            "geo-whois-asn-country.mmdb: loaded in {elapsed:?}: {:?}",
            table.stats()
        );
        for addr in [
            "8.8.8.8",
            "1.1.1.1",
            "81.2.69.160",
            "193.0.6.139",
            "2001:4860:4860::8888",
            "::ffff:8.8.8.8",
        ] {
            let (location, scope) = table.lookup_location(ip(addr));
            eprintln!("  {addr} -> {location} /{scope}");
        }
        assert_eq!(
            table.lookup_location(ip("8.8.8.8")).0.country.as_deref(),
            Some("US")
        );
        assert_eq!(
            table.lookup_location(ip("8.8.8.8")).0.continent.as_deref(),
            Some("NA")
        );
        assert_eq!(
            table
                .lookup_location(ip("::ffff:8.8.8.8"))
                .0
                .country
                .as_deref(),
            Some("US")
        );
        assert!(table.stats().networks > 100_000);
        assert_agrees_with_reader(&file, &table, &["country_code"], 97);
    }
}

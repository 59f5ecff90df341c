//! Zone transfers (AXFR, IXFR), NOTIFY and TSIG: gslb as a primary for
//! other servers' secondaries and as a secondary of another primary.
//!
//! Two halves, like the rest of gslb:
//! - [`TransferSettings`] is built with the snapshot (`build_settings`):
//!   TSIG keys, who may transfer each zone, whom to NOTIFY, each secondary
//!   zone's primaries, and each transferable zone's content as a
//!   [`ZoneVersion`] (static records plus each service's `transfer_answer`).
//! - [`Hub`] is the runtime state that outlives snapshots: older versions
//!   for IXFR, per-zone transfer status, pending NOTIFYs, the transfer
//!   limits, and the tasks that refresh secondary zones and send NOTIFYs.
//!
//! The query path never enters this module except through two narrow
//! hooks: the DNS server hands TCP AXFR/IXFR requests and NOTIFY messages to
//! the [`Hub`], and the general answer path hands a UDP IXFR to
//! [`answer_udp_ixfr`]. Secondary zone data reaches the data plane only as
//! files under `state_dir` that `Snapshot::build` reads.

mod follow;
mod hub;
pub mod message;
mod notify;
mod outgoing;
mod secondary;
pub mod state;
pub mod tsig;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use hickory_proto::rr::Name;
use ipnet::IpNet;

pub use hub::{CurrentSnapshot, Hub, PendingNotify, Reload, TransferEvent, ZoneStatus};
pub use outgoing::{RequestKind, answer_udp_ixfr, request_kind};
pub use state::StateDir;

use crate::config::{ConfigError, LoadedConfig, TransferAnswerToml, ZoneToml};
use crate::policy::{EndpointTarget, Service};
use crate::wire::rtype;
use crate::zone::{WireName, Zone, ZoneSet, wire_name};
use message::{RecordBytes, record_bytes};
use tsig::{Algorithm, TsigKey, TsigKeys};

/// Transfer settings of one snapshot (see the module docs).
#[derive(Debug, Default)]
pub struct TransferSettings {
    /// TSIG keys by name.
    pub keys: TsigKeys,
    /// Per zone origin (lowercase wire), zones with any transfer setting.
    pub zones: HashMap<WireName, ZoneTransfer>,
    /// Where secondary caches and served serials live.
    pub state_dir: Option<StateDir>,
}

/// One zone's transfer settings.
#[derive(Debug)]
pub struct ZoneTransfer {
    /// Origin as text, with the final dot.
    pub origin_text: String,
    /// Who may transfer it.
    pub allow: Vec<AllowRule>,
    /// Whom to NOTIFY when its serial changes.
    pub notify: Vec<SocketAddr>,
    /// Set for a secondary zone.
    pub secondary: Option<SecondarySpec>,
    /// Its content as transferred (zones with `allow_transfer` or `notify`).
    pub version: Option<Arc<ZoneVersion>>,
}

/// One `allow_transfer` entry.
#[derive(Debug, Clone)]
pub struct AllowRule {
    /// Client network.
    pub net: IpNet,
    /// Key the request must be signed with.
    pub key: Option<String>,
}

/// Where a secondary zone comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecondarySpec {
    /// Primaries, tried in order.
    pub primaries: Vec<SocketAddr>,
    /// Key signing requests to them and required on their NOTIFYs.
    pub key: Option<String>,
}

/// A zone's content as a transfer carries it.
#[derive(Debug)]
pub struct ZoneVersion {
    /// SOA serial.
    pub serial: u32,
    /// The SOA record.
    pub soa: RecordBytes,
    /// Every other record, sorted (so versions can be compared).
    pub records: Vec<RecordBytes>,
    /// SHA-256 of the content with the SOA serial left out, hex: equal
    /// digests mean equal zones.
    pub digest: String,
}

impl ZoneVersion {
    /// Records in the zone, the SOA counted once.
    pub fn record_count(&self) -> usize {
        self.records.len() + 1
    }
}

/// What a transfer carries for one service name.
type ServiceRecords = Vec<(u16, u32, Box<[u8]>)>;

/// Reads `[tsig.*]`.
pub fn build_keys(loaded: &LoadedConfig, errors: &mut Vec<ConfigError>) -> TsigKeys {
    use base64::Engine;
    let mut keys = TsigKeys::default();
    for (name, spanned) in &loaded.config.tsig {
        let key = spanned.get_ref();
        let Some(algorithm) = Algorithm::parse(key.algorithm.get_ref()) else {
            errors.push(
                loaded
                    .error_at(
                        key.algorithm.span(),
                        format!(
                            "tsig.{name}: unknown algorithm {:?}: use \"hmac-sha256\", \"hmac-sha512\" or \"hmac-sha1\"",
                            key.algorithm.get_ref()
                        ),
                    ),
            );
            continue;
        };
        let (text, span) = match (&key.secret, &key.secret_file) {
            (Some(secret), None) => (secret.get_ref().0.clone(), secret.span()),
            (None, Some(file)) => {
                let path = loaded.resolve_path(file.get_ref());
                match std::fs::read_to_string(&path) {
                    Ok(text) => (text, file.span()),
                    Err(err) => {
                        errors.push(loaded.error_at(
                            file.span(),
                            format!("tsig.{name}: cannot read {}: {err}", path.display()),
                        ));
                        continue;
                    }
                }
            }
            _ => {
                errors.push(loaded.error_at(
                    spanned.span(),
                    format!("tsig.{name}: give exactly one of `secret` or `secret_file`"),
                ));
                continue;
            }
        };
        let secret = match base64::engine::general_purpose::STANDARD.decode(text.trim()) {
            Ok(secret) if !secret.is_empty() => secret,
            _ => {
                errors.push(
                    loaded
                        .error_at(
                            span,
                            format!("tsig.{name}: the secret is not base64 (make one with `tsig-keygen {name}` or `openssl rand -base64 32`)"),
                        ),
                );
                continue;
            }
        };
        match TsigKey::new(name, algorithm, &secret) {
            Ok(key) => keys.insert(key),
            Err(message) => errors.push(loaded.error_at(spanned.span(), message)),
        }
    }
    keys
}

/// Whether a configured zone is a secondary (it names primaries).
pub fn is_secondary(zone: &ZoneToml) -> bool {
    !zone.primaries.is_empty()
}

/// The zone served for a secondary: its cached copy from `state_dir`, or,
/// without one (or expired), a zone that answers SERVFAIL.
pub fn load_secondary_zone(state: &StateDir, origin: &Name, now_unix: u64) -> Zone {
    let origin_text = origin.to_ascii();
    match state.load_secondary(&origin_text) {
        Ok(Some((records, meta))) if !meta.expired(now_unix) => {
            let path = state.cache_path(&origin_text);
            let located = records
                .into_iter()
                .enumerate()
                .map(|(index, record)| crate::zone::LocatedRecord {
                    record,
                    file: path.clone(),
                    line: index + 1,
                })
                .collect();
            match Zone::build(origin, &path, located) {
                Ok(zone) => zone,
                Err(errors) => {
                    for err in errors.iter().take(5) {
                        tracing::error!(zone = %origin_text, "secondary zone cache unusable: {err}");
                    }
                    Zone::unavailable(origin)
                }
            }
        }
        Ok(Some((_, meta))) => {
            tracing::warn!(
                zone = %origin_text,
                serial = meta.serial,
                "secondary zone expired (no successful refresh within SOA EXPIRE): answering SERVFAIL"
            );
            Zone::unavailable(origin)
        }
        Ok(None) => Zone::unavailable(origin),
        Err(err) => {
            tracing::error!(zone = %origin_text, "secondary zone cache unusable: {err}");
            Zone::unavailable(origin)
        }
    }
}

/// Builds the transfer settings once zones and services are built; sets
/// `serial = "auto"` serials in `zones`. Problems go to the first list of
/// `found`, warnings (a zone changed without a new serial) to the second.
pub fn build_settings(
    loaded: &LoadedConfig,
    keys: TsigKeys,
    state_dir: StateDir,
    zones: &mut ZoneSet,
    services: &[Service],
    found: (&mut Vec<ConfigError>, &mut Vec<ConfigError>),
    now_unix: u64,
) -> TransferSettings {
    let (errors, warnings) = found;
    let config = &loaded.config;
    let service_records = build_service_records(loaded, services, errors);
    let mut settings = TransferSettings {
        keys,
        zones: HashMap::new(),
        state_dir: Some(state_dir.clone()),
    };
    for zone_toml in &config.zones {
        let Ok(mut origin) = Name::from_ascii(zone_toml.origin.get_ref()) else {
            continue; // reported by the snapshot
        };
        origin.set_fqdn(true);
        let origin_wire = wire_name(&origin);
        let origin_text = origin.to_ascii();
        let key_known =
            |name: &Option<String>, span: std::ops::Range<usize>, errors: &mut Vec<ConfigError>| {
                if let Some(name) = name
                    && settings.keys.by_name(name).is_none()
                {
                    errors.push(loaded.error_at(
                        span,
                        format!("unknown TSIG key {name:?}: define it as [tsig.{name}]"),
                    ));
                }
            };
        let mut allow = Vec::new();
        for rule in &zone_toml.allow_transfer {
            let written = rule.get_ref();
            let net = match written.from.parse::<IpNet>() {
                Ok(net) => Some(net),
                Err(_) => written.from.parse::<IpAddr>().ok().map(IpNet::from),
            };
            let Some(net) = net else {
                errors.push(
                    loaded
                        .error_at(
                            rule.span(),
                            format!("allow_transfer: {:?} is not an address or CIDR network (e.g. \"192.0.2.0/24\")", written.from),
                        ),
                );
                continue;
            };
            key_known(&written.tsig, rule.span(), errors);
            allow.push(AllowRule {
                net,
                key: written.tsig.clone(),
            });
        }
        let mut notify = Vec::new();
        for target in &zone_toml.notify {
            match parse_host_port(target.get_ref()) {
                Some(addr) => notify.push(addr),
                None => errors.push(loaded.error_at(
                    target.span(),
                    format!(
                        "notify: {:?} is not \"ip:port\" (e.g. \"192.0.2.7:53\")",
                        target.get_ref()
                    ),
                )),
            }
        }
        let mut primaries = Vec::new();
        for primary in &zone_toml.primaries {
            match parse_host_port(primary.get_ref()) {
                Some(addr) => primaries.push(addr),
                None => errors.push(loaded.error_at(
                    primary.span(),
                    format!(
                        "primaries: {:?} is not \"ip:port\" (e.g. \"192.0.2.1:53\")",
                        primary.get_ref()
                    ),
                )),
            }
        }
        let zone_key = zone_toml.tsig.as_ref().map(|t| t.get_ref().clone());
        if let Some(tsig) = &zone_toml.tsig {
            key_known(&zone_key, tsig.span(), errors);
            if primaries.is_empty() {
                errors.push(loaded.error_at(tsig.span(), "tsig on a zone is the key for its primaries: add `primaries`, or put the key in allow_transfer entries"));
            }
        }
        let auto_serial = match &zone_toml.serial {
            None => false,
            Some(serial) if serial.get_ref() == "auto" => true,
            Some(serial) => {
                errors.push(
                    loaded
                        .error_at(serial.span(), format!("serial = {:?}: the only value is \"auto\" (or leave it out to use the zone file's serial)", serial.get_ref())),
                );
                false
            }
        };
        if auto_serial && !primaries.is_empty() {
            errors.push(loaded.error_at(zone_toml.origin.span(), "serial = \"auto\" is for zones served from a file; a secondary zone keeps its primary's serial"));
        }
        let secondary = (!primaries.is_empty()).then_some(SecondarySpec {
            primaries,
            key: zone_key,
        });
        if allow.is_empty() && notify.is_empty() && secondary.is_none() && !auto_serial {
            continue;
        }
        let wants_version = !allow.is_empty() || !notify.is_empty() || auto_serial;
        let mut version = None;
        if wants_version
            && let Some(zone) = zones.get_mut(&origin_wire)
            && !zone.is_unavailable()
        {
            let mut built = zone_version(zone, &service_records);
            let served = state_dir.load_served(&origin_text);
            if auto_serial {
                let serial = match &served {
                    Some((serial, digest)) if *digest == built.digest => *serial,
                    Some((serial, _)) => (now_unix as u32).max(serial.wrapping_add(1)),
                    None => now_unix as u32,
                };
                zone.set_serial(serial);
                built = zone_version(zone, &service_records);
            } else if let Some((serial, digest)) = &served
                && *serial == built.serial
                && *digest != built.digest
            {
                warnings.push(
                    loaded
                        .error_at(
                            zone_toml.origin.span(),
                            format!("zone {origin_text}: content changed since it was last served but the SOA serial is still {serial}, so secondaries will not transfer it: raise the serial in the zone file or set serial = \"auto\""),
                        ),
                );
            }
            version = Some(Arc::new(built));
        }
        settings.zones.insert(
            origin_wire,
            ZoneTransfer {
                origin_text,
                allow,
                notify,
                secondary,
                version,
            },
        );
    }
    settings
}

/// `"ip:port"`, `"[v6]:port"`, or a bare address (port 53).
fn parse_host_port(text: &str) -> Option<SocketAddr> {
    text.parse::<SocketAddr>().ok().or_else(|| {
        text.parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, 53))
    })
}

/// Each service's `transfer_answer`, by service index.
fn build_service_records(
    loaded: &LoadedConfig,
    services: &[Service],
    errors: &mut Vec<ConfigError>,
) -> Vec<ServiceRecords> {
    // `build_services` makes one service per `[services]` entry, in order.
    let tomls: Vec<_> = loaded.config.services.values().collect();
    services
        .iter()
        .enumerate()
        .map(|(index, service)| {
            let written = tomls.get(index).and_then(|s| s.get_ref().transfer_answer.as_ref());
            match written.map(|w| (w.get_ref(), w.span())) {
                None => default_records(service),
                Some((TransferAnswerToml::Keyword(word), span)) => match word.as_str() {
                    "default" => default_records(service),
                    "omit" => Vec::new(),
                    other => {
                        errors.push(loaded.error_at(span, format!("transfer_answer = {other:?}: use \"default\", \"omit\", or a list of addresses or one CNAME target")));
                        Vec::new()
                    }
                },
                Some((TransferAnswerToml::Records(list), span)) => {
                    match listed_records(list, service.ttl) {
                        Ok(records) => records,
                        Err(message) => {
                            errors.push(loaded.error_at(span, format!("transfer_answer: {message}")));
                            Vec::new()
                        }
                    }
                }
            }
        })
        .collect()
}

/// `["192.0.2.10", "2001:db8::10"]` → A and AAAA; `["target.example."]` → CNAME.
fn listed_records(list: &[String], ttl: u32) -> Result<ServiceRecords, String> {
    if list.is_empty() {
        return Err("an empty list: use \"omit\" to leave the name out".into());
    }
    let addresses: Vec<Option<IpAddr>> = list.iter().map(|t| t.parse().ok()).collect();
    if addresses.iter().all(Option::is_some) {
        return Ok(addresses
            .into_iter()
            .flatten()
            .map(|ip| address_record(ip, ttl))
            .collect());
    }
    if let [target] = list {
        let mut name = Name::from_ascii(target)
            .map_err(|err| format!("{target:?} is neither an address nor a name: {err}"))?;
        name.set_fqdn(true);
        return Ok(vec![(rtype::CNAME, ttl, wire_name(&name))]);
    }
    Err("give addresses only, or exactly one CNAME target".into())
}

fn address_record(ip: IpAddr, ttl: u32) -> (u16, u32, Box<[u8]>) {
    match ip {
        IpAddr::V4(v4) => (rtype::A, ttl, Box::new(v4.octets())),
        IpAddr::V6(v6) => (rtype::AAAA, ttl, Box::new(v6.octets())),
    }
}

/// `"default"`: what a client with no location gets with every pool up —
/// the first pool of the service's order for an unlocated client, its
/// endpoints by weight (highest first, then configuration order), up to
/// `max_records` per family, or its heaviest CNAME endpoint alone.
fn default_records(service: &Service) -> ServiceRecords {
    let (order_index, _) = service.table.lookup(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let Some(pool) = service
        .order(order_index)
        .iter()
        .find_map(|&index| service.pools.get(usize::from(index)))
    else {
        return Vec::new();
    };
    let mut endpoints: Vec<_> = pool.endpoints.iter().filter(|e| e.weight > 0).collect();
    if endpoints.is_empty() {
        endpoints = pool.endpoints.iter().collect();
    }
    endpoints.sort_by_key(|e| std::cmp::Reverse(e.weight));
    if let Some(first) = endpoints.first()
        && let EndpointTarget::Cname(target) = &first.target
    {
        return vec![(rtype::CNAME, service.ttl, target.clone())];
    }
    let max = usize::from(service.max_records.max(1));
    let mut records = Vec::new();
    for v6 in [false, true] {
        records.extend(
            endpoints
                .iter()
                .filter_map(|e| match e.target {
                    EndpointTarget::Address(ip) if ip.is_ipv6() == v6 => Some(ip),
                    _ => None,
                })
                .take(max)
                .map(|ip| address_record(ip, service.ttl)),
        );
    }
    records
}

/// A zone's content as a transfer carries it.
fn zone_version(zone: &Zone, service_records: &[ServiceRecords]) -> ZoneVersion {
    let mut soa = None;
    let mut records = Vec::new();
    for (name, node) in zone.nodes() {
        for rrset in &node.rrsets {
            for rdata in &rrset.rdatas {
                let record = record_bytes(name, rrset.rtype, rrset.ttl, rdata);
                if rrset.rtype == rtype::SOA && name == zone.origin() {
                    soa.get_or_insert(record);
                } else {
                    records.push(record);
                }
            }
        }
        if let Some(service) = node.service.and_then(|s| service_records.get(s)) {
            records.extend(
                service
                    .iter()
                    .map(|(rtype, ttl, rdata)| record_bytes(name, *rtype, *ttl, rdata)),
            );
        }
    }
    records.sort_unstable();
    records.dedup();
    let soa = soa.unwrap_or_default();
    let serial = zone.serial();
    // The digest leaves the serial out: it tells content changes apart
    // from serial changes.
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    let serial_at = soa_serial_position(&soa);
    match serial_at {
        Some(at) => {
            context.update(&soa[..at]);
            context.update(&soa[at + 4..]);
        }
        None => context.update(&soa),
    }
    for record in &records {
        context.update(&(record.len() as u32).to_be_bytes());
        context.update(record);
    }
    let digest = context
        .finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    ZoneVersion {
        serial,
        soa,
        records,
        digest,
    }
}

/// Offset of the serial inside an uncompressed SOA record.
fn soa_serial_position(record: &[u8]) -> Option<usize> {
    let rdata = message::owner_len(record) + 10;
    let mut pos = rdata;
    for _ in 0..2 {
        loop {
            let len = usize::from(*record.get(pos)?);
            pos += 1 + len;
            if len == 0 {
                break;
            }
        }
    }
    (pos + 4 <= record.len()).then_some(pos)
}

/// RFC 1982 serial arithmetic: whether `a` is newer than `b`.
pub fn serial_newer(a: u32, b: u32) -> bool {
    a != b && a.wrapping_sub(b) < 0x8000_0000
}

/// Seconds since the epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_compare_with_wraparound() {
        assert!(serial_newer(2, 1));
        assert!(serial_newer(1, u32::MAX));
        assert!(!serial_newer(1, 1));
        assert!(!serial_newer(1, 2));
    }

    #[test]
    fn listed_records_are_addresses_or_one_cname() {
        let records = listed_records(&["192.0.2.10".into(), "2001:db8::1".into()], 30).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].0, rtype::A);
        assert_eq!(records[1].0, rtype::AAAA);
        let cname = listed_records(&["edge.example.net".into()], 30).unwrap();
        assert_eq!(cname[0].0, rtype::CNAME);
        assert!(listed_records(&["a.example".into(), "b.example".into()], 30).is_err());
        assert!(listed_records(&[], 30).is_err());
    }
}

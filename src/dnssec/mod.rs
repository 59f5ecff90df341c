//! DNSSEC: zone keys, signatures made when the snapshot is built, and the
//! few made per query.
//!
//! At build, [`load_zone_keys`] reads and checks each signed zone's keys and
//! [`sign`] adds DNSKEY/CDS/CDNSKEY at the apex, signs every static RRset,
//! every single-endpoint service answer (each endpoint, each TTL it can
//! carry) and one compact-denial NSEC per name (RFC 9824), so the query
//! path copies bytes. What depends on the query — multivalue combinations,
//! names that do not exist, wildcard expansions — is signed by
//! [`SignedZone::online`] within a bounded budget (see [`online`]).
//!
//! Owns no sockets and no clock on the query path; private keys never leave
//! [`keys::ZoneKey`].

pub mod keys;
pub mod online;
pub mod sign;

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use rustc_hash::FxBuildHasher;

use crate::config::{LoadedConfig, ZoneToml};
use crate::policy::{EndpointTarget, Service};
use crate::wire::rtype;
use crate::zone::{RRset, WireName, Zone, ZoneSet, wire_name_to_string};
use keys::{KeyError, ZoneKey};
use sign::Window;

/// Default `dnssec_validity`.
pub const DEFAULT_VALIDITY: Duration = Duration::from_secs(14 * 86_400);
/// Signatures start this long before the build (clock skew, RFC 6781 §4.1.2).
pub const INCEPTION_BACKDATE_SECS: i64 = 3600;
/// Shortest `dnssec_validity` accepted.
pub const MIN_VALIDITY: Duration = Duration::from_secs(20);

/// A signed zone's keys, read and checked (before the zone is signed).
#[derive(Debug)]
pub struct ZoneKeys {
    /// Every configured key (published or not yet).
    pub keys: Vec<ZoneKey>,
    /// Signature validity.
    pub validity: Duration,
}

/// What was wrong with a zone's DNSSEC settings.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DnssecError {
    /// A key file problem.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A configuration problem.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
}

/// Reads and checks the keys of `zone` (origin as text with its final dot)
/// at time `now`; `Ok(None)` when the zone is not signed. Warnings (a
/// private key readable by others) are pushed to `warnings`.
///
/// # Errors
/// Every key problem: missing or unreadable files, mismatched pairs,
/// unsupported algorithms, keys of other zones, no active key.
pub fn load_zone_keys(
    loaded: &LoadedConfig,
    zone: &ZoneToml,
    origin: &str,
    now: i64,
    warnings: &mut Vec<DnssecError>,
) -> Result<Option<ZoneKeys>, Vec<DnssecError>> {
    let entries = zone.dnssec_keys.get_ref();
    if !*zone.dnssec.get_ref() {
        let mut errors: Vec<DnssecError> = Vec::new();
        if !entries.is_empty() {
            errors.push(loaded.error_at(zone.dnssec_keys.span(), format!("zone {origin} lists dnssec_keys but is not signed: add `dnssec = true` or remove them")).into());
        }
        if let Some(validity) = &zone.dnssec_validity {
            errors.push(loaded.error_at(validity.span(), format!("zone {origin} sets dnssec_validity but is not signed: add `dnssec = true` or remove it")).into());
        }
        return if errors.is_empty() {
            Ok(None)
        } else {
            Err(errors)
        };
    }
    let mut errors: Vec<DnssecError> = Vec::new();
    let validity = match &zone.dnssec_validity {
        None => DEFAULT_VALIDITY,
        Some(spanned) => match spanned.get_ref().to_duration() {
            Ok(v) if v >= MIN_VALIDITY && v.as_secs() < u64::from(u32::MAX / 4) => v,
            Ok(_) => {
                errors.push(loaded.error_at(spanned.span(), format!("dnssec_validity must be between {}s and ~30 years (default \"14d\")", MIN_VALIDITY.as_secs())).into());
                DEFAULT_VALIDITY
            }
            Err(message) => {
                errors.push(
                    loaded
                        .error_at(spanned.span(), format!("dnssec_validity: {message}"))
                        .into(),
                );
                DEFAULT_VALIDITY
            }
        },
    };
    if entries.is_empty() {
        errors.push(loaded.error_at(zone.dnssec.span(), format!("zone {origin} has dnssec = true but no dnssec_keys: make a key with `gslb dnssec keygen {origin}` and list its .private file")).into());
        return Err(errors);
    }
    let mut keys = Vec::new();
    for entry in entries {
        let path = loaded.resolve_path(entry.path());
        match keys::load_key(&path, origin, entry.publish_only()) {
            Ok(key) => {
                if keys::readable_by_others(&path) {
                    warnings.push(
                        KeyError {
                            file: path.clone(),
                            message: "warning: private key readable by other users: chmod 600 it"
                                .to_string(),
                        }
                        .into(),
                    );
                }
                keys.push(key);
            }
            Err(err) => errors.push(err.into()),
        }
    }
    if errors.is_empty() {
        let active: Vec<&ZoneKey> = keys.iter().filter(|k| k.signs_at(now)).collect();
        if active.is_empty() {
            errors.push(loaded.error_at(zone.dnssec_keys.span(), format!("zone {origin} has no active signing key (every key is publish_only, not yet active or inactive): activate one, or make one with `gslb dnssec keygen {origin}`")).into());
        } else if active.iter().any(|k| k.algorithm != active[0].algorithm) {
            errors.push(loaded.error_at(zone.dnssec_keys.span(), format!("zone {origin} has active keys of algorithms {} and {}: keep one algorithm active (publish the other with publish_only)", active[0].algorithm.number(), active.iter().map(|k| k.algorithm.number()).find(|&a| a != active[0].algorithm.number()).unwrap_or_default())).into());
        }
    }
    if errors.is_empty() {
        Ok(Some(ZoneKeys { keys, validity }))
    } else {
        Err(errors)
    }
}

/// The compact-denial NSEC of one name, signed.
#[derive(Debug)]
pub struct Denial {
    /// Types present at the name (without RRSIG and NSEC).
    pub types: Box<[u16]>,
    /// The NSEC RDATA.
    pub rdata: Box<[u8]>,
    /// Its signatures.
    pub rrsigs: Box<[Box<[u8]>]>,
}

/// A key as the status page shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyStatus {
    /// Key tag.
    pub tag: u16,
    /// Algorithm number.
    pub algorithm: u8,
    /// DNSKEY flags.
    pub flags: u16,
    /// "ksk" (SEP flag, a KSK or CSK) or "zsk".
    pub role: &'static str,
    /// "active", "published" (in the DNSKEY set, not signing) or "pending"/"retired".
    pub state: &'static str,
    /// The `.private` file.
    pub file: String,
}

/// A signed zone in a snapshot: its keys and what is signed at build.
#[derive(Debug)]
pub struct SignedZone {
    origin: WireName,
    origin_text: String,
    keys: Vec<ZoneKey>,
    /// Keys signing zone data.
    zone_signers: Vec<usize>,
    /// Keys signing the DNSKEY, CDS and CDNSKEY sets.
    key_signers: Vec<usize>,
    window: Window,
    /// TTL of NSEC records: the negative TTL (RFC 9824 §3, RFC 4034 §4).
    nsec_ttl: u32,
    denials: HashMap<WireName, Denial, FxBuildHasher>,
    /// Unique per build: keys the online cache.
    generation: u64,
    /// When the zone was signed (Unix seconds).
    pub signed_at: i64,
    /// When it must be signed again (Unix seconds).
    pub next_resign: i64,
    /// Expiration of its signatures (Unix seconds).
    pub expires: i64,
    /// The keys, for the status page.
    pub key_status: Vec<KeyStatus>,
}

/// Pre-made signatures of a service's single-endpoint answers.
#[derive(Debug, Default)]
pub struct ServiceSigs {
    /// Index in `sigs` of each pool's first endpoint.
    pool_start: Box<[u32]>,
    /// The service's TTLs: answer TTL, then the failover TTL if different.
    ttls: Box<[u32]>,
    /// Per endpoint and TTL: the RRSIG RDATAs.
    sigs: Vec<Box<[Box<[u8]>]>>,
}

impl ServiceSigs {
    /// The signatures of the one-record answer with endpoint `endpoint` of
    /// pool `pool` at TTL `ttl`.
    #[inline]
    pub fn get(&self, pool: u16, endpoint: u16, ttl: u32) -> Option<&[Box<[u8]>]> {
        let variant = self.ttls.iter().position(|&t| t == ttl)?;
        let start = *self.pool_start.get(usize::from(pool))? as usize;
        let index = (start + usize::from(endpoint)) * self.ttls.len() + variant;
        self.sigs.get(index).map(|s| &s[..])
    }
}

/// A snapshot's DNSSEC data.
#[derive(Debug, Default)]
pub struct Dnssec {
    /// By zone index: the signed zones.
    zones: Vec<Option<SignedZone>>,
    /// By service index: its pre-made signatures.
    services: Vec<Option<ServiceSigs>>,
}

impl Dnssec {
    /// The signed zone at zone index `index`, if it is signed.
    #[inline]
    pub fn zone(&self, index: usize) -> Option<&SignedZone> {
        self.zones.get(index)?.as_ref()
    }

    /// The pre-made signatures of service `index`.
    #[inline]
    pub fn service(&self, index: usize) -> Option<&ServiceSigs> {
        self.services.get(index)?.as_ref()
    }

    /// The signed zones.
    pub fn signed_zones(&self) -> impl Iterator<Item = &SignedZone> {
        self.zones.iter().flatten()
    }

    /// The earliest re-sign time of any zone (Unix seconds).
    pub fn next_resign(&self) -> Option<i64> {
        self.signed_zones().map(|z| z.next_resign).min()
    }
}

fn next_generation() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

impl SignedZone {
    /// The zone's origin as text.
    pub fn origin_text(&self) -> &str {
        &self.origin_text
    }

    /// TTL of NSEC records.
    pub fn nsec_ttl(&self) -> u32 {
        self.nsec_ttl
    }

    /// The signed compact-denial NSEC of an existing name.
    #[inline]
    pub fn denial(&self, name: &[u8]) -> Option<&Denial> {
        self.denials.get(name)
    }

    /// Signs an RRset now, with the zone's data keys.
    fn sign_now<'r>(
        &self,
        owner: &[u8],
        record_type: u16,
        ttl: u32,
        rdatas: impl IntoIterator<Item = &'r [u8]> + Clone,
    ) -> Option<Vec<Box<[u8]>>> {
        self.zone_signers
            .iter()
            .filter_map(|&i| self.keys.get(i))
            .map(|key| {
                sign::rrsig(
                    key,
                    &self.origin,
                    owner,
                    record_type,
                    ttl,
                    self.window,
                    rdatas.clone(),
                )
            })
            .collect()
    }

    /// Signatures of an RRset made at query time (cached per worker, within
    /// its budget); `None` when the budget is spent.
    pub fn online(
        &self,
        owner: &[u8],
        record_type: u16,
        ttl: u32,
        rdatas: &[&[u8]],
    ) -> Option<online::Signatures> {
        let mut key = Vec::with_capacity(64);
        key.extend_from_slice(&self.generation.to_be_bytes());
        key.extend_from_slice(&record_type.to_be_bytes());
        key.extend_from_slice(&ttl.to_be_bytes());
        key.extend_from_slice(owner);
        let mut sorted: Vec<&[u8]> = rdatas.to_vec();
        sorted.sort_unstable();
        for rdata in sorted {
            key.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            key.extend_from_slice(rdata);
        }
        online::signatures(&key, || {
            self.sign_now(owner, record_type, ttl, rdatas.iter().copied())
        })
    }

    /// A signed compact-denial NSEC made at query time for `owner` with
    /// `types` present: the RDATA and its signatures.
    pub fn online_denial(
        &self,
        owner: &[u8],
        types: &[u16],
    ) -> Option<(Box<[u8]>, online::Signatures)> {
        let rdata = sign::compact_nsec(owner, types);
        let sigs = self.online(owner, sign::NSEC, self.nsec_ttl, &[&rdata[..]])?;
        Some((rdata.into_boxed_slice(), sigs))
    }
}

/// Signs the zones that have keys and the services answering in them.
/// `keys` maps a zone origin (wire) to its keys; `now` is Unix seconds.
pub fn sign(
    zones: &mut ZoneSet,
    services: &[Service],
    mut keys: HashMap<WireName, ZoneKeys>,
    now: i64,
) -> Dnssec {
    let mut dnssec = Dnssec {
        zones: Vec::new(),
        services: (0..services.len()).map(|_| None).collect(),
    };
    for (index, zone) in zones.iter_mut().enumerate() {
        let Some(zone_keys) = keys.remove(zone.origin()) else {
            continue;
        };
        if dnssec.zones.len() <= index {
            dnssec.zones.resize_with(index + 1, || None);
        }
        let signed = sign_zone(zone, zone_keys, services, &mut dnssec.services, now);
        dnssec.zones[index] = Some(signed);
    }
    dnssec
}

fn sign_zone(
    zone: &mut Zone,
    zone_keys: ZoneKeys,
    services: &[Service],
    service_sigs: &mut [Option<ServiceSigs>],
    now: i64,
) -> SignedZone {
    let validity = i64::try_from(zone_keys.validity.as_secs()).unwrap_or(i64::MAX / 4);
    let expires = now + validity;
    let window = Window {
        inception: (now - INCEPTION_BACKDATE_SECS) as u32,
        expiration: expires as u32,
    };
    let keys = zone_keys.keys;
    let active: Vec<usize> = (0..keys.len()).filter(|&i| keys[i].signs_at(now)).collect();
    let active_zsk: Vec<usize> = active
        .iter()
        .copied()
        .filter(|&i| !keys[i].is_sep())
        .collect();
    let active_ksk: Vec<usize> = active
        .iter()
        .copied()
        .filter(|&i| keys[i].is_sep())
        .collect();
    // A CSK (or KSKs alone) signs everything; a ZSK signs data, a KSK the keys.
    let zone_signers = if active_zsk.is_empty() {
        active_ksk.clone()
    } else {
        active_zsk
    };
    let key_signers = if active_ksk.is_empty() {
        zone_signers.clone()
    } else {
        active_ksk
    };
    // Re-sign halfway through the validity, or when a key's timing changes.
    let timing_event = keys
        .iter()
        .filter_map(|k| k.timing.next_event_after(now))
        .min();
    let next_resign = timing_event.map_or(now + validity / 2, |t| t.min(now + validity / 2));
    let key_status = keys
        .iter()
        .map(|k| KeyStatus {
            tag: k.tag,
            algorithm: k.algorithm.number(),
            flags: k.flags,
            role: if k.is_sep() { "ksk" } else { "zsk" },
            state: if k.signs_at(now) {
                "active"
            } else if k.timing.published_at(now) {
                "published"
            } else if k.timing.publish.is_some_and(|t| t > now) {
                "pending"
            } else {
                "retired"
            },
            file: k.file.display().to_string(),
        })
        .collect();
    let mut signed = SignedZone {
        origin: zone.origin().into(),
        origin_text: zone.origin_text().to_string(),
        keys,
        zone_signers,
        key_signers,
        window,
        nsec_ttl: zone.negative_ttl(),
        denials: HashMap::default(),
        generation: next_generation(),
        signed_at: now,
        next_resign,
        expires,
        key_status,
    };
    // The apex key sets (RFC 4034 §2, RFC 7344 §3).
    let key_ttl = zone.soa().ttl;
    let published: Vec<&ZoneKey> = signed
        .keys
        .iter()
        .filter(|k| k.timing.published_at(now))
        .collect();
    let origin = signed.origin.clone();
    let set = |rtype: u16, rdatas: Vec<Box<[u8]>>| RRset {
        rtype,
        ttl: key_ttl,
        rdatas,
        targets: Vec::new(),
        rrsigs: Vec::new(),
    };
    zone.set_apex_rrset(set(
        sign::DNSKEY,
        published.iter().map(|k| k.dnskey.clone()).collect(),
    ));
    let sep: Vec<&&ZoneKey> = published.iter().filter(|k| k.is_sep()).collect();
    if !sep.is_empty() {
        zone.set_apex_rrset(set(
            sign::CDS,
            sep.iter()
                .map(|k| k.ds_rdata(&origin).into_boxed_slice())
                .collect(),
        ));
        zone.set_apex_rrset(set(
            sign::CDNSKEY,
            sep.iter().map(|k| k.dnskey.clone()).collect(),
        ));
    }

    // Delegation points: their NS sets and everything below are not signed.
    let cuts: HashSet<Vec<u8>> = zone
        .nodes()
        .filter(|(name, node)| *name != &origin[..] && node.rrset(rtype::NS).is_some())
        .map(|(name, _)| name.to_vec())
        .collect();
    let below_cut = |name: &[u8]| -> bool {
        let mut pos = 0usize;
        while let Some(&len) = name.get(pos) {
            if len == 0 {
                break;
            }
            let suffix = &name[pos..];
            if pos > 0 && cuts.contains(suffix) {
                return true;
            }
            pos += 1 + usize::from(len);
        }
        false
    };
    let mut denials = HashMap::default();
    let mut service_names: Vec<(Vec<u8>, usize)> = Vec::new();
    // What signing at build made, for the log (its memory cost).
    let mut made = Tally::default();
    for (name, node) in zone.nodes_mut() {
        if below_cut(name) {
            continue;
        }
        let is_cut = cuts.contains(name);
        for rrset in &mut node.rrsets {
            if is_cut && rrset.rtype != sign::DS {
                continue;
            }
            let signers = if matches!(rrset.rtype, sign::DNSKEY | sign::CDS | sign::CDNSKEY) {
                &signed.key_signers
            } else {
                &signed.zone_signers
            };
            rrset.rrsigs = signers
                .iter()
                .filter_map(|&i| signed.keys.get(i))
                .filter_map(|key| {
                    sign::rrsig(
                        key,
                        &origin,
                        name,
                        rrset.rtype,
                        rrset.ttl,
                        window,
                        rrset.rdata_slices(),
                    )
                })
                .collect();
            made.add(&rrset.rrsigs);
        }
        let mut types: Vec<u16> = node.rrsets.iter().map(|r| r.rtype).collect();
        if let Some(service) = node.service.and_then(|i| services.get(i)) {
            types.extend(service_types(service));
            if let Some(index) = node.service {
                service_names.push((name.to_vec(), index));
            }
        }
        let rdata = sign::compact_nsec(name, &types);
        let rrsigs = signed
            .sign_now(name, sign::NSEC, signed.nsec_ttl, [&rdata[..]])
            .unwrap_or_default()
            .into_boxed_slice();
        made.add(&rrsigs);
        made.bytes += rdata.len();
        denials.insert(
            Box::from(name),
            Denial {
                types: types.into_boxed_slice(),
                rdata: rdata.into_boxed_slice(),
                rrsigs,
            },
        );
    }
    signed.denials = denials;
    zone.sync_soa();
    for (name, index) in service_names {
        let Some(service) = services.get(index) else {
            continue;
        };
        let sigs = sign_service(&signed, &name, service);
        for answer in &sigs.sigs {
            made.add(answer);
        }
        if let Some(slot) = service_sigs.get_mut(index) {
            *slot = Some(sigs);
        }
    }
    tracing::info!(
        zone = %wire_name_to_string(&origin),
        keys = signed.keys.len(),
        names = signed.denials.len(),
        signatures = made.count,
        signature_bytes = made.bytes,
        expires = %keys::format_timestamp(expires),
        next_resign = %keys::format_timestamp(next_resign),
        "zone signed"
    );
    signed
}

/// Signatures counted, and the bytes of their RDATA (NSEC RDATA included).
#[derive(Debug, Default)]
struct Tally {
    count: usize,
    bytes: usize,
}

impl Tally {
    fn add(&mut self, rrsigs: &[Box<[u8]>]) {
        self.count += rrsigs.len();
        self.bytes += rrsigs.iter().map(|r| r.len()).sum::<usize>();
    }
}

/// The types a service name can answer with.
fn service_types(service: &Service) -> Vec<u16> {
    let mut types = Vec::new();
    for endpoint in service.pools.iter().flat_map(|p| p.endpoints.iter()) {
        let t = match endpoint.target {
            EndpointTarget::Address(IpAddr::V4(_)) => rtype::A,
            EndpointTarget::Address(IpAddr::V6(_)) => rtype::AAAA,
            EndpointTarget::Cname(_) => rtype::CNAME,
        };
        if !types.contains(&t) {
            types.push(t);
        }
    }
    types
}

/// Signs every one-record answer of a service: each endpoint at each TTL.
fn sign_service(zone: &SignedZone, owner: &[u8], service: &Service) -> ServiceSigs {
    let mut ttls = vec![service.ttl];
    if let Some(ttl) = service.failover_ttl
        && ttl != service.ttl
    {
        ttls.push(ttl);
    }
    let mut pool_start = Vec::with_capacity(service.pools.len());
    let mut sigs = Vec::new();
    for pool in &service.pools {
        pool_start.push((sigs.len() / ttls.len()) as u32);
        for endpoint in &pool.endpoints {
            for &ttl in &ttls {
                let made = zone
                    .sign_now(owner, endpoint.record_type(), ttl, [&endpoint.rdata[..]])
                    .unwrap_or_default();
                sigs.push(made.into_boxed_slice());
            }
        }
    }
    ServiceSigs {
        pool_start: pool_start.into_boxed_slice(),
        ttls: ttls.into_boxed_slice(),
        sigs,
    }
}

/// The key files a configuration names (for `watch`).
pub fn key_files(loaded: &LoadedConfig) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for zone in &loaded.config.zones {
        for entry in zone.dnssec_keys.get_ref() {
            let private = loaded.resolve_path(entry.path());
            if let Some(stem) = private.to_str().and_then(|p| p.strip_suffix(".private")) {
                files.push(PathBuf::from(format!("{stem}.key")));
            }
            files.push(private);
        }
    }
    files
}

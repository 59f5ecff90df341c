//! Everything answers are made from, built whole from the configuration and
//! immutable after. It knows nothing of how it is served: the DNS server
//! puts it in service as a `dns::served::Served` (with the answers it
//! precompiles from it), swapped in atomically.
//!
//! `Snapshot::build` is the only place where files are read for the data
//! plane; the result is immutable. A reload builds a new snapshot and, only
//! if that succeeded, replaces the old one, so a bad reload changes nothing.

use std::fmt;
use std::path::{Path, PathBuf};

use hickory_proto::rr::Name;

use std::sync::Arc;

use crate::config::{ConfigError, FieldsToml, LoadedConfig, load_config};
use crate::dnssec::{Dnssec, ZoneKeys};
use crate::geo::{FieldPaths, GeoError, LocationTable};
use crate::health::fastest::FastestPlan;
use crate::health::{HealthTable, ProbePlan};
use crate::policy::Service;
use crate::zone::{Zone, ZoneError, ZoneSet, load_zone_file};

pub mod latency;
mod lint;
mod load;
mod route_cache;
mod services;

pub use services::GeoTables;

/// What a snapshot is built from: the config file plus command-line zones.
#[derive(Debug, Clone)]
pub struct SnapshotSource {
    /// The TOML configuration file.
    pub config_path: PathBuf,
    /// Extra static zones from `--zone ORIGIN=FILE`.
    pub extra_zones: Vec<(String, PathBuf)>,
}

/// Any problem that stops a snapshot from being built.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BuildError {
    /// A configuration problem.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A zone file problem.
    #[error(transparent)]
    Zone(#[from] ZoneError),
    /// A latency table problem.
    #[error(transparent)]
    Latency(#[from] latency::LatencyError),
    /// A DNSSEC key or setting problem.
    #[error(transparent)]
    Dnssec(#[from] crate::dnssec::DnssecError),
}

/// All build errors, printed one per line.
#[derive(Debug, Clone)]
pub struct BuildErrors(pub Vec<BuildError>);

impl fmt::Display for BuildErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, err) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{err}")?;
        }
        Ok(())
    }
}

impl std::error::Error for BuildErrors {}

/// How the query path treats EDNS Client Subnet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EcsSettings {
    /// Use the client subnet when present.
    pub enabled: bool,
    /// Longest IPv4 source prefix used.
    pub max_source_prefix_v4: u8,
    /// Longest IPv6 source prefix used.
    pub max_source_prefix_v6: u8,
}

/// Response rate limiting as `[rrl]` sets it (the budgets are the DNS
/// server's, and outlive snapshots).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RrlSettings {
    /// Responses per second allowed per client prefix.
    pub responses_per_second: u32,
    /// Every `slip`-th limited response is sent truncated (0: drop all).
    pub slip: u32,
    /// IPv4 prefix length clients are grouped by.
    pub ipv4_prefix_len: u8,
    /// IPv6 prefix length clients are grouped by.
    pub ipv6_prefix_len: u8,
    /// Slots in the budget table (rounded up to a power of two).
    pub table_size: usize,
}

/// The immutable data the query path answers from.
#[derive(Debug)]
pub struct Snapshot {
    /// Every served zone.
    pub zones: ZoneSet,
    /// Dynamic services, indexed by `Node::service`.
    pub services: Vec<Service>,
    /// GeoIP tables (for explain; services hold their compiled tables).
    pub geo: GeoTables,
    /// ECS handling.
    pub ecs: EcsSettings,
    /// Largest UDP payload we offer to EDNS clients.
    pub max_udp_payload: u16,
    /// Every endpoint and how it is probed (for the health monitor).
    pub probes: ProbePlan,
    /// What the `fastest` updater maintains (empty without `fastest`).
    pub fastest: FastestPlan,
    /// Response rate limiting for UDP answers, when enabled.
    pub rrl: Option<RrlSettings>,
    /// What loads but cannot work as written (geo map rules no network of
    /// the database matches, ...): logged at every load
    /// ([`Snapshot::log_warnings`]), printed by `gslb check`, errors with
    /// `check --strict`.
    pub warnings: Vec<BuildError>,
    /// Zone transfer, NOTIFY and TSIG settings, and transferable zone content.
    pub transfer: crate::transfer::TransferSettings,
    /// Signatures and keys of the signed zones.
    pub dnssec: Dnssec,
}

impl Snapshot {
    /// Loads the configuration and everything it names, validates it all and
    /// compiles the snapshot. Also returns the parsed configuration, which
    /// holds the process-level settings (listeners, API). Endpoints get
    /// their ids from `health` (the same identity, the same id), and a
    /// successful build publishes `health` so its view knows them all.
    ///
    /// # Errors
    /// Every problem found, each naming its file and line.
    pub fn build(
        source: &SnapshotSource,
        health: &HealthTable,
    ) -> Result<(Snapshot, LoadedConfig), BuildErrors> {
        let loaded = load_config(&source.config_path).map_err(|e| BuildErrors(vec![e.into()]))?;
        let mut errors: Vec<BuildError> = Vec::new();
        let config = &loaded.config;

        let max_udp_payload = *config.server.max_udp_payload.get_ref();
        if !(512..=4096).contains(&max_udp_payload) {
            errors.push(
                loaded
                    .error_at(
                        config.server.max_udp_payload.span(),
                        format!("max_udp_payload = {max_udp_payload} is out of range: use 512..=4096 (1232 recommended)"),
                    )
                    .into(),
            );
        }

        let mut zones = ZoneSet::default();
        let state_dir =
            crate::transfer::StateDir::for_config(&loaded.path, config.server.state_dir.as_deref());
        let now_unix = crate::transfer::unix_now();
        let mut key_errors = Vec::new();
        let keys = crate::transfer::build_keys(&loaded, &mut key_errors);
        errors.extend(key_errors.into_iter().map(BuildError::from));
        // (origin, zone file or none for a secondary zone, where the origin
        // and the file were written; not at all for --zone)
        type Span = Option<std::ops::Range<usize>>;
        let mut zone_specs: Vec<(String, Option<PathBuf>, Span, Span)> = Vec::new();
        for z in &config.zones {
            let span = Some(z.origin.span());
            match (&z.file, crate::transfer::is_secondary(z)) {
                (Some(file), false) => zone_specs.push((
                    z.origin.get_ref().clone(),
                    Some(loaded.resolve_path(file.get_ref())),
                    span,
                    Some(file.span()),
                )),
                (None, true) => zone_specs.push((z.origin.get_ref().clone(), None, span, None)),
                (Some(file), true) => errors.push(
                    loaded
                        .error_at(
                            file.span(),
                            "a zone has either a `file` (primary) or `primaries` (secondary), not both",
                        )
                        .into(),
                ),
                (None, false) => errors.push(
                    loaded
                        .error_at(
                            z.origin.span(),
                            "zone needs a `file`, or `primaries` to transfer it from",
                        )
                        .into(),
                ),
            }
        }
        // Signatures start and end relative to this moment.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let mut zone_keys: std::collections::HashMap<crate::zone::WireName, ZoneKeys> =
            std::collections::HashMap::new();
        let mut dnssec_warnings = Vec::new();
        for zone_toml in &config.zones {
            // A bad origin is reported with the zone below.
            let Ok(origin) = parse_origin(zone_toml.origin.get_ref()) else {
                continue;
            };
            match crate::dnssec::load_zone_keys(
                &loaded,
                zone_toml,
                &origin.to_ascii(),
                now,
                &mut dnssec_warnings,
            ) {
                Ok(Some(keys)) => {
                    zone_keys.insert(crate::zone::wire_name(&origin), keys);
                }
                Ok(None) => {}
                Err(key_errors) => errors.extend(key_errors.into_iter().map(BuildError::from)),
            }
        }
        zone_specs.extend(
            source
                .extra_zones
                .iter()
                .map(|(o, p)| (o.clone(), Some(p.clone()), None, None)),
        );
        // Zones whose files did not load: their errors are the root cause of
        // anything else about names inside them.
        let mut failed_zones: Vec<Name> = Vec::new();
        for (origin_text, path, span, file_span) in zone_specs {
            let locate = |message: String| -> BuildError {
                match &span {
                    Some(span) => loaded.error_at(span.clone(), message).into(),
                    None => ConfigError {
                        file: PathBuf::from("--zone"),
                        position: None,
                        message,
                    }
                    .into(),
                }
            };
            let origin = match parse_origin(&origin_text) {
                Ok(origin) => origin,
                Err(message) => {
                    errors.push(locate(message));
                    continue;
                }
            };
            let loaded_zone = match &path {
                Some(path) => load_zone(&origin, path),
                None => Ok(crate::transfer::load_secondary_zone(
                    &state_dir, &origin, now_unix,
                )),
            };
            match loaded_zone {
                Ok(zone) => {
                    if !zones.insert(zone) {
                        errors.push(locate(format!(
                            "zone {origin} is configured twice: remove one"
                        )));
                    }
                }
                Err(zone_errors) => {
                    // A file that cannot be read is reported at the key
                    // naming it; what is inside a file, in the file.
                    errors.extend(zone_errors.into_iter().map(|err| match (err, &file_span) {
                        (ZoneError::Read { file, message }, Some(at)) => loaded
                            .error_at(
                                at.clone(),
                                format!(
                                    "zone {origin}: cannot read zone file {}: {message}: fix the path (relative to the config file's directory)",
                                    file.display()
                                ),
                            )
                            .into(),
                        (err, _) => BuildError::from(err),
                    }));
                    failed_zones.push(origin);
                }
            }
        }
        // A fleet member (`[cluster] config = "etcd"`) gets its zones from
        // the published version; with none yet it serves no zones.
        let fleet_member = config
            .cluster
            .as_ref()
            .is_some_and(|c| c.get_ref().config.get_ref() == "etcd");
        if zones.is_empty() && errors.is_empty() && !fleet_member {
            errors.push(
                loaded
                    .error("no zones configured: add a [[zone]] with origin and file")
                    .into(),
            );
        }
        let ecs = &config.ecs;
        let ecs_settings = EcsSettings {
            enabled: ecs.enabled,
            max_source_prefix_v4: *ecs.max_source_prefix_v4.get_ref(),
            max_source_prefix_v6: *ecs.max_source_prefix_v6.get_ref(),
        };
        if !(1..=32).contains(&ecs_settings.max_source_prefix_v4) {
            errors.push(
                loaded
                    .error_at(
                        ecs.max_source_prefix_v4.span(),
                        "max_source_prefix_v4 must be 1..=32",
                    )
                    .into(),
            );
        }
        if !(1..=128).contains(&ecs_settings.max_source_prefix_v6) {
            errors.push(
                loaded
                    .error_at(
                        ecs.max_source_prefix_v6.span(),
                        "max_source_prefix_v6 must be 1..=128",
                    )
                    .into(),
            );
        }
        let rrl = rrl_settings(&loaded, &mut errors);
        let geo = load_geo_tables(&loaded, &mut errors);
        // --- health checks ---
        let mut check_errors = Vec::new();
        let checks = crate::health::build_checks(&loaded, &mut check_errors);
        let health_settings = crate::health::build_health_settings(&loaded, &mut check_errors);
        errors.extend(check_errors.into_iter().map(BuildError::from));
        let mut planned = Vec::new();
        let route_cache = route_cache::RouteCache::default();
        let inputs = services::ServiceInputs {
            checks: &checks,
            loaded: &loaded,
            geo: &geo,
            health,
            ecs_caps: (
                ecs_settings.max_source_prefix_v4,
                ecs_settings.max_source_prefix_v6,
            ),
            route_cache: &route_cache,
            failed_zones: &failed_zones,
        };
        let services = services::build_services(&inputs, &mut zones, &mut planned, &mut errors);
        let (mut transfer_errors, mut transfer_warnings) = (Vec::new(), Vec::new());
        let transfer = crate::transfer::build_settings(
            &loaded,
            keys,
            state_dir,
            &mut zones,
            &services,
            (&mut transfer_errors, &mut transfer_warnings),
            now_unix,
        );
        errors.extend(transfer_errors.into_iter().map(BuildError::from));
        let routes = route_cache.stats();
        tracing::info!(
            services = routes.services,
            region_tables = routes.tables,
            table_prefixes = routes.leaves,
            table_ranges = routes.ranges,
            largest_table_prefixes = routes.largest_leaves,
            tables_mib = routes.bytes >> 20,
            "services compiled (services with equal routing share one region table)"
        );
        if !errors.is_empty() {
            return Err(BuildErrors(errors));
        }
        let mut warnings = lint::warnings(&loaded, &geo, &services);
        warnings.extend(transfer_warnings.into_iter().map(BuildError::from));
        warnings.extend(dnssec_warnings.into_iter().map(BuildError::from));
        health.publish();
        let dnssec = crate::dnssec::sign(&mut zones, &services, zone_keys, now);
        Ok((
            Snapshot {
                zones,
                fastest: services::fastest_plan(&services),
                services,
                geo,
                ecs: ecs_settings,
                max_udp_payload,
                rrl,
                probes: ProbePlan {
                    endpoints: planned,
                    settings: health_settings,
                },
                warnings,
                transfer,
                dnssec,
            },
            loaded,
        ))
    }

    /// Logs every warning (at start and at every reload). `gslb check`
    /// prints them itself instead, once each, without log decoration.
    pub fn log_warnings(&self) {
        for warning in &self.warnings {
            tracing::warn!("{warning}");
        }
    }
}

/// The rate limiting `[rrl]` asks for, checked.
fn rrl_settings(loaded: &LoadedConfig, errors: &mut Vec<BuildError>) -> Option<RrlSettings> {
    let rrl = &loaded.config.rrl;
    if !rrl.enabled {
        return None;
    }
    let mut ok = true;
    if *rrl.responses_per_second.get_ref() == 0 {
        errors.push(
            loaded
                .error_at(
                    rrl.responses_per_second.span(),
                    "rrl.responses_per_second must be at least 1",
                )
                .into(),
        );
        ok = false;
    }
    if !(1..=32).contains(rrl.ipv4_prefix_len.get_ref()) {
        errors.push(
            loaded
                .error_at(
                    rrl.ipv4_prefix_len.span(),
                    "rrl.ipv4_prefix_len must be 1..=32",
                )
                .into(),
        );
        ok = false;
    }
    if !(1..=128).contains(rrl.ipv6_prefix_len.get_ref()) {
        errors.push(
            loaded
                .error_at(
                    rrl.ipv6_prefix_len.span(),
                    "rrl.ipv6_prefix_len must be 1..=128",
                )
                .into(),
        );
        ok = false;
    }
    ok.then(|| RrlSettings {
        responses_per_second: *rrl.responses_per_second.get_ref(),
        slip: rrl.slip,
        ipv4_prefix_len: *rrl.ipv4_prefix_len.get_ref(),
        ipv6_prefix_len: *rrl.ipv6_prefix_len.get_ref(),
        table_size: rrl.table_size.clamp(1, 1 << 24),
    })
}

/// Loads the configured GeoIP databases.
fn load_geo_tables(loaded: &LoadedConfig, errors: &mut Vec<BuildError>) -> GeoTables {
    let mut tables = GeoTables::default();
    let Some(geoip) = &loaded.config.geoip else {
        return tables;
    };
    // Errors point at the setting they come from.
    let geo_error = |span: std::ops::Range<usize>, setting: &str, err: GeoError| -> BuildError {
        let fix = match err {
            GeoError::Io { .. } => ": fix the path (relative to the config file's directory)",
            _ => "",
        };
        loaded
            .error_at(span, format!("{setting}: {err}{fix}"))
            .into()
    };
    if let Some(database) = &geoip.database {
        let path = loaded.resolve_path(database.get_ref());
        let fields_span = geoip.fields.span();
        let fields = match geoip.fields.get_ref() {
            FieldsToml::Preset(preset) => match preset.as_str() {
                "auto" => None,
                "maxmind" => Some(FieldPaths::maxmind()),
                "flat" => Some(FieldPaths::flat()),
                other => {
                    errors.push(loaded.error_at(fields_span, format!("geoip.fields: unknown preset {other:?}: use \"auto\", \"maxmind\", \"flat\" or a table of paths")).into());
                    return tables;
                }
            },
            FieldsToml::Paths(paths) => {
                let parse = |p: &Option<String>| FieldPaths::parse_path(p.as_deref().unwrap_or(""));
                let fields = (|| {
                    Ok::<_, GeoError>(FieldPaths {
                        country: parse(&paths.country)?,
                        continent: parse(&paths.continent)?,
                        subdivision: parse(&paths.subdivision)?,
                        subdivision_name: parse(&paths.subdivision_name)?,
                        latitude: parse(&paths.latitude)?,
                        longitude: parse(&paths.longitude)?,
                        ..FieldPaths::default()
                    })
                })();
                match fields {
                    Ok(fields) => Some(fields),
                    Err(err) => {
                        errors.push(geo_error(fields_span, "geoip.fields", err));
                        return tables;
                    }
                }
            }
        };
        let table = match &fields {
            None => LocationTable::load_auto(&path),
            Some(fields) => LocationTable::load(&path, fields),
        };
        match table {
            Ok(table) => {
                let stats = table.stats();
                tracing::info!(
                    path = %path.display(),
                    networks = stats.networks,
                    locations = stats.locations,
                    prefix_table_mib = stats.prefix_bytes >> 20,
                    "geoip database loaded"
                );
                tables.locations = Some(Arc::new(table));
            }
            Err(err) => errors.push(geo_error(database.span(), "geoip.database", err)),
        }
    }
    if let Some(database) = &geoip.asn_database {
        let path = loaded.resolve_path(database.get_ref());
        match LocationTable::load(&path, &FieldPaths::asn()) {
            Ok(table) => tables.asn = Some(Arc::new(table)),
            Err(err) => errors.push(geo_error(database.span(), "geoip.asn_database", err)),
        }
    }
    tables
}

/// Parses a zone origin as written by the operator (trailing dot optional).
fn parse_origin(text: &str) -> Result<Name, String> {
    let mut name =
        Name::from_ascii(text).map_err(|err| format!("bad zone origin {text:?}: {err}"))?;
    name.set_fqdn(true);
    Ok(name)
}

fn load_zone(origin: &Name, path: &Path) -> Result<Zone, Vec<ZoneError>> {
    let records = load_zone_file(path, origin)?;
    Zone::build(origin, path, records)
}

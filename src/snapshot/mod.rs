//! Everything answers are made from, built whole from the configuration and
//! immutable after. It knows nothing of how it is served: the DNS server
//! puts it in service as a `dns::served::Served` (with the answers it
//! precompiles from it), swapped in atomically.
//!
//! `Snapshot::build` is the only place where files are read for the data
//! plane; the result is immutable. A reload builds a new snapshot and, only
//! if that succeeded, replaces the old one, so a bad reload changes nothing.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use crate::config::{ConfigError, FieldsToml, LoadedConfig, load_config};
use crate::dnssec::Dnssec;
use crate::geo::{FieldPaths, GeoError, LocationTable};
use crate::health::fastest::FastestPlan;
use crate::health::{HealthTable, ProbePlan};
use crate::policy::Service;
use crate::zone::{ZoneError, ZoneSet};

pub mod latency;
mod lint;
mod load;
mod route_cache;
mod services;
mod zones;

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
        // One pass per section, in the order their errors are reported.
        let max_udp_payload = loaded
            .in_range(&config.server.max_udp_payload, 512..=4096, |v| {
                format!("max_udp_payload = {v} is out of range: use 512..=4096 (1232 recommended)")
            })
            .unwrap_or_else(|err| {
                errors.push(err.into());
                *config.server.max_udp_payload.get_ref()
            });
        let state_dir =
            crate::transfer::StateDir::for_config(&loaded.path, config.server.state_dir.as_deref());
        let now_unix = crate::transfer::unix_now();
        let keys = config_pass(&mut errors, |e| crate::transfer::build_keys(&loaded, e));
        let zones::LoadedZones {
            mut zones,
            failed: failed_zones,
            keys: zone_keys,
            warnings: dnssec_warnings,
            signed_at: now,
        } = zones::load_zones(source, &loaded, &state_dir, now_unix, &mut errors);
        let ecs_settings = ecs_settings(&loaded, &mut errors);
        let rrl = rrl_settings(&loaded, &mut errors);
        let geo = load_geo_tables(&loaded, &mut errors);
        let (checks, health_settings) = config_pass(&mut errors, |e| {
            let checks = crate::health::build_checks(&loaded, e);
            (checks, crate::health::build_health_settings(&loaded, e))
        });
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

/// Runs a pass that reports configuration errors, adding them to `errors`.
fn config_pass<T>(
    errors: &mut Vec<BuildError>,
    pass: impl FnOnce(&mut Vec<ConfigError>) -> T,
) -> T {
    let mut found = Vec::new();
    let value = pass(&mut found);
    errors.extend(found.into_iter().map(BuildError::from));
    value
}

/// `[ecs]`, checked.
fn ecs_settings(loaded: &LoadedConfig, errors: &mut Vec<BuildError>) -> EcsSettings {
    let ecs = &loaded.config.ecs;
    let mut prefix = |value, max: u8, message: &'static str| {
        loaded
            .in_range(value, 1..=max, |_| message.to_string())
            .unwrap_or_else(|err| {
                errors.push(err.into());
                *value.get_ref()
            })
    };
    EcsSettings {
        enabled: ecs.enabled,
        max_source_prefix_v4: prefix(
            &ecs.max_source_prefix_v4,
            32,
            "max_source_prefix_v4 must be 1..=32",
        ),
        max_source_prefix_v6: prefix(
            &ecs.max_source_prefix_v6,
            128,
            "max_source_prefix_v6 must be 1..=128",
        ),
    }
}

/// The rate limiting `[rrl]` asks for, checked.
fn rrl_settings(loaded: &LoadedConfig, errors: &mut Vec<BuildError>) -> Option<RrlSettings> {
    let rrl = &loaded.config.rrl;
    if !rrl.enabled {
        return None;
    }
    let per_second = loaded.in_range(&rrl.responses_per_second, 1..=u32::MAX, |_| {
        "rrl.responses_per_second must be at least 1".to_string()
    });
    let v4 = loaded.in_range(&rrl.ipv4_prefix_len, 1..=32, |_| {
        "rrl.ipv4_prefix_len must be 1..=32".to_string()
    });
    let v6 = loaded.in_range(&rrl.ipv6_prefix_len, 1..=128, |_| {
        "rrl.ipv6_prefix_len must be 1..=128".to_string()
    });
    match (per_second, v4, v6) {
        (Ok(responses_per_second), Ok(ipv4_prefix_len), Ok(ipv6_prefix_len)) => Some(RrlSettings {
            responses_per_second,
            slip: rrl.slip,
            ipv4_prefix_len,
            ipv6_prefix_len,
            table_size: rrl.table_size.clamp(1, 1 << 24),
        }),
        (per_second, v4, v6) => {
            let found = [per_second.err(), v4.err(), v6.err()];
            errors.extend(found.into_iter().flatten().map(BuildError::from));
            None
        }
    }
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

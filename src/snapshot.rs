//! Everything that answers queries, built whole from the configuration and
//! swapped in atomically.
//!
//! `Snapshot::build` is the only place where files are read for the data
//! plane; the result is immutable. A reload builds a new snapshot and, only
//! if that succeeded, replaces the old one, so a bad reload changes nothing.

use std::fmt;
use std::path::{Path, PathBuf};

use hickory_proto::rr::Name;

use crate::config::{ConfigError, LoadedConfig, load_config};
use crate::zone::{Zone, ZoneError, ZoneSet, load_zone_file};

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

/// The immutable data the query path answers from.
#[derive(Debug)]
pub struct Snapshot {
    /// Every served zone.
    pub zones: ZoneSet,
    /// Largest UDP payload we offer to EDNS clients.
    pub max_udp_payload: u16,
}

impl Snapshot {
    /// Loads the configuration and everything it names, validates it all and
    /// compiles the snapshot. Also returns the parsed configuration, which
    /// holds the process-level settings (listeners, API).
    ///
    /// # Errors
    /// Every problem found, each naming its file and line.
    pub fn build(source: &SnapshotSource) -> Result<(Snapshot, LoadedConfig), BuildErrors> {
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
        let mut zone_specs: Vec<(String, PathBuf, Option<std::ops::Range<usize>>)> = config
            .zones
            .iter()
            .map(|z| {
                (
                    z.origin.get_ref().clone(),
                    loaded.resolve_path(z.file.get_ref()),
                    Some(z.origin.span()),
                )
            })
            .collect();
        zone_specs.extend(
            source
                .extra_zones
                .iter()
                .map(|(o, p)| (o.clone(), p.clone(), None)),
        );
        for (origin_text, path, span) in zone_specs {
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
            match load_zone(&origin, &path) {
                Ok(zone) => {
                    if !zones.insert(zone) {
                        errors.push(locate(format!(
                            "zone {origin} is configured twice: remove one"
                        )));
                    }
                }
                Err(zone_errors) => errors.extend(zone_errors.into_iter().map(BuildError::from)),
            }
        }
        if zones.is_empty() && errors.is_empty() {
            errors.push(
                loaded
                    .error("no zones configured: add a [[zone]] with origin and file")
                    .into(),
            );
        }
        if !errors.is_empty() {
            return Err(BuildErrors(errors));
        }
        Ok((
            Snapshot {
                zones,
                max_udp_payload,
            },
            loaded,
        ))
    }
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

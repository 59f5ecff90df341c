//! The zones pass of a build: every `[[zone]]` (and `--zone`) loaded from
//! its file or, for a secondary zone, from the copy under `state_dir`; each
//! signed zone's keys read; the zones that failed remembered, so names
//! inside them get no second error.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use hickory_proto::rr::Name;

use super::{BuildError, SnapshotSource};
use crate::config::{ConfigError, LoadedConfig};
use crate::dnssec::{DnssecError, ZoneKeys};
use crate::transfer::StateDir;
use crate::zone::{WireName, Zone, ZoneError, ZoneSet, load_zone_file};

/// What the zones pass hands the rest of the build.
pub(super) struct LoadedZones {
    /// Every zone that loaded.
    pub(super) zones: ZoneSet,
    /// Configured zones whose files did not load.
    pub(super) failed: Vec<Name>,
    /// Keys of the zones to sign, by origin.
    pub(super) keys: HashMap<WireName, ZoneKeys>,
    /// What loads but deserves a word (keys past their timing events, ...).
    pub(super) warnings: Vec<DnssecError>,
    /// Unix seconds that signatures start and end relative to.
    pub(super) signed_at: i64,
}

/// Loads every configured zone and the keys of the signed ones.
pub(super) fn load_zones(
    source: &SnapshotSource,
    loaded: &LoadedConfig,
    state_dir: &StateDir,
    now_unix: u64,
    errors: &mut Vec<BuildError>,
) -> LoadedZones {
    let config = &loaded.config;
    let mut zones = ZoneSet::default();
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
            loaded,
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
                state_dir, &origin, now_unix,
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
    LoadedZones {
        zones,
        failed: failed_zones,
        keys: zone_keys,
        warnings: dnssec_warnings,
        signed_at: now,
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

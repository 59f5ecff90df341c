//! Warnings: configurations that load but cannot do what they say.
//!
//! A geo map rule keyed by a subdivision, country, continent or ASN that no
//! network of the loaded database carries never matches; a service whose
//! every endpoint is `down = true` answers no records. Neither stops a
//! build (the database may gain the network next week), but `gslb check`
//! reports them (`--strict` makes them errors) and every load logs them.

use std::collections::HashSet;

use toml::Spanned;

use super::BuildError;
use super::services::GeoTables;
use crate::config::{GeoMapToml, LoadedConfig};
use crate::geo::subdivision::SubdivisionTable;
use crate::policy::Service;

/// Every warning for `loaded` against the loaded `geo` databases and the
/// compiled `services`.
pub fn warnings(loaded: &LoadedConfig, geo: &GeoTables, services: &[Service]) -> Vec<BuildError> {
    let mut out = Vec::new();
    let config = &loaded.config;
    let seen = Seen::of(geo);
    for (name, map) in &config.maps {
        unmatched_rules(
            loaded,
            &format!("map {name}"),
            map.get_ref(),
            &seen,
            &mut out,
        );
    }
    for (name, service) in &config.services {
        let service = service.get_ref();
        if let Some(map) = &service.geo {
            unmatched_rules(loaded, &format!("service {name}"), map, &seen, &mut out);
        }
    }
    for service in services {
        let mut endpoints = service.pools.iter().flat_map(|p| p.endpoints.iter());
        let all_down =
            endpoints.next().is_some_and(|e| e.config_down) && endpoints.all(|e| e.config_down);
        // The service as written (compiled names are fully qualified).
        let written = config.services.iter().find(|(key, _)| {
            key.trim_end_matches('.')
                .eq_ignore_ascii_case(service.name.trim_end_matches('.'))
        });
        if let (true, Some((name, service))) = (all_down, written) {
            out.push(
                loaded
                    .error_at(
                        service.span(),
                        format!(
                            "warning: every endpoint of service {name} is down = true: it answers no records (all_down = \"fail-open\" does not override an operator)"
                        ),
                    )
                    .into(),
            );
        }
    }
    out
}

/// What the loaded databases carry.
struct Seen {
    /// Whether a location database is loaded.
    locations: bool,
    subdivisions: HashSet<Box<str>>,
    countries: HashSet<Box<str>>,
    continents: HashSet<Box<str>>,
    /// AS numbers of the ASN database, when one is loaded.
    asns: Option<HashSet<u32>>,
}

impl Seen {
    fn of(geo: &GeoTables) -> Self {
        let mut seen = Seen {
            locations: geo.locations.is_some(),
            subdivisions: HashSet::new(),
            countries: HashSet::new(),
            continents: HashSet::new(),
            asns: None,
        };
        if let Some(table) = &geo.locations {
            for location in table.locations() {
                seen.subdivisions.extend(location.subdivision.clone());
                seen.countries.extend(location.country.clone());
                seen.continents.extend(location.continent.clone());
            }
        }
        if let Some(table) = &geo.asn {
            seen.asns = Some(table.locations().iter().filter_map(|l| l.asn).collect());
        }
        seen
    }
}

/// Rules of `map` (named `owner` in messages) that no network carries.
fn unmatched_rules(
    loaded: &LoadedConfig,
    owner: &str,
    map: &GeoMapToml,
    seen: &Seen,
    out: &mut Vec<BuildError>,
) {
    let mut warn = |list: &Spanned<Vec<String>>, message: String| {
        out.push(
            loaded
                .error_at(list.span(), format!("warning: {owner}: {message}"))
                .into(),
        );
    };
    if seen.locations {
        for (key, list) in &map.subdivision {
            let code = key.to_ascii_uppercase();
            if !seen.subdivisions.contains(code.as_str()) {
                warn(list, unmatched_subdivision(key, &code));
            }
        }
        for (key, list) in &map.country {
            let code = key.to_ascii_uppercase();
            if !seen.countries.contains(code.as_str()) {
                warn(
                    list,
                    format!(
                        "country rule {key:?} matches no network of the geoip database: use a two-letter ISO 3166-1 code (GB, US) the database has, or remove the rule"
                    ),
                );
            }
        }
        for (key, list) in &map.continent {
            if !seen.continents.contains(key.to_ascii_uppercase().as_str()) {
                let mut known: Vec<&str> = seen.continents.iter().map(AsRef::as_ref).collect();
                known.sort_unstable();
                warn(
                    list,
                    format!(
                        "continent rule {key:?} matches no network of the geoip database: use a continent code it has ({}), or remove the rule",
                        known.join(", ")
                    ),
                );
            }
        }
    }
    if let Some(asns) = &seen.asns {
        for (key, list) in &map.asn {
            let number = key.trim_start_matches(['A', 'S', 'a', 's']).parse::<u32>();
            if let Ok(number) = number
                && !asns.contains(&number)
            {
                warn(
                    list,
                    format!(
                        "asn rule {key:?} matches no network of the ASN database: use an AS number the ASN database has, or remove the rule"
                    ),
                );
            }
        }
    }
}

/// The warning for a subdivision rule `key` (upper case `code`) that no
/// network carries. A key that is no ISO 3166-2 code but names a
/// subdivision (`US-Washington`) gets its code as the fix.
fn unmatched_subdivision(key: &str, code: &str) -> String {
    let table = SubdivisionTable::get();
    let base = format!("subdivision rule {key:?} matches no network of the geoip database");
    if table.is_code(code) {
        return format!(
            "{base}: use an ISO 3166-2 code (US-WA) the database has, or remove the rule"
        );
    }
    let named = code
        .split_once('-')
        .and_then(|(country, name)| table.normalise(country, name));
    match named {
        Some(found) => format!(
            "{base} and is not an ISO 3166-2 code: rules name subdivisions by code: write {found:?}"
        ),
        None => format!(
            "{base} and is not an ISO 3166-2 code: use an ISO 3166-2 code (US-WA) the database has, or remove the rule"
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use super::*;
    use crate::config::parse_config;
    use crate::geo::{FieldPaths, LocationTable, MmdbValue, write_mmdb};

    /// An ASN database holding AS64496 only.
    fn asn_table() -> LocationTable {
        let record = MmdbValue::map([("autonomous_system_number", MmdbValue::U32(64496))]);
        let bytes =
            write_mmdb("GeoLite2-ASN", &[("192.0.2.0/24".parse().unwrap(), record)]).unwrap();
        LocationTable::from_bytes(bytes, Path::new("asn.mmdb"), &FieldPaths::asn()).unwrap()
    }

    #[test]
    fn asn_rules_the_asn_database_lacks_are_warnings() {
        let text = "[maps.m]\nasn = { AS64496 = [\"a\"], AS64511 = [\"b\"] }\ndefault = [\"a\"]\n";
        let loaded = parse_config(Path::new("g.toml"), text.to_string()).unwrap();
        let geo = GeoTables {
            locations: None,
            asn: Some(Arc::new(asn_table())),
        };
        let warnings: Vec<String> = warnings(&loaded, &geo, &[])
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].starts_with("g.toml:2:"), "{warnings:?}");
        assert!(
            warnings[0].contains("asn rule \"AS64511\" matches no network of the ASN database"),
            "{warnings:?}"
        );
        // Without the database nothing can be said: no warning.
        assert!(warnings_without_databases(&loaded).is_empty());
    }

    fn warnings_without_databases(loaded: &LoadedConfig) -> Vec<BuildError> {
        warnings(loaded, &GeoTables::default(), &[])
    }
}

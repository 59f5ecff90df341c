//! A published configuration as one value: the TOML exactly as written,
//! every zone file and latency table it reads (their text), and the files
//! each host keeps on its own disk — GeoIP databases (too large for etcd,
//! updated by `geoipupdate`-style tooling on each host), DNSSEC key files
//! and TSIG secret files (secrets stay on the hosts) — by path and SHA-256
//! only.
//!
//! [`Bundle::collect`] reads one from a loaded configuration (the
//! publisher's side); [`materialize`] writes the configuration a member
//! builds (its own `[server]` and `[cluster]`, the bundled files under a
//! directory of its `state_dir`, the local files resolved against its own
//! configuration file). Reads and writes files only; no network.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::LoadedConfig;

/// The bundle format written by this version of gslb.
pub const FORMAT: u32 = 1;

/// What a bundled or local file is to the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileKind {
    /// A `[[zone]] file`.
    Zone,
    /// A service's `latency_table`.
    LatencyTable,
    /// `[geoip] database` or `asn_database`.
    Geoip,
    /// A `dnssec_keys` `.private` file or the `.key` file beside it.
    DnssecKey,
    /// A `[tsig.NAME] secret_file`.
    TsigSecret,
}

impl FileKind {
    /// The name used in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            FileKind::Zone => "zone file",
            FileKind::LatencyTable => "latency table",
            FileKind::Geoip => "GeoIP database",
            FileKind::DnssecKey => "DNSSEC key file",
            FileKind::TsigSecret => "TSIG secret file",
        }
    }
}

/// A file carried in the bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundledFile {
    /// The path as written in the TOML.
    pub path: String,
    /// What it is.
    pub kind: FileKind,
    /// Its text.
    pub text: String,
}

/// A file every member reads from its own disk, recorded as published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalFile {
    /// The path as written in the TOML (relative ones are resolved against
    /// each member's own configuration file).
    pub path: String,
    /// What it is.
    pub kind: FileKind,
    /// SHA-256 (hex) of the publisher's copy.
    pub sha256: String,
}

/// One published configuration (the value of `config/bundle/N`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bundle {
    /// [`FORMAT`].
    pub format: u32,
    /// The configuration file's name when it was published (for messages).
    pub name: String,
    /// The TOML as written (its `[server]` and `[cluster]` are the
    /// publisher's; members use their own).
    pub config: String,
    /// Zone files and latency tables, in path order.
    pub files: Vec<BundledFile>,
    /// GeoIP databases, DNSSEC keys and TSIG secret files, in path order.
    pub local_files: Vec<LocalFile>,
}

/// Why a bundle cannot be made or used.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// A file cannot be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A path in the TOML is not UTF-8 (it could not be written back).
    #[error("{path:?}: the path is not UTF-8")]
    PathNotUtf8 {
        /// The path.
        path: PathBuf,
    },
    /// The bundle's TOML or the member's own file does not parse as TOML.
    #[error("{what} is not valid TOML: {message}")]
    Toml {
        /// Which text.
        what: String,
        /// toml's message.
        message: String,
    },
    /// The bundle names a file it does not carry.
    #[error("the bundle's configuration names {kind} {path:?}, which it does not carry")]
    Missing {
        /// What the file is.
        kind: &'static str,
        /// The path as written.
        path: String,
    },
    /// The bundle was written by a newer gslb.
    #[error(
        "bundle format {0} is newer than this gslb understands ({FORMAT}): upgrade this member"
    )]
    Format(u32),
    /// Writing the member's files failed.
    #[error("writing {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

impl Bundle {
    /// Reads everything `loaded` names: the bundled files' text and the
    /// local files' digests.
    ///
    /// # Errors
    /// A file cannot be read (run `gslb check` first: it says where).
    pub fn collect(loaded: &LoadedConfig) -> Result<Bundle, BundleError> {
        let mut files = BTreeMap::new();
        let mut local = BTreeMap::new();
        for (written, kind) in written_paths(loaded) {
            let text = written
                .to_str()
                .ok_or_else(|| BundleError::PathNotUtf8 {
                    path: written.clone(),
                })?
                .to_string();
            let path = loaded.resolve_path(&written);
            let read = |path: &Path| {
                std::fs::read(path).map_err(|source| BundleError::Read {
                    path: path.to_path_buf(),
                    source,
                })
            };
            match kind {
                FileKind::Zone | FileKind::LatencyTable => {
                    let bytes = read(&path)?;
                    let content = String::from_utf8(bytes).map_err(|_| BundleError::Read {
                        path: path.clone(),
                        source: std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            "not UTF-8 text",
                        ),
                    })?;
                    files.insert(
                        text.clone(),
                        BundledFile {
                            path: text,
                            kind,
                            text: content,
                        },
                    );
                }
                FileKind::Geoip | FileKind::DnssecKey | FileKind::TsigSecret => {
                    let sha256 = sha256_hex(&read(&path)?);
                    local.insert(
                        text.clone(),
                        LocalFile {
                            path: text,
                            kind,
                            sha256,
                        },
                    );
                }
            }
        }
        Ok(Bundle {
            format: FORMAT,
            name: loaded
                .path
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
            config: loaded.text.clone(),
            files: files.into_values().collect(),
            local_files: local.into_values().collect(),
        })
    }

    /// The bundle as stored.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Plain data: serialising cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads a stored bundle.
    ///
    /// # Errors
    /// It is not a bundle, or a newer format than this gslb reads.
    pub fn parse(bytes: &[u8]) -> Result<Bundle, String> {
        let bundle: Bundle = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if bundle.format > FORMAT {
            return Err(BundleError::Format(bundle.format).to_string());
        }
        Ok(bundle)
    }

    /// The local files whose copy on this host (resolved against
    /// `config_path`) is missing or differs from the published one, one
    /// message each.
    pub fn local_mismatches(&self, config_path: &Path) -> Vec<String> {
        let base = parent_dir(config_path);
        self.local_files
            .iter()
            .filter_map(|file| {
                let path = base.join(&file.path);
                match std::fs::read(&path) {
                    Ok(bytes) => {
                        let here = sha256_hex(&bytes);
                        (here != file.sha256).then(|| {
                            format!(
                                "{} {}: differs from the published one (sha256 {} here, {} published)",
                                file.kind.as_str(),
                                path.display(),
                                short(&here),
                                short(&file.sha256)
                            )
                        })
                    }
                    Err(err) => Some(format!(
                        "{} {}: {err} (published with sha256 {})",
                        file.kind.as_str(),
                        path.display(),
                        short(&file.sha256)
                    )),
                }
            })
            .collect()
    }
}

/// The directory of a file (`.` for a bare file name).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// The first 12 hex digits of a digest (as `gslb versions` prints them).
pub fn short(digest: &str) -> &str {
    digest.get(..12).unwrap_or(digest)
}

/// SHA-256 of `bytes`, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Every path `loaded` names, as written, with what it is.
fn written_paths(loaded: &LoadedConfig) -> Vec<(PathBuf, FileKind)> {
    let config = &loaded.config;
    let mut paths = Vec::new();
    for zone in &config.zones {
        if let Some(file) = &zone.file {
            paths.push((file.get_ref().clone(), FileKind::Zone));
        }
        for key in zone.dnssec_keys.get_ref() {
            let private = key.path().to_path_buf();
            if let Some(stem) = private.to_str().and_then(|p| p.strip_suffix(".private")) {
                paths.push((PathBuf::from(format!("{stem}.key")), FileKind::DnssecKey));
            }
            paths.push((private, FileKind::DnssecKey));
        }
    }
    for service in config.services.values() {
        if let Some(table) = &service.get_ref().latency_table {
            paths.push((table.get_ref().clone(), FileKind::LatencyTable));
        }
    }
    if let Some(geoip) = &config.geoip {
        for database in [&geoip.database, &geoip.asn_database].into_iter().flatten() {
            paths.push((database.get_ref().clone(), FileKind::Geoip));
        }
    }
    for tsig in config.tsig.values() {
        if let Some(file) = &tsig.get_ref().secret_file {
            paths.push((file.get_ref().clone(), FileKind::TsigSecret));
        }
    }
    paths
}

/// Writes the configuration a member builds for `bundle` (`None`: nothing
/// published yet, only its own sections) into `dir`, and returns the
/// configuration file's path. The member's own `[server]` and `[cluster]`
/// (from `local`) replace the bundle's; bundled files are written under
/// `dir/files/`; local files and `state_dir` are resolved against the
/// member's own file, so the result holds absolute paths only.
///
/// # Errors
/// The texts do not parse as TOML, the bundle lacks a file it names, or a
/// file cannot be written.
pub fn materialize(
    bundle: Option<&Bundle>,
    local: &LoadedConfig,
    dir: &Path,
) -> Result<PathBuf, BundleError> {
    let parse = |text: &str, what: &str| {
        text.parse::<toml::Table>()
            .map_err(|err| BundleError::Toml {
                what: what.to_string(),
                message: err.message().to_string(),
            })
    };
    let mut table = match bundle {
        Some(bundle) => parse(&bundle.config, "the published configuration")?,
        None => toml::Table::new(),
    };
    let own = parse(&local.text, &local.path.display().to_string())?;
    table.remove("server");
    table.remove("cluster");
    for section in ["server", "cluster"] {
        if let Some(value) = own.get(section) {
            table.insert(section.to_string(), value.clone());
        }
    }
    // Every path written is absolute: the configuration is read from `dir`,
    // not from beside the member's own file.
    let base =
        std::path::absolute(parent_dir(&local.path)).map_err(|source| BundleError::Read {
            path: local.path.clone(),
            source,
        })?;
    let dir = &std::path::absolute(dir).map_err(|source| BundleError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    let absolute = |written: &str| -> String {
        let path = Path::new(written);
        if path.is_absolute() {
            written.to_string()
        } else {
            base.join(path).to_string_lossy().into_owned()
        }
    };
    // state_dir stays the member's own (default `state/` beside its file).
    let state_dir = match local.config.server.state_dir.as_deref() {
        Some(dir) => absolute(&dir.to_string_lossy()),
        None => absolute("state"),
    };
    table
        .entry("server")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let Some(server) = table.get_mut("server").and_then(toml::Value::as_table_mut) {
        server.insert("state_dir".into(), toml::Value::String(state_dir));
    }

    let _ = std::fs::remove_dir_all(dir);
    let files_dir = dir.join("files");
    std::fs::create_dir_all(&files_dir).map_err(|source| BundleError::Write {
        path: files_dir.clone(),
        source,
    })?;
    let mut written: BTreeMap<String, String> = BTreeMap::new();
    if let Some(bundle) = bundle {
        for (index, file) in bundle.files.iter().enumerate() {
            // Bundle paths come from the store: only the base name (made
            // safe) is used, behind an index that keeps names distinct.
            let name: String = Path::new(&file.path)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            let path = files_dir.join(format!("{index}-{name}"));
            std::fs::write(&path, &file.text).map_err(|source| BundleError::Write {
                path: path.clone(),
                source,
            })?;
            written.insert(file.path.clone(), path.to_string_lossy().into_owned());
        }
    }
    let bundled = |value: &mut toml::Value, kind: FileKind| -> Result<(), BundleError> {
        if let Some(path) = value.as_str() {
            let target = written.get(path).ok_or_else(|| BundleError::Missing {
                kind: kind.as_str(),
                path: path.to_string(),
            })?;
            *value = toml::Value::String(target.clone());
        }
        Ok(())
    };
    let local_path = |value: &mut toml::Value| {
        if let Some(path) = value.as_str() {
            *value = toml::Value::String(absolute(path));
        }
    };
    if let Some(zones) = table.get_mut("zone").and_then(toml::Value::as_array_mut) {
        for zone in zones.iter_mut().filter_map(toml::Value::as_table_mut) {
            if let Some(file) = zone.get_mut("file") {
                bundled(file, FileKind::Zone)?;
            }
            if let Some(keys) = zone
                .get_mut("dnssec_keys")
                .and_then(toml::Value::as_array_mut)
            {
                for key in keys {
                    match key.as_table_mut() {
                        Some(entry) => {
                            for field in ["path", "file"] {
                                if let Some(path) = entry.get_mut(field) {
                                    local_path(path);
                                }
                            }
                        }
                        None => local_path(key),
                    }
                }
            }
        }
    }
    if let Some(services) = table
        .get_mut("services")
        .and_then(toml::Value::as_table_mut)
    {
        for service in services.iter_mut().filter_map(|(_, v)| v.as_table_mut()) {
            if let Some(path) = service.get_mut("latency_table") {
                bundled(path, FileKind::LatencyTable)?;
            }
        }
    }
    if let Some(geoip) = table.get_mut("geoip").and_then(toml::Value::as_table_mut) {
        for field in ["database", "asn_database"] {
            if let Some(path) = geoip.get_mut(field) {
                local_path(path);
            }
        }
    }
    if let Some(keys) = table.get_mut("tsig").and_then(toml::Value::as_table_mut) {
        for key in keys.iter_mut().filter_map(|(_, v)| v.as_table_mut()) {
            if let Some(path) = key.get_mut("secret_file") {
                local_path(path);
            }
        }
    }
    let text = toml::to_string(&table).map_err(|err| BundleError::Toml {
        what: "the member's configuration".into(),
        message: err.to_string(),
    })?;
    let path = dir.join("gslb.toml");
    let header = "# Written by gslb from a published configuration version and this\n# member's own [server] and [cluster]; edits here are overwritten.\n";
    std::fs::write(&path, format!("{header}{text}")).map_err(|source| BundleError::Write {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(label: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("gslb-bundle-{}-{label}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn collect_then_materialize_keeps_the_members_own_sections() {
        let dir = temp("publisher");
        std::fs::create_dir_all(dir.join("zones")).unwrap();
        std::fs::write(dir.join("zones/a.zone"), "$ORIGIN a.test.\n").unwrap();
        std::fs::write(dir.join("city.mmdb"), b"not really").unwrap();
        let text = "[server]\nlisten = [\"127.0.0.1:1\"]\n\n[[zone]]\norigin = \"a.test\"\nfile = \"zones/a.zone\"\n\n[geoip]\ndatabase = \"city.mmdb\"\n";
        let loaded = crate::config::parse_config(&dir.join("gslb.toml"), text.to_string()).unwrap();
        let bundle = Bundle::collect(&loaded).unwrap();
        assert_eq!(bundle.files.len(), 1);
        assert_eq!(bundle.files[0].text, "$ORIGIN a.test.\n");
        assert_eq!(bundle.local_files[0].kind, FileKind::Geoip);
        assert_eq!(bundle.local_files[0].sha256, sha256_hex(b"not really"));
        assert_eq!(Bundle::parse(&bundle.to_bytes()).unwrap(), bundle);

        let member = temp("member");
        let own = "[server]\nlisten = [\"127.0.0.1:2\"]\n\n[cluster]\nname = \"ns1\"\netcd = [\"http://127.0.0.1:2379\"]\nconfig = \"etcd\"\n";
        let own = crate::config::parse_config(&member.join("gslb.toml"), own.to_string()).unwrap();
        let path = materialize(Some(&bundle), &own, &member.join("state/fleet/v1")).unwrap();
        let built = crate::config::load_config(&path).unwrap();
        assert_eq!(built.config.server.listen[0].get_ref().port(), 2);
        assert_eq!(
            built.config.server.state_dir.as_deref(),
            Some(member.join("state").as_path())
        );
        assert_eq!(
            built.config.geoip.unwrap().database.unwrap().into_inner(),
            member.join("city.mmdb")
        );
        let zone = built.config.zones[0].file.clone().unwrap().into_inner();
        assert_eq!(std::fs::read_to_string(zone).unwrap(), "$ORIGIN a.test.\n");
        // The member has no city.mmdb: reported, with the published digest.
        let mismatches = bundle.local_mismatches(&own.path);
        assert_eq!(mismatches.len(), 1, "{mismatches:?}");
        assert!(mismatches[0].contains("city.mmdb"), "{mismatches:?}");
        let _ = std::fs::remove_dir_all(dir);
        let _ = std::fs::remove_dir_all(member);
    }

    #[test]
    fn a_stored_path_cannot_escape_the_files_directory() {
        let member = temp("escape");
        let bundle = Bundle {
            format: FORMAT,
            name: "x".into(),
            config: "[[zone]]\norigin = \"a.test\"\nfile = \"../../../etc/evil\"\n".into(),
            files: vec![BundledFile {
                path: "../../../etc/evil".into(),
                kind: FileKind::Zone,
                text: "x".into(),
            }],
            local_files: vec![],
        };
        let own = crate::config::parse_config(&member.join("gslb.toml"), String::new()).unwrap();
        let path = materialize(Some(&bundle), &own, &member.join("v1")).unwrap();
        let built = crate::config::load_config(&path).unwrap();
        let zone = built.config.zones[0].file.clone().unwrap().into_inner();
        assert!(zone.starts_with(member.join("v1/files")), "{zone:?}");
        let _ = std::fs::remove_dir_all(member);
    }
}

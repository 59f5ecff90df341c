//! Files under `[server] state_dir` that outlive a restart: each secondary
//! zone's last transferred records with its refresh times, and each
//! primary zone's last served serial and content digest.
//!
//! Writes go to a temporary file renamed into place, so a crash leaves the
//! previous file whole. Reads never panic on a damaged file: it counts as
//! absent and is reported.

use std::io::Write;
use std::path::{Path, PathBuf};

use hickory_proto::rr::Record;
use hickory_proto::serialize::binary::{BinDecodable, BinEncodable};

/// Magic at the start of a secondary zone cache file.
const CACHE_MAGIC: &[u8; 8] = b"GSLBXFR1";

/// Where state lives for one configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDir(pub PathBuf);

/// What is known about a secondary zone's copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecondaryMeta {
    /// Serial of the cached copy.
    pub serial: u32,
    /// When the copy was last confirmed current by a primary (seconds since the epoch).
    pub refreshed_unix: u64,
    /// SOA REFRESH, RETRY and EXPIRE of the copy, in seconds.
    pub refresh_secs: u32,
    /// SOA RETRY.
    pub retry_secs: u32,
    /// SOA EXPIRE.
    pub expire_secs: u32,
}

impl SecondaryMeta {
    /// Whether the copy has expired at `now` (RFC 1035 §4.3.5).
    pub fn expired(&self, now_unix: u64) -> bool {
        now_unix
            >= self
                .refreshed_unix
                .saturating_add(u64::from(self.expire_secs))
    }
}

/// A problem reading or writing state.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// File system error.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A transferred record cannot be written to the cache.
    #[error("{}: not written: {what}", path.display())]
    Unencodable {
        /// The file.
        path: PathBuf,
        /// Which record and why.
        what: String,
    },
    /// The file exists but cannot be read as state.
    #[error("{}: damaged state file: {what}", path.display())]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
}

impl StateDir {
    /// `[server] state_dir`, or `state/` beside the configuration file.
    pub fn for_config(config_path: &Path, configured: Option<&Path>) -> Self {
        let base = config_path.parent().unwrap_or(Path::new("."));
        match configured {
            Some(dir) if dir.is_absolute() => Self(dir.to_path_buf()),
            Some(dir) => Self(base.join(dir)),
            None => Self(base.join("state")),
        }
    }

    fn file(&self, kind: &str, origin: &str, extension: &str) -> PathBuf {
        let stem = match origin.trim_end_matches('.') {
            "" => "root".to_string(),
            name => name.to_ascii_lowercase().replace(['/', '\\'], "_"),
        };
        self.0.join(kind).join(format!("{stem}.{extension}"))
    }

    /// The cache file of a secondary zone's records.
    pub fn cache_path(&self, origin: &str) -> PathBuf {
        self.file("secondary", origin, "records")
    }

    fn meta_path(&self, origin: &str) -> PathBuf {
        self.file("secondary", origin, "meta")
    }

    fn served_path(&self, origin: &str) -> PathBuf {
        self.file("served", origin, "serial")
    }

    /// Reads a secondary zone's cached records and their metadata; `None`
    /// when there is no cache.
    ///
    /// # Errors
    /// The files exist but cannot be read.
    pub fn load_secondary(
        &self,
        origin: &str,
    ) -> Result<Option<(Vec<Record>, SecondaryMeta)>, StateError> {
        let meta_path = self.meta_path(origin);
        let meta_text = match std::fs::read_to_string(&meta_path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(StateError::Io {
                    path: meta_path,
                    source,
                });
            }
        };
        let meta = parse_meta(&meta_text).ok_or_else(|| StateError::Damaged {
            path: meta_path.clone(),
            what: "expected serial, refreshed, refresh, retry and expire lines".into(),
        })?;
        let path = self.cache_path(origin);
        let bytes = std::fs::read(&path).map_err(|source| StateError::Io {
            path: path.clone(),
            source,
        })?;
        let records = decode_records(&bytes).map_err(|what| StateError::Damaged {
            path: path.clone(),
            what,
        })?;
        Ok(Some((records, meta)))
    }

    /// Replaces a secondary zone's cache (records first, then metadata).
    ///
    /// # Errors
    /// A record cannot be encoded (nothing is written), or the files cannot
    /// be written.
    pub fn store_secondary(
        &self,
        origin: &str,
        records: &[Record],
        meta: &SecondaryMeta,
    ) -> Result<(), StateError> {
        let path = self.cache_path(origin);
        let bytes = encode_records(records).map_err(|what| StateError::Unencodable {
            path: path.clone(),
            what,
        })?;
        write_atomically(&path, &bytes)?;
        self.store_meta(origin, meta)
    }

    /// Replaces only a secondary zone's metadata (a refresh found no change).
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn store_meta(&self, origin: &str, meta: &SecondaryMeta) -> Result<(), StateError> {
        let text = format!(
            "serial {}\nrefreshed {}\nrefresh {}\nretry {}\nexpire {}\n",
            meta.serial, meta.refreshed_unix, meta.refresh_secs, meta.retry_secs, meta.expire_secs
        );
        write_atomically(&self.meta_path(origin), text.as_bytes())
    }

    /// The last served serial and content digest of a primary zone.
    pub fn load_served(&self, origin: &str) -> Option<(u32, String)> {
        let text = std::fs::read_to_string(self.served_path(origin)).ok()?;
        let mut words = text.split_whitespace();
        let serial = words.next()?.parse().ok()?;
        let digest = words.next()?.to_string();
        Some((serial, digest))
    }

    /// Records the serial and digest of a primary zone now served.
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn store_served(&self, origin: &str, serial: u32, digest: &str) -> Result<(), StateError> {
        write_atomically(
            &self.served_path(origin),
            format!("{serial} {digest}\n").as_bytes(),
        )
    }
}

fn parse_meta(text: &str) -> Option<SecondaryMeta> {
    let field = |name: &str| -> Option<u64> {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
    };
    Some(SecondaryMeta {
        serial: u32::try_from(field("serial ")?).ok()?,
        refreshed_unix: field("refreshed ")?,
        refresh_secs: u32::try_from(field("refresh ")?).ok()?,
        retry_secs: u32::try_from(field("retry ")?).ok()?,
        expire_secs: u32::try_from(field("expire ")?).ok()?,
    })
}

/// Every record here was decoded from the wire, so it encodes again; should
/// one not, nothing is written: a cache missing a record would serve a
/// different zone under the same serial, and IXFR differences applied to it
/// later would go wrong.
fn encode_records(records: &[Record]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(16 + records.len() * 48);
    out.extend_from_slice(CACHE_MAGIC);
    for record in records {
        let bytes = record.to_bytes().map_err(|err| {
            format!(
                "record {} {} cannot be encoded: {err}",
                record.name,
                record.record_type()
            )
        })?;
        out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        out.extend_from_slice(&bytes);
    }
    Ok(out)
}

fn decode_records(bytes: &[u8]) -> Result<Vec<Record>, String> {
    let rest = bytes
        .strip_prefix(CACHE_MAGIC)
        .ok_or_else(|| "not a gslb secondary zone cache".to_string())?;
    let mut records = Vec::new();
    let mut pos = 0usize;
    while pos < rest.len() {
        let len = rest
            .get(pos..pos + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .ok_or("record length cut short")?;
        let body = rest.get(pos + 4..pos + 4 + len).ok_or("record cut short")?;
        let record = Record::from_bytes(body)
            .map_err(|err| format!("record {}: {err}", records.len() + 1))?;
        records.push(record);
        pos += 4 + len;
    }
    Ok(records)
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    let io = |source| StateError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let temporary = path.with_extension("tmp");
    let mut file = std::fs::File::create(&temporary).map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&temporary, path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zone::parse_zone_text;
    use hickory_proto::rr::Name;

    #[test]
    fn secondary_cache_round_trips() {
        let dir = std::env::temp_dir().join(format!("gslb-state-{}", std::process::id()));
        let state = StateDir(dir.clone());
        let origin = Name::from_ascii("corp.test.").unwrap();
        let text = "@ 300 IN SOA ns hostmaster 7 60 30 600 60\n@ 300 IN NS ns\nns 300 IN A 192.0.2.1\nmail 300 IN MX 10 ns\n";
        let records: Vec<Record> = parse_zone_text(text, Path::new("t"), &origin)
            .unwrap()
            .into_iter()
            .map(|r| r.record)
            .collect();
        let meta = SecondaryMeta {
            serial: 7,
            refreshed_unix: 100,
            refresh_secs: 60,
            retry_secs: 30,
            expire_secs: 600,
        };
        state
            .store_secondary("corp.test.", &records, &meta)
            .unwrap();
        let (loaded, loaded_meta) = state.load_secondary("corp.test").unwrap().unwrap();
        assert_eq!(loaded, records);
        assert_eq!(loaded_meta, meta);
        assert!(!meta.expired(699) && meta.expired(700));
        std::fs::write(state.cache_path("corp.test"), b"junk").unwrap();
        assert!(state.load_secondary("corp.test").is_err());
        let _ = std::fs::remove_dir_all(dir);
    }
}

//! The published versions in etcd, under `[cluster] prefix`:
//!
//! | key | value |
//! |---|---|
//! | `PREFIX/config/latest` | the newest version's number (decimal text) |
//! | `PREFIX/config/meta/N` | [`VersionMeta`] (JSON): number, time, who, message, digest, size |
//! | `PREFIX/config/bundle/N` | the [`Bundle`] (JSON) |
//!
//! `N` is zero-padded to 10 digits so keys sort by number. A publish is one
//! transaction that writes version N+1's bundle and meta, moves `latest`
//! and removes versions older than the last `keep_versions` (as many as
//! etcd's `--max-txn-ops` allows; the next publishes remove the rest), and that
//! holds only if `latest` is unchanged since it was read: two publishes
//! racing from the same version cannot both win.

use serde::{Deserialize, Serialize};

use super::bundle::Bundle;
use crate::cluster::etcd::{Compare, Etcd, EtcdError, TxnOp};
use crate::cluster::{ClusterSettings, MAX_TXN_OPS, MemberRecord};

/// Width of version numbers in keys.
const KEY_DIGITS: usize = 10;

/// What is known of one published version (small: `gslb versions` and
/// every member read all of them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionMeta {
    /// Its number (1, 2, …).
    pub version: u64,
    /// When it was published (ms since the epoch).
    pub published_ms: u64,
    /// Who published it (`user@host`).
    pub by: String,
    /// The publisher's message.
    pub message: String,
    /// SHA-256 of the configuration (what members report as their config
    /// digest: everything but `[server]` and `[cluster]`, plus every file
    /// it reads).
    pub digest: String,
    /// Size of the bundle in bytes.
    pub bytes: u64,
    /// The version it republished, for a rollback.
    #[serde(default)]
    pub rollback_of: Option<u64>,
}

/// What a new version says about itself.
#[derive(Debug, Clone)]
pub struct NewVersion {
    /// Who publishes it.
    pub by: String,
    /// Why.
    pub message: String,
    /// The configuration digest.
    pub digest: String,
    /// The version it republishes (rollback).
    pub rollback_of: Option<u64>,
}

/// Why a publish did not happen.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// etcd could not be reached or refused.
    #[error("etcd: {0} (nothing was published)")]
    Store(#[from] EtcdError),
    /// The versions could not be read.
    #[error("reading the published versions: {0} (nothing was published)")]
    Read(#[from] ReadError),
    /// Another publish moved `latest` between this one's read and write.
    #[error(
        "another publish won the race: version {newest} was published while this one was being written (it was based on {}); nothing was published — look at version {newest} (gslb versions, gslb diff) and publish again",
        base.map_or("no version".to_string(), |b| format!("version {b}"))
    )]
    Raced {
        /// The newest version when this publish read it.
        base: Option<u64>,
        /// The newest version now.
        newest: u64,
    },
    /// `--expect-version` named a version that is no longer the newest.
    #[error(
        "the newest version is {}, not {expected} (--expect-version): someone published since; nothing was published — look at it (gslb diff {expected} {}) and publish again",
        newest.map_or("none".to_string(), |n| n.to_string()),
        newest.map_or("none".to_string(), |n| n.to_string())
    )]
    NotNewest {
        /// The version expected to be the newest.
        expected: u64,
        /// The newest version.
        newest: Option<u64>,
    },
    /// The request is larger than etcd accepts.
    #[error(
        "the bundle is {bytes} bytes, more than etcd accepts in one request ({message}): etcd refuses requests over its --max-request-bytes (1.5 MiB by default); nothing was published — shrink the zone files or latency tables, or raise etcd's limit on every etcd node"
    )]
    TooLarge {
        /// The bundle's size.
        bytes: usize,
        /// etcd's message.
        message: String,
    },
}

/// Why a read of the versions failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// etcd could not be reached or refused.
    #[error("etcd: {0}")]
    Store(#[from] EtcdError),
    /// A value under the prefix does not parse.
    #[error("{key}: {message}")]
    Damaged {
        /// The key.
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// The versions under one cluster prefix.
#[derive(Debug)]
pub struct Store {
    etcd: Etcd,
    prefix: String,
}

impl Store {
    /// The store of the cluster `settings` name (nothing is contacted yet).
    ///
    /// # Errors
    /// The etcd client cannot be built.
    pub fn new(settings: &ClusterSettings) -> Result<Self, EtcdError> {
        Ok(Self {
            etcd: Etcd::new(&settings.etcd)?,
            prefix: settings.prefix.clone(),
        })
    }

    /// The etcd client.
    pub fn etcd(&self) -> &Etcd {
        &self.etcd
    }

    /// Every key of the versions starts with this (`PREFIX/config/`).
    pub fn config_prefix(&self) -> String {
        format!("{}/config/", self.prefix)
    }

    /// The key holding the newest version's number.
    pub fn latest_key(&self) -> String {
        format!("{}latest", self.config_prefix())
    }

    /// The prefix of the versions' metadata.
    pub fn meta_prefix(&self) -> String {
        format!("{}meta/", self.config_prefix())
    }

    fn meta_key(&self, version: u64) -> String {
        format!(
            "{}{version:0width$}",
            self.meta_prefix(),
            width = KEY_DIGITS
        )
    }

    fn bundle_prefix(&self) -> String {
        format!("{}bundle/", self.config_prefix())
    }

    fn bundle_key(&self, version: u64) -> String {
        format!(
            "{}{version:0width$}",
            self.bundle_prefix(),
            width = KEY_DIGITS
        )
    }

    /// What a key under [`Store::config_prefix`] is.
    pub fn classify(&self, key: &str) -> Option<ConfigKey> {
        let rest = key.strip_prefix(&self.config_prefix())?;
        if rest == "latest" {
            return Some(ConfigKey::Latest);
        }
        if let Some(number) = rest.strip_prefix("meta/") {
            return number.parse().ok().map(ConfigKey::Meta);
        }
        if let Some(number) = rest.strip_prefix("bundle/") {
            return number.parse().ok().map(ConfigKey::Bundle);
        }
        None
    }

    /// The newest version's number (`None` before the first publish) and
    /// the revision of its key's last change (0: absent).
    ///
    /// # Errors
    /// etcd is unreachable, or the value is not a number.
    pub async fn latest(&self) -> Result<(Option<u64>, i64), ReadError> {
        let key = self.latest_key();
        match self.etcd.get(&key).await? {
            None => Ok((None, 0)),
            Some(kv) => parse_latest(&kv.value)
                .map(|n| (Some(n), kv.mod_revision))
                .map_err(|message| ReadError::Damaged { key, message }),
        }
    }

    /// Every kept version's metadata, oldest first (values that do not
    /// parse are logged and left out), and the store's revision.
    ///
    /// # Errors
    /// etcd is unreachable.
    pub async fn versions(&self) -> Result<(Vec<VersionMeta>, i64), EtcdError> {
        let range = self.etcd.range_prefix(&self.meta_prefix()).await?;
        let mut versions: Vec<VersionMeta> = range
            .kvs
            .iter()
            .filter_map(|kv| match parse_meta(&kv.value) {
                Ok(meta) => Some(meta),
                Err(err) => {
                    tracing::error!(key = %kv.key, error = %err, "ignoring version metadata that does not parse");
                    None
                }
            })
            .collect();
        versions.sort_by_key(|m| m.version);
        Ok((versions, range.revision))
    }

    /// Version `version`'s bundle, if it is still kept.
    ///
    /// # Errors
    /// etcd is unreachable, or the value does not parse.
    pub async fn bundle(&self, version: u64) -> Result<Option<Bundle>, ReadError> {
        let key = self.bundle_key(version);
        match self.etcd.get(&key).await? {
            None => Ok(None),
            Some(kv) => Bundle::parse(&kv.value)
                .map(Some)
                .map_err(|message| ReadError::Damaged { key, message }),
        }
    }

    /// The live members' records.
    ///
    /// # Errors
    /// etcd is unreachable.
    pub async fn members(&self) -> Result<Vec<MemberRecord>, ReadError> {
        let range = self
            .etcd
            .range_prefix(&format!("{}/members/", self.prefix))
            .await?;
        Ok(range
            .kvs
            .iter()
            .filter_map(|kv| serde_json::from_slice(&kv.value).ok())
            .collect())
    }

    /// Publishes `bundle` as the next version, if the newest version is
    /// still the one this call reads (and `expect`, when given); removes
    /// the versions older than the last `keep`.
    ///
    /// # Errors
    /// See [`PublishError`]; nothing is written on any error.
    pub async fn publish(
        &self,
        bundle: &Bundle,
        new: NewVersion,
        expect: Option<u64>,
        keep: u64,
    ) -> Result<VersionMeta, PublishError> {
        let base = self.read_base(expect).await?;
        self.commit(base, bundle, new, keep).await
    }

    /// The first half of a publish: reads the newest version (checking
    /// `expect`) and the kept ones. Two publishes racing read the same
    /// base; only the first [`Store::commit`] on it succeeds.
    ///
    /// # Errors
    /// etcd is unreachable, or the newest version is not `expect`.
    pub async fn read_base(&self, expect: Option<u64>) -> Result<PublishBase, PublishError> {
        let (newest, revision) = self.latest().await?;
        if let Some(expected) = expect
            && newest != Some(expected)
        {
            return Err(PublishError::NotNewest { expected, newest });
        }
        let (kept, _) = self.versions().await?;
        Ok(PublishBase {
            newest,
            revision,
            kept: kept.iter().map(|m| m.version).collect(),
        })
    }

    /// The second half of a publish: one transaction that writes version
    /// `base.newest + 1` and removes the versions older than the last
    /// `keep`, and that holds only if `latest` has not moved since `base`
    /// was read.
    ///
    /// # Errors
    /// See [`PublishError`] ([`PublishError::Raced`] when another publish
    /// committed first); nothing is written on any error.
    pub async fn commit(
        &self,
        base: PublishBase,
        bundle: &Bundle,
        new: NewVersion,
        keep: u64,
    ) -> Result<VersionMeta, PublishError> {
        let PublishBase {
            newest,
            revision,
            kept,
        } = base;
        let version = newest.unwrap_or(0) + 1;
        let bytes = bundle.to_bytes();
        let meta = VersionMeta {
            version,
            published_ms: crate::operator::unix_ms(std::time::SystemTime::now()),
            by: new.by,
            message: new.message,
            digest: new.digest,
            bytes: bytes.len() as u64,
            rollback_of: new.rollback_of,
        };
        let meta_bytes = serde_json::to_vec(&meta).unwrap_or_default();
        let size = bytes.len();
        let mut ops = vec![
            TxnOp::Put {
                key: self.bundle_key(version),
                value: bytes,
                lease: 0,
            },
            TxnOp::Put {
                key: self.meta_key(version),
                value: meta_bytes,
                lease: 0,
            },
            TxnOp::Put {
                key: self.latest_key(),
                value: version.to_string().into_bytes(),
                lease: 0,
            },
        ];
        // Versions 1..=version-keep go (their bundles too), oldest first and
        // no more than fit beside the three writes in one transaction: after
        // keep_versions was lowered far, the next publishes remove the rest.
        let oldest_kept = version.saturating_sub(keep.max(1)) + 1;
        let removable = (MAX_TXN_OPS - ops.len()) / 2;
        for old in kept
            .into_iter()
            .filter(|v| *v < oldest_kept)
            .take(removable)
        {
            ops.push(TxnOp::Delete {
                key: self.meta_key(old),
            });
            ops.push(TxnOp::Delete {
                key: self.bundle_key(old),
            });
        }
        let compare = [Compare::unchanged_since(self.latest_key(), revision)];
        let result = self
            .etcd
            .txn(&compare, &ops, &[])
            .await
            .map_err(|err| match err {
                EtcdError::Refused { message, .. }
                    if message.contains("too large") || message.contains("larger than max") =>
                {
                    PublishError::TooLarge {
                        bytes: size,
                        message,
                    }
                }
                other => PublishError::Store(other),
            })?;
        if !result.succeeded {
            let now = self.latest().await.ok().and_then(|(n, _)| n);
            return Err(PublishError::Raced {
                base: newest,
                newest: now.unwrap_or(version),
            });
        }
        Ok(meta)
    }
}

/// What a publish read before it writes (see [`Store::read_base`]).
#[derive(Debug, Clone)]
pub struct PublishBase {
    /// The newest version then (`None`: nothing published yet).
    pub newest: Option<u64>,
    /// The revision of `latest`'s last change (0: absent): the commit
    /// holds only while it is unchanged.
    revision: i64,
    /// The kept versions' numbers.
    kept: Vec<u64>,
}

/// A key under `PREFIX/config/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigKey {
    /// `latest`.
    Latest,
    /// `meta/N`.
    Meta(u64),
    /// `bundle/N`.
    Bundle(u64),
}

/// Reads the value of `latest`.
///
/// # Errors
/// It is not a version number.
pub fn parse_latest(value: &[u8]) -> Result<u64, String> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .ok_or_else(|| {
            format!(
                "{:?} is not a version number",
                String::from_utf8_lossy(value)
            )
        })
}

/// Reads a version's metadata.
///
/// # Errors
/// It does not parse.
pub fn parse_meta(value: &[u8]) -> Result<VersionMeta, String> {
    serde_json::from_slice(value).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_versions_defaults_to_50() {
        let text = "[cluster]\nname = \"ns1\"\netcd = [\"http://127.0.0.1:2379\"]\n";
        let loaded =
            crate::config::parse_config(std::path::Path::new("m.toml"), text.into()).unwrap();
        let mut errors = Vec::new();
        let settings = crate::cluster::build_cluster_settings(&loaded, &mut errors).unwrap();
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(settings.keep_versions, 50);
    }

    #[test]
    fn keys_sort_by_number_and_classify() {
        let settings = ClusterSettings {
            name: "ns1".into(),
            etcd: vec!["http://127.0.0.1:2379".into()],
            prefix: "/gslb".into(),
            down_quorum: crate::cluster::Quorum::Majority,
            member_ttl: std::time::Duration::from_secs(5),
            probe_source: None,
            config_from_etcd: true,
            keep_versions: 50,
        };
        let store = Store::new(&settings).unwrap();
        assert!(store.meta_key(9) < store.meta_key(10));
        assert_eq!(store.meta_key(7), "/gslb/config/meta/0000000007");
        assert_eq!(
            store.classify("/gslb/config/bundle/0000000012"),
            Some(ConfigKey::Bundle(12))
        );
        assert_eq!(
            store.classify("/gslb/config/latest"),
            Some(ConfigKey::Latest)
        );
        assert_eq!(store.classify("/gslb/config/other"), None);
        assert_eq!(parse_latest(b"12"), Ok(12));
        assert!(parse_latest(b"x").is_err());
    }
}

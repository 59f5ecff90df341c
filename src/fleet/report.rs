//! What `gslb versions` and `gslb diff A B` print: pure functions of the
//! versions, bundles and member records read from the store.

use serde::Serialize;

use super::bundle::{Bundle, short};
use super::member::lag;
use super::store::VersionMeta;
use super::text_diff::unified;
use crate::cluster::MemberRecord;

/// One version as `gslb versions --json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct VersionRow {
    /// Its number.
    pub version: u64,
    /// When it was published (Unix seconds).
    pub published_unix: f64,
    /// Who published it.
    pub by: String,
    /// The publisher's message.
    pub message: String,
    /// The configuration digest.
    pub digest: String,
    /// The bundle's size in bytes.
    pub bytes: u64,
    /// The version it republished (rollback).
    pub rollback_of: Option<u64>,
    /// Live members serving it.
    pub running_on: Vec<String>,
    /// Live members on which it failed to build.
    pub failed_on: Vec<String>,
}

/// One live member as `gslb versions --json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct MemberRow {
    /// Its name.
    pub name: String,
    /// The version it serves (`None`: none, or it reads its own file).
    pub version: Option<u64>,
    /// Since when (Unix seconds).
    pub since_unix: Option<f64>,
    /// Whether it follows the published versions (`config = "etcd"`).
    pub follows_versions: bool,
    /// Versions published after the one it serves.
    pub behind: Option<u64>,
    /// More than one version behind for over a minute.
    pub lagging: bool,
    /// The newest version that failed to build on it, with the errors.
    pub failed: Option<crate::cluster::FailedVersion>,
    /// Its local files that differ from the published ones.
    pub local_files: Vec<String>,
}

/// The whole `gslb versions --json` document.
#[derive(Debug, Clone, Serialize)]
pub struct VersionsReport {
    /// The newest version.
    pub newest: Option<u64>,
    /// Kept versions, newest first.
    pub versions: Vec<VersionRow>,
    /// Live members.
    pub members: Vec<MemberRow>,
}

/// Puts the versions and the members' records together.
pub fn versions_report(
    versions: &[VersionMeta],
    newest: Option<u64>,
    members: &[MemberRecord],
    now_ms: u64,
) -> VersionsReport {
    let metas = versions.iter().map(|m| (m.version, m.clone())).collect();
    let on = |version: u64, failed: bool| -> Vec<String> {
        members
            .iter()
            .filter(|m| {
                m.config.as_ref().is_some_and(|c| {
                    if failed {
                        c.failed.as_ref().is_some_and(|f| f.version == version)
                    } else {
                        c.version == Some(version)
                    }
                })
            })
            .map(|m| m.name.clone())
            .collect()
    };
    VersionsReport {
        newest,
        versions: versions
            .iter()
            .rev()
            .map(|m| VersionRow {
                version: m.version,
                published_unix: m.published_ms as f64 / 1000.0,
                by: m.by.clone(),
                message: m.message.clone(),
                digest: m.digest.clone(),
                bytes: m.bytes,
                rollback_of: m.rollback_of,
                running_on: on(m.version, false),
                failed_on: on(m.version, true),
            })
            .collect(),
        members: members
            .iter()
            .map(|m| {
                let config = m.config.as_ref();
                let lag = config.map(|c| lag(c.version, newest, &metas, now_ms));
                MemberRow {
                    name: m.name.clone(),
                    version: config.and_then(|c| c.version),
                    since_unix: config.map(|c| c.since_ms as f64 / 1000.0),
                    follows_versions: config.is_some(),
                    behind: lag.map(|l| l.behind),
                    lagging: lag.is_some_and(|l| l.lagging),
                    failed: config.and_then(|c| c.failed.clone()),
                    local_files: config.map(|c| c.local_files.clone()).unwrap_or_default(),
                }
            })
            .collect(),
    }
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) of Unix seconds.
pub fn format_utc(unix: f64) -> String {
    let stamp = crate::dnssec::keys::format_timestamp(unix as i64);
    let part = |range: std::ops::Range<usize>| stamp.get(range).unwrap_or("");
    format!(
        "{}-{}-{} {}:{}:{}",
        part(0..4),
        part(4..6),
        part(6..8),
        part(8..10),
        part(10..12),
        part(12..14)
    )
}

/// The text of `gslb versions`: one line per version, starting with its
/// number, then one line per member that is behind or failing.
pub fn render_versions(report: &VersionsReport) -> String {
    let mut out = String::new();
    for row in &report.versions {
        let mut line = format!(
            "{}  {} UTC  {}  {}",
            row.version,
            format_utc(row.published_unix),
            row.by,
            short(&row.digest)
        );
        if !row.running_on.is_empty() {
            line.push_str(&format!("  running on {}", row.running_on.join(",")));
        }
        if !row.failed_on.is_empty() {
            line.push_str(&format!("  FAILED on {}", row.failed_on.join(",")));
        }
        if let Some(of) = row.rollback_of {
            line.push_str(&format!("  (rollback to {of})"));
        }
        if !row.message.is_empty() {
            line.push_str(&format!("  {}", row.message));
        }
        out.push_str(&line);
        out.push('\n');
    }
    for member in &report.members {
        if !member.follows_versions {
            out.push_str(&format!(
                "# member {}: reads its configuration from its own file\n",
                member.name
            ));
            continue;
        }
        let behind = member.behind.unwrap_or(0);
        if behind > 0 || member.failed.is_some() || !member.local_files.is_empty() {
            let version = member
                .version
                .map_or("no version".to_string(), |v| format!("version {v}"));
            let mut line = format!("# member {}: {version}, {behind} behind", member.name);
            if member.lagging {
                line.push_str(" (LAGGING: more than one behind for over a minute)");
            }
            if let Some(failed) = &member.failed {
                line.push_str(&format!(
                    "; version {} failed: {}",
                    failed.version,
                    failed.errors.join("; ")
                ));
            }
            for file in &member.local_files {
                line.push_str(&format!("; {file}"));
            }
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

/// The text of `gslb diff A B`: the TOML's lines, then each bundled file's
/// (added, removed or changed), then the local files' digests.
pub fn render_diff(a: (&VersionMeta, &Bundle), b: (&VersionMeta, &Bundle)) -> String {
    let ((ma, ba), (mb, bb)) = (a, b);
    let mut out = format!(
        "version {} ({} UTC, {}) -> version {} ({} UTC, {})\n",
        ma.version,
        format_utc(ma.published_ms as f64 / 1000.0),
        ma.by,
        mb.version,
        format_utc(mb.published_ms as f64 / 1000.0),
        mb.by
    );
    let mut changed = false;
    let label = |meta: &VersionMeta, path: &str| format!("{}/{path}", meta.version);
    let toml = unified(
        &label(ma, &ba.name),
        &label(mb, &bb.name),
        &ba.config,
        &bb.config,
    );
    if !toml.is_empty() {
        changed = true;
        out.push_str(&toml);
    }
    let mut paths: Vec<&str> = ba
        .files
        .iter()
        .chain(&bb.files)
        .map(|f| f.path.as_str())
        .collect();
    paths.sort_unstable();
    paths.dedup();
    for path in paths {
        let old = ba.files.iter().find(|f| f.path == path);
        let new = bb.files.iter().find(|f| f.path == path);
        let kind = old.or(new).map_or("file", |f| f.kind.as_str());
        let diff = unified(
            &label(ma, path),
            &label(mb, path),
            old.map_or("", |f| f.text.as_str()),
            new.map_or("", |f| f.text.as_str()),
        );
        if diff.is_empty() {
            continue;
        }
        changed = true;
        match (old, new) {
            (None, Some(_)) => out.push_str(&format!("{kind} {path}: added\n")),
            (Some(_), None) => out.push_str(&format!("{kind} {path}: removed\n")),
            _ => out.push_str(&format!("{kind} {path}:\n")),
        }
        out.push_str(&diff);
    }
    let mut locals: Vec<&str> = ba
        .local_files
        .iter()
        .chain(&bb.local_files)
        .map(|f| f.path.as_str())
        .collect();
    locals.sort_unstable();
    locals.dedup();
    for path in locals {
        let old = ba.local_files.iter().find(|f| f.path == path);
        let new = bb.local_files.iter().find(|f| f.path == path);
        let kind = old.or(new).map_or("file", |f| f.kind.as_str());
        let text = match (old, new) {
            (Some(o), Some(n)) if o.sha256 == n.sha256 => continue,
            (Some(o), Some(n)) => format!(
                "sha256 {} -> {} (each host keeps its own copy)",
                short(&o.sha256),
                short(&n.sha256)
            ),
            (None, Some(n)) => format!("added (sha256 {})", short(&n.sha256)),
            (Some(o), None) => format!("no longer used (was sha256 {})", short(&o.sha256)),
            (None, None) => continue,
        };
        changed = true;
        out.push_str(&format!("{kind} {path}: {text}\n"));
    }
    if !changed {
        out.push_str("no differences\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::bundle::{BundledFile, FileKind, LocalFile};

    fn meta(version: u64) -> VersionMeta {
        VersionMeta {
            version,
            published_ms: 1_700_000_000_000,
            by: "ops@host".into(),
            message: String::new(),
            digest: format!("{version:064}"),
            bytes: 1,
            rollback_of: None,
        }
    }

    fn bundle(ttl: u32, zone: &str, db: &str) -> Bundle {
        Bundle {
            format: 1,
            name: "gslb.toml".into(),
            config: format!("[services.\"www.a.test\"]\nttl = {ttl}\n"),
            files: vec![BundledFile {
                path: "zones/a.zone".into(),
                kind: FileKind::Zone,
                text: zone.into(),
            }],
            local_files: vec![LocalFile {
                path: "city.mmdb".into(),
                kind: FileKind::Geoip,
                sha256: db.into(),
            }],
        }
    }

    #[test]
    fn diff_shows_toml_zone_and_database_changes() {
        let (a, b) = (meta(1), meta(2));
        let text = render_diff(
            (&a, &bundle(30, "www 300 IN A 192.0.2.1\n", "aaaa")),
            (&b, &bundle(60, "www 300 IN A 192.0.2.2\n", "bbbb")),
        );
        assert!(
            text.starts_with("version 1 (2023-11-14 22:13:20 UTC, ops@host) -> version 2"),
            "{text}"
        );
        assert!(text.contains("-ttl = 30\n+ttl = 60\n"), "{text}");
        assert!(text.contains("zone file zones/a.zone:\n"), "{text}");
        assert!(
            text.contains("-www 300 IN A 192.0.2.1\n+www 300 IN A 192.0.2.2\n"),
            "{text}"
        );
        assert!(
            text.contains("GeoIP database city.mmdb: sha256 aaaa -> bbbb"),
            "{text}"
        );
        let same = render_diff((&a, &bundle(30, "x\n", "a")), (&b, &bundle(30, "x\n", "a")));
        assert!(same.ends_with("no differences\n"), "{same}");
    }
}

//! The operator's TOML configuration: its raw model and the loader that turns
//! a file into it with `file:line:col` errors.
//!
//! This module only reads and checks what was written; resolving names
//! (zones, pools, databases) into something that answers queries is
//! `snapshot`'s job.

mod check;
mod model;

use std::fmt;
use std::ops::{Range, RangeInclusive};
use std::path::{Path, PathBuf};

use toml::Spanned;

pub use check::*;
pub use model::*;

/// A configuration problem, located in its file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The file at fault.
    pub file: PathBuf,
    /// 1-based line and column, when known.
    pub position: Option<(usize, usize)>,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some((line, col)) => {
                write!(f, "{}:{line}:{col}: {}", self.file.display(), self.message)
            }
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

/// A parsed configuration file, with what is needed to locate later errors.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// Path the configuration was read from.
    pub path: PathBuf,
    /// The file's text (for turning spans into lines).
    pub text: String,
    /// The parsed model.
    pub config: ConfigToml,
}

impl LoadedConfig {
    /// Resolves a path written in the config relative to the config's directory.
    pub fn resolve_path(&self, written: &Path) -> PathBuf {
        if written.is_absolute() {
            written.to_path_buf()
        } else {
            self.path.parent().unwrap_or(Path::new(".")).join(written)
        }
    }

    /// An error located at a span of the config text.
    pub fn error_at(&self, span: Range<usize>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.path.clone(),
            position: Some(line_col(&self.text, span.start)),
            message: message.into(),
        }
    }

    /// The setting's value when it lies in `range`; otherwise the error at
    /// the setting, worded by `message` from the value. Every numeric range
    /// check of a build goes through here.
    ///
    /// # Errors
    /// The value is outside `range`.
    pub fn in_range<T: PartialOrd + Copy>(
        &self,
        value: &Spanned<T>,
        range: RangeInclusive<T>,
        message: impl FnOnce(T) -> String,
    ) -> Result<T, ConfigError> {
        let v = *value.get_ref();
        if range.contains(&v) {
            Ok(v)
        } else {
            Err(self.error_at(value.span(), message(v)))
        }
    }

    /// The 1-based line of a span's start.
    pub fn line_of(&self, span: &Range<usize>) -> usize {
        line_col(&self.text, span.start).0
    }

    /// An error about the file as a whole.
    pub fn error(&self, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.path.clone(),
            position: None,
            message: message.into(),
        }
    }
}

/// Reads and parses a configuration file.
///
/// # Errors
/// The file cannot be read, is not valid TOML, or does not match the model
/// (unknown keys are rejected).
pub fn load_config(path: &Path) -> Result<LoadedConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|err| ConfigError {
        file: path.to_path_buf(),
        position: None,
        message: format!("cannot read configuration: {err}"),
    })?;
    parse_config(path, text)
}

/// Parses configuration text read from `path`.
///
/// # Errors
/// The text is not valid TOML or does not match the model.
pub fn parse_config(path: &Path, text: String) -> Result<LoadedConfig, ConfigError> {
    match toml::from_str::<ConfigToml>(&text) {
        Ok(config) => Ok(LoadedConfig {
            path: path.to_path_buf(),
            text,
            config,
        }),
        Err(err) => {
            let message = expected_forms(err.message().trim());
            // Type errors name the key they are about (toml's messages
            // name only the value and the type).
            let message = match err.span().and_then(|span| key_at(&text, span.start)) {
                Some(key) if !message.contains(&format!("`{key}`")) => {
                    format!("`{key}`: {message}")
                }
                _ => message,
            };
            Err(ConfigError {
                file: path.to_path_buf(),
                position: err.span().map(|span| line_col(&text, span.start)),
                message,
            })
        }
    }
}

/// The key whose value starts at `offset` (or holds it, inside an array
/// or inline table): the nearest `key =` before it, not looking past a
/// table header.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let before = text.get(..offset)?;
    let mut scope = before;
    // Not past the `[table]` header of the value's table.
    if let Some(header) = before.rfind("\n[") {
        scope = &before[header..];
    }
    let equals = scope.rfind('=')?;
    let key = scope[..equals]
        .trim_end()
        .rsplit(|c: char| c.is_whitespace() || matches!(c, '{' | ',' | '[' | '\n'))
        .next()?
        .trim_matches('"');
    (!key.is_empty() && !key.contains(']')).then(|| key.to_string())
}

/// toml's `expected u32` and the like, in the words of the README.
fn expected_forms(message: &str) -> String {
    const FORMS: [(&str, &str); 9] = [
        ("expected u8", "expected a whole number 0..=255"),
        ("expected u16", "expected a whole number 0..=65535"),
        ("expected u32", "expected a whole number 0..=4294967295"),
        ("expected u64", "expected a whole number"),
        ("expected usize", "expected a whole number"),
        ("expected i8", "expected a whole number -128..=127"),
        ("expected i64", "expected a whole number"),
        ("expected f64", "expected a number"),
        ("expected a boolean", "expected true or false"),
    ];
    // std's address parse errors say what is wrong, not what is expected.
    const ADDRESSES: [(&str, &str); 2] = [
        (
            "invalid socket address syntax",
            "expected an IP address and port like \"127.0.0.1:9300\" or \"[::1]:9300\" (names are not resolved)",
        ),
        (
            "invalid IP address syntax",
            "expected an IP address like \"192.0.2.1\" or \"2001:db8::1\"",
        ),
    ];
    for (toml_form, form) in FORMS {
        if let Some(start) = message.strip_suffix(toml_form) {
            return format!("{start}{form}");
        }
    }
    for (what, form) in ADDRESSES {
        if message.ends_with(what) {
            return format!("{message}: {form}");
        }
    }
    message.to_string()
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_key_is_located() {
        let err = parse_config(
            Path::new("g.toml"),
            "[server]\nlisten = []\nlisen = 1\n".into(),
        )
        .unwrap_err();
        assert!(err.to_string().starts_with("g.toml:3:1: "), "{err}");
        assert!(err.message.contains("lisen"), "{err}");
    }

    /// Issue 18: type errors name the key and the form it takes.
    #[test]
    fn type_errors_name_the_key_and_the_expected_form() {
        let cases = [
            (
                "[services.\"www.example.test\"]\npolicy = \"geo\"\nttl = \"fast\"\n",
                "g.toml:3:7: `ttl`: ",
                "\"30s\"",
            ),
            (
                "[server]\ntcp_idle_timeout = true\n",
                "g.toml:2:20: `tcp_idle_timeout`: ",
                "\"1h30m\"",
            ),
            (
                "[server]\ntcp_max_queries = \"many\"\n",
                "g.toml:2:19: `tcp_max_queries`: ",
                "expected a whole number",
            ),
            (
                "[pools.eu]\nendpoints = [{ address = \"192.0.2.1\", weight = \"x\" }]\n",
                "g.toml:2:",
                "`weight`: ",
            ),
            (
                "[services.\"w.example.test\"]\npolicy = \"geo\"\nttl = \"1.5s\"\n",
                "g.toml:3:7: `ttl`: ",
                "whole number of seconds",
            ),
            (
                "[server]\napi = \"localhost:9300\"\n",
                "g.toml:2:7: `api`: ",
                "expected an IP address and port like \"127.0.0.1:9300\"",
            ),
            (
                "[pools.eu]\nendpoints = [{ address = \"192.0.2.300\" }]\n",
                "g.toml:2:",
                "expected an IP address like \"192.0.2.1\"",
            ),
        ];
        for (text, prefix, form) in cases {
            let err = parse_config(Path::new("g.toml"), text.into()).unwrap_err();
            let shown = err.to_string();
            assert!(shown.starts_with(prefix), "{shown}");
            assert!(shown.contains(form), "{shown}");
        }
    }

    /// Issue 18: every duration-like key takes duration text as well as
    /// seconds.
    #[test]
    fn duration_keys_take_duration_text() {
        let text = "[server]\ntcp_idle_timeout = \"1m\"\n\
                    [services.\"a.example.test\"]\npolicy = \"geo\"\nttl = \"30s\"\nfailover_ttl = \"5s\"\n\
                    [services.\"b.example.test\"]\npolicy = \"geo\"\nttl = \"1d\"\n\
                    [services.\"c.example.test\"]\npolicy = \"geo\"\nttl = 45\n";
        let loaded = parse_config(Path::new("g.toml"), text.into()).unwrap();
        let config = &loaded.config;
        assert_eq!(config.server.tcp_idle_timeout, Seconds(60));
        let service = |name: &str| config.services[name].get_ref();
        assert_eq!(service("a.example.test").ttl, Seconds(30));
        assert_eq!(service("a.example.test").failover_ttl, Some(Seconds(5)));
        assert_eq!(service("b.example.test").ttl, Seconds(86_400));
        assert_eq!(service("c.example.test").ttl, Seconds(45));
    }

    #[test]
    fn line_col_counts_from_one() {
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
        assert_eq!(line_col("", 0), (1, 1));
    }
}

//! The operator's TOML configuration: its raw model and the loader that turns
//! a file into it with `file:line:col` errors.
//!
//! This module only reads and checks what was written; resolving names
//! (zones, pools, databases) into something that answers queries is
//! `snapshot`'s job.

mod check;
mod model;

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

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
        Err(err) => Err(ConfigError {
            file: path.to_path_buf(),
            position: err.span().map(|span| line_col(&text, span.start)),
            message: err.message().trim().to_string(),
        }),
    }
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

    #[test]
    fn line_col_counts_from_one() {
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
        assert_eq!(line_col("", 0), (1, 1));
    }
}

//! The admin API token file: when no `api_token` is configured (and
//! `api_require_token` is not turned off), `serve` creates a random token
//! in `[server] state_dir`, readable only by its user, and the command-line
//! clients (`gslb reload`, …) read it from there.
//!
//! Owns only that file: its path, its creation (atomic, mode 0600 in a
//! 0700 directory) and reading it back. Never logs the token.

use std::io::{Read as _, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use crate::config::ServerToml;
use crate::transfer::StateDir;

/// The token file's name inside `state_dir`.
pub const TOKEN_FILE: &str = "api-token";
/// Random bytes in a generated token (written as hex).
const TOKEN_BYTES: usize = 32;

/// Why the token file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    /// Creating or reading the file or its directory failed.
    #[error(
        "{path}: {source} (set [server] state_dir to a directory this user can write, set api_token, or api_require_token = false)"
    )]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// Other users may read the file: it is not used.
    #[error("{path}: readable by other users (mode {mode:o}); fix with: chmod 600 {path}")]
    TooOpen {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file holds no token.
    #[error("{path}: empty token file; delete it and restart gslb serve to make a new one")]
    Empty {
        /// The file.
        path: PathBuf,
    },
}

/// Where the token file of the configuration at `config_path` lives: in its
/// `state_dir` (relative to the config file's directory), or in the default
/// `state/` when the configuration cannot be read.
pub fn token_path(config_path: &Path, server: Option<&ServerToml>) -> PathBuf {
    let configured = server.and_then(|s| s.state_dir.as_deref());
    StateDir::for_config(config_path, configured)
        .0
        .join(TOKEN_FILE)
}

/// Reads the token at `path`, creating the file (and its directory) with a
/// new random token when there is none. Returns the token and whether it
/// was created now.
///
/// # Errors
/// The directory or file cannot be made or read, the file is readable by
/// other users, or it is empty.
pub fn load_or_create(path: &Path) -> Result<(String, bool), TokenFileError> {
    let io = |at: &Path| {
        let at = at.to_path_buf();
        move |source| TokenFileError::Io { path: at, source }
    };
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io(dir))?;
    }
    if path.exists() {
        return read(path).map(|token| (token, false));
    }
    // Written under a private name, then linked into place: a concurrent
    // `serve` either links first (and we read its token) or finds ours
    // complete; nobody reads a half-written file.
    let token = random_token().map_err(io(Path::new("/dev/urandom")))?;
    let temp = path.with_extension(format!("tmp.{}", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp)
        .and_then(|mut file| file.write_all(format!("{token}\n").as_bytes()));
    if let Err(source) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(TokenFileError::Io { path: temp, source });
    }
    let linked = std::fs::hard_link(&temp, path);
    let _ = std::fs::remove_file(&temp);
    match linked {
        Ok(()) => Ok((token, true)),
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
            read(path).map(|token| (token, false))
        }
        Err(source) => Err(TokenFileError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Reads the token at `path`.
///
/// # Errors
/// The file cannot be read, is readable by other users, or is empty.
pub fn read(path: &Path) -> Result<String, TokenFileError> {
    let io = |source| TokenFileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mode = file.metadata().map_err(io)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(TokenFileError::TooOpen {
            path: path.to_path_buf(),
            mode,
        });
    }
    let mut text = String::new();
    file.take(4096).read_to_string(&mut text).map_err(io)?;
    let token = text.trim();
    if token.is_empty() {
        return Err(TokenFileError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(token.to_string())
}

/// A new token: [`TOKEN_BYTES`] bytes of the kernel's randomness, in hex.
fn random_token() -> std::io::Result<String> {
    let mut bytes = [0u8; TOKEN_BYTES];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_file_is_private_and_reused() {
        let dir = std::env::temp_dir().join(format!("gslb-token-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("state").join(TOKEN_FILE);
        let (token, created) = load_or_create(&path).unwrap();
        assert!(created);
        assert_eq!(token.len(), TOKEN_BYTES * 2);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = std::fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dir_mode, 0o700);
        assert_eq!(load_or_create(&path).unwrap(), (token.clone(), false));
        assert_eq!(read(&path).unwrap(), token);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(read(&path), Err(TokenFileError::TooOpen { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn token_path_follows_state_dir() {
        let config = Path::new("/etc/gslb/gslb.toml");
        assert_eq!(
            token_path(config, None),
            Path::new("/etc/gslb/state/api-token")
        );
        let server = ServerToml {
            state_dir: Some(PathBuf::from("/var/lib/gslb")),
            ..ServerToml::default()
        };
        assert_eq!(
            token_path(config, Some(&server)),
            Path::new("/var/lib/gslb/api-token")
        );
    }
}

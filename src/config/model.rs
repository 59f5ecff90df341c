//! The TOML model exactly as operators write it (see README "Configuration").

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

/// Default DNS listener.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:5300";
/// Default admin API listener.
pub const DEFAULT_API: &str = "127.0.0.1:9300";
/// Default EDNS UDP payload we offer (the 2020 DNS flag day value).
pub const DEFAULT_MAX_UDP_PAYLOAD: u16 = 1232;

/// The whole configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigToml {
    /// Listeners and protocol limits.
    #[serde(default)]
    pub server: ServerToml,
    /// Zones served from zone files.
    #[serde(default, rename = "zone")]
    pub zones: Vec<ZoneToml>,
}

/// `[server]`: sockets and protocol limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerToml {
    /// DNS listeners; each serves UDP and TCP.
    #[serde(default = "default_listen")]
    pub listen: Vec<Spanned<SocketAddr>>,
    /// Admin API listener.
    #[serde(default = "default_api")]
    pub api: SocketAddr,
    /// Largest UDP reply we send to EDNS clients (512..=4096).
    #[serde(default = "default_max_udp_payload")]
    pub max_udp_payload: Spanned<u16>,
    /// UDP worker sockets per listener (SO_REUSEPORT); 0 = one per core.
    #[serde(default)]
    pub udp_workers: usize,
}

impl Default for ServerToml {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            api: default_api(),
            max_udp_payload: Spanned::new(0..0, DEFAULT_MAX_UDP_PAYLOAD),
            udp_workers: 0,
        }
    }
}

fn default_listen() -> Vec<Spanned<SocketAddr>> {
    // The constant is a valid socket address literal.
    vec![Spanned::new(
        0..0,
        DEFAULT_LISTEN
            .parse()
            .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 5300))),
    )]
}

fn default_api() -> SocketAddr {
    DEFAULT_API
        .parse()
        .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 9300)))
}

fn default_max_udp_payload() -> Spanned<u16> {
    Spanned::new(0..0, DEFAULT_MAX_UDP_PAYLOAD)
}

/// `[[zone]]`: one zone served from an RFC 1035 file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneToml {
    /// The zone's origin, e.g. `example.test`.
    pub origin: Spanned<String>,
    /// The zone file, relative to this config file's directory.
    pub file: Spanned<PathBuf>,
}

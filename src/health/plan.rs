//! The probe plan: which endpoint is probed with which check at which
//! address. Built with the snapshot; the monitor diffs plans on reload.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use toml::Spanned;

use super::{CheckSet, CheckSpec, EndpointHealth};
use crate::config::{CheckKind, ConfigError, EndpointToml, LoadedConfig};

/// Process-wide probing settings from `[health]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthSettings {
    /// Bind DNS listeners only after every prober reported once.
    pub wait_for_first_round: bool,
    /// Probes in flight at once.
    pub max_concurrent_probes: usize,
}

impl Default for HealthSettings {
    fn default() -> Self {
        Self {
            wait_for_first_round: false,
            max_concurrent_probes: crate::config::DEFAULT_MAX_CONCURRENT_PROBES,
        }
    }
}

/// Where one endpoint is probed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ProbeTarget {
    /// Connect to this address.
    Tcp(SocketAddr),
    /// Request this URL; `pin` resolves the URL's host name to an address
    /// (the check's `host` as Host header and TLS name, on the endpoint's IP).
    Http {
        /// Full URL.
        url: String,
        /// Host name pinned to an address.
        pin: Option<(String, SocketAddr)>,
    },
}

impl fmt::Display for ProbeTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProbeTarget::Tcp(addr) => write!(f, "tcp://{addr}"),
            ProbeTarget::Http { url, pin: None } => f.write_str(url),
            ProbeTarget::Http {
                url,
                pin: Some((_, addr)),
            } => write!(f, "{url} via {addr}"),
        }
    }
}

/// A check applied to a target.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    /// The check.
    pub check: Arc<CheckSpec>,
    /// Where it probes.
    pub target: ProbeTarget,
    /// The local address probes are sent from (`[cluster] probe_source`).
    pub source: Option<IpAddr>,
}

/// One endpoint as the health monitor sees it.
#[derive(Debug, Clone)]
pub struct PlannedEndpoint {
    /// Endpoint identity (`pool/target`), the health table's key.
    pub key: String,
    /// Its health record in the table (its id is the snapshot endpoint's).
    pub health: Arc<EndpointHealth>,
    /// How it is probed; `None` = not probed here (always up unless
    /// overridden, or decided by other cluster members).
    pub probe: Option<Probe>,
    /// The cluster members that probe and vote on it (`check_from`);
    /// `None`: every member.
    pub check_from: Option<Arc<[String]>>,
}

/// Every endpoint of a snapshot and how it is probed.
#[derive(Debug, Clone, Default)]
pub struct ProbePlan {
    /// Endpoints in configuration order.
    pub endpoints: Vec<PlannedEndpoint>,
    /// `[health]` settings.
    pub settings: HealthSettings,
}

impl ProbePlan {
    /// How long `serve` waits for the first round: twice the longest
    /// timeout plus a second.
    pub fn first_round_limit(&self) -> Duration {
        let longest = self
            .endpoints
            .iter()
            .filter_map(|e| e.probe.as_ref().map(|p| p.check.timeout))
            .max()
            .unwrap_or_default();
        longest * 2 + Duration::from_secs(1)
    }
}

/// Checks `[health]`.
pub fn build_health_settings(
    loaded: &LoadedConfig,
    errors: &mut Vec<ConfigError>,
) -> HealthSettings {
    let health = &loaded.config.health;
    let max = loaded
        .in_range(&health.max_concurrent_probes, 1..=usize::MAX, |_| {
            "max_concurrent_probes must be at least 1".to_string()
        })
        .unwrap_or_else(|err| {
            errors.push(err);
            1
        });
    HealthSettings {
        wait_for_first_round: health.wait_for_first_round,
        max_concurrent_probes: max,
    }
}

/// The check named by a pool, if any.
///
/// # Errors
/// The name is not in `[checks]` (the message lists the known ones).
pub fn resolve_pool_check(
    loaded: &LoadedConfig,
    pool_name: &str,
    check: Option<&Spanned<String>>,
    checks: &CheckSet,
) -> Result<Option<Arc<CheckSpec>>, ConfigError> {
    let Some(check) = check else {
        return Ok(None);
    };
    match checks.specs.get(check.get_ref()) {
        Some(spec) => Ok(Some(spec.clone())),
        // Its own errors were reported.
        None if checks.invalid.contains(check.get_ref()) => Ok(None),
        None => {
            let known: Vec<&str> = loaded.config.checks.keys().map(String::as_str).collect();
            Err(loaded.error_at(
                check.span(),
                format!(
                    "unknown check {:?} in pool {pool_name} (known: {})",
                    check.get_ref(),
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            ))
        }
    }
}

/// Where `endpoint` of `pool_name` is probed by `check`.
///
/// # Errors
/// Overrides without a check, CNAME endpoints without a probe address,
/// bad `check_url`s, and `check_url` on tcp checks.
pub fn plan_probe(
    loaded: &LoadedConfig,
    pool_name: &str,
    check: Option<&Arc<CheckSpec>>,
    endpoint: &Spanned<EndpointToml>,
) -> Result<Option<Probe>, ConfigError> {
    let e = endpoint.get_ref();
    let error = |message: String| loaded.error_at(endpoint.span(), message);
    let Some(check) = check else {
        if e.check_address.is_some() || e.check_port.is_some() || e.check_url.is_some() {
            return Err(error(format!(
                "check_address, check_port and check_url need `check = \"NAME\"` on pool {pool_name}"
            )));
        }
        return Ok(None);
    };
    if e.check_url.is_some() && (e.check_address.is_some() || e.check_port.is_some()) {
        return Err(error(
            "use either check_url or check_address/check_port, not both".to_string(),
        ));
    }
    if let Some(url) = &e.check_url {
        if check.kind == CheckKind::Tcp {
            return Err(error(format!(
                "check_url is for http and https checks; check {} is tcp: use check_address and check_port",
                check.name
            )));
        }
        let parsed = reqwest::Url::parse(url)
            .map_err(|err| error(format!("bad check_url {url:?}: {err}")))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(error(format!(
                "check_url {url:?} must be an http:// or https:// URL with a host"
            )));
        }
        return Ok(Some(Probe {
            check: check.clone(),
            target: ProbeTarget::Http {
                url: parsed.to_string(),
                pin: None,
            },
            source: None,
        }));
    }
    let address: IpAddr = match (e.check_address, e.address) {
        (Some(address), _) | (None, Some(address)) => address,
        (None, None) => {
            return Err(error(format!(
                "a cname endpoint of pool {pool_name} is probed by check {}: give it check_address or check_url",
                check.name
            )));
        }
    };
    let port = e.check_port.unwrap_or(check.port);
    if port == 0 {
        return Err(error("check_port 0: use 1..=65535".to_string()));
    }
    let addr = SocketAddr::new(address, port);
    let target = match check.kind {
        CheckKind::Tcp => ProbeTarget::Tcp(addr),
        CheckKind::Http | CheckKind::Https => {
            let scheme = if check.kind == CheckKind::Https {
                "https"
            } else {
                "http"
            };
            let (authority, pin) = match &check.host {
                Some(host) => (host.clone(), Some((host.clone(), addr))),
                None => (
                    match address {
                        IpAddr::V4(v4) => v4.to_string(),
                        IpAddr::V6(v6) => format!("[{v6}]"),
                    },
                    None,
                ),
            };
            ProbeTarget::Http {
                url: format!("{scheme}://{authority}:{port}{}", check.path),
                pin,
            }
        }
    };
    Ok(Some(Probe {
        check: check.clone(),
        target,
        source: None,
    }))
}

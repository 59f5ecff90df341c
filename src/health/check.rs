//! Compiles `[checks.NAME]` tables into [`CheckSpec`]s: defaults filled in,
//! every value checked, every problem reported with its position.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use toml::Spanned;

use crate::config::{CheckKind, CheckToml, ConfigError, DurationToml, InitialState, LoadedConfig};

/// Default probe interval (gdnsd's).
const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
/// Longest default timeout (PowerDNS's is 2 s, Cloudflare's 5 s).
const MAX_DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default consecutive successes to rise.
const DEFAULT_RISE: u32 = 2;
/// Default consecutive failures to fall.
const DEFAULT_FALL: u32 = 3;
/// Default jitter, as a fraction of the interval.
const DEFAULT_JITTER: f64 = 0.1;
/// Default weight factor while degraded.
const DEFAULT_DEGRADED_WEIGHT_PERCENT: u8 = 50;
/// Largest rise/fall accepted.
const MAX_THRESHOLD: u32 = 100;

/// A checked health check definition.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckSpec {
    /// Name in `[checks]`.
    pub name: String,
    /// Probe protocol.
    pub kind: CheckKind,
    /// Time between probe starts.
    pub interval: Duration,
    /// Bound on one probe.
    pub timeout: Duration,
    /// Consecutive successes to become up.
    pub rise: u32,
    /// Consecutive failures to become down.
    pub fall: u32,
    /// HTTP method, upper case.
    pub method: String,
    /// HTTP path, starting with `/`.
    pub path: String,
    /// Port probed (unless an endpoint overrides it).
    pub port: u16,
    /// Host header and TLS server name.
    pub host: Option<String>,
    /// Inclusive status ranges counted as success.
    pub expect_status: Vec<(u16, u16)>,
    /// Substring the body must contain.
    pub body_contains: Option<String>,
    /// Verify the server certificate (https).
    pub tls_verify: bool,
    /// State of a new endpoint before the first verdict.
    pub initial_up: bool,
    /// Random offset per probe, as a fraction of the interval.
    pub jitter: f64,
    /// JSON health body rules.
    pub json: Option<JsonSpec>,
}

impl CheckSpec {
    /// Whether a status code counts as success.
    pub fn status_ok(&self, status: u16) -> bool {
        self.expect_status
            .iter()
            .any(|&(low, high)| (low..=high).contains(&status))
    }

    /// Whether the probe reads the response body.
    pub fn reads_body(&self) -> bool {
        self.body_contains.is_some() || self.json.is_some()
    }
}

/// Rules for a JSON health body.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonSpec {
    /// Dotted path of the status field.
    pub status_field: String,
    /// Weight factor while degraded, in percent.
    pub degraded_weight_percent: u8,
    /// Figure paths and thresholds that fail the probe.
    pub down_when: Vec<(String, f64)>,
    /// Figure paths and thresholds that reduce the weight.
    pub reduce_when: Vec<(String, f64)>,
    /// Figure paths whose value scales the weight down linearly.
    pub reduce: Vec<(String, LinearReduce)>,
}

/// A load figure's linear weight reduction: full weight up to `start`,
/// zero from `limit` on, a straight line between.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinearReduce {
    /// Value up to which the weight is full.
    pub start: f64,
    /// Value from which the weight is zero (above `start`).
    pub limit: f64,
}

impl LinearReduce {
    /// The weight factor in percent for `value` (100 at or below `start`,
    /// 0 at or above `limit`, linear between, rounded to the nearest).
    pub fn weight_percent(&self, value: f64) -> u8 {
        if value.is_nan() || value <= self.start {
            return 100;
        }
        if value >= self.limit {
            return 0;
        }
        let left = (self.limit - value) / (self.limit - self.start);
        // In 0..1 here, so the product fits a u8.
        (left * 100.0).round().clamp(0.0, 100.0) as u8
    }
}

/// The compiled checks, plus the names of those that had errors (so pools
/// naming them are not reported a second time as naming an unknown check).
#[derive(Debug, Clone, Default)]
pub struct CheckSet {
    /// Valid checks by name.
    pub specs: BTreeMap<String, Arc<CheckSpec>>,
    /// Names of checks with errors.
    pub invalid: BTreeSet<String>,
}

/// Compiles every `[checks.NAME]` of the configuration.
pub fn build_checks(loaded: &LoadedConfig, errors: &mut Vec<ConfigError>) -> CheckSet {
    let mut set = CheckSet::default();
    for (name, check) in &loaded.config.checks {
        match build_check(loaded, name, check, errors) {
            Some(spec) => {
                set.specs.insert(name.clone(), Arc::new(spec));
            }
            None => {
                set.invalid.insert(name.clone());
            }
        }
    }
    set
}

fn build_check(
    loaded: &LoadedConfig,
    name: &str,
    check: &Spanned<CheckToml>,
    errors: &mut Vec<ConfigError>,
) -> Option<CheckSpec> {
    let before = errors.len();
    let c = check.get_ref();
    let kind = *c.kind.get_ref();
    let mut push = |span: std::ops::Range<usize>, message: String| {
        errors.push(loaded.error_at(span, message));
    };
    let duration = |d: &Spanned<DurationToml>, what: &str, push: &mut dyn FnMut(_, _)| match d
        .get_ref()
        .to_duration()
    {
        Ok(value) if value.is_zero() => {
            push(
                d.span(),
                format!("{what} of check {name} must be above zero"),
            );
            None
        }
        Ok(value) => Some(value),
        Err(message) => {
            push(d.span(), format!("{what} of check {name}: {message}"));
            None
        }
    };
    let interval = match &c.interval {
        Some(d) => duration(d, "interval", &mut push).unwrap_or(DEFAULT_INTERVAL),
        None => DEFAULT_INTERVAL,
    };
    let timeout = match &c.timeout {
        Some(d) => {
            let timeout = duration(d, "timeout", &mut push).unwrap_or(interval);
            if timeout > interval {
                push(
                    d.span(),
                    format!(
                        "timeout {timeout:?} of check {name} is longer than its interval {interval:?}"
                    ),
                );
            }
            timeout
        }
        None => (interval / 2).min(MAX_DEFAULT_TIMEOUT),
    };
    let mut threshold = |t: &Option<Spanned<u32>>, what: &str, default: u32| match t {
        Some(t) => loaded
            .in_range(t, 1..=MAX_THRESHOLD, |v| {
                format!("{what} = {v} in check {name} is out of range 1..={MAX_THRESHOLD}")
            })
            .unwrap_or_else(|err| {
                push(t.span(), err.message);
                default
            }),
        None => default,
    };
    let rise = threshold(&c.rise, "rise", DEFAULT_RISE);
    let fall = threshold(&c.fall, "fall", DEFAULT_FALL);

    // Options that only mean something for HTTP(S): reject them on tcp checks
    // rather than silently ignoring a probe the operator thinks is running.
    if kind == CheckKind::Tcp {
        let http_only: [(&str, Option<std::ops::Range<usize>>); 7] = [
            ("method", c.method.as_ref().map(Spanned::span)),
            ("path", c.path.as_ref().map(Spanned::span)),
            ("host", c.host.as_ref().map(Spanned::span)),
            ("expect_status", c.expect_status.as_ref().map(Spanned::span)),
            ("body_contains", c.body_contains.as_ref().map(Spanned::span)),
            ("tls_verify", c.tls_verify.as_ref().map(Spanned::span)),
            ("json", c.json.as_ref().map(Spanned::span)),
        ];
        for (option, span) in http_only {
            if let Some(span) = span {
                push(
                    span,
                    format!(
                        "`{option}` is not used by tcp check {name}: use kind = \"http\" or \"https\""
                    ),
                );
            }
        }
    }
    if kind == CheckKind::Http
        && let Some(v) = &c.tls_verify
    {
        push(
            v.span(),
            format!("`tls_verify` is only used by https checks (check {name} is http)"),
        );
    }
    let port = match (&c.port, kind) {
        (Some(p), _) if *p.get_ref() == 0 => {
            push(p.span(), format!("port 0 in check {name}: use 1..=65535"));
            0
        }
        (Some(p), _) => *p.get_ref(),
        (None, CheckKind::Http) => 80,
        (None, CheckKind::Https) => 443,
        (None, CheckKind::Tcp) => {
            push(c.kind.span(), format!("tcp check {name} needs a `port`"));
            0
        }
    };
    let method = match &c.method {
        Some(m) => {
            let upper = m.get_ref().to_ascii_uppercase();
            if reqwest::Method::from_bytes(upper.as_bytes()).is_err() || upper.is_empty() {
                push(
                    m.span(),
                    format!("bad HTTP method {:?} in check {name}", m.get_ref()),
                );
            }
            upper
        }
        None => "GET".to_string(),
    };
    let path = match &c.path {
        Some(p) if !p.get_ref().starts_with('/') || p.get_ref().contains(char::is_whitespace) => {
            push(
                p.span(),
                format!(
                    "path {:?} of check {name} must start with / and contain no spaces",
                    p.get_ref()
                ),
            );
            "/".to_string()
        }
        Some(p) => p.get_ref().clone(),
        None => "/".to_string(),
    };
    let host = match &c.host {
        Some(h) => {
            let text = h.get_ref().trim_end_matches('.').to_ascii_lowercase();
            let valid = !text.is_empty()
                && text.parse::<std::net::IpAddr>().is_err()
                && text.split('.').all(|l| {
                    !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                });
            if !valid {
                push(
                    h.span(),
                    format!(
                        "host {:?} of check {name} must be a host name such as www.example.test (no port, no scheme, not an address)",
                        h.get_ref()
                    ),
                );
            }
            Some(text)
        }
        None => None,
    };
    let expect_status = match &c.expect_status {
        Some(list) => {
            let mut ranges = Vec::new();
            for status in list.get_ref() {
                match status.to_range() {
                    Ok(range) => ranges.push(range),
                    Err(message) => push(
                        list.span(),
                        format!("expect_status of check {name}: {message}"),
                    ),
                }
            }
            if list.get_ref().is_empty() {
                push(
                    list.span(),
                    format!("expect_status of check {name} is empty: list at least one code"),
                );
            }
            ranges
        }
        None => vec![(200, 399)],
    };
    let jitter = match &c.jitter {
        Some(j) => loaded
            .in_range(j, 0.0..=0.5, |v| {
                format!("jitter {v} of check {name} must be in 0..=0.5")
            })
            .unwrap_or_else(|err| {
                push(j.span(), err.message);
                DEFAULT_JITTER
            }),
        None => DEFAULT_JITTER,
    };
    let json = c.json.as_ref().map(|json| {
        let j = json.get_ref();
        let degraded_weight_percent = match &j.degraded_weight_percent {
            Some(p) => loaded
                .in_range(p, 0..=100, |v| {
                    format!("degraded_weight_percent {v} of check {name} must be 0..=100")
                })
                .unwrap_or_else(|err| {
                    push(p.span(), err.message);
                    DEFAULT_DEGRADED_WEIGHT_PERCENT
                }),
            None => DEFAULT_DEGRADED_WEIGHT_PERCENT,
        };
        let mut reduce = Vec::new();
        for (figure, range) in &j.reduce {
            match range.get_ref()[..] {
                [start, limit] if start.is_finite() && limit.is_finite() && start < limit => {
                    reduce.push((figure.clone(), LinearReduce { start, limit }));
                }
                [start, limit] => push(
                    range.span(),
                    format!(
                        "reduce.{figure} = [{start}, {limit}] in check {name}: the start must be a number below the limit"
                    ),
                ),
                _ => push(
                    range.span(),
                    format!(
                        "reduce.{figure} in check {name} must be [start, limit], e.g. [500.0, 1000.0] (full weight at start, zero at limit)"
                    ),
                ),
            }
        }
        JsonSpec {
            status_field: j.status_field.clone(),
            degraded_weight_percent,
            down_when: j.down_when.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            reduce_when: j.reduce_when.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            reduce,
        }
    });
    if errors.len() != before {
        return None;
    }
    Some(CheckSpec {
        name: name.to_string(),
        kind,
        interval,
        timeout,
        rise,
        fall,
        method,
        path,
        port,
        host,
        expect_status,
        body_contains: c.body_contains.as_ref().map(|b| b.get_ref().clone()),
        tls_verify: c.tls_verify.as_ref().is_none_or(|v| *v.get_ref()),
        initial_up: c.initial == InitialState::Up,
        jitter,
        json,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_config;
    use std::path::Path;

    fn build(text: &str) -> (CheckSet, Vec<String>) {
        let loaded = parse_config(Path::new("g.toml"), text.to_string()).unwrap();
        let mut errors = Vec::new();
        let set = build_checks(&loaded, &mut errors);
        (set, errors.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn defaults_are_filled_in() {
        let (set, errors) = build("[checks.web]\nkind = \"http\"\n");
        assert!(errors.is_empty(), "{errors:?}");
        let web = &set.specs["web"];
        assert_eq!(web.port, 80);
        assert_eq!(web.interval, Duration::from_secs(10));
        assert_eq!(web.timeout, Duration::from_secs(5));
        assert_eq!((web.rise, web.fall), (2, 3));
        assert!(web.status_ok(204) && web.status_ok(302) && !web.status_ok(404));
        assert!(web.initial_up && web.tls_verify);
    }

    #[test]
    fn every_error_is_reported_with_its_line() {
        let text = "[checks.bad]\nkind = \"tcp\"\ninterval = \"1x\"\npath = \"/h\"\nrise = 0\n\
                    [checks.slow]\nkind = \"https\"\ninterval = \"1s\"\ntimeout = \"2s\"\nexpect_status = [200, \"4-5\"]\n";
        let (set, errors) = build(text);
        assert!(set.specs.is_empty());
        assert_eq!(set.invalid.len(), 2);
        let joined = errors.join("\n");
        assert!(
            joined.contains("g.toml:3:12: interval of check bad"),
            "{joined}"
        );
        assert!(
            joined.contains("g.toml:4:8: `path` is not used by tcp check bad"),
            "{joined}"
        );
        assert!(joined.contains("g.toml:5:8: rise = 0"), "{joined}");
        assert!(joined.contains("tcp check bad needs a `port`"), "{joined}");
        assert!(joined.contains("g.toml:9:11: timeout"), "{joined}");
        assert!(
            joined.contains("g.toml:10:17: expect_status of check slow"),
            "{joined}"
        );
        assert_eq!(errors.len(), 6, "{joined}");
    }

    #[test]
    fn issue_24_linear_reduce_is_checked() {
        let text = "[checks.web]\nkind = \"http\"\n[checks.web.json]\n\
                    reduce = { connections = [500.0, 1000.0], cpu = [90.0, 50.0], rps = [1.0] }\n";
        let (_, errors) = build(text);
        let joined = errors.join("\n");
        assert!(
            joined.contains("g.toml:4:49: reduce.cpu = [90, 50] in check web: the start must be a number below the limit"),
            "{joined}"
        );
        assert!(
            joined.contains("reduce.rps in check web must be [start, limit]"),
            "{joined}"
        );
        assert_eq!(errors.len(), 2, "{joined}");

        let (set, errors) = build(
            "[checks.web]\nkind = \"http\"\n[checks.web.json]\nreduce = { connections = [500.0, 1000.0] }\n",
        );
        assert!(errors.is_empty(), "{errors:?}");
        let json = set.specs["web"].json.as_ref().unwrap();
        assert_eq!(
            json.reduce,
            vec![(
                "connections".to_string(),
                LinearReduce {
                    start: 500.0,
                    limit: 1000.0
                }
            )]
        );
    }

    #[test]
    fn issue_24_linear_reduce_is_full_below_start_zero_at_limit_linear_between() {
        let r = LinearReduce {
            start: 500.0,
            limit: 1000.0,
        };
        assert_eq!(r.weight_percent(0.0), 100);
        assert_eq!(r.weight_percent(500.0), 100);
        assert_eq!(r.weight_percent(600.0), 80);
        assert_eq!(r.weight_percent(750.0), 50);
        assert_eq!(r.weight_percent(900.0), 20);
        assert_eq!(r.weight_percent(1000.0), 0);
        assert_eq!(r.weight_percent(5000.0), 0);
        assert_eq!(r.weight_percent(f64::NAN), 100);
    }
}

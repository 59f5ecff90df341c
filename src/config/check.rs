//! The TOML model of health checks (`[health]`, `[checks.NAME]`) and the
//! pure parsers for the values written there (durations, status sets).
//!
//! Only what the operator wrote; `health::build_checks` turns it into
//! checked `CheckSpec`s with `file:line:col` errors.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

/// Default `max_concurrent_probes`.
pub const DEFAULT_MAX_CONCURRENT_PROBES: usize = 256;

/// `[health]`: process-wide probing settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthToml {
    /// Do not answer DNS until every check ran once (gdnsd's behaviour).
    #[serde(default)]
    pub wait_for_first_round: bool,
    /// Probes in flight at once, across all checks.
    #[serde(default = "default_max_concurrent_probes")]
    pub max_concurrent_probes: Spanned<usize>,
}

impl Default for HealthToml {
    fn default() -> Self {
        Self {
            wait_for_first_round: false,
            max_concurrent_probes: default_max_concurrent_probes(),
        }
    }
}

fn default_max_concurrent_probes() -> Spanned<usize> {
    Spanned::new(0..0, DEFAULT_MAX_CONCURRENT_PROBES)
}

/// `[checks.NAME]`: how the endpoints of pools naming this check are probed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckToml {
    /// Probe protocol.
    pub kind: Spanned<CheckKind>,
    /// Time between probe starts (default 10 s).
    pub interval: Option<Spanned<DurationToml>>,
    /// Bound on one probe (default half the interval, at most 5 s).
    pub timeout: Option<Spanned<DurationToml>>,
    /// Consecutive successes to become up (default 2).
    pub rise: Option<Spanned<u32>>,
    /// Consecutive failures to become down (default 3).
    pub fall: Option<Spanned<u32>>,
    /// HTTP method (default GET).
    pub method: Option<Spanned<String>>,
    /// HTTP path (default `/`).
    pub path: Option<Spanned<String>>,
    /// Port probed (default 80 for http, 443 for https; required for tcp).
    pub port: Option<Spanned<u16>>,
    /// Host header and TLS server name (default: the probed address).
    pub host: Option<Spanned<String>>,
    /// Status codes counted as success: `200` or `"200-399"` (default 200-399).
    pub expect_status: Option<Spanned<Vec<StatusToml>>>,
    /// A substring the body must contain.
    pub body_contains: Option<Spanned<String>>,
    /// Verify the server certificate (https only; default true).
    pub tls_verify: Option<Spanned<bool>>,
    /// State before the first verdict (default up, as Route 53).
    #[serde(default)]
    pub initial: InitialState,
    /// Random offset per probe, as a fraction of the interval (default 0.1).
    pub jitter: Option<Spanned<f64>>,
    /// Interpret the body as a JSON health document.
    pub json: Option<Spanned<JsonCheckToml>>,
}

/// Probe protocol of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckKind {
    /// HTTP request over plain TCP.
    Http,
    /// HTTP request over TLS (rustls).
    Https,
    /// TCP connect only.
    Tcp,
}

/// State of an endpoint before its probes reach a verdict.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InitialState {
    /// Answered until the probes say otherwise.
    #[default]
    Up,
    /// Not answered until `rise` probes succeed.
    Down,
}

/// `[checks.NAME.json]`: a JSON health body such as
/// `{"status": "degraded", "cpu": 71.5, "connections": 230}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonCheckToml {
    /// Field holding `healthy`, `degraded` or `unhealthy` (default `status`;
    /// dotted paths reach into nested objects). Absent field = healthy.
    #[serde(default = "default_status_field")]
    pub status_field: String,
    /// Weight multiplier in percent while degraded (default 50).
    pub degraded_weight_percent: Option<Spanned<u8>>,
    /// Figure → threshold: any figure at or above its threshold fails the probe.
    #[serde(default)]
    pub down_when: BTreeMap<String, f64>,
    /// Figure → threshold: any figure at or above it reduces the weight as degraded.
    #[serde(default)]
    pub reduce_when: BTreeMap<String, f64>,
    /// Figure → `[start, limit]`: the weight falls linearly from full at
    /// `start` to zero at `limit` (`connections = [500.0, 1000.0]`).
    #[serde(default)]
    pub reduce: BTreeMap<String, Spanned<Vec<f64>>>,
}

fn default_status_field() -> String {
    "status".to_string()
}

/// A duration as written: integer seconds or text such as `"500ms"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DurationToml {
    /// Whole seconds.
    Secs(i64),
    /// `"250ms"`, `"1s"`, `"1.5s"`, `"2m"`, `"1h"`, `"1d"`.
    Text(String),
}

/// What every duration-like key accepts, for type errors.
pub const DURATION_FORM: &str =
    "a duration: seconds (30) or text such as \"500ms\", \"30s\", \"5m\", \"1h30m\", \"1d\"";

impl<'de> Deserialize<'de> for DurationToml {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = DurationToml;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(DURATION_FORM)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<DurationToml, E> {
                Ok(DurationToml::Secs(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<DurationToml, E> {
                i64::try_from(v)
                    .map(DurationToml::Secs)
                    .map_err(|_| E::custom(format!("duration {v} is too large")))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<DurationToml, E> {
                Ok(DurationToml::Text(v.to_string()))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// A duration in whole seconds, for keys such as `ttl` and
/// `tcp_idle_timeout`: a number (`30`) or duration text (`"30s"`, `"5m"`,
/// `"1h"`, `"1d"`), checked when the file is parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Seconds(pub u32);

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let written = DurationToml::deserialize(deserializer)?;
        let duration = written.to_duration().map_err(D::Error::custom)?;
        if duration.subsec_nanos() != 0 {
            return Err(D::Error::custom(format!(
                "{duration:?} is not a whole number of seconds: expected {DURATION_FORM}"
            )));
        }
        u32::try_from(duration.as_secs())
            .map(Seconds)
            .map_err(|_| D::Error::custom(format!("{duration:?} is too long")))
    }
}

impl DurationToml {
    /// The duration it denotes.
    ///
    /// # Errors
    /// Negative numbers and text [`parse_duration`] rejects.
    pub fn to_duration(&self) -> Result<Duration, String> {
        match self {
            DurationToml::Secs(secs) => u64::try_from(*secs)
                .map(Duration::from_secs)
                .map_err(|_| format!("duration {secs} is negative")),
            DurationToml::Text(text) => parse_duration(text),
        }
    }
}

/// One entry of `expect_status`: a code or a `"LOW-HIGH"` range.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum StatusToml {
    /// A single status code.
    Code(i64),
    /// `"300-399"`, or a single code as text (`"204"`), or `"2xx"`.
    Text(String),
}

impl StatusToml {
    /// The inclusive range it denotes.
    ///
    /// # Errors
    /// Codes outside 100..=599 and malformed text.
    pub fn to_range(&self) -> Result<(u16, u16), String> {
        match self {
            StatusToml::Code(code) => match u16::try_from(*code) {
                Ok(code) if (100..=599).contains(&code) => Ok((code, code)),
                _ => Err(format!("status code {code} is out of range 100..=599")),
            },
            StatusToml::Text(text) => parse_status_range(text),
        }
    }
}

/// Parses `"500ms"`, `"1s"`, `"1.5s"`, `"2m"`, `"1h"`, `"1d"`, a sum of
/// such terms with units in decreasing order (`"1h30m"`, `"1m 30s"`, as Go
/// and systemd write them) or a bare number of seconds.
///
/// # Errors
/// Empty or negative values, unknown or repeated units, and values too
/// large to hold.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let bad = || format!("bad duration {text:?}: expected {DURATION_FORM}");
    if text.is_empty() {
        return Err(bad());
    }
    let mut rest = text;
    let mut secs = 0.0_f64;
    // Units seen so far must get smaller: "1h30m", never "30m1h" or "1m1m".
    let mut last_scale = f64::INFINITY;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(digits);
        let after = after.trim_start();
        let letters = after
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(letters);
        let value: f64 = number.parse().map_err(|_| bad())?;
        let scale = match unit {
            "ms" => 0.001,
            // A bare number is seconds, and only on its own.
            "" if number.len() == text.len() => 1.0,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86_400.0,
            _ => return Err(bad()),
        };
        if scale >= last_scale {
            return Err(bad());
        }
        last_scale = scale;
        secs += value * scale;
        rest = after.trim_start();
    }
    Duration::try_from_secs_f64(secs).map_err(|_| bad())
}

/// Parses `"200"`, `"200-399"` or `"2xx"` into an inclusive range.
///
/// # Errors
/// Malformed text, codes outside 100..=599, and reversed ranges.
pub fn parse_status_range(text: &str) -> Result<(u16, u16), String> {
    let bad = || {
        format!(
            "bad status {text:?}: expected a code (200), a range (\"200-399\") or a class (\"2xx\")"
        )
    };
    let code = |t: &str| -> Result<u16, String> {
        match t.trim().parse::<u16>() {
            Ok(code) if (100..=599).contains(&code) => Ok(code),
            _ => Err(bad()),
        }
    };
    let text_lower = text.trim().to_ascii_lowercase();
    if let Some(class) = text_lower.strip_suffix("xx") {
        let digit = code(&format!("{class}00"))?;
        return Ok((digit, digit + 99));
    }
    match text_lower.split_once('-') {
        Some((low, high)) => {
            let (low, high) = (code(low)?, code(high)?);
            if low > high {
                return Err(format!("bad status range {text:?}: {low} is above {high}"));
            }
            Ok((low, high))
        }
        None => code(&text_lower).map(|c| (c, c)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("14d"), Ok(Duration::from_secs(14 * 86_400)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1m 30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2d12h"), Ok(Duration::from_secs(216_000)));
        assert_eq!(parse_duration("1s500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("30 s"), Ok(Duration::from_secs(30)));
        assert_eq!(
            DurationToml::Secs(7).to_duration(),
            Ok(Duration::from_secs(7))
        );
    }

    #[test]
    fn durations_reject_junk() {
        for text in [
            "",
            "ms",
            "1w",
            "-1s",
            "1.2.3s",
            "fast",
            "1e400s",
            "30m1h",
            "1m1m",
            "1h30",
            "5 minutes",
            "1h-30m",
            "h1",
        ] {
            assert!(parse_duration(text).is_err(), "{text}");
        }
        assert!(DurationToml::Secs(-1).to_duration().is_err());
    }

    #[test]
    fn status_ranges_parse() {
        assert_eq!(parse_status_range("200"), Ok((200, 200)));
        assert_eq!(parse_status_range("300-399"), Ok((300, 399)));
        assert_eq!(parse_status_range(" 200 - 204 "), Ok((200, 204)));
        assert_eq!(parse_status_range("2xx"), Ok((200, 299)));
        assert_eq!(parse_status_range("5XX"), Ok((500, 599)));
        assert_eq!(StatusToml::Code(204).to_range(), Ok((204, 204)));
    }

    #[test]
    fn status_ranges_reject_junk() {
        for text in ["", "abc", "399-300", "99", "600", "6xx", "200-", "-200"] {
            assert!(parse_status_range(text).is_err(), "{text}");
        }
        assert!(StatusToml::Code(600).to_range().is_err());
        assert!(StatusToml::Code(-1).to_range().is_err());
    }
}

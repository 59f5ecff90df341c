//! One probe of one endpoint: TCP connect, or an HTTP(S) request whose
//! status, body and JSON health document are judged. Network I/O only;
//! a failed probe is data ([`ProbeOutcome::Failure`]), never an `Err`.

use std::net::IpAddr;
use std::sync::{Arc, Once, OnceLock};
use std::time::{Duration, Instant};

use super::plan::ProbeTarget;
use super::{CheckSpec, FULL_WEIGHT_PERCENT, JsonSpec};

/// Most body bytes read for `body_contains` and JSON (Route 53 reads 5,120).
const MAX_BODY_BYTES: usize = 64 * 1024;

/// Why a probe failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FailureReason {
    /// No verdict within the check's timeout.
    Timeout,
    /// The connection was refused, reset or unreachable.
    Connect,
    /// An HTTP status outside `expect_status`.
    Status,
    /// The body lacked `body_contains`, or could not be read.
    Body,
    /// The JSON health body was invalid or reported the endpoint down.
    Json,
    /// The TLS handshake or certificate check failed.
    Tls,
}

impl FailureReason {
    /// Number of reasons.
    pub const COUNT: usize = 6;
    /// Every reason, in index order.
    pub const ALL: [FailureReason; Self::COUNT] = [
        FailureReason::Timeout,
        FailureReason::Connect,
        FailureReason::Status,
        FailureReason::Body,
        FailureReason::Json,
        FailureReason::Tls,
    ];

    /// Position in counters arrays.
    pub fn index(self) -> usize {
        match self {
            FailureReason::Timeout => 0,
            FailureReason::Connect => 1,
            FailureReason::Status => 2,
            FailureReason::Body => 3,
            FailureReason::Json => 4,
            FailureReason::Tls => 5,
        }
    }

    /// Lower-case name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::Timeout => "timeout",
            FailureReason::Connect => "connect",
            FailureReason::Status => "status",
            FailureReason::Body => "body",
            FailureReason::Json => "json",
            FailureReason::Tls => "tls",
        }
    }
}

/// The result of one probe.
#[derive(Debug, Clone, PartialEq)]
pub enum ProbeOutcome {
    /// The endpoint passed.
    Success {
        /// Time the probe took.
        rtt: Duration,
        /// Weight factor reported by a JSON body (100 otherwise).
        weight_percent: u8,
    },
    /// The endpoint failed.
    Failure {
        /// Category.
        reason: FailureReason,
        /// What happened, for the status page.
        error: String,
    },
}

impl ProbeOutcome {
    fn failure(reason: FailureReason, error: impl Into<String>) -> Self {
        ProbeOutcome::Failure {
            reason,
            error: error.into(),
        }
    }

    /// Whether the probe passed.
    pub fn is_success(&self) -> bool {
        matches!(self, ProbeOutcome::Success { .. })
    }
}

/// Probes one target with one check; holds the HTTP client across probes.
#[derive(Debug)]
pub struct Prober {
    check: Arc<CheckSpec>,
    target: ProbeTarget,
    client: Result<reqwest::Client, String>,
    source: Option<IpAddr>,
}

impl Prober {
    /// A prober sending from `source` (any local address when `None`);
    /// building the HTTP client here so each probe reuses it.
    pub fn new(check: Arc<CheckSpec>, target: ProbeTarget, source: Option<IpAddr>) -> Self {
        let client = match &target {
            ProbeTarget::Tcp(_) => Err("no HTTP client for tcp probes".to_string()),
            ProbeTarget::Http { pin, .. } => build_client(&check, pin.as_ref(), source),
        };
        Self {
            check,
            target,
            client,
            source,
        }
    }

    /// Runs one probe, bounded by the check's timeout.
    pub async fn probe(&self) -> ProbeOutcome {
        let started = Instant::now();
        let timeout = self.check.timeout;
        let result = tokio::time::timeout(timeout, self.probe_unbounded()).await;
        let rtt = started.elapsed();
        match result {
            Err(_) => ProbeOutcome::failure(
                FailureReason::Timeout,
                format!("no verdict within {timeout:?}"),
            ),
            Ok(Ok(weight_percent)) => ProbeOutcome::Success {
                rtt,
                weight_percent,
            },
            Ok(Err(outcome)) => outcome,
        }
    }

    async fn probe_unbounded(&self) -> Result<u8, ProbeOutcome> {
        match &self.target {
            ProbeTarget::Tcp(addr) => probe_tcp(*addr, self.source)
                .await
                .map(|()| FULL_WEIGHT_PERCENT),
            ProbeTarget::Http { url, .. } => {
                let client = self
                    .client
                    .as_ref()
                    .map_err(|err| ProbeOutcome::failure(FailureReason::Tls, err.clone()))?;
                probe_http(client, &self.check, url).await
            }
        }
    }
}

/// Connects (from `source` when given) and closes.
async fn probe_tcp(addr: std::net::SocketAddr, source: Option<IpAddr>) -> Result<(), ProbeOutcome> {
    let connected = match source {
        None => tokio::net::TcpStream::connect(addr).await,
        Some(source) => {
            let socket = if addr.is_ipv4() {
                tokio::net::TcpSocket::new_v4()
            } else {
                tokio::net::TcpSocket::new_v6()
            };
            match socket.and_then(|s| s.bind(std::net::SocketAddr::new(source, 0)).map(|()| s)) {
                Ok(socket) => socket.connect(addr).await,
                Err(err) => Err(err),
            }
        }
    };
    match connected {
        Ok(_) => Ok(()),
        Err(err) => Err(ProbeOutcome::failure(
            FailureReason::Connect,
            format!("connect {addr}: {err}"),
        )),
    }
}

/// Sends the request and judges status, body and JSON.
async fn probe_http(
    client: &reqwest::Client,
    check: &CheckSpec,
    url: &str,
) -> Result<u8, ProbeOutcome> {
    let method = reqwest::Method::from_bytes(check.method.as_bytes())
        .map_err(|err| ProbeOutcome::failure(FailureReason::Connect, err.to_string()))?;
    let mut response = client
        .request(method, url)
        .send()
        .await
        .map_err(|err| ProbeOutcome::failure(classify(&err), error_chain(&err)))?;
    let status = response.status().as_u16();
    if !check.status_ok(status) {
        return Err(ProbeOutcome::failure(
            FailureReason::Status,
            format!("status {status} from {url}"),
        ));
    }
    if !check.reads_body() {
        return Ok(FULL_WEIGHT_PERCENT);
    }
    let mut body = Vec::new();
    while body.len() < MAX_BODY_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) => break,
            Err(err) => {
                return Err(ProbeOutcome::failure(
                    FailureReason::Body,
                    format!("reading body: {}", error_chain(&err)),
                ));
            }
        }
    }
    body.truncate(MAX_BODY_BYTES);
    if let Some(needle) = &check.body_contains
        && !contains(&body, needle.as_bytes())
    {
        return Err(ProbeOutcome::failure(
            FailureReason::Body,
            format!("body does not contain {needle:?}"),
        ));
    }
    match &check.json {
        Some(json) => evaluate_json(&body, json)
            .map_err(|message| ProbeOutcome::failure(FailureReason::Json, message)),
        None => Ok(FULL_WEIGHT_PERCENT),
    }
}

/// Judges a JSON health body: the weight factor in percent, or why the
/// endpoint counts as failed.
///
/// `{"status": "healthy" | "degraded" | "unhealthy", "cpu": 40.5, ...}`:
/// unhealthy fails; degraded passes at `degraded_weight_percent`; any
/// `down_when` figure at or above its threshold fails; any `reduce_when`
/// figure at or above its threshold reduces the weight as degraded; each
/// `reduce` figure scales it linearly from full at its start to zero at its
/// limit. The lowest factor wins. An absent status field counts as healthy;
/// absent figures are ignored.
///
/// # Errors
/// Not a JSON object, an unknown status value, or a failing figure.
pub fn evaluate_json(body: &[u8], spec: &JsonSpec) -> Result<u8, String> {
    let document: serde_json::Value =
        serde_json::from_slice(body).map_err(|err| format!("body is not JSON: {err}"))?;
    if !document.is_object() {
        return Err("JSON body is not an object".to_string());
    }
    let mut weight = FULL_WEIGHT_PERCENT;
    match lookup(&document, &spec.status_field) {
        None => {}
        Some(serde_json::Value::String(status)) => match status.to_ascii_lowercase().as_str() {
            "healthy" | "ok" | "up" => {}
            "degraded" => weight = spec.degraded_weight_percent,
            "unhealthy" | "down" => {
                return Err(format!("{} is {status:?}", spec.status_field));
            }
            _ => {
                return Err(format!(
                    "{} is {status:?}: expected healthy, degraded or unhealthy",
                    spec.status_field
                ));
            }
        },
        Some(other) => {
            return Err(format!(
                "{} is {other}: expected a string",
                spec.status_field
            ));
        }
    }
    for (figure, threshold) in &spec.down_when {
        if let Some(value) = lookup(&document, figure).and_then(serde_json::Value::as_f64)
            && value >= *threshold
        {
            return Err(format!("{figure} = {value} reached {threshold}"));
        }
    }
    for (figure, threshold) in &spec.reduce_when {
        if let Some(value) = lookup(&document, figure).and_then(serde_json::Value::as_f64)
            && value >= *threshold
        {
            weight = weight.min(spec.degraded_weight_percent);
        }
    }
    for (figure, reduce) in &spec.reduce {
        if let Some(value) = lookup(&document, figure).and_then(serde_json::Value::as_f64) {
            weight = weight.min(reduce.weight_percent(value));
        }
    }
    Ok(weight)
}

/// A dotted path into nested objects.
fn lookup<'v>(value: &'v serde_json::Value, path: &str) -> Option<&'v serde_json::Value> {
    path.split('.').try_fold(value, |v, key| v.get(key))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// Installs rustls's ring provider once (reqwest is built without one, so
/// no second crypto library is compiled in).
pub(crate) fn ensure_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Err means another provider is installed already, which serves as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

fn build_client(
    check: &CheckSpec,
    pin: Option<&(String, std::net::SocketAddr)>,
    source: Option<IpAddr>,
) -> Result<reqwest::Client, String> {
    ensure_crypto_provider();
    let mut builder = reqwest::Client::builder()
        .local_address(source)
        // A probe asks the endpoint itself: never a proxy from the environment.
        .no_proxy()
        // 3xx is judged by expect_status, not followed.
        .redirect(reqwest::redirect::Policy::none())
        // A fresh connection per probe, so a dead listener is noticed.
        .pool_max_idle_per_host(0)
        .connect_timeout(check.timeout)
        .timeout(check.timeout)
        .user_agent(concat!("gslb-health/", env!("CARGO_PKG_VERSION")));
    builder = if check.tls_verify {
        // One verifying TLS configuration for every client: building the
        // platform verifier reads the system's roots, too slow per endpoint.
        builder.tls_backend_preconfigured(verifying_tls()?)
    } else {
        builder.danger_accept_invalid_certs(true)
    };
    if let Some((host, addr)) = pin {
        builder = builder.resolve(host, *addr);
    }
    builder
        .build()
        .map_err(|err| format!("building HTTP client: {}", error_chain(&err)))
}

/// The shared certificate-verifying TLS client configuration.
pub(crate) fn verifying_tls() -> Result<rustls::ClientConfig, String> {
    use rustls_platform_verifier::BuilderVerifierExt;
    static CONFIG: OnceLock<Result<rustls::ClientConfig, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .and_then(|builder| builder.with_platform_verifier())
                .map_err(|err| format!("TLS setup: {err}"))?
                .with_no_client_auth();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Ok(config)
        })
        .clone()
}

/// Sorts a request error into a failure reason.
fn classify(err: &reqwest::Error) -> FailureReason {
    if err.is_timeout() {
        return FailureReason::Timeout;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(current) = source {
        if current.is::<rustls::Error>() {
            return FailureReason::Tls;
        }
        // `io::Error::source` skips the wrapped error; descend into it instead
        // (tokio-rustls wraps rustls errors in io errors, hyper wraps those again).
        source = match current.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => current.source(),
        };
    }
    if err.is_connect() || err.is_request() {
        FailureReason::Connect
    } else {
        FailureReason::Body
    }
}

/// "outer: inner: innermost", skipping repeats.
pub(crate) fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(current) = source {
        let part = current.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = current.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> JsonSpec {
        JsonSpec {
            status_field: "status".to_string(),
            degraded_weight_percent: 40,
            down_when: vec![("cpu".to_string(), 95.0)],
            reduce_when: vec![("load.connections".to_string(), 1000.0)],
            reduce: vec![(
                "connections".to_string(),
                crate::health::LinearReduce {
                    start: 500.0,
                    limit: 1000.0,
                },
            )],
        }
    }

    #[test]
    fn json_status_values() {
        let s = spec();
        assert_eq!(evaluate_json(br#"{"status":"healthy"}"#, &s), Ok(100));
        assert_eq!(evaluate_json(br#"{"status":"degraded"}"#, &s), Ok(40));
        assert!(evaluate_json(br#"{"status":"unhealthy"}"#, &s).is_err());
        assert!(evaluate_json(br#"{"status":"sleepy"}"#, &s).is_err());
        assert!(evaluate_json(br#"{"status":3}"#, &s).is_err());
        assert_eq!(evaluate_json(br#"{}"#, &s), Ok(100));
    }

    #[test]
    fn json_thresholds() {
        let s = spec();
        let down = evaluate_json(br#"{"status":"healthy","cpu":95}"#, &s);
        assert!(down.unwrap_err().contains("cpu"));
        assert_eq!(evaluate_json(br#"{"cpu":94.9}"#, &s), Ok(100));
        assert_eq!(
            evaluate_json(br#"{"load":{"connections":1200}}"#, &s),
            Ok(40)
        );
        assert_eq!(evaluate_json(br#"{"cpu":"high"}"#, &s), Ok(100));
    }

    #[test]
    fn issue_24_json_reduce_scales_linearly_and_down_when_still_cuts() {
        let s = spec();
        assert_eq!(evaluate_json(br#"{"connections":400}"#, &s), Ok(100));
        assert_eq!(evaluate_json(br#"{"connections":700}"#, &s), Ok(60));
        assert_eq!(evaluate_json(br#"{"connections":1000}"#, &s), Ok(0));
        // The lowest factor wins: degraded (40) below the line's 60.
        assert_eq!(
            evaluate_json(br#"{"status":"degraded","connections":700}"#, &s),
            Ok(40)
        );
        assert_eq!(
            evaluate_json(br#"{"status":"degraded","connections":900}"#, &s),
            Ok(20)
        );
        // Past the hard limit the endpoint is down whatever the line says.
        assert!(evaluate_json(br#"{"connections":600,"cpu":99}"#, &s).is_err());
    }

    #[test]
    fn json_rejects_non_objects() {
        let s = spec();
        assert!(evaluate_json(b"ok", &s).unwrap_err().contains("not JSON"));
        assert!(evaluate_json(b"[1]", &s).is_err());
        assert!(evaluate_json(b"", &s).is_err());
    }

    #[test]
    fn reasons_index_in_order() {
        for (i, reason) in FailureReason::ALL.iter().enumerate() {
            assert_eq!(reason.index(), i);
        }
    }

    #[test]
    fn body_search() {
        assert!(contains(b"all ok here", b"ok"));
        assert!(!contains(b"fine", b"ok"));
        assert!(contains(b"", b""));
    }
}

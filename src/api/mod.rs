//! The admin HTTP API: `/status` and `/history` (JSON), `/metrics`
//! (Prometheus or OpenMetrics text),
//! `POST /override`, `POST /reload` and the status page at `/`.
//!
//! Owns the API listener and its authorisation; reads the control plane
//! ([`Control`]) and writes only health overrides and reloads. Never on the
//! DNS query path. Mutating calls need `Authorization: Bearer <token>`
//! unless `api_require_token = false` on a loopback API (`serve` makes a
//! token file when none is configured; see `token`), and are refused when a browser says they
//! come from another site (CSRF). Bodies are limited to [`BODY_LIMIT`].
//! The token never appears in logs or in `/status`.

pub mod client;
mod cluster;
mod exposition;
mod fields;
mod history;
mod status;
pub mod token;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

use crate::control::Control;
use crate::health::Override;
use fields::Fields;

pub use history::StatusHistory;
pub use status::build_status;

/// Largest request body accepted.
pub const BODY_LIMIT: usize = 64 * 1024;
/// How often the status history samples answer counters.
const SAMPLE_INTERVAL: Duration = Duration::from_secs(2);

/// Who may call mutating endpoints.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiAuth {
    /// The bearer token, when one is required.
    token: Option<Arc<str>>,
    /// Which credential that is, as operator changes record it:
    /// `api_token` (configured), `token_file` (generated), `open` (none).
    label: &'static str,
}

impl std::fmt::Debug for ApiAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiAuth")
            .field("token_required", &self.token.is_some())
            .finish()
    }
}

/// Why the API cannot be served as configured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiConfigError {
    /// A non-loopback address (or `api_require_token`) without a token.
    #[error(
        "admin API on {addr} needs a token: set [server] api_token (or bind the API to a loopback address)"
    )]
    TokenRequired {
        /// The API address.
        addr: SocketAddr,
    },
    /// An empty token.
    #[error("[server] api_token is empty: use a long random string")]
    EmptyToken,
}

impl ApiAuth {
    /// The authorisation rule with the token in force (configured, or from
    /// the token file): a token is always required when there is one; an
    /// API not on loopback, or with `require_token`, must have one.
    ///
    /// # Errors
    /// A token is required but none (or an empty one) is configured.
    pub fn new(
        addr: SocketAddr,
        token: Option<&str>,
        require_token: bool,
    ) -> Result<Self, ApiConfigError> {
        match token {
            Some("") => Err(ApiConfigError::EmptyToken),
            Some(token) => Ok(Self {
                token: Some(Arc::from(token)),
                label: "api_token",
            }),
            None if require_token || !addr.ip().is_loopback() => {
                Err(ApiConfigError::TokenRequired { addr })
            }
            None => Ok(Self {
                token: None,
                label: "open",
            }),
        }
    }

    /// Marks the token as the one `serve` keeps in `state_dir` (not
    /// configured), so changes made with it say so.
    pub fn from_token_file(self) -> Self {
        Self {
            label: if self.token.is_some() {
                "token_file"
            } else {
                self.label
            },
            ..self
        }
    }

    /// The label of the credential mutating calls use (`api_token`,
    /// `token_file`, `open`): operator changes record it, never the token.
    pub fn label(&self) -> &'static str {
        self.label
    }

    /// Whether mutating calls need a token.
    pub fn token_required(&self) -> bool {
        self.token.is_some()
    }

    /// Whether the request's `Authorization` header carries the token
    /// (compared in constant time).
    pub fn authorises(&self, headers: &HeaderMap) -> bool {
        let Some(token) = &self.token else {
            return true;
        };
        let Some(given) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        else {
            return false;
        };
        use subtle::ConstantTimeEq as _;
        bool::from(given.trim().as_bytes().ct_eq(token.as_bytes()))
    }
}

/// What the handlers share.
#[derive(Clone)]
struct ApiState {
    control: Arc<Control>,
    auth: ApiAuth,
    history: Arc<StatusHistory>,
    limiter: Arc<RequestBudget>,
}

/// Requests per second the API serves, and the burst it allows.
const API_REQUESTS_PER_SECOND: f64 = 50.0;
const API_BURST: f64 = 100.0;

/// A token bucket over all API requests, so a client looping on the API
/// (scrapes, page refreshes, overrides) cannot take the control plane's
/// time from reloads and probes. Control plane only: a mutex is fine.
#[derive(Debug)]
struct RequestBudget {
    state: std::sync::Mutex<(f64, std::time::Instant)>,
}

impl RequestBudget {
    fn new() -> Self {
        Self {
            state: std::sync::Mutex::new((API_BURST, std::time::Instant::now())),
        }
    }

    /// Takes one token; `false` when the bucket is empty.
    fn take(&self) -> bool {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = std::time::Instant::now();
        let refill = now.duration_since(state.1).as_secs_f64() * API_REQUESTS_PER_SECOND;
        state.0 = (state.0 + refill).min(API_BURST);
        state.1 = now;
        if state.0 >= 1.0 {
            state.0 -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Answers 429 when the request budget is spent.
async fn limit_rate(
    State(state): State<ApiState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if state.limiter.take() {
        next.run(request).await
    } else {
        (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, "1")],
            axum::Json(json!({"ok": false, "error": "too many requests"})),
        )
            .into_response()
    }
}

/// Serves the admin API on `listener` until the task is dropped; also
/// samples answer counters for the "last minute" figures.
///
/// # Errors
/// The listener fails.
pub async fn serve(
    listener: tokio::net::TcpListener,
    control: Arc<Control>,
    auth: ApiAuth,
) -> std::io::Result<()> {
    let history = Arc::new(StatusHistory::default());
    {
        let (control, history) = (control.clone(), history.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SAMPLE_INTERVAL);
            loop {
                tick.tick().await;
                history.sample(&control);
            }
        });
    }
    let state = ApiState {
        control,
        auth,
        history,
        limiter: Arc::new(RequestBudget::new()),
    };
    axum::serve(listener, router(state)).await
}

fn router(state: ApiState) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/status", get(status_json))
        .route("/metrics", get(metrics))
        .route("/override", post(set_override))
        .route("/weight", post(cluster::set_weight))
        .route("/reload", post(reload))
        .route("/explain", get(explain))
        .route("/history", get(history_json))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limit_rate,
        ))
        .with_state(state)
}

async fn page(State(state): State<ApiState>) -> Response {
    let status = build_status(&state.control, &state.history, state.auth.token_required());
    let history = state.history.hour(&state.control);
    // The initial data is inlined so the page renders without a round trip;
    // "<" is escaped so no string in it can close the script element.
    let inline = |value: serde_json::Result<String>| {
        value
            .unwrap_or_else(|_| "null".to_string())
            .replace('<', "\\u003c")
    };
    // Split the template first, so text inside the inlined data can never
    // be taken for the other marker.
    let template = include_str!("page.html");
    let (head, rest) = template
        .split_once("/*INITIAL_STATUS*/null")
        .unwrap_or((template, ""));
    let (middle, tail) = rest
        .split_once("/*INITIAL_HISTORY*/null")
        .unwrap_or((rest, ""));
    let html = [
        head,
        &inline(serde_json::to_string(&status)),
        middle,
        &inline(serde_json::to_string(&history)),
        tail,
    ]
    .concat();
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        html,
    )
        .into_response()
}

async fn status_json(State(state): State<ApiState>) -> Response {
    let status = build_status(&state.control, &state.history, state.auth.token_required());
    ([(header::CACHE_CONTROL, "no-store")], axum::Json(status)).into_response()
}

async fn metrics(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    let format =
        exposition::Format::negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    match crate::metrics::render(scrape_inputs(&state.control)) {
        Ok(text) => {
            let text = match format {
                exposition::Format::OpenMetrics => text,
                exposition::Format::PrometheusText => exposition::to_prometheus_text(&text),
            };
            ([(header::CONTENT_TYPE, format.content_type())], text).into_response()
        }
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// What a scrape reads, taken from the control state once.
fn scrape_inputs(control: &Control) -> crate::metrics::ScrapeInputs {
    let snapshot = control.snapshot();
    let pool_demand = {
        let load = control.lock_load();
        snapshot
            .services
            .iter()
            .flat_map(|s| s.pools.iter())
            .map(|p| {
                let rates = (load.demand.demand(&p.name), load.demand.load(&p.name));
                (p.name.clone(), rates)
            })
            .collect()
    };
    crate::metrics::ScrapeInputs {
        metrics: control.metrics.clone(),
        health: control.health.view_arc(),
        pool_demand,
        query_log: control.query_log.counts(),
        transfers: control.transfers.status(),
        cluster: control
            .cluster
            .as_ref()
            .map(|c| (c.view(), c.writes(), c.keys_written())),
        fleet: control.fleet.as_ref().map(|fleet| {
            let status = fleet.status();
            let now_ms = crate::operator::unix_ms(std::time::SystemTime::now());
            let members_lagging = control.cluster.as_ref().map(|cluster| {
                cluster
                    .view()
                    .members
                    .values()
                    .filter_map(|m| m.config.as_ref())
                    .filter(|c| {
                        crate::fleet::member::lag(
                            c.version,
                            status.newest,
                            &status.versions,
                            now_ms,
                        )
                        .lagging
                    })
                    .count()
            });
            crate::metrics::FleetFigures {
                failures: fleet.failures(),
                status,
                members_lagging,
            }
        }),
        snapshot,
    }
}

/// `GET /history`: the last hour in half-minute buckets (see `history`).
async fn history_json(State(state): State<ApiState>) -> Response {
    let history = state.history.hour(&state.control);
    ([(header::CACHE_CONTROL, "no-store")], axum::Json(history)).into_response()
}

/// `GET /explain` parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExplainRequest {
    /// `IP[/LEN]`.
    client: String,
    /// Query name.
    name: String,
    /// Query type (default A).
    #[serde(rename = "type")]
    record_type: Option<String>,
}

/// `GET /explain?client=IP[/LEN]&name=NAME[&type=TYPE]`: the same traced
/// answer path as the DNS workers, with the live snapshot and health view
/// (probes, overrides, weights, RTTs), then the service's endpoints in pool
/// order. Read-only: no token.
async fn explain(
    State(state): State<ApiState>,
    query: Result<Query<ExplainRequest>, QueryRejection>,
) -> Response {
    let request = match query {
        Ok(Query(request)) => request,
        Err(err) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!(
                    "explain takes client=IP[/LEN], name=NAME and optionally type=TYPE: {}",
                    fields::reason(&err)
                ),
            );
        }
    };
    let client = match request.client.parse::<crate::explain::ExplainClient>() {
        Ok(client) => client,
        Err(err) => return error(StatusCode::BAD_REQUEST, err),
    };
    let snapshot = state.control.snapshot();
    let health = state.control.health.view_arc();
    let record_type = request.record_type.as_deref().unwrap_or("A");
    // A copy, so the planner is not held up while the query is traced.
    let demand = state.control.lock_load().demand.clone();
    match crate::explain::explain(
        &snapshot,
        &health,
        client,
        Some(&demand),
        &request.name,
        record_type,
    ) {
        Ok(mut text) => {
            text.push_str(&crate::explain::endpoints_report(
                &snapshot,
                &health,
                client,
                &request.name,
            ));
            (
                [
                    (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                    (header::CACHE_CONTROL, "no-store"),
                ],
                text,
            )
                .into_response()
        }
        Err(err) => error(StatusCode::BAD_REQUEST, err),
    }
}

/// An error reply: status and a JSON body `{"ok":false,"error":...}`.
fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        axum::Json(json!({"ok": false, "error": message.into()})),
    )
        .into_response()
}

/// The refusal of a mutating call that is not authorised or comes from
/// another site (a browser sends `Sec-Fetch-Site` and `Origin` on POSTs);
/// `None` when it may go ahead.
fn refusal(state: &ApiState, headers: &HeaderMap) -> Option<Response> {
    let site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    let cross_site = match site {
        Some(site) => !matches!(site, "same-origin" | "none"),
        None => match (
            headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()),
            headers.get(header::HOST).and_then(|v| v.to_str().ok()),
        ) {
            (Some(origin), Some(host)) => origin.split_once("://").map(|(_, h)| h) != Some(host),
            (Some(_), None) => true,
            (None, _) => false,
        },
    };
    if cross_site {
        return Some(error(StatusCode::FORBIDDEN, "cross-site request refused"));
    }
    if !state.auth.authorises(headers) {
        tracing::warn!("admin API call refused: missing or wrong bearer token");
        return Some(
            (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                axum::Json(json!({"ok": false, "error": "missing or wrong bearer token"})),
            )
                .into_response(),
        );
    }
    None
}

/// `POST /override` fields (JSON body, form body or query parameters).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct OverrideRequest {
    /// `pool/target`.
    endpoint: Option<String>,
    /// Pool name.
    pool: Option<String>,
    /// `up`, `down`, `drain` or `none`.
    state: Option<String>,
}

/// Parses an override state as the API and page write it.
pub fn parse_override(text: &str) -> Option<Override> {
    match text.trim().to_ascii_lowercase().as_str() {
        "up" | "force-up" | "force_up" => Some(Override::ForceUp),
        "down" | "force-down" | "force_down" => Some(Override::ForceDown),
        "drain" => Some(Override::Drain),
        "none" | "clear" | "" => Some(Override::None),
        _ => None,
    }
}

async fn set_override(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Fields { parsed, form }: Fields<OverrideRequest>,
) -> Response {
    if let Some(refused) = refusal(&state, &headers) {
        return refused;
    }
    let request = match parsed {
        Ok(request) => request,
        Err(err) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("bad override request: {err}"),
            );
        }
    };
    let Some(value) = request.state.as_deref().and_then(parse_override) else {
        return error(
            StatusCode::BAD_REQUEST,
            "state must be one of up, down, drain, none",
        );
    };
    let snapshot = state.control.snapshot();
    let result = match (&request.endpoint, &request.pool) {
        (Some(key), None) => {
            let known = snapshot.probes.endpoints.iter().any(|e| &e.key == key);
            if known {
                let subject = cluster::Subject::Endpoint(key.clone());
                let pending = cluster::record_change(
                    &state,
                    subject,
                    cluster::Setting::Override(value.into()),
                )
                .await;
                Ok(
                    json!({"ok": true, "endpoint": key, "state": value.as_str(), "pending": pending}),
                )
            } else {
                Err(error(
                    StatusCode::NOT_FOUND,
                    format!("unknown endpoint {key:?} (use pool/target as in /status)"),
                ))
            }
        }
        (None, Some(pool)) => {
            let known = snapshot
                .probes
                .endpoints
                .iter()
                .any(|e| e.key.split_once('/').is_some_and(|(p, _)| p == pool));
            if known || value == Override::None {
                let subject = cluster::Subject::Pool(pool.clone());
                let pending = cluster::record_change(
                    &state,
                    subject,
                    cluster::Setting::Override(value.into()),
                )
                .await;
                Ok(json!({"ok": true, "pool": pool, "state": value.as_str(), "pending": pending}))
            } else {
                Err(error(
                    StatusCode::NOT_FOUND,
                    format!("unknown pool {pool:?}"),
                ))
            }
        }
        _ => Err(error(
            StatusCode::BAD_REQUEST,
            "give exactly one of endpoint or pool",
        )),
    };
    if result.is_ok() {
        warn_operator_down_services(&snapshot, &state.control.health.view());
    }
    match result {
        // A plain HTML form (no script) goes back to the page.
        Ok(_) if form => Redirect::to("/").into_response(),
        Ok(body) => axum::Json(body).into_response(),
        Err(response) => response,
    }
}

/// Logs each service an override left with nothing but operator-disabled
/// endpoints: it now answers no records, even failing open.
fn warn_operator_down_services(
    snapshot: &crate::snapshot::Snapshot,
    health: &crate::health::HealthView,
) {
    for service in &snapshot.services {
        if service.only_operator_down(health) {
            tracing::warn!(
                service = %service.name,
                "every endpoint of the service is down by the operator (down = true, force-down or drain): it answers no records; all_down = \"fail-open\" does not override an operator"
            );
        }
    }
}

async fn reload(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    if let Some(refused) = refusal(&state, &headers) {
        return refused;
    }
    let control = state.control.clone();
    match tokio::task::spawn_blocking(move || control.reload("api")).await {
        Ok(Ok(report)) => axum::Json(json!({
            "ok": true,
            "config_mtime_unix": report.config_mtime.and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map(|d| d.as_secs_f64()),
        }))
        .into_response(),
        Ok(Err(errors)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            axum::Json(json!({
                "ok": false,
                "errors": errors.0.iter().map(ToString::to_string).collect::<Vec<_>>(),
            })),
        )
            .into_response(),
        Err(err) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("reload task failed: {err}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, v.parse().unwrap());
        }
        map
    }

    #[test]
    fn non_loopback_api_needs_a_token() {
        let public: SocketAddr = "0.0.0.0:9300".parse().unwrap();
        let loopback: SocketAddr = "127.0.0.1:9300".parse().unwrap();
        assert!(matches!(
            ApiAuth::new(public, None, false),
            Err(ApiConfigError::TokenRequired { .. })
        ));
        assert!(ApiAuth::new(loopback, None, true).is_err());
        assert_eq!(
            ApiAuth::new(loopback, Some(""), false),
            Err(ApiConfigError::EmptyToken)
        );
        assert!(
            !ApiAuth::new(loopback, None, false)
                .unwrap()
                .token_required()
        );
        assert!(
            ApiAuth::new(public, Some("s3cret"), false)
                .unwrap()
                .token_required()
        );
    }

    #[test]
    fn bearer_token_is_checked() {
        let addr: SocketAddr = "10.0.0.1:9300".parse().unwrap();
        let auth = ApiAuth::new(addr, Some("s3cret"), false).unwrap();
        assert!(auth.authorises(&headers(&[("authorization", "Bearer s3cret")])));
        assert!(!auth.authorises(&headers(&[("authorization", "Bearer s3cre")])));
        assert!(!auth.authorises(&headers(&[("authorization", "Basic s3cret")])));
        assert!(!auth.authorises(&headers(&[])));
        assert!(!format!("{auth:?}").contains("s3cret"));
        let open = ApiAuth::new("127.0.0.1:1".parse().unwrap(), None, false).unwrap();
        assert!(open.authorises(&headers(&[])));
    }

    #[test]
    fn override_states_parse() {
        assert_eq!(parse_override("up"), Some(Override::ForceUp));
        assert_eq!(parse_override("Force-Down"), Some(Override::ForceDown));
        assert_eq!(parse_override("drain"), Some(Override::Drain));
        assert_eq!(parse_override("none"), Some(Override::None));
        assert_eq!(parse_override("sideways"), None);
    }
}

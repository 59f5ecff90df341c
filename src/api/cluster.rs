//! The admin API's fleet calls: `POST /weight` (runtime weights), the
//! operator changes behind `POST /override`, and the `operator` and
//! `cluster` parts of `/status`.
//!
//! Every change goes through [`crate::operator::OperatorState`] (applied at
//! once, kept in `state_dir`) and, in a cluster, to etcd; when the store is
//! unreachable the answer says the change is pending.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::fields::Fields;
use super::{ApiState, error, refusal};
use crate::control::Control;
pub(super) use crate::operator::{Change, Setting, Subject};

/// The `operator` part of `/status`.
#[derive(Debug, Serialize)]
pub struct OperatorStatus {
    /// Overrides and weights in force, with who set them and when.
    pub in_force: Vec<ChangeView>,
    /// The last changes made here or received from the cluster, newest first.
    pub recent_changes: Vec<ChangeView>,
}

/// One operator change as `/status` shows it.
#[derive(Debug, Serialize)]
pub struct ChangeView {
    /// `endpoint` or `pool`.
    pub kind: &'static str,
    /// `pool/target` or the pool name.
    pub subject: String,
    /// `override`, `weight` or `weight_percent`.
    pub setting: &'static str,
    /// The value (`drain`, `25`, …; `none` for an undo).
    pub value: String,
    /// When (Unix seconds).
    pub at_unix: f64,
    /// The member whose API took it (`standalone` without a cluster).
    pub member: String,
    /// The credential's label (`api_token`, `token_file` or `open`).
    pub token: String,
    /// Not yet written to the cluster store.
    pub pending: bool,
}

/// The `cluster` part of `/status`.
#[derive(Debug, Serialize)]
pub struct ClusterStatus {
    /// This member.
    pub name: String,
    /// etcd endpoints.
    pub etcd: Vec<String>,
    /// Key prefix.
    pub prefix: String,
    /// `down_quorum`.
    pub down_quorum: String,
    /// Whether the store is reachable and the session live.
    pub store_connected: bool,
    /// Since when (Unix seconds) it has been connected or not.
    pub store_since_unix: f64,
    /// The last store error, while disconnected.
    pub store_error: Option<String>,
    /// Write requests (put, delete, transaction) this member sent to etcd.
    pub store_writes: u64,
    /// Keys those requests wrote or deleted.
    pub store_keys_written: u64,
    /// Live members.
    pub members: Vec<MemberView>,
    /// Distinct config digests among live members (more than 1: drift).
    pub config_digests: usize,
    /// Live members flagged as lagging (more than one configuration
    /// version behind for over a minute).
    pub lagging_members: Vec<String>,
}

/// One live member.
#[derive(Debug, Serialize)]
pub struct MemberView {
    /// Name.
    pub name: String,
    /// gslb version.
    pub version: String,
    /// DNS listeners.
    pub listen: Vec<String>,
    /// Admin API.
    pub api: Option<String>,
    /// Config digest (SHA-256).
    pub config_digest: String,
    /// Whether its digest differs from this member's.
    pub drift: bool,
    /// Its last reload (Unix seconds).
    pub last_reload_unix: f64,
    /// Endpoints it sees down.
    pub down: Vec<String>,
    /// The published configuration version it serves (`None`: it reads
    /// its configuration from its own file, or has no version yet).
    pub config_version: Option<u64>,
    /// Since when (Unix seconds), for a member following versions.
    pub config_since_unix: Option<f64>,
    /// Versions published after the one it serves (as this member knows
    /// the versions).
    pub config_behind: Option<u64>,
    /// More than one version behind for over a minute.
    pub config_lagging: bool,
    /// The newest version that failed to build on it.
    pub config_failed: Option<crate::cluster::FailedVersion>,
    /// Its local files (GeoIP databases, keys) that differ from the
    /// published ones.
    pub config_local_files: Vec<String>,
}

/// Builds the `operator` part of `/status`.
pub fn operator_status(control: &Control) -> OperatorStatus {
    let view = |change: &Change, pending: bool| {
        let (kind, subject) = match &change.subject {
            Subject::Endpoint(key) => ("endpoint", key.clone()),
            Subject::Pool(pool) => ("pool", pool.clone()),
        };
        let (setting, value) = match change.setting {
            Setting::Override(v) => (
                "override",
                crate::health::Override::from(v).as_str().to_string(),
            ),
            Setting::Weight(w) => ("weight", w.map_or("none".into(), |w| w.to_string())),
            Setting::WeightPercent(p) => {
                ("weight_percent", p.map_or("none".into(), |p| p.to_string()))
            }
        };
        ChangeView {
            kind,
            subject,
            setting,
            value,
            at_unix: change.at_ms as f64 / 1000.0,
            member: change.member.clone(),
            token: change.token.clone(),
            pending,
        }
    };
    let pending: Vec<Change> = control.operator.pending();
    OperatorStatus {
        in_force: control
            .operator
            .in_force()
            .iter()
            .map(|e| view(&e.change, e.pending))
            .collect(),
        recent_changes: control
            .operator
            .recent()
            .iter()
            .map(|c| view(c, pending.contains(c)))
            .collect(),
    }
}

/// Builds the `cluster` part of `/status` (`None` standalone).
pub fn cluster_status(control: &Control) -> Option<ClusterStatus> {
    let cluster = control.cluster.as_ref()?;
    let view = cluster.view();
    let (own_digest, _) = control.config_identity();
    let digests: std::collections::BTreeSet<&str> = view
        .members
        .values()
        .map(|m| m.config_digest.as_str())
        .collect();
    let fleet = control.fleet.as_ref().map(|f| f.status());
    let now_ms = crate::operator::unix_ms(std::time::SystemTime::now());
    let members: Vec<MemberView> = view
        .members
        .values()
        .map(|m| {
            let config = m.config.as_ref();
            let lag = config
                .zip(fleet.as_ref())
                .map(|(c, f)| crate::fleet::member::lag(c.version, f.newest, &f.versions, now_ms));
            MemberView {
                name: m.name.clone(),
                version: m.version.clone(),
                listen: m.listen.iter().map(ToString::to_string).collect(),
                api: m.api.map(|a| a.to_string()),
                config_digest: m.config_digest.clone(),
                drift: m.config_digest != own_digest,
                last_reload_unix: m.last_reload_ms as f64 / 1000.0,
                down: view
                    .verdicts
                    .get(&m.name)
                    .map(|v| {
                        v.iter()
                            .filter(|(_, r)| !r.up)
                            .map(|(k, _)| k.clone())
                            .collect()
                    })
                    .unwrap_or_default(),
                config_version: config.and_then(|c| c.version),
                config_since_unix: config.map(|c| c.since_ms as f64 / 1000.0),
                config_behind: lag.map(|l| l.behind),
                config_lagging: lag.is_some_and(|l| l.lagging),
                config_failed: config.and_then(|c| c.failed.clone()),
                config_local_files: config.map(|c| c.local_files.clone()).unwrap_or_default(),
            }
        })
        .collect();
    let lagging_members = members
        .iter()
        .filter(|m| m.config_lagging)
        .map(|m| m.name.clone())
        .collect();
    Some(ClusterStatus {
        name: cluster.settings.name.clone(),
        etcd: cluster.settings.etcd.clone(),
        prefix: cluster.settings.prefix.clone(),
        down_quorum: cluster.settings.down_quorum.describe(),
        store_connected: view.connected,
        store_since_unix: view.since_ms as f64 / 1000.0,
        store_error: view.last_error.clone(),
        store_writes: cluster.writes(),
        store_keys_written: cluster.keys_written(),
        members,
        config_digests: digests.len(),
        lagging_members,
    })
}

/// Makes an operator change through this member: applied here at once,
/// kept in `state_dir`, and written to the cluster store when there is
/// one. Returns whether it is pending (the store could not take it now).
pub(super) async fn record_change(state: &ApiState, subject: Subject, setting: Setting) -> bool {
    let control = &state.control;
    let change = Change::now(subject, setting, control.member_name(), state.auth.label());
    control.events.record(change.event());
    let Some(cluster) = &control.cluster else {
        control.operator.set_local(change, false, &control.health);
        return false;
    };
    control
        .operator
        .set_local(change.clone(), true, &control.health);
    if cluster.store_change(&change).await {
        control.operator.mark_stored(&change);
        false
    } else {
        true
    }
}

/// `POST /weight` fields (JSON body, form or query parameters).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct WeightRequest {
    /// `pool/target`.
    endpoint: Option<String>,
    /// Pool name.
    pool: Option<String>,
    /// An endpoint's weight, or `"none"`.
    weight: Option<WeightValue>,
    /// A pool's weight factor 0..=100, or `"none"`.
    weight_percent: Option<WeightValue>,
}

/// A number, or `"none"` to undo.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum WeightValue {
    Number(u64),
    Text(String),
}

impl WeightValue {
    /// `Ok(None)` for `none`, `Ok(Some(n))` for a number up to `max`.
    fn parse(&self, max: u64) -> Result<Option<u64>, String> {
        match self {
            WeightValue::Number(n) if *n <= max => Ok(Some(*n)),
            WeightValue::Number(n) => Err(format!("{n} is too large (at most {max})")),
            WeightValue::Text(t) if t.trim().eq_ignore_ascii_case("none") => Ok(None),
            WeightValue::Text(t) => match t.trim().parse::<u64>() {
                Ok(n) if n <= max => Ok(Some(n)),
                _ => Err(format!("{t:?} is not a number up to {max} or \"none\"")),
            },
        }
    }
}

/// Largest endpoint weight accepted.
const MAX_WEIGHT: u64 = 1_000_000;

pub(super) async fn set_weight(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Fields { parsed, .. }: Fields<WeightRequest>,
) -> Response {
    if let Some(refused) = refusal(&state, &headers) {
        return refused;
    }
    let request = match parsed {
        Ok(request) => request,
        Err(err) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("bad weight request: {err}"),
            );
        }
    };
    let snapshot = state.control.snapshot();
    let endpoints = &snapshot.probes.endpoints;
    let (subject, setting, shown) = match (&request.endpoint, &request.pool) {
        (Some(key), None) => {
            let Some(value) = &request.weight else {
                return error(
                    StatusCode::BAD_REQUEST,
                    "an endpoint takes \"weight\": N or \"none\"",
                );
            };
            if request.weight_percent.is_some() {
                return error(
                    StatusCode::BAD_REQUEST,
                    "weight_percent is for pools; an endpoint takes weight",
                );
            }
            if !endpoints.iter().any(|e| &e.key == key) {
                return error(
                    StatusCode::NOT_FOUND,
                    format!("unknown endpoint {key:?} (use pool/target as in /status)"),
                );
            }
            match value.parse(MAX_WEIGHT) {
                Ok(weight) => {
                    let weight = weight.and_then(|w| u32::try_from(w).ok());
                    (
                        Subject::Endpoint(key.clone()),
                        Setting::Weight(weight),
                        json!({"endpoint": key, "weight": weight}),
                    )
                }
                Err(err) => return error(StatusCode::BAD_REQUEST, format!("weight: {err}")),
            }
        }
        (None, Some(pool)) => {
            let Some(value) = &request.weight_percent else {
                return error(
                    StatusCode::BAD_REQUEST,
                    "a pool takes \"weight_percent\": 0..100 or \"none\"",
                );
            };
            if request.weight.is_some() {
                return error(
                    StatusCode::BAD_REQUEST,
                    "weight is for endpoints; a pool takes weight_percent",
                );
            }
            let known = endpoints
                .iter()
                .any(|e| e.key.split_once('/').is_some_and(|(p, _)| p == pool));
            if !known {
                return error(StatusCode::NOT_FOUND, format!("unknown pool {pool:?}"));
            }
            match value.parse(100) {
                Ok(percent) => {
                    let percent = percent.and_then(|p| u8::try_from(p).ok());
                    (
                        Subject::Pool(pool.clone()),
                        Setting::WeightPercent(percent),
                        json!({"pool": pool, "weight_percent": percent}),
                    )
                }
                Err(err) => {
                    return error(StatusCode::BAD_REQUEST, format!("weight_percent: {err}"));
                }
            }
        }
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "give exactly one of endpoint or pool",
            );
        }
    };
    let pending = record_change(&state, subject, setting).await;
    let mut body = shown;
    body["ok"] = json!(true);
    body["pending"] = json!(pending);
    axum::Json(body).into_response()
}

/// Members' verdicts for `/status`, by member (kept here so the status
/// module only calls in).
pub fn verdict_words(pairs: Vec<(String, bool)>) -> BTreeMap<String, &'static str> {
    pairs
        .into_iter()
        .map(|(member, up)| (member, if up { "up" } else { "down" }))
        .collect()
}

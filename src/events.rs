//! Operator events: endpoint down/up, pool down/recovered, failover
//! started/ended per service, overrides and reloads — each logged once when
//! the state changes (WARN for lost capacity, INFO for recovery, with how
//! long the previous state lasted), kept in a short list for `/status` and
//! the page, and posted to the `[[alerts]]` webhooks.
//!
//! Health events come from state, never from traffic: [`Events::observe`]
//! compares the probe verdicts and the health view (overrides, pool
//! thresholds) with what it saw last, and runs whenever the health table
//! publishes a view or a reload swaps the snapshot. Webhook delivery is a bounded
//! queue per target drained by its own task, with retries and backoff;
//! recording an event never waits for it (a full queue drops and counts).

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::config::AlertToml;
use crate::health::HealthView;
use crate::snapshot::Snapshot;

/// Events kept for `/status`.
const KEPT: usize = 200;
/// Events waiting per webhook before new ones are dropped.
const ALERT_QUEUE: usize = 256;
/// Delivery attempts per event and webhook.
const ATTEMPTS: u32 = 5;
/// The first retry's delay; doubled per retry.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// One delivery attempt's limit.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    /// The probes' verdict went down.
    EndpointDown,
    /// The probes' verdict came back up.
    EndpointUp,
    /// A pool has fewer usable endpoints than `min_healthy`.
    PoolDown,
    /// A pool is up again.
    PoolUp,
    /// A primary pool of a service is down: its clients go elsewhere.
    FailoverStarted,
    /// Every primary pool of the service is up again.
    FailoverEnded,
    /// An operator override was set or cleared.
    Override,
    /// An operator weight was set.
    Weight,
    /// A configuration was loaded.
    Reload,
    /// A reload failed; the running configuration stays.
    ReloadFailed,
}

impl EventKind {
    /// Every kind, for parsing and documentation.
    pub const ALL: [EventKind; 10] = [
        EventKind::EndpointDown,
        EventKind::EndpointUp,
        EventKind::PoolDown,
        EventKind::PoolUp,
        EventKind::FailoverStarted,
        EventKind::FailoverEnded,
        EventKind::Override,
        EventKind::Weight,
        EventKind::Reload,
        EventKind::ReloadFailed,
    ];

    /// The name in logs, JSON and `[[alerts]] events`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::EndpointDown => "endpoint-down",
            EventKind::EndpointUp => "endpoint-up",
            EventKind::PoolDown => "pool-down",
            EventKind::PoolUp => "pool-up",
            EventKind::FailoverStarted => "failover-started",
            EventKind::FailoverEnded => "failover-ended",
            EventKind::Override => "override",
            EventKind::Weight => "weight",
            EventKind::Reload => "reload",
            EventKind::ReloadFailed => "reload-failed",
        }
    }

    /// The kinds an `[[alerts]] events` name subscribes to: a kind by its
    /// name, a loss of capacity also with its recovery (`endpoint-down`
    /// brings `endpoint-up`, `pool-down` `pool-up`), and `failover` both
    /// ends of a failover. `None` for an unknown name.
    pub fn subscribed_by(name: &str) -> Option<Vec<EventKind>> {
        let kinds = match name {
            "endpoint-down" => vec![EventKind::EndpointDown, EventKind::EndpointUp],
            "pool-down" => vec![EventKind::PoolDown, EventKind::PoolUp],
            "failover" => vec![EventKind::FailoverStarted, EventKind::FailoverEnded],
            other => vec![*EventKind::ALL.iter().find(|k| k.as_str() == other)?],
        };
        Some(kinds)
    }
}

/// One event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// When it happened (Unix seconds).
    pub time_unix: f64,
    /// What happened.
    pub kind: EventKind,
    /// `warn` (capacity lost, reload failed) or `info`.
    pub level: &'static str,
    /// What it happened to: an endpoint key, pool, service or config file.
    pub subject: String,
    /// One line for people (and Slack's `text`).
    pub text: String,
    /// Why (a probe's last error, the override, the reload errors).
    pub reason: Option<String>,
    /// How long the state that ended lasted, in seconds.
    pub duration_secs: Option<f64>,
    /// Consecutive identical events folded into this one (the list only).
    pub repeats: u32,
}

impl Event {
    /// An event now; `warn` when `kind` loses capacity.
    pub fn new(kind: EventKind, subject: impl Into<String>, text: impl Into<String>) -> Self {
        let level = match kind {
            EventKind::EndpointDown
            | EventKind::PoolDown
            | EventKind::FailoverStarted
            | EventKind::ReloadFailed => "warn",
            _ => "info",
        };
        Self {
            time_unix: unix(SystemTime::now()),
            kind,
            level,
            subject: subject.into(),
            text: text.into(),
            reason: None,
            duration_secs: None,
            repeats: 1,
        }
    }

    /// With a reason.
    pub fn because(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    /// With the duration of the state that ended.
    pub fn lasted(mut self, since: SystemTime, now: SystemTime) -> Self {
        self.duration_secs = Some(now.duration_since(since).map_or(0.0, |d| d.as_secs_f64()));
        self
    }

    /// A warning level event (an override taking capacity away).
    pub fn warning(mut self) -> Self {
        self.level = "warn";
        self
    }

    /// The webhook body: the event, with a Slack-compatible `text`.
    pub fn webhook_body(&self) -> serde_json::Value {
        let mut text = format!("[gslb] {}", self.text);
        if let Some(reason) = &self.reason {
            text.push_str(&format!(" ({reason})"));
        }
        if let Some(secs) = self.duration_secs {
            text.push_str(&format!(" after {}", human_duration(secs)));
        }
        let mut body = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        if let Some(object) = body.as_object_mut() {
            object.remove("repeats");
            object.insert("text".into(), serde_json::Value::String(text));
            object.insert(
                "message".into(),
                serde_json::Value::String(self.text.clone()),
            );
        }
        body
    }
}

/// `90` → `1m30s`.
pub fn human_duration(secs: f64) -> String {
    let total = secs.max(0.0).round() as u64;
    match total {
        0..60 => format!("{total}s"),
        60..3600 => format!("{}m{:02}s", total / 60, total % 60),
        _ => format!("{}h{:02}m", total / 3600, (total % 3600) / 60),
    }
}

/// The events log, the health state it compares against, and the webhooks.
#[derive(Debug, Default)]
pub struct Events {
    recent: Mutex<VecDeque<Event>>,
    seen: Mutex<Option<Seen>>,
    alerts: Mutex<Alerts>,
    /// Webhook posts dropped because their queue was full.
    pub dropped: AtomicU64,
}

#[derive(Debug, Default)]
struct Alerts {
    runtime: Option<tokio::runtime::Handle>,
    configured: Vec<AlertToml>,
    /// Whether `targets` were built for `configured` (needs the runtime).
    built: bool,
    targets: Vec<Target>,
}

#[derive(Debug)]
struct Target {
    kinds: BTreeSet<&'static str>,
    queue: tokio::sync::mpsc::Sender<Event>,
}

/// The health state last observed.
#[derive(Debug, Default)]
struct Seen {
    /// Endpoint key → (probe verdict up, since).
    endpoints: HashMap<String, (bool, SystemTime)>,
    /// Pool → (up, since).
    pools: HashMap<String, (bool, SystemTime)>,
    /// Service → (its primary pools that are down, since when non-empty).
    services: HashMap<String, (Vec<String>, SystemTime)>,
}

impl Events {
    /// Logs `event` once at its level, keeps it (folding a repeat of the
    /// newest into it), and queues it for every webhook subscribed to it.
    pub fn record(&self, event: Event) {
        let reason = event.reason.as_deref().unwrap_or("");
        let duration = event.duration_secs.map(human_duration).unwrap_or_default();
        if event.level == "warn" {
            tracing::warn!(event = event.kind.as_str(), subject = %event.subject, reason, lasted = %duration, "{}", event.text);
        } else {
            tracing::info!(event = event.kind.as_str(), subject = %event.subject, reason, lasted = %duration, "{}", event.text);
        }
        self.queue_alerts(&event);
        let mut recent = lock(&self.recent);
        match recent.back_mut() {
            Some(last)
                if last.kind == event.kind
                    && last.subject == event.subject
                    && last.text == event.text =>
            {
                last.repeats = last.repeats.saturating_add(1);
                last.time_unix = event.time_unix;
            }
            _ => recent.push_back(event),
        }
        while recent.len() > KEPT {
            recent.pop_front();
        }
    }

    /// The kept events, newest first.
    pub fn recent(&self) -> Vec<Event> {
        lock(&self.recent).iter().rev().cloned().collect()
    }

    /// Compares `snapshot`'s health with the last observation and records
    /// what changed. The first observation records nothing (it is the
    /// starting state); endpoints, pools and services that left the
    /// configuration are forgotten silently.
    pub fn observe(&self, snapshot: &Snapshot, view: &HealthView) {
        let now = SystemTime::now();
        let mut guard = lock(&self.seen);
        let first = guard.is_none();
        let seen = guard.get_or_insert_with(Seen::default);
        let mut events = Vec::new();
        let mut endpoints = HashMap::new();
        for planned in &snapshot.probes.endpoints {
            let up = planned.health.probe_up();
            let since = match seen.endpoints.get(&planned.key) {
                Some(&(was, since)) if was == up => since,
                Some(&(_, since)) => {
                    events.push(endpoint_event(planned, up, since, now));
                    now
                }
                None => now,
            };
            endpoints.insert(planned.key.clone(), (up, since));
        }
        let mut pools = HashMap::new();
        for service in snapshot.services.iter() {
            for pool in &service.pools {
                if pools.contains_key(&pool.name) {
                    continue;
                }
                let healthy = pool.endpoints.iter().filter(|e| e.is_healthy(view)).count();
                let needed = pool.min_healthy.needed(pool.endpoints.len());
                let up = healthy >= needed;
                let since = match seen.pools.get(&pool.name) {
                    Some(&(was, since)) if was == up => since,
                    Some(&(_, since)) => {
                        let (kind, text) = if up {
                            (EventKind::PoolUp, format!("pool {} recovered", pool.name))
                        } else {
                            (EventKind::PoolDown, format!("pool {} down", pool.name))
                        };
                        events.push(
                            Event::new(kind, pool.name.clone(), text)
                                .because(format!(
                                    "{healthy}/{} endpoints usable, needs {needed}",
                                    pool.endpoints.len()
                                ))
                                .lasted(since, now),
                        );
                        now
                    }
                    None => now,
                };
                pools.insert(pool.name.clone(), (up, since));
            }
        }
        let mut services = HashMap::new();
        for service in snapshot.services.iter() {
            let is_up = |p: u16| {
                service
                    .pools
                    .get(usize::from(p))
                    .is_some_and(|pool| pools.get(&pool.name).is_some_and(|s| s.0))
            };
            let name = |p: u16| {
                service
                    .pools
                    .get(usize::from(p))
                    .map(|pool| pool.name.clone())
            };
            // Failing over: some clients' first pool (the first of their
            // order in failover's walk) is down, so they are answered from
            // a later one. A down pool that is no client's first choice
            // (the second pool of a failover service) moves nobody.
            let mut down: Vec<String> = Vec::new();
            let mut moves: Vec<String> = Vec::new();
            for index in 0..service.orders.len() {
                let index = u32::try_from(index).unwrap_or(u32::MAX);
                let order = crate::policy::client_order(service, view, index);
                let mut walk = crate::policy::failover_walk(service, order);
                let Some(first) = walk.next() else { continue };
                if is_up(first) {
                    continue;
                }
                let from = name(first).unwrap_or_default();
                let to = walk
                    .find(|&p| is_up(p))
                    .and_then(name)
                    .map_or("no pool is up".to_string(), |to| {
                        format!("answers from {to}")
                    });
                let step = format!("{from} down; {to}");
                if !moves.contains(&step) {
                    moves.push(step);
                }
                if !down.contains(&from) {
                    down.push(from);
                }
            }
            let since = match seen.services.get(&service.name) {
                Some((was, since)) if was.is_empty() == down.is_empty() => *since,
                Some((_, since)) => {
                    let event = if down.is_empty() {
                        Event::new(
                            EventKind::FailoverEnded,
                            service.name.clone(),
                            format!(
                                "{}: failover ended, every client's first pool is up",
                                service.name
                            ),
                        )
                    } else {
                        Event::new(
                            EventKind::FailoverStarted,
                            service.name.clone(),
                            format!("{}: failover started", service.name),
                        )
                        .because(moves.join("; "))
                    };
                    events.push(event.lasted(*since, now));
                    now
                }
                None => now,
            };
            services.insert(service.name.clone(), (down, since));
        }
        *seen = Seen {
            endpoints,
            pools,
            services,
        };
        drop(guard);
        if !first {
            for event in events {
                self.record(event);
            }
        }
    }

    /// Since when each endpoint's probe verdict holds, as last observed.
    pub fn endpoint_since(&self, key: &str) -> Option<SystemTime> {
        lock(&self.seen)
            .as_ref()
            .and_then(|seen| seen.endpoints.get(key).map(|&(_, since)| since))
    }

    /// Takes the `[[alerts]]` of a (re)loaded configuration; targets are
    /// rebuilt only when the list changed.
    pub fn configure_alerts(&self, alerts: &[AlertToml]) {
        let mut state = lock(&self.alerts);
        if state.configured == alerts && state.built {
            return;
        }
        state.configured = alerts.to_vec();
        state.targets.clear();
        state.built = false;
        let Some(runtime) = state.runtime.clone() else {
            return;
        };
        state.built = true;
        let client = match webhook_client() {
            Ok(client) => client,
            Err(err) => {
                tracing::error!(error = %err, "cannot build the webhook client; alerts are off");
                return;
            }
        };
        for alert in alerts {
            let kinds = alert_kinds(alert);
            let (queue, receiver) = tokio::sync::mpsc::channel(ALERT_QUEUE);
            runtime.spawn(deliver(client.clone(), alert.url.clone(), receiver));
            state.targets.push(Target { kinds, queue });
        }
    }

    /// Starts webhook delivery on `runtime` (with the alerts configured so far).
    pub fn start(&self, runtime: tokio::runtime::Handle) {
        let configured = {
            let mut state = lock(&self.alerts);
            state.runtime = Some(runtime);
            state.configured.clone()
        };
        self.configure_alerts(&configured);
    }

    fn queue_alerts(&self, event: &Event) {
        let state = lock(&self.alerts);
        for target in &state.targets {
            if !target.kinds.contains(event.kind.as_str()) {
                continue;
            }
            if target.queue.try_send(event.clone()).is_err() {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Event names an alert subscribes to (all when `events` is not given).
fn alert_kinds(alert: &AlertToml) -> BTreeSet<&'static str> {
    match &alert.events {
        None => EventKind::ALL.iter().map(|k| k.as_str()).collect(),
        Some(names) => names
            .iter()
            .filter_map(|n| EventKind::subscribed_by(n.get_ref()))
            .flatten()
            .map(EventKind::as_str)
            .collect(),
    }
}

fn endpoint_event(
    endpoint: &crate::health::PlannedEndpoint,
    up: bool,
    since: SystemTime,
    now: SystemTime,
) -> Event {
    if up {
        Event::new(
            EventKind::EndpointUp,
            endpoint.key.clone(),
            format!("endpoint {} up", endpoint.key),
        )
        .lasted(since, now)
    } else {
        let status = endpoint.health.probe_status();
        let reason = status
            .last_error
            .unwrap_or_else(|| "probe verdict down".to_string());
        Event::new(
            EventKind::EndpointDown,
            endpoint.key.clone(),
            format!("endpoint {} down", endpoint.key),
        )
        .because(reason)
        .lasted(since, now)
    }
}

/// Posts each queued event to `url`, retrying with backoff; never holds up
/// anyone but this queue.
async fn deliver(
    client: reqwest::Client,
    url: String,
    mut queue: tokio::sync::mpsc::Receiver<Event>,
) {
    while let Some(event) = queue.recv().await {
        let body = event.webhook_body().to_string();
        let mut delay = FIRST_BACKOFF;
        let mut last_error = String::new();
        for attempt in 1..=ATTEMPTS {
            let request = client
                .post(&url)
                .header("content-type", "application/json")
                .body(body.clone());
            match request.send().await {
                Ok(reply) if reply.status().is_success() => {
                    last_error.clear();
                    break;
                }
                Ok(reply) => last_error = format!("HTTP {}", reply.status()),
                Err(err) => last_error = err.to_string(),
            }
            if attempt < ATTEMPTS {
                tracing::debug!(%url, attempt, error = %last_error, "alert webhook failed; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
        }
        if !last_error.is_empty() {
            tracing::warn!(%url, event = event.kind.as_str(), error = %last_error, "alert webhook failed after {ATTEMPTS} attempts");
        }
    }
}

fn webhook_client() -> Result<reqwest::Client, String> {
    crate::health::ensure_crypto_provider();
    reqwest::Client::builder()
        .timeout(ATTEMPT_TIMEOUT)
        .tls_backend_preconfigured(crate::health::verifying_tls()?)
        .build()
        .map_err(|e| e.to_string())
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Plain data; a panic while it was held leaves it usable.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn unix(time: SystemTime) -> f64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_names_subscribe_to_both_ends() {
        let alert = AlertToml {
            url: "http://127.0.0.1:1/".into(),
            events: Some(
                ["endpoint-down", "failover", "reload-failed"]
                    .iter()
                    .map(|n| toml::Spanned::new(0..0, n.to_string()))
                    .collect(),
            ),
        };
        let kinds = alert_kinds(&alert);
        assert_eq!(
            kinds.into_iter().collect::<Vec<_>>(),
            [
                "endpoint-down",
                "endpoint-up",
                "failover-ended",
                "failover-started",
                "reload-failed"
            ]
        );
        assert!(EventKind::subscribed_by("sideways").is_none());
    }

    #[test]
    fn repeats_fold_and_bodies_carry_slack_text() {
        let events = Events::default();
        for _ in 0..3 {
            events.record(Event::new(
                EventKind::ReloadFailed,
                "gslb.toml",
                "reload failed",
            ));
        }
        events.record(Event::new(EventKind::Reload, "gslb.toml", "reloaded"));
        let recent = events.recent();
        assert_eq!(recent.len(), 2);
        assert_eq!(recent[1].repeats, 3);
        let now = SystemTime::now();
        let body = Event::new(
            EventKind::EndpointUp,
            "eu/192.0.2.10",
            "endpoint eu/192.0.2.10 up",
        )
        .lasted(now - Duration::from_secs(90), now)
        .webhook_body();
        assert_eq!(body["text"], "[gslb] endpoint eu/192.0.2.10 up after 1m30s");
        assert_eq!(body["kind"], "endpoint-up");
        assert_eq!(body["level"], "info");
    }
}

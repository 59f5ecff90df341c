//! This member's session with etcd: connect under a lease, publish the
//! member record, verdict changes and operator changes, watch the prefix
//! into the [`Cluster`] view, and set every endpoint's quorum verdict.
//!
//! The part of the cluster that runs beside [`Control`] (it reads the
//! snapshot's probe plan and writes the health table and operator state);
//! the settings, the view and the quorum rule it applies stay in
//! `cluster`, below the control plane.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use super::etcd::{EtcdError, TxnOp, WatchEvent};
use super::{
    Cluster, FIRST_BACKOFF, MAX_BACKOFF, MAX_TXN_OPS, MemberRecord, PUBLISH_INTERVAL,
    VerdictRecord, quorum_verdict,
};
use crate::control::Control;
use crate::operator::{Change, unix_ms};

/// Runs this member's cluster session forever: connect, publish, watch,
/// and on any store failure fall back to local verdicts and retry.
pub async fn run(control: Arc<Control>, cluster: Arc<Cluster>) {
    let mut backoff = FIRST_BACKOFF;
    let mut previous_lease = 0;
    loop {
        let mut session = Session::new(control.clone(), cluster.clone());
        let result = session.run(&mut backoff, previous_lease).await;
        session.end();
        if session.lease != 0 {
            previous_lease = session.lease;
        }
        if let Err(err) = result {
            let first = cluster.connected() || backoff == FIRST_BACKOFF;
            cluster.set_connected(false, Some(err.to_string()));
            if first {
                tracing::warn!(error = %err, retry_in = ?backoff, "cluster store unreachable: serving on this member's own verdicts and the last operator state");
            } else {
                tracing::debug!(error = %err, retry_in = ?backoff, "cluster store still unreachable");
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Stops the watch task when the session ends, however it ends.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One lease's worth of connection to etcd.
struct Session {
    control: Arc<Control>,
    cluster: Arc<Cluster>,
    lease: i64,
    /// Verdicts this session published, by endpoint key.
    published: HashMap<String, bool>,
    /// The member record last published.
    record: Option<MemberRecord>,
    /// Last revision seen (read or watched).
    revision: i64,
}

impl Session {
    fn new(control: Arc<Control>, cluster: Arc<Cluster>) -> Self {
        Self {
            control,
            cluster,
            lease: 0,
            published: HashMap::new(),
            record: None,
            revision: 0,
        }
    }

    /// Connects and runs until the store fails. `previous_lease` is the
    /// last session's: once everything is re-published under the new
    /// lease it is revoked, so keys only it still holds (verdicts of
    /// endpoints no longer probed) go at once rather than at its expiry.
    ///
    /// When `previous_lease` is still alive (etcd was away for less than
    /// `member_ttl`, or restarted, which renews every lease), the session
    /// resumes it: the keys it holds are still there, so after a full read
    /// only what differs from them is written, instead of every verdict
    /// again (at thousands of endpoints a passing store error would
    /// otherwise cost members × endpoints writes).
    async fn run(&mut self, backoff: &mut Duration, previous_lease: i64) -> Result<(), EtcdError> {
        let ttl = self.cluster.settings.member_ttl;
        let resumed = previous_lease != 0
            && match self.cluster.etcd.keep_alive(previous_lease).await {
                Ok(_) => true,
                Err(EtcdError::LeaseExpired(_)) => false,
                Err(err) => return Err(err),
            };
        if resumed {
            self.lease = previous_lease;
            self.full_read().await?;
        } else {
            self.lease = self.cluster.etcd.grant_lease(ttl).await?;
        }
        self.publish_record().await?;
        self.publish_verdicts().await?;
        self.flush_pending().await?;
        if !resumed {
            if previous_lease != 0
                && let Err(err) = self.cluster.etcd.revoke_lease(previous_lease).await
            {
                // Usually already expired; it expires by itself otherwise.
                tracing::debug!(lease = previous_lease, error = %err, "previous cluster lease not revoked");
            }
            self.full_read().await?;
        }
        self.cluster.set_connected(true, None);
        *backoff = FIRST_BACKOFF;
        tracing::info!(
            member = %self.cluster.settings.name,
            lease = self.lease,
            resumed,
            revision = self.revision,
            "cluster session established"
        );
        self.apply_quorum();
        let (events_tx, mut events_rx) = tokio::sync::mpsc::channel(64);
        let mut watcher = AbortOnDrop(self.start_watch(events_tx.clone()));
        let mut keepalive = tokio::time::interval(ttl / 3);
        keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut publish = tokio::time::interval(PUBLISH_INTERVAL);
        publish.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = keepalive.tick() => {
                    self.cluster.etcd.keep_alive(self.lease).await?;
                }
                _ = publish.tick() => {
                    self.publish_record().await?;
                    if self.publish_verdicts().await? {
                        self.apply_quorum();
                    }
                    self.flush_pending().await?;
                }
                batch = events_rx.recv() => match batch {
                    Some(Ok(events)) => {
                        self.handle_events(events);
                        self.apply_quorum();
                    }
                    Some(Err(EtcdError::Compacted(oldest))) => {
                        tracing::warn!(oldest, "cluster watch fell behind compaction: reading everything again");
                        watcher.0.abort();
                        self.full_read().await?;
                        self.apply_quorum();
                        watcher = AbortOnDrop(self.start_watch(events_tx.clone()));
                    }
                    Some(Err(err)) => return Err(err),
                    None => {
                        return Err(EtcdError::Unreachable { endpoint: String::new(), message: "watch ended".into() });
                    }
                }
            }
        }
    }

    /// After a failure: every endpoint back on this member's own verdict.
    fn end(&self) {
        let plan = self.control.snapshot().probes.clone();
        self.control
            .health
            .set_quorum_verdicts(plan.endpoints.iter().map(|e| (e.health.id(), None)));
    }

    fn start_watch(
        &self,
        events: tokio::sync::mpsc::Sender<Result<Vec<WatchEvent>, EtcdError>>,
    ) -> tokio::task::AbortHandle {
        let cluster = self.cluster.clone();
        let start = self.revision + 1;
        tokio::spawn(async move {
            let prefix = format!("{}/", cluster.settings.prefix);
            let mut watch = match cluster.etcd.watch_prefix(&prefix, start).await {
                Ok(watch) => watch,
                Err(err) => {
                    let _ = events.send(Err(err)).await;
                    return;
                }
            };
            loop {
                let batch = watch.next().await;
                let failed = batch.is_err();
                if events.send(batch).await.is_err() || failed {
                    return;
                }
            }
        })
        .abort_handle()
    }

    async fn publish_record(&mut self) -> Result<(), EtcdError> {
        let record = member_record(&self.cluster, &self.control);
        if self.record.as_ref() == Some(&record) {
            return Ok(());
        }
        let key = self.cluster.key(&format!("members/{}", record.name));
        let bytes = serde_json::to_vec(&record).unwrap_or_default();
        self.cluster.etcd.put(&key, &bytes, self.lease).await?;
        self.cluster.count_write(1);
        self.record = Some(record);
        Ok(())
    }

    /// Publishes this member's verdicts that changed (and removes those of
    /// endpoints it no longer probes), in transactions of up to
    /// [`MAX_TXN_OPS`] keys. Returns whether any changed.
    async fn publish_verdicts(&mut self) -> Result<bool, EtcdError> {
        let plan = self.control.snapshot().probes.clone();
        // Each write with what `published` holds once it is stored
        // (`None`: deleted).
        let mut writes: Vec<(TxnOp, String, Option<bool>)> = Vec::new();
        let mut probed = BTreeSet::new();
        for endpoint in plan.endpoints.iter().filter(|e| e.probe.is_some()) {
            probed.insert(endpoint.key.as_str());
            let up = endpoint.health.probe_up();
            if self.published.get(&endpoint.key) == Some(&up) {
                continue;
            }
            let status = endpoint.health.probe_status();
            let record = VerdictRecord {
                up,
                since_ms: unix_ms(status.state_since),
                last_error: if up { None } else { status.last_error },
                rtt_us: endpoint.health.rtt_us(),
            };
            let op = TxnOp::Put {
                key: self.verdict_key(&endpoint.key),
                value: serde_json::to_vec(&record).unwrap_or_default(),
                lease: self.lease,
            };
            writes.push((op, endpoint.key.clone(), Some(up)));
        }
        for key in self.published.keys() {
            if !probed.contains(key.as_str()) {
                let op = TxnOp::Delete {
                    key: self.verdict_key(key),
                };
                writes.push((op, key.clone(), None));
            }
        }
        for batch in writes.chunks(MAX_TXN_OPS) {
            let ops: Vec<TxnOp> = batch.iter().map(|(op, _, _)| op.clone()).collect();
            self.cluster.etcd.txn(&[], &ops, &[]).await?;
            self.cluster.count_write(ops.len());
            for (_, key, up) in batch {
                match up {
                    Some(up) => self.published.insert(key.clone(), *up),
                    None => self.published.remove(key),
                };
            }
        }
        Ok(!writes.is_empty())
    }

    fn verdict_key(&self, endpoint: &str) -> String {
        self.cluster.key(&format!(
            "verdicts/{}/{endpoint}",
            self.cluster.settings.name
        ))
    }

    /// Writes the operator changes made while the store was unreachable;
    /// a newer change to the same slot made elsewhere wins.
    async fn flush_pending(&mut self) -> Result<(), EtcdError> {
        for change in self.control.operator.pending() {
            let key = self.cluster.key(&format!("operator/{}", change.slot()));
            let stored = self.cluster.etcd.get(&key).await?;
            let mod_revision = stored.as_ref().map_or(0, |kv| kv.mod_revision);
            if let Some(theirs) = stored
                .as_ref()
                .and_then(|kv| Change::parse(&change.slot(), &kv.value).ok())
                && theirs.at_ms >= change.at_ms
            {
                self.control
                    .operator
                    .handle_stored(theirs, &self.control.health);
                continue;
            }
            if self
                .cluster
                .etcd
                .put_if_unchanged(&key, &change.to_bytes(), mod_revision)
                .await?
            {
                self.cluster.count_write(1);
                self.control.operator.mark_stored(&change);
                tracing::info!(slot = %change.slot(), "operator change made while the store was unreachable is now stored");
            }
        }
        Ok(())
    }

    /// Reads the whole prefix and rebuilds the view from it, and what this
    /// session's lease holds of this member's own keys (what is published).
    async fn full_read(&mut self) -> Result<(), EtcdError> {
        let prefix = format!("{}/", self.cluster.settings.prefix);
        let range = self.cluster.etcd.range_prefix(&prefix).await?;
        self.revision = range.revision;
        {
            let mut view = self.cluster.lock_view();
            view.members.clear();
            view.verdicts.clear();
        }
        self.published.clear();
        self.record = None;
        let mut slots = BTreeSet::new();
        for kv in range.kvs {
            if kv.lease == self.lease {
                self.adopt_own(&kv.key, &kv.value);
            }
            if let Some(slot) = kv
                .key
                .strip_prefix(&prefix)
                .and_then(|k| k.strip_prefix("operator/"))
            {
                slots.insert(slot.to_string());
            }
            self.handle_put(&kv.key, &kv.value);
        }
        self.control
            .operator
            .retain_stored(&slots, &self.control.health);
        Ok(())
    }

    /// Takes a key of this session's lease as published: this member's
    /// record, or its verdict on an endpoint. A value that does not parse
    /// is not taken, so it is written again.
    fn adopt_own(&mut self, key: &str, value: &[u8]) {
        if key
            == self
                .cluster
                .key(&format!("members/{}", self.cluster.settings.name))
        {
            self.record = serde_json::from_slice(value).ok();
        } else if let Some(endpoint) = key.strip_prefix(&self.verdict_key(""))
            && let Ok(record) = serde_json::from_slice::<VerdictRecord>(value)
        {
            self.published.insert(endpoint.to_string(), record.up);
        }
    }

    fn handle_events(&mut self, events: Vec<WatchEvent>) {
        for event in events {
            self.revision = self.revision.max(event.revision());
            match event {
                WatchEvent::Put(kv) => self.handle_put(&kv.key, &kv.value),
                WatchEvent::Delete { key, .. } => self.handle_delete(&key),
            }
        }
    }

    /// Takes one stored value; one that does not parse is logged and
    /// ignored (the last good value for that key stays in force).
    fn handle_put(&mut self, key: &str, value: &[u8]) {
        let prefix = format!("{}/", self.cluster.settings.prefix);
        let Some(rest) = key.strip_prefix(&prefix) else {
            return;
        };
        let garbage = |what: &str, err: String| {
            tracing::error!(key, error = %err, "ignoring a {what} in the cluster store that does not parse (the last good value stays in force)");
        };
        if let Some(name) = rest.strip_prefix("members/") {
            match serde_json::from_slice::<MemberRecord>(value) {
                Ok(record) if record.name == name => {
                    self.cluster
                        .lock_view()
                        .members
                        .insert(name.to_string(), record);
                }
                Ok(record) => garbage("member record", format!("names {:?}", record.name)),
                Err(err) => garbage("member record", err.to_string()),
            }
        } else if let Some(rest) = rest.strip_prefix("verdicts/") {
            let Some((member, endpoint)) = rest.split_once('/') else {
                garbage("verdict", "key has no endpoint".into());
                return;
            };
            match serde_json::from_slice::<VerdictRecord>(value) {
                Ok(record) => {
                    self.cluster
                        .lock_view()
                        .verdicts
                        .entry(member.to_string())
                        .or_default()
                        .insert(endpoint.to_string(), record);
                }
                Err(err) => garbage("verdict", err.to_string()),
            }
        } else if let Some(slot) = rest.strip_prefix("operator/") {
            match Change::parse(slot, value) {
                Ok(change) => {
                    let event = change.event();
                    let received = self
                        .control
                        .operator
                        .handle_stored(change, &self.control.health);
                    if received == crate::operator::Received::Applied {
                        self.control.events.record(event);
                    }
                }
                Err(err) => garbage("operator change", err),
            }
        } else if rest.starts_with("config/") {
            // Published configuration versions: `fleet::member` follows them.
        } else {
            tracing::warn!(key, "ignoring an unknown key in the cluster prefix");
        }
    }

    fn handle_delete(&mut self, key: &str) {
        let prefix = format!("{}/", self.cluster.settings.prefix);
        let Some(rest) = key.strip_prefix(&prefix) else {
            return;
        };
        let mut view = self.cluster.lock_view();
        if let Some(name) = rest.strip_prefix("members/") {
            if view.members.remove(name).is_some() {
                tracing::info!(member = name, "cluster member left (lease ended)");
            }
            if name == self.cluster.settings.name {
                // Our own record vanished (a revoked lease, an operator's
                // delete): publish it again on the next round.
                self.record = None;
            }
        } else if let Some(rest) = rest.strip_prefix("verdicts/")
            && let Some((member, endpoint)) = rest.split_once('/')
        {
            if let Some(verdicts) = view.verdicts.get_mut(member) {
                verdicts.remove(endpoint);
                if verdicts.is_empty() {
                    view.verdicts.remove(member);
                }
            }
            if member == self.cluster.settings.name {
                self.published.remove(endpoint);
            }
        }
    }

    /// Sets every endpoint's verdict from the quorum over live members.
    fn apply_quorum(&self) {
        let plan = self.control.snapshot().probes.clone();
        let verdicts: Vec<_> = {
            let view = self.cluster.lock_view();
            plan.endpoints
                .iter()
                .map(|endpoint| {
                    let verdict = quorum_verdict(
                        endpoint,
                        &self.cluster.settings.name,
                        self.cluster.settings.down_quorum,
                        &view,
                    );
                    (endpoint.health.id(), verdict)
                })
                .collect()
        };
        self.control.health.set_quorum_verdicts(verdicts);
    }
}

/// What this member publishes about itself.
fn member_record(cluster: &Cluster, control: &Control) -> MemberRecord {
    let (listen, api) = cluster
        .addresses
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let (config_digest, last_reload) = control.config_identity();
    MemberRecord {
        name: cluster.settings.name.clone(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        listen,
        api,
        config_digest,
        last_reload_ms: unix_ms(last_reload),
        started_ms: unix_ms(cluster.started),
        config: control.fleet.as_ref().map(|fleet| fleet.member_config()),
    }
}

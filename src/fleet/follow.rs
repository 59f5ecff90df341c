//! A member following the published configuration versions: read them,
//! build the newest in the background and swap it in through [`Control`],
//! watch for more, and reconnect with a backoff when etcd goes away.
//!
//! The part of the fleet that runs beside the control plane; the member's
//! fleet state ([`Fleet`]) that [`Control`] and the API read stays in
//! `member`, below it.

use std::sync::Arc;
use std::time::Duration;

use super::bundle::Bundle;
use super::member::{Candidate, FIRST_BACKOFF, Fleet, MAX_BACKOFF, RETRY_FAILED};
use super::store::VersionMeta;
use crate::control::Control;
use crate::snapshot::BuildErrors;

/// Follows the published versions forever (reconnecting with a backoff
/// capped at [`MAX_BACKOFF`]); the version in service keeps serving
/// whatever etcd does.
pub async fn run(control: Arc<Control>, fleet: Arc<Fleet>) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        if let Err(err) = follow(&fleet, &control, &mut backoff).await {
            let first = fleet.lock().store_connected || backoff == FIRST_BACKOFF;
            fleet.set_connected(false, Some(err.clone()));
            if first {
                tracing::warn!(error = %err, retry_in = ?backoff, "configuration versions unreachable in etcd: the version in service keeps serving");
            } else {
                tracing::debug!(error = %err, retry_in = ?backoff, "configuration versions still unreachable");
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One connection's worth of following the versions: read them, apply
/// the newest, watch for more.
async fn follow(
    fleet: &Fleet,
    control: &Arc<Control>,
    backoff: &mut Duration,
) -> Result<(), String> {
    let (versions, revision) = fleet.store.versions().await.map_err(|e| e.to_string())?;
    let (newest, _) = fleet.store.latest().await.map_err(|e| e.to_string())?;
    fleet.set_versions(versions, newest);
    fleet.set_connected(true, None);
    *backoff = FIRST_BACKOFF;
    if let Some(version) = fleet.wants(newest, true)
        && let Some((meta, bundle)) = fleet.fetch(version).await?
    {
        apply(fleet, control, meta, bundle).await;
    }
    let mut watch = fleet
        .store
        .etcd()
        .watch_prefix(&fleet.store.config_prefix(), revision + 1)
        .await
        .map_err(|e| e.to_string())?;
    let mut retry = tokio::time::interval(RETRY_FAILED);
    retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    retry.tick().await;
    // A bundle seen in the watch, kept until `latest` names it.
    let mut arrived: Option<(u64, Bundle)> = None;
    loop {
        let retrying = tokio::select! {
            batch = watch.next() => {
                let events = batch.map_err(|e| e.to_string())?;
                for event in events {
                    fleet.handle_event(event, &mut arrived);
                }
                false
            }
            _ = retry.tick() => true,
        };
        let newest = fleet.lock().newest;
        let Some(version) = fleet.wants(newest, retrying) else {
            continue;
        };
        let bundle = match arrived.take() {
            Some((number, bundle)) if number == version => Some(bundle),
            _ => None,
        };
        let meta = fleet.lock().versions.get(&version).cloned();
        match (meta, bundle) {
            (Some(meta), Some(bundle)) => apply(fleet, control, meta, bundle).await,
            _ => {
                if let Some((meta, bundle)) = fleet.fetch(version).await? {
                    apply(fleet, control, meta, bundle).await;
                }
            }
        }
    }
}

/// Builds `meta`'s version and swaps it in; on failure the version in
/// service stays.
async fn apply(fleet: &Fleet, control: &Arc<Control>, meta: VersionMeta, bundle: Bundle) {
    let version = meta.version;
    let candidate = Candidate {
        version: Some((meta, bundle)),
        from: "etcd",
    };
    let (source, digest) = match fleet.prepare(&candidate) {
        Ok(prepared) => prepared,
        Err(err) => {
            fleet.failed(version, vec![err.to_string()]);
            return;
        }
    };
    tracing::info!(version, "building configuration version {version}");
    let builder = control.clone();
    let built =
        tokio::task::spawn_blocking(move || builder.apply_source(source, digest, "publish")).await;
    match built {
        Ok(Ok(_)) => fleet.now_serving(&candidate),
        Ok(Err(BuildErrors(errors))) => {
            fleet.failed(version, errors.iter().map(ToString::to_string).collect());
        }
        Err(err) => fleet.failed(version, vec![format!("build task failed: {err}")]),
    }
}

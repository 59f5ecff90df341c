//! Operator state: the overrides (endpoint and pool: up, down, drain) and
//! runtime weights set through the admin API, with who made each change
//! and when.
//!
//! Owns the current value per subject, the list of recent changes, and
//! their file in `[server] state_dir` (written atomically: a temporary file,
//! fsync, rename), so a restart keeps a drain. Applies values to the
//! [`HealthTable`]; never touches the query path directly. In a cluster,
//! `cluster` carries changes to and from etcd: a change made here while the
//! store is unreachable stays `pending` until it is written there.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::health::{HealthTable, Override};

/// Recent changes kept for `/status`.
const RECENT_CHANGES: usize = 50;
/// The state file's name inside `state_dir`.
pub const STATE_FILE: &str = "operator-state.json";

/// What a change is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Subject {
    /// One endpoint, `pool/target`.
    Endpoint(String),
    /// Every endpoint of a pool.
    Pool(String),
}

/// The value a change sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Setting {
    /// An override (`none` clears it).
    Override(OverrideValue),
    /// An endpoint's weight (`None`: back to the configured one).
    Weight(Option<u32>),
    /// A pool's weight factor in percent (`None`: 100).
    WeightPercent(Option<u8>),
}

/// [`Override`] as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OverrideValue {
    /// Follow the probes.
    None,
    /// Force up.
    ForceUp,
    /// Force down.
    ForceDown,
    /// Drain.
    Drain,
}

impl From<Override> for OverrideValue {
    fn from(value: Override) -> Self {
        match value {
            Override::None => OverrideValue::None,
            Override::ForceUp => OverrideValue::ForceUp,
            Override::ForceDown => OverrideValue::ForceDown,
            Override::Drain => OverrideValue::Drain,
        }
    }
}

impl From<OverrideValue> for Override {
    fn from(value: OverrideValue) -> Self {
        match value {
            OverrideValue::None => Override::None,
            OverrideValue::ForceUp => Override::ForceUp,
            OverrideValue::ForceDown => Override::ForceDown,
            OverrideValue::Drain => Override::Drain,
        }
    }
}

/// One change by an operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Change {
    /// What it is about.
    pub subject: Subject,
    /// What it sets.
    pub setting: Setting,
    /// When it was made, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// The member (or `standalone`) whose API took it.
    pub member: String,
    /// Which credential made it: `api_token` (configured), `token_file`
    /// (the one `serve` generated), or `open` (no token required).
    pub token: String,
}

/// Where the `kind` ("override" or "weight") setting of `subject` is kept:
/// `override/endpoint/eu/192.0.2.1`, `weight/pool/eu`.
fn slot_of(kind: &str, subject: &Subject) -> String {
    match subject {
        Subject::Endpoint(key) => format!("{kind}/endpoint/{key}"),
        Subject::Pool(pool) => format!("{kind}/pool/{pool}"),
    }
}

impl Change {
    /// The key naming this change's slot (one current value per slot):
    /// `override/endpoint/eu/192.0.2.10`, `weight/pool/eu`, ….
    pub fn slot(&self) -> String {
        let kind = match self.setting {
            Setting::Override(_) => "override",
            Setting::Weight(_) | Setting::WeightPercent(_) => "weight",
        };
        slot_of(kind, &self.subject)
    }

    /// Parses a change stored under `slot`; the slot must match its content.
    ///
    /// # Errors
    /// The bytes are not a change, or a change for another slot.
    pub fn parse(slot: &str, bytes: &[u8]) -> Result<Change, String> {
        let change: Change = serde_json::from_slice(bytes).map_err(|err| err.to_string())?;
        let valid = match (&change.subject, change.setting) {
            (Subject::Endpoint(_), Setting::WeightPercent(_)) => false,
            (Subject::Pool(_), Setting::Weight(_)) => false,
            (_, Setting::WeightPercent(Some(p))) => p <= 100,
            _ => true,
        };
        if !valid {
            return Err("setting does not fit its subject".into());
        }
        if change.slot() != slot {
            return Err(format!("stored under {slot} but is for {}", change.slot()));
        }
        Ok(change)
    }

    /// The change as stored (JSON).
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// A change made now.
    pub fn now(subject: Subject, setting: Setting, member: &str, token: &str) -> Change {
        Change {
            subject,
            setting,
            at_ms: unix_ms(SystemTime::now()),
            member: member.to_string(),
            token: token.to_string(),
        }
    }

    /// Whether this change leaves nothing in force (an undo).
    pub fn is_clear(&self) -> bool {
        matches!(
            self.setting,
            Setting::Override(OverrideValue::None)
                | Setting::Weight(None)
                | Setting::WeightPercent(None)
        )
    }
}

/// A slot's current change and whether the cluster store has it yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The change in force.
    pub change: Change,
    /// Made here while the store was unreachable; not written there yet.
    #[serde(default)]
    pub pending: bool,
}

/// What [`OperatorState::handle_stored`] did with a change read from the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// Applied (new, or newer than ours).
    Applied,
    /// Already in force.
    Unchanged,
    /// Older than a pending change made here, which will replace it.
    Older,
}

/// The file `state_dir` keeps.
#[derive(Debug, Default, Serialize, Deserialize)]
struct StateFile {
    /// Current change per slot.
    entries: Vec<Entry>,
}

/// Operator state of this instance (see the module doc).
#[derive(Debug, Default)]
pub struct OperatorState {
    inner: Mutex<Inner>,
    /// Where the state is kept, once `serve` restored it; unset: in memory
    /// only (`check`, offline `explain`, tests).
    file: OnceLock<PathBuf>,
}

#[derive(Debug, Default)]
struct Inner {
    current: BTreeMap<String, Entry>,
    recent: VecDeque<Change>,
}

impl OperatorState {
    /// Restores the state kept in `dir` and keeps it there from now on
    /// (`serve` only: `check` and offline `explain` show the files alone).
    /// A missing file is an empty state; an unreadable one is reported and
    /// treated as empty, so a damaged file never stops DNS. Returns the
    /// warning, if any.
    pub fn restore(&self, dir: &Path, health: &HealthTable) -> Option<String> {
        let file = dir.join(STATE_FILE);
        let mut warning = None;
        match std::fs::read(&file) {
            Ok(bytes) => match serde_json::from_slice::<StateFile>(&bytes) {
                Ok(state) => {
                    let mut inner = self.lock();
                    for entry in state.entries {
                        inner.current.insert(entry.change.slot(), entry);
                    }
                }
                Err(err) => warning = Some(format!("{}: {err}; starting empty", file.display())),
            },
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => warning = Some(format!("{}: {err}; starting empty", file.display())),
        }
        // Set once: a second restore keeps the first file.
        let _ = self.file.set(file);
        self.apply_all(health);
        warning
    }

    /// Makes a change here: applied to `health` at once and kept; `pending`
    /// when it still has to reach the cluster store.
    pub fn set_local(&self, change: Change, pending: bool, health: &HealthTable) {
        apply(&change, health);
        log_change(&change, "operator change");
        let mut inner = self.lock();
        inner.push_recent(change.clone());
        inner
            .current
            .insert(change.slot(), Entry { change, pending });
        self.save(&inner);
    }

    /// Takes a change read from the cluster store. A pending change of
    /// ours for the same slot wins when it is newer; otherwise the store's
    /// value replaces ours (and the log says when it overrode a pending one).
    pub fn handle_stored(&self, change: Change, health: &HealthTable) -> Received {
        let slot = change.slot();
        let mut inner = self.lock();
        match inner.current.get(&slot) {
            Some(entry) if entry.change == change => {
                if entry.pending {
                    // Our pending change made it into the store.
                    if let Some(entry) = inner.current.get_mut(&slot) {
                        entry.pending = false;
                    }
                    self.save(&inner);
                }
                return Received::Unchanged;
            }
            Some(entry) if entry.pending && entry.change.at_ms > change.at_ms => {
                return Received::Older;
            }
            Some(entry) if entry.pending => {
                tracing::warn!(
                    slot,
                    ours_at_ms = entry.change.at_ms,
                    theirs_at_ms = change.at_ms,
                    by = %change.member,
                    "a newer change made elsewhere wins over the change made here while the store was unreachable"
                );
            }
            _ => {}
        }
        apply(&change, health);
        log_change(&change, "operator change from the cluster");
        inner.push_recent(change.clone());
        inner.current.insert(
            slot,
            Entry {
                change,
                pending: false,
            },
        );
        self.save(&inner);
        Received::Applied
    }

    /// After a full read of the store: slots the store does not have and
    /// that are not pending here are dropped (and cleared in `health`).
    pub fn retain_stored(&self, stored: &std::collections::BTreeSet<String>, health: &HealthTable) {
        let mut inner = self.lock();
        let gone: Vec<String> = inner
            .current
            .iter()
            .filter(|(slot, entry)| !entry.pending && !stored.contains(*slot))
            .map(|(slot, _)| slot.clone())
            .collect();
        for slot in &gone {
            if let Some(entry) = inner.current.remove(slot) {
                apply(&cleared(&entry.change), health);
            }
        }
        if !gone.is_empty() {
            self.save(&inner);
        }
    }

    /// Marks a pending change as written to the store.
    pub fn mark_stored(&self, change: &Change) {
        let mut inner = self.lock();
        if let Some(entry) = inner.current.get_mut(&change.slot())
            && entry.change == *change
            && entry.pending
        {
            entry.pending = false;
            self.save(&inner);
        }
    }

    /// Changes made here that the store does not have yet.
    pub fn pending(&self) -> Vec<Change> {
        self.lock()
            .current
            .values()
            .filter(|e| e.pending)
            .map(|e| e.change.clone())
            .collect()
    }

    /// Applies everything in force to `health` (at start and after each
    /// reload, for records that are new).
    pub fn apply_all(&self, health: &HealthTable) {
        for entry in self.lock().current.values() {
            apply(&entry.change, health);
        }
    }

    /// The changes in force (undos left out), by slot.
    pub fn in_force(&self) -> Vec<Entry> {
        self.lock()
            .current
            .values()
            .filter(|e| !e.change.is_clear())
            .cloned()
            .collect()
    }

    /// When the override slots of endpoint `key` of pool `pool` last
    /// changed (set or cleared), in Unix milliseconds: its own, its pool's.
    pub fn override_changed_ms(&self, key: &str, pool: &str) -> (Option<u64>, Option<u64>) {
        let inner = self.lock();
        let at = |subject| {
            let slot = slot_of("override", &subject);
            inner.current.get(&slot).map(|e| e.change.at_ms)
        };
        (
            at(Subject::Endpoint(key.to_string())),
            at(Subject::Pool(pool.to_string())),
        )
    }

    /// The last changes made or received, newest first.
    pub fn recent(&self) -> Vec<Change> {
        self.lock().recent.iter().rev().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Plain data; a panic while it was held leaves it usable.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Writes the state file atomically; a failure is logged (DNS goes on).
    fn save(&self, inner: &Inner) {
        let Some(file) = self.file.get() else {
            return;
        };
        let state = StateFile {
            entries: inner.current.values().cloned().collect(),
        };
        let bytes = serde_json::to_vec_pretty(&state).unwrap_or_default();
        if let Err(err) = write_atomically(file, &bytes) {
            tracing::error!(file = %file.display(), error = %err, "cannot save the operator state");
        }
    }
}

impl Inner {
    fn push_recent(&mut self, change: Change) {
        if self.recent.len() == RECENT_CHANGES {
            self.recent.pop_front();
        }
        self.recent.push_back(change);
    }
}

impl Change {
    /// The event this change is (events and alerts): a loss of capacity
    /// (force-down, drain, weight 0) is a warning.
    pub fn event(&self) -> crate::events::Event {
        use crate::events::{Event, EventKind};
        let subject = match &self.subject {
            Subject::Endpoint(key) => key.clone(),
            Subject::Pool(pool) => format!("pool {pool}"),
        };
        let (kind, text, loss) = match self.setting {
            Setting::Override(value) => {
                let value = Override::from(value);
                (
                    EventKind::Override,
                    format!("override {subject}: {}", value.as_str()),
                    matches!(value, Override::ForceDown | Override::Drain),
                )
            }
            Setting::Weight(weight) => (
                EventKind::Weight,
                format!(
                    "weight {subject}: {}",
                    weight.map_or("none".into(), |w| w.to_string())
                ),
                weight == Some(0),
            ),
            Setting::WeightPercent(percent) => (
                EventKind::Weight,
                format!(
                    "weight_percent {subject}: {}",
                    percent.map_or("none".into(), |p| p.to_string())
                ),
                percent == Some(0),
            ),
        };
        let text = format!("{text} (by {}, {})", self.member, self.token);
        let event = Event::new(kind, subject, text);
        if loss { event.warning() } else { event }
    }
}

/// Sets the change's value on the health records.
fn apply(change: &Change, health: &HealthTable) {
    match (&change.subject, change.setting) {
        // An endpoint this member does not serve (yet) gets it on the
        // reload that adds it (`apply_all`).
        (Subject::Endpoint(key), Setting::Override(value)) => {
            health.set_admin_override(key, value.into());
        }
        (Subject::Pool(pool), Setting::Override(value)) => {
            health.set_pool_override(pool, value.into());
        }
        (Subject::Endpoint(key), Setting::Weight(weight)) => {
            health.set_operator_weight(key, weight);
        }
        (Subject::Pool(pool), Setting::WeightPercent(percent)) => {
            health.set_pool_weight_percent(pool, percent);
        }
        // `Change::parse` and the API never make these.
        (Subject::Endpoint(_), Setting::WeightPercent(_))
        | (Subject::Pool(_), Setting::Weight(_)) => {}
    }
}

/// The undo of `change`.
fn cleared(change: &Change) -> Change {
    let setting = match change.setting {
        Setting::Override(_) => Setting::Override(OverrideValue::None),
        Setting::Weight(_) => Setting::Weight(None),
        Setting::WeightPercent(_) => Setting::WeightPercent(None),
    };
    Change {
        setting,
        ..change.clone()
    }
}

fn log_change(change: &Change, message: &'static str) {
    tracing::info!(
        slot = %change.slot(),
        setting = ?change.setting,
        member = %change.member,
        token = %change.token,
        "{message}"
    );
}

/// Writes `bytes` to `path` so that a crash leaves the old or the new file,
/// never a torn one: a temporary file beside it, fsync, rename, fsync of
/// the directory.
///
/// # Errors
/// Any I/O error (the old file is then untouched).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("tmp");
    {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(setting: Setting, at_ms: u64) -> Change {
        Change {
            subject: Subject::Endpoint("eu/192.0.2.1".into()),
            setting,
            at_ms,
            member: "ns1".into(),
            token: "open".into(),
        }
    }

    #[test]
    fn changes_round_trip_and_garbage_is_refused() {
        let c = change(Setting::Override(OverrideValue::Drain), 5);
        assert_eq!(c.slot(), "override/endpoint/eu/192.0.2.1");
        assert_eq!(Change::parse(&c.slot(), &c.to_bytes()), Ok(c.clone()));
        assert!(Change::parse("override/endpoint/eu/192.0.2.2", &c.to_bytes()).is_err());
        assert!(Change::parse(&c.slot(), b"\xff garbage").is_err());
        let bad = Change {
            subject: Subject::Pool("eu".into()),
            setting: Setting::Weight(Some(3)),
            ..c
        };
        assert!(Change::parse(&bad.slot(), &bad.to_bytes()).is_err());
    }

    #[test]
    fn pending_change_wins_only_when_newer() {
        let health = HealthTable::default();
        let (_, record) = health.register("eu/192.0.2.1", true);
        let state = OperatorState::default();
        state.set_local(
            change(Setting::Override(OverrideValue::Drain), 10),
            true,
            &health,
        );
        assert!(!record.is_usable());
        let older = change(Setting::Override(OverrideValue::None), 5);
        assert_eq!(state.handle_stored(older, &health), Received::Older);
        assert!(!record.is_usable());
        assert_eq!(state.pending().len(), 1);
        let newer = change(Setting::Override(OverrideValue::None), 20);
        assert_eq!(state.handle_stored(newer, &health), Received::Applied);
        assert!(record.is_usable());
        assert!(state.pending().is_empty());
    }

    #[test]
    fn state_survives_a_restart() {
        let dir = std::env::temp_dir().join(format!("gslb-operator-{}", std::process::id()));
        let health = HealthTable::default();
        let state = OperatorState::default();
        assert_eq!(state.restore(&dir, &health), None);
        state.set_local(change(Setting::Weight(Some(7)), 1), false, &health);
        let (_, record) = health.register("eu/192.0.2.1", true);
        let again = OperatorState::default();
        assert_eq!(again.restore(&dir, &health), None);
        assert_eq!(again.in_force().len(), 1);
        assert_eq!(record.operator_weight(), Some(7));
        std::fs::write(dir.join(STATE_FILE), b"not json").unwrap();
        assert!(OperatorState::default().restore(&dir, &health).is_some());
        let _ = std::fs::remove_dir_all(&dir);
    }
}

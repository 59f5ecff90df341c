//! Secondary zones: one task per zone fetches it from its primaries by
//! IXFR (or AXFR when there is no copy yet or the difference does not
//! apply), at start, on NOTIFY and on the SOA REFRESH/RETRY timers, and
//! stores each good copy under `state_dir` before asking for a snapshot
//! rebuild, which serves it. After EXPIRE without a successful refresh the
//! rebuild serves SERVFAIL for the zone (RFC 1035 §4.3.5).
//!
//! A transfer that fails in any way (TSIG, records outside the zone, no
//! SOA, a cut connection, a zone that does not build) stores nothing: the
//! previous copy keeps serving, and the failure is logged and shown in
//! `/status`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::Message;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::hub::{CurrentSnapshot, Hub, Reload, event};
use super::message::{MessageBuilder, parse_request, rcode};
use super::state::{SecondaryMeta, StateDir};
use super::tsig::{self, ResponseVerifier, TsigKey};
use super::{SecondarySpec, serial_newer, unix_now};
use crate::wire::rtype;
use crate::zone::{LocatedRecord, WireName, Zone};

/// How long to wait for a primary to accept, answer or send the next message.
const NETWORK_TIMEOUT: Duration = Duration::from_secs(15);
/// First retry delay while the zone has never been transferred.
const FIRST_RETRY: Duration = Duration::from_secs(5);
/// Longest retry delay while the zone has never been transferred.
const MAX_FIRST_RETRY: Duration = Duration::from_secs(300);
/// Shortest time between two refreshes (NOTIFY floods).
const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// Starts the refresh task of one secondary zone.
pub(super) fn spawn(
    hub: Arc<Hub>,
    origin: WireName,
    origin_text: String,
    spec: SecondarySpec,
    trigger: Arc<tokio::sync::Notify>,
    snapshot: CurrentSnapshot,
    reload: Reload,
) {
    let task = Secondary {
        hub,
        origin,
        origin_text,
        spec,
        trigger,
        snapshot,
        reload,
    };
    tokio::spawn(task.run());
}

struct Secondary {
    hub: Arc<Hub>,
    origin: WireName,
    origin_text: String,
    spec: SecondarySpec,
    trigger: Arc<tokio::sync::Notify>,
    snapshot: CurrentSnapshot,
    reload: Reload,
}

/// What a refresh found.
enum Fetched {
    /// The primary has no newer serial; its SOA.
    UpToDate(u32),
    /// A new copy of the zone.
    NewCopy {
        records: Vec<Record>,
        serial: u32,
        kind: &'static str,
        carried: usize,
    },
}

impl Secondary {
    async fn run(self) {
        let origin_name = match Name::from_ascii(&self.origin_text) {
            Ok(name) => name,
            Err(_) => return,
        };
        let mut meta = self
            .state_dir()
            .and_then(|s| s.load_secondary(&self.origin_text).ok().flatten())
            .map(|(_, meta)| meta);
        let mut next_attempt = unix_now();
        let mut first_retry = FIRST_RETRY;
        let mut expired_reported = meta.is_some_and(|m| m.expired(unix_now()));
        loop {
            if !self.hub.secondary_active(&self.origin) {
                return;
            }
            let now = unix_now();
            let expire_at = meta
                .filter(|_| !expired_reported)
                .map(|m| m.refreshed_unix.saturating_add(u64::from(m.expire_secs)));
            let wake_at = expire_at.map_or(next_attempt, |e| e.min(next_attempt));
            let triggered = if wake_at > now {
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(wake_at - now)) => false,
                    () = self.trigger.notified() => true,
                }
            } else {
                false
            };
            let now = unix_now();
            if let Some(m) = meta
                && !expired_reported
                && m.expired(now)
            {
                expired_reported = true;
                tracing::warn!(zone = %self.origin_text, serial = m.serial, "secondary zone expired: no refresh within SOA EXPIRE, answering SERVFAIL");
                (self.reload)();
            }
            if !triggered && now < next_attempt {
                continue;
            }
            let Some(state_dir) = self.state_dir() else {
                return;
            };
            let spec = self.current_spec().unwrap_or_else(|| self.spec.clone());
            let current = state_dir
                .load_secondary(&self.origin_text)
                .ok()
                .flatten()
                .filter(|(_, m)| !m.expired(now));
            match self.refresh(&spec, &origin_name, current).await {
                Ok((primary, Fetched::UpToDate(serial))) => {
                    let Some(mut m) = meta else {
                        continue;
                    };
                    m.refreshed_unix = unix_now();
                    if let Err(err) = state_dir.store_meta(&self.origin_text, &m) {
                        tracing::error!(zone = %self.origin_text, "cannot store the secondary zone's refresh time: {err}");
                    }
                    meta = Some(m);
                    tracing::debug!(zone = %self.origin_text, %primary, serial, "secondary zone up to date");
                    self.hub.record_in(
                        &self.origin_text,
                        // Counted apart from transfers that brought a copy.
                        event(primary, "SOA", 1, "up_to_date"),
                        Some(m.serial),
                    );
                    if expired_reported {
                        expired_reported = false;
                        (self.reload)();
                    }
                    next_attempt = unix_now() + u64::from(m.refresh_secs.max(1));
                }
                Ok((
                    primary,
                    Fetched::NewCopy {
                        records,
                        serial,
                        kind,
                        carried,
                    },
                )) => {
                    let new_meta = soa_meta(&records, serial);
                    match state_dir.store_secondary(&self.origin_text, &records, &new_meta) {
                        Ok(()) => {
                            tracing::info!(zone = %self.origin_text, %primary, kind, serial, records = records.len(), carried, "transfer in");
                            self.hub.record_in(
                                &self.origin_text,
                                event(primary, kind, carried, "ok"),
                                Some(serial),
                            );
                            meta = Some(new_meta);
                            expired_reported = false;
                            (self.reload)();
                        }
                        Err(err) => {
                            tracing::error!(zone = %self.origin_text, "cannot store the transferred zone: {err}");
                            self.hub.record_in(
                                &self.origin_text,
                                event(
                                    primary,
                                    kind,
                                    carried,
                                    format!("error: cannot store: {err}"),
                                ),
                                None,
                            );
                        }
                    }
                    next_attempt = unix_now() + u64::from(new_meta.refresh_secs.max(1));
                }
                Err(failures) => {
                    let retry = match meta {
                        Some(m) => Duration::from_secs(u64::from(m.retry_secs.max(1))),
                        None => {
                            let delay = first_retry;
                            first_retry = (first_retry * 2).min(MAX_FIRST_RETRY);
                            delay
                        }
                    };
                    for (primary, reason) in &failures {
                        tracing::warn!(zone = %self.origin_text, %primary, reason = %reason, retry_in_secs = retry.as_secs(), "transfer in failed: the previous copy keeps serving");
                    }
                    if let Some((primary, reason)) = failures.last() {
                        self.hub.record_in(
                            &self.origin_text,
                            event(primary, "AXFR/IXFR", 0, format!("error: {reason}")),
                            None,
                        );
                    }
                    next_attempt = unix_now() + retry.as_secs();
                }
            }
            tokio::time::sleep(MIN_INTERVAL).await;
        }
    }

    fn state_dir(&self) -> Option<StateDir> {
        (self.snapshot)().transfer.state_dir.clone()
    }

    /// The zone's settings in the snapshot in service (primaries may change on reload).
    fn current_spec(&self) -> Option<SecondarySpec> {
        (self.snapshot)()
            .transfer
            .zones
            .get(&self.origin)
            .and_then(|z| z.secondary.clone())
    }

    fn key(&self, spec: &SecondarySpec) -> Result<Option<TsigKey>, String> {
        match &spec.key {
            None => Ok(None),
            Some(name) => (self.snapshot)()
                .transfer
                .keys
                .by_name(name)
                .cloned()
                .map(Some)
                .ok_or_else(|| format!("TSIG key {name:?} is not configured")),
        }
    }

    /// Tries each primary in turn; the first good answer wins.
    async fn refresh(
        &self,
        spec: &SecondarySpec,
        origin: &Name,
        current: Option<(Vec<Record>, SecondaryMeta)>,
    ) -> Result<(SocketAddr, Fetched), Vec<(SocketAddr, String)>> {
        let key = self.key(spec).map_err(|reason| {
            spec.primaries
                .iter()
                .map(|p| (*p, reason.clone()))
                .collect::<Vec<_>>()
        })?;
        let mut failures = Vec::new();
        let mut current = current;
        for &primary in &spec.primaries {
            let have = current
                .as_ref()
                .map(|(records, meta)| (meta.serial, records));
            match fetch(primary, origin, key.as_ref(), have).await {
                Ok(fetched) => return Ok((primary, fetched)),
                Err(FetchError::IxfrUnusable(reason)) => {
                    tracing::info!(zone = %self.origin_text, %primary, reason = %reason, "IXFR answer not usable: falling back to AXFR");
                    match fetch(primary, origin, key.as_ref(), None).await {
                        Ok(fetched) => return Ok((primary, fetched)),
                        Err(err) => failures.push((primary, err.to_string())),
                    }
                    current = None;
                }
                Err(err) => failures.push((primary, err.to_string())),
            }
        }
        Err(failures)
    }
}

/// Timers for a new copy from its SOA.
fn soa_meta(records: &[Record], serial: u32) -> SecondaryMeta {
    let soa = records.iter().find_map(|r| match &r.data {
        RData::SOA(soa) => Some(soa),
        _ => None,
    });
    let positive = |value: Option<i32>, default: u32| {
        value
            .and_then(|v| u32::try_from(v).ok())
            .filter(|v| *v > 0)
            .unwrap_or(default)
    };
    SecondaryMeta {
        serial,
        refreshed_unix: unix_now(),
        refresh_secs: positive(soa.map(|s| s.refresh), 3600),
        retry_secs: positive(soa.map(|s| s.retry), 600),
        expire_secs: positive(soa.map(|s| s.expire), 604_800),
    }
}

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
enum FetchError {
    /// Network trouble or a bad answer: try the next primary.
    #[error("{0}")]
    Failed(String),
    /// The IXFR answer does not apply to our copy: ask for AXFR.
    #[error("{0}")]
    IxfrUnusable(String),
}

fn failed(reason: impl Into<String>) -> FetchError {
    FetchError::Failed(reason.into())
}

/// Where the transfer stream is (RFC 1995 §4, RFC 5936 §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Only the first SOA seen.
    Start,
    /// A full zone: ends at the next SOA.
    Full,
    /// Inside a difference, deleting (after an old SOA).
    Deleting,
    /// Inside a difference, adding (after a new SOA).
    Adding,
    /// The final SOA seen.
    Done,
}

/// One AXFR (no copy) or IXFR (from `have`'s serial) from `primary`.
async fn fetch(
    primary: SocketAddr,
    origin: &Name,
    key: Option<&TsigKey>,
    have: Option<(u32, &Vec<Record>)>,
) -> Result<Fetched, FetchError> {
    let origin_wire = crate::zone::wire_name(origin);
    let qtype = if have.is_some() {
        rtype::IXFR
    } else {
        rtype::AXFR
    };
    let id = super::notify::message_id();
    let mut request =
        MessageBuilder::query(id, 0, &origin_wire, qtype, false).finish(rcode::NOERROR);
    if let Some((serial, _)) = have {
        // RFC 1995 §3: the client's SOA in the authority section.
        request.extend_from_slice(&origin_wire);
        request.extend_from_slice(&rtype::SOA.to_be_bytes());
        request.extend_from_slice(&1u16.to_be_bytes());
        request.extend_from_slice(&0u32.to_be_bytes());
        request.extend_from_slice(&22u16.to_be_bytes());
        request.extend_from_slice(&[0, 0]);
        request.extend_from_slice(&serial.to_be_bytes());
        request.extend_from_slice(&[0; 16]);
        request[9] = 1;
    }
    let mut verifier = key.map(|key| {
        let mac = tsig::sign(key, &mut request, None, false, unix_now(), 0, &[]);
        ResponseVerifier::new(key.clone(), mac)
    });
    let mut stream = tokio::time::timeout(NETWORK_TIMEOUT, TcpStream::connect(primary))
        .await
        .map_err(|_| failed("connect timed out"))?
        .map_err(|e| failed(format!("connect: {e}")))?;
    let mut framed = (request.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&request);
    stream
        .write_all(&framed)
        .await
        .map_err(|e| failed(format!("send: {e}")))?;

    let mut records: Vec<Record> = Vec::new();
    let mut phase = Phase::Start;
    let mut final_serial = 0u32;
    let mut messages = 0usize;
    while phase != Phase::Done {
        let mut len = [0u8; 2];
        read_exact(&mut stream, &mut len).await?;
        let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
        read_exact(&mut stream, &mut body).await?;
        messages += 1;
        let header =
            parse_request(&body).map_err(|e| failed(format!("message {messages}: {e}")))?;
        if header.id != id || header.flags & 0x8000 == 0 {
            return Err(failed("answer does not match the request"));
        }
        if let Some(verifier) = &mut verifier {
            verifier
                .verify(&body, header.tsig_start, unix_now())
                .map_err(|f| failed(format!("TSIG: {f}")))?;
        } else if header.tsig_start.is_some() && header.rcode() != 0 {
            return Err(failed(format!(
                "primary answered rcode {} with a TSIG error (is a key needed?)",
                header.rcode()
            )));
        }
        if header.rcode() != 0 {
            return Err(failed(format!(
                "primary answered rcode {}",
                rcode_name(header.rcode())
            )));
        }
        let message =
            Message::from_vec(&body).map_err(|e| failed(format!("message {messages}: {e}")))?;
        let first_message = messages == 1;
        for record in message.answers {
            if record.dns_class != DNSClass::IN {
                return Err(failed(format!("record {} is not class IN", record.name)));
            }
            if !origin.zone_of(&record.name) {
                return Err(failed(format!(
                    "record {} is outside the zone {origin}",
                    record.name
                )));
            }
            let soa_serial = match &record.data {
                RData::SOA(soa) => Some(soa.serial),
                _ => None,
            };
            if phase == Phase::Done {
                return Err(failed("records after the final SOA"));
            }
            phase = match (phase, soa_serial, records.is_empty()) {
                (_, None, true) => {
                    return Err(failed("the transfer does not start with the zone's SOA"));
                }
                (_, Some(serial), true) => {
                    final_serial = serial;
                    Phase::Start
                }
                (Phase::Start, Some(serial), false)
                    if qtype == rtype::IXFR && serial != final_serial =>
                {
                    Phase::Deleting
                }
                (Phase::Start, Some(_), false) => Phase::Done,
                (Phase::Start, None, false) => Phase::Full,
                (Phase::Full, Some(_), _) => Phase::Done,
                (Phase::Deleting, Some(_), _) => Phase::Adding,
                (Phase::Adding, Some(serial), _) if serial == final_serial => Phase::Done,
                (Phase::Adding, Some(_), _) => Phase::Deleting,
                (other, None, _) => other,
                (Phase::Done, _, _) => Phase::Done,
            };
            records.push(record);
        }
        if first_message && phase == Phase::Start && records.len() == 1 && qtype == rtype::IXFR {
            // RFC 1995 §4: a lone SOA: nothing newer (or a newer serial to fetch).
            phase = Phase::Done;
        }
        if records.is_empty() {
            return Err(failed("empty answer"));
        }
    }
    if let Some(verifier) = &verifier
        && !verifier.complete()
    {
        return Err(failed("TSIG: the last message was not signed"));
    }
    if records.len() == 1 {
        let serial = final_serial;
        return match have {
            Some((have_serial, _)) if !serial_newer(serial, have_serial) => {
                Ok(Fetched::UpToDate(serial))
            }
            _ => Err(FetchError::IxfrUnusable(format!(
                "lone SOA with newer serial {serial}"
            ))),
        };
    }
    let carried = records.len();
    let is_incremental = qtype == rtype::IXFR
        && matches!(
            records.get(1).map(|r| r.record_type()),
            Some(RecordType::SOA)
        )
        && records.len() > 2;
    let (zone_records, kind) = if is_incremental {
        let Some((_, current)) = have else {
            return Err(failed("incremental answer to an AXFR"));
        };
        let applied = apply_differences(current, &records).map_err(FetchError::IxfrUnusable)?;
        (applied, "IXFR")
    } else {
        records.pop();
        (
            records,
            if qtype == rtype::IXFR {
                "IXFR-as-AXFR"
            } else {
                "AXFR"
            },
        )
    };
    // The copy must make a valid zone before it replaces the old one.
    let located: Vec<LocatedRecord> = zone_records
        .iter()
        .cloned()
        .enumerate()
        .map(|(index, record)| LocatedRecord {
            record,
            file: std::path::PathBuf::from(format!("transfer from {primary}")),
            line: index + 1,
        })
        .collect();
    if let Err(errors) = Zone::build(origin, std::path::Path::new("transfer"), located) {
        let first = errors.first().map(ToString::to_string).unwrap_or_default();
        return Err(failed(format!(
            "transferred zone is not valid ({} problems; first: {first})",
            errors.len()
        )));
    }
    Ok(Fetched::NewCopy {
        records: zone_records,
        serial: final_serial,
        kind,
        carried,
    })
}

async fn read_exact(stream: &mut TcpStream, buffer: &mut [u8]) -> Result<(), FetchError> {
    match tokio::time::timeout(NETWORK_TIMEOUT, stream.read_exact(buffer)).await {
        Err(_) => Err(failed("timed out waiting for the primary")),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            Err(failed("connection closed mid-transfer"))
        }
        Ok(Err(e)) => Err(failed(format!("receive: {e}"))),
        Ok(Ok(_)) => Ok(()),
    }
}

fn rcode_name(code: u8) -> String {
    match code {
        rcode::FORMERR => "FORMERR".into(),
        rcode::SERVFAIL => "SERVFAIL".into(),
        rcode::NOTIMP => "NOTIMP".into(),
        rcode::REFUSED => "REFUSED".into(),
        rcode::NOTAUTH => "NOTAUTH".into(),
        other => other.to_string(),
    }
}

/// Applies the differences of an IXFR answer (`records`: final SOA,
/// then old SOA, deletions, new SOA, additions, …, final SOA) to `current`.
fn apply_differences(current: &[Record], records: &[Record]) -> Result<Vec<Record>, String> {
    type Key = (Name, RData);
    let key = |r: &Record| -> Key { (r.name.to_lowercase(), r.data.clone()) };
    let mut zone: HashMap<Key, Record> = current
        .iter()
        .filter(|r| r.record_type() != RecordType::SOA)
        .map(|r| (key(r), r.clone()))
        .collect();
    let Some(final_soa) = records.first() else {
        return Err("empty".into());
    };
    let body = records
        .get(1..records.len().saturating_sub(1))
        .unwrap_or_default();
    let mut deleting = false;
    let mut expected_start = current.iter().find_map(|r| match &r.data {
        RData::SOA(soa) => Some(soa.serial),
        _ => None,
    });
    for record in body {
        if let RData::SOA(soa) = &record.data {
            deleting = !deleting;
            if deleting {
                if expected_start.is_some_and(|s| s != soa.serial) {
                    return Err(format!(
                        "difference starts at serial {} but our copy is at {:?}",
                        soa.serial, expected_start
                    ));
                }
            } else {
                expected_start = Some(soa.serial);
            }
            continue;
        }
        if deleting {
            if zone.remove(&key(record)).is_none() {
                return Err(format!(
                    "difference deletes {} {} which our copy does not have",
                    record.name,
                    record.record_type()
                ));
            }
        } else {
            zone.insert(key(record), record.clone());
        }
    }
    let mut result: Vec<Record> = Vec::with_capacity(zone.len() + 1);
    result.push(final_soa.clone());
    result.extend(zone.into_values());
    Ok(result)
}

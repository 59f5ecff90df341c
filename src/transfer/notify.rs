//! NOTIFY (RFC 1996) both ways: answering a primary's NOTIFY for a
//! secondary zone (from a listed primary, TSIG-checked) by waking its
//! refresh task, and telling a primary zone's secondaries of a new serial,
//! retried with backoff until they acknowledge.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use super::hub::{Hub, PendingNotify};
use super::message::{
    MessageBuilder, OPCODE_NOTIFY, Request, empty_response, parse_request, rcode,
};
use super::outgoing::{Signature, check_signature, formerr, sign_answer};
use super::tsig::{self, ResponseVerifier, TsigKey};
use super::{ZoneTransfer, unix_now};
use crate::snapshot::Snapshot;
use crate::wire::rtype;
use crate::zone::{WireName, wire_name_to_string};

/// Attempts per NOTIFY before giving up (about 8 minutes with the backoff).
const MAX_ATTEMPTS: u32 = 12;
/// How long one attempt waits for the acknowledgement.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest pause between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

impl Hub {
    /// Answers a NOTIFY that came over UDP: the reply, or `None` when
    /// nothing is to be sent.
    pub fn answer_notify_udp(
        &self,
        snapshot: &Snapshot,
        packet: &[u8],
        client: IpAddr,
    ) -> Option<Vec<u8>> {
        match parse_request(packet) {
            Ok(request) => self.answer_notify(snapshot, &request, packet, client),
            Err(err) => {
                // A readable header with a bad body gets FORMERR, as every
                // other query does.
                tracing::info!(peer = %client, reason = %err, "NOTIFY refused: malformed");
                formerr(packet)
            }
        }
    }

    /// Answers a NOTIFY for one of our zones.
    pub(super) fn answer_notify(
        &self,
        snapshot: &Snapshot,
        request: &Request,
        packet: &[u8],
        client: IpAddr,
    ) -> Option<Vec<u8>> {
        if request.flags & 0x8000 != 0 {
            return None;
        }
        let settings = &snapshot.transfer;
        let origin = wire_name_to_string(&request.qname);
        let signature = match check_signature(settings, request, packet) {
            Ok(signature) => signature,
            Err((failure, answer)) => {
                tracing::warn!(peer = %client, zone = %origin, reason = %failure, "NOTIFY refused");
                return Some(answer);
            }
        };
        let refuse = |code: u8, reason: &str| {
            tracing::warn!(peer = %client, zone = %origin, reason, "NOTIFY refused");
            let mut answer = empty_response(request, code, false);
            sign_answer(&signature, &mut answer);
            Some(answer)
        };
        let Some(spec) = settings
            .zones
            .get(&request.qname)
            .and_then(|z| z.secondary.as_ref())
        else {
            // RFC 1996 §3.10 leaves it open; BIND and Knot say NOTAUTH.
            return refuse(rcode::NOTAUTH, "not a secondary zone here");
        };
        if request.qtype != rtype::SOA {
            return refuse(rcode::FORMERR, "NOTIFY must ask for SOA (RFC 1996 §3.7)");
        }
        if !spec.primaries.iter().any(|p| p.ip() == client) {
            return refuse(rcode::REFUSED, "sender is not one of the zone's primaries");
        }
        if let Some(required) = &spec.key {
            let signed_with = match &signature {
                Signature::Valid(verified) => Some(verified.key.name.as_str()),
                Signature::None => None,
            };
            if !signed_with.is_some_and(|k| k.eq_ignore_ascii_case(required)) {
                return refuse(
                    rcode::REFUSED,
                    &format!("NOTIFY not signed with the zone's key {required:?}"),
                );
            }
        }
        tracing::info!(peer = %client, zone = %origin, serial = ?request.soa_serial, "NOTIFY received: refreshing");
        self.trigger(&request.qname);
        let mut answer = empty_response(request, rcode::NOERROR, true);
        sign_answer(&signature, &mut answer);
        Some(answer)
    }
}

/// Sends NOTIFYs for a new serial of `zone` to each of its `notify`
/// targets, each in its own task. A target is signed to with the key of
/// the `allow_transfer` entry covering its address, if any.
pub(super) fn spawn_notifies(
    hub: Arc<Hub>,
    snapshot: &Snapshot,
    origin: &WireName,
    zone: &ZoneTransfer,
    serial: u32,
) {
    let generation = hub.next_notify_generation(origin);
    for &target in &zone.notify {
        let key = zone
            .allow
            .iter()
            .filter(|rule| rule.net.contains(&target.ip()))
            .find_map(|rule| rule.key.as_deref())
            .and_then(|name| snapshot.transfer.keys.by_name(name))
            .cloned();
        let job = NotifyJob {
            hub: hub.clone(),
            origin: origin.clone(),
            origin_text: zone.origin_text.clone(),
            target,
            key,
            serial,
            generation,
        };
        tokio::spawn(job.run());
    }
}

struct NotifyJob {
    hub: Arc<Hub>,
    origin: WireName,
    origin_text: String,
    target: SocketAddr,
    key: Option<TsigKey>,
    serial: u32,
    generation: u64,
}

impl NotifyJob {
    async fn run(self) {
        let mut backoff = Duration::from_secs(1);
        for attempt in 1..=MAX_ATTEMPTS {
            if !self.hub.notify_current(&self.origin, self.generation) {
                // A newer serial is being announced.
                return;
            }
            self.hub.set_pending(
                &self.origin_text,
                self.target,
                Some(PendingNotify {
                    target: self.target.to_string(),
                    serial: self.serial,
                    attempts: attempt,
                }),
            );
            match self.send_once().await {
                Ok(rcode::NOERROR) => {
                    tracing::info!(zone = %self.origin_text, target = %self.target, serial = self.serial, attempt, "NOTIFY acknowledged");
                    self.hub.set_pending(&self.origin_text, self.target, None);
                    return;
                }
                Ok(code) => {
                    // An answer, but not a yes: the secondary refused.
                    tracing::warn!(zone = %self.origin_text, target = %self.target, serial = self.serial, rcode = code, "NOTIFY refused by the secondary");
                    self.hub.set_pending(&self.origin_text, self.target, None);
                    return;
                }
                Err(reason) => {
                    tracing::info!(zone = %self.origin_text, target = %self.target, serial = self.serial, attempt, reason = %reason, retry_in_secs = backoff.as_secs(), "NOTIFY not acknowledged yet");
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
        tracing::warn!(zone = %self.origin_text, target = %self.target, serial = self.serial, "NOTIFY never acknowledged: giving up (the secondary will still refresh on its SOA timers)");
        self.hub.set_pending(&self.origin_text, self.target, None);
    }

    /// One NOTIFY and its answer's rcode.
    async fn send_once(&self) -> Result<u8, String> {
        let bind: SocketAddr = if self.target.is_ipv4() {
            SocketAddr::from(([0, 0, 0, 0], 0))
        } else {
            SocketAddr::from(([0u16; 8], 0))
        };
        let socket = tokio::net::UdpSocket::bind(bind)
            .await
            .map_err(|e| format!("socket: {e}"))?;
        let id = message_id();
        let mut message = MessageBuilder::query(id, OPCODE_NOTIFY, &self.origin, rtype::SOA, true)
            .finish(rcode::NOERROR);
        let mac = self
            .key
            .as_ref()
            .map(|key| tsig::sign(key, &mut message, None, false, unix_now(), 0, &[]));
        socket
            .send_to(&message, self.target)
            .await
            .map_err(|e| format!("send: {e}"))?;
        let mut buffer = vec![0u8; 4096];
        let deadline = tokio::time::Instant::now() + ATTEMPT_TIMEOUT;
        loop {
            let received = tokio::time::timeout_at(deadline, socket.recv_from(&mut buffer)).await;
            let (len, from) = match received {
                Err(_) => return Err("no answer within 2 s".into()),
                Ok(Err(e)) => return Err(format!("receive: {e}")),
                Ok(Ok(got)) => got,
            };
            if from != self.target {
                continue;
            }
            let Some(answer) = buffer.get(..len) else {
                continue;
            };
            let Ok(response) = parse_request(answer) else {
                continue;
            };
            if response.id != id
                || response.flags & 0x8000 == 0
                || response.opcode() != OPCODE_NOTIFY
            {
                continue;
            }
            if let (Some(key), Some(mac)) = (&self.key, mac.clone()) {
                let mut verifier = ResponseVerifier::new(key.clone(), mac);
                if response.rcode() == rcode::NOERROR
                    && let Err(failure) = verifier.verify(answer, response.tsig_start, unix_now())
                {
                    return Err(format!("answer's TSIG: {failure}"));
                }
            }
            return Ok(response.rcode());
        }
    }
}

/// A message ID hard to guess from outside.
pub(super) fn message_id() -> u16 {
    let mut bytes = [0u8; 2];
    if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        return nanos as u16;
    }
    u16::from_be_bytes(bytes)
}

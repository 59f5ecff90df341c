//! Serving transfers to secondaries: AXFR (RFC 5936) and IXFR (RFC 1995)
//! over TCP, in as many messages as the zone needs, each TSIG-signed when
//! the request was; a UDP IXFR gets the SOA (RFC 1995 §2: "use TCP").
//!
//! Every refusal is answered (REFUSED, NOTAUTH, or the TSIG error RFC 8945
//! prescribes) and logged with the peer and the reason.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::hub::{Hub, TransferSlot, event};
use super::message::{
    MESSAGE_TARGET, MessageBuilder, OPCODE_NOTIFY, Request, empty_response, parse_request, rcode,
    read_name, read_u16,
};
use super::tsig::{self, StreamSigner, TsigFailure, Verified};
use super::{TransferSettings, ZoneTransfer, ZoneVersion, serial_newer, unix_now};
use crate::snapshot::Snapshot;
use crate::wire::{HEADER_LEN, rtype};

/// How long one message of a transfer may take to be written.
const WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// What a request asks of the transfer code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// A NOTIFY (opcode 4).
    Notify,
    /// An AXFR or IXFR query.
    Transfer,
}

/// Whether a TCP message belongs to the transfer code; cheap (header and
/// question only).
pub fn request_kind(packet: &[u8]) -> Option<RequestKind> {
    let flags = super::message::read_u16(packet, 2)?;
    if flags & 0x8000 != 0 {
        return None;
    }
    match ((flags >> 11) & 0x0f) as u8 {
        OPCODE_NOTIFY => Some(RequestKind::Notify),
        0 => {
            let (_, after) = super::message::read_name(packet, 12).ok()?;
            let qtype = super::message::read_u16(packet, after)?;
            matches!(qtype, rtype::AXFR | rtype::IXFR).then_some(RequestKind::Transfer)
        }
        _ => None,
    }
}

/// The outcome of checking a signed (or unsigned) request.
pub(super) enum Signature {
    /// Not signed.
    None,
    /// Signed with a known key, verified.
    Valid(Box<Verified>),
}

/// Verifies a request's TSIG; on failure returns the answer to send.
pub(super) fn check_signature(
    settings: &TransferSettings,
    request: &Request,
    packet: &[u8],
) -> Result<Signature, (TsigFailure, Vec<u8>)> {
    let Some(start) = request.tsig_start else {
        return Ok(Signature::None);
    };
    let now = unix_now();
    match tsig::verify_request(&settings.keys, packet, start, now) {
        Ok(verified) => Ok(Signature::Valid(Box::new(verified))),
        Err(rejected) => {
            let tsig::Rejected {
                failure,
                record,
                verified,
            } = *rejected;
            // RFC 8945 §5.2: NOTAUTH with the TSIG error; BADTIME answers
            // are signed and carry our time, BADTRUNC ones are signed
            // (§5.3.2), BADKEY/BADSIG ones are not. A MAC size out of range
            // is a plain FORMERR (§5.2.2.1), as an unreadable record is.
            let mut answer = empty_response(request, rcode::NOTAUTH, false);
            match (failure, record, verified) {
                (TsigFailure::BadTime | TsigFailure::Replayed, Some(record), Some(verified)) => {
                    let other = now.to_be_bytes()[2..].to_vec();
                    tsig::sign(
                        &verified.key,
                        &mut answer,
                        Some(&verified.mac),
                        false,
                        record.time_signed,
                        tsig::error::BADTIME,
                        &other,
                    );
                }
                (TsigFailure::BadTrunc, _, Some(verified)) => {
                    tsig::sign(
                        &verified.key,
                        &mut answer,
                        Some(&verified.mac),
                        false,
                        now,
                        tsig::error::BADTRUNC,
                        &[],
                    );
                }
                (TsigFailure::MacSize, _, _) | (_, None, _) => {
                    answer = empty_response(request, rcode::FORMERR, false)
                }
                (_, Some(record), _) => {
                    tsig::append_error_tsig(&mut answer, &record, failure.code())
                }
            }
            Err((failure, answer))
        }
    }
}

/// Signs a single answer when the request was signed.
pub(super) fn sign_answer(signature: &Signature, answer: &mut Vec<u8>) {
    if let Signature::Valid(verified) = signature {
        StreamSigner::new(verified).sign(answer, unix_now());
    }
}

/// Whether `allow_transfer` admits this client with this signature; the
/// reason when not.
fn admitted(zone: &ZoneTransfer, client: IpAddr, signature: &Signature) -> Result<(), String> {
    let key = match signature {
        Signature::Valid(verified) => Some(verified.key.name.as_str()),
        Signature::None => None,
    };
    let mut wanted_key = None;
    for rule in zone.allow.iter().filter(|r| r.net.contains(&client)) {
        match (&rule.key, key) {
            (None, _) => return Ok(()),
            (Some(required), Some(got)) if required.eq_ignore_ascii_case(got) => return Ok(()),
            (Some(required), _) => wanted_key = Some(required.clone()),
        }
    }
    Err(match (wanted_key, key) {
        (Some(required), None) => {
            format!("not signed: allow_transfer requires TSIG key {required:?} from this address")
        }
        (Some(required), Some(got)) => {
            format!(
                "signed with key {got:?}, but allow_transfer requires {required:?} from this address"
            )
        }
        (None, _) if zone.allow.is_empty() => "zone has no allow_transfer".to_string(),
        (None, _) => "address not in allow_transfer".to_string(),
    })
}

impl Hub {
    /// Answers one AXFR/IXFR or NOTIFY message read from a TCP connection.
    ///
    /// # Errors
    /// Writing to the connection failed.
    pub async fn serve_tcp(
        &self,
        snapshot: Arc<Snapshot>,
        packet: &[u8],
        peer: SocketAddr,
        stream: &mut TcpStream,
    ) -> std::io::Result<()> {
        // The slot (flood limit) is held until the last message is written.
        let (messages, _slot) = self.answer_transfer(&snapshot, packet, peer);
        let mut framed = Vec::with_capacity(MESSAGE_TARGET + 1024);
        for message in messages {
            framed.clear();
            framed.extend_from_slice(&(message.len() as u16).to_be_bytes());
            framed.extend_from_slice(&message);
            // A secondary that stops reading is cut off rather than
            // holding its transfer slot forever.
            tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(&framed))
                .await
                .map_err(|_| std::io::Error::other("transfer write timed out"))??;
        }
        Ok(())
    }

    /// The messages answering a transfer request or NOTIFY.
    pub fn answer_transfer(
        &self,
        snapshot: &Snapshot,
        packet: &[u8],
        peer: SocketAddr,
    ) -> (Vec<Vec<u8>>, Option<TransferSlot<'_>>) {
        let request = match parse_request(packet) {
            Ok(request) => request,
            Err(err) => {
                tracing::info!(%peer, reason = %err, "transfer request refused: malformed");
                return (formerr(packet).into_iter().collect(), None);
            }
        };
        if request.opcode() == OPCODE_NOTIFY {
            let answer = self.answer_notify(snapshot, &request, packet, peer.ip());
            return (answer.into_iter().collect(), None);
        }
        let kind = if request.qtype == rtype::AXFR {
            "AXFR"
        } else {
            "IXFR"
        };
        let settings = &snapshot.transfer;
        let origin = crate::zone::wire_name_to_string(&request.qname);
        let refuse = |rcode_value: u8, signature: &Signature, reason: String| {
            tracing::warn!(%peer, zone = %origin, kind, reason = %reason, "transfer refused");
            self.record_out(&origin, event(peer, kind, 0, format!("refused: {reason}")));
            let mut answer = empty_response(&request, rcode_value, false);
            sign_answer(signature, &mut answer);
            vec![answer]
        };
        let signature = match check_signature(settings, &request, packet) {
            Ok(signature) => signature,
            Err((failure, answer)) => {
                tracing::warn!(%peer, zone = %origin, kind, reason = %failure, "transfer refused");
                self.record_out(&origin, event(peer, kind, 0, format!("tsig: {failure}")));
                return (vec![answer], None);
            }
        };
        let Some(zone) = settings.zones.get(&request.qname) else {
            let served = snapshot
                .zones
                .find(&request.qname)
                .is_some_and(|z| z.origin() == &request.qname[..]);
            return (
                if served {
                    refuse(
                        rcode::REFUSED,
                        &signature,
                        "zone has no allow_transfer".into(),
                    )
                } else {
                    // RFC 5936 §2.2.1: not authoritative for the zone.
                    refuse(
                        rcode::NOTAUTH,
                        &signature,
                        "not authoritative for this zone".into(),
                    )
                },
                None,
            );
        };
        if let Err(reason) = admitted(zone, peer.ip(), &signature) {
            return (refuse(rcode::REFUSED, &signature, reason), None);
        }
        let Some(version) = zone.version.clone() else {
            let reason = "zone has no data (secondary not transferred or expired)";
            return (refuse(rcode::SERVFAIL, &signature, reason.into()), None);
        };
        let slot = match self.take_slot(peer.ip()) {
            Ok(slot) => slot,
            Err(reason) => return (refuse(rcode::REFUSED, &signature, reason), None),
        };
        let plan = match (request.qtype, request.soa_serial) {
            (rtype::IXFR, None) => {
                let reason = "IXFR without an SOA in the authority section";
                return (refuse(rcode::FORMERR, &signature, reason.into()), None);
            }
            (rtype::IXFR, Some(client_serial)) => {
                Some(self.ixfr_plan(&request.qname, &version, client_serial))
            }
            _ => None,
        };
        let (records, sent_kind) = match &plan {
            None => (axfr_records(&version), "AXFR"),
            Some(IxfrPlan::UpToDate) => (vec![&version.soa[..]], "IXFR-up-to-date"),
            Some(IxfrPlan::Full) => (axfr_records(&version), "IXFR-as-AXFR"),
            Some(IxfrPlan::Difference(old)) => (difference_records(old, &version), "IXFR"),
        };
        let messages = split_into_messages(&request, &records, &signature);
        let count = records.len();
        tracing::info!(
            %peer,
            zone = %zone.origin_text,
            kind = sent_kind,
            serial = version.serial,
            records = count,
            messages = messages.len(),
            tsig = matches!(signature, Signature::Valid(_)),
            "transfer out"
        );
        self.record_out(&zone.origin_text, event(peer, sent_kind, count, "ok"));
        (messages, Some(slot))
    }

    /// How to answer an IXFR from `client_serial` (RFC 1995 §4).
    fn ixfr_plan(&self, origin: &[u8], current: &ZoneVersion, client_serial: u32) -> IxfrPlan {
        if !serial_newer(current.serial, client_serial) {
            // Up to date: the current SOA alone.
            return IxfrPlan::UpToDate;
        }
        match self.version(origin, client_serial) {
            Some(old) => IxfrPlan::Difference(old),
            // The difference is not known: the whole zone.
            None => IxfrPlan::Full,
        }
    }
}

/// How an IXFR is answered.
enum IxfrPlan {
    /// The client has the current serial (or a newer one).
    UpToDate,
    /// One condensed difference from this version.
    Difference(Arc<ZoneVersion>),
    /// The whole zone, AXFR style.
    Full,
}

/// One condensed difference (RFC 1995 §4): new SOA, old SOA, deletions,
/// new SOA, additions, new SOA.
fn difference_records<'a>(old: &'a ZoneVersion, new: &'a ZoneVersion) -> Vec<&'a [u8]> {
    let (deleted, added) = differences(&old.records, &new.records);
    let mut records = Vec::with_capacity(deleted.len() + added.len() + 4);
    records.push(&new.soa[..]);
    records.push(&old.soa[..]);
    records.extend(deleted);
    records.push(&new.soa[..]);
    records.extend(added);
    records.push(&new.soa[..]);
    records
}

/// FORMERR for a message whose records cannot be read: its header, and
/// its question when that is readable, as every other reply of the server
/// echoes a readable question (a resolver matches replies by it).
pub(super) fn formerr(packet: &[u8]) -> Option<Vec<u8>> {
    let header = packet.get(..HEADER_LEN)?;
    let mut answer = header.to_vec();
    answer[2] = 0x80 | (header[2] & 0x78);
    answer[3] = rcode::FORMERR;
    answer[4..HEADER_LEN].fill(0);
    if let Some(question) = readable_question(packet) {
        answer[5] = 1;
        answer.extend_from_slice(question);
    }
    Some(answer)
}

/// The bytes of the request's one question, when its name is readable and
/// not compressed (a pointer would point into the request, not the reply).
fn readable_question(packet: &[u8]) -> Option<&[u8]> {
    if read_u16(packet, 4)? != 1 {
        return None;
    }
    let (name, after) = read_name(packet, HEADER_LEN).ok()?;
    if after - HEADER_LEN != name.len() {
        return None;
    }
    packet.get(HEADER_LEN..after + 4)
}

fn axfr_records(version: &ZoneVersion) -> Vec<&[u8]> {
    let mut records = Vec::with_capacity(version.records.len() + 2);
    records.push(&version.soa[..]);
    records.extend(version.records.iter().map(|r| &r[..]));
    records.push(&version.soa[..]);
    records
}

/// Records in `old` and not in `new`, and in `new` and not in `old` (both sorted).
fn differences<'a>(old: &'a [Box<[u8]>], new: &'a [Box<[u8]>]) -> (Vec<&'a [u8]>, Vec<&'a [u8]>) {
    let (mut deleted, mut added) = (Vec::new(), Vec::new());
    let (mut i, mut j) = (0, 0);
    while i < old.len() || j < new.len() {
        match (old.get(i), new.get(j)) {
            (Some(a), Some(b)) if a == b => {
                i += 1;
                j += 1;
            }
            (Some(a), Some(b)) if a < b => {
                deleted.push(&a[..]);
                i += 1;
            }
            (Some(_), Some(b)) => {
                added.push(&b[..]);
                j += 1;
            }
            (Some(a), None) => {
                deleted.push(&a[..]);
                i += 1;
            }
            (None, Some(b)) => {
                added.push(&b[..]);
                j += 1;
            }
            (None, None) => break,
        }
    }
    (deleted, added)
}

/// Cuts the records into messages of about [`MESSAGE_TARGET`] bytes, each
/// signed when the request was (RFC 8945 §5.3.1).
fn split_into_messages(
    request: &Request,
    records: &[&[u8]],
    signature: &Signature,
) -> Vec<Vec<u8>> {
    let mut signer = match signature {
        Signature::Valid(verified) => Some(StreamSigner::new(verified)),
        Signature::None => None,
    };
    let now = unix_now();
    let mut messages = Vec::new();
    let mut builder = MessageBuilder::response(request, true);
    for record in records {
        if !builder.is_empty() && builder.len() + record.len() > MESSAGE_TARGET {
            let full = std::mem::replace(&mut builder, MessageBuilder::response(request, true));
            messages.push(full.finish(rcode::NOERROR));
        }
        builder.push_answer(record);
    }
    messages.push(builder.finish(rcode::NOERROR));
    if let Some(signer) = &mut signer {
        for message in &mut messages {
            signer.sign(message, now);
        }
    }
    messages
}

/// Answers a UDP IXFR query (the general answer path's hook): the zone's
/// SOA when the client may transfer it, telling it to use TCP (RFC 1995
/// §2); otherwise the refusal a TCP request would get, in one message.
pub fn answer_udp_ixfr(
    snapshot: &Snapshot,
    packet: &[u8],
    client: IpAddr,
    out: &mut Vec<u8>,
) -> u8 {
    let Ok(request) = parse_request(packet) else {
        if let Some(answer) = formerr(packet) {
            out.extend_from_slice(&answer);
        }
        return rcode::FORMERR;
    };
    let settings = &snapshot.transfer;
    let origin = crate::zone::wire_name_to_string(&request.qname);
    let (signature, answer, result) = match check_signature(settings, &request, packet) {
        Err((failure, answer)) => {
            tracing::warn!(peer = %client, zone = %origin, reason = %failure, "UDP IXFR refused");
            // NOTAUTH, or FORMERR when the TSIG record is unreadable or its MAC
            // size out of range (RFC 8945 §5.2.2.1):
            // report what the answer says.
            let code = answer.get(3).map_or(rcode::NOTAUTH, |low| low & 0x0f);
            (Signature::None, answer, code)
        }
        Ok(signature) => {
            let zone = settings.zones.get(&request.qname);
            let verdict = match zone {
                None => Err((rcode::NOTAUTH, "zone has no allow_transfer".to_string())),
                Some(zone) => admitted(zone, client, &signature).map_err(|r| (rcode::REFUSED, r)),
            };
            match (verdict, zone.and_then(|z| z.version.as_ref())) {
                (Ok(()), Some(version)) => {
                    let mut builder = MessageBuilder::response(&request, true);
                    builder.push_answer(&version.soa);
                    (signature, builder.finish(rcode::NOERROR), rcode::NOERROR)
                }
                (Ok(()), None) => (
                    signature,
                    empty_response(&request, rcode::SERVFAIL, false),
                    rcode::SERVFAIL,
                ),
                (Err((code, reason)), _) => {
                    tracing::warn!(peer = %client, zone = %origin, reason = %reason, "UDP IXFR refused");
                    (signature, empty_response(&request, code, false), code)
                }
            }
        }
    };
    let mut answer = answer;
    sign_answer(&signature, &mut answer);
    out.extend_from_slice(&answer);
    result
}

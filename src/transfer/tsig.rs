//! TSIG (RFC 8945): keys, signing and verifying DNS messages, including the
//! chained MACs of multi-message zone transfers (§5.3.1). Works on wire
//! bytes with `ring`'s HMAC; reads no clock (callers pass the time). Each
//! key remembers the latest Time Signed it verified (§5.2.3), in an atomic:
//! only signed transfer requests and NOTIFYs touch it.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use ring::hmac;

use super::message::{Malformed, TYPE_TSIG, read_name, read_u16};
use crate::zone::WireName;

/// TSIG error codes (RFC 8945 §4.3, in the TSIG record's Error field).
pub mod error {
    /// The MAC did not verify.
    pub const BADSIG: u16 = 16;
    /// The key is not known.
    pub const BADKEY: u16 = 17;
    /// The time is outside the fudge, or earlier than the key's last.
    pub const BADTIME: u16 = 18;
    /// The MAC is truncated more than local policy allows.
    pub const BADTRUNC: u16 = 22;
}

/// Seconds of clock difference accepted (RFC 8945 §10 recommends 300).
pub const FUDGE_SECS: u16 = 300;

/// HMAC algorithms offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// HMAC-SHA1 (old peers only).
    HmacSha1,
    /// HMAC-SHA256 (the RFC's mandatory algorithm).
    HmacSha256,
    /// HMAC-SHA512.
    HmacSha512,
}

impl Algorithm {
    /// Parses a configuration name (`hmac-sha256`, …).
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().trim_end_matches('.') {
            "hmac-sha1" => Some(Self::HmacSha1),
            "hmac-sha256" => Some(Self::HmacSha256),
            "hmac-sha512" => Some(Self::HmacSha512),
            _ => None,
        }
    }

    /// The algorithm's name as written in configurations and `dig -y`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HmacSha1 => "hmac-sha1",
            Self::HmacSha256 => "hmac-sha256",
            Self::HmacSha512 => "hmac-sha512",
        }
    }

    /// The algorithm's domain name in wire format (RFC 8945 §6).
    fn wire_name(self) -> &'static [u8] {
        match self {
            Self::HmacSha1 => b"\x09hmac-sha1\x00",
            Self::HmacSha256 => b"\x0bhmac-sha256\x00",
            Self::HmacSha512 => b"\x0bhmac-sha512\x00",
        }
    }

    fn hmac(self) -> hmac::Algorithm {
        match self {
            Self::HmacSha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            Self::HmacSha256 => hmac::HMAC_SHA256,
            Self::HmacSha512 => hmac::HMAC_SHA512,
        }
    }

    /// Length of a full MAC.
    fn mac_len(self) -> usize {
        match self {
            Self::HmacSha1 => 20,
            Self::HmacSha256 => 32,
            Self::HmacSha512 => 64,
        }
    }
}

/// One shared secret.
#[derive(Clone)]
pub struct TsigKey {
    /// Name as configured (`[tsig.NAME]`).
    pub name: String,
    /// The name in lowercase wire format (the TSIG record's owner).
    pub wire: WireName,
    /// HMAC algorithm.
    pub algorithm: Algorithm,
    key: hmac::Key,
    /// The latest Time Signed of a request verified with this key (shared
    /// by the clones; starts afresh when a reload builds the key again).
    last_signed: Arc<AtomicU64>,
}

impl std::fmt::Debug for TsigKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TsigKey")
            .field("name", &self.name)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl TsigKey {
    /// A key from its configured name, algorithm and decoded secret.
    ///
    /// # Errors
    /// The name is not a valid domain name.
    pub fn new(name: &str, algorithm: Algorithm, secret: &[u8]) -> Result<Self, String> {
        let parsed = hickory_proto::rr::Name::from_ascii(name)
            .map_err(|err| format!("key name {name:?} is not a domain name: {err}"))?;
        Ok(Self {
            name: name.trim_end_matches('.').to_string(),
            wire: crate::zone::wire_name(&parsed),
            algorithm,
            key: hmac::Key::new(algorithm.hmac(), secret),
            last_signed: Arc::new(AtomicU64::new(0)),
        })
    }
}

/// Keys by lowercase wire name.
#[derive(Debug, Default, Clone)]
pub struct TsigKeys {
    by_wire: HashMap<WireName, TsigKey>,
}

impl TsigKeys {
    /// Adds a key.
    pub fn insert(&mut self, key: TsigKey) {
        self.by_wire.insert(key.wire.clone(), key);
    }

    /// The key with this configured name.
    pub fn by_name(&self, name: &str) -> Option<&TsigKey> {
        let wanted = name.trim_end_matches('.');
        self.by_wire
            .values()
            .find(|k| k.name.eq_ignore_ascii_case(wanted))
    }

    /// Whether no key is configured.
    pub fn is_empty(&self) -> bool {
        self.by_wire.is_empty()
    }
}

/// A TSIG record read from a message.
#[derive(Debug, Clone)]
pub struct TsigRecord {
    /// Offset of the record in the message.
    pub start: usize,
    /// Key name, lowercase wire format.
    pub key_name: WireName,
    /// Algorithm name, lowercase wire format.
    pub algorithm: WireName,
    /// Seconds since the epoch when it was signed (48 bits).
    pub time_signed: u64,
    /// Accepted clock difference.
    pub fudge: u16,
    /// The MAC.
    pub mac: Vec<u8>,
    /// The message's ID when it was signed.
    pub original_id: u16,
    /// TSIG error code.
    pub error: u16,
    /// Other data (the server's time in BADTIME answers).
    pub other: Vec<u8>,
}

/// Reads the TSIG record starting at `start`.
///
/// # Errors
/// The record is cut short or not a TSIG record.
pub fn read_tsig(packet: &[u8], start: usize) -> Result<TsigRecord, Malformed> {
    let (key_name, pos) = read_name(packet, start)?;
    if read_u16(packet, pos) != Some(TYPE_TSIG) {
        return Err(Malformed("not a TSIG record"));
    }
    let rdlen = usize::from(read_u16(packet, pos + 8).ok_or(Malformed("TSIG cut short"))?);
    let rdata = pos + 10;
    let end = rdata + rdlen;
    if end > packet.len() {
        return Err(Malformed("TSIG cut short"));
    }
    let (algorithm, p) = read_name(packet, rdata)?;
    let cut = Malformed("TSIG cut short");
    let time = packet.get(p..p + 6).ok_or(cut)?;
    let time_signed = time.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    let fudge = read_u16(packet, p + 6).ok_or(cut)?;
    let mac_len = usize::from(read_u16(packet, p + 8).ok_or(cut)?);
    let mac = packet.get(p + 10..p + 10 + mac_len).ok_or(cut)?.to_vec();
    let q = p + 10 + mac_len;
    let original_id = read_u16(packet, q).ok_or(cut)?;
    let error = read_u16(packet, q + 2).ok_or(cut)?;
    let other_len = usize::from(read_u16(packet, q + 4).ok_or(cut)?);
    let other = packet.get(q + 6..q + 6 + other_len).ok_or(cut)?.to_vec();
    if q + 6 + other_len != end {
        return Err(Malformed("TSIG length does not match its fields"));
    }
    Ok(TsigRecord {
        start,
        key_name,
        algorithm,
        time_signed,
        fudge,
        mac,
        original_id,
        error,
        other,
    })
}

/// Why a signed message was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TsigFailure {
    /// The key is not configured (BADKEY).
    #[error("unknown TSIG key (BADKEY)")]
    BadKey,
    /// The MAC does not verify (BADSIG).
    #[error("TSIG signature does not verify (BADSIG)")]
    BadSig,
    /// The signing time is outside the fudge (BADTIME).
    #[error("TSIG time outside the allowed fudge (BADTIME)")]
    BadTime,
    /// Signed earlier than the last request verified with the key (BADTIME).
    #[error("TSIG time earlier than the key's last verified request (BADTIME)")]
    Replayed,
    /// The MAC Size is beyond what RFC 8945 §5.2.2.1 permits (FORMERR).
    #[error("TSIG MAC size out of range (FORMERR)")]
    MacSize,
    /// The MAC is truncated, which gslb's policy does not accept (BADTRUNC).
    #[error("TSIG MAC truncated (BADTRUNC)")]
    BadTrunc,
    /// A message that must be signed was not.
    #[error("message not signed")]
    Unsigned,
    /// The TSIG record could not be read.
    #[error("malformed TSIG record")]
    Malformed,
}

impl TsigFailure {
    /// The TSIG error code answered for it (RFC 8945 §5.2).
    pub fn code(self) -> u16 {
        match self {
            Self::BadKey => error::BADKEY,
            Self::BadTime | Self::Replayed => error::BADTIME,
            Self::BadTrunc => error::BADTRUNC,
            // MacSize is answered FORMERR without a TSIG record (§5.2.2.1).
            Self::BadSig | Self::Unsigned | Self::Malformed | Self::MacSize => error::BADSIG,
        }
    }
}

/// What a verified request leaves for signing the response.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The key it was signed with.
    pub key: TsigKey,
    /// The request's MAC (the response's MAC covers it).
    pub mac: Vec<u8>,
    /// The request's signing time.
    pub time_signed: u64,
}

/// Computes the MAC over `prior` (request or previous MAC), `messages`
/// (without their TSIG records, IDs restored) and the TSIG variables
/// (full on the first message, timers only on later ones).
fn compute_mac(
    key: &TsigKey,
    prior: Option<&[u8]>,
    messages: &[&[u8]],
    vars: &Vars<'_>,
) -> Vec<u8> {
    let mut context = hmac::Context::with_key(&key.key);
    if let Some(prior) = prior {
        context.update(&(prior.len() as u16).to_be_bytes());
        context.update(prior);
    }
    for message in messages {
        context.update(message);
    }
    let time = vars.time_signed.to_be_bytes();
    if vars.timers_only {
        context.update(&time[2..]);
        context.update(&vars.fudge.to_be_bytes());
    } else {
        context.update(&key.wire);
        context.update(&255u16.to_be_bytes());
        context.update(&0u32.to_be_bytes());
        context.update(key.algorithm.wire_name());
        context.update(&time[2..]);
        context.update(&vars.fudge.to_be_bytes());
        context.update(&vars.error.to_be_bytes());
        context.update(&(vars.other.len() as u16).to_be_bytes());
        context.update(vars.other);
    }
    context.sign().as_ref().to_vec()
}

struct Vars<'o> {
    time_signed: u64,
    fudge: u16,
    error: u16,
    other: &'o [u8],
    timers_only: bool,
}

/// The message as it was signed: TSIG removed, ARCOUNT one less, original ID.
fn unsigned_form(packet: &[u8], tsig: &TsigRecord) -> Vec<u8> {
    let mut message = packet[..tsig.start.min(packet.len())].to_vec();
    if message.len() >= 12 {
        message[0..2].copy_from_slice(&tsig.original_id.to_be_bytes());
        let arcount = u16::from_be_bytes([message[10], message[11]]).saturating_sub(1);
        message[10..12].copy_from_slice(&arcount.to_be_bytes());
    }
    message
}

/// RFC 8945 §5.2.2.1: a "MAC Size" greater than the keyed hash output, or
/// less than the larger of 10 octets and half the hash length, must be
/// dropped and answered FORMERR.
fn check_mac_size(algorithm: Algorithm, size: usize) -> Result<(), TsigFailure> {
    let full = algorithm.mac_len();
    if size > full || size < (full / 2).max(10) {
        return Err(TsigFailure::MacSize);
    }
    Ok(())
}

/// RFC 8945 §5.2.4: a truncation §5.2.2.1 permits but local policy does not
/// gets BADTRUNC. gslb's policy is BIND's default for a key without
/// `digest-bits`: full-length MACs only (its algorithms name no truncation).
fn check_truncation(algorithm: Algorithm, size: usize) -> Result<(), TsigFailure> {
    if size < algorithm.mac_len() {
        return Err(TsigFailure::BadTrunc);
    }
    Ok(())
}

/// Compares MACs in constant time; a truncated MAC (within the sizes
/// [`check_mac_size`] lets through) is compared with as many leading octets
/// of the expected one (RFC 8945 §5.2.2.1).
fn mac_matches(expected: &[u8], got: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    expected
        .get(..got.len())
        .is_some_and(|prefix| bool::from(prefix.ct_eq(got)))
}

/// A request whose TSIG was not accepted.
#[derive(Debug)]
pub struct Rejected {
    /// Why.
    pub failure: TsigFailure,
    /// Its TSIG record, when readable (to answer with the same key name).
    pub record: Option<TsigRecord>,
    /// For BADTIME and BADTRUNC: the key and MAC, to sign the answer.
    pub verified: Option<Verified>,
}

/// Verifies a signed request (`tsig_start` from the parsed request) at
/// `now` (seconds since the epoch).
///
/// # Errors
/// The failure and what answering it needs.
pub fn verify_request(
    keys: &TsigKeys,
    packet: &[u8],
    tsig_start: usize,
    now: u64,
) -> Result<Verified, Box<Rejected>> {
    let reject = |failure, record, verified| {
        Box::new(Rejected {
            failure,
            record,
            verified,
        })
    };
    let tsig =
        read_tsig(packet, tsig_start).map_err(|_| reject(TsigFailure::Malformed, None, None))?;
    let Some(key) = keys.by_wire.get(&tsig.key_name) else {
        return Err(reject(TsigFailure::BadKey, Some(tsig), None));
    };
    if tsig.algorithm[..] != *key.algorithm.wire_name() {
        return Err(reject(TsigFailure::BadKey, Some(tsig), None));
    }
    if let Err(failure) = check_mac_size(key.algorithm, tsig.mac.len()) {
        return Err(reject(failure, Some(tsig), None));
    }
    let message = unsigned_form(packet, &tsig);
    let mac = compute_mac(
        key,
        None,
        &[&message],
        &Vars {
            time_signed: tsig.time_signed,
            fudge: tsig.fudge,
            error: tsig.error,
            other: &tsig.other,
            timers_only: false,
        },
    );
    if !mac_matches(&mac, &tsig.mac) {
        return Err(reject(TsigFailure::BadSig, Some(tsig), None));
    }
    let verified = Verified {
        key: key.clone(),
        mac: tsig.mac.clone(),
        time_signed: tsig.time_signed,
    };
    // RFC 8945 §5.2.3: the time is checked after the MAC.
    if now.abs_diff(tsig.time_signed) > u64::from(tsig.fudge) {
        return Err(reject(TsigFailure::BadTime, Some(tsig), Some(verified)));
    }
    // §5.2.3: the server SHOULD cache the most recent Time Signed of a key
    // and answer BADTIME to a later message signed earlier. Lock-free:
    // fetch_max leaves a later value in place and reports it.
    if key
        .last_signed
        .fetch_max(tsig.time_signed, Ordering::Relaxed)
        > tsig.time_signed
    {
        return Err(reject(TsigFailure::Replayed, Some(tsig), Some(verified)));
    }
    if let Err(failure) = check_truncation(key.algorithm, tsig.mac.len()) {
        return Err(reject(failure, Some(tsig), Some(verified)));
    }
    Ok(verified)
}

/// Appends a TSIG record to `message` and bumps ARCOUNT; returns the MAC.
///
/// `prior` is the request MAC (responses) or the previous message's MAC
/// (later messages of a transfer, which sign only the timers).
pub fn sign(
    key: &TsigKey,
    message: &mut Vec<u8>,
    prior: Option<&[u8]>,
    timers_only: bool,
    time_signed: u64,
    error: u16,
    other: &[u8],
) -> Vec<u8> {
    let vars = Vars {
        time_signed,
        fudge: FUDGE_SECS,
        error,
        other,
        timers_only,
    };
    let mac = compute_mac(key, prior, &[message], &vars);
    append_tsig(
        message,
        key.wire.as_ref(),
        key.algorithm,
        time_signed,
        &mac,
        error,
        other,
    );
    mac
}

/// Appends an unsigned TSIG record (empty MAC) carrying `error`, as BADKEY
/// and BADSIG answers must be (RFC 8945 §5.2.1, §5.2.2).
pub fn append_error_tsig(message: &mut Vec<u8>, request: &TsigRecord, error: u16) {
    let algorithm = [
        Algorithm::HmacSha256,
        Algorithm::HmacSha512,
        Algorithm::HmacSha1,
    ]
    .into_iter()
    .find(|a| a.wire_name() == &request.algorithm[..]);
    let id = message
        .get(0..2)
        .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
    let mut rdata = Vec::with_capacity(64);
    match algorithm {
        Some(a) => rdata.extend_from_slice(a.wire_name()),
        None => rdata.extend_from_slice(&request.algorithm),
    }
    rdata.extend_from_slice(&request.time_signed.to_be_bytes()[2..]);
    rdata.extend_from_slice(&FUDGE_SECS.to_be_bytes());
    rdata.extend_from_slice(&0u16.to_be_bytes());
    rdata.extend_from_slice(&id.to_be_bytes());
    rdata.extend_from_slice(&error.to_be_bytes());
    rdata.extend_from_slice(&0u16.to_be_bytes());
    push_tsig_rr(message, &request.key_name, &rdata);
}

fn append_tsig(
    message: &mut Vec<u8>,
    key_name: &[u8],
    algorithm: Algorithm,
    time_signed: u64,
    mac: &[u8],
    error: u16,
    other: &[u8],
) {
    let id = message
        .get(0..2)
        .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
    let mut rdata = Vec::with_capacity(32 + mac.len() + other.len());
    rdata.extend_from_slice(algorithm.wire_name());
    rdata.extend_from_slice(&time_signed.to_be_bytes()[2..]);
    rdata.extend_from_slice(&FUDGE_SECS.to_be_bytes());
    rdata.extend_from_slice(&(mac.len() as u16).to_be_bytes());
    rdata.extend_from_slice(mac);
    rdata.extend_from_slice(&id.to_be_bytes());
    rdata.extend_from_slice(&error.to_be_bytes());
    rdata.extend_from_slice(&(other.len() as u16).to_be_bytes());
    rdata.extend_from_slice(other);
    push_tsig_rr(message, key_name, &rdata);
}

fn push_tsig_rr(message: &mut Vec<u8>, key_name: &[u8], rdata: &[u8]) {
    message.extend_from_slice(key_name);
    message.extend_from_slice(&TYPE_TSIG.to_be_bytes());
    message.extend_from_slice(&255u16.to_be_bytes());
    message.extend_from_slice(&0u32.to_be_bytes());
    message.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    message.extend_from_slice(rdata);
    if message.len() >= 12 {
        let arcount = u16::from_be_bytes([message[10], message[11]]).saturating_add(1);
        message[10..12].copy_from_slice(&arcount.to_be_bytes());
    }
}

/// Verifies the messages of a signed response stream (a transfer or a
/// single answer) as a client: the first message must be signed over the
/// request MAC; later ones may leave up to 99 messages unsigned
/// (RFC 8945 §5.3.1), and the last one must be signed.
pub struct ResponseVerifier {
    key: TsigKey,
    prior: Vec<u8>,
    pending: Vec<Vec<u8>>,
    first: bool,
}

impl ResponseVerifier {
    /// Starts with the MAC of the request that was sent.
    pub fn new(key: TsigKey, request_mac: Vec<u8>) -> Self {
        Self {
            key,
            prior: request_mac,
            pending: Vec::new(),
            first: true,
        }
    }

    /// Checks one message (`tsig_start` from its parse) at `now`.
    ///
    /// # Errors
    /// Unsigned first message, too many unsigned messages, a bad MAC or time.
    pub fn verify(
        &mut self,
        packet: &[u8],
        tsig_start: Option<usize>,
        now: u64,
    ) -> Result<(), TsigFailure> {
        let Some(start) = tsig_start else {
            if self.first || self.pending.len() >= 99 {
                return Err(TsigFailure::Unsigned);
            }
            self.pending.push(packet.to_vec());
            return Ok(());
        };
        let tsig = read_tsig(packet, start).map_err(|_| TsigFailure::Malformed)?;
        if tsig.key_name != self.key.wire || tsig.algorithm[..] != *self.key.algorithm.wire_name() {
            return Err(TsigFailure::BadKey);
        }
        if tsig.error != 0 {
            return Err(match tsig.error {
                error::BADKEY => TsigFailure::BadKey,
                error::BADTIME => TsigFailure::BadTime,
                error::BADTRUNC => TsigFailure::BadTrunc,
                _ => TsigFailure::BadSig,
            });
        }
        check_mac_size(self.key.algorithm, tsig.mac.len())?;
        let message = unsigned_form(packet, &tsig);
        let mut parts: Vec<&[u8]> = self.pending.iter().map(Vec::as_slice).collect();
        parts.push(&message);
        let mac = compute_mac(
            &self.key,
            Some(&self.prior),
            &parts,
            &Vars {
                time_signed: tsig.time_signed,
                fudge: tsig.fudge,
                error: tsig.error,
                other: &tsig.other,
                timers_only: !self.first,
            },
        );
        if !mac_matches(&mac, &tsig.mac) {
            return Err(TsigFailure::BadSig);
        }
        if now.abs_diff(tsig.time_signed) > u64::from(tsig.fudge) {
            return Err(TsigFailure::BadTime);
        }
        check_truncation(self.key.algorithm, tsig.mac.len())?;
        self.prior = tsig.mac;
        self.pending.clear();
        self.first = false;
        Ok(())
    }

    /// Whether the stream so far ended on a signed message.
    pub fn complete(&self) -> bool {
        !self.first && self.pending.is_empty()
    }
}

/// Signs the messages of a response stream as a server: the first over the
/// request MAC with all variables, the following ones over the previous
/// MAC with the timers only (RFC 8945 §5.3.1). Every message is signed.
pub struct StreamSigner {
    key: TsigKey,
    prior: Vec<u8>,
    first: bool,
}

impl StreamSigner {
    /// Starts from a verified request.
    pub fn new(verified: &Verified) -> Self {
        Self {
            key: verified.key.clone(),
            prior: verified.mac.clone(),
            first: true,
        }
    }

    /// Signs one message in place at `now`.
    pub fn sign(&mut self, message: &mut Vec<u8>, now: u64) {
        let mac = sign(
            &self.key,
            message,
            Some(&self.prior),
            !self.first,
            now,
            0,
            &[],
        );
        self.prior = mac;
        self.first = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transfer::message::{MessageBuilder, parse_request};

    fn key() -> TsigKey {
        TsigKey::new("xfr-key", Algorithm::HmacSha256, b"0123456789abcdef").unwrap()
    }

    fn keys() -> TsigKeys {
        let mut keys = TsigKeys::default();
        keys.insert(key());
        keys
    }

    fn signed_request(time: u64) -> (Vec<u8>, Vec<u8>) {
        let mut request =
            MessageBuilder::query(0x1234, 0, b"\x07example\x04test\x00", 252, false).finish(0);
        let mac = sign(&key(), &mut request, None, false, time, 0, &[]);
        (request, mac)
    }

    #[test]
    fn signed_request_verifies_and_stream_chains() {
        let (request, mac) = signed_request(1_000_000);
        let parsed = parse_request(&request).unwrap();
        let verified = verify_request(&keys(), &request, parsed.tsig_start.unwrap(), 1_000_010)
            .unwrap_or_else(|e| panic!("{:?}", e.failure));
        assert_eq!(verified.mac, mac);
        let mut signer = StreamSigner::new(&verified);
        let mut checker = ResponseVerifier::new(key(), mac);
        for _ in 0..3 {
            let mut message = MessageBuilder::response(&parsed, true).finish(0);
            signer.sign(&mut message, 1_000_011);
            let start = parse_request(&message).unwrap().tsig_start;
            checker.verify(&message, start, 1_000_012).unwrap();
        }
        assert!(checker.complete());
    }

    #[test]
    fn tampered_request_is_badsig_and_old_one_badtime() {
        let (mut request, _) = signed_request(1_000_000);
        let parsed = parse_request(&request).unwrap();
        let start = parsed.tsig_start.unwrap();
        assert_eq!(
            verify_request(&keys(), &request, start, 1_000_000 + 301)
                .unwrap_err()
                .failure,
            TsigFailure::BadTime
        );
        request[13] ^= 0x20; // a letter's case in the question
        assert_eq!(
            verify_request(&keys(), &request, start, 1_000_000)
                .unwrap_err()
                .failure,
            TsigFailure::BadSig
        );
        let other = TsigKeys::default();
        assert_eq!(
            verify_request(&other, &request, start, 1_000_000)
                .unwrap_err()
                .failure,
            TsigFailure::BadKey
        );
    }

    #[test]
    fn mac_size_truncation_and_earlier_time_are_refused() {
        let keys = keys();
        let failure = |request: &[u8], now| {
            let start = parse_request(request).unwrap().tsig_start.unwrap();
            verify_request(&keys, request, start, now)
                .map(|_| ())
                .map_err(|e| e.failure)
        };
        let unsigned =
            MessageBuilder::query(0x1234, 0, b"\x07example\x04test\x00", 252, false).finish(0);
        let (_, full) = signed_request(1_000_000);
        for (size, expected) in [
            (9, TsigFailure::MacSize),
            (15, TsigFailure::MacSize),
            (16, TsigFailure::BadTrunc),
            (31, TsigFailure::BadTrunc),
        ] {
            let mut request = unsigned.clone();
            append_tsig(
                &mut request,
                &key().wire,
                Algorithm::HmacSha256,
                1_000_000,
                &full[..size],
                0,
                &[],
            );
            assert_eq!(failure(&request, 1_000_000), Err(expected), "{size}");
        }
        let mut request = unsigned.clone();
        let mut long = full.clone();
        long.push(0);
        append_tsig(
            &mut request,
            &key().wire,
            Algorithm::HmacSha256,
            1_000_000,
            &long,
            0,
            &[],
        );
        assert_eq!(failure(&request, 1_000_000), Err(TsigFailure::MacSize));
        // §5.2.3: earlier than the key's last verified request.
        assert_eq!(failure(&signed_request(1_000_000).0, 1_000_000), Ok(()));
        assert_eq!(
            failure(&signed_request(999_999).0, 1_000_000),
            Err(TsigFailure::Replayed)
        );
        assert_eq!(failure(&signed_request(1_000_000).0, 1_000_000), Ok(()));
    }

    #[test]
    fn unsigned_first_response_is_refused() {
        let mut checker = ResponseVerifier::new(key(), vec![1; 32]);
        assert_eq!(
            checker.verify(&[0; 12], None, 0),
            Err(TsigFailure::Unsigned)
        );
    }
}

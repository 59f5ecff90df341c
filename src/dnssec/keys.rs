//! DNSSEC key pairs in BIND's format: reading (`K<zone>.+<alg>+<tag>.private`
//! with its `.key` beside it), generating (`gslb dnssec keygen`) and the DS
//! records given to the parent (`gslb dnssec ds`).
//!
//! Private key material lives only in [`ZoneKey`]'s signer, whose `Debug`
//! prints the public half; nothing here logs or formats a private key.

use std::fmt;
use std::path::{Path, PathBuf};

use data_encoding::{BASE64, HEXUPPER};
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _,
};

/// DNSKEY flags: Zone Key (RFC 4034 §2.1.1).
pub const FLAG_ZONE: u16 = 0x0100;
/// DNSKEY flags: Secure Entry Point (a KSK or CSK).
pub const FLAG_SEP: u16 = 0x0001;

/// A DNSSEC signing algorithm gslb supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// 13: ECDSA P-256 with SHA-256 (RFC 6605).
    EcdsaP256Sha256,
    /// 15: Ed25519 (RFC 8080).
    Ed25519,
}

impl Algorithm {
    /// The IANA number.
    pub fn number(self) -> u8 {
        match self {
            Algorithm::EcdsaP256Sha256 => 13,
            Algorithm::Ed25519 => 15,
        }
    }

    /// The algorithm with IANA number `number`, if supported.
    pub fn from_number(number: u8) -> Option<Self> {
        match number {
            13 => Some(Algorithm::EcdsaP256Sha256),
            15 => Some(Algorithm::Ed25519),
            _ => None,
        }
    }

    /// BIND's mnemonic.
    pub fn mnemonic(self) -> &'static str {
        match self {
            Algorithm::EcdsaP256Sha256 => "ECDSAP256SHA256",
            Algorithm::Ed25519 => "ED25519",
        }
    }
}

/// A key file problem, naming the file and what to do.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}: {message}", file.display())]
pub struct KeyError {
    /// The file at fault.
    pub file: PathBuf,
    /// What is wrong and how to fix it.
    pub message: String,
}

fn key_error(file: &Path, message: impl Into<String>) -> KeyError {
    KeyError {
        file: file.to_path_buf(),
        message: message.into(),
    }
}

/// The BIND timing fields of a key (Unix seconds).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timing {
    /// Published in the DNSKEY set from then on.
    pub publish: Option<i64>,
    /// Signs from then on.
    pub activate: Option<i64>,
    /// Stops signing then (stays published).
    pub inactive: Option<i64>,
    /// Leaves the DNSKEY set then.
    pub delete: Option<i64>,
}

impl Timing {
    /// Whether the key is in the DNSKEY set at `now`.
    pub fn published_at(&self, now: i64) -> bool {
        self.publish.is_none_or(|t| t <= now) && self.delete.is_none_or(|t| t > now)
    }

    /// Whether the key signs at `now` (published, activated, not yet inactive).
    pub fn active_at(&self, now: i64) -> bool {
        self.published_at(now)
            && self.activate.is_none_or(|t| t <= now)
            && self.inactive.is_none_or(|t| t > now)
    }

    /// The first timing event after `now`, when the key's state changes.
    pub fn next_event_after(&self, now: i64) -> Option<i64> {
        [self.publish, self.activate, self.inactive, self.delete]
            .into_iter()
            .flatten()
            .filter(|&t| t > now)
            .min()
    }
}

/// The private half, ready to sign.
enum Secret {
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// A zone's key pair as read from its files.
pub struct ZoneKey {
    /// The `.private` file (for messages and the status page).
    pub file: PathBuf,
    /// The algorithm.
    pub algorithm: Algorithm,
    /// DNSKEY flags (257 for a KSK/CSK, 256 for a ZSK).
    pub flags: u16,
    /// Key tag (RFC 4034 appendix B).
    pub tag: u16,
    /// The DNSKEY RDATA.
    pub dnskey: Box<[u8]>,
    /// The key file's timing fields.
    pub timing: Timing,
    /// Published without signing (`publish_only` in the config).
    pub publish_only: bool,
    secret: Secret,
}

impl fmt::Debug for ZoneKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the private key.
        f.debug_struct("ZoneKey")
            .field("file", &self.file)
            .field("algorithm", &self.algorithm)
            .field("flags", &self.flags)
            .field("tag", &self.tag)
            .field("timing", &self.timing)
            .field("publish_only", &self.publish_only)
            .finish_non_exhaustive()
    }
}

impl ZoneKey {
    /// Whether the key has the SEP flag (signs the DNSKEY set; DS at the parent).
    pub fn is_sep(&self) -> bool {
        self.flags & FLAG_SEP != 0
    }

    /// Whether the key signs at `now`.
    pub fn signs_at(&self, now: i64) -> bool {
        !self.publish_only && self.timing.active_at(now)
    }

    /// Signs `data`: the signature field of an RRSIG.
    ///
    /// # Errors
    /// Only when the system random source fails (ECDSA needs a nonce).
    pub fn sign(&self, data: &[u8]) -> Result<Vec<u8>, ring::error::Unspecified> {
        match &self.secret {
            Secret::Ecdsa(pair) => Ok(pair.sign(&SystemRandom::new(), data)?.as_ref().to_vec()),
            Secret::Ed25519(pair) => Ok(pair.sign(data).as_ref().to_vec()),
        }
    }

    /// The DS RDATA (SHA-256 digest, RFC 4509) for owner `origin` (wire).
    pub fn ds_rdata(&self, origin: &[u8]) -> Vec<u8> {
        let mut input = origin.to_vec();
        input.extend_from_slice(&self.dnskey);
        let digest = ring::digest::digest(&ring::digest::SHA256, &input);
        let mut rdata = self.tag.to_be_bytes().to_vec();
        rdata.extend_from_slice(&[self.algorithm.number(), 2]);
        rdata.extend_from_slice(digest.as_ref());
        rdata
    }

    /// The DS record in presentation format.
    pub fn ds_text(&self, origin: &[u8], origin_text: &str) -> String {
        let rdata = self.ds_rdata(origin);
        format!(
            "{origin_text} IN DS {} {} 2 {}",
            self.tag,
            self.algorithm.number(),
            HEXUPPER.encode(rdata.get(4..).unwrap_or_default())
        )
    }

    /// The DNSKEY record in presentation format.
    pub fn dnskey_text(&self, origin_text: &str) -> String {
        format!(
            "{origin_text} IN DNSKEY {} 3 {} {}",
            self.flags,
            self.algorithm.number(),
            BASE64.encode(self.dnskey.get(4..).unwrap_or_default())
        )
    }
}

/// Key tag of a DNSKEY RDATA (RFC 4034 appendix B).
pub fn key_tag(rdata: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for (i, &byte) in rdata.iter().enumerate() {
        sum += if i % 2 == 0 {
            u32::from(byte) << 8
        } else {
            u32::from(byte)
        };
    }
    sum += (sum >> 16) & 0xffff;
    (sum & 0xffff) as u16
}

/// Reads a key pair: `private` (a `.private` file) and the `.key` beside it.
/// `origin` is the zone's name as text with its final dot.
///
/// # Errors
/// Missing or unreadable files, a `.key` that does not match the
/// `.private`, an unsupported algorithm, a key for another zone.
pub fn load_key(private: &Path, origin: &str, publish_only: bool) -> Result<ZoneKey, KeyError> {
    let Some(stem) = private.to_str().and_then(|p| p.strip_suffix(".private")) else {
        return Err(key_error(
            private,
            "a key is named by its .private file (K<zone>.+<alg>+<tag>.private, as dnssec-keygen writes it)",
        ));
    };
    let public_path = PathBuf::from(format!("{stem}.key"));
    let private_text = std::fs::read_to_string(private).map_err(|err| {
        key_error(
            private,
            format!("cannot read private key file: {err} (generate one with `gslb dnssec keygen`)"),
        )
    })?;
    let public_text = std::fs::read_to_string(&public_path).map_err(|err| {
        key_error(
            &public_path,
            format!(
                "cannot read the public key file beside {}: {err}",
                private.display()
            ),
        )
    })?;
    let (owner, flags, algorithm_number, public_key) =
        parse_public(&public_text).ok_or_else(|| {
            key_error(
                &public_path,
                "no DNSKEY record found: expected `ZONE. IN DNSKEY FLAGS 3 ALG BASE64`",
            )
        })?;
    if !owner.eq_ignore_ascii_case(origin) {
        return Err(key_error(
            &public_path,
            format!("this key is for {owner}, not for zone {origin}: use a key made for {origin}"),
        ));
    }
    let fields = parse_private(&private_text);
    let private_algorithm = fields
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("Algorithm"))
        .and_then(|(_, v)| v.split_whitespace().next()?.parse::<u8>().ok());
    let Some(algorithm) = Algorithm::from_number(algorithm_number) else {
        return Err(key_error(
            &public_path,
            format!(
                "algorithm {algorithm_number} is not supported: use 13 (ECDSAP256SHA256) or 15 (ED25519)"
            ),
        ));
    };
    if private_algorithm != Some(algorithm_number) {
        return Err(key_error(
            private,
            format!(
                "the .private file's Algorithm does not match its .key ({algorithm_number}): the two files are not one key pair"
            ),
        ));
    }
    let secret_bytes = fields
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("PrivateKey"))
        .and_then(|(_, v)| BASE64.decode(v.trim().as_bytes()).ok())
        .ok_or_else(|| key_error(private, "no readable PrivateKey field"))?;
    let mismatch = || {
        key_error(
            private,
            format!(
                "the private key does not match {}: the two files are not one key pair",
                public_path.display()
            ),
        )
    };
    let secret = match algorithm {
        Algorithm::EcdsaP256Sha256 => {
            let mut uncompressed = vec![4u8];
            uncompressed.extend_from_slice(&public_key);
            Secret::Ecdsa(
                EcdsaKeyPair::from_private_key_and_public_key(
                    &ECDSA_P256_SHA256_FIXED_SIGNING,
                    &secret_bytes,
                    &uncompressed,
                    &SystemRandom::new(),
                )
                .map_err(|_| mismatch())?,
            )
        }
        Algorithm::Ed25519 => Secret::Ed25519(
            Ed25519KeyPair::from_seed_and_public_key(&secret_bytes, &public_key)
                .map_err(|_| mismatch())?,
        ),
    };
    let mut dnskey = flags.to_be_bytes().to_vec();
    dnskey.extend_from_slice(&[3, algorithm_number]);
    dnskey.extend_from_slice(&public_key);
    let timing_field = |name: &str| -> Result<Option<i64>, KeyError> {
        match fields.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)) {
            None => Ok(None),
            Some((_, value)) => parse_timestamp(value.trim()).map(Some).ok_or_else(|| {
                key_error(
                    private,
                    format!("bad {name} time {value:?}: expected YYYYMMDDHHMMSS (UTC)"),
                )
            }),
        }
    };
    let timing = Timing {
        publish: timing_field("Publish")?,
        activate: timing_field("Activate")?,
        inactive: timing_field("Inactive")?,
        delete: timing_field("Delete")?,
    };
    Ok(ZoneKey {
        file: private.to_path_buf(),
        algorithm,
        flags,
        tag: key_tag(&dnskey),
        dnskey: dnskey.into_boxed_slice(),
        timing,
        publish_only,
        secret,
    })
}

/// The DNSKEY record of a `.key` file: owner, flags, algorithm, public key.
fn parse_public(text: &str) -> Option<(String, u16, u8, Vec<u8>)> {
    for line in text.lines() {
        let line = line.split(';').next().unwrap_or_default();
        let tokens: Vec<&str> = line.split_whitespace().collect();
        let Some(position) = tokens.iter().position(|t| t.eq_ignore_ascii_case("DNSKEY")) else {
            continue;
        };
        let owner = tokens.first()?.to_string();
        let rest = tokens.get(position + 1..)?;
        let flags = rest.first()?.parse().ok()?;
        let algorithm = rest.get(2)?.parse().ok()?;
        let key = BASE64.decode(rest.get(3..)?.concat().as_bytes()).ok()?;
        let owner = if owner.ends_with('.') {
            owner
        } else {
            format!("{owner}.")
        };
        return Some((owner, flags, algorithm, key));
    }
    None
}

/// `Name: value` lines of a `.private` file.
fn parse_private(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| {
            let (key, value) = line.split_once(':')?;
            Some((key.trim().to_string(), value.trim().to_string()))
        })
        .collect()
}

/// `YYYYMMDDHHMMSS` (UTC) → Unix seconds.
pub fn parse_timestamp(text: &str) -> Option<i64> {
    if text.len() != 14 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let field = |range: std::ops::Range<usize>| text.get(range)?.parse::<i64>().ok();
    let (year, month, day) = (field(0..4)?, field(4..6)?, field(6..8)?);
    let (hour, minute, second) = (field(8..10)?, field(10..12)?, field(12..14)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

/// Unix seconds → `YYYYMMDDHHMMSS` (UTC).
pub fn format_timestamp(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}{month:02}{day:02}{:02}{:02}{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Writes a new CSK (flags 257) for `origin` (text with its final dot) in
/// BIND's format into `dir`; returns the `.private` path. The private file
/// is created readable by its owner only.
///
/// # Errors
/// When the key cannot be generated or a file cannot be written.
pub fn generate(
    origin: &str,
    algorithm: Algorithm,
    dir: &Path,
    now: i64,
) -> Result<PathBuf, KeyError> {
    let rng = SystemRandom::new();
    let failed = |what: &str| key_error(dir, format!("cannot generate a key: {what}"));
    let (secret, public): (Vec<u8>, Vec<u8>) = match algorithm {
        Algorithm::EcdsaP256Sha256 => {
            let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .map_err(|_| failed("random source"))?;
            let pair =
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
                    .map_err(|_| failed("key pair"))?;
            // ECPrivateKey (RFC 5915) inside the PKCS#8 document: version 1,
            // then the 32-byte private scalar.
            let bytes = pkcs8.as_ref();
            let marker = [0x02, 0x01, 0x01, 0x04, 0x20];
            let start = bytes
                .windows(marker.len())
                .position(|w| w == marker)
                .ok_or_else(|| failed("unexpected PKCS#8 layout"))?
                + marker.len();
            let scalar = bytes
                .get(start..start + 32)
                .ok_or_else(|| failed("unexpected PKCS#8 layout"))?
                .to_vec();
            let public = pair
                .public_key()
                .as_ref()
                .get(1..)
                .unwrap_or_default()
                .to_vec();
            (scalar, public)
        }
        Algorithm::Ed25519 => {
            let mut seed = [0u8; 32];
            ring::rand::SecureRandom::fill(&rng, &mut seed).map_err(|_| failed("random source"))?;
            let pair =
                Ed25519KeyPair::from_seed_unchecked(&seed).map_err(|_| failed("key pair"))?;
            (seed.to_vec(), pair.public_key().as_ref().to_vec())
        }
    };
    let flags = FLAG_ZONE | FLAG_SEP;
    let mut dnskey = flags.to_be_bytes().to_vec();
    dnskey.extend_from_slice(&[3, algorithm.number()]);
    dnskey.extend_from_slice(&public);
    let tag = key_tag(&dnskey);
    let base = format!("K{origin}+{:03}+{tag:05}", algorithm.number());
    let created = format_timestamp(now);
    let public_text = format!(
        "; This is a key-signing key, keyid {tag}, for {origin}\n; Created: {created}\n{origin} IN DNSKEY {flags} 3 {} {}\n",
        algorithm.number(),
        BASE64.encode(&public)
    );
    let private_text = format!(
        "Private-key-format: v1.3\nAlgorithm: {} ({})\nPrivateKey: {}\nCreated: {created}\nPublish: {created}\nActivate: {created}\n",
        algorithm.number(),
        algorithm.mnemonic(),
        BASE64.encode(&secret)
    );
    std::fs::create_dir_all(dir)
        .map_err(|err| key_error(dir, format!("cannot create directory: {err}")))?;
    let public_path = dir.join(format!("{base}.key"));
    let private_path = dir.join(format!("{base}.private"));
    std::fs::write(&public_path, public_text)
        .map_err(|err| key_error(&public_path, format!("cannot write: {err}")))?;
    write_private(&private_path, private_text.as_bytes())
        .map_err(|err| key_error(&private_path, format!("cannot write: {err}")))?;
    Ok(private_path)
}

/// Creates `path` with mode 0600 (owner only) and writes `bytes`.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)
}

/// Whether a file is readable by users other than its owner.
pub fn readable_by_others(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o044 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip() {
        assert_eq!(parse_timestamp("19700101000000"), Some(0));
        assert_eq!(parse_timestamp("20000301000000"), Some(951_868_800));
        for t in [0, 951_868_800, 1_800_000_000, 4_102_444_799] {
            assert_eq!(parse_timestamp(&format_timestamp(t)), Some(t));
        }
        assert_eq!(parse_timestamp("2024010100000"), None);
        assert_eq!(parse_timestamp("20241301000000"), None);
    }

    #[test]
    fn key_tag_matches_rfc_4034_example() {
        // The DNSKEY of RFC 4034 §5.4 (example. DS 60485 5 1 …) has tag 60485.
        let key = BASE64
            .decode(b"AQOeiiR0GOMYkDshWoSKz9XzfwJr1AYtsmx3TGkJaNXVbfi/2pHm822aJ5iI9BMzNXxeYCmZDRD99WYwYqUSdjMmmAphXdvxegXd/M5+X7OrzKBaMbCVdFLUUh6DhweJBjEVv5f2wwjM9XzcnOf+EPbtG9DMBmADjFDc2w/rljwvFw==")
            .unwrap();
        let mut rdata = vec![1, 0, 3, 5];
        rdata.extend_from_slice(&key);
        assert_eq!(key_tag(&rdata), 60485);
    }

    #[test]
    fn generated_keys_load_and_sign_for_both_algorithms() {
        let dir = std::env::temp_dir().join(format!("gslb-keygen-{}", std::process::id()));
        for algorithm in [Algorithm::EcdsaP256Sha256, Algorithm::Ed25519] {
            let path = generate("example.test.", algorithm, &dir, 1_800_000_000).unwrap();
            assert!(!readable_by_others(&path));
            let key = load_key(&path, "example.test.", false).unwrap();
            assert_eq!(key.algorithm, algorithm);
            assert!(key.is_sep());
            assert!(key.signs_at(1_800_000_000));
            assert!(!format!("{key:?}").contains("PrivateKey"));
            let other = load_key(&path, "other.test.", false).unwrap_err();
            assert!(
                other.message.contains("not for zone other.test."),
                "{other}"
            );
            assert!(!key.sign(b"data").unwrap().is_empty());
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

//! The query log: one line per sampled query (client, ECS, name, type,
//! service, pool, endpoints, rcode), off by default.
//!
//! DNS workers never block on it and never format text: a sampled query
//! becomes a fixed-size [`QueryLogEntry`] pushed with `try_send` into a
//! bounded channel; a logger thread formats and writes it through `tracing`
//! (target `gslb::query`, so `--log-format json` gives JSON lines). When the
//! channel is full the entry is dropped and counted. Settings come from
//! `[query_log]` and follow reloads (atomics, read with relaxed loads).

use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::config::QueryLogToml;
use crate::dns::answer::{Outcome, Transport};
use crate::dns::wire::ClientSubnet;
use crate::hash::SplitMix64;
use crate::policy::MAX_RECORDS;
use crate::snapshot::Snapshot;
use crate::wire::Rcode;

/// Entries waiting for the logger thread; more are dropped.
const QUEUE_LEN: usize = 4096;
/// Longest wire name kept (RFC 1035 §2.3.4: 255 octets).
const NAME_MAX: usize = 255;

/// What the logger needs about one query, copied out of the worker's buffers.
#[derive(Debug)]
pub struct QueryLogEntry {
    /// The snapshot that answered (names of services, pools and endpoints).
    snapshot: Arc<Snapshot>,
    transport: Transport,
    client: IpAddr,
    subnet: Option<ClientSubnet>,
    qname: [u8; NAME_MAX],
    qname_len: usize,
    qtype: u16,
    rcode: Rcode,
    /// (service index, pool index, chosen endpoint indices and count, failover).
    service: Option<ServiceChoice>,
}

/// The service part of an entry.
type ServiceChoice = (usize, Option<usize>, ([u16; MAX_RECORDS], usize), bool);

impl QueryLogEntry {
    /// Copies what the log line needs.
    pub fn new(
        snapshot: &Arc<Snapshot>,
        transport: Transport,
        client: IpAddr,
        packet: &[u8],
        outcome: &Outcome<'_>,
        service: Option<ServiceChoice>,
    ) -> Self {
        let mut qname = [0u8; NAME_MAX];
        let qname_len = question_name_into(packet, &mut qname);
        Self {
            snapshot: snapshot.clone(),
            transport,
            client,
            subnet: crate::dns::wire::parse_query(packet)
                .ok()
                .and_then(|query| query.edns?.client_subnet),
            qname,
            qname_len,
            qtype: outcome.qtype,
            rcode: outcome.rcode,
            service,
        }
    }

    /// The log line's fields, formatted (on the logger thread).
    fn write(&self) {
        let mut name = String::new();
        crate::wire::name_text(self.qname.get(..self.qname_len).unwrap_or(&[]), &mut name);
        let ecs = self.subnet.map_or_else(
            || "-".to_string(),
            |s| format!("{}/{}", s.address, s.source_prefix_len),
        );
        let (mut service, mut pool, mut endpoints, mut failover) =
            ("-".to_string(), "-".to_string(), String::new(), false);
        if let Some((service_index, pool_index, (chosen, count), was_failover)) = &self.service {
            failover = *was_failover;
            if let Some(s) = self.snapshot.services.get(*service_index) {
                service.clone_from(&s.name);
                if let Some(p) = pool_index.and_then(|i| s.pools.get(i)) {
                    pool.clone_from(&p.name);
                    for &index in chosen.iter().take(*count) {
                        if let Some(endpoint) = p.endpoints.get(usize::from(index)) {
                            if !endpoints.is_empty() {
                                endpoints.push(',');
                            }
                            let target = endpoint
                                .key
                                .split_once('/')
                                .map_or(&endpoint.key[..], |(_, t)| t);
                            endpoints.push_str(target);
                        }
                    }
                }
            }
        }
        if endpoints.is_empty() {
            endpoints.push('-');
        }
        let mut qtype = String::new();
        let _ = write!(qtype, "{}", type_name(self.qtype));
        tracing::info!(
            target: "gslb::query",
            client = %self.client,
            ecs = %ecs,
            name = %name,
            qtype = %qtype,
            transport = match self.transport { Transport::Udp => "udp", Transport::Tcp => "tcp" },
            rcode = rcode_name(self.rcode),
            service = %service,
            pool = %pool,
            endpoints = %endpoints,
            failover,
            "query"
        );
    }
}

/// Copies the question name (uncompressed labels after the 12-byte header)
/// into `out`; returns its length, 0 when unreadable.
pub fn question_name_into(packet: &[u8], out: &mut [u8; NAME_MAX]) -> usize {
    let mut pos = 12;
    loop {
        let Some(&len) = packet.get(pos) else {
            return 0;
        };
        if len & 0xc0 != 0 {
            return 0;
        }
        let end = pos + 1 + usize::from(len);
        if end - 12 > NAME_MAX {
            return 0;
        }
        let (Some(src), Some(dst)) = (packet.get(pos..end), out.get_mut(pos - 12..end - 12)) else {
            return 0;
        };
        dst.copy_from_slice(src);
        if len == 0 {
            return end - 12;
        }
        pos = end;
    }
}

fn type_name(qtype: u16) -> String {
    match qtype {
        0 => "-".to_string(),
        1 => "A".to_string(),
        2 => "NS".to_string(),
        5 => "CNAME".to_string(),
        6 => "SOA".to_string(),
        12 => "PTR".to_string(),
        15 => "MX".to_string(),
        16 => "TXT".to_string(),
        28 => "AAAA".to_string(),
        33 => "SRV".to_string(),
        65 => "HTTPS".to_string(),
        255 => "ANY".to_string(),
        other => format!("TYPE{other}"),
    }
}

fn rcode_name(rcode: Rcode) -> &'static str {
    match rcode.value() {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        16 => "BADVERS",
        9 => "NOTAUTH",
        _ => "other",
    }
}

/// Counters of the query log, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueryLogCounts {
    /// Lines written.
    pub written: u64,
    /// Entries dropped because the queue was full.
    pub queue_full: u64,
    /// Sampled queries skipped by `max_per_second`.
    pub rate_limited: u64,
}

/// The query log's settings, queue and counters.
#[derive(Debug)]
pub struct QueryLog {
    enabled: AtomicBool,
    /// A query is sampled when a random u64 is at most this.
    sample_threshold: AtomicU64,
    /// Token bucket size and refill per second; 0 = unlimited.
    max_per_second: AtomicU32,
    tokens: AtomicU32,
    sender: OnceLock<SyncSender<QueryLogEntry>>,
    written: AtomicU64,
    queue_full: AtomicU64,
    rate_limited: AtomicU64,
}

impl Default for QueryLog {
    fn default() -> Self {
        Self {
            enabled: AtomicBool::new(false),
            sample_threshold: AtomicU64::new(u64::MAX),
            max_per_second: AtomicU32::new(0),
            tokens: AtomicU32::new(0),
            sender: OnceLock::new(),
            written: AtomicU64::new(0),
            queue_full: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
        }
    }
}

impl QueryLog {
    /// Applies `[query_log]` (at start and on every reload).
    pub fn configure(&self, settings: &QueryLogToml) {
        let rate = settings.sample_rate.get_ref().clamp(0.0, 1.0);
        let threshold = if rate >= 1.0 {
            u64::MAX
        } else {
            (rate * u64::MAX as f64) as u64
        };
        self.sample_threshold.store(threshold, Ordering::Relaxed);
        self.max_per_second
            .store(settings.max_per_second, Ordering::Relaxed);
        self.tokens
            .store(settings.max_per_second, Ordering::Relaxed);
        self.enabled
            .store(settings.enabled && rate > 0.0, Ordering::Relaxed);
    }

    /// Starts the logger thread (once; later calls do nothing).
    ///
    /// # Errors
    /// The thread cannot be spawned.
    pub fn start(self: &Arc<Self>) -> std::io::Result<()> {
        if self.sender.get().is_some() {
            return Ok(());
        }
        let (sender, receiver) = std::sync::mpsc::sync_channel(QUEUE_LEN);
        if self.sender.set(sender).is_err() {
            return Ok(());
        }
        let log = self.clone();
        std::thread::Builder::new()
            .name("query-log".to_string())
            .spawn(move || log.run(&receiver))?;
        Ok(())
    }

    /// Whether to log the next query: enabled, sampled and within the rate.
    #[inline]
    pub fn wants(&self, rng: &mut SplitMix64) -> bool {
        if !self.enabled.load(Ordering::Relaxed) || self.sender.get().is_none() {
            return false;
        }
        let threshold = self.sample_threshold.load(Ordering::Relaxed);
        if threshold != u64::MAX && rng.next_u64() > threshold {
            return false;
        }
        if self.max_per_second.load(Ordering::Relaxed) == 0 {
            return true;
        }
        let taken = self.tokens.load(Ordering::Relaxed) > 0
            && self
                .tokens
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| t.checked_sub(1))
                .is_ok();
        if !taken {
            self.rate_limited.fetch_add(1, Ordering::Relaxed);
        }
        taken
    }

    /// Queues an entry; drops (and counts) it when the queue is full.
    pub fn submit(&self, entry: QueryLogEntry) {
        let Some(sender) = self.sender.get() else {
            return;
        };
        match sender.try_send(entry) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.queue_full.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The counters.
    pub fn counts(&self) -> QueryLogCounts {
        QueryLogCounts {
            written: self.written.load(Ordering::Relaxed),
            queue_full: self.queue_full.load(Ordering::Relaxed),
            rate_limited: self.rate_limited.load(Ordering::Relaxed),
        }
    }

    /// The logger thread: writes entries and, while the log is enabled,
    /// refills the token bucket every 50 ms. While it is disabled it sleeps
    /// until an entry comes (none do until a reload enables it, which also
    /// fills the bucket): an idle server's DNS workers share their cores
    /// with no timer.
    fn run(&self, receiver: &Receiver<QueryLogEntry>) {
        let mut refilled = Instant::now();
        loop {
            let received = if self.enabled.load(Ordering::Relaxed) {
                receiver.recv_timeout(Duration::from_millis(50))
            } else {
                receiver
                    .recv()
                    .map_err(|_| std::sync::mpsc::RecvTimeoutError::Disconnected)
            };
            match received {
                Ok(entry) => {
                    entry.write();
                    self.written.fetch_add(1, Ordering::Relaxed);
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
            }
            let max = self.max_per_second.load(Ordering::Relaxed);
            let elapsed = refilled.elapsed();
            let add = (elapsed.as_secs_f64() * f64::from(max)) as u32;
            if add > 0 || max == 0 {
                // Keep the fraction not yet turned into a token.
                refilled += Duration::from_secs_f64(f64::from(add) / f64::from(max.max(1)));
                if max == 0 {
                    refilled = Instant::now();
                }
                let _ = self
                    .tokens
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                        Some(t.saturating_add(add).min(max))
                    });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn question_name_is_copied_or_rejected() {
        let mut packet = vec![0u8; 12];
        packet.extend_from_slice(b"\x03www\x04test\x00\x00\x01\x00\x01");
        let mut out = [0u8; NAME_MAX];
        let len = question_name_into(&packet, &mut out);
        assert_eq!(&out[..len], b"\x03www\x04test\x00");
        // Truncated and compressed names are not read.
        assert_eq!(question_name_into(&packet[..16], &mut out), 0);
        let mut compressed = vec![0u8; 12];
        compressed.extend_from_slice(&[0xc0, 12]);
        assert_eq!(question_name_into(&compressed, &mut out), 0);
    }

    #[test]
    fn sampling_and_rate_limit() {
        let log = Arc::new(QueryLog::default());
        let mut rng = SplitMix64(1);
        // Disabled, or not started: never.
        assert!(!log.wants(&mut rng));
        let (sender, _receiver) = std::sync::mpsc::sync_channel(1);
        assert!(log.sender.set(sender).is_ok());
        let mut settings = QueryLogToml {
            enabled: true,
            ..QueryLogToml::default()
        };
        settings.max_per_second = 3;
        log.configure(&settings);
        let taken = (0..10).filter(|_| log.wants(&mut rng)).count();
        assert_eq!(taken, 3);
        assert_eq!(log.counts().rate_limited, 7);
        settings.max_per_second = 0;
        settings.sample_rate = toml::Spanned::new(0..0, 0.25);
        log.configure(&settings);
        let taken = (0..4000).filter(|_| log.wants(&mut rng)).count();
        assert!((800..1200).contains(&taken), "{taken}");
    }
}

//! Sockets: UDP workers and TCP connections feeding `served::handle_packet`.
//!
//! The only module that does network I/O for DNS. Each UDP socket (one per
//! worker, SO_REUSEPORT, so the kernel spreads clients over cores) is served
//! by its own OS thread in batches (`udp_batch`): one `recvmmsg` takes up to
//! [`UDP_BATCH`] queries, one `sendmmsg` returns their replies, as gdnsd
//! does. TCP runs on tokio. Each query (each UDP batch) loads the current
//! served state ([`Served`](super::served::Served)), then the health table's
//! current view, once each (`ArcSwap::load`, lock-free), and never holds them
//! across an `.await`.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use super::answer::{Outcome, Transport};
use super::reply_buffer::UdpReply;
use super::rrl::RrlVerdict;
use super::served::{SharedServed, handle_packet, handle_udp_query};
use super::udp_batch::{UDP_BATCH, UdpBatch};
use super::wire::truncate_reply;
use crate::hash::SplitMix64;
use crate::health::HealthTable;
use crate::snapshot::Snapshot;
use crate::transfer::Hub;

/// Where a server reports the queries it handles. The metrics and the query
/// log implement it (`metrics::Observer`), above `dns`, which knows neither.
pub trait Observe: Send + 'static {
    /// What records one worker's queries.
    type Recorder: RecordQueries;
    /// A recorder of its own for a UDP worker, or for the TCP connections
    /// of a listener (which `fork` it).
    fn recorder(&self, transport: Transport) -> Self::Recorder;
}

/// Records what happened to each query of one worker. Called on the query
/// path: takes no lock and allocates nothing in the ordinary case.
pub trait RecordQueries: Send + 'static {
    /// Sets the snapshot the next queries are answered from (once per UDP
    /// batch or TCP query; cheap while it stays the same).
    fn set_snapshot(&mut self, snapshot: &Arc<Snapshot>);
    /// Records one query answered from that snapshot: `outcome` is what the
    /// answer path returned (`None`: dropped), `packet` the query bytes.
    fn record(
        &self,
        snapshot: &Arc<Snapshot>,
        packet: &[u8],
        peer: IpAddr,
        outcome: Option<&Outcome<'_>>,
    );
    /// Counts a response that rate limiting dropped or slipped.
    fn record_rate_limited(&self, verdict: RrlVerdict);
    /// A recorder for one more TCP connection, sharing this one's counters.
    #[must_use]
    fn fork(&mut self) -> Self;
}

/// Limits that keep slow or greedy TCP clients from holding the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpLimits {
    /// Concurrent connections per listener; more are closed at once.
    pub max_connections: usize,
    /// How long a connection may sit idle, or take to send one query
    /// (a slow-loris client is cut off after this).
    pub idle_timeout: Duration,
    /// Queries answered per connection before it is closed.
    pub max_queries: u32,
}

/// Sockets bound for one listen address.
pub struct BoundListener {
    /// The actual address (port filled in when 0 was asked for).
    pub local_addr: SocketAddr,
    udp: Vec<std::net::UdpSocket>,
    tcp: TcpListener,
}

/// Binds UDP (one SO_REUSEPORT socket per worker) and TCP on the same port.
///
/// # Errors
/// The address cannot be bound.
pub fn bind(addr: SocketAddr, udp_workers: usize) -> io::Result<BoundListener> {
    let workers = udp_workers.max(1);
    // With port 0, the kernel picks the UDP port; TCP must then get the same
    // one, which can be taken already: retry a few times.
    let mut last_err = None;
    for _ in 0..16 {
        let first = bind_udp(addr)?;
        let local_addr = first
            .local_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::other("bound socket has no IP address"))?;
        let tcp = match bind_tcp(local_addr) {
            Ok(tcp) => tcp,
            Err(err) if addr.port() == 0 => {
                last_err = Some(err);
                continue;
            }
            Err(err) => return Err(err),
        };
        let mut udp: Vec<std::net::UdpSocket> = vec![into_blocking(first)?];
        for _ in 1..workers {
            udp.push(into_blocking(bind_udp(local_addr)?)?);
        }
        return Ok(BoundListener {
            local_addr,
            udp,
            tcp: TcpListener::from_std(tcp.into())?,
        });
    }
    Err(last_err.unwrap_or_else(|| io::Error::other("cannot bind TCP and UDP on one port")))
}

fn new_socket(addr: SocketAddr, kind: Type, protocol: Protocol) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), kind, Some(protocol))?;
    if addr.is_ipv6() {
        // Lets 0.0.0.0 and [::] be listed as separate listeners.
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// UDP workers block in `recvmmsg` on their own thread.
fn into_blocking(socket: Socket) -> io::Result<std::net::UdpSocket> {
    socket.set_nonblocking(false)?;
    Ok(socket.into())
}

fn bind_udp(addr: SocketAddr) -> io::Result<Socket> {
    let socket = new_socket(addr, Type::DGRAM, Protocol::UDP)?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    Ok(socket)
}

fn bind_tcp(addr: SocketAddr) -> io::Result<Socket> {
    let socket = new_socket(addr, Type::STREAM, Protocol::TCP)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket)
}

/// Serves a bound listener: UDP worker threads, and TCP until the task is dropped.
///
/// # Errors
/// A UDP worker thread cannot be started.
pub async fn serve<O: Observe>(
    listener: BoundListener,
    served: SharedServed,
    health: Arc<HealthTable>,
    observer: O,
    tcp_limits: TcpLimits,
    transfers: Arc<Hub>,
) -> io::Result<()> {
    for (index, socket) in listener.udp.into_iter().enumerate() {
        let served = served.clone();
        let transfers = transfers.clone();
        let health = health.clone();
        // Each worker thread records into a metrics slot of its own.
        let recorder = observer.recorder(Transport::Udp);
        std::thread::Builder::new()
            .name(format!("udp-{}-{index}", listener.local_addr))
            .spawn(move || serve_udp(&socket, &served, &health, recorder, &transfers))?;
    }
    serve_tcp(
        listener.tcp,
        served,
        health,
        observer.recorder(Transport::Tcp),
        tcp_limits,
        transfers,
    )
    .await;
    Ok(())
}

/// One UDP worker: batches of queries in, batches of replies out.
fn serve_udp<R: RecordQueries>(
    socket: &std::net::UdpSocket,
    served: &SharedServed,
    health: &HealthTable,
    mut recorder: R,
    transfers: &Hub,
) {
    let mut batch = UdpBatch::new(socket.as_fd());
    // Per-query seeds count up: the policy mixes its seed before drawing.
    let mut seed = initial_seed();
    let mut replies: Vec<UdpReply> = (0..UDP_BATCH).map(|_| UdpReply::new()).collect();
    // Reply k answers query `reply_to[k]` of the batch.
    let mut reply_to = [0u8; UDP_BATCH];
    // Rate limiting counts whole seconds on a monotonic clock, read at most
    // once per batch, and only when it is on.
    let started = std::time::Instant::now();
    // The served state and the health view, each cached by the worker and
    // loaded again only when it changed: while neither does, a batch checks
    // two pointers instead of making two arc-swap loads (a third of the
    // instructions of a batch of one). The price: an idle worker keeps the
    // state it last served alive until its next query.
    let mut served = arc_swap::Cache::new(&**served);
    let mut health = health.view_cache();
    loop {
        let count = match batch.receive() {
            Ok(count) => count,
            Err(err) => {
                // EINTR, or ICMP-induced errors: keep serving.
                tracing::debug!(error = %err, "udp receive failed");
                continue;
            }
        };
        let mut answered = 0;
        {
            // The snapshot first: a view loaded after it knows its endpoints.
            let current = served.load();
            let view = health.load();
            let mut now_secs = None;
            // Metrics: cells found once per batch (looked up after a reload).
            recorder.set_snapshot(&current.snapshot);
            for index in 0..count {
                let Some((buffer, len, peer_ip)) = batch.query(index) else {
                    continue;
                };
                let reply = &mut replies[answered];
                if is_notify(&buffer[..len]) {
                    // NOTIFY (RFC 1996) belongs to the transfer code.
                    let answer =
                        transfers.answer_notify_udp(&current.snapshot, &buffer[..len], peer_ip);
                    if let Some(answer) = answer
                        && reply
                            .write_with(|out| {
                                out.extend_from_slice(&answer);
                                Some(())
                            })
                            .is_some()
                    {
                        reply_to[answered] = index as u8;
                        answered += 1;
                    }
                    continue;
                }
                seed = seed.wrapping_add(1);
                let outcome = handle_udp_query(current, view, buffer, len, peer_ip, seed, reply);
                let query = &buffer[..len];
                recorder.record(&current.snapshot, query, peer_ip, outcome.as_ref());
                if outcome.is_none() {
                    continue;
                }
                if let Some(limiter) = &current.rrl {
                    let now = *now_secs.get_or_insert_with(|| started.elapsed().as_secs() as u32);
                    let verdict = limiter.check(peer_ip, now);
                    recorder.record_rate_limited(verdict);
                    match verdict {
                        RrlVerdict::Send => {}
                        RrlVerdict::Slip => {
                            let len = truncate_reply(reply.as_bytes_mut());
                            reply.truncate(len);
                        }
                        RrlVerdict::Drop => continue,
                    }
                }
                reply_to[answered] = index as u8;
                answered += 1;
            }
        }
        if answered == 0 {
            continue;
        }
        if let Err(err) = batch.send(&replies[..answered], &reply_to[..answered]) {
            tracing::debug!(error = %err, "udp send failed");
        }
    }
}

async fn serve_tcp<R: RecordQueries>(
    listener: TcpListener,
    served: SharedServed,
    health: Arc<HealthTable>,
    mut recorder: R,
    limits: TcpLimits,
    transfers: Arc<Hub>,
) {
    let limit = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                tracing::warn!(error = %err, "tcp accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            // Over the limit: close at once rather than queue.
            drop(stream);
            continue;
        };
        let served = served.clone();
        let health = health.clone();
        let recorder = recorder.fork();
        let transfers = transfers.clone();
        tokio::spawn(async move {
            let served =
                serve_tcp_connection(stream, peer, served, health, recorder, limits, &transfers)
                    .await;
            if let Err(err) = served {
                tracing::debug!(error = %err, %peer, "tcp connection ended");
            }
            drop(permit);
        });
    }
}

async fn serve_tcp_connection<R: RecordQueries>(
    mut stream: TcpStream,
    peer: SocketAddr,
    served: SharedServed,
    health: Arc<HealthTable>,
    mut recorder: R,
    limits: TcpLimits,
    transfers: &Hub,
) -> io::Result<()> {
    let mut rng = SplitMix64(initial_seed());
    let mut query = Vec::with_capacity(512);
    let mut reply = Vec::with_capacity(4096);
    let mut framed = Vec::with_capacity(4096);
    // Pipelined queries are answered in order, each as soon as it is read.
    for _ in 0..limits.max_queries {
        let mut len_bytes = [0u8; 2];
        match tokio::time::timeout(limits.idle_timeout, stream.read_exact(&mut len_bytes)).await {
            Ok(Ok(_)) => {}
            Ok(Err(err)) if err.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Ok(Err(err)) => return Err(err),
            Err(_) => return Ok(()),
        }
        let len = usize::from(u16::from_be_bytes(len_bytes));
        query.resize(len, 0);
        match tokio::time::timeout(limits.idle_timeout, stream.read_exact(&mut query)).await {
            Ok(result) => {
                result?;
            }
            Err(_) => return Ok(()),
        }
        if crate::transfer::request_kind(&query).is_some() {
            // AXFR, IXFR and NOTIFY: the transfer code answers, in as many
            // messages as it takes (the snapshot is held as an Arc, not a
            // guard, across the writes).
            transfers
                .serve_tcp(served.load().snapshot.clone(), &query, peer, &mut stream)
                .await?;
            continue;
        }
        let answered = {
            let current = served.load();
            let outcome = handle_packet(
                &current,
                &health.view(),
                &query,
                peer.ip(),
                Transport::Tcp,
                rng.next_u64(),
                &mut reply,
            );
            recorder.set_snapshot(&current.snapshot);
            recorder.record(&current.snapshot, &query, peer.ip(), outcome.as_ref());
            outcome.is_some()
        };
        if !answered {
            continue;
        }
        framed.clear();
        framed.extend_from_slice(&(reply.len() as u16).to_be_bytes());
        framed.extend_from_slice(&reply);
        stream.write_all(&framed).await?;
    }
    Ok(())
}

/// Whether a received datagram is a NOTIFY request (opcode 4, QR clear):
/// one byte of the header, so ordinary queries pay nothing more.
#[inline]
fn is_notify(buffer: &[u8]) -> bool {
    buffer.get(2).is_some_and(|flags| flags & 0xf8 == 4 << 3)
}

/// A per-task seed for weighted random choices: different per task and run.
fn initial_seed() -> u64 {
    static TASKS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let task = TASKS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    now ^ task.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ u64::from(std::process::id())
}

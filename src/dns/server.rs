//! Sockets: UDP workers and TCP connections feeding `answer::handle_packet`.
//!
//! The only module that does network I/O for DNS. Each query loads the
//! current snapshot once (`ArcSwap::load`, lock-free) and never holds it
//! across an `.await`.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;

use super::answer::{Transport, handle_packet};
use crate::policy::SplitMix64;
use crate::snapshot::Snapshot;

/// The snapshot currently answering queries, replaced whole on reload.
pub type SharedSnapshot = Arc<ArcSwap<Snapshot>>;

/// Largest UDP datagram we read.
const UDP_RECV_BUF: usize = 65_535;
/// How long a TCP connection may sit idle between queries.
const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Concurrent TCP connections per listener.
const TCP_MAX_CONNECTIONS: usize = 512;

/// Sockets bound for one listen address.
pub struct BoundListener {
    /// The actual address (port filled in when 0 was asked for).
    pub local_addr: SocketAddr,
    udp: Vec<UdpSocket>,
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
        let mut udp = vec![UdpSocket::from_std(first.into())?];
        for _ in 1..workers {
            udp.push(UdpSocket::from_std(bind_udp(local_addr)?.into())?);
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

/// Serves a bound listener until the task is dropped.
pub async fn serve(listener: BoundListener, snapshot: SharedSnapshot) {
    let mut tasks = tokio::task::JoinSet::new();
    for socket in listener.udp {
        tasks.spawn(serve_udp(socket, snapshot.clone()));
    }
    tasks.spawn(serve_tcp(listener.tcp, snapshot));
    while tasks.join_next().await.is_some() {}
}

async fn serve_udp(socket: UdpSocket, snapshot: SharedSnapshot) {
    let mut rng = SplitMix64(initial_seed());
    let mut recv_buf = vec![0u8; UDP_RECV_BUF];
    let mut reply = Vec::with_capacity(4096);
    loop {
        let (len, peer) = match socket.recv_from(&mut recv_buf).await {
            Ok(received) => received,
            Err(err) => {
                // ICMP-induced errors (e.g. port unreachable) must not stop the loop.
                tracing::debug!(error = %err, "udp receive failed");
                continue;
            }
        };
        let answered = {
            let current = snapshot.load();
            handle_packet(
                &current,
                &recv_buf[..len],
                peer.ip(),
                Transport::Udp,
                rng.next_u64(),
                &mut reply,
            )
        };
        if answered.is_some()
            && let Err(err) = socket.send_to(&reply, peer).await
        {
            tracing::debug!(error = %err, %peer, "udp send failed");
        }
    }
}

async fn serve_tcp(listener: TcpListener, snapshot: SharedSnapshot) {
    let limit = Arc::new(Semaphore::new(TCP_MAX_CONNECTIONS));
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
        let snapshot = snapshot.clone();
        tokio::spawn(async move {
            if let Err(err) = serve_tcp_connection(stream, peer, snapshot).await {
                tracing::debug!(error = %err, %peer, "tcp connection ended");
            }
            drop(permit);
        });
    }
}

async fn serve_tcp_connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    snapshot: SharedSnapshot,
) -> io::Result<()> {
    let mut rng = SplitMix64(initial_seed());
    let mut query = Vec::with_capacity(512);
    let mut reply = Vec::with_capacity(4096);
    loop {
        let mut len_bytes = [0u8; 2];
        match tokio::time::timeout(TCP_IDLE_TIMEOUT, stream.read_exact(&mut len_bytes)).await {
            Ok(Ok(_)) => {}
            Ok(Err(err)) if err.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Ok(Err(err)) => return Err(err),
            Err(_) => return Ok(()),
        }
        let len = usize::from(u16::from_be_bytes(len_bytes));
        query.resize(len, 0);
        match tokio::time::timeout(TCP_IDLE_TIMEOUT, stream.read_exact(&mut query)).await {
            Ok(result) => {
                result?;
            }
            Err(_) => return Ok(()),
        }
        let answered = {
            let current = snapshot.load();
            handle_packet(
                &current,
                &query,
                peer.ip(),
                Transport::Tcp,
                rng.next_u64(),
                &mut reply,
            )
        };
        if answered.is_none() {
            continue;
        }
        let mut framed = Vec::with_capacity(reply.len() + 2);
        framed.extend_from_slice(&(reply.len() as u16).to_be_bytes());
        framed.extend_from_slice(&reply);
        stream.write_all(&framed).await?;
    }
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

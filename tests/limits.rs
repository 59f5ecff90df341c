//! Abuse limits through the real binary: response rate limiting per client
//! prefix (with slip to TC so real clients retry over TCP), and the TCP
//! limits that stop slow or greedy clients from holding the server.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use common::{GslbServer, QueryBuilder, TempDir, parse_reply, tcp_connect, tcp_recv, tcp_send};

const ZONE: &str = "$TTL 300
@ SOA ns1 hostmaster 1 7200 900 1209600 60
@ NS ns1
ns1 A 192.0.2.53
www A 192.0.2.1
";

fn start(extra: &str) -> (TempDir, GslbServer) {
    let dir = TempDir::new("limits");
    dir.write("limits.test.zone", ZONE);
    let config = dir.write(
        "gslb.toml",
        &format!("[[zone]]\norigin = \"limits.test\"\nfile = \"limits.test.zone\"\n{extra}"),
    );
    let server = GslbServer::start(&["-c", config.to_str().expect("utf-8 path")]);
    (dir, server)
}

/// Sends `count` queries from `source` as fast as possible and counts full
/// and truncated replies (bounded: stops reading 1 s after the last send).
fn flood(server: SocketAddr, source: &str, count: u16) -> (usize, usize) {
    let socket = UdpSocket::bind((source, 0)).expect("bind loopback source");
    // A large receive buffer, and bursts of 25 with the replies read in
    // between, so the kernel drops none of a fast flood's replies.
    let _ = socket2::SockRef::from(&socket).set_recv_buffer_size(4 << 20);
    let (mut full, mut truncated) = (0, 0);
    let mut buf = [0u8; 1500];
    let mut read = |wait: Duration, full: &mut usize, truncated: &mut usize| {
        socket.set_read_timeout(Some(wait)).expect("timeout");
        while let Ok(len) = socket.recv(&mut buf) {
            match parse_reply(&buf[..len]) {
                Some(reply) if reply.truncated() => *truncated += 1,
                Some(_) => *full += 1,
                None => {}
            }
        }
    };
    for burst in 0..count.div_ceil(25) {
        for id in burst * 25..(burst * 25 + 25).min(count) {
            let query = QueryBuilder::new(id, "www.limits.test", 1).build();
            socket.send_to(&query, server).expect("send");
        }
        read(Duration::from_millis(5), &mut full, &mut truncated);
    }
    read(Duration::from_millis(300), &mut full, &mut truncated);
    (full, truncated)
}

#[test]
fn rate_limiting_holds_a_flooding_prefix_and_spares_others() {
    let (_dir, server) = start("[rrl]\nenabled = true\nresponses_per_second = 10\nslip = 2\n");
    let started = Instant::now();
    let (full, truncated) = flood(server.addr(), "127.0.0.1", 400);
    let seconds = started.elapsed().as_secs_f64().ceil().max(1.0) as usize + 1;
    println!(
        "flood of 400 queries from 127.0.0.0/24: {full} full replies, {truncated} truncated (slip), in ≤{seconds} s windows"
    );
    // At most 10 full replies per one-second window the flood spanned.
    assert!(full >= 10 && full <= 10 * seconds, "full replies {full}");
    // Half of the limited responses slip as TC (slip = 2), the rest are
    // dropped; loopback may lose a few datagrams of so fast a burst.
    let limited = 400 - full;
    assert!(
        truncated <= limited / 2 + 2 * seconds && truncated >= limited * 2 / 5,
        "truncated {truncated} of {limited} limited"
    );
    // Another /24 has its own budget.
    let (other_full, _) = flood(server.addr(), "127.0.9.1", 5);
    assert_eq!(other_full, 5);
    // The TC reply sends a real client to TCP, where it is answered in full.
    let mut stream = tcp_connect(server.addr());
    tcp_send(
        &mut stream,
        &QueryBuilder::new(7, "www.limits.test", 1).build(),
    );
    let reply = parse_reply(&tcp_recv(&mut stream).expect("tcp reply")).expect("parse");
    assert!(!reply.truncated());
    assert_eq!(reply.rcode(), 0);
}

#[test]
fn rate_limiting_is_off_by_default() {
    let (_dir, server) = start("");
    let (full, truncated) = flood(server.addr(), "127.0.0.1", 200);
    assert_eq!((full, truncated), (200, 0));
}

fn wait_closed(stream: &mut TcpStream, within: Duration) -> bool {
    stream.set_read_timeout(Some(within)).expect("timeout");
    let mut byte = [0u8; 1];
    matches!(stream.read(&mut byte), Ok(0) | Err(_)) && {
        // A second read after EOF confirms the close rather than a timeout.
        stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        matches!(stream.read(&mut byte), Ok(0))
    }
}

#[test]
fn tcp_idle_and_slow_loris_connections_are_cut_off() {
    let (_dir, server) = start("[server]\ntcp_idle_timeout = 1\n");
    let started = Instant::now();
    let mut idle = tcp_connect(server.addr());
    assert!(
        wait_closed(&mut idle, Duration::from_secs(5)),
        "idle connection not closed"
    );
    // Half a length prefix, then silence.
    let mut slow = tcp_connect(server.addr());
    slow.write_all(&[0]).expect("write");
    assert!(
        wait_closed(&mut slow, Duration::from_secs(5)),
        "slow-loris connection not closed"
    );
    println!(
        "idle and slow connections closed after {:?}",
        started.elapsed()
    );
}

/// A connection on which the server answers a query. Retried (bounded):
/// the server frees a closed connection's slot just after closing it, so a
/// connection made at once may still find the limit reached.
fn served_connection(server: SocketAddr, id: u16) -> TcpStream {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut stream = tcp_connect(server);
        let query = QueryBuilder::new(id, "www.limits.test", 1).build();
        let mut framed = (query.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&query);
        if stream.write_all(&framed).is_ok() && tcp_recv(&mut stream).is_some() {
            return stream;
        }
        assert!(Instant::now() < deadline, "no TCP connection was served");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn tcp_queries_per_connection_and_connection_count_are_bounded() {
    let (_dir, server) = start("[server]\ntcp_max_queries = 3\ntcp_max_connections = 2\n");
    let mut stream = tcp_connect(server.addr());
    for id in 0..3 {
        tcp_send(
            &mut stream,
            &QueryBuilder::new(id, "www.limits.test", 1).build(),
        );
    }
    for _ in 0..3 {
        assert!(tcp_recv(&mut stream).is_some(), "pipelined query answered");
    }
    // The fourth query gets no answer: the server closed the connection.
    let _ = stream.write_all(&QueryBuilder::new(9, "www.limits.test", 1).build());
    assert!(wait_closed(&mut stream, Duration::from_secs(5)));

    // Two connections the server answers on hold both slots.
    let _first = served_connection(server.addr(), 10);
    let _second = served_connection(server.addr(), 11);
    let mut third = tcp_connect(server.addr());
    assert!(
        wait_closed(&mut third, Duration::from_secs(5)),
        "third connection over the limit was kept"
    );
}

#[test]
fn admin_api_requests_are_rate_limited() {
    let dir = TempDir::new("api-limit");
    dir.write("limits.test.zone", ZONE);
    let config = dir.write(
        "gslb.toml",
        "[[zone]]\norigin = \"limits.test\"\nfile = \"limits.test.zone\"\n",
    );
    let server = GslbServer::start(&[
        "-c",
        config.to_str().expect("utf-8 path"),
        "--api",
        "127.0.0.1:0",
    ]);
    // Bounded: 300 requests, far over the 100-request burst.
    let statuses: Vec<u16> = (0..300)
        .map(|_| common::http(server.api(), "GET", "/status", &[], "").status)
        .collect();
    let limited = statuses.iter().filter(|&&s| s == 429).count();
    let served = statuses.iter().filter(|&&s| s == 200).count();
    println!("300 API requests: {served} served, {limited} answered 429");
    assert_eq!(served + limited, 300);
    assert!(
        served >= 100 && limited > 0,
        "served {served}, limited {limited}"
    );
    // The budget refills.
    assert!(common::poll_until(Duration::from_secs(5), || common::http(
        server.api(),
        "GET",
        "/status",
        &[],
        ""
    )
    .status
        == 200));
}

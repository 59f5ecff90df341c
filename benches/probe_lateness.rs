//! Probe scheduling under load: 2,000 endpoints probed every second for
//! about 15 s against loopback servers, printing how late probes start
//! against their schedule (p50/p99/max) and this process's CPU share.
//!
//! `cargo bench --bench probe_lateness` (HTTP probes), or with
//! `PROBE_KIND=tcp` for TCP connects. `ENDPOINTS` and `SECONDS` override
//! the defaults. The servers run in a child process (this binary again) so
//! the CPU figure is the prober's alone.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gslb::config::CheckKind;
use gslb::health::{
    CheckSpec, HealthMonitor, HealthSettings, HealthTable, PlannedEndpoint, Probe, ProbePlan,
    ProbeTarget,
};

/// Loopback addresses the server listens on (127.0.0.101 ..).
const SERVER_ADDRESSES: u8 = 20;

fn main() {
    if std::env::var_os("PROBE_LATENESS_SERVER").is_some() {
        serve();
        return;
    }
    let endpoints: usize = env_or("ENDPOINTS", 2000);
    let seconds: u64 = env_or("SECONDS", 15);
    let kind = match std::env::var("PROBE_KIND").as_deref() {
        Ok("tcp") => CheckKind::Tcp,
        _ => CheckKind::Http,
    };

    // The servers, in a child process.
    let mut server = Command::new(std::env::current_exe().expect("own path"))
        .env("PROBE_LATENESS_SERVER", "1")
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawning the server");
    let mut lines = BufReader::new(server.stdout.take().expect("piped")).lines();
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for line in lines.by_ref() {
        let line = line.expect("server output");
        if line == "ready" {
            break;
        }
        addrs.push(line.parse().expect("address"));
    }

    let check = Arc::new(CheckSpec {
        name: "bench".to_string(),
        kind,
        interval: Duration::from_secs(1),
        timeout: Duration::from_millis(500),
        rise: 2,
        fall: 2,
        method: "GET".to_string(),
        path: "/health".to_string(),
        port: 0,
        host: None,
        expect_status: vec![(200, 399)],
        body_contains: None,
        tls_verify: true,
        initial_up: true,
        jitter: 0.1,
        json: None,
    });
    let table = Arc::new(HealthTable::default());
    let plan = ProbePlan {
        endpoints: (0..endpoints)
            .map(|i| {
                let addr = addrs[i % addrs.len()];
                let target = match kind {
                    CheckKind::Tcp => ProbeTarget::Tcp(addr),
                    _ => ProbeTarget::Http {
                        url: format!("http://{addr}/health?e={i}"),
                        pin: None,
                    },
                };
                PlannedEndpoint {
                    key: format!("bench/{i}"),
                    health: table.register(&format!("bench/{i}"), true).1,
                    probe: Some(Probe {
                        check: check.clone(),
                        target,
                        source: None,
                    }),
                    check_from: None,
                }
            })
            .collect(),
        settings: HealthSettings::default(),
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let monitor = HealthMonitor::new(table.clone());
    monitor.replan(&plan);
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    monitor.start(runtime.handle().clone());
    std::thread::sleep(Duration::from_secs(seconds));
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_before;
    let lateness = monitor.lateness();
    let status = monitor.status();
    let probes: u64 = status.iter().map(|s| s.probes_total).sum();
    let failures: u64 = status
        .iter()
        .map(|s| s.failures.values().sum::<u64>())
        .sum();
    let down = status.iter().filter(|s| s.state == "down").count();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "probe_lateness: {endpoints} {kind:?} endpoints, interval 1 s, {wall:.1} s, {cores} cores, \
         max_concurrent_probes {}",
        plan.settings.max_concurrent_probes
    );
    println!(
        "  probes {probes} ({:.0}/s), failures {failures}, endpoints down at end {down}",
        probes as f64 / wall
    );
    println!(
        "  lateness of probe start vs schedule: p50 {:?}  p99 {:?}  max {:?}  (n = {}, 12.5% buckets)",
        lateness.p50, lateness.p99, lateness.max, lateness.count
    );
    println!(
        "  prober process CPU: {cpu:.2} s over {wall:.1} s = {:.1}% of one core",
        100.0 * cpu / wall
    );
    drop(monitor);
    drop(runtime);
    let _ = server.kill();
    let _ = server.wait();
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// utime + stime of this process, from /proc/self/stat.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the whole line.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields.get(11..13).map_or(0.0, |f| {
        f.iter().filter_map(|v| v.parse::<f64>().ok()).sum()
    });
    ticks / clock_ticks_per_second()
}

fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// The child: minimal HTTP/1.1 servers on several loopback addresses.
fn serve() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut out = std::io::stdout().lock();
        for n in 0..SERVER_ADDRESSES {
            let listener = tokio::net::TcpListener::bind(format!("127.0.0.{}:0", 101 + n))
                .await
                .expect("bind");
            writeln!(out, "{}", listener.local_addr().expect("addr")).expect("stdout");
            tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    tokio::spawn(answer(stream));
                }
            });
        }
        writeln!(out, "ready").expect("stdout");
        out.flush().expect("stdout");
        drop(out);
        std::future::pending::<()>().await;
    });
}

async fn answer(mut stream: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let _ = stream
        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n")
        .await;
}

//! The `gslb` command: serve, check, and the operator tools around them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow};
use clap::{Parser, Subcommand};

use gslb::control::Control;
use gslb::dns::server;
use gslb::explain::ExplainClient;
use gslb::snapshot::SnapshotSource;

#[derive(Parser)]
#[command(name = "gslb", version, about = "DNS global server load balancer")]
struct Cli {
    /// Log format on stderr (filter with RUST_LOG).
    #[arg(long, global = true, value_enum, default_value = "human")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Serve DNS (UDP and TCP on every listener).
    Serve {
        #[command(flatten)]
        source: SourceArgs,
        /// Listen on ADDR:PORT (UDP and TCP); repeatable; replaces the config's listeners.
        #[arg(long = "listen", value_name = "ADDR:PORT")]
        listen: Vec<SocketAddr>,
        /// Admin API address (replaces the config's `server.api`).
        #[arg(long, value_name = "ADDR:PORT")]
        api: Option<SocketAddr>,
    },
    /// Load and validate everything `serve` would, then exit (0 = valid).
    Check {
        #[command(flatten)]
        source: SourceArgs,
    },
    /// Show how one query from a hypothetical client would be answered, and why.
    Explain {
        #[command(flatten)]
        source: SourceArgs,
        /// Client address; with /LEN it is sent as EDNS Client Subnet.
        #[arg(long, value_name = "IP[/LEN]")]
        client: ExplainClient,
        /// Query name.
        name: String,
        /// Query type.
        #[arg(default_value = "A")]
        record_type: String,
    },
    /// GeoIP database tools.
    Geoip {
        #[command(subcommand)]
        command: GeoipCommand,
    },
}

#[derive(Subcommand)]
enum GeoipCommand {
    /// Build an mmdb from the demo CSV source (see geoip/README.md).
    Build {
        /// CSV source: network,country,continent,subdivision,latitude,longitude.
        source: PathBuf,
        /// Output mmdb file.
        output: PathBuf,
    },
}

#[derive(clap::Args)]
struct SourceArgs {
    /// Configuration file.
    #[arg(short = 'c', long = "config", default_value = "config/gslb.toml")]
    config: PathBuf,
    /// Add a static zone: ORIGIN=ZONEFILE; repeatable.
    #[arg(long = "zone", value_name = "ORIGIN=ZONEFILE", value_parser = parse_zone_arg)]
    zones: Vec<(String, PathBuf)>,
}

impl SourceArgs {
    fn source(&self) -> SnapshotSource {
        SnapshotSource {
            config_path: self.config.clone(),
            extra_zones: self.zones.clone(),
        }
    }
}

fn parse_zone_arg(text: &str) -> Result<(String, PathBuf), String> {
    match text.split_once('=') {
        Some((origin, file)) if !origin.is_empty() && !file.is_empty() => {
            Ok((origin.to_string(), PathBuf::from(file)))
        }
        _ => Err(format!("expected ORIGIN=ZONEFILE, got {text:?}")),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let result = match cli.command {
        Command::Serve {
            source,
            listen,
            api,
        } => serve(source.source(), listen, api),
        Command::Check { source } => check(source.source()),
        Command::Explain {
            source,
            client,
            name,
            record_type,
        } => explain(source.source(), client, &name, &record_type),
        Command::Geoip {
            command: GeoipCommand::Build { source, output },
        } => build_geoip(&source, &output),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("gslb: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn check(source: SnapshotSource) -> Result<()> {
    let (control, _) = Control::start(source)
        .map_err(|errors| anyhow!("configuration is not valid:\n{errors}"))?;
    let snapshot = control.snapshot.load();
    println!(
        "{}: ok ({})",
        control.source.config_path.display(),
        [
            plural(snapshot.zones.len(), "zone"),
            plural(snapshot.services.len(), "service")
        ]
        .join(", ")
    );
    Ok(())
}

fn plural(count: usize, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

fn explain(
    source: SnapshotSource,
    client: ExplainClient,
    name: &str,
    record_type: &str,
) -> Result<()> {
    let (control, _) = Control::start(source)
        .map_err(|errors| anyhow!("configuration is not valid:\n{errors}"))?;
    let snapshot = control.snapshot.load();
    let text =
        gslb::explain::explain(&snapshot, client, name, record_type).map_err(|e| anyhow!(e))?;
    print!("{text}");
    Ok(())
}

fn build_geoip(source: &std::path::Path, output: &std::path::Path) -> Result<()> {
    let text =
        std::fs::read_to_string(source).with_context(|| format!("reading {}", source.display()))?;
    let bytes = gslb::geo::build_demo_mmdb(&text)
        .with_context(|| format!("building from {}", source.display()))?;
    std::fs::write(output, bytes).with_context(|| format!("writing {}", output.display()))?;
    println!("wrote {}", output.display());
    Ok(())
}

fn serve(source: SnapshotSource, listen: Vec<SocketAddr>, api: Option<SocketAddr>) -> Result<()> {
    let (control, loaded) = Control::start(source)
        .map_err(|errors| anyhow!("configuration is not valid:\n{errors}"))?;
    let control = Arc::new(control);
    let server_config = &loaded.config.server;
    let listen: Vec<SocketAddr> = if listen.is_empty() {
        server_config.listen.iter().map(|l| *l.get_ref()).collect()
    } else {
        listen
    };
    let _api = api.unwrap_or(server_config.api);
    let workers = match server_config.udp_workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        // Health probers first, so a gdnsd-style first round can finish
        // before any query is answered.
        control.start_probers(tokio::runtime::Handle::current());
        let (wait, limit) = {
            let snapshot = control.snapshot.load();
            (
                snapshot.probes.settings.wait_for_first_round,
                snapshot.probes.first_round_limit(),
            )
        };
        if wait {
            if control.monitor.wait_first_round(limit).await {
                tracing::info!("first round of health probes done");
            } else {
                tracing::warn!(
                    ?limit,
                    "first round of health probes not done in time; serving anyway"
                );
            }
        }
        let mut tasks = tokio::task::JoinSet::new();
        for addr in listen {
            let bound = server::bind(addr, workers)
                .with_context(|| format!("binding DNS listener {addr}"))?;
            println!("listening on {} (udp+tcp)", bound.local_addr);
            tracing::info!(addr = %bound.local_addr, "listening (udp+tcp)");
            tasks.spawn(server::serve(bound, control.snapshot.clone()));
        }
        tasks.spawn(async move {
            handle_signals(control).await;
            Ok(())
        });
        match tasks.join_next().await {
            Some(Ok(Err(err))) => Err(anyhow::Error::new(err).context("serving DNS")),
            _ => Ok(()),
        }
    })
}

/// SIGHUP reloads; SIGINT/SIGTERM stop the server.
async fn handle_signals(control: Arc<Control>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut hangup), Ok(mut terminate), Ok(mut interrupt)) = (
        signal(SignalKind::hangup()),
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    loop {
        tokio::select! {
            _ = hangup.recv() => reload(&control).await,
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        }
    }
    tracing::info!("shutting down");
}

async fn reload(control: &Arc<Control>) {
    let control = control.clone();
    match tokio::task::spawn_blocking(move || control.reload()).await {
        Ok(Ok(())) => tracing::info!("reloaded configuration"),
        Ok(Err(errors)) => {
            for err in &errors.0 {
                tracing::error!("reload failed, keeping the running configuration: {err}");
            }
        }
        Err(err) => tracing::error!(error = %err, "reload task failed"),
    }
}

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
    /// More log lines on stderr: -v shows INFO for `check`, `explain` and
    /// `diff` (which otherwise log only warnings), -vv DEBUG.
    #[arg(short = 'v', long = "verbose", global = true, action = clap::ArgAction::Count)]
    verbose: u8,
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
        /// Treat warnings (e.g. geo map rules that match no network of the
        /// loaded database) as errors.
        #[arg(long)]
        strict: bool,
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
        /// Explain from the files only, with every endpoint in its initial
        /// state, even when a server answers.
        #[arg(long, conflicts_with = "api")]
        offline: bool,
        /// Ask the server at this admin API address (default: the config's
        /// `server.api`); an error if it does not answer.
        #[arg(long, value_name = "ADDR:PORT")]
        api: Option<SocketAddr>,
    },
    /// Preview a change: per service, how much of the client address space
    /// (or of the clients in FILE) moves from which pool to which between
    /// two configurations, with the largest moved networks and where they are.
    /// With two version numbers (`gslb diff A B`): what changed between two
    /// published versions (TOML, zone files and latency tables, line by
    /// line), and with `--clients FILE` or `--db` which clients move.
    Diff {
        /// The configuration in service (old side); with A B, a file whose
        /// `[cluster]` names the etcd holding the versions.
        #[arg(short = 'c', long = "config", default_value = "config/gslb.toml")]
        old: PathBuf,
        /// The configuration to compare it with (new side), or two
        /// published version numbers A B.
        #[arg(value_name = "NEW | A B", num_args = 1..=2, required = true)]
        new: Vec<String>,
        /// Weigh these clients instead of every address: a gslb query log,
        /// networks or addresses one per line, or a CSV of network,weight.
        #[arg(long, value_name = "FILE", conflicts_with = "db")]
        clients: Option<PathBuf>,
        /// Between versions: weigh every address (every network of the
        /// database) as the two-file form always does.
        #[arg(long)]
        db: bool,
        /// Only clients of this address family (default: both, each on its own).
        #[arg(long, value_parser = ["4", "6"])]
        family: Option<String>,
        /// The answers compared for clients that name no type: A or AAAA.
        #[arg(long = "type", default_value = "A", value_parser = ["A", "AAAA", "a", "aaaa"])]
        record_type: String,
        /// On the new side, take this pool or pool/target down as a failure
        /// would (repeatable): where would its clients go?
        #[arg(long, value_name = "POOL|POOL/TARGET")]
        down: Vec<String>,
        /// Moved networks listed per service and family.
        #[arg(long, default_value_t = 10)]
        top: usize,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Ask a running server to reload its configuration (POST /reload on
    /// its admin API); exits 1 and prints every error when the reload failed.
    Reload {
        /// Configuration file, for the API address and token (default
        /// config/gslb.toml). A file that does not load is an error: the
        /// reload is not sent anywhere.
        #[arg(short = 'c', long = "config")]
        config: Option<PathBuf>,
        /// Admin API address (default: the config's `server.api`).
        #[arg(long, value_name = "ADDR:PORT")]
        api: Option<SocketAddr>,
        /// Bearer token (default: $GSLB_API_TOKEN, else the config's `server.api_token`).
        #[arg(long, value_name = "TOKEN")]
        token: Option<String>,
    },
    /// Set or clear an override on a running server (POST /override):
    /// `gslb override eu/192.0.2.10 drain`, `gslb override eu none`.
    Override {
        #[command(flatten)]
        api: ApiArgs,
        /// An endpoint (`pool/target`, as in /status) or a pool name.
        target: String,
        /// `up`, `down`, `drain` or `none` (clear).
        state: String,
    },
    /// Change a weight on a running server (POST /weight): an endpoint's
    /// weight (`gslb weight eu/192.0.2.10 0`) or a pool's weight percent
    /// (`gslb weight eu 25`); `none` undoes it.
    Weight {
        #[command(flatten)]
        api: ApiArgs,
        /// An endpoint (`pool/target`) or a pool name.
        target: String,
        /// A weight (endpoint), a percent 0..100 (pool), or `none`.
        value: String,
    },
    /// Validate a configuration exactly as `check` does and publish it to
    /// the cluster's etcd as a new version, with every zone file and
    /// latency table it reads; prints the new version's number.
    Publish {
        /// The configuration to publish; its `[cluster]` names etcd.
        #[arg(short = 'c', long = "config", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Why (shown by `gslb versions`).
        #[arg(short = 'm', long, value_name = "TEXT", default_value = "")]
        message: String,
        /// Publish only if VERSION is still the newest (the one this change
        /// was reviewed against).
        #[arg(long, value_name = "VERSION")]
        expect_version: Option<u64>,
        /// Treat warnings as errors, as `check --strict` does.
        #[arg(long)]
        strict: bool,
    },
    /// List the published configuration versions: number, time, who,
    /// digest, which members run it, message (newest first).
    Versions {
        /// A configuration whose `[cluster]` names etcd.
        #[arg(short = 'c', long = "config", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Republish version N as a new version (after checking it builds here).
    Rollback {
        /// A configuration whose `[cluster]` names etcd.
        #[arg(short = 'c', long = "config", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// The version to bring back.
        version: u64,
        /// Why (default "rollback to version N").
        #[arg(short = 'm', long, value_name = "TEXT")]
        message: Option<String>,
    },
    /// GeoIP database tools.
    Geoip {
        #[command(subcommand)]
        command: GeoipCommand,
    },
    /// DNSSEC key tools.
    Dnssec {
        #[command(subcommand)]
        command: DnssecCommand,
    },
}

#[derive(Subcommand)]
enum DnssecCommand {
    /// Write a new key pair (a CSK: flags 257) for ZONE in BIND's format
    /// (K<zone>.+<alg>+<tag>.key and .private) and print the .private path.
    Keygen {
        /// Zone name, e.g. example.test.
        zone: String,
        /// 13 (ECDSA P-256/SHA-256) or 15 (Ed25519).
        #[arg(long, default_value_t = 13, value_parser = clap::value_parser!(u8).range(13..=15))]
        algorithm: u8,
        /// Directory to write the files to.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// Print the DS records (SHA-256) of ZONE's SEP keys, to give the parent.
    Ds {
        /// Configuration file.
        #[arg(short = 'c', long = "config", default_value = "config/gslb.toml")]
        config: PathBuf,
        /// Zone name, as in the configuration.
        zone: String,
    },
}

#[derive(Subcommand)]
enum GeoipCommand {
    /// Build an mmdb from a CSV source (see geoip/README.md).
    Build {
        /// CSV source: network,country,continent,subdivision,latitude,longitude[,subdivision_name].
        source: PathBuf,
        /// Output mmdb file.
        output: PathBuf,
        /// Record layout: `maxmind` (GeoIP2-City) or `flat` (ip-location-db,
        /// DB-IP Lite: country_code, state1, latitude, longitude).
        #[arg(long, value_enum, default_value = "maxmind")]
        layout: LayoutArg,
        /// Build epoch in the metadata (Unix seconds, not 0; default a fixed
        /// date so the output is reproducible).
        #[arg(long, value_name = "SECS", default_value_t = gslb::geo::BUILD_EPOCH)]
        build_epoch: u64,
    },
}

/// `gslb geoip build --layout`.
#[derive(Clone, Copy, clap::ValueEnum)]
enum LayoutArg {
    Maxmind,
    Flat,
}

/// How the API commands (`override`, `weight`) find a running server, as
/// `gslb reload` does.
#[derive(clap::Args)]
struct ApiArgs {
    /// Configuration file, for the API address and token (default
    /// config/gslb.toml).
    #[arg(short = 'c', long = "config")]
    config: Option<PathBuf>,
    /// Admin API address (default: the config's `server.api`).
    #[arg(long, value_name = "ADDR:PORT")]
    api: Option<SocketAddr>,
    /// Bearer token (default: $GSLB_API_TOKEN, else the config's `server.api_token`).
    #[arg(long, value_name = "TOKEN")]
    token: Option<String>,
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
    // One-shot tools print their result on stdout; their load-time INFO
    // lines would bury it, so they log warnings only unless asked.
    let quiet = matches!(
        cli.command,
        Command::Check { .. }
            | Command::Explain { .. }
            | Command::Publish { .. }
            | Command::Versions { .. }
            | Command::Rollback { .. }
            | Command::Diff { .. }
    );
    let level = match (cli.verbose, quiet) {
        (0, true) => "warn",
        (0, false) | (1, _) => "info",
        _ => "debug",
    };
    init_logging(cli.log_format, level);
    let result = match cli.command {
        Command::Serve {
            source,
            listen,
            api,
        } => serve(source.source(), listen, api),
        Command::Check { source, strict } => check(source.source(), strict),
        Command::Explain {
            source,
            client,
            name,
            record_type,
            offline,
            api,
        } => {
            let live = (!offline).then_some(api);
            explain(source.source(), client, &name, &record_type, live)
        }
        Command::Reload { config, api, token } => reload_command(config.as_deref(), api, token),
        Command::Publish {
            config,
            message,
            expect_version,
            strict,
        } => fleet_cmd::publish(&config, &message, expect_version, strict),
        Command::Versions { config, json } => fleet_cmd::versions(&config, json),
        Command::Rollback {
            config,
            version,
            message,
        } => fleet_cmd::rollback(&config, version, message),
        Command::Override { api, target, state } => override_command(&api, &target, &state),
        Command::Weight { api, target, value } => weight_command(&api, &target, &value),
        Command::Diff {
            old,
            new,
            clients,
            db,
            family,
            record_type,
            down,
            top,
            json,
        } => {
            let args = DiffArgs {
                clients,
                family,
                record_type,
                down,
                top,
                json,
            };
            match new.as_slice() {
                [a, b] => match (a.parse::<u64>(), b.parse::<u64>()) {
                    (Ok(a), Ok(b)) => fleet_cmd::diff(&old, a, b, db, &args),
                    _ => Err(anyhow!(
                        "gslb diff takes one configuration file (-c OLD NEW) or two published version numbers (A B), not {a:?} {b:?}"
                    )),
                },
                [new] => diff_command((&old, None), (std::path::Path::new(new), None), &args),
                _ => Err(anyhow!("gslb diff takes NEW or A B")),
            }
        }
        Command::Geoip {
            command:
                GeoipCommand::Build {
                    source,
                    output,
                    layout,
                    build_epoch,
                },
        } => build_geoip(&source, &output, layout, build_epoch),
        Command::Dnssec {
            command:
                DnssecCommand::Keygen {
                    zone,
                    algorithm,
                    dir,
                },
        } => dnssec_keygen(&zone, algorithm, &dir),
        Command::Dnssec {
            command: DnssecCommand::Ds { config, zone },
        } => dnssec_ds(&config, &zone),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("gslb: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// The configuration `serve`, `check` and `reload` read without `-c`.
const DEFAULT_CONFIG: &str = "config/gslb.toml";

/// The `[server]` settings of the configuration `gslb reload` names.
fn load_for_reload(path: &std::path::Path) -> Result<gslb::config::ServerToml> {
    gslb::config::load_config(path)
        .map(|loaded| loaded.config.server)
        .map_err(|err| {
            anyhow!("{err}\nnot reloading: {} does not load, so it names no server to reload (fix it, or give --api)", path.display())
        })
}

/// Logs to stderr at `level` (RUST_LOG wins when set); colours only when
/// stderr is a terminal and `NO_COLOR` is unset (systemd and log files get
/// plain text).
fn init_logging(format: LogFormat, level: &str) {
    use std::io::IsTerminal as _;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// The admin API's authorisation as `serve` will apply it, with the
/// config's `server.api` unless `api` replaces it. `check` calls it too, so
/// it refuses what `serve` refuses (a pre-start check must not pass a
/// configuration the start then fails on).
/// Whether [`api_auth`] makes (or reads) the token file when no token is
/// configured (`serve`), or only checks the settings (`check`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum TokenFile {
    Use,
    CheckOnly,
}

/// The admin API's authorisation as configured: the configured token, else
/// (on a loopback API, unless `api_require_token = false`) the token file in
/// `state_dir`, which `serve` makes on its first start.
fn api_auth(
    loaded: &gslb::config::LoadedConfig,
    api: Option<SocketAddr>,
    token_file: TokenFile,
) -> Result<gslb::api::ApiAuth> {
    let server = &loaded.config.server;
    let addr = api.unwrap_or(*server.api.get_ref());
    let from_file = server.api_token.is_none();
    let token = match (&server.api_token, server.api_require_token, token_file) {
        (Some(token), _, _) => Some(token.0.clone()),
        // Off loopback the token must be configured (ApiAuth refuses none):
        // the file is for the local user only.
        (None, _, _) if !addr.ip().is_loopback() => None,
        (None, true, TokenFile::Use) => {
            let path = gslb::api::token::token_path(&loaded.path, Some(server));
            let (token, created) = gslb::api::token::load_or_create(&path)
                .context("the admin API token (none configured)")?;
            println!("admin api token file: {}", path.display());
            tracing::info!(path = %path.display(), created, "admin API token file");
            Some(token)
        }
        // `check` makes no file: a token will be there when `serve` runs.
        (None, true, TokenFile::CheckOnly) => Some("token file".to_string()),
        (None, false, _) => None,
    };
    let auth = gslb::api::ApiAuth::new(addr, token.as_deref(), server.api_require_token);
    auth.map(|auth| {
        if from_file {
            auth.from_token_file()
        } else {
            auth
        }
    })
    .map_err(|err| {
        let located = if api.is_none() && !server.api.span().is_empty() {
            loaded.error_at(server.api.span(), err.to_string())
        } else {
            loaded.error(err.to_string())
        };
        anyhow!("{located}")
    })
}

fn check(source: SnapshotSource, strict: bool) -> Result<()> {
    let (control, _) = validate(source, strict)?;
    let snapshot = control.snapshot();
    let member = match control.cluster.as_ref() {
        Some(cluster) if cluster.settings.config_from_etcd => format!(
            "; a fleet member: the rest comes from the newest version published to {} {}",
            cluster.settings.etcd.join(","),
            cluster.settings.prefix
        ),
        _ => String::new(),
    };
    println!(
        "{}: ok ({}{member})",
        control.source().config_path.display(),
        [
            plural(snapshot.zones.len(), "zone"),
            plural(snapshot.services.len(), "service")
        ]
        .join(", ")
    );
    Ok(())
}

/// Loads and validates a configuration as `serve` would, printing its
/// warnings (`check` and `publish`).
fn validate(source: SnapshotSource, strict: bool) -> Result<(Control, gslb::config::LoadedConfig)> {
    // The API settings are read at start only, outside the snapshot: check
    // them as `serve` does, and report them with the snapshot's errors; so
    // is a fleet member's rule that its own file holds only [server] and
    // [cluster].
    let mut outside: Vec<String> = Vec::new();
    if let Ok(loaded) = gslb::config::load_config(&source.config_path) {
        outside.extend(
            api_auth(&loaded, None, TokenFile::CheckOnly)
                .err()
                .map(|e| e.to_string()),
        );
        let member = loaded
            .config
            .cluster
            .as_ref()
            .is_some_and(|c| c.get_ref().config.get_ref() == "etcd");
        if member {
            outside.extend(
                gslb::fleet::member::check_local(&loaded)
                    .iter()
                    .map(ToString::to_string),
            );
        }
    }
    let (control, loaded) = match Control::start(source) {
        Ok(started) => started,
        Err(errors) => {
            let more: String = outside.iter().map(|e| format!("\n{e}")).collect();
            return Err(anyhow!("configuration is not valid:\n{errors}{more}"));
        }
    };
    if !outside.is_empty() {
        return Err(anyhow!(
            "configuration is not valid:\n{}",
            outside.join("\n")
        ));
    }
    let snapshot = control.snapshot();
    for warning in &snapshot.warnings {
        eprintln!("{warning}");
    }
    if strict && !snapshot.warnings.is_empty() {
        return Err(anyhow!(
            "configuration is not valid with --strict: {}",
            plural(snapshot.warnings.len(), "warning")
        ));
    }
    drop(snapshot);
    Ok((control, loaded))
}

/// `gslb dnssec keygen`: a new CSK in BIND's format.
fn dnssec_keygen(zone: &str, algorithm: u8, dir: &std::path::Path) -> Result<()> {
    use gslb::dnssec::keys;
    let algorithm = keys::Algorithm::from_number(algorithm)
        .ok_or_else(|| anyhow!("algorithm {algorithm} is not supported: use 13 or 15"))?;
    let mut origin = hickory_proto::rr::Name::from_ascii(zone)
        .map_err(|err| anyhow!("bad zone name {zone:?}: {err}"))?;
    origin.set_fqdn(true);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let path = keys::generate(&origin.to_ascii(), algorithm, dir, now)?;
    println!("{}", path.display());
    Ok(())
}

/// `gslb dnssec ds`: the DS records of a configured zone's SEP keys.
fn dnssec_ds(config: &std::path::Path, zone: &str) -> Result<()> {
    let loaded = gslb::config::load_config(config).map_err(|err| anyhow!("{err}"))?;
    let mut origin = hickory_proto::rr::Name::from_ascii(zone)
        .map_err(|err| anyhow!("bad zone name {zone:?}: {err}"))?;
    origin.set_fqdn(true);
    let origin_text = origin.to_ascii();
    let zone_toml = loaded
        .config
        .zones
        .iter()
        .find(|z| {
            let mut name = hickory_proto::rr::Name::from_ascii(z.origin.get_ref())
                .unwrap_or_else(|_| hickory_proto::rr::Name::root());
            name.set_fqdn(true);
            name.to_ascii().eq_ignore_ascii_case(&origin_text)
        })
        .ok_or_else(|| {
            anyhow!(
                "{}: no [[zone]] with origin {origin_text}",
                config.display()
            )
        })?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let mut warnings = Vec::new();
    let keys = gslb::dnssec::load_zone_keys(&loaded, zone_toml, &origin_text, now, &mut warnings)
        .map_err(|errors| {
            let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
            anyhow!("{}", text.join("\n"))
        })?
        .ok_or_else(|| anyhow!("zone {origin_text} is not signed: set dnssec = true"))?;
    let wire = gslb::zone::wire_name(&origin);
    let mut printed = 0;
    for key in keys.keys.iter().filter(|k| k.is_sep()) {
        println!("{}", key.ds_text(&wire, &origin_text));
        printed += 1;
    }
    if printed == 0 {
        return Err(anyhow!(
            "zone {origin_text} has no key with the SEP flag (257): nothing to give the parent"
        ));
    }
    Ok(())
}

fn plural(count: usize, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

/// `gslb explain`: asks the running server (`live`: `Some(--api)`, or
/// `Some(None)` for the config's API) to explain with its live health, and
/// falls back to the files when no server answers at the config's address;
/// `live = None` (`--offline`) reads the files only. The first line says
/// which was used.
fn explain(
    source: SnapshotSource,
    client: ExplainClient,
    name: &str,
    record_type: &str,
    live: Option<Option<SocketAddr>>,
) -> Result<()> {
    let mut fallback = String::new();
    if let Some(given) = live {
        let configured = gslb::config::load_config(&source.config_path)
            .ok()
            .map(|loaded| *loaded.config.server.api.get_ref());
        if let Some(addr) = given.or(configured) {
            let client_text = match client.prefix_len {
                Some(len) => format!("{}/{len}", client.address),
                None => client.address.to_string(),
            };
            let query = serde_urlencoded::to_string([
                ("client", client_text.as_str()),
                ("name", name),
                ("type", record_type),
            ])
            .context("encoding the explain query")?;
            match gslb::api::client::get(addr, &format!("/explain?{query}")) {
                Ok(reply) if reply.status == 200 => {
                    println!(
                        "source: live, the server at {addr} (its health, overrides, weights and RTTs now)"
                    );
                    print!("{}", reply.body);
                    return Ok(());
                }
                Ok(reply) => {
                    let body: serde_json::Value =
                        serde_json::from_str(&reply.body).unwrap_or(serde_json::Value::Null);
                    return Err(anyhow!(
                        "the server at {addr} answered {}: {}",
                        reply.status,
                        body["error"].as_str().unwrap_or(reply.body.trim())
                    ));
                }
                Err(err) if given.is_some() => {
                    return Err(anyhow!("no server answered at {addr}: {err}"));
                }
                Err(err) => fallback = format!(" (no server answered at {addr}: {err})"),
            }
        }
    }
    let (control, _) = Control::start(source)
        .map_err(|errors| anyhow!("configuration is not valid:\n{errors}"))?;
    let snapshot = control.snapshot();
    snapshot.log_warnings();
    let health = control.health.view();
    let text = gslb::explain::explain(&snapshot, &health, client, None, name, record_type)
        .map_err(|e| anyhow!(e))?;
    println!(
        "source: offline, the configuration files{fallback}; every endpoint in its initial state (no probes ran)"
    );
    print!("{text}");
    print!(
        "{}",
        gslb::explain::endpoints_report(&snapshot, &health, client, name)
    );
    Ok(())
}

/// `gslb diff` options besides the two files.
struct DiffArgs {
    clients: Option<PathBuf>,
    family: Option<String>,
    record_type: String,
    down: Vec<String>,
    top: usize,
    json: bool,
}

/// `gslb diff`: compiles both configurations (at once, one thread each),
/// weighs the clients with `gslb::diff` and prints its report.
/// `old` and `new` are the files, with how to name them (default: their
/// paths).
fn diff_command(
    (old, old_label): (&std::path::Path, Option<&str>),
    (new, new_label): (&std::path::Path, Option<&str>),
    args: &DiffArgs,
) -> Result<()> {
    let old_name = old_label.map_or_else(|| old.display().to_string(), str::to_string);
    let new_name = new_label.map_or_else(|| new.display().to_string(), str::to_string);
    use gslb::diff::{Clients, DiffOptions, Side};
    use gslb::health::HealthTable;
    let clients = match &args.clients {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            Some(
                gslb::diff::parse_clients(&text, &path.display().to_string())
                    .map_err(|e| anyhow!("the client list cannot be read:\n{e}"))?,
            )
        }
        None => None,
    };
    let build = |path: &std::path::Path| {
        let source = SnapshotSource {
            config_path: path.to_path_buf(),
            extra_zones: Vec::new(),
        };
        let health = HealthTable::default();
        gslb::snapshot::Snapshot::build(&source, &health)
            .map(|(snapshot, _)| (snapshot, health))
            .map_err(|errors| anyhow!("{} is not valid:\n{errors}", path.display()))
    };
    let started = std::time::Instant::now();
    let (before, after) = std::thread::scope(|scope| {
        let before = scope.spawn(|| build(old));
        let after = build(new);
        (
            before
                .join()
                .unwrap_or_else(|_| Err(anyhow!("compiling {} failed", old.display()))),
            after,
        )
    });
    let ((old_snapshot, old_health), (new_snapshot, new_health)) = (before?, after?);
    let compiled = started.elapsed();
    gslb::diff::mark_down(
        &new_snapshot,
        &new_health,
        &args.down,
        std::time::SystemTime::now(),
    )
    .map_err(|e| anyhow!(e))?;
    gslb::diff::plan_offline_splits(&old_snapshot, &old_health);
    gslb::diff::plan_offline_splits(&new_snapshot, &new_health);
    let options = DiffOptions {
        families: match args.family.as_deref() {
            Some("4") => vec![gslb::geo::Family::V4],
            Some(_) => vec![gslb::geo::Family::V6],
            None => vec![gslb::geo::Family::V4, gslb::geo::Family::V6],
        },
        record: if args.record_type.eq_ignore_ascii_case("AAAA") {
            gslb::policy::Family::V6
        } else {
            gslb::policy::Family::V4
        },
        top: args.top,
    };
    let (old_view, new_view) = (old_health.view_arc(), new_health.view_arc());
    let report = gslb::diff::diff(
        Side {
            snapshot: &old_snapshot,
            health: &old_view,
        },
        Side {
            snapshot: &new_snapshot,
            health: &new_view,
        },
        clients
            .as_ref()
            .map_or(Clients::AddressSpace, Clients::Listed),
        &options,
    );
    let walked = started.elapsed() - compiled;
    if args.json {
        let mut value = serde_json::to_value(&report).context("encoding the report")?;
        if let Some(object) = value.as_object_mut() {
            object.insert("old".into(), old_name.clone().into());
            object.insert("new".into(), new_name.clone().into());
            object.insert("seconds_compiling".into(), compiled.as_secs_f64().into());
            object.insert("seconds_comparing".into(), walked.as_secs_f64().into());
        }
        println!(
            "{}",
            serde_json::to_string_pretty(&value).context("encoding the report")?
        );
        return Ok(());
    }
    println!("old: {old_name}");
    println!("new: {new_name}");
    match (&args.clients, &clients) {
        (Some(path), Some(list)) => println!(
            "clients: {} ({} lines, {} distinct clients{})",
            path.display(),
            list.lines,
            list.entries.len(),
            if list.skipped_types > 0 {
                format!(
                    "; {} queries for neither A nor AAAA skipped",
                    list.skipped_types
                )
            } else {
                String::new()
            }
        ),
        _ => println!("clients: every address, exactly (each table boundary of both sides)"),
    }
    println!(
        "answers: {} queries, every endpoint in its initial state (no probes ran, no demand learned){}",
        args.record_type.to_ascii_uppercase(),
        if args.down.is_empty() {
            String::new()
        } else {
            format!("; down on the new side: {}", args.down.join(", "))
        }
    );
    println!(
        "time: {:.2} s compiling both, {:.2} s comparing",
        compiled.as_secs_f64(),
        walked.as_secs_f64()
    );
    print!("{}", gslb::diff::render_text(&report));
    Ok(())
}

fn build_geoip(
    source: &std::path::Path,
    output: &std::path::Path,
    layout: LayoutArg,
    build_epoch: u64,
) -> Result<()> {
    let text =
        std::fs::read_to_string(source).with_context(|| format!("reading {}", source.display()))?;
    let layout = match layout {
        LayoutArg::Maxmind => gslb::geo::Layout::MaxMind,
        LayoutArg::Flat => gslb::geo::Layout::Flat,
    };
    let bytes = gslb::geo::build_mmdb_from_csv(&text, layout, build_epoch)
        .with_context(|| format!("building from {}", source.display()))?;
    std::fs::write(output, bytes).with_context(|| format!("writing {}", output.display()))?;
    println!("wrote {}", output.display());
    Ok(())
}

fn serve(source: SnapshotSource, listen: Vec<SocketAddr>, api: Option<SocketAddr>) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let (control, loaded) = match fleet_cmd::member(&source)? {
        Some(fleet) => fleet_cmd::start_member(&runtime, &fleet)?,
        None => Control::start_serving(source)
            .map_err(|errors| anyhow!("configuration is not valid:\n{errors}"))?,
    };
    control.snapshot().log_warnings();
    let control = Arc::new(control);
    let server_config = &loaded.config.server;
    let listen: Vec<SocketAddr> = if listen.is_empty() {
        server_config.listen.iter().map(|l| *l.get_ref()).collect()
    } else {
        listen
    };
    // Refuses an API others can reach without a token, before anything is
    // bound; makes or reads the token file when no token is configured.
    let auth = api_auth(&loaded, api, TokenFile::Use)?;
    let api = api.unwrap_or(*server_config.api.get_ref());
    control
        .query_log
        .start()
        .context("starting the query log thread")?;
    let workers = match server_config.udp_workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let tcp_limits = server::TcpLimits {
        max_connections: server_config.tcp_max_connections,
        idle_timeout: std::time::Duration::from_secs(u64::from(
            server_config.tcp_idle_timeout.0.max(1),
        )),
        max_queries: server_config.tcp_max_queries.max(1),
    };
    runtime.block_on(async move {
        // Health probers first, so a gdnsd-style first round can finish
        // before any query is answered.
        control.start_probers(tokio::runtime::Handle::current());
        control.start_transfers();
        control.start_load_planner(&tokio::runtime::Handle::current());
        let (wait, limit) = {
            let snapshot = control.snapshot();
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
        // Signal handlers go in before anything says "listening": a SIGHUP
        // sent as soon as a script (or systemd) sees that line would
        // otherwise find no handler and end the process, as its default
        // action does.
        let signals = Signals::install()?;
        let mut tasks = tokio::task::JoinSet::new();
        // The admin API comes first, and its line is printed before the DNS
        // "listening on" lines (scripts read those last).
        let api_bound = start_api(&mut tasks, api, auth, &control).await;
        tasks.spawn(gslb::control::watch_files(control.clone()));
        tasks.spawn(gslb::control::resign_zones(control.clone()));
        let mut bound_addrs = Vec::new();
        for addr in listen {
            let bound = server::bind(addr, workers)
                .with_context(|| format!("binding DNS listener {addr}"))?;
            bound_addrs.push(bound.local_addr);
            println!("listening on {} (udp+tcp)", bound.local_addr);
            tracing::info!(addr = %bound.local_addr, "listening (udp+tcp)");
            let observer = gslb::metrics::Observer {
                metrics: control.metrics.clone(),
                query_log: control.query_log.clone(),
            };
            tasks.spawn(server::serve(
                bound,
                control.served.clone(),
                control.health.clone(),
                observer,
                tcp_limits,
                control.transfers.clone(),
            ));
        }
        // The cluster session (etcd) never blocks DNS: it runs beside it
        // and only writes health verdicts and operator state.
        if let Some(cluster) = control.cluster.clone() {
            cluster.set_addresses(bound_addrs, api_bound);
            tracing::info!(member = %cluster.settings.name, etcd = ?cluster.settings.etcd, "cluster member starting");
            tokio::spawn(gslb::cluster::session::run(control.clone(), cluster));
        }
        // A fleet member follows the published versions, beside DNS too.
        if let Some(fleet) = control.fleet.clone() {
            tokio::spawn(gslb::fleet::follow::run(control.clone(), fleet));
        }
        tasks.spawn(async move {
            signals.handle(control).await;
            Ok(())
        });
        match tasks.join_next().await {
            Some(Ok(Err(err))) => Err(anyhow::Error::new(err).context("serving DNS")),
            _ => Ok(()),
        }
    })
}

/// The signals `serve` handles: SIGHUP reloads; SIGINT/SIGTERM stop it.
struct Signals {
    hangup: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

impl Signals {
    /// Installs the handlers (from then on these signals are queued for
    /// `handle`, not acted on by default).
    ///
    /// # Errors
    /// When the runtime cannot register a handler.
    fn install() -> anyhow::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            hangup: signal(SignalKind::hangup()).context("installing the SIGHUP handler")?,
            terminate: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            interrupt: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
        })
    }

    /// Reloads on each SIGHUP until SIGINT or SIGTERM.
    async fn handle(mut self, control: Arc<Control>) {
        loop {
            tokio::select! {
                _ = self.hangup.recv() => reload(&control).await,
                _ = self.terminate.recv() => break,
                _ = self.interrupt.recv() => break,
            }
        }
        tracing::info!("shutting down");
    }
}

async fn reload(control: &Arc<Control>) {
    let control = control.clone();
    // Control::reload logs and counts the result itself.
    if let Err(err) = tokio::task::spawn_blocking(move || control.reload("sighup")).await {
        tracing::error!(error = %err, "reload task failed");
    }
}

/// Binds the admin API and serves it in `tasks`. A bind failure is logged
/// and DNS is served anyway: the API is not on the data path.
async fn start_api(
    tasks: &mut tokio::task::JoinSet<std::io::Result<()>>,
    addr: SocketAddr,
    auth: gslb::api::ApiAuth,
    control: &Arc<Control>,
) -> Option<SocketAddr> {
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(err) => {
            tracing::error!(%addr, error = %err, "cannot bind the admin API; serving DNS without it");
            return None;
        }
    };
    let local = listener.local_addr().unwrap_or(addr);
    println!("admin api listening on http://{local}/");
    tracing::info!(addr = %local, token_required = auth.token_required(), "admin API listening");
    let control = control.clone();
    tasks.spawn(async move {
        if let Err(err) = gslb::api::serve(listener, control, auth).await {
            tracing::error!(error = %err, "admin API stopped");
        }
        // DNS keeps serving without the API.
        std::future::pending::<()>().await;
        Ok(())
    });
    Some(local)
}

/// `gslb override`: POST /override to a running server.
fn override_command(api: &ApiArgs, target: &str, state: &str) -> Result<()> {
    let body = if target.contains('/') {
        serde_json::json!({"endpoint": target, "state": state})
    } else {
        serde_json::json!({"pool": target, "state": state})
    };
    let reply = api_call(api, "/override", &body)?;
    println!(
        "{target}: override {}{}",
        reply["state"].as_str().unwrap_or(state),
        pending_note(&reply)
    );
    Ok(())
}

/// `gslb weight`: POST /weight to a running server.
fn weight_command(api: &ApiArgs, target: &str, value: &str) -> Result<()> {
    let value = value.trim().trim_end_matches('%');
    let number = match value.parse::<u64>() {
        Ok(n) => serde_json::json!(n),
        Err(_) => serde_json::json!(value),
    };
    let body = if target.contains('/') {
        serde_json::json!({"endpoint": target, "weight": number})
    } else {
        serde_json::json!({"pool": target, "weight_percent": number})
    };
    let reply = api_call(api, "/weight", &body)?;
    let shown = if target.contains('/') {
        format!("weight {}", reply["weight"])
    } else {
        format!("weight_percent {}", reply["weight_percent"])
    };
    println!(
        "{target}: {}{}",
        shown.replace("null", "none (configured)"),
        pending_note(&reply)
    );
    Ok(())
}

fn pending_note(reply: &serde_json::Value) -> &'static str {
    if reply["pending"].as_bool() == Some(true) {
        " (pending: the cluster store is unreachable; applied here, stored when it returns)"
    } else {
        ""
    }
}

/// POSTs `body` to `path` of the API `args` name; the JSON reply when 200.
fn api_call(args: &ApiArgs, path: &str, body: &serde_json::Value) -> Result<serde_json::Value> {
    let (addr, token) = api_target(args.config.as_deref(), args.api, args.token.clone())?;
    let reply = gslb::api::client::post_json(addr, path, token.as_deref(), &body.to_string())
        .with_context(|| format!("calling the admin API at {addr}"))?;
    let parsed: serde_json::Value =
        serde_json::from_str(&reply.body).unwrap_or(serde_json::Value::Null);
    if reply.status == 200 {
        Ok(parsed)
    } else {
        Err(anyhow!(
            "admin API answered {}: {}",
            reply.status,
            parsed["error"].as_str().unwrap_or(reply.body.trim())
        ))
    }
}

/// The bearer token of an API client command: `--token`, else
/// `$GSLB_API_TOKEN`, else the config's `api_token`, else the token file
/// `serve` made in the config's `state_dir` (none when there is no file:
/// the server runs with `api_require_token = false`).
fn client_token(
    given: Option<String>,
    config_path: &std::path::Path,
    server: Option<&gslb::config::ServerToml>,
) -> Option<String> {
    use gslb::api::token::{TokenFileError, read, token_path};
    given
        .or_else(|| {
            std::env::var("GSLB_API_TOKEN")
                .ok()
                .filter(|t| !t.is_empty())
        })
        .or_else(|| {
            server
                .and_then(|s| s.api_token.as_ref())
                .map(|t| t.0.clone())
        })
        .or_else(|| match read(&token_path(config_path, server)) {
            Ok(token) => Some(token),
            Err(TokenFileError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                None
            }
            Err(err) => {
                eprintln!("gslb: warning: {err}");
                None
            }
        })
}

/// `gslb reload`: POST /reload to a running server.
fn reload_command(
    config: Option<&std::path::Path>,
    api: Option<SocketAddr>,
    token: Option<String>,
) -> Result<()> {
    let (addr, token) = api_target(config, api, token)?;
    let reply = gslb::api::client::post(addr, "/reload", token.as_deref())
        .with_context(|| format!("calling the admin API at {addr}"))?;
    let body: serde_json::Value =
        serde_json::from_str(&reply.body).unwrap_or(serde_json::Value::Null);
    match reply.status {
        200 => {
            println!("reloaded ({addr})");
            Ok(())
        }
        422 => {
            let errors: Vec<String> = body["errors"]
                .as_array()
                .map(|list| {
                    list.iter()
                        .filter_map(|e| e.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            Err(anyhow!(
                "reload failed, the server keeps its running configuration:\n{}",
                errors.join("\n")
            ))
        }
        status => Err(anyhow!(
            "admin API answered {status}: {}",
            body["error"].as_str().unwrap_or(reply.body.trim())
        )),
    }
}

/// The admin API address and token of the API commands.
fn api_target(
    config: Option<&std::path::Path>,
    api: Option<SocketAddr>,
    token: Option<String>,
) -> Result<(SocketAddr, Option<String>)> {
    // The config supplies the address and token when not given. A config
    // that does not load says nothing about which server to reload: falling
    // back to the default address would reload whatever instance listens
    // there, so that is an error (with --api and no -c, the default file
    // is only read when it exists).
    let server = match (config, api) {
        (Some(path), _) => Some(load_for_reload(path)?),
        (None, None) => Some(load_for_reload(std::path::Path::new(DEFAULT_CONFIG))?),
        (None, Some(_)) => gslb::config::load_config(std::path::Path::new(DEFAULT_CONFIG))
            .ok()
            .map(|loaded| loaded.config.server),
    };
    let Some(addr) = api.or_else(|| server.as_ref().map(|s| *s.api.get_ref())) else {
        return Err(anyhow!("no admin API address: give --api or -c FILE"));
    };
    let config_path = config.unwrap_or(std::path::Path::new(DEFAULT_CONFIG));
    let token = client_token(token, config_path, server.as_ref());
    Ok((addr, token))
}

/// `publish`, `versions`, `rollback`, `diff`, and the start of a member
/// that serves published versions (see `gslb::fleet`).
mod fleet_cmd {
    use std::path::Path;
    use std::sync::Arc;

    use anyhow::{Context, Result, anyhow};

    use gslb::cluster::ClusterSettings;
    use gslb::control::Control;
    use gslb::fleet::member::Fleet;
    use gslb::fleet::{Bundle, NewVersion, Store};
    use gslb::snapshot::SnapshotSource;

    /// The fleet runtime when `source` is a member's own file with
    /// `[cluster] config = "etcd"`; `None` otherwise (also when the file
    /// does not load: `Control::start` then reports why).
    pub fn member(source: &SnapshotSource) -> Result<Option<Arc<Fleet>>> {
        let Ok(loaded) = gslb::config::load_config(&source.config_path) else {
            return Ok(None);
        };
        let mut errors = Vec::new();
        let settings = gslb::cluster::build_cluster_settings(&loaded, &mut errors);
        let Some(settings) = settings.filter(|s| s.config_from_etcd) else {
            return Ok(None);
        };
        let mut problems: Vec<String> = gslb::fleet::member::check_local(&loaded)
            .iter()
            .map(ToString::to_string)
            .collect();
        if !source.extra_zones.is_empty() {
            problems.push(format!(
                "{}: --zone cannot add zones to a member with [cluster] config = \"etcd\": publish them",
                loaded.path.display()
            ));
        }
        if !problems.is_empty() {
            return Err(anyhow!(
                "configuration is not valid:\n{}",
                problems.join("\n")
            ));
        }
        let fleet = Fleet::new(loaded, &settings).context("the etcd client")?;
        Ok(Some(Arc::new(fleet)))
    }

    /// Starts a member on the best configuration it can build: the newest
    /// version in etcd, else its cached one, else only its own sections.
    pub fn start_member(
        runtime: &tokio::runtime::Runtime,
        fleet: &Arc<Fleet>,
    ) -> Result<(Control, gslb::config::LoadedConfig)> {
        let mut last = None;
        for candidate in runtime.block_on(fleet.candidates()) {
            let version = candidate.version.as_ref().map(|(m, _)| m.version);
            let started = fleet
                .prepare(&candidate)
                .map_err(|err| vec![err.to_string()])
                .and_then(|(source, digest)| {
                    Control::start_member(source, fleet.clone(), digest)
                        .map_err(|errors| errors.0.iter().map(ToString::to_string).collect())
                });
            match started {
                Ok(started) => {
                    fleet.now_serving(&candidate);
                    return Ok(started);
                }
                Err(errors) => {
                    if let Some(version) = version {
                        fleet.failed(version, errors.clone());
                    }
                    last = Some(errors);
                }
            }
        }
        Err(anyhow!(
            "configuration is not valid:\n{}",
            last.unwrap_or_default().join("\n")
        ))
    }

    /// The `[cluster]` settings of `config` (any file with `[cluster]`: a
    /// member's own or a full configuration).
    fn cluster_settings(config: &Path) -> Result<ClusterSettings> {
        let loaded = gslb::config::load_config(config).map_err(|err| anyhow!("{err}"))?;
        let mut errors = Vec::new();
        let settings = gslb::cluster::build_cluster_settings(&loaded, &mut errors);
        if !errors.is_empty() {
            let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
            return Err(anyhow!("configuration is not valid:\n{}", lines.join("\n")));
        }
        settings.ok_or_else(|| {
            anyhow!(
                "{} has no [cluster] section: it names the etcd that holds the versions (name, etcd, prefix)",
                config.display()
            )
        })
    }

    fn runtime() -> Result<tokio::runtime::Runtime> {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")
    }

    /// `user@host` of whoever runs the command.
    fn publisher() -> String {
        let user = ["USER", "LOGNAME"]
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()))
            .unwrap_or_else(|| "unknown".into());
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .or_else(|_| std::fs::read_to_string("/etc/hostname"))
            .map(|h| h.trim().to_string())
            .unwrap_or_default();
        if host.is_empty() {
            user
        } else {
            format!("{user}@{host}")
        }
    }

    /// `gslb publish`.
    pub fn publish(config: &Path, message: &str, expect: Option<u64>, strict: bool) -> Result<()> {
        // Read once before validating and once after: a file changed in
        // between would publish something other than what was checked.
        let before = gslb::config::load_config(config)
            .ok()
            .and_then(|loaded| Bundle::collect(&loaded).ok());
        let source = SnapshotSource {
            config_path: config.to_path_buf(),
            extra_zones: Vec::new(),
        };
        let (control, loaded) = super::validate(source, strict)?;
        let Some(cluster) = control.cluster.as_ref() else {
            return Err(anyhow!(
                "{} has no [cluster] section: publish finds etcd through it (name, etcd, prefix); nothing was published",
                config.display()
            ));
        };
        if cluster.settings.config_from_etcd {
            return Err(anyhow!(
                "{} is a member's own file ([cluster] config = \"etcd\"): publish the full configuration (zones, pools, services…) with a [cluster] section naming the same etcd and prefix; nothing was published",
                config.display()
            ));
        }
        let bundle =
            Bundle::collect(&loaded).with_context(|| format!("bundling {}", config.display()))?;
        if before.as_ref() != Some(&bundle) {
            return Err(anyhow!(
                "the configuration or a file it reads changed while it was being checked; nothing was published: run publish again"
            ));
        }
        let (digest, _) = control.config_identity();
        let store = Store::new(&cluster.settings).context("the etcd client")?;
        let new = NewVersion {
            by: publisher(),
            message: message.to_string(),
            digest,
            rollback_of: None,
        };
        let keep = cluster.settings.keep_versions;
        let meta = runtime()?
            .block_on(store.publish(&bundle, new, expect, keep))
            .map_err(|err| anyhow!("{err}"))?;
        println!(
            "published version {} ({} bytes, digest {}, by {})",
            meta.version,
            meta.bytes,
            gslb::fleet::bundle::short(&meta.digest),
            meta.by
        );
        Ok(())
    }

    /// `gslb versions`.
    pub fn versions(config: &Path, json: bool) -> Result<()> {
        let settings = cluster_settings(config)?;
        let store = Store::new(&settings).context("the etcd client")?;
        let (versions, newest, members) = runtime()?.block_on(async {
            let (versions, _) = store.versions().await?;
            let (newest, _) = store.latest().await?;
            let members = store.members().await?;
            Ok::<_, gslb::fleet::store::ReadError>((versions, newest, members))
        })?;
        let now_ms = gslb::operator::unix_ms(std::time::SystemTime::now());
        let report = gslb::fleet::report::versions_report(&versions, newest, &members, now_ms);
        if json {
            println!(
                "{}",
                serde_json::to_string_pretty(&report).context("encoding the report")?
            );
        } else if report.versions.is_empty() {
            println!("no version published under {}", store.config_prefix());
        } else {
            print!("{}", gslb::fleet::report::render_versions(&report));
        }
        Ok(())
    }

    /// Reads version `version`'s metadata and bundle.
    async fn fetch(store: &Store, version: u64) -> Result<(gslb::fleet::VersionMeta, Bundle)> {
        let (versions, _) = store.versions().await?;
        let kept = || {
            versions.first().map_or("none".to_string(), |m| {
                format!(
                    "{} to {}",
                    m.version,
                    versions.last().map_or(m.version, |l| l.version)
                )
            })
        };
        let meta = versions
            .iter()
            .find(|m| m.version == version)
            .cloned()
            .ok_or_else(|| {
                anyhow!(
                    "version {version} is not kept (kept: {}; see gslb versions)",
                    kept()
                )
            })?;
        let bundle = store
            .bundle(version)
            .await?
            .ok_or_else(|| anyhow!("version {version} has no bundle (kept: {})", kept()))?;
        Ok((meta, bundle))
    }

    /// `gslb rollback N`: builds version N here as a member would (with
    /// this file's `[server]` and `[cluster]` and this host's local files),
    /// then publishes it again as a new version.
    pub fn rollback(config: &Path, version: u64, message: Option<String>) -> Result<()> {
        let settings = cluster_settings(config)?;
        let local = gslb::config::load_config(config).map_err(|err| anyhow!("{err}"))?;
        let store = Store::new(&settings).context("the etcd client")?;
        let runtime = runtime()?;
        let (meta, bundle) = runtime.block_on(fetch(&store, version))?;
        let dir =
            std::env::temp_dir().join(format!("gslb-rollback-{}-{version}", std::process::id()));
        let built = gslb::fleet::bundle::materialize(Some(&bundle), &local, &dir)
            .map_err(|err| anyhow!("{err}"))
            .and_then(|config_path| {
                let source = SnapshotSource {
                    config_path,
                    extra_zones: Vec::new(),
                };
                gslb::snapshot::Snapshot::build(&source, &gslb::health::HealthTable::default())
                    .map(drop)
                    .map_err(|errors| {
                        anyhow!("version {version} does not build here, nothing was published:\n{errors}")
                    })
            });
        let _ = std::fs::remove_dir_all(&dir);
        built?;
        let new = NewVersion {
            by: publisher(),
            message: message.unwrap_or_else(|| format!("rollback to version {version}")),
            digest: meta.digest.clone(),
            rollback_of: Some(version),
        };
        let published = runtime
            .block_on(store.publish(&bundle, new, None, settings.keep_versions))
            .map_err(|err| anyhow!("{err}"))?;
        println!(
            "published version {} (version {version} again: {} bytes, digest {}, by {})",
            published.version,
            published.bytes,
            gslb::fleet::bundle::short(&published.digest),
            published.by
        );
        Ok(())
    }

    /// `gslb diff A B`: the line diffs; with `--clients` or `--db`, both
    /// versions built on this host (as a member would: this file's
    /// `[server]` and `[cluster]`, this host's databases) and compared by
    /// the client-movement engine of the two-file form.
    pub fn diff(config: &Path, a: u64, b: u64, db: bool, args: &super::DiffArgs) -> Result<()> {
        let weigh = db || args.clients.is_some();
        if args.json && !weigh {
            return Err(anyhow!(
                "--json is the client report's format: add --db or --clients FILE"
            ));
        }
        let settings = cluster_settings(config)?;
        let store = Store::new(&settings).context("the etcd client")?;
        let runtime = runtime()?;
        let (old, new) = runtime.block_on(async {
            Ok::<_, anyhow::Error>((fetch(&store, a).await?, fetch(&store, b).await?))
        })?;
        if !args.json {
            print!(
                "{}",
                gslb::fleet::report::render_diff((&old.0, &old.1), (&new.0, &new.1))
            );
        }
        if !weigh {
            return Ok(());
        }
        let local = gslb::config::load_config(config).map_err(|err| anyhow!("{err}"))?;
        let base = std::env::temp_dir().join(format!("gslb-diff-{}", std::process::id()));
        let written = [(a, &old.1), (b, &new.1)].map(|(version, bundle)| {
            gslb::fleet::bundle::materialize(
                Some(bundle),
                &local,
                &base.join(format!("v{version}")),
            )
            .map_err(|err| anyhow!("version {version}: {err}"))
        });
        let result = match written {
            [Ok(old_path), Ok(new_path)] => {
                if !args.json {
                    println!();
                }
                super::diff_command(
                    (&old_path, Some(&format!("version {a}"))),
                    (&new_path, Some(&format!("version {b}"))),
                    args,
                )
            }
            [Err(err), _] | [_, Err(err)] => Err(err),
        };
        let _ = std::fs::remove_dir_all(&base);
        result
    }
}

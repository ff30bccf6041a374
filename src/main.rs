//! The `updhub` command line: parse arguments, load the node, call the library, print.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::{DateTime, Datelike, Utc};
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use updhub::config::Config;
use updhub::hub::{Hub, InitOptions};
use updhub::id::ServerId;

/// Standard output went away (`updhub versions | head -1`): the command ends quietly.
#[derive(Debug)]
struct StdoutClosed;

impl std::fmt::Display for StdoutClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("standard output was closed")
    }
}

impl std::error::Error for StdoutClosed {}

/// `println!` that returns an error instead of panicking when stdout is closed.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout(), $($arg)*).map_err(|e| {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                anyhow::Error::new(StdoutClosed)
            } else {
                anyhow::Error::new(e).context("writing to standard output")
            }
        })?;
    }};
}

/// Update-repository and license distribution hub for clusters of anti-virus management servers.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// The node's data folder.
    #[arg(
        long,
        global = true,
        env = "UPDHUB_DATA",
        default_value = "./updhub-data"
    )]
    data: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the data folder: config, database, cluster keys and this node's certificate.
    Init {
        /// Take the shared cluster keys from this folder (made by `keys export`).
        #[arg(long)]
        keys_from: Option<PathBuf>,
        /// This node's unique id (random if not given).
        #[arg(long)]
        id: Option<ServerId>,
        /// The cluster's DNS name, the same on every node.
        #[arg(long)]
        name: Option<String>,
        /// Follow this parent (written into updhub.toml).
        #[arg(long)]
        parent: Option<String>,
        /// The upstream zone (written into updhub.toml).
        #[arg(long)]
        zone: Option<String>,
    },
    /// The cluster keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Pull the upstream zone into the store.
    Mirror {
        /// A zone folder or https:// URL (another updhub's /v1/zone); default: upstream.zone.
        #[arg(long)]
        from: Option<String>,
    },
    /// Publish the last mirrored state as the next signed version.
    Publish {
        /// How long the signature is valid, e.g. 7d (default: publish.expires_in).
        #[arg(long, value_parser = updhub::config::parse_span)]
        expires_in: Option<Duration>,
    },
    /// List repository versions.
    Versions {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Serve the interserver API (and follow the parent if one is configured).
    Serve {
        /// Listen address (default: server.listen, 127.0.0.1:8443).
        #[arg(long, env = "UPDHUB_LISTEN")]
        listen: Option<SocketAddr>,
        /// Station listen address (default: server.station_listen, 127.0.0.1:8843).
        #[arg(long, env = "UPDHUB_STATION_LISTEN")]
        station_listen: Option<SocketAddr>,
    },
    /// Station licenses: keys, donations to other servers, the audit log.
    License {
        #[command(subcommand)]
        command: LicenseCommand,
    },
    /// Stations registered with this server.
    Stations {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Pull the parent's published version.
    Sync {
        /// The parent's URL (default: upstream.parent).
        #[arg(long, env = "UPDHUB_PARENT")]
        parent: Option<String>,
        /// Sync once and exit instead of following.
        #[arg(long)]
        once: bool,
    },
    /// The current version; on a parent, each child's last report.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write the current version as a plain file tree.
    Checkout {
        /// An empty or new folder.
        #[arg(long)]
        to: PathBuf,
    },
    /// Write the current version as a zone another hub can mirror (air-gapped transfer).
    Export {
        /// An empty or new folder.
        #[arg(long)]
        zone: PathBuf,
    },
}

/// A period: `--for DURATION` or `--until DATE`.
#[derive(clap::Args)]
#[group(required = true, multiple = false)]
struct Period {
    /// How long, e.g. 30d.
    #[arg(long = "for", value_parser = updhub::config::parse_span)]
    for_: Option<Duration>,
    /// Until a date: 2026-12-31 (midnight UTC) or RFC 3339.
    #[arg(long, value_parser = parse_date)]
    until: Option<DateTime<Utc>>,
}

impl Period {
    fn end(&self) -> Result<DateTime<Utc>> {
        match (self.for_, self.until) {
            (Some(d), _) => chrono::Duration::from_std(d)
                .ok()
                .and_then(|d| Utc::now().checked_add_signed(d))
                .context("--for is too long: give at most 100 years"),
            (_, Some(u)) => Ok(u),
            _ => unreachable!("clap requires one"),
        }
    }
}

fn parse_date(s: &str) -> Result<DateTime<Utc>, String> {
    let t = match DateTime::parse_from_rfc3339(s) {
        Ok(t) => t.with_timezone(&Utc),
        Err(_) => chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc())
            .map_err(|_| {
                format!("'{s}' is not a date: write 2026-12-31 or 2026-12-31T12:00:00Z")
            })?,
    };
    // Dates past year 9999 are no real end and would overflow when margins are added.
    if t.year() > 9999 {
        return Err(format!(
            "'{s}' is too far away: give a date before the year 10000"
        ));
    }
    Ok(t)
}

#[derive(Subcommand)]
enum LicenseCommand {
    /// Add a license key file (its issuer must be in licenses.issuers).
    Add {
        /// The key file.
        file: PathBuf,
    },
    /// Donate licenses to another server for a period.
    Donate {
        /// The receiving server's id.
        #[arg(long)]
        to: String,
        /// How many station licenses.
        #[arg(long)]
        count: u32,
        #[command(flatten)]
        period: Period,
        /// The key or received grant to donate from (default: the one with most room).
        #[arg(long)]
        key: Option<String>,
        /// Idempotency key: retrying with the same id never donates twice.
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Outgoing and incoming grants, with expiry.
    Grants {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Extend a grant this server donated.
    Renew {
        /// The grant.
        grant_id: String,
        #[command(flatten)]
        period: Period,
    },
    /// Take back a grant this server donated.
    Revoke {
        /// The grant.
        grant_id: String,
    },
    /// Give back a grant this server received.
    Return {
        /// The grant.
        grant_id: String,
    },
    /// Per key and received grant: total, used by stations, donated, free, expiring soon.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The audit trail.
    Log {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Issue a signed license key (for issuers and test set-ups).
    Issue {
        /// The issuer's ed25519 private key (PKCS#8 PEM).
        #[arg(long)]
        issuer_key: PathBuf,
        /// Key id.
        #[arg(long)]
        key_id: String,
        /// Holder.
        #[arg(long)]
        holder: String,
        /// Station licenses.
        #[arg(long)]
        stations: u32,
        /// Valid from (default: now).
        #[arg(long, value_parser = parse_date)]
        from: Option<DateTime<Utc>>,
        /// Valid until.
        #[arg(long, value_parser = parse_date)]
        until: DateTime<Utc>,
        /// Where to write the key file.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Copy the shared cluster keys and certificate to a folder, for `init --keys-from`.
    Export {
        /// The folder to write.
        #[arg(long)]
        to: PathBuf,
    },
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("UPDHUB_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let matches = Cli::command().get_matches();
    // Only the README's zero-config run (no --data, no UPDHUB_DATA) sets up a node on `serve`:
    // a typo in an explicit --data must not create a whole new parent.
    let default_data =
        matches.value_source("data") == Some(clap::parser::ValueSource::DefaultValue);
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    let rt = tokio::runtime::Runtime::new().expect("a tokio runtime");
    if let Err(e) = rt.block_on(run(cli, default_data)) {
        if e.downcast_ref::<StdoutClosed>().is_some() {
            return;
        }
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// Listen for Ctrl-C (SIGINT) and SIGTERM, the signal systemd and container runtimes stop
/// services with. The handlers are installed here, at once, so a signal that arrives before
/// the returned future is first polled still stops the server gracefully.
///
/// # Errors
/// The signal handlers cannot be installed.
fn stop_signal() -> Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut int = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    let mut term = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        tracing::info!("shutting down");
    })
}

fn open(data: &Path) -> Result<Hub> {
    Ok(Hub::open(data)?)
}

fn print_json(v: &impl serde::Serialize) -> Result<()> {
    out!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

async fn run(cli: Cli, default_data: bool) -> Result<()> {
    let data = cli.data;
    match cli.command {
        Command::Init {
            keys_from,
            id,
            name,
            parent,
            zone,
        } => {
            let hub = Hub::init(
                &data,
                InitOptions {
                    keys_from,
                    id,
                    name,
                    parent,
                    zone,
                },
            )?;
            out!(
                "initialized {} as server {} (cluster name {})",
                data.display(),
                hub.id(),
                hub.config.server.name
            );
        }
        Command::Keys {
            command: KeysCommand::Export { to },
        } => {
            open(&data)?.export_keys(&to)?;
            out!(
                "exported the cluster keys to {}; on the next node run: updhub --data DIR init --keys-from {}",
                to.display(),
                to.display()
            );
        }
        Command::Mirror { from } => {
            let hub = open(&data)?;
            let s = hub
                .mirror(from.as_deref(), std::io::stderr().is_terminal())
                .await?;
            out!("{s}");
        }
        Command::Publish { expires_in } => {
            let (p, new) = open(&data)?.publish(expires_in)?;
            out!(
                "{} version {} root {} expires {}",
                if new { "published" } else { "re-signed" },
                p.number,
                p.root,
                p.expires
            );
        }
        Command::Versions { json } => {
            let hub = open(&data)?;
            let current = hub.db.published()?.map(|p| p.number);
            let v = hub.versions()?;
            if json {
                print_json(&v)?;
            } else {
                out!(
                    "{:>6}  {:<64}  {:>6}  {:>12}  created",
                    "number",
                    "root",
                    "files",
                    "bytes"
                );
                for r in v {
                    let mark = if Some(r.number) == current {
                        "  (current)"
                    } else {
                        ""
                    };
                    out!(
                        "{:>6}  {}  {:>6}  {:>12}  {}{mark}",
                        r.number,
                        r.root,
                        r.files,
                        r.bytes,
                        r.created
                    );
                }
            }
        }
        Command::Serve {
            listen,
            station_listen,
        } => serve(&data, default_data, listen, station_listen).await?,
        Command::License { command } => license(&data, command).await?,
        Command::Stations { json } => {
            let rows = open(&data)?.ledger.stations()?;
            if json {
                print_json(&rows)?;
            } else {
                out!(
                    "{:<24} {:<20} {:<25} last seen",
                    "station",
                    "license",
                    "registered"
                );
                for r in rows {
                    out!(
                        "{:<24} {:<20} {:<25} {}",
                        r.station_id,
                        r.source_id,
                        r.registered.to_string(),
                        r.last_seen
                    );
                }
            }
        }
        Command::Sync { parent, once } => {
            let hub = open(&data)?;
            let _lock = updhub::lock::DataLock::take(&data, "sync")?;
            let parent = parent
                .or_else(|| hub.config.upstream.parent.clone())
                .context(
                "no parent: pass --parent https://HOST:PORT or set upstream.parent in updhub.toml",
            )?;
            if once {
                let r = updhub::child::sync_once(&hub, &parent).await?;
                out!("{r}");
            } else {
                let stop = stop_signal()?;
                let (tx, rx) = tokio::sync::watch::channel(false);
                let hub = Arc::new(hub);
                let task = tokio::spawn(updhub::child::follow(hub, parent, rx));
                stop.await;
                let _ = tx.send(true);
                task.await?;
            }
        }
        Command::Status { json } => {
            let s = open(&data)?.status()?;
            if json {
                print_json(&s)?;
            } else {
                print_status(&s)?;
            }
        }
        Command::Checkout { to } => {
            let (p, files) = open(&data)?.checkout(&to)?;
            out!(
                "checked out version {} ({files} files) to {}",
                p.number,
                to.display()
            );
        }
        Command::Export { zone } => {
            let p = open(&data)?.export_zone(&zone)?;
            out!(
                "exported version {} as a zone in {}; another hub mirrors it with: updhub mirror --from {}",
                p.number,
                zone.display(),
                zone.display()
            );
        }
    }
    Ok(())
}

async fn license(data: &Path, cmd: LicenseCommand) -> Result<()> {
    if let LicenseCommand::Issue {
        issuer_key,
        key_id,
        holder,
        stations,
        from,
        until,
        out,
    } = cmd
    {
        use ed25519_dalek::pkcs8::DecodePrivateKey;
        let pem = std::fs::read_to_string(&issuer_key)
            .with_context(|| format!("reading {}", issuer_key.display()))?;
        let key = ed25519_dalek::SigningKey::from_pkcs8_pem(&pem).map_err(|e| {
            anyhow::anyhow!(
                "{}: not an ed25519 PKCS#8 PEM key ({e})",
                issuer_key.display()
            )
        })?;
        let k = updhub::license::LicenseKey::issue(
            &key,
            &key_id,
            &holder,
            stations,
            from.unwrap_or_else(Utc::now),
            until,
        );
        std::fs::write(&out, serde_json::to_vec_pretty(&k)?)
            .with_context(|| format!("writing {}", out.display()))?;
        out!(
            "issued key {key_id} ({stations} stations until {until}) to {}; issuer {}",
            out.display(),
            k.issuer
        );
        return Ok(());
    }
    let hub = open(data)?;
    let warn = hub.config.licenses.warn_before;
    match cmd {
        LicenseCommand::Issue { .. } => unreachable!("handled above"),
        LicenseCommand::Add { file } => {
            let k = updhub::hub::add_license_file(&hub, &file).await?;
            out!(
                "added key {} ({} stations for {} until {})",
                k.key_id,
                k.stations,
                k.holder,
                k.valid_until
            );
        }
        LicenseCommand::Donate {
            to,
            count,
            period,
            key,
            request_id,
        } => {
            let known = |id: &str| hub.db.knows_server(id).unwrap_or(false);
            let d = updhub::license::ledger::Donation {
                to,
                count,
                until: period.end()?,
                source: key,
                request_id: request_id.unwrap_or_else(|| hex::encode(rand::random::<[u8; 16]>())),
            };
            let t = hub.ledger.donate(d, known).await?;
            out!(
                "granted {} ({} licenses from {} to {} until {}); the receiver picks it up on its next sync",
                t.grant_id, t.count, t.source, t.receiver, t.not_after
            );
        }
        LicenseCommand::Grants { json } => {
            let g = hub.ledger.grants(warn)?;
            if json {
                print_json(&g)?;
            } else {
                out!("outgoing:");
                for o in &g.outgoing {
                    out!(
                        "  {} {} licenses from {} to {} until {} [{}]",
                        o.grant_id,
                        o.count,
                        o.source_id,
                        o.receiver,
                        o.not_after,
                        o.status
                    );
                }
                out!("incoming:");
                for i in &g.incoming {
                    out!(
                        "  {} {} licenses from {} until {} (counted until {}) [{}]{}",
                        i.source_id,
                        i.total,
                        i.holder,
                        i.not_after,
                        i.usable_until,
                        i.status,
                        if i.expiring_soon {
                            " EXPIRING SOON"
                        } else {
                            ""
                        }
                    );
                }
            }
        }
        LicenseCommand::Renew { grant_id, period } => {
            let t = hub.ledger.renew(grant_id, period.end()?).await?;
            out!(
                "renewed {} until {}; the receiver picks it up on its next sync",
                t.grant_id,
                t.not_after
            );
        }
        LicenseCommand::Revoke { grant_id } => {
            let t = hub.ledger.revoke(grant_id).await?;
            out!(
                "revoking {}: {} stops counting it on its next sync; the {} licenses come back when it acknowledges, or at {} at the latest",
                t.grant_id, t.receiver, t.count, t.not_after + hub.ledger.margin()
            );
        }
        LicenseCommand::Return { grant_id } => {
            if updhub::license::api::return_grant(&hub, &grant_id).await? {
                out!("returned {grant_id} to its donor");
            } else {
                out!("stopped counting {grant_id}; the donor is told on the next sync");
            }
        }
        LicenseCommand::Status { json } => {
            let s = hub.ledger.status(warn)?;
            if json {
                print_json(&s)?;
            } else {
                out!(
                    "{:<20} {:<5} {:>6} {:>6} {:>7} {:>6}  until",
                    "license",
                    "kind",
                    "total",
                    "used",
                    "donated",
                    "free"
                );
                for r in s {
                    out!(
                        "{:<20} {:<5} {:>6} {:>6} {:>7} {:>6}  {} [{}]{}",
                        r.source_id,
                        r.kind,
                        r.total,
                        r.used,
                        r.donated,
                        r.free,
                        r.usable_until,
                        r.status,
                        if r.expiring_soon {
                            " EXPIRING SOON"
                        } else {
                            ""
                        }
                    );
                }
            }
        }
        LicenseCommand::Log { json } => {
            let l = hub.ledger.log()?;
            if json {
                print_json(&l)?;
            } else {
                for r in l {
                    out!(
                        "{:>6} {} {:<24} {:<20} {}",
                        r.seq,
                        r.at,
                        r.event,
                        r.subject,
                        r.details
                    );
                }
            }
        }
    }
    Ok(())
}

fn print_status(s: &updhub::hub::Status) -> Result<()> {
    out!("server {} ({})", s.server_id, s.role);
    match &s.current {
        Some(p) => out!(
            "current version {} root {} expires {}",
            p.number,
            p.root,
            p.expires
        ),
        None => out!("no current version"),
    }
    if let Some(w) = &s.warning {
        out!("WARNING: {w}");
    }
    if let Some(sy) = &s.sync {
        out!(
            "parent {}: last try {}, last success {}{}",
            sy.parent,
            sy.last_try,
            sy.last_ok
                .map(|t| t.to_string())
                .unwrap_or_else(|| "never".into()),
            sy.last_error
                .as_ref()
                .map(|e| format!(", last error: {e}"))
                .unwrap_or_default()
        );
    }
    out!("config digest {}", s.config_digest);
    for c in &s.children {
        out!(
            "child {}: version {} {}{} reported {}",
            c.report.child_id,
            c.report
                .number
                .map(|n| n.to_string())
                .unwrap_or_else(|| "-".into()),
            if c.in_sync { "in sync" } else { "BEHIND" },
            if c.config_matches {
                ""
            } else {
                ", CONFIG DIFFERS"
            },
            c.report.reported_at
        );
    }
    Ok(())
}

/// `serve`. Run with the default data folder and none there yet, it first sets up a node on
/// the embedded defaults (sample zone, SQLite, generated certificates), mirrors, publishes
/// and adds the demo license, all in a temporary folder moved into place at the end, so one
/// command runs the hub and a failure leaves nothing behind.
async fn serve(
    data: &Path,
    default_data: bool,
    listen: Option<SocketAddr>,
    station_listen: Option<SocketAddr>,
) -> Result<()> {
    if !data.join(updhub::config::FILE).exists() {
        if !default_data {
            anyhow::bail!(
                "{} holds no updhub node (no {}); check the --data path, or create a node there with `updhub --data {} init`",
                data.display(),
                updhub::config::FILE,
                data.display()
            );
        }
        let new = Hub::begin_init(data, InitOptions::default())?;
        let hub = &new.hub;
        eprintln!(
            "initializing a new node in {} (server {})",
            data.display(),
            hub.id()
        );
        let s = hub.mirror(None, std::io::stderr().is_terminal()).await?;
        eprintln!("{s}");
        let (p, _) = hub.publish(None)?;
        eprintln!("published version {} root {}", p.number, p.root);
        let k = updhub::hub::add_license_bytes(hub, updhub::hub::DEMO_LICENSE, "the demo license")
            .await?;
        eprintln!(
            "added the demo license key {} ({} stations)",
            k.key_id, k.stations
        );
        new.finish()?;
        eprintln!("initialized a new node in {}", data.display());
    }
    let _lock = updhub::lock::DataLock::take(data, "serve")?;
    let mut config = Config::load(data)?;
    if let Some(l) = listen {
        config.server.listen = l;
    }
    if let Some(l) = station_listen {
        config.server.station_listen = l;
    }
    let hub = Arc::new(Hub::open_with(data, config)?);
    hub.db.check_integrity()?;
    let stop = stop_signal()?;
    // Catch up on expiry missed while down before taking requests.
    hub.resign_if_due()?;
    let listener = tokio::net::TcpListener::bind(hub.config.server.listen)
        .await
        .with_context(|| {
            format!(
                "listening on {}; is another process using it? pass --listen",
                hub.config.server.listen
            )
        })?;
    let stations = tokio::net::TcpListener::bind(hub.config.server.station_listen)
        .await
        .with_context(|| {
            format!(
                "listening for stations on {}; is another process using it? pass --station-listen",
                hub.config.server.station_listen
            )
        })?;
    let addr = listener.local_addr()?;
    let url = format!("https://{addr}");
    out!(
        "updhub {} serving {url} as server {}",
        env!("CARGO_PKG_VERSION"),
        hub.id()
    );
    if let Some(p) = hub.db.published()? {
        out!(
            "current version {} root {} expires {}",
            p.number,
            p.root,
            p.expires
        );
    }
    let d = data.display();
    out!("a child connects with:");
    out!("  updhub --data {d} keys export --to /tmp/updhub-keys");
    out!("  updhub --data ./child init --keys-from /tmp/updhub-keys --parent {url}");
    out!("  updhub --data ./child sync --once      (or, to serve on: updhub --data ./child serve --listen ADDR --station-listen ADDR)");
    out!(
        "stations register at https://{}/v1/stations/register",
        stations.local_addr()?
    );
    let stats = updhub::server::new_stats();
    updhub::server::serve_node(listener, Some(stations), hub.clone(), stats, stop).await?;
    // A copy of updhub.db taken while updhub is stopped is then complete on its own.
    hub.db.checkpoint()?;
    Ok(())
}

//! The `updhub` command line: parse arguments, load the node, call the library, print.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};

use updhub::config::Config;
use updhub::hub::{Hub, InitOptions};
use updhub::id::ServerId;

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
        #[arg(long, value_parser = humantime::parse_duration)]
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
    #[arg(long = "for", value_parser = humantime::parse_duration)]
    for_: Option<Duration>,
    /// Until a date: 2026-12-31 (midnight UTC) or RFC 3339.
    #[arg(long, value_parser = parse_date)]
    until: Option<DateTime<Utc>>,
}

impl Period {
    fn end(&self) -> DateTime<Utc> {
        match (self.for_, self.until) {
            (Some(d), _) => {
                Utc::now() + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
            }
            (_, Some(u)) => u,
            _ => unreachable!("clap requires one"),
        }
    }
}

fn parse_date(s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc())
        .map_err(|_| format!("'{s}' is not a date: write 2026-12-31 or 2026-12-31T12:00:00Z"))
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
    let cli = Cli::parse();
    let rt = tokio::runtime::Runtime::new().expect("a tokio runtime");
    if let Err(e) = rt.block_on(run(cli)) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn open(data: &Path) -> Result<Hub> {
    Ok(Hub::open(data)?)
}

fn print_json(v: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

async fn run(cli: Cli) -> Result<()> {
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
            println!(
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
            println!(
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
            println!("{s}");
        }
        Command::Publish { expires_in } => {
            let (p, new) = open(&data)?.publish(expires_in)?;
            println!(
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
                println!(
                    "{:>6}  {:<64}  {:>6}  {:>12}  created",
                    "number", "root", "files", "bytes"
                );
                for r in v {
                    let mark = if Some(r.number) == current {
                        "  (current)"
                    } else {
                        ""
                    };
                    println!(
                        "{:>6}  {}  {:>6}  {:>12}  {}{mark}",
                        r.number, r.root, r.files, r.bytes, r.created
                    );
                }
            }
        }
        Command::Serve {
            listen,
            station_listen,
        } => serve(&data, listen, station_listen).await?,
        Command::License { command } => license(&data, command).await?,
        Command::Stations { json } => {
            let rows = open(&data)?.ledger.stations()?;
            if json {
                print_json(&rows)?;
            } else {
                println!(
                    "{:<24} {:<20} {:<25} last seen",
                    "station", "license", "registered"
                );
                for r in rows {
                    println!(
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
            let parent = parent
                .or_else(|| hub.config.upstream.parent.clone())
                .context(
                "no parent: pass --parent https://HOST:PORT or set upstream.parent in updhub.toml",
            )?;
            if once {
                let r = updhub::child::sync_once(&hub, &parent).await?;
                println!("{r}");
            } else {
                let (tx, rx) = tokio::sync::watch::channel(false);
                let hub = Arc::new(hub);
                let task = tokio::spawn(updhub::child::follow(hub, parent, rx));
                tokio::signal::ctrl_c()
                    .await
                    .context("waiting for Ctrl-C")?;
                let _ = tx.send(true);
                task.await?;
            }
        }
        Command::Status { json } => {
            let s = open(&data)?.status()?;
            if json {
                print_json(&s)?;
            } else {
                print_status(&s);
            }
        }
        Command::Checkout { to } => {
            let (p, files) = open(&data)?.checkout(&to)?;
            println!(
                "checked out version {} ({files} files) to {}",
                p.number,
                to.display()
            );
        }
        Command::Export { zone } => {
            let p = open(&data)?.export_zone(&zone)?;
            println!(
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
        println!(
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
            println!(
                "added key {} ({} stations for {} until {})",
                k.key_id, k.stations, k.holder, k.valid_until
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
                until: period.end(),
                source: key,
                request_id: request_id.unwrap_or_else(|| hex::encode(rand::random::<[u8; 16]>())),
            };
            let t = hub.ledger.donate(d, known).await?;
            println!(
                "granted {} ({} licenses from {} to {} until {}); the receiver picks it up on its next sync",
                t.grant_id, t.count, t.source, t.receiver, t.not_after
            );
        }
        LicenseCommand::Grants { json } => {
            let g = hub.ledger.grants(warn)?;
            if json {
                print_json(&g)?;
            } else {
                println!("outgoing:");
                for o in &g.outgoing {
                    println!(
                        "  {} {} licenses from {} to {} until {} [{}]",
                        o.grant_id, o.count, o.source_id, o.receiver, o.not_after, o.status
                    );
                }
                println!("incoming:");
                for i in &g.incoming {
                    println!(
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
            let t = hub.ledger.renew(grant_id, period.end()).await?;
            println!(
                "renewed {} until {}; the receiver picks it up on its next sync",
                t.grant_id, t.not_after
            );
        }
        LicenseCommand::Revoke { grant_id } => {
            let t = hub.ledger.revoke(grant_id).await?;
            println!(
                "revoking {}: {} stops counting it on its next sync; the {} licenses come back when it acknowledges, or at {} at the latest",
                t.grant_id, t.receiver, t.count, t.not_after + hub.ledger.margin()
            );
        }
        LicenseCommand::Return { grant_id } => {
            if updhub::license::api::return_grant(&hub, &grant_id).await? {
                println!("returned {grant_id} to its donor");
            } else {
                println!("stopped counting {grant_id}; the donor is told on the next sync");
            }
        }
        LicenseCommand::Status { json } => {
            let s = hub.ledger.status(warn)?;
            if json {
                print_json(&s)?;
            } else {
                println!(
                    "{:<20} {:<5} {:>6} {:>6} {:>7} {:>6}  until",
                    "license", "kind", "total", "used", "donated", "free"
                );
                for r in s {
                    println!(
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
                    println!(
                        "{:>6} {} {:<24} {:<20} {}",
                        r.seq, r.at, r.event, r.subject, r.details
                    );
                }
            }
        }
    }
    Ok(())
}

fn print_status(s: &updhub::hub::Status) {
    println!("server {} ({})", s.server_id, s.role);
    match &s.current {
        Some(p) => println!(
            "current version {} root {} expires {}",
            p.number, p.root, p.expires
        ),
        None => println!("no current version"),
    }
    if let Some(w) = &s.warning {
        println!("WARNING: {w}");
    }
    if let Some(sy) = &s.sync {
        println!(
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
    println!("config digest {}", s.config_digest);
    for c in &s.children {
        println!(
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
}

/// `serve`: with no data folder, set up a node on the embedded defaults first (sample zone,
/// SQLite, generated certificates), mirror and publish, so one command runs the hub.
async fn serve(
    data: &Path,
    listen: Option<SocketAddr>,
    station_listen: Option<SocketAddr>,
) -> Result<()> {
    if !data.join(updhub::config::FILE).exists() {
        let hub = Hub::init(data, InitOptions::default())?;
        eprintln!(
            "initialized a new node in {} (server {})",
            data.display(),
            hub.id()
        );
        let s = hub.mirror(None, std::io::stderr().is_terminal()).await?;
        eprintln!("{s}");
        let (p, _) = hub.publish(None)?;
        eprintln!("published version {} root {}", p.number, p.root);
        let k = updhub::hub::add_license_bytes(&hub, updhub::hub::DEMO_LICENSE, "the demo license")
            .await?;
        eprintln!(
            "added the demo license key {} ({} stations)",
            k.key_id, k.stations
        );
    }
    let mut config = Config::load(data)?;
    if let Some(l) = listen {
        config.server.listen = l;
    }
    if let Some(l) = station_listen {
        config.server.station_listen = l;
    }
    let hub = Arc::new(Hub::open_with(data, config)?);
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
    println!(
        "updhub {} serving {url} as server {}",
        env!("CARGO_PKG_VERSION"),
        hub.id()
    );
    if let Some(p) = hub.db.published()? {
        println!(
            "current version {} root {} expires {}",
            p.number, p.root, p.expires
        );
    }
    let d = data.display();
    println!("a child connects with:");
    println!("  updhub --data {d} keys export --to /tmp/updhub-keys");
    println!("  updhub --data ./child init --keys-from /tmp/updhub-keys --parent {url}");
    println!("  updhub --data ./child sync --once      (or, to serve on: updhub --data ./child serve --listen ADDR --station-listen ADDR)");
    println!(
        "stations register at https://{}/v1/stations/register",
        stations.local_addr()?
    );
    let stats = updhub::server::new_stats();
    updhub::server::serve_node(listener, Some(stations), hub, stats, async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
    })
    .await?;
    Ok(())
}

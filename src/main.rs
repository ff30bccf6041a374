//! The `updhub` command line: parse arguments, load the node, call the library, print.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
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
        Command::Serve { listen } => serve(&data, listen).await?,
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
async fn serve(data: &Path, listen: Option<SocketAddr>) -> Result<()> {
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
    }
    let mut config = Config::load(data)?;
    if let Some(l) = listen {
        config.server.listen = l;
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
    println!("  updhub --data ./child sync --once      (or: updhub --data ./child serve --listen 127.0.0.1:8444)");
    let stats = updhub::server::new_stats();
    updhub::server::serve_node(listener, hub, stats, async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
    })
    .await?;
    Ok(())
}

//! The command line as a library: argument definitions (clap), one function per command
//! group, and their output. `main.rs` only sets up tracing and the runtime and calls
//! [`run`], so every command can be run in-process.
//!
//! - `serve`: `serve`, its first-run set-up and its signals.
//! - `license`: `license ...`.
//! - `join`: `cluster join`'s report.
//! - `render`: tables printed by `status` and friends.
//! - `station`: `station ...`, a station's side of a server's station port.

mod join;
mod license;
mod link;
mod products;
mod render;
mod rollout;
mod serve;
mod station;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::error::Error;
use crate::hub::{Hub, InitOptions};
use crate::id::ServerId;

/// What every command returns.
pub type Result<T> = std::result::Result<T, Error>;

/// `println!` that returns an error instead of panicking when stdout is closed
/// (`updhub versions | head -1`); [`stdout_closed`] tells that error apart.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout(), $($arg)*).map_err(|source| crate::error::Error::Io {
            what: "writing to standard output".into(),
            source,
        })?;
    }};
}
pub(crate) use out;

/// Whether `e` only says that standard output went away: the command then ends quietly.
pub fn stdout_closed(e: &Error) -> bool {
    matches!(e, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe)
}

/// An I/O error, saying what was being done.
fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

fn json_text(v: &impl serde::Serialize) -> Result<String> {
    serde_json::to_string_pretty(v).map_err(|e| Error::State(format!("cannot write JSON: {e}")))
}

/// After a publish: whether version `p` is staged (and who has not staged it) or active.
fn publish_outcome(
    hub: &Hub,
    p: &crate::repo::Published,
    staged: Option<crate::switch::Rollout>,
) -> Result<()> {
    match staged {
        Some(r) => {
            let active = hub.db.cluster_published()?.map_or(0, |a| a.number);
            out!("version {active} stays active until the children have staged version {}; `updhub status` follows it, `updhub activate` activates it now", p.number);
            if !hub.live().rollout.canary.is_empty() {
                out!(
                    "then the test group ({}) gets it first, every other child {} later (rollout.soak); `updhub rollout status` follows it",
                    hub.live().rollout.canary.join(", "),
                    humantime::format_duration(hub.live().rollout.soak)
                );
            }
            render::rollout(&r)
        }
        None => {
            out!(
                "version {} is active: children switch to it at once",
                p.number
            );
            Ok(())
        }
    }
}

fn print_json(v: &impl serde::Serialize) -> Result<()> {
    out!("{}", json_text(v)?);
    Ok(())
}

/// Update-repository and license distribution hub for clusters of anti-virus management servers.
#[derive(Parser)]
#[command(version, about)]
pub struct Cli {
    /// The node's data folder.
    #[arg(
        long,
        global = true,
        env = "UPDHUB_DATA",
        default_value = "./updhub-data"
    )]
    pub data: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
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
        /// The database: postgres://USER:PASSWORD@HOST:PORT/DBNAME for a cluster's shared
        /// database (written into updhub.toml; default: an SQLite file in the data folder).
        #[arg(long)]
        database: Option<String>,
        /// Enroll with the parent (--parent) by link, with the token its admin printed
        /// (`updhub link invite`): this node gets its own keys and a certificate from the
        /// parent, and no private key of the parent.
        #[arg(long, conflicts_with = "keys_from")]
        token: Option<String>,
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
    /// Publish the last mirrored state as the next signed version: staged first while
    /// children report (they fetch and verify it), active for the whole cluster once they
    /// hold it (`publish.quorum`, `publish.stage_timeout`; `activate` forces it).
    Publish {
        /// How long the signature is valid, e.g. 7d (default: publish.expires_in).
        #[arg(long, value_parser = crate::config::parse_span)]
        expires_in: Option<Duration>,
        /// Roll back: publish the content of this earlier version again, under the next
        /// number (children never accept a lower number, so a rollback moves forward).
        #[arg(long)]
        version: Option<u64>,
        /// With --version: roll back only this product (the rest stays as published) and
        /// freeze it there.
        #[arg(long, requires = "version")]
        product: Option<String>,
    },
    /// Each product: its mode, the revision published, the zone's, and what the next
    /// version takes.
    Products {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(subcommand)]
        command: Option<products::ProductsCommand>,
    },
    /// One round of what a parent's `serve` does every upstream.mirror_interval: read the
    /// zone, mirror what the products policy takes if it changed, publish it if it differs
    /// from the cluster's version (for cron, with mirror_interval "0s").
    Update,
    /// The staged rollout to the test group of children (rollout.canary): its status, halt,
    /// resume, release.
    Rollout {
        #[command(subcommand)]
        command: rollout::RolloutCommand,
    },
    /// Write one archive of this node: configuration, keys and the embedded database
    /// (SQLite's online backup, safe while `serve` runs). Not the store: a restored parent
    /// mirrors again, a child syncs. The archive holds private keys: keep it safe.
    Backup {
        /// The archive to write (zstd-compressed tar).
        #[arg(long)]
        to: PathBuf,
    },
    /// Bring a node back from a `backup` archive into a new or empty data folder; a restored
    /// parent continues its version numbers.
    Restore {
        /// The archive.
        file: PathBuf,
    },
    /// Take a delayed or on-demand product's new revision now: mirror and publish it.
    Release {
        /// The product, as the zone names it.
        product: String,
    },
    /// Activate the staged version now, for the whole cluster, whatever the activation rule
    /// says (the admin's override); names the children that have not staged it.
    Activate {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Rehash every stored blob and name the damaged ones (and the versions that need
    /// them), and every blob the kept versions need that the store lacks. Safe while
    /// `serve` runs.
    Verify {
        /// Take damaged blobs out of service (store/quarantine/) and fetch them, and the
        /// missing ones, again: from the parent (a child), or from the upstream zone at the
        /// revisions the versions name, then a live member (a parent).
        #[arg(long)]
        repair: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove the blobs no kept version needs (retention: store.keep_versions and the
    /// versions in use), sparing blobs younger than store.gc_grace. Safe while `serve` runs.
    Gc {
        /// Only say what would be removed; remove nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
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
    /// Links to nodes of other trust domains: enrollment tokens, enrolled nodes, removal.
    Link {
        #[command(subcommand)]
        command: link::LinkCommand,
    },
    /// Station licenses: keys, donations to other servers, the audit log.
    License {
        #[command(subcommand)]
        command: license::LicenseCommand,
    },
    /// A station's side of a server's station port: register, fetch the active version
    /// (for admins and tests; needs no data folder).
    Station {
        #[command(subcommand)]
        command: station::StationCommand,
    },
    /// Stations registered with this server.
    Stations {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Pull the parent's published version.
    Sync {
        /// The parent's URL (default: upstream.parent, or each of upstream.parents in order
        /// until one syncs).
        #[arg(long, env = "UPDHUB_PARENT")]
        parent: Option<String>,
        /// Sync once and exit instead of following.
        #[arg(long)]
        once: bool,
    },
    /// The settings the cluster shares through its database.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// The database itself.
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
    /// The cluster: the members sharing this node's database, and their consistency.
    Cluster {
        #[command(subcommand)]
        command: ClusterCommand,
    },
    /// The current version; on a parent, each child's last report and the staged version
    /// with the children that have not staged it.
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
pub enum KeysCommand {
    /// Copy the shared cluster keys and certificate to a folder, for `init --keys-from`
    /// on another member of this cluster (only members share keys; a node of another
    /// trust domain enrolls by link: `updhub link invite`).
    Export {
        /// The folder to write.
        #[arg(long)]
        to: PathBuf,
    },
    /// Take the shared cluster keys another member exported (`keys export`), after a key or
    /// CA rotation there (stop `serve` first); this node's own certificate is issued anew
    /// from the cluster CA they carry, and its data stays.
    Import {
        /// The folder `keys export` wrote.
        #[arg(long)]
        from: PathBuf,
    },
    /// The publisher keys whose signature on a version this node accepts, one a line (hex):
    /// its cluster's own key, or on a child cluster its origin's keys. Stations check the
    /// versions they fetch with them (`updhub station fetch --publisher-key FILE`).
    Publishers,
    /// Rotate the publisher key (stop `serve` first): a new key, signed over by the old
    /// one; the published version is signed anew; children follow the rotation at their
    /// next sync and refuse the old key from then on.
    Rotate,
    /// Rotate the cluster CA (stop `serve` first): a new CA key and certificate, vouched
    /// for by the old CA with a cross-certificate; this node's server and node certificates
    /// are issued anew by it. During the overlap both CAs are trusted: linked children
    /// learn the new CA and renew their link certificates at their next sync; the other
    /// members need the new keys (`keys export` here, `keys import` there). After it, only the
    /// new CA is trusted.
    RotateCa {
        /// How long certificates of the old CA stay accepted, e.g. 7d or 12h.
        #[arg(long, default_value = "7d", value_parser = crate::config::parse_span)]
        overlap: Duration,
        /// End the rotation's overlap now instead (once `link list` shows every link on
        /// the new CA): from then on only the new CA is trusted.
        #[arg(long, conflicts_with = "overlap")]
        finish: bool,
    },
}

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Set a [same] setting for every node of the cluster, without a restart: each node
    /// applies it over its updhub.toml within a few seconds. VALUE as in updhub.toml,
    /// e.g. `licenses.station_ttl 14d` or `publish.auto_resign false`.
    Set {
        /// The setting: one the cluster shares (the list is the one `config set` takes, so
        /// help and check never disagree); any other is set in updhub.toml on each node.
        #[arg(value_parser = clap::builder::PossibleValuesParser::new(crate::config::SHARED_SETTINGS))]
        key: String,
        /// The value.
        value: String,
    },
    /// The shared settings the cluster set, with their revision, and the values in force.
    Show {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum DbCommand {
    /// Bring the database to this updhub's schema on purpose. A starting node upgrades a
    /// shared database by itself only when no node of another version is connected to
    /// it; during a rolling upgrade of a cluster, run this once (README: upgrading a
    /// cluster).
    Upgrade,
}

#[derive(Subcommand)]
pub enum ClusterCommand {
    /// Compare the live members: what differs where it must be the same (updhub version,
    /// keys and certificate, server name, repository root, [same] settings), each with its
    /// fix. Exits non-zero when anything differs.
    Check {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The tasks that run once a period on one member of the cluster, chosen by a lease in
    /// the shared database: each one's period, lease holder and expiry, last run and its
    /// result, and next run. On an embedded database the node holds every lease.
    Tasks {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Also the last N recorded runs, newest first: one a period, which node ran it,
        /// its result (kept for server.report_retention).
        #[arg(long, value_name = "N")]
        history: Option<u32>,
    },
    /// Make this node the cluster's publisher now (the member that runs the scheduled mirror
    /// and publish, re-signing and activation; a standby takes the role by itself when the
    /// publisher dies). The member that held it steps down at its next lease renewal, within
    /// a third of server.lease_ttl. This node's `serve` keeps the role.
    Promote,
    /// Move this node, which ran alone on its embedded database, into a cluster's shared
    /// database: its keys, stations, grants, audit log, versions and reports are copied in one
    /// transaction, then updhub.toml names that database (the old file stays as the backup).
    /// Any conflict stops it with a report and changes nothing. Refused while the node serves.
    Join {
        /// The cluster's database: postgres://USER:PASSWORD@HOST:PORT/DBNAME.
        #[arg(long)]
        database: String,
        /// Only list what would be added and every conflict; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Tell the members at once what a command changed in the database (the cluster
/// protocol, when on); a failure only leaves them to their next poll.
async fn announce_change(hub: &Arc<Hub>) {
    if let Err(e) = crate::announce::once(hub).await {
        tracing::warn!(
            "{e}; the members apply the change at their next database poll, within seconds"
        );
    }
}

/// Run one parsed command line. `default_data` says that `--data` was neither given nor set
/// by `UPDHUB_DATA`: only then does `serve` set up a new node.
///
/// # Errors
/// Whatever the command fails with; see [`stdout_closed`].
pub async fn run(cli: Cli, default_data: bool) -> Result<()> {
    let data = cli.data;
    match cli.command {
        Command::Init {
            keys_from,
            id,
            name,
            parent,
            zone,
            database,
            token,
        } => {
            let token = token
                .as_deref()
                .map(crate::link::Token::decode)
                .transpose()?;
            if let Some(t) = &token {
                if t.kind == "child" && parent.is_none() {
                    return Err(crate::error::Error::State(
                        "a child token needs the parent's interserver URL: add --parent https://HOST:PORT".into(),
                    ));
                }
            }
            // A peer token's --parent names the peer: upstream.peer, not a parent to follow.
            let (parent, peer) = match &token {
                Some(t) if t.kind == "peer" => (None, parent),
                _ => (parent, None),
            };
            // A token made for an id gives the node that id unless --id says otherwise.
            let id = id.or_else(|| {
                token
                    .as_ref()
                    .and_then(|t| t.id.as_deref())
                    .and_then(|i| ServerId::new(i).ok())
            });
            let new = Hub::begin_init(
                &data,
                InitOptions {
                    keys_from,
                    id,
                    name,
                    parent,
                    zone,
                    database,
                    issuers: Vec::new(),
                },
            )?;
            if let Some(t) = &token {
                let reply =
                    crate::link::join(&new.hub.data.join("keys"), new.hub.id().as_str(), t).await?;
                out!(
                    "enrolled as {} ({} of {}) with a certificate for this node's own key",
                    reply.id,
                    reply.kind,
                    reply.parent_id
                );
            }
            let hub = new.finish()?;
            if let Some(url) = &peer {
                link::set_linked(&hub, "peer", url)?;
            }
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
            Hub::open(&data)?.export_keys(&to)?;
            out!(
                "exported the cluster keys to {}; on the next node run: updhub --data DIR init --keys-from {}",
                to.display(),
                to.display()
            );
        }
        Command::Keys {
            command: KeysCommand::Import { from },
        } => {
            let hub = Hub::open(&data)?;
            hub.import_keys(&from)?;
            out!(
                "took the cluster keys from {}; this node's certificate is issued anew by the cluster CA; restart `serve`",
                from.display()
            );
        }
        Command::Keys {
            command: KeysCommand::Publishers,
        } => {
            for k in Hub::open(&data)?.keys.publishers() {
                out!("{}", hex::encode(k.as_bytes()));
            }
        }
        Command::Keys {
            command: KeysCommand::Rotate,
        } => {
            let (r, resigned) = Hub::open(&data)?.rotate_publisher()?;
            out!(
                "rotated the publisher key (rotation {}): {} -> {}, signed by the old key",
                r.number,
                &r.old[..16],
                &r.new[..16]
            );
            if let Some(p) = resigned {
                out!(
                    "version {} signed anew with the new key, valid until {}",
                    p.number,
                    p.expires
                );
            }
            out!("children follow at their next sync and refuse the old key from then on; other members of this cluster need the new key: `updhub keys export --to DIR` here, then `updhub keys import --from DIR` on each (`cluster check` shows who still has the old key)");
        }
        Command::Keys {
            command: KeysCommand::RotateCa { overlap, finish },
        } => {
            let hub = Hub::open(&data)?;
            if finish {
                let (old, cut) = hub.finish_ca_rotation()?;
                out!(
                    "finished the CA rotation: the old CA {} is trusted no more (restart `serve`)",
                    &old[..16]
                );
                if !cut.is_empty() {
                    out!("links still on the old CA, cut off from now on (they must enroll again): {}", cut.join(", "));
                }
            } else {
                let r = hub.rotate_ca(overlap)?;
                out!(
                    "rotated the cluster CA: {} -> {}, the new one vouched for by the old one (keys/ca-cross.crt)",
                    &r.old_fp[..16],
                    &r.new_fp[..16]
                );
                out!("certificates of the old CA are accepted until {} (then refused); this node's server and node certificates are issued by the new CA", r.ends);
                out!("restart `serve`; linked children learn the new CA and renew their certificates at their next sync (`updhub link list` shows which CA issued each link's certificate); other members of this cluster need the new keys: `updhub keys export --to DIR` here, then `updhub keys import --from DIR` there (`cluster check` and `status` name those still on the old CA)");
            }
        }
        Command::Mirror { from } => {
            let hub = Hub::open(&data)?;
            let s = hub
                .mirror(from.as_deref(), std::io::stderr().is_terminal())
                .await?;
            out!("{s}");
            products::notes(&s.products)?;
            let live = hub.live();
            let every = live.upstream.mirror_interval;
            if let Some(f) = from.as_deref().filter(|f| *f != live.upstream.zone) {
                if !every.is_zero() && !hub.is_child() {
                    eprintln!(
                        "note: the scheduled mirror reads upstream.zone ({}), not {f}: its next round (every {}) publishes that zone's content over this one; make this zone upstream.zone on each member, or stop the schedule with `updhub config set upstream.mirror_interval 0s`",
                        live.upstream.zone,
                        humantime::format_duration(every)
                    );
                }
            }
        }
        Command::Publish {
            expires_in,
            version: Some(n),
            product: Some(product),
        } => {
            let hub = Hub::open(&data)?;
            heal(&hub).await?;
            let (p, new, revision) = hub.publish_product_version(n, &product, expires_in)?;
            out!(
                "{} version {} root {} expires {}: {product} at revision {revision} (as in version {n}), the other products as they were",
                if new { "published" } else { "re-signed" },
                p.number,
                p.root,
                p.expires
            );
            out!("{product} is now frozen at revision {revision}, so scheduled mirroring leaves it there; `updhub products set {product} current` lets it follow the zone again");
            let rollout = hub.rollout()?.filter(|r| r.staged.number == p.number);
            publish_outcome(&hub, &p, rollout)?;
        }
        Command::Products { json, command } => products::products(&data, json, command).await?,
        Command::Release { product } => products::release(&data, &product).await?,
        Command::Update => products::update(&data).await?,
        Command::Backup { to } => {
            let m = crate::backup::backup(&Hub::open(&data)?, &to)?;
            out!(
                "wrote {}: node {} (cluster {}), {} database{}, taken {}",
                to.display(),
                m.server_id,
                m.cluster_id,
                m.database,
                m.version
                    .map(|v| format!(", versions up to {v}"))
                    .unwrap_or_default(),
                m.taken.format("%Y-%m-%d %H:%M:%S UTC")
            );
            out!("{}", m.note);
        }
        Command::Restore { file } => {
            let m = crate::backup::restore(&file, &data)?;
            out!(
                "restored node {} (cluster {}) into {} from the backup taken {}{}",
                m.server_id,
                m.cluster_id,
                data.display(),
                m.taken.format("%Y-%m-%d %H:%M:%S UTC"),
                m.version
                    .map(|v| format!(
                        "; the next version published here is {} or, if its children hold a later one, the number after theirs",
                        v + 1
                    ))
                    .unwrap_or_default()
            );
            if !m.verified() {
                out!("the archive was written by an earlier updhub ({}): it carries no digests, so its files were checked by their form and the database by its integrity check only; take a new backup now", m.format);
            }
            out!("{}", m.note);
        }
        Command::Rollout { command } => rollout::rollout(&data, command)?,
        Command::Publish {
            expires_in,
            version,
            product: _,
        } => {
            let hub = Arc::new(Hub::open(&data)?);
            heal(&hub).await?;
            let (p, new, frozen) = match version {
                Some(n) => hub.rollback(n, expires_in)?,
                None => {
                    let (p, new) = hub.publish(expires_in)?;
                    (p, new, Vec::new())
                }
            };
            let rollout = hub.rollout()?.filter(|r| r.staged.number == p.number);
            out!(
                "{} version {} root {} expires {}{}",
                match (new, rollout.is_some()) {
                    (true, true) => "staged",
                    (true, false) => "published",
                    (false, _) => "re-signed",
                },
                p.number,
                p.root,
                p.expires,
                version
                    .filter(|_| new)
                    .map(|n| format!(" (the content of version {n})"))
                    .unwrap_or_default()
            );
            if !frozen.is_empty() {
                out!(
                    "frozen where the rollback put them, so scheduled mirroring leaves them there: {}; `updhub products set PRODUCT current` lets one follow the zone again",
                    frozen.join(", ")
                );
            }
            publish_outcome(&hub, &p, rollout)?;
            announce_change(&hub).await;
        }
        Command::Activate { json } => {
            let hub = Arc::new(Hub::open(&data)?);
            let (p, behind) = hub.activate_now()?;
            announce_change(&hub).await;
            if json {
                print_json(&serde_json::json!({ "activated": p, "not_staged": behind }))?;
            } else {
                out!(
                    "activated version {} root {}: children that staged it switch at once{}",
                    p.number,
                    p.root,
                    if behind.is_empty() {
                        String::new()
                    } else {
                        format!(
                            "; {} have not staged it and fetch it at their next sync",
                            behind.len()
                        )
                    }
                );
                render::not_staged(&behind)?;
            }
        }
        Command::Verify { repair, json } => verify(&data, repair, json).await?,
        Command::Gc { dry_run, json } => {
            let hub = Arc::new(Hub::open(&data)?);
            let h = hub.clone();
            let r = tokio::task::spawn_blocking(move || crate::gc::run(&h, dry_run))
                .await
                .map_err(|e| Error::State(format!("gc stopped: {e}")))??;
            if json {
                print_json(&r)?;
            } else {
                render::gc(&r, &hub.live().store)?;
            }
        }
        Command::Versions { json } => {
            let hub = Hub::open(&data)?;
            let current = hub.db.published()?.map(|p| p.number);
            let v = hub.versions()?;
            if json {
                print_json(&v)?;
            } else {
                render::versions(&v, current, |r| hub.store.contains(&r.root.0))?;
            }
        }
        Command::Serve {
            listen,
            station_listen,
        } => serve::serve(&data, default_data, listen, station_listen).await?,
        Command::License { command } => license::license(&data, command).await?,
        Command::Link { command } => link::link(&data, command).await?,
        Command::Station { command } => station::station(command).await?,
        Command::Stations { json } => {
            let rows = Hub::open(&data)?.ledger.stations()?;
            if json {
                print_json(&rows)?;
            } else {
                render::stations(&rows)?;
            }
        }
        Command::Sync { parent, once } => {
            let hub = Arc::new(Hub::open(&data)?);
            let _lock = crate::lock::DataLock::take(&data, "sync")?;
            let parents = parent.map_or_else(|| hub.config.upstream.parent_urls(), |p| vec![p]);
            if parents.is_empty() {
                return Err(Error::State(
                    "no parent: pass --parent https://HOST:PORT or set upstream.parent (or upstream.parents) in updhub.toml"
                        .into(),
                ));
            }
            if once {
                let (_, r) = crate::child::sync_first(&hub, &parents, |p, e| {
                    tracing::warn!("sync from {p} failed: {e}; trying the next parent");
                })
                .await?;
                out!("{r}");
            } else {
                let stop = serve::stop_signal()?;
                let (tx, rx) = tokio::sync::watch::channel(false);
                let task = tokio::spawn(crate::child::follow(hub, parents, rx));
                stop.await;
                let _ = tx.send(true);
                task.await
                    .map_err(|e| Error::State(format!("the follow task failed: {e}")))?;
            }
        }
        Command::Config {
            command: ConfigCommand::Set { key, value },
        } => {
            let hub = Arc::new(Hub::open(&data)?);
            let rev = hub.set_shared_setting(&key, &value)?;
            out!("{key} = {} for the whole cluster (settings revision {rev}); every node applies it within a few seconds", value.trim());
            announce_change(&hub).await;
        }
        Command::Config {
            command: ConfigCommand::Show { json },
        } => {
            let hub = Hub::open(&data)?;
            let set = hub.db.shared_settings()?;
            let live = hub.live();
            if json {
                print_json(&serde_json::json!({
                    "revision": hub.db.settings_revision()?,
                    "set": set,
                    "in_force": crate::config::shown_same_settings(&live.same_settings()),
                }))?;
            } else {
                render::shared_settings(
                    &set,
                    &crate::config::shown_same_settings(&live.same_settings()),
                )?;
            }
        }
        Command::Db {
            command: DbCommand::Upgrade,
        } => {
            let config = crate::config::Config::load(&data)?;
            let loc = config.database_location(&data)?;
            let id = config.server.id.clone();
            let (found, now, db) =
                tokio::task::spawn_blocking(move || crate::db::Db::upgrade_at(&loc, id))
                    .await
                    .map_err(|e| crate::error::Error::State(e.to_string()))??;
            if found == now {
                out!("database {}: already at schema {now}", db.location());
            } else {
                out!("database {}: schema {found} -> {now}", db.location());
            }
        }
        Command::Cluster {
            command: ClusterCommand::Check { json },
        } => {
            let c = Hub::open(&data)?.cluster_check()?;
            if json {
                print_json(&c)?;
            } else {
                render::cluster_check(&c)?;
            }
            if !c.ok() {
                return Err(crate::error::Error::State(format!(
                    "the cluster is not consistent: {} finding(s) above, each with its fix",
                    c.findings.len()
                )));
            }
        }
        Command::Cluster {
            command: ClusterCommand::Tasks { json, history },
        } => {
            let hub = Hub::open(&data)?;
            // Whether a lease holds is judged by the database's clock, as its expiry was set.
            let now = hub.db.now_ms()?;
            let tasks: Vec<_> = hub
                .db
                .leases()?
                .iter()
                .map(|l| crate::leases::TaskStatus::of(l, now))
                .collect();
            let runs = match history {
                Some(n) => Some(hub.db.task_runs(None, i64::from(n))?),
                None => None,
            };
            match (json, runs) {
                (true, None) => print_json(&tasks)?,
                (true, Some(runs)) => {
                    print_json(&serde_json::json!({ "tasks": tasks, "history": runs }))?;
                }
                (false, runs) => {
                    render::cluster_tasks(&tasks)?;
                    if let Some(runs) = runs {
                        render::task_runs(&runs)?;
                    }
                }
            }
        }
        Command::Cluster {
            command: ClusterCommand::Promote,
        } => {
            let hub = Hub::open(&data)?;
            let before = hub.promote()?;
            let ttl = humantime::format_duration(hub.live().server.lease_ttl);
            match before {
                Some(b) => out!(
                    "{} is the cluster's publisher now; {b} held the role and steps down at its next lease renewal",
                    hub.id()
                ),
                None => out!("{} is the cluster's publisher now", hub.id()),
            }
            out!("the role holds for {ttl} (server.lease_ttl) and `updhub serve` on this node renews it; if this node does not serve, a standby takes it after that");
        }
        Command::Cluster {
            command:
                ClusterCommand::Join {
                    database,
                    dry_run,
                    json,
                },
        } => join::join(&data, &database, dry_run, json).await?,
        Command::Status { json } => {
            let s = Hub::open(&data)?.status()?;
            if json {
                print_json(&s)?;
            } else {
                render::print_status(&s)?;
            }
        }
        Command::Checkout { to } => {
            let (p, files) = Hub::open(&data)?.checkout(&to)?;
            out!(
                "checked out version {} ({files} files) to {}",
                p.number,
                to.display()
            );
        }
        Command::Export { zone } => {
            let p = Hub::open(&data)?.export_zone(&zone)?;
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

/// Before a parent publishes: what its kept versions need and the store lacks is fetched
/// again (see [`crate::repair`]), so a restored node, or one whose blob was quarantined,
/// publishes without a mirror first; what cannot be had is logged and named by the publish.
async fn heal(hub: &Hub) -> Result<()> {
    if !hub.is_child() {
        let r = crate::repair::repair(hub).await?;
        if r.blobs > 0 && r.failed.is_empty() {
            tracing::info!("repair before publishing: {r}");
        }
    }
    Ok(())
}

/// `updhub verify [--repair] [--json]`.
async fn verify(data: &std::path::Path, repair: bool, json: bool) -> Result<()> {
    let hub = Arc::new(Hub::open(data)?);
    let threads = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
    let scan_hub = hub.clone();
    let report =
        tokio::task::spawn_blocking(move || crate::verify::scan(&scan_hub, threads, repair))
            .await
            .map_err(|e| Error::State(format!("verify stopped: {e}")))??;
    let mut fetched = None;
    let mut missing = report.missing.clone();
    if repair && !(report.damaged.is_empty() && report.missing.is_empty()) {
        // Safe beside a running serve: blobs are written atomically, nothing is switched.
        fetched = Some(crate::repair::repair(&hub).await?);
        missing = crate::repair::lacking(&hub)?;
    }
    let still: Vec<&crate::verify::Damaged> = report
        .damaged
        .iter()
        .filter(|d| !(fetched.is_some() && hub.store.verify(&d.blob).is_ok()))
        .collect();
    missing.retain(|m| !still.iter().any(|d| d.blob == m.blob));
    if json {
        print_json(&serde_json::json!({
            "report": report,
            "repair": fetched,
            "still_damaged": still.iter().map(|d| d.blob).collect::<Vec<_>>(),
            "still_missing": missing.iter().map(|m| m.blob).collect::<Vec<_>>(),
        }))?;
    } else {
        for d in &report.damaged {
            out!(
                "damaged {}{}: {}{}",
                d.blob,
                if d.versions.is_empty() {
                    String::new()
                } else {
                    format!(" (needed by version {})", render::numbers(&d.versions))
                },
                d.why,
                d.quarantined
                    .as_ref()
                    .map(|q| format!("; quarantined to {q}"))
                    .unwrap_or_default()
            );
        }
        // A restored store lacks everything: the first few name the versions, the count
        // says the rest.
        const SHOWN: usize = 20;
        for m in report.missing.iter().take(SHOWN) {
            let of = if m.versions.is_empty() {
                "the last mirror run".to_owned()
            } else {
                format!("version {}", render::numbers(&m.versions))
            };
            if m.manifest {
                out!("missing {}: the manifest of {of}", m.blob);
            } else {
                out!("missing {} (needed by {of})", m.blob);
            }
        }
        if report.missing.len() > SHOWN {
            out!("... and {} more missing", report.missing.len() - SHOWN);
        }
        for (n, why) in &report.unreadable {
            out!("version {n}: its manifest cannot be read: {why}");
        }
        out!(
            "verified {} blobs ({} bytes) in {:.2} s: {} damaged{}",
            report.blobs,
            report.bytes,
            report.seconds,
            report.damaged.len(),
            if report.missing.is_empty() {
                String::new()
            } else {
                format!(", {} missing that kept versions need", report.missing.len())
            }
        );
        if let Some(f) = &fetched {
            out!("repair: {f}");
        }
    }
    if still.is_empty() && missing.is_empty() {
        return Ok(());
    }
    Err(Error::State(match (repair, missing.is_empty()) {
        (true, _) => format!(
            "{} damaged and {} missing blob(s) are not repaired: neither {} holds them{}; a child's next sync tries again; on a parent, make the zone folder hold the revisions those versions name, or publish a new version (`updhub mirror` then `updhub publish`)",
            still.len(),
            missing.len(),
            if hub.is_child() { "the parents" } else { "the zone nor a live member" },
            fetched
                .as_ref()
                .filter(|f| !f.failed.is_empty())
                .map(|f| format!(" ({})", f.failed.join("; ")))
                .unwrap_or_default()
        ),
        (false, true) => format!(
            "{} damaged blob(s): run `updhub verify --repair` to quarantine them and fetch them again",
            still.len()
        ),
        (false, false) if still.is_empty() => format!(
            "{} blob(s) that kept versions need are missing here: run `updhub verify --repair` to fetch them again",
            missing.len()
        ),
        (false, false) => format!(
            "{} damaged and {} missing blob(s) that kept versions need: run `updhub verify --repair` to quarantine the damaged ones and fetch them all again",
            still.len(),
            missing.len()
        ),
    }))
}

//! `link ...`: interserver links to nodes of other trust domains (see [`crate::link`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Subcommand;

use super::{out, print_json, render, Result};
use crate::error::Error;
use crate::hub::Hub;
use crate::id::ServerId;
use crate::link::Token;

#[derive(Subcommand)]
pub enum LinkCommand {
    /// Print a one-time token that enrolls one node of another trust domain (a child in a
    /// branch office, or a peer) with this cluster. It pins this cluster's CA; the node
    /// gets a certificate for its own key, never a private key of this cluster.
    Invite {
        /// The id the node must have (default: the id it enrolls with).
        #[arg(long)]
        id: Option<ServerId>,
        /// How long the token can be used.
        #[arg(long, default_value = "1h", value_parser = crate::config::parse_span)]
        valid_for: Duration,
        /// A peer link (the vendor's "neighbor"): licenses either way, no updates.
        #[arg(long)]
        peer: bool,
        /// This node's station port as the enrolling node reaches it, https://HOST:PORT/
        /// (default: from server.station_listen and server.advertise).
        #[arg(long)]
        url: Option<String>,
    },
    /// Enroll this (existing) node with a parent of another trust domain, using the token
    /// its admin gave; the parent's URL becomes upstream.parent, or upstream.peer for a peer
    /// token (restart `serve` after).
    Join {
        /// The parent's (or peer's) interserver URL, https://HOST:PORT.
        url: String,
        /// The token from `updhub link invite` on the parent.
        token: String,
    },
    /// The links of this cluster: enrolled nodes, their certificates, removals, and
    /// certificates refused for claiming an enrolled id with another key.
    List {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Remove a link: the node's certificate is refused from now on, by every member.
    Remove {
        /// The enrolled node's id.
        id: String,
    },
    /// Offline enrollment, step 1 (on the node, for an air-gapped site): write a request
    /// for a new key of this node's own; carry the file to the parent.
    Request {
        /// The request file to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Offline enrollment, step 2 (on the parent): accept a request, issue the node's
    /// certificate, and write the answer to carry back.
    Accept {
        /// The request file.
        request: PathBuf,
        /// The answer file to write.
        #[arg(long)]
        out: PathBuf,
        /// A peer link: licenses either way, no updates.
        #[arg(long)]
        peer: bool,
    },
    /// Offline enrollment, step 3 (back on the node): keep the answer as the link to the
    /// parent, after checking it certifies this node's request; compare the CA fingerprint
    /// it prints with the one the parent's admin read out.
    Import {
        /// The answer file.
        reply: PathBuf,
        /// The interserver URL of the node linked to: upstream.parent for a child link,
        /// upstream.peer for a peer link.
        #[arg(long)]
        parent: Option<String>,
    },
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path, what: &str) -> Result<T> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        what: format!("reading {}", path.display()),
        source,
    })?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::State(format!("{}: not {what} ({e})", path.display())))
}

fn write_json(path: &Path, v: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_vec_pretty(v).expect("serializes");
    std::fs::write(path, text).map_err(|source| Error::Io {
        what: format!("writing {}", path.display()),
        source,
    })
}

/// Write where the node of a new link is reached: `upstream.parent` for a child link,
/// `upstream.peer` for a peer link.
pub(super) fn set_linked(hub: &Hub, kind: &str, url: &str) -> Result<()> {
    let mut cfg = hub.config.clone();
    if kind == "peer" {
        cfg.upstream.peer = Some(url.to_owned());
    } else if cfg.upstream.parents.is_empty() {
        cfg.upstream.parent = Some(url.to_owned());
    } else if !cfg.upstream.parents.iter().any(|p| p == url) {
        // A child that lists several parents (upstream.parents) tries the one it enrolled
        // with first; `parent` and `parents` together would not load.
        cfg.upstream.parents.insert(0, url.to_owned());
    }
    let path = hub.data.join(crate::config::FILE);
    let text = cfg.to_commented_toml();
    crate::config::Config::parse(&text, &path)?;
    let io = |source| Error::Io {
        what: format!("writing {}", path.display()),
        source,
    };
    // It may name a database with its password: it keeps the mode it had.
    let mode = crate::durable::mode_of(&path).map_err(io)?;
    crate::durable::write_atomic(&path, text.as_bytes(), mode).map_err(io)
}

/// The URL of this node's interserver port as another machine reaches it, and where that
/// came from: the running `serve` (its membership record holds the address it listens on,
/// `--listen` included), else server.advertise or server.listen in updhub.toml.
fn interserver_url(hub: &Hub) -> Result<(String, &'static str)> {
    let serving = hub
        .db
        .live_members(crate::hub::MEMBER_ALIVE)?
        .into_iter()
        .find(|m| m.node_id == hub.id().as_str());
    Ok(match serving {
        Some(m) => (
            format!("https://{}", m.listen),
            "where this node's running `serve` listens",
        ),
        None => (
            format!(
                "https://{}",
                crate::node::reach_at(&hub.config.server, hub.config.server.listen)
            ),
            "from server.advertise or server.listen in updhub.toml; `serve` is not running",
        ),
    })
}

/// The URL of this node's station port as another machine reaches it.
fn default_enroll_url(hub: &Hub) -> String {
    let s = &hub.config.server;
    let port = s.station_listen.port();
    let host = match &s.advertise {
        Some(a) => a.rsplit_once(':').map_or(a.as_str(), |(h, _)| h).to_owned(),
        None if !s.station_listen.ip().is_unspecified() => s.station_listen.ip().to_string(),
        None => crate::node::host_name().unwrap_or_else(|| "localhost".to_owned()),
    };
    format!("https://{host}:{port}/")
}

pub(super) async fn link(data: &Path, command: LinkCommand) -> Result<()> {
    match command {
        LinkCommand::Invite {
            id,
            valid_for,
            peer,
            url,
        } => {
            let hub = Hub::open(data)?;
            let url_given = url.is_some();
            let url = url.unwrap_or_else(|| default_enroll_url(&hub));
            let kind = if peer { "peer" } else { "child" };
            let (token, expires) = crate::link::invite(&hub, id.as_ref(), kind, valid_for, &url)?;
            out!("{}", token.encode());
            out!(
                "one-time {kind} token{}, valid until {}; enrolls through {url}{}",
                id.as_ref()
                    .map(|i| format!(" for node id {i}"))
                    .unwrap_or_default(),
                expires.format("%Y-%m-%d %H:%M:%S UTC"),
                if url_given {
                    ""
                } else {
                    " (this node's station port from server.station_listen in updhub.toml; pass --url when `serve` listens elsewhere, e.g. with --station-listen)"
                }
            );
            if id.is_none() {
                out!("the token names no id: the new node names itself (`init --id ID`); an id this node or its cluster knows (its own, a member's, a child's, a grant receiver's, a link's) is refused; `link invite --id ID` binds a token to one id");
            }
            let (parent, from) = interserver_url(&hub)?;
            let with_id = id
                .as_ref()
                .map_or_else(|| "CHILD-ID".to_owned(), ToString::to_string);
            out!("on the new node: updhub --data DIR init --id {with_id} --parent {parent} --token TOKEN");
            out!("on an existing node: updhub link join {parent} TOKEN");
            out!("({parent}: {from})");
        }
        LinkCommand::Join { url, token } => {
            let token = Token::decode(&token)?;
            let hub = Hub::open(data)?;
            let reply =
                crate::link::join(&hub.data.join("keys"), hub.id().as_str(), &token).await?;
            set_linked(&hub, &reply.kind, &url)?;
            out!(
                "enrolled as {} ({} of {}); certificate issued by the parent's CA, its keys stay there; restart `updhub serve` to use the link",
                reply.id,
                reply.kind,
                reply.parent_id
            );
        }
        LinkCommand::List { json } => {
            let links = crate::link::list(&Hub::open(data)?)?;
            if json {
                print_json(&links)?;
            } else if links.is_empty() {
                out!("no links; `updhub link invite` makes a token for one");
            } else {
                for l in &links {
                    out!("{}", render::link(l));
                }
            }
        }
        LinkCommand::Request { out } => {
            let hub = Hub::open(data)?;
            let req = crate::link::offline_request(&hub)?;
            write_json(&out, &req)?;
            out!(
                "wrote a link request for node {} to {}; its key stays in this node's keys folder; on the parent: updhub link accept {} --out REPLY; back here: updhub link import REPLY --parent URL",
                req.id,
                out.display(),
                out.display()
            );
        }
        LinkCommand::Accept { request, out, peer } => {
            let hub = Hub::open(data)?;
            let req: crate::link::OfflineRequest = read_json(&request, "a link request")?;
            let reply =
                crate::link::offline_accept(&hub, &req, if peer { "peer" } else { "child" })?;
            write_json(&out, &reply)?;
            let ca_fp = crate::keys::pem_fp(reply.ca.as_bytes()).map_err(Error::State)?;
            out!(
                "enrolled {} ({}); carry {} back; its admin should see this CA fingerprint on import: {ca_fp}",
                reply.id,
                reply.kind,
                out.display()
            );
        }
        LinkCommand::Import { reply, parent } => {
            let hub = Hub::open(data)?;
            let r: crate::link::EnrollReply = read_json(&reply, "a link answer")?;
            let ca_fp = crate::link::offline_import(&hub, &r)?;
            match &parent {
                Some(url) => set_linked(&hub, &r.kind, url)?,
                None if r.kind == "child" && hub.config.upstream.parent.is_none() => {
                    out!("note: no --parent given and upstream.parent is not set: set it before `serve`")
                }
                None if r.kind == "peer" && hub.config.upstream.peer.is_none() => {
                    out!("note: no --parent given and upstream.peer is not set: set it to the peer's interserver URL before `serve`")
                }
                None => {}
            }
            out!(
                "linked to {} as {} ({}); the parent's CA fingerprint is {ca_fp}: compare it with the one the parent's admin read out; restart `updhub serve` to use the link",
                r.parent_id,
                r.id,
                r.kind
            );
        }
        LinkCommand::Remove { id } => {
            let r = crate::link::remove(&Hub::open(data)?, &id).await?;
            out!(
                "removed the link of {id}: its certificate {} is refused by every member within {} s",
                &r.link.cert_fp[..16],
                crate::node::LINKS_EVERY.as_secs()
            );
            for (g, count, back) in &r.grants.out {
                out!(
                    "  grant {g} out to {id} ({count} licenses): revoked; {id} can no longer acknowledge it and may count it until its end, so the licenses come back here at {back}"
                );
            }
            for (g, count) in &r.grants.stopped {
                out!("  grant {g} from {id} ({count} licenses): stopped counting here now");
            }
            if r.grants.out.is_empty() && r.grants.stopped.is_empty() {
                out!("  no grants between this cluster and {id}");
            }
        }
    }
    Ok(())
}

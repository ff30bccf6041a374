//! `link ...`: interserver links to nodes of other trust domains (see [`crate::link`]).

use std::path::Path;
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
    /// its admin gave; the parent's URL becomes upstream.parent (restart `serve` after).
    Join {
        /// The parent's interserver URL, https://HOST:PORT.
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
            let url = url.unwrap_or_else(|| default_enroll_url(&hub));
            let kind = if peer { "peer" } else { "child" };
            let (token, expires) = crate::link::invite(&hub, id.as_ref(), kind, valid_for, &url)?;
            out!("{}", token.encode());
            out!(
                "one-time {kind} token{}, valid until {expires}; enrolls through {url}",
                id.map(|i| format!(" for node id {i}")).unwrap_or_default()
            );
            out!("on the new node: updhub --data DIR init --parent https://THIS-NODE:PORT --token TOKEN");
            out!("on an existing node: updhub link join https://THIS-NODE:PORT TOKEN");
        }
        LinkCommand::Join { url, token } => {
            let token = Token::decode(&token)?;
            let hub = Hub::open(data)?;
            let reply =
                crate::link::join(&hub.data.join("keys"), hub.id().as_str(), &token).await?;
            let mut cfg = hub.config.clone();
            if reply.kind == "child" {
                cfg.upstream.parent = Some(url.clone());
            }
            let path = hub.data.join(crate::config::FILE);
            crate::config::Config::parse(&cfg.to_commented_toml(), &path)?;
            let tmp = hub.data.join(format!("{}.tmp", crate::config::FILE));
            let io = |what: String| move |source| Error::Io { what, source };
            std::fs::write(&tmp, cfg.to_commented_toml())
                .map_err(io(format!("writing {}", tmp.display())))?;
            std::fs::rename(&tmp, &path).map_err(io(format!("writing {}", path.display())))?;
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
        LinkCommand::Remove { id } => {
            let l = crate::link::remove(&Hub::open(data)?, &id)?;
            out!(
                "removed the link of {id}: its certificate {} is refused by every member within {} s",
                &l.cert_fp[..16],
                crate::node::LINKS_EVERY.as_secs()
            );
        }
    }
    Ok(())
}

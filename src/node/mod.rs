//! A running node, the composition root: the interserver and station listeners, plus the
//! background work its role needs (the follow loop on a child, over its parents in order;
//! the publisher role on a top parent's members, with re-signing, the scheduled mirror and
//! activation on its holder; the license sweep on every node; the cluster protocol), started
//! together and stopped together.

mod publisher;
mod tasks;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::hub::Hub;
use crate::server::{self, Face, Limits, Stats};

pub use publisher::OnPublisher;
pub use tasks::{
    Activate, CatchUp, Gc, LicenseSweep, Links, Membership, PeerLicenses, Resign, Scrub,
    StationPurge, Task, ACTIVATE_EVERY, CATCH_UP_EVERY, LINKS_EVERY, SCRUB_EVERY,
};

/// Run a node until `shutdown` completes, with the bounds of its configuration.
///
/// # Errors
/// A failure of the listener, or of the license sweep that runs before anything is served.
pub async fn run(
    listener: TcpListener,
    stations: Option<TcpListener>,
    hub: Arc<Hub>,
    stats: Arc<Stats>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let limits = Limits::new(hub.config.server.max_connections);
    run_with(listener, stations, hub, stats, limits, shutdown).await
}

/// [`run`] with explicit bounds and timeouts for both listeners (tests shorten them).
///
/// # Errors
/// See [`run`].
pub async fn run_with(
    listener: TcpListener,
    stations: Option<TcpListener>,
    hub: Arc<Hub>,
    stats: Arc<Stats>,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    // Join the cluster's membership first: a second live node with this id is refused
    // before it serves anything or writes a row.
    let membership = Membership {
        hub: hub.clone(),
        instance: {
            let hub = hub.clone();
            tokio::task::spawn_blocking(move || hub.instance())
                .await
                .map_err(std::io::Error::other)?
                .map_err(std::io::Error::other)?
        },
        listen: reach_at(&hub.config.server, listener.local_addr()?),
        yield_to_copy: tokio::sync::watch::channel(None).0,
    };
    let mut copied = membership.yield_to_copy.subscribe();
    {
        let (hub, instance, listen) = (
            hub.clone(),
            membership.instance.clone(),
            membership.listen.clone(),
        );
        tokio::task::spawn_blocking(move || hub.record_member(&instance, &listen))
            .await
            .map_err(std::io::Error::other)?
            .map_err(std::io::Error::other)?;
    }
    // Expiry survives downtime: whatever ended while this node was down is reclaimed before
    // the first request is served.
    let swept = hub
        .ledger
        .sweep_expiry()
        .await
        .map_err(std::io::Error::other)?;
    if swept != crate::license::ledger::Sweep::default() {
        tracing::info!(?swept, "license sweep at start");
    }
    // The rules of conservation hold for the grants received before them too (the upgrade
    // to schema 17): a grant that breaks them is flagged and stops counting, before serving.
    let flagged = hub
        .ledger
        .check_received_grants()
        .await
        .map_err(std::io::Error::other)?;
    if !flagged.is_empty() {
        tracing::warn!(
            "flagged {} received grant(s) that break the rules of conservation; they no longer count here (`updhub status`, `updhub license log`): {}",
            flagged.len(),
            flagged.join(", ")
        );
    }
    // A new epoch for the grants fetch's cursors: the database may have been restored from
    // a backup while this node was down, rewinding the numbers receivers hold; each of them
    // fetches in full once (`license::feed`).
    hub.ledger
        .new_feed_epoch()
        .await
        .map_err(std::io::Error::other)?;
    // The tasks that run once per cluster take leases as this process (see `crate::leases`).
    let holder = crate::leases::Holder {
        node: hub.id().to_string(),
        instance: membership.instance.clone(),
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(tasks::run(LicenseSweep(hub.clone()), stop_rx.clone()));
    // The store is per node: GC and the scrub run on every node; purging the cluster's
    // stations runs on one, under its lease (its first run comes at once on a new cluster).
    tasks.spawn(under_lease(
        &hub,
        &holder,
        tasks::StationPurge(hub.clone()),
        &stop_rx,
    ));
    // Retention of the cluster's reports and audit log: on one member each.
    tasks.spawn(under_lease(
        &hub,
        &holder,
        tasks::ReportPurge(hub.clone()),
        &stop_rx,
    ));
    tasks.spawn(under_lease(
        &hub,
        &holder,
        tasks::LogArchive(hub.clone()),
        &stop_rx,
    ));
    tasks.spawn(crate::announce::run(
        hub.clone(),
        membership.listen.clone(),
        stop_rx.clone(),
    ));
    tasks.spawn(tasks::run(membership, stop_rx.clone()));
    tasks.spawn(tasks::run(CatchUp(hub.clone()), stop_rx.clone()));
    tasks.spawn(tasks::run(Links(hub.clone()), stop_rx.clone()));
    tasks.spawn(tasks::run(Scrub::new(hub.clone()), stop_rx.clone()));
    tasks.spawn(tasks::run(tasks::Backups(hub.clone()), stop_rx.clone()));
    tasks.spawn(tasks::run(Gc(hub.clone()), stop_rx.clone()));
    if let Some(url) = hub.config.upstream.peer.clone() {
        let peer = PeerLicenses {
            hub: hub.clone(),
            url,
        };
        tasks.spawn(tasks::run(peer, stop_rx.clone()));
    }
    if let Some(l) = stations {
        let (hub, stats, limits) = (hub.clone(), stats.clone(), limits.clone());
        let mut stop = stop_rx.clone();
        tasks.spawn(async move {
            let done = async move {
                let _ = stop.changed().await;
            };
            if let Err(e) = server::run_face(Face::Stations, l, hub, stats, limits, done).await {
                tracing::error!("station listener failed: {e}");
            }
        });
    }
    let parents = hub.config.upstream.parent_urls();
    if parents.is_empty() {
        // One member of a top parent's cluster is its publisher (see `publisher`): the
        // scheduled mirror, re-signing and activation run there only.
        let (role_tx, mut role) = tokio::sync::watch::channel(false);
        tasks.spawn(crate::leases::hold_role(
            hub.clone(),
            holder.clone(),
            hub.config.server.lease_ttl,
            crate::leases::PUBLISHER,
            role_tx,
            stop_rx.clone(),
        ));
        // Its first answer comes before the publisher's tasks start, so their first round
        // sees the role (a restarted publisher re-signs at once).
        let _ = role.changed().await;
        tasks.spawn(tasks::run(
            OnPublisher {
                task: Resign(hub.clone()),
                role: role.clone(),
            },
            stop_rx.clone(),
        ));
        // Once per cluster: on the member that holds its lease, the publisher.
        tasks.spawn(under_lease(
            &hub,
            &holder,
            OnPublisher {
                task: tasks::Mirror(hub.clone()),
                role: role.clone(),
            },
            &stop_rx,
        ));
        tasks.spawn(tasks::run(
            OnPublisher {
                task: Activate(hub.clone()),
                role,
            },
            stop_rx.clone(),
        ));
    } else {
        tasks.spawn(crate::child::follow(hub.clone(), parents, stop_rx.clone()));
    }
    // The node stops when told to, or when it finds it is the younger of two processes
    // serving copies of one data folder (they would hold its leases and role as one).
    let stopped = async {
        tokio::select! {
            () = shutdown => {}
            _ = copied.wait_for(Option::is_some) => {}
        }
    };
    let result = server::run_face(Face::Interserver, listener, hub, stats, limits, stopped).await;
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
    let why = copied.borrow().clone();
    match why {
        Some(why) => Err(std::io::Error::other(why)),
        None => result,
    }
}

/// `task` run once a period on one member of the cluster, under its lease taken as
/// `holder` (see [`crate::leases::run`]), until `stop` changes.
fn under_lease(
    hub: &Arc<Hub>,
    holder: &crate::leases::Holder,
    task: impl crate::leases::ClusterTask,
    stop: &tokio::sync::watch::Receiver<bool>,
) -> impl Future<Output = ()> + Send + 'static {
    crate::leases::run(
        hub.clone(),
        holder.clone(),
        hub.config.server.lease_ttl,
        task,
        stop.clone(),
    )
}

/// Where the other members reach this node's interserver port: `server.advertise`, else the
/// listening address, with the host name in place of an unspecified address.
pub(crate) fn reach_at(
    server: &crate::config::ServerSection,
    local: std::net::SocketAddr,
) -> String {
    if let Some(a) = &server.advertise {
        return a.clone();
    }
    if !local.ip().is_unspecified() {
        return local.to_string();
    }
    match host_name() {
        Some(h) => format!("{h}:{}", local.port()),
        None => local.to_string(),
    }
}

/// This machine's host name (Linux), if it has one.
pub fn host_name() -> Option<String> {
    let h = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let h = h.trim();
    (!h.is_empty() && h != "(none)").then(|| h.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_reached_at_the_advertised_address_or_a_routable_listen_address() {
        let mut c = crate::config::Config::new(crate::id::ServerId::new("n1").unwrap(), None);
        let local: std::net::SocketAddr = "127.0.0.1:8443".parse().unwrap();
        assert_eq!(reach_at(&c.server, local), "127.0.0.1:8443");
        let any: std::net::SocketAddr = "0.0.0.0:8443".parse().unwrap();
        let reached = reach_at(&c.server, any);
        assert!(reached.ends_with(":8443"), "{reached}");
        if host_name().is_some() {
            assert!(!reached.starts_with("0.0.0.0"), "{reached}");
        }
        c.server.advertise = Some("node1.example.net:9443".into());
        assert_eq!(reach_at(&c.server, any), "node1.example.net:9443");
    }
}

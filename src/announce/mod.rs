//! The cluster protocol (reference point 4): each member announces what it runs (versions,
//! settings revision) in signed UDP datagrams, multicast or unicast, and acts at once on
//! what it hears. Only an accelerator: with every datagram lost the members converge
//! through the database polls (`node::tasks`: catch up, membership).

pub mod wire;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::net::UdpSocket;
use tokio::sync::{watch, Notify};

use crate::config::{ClusterSection, Protocol};
use crate::hub::Hub;
use wire::{Announcement, Reject, Version};

/// A member silent for this many periods is reported.
const SILENT_PERIODS: u32 = 3;

/// The protocol cannot start on this node (it goes on without it).
#[derive(Debug, thiserror::Error)]
pub enum AnnounceError {
    /// The UDP socket cannot be opened, bound or joined to the group.
    #[error("cannot listen for cluster announcements on UDP {at} ({source}); another program may hold the port: set cluster.port (and cluster.interface), or cluster.protocol = \"off\"")]
    Socket {
        /// The address or group.
        at: String,
        /// Why.
        source: std::io::Error,
    },
}

/// What a node counts of the protocol since it started, as `updhub status` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Counts {
    /// Datagrams sent.
    pub sent: u64,
    /// Datagrams the network refused to send.
    pub send_errors: u64,
    /// Announcements taken.
    pub accepted: u64,
    /// Dropped: not an announcement.
    pub malformed: u64,
    /// Dropped: a signature that does not verify (forged).
    pub bad_signature: u64,
    /// Dropped: another cluster's.
    pub foreign: u64,
    /// Dropped: time outside 30 s of this node's clock.
    pub stale: u64,
    /// Dropped: taken once already.
    pub replayed: u64,
    /// Dropped: this node's own.
    pub own: u64,
    /// Dropped: a new sender process while the receiver remembers as many as it may.
    pub crowded: u64,
    /// Settings revisions applied because a member announced them.
    pub settings_applied: u64,
    /// Catch-ups started because a member announced a newer version.
    pub catch_ups: u64,
    /// Members heard before and silent for three periods now.
    pub silent: Vec<String>,
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "sent {}, accepted {}; dropped: {} malformed, {} bad signature, {} foreign, {} stale, {} replayed, {} own; acted: {} settings, {} catch-ups",
            self.sent,
            self.accepted,
            self.malformed,
            self.bad_signature,
            self.foreign,
            self.stale,
            self.replayed,
            self.own,
            self.settings_applied,
            self.catch_ups
        )?;
        if self.send_errors > 0 {
            write!(f, "; {} send errors", self.send_errors)?;
        }
        if self.crowded > 0 {
            write!(
                f,
                "; {} dropped from too many new sender processes",
                self.crowded
            )?;
        }
        if !self.silent.is_empty() {
            write!(f, "; SILENT: {}", self.silent.join(", "))?;
        }
        Ok(())
    }
}

/// A member last heard.
#[derive(Debug, Clone)]
struct Heard {
    at: Instant,
    active: Option<Version>,
    staged: Option<Version>,
    silent: bool,
}

/// The protocol's state in a node, shared by its sender, its receiver and the tasks it
/// wakes.
#[derive(Debug, Default)]
pub struct Shared {
    counts: Mutex<Counts>,
    /// Wakes the catch-up task (`node::tasks::CatchUp`).
    catch_up: Arc<Notify>,
    /// Wakes the sender: something this node announces changed.
    changed: Notify,
    heard: Mutex<BTreeMap<String, Heard>>,
    /// What this node announced last (active, staged).
    mine: Mutex<(Option<Version>, Option<Version>)>,
    local: Mutex<Option<SocketAddr>>,
    /// A member was heard for the first time (the sender reads the addresses again).
    new_member: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    /// The counters so far.
    pub fn counts(&self) -> Counts {
        lock(&self.counts).clone()
    }

    /// The UDP address this node receives announcements on, once bound.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        *lock(&self.local)
    }

    /// The members heard lately (not silent), by node id.
    pub fn heard_from(&self) -> Vec<String> {
        lock(&self.heard)
            .iter()
            .filter(|(_, h)| !h.silent)
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Announce now: this node's settings or versions changed.
    pub fn changed(&self) {
        self.changed.notify_one();
    }

    /// What wakes the catch-up task before its period ends.
    pub fn catch_up_wake(&self) -> Arc<Notify> {
        self.catch_up.clone()
    }

    /// Whether member `node` announced `root` as its active version (so it can serve it,
    /// before its membership row says so).
    pub fn serves(&self, node: &str, root: &str) -> bool {
        lock(&self.heard)
            .get(node)
            .and_then(|h| h.active)
            .is_some_and(|v| v.root.to_string() == root)
    }

    fn count(&self, r: Reject) {
        let mut c = lock(&self.counts);
        *match r {
            Reject::Malformed => &mut c.malformed,
            Reject::BadSignature => &mut c.bad_signature,
            Reject::Foreign => &mut c.foreign,
            Reject::Stale => &mut c.stale,
            Reject::Replayed => &mut c.replayed,
            Reject::Own => &mut c.own,
            Reject::Crowded => &mut c.crowded,
        } += 1;
    }

    fn bump(&self, f: impl FnOnce(&mut Counts)) {
        f(&mut lock(&self.counts));
    }

    /// Note `a`; whether its versions changed since the last one from that node (or it is
    /// the first).
    fn heard(&self, a: &Announcement) -> bool {
        let mut heard = lock(&self.heard);
        let before = heard.insert(
            a.node.clone(),
            Heard {
                at: Instant::now(),
                active: a.active,
                staged: a.staged,
                silent: false,
            },
        );
        if before.as_ref().is_some_and(|b| b.silent) {
            tracing::info!("cluster protocol: member {} announces again", a.node);
            lock(&self.counts).silent.retain(|n| *n != a.node);
        }
        if before.is_none() {
            self.new_member.store(true, Ordering::Release);
        }
        before.is_none_or(|b| b.active != a.active || b.staged != a.staged)
    }

    /// Mark members not heard for [`SILENT_PERIODS`] periods, logging each once.
    fn notice_silent(&self, every: Duration) {
        let mut heard = lock(&self.heard);
        let mut silent = Vec::new();
        for (node, h) in heard.iter_mut() {
            if !h.silent && h.at.elapsed() > every * SILENT_PERIODS {
                h.silent = true;
                tracing::warn!(
                    "cluster protocol: member {node} stopped announcing ({SILENT_PERIODS} periods of {} without a word); it may be down or cut off from this node: `updhub status` shows whether its membership row is still fresh",
                    humantime::format_duration(every)
                );
            }
            if h.silent {
                silent.push(node.clone());
            }
        }
        lock(&self.counts).silent = silent;
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Whether `theirs` is a version after `mine`.
fn newer(theirs: Option<Version>, mine: Option<Version>) -> bool {
    theirs.is_some_and(|t| mine.is_none_or(|m| t.n > m.n))
}

/// The socket the protocol receives on: `cluster.interface:cluster.port` for unicast; for
/// multicast the group joined on the interface (with a time to live of 1: the group stays on
/// the cluster's network), bound to the port on every address, or to the group's address
/// when an interface is set.
///
/// # Errors
/// The socket cannot be made, bound or joined.
pub fn bind(c: &ClusterSection) -> Result<UdpSocket, AnnounceError> {
    bind_shared(c, false)
}

/// [`bind`]; `shared`: a unicast socket whose address other members on this host may bind
/// too (the interface's socket beside the group's, see [`run`]).
fn bind_shared(c: &ClusterSection, shared: bool) -> Result<UdpSocket, AnnounceError> {
    use socket2::{Domain, Socket, Type};
    let at = match c.protocol {
        Protocol::Multicast => format!("{}:{} (group {})", c.interface, c.port, c.group),
        _ => format!("{}:{}", c.interface, c.port),
    };
    let fail = |source| AnnounceError::Socket {
        at: at.clone(),
        source,
    };
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(socket2::Protocol::UDP)).map_err(fail)?;
    if c.protocol == Protocol::Multicast {
        // Members on one host (and a restarted one) share the group's port.
        s.set_reuse_address(true).map_err(fail)?;
        // On one interface, bound to the group's address: it hears the group only, nothing
        // sent to this host's addresses on other networks ([`run`] hears this node's own
        // address on the interface with a socket of its own). On every interface, the port
        // on every address.
        let on = if c.interface.is_unspecified() {
            Ipv4Addr::UNSPECIFIED
        } else {
            c.group
        };
        s.bind(&SocketAddrV4::new(on, c.port).into())
            .map_err(fail)?;
        s.join_multicast_v4(&c.group, &c.interface).map_err(fail)?;
        to_group(&s, c).map_err(fail)?;
    } else {
        s.set_reuse_address(shared).map_err(fail)?;
        s.bind(&SocketAddrV4::new(c.interface, c.port).into())
            .map_err(fail)?;
    }
    s.set_nonblocking(true).map_err(fail)?;
    UdpSocket::from_std(s.into()).map_err(fail)
}

/// Make `s` send to the group on `cluster.interface`, with a time to live of 1 (the group
/// stays on the cluster's network), hearing its own datagrams (members on one host).
fn to_group(s: &socket2::Socket, c: &ClusterSection) -> std::io::Result<()> {
    if !c.interface.is_unspecified() {
        s.set_multicast_if_v4(&c.interface)?;
    }
    s.set_multicast_loop_v4(true)?;
    s.set_multicast_ttl_v4(1)
}

/// Run the protocol for `hub` until `stop` changes: nothing when `cluster.protocol` is off;
/// a socket that cannot be opened is logged and the node goes on without it. `listen` is
/// where the members reach this node's interserver port (its host is announced for an
/// unspecified UDP address).
pub async fn run(hub: Arc<Hub>, listen: String, stop: watch::Receiver<bool>) {
    let c = hub.config.cluster.clone();
    if c.protocol == Protocol::Off {
        return;
    }
    // Multicast on one interface: the group's socket hears the group only, and this node's
    // address there (where `cluster.peers` send to it) has a socket of its own, which also
    // sends (a socket bound to a group address cannot).
    let direct = c.protocol == Protocol::Multicast && !c.interface.is_unspecified();
    let bound = bind(&c).and_then(|group| {
        let direct = if direct {
            let unicast = ClusterSection {
                protocol: Protocol::Unicast,
                ..c.clone()
            };
            let d = bind_shared(&unicast, true)?;
            to_group(&socket2::SockRef::from(&d), &c).map_err(|source| AnnounceError::Socket {
                at: format!("{}:{}", c.interface, c.port),
                source,
            })?;
            Some(Arc::new(d))
        } else {
            None
        };
        Ok((Arc::new(group), direct))
    });
    let (sock, direct) = match bound {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cluster protocol off on this node: {e}; the members still converge through the database, within seconds");
            return;
        }
    };
    let out = direct.clone().unwrap_or_else(|| sock.clone());
    let local = match out.local_addr() {
        Ok(a) => a,
        Err(e) => {
            tracing::error!("cluster protocol off on this node: its socket has no address ({e})");
            return;
        }
    };
    *lock(&hub.announce.local) = Some(local);
    let addr = if local.ip().is_unspecified() {
        let host = listen.rsplit_once(':').map_or(listen.as_str(), |(h, _)| h);
        format!("{host}:{}", local.port())
    } else {
        local.to_string()
    };
    let group = if c.protocol == Protocol::Multicast {
        format!(" and group {}:{} on {}", c.group, c.port, c.interface)
    } else {
        String::new()
    };
    tracing::info!(
        "cluster protocol: {} on UDP {local}{group}, announcing every {}",
        c.protocol,
        humantime::format_duration(c.announce_every)
    );
    let me = Sender::new();
    let (id, replay) = (me.id.clone(), Arc::new(Mutex::new(wire::Replay::default())));
    let hear_direct = async {
        if let Some(d) = direct {
            receive(hub.clone(), d, id.clone(), replay.clone(), stop.clone()).await;
        }
    };
    tokio::join!(
        receive(hub.clone(), sock, id.clone(), replay.clone(), stop.clone()),
        hear_direct,
        send(hub.clone(), out, addr, me, stop.clone())
    );
}

/// Take each datagram that arrives, drop and count what is not a new announcement of this
/// cluster, act on the rest.
async fn receive(
    hub: Arc<Hub>,
    sock: Arc<UdpSocket>,
    sender: String,
    replay: Arc<Mutex<wire::Replay>>,
    mut stop: watch::Receiver<bool>,
) {
    // One byte more than the longest datagram taken, so a longer one shows as such.
    let mut buf = vec![0u8; wire::MAX_LEN + 1];
    let cluster = hub.db.cluster_id().to_string();
    loop {
        let got = tokio::select! {
            r = sock.recv_from(&mut buf) => r,
            _ = stop.changed() => return,
        };
        let (n, from) = match got {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!("cluster protocol: receiving: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let taken = wire::decode(&buf[..n], &hub.keys.verifying, &cluster).and_then(|a| {
            lock(&replay)
                .admit(&a, hub.id().as_str(), &sender, now_ms())
                .map(|()| a)
        });
        match taken {
            Ok(a) => act(&hub, &a).await,
            Err(r) => {
                tracing::debug!("cluster protocol: a datagram from {from} dropped: {r}");
                hub.announce.count(r);
            }
        }
    }
}

/// What a node does at once on an announcement: apply a newer settings revision, and catch
/// up with a newer version.
async fn act(hub: &Arc<Hub>, a: &Announcement) {
    hub.announce.bump(|c| c.accepted += 1);
    // Another process of this node (the command line) is no member to watch.
    let moved = a.node != hub.id().as_str() && hub.announce.heard(a);
    if a.rev > hub.settings_revision() {
        let h = hub.clone();
        match tokio::task::spawn_blocking(move || h.refresh_settings()).await {
            Ok(Ok(Some(rev))) => {
                hub.announce.bump(|c| c.settings_applied += 1);
                tracing::info!(
                    "the cluster's settings changed: revision {rev} applied (announced by member {})",
                    a.node
                );
            }
            Ok(Ok(None)) => {}
            Ok(Err(e)) => tracing::warn!("applying the settings member {} announced: {e}", a.node),
            Err(e) => tracing::error!("applying announced settings failed: {e}"),
        }
    }
    let (active, staged) = *lock(&hub.announce.mine);
    if moved && (newer(a.active, active) || newer(a.staged, staged)) {
        hub.announce.bump(|c| c.catch_ups += 1);
        hub.announce.catch_up.notify_one();
    }
}

/// Announce every `cluster.announce_every`, and at once when this node's versions or
/// settings move; every [`crate::hub::MEMBER_EVERY`], record this node's row (address,
/// counters) and read where the others listen.
async fn send(
    hub: Arc<Hub>,
    sock: Arc<UdpSocket>,
    addr: String,
    mut me: Sender,
    mut stop: watch::Receiver<bool>,
) {
    let c = hub.config.cluster.clone();
    let mut versions = hub.version_events.subscribe();
    let mut targets: Vec<SocketAddr> = Vec::new();
    let mut next_record = Instant::now();
    loop {
        // A member heard for the first time recorded its address before it announced:
        // read it now rather than at the next round.
        let new_member = hub.announce.new_member.swap(false, Ordering::AcqRel);
        if new_member || Instant::now() >= next_record {
            next_record = Instant::now() + crate::hub::MEMBER_EVERY;
            targets = targets_recording(&hub, &c, Some(&addr)).await;
        }
        if let Some(bytes) = announcement(&hub, &mut me).await {
            let sent = send_to(&sock, &bytes, &targets).await;
            hub.announce.bump(|c| {
                c.sent += sent as u64;
                c.send_errors += (targets.len() - sent) as u64;
            });
        }
        hub.announce.notice_silent(c.announce_every);
        tokio::select! {
            _ = tokio::time::sleep(c.announce_every) => {}
            _ = versions.changed() => {}
            _ = hub.announce.changed.notified() => {}
            _ = stop.changed() => return,
        }
    }
}

/// One process's identity in the protocol and its sequence.
struct Sender {
    /// Random, so that a restarted process is not taken for a replay of the old one.
    id: String,
    started_ms: i64,
    seq: u64,
}

impl Sender {
    fn new() -> Sender {
        Sender {
            id: hex::encode(rand::random::<[u8; 8]>()),
            started_ms: now_ms(),
            seq: 0,
        }
    }
}

/// Send `bytes` to each of `targets`; how many went.
async fn send_to(sock: &UdpSocket, bytes: &[u8], targets: &[SocketAddr]) -> usize {
    let mut sent = 0;
    for t in targets {
        match sock.send_to(bytes, t).await {
            Ok(_) => sent += 1,
            Err(e) => tracing::debug!("cluster protocol: sending to {t}: {e}"),
        }
    }
    sent
}

/// Announce `hub` once, from a process that does not serve (the command line, after a
/// change it made in the database), so the members act at once instead of at their next
/// poll. Returns how many datagrams went; 0 with the protocol off.
///
/// # Errors
/// The socket cannot be opened.
pub async fn once(hub: &Arc<Hub>) -> Result<usize, AnnounceError> {
    let c = hub.config.cluster.clone();
    if c.protocol == Protocol::Off {
        return Ok(0);
    }
    // Any free port: the serving process may hold cluster.port.
    let sock = bind(&ClusterSection {
        port: 0,
        protocol: Protocol::Unicast,
        ..c.clone()
    })?;
    if c.protocol == Protocol::Multicast {
        to_group(&socket2::SockRef::from(&sock), &c).map_err(|source| AnnounceError::Socket {
            at: format!("{}:0", c.interface),
            source,
        })?;
    }
    let targets = targets_recording(hub, &c, None).await;
    match announcement(hub, &mut Sender::new()).await {
        Some(bytes) => Ok(send_to(&sock, &bytes, &targets).await),
        None => Ok(0),
    }
}

/// This node's next announcement, signed; `None` (logged) when its versions cannot be read.
async fn announcement(hub: &Arc<Hub>, me: &mut Sender) -> Option<Vec<u8>> {
    let h = hub.clone();
    let read = tokio::task::spawn_blocking(move || {
        let v = |p: Option<crate::repo::Published>| {
            p.map(|p| Version {
                n: p.number,
                root: p.root,
            })
        };
        // The role as the members see it: the publisher role's holder, a standby of the
        // top parent's cluster, or a child (a node following a parent).
        let role = if h.is_child() {
            "child"
        } else if h.publisher().ok().flatten().as_deref() == Some(h.id().as_str()) {
            "publisher"
        } else {
            "standby"
        };
        Ok::<_, crate::db::DbError>((v(h.db.published()?), v(h.db.staged()?), role))
    })
    .await;
    let (active, staged, role) = match read {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            tracing::warn!("cluster protocol: reading this node's versions: {e}");
            return None;
        }
        Err(e) => {
            tracing::error!("cluster protocol: reading this node's versions failed: {e}");
            return None;
        }
    };
    *lock(&hub.announce.mine) = (active, staged);
    me.seq += 1;
    let a = Announcement {
        cluster: hub.db.cluster_id().to_string(),
        key: wire::key_fp(&hub.keys.verifying),
        node: hub.id().to_string(),
        sender: me.id.clone(),
        started_ms: me.started_ms,
        role: role.to_owned(),
        active,
        staged,
        rev: hub.settings_revision(),
        digest: hub.live().same_digest(),
        updhub: env!("CARGO_PKG_VERSION").to_owned(),
        at_ms: now_ms(),
        seq: me.seq,
    };
    match wire::encode(&a, &hub.keys.signing) {
        Ok(b) => Some(b),
        Err(e) => {
            tracing::error!("cluster protocol: {e}");
            None
        }
    }
}

/// Where to send: the group (multicast), `cluster.peers`, and (unicast) every other member
/// that recorded itself lately; first this node's row (its address `addr`, its counters)
/// is recorded when given.
async fn targets_recording(
    hub: &Arc<Hub>,
    c: &ClusterSection,
    addr: Option<&str>,
) -> Vec<SocketAddr> {
    let me = addr.map(|addr| crate::db::Announcer {
        node_id: hub.id().to_string(),
        addr: addr.to_owned(),
        protocol: c.protocol.to_string(),
        counters: serde_json::to_value(hub.announce.counts()).expect("counters serialize"),
        updated_ms: now_ms(),
    });
    let h = hub.clone();
    let unicast = c.protocol == Protocol::Unicast;
    let rows = tokio::task::spawn_blocking(move || {
        if let Some(me) = me {
            h.db.record_announcer(&me)?;
        }
        if unicast {
            h.db.announcers()
        } else {
            Ok(Vec::new())
        }
    })
    .await;
    let alive = crate::hub::MEMBER_ALIVE.as_millis() as i64;
    let mut names: Vec<String> = c.peers.clone();
    match rows {
        Ok(Ok(rows)) => names.extend(
            rows.into_iter()
                .filter(|r| now_ms() - r.updated_ms < alive)
                // The serving process of this node hears the command line's announcement.
                .filter(|r| addr.is_none() || r.node_id != hub.id().as_str())
                .map(|r| r.addr),
        ),
        Ok(Err(e)) => tracing::warn!("cluster protocol: recording this node: {e}"),
        Err(e) => tracing::error!("cluster protocol: recording this node failed: {e}"),
    }
    let mut out = Vec::new();
    if c.protocol == Protocol::Multicast {
        out.push(SocketAddr::from((c.group, c.port)));
    }
    for n in names {
        match tokio::net::lookup_host(&n).await {
            Ok(found) => out.extend(found.filter(SocketAddr::is_ipv4)),
            Err(e) => tracing::warn!("cluster protocol: member address {n}: {e}"),
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

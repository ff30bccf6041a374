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
/// A member silent for this many periods is forgotten (10 minutes at the default period):
/// its membership row still shows it, and heard again it counts as new.
const FORGET_PERIODS: u32 = 600;
/// Members remembered at most, far more than a cluster has: a holder of the cluster key
/// announcing under ever new node ids must not grow a member's memory or its `status`.
const HEARD_MAX: usize = 256;
/// Silent members named in the counters (and so in `status`) at most; the rest are counted.
const SILENT_SHOWN: usize = 16;

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
    /// Dropped: validly signed, but with a node id (or another field) that breaks its rule.
    pub bad_field: u64,
    /// Members heard while [`HEARD_MAX`] others were remembered: a silent one forgotten to
    /// make room, or (none silent) the announcement taken without remembering its member.
    pub capped: u64,
    /// Members forgotten after [`FORGET_PERIODS`] periods of silence.
    pub forgotten: u64,
    /// Settings revisions applied because a member announced them.
    pub settings_applied: u64,
    /// Catch-ups started because a member announced a newer version.
    pub catch_ups: u64,
    /// Members heard before and silent for three periods now (the first [`SILENT_SHOWN`]).
    pub silent: Vec<String>,
    /// Silent members besides those named in `silent`.
    pub silent_more: u64,
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
        if self.bad_field > 0 {
            write!(
                f,
                "; {} dropped for a bad node id or field (signed with the cluster key: a member's build or its key is at fault)",
                self.bad_field
            )?;
        }
        if self.capped > 0 {
            write!(
                f,
                "; CAPPED: {} times a member was heard while {HEARD_MAX} others were remembered (a silent one forgotten, or the new one not remembered); so many node ids come from a member's build or a stolen cluster key at fault (the membership rows list the real members)",
                self.capped
            )?;
        }
        if self.forgotten > 0 {
            write!(f, "; {} silent members forgotten", self.forgotten)?;
        }
        if !self.silent.is_empty() {
            write!(f, "; SILENT: {}", self.silent.join(", "))?;
            if self.silent_more > 0 {
                write!(f, " and {} more", self.silent_more)?;
            }
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
            Reject::BadField => &mut c.bad_field,
        } += 1;
    }

    fn bump(&self, f: impl FnOnce(&mut Counts)) {
        f(&mut lock(&self.counts));
    }

    /// Note `a`; whether its versions changed since the last one from that node (or it is
    /// the first, or the node is not remembered).
    fn heard(&self, a: &Announcement) -> bool {
        self.heard_at(a, Instant::now())
    }

    /// [`Shared::heard`] at `now`. A new member while [`HEARD_MAX`] are remembered takes
    /// the place of the silent one heard longest ago, or else is not remembered (counted).
    fn heard_at(&self, a: &Announcement, now: Instant) -> bool {
        let mut heard = lock(&self.heard);
        if !heard.contains_key(&a.node) && heard.len() >= HEARD_MAX {
            let oldest_silent = heard
                .iter()
                .filter(|(_, h)| h.silent)
                .min_by_key(|(_, h)| h.at)
                .map(|(n, _)| n.clone());
            self.bump(|c| c.capped += 1);
            let Some(gone) = oldest_silent else {
                return true;
            };
            heard.remove(&gone);
        }
        let before = heard.insert(
            a.node.clone(),
            Heard {
                at: now,
                active: a.active,
                staged: a.staged,
                silent: false,
            },
        );
        if before.as_ref().is_some_and(|b| b.silent) {
            tracing::info!("cluster protocol: member {} announces again", a.node);
            self.bump(|c| {
                let named = c.silent.len();
                c.silent.retain(|n| *n != a.node);
                if c.silent.len() == named {
                    c.silent_more = c.silent_more.saturating_sub(1);
                }
            });
        }
        if before.is_none() {
            self.new_member.store(true, Ordering::Release);
        }
        before.is_none_or(|b| b.active != a.active || b.staged != a.staged)
    }

    /// Mark members not heard for [`SILENT_PERIODS`] periods, logging each once; forget
    /// those not heard for [`FORGET_PERIODS`].
    fn notice_silent(&self, every: Duration) {
        self.notice_silent_at(every, Instant::now());
    }

    /// [`Shared::notice_silent`] at `now`.
    fn notice_silent_at(&self, every: Duration, now: Instant) {
        let mut heard = lock(&self.heard);
        let before = heard.len();
        heard.retain(|_, h| now.saturating_duration_since(h.at) <= every * FORGET_PERIODS);
        let forgotten = before - heard.len();
        if forgotten > 0 {
            tracing::info!(
                "cluster protocol: forgot {forgotten} member(s) silent for over {}",
                humantime::format_duration(every * FORGET_PERIODS)
            );
        }
        let mut silent = Vec::new();
        // Each one named in the log up to SILENT_SHOWN a round, the rest counted: a flood
        // of ids falling silent together must not flood the log.
        let mut fell_silent = 0;
        for (node, h) in heard.iter_mut() {
            if !h.silent && now.saturating_duration_since(h.at) > every * SILENT_PERIODS {
                h.silent = true;
                fell_silent += 1;
                if fell_silent <= SILENT_SHOWN {
                    tracing::warn!(
                        "cluster protocol: member {node} stopped announcing ({SILENT_PERIODS} periods of {} without a word); it may be down or cut off from this node: `updhub status` shows whether its membership row is still fresh",
                        humantime::format_duration(every)
                    );
                }
            }
            if h.silent {
                silent.push(node.clone());
            }
        }
        drop(heard);
        if fell_silent > SILENT_SHOWN {
            tracing::warn!(
                "cluster protocol: {} more members stopped announcing (`updhub status` counts them)",
                fell_silent - SILENT_SHOWN
            );
        }
        let more = silent.len().saturating_sub(SILENT_SHOWN);
        silent.truncate(SILENT_SHOWN);
        self.bump(|c| {
            c.silent = silent;
            c.silent_more = more as u64;
            c.forgotten += forgotten as u64;
        });
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

#[cfg(test)]
mod tests {
    use super::*;

    fn from(node: &str) -> Announcement {
        Announcement {
            cluster: "c".into(),
            key: "k".into(),
            node: node.into(),
            sender: "0123456789abcdef".into(),
            started_ms: 0,
            role: "standby".into(),
            active: None,
            staged: None,
            rev: 1,
            digest: "d".into(),
            updhub: "0.1.0".into(),
            at_ms: 0,
            seq: 1,
        }
    }

    const EVERY: Duration = Duration::from_secs(1);

    #[test]
    fn a_flood_of_new_member_ids_is_bounded_in_memory_and_in_the_counters() {
        let s = Shared::default();
        let t0 = Instant::now();
        // Three floods of 4,000 new ids (as a holder of the cluster key could send), each
        // followed by silence.
        for round in 0..3u32 {
            let at = t0 + EVERY * 10 * round;
            for i in 0..4000 {
                s.heard_at(&from(&format!("flood-{round}-{i}")), at);
            }
            s.notice_silent_at(EVERY, at + EVERY * 5);
            assert!(lock(&s.heard).len() <= HEARD_MAX, "round {round}");
            let c = s.counts();
            assert_eq!(c.silent.len(), SILENT_SHOWN, "round {round}");
            assert_eq!(
                c.silent_more as usize,
                HEARD_MAX - SILENT_SHOWN,
                "round {round}"
            );
        }
        let c = s.counts();
        // Every id past the first HEARD_MAX was capped (the later floods' first ones took
        // the silent ones' places).
        assert_eq!(c.capped as usize, 3 * 4000 - HEARD_MAX);
        assert_eq!(c.forgotten, 0);
        let shown = c.to_string();
        assert!(shown.contains("CAPPED") && shown.len() < 2000, "{shown}");
        assert!(serde_json::to_string(&c).unwrap().len() < 2000);
        // A real member is heard again once the flood is silent: it takes a silent one's place.
        assert!(s.heard_at(&from("m2"), t0 + EVERY * 40));
        assert!(s.heard_from().contains(&"m2".to_owned()));
        // Members silent for FORGET_PERIODS are forgotten, the one still talking is not.
        let later = t0 + EVERY * (40 + FORGET_PERIODS);
        s.heard_at(&from("m2"), later);
        s.notice_silent_at(EVERY, later);
        assert_eq!(s.heard_from(), vec!["m2".to_owned()]);
        assert_eq!(lock(&s.heard).len(), 1);
        let c = s.counts();
        assert_eq!(c.forgotten as usize, HEARD_MAX - 1);
        assert!(c.silent.is_empty() && c.silent_more == 0, "{c:?}");
    }

    #[test]
    fn a_silent_member_that_announces_again_leaves_the_silent_list() {
        let s = Shared::default();
        let t0 = Instant::now();
        s.heard_at(&from("m2"), t0);
        s.heard_at(&from("m3"), t0 + EVERY * 4);
        s.notice_silent_at(EVERY, t0 + EVERY * 4);
        assert_eq!(s.counts().silent, vec!["m2".to_owned()]);
        s.heard_at(&from("m2"), t0 + EVERY * 5);
        assert!(s.counts().silent.is_empty());
        assert_eq!(s.heard_from(), vec!["m2".to_owned(), "m3".to_owned()]);
    }
}

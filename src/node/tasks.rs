//! A node's background tasks, each one small thing done on a schedule until the node stops:
//! a name for the log, how often, and one round of work. Work that touches the database runs
//! on the blocking pool, so no round holds a tokio worker that streams blobs.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};

use crate::hub::Hub;
use crate::license::ledger::Sweep;

/// One background task.
pub trait Task: Send + 'static {
    /// Its name, for the log.
    fn name(&self) -> &'static str;
    /// The pause between two rounds.
    fn every(&self) -> Duration;
    /// Whether the first round runs at once (else after the first pause).
    fn at_start(&self) -> bool;
    /// One round; failures are logged by the round itself, the task goes on.
    fn round(&mut self) -> impl Future<Output = ()> + Send;
    /// What starts a round before the pause ends, if anything (the cluster protocol wakes
    /// the catch-up when a member announces a newer version).
    fn woken_by(&self) -> Option<Arc<Notify>> {
        None
    }
}

/// Run `task` until `stop` changes.
pub async fn run(mut task: impl Task, mut stop: watch::Receiver<bool>) {
    tracing::debug!(task = task.name(), every = ?task.every(), "background task started");
    if task.at_start() {
        task.round().await;
    }
    let wake = task.woken_by();
    let woken = || async {
        match &wake {
            Some(n) => n.notified().await,
            None => std::future::pending().await,
        }
    };
    loop {
        tokio::select! {
            _ = tokio::time::sleep(task.every()) => {}
            _ = woken() => {}
            _ = stop.changed() => return,
        }
        task.round().await;
    }
}

/// Run `f` on the blocking pool with the node; a panic is logged as the task's failure.
async fn blocking<T: Send + 'static>(
    name: &'static str,
    hub: &Arc<Hub>,
    f: impl FnOnce(&Hub) -> T + Send + 'static,
) -> Option<T> {
    let hub = hub.clone();
    match tokio::task::spawn_blocking(move || f(&hub)).await {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::error!(task = name, "background task failed: {e}");
            None
        }
    }
}

/// Licenses: reclaim what ended, warn about what ends soon (on every node: what it serves
/// depends on it; purging stations is the cluster's, see [`StationPurge`]).
pub struct LicenseSweep(pub Arc<Hub>);

impl Task for LicenseSweep {
    fn name(&self) -> &'static str {
        "license sweep"
    }

    fn every(&self) -> Duration {
        (self.0.live().licenses.skew_margin / 2)
            .clamp(Duration::from_millis(200), Duration::from_secs(60))
    }

    fn at_start(&self) -> bool {
        // The node sweeps once before it serves (see `node::run`).
        false
    }

    async fn round(&mut self) {
        let hub = &self.0;
        match hub.ledger.sweep_expiry().await {
            Ok(s) if s != Sweep::default() => tracing::info!(?s, "license sweep"),
            Ok(_) => {}
            Err(e) => tracing::error!("license sweep failed: {e}"),
        }
        let warn = hub.live().licenses.warn_before;
        if let Some(Ok(sources)) = blocking(self.name(), hub, move |h| h.ledger.status(warn)).await
        {
            for s in sources.iter().filter(|s| s.expiring_soon) {
                tracing::warn!(
                    "license {} ({}) stops counting at {}: {} stations use it; renew it or add a key",
                    s.source_id,
                    s.kind,
                    s.usable_until,
                    s.used
                );
            }
        }
    }
}

/// The cluster's stations not seen within `licenses.station_ttl` are purged and free their
/// license: on one member, the holder of the lease, every 24th of the TTL (between a
/// second and an hour). A purge interrupted halfway purged nothing (one transaction) and
/// runs again.
pub struct StationPurge(pub Arc<Hub>);

impl crate::leases::ClusterTask for StationPurge {
    fn name(&self) -> &'static str {
        "purge stations"
    }

    fn period(&self) -> Option<Duration> {
        period_of(self.0.live().licenses.station_ttl)
    }

    async fn run(&mut self, _due_ms: i64) -> Result<String, String> {
        let ttl = self.0.live().licenses.station_ttl;
        match self.0.ledger.purge_stations(ttl).await {
            Ok(0) => Ok("no station past station_ttl".into()),
            Ok(n) => {
                tracing::info!(
                    "purged {n} station(s) not seen for {}",
                    humantime::format_duration(ttl)
                );
                Ok(format!("{n} station(s) purged"))
            }
            Err(e) => Err(e.to_string()),
        }
    }
}

/// A cluster task's period from the retention it enforces: a 24th of it, between a second
/// and an hour (so a row outlives its retention by at most a 24th); `None` (off) at 0.
fn period_of(retention: Duration) -> Option<Duration> {
    (!retention.is_zero())
        .then(|| (retention / 24).clamp(Duration::from_secs(1), Duration::from_secs(3600)))
}

/// The instant `retention` ago: what was written before it is past its retention (a
/// retention is at most 100 years, see `config::parse_span`).
fn cutoff(retention: Duration) -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now() - chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX)
}

/// The reports past `server.report_retention` are forgotten, on one member of the cluster
/// (the lease holder): children's last reports (so a child that went silent for good no
/// longer holds its version back from GC, see [`crate::gc::keep_roots`]), the grant
/// receivers' reports and the task runs. Never a child that still counts for the two-phase
/// switch: the cutoff is at least [`crate::switch::reporting_window`] old, and a child
/// outside it is already not counted. One transaction: interrupted, it purged nothing.
pub struct ReportPurge(pub Arc<Hub>);

impl crate::leases::ClusterTask for ReportPurge {
    fn name(&self) -> &'static str {
        "purge reports"
    }

    fn period(&self) -> Option<Duration> {
        period_of(self.0.live().server.report_retention)
    }

    async fn run(&mut self, _due_ms: i64) -> Result<String, String> {
        let live = self.0.live();
        let keep = live
            .server
            .report_retention
            .max(crate::switch::reporting_window(live.upstream.sync_interval));
        let before = cutoff(keep);
        let purged = blocking(self.name(), &self.0, move |h| h.db.purge_reports(before))
            .await
            .ok_or("the purge stopped")?
            .map_err(|e| e.to_string())?;
        if purged.children > 0 {
            tracing::info!(
                "forgot {} child(ren) silent for over {}: their versions no longer hold back GC",
                purged.children,
                humantime::format_duration(keep)
            );
        }
        Ok(format!(
            "{} child report(s), {} grant report(s), {} task run(s) purged",
            purged.children, purged.grant_reports, purged.task_runs
        ))
    }
}

/// The audit log's rows past `licenses.log_retention` are archived to files in this node's
/// `licenses.log_archive_dir` and leave the log ([`crate::license::archive`]), on one member
/// of the cluster (the lease holder). Interrupted after a file was written, the next run
/// writes the same file again and removes the rows then.
pub struct LogArchive(pub Arc<Hub>);

impl crate::leases::ClusterTask for LogArchive {
    fn name(&self) -> &'static str {
        "archive license log"
    }

    fn period(&self) -> Option<Duration> {
        period_of(self.0.live().licenses.log_retention)
    }

    async fn run(&mut self, _due_ms: i64) -> Result<String, String> {
        let live = self.0.live();
        let before = cutoff(live.licenses.log_retention);
        let dir = self.0.data.join(&live.licenses.log_archive_dir);
        let made = self
            .0
            .ledger
            .archive_log(before, &dir)
            .await
            .map_err(|e| e.to_string())?;
        let rows: i64 = made.iter().map(|a| a.rows).sum();
        if rows > 0 {
            tracing::info!(
                "archived {rows} audit-log row(s) older than {} to {} file(s) in {}",
                humantime::format_duration(live.licenses.log_retention),
                made.len(),
                dir.display()
            );
        }
        Ok(match (made.first(), made.last()) {
            (Some(f), Some(l)) => format!(
                "{rows} row(s) archived: seq {}..{} in {}",
                f.from_seq,
                l.upto_seq,
                made.iter()
                    .map(|a| a.file.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            _ => "no audit-log row past log_retention".into(),
        })
    }
}

/// A top parent re-signs its published version before it expires.
pub struct Resign(pub Arc<Hub>);

impl Task for Resign {
    fn name(&self) -> &'static str {
        "re-sign"
    }

    fn every(&self) -> Duration {
        // Often enough that even a short validity is renewed in time.
        (self.0.live().publish.expires_in / 8)
            .clamp(Duration::from_millis(100), Duration::from_secs(60))
    }

    fn at_start(&self) -> bool {
        true
    }

    async fn round(&mut self) {
        if let Some(Err(e)) = blocking(self.name(), &self.0, |h| h.resign_if_due()).await {
            tracing::error!("re-signing the published version failed: {e}");
        }
    }
}

/// A top parent applies the activation rule to its staged version (see [`crate::switch`])
/// every [`ACTIVATE_EVERY`], besides on every child's report: the stage timeout passes, and
/// children that stopped reporting drop out of the count, without a report arriving.
pub struct Activate(pub Arc<Hub>);

/// How often a top parent applies the activation rule.
pub const ACTIVATE_EVERY: Duration = Duration::from_secs(1);

impl Task for Activate {
    fn name(&self) -> &'static str {
        "activate"
    }

    fn every(&self) -> Duration {
        ACTIVATE_EVERY
    }

    fn at_start(&self) -> bool {
        // A parent restarted between stage and activate goes on where it was.
        true
    }

    async fn round(&mut self) {
        if let Some(Err(e)) = blocking(self.name(), &self.0, |h| h.evaluate_activation()).await {
            tracing::error!("applying the activation rule failed: {e}");
        }
    }
}

/// A member serves the cluster's published version once its own store holds all of it:
/// it fetches what it lacks from a live member that serves it (see
/// [`crate::child::catch_up`]), and takes fresher signatures of the version it serves.
pub struct CatchUp(pub Arc<Hub>);

/// How often a member compares what it serves with the cluster's published and staged
/// versions: two reads of one row each, cheap enough every second; the cluster protocol
/// wakes it at once besides (a standby learns of a publish or an activation without it
/// within this period, and its children wait for it: `benches/converge.rs`).
pub const CATCH_UP_EVERY: Duration = Duration::from_secs(1);

impl Task for CatchUp {
    fn name(&self) -> &'static str {
        "catch up"
    }

    fn every(&self) -> Duration {
        CATCH_UP_EVERY
    }

    fn at_start(&self) -> bool {
        true
    }

    async fn round(&mut self) {
        self.active().await;
        self.staged().await;
    }

    fn woken_by(&self) -> Option<Arc<Notify>> {
        Some(self.0.announce.catch_up_wake())
    }
}

/// Live members other than this node (id, HOST:PORT), those serving `root` only if given,
/// shuffled: members that lag fetch from different sources, not all from the first one.
fn member_sources(
    h: &Hub,
    root: Option<&str>,
) -> Result<Vec<(String, String)>, crate::db::DbError> {
    let mut sources: Vec<(String, String)> =
        h.db.live_members(crate::hub::MEMBER_ALIVE)?
            .into_iter()
            .filter(|m| {
                m.node_id != h.id().as_str()
                    && root.is_none_or(|r| {
                        // A member that announced the version serves it before its row says so.
                        m.active_root.as_deref() == Some(r) || h.announce.serves(&m.node_id, r)
                    })
            })
            .map(|m| (m.node_id, m.listen))
            .collect();
    rand::seq::SliceRandom::shuffle(&mut sources[..], &mut rand::thread_rng());
    Ok(sources)
}

/// What a catch-up's database read found; a failure is logged.
fn found_or_log<T>(found: Option<Result<Option<T>, crate::db::DbError>>) -> Option<T> {
    match found {
        Some(Ok(x)) => x,
        Some(Err(e)) => {
            tracing::warn!("catch up: {e}");
            None
        }
        None => None,
    }
}

impl CatchUp {
    /// The cluster's active version, served once this node holds all of it.
    async fn active(&self) {
        let hub = &self.0;
        let found = blocking("catch up", hub, |h| {
            let Some(want) = h.db.cluster_published()? else {
                return Ok(None);
            };
            // The usual case, every second on every member: nothing to do, no membership read.
            if h.db.published()?.as_ref() == Some(&want) {
                return Ok(None);
            }
            let sources = member_sources(h, Some(&want.root.to_string()))?;
            Ok::<_, crate::db::DbError>(Some((want, sources)))
        })
        .await;
        let Some((want, sources)) = found_or_log(found) else {
            return;
        };
        match crate::child::catch_up(hub, &want, &sources).await {
            Ok(crate::child::CatchUp::Current) => {}
            Ok(crate::child::CatchUp::Switched(r, from)) => tracing::info!(
                "switched to the cluster's version {} (root {}): {} blobs, {} bytes fetched from {} in {:.2} s",
                r.number,
                r.root,
                r.blobs,
                r.bytes,
                from.map_or("nobody (this node's store held it all)".to_owned(), |f| format!("member {f}")),
                r.seconds
            ),
            Ok(crate::child::CatchUp::NoSource(n)) => tracing::info!(
                "the cluster published version {n}; no live member serves it yet: this node keeps serving the version it holds"
            ),
            Err(e) => tracing::warn!(
                "catching up with the cluster's version {}: {e}",
                want.number
            ),
        }
    }

    /// The cluster's staged version, held here too so that children reaching this member
    /// stage it (see [`crate::child::catch_up_staged`]).
    async fn staged(&self) {
        let hub = &self.0;
        let found = blocking("catch up", hub, |h| {
            let Some(want) = h.db.cluster_staged()? else {
                return Ok(None);
            };
            if h.db.staged()?.as_ref() == Some(&want.published) {
                return Ok(None);
            }
            Ok::<_, crate::db::DbError>(Some((want.published, member_sources(h, None)?)))
        })
        .await;
        let Some((want, sources)) = found_or_log(found) else {
            return;
        };
        match crate::child::catch_up_staged(hub, &want, &sources).await {
            Ok(Some((r, from))) => tracing::info!(
                "staged the cluster's version {} (root {}): {} blobs, {} bytes fetched from {}",
                r.number,
                r.root,
                r.blobs,
                r.bytes,
                from.map_or(
                    "nobody (this node's store held it all)".to_owned(),
                    |f| format!("member {f}")
                ),
            ),
            Ok(None) => {}
            Err(e) => tracing::warn!("staging the cluster's staged version {}: {e}", want.number),
        }
    }
}

/// How often a node re-reads the cluster's links (a link removed on any member is refused
/// by every member within this time).
pub const LINKS_EVERY: Duration = Duration::from_secs(2);

/// Licenses either way over a peer link (the vendor's "neighbor"): every `sync_interval`,
/// fetch the grants the peer donated to this node and offer it those this node donated to
/// it (the peer cannot reach this node). Both directions verify every grant's chain.
pub struct PeerLicenses {
    /// The node.
    pub hub: Arc<Hub>,
    /// The peer's interserver URL (`upstream.peer`).
    pub url: String,
}

impl Task for PeerLicenses {
    fn name(&self) -> &'static str {
        "peer licenses"
    }

    fn every(&self) -> Duration {
        self.hub.live().upstream.sync_interval
    }

    fn at_start(&self) -> bool {
        true
    }

    async fn round(&mut self) {
        let Some(u) = self.hub.keys.upstream.clone() else {
            tracing::warn!(
                "upstream.peer is {} but this node has no link (keys/upstream/): enroll with `updhub link join {} TOKEN` using a --peer token from its admin",
                self.url,
                self.url
            );
            return;
        };
        let exchanged = crate::link::exchange_licenses(&self.hub, &self.url, &u.parent_id);
        match exchanged.await {
            Ok((got, gave)) => tracing::debug!(
                "licenses exchanged with peer {}: {got} grant(s) from it, {gave} to it",
                u.parent_id
            ),
            Err(e) => tracing::warn!("licenses with peer {}: {e}", u.parent_id),
        }
    }
}

/// How often the scrub verifies its next share of the store.
pub const SCRUB_EVERY: Duration = Duration::from_secs(1);

/// The store rehashed in the background at `store.scrub_rate_mib`: each round verifies about
/// one second's worth of blobs; a damaged one is quarantined at once, so no route serves it,
/// and the same round fetches it again ([`crate::repair::repair`]: from the parent, or the
/// zone at the revision its version names, or a member). A pass over the whole store is
/// followed by a pause of `store.scrub_every`.
pub struct Scrub {
    /// The node.
    pub hub: Arc<Hub>,
    queue: Arc<Vec<crate::id::BlobId>>,
    at: usize,
    next_pass: std::time::Instant,
}

impl Scrub {
    /// A scrub of `hub`'s store; its first pass starts at once.
    pub fn new(hub: Arc<Hub>) -> Scrub {
        Scrub {
            hub,
            queue: Arc::default(),
            at: 0,
            next_pass: std::time::Instant::now(),
        }
    }
}

impl Task for Scrub {
    fn name(&self) -> &'static str {
        "scrub"
    }

    fn every(&self) -> Duration {
        SCRUB_EVERY
    }

    fn at_start(&self) -> bool {
        false
    }

    async fn round(&mut self) {
        let live = self.hub.live();
        let budget = live.store.scrub_rate_mib.saturating_mul(1 << 20);
        if budget == 0 {
            return;
        }
        if self.at >= self.queue.len() {
            if std::time::Instant::now() < self.next_pass {
                return;
            }
            match blocking(self.name(), &self.hub, |h| h.store.list()).await {
                Some(Ok(ids)) => self.queue = Arc::new(ids),
                Some(Err(e)) => {
                    tracing::warn!("scrub: listing the store: {e}");
                    return;
                }
                None => return,
            }
            self.at = 0;
            self.next_pass = std::time::Instant::now() + live.store.scrub_every;
        }
        let (queue, from) = (self.queue.clone(), self.at);
        let done = blocking(self.name(), &self.hub, move |h| {
            let mut spent = 0u64;
            let mut at = from;
            let mut quarantined = 0usize;
            while at < queue.len() && spent < budget {
                let id = queue[at];
                at += 1;
                match h.store.verify(&id) {
                    Ok(n) => spent += n.max(1),
                    Err(crate::store::StoreError::Missing(_)) => {}
                    Err(e) => {
                        tracing::error!("scrub: {e}");
                        match h.store.quarantine(&id) {
                            Ok(Some(to)) => {
                                quarantined += 1;
                                tracing::error!(
                                    "scrub: blob {id} quarantined to {}; fetching it again",
                                    to.display()
                                );
                            }
                            Ok(None) => {}
                            Err(e) => tracing::error!("scrub: quarantining blob {id}: {e}"),
                        }
                    }
                }
            }
            (at, quarantined)
        })
        .await;
        if let Some((at, quarantined)) = done {
            if quarantined > 0 {
                match crate::repair::repair(&self.hub).await {
                    Ok(r) => tracing::info!("scrub: repair: {r}"),
                    Err(e) => tracing::warn!("scrub: repair: {e}"),
                }
            }
            self.at = at;
            if self.at >= self.queue.len() {
                tracing::debug!("scrub: a pass over {} blobs is done", self.queue.len());
                self.queue = Arc::default();
                self.at = 0;
            }
        }
    }
}

/// Garbage collection of this node's store every `store.gc_every` (0: never), while it
/// serves: see [`crate::gc::run`]. Each node collects its own store (stores are per node).
pub struct Gc(pub Arc<Hub>);

/// How often a node with `store.gc_every` = 0 looks again whether it was turned on.
const GC_OFF_CHECK: Duration = Duration::from_secs(60);

impl Task for Gc {
    fn name(&self) -> &'static str {
        "gc"
    }

    fn every(&self) -> Duration {
        match self.0.live().store.gc_every {
            Duration::ZERO => GC_OFF_CHECK,
            d => d,
        }
    }

    fn at_start(&self) -> bool {
        false
    }

    async fn round(&mut self) {
        if self.0.live().store.gc_every.is_zero() {
            return;
        }
        match blocking(self.name(), &self.0, |h| crate::gc::run(h, false)).await {
            Some(Ok(r)) if r.blobs > 0 || r.partial_files > 0 => tracing::info!(
                "gc: freed {} bytes: {} blobs (the content of version(s) {:?}), {} partial file(s); {} young blob(s) spared; {} roots kept",
                r.bytes + r.partial_bytes,
                r.blobs,
                r.dropped_versions,
                r.partial_files,
                r.young,
                r.kept.len()
            ),
            Some(Ok(r)) => tracing::debug!("gc: nothing to free; {} roots kept", r.kept.len()),
            Some(Err(e)) => tracing::warn!("gc: {e}"),
            None => {}
        }
    }
}

/// The cluster's links: re-read, so enrollments and removals made on any member (or by the
/// CLI) take effect here.
pub struct Links(pub Arc<Hub>);

impl Task for Links {
    fn name(&self) -> &'static str {
        "links"
    }

    fn every(&self) -> Duration {
        LINKS_EVERY
    }

    fn at_start(&self) -> bool {
        false
    }

    async fn round(&mut self) {
        if let Some(Err(e)) = blocking(self.name(), &self.0, |h| h.refresh_links()).await {
            tracing::warn!("re-reading the links: {e}");
        }
    }
}

/// The membership row: refreshed every [`crate::hub::MEMBER_EVERY`], so the others see this
/// node alive, with what it runs; and the cluster's shared settings, applied when their
/// revision changed.
pub struct Membership {
    /// The node.
    pub hub: Arc<Hub>,
    /// Its data folder's instance token.
    pub instance: String,
    /// Its interserver address.
    pub listen: String,
    /// Set when this process must stop serving: it is the younger of two processes serving
    /// copies of one data folder (see [`crate::Error::Copied`]).
    pub yield_to_copy: tokio::sync::watch::Sender<Option<String>>,
}

impl Task for Membership {
    fn name(&self) -> &'static str {
        "membership"
    }

    fn every(&self) -> Duration {
        crate::hub::MEMBER_EVERY
    }

    fn at_start(&self) -> bool {
        false
    }

    async fn round(&mut self) {
        let (instance, listen) = (self.instance.clone(), self.listen.clone());
        let res = blocking("membership", &self.hub, move |hub| {
            // The cluster's shared settings first, so the row shows what is in force.
            if let Some(rev) = hub.refresh_settings()? {
                tracing::info!("the cluster's settings changed: revision {rev} applied");
            }
            hub.record_member(&instance, &listen)
        })
        .await;
        match res {
            Some(Err(crate::Error::Copied { why, yields: true })) => {
                tracing::error!("membership: {why}");
                self.yield_to_copy.send_replace(Some(why));
            }
            Some(Err(e)) => tracing::warn!("membership: {e}"),
            _ => {}
        }
    }
}

/// A top parent reads its zone every `upstream.mirror_interval`, once the cluster has
/// published a version, and publishes what the products policy takes when it changed
/// ([`Hub::update`]). A round with nothing new reads only the zone index. It runs on one
/// member of the cluster, the holder of its lease ([`crate::leases`]); a round interrupted
/// halfway is safe to run again (the mirror resumes and verifies what it fetched; content
/// the cluster already serves publishes nothing).
pub struct Mirror(pub Arc<Hub>);

/// How soon a failed scheduled mirror is tried again, at most.
const MIRROR_RETRY: Duration = Duration::from_secs(60);

impl crate::leases::ClusterTask for Mirror {
    fn name(&self) -> &'static str {
        "scheduled mirror"
    }

    fn period(&self) -> Option<Duration> {
        Some(self.0.live().upstream.mirror_interval).filter(|d| !d.is_zero())
    }

    fn retry_within(&self) -> Option<Duration> {
        Some(MIRROR_RETRY)
    }

    async fn run(&mut self, _due_ms: i64) -> Result<String, String> {
        let published = blocking("scheduled mirror", &self.0, |h| h.db.cluster_published())
            .await
            .ok_or("the database read stopped")?
            .map_err(|e| e.to_string())?;
        // Until an admin published a first version there is nothing to keep fresh.
        if published.is_none() {
            return Ok("nothing published yet: an admin publishes the first version".into());
        }
        match self.0.update().await {
            Ok(u) => Ok(match &u.published {
                Some(p) => {
                    tracing::info!(
                        number = p.number,
                        root = %p.root,
                        "scheduled mirror: {}; published version {}",
                        u.mirrored,
                        p.number
                    );
                    format!("{}; published version {}", u.mirrored, p.number)
                }
                None if u.mirrored.unchanged => u.mirrored.to_string(),
                None => format!("{}; the cluster already serves it", u.mirrored),
            }),
            Err(e) => Err(format!("{e} (next try within a minute)")),
        }
    }
}

/// `serve` writes an archive of this node every `backup.every` into `backup.dir`, keeping
/// the newest `backup.keep` ([`crate::backup::scheduled`]). Each node backs itself up: its
/// configuration, keys and embedded database are its own (a cluster's shared PostgreSQL
/// database has its own backup).
pub struct Backups(pub Arc<Hub>);

impl Task for Backups {
    fn name(&self) -> &'static str {
        "backup"
    }

    fn every(&self) -> Duration {
        // Off: the loop only looks again now and then.
        match self.0.live().backup.every {
            d if d.is_zero() => Duration::from_secs(60),
            d => d,
        }
    }

    fn at_start(&self) -> bool {
        false
    }

    async fn round(&mut self) {
        if self.0.live().backup.every.is_zero() {
            return;
        }
        match blocking(self.name(), &self.0, crate::backup::scheduled).await {
            Some(Ok((to, removed))) => tracing::info!(
                "backup: wrote {}{}",
                to.display(),
                if removed.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; removed {} older archive(s) (backup.keep = {})",
                        removed.len(),
                        self.0.live().backup.keep
                    )
                }
            ),
            Some(Err(e)) => tracing::error!("backup failed: {e}"),
            None => {}
        }
    }
}

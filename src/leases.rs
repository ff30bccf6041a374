//! Tasks that run on exactly one node of a cluster, chosen by a lease in the shared
//! database: the lease decision, the period bookkeeping and the runner loop (the SQL is in
//! `db::leases`).
//!
//! A member runs a task when it holds the task's lease and the task's next run has come.
//! The lease is taken and renewed in one transaction and held for a TTL; the holder renews
//! it every third of the TTL, also while a run goes on, and releases it when it stops. A
//! holder that dies keeps it until the TTL passes; then another member takes it. The
//! transaction that records a run's result also moves the next run to the period's next
//! boundary, and only while the same process still holds the lease and the period is
//! still the one it ran: so a period is recorded once, and no second member starts a
//! period once it is recorded. A run interrupted halfway (the node died, or lost the lease
//! while it ran) records nothing: the period is still due and the task runs again, on
//! whichever member holds the lease then. Every task under a lease must therefore be safe
//! to run again from the start (a mirror re-reads the zone; a publish of content that is
//! already published publishes nothing). On an embedded database the node is alone and
//! takes every lease.
//!
//! Every time a lease is judged by (its expiry, when its task is due, the next boundary)
//! is the database's clock ([`crate::db::Db::now`]), never a member's own: with members'
//! clocks, a member whose clock ran an hour ahead would find every other holder's lease
//! expired and take it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::db::Db;

/// How long a lease holds without renewal by default (`server.lease_ttl`): after it, a
/// holder that died is replaced.
pub const LEASE_TTL: Duration = Duration::from_secs(30);

/// A running node that can hold leases: its node id and its data folder's instance token
/// (the one `members` records), so a second node started with the same id from another
/// data folder cannot take over a lease its live twin holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// The node id.
    pub node: String,
    /// Its data folder's instance token (`Hub::instance`, as `members` records it).
    pub instance: String,
}

/// One task's lease and schedule, as the database holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lease {
    /// The task's name.
    pub task: String,
    /// Who holds it (`None`: released).
    pub holder: Option<Holder>,
    /// Until when the holder holds it, unix milliseconds.
    pub expires_ms: i64,
    /// The task's period, as its holder last set it, milliseconds.
    pub period_ms: i64,
    /// When it runs next, unix milliseconds.
    pub next_run_ms: i64,
    /// When it last ran, unix milliseconds.
    pub last_run_ms: Option<i64>,
    /// Which node ran it last.
    pub last_node: Option<String>,
    /// Whether its last run succeeded.
    pub last_ok: Option<bool>,
    /// What its last run said (its summary, or its error).
    pub last_result: Option<String>,
    /// How many runs were recorded.
    pub runs: i64,
}

/// One recorded run of a task (`updhub cluster tasks --history`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRun {
    /// The task's name.
    pub task: String,
    /// The period it ran for: its due time, unix milliseconds.
    pub due_ms: i64,
    /// The node that ran it.
    pub node: String,
    /// That node's process (its data folder's instance token).
    pub instance: String,
    /// Whether it succeeded.
    pub ok: bool,
    /// Its summary, or its error.
    pub result: String,
    /// When it ended, unix milliseconds.
    pub at_ms: i64,
}

/// What a try to take a lease did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// It was free or expired: taken.
    Taken,
    /// We held it: renewed.
    Renewed,
    /// Another live process holds it.
    Refused,
}

/// What `me` gets at `now_ms` of the lease `row`: a lease held by another process (even one
/// with our node id) is refused until it expires; a released or expired one is taken.
pub fn decide(row: &Lease, me: &Holder, now_ms: i64) -> Outcome {
    match &row.holder {
        Some(h) if h == me => Outcome::Renewed,
        Some(_) if row.expires_ms > now_ms => Outcome::Refused,
        _ => Outcome::Taken,
    }
}

/// The first period boundary after `now_ms`: periods are aligned to multiples of
/// `period_ms` since the epoch, so every member computes the same boundaries.
pub fn next_boundary(now_ms: i64, period_ms: i64) -> i64 {
    let p = period_ms.max(1);
    (now_ms.div_euclid(p) + 1) * p
}

/// The next run of `row` once its holder's period is `period_ms` at `now_ms`: a changed
/// period (a setting changed) moves it to the new period's next boundary when that comes
/// sooner, so a period shortened from an hour to a minute does not wait out the hour.
pub fn rescheduled(row: &Lease, period_ms: i64, now_ms: i64) -> i64 {
    if row.period_ms == period_ms {
        row.next_run_ms
    } else {
        row.next_run_ms.min(next_boundary(now_ms, period_ms))
    }
}

/// Whether the lease holder runs the task now.
pub fn due(row: &Lease, now_ms: i64) -> bool {
    now_ms >= row.next_run_ms
}

/// One task as `updhub cluster tasks` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskStatus {
    /// The task's name.
    pub task: String,
    /// Its period, as its holder last set it, in seconds.
    pub period_secs: f64,
    /// The node that holds its lease, if any.
    pub holder: Option<String>,
    /// Whether that lease still holds (a holder that died keeps it until it expires).
    pub held: bool,
    /// Until when the lease holds.
    pub lease_expires: Option<DateTime<Utc>>,
    /// When it last ran, and on which node.
    pub last_run: Option<DateTime<Utc>>,
    /// The node that ran it last.
    pub last_node: Option<String>,
    /// Whether the last run succeeded.
    pub last_ok: Option<bool>,
    /// What the last run said.
    pub last_result: Option<String>,
    /// When it runs next (when a member holds the lease then).
    pub next_run: Option<DateTime<Utc>>,
    /// How many runs were recorded.
    pub runs: i64,
}

fn at(ms: i64) -> Option<DateTime<Utc>> {
    DateTime::<Utc>::from_timestamp_millis(ms)
}

impl TaskStatus {
    /// `lease` as it stands at `now_ms`.
    pub fn of(lease: &Lease, now_ms: i64) -> TaskStatus {
        TaskStatus {
            task: lease.task.clone(),
            period_secs: lease.period_ms as f64 / 1000.0,
            holder: lease.holder.as_ref().map(|h| h.node.clone()),
            held: lease.holder.is_some() && lease.expires_ms > now_ms,
            lease_expires: lease.holder.as_ref().and_then(|_| at(lease.expires_ms)),
            last_run: lease.last_run_ms.and_then(at),
            last_node: lease.last_node.clone(),
            last_ok: lease.last_ok,
            last_result: lease.last_result.clone(),
            next_run: at(lease.next_run_ms),
            runs: lease.runs,
        }
    }
}

/// A task that runs once a period on one member of the cluster.
pub trait ClusterTask: Send + 'static {
    /// Its name: the lease's key, shown by `updhub cluster tasks`.
    fn name(&self) -> &'static str;
    /// Its period; `None` while it is turned off (a live setting at 0).
    fn period(&self) -> Option<Duration>;
    /// One run, for the period that was due at `due_ms`: its summary, or its error. It
    /// must be safe to run again from the start (see the module's documentation).
    fn run(&mut self, due_ms: i64) -> impl Future<Output = Result<String, String>> + Send;
    /// When a failed run is tried again, at most: by default the next period.
    fn retry_within(&self) -> Option<Duration> {
        None
    }
}

/// What gives the runner its database: a node, or a bare database handle (tests).
pub trait HasDb: Send + Sync + 'static {
    /// The database.
    fn db(&self) -> &Db;
}

impl HasDb for Db {
    fn db(&self) -> &Db {
        self
    }
}

impl HasDb for crate::hub::Hub {
    fn db(&self) -> &Db {
        &self.db
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}

/// Take or renew the lease on the blocking pool: the outcome, the row and the database's
/// time it was judged at; `None` after logging a failure.
async fn acquire<D: HasDb>(
    owner: &Arc<D>,
    task: &'static str,
    me: &Holder,
    ttl: Duration,
    period: Duration,
) -> Option<(Outcome, Lease, i64)> {
    let (owner, me) = (owner.clone(), me.clone());
    let res = tokio::task::spawn_blocking(move || {
        owner.db().acquire_lease(task, &me, ms(ttl), ms(period))
    })
    .await;
    match res {
        Ok(Ok(v)) => Some(v),
        Ok(Err(e)) => {
            tracing::warn!(task, "lease: {e}");
            None
        }
        Err(e) => {
            tracing::error!(task, "lease: {e}");
            None
        }
    }
}

/// Run `task` under its lease for `me` until `stop` changes, holding the lease for `ttl`:
/// every tick (a third of the TTL, at most a tenth of the period) take or renew it, and
/// run the task when it is due; on stop, release it.
pub async fn run<D: HasDb>(
    owner: Arc<D>,
    me: Holder,
    ttl: Duration,
    mut task: impl ClusterTask,
    mut stop: watch::Receiver<bool>,
) {
    let name = task.name();
    tracing::debug!(task = name, ?ttl, "cluster task started");
    let renew_every = ttl / 3;
    let mut held = false;
    loop {
        let tick = match task.period() {
            Some(p) => renew_every.min(p / 10).max(Duration::from_millis(20)),
            None => renew_every,
        };
        if let Some(period) = task.period() {
            if let Some((outcome, row, now_ms)) = acquire(&owner, name, &me, ttl, period).await {
                if outcome == Outcome::Taken && row.last_node.as_deref() != Some(&me.node) {
                    tracing::info!(task = name, "this node took the task's lease");
                }
                held = outcome != Outcome::Refused;
                if held && due(&row, now_ms) {
                    run_once(&owner, &me, ttl, period, &mut task, row.next_run_ms).await;
                }
            }
        } else if held {
            // Turned off here (a setting at 0, or this node stepped down as publisher): the
            // lease goes back at once, so the member that runs it now need not wait out the TTL.
            release(&owner, name, &me).await;
            held = false;
        }
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = stop.changed() => break,
        }
    }
    if held {
        release(&owner, name, &me).await;
    }
}

/// Give the lease of `task` up on the blocking pool, logging a failure (it then expires).
async fn release<D: HasDb>(owner: &Arc<D>, task: &'static str, me: &Holder) {
    let (owner, me) = (owner.clone(), me.clone());
    match tokio::task::spawn_blocking(move || owner.db().release_lease(task, &me)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!(task, "releasing the lease: {e}"),
        Err(e) => tracing::warn!(task, "releasing the lease: {e}"),
    }
}

/// The lease that makes one member of a top-parent cluster its publisher: the member that
/// runs the scheduled mirror and publish, re-signing and the activation rule.
pub const PUBLISHER: &str = "publisher";

/// Hold the role lease `role` for `me` until `stop` changes: take or renew it every third
/// of `ttl` and tell `holds` whether this process has it (a renewal refused because
/// another member took it, by `cluster promote` or after this one stopped renewing, steps
/// down; a renewal that could not reach the database keeps the role until the lease this
/// process last wrote expires); on stop, release it so a standby takes it at once.
pub async fn hold_role<D: HasDb>(
    owner: Arc<D>,
    me: Holder,
    ttl: Duration,
    role: &'static str,
    holds: watch::Sender<bool>,
    mut stop: watch::Receiver<bool>,
) {
    let mut until: Option<tokio::time::Instant> = None;
    let mut first = true;
    loop {
        let asked = tokio::time::Instant::now();
        let now_held = match acquire(&owner, role, &me, ttl, ttl).await {
            Some((Outcome::Refused, row, _)) => {
                if *holds.borrow() {
                    tracing::warn!(
                        role,
                        "{} holds the role now: this node steps down and is a standby",
                        row.holder
                            .map_or_else(|| "another member".to_owned(), |h| h.node)
                    );
                }
                until = None;
                false
            }
            Some(_) => {
                if !*holds.borrow() {
                    tracing::info!(role, "this node holds the role now");
                }
                until = Some(asked + ttl);
                true
            }
            None => until.is_some_and(|u| tokio::time::Instant::now() < u),
        };
        if std::mem::take(&mut first) {
            // The first answer is always sent: `node::run` waits for it.
            holds.send_replace(now_held);
        } else {
            holds.send_if_modified(|h| std::mem::replace(h, now_held) != now_held);
        }
        tokio::select! {
            _ = tokio::time::sleep(ttl / 3) => {}
            _ = stop.changed() => break,
        }
    }
    holds.send_replace(false);
    if until.is_some() {
        release(&owner, role, &me).await;
    }
}

/// One run of the period due at `due_ms`, renewing the lease while it goes on, and its
/// result recorded with the next run.
async fn run_once<D: HasDb>(
    owner: &Arc<D>,
    me: &Holder,
    ttl: Duration,
    period: Duration,
    task: &mut impl ClusterTask,
    due_ms: i64,
) {
    let name = task.name();
    let retry = task.retry_within();
    let result = {
        let body = task.run(due_ms);
        tokio::pin!(body);
        loop {
            tokio::select! {
                r = &mut body => break r,
                _ = tokio::time::sleep(ttl / 3) => {
                    if let Some((Outcome::Refused, row, _)) = acquire(owner, name, me, ttl, period).await {
                        tracing::warn!(
                            task = name,
                            "lost the task's lease while running (to {:?}): this run's result will not be recorded, the period runs again on the holder",
                            row.holder.map(|h| h.node)
                        );
                    }
                }
            }
        }
    };
    match &result {
        Ok(s) => tracing::debug!(task = name, "ran: {s}"),
        Err(e) => tracing::error!(task = name, "failed: {e}"),
    }
    let (owner, me, r) = (owner.clone(), me.clone(), result);
    let recorded = tokio::task::spawn_blocking(move || {
        owner
            .db()
            .finish_lease_run(name, &me, due_ms, &r, ms(period), retry.map(ms))
    })
    .await;
    match recorded {
        Ok(Ok(true)) => {}
        Ok(Ok(false)) => tracing::warn!(
            task = name,
            "this run was not recorded: another member took the lease meanwhile and runs the period"
        ),
        Ok(Err(e)) => tracing::warn!(task = name, "recording the run: {e}; it runs again"),
        Err(e) => tracing::warn!(task = name, "recording the run: {e}; it runs again"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me(node: &str, instance: &str) -> Holder {
        Holder {
            node: node.into(),
            instance: instance.into(),
        }
    }

    fn row(holder: Option<Holder>, expires_ms: i64, next_run_ms: i64) -> Lease {
        Lease {
            task: "t".into(),
            holder,
            expires_ms,
            period_ms: 1000,
            next_run_ms,
            last_run_ms: None,
            last_node: None,
            last_ok: None,
            last_result: None,
            runs: 0,
        }
    }

    #[test]
    fn a_lease_is_taken_when_free_or_expired_and_refused_while_another_process_holds_it() {
        let (a, b, a_twin) = (me("n1", "x"), me("n2", "y"), me("n1", "z"));
        assert_eq!(decide(&row(None, 0, 0), &a, 1_000), Outcome::Taken);
        let held = row(Some(a.clone()), 31_000, 0);
        assert_eq!(decide(&held, &a, 30_999), Outcome::Renewed);
        assert_eq!(decide(&held, &a, 99_999), Outcome::Renewed);
        assert_eq!(decide(&held, &b, 30_999), Outcome::Refused);
        // The same node id in another process does not steal from its live twin.
        assert_eq!(decide(&held, &a_twin, 30_999), Outcome::Refused);
        assert_eq!(decide(&held, &b, 31_000), Outcome::Taken);
        assert_eq!(decide(&held, &a_twin, 31_000), Outcome::Taken);
    }

    #[test]
    fn periods_end_on_boundaries_every_member_computes_alike() {
        assert_eq!(next_boundary(0, 1000), 1000);
        assert_eq!(next_boundary(999, 1000), 1000);
        assert_eq!(next_boundary(1000, 1000), 2000);
        assert_eq!(next_boundary(1_700_000_000_123, 60_000), 1_700_000_040_000);
        assert_eq!(
            next_boundary(5, 0),
            6,
            "a zero period does not divide by zero"
        );
        let r = row(None, 0, 2000);
        assert!(!due(&r, 1999));
        assert!(due(&r, 2000));
        // A period shortened (from 1 s) takes effect at once; a longer one after the next run.
        let hourly = row(None, 0, 3_600_000);
        assert_eq!(rescheduled(&hourly, 1000, 1500), 3_600_000, "same period");
        let mut r = hourly.clone();
        r.period_ms = 3_600_000;
        assert_eq!(rescheduled(&r, 1000, 1500), 2000);
        assert_eq!(rescheduled(&row(None, 0, 2000), 60_000, 1500), 2000);
    }
}

//! The cluster's task leases (see [`crate::leases`]): one row a task, who holds it until
//! when, and its period bookkeeping. Each change is one transaction, and each judges the
//! time by the database's clock ([`Db::now`]), never by the calling member's: a member
//! whose clock runs ahead would take every lease before it expired.

use super::sql::{args, Conn, Row, SqlError};
use super::{Db, DbError};
use crate::leases::{decide, next_boundary, rescheduled, Holder, Lease, Outcome, TaskRun};

const COLUMNS: &str = "task, holder_node, holder_instance, expires_ms, period_ms, next_run_ms, last_run_ms, last_node, last_ok, last_result, runs";

fn lease(r: &Row) -> Result<Lease, SqlError> {
    let holder = match (r.get::<Option<String>>(1)?, r.get::<Option<String>>(2)?) {
        (Some(node), Some(instance)) => Some(Holder { node, instance }),
        _ => None,
    };
    Ok(Lease {
        task: r.get(0)?,
        holder,
        expires_ms: r.get(3)?,
        period_ms: r.get(4)?,
        next_run_ms: r.get(5)?,
        last_run_ms: r.get(6)?,
        last_node: r.get(7)?,
        last_ok: r.get::<Option<i64>>(8)?.map(|v| v != 0),
        last_result: r.get(9)?,
        runs: r.get(10)?,
    })
}

impl Db {
    /// Take, renew or leave the lease of `task` for `me` now by the database's clock,
    /// holding it for `ttl_ms` when taken or renewed, in one transaction; a task without a
    /// row gets one, due at once. Returns the outcome, the row as it now is, and the
    /// database's time it was judged at (unix milliseconds: whether the task is due is
    /// judged by it too).
    ///
    /// # Errors
    /// Database errors or a damaged row.
    pub fn acquire_lease(
        &self,
        task: &str,
        me: &Holder,
        ttl_ms: i64,
        period_ms: i64,
    ) -> Result<(Outcome, Lease, i64), DbError> {
        let cluster = self.cluster.as_str();
        self.write(|c| {
            let now_ms = self.clock_ms(c)?;
            let mut row = locked_row(c, cluster, task, period_ms, now_ms)?;
            let outcome = decide(&row, me, now_ms);
            if outcome != Outcome::Refused {
                let next = rescheduled(&row, period_ms, now_ms);
                c.exec(
                    "UPDATE leases SET holder_node=$3, holder_instance=$4, expires_ms=$5, period_ms=$6,
                       next_run_ms=$7
                     WHERE cluster_id=$1 AND task=$2",
                    args![cluster, task, me.node, me.instance, now_ms + ttl_ms, period_ms, next],
                )?;
                row.holder = Some(me.clone());
                row.expires_ms = now_ms + ttl_ms;
                row.period_ms = period_ms;
                row.next_run_ms = next;
            }
            Ok((outcome, row, now_ms))
        })
    }

    /// Record the run of `task` that was due at `due_ms` and ended now (by the database's
    /// clock), and move its next run to the next boundary of `period_ms` (after a failure,
    /// within `retry_ms` if given), only if `me` still holds the lease and nobody recorded
    /// that period meanwhile. Returns whether it was recorded.
    ///
    /// # Errors
    /// Database errors.
    pub fn finish_lease_run(
        &self,
        task: &str,
        me: &Holder,
        due_ms: i64,
        result: &Result<String, String>,
        period_ms: i64,
        retry_ms: Option<i64>,
    ) -> Result<bool, DbError> {
        let (ok, text) = match result {
            Ok(t) => (1i64, t),
            Err(t) => (0i64, t),
        };
        let cluster = self.cluster.as_str();
        self.write(|c| {
            let now_ms = self.clock_ms(c)?;
            let mut next_ms = next_boundary(now_ms, period_ms);
            if let (0, Some(r)) = (ok, retry_ms) {
                next_ms = next_ms.min(now_ms + r);
            }
            let recorded = c.exec(
                "UPDATE leases SET last_run_ms=$6, last_node=$3, last_ok=$7, last_result=$8,
                   next_run_ms=$9, runs=runs+1
                 WHERE cluster_id=$1 AND task=$2 AND holder_node=$3 AND holder_instance=$4
                   AND next_run_ms=$5",
                args![
                    cluster,
                    task,
                    me.node,
                    me.instance,
                    due_ms,
                    now_ms,
                    ok,
                    text,
                    next_ms
                ],
            )? > 0;
            if recorded {
                // The run's history row, in the same transaction: its key is the period, so
                // a second record of one period fails and rolls the first back.
                c.exec(
                    "INSERT INTO task_runs(cluster_id, task, due_ms, node_id, instance, ok, result, at_ms)
                     VALUES ($1,$2,$3,$4,$5,$6,$7,$8)",
                    args![cluster, task, due_ms, me.node, me.instance, ok, text, now_ms],
                )?;
            }
            Ok(recorded)
        })
    }

    /// The recorded runs of the cluster's tasks (of `task` only, if given), newest first,
    /// at most `limit`.
    ///
    /// # Errors
    /// Database errors or damaged rows.
    pub fn task_runs(&self, task: Option<&str>, limit: i64) -> Result<Vec<TaskRun>, DbError> {
        let filter = if task.is_some() { "AND task=$3" } else { "" };
        let sql = format!(
            "SELECT task, due_ms, node_id, instance, ok, result, at_ms FROM task_runs
             WHERE cluster_id=$1 {filter} ORDER BY due_ms DESC, task LIMIT $2"
        );
        let cluster = self.cluster.as_str();
        self.read(|c| {
            let map = |r: &Row| {
                Ok(TaskRun {
                    task: r.get(0)?,
                    due_ms: r.get(1)?,
                    node: r.get(2)?,
                    instance: r.get(3)?,
                    ok: r.get::<i64>(4)? != 0,
                    result: r.get(5)?,
                    at_ms: r.get(6)?,
                })
            };
            match task {
                Some(t) => c.map_rows(&sql, args![cluster, limit, t], map),
                None => c.map_rows(&sql, args![cluster, limit], map),
            }
        })
    }

    /// Give up the lease of `task` if `me` holds it (a node that stops), so another member
    /// takes it at once instead of after its expiry.
    ///
    /// # Errors
    /// Database errors.
    pub fn release_lease(&self, task: &str, me: &Holder) -> Result<bool, DbError> {
        self.write(|c| {
            c.exec(
                "UPDATE leases SET holder_node=NULL, holder_instance=NULL, expires_ms=0
                 WHERE cluster_id=$1 AND task=$2 AND holder_node=$3 AND holder_instance=$4",
                args![self.cluster.as_str(), task, me.node, me.instance],
            )
            .map(|n| n > 0)
        })
    }

    /// Take the lease of `task` for `me` now, whoever holds it (`cluster promote`), held
    /// for `ttl_ms` from now by the database's clock, in one transaction. Returns the
    /// process that held it live before, if another one did: it finds out at its next
    /// renewal and steps down.
    ///
    /// # Errors
    /// Database errors.
    pub fn take_lease(
        &self,
        task: &str,
        me: &Holder,
        ttl_ms: i64,
    ) -> Result<Option<Holder>, DbError> {
        let cluster = self.cluster.as_str();
        self.write(|c| {
            let now_ms = self.clock_ms(c)?;
            let row = locked_row(c, cluster, task, ttl_ms, now_ms)?;
            let before = row.holder.filter(|_| row.expires_ms > now_ms);
            c.exec(
                "UPDATE leases SET holder_node=$3, holder_instance=$4, expires_ms=$5
                 WHERE cluster_id=$1 AND task=$2",
                args![cluster, task, me.node, me.instance, now_ms + ttl_ms],
            )?;
            Ok(before.filter(|h| h != me))
        })
    }

    /// The cluster's task leases, by task (their times are by the database's clock: judge
    /// them by [`Db::now`]).
    ///
    /// # Errors
    /// Database errors or damaged rows.
    pub fn leases(&self) -> Result<Vec<Lease>, DbError> {
        self.read(|c| {
            c.map_rows(
                &format!("SELECT {COLUMNS} FROM leases WHERE cluster_id=$1 ORDER BY task"),
                args![self.cluster.as_str()],
                lease,
            )
        })
    }
}

/// Delete the cluster's task runs that ended before `before_ms` (part of the report purge's
/// transaction); returns how many.
///
/// # Errors
/// The statement failed.
pub(super) fn purge_runs(c: &Conn<'_>, cluster: &str, before_ms: i64) -> Result<u64, SqlError> {
    c.exec(
        "DELETE FROM task_runs WHERE cluster_id=$1 AND at_ms < $2",
        args![cluster, before_ms],
    )
}

/// The row of `task`, locked until the transaction ends (on PostgreSQL; SQLite's write
/// transactions are serialized anyway); `None` if it has none.
fn locked(c: &Conn<'_>, cluster: &str, task: &str) -> Result<Option<Lease>, SqlError> {
    let lock = if c.is_postgres() { " FOR UPDATE" } else { "" };
    c.row(
        &format!("SELECT {COLUMNS} FROM leases WHERE cluster_id=$1 AND task=$2{lock}"),
        args![cluster, task],
    )?
    .map(|r| lease(&r))
    .transpose()
}

/// The row of `task`, created free and due at once if it has none, and locked.
fn locked_row(
    c: &Conn<'_>,
    cluster: &str,
    task: &str,
    period_ms: i64,
    now_ms: i64,
) -> Result<Lease, SqlError> {
    // The row first, so that two members starting at once lock the same row below instead
    // of racing to insert it.
    c.exec(
        "INSERT INTO leases(cluster_id, task, expires_ms, period_ms, next_run_ms)
         VALUES ($1,$2,0,$3,$4) ON CONFLICT(cluster_id, task) DO NOTHING",
        args![cluster, task, period_ms, now_ms],
    )?;
    locked(c, cluster, task)?.ok_or_else(|| SqlError::Damaged(format!("lease {task} vanished")))
}

/// Who holds the lease of `task` live at `now_ms` (the database's time: `Db::clock_ms`;
/// `None`: no row, released or expired), read inside a transaction with the row locked
/// until it ends, so it cannot change hands meanwhile.
pub(super) fn live_holder(
    c: &Conn<'_>,
    cluster: &str,
    task: &str,
    now_ms: i64,
) -> Result<Option<Holder>, SqlError> {
    Ok(locked(c, cluster, task)?
        .filter(|l| l.expires_ms > now_ms)
        .and_then(|l| l.holder))
}

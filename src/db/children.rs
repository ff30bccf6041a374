//! Children: the last report of each child of this node, and whether a server id is known.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::sql::args;
use super::staging::ChildStage;
use super::{Db, DbError};
use crate::id::Root;

/// A child's last report, as its parent keeps it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct ChildReport {
    /// The child's id (from its client certificate).
    pub child_id: String,
    /// Its current root.
    pub root: Option<Root>,
    /// Its current version number.
    pub number: Option<u64>,
    /// Its updhub version.
    pub hub_version: String,
    /// Digest of its must-be-the-same settings.
    pub config_digest: String,
    /// The ids it syncs through, nearest first.
    pub chain: Vec<String>,
    /// When it reported.
    pub reported_at: DateTime<Utc>,
}

/// What [`Db::purge_reports`] deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PurgedReports {
    /// Children's last reports.
    pub children: u64,
    /// Grant receivers' reports.
    pub grant_reports: u64,
    /// Recorded runs of the cluster's tasks.
    pub task_runs: u64,
}

impl Db {
    /// Keep what `receiver` (by its verified identity) reports of the grants it holds from
    /// this cluster, for reconciliation.
    ///
    /// # Errors
    /// Database errors.
    pub fn record_grant_reports(
        &self,
        receiver: &str,
        reports: &[crate::license::ledger::ReceiverCount],
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), DbError> {
        let cluster = self.cluster.as_str();
        self.write(|c| super::grants::record_reports(c, cluster, receiver, reports, now))
    }

    /// Whether `id` is a server this one knows: a child that has reported here, or a node
    /// with a live link to this cluster (a child or a peer).
    ///
    /// # Errors
    /// Database errors.
    pub fn knows_server(&self, id: &str) -> Result<bool, DbError> {
        self.read(|c| {
            Ok(c.row(
                "SELECT 1 FROM children WHERE server_id=$1 AND child_id=$2
                 UNION ALL
                 SELECT 1 FROM links WHERE cluster_id=$3 AND peer_id=$2 AND removed_at IS NULL
                 LIMIT 1",
                args![self.server.as_str(), id, self.cluster.as_str()],
            )?
            .is_some())
        })
    }

    /// Forget the reports older than `before`, in one transaction: the children that last
    /// reported before it (to any member), the grant receivers' reports, and the cluster's
    /// task runs. A child that reports again is known again from its report. Returns what
    /// it deleted.
    ///
    /// # Errors
    /// Database errors.
    pub fn purge_reports(&self, before: DateTime<Utc>) -> Result<PurgedReports, DbError> {
        let cluster = self.cluster.as_str();
        self.write(|c| {
            Ok(PurgedReports {
                // One database is one cluster: every row is one of its members' children.
                children: c.exec("DELETE FROM children WHERE reported_at < $1", args![before])?,
                grant_reports: super::grants::purge_reports(c, cluster, before)?,
                task_runs: super::leases::purge_runs(c, cluster, before.timestamp_millis())?,
            })
        })
    }

    /// Store a child's report.
    ///
    /// # Errors
    /// Database errors.
    pub fn record_report(&self, r: &ChildReport) -> Result<(), DbError> {
        // A report that says nothing of staging: a child that does not stage.
        self.record_report_staged(r, &ChildStage::default())
    }

    /// Every child's last report.
    ///
    /// # Errors
    /// Database errors or damaged rows.
    pub fn children(&self) -> Result<Vec<ChildReport>, DbError> {
        Ok(self
            .child_rows(Some(self.server.as_str()))?
            .into_iter()
            .map(|(r, _)| r)
            .collect())
    }

    /// Every child of the cluster (whichever member it reported to: its latest report)
    /// with what it says of the staged version.
    ///
    /// # Errors
    /// Database errors or damaged rows.
    pub fn cluster_children(&self) -> Result<Vec<(ChildReport, ChildStage)>, DbError> {
        // One database is one cluster: every row of `children` is one of its members'.
        let mut rows = self.child_rows(None)?;
        rows.dedup_by(|later, first| later.0.child_id == first.0.child_id);
        Ok(rows)
    }

    /// The rows of `children` (those of the node `server` if given), by child and newest
    /// report first.
    fn child_rows(&self, server: Option<&str>) -> Result<Vec<(ChildReport, ChildStage)>, DbError> {
        type Row = (
            (String, Option<String>, Option<u64>, String, String, String),
            DateTime<Utc>,
            Option<u64>,
            Option<String>,
            Option<String>,
            bool,
        );
        let rows: Vec<Row> = self.read(|c| {
            let filter = if server.is_some() {
                "WHERE server_id=$1"
            } else {
                ""
            };
            let (one, none) = (args![server.unwrap_or_default()], args![]);
            c.map_rows(
                &format!(
                    "SELECT child_id, root, number, hub_version, config_digest, chain, reported_at,
                            staged_number, staged_root, stage_error, two_phase
                     FROM children {filter} ORDER BY child_id, reported_at DESC"
                ),
                if filter.is_empty() { none } else { one },
                |r| {
                    Ok((
                        (
                            r.get(0)?,
                            r.get(1)?,
                            r.get(2)?,
                            r.get(3)?,
                            r.get(4)?,
                            r.get(5)?,
                        ),
                        r.get(6)?,
                        r.get(7)?,
                        r.get(8)?,
                        r.get(9)?,
                        r.get(10)?,
                    ))
                },
            )
        })?;
        let root = |r: Option<String>| {
            r.map(|r| r.parse::<Root>())
                .transpose()
                .map_err(|e| self.damaged("children.root", e))
        };
        rows.into_iter()
            .map(
                |(
                    (child_id, r, number, hub_version, config_digest, chain),
                    at,
                    sn,
                    sr,
                    err,
                    tp,
                )| {
                    Ok((
                        ChildReport {
                            child_id,
                            root: root(r)?,
                            number,
                            hub_version,
                            config_digest,
                            chain: serde_json::from_str(&chain)
                                .map_err(|e| self.damaged("children.chain", e))?,
                            reported_at: at,
                        },
                        ChildStage {
                            two_phase: tp,
                            staged_number: sn,
                            staged_root: root(sr)?,
                            stage_error: err,
                        },
                    ))
                },
            )
            .collect()
    }
}

//! Children: the last report of each child of this node, and whether a server id is known.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::sql::args;
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

    /// Store a child's report.
    ///
    /// # Errors
    /// Database errors.
    pub fn record_report(&self, r: &ChildReport) -> Result<(), DbError> {
        let chain = serde_json::to_string(&r.chain).expect("strings serialize");
        self.write(|c| {
            c.exec(
                "INSERT INTO children(server_id, child_id, root, number, hub_version, config_digest, chain, reported_at)
                 VALUES ($1,$2,$3,$4,$5,$6,$7,$8)
                 ON CONFLICT(server_id, child_id) DO UPDATE SET root=excluded.root, number=excluded.number,
                   hub_version=excluded.hub_version, config_digest=excluded.config_digest,
                   chain=excluded.chain, reported_at=excluded.reported_at",
                args![
                    self.server.as_str(),
                    r.child_id,
                    r.root.map(|x| x.to_string()),
                    r.number,
                    r.hub_version,
                    r.config_digest,
                    chain,
                    r.reported_at
                ],
            )
            .map(drop)
        })
    }

    /// Every child's last report.
    ///
    /// # Errors
    /// Database errors or damaged rows.
    pub fn children(&self) -> Result<Vec<ChildReport>, DbError> {
        type Row = (
            String,
            Option<String>,
            Option<u64>,
            String,
            String,
            String,
            DateTime<Utc>,
        );
        let rows: Vec<Row> = self.read(|c| {
            c.map_rows(
                "SELECT child_id, root, number, hub_version, config_digest, chain, reported_at
                 FROM children WHERE server_id=$1 ORDER BY child_id",
                args![self.server.as_str()],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                    ))
                },
            )
        })?;
        rows.into_iter()
            .map(
                |(child_id, root, number, hub_version, config_digest, chain, at)| {
                    Ok(ChildReport {
                        child_id,
                        root: root
                            .map(|r| r.parse())
                            .transpose()
                            .map_err(|e| self.damaged("children.root", e))?,
                        number,
                        hub_version,
                        config_digest,
                        chain: serde_json::from_str(&chain)
                            .map_err(|e| self.damaged("children.chain", e))?,
                        reported_at: at,
                    })
                },
            )
            .collect()
    }
}

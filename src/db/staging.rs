//! The two-phase switch's rows: the cluster's staged version beside its active one, the
//! version each node holds staged, what each child says it staged, and activation.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::children::ChildReport;
use super::sql::{args, Conn, SqlError};
use super::versions::doc;
use super::{Db, DbError};
use crate::repo::Published;

/// What a child says of the staged version in its report, as the parent keeps it.
pub type ChildStage = crate::proto::StageReport;

/// The cluster's staged version, as its row holds it.
#[derive(Debug, Clone, Serialize)]
pub struct Staged {
    /// The signed document.
    pub published: Published,
    /// When it was staged (the stage timeout counts from here).
    pub staged_at: DateTime<Utc>,
    /// The validity span the admin chose when publishing it.
    pub validity: std::time::Duration,
}

/// Write `p` as the cluster's staged version, held by `node` (whose store holds all of it).
pub(super) fn put_staged(
    tx: &Conn<'_>,
    cluster: &str,
    node: &str,
    p: &Published,
    validity: std::time::Duration,
    now: DateTime<Utc>,
) -> Result<(), SqlError> {
    tx.exec(
        "INSERT INTO cluster_staged(cluster_id, number, root, expires, document, validity, staged_at, set_by)
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8)
         ON CONFLICT(cluster_id) DO UPDATE SET number=excluded.number, root=excluded.root,
           expires=excluded.expires, document=excluded.document, validity=excluded.validity,
           staged_at=CASE WHEN cluster_staged.number = excluded.number
                          THEN cluster_staged.staged_at ELSE excluded.staged_at END,
           set_by=excluded.set_by",
        args![
            cluster,
            p.number,
            p.root.to_string(),
            p.expires,
            doc(p),
            validity.as_secs(),
            now,
            node
        ],
    )?;
    put_node_staged(tx, node, p, now)
}

fn put_node_staged(
    tx: &Conn<'_>,
    node: &str,
    p: &Published,
    now: DateTime<Utc>,
) -> Result<(), SqlError> {
    tx.exec(
        "INSERT INTO staged(server_id, number, root, document, updated) VALUES ($1,$2,$3,$4,$5)
         ON CONFLICT(server_id) DO UPDATE SET number=excluded.number, root=excluded.root,
           document=excluded.document, updated=excluded.updated",
        args![node, p.number, p.root.to_string(), doc(p), now],
    )
    .map(drop)
}

impl Db {
    /// The cluster's staged version, if one waits for activation.
    ///
    /// # Errors
    /// Database errors or a damaged document.
    pub fn cluster_staged(&self) -> Result<Option<Staged>, DbError> {
        let row: Option<(String, DateTime<Utc>, u64)> = self.read(|c| {
            c.row(
                "SELECT document, staged_at, validity FROM cluster_staged WHERE cluster_id=$1",
                args![self.cluster.as_str()],
            )?
            .map(|r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .transpose()
        })?;
        row.map(|(d, staged_at, validity)| {
            Ok(Staged {
                published: Published::parse(d.as_bytes(), "the database")
                    .map_err(|e| self.damaged("cluster_staged", e))?,
                staged_at,
                validity: std::time::Duration::from_secs(validity),
            })
        })
        .transpose()
    }

    /// The version this node holds staged in full beside its active one (it serves it to
    /// its children as their staged version).
    ///
    /// # Errors
    /// Database errors or a damaged document.
    pub fn staged(&self) -> Result<Option<Published>, DbError> {
        let d: Option<String> = self.read(|c| {
            c.value(
                "SELECT document FROM staged WHERE server_id=$1",
                args![self.server.as_str()],
            )
        })?;
        d.map(|d| {
            Published::parse(d.as_bytes(), "the database").map_err(|e| self.damaged("staged", e))
        })
        .transpose()
    }

    /// A fresher signature of the cluster's staged version (it waited long enough for half
    /// its validity to pass): the cluster's row and this node's take it where they name the
    /// same version with an earlier expiry. Returns whether the cluster's row changed.
    ///
    /// # Errors
    /// Database errors.
    pub fn renew_staged(&self, p: &Published, now: DateTime<Utc>) -> Result<bool, DbError> {
        self.sign_staged_again(p, now, " AND expires < $4")
    }

    /// A new signature of the staged version after the publisher key rotated: taken
    /// whatever its expiry (the old signature is one the children will refuse).
    ///
    /// # Errors
    /// Database errors.
    pub fn renew_staged_any(&self, p: &Published, now: DateTime<Utc>) -> Result<bool, DbError> {
        self.sign_staged_again(p, now, "")
    }

    /// Put `p`'s signature on the staged rows naming its version (`and`: a further
    /// condition on the cluster's row); whether the cluster's row changed.
    fn sign_staged_again(
        &self,
        p: &Published,
        now: DateTime<Utc>,
        and: &str,
    ) -> Result<bool, DbError> {
        let (node, cluster) = (self.server.as_str(), self.cluster.as_str());
        self.write(|tx| {
            let root = p.root.to_string();
            let changed = tx.exec(
                &format!(
                    "UPDATE cluster_staged SET expires=$4, document=$5, set_by=$6
                     WHERE cluster_id=$1 AND number=$2 AND root=$3{and}"
                ),
                args![cluster, p.number, root, p.expires, doc(p), node],
            )?;
            tx.exec(
                "UPDATE staged SET document=$4, updated=$5
                 WHERE server_id=$1 AND number=$2 AND root=$3",
                args![node, p.number, root, doc(p), now],
            )?;
            Ok(changed > 0)
        })
    }

    /// This node now holds the verified version `p` in full beside its active one (a child
    /// staging what its parent staged). Ignored unless `p` is above the version it serves.
    ///
    /// # Errors
    /// Database errors.
    pub fn set_staged(&self, p: &Published, now: DateTime<Utc>) -> Result<(), DbError> {
        let node = self.server.as_str();
        self.write(|tx| {
            let held: u64 = tx
                .value(
                    "SELECT coalesce(max(number), 0) FROM published WHERE server_id=$1",
                    args![node],
                )?
                .unwrap_or(0);
            if p.number > held {
                put_node_staged(tx, node, p, now)?;
            }
            Ok(())
        })
    }

    /// Activate the cluster's staged version `number` (any staged one with `None`): in one
    /// transaction it becomes the cluster's active version, and this node serves it if it
    /// holds it staged (other members switch when their catch-up finds it whole in their
    /// store). Returns the version activated; `None` when nothing (or another number) is
    /// staged, e.g. another member activated it first.
    ///
    /// # Errors
    /// Database errors.
    pub fn activate(
        &self,
        number: Option<u64>,
        now: DateTime<Utc>,
    ) -> Result<Option<Published>, DbError> {
        let (node, cluster) = (self.server.as_str(), self.cluster.as_str());
        let found = self.write(|tx| {
            let row: Option<(u64, String, u64)> = tx
                .row(
                    "SELECT number, document, validity FROM cluster_staged WHERE cluster_id=$1",
                    args![cluster],
                )?
                .map(|r| Ok::<_, SqlError>((r.get(0)?, r.get(1)?, r.get(2)?)))
                .transpose()?;
            let Some((n, document, validity)) = row else {
                return Ok(None);
            };
            if number.is_some_and(|want| want != n) {
                return Ok(None);
            }
            tx.exec(
                "INSERT INTO cluster_published(cluster_id, number, root, expires, document, updated, validity, set_by)
                 SELECT cluster_id, number, root, expires, document, $2, $3, $4
                   FROM cluster_staged WHERE cluster_id=$1
                 ON CONFLICT(cluster_id) DO UPDATE SET number=excluded.number, root=excluded.root,
                   expires=excluded.expires, document=excluded.document, updated=excluded.updated,
                   validity=excluded.validity, set_by=excluded.set_by",
                args![cluster, now, validity, node],
            )?;
            tx.exec(
                "DELETE FROM cluster_staged WHERE cluster_id=$1",
                args![cluster],
            )?;
            let mine: Option<String> = tx.value(
                "SELECT document FROM staged WHERE server_id=$1 AND number=$2",
                args![node, n],
            )?;
            Ok(Some((document, mine.is_some())))
        })?;
        let Some((document, mine)) = found else {
            return Ok(None);
        };
        let p = Published::parse(document.as_bytes(), "the database")
            .map_err(|e| self.damaged("cluster_staged", e))?;
        if mine {
            // Its store holds it (it staged it): it serves it at once.
            self.write(|tx| Self::hold(tx, node, &p, now))?;
        }
        Ok(Some(p))
    }

    /// Store a child's report and what it says of the staged version, in one transaction.
    ///
    /// # Errors
    /// Database errors.
    pub fn record_report_staged(&self, r: &ChildReport, s: &ChildStage) -> Result<(), DbError> {
        let chain = serde_json::to_string(&r.chain).expect("strings serialize");
        self.write(|c| {
            c.exec(
                "INSERT INTO children(server_id, child_id, root, number, hub_version, config_digest, chain, reported_at,
                                      staged_number, staged_root, stage_error, two_phase)
                 VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)
                 ON CONFLICT(server_id, child_id) DO UPDATE SET root=excluded.root, number=excluded.number,
                   hub_version=excluded.hub_version, config_digest=excluded.config_digest,
                   chain=excluded.chain, reported_at=excluded.reported_at,
                   staged_number=excluded.staged_number, staged_root=excluded.staged_root,
                   stage_error=excluded.stage_error, two_phase=excluded.two_phase",
                args![
                    self.server.as_str(),
                    r.child_id,
                    r.root.map(|x| x.to_string()),
                    r.number,
                    r.hub_version,
                    r.config_digest,
                    chain,
                    r.reported_at,
                    s.staged_number,
                    s.staged_root.map(|x| x.to_string()),
                    s.stage_error,
                    s.two_phase
                ],
            )
            .map(drop)
        })
    }
}

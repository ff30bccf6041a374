//! Versions: the last mirror run (per node: it names blobs in the node's own store), the
//! cluster's versions and its published (on a child cluster, accepted) pointer, the version
//! each node holds in full and serves, and a child's last sync attempt.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::sql::{args, Conn, SqlError};
use super::{Db, DbError};
use crate::id::Root;
use crate::repo::Published;

/// One repository version row.
#[derive(Debug, Clone, Serialize)]
pub struct VersionRow {
    /// Its number.
    pub number: u64,
    /// Its root.
    pub root: Root,
    /// Files in it.
    pub files: u64,
    /// Uncompressed bytes.
    pub bytes: u64,
    /// When it was created here.
    pub created: DateTime<Utc>,
}

/// A child's last sync attempt.
#[derive(Debug, Clone, Serialize)]
pub struct SyncState {
    /// The parent URL.
    pub parent: String,
    /// Last attempt.
    pub last_try: DateTime<Utc>,
    /// Last success.
    pub last_ok: Option<DateTime<Utc>>,
    /// The last error, cleared by a success.
    pub last_error: Option<String>,
}

/// The last mirror run.
#[derive(Debug, Clone, Serialize)]
pub struct Mirrored {
    /// The manifest root.
    pub root: Root,
    /// The zone it came from.
    pub zone: String,
    /// Files.
    pub files: u64,
    /// Bytes.
    pub bytes: u64,
    /// When the mirrored content last changed.
    pub at: DateTime<Utc>,
    /// When the zone was last read successfully, changed or not.
    pub checked_at: DateTime<Utc>,
    /// Why the last scheduled run failed, if it did.
    pub check_error: Option<String>,
}

/// The advisory lock that serializes publishing on PostgreSQL ("updpub" in ASCII).
const PUBLISH_LOCK: i64 = 0x7570_6470_7562;

pub(super) fn doc(p: &Published) -> String {
    serde_json::to_string(p).expect("published serializes")
}

impl Db {
    /// Record a completed mirror run.
    ///
    /// # Errors
    /// Database errors.
    pub fn set_mirrored(
        &self,
        root: Root,
        zone: &str,
        files: u64,
        bytes: u64,
        now: DateTime<Utc>,
    ) -> Result<(), DbError> {
        let id = self.server.as_str();
        self.write(|c| {
            c.exec(
                "INSERT INTO mirrored(server_id, root, zone, files, bytes, at, checked_at, check_error)
                 VALUES ($1,$2,$3,$4,$5,$6,$6,NULL)
                 ON CONFLICT(server_id) DO UPDATE SET root=excluded.root, zone=excluded.zone,
                   files=excluded.files, bytes=excluded.bytes, at=excluded.at,
                   checked_at=excluded.checked_at, check_error=NULL",
                args![id, root.to_string(), zone, files, bytes, now],
            )
            .map(drop)
        })
    }

    /// Record a read of the zone that changed nothing (`error` none), or a failed scheduled
    /// run (`error`: why; the time of the last good read stays). A node that never mirrored
    /// has no row, and nothing is recorded.
    ///
    /// # Errors
    /// Database errors.
    pub fn set_checked(&self, now: DateTime<Utc>, error: Option<&str>) -> Result<(), DbError> {
        let id = self.server.as_str();
        self.write(|c| {
            match error {
                None => c.exec(
                    "UPDATE mirrored SET checked_at=$2, check_error=NULL WHERE server_id=$1",
                    args![id, now],
                ),
                Some(e) => c.exec(
                    "UPDATE mirrored SET check_error=$2 WHERE server_id=$1",
                    args![id, e],
                ),
            }
            .map(drop)
        })
    }

    /// The last completed mirror run.
    ///
    /// # Errors
    /// Database errors or a damaged row.
    pub fn mirrored(&self) -> Result<Option<Mirrored>, DbError> {
        let row = self.read(|c| {
            c.row(
                "SELECT root, zone, files, bytes, at, checked_at, check_error FROM mirrored WHERE server_id=$1",
                args![self.server.as_str()],
            )?
            .map(|r| {
                Ok((
                    (r.get::<String>(0)?, r.get(1)?, r.get(2)?, r.get(3)?),
                    (r.get::<DateTime<Utc>>(4)?, r.get::<Option<DateTime<Utc>>>(5)?, r.get(6)?),
                ))
            })
            .transpose()
        })?;
        row.map(
            |((root, zone, files, bytes), (at, checked_at, check_error))| {
                Ok(Mirrored {
                    root: root.parse().map_err(|e| self.damaged("mirrored.root", e))?,
                    zone,
                    files,
                    bytes,
                    at,
                    // Rows from before schema 10 were checked when they were mirrored.
                    checked_at: checked_at.unwrap_or(at),
                    check_error,
                })
            },
        )
        .transpose()
    }

    /// The version this node holds in full and serves: on a parent the one it published
    /// (or fetched from the member that published it), on a child the signed document it
    /// accepted from its parent (and serves on to its own children unchanged).
    ///
    /// # Errors
    /// Database errors or a damaged document.
    pub fn published(&self) -> Result<Option<Published>, DbError> {
        self.document(
            "SELECT document FROM published WHERE server_id=$1",
            &self.server,
        )
    }

    /// The cluster's published (on a child cluster: accepted) version, shared by every node
    /// on this database. A member serves it once its own store holds all of it.
    ///
    /// # Errors
    /// Database errors or a damaged document.
    pub fn cluster_published(&self) -> Result<Option<Published>, DbError> {
        self.document(
            "SELECT document FROM cluster_published WHERE cluster_id=$1",
            &self.cluster,
        )
    }

    fn document(
        &self,
        sql: &'static str,
        key: &crate::id::ServerId,
    ) -> Result<Option<Published>, DbError> {
        let doc: Option<String> = self.read(|c| c.value(sql, args![key.as_str()]))?;
        doc.map(|d| {
            Published::parse(d.as_bytes(), "the database").map_err(|e| self.damaged("published", e))
        })
        .transpose()
    }

    /// This node now holds `p` in full: it serves it from now on.
    pub(super) fn hold(
        tx: &Conn<'_>,
        node: &str,
        p: &Published,
        now: DateTime<Utc>,
    ) -> Result<(), SqlError> {
        tx.exec(
            "INSERT INTO published(server_id, number, root, expires, document, updated, validity)
             VALUES ($1,$2,$3,$4,$5,$6,0)
             ON CONFLICT(server_id) DO UPDATE SET number=excluded.number, root=excluded.root,
               expires=excluded.expires, document=excluded.document, updated=excluded.updated",
            args![node, p.number, p.root.to_string(), p.expires, doc(p), now],
        )?;
        // A version staged here that this one reaches or passes is spent.
        tx.exec(
            "DELETE FROM staged WHERE server_id=$1 AND number <= $2",
            args![node, p.number],
        )?;
        // The membership shows it at once: members that lag look there for a source.
        tx.exec(
            "UPDATE members SET active_root=$2 WHERE node_id=$1",
            args![node, p.root.to_string()],
        )?;
        Ok(())
    }

    /// Point the cluster at an accepted `p`, unless it already points at a later version
    /// (or at the same one with a later signature): two members accepting from their
    /// parents, or a late re-signature, never move the cluster back.
    fn point_cluster(
        tx: &Conn<'_>,
        cluster: &str,
        node: &str,
        p: &Published,
        now: DateTime<Utc>,
    ) -> Result<(), SqlError> {
        tx.exec(
            "INSERT INTO cluster_published(cluster_id, number, root, expires, document, updated, validity, set_by)
             VALUES ($1,$2,$3,$4,$5,$6,0,$7)
             ON CONFLICT(cluster_id) DO UPDATE SET number=excluded.number, root=excluded.root,
               expires=excluded.expires, document=excluded.document, updated=excluded.updated,
               set_by=excluded.set_by
             WHERE excluded.number > cluster_published.number
                OR (excluded.number = cluster_published.number
                    AND excluded.root = cluster_published.root
                    AND excluded.expires > cluster_published.expires)",
            args![
                cluster,
                p.number,
                p.root.to_string(),
                p.expires,
                doc(p),
                now,
                node
            ],
        )?;
        Ok(())
    }

    /// The validity span chosen when the cluster's current version was published (None on
    /// a child cluster, or before anything was published).
    ///
    /// # Errors
    /// Database errors.
    pub fn published_validity(&self) -> Result<Option<std::time::Duration>, DbError> {
        let v: Option<u64> = self.read(|c| {
            c.value(
                "SELECT validity FROM cluster_published WHERE cluster_id=$1",
                args![self.cluster.as_str()],
            )
        })?;
        Ok(v.filter(|s| *s > 0).map(std::time::Duration::from_secs))
    }

    /// Publish `root` as the cluster's next version number, signed by `sign`, in one
    /// transaction. With `stage` false it becomes the cluster's active version at once and
    /// this node (whose store holds `root`) serves it; with `stage` true it becomes the
    /// cluster's staged version (see [`Db::activate`]), held here beside the active one. If
    /// `root` is already the cluster's active (or staged) root, only that signature is
    /// renewed; publishing the active root again drops a staged version. Members
    /// publishing at the same moment are serialized, so no number is given twice.
    ///
    /// Only the cluster's publisher publishes: while another live process than `me` holds
    /// the publisher lease ([`crate::leases::PUBLISHER`]), nothing is written and that
    /// holder is returned as the refusal (a standby, or an old publisher whose scheduled
    /// round outlived its role). A lease nobody holds lets any member publish (no member
    /// serves: the admin publishes by hand). Whether the lease is live is judged by the
    /// database's clock; `now`, the caller's, only dates the rows written.
    ///
    /// # Errors
    /// Database errors.
    #[allow(clippy::too_many_arguments)]
    pub fn publish(
        &self,
        me: &crate::leases::Holder,
        root: Root,
        files: u64,
        bytes: u64,
        validity: std::time::Duration,
        now: DateTime<Utc>,
        stage: bool,
        sign: impl Fn(u64) -> Published + Send + Sync,
    ) -> Result<Result<(Published, bool), crate::leases::Holder>, DbError> {
        let (node, cluster) = (self.server.as_str(), self.cluster.as_str());
        self.write(|tx| {
            if tx.is_postgres() {
                tx.exec("SELECT pg_advisory_xact_lock($1)", args![PUBLISH_LOCK])?;
            }
            // The fence: the lease row stays locked until this publish commits, so the role
            // cannot change hands between this check and the new number. Its expiry is
            // judged by the database's clock, as the lease was taken: a publisher whose own
            // clock runs ahead must not find a live holder's lease expired. An embedded
            // database has one node, whatever process of it held the role last (a data
            // folder restored from a backup is a new instance).
            if tx.is_postgres() {
                let publisher = super::leases::live_holder(
                    tx,
                    cluster,
                    crate::leases::PUBLISHER,
                    self.clock_ms(tx)?,
                )?;
                if let Some(other) = publisher.filter(|h| h != me) {
                    return Ok(Err(other));
                }
            }
            let pointer = |table: &str| {
                tx.row(
                    &format!("SELECT number, root FROM {table} WHERE cluster_id=$1"),
                    args![cluster],
                )?
                .map(|r| Ok::<(u64, String), SqlError>((r.get(0)?, r.get(1)?)))
                .transpose()
            };
            let current = pointer("cluster_published")?;
            let staged = pointer("cluster_staged")?;
            let root_s = root.to_string();
            // The highest number a child reported holding (active or staged): a parent
            // restored from a backup older than its last publish gives its children numbers
            // past it, which they accept, even for content it already has.
            let children: u64 = tx
                .row(
                    "SELECT coalesce(max(number), 0), coalesce(max(staged_number), 0) FROM children",
                    args![],
                )?
                .map(|r| Ok::<u64, SqlError>(r.get::<u64>(0)?.max(r.get::<u64>(1)?)))
                .transpose()?
                .unwrap_or(0);
            let (number, new, stage) = match (&current, &staged) {
                (Some((n, r)), _) if *r == root_s && *n >= children => (*n, false, false),
                (_, Some((n, r))) if *r == root_s && *n >= children => (*n, false, true),
                _ => {
                    // After every number the cluster gave, and after what this node held
                    // (a node that served alone before it joined keeps counting up).
                    let max_v: u64 = tx
                        .value(
                            "SELECT coalesce(max(number), 0) FROM versions WHERE server_id=$1",
                            args![cluster],
                        )?
                        .unwrap_or(0);
                    let held: u64 = tx
                        .value(
                            "SELECT coalesce(max(number), 0) FROM published WHERE server_id=$1",
                            args![node],
                        )?
                        .unwrap_or(0);
                    let max_p = current.as_ref().map_or(0, |(n, _)| *n);
                    (max_v.max(max_p).max(held).max(children) + 1, true, stage)
                }
            };
            if new {
                tx.exec(
                    "INSERT INTO versions(server_id, number, root, files, bytes, created) VALUES ($1,$2,$3,$4,$5,$6)",
                    args![cluster, number, root_s, files, bytes, now],
                )?;
            }
            let p = sign(number);
            if stage {
                super::staging::put_staged(tx, cluster, node, &p, validity, now)?;
                return Ok(Ok((p, new)));
            }
            // Under the lock, with a number at least the cluster's: the admin's publish
            // (and its validity) wins even over a longer-lived signature of the same root.
            tx.exec(
                "INSERT INTO cluster_published(cluster_id, number, root, expires, document, updated, validity, set_by)
                 VALUES ($1,$2,$3,$4,$5,$6,$7,$8)
                 ON CONFLICT(cluster_id) DO UPDATE SET number=excluded.number, root=excluded.root,
                   expires=excluded.expires, document=excluded.document, updated=excluded.updated,
                   validity=excluded.validity, set_by=excluded.set_by",
                args![
                    cluster,
                    p.number,
                    p.root.to_string(),
                    p.expires,
                    doc(&p),
                    now,
                    validity.as_secs(),
                    node
                ],
            )?;
            // What was staged is superseded: the admin chose this version.
            tx.exec(
                "DELETE FROM cluster_staged WHERE cluster_id=$1",
                args![cluster],
            )?;
            tx.exec("DELETE FROM staged WHERE server_id=$1", args![node])?;
            Self::hold(tx, node, &p, now)?;
            Ok(Ok((p, new)))
        })
    }

    /// Replace the document this node serves, as it is: tests play a parent that serves an
    /// old, expired or forged document. Nodes use [`Db::publish`], [`Db::renew`] and
    /// [`Db::accept`].
    ///
    /// # Errors
    /// Database errors.
    #[doc(hidden)]
    pub fn set_published(&self, p: &Published, now: DateTime<Utc>) -> Result<(), DbError> {
        let node = self.server.as_str();
        self.write(|tx| Self::hold(tx, node, p, now))
    }

    /// A new signature of the same version after the publisher key rotated: the cluster's
    /// pointer and this node's held document take `p` where they name its version,
    /// whatever their expiry (the old signature is one the children will refuse).
    ///
    /// # Errors
    /// Database errors.
    pub fn replace_signature(&self, p: &Published, now: DateTime<Utc>) -> Result<(), DbError> {
        self.sign_again(p, now, "").map(drop)
    }

    /// A fresher signature of a version: the cluster's pointer and this node's held
    /// document take it where they name the same version with an earlier expiry (a member
    /// that re-signed, or a child that heard it from its parent). Returns whether the
    /// cluster's pointer changed (false: another member was first, or it moved on).
    ///
    /// # Errors
    /// Database errors.
    pub fn renew(&self, p: &Published, now: DateTime<Utc>) -> Result<bool, DbError> {
        self.sign_again(p, now, " AND expires < $4")
    }

    /// Put `p`'s signature on the rows naming its version (`and`: a further condition on
    /// the stored row); whether the cluster's pointer changed.
    fn sign_again(&self, p: &Published, now: DateTime<Utc>, and: &str) -> Result<bool, DbError> {
        let (node, cluster) = (self.server.as_str(), self.cluster.as_str());
        self.write(|tx| {
            let root = p.root.to_string();
            let changed = tx.exec(
                &format!(
                    "UPDATE cluster_published SET expires=$4, document=$5, updated=$6, set_by=$7
                     WHERE cluster_id=$1 AND number=$2 AND root=$3{and}"
                ),
                args![cluster, p.number, root, p.expires, doc(p), now, node],
            )?;
            tx.exec(
                &format!(
                    "UPDATE published SET expires=$4, document=$5, updated=$6
                     WHERE server_id=$1 AND number=$2 AND root=$3{and}"
                ),
                args![node, p.number, root, p.expires, doc(p), now],
            )?;
            Ok(changed > 0)
        })
    }

    /// This node switches to a verified version it now holds in full (from its parent, or
    /// from a member of its cluster): record it and its signed document in one transaction,
    /// so the node serves either the old version or the new one, never a mix; the cluster's
    /// pointer follows unless it is already further.
    ///
    /// # Errors
    /// Database errors.
    pub fn accept(
        &self,
        p: &Published,
        files: u64,
        bytes: u64,
        now: DateTime<Utc>,
    ) -> Result<(), DbError> {
        let (node, cluster) = (self.server.as_str(), self.cluster.as_str());
        self.write(|tx| {
            tx.exec(
                "INSERT INTO versions(server_id, number, root, files, bytes, created) VALUES ($1,$2,$3,$4,$5,$6)
                 ON CONFLICT(server_id, number) DO NOTHING",
                args![cluster, p.number, p.root.to_string(), files, bytes, now],
            )?;
            Self::point_cluster(tx, cluster, node, p, now)?;
            Self::hold(tx, node, p, now)
        })
    }

    /// All versions, newest first.
    ///
    /// # Errors
    /// Database errors or damaged rows.
    pub fn versions(&self) -> Result<Vec<VersionRow>, DbError> {
        let rows: Vec<(u64, String, u64, u64, DateTime<Utc>)> = self.read(|c| {
            c.map_rows(
                "SELECT number, root, files, bytes, created FROM versions WHERE server_id=$1 ORDER BY number DESC",
                args![self.cluster.as_str()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
        })?;
        rows.into_iter()
            .map(|(number, root, files, bytes, created)| {
                Ok(VersionRow {
                    number,
                    root: root.parse().map_err(|e| self.damaged("versions.root", e))?,
                    files,
                    bytes,
                    created,
                })
            })
            .collect()
    }

    /// Record a sync attempt's outcome.
    ///
    /// # Errors
    /// Database errors.
    pub fn record_sync(
        &self,
        parent: &str,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), DbError> {
        let ok = error.is_none().then_some(now);
        self.write(|c| {
            c.exec(
                "INSERT INTO sync_state(server_id, parent, last_try, last_ok, last_error) VALUES ($1,$2,$3,$4,$5)
                 ON CONFLICT(server_id) DO UPDATE SET parent=excluded.parent, last_try=excluded.last_try,
                   last_ok=coalesce(excluded.last_ok, sync_state.last_ok), last_error=excluded.last_error",
                args![self.server.as_str(), parent, now, ok, error],
            )
            .map(drop)
        })
    }

    /// The last sync attempt, if this node is a child.
    ///
    /// # Errors
    /// Database errors.
    pub fn sync_state(&self) -> Result<Option<SyncState>, DbError> {
        self.read(|c| {
            c.row(
                "SELECT parent, last_try, last_ok, last_error FROM sync_state WHERE server_id=$1",
                args![self.server.as_str()],
            )?
            .map(|r| {
                Ok(SyncState {
                    parent: r.get(0)?,
                    last_try: r.get(1)?,
                    last_ok: r.get(2)?,
                    last_error: r.get(3)?,
                })
            })
            .transpose()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::{BlobId, ServerId};

    const HOUR: std::time::Duration = std::time::Duration::from_secs(3600);

    #[test]
    fn publish_numbers_grow_and_same_root_only_resigns() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::create(&dir.path().join("t.db"), ServerId::new("n1").unwrap()).unwrap();
        let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
        let exp = Utc::now() + chrono::Duration::hours(1);
        let r1 = Root(BlobId::of(b"1"));
        let r2 = Root(BlobId::of(b"2"));
        let me = crate::leases::Holder {
            node: "n1".into(),
            instance: "i1".into(),
        };
        let (p, new) = db
            .publish(&me, r1, 1, 1, HOUR, Utc::now(), false, |n| {
                Published::sign(r1, n, exp, &key)
            })
            .unwrap()
            .unwrap();
        assert_eq!((p.number, new), (1, true));
        let (p, new) = db
            .publish(&me, r1, 1, 1, HOUR, Utc::now(), false, |n| {
                Published::sign(r1, n, exp, &key)
            })
            .unwrap()
            .unwrap();
        assert_eq!((p.number, new), (1, false));
        let (p, _) = db
            .publish(&me, r2, 1, 1, HOUR, Utc::now(), false, |n| {
                Published::sign(r2, n, exp, &key)
            })
            .unwrap()
            .unwrap();
        assert_eq!(p.number, 2);
        assert_eq!(db.published().unwrap().unwrap(), p);
        assert_eq!(db.versions().unwrap().len(), 2);
    }

    #[test]
    fn a_late_re_signature_of_an_older_version_moves_nothing_back() {
        // An old publisher that stalled past its lease wakes up and re-signs the version it
        // published, after the new publisher published the next one: a rollback attempt.
        let dir = tempfile::tempdir().unwrap();
        let db = Db::create(&dir.path().join("t.db"), ServerId::new("n1").unwrap()).unwrap();
        let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
        let exp = Utc::now() + chrono::Duration::hours(1);
        let me = crate::leases::Holder {
            node: "n1".into(),
            instance: "i1".into(),
        };
        let (r1, r2) = (Root(BlobId::of(b"1")), Root(BlobId::of(b"2")));
        for r in [r1, r2] {
            db.publish(&me, r, 1, 1, HOUR, Utc::now(), false, |n| {
                Published::sign(r, n, exp, &key)
            })
            .unwrap()
            .unwrap();
        }
        let v2 = db.cluster_published().unwrap().unwrap();
        assert_eq!(v2.number, 2);
        let stale = Published::sign(r1, 1, exp + chrono::Duration::days(30), &key);
        assert!(!db.renew(&stale, Utc::now()).unwrap());
        assert!(!db.renew_staged(&stale, Utc::now()).unwrap());
        assert_eq!(db.cluster_published().unwrap().unwrap(), v2);
        assert_eq!(db.published().unwrap().unwrap(), v2);
        assert!(db.cluster_staged().unwrap().is_none());
    }

    #[test]
    fn an_embedded_database_publishes_whoever_held_the_role_and_promote_names_the_old_holder() {
        // The fence itself needs members sharing PostgreSQL: tests/failover_pg.rs.
        let dir = tempfile::tempdir().unwrap();
        let db = Db::create(&dir.path().join("t.db"), ServerId::new("n1").unwrap()).unwrap();
        let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
        let exp = Utc::now() + chrono::Duration::hours(1);
        let holder = |instance: &str| crate::leases::Holder {
            node: "n1".into(),
            instance: instance.into(),
        };
        let (lost, restored) = (holder("lost"), holder("restored"));
        let task = crate::leases::PUBLISHER;
        assert_eq!(db.take_lease(task, &lost, 60_000).unwrap(), None);
        // The node's lost instance (a restored data folder) held the role: one node, so
        // the restored one publishes.
        let r = Root(BlobId::of(b"1"));
        let (p, _) = db
            .publish(&restored, r, 1, 1, HOUR, Utc::now(), false, |n| {
                Published::sign(r, n, exp, &key)
            })
            .unwrap()
            .unwrap();
        assert_eq!(p.number, 1);
        assert_eq!(db.take_lease(task, &restored, 60_000).unwrap(), Some(lost));
        assert_eq!(db.take_lease(task, &restored, 60_000).unwrap(), None);
    }
}

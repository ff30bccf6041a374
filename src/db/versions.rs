//! Versions: the last mirror run, the published (or, on a child, accepted) version with its
//! signed document, every version's row, and a child's last sync attempt.

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
}

impl Db {
    /// Record a completed mirror run.
    ///
    /// # Errors
    /// Database errors.
    pub fn set_mirrored(&self, m: &Mirrored, now: DateTime<Utc>) -> Result<(), DbError> {
        let id = self.server.as_str();
        self.write(|c| {
            c.exec(
                "INSERT INTO mirrored(server_id, root, zone, files, bytes, at) VALUES ($1,$2,$3,$4,$5,$6)
                 ON CONFLICT(server_id) DO UPDATE SET root=excluded.root, zone=excluded.zone,
                   files=excluded.files, bytes=excluded.bytes, at=excluded.at",
                args![id, m.root.to_string(), m.zone, m.files, m.bytes, now],
            )
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
                "SELECT root, zone, files, bytes FROM mirrored WHERE server_id=$1",
                args![self.server.as_str()],
            )?
            .map(|r| Ok((r.get::<String>(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .transpose()
        })?;
        row.map(|(root, zone, files, bytes)| {
            Ok(Mirrored {
                root: root.parse().map_err(|e| self.damaged("mirrored.root", e))?,
                zone,
                files,
                bytes,
            })
        })
        .transpose()
    }

    /// The current (published or accepted) version.
    ///
    /// # Errors
    /// Database errors or a damaged document.
    pub fn published(&self) -> Result<Option<Published>, DbError> {
        let doc: Option<String> = self.read(|c| {
            c.value(
                "SELECT document FROM published WHERE server_id=$1",
                args![self.server.as_str()],
            )
        })?;
        doc.map(|d| {
            Published::parse(d.as_bytes(), "the database").map_err(|e| self.damaged("published", e))
        })
        .transpose()
    }

    /// Insert or replace the published document; `validity` (seconds) is kept as it is when
    /// `None` (a re-signature keeps the span chosen at publish time).
    fn upsert_published(
        tx: &Conn<'_>,
        id: &str,
        p: &Published,
        validity: Option<u64>,
        now: DateTime<Utc>,
    ) -> Result<(), SqlError> {
        let doc = serde_json::to_string(p).expect("published serializes");
        // `validity` NULL keeps the stored span (a re-signature); a new row gets 0 then.
        tx.exec(
            "INSERT INTO published(server_id, number, root, expires, document, updated, validity)
             VALUES ($1,$2,$3,$4,$5,$6,coalesce($7, 0))
             ON CONFLICT(server_id) DO UPDATE SET number=excluded.number, root=excluded.root,
               expires=excluded.expires, document=excluded.document, updated=excluded.updated,
               validity=coalesce($7, published.validity)",
            args![
                id,
                p.number,
                p.root.to_string(),
                p.expires,
                doc,
                now,
                validity
            ],
        )?;
        Ok(())
    }

    /// The validity span chosen when the current version was published here (None on a
    /// child, or before anything was published).
    ///
    /// # Errors
    /// Database errors.
    pub fn published_validity(&self) -> Result<Option<std::time::Duration>, DbError> {
        let v: Option<u64> = self.read(|c| {
            c.value(
                "SELECT validity FROM published WHERE server_id=$1",
                args![self.server.as_str()],
            )
        })?;
        Ok(v.filter(|s| *s > 0).map(std::time::Duration::from_secs))
    }

    /// Publish `root` as the next version number, signed by `sign`, in one transaction.
    /// If `root` is already the published root, only the signature is renewed.
    ///
    /// # Errors
    /// Database errors.
    pub fn publish(
        &self,
        root: Root,
        files: u64,
        bytes: u64,
        validity: std::time::Duration,
        now: DateTime<Utc>,
        sign: impl Fn(u64) -> Published + Send + Sync,
    ) -> Result<(Published, bool), DbError> {
        let id = self.server.as_str();
        self.write(|tx| {
            let current = tx
                .row(
                    "SELECT number, root FROM published WHERE server_id=$1",
                    args![id],
                )?
                .map(|r| Ok::<(u64, String), SqlError>((r.get(0)?, r.get(1)?)))
                .transpose()?;
            let (number, new) = match current {
                Some((n, ref r)) if *r == root.to_string() => (n, false),
                _ => {
                    let max_v: u64 = tx
                        .value(
                            "SELECT coalesce(max(number), 0) FROM versions WHERE server_id=$1",
                            args![id],
                        )?
                        .unwrap_or(0);
                    let max_p = current.as_ref().map_or(0, |(n, _)| *n);
                    (max_v.max(max_p) + 1, true)
                }
            };
            if new {
                tx.exec(
                    "INSERT INTO versions(server_id, number, root, files, bytes, created) VALUES ($1,$2,$3,$4,$5,$6)",
                    args![id, number, root.to_string(), files, bytes, now],
                )?;
            }
            let p = sign(number);
            Self::upsert_published(tx, id, &p, Some(validity.as_secs()), now)?;
            Ok((p, new))
        })
    }

    /// Replace the published document (a re-signature of the same version).
    ///
    /// # Errors
    /// Database errors.
    pub fn set_published(&self, p: &Published, now: DateTime<Utc>) -> Result<(), DbError> {
        let id = self.server.as_str();
        self.write(|tx| Self::upsert_published(tx, id, p, None, now))
    }

    /// A child switches to a verified version: record it and its signed document in one
    /// transaction, so the node serves either the old version or the new one, never a mix.
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
        let id = self.server.as_str();
        self.write(|tx| {
            tx.exec(
                "INSERT INTO versions(server_id, number, root, files, bytes, created) VALUES ($1,$2,$3,$4,$5,$6)
                 ON CONFLICT(server_id, number) DO NOTHING",
                args![id, p.number, p.root.to_string(), files, bytes, now],
            )?;
            Self::upsert_published(tx, id, p, Some(0), now)
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
                args![self.server.as_str()],
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
        let (p, new) = db
            .publish(r1, 1, 1, HOUR, Utc::now(), |n| {
                Published::sign(r1, n, exp, &key)
            })
            .unwrap();
        assert_eq!((p.number, new), (1, true));
        let (p, new) = db
            .publish(r1, 1, 1, HOUR, Utc::now(), |n| {
                Published::sign(r1, n, exp, &key)
            })
            .unwrap();
        assert_eq!((p.number, new), (1, false));
        let (p, _) = db
            .publish(r2, 1, 1, HOUR, Utc::now(), |n| {
                Published::sign(r2, n, exp, &key)
            })
            .unwrap();
        assert_eq!(p.number, 2);
        assert_eq!(db.published().unwrap().unwrap(), p);
        assert_eq!(db.versions().unwrap().len(), 2);
    }
}

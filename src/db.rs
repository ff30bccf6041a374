//! The database: embedded SQLite (rusqlite, bundled) by default. Migrations are the SQL files
//! in `schemas/`, applied in order; a database written by a newer updhub is refused. Each
//! state change is one transaction.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::{DateTime, TimeZone, Utc};
use rusqlite::{params, Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior};
use serde::Serialize;

use crate::id::{Root, ServerId};
use crate::repo::Published;

/// The migrations, in order; the schema version is their count.
const MIGRATIONS: &[&str] = &[
    include_str!("../schemas/001-core.sql"),
    include_str!("../schemas/002-licenses.sql"),
];

/// Errors of the database layer.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// SQLite failed.
    #[error(
        "database {path}: {source}; check the file is readable and writable and not on a full disk"
    )]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// The underlying error.
        source: rusqlite::Error,
    },
    /// The schema belongs to a newer updhub.
    #[error("database {path} has schema {found}, written by updhub {writer}; this updhub {ours} knows schema {known} at most; upgrade this node to the same updhub version as the rest of the cluster")]
    TooNew {
        /// The database file.
        path: PathBuf,
        /// Schema found.
        found: i64,
        /// Which updhub wrote it.
        writer: String,
        /// Our version.
        ours: &'static str,
        /// The schema we know.
        known: i64,
    },
    /// The schema number is known but its content differs: another build wrote it.
    #[error("database {path} has schema {found}, but not the schema {found} of this updhub build (it was written by a development build); move it aside and let updhub create a new one, or open it with the build that made it")]
    Foreign {
        /// The database file.
        path: PathBuf,
        /// Schema found.
        found: i64,
    },
    /// Another process held the database for longer than [`BUSY_TIMEOUT`].
    #[error("database {path} is busy: another updhub process (a running `serve` or another command) held it for over 30 s; try again when it is done")]
    Busy {
        /// The database file.
        path: PathBuf,
    },
    /// The database of an existing node is missing or unusable; it is never recreated.
    #[error("database {path} {why}, but this data folder holds a node (updhub.toml); its versions, rollback floor, license keys, grants and audit log are in that file. Restore updhub.db from a backup (a copy taken while updhub was stopped), or move the data folder aside and run `updhub init` to make a new node")]
    Lost {
        /// The database file.
        path: PathBuf,
        /// What happened to it.
        why: &'static str,
    },
    /// The file is shorter than its header says.
    #[error("database {path} is truncated: {len} bytes, but its header says {expected}; restore updhub.db from a backup (a copy taken while updhub was stopped)")]
    Truncated {
        /// The database file.
        path: PathBuf,
        /// Its length.
        len: u64,
        /// The length its header gives.
        expected: u64,
    },
    /// The file could not be read.
    #[error("database {path}: {source}; check the file's permissions")]
    Io {
        /// The database file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A stored value is damaged.
    #[error("database {path}: {what} is damaged ({why}); restore the database from a backup")]
    Damaged {
        /// The database file.
        path: PathBuf,
        /// What.
        what: String,
        /// Why.
        why: String,
    },
}

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

/// The database handle of one server.
pub struct Db {
    /// One connection: SQLite serializes writers anyway, and every call is short.
    conn: Mutex<Connection>,
    /// The file, for messages.
    path: PathBuf,
    /// Rows are read and written under this id.
    server: ServerId,
}

/// How long a call waits for another process's write lock before it gives up.
pub const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Whether `e` means another connection held the lock for longer than [`BUSY_TIMEOUT`].
pub fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

/// The error of a failed SQLite call on `path`, with a lock wait told apart.
fn sqlite_err(path: &Path) -> impl Fn(rusqlite::Error) -> DbError + '_ {
    move |source| {
        if is_busy(&source) {
            DbError::Busy {
                path: path.to_owned(),
            }
        } else {
            DbError::Sqlite {
                path: path.to_owned(),
                source,
            }
        }
    }
}

/// The settings every updhub connection uses.
fn configure(c: &Connection) -> rusqlite::Result<()> {
    c.busy_timeout(BUSY_TIMEOUT)?;
    // Setting WAL on a database already in WAL changes nothing and takes no lock.
    let mode: String = c.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        c.pragma_update(None, "journal_mode", "WAL")?;
    }
    c.pragma_update(None, "synchronous", "FULL")?;
    c.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

/// Open another connection to an existing, already migrated database (the license ledger's
/// reader and writer). Never creates the file.
///
/// # Errors
/// SQLite errors.
pub fn connect(path: &Path) -> rusqlite::Result<Connection> {
    let c = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    configure(&c)?;
    Ok(c)
}

/// The schema number in `meta`, 0 when there is none.
fn schema_version(c: &Connection) -> rusqlite::Result<i64> {
    let has_meta: bool = c.query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE type='table' AND name='meta'",
        [],
        |r| r.get(0),
    )?;
    if !has_meta {
        return Ok(0);
    }
    Ok(c.query_row(
        "SELECT value FROM meta WHERE key='schema_version'",
        [],
        |r| r.get::<_, String>(0),
    )
    .optional()?
    .and_then(|v| v.parse().ok())
    .unwrap_or(0))
}

/// The checks a node's database file must pass before SQLite opens it: SQLite would treat a
/// missing or 0-byte file as a new, empty database and a truncated one fails late.
fn check_file(path: &Path) -> Result<(), DbError> {
    use std::io::Read;
    let lost = |why| DbError::Lost {
        path: path.to_owned(),
        why,
    };
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(lost("is missing")),
        Err(e) => {
            return Err(DbError::Io {
                path: path.to_owned(),
                source: e,
            })
        }
    };
    let len = f
        .metadata()
        .map_err(|source| DbError::Io {
            path: path.to_owned(),
            source,
        })?
        .len();
    if len == 0 {
        return Err(lost("is empty (0 bytes)"));
    }
    let mut header = [0u8; 100];
    if f.read_exact(&mut header).is_err() || &header[..16] != b"SQLite format 3\0" {
        return Err(lost(
            "is not an SQLite database (its header is missing or damaged)",
        ));
    }
    // The page count in the header is valid when the change counter matches the
    // version-valid-for number (SQLite file format, offsets 24, 28 and 92).
    let be32 = |at: usize| u32::from_be_bytes(header[at..at + 4].try_into().expect("4 bytes"));
    let page_size = match u16::from_be_bytes([header[16], header[17]]) {
        1 => 65536u64,
        n => u64::from(n),
    };
    let pages = u64::from(be32(28));
    if pages > 0 && be32(24) == be32(92) && len < pages * page_size {
        return Err(DbError::Truncated {
            path: path.to_owned(),
            len,
            expected: pages * page_size,
        });
    }
    Ok(())
}

fn ts(t: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(t, 0).single().unwrap_or_default()
}

impl Db {
    /// Create the SQLite database of a new node at `path` (`updhub init`). Refuses a file that
    /// already exists, so an init never overwrites a node's history.
    ///
    /// # Errors
    /// An existing file, or SQLite errors.
    pub fn create(path: &Path, server: ServerId) -> Result<Db, DbError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sqlite_err(path))?;
        if std::fs::metadata(path).map(|m| m.len()).unwrap_or(0) > 0 {
            return Err(DbError::Lost {
                path: path.to_owned(),
                why: "already exists; init makes a new node only in an empty data folder",
            });
        }
        Self::setup(conn, path, server)
    }

    /// Open the database of an existing node at `path`, migrating it to this build's schema.
    /// A missing, empty, truncated or non-updhub file is an error, never silently recreated:
    /// it holds the versions, the rollback floor, the license ledger and the audit log.
    ///
    /// # Errors
    /// A lost or damaged file, SQLite errors, or a schema from a newer or another build.
    pub fn open(path: &Path, server: ServerId) -> Result<Db, DbError> {
        check_file(path)?;
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sqlite_err(path))?;
        let found = schema_version(&conn).map_err(sqlite_err(path))?;
        if found == 0 {
            return Err(DbError::Lost {
                path: path.to_owned(),
                why: "holds no updhub schema (it is empty or not an updhub database)",
            });
        }
        Self::setup(conn, path, server)
    }

    /// Connection settings, then migrations. A database already at this build's schema is
    /// only read, so read-only commands write nothing and never wait for a writer.
    fn setup(mut conn: Connection, path: &Path, server: ServerId) -> Result<Db, DbError> {
        let e = sqlite_err(path);
        configure(&conn).map_err(&e)?;
        let known = MIGRATIONS.len() as i64;
        let digest_of = |n: usize| {
            blake3::hash(MIGRATIONS[..n].concat().as_bytes())
                .to_hex()
                .to_string()
        };
        let meta = |c: &Connection, key: &str| -> rusqlite::Result<Option<String>> {
            let has_meta: bool = c.query_row(
                "SELECT count(*) > 0 FROM sqlite_master WHERE type='table' AND name='meta'",
                [],
                |r| r.get(0),
            )?;
            if !has_meta {
                return Ok(None);
            }
            c.query_row("SELECT value FROM meta WHERE key=?1", [key], |r| r.get(0))
                .optional()
        };
        let up_to_date = schema_version(&conn).map_err(&e)? == known
            && meta(&conn, "schema_digest").map_err(&e)? == Some(digest_of(MIGRATIONS.len()))
            && meta(&conn, "updhub_version").map_err(&e)?.as_deref()
                == Some(env!("CARGO_PKG_VERSION"));
        if !up_to_date {
            // IMMEDIATE: take the write lock before reading, so two processes migrating at
            // once wait for each other instead of failing on a stale read.
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(&e)?;
            let found = schema_version(&tx).map_err(&e)?;
            if found > known {
                return Err(DbError::TooNew {
                    path: path.to_owned(),
                    found,
                    writer: meta(&tx, "updhub_version")
                        .map_err(&e)?
                        .unwrap_or_else(|| "?".to_owned()),
                    ours: env!("CARGO_PKG_VERSION"),
                    known,
                });
            }
            // The migrations a database has, as text: the same schema number with other text
            // is a database from another build, refused rather than half understood.
            if found > 0 {
                let stored = meta(&tx, "schema_digest").map_err(&e)?;
                if stored.is_some_and(|d| d != digest_of(found as usize)) {
                    return Err(DbError::Foreign {
                        path: path.to_owned(),
                        found,
                    });
                }
            }
            for sql in &MIGRATIONS[found as usize..] {
                tx.execute_batch(sql).map_err(&e)?;
            }
            tx.execute(
                "INSERT INTO meta(key, value) VALUES ('schema_version', ?1), ('updhub_version', ?2), ('schema_digest', ?3)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![known.to_string(), env!("CARGO_PKG_VERSION"), digest_of(MIGRATIONS.len())],
            )
            .map_err(&e)?;
            tx.commit().map_err(&e)?;
        }
        Ok(Db {
            conn: Mutex::new(conn),
            path: path.to_owned(),
            server,
        })
    }

    /// Check every page of the database (`serve` runs it once at start).
    ///
    /// # Errors
    /// A damaged database, or SQLite errors.
    pub fn check_integrity(&self) -> Result<(), DbError> {
        let problems: Vec<String> = self.with(|c| {
            let mut st = c.prepare("PRAGMA quick_check")?;
            let rows = st.query_map([], |r| r.get(0))?.collect();
            rows
        })?;
        if problems.len() == 1 && problems[0] == "ok" {
            return Ok(());
        }
        Err(self.damaged("the file", problems.join("; ")))
    }

    /// Move everything in the write-ahead log into the database file, so a copy of
    /// `updhub.db` taken while updhub is stopped is complete on its own.
    ///
    /// # Errors
    /// SQLite errors (a reader still open keeps part of the log).
    pub fn checkpoint(&self) -> Result<(), DbError> {
        self.with(|c| {
            c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                r.get::<_, i64>(0)
            })
        })
        .and_then(|busy| {
            if busy == 0 {
                Ok(())
            } else {
                Err(DbError::Busy {
                    path: self.path.clone(),
                })
            }
        })
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, DbError> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut conn).map_err(sqlite_err(&self.path))
    }

    fn damaged(&self, what: &str, why: impl std::fmt::Display) -> DbError {
        DbError::Damaged {
            path: self.path.clone(),
            what: what.to_owned(),
            why: why.to_string(),
        }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether `id` is a server this one knows: a child that has reported here.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn knows_server(&self, id: &str) -> Result<bool, DbError> {
        self.with(|c| {
            c.query_row(
                "SELECT 1 FROM children WHERE server_id=?1 AND child_id=?2",
                params![self.server.as_str(), id],
                |_| Ok(()),
            )
            .optional()
            .map(|r| r.is_some())
        })
    }

    /// Record a completed mirror run.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn set_mirrored(&self, m: &Mirrored) -> Result<(), DbError> {
        let id = self.server.as_str();
        self.with(|c| {
            c.execute(
                "INSERT INTO mirrored(server_id, root, zone, files, bytes, at) VALUES (?1,?2,?3,?4,?5,?6)
                 ON CONFLICT(server_id) DO UPDATE SET root=excluded.root, zone=excluded.zone,
                   files=excluded.files, bytes=excluded.bytes, at=excluded.at",
                params![id, m.root.to_string(), m.zone, m.files, m.bytes, Utc::now().timestamp()],
            )
            .map(drop)
        })
    }

    /// The last completed mirror run.
    ///
    /// # Errors
    /// SQLite errors or a damaged row.
    pub fn mirrored(&self) -> Result<Option<Mirrored>, DbError> {
        let row = self.with(|c| {
            c.query_row(
                "SELECT root, zone, files, bytes FROM mirrored WHERE server_id=?1",
                [self.server.as_str()],
                |r| Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()
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
    /// SQLite errors or a damaged document.
    pub fn published(&self) -> Result<Option<Published>, DbError> {
        let doc: Option<String> = self.with(|c| {
            c.query_row(
                "SELECT document FROM published WHERE server_id=?1",
                [self.server.as_str()],
                |r| r.get(0),
            )
            .optional()
        })?;
        doc.map(|d| {
            Published::parse(d.as_bytes(), "the database").map_err(|e| self.damaged("published", e))
        })
        .transpose()
    }

    /// Insert or replace the published document; `validity` (seconds) is kept as it is when
    /// `None` (a re-signature keeps the span chosen at publish time).
    fn upsert_published(
        tx: &rusqlite::Transaction<'_>,
        id: &str,
        p: &Published,
        validity: Option<u64>,
    ) -> rusqlite::Result<()> {
        let doc = serde_json::to_string(p).expect("published serializes");
        tx.execute(
            "INSERT INTO published(server_id, number, root, expires, document, updated, validity)
             VALUES (?1,?2,?3,?4,?5,?6,coalesce(?7, 0))
             ON CONFLICT(server_id) DO UPDATE SET number=excluded.number, root=excluded.root,
               expires=excluded.expires, document=excluded.document, updated=excluded.updated,
               validity=coalesce(?7, published.validity)",
            params![
                id,
                p.number,
                p.root.to_string(),
                p.expires.timestamp(),
                doc,
                Utc::now().timestamp(),
                validity
            ],
        )?;
        Ok(())
    }

    /// The validity span chosen when the current version was published here (None on a
    /// child, or before anything was published).
    ///
    /// # Errors
    /// SQLite errors.
    pub fn published_validity(&self) -> Result<Option<std::time::Duration>, DbError> {
        let v: Option<u64> = self.with(|c| {
            c.query_row(
                "SELECT validity FROM published WHERE server_id=?1",
                [self.server.as_str()],
                |r| r.get(0),
            )
            .optional()
        })?;
        Ok(v.filter(|s| *s > 0).map(std::time::Duration::from_secs))
    }

    /// Publish `root` as the next version number, signed by `sign`, in one transaction.
    /// If `root` is already the published root, only the signature is renewed.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn publish(
        &self,
        root: Root,
        files: u64,
        bytes: u64,
        validity: std::time::Duration,
        sign: impl FnOnce(u64) -> Published,
    ) -> Result<(Published, bool), DbError> {
        let id = self.server.as_str();
        self.with(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let current: Option<(u64, String)> = tx
                .query_row(
                    "SELECT number, root FROM published WHERE server_id=?1",
                    [id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let (number, new) = match current {
                Some((n, r)) if r == root.to_string() => (n, false),
                _ => {
                    let max_v: u64 = tx.query_row(
                        "SELECT coalesce(max(number), 0) FROM versions WHERE server_id=?1",
                        [id],
                        |r| r.get(0),
                    )?;
                    let max_p = current.map_or(0, |(n, _)| n);
                    (max_v.max(max_p) + 1, true)
                }
            };
            if new {
                tx.execute(
                    "INSERT INTO versions(server_id, number, root, files, bytes, created) VALUES (?1,?2,?3,?4,?5,?6)",
                    params![id, number, root.to_string(), files, bytes, Utc::now().timestamp()],
                )?;
            }
            let p = sign(number);
            Self::upsert_published(&tx, id, &p, Some(validity.as_secs()))?;
            tx.commit()?;
            Ok((p, new))
        })
    }

    /// Replace the published document (a re-signature of the same version).
    ///
    /// # Errors
    /// SQLite errors.
    pub fn set_published(&self, p: &Published) -> Result<(), DbError> {
        let id = self.server.as_str();
        self.with(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            Self::upsert_published(&tx, id, p, None)?;
            tx.commit()
        })
    }

    /// A child switches to a verified version: record it and its signed document in one
    /// transaction, so the node serves either the old version or the new one, never a mix.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn accept(&self, p: &Published, files: u64, bytes: u64) -> Result<(), DbError> {
        let id = self.server.as_str();
        self.with(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute(
                "INSERT INTO versions(server_id, number, root, files, bytes, created) VALUES (?1,?2,?3,?4,?5,?6)
                 ON CONFLICT(server_id, number) DO NOTHING",
                params![id, p.number, p.root.to_string(), files, bytes, Utc::now().timestamp()],
            )?;
            Self::upsert_published(&tx, id, p, Some(0))?;
            tx.commit()
        })
    }

    /// All versions, newest first.
    ///
    /// # Errors
    /// SQLite errors or damaged rows.
    pub fn versions(&self) -> Result<Vec<VersionRow>, DbError> {
        let rows: Vec<(u64, String, u64, u64, i64)> = self.with(|c| {
            let mut st = c.prepare(
                "SELECT number, root, files, bytes, created FROM versions WHERE server_id=?1 ORDER BY number DESC",
            )?;
            let rows = st
                .query_map([self.server.as_str()], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })?
                .collect::<Result<_, _>>()?;
            Ok(rows)
        })?;
        rows.into_iter()
            .map(|(number, root, files, bytes, created)| {
                Ok(VersionRow {
                    number,
                    root: root.parse().map_err(|e| self.damaged("versions.root", e))?,
                    files,
                    bytes,
                    created: ts(created),
                })
            })
            .collect()
    }

    /// Record a sync attempt's outcome.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn record_sync(&self, parent: &str, error: Option<&str>) -> Result<(), DbError> {
        let now = Utc::now().timestamp();
        let ok = error.is_none().then_some(now);
        self.with(|c| {
            c.execute(
                "INSERT INTO sync_state(server_id, parent, last_try, last_ok, last_error) VALUES (?1,?2,?3,?4,?5)
                 ON CONFLICT(server_id) DO UPDATE SET parent=excluded.parent, last_try=excluded.last_try,
                   last_ok=coalesce(excluded.last_ok, sync_state.last_ok), last_error=excluded.last_error",
                params![self.server.as_str(), parent, now, ok, error],
            )
            .map(drop)
        })
    }

    /// The last sync attempt, if this node is a child.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn sync_state(&self) -> Result<Option<SyncState>, DbError> {
        self.with(|c| {
            c.query_row(
                "SELECT parent, last_try, last_ok, last_error FROM sync_state WHERE server_id=?1",
                [self.server.as_str()],
                |r| {
                    Ok(SyncState {
                        parent: r.get(0)?,
                        last_try: ts(r.get(1)?),
                        last_ok: r.get::<_, Option<i64>>(2)?.map(ts),
                        last_error: r.get(3)?,
                    })
                },
            )
            .optional()
        })
    }

    /// Store a child's report.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn record_report(&self, r: &ChildReport) -> Result<(), DbError> {
        let chain = serde_json::to_string(&r.chain).expect("strings serialize");
        self.with(|c| {
            c.execute(
                "INSERT INTO children(server_id, child_id, root, number, hub_version, config_digest, chain, reported_at)
                 VALUES (?1,?2,?3,?4,?5,?6,?7,?8)
                 ON CONFLICT(server_id, child_id) DO UPDATE SET root=excluded.root, number=excluded.number,
                   hub_version=excluded.hub_version, config_digest=excluded.config_digest,
                   chain=excluded.chain, reported_at=excluded.reported_at",
                params![
                    self.server.as_str(),
                    r.child_id,
                    r.root.map(|x| x.to_string()),
                    r.number,
                    r.hub_version,
                    r.config_digest,
                    chain,
                    r.reported_at.timestamp()
                ],
            )
            .map(drop)
        })
    }

    /// Every child's last report.
    ///
    /// # Errors
    /// SQLite errors or damaged rows.
    pub fn children(&self) -> Result<Vec<ChildReport>, DbError> {
        type Row = (
            String,
            Option<String>,
            Option<u64>,
            String,
            String,
            String,
            i64,
        );
        let rows: Vec<Row> = self.with(|c| {
            let mut st = c.prepare(
                "SELECT child_id, root, number, hub_version, config_digest, chain, reported_at
                 FROM children WHERE server_id=?1 ORDER BY child_id",
            )?;
            let rows = st
                .query_map([self.server.as_str()], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                    ))
                })?
                .collect::<Result<_, _>>()?;
            Ok(rows)
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
                        reported_at: ts(at),
                    })
                },
            )
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::BlobId;

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
            .publish(r1, 1, 1, HOUR, |n| Published::sign(r1, n, exp, &key))
            .unwrap();
        assert_eq!((p.number, new), (1, true));
        let (p, new) = db
            .publish(r1, 1, 1, HOUR, |n| Published::sign(r1, n, exp, &key))
            .unwrap();
        assert_eq!((p.number, new), (1, false));
        let (p, _) = db
            .publish(r2, 1, 1, HOUR, |n| Published::sign(r2, n, exp, &key))
            .unwrap();
        assert_eq!(p.number, 2);
        assert_eq!(db.published().unwrap().unwrap(), p);
        assert_eq!(db.versions().unwrap().len(), 2);
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        drop(Db::create(&path, ServerId::new("n1").unwrap()).unwrap());
        let c = Connection::open(&path).unwrap();
        c.execute("UPDATE meta SET value='99' WHERE key='schema_version'", [])
            .unwrap();
        drop(c);
        let err = Db::open(&path, ServerId::new("n1").unwrap()).err().unwrap();
        assert!(err.to_string().contains("schema 99"), "{err}");
    }

    #[test]
    fn a_schema_from_another_build_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        drop(Db::create(&path, ServerId::new("n1").unwrap()).unwrap());
        let c = Connection::open(&path).unwrap();
        c.execute("UPDATE meta SET value='0000' WHERE key='schema_digest'", [])
            .unwrap();
        drop(c);
        let err = Db::open(&path, ServerId::new("n1").unwrap()).err().unwrap();
        assert!(
            err.to_string().contains("another build")
                || err.to_string().contains("development build"),
            "{err}"
        );
        // Opening an up-to-date database again is fine.
        let ok = dir.path().join("ok.db");
        drop(Db::create(&ok, ServerId::new("n1").unwrap()).unwrap());
        Db::open(&ok, ServerId::new("n1").unwrap()).unwrap();
    }
}

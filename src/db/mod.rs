//! The database: embedded SQLite (rusqlite, bundled) for a lone node, or a PostgreSQL
//! database shared by the nodes of a cluster. All SQL lives in this module: `sql` runs a
//! statement on either engine, `sqlite` and `postgres` open and check each engine,
//! `migrate` brings a schema up to this build's, and one file per aggregate holds its
//! statements (`versions`: the mirrored, published and accepted versions and a child's sync
//! state; `children`: the reports of this node's children; `cluster`: the membership; for
//! the license ledger, whose
//! transactions `ledger` runs: `license_sources`, `stations`, `grants`, `grant_feed` (the
//! grants fetch's change cursor) and `license_log`).
//! `join` copies a lone node's rows into a cluster's database (`cluster join`).
//! Each state change is one transaction.

mod announce;
mod canary;
mod children;
mod cluster;
pub mod grant_feed;
pub mod grant_rules;
pub mod grants;
pub mod join;
mod leases;
pub mod ledger;
pub mod license_log;
pub mod license_sources;
pub mod links;
mod logins;
mod migrate;
pub mod postgres;
mod products;
mod settings;
pub mod sql;
mod sqlite;
mod staging;
pub mod stations;
mod versions;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, TransactionBehavior};

use crate::id::ServerId;
use sql::{Conn, SqlError};

pub use announce::Announcer;
pub use children::{ChildReport, PurgedReports};
pub use cluster::{IdTaken, Member};
pub use links::{Binding, Link, LinkState, Refusal};
pub use logins::{LoginFailures, LoginSubject};
pub use migrate::Standing;
pub use settings::SharedSetting;
pub use sqlite::connect;
pub use staging::{ChildStage, Staged};
pub use versions::{Mirrored, SyncState, VersionRow};

/// Errors of the database layer.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// A statement failed.
    #[error("database {at}: {source}; {}", hint(.source))]
    Sql {
        /// The database file or URL (without password).
        at: String,
        /// The underlying error.
        source: SqlError,
    },
    /// The schema belongs to a newer updhub.
    #[error("database {at} has schema {found}, written by updhub {writer}; this updhub {ours} knows schema {known} at most; upgrade this node to the same updhub version as the rest of the cluster")]
    TooNew {
        /// The database file or URL.
        at: String,
        /// Schema found.
        found: i64,
        /// Which updhub wrote it.
        writer: String,
        /// Our version.
        ours: &'static str,
        /// The schema we know.
        known: i64,
    },
    /// The database is at an older schema and nodes of another updhub version still use it.
    #[error("database {at} has schema {found}; this updhub {ours} needs schema {known}, but nodes of another updhub version are connected to it: {others}. A node does not upgrade a shared database under running nodes by itself: upgrade it on purpose with `updhub db upgrade` (README: upgrading a cluster), or stop or upgrade those nodes first")]
    UpgradeHeld {
        /// The database URL.
        at: String,
        /// Schema found.
        found: i64,
        /// The schema we need.
        known: i64,
        /// Our version.
        ours: &'static str,
        /// The other nodes, as "NODE (updhub VERSION)".
        others: String,
    },
    /// The schema number is known but its content differs: another build wrote it.
    #[error("database {at} has schema {found}, but not the schema {found} of this updhub build (it was written by a development build); move it aside and let updhub create a new one, or open it with the build that made it")]
    Foreign {
        /// The database file or URL.
        at: String,
        /// Schema found.
        found: i64,
    },
    /// Another process held the database for longer than [`BUSY_TIMEOUT`].
    #[error("database {at} is busy: another updhub process (a running `serve` or another command) held it for over 30 s; try again when it is done")]
    Busy {
        /// The database file or URL.
        at: String,
    },
    /// The database of an existing node is missing or unusable; it is never recreated.
    #[error("database {path} {why}, but this data folder holds a node (updhub.toml); its versions, rollback floor, license keys, grants and audit log are in that file. Restore updhub.db from a backup (a copy taken while updhub was stopped), or move the data folder aside and run `updhub init` to make a new node")]
    Lost {
        /// The database file.
        path: PathBuf,
        /// What happened to it.
        why: &'static str,
    },
    /// A new node's database would overwrite an existing file.
    #[error("database {path} already exists; a new node is made only where there is no database: use another data folder")]
    Exists {
        /// The database file.
        path: PathBuf,
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
    /// A row copied by `cluster join` read back differently: the copy was rolled back.
    #[error("database {at}: the join's copy was rolled back and nothing changed, because a copied row read back differently: {why}; this is a bug in updhub, please report it with this message")]
    JoinDiffers {
        /// The cluster's database.
        at: String,
        /// Which row and how.
        why: String,
    },
    /// A stored value is damaged.
    #[error("database {at}: {what} is damaged ({why}); restore the database from a backup")]
    Damaged {
        /// The database file or URL.
        at: String,
        /// What.
        what: String,
        /// Why.
        why: String,
    },
}

/// What to do about a failed statement, for the message.
fn hint(e: &SqlError) -> &'static str {
    match e {
        SqlError::Connection(_) => "check that the database server runs and database.url is right",
        SqlError::Damaged(_) => "restore the database from a backup",
        _ => "check the database is readable and writable and not on a full disk",
    }
}

/// Where a node's database is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// An SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL URL (`postgres://…`), password included.
    Postgres(String),
}

/// The engine a node's database runs on.
#[derive(Clone)]
pub enum Engine {
    /// An SQLite file: each user opens its own connections to it.
    Sqlite(PathBuf),
    /// A pool of connections to a PostgreSQL database, shared by every user in the node.
    Postgres(Arc<postgres::Pg>),
}

/// The database handle of one server.
pub struct Db {
    /// The SQLite connection (one: SQLite serializes writers anyway, and every call is
    /// short), `None` on PostgreSQL.
    conn: Option<Mutex<Connection>>,
    engine: Engine,
    /// The file or URL (without password), for messages.
    at: String,
    /// This node's rows (its sync state, its children's reports, its versions) carry this id.
    server: ServerId,
    /// The cluster's shared rows (the license ledger) carry this id: the node that made the
    /// database (see `schemas/*/004-cluster.sql`); on SQLite, the node itself.
    cluster: ServerId,
    /// Tests: the instant the database's clock reads instead of the server's time
    /// ([`NOT_PINNED`]: the server's time; see [`Db::pin_clock_ms`]).
    pinned_ms: std::sync::atomic::AtomicI64,
}

/// [`Db::pinned_ms`] when the database's clock is the server's.
const NOT_PINNED: i64 = i64::MIN;

/// The cluster id stored in the database (a database older than schema 4 has none: then
/// it is this node's own).
fn read_cluster_id(c: &Conn<'_>, server: &ServerId) -> Result<ServerId, SqlError> {
    match migrate::cluster_id(c)? {
        Some(id) => ServerId::new(&id)
            .map_err(|e| SqlError::Damaged(format!("meta.cluster_id {id:?}: {e}"))),
        None => Ok(server.clone()),
    }
}

/// What a node's database connections call themselves: the version guard of
/// `migrate_postgres` reads the updhub version of every node connected from it.
fn app_name(server: &ServerId) -> String {
    format!("updhub {} {server}", env!("CARGO_PKG_VERSION"))
}

/// How long a call waits for another process's write lock before it gives up.
pub const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

impl Db {
    /// The database's clock, unix milliseconds, read in the transaction `c`: what every
    /// rule that the members of a cluster must agree on compares with (the leases, the
    /// publish fence, who is alive), so that a member whose own clock is wrong agrees with
    /// the others. PostgreSQL: `now()`, the transaction's start by the server's clock;
    /// SQLite (one node): SQLite's own time, the machine's clock.
    pub(crate) fn clock_ms(&self, c: &Conn<'_>) -> Result<i64, SqlError> {
        let pinned = self.pinned_ms.load(std::sync::atomic::Ordering::Relaxed);
        if pinned != NOT_PINNED {
            return Ok(pinned);
        }
        c.now_ms()
    }

    /// The time by the database's clock (see `clock_ms`): what the members' liveness and
    /// the leases are judged by.
    ///
    /// # Errors
    /// Database errors.
    pub fn now(&self) -> Result<chrono::DateTime<chrono::Utc>, DbError> {
        let ms = self.now_ms()?;
        chrono::DateTime::from_timestamp_millis(ms)
            .ok_or_else(|| self.damaged("the database's clock", format!("{ms} ms is no time")))
    }

    /// [`Db::now`] in unix milliseconds.
    ///
    /// # Errors
    /// Database errors.
    pub fn now_ms(&self) -> Result<i64, DbError> {
        self.read(|c| self.clock_ms(c))
    }

    /// Tests: make the database's clock read `at_ms` (unix milliseconds) through this handle
    /// until pinned again, or read the server's time again (`None`), so that a test plays
    /// the rules that read it at instants it chooses.
    #[doc(hidden)]
    pub fn pin_clock_ms(&self, at_ms: Option<i64>) {
        self.pinned_ms.store(
            at_ms.unwrap_or(NOT_PINNED),
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// Open the database of an existing node at `loc`, migrating it to this build's schema.
    ///
    /// # Errors
    /// See [`Db::open`] and [`Db::open_postgres`].
    pub fn open_at(loc: &Location, server: ServerId) -> Result<Db, DbError> {
        match loc {
            Location::Sqlite(p) => Db::open(p, server),
            Location::Postgres(url) => Db::open_postgres(url, server),
        }
    }

    /// Make the database of a new node at `loc`: a new SQLite file, or the node's place in
    /// a PostgreSQL database (created or migrated as needed).
    ///
    /// # Errors
    /// See [`Db::create`] and [`Db::open_postgres`].
    pub fn create_at(loc: &Location, server: ServerId) -> Result<Db, DbError> {
        match loc {
            Location::Sqlite(p) => Db::create(p, server),
            Location::Postgres(url) => Db::open_postgres(url, server),
        }
    }

    /// Open a PostgreSQL database, migrating it to this build's schema under an advisory
    /// lock (nodes starting at once migrate it once).
    ///
    /// # Errors
    /// An unreachable server, a refused login, or a schema from a newer or another build.
    pub fn open_postgres(url: &str, server: ServerId) -> Result<Db, DbError> {
        Self::open_postgres_with(url, server, false)
    }

    /// `updhub db upgrade`: open the database at `loc` and bring it to this build's schema
    /// even while nodes of another version are connected to it (the admin upgrades a running
    /// cluster on purpose). Returns the schema found and the schema now.
    ///
    /// # Errors
    /// See [`Db::open_at`].
    pub fn upgrade_at(loc: &Location, server: ServerId) -> Result<(i64, i64, Db), DbError> {
        let found = match loc {
            Location::Sqlite(p) => {
                sqlite::check_file(p)?;
                let c = connect(p).map_err(sqlite::sqlite_err(p))?;
                migrate::schema_version(&c).map_err(|e| error_at(&p.display().to_string(), e))?
            }
            Location::Postgres(url) => {
                let pg = postgres::Pg::connect(url, &app_name(&server))
                    .map_err(|e| error_at(&postgres::redact(url), e))?;
                migrate::postgres_version(&pg).map_err(|e| error_at(&postgres::redact(url), e))?
            }
        };
        let db = match loc {
            Location::Sqlite(p) => Db::open(p, server)?,
            Location::Postgres(url) => Self::open_postgres_with(url, server, true)?,
        };
        Ok((found, db.schema_known(), db))
    }

    fn open_postgres_with(url: &str, server: ServerId, on_purpose: bool) -> Result<Db, DbError> {
        let at = postgres::redact(url);
        let e = |source| DbError::Sql {
            at: at.clone(),
            source,
        };
        let pg = postgres::Pg::connect(url, &app_name(&server)).map_err(e)?;
        migrate::migrate_postgres(&pg, &at, server.as_str(), on_purpose)?;
        let cluster = pg
            .run(false, &mut |c| read_cluster_id(c, &server))
            .map_err(e)?;
        Ok(Db {
            conn: None,
            engine: Engine::Postgres(Arc::new(pg)),
            at,
            server,
            cluster,
            pinned_ms: std::sync::atomic::AtomicI64::new(NOT_PINNED),
        })
    }

    /// The engine, for the other users in the node (the license ledger).
    pub fn engine(&self) -> Engine {
        self.engine.clone()
    }

    /// The error for `e` on this database.
    pub(crate) fn err(&self) -> impl Fn(SqlError) -> DbError + '_ {
        move |e| error_at(&self.at, e)
    }

    /// Run `f` outside a transaction of its own (SQLite) or in a read-only one (PostgreSQL).
    pub(crate) fn read<T: Send>(
        &self,
        mut f: impl FnMut(&Conn<'_>) -> Result<T, SqlError> + Send,
    ) -> Result<T, DbError> {
        let res = match (&self.engine, &self.conn) {
            (Engine::Postgres(pg), _) => pg.run(false, &mut f),
            (Engine::Sqlite(_), Some(conn)) => {
                let conn = conn.lock().unwrap_or_else(|p| p.into_inner());
                f(&Conn::Sqlite(&conn))
            }
            (Engine::Sqlite(_), None) => unreachable!("an SQLite Db holds its connection"),
        };
        res.map_err(self.err())
    }

    /// Run `f` as one write transaction and commit it (SQLite: `BEGIN IMMEDIATE`, waiting for
    /// the write lock; PostgreSQL: run again from the start when it lost a race).
    pub(crate) fn write<T: Send>(
        &self,
        mut f: impl FnMut(&Conn<'_>) -> Result<T, SqlError> + Send,
    ) -> Result<T, DbError> {
        let res = match (&self.engine, &self.conn) {
            (Engine::Postgres(pg), _) => pg.run(true, &mut f),
            (Engine::Sqlite(_), Some(conn)) => {
                let mut conn = conn.lock().unwrap_or_else(|p| p.into_inner());
                (|| {
                    let tx = conn
                        .transaction_with_behavior(TransactionBehavior::Immediate)
                        .map_err(sqlite::classify)?;
                    let v = f(&Conn::Sqlite(&tx))?;
                    tx.commit().map_err(sqlite::classify)?;
                    Ok(v)
                })()
            }
            (Engine::Sqlite(_), None) => unreachable!("an SQLite Db holds its connection"),
        };
        res.map_err(self.err())
    }

    fn damaged(&self, what: &str, why: impl std::fmt::Display) -> DbError {
        DbError::Damaged {
            at: self.at.clone(),
            what: what.to_owned(),
            why: why.to_string(),
        }
    }

    /// Run one statement as given, in its own transaction, bypassing every check of the code
    /// (never used by updhub itself: tests use it to try what an admin with a SQL prompt could
    /// do, and the database's own rules must still hold).
    ///
    /// # Errors
    /// The statement failed or a rule refused it.
    #[doc(hidden)]
    pub fn exec_raw(&self, sql: &str) -> Result<u64, DbError> {
        self.write(|c| c.exec(sql, &[]))
    }

    /// This node's id.
    pub fn node_id(&self) -> &ServerId {
        &self.server
    }

    /// The cluster this database belongs to: the id the shared license ledger's rows carry.
    pub fn cluster_id(&self) -> &ServerId {
        &self.cluster
    }

    /// The database file or URL (without its password).
    pub fn location(&self) -> &str {
        &self.at
    }
}

/// The error of a failed statement on the database at `at`, with a lock wait told apart.
pub(crate) fn error_at(at: &str, e: SqlError) -> DbError {
    match e {
        SqlError::Busy => DbError::Busy { at: at.to_owned() },
        source => DbError::Sql {
            at: at.to_owned(),
            source,
        },
    }
}

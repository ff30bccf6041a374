//! The database: embedded SQLite (rusqlite, bundled). The SQL of the repository side lives in
//! this module, one file per aggregate, behind the [`Db`] handle (the license ledger's SQL is
//! still in `license/`, the next to move here): `sqlite` opens the file and
//! checks it, `migrate` brings its schema up to this build's, `versions` holds the
//! mirrored, published and accepted versions and a child's sync state, `children` the
//! reports of this node's children. Each state change is one transaction.

mod children;
mod migrate;
mod sqlite;
mod versions;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::{DateTime, TimeZone, Utc};
use rusqlite::{Connection, ErrorCode};

use crate::id::ServerId;

pub use children::ChildReport;
pub use sqlite::connect;
pub use versions::{Mirrored, SyncState, VersionRow};

/// Errors of the database layer.
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

/// The database handle of one server.
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

/// The name of the database rule a failed statement broke, told by SQLite's extended error
/// code: a named `CHECK` constraint (SQLite reports "CHECK constraint failed: NAME") or a
/// trigger that refused with `RAISE(ABORT, 'NAME: why')`. `None` for any other failure.
pub fn broken_rule(e: &rusqlite::Error) -> Option<&str> {
    let rusqlite::Error::SqliteFailure(f, Some(msg)) = e else {
        return None;
    };
    match f.extended_code {
        rusqlite::ffi::SQLITE_CONSTRAINT_CHECK => msg.strip_prefix("CHECK constraint failed: "),
        rusqlite::ffi::SQLITE_CONSTRAINT_TRIGGER => msg.split_once(':').map(|(name, _)| name),
        _ => None,
    }
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

fn ts(t: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(t, 0).single().unwrap_or_default()
}

impl Db {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broken_rules_are_told_by_constraint_and_trigger_name() {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(
            "CREATE TABLE t (n INTEGER, CONSTRAINT conservation CHECK (n <= 1));
             CREATE TRIGGER no_seven BEFORE INSERT ON t WHEN NEW.n = -7
             BEGIN SELECT RAISE(ABORT, 'no_seven: seven is refused'); END;",
        )
        .unwrap();
        let err = c.execute("INSERT INTO t VALUES (2)", []).unwrap_err();
        assert_eq!(broken_rule(&err), Some("conservation"));
        let err = c.execute("INSERT INTO t VALUES (-7)", []).unwrap_err();
        assert_eq!(broken_rule(&err), Some("no_seven"));
        // A message that merely mentions a rule is no broken rule.
        let err = c
            .execute("INSERT INTO nowhere VALUES ('conservation')", [])
            .unwrap_err();
        assert_eq!(broken_rule(&err), None);
    }
}

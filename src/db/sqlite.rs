//! The SQLite engine: open a node's database file (never silently creating one), connection
//! settings, the integrity check and the WAL checkpoint.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, ErrorCode, OpenFlags};

use super::sql::{sqlite_placeholders, Conn, Param, Row, SqlError, Value};
use super::{Db, DbError, Engine, BUSY_TIMEOUT};
use crate::id::ServerId;

/// Classify an SQLite failure: a lock wait that timed out, a broken rule (a named `CHECK`
/// constraint, reported as "CHECK constraint failed: NAME", or a trigger that refused with
/// `RAISE(ABORT, 'NAME: why')`), told by SQLite's extended error code, or anything else.
pub(super) fn classify(e: rusqlite::Error) -> SqlError {
    if matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    ) {
        return SqlError::Busy;
    }
    if let rusqlite::Error::SqliteFailure(f, Some(msg)) = &e {
        let name = match f.extended_code {
            rusqlite::ffi::SQLITE_CONSTRAINT_CHECK => msg.strip_prefix("CHECK constraint failed: "),
            rusqlite::ffi::SQLITE_CONSTRAINT_TRIGGER => msg.split_once(':').map(|(name, _)| name),
            rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            | rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE => Some("unique"),
            rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY => Some("foreign_key"),
            _ => None,
        };
        if let Some(name) = name {
            return SqlError::Rule {
                name: name.to_owned(),
                message: msg.clone(),
            };
        }
    }
    SqlError::Failed(e.to_string())
}

fn bind(args: &[&dyn Param]) -> Vec<rusqlite::types::Value> {
    args.iter()
        .map(|a| match a.value() {
            Value::Null => rusqlite::types::Value::Null,
            Value::Int(i) => rusqlite::types::Value::Integer(i),
            Value::Text(s) => rusqlite::types::Value::Text(s),
        })
        .collect()
}

/// Run a statement (`$1` placeholders); returns the rows it changed.
pub(super) fn exec(c: &Connection, sql: &str, args: &[&dyn Param]) -> Result<u64, SqlError> {
    let mut st = c
        .prepare_cached(&sqlite_placeholders(sql))
        .map_err(classify)?;
    let n = st
        .execute(rusqlite::params_from_iter(bind(args)))
        .map_err(classify)?;
    Ok(n as u64)
}

/// Run a query (`$1` placeholders); returns every row.
pub(super) fn rows(c: &Connection, sql: &str, args: &[&dyn Param]) -> Result<Vec<Row>, SqlError> {
    use rusqlite::types::ValueRef;
    let mut st = c
        .prepare_cached(&sqlite_placeholders(sql))
        .map_err(classify)?;
    let n = st.column_count();
    let mut rows = st
        .query(rusqlite::params_from_iter(bind(args)))
        .map_err(classify)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().map_err(classify)? {
        let mut vals = Vec::with_capacity(n);
        for i in 0..n {
            vals.push(match r.get_ref(i).map_err(classify)? {
                ValueRef::Null => Value::Null,
                ValueRef::Integer(i) => Value::Int(i),
                ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
                ValueRef::Real(f) => {
                    return Err(SqlError::Damaged(format!(
                        "column {i} holds a real number {f}"
                    )))
                }
                ValueRef::Blob(_) => {
                    return Err(SqlError::Damaged(format!("column {i} holds a blob")))
                }
            });
        }
        out.push(Row(vals));
    }
    Ok(out)
}

pub(super) fn sqlite_err(path: &Path) -> impl Fn(rusqlite::Error) -> DbError + '_ {
    move |e| super::error_at(&path.display().to_string(), classify(e))
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

/// The checks a node's database file must pass before SQLite opens it: SQLite would treat a
/// missing or 0-byte file as a new, empty database and a truncated one fails late.
pub(super) fn check_file(path: &Path) -> Result<(), DbError> {
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

impl Db {
    /// Create the SQLite database of a new node at `path` (`updhub init`). Refuses a file that
    /// already exists, so an init never overwrites a node's history.
    ///
    /// # Errors
    /// An existing file, or SQLite errors.
    pub fn create(path: &Path, server: ServerId) -> Result<Db, DbError> {
        // Checked before SQLite opens it: an existing file is never written to here.
        if std::fs::metadata(path).is_ok_and(|m| m.len() > 0) {
            return Err(DbError::Exists {
                path: path.to_owned(),
            });
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sqlite_err(path))?;
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
        let found = super::migrate::schema_version(&conn)
            .map_err(|e| super::error_at(&path.display().to_string(), e))?;
        if found == 0 {
            return Err(DbError::Lost {
                path: path.to_owned(),
                why: "holds no updhub schema (it is empty or not an updhub database)",
            });
        }
        Self::setup(conn, path, server)
    }

    /// Connection settings, then migrations.
    fn setup(mut conn: Connection, path: &Path, server: ServerId) -> Result<Db, DbError> {
        let e = sqlite_err(path);
        configure(&conn).map_err(&e)?;
        super::migrate::migrate(&mut conn, path, server.as_str())?;
        let cluster = super::read_cluster_id(&Conn::Sqlite(&conn), &server)
            .map_err(|e| super::error_at(&path.display().to_string(), e))?;
        Ok(Db {
            conn: Some(Mutex::new(conn)),
            engine: Engine::Sqlite(path.to_owned()),
            at: path.display().to_string(),
            server,
            cluster,
            pinned_ms: std::sync::atomic::AtomicI64::new(super::NOT_PINNED),
        })
    }

    /// Check every page of the database (`serve` runs it once at start).
    ///
    /// # Errors
    /// A damaged database, or SQLite errors.
    pub fn check_integrity(&self) -> Result<(), DbError> {
        if self.conn.is_none() {
            // PostgreSQL checks its own pages; its operators run amcheck where they want it.
            return Ok(());
        }
        let problems: Vec<String> = self.read(|c| c.column("PRAGMA quick_check", &[]))?;
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
        if self.conn.is_none() {
            return Ok(());
        }
        let busy: Option<i64> = self.read(|c| c.value("PRAGMA wal_checkpoint(TRUNCATE)", &[]))?;
        if busy.unwrap_or(0) == 0 {
            Ok(())
        } else {
            Err(DbError::Busy {
                at: self.at.clone(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broken_rules_are_told_by_constraint_and_trigger_name() {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(
            "CREATE TABLE t (n INTEGER PRIMARY KEY, CONSTRAINT conservation CHECK (n <= 1));
             CREATE TRIGGER no_seven BEFORE INSERT ON t WHEN NEW.n = -7
             BEGIN SELECT RAISE(ABORT, 'no_seven: seven is refused'); END;",
        )
        .unwrap();
        let rule = |sql: &str| exec(&c, sql, &[]).unwrap_err().rule().map(str::to_owned);
        assert_eq!(
            rule("INSERT INTO t VALUES (2)").as_deref(),
            Some("conservation")
        );
        assert_eq!(
            rule("INSERT INTO t VALUES (-7)").as_deref(),
            Some("no_seven")
        );
        exec(&c, "INSERT INTO t VALUES (1)", &[]).unwrap();
        assert_eq!(rule("INSERT INTO t VALUES (1)").as_deref(), Some("unique"));
        // A message that merely mentions a rule is no broken rule.
        assert_eq!(rule("INSERT INTO nowhere VALUES ('conservation')"), None);
    }

    #[test]
    fn create_never_writes_to_an_existing_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        drop(Db::create(&path, ServerId::new("n1").unwrap()).unwrap());
        let before = std::fs::read(&path).unwrap();
        let err = Db::create(&path, ServerId::new("n2").unwrap())
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("already exists"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }
}

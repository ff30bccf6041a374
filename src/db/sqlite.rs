//! The SQLite engine: open a node's database file (never silently creating one), connection
//! settings, the integrity check and the WAL checkpoint.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OpenFlags};

use super::{sqlite_err, Db, DbError, BUSY_TIMEOUT};
use crate::id::ServerId;

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
        let found = super::migrate::schema_version(&conn).map_err(sqlite_err(path))?;
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
        super::migrate::migrate(&mut conn, path)?;
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
}

#[cfg(test)]
mod tests {
    use super::*;

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

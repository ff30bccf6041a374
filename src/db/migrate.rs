//! Migrations: the SQL files in `schemas/`, applied in order; the schema version is their
//! count. A database written by a newer updhub, or by another build, is refused.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::{sqlite_err, DbError};

/// The migrations, in order; the schema version is their count.
const MIGRATIONS: &[&str] = &[
    include_str!("../../schemas/001-core.sql"),
    include_str!("../../schemas/002-licenses.sql"),
    include_str!("../../schemas/003-clock.sql"),
];

/// A value of the `meta` table, `None` when it or the table is absent (a new file).
fn meta(c: &Connection, key: &str) -> rusqlite::Result<Option<String>> {
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
}

/// The schema number in `meta`, 0 when there is none.
pub(super) fn schema_version(c: &Connection) -> rusqlite::Result<i64> {
    Ok(meta(c, "schema_version")?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0))
}

/// Bring the database on `conn` to this build's schema. A database already there is only
/// read, so read-only commands write nothing and never wait for a writer.
///
/// # Errors
/// SQLite errors, or a schema from a newer or another build.
pub(super) fn migrate(conn: &mut Connection, path: &Path) -> Result<(), DbError> {
    let e = sqlite_err(path);
    let known = MIGRATIONS.len() as i64;
    let digest_of = |n: usize| {
        blake3::hash(MIGRATIONS[..n].concat().as_bytes())
            .to_hex()
            .to_string()
    };
    let up_to_date = schema_version(conn).map_err(&e)? == known
        && meta(conn, "schema_digest").map_err(&e)? == Some(digest_of(MIGRATIONS.len()))
        && meta(conn, "updhub_version").map_err(&e)?.as_deref() == Some(env!("CARGO_PKG_VERSION"));
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
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::Db;
    use crate::id::ServerId;
    use rusqlite::Connection;

    /// A database made by this build, then changed by hand with `sql`.
    fn tampered(dir: &std::path::Path, sql: &str) -> std::path::PathBuf {
        let path = dir.join("t.db");
        drop(Db::create(&path, ServerId::new("n1").unwrap()).unwrap());
        Connection::open(&path).unwrap().execute(sql, []).unwrap();
        path
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = tampered(
            dir.path(),
            "UPDATE meta SET value='99' WHERE key='schema_version'",
        );
        let err = Db::open(&path, ServerId::new("n1").unwrap()).err().unwrap();
        assert!(err.to_string().contains("schema 99"), "{err}");
    }

    #[test]
    fn a_schema_from_another_build_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = tampered(
            dir.path(),
            "UPDATE meta SET value='0000' WHERE key='schema_digest'",
        );
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

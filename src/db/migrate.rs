//! Migrations: the SQL files in `schemas/sqlite/` and `schemas/postgres/`, applied in order;
//! the schema version is their count, and schema N means the same on both engines. A
//! database written by a newer updhub, or by another build, is refused. Migrating takes the
//! database's write lock (SQLite: `BEGIN IMMEDIATE`; PostgreSQL: an advisory lock), so
//! nodes starting at once migrate a database once.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use super::postgres::Pg;
use super::sql::{args, Conn, SqlError};
use super::{error_at, DbError};

/// One engine's migrations and how to ask whether it has a `meta` table yet.
struct Dialect {
    migrations: &'static [&'static str],
    has_meta: &'static str,
}

const SQLITE: Dialect = Dialect {
    migrations: &[
        include_str!("../../schemas/sqlite/001-core.sql"),
        include_str!("../../schemas/sqlite/002-licenses.sql"),
        include_str!("../../schemas/sqlite/003-clock.sql"),
        include_str!("../../schemas/sqlite/004-cluster.sql"),
        include_str!("../../schemas/sqlite/005-cluster-versions.sql"),
        include_str!("../../schemas/sqlite/006-links.sql"),
        include_str!("../../schemas/sqlite/007-grant-reports.sql"),
        include_str!("../../schemas/sqlite/008-grant-keys.sql"),
        include_str!("../../schemas/sqlite/009-grant-feed.sql"),
        include_str!("../../schemas/sqlite/010-products.sql"),
        include_str!("../../schemas/sqlite/011-two-phase.sql"),
        include_str!("../../schemas/sqlite/012-canary.sql"),
        include_str!("../../schemas/sqlite/013-leases.sql"),
        include_str!("../../schemas/sqlite/014-retention.sql"),
        include_str!("../../schemas/sqlite/015-announce.sql"),
        include_str!("../../schemas/sqlite/016-logins.sql"),
        include_str!("../../schemas/sqlite/017-grant-rules.sql"),
        include_str!("../../schemas/sqlite/018-member-process.sql"),
    ],
    has_meta: "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='meta'",
};

const POSTGRES: Dialect = Dialect {
    migrations: &[
        include_str!("../../schemas/postgres/001-core.sql"),
        include_str!("../../schemas/postgres/002-licenses.sql"),
        include_str!("../../schemas/postgres/003-clock.sql"),
        include_str!("../../schemas/postgres/004-cluster.sql"),
        include_str!("../../schemas/postgres/005-cluster-versions.sql"),
        include_str!("../../schemas/postgres/006-links.sql"),
        include_str!("../../schemas/postgres/007-grant-reports.sql"),
        include_str!("../../schemas/postgres/008-grant-keys.sql"),
        include_str!("../../schemas/postgres/009-grant-feed.sql"),
        include_str!("../../schemas/postgres/010-products.sql"),
        include_str!("../../schemas/postgres/011-two-phase.sql"),
        include_str!("../../schemas/postgres/012-canary.sql"),
        include_str!("../../schemas/postgres/013-leases.sql"),
        include_str!("../../schemas/postgres/014-retention.sql"),
        include_str!("../../schemas/postgres/015-announce.sql"),
        include_str!("../../schemas/postgres/016-logins.sql"),
        include_str!("../../schemas/postgres/017-grant-rules.sql"),
        include_str!("../../schemas/postgres/018-member-process.sql"),
    ],
    has_meta: "SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname = current_schema() AND tablename = 'meta'",
};

/// The schema number of a PostgreSQL database, 0 when it has none.
pub(super) fn postgres_version(pg: &Pg) -> Result<i64, SqlError> {
    pg.run(false, &mut |c| version_of(c, &POSTGRES))
}

/// The schema number this build knows, on PostgreSQL or SQLite.
pub(super) fn known(postgres: bool) -> i64 {
    if postgres {
        POSTGRES.migrations.len() as i64
    } else {
        SQLITE.migrations.len() as i64
    }
}

/// The advisory lock every node takes to migrate a PostgreSQL database ("updhub" in ASCII).
const MIGRATION_LOCK: i64 = 0x7570_6468_7562;

/// A value of the `meta` table, `None` when it or the table is absent (a new database).
fn meta(c: &Conn<'_>, d: &Dialect, key: &str) -> Result<Option<String>, SqlError> {
    if c.value::<i64>(d.has_meta, &[])?.unwrap_or(0) == 0 {
        return Ok(None);
    }
    c.value("SELECT value FROM meta WHERE key=$1", args![key])
}

/// The schema number in `meta`, 0 when there is none.
fn version_of(c: &Conn<'_>, d: &Dialect) -> Result<i64, SqlError> {
    Ok(meta(c, d, "schema_version")?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0))
}

/// The schema number of an SQLite database, 0 when it has none.
pub(super) fn schema_version(c: &Connection) -> Result<i64, SqlError> {
    version_of(&Conn::Sqlite(c), &SQLITE)
}

fn digest_of(d: &Dialect, n: usize) -> String {
    blake3::hash(d.migrations[..n].concat().as_bytes())
        .to_hex()
        .to_string()
}

/// Whether the database is at this build's schema, written by this build.
fn up_to_date(c: &Conn<'_>, d: &Dialect) -> Result<bool, SqlError> {
    Ok(version_of(c, d)? == d.migrations.len() as i64
        && meta(c, d, "schema_digest")? == Some(digest_of(d, d.migrations.len()))
        && meta(c, d, "updhub_version")?.as_deref() == Some(env!("CARGO_PKG_VERSION")))
}

/// Where a database stands against this build's schema, as read without changing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// No updhub schema yet: the normal open path creates it.
    Empty,
    /// This build's schema.
    Current,
    /// Another schema: older, newer, or (`foreign`) this build's number with another build's
    /// text.
    Other {
        /// The schema found.
        found: i64,
        /// The schema this build knows.
        known: i64,
        /// The updhub version that wrote it ("?" when it did not say).
        writer: String,
        /// Its number is one this build knows, but its text is another build's.
        foreign: bool,
    },
}

/// Where the database on `c` stands; only reads.
pub(super) fn standing(c: &Conn<'_>, postgres: bool) -> Result<Standing, SqlError> {
    let d = if postgres { &POSTGRES } else { &SQLITE };
    let known = d.migrations.len() as i64;
    let found = version_of(c, d)?;
    if found == 0 {
        return Ok(Standing::Empty);
    }
    let foreign = found <= known
        && meta(c, d, "schema_digest")?.is_some_and(|s| s != digest_of(d, found as usize));
    if found == known && !foreign {
        return Ok(Standing::Current);
    }
    Ok(Standing::Other {
        found,
        known,
        writer: meta(c, d, "updhub_version")?.unwrap_or_else(|| "?".to_owned()),
        foreign,
    })
}

/// The cluster a database belongs to (see `schemas/*/004-cluster.sql`).
pub(super) fn cluster_id(c: &Conn<'_>) -> Result<Option<String>, SqlError> {
    c.value("SELECT value FROM meta WHERE key='cluster_id'", &[])
}

/// Inside the migration lock: refuse a newer or foreign schema, apply what is missing. A
/// database without a cluster id gets `node`'s: the node that made it names its cluster.
fn apply(c: &Conn<'_>, d: &Dialect, at: &str, node: &str) -> Result<Result<(), DbError>, SqlError> {
    let known = d.migrations.len() as i64;
    let found = version_of(c, d)?;
    if found > known {
        return Ok(Err(DbError::TooNew {
            at: at.to_owned(),
            found,
            writer: meta(c, d, "updhub_version")?.unwrap_or_else(|| "?".to_owned()),
            ours: env!("CARGO_PKG_VERSION"),
            known,
        }));
    }
    // The migrations a database has, as text: the same schema number with other text is a
    // database from another build, refused rather than half understood.
    if found > 0 {
        let stored = meta(c, d, "schema_digest")?;
        if stored.is_some_and(|s| s != digest_of(d, found as usize)) {
            return Ok(Err(DbError::Foreign {
                at: at.to_owned(),
                found,
            }));
        }
    }
    for sql in &d.migrations[found as usize..] {
        c.batch(sql)?;
    }
    c.exec(
        "INSERT INTO meta(key, value) VALUES ('schema_version', $1), ('updhub_version', $2), ('schema_digest', $3)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        args![known.to_string(), env!("CARGO_PKG_VERSION"), digest_of(d, d.migrations.len())],
    )?;
    c.exec(
        "INSERT INTO meta(key, value) VALUES ('cluster_id', $1) ON CONFLICT(key) DO NOTHING",
        args![node],
    )?;
    Ok(Ok(()))
}

/// Bring the SQLite database on `conn` to this build's schema. A database already there is
/// only read, so read-only commands write nothing and never wait for a writer.
///
/// # Errors
/// SQLite errors, or a schema from a newer or another build.
pub(super) fn migrate(conn: &mut Connection, path: &Path, node: &str) -> Result<(), DbError> {
    let at = path.display().to_string();
    let e = |err| error_at(&at, err);
    if up_to_date(&Conn::Sqlite(conn), &SQLITE).map_err(e)? {
        return Ok(());
    }
    // IMMEDIATE: take the write lock before reading, so two processes migrating at once
    // wait for each other instead of failing on a stale read.
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(super::sqlite::classify)
        .map_err(e)?;
    apply(&Conn::Sqlite(&tx), &SQLITE, &at, node).map_err(e)??;
    tx.commit().map_err(super::sqlite::classify).map_err(e)
}

/// Bring a PostgreSQL database to this build's schema, under the advisory lock.
///
/// # Errors
/// Database errors, or a schema from a newer or another build.
///
/// A shared database at an older schema is migrated by a starting node only when no node
/// of another updhub version is connected to it: old nodes would run their SQL against the
/// new schema. `on_purpose` (`updhub db upgrade`) migrates anyway.
pub(super) fn migrate_postgres(
    pg: &Pg,
    at: &str,
    node: &str,
    on_purpose: bool,
) -> Result<(), DbError> {
    let e = |err| error_at(at, err);
    if pg
        .run(false, &mut |c| up_to_date(c, &POSTGRES))
        .map_err(e)?
    {
        return Ok(());
    }
    pg.run(true, &mut |c| {
        c.exec("SELECT pg_advisory_xact_lock($1)", args![MIGRATION_LOCK])?;
        let found = version_of(c, &POSTGRES)?;
        let known = POSTGRES.migrations.len() as i64;
        if !on_purpose && found > 0 && found < known {
            let others = other_versions(c)?;
            if !others.is_empty() {
                return Ok(Err(DbError::UpgradeHeld {
                    at: at.to_owned(),
                    found,
                    known,
                    ours: env!("CARGO_PKG_VERSION"),
                    others: others.join(", "),
                }));
            }
        }
        apply(c, &POSTGRES, at, node)
    })
    .map_err(e)?
}

/// The nodes of another updhub version connected to this database now, as "NODE (updhub
/// VERSION)": every node names itself and its version in its connections'
/// application_name ("updhub VERSION NODE").
fn other_versions(c: &Conn<'_>) -> Result<Vec<String>, SqlError> {
    let names: Vec<String> = c.column(
        "SELECT DISTINCT application_name FROM pg_stat_activity
          WHERE datname = current_database() AND pid <> pg_backend_pid()
            AND application_name LIKE 'updhub %' ORDER BY application_name",
        &[],
    )?;
    Ok(names
        .iter()
        .filter_map(|n| {
            let mut parts = n.splitn(3, ' ').skip(1);
            let (version, node) = (parts.next()?, parts.next().unwrap_or("?"));
            (version != env!("CARGO_PKG_VERSION")).then(|| format!("{node} (updhub {version})"))
        })
        .collect())
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
    fn schema_5_gives_the_cluster_the_latest_published_version_and_every_version_row() {
        use super::{digest_of, SQLITE};
        use crate::id::{BlobId, Root};
        use crate::repo::Published;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        let conn = Connection::open(&path).unwrap();
        for sql in &SQLITE.migrations[..4] {
            conn.execute_batch(sql).unwrap();
        }
        // Two nodes of schema 4 on one database, n1 made it; n2 published further.
        let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
        let exp = chrono::Utc::now() + chrono::Duration::hours(1);
        let p1 = Published::sign(Root(BlobId::of(b"1")), 3, exp, &key);
        let p2 = Published::sign(Root(BlobId::of(b"2")), 5, exp, &key);
        for (node, p) in [("n1", &p1), ("n2", &p2)] {
            conn.execute(
                "INSERT INTO published(server_id, number, root, expires, document, updated, validity) VALUES (?1, ?2, ?3, 0, ?4, 0, 600)",
                rusqlite::params![node, p.number, p.root.to_string(), serde_json::to_string(p).unwrap()],
            )
            .unwrap();
            for n in 1..=p.number {
                conn.execute(
                    "INSERT INTO versions(server_id, number, root, files, bytes, created) VALUES (?1, ?2, ?3, 1, 1, 0)",
                    rusqlite::params![node, n, Root(BlobId::of(format!("{node}-{n}").as_bytes())).to_string()],
                )
                .unwrap();
            }
        }
        conn.execute_batch(&format!(
            "INSERT INTO meta(key, value) VALUES ('schema_version', '4'), ('updhub_version', '{}'), ('schema_digest', '{}'), ('cluster_id', 'n1')",
            env!("CARGO_PKG_VERSION"),
            digest_of(&SQLITE, 4)
        ))
        .unwrap();
        drop(conn);
        let db = Db::open(&path, ServerId::new("n1").unwrap()).unwrap();
        assert_eq!(db.cluster_published().unwrap(), Some(p2));
        assert_eq!(
            db.published().unwrap(),
            Some(p1),
            "each node keeps what it holds"
        );
        let numbers: Vec<u64> = db.versions().unwrap().iter().map(|v| v.number).collect();
        assert_eq!(numbers, vec![5, 4, 3, 2, 1]);
        assert_eq!(
            db.published_validity().unwrap(),
            Some(std::time::Duration::from_secs(600))
        );
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

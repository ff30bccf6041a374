//! Stations: each holds one license from a source. Each function is one statement inside a
//! license ledger transaction (see [`super::ledger`]).

use chrono::{DateTime, Utc};

use super::sql::{args, Conn, SqlError};
use crate::license::ledger::StationRow;

/// A station's secret hash and the source of its license.
///
/// # Errors
/// The query failed.
pub fn get(
    c: &Conn<'_>,
    server: &str,
    station: &str,
) -> Result<Option<(String, String)>, SqlError> {
    c.row(
        "SELECT secret_hash, source_id FROM stations WHERE server_id=$1 AND station_id=$2",
        args![server, station],
    )?
    .map(|r| Ok((r.get(0)?, r.get(1)?)))
    .transpose()
}

/// A station was seen at `now`.
///
/// # Errors
/// The statement failed.
pub fn touch(
    c: &Conn<'_>,
    server: &str,
    station: &str,
    now: DateTime<Utc>,
) -> Result<(), SqlError> {
    c.exec(
        "UPDATE stations SET last_seen=$3 WHERE server_id=$1 AND station_id=$2",
        args![server, station, now],
    )?;
    Ok(())
}

/// Register a station on `source`, first seen at `now`.
///
/// # Errors
/// The statement failed (a conservation rule, too).
pub fn insert(
    c: &Conn<'_>,
    server: &str,
    station: &str,
    secret_hash: &str,
    source: &str,
    now: DateTime<Utc>,
) -> Result<(), SqlError> {
    c.exec(
        "INSERT INTO stations(server_id, station_id, secret_hash, source_id, registered, last_seen)
         VALUES ($1,$2,$3,$4,$5,$5)",
        args![server, station, secret_hash, source, now],
    )?;
    Ok(())
}

/// PostgreSQL only: register a new station on the source [`super::license_sources::pick`]
/// would choose for it, in one statement (one round trip, where pick and insert take two):
/// the source, or `None` when nothing changed because the station exists or no source has
/// room. The same rules hold: the candidates are locked as `pick` locks them (not at all
/// for a station that exists: the pick is never run), and the triggers judge the insert.
///
/// # Errors
/// The statement failed (a conservation rule, too).
pub fn insert_picking(
    c: &Conn<'_>,
    server: &str,
    station: &str,
    secret_hash: &str,
    now: DateTime<Utc>,
) -> Result<Option<String>, SqlError> {
    use super::license_sources::{PICK, PICK_LOCK};
    debug_assert!(c.is_postgres(), "insert_picking is PostgreSQL's");
    c.value(
        &format!(
            "WITH pick AS ({PICK}{PICK_LOCK})
             INSERT INTO stations(server_id, station_id, secret_hash, source_id, registered, last_seen)
             SELECT $1, $5, $6, source_id, $7, $7 FROM pick
              WHERE NOT EXISTS (SELECT 1 FROM stations WHERE server_id=$1 AND station_id=$5)
              ORDER BY usable_until DESC, source_id LIMIT 1
             ON CONFLICT (server_id, station_id) DO NOTHING
             RETURNING source_id"
        ),
        args![server, None::<i64>, 1, "", station, secret_hash, now],
    )
}

/// A station with these credentials was seen at `now`: the source of its license, or
/// `None` when there is no such station.
///
/// # Errors
/// The statement failed.
pub fn heartbeat(
    c: &Conn<'_>,
    server: &str,
    station: &str,
    secret_hash: &str,
    now: DateTime<Utc>,
) -> Result<Option<String>, SqlError> {
    c.value(
        "UPDATE stations SET last_seen=$4 WHERE server_id=$1 AND station_id=$2 AND secret_hash=$3 RETURNING source_id",
        args![server, station, secret_hash, now],
    )
}

/// The stations licensed from `source`.
///
/// # Errors
/// The query failed.
pub fn of_source(c: &Conn<'_>, server: &str, source: &str) -> Result<Vec<String>, SqlError> {
    c.column(
        "SELECT station_id FROM stations WHERE server_id=$1 AND source_id=$2 ORDER BY station_id",
        args![server, source],
    )
}

/// Move a station's license to `source`.
///
/// # Errors
/// The statement failed (a conservation rule, too).
pub fn move_to(c: &Conn<'_>, server: &str, station: &str, source: &str) -> Result<(), SqlError> {
    c.exec(
        "UPDATE stations SET source_id=$3 WHERE server_id=$1 AND station_id=$2",
        args![server, station, source],
    )?;
    Ok(())
}

/// Remove a station.
///
/// # Errors
/// The statement failed.
pub fn delete(c: &Conn<'_>, server: &str, station: &str) -> Result<(), SqlError> {
    c.exec(
        "DELETE FROM stations WHERE server_id=$1 AND station_id=$2",
        args![server, station],
    )?;
    Ok(())
}

/// Stations last seen before `before`.
///
/// # Errors
/// The query failed.
pub fn stale(c: &Conn<'_>, server: &str, before: DateTime<Utc>) -> Result<Vec<String>, SqlError> {
    c.column(
        "SELECT station_id FROM stations WHERE server_id=$1 AND last_seen < $2 ORDER BY station_id",
        args![server, before],
    )
}

/// Every station.
///
/// # Errors
/// The query failed, or a row is damaged.
pub fn all(c: &Conn<'_>, server: &str) -> Result<Vec<StationRow>, SqlError> {
    c.map_rows(
            "SELECT station_id, source_id, registered, last_seen FROM stations WHERE server_id=$1 ORDER BY station_id",
            args![server],
        |r| {
            Ok(StationRow {
                station_id: r.get(0)?,
                source_id: r.get(1)?,
                registered: r.get(2)?,
                last_seen: r.get(3)?,
            })
        },
    )
}

/// Open the savepoint that moving a source's stations can roll back to.
///
/// # Errors
/// The statement failed.
pub fn rehome_begin(c: &Conn<'_>) -> Result<(), SqlError> {
    c.batch("SAVEPOINT rehome")
}

/// Undo every move since [`rehome_begin`].
///
/// # Errors
/// The statement failed.
pub fn rehome_undo(c: &Conn<'_>) -> Result<(), SqlError> {
    c.batch("ROLLBACK TO SAVEPOINT rehome; RELEASE SAVEPOINT rehome")
}

/// Keep every move since [`rehome_begin`].
///
/// # Errors
/// The statement failed.
pub fn rehome_keep(c: &Conn<'_>) -> Result<(), SqlError> {
    c.batch("RELEASE SAVEPOINT rehome")
}

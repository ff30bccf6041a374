//! The license audit log: every license state change appends a row, at the ledger
//! transaction's time; and its archives, the only way a row leaves it.

use chrono::{DateTime, Utc};

use super::sql::{args, Conn, Row, SqlError};
use crate::license::archive::LogArchive;
use crate::license::ledger::LogRow;

/// Append to the audit log, at the transaction's time.
///
/// # Errors
/// The statement failed.
pub fn append(
    c: &Conn<'_>,
    server: &str,
    event: &str,
    subject: &str,
    details: &str,
) -> Result<(), SqlError> {
    c.exec(
        "INSERT INTO license_log(server_id, at, event, subject, details, node_id)
         VALUES ($1, (SELECT now FROM clock), $2, $3, $4, (SELECT node FROM clock))",
        args![server, event, subject, details],
    )?;
    Ok(())
}

/// The audit log, oldest first.
///
/// # Errors
/// The query failed, or a row is damaged.
pub fn all(c: &Conn<'_>, server: &str) -> Result<Vec<LogRow>, SqlError> {
    c.map_rows(
        "SELECT seq, at, event, subject, details, node_id FROM license_log WHERE server_id=$1 ORDER BY seq",
        args![server],
        log_row,
    )
}

fn log_row(r: &Row) -> Result<LogRow, SqlError> {
    Ok(LogRow {
        seq: r.get(0)?,
        at: r.get(1)?,
        event: r.get(2)?,
        subject: r.get(3)?,
        details: r.get(4)?,
        node_id: r.get(5)?,
    })
}

/// The oldest rows of the log, up to and including the last one written before `before`,
/// at most `limit`, oldest first: what the archive task writes to its next file.
///
/// # Errors
/// The query failed, or a row is damaged.
pub fn past(
    c: &Conn<'_>,
    server: &str,
    before: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<LogRow>, SqlError> {
    c.map_rows(
        "SELECT seq, at, event, subject, details, node_id FROM license_log
          WHERE server_id=$1
            AND seq <= (SELECT max(seq) FROM license_log WHERE server_id=$1 AND at < $2)
          ORDER BY seq LIMIT $3",
        args![server, before, limit],
        log_row,
    )
}

/// Record `a` (its time and node: the transaction's) and delete the rows it covers; the
/// schema's delete trigger allows exactly these. Returns the archive as recorded and how
/// many rows were deleted.
///
/// # Errors
/// The statements failed (an archive of that range already recorded, for one).
pub fn archive(c: &Conn<'_>, server: &str, a: &LogArchive) -> Result<(LogArchive, u64), SqlError> {
    c.exec(
        "INSERT INTO log_archives(server_id, from_seq, upto_seq, rows, file, blake3, at, node_id)
         VALUES ($1,$2,$3,$4,$5,$6,(SELECT now FROM clock),(SELECT node FROM clock))",
        args![server, a.from_seq, a.upto_seq, a.rows, a.file, a.blake3],
    )?;
    let recorded = c
        .row(
            &format!("{ARCHIVE_COLUMNS} WHERE server_id=$1 AND upto_seq=$2"),
            args![server, a.upto_seq],
        )?
        .map(|r| log_archive(&r))
        .transpose()?
        .ok_or_else(|| SqlError::Damaged(format!("log archive {} vanished", a.file)))?;
    let deleted = c.exec(
        "DELETE FROM license_log WHERE server_id=$1 AND seq BETWEEN $2 AND $3",
        args![server, a.from_seq, a.upto_seq],
    )?;
    Ok((recorded, deleted))
}

const ARCHIVE_COLUMNS: &str =
    "SELECT from_seq, upto_seq, rows, file, blake3, at, node_id FROM log_archives";

fn log_archive(r: &Row) -> Result<LogArchive, SqlError> {
    Ok(LogArchive {
        from_seq: r.get(0)?,
        upto_seq: r.get(1)?,
        rows: r.get(2)?,
        file: r.get(3)?,
        blake3: r.get(4)?,
        at: r.get(5)?,
        node_id: r.get(6)?,
    })
}

/// The archives of the log, oldest first.
///
/// # Errors
/// The query failed, or a row is damaged.
pub fn archives(c: &Conn<'_>, server: &str) -> Result<Vec<LogArchive>, SqlError> {
    c.map_rows(
        &format!("{ARCHIVE_COLUMNS} WHERE server_id=$1 ORDER BY upto_seq"),
        args![server],
        log_archive,
    )
}

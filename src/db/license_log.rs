//! The license audit log: every license state change appends a row, at the ledger
//! transaction's time.

use super::sql::{args, Conn, SqlError};
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
        |r| {
            Ok(LogRow {
                seq: r.get(0)?,
                at: r.get(1)?,
                event: r.get(2)?,
                subject: r.get(3)?,
                details: r.get(4)?,
                node_id: r.get(5)?,
            })
        },
    )
}

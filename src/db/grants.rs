//! Grants this server donated: licenses carved from a source for another server, with the
//! signed token the receiver fetches. Each function is one statement inside a license
//! ledger transaction (see [`super::ledger`]).

use chrono::{DateTime, Utc};

use super::sql::{args, Conn, SqlError};
use crate::license::ledger::{OutgoingGrant, ReceiverCount};

/// A grant this server donates, to store.
#[derive(Debug, Clone)]
pub struct NewGrant<'a> {
    /// Its id.
    pub grant_id: &'a str,
    /// Carved from.
    pub source: &'a str,
    /// To whom.
    pub receiver: &'a str,
    /// How many.
    pub count: u32,
    /// Until.
    pub not_after: DateTime<Utc>,
    /// The idempotency key of the request.
    pub request_id: &'a str,
    /// The signed token.
    pub token: &'a str,
    /// When (unix seconds).
    pub now: i64,
}

/// The token of the grant a request made, if it made one.
///
/// # Errors
/// The query failed.
pub fn by_request(
    c: &Conn<'_>,
    server: &str,
    request_id: &str,
) -> Result<Option<String>, SqlError> {
    c.value(
        "SELECT token FROM grants WHERE server_id=$1 AND request_id=$2",
        args![server, request_id],
    )
}

/// On PostgreSQL, what locks the grants a write transaction reads to change: without it,
/// two members changing one grant at once both read revision N and the later commit
/// writes its N + 1 over the other's, or an N over N + 1 (a lost update; receivers keep
/// the higher revision and never learn the donor's). SQLite has one writer.
fn for_update(c: &Conn<'_>) -> &'static str {
    if c.is_postgres() {
        " FOR UPDATE"
    } else {
        ""
    }
}

/// A grant's token and status, to change it (locked until the transaction ends).
///
/// # Errors
/// The query failed.
pub fn get(c: &Conn<'_>, server: &str, grant: &str) -> Result<Option<(String, String)>, SqlError> {
    c.row(
        &format!(
            "SELECT token, status FROM grants WHERE server_id=$1 AND grant_id=$2{}",
            for_update(c)
        ),
        args![server, grant],
    )?
    .map(|r| Ok((r.get(0)?, r.get(1)?)))
    .transpose()
}

/// A grant's stored token, read without a lock (a read-only transaction on PostgreSQL
/// refuses `FOR UPDATE`).
///
/// # Errors
/// The query failed.
pub fn token(c: &Conn<'_>, server: &str, grant: &str) -> Result<Option<String>, SqlError> {
    c.row(
        "SELECT token FROM grants WHERE server_id=$1 AND grant_id=$2",
        args![server, grant],
    )?
    .map(|r| r.get(0))
    .transpose()
}

/// Store a new active grant.
///
/// # Errors
/// The statement failed (a conservation rule, too).
pub fn insert(c: &Conn<'_>, server: &str, g: &NewGrant<'_>) -> Result<(), SqlError> {
    c.exec(
        "INSERT INTO grants(server_id, grant_id, source_id, receiver, count, not_after, status, revision, request_id, token, created, updated)
         VALUES ($1,$2,$3,$4,$5,$6,'active',1,$7,$8,$9,$9)",
        args![
            server,
            g.grant_id,
            g.source,
            g.receiver,
            g.count,
            g.not_after,
            g.request_id,
            g.token,
            g.now
        ],
    )?;
    Ok(())
}

/// Store a re-issued grant: its end, status, revision and token, updated now.
///
/// # Errors
/// The statement failed (a conservation rule, too).
pub fn reissue(
    c: &Conn<'_>,
    server: &str,
    grant: &str,
    not_after: DateTime<Utc>,
    status: &str,
    revision: u32,
    token: &str,
) -> Result<(), SqlError> {
    c.exec(
        "UPDATE grants SET not_after=$3, status=$4, revision=$5, token=$6, updated=(SELECT now FROM clock)
          WHERE server_id=$1 AND grant_id=$2",
        args![server, grant, not_after, status, revision, token],
    )?;
    Ok(())
}

/// How a grant ended without a new token: by the clock, or revoked and acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Past its end plus the skew margin.
    Expired,
    /// Revoked, and the receiver acknowledged.
    Revoked,
}

/// Record that a grant ended.
///
/// # Errors
/// The statement failed.
pub fn set_ended(
    c: &Conn<'_>,
    server: &str,
    grant: &str,
    how: Ended,
    now: DateTime<Utc>,
) -> Result<(), SqlError> {
    let status = match how {
        Ended::Expired => "expired",
        Ended::Revoked => "revoked",
    };
    c.exec(
        "UPDATE grants SET status=$4, updated=$3 WHERE server_id=$1 AND grant_id=$2",
        args![server, grant, now, status],
    )?;
    Ok(())
}

/// Grants still counting that end by `before`: id, receiver and count.
///
/// # Errors
/// The query failed.
pub fn ended(
    c: &Conn<'_>,
    server: &str,
    before: DateTime<Utc>,
) -> Result<Vec<(String, String, i64)>, SqlError> {
    c.map_rows(
            "SELECT grant_id, receiver, count FROM grants
              WHERE server_id=$1 AND status IN ('active','revoking') AND not_after <= $2 ORDER BY grant_id",
            args![server, before],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
}

/// The active grants carved from `source`: id and token, to change them (locked until the
/// transaction ends).
///
/// # Errors
/// The query failed.
pub fn active_from(
    c: &Conn<'_>,
    server: &str,
    source: &str,
) -> Result<Vec<(String, String)>, SqlError> {
    c.map_rows(
            &format!(
                "SELECT grant_id, token FROM grants WHERE server_id=$1 AND source_id=$2 AND status='active' ORDER BY grant_id{}",
                for_update(c)
            ),
            args![server, source],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

/// The stored tokens of the grants `receiver` still has to act on.
///
/// # Errors
/// The query failed.
pub fn tokens_for(c: &Conn<'_>, server: &str, receiver: &str) -> Result<Vec<String>, SqlError> {
    c.column(
        "SELECT token FROM grants WHERE server_id=$1 AND receiver=$2
           AND status IN ('active', 'revoking') ORDER BY created, grant_id",
        args![server, receiver],
    )
}

/// Every grant this server donated, oldest first.
///
/// # Errors
/// The query failed, or a row is damaged.
pub fn outgoing(c: &Conn<'_>, server: &str) -> Result<Vec<OutgoingGrant>, SqlError> {
    c.map_rows(
        "SELECT g.grant_id, g.source_id, g.receiver, g.count, g.not_after, g.status,
                r.count, r.counted, r.reported_at
           FROM grants g
           LEFT JOIN grant_reports r
             ON r.server_id = g.server_id AND r.receiver = g.receiver AND r.grant_id = g.grant_id
          WHERE g.server_id=$1 ORDER BY g.created, g.grant_id",
        args![server],
        |r| {
            let grant_id: String = r.get(0)?;
            let count: Option<u64> = r.get(6)?;
            let reported = match count {
                Some(count) => Some(ReceiverCount {
                    grant_id: grant_id.clone(),
                    count,
                    counted: r.get(7)?,
                    reported_at: r.get(8)?,
                }),
                None => None,
            };
            Ok(OutgoingGrant {
                grant_id,
                source_id: r.get(1)?,
                receiver: r.get(2)?,
                count: r.get(3)?,
                not_after: r.get(4)?,
                status: r.get(5)?,
                reported,
            })
        },
    )
}

/// Receivers' reports of grants this server never gave them: (receiver, report).
pub fn stray_reports(c: &Conn<'_>, server: &str) -> Result<Vec<(String, ReceiverCount)>, SqlError> {
    c.map_rows(
        "SELECT r.receiver, r.grant_id, r.count, r.counted, r.reported_at FROM grant_reports r
          WHERE r.server_id=$1 AND NOT EXISTS (SELECT 1 FROM grants g
                 WHERE g.server_id = r.server_id AND g.grant_id = r.grant_id AND g.receiver = r.receiver)
          ORDER BY r.receiver, r.grant_id",
        args![server],
        |r| {
            Ok((
                r.get(0)?,
                ReceiverCount {
                    grant_id: r.get(1)?,
                    count: r.get(2)?,
                    counted: r.get(3)?,
                    reported_at: r.get(4)?,
                },
            ))
        },
    )
}

/// Keep what `receiver` reports of the grants it holds from this server (its last report
/// replaces the earlier one).
pub fn record_reports(
    c: &Conn<'_>,
    server: &str,
    receiver: &str,
    reports: &[ReceiverCount],
    now: DateTime<Utc>,
) -> Result<(), SqlError> {
    c.exec(
        "DELETE FROM grant_reports WHERE server_id=$1 AND receiver=$2",
        args![server, receiver],
    )?;
    for r in reports {
        c.exec(
            "INSERT INTO grant_reports(server_id, grant_id, receiver, count, counted, reported_at)
             VALUES ($1,$2,$3,$4,$5,$6) ON CONFLICT (server_id, receiver, grant_id) DO NOTHING",
            args![server, r.grant_id, receiver, r.count, r.counted, now],
        )?;
    }
    Ok(())
}

/// Delete the receivers' reports to `server` older than `before`: a receiver that stopped
/// reporting then shows no report, not a stale one. Returns how many.
///
/// # Errors
/// The statement failed.
pub fn purge_reports(c: &Conn<'_>, server: &str, before: DateTime<Utc>) -> Result<u64, SqlError> {
    c.exec(
        "DELETE FROM grant_reports WHERE server_id=$1 AND reported_at < $2",
        args![server, before],
    )
}

//! The grants fetch's change cursor (schema 9): on the donor, each receiver's feed of grant
//! changes and the ledger's epoch; on the receiver, the cursor of its last answer from each
//! donor.
//!
//! ## Why a reader never skips a change (both engines, any number of writers)
//! The schema's trigger runs inside every transaction that inserts or updates a grant. It
//! bumps the counter row of the grant's receiver (`grant_feeds`, one row per donor ledger
//! and receiver) and writes the new number as the grant's latest change (`grant_changes`).
//! The bump takes the row's lock (SQLite: the one writer; PostgreSQL: the row lock of
//! `INSERT .. ON CONFLICT DO UPDATE`, which waits for a holder to commit and then updates
//! the committed row) and keeps it until the transaction ends. So the transaction that
//! numbers change k+1 of a receiver can only do so once the one that numbered k has
//! committed: a receiver's changes are numbered in commit order, with no gaps that can
//! fill later (a rolled-back request gives its number back with its change).
//!
//! [`read`] reads the epoch, the receiver's counter N and the changed grants in one
//! statement, so in one snapshot. That snapshot holds the change that set N, so (commit
//! order) every change numbered up to N, and no change numbered past N (the counter would
//! show it). A grant's row and its `grant_changes` row are written by the same transaction,
//! so the token read is the one of the grant's latest change. The answer is therefore
//! exactly the grants whose latest change is in `(since, N]`, each as it stands at N; a
//! receiver that applied every answer through `since` holds, after this one, every grant as
//! it stood at N. A plain global sequence would not do: numbers are handed out when a
//! transaction asks, so a transaction holding a lower number may commit after a reader saw
//! a higher one, and a reader whose cursor passed it would never fetch it.
//!
//! The epoch is drawn anew whenever a node starts serving: a database restored from a
//! backup rewinds the counters (numbers a receiver has seen would be given to new
//! changes), and it can only be restored while updhub is stopped. A cursor carries its
//! epoch; one of another epoch gets the full answer.

use chrono::{DateTime, Utc};

use super::sql::{args, Conn, SqlError};

/// What one fetch reads, in one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedRead {
    /// The ledger's epoch.
    pub epoch: String,
    /// The receiver's counter: the number of its latest grant change (0: none yet).
    pub seq: i64,
    /// The stored tokens (signed JSON), oldest grant first.
    pub tokens: Vec<String>,
}

/// The grants a receiver still has to act on (active, and revoked but not acknowledged).
const ALL: &str = "SELECT created, grant_id, token FROM grants
                    WHERE server_id = $1 AND receiver = $2 AND status IN ('active', 'revoking')";

/// The active grants changed after `$3`, and every revocation not yet acknowledged.
const CHANGED: &str = "SELECT g.created, g.grant_id, g.token FROM grant_changes ch
                         JOIN grants g ON g.server_id = ch.server_id AND g.grant_id = ch.grant_id
                        WHERE ch.server_id = $1 AND ch.receiver = $2 AND ch.seq > $3
                          AND g.status = 'active'
                       UNION ALL
                       SELECT created, grant_id, token FROM grants
                        WHERE server_id = $1 AND receiver = $2 AND status = 'revoking'";

/// Read `receiver`'s feed: every grant it has to act on (`since` None), or those changed
/// after number `since` and the revocations it has not acknowledged. `None` when the ledger
/// has no epoch yet ([`set_epoch`] gives it one).
///
/// # Errors
/// The query failed.
pub fn read(
    c: &Conn<'_>,
    server: &str,
    receiver: &str,
    since: Option<i64>,
) -> Result<Option<FeedRead>, SqlError> {
    // One statement: one snapshot on either engine (see the module's comment).
    let sql = |grants: &str| {
        format!(
            "SELECT e.epoch, COALESCE(f.seq, 0), t.token
               FROM grant_feed_epochs e
               LEFT JOIN grant_feeds f ON f.server_id = e.server_id AND f.receiver = $2
               LEFT JOIN ({grants}) t ON TRUE
              WHERE e.server_id = $1
              ORDER BY t.created, t.grant_id"
        )
    };
    let rows = match since {
        None => c.rows(&sql(ALL), args![server, receiver])?,
        Some(n) => c.rows(&sql(CHANGED), args![server, receiver, n])?,
    };
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let (epoch, seq) = (first.get(0)?, first.get(1)?);
    let tokens = rows
        .iter()
        .filter_map(|r| r.get::<Option<String>>(2).transpose())
        .collect::<Result<_, _>>()?;
    Ok(Some(FeedRead { epoch, seq, tokens }))
}

/// Give the ledger `epoch`: in place of the one it has (`replace`), or only if it has none.
///
/// # Errors
/// The statement failed.
pub fn set_epoch(
    c: &Conn<'_>,
    server: &str,
    epoch: &str,
    now: DateTime<Utc>,
    replace: bool,
) -> Result<(), SqlError> {
    let on_conflict = if replace {
        "DO UPDATE SET epoch = excluded.epoch, drawn_at = excluded.drawn_at"
    } else {
        "DO NOTHING"
    };
    c.exec(
        &format!(
            "INSERT INTO grant_feed_epochs(server_id, epoch, drawn_at) VALUES ($1, $2, $3)
             ON CONFLICT (server_id) {on_conflict}"
        ),
        args![server, epoch, now],
    )?;
    Ok(())
}

/// Receiver side: the cursor of the last answer from the donor at `donor_url`.
///
/// # Errors
/// The query failed.
pub fn cursor(c: &Conn<'_>, server: &str, donor_url: &str) -> Result<Option<String>, SqlError> {
    c.value(
        "SELECT cursor FROM grant_cursors WHERE server_id = $1 AND donor_url = $2",
        args![server, donor_url],
    )
}

/// Receiver side: keep the cursor of an answer from `donor` (at `donor_url`), in the
/// transaction that applied the answer.
///
/// # Errors
/// The statement failed.
pub fn keep_cursor(
    c: &Conn<'_>,
    server: &str,
    donor_url: &str,
    donor: &str,
    cursor: &str,
    now: DateTime<Utc>,
) -> Result<(), SqlError> {
    c.exec(
        "INSERT INTO grant_cursors(server_id, donor_url, donor, cursor, updated) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (server_id, donor_url) DO UPDATE
            SET donor = excluded.donor, cursor = excluded.cursor, updated = excluded.updated",
        args![server, donor_url, donor, cursor, now],
    )?;
    Ok(())
}

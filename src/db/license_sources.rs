//! License sources: the keys this server holds and the grants it received, with the
//! counters (used, donated) that the schema's triggers keep. Each function is one statement
//! inside a license ledger transaction (see [`super::ledger`]); "now" inside a statement is
//! the transaction's time, the `clock` row, as the triggers read it.

use chrono::{DateTime, Utc};

use super::sql::{args, Conn, SqlError};

/// A license key to store.
#[derive(Debug, Clone)]
pub struct NewKey<'a> {
    /// Its key id, the source id.
    pub key_id: &'a str,
    /// Who holds it.
    pub holder: &'a str,
    /// Station licenses in it.
    pub count: u32,
    /// Valid from.
    pub not_before: DateTime<Utc>,
    /// Valid until (and counted on until then).
    pub not_after: DateTime<Utc>,
    /// The signed key document.
    pub document: &'a str,
    /// When it was added.
    pub added: DateTime<Utc>,
}

/// A grant this server received, to store as a source.
#[derive(Debug, Clone)]
pub struct NewReceivedGrant<'a> {
    /// The grant id, the source id.
    pub grant_id: &'a str,
    /// The donor.
    pub donor: &'a str,
    /// Licenses in it.
    pub count: u32,
    /// When it starts counting (and is added).
    pub now: DateTime<Utc>,
    /// Its end.
    pub not_after: DateTime<Utc>,
    /// When this server stops counting it (unix seconds).
    pub usable_until: i64,
    /// The token's revision.
    pub revision: u32,
    /// The signed token.
    pub document: &'a str,
}

/// A source as `license status` shows it, before judging what is free.
#[derive(Debug, Clone)]
pub struct SourceRow {
    /// Key id or received grant id.
    pub source_id: String,
    /// "key" or "grant".
    pub kind: String,
    /// Key holder, or the donor of a received grant.
    pub holder: String,
    /// Licenses in it.
    pub count: u64,
    /// Used by stations here.
    pub used: u64,
    /// Donated to other servers.
    pub donated: u64,
    /// Its end.
    pub not_after: DateTime<Utc>,
    /// When this server stops counting it.
    pub usable_until: DateTime<Utc>,
    /// active, revoked, returning, returned, expired.
    pub status: String,
    /// Its start.
    pub not_before: DateTime<Utc>,
}

/// Which node added a source, and when; `None` when there is no such source.
///
/// # Errors
/// The query failed.
pub fn added(
    c: &Conn<'_>,
    server: &str,
    source: &str,
) -> Result<Option<(String, DateTime<Utc>)>, SqlError> {
    c.row(
        "SELECT added_by, added FROM license_sources WHERE server_id=$1 AND source_id=$2",
        args![server, source],
    )?
    .map(|r| Ok((r.get(0)?, r.get(1)?)))
    .transpose()
}

/// Store a license key as a source.
///
/// # Errors
/// The statement failed.
pub fn insert_key(c: &Conn<'_>, server: &str, k: &NewKey<'_>) -> Result<(), SqlError> {
    c.exec(
        "INSERT INTO license_sources(server_id, source_id, kind, holder, count, not_before, not_after, usable_until, document, added, added_by)
         VALUES ($1,$2,'key',$3,$4,$5,$6,$6,$7,$8,(SELECT node FROM clock))",
        args![
            server,
            k.key_id,
            k.holder,
            k.count,
            k.not_before,
            k.not_after,
            k.document,
            k.added
        ],
    )?;
    Ok(())
}

/// Store a received grant as a source.
///
/// # Errors
/// The statement failed (a conservation rule, too).
pub fn insert_received_grant(
    c: &Conn<'_>,
    server: &str,
    g: &NewReceivedGrant<'_>,
) -> Result<(), SqlError> {
    c.exec(
        "INSERT INTO license_sources(server_id, source_id, kind, holder, count, not_before, not_after, usable_until, revision, document, added)
         VALUES ($1,$2,'grant',$3,$4,$5,$6,$7,$8,$9,$5)",
        args![
            server,
            g.grant_id,
            g.donor,
            g.count,
            g.now,
            g.not_after,
            g.usable_until,
            g.revision,
            g.document
        ],
    )?;
    Ok(())
}

/// A received grant renewed: its new end, the point it stops counting, its revision and
/// token.
///
/// # Errors
/// The statement failed.
pub fn update_received_grant(
    c: &Conn<'_>,
    server: &str,
    grant: &str,
    not_after: DateTime<Utc>,
    usable_until: i64,
    revision: u32,
    document: &str,
) -> Result<(), SqlError> {
    c.exec(
        "UPDATE license_sources SET not_after=$3, usable_until=$4, revision=$5, document=$6 WHERE server_id=$1 AND source_id=$2",
        args![server, grant, not_after, usable_until, revision, document],
    )?;
    Ok(())
}

/// Store a received grant's latest revision and token.
///
/// # Errors
/// The statement failed.
pub fn set_revision(
    c: &Conn<'_>,
    server: &str,
    source: &str,
    revision: u32,
    document: &str,
) -> Result<(), SqlError> {
    c.exec(
        "UPDATE license_sources SET revision=$3, document=$4 WHERE server_id=$1 AND source_id=$2",
        args![server, source, revision, document],
    )?;
    Ok(())
}

/// Set a source's status.
///
/// # Errors
/// The statement failed.
pub fn set_status(c: &Conn<'_>, server: &str, source: &str, status: &str) -> Result<(), SqlError> {
    c.exec(
        "UPDATE license_sources SET status=$3 WHERE server_id=$1 AND source_id=$2",
        args![server, source, status],
    )?;
    Ok(())
}

/// Mark a source as being returned.
///
/// # Errors
/// The statement failed.
pub fn set_returning(c: &Conn<'_>, server: &str, source: &str) -> Result<(), SqlError> {
    c.exec(
        "UPDATE license_sources SET status='returning' WHERE server_id=$1 AND source_id=$2",
        args![server, source],
    )?;
    Ok(())
}

/// Mark a source being returned as returned; how many rows changed (0: it was not being
/// returned).
///
/// # Errors
/// The statement failed.
pub fn set_returned(c: &Conn<'_>, server: &str, source: &str) -> Result<u64, SqlError> {
    c.exec(
        "UPDATE license_sources SET status='returned' WHERE server_id=$1 AND source_id=$2 AND status='returning'",
        args![server, source],
    )
}

/// When this server stops counting a source (unix seconds), if it exists.
///
/// # Errors
/// The query failed.
pub fn usable_until(c: &Conn<'_>, server: &str, source: &str) -> Result<Option<i64>, SqlError> {
    c.value(
        "SELECT usable_until FROM license_sources WHERE server_id=$1 AND source_id=$2",
        args![server, source],
    )
}

/// A source's free licenses, usable-until and not-before (unix seconds) and status.
///
/// # Errors
/// The query failed.
pub fn room(
    c: &Conn<'_>,
    server: &str,
    source: &str,
) -> Result<Option<(i64, i64, i64, String)>, SqlError> {
    c.row(
        "SELECT count - used - donated, usable_until, not_before, status FROM license_sources WHERE server_id=$1 AND source_id=$2",
        args![server, source],
    )?
    .map(|r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
    .transpose()
}

/// A source's kind ("key" or "grant") and its signed document (the key file, or the grant
/// token as received).
///
/// # Errors
/// The query failed.
pub fn document(
    c: &Conn<'_>,
    server: &str,
    source: &str,
) -> Result<Option<(String, String)>, SqlError> {
    c.row(
        "SELECT kind, document FROM license_sources WHERE server_id=$1 AND source_id=$2",
        args![server, source],
    )?
    .map(|r| Ok((r.get(0)?, r.get(1)?)))
    .transpose()
}

/// The id of `source` if it is a received grant.
///
/// # Errors
/// The query failed.
pub fn received_grant_id(
    c: &Conn<'_>,
    server: &str,
    source: &str,
) -> Result<Option<String>, SqlError> {
    c.value(
        "SELECT source_id FROM license_sources WHERE server_id=$1 AND source_id=$2 AND kind='grant'",
        args![server, source],
    )
}

/// A received grant's donor, status and licenses donated on from it.
///
/// # Errors
/// The query failed.
pub fn received_grant(
    c: &Conn<'_>,
    server: &str,
    grant: &str,
) -> Result<Option<(String, String, i64)>, SqlError> {
    c.row(
        "SELECT holder, status, donated FROM license_sources WHERE server_id=$1 AND source_id=$2 AND kind='grant'",
        args![server, grant],
    )?
    .map(|r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
    .transpose()
}

/// A source's revision and status.
///
/// # Errors
/// The query failed.
pub fn revision(
    c: &Conn<'_>,
    server: &str,
    source: &str,
) -> Result<Option<(i64, String)>, SqlError> {
    c.row(
        "SELECT revision, status FROM license_sources WHERE server_id=$1 AND source_id=$2",
        args![server, source],
    )?
    .map(|r| Ok((r.get(0)?, r.get(1)?)))
    .transpose()
}

/// The revision of every received grant, by grant id.
///
/// # Errors
/// The query failed.
pub fn received_revisions(c: &Conn<'_>, server: &str) -> Result<Vec<(String, u64)>, SqlError> {
    c.map_rows(
        "SELECT source_id, revision FROM license_sources WHERE server_id=$1 AND kind='grant'",
        args![server],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

/// Received grants being returned to donors this node reaches (its parent): those of nodes
/// linked to this cluster are left out, as such a donor learns of them when it offers its
/// grants ([`returning_to`]).
///
/// # Errors
/// The query failed.
pub fn returning(c: &Conn<'_>, server: &str) -> Result<Vec<String>, SqlError> {
    c.column(
        "SELECT source_id FROM license_sources WHERE server_id=$1 AND status='returning'
            AND holder NOT IN (SELECT peer_id FROM links WHERE cluster_id=$1 AND removed_at IS NULL)
          ORDER BY source_id",
        args![server],
    )
}

/// Received grants of `donor` being returned.
///
/// # Errors
/// The query failed.
pub fn returning_to(c: &Conn<'_>, server: &str, donor: &str) -> Result<Vec<String>, SqlError> {
    c.column(
        "SELECT source_id FROM license_sources WHERE server_id=$1 AND status='returning' AND holder=$2 ORDER BY source_id",
        args![server, donor],
    )
}

/// Active sources that stop counting by `now`: id and kind.
///
/// # Errors
/// The query failed.
pub fn ended(
    c: &Conn<'_>,
    server: &str,
    now: DateTime<Utc>,
) -> Result<Vec<(String, String)>, SqlError> {
    c.map_rows(
            "SELECT source_id, kind FROM license_sources WHERE server_id=$1 AND status='active' AND usable_until <= $2 ORDER BY source_id",
            args![server, now],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

/// Every source, keys first.
///
/// # Errors
/// The query failed, or a row is damaged.
pub fn all(c: &Conn<'_>, server: &str) -> Result<Vec<SourceRow>, SqlError> {
    c.map_rows(
            "SELECT source_id, kind, holder, count, used, donated, not_after, usable_until, status, not_before
               FROM license_sources WHERE server_id=$1 ORDER BY kind DESC, source_id",
            args![server],
        |r| {
            Ok(SourceRow {
                source_id: r.get(0)?,
                kind: r.get(1)?,
                holder: r.get(2)?,
                count: r.get(3)?,
                used: r.get(4)?,
                donated: r.get(5)?,
                not_after: r.get(6)?,
                usable_until: r.get(7)?,
                status: r.get(8)?,
                not_before: r.get(9)?,
            })
        },
    )
}

/// The sources in force with room for `$3` more that last at least until `$2` (NULL: now),
/// never `$4`, for server `$1`, the one lasting longest first (fewest future moves). "In
/// force" is judged at the transaction's time (the clock row), as the triggers judge it.
pub(super) const PICK: &str =
    "SELECT source_id, usable_until FROM license_sources, (SELECT now FROM clock) AS t
          WHERE server_id=$1 AND status='active' AND not_before <= t.now AND usable_until > t.now
            AND usable_until >= coalesce($2, t.now) AND count - used - donated >= $3
            AND source_id <> $4
          ORDER BY usable_until DESC, source_id";

/// How PostgreSQL locks the candidates of [`PICK`]: several nodes take from the same sources
/// at once, so every candidate is locked (always in the same order, so two pickers never
/// deadlock) and its room judged after the lock, so the source picked still has room when
/// the counters move. LIMIT would stop at a candidate another transaction just filled
/// instead of trying the next.
pub(super) const PICK_LOCK: &str = " FOR UPDATE OF license_sources";

/// The source in force with room for `n` more that lasts at least until `until`, the one
/// lasting longest first (fewest future moves); never `except`. See [`PICK`].
///
/// # Errors
/// The query failed.
pub fn pick(
    c: &Conn<'_>,
    server: &str,
    n: u32,
    until: Option<i64>,
    except: Option<&str>,
) -> Result<Option<String>, SqlError> {
    let args = args![server, until, n, except.unwrap_or("")];
    if c.is_postgres() {
        return Ok(c
            .column(&format!("{PICK}{PICK_LOCK}"), args)?
            .into_iter()
            .next());
    }
    // SQLite: the writer holds the database's write lock; nothing moves meanwhile.
    c.value(&format!("{PICK} LIMIT 1"), args)
}

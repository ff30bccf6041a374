//! The receiver's rules of conservation (schema 17): which cluster holds each license key a
//! received chain ends at, the received grants flagged when checked again, and what the
//! checks ask of the other tables. Each function is one statement inside a license ledger
//! transaction (see [`super::ledger`]); the schema's triggers hold the same rules.

use chrono::{DateTime, Utc};

use super::sql::{args, Conn, SqlError};

/// Which cluster a license key is bound to here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyBinding {
    /// The cluster key (hex) that signed the first grant carved from the key.
    pub holder_key: String,
    /// That grant's donor.
    pub first_donor: String,
    /// The grant through which this cluster learned it.
    pub first_grant: String,
}

/// The binding of key `key_id` of `issuer`, if this cluster learned one.
///
/// # Errors
/// The query failed.
pub fn binding(
    c: &Conn<'_>,
    server: &str,
    key_id: &str,
    issuer: &str,
) -> Result<Option<KeyBinding>, SqlError> {
    c.row(
        "SELECT holder_key, first_donor, first_grant FROM key_bindings WHERE server_id=$1 AND key_id=$2 AND issuer=$3",
        args![server, key_id, issuer],
    )?
    .map(|r| {
        Ok(KeyBinding {
            holder_key: r.get(0)?,
            first_donor: r.get(1)?,
            first_grant: r.get(2)?,
        })
    })
    .transpose()
}

/// Bind key `key_id` of `issuer` to the cluster of `b` (refused by the schema when this
/// cluster holds a key of that id).
///
/// # Errors
/// The statement failed (a rule of schema 17, too).
pub fn bind(
    c: &Conn<'_>,
    server: &str,
    key_id: &str,
    issuer: &str,
    b: &KeyBinding,
    now: DateTime<Utc>,
) -> Result<(), SqlError> {
    c.exec(
        "INSERT INTO key_bindings(server_id, key_id, issuer, holder_key, first_donor, first_grant, bound_at)
         VALUES ($1,$2,$3,$4,$5,$6,$7)",
        args![server, key_id, issuer, b.holder_key.as_str(), b.first_donor.as_str(), b.first_grant.as_str(), now],
    )
    .map(drop)
}

/// Move the binding of key `key_id` of `issuer` to `holder_key`: its holder signs with a
/// new key (a rotation this node followed). The schema lets a binding change only so.
///
/// # Errors
/// The statement failed.
pub fn rebind(
    c: &Conn<'_>,
    server: &str,
    key_id: &str,
    issuer: &str,
    holder_key: &str,
) -> Result<(), SqlError> {
    c.exec(
        "UPDATE key_bindings SET holder_key=$4 WHERE server_id=$1 AND key_id=$2 AND issuer=$3",
        args![server, key_id, issuer, holder_key],
    )
    .map(drop)
}

/// The document of the key `key_id` this cluster holds, if it holds one.
///
/// # Errors
/// The query failed.
pub fn held_key(c: &Conn<'_>, server: &str, key_id: &str) -> Result<Option<String>, SqlError> {
    c.row(
        "SELECT document FROM license_sources WHERE server_id=$1 AND source_id=$2 AND kind='key'",
        args![server, key_id],
    )?
    .map(|r| r.get(0))
    .transpose()
}

/// Whether `grant` is a grant this cluster donated.
///
/// # Errors
/// The query failed.
pub fn is_donated_here(c: &Conn<'_>, server: &str, grant: &str) -> Result<bool, SqlError> {
    Ok(c.row(
        "SELECT 1 FROM grants WHERE server_id=$1 AND grant_id=$2",
        args![server, grant],
    )?
    .is_some())
}

/// The live links' grant keys by node id, and their kinds: (peer id, kind, grant key).
///
/// # Errors
/// The query failed.
pub fn link_keys(
    c: &Conn<'_>,
    cluster: &str,
) -> Result<Vec<(String, String, Option<String>)>, SqlError> {
    c.map_rows(
        "SELECT peer_id, kind, grant_key FROM links WHERE cluster_id=$1 AND removed_at IS NULL ORDER BY peer_id",
        args![cluster],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
}

/// Every received grant still counted or being returned: (grant id, donor, document), in
/// the order they were received.
///
/// # Errors
/// The query failed.
pub fn received_in_force(
    c: &Conn<'_>,
    server: &str,
) -> Result<Vec<(String, String, String)>, SqlError> {
    c.map_rows(
        "SELECT source_id, holder, document FROM license_sources
          WHERE server_id=$1 AND kind='grant' AND status IN ('active','returning')
          ORDER BY added, source_id",
        args![server],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
}

/// Received grants of `donor` in a state: (grant id, count).
///
/// # Errors
/// The query failed.
pub fn received_from(
    c: &Conn<'_>,
    server: &str,
    donor: &str,
    status: &str,
) -> Result<Vec<(String, i64)>, SqlError> {
    c.map_rows(
        "SELECT source_id, count FROM license_sources
          WHERE server_id=$1 AND kind='grant' AND holder=$2 AND status=$3 ORDER BY source_id",
        args![server, donor, status],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

/// Grants this cluster donated to `receiver` in a state: (grant id, count, end).
///
/// # Errors
/// The query failed.
pub fn donated_to(
    c: &Conn<'_>,
    server: &str,
    receiver: &str,
    status: &str,
) -> Result<Vec<(String, i64, DateTime<Utc>)>, SqlError> {
    c.map_rows(
        "SELECT grant_id, count, not_after FROM grants
          WHERE server_id=$1 AND receiver=$2 AND status=$3 ORDER BY grant_id",
        args![server, receiver, status],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
}

/// Flag a received grant that failed the rules.
///
/// # Errors
/// The statement failed.
pub fn flag(
    c: &Conn<'_>,
    server: &str,
    grant: &str,
    donor: &str,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<(), SqlError> {
    c.exec(
        "INSERT INTO grant_flags(server_id, grant_id, donor, reason, flagged_at) VALUES ($1,$2,$3,$4,$5)
         ON CONFLICT (server_id, grant_id) DO NOTHING",
        args![server, grant, donor, reason, now],
    )
    .map(drop)
}

/// A flagged grant, as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Flag {
    /// The received grant.
    pub grant_id: String,
    /// Its donor.
    pub donor: String,
    /// The rule it breaks.
    pub reason: String,
    /// When it was flagged.
    pub flagged_at: DateTime<Utc>,
}

/// Every flagged grant, oldest first.
///
/// # Errors
/// The query failed.
pub fn flags(c: &Conn<'_>, server: &str) -> Result<Vec<Flag>, SqlError> {
    c.map_rows(
        "SELECT grant_id, donor, reason, flagged_at FROM grant_flags WHERE server_id=$1 ORDER BY flagged_at, grant_id",
        args![server],
        |r| {
            Ok(Flag {
                grant_id: r.get(0)?,
                donor: r.get(1)?,
                reason: r.get(2)?,
                flagged_at: r.get(3)?,
            })
        },
    )
}

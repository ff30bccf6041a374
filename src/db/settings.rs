//! The `[same]` settings a cluster shares, each with the revision that last set it.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::sql::args;
use super::{Db, DbError};

/// One shared setting.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SharedSetting {
    /// Its dotted name, as in updhub.toml (`licenses.station_ttl`).
    pub key: String,
    /// Its value, as TOML.
    pub value: String,
    /// The revision that set it.
    pub revision: i64,
    /// The node where it was set.
    pub set_by: String,
    /// When.
    pub set_at: DateTime<Utc>,
}

/// The advisory lock that numbers revisions on PostgreSQL ("updset" in ASCII).
const SETTINGS_LOCK: i64 = 0x7570_6473_6574;

impl Db {
    /// The cluster's settings revision: 0 when nothing was ever set.
    ///
    /// # Errors
    /// Database errors.
    pub fn settings_revision(&self) -> Result<i64, DbError> {
        self.read(|c| {
            Ok(
                c.value::<i64>("SELECT coalesce(max(revision), 0) FROM settings", &[])?
                    .unwrap_or(0),
            )
        })
    }

    /// Every shared setting, by name.
    ///
    /// # Errors
    /// Database errors.
    pub fn shared_settings(&self) -> Result<Vec<SharedSetting>, DbError> {
        self.read(|c| {
            c.map_rows(
                "SELECT key, value, revision, set_by, set_at FROM settings ORDER BY key",
                &[],
                |r| {
                    Ok(SharedSetting {
                        key: r.get(0)?,
                        value: r.get(1)?,
                        revision: r.get(2)?,
                        set_by: r.get(3)?,
                        set_at: r.get(4)?,
                    })
                },
            )
        })
    }

    /// Set `key` to `value` (already checked by the caller) under the next revision;
    /// returns that revision.
    ///
    /// # Errors
    /// Database errors.
    pub fn set_shared_setting(
        &self,
        key: &str,
        value: &str,
        now: DateTime<Utc>,
    ) -> Result<i64, DbError> {
        let by = self.server.as_str();
        self.write(|c| {
            if c.is_postgres() {
                // Two nodes setting at once must not take the same revision.
                c.exec("SELECT pg_advisory_xact_lock($1)", args![SETTINGS_LOCK])?;
            }
            let rev = c
                .value::<i64>("SELECT coalesce(max(revision), 0) + 1 FROM settings", &[])?
                .unwrap_or(1);
            c.exec(
                "INSERT INTO settings(key, value, revision, set_by, set_at) VALUES ($1,$2,$3,$4,$5)
                 ON CONFLICT(key) DO UPDATE SET value=excluded.value, revision=excluded.revision,
                   set_by=excluded.set_by, set_at=excluded.set_at",
                args![key, value, rev, by, now],
            )?;
            Ok(rev)
        })
    }
}

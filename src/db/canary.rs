//! The cluster's staged rollout (see [`crate::canary`]): one row, the version rolled out.

use chrono::{DateTime, Utc};

use super::sql::args;
use super::{Db, DbError};
use crate::canary::Canary;

impl Db {
    /// The cluster's last rollout, if any.
    ///
    /// # Errors
    /// Database errors.
    pub fn canary(&self) -> Result<Option<Canary>, DbError> {
        self.read(|c| {
            c.row(
                "SELECT number, started_at, halted_at, released_at, set_by FROM canary WHERE cluster_id=$1",
                args![self.cluster.as_str()],
            )?
            .map(|r| {
                Ok(Canary {
                    number: r.get(0)?,
                    started_at: r.get(1)?,
                    halted_at: r.get(2)?,
                    released_at: r.get(3)?,
                    by: r.get(4)?,
                })
            })
            .transpose()
        })
    }

    /// Start rolling version `number` out to the test group at `now`, unless it already is
    /// (several members may evaluate at once: the first one starts it). Returns whether this
    /// call started it.
    ///
    /// # Errors
    /// Database errors.
    pub fn start_canary(&self, number: u64, by: &str, now: DateTime<Utc>) -> Result<bool, DbError> {
        self.write(|c| {
            c.exec(
                "INSERT INTO canary(cluster_id, number, started_at, set_by) VALUES ($1,$2,$3,$4)
                 ON CONFLICT(cluster_id) DO UPDATE SET number=excluded.number,
                   started_at=excluded.started_at, halted_at=NULL, released_at=NULL,
                   set_by=excluded.set_by
                 WHERE canary.number <> excluded.number",
                args![self.cluster.as_str(), number, now, by],
            )
            .map(|n| n > 0)
        })
    }

    /// Write an admin's change to the rollout of `c.number` (halt, resume, release).
    /// Returns false when another version's rollout replaced it meanwhile.
    ///
    /// # Errors
    /// Database errors.
    pub fn set_canary(&self, c: &Canary) -> Result<bool, DbError> {
        self.write(|conn| {
            conn.exec(
                "UPDATE canary SET started_at=$3, halted_at=$4, released_at=$5, set_by=$6
                 WHERE cluster_id=$1 AND number=$2",
                args![
                    self.cluster.as_str(),
                    c.number,
                    c.started_at,
                    c.halted_at,
                    c.released_at,
                    c.by
                ],
            )
            .map(|n| n > 0)
        })
    }
}

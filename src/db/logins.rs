//! Failed station logins, counted for the whole cluster (see `crate::server::logins`): one
//! row a station id or client address with wrong credentials, its window's start and count.

use super::sql::{args, SqlError};
use super::{Db, DbError};

/// What a login is counted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginSubject {
    /// A station id.
    Station,
    /// A client address.
    Address,
}

impl LoginSubject {
    fn kind(self) -> &'static str {
        match self {
            LoginSubject::Station => "station",
            LoginSubject::Address => "address",
        }
    }
}

/// The failures of one subject in its window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginFailures {
    /// What is counted.
    pub subject: LoginSubject,
    /// When its window began (unix milliseconds).
    pub window_start_ms: i64,
    /// Failures since then.
    pub failures: u64,
}

impl Db {
    /// The failures of `station` and of `address` in windows that began after
    /// `since_ms`: a row of an older window counts nothing.
    ///
    /// # Errors
    /// Database errors.
    pub fn login_failures(
        &self,
        station: &str,
        address: &str,
        since_ms: i64,
    ) -> Result<Vec<LoginFailures>, DbError> {
        let cluster = self.cluster.as_str();
        self.read(|c| {
            c.map_rows(
                "SELECT kind, window_start, failures FROM login_failures
                  WHERE cluster_id=$1 AND window_start > $4
                    AND ((kind='station' AND subject=$2) OR (kind='address' AND subject=$3))",
                args![cluster, station, address, since_ms],
                |r| {
                    let kind: String = r.get(0)?;
                    Ok(LoginFailures {
                        subject: if kind == "station" {
                            LoginSubject::Station
                        } else {
                            LoginSubject::Address
                        },
                        window_start_ms: r.get(1)?,
                        failures: r.get(2)?,
                    })
                },
            )
        })
    }

    /// Count one failed login of `station` from `address` at `now_ms`, in one transaction:
    /// each subject's count goes up by one, or starts anew at one in a window beginning now
    /// when its window began at or before `since_ms` (it has passed).
    ///
    /// # Errors
    /// Database errors.
    pub fn record_login_failure(
        &self,
        station: &str,
        address: &str,
        now_ms: i64,
        since_ms: i64,
    ) -> Result<(), DbError> {
        let cluster = self.cluster.as_str();
        self.write(|c| {
            for (subject, name) in [
                (LoginSubject::Station, station),
                (LoginSubject::Address, address),
            ] {
                upsert(c, cluster, subject.kind(), name, now_ms, since_ms)?;
            }
            Ok(())
        })
    }

    /// Delete the rows whose window began at or before `since_ms` (they count nothing):
    /// keeps the table to the guessers of the last window.
    ///
    /// # Errors
    /// Database errors.
    pub fn purge_login_failures(&self, since_ms: i64) -> Result<u64, DbError> {
        let cluster = self.cluster.as_str();
        self.write(|c| {
            c.exec(
                "DELETE FROM login_failures WHERE cluster_id=$1 AND window_start <= $2",
                args![cluster, since_ms],
            )
        })
    }
}

/// One subject's count, up by one (both engines read `login_failures.*` as the row before
/// the update in every SET expression).
fn upsert(
    c: &super::sql::Conn<'_>,
    cluster: &str,
    kind: &str,
    subject: &str,
    now_ms: i64,
    since_ms: i64,
) -> Result<(), SqlError> {
    c.exec(
        "INSERT INTO login_failures(cluster_id, kind, subject, window_start, failures)
         VALUES ($1, $2, $3, $4, 1)
         ON CONFLICT (cluster_id, kind, subject) DO UPDATE SET
           failures = CASE WHEN login_failures.window_start <= $5 THEN 1
                           ELSE login_failures.failures + 1 END,
           window_start = CASE WHEN login_failures.window_start <= $5 THEN $4
                               ELSE login_failures.window_start END",
        args![cluster, kind, subject, now_ms, since_ms],
    )?;
    Ok(())
}

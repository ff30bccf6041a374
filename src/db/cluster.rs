//! The cluster's membership: each serving node records itself (and refreshes its row every
//! few seconds), so `status` and `cluster check` see every member and what it runs.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::sql::{args, Row, SqlError};
use super::{migrate, Db, DbError};

/// One member of the cluster, as it last recorded itself.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Member {
    /// Its node id.
    pub node_id: String,
    /// Its data folder's instance token (`Hub::instance`): kept across restarts, and by a
    /// copy of the folder.
    pub instance: String,
    /// Its updhub version.
    pub updhub_version: String,
    /// The schema its build knows.
    pub schema_version: i64,
    /// Its server name (the cluster's DNS name).
    pub server_name: String,
    /// Fingerprint of the publisher key it holds.
    pub key_fp: String,
    /// Fingerprint of the cluster CA certificate it holds.
    pub ca_fp: String,
    /// The repository root it serves.
    pub active_root: Option<String>,
    /// Its `[same]` settings, as JSON.
    pub settings: String,
    /// Their digest.
    pub settings_digest: String,
    /// Its interserver address.
    pub listen: String,
    /// When this process started.
    pub started: DateTime<Utc>,
    /// Its last record.
    pub last_seen: DateTime<Utc>,
}

/// Another running process already records itself under the same node id.
#[derive(Debug, Clone, PartialEq)]
pub struct IdTaken {
    /// The other process's row.
    pub other: Member,
}

const COLUMNS: &str = "node_id, instance, updhub_version, schema_version, server_name, key_fp, ca_fp, active_root, settings, settings_digest, listen, started, last_seen";

fn member(r: &Row) -> Result<Member, SqlError> {
    Ok(Member {
        node_id: r.get(0)?,
        instance: r.get(1)?,
        updhub_version: r.get(2)?,
        schema_version: r.get(3)?,
        server_name: r.get(4)?,
        key_fp: r.get(5)?,
        ca_fp: r.get(6)?,
        active_root: r.get(7)?,
        settings: r.get(8)?,
        settings_digest: r.get(9)?,
        listen: r.get(10)?,
        started: r.get(11)?,
        last_seen: r.get(12)?,
    })
}

impl Db {
    /// Record `m` (at `m.last_seen`) as this node's row, unless another process recorded
    /// itself under the same node id less than `alive` ago: then nothing changes and the
    /// other is returned (two live nodes with one id would mix their rows).
    ///
    /// # Errors
    /// Database errors.
    pub fn record_member(
        &self,
        m: &Member,
        alive: std::time::Duration,
    ) -> Result<Result<(), IdTaken>, DbError> {
        let alive = chrono::Duration::from_std(alive).unwrap_or(chrono::Duration::seconds(30));
        self.write(|c| {
            let lock = if c.is_postgres() { " FOR UPDATE" } else { "" };
            let current = c
                .row(
                    &format!("SELECT {COLUMNS} FROM members WHERE node_id=$1{lock}"),
                    args![m.node_id],
                )?
                .map(|r| member(&r))
                .transpose()?;
            let mut twin = None;
            if let Some(other) = current {
                let live = other.last_seen > m.last_seen - alive;
                if other.instance != m.instance && live {
                    return Ok(Err(IdTaken { other }));
                }
                // The same data folder's token, written by another process (another start
                // time) since this one last wrote: a copy of the data folder serves too (a
                // cloned machine). A restart's first write meets its dead predecessor's row,
                // so only a process running longer than `alive` (whose own refreshes would
                // be the last row) tells. Both copies go on writing, so each one hears of
                // the other.
                if other.instance == m.instance
                    && live
                    && other.started.timestamp() != m.started.timestamp()
                    && m.last_seen - m.started > alive
                {
                    twin = Some(IdTaken { other });
                }
            }
            c.exec(
                &format!(
                    "INSERT INTO members({COLUMNS}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13)
                     ON CONFLICT(node_id) DO UPDATE SET instance=excluded.instance,
                       updhub_version=excluded.updhub_version, schema_version=excluded.schema_version,
                       server_name=excluded.server_name, key_fp=excluded.key_fp, ca_fp=excluded.ca_fp,
                       active_root=excluded.active_root, settings=excluded.settings,
                       settings_digest=excluded.settings_digest, listen=excluded.listen,
                       started=excluded.started, last_seen=excluded.last_seen"
                ),
                args![
                    m.node_id,
                    m.instance,
                    m.updhub_version,
                    m.schema_version,
                    m.server_name,
                    m.key_fp,
                    m.ca_fp,
                    m.active_root,
                    m.settings,
                    m.settings_digest,
                    m.listen,
                    m.started,
                    m.last_seen
                ],
            )?;
            Ok(twin.map_or(Ok(()), Err))
        })
    }

    /// Every member that ever recorded itself, by node id.
    ///
    /// # Errors
    /// Database errors or damaged rows.
    pub fn members(&self) -> Result<Vec<Member>, DbError> {
        self.read(|c| {
            c.map_rows(
                &format!("SELECT {COLUMNS} FROM members ORDER BY node_id"),
                &[],
                member,
            )
        })
    }

    /// The schema version this build knows.
    pub fn schema_known(&self) -> i64 {
        migrate::known(self.conn.is_none())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::ServerId;

    const ALIVE: std::time::Duration = std::time::Duration::from_secs(20);

    /// Node a's row as the process started at `started` (seconds into the test) writes it at
    /// `last_seen`, with `instance` as its data folder's token; it listens on port `started`.
    fn member(instance: &str, started: i64, last_seen: i64) -> Member {
        let at = |s: i64| 1_800_000_000 + s;
        serde_json::from_value(serde_json::json!({
            "node_id": "a", "instance": instance, "updhub_version": "v", "schema_version": 1,
            "server_name": "localhost", "key_fp": "k", "ca_fp": "c", "active_root": null,
            "settings": "{}", "settings_digest": "d", "listen": format!("127.0.0.1:{started}"),
            "started": DateTime::from_timestamp(at(started), 0),
            "last_seen": DateTime::from_timestamp(at(last_seen), 0),
        }))
        .unwrap()
    }

    #[test]
    fn a_copy_of_a_data_folder_serving_as_the_same_node_is_told_to_both_and_a_restart_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::create(&dir.path().join("t.db"), ServerId::new("a").unwrap()).unwrap();
        // The other process's row when refused or told.
        let rec = |m: &Member| db.record_member(m, ALIVE).unwrap().err().map(|t| t.other);
        // The node serves; a copy of its data folder (the same token) starts elsewhere: its
        // first write cannot be told from a restart's.
        assert_eq!(rec(&member("tok", 0, 0)), None);
        assert_eq!(rec(&member("tok", 0, 25)), None);
        assert_eq!(rec(&member("tok", 26, 26)), None);
        // Each one's next refresh finds the other's row.
        let told = rec(&member("tok", 0, 30)).unwrap();
        assert_eq!(told.listen, "127.0.0.1:26");
        let told = rec(&member("tok", 26, 47)).unwrap();
        assert_eq!(told.listen, "127.0.0.1:0");
        // A restart (the old process gone) is not a copy, then or later.
        assert_eq!(rec(&member("tok", 100, 100)), None);
        assert_eq!(rec(&member("tok", 100, 130)), None);
        // Another data folder with the node's id is refused and writes nothing.
        assert!(rec(&member("other", 131, 131)).is_some());
        assert_eq!(db.members().unwrap()[0].listen, "127.0.0.1:100");
    }
}

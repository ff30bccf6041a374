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
    /// The process that wrote the row: random per running process (`Hub::process`), so
    /// two copies of one data folder are told apart, even started in the same second.
    #[serde(default)]
    pub process: String,
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
    /// When this process started: its first record, by the database's clock.
    pub started: DateTime<Utc>,
    /// Its last record, by the database's clock (whatever the writer gives, the record sets
    /// it).
    pub last_seen: DateTime<Utc>,
}

/// Another running process already records itself under the same node id.
#[derive(Debug, Clone, PartialEq)]
pub struct IdTaken {
    /// The other process's row.
    pub other: Member,
}

const COLUMNS: &str = "node_id, instance, updhub_version, schema_version, server_name, key_fp, ca_fp, active_root, settings, settings_digest, listen, started, last_seen, process";

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
        process: r.get(13)?,
    })
}

impl Db {
    /// Record `m` as this node's row, seen now by the database's clock (`m.last_seen` is
    /// not read), unless another data folder recorded itself under the same node id less
    /// than `alive` ago: then nothing changes and the other is returned (two live nodes
    /// with one id would mix their rows). `m.started` is the database's time of this
    /// process's first record. Liveness is judged by the database's clock too, so a member
    /// whose own clock is wrong is neither taken for gone nor kept alive by it.
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
            let now_ms = self.clock_ms(c)?;
            let now = DateTime::<Utc>::from_timestamp_millis(now_ms)
                .ok_or_else(|| SqlError::Damaged(format!("the database's clock: {now_ms} ms")))?;
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
                let live = other.last_seen > now - alive;
                if other.instance != m.instance && live {
                    return Ok(Err(IdTaken { other }));
                }
                // The same data folder's token, written by another process since this one
                // last wrote: a copy of the data folder serves too (a cloned machine). A
                // restart's first writes meet its dead predecessor's row (another process,
                // seen less than `alive` ago), so only a process recording for longer than
                // `alive` (whose own refreshes would be the last row) tells. Both copies go
                // on writing, so each one hears of the other.
                if other.instance == m.instance
                    && other.process != m.process
                    && live
                    && now - m.started > alive
                {
                    twin = Some(IdTaken { other });
                }
            }
            c.exec(
                &format!(
                    "INSERT INTO members({COLUMNS}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14)
                     ON CONFLICT(node_id) DO UPDATE SET instance=excluded.instance,
                       updhub_version=excluded.updhub_version, schema_version=excluded.schema_version,
                       server_name=excluded.server_name, key_fp=excluded.key_fp, ca_fp=excluded.ca_fp,
                       active_root=excluded.active_root, settings=excluded.settings,
                       settings_digest=excluded.settings_digest, listen=excluded.listen,
                       started=excluded.started, last_seen=excluded.last_seen,
                       process=excluded.process"
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
                    now,
                    m.process
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

    /// The members heard from within `alive`, judged by the database's clock (which stamps
    /// the rows), by node id.
    ///
    /// # Errors
    /// Database errors or damaged rows.
    pub fn live_members(&self, alive: std::time::Duration) -> Result<Vec<Member>, DbError> {
        let alive = chrono::Duration::from_std(alive).unwrap_or(chrono::Duration::MAX);
        let now = self.now()?;
        let mut members = self.members()?;
        members.retain(|m| now - m.last_seen < alive);
        Ok(members)
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

    /// The database's time `s` seconds into the test, in unix milliseconds.
    fn at_ms(s: i64) -> i64 {
        (1_800_000_000 + s) * 1000
    }

    /// Node a's row as the process `process` started at `started` (seconds into the test,
    /// by the database's clock) writes it, with `instance` as its data folder's token; it
    /// listens on port `started`, and its own clock says it is an hour later.
    fn member(instance: &str, process: &str, started: i64) -> Member {
        let at = |s: i64| DateTime::from_timestamp_millis(at_ms(s)).unwrap();
        serde_json::from_value(serde_json::json!({
            "node_id": "a", "instance": instance, "process": process, "updhub_version": "v",
            "schema_version": 1, "server_name": "localhost", "key_fp": "k", "ca_fp": "c",
            "active_root": null, "settings": "{}", "settings_digest": "d",
            "listen": format!("127.0.0.1:{started}"), "started": at(started),
            "last_seen": at(started + 3600),
        }))
        .unwrap()
    }

    #[test]
    fn a_copy_of_a_data_folder_serving_as_the_same_node_is_told_to_both_and_a_restart_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::create(&dir.path().join("t.db"), ServerId::new("a").unwrap()).unwrap();
        // The other process's row when refused or told, recorded at `t` seconds into the
        // test by the database's clock.
        let rec = |m: &Member, t: i64| {
            db.pin_clock_ms(Some(at_ms(t)));
            db.record_member(m, ALIVE).unwrap().err().map(|t| t.other)
        };
        // The node serves; a copy of its data folder (the same token) starts elsewhere: its
        // first write cannot be told from a restart's.
        assert_eq!(rec(&member("tok", "p1", 0), 0), None);
        assert_eq!(rec(&member("tok", "p1", 0), 25), None);
        assert_eq!(rec(&member("tok", "p2", 26), 26), None);
        // Each one's next refresh finds the other's row.
        assert_eq!(rec(&member("tok", "p1", 0), 30).unwrap().process, "p2");
        assert_eq!(rec(&member("tok", "p2", 26), 47).unwrap().process, "p1");
        // Two copies started in the same second are told apart by their processes.
        assert_eq!(rec(&member("tok", "p3", 100), 100), None);
        assert_eq!(rec(&member("tok", "p4", 100), 100), None);
        assert_eq!(rec(&member("tok", "p3", 100), 105), None);
        assert_eq!(rec(&member("tok", "p4", 100), 110), None);
        let told = rec(&member("tok", "p3", 100), 121).unwrap();
        assert_eq!(
            (told.process.as_str(), told.started),
            ("p4", member("", "", 100).started)
        );
        assert_eq!(rec(&member("tok", "p4", 100), 122).unwrap().process, "p3");
        // A restart (the old process gone, its row still fresh) is not a copy, then or later.
        assert_eq!(rec(&member("tok", "p5", 130), 130), None);
        assert_eq!(rec(&member("tok", "p5", 130), 160), None);
        // The row's last record is the database's time, not the writer's clock (an hour
        // ahead): p5 is gone 20 s after it, and then another data folder may take the id.
        let row = db.members().unwrap().remove(0);
        assert_eq!(row.last_seen.timestamp_millis(), at_ms(160));
        // Meanwhile another data folder with the node's id is refused and writes nothing.
        assert!(rec(&member("other", "p9", 179), 179).is_some());
        assert_eq!(db.members().unwrap()[0].process, "p5");
        assert_eq!(rec(&member("other", "p9", 181), 181), None);
        assert_eq!(db.members().unwrap()[0].process, "p9");
    }
}

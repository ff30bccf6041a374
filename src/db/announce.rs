//! The cluster protocol's rows (see [`crate::announce`]): where each member receives
//! announcements and its counters, one row a member, replaced in one statement.

use serde::{Deserialize, Serialize};

use super::sql::{args, Row, SqlError};
use super::{Db, DbError};

/// A member that runs the cluster protocol, as it last recorded itself.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Announcer {
    /// Its node id.
    pub node_id: String,
    /// HOST:PORT where it receives announcements.
    pub addr: String,
    /// multicast or unicast.
    pub protocol: String,
    /// Its counters, as JSON ([`crate::announce::Counts`]).
    pub counters: serde_json::Value,
    /// When it wrote them (unix milliseconds).
    pub updated_ms: i64,
}

fn announcer(r: &Row) -> Result<Announcer, SqlError> {
    let counters: String = r.get(3)?;
    Ok(Announcer {
        node_id: r.get(0)?,
        addr: r.get(1)?,
        protocol: r.get(2)?,
        // A row written by another build with other counters still shows.
        counters: serde_json::from_str(&counters).unwrap_or(serde_json::Value::String(counters)),
        updated_ms: r.get(4)?,
    })
}

impl Db {
    /// Record `a` as its member's row.
    ///
    /// # Errors
    /// Database errors.
    pub fn record_announcer(&self, a: &Announcer) -> Result<(), DbError> {
        let counters = a.counters.to_string();
        self.write(|c| {
            c.exec(
                "INSERT INTO announcers(node_id, addr, protocol, counters, updated)
                 VALUES ($1,$2,$3,$4,$5)
                 ON CONFLICT(node_id) DO UPDATE SET addr=excluded.addr,
                   protocol=excluded.protocol, counters=excluded.counters,
                   updated=excluded.updated",
                args![a.node_id, a.addr, a.protocol, counters, a.updated_ms],
            )?;
            Ok(())
        })
    }

    /// Every member that ever ran the protocol, by node id.
    ///
    /// # Errors
    /// Database errors or damaged rows.
    pub fn announcers(&self) -> Result<Vec<Announcer>, DbError> {
        self.read(|c| {
            c.map_rows(
                "SELECT node_id, addr, protocol, counters, updated FROM announcers ORDER BY node_id",
                &[],
                announcer,
            )
        })
    }
}

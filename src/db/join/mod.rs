//! Joining a cluster (`updhub cluster join`): the rows of a node that ran alone on its
//! embedded database, copied into the cluster's database in one transaction there.
//! [`TABLES`] says what is copied, one entry a table: which id its rows are filed under (the
//! shared license ledger's move from this node's ledger id to the cluster's; the node's own
//! rows keep its id), which columns name a row (a name the cluster holds already is a
//! conflict) and how the rows are written so that the schema's rules accept them. A table
//! added to the schema joins the copy with one more entry.
//!
//! Conflicts are looked for in one read pass and reported together; the copy looks again
//! inside its transaction, writes nothing when it finds any, and before it commits reads
//! every row it wrote back and compares it with the original (the ledger's counters too).

mod copy;

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OpenFlags};
use serde::Serialize;

use super::migrate::{self, Standing};
use super::sql::{args, Conn, Param, Row, SqlError, Value};
use super::{error_at, postgres, sqlite, Db, DbError, Location, Member, SharedSetting};
use crate::id::ServerId;

/// Which id a table's key column (`server_id`, `cluster_id`) holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// The cluster's (the shared license ledger): the rows move from this node's ledger id
    /// to the cluster's.
    Cluster,
    /// The node's own: the rows keep its id, under which the cluster must hold nothing yet.
    Node,
}

/// How a table's rows are written into the cluster's database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Write {
    /// As they are.
    AsIs,
    /// License sources. The schema's triggers keep their counters (`used`, `donated`) and
    /// take a station or grant only from a source in force, which an ended source (or one
    /// shortened since its grants were made) is not. So each source is written in force with
    /// zero counters, its grants and stations count themselves in as they are written, and
    /// its own dates and status are set back afterwards (`copy::restore_sources`).
    Sources,
    /// The audit log: appended in order and numbered anew (`seq`) by the cluster's database;
    /// times and node ids are kept.
    Log,
}

/// One table a join copies.
pub struct Table {
    /// Its name.
    pub name: &'static str,
    /// The column holding the id its rows are filed under (`server_id`, or `cluster_id`
    /// in the cluster's own tables).
    pub key: &'static str,
    /// Which id its key column holds.
    pub owner: Owner,
    /// The columns copied besides the key column.
    columns: &'static [&'static str],
    /// The sets of columns that name a row under its id: its primary key besides
    /// the key column first, then its other unique constraints.
    unique: &'static [&'static [&'static str]],
    /// How its rows are written.
    write: Write,
}

/// What a join copies, in an order the schema's rules accept: a license source before the
/// grants and stations it licenses, the audit log after what it records.
#[rustfmt::skip]
pub const TABLES: &[Table] = &[
    Table {
        name: "license_sources", key: "server_id", owner: Owner::Cluster, write: Write::Sources,
        columns: &["source_id", "kind", "holder", "count", "used", "donated", "not_before",
                   "not_after", "usable_until", "status", "revision", "document", "added", "added_by"],
        unique: &[&["source_id"]],
    },
    Table {
        name: "grants", key: "server_id", owner: Owner::Cluster, write: Write::AsIs,
        columns: &["grant_id", "source_id", "receiver", "count", "not_after", "status", "revision",
                   "request_id", "token", "created", "updated"],
        unique: &[&["grant_id"], &["request_id"]],
    },
    Table {
        name: "stations", key: "server_id", owner: Owner::Cluster, write: Write::AsIs,
        columns: &["station_id", "secret_hash", "source_id", "registered", "last_seen"],
        unique: &[&["station_id"]],
    },
    Table {
        name: "license_log", key: "server_id", owner: Owner::Cluster, write: Write::Log,
        columns: &["at", "event", "subject", "details", "node_id"],
        unique: &[],
    },
    Table {
        name: "mirrored", key: "server_id", owner: Owner::Node, write: Write::AsIs,
        columns: &["root", "zone", "files", "bytes", "at", "checked_at", "check_error"],
        unique: &[&[]],
    },
    Table {
        name: "sync_state", key: "server_id", owner: Owner::Node, write: Write::AsIs,
        columns: &["parent", "last_try", "last_ok", "last_error"],
        unique: &[&[]],
    },
    Table {
        name: "links", key: "cluster_id", owner: Owner::Cluster, write: Write::AsIs,
        columns: &["peer_id", "kind", "cert_fp", "cert", "enrolled_at", "enrolled_by", "removed_at",
                   "removed_by", "refused_fp", "refused_at", "grant_key"],
        unique: &[&["cert_fp"], &["peer_id"]],
    },
    Table {
        name: "children", key: "server_id", owner: Owner::Node, write: Write::AsIs,
        columns: &["child_id", "root", "number", "hub_version", "config_digest", "chain", "reported_at",
                   "staged_number", "staged_root", "stage_error", "two_phase"],
        unique: &[&["child_id"]],
    },
];

/// Tables of [`LEFT_OUT`] that the cluster's database writes itself as the grants are
/// copied (the schema's trigger numbers each grant's change): the join adds rows to them
/// without copying any.
pub const WRITTEN_BY_TRIGGERS: &[&str] = &["grant_feeds", "grant_changes"];

/// The tables a join leaves alone, and why.
pub const LEFT_OUT: &[(&str, &str)] = &[
    (
        "members",
        "each node records itself while it serves; this one will on the cluster's database",
    ),
    (
        "versions",
        "the cluster's version list applies; this node's own versions stay in its old database",
    ),
    (
        "published",
        "this node serves nothing until it holds the cluster's published version: it takes it from its own store where it can and fetches the rest from a member",
    ),
    (
        "cluster_published",
        "the cluster's published version applies",
    ),
    (
        "cluster_staged",
        "the cluster's staged version applies",
    ),
    (
        "staged",
        "a version this node staged is fetched again from the cluster's parent if it is still staged there",
    ),
    (
        "link_tokens",
        "unused enrollment tokens are not carried over: make new ones with `updhub link invite`",
    ),
    (
        "grant_reports",
        "receivers report their counts again at their next sync",
    ),
    (
        "key_bindings",
        "bound again from the received grants' chains by the check each node runs as it starts serving",
    ),
    (
        "grant_flags",
        "a flagged grant is copied as a source that no longer counts; its flag's reason stays in the copied audit log",
    ),
    (
        "settings",
        "the cluster's shared settings apply to every member; this node's stay in its old database",
    ),
    (
        "grant_feeds",
        "the cluster's change counters go on: the schema's trigger numbers each copied grant in its receiver's counter as it is written, so receivers with a cursor fetch it",
    ),
    (
        "grant_changes",
        "written by the schema's trigger as each grant is copied, numbered in the cluster's counters",
    ),
    (
        "grant_feed_epochs",
        "the cluster's epoch applies: a receiver's cursor from this node carries another and gets a full answer once",
    ),
    (
        "canary",
        "the cluster's staged rollout applies; this node's stays in its old database",
    ),
    (
        "leases",
        "the cluster's task leases and schedules apply; this node's last runs stay in its old database",
    ),
    (
        "task_runs",
        "the cluster's task history applies; this node's runs stay in its old database",
    ),
    (
        "log_archives",
        "their seq ranges number this node's old log (the join numbers its rows anew in the cluster's): copied, they would let the cluster's own rows be deleted unarchived; the records stay in the old database and the files in this node's licenses.log_archive_dir",
    ),
    (
        "product_modes",
        "the cluster's product modes apply (`updhub products`); this node's stay in its old database",
    ),
    (
        "product_revisions",
        "the cluster's delayed revisions apply; a revision this node had waiting is seen anew",
    ),
    (
        "grant_cursors",
        "the cluster's cursors apply; a donor it has none for answers in full once",
    ),
    (
        "announcers",
        "each node records where it hears the cluster protocol while it serves; this one will on the cluster's database",
    ),
    (
        "login_failures",
        "failed station logins count for a few minutes only; the cluster's own counts apply",
    ),
];

impl Table {
    /// Where `column` is among [`Table::columns`].
    fn at(&self, column: &str) -> usize {
        self.columns
            .iter()
            .position(|c| *c == column)
            .unwrap_or_else(|| panic!("{} has no column {column} in TABLES", self.name))
    }

    /// A row's values in `columns`.
    fn name_of(&self, row: &Row, columns: &[&str]) -> Vec<Value> {
        columns.iter().map(|c| row.0[self.at(c)].clone()).collect()
    }

    fn insert_sql(&self) -> String {
        let marks: Vec<String> = (1..=self.columns.len() + 1)
            .map(|i| format!("${i}"))
            .collect();
        format!(
            "INSERT INTO {}({}, {}) VALUES ({})",
            self.name,
            self.key,
            self.columns.join(", "),
            marks.join(", ")
        )
    }
}

/// Something that stops a join, reported with everything else found.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Conflict {
    /// A license source id (a key, or a grant received) the cluster holds already.
    Source {
        /// The key id or received grant id.
        id: String,
        /// "key" or "grant".
        source_kind: String,
        /// The node that added it to the cluster ("" for rows older than schema 4).
        added_by: String,
        /// When.
        added: Option<DateTime<Utc>>,
    },
    /// A station id the cluster holds already.
    Station {
        /// The station id.
        id: String,
        /// Whether the cluster's station has the same credentials (then it is the same
        /// station, holding a license on each side).
        same_secret: bool,
    },
    /// Another row whose name the cluster holds already (a grant id, a request id, ...).
    Taken {
        /// The table.
        table: String,
        /// The naming columns.
        columns: String,
        /// Their values.
        value: String,
    },
    /// This node's id is in use in the cluster.
    NodeId {
        /// The id.
        node: String,
        /// When a member by that id last recorded itself, if one did.
        member_last_seen: Option<DateTime<Utc>>,
        /// Rows filed under the id, per table.
        rows: Vec<(String, u64)>,
        /// Who else holds the id in the cluster: a live link, a child that reported, a
        /// grant's receiver (see [`crate::db::links::other_holders`]).
        #[serde(skip_serializing_if = "Vec::is_empty")]
        known: Vec<String>,
    },
    /// This node's database holds rows of another server, which a join would leave behind.
    Foreign {
        /// The table.
        table: String,
        /// The other server's id.
        server: String,
        /// How many.
        rows: u64,
    },
    /// The cluster's database is at another schema.
    Schema {
        /// The schema found.
        found: i64,
        /// This build's.
        known: i64,
        /// The updhub version that wrote it.
        writer: String,
        /// Its number is known, its text another build's.
        foreign: bool,
    },
}

/// A node's rows as a join copies them, read from its embedded database in one transaction.
pub struct Snapshot {
    /// The node.
    node: ServerId,
    /// The id its ledger rows are filed under (on a lone node, its own).
    ledger: ServerId,
    /// The rows of each of [`TABLES`], in that order, with their columns.
    rows: Vec<Vec<Row>>,
    /// Rows of other servers in those tables.
    foreign: Vec<Conflict>,
    /// Rows per table, [`TABLES`] then [`LEFT_OUT`].
    pub counts: Vec<(&'static str, u64)>,
}

impl Snapshot {
    /// The id this node's ledger rows are filed under (on a lone node, its own).
    pub fn ledger(&self) -> &ServerId {
        &self.ledger
    }

    /// Rows of other servers in this node's database, which a join would leave behind.
    pub fn foreign(&self) -> &[Conflict] {
        &self.foreign
    }

    /// Rows a join copies per table, in the order of [`TABLES`].
    pub fn copied(&self) -> Vec<(&'static str, u64)> {
        TABLES
            .iter()
            .zip(&self.rows)
            .map(|(t, r)| (t.name, r.len() as u64))
            .collect()
    }

    /// The rows of the table `name`.
    fn rows_of(&self, name: &str) -> (&'static Table, &[Row]) {
        let i = TABLES
            .iter()
            .position(|t| t.name == name)
            .unwrap_or_else(|| panic!("{name} is not in TABLES"));
        (&TABLES[i], &self.rows[i])
    }
}

/// What a join would meet in a cluster's database, read without changing it.
pub struct Plan {
    /// The cluster's id: the ledger's rows are filed under it.
    pub cluster: ServerId,
    /// What stops the join; empty when it can go ahead.
    pub conflicts: Vec<Conflict>,
    /// Rows per table now, [`TABLES`] then [`LEFT_OUT`].
    pub counts: Vec<(&'static str, u64)>,
    /// Its members, as they last recorded themselves.
    pub members: Vec<Member>,
    /// Its shared settings.
    pub settings: Vec<SharedSetting>,
}

/// What a join did, counted inside its transaction.
pub struct Copied {
    /// Rows per table before, [`TABLES`] then [`LEFT_OUT`].
    pub before: Vec<(&'static str, u64)>,
    /// And after.
    pub after: Vec<(&'static str, u64)>,
}

/// The audit log event a join appends to the cluster's log.
pub const JOINED_EVENT: &str = "node_joined";

fn counts(c: &Conn<'_>) -> Result<Vec<(&'static str, u64)>, SqlError> {
    let names = TABLES
        .iter()
        .map(|t| t.name)
        .chain(LEFT_OUT.iter().map(|l| l.0));
    names
        .map(|n| {
            let k: u64 = c
                .value(&format!("SELECT count(*) FROM {n}"), &[])?
                .unwrap_or(0);
            Ok((n, k))
        })
        .collect()
}

fn params(key: &str, values: &[Value]) -> Vec<Value> {
    std::iter::once(Value::Text(key.to_owned()))
        .chain(values.iter().cloned())
        .collect()
}

fn refs(values: &[Value]) -> Vec<&dyn Param> {
    values.iter().map(|v| v as &dyn Param).collect()
}

fn show(values: &[Value]) -> String {
    values
        .iter()
        .map(|v| match v {
            Value::Null => "NULL".to_owned(),
            Value::Int(i) => i.to_string(),
            Value::Text(s) => s.clone(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl Db {
    /// Where the database at `loc` stands against this build's schema, read without
    /// changing it (a missing or empty SQLite file is [`Standing::Empty`]).
    ///
    /// # Errors
    /// An unreachable database, or a file that is no SQLite database.
    pub fn standing_at(loc: &Location, server: &ServerId) -> Result<Standing, DbError> {
        match loc {
            Location::Sqlite(p) => {
                if std::fs::metadata(p).map_or(true, |m| m.len() == 0) {
                    return Ok(Standing::Empty);
                }
                sqlite::check_file(p)?;
                let c = Connection::open_with_flags(
                    p,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
                .map_err(sqlite::sqlite_err(p))?;
                c.busy_timeout(super::BUSY_TIMEOUT)
                    .map_err(sqlite::sqlite_err(p))?;
                migrate::standing(&Conn::Sqlite(&c), false)
                    .map_err(|e| error_at(&p.display().to_string(), e))
            }
            Location::Postgres(url) => {
                let at = postgres::redact(url);
                let pg = postgres::Pg::connect(url, &super::app_name(server))
                    .map_err(|e| error_at(&at, e))?;
                pg.run(false, &mut |c| migrate::standing(c, true))
                    .map_err(|e| error_at(&at, e))
            }
        }
    }

    /// Read this node's rows for a join, in one transaction that keeps writers out
    /// meanwhile (it writes nothing).
    ///
    /// # Errors
    /// Database errors.
    pub fn join_snapshot(&self) -> Result<Snapshot, DbError> {
        let (node, ledger) = (self.server.clone(), self.cluster.clone());
        self.write(|c| {
            let mut rows = Vec::with_capacity(TABLES.len());
            let mut foreign = Vec::new();
            for t in TABLES {
                let key = match t.owner {
                    Owner::Cluster => ledger.as_str(),
                    Owner::Node => node.as_str(),
                };
                let order = match (t.write, t.unique.first()) {
                    (Write::Log, _) => " ORDER BY seq".to_owned(),
                    (_, Some(cols)) if !cols.is_empty() => format!(" ORDER BY {}", cols.join(", ")),
                    _ => String::new(),
                };
                rows.push(c.rows(
                    &format!(
                        "SELECT {} FROM {} WHERE {}=$1{order}",
                        t.columns.join(", "),
                        t.name,
                        t.key
                    ),
                    args![key],
                )?);
                for r in c.rows(
                    &format!(
                        "SELECT {k}, count(*) FROM {} WHERE {k}<>$1 GROUP BY {k} ORDER BY {k}",
                        t.name,
                        k = t.key
                    ),
                    args![key],
                )? {
                    foreign.push(Conflict::Foreign {
                        table: t.name.to_owned(),
                        server: r.get(0)?,
                        rows: r.get(1)?,
                    });
                }
            }
            Ok(Snapshot {
                node: node.clone(),
                ledger: ledger.clone(),
                rows,
                foreign,
                counts: counts(c)?,
            })
        })
    }

    /// What joining `snap` into this (the cluster's) database would meet: every conflict,
    /// and what is there now. Only reads.
    ///
    /// # Errors
    /// Database errors.
    pub fn join_plan(&self, snap: &Snapshot) -> Result<Plan, DbError> {
        let cluster = self.cluster.clone();
        let (conflicts, counts) =
            self.read(|c| Ok((conflicts(c, snap, cluster.as_str())?, counts(c)?)))?;
        Ok(Plan {
            cluster,
            conflicts,
            counts,
            members: self.members()?,
            settings: self.shared_settings()?,
        })
    }

    /// Copy `snap` into this (the cluster's) database in one transaction at time `now`: the
    /// conflicts are looked for again first (then nothing is written and they are returned),
    /// every row is read back and compared before the commit, and the cluster's audit log
    /// records the join.
    ///
    /// # Errors
    /// Database errors, a rule of the schema that refused a row, or a row that reads back
    /// differently: the transaction is rolled back and nothing changed.
    pub fn join_copy(
        &self,
        snap: &Snapshot,
        now: DateTime<Utc>,
    ) -> Result<Result<Copied, Vec<Conflict>>, DbError> {
        let cluster = self.cluster.to_string();
        let mut differs: Option<String> = None;
        let res = self.write(|c| {
            let found = conflicts(c, snap, &cluster)?;
            if !found.is_empty() {
                return Ok(Err(found));
            }
            let before = counts(c)?;
            c.set_now(now, snap.node.as_str())?;
            let seqs = copy::copy(c, snap, &cluster, now)?;
            copy::restore_sources(c, snap, &cluster)?;
            if let Err(why) = copy::read_back(c, snap, &cluster, &seqs)? {
                differs = Some(why);
                return Err(SqlError::Failed(
                    "a copied row reads back differently".into(),
                ));
            }
            super::license_log::append(
                c,
                &cluster,
                JOINED_EVENT,
                snap.node.as_str(),
                &format!(
                    "joined the cluster from its embedded database: {}",
                    snap.copied()
                        .iter()
                        .map(|(t, n)| format!("{t} {n}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )?;
            Ok(Ok(Copied {
                before,
                after: counts(c)?,
            }))
        });
        match (res, differs) {
            (Err(_), Some(why)) => Err(DbError::JoinDiffers {
                at: self.at.clone(),
                why,
            }),
            (res, _) => res,
        }
    }
}

/// Every conflict between `snap` and the cluster's database on `c`, whose ledger is filed
/// under `cluster`.
fn conflicts(c: &Conn<'_>, snap: &Snapshot, cluster: &str) -> Result<Vec<Conflict>, SqlError> {
    let mut out = snap.foreign.clone();
    let mut node_rows = Vec::new();
    for (t, rows) in TABLES.iter().zip(&snap.rows) {
        match t.owner {
            Owner::Node => {
                let n: u64 = c
                    .value(
                        &format!("SELECT count(*) FROM {} WHERE {}=$1", t.name, t.key),
                        args![snap.node.as_str()],
                    )?
                    .unwrap_or(0);
                if n > 0 {
                    node_rows.push((t.name.to_owned(), n));
                }
            }
            Owner::Cluster => {
                for cols in t.unique {
                    let taken: HashSet<Vec<Value>> = c
                        .rows(
                            &format!(
                                "SELECT {} FROM {} WHERE {}=$1",
                                cols.join(", "),
                                t.name,
                                t.key
                            ),
                            args![cluster],
                        )?
                        .into_iter()
                        .map(|r| r.0)
                        .collect();
                    for r in rows {
                        let name = t.name_of(r, cols);
                        if taken.contains(&name) {
                            out.push(describe(c, t, cols, &name, r, cluster)?);
                        }
                    }
                }
            }
        }
    }
    let last_seen = c.value(
        "SELECT last_seen FROM members WHERE node_id=$1",
        args![snap.node.as_str()],
    )?;
    // A member by an id the cluster knows as another server's would be taken for it (its
    // certificate names the id), and it for the member.
    let known = super::links::other_holders(c, cluster, snap.node.as_str())?;
    if last_seen.is_some() || !node_rows.is_empty() || !known.is_empty() {
        out.push(Conflict::NodeId {
            node: snap.node.to_string(),
            member_last_seen: last_seen,
            rows: node_rows,
            known,
        });
    }
    Ok(out)
}

/// The conflict of a row of `t` named `name` in `cols`, which the cluster holds already.
fn describe(
    c: &Conn<'_>,
    t: &Table,
    cols: &[&str],
    name: &[Value],
    row: &Row,
    cluster: &str,
) -> Result<Conflict, SqlError> {
    Ok(match t.name {
        "license_sources" => {
            let id: String = row.get(t.at("source_id"))?;
            let added = super::license_sources::added(c, cluster, &id)?;
            Conflict::Source {
                source_kind: row.get(t.at("kind"))?,
                added_by: added.as_ref().map(|a| a.0.clone()).unwrap_or_default(),
                added: added.map(|a| a.1),
                id,
            }
        }
        "stations" => {
            let id: String = row.get(t.at("station_id"))?;
            let ours: String = row.get(t.at("secret_hash"))?;
            let theirs = super::stations::get(c, cluster, &id)?;
            Conflict::Station {
                same_secret: theirs.is_some_and(|(hash, _)| hash == ours),
                id,
            }
        }
        _ => Conflict::Taken {
            table: t.name.to_owned(),
            columns: cols.join(", "),
            value: show(name),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table or column added to the schema must be added to [`TABLES`] (or to
    /// [`LEFT_OUT`], saying why), or a join would silently leave it behind.
    #[test]
    fn every_table_and_column_of_the_schema_is_copied_or_left_out_on_purpose() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::create(&dir.path().join("t.db"), ServerId::new("n1").unwrap()).unwrap();
        let schema: Vec<(String, Vec<String>)> = db
            .read(|c| {
                let tables: Vec<String> = c.column(
                    "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
                    &[],
                )?;
                tables
                    .into_iter()
                    .map(|t| {
                        let cols = c.column(&format!("SELECT name FROM pragma_table_info('{t}')"), &[])?;
                        Ok((t, cols))
                    })
                    .collect()
            })
            .unwrap();
        for (table, cols) in schema {
            if ["meta", "clock"].contains(&table.as_str()) || LEFT_OUT.iter().any(|l| l.0 == table)
            {
                continue;
            }
            let t = TABLES
                .iter()
                .find(|t| t.name == table)
                .unwrap_or_else(|| panic!("table {table} is neither in TABLES nor in LEFT_OUT"));
            let mut copied: Vec<&str> = std::iter::once(t.key)
                .chain(t.columns.iter().copied())
                .chain((t.write == Write::Log).then_some("seq"))
                .collect();
            copied.sort_unstable();
            let mut cols: Vec<&str> = cols.iter().map(String::as_str).collect();
            cols.sort_unstable();
            assert_eq!(cols, copied, "the columns of {table}");
            for set in t.unique {
                for c in *set {
                    t.at(c);
                }
            }
        }
    }
}

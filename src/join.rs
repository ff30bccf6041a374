//! `updhub cluster join --database URL [--dry-run]`: a node that ran alone on its embedded
//! database moves into a cluster's shared one, and loses nothing. Everything is checked
//! first: a conflict (a license key, station, grant or server id the cluster holds already,
//! rows of another server here, a database at another schema) stops the join with a report
//! of every one and their fixes, and nothing changes on either side. Without one, the rows
//! are copied in one transaction on the cluster's database ([`crate::db::join`]), and only
//! after its commit does updhub.toml name the new database (temp file + rename); the old
//! SQLite file stays as it was, as the backup. A serving node holds its data folder's lock,
//! so the join refuses to run beside it.

use std::path::{Path, PathBuf};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use crate::config::{self, Config};
use crate::db::join::{Conflict, Plan, Snapshot, LEFT_OUT, TABLES, WRITTEN_BY_TRIGGERS};
use crate::db::{Db, Location, SharedSetting, Standing};
use crate::error::Error;
use crate::hub::Hub;

/// One table's rows, before and after.
#[derive(Debug, Clone, Serialize)]
pub struct TableCount {
    /// The table.
    pub table: String,
    /// Rows in this node's database.
    pub here: u64,
    /// Rows in the cluster's database before the join.
    pub cluster_before: u64,
    /// Rows the join adds (would add, on a dry run); `None` for a table it leaves alone (for
    /// one the cluster's triggers write as grants are copied, `None` until it ran).
    pub added: Option<u64>,
    /// Rows in the cluster's database after the join; `None` on a dry run or a refusal.
    pub cluster_after: Option<u64>,
    /// Why the join leaves the table alone, or what else it adds.
    pub note: Option<String>,
}

/// A conflict, said for the admin.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// What is in the way.
    pub what: String,
    /// How to clear it.
    pub fix: String,
    /// The conflict itself.
    pub conflict: Conflict,
}

/// What `cluster join` found and did.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// This node's id.
    pub node: String,
    /// This node's database file.
    pub local: PathBuf,
    /// The cluster's database (without its password).
    pub target: String,
    /// The cluster's id, under which the license ledger's rows are filed there (on an empty
    /// database: this node's, which then names the cluster).
    pub cluster: String,
    /// The id this node's ledger rows are filed under here.
    pub ledger: String,
    /// Only looked, changed nothing.
    pub dry_run: bool,
    /// The rows were copied and updhub.toml names the cluster's database.
    pub joined: bool,
    /// Rows per table.
    pub tables: Vec<TableCount>,
    /// What stops the join; empty when it can go (or went) ahead.
    pub conflicts: Vec<Problem>,
    /// What the admin should know besides.
    pub notes: Vec<String>,
}

impl Report {
    /// Whether conflicts stop the join.
    pub fn refused(&self) -> bool {
        !self.conflicts.is_empty()
    }
}

/// `cluster join`: move the node in `data` into the cluster whose database is `url`, or
/// with `dry_run` only say what that would do.
///
/// # Errors
/// A serving node, a node already on PostgreSQL, a bad URL, unreachable databases, a row
/// the cluster's rules refuse (then nothing changed), or a failure to write updhub.toml
/// after the copy (then the error says how to finish by hand). Conflicts are no error: the
/// report lists them and [`Report::refused`] is true.
pub fn join(data: &Path, url: &str, dry_run: bool) -> Result<Report, Error> {
    let _lock = crate::lock::DataLock::take(data, "cluster join")?;
    let config = Config::load(data)?;
    let node = config.server.id.clone();
    let local = match config.database_location(data)? {
        Location::Sqlite(p) => p,
        Location::Postgres(u) => {
            return Err(Error::State(format!(
                "this node's database is already a PostgreSQL database ({}): `cluster join` moves a node from its embedded SQLite database into a cluster's, and a node on a shared database is a member of that database's cluster already",
                crate::db::postgres::redact(&u)
            )))
        }
    };
    let shown = crate::db::postgres::redact_any(url);
    if !config::is_db_url(url) {
        return Err(Error::State(format!(
            "--database {shown:?} names no database: give the cluster's as postgres://USER:PASSWORD@HOST:PORT/DBNAME (or sqlite:FILE)"
        )));
    }
    let mut joined_config = config.clone();
    joined_config.database.url = url.to_owned();
    joined_config.database.url_file = None;
    let target = joined_config.database_location(data)?;
    if target == Location::Sqlite(local.clone()) {
        return Err(Error::State(format!(
            "--database names this node's own database ({}): give the cluster's",
            local.display()
        )));
    }

    let now = Utc::now();
    let hub = Hub::open_with(data, config.clone())?;
    let snap = hub.db.join_snapshot()?;
    let me = hub.member("cluster join", now, &config.server.listen.to_string())?;
    let our_settings = hub.db.shared_settings()?;
    drop(hub);

    let mut report = Report {
        node: node.to_string(),
        local: local.clone(),
        target: shown,
        cluster: node.to_string(),
        ledger: snap.ledger().to_string(),
        dry_run,
        joined: false,
        tables: Vec::new(),
        conflicts: Vec::new(),
        notes: Vec::new(),
    };
    // Rows here that are not this node's would be left behind: said before the cluster's
    // database is touched at all.
    if !snap.foreign().is_empty() {
        report.conflicts = problems(snap.foreign());
        report.tables = tables(&snap, &empty_plan(&snap, &node), None);
        return Ok(report);
    }
    let standing = Db::standing_at(&target, &node)?;
    let target_db = match &standing {
        Standing::Other {
            found,
            known,
            writer,
            foreign,
        } => {
            report.conflicts = problems(&[Conflict::Schema {
                found: *found,
                known: *known,
                writer: writer.clone(),
                foreign: *foreign,
            }]);
            report.tables = tables(&snap, &empty_plan(&snap, &node), None);
            return Ok(report);
        }
        // A dry run leaves an empty database as it is: nothing there to meet.
        Standing::Empty if dry_run => None,
        // The normal open path: an empty database gets this build's schema.
        Standing::Empty => Some(Db::create_at(&target, node.clone())?),
        Standing::Current => Some(Db::open_at(&target, node.clone())?),
    };
    if standing == Standing::Empty {
        report.notes.push(format!(
            "the database is empty: the join gives it updhub's schema and this node's id ({node}) names the new cluster"
        ));
    }
    let plan = match &target_db {
        Some(db) => db.join_plan(&snap)?,
        None => empty_plan(&snap, &node),
    };
    report.cluster = plan.cluster.to_string();
    report
        .notes
        .extend(settings_notes(&our_settings, &plan.settings));
    report.notes.extend(member_notes(&me, &plan, now));
    report.conflicts = problems(&plan.conflicts);
    let (Some(db), false, false) = (target_db, dry_run, report.refused()) else {
        report.tables = tables(&snap, &plan, None);
        return Ok(report);
    };
    match db.join_copy(&snap, now)? {
        // Found between the look and the copy: nothing was written.
        Err(conflicts) => {
            report.conflicts = problems(&conflicts);
            report.tables = tables(&snap, &plan, None);
        }
        Ok(copied) => {
            drop(db);
            report.tables = tables(
                &snap,
                &Plan {
                    counts: copied.before,
                    ..plan
                },
                Some(&copied.after),
            );
            report.joined = true;
            write_database_url(data, url, &joined_config).map_err(|e| {
                Error::State(format!(
                    "the rows were copied into {} and committed, but {} could not be changed ({e}); set database.url there to the cluster's database by hand",
                    report.target,
                    data.join(config::FILE).display()
                ))
            })?;
        }
    }
    Ok(report)
}

/// The plan against a database with nothing in it: made by this node, it would name the
/// cluster after it.
fn empty_plan(snap: &Snapshot, node: &crate::id::ServerId) -> Plan {
    Plan {
        cluster: node.clone(),
        conflicts: Vec::new(),
        counts: snap.counts.iter().map(|(t, _)| (*t, 0)).collect(),
        members: Vec::new(),
        settings: Vec::new(),
    }
}

/// The table of counts: here, in the cluster before, added, and after (when it ran).
fn tables(snap: &Snapshot, plan: &Plan, after: Option<&[(&'static str, u64)]>) -> Vec<TableCount> {
    let copied = snap.copied();
    let count = |list: &[(&'static str, u64)], t: &str| {
        list.iter().find(|(n, _)| *n == t).map_or(0, |(_, k)| *k)
    };
    let mut out: Vec<TableCount> = TABLES
        .iter()
        .map(|t| {
            let log = t.name == "license_log";
            TableCount {
                table: t.name.to_owned(),
                here: count(&snap.counts, t.name),
                cluster_before: count(&plan.counts, t.name),
                added: Some(count(&copied, t.name) + u64::from(log)),
                cluster_after: after.map(|a| count(a, t.name)),
                note: log.then(|| "and one row recording the join".to_owned()),
            }
        })
        .collect();
    out.extend(LEFT_OUT.iter().map(|(t, why)| {
        let before = count(&plan.counts, t);
        // Rows the cluster's own triggers wrote as the grants were copied.
        let derived = WRITTEN_BY_TRIGGERS.contains(t);
        TableCount {
            table: (*t).to_owned(),
            here: count(&snap.counts, t),
            cluster_before: before,
            added: after
                .filter(|_| derived)
                .map(|a| count(a, t).saturating_sub(before)),
            cluster_after: after.map(|a| count(a, t)),
            note: Some(format!("not copied: {why}")),
        }
    }));
    out
}

fn time(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(
        || "an unknown time".to_owned(),
        |t| t.to_rfc3339_opts(SecondsFormat::Secs, true),
    )
}

/// Each conflict with its fix. Only commands that exist are named: updhub has none that
/// takes a key or a station out of a ledger.
fn problems(conflicts: &[Conflict]) -> Vec<Problem> {
    const NEW_MEMBER: &str = "set this server up as a new member instead (`updhub keys export` on a member, `updhub init --keys-from DIR --database URL` in a new data folder) and let its stations register there; this data folder stays as the record";
    conflicts
        .iter()
        .map(|c| {
            let (what, fix) = match c {
                Conflict::Source { id, source_kind, added_by, added } => {
                    let by = if added_by.is_empty() { String::new() } else { format!("by node {added_by} ") };
                    let what = if source_kind == "key" {
                        format!("license key {id} is already in the cluster (added {by}at {})", time(*added))
                    } else {
                        format!("grant {id}, received here, is already in the cluster's ledger (added {by}at {})", time(*added))
                    };
                    (what, format!("a key or grant is counted in one ledger only, and updhub has no command that takes one out of a ledger. If it is the same key, the cluster holds its licenses already: {NEW_MEMBER}. If it is another key with the same id, ask its issuer"))
                }
                Conflict::Station { id, same_secret: false } => (
                    format!("station {id} is registered in the cluster with another secret"),
                    "two machines use one station id, or the station registered anew on one side: stop it on one side; a station not seen for licenses.station_ttl is purged by the node that serves it (`updhub stations` lists when each was last seen), then run the join again".to_owned(),
                ),
                Conflict::Station { id, same_secret: true } => (
                    format!("station {id} is registered both here and in the cluster, with the same secret: it holds a license on each side"),
                    "it may hold one only: let it report to the cluster only; this node, while it serves, purges it once it has not been seen here for licenses.station_ttl; then run the join again".to_owned(),
                ),
                Conflict::Taken { table, columns, value } if table == "grants" => (
                    format!("grant {columns} {value} is already in the cluster"),
                    "grant and request ids are random, so the cluster holds this node's grants already: was this node joined before, or its data folder copied from a member? Compare `updhub license grants` here and on a member".to_owned(),
                ),
                Conflict::Taken { table, columns, value } => (
                    format!("{table} {columns} {value} is already in the cluster"),
                    format!("a join never overwrites a row: compare the {table} row here and in the cluster, and keep one"),
                ),
                Conflict::NodeId { node, member_last_seen, rows, known } => {
                    let mut held = Vec::new();
                    if member_last_seen.is_some() {
                        held.push(format!("a member last seen at {}", time(*member_last_seen)));
                    }
                    held.extend(rows.iter().map(|(t, n)| format!("{n} row(s) in {t}")));
                    held.extend(known.iter().cloned());
                    (
                        format!("server id {node} is taken in the cluster ({})", held.join(", ")),
                        format!("every member needs its own id, and its rows are filed under it: if they are this node's from an earlier join, set database.url in updhub.toml by hand; otherwise this server cannot join as {node}: {NEW_MEMBER}"),
                    )
                }
                Conflict::Foreign { table, server, rows } => (
                    format!("this node's database holds {rows} row(s) of server {server} in {table}"),
                    "a join copies this node's rows only and would leave these behind: was updhub.db copied from another node? Join from that node's data folder".to_owned(),
                ),
                Conflict::Schema { found, known, writer, foreign: true } => (
                    format!("the cluster's database has schema {found} of another updhub build (written by updhub {writer}); this updhub writes schema {known}"),
                    "run the join with the build the cluster runs".to_owned(),
                ),
                Conflict::Schema { found, known, writer, .. } if found > known => (
                    format!("the cluster's database has schema {found} (written by updhub {writer}); this updhub knows schema {known} at most"),
                    "upgrade this node to the cluster's updhub version first, then join".to_owned(),
                ),
                Conflict::Schema { found, known, writer, .. } => (
                    format!("the cluster's database has schema {found} (written by updhub {writer}); this updhub writes schema {known}"),
                    format!("bring the cluster's database to schema {known} first: `updhub db upgrade` on a member running this updhub version (README: upgrading a cluster), then join"),
                ),
            };
            Problem { what, fix, conflict: c.clone() }
        })
        .collect()
}

/// The settings this node set whose value the cluster does not share: the cluster's apply
/// after the join.
fn settings_notes(ours: &[SharedSetting], cluster: &[SharedSetting]) -> Vec<String> {
    ours.iter()
        .filter_map(|s| {
            let theirs = cluster.iter().find(|c| c.key == s.key);
            if theirs.is_some_and(|c| c.value == s.value) {
                return None;
            }
            let after = match theirs {
                Some(c) => format!("the cluster set {} = {}, which applies after the join", c.key, c.value),
                None => "the cluster set none, so after the join its updhub.toml value applies".to_owned(),
            };
            Some(format!(
                "setting {k} = {v} was set on this node; {after}; to keep {v}, run `updhub config set {k} {v}` once it has joined (it applies to every member)",
                k = s.key,
                v = s.value,
            ))
        })
        .collect()
}

/// What `cluster check` would report once this node serves beside the live members (its
/// `[same]` settings left out: the cluster's apply to it).
fn member_notes(me: &crate::db::Member, plan: &Plan, now: DateTime<Utc>) -> Vec<String> {
    let mut members: Vec<crate::db::Member> = plan
        .members
        .iter()
        .filter(|m| m.node_id != me.node_id)
        .cloned()
        .collect();
    if members.is_empty() {
        return Vec::new();
    }
    members.push(me.clone());
    // Settings are left out below, so when they last changed does not matter.
    let check = crate::cluster::check(&members, now, crate::hub::MEMBER_ALIVE, None);
    check
        .findings
        .iter()
        .filter(|f| !f.what.starts_with("setting "))
        .map(|f| {
            let values: Vec<String> = f.values.iter().map(|(n, v)| format!("{n}: {v}")).collect();
            format!(
                "once this node serves, `cluster check` will report that the {} differs ({}); fix: {}",
                f.what,
                values.join(", "),
                f.fix
            )
        })
        .collect()
}

/// Point `database.url` in updhub.toml at `url`, keeping every other line: temp file, fsync,
/// rename, fsync the folder. `url_file`, which would override it, is commented out. The new
/// text is checked to give `expected` before it replaces the old.
fn write_database_url(data: &Path, url: &str, expected: &Config) -> Result<(), String> {
    let path = data.join(config::FILE);
    let old = std::fs::read_to_string(&path).map_err(|e| format!("reading it: {e}"))?;
    let new = with_database_url(&old, url);
    let parsed = Config::parse(&new, &path).map_err(|e| e.to_string())?;
    let as_toml = |c: &Config| toml::Value::try_from(c).map_err(|e| e.to_string());
    if as_toml(&parsed)? != as_toml(expected)? {
        return Err("the edited file would not read back as the old one with the new database.url; nothing was written".into());
    }
    let io = |e: std::io::Error| e.to_string();
    // The URL may hold a password: the file keeps the old one's permissions, from creation.
    let mode = crate::durable::mode_of(&path).map_err(io)?;
    crate::durable::write_atomic(&path, new.as_bytes(), mode).map_err(io)
}

/// `text` (an updhub.toml) with `url = ...` under `[database]` set to `url`, added when
/// missing, and `url_file = ...` there commented out.
fn with_database_url(text: &str, url: &str) -> String {
    let line = format!("url = {}", toml::Value::String(url.to_owned()));
    let mut out: Vec<String> = Vec::new();
    let mut section = String::new();
    let mut done = false;
    for l in text.lines() {
        let t = l.trim_start();
        if t.starts_with('[') {
            if section == "database" && !done {
                out.push(line.clone());
                done = true;
            }
            section = t
                .trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or_default()
                .trim()
                .to_owned();
        } else if section == "database" && !t.starts_with('#') && t.contains('=') {
            match t.split('=').next().unwrap_or_default().trim() {
                "url" => {
                    if !done {
                        out.push(line.clone());
                        done = true;
                    }
                    continue;
                }
                "url_file" => {
                    out.push(format!(
                        "# {t}   (set aside by `updhub cluster join`: url names the cluster's database)"
                    ));
                    continue;
                }
                _ => {}
            }
        }
        out.push(l.to_owned());
    }
    if !done {
        if section != "database" {
            out.push(String::new());
            out.push("[database]".to_owned());
        }
        out.push(line);
    }
    out.join("\n") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_url_is_replaced_in_place_and_url_file_set_aside() {
        let text = "# top\n[server]\nid = \"n1\"\nurl = \"not this one\"\n\n[database]\n# url = \"x\"\nurl = \"sqlite:updhub.db\"\nurl_file = \"database-url\"\n\n[licenses]\nwarn_before = \"2days\"\n";
        let new = with_database_url(text, "postgres://u:p@h:5432/d");
        assert_eq!(
            new,
            "# top\n[server]\nid = \"n1\"\nurl = \"not this one\"\n\n[database]\n# url = \"x\"\nurl = \"postgres://u:p@h:5432/d\"\n# url_file = \"database-url\"   (set aside by `updhub cluster join`: url names the cluster's database)\n\n[licenses]\nwarn_before = \"2days\"\n"
        );
        // No url line, or no [database] section at all: one is added.
        assert_eq!(
            with_database_url("[database]\n[licenses]\n", "sqlite:c.db"),
            "[database]\nurl = \"sqlite:c.db\"\n[licenses]\n"
        );
        assert_eq!(
            with_database_url("[server]\nid = \"n1\"\n", "sqlite:c.db"),
            "[server]\nid = \"n1\"\n\n[database]\nurl = \"sqlite:c.db\"\n"
        );
    }

    #[test]
    fn a_commented_config_reads_back_with_only_the_database_changed() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = Config::new(crate::id::ServerId::new("n1").unwrap(), None);
        std::fs::write(dir.path().join(config::FILE), cfg.to_commented_toml()).unwrap();
        cfg.database.url = "postgres://u:p\"q@h:5432/d".into();
        write_database_url(dir.path(), &cfg.database.url, &cfg).unwrap();
        let back = Config::load(dir.path()).unwrap();
        assert_eq!(back.database.url, cfg.database.url);
        assert_eq!(
            toml::Value::try_from(&back).unwrap(),
            toml::Value::try_from(&cfg).unwrap()
        );
    }
}

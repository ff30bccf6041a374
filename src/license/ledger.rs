//! The license ledger: every license state change is one database transaction, and the
//! database itself enforces conservation (see `schemas/002-licenses.sql`).
//!
//! Writes go through one writer thread that group-commits: it takes every request waiting,
//! runs each inside its own savepoint (a refused request rolls back alone), and commits the
//! batch with one fsync. Replies are sent only after that commit, so a caller that heard
//! "granted" holds a durable grant, and throughput is not bounded by one fsync per request.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use ed25519_dalek::SigningKey;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::Serialize;

use super::{LicenseError, LicenseKey};
use crate::id::ServerId;

/// Most requests committed together.
const MAX_BATCH: usize = 1024;

type Reply = Box<dyn FnOnce(Result<(), String>) + Send>;
type Job = Box<dyn FnOnce(&Connection) -> (bool, Reply) + Send>;

pub(super) fn ts(t: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(t, 0).single().unwrap_or_default()
}

/// What a source looks like in `license status`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SourceStatus {
    /// Key id or received grant id.
    pub source_id: String,
    /// "key" or "grant".
    pub kind: String,
    /// Key holder, or the donor of a received grant.
    pub holder: String,
    /// Licenses in it.
    pub total: u64,
    /// Used by stations here.
    pub used: u64,
    /// Donated to other servers (grants that still count).
    pub donated: u64,
    /// Free to use or donate now.
    pub free: u64,
    /// Its end.
    pub not_after: DateTime<Utc>,
    /// When this server stops counting it.
    pub usable_until: DateTime<Utc>,
    /// active, revoked, returning, returned, expired.
    pub status: String,
    /// It ends within `licenses.warn_before`.
    pub expiring_soon: bool,
}

/// An outgoing grant, as the donor sees it.
#[derive(Debug, Clone, Serialize)]
pub struct OutgoingGrant {
    /// Its id.
    pub grant_id: String,
    /// Carved from.
    pub source_id: String,
    /// To whom.
    pub receiver: String,
    /// How many.
    pub count: u64,
    /// Until.
    pub not_after: DateTime<Utc>,
    /// active, revoking, revoked, returned, expired.
    pub status: String,
}

/// Both directions, for `license grants`.
#[derive(Debug, Clone, Serialize)]
pub struct GrantsView {
    /// Grants this server donated.
    pub outgoing: Vec<OutgoingGrant>,
    /// Grants this server received.
    pub incoming: Vec<SourceStatus>,
}

/// A registered station.
#[derive(Debug, Clone, Serialize)]
pub struct StationRow {
    /// Its id.
    pub station_id: String,
    /// The source of its license.
    pub source_id: String,
    /// First registration.
    pub registered: DateTime<Utc>,
    /// Last contact.
    pub last_seen: DateTime<Utc>,
}

/// One audit log entry.
#[derive(Debug, Clone, Serialize)]
pub struct LogRow {
    /// Sequence number.
    pub seq: i64,
    /// When.
    pub at: DateTime<Utc>,
    /// What happened.
    pub event: String,
    /// To what (grant, key, station).
    pub subject: String,
    /// Details.
    pub details: String,
}

/// A donation request.
#[derive(Debug, Clone)]
pub struct Donation {
    /// The receiving server.
    pub to: String,
    /// How many licenses.
    pub count: u32,
    /// Until when.
    pub until: DateTime<Utc>,
    /// From which key or received grant (None: the one with most free licenses that lasts).
    pub source: Option<String>,
    /// Idempotency key: the same id never allocates twice.
    pub request_id: String,
}

/// What a sweep did.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Sweep {
    /// Outgoing grants reclaimed at end + margin.
    pub reclaimed: u64,
    /// Received grants and keys that stopped counting.
    pub ended_sources: u64,
    /// Stations that lost their license (no other source had room).
    pub stations_dropped: u64,
    /// Stations purged for not being seen.
    pub stations_purged: u64,
}

/// The license ledger of one server.
pub struct Ledger {
    /// Rows are read and written under this id.
    pub(super) server: ServerId,
    /// The database file.
    pub(super) path: PathBuf,
    /// Sends jobs to the writer thread; taken on drop, which ends the thread.
    writer: Mutex<Option<mpsc::Sender<Job>>>,
    /// The writer thread, joined on drop so its connection is closed when the ledger is.
    thread: Option<std::thread::JoinHandle<()>>,
    /// Reads use their own connection (WAL lets them run beside the writer).
    reader: Mutex<Connection>,
    /// Signs grant tokens.
    pub(super) signing: Arc<SigningKey>,
    /// Clock-skew margin between servers.
    pub(super) margin: chrono::Duration,
}

pub(super) fn map_sql(path: &Path) -> impl Fn(rusqlite::Error) -> LicenseError + '_ {
    move |e| {
        if crate::db::is_busy(&e) {
            return LicenseError::Busy {
                path: path.display().to_string(),
            };
        }
        let msg = e.to_string();
        if crate::db::broken_rule(&e) == Some("conservation") {
            LicenseError::Refused(format!(
                "refused: it would hand out more licenses than the source holds, or outlive it ({msg})"
            ))
        } else {
            LicenseError::Db {
                path: path.display().to_string(),
                why: msg,
            }
        }
    }
}

/// Set the transaction's time (see `schemas/003-clock.sql`).
fn set_clock(c: &Connection, now: DateTime<Utc>) -> rusqlite::Result<()> {
    c.prepare_cached("UPDATE clock SET now = ?1 WHERE id = 1")?
        .execute([now.timestamp()])?;
    Ok(())
}

/// Append to the audit log, at the transaction's time.
pub(super) fn log(
    c: &Connection,
    server: &str,
    event: &str,
    subject: &str,
    details: String,
) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO license_log(server_id, at, event, subject, details)
         VALUES (?1, (SELECT now FROM clock), ?2, ?3, ?4)",
        params![server, event, subject, details],
    )?;
    Ok(())
}

fn secret_hash(station: &str, secret: &str) -> String {
    blake3::derive_key(
        "updhub station secret v1",
        format!("{station}\n{secret}").as_bytes(),
    )
    .iter()
    .map(|b| format!("{b:02x}"))
    .collect()
}

/// What to do with a station that finds no other source with room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NoRoom {
    /// It loses its license (the source ended: there is no keeping it).
    Drop,
    /// Nothing moves at all (an admin action that must not cost stations their license).
    Refuse,
}

/// Move a source's stations to other sources with room. Returns how many lost their
/// license, or `None` when `no_room` is [`NoRoom::Refuse`] and some found no room (then
/// nothing moved).
pub(super) fn rehome_stations(
    c: &Connection,
    server: &str,
    source: &str,
    no_room: NoRoom,
) -> rusqlite::Result<Option<u64>> {
    c.execute_batch("SAVEPOINT rehome")?;
    let stations: Vec<String> = {
        let mut st = c.prepare_cached(
            "SELECT station_id FROM stations WHERE server_id=?1 AND source_id=?2",
        )?;
        let rows = st
            .query_map(params![server, source], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        rows
    };
    let mut dropped = 0;
    for s in stations {
        match pick_source(c, server, 1, None, Some(source))? {
            Some(other) => {
                c.execute(
                    "UPDATE stations SET source_id=?3 WHERE server_id=?1 AND station_id=?2",
                    params![server, s, other],
                )?;
            }
            None if no_room == NoRoom::Refuse => {
                c.execute_batch("ROLLBACK TO rehome; RELEASE rehome")?;
                return Ok(None);
            }
            None => {
                c.execute(
                    "DELETE FROM stations WHERE server_id=?1 AND station_id=?2",
                    params![server, s],
                )?;
                log(
                    c,
                    server,
                    "station_unlicensed",
                    &s,
                    format!("its license source {source} ended and no other had room"),
                )?;
                dropped += 1;
            }
        }
    }
    c.execute_batch("RELEASE rehome")?;
    Ok(Some(dropped))
}

/// The source in force with room for `n` more that lasts at least until `until`, the one
/// lasting longest first (fewest future moves); never `except`. "In force" is judged at the
/// transaction's time (the clock row), as the triggers judge it.
pub(super) fn pick_source(
    c: &Connection,
    server: &str,
    n: u32,
    until: Option<i64>,
    except: Option<&str>,
) -> rusqlite::Result<Option<String>> {
    c.prepare_cached(
        "SELECT source_id FROM license_sources, (SELECT now FROM clock) AS t
          WHERE server_id=?1 AND status='active' AND not_before <= t.now AND usable_until > t.now
            AND usable_until >= coalesce(?2, t.now) AND count - used - donated >= ?3
            AND source_id <> ?4
          ORDER BY usable_until DESC, source_id LIMIT 1",
    )?
    .query_row(params![server, until, n, except.unwrap_or("")], |r| {
        r.get(0)
    })
    .optional()
}

impl Ledger {
    /// Open the ledger on the database at `path` (already migrated by [`crate::db::Db`]).
    ///
    /// # Errors
    /// The database cannot be opened.
    pub fn open(
        path: &Path,
        server: ServerId,
        signing: Arc<SigningKey>,
        margin: Duration,
    ) -> Result<Ledger, LicenseError> {
        let err = map_sql(path);
        let reader = crate::db::connect(path).map_err(&err)?;
        let mut conn = crate::db::connect(path).map_err(&err)?;
        let (tx, rx) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("updhub-ledger".into())
            .spawn(move || writer_loop(&mut conn, rx))
            .map_err(|e| LicenseError::Db {
                path: path.display().to_string(),
                why: e.to_string(),
            })?;
        Ok(Ledger {
            server,
            path: path.to_owned(),
            writer: Mutex::new(Some(tx)),
            thread: Some(thread),
            reader: Mutex::new(reader),
            signing,
            margin: chrono::Duration::from_std(margin).unwrap_or(chrono::Duration::minutes(5)),
        })
    }

    /// The clock-skew margin.
    pub fn margin(&self) -> chrono::Duration {
        self.margin
    }

    /// Queue `f` for the writer as one transaction at time `now`: the job's code gets it,
    /// and the clock row gives it to the triggers, so both judge "in force" and "ended" at
    /// the same instant.
    fn submit<T: Send + 'static>(
        &self,
        now: DateTime<Utc>,
        f: impl FnOnce(&Connection, DateTime<Utc>) -> Result<T, LicenseError> + Send + 'static,
    ) -> tokio::sync::oneshot::Receiver<Result<T, LicenseError>> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let path = self.path.display().to_string();
        let job: Job = Box::new(move |conn| {
            let res = set_clock(conn, now)
                .map_err(map_sql(Path::new(&path)))
                .and_then(|()| f(conn, now));
            let ok = res.is_ok();
            let reply: Reply = Box::new(move |commit| {
                let out = match commit {
                    Ok(()) => res,
                    Err(why) => Err(LicenseError::Db { path, why }),
                };
                let _ = tx.send(out);
            });
            (ok, reply)
        });
        if let Some(w) = self
            .writer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            let _ = w.send(job);
        }
        rx
    }

    /// Run `f` as one transaction on the writer thread; resolves once it is durable. `f` gets
    /// the transaction's one time, which SQL reads as `(SELECT now FROM clock)`.
    ///
    /// # Errors
    /// Whatever `f` returns, or a failed commit.
    pub async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection, DateTime<Utc>) -> Result<T, LicenseError> + Send + 'static,
    ) -> Result<T, LicenseError> {
        self.submit(Utc::now(), f)
            .await
            .map_err(|_| self.writer_gone())?
    }

    fn writer_gone(&self) -> LicenseError {
        LicenseError::Db {
            path: self.path.display().to_string(),
            why: "the ledger writer stopped".into(),
        }
    }

    pub(super) fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, LicenseError> {
        let c = self.reader.lock().unwrap_or_else(|p| p.into_inner());
        f(&c).map_err(map_sql(&self.path))
    }

    /// `license add`: store a checked key. The same key id twice is refused.
    ///
    /// # Errors
    /// [`LicenseError::Refused`] for a key already added, or database errors.
    pub async fn add_key(&self, key: LicenseKey) -> Result<(), LicenseError> {
        let server = self.server.to_string();
        let path = self.path.clone();
        self.write(move |c, now| {
            let err = map_sql(&path);
            let exists: bool = c
                .query_row(
                    "SELECT 1 FROM license_sources WHERE server_id=?1 AND source_id=?2",
                    params![server, key.key_id],
                    |_| Ok(true),
                )
                .optional()
                .map_err(&err)?
                .is_some();
            if exists {
                return Err(LicenseError::Refused(format!(
                    "license key {} is already added on this server; nothing changed",
                    key.key_id
                )));
            }
            let doc = serde_json::to_string(&key).expect("keys serialize");
            c.execute(
                "INSERT INTO license_sources(server_id, source_id, kind, holder, count, not_before, not_after, usable_until, document, added)
                 VALUES (?1,?2,'key',?3,?4,?5,?6,?6,?7,?8)",
                params![
                    server,
                    key.key_id,
                    key.holder,
                    key.stations,
                    key.valid_from.timestamp(),
                    key.valid_until.timestamp(),
                    doc,
                    now.timestamp()
                ],
            )
            .map_err(&err)?;
            log(
                c,
                &server,
                "key_added",
                &key.key_id,
                format!("{} stations for {} until {}", key.stations, key.holder, key.valid_until),
            )
            .map_err(&err)
        })
        .await
    }

    /// A station registers (or re-registers: idempotent) and takes one station license.
    /// Returns the source of its license and whether it is new.
    ///
    /// # Errors
    /// [`LicenseError::Refused`] when no license is free or the credentials do not match.
    pub async fn register_station(
        &self,
        station: String,
        secret: String,
    ) -> Result<(String, bool), LicenseError> {
        let server = self.server.to_string();
        let path = self.path.clone();
        self.write(move |c, now| {
            let err = map_sql(&path);
            let hash = secret_hash(&station, &secret);
            let now = now.timestamp();
            let existing: Option<(String, String)> = c
                .prepare_cached("SELECT secret_hash, source_id FROM stations WHERE server_id=?1 AND station_id=?2")
                .and_then(|mut st| {
                    st.query_row(params![server, station], |r| Ok((r.get(0)?, r.get(1)?)))
                        .optional()
                })
                .map_err(&err)?;
            if let Some((h, source)) = existing {
                if h != hash {
                    return Err(LicenseError::Refused(format!(
                        "station {station} is registered with other credentials; use its secret, or ask the admin to remove it"
                    )));
                }
                c.prepare_cached("UPDATE stations SET last_seen=?3 WHERE server_id=?1 AND station_id=?2")
                    .and_then(|mut st| st.execute(params![server, station, now]))
                    .map_err(&err)?;
                return Ok((source, false));
            }
            let Some(source) = pick_source(c, &server, 1, None, None).map_err(&err)? else {
                return Err(LicenseError::Refused(format!(
                    "no free station license on server {server}: every license is in use or donated; add a key, or ask the donor for a larger grant"
                )));
            };
            c.prepare_cached(
                "INSERT INTO stations(server_id, station_id, secret_hash, source_id, registered, last_seen)
                 VALUES (?1,?2,?3,?4,?5,?5)",
            )
            .and_then(|mut st| st.execute(params![server, station, hash, source, now]))
            .map_err(&err)?;
            Ok((source, true))
        })
        .await
    }

    /// A registered station reports in.
    ///
    /// # Errors
    /// [`LicenseError::NotFound`] for an unknown station or wrong secret.
    pub async fn heartbeat(&self, station: String, secret: String) -> Result<String, LicenseError> {
        let server = self.server.to_string();
        let path = self.path.clone();
        self.write(move |c, now| {
            let hash = secret_hash(&station, &secret);
            let source: Option<String> = c
                .prepare_cached(
                    "UPDATE stations SET last_seen=?4 WHERE server_id=?1 AND station_id=?2 AND secret_hash=?3 RETURNING source_id",
                )
                .and_then(|mut st| {
                    st.query_row(params![server, station, hash, now.timestamp()], |r| r.get(0))
                        .optional()
                })
                .map_err(map_sql(&path))?;
            source.ok_or_else(|| {
                LicenseError::NotFound(format!(
                    "station {station} is not registered here with these credentials (or lost its license); register again"
                ))
            })
        })
        .await
    }

    /// End what has ended: outgoing grants past end + margin come back; received grants
    /// past end - margin and expired keys stop counting; stations not seen within
    /// `station_ttl` are purged. Run at start, before any request, and periodically.
    ///
    /// # Errors
    /// Database errors.
    pub async fn sweep(&self, station_ttl: Duration) -> Result<Sweep, LicenseError> {
        let server = self.server.to_string();
        let path = self.path.clone();
        let margin = self.margin;
        let signing = self.signing.clone();
        let ttl = chrono::Duration::from_std(station_ttl).unwrap_or(chrono::Duration::days(30));
        self.write(move |c, now| {
            let err = map_sql(&path);
            let mut out = Sweep::default();
            let ended: Vec<(String, String, i64)> = {
                let mut st = c
                    .prepare_cached(
                        "SELECT grant_id, receiver, count FROM grants
                          WHERE server_id=?1 AND status IN ('active','revoking') AND not_after <= ?2",
                    )
                    .map_err(&err)?;
                let rows = st
                    .query_map(params![server, (now - margin).timestamp()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .map_err(&err)?
                    .collect::<Result<_, _>>()
                    .map_err(&err)?;
                rows
            };
            for (g, receiver, count) in ended {
                c.execute(
                    "UPDATE grants SET status='expired', updated=?3 WHERE server_id=?1 AND grant_id=?2",
                    params![server, g, now.timestamp()],
                )
                .map_err(&err)?;
                log(c, &server, "grant_expired", &g, format!("{count} licenses back from {receiver}")).map_err(&err)?;
                out.reclaimed += 1;
            }
            let sources: Vec<(String, String)> = {
                let mut st = c
                    .prepare_cached(
                        "SELECT source_id, kind FROM license_sources WHERE server_id=?1 AND status='active' AND usable_until <= ?2",
                    )
                    .map_err(&err)?;
                let rows = st
                    .query_map(params![server, now.timestamp()], |r| Ok((r.get(0)?, r.get(1)?)))
                    .map_err(&err)?
                    .collect::<Result<_, _>>()
                    .map_err(&err)?;
                rows
            };
            for (s, kind) in sources {
                out.stations_dropped += super::grants::end_source(c, &server, &s, "expired", &signing).map_err(&err)?;
                log(c, &server, &format!("{kind}_expired"), &s, "stopped counting it".into()).map_err(&err)?;
                out.ended_sources += 1;
            }
            let stale: Vec<String> = {
                let mut st = c
                    .prepare_cached("SELECT station_id FROM stations WHERE server_id=?1 AND last_seen < ?2")
                    .map_err(&err)?;
                let rows = st
                    .query_map(params![server, (now - ttl).timestamp()], |r| r.get(0))
                    .map_err(&err)?
                    .collect::<Result<_, _>>()
                    .map_err(&err)?;
                rows
            };
            for s in stale {
                c.execute("DELETE FROM stations WHERE server_id=?1 AND station_id=?2", params![server, s])
                    .map_err(&err)?;
                log(c, &server, "station_purged", &s, format!("not seen for {}", humantime::format_duration(station_ttl)))
                    .map_err(&err)?;
                out.stations_purged += 1;
            }
            Ok(out)
        })
        .await
    }

    /// `license status`: every source with its use.
    ///
    /// # Errors
    /// Database errors.
    pub fn status(&self, warn_before: Duration) -> Result<Vec<SourceStatus>, LicenseError> {
        let warn = chrono::Duration::from_std(warn_before).unwrap_or(chrono::Duration::days(3));
        let now = Utc::now();
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT source_id, kind, holder, count, used, donated, not_after, usable_until, status, not_before
                   FROM license_sources WHERE server_id=?1 ORDER BY kind DESC, source_id",
            )?;
            let rows = st
                .query_map([self.server.as_str()], |r| {
                    let (count, used, donated): (u64, u64, u64) = (r.get(3)?, r.get(4)?, r.get(5)?);
                    let status: String = r.get(8)?;
                    let usable_until = ts(r.get(7)?);
                    // In force: active, started, not yet past the point this server stops counting.
                    let active = status == "active" && usable_until > now && ts(r.get(9)?) <= now;
                    Ok(SourceStatus {
                        source_id: r.get(0)?,
                        kind: r.get(1)?,
                        holder: r.get(2)?,
                        total: count,
                        used,
                        donated,
                        free: if active { count.saturating_sub(used + donated) } else { 0 },
                        not_after: ts(r.get(6)?),
                        usable_until,
                        expiring_soon: active && usable_until - now < warn,
                        status,
                    })
                })?
                .collect::<Result<_, _>>()?;
            Ok(rows)
        })
    }

    /// `license grants`: outgoing and incoming.
    ///
    /// # Errors
    /// Database errors.
    pub fn grants(&self, warn_before: Duration) -> Result<GrantsView, LicenseError> {
        let outgoing = self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT grant_id, source_id, receiver, count, not_after, status FROM grants WHERE server_id=?1 ORDER BY created, grant_id",
            )?;
            let rows = st
                .query_map([self.server.as_str()], |r| {
                    Ok(OutgoingGrant {
                        grant_id: r.get(0)?,
                        source_id: r.get(1)?,
                        receiver: r.get(2)?,
                        count: r.get(3)?,
                        not_after: ts(r.get(4)?),
                        status: r.get(5)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
            Ok(rows)
        })?;
        let incoming = self
            .status(warn_before)?
            .into_iter()
            .filter(|s| s.kind == "grant")
            .collect();
        Ok(GrantsView { outgoing, incoming })
    }

    /// `stations`.
    ///
    /// # Errors
    /// Database errors.
    pub fn stations(&self) -> Result<Vec<StationRow>, LicenseError> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT station_id, source_id, registered, last_seen FROM stations WHERE server_id=?1 ORDER BY station_id",
            )?;
            let rows = st
                .query_map([self.server.as_str()], |r| {
                    Ok(StationRow {
                        station_id: r.get(0)?,
                        source_id: r.get(1)?,
                        registered: ts(r.get(2)?),
                        last_seen: ts(r.get(3)?),
                    })
                })?
                .collect();
            rows
        })
    }

    /// `license log`: the audit trail, oldest first.
    ///
    /// # Errors
    /// Database errors.
    pub fn log(&self) -> Result<Vec<LogRow>, LicenseError> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT seq, at, event, subject, details FROM license_log WHERE server_id=?1 ORDER BY seq",
            )?;
            let rows = st
                .query_map([self.server.as_str()], |r| {
                    Ok(LogRow {
                        seq: r.get(0)?,
                        at: ts(r.get(1)?),
                        event: r.get(2)?,
                        subject: r.get(3)?,
                        details: r.get(4)?,
                    })
                })?
                .collect();
            rows
        })
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        // Closing the channel ends the writer loop after the jobs already sent.
        self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The writer thread: group commit. Each job runs in its own savepoint inside one
/// transaction; the batch commits once; then every caller hears its result.
fn writer_loop(conn: &mut Connection, rx: mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        let mut replies: Vec<Reply> = Vec::with_capacity(batch.len());
        let mut jobs = batch.into_iter();
        let result = (|| -> rusqlite::Result<()> {
            let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            for job in jobs.by_ref() {
                let sp = tx.savepoint()?;
                let (ok, reply) = job(&sp);
                replies.push(reply);
                if ok {
                    sp.commit()?;
                } else {
                    drop(sp); // rolls back this request alone
                }
            }
            tx.commit()
        })();
        let outcome = result.map_err(|e| e.to_string());
        for r in replies {
            r(outcome.clone());
        }
        // Jobs never run (the transaction failed to start) are dropped: their callers see
        // the writer's error as a closed channel.
        drop(jobs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ledger on a fresh database holding one key valid from `from` to `until`.
    async fn ledger_with_key(
        dir: &Path,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> (crate::db::Db, Ledger) {
        let server = ServerId::new("n1").unwrap();
        let db = crate::db::Db::create(&dir.join("t.db"), server.clone()).unwrap();
        let signing = Arc::new(SigningKey::generate(&mut rand::rngs::OsRng));
        let ledger =
            Ledger::open(db.path(), server, signing.clone(), Duration::from_secs(60)).unwrap();
        let key = LicenseKey::issue(&signing, "K1", "ACME", 5, from, until);
        ledger.add_key(key).await.unwrap();
        (db, ledger)
    }

    /// Insert a station at the transaction time `at`, as the writer does.
    async fn station_at(ledger: &Ledger, at: DateTime<Utc>, id: &str) -> Result<(), LicenseError> {
        let path = ledger.path.clone();
        let id = id.to_owned();
        ledger
            .submit(at, move |c, now| {
                c.execute(
                    "INSERT INTO stations(server_id, station_id, secret_hash, source_id, registered, last_seen)
                     VALUES ('n1', ?1, 'h', 'K1', ?2, ?2)",
                    params![id, now.timestamp()],
                )
                .map(drop)
                .map_err(map_sql(&path))
            })
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn triggers_judge_in_force_at_the_transactions_time_not_the_databases() {
        let dir = tempfile::tempdir().unwrap();
        let real = Utc::now();
        let hour = chrono::Duration::hours(1);
        // A key that starts in an hour: the database's own clock says "not yet".
        let (_db, ledger) = ledger_with_key(dir.path(), real + hour, real + hour * 48).await;
        station_at(&ledger, real + hour * 2, "s1").await.unwrap();
        // A transaction at the real time is refused by the same trigger.
        let err = station_at(&ledger, real, "s2").await.unwrap_err();
        assert!(err.to_string().contains("not in force"), "{err}");
        // The trigger's rule name makes it a refusal, not a database failure.
        assert!(matches!(err, LicenseError::Refused(_)), "{err:?}");
        // And past the key's end, though the database's clock says it is in force.
        let err = station_at(&ledger, real + hour * 49, "s3")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("not in force"), "{err}");
    }
}

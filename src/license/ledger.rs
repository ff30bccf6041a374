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

use super::{GrantStatus, GrantToken, LicenseError, LicenseKey, GRANT_FORMAT};
use crate::id::ServerId;

/// Most requests committed together.
const MAX_BATCH: usize = 1024;

type Reply = Box<dyn FnOnce(Result<(), String>) + Send>;
type Job = Box<dyn FnOnce(&Connection) -> (bool, Reply) + Send>;

fn ts(t: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(t, 0).single().unwrap_or_default()
}

/// Open a connection with the settings every updhub connection uses.
fn connect(path: &Path) -> rusqlite::Result<Connection> {
    let c = Connection::open(path)?;
    c.busy_timeout(Duration::from_secs(30))?;
    c.pragma_update(None, "journal_mode", "WAL")?;
    c.pragma_update(None, "synchronous", "FULL")?;
    c.pragma_update(None, "foreign_keys", "ON")?;
    Ok(c)
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
    server: ServerId,
    /// The database file.
    path: PathBuf,
    /// Sends jobs to the writer thread.
    writer: Mutex<mpsc::Sender<Job>>,
    /// Reads use their own connection (WAL lets them run beside the writer).
    reader: Mutex<Connection>,
    /// Signs grant tokens.
    signing: Arc<SigningKey>,
    /// Clock-skew margin between servers.
    margin: chrono::Duration,
}

fn map_sql(path: &Path) -> impl Fn(rusqlite::Error) -> LicenseError + '_ {
    move |e| {
        let msg = e.to_string();
        if msg.contains("conservation") {
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

fn log(
    c: &Connection,
    server: &str,
    event: &str,
    subject: &str,
    details: String,
) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO license_log(server_id, at, event, subject, details) VALUES (?1,?2,?3,?4,?5)",
        params![server, Utc::now().timestamp(), event, subject, details],
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

/// Move a source's stations to other sources with room; drop those that find none.
/// Returns how many were dropped.
fn rehome_stations(c: &Connection, server: &str, source: &str) -> rusqlite::Result<u64> {
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
    Ok(dropped)
}

/// The source in force with room for `n` more that lasts at least until `until`, the one
/// lasting longest first (fewest future moves); never `except`.
fn pick_source(
    c: &Connection,
    server: &str,
    n: u32,
    until: Option<i64>,
    except: Option<&str>,
) -> rusqlite::Result<Option<String>> {
    let now = Utc::now().timestamp();
    c.prepare_cached(
        "SELECT source_id FROM license_sources
          WHERE server_id=?1 AND status='active' AND not_before <= ?2 AND usable_until > ?2
            AND usable_until >= ?3 AND count - used - donated >= ?4 AND source_id <> ?5
          ORDER BY usable_until DESC, source_id LIMIT 1",
    )?
    .query_row(
        params![server, now, until.unwrap_or(now), n, except.unwrap_or("")],
        |r| r.get(0),
    )
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
        let reader = connect(path).map_err(&err)?;
        let mut conn = connect(path).map_err(&err)?;
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("updhub-ledger".into())
            .spawn(move || writer_loop(&mut conn, rx))
            .map_err(|e| LicenseError::Db {
                path: path.display().to_string(),
                why: e.to_string(),
            })?;
        Ok(Ledger {
            server,
            path: path.to_owned(),
            writer: Mutex::new(tx),
            reader: Mutex::new(reader),
            signing,
            margin: chrono::Duration::from_std(margin).unwrap_or(chrono::Duration::minutes(5)),
        })
    }

    /// The clock-skew margin.
    pub fn margin(&self) -> chrono::Duration {
        self.margin
    }

    fn submit<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, LicenseError> + Send + 'static,
    ) -> tokio::sync::oneshot::Receiver<Result<T, LicenseError>> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let path = self.path.display().to_string();
        let job: Job = Box::new(move |conn| {
            let res = f(conn);
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
        let _ = self
            .writer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(job);
        rx
    }

    /// Run `f` as one transaction on the writer thread; resolves once it is durable.
    ///
    /// # Errors
    /// Whatever `f` returns, or a failed commit.
    pub async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, LicenseError> + Send + 'static,
    ) -> Result<T, LicenseError> {
        self.submit(f).await.map_err(|_| self.writer_gone())?
    }

    fn writer_gone(&self) -> LicenseError {
        LicenseError::Db {
            path: self.path.display().to_string(),
            why: "the ledger writer stopped".into(),
        }
    }

    fn read<T>(
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
        self.write(move |c| {
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
                    Utc::now().timestamp()
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
        self.write(move |c| {
            let err = map_sql(&path);
            let hash = secret_hash(&station, &secret);
            let now = Utc::now().timestamp();
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
        self.write(move |c| {
            let hash = secret_hash(&station, &secret);
            let source: Option<String> = c
                .prepare_cached(
                    "UPDATE stations SET last_seen=?4 WHERE server_id=?1 AND station_id=?2 AND secret_hash=?3 RETURNING source_id",
                )
                .and_then(|mut st| {
                    st.query_row(params![server, station, hash, Utc::now().timestamp()], |r| r.get(0))
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

    /// `license donate`: carve a grant for another server; idempotent by request id.
    /// `known` says whether a server id is known to this server.
    ///
    /// # Errors
    /// [`LicenseError::Refused`] for an unknown receiver, a bad period, too few free licenses.
    pub async fn donate(
        &self,
        d: Donation,
        known: impl Fn(&str) -> bool,
    ) -> Result<GrantToken, LicenseError> {
        let bad = |why: String| Err(LicenseError::Refused(why));
        let now = Utc::now();
        if d.to == self.server.as_str() {
            return bad("a server cannot donate to itself".into());
        }
        if d.count == 0 {
            return bad("--count must be at least 1".into());
        }
        if d.until <= now {
            return bad(format!(
                "the period ends in the past ({}); give a future date or --for DURATION",
                d.until
            ));
        }
        let known_to = known(&d.to);
        let server = self.server.to_string();
        let path = self.path.clone();
        let signing = self.signing.clone();
        self.write(move |c| {
            let err = map_sql(&path);
            // A retried request finds its grant and allocates nothing new.
            let done: Option<String> = c
                .prepare_cached("SELECT token FROM grants WHERE server_id=?1 AND request_id=?2")
                .and_then(|mut st| st.query_row(params![server, d.request_id], |r| r.get(0)).optional())
                .map_err(&err)?;
            if let Some(token) = done {
                return serde_json::from_str(&token).map_err(|e| LicenseError::Db {
                    path: path.display().to_string(),
                    why: format!("grant token damaged: {e}"),
                });
            }
            if !known_to {
                return Err(LicenseError::Refused(format!(
                    "server {} is unknown here: it has never synced from this server; start it with upstream.parent pointing here, then donate",
                    d.to
                )));
            }
            let until = d.until.timestamp();
            let source = match &d.source {
                Some(s) => {
                    let row: Option<(i64, i64, i64, i64, String)> = c
                        .query_row(
                            "SELECT count - used - donated, usable_until, not_before, count, status FROM license_sources WHERE server_id=?1 AND source_id=?2",
                            params![server, s],
                            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
                        )
                        .optional()
                        .map_err(&err)?;
                    let Some((free, usable, _, _, status)) = row else {
                        return Err(LicenseError::NotFound(format!(
                            "no license key or received grant '{s}' here; see `updhub license status`"
                        )));
                    };
                    if status != "active" {
                        return Err(LicenseError::Refused(format!("{s} is {status}; it cannot be donated from")));
                    }
                    if until > usable {
                        return Err(LicenseError::Refused(format!(
                            "the grant would end {} but {s} can only be counted on until {}; choose an earlier end",
                            d.until,
                            ts(usable)
                        )));
                    }
                    if i64::from(d.count) > free {
                        return Err(LicenseError::Refused(format!(
                            "{s} has {free} free licenses, {} were asked for; nothing was donated",
                            d.count
                        )));
                    }
                    s.clone()
                }
                None => match pick_source(c, &server, d.count, Some(until), None).map_err(&err)? {
                    Some(s) => s,
                    None => {
                        return Err(LicenseError::Refused(format!(
                            "no key or received grant has {} free licenses lasting until {}; see `updhub license status`",
                            d.count, d.until
                        )))
                    }
                },
            };
            let parent_grant: Option<String> = c
                .query_row(
                    "SELECT source_id FROM license_sources WHERE server_id=?1 AND source_id=?2 AND kind='grant'",
                    params![server, source],
                    |r| r.get(0),
                )
                .optional()
                .map_err(&err)?;
            let mut token = GrantToken {
                format: GRANT_FORMAT.into(),
                grant_id: GrantToken::new_id(),
                donor: server.clone(),
                receiver: d.to.clone(),
                count: d.count,
                not_after: d.until,
                source: source.clone(),
                parent_grant,
                revision: 1,
                status: GrantStatus::Active,
                key: String::new(),
                signature: String::new(),
            };
            token.sign(&signing);
            let now = Utc::now().timestamp();
            c.execute(
                "INSERT INTO grants(server_id, grant_id, source_id, receiver, count, not_after, status, revision, request_id, token, created, updated)
                 VALUES (?1,?2,?3,?4,?5,?6,'active',1,?7,?8,?9,?9)",
                params![
                    server,
                    token.grant_id,
                    source,
                    d.to,
                    d.count,
                    token.not_after.timestamp(),
                    d.request_id,
                    serde_json::to_string(&token).expect("tokens serialize"),
                    now
                ],
            )
            .map_err(&err)?;
            log(
                c,
                &server,
                "grant_created",
                &token.grant_id,
                format!("{} licenses from {source} to {} until {}", d.count, d.to, token.not_after),
            )
            .map_err(&err)?;
            Ok(token)
        })
        .await
    }

    fn load_grant(
        c: &Connection,
        server: &str,
        id: &str,
        path: &Path,
    ) -> Result<(GrantToken, String), LicenseError> {
        let row: Option<(String, String)> = c
            .query_row(
                "SELECT token, status FROM grants WHERE server_id=?1 AND grant_id=?2",
                params![server, id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(map_sql(path))?;
        let Some((token, status)) = row else {
            return Err(LicenseError::NotFound(format!(
                "no grant {id} was donated by this server; see `updhub license grants`"
            )));
        };
        let t: GrantToken = serde_json::from_str(&token).map_err(|e| LicenseError::Db {
            path: path.display().to_string(),
            why: format!("grant token damaged: {e}"),
        })?;
        Ok((t, status))
    }

    fn store_grant(
        c: &Connection,
        server: &str,
        t: &GrantToken,
        status: &str,
        path: &Path,
    ) -> Result<(), LicenseError> {
        c.execute(
            "UPDATE grants SET not_after=?3, status=?4, revision=?5, token=?6, updated=?7 WHERE server_id=?1 AND grant_id=?2",
            params![
                server,
                t.grant_id,
                t.not_after.timestamp(),
                status,
                t.revision,
                serde_json::to_string(t).expect("tokens serialize"),
                Utc::now().timestamp()
            ],
        )
        .map_err(map_sql(path))?;
        Ok(())
    }

    /// `license renew`: extend an active grant (never past its source).
    ///
    /// # Errors
    /// Unknown grant, an ended one, a shorter or past end, or one past the source.
    pub async fn renew(
        &self,
        grant_id: String,
        until: DateTime<Utc>,
    ) -> Result<GrantToken, LicenseError> {
        let server = self.server.to_string();
        let path = self.path.clone();
        let signing = self.signing.clone();
        self.write(move |c| {
            let (mut t, status) = Self::load_grant(c, &server, &grant_id, &path)?;
            if status != "active" {
                return Err(LicenseError::Refused(format!("grant {grant_id} is {status}; only an active grant can be renewed")));
            }
            if until <= t.not_after {
                return Err(LicenseError::Refused(format!(
                    "grant {grant_id} already runs until {}; renew only extends it (to take licenses back, revoke it)",
                    t.not_after
                )));
            }
            let usable: i64 = c
                .query_row(
                    "SELECT usable_until FROM license_sources WHERE server_id=?1 AND source_id=?2",
                    params![server, t.source],
                    |r| r.get(0),
                )
                .map_err(map_sql(&path))?;
            if until.timestamp() > usable {
                return Err(LicenseError::Refused(format!(
                    "grant {grant_id} cannot run past {}, when its source {} ends here",
                    ts(usable),
                    t.source
                )));
            }
            let old = t.not_after;
            t.not_after = until;
            t.revision += 1;
            t.sign(&signing);
            Self::store_grant(c, &server, &t, "active", &path)?;
            log(c, &server, "grant_renewed", &grant_id, format!("until {} (was {old})", t.not_after)).map_err(map_sql(&path))?;
            Ok(t)
        })
        .await
    }

    /// `license revoke`: the donor takes a grant back. It keeps counting here until the
    /// receiver acknowledges (or the grant ends), so it is never used on two servers at once.
    ///
    /// # Errors
    /// Unknown grant, or one already ended.
    pub async fn revoke(&self, grant_id: String) -> Result<GrantToken, LicenseError> {
        let server = self.server.to_string();
        let path = self.path.clone();
        let signing = self.signing.clone();
        self.write(move |c| {
            let (mut t, status) = Self::load_grant(c, &server, &grant_id, &path)?;
            if status != "active" {
                return Err(LicenseError::Refused(format!(
                    "grant {grant_id} is already {status}"
                )));
            }
            t.status = GrantStatus::Revoked;
            t.revision += 1;
            t.sign(&signing);
            Self::store_grant(c, &server, &t, "revoking", &path)?;
            log(
                c,
                &server,
                "grant_revoke_requested",
                &grant_id,
                format!("{} licenses from {}", t.count, t.receiver),
            )
            .map_err(map_sql(&path))?;
            Ok(t)
        })
        .await
    }

    /// The receiver acknowledged a revocation: the licenses come back here.
    ///
    /// # Errors
    /// Unknown grant, or one of another receiver.
    pub async fn acknowledge(&self, caller: String, grant_id: String) -> Result<(), LicenseError> {
        let server = self.server.to_string();
        let path = self.path.clone();
        self.write(move |c| {
            let (t, status) = Self::load_grant(c, &server, &grant_id, &path)?;
            if t.receiver != caller {
                return Err(LicenseError::NotFound(format!("no grant {grant_id} for server {caller}")));
            }
            if status == "revoking" {
                c.execute(
                    "UPDATE grants SET status='revoked', updated=?3 WHERE server_id=?1 AND grant_id=?2",
                    params![server, grant_id, Utc::now().timestamp()],
                )
                .map_err(map_sql(&path))?;
                log(c, &server, "grant_revoked", &grant_id, format!("{caller} stopped counting {} licenses", t.count))
                    .map_err(map_sql(&path))?;
            }
            Ok(())
        })
        .await
    }

    /// The receiver returned a grant early (donor side).
    ///
    /// # Errors
    /// Unknown grant, or one of another receiver.
    pub async fn accept_return(
        &self,
        caller: String,
        grant_id: String,
    ) -> Result<(), LicenseError> {
        let server = self.server.to_string();
        let path = self.path.clone();
        let signing = self.signing.clone();
        self.write(move |c| {
            let (mut t, status) = Self::load_grant(c, &server, &grant_id, &path)?;
            if t.receiver != caller {
                return Err(LicenseError::NotFound(format!(
                    "no grant {grant_id} for server {caller}"
                )));
            }
            if status == "active" || status == "revoking" {
                t.status = GrantStatus::Returned;
                t.revision += 1;
                t.sign(&signing);
                Self::store_grant(c, &server, &t, "returned", &path)?;
                log(
                    c,
                    &server,
                    "grant_returned",
                    &grant_id,
                    format!("{caller} gave back {} licenses", t.count),
                )
                .map_err(map_sql(&path))?;
            }
            Ok(())
        })
        .await
    }

    /// Every grant token donated to `receiver` (what it fetches on sync and heartbeat).
    ///
    /// # Errors
    /// Database errors.
    pub fn tokens_for(&self, receiver: &str) -> Result<Vec<GrantToken>, LicenseError> {
        let tokens: Vec<String> = self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT token FROM grants WHERE server_id=?1 AND receiver=?2 ORDER BY created",
            )?;
            let rows = st
                .query_map(params![self.server.as_str(), receiver], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            Ok(rows)
        })?;
        tokens
            .iter()
            .map(|t| {
                serde_json::from_str(t).map_err(|e| LicenseError::Db {
                    path: self.path.display().to_string(),
                    why: format!("grant token damaged: {e}"),
                })
            })
            .collect()
    }

    /// Receiver side: take verified tokens from the donor. New grants start counting, renewals
    /// extend, revocations stop counting (stations move to other sources or lose their
    /// license, sub-grants are revoked in turn). Returns the revoked grant ids to acknowledge.
    ///
    /// # Errors
    /// Database errors.
    pub async fn apply_tokens(&self, tokens: Vec<GrantToken>) -> Result<Vec<String>, LicenseError> {
        let server = self.server.to_string();
        let path = self.path.clone();
        let margin = self.margin;
        let signing = self.signing.clone();
        self.write(move |c| {
            let err = map_sql(&path);
            let mut acks = Vec::new();
            for t in tokens {
                let have: Option<(i64, String)> = c
                    .query_row(
                        "SELECT revision, status FROM license_sources WHERE server_id=?1 AND source_id=?2",
                        params![server, t.grant_id],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()
                    .map_err(&err)?;
                let doc = serde_json::to_string(&t).expect("tokens serialize");
                let usable = (t.not_after - margin).timestamp();
                match (have, t.status) {
                    (None, GrantStatus::Active) => {
                        c.execute(
                            "INSERT INTO license_sources(server_id, source_id, kind, holder, count, not_before, not_after, usable_until, revision, document, added)
                             VALUES (?1,?2,'grant',?3,?4,?5,?6,?7,?8,?9,?5)",
                            params![server, t.grant_id, t.donor, t.count, Utc::now().timestamp(), t.not_after.timestamp(), usable, t.revision, doc],
                        )
                        .map_err(&err)?;
                        log(c, &server, "grant_received", &t.grant_id, format!("{} licenses from {} until {}", t.count, t.donor, t.not_after))
                            .map_err(&err)?;
                    }
                    (None, _) => {}
                    (Some((rev, _)), _) if rev >= i64::from(t.revision) => {
                        // Already applied; a revoked one may still need its acknowledgement.
                        if t.status == GrantStatus::Revoked {
                            acks.push(t.grant_id.clone());
                        }
                    }
                    (Some((_, status)), GrantStatus::Active) => {
                        if status == "active" {
                            c.execute(
                                "UPDATE license_sources SET not_after=?3, usable_until=?4, revision=?5, document=?6 WHERE server_id=?1 AND source_id=?2",
                                params![server, t.grant_id, t.not_after.timestamp(), usable, t.revision, doc],
                            )
                            .map_err(&err)?;
                            log(c, &server, "grant_renewal_received", &t.grant_id, format!("until {}", t.not_after)).map_err(&err)?;
                        }
                    }
                    (Some(_), status) => {
                        let new = match status {
                            GrantStatus::Revoked => "revoked",
                            GrantStatus::Returned => "returned",
                            _ => "expired",
                        };
                        end_source(c, &server, &t.grant_id, new, &signing).map_err(&err)?;
                        c.execute(
                            "UPDATE license_sources SET revision=?3, document=?4 WHERE server_id=?1 AND source_id=?2",
                            params![server, t.grant_id, t.revision, doc],
                        )
                        .map_err(&err)?;
                        log(c, &server, &format!("grant_{new}_by_donor"), &t.grant_id, format!("{} licenses from {}", t.count, t.donor))
                            .map_err(&err)?;
                        if status == GrantStatus::Revoked {
                            acks.push(t.grant_id.clone());
                        }
                    }
                }
            }
            Ok(acks)
        })
        .await
    }

    /// Receiver side of `license return`: stop counting a received grant now (its stations
    /// move to other sources; refused if they cannot). Returns the donor's id.
    ///
    /// # Errors
    /// Unknown grant, sub-grants still carved from it, or stations with nowhere to go.
    pub async fn start_return(&self, grant_id: String) -> Result<String, LicenseError> {
        let server = self.server.to_string();
        let path = self.path.clone();
        self.write(move |c| {
            let err = map_sql(&path);
            let row: Option<(String, String, i64)> = c
                .query_row(
                    "SELECT holder, status, donated FROM license_sources WHERE server_id=?1 AND source_id=?2 AND kind='grant'",
                    params![server, grant_id],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()
                .map_err(&err)?;
            let Some((donor, status, donated)) = row else {
                return Err(LicenseError::NotFound(format!(
                    "no grant {grant_id} was received by this server; see `updhub license grants`"
                )));
            };
            if status == "returning" {
                return Ok(donor);
            }
            if status != "active" {
                return Err(LicenseError::Refused(format!("grant {grant_id} is already {status}")));
            }
            if donated > 0 {
                return Err(LicenseError::Refused(format!(
                    "{donated} licenses of grant {grant_id} are donated on; revoke those grants first"
                )));
            }
            let moved_ok = rehome_all_or_nothing(c, &server, &grant_id).map_err(&err)?;
            if !moved_ok {
                return Err(LicenseError::Refused(format!(
                    "stations use grant {grant_id} and no other key or grant has room for them; nothing was returned"
                )));
            }
            c.execute(
                "UPDATE license_sources SET status='returning' WHERE server_id=?1 AND source_id=?2",
                params![server, grant_id],
            )
            .map_err(&err)?;
            log(c, &server, "grant_return_started", &grant_id, format!("giving back to {donor}")).map_err(&err)?;
            Ok(donor)
        })
        .await
    }

    /// The donor confirmed a return.
    ///
    /// # Errors
    /// Database errors.
    pub async fn finish_return(&self, grant_id: String) -> Result<(), LicenseError> {
        let server = self.server.to_string();
        let path = self.path.clone();
        self.write(move |c| {
            let n = c
                .execute(
                    "UPDATE license_sources SET status='returned' WHERE server_id=?1 AND source_id=?2 AND status='returning'",
                    params![server, grant_id],
                )
                .map_err(map_sql(&path))?;
            if n > 0 {
                log(c, &server, "grant_returned", &grant_id, "the donor took it back".into()).map_err(map_sql(&path))?;
            }
            Ok(())
        })
        .await
    }

    /// Received grants being returned whose donor has not confirmed yet.
    ///
    /// # Errors
    /// Database errors.
    pub fn pending_returns(&self) -> Result<Vec<String>, LicenseError> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT source_id FROM license_sources WHERE server_id=?1 AND status='returning' ORDER BY source_id",
            )?;
            let rows = st.query_map([self.server.as_str()], |r| r.get(0))?.collect();
            rows
        })
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
        self.write(move |c| {
            let err = map_sql(&path);
            let now = Utc::now();
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
                out.stations_dropped += end_source(c, &server, &s, "expired", &signing).map_err(&err)?;
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
                "SELECT source_id, kind, holder, count, used, donated, not_after, usable_until, status
                   FROM license_sources WHERE server_id=?1 ORDER BY kind DESC, source_id",
            )?;
            let rows = st
                .query_map([self.server.as_str()], |r| {
                    let (count, used, donated): (u64, u64, u64) = (r.get(3)?, r.get(4)?, r.get(5)?);
                    let status: String = r.get(8)?;
                    let usable_until = ts(r.get(7)?);
                    let active = status == "active" && usable_until > now;
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

/// Stop counting a source: its stations move elsewhere or lose their license, grants carved
/// from it are revoked (they cannot outlive what they came from). Returns stations dropped.
fn end_source(
    c: &Connection,
    server: &str,
    source: &str,
    status: &str,
    signing: &SigningKey,
) -> rusqlite::Result<u64> {
    c.execute(
        "UPDATE license_sources SET status=?3 WHERE server_id=?1 AND source_id=?2",
        params![server, source, status],
    )?;
    let dropped = rehome_stations(c, server, source)?;
    let subs: Vec<(String, String)> = {
        let mut st = c.prepare_cached(
            "SELECT grant_id, token FROM grants WHERE server_id=?1 AND source_id=?2 AND status='active'",
        )?;
        let rows = st
            .query_map(params![server, source], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        rows
    };
    for (g, token) in subs {
        let Ok(mut t) = serde_json::from_str::<GrantToken>(&token) else {
            continue;
        };
        t.status = GrantStatus::Revoked;
        t.revision += 1;
        t.sign(signing);
        c.execute(
            "UPDATE grants SET status='revoking', revision=?3, token=?4, updated=?5 WHERE server_id=?1 AND grant_id=?2",
            params![server, g, t.revision, serde_json::to_string(&t).expect("tokens serialize"), Utc::now().timestamp()],
        )?;
        log(
            c,
            server,
            "grant_revoke_requested",
            &g,
            format!("its source {source} ended"),
        )?;
    }
    Ok(dropped)
}

/// Move every station off `source`, or none: true when all found room elsewhere.
fn rehome_all_or_nothing(c: &Connection, server: &str, source: &str) -> rusqlite::Result<bool> {
    let sp = c.execute_batch("SAVEPOINT rehome");
    sp?;
    let stations: Vec<String> = {
        let mut st = c.prepare_cached(
            "SELECT station_id FROM stations WHERE server_id=?1 AND source_id=?2",
        )?;
        let rows = st
            .query_map(params![server, source], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        rows
    };
    for s in stations {
        match pick_source(c, server, 1, None, Some(source))? {
            Some(other) => {
                c.execute(
                    "UPDATE stations SET source_id=?3 WHERE server_id=?1 AND station_id=?2",
                    params![server, s, other],
                )?;
            }
            None => {
                c.execute_batch("ROLLBACK TO rehome; RELEASE rehome")?;
                return Ok(false);
            }
        }
    }
    c.execute_batch("RELEASE rehome")?;
    Ok(true)
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

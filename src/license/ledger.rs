//! The license ledger: every license state change is one database transaction, and the
//! database itself enforces conservation (see `schemas/*/002-licenses.sql`). Where the
//! transactions run (a group-committing writer thread on either engine) is
//! [`crate::db::ledger`]'s business.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use ed25519_dalek::SigningKey;
use serde::Serialize;

use super::{LicenseError, LicenseKey};
use crate::db;
use crate::db::ledger::LedgerStore;
use crate::db::sql::{Conn, SqlError};
use crate::id::ServerId;

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
    /// What the receiver last reported of it.
    pub reported: Option<ReceiverCount>,
}

/// What a receiver reports of one grant it holds: how many licenses it holds under it and
/// how many it counts from it (its stations plus what it donated on).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct ReceiverCount {
    /// The grant.
    pub grant_id: String,
    /// Licenses it holds under it.
    pub count: u64,
    /// Licenses it counts from it.
    pub counted: u64,
    /// When it said so (set by the donor).
    #[serde(default)]
    pub reported_at: Option<DateTime<Utc>>,
}

impl OutgoingGrant {
    /// What differs between this grant and its receiver's report (a malfunction or a
    /// forgery), if anything.
    pub fn mismatch(&self) -> Option<String> {
        let r = self.reported.as_ref()?;
        let counts = self.status == "active" || self.status == "revoking";
        if r.count != self.count {
            Some(format!(
                "{} holds grant {} as {} licenses; {} were donated",
                self.receiver, self.grant_id, r.count, self.count
            ))
        } else if r.counted > self.count {
            Some(format!(
                "{} counts {} licenses from grant {}, which gives it {}",
                self.receiver, r.counted, self.grant_id, self.count
            ))
        } else if !counts && r.counted > 0 {
            Some(format!(
                "{} still counts {} licenses from grant {}, which is {}",
                self.receiver, r.counted, self.grant_id, self.status
            ))
        } else {
            None
        }
    }
}

/// Both directions, for `license grants`.
#[derive(Debug, Clone, Serialize)]
pub struct GrantsView {
    /// Grants this server donated.
    pub outgoing: Vec<OutgoingGrant>,
    /// Grants this server received.
    pub incoming: Vec<SourceStatus>,
    /// Every difference between what this server donated and what its receivers report
    /// (reconciliation): each one a malfunction or a forgery to look into.
    pub mismatches: Vec<String>,
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
    /// The node of the cluster that wrote it (empty for rows older than schema 4).
    pub node_id: String,
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
    /// Which, each as "kind id" (the node's log names them; the audit log has a row each).
    pub ended: Vec<String>,
    /// Stations that lost their license (no other source had room).
    pub stations_dropped: u64,
    /// Stations purged for not being seen.
    pub stations_purged: u64,
}

/// Purge the stations not seen within `station_ttl` (none when `None`), each logged, into
/// `out`.
fn purge_stations(
    c: &Conn<'_>,
    server: &str,
    now: DateTime<Utc>,
    station_ttl: Option<Duration>,
    mut out: Sweep,
) -> Result<Sweep, LicenseError> {
    let Some(station_ttl) = station_ttl else {
        return Ok(out);
    };
    let ttl = chrono::Duration::from_std(station_ttl).unwrap_or(chrono::Duration::days(30));
    for s in db::stations::stale(c, server, now - ttl)? {
        db::stations::delete(c, server, &s)?;
        db::license_log::append(
            c,
            server,
            "station_purged",
            &s,
            &format!("not seen for {}", humantime::format_duration(station_ttl)),
        )?;
        out.stations_purged += 1;
    }
    Ok(out)
}

/// The license ledger of one server.
pub struct Ledger {
    /// Rows are read and written under this id.
    pub(super) server: ServerId,
    /// Where the transactions run.
    store: LedgerStore,
    /// The database file or URL, for messages.
    pub(super) at: String,
    /// Signs grant tokens.
    pub(super) signing: Arc<SigningKey>,
    /// Clock-skew margin between servers.
    pub(super) margin: chrono::Duration,
    /// The license issuers trusted here (received grants' chains end at one of them).
    issuers: std::sync::RwLock<Vec<String>>,
    /// The node this one enrolled with by link, and the key it signs grants with: named as
    /// the receiver's key in grants donated to it.
    upstream: std::sync::RwLock<Option<(String, String)>>,
    /// The link to the node this one enrolled with, as the keys follow it (its donor key
    /// and the origin's publisher keys move on with their rotations): what the rules of
    /// conservation know of that node's keys now.
    upstream_link: std::sync::RwLock<Option<Arc<crate::keys::Upstream>>>,
}

/// The error a caller sees for a failed statement: a lock wait, a broken conservation rule
/// (a refusal), or a database failure.
fn finish(at: &str, e: LicenseError) -> LicenseError {
    let LicenseError::Sql(e) = e else {
        return e;
    };
    match e {
        SqlError::Busy => LicenseError::Busy { path: at.to_owned() },
        SqlError::Rule { ref name, ref message } if name == "conservation" => {
            LicenseError::Refused(format!(
                "refused: it would hand out more licenses than the source holds, or outlive it ({message})"
            ))
        }
        SqlError::Rule { ref name, ref message } if name == "grant_rules" => {
            LicenseError::Refused(format!("refused by the database's rules of conservation ({message})"))
        }
        other => LicenseError::Db {
            path: at.to_owned(),
            why: other.to_string(),
        },
    }
}

/// A stored grant token that does not parse.
pub(super) fn damaged_token(e: serde_json::Error) -> LicenseError {
    LicenseError::Sql(SqlError::Damaged(format!("grant token: {e}")))
}

fn secret_hash(station: &str, secret: &str) -> String {
    blake3::Hash::from(blake3::derive_key(
        "updhub station secret v1",
        format!("{station}\n{secret}").as_bytes(),
    ))
    .to_hex()
    .to_string()
}

/// Whether a stored secret hash is `given`, compared in constant time (`blake3::Hash`'s `==`),
/// so the time of an answer tells nothing of how much of a guessed secret was right.
fn same_secret_hash(stored: &str, given: &str) -> bool {
    match (
        blake3::Hash::from_hex(stored),
        blake3::Hash::from_hex(given),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
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
    c: &Conn<'_>,
    server: &str,
    source: &str,
    no_room: NoRoom,
) -> Result<Option<u64>, SqlError> {
    db::stations::rehome_begin(c)?;
    let stations = db::stations::of_source(c, server, source)?;
    let mut dropped = 0;
    for s in stations {
        match db::license_sources::pick(c, server, 1, None, Some(source))? {
            Some(other) => db::stations::move_to(c, server, &s, &other)?,
            None if no_room == NoRoom::Refuse => {
                db::stations::rehome_undo(c)?;
                return Ok(None);
            }
            None => {
                db::stations::delete(c, server, &s)?;
                db::license_log::append(
                    c,
                    server,
                    "station_unlicensed",
                    &s,
                    &format!("its license source {source} ended and no other had room"),
                )?;
                dropped += 1;
            }
        }
    }
    db::stations::rehome_keep(c)?;
    Ok(Some(dropped))
}

impl Ledger {
    /// Open the ledger on a node's database (already migrated by [`crate::db::Db`]).
    ///
    /// # Errors
    /// The database cannot be opened.
    pub fn open(
        db: &crate::db::Db,
        server: ServerId,
        signing: Arc<SigningKey>,
        margin: Duration,
    ) -> Result<Ledger, LicenseError> {
        let store = LedgerStore::open(db).map_err(|e| LicenseError::Db {
            path: db.location().to_owned(),
            why: e.to_string(),
        })?;
        Ok(Ledger {
            server,
            issuers: std::sync::RwLock::default(),
            upstream: std::sync::RwLock::default(),
            upstream_link: std::sync::RwLock::default(),
            at: store.location().to_owned(),
            store,
            signing,
            margin: chrono::Duration::from_std(margin).unwrap_or(chrono::Duration::minutes(5)),
        })
    }

    /// Set the license issuers this server trusts (`licenses.issuers`), against which the
    /// chains of received grants are checked.
    pub fn trust_issuers(&self, issuers: &[String]) {
        *self
            .issuers
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = issuers.to_vec();
    }

    /// The node this one enrolled with by link (its id) and its grant key (hex).
    pub fn set_upstream_grant_key(&self, id: &str, key: &ed25519_dalek::VerifyingKey) {
        *self
            .upstream
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some((id.to_owned(), hex::encode(key.as_bytes())));
    }

    /// Follow the link to the node this one enrolled with (see `upstream_link`).
    pub fn follow_upstream(&self, link: Arc<crate::keys::Upstream>) {
        *self
            .upstream_link
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(link);
    }

    pub(super) fn upstream_link(&self) -> Option<Arc<crate::keys::Upstream>> {
        self.upstream_link
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub(super) fn upstream_grant_key(&self) -> Option<(String, String)> {
        self.upstream
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The license issuers this server trusts.
    pub fn trusted_issuers(&self) -> Vec<String> {
        self.issuers
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The clock-skew margin.
    pub fn margin(&self) -> chrono::Duration {
        self.margin
    }

    /// Run `f` as one transaction at time `now`; resolves once it is durable. `f` gets the
    /// transaction's one time, which statements read from the `clock` row. On a shared
    /// database `f` may run more than once (a lost race runs it again from the start).
    async fn submit<T: Send + 'static>(
        &self,
        now: DateTime<Utc>,
        f: impl FnMut(&Conn<'_>, DateTime<Utc>) -> Result<T, LicenseError> + Send + 'static,
    ) -> Result<T, LicenseError> {
        match self.store.submit(now, f).await {
            Ok(res) => res.map_err(|e| finish(&self.at, e)),
            Err(_) => Err(LicenseError::Db {
                path: self.at.clone(),
                why: "the ledger writer stopped".into(),
            }),
        }
    }

    /// Run `f` as one transaction at the current time; resolves once it is durable.
    ///
    /// # Errors
    /// Whatever `f` returns, or a failed commit.
    pub async fn write<T: Send + 'static>(
        &self,
        f: impl FnMut(&Conn<'_>, DateTime<Utc>) -> Result<T, LicenseError> + Send + 'static,
    ) -> Result<T, LicenseError> {
        self.submit(Utc::now(), f).await
    }

    pub(super) fn read<T: Send>(
        &self,
        f: impl FnMut(&Conn<'_>) -> Result<T, LicenseError> + Send,
    ) -> Result<T, LicenseError> {
        self.store.read(f).map_err(|e| finish(&self.at, e))
    }

    /// `license add`: store a checked key. The same key id twice is refused.
    ///
    /// # Errors
    /// [`LicenseError::Refused`] for a key already added, or database errors.
    pub async fn add_key(&self, key: LicenseKey) -> Result<(), LicenseError> {
        let server = self.server.to_string();
        self.write(move |c, now| {
            if let Some(b) = db::grant_rules::binding(c, &server, &key.key_id, &key.issuer.to_ascii_lowercase())? {
                return Err(LicenseError::Refused(format!(
                    "license key {} is held by another cluster: grants carved from it reached this one (the first, {}, from {}, whose cluster signs with {}); a key counts in one cluster only: nothing changed",
                    key.key_id, b.first_grant, b.first_donor, b.holder_key
                )));
            }
            if let Some((by, at)) = db::license_sources::added(c, &server, &key.key_id)? {
                let by = if by.is_empty() { server.clone() } else { by };
                return Err(LicenseError::Refused(format!(
                    "license key {} is already added to this cluster (by node {by} at {at}); a key counts once for the whole cluster, every node uses it: nothing changed",
                    key.key_id
                )));
            }
            let doc = serde_json::to_string(&key).expect("keys serialize");
            db::license_sources::insert_key(
                c,
                &server,
                &db::license_sources::NewKey {
                    key_id: &key.key_id,
                    holder: &key.holder,
                    count: key.stations,
                    not_before: key.valid_from,
                    not_after: key.valid_until,
                    document: &doc,
                    added: now,
                },
            )?;
            db::license_log::append(
                c,
                &server,
                "key_added",
                &key.key_id,
                &format!(
                    "{} stations for {} until {}",
                    key.stations, key.holder, key.valid_until
                ),
            )?;
            Ok(())
        })
        .await
    }

    /// A station registers (or re-registers: idempotent) and takes one station license.
    /// Returns the source of its license and whether it is new.
    ///
    /// # Errors
    /// [`LicenseError::Refused`] when no license is free, [`LicenseError::OtherCredentials`]
    /// when the station is registered with another secret.
    pub async fn register_station(
        &self,
        station: String,
        secret: String,
    ) -> Result<(String, bool), LicenseError> {
        let server = self.server.to_string();
        self.write(move |c, now| {
            let hash = secret_hash(&station, &secret);
            if c.is_postgres() {
                // A new station with room for it, the usual case, in one round trip; else
                // (it exists, or nothing has room) nothing changed and the steps below tell.
                if let Some(source) =
                    db::stations::insert_picking(c, &server, &station, &hash, now)?
                {
                    return Ok((source, true));
                }
            }
            if let Some((h, source)) = db::stations::get(c, &server, &station)? {
                if !same_secret_hash(&h, &hash) {
                    return Err(LicenseError::OtherCredentials(format!(
                        "station {station} is registered with other credentials; use its secret, or ask the admin to remove it"
                    )));
                }
                db::stations::touch(c, &server, &station, now)?;
                return Ok((source, false));
            }
            let Some(source) = db::license_sources::pick(c, &server, 1, None, None)? else {
                return Err(LicenseError::Refused(format!(
                    "no free station license on server {server}: every license is in use or donated; add a key, or ask the donor for a larger grant"
                )));
            };
            db::stations::insert(c, &server, &station, &hash, &source, now)?;
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
        self.write(move |c, now| {
            let hash = secret_hash(&station, &secret);
            db::stations::heartbeat(c, &server, &station, &hash, now)?.ok_or_else(|| {
                LicenseError::NotFound(format!(
                    "station {station} is not registered here with these credentials (or lost its license); register again"
                ))
            })
        })
        .await
    }

    /// Whether `secret` is the one `station` registered with here: a read that records
    /// nothing (the station routes of updates ask it on every request). An unknown or purged
    /// station is `false`, as a wrong secret is.
    ///
    /// # Errors
    /// Database errors.
    pub fn station_secret_matches(
        &self,
        station: &str,
        secret: &str,
    ) -> Result<bool, LicenseError> {
        let given = secret_hash(station, secret);
        let stored = self.read(|c| Ok(db::stations::get(c, self.server.as_str(), station)?))?;
        Ok(stored.is_some_and(|(h, _)| same_secret_hash(&h, &given)))
    }

    /// End what has ended: outgoing grants past end + margin come back; received grants
    /// past end - margin and expired keys stop counting; stations not seen within
    /// `station_ttl` are purged. One transaction (`updhub license` commands, tests).
    ///
    /// # Errors
    /// Database errors.
    pub async fn sweep(&self, station_ttl: Duration) -> Result<Sweep, LicenseError> {
        self.sweep_parts(true, Some(station_ttl)).await
    }

    /// The expiry part of [`Ledger::sweep`]: every node runs it at start, before any
    /// request, and periodically, since what it serves depends on it.
    ///
    /// # Errors
    /// Database errors.
    pub async fn sweep_expiry(&self) -> Result<Sweep, LicenseError> {
        self.sweep_parts(true, None).await
    }

    /// The purge part of [`Ledger::sweep`]: stations not seen within `station_ttl` are
    /// purged, each logged. It is the cluster's, so one member runs it under a lease
    /// (`node::StationPurge`); run again after an interruption it purges what is left.
    ///
    /// # Errors
    /// Database errors.
    pub async fn purge_stations(&self, station_ttl: Duration) -> Result<u64, LicenseError> {
        Ok(self
            .sweep_parts(false, Some(station_ttl))
            .await?
            .stations_purged)
    }

    async fn sweep_parts(
        &self,
        expiry: bool,
        purge: Option<Duration>,
    ) -> Result<Sweep, LicenseError> {
        let server = self.server.to_string();
        let margin = self.margin;
        let signing = self.signing.clone();
        self.write(move |c, now| {
            let mut out = Sweep::default();
            if !expiry {
                return purge_stations(c, &server, now, purge, out);
            }
            for (g, receiver, count) in db::grants::ended(c, &server, now - margin)? {
                db::grants::set_ended(c, &server, &g, db::grants::Ended::Expired, now)?;
                db::license_log::append(
                    c,
                    &server,
                    "grant_expired",
                    &g,
                    &format!("{count} licenses back from {receiver}"),
                )?;
                out.reclaimed += 1;
            }
            for (s, kind) in db::license_sources::ended(c, &server, now)? {
                out.stations_dropped +=
                    super::grants::end_source(c, &server, &s, "expired", &signing)?;
                db::license_log::append(
                    c,
                    &server,
                    &format!("{kind}_expired"),
                    &s,
                    "stopped counting it",
                )?;
                out.ended_sources += 1;
                out.ended.push(format!("{kind} {}", super::shown(&s)));
            }
            purge_stations(c, &server, now, purge, out)
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
            let rows = db::license_sources::all(c, self.server.as_str())?
                .into_iter()
                .map(|r| {
                    // In force: active, started, not yet past the point this server stops counting.
                    let active =
                        r.status == "active" && r.usable_until > now && r.not_before <= now;
                    SourceStatus {
                        source_id: r.source_id,
                        kind: r.kind,
                        holder: r.holder,
                        total: r.count,
                        used: r.used,
                        donated: r.donated,
                        free: if active {
                            r.count.saturating_sub(r.used + r.donated)
                        } else {
                            0
                        },
                        not_after: r.not_after,
                        usable_until: r.usable_until,
                        expiring_soon: active && r.usable_until - now < warn,
                        status: r.status,
                    }
                })
                .collect();
            Ok(rows)
        })
    }

    /// `license grants`: outgoing and incoming.
    ///
    /// # Errors
    /// Database errors.
    pub fn grants(&self, warn_before: Duration) -> Result<GrantsView, LicenseError> {
        let (outgoing, stray) = self.read(|c| {
            Ok((
                db::grants::outgoing(c, self.server.as_str())?,
                db::grants::stray_reports(c, self.server.as_str())?,
            ))
        })?;
        let incoming = self
            .status(warn_before)?
            .into_iter()
            .filter(|s| s.kind == "grant")
            .collect();
        let mut mismatches: Vec<String> = outgoing
            .iter()
            .filter_map(OutgoingGrant::mismatch)
            .collect();
        mismatches.extend(stray.into_iter().map(|(receiver, r)| {
            format!(
                "{receiver} reports grant {} ({} licenses, {} counted), which this server never gave it",
                r.grant_id, r.count, r.counted
            )
        }));
        Ok(GrantsView {
            outgoing,
            incoming,
            mismatches,
        })
    }

    /// What this server's received grants from `donor` are as it counts them, for its
    /// report to that donor (reconciliation).
    ///
    /// # Errors
    /// Database errors.
    pub fn counts_for(&self, donor: &str) -> Result<Vec<ReceiverCount>, LicenseError> {
        Ok(self
            .status(Duration::ZERO)?
            .into_iter()
            .filter(|s| s.kind == "grant" && s.holder == donor)
            .map(|s| ReceiverCount {
                grant_id: s.source_id,
                count: s.total,
                counted: s.used + s.donated,
                reported_at: None,
            })
            .collect())
    }

    /// `stations`.
    ///
    /// # Errors
    /// Database errors.
    pub fn stations(&self) -> Result<Vec<StationRow>, LicenseError> {
        self.read(|c| Ok(db::stations::all(c, self.server.as_str())?))
    }

    /// `license log`: the audit trail, oldest first.
    ///
    /// # Errors
    /// Database errors.
    pub fn log(&self) -> Result<Vec<LogRow>, LicenseError> {
        self.read(|c| Ok(db::license_log::all(c, self.server.as_str())?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ledger on a fresh database holding one key valid from `from` to `until`.
    async fn ledger_with_key(
        dir: &std::path::Path,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> (crate::db::Db, Ledger) {
        let server = ServerId::new("n1").unwrap();
        let db = crate::db::Db::create(&dir.join("t.db"), server.clone()).unwrap();
        let signing = Arc::new(SigningKey::generate(&mut rand::rngs::OsRng));
        let ledger = Ledger::open(&db, server, signing.clone(), Duration::from_secs(60)).unwrap();
        let key = LicenseKey::issue(&signing, "K1", "ACME", 5, from, until);
        ledger.add_key(key).await.unwrap();
        (db, ledger)
    }

    /// Insert a station at the transaction time `at`, as the writer does.
    async fn station_at(ledger: &Ledger, at: DateTime<Utc>, id: &str) -> Result<(), LicenseError> {
        let id = id.to_owned();
        ledger
            .submit(at, move |c, now| {
                Ok(db::stations::insert(c, "n1", &id, "h", "K1", now)?)
            })
            .await
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

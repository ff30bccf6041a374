//! Grants, the donor's side and the receiver's: donate, renew, revoke, acknowledge, return,
//! and applying the tokens a receiver fetched. Every change is one ledger transaction; the
//! triggers of `schemas/sqlite/002-licenses.sql` hold conservation whatever the code below does.

use chrono::{DateTime, Utc};
use ed25519_dalek::SigningKey;

use super::chain::Proof;
use super::feed::KeptCursor;
use super::ledger::{damaged_token, rehome_stations, ts, Donation, Ledger, NoRoom};
use super::{GrantStatus, GrantToken, LicenseError, GRANT_FORMAT};
use crate::db;
use crate::db::sql::{Conn, SqlError};

impl Ledger {
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
        let signing = self.signing.clone();
        let upstream = self.upstream_grant_key();
        self.write(move |c, now| {
            // A retried request finds its grant and allocates nothing new.
            if let Some(token) = db::grants::by_request(c, &server, &d.request_id)? {
                return serde_json::from_str(&token).map_err(damaged_token);
            }
            if !known_to {
                return Err(LicenseError::Refused(format!(
                    "server {} is unknown here: it is not linked to this cluster and has never synced from it; enroll it by link (`updhub link invite`, with --peer for licenses only), then donate",
                    d.to
                )));
            }
            let until = d.until.timestamp();
            let source = match &d.source {
                Some(s) => {
                    let Some((free, usable, not_before, status)) = db::license_sources::room(c, &server, s)? else {
                        return Err(LicenseError::NotFound(format!(
                            "no license key or received grant '{s}' here; see `updhub license status`"
                        )));
                    };
                    if status != "active" {
                        return Err(LicenseError::Refused(format!("{s} is {status}; it cannot be donated from")));
                    }
                    if not_before > now.timestamp() {
                        return Err(LicenseError::Refused(format!(
                            "{s} is not valid before {}; donate from it from then on",
                            ts(not_before)
                        )));
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
                None => match db::license_sources::pick(c, &server, d.count, Some(until), None)? {
                    Some(s) => s,
                    None => {
                        return Err(LicenseError::Refused(format!(
                            "no key or received grant has {} free licenses lasting until {}; see `updhub license status`",
                            d.count, d.until
                        )))
                    }
                },
            };
            let parent_grant = db::license_sources::received_grant_id(c, &server, &source)?;
            let proof = proof_of(c, &server, &source)?;
            let own_key = hex::encode(signing.verifying_key().as_bytes());
            if let Proof::Grant(above) = &proof {
                check_carvable(above, &own_key)?;
            }
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
                receiver_key: match db::links::grant_key(c, &server, &d.to)? {
                    Some(linked) => linked,
                    None => Some(match &upstream {
                        // The node this one enrolled with: its key, learned then.
                        Some((id, key)) if *id == d.to => key.clone(),
                        _ => own_key,
                    }),
                },
                proof: Some(proof),
                key: String::new(),
                signature: String::new(),
            };
            token.sign(&signing);
            db::grants::insert(
                c,
                &server,
                &db::grants::NewGrant {
                    grant_id: &token.grant_id,
                    source: &source,
                    receiver: &d.to,
                    count: d.count,
                    not_after: token.not_after,
                    request_id: &d.request_id,
                    token: &serde_json::to_string(&token).expect("tokens serialize"),
                    now: now.timestamp(),
                },
            )?;
            db::license_log::append(
                c,
                &server,
                "grant_created",
                &token.grant_id,
                &format!("{} licenses from {source} to {} until {}", d.count, d.to, token.not_after),
            )?;
            Ok(token)
        })
        .await
    }

    pub(super) fn load_grant(
        c: &Conn<'_>,
        server: &str,
        id: &str,
    ) -> Result<(GrantToken, String), LicenseError> {
        let Some((token, status)) = db::grants::get(c, server, id)? else {
            return Err(LicenseError::NotFound(format!(
                "no grant {id} was donated by this server; see `updhub license grants`"
            )));
        };
        let t: GrantToken = serde_json::from_str(&token).map_err(damaged_token)?;
        Ok((t, status))
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
        let signing = self.signing.clone();
        self.write(move |c, _| {
            let (mut t, status) = Self::load_grant(c, &server, &grant_id)?;
            if status != "active" {
                return Err(LicenseError::Refused(format!("grant {grant_id} is {status}; only an active grant can be renewed")));
            }
            if until <= t.not_after {
                return Err(LicenseError::Refused(format!(
                    "grant {grant_id} already runs until {}; renew only extends it (to take licenses back, revoke it)",
                    t.not_after
                )));
            }
            let usable = db::license_sources::usable_until(c, &server, &t.source)?
                .ok_or_else(|| {
                    SqlError::Damaged(format!("grant {grant_id}: its source {} is missing", t.source))
                })?;
            if until.timestamp() > usable {
                return Err(LicenseError::Refused(format!(
                    "grant {grant_id} cannot run past {}, when its source {} ends here",
                    ts(usable),
                    t.source
                )));
            }
            let old = t.not_after;
            t.not_after = until;
            reissue(c, &server, &mut t, "active", &signing)?;
            db::license_log::append(c, &server, "grant_renewed", &grant_id, &format!("until {} (was {old})", t.not_after))?;
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
        let signing = self.signing.clone();
        self.write(move |c, _| {
            let (mut t, status) = Self::load_grant(c, &server, &grant_id)?;
            if status != "active" {
                return Err(LicenseError::Refused(format!(
                    "grant {grant_id} is already {status}"
                )));
            }
            t.status = GrantStatus::Revoked;
            reissue(c, &server, &mut t, "revoking", &signing)?;
            db::license_log::append(
                c,
                &server,
                "grant_revoke_requested",
                &grant_id,
                &format!("{} licenses from {}", t.count, t.receiver),
            )?;
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
        self.write(move |c, now| {
            let (t, status) = Self::load_grant(c, &server, &grant_id)?;
            if t.receiver != caller {
                return Err(LicenseError::NotFound(format!(
                    "no grant {grant_id} for server {caller}"
                )));
            }
            if status == "revoking" {
                db::grants::set_ended(c, &server, &grant_id, db::grants::Ended::Revoked, now)?;
                db::license_log::append(
                    c,
                    &server,
                    "grant_revoked",
                    &grant_id,
                    &format!("{caller} stopped counting {} licenses", t.count),
                )?;
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
        let signing = self.signing.clone();
        self.write(move |c, _| {
            let (mut t, status) = Self::load_grant(c, &server, &grant_id)?;
            if t.receiver != caller {
                return Err(LicenseError::NotFound(format!(
                    "no grant {grant_id} for server {caller}"
                )));
            }
            if status == "active" || status == "revoking" {
                t.status = GrantStatus::Returned;
                reissue(c, &server, &mut t, "returned", &signing)?;
                db::license_log::append(
                    c,
                    &server,
                    "grant_returned",
                    &grant_id,
                    &format!("{caller} gave back {} licenses", t.count),
                )?;
            }
            Ok(())
        })
        .await
    }

    /// The grant tokens `receiver` still has to act on (what it fetches on sync and
    /// heartbeat): active ones, and revoked ones it has not acknowledged. Ended grants are
    /// left out: the receiver ends expired ones by the clock and started returns itself, so
    /// the answer stays small however many grants a long-lived pair has seen.
    ///
    /// # Errors
    /// Database errors.
    pub fn tokens_for(&self, receiver: &str) -> Result<Vec<GrantToken>, LicenseError> {
        self.raw_tokens_for(receiver)?
            .iter()
            .map(|t| serde_json::from_str(t).map_err(damaged_token))
            .collect()
    }

    /// The same tokens as stored (signed JSON), for the route to send without re-encoding.
    ///
    /// # Errors
    /// Database errors.
    pub fn raw_tokens_for(&self, receiver: &str) -> Result<Vec<String>, LicenseError> {
        self.read(|c| Ok(db::grants::tokens_for(c, self.server.as_str(), receiver)?))
    }

    /// Receiver side: the revision of every grant this server received, so a refresh verifies
    /// and applies only what changed.
    ///
    /// # Errors
    /// Database errors.
    pub fn received_revisions(
        &self,
    ) -> Result<std::collections::HashMap<String, u32>, LicenseError> {
        self.read(|c| {
            Ok(
                db::license_sources::received_revisions(c, self.server.as_str())?
                    .into_iter()
                    .map(|(id, rev)| (id, rev as u32))
                    .collect(),
            )
        })
    }

    /// Receiver side: take verified tokens from the donor. New grants start counting, renewals
    /// extend, revocations stop counting (stations move to other sources or lose their
    /// license, sub-grants are revoked in turn). Returns the revoked grant ids to acknowledge.
    ///
    /// # Errors
    /// Database errors.
    pub async fn apply_tokens(&self, tokens: Vec<GrantToken>) -> Result<Vec<String>, LicenseError> {
        self.apply_fetched(tokens, None).await
    }

    /// [`Ledger::apply_tokens`], keeping the cursor of the answer they came in with in the
    /// same transaction: a crash keeps both or neither, so the next fetch starts where the
    /// grants held stand.
    ///
    /// # Errors
    /// Database errors.
    pub async fn apply_fetched(
        &self,
        tokens: Vec<GrantToken>,
        cursor: Option<KeptCursor>,
    ) -> Result<Vec<String>, LicenseError> {
        let server = self.server.to_string();
        let margin = self.margin;
        let signing = self.signing.clone();
        let issuers = self.trusted_issuers();
        let upstream = self.upstream_link();
        self.write(move |c, now| {
            let own = hex::encode(signing.verifying_key().as_bytes());
            let known = super::rules::Known::read(c, &server, &own, upstream.as_ref())?;
            let mut acks = Vec::new();
            for t in &tokens {
                let have = db::license_sources::revision(c, &server, &t.grant_id)?;
                if have.is_some() {
                    // Only the donor of a grant held here may change it.
                    if let Some((holder, _, _)) =
                        db::license_sources::received_grant(c, &server, &t.grant_id)?
                    {
                        if holder != t.donor {
                            return Err(LicenseError::BadGrant {
                                what: super::shown(&t.grant_id),
                                why: format!(
                                    "this cluster received a grant with this id from {holder}, and {} sends one too: a donor may change only its own grants",
                                    super::shown(&t.donor)
                                ),
                            });
                        }
                    }
                }
                // Every grant this cluster takes in force goes through the rules of
                // conservation here, in the transaction that counts it (see `rules`).
                if t.status == GrantStatus::Active
                    && have.as_ref().is_none_or(|(rev, st)| *rev < i64::from(t.revision) && st == "active")
                {
                    let chain = super::chain::verify(t, &issuers)?;
                    super::rules::check_received(c, &server, t, &chain, &known, now)?;
                }
                let doc = serde_json::to_string(&t).expect("tokens serialize");
                let usable = (t.not_after - margin).timestamp();
                match (have, t.status) {
                    (None, GrantStatus::Active) => {
                        db::license_sources::insert_received_grant(
                            c,
                            &server,
                            &db::license_sources::NewReceivedGrant {
                                grant_id: &t.grant_id,
                                donor: &t.donor,
                                count: t.count,
                                now,
                                not_after: t.not_after,
                                usable_until: usable,
                                revision: t.revision,
                                document: &doc,
                            },
                        )?;
                        db::license_log::append(
                            c,
                            &server,
                            "grant_received",
                            &t.grant_id,
                            &format!(
                                "{} licenses from {} until {}",
                                t.count, t.donor, t.not_after
                            ),
                        )?;
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
                            db::license_sources::update_received_grant(
                                c,
                                &server,
                                &t.grant_id,
                                t.not_after,
                                usable,
                                t.revision,
                                &doc,
                            )?;
                            db::license_log::append(
                                c,
                                &server,
                                "grant_renewal_received",
                                &t.grant_id,
                                &format!("until {}", t.not_after),
                            )?;
                        }
                    }
                    (Some((_, have)), status) => {
                        let (event, detail) =
                            if status == GrantStatus::Returned && have == "returning" {
                                // The donor confirms a return this server started (a donor that
                                // offers its grants answers so): nothing counts it here already.
                                db::license_sources::set_returned(c, &server, &t.grant_id)?;
                                (
                                    "grant_returned".to_owned(),
                                    "the donor took it back".to_owned(),
                                )
                            } else {
                                let new = match status {
                                    GrantStatus::Revoked => "revoked",
                                    GrantStatus::Returned => "returned",
                                    _ => "expired",
                                };
                                end_source(c, &server, &t.grant_id, new, &signing)?;
                                (
                                    format!("grant_{new}_by_donor"),
                                    format!("{} licenses from {}", t.count, t.donor),
                                )
                            };
                        db::license_sources::set_revision(
                            c,
                            &server,
                            &t.grant_id,
                            t.revision,
                            &doc,
                        )?;
                        db::license_log::append(c, &server, &event, &t.grant_id, &detail)?;
                        if status == GrantStatus::Revoked {
                            acks.push(t.grant_id.clone());
                        }
                    }
                }
            }
            if let Some(k) = &cursor {
                db::grant_feed::keep_cursor(c, &server, &k.donor_url, &k.donor, &k.cursor, now)?;
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
        self.write(move |c, _| {
            let Some((donor, status, donated)) = db::license_sources::received_grant(c, &server, &grant_id)? else {
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
            let moved = rehome_stations(c, &server, &grant_id, NoRoom::Refuse)?;
            if moved.is_none() {
                return Err(LicenseError::Refused(format!(
                    "stations use grant {grant_id} and no other key or grant has room for them; nothing was returned"
                )));
            }
            db::license_sources::set_returning(c, &server, &grant_id)?;
            db::license_log::append(c, &server, "grant_return_started", &grant_id, &format!("giving back to {donor}"))?;
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
        self.write(move |c, _| {
            if db::license_sources::set_returned(c, &server, &grant_id)? > 0 {
                db::license_log::append(
                    c,
                    &server,
                    "grant_returned",
                    &grant_id,
                    "the donor took it back",
                )?;
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
        self.read(|c| Ok(db::license_sources::returning(c, self.server.as_str())?))
    }

    /// Received grants of `donor` (a node linked to this cluster) being returned: told to it
    /// in the answer to its offer.
    ///
    /// # Errors
    /// Database errors.
    pub fn pending_returns_to(&self, donor: &str) -> Result<Vec<String>, LicenseError> {
        self.read(|c| {
            Ok(db::license_sources::returning_to(
                c,
                self.server.as_str(),
                donor,
            )?)
        })
    }

    /// The signed token of a grant this server donated, as stored.
    ///
    /// # Errors
    /// Database errors.
    pub fn raw_token(&self, grant_id: &str) -> Result<Option<String>, LicenseError> {
        self.read(|c| Ok(db::grants::token(c, self.server.as_str(), grant_id)?))
    }
}

/// What `source` (a key or a received grant of `server`) proves, to carry in the grants
/// carved from it: its signed document as this server holds it now.
fn proof_of(c: &Conn<'_>, server: &str, source: &str) -> Result<Proof, SqlError> {
    let damaged = |e: serde_json::Error| {
        SqlError::Damaged(format!(
            "the stored document of license source {source}: {e}"
        ))
    };
    match db::license_sources::document(c, server, source)? {
        Some((kind, doc)) if kind == "key" => {
            Ok(Proof::Key(serde_json::from_str(&doc).map_err(damaged)?))
        }
        Some((_, doc)) => Ok(Proof::Grant(Box::new(
            serde_json::from_str(&doc).map_err(damaged)?,
        ))),
        None => Err(SqlError::Damaged(format!(
            "license source {source} is missing"
        ))),
    }
}

/// Refuse to donate on from a received grant that names another key as its receiver's:
/// every receiver down the chain would refuse the sub-grant.
fn check_carvable(above: &GrantToken, own_key: &str) -> Result<(), LicenseError> {
    if above.format != GRANT_FORMAT {
        return Err(LicenseError::Refused(format!(
            "grant {} is of the older format {}, which proves no chain, and receivers refuse what is carved from it; have {} renew it (`updhub license renew` there re-signs it in {GRANT_FORMAT}), then donate",
            above.grant_id, above.format, above.donor
        )));
    }
    match &above.receiver_key {
        Some(k) if k.eq_ignore_ascii_case(own_key) => Ok(()),
        Some(k) => Err(LicenseError::Refused(format!(
            "grant {} names the key {k} as its receiver's, but this server signs with {own_key} (its keys changed since); ask {} to enroll this server again and renew the grant, then donate",
            above.grant_id, above.donor
        ))),
        None => Err(LicenseError::Refused(format!(
            "grant {} names no receiver's key ({} enrolled this server before grant keys were recorded); enroll again (`updhub link join`) and have {} renew the grant, then donate",
            above.grant_id, above.donor, above.donor
        ))),
    }
}

/// Re-issue a changed token: bump its revision, refresh the proof it carries (its source as
/// held now: a renewed or revoked parent grant) and the receiver's key, sign it (in the
/// current format, so a format-1 token becomes one that proves its chain), store it
/// with the donor-side `status`. Every change a receiver must learn of goes through here.
pub(super) fn reissue(
    c: &Conn<'_>,
    server: &str,
    t: &mut GrantToken,
    status: &str,
    signing: &SigningKey,
) -> Result<(), SqlError> {
    t.revision += 1;
    t.proof = Some(proof_of(c, server, &t.source)?);
    // A link enrolled again since names its key anew; else the key named at donation stays.
    if let Some(Some(key)) = db::links::grant_key(c, server, &t.receiver)? {
        t.receiver_key = Some(key);
    }
    t.sign(signing);
    db::grants::reissue(
        c,
        server,
        &t.grant_id,
        t.not_after,
        status,
        t.revision,
        &serde_json::to_string(t).expect("tokens serialize"),
    )
}

/// Stop counting a source: its stations move elsewhere or lose their license, grants carved
/// from it are revoked (they cannot outlive what they came from). Returns stations dropped.
pub(super) fn end_source(
    c: &Conn<'_>,
    server: &str,
    source: &str,
    status: &str,
    signing: &SigningKey,
) -> Result<u64, SqlError> {
    db::license_sources::set_status(c, server, source, status)?;
    let dropped = rehome_stations(c, server, source, NoRoom::Drop)?.unwrap_or(0);
    for (g, token) in db::grants::active_from(c, server, source)? {
        let Ok(mut t) = serde_json::from_str::<GrantToken>(&token) else {
            continue;
        };
        t.status = GrantStatus::Revoked;
        reissue(c, server, &mut t, "revoking", signing)?;
        db::license_log::append(
            c,
            server,
            "grant_revoke_requested",
            &g,
            &format!("its source {source} ended"),
        )?;
    }
    Ok(dropped)
}

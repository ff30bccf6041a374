//! The receiver's rules of conservation (DESIGN.md, "Conservation of licenses"), checked
//! inside the transaction that applies a received grant, against what this cluster holds:
//!
//! - the chain ends at a license key held by the first donor's cluster: the cluster key that
//!   signed the first grant carved from the key is bound to the key here (the first chain to
//!   reach this cluster binds it), and a chain naming another holder is refused;
//! - never a chain carved from a key this cluster holds, nor through a grant it donated or
//!   holds (licenses come back only by a revocation or a return);
//! - a chain link naming a donor this cluster knows (itself, a linked node, the node it
//!   enrolled with) is signed with that donor's grant key;
//! - an id this cluster already uses for another donor's grant, or for its own, is refused.
//!
//! [`super::chain`] checks what a chain proves alone (signatures, counts, ends, formats,
//! ids); the schema's triggers (schema 17) hold the id and key rules whatever the code does.
//! [`Ledger::check_received_grants`] applies the same rules again to every grant already
//! received (the upgrade to these rules runs it as a node starts serving).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use ed25519_dalek::SigningKey;

use super::chain::Chain;
use super::ledger::Ledger;
use super::{shown, GrantToken, LicenseError};
use crate::db;
use crate::db::grant_rules::KeyBinding;
use crate::db::sql::Conn;

/// The donors this cluster knows, and the key each signs grants with.
pub(super) struct Known {
    /// Node id -> grant key (hex, lowercase).
    keys: HashMap<String, String>,
    /// Live links: node id -> kind ("child" or "peer").
    kinds: HashMap<String, String>,
    /// The origin's publisher keys this node trusts now (hex): the origin signs grants with
    /// its publisher key, which rotates (a grant signed before a rotation names an old one).
    publishers: Vec<String>,
}

impl Known {
    /// Read inside a ledger transaction: the live links, the node this one enrolled with
    /// (its keys as followed now), and this cluster itself.
    pub(super) fn read(
        c: &Conn<'_>,
        server: &str,
        own_key: &str,
        upstream: Option<&std::sync::Arc<crate::keys::Upstream>>,
    ) -> Result<Known, LicenseError> {
        let mut keys = HashMap::new();
        let mut kinds = HashMap::new();
        for (id, kind, key) in db::grant_rules::link_keys(c, server)? {
            if let Some(k) = key {
                keys.insert(id.clone(), k.to_ascii_lowercase());
            }
            kinds.insert(id, kind);
        }
        let mut publishers = Vec::new();
        if let Some(u) = upstream {
            let donor = *u.donor.read().unwrap_or_else(|p| p.into_inner());
            keys.insert(u.parent_id.clone(), hex::encode(donor.as_bytes()));
            publishers = u
                .publishers
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .map(|k| hex::encode(k.as_bytes()))
                .collect();
        }
        keys.insert(server.to_owned(), own_key.to_ascii_lowercase());
        Ok(Known {
            keys,
            kinds,
            publishers,
        })
    }

    /// Whether this node knows `key` (hex) as one `donor` signs grants with now, or as the
    /// origin's publisher key.
    fn vouches(&self, donor: &str, key: &str) -> bool {
        self.keys
            .get(donor)
            .is_some_and(|k| k.eq_ignore_ascii_case(key))
            || self.publishers.iter().any(|p| p.eq_ignore_ascii_case(key))
    }

    /// The kind of the live link of `id`, if it has one.
    pub(super) fn link_kind(&self, id: &str) -> Option<&str> {
        self.kinds.get(id).map(String::as_str)
    }
}

/// Check the received token `t`, whose chain verified as `chain`, against what the ledger of
/// `server` holds, and bind the chain's key to its holder when this is the first chain of
/// it here.
///
/// # Errors
/// [`LicenseError::BadGrant`] naming the grant and the rule it breaks; database errors.
pub(super) fn check_received(
    c: &Conn<'_>,
    server: &str,
    t: &GrantToken,
    chain: &Chain,
    known: &Known,
    now: DateTime<Utc>,
) -> Result<(), LicenseError> {
    let bad = |why: String| LicenseError::BadGrant {
        what: shown(&t.grant_id),
        why,
    };
    // Its id is its own here: not another donor's grant, not this cluster's.
    if let Some((holder, _, _)) = db::license_sources::received_grant(c, server, &t.grant_id)? {
        if holder != t.donor {
            return Err(bad(format!(
                "this cluster received a grant with this id from {holder}, and {} sends one too: a donor may change only its own grants",
                shown(&t.donor)
            )));
        }
    }
    for (i, (gid, donor, key)) in chain.grants.iter().enumerate() {
        let which = if i == 0 {
            "it".to_owned()
        } else {
            format!("grant {} of its chain", shown(gid))
        };
        if donor == server {
            return Err(bad(format!(
                "{which} was donated by this cluster itself: licenses never come back to their donor through a chain, only by a revocation or a return"
            )));
        }
        if db::grant_rules::is_donated_here(c, server, gid)? {
            return Err(bad(format!(
                "{which} has the id of a grant this cluster donated itself: a grant this cluster issued is never received back"
            )));
        }
        if i > 0 && db::license_sources::received_grant(c, server, gid)?.is_some() {
            return Err(bad(format!(
                "{which} is one this cluster holds itself: a grant carved from it would count it twice"
            )));
        }
        if let Some(k) = known.keys.get(donor.as_str()) {
            if !known.vouches(donor, key) {
                return Err(bad(format!(
                    "{which} names {} as its donor, which signs grants with {}, but it is signed with {}: it is forged",
                    shown(donor),
                    &k[..16.min(k.len())],
                    shown(key)
                )));
            }
        }
    }
    if db::grant_rules::held_key(c, server, &chain.key_id)?.is_some() {
        return Err(bad(format!(
            "it is carved from license key {}, which this cluster holds itself: a key counts in one cluster only, and its licenses come back only by a revocation or a return",
            shown(&chain.key_id)
        )));
    }
    match db::grant_rules::binding(c, server, &chain.key_id, &chain.issuer)? {
        Some(b) if b.holder_key.eq_ignore_ascii_case(&chain.holder_key) => Ok(()),
        // The same holder signing with its new key after a rotation, which this node
        // followed: the binding moves with it.
        Some(b)
            if b.first_donor == chain.first_donor
                && known.vouches(&chain.first_donor, &chain.holder_key) =>
        {
            db::grant_rules::rebind(c, server, &chain.key_id, &chain.issuer, &chain.holder_key)?;
            db::license_log::append(
                c,
                server,
                "key_binding_moved",
                &chain.key_id,
                &format!(
                    "held by the cluster of {}, which signs with {} now (was {})",
                    b.first_donor, chain.holder_key, b.holder_key
                ),
            )?;
            Ok(())
        }
        Some(b) => Err(bad(format!(
            "it is carved from license key {}, which is held by the cluster of {} (grant key {}, learned from grant {}), but its chain says the cluster of {} (grant key {}) donates from it: a key is held by one cluster only, so this chain is carved from another's key",
            shown(&chain.key_id),
            b.first_donor,
            &b.holder_key[..16.min(b.holder_key.len())],
            b.first_grant,
            shown(&chain.first_donor),
            &chain.holder_key[..16.min(chain.holder_key.len())]
        ))),
        None => {
            db::grant_rules::bind(
                c,
                server,
                &chain.key_id,
                &chain.issuer,
                &KeyBinding {
                    holder_key: chain.holder_key.clone(),
                    first_donor: chain.first_donor.clone(),
                    first_grant: chain.first_grant.clone(),
                },
                now,
            )?;
            Ok(())
        }
    }
}

/// Why a received grant of `donor`, as stored (`doc`), breaks the rules now; None when it
/// keeps them. The donor's key was checked when the grant came; here its own signature, its
/// chain and the rules that need the ledger are checked again.
fn still_holds(
    c: &Conn<'_>,
    server: &str,
    donor: &str,
    doc: &str,
    issuers: &[String],
    known: &Known,
    now: DateTime<Utc>,
) -> Result<Option<String>, LicenseError> {
    let t: GrantToken = match serde_json::from_str(doc) {
        Ok(t) => t,
        Err(e) => return Ok(Some(format!("its stored token does not parse ({e})"))),
    };
    if known.link_kind(donor) == Some("child") {
        return Ok(Some(format!(
            "{donor} is linked to this cluster as a child, and a child link carries licenses down only"
        )));
    }
    let key = match crate::keys::verifying_key_hex(&t.key) {
        Ok(k) => k,
        Err(why) => return Ok(Some(format!("its signing key: {why}"))),
    };
    let verdict = t
        .verify(&key, server, issuers)
        .and_then(|chain| check_received(c, server, &t, &chain, known, now));
    match verdict {
        Ok(()) => Ok(None),
        Err(LicenseError::BadGrant { what, why }) => Ok(Some(format!("{what}: {why}"))),
        Err(e) => Err(e),
    }
}

impl Ledger {
    /// Check every grant this cluster received (and still counts or is returning) against
    /// the rules of conservation, as the upgrade to them requires: a grant taken under older
    /// rules that breaks them is flagged (`status` shows it), stops counting here (its
    /// stations move to other sources or lose their license, grants carved from it are
    /// revoked) and gets an audit-log row. Idempotent: a node runs it as it starts serving.
    /// Returns the grants flagged now.
    ///
    /// # Errors
    /// Database errors.
    pub async fn check_received_grants(&self) -> Result<Vec<String>, LicenseError> {
        let server = self.server.to_string();
        let signing = self.signing.clone();
        let issuers = self.trusted_issuers();
        let upstream = self.upstream_link();
        self.write(move |c, now| {
            let own = hex::encode(signing.verifying_key().as_bytes());
            let known = Known::read(c, &server, &own, upstream.as_ref())?;
            let mut flagged = Vec::new();
            for (gid, donor, doc) in db::grant_rules::received_in_force(c, &server)? {
                let Some(why) = still_holds(c, &server, &donor, &doc, &issuers, &known, now)?
                else {
                    continue;
                };
                flag(c, &server, &gid, &donor, &why, now, &signing)?;
                flagged.push(gid);
            }
            Ok(flagged)
        })
        .await
    }

    /// The received grants flagged by [`Ledger::check_received_grants`].
    ///
    /// # Errors
    /// Database errors.
    pub fn flagged_grants(&self) -> Result<Vec<db::grant_rules::Flag>, LicenseError> {
        self.read(|c| Ok(db::grant_rules::flags(c, self.server.as_str())?))
    }
}

/// Flag the received grant `gid` of `donor`: it stops counting here, with its reason kept
/// and logged.
fn flag(
    c: &Conn<'_>,
    server: &str,
    gid: &str,
    donor: &str,
    why: &str,
    now: DateTime<Utc>,
    signing: &SigningKey,
) -> Result<(), LicenseError> {
    let dropped = super::grants::end_source(c, server, gid, "revoked", signing)?;
    db::grant_rules::flag(c, server, gid, donor, why, now)?;
    db::license_log::append(
        c,
        server,
        "grant_flagged",
        gid,
        &format!(
            "from {donor}: breaks the rules of conservation and no longer counts here ({dropped} stations lost their license): {why}"
        ),
    )?;
    Ok(())
}

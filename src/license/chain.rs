//! Grants that prove their chain (issue 8 point 4): a grant of format 2 carries, as its
//! proof, what it was carved from: the license key file itself, or the token of the grant its
//! donor received (which carries its own proof, up to the key). Its signature covers a digest
//! of that proof and the key its receiver signs grants with, so a receiver verifies offline
//! the whole chain back to the license key and its issuer:
//!
//! - every link is signed, and the key that signed it is the one the link above names as its
//!   receiver's key (no one but the receiver of a grant can carve a sub-grant from it);
//! - every link names the one above as its source, and is for its signer's own server;
//! - counts never grow and ends never extend along the chain;
//! - the key file at the top is signed by its issuer, a trusted one when the receiver trusts
//!   any issuer at all.
//!
//! What it cannot prove: that a donor did not carve more sub-grants from a grant than the
//! grant holds (each is valid alone). That is what reconciliation is for: each receiver
//! reports what it counts, and the donor compares.

use serde::{Deserialize, Serialize};

use super::{verify_hex, GrantStatus, GrantToken, LicenseError, LicenseKey, GRANT_FORMAT};

/// How many grants a chain may hold above the key (a deeper one is refused, so a hostile
/// donor cannot make a receiver walk without end).
pub const MAX_DEPTH: usize = 16;

/// What a grant is carved from, carried inside it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum Proof {
    /// The license key file (signed by its issuer).
    Key(LicenseKey),
    /// The grant the donor received, as its own donor signed it.
    Grant(Box<GrantToken>),
}

impl Proof {
    /// The digest a grant's signature covers: blake3 of the proof's own signed bytes and its
    /// signature, so any change to the proof breaks the grant's signature.
    pub(super) fn digest(&self) -> String {
        let mut h = blake3::Hasher::new();
        match self {
            Proof::Key(k) => {
                h.update(b"key\n");
                h.update(&k.signed_bytes());
                h.update(b"\n");
                h.update(k.signature.as_bytes());
            }
            Proof::Grant(g) => {
                h.update(b"grant\n");
                h.update(&g.signed_bytes());
                h.update(b"\n");
                h.update(g.signature.as_bytes());
            }
        }
        h.finalize().to_hex().to_string()
    }
}

/// What a verified chain says, for the receiver's rules (see [`super::rules`]): the key it
/// ends at, the cluster holding that key, and every grant on the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    /// The license key at the top of the chain.
    pub key_id: String,
    /// Its issuer (hex).
    pub issuer: String,
    /// The cluster key (hex) that signed the first grant carved from the key: the key's
    /// holder. The first grant's signature covers the key file's digest, so this binding is
    /// what the first donor signed.
    pub holder_key: String,
    /// The first grant's donor.
    pub first_donor: String,
    /// The first grant (carved from the key).
    pub first_grant: String,
    /// Every grant of the chain, the verified token first: (grant id, donor, signing key).
    pub grants: Vec<(String, String, String)>,
}

/// Whether `s` is a grant id of the schema's form: `g-` and 16 lowercase hex digits.
pub fn is_grant_id(s: &str) -> bool {
    s.len() == 18
        && s.starts_with("g-")
        && s.bytes()
            .skip(2)
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Verify the chain of `top` (already checked as signed by its direct donor, for this
/// server). `issuers` are the issuers this server trusts; when it trusts none, the key file's
/// own signature is still checked. Every link must be of the current format (an older one
/// proves no chain: taking it would be a downgrade), with ids of the schema's form, each
/// grant id once.
///
/// # Errors
/// [`LicenseError::BadGrant`] naming the link of the chain that is wrong, and why.
pub(super) fn verify(top: &GrantToken, issuers: &[String]) -> Result<Chain, LicenseError> {
    let mut link = top;
    let mut grants: Vec<(String, String, String)> = Vec::new();
    for depth in 1..=MAX_DEPTH {
        let bad = |why: String| LicenseError::BadGrant {
            what: format!(
                "{} (link {depth} of the chain, from {} to {})",
                super::shown(&link.grant_id),
                super::shown(&link.donor),
                super::shown(&link.receiver)
            ),
            why,
        };
        if link.format != GRANT_FORMAT {
            return Err(bad(format!(
                "it is of format '{}', not the current '{GRANT_FORMAT}': an older format proves no chain back to a license key, so it is refused (no downgrade); its donor renews it with this version of updhub (`updhub license renew`)",
                super::shown(&link.format)
            )));
        }
        if !is_grant_id(&link.grant_id) {
            return Err(bad(
                "its id is not 'g-' and 16 lowercase hex digits (schemas/grant.schema.json); it is damaged or forged".into(),
            ));
        }
        if let Some(p) = link.parent_grant.as_deref().filter(|p| !is_grant_id(p)) {
            return Err(bad(format!(
                "the grant it names as its parent, {}, has no id of the form 'g-' and 16 lowercase hex digits",
                super::shown(p)
            )));
        }
        for (id, what) in [(&link.donor, "donor"), (&link.receiver, "receiver")] {
            super::check_id(id, what).map_err(&bad)?;
        }
        if grants.iter().any(|(g, _, _)| *g == link.grant_id) {
            return Err(bad(
                "its id appears twice in the chain: a grant cannot be carved from itself".into(),
            ));
        }
        grants.push((link.grant_id.clone(), link.donor.clone(), link.key.clone()));
        match &link.proof {
            None => {
                return Err(bad(
                    "it carries no proof of where its licenses come from (a grant of format 2 must); it is damaged or forged".into(),
                ))
            }
            Some(Proof::Key(k)) => {
                let key = |why: String| bad(format!("its license key {}: {why}", super::shown(&k.key_id)));
                if k.format != super::KEY_FORMAT {
                    return Err(key(format!("its format is not '{}'", super::KEY_FORMAT)));
                }
                super::check_id(&k.key_id, "key id").map_err(&key)?;
                verify_hex(&k.issuer, &k.signature, &k.signed_bytes()).map_err(key)?;
                if !issuers.is_empty() && !issuers.iter().any(|i| i.eq_ignore_ascii_case(&k.issuer)) {
                    return Err(key(format!(
                        "its issuer {} is not trusted here (licenses.issuers); if you trust it, add it: `updhub config set licenses.issuers ...`",
                        k.issuer
                    )));
                }
                if link.source != k.key_id || link.parent_grant.is_some() {
                    return Err(bad(format!(
                        "it names {} as its source, but carries the key {}",
                        super::shown(&link.source), k.key_id
                    )));
                }
                if link.count > k.stations {
                    return Err(key(format!(
                        "the grant holds {} licenses, the key only {}",
                        link.count, k.stations
                    )));
                }
                if link.not_after > k.valid_until {
                    return Err(key(format!(
                        "the grant ends {}, after the key ({})",
                        link.not_after, k.valid_until
                    )));
                }
                return Ok(Chain {
                    key_id: k.key_id.clone(),
                    issuer: k.issuer.to_ascii_lowercase(),
                    holder_key: link.key.to_ascii_lowercase(),
                    first_donor: link.donor.clone(),
                    first_grant: link.grant_id.clone(),
                    grants,
                });
            }
            Some(Proof::Grant(above)) => {
                let up = |why: String| {
                    bad(format!(
                        "the grant {} it is carved from ({} to {}): {why}",
                        super::shown(&above.grant_id),
                        super::shown(&above.donor),
                        super::shown(&above.receiver)
                    ))
                };
                if above.format != GRANT_FORMAT {
                    return Err(up(format!(
                        "it is of format {}, which names no receiver's key; its donor {} must renew it (`updhub license renew`) with this version of updhub",
                        super::shown(&above.format), super::shown(&above.donor)
                    )));
                }
                verify_hex(&above.key, &above.signature, &above.signed_bytes())
                    .map_err(|e| up(format!("{e}: it was tampered with or forged")))?;
                if link.parent_grant.as_deref() != Some(above.grant_id.as_str())
                    || link.source != above.grant_id
                {
                    return Err(bad(format!(
                        "it names {} as its source, but carries the grant {}",
                        link.source, above.grant_id
                    )));
                }
                if above.receiver != link.donor {
                    return Err(up(format!(
                        "it was given to {}, not to {}, which carved this grant from it",
                        above.receiver, link.donor
                    )));
                }
                match &above.receiver_key {
                    Some(k) if k.eq_ignore_ascii_case(&link.key) => {}
                    Some(k) => {
                        return Err(up(format!(
                            "it names {k} as its receiver's key, but this grant is signed with {}: it was not carved by the grant's receiver (forged)",
                            link.key
                        )))
                    }
                    None => {
                        return Err(up(format!(
                            "it names no receiver's key: {} enrolled with {} before updhub recorded grant keys; enroll it again (`updhub link join`), then renew the grant",
                            above.receiver, above.donor
                        )))
                    }
                }
                if link.count > above.count {
                    return Err(bad(format!(
                        "it holds {} licenses, more than the {} of grant {} it is carved from",
                        link.count, above.count, above.grant_id
                    )));
                }
                if link.not_after > above.not_after {
                    return Err(bad(format!(
                        "it ends {}, after grant {} it is carved from ({})",
                        link.not_after, above.grant_id, above.not_after
                    )));
                }
                if link.status == GrantStatus::Active && above.status != GrantStatus::Active {
                    return Err(up(format!(
                        "it is {}, so nothing carved from it can be active",
                        above.status.word()
                    )));
                }
                link = above;
            }
        }
    }
    Err(LicenseError::BadGrant {
        what: super::shown(&top.grant_id),
        why: format!("its chain is deeper than {MAX_DEPTH} grants; it is refused"),
    })
}

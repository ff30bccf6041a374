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

/// Verify the chain of `top` (already checked as signed by its direct donor, for this
/// server). `issuers` are the issuers this server trusts; when it trusts none, the key file's
/// own signature is still checked.
///
/// # Errors
/// [`LicenseError::BadGrant`] naming the link of the chain that is wrong, and why.
pub(super) fn verify(top: &GrantToken, issuers: &[String]) -> Result<(), LicenseError> {
    if top.format != GRANT_FORMAT {
        // A token of an older donor: verified by its signature alone, as before.
        return Ok(());
    }
    let mut link = top;
    for depth in 1..=MAX_DEPTH {
        let bad = |why: String| LicenseError::BadGrant {
            what: format!(
                "{} (link {depth} of the chain, from {} to {})",
                link.grant_id, link.donor, link.receiver
            ),
            why,
        };
        match &link.proof {
            None => {
                return Err(bad(
                    "it carries no proof of where its licenses come from (a grant of format 2 must); it is damaged or forged".into(),
                ))
            }
            Some(Proof::Key(k)) => {
                let key = |why: String| bad(format!("its license key {}: {why}", k.key_id));
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
                        link.source, k.key_id
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
                return Ok(());
            }
            Some(Proof::Grant(above)) => {
                let up = |why: String| {
                    bad(format!(
                        "the grant {} it is carved from ({} to {}): {why}",
                        above.grant_id, above.donor, above.receiver
                    ))
                };
                if above.format != GRANT_FORMAT {
                    return Err(up(format!(
                        "it is of format {}, which names no receiver's key; its donor {} must renew it (`updhub license renew`) with this version of updhub",
                        above.format, above.donor
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
        what: top.grant_id.clone(),
        why: format!("its chain is deeper than {MAX_DEPTH} grants; it is refused"),
    })
}

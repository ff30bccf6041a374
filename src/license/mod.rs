//! Station licenses (reference point 7): license keys signed by an issuer, stations that each
//! hold one station license, and grants: signed, time-limited donations of licenses from one
//! server to another over the interserver connection, which the receiver may donate on.
//!
//! - this file: the signed documents (key files, grant tokens) and the errors;
//! - [`ledger`]: the database side, where conservation is enforced by triggers and writes
//!   are group-committed; `grants.rs` holds its grant operations;
//! - [`api`]: the interserver and station routes, and the receiver's fetch;
//! - [`feed`]: the fetch's change cursor, so a receiver fetches only what changed;
//! - [`archive`]: the audit log's rows past their retention, archived to files.

pub mod api;
pub mod archive;
pub mod chain;
pub mod feed;
mod grants;
pub mod ledger;
pub mod removal;
pub mod rules;

use chrono::{DateTime, SubsecRound, Utc};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

pub use ledger::Ledger;

/// Format tag of a license key file.
pub const KEY_FORMAT: &str = "updhub-license/1";
/// Format tag of a grant token: format 2 carries its chain (see [`chain`]).
pub const GRANT_FORMAT: &str = "updhub-grant/2";
/// Format tag of the grant tokens of earlier builds: no chain, no receiver's key. Still
/// verified (by the donor's signature) when received directly.
pub const GRANT_FORMAT_1: &str = "updhub-grant/1";

/// Errors about licenses. Each says what is wrong and what to do.
#[derive(Debug, thiserror::Error)]
pub enum LicenseError {
    /// A key file is not valid.
    #[error("license key {what}: {why}")]
    BadKey {
        /// The file or key id.
        what: String,
        /// What is wrong and the fix.
        why: String,
    },
    /// A grant token is not valid.
    #[error("grant {what}: {why}")]
    BadGrant {
        /// The grant id or source.
        what: String,
        /// What is wrong and the fix.
        why: String,
    },
    /// A request breaks a rule (not enough free licenses, bad period, unknown server...).
    #[error("{0}")]
    Refused(String),
    /// A station id is registered with another secret (a failed login: it is counted).
    #[error("{0}")]
    OtherCredentials(String),
    /// Something named does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The caller may not do this at all (a link that may not donate this way).
    #[error("{0}")]
    NotAllowed(String),
    /// The database failed.
    #[error("license database {path}: {why}; check the file is writable and the disk not full")]
    Db {
        /// The database file.
        path: String,
        /// Why.
        why: String,
    },
    /// Another process held the database for longer than the busy timeout.
    #[error("license database {path} is busy: another updhub process (a running `serve` or another command) held it for over 30 s; try again when it is done")]
    Busy {
        /// The database file.
        path: String,
    },
    /// A statement failed; [`Ledger`](ledger::Ledger) turns it into one of the above before
    /// a caller sees it.
    #[error("license database: {0}")]
    Sql(#[from] crate::db::sql::SqlError),
    /// The donor could not be reached.
    #[error("donor {url}: {why}; it will be retried on the next sync")]
    Network {
        /// The URL.
        url: String,
        /// Why.
        why: String,
    },
}

impl LicenseError {
    /// The HTTP status of this error when it answers a request.
    pub fn http_status(&self) -> u16 {
        match self {
            LicenseError::BadKey { .. } | LicenseError::BadGrant { .. } => 400,
            LicenseError::Refused(_) | LicenseError::OtherCredentials(_) => 409,
            LicenseError::NotFound(_) => 404,
            LicenseError::NotAllowed(_) => 403,
            LicenseError::Db { .. } => 500,
            LicenseError::Sql(crate::db::sql::SqlError::Busy) => 503,
            LicenseError::Sql(_) => 500,
            LicenseError::Busy { .. } => 503,
            LicenseError::Network { .. } => 502,
        }
    }
}

impl crate::db::sql::TxFail for LicenseError {
    fn conflict(&self) -> Option<&crate::db::sql::SqlError> {
        match self {
            LicenseError::Sql(e) => crate::db::sql::TxFail::conflict(e),
            _ => None,
        }
    }
}

fn check_id(s: &str, kind: &str) -> Result<(), String> {
    let ok = crate::id::is_label(s);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{kind} '{}' is not valid: use 1-64 letters, digits, '.', '_' or '-'",
            shown(s)
        ))
    }
}

/// An id a remote node sent, as a message may show it: escaped (a line feed cannot split
/// a line of `license status` or the log) and cut to 40 characters.
pub(crate) fn shown(s: &str) -> String {
    let mut out: String = s.chars().take(40).flat_map(char::escape_debug).collect();
    if s.chars().count() > 40 {
        out.push_str("...");
    }
    out
}

fn sig_hex(key: &SigningKey, bytes: &[u8]) -> String {
    hex::encode(key.sign(bytes).to_bytes())
}

fn verify_hex(key_hex: &str, sig: &str, bytes: &[u8]) -> Result<VerifyingKey, String> {
    let mut k = [0u8; 32];
    hex::decode_to_slice(key_hex, &mut k)
        .map_err(|_| "its key is not 64 hex characters".to_owned())?;
    let key = VerifyingKey::from_bytes(&k)
        .map_err(|_| "its key is not an ed25519 public key".to_owned())?;
    let mut s = [0u8; 64];
    hex::decode_to_slice(sig, &mut s)
        .map_err(|_| "its signature is not 128 hex characters".to_owned())?;
    key.verify(bytes, &Signature::from_bytes(&s)).map_err(|_| {
        "its signature does not verify; the file was altered or not signed by this key".to_owned()
    })?;
    Ok(key)
}

/// The one date spelling of key files (`schemas/license.schema.json`): `2026-01-01T00:00:00Z`,
/// UTC with whole seconds. A general RFC 3339 parser also takes other separators, offsets
/// and fractions, which the schema refuses.
mod whole_utc {
    use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Secs, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        parse(&s).map_err(serde::de::Error::custom)
    }

    pub fn parse(s: &str) -> Result<DateTime<Utc>, String> {
        let shape_ok = s.len() == 20
            && s.bytes().enumerate().all(|(i, b)| match i {
                4 | 7 => b == b'-',
                10 => b == b'T',
                13 | 16 => b == b':',
                19 => b == b'Z',
                _ => b.is_ascii_digit(),
            });
        shape_ok
            .then(|| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%SZ").ok())
            .flatten()
            .map(|t| t.and_utc())
            .ok_or_else(|| {
                format!("{s:?} is not a date of the form 2026-01-01T00:00:00Z (UTC, whole seconds)")
            })
    }
}

/// A license key file: N station licenses for a holder over a period, signed by an issuer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LicenseKey {
    /// Always [`KEY_FORMAT`].
    pub format: String,
    /// Unique key id.
    pub key_id: String,
    /// Who holds it.
    pub holder: String,
    /// Station licenses in it.
    pub stations: u32,
    /// Valid from.
    #[serde(with = "whole_utc")]
    pub valid_from: DateTime<Utc>,
    /// Valid until.
    #[serde(with = "whole_utc")]
    pub valid_until: DateTime<Utc>,
    /// The issuer's ed25519 public key, hex.
    pub issuer: String,
    /// The issuer's signature of the fields above, hex.
    pub signature: String,
}

impl LicenseKey {
    fn signed_bytes(&self) -> Vec<u8> {
        format!(
            "{KEY_FORMAT}\n{}\n{}\n{}\n{}\n{}\n{}",
            self.key_id,
            self.holder,
            self.stations,
            self.valid_from.timestamp(),
            self.valid_until.timestamp(),
            self.issuer
        )
        .into_bytes()
    }

    /// Issue and sign a key (issuers and tests; admins receive key files).
    pub fn issue(
        issuer: &SigningKey,
        key_id: &str,
        holder: &str,
        stations: u32,
        valid_from: DateTime<Utc>,
        valid_until: DateTime<Utc>,
    ) -> LicenseKey {
        let mut k = LicenseKey {
            format: KEY_FORMAT.into(),
            key_id: key_id.into(),
            holder: holder.into(),
            stations,
            valid_from: valid_from.trunc_subsecs(0),
            valid_until: valid_until.trunc_subsecs(0),
            issuer: hex::encode(issuer.verifying_key().as_bytes()),
            signature: String::new(),
        };
        k.signature = sig_hex(issuer, &k.signed_bytes());
        k
    }

    /// Parse a key file and check it: format, fields, a trusted issuer, the signature, and
    /// that it has not expired at `now`.
    ///
    /// # Errors
    /// [`LicenseError::BadKey`] naming the problem and the fix.
    pub fn parse_and_check(
        bytes: &[u8],
        what: &str,
        issuers: &[String],
        now: DateTime<Utc>,
    ) -> Result<LicenseKey, LicenseError> {
        let bad = |why: String| LicenseError::BadKey {
            what: what.to_owned(),
            why,
        };
        let k: LicenseKey = serde_json::from_slice(bytes)
            .map_err(|e| bad(format!("not a valid license key file: {e}")))?;
        if k.format != KEY_FORMAT {
            return Err(bad(format!(
                "format is '{}', expected '{KEY_FORMAT}'",
                k.format
            )));
        }
        check_id(&k.key_id, "key id").map_err(&bad)?;
        if k.key_id.starts_with("g-") {
            return Err(bad(
                "key ids starting with 'g-' are reserved for grants".into()
            ));
        }
        if k.stations == 0 {
            return Err(bad("it holds 0 station licenses".into()));
        }
        if k.valid_until <= k.valid_from {
            return Err(bad("its validity ends before it starts".into()));
        }
        if !issuers.iter().any(|i| i.eq_ignore_ascii_case(&k.issuer)) {
            return Err(bad(untrusted_issuer(&k.issuer, issuers)));
        }
        verify_hex(&k.issuer, &k.signature, &k.signed_bytes()).map_err(&bad)?;
        if k.valid_until <= now {
            return Err(bad(format!(
                "it expired at {}; ask the issuer for a renewed key",
                k.valid_until
            )));
        }
        Ok(k)
    }
}

/// Why a key of an issuer that is not in `licenses.issuers` is refused, and how to trust
/// the issuer on purpose: the setting's new value, for the cluster or for updhub.toml.
fn untrusted_issuer(issuer: &str, trusted: &[String]) -> String {
    let mut list: Vec<&str> = trusted.iter().map(String::as_str).collect();
    list.push(issuer);
    let value = serde_json::to_string(&list).expect("strings serialize");
    let now = if trusted.is_empty() {
        "this cluster trusts no license issuer yet (licenses.issuers is empty)".to_owned()
    } else {
        format!("licenses.issuers holds {} other issuer(s)", trusted.len())
    };
    let (what, why) = if crate::config::is_demo_issuer(issuer) {
        (
            ": it is the demo issuer of mirror/licenses/, whose keys are demo licenses, not for production",
            "To try updhub with the demo license anyway, trust the demo issuer explicitly",
        )
    } else {
        (
            "",
            "If you trust this issuer (compare its public key with the one it gave you), add it",
        )
    };
    format!(
        "its issuer {issuer} is not trusted{what}; {now}. {why}: `updhub config set licenses.issuers '{value}'` for the whole cluster (every node applies it without a restart), or licenses.issuers = {value} in updhub.toml (this node only, and only if the cluster has not set it: see `updhub config show`)"
    )
}

/// The state a grant token carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GrantStatus {
    /// In force.
    Active,
    /// The donor takes it back: the receiver stops counting it and acknowledges.
    Revoked,
    /// The receiver gave it back.
    Returned,
    /// Past its end.
    Expired,
}

impl GrantStatus {
    /// Its name in messages and JSON.
    pub fn word(self) -> &'static str {
        match self {
            GrantStatus::Active => "active",
            GrantStatus::Revoked => "revoked",
            GrantStatus::Returned => "returned",
            GrantStatus::Expired => "expired",
        }
    }

    /// Its name inside a grant's signed bytes: fixed here, never a formatter's output (the
    /// same words the first tokens were signed with, so they still verify).
    fn signed_name(self) -> &'static str {
        match self {
            GrantStatus::Active => "Active",
            GrantStatus::Revoked => "Revoked",
            GrantStatus::Returned => "Returned",
            GrantStatus::Expired => "Expired",
        }
    }
}

/// A grant: `count` station licenses from `donor` to `receiver` until `not_after`, carved
/// from `source` (a key, or a grant the donor itself received: then `parent_grant`).
/// Signed by the donor with its cluster key; the receiver verifies it offline, with the
/// whole chain it carries back to the license key (see [`chain`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantToken {
    /// Always [`GRANT_FORMAT`].
    pub format: String,
    /// Unique grant id, `g-` and 16 hex digits.
    pub grant_id: String,
    /// The donor server's id.
    pub donor: String,
    /// The receiver server's id.
    pub receiver: String,
    /// Station licenses.
    pub count: u32,
    /// The grant ends here.
    pub not_after: DateTime<Utc>,
    /// The key or grant it is carved from, at the donor.
    pub source: String,
    /// The grant it is carved from, if the donor donates on what it received.
    pub parent_grant: Option<String>,
    /// Bumped by every change (renewal, revocation).
    pub revision: u32,
    /// Its state.
    pub status: GrantStatus,
    /// The key (hex) the receiver signs grants with: only it can carve sub-grants from this
    /// one. Format 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receiver_key: Option<String>,
    /// What it is carved from: the key file, or the donor's received grant. Format 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof: Option<chain::Proof>,
    /// The signing public key, hex.
    pub key: String,
    /// Signature, hex.
    pub signature: String,
}

impl GrantToken {
    /// The bytes its signature covers: a fixed text layout (never a serializer's output).
    /// Format 1: ten lines. Format 2 adds the receiver's key and the digest of the proof.
    fn signed_bytes(&self) -> Vec<u8> {
        let mut text = format!(
            "{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}",
            self.format,
            self.grant_id,
            self.donor,
            self.receiver,
            self.count,
            self.not_after.timestamp(),
            self.source,
            self.parent_grant.as_deref().unwrap_or("-"),
            self.revision,
            self.status.signed_name()
        );
        if self.format != GRANT_FORMAT_1 {
            text.push_str(&format!(
                "\n{}\n{}",
                self.receiver_key.as_deref().unwrap_or("-"),
                self.proof
                    .as_ref()
                    .map_or_else(|| "-".to_owned(), chain::Proof::digest)
            ));
        }
        text.into_bytes()
    }

    /// (Re-)sign the token with the donor's cluster key, in the current format.
    pub fn sign(&mut self, key: &SigningKey) {
        self.format = GRANT_FORMAT.into();
        self.not_after = self.not_after.trunc_subsecs(0);
        self.key = hex::encode(key.verifying_key().as_bytes());
        self.signature = sig_hex(key, &self.signed_bytes());
    }

    /// A new random grant id.
    pub fn new_id() -> String {
        format!("g-{}", hex::encode(rand::random::<[u8; 8]>()))
    }

    /// Verify a token received from a donor: format, the donor's key, that it is for us,
    /// and the chain it carries back to the license key (see [`chain`]) with `issuers`, the
    /// issuers this server trusts. Returns what the chain says, for the receiver's rules
    /// that need its ledger ([`rules`]).
    ///
    /// # Errors
    /// [`LicenseError::BadGrant`] naming the token, or the link of its chain, that is wrong.
    pub fn verify(
        &self,
        donor: &VerifyingKey,
        me: &str,
        issuers: &[String],
    ) -> Result<chain::Chain, LicenseError> {
        let bad = |why: String| LicenseError::BadGrant {
            what: shown(&self.grant_id),
            why,
        };
        if self.format != GRANT_FORMAT {
            return Err(bad(format!(
                "format '{}' is not the current '{GRANT_FORMAT}'; an older format proves no chain back to a license key and is refused (no downgrade): its donor renews the grant with this version of updhub (`updhub license renew`)",
                shown(&self.format)
            )));
        }
        if !chain::is_grant_id(&self.grant_id) {
            return Err(bad(
                "its id is not 'g-' and 16 lowercase hex digits (schemas/grant.schema.json); a donor of this version never makes one: it is damaged or forged"
                    .into(),
            ));
        }
        if self.key != hex::encode(donor.as_bytes()) {
            return Err(bad(
                "it is not signed with the key of the server this one gets its grants from (learned when it enrolled)"
                    .into(),
            ));
        }
        verify_hex(&self.key, &self.signature, &self.signed_bytes()).map_err(&bad)?;
        if self.receiver != me {
            return Err(bad(format!(
                "it is for server {}, not this server {me}",
                shown(&self.receiver)
            )));
        }
        check_id(&self.donor, "donor").map_err(&bad)?;
        chain::verify(self, issuers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn key_files_check_issuer_signature_and_expiry() {
        let issuer = SigningKey::generate(&mut rand::rngs::OsRng);
        let now = Utc::now();
        let k = LicenseKey::issue(
            &issuer,
            "K1",
            "ACME",
            10,
            now - Duration::days(1),
            now + Duration::days(30),
        );
        let trusted = vec![k.issuer.clone()];
        let bytes = serde_json::to_vec(&k).unwrap();
        assert_eq!(
            LicenseKey::parse_and_check(&bytes, "k", &trusted, now).unwrap(),
            k
        );
        let err = LicenseKey::parse_and_check(&bytes, "k", &[], now)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("not trusted")
                && err.contains(&k.issuer)
                && err.contains(&format!("config set licenses.issuers '[\"{}\"]'", k.issuer))
                && err.contains("updhub.toml")
                && !err.contains("demo"),
            "{err}"
        );
        // The fix keeps the issuers already trusted.
        let other = hex::encode([7u8; 32]);
        let err = LicenseKey::parse_and_check(&bytes, "k", std::slice::from_ref(&other), now)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("'[\"{other}\",\"{}\"]'", k.issuer)),
            "{err}"
        );
        // The demo key is refused as the demo, not for production.
        let demo = LicenseKey::parse_and_check(
            include_bytes!("../../mirror/licenses/demo-license.json"),
            "demo-license.json",
            &[],
            now,
        )
        .unwrap_err()
        .to_string();
        assert!(
            demo.contains("demo issuer")
                && demo.contains("not for production")
                && demo.contains(crate::config::DEMO_ISSUER.trim()),
            "{demo}"
        );
        let mut forged = k.clone();
        forged.stations = 1000;
        let err =
            LicenseKey::parse_and_check(&serde_json::to_vec(&forged).unwrap(), "k", &trusted, now)
                .unwrap_err();
        assert!(err.to_string().contains("does not verify"), "{err}");
        let err = LicenseKey::parse_and_check(&bytes, "k", &trusted, now + Duration::days(31))
            .unwrap_err();
        assert!(err.to_string().contains("expired"), "{err}");
    }

    #[test]
    fn key_file_dates_follow_the_schema_exactly() {
        let issuer = SigningKey::generate(&mut rand::rngs::OsRng);
        let now = Utc::now();
        let k = LicenseKey::issue(&issuer, "K1", "ACME", 10, now, now + Duration::days(30));
        let trusted = vec![k.issuer.clone()];
        let text = serde_json::to_string(&k).unwrap();
        let from = k.valid_from.format("%Y-%m-%dT%H:%M:%SZ").to_string();
        assert!(text.contains(&from), "{text}");
        let date = &from[..10];
        let time = &from[11..19];
        // Each spelling the schema's pattern refuses, though a general RFC 3339 parser may
        // take it: the signed Unix seconds would be the same, so only the reader can refuse.
        for other in [
            format!("{date}\u{a0}{time}Z"),
            format!("{date} {time}Z"),
            format!("{date}t{time}Z"),
            format!("{date}T{time}.000Z"),
            format!("{date}T{time}+00:00"),
            format!("{date}T{time}z"),
        ] {
            let bad = text.replace(&from, &other);
            let err = LicenseKey::parse_and_check(bad.as_bytes(), "k", &trusted, now)
                .unwrap_err()
                .to_string();
            assert!(err.contains("2026-01-01T00:00:00Z"), "{other:?}: {err}");
        }
        // Uppercase hex is allowed by the schema ("the reader also takes uppercase").
        let upper = text.replace(&k.signature, &k.signature.to_uppercase());
        LicenseKey::parse_and_check(upper.as_bytes(), "k", &trusted, now).unwrap();
    }

    fn grant(donor: &str, receiver: &str, count: u32, days: i64, source: &str) -> GrantToken {
        GrantToken {
            format: GRANT_FORMAT.into(),
            grant_id: GrantToken::new_id(),
            donor: donor.into(),
            receiver: receiver.into(),
            count,
            not_after: (Utc::now() + Duration::days(days)).trunc_subsecs(0),
            source: source.into(),
            parent_grant: None,
            revision: 1,
            status: GrantStatus::Active,
            receiver_key: None,
            proof: None,
            key: String::new(),
            signature: String::new(),
        }
    }

    /// Key K1 of holder a: 10 licenses for 30 days.
    fn key_k1(issuer: &SigningKey) -> LicenseKey {
        LicenseKey::issue(
            issuer,
            "K1",
            "a",
            10,
            Utc::now(),
            Utc::now() + Duration::days(30),
        )
    }

    fn hexkey(k: &SigningKey) -> String {
        hex::encode(k.verifying_key().as_bytes())
    }

    #[test]
    fn grant_tokens_verify_for_their_receiver_only() {
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        let issuer = SigningKey::generate(&mut rand::rngs::OsRng);
        let k = key_k1(&issuer);
        let mut g = grant("a", "b", 3, 1, "K1");
        g.proof = Some(chain::Proof::Key(k));
        g.sign(&key);
        g.verify(&key.verifying_key(), "b", &[]).unwrap();
        assert!(g.verify(&key.verifying_key(), "c", &[]).is_err());
        let mut t = g.clone();
        t.count = 30;
        assert!(t.verify(&key.verifying_key(), "b", &[]).is_err());
        let other = SigningKey::generate(&mut rand::rngs::OsRng);
        assert!(g.verify(&other.verifying_key(), "b", &[]).is_err());
        // Format 2 signs the receiver's key and the proof's digest after format 1's lines.
        let text = String::from_utf8(g.signed_bytes()).unwrap();
        let head = format!("{GRANT_FORMAT}\n{}\na\nb\n3\n", g.grant_id);
        assert!(text.starts_with(&head), "{text}");
        let digest = g.proof.as_ref().unwrap().digest();
        assert!(
            text.ends_with(&format!("\nK1\n-\n1\nActive\n-\n{digest}")),
            "{text}"
        );
        // The signed text of format 1 is fixed (no formatter output inside a signature):
        // tokens signed by earlier builds keep verifying.
        let mut v1 = g.clone();
        v1.format = GRANT_FORMAT_1.into();
        let text = String::from_utf8(v1.signed_bytes()).unwrap();
        assert!(
            text.starts_with(&format!("{GRANT_FORMAT_1}\n{}\na\nb\n3\n", g.grant_id)),
            "{text}"
        );
        assert!(text.ends_with("\nK1\n-\n1\nActive"), "{text}");
        v1.status = GrantStatus::Revoked;
        assert!(String::from_utf8(v1.signed_bytes())
            .unwrap()
            .ends_with("\nRevoked"));
        // A format-1 token, though signed by the donor, is refused: it proves no chain, and
        // taking it would let any linked node give licenses from nothing (issue 18).
        v1.signature = sig_hex(&key, &v1.signed_bytes());
        let e = v1
            .verify(&key.verifying_key(), "b", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("no downgrade"), "{e}");
    }

    /// A chain issuer -> key of A -> B -> C -> D, as the servers would make it.
    fn three_levels() -> (Vec<SigningKey>, SigningKey, Vec<GrantToken>) {
        let keys: Vec<SigningKey> = (0..4)
            .map(|_| SigningKey::generate(&mut rand::rngs::OsRng))
            .collect();
        let issuer = SigningKey::generate(&mut rand::rngs::OsRng);
        let k = key_k1(&issuer);
        let mut ab = grant("a", "b", 6, 20, "K1");
        ab.receiver_key = Some(hexkey(&keys[1]));
        ab.proof = Some(chain::Proof::Key(k));
        ab.sign(&keys[0]);
        let mut bc = grant("b", "c", 4, 10, &ab.grant_id);
        bc.parent_grant = Some(ab.grant_id.clone());
        bc.receiver_key = Some(hexkey(&keys[2]));
        bc.proof = Some(chain::Proof::Grant(Box::new(ab.clone())));
        bc.sign(&keys[1]);
        let mut cd = grant("c", "d", 2, 5, &bc.grant_id);
        cd.parent_grant = Some(bc.grant_id.clone());
        cd.receiver_key = Some(hexkey(&keys[3]));
        cd.proof = Some(chain::Proof::Grant(Box::new(bc.clone())));
        cd.sign(&keys[2]);
        (keys, issuer, vec![ab, bc, cd])
    }

    fn middle(cd: &mut GrantToken) -> &mut GrantToken {
        match cd.proof.as_mut().unwrap() {
            chain::Proof::Grant(g) => g,
            chain::Proof::Key(_) => panic!("a grant above"),
        }
    }

    #[test]
    fn a_three_level_chain_verifies_offline_and_a_bad_link_is_named() {
        let (keys, issuer, chain) = three_levels();
        let c = keys[2].verifying_key();
        let cd = &chain[2];
        cd.verify(&c, "d", &[]).unwrap();
        cd.verify(&c, "d", &[hexkey(&issuer)]).unwrap();
        let refused = |t: &GrantToken, issuers: &[String]| {
            t.verify(&c, "d", issuers).unwrap_err().to_string()
        };
        // Its issuer is checked against the trusted ones.
        let e = refused(cd, &[hexkey(&keys[0])]);
        assert!(
            e.contains("license key K1") && e.contains("not trusted"),
            "{e}"
        );
        // A tampered middle link: B's grant to C said 40 licenses. C's own signature covers
        // the digest of its proof, so the bottom sees it whoever re-signs what.
        let mut t = cd.clone();
        middle(&mut t).count = 40;
        let e = refused(&t, &[]);
        assert!(e.contains(&chain[2].grant_id), "{e}");
        assert!(e.contains("signature does not verify"), "{e}");
        // C re-signs its own grant over the tampered middle: the middle's signature fails.
        t.sign(&keys[2]);
        let e = refused(&t, &[]);
        assert!(
            e.contains(&format!("the grant {}", chain[1].grant_id)),
            "{e}"
        );
        assert!(e.contains("tampered with or forged"), "{e}");
        // C grants more than it holds, or longer: named at its own link.
        let mut t = cd.clone();
        t.count = 5;
        t.sign(&keys[2]);
        let e = refused(&t, &[]);
        assert!(e.contains("more than the 4"), "{e}");
        let mut t = cd.clone();
        t.not_after = chain[1].not_after + Duration::days(1);
        t.sign(&keys[2]);
        assert!(refused(&t, &[]).contains("after grant"));
        // Someone who is not C (a sibling with its own key) carves from B's grant to C.
        let x = SigningKey::generate(&mut rand::rngs::OsRng);
        let mut t = cd.clone();
        t.sign(&x);
        let e = t
            .verify(&x.verifying_key(), "d", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("receiver's key") && e.contains("forged"), "{e}");
        // B grants C more than A gave B: the middle link is named.
        let (keys, _, chain) = three_levels();
        let mut bc = chain[1].clone();
        bc.count = 7;
        bc.sign(&keys[1]);
        let mut cd = chain[2].clone();
        cd.proof = Some(chain::Proof::Grant(Box::new(bc.clone())));
        cd.sign(&keys[2]);
        let e = cd
            .verify(&keys[2].verifying_key(), "d", &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!("{} (link 2 of the chain", bc.grant_id)),
            "{e}"
        );
        assert!(e.contains("more than the 6"), "{e}");
        // A grant carved from a revoked one cannot be active.
        let mut bc = chain[1].clone();
        bc.status = GrantStatus::Revoked;
        bc.sign(&keys[1]);
        let mut cd = chain[2].clone();
        cd.proof = Some(chain::Proof::Grant(Box::new(bc)));
        cd.sign(&keys[2]);
        let e = cd
            .verify(&keys[2].verifying_key(), "d", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("it is revoked"), "{e}");
        // A key file with a forged count at the top.
        let mut t = chain[0].clone();
        if let Some(chain::Proof::Key(k)) = t.proof.as_mut() {
            k.stations = 1000;
        }
        t.sign(&keys[0]);
        let e = t
            .verify(&keys[0].verifying_key(), "b", &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("license key K1") && e.contains("signature does not verify"),
            "{e}"
        );
    }

    #[test]
    fn a_chain_refuses_an_old_format_a_bad_id_or_a_repeated_grant_at_any_link() {
        let (keys, _, chain) = three_levels();
        let c = keys[2].verifying_key();
        let refused = |t: &GrantToken| t.verify(&c, "d", &[]).unwrap_err().to_string();
        // Format 1 in the middle (no downgrade inside a chain either).
        let mut t = chain[2].clone();
        middle(&mut t).format = GRANT_FORMAT_1.into();
        t.sign(&keys[2]);
        let e = refused(&t);
        assert!(e.contains("updhub-grant/1"), "{e}");
        // A middle id with a line feed, re-signed by its donor: named escaped.
        let (keys, _, chain) = three_levels();
        let mut bc = chain[1].clone();
        bc.grant_id = "g-0123456789abcde\n".to_owned();
        bc.sign(&keys[1]);
        let mut cd = chain[2].clone();
        cd.source = bc.grant_id.clone();
        cd.parent_grant = Some(bc.grant_id.clone());
        cd.proof = Some(chain::Proof::Grant(Box::new(bc)));
        cd.sign(&keys[2]);
        let e = cd
            .verify(&keys[2].verifying_key(), "d", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("16 lowercase hex digits"), "{e}");
        assert!(!e.contains('\n'), "{e}");
        // A grant carved from itself: the same id twice in the chain.
        let (keys, _, chain) = three_levels();
        let mut cd = chain[2].clone();
        cd.grant_id = chain[1].grant_id.clone();
        cd.sign(&keys[2]);
        let e = cd
            .verify(&keys[2].verifying_key(), "d", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("appears twice in the chain"), "{e}");
        // The chain tells its key and the holder that signed the first grant.
        let (keys, issuer, chain) = three_levels();
        let got = chain[2].verify(&keys[2].verifying_key(), "d", &[]).unwrap();
        assert_eq!(got.key_id, "K1");
        assert_eq!(got.issuer, hexkey(&issuer));
        assert_eq!(got.holder_key, hexkey(&keys[0]));
        assert_eq!(got.first_donor, "a");
        assert_eq!(got.grants.len(), 3);
    }
}

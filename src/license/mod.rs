//! Station licenses (reference point 7): license keys signed by an issuer, stations that each
//! hold one station license, and grants: signed, time-limited donations of licenses from one
//! server to another over the interserver connection, which the receiver may donate on.
//!
//! - this file: the signed documents (key files, grant tokens) and the errors;
//! - [`ledger`]: the database side, where conservation is enforced by triggers and writes
//!   are group-committed; `grants.rs` holds its grant operations;
//! - [`api`]: the interserver and station routes, and the receiver's fetch;
//! - [`feed`]: the fetch's change cursor, so a receiver fetches only what changed.

pub mod api;
pub mod feed;
mod grants;
pub mod ledger;

use chrono::{DateTime, SubsecRound, Utc};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

pub use ledger::Ledger;

/// Format tag of a license key file.
pub const KEY_FORMAT: &str = "updhub-license/1";
/// Format tag of a grant token.
pub const GRANT_FORMAT: &str = "updhub-grant/1";

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
    /// Something named does not exist.
    #[error("{0}")]
    NotFound(String),
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
            LicenseError::Refused(_) => 409,
            LicenseError::NotFound(_) => 404,
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
            s.chars().take(80).collect::<String>()
        ))
    }
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
/// Signed by the donor with the cluster key; the receiver verifies it offline.
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
    /// The signing public key, hex.
    pub key: String,
    /// Signature, hex.
    pub signature: String,
}

impl GrantToken {
    fn signed_bytes(&self) -> Vec<u8> {
        format!(
            "{GRANT_FORMAT}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}",
            self.grant_id,
            self.donor,
            self.receiver,
            self.count,
            self.not_after.timestamp(),
            self.source,
            self.parent_grant.as_deref().unwrap_or("-"),
            self.revision,
            self.status.signed_name()
        )
        .into_bytes()
    }

    /// (Re-)sign the token with the donor's cluster key.
    pub fn sign(&mut self, key: &SigningKey) {
        self.not_after = self.not_after.trunc_subsecs(0);
        self.key = hex::encode(key.verifying_key().as_bytes());
        self.signature = sig_hex(key, &self.signed_bytes());
    }

    /// A new random grant id.
    pub fn new_id() -> String {
        format!("g-{}", hex::encode(rand::random::<[u8; 8]>()))
    }

    /// Verify a token received from a donor: format, the cluster key, and that it is for us.
    ///
    /// # Errors
    /// [`LicenseError::BadGrant`].
    pub fn verify(&self, cluster: &VerifyingKey, me: &str) -> Result<(), LicenseError> {
        let bad = |why: String| LicenseError::BadGrant {
            what: self.grant_id.clone(),
            why,
        };
        if self.format != GRANT_FORMAT {
            return Err(bad(format!(
                "format '{}' is not '{GRANT_FORMAT}'",
                self.format
            )));
        }
        if self.key != hex::encode(cluster.as_bytes()) {
            return Err(bad(
                "it is not signed with this cluster's key; the donor belongs to another cluster"
                    .into(),
            ));
        }
        verify_hex(&self.key, &self.signature, &self.signed_bytes()).map_err(&bad)?;
        if self.receiver != me {
            return Err(bad(format!(
                "it is for server {}, not this server {me}",
                self.receiver
            )));
        }
        check_id(&self.donor, "donor").map_err(&bad)?;
        if !self.grant_id.starts_with("g-") {
            return Err(bad("its id does not start with 'g-'".into()));
        }
        Ok(())
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

    #[test]
    fn grant_tokens_verify_for_their_receiver_only() {
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        let mut g = GrantToken {
            format: GRANT_FORMAT.into(),
            grant_id: GrantToken::new_id(),
            donor: "a".into(),
            receiver: "b".into(),
            count: 3,
            not_after: Utc::now() + Duration::days(1),
            source: "K1".into(),
            parent_grant: None,
            revision: 1,
            status: GrantStatus::Active,
            key: String::new(),
            signature: String::new(),
        };
        g.sign(&key);
        g.verify(&key.verifying_key(), "b").unwrap();
        assert!(g.verify(&key.verifying_key(), "c").is_err());
        let mut t = g.clone();
        t.count = 30;
        assert!(t.verify(&key.verifying_key(), "b").is_err());
        let other = SigningKey::generate(&mut rand::rngs::OsRng);
        assert!(g.verify(&other.verifying_key(), "b").is_err());
        // The signed text is fixed (no formatter output inside a signature): tokens signed
        // by earlier builds keep verifying.
        let text = String::from_utf8(g.signed_bytes()).unwrap();
        let head = format!("{GRANT_FORMAT}\n{}\na\nb\n3\n", g.grant_id);
        assert!(text.starts_with(&head), "{text}");
        assert!(text.ends_with("\nK1\n-\n1\nActive"), "{text}");
        g.status = GrantStatus::Revoked;
        assert!(String::from_utf8(g.signed_bytes())
            .unwrap()
            .ends_with("\nRevoked"));
    }
}

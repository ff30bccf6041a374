//! Typed identifiers that cross module boundaries: blob hashes, version roots, server and grant ids.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The blake3 hash of a blob's uncompressed content; the blob's name in the store.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobId(pub [u8; 32]);

/// Why a string is not a valid id.
#[derive(Debug, thiserror::Error)]
#[error("'{text}' is not a valid {kind}: {why}")]
pub struct IdError {
    /// The rejected text, shortened for display.
    pub text: String,
    /// What kind of id was expected.
    pub kind: &'static str,
    /// What is wrong with it.
    pub why: &'static str,
}

impl BlobId {
    /// Hash `data` with blake3.
    ///
    /// ```
    /// use updhub::id::BlobId;
    /// let id = BlobId::of(b"drwtoday.vdb contents");
    /// assert_eq!(id.to_hex().len(), 64);
    /// assert_eq!(id.to_hex().parse::<BlobId>().unwrap(), id);
    /// ```
    pub fn of(data: &[u8]) -> Self {
        BlobId(*blake3::hash(data).as_bytes())
    }

    /// Lowercase hex, 64 characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The two-character fan-out folder of this blob in the store.
    pub fn fanout(&self) -> String {
        hex::encode(&self.0[..1])
    }
}

impl From<blake3::Hash> for BlobId {
    fn from(h: blake3::Hash) -> Self {
        BlobId(*h.as_bytes())
    }
}

impl FromStr for BlobId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        let err = |why| IdError {
            text: shown(s),
            kind: "blake3 hash",
            why,
        };
        if s.len() != 64 {
            return Err(err("it must be 64 hex characters"));
        }
        if s.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(err("it must be lowercase hex"));
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|_| err("it must be 64 hex characters"))?;
        Ok(BlobId(out))
    }
}

impl fmt::Display for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobId({})", &self.to_hex()[..12])
    }
}

impl Serialize for BlobId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for BlobId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// `s` as an error shows it: at most 80 characters, control characters and quotes escaped,
/// so that text from a peer (a NUL, a line feed) cannot forge lines of a log or a terminal.
fn shown(s: &str) -> String {
    s.chars().take(80).flat_map(char::escape_debug).collect()
}

/// Whether `s` is a label: 1-64 of `[A-Za-z0-9._-]`, starting with a letter or digit. Server
/// ids, product and revision names, key ids and station ids all follow this rule.
pub fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The root of a repository version: the blob id of its canonical manifest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Root(pub BlobId);

impl fmt::Display for Root {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for Root {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Root({})", &self.0.to_hex()[..12])
    }
}

impl FromStr for Root {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        s.parse().map(Root)
    }
}

/// A server's unique id in a cluster (reference point 1: `<id>` differs on every node).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ServerId(String);

impl ServerId {
    /// Check and wrap a server id: 1-64 characters of `[A-Za-z0-9._-]`, starting alphanumeric.
    ///
    /// # Errors
    /// Returns an [`IdError`] naming the rule that the text breaks.
    pub fn new(s: &str) -> Result<Self, IdError> {
        let err = |why| IdError {
            text: shown(s),
            kind: "server id",
            why,
        };
        if s.is_empty() || s.len() > 64 {
            return Err(err("it must be 1 to 64 characters long"));
        }
        if !s.as_bytes()[0].is_ascii_alphanumeric() {
            return Err(err("it must start with a letter or digit"));
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err(err("only letters, digits, '.', '_' and '-' are allowed"));
        }
        Ok(ServerId(s.to_owned()))
    }

    /// A new random id, `hub-` and 8 hex digits.
    pub fn random() -> Self {
        ServerId(format!("hub-{}", hex::encode(rand::random::<[u8; 4]>())))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ServerId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        ServerId::new(&s)
    }
}

impl From<ServerId> for String {
    fn from(s: ServerId) -> String {
        s.0
    }
}

impl fmt::Display for ServerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ServerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ServerId({})", self.0)
    }
}

impl FromStr for ServerId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        ServerId::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_id_round_trips_through_hex() {
        let id = BlobId::of(b"hello");
        let back: BlobId = id.to_hex().parse().unwrap();
        assert_eq!(id, back);
        assert_eq!(id.fanout().len(), 2);
    }

    #[test]
    fn blob_id_rejects_bad_text() {
        assert!("abc".parse::<BlobId>().is_err());
        assert!("Z".repeat(64).parse::<BlobId>().is_err());
        assert!("A".repeat(64).parse::<BlobId>().is_err());
    }

    #[test]
    fn server_id_rules() {
        assert!(ServerId::new("hub-1").is_ok());
        assert!(ServerId::new("").is_err());
        assert!(ServerId::new("-x").is_err());
        assert!(ServerId::new("a/b").is_err());
        for bad in [
            "../x",
            "a\0b",
            "a\nINFO forged line",
            "a b",
            &"x".repeat(65),
        ] {
            assert!(ServerId::new(bad).is_err(), "{bad:?}");
        }
        // Shown escaped: a line feed in an id cannot start a line of a log.
        let e = ServerId::new("a\nINFO forged line")
            .unwrap_err()
            .to_string();
        assert!(!e.contains('\n') && e.contains("a\\nINFO"), "{e}");
        assert!(ServerId::random().as_str().starts_with("hub-"));
    }
}

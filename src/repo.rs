//! Repository versions: the canonical manifest (whose blake3 is the version's root) and the
//! signed published version {root, number, expires} that a parent serves to its children.

use chrono::{DateTime, SubsecRound, Utc};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::id::{BlobId, Root};

/// Format tag of a manifest.
pub const MANIFEST_FORMAT: &str = "updhub-manifest/1";
/// Format tag of a published version.
pub const PUBLISHED_FORMAT: &str = "updhub-published/1";

/// Errors about manifests and published versions.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// The manifest is not valid.
    #[error("manifest {what}: {why}")]
    BadManifest {
        /// Which manifest.
        what: String,
        /// What is wrong, and the fix.
        why: String,
    },
    /// The published version document is not valid.
    #[error("published version from {from}: {why}")]
    BadPublished {
        /// Where it came from.
        from: String,
        /// What is wrong, and the fix.
        why: String,
    },
    /// A signature does not verify.
    #[error("published version {number} from {from}: the signature does not verify with any publisher key this node trusts (`updhub keys publishers` lists them); the document was altered, or its publisher key was replaced instead of rotated. A node linked to that parent (another trust domain) never copies its keys: it learned them at enrollment and follows their rotations, so enroll it again (`updhub link invite --id ID` on the parent, `updhub link join` here); only a member of the parent's own cluster takes the cluster keys (`updhub keys export` there, `updhub init --keys-from` here)")]
    BadSignature {
        /// Where it came from.
        from: String,
        /// Its number.
        number: u64,
    },
    /// The published version has expired.
    #[error("published version {number} from {from} expired at {expires}; the parent has stopped re-signing it (is it down?); restart the parent or point this node at another one")]
    Expired {
        /// Where it came from.
        from: String,
        /// Its number.
        number: u64,
        /// When it expired.
        expires: DateTime<Utc>,
    },
    /// Rollback: a lower number than already accepted.
    #[error("published version {number} from {from} is older than version {accepted} already accepted; refusing a replayed or rolled-back version")]
    Rollback {
        /// Where it came from.
        from: String,
        /// Its number.
        number: u64,
        /// The last number accepted.
        accepted: u64,
    },
    /// The same number with a different root.
    #[error("published version {number} from {from} has root {root} but version {number} was accepted with root {accepted}; a version number never changes its content, refusing it")]
    Equivocation {
        /// Where it came from.
        from: String,
        /// Its number.
        number: u64,
        /// The root offered.
        root: Root,
        /// The root accepted before.
        accepted: Root,
    },
}

/// Check a product or revision name: `[0-9A-Za-z][0-9A-Za-z._-]{0,63}`.
pub fn check_name(s: &str) -> Result<(), String> {
    let ok = crate::id::is_label(s);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "'{}' is not a valid name: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
            s.chars().take(80).collect::<String>()
        ))
    }
}

/// Check a declared size against the schema's maximum ([`crate::store::MAX_SIZE`]).
pub fn check_size(size: u64) -> Result<(), String> {
    if size > crate::store::MAX_SIZE {
        Err(format!(
            "size {size} is beyond the maximum {} (2^53-1)",
            crate::store::MAX_SIZE
        ))
    } else {
        Ok(())
    }
}

/// Check a file path inside a product: relative, `/`-separated, no empty, `.` or `..` parts.
/// This is what keeps a hostile zone or manifest from writing outside a checkout.
pub fn check_path(p: &str) -> Result<(), String> {
    let why = if p.is_empty() {
        Some("it is empty")
    } else if p.len() > 1024 {
        Some("it is longer than 1024 bytes")
    } else if p.starts_with('/') {
        Some("it is absolute")
    } else if p.contains('\\') || p.contains('\0') {
        Some("it holds a backslash or NUL")
    } else if p.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
        Some("it has an empty, '.' or '..' component")
    } else {
        None
    };
    match why {
        None => Ok(()),
        Some(w) => Err(format!(
            "path '{}' is not allowed: {w}; paths are relative and '/'-separated",
            p.chars().take(120).collect::<String>()
        )),
    }
}

/// One file of a repository version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Product, e.g. `10-drwbases`.
    pub product: String,
    /// The product's revision in this version.
    pub revision: String,
    /// Path inside the product.
    pub path: String,
    /// Uncompressed size.
    pub size: u64,
    /// Content hash: the blob id.
    pub blake3: BlobId,
}

/// A repository version's content: entries sorted by (product, path).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`MANIFEST_FORMAT`].
    pub format: String,
    /// The files.
    pub entries: Vec<Entry>,
}

impl Manifest {
    /// Build a manifest from entries in any order.
    ///
    /// # Errors
    /// A bad name or path, or the same (product, path) twice.
    pub fn new(mut entries: Vec<Entry>) -> Result<Manifest, RepoError> {
        entries.sort_by(|a, b| (&a.product, &a.path).cmp(&(&b.product, &b.path)));
        let m = Manifest {
            format: MANIFEST_FORMAT.to_owned(),
            entries,
        };
        m.check("being built")?;
        Ok(m)
    }

    fn check(&self, what: &str) -> Result<(), RepoError> {
        let bad = |why: String| RepoError::BadManifest {
            what: what.to_owned(),
            why,
        };
        if self.format != MANIFEST_FORMAT {
            return Err(bad(format!(
                "format is '{}', expected '{MANIFEST_FORMAT}'; it was written by another updhub version",
                self.format
            )));
        }
        let mut total = 0u64;
        let mut sizes = std::collections::HashMap::new();
        for (i, e) in self.entries.iter().enumerate() {
            check_name(&e.product).map_err(&bad)?;
            check_name(&e.revision).map_err(&bad)?;
            check_path(&e.path).map_err(&bad)?;
            check_size(e.size).map_err(|why| bad(format!("{}/{}: {why}", e.product, e.path)))?;
            total = total.checked_add(e.size).ok_or_else(|| {
                bad("its sizes add up to more than 2^64 bytes; it is damaged".into())
            })?;
            // One content has one size: the same blob listed with two sizes is a lie in one.
            if let Some(other) = sizes.insert(e.blake3, e.size) {
                if other != e.size {
                    return Err(bad(format!(
                        "{}/{} gives blob {} {} bytes, another entry {other}; one content has one size",
                        e.product, e.path, e.blake3, e.size
                    )));
                }
            }
            if i > 0 {
                let prev = &self.entries[i - 1];
                match (&prev.product, &prev.path).cmp(&(&e.product, &e.path)) {
                    std::cmp::Ordering::Less => {}
                    std::cmp::Ordering::Equal => {
                        return Err(bad(format!("{}/{} is listed twice", e.product, e.path)))
                    }
                    std::cmp::Ordering::Greater => {
                        return Err(bad(format!(
                            "entries are not sorted at {}/{}; a manifest is canonical",
                            e.product, e.path
                        )))
                    }
                }
            }
        }
        Ok(())
    }

    /// The canonical bytes: compact JSON of the sorted entries. Same content, same bytes.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a manifest always serializes")
    }

    /// The version's root: the blake3 of the canonical bytes.
    pub fn root(&self) -> Root {
        Root(BlobId::of(&self.canonical_bytes()))
    }

    /// Parse and check manifest bytes, and that they hash to `root`.
    ///
    /// # Errors
    /// Bytes that are not the canonical manifest of `root`.
    pub fn parse(bytes: &[u8], root: &Root) -> Result<Manifest, RepoError> {
        let what = format!("{root}");
        let bad = |why: String| RepoError::BadManifest {
            what: what.clone(),
            why,
        };
        let actual = BlobId::of(bytes);
        if actual != root.0 {
            return Err(bad(format!(
                "its bytes hash to {actual}; it is corrupt, fetch it again"
            )));
        }
        let m: Manifest =
            serde_json::from_slice(bytes).map_err(|e| bad(format!("not valid JSON: {e}")))?;
        m.check(&what)?;
        if m.canonical_bytes() != bytes {
            return Err(bad("it is not in canonical form".into()));
        }
        Ok(m)
    }

    /// Total uncompressed bytes (a checked manifest's sum never overflows; an unchecked one
    /// stops at `u64::MAX` rather than wrap around).
    pub fn total_size(&self) -> u64 {
        self.entries
            .iter()
            .fold(0u64, |acc, e| acc.saturating_add(e.size))
    }

    /// Distinct blobs, each with its size, in a stable order.
    pub fn blobs(&self) -> Vec<(BlobId, u64)> {
        let mut v: Vec<_> = self.entries.iter().map(|e| (e.blake3, e.size)).collect();
        v.sort();
        v.dedup();
        v
    }
}

/// The signed pointer to the one version a parent serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Published {
    /// Always [`PUBLISHED_FORMAT`].
    pub format: String,
    /// The version's root.
    pub root: Root,
    /// Its number; numbers only grow.
    pub number: u64,
    /// Children refuse it after this moment.
    pub expires: DateTime<Utc>,
    /// The signing public key, hex.
    pub key: String,
    /// ed25519 signature of [`Published::signed_bytes`], hex.
    pub signature: String,
}

impl Published {
    fn signed_bytes(root: &Root, number: u64, expires: &DateTime<Utc>) -> Vec<u8> {
        format!(
            "{PUBLISHED_FORMAT}\n{root}\n{number}\n{}",
            expires.timestamp()
        )
        .into_bytes()
    }

    /// Sign {root, number, expires} with the cluster key (expiry rounded to whole seconds).
    pub fn sign(root: Root, number: u64, expires: DateTime<Utc>, key: &SigningKey) -> Published {
        let expires = expires.trunc_subsecs(0);
        let sig = key.sign(&Self::signed_bytes(&root, number, &expires));
        Published {
            format: PUBLISHED_FORMAT.to_owned(),
            root,
            number,
            expires,
            key: hex::encode(key.verifying_key().as_bytes()),
            signature: hex::encode(sig.to_bytes()),
        }
    }

    /// Parse a document received from `from`.
    ///
    /// # Errors
    /// Not valid JSON of the right format.
    pub fn parse(bytes: &[u8], from: &str) -> Result<Published, RepoError> {
        let p: Published = serde_json::from_slice(bytes).map_err(|e| RepoError::BadPublished {
            from: from.to_owned(),
            why: format!("not a valid published version: {e}"),
        })?;
        if p.format != PUBLISHED_FORMAT {
            return Err(RepoError::BadPublished {
                from: from.to_owned(),
                why: format!(
                    "format '{}' is not '{PUBLISHED_FORMAT}'; upgrade the older node",
                    p.format
                ),
            });
        }
        Ok(p)
    }

    /// Check the signature against the cluster key and that it has not expired at `now`.
    ///
    /// # Errors
    /// [`RepoError::BadSignature`] or [`RepoError::Expired`].
    pub fn verify(
        &self,
        cluster: &VerifyingKey,
        now: DateTime<Utc>,
        from: &str,
    ) -> Result<(), RepoError> {
        let bad = || RepoError::BadSignature {
            from: from.to_owned(),
            number: self.number,
        };
        let mut sig = [0u8; 64];
        hex::decode_to_slice(&self.signature, &mut sig).map_err(|_| bad())?;
        cluster
            .verify(
                &Self::signed_bytes(&self.root, self.number, &self.expires),
                &Signature::from_bytes(&sig),
            )
            .map_err(|_| bad())?;
        if self.expires <= now {
            return Err(RepoError::Expired {
                from: from.to_owned(),
                number: self.number,
                expires: self.expires,
            });
        }
        Ok(())
    }

    /// [`Published::verify`] against any of `keys` (the publisher keys this node trusts);
    /// a bad signature is reported when none of them signed it.
    ///
    /// # Errors
    /// [`RepoError::BadSignature`] or [`RepoError::Expired`].
    pub fn verify_any(
        &self,
        keys: &[VerifyingKey],
        now: DateTime<Utc>,
        from: &str,
    ) -> Result<(), RepoError> {
        let mut last = RepoError::BadSignature {
            from: from.to_owned(),
            number: self.number,
        };
        for k in keys {
            match self.verify(k, now, from) {
                Ok(()) => return Ok(()),
                Err(e @ RepoError::Expired { .. }) => return Err(e),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Check that this document may follow the last accepted (number, root): never a lower
    /// number, never another root under the same number.
    ///
    /// # Errors
    /// [`RepoError::Rollback`] or [`RepoError::Equivocation`].
    pub fn check_follows(&self, last: Option<(u64, Root)>, from: &str) -> Result<(), RepoError> {
        match last {
            Some((n, _)) if self.number < n => Err(RepoError::Rollback {
                from: from.to_owned(),
                number: self.number,
                accepted: n,
            }),
            Some((n, r)) if self.number == n && self.root != r => Err(RepoError::Equivocation {
                from: from.to_owned(),
                number: n,
                root: self.root,
                accepted: r,
            }),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn entry(p: &str, path: &str, data: &[u8]) -> Entry {
        Entry {
            product: p.into(),
            revision: "1".into(),
            path: path.into(),
            size: data.len() as u64,
            blake3: BlobId::of(data),
        }
    }

    #[test]
    fn manifest_is_canonical_whatever_the_order() {
        let a = Manifest::new(vec![entry("b", "x", b"1"), entry("a", "y/z", b"2")]).unwrap();
        let b = Manifest::new(vec![entry("a", "y/z", b"2"), entry("b", "x", b"1")]).unwrap();
        assert_eq!(a.canonical_bytes(), b.canonical_bytes());
        let root = a.root();
        assert_eq!(Manifest::parse(&a.canonical_bytes(), &root).unwrap(), a);
        let mut bytes = a.canonical_bytes();
        bytes[10] ^= 1;
        assert!(Manifest::parse(&bytes, &root).is_err());
    }

    #[test]
    fn manifest_rejects_escaping_paths_and_duplicates() {
        for p in ["../etc/passwd", "/abs", "a//b", "a/./b", "a\\b", ""] {
            assert!(Manifest::new(vec![entry("a", p, b"1")]).is_err(), "{p}");
        }
        assert!(Manifest::new(vec![entry("a", "x", b"1"), entry("a", "x", b"2")]).is_err());
    }

    #[test]
    fn manifest_rejects_sizes_beyond_the_schema_and_one_blob_with_two_sizes() {
        let mut big = entry("a", "x", b"1");
        big.size = u64::MAX;
        let err = Manifest::new(vec![big]).unwrap_err().to_string();
        assert!(
            err.contains("a/x") && err.contains("beyond the maximum"),
            "{err}"
        );
        let mut max = entry("a", "x", b"1");
        max.size = crate::store::MAX_SIZE;
        Manifest::new(vec![max]).unwrap();
        let mut other = entry("a", "y", b"1");
        other.size = 0;
        let err = Manifest::new(vec![entry("a", "x", b"1"), other])
            .unwrap_err()
            .to_string();
        assert!(err.contains("one content has one size"), "{err}");
    }

    #[test]
    fn published_signature_expiry_and_rollback() {
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        let other = SigningKey::generate(&mut rand::rngs::OsRng);
        let now = Utc::now();
        let root = Root(BlobId::of(b"m"));
        let p = Published::sign(root, 3, now + Duration::hours(1), &key);
        let p = Published::parse(&serde_json::to_vec(&p).unwrap(), "t").unwrap();
        p.verify(&key.verifying_key(), now, "t").unwrap();
        assert!(matches!(
            p.verify(&other.verifying_key(), now, "t"),
            Err(RepoError::BadSignature { .. })
        ));
        assert!(matches!(
            p.verify(&key.verifying_key(), now + Duration::hours(2), "t"),
            Err(RepoError::Expired { .. })
        ));
        let mut forged = p.clone();
        forged.number = 4;
        assert!(forged.verify(&key.verifying_key(), now, "t").is_err());
        assert!(p.check_follows(Some((2, root)), "t").is_ok());
        assert!(p.check_follows(Some((3, root)), "t").is_ok());
        assert!(matches!(
            p.check_follows(Some((4, root)), "t"),
            Err(RepoError::Rollback { .. })
        ));
        let other_root = Root(BlobId::of(b"n"));
        assert!(matches!(
            p.check_follows(Some((3, other_root)), "t"),
            Err(RepoError::Equivocation { .. })
        ));
    }
}

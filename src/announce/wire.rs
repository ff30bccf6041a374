//! The cluster protocol's datagram: what a member announces, signed with the cluster's
//! publisher key, and the checks a receiver makes before it believes one.
//!
//! Layout: `UHA1` (4 bytes), the announcement as JSON, the ed25519 signature of both
//! (64 bytes); at most [`MAX_LEN`] bytes, so it fits one unfragmented datagram on any
//! network (IPv6's minimum MTU is 1280).

use std::collections::HashMap;

use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::id::Root;

/// The first bytes of every announcement (format 1).
pub const MAGIC: &[u8; 4] = b"UHA1";
/// The longest datagram sent or taken.
pub const MAX_LEN: usize = 1200;
const SIG_LEN: usize = 64;
/// How far an announcement's time may be from the receiver's clock, either way: older is
/// stale (and could be a replay the receiver no longer remembers), newer is a clock that
/// is wrong or a forgery made for later.
pub const WINDOW_MS: i64 = 30_000;
/// How long a sender's last sequence number is remembered after its last accepted
/// datagram: by then anything it sent before is outside [`WINDOW_MS`] on any clock the
/// window accepts (a datagram's time is within the window when accepted; 3 windows on).
const REMEMBER_MS: i64 = 3 * WINDOW_MS;
/// Senders remembered at most (only validly signed datagrams add one).
const REMEMBER_MAX: usize = 4096;

/// A version as a member holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    /// Its number.
    pub n: u64,
    /// Its root.
    pub root: Root,
}

/// What a member announces (field names short: the datagram stays small).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announcement {
    /// The cluster's id (the database's `meta.cluster_id`).
    pub cluster: String,
    /// The fingerprint of the publisher key that signed it ([`key_fp`]).
    pub key: String,
    /// The member's node id.
    pub node: String,
    /// Its running process (random at start): sequence numbers count per process.
    pub sender: String,
    /// When that process started (unix ms): carried, not checked (the command line announces
    /// as a newer process of a serving node, so a newer one does not silence an older one).
    pub started_ms: i64,
    /// "publisher" (holds the publisher role), "standby" (another member of the top
    /// parent's cluster) or "child" (follows a parent).
    pub role: String,
    /// Its active version.
    pub active: Option<Version>,
    /// Its staged version.
    pub staged: Option<Version>,
    /// The shared settings revision in force on it.
    pub rev: i64,
    /// The digest of its `[same]` settings ([`crate::config::Config::same_digest`]).
    pub digest: String,
    /// Its updhub version.
    pub updhub: String,
    /// When it was sent (unix ms).
    pub at_ms: i64,
    /// Its number in the process's sequence, from 1.
    pub seq: u64,
}

/// Why a received datagram was dropped; each has its own counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Reject {
    /// Not an announcement at all (size, magic, JSON).
    #[error("not an updhub announcement (size, format or content)")]
    Malformed,
    /// Claims this cluster's key but its signature does not verify: forged or damaged.
    #[error("its signature does not verify with the cluster's publisher key")]
    BadSignature,
    /// Another cluster's (another key, or another cluster id under this key).
    #[error("it is another cluster's")]
    Foreign,
    /// Its time is outside [`WINDOW_MS`] of this node's clock.
    #[error("its time is more than 30 s from this node's clock")]
    Stale,
    /// Validly signed, but a field breaks its rule: a node id or sender process that is not
    /// an id ([`crate::id::ServerId`]'s rule), an unknown role, a version or digest that is
    /// not one. Only a holder of the cluster key makes one (a broken or hostile member): it
    /// is dropped before its text reaches a log or `status`.
    #[error("it is signed with the cluster's key but names a node, sender, role, digest or version that breaks the rules for them (a node id is 1 to 64 letters, digits, '.', '_' or '-'); a member's build or its key is at fault")]
    BadField,
    /// Its sequence number is not above the last one taken from that sender process.
    #[error("its sequence number is not above the last one taken from its sender process: a replay (or a duplicate, from the group and a peer list both)")]
    Replayed,
    /// This node's own (multicast loops back; a peer list may name this node).
    #[error("this node sent it")]
    Own,
    /// From a sender process not heard before while [`REMEMBER_MAX`] others heard lately
    /// are remembered (a member announcing under ever new process ids).
    #[error("its sender is new while {REMEMBER_MAX} other sender processes were heard in the last 90 s; a member may be restarting in a loop")]
    Crowded,
}

/// An announcement that cannot be sent.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// Longer than [`MAX_LEN`] once encoded.
    #[error("the announcement of node {node} takes {len} bytes, more than the {MAX_LEN} a datagram may; shorten server.id")]
    TooLong {
        /// The node.
        node: String,
        /// Its encoded length.
        len: usize,
    },
}

/// The fingerprint of a publisher key as announcements carry it (as `cluster check` shows).
pub fn key_fp(k: &VerifyingKey) -> String {
    crate::hub::fingerprint(k.as_bytes())
}

/// `a` as a signed datagram.
///
/// # Errors
/// It would be longer than [`MAX_LEN`].
pub fn encode(a: &Announcement, key: &SigningKey) -> Result<Vec<u8>, WireError> {
    let mut out = MAGIC.to_vec();
    serde_json::to_writer(&mut out, a).expect("an announcement serializes");
    let sig = key.sign(&out);
    out.extend_from_slice(&sig.to_bytes());
    if out.len() > MAX_LEN {
        return Err(WireError::TooLong {
            node: a.node.clone(),
            len: out.len(),
        });
    }
    Ok(out)
}

/// The announcement in `bytes` if it is one of `cluster`'s, signed with `key`.
///
/// # Errors
/// [`Reject::Malformed`], [`Reject::Foreign`] or [`Reject::BadSignature`].
pub fn decode(bytes: &[u8], key: &VerifyingKey, cluster: &str) -> Result<Announcement, Reject> {
    if bytes.len() > MAX_LEN || bytes.len() < MAGIC.len() + SIG_LEN || !bytes.starts_with(MAGIC) {
        return Err(Reject::Malformed);
    }
    let (signed, sig) = bytes.split_at(bytes.len() - SIG_LEN);
    let a: Announcement =
        serde_json::from_slice(&signed[MAGIC.len()..]).map_err(|_| Reject::Malformed)?;
    // Another cluster's key cannot be checked here: it is foreign, not forged.
    if a.key != key_fp(key) {
        return Err(Reject::Foreign);
    }
    let sig = ed25519_dalek::Signature::from_slice(sig).map_err(|_| Reject::BadSignature)?;
    key.verify(signed, &sig).map_err(|_| Reject::BadSignature)?;
    if a.cluster != cluster {
        return Err(Reject::Foreign);
    }
    if !fields_fit(&a) {
        return Err(Reject::BadField);
    }
    Ok(a)
}

/// The roles a member announces.
pub const ROLES: [&str; 3] = ["publisher", "standby", "child"];

/// Whether the strings of `a` (authentic) follow their rules: ids by the one id rule
/// ([`crate::id::is_label`], which [`crate::id::ServerId`] checks), the role one of
/// [`ROLES`], the updhub version a label that may carry semver's `+`. The node id and the
/// sender become keys of what a receiver remembers and appear in its log and `status`.
fn fields_fit(a: &Announcement) -> bool {
    use crate::id::is_label;
    let version = |v: &str| {
        let plain: String = v.chars().map(|c| if c == '+' { '-' } else { c }).collect();
        is_label(&plain)
    };
    is_label(&a.node)
        && is_label(&a.sender)
        && is_label(&a.digest)
        && ROLES.contains(&a.role.as_str())
        && version(&a.updhub)
}

/// What a receiver remembers of each sender process, to refuse what it took once already.
/// A process is remembered [`REMEMBER_MS`] after its last datagram taken; anything it sent
/// before is stale by then, so a replay is refused either way. A restarted node is a new
/// process: its sequence starts again at 1 and is taken.
#[derive(Debug, Default)]
pub struct Replay {
    /// (node, sender process) → (the last sequence number taken, when, unix ms).
    last: HashMap<(String, String), (u64, i64)>,
}

impl Replay {
    /// Whether `a` (authentic, see [`decode`]) is new to the receiver, process `me_sender`
    /// of node `me`, at `now_ms`; if so it is remembered. Another process of the receiver's
    /// own node (the command line after `config set`) is heard like a member.
    ///
    /// # Errors
    /// [`Reject::Own`], [`Reject::Stale`], [`Reject::Replayed`] or [`Reject::Crowded`].
    pub fn admit(
        &mut self,
        a: &Announcement,
        me: &str,
        me_sender: &str,
        now_ms: i64,
    ) -> Result<(), Reject> {
        if a.node == me && a.sender == me_sender {
            return Err(Reject::Own);
        }
        // abs_diff: any signed time, however wild, compares without overflowing.
        if a.at_ms.abs_diff(now_ms) > WINDOW_MS.unsigned_abs() {
            return Err(Reject::Stale);
        }
        let key = (a.node.clone(), a.sender.clone());
        match self.last.get(&key) {
            Some(&(seq, _)) if a.seq <= seq => return Err(Reject::Replayed),
            Some(_) => {}
            None if self.last.len() >= REMEMBER_MAX => {
                self.last.retain(|_, (_, at)| now_ms - *at < REMEMBER_MS);
                // Still full of senders heard lately: forgetting one would let its recent
                // datagrams be replayed, so the new sender waits (the protocol is only an
                // accelerator) and memory stays bounded whatever a member sends.
                if self.last.len() >= REMEMBER_MAX {
                    return Err(Reject::Crowded);
                }
            }
            None => {}
        }
        self.last.insert(key, (a.seq, now_ms));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(key: &SigningKey, at_ms: i64, seq: u64) -> Announcement {
        Announcement {
            cluster: "m1".into(),
            key: key_fp(&key.verifying_key()),
            node: "m2".into(),
            sender: "0123456789abcdef".into(),
            started_ms: at_ms - 5000,
            role: "publisher".into(),
            active: Some(Version {
                n: 7,
                root: Root(crate::id::BlobId::of(b"seven")),
            }),
            staged: Some(Version {
                n: 8,
                root: Root(crate::id::BlobId::of(b"eight")),
            }),
            rev: 3,
            digest: "0123456789abcdef".into(),
            updhub: env!("CARGO_PKG_VERSION").into(),
            at_ms,
            seq,
        }
    }

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    #[test]
    fn an_announcement_round_trips_and_is_small() {
        let k = key(1);
        let a = sample(&k, 1_000_000, 1);
        let bytes = encode(&a, &k).unwrap();
        assert!(bytes.len() < 600, "{} bytes", bytes.len());
        assert_eq!(decode(&bytes, &k.verifying_key(), "m1").unwrap(), a);
    }

    #[test]
    fn garbage_forgeries_and_other_clusters_are_told_apart() {
        let (k, other) = (key(1), key(2));
        let vk = k.verifying_key();
        let a = sample(&k, 1_000_000, 1);
        for junk in [
            &b""[..],
            b"UHA1",
            &[0u8; 100],
            &[b'U'; MAX_LEN + 1],
            b"UHA1{\"not\":\"it\"}0123456789012345678901234567890123456789012345678901234567890123",
        ] {
            assert_eq!(decode(junk, &vk, "m1"), Err(Reject::Malformed));
        }
        // Too long: refused when sent, and when received.
        let mut long = a.clone();
        long.node = "n".repeat(MAX_LEN);
        assert!(matches!(encode(&long, &k), Err(WireError::TooLong { .. })));
        // Signed with another key while naming this cluster's: forged.
        let mut bytes = encode(&a, &other).unwrap();
        assert_eq!(decode(&bytes, &vk, "m1"), Err(Reject::BadSignature));
        // Changed after signing: forged.
        bytes = encode(&a, &k).unwrap();
        let at = bytes.len() - 70;
        bytes[at] ^= 1;
        assert!(matches!(
            decode(&bytes, &vk, "m1"),
            Err(Reject::BadSignature | Reject::Malformed)
        ));
        let last = bytes.len() - 1;
        bytes = encode(&a, &k).unwrap();
        bytes[last] ^= 1;
        assert_eq!(decode(&bytes, &vk, "m1"), Err(Reject::BadSignature));
        // Another cluster's key, or this key with another cluster id.
        let theirs = sample(&other, 1_000_000, 1);
        assert_eq!(
            decode(&encode(&theirs, &other).unwrap(), &vk, "m1"),
            Err(Reject::Foreign)
        );
        assert_eq!(
            decode(&encode(&a, &k).unwrap(), &vk, "other-cluster"),
            Err(Reject::Foreign)
        );
    }

    #[test]
    fn validly_signed_announcements_with_bad_ids_are_refused_and_not_shown() {
        let k = key(1);
        let vk = k.verifying_key();
        let good = sample(&k, 1_000_000, 1);
        let cases: Vec<(&str, Announcement)> = vec![
            (
                "empty node",
                Announcement {
                    node: String::new(),
                    ..good.clone()
                },
            ),
            (
                "path node",
                Announcement {
                    node: "../x".into(),
                    ..good.clone()
                },
            ),
            (
                "NUL node",
                Announcement {
                    node: "a\0b".into(),
                    ..good.clone()
                },
            ),
            (
                "line feed node",
                Announcement {
                    node: "m2\n2026-12-08T00:00:00Z INFO forged".into(),
                    ..good.clone()
                },
            ),
            (
                "long node",
                Announcement {
                    node: "n".repeat(65),
                    ..good.clone()
                },
            ),
            (
                "line feed sender",
                Announcement {
                    sender: "a\nb".into(),
                    ..good.clone()
                },
            ),
            (
                "unknown role",
                Announcement {
                    role: "king".into(),
                    ..good.clone()
                },
            ),
            (
                "role with a line feed",
                Announcement {
                    role: "child\n".into(),
                    ..good.clone()
                },
            ),
            (
                "empty digest",
                Announcement {
                    digest: String::new(),
                    ..good.clone()
                },
            ),
            (
                "version with a line feed",
                Announcement {
                    updhub: "1.0\nx".into(),
                    ..good.clone()
                },
            ),
        ];
        for (what, a) in cases {
            let bytes = encode(&a, &k).unwrap();
            let got = decode(&bytes, &vk, "m1");
            assert_eq!(got, Err(Reject::BadField), "{what}");
            // What a receiver logs of it names none of its text.
            let said = Reject::BadField.to_string();
            assert!(!said.contains('\n') && !said.contains('\0') && !said.contains("../x"));
        }
        // A version with semver build metadata, and every role, are fine.
        for role in ROLES {
            let a = Announcement {
                role: role.into(),
                updhub: "1.2.3+abc".into(),
                ..good.clone()
            };
            assert_eq!(decode(&encode(&a, &k).unwrap(), &vk, "m1"), Ok(a));
        }
    }

    #[test]
    fn own_stale_and_replayed_announcements_are_refused_and_a_restart_is_not_a_replay() {
        let k = key(1);
        let now = 1_000_000;
        let mut r = Replay::default();
        let a = sample(&k, now, 1);
        assert_eq!(r.admit(&a, "m1", "me", now), Ok(()));
        assert_eq!(r.admit(&a, "m1", "me", now + 10), Err(Reject::Replayed));
        assert_eq!(r.admit(&a, "m2", &a.sender, now), Err(Reject::Own));
        let next = sample(&k, now + 1000, 2);
        assert_eq!(r.admit(&next, "m1", "me", now + 1000), Ok(()));
        assert_eq!(r.admit(&a, "m1", "me", now + 1000), Err(Reject::Replayed));
        for at in [now - WINDOW_MS - 1, now + WINDOW_MS + 1] {
            assert_eq!(
                r.admit(&sample(&k, at, 9), "m1", "me", now),
                Err(Reject::Stale)
            );
        }
        // The node restarts: a new process counts from 1 again and is taken; the old
        // process's datagrams are still refused when replayed.
        let mut restarted = sample(&k, now + 2000, 1);
        restarted.sender = "fedcba9876543210".into();
        restarted.started_ms = now + 1500;
        assert_eq!(r.admit(&restarted, "m1", "me", now + 2000), Ok(()));
        assert_eq!(
            r.admit(&next, "m1", "me", now + 2100),
            Err(Reject::Replayed)
        );
        // Another process of the receiver's own node is heard.
        let cli = Announcement {
            sender: "1111111111111111".into(),
            ..sample(&k, now, 1)
        };
        assert_eq!(r.admit(&cli, "m2", "me", now), Ok(()));
        // Times at the ends of the range (a member's clock or encoder gone wrong) are
        // stale, not an overflow that stops the receiver.
        for at_ms in [i64::MIN, i64::MIN + 1, i64::MAX] {
            let wild = Announcement {
                at_ms,
                ..sample(&k, now, 10)
            };
            assert_eq!(r.admit(&wild, "m1", "me", now), Err(Reject::Stale));
        }
        // By the time a process is forgotten, a replay of anything it sent is stale.
        assert_eq!(
            r.admit(&a, "m1", "me", now + REMEMBER_MS),
            Err(Reject::Stale)
        );
    }
    #[test]
    fn the_senders_remembered_are_bounded_and_none_is_forgotten_while_its_replays_are_fresh() {
        // A member that (by a bug) announces under a new process id in every datagram must
        // not grow the receiver's memory without bound within the replay window.
        let k = key(1);
        let now = 1_000_000;
        let mut r = Replay::default();
        let from = |i: usize, at: i64, seq: u64| Announcement {
            sender: format!("{i:016x}"),
            ..sample(&k, at, seq)
        };
        let mut refused = 0;
        for i in 0..REMEMBER_MAX + 500 {
            if r.admit(&from(i, now, 1), "m1", "me", now).is_err() {
                refused += 1;
            }
        }
        assert!(
            r.last.len() <= REMEMBER_MAX,
            "{} senders remembered",
            r.last.len()
        );
        assert_eq!(refused, 500);
        // None was forgotten to make room: each one's datagram is still a replay.
        assert_eq!(
            r.admit(&from(0, now, 1), "m1", "me", now + 1),
            Err(Reject::Replayed)
        );
        // A sender remembered goes on; a new one is taken once the others are forgotten.
        assert_eq!(
            r.admit(&from(0, now + 1000, 2), "m1", "me", now + 1000),
            Ok(())
        );
        let later = now + REMEMBER_MS;
        assert_eq!(
            r.admit(&from(REMEMBER_MAX + 1, later, 1), "m1", "me", later),
            Ok(())
        );
        assert!(r.last.len() <= 2, "{} senders remembered", r.last.len());
    }
}

//! The grants fetch with a change cursor: the wire form of `GET /v1/licenses/grants`, the
//! cursor, and the ledger's side of it, on the donor (a receiver's feed, the epoch) and on
//! the receiver (its cursor per donor). Why no change is ever skipped: `db::grant_feed`.
//!
//! The three forms of the request, for rolling upgrades in either direction:
//! - no `since`: a JSON array of every token the receiver has to act on, as before schema 9;
//! - `since=` (empty): the same tokens in an envelope, `{"donor", "cursor", "full": true,
//!   "tokens"}`: a receiver's first fetch, or one that lost its cursor;
//! - `since=CURSOR` (the `cursor` of the last answer): the envelope with the active grants
//!   changed since, and every revocation not yet acknowledged (resent until the receiver
//!   acknowledges it). A cursor of another epoch (the donor's database was restored or
//!   replaced, or the node restarted) or ahead of the ledger gets the full answer,
//!   `"full": true`: the receiver applies it as a first fetch. A malformed one is refused
//!   with 400, naming it and the fix: it is a client bug, and a silent full answer would
//!   hide it behind a slow fetch on every sync.
//!
//! A receiver keeps the cursor with the grants it applied (one transaction), so a restart
//! goes on from it; an old donor answers every form with the array, which the receiver
//! takes as a full answer without a cursor.

use serde::Deserialize;

use super::ledger::Ledger;
use super::LicenseError;
use crate::db;

/// A position in one receiver's feed, as the donor gives it: `EPOCH.NUMBER`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantCursor {
    /// The donor ledger's epoch (32 hex digits).
    pub epoch: String,
    /// The number of the receiver's latest change the answer holds.
    pub seq: i64,
}

impl std::fmt::Display for GrantCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.epoch, self.seq)
    }
}

impl GrantCursor {
    /// Read a cursor a receiver sent.
    ///
    /// # Errors
    /// Not of the form this server gives, with the fix.
    pub fn parse(s: &str) -> Result<GrantCursor, String> {
        let bad = || {
            format!(
                "since={s:?} is not a cursor this server gives (EPOCH.NUMBER: 32 hex digits, a dot, a number); send the `cursor` of the last answer as it came, or `since=` (empty) for every grant and a new cursor"
            )
        };
        let (epoch, seq) = s.split_once('.').ok_or_else(bad)?;
        if epoch.len() != 32 || !epoch.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let seq: i64 = seq.parse().map_err(|_| bad())?;
        if seq < 0 {
            return Err(bad());
        }
        Ok(GrantCursor {
            epoch: epoch.to_ascii_lowercase(),
            seq,
        })
    }
}

/// What a grants request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Since {
    /// No `since`: the array of every token, as before schema 9.
    Absent,
    /// `since=`: every token, in the envelope.
    Start,
    /// `since=CURSOR`: what changed after it.
    After(GrantCursor),
}

impl Since {
    /// The `since` of a request's query string.
    ///
    /// # Errors
    /// A malformed cursor (see [`GrantCursor::parse`]), or `since` given twice.
    pub fn of_query(query: Option<&str>) -> Result<Since, String> {
        let mut found = None;
        for pair in query.unwrap_or("").split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            if k != "since" {
                continue;
            }
            if found.is_some() {
                return Err(
                    "since is given twice; send it once, with the cursor of the last answer".into(),
                );
            }
            found = Some(if v.is_empty() {
                Since::Start
            } else {
                Since::After(GrantCursor::parse(v)?)
            });
        }
        Ok(found.unwrap_or(Since::Absent))
    }
}

/// A receiver's feed as the donor answers it, the tokens as stored (signed JSON).
#[derive(Debug, Clone)]
pub struct Feed {
    /// The donor ledger's id.
    pub donor: String,
    /// Where the answer leaves the receiver.
    pub cursor: GrantCursor,
    /// Every token the receiver has to act on (not only what changed).
    pub full: bool,
    /// The tokens.
    pub tokens: Vec<String>,
}

impl Feed {
    /// The envelope's JSON, the tokens sent as they are stored.
    pub fn to_json(&self) -> String {
        format!(
            "{{\"donor\":{},\"cursor\":\"{}\",\"full\":{},\"tokens\":[{}]}}",
            serde_json::Value::from(self.donor.as_str()),
            self.cursor,
            self.full,
            self.tokens.join(",")
        )
    }
}

/// The envelope as a receiver reads it.
#[derive(Debug, Deserialize)]
struct Envelope<T> {
    donor: String,
    cursor: String,
    tokens: Vec<T>,
}

/// A grants answer as the receiver reads it.
#[derive(Debug)]
pub struct Fetched<T> {
    /// The tokens.
    pub tokens: Vec<T>,
    /// The donor's id and the cursor to send next time; `None` from a donor older than
    /// schema 9, which answers every form with the array.
    pub cursor: Option<(String, String)>,
}

impl<T: serde::de::DeserializeOwned> Fetched<T> {
    /// Read an answer: the envelope, or an old donor's array.
    ///
    /// # Errors
    /// Neither.
    pub fn parse(body: &[u8]) -> Result<Fetched<T>, serde_json::Error> {
        let array = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
        if array {
            return Ok(Fetched {
                tokens: serde_json::from_slice(body)?,
                cursor: None,
            });
        }
        let e: Envelope<T> = serde_json::from_slice(body)?;
        Ok(Fetched {
            tokens: e.tokens,
            cursor: Some((e.donor, e.cursor)),
        })
    }
}

/// The grants URL under `base` with `since` (the stored cursor; `None`: from the start).
pub fn grants_url(base: &reqwest::Url, since: Option<&str>) -> reqwest::Url {
    let mut url = base
        .join("v1/licenses/grants")
        .expect("relative path joins");
    url.query_pairs_mut()
        .append_pair("since", since.unwrap_or(""));
    url
}

/// A cursor to keep on the receiver with the grants it applied.
#[derive(Debug, Clone)]
pub struct KeptCursor {
    /// The donor as this server reaches it.
    pub donor_url: String,
    /// The donor ledger's id.
    pub donor: String,
    /// The cursor.
    pub cursor: String,
}

impl Ledger {
    /// Donor side: `receiver`'s feed from `since` ([`Since::Absent`] reads as
    /// [`Since::Start`]); `None` when this ledger has no epoch yet
    /// ([`Ledger::ensure_feed_epoch`]).
    ///
    /// # Errors
    /// Database errors.
    pub fn grant_feed(&self, receiver: &str, since: &Since) -> Result<Option<Feed>, LicenseError> {
        let server = self.server.as_str();
        let feed = |read: db::grant_feed::FeedRead, full| Feed {
            donor: server.to_owned(),
            cursor: GrantCursor {
                epoch: read.epoch,
                seq: read.seq,
            },
            full,
            tokens: read.tokens,
        };
        self.read(|c| {
            if let Since::After(at) = since {
                match db::grant_feed::read(c, server, receiver, Some(at.seq))? {
                    // Another epoch, or a number this ledger never gave: a full answer.
                    Some(r) if r.epoch == at.epoch && at.seq <= r.seq => {
                        return Ok(Some(feed(r, false)))
                    }
                    Some(_) => {}
                    None => return Ok(None),
                }
            }
            Ok(db::grant_feed::read(c, server, receiver, None)?.map(|r| feed(r, true)))
        })
    }

    /// Donor side: draw a new feed epoch, so every cursor given before gets a full answer.
    /// Run when a node starts serving (a restored database needs a stopped node).
    ///
    /// # Errors
    /// Database errors.
    pub async fn new_feed_epoch(&self) -> Result<(), LicenseError> {
        self.draw_feed_epoch(true).await
    }

    /// Donor side: draw a feed epoch unless the ledger has one.
    ///
    /// # Errors
    /// Database errors.
    pub async fn ensure_feed_epoch(&self) -> Result<(), LicenseError> {
        self.draw_feed_epoch(false).await
    }

    async fn draw_feed_epoch(&self, replace: bool) -> Result<(), LicenseError> {
        let server = self.server.to_string();
        let epoch = hex::encode(rand::random::<[u8; 16]>());
        self.write(move |c, now| Ok(db::grant_feed::set_epoch(c, &server, &epoch, now, replace)?))
            .await
    }

    /// Receiver side: the cursor of the last answer from the donor at `donor_url`.
    ///
    /// # Errors
    /// Database errors.
    pub fn grant_cursor(&self, donor_url: &str) -> Result<Option<String>, LicenseError> {
        self.read(|c| Ok(db::grant_feed::cursor(c, self.server.as_str(), donor_url)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_as_written_and_a_malformed_one_is_named_with_the_fix() {
        let c = GrantCursor {
            epoch: "0123456789abcdef0123456789abcdef".into(),
            seq: 42,
        };
        assert_eq!(GrantCursor::parse(&c.to_string()), Ok(c.clone()));
        for bad in [
            "42",
            "xyz.1",
            "0123456789abcdef0123456789abcdef.-1",
            "0123.5",
        ] {
            let e = GrantCursor::parse(bad).unwrap_err();
            assert!(e.contains(bad) && e.contains("since=` (empty)"), "{e}");
        }
        assert_eq!(Since::of_query(None), Ok(Since::Absent));
        assert_eq!(Since::of_query(Some("x=1")), Ok(Since::Absent));
        assert_eq!(Since::of_query(Some("since=")), Ok(Since::Start));
        assert_eq!(
            Since::of_query(Some(&format!("since={c}"))),
            Ok(Since::After(c.clone()))
        );
        assert!(Since::of_query(Some("since=&since="))
            .unwrap_err()
            .contains("twice"));
    }

    #[test]
    fn a_receiver_reads_the_envelope_and_an_old_donors_array() {
        let feed = Feed {
            donor: "d\"1".into(),
            cursor: GrantCursor {
                epoch: "0123456789abcdef0123456789abcdef".into(),
                seq: 7,
            },
            full: false,
            tokens: vec!["{\"a\":1}".into(), "{\"a\":2}".into()],
        };
        let got: Fetched<serde_json::Value> = Fetched::parse(feed.to_json().as_bytes()).unwrap();
        assert_eq!(got.tokens.len(), 2);
        assert_eq!(
            got.cursor,
            Some((
                "d\"1".to_owned(),
                "0123456789abcdef0123456789abcdef.7".to_owned()
            ))
        );
        let old: Fetched<serde_json::Value> = Fetched::parse(b" [{\"a\":1}]").unwrap();
        assert_eq!((old.tokens.len(), old.cursor), (1, None));
    }
}

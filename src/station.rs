//! The station side of updates (`updhub station register|fetch`): what an agent does with a
//! server's station port. It fetches the server's active version with the station's own
//! credentials, verifies it (the publisher's signature, the manifest against its root, each
//! blob's blake3 after decompression: [`crate::child::fetch_version`], the code a child
//! syncs with) and writes its files as `checkout` writes them. A publisher key rotated since
//! the station was given it is followed through the rotations the server serves.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use ed25519_dalek::VerifyingKey;
use serde::Serialize;

use crate::child::{Parent, SyncError};
use crate::id::Root;
use crate::license::api::{StationAnswer, StationCredentials};
use crate::repo::{Published, RepoError};
use crate::store::{Store, StoreError};
use crate::zone::{Staging, ZoneError};

/// Errors of the station commands.
#[derive(Debug, thiserror::Error)]
pub enum StationError {
    /// An argument or a file the command reads is not usable.
    #[error("{what}: {why}")]
    Setup {
        /// The argument or file.
        what: String,
        /// What is wrong and the fix.
        why: String,
    },
    /// The server refused the station's credentials or registration.
    #[error("{url} refused station {station}: {why}")]
    Refused {
        /// The station port.
        url: String,
        /// The station.
        station: String,
        /// The server's reason.
        why: String,
    },
    /// The station port could not be reached, or broke the connection.
    #[error("station port {url}: {why}; check that the server serves its station port (server.station_listen) and is reachable from here; with --store, the next run takes up where this one stopped")]
    Unreachable {
        /// What was requested.
        url: String,
        /// Why it failed.
        why: String,
    },
    /// The station port stayed busy through every retry.
    #[error("station port {url} stayed busy ({why}) through {attempts} attempts over {waited:?}; try again later, or another server of the cluster")]
    Busy {
        /// What was requested.
        url: String,
        /// Its last answer.
        why: String,
        /// Attempts made.
        attempts: u32,
        /// Time spent waiting between them.
        waited: std::time::Duration,
    },
    /// The station port answered with another error.
    #[error("station port {url} answered {status}: {why}")]
    Status {
        /// What was requested.
        url: String,
        /// The status.
        status: u16,
        /// The server's reason.
        why: String,
    },
    /// The server's certificate is not one of the cluster CA given with --ca.
    #[error("station port {url}: {why}; --ca must be that server's cluster CA certificate (keys/ca.crt on any server of the cluster)")]
    Untrusted {
        /// The station port.
        url: String,
        /// The TLS error.
        why: String,
    },
    /// A manifest or blob did not verify, or could not be stored (the blobs that verified
    /// stay in the store given with --store, so the next run fetches only the rest).
    #[error(transparent)]
    Fetch(SyncError),
    /// The published document does not verify.
    #[error(transparent)]
    Repo(#[from] RepoError),
    /// The blob store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Writing the files.
    #[error(transparent)]
    Zone(#[from] ZoneError),
}

impl StationError {
    /// Whether trying again later may help.
    pub fn retryable(&self) -> bool {
        match self {
            StationError::Unreachable { .. } | StationError::Busy { .. } => true,
            StationError::Status { status, .. } => *status >= 500 || *status == 429,
            StationError::Fetch(e) => e.retryable(),
            _ => false,
        }
    }
}

/// How a station reaches a server's station port.
pub struct Connection {
    /// The station port, `https://HOST:PORT/`.
    pub url: String,
    /// The station's id and secret.
    pub creds: StationCredentials,
    /// The cluster CA certificate (PEM) the port's certificate is checked against.
    pub ca_pem: Vec<u8>,
}

/// What `station fetch` does besides connecting.
pub struct FetchOptions {
    /// The publisher keys the version must be signed with (one of them).
    pub publishers: Vec<VerifyingKey>,
    /// The folder to write the files in: new or empty.
    pub out: PathBuf,
    /// A blob store kept between runs (only what it lacks is fetched); none: a temporary
    /// one beside `out`, removed at the end.
    pub store: Option<PathBuf>,
    /// Blobs fetched at once.
    pub parallel: usize,
}

/// What `station fetch` did.
#[derive(Debug, Clone, Serialize)]
pub struct FetchReport {
    /// The station port.
    pub url: String,
    /// The version's number.
    pub number: u64,
    /// Its root.
    pub root: Root,
    /// Until when its signature holds.
    pub expires: DateTime<Utc>,
    /// Files written.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Blobs fetched (the others were in the store).
    pub blobs: u64,
    /// Bytes received for them (compressed, as stored).
    pub received: u64,
    /// Transfers resumed from a partial file.
    pub resumed: u64,
    /// Where the files are.
    pub out: PathBuf,
    /// The publisher keys in force when the keys given were rotated since (the server served
    /// the rotations, each signed by the key before it): give them to the station.
    pub rotated: Vec<String>,
    /// Wall time, from the first request to the last file written.
    pub seconds: f64,
}

impl std::fmt::Display for FetchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "version {} (root {}, signature valid until {}) from {}: {} files, {} bytes, written to {}; {} blob(s) fetched, {} bytes received{}, in {:.2} s",
            self.number,
            self.root,
            self.expires,
            self.url,
            self.files,
            self.bytes,
            self.out.display(),
            self.blobs,
            self.received,
            if self.resumed > 0 {
                format!(", {} transfer(s) resumed", self.resumed)
            } else {
                String::new()
            },
            self.seconds
        )?;
        if !self.rotated.is_empty() {
            write!(
                f,
                "\nthe publisher key was rotated since the keys given: followed the rotations the server serves; the keys in force are {} (update --publisher-key with them)",
                self.rotated.join(", ")
            )?;
        }
        Ok(())
    }
}

impl Connection {
    fn base(&self) -> Result<reqwest::Url, StationError> {
        let setup = |why: String| StationError::Setup {
            what: format!("station port {}", self.url),
            why,
        };
        if !self.url.starts_with("https://") {
            return Err(setup(
                "a station port is an https:// URL, e.g. https://10.0.0.1:8843 (the server's server.station_listen)".into(),
            ));
        }
        let with_slash = format!("{}/", self.url.trim_end_matches('/'));
        reqwest::Url::parse(&with_slash).map_err(|e| setup(e.to_string()))
    }

    fn client(&self) -> Result<reqwest::Client, StationError> {
        crate::peer::station_client(&self.ca_pem, &self.creds).map_err(|why| StationError::Setup {
            what: "--ca".into(),
            why,
        })
    }

    /// What a fetch's failure means for a station: a refusal of its credentials (400, 401)
    /// or registration (409) as [`StationError::Refused`] with the server's reason; the
    /// network, busy and certificate failures said of the station port.
    fn station_error(&self, e: SyncError) -> StationError {
        match e {
            SyncError::Status {
                url,
                status: 400 | 401 | 409,
                body,
            } => StationError::Refused {
                url,
                station: self.creds.station.clone(),
                why: reason(&body),
            },
            SyncError::Status { url, status, body } => StationError::Status {
                url,
                status,
                why: reason(&body),
            },
            SyncError::Network { url, why } => StationError::Unreachable { url, why },
            SyncError::Busy {
                url,
                why,
                attempts,
                waited,
            } => StationError::Busy {
                url,
                why,
                attempts,
                waited,
            },
            SyncError::ForeignCluster { url, why } => StationError::Untrusted { url, why },
            SyncError::Setup { url, why } => StationError::Setup { what: url, why },
            e => StationError::Fetch(e),
        }
    }
}

/// The `error` of a JSON error answer, or the answer as it is.
fn reason(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
        .unwrap_or_else(|| body.to_owned())
}

/// `station register`: register the station (idempotent: a registered one keeps its license).
///
/// # Errors
/// A bad URL or CA, the server's refusal, or network errors.
pub async fn register(conn: &Connection) -> Result<StationAnswer, StationError> {
    let base = conn.base()?;
    let url = base
        .join("v1/stations/register")
        .expect("relative path joins");
    let client = conn.client()?;
    let resp = client
        .post(url.clone())
        .json(&conn.creds)
        .send()
        .await
        .map_err(|e| conn.station_error(crate::child::network_error(&url, &e)))?;
    let status = resp.status();
    if !status.is_success() {
        let body = crate::peer::error_text(resp).await;
        return Err(conn.station_error(SyncError::Status {
            url: url.to_string(),
            status: status.as_u16(),
            body,
        }));
    }
    let body = crate::peer::read_body(resp, crate::peer::MAX_DOCUMENT)
        .await
        .map_err(|e| StationError::Unreachable {
            url: url.to_string(),
            why: format!("reading the answer: {e:?}"),
        })?;
    serde_json::from_slice(&body).map_err(|e| StationError::Setup {
        what: url.to_string(),
        why: format!("the answer is no registration ({e}); is this an updhub station port?"),
    })
}

/// `station fetch`: the server's active version, verified, written under `opts.out`.
///
/// # Errors
/// A bad argument, a target folder that is not new or empty, refused credentials, a version
/// that does not verify, network or write errors. Nothing is written to `opts.out` unless
/// every file verified.
pub async fn fetch(conn: &Connection, opts: FetchOptions) -> Result<FetchReport, StationError> {
    let started = std::time::Instant::now();
    let base = conn.base()?;
    // The target is checked before a byte is fetched.
    let staging = Staging::new(&opts.out)?;
    let from = Parent::station(base.clone(), conn.client()?);
    let (doc, _) = from
        .bytes(&from.api("published"), crate::peer::MAX_DOCUMENT)
        .await
        .map_err(|e| conn.station_error(e))?;
    let p = Published::parse(&doc, base.as_str())?;
    let publishers = match p.verify_any(&opts.publishers, Utc::now(), base.as_str()) {
        // The publisher may have rotated its key since the station was given it: follow the
        // rotations the server serves, each signed by the key before it.
        Err(RepoError::BadSignature { .. }) => {
            let (body, _) = from
                .bytes(&from.api("rotations"), crate::peer::MAX_DOCUMENT)
                .await
                .map_err(|e| conn.station_error(e))?;
            let bad = |why: String| StationError::Setup {
                what: format!("the publisher key rotations {base} serves"),
                why,
            };
            let chain: Vec<crate::keys::Rotation> = serde_json::from_slice(&body)
                .map_err(|e| bad(format!("they do not parse ({e})")))?;
            let (keys, _) = crate::keys::follow_rotations(&opts.publishers, &chain).map_err(bad)?;
            p.verify_any(&keys, Utc::now(), base.as_str())?;
            keys
        }
        other => other.map(|()| opts.publishers.clone())?,
    };
    let rotated: Vec<String> = if publishers == opts.publishers {
        Vec::new()
    } else {
        publishers
            .iter()
            .map(|k| hex::encode(k.as_bytes()))
            .collect()
    };
    let temp;
    let store_dir = match &opts.store {
        Some(d) => d.clone(),
        None => {
            temp = tempfile::Builder::new()
                .prefix(".updhub-station-blobs-")
                .tempdir_in(beside(staging.path()))
                .map_err(|e| StationError::Setup {
                    what: format!("a temporary blob store beside {}", opts.out.display()),
                    why: format!("{e}; give a writable --out or a --store folder"),
                })?;
            temp.path().to_owned()
        }
    };
    let store = Store::open(store_dir)?;
    let (manifest, fetched) =
        crate::child::fetch_version(Some(&from), &store, p.root, opts.parallel)
            .await
            .map_err(|e| conn.station_error(e))?;
    let bytes = manifest.total_size();
    let files =
        tokio::task::spawn_blocking(move || crate::zone::checkout_into(&store, &manifest, staging))
            .await
            .map_err(|e| StationError::Setup {
                what: opts.out.display().to_string(),
                why: e.to_string(),
            })??;
    Ok(FetchReport {
        url: base.to_string(),
        number: p.number,
        root: p.root,
        expires: p.expires,
        files,
        bytes,
        blobs: fetched.blobs,
        received: fetched.bytes,
        resumed: fetched.resumed,
        out: opts.out,
        rotated,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Publisher keys as `updhub keys publishers` prints them: 64 hex digits each, separated by
/// white space (one a line).
///
/// # Errors
/// A word that is no key, or no key at all, said with the fix.
pub fn parse_publishers(text: &str) -> Result<Vec<VerifyingKey>, String> {
    let keys = text
        .split_whitespace()
        .map(crate::keys::verifying_key_hex)
        .collect::<Result<Vec<_>, _>>()?;
    if keys.is_empty() {
        return Err("holds no key; write in it what `updhub keys publishers` prints on a server of the cluster".into());
    }
    Ok(keys)
}

/// The folder a path is in ("." for a bare name).
fn beside(p: &Path) -> PathBuf {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_publishers;

    #[test]
    fn publisher_keys_are_read_one_a_line_and_a_bad_one_is_named() {
        let a = hex::encode(
            ed25519_dalek::SigningKey::from_bytes(&[1; 32])
                .verifying_key()
                .as_bytes(),
        );
        let b = hex::encode(
            ed25519_dalek::SigningKey::from_bytes(&[2; 32])
                .verifying_key()
                .as_bytes(),
        );
        assert_eq!(parse_publishers(&format!("{a}\n{b}\n")).unwrap().len(), 2);
        assert_eq!(parse_publishers(&format!("  {a}  ")).unwrap().len(), 1);
        let e = parse_publishers(&format!("{a}\nnot-a-key\n")).unwrap_err();
        assert!(e.contains("not-a-key"), "{e}");
        let e = parse_publishers("\n").unwrap_err();
        assert!(e.contains("updhub keys publishers"), "{e}");
    }
}

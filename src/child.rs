//! Child sync: follow a parent's published version. Check the signature, refuse rollbacks and
//! expired versions, fetch the manifest and only the blobs this node lacks (several in
//! flight, decompressed and hashed while they stream in, resumed with Range after a broken
//! transfer), then switch the current version in one transaction once everything verified.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Utc;
use futures_util::{stream, StreamExt, TryStreamExt};
use reqwest::{header, StatusCode};
use serde::Serialize;

use crate::db::DbError;
use crate::hub::Hub;
use crate::id::{BlobId, Root};
use crate::repo::{Manifest, Published, RepoError};
use crate::store::{Store, StoreError};

/// How long one read from the parent may stall before the transfer is given up (and resumed
/// by the next attempt).
const STALL: Duration = Duration::from_secs(30);

/// Errors of a sync.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The parent could not be reached or broke the connection.
    #[error("parent {url}: {why}; check the parent is running and reachable; the next sync resumes where this one stopped")]
    Network {
        /// What was requested.
        url: String,
        /// Why it failed.
        why: String,
    },
    /// The parent answered with an error.
    #[error("parent {url} answered {status}: {body}")]
    Status {
        /// What was requested.
        url: String,
        /// The status.
        status: u16,
        /// The message.
        body: String,
    },
    /// The published version or manifest was refused.
    #[error(transparent)]
    Repo(#[from] RepoError),
    /// A blob failed to verify or could not be stored.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// This node is already above the parent in the hierarchy.
    #[error("parent {url} syncs through this node ({id}) (its chain is {chain}); a loop would form; point upstream.parent elsewhere")]
    Loop {
        /// The parent URL.
        url: String,
        /// Our id.
        id: String,
        /// The parent's chain.
        chain: String,
    },
    /// The parent and this node do not trust each other's certificates: they were made with
    /// different cluster keys.
    #[error("parent {url}: {why}; this node and the parent are of different trust domains: enroll this node by link (`updhub link invite` on the parent, then `updhub link join PARENT_URL TOKEN` here; so does a linked node that did not sync during its parent's CA rotation, `keys rotate-ca`, before the overlap ended); only a member of the parent's own cluster shares its keys (`updhub keys export --to DIR` there, `updhub init --keys-from DIR` here)")]
    ForeignCluster {
        /// The parent URL.
        url: String,
        /// Which side refused, and the TLS error.
        why: String,
    },
    /// A key rotation served by the parent does not verify.
    #[error("parent {url}: {why}; this node keeps trusting the publisher keys it had: tell the parent's admin")]
    Rotation {
        /// The parent URL.
        url: String,
        /// What is wrong.
        why: String,
    },
    /// The parent refused this node's link certificate: the link was removed there.
    #[error("parent {url} refused this node's certificate: the parent's admin removed this node's link (`updhub link remove`); ask for a new token (`updhub link invite` there) and enroll again with `updhub link join URL TOKEN`")]
    LinkRemoved {
        /// The parent URL.
        url: String,
    },
    /// The parent stayed busy through every retry.
    #[error("parent {url} stayed busy ({why}) through {attempts} attempts over {waited:?}; it serves at most server.max_connections at once: the next sync tries again, or give the parent more server.max_connections")]
    Busy {
        /// What was requested.
        url: String,
        /// Its last answer.
        why: String,
        /// Attempts made.
        attempts: u32,
        /// Time spent waiting between them.
        waited: Duration,
    },
    /// A bad parent URL or client setup.
    #[error("parent {url}: {why}")]
    Setup {
        /// The URL.
        url: String,
        /// Why.
        why: String,
    },
}

impl SyncError {
    /// Whether trying again later may help.
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            SyncError::Network { .. } | SyncError::Store(_) | SyncError::Busy { .. }
        ) || matches!(self, SyncError::Status { status, .. } if *status >= 500 || *status == 429)
    }
}

/// What one sync did.
#[derive(Debug, Clone, Serialize)]
pub struct SyncReport {
    /// The version now current.
    pub number: u64,
    /// Its root.
    pub root: Root,
    /// Whether the current version changed.
    pub changed: bool,
    /// Whether blobs of the current version were missing here (damaged ones are
    /// quarantined) and were fetched again.
    pub repaired: bool,
    /// Blobs fetched.
    pub blobs: u64,
    /// Stored (compressed) bytes received for them.
    pub bytes: u64,
    /// Blobs whose transfer resumed a broken one.
    pub resumed: u64,
    /// License grants for this server that the parent holds (fetched on every sync).
    pub grants: usize,
    /// The version this node holds staged beside its current one (the parent staged it).
    pub staged: Option<u64>,
    /// Why this node could not stage the version its parent staged (it keeps its current
    /// version; the parent names it).
    pub stage_error: Option<String>,
    /// Wall time.
    pub seconds: f64,
    /// The (active, staged) version numbers the parent served (staged 0: none): what the
    /// next long-poll says it knows.
    #[serde(skip)]
    pub seen: (u64, u64),
    /// Whether this sync staged a version this node did not hold staged before.
    #[serde(skip)]
    fresh_stage: bool,
}

impl SyncReport {
    /// A report on `p` before anything was fetched.
    fn nothing_yet(p: &Published) -> SyncReport {
        SyncReport {
            number: p.number,
            root: p.root,
            changed: false,
            repaired: false,
            blobs: 0,
            bytes: 0,
            resumed: 0,
            grants: 0,
            staged: None,
            stage_error: None,
            seconds: 0.0,
            seen: (p.number, 0),
            fresh_stage: false,
        }
    }
}

impl std::fmt::Display for SyncReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} version {} (root {}): fetched {} blobs, {} bytes ({} resumed), {} license grants, in {:.2} s",
            if self.changed {
                "switched to"
            } else if self.repaired {
                "repaired"
            } else {
                "already at"
            },
            self.number,
            self.root,
            self.blobs,
            self.bytes,
            self.resumed,
            self.grants,
            self.seconds
        )?;
        if let Some(n) = self.staged {
            write!(
                f,
                "; version {n} staged beside it, switched to when the parent activates it"
            )?;
        }
        if let Some(e) = &self.stage_error {
            write!(f, "; could not stage the parent's staged version: {e}")?;
        }
        Ok(())
    }
}

/// Where a version is fetched from: a parent or member (the interserver routes), or a
/// server's station port (the same documents under `/v1/station/`, see
/// [`crate::station`]).
pub(crate) struct Parent {
    base: reqwest::Url,
    client: reqwest::Client,
    /// The path the version routes (`published`, `versions/ROOT`, `blobs/HASH`) are under.
    api: &'static str,
}

impl Parent {
    pub(crate) fn new(hub: &Hub, url: &str) -> Result<Parent, SyncError> {
        let setup = |why: String| SyncError::Setup {
            url: url.to_owned(),
            why,
        };
        if !url.starts_with("https://") {
            return Err(setup(
                "a parent is an https:// URL, e.g. https://10.0.0.1:8443".into(),
            ));
        }
        let base = reqwest::Url::parse(url).map_err(|e| setup(e.to_string()))?;
        // One client per node, reused by every sync: its idle connections carry over.
        let client = hub.client().map_err(setup)?;
        Ok(Parent {
            base,
            client,
            api: "v1/",
        })
    }

    /// A server's station port at `base`, reached with `client` (which carries the
    /// station's credentials).
    pub(crate) fn station(base: reqwest::Url, client: reqwest::Client) -> Parent {
        Parent {
            base,
            client,
            api: "v1/station/",
        }
    }

    /// The path of a version route (`published`, `versions/ROOT`, `blobs/HASH`).
    pub(crate) fn api(&self, route: &str) -> String {
        format!("{}{route}", self.api)
    }

    /// Another member of this node's cluster at `addr` (HOST:PORT), reached there while its
    /// certificate is checked against the cluster's name, which all members share.
    pub(crate) async fn member(hub: &Hub, addr: &str) -> Result<Parent, SyncError> {
        let setup = |why: String| SyncError::Setup {
            url: addr.to_owned(),
            why,
        };
        let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host(addr)
            .await
            .map_err(|e| setup(format!("cannot resolve the member's address: {e}")))?
            .collect();
        let port = addrs
            .first()
            .map(std::net::SocketAddr::port)
            .ok_or_else(|| setup("the member's address resolves to nothing".into()))?;
        let name = hub.config.server.name.clone();
        let (base, client) = if name.parse::<std::net::IpAddr>().is_ok() {
            (
                format!("https://{addr}/"),
                crate::peer::client(&hub.keys).map_err(setup)?,
            )
        } else {
            (
                format!("https://{name}:{port}/"),
                crate::peer::member_client(&hub.keys, &name, &addrs).map_err(setup)?,
            )
        };
        let base = reqwest::Url::parse(&base).map_err(|e| setup(e.to_string()))?;
        Ok(Parent {
            base,
            client,
            api: "v1/",
        })
    }

    fn url(&self, path: &str) -> reqwest::Url {
        self.base.join(path).expect("relative API paths join")
    }

    /// GET `path` (from byte `range_from`), waiting and trying again while the parent is busy
    /// (503 or 429, after its Retry-After) or unreachable, with exponential backoff and jitter,
    /// for up to [`BUSY_BUDGET`] (busy) or [`NETWORK_BUDGET`] (unreachable).
    async fn get(&self, path: &str, range_from: u64) -> Result<reqwest::Response, SyncError> {
        let url = self.url(path);
        let mut backoff = Backoff::new();
        loop {
            let mut req = self.client.get(url.clone());
            if range_from > 0 {
                req = req.header(header::RANGE, format!("bytes={range_from}-"));
            }
            let err = match req.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    if status.is_success() || status == StatusCode::RANGE_NOT_SATISFIABLE {
                        return Ok(resp);
                    }
                    let hint = retry_after(resp.headers());
                    let body = crate::peer::error_text(resp).await;
                    if status != StatusCode::SERVICE_UNAVAILABLE
                        && status != StatusCode::TOO_MANY_REQUESTS
                    {
                        return Err(SyncError::Status {
                            url: url.to_string(),
                            status: status.as_u16(),
                            body,
                        });
                    }
                    let why = format!("answered {}: {body}", status.as_u16());
                    match backoff.wait(hint, BUSY_BUDGET).await {
                        Ok(()) => continue,
                        Err((attempts, waited)) => SyncError::Busy {
                            url: url.to_string(),
                            why,
                            attempts,
                            waited,
                        },
                    }
                }
                Err(e) => match network_error(&url, &e) {
                    e @ SyncError::Network { .. } => match backoff.wait(None, NETWORK_BUDGET).await
                    {
                        Ok(()) => continue,
                        Err(_) => e,
                    },
                    e => e,
                },
            };
            return Err(err);
        }
    }

    /// GET a document of at most `limit` bytes (see [`crate::peer`]).
    pub(crate) async fn bytes(
        &self,
        path: &str,
        limit: u64,
    ) -> Result<(Bytes, reqwest::header::HeaderMap), SyncError> {
        let resp = self.get(path, 0).await?;
        let headers = resp.headers().clone();
        let url = self.url(path).to_string();
        let b = crate::peer::read_body(resp, limit)
            .await
            .map_err(|e| match e {
                crate::peer::ReadError::TooLarge => SyncError::Setup {
                    url,
                    why: format!(
                        "the answer is longer than the {limit} bytes such a document may have; this is no well-behaved updhub parent: check upstream.parent"
                    ),
                },
                crate::peer::ReadError::Network(why) => SyncError::Network { url, why },
            })?;
        Ok((Bytes::from(b), headers))
    }
}

/// How long one request keeps trying while the parent answers that it is busy (503, 429):
/// long enough for a parent serving hundreds of children to get to this one.
const BUSY_BUDGET: Duration = Duration::from_secs(120);

/// How long one request keeps trying while the parent cannot be reached (a connection
/// refused, reset or cut): a blip is bridged, a parent that is down is reported soon (the
/// follow loop tries again later).
const NETWORK_BUDGET: Duration = Duration::from_secs(3);

/// The first wait after a failed attempt; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(250);

/// The longest wait between two attempts (a parent's Retry-After is capped to it too).
const MAX_BACKOFF: Duration = Duration::from_secs(8);

/// Exponential backoff with jitter (so children told to wait do not all come back at once),
/// within a time budget.
struct Backoff {
    next: Duration,
    waited: Duration,
    attempts: u32,
}

impl Backoff {
    fn new() -> Backoff {
        Backoff {
            next: FIRST_BACKOFF,
            waited: Duration::ZERO,
            attempts: 1,
        }
    }

    /// Wait before the next attempt (at least `hint`, the parent's Retry-After); `Err` with
    /// (attempts, time waited) once `budget` is spent.
    async fn wait(
        &mut self,
        hint: Option<Duration>,
        budget: Duration,
    ) -> Result<(), (u32, Duration)> {
        if self.waited >= budget {
            return Err((self.attempts, self.waited));
        }
        let base = hint
            .unwrap_or(Duration::ZERO)
            .max(self.next)
            .min(MAX_BACKOFF);
        let pause = base.mul_f64(rand::Rng::gen_range(&mut rand::thread_rng(), 0.5..1.5));
        tokio::time::sleep(pause).await;
        self.waited += pause;
        self.attempts += 1;
        self.next = (self.next * 2).min(MAX_BACKOFF);
        Ok(())
    }
}

/// A Retry-After in seconds (the HTTP-date form is not used by updhub).
fn retry_after(h: &reqwest::header::HeaderMap) -> Option<Duration> {
    h.get(header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
        .map(Duration::from_secs)
}

/// An error with all its causes, `a: b: c` (reqwest hides the TLS cause otherwise), and, when
/// the cause is a certificate of another cluster, what that means and what to do.
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    if let Some(why) = foreign_cluster(e) {
        s.push_str(" (");
        s.push_str(&why);
        s.push_str("; the two nodes are of different trust domains: a node of another domain enrolls by link (`updhub link invite` there, `updhub link join URL TOKEN` here); only members of one cluster share keys (`updhub keys export` / `init --keys-from`))");
    }
    s
}

/// The TLS error in an error's chain, if any. rustls's error travels inside an `io::Error`,
/// itself perhaps inside another, whose `source()` skips it: look inside each.
fn tls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut cur = Some(e);
    while let Some(c) = cur {
        let mut inner: &(dyn std::error::Error + 'static) = c;
        loop {
            if let Some(t) = inner.downcast_ref::<rustls::Error>() {
                return Some(t);
            }
            match inner
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
            {
                Some(next) => inner = next,
                None => break,
            }
        }
        cur = c.source();
    }
    None
}

/// Whether an error means the peer and this node are of different clusters: this node refused
/// the peer's certificate as not issued by its cluster CA, or the peer refused this node's.
fn foreign_cluster(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    use rustls::{AlertDescription as A, CertificateError as C, Error as E};
    match tls_error(e)? {
        E::InvalidCertificate(c @ (C::BadSignature | C::UnknownIssuer)) => Some(format!(
            "its certificate is not issued by this node's cluster CA ({c:?})"
        )),
        E::AlertReceived(a @ (A::UnknownCA | A::BadCertificate | A::DecryptError)) => {
            Some(format!(
                "it refused this node's certificate as not issued by its cluster CA (alert {a:?})"
            ))
        }
        _ => None,
    }
}

/// A failed request to the parent as a [`SyncError`]: a certificate of another cluster is
/// named as such, anything else is a network error worth retrying.
pub(crate) fn network_error(url: &reqwest::Url, e: &reqwest::Error) -> SyncError {
    if matches!(
        tls_error(e),
        Some(rustls::Error::AlertReceived(
            rustls::AlertDescription::CertificateRevoked
        ))
    ) {
        return SyncError::LinkRemoved {
            url: url.to_string(),
        };
    }
    match foreign_cluster(e) {
        Some(why) => SyncError::ForeignCluster {
            url: url.to_string(),
            why,
        },
        None => SyncError::Network {
            url: url.to_string(),
            why: error_chain(e),
        },
    }
}

/// Fetch one blob, resuming a partial one with Range; returns (bytes received, resumed).
async fn fetch_blob(
    parent: &Parent,
    store: &Store,
    id: BlobId,
    size: u64,
) -> Result<(u64, bool), SyncError> {
    if store.hold(&id) {
        // Another transfer (a concurrent sync) stored it meanwhile.
        return Ok((0, false));
    }
    let what = format!("blob {id} from {}", parent.base);
    let st = store.clone();
    let inc = tokio::task::spawn_blocking(move || st.receive(id, size, what))
        .await
        .map_err(|e| SyncError::Setup {
            url: parent.base.to_string(),
            why: e.to_string(),
        })??;
    let offset = inc.offset();
    let path = parent.api(&format!("blobs/{id}"));
    let url = parent.url(&path).to_string();
    let resp = parent.get(&path, offset).await?;
    let mut inc = match resp.status() {
        StatusCode::PARTIAL_CONTENT => inc,
        // A range past the end: what we hold is the whole stored blob, or garbage.
        StatusCode::RANGE_NOT_SATISFIABLE => {
            tokio::task::spawn_blocking(move || inc.finish())
                .await
                .map_err(|e| SyncError::Setup {
                    url: url.clone(),
                    why: e.to_string(),
                })??;
            return Ok((0, true));
        }
        _ if offset > 0 => tokio::task::spawn_blocking(move || inc.reset())
            .await
            .map_err(|e| SyncError::Setup {
                url: url.clone(),
                why: e.to_string(),
            })??,
        _ => inc,
    };
    // Decompress and hash on a blocking thread while the network task keeps reading.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    let writer = tokio::task::spawn_blocking(move || {
        while let Some(chunk) = rx.blocking_recv() {
            inc.write(&chunk)?;
        }
        Ok::<_, StoreError>(inc)
    });
    let mut body = resp.bytes_stream();
    let mut received = 0u64;
    let net = loop {
        match tokio::time::timeout(STALL, body.next()).await {
            Ok(Some(Ok(chunk))) => {
                received += chunk.len() as u64;
                if tx.send(chunk).await.is_err() {
                    break Ok(()); // the writer failed; its error is reported below
                }
            }
            Ok(None) => break Ok(()),
            Ok(Some(Err(e))) => break Err(error_chain(&e)),
            Err(_) => break Err(format!("no data for {STALL:?}")),
        }
    };
    drop(tx);
    let inc = writer.await.map_err(|e| SyncError::Setup {
        url: url.clone(),
        why: e.to_string(),
    })??;
    if let Err(why) = net {
        // Keep the partial file: the next attempt resumes from here.
        return Err(SyncError::Network { url, why });
    }
    tokio::task::spawn_blocking(move || inc.finish())
        .await
        .map_err(|e| SyncError::Setup {
            url: url.clone(),
            why: e.to_string(),
        })??;
    Ok((received, offset > 0))
}

/// Fetch one blob; a transfer cut midway is resumed from where it stopped, after a pause,
/// a few times before the sync gives up on it.
async fn fetch_blob_resuming(
    parent: &Parent,
    store: &Store,
    id: BlobId,
    size: u64,
) -> Result<(u64, bool), SyncError> {
    let mut backoff = Backoff::new();
    loop {
        match fetch_blob(parent, store, id, size).await {
            Err(e @ SyncError::Network { .. }) => {
                if backoff.wait(None, NETWORK_BUDGET).await.is_err() {
                    return Err(e);
                }
                // What arrived before the cut stays in the partial file: the next attempt
                // asks for the rest with Range.
                tracing::info!("resuming after: {e}");
            }
            Err(e @ SyncError::Store(StoreError::Busy(_))) => {
                if backoff.wait(None, NETWORK_BUDGET).await.is_err() {
                    return Err(e);
                }
            }
            Err(
                e @ SyncError::Store(
                    StoreError::HashMismatch { .. }
                    | StoreError::SizeMismatch { .. }
                    | StoreError::TooLong { .. },
                ),
            ) => {
                // What the parent sent is not the blob: its copy may have rotted. Tell it,
                // so it rechecks the blob at once and takes it out of service.
                let url = parent
                    .base
                    .join(&parent.api(&format!("blobs/{id}/damaged")))
                    .expect("relative path joins");
                if let Err(report) = parent.client.post(url).send().await {
                    tracing::warn!(
                        "could not tell the parent that blob {id} arrived damaged: {report}"
                    );
                }
                return Err(e);
            }
            r => return r,
        }
    }
}

/// Sync once from `parent_url`: on success this node holds the parent's published version.
///
/// # Errors
/// Network errors, a refused version (bad signature, expired, rollback), a blob that does not
/// verify, or database errors. The current version only changes when everything verified.
pub async fn sync_once(hub: &Arc<Hub>, parent_url: &str) -> Result<SyncReport, SyncError> {
    let first = sync_round(hub, parent_url).await?;
    if !first.fresh_stage {
        return Ok(first);
    }
    // This node just reported a staged version: if that completed what the parent waited
    // for, it is active there now, and this node switches at once (its blobs are here).
    let mut again = sync_round(hub, parent_url).await?;
    again.blobs += first.blobs;
    again.bytes += first.bytes;
    again.resumed += first.resumed;
    again.seconds += first.seconds;
    Ok(again)
}

/// One round of [`sync_once`]: take the parent's active version, stage its staged one,
/// exchange grants and report.
async fn sync_round(hub: &Arc<Hub>, parent_url: &str) -> Result<SyncReport, SyncError> {
    let parent = Parent::new(hub, parent_url)?;
    let inner = sync_inner(hub, &parent, parent_url).await;
    let (mut result, held, stage_failed) = match inner {
        Ok((r, p, chain, failed)) => (Ok(r), Some((p, chain)), failed),
        // A parent that answered but whose version was refused (e.g. a parent restored from
        // a backup older than what this node holds) still learns what this node holds: it
        // publishes past that number.
        Err(e) if !matches!(e, SyncError::Network { .. }) => {
            let held = blocking(hub, |h| h.db.published()).await.ok().flatten();
            let chain = hub.chain.lock().unwrap_or_else(|p| p.into_inner()).clone();
            (Err(e), held.map(|p| (p, chain)), None)
        }
        Err(e) => (Err(e), None, None),
    };
    let parent = follow_parent_ca(hub, parent, parent_url).await;
    let err = match &result {
        Err(e) => Some(e.to_string()),
        Ok(r) => r
            .stage_error
            .as_ref()
            .map(|e| format!("could not stage {e}; this node keeps its version")),
    };
    let url = parent_url.to_owned();
    blocking(hub, move |h| {
        h.db.record_sync(&url, err.as_deref(), Utc::now())
    })
    .await?;
    // Grants travel with every sync, whatever became of the repository: new ones, renewals,
    // revocations, pending returns.
    let unreachable = |e: &SyncError| {
        matches!(
            e,
            SyncError::Network { .. }
                | SyncError::LinkRemoved { .. }
                | SyncError::ForeignCluster { .. }
        )
    };
    if !result.as_ref().err().is_some_and(unreachable)
        && !stage_failed.as_ref().is_some_and(unreachable)
    {
        match crate::license::api::refresh_from_parent(
            &hub.ledger,
            &hub.keys.donor(),
            &parent.client,
            &parent.base,
        )
        .await
        {
            Ok(n) => {
                if let Ok(r) = result.as_mut() {
                    r.grants = n;
                }
            }
            Err(e) => tracing::warn!("license grants from {parent_url}: {e}"),
        }
        // Nothing is offered up: a child link carries licenses down only (a peer link
        // carries them both ways, in `link::exchange_licenses`).
    }
    // The heartbeat last, so what it says of the grants already takes this sync's
    // revocations and renewals into account (the donor reconciles with it).
    if let Some((p, chain)) = held {
        let why = result.as_ref().ok().and_then(|r| r.stage_error.clone());
        send_report(hub, &parent, Some(&p), &chain, why.as_deref()).await;
    }
    // The parent knows why; the caller (and `sync --once`'s exit status) too.
    match stage_failed {
        Some(e) => Err(e),
        None => result,
    }
}

/// When the parent's answers name another CA than this node last took in, follow it (see
/// [`crate::link::follow_ca`]). A new link certificate or CA means a new client for the rest
/// of the sync. A failure is logged and the sync goes on with what this node trusts.
async fn follow_parent_ca(hub: &Arc<Hub>, parent: Parent, url: &str) -> Parent {
    let (named, taken) = hub
        .ca_seen
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let Some(named) = named else { return parent };
    if hub.keys.upstream.is_none() || taken.as_ref() == Some(&named) {
        return parent;
    }
    match crate::link::follow_ca(hub, &parent.client, &parent.base).await {
        Ok(done) => {
            hub.ca_seen.lock().unwrap_or_else(|e| e.into_inner()).1 = Some(named);
            if done.changed() {
                return Parent::new(hub, url).unwrap_or(parent);
            }
        }
        Err(e) => tracing::warn!("{e}"),
    }
    parent
}

/// Run a database or store call on the blocking pool: a commit's fsync must not hold a tokio
/// worker that streams blobs to this node's own children.
async fn blocking<T: Send + 'static, E: Send + 'static>(
    hub: &Arc<Hub>,
    f: impl FnOnce(&Hub) -> Result<T, E> + Send + 'static,
) -> Result<T, E> {
    let hub = hub.clone();
    off_runtime(move || f(&hub)).await
}

/// Run `f` on the blocking pool (a store read or write: file I/O and fsync).
async fn off_runtime<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        // Never aborted, so only a panic ends it early: pass it on as it is.
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// The repository part of a sync: the report, the version and chain the node now holds (for
/// its report to the parent), and why it could not stage the parent's staged version.
async fn sync_inner(
    hub: &Arc<Hub>,
    parent: &Parent,
    parent_url: &str,
) -> Result<(SyncReport, Published, Vec<String>, Option<SyncError>), SyncError> {
    let started = Instant::now();
    let (doc, headers) = parent
        .bytes(&parent.api("published"), crate::peer::MAX_DOCUMENT)
        .await?;
    let chain: Vec<String> = headers
        .get(crate::proto::CHAIN_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(|s| {
            s.split(',')
                .filter(|x| !x.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    if let Some(tag) = headers
        .get(crate::proto::CA_HEADER)
        .and_then(|v| v.to_str().ok())
    {
        hub.ca_seen.lock().unwrap_or_else(|e| e.into_inner()).0 = Some(tag.to_owned());
    }
    let staged_doc = headers
        .get(crate::proto::STAGED_HEADER)
        .map(|v| Published::parse(v.as_bytes(), parent_url));
    if chain.iter().any(|c| c == hub.id().as_str()) {
        return Err(SyncError::Loop {
            url: parent_url.to_owned(),
            id: hub.id().to_string(),
            chain: chain.join(" -> "),
        });
    }
    let p = Published::parse(&doc, parent_url)?;
    if let Err(RepoError::BadSignature { .. }) =
        p.verify_any(&hub.keys.publishers(), Utc::now(), parent_url)
    {
        // Signed by a key this node does not trust (yet): the origin may have rotated it.
        follow_rotations(hub, parent, parent_url).await?;
    }
    p.verify_any(&hub.keys.publishers(), Utc::now(), parent_url)?;
    let current = blocking(hub, |h| h.db.published()).await?;
    p.check_follows(current.as_ref().map(|c| (c.number, c.root)), parent_url)?;
    *hub.chain.lock().unwrap_or_else(|e| e.into_inner()) = chain.clone();

    let mut report = SyncReport::nothing_yet(&p);
    // The same version: number and root (a rollback may publish this node's root again
    // under a higher number, which it then switches to without fetching anything).
    let same = current.as_ref().map(|c| (c.number, c.root)) == Some((p.number, p.root));
    let root = p.root;
    if same && !blocking(hub, move |h| holds_all(h, root)).await? {
        // This node's copy of its own version lost blobs (a damaged one was quarantined, or
        // a file was removed): fetch them again, verified, and keep serving the version.
        fetch_and_switch(hub, Some(parent), &p, &mut report).await?;
        report.changed = false;
        report.repaired = true;
        tracing::warn!(
            "version {} was missing {} blob(s) here; fetched them again from {parent_url}",
            p.number,
            report.blobs
        );
    } else if same {
        // Same version, perhaps a fresher signature (or one by a rotated key, which may
        // expire in the same second): keep the newer document, verified above.
        if current
            .as_ref()
            .is_some_and(|c| *c != p && p.expires >= c.expires)
        {
            let fresh = p.clone();
            blocking(hub, move |h| h.db.replace_signature(&fresh, Utc::now())).await?;
        }
    } else {
        fetch_and_switch(hub, Some(parent), &p, &mut report).await?;
    }
    // The parent's staged version: fetched and verified beside the current one. A failure
    // to stage leaves the current version as it is; the report tells the parent why.
    let mut failed = None;
    match staged_doc {
        Some(Ok(s)) if s.number > p.number => {
            report.seen.1 = s.number;
            match stage(hub, parent, &s, parent_url, &mut report).await {
                Ok(()) => report.staged = Some(s.number),
                Err(e) => {
                    report.stage_error = Some(format!("version {}: {e}", s.number));
                    failed = Some(e);
                }
            }
        }
        Some(Err(e)) => {
            report.stage_error = Some(format!("the staged version: {e}"));
            failed = Some(e.into());
        }
        _ => {}
    }
    report.seconds = started.elapsed().as_secs_f64();
    Ok((report, p, chain, failed))
}

/// Whether the store holds every blob of version `root` (its manifest and each file's).
fn holds_all(hub: &Hub, root: Root) -> Result<bool, StoreError> {
    match crate::verify::version_blobs(&hub.store, &root) {
        Ok(blobs) => Ok(blobs.iter().all(|id| hub.store.contains(id))),
        Err(StoreError::Missing(_)) => Ok(false),
        Err(StoreError::Corrupt { why, .. }) => {
            tracing::error!("the manifest of this node's version is damaged ({why}); quarantined, fetching it again");
            hub.store.quarantine(&root.0)?;
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// A node enrolled by link follows the origin's publisher key rotations its parent serves
/// (`GET /v1/rotations`): each one signed by a key it trusts replaces that key, for good.
async fn follow_rotations(hub: &Arc<Hub>, parent: &Parent, url: &str) -> Result<(), SyncError> {
    let Some(upstream) = hub.keys.upstream.clone() else {
        return Ok(());
    };
    let (body, _) = parent
        .bytes("v1/rotations", crate::peer::MAX_DOCUMENT)
        .await?;
    let chain: Vec<crate::keys::Rotation> =
        serde_json::from_slice(&body).map_err(|e| SyncError::Rotation {
            url: url.to_owned(),
            why: format!("the rotation list does not parse ({e})"),
        })?;
    let (keys, changed) =
        crate::keys::follow_rotations(&hub.keys.publishers(), &chain).map_err(|why| {
            SyncError::Rotation {
                url: url.to_owned(),
                why,
            }
        })?;
    if changed {
        // The parent's own key, when the parent is the origin, rotated with it.
        let (donor, _) =
            crate::keys::follow_rotations(&[hub.keys.donor()], &chain).map_err(|why| {
                SyncError::Rotation {
                    url: url.to_owned(),
                    why,
                }
            })?;
        let dir = hub.data.join("keys");
        let learned = keys.clone();
        let parent_id = upstream.parent_id.clone();
        blocking(hub, move |h| {
            crate::keys::learn_rotations(&dir, &upstream, &chain, learned, donor[0])?;
            h.ledger.set_upstream_grant_key(&parent_id, &donor[0]);
            Ok::<_, crate::keys::KeyError>(())
        })
        .await
        .map_err(|e| SyncError::Rotation {
            url: url.to_owned(),
            why: e.to_string(),
        })?;
        tracing::info!(
            "the origin's publisher key rotated: now trusting {}",
            keys.iter()
                .map(|k| hex::encode(&k.as_bytes()[..8]))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

/// Fetch what this node lacks of the verified version `p` from `from` (see
/// [`fetch_version`]), then switch to it in one transaction. With `from` None, everything
/// must already be in the store.
async fn fetch_and_switch(
    hub: &Arc<Hub>,
    from: Option<&Parent>,
    p: &Published,
    report: &mut SyncReport,
) -> Result<(), SyncError> {
    let (manifest, fetched) =
        fetch_version(from, &hub.store, p.root, hub.config.upstream.parallel).await?;
    report.add(fetched);
    // Every blob once more, just before the switch: a sync longer than `store.gc_grace` may
    // have seen an early blob collected (the version was not recorded yet); the next sync
    // then fetches it again rather than switch to a version missing it.
    let ids: Vec<BlobId> = std::iter::once(p.root.0)
        .chain(manifest.blobs().into_iter().map(|(id, _)| id))
        .collect();
    blocking(hub, move |h| crate::mirror::hold_all(&h.store, ids)).await?;
    // Everything is verified: switch in one transaction.
    let (accepted, files, bytes) = (
        p.clone(),
        manifest.entries.len() as u64,
        manifest.total_size(),
    );
    blocking(hub, move |h| {
        h.db.accept(&accepted, files, bytes, Utc::now())
    })
    .await?;
    // This node's own children (and members) long-polling it hear of it at once.
    hub.versions_moved();
    report.changed = true;
    Ok(())
}

impl SyncReport {
    /// Count what one [`fetch_version`] fetched (a sync may stage one version and switch to
    /// another).
    fn add(&mut self, f: Fetched) {
        self.blobs += f.blobs;
        self.bytes += f.bytes;
        self.resumed += f.resumed;
    }
}

/// What [`fetch_version`] fetched.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Fetched {
    /// Blobs fetched.
    pub blobs: u64,
    /// Bytes received (stored, compressed).
    pub bytes: u64,
    /// Transfers resumed from a partial file.
    pub resumed: u64,
}

/// Make `store` hold all of version `root`, whose signed document the caller verified: its
/// manifest (checked against the root), then each blob it lacks, from `from`, `parallel` in
/// flight, each decompressed and hashed as it streams in. With `from` None, everything must
/// already be in the store. Returns the manifest and what was fetched.
///
/// # Errors
/// Network errors, a manifest or blob that does not verify (the blob is reported to `from`
/// as damaged), or store errors; what verified stays in the store for the next attempt.
pub(crate) async fn fetch_version(
    from: Option<&Parent>,
    store: &Store,
    root: Root,
    parallel: usize,
) -> Result<(Manifest, Fetched), SyncError> {
    // A stored manifest or blob is reused: `hold` refreshes its age for garbage collection.
    let manifest = if store.hold(&root.0) {
        let st = store.clone();
        let bytes = off_runtime(move || st.read_bytes(&root.0)).await?;
        Manifest::parse(&bytes, &root)?
    } else {
        let from = from.ok_or(StoreError::Missing(root.0))?;
        let (bytes, _) = from
            .bytes(
                &from.api(&format!("versions/{root}")),
                crate::peer::MAX_INDEX,
            )
            .await?;
        let m = Manifest::parse(&bytes, &root)?;
        let st = store.clone();
        off_runtime(move || st.put_bytes(&bytes)).await?;
        m
    };
    let mut missing: Vec<(BlobId, u64)> = manifest
        .blobs()
        .into_iter()
        .filter(|(id, _)| !store.hold(id))
        .collect();
    let mut fetched = Fetched::default();
    if let (None, Some((id, _))) = (from, missing.first()) {
        return Err(StoreError::Missing(*id).into());
    }
    if let Some(from) = from {
        // Largest first: the long transfers start early and small ones fill the gaps, so no
        // big blob is left decompressing alone at the end.
        missing.sort_by_key(|(_, size)| std::cmp::Reverse(*size));
        let results: Vec<(u64, bool)> = stream::iter(missing)
            .map(|(id, size)| fetch_blob_resuming(from, store, id, size))
            .buffer_unordered(parallel.max(1))
            .try_collect()
            .await?;
        fetched.blobs = results.len() as u64;
        fetched.bytes = results.iter().map(|r| r.0).sum();
        fetched.resumed = results.iter().filter(|r| r.1).count() as u64;
    }
    Ok((manifest, fetched))
}

/// Stage the parent's staged version `s`: check it (signature, above the current version),
/// fetch and verify what the store lacks of it, and record it staged, without switching.
async fn stage(
    hub: &Arc<Hub>,
    parent: &Parent,
    s: &Published,
    url: &str,
    report: &mut SyncReport,
) -> Result<(), SyncError> {
    s.verify_any(&hub.keys.publishers(), Utc::now(), url)?;
    let current = blocking(hub, |h| h.db.published()).await?;
    s.check_follows(current.as_ref().map(|c| (c.number, c.root)), url)?;
    let already = blocking(hub, |h| h.db.staged()).await?;
    let (_, fetched) = fetch_version(
        Some(parent),
        &hub.store,
        s.root,
        hub.config.upstream.parallel,
    )
    .await?;
    report.add(fetched);
    if already.as_ref() != Some(s) {
        report.fresh_stage = true;
        let staged = s.clone();
        blocking(hub, move |h| h.db.set_staged(&staged, Utc::now())).await?;
        tracing::info!(
            "staged version {} (root {}) beside version {}: {} blobs fetched; it becomes current when the parent activates it",
            s.number,
            s.root,
            current.map_or(0, |c| c.number),
            report.blobs
        );
        // This node's children stage it from here in turn.
        hub.versions_moved();
    }
    Ok(())
}

/// Where a member that lacks the cluster's version stands after one [`catch_up`].
#[derive(Debug)]
pub enum CatchUp {
    /// It already serves the cluster's version (perhaps now with a fresher signature).
    Current,
    /// It switched to the cluster's version, fetched from the member named (None: its own
    /// store held all of it).
    Switched(SyncReport, Option<String>),
    /// No live member holds the version yet; it keeps serving the one it holds.
    NoSource(u64),
}

/// A member of a cluster catches up with the cluster's published version `want` (read from
/// the shared database): it checks the signature and that `want` follows what it serves,
/// then takes what its store lacks from one of `sources` (node id, HOST:PORT of live members
/// that serve `want`), verified as a child verifies, and switches only once it holds all of
/// it. Until then it keeps serving the version it holds in full.
///
/// # Errors
/// A version that does not verify or would be a rollback, database or store errors, or the
/// last source's failure when every source failed.
pub async fn catch_up(
    hub: &Arc<Hub>,
    want: &Published,
    sources: &[(String, String)],
) -> Result<CatchUp, SyncError> {
    const FROM: &str = "the cluster's database";
    let held = blocking(hub, |h| h.db.published()).await?;
    if held.as_ref().map(|h| h.root) == Some(want.root) {
        if held
            .as_ref()
            .is_some_and(|h| h != want && h.expires <= want.expires)
        {
            want.verify_any(&hub.keys.publishers(), Utc::now(), FROM)?;
            let fresh = want.clone();
            blocking(hub, move |h| h.db.replace_signature(&fresh, Utc::now())).await?;
        }
        return Ok(CatchUp::Current);
    }
    match from_members(hub, want, held.as_ref(), sources, Then::Switch).await? {
        Some((r, from)) => Ok(CatchUp::Switched(r, from)),
        None => Ok(CatchUp::NoSource(want.number)),
    }
}

/// What a member does with a version once its store holds all of it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Then {
    /// Switch to it (the cluster's active version).
    Switch,
    /// Hold it staged beside the active one (the cluster's staged version).
    Stage,
}

/// A member of a parent cluster holds the cluster's staged version `want` too, so that the
/// children reaching it can stage it: what its store lacks comes from one of `sources`
/// (live members), verified as a child verifies. Returns whether it staged it now (None:
/// no member holds it yet).
///
/// # Errors
/// As [`catch_up`].
pub async fn catch_up_staged(
    hub: &Arc<Hub>,
    want: &Published,
    sources: &[(String, String)],
) -> Result<Option<(SyncReport, Option<String>)>, SyncError> {
    let (held, staged) = blocking(hub, |h| {
        Ok::<_, DbError>((h.db.published()?, h.db.staged()?))
    })
    .await?;
    if staged.as_ref() == Some(want) || held.as_ref().is_some_and(|h| h.number >= want.number) {
        return Ok(None);
    }
    from_members(hub, want, held.as_ref(), sources, Then::Stage).await
}

/// Check `want` (signature, follows `held`), then take what the store lacks of it from the
/// first of `sources` that holds it, and switch to it or stage it (`then`). Returns the
/// report and the member it came from (None: the store held it all); None when there was
/// no source.
async fn from_members(
    hub: &Arc<Hub>,
    want: &Published,
    held: Option<&Published>,
    sources: &[(String, String)],
    then: Then,
) -> Result<Option<(SyncReport, Option<String>)>, SyncError> {
    const FROM: &str = "the cluster's database";
    want.verify_any(&hub.keys.publishers(), Utc::now(), FROM)?;
    want.check_follows(held.map(|c| (c.number, c.root)), FROM)?;
    let started = Instant::now();
    let report = SyncReport::nothing_yet(want);
    let take = |from: Option<Parent>, mut report: SyncReport| async move {
        let (manifest, fetched) = fetch_version(
            from.as_ref(),
            &hub.store,
            want.root,
            hub.config.upstream.parallel,
        )
        .await?;
        report.add(fetched);
        let (p, files, bytes) = (
            want.clone(),
            manifest.entries.len() as u64,
            manifest.total_size(),
        );
        blocking(hub, move |h| match then {
            Then::Switch => h.db.accept(&p, files, bytes, Utc::now()),
            Then::Stage => h.db.set_staged(&p, Utc::now()),
        })
        .await?;
        hub.versions_moved();
        report.changed = then == Then::Switch;
        report.staged = (then == Then::Stage).then_some(want.number);
        report.seconds = started.elapsed().as_secs_f64();
        Ok::<_, SyncError>(report)
    };
    // The store may hold it all already (this node mirrored the same zone).
    match take(None, report.clone()).await {
        Ok(r) => return Ok(Some((r, None))),
        Err(SyncError::Store(StoreError::Missing(_))) => {}
        Err(e) => return Err(e),
    }
    let mut last = None;
    for (node, addr) in sources {
        let attempt = async {
            let member = Parent::member(hub, addr).await?;
            take(Some(member), report.clone()).await
        };
        match attempt.await {
            Ok(r) => return Ok(Some((r, Some(node.clone())))),
            Err(e) => {
                tracing::warn!(
                    "fetching version {} from member {node} ({addr}) failed: {e}",
                    want.number
                );
                last = Some(e);
            }
        }
    }
    match last {
        Some(e) => Err(e),
        None => Ok(None),
    }
}

/// Tell the parent which version this node holds (its heartbeat). Failure is only logged:
/// the sync itself succeeded.
async fn send_report(
    hub: &Arc<Hub>,
    parent: &Parent,
    p: Option<&Published>,
    chain: &[String],
    stage_error: Option<&str>,
) {
    // What this node counts of each grant from this parent, for its reconciliation (a
    // database read: off the runtime's workers).
    let grants = match chain.first().cloned() {
        Some(donor) => blocking(hub, move |h| h.ledger.counts_for(&donor))
            .await
            .unwrap_or_else(|e| {
                tracing::warn!("counting the received grants for the report: {e}");
                Vec::new()
            }),
        None => Vec::new(),
    };
    let staged = blocking(hub, |h| h.db.staged()).await.unwrap_or_else(|e| {
        tracing::warn!("reading the staged version for the report: {e}");
        None
    });
    let stage = crate::proto::StageReport {
        two_phase: true,
        staged_number: staged.as_ref().map(|s| s.number),
        staged_root: staged.as_ref().map(|s| s.root),
        stage_error: stage_error.map(str::to_owned),
    };
    let body = serde_json::json!({
        "two_phase": stage.two_phase,
        "staged_number": stage.staged_number,
        "staged_root": stage.staged_root,
        "stage_error": stage.stage_error,
        "grants": grants,
        "root": p.map(|p| p.root),
        "number": p.map(|p| p.number),
        "hub_version": env!("CARGO_PKG_VERSION"),
        "config_digest": hub.live().tree_digest(),
        "chain": chain,
    });
    let url = parent.url("v1/report");
    match parent.client.post(url.clone()).json(&body).send().await {
        Ok(r) if r.status().is_success() => {}
        Ok(r) => tracing::warn!(%url, status = %r.status(), "report refused"),
        Err(e) => tracing::warn!(%url, "report failed: {}", error_chain(&e)),
    }
}

/// Whether the failure of parent `failed` (an index into `upstream.parents`) was told
/// already, while this node syncs from parent `using`: on a fallback, the parents before it
/// are tried at every sync, and their failure was told when this node left them.
fn told_before(using: Option<usize>, failed: usize) -> bool {
    using.is_some_and(|u| failed < u)
}

/// When to sync next, `interval` after a success, sooner after a failure but never hammering
/// a sick parent. Spread by `spread` (uniform in 0..1) over ±10 % of the wait, ±50 % after a
/// failure: children started together (a fleet rollout, a parent's restart) drift apart
/// instead of all syncing at the same instant every interval.
fn next_sync_in(interval: Duration, failures: u32, spread: f64) -> Duration {
    let (wait, width) = if failures == 0 {
        (interval, 0.2)
    } else {
        (
            (interval / 4).max(Duration::from_millis(100)) * failures.min(4),
            1.0,
        )
    };
    wait.mul_f64(1.0 - width / 2.0 + width * spread.clamp(0.0, 1.0))
}

/// What one long-poll of the parent found.
#[derive(Debug, PartialEq)]
enum Poll {
    /// Its active or staged version moved: sync now.
    Moved,
    /// Nothing moved within the wait.
    Same,
    /// The parent does not long-poll (an older updhub): sleep instead.
    Unsupported,
}

/// Ask the parent to answer when its (active, staged) version numbers differ from `seen`,
/// waiting up to `wait` (see [`crate::proto::Poll`]).
async fn long_poll(
    hub: &Arc<Hub>,
    parent_url: &str,
    seen: (u64, u64),
    wait: Duration,
) -> Result<Poll, SyncError> {
    let parent = Parent::new(hub, parent_url)?;
    let q = crate::proto::Poll {
        wait: wait.as_secs().max(1),
        known: seen.0,
        staged: seen.1,
    };
    let (body, headers) = parent
        .bytes(
            &format!("v1/published?{}", q.query()),
            crate::peer::MAX_DOCUMENT,
        )
        .await?;
    if headers.get(crate::proto::LONG_POLL_HEADER).is_none() {
        return Ok(Poll::Unsupported);
    }
    // Only a hint to sync now: the sync checks what it fetches.
    let number = |b: &[u8]| Published::parse(b, parent_url).map_or(0, |p| p.number);
    let now = (
        number(&body),
        headers
            .get(crate::proto::STAGED_HEADER)
            .map_or(0, |v| number(v.as_bytes())),
    );
    Ok(if now == seen { Poll::Same } else { Poll::Moved })
}

/// [`sync_once`] from the first of `parents` that syncs: each is tried in order while
/// the ones before it fail (`failed` hears each failure). Returns which one synced (its
/// index) and its report, or the last failure when none did.
///
/// # Errors
/// Every parent failed: the last one's error.
pub async fn sync_first(
    hub: &Arc<Hub>,
    parents: &[String],
    mut failed: impl FnMut(&str, &SyncError),
) -> Result<(usize, SyncReport), SyncError> {
    let mut last = None;
    for (i, parent) in parents.iter().enumerate() {
        match sync_once(hub, parent).await {
            Ok(r) => return Ok((i, r)),
            Err(e) => {
                failed(parent, &e);
                last = Some(e);
            }
        }
    }
    Err(last.unwrap_or_else(|| SyncError::Network {
        url: "upstream.parents".into(),
        why: "no parent is configured: set upstream.parent or upstream.parents".into(),
    }))
}

/// Keep following the parents until `shutdown` flips: sync from the first that answers
/// (`upstream.parents` in order: the first again at every sync, so a child on a fallback
/// returns to the first within a sync interval of it coming back), then long-poll that
/// parent until its active or staged version moves (so a staged version is fetched and an
/// activation switched to within about a second), syncing anyway every
/// `upstream.sync_interval`; backing off after failures, warning as the current version's
/// expiry nears. With one parent, that one is all there is.
pub async fn follow(
    hub: Arc<Hub>,
    parents: Vec<String>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut failures = 0u32;
    // The parent synced from last (an index into `parents`).
    let mut using: Option<usize> = None;
    loop {
        let interval = hub.live().upstream.sync_interval;
        let synced = sync_first(&hub, &parents, |parent, e| {
            let i = parents.iter().position(|p| p == parent).unwrap_or(0);
            if told_before(using, i) {
                tracing::debug!("sync from {parent} failed: {e}");
            } else {
                tracing::warn!("sync from {parent} failed: {e}");
            }
        })
        .await;
        let seen = match synced {
            Ok((i, r)) => {
                failures = 0;
                if using.is_some_and(|u| u != i) || (using.is_none() && i > 0) {
                    tracing::warn!(
                        "syncing from parent {} now ({} of {} in upstream.parents{})",
                        parents[i],
                        i + 1,
                        parents.len(),
                        if i == 0 {
                            ": the first is back"
                        } else {
                            ": the ones before it fail"
                        }
                    );
                }
                using = Some(i);
                if r.changed || r.fresh_stage {
                    tracing::info!("{r}");
                }
                Some((i, r.seen))
            }
            Err(_) => {
                failures = failures.saturating_add(1);
                None
            }
        };
        if let Ok(Some(p)) = blocking(&hub, |h| h.db.published()).await {
            if let Some(w) = hub.expiry_warning(&p) {
                tracing::warn!("{w}");
            }
        }
        let wait = next_sync_in(interval, failures, rand::Rng::gen(&mut rand::thread_rng()));
        let until = tokio::time::Instant::now() + wait;
        let waited = async {
            // After a failure (no `seen`), only the backoff's sleep.
            if let Some((i, seen)) = seen {
                let parent = &parents[i];
                let most = Duration::from_secs(crate::proto::MAX_WAIT_SECS);
                let mut backoff = Backoff::new();
                loop {
                    let left = until.saturating_duration_since(tokio::time::Instant::now());
                    if left < Duration::from_secs(1) {
                        break;
                    }
                    let asked = tokio::time::Instant::now();
                    match long_poll(&hub, parent, seen, left.min(most)).await {
                        Ok(Poll::Moved) => return,
                        // A parent that answers "nothing moved" without holding the request
                        // must not make this a busy loop.
                        Ok(Poll::Same) if asked.elapsed() < Duration::from_millis(500) => {
                            let _ = backoff.wait(None, Duration::MAX).await;
                        }
                        Ok(Poll::Same) => backoff = Backoff::new(),
                        Ok(Poll::Unsupported) => break,
                        // With other parents to go to, a parent that stops answering is
                        // left at once: the next sync tries them in order.
                        Err(e) if parents.len() > 1 => {
                            tracing::debug!("long-poll of {parent} failed: {e}");
                            return;
                        }
                        Err(e) => {
                            // A blip must not cost a whole sync interval: poll again after
                            // a backoff (at most MAX_BACKOFF apart while the parent is down).
                            tracing::debug!("long-poll of {parent} failed: {e}");
                            let _ = backoff.wait(None, Duration::MAX).await;
                        }
                    }
                }
            }
            tokio::time::sleep_until(until).await;
        };
        tokio::select! {
            _ = waited => {}
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_started_together_spread_their_syncs() {
        let i = Duration::from_secs(300);
        // A success: the interval, spread over ±10 %.
        assert_eq!(next_sync_in(i, 0, 0.0), Duration::from_secs(270));
        assert_eq!(next_sync_in(i, 0, 1.0), Duration::from_secs(330));
        assert_ne!(next_sync_in(i, 0, 0.2), next_sync_in(i, 0, 0.7));
        // Failures: sooner, growing, spread over ±50 %, never below 50 ms.
        assert_eq!(next_sync_in(i, 1, 0.5), Duration::from_secs(75));
        assert_eq!(next_sync_in(i, 9, 0.5), Duration::from_secs(300));
        assert_eq!(next_sync_in(i, 2, 0.0), Duration::from_secs(75));
        let tiny = next_sync_in(Duration::from_millis(10), 1, 0.0);
        assert_eq!(tiny, Duration::from_millis(50));
    }

    #[test]
    fn on_a_fallback_only_the_parents_before_it_fail_quietly() {
        // Syncing from the second parent: the first's failure was told when it was left...
        assert!(told_before(Some(1), 0));
        // ...but the second failing too (every parent down) is news, and so is a third.
        assert!(!told_before(Some(1), 1));
        assert!(!told_before(Some(1), 2));
        // On the first parent, or before any sync succeeded, every failure is told.
        assert!(!told_before(Some(0), 0));
        assert!(!told_before(Some(0), 1));
        assert!(!told_before(None, 0));
        assert!(!told_before(None, 1));
    }

    #[test]
    fn retry_after_is_read_in_seconds() {
        let mut h = reqwest::header::HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(header::RETRY_AFTER, "3".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        h.insert(
            header::RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), None);
    }
}

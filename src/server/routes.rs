//! The interserver routes (DESIGN.md "Interserver API"): the signed published version, the
//! manifest of a root, blobs as stored (zstd, with Range), children's reports, and the
//! current version as a zone (`/v1/zone/...`) for hubs that mirror another hub.

use std::io::{self, Read, SeekFrom};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::TryStreamExt;
use http_body_util::{combinators::BoxBody, BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::State;
use crate::db::ChildReport;
use crate::id::{BlobId, Root};
use crate::repo::Manifest;
use crate::store::CHUNK;

/// hyper's read buffer: large enough for big chunks.
pub(crate) const CHUNK_BUF: usize = 2 * CHUNK;

/// Bytes read from a stored blob per body frame. Each transfer in flight holds about twice
/// this; benches/h1_vs_h2.rs measured 64 KiB at the same throughput as 256 KiB with 2.7x
/// less memory per transfer (157 against 425 KiB), so many children cost little.
const SEND_CHUNK: usize = 64 * 1024;

/// Largest request body we accept (reports are a few hundred bytes).
const MAX_BODY: usize = 64 * 1024;
/// Bound of an offer of grants (`POST /v1/licenses/offered`): each token carries its chain,
/// a few KiB.
const MAX_OFFER: usize = 16 << 20;

/// What a busy server tells a client to wait before it retries, in seconds.
const RETRY_AFTER_SECS: u64 = 2;

pub(super) type Body = BoxBody<Bytes, io::Error>;

/// A request body as the routes see it: hyper's, cut when it stalls.
pub(crate) type ReqBody = super::admission::Stalling<Incoming>;

/// Counters of one server.
#[derive(Debug, Default)]
pub struct Stats {
    /// Bytes of blob bodies sent.
    pub blob_bytes: AtomicU64,
    /// Blob requests answered with a body.
    pub blob_requests: AtomicU64,
    /// Of those, Range requests.
    pub range_requests: AtomicU64,
    /// TLS handshakes refused (no or foreign client certificate).
    pub rejected_handshakes: AtomicU64,
    /// Connections refused, timed out or evicted before they were served.
    pub admission: super::AdmissionStats,
    /// Requests whose body stalled (answered 408).
    pub body_stalls: AtomicU64,
    /// Blob requests answered 503 because no transfer slot came free in time.
    pub busy_answers: AtomicU64,
    /// Keys the rate limiter held after its last sweep.
    pub limiter_keys: AtomicU64,
}

fn full(status: StatusCode, ctype: &'static str, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()).map_err(|e| match e {}).boxed());
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    r
}

/// A slot to send one body: at once, or after waiting up to `transfer_wait`; else the 503
/// to answer.
async fn transfer_slot(state: &State) -> Result<tokio::sync::OwnedSemaphorePermit, Response<Body>> {
    let slots = state.transfers.clone();
    match tokio::time::timeout(state.limits.transfer_wait, slots.acquire_owned()).await {
        Ok(Ok(p)) => Ok(p),
        _ => {
            state.stats.busy_answers.fetch_add(1, Ordering::Relaxed);
            Err(busy(state))
        }
    }
}

/// What a busy parent answers a request for a body that found no transfer slot in time.
fn busy(state: &State) -> Response<Body> {
    let mut r = error(
        StatusCode::SERVICE_UNAVAILABLE,
        format!(
            "busy: all {} blob transfers are in progress and none ended within {:?}; retry after {RETRY_AFTER_SECS} s (a child does so on its own)",
            state.limits.max_transfers, state.limits.transfer_wait
        ),
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    r
}

pub(super) fn error(status: StatusCode, msg: impl std::fmt::Display) -> Response<Body> {
    let body = serde_json::json!({ "error": msg.to_string() }).to_string();
    full(status, "application/json", body)
}

pub(super) fn json(v: &impl serde::Serialize) -> Response<Body> {
    full(
        StatusCode::OK,
        "application/json",
        serde_json::to_vec(v).expect("serializes"),
    )
}

/// Who sent a request: on the interserver port, who its verified certificate is (see
/// [`crate::hub::Hub::peer_identity`]); on the station port, its address.
#[derive(Debug, Clone)]
pub(crate) enum Caller {
    /// A peer on the interserver port.
    Peer(crate::hub::PeerIdentity),
    /// A station (or an enrolling node) on the station port, by address.
    Station(String),
}

impl Caller {
    /// The key it is rate limited and known by.
    fn key(&self) -> String {
        match self {
            Caller::Peer(crate::hub::PeerIdentity::Linked { id, .. })
            | Caller::Peer(crate::hub::PeerIdentity::Conflict { id, .. })
            | Caller::Peer(crate::hub::PeerIdentity::Member(id)) => id.clone(),
            Caller::Station(addr) => addr.clone(),
        }
    }
}

/// Route one request from `caller`.
pub(crate) async fn handle(
    state: Arc<State>,
    face: super::Face,
    caller: Caller,
    req: Request<ReqBody>,
) -> Result<Response<Body>, std::convert::Infallible> {
    let peer = caller.key();
    if state.limiter.check_key(&peer).is_err() {
        let mut r = error(
            StatusCode::TOO_MANY_REQUESTS,
            "rate limit reached; retry in a second",
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return Ok(r);
    }
    let path = req.uri().path().to_owned();
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    if face == super::Face::Stations {
        let resp = match (req.method(), parts.as_slice()) {
            (&Method::POST, ["v1", "stations", action @ ("register" | "heartbeat")]) => {
                let action = action.to_string();
                station(&state, &action, &peer, req).await
            }
            (&Method::GET, ["v1", "link", "ca"]) => link_ca(&state).await,
            (&Method::POST, ["v1", "link", "enroll"]) => link_enroll(&state, req).await,
            (_, ["v1", "station", rest @ ..]) => {
                super::station::route(&state, &peer, req, rest).await
            }
            _ => error(
                StatusCode::NOT_FOUND,
                format!("no station route {} {path}", req.method()),
            ),
        };
        return Ok(resp);
    }
    let caller = match caller {
        Caller::Peer(crate::hub::PeerIdentity::Conflict { id, fp, bound }) => {
            // Another member may have just renewed this link (`POST /v1/link/renew`): read
            // the links again before refusing.
            let hub = state.hub.clone();
            let (i, f) = (id.clone(), fp.clone());
            let renewed = tokio::task::spawn_blocking(move || {
                hub.refresh_links().ok()?;
                let linked = hub.linked(&f);
                if linked.is_none() {
                    let _ = hub.db.record_link_refusal(&i, &f, chrono::Utc::now());
                }
                linked
            })
            .await
            .ok()
            .flatten();
            if let Some((id, kind)) = renewed {
                Caller::Peer(crate::hub::PeerIdentity::Linked { id, kind, fp })
            } else {
                Caller::Peer(crate::hub::PeerIdentity::Conflict { id, fp, bound })
            }
        }
        other => other,
    };
    match &caller {
        Caller::Peer(crate::hub::PeerIdentity::Conflict { id, fp, bound }) => {
            tracing::warn!("refused a certificate for node id {id} with another key ({fp}); {id} is enrolled with certificate {bound}");
            return Ok(error(
                StatusCode::FORBIDDEN,
                format!("node id {id} is enrolled at {} with another key (certificate {bound}); this certificate ({fp}) is refused: every node needs its own id; if this node replaces the enrolled one, have the parent's admin run `updhub link remove {id}` and enroll again", state.hub.id()),
            ));
        }
        Caller::Peer(crate::hub::PeerIdentity::Linked { kind, .. })
            if kind == "peer"
                && !matches!(
                    parts.as_slice(),
                    ["v1", "licenses", ..]
                        | ["v1", "report"]
                        | ["v1", "ca"]
                        | ["v1", "link", "renew"]
                ) =>
        {
            return Ok(error(
                StatusCode::FORBIDDEN,
                "a peer link carries licenses only, no updates; for updates enroll as a child (`updhub link invite` without --peer)",
            ));
        }
        _ => {}
    }
    let resp = match (req.method(), parts.as_slice()) {
        (&Method::GET, ["v1", "licenses", "grants"]) => {
            grants(&state, peer.clone(), req.uri().query()).await
        }
        (&Method::POST, ["v1", "licenses", "offered"]) => offered(&state, peer, req).await,
        (&Method::POST, ["v1", "licenses", action @ ("ack" | "return")]) => {
            let action = action.to_string();
            grant_call(&state, &action, peer, req).await
        }
        (&Method::GET, ["v1", "published"]) => published(&state, &peer, req.uri().query()).await,
        (&Method::GET, ["v1", "rotations"]) => rotations(&state).await,
        (&Method::GET, ["v1", "ca"]) => json(&crate::link::ca_answer(&state.hub)),
        (&Method::POST, ["v1", "link", "renew"]) => link_renew(&state, &caller, req).await,
        (&Method::GET, ["v1", "versions", root]) => version(&state, root).await,
        (&Method::GET | &Method::HEAD, ["v1", "blobs", hash]) => blob(&state, hash, &req).await,
        (&Method::POST, ["v1", "blobs", hash, "damaged"]) => damaged(&state, &peer, hash).await,
        (&Method::POST, ["v1", "report"]) => report(&state, peer, req).await,
        (&Method::GET, ["v1", "zone", rest @ ..]) => zone(&state, rest).await,
        _ => error(
            StatusCode::NOT_FOUND,
            format!("no route {} {path}", req.method()),
        ),
    };
    Ok(resp)
}

/// The chain of publisher key rotations this node knows (its own, or the origin's as learned
/// through its link), each signed by the key before it.
pub(super) async fn rotations(state: &State) -> Response<Body> {
    let hub = state.hub.clone();
    match blocking(move || {
        Ok(crate::keys::served_rotations(
            &hub.data.join("keys"),
            hub.keys.upstream.is_some(),
        )?)
    })
    .await
    {
        Ok(chain) => json(&chain),
        Err(r) => r,
    }
}

/// `GET /v1/licenses/grants[?since=CURSOR]`: the grants the calling server has to act on,
/// all of them or what changed since its cursor (see [`crate::license::feed`]).
async fn grants(state: &State, caller: String, query: Option<&str>) -> Response<Body> {
    use crate::license::feed::Since;
    let since = match Since::of_query(query) {
        Ok(s) => s,
        Err(why) => return error(StatusCode::BAD_REQUEST, why),
    };
    // A database read: off the runtime's worker threads. The tokens are stored as the
    // signed JSON they are: sent as they are.
    let read = |since: Since| {
        let (hub, caller) = (state.hub.clone(), caller.clone());
        tokio::task::spawn_blocking(move || match since {
            Since::Absent => hub
                .ledger
                .raw_tokens_for(&caller)
                .map(|t| Some(format!("[{}]", t.join(",")))),
            since => hub
                .ledger
                .grant_feed(&caller, &since)
                .map(|f| f.map(|f| f.to_json())),
        })
    };
    let mut answer = read(since.clone()).await;
    if matches!(answer, Ok(Ok(None))) {
        // No epoch yet (a ledger no node started serving on since schema 9): draw one.
        if let Err(e) = state.hub.ledger.ensure_feed_epoch().await {
            return license_error(&e);
        }
        answer = read(since).await;
    }
    match answer {
        Ok(Ok(Some(body))) => full(StatusCode::OK, "application/json", body),
        Ok(Ok(None)) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the license ledger has no feed epoch even after drawing one; check the database",
        ),
        Ok(Err(e)) => license_error(&e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

/// The station port's `GET /v1/link/ca`: this cluster's CA certificate, which an enrolling
/// node checks against the fingerprint in its token before it sends anything.
async fn link_ca(state: &State) -> Response<Body> {
    let path = state.hub.data.join("keys").join("ca.crt");
    match tokio::fs::read(&path).await {
        Ok(pem) => full(StatusCode::OK, "application/x-pem-file", pem),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

/// The interserver port's `POST /v1/link/renew`: a linked node renews its certificate over
/// its link, under this cluster's CA in force (see [`crate::link::renew`]).
async fn link_renew(state: &State, caller: &Caller, req: Request<ReqBody>) -> Response<Body> {
    let Caller::Peer(crate::hub::PeerIdentity::Linked { id, fp, .. }) = caller else {
        return error(
            StatusCode::FORBIDDEN,
            "only a node enrolled by link renews its certificate here; a member of this cluster gets its certificate with the cluster's keys (`updhub keys export`, `updhub init --keys-from`)",
        );
    };
    let body: crate::link::RenewRequest = match read_json(state, req).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let (hub, id, fp) = (state.hub.clone(), id.clone(), fp.clone());
    match tokio::task::spawn_blocking(move || crate::link::renew(&hub, &id, &fp, &body.csr)).await {
        Ok(Ok(reply)) => json(&reply),
        Ok(Err(e)) => enroll_error(e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

/// The station port's `POST /v1/link/enroll` (see [`crate::link::enroll`]).
async fn link_enroll(state: &State, req: Request<ReqBody>) -> Response<Body> {
    let body: crate::link::EnrollRequest = match read_json(state, req).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let hub = state.hub.clone();
    match tokio::task::spawn_blocking(move || crate::link::enroll(&hub, &body)).await {
        Ok(Ok(reply)) => json(&reply),
        Ok(Err(e)) => enroll_error(e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

/// An enrollment's or a renewal's refusal, with its status.
fn enroll_error(e: crate::link::EnrollError) -> Response<Body> {
    use crate::link::EnrollError;
    match e {
        EnrollError::Refused(r) => error(StatusCode::FORBIDDEN, r),
        EnrollError::Gone(why) => error(StatusCode::FORBIDDEN, why),
        EnrollError::Bad(why) => error(StatusCode::BAD_REQUEST, why),
        e @ EnrollError::Internal(_) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

/// Run a database or store call on the blocking pool: a slow read or commit (an fsync) must
/// never hold a tokio worker that is streaming blobs to other children.
pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, crate::Error> + Send + 'static,
) -> Result<T, Response<Body>> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, e)),
        Err(e) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, e)),
    }
}

/// The signed document of the version this node serves (its active version), or the 404 to
/// answer when it serves none yet.
pub(super) async fn served(state: &State) -> Result<crate::repo::Published, Response<Body>> {
    let hub = state.hub.clone();
    blocking(move || Ok(hub.db.published()?))
        .await?
        .ok_or_else(|| {
            error(
                StatusCode::NOT_FOUND,
                "nothing published yet; run `updhub publish` on this node",
            )
        })
}

/// `GET /v1/published`: the active version's signed document, with the staged one in
/// [`crate::proto::STAGED_HEADER`]; held as a long-poll when asked (see
/// [`crate::proto::Poll`]). A long-poll holds its connection but no transfer slot, and
/// looks at the database every second too: a publish or activation made by the CLI or by
/// another member of the cluster reaches it that way.
async fn published(state: &State, caller: &str, query: Option<&str>) -> Response<Body> {
    let poll = match crate::proto::Poll::parse(query) {
        Ok(p) => p,
        Err(why) => return error(StatusCode::BAD_REQUEST, why),
    };
    // Subscribed before the first read, so nothing that moves after it is missed.
    let mut moved = state.hub.version_events.subscribe();
    let mut stopping = state.stopping.subscribe();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(poll.wait);
    let (active, staged) = loop {
        let hub = state.hub.clone();
        let caller = caller.to_owned();
        let (active, staged) = match blocking(move || hub.published_for(&caller)).await {
            Ok(pair) => pair,
            Err(resp) => return resp,
        };
        // As the answer shows them: a staged version only above the active one.
        let active_n = active.as_ref().map_or(0, |p| p.number);
        let staged_n = staged
            .as_ref()
            .map(|p| p.number)
            .filter(|n| *n > active_n)
            .unwrap_or(0);
        let now_known = (active_n, staged_n);
        if now_known != (poll.known, poll.staged)
            || tokio::time::Instant::now() >= deadline
            || *stopping.borrow()
        {
            break (active, staged);
        }
        let tick = deadline.min(tokio::time::Instant::now() + std::time::Duration::from_secs(1));
        tokio::select! {
            _ = moved.changed() => {}
            _ = stopping.changed() => {}
            _ = tokio::time::sleep_until(tick) => {}
        }
    };
    match active {
        Some(p) => {
            let mut r = json(&p);
            let mut chain = vec![state.hub.id().to_string()];
            chain.extend(
                state
                    .hub
                    .chain
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .iter()
                    .cloned(),
            );
            let h = r.headers_mut();
            if let Ok(v) = HeaderValue::from_str(&chain.join(",")) {
                h.insert(crate::proto::CHAIN_HEADER, v);
            }
            if let Ok(v) = HeaderValue::from_str(&state.hub.keys.ca.tag()) {
                h.insert(crate::proto::CA_HEADER, v);
            }
            if let Some(s) = staged.filter(|s| s.number > p.number) {
                let doc = serde_json::to_string(&s).expect("published serializes");
                if let Ok(v) = HeaderValue::from_str(&doc) {
                    h.insert(crate::proto::STAGED_HEADER, v);
                }
            }
            h.insert(
                crate::proto::LONG_POLL_HEADER,
                HeaderValue::from(crate::proto::MAX_WAIT_SECS),
            );
            r
        }
        None => error(
            StatusCode::NOT_FOUND,
            "nothing published yet; run `updhub publish` on this node",
        ),
    }
}

/// The manifest of the current root, cached until the root changes.
async fn current_manifest(state: &State) -> Result<Arc<Manifest>, Box<Response<Body>>> {
    let p = served(state).await.map_err(Box::new)?;
    if let Some((root, m)) = state
        .manifest_cache
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
    {
        if *root == p.root {
            return Ok(m.clone());
        }
    }
    let hub = state.hub.clone();
    let m = Arc::new(
        blocking(move || hub.manifest(&p.root))
            .await
            .map_err(Box::new)?,
    );
    *state
        .manifest_cache
        .lock()
        .unwrap_or_else(|p| p.into_inner()) = Some((p.root, m.clone()));
    Ok(m)
}

async fn version(state: &State, root: &str) -> Response<Body> {
    match root.parse() {
        Ok(root) => manifest(state, root).await,
        Err(e) => error(StatusCode::BAD_REQUEST, e),
    }
}

/// The manifest of `root`, as the bytes it is stored as (a blob hashing to the root).
pub(super) async fn manifest(state: &State, root: Root) -> Response<Body> {
    let store = state.hub.store.clone();
    let read = tokio::task::spawn_blocking(move || store.read_bytes(&root.0)).await;
    match read {
        Ok(Ok(bytes)) => full(StatusCode::OK, "application/json", bytes),
        Ok(Err(crate::store::StoreError::Missing(_))) => error(
            StatusCode::NOT_FOUND,
            format!("version {root} is not held here"),
        ),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

/// Parse a single `bytes=START-[END]` range against `len`; `Err` means unsatisfiable.
fn parse_range(h: &str, len: u64) -> Option<Result<(u64, u64), ()>> {
    let spec = h.strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None; // several ranges: answer with the whole body, as RFC 9110 allows
    }
    let (a, b) = spec.split_once('-')?;
    let range = if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        (len.saturating_sub(n), len.checked_sub(1)?)
    } else {
        let start: u64 = a.parse().ok()?;
        let end = if b.is_empty() {
            len.saturating_sub(1)
        } else {
            b.parse::<u64>().ok()?.min(len.saturating_sub(1))
        };
        (start, end)
    };
    Some(if range.0 >= len || range.0 > range.1 {
        Err(())
    } else {
        Ok(range)
    })
}

/// `POST /v1/blobs/{hash}/damaged`: a child says what it got for this blob did not verify.
/// The blob is rechecked at once; a damaged copy is quarantined, so no one gets it again
/// (the answer says which). A copy that verifies stays: the damage was on the way.
pub(super) async fn damaged(state: &State, peer: &str, hash: &str) -> Response<Body> {
    let id: BlobId = match hash.parse() {
        Ok(id) => id,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let hub = state.hub.clone();
    let checked = blocking(move || match hub.store.verify(&id) {
        Ok(_) => Ok("intact"),
        Err(crate::store::StoreError::Missing(_)) => Ok("not held"),
        Err(e) => {
            tracing::error!("blob {id} is damaged here ({e}); quarantined");
            hub.store.quarantine(&id)?;
            Ok("quarantined")
        }
    })
    .await;
    match checked {
        Ok(verdict) => {
            tracing::warn!("{peer} reported blob {id} damaged; rechecked: {verdict}");
            json(&serde_json::json!({ "blob": id, "here": verdict }))
        }
        Err(r) => r,
    }
}

pub(super) async fn blob(state: &State, hash: &str, req: &Request<ReqBody>) -> Response<Body> {
    let id: BlobId = match hash.parse() {
        Ok(id) => id,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let path = state.hub.store.blob_path(&id);
    let mut file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return error(StatusCode::NOT_FOUND, format!("blob {id} is not held here"))
        }
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    let len = match file.metadata().await {
        Ok(m) => m.len(),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    let range = req
        .headers()
        .get(header::RANGE)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| parse_range(h, len));
    let (status, start, end) = match range {
        None => (StatusCode::OK, 0, len.saturating_sub(1)),
        Some(Ok((s, e))) => (StatusCode::PARTIAL_CONTENT, s, e),
        Some(Err(())) => {
            let mut r = error(
                StatusCode::RANGE_NOT_SATISFIABLE,
                format!("blob {id} has {len} stored bytes"),
            );
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return r;
        }
    };
    let count = if len == 0 { 0 } else { end - start + 1 };
    // A body holds a chunk buffer while it is sent: bound how many are sent at once. The
    // others wait here (a parked request costs next to nothing), then are told to come back.
    let permit = if req.method() == Method::HEAD {
        None
    } else {
        match transfer_slot(state).await {
            Ok(p) => Some(p),
            Err(busy) => return busy,
        }
    };
    if start > 0 {
        if let Err(e) = file.seek(SeekFrom::Start(start)).await {
            return error(StatusCode::INTERNAL_SERVER_ERROR, e);
        }
    }
    state.stats.blob_requests.fetch_add(1, Ordering::Relaxed);
    if status == StatusCode::PARTIAL_CONTENT {
        state.stats.range_requests.fetch_add(1, Ordering::Relaxed);
    }
    let stats = state.stats.clone();
    // Stream the stored zstd bytes as they are, SEND_CHUNK at a time: memory stays flat.
    let body: Body = if req.method() == Method::HEAD {
        Full::new(Bytes::new()).map_err(|e| match e {}).boxed()
    } else {
        let stream = tokio_util::io::ReaderStream::with_capacity(file.take(count), SEND_CHUNK)
            .map_ok(move |b| {
                // The transfer slot is given back when the body is sent or dropped.
                let _slot = &permit;
                stats
                    .blob_bytes
                    .fetch_add(b.len() as u64, Ordering::Relaxed);
                Frame::data(b)
            });
        BodyExt::boxed(StreamBody::new(stream))
    };
    let mut r = Response::new(body);
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/zstd"),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(count));
    if status == StatusCode::PARTIAL_CONTENT {
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{len}")) {
            h.insert(header::CONTENT_RANGE, v);
        }
    }
    r
}

/// A child's report body; its id comes from its certificate, not from here. Unknown fields
/// are ignored: a newer child adds fields, and an older parent must still take its report
/// during a rolling upgrade (signed documents, unlike this one, stay strict).
#[derive(Debug, Deserialize)]
pub struct ReportBody {
    /// Its current root.
    pub root: Option<Root>,
    /// Its current number: a version number, which the database keeps as a signed 64-bit
    /// integer, so a larger one is a bad request rather than a database failure.
    #[serde(default, deserialize_with = "version_number")]
    pub number: Option<u64>,
    /// Its updhub version.
    pub hub_version: String,
    /// Digest of its must-be-the-same settings.
    pub config_digest: String,
    /// Parents it syncs through.
    pub chain: Vec<String>,
    /// What it holds and counts of each grant it received from this server.
    #[serde(default)]
    pub grants: Vec<crate::license::ledger::ReceiverCount>,
    /// What it staged (absent from a child that does not stage).
    #[serde(flatten)]
    pub stage: crate::proto::StageReport,
}

/// The largest version number: the database stores numbers as SQLite's signed 64-bit integer.
const MAX_VERSION_NUMBER: u64 = i64::MAX as u64;

fn version_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    match Option::<u64>::deserialize(d)? {
        Some(n) if n > MAX_VERSION_NUMBER => Err(serde::de::Error::custom(format!(
            "field `number` is {n}, above the largest version number {MAX_VERSION_NUMBER}; send the number of the version this node holds"
        ))),
        n => Ok(n),
    }
}

async fn report(state: &State, peer: String, req: Request<ReqBody>) -> Response<Body> {
    let body = match read_body(state, req, "report").await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let r: ReportBody = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("report body is not valid: {e}"),
            )
        }
    };
    let rep = ChildReport {
        child_id: peer,
        root: r.root,
        number: r.number,
        hub_version: r.hub_version,
        config_digest: r.config_digest,
        chain: r.chain,
        reported_at: chrono::Utc::now(),
    };
    if r.stage
        .staged_number
        .is_some_and(|n| n > MAX_VERSION_NUMBER)
    {
        return error(
            StatusCode::BAD_REQUEST,
            format!("report body is not valid: field `staged_number` is above the largest version number {MAX_VERSION_NUMBER}; send the number of the version this node holds staged"),
        );
    }
    let hub = state.hub.clone();
    let (grants, stage) = (r.grants, r.stage);
    match blocking(move || {
        let now = chrono::Utc::now();
        hub.db.record_grant_reports(&rep.child_id, &grants, now)?;
        hub.db.record_report_staged(&rep, &stage)?;
        // A report may complete what the staged version waits for: one child, or the last.
        if stage.two_phase {
            hub.evaluate_activation()?;
        }
        Ok(())
    })
    .await
    {
        Ok(()) => json(
            &serde_json::json!({ "ok": true, "config_digest": state.hub.live().tree_digest() }),
        ),
        Err(resp) => resp,
    }
}

pub(super) fn license_error(e: &crate::license::LicenseError) -> Response<Body> {
    error(
        StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        e,
    )
}

/// A small request body, whole: 413 before a byte is read when it declares more than
/// [`MAX_BODY`], 408 when it stalls (either way the connection is closed after the answer).
pub(crate) async fn read_body(
    state: &State,
    req: Request<ReqBody>,
    what: &str,
) -> Result<Bytes, Response<Body>> {
    read_body_up_to(state, req, what, MAX_BODY).await
}

/// [`read_body`] with another bound than [`MAX_BODY`].
async fn read_body_up_to(
    state: &State,
    req: Request<ReqBody>,
    what: &str,
    max: usize,
) -> Result<Bytes, Response<Body>> {
    use hyper::body::Body as _;
    let declared = req.body().size_hint().lower();
    if declared > max as u64 {
        return Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("{what} body declares {declared} bytes but at most {max} are accepted; send a smaller body"),
        ));
    }
    match Limited::new(req.into_body(), max).collect().await {
        Ok(b) => Ok(b.to_bytes()),
        Err(e) if e.is::<super::admission::BodyStalled>() => {
            state.stats.body_stalls.fetch_add(1, Ordering::Relaxed);
            let mut r = error(StatusCode::REQUEST_TIMEOUT, format!("{what} body: {e}"));
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            Err(r)
        }
        Err(e) => Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("{what} body: {e}; at most {max} bytes are accepted; send a smaller body"),
        )),
    }
}

async fn read_json<T: serde::de::DeserializeOwned>(
    state: &State,
    req: Request<ReqBody>,
) -> Result<T, Response<Body>> {
    let body = read_body(state, req, "request").await?;
    serde_json::from_slice(&body).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            format!("request body is not valid: {e}"),
        )
    })
}

/// `POST /v1/licenses/offered`: a node linked to this cluster (a child or a peer) offers the
/// grants it donated to this server, signed with the key its link recorded at enrollment (a
/// node sharing this cluster's keys signs with them).
async fn offered(state: &State, peer: String, req: Request<ReqBody>) -> Response<Body> {
    let body = match read_body_up_to(state, req, "offer", MAX_OFFER).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let hub = state.hub.clone();
    let caller = peer.clone();
    let link = match blocking(move || Ok(hub.db.link_for_grants(&caller)?)).await {
        Ok(k) => k,
        Err(r) => return r,
    };
    // Only a linked node donates to this cluster (a member shares its ledger).
    let Some((kind, key)) = link else {
        return error(
            StatusCode::FORBIDDEN,
            format!("{peer} has no live link to this cluster, so it may not donate to it; link it as a peer (`updhub link invite --peer`)"),
        );
    };
    let donor = match key.as_deref().map(parse_grant_key) {
        Some(Ok(k)) => k,
        Some(Err(why)) => return error(StatusCode::INTERNAL_SERVER_ERROR, why),
        None => {
            return error(
                StatusCode::CONFLICT,
                format!("{peer} enrolled here before grant keys were recorded, so its grants cannot be verified; enroll it again (`updhub link join` on {peer} with a new token)"),
            )
        }
    };
    match crate::license::api::accept_offer(&state.hub.ledger, &peer, &kind, &donor, &body).await {
        Ok(answer) => json(&answer),
        Err(e) => license_error(&e),
    }
}

/// A grant key as the links table holds it (checked at enrollment).
fn parse_grant_key(hex_key: &str) -> Result<ed25519_dalek::VerifyingKey, String> {
    crate::keys::verifying_key_hex(hex_key)
        .map_err(|why| format!("the stored grant key is damaged: {why}"))
}

/// `POST /v1/licenses/ack|return`: the calling server acknowledges a revocation or returns a
/// grant it received from this server.
async fn grant_call(
    state: &State,
    action: &str,
    peer: String,
    req: Request<ReqBody>,
) -> Response<Body> {
    let body: crate::license::api::GrantRef = match read_json(state, req).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let ledger = &state.hub.ledger;
    let res = if action == "ack" {
        ledger.acknowledge(peer, body.grant_id).await
    } else {
        ledger.accept_return(peer, body.grant_id).await
    };
    match res {
        Ok(()) => json(&serde_json::json!({ "ok": true })),
        Err(e) => license_error(&e),
    }
}

/// `POST /v1/stations/register|heartbeat`.
async fn station(
    state: &State,
    action: &str,
    address: &str,
    req: Request<ReqBody>,
) -> Response<Body> {
    let creds: crate::license::api::StationCredentials = match read_json(state, req).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    if let Err(e) = crate::license::api::check_credentials(&creds) {
        return error(StatusCode::BAD_REQUEST, e);
    }
    let station = creds.station.clone();
    if let Err(r) = super::station::login_allowed(state, address, &station).await {
        return r;
    }
    let ledger = &state.hub.ledger;
    let res = if action == "register" {
        ledger.register_station(creds.station, creds.secret).await
    } else {
        ledger
            .heartbeat(creds.station, creds.secret)
            .await
            .map(|s| (s, false))
    };
    match res {
        Ok((license, new)) => {
            if new {
                // The audit log does not hold station registrations; the node's log does.
                tracing::info!(
                    "station {station} took a station license from {} (from {address})",
                    crate::license::shown(&license)
                );
            }
            json(&crate::license::api::StationAnswer {
                station,
                server: state.hub.id().to_string(),
                license,
                new,
            })
        }
        Err(e) => {
            // A wrong secret for a registered id (register), or for any id (heartbeat).
            if matches!(
                (action, &e),
                (
                    "register",
                    crate::license::LicenseError::OtherCredentials(_)
                ) | ("heartbeat", crate::license::LicenseError::NotFound(_))
            ) {
                super::station::login_failed(state, address, &station).await;
            }
            license_error(&e)
        }
    }
}

/// What a server answers a connection that found no slot within `queue_wait` (every
/// connection serving a request).
pub(super) fn busy_connections(max_connections: usize) -> Response<Body> {
    let mut r = error(
        StatusCode::SERVICE_UNAVAILABLE,
        format!(
            "busy: all {max_connections} connections are serving requests and none ended in time; retry after {RETRY_AFTER_SECS} s (or give the server more server.max_connections)"
        ),
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    r
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// `/v1/zone/...`: the current version laid out as a zone, so another hub can mirror it.
async fn zone(state: &State, rest: &[&str]) -> Response<Body> {
    let m = match current_manifest(state).await {
        Ok(m) => m,
        Err(r) => return *r,
    };
    let (index, lists) = crate::zone::describe_manifest(&m);
    let rest: Vec<String> = rest.iter().map(|s| decode(s)).collect();
    match rest.as_slice() {
        [z] if z == "zone.json" => json(&index),
        [p, r, f] if f == "files.json" => {
            match lists.iter().find(|l| &l.product == p && &l.revision == r) {
                Some(l) => json(l),
                None => error(
                    StatusCode::NOT_FOUND,
                    format!("{p}/{r} is not in the current version"),
                ),
            }
        }
        [p, r, d, path @ ..] if d == "data" && !path.is_empty() => {
            let path = path.join("/");
            let entry = m
                .entries
                .iter()
                .find(|e| &e.product == p && &e.revision == r && e.path == path);
            match entry {
                Some(e) => match transfer_slot(state).await {
                    Ok(slot) => stream_content(state, e.blake3, e.size, slot),
                    Err(busy) => busy,
                },
                None => error(
                    StatusCode::NOT_FOUND,
                    format!("{p}/{r}/{path} is not in the current version"),
                ),
            }
        }
        _ => error(StatusCode::NOT_FOUND, "no such zone file"),
    }
}

/// Stream a blob's decompressed content, decompressing on a blocking thread into a small
/// bounded channel (this route serves hubs mirroring a hub, not the hot path). The blob is
/// opened before answering, so one not held (quarantined) is 404 rather than a 200 that
/// ends with no byte; and what streams is hashed on the way, the last chunk held back until
/// the whole content verified: content that rotted since the last scrub is never handed
/// over whole as good (the answer breaks off) and is quarantined at once.
fn stream_content(
    state: &State,
    id: BlobId,
    size: u64,
    slot: tokio::sync::OwnedSemaphorePermit,
) -> Response<Body> {
    let store = state.hub.store.clone();
    let file = match store.open_stored(&id) {
        Ok(f) => f,
        Err(crate::store::StoreError::Missing(_)) => {
            return error(
                StatusCode::NOT_FOUND,
                format!("blob {id} is not held here (damaged and taken out of service, or not fetched yet); it is fetched again by the next repair, try again later"),
            )
        }
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(4);
    tokio::task::spawn_blocking(move || {
        // Held until the last chunk is handed over (or the client left).
        let _slot = slot;
        let fail = |why: String| {
            tracing::error!("zone route: blob {id} is damaged here ({why}); quarantined");
            if let Err(e) = store.quarantine(&id) {
                tracing::error!("zone route: quarantining blob {id}: {e}");
            }
            let _ = tx.blocking_send(Err(io::Error::other(format!(
                "blob {id} is damaged here: {why}"
            ))));
        };
        let mut dec = match zstd::stream::read::Decoder::new(file) {
            Ok(d) => d,
            Err(e) => return fail(format!("zstd: {e}")),
        };
        let mut hasher = blake3::Hasher::new();
        let mut total = 0u64;
        let mut held: Option<Bytes> = None;
        loop {
            let mut buf = vec![0u8; CHUNK];
            match dec.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    buf.truncate(n);
                    hasher.update(&buf);
                    total += n as u64;
                    if total > size {
                        return fail(format!("it holds more than its {size} bytes"));
                    }
                    if let Some(prev) = held.replace(Bytes::from(buf)) {
                        if tx.blocking_send(Ok(prev)).is_err() {
                            return;
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return fail(format!("zstd: {e}")),
            }
        }
        let actual = BlobId::from(hasher.finalize());
        if total != size || actual != id {
            return fail(format!(
                "its content is {total} bytes hashing to {actual}, not {size} bytes hashing to {id}"
            ));
        }
        if let Some(last) = held {
            let _ = tx.blocking_send(Ok(last));
        }
    });
    let stream = tokio_stream_from(rx).map_ok(Frame::data);
    let mut r = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    r.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    r
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<io::Result<Bytes>>,
) -> impl futures_util::Stream<Item = io::Result<Bytes>> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-", 10), Some(Ok((0, 9))));
        assert_eq!(parse_range("bytes=4-6", 10), Some(Ok((4, 6))));
        assert_eq!(parse_range("bytes=4-60", 10), Some(Ok((4, 9))));
        assert_eq!(parse_range("bytes=-3", 10), Some(Ok((7, 9))));
        assert_eq!(parse_range("bytes=10-", 10), Some(Err(())));
        assert_eq!(parse_range("bytes=0-1,3-4", 10), None);
        assert_eq!(parse_range("items=0-1", 10), None);
    }
}

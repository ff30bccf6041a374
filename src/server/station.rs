//! The station port's update routes (`/v1/station/...`): this node's active version and
//! nothing else, for registered stations that prove who they are on every request (HTTP
//! Basic with the id and secret they registered). Documents and blobs go through the same
//! code, bounds and refusals as the interserver routes.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use super::routes::{self, blocking, error, json, Body, ReqBody};
use super::State;
use crate::id::{BlobId, Root};
use crate::license::api::StationCredentials;

/// The blobs of one version, by its root: what a station may be sent.
pub(crate) type BlobSet = Option<(Root, Arc<HashSet<BlobId>>)>;

/// Route one request under `/v1/station/` (`rest` is the path after it) from the station at
/// `address`.
pub(super) async fn route(
    state: &State,
    address: &str,
    req: Request<ReqBody>,
    rest: &[&str],
) -> Response<Body> {
    let station = match authenticate(state, address, &req).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    // Only the active version: every station of a cluster sees the same one.
    let p = match routes::served(state).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    match (req.method(), rest) {
        (&Method::GET, ["published"]) => json(&p),
        (&Method::GET, ["manifest"]) => routes::manifest(state, p.root).await,
        (&Method::GET, ["rotations"]) => routes::rotations(state).await,
        (&Method::GET, ["versions", root]) => match root.parse::<Root>() {
            Ok(root) if root == p.root => routes::manifest(state, root).await,
            Ok(root) => error(
                StatusCode::NOT_FOUND,
                format!(
                    "version {root} is not the active version of this server (version {}, root {}); stations get the active version only: fetch /v1/station/published again",
                    p.number, p.root
                ),
            ),
            Err(e) => error(StatusCode::BAD_REQUEST, e),
        },
        (&Method::GET | &Method::HEAD, ["blobs", hash]) => match of_active(state, &p, hash).await {
            Ok(_) => routes::blob(state, hash, &req).await,
            Err(r) => r,
        },
        (&Method::POST, ["blobs", hash, "damaged"]) => {
            let id = match of_active(state, &p, hash).await {
                Ok(id) => id,
                Err(r) => return r,
            };
            // Anyone can register a station: its reports must not make this server rehash
            // a large blob over and over.
            if !state.station_rechecks.due(id, Instant::now()) {
                return json(&serde_json::json!({ "blob": id, "here": "rechecked recently" }));
            }
            routes::damaged(state, &format!("station {station}"), hash).await
        }
        _ => error(
            StatusCode::NOT_FOUND,
            format!(
                "no station route {} /v1/station/{}; there are GET published, GET manifest, GET versions/ROOT, GET rotations, GET|HEAD blobs/HASH and POST blobs/HASH/damaged",
                req.method(),
                rest.join("/")
            ),
        ),
    }
}

/// The station the request's credentials name, once its secret matched the one it
/// registered with; else the 401 to answer (the same for an unknown, purged or wrong one, so
/// the answer tells no one which station ids exist).
async fn authenticate(
    state: &State,
    address: &str,
    req: &Request<ReqBody>,
) -> Result<String, Response<Body>> {
    let creds = match req.headers().get(header::AUTHORIZATION) {
        None => Err(
            "station routes need the station's credentials: send `Authorization: Basic BASE64(STATION_ID:SECRET)` (curl -u STATION_ID:SECRET) with the id and secret it registered with (POST /v1/stations/register)".to_owned(),
        ),
        Some(h) => h
            .to_str()
            .map_err(|_| "the Authorization header is not text".to_owned())
            .and_then(StationCredentials::from_authorization),
    };
    let creds = creds.map_err(|why| {
        tracing::debug!(%address, "station credentials refused: {why}");
        unauthorized(why)
    })?;
    match login(state, address, creds.station.clone(), move |hub| {
        hub.ledger
            .station_secret_matches(&creds.station, &creds.secret)
            .map_err(Into::into)
    })
    .await?
    {
        (station, true) => Ok(station),
        (station, false) => Err(unauthorized(format!(
            "station {station} is not registered here with this secret (an unknown station, one purged after licenses.station_ttl without a heartbeat, or a wrong secret); register it (POST /v1/stations/register) and use the secret it registered with"
        ))),
    }
}

/// A login of `station` from `address`: `check` tells (on the blocking pool) whether its
/// credentials are right, unless the address or the id failed too often within the login
/// window: then the 429 to answer, with Retry-After, and `check` is not run. A wrong one is
/// counted in the cluster's database, where every member looks (`super::logins`).
pub(super) async fn login(
    state: &State,
    address: &str,
    station: String,
    check: impl FnOnce(&crate::hub::Hub) -> Result<bool, crate::Error> + Send + 'static,
) -> Result<(String, bool), Response<Body>> {
    let (hub, throttle, address) = (state.hub.clone(), state.logins.clone(), address.to_owned());
    let who = station.clone();
    let verdict = tokio::task::spawn_blocking(move || -> Result<_, crate::Error> {
        if let Some(wait) = throttle.wait(&hub.db, &address, &who)? {
            return Ok(Err(wait));
        }
        let right = check(&hub)?;
        if !right {
            throttle.failed(&hub.db, &address, &who)?;
        }
        Ok(Ok(right))
    })
    .await;
    match verdict {
        Ok(Ok(Ok(right))) => Ok((station, right)),
        Ok(Ok(Err(wait))) => Err(too_many_failures(&station, wait)),
        Ok(Err(e)) => Err(error(
            StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            e,
        )),
        Err(e) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, e)),
    }
}

/// The 429 to answer when `station` or `address` failed too often within the login window
/// (register and heartbeat, whose credentials the ledger checks).
pub(super) async fn login_allowed(
    state: &State,
    address: &str,
    station: &str,
) -> Result<(), Response<Body>> {
    let (hub, throttle) = (state.hub.clone(), state.logins.clone());
    let (a, s) = (address.to_owned(), station.to_owned());
    match blocking(move || Ok(throttle.wait(&hub.db, &a, &s)?)).await? {
        Some(wait) => Err(too_many_failures(station, wait)),
        None => Ok(()),
    }
}

/// Count a failed login of `station` from `address` (register and heartbeat).
pub(super) async fn login_failed(state: &State, address: &str, station: &str) {
    let (hub, throttle) = (state.hub.clone(), state.logins.clone());
    let (a, s) = (address.to_owned(), station.to_owned());
    if let Err(r) = blocking(move || Ok(throttle.failed(&hub.db, &a, &s)?)).await {
        tracing::warn!(
            station,
            "a failed station login was not counted: {:?}",
            r.status()
        );
    }
}

/// 429 for a login of `station` while its id or address has failed too often: Retry-After
/// says when the window has passed.
fn too_many_failures(station: &str, wait: Duration) -> Response<Body> {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let mut r = error(
        StatusCode::TOO_MANY_REQUESTS,
        format!(
            "too many failed logins of station {station} or from this address: logins are refused for {secs} s more, the right secret too; check the station's id and secret, then retry after that"
        ),
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    r
}

/// 401 with the challenge that says how to authenticate (RFC 9110: a 401 carries one).
fn unauthorized(why: impl std::fmt::Display) -> Response<Body> {
    let mut r = error(StatusCode::UNAUTHORIZED, why);
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"updhub stations\", charset=\"UTF-8\""),
    );
    r
}

/// The blob `hash` names when it is one of the active version `p`; else the answer (400 for a
/// bad hash, 404 for a blob of no or another version). The set of the active version's blobs is
/// computed once per root ([`crate::verify::version_blobs`]), so this is a lookup.
async fn of_active(
    state: &State,
    p: &crate::repo::Published,
    hash: &str,
) -> Result<BlobId, Response<Body>> {
    let id: BlobId = hash
        .parse()
        .map_err(|e| error(StatusCode::BAD_REQUEST, e))?;
    let cached = state
        .station_blobs
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .filter(|(root, _)| *root == p.root)
        .map(|(_, set)| set.clone());
    let set = match cached {
        Some(set) => set,
        None => {
            // Two requests missing at once both compute it: the same set, no harm.
            let (store, root) = (state.hub.store.clone(), p.root);
            let set: Arc<HashSet<BlobId>> = Arc::new(
                blocking(move || Ok(crate::verify::version_blobs(&store, &root)?))
                    .await?
                    .into_iter()
                    .collect(),
            );
            *state
                .station_blobs
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some((root, set.clone()));
            set
        }
    };
    if set.contains(&id) {
        Ok(id)
    } else {
        Err(error(
            StatusCode::NOT_FOUND,
            format!(
                "blob {id} is not part of the active version of this server (version {}); stations get the active version's blobs only: fetch /v1/station/manifest again",
                p.number
            ),
        ))
    }
}

/// How long after a station's damage report a blob is not rechecked again for another.
const RECHECK_EVERY: Duration = Duration::from_secs(60);

/// Blobs remembered at most; past that, those rechecked longer ago than [`RECHECK_EVERY`]
/// are forgotten (a report names a blob of the active version, so they are bounded anyway).
const RECHECKS_KEPT: usize = 4096;

/// When each blob was last rechecked on a station's report.
#[derive(Debug, Default)]
pub(crate) struct Rechecks(Mutex<HashMap<BlobId, Instant>>);

impl Rechecks {
    /// Whether a report of `id` at `now` is rechecked (and, if so, `now` is noted): not
    /// within [`RECHECK_EVERY`] of the last recheck of the same blob.
    pub(crate) fn due(&self, id: BlobId, now: Instant) -> bool {
        let mut last = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if last
            .get(&id)
            .is_some_and(|t| now.saturating_duration_since(*t) < RECHECK_EVERY)
        {
            return false;
        }
        if last.len() >= RECHECKS_KEPT {
            last.retain(|_, t| now.saturating_duration_since(*t) < RECHECK_EVERY);
        }
        last.insert(id, now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blob_is_rechecked_once_a_minute_whoever_reports_it() {
        let r = Rechecks::default();
        let (a, b) = (BlobId::of(b"a"), BlobId::of(b"b"));
        let t = Instant::now();
        assert!(r.due(a, t));
        assert!(!r.due(a, t + Duration::from_secs(59)));
        assert!(
            r.due(b, t + Duration::from_secs(1)),
            "another blob is its own"
        );
        assert!(r.due(a, t + RECHECK_EVERY));
    }
}

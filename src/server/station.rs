//! The station port's update routes (`/v1/station/...`): this node's active version and
//! nothing else, for registered stations that prove who they are on every request (HTTP
//! Basic with the id and secret they registered). Documents and blobs go through the same
//! code, bounds and refusals as the interserver routes.

use std::collections::HashSet;
use std::sync::Arc;

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
        (&Method::GET | &Method::HEAD, ["blobs", hash]) => {
            if let Err(r) = of_active(state, &p, hash).await {
                return r;
            }
            routes::blob(state, hash, &req).await
        }
        (&Method::POST, ["blobs", hash, "damaged"]) => {
            if let Err(r) = of_active(state, &p, hash).await {
                return r;
            }
            routes::damaged(state, &format!("station {station}"), hash).await
        }
        _ => error(
            StatusCode::NOT_FOUND,
            format!(
                "no station route {} /v1/station/{}; there are GET published, GET manifest, GET versions/ROOT, GET|HEAD blobs/HASH and POST blobs/HASH/damaged",
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
    let (hub, c) = (state.hub.clone(), creds);
    let station = c.station.clone();
    let matches = match tokio::task::spawn_blocking(move || {
        hub.ledger.station_secret_matches(&c.station, &c.secret)
    })
    .await
    {
        Ok(Ok(m)) => m,
        Ok(Err(e)) => return Err(routes::license_error(&e)),
        Err(e) => return Err(error(StatusCode::INTERNAL_SERVER_ERROR, e)),
    };
    if !matches {
        // The secret is never logged, only who tried.
        tracing::info!(%address, %station, "station credentials refused: unknown station or wrong secret");
        return Err(unauthorized(format!(
            "station {station} is not registered here with this secret (an unknown station, one purged after licenses.station_ttl without a heartbeat, or a wrong secret); register it (POST /v1/stations/register) and use the secret it registered with"
        )));
    }
    Ok(station)
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

/// `Ok` when `hash` names a blob of the active version `p`; else the answer (400 for a bad
/// hash, 404 for a blob of no or another version). The set of the active version's blobs is
/// computed once per root ([`crate::verify::version_blobs`]), so this is a lookup.
async fn of_active(
    state: &State,
    p: &crate::repo::Published,
    hash: &str,
) -> Result<(), Response<Body>> {
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
        Ok(())
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

//! The interserver HTTPS server: hyper 1.x over tokio-rustls with mutual TLS. Only peers with
//! a certificate issued by the cluster CA complete the handshake, so any other peer gets no
//! byte of the repository. The same loop serves the station port (server-only TLS): its
//! license routes, and the active version to registered stations (`station`).
//! Connections are accepted at once and admitted within bounds and timeouts (`admission`);
//! each peer is rate limited (governor, idle keys forgotten); shutdown stops accepting and
//! lets in-flight transfers finish for a grace period.

mod admission;
mod routes;
mod station;

use std::future::Future;
use std::num::NonZeroU32;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use crate::hub::Hub;

pub use admission::{AdmissionStats, Limits};
pub use routes::Stats;

use admission::Admission;

/// How long in-flight connections may finish after shutdown is signalled.
const GRACE: Duration = Duration::from_secs(10);

/// How often the rate limiter forgets idle keys: a key is back to a full bucket one second
/// after its last request, so this bounds the keys by the addresses of the last seconds.
const LIMITER_SWEEP: Duration = Duration::from_secs(1);

/// What the request handlers share.
pub(crate) struct State {
    /// The node.
    pub hub: Arc<Hub>,
    /// Counters, read by tests and benchmarks.
    pub stats: Arc<Stats>,
    /// Requests per second per peer.
    pub limiter: DefaultKeyedRateLimiter<String>,
    /// The parsed manifest of the current root, so zone routes do not re-read it per request.
    pub manifest_cache: std::sync::Mutex<Option<(crate::id::Root, Arc<crate::repo::Manifest>)>>,
    /// The blobs of the active version, the only ones the station routes send.
    pub station_blobs: std::sync::Mutex<station::BlobSet>,
    /// When stations' damage reports last had each blob rechecked.
    pub station_rechecks: station::Rechecks,
    /// The bounds and timeouts of this listener.
    pub limits: Limits,
    /// One permit per blob body being sent: bounds the memory of transfers.
    pub transfers: Arc<Semaphore>,
    /// Set when the listener stops: long-polls answer at once instead of holding the
    /// shutdown's grace period.
    pub stopping: tokio::sync::watch::Sender<bool>,
}

/// Which API a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Face {
    /// The interserver API: mutual TLS with the cluster CA.
    Interserver,
    /// The station API: server-only TLS, station credentials.
    Stations,
}

/// Serve the interserver API on `listener` until `shutdown` completes.
///
/// # Errors
/// Only a failure of the listener itself; a bad connection only ends that connection.
pub async fn run(
    listener: TcpListener,
    hub: Arc<Hub>,
    stats: Arc<Stats>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let limits = Limits::new(hub.config.server.max_connections);
    run_face(Face::Interserver, listener, hub, stats, limits, shutdown).await
}

/// Serve one face of the API on `listener` within `limits` until `shutdown` completes.
///
/// # Errors
/// Only a failure of the listener itself.
pub async fn run_face(
    face: Face,
    listener: TcpListener,
    hub: Arc<Hub>,
    stats: Arc<Stats>,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let rps = NonZeroU32::new(hub.config.server.requests_per_second).unwrap_or(NonZeroU32::MIN);
    let acceptor = TlsAcceptor::from(match face {
        Face::Interserver => hub.keys.server_tls.clone(),
        Face::Stations => hub.keys.station_tls.clone(),
    });
    let admission = Admission::new(limits.clone(), stats.clone());
    let state = Arc::new(State {
        hub,
        stats,
        limiter: RateLimiter::keyed(Quota::per_second(rps)),
        manifest_cache: std::sync::Mutex::new(None),
        station_blobs: std::sync::Mutex::new(None),
        station_rechecks: station::Rechecks::default(),
        transfers: Arc::new(Semaphore::new(limits.max_transfers.max(1))),
        stopping: tokio::sync::watch::channel(false).0,
        limits,
    });
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut sweep = tokio::time::interval(LIMITER_SWEEP);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        // Accept first, always: a connection over the limit waits in our queue (bounded),
        // not in the kernel's backlog where its connect (TLS included) times out.
        let (tcp, remote) = tokio::select! {
            _ = &mut shutdown => break,
            _ = sweep.tick() => {
                state.sweep_limiter();
                continue;
            }
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let state = state.clone();
        let admission = admission.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let address = match face {
                Face::Stations => match admission.address(remote.ip()).await {
                    Some(g) => Some(g),
                    None => {
                        tracing::debug!(%remote, "connection closed: its address holds too many that sent no request");
                        return;
                    }
                },
                // Peers prove who they are in the handshake; stale handshakes are evicted.
                Face::Interserver => None,
            };
            // Given back at the first request.
            let address = std::sync::Mutex::new(address);
            let Some(_permit) = admission.slot().await else {
                tracing::debug!(%remote, "connection closed: no slot came free in time");
                return;
            };
            let mut handshake = admission.handshake();
            let tls = tokio::select! {
                r = tokio::time::timeout(state.limits.handshake, acceptor.accept(tcp)) => match r {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => {
                        state
                            .stats
                            .rejected_handshakes
                            .fetch_add(1, Ordering::Relaxed);
                        tracing::info!(%remote, "TLS handshake refused: {e}");
                        return;
                    }
                    Err(_) => {
                        state.stats.admission.handshake_timeouts.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(%remote, "TLS handshake timed out");
                        return;
                    }
                },
                _ = &mut handshake.evicted => {
                    tracing::debug!(%remote, "stale TLS handshake closed to free its slot");
                    return;
                }
            };
            drop(handshake);
            // Who the peer is comes from its verified certificate: the id bound to it at
            // enrollment (a link), or its name (a member of this cluster).
            let (caller, cert_fp) = match face {
                Face::Interserver => {
                    let Some(cert) = tls.get_ref().1.peer_certificates().and_then(|c| c.first())
                    else {
                        return;
                    };
                    (
                        routes::Caller::Peer(state.hub.peer_identity(cert)),
                        Some(crate::keys::cert_fp(cert)),
                    )
                }
                // Stations are told apart by address for rate limiting only.
                Face::Stations => (routes::Caller::Station(remote.ip().to_string()), None),
            };
            let head = state.limits.request_head;
            let io = admission::WriteStall::new(tls, state.limits.send_stall, state.stats.clone());
            let svc = service_fn(move |req: Request<Incoming>| {
                drop(address.lock().unwrap_or_else(|p| p.into_inner()).take());
                let stall = state.limits.body_stall;
                let req = req.map(|b| routes::ReqBody::new(b, stall));
                let (state, caller) = (state.clone(), caller.clone());
                async move {
                    // A link removed while this connection was open: no byte more, the
                    // connection is cut.
                    if cert_fp.is_some_and(|fp| state.hub.is_removed(&fp)) {
                        return Err(RemovedLink);
                    }
                    routes::handle(state, face, caller, req)
                        .await
                        .map_err(|never| match never {})
                }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                // Also the keep-alive idle timeout: hyper starts it when it waits for a head.
                .header_read_timeout(head)
                .max_buf_size(routes::CHUNK_BUF)
                .serve_connection(TokioIo::new(io), svc);
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!(%remote, "connection ended: {e}");
            }
        });
    }
    drop(listener);
    state.stopping.send_replace(true);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(GRACE) => tracing::warn!("shutdown: cut connections still open after {GRACE:?}"),
    }
    Ok(())
}

/// A request on a connection whose certificate was removed meanwhile: hyper closes the
/// connection without an answer.
#[derive(Debug)]
struct RemovedLink;

impl std::fmt::Display for RemovedLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the peer's link was removed")
    }
}

impl std::error::Error for RemovedLink {}

impl State {
    /// Forget the rate-limiter keys whose bucket is full again (they would be recreated
    /// identical), so the station port does not keep every address it ever saw.
    fn sweep_limiter(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
        self.stats
            .limiter_keys
            .store(self.limiter.len() as u64, Ordering::Relaxed);
    }
}

/// Counters of one server, for tests and benchmarks.
pub fn new_stats() -> Arc<Stats> {
    Arc::new(Stats::default())
}

/// Bytes of blob bodies this server has sent.
pub fn blob_bytes_sent(stats: &Stats) -> u64 {
    stats.blob_bytes.load(Ordering::Relaxed)
}

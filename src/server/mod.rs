//! The interserver HTTPS server: hyper 1.x over tokio-rustls with mutual TLS. Only peers with
//! a certificate issued by the cluster CA complete the handshake, so any other peer gets no
//! byte of the repository. The same loop serves the station port (server-only TLS): its
//! license routes, and the active version to registered stations (`station`).
//! Connections are accepted at once and admitted within bounds and timeouts (`admission`);
//! each peer is rate limited (governor, idle keys forgotten); shutdown stops accepting and
//! lets in-flight transfers finish for a grace period.

mod admission;
mod logins;
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

pub use admission::{per_address_cap, AdmissionStats, Limits};
pub use logins::{Clock, LoginLimits};
pub use routes::Stats;

use admission::{Admission, Admit};

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
    /// Failed station logins: counted in the database, throttled, logged as a rate.
    pub logins: Arc<logins::Throttle>,
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
    let admission = Admission::new(limits.clone(), face, stats.clone());
    warn_if_few_files(limits.max_connections, limits.max_waiting);
    let state = Arc::new(State {
        hub,
        stats,
        limiter: RateLimiter::keyed(Quota::per_second(rps)),
        manifest_cache: std::sync::Mutex::new(None),
        station_blobs: std::sync::Mutex::new(None),
        station_rechecks: station::Rechecks::default(),
        transfers: Arc::new(Semaphore::new(limits.max_transfers.max(1))),
        stopping: tokio::sync::watch::channel(false).0,
        logins: Arc::new(logins::Throttle::new(limits.logins.clone())),
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
                state.logins.flush_log(false);
                continue;
            }
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors: the oldest idle connection gives its own
                    // back, so a real peer is not kept in the kernel's backlog.
                    if matches!(e.raw_os_error(), Some(23 | 24)) && admission.shed_oldest() {
                        tracing::warn!("accept failed: {e}; closed the oldest idle connection to make room (raise the open-files limit, `ulimit -n` or systemd's LimitNOFILE, above twice server.max_connections)");
                        tokio::task::yield_now().await;
                        continue;
                    }
                    // Otherwise wait rather than spin.
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
            let mut admitted = match admission.admit(remote.ip()).await {
                Admit::In(a) => a,
                Admit::Busy(_queued) => {
                    tracing::debug!(%remote, "no slot came free in time: answering 503");
                    answer_busy(&acceptor, tcp, &state.limits).await;
                    return;
                }
                Admit::Refused => {
                    tracing::debug!(%remote, "connection closed: every slot is serving and the wait queue is full");
                    return;
                }
            };
            let tcp = admitted.heard(tcp);
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
                () = admitted.shed() => {
                    tracing::debug!(%remote, "idle TLS handshake closed to make room for a newcomer");
                    return;
                }
            };
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
            // The connection is idle (and may be shed) until its first request.
            let requested = admitted.requested();
            let svc = service_fn(move |req: Request<Incoming>| {
                requested.mark();
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
            tokio::select! {
                r = watcher.watch(conn) => if let Err(e) = r {
                    tracing::debug!(%remote, "connection ended: {e}");
                },
                () = admitted.shed() => {
                    tracing::debug!(%remote, "idle connection (no request yet) closed to make room for a newcomer");
                }
            }
        });
    }
    drop(listener);
    state.logins.flush_log(true);
    state.stopping.send_replace(true);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(GRACE) => tracing::warn!("shutdown: cut connections still open after {GRACE:?}"),
    }
    Ok(())
}

/// Answer the one request of a connection that found no slot within `queue_wait` with 503
/// and Retry-After, then close it: a busy server says so instead of resetting (a station or
/// a script may not retry a reset). Bounded by the handshake and head timeouts.
async fn answer_busy(acceptor: &TlsAcceptor, tcp: tokio::net::TcpStream, limits: &Limits) {
    let Ok(Ok(tls)) = tokio::time::timeout(limits.handshake, acceptor.accept(tcp)).await else {
        return;
    };
    let max = limits.max_connections;
    let svc = service_fn(move |_req: Request<Incoming>| async move {
        Ok::<_, std::convert::Infallible>(routes::busy_connections(max))
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.handshake)
        .keep_alive(false)
        .serve_connection(TokioIo::new(tls), svc);
    let _ = tokio::time::timeout(limits.handshake * 2, conn).await;
}

/// Warn when the open-files limit cannot hold `max_connections` connections plus
/// `max_waiting` waiting ones (Linux: /proc/self/limits); past it, accept fails and the
/// oldest idle connections are closed to make room.
fn warn_if_few_files(max_connections: usize, max_waiting: usize) {
    let Ok(limits) = std::fs::read_to_string("/proc/self/limits") else {
        return;
    };
    let soft = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|n| n.parse::<usize>().ok());
    // The store, the database and the other listener need some too.
    let want = max_connections + max_waiting + 256;
    if let Some(soft) = soft.filter(|s| *s < want) {
        tracing::warn!("this process may open {soft} files, fewer than the {want} that server.max_connections = {max_connections} (plus as many waiting) needs; raise the open-files limit (`ulimit -n {want}`, systemd's LimitNOFILE={want}) or lower server.max_connections");
    }
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

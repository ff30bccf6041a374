//! The interserver HTTPS server: hyper 1.x over tokio-rustls with mutual TLS. Only peers with
//! a certificate issued by the cluster CA complete the handshake, so any other peer gets no
//! byte of the repository. Connections are bounded by a semaphore; each peer is rate limited
//! (governor); shutdown stops accepting and lets in-flight transfers finish for a grace period.

mod routes;

use std::future::Future;
use std::num::NonZeroU32;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use crate::hub::Hub;

pub use routes::Stats;

/// How long in-flight connections may finish after shutdown is signalled.
const GRACE: Duration = Duration::from_secs(10);

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
    run_face(Face::Interserver, listener, hub, stats, shutdown).await
}

/// Serve one face of the API on `listener` until `shutdown` completes.
///
/// # Errors
/// Only a failure of the listener itself.
pub async fn run_face(
    face: Face,
    listener: TcpListener,
    hub: Arc<Hub>,
    stats: Arc<Stats>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let rps = NonZeroU32::new(hub.config.server.requests_per_second).unwrap_or(NonZeroU32::MIN);
    let permits = Arc::new(Semaphore::new(hub.config.server.max_connections));
    let acceptor = TlsAcceptor::from(match face {
        Face::Interserver => hub.keys.server_tls.clone(),
        Face::Stations => hub.keys.station_tls.clone(),
    });
    let state = Arc::new(State {
        hub,
        stats,
        limiter: RateLimiter::keyed(Quota::per_second(rps)),
        manifest_cache: std::sync::Mutex::new(None),
    });
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            p = permits.clone().acquire_owned() => p.expect("semaphore is never closed"),
        };
        let (tcp, remote) = tokio::select! {
            _ = &mut shutdown => break,
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
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _permit = permit;
            let tls =
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => {
                        state
                            .stats
                            .rejected_handshakes
                            .fetch_add(1, Ordering::Relaxed);
                        tracing::info!(%remote, "TLS handshake refused: {e}");
                        return;
                    }
                    Err(_) => return,
                };
            let peer = match face {
                Face::Interserver => tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .and_then(crate::keys::peer_name)
                    .unwrap_or_else(|| "unknown".to_owned()),
                // Stations are told apart by address for rate limiting only.
                Face::Stations => remote.ip().to_string(),
            };
            let svc = service_fn(move |req| routes::handle(state.clone(), face, peer.clone(), req));
            let conn = hyper::server::conn::http1::Builder::new()
                .max_buf_size(routes::CHUNK_BUF)
                .serve_connection(TokioIo::new(tls), svc);
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!(%remote, "connection ended: {e}");
            }
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(GRACE) => tracing::warn!("shutdown: cut connections still open after {GRACE:?}"),
    }
    Ok(())
}

/// Counters of one server, for tests and benchmarks.
pub fn new_stats() -> Arc<Stats> {
    Arc::new(Stats::default())
}

/// Bytes of blob bodies this server has sent.
pub fn blob_bytes_sent(stats: &Stats) -> u64 {
    stats.blob_bytes.load(Ordering::Relaxed)
}

/// The response header in which a node names its chain of parents.
pub fn routes_chain_header() -> &'static str {
    routes::CHAIN_HEADER
}

/// Run a node: the interserver server, plus the re-signing loop on a top parent, plus the
/// follow loop on a child (so one process is a child and a parent at once), until
/// `shutdown` completes.
///
/// # Errors
/// A failure of the listener.
pub async fn serve_node(
    listener: TcpListener,
    stations: Option<TcpListener>,
    hub: Arc<Hub>,
    stats: Arc<Stats>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    // Expiry survives downtime: whatever ended while this node was down is reclaimed before
    // the first request is served.
    let swept = hub
        .ledger
        .sweep(hub.config.licenses.station_ttl)
        .await
        .map_err(std::io::Error::other)?;
    if swept != crate::license::ledger::Sweep::default() {
        tracing::info!(?swept, "license sweep at start");
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    {
        let hub = hub.clone();
        let mut stop = stop_rx.clone();
        tasks.spawn(async move {
            let every = (hub.config.licenses.skew_margin / 2).clamp(Duration::from_millis(200), Duration::from_secs(60));
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = stop.changed() => return,
                }
                match hub.ledger.sweep(hub.config.licenses.station_ttl).await {
                    Ok(s) if s != crate::license::ledger::Sweep::default() => tracing::info!(?s, "license sweep"),
                    Ok(_) => {}
                    Err(e) => tracing::error!("license sweep failed: {e}"),
                }
                if let Ok(sources) = hub.ledger.status(hub.config.licenses.warn_before) {
                    for s in sources.iter().filter(|s| s.expiring_soon) {
                        tracing::warn!(
                            "license {} ({}) stops counting at {}: {} stations use it; renew it or add a key",
                            s.source_id, s.kind, s.usable_until, s.used
                        );
                    }
                }
            }
        });
    }
    if let Some(l) = stations {
        let hub = hub.clone();
        let stats = stats.clone();
        let mut stop = stop_rx.clone();
        tasks.spawn(async move {
            let done = async move {
                let _ = stop.changed().await;
            };
            if let Err(e) = run_face(Face::Stations, l, hub, stats, done).await {
                tracing::error!("station listener failed: {e}");
            }
        });
    }
    if let Some(parent) = hub.config.upstream.parent.clone() {
        tasks.spawn(crate::child::follow(hub.clone(), parent, stop_rx.clone()));
    } else {
        let hub = hub.clone();
        let mut stop = stop_rx.clone();
        tasks.spawn(async move {
            // Check often enough that even a short validity is renewed in time.
            let every = (hub.config.publish.expires_in / 8)
                .clamp(Duration::from_millis(100), Duration::from_secs(60));
            loop {
                if let Err(e) = hub.resign_if_due() {
                    tracing::error!("re-signing the published version failed: {e}");
                }
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = stop.changed() => return,
                }
            }
        });
    }
    let result = run(listener, hub, stats, shutdown).await;
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
    result
}

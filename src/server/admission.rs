//! Who gets a connection and for how long: the server's bounds (connections, per-address
//! connections on the station port, concurrent blob transfers) and its timeouts (TLS
//! handshake, request head and keep-alive idle, request-body stall). Connections are accepted
//! first and then wait for a slot, so a burst never fills the kernel's backlog; a slot held by
//! a handshake that has not finished in a while is given to a newcomer, so idle sockets
//! cannot lock real peers out.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

/// Every bound and timeout of one listener. [`Limits::new`] gives the defaults; tests shorten
/// the timeouts.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections served at once (`server.max_connections`); more wait for a slot.
    pub max_connections: usize,
    /// Connections waiting for a slot; more are closed at once (the client retries).
    pub max_waiting: usize,
    /// How long an accepted connection waits for a slot before it is closed.
    pub queue_wait: Duration,
    /// Connections one address may hold on the station port (anyone can reach it) before
    /// their first request; more wait for a share.
    pub per_address: usize,
    /// A TLS handshake not finished within this is dropped.
    pub handshake: Duration,
    /// A handshake still running after this may lose its slot to a newcomer when all slots are
    /// taken (a real handshake takes milliseconds).
    pub stale_handshake: Duration,
    /// A connection must deliver a complete request head within this of becoming idle: the
    /// header-read timeout and the keep-alive idle timeout in one (hyper starts the clock
    /// when it starts waiting for the next request).
    pub request_head: Duration,
    /// A request body that sends nothing for this long gets 408 and its connection closed.
    pub body_stall: Duration,
    /// A write the peer takes no byte of for this long closes the connection.
    pub send_stall: Duration,
    /// Blob bodies sent at once; each holds a chunk buffer, so this bounds the memory.
    pub max_transfers: usize,
    /// How long a blob request waits for a transfer slot before it gets 503 + Retry-After.
    pub transfer_wait: Duration,
}

impl Limits {
    /// The defaults for a server allowing `max_connections`.
    pub fn new(max_connections: usize) -> Limits {
        let max_connections = max_connections.max(1);
        Limits {
            max_connections,
            max_waiting: max_connections,
            // Under the child's 10 s connect timeout, which counts the handshake too.
            queue_wait: Duration::from_secs(8),
            // Stations behind one NAT share an address; a station's call lasts milliseconds.
            per_address: 32.min(max_connections),
            handshake: Duration::from_secs(10),
            stale_handshake: Duration::from_secs(2),
            // Shorter than nginx's 60 s client_header_timeout: our peers are programs. The
            // child's pool drops idle connections before this (peer::POOL_IDLE).
            request_head: Duration::from_secs(20),
            // Our request bodies are a few hundred bytes: a stall of seconds is no network.
            body_stall: Duration::from_secs(10),
            // The child gives up a read after the same time (child::STALL).
            send_stall: Duration::from_secs(30),
            // 64 × ~0.5 MiB (a 256 KiB chunk plus hyper's and rustls's buffers) ≈ 32 MiB;
            // two cores saturate long before 64 streams.
            max_transfers: 64,
            transfer_wait: Duration::from_secs(20),
        }
    }
}

/// The counters of admission, shown in [`super::Stats`].
#[derive(Debug, Default)]
pub struct AdmissionStats {
    /// Connections closed at once: their address holds too many, or the wait queue is full.
    pub refused: AtomicU64,
    /// Connections closed after waiting `queue_wait` for a slot.
    pub queue_timeouts: AtomicU64,
    /// Handshakes that did not finish within `handshake`.
    pub handshake_timeouts: AtomicU64,
    /// Stale handshakes whose slot went to a newcomer.
    pub evicted: AtomicU64,
    /// Connections closed because the peer took no byte of a write for `send_stall`.
    pub send_stalls: AtomicU64,
}

/// The shared state of one listener's admission.
pub(crate) struct Admission {
    pub limits: Limits,
    /// One permit per connection being served (handshake included).
    serving: Arc<Semaphore>,
    /// One permit per connection waiting for a serving permit.
    waiting: Arc<Semaphore>,
    /// Handshakes in progress, oldest first, each with the sender that evicts it when dropped.
    pending: Mutex<BTreeMap<u64, (Instant, oneshot::Sender<()>)>>,
    next: AtomicU64,
    /// Connections per address that have not sent a request yet (station port only); an
    /// entry goes with its last such connection, so the map is bounded by the connections.
    per_addr: Mutex<HashMap<IpAddr, usize>>,
    /// Woken whenever an address gives a share back.
    share_freed: tokio::sync::Notify,
    stats: Arc<super::Stats>,
}

/// An address's share, given back on drop.
pub(crate) struct AddressGuard {
    adm: Arc<Admission>,
    ip: IpAddr,
}

impl Drop for AddressGuard {
    fn drop(&mut self) {
        let mut m = self.adm.per_addr.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
        drop(m);
        self.adm.share_freed.notify_waiters();
    }
}

/// A handshake in progress; `evicted` resolves when a newcomer takes its slot.
pub(crate) struct Handshake {
    adm: Arc<Admission>,
    id: u64,
    pub evicted: oneshot::Receiver<()>,
}

impl Drop for Handshake {
    fn drop(&mut self) {
        self.adm
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
    }
}

impl Admission {
    pub fn new(limits: Limits, stats: Arc<super::Stats>) -> Arc<Admission> {
        Arc::new(Admission {
            serving: Arc::new(Semaphore::new(limits.max_connections)),
            waiting: Arc::new(Semaphore::new(limits.max_waiting)),
            pending: Mutex::new(BTreeMap::new()),
            next: AtomicU64::new(0),
            per_addr: Mutex::new(HashMap::new()),
            share_freed: tokio::sync::Notify::new(),
            limits,
            stats,
        })
    }

    /// Count a connection from `ip` against the per-address cap, which bounds the
    /// connections of one address that have not sent a request yet (the guard is dropped at
    /// the first request): idle sockets of one address cannot take every slot, while a
    /// burst of real requests from one address (stations behind one NAT) only waits a
    /// moment. Over the cap, wait (in the bounded queue) for a share; `None`: close.
    pub async fn address(self: &Arc<Self>, ip: IpAddr) -> Option<AddressGuard> {
        if let Some(g) = self.try_address(ip) {
            return Some(g);
        }
        let Ok(_queued) = self.waiting.clone().try_acquire_owned() else {
            self.stats.admission.refused.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        let deadline = tokio::time::Instant::now() + self.limits.queue_wait;
        loop {
            let freed = self.share_freed.notified();
            tokio::pin!(freed);
            // Register before checking, so a share freed in between is not missed.
            freed.as_mut().enable();
            if let Some(g) = self.try_address(ip) {
                return Some(g);
            }
            if tokio::time::timeout_at(deadline, freed).await.is_err() {
                self.stats.admission.refused.fetch_add(1, Ordering::Relaxed);
                return None;
            }
        }
    }

    fn try_address(self: &Arc<Self>, ip: IpAddr) -> Option<AddressGuard> {
        let mut m = self.per_addr.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(ip).or_insert(0);
        if *n >= self.limits.per_address {
            return None;
        }
        *n += 1;
        Some(AddressGuard {
            adm: self.clone(),
            ip,
        })
    }

    /// A serving slot: at once if one is free, else after waiting (in a bounded queue, for a
    /// bounded time, evicting stale handshakes meanwhile). `None`: close the connection.
    pub async fn slot(&self) -> Option<OwnedSemaphorePermit> {
        if let Ok(p) = self.serving.clone().try_acquire_owned() {
            return Some(p);
        }
        let Ok(_queued) = self.waiting.clone().try_acquire_owned() else {
            self.stats.admission.refused.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        let deadline = Instant::now() + self.limits.queue_wait;
        // Recheck for stale handshakes a few times while waiting.
        let tick = (self.limits.stale_handshake / 2).max(Duration::from_millis(10));
        loop {
            self.evict_stale();
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                self.stats
                    .admission
                    .queue_timeouts
                    .fetch_add(1, Ordering::Relaxed);
                return None;
            }
            if let Ok(p) =
                tokio::time::timeout(left.min(tick), self.serving.clone().acquire_owned()).await
            {
                return p.ok();
            }
        }
    }

    /// Register a handshake that may be evicted once stale.
    pub fn handshake(self: &Arc<Self>) -> Handshake {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, (Instant::now(), tx));
        Handshake {
            adm: self.clone(),
            id,
            evicted: rx,
        }
    }

    /// Evict the oldest handshake if it has run longer than `stale_handshake`.
    fn evict_stale(&self) {
        let mut m = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = m.first_entry() {
            if entry.get().0.elapsed() >= self.limits.stale_handshake {
                // Dropping the sender wakes the handshake's task, which gives its slot back.
                entry.remove();
                self.stats.admission.evicted.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// A request body that fails when no frame arrives for `stall` while one is awaited: a
/// request that promises 10⁹ bytes and sends 7 then ends in 408 instead of holding its
/// connection for good.
pub(crate) struct Stalling<B> {
    inner: B,
    stall: Duration,
    /// Running while the body is waited on and nothing comes.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

/// The error of a [`Stalling`] body that stalled.
#[derive(Debug, thiserror::Error)]
#[error("the request body sent nothing for {0:?}; send the whole body at once")]
pub(crate) struct BodyStalled(pub Duration);

impl<B> Stalling<B> {
    pub(crate) fn new(inner: B, stall: Duration) -> Self {
        Stalling {
            inner,
            stall,
            timer: None,
        }
    }
}

impl<B> Body for Stalling<B>
where
    B: Body + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = B::Data;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(r) => {
                this.timer = None;
                Poll::Ready(r.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                let stall = this.stall;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(stall)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyStalled(stall))))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A connection whose writes fail once one has waited `stall` without the peer taking a
/// byte: a client that stops reading (or vanished without a reset) gives its transfer slot
/// and connection back instead of holding them until TCP gives up, minutes later.
pub(crate) struct WriteStall<T> {
    inner: T,
    stall: Duration,
    /// Running while a write waits.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    stats: Arc<super::Stats>,
}

impl<T> WriteStall<T> {
    pub(crate) fn new(inner: T, stall: Duration, stats: Arc<super::Stats>) -> Self {
        WriteStall {
            inner,
            stall,
            timer: None,
            stats,
        }
    }

    /// Turn a pending write into an error once it has waited `stall`.
    fn watch<R>(
        &mut self,
        cx: &mut Context<'_>,
        r: Poll<std::io::Result<R>>,
    ) -> Poll<std::io::Result<R>> {
        if r.is_ready() {
            self.timer = None;
            return r;
        }
        let stall = self.stall;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(stall)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.stats
                    .admission
                    .send_stalls
                    .fetch_add(1, Ordering::Relaxed);
                Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("the peer took no byte for {stall:?}; connection closed"),
                )))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WriteStall<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WriteStall<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watch(cx, r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.watch(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        self.watch(cx, r)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.watch(cx, r)
    }
}

//! Who gets a connection and for how long: the server's bounds (connections, per-address
//! idle connections on the station port, concurrent blob transfers) and its timeouts (TLS
//! handshake, request head and keep-alive idle, request-body stall). Connections are accepted
//! first and then admitted, so a burst never fills the kernel's backlog. A connection is
//! *idle* until its first request (handshaking, or handshaken and silent): when every slot
//! is taken, a newcomer takes the slot of the oldest idle connection, which is closed, so
//! idle sockets cannot lock real peers out; one address on the station port holds at most
//! a fraction of the slots idle. Only when no slot can be taken (every connection is serving
//! a request) does a newcomer wait, held, for a bounded time, and then get 503 with
//! Retry-After: a busy server answers, it does not reset.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
    /// Connections open at once (`server.max_connections`); past it, the oldest idle one
    /// makes room for a newcomer.
    pub max_connections: usize,
    /// Connections waiting for a slot when none can be taken (all are serving requests);
    /// more are closed at once.
    pub max_waiting: usize,
    /// How long a connection waits for a slot before it is answered 503 with Retry-After.
    pub queue_wait: Duration,
    /// Idle connections (no request yet) one address may hold on the station port (anyone
    /// can reach it); past it, its newcomers wait for a share. Below `max_connections`, so
    /// other addresses always find room.
    pub per_address: usize,
    /// A TLS handshake not finished within this is dropped.
    pub handshake: Duration,
    /// An idle connection younger than this keeps its slot (a real handshake and first
    /// request take milliseconds, a slow network's a few hundred): newcomers wait for it.
    /// One that has sent bytes (its handshake is under way) keeps it four times as long,
    /// so a loaded server does not cut the real handshakes it is slow to finish.
    pub shed_after: Duration,
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
    /// Failed station logins: how many per window, and the clock of the window.
    pub logins: super::logins::LoginLimits,
}

/// The per-address cap for `max_connections`: a quarter of the slots, so one address never
/// holds more than that idle and the others always find room (at 1 slot there is no
/// other room to leave), and at most 256 (stations behind one NAT rarely handshake by the
/// hundred at once; an attacker's more sockets only replace each other).
pub fn per_address_cap(max_connections: usize) -> usize {
    (max_connections / 4).clamp(1, 256)
}

impl Limits {
    /// The defaults for a server allowing `max_connections`.
    pub fn new(max_connections: usize) -> Limits {
        let max_connections = max_connections.max(1);
        Limits {
            max_connections,
            // Waiting costs a socket and a small task: a burst of real clients waits (and
            // is answered) rather than being closed at once.
            max_waiting: max_connections.max(1024),
            // Under the child's 10 s connect timeout, which counts the handshake too.
            queue_wait: Duration::from_secs(8),
            per_address: per_address_cap(max_connections),
            handshake: Duration::from_secs(10),
            shed_after: Duration::from_millis(500),
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
            logins: super::logins::LoginLimits::default(),
        }
    }
}

/// The counters of admission, shown in [`super::Stats`].
#[derive(Debug, Default)]
pub struct AdmissionStats {
    /// Connections closed at once: every slot serving a request and the wait queue full.
    pub refused: AtomicU64,
    /// Connections answered 503 after waiting `queue_wait` for a slot.
    pub busy: AtomicU64,
    /// Handshakes that did not finish within `handshake`.
    pub handshake_timeouts: AtomicU64,
    /// Idle connections closed to make room for a newcomer (the oldest first).
    pub shed: AtomicU64,
    /// Connections closed because the peer took no byte of a write for `send_stall`.
    pub send_stalls: AtomicU64,
}

/// The shared state of one listener's admission.
pub(crate) struct Admission {
    pub limits: Limits,
    /// The per-address cap, on the station port only (the interserver port's peers are
    /// children behind a few addresses, each with several connections).
    per_address: Option<usize>,
    book: Mutex<Book>,
    /// One permit per connection waiting for a slot.
    waiting: Arc<Semaphore>,
    /// Woken when a connection ends.
    freed: tokio::sync::Notify,
    stats: Arc<super::Stats>,
}

/// Who holds the slots.
#[derive(Default)]
struct Book {
    /// The connections holding a slot.
    live: HashSet<u64>,
    /// Of those, the idle ones (no request yet), oldest first.
    idle: BTreeMap<u64, Idle>,
    /// The idle ones by address (station port only), oldest first.
    per_addr: HashMap<IpAddr, BTreeSet<u64>>,
    next: u64,
}

struct Idle {
    ip: IpAddr,
    since: Instant,
    /// Set once the peer sent a byte.
    heard: Arc<AtomicBool>,
    /// Sent to when its slot is taken: the connection's task closes it.
    shed: oneshot::Sender<()>,
}

impl Book {
    /// Leave the idle state (a request came, or the connection ended).
    fn unidle(&mut self, seq: u64) -> Option<Idle> {
        let idle = self.idle.remove(&seq)?;
        if let Some(s) = self.per_addr.get_mut(&idle.ip) {
            s.remove(&seq);
            if s.is_empty() {
                self.per_addr.remove(&idle.ip);
            }
        }
        Some(idle)
    }

    /// Of `candidates` (oldest first), the first idle connection that may be shed: silent
    /// for `after`, or idle for four times that though it has sent bytes.
    fn sheddable(&self, candidates: impl Iterator<Item = u64>, after: Duration) -> Option<u64> {
        for seq in candidates {
            let Some(i) = self.idle.get(&seq) else {
                continue;
            };
            let age = i.since.elapsed();
            if age < after {
                // The rest are younger still.
                return None;
            }
            if !i.heard.load(Ordering::Relaxed) || age >= after * 4 {
                return Some(seq);
            }
        }
        None
    }

    /// Take the slot of idle connection `seq`: it is told to close and no longer counts.
    fn shed(&mut self, seq: u64, stats: &super::Stats) {
        if let Some(idle) = self.unidle(seq) {
            self.live.remove(&seq);
            let _ = idle.shed.send(());
            stats.admission.shed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// What became of a new connection.
pub(crate) enum Admit {
    /// It holds a slot.
    In(Admitted),
    /// No slot came free within `queue_wait`: answer 503 (the permit bounds such answers).
    Busy(OwnedSemaphorePermit),
    /// Every slot is serving and the wait queue is full: close it.
    Refused,
}

/// A connection's slot, given back on drop.
pub(crate) struct Admitted {
    adm: Arc<Admission>,
    seq: u64,
    shed: Option<oneshot::Receiver<()>>,
    heard: Arc<AtomicBool>,
}

impl Admitted {
    /// The connection, noting when its peer first sends a byte.
    pub fn heard<T>(&self, io: T) -> Heard<T> {
        Heard {
            inner: io,
            heard: self.heard.clone(),
        }
    }

    /// What the service marks its first request with.
    pub fn requested(&self) -> Requested {
        Requested {
            adm: self.adm.clone(),
            seq: self.seq,
            done: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Resolves when the slot was given to a newcomer (never once a request came).
    pub async fn shed(&mut self) {
        if let Some(rx) = self.shed.as_mut() {
            if rx.await.is_ok() {
                return;
            }
            // A request came (its sender is gone): it is never shed.
            self.shed = None;
        }
        std::future::pending::<()>().await
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut b = self.adm.book.lock().unwrap_or_else(|p| p.into_inner());
        b.unidle(self.seq);
        let held = b.live.remove(&self.seq);
        drop(b);
        if held {
            self.adm.freed.notify_one();
        }
    }
}

/// Marks a connection as no longer idle (cheap to call on every request).
#[derive(Clone)]
pub(crate) struct Requested {
    adm: Arc<Admission>,
    seq: u64,
    /// Set at the first request: the later ones need not take the lock.
    done: Arc<AtomicBool>,
}

impl Requested {
    pub fn mark(&self) {
        if self.done.swap(true, Ordering::Relaxed) {
            return;
        }
        self.adm
            .book
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .unidle(self.seq);
    }
}

impl Admission {
    pub fn new(limits: Limits, face: super::Face, stats: Arc<super::Stats>) -> Arc<Admission> {
        Arc::new(Admission {
            per_address: (face == super::Face::Stations)
                .then(|| limits.per_address.clamp(1, limits.max_connections)),
            waiting: Arc::new(Semaphore::new(limits.max_waiting.max(1))),
            book: Mutex::new(Book::default()),
            freed: tokio::sync::Notify::new(),
            limits,
            stats,
        })
    }

    /// Admit a connection from `ip`: at once when a slot is free or an idle connection's
    /// can be taken (its address's oldest when the address holds its cap, else the oldest
    /// of all); else after waiting (in a bounded queue, for `queue_wait`).
    pub async fn admit(self: &Arc<Self>, ip: IpAddr) -> Admit {
        if let Some(a) = self.try_admit(ip) {
            return Admit::In(a);
        }
        let Ok(queued) = self.waiting.clone().try_acquire_owned() else {
            self.stats.admission.refused.fetch_add(1, Ordering::Relaxed);
            return Admit::Refused;
        };
        let deadline = tokio::time::Instant::now() + self.limits.queue_wait;
        // Idle connections grow old enough to be shed without anything waking us.
        let tick = (self.limits.shed_after / 4)
            .clamp(Duration::from_millis(10), Duration::from_millis(250));
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            // Register before checking, so a slot freed in between is not missed.
            freed.as_mut().enable();
            if let Some(a) = self.try_admit(ip) {
                return Admit::In(a);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                self.stats.admission.busy.fetch_add(1, Ordering::Relaxed);
                return Admit::Busy(queued);
            }
            let _ = tokio::time::timeout_at(deadline.min(now + tick), freed).await;
        }
    }

    fn try_admit(self: &Arc<Self>, ip: IpAddr) -> Option<Admitted> {
        let after = self.limits.shed_after;
        let mut b = self.book.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(cap) = self.per_address {
            // Past its share the address waits for one of its own to end or send a request:
            // it never takes others' room, and a burst of real clients behind one NAT
            // (slow to send their first bytes on a loaded server) is not cut short.
            if b.per_addr.get(&ip).is_some_and(|s| s.len() >= cap) {
                return None;
            }
        }
        if b.live.len() >= self.limits.max_connections {
            let seq = b.sheddable(b.idle.keys().copied(), after)?;
            b.shed(seq, &self.stats);
        }
        let seq = b.next;
        b.next += 1;
        let (tx, rx) = oneshot::channel();
        let heard = Arc::new(AtomicBool::new(false));
        b.live.insert(seq);
        b.idle.insert(
            seq,
            Idle {
                ip,
                since: Instant::now(),
                heard: heard.clone(),
                shed: tx,
            },
        );
        if self.per_address.is_some() {
            b.per_addr.entry(ip).or_default().insert(seq);
        }
        Some(Admitted {
            adm: self.clone(),
            seq,
            shed: Some(rx),
            heard,
        })
    }

    /// Close the oldest idle connection whatever its age (out of file descriptors: a
    /// newcomer cannot even be accepted). Whether there was one.
    pub fn shed_oldest(&self) -> bool {
        let mut b = self.book.lock().unwrap_or_else(|p| p.into_inner());
        match b.idle.keys().next().copied() {
            Some(seq) => {
                b.shed(seq, &self.stats);
                true
            }
            None => false,
        }
    }
}

/// A connection that notes when its peer first sends a byte (see [`Limits::shed_after`]).
pub(crate) struct Heard<T> {
    inner: T,
    heard: Arc<AtomicBool>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Heard<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before && !self.heard.load(Ordering::Relaxed) {
            self.heard.store(true, Ordering::Relaxed);
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Heard<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(max: usize) -> Arc<Admission> {
        let mut l = Limits::new(max);
        l.shed_after = Duration::from_millis(40);
        Admission::new(l, super::super::Face::Stations, Arc::default())
    }

    fn ip(i: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, i])
    }

    fn was_shed(c: &mut Admitted) -> bool {
        c.shed.as_mut().is_some_and(|rx| rx.try_recv().is_ok())
    }

    #[test]
    fn full_slots_go_to_newcomers_from_the_oldest_idle_connection_and_one_address_holds_a_quarter()
    {
        let a = admission(8);
        assert_eq!(a.per_address, Some(2));
        let mut c1 = a.try_admit(ip(1)).unwrap();
        let mut c2 = a.try_admit(ip(1)).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            a.try_admit(ip(1)).is_none(),
            "past its share an address waits; it takes no one's room"
        );
        // Other addresses fill the rest: 8 of 8.
        let mut others: Vec<Admitted> = (2..8).map(|i| a.try_admit(ip(i)).unwrap()).collect();
        // Full: the oldest idle one (c1, old enough) makes room.
        let c9 = a.try_admit(ip(9)).unwrap();
        assert!(was_shed(&mut c1) && !was_shed(&mut c2));
        assert_eq!(a.stats.admission.shed.load(Ordering::Relaxed), 1);
        // Connections that sent a request are never shed: with all of them serving, a
        // newcomer finds no room until one ends.
        std::thread::sleep(Duration::from_millis(50));
        let marks: Vec<Requested> = others.iter().map(Admitted::requested).collect();
        marks.iter().for_each(Requested::mark);
        c2.requested().mark();
        c9.requested().mark();
        assert!(a.try_admit(ip(10)).is_none());
        assert!(others.iter_mut().all(|c| !was_shed(c)));
        drop(others.pop());
        assert!(a.try_admit(ip(10)).is_some());
    }

    #[test]
    fn a_connection_that_sent_bytes_keeps_its_slot_four_times_as_long() {
        let a = admission(1);
        let mut c = a.try_admit(ip(1)).unwrap();
        c.heard.store(true, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(50));
        assert!(a.try_admit(ip(2)).is_none(), "its handshake is under way");
        std::thread::sleep(Duration::from_millis(120));
        assert!(a.try_admit(ip(2)).is_some());
        assert!(was_shed(&mut c));
    }
}

//! Connection bounds and timeouts (issue 6, defects 1, 12 and 13): idle sockets do not lock
//! out real peers and are closed; stalled bodies get 408; the station port caps connections
//! per address; the rate limiter forgets addresses; more children than connection slots all
//! sync; a child or a station that stops reading a blob is cut after the send stall.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use updhub::hub::Hub;
use updhub::server::{self, Limits, Stats};

/// A server started with explicit limits.
struct Served {
    url: String,
    addr: SocketAddr,
    stations_url: String,
    stations_addr: SocketAddr,
    stats: Arc<Stats>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Served {
    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
    }
}

async fn serve(hub: Arc<Hub>, limits: Limits) -> Served {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let s = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (addr, stations_addr) = (l.local_addr().unwrap(), s.local_addr().unwrap());
    let stats = server::new_stats();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(updhub::node::run_with(
        l,
        Some(s),
        hub,
        stats.clone(),
        limits,
        async {
            let _ = rx.await;
        },
    ));
    Served {
        url: format!("https://{addr}/"),
        addr,
        stations_url: format!("https://{stations_addr}/"),
        stations_addr,
        stats,
        stop: tx,
        task,
    }
}

/// Short timeouts, so the test sees them fire.
fn short(max_connections: usize) -> Limits {
    let mut l = Limits::new(max_connections);
    l.handshake = Duration::from_secs(3);
    l.shed_after = Duration::from_millis(300);
    l.request_head = Duration::from_secs(2);
    l.body_stall = Duration::from_secs(1);
    l.queue_wait = Duration::from_secs(5);
    l
}

/// A TCP connection from `from` (any 127.x address is loopback on Linux).
async fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let sock = TcpSocket::new_v4().unwrap();
    sock.bind(format!("{from}:0").parse().unwrap()).unwrap();
    sock.connect(to).await.unwrap()
}

/// Whether the server closed `s` within `within` (EOF or reset; data is read past).
async fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 4096];
    tokio::time::timeout(within, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

/// POST to `path` a head declaring `declared` body bytes, then only `start` of the body, and
/// read the whole answer; `None` if the server still holds the connection after 30 s (a
/// bound only so that a broken server cannot hang the test).
async fn short_body(
    mut s: tokio_rustls::client::TlsStream<TcpStream>,
    path: &str,
    declared: u64,
    start: &str,
) -> Option<String> {
    s.write_all(
        format!(
            "POST {path} HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: {declared}\r\n\r\n{start}"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut got = Vec::new();
    // A reset counts as closed, like an orderly end.
    let _ = tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut got))
        .await
        .ok()?;
    Some(String::from_utf8_lossy(&got).into_owned())
}

/// A TLS client for the station port trusting the cluster CA.
fn station_tls(hub: &Hub) -> tokio_rustls::TlsConnector {
    let pem = std::fs::read(hub.data.join("keys/ca.crt")).unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(updhub::peer::ca_only_tls(&pem).unwrap()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_do_not_lock_out_a_child_or_a_station_and_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let parent = licensed_parent(dir.path()).await;
    let max = 16;
    let srv = serve(parent.clone(), short(max)).await;
    // Made first: on PostgreSQL making a node takes longer than the idle sockets' 3 s.
    let child = child_of(dir.path(), "child", &parent, None);
    let stations = station_client(&parent);

    // Fill every slot of both ports with sockets that never say a word.
    let mut inter = Vec::new();
    for _ in 0..max {
        inter.push(connect_from("127.0.0.1", srv.addr).await);
    }
    let mut station_idle = Vec::new();
    for _ in 0..max {
        station_idle.push(connect_from("127.0.0.2", srv.stations_addr).await);
    }
    // Let them grow older than `shed_after` (a real handshake takes milliseconds).
    tokio::time::sleep(Duration::from_millis(600)).await;

    // A real child syncs and a real station registers, with every slot held by idle sockets:
    // the oldest idle ones give their slots to newcomers (counted as shed below).
    let report = updhub::child::sync_once(&child, &srv.url).await.unwrap();
    assert!(report.changed, "{report}");
    assert_eq!(
        tree(&checkout(&parent, dir.path(), "p")),
        tree(&checkout(&child, dir.path(), "c"))
    );
    let (status, body) = register(&stations, &srv.stations_url, "ws-1").await;
    assert_eq!(status, 200, "{body}");
    let a = &srv.stats.admission;
    assert!(a.shed.load(Ordering::Relaxed) >= 1, "{a:?}");

    // Every idle socket is closed: shed, or by the handshake timeout (3 s); the
    // bound here only keeps a broken server from hanging the test on a loaded machine.
    for (i, s) in inter.iter_mut().chain(station_idle.iter_mut()).enumerate() {
        assert!(
            closed_within(s, Duration::from_secs(30)).await,
            "idle socket {i} still open"
        );
    }
    // Each was closed by the server for a reason it counted: handshake timeout, shed for a
    // newcomer, refused at once or answered busy after waiting for a slot, or a handshake
    // that failed (counted as a rejected handshake).
    // The server drops a timed-out handshake's socket before it counts it, so the client
    // may see the last closure a moment before the count: wait for it (CI once read 31 of
    // 32 at once).
    let counted = || {
        a.handshake_timeouts.load(Ordering::Relaxed)
            + a.shed.load(Ordering::Relaxed)
            + a.refused.load(Ordering::Relaxed)
            + a.busy.load(Ordering::Relaxed)
            + srv.stats.rejected_handshakes.load(Ordering::Relaxed)
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while counted() < 2 * max as u64 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        counted() >= 2 * max as u64,
        "{a:?}, rejected handshakes {}",
        srv.stats.rejected_handshakes.load(Ordering::Relaxed)
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_without_a_request_is_closed_after_the_head_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let parent = licensed_parent(dir.path()).await;
    let srv = serve(parent.clone(), short(16)).await;
    let tls = station_tls(&parent);
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();

    // Handshake done, then silence.
    let tcp = TcpStream::connect(srv.stations_addr).await.unwrap();
    let mut silent = tls.connect(name.clone(), tcp).await.unwrap();
    // One request, then silence (keep-alive idle).
    let tcp = TcpStream::connect(srv.stations_addr).await.unwrap();
    let mut kept = tls.connect(name, tcp).await.unwrap();
    let body = r#"{"station":"ws-1","secret":"secret-of-ws-1-0123456789"}"#;
    kept.write_all(
        format!(
            "POST /v1/stations/register HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = kept.read(&mut buf).await.unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    for (what, s) in [("silent", &mut silent), ("kept alive", &mut kept)] {
        let closed = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "{what} connection still open after 5 s");
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_stalls_gets_408_and_one_too_big_gets_413_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let parent = licensed_parent(dir.path()).await;
    let srv = serve(parent.clone(), short(16)).await;
    let tls = station_tls(&parent);
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    for (declared, want) in [(100u64, "HTTP/1.1 408"), (1_000_000_000, "HTTP/1.1 413")] {
        let tcp = TcpStream::connect(srv.stations_addr).await.unwrap();
        let s = tls.connect(name.clone(), tcp).await.unwrap();
        let text = short_body(s, "/v1/stations/register", declared, "{\"stat")
            .await
            .unwrap_or_else(|| {
                panic!("a body declaring {declared} bytes and sending 7 still holds its connection")
            });
        assert!(text.starts_with(want), "declared {declared}: {text}");
        assert!(text.contains("body"), "the message names the body: {text}");
    }
    assert_eq!(srv.stats.body_stalls.load(Ordering::Relaxed), 1);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limiter_forgets_addresses_it_saw() {
    let dir = tempfile::tempdir().unwrap();
    let parent = licensed_parent(dir.path()).await;
    let srv = serve(parent.clone(), short(64)).await;
    let ca =
        reqwest::Certificate::from_pem(&std::fs::read(parent.data.join("keys/ca.crt")).unwrap())
            .unwrap();
    for i in 2..22u8 {
        let client = reqwest::Client::builder()
            .use_rustls_tls()
            .add_root_certificate(ca.clone())
            .local_address(IpAddr::from([127, 0, 0, i]))
            .build()
            .unwrap();
        let (status, body) = register(&client, &srv.stations_url, &format!("ws-{i}")).await;
        assert!(status == 200 || status == 409, "{status} {body}");
    }
    // Every key is back to a full bucket within a second; the sweep (every second) drops
    // them, so the limiter holds none of the 20 addresses.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(srv.stats.limiter_keys.load(Ordering::Relaxed), 0);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_children_than_connection_slots_all_sync_identical() {
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<(String, Vec<u8>)> = (0..16)
        .map(|i| (format!("f{i:02}.bin"), noise(96 * 1024, i)))
        .collect();
    let refs: Vec<(&str, Vec<u8>)> = files.iter().map(|(p, d)| (p.as_str(), d.clone())).collect();
    let zone = write_zone(dir.path(), "av", "2026112501", &refs);
    let parent = zone_node(dir.path(), "parent", &zone);
    mirror_and_publish(&parent).await;
    // 12 children × 4 transfers at once against 6 connection slots and 3 transfer slots.
    let mut limits = short(6);
    limits.max_transfers = 3;
    limits.transfer_wait = Duration::from_millis(300);
    let srv = serve(parent.clone(), limits).await;
    let children: Vec<Arc<Hub>> = (0..12)
        .map(|i| child_of(dir.path(), &format!("c{i}"), &parent, None))
        .collect();
    let syncs = children.iter().map(|c| {
        let url = srv.url.clone();
        let c = c.clone();
        async move { updhub::child::sync_once(&c, &url).await }
    });
    let results = futures_util::future::join_all(syncs).await;
    let want = tree(&checkout(&parent, dir.path(), "p"));
    for (i, (r, c)) in results.iter().zip(&children).enumerate() {
        let r = r
            .as_ref()
            .unwrap_or_else(|e| panic!("child {i}: {e}; {:?}", srv.stats.admission));
        assert!(r.changed, "child {i}: {r}");
        assert_eq!(tree(&checkout(c, dir.path(), &format!("c{i}"))), want);
    }
    srv.stop().await;
}

/// A zone of one incompressible 24 MiB file, so its stored blob is larger than every socket
/// buffer on the way; and that blob.
fn big_zone(dir: &std::path::Path) -> (std::path::PathBuf, updhub::id::BlobId) {
    let data = noise(24 << 20, 7);
    let id = updhub::id::BlobId::of(&data);
    (
        write_zone(dir, "av", "2026112501", &[("big.bin", data)]),
        id,
    )
}

/// Limits with one transfer slot and a send stall of a second.
fn one_stalling_slot() -> Limits {
    let mut limits = short(8);
    limits.send_stall = Duration::from_secs(1);
    limits.max_transfers = 1;
    limits
}

/// Send `request` (a blob GET) to `addr` over `tls` from a socket with a tiny receive
/// buffer, read the answer's first bytes, then nothing: the server must cut the transfer
/// after its send stall.
async fn stop_reading_a_blob(
    srv: &Served,
    tls: tokio_rustls::TlsConnector,
    addr: SocketAddr,
    request: String,
) {
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let sock = TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let tcp = sock.connect(addr).await.unwrap();
    let mut s = tls.connect(name, tcp).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut head = [0u8; 64];
    let n = s.read(&mut head).await.unwrap();
    assert!(
        head[..n].starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&head[..n])
    );
    // Now read nothing: the server's writes wait, and after the send stall it gives up.
    wait_for("the server to cut the stalled transfer", || {
        srv.stats.admission.send_stalls.load(Ordering::Relaxed) >= 1
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_a_blob_is_cut_after_the_send_stall() {
    let dir = tempfile::tempdir().unwrap();
    let (zone, id) = big_zone(dir.path());
    let parent = zone_node(dir.path(), "parent", &zone);
    mirror_and_publish(&parent).await;
    let srv = serve(parent.clone(), one_stalling_slot()).await;
    let child = child_of(dir.path(), "child", &parent, None);
    let tls = tokio_rustls::TlsConnector::from(child.keys.upstream_tls());
    let request = format!("GET /v1/blobs/{id} HTTP/1.1\r\nhost: x\r\n\r\n");
    stop_reading_a_blob(&srv, tls, srv.addr, request).await;
    // Its only transfer slot is free again: a real child syncs.
    let report = updhub::child::sync_once(&child, &srv.url).await.unwrap();
    assert!(report.changed, "{report}");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_station_that_stops_reading_a_blob_is_cut_after_the_send_stall_as_a_child_is() {
    let dir = tempfile::tempdir().unwrap();
    let (zone, id) = big_zone(dir.path());
    let parent = licensed_parent_of(dir.path(), &zone).await;
    let srv = serve(parent.clone(), one_stalling_slot()).await;
    let (status, body) = register(&station_client(&parent), &srv.stations_url, "ws-1").await;
    assert_eq!(status, 200, "{body}");
    let creds = updhub::license::api::StationCredentials {
        station: "ws-1".into(),
        secret: "secret-of-ws-1-0123456789".into(),
    };
    let request = format!(
        "GET /v1/station/blobs/{id} HTTP/1.1\r\nhost: x\r\nauthorization: {}\r\n\r\n",
        creds.authorization()
    );
    stop_reading_a_blob(&srv, station_tls(&parent), srv.stations_addr, request).await;
    // The station port's only transfer slot is free again: a station fetches the version.
    let conn = updhub::station::Connection {
        url: srv.stations_url.clone(),
        creds,
        ca_pem: std::fs::read(parent.data.join("keys/ca.crt")).unwrap(),
    };
    let r = updhub::station::fetch(
        &conn,
        updhub::station::FetchOptions {
            publishers: parent.keys.publishers(),
            out: dir.path().join("station"),
            store: None,
            parallel: 4,
        },
    )
    .await
    .unwrap();
    assert_eq!((r.files, r.blobs), (1, 1), "{r}");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_that_promises_more_than_it_sends_gets_408_on_the_interserver_port() {
    let dir = tempfile::tempdir().unwrap();
    let zone = sample_zone_copy(dir.path());
    let parent = zone_node(dir.path(), "parent", &zone);
    mirror_and_publish(&parent).await;
    let srv = serve(parent.clone(), short(8)).await;
    let child = child_of(dir.path(), "child", &parent, None);
    let tls = tokio_rustls::TlsConnector::from(child.keys.upstream_tls());
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    for (declared, want) in [(100u64, "HTTP/1.1 408"), (1_000_000_000, "HTTP/1.1 413")] {
        let tcp = TcpStream::connect(srv.addr).await.unwrap();
        let s = tls.connect(name.clone(), tcp).await.unwrap();
        let text = short_body(s, "/v1/report", declared, "{\"root\"")
            .await
            .unwrap_or_else(|| panic!("report declaring {declared} bytes still open"));
        assert!(text.starts_with(want), "declared {declared}: {text}");
        assert!(text.contains("report body"), "{text}");
    }
    srv.stop().await;
}

/// Idle sockets from `from` to `to`, `n` open at once: each one the server closes is opened
/// again at once (an attacker's loop), until the returned sender is dropped.
fn keep_idle(from: &'static str, to: SocketAddr, n: usize) -> tokio::sync::oneshot::Sender<()> {
    let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let mut open = tokio::task::JoinSet::new();
        for _ in 0..n {
            open.spawn(async move {
                loop {
                    let sock = TcpSocket::new_v4().unwrap();
                    sock.bind(format!("{from}:0").parse().unwrap()).unwrap();
                    let Ok(mut s) = sock.connect(to).await else {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    };
                    let mut buf = [0u8; 64];
                    // Never a byte from us; back as soon as the server closes it.
                    while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
                }
            });
        }
        let _ = (&mut rx).await;
        open.abort_all();
    });
    tx
}

/// A reqwest client for the station port from the loopback address `from`; `fresh`: a new
/// connection for every request (each one is admitted anew).
fn station_client_from(hub: &Hub, from: [u8; 4], fresh: bool) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(hub.data.join("keys/ca.crt")).unwrap())
        .unwrap();
    let b = reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(ca)
        .local_address(IpAddr::from(from));
    let b = if fresh {
        b.pool_max_idle_per_host(0)
    } else {
        b
    };
    b.build().unwrap()
}

/// Issue 18 item 7 (b): at `max_connections` = 16, one address holding (and reopening) 40
/// idle sockets on the station port keeps at most its share (a quarter) of the slots: a
/// station on another address registers 25 times in a row, each answered within 2 s, and
/// a child enrolls through the same port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_idle_sockets_from_one_address_leave_room_for_stations_and_enrollment() {
    let dir = tempfile::tempdir().unwrap();
    let parent = licensed_parent(dir.path()).await;
    let mut limits = Limits::new(16);
    limits.handshake = Duration::from_secs(3);
    let srv = serve(parent.clone(), limits).await;
    let flood = keep_idle("127.0.0.3", srv.stations_addr, 40);
    tokio::time::sleep(Duration::from_millis(500)).await;

    let client = station_client_from(&parent, [127, 0, 0, 4], true);
    let mut slow = Vec::new();
    for i in 0..25 {
        let t = std::time::Instant::now();
        let r = tokio::time::timeout(
            Duration::from_secs(2),
            register(&client, &srv.stations_url, "ws-1"),
        )
        .await;
        match r {
            Ok((200, _)) => {}
            Ok((status, body)) => slow.push(format!("try {i}: {status} {body}")),
            Err(_) => slow.push(format!("try {i}: no answer in {:?}", t.elapsed())),
        }
    }
    assert!(slow.is_empty(), "{} of 25 failed: {slow:?}", slow.len());

    let token = updhub::link::invite(&parent, None, "child", HOUR, &srv.stations_url)
        .unwrap()
        .0;
    let kid = node(
        dir.path(),
        "kid",
        NodeOpts {
            parent: Some(srv.url.clone()),
            ..Default::default()
        },
    );
    let data = kid.data.clone();
    drop(kid);
    tokio::time::timeout(
        Duration::from_secs(20),
        updhub::link::join(&data.join("keys"), "kid", &token),
    )
    .await
    .expect("the enrollment answered")
    .expect("the child enrolled through the station port");
    drop(flood);
    srv.stop().await;
}

/// Issue 18 item 7: a station port full of idle handshakes (16 of 16 slots, from 8
/// addresses) serves a new real request at once: an idle connection of the older half is
/// closed to make room, not the newcomer, and none of the newer half.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_full_of_idle_handshakes_sheds_the_oldest_for_a_real_request() {
    let dir = tempfile::tempdir().unwrap();
    let parent = licensed_parent(dir.path()).await;
    let mut limits = Limits::new(16);
    limits.handshake = Duration::from_secs(30);
    let srv = serve(parent.clone(), limits).await;
    let mut idle = Vec::new();
    for i in 0..16 {
        let from = format!("127.0.1.{}", 1 + i / 2);
        idle.push(connect_from(&from, srv.stations_addr).await);
        if i == 7 {
            // The older half grows older than `shed_after` (500 ms): a real handshake
            // would be done by now.
            tokio::time::sleep(Duration::from_millis(700)).await;
        }
    }
    let t = std::time::Instant::now();
    let (status, body) = register(&station_client(&parent), &srv.stations_url, "ws-1").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "answered after {:?}",
        t.elapsed()
    );
    let a = &srv.stats.admission;
    assert_eq!(a.shed.load(Ordering::Relaxed), 1, "{a:?}");
    let mut closed = Vec::new();
    for (i, s) in idle.iter_mut().enumerate() {
        if closed_within(s, Duration::from_millis(300)).await {
            closed.push(i);
        }
    }
    assert!(
        closed.len() == 1 && closed[0] < 8,
        "closed {closed:?}: one of the older half should be"
    );
    srv.stop().await;
}

/// Issue 18 item 7 (c): when every slot is serving a request, a newcomer is held for
/// `queue_wait` and then answered 503 with Retry-After, not reset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_with_every_slot_serving_answers_503_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let parent = licensed_parent(dir.path()).await;
    let mut limits = Limits::new(2);
    limits.queue_wait = Duration::from_secs(1);
    limits.body_stall = Duration::from_secs(20);
    let srv = serve(parent.clone(), limits).await;
    let tls = station_tls(&parent);
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    // Two requests in progress: their bodies are awaited (for up to 20 s).
    let mut serving = Vec::new();
    for _ in 0..2 {
        let tcp = TcpStream::connect(srv.stations_addr).await.unwrap();
        let mut s = tls.connect(name.clone(), tcp).await.unwrap();
        s.write_all(
            b"POST /v1/stations/register HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{",
        )
        .await
        .unwrap();
        serving.push(s);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = station_client(&parent)
        .post(format!("{}v1/stations/register", srv.stations_url))
        .json(&serde_json::json!({"station": "ws-1", "secret": "secret-of-ws-1-0123456789"}))
        .send()
        .await
        .expect("an answer, not a reset");
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"), "{:?}", r.headers());
    let body = r.text().await.unwrap();
    assert!(body.contains("busy"), "{body}");
    assert!(srv.stats.admission.busy.load(Ordering::Relaxed) >= 1);
    drop(serving);
    srv.stop().await;
}

/// What the updhub library logged at INFO and above in this test binary (every test's).
fn logged() -> &'static std::sync::Mutex<Vec<u8>> {
    static LOG: std::sync::OnceLock<&'static std::sync::Mutex<Vec<u8>>> =
        std::sync::OnceLock::new();
    LOG.get_or_init(|| {
        let buf: &'static std::sync::Mutex<Vec<u8>> = Box::leak(Box::default());
        struct W(&'static std::sync::Mutex<Vec<u8>>);
        impl std::io::Write for W {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let sub = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || W(buf))
            .finish();
        let _ = tracing::subscriber::set_global_default(sub);
        buf
    })
}

/// Limits whose failed-login windows are measured by `clock`.
fn with_logins(clock: &updhub::server::Clock) -> Limits {
    let mut l = short(64);
    l.logins.per_station = 10;
    l.logins.per_address = 50;
    l.logins.window = Duration::from_secs(300);
    l.logins.log_every = Duration::from_secs(1);
    l.logins.clock = clock.clone();
    l
}

/// GET /v1/station/published as `station` with `secret` through `client`: the status and
/// the Retry-After header.
async fn station_get(
    client: &reqwest::Client,
    url: &str,
    station: &str,
    secret: &str,
) -> (u16, Option<u64>) {
    let r = client
        .get(format!("{url}v1/station/published"))
        .basic_auth(station, Some(secret))
        .send()
        .await
        .unwrap();
    let after = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok()?.parse().ok());
    (r.status().as_u16(), after)
}

/// Issue 18 item 11: 1,000 wrong secrets for one station get 401 up to the bound (10 a
/// window), then 429 with Retry-After, and the right secret too, until the window passes
/// (the test's clock moves); an address that failed 50 times is throttled for every id, and
/// other addresses are not; the log sums the failures up, it has no line per failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_station_secrets_are_throttled_per_id_and_address_and_logged_as_a_rate() {
    logged();
    let dir = tempfile::tempdir().unwrap();
    let parent = licensed_parent(dir.path()).await;
    let clock = updhub::server::Clock::manual();
    let srv = serve(parent.clone(), with_logins(&clock)).await;
    let url = srv.stations_url.clone();
    let here = station_client_from(&parent, [127, 0, 0, 21], false);
    for id in ["guess-1", "guess-2"] {
        let (status, body) = register(&here, &url, id).await;
        assert_eq!(status, 200, "{body}");
    }
    let right = |id: &str| format!("secret-of-{id}-0123456789");
    assert_eq!(
        station_get(&here, &url, "guess-1", &right("guess-1"))
            .await
            .0,
        200
    );

    let mut statuses = std::collections::BTreeMap::<u16, u32>::new();
    for i in 0..1000 {
        let (status, after) = station_get(
            &here,
            &url,
            "guess-1",
            &format!("wrong-secret-{i:06}-0123456789"),
        )
        .await;
        *statuses.entry(status).or_default() += 1;
        if i < 10 {
            assert_eq!(status, 401, "try {i}");
        } else {
            assert_eq!(status, 429, "try {i}");
            let after = after.expect("429 says when to retry");
            assert!((1..=300).contains(&after), "Retry-After {after}");
        }
    }
    assert_eq!(statuses, [(401, 10), (429, 990)].into_iter().collect());
    // The right secret is throttled too: the guesser cannot tell it from a wrong one.
    assert_eq!(
        station_get(&here, &url, "guess-1", &right("guess-1"))
            .await
            .0,
        429
    );
    // So are register and heartbeat for that id.
    assert_eq!(register(&here, &url, "guess-1").await.0, 429);
    // Another id from this address is not (10 failures < 50 for the address)...
    assert_eq!(
        station_get(&here, &url, "guess-2", &right("guess-2"))
            .await
            .0,
        200
    );
    // ...until the address failed 50 times (over 40 more ids): then every id from it waits.
    for i in 0..40 {
        let (status, _) = station_get(
            &here,
            &url,
            &format!("nobody-{i}"),
            "wrong-secret-0123456789",
        )
        .await;
        assert_eq!(status, 401, "id nobody-{i}");
    }
    assert_eq!(
        station_get(&here, &url, "guess-2", &right("guess-2"))
            .await
            .0,
        429
    );
    let there = station_client_from(&parent, [127, 0, 0, 22], false);
    assert_eq!(
        station_get(&there, &url, "guess-2", &right("guess-2"))
            .await
            .0,
        200,
        "another address is not throttled"
    );

    // The window passes.
    clock.advance(Duration::from_secs(301));
    assert_eq!(
        station_get(&here, &url, "guess-1", &right("guess-1"))
            .await
            .0,
        200
    );
    srv.stop().await;

    let log = String::from_utf8(logged().lock().unwrap().clone()).unwrap();
    let ours: Vec<&str> = log.lines().filter(|l| l.contains("guess-1")).collect();
    assert!(
        !ours.is_empty() && ours.len() <= 30,
        "{} log lines name guess-1:\n{}",
        ours.len(),
        ours.join("\n")
    );
    // Every failure is counted in the summaries.
    let counted: u64 = ours
        .iter()
        .filter_map(|l| {
            let rest = l.split("failed station logins: ").nth(1)?;
            let mut words = rest.split_whitespace();
            let failed: u64 = words.next()?.parse().ok()?;
            let throttled: u64 = words.nth(3)?.parse().ok()?;
            Some(failed + throttled)
        })
        .sum();
    assert!(
        counted >= 1000,
        "the summaries count {counted}:\n{}",
        ours.join("\n")
    );
}

/// Issue 18 item 11 on a cluster: two members on one PostgreSQL database count failed
/// logins together, so spreading the tries over them does not get more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_of_a_cluster_count_failed_logins_together() {
    let Some(db) = cluster_database(
        "members_of_a_cluster_count_failed_logins_together",
        "net_connections_pg",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let zone = sample_zone_copy(dir.path());
    let iss = issuer();
    let a = node(
        dir.path(),
        "a",
        NodeOpts {
            zone: Some(&zone),
            issuers: vec![issuer_hex(&iss)],
            database: Some(db.clone()),
            ..Default::default()
        },
    );
    mirror_and_publish(&a).await;
    updhub::hub::add_license_file(&a, &key_file(dir.path(), &iss, "K1", 10, 365))
        .await
        .unwrap();
    let b = member_of(
        dir.path(),
        "b",
        &a,
        NodeOpts {
            zone: Some(&zone),
            database: Some(db),
            ..Default::default()
        },
    );
    let clock = updhub::server::Clock::manual();
    let sa = serve(a.clone(), with_logins(&clock)).await;
    let sb = serve(b.clone(), with_logins(&clock)).await;
    let client = station_client_from(&a, [127, 0, 0, 31], false);
    assert_eq!(register(&client, &sa.stations_url, "guess-9").await.0, 200);
    // 5 wrong secrets on each member: 10 for the cluster.
    for i in 0..10 {
        let url = if i % 2 == 0 {
            &sa.stations_url
        } else {
            &sb.stations_url
        };
        let (status, _) = station_get(&client, url, "guess-9", "wrong-secret-0123456789").await;
        assert_eq!(status, 401, "try {i}");
    }
    for url in [&sa.stations_url, &sb.stations_url] {
        let (status, after) =
            station_get(&client, url, "guess-9", "secret-of-guess-9-0123456789").await;
        assert_eq!((status, after.is_some()), (429, true), "{url}");
    }
    clock.advance(Duration::from_secs(301));
    // b serves the cluster's version once it fetched it from a (its store started empty);
    // until then its station route answers 404, whatever the login.
    wait_for("b to hold the cluster's version", || {
        b.db.published().unwrap() == a.db.published().unwrap()
    })
    .await;
    for url in [&sa.stations_url, &sb.stations_url] {
        let (status, _) =
            station_get(&client, url, "guess-9", "secret-of-guess-9-0123456789").await;
        assert_eq!(status, 200, "{url}");
    }
    sa.stop().await;
    sb.stop().await;
}

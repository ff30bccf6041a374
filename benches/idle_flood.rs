//! Stations register while idle handshakes flood the station port (issue 18 item 7): 2,000
//! idle connections from 500 loopback addresses, each opened again as soon as the server
//! closes it, and one station registration a second on a new connection from another
//! address. Goal: every registration answered within 2 s.
//!
//! Everything runs in this process with real listeners (TLS, HTTP/1.1, SQLite): a node with
//! a license key, serving its station port with the bounds of `Limits::new(max)`. Half the
//! idle connections never send a byte (a handshake never begun); the other half finish the
//! TLS handshake and then send nothing (no request). Each phase runs `IDLE_SECS` (default
//! 60) seconds: first with the configuration's default `server.max_connections` (room for
//! the whole flood), then with `IDLE_SMALL_MAX` (default 1,000: half the flood, so the oldest
//! idle connections are shed all the time). `IDLE_CONNECTIONS` (2,000) and
//! `IDLE_ADDRESSES` (500) set the flood. Prints, per phase, the registrations' latencies and
//! the server's admission counters.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use updhub::hub::{Hub, InitOptions};
use updhub::id::ServerId;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A node with a license key for `stations` stations.
async fn licensed_node(dir: &Path, stations: u32) -> Arc<Hub> {
    let issuer = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let data = dir.join("hub");
    drop(
        Hub::init(
            &data,
            InitOptions {
                id: Some(ServerId::new("hub").expect("valid id")),
                zone: Some(updhub::config::default_zone()),
                issuers: vec![hex::encode(issuer.verifying_key().as_bytes())],
                ..Default::default()
            },
        )
        .expect("init"),
    );
    let mut cfg = updhub::config::Config::load(&data).expect("config");
    // The flood is not what the per-address rate limit is for (it never sends a request).
    cfg.server.requests_per_second = 1_000_000;
    let hub = Arc::new(Hub::open_with(&data, cfg).expect("open"));
    let now = chrono::Utc::now();
    let key = updhub::license::LicenseKey::issue(
        &issuer,
        "K1",
        "updhub benchmark",
        stations,
        now - chrono::Duration::days(1),
        now + chrono::Duration::days(30),
    );
    let file = dir.join("key.json");
    std::fs::write(&file, serde_json::to_vec(&key).expect("key json")).expect("write key");
    updhub::hub::add_license_file(&hub, &file)
        .await
        .expect("license add");
    hub
}

/// The flood's counters.
#[derive(Default)]
struct Flood {
    opened: AtomicU64,
    closed_by_server: AtomicU64,
}

/// One idle connection from `from`, opened again whenever the server closes it; every
/// second one finishes the TLS handshake first.
async fn idle_loop(
    from: IpAddr,
    to: SocketAddr,
    handshake: Option<tokio_rustls::TlsConnector>,
    flood: Arc<Flood>,
) {
    let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
    loop {
        let sock = tokio::net::TcpSocket::new_v4().expect("socket");
        if sock.bind(SocketAddr::new(from, 0)).is_err() {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        let Ok(tcp) = sock.connect(to).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        flood.opened.fetch_add(1, Ordering::Relaxed);
        let mut buf = [0u8; 256];
        match &handshake {
            None => {
                let mut tcp = tcp;
                while matches!(tcp.read(&mut buf).await, Ok(n) if n > 0) {}
            }
            Some(tls) => {
                if let Ok(mut s) = tls.connect(name.clone(), tcp).await {
                    while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
                }
            }
        }
        flood.closed_by_server.fetch_add(1, Ordering::Relaxed);
    }
}

struct Phase {
    latencies: Vec<Duration>,
    failures: Vec<String>,
}

async fn phase(hub: &Arc<Hub>, ca_pem: &[u8], max: usize, secs: u64, conns: u64, addrs: u64) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let s = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let stations_addr = s.local_addr().expect("addr");
    let stations_url = format!("https://{stations_addr}/");
    let stats = updhub::server::new_stats();
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(updhub::node::run_with(
        l,
        Some(s),
        hub.clone(),
        stats.clone(),
        updhub::server::Limits::new(max),
        async {
            let _ = rx.await;
        },
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;

    let tls = tokio_rustls::TlsConnector::from(Arc::new(
        updhub::peer::ca_only_tls(ca_pem).expect("client tls"),
    ));
    let flood = Arc::new(Flood::default());
    let mut flooders = tokio::task::JoinSet::new();
    for i in 0..conns {
        let a = i % addrs;
        // 127.0.2.1 and on: not the stations' 127.0.0.9.
        let from = IpAddr::V4(Ipv4Addr::new(
            127,
            0,
            2 + (a / 250) as u8,
            1 + (a % 250) as u8,
        ));
        let handshake = (i % 2 == 1).then(|| tls.clone());
        flooders.spawn(idle_loop(from, stations_addr, handshake, flood.clone()));
    }
    // Let the flood fill up.
    while flood.opened.load(Ordering::Relaxed) < conns {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    let ca = reqwest::Certificate::from_pem(ca_pem).expect("ca");
    let client = reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(ca)
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 9)))
        // A new connection for each registration: each is admitted anew, as a station's is.
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(15))
        .build()
        .expect("client");
    let mut p = Phase {
        latencies: Vec::new(),
        failures: Vec::new(),
    };
    let (opened0, closed0) = (
        flood.opened.load(Ordering::Relaxed),
        flood.closed_by_server.load(Ordering::Relaxed),
    );
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    for n in 0..secs {
        tick.tick().await;
        let t = Instant::now();
        let id = format!("ws-{}", n % 50);
        let r = client
            .post(format!("{stations_url}v1/stations/register"))
            .json(
                &serde_json::json!({"station": id, "secret": format!("secret-of-{id}-0123456789")}),
            )
            .send()
            .await;
        let took = t.elapsed();
        match r {
            Ok(r) if r.status().is_success() => p.latencies.push(took),
            Ok(r) => p
                .failures
                .push(format!("#{n}: {} after {took:?}", r.status())),
            Err(e) => p.failures.push(format!("#{n}: {e} after {took:?}")),
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let reopened = flood.closed_by_server.load(Ordering::Relaxed) - closed0;
    let opened = flood.opened.load(Ordering::Relaxed) - opened0;
    flooders.abort_all();
    let _ = stop.send(());
    let _ = server.await;

    let mut l = p.latencies.clone();
    l.sort();
    let pct = |q: f64| -> String {
        if l.is_empty() {
            return "-".into();
        }
        let i = ((l.len() as f64 - 1.0) * q).round() as usize;
        format!("{:.1} ms", l[i].as_secs_f64() * 1e3)
    };
    let within = l.iter().filter(|d| **d <= Duration::from_secs(2)).count();
    let a = &stats.admission;
    println!(
        "max_connections {max}: {conns} idle from {addrs} addresses, reopened {reopened} times ({:.0}/s, {opened} opened)",
        reopened as f64 / elapsed,
        opened = opened
    );
    println!(
        "  registrations: {} of {secs} answered 200, {within} within 2 s; p50 {} p99 {} max {}",
        l.len(),
        pct(0.5),
        pct(0.99),
        pct(1.0)
    );
    println!(
        "  server: shed {}, handshake timeouts {}, busy (503) {}, refused {}",
        a.shed.load(Ordering::Relaxed),
        a.handshake_timeouts.load(Ordering::Relaxed),
        a.busy.load(Ordering::Relaxed),
        a.refused.load(Ordering::Relaxed)
    );
    for f in &p.failures {
        println!("  failed {f}");
    }
    println!(
        "  goal (every registration answered within 2 s): {}",
        if within as u64 == secs {
            "met"
        } else {
            "MISSED"
        }
    );
}

fn main() {
    // `cargo bench` passes --bench; nothing to parse.
    let secs = env("IDLE_SECS", 60);
    let conns = env("IDLE_CONNECTIONS", 2000);
    let addrs = env("IDLE_ADDRESSES", 500).max(1);
    let small = env("IDLE_SMALL_MAX", 1000) as usize;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let tmp = tempfile::tempdir().expect("temp dir");
        let hub = licensed_node(tmp.path(), 100).await;
        let ca_pem = std::fs::read(hub.data.join("keys/ca.crt")).expect("ca");
        let default_max = hub.config.server.max_connections;
        for max in [default_max, small] {
            phase(&hub, &ca_pem, max, secs, conns, addrs).await;
        }
    });
}

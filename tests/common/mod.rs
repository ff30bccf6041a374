//! Shared test fixtures: nodes in temp folders, servers on 127.0.0.1:0 with real mutual TLS,
//! zones built from the sample zone or by hand.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use updhub::config::Config;
use updhub::hub::{Hub, InitOptions};
use updhub::id::{BlobId, ServerId};
use updhub::server::{self, Stats};

/// The sample zone shipped in the repository.
pub fn sample_zone() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("mirror")
}

/// Copy a folder tree.
pub fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// A writable copy of the sample zone.
pub fn sample_zone_copy(dir: &Path) -> PathBuf {
    let z = dir.join("zone");
    copy_dir(&sample_zone(), &z);
    z
}

/// Point every product of a zone at `revision` (an upstream update).
pub fn set_zone_revision(zone: &Path, revision: &str) {
    let p = zone.join("zone.json");
    let mut v: serde_json::Value = serde_json::from_slice(&fs::read(&p).unwrap()).unwrap();
    for prod in v["products"].as_array_mut().unwrap() {
        prod["revision"] = revision.into();
    }
    fs::write(p, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

/// Write a zone by hand: one product, one revision, the given files.
pub fn write_zone(dir: &Path, product: &str, revision: &str, files: &[(&str, Vec<u8>)]) -> PathBuf {
    let zone = dir.join("handzone");
    let base = zone.join(product).join(revision);
    let mut list = Vec::new();
    let mut sorted: Vec<_> = files.iter().collect();
    sorted.sort_by_key(|f| f.0);
    for (path, data) in sorted {
        let p = base.join("data").join(path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, data).unwrap();
        list.push(serde_json::json!({"path": path, "size": data.len(), "blake3": BlobId::of(data).to_hex()}));
    }
    fs::write(
        base.join("files.json"),
        serde_json::to_vec(&serde_json::json!({"format": "updhub-files/1", "product": product, "revision": revision, "files": list})).unwrap(),
    )
    .unwrap();
    fs::write(
        zone.join("zone.json"),
        serde_json::to_vec(&serde_json::json!({"format": "updhub-zone/1", "name": "hand zone", "products": [{"name": product, "revision": revision}]})).unwrap(),
    )
    .unwrap();
    zone
}

/// Deterministic incompressible bytes.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 32);
    let mut counter = 0u64;
    while out.len() < len {
        let mut h = blake3::Hasher::new();
        h.update(&seed.to_le_bytes());
        h.update(&counter.to_le_bytes());
        out.extend_from_slice(h.finalize().as_bytes());
        counter += 1;
    }
    out.truncate(len);
    out
}

/// Options for a test node.
#[derive(Default)]
pub struct NodeOpts<'a> {
    /// Cluster keys to copy (None: a new cluster).
    pub keys_from: Option<&'a Path>,
    /// The zone it mirrors.
    pub zone: Option<&'a Path>,
    /// Its parent URL.
    pub parent: Option<String>,
    /// License issuers it trusts (hex public keys); none by default, as after `init`.
    pub issuers: Vec<String>,
    /// Clock-skew margin for grants.
    pub skew: Option<Duration>,
    /// The database URL (a cluster's members share one); default: [`test_database`].
    pub database: Option<String>,
    /// How long its leases on the cluster's once-a-period tasks hold (`server.lease_ttl`).
    pub lease_ttl: Option<Duration>,
}

/// Whether this test binary runs its nodes on PostgreSQL: the `*_pg` twins of the test
/// files (see Cargo.toml) do, the others on SQLite; the test code is the same.
pub fn on_postgres() -> bool {
    env!("CARGO_CRATE_NAME").ends_with("_pg")
}

/// The test PostgreSQL server's URL (`UPDHUB_TEST_PG_URL`, which `scripts/test.sh`, the
/// README's test command, sets). A PostgreSQL test never runs on SQLite instead: without a
/// server it fails here, naming the command that provides one.
pub fn pg_server_url() -> String {
    std::env::var("UPDHUB_TEST_PG_URL").unwrap_or_else(|_| {
        panic!(
            "this test needs PostgreSQL and UPDHUB_TEST_PG_URL is not set: run the tests with `bash scripts/test.sh` (the README's test command), which installs and starts a throwaway PostgreSQL 15 server, or set UPDHUB_TEST_PG_URL to one of your own"
        )
    })
}

/// A new, empty PostgreSQL database on the test server ([`pg_server_url`]).
pub fn new_pg_database() -> String {
    let admin = pg_server_url();
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let name = format!(
        "t_{}_{}_{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        rand::random::<u32>()
    );
    let create = format!("CREATE DATABASE {name}");
    let admin2 = admin.clone();
    // A thread of its own: callers may be inside a runtime, where blocking on one panics.
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(&admin2, tokio_postgres::NoTls)
                .await
                .expect("the test PostgreSQL server answers");
            tokio::spawn(conn);
            client.batch_execute(&create).await.unwrap();
        });
    })
    .join()
    .unwrap();
    let (base, _) = admin.rsplit_once('/').expect("a URL with a database name");
    format!("{base}/{name}")
}

/// The database URL a new test node gets: a fresh PostgreSQL database in a `*_pg` test
/// binary (which fails without a server), else `None` (the embedded SQLite file).
pub fn test_database() -> Option<String> {
    if on_postgres() {
        Some(new_pg_database())
    } else {
        None
    }
}

/// Create a node in `dir/<id>` and open it with a fast sync interval.
pub fn node(dir: &Path, id: &str, opts: NodeOpts<'_>) -> Arc<Hub> {
    let data = dir.join(id);
    Hub::init(
        &data,
        InitOptions {
            keys_from: opts.keys_from.map(Path::to_owned),
            id: Some(ServerId::new(id).unwrap()),
            name: None,
            parent: opts.parent,
            zone: opts.zone.map(|z| z.display().to_string()),
            database: opts.database.or_else(test_database),
            issuers: opts.issuers,
        },
    )
    .unwrap();
    let mut cfg = Config::load(&data).unwrap();
    cfg.upstream.sync_interval = Duration::from_millis(100);
    if let Some(s) = opts.skew {
        cfg.licenses.skew_margin = s;
    }
    if let Some(t) = opts.lease_ttl {
        cfg.server.lease_ttl = t;
    }
    // Tests fire bursts from one peer; the per-peer rate limit is tested on its own.
    cfg.server.requests_per_second = 1_000_000;
    // Write the effective config back, so a reopen (or the binary) sees the same.
    fs::write(data.join("updhub.toml"), cfg.to_commented_toml()).unwrap();
    Arc::new(Hub::open_with(&data, cfg).unwrap())
}

/// A new cluster's first node, mirroring `zone`.
pub fn zone_node(dir: &Path, id: &str, zone: &Path) -> Arc<Hub> {
    node(
        dir,
        id,
        NodeOpts {
            zone: Some(zone),
            ..Default::default()
        },
    )
}

/// Assert that `hub`'s license log holds each of `events`.
pub fn assert_logged(hub: &Hub, events: &[&str]) {
    let logged: Vec<String> = hub
        .ledger
        .log()
        .unwrap()
        .into_iter()
        .map(|l| l.event)
        .collect();
    for e in events {
        assert!(
            logged.iter().any(|x| x == e),
            "{} log lacks {e}: {logged:?}",
            hub.id()
        );
    }
}

/// A child of `parent` in the same cluster.
pub fn child_of(dir: &Path, id: &str, parent: &Hub, parent_url: Option<String>) -> Arc<Hub> {
    child_with(
        dir,
        id,
        parent,
        NodeOpts {
            parent: parent_url,
            ..Default::default()
        },
    )
}

/// A child of `parent`, with more options: a node of its own trust domain (its own keys),
/// enrolled with `parent` by link (offline, so the parent need not serve yet). Only
/// [`member_of`] shares the parent's keys.
pub fn child_with(dir: &Path, id: &str, parent: &Hub, opts: NodeOpts<'_>) -> Arc<Hub> {
    assert!(
        opts.keys_from.is_none(),
        "a child enrolled by link has keys of its own"
    );
    let n = node(dir, id, opts);
    let req = updhub::link::offline_request(&n).unwrap();
    let reply = updhub::link::offline_accept(parent, &req, "child").unwrap();
    updhub::link::offline_import(&n, &reply).unwrap();
    let (data, config) = (n.data.clone(), n.config.clone());
    drop(n);
    Arc::new(Hub::open_with(&data, config).unwrap())
}

/// A member of `parent`'s cluster: its keys copied from `parent` (`keys export` /
/// `init --keys-from`), as only members of one cluster do.
pub fn member_of(dir: &Path, id: &str, parent: &Hub, opts: NodeOpts<'_>) -> Arc<Hub> {
    let keys = dir.join(format!("{id}-keys"));
    parent.export_keys(&keys).unwrap();
    node(
        dir,
        id,
        NodeOpts {
            keys_from: Some(&keys),
            ..opts
        },
    )
}

/// A running server.
pub struct Running {
    /// Its base URL, https://127.0.0.1:PORT/.
    pub url: String,
    /// Its counters.
    pub stats: Arc<Stats>,
    /// The station API's base URL, if started with one.
    pub stations_url: Option<String>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

/// Serve `hub` on 127.0.0.1:0 (and follow its parent if it has one).
pub async fn start(hub: Arc<Hub>) -> Running {
    start_inner(hub, false).await
}

/// Serve `hub` with a station listener too.
pub async fn start_with_stations(hub: Arc<Hub>) -> Running {
    start_inner(hub, true).await
}

/// Serve `hub` again at the URL an earlier [`Running`] of it had (children that list it
/// find it where they left it).
pub async fn start_at(hub: Arc<Hub>, url: &str) -> Running {
    let addr = url
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .to_owned();
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    serve_on(hub, listener, false).await
}

async fn start_inner(hub: Arc<Hub>, with_stations: bool) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    serve_on(hub, listener, with_stations).await
}

async fn serve_on(
    hub: Arc<Hub>,
    listener: tokio::net::TcpListener,
    with_stations: bool,
) -> Running {
    let url = format!("https://{}/", listener.local_addr().unwrap());
    let (stations, stations_url) = if with_stations {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let u = format!("https://{}/", l.local_addr().unwrap());
        (Some(l), Some(u))
    } else {
        (None, None)
    };
    let stats = server::new_stats();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(updhub::node::run(
        listener,
        stations,
        hub,
        stats.clone(),
        async {
            let _ = rx.await;
        },
    ));
    Running {
        url,
        stations_url,
        stats,
        stop: Some(tx),
        task: Some(task),
    }
}

impl Running {
    /// Wait until the server stops by itself (nobody tells it to), and how it ended.
    pub async fn exited(mut self) -> std::io::Result<()> {
        self.task.take().unwrap().await.unwrap()
    }

    /// Kill the server as a crash would: nothing it holds is given back (its leases hold
    /// until they expire).
    pub async fn kill(mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
    }

    /// Stop the server and wait for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.unwrap().unwrap();
        }
    }
}

/// Mirror the configured zone and publish.
pub async fn mirror_and_publish(hub: &Hub) -> updhub::repo::Published {
    hub.mirror(None, false).await.unwrap();
    hub.publish(None).unwrap().0
}

/// Check out the current version of `hub` and return the folder.
pub fn checkout(hub: &Hub, dir: &Path, name: &str) -> PathBuf {
    let to = dir.join(format!("checkout-{name}"));
    hub.checkout(&to).unwrap();
    to
}

/// Every file under `dir` with its content, relative paths sorted.
pub fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        for e in fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                walk(base, &e.path(), out);
            } else {
                let rel = e.path().strip_prefix(base).unwrap().display().to_string();
                out.push((rel, fs::read(e.path()).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Wait until `f` holds, polling; panics with `what` after 30 s.
pub async fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The blob files of a store.
pub fn blobs(hub: &Hub) -> Vec<BlobId> {
    hub.store.list().unwrap()
}

/// A new license issuer.
pub fn issuer() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng)
}

/// The issuer's public key as config wants it.
pub fn issuer_hex(k: &ed25519_dalek::SigningKey) -> String {
    hex::encode(k.verifying_key().as_bytes())
}

/// Write a signed license key file valid from yesterday for `days`.
pub fn key_file(
    dir: &Path,
    issuer: &ed25519_dalek::SigningKey,
    id: &str,
    stations: u32,
    days: i64,
) -> PathBuf {
    let now = chrono::Utc::now();
    let k = updhub::license::LicenseKey::issue(
        issuer,
        id,
        "ACME Corp",
        stations,
        now - chrono::Duration::days(1),
        now + chrono::Duration::days(days),
    );
    let p = dir.join(format!("{id}.json"));
    fs::write(&p, serde_json::to_vec_pretty(&k).unwrap()).unwrap();
    p
}

/// A client for the station API of a cluster (server-only TLS, trusting the cluster CA).
pub fn station_client(hub: &Hub) -> reqwest::Client {
    let ca =
        reqwest::Certificate::from_pem(&fs::read(hub.data.join("keys/ca.crt")).unwrap()).unwrap();
    reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(ca)
        .build()
        .unwrap()
}

/// Register a station with its usual secret; returns the HTTP status and the JSON answer.
pub async fn register(
    client: &reqwest::Client,
    stations_url: &str,
    id: &str,
) -> (u16, serde_json::Value) {
    register_with(
        client,
        stations_url,
        id,
        &format!("secret-of-{id}-0123456789"),
    )
    .await
}

/// Register a station with a given secret.
pub async fn register_with(
    client: &reqwest::Client,
    stations_url: &str,
    id: &str,
    secret: &str,
) -> (u16, serde_json::Value) {
    let r = client
        .post(format!("{stations_url}v1/stations/register"))
        .json(&serde_json::json!({"station": id, "secret": secret}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

/// The license status row of one source.
pub fn source(hub: &Hub, id: &str) -> updhub::license::ledger::SourceStatus {
    hub.ledger
        .status(Duration::from_secs(3600))
        .unwrap()
        .into_iter()
        .find(|s| s.source_id == id)
        .unwrap_or_else(|| panic!("no license source {id} on {}", hub.id()))
}

/// Every source keeps used + donated within its count (the conservation rule).
pub fn assert_conserved(hub: &Hub) {
    for s in hub.ledger.status(Duration::from_secs(3600)).unwrap() {
        assert!(
            s.used + s.donated <= s.total,
            "conservation broken on {}: {s:?}",
            hub.id()
        );
    }
}

/// A parent on a writable copy of the sample zone, published and serving, and one child
/// that has synced from it: the start of most update tests.
pub struct Pair {
    /// The zone the parent mirrors (edit it to simulate an upstream change).
    pub zone: PathBuf,
    /// The parent.
    pub parent: Arc<Hub>,
    /// Its first published version.
    pub v1: updhub::repo::Published,
    /// The parent's server.
    pub srv: Running,
    /// The child.
    pub child: Arc<Hub>,
    /// The child's first sync.
    pub first: updhub::child::SyncReport,
}

/// Set up a [`Pair`] in `dir`.
pub async fn pair(dir: &Path) -> Pair {
    let zone = sample_zone_copy(dir);
    let parent = node(
        dir,
        "parent",
        NodeOpts {
            zone: Some(&zone),
            ..Default::default()
        },
    );
    let v1 = mirror_and_publish(&parent).await;
    let srv = start(parent.clone()).await;
    let child = child_of(dir, "child", &parent, None);
    let first = updhub::child::sync_once(&child, &srv.url).await.unwrap();
    Pair {
        zone,
        parent,
        v1,
        srv,
        child,
        first,
    }
}

/// The `updhub` binary, with no data folder from the environment.
pub fn updhub_bin() -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_updhub"));
    c.env_remove("UPDHUB_DATA");
    c
}

/// Start `updhub serve` for `data` on free ports, wait until it says it serves, and return
/// the process and its URL (with a trailing slash). Its stdout is drained in the background
/// so it never blocks on a full pipe.
pub fn spawn_serve(data: &Path, stderr: std::process::Stdio) -> (std::process::Child, String) {
    use std::io::{BufRead, BufReader};
    let mut p = updhub_bin()
        .arg("--data")
        .arg(data)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--station-listen",
            "127.0.0.1:0",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(p.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let url = first
        .split_whitespace()
        .find(|w| w.starts_with("https://"))
        .unwrap_or_else(|| panic!("no URL in {first:?}"))
        .to_owned();
    std::thread::spawn(move || for _ in lines {});
    (p, format!("{url}/"))
}

/// Read an HTTP/1.1 request head from `s` and return its path; `None` if the peer closes
/// first. For the hostile servers tests write by hand.
pub async fn read_request_path<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut b).await.unwrap_or(0) == 0 {
            return None;
        }
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    Some(head.split(' ').nth(1).unwrap_or("").to_owned())
}

/// Write a whole HTTP/1.1 answer with `status` (e.g. "200 OK") and `body` to `s` and close
/// it. For the hostile servers tests write by hand.
pub async fn write_answer<S: tokio::io::AsyncWrite + Unpin>(s: &mut S, status: &str, body: &[u8]) {
    use tokio::io::AsyncWriteExt;
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = s.write_all(head.as_bytes()).await;
    let _ = s.write_all(body).await;
    let _ = s.shutdown().await;
}

// Links between trust domains (tests/links.rs, tests/ca_rotation.rs).

pub const HOUR: Duration = Duration::from_secs(3600);

/// A new node (its own keys: another trust domain) enrolled with `parent` at `srv` by a
/// fresh token, reopened so it uses the link.
pub async fn enrolled(dir: &Path, id: &str, parent: &Hub, srv: &Running) -> Arc<Hub> {
    let token = invite(parent, srv, None);
    join(dir, id, srv, &token).await.unwrap()
}

/// A parent serving the sample zone's version 1 (with a station port), and a child `id`
/// enrolled with it by link that synced that version.
pub async fn parent_and_linked_child(dir: &Path, id: &str) -> (Arc<Hub>, Running, Arc<Hub>) {
    let parent = zone_node(dir, "parent", &sample_zone());
    mirror_and_publish(&parent).await;
    let srv = start_with_stations(parent.clone()).await;
    let child = enrolled(dir, id, &parent, &srv).await;
    updhub::child::sync_once(&child, &srv.url).await.unwrap();
    (parent, srv, child)
}

/// A new node `id` (its own keys, made with `opts`) enrolled with `parent` at `srv` as a
/// peer (licenses either way, no updates), reopened so it uses the link.
pub async fn enrolled_peer(
    dir: &Path,
    id: &str,
    parent: &Hub,
    srv: &Running,
    opts: NodeOpts<'_>,
) -> Arc<Hub> {
    let n = node(dir, id, opts);
    let data = n.data.clone();
    drop(n);
    let token = updhub::link::invite(
        parent,
        None,
        "peer",
        HOUR,
        srv.stations_url.as_deref().unwrap(),
    )
    .unwrap()
    .0;
    updhub::link::join(&data.join("keys"), id, &token)
        .await
        .unwrap();
    Arc::new(Hub::open(&data).unwrap())
}

pub fn invite(parent: &Hub, srv: &Running, id: Option<&str>) -> updhub::link::Token {
    let id = id.map(|i| updhub::id::ServerId::new(i).unwrap());
    updhub::link::invite(
        parent,
        id.as_ref(),
        "child",
        HOUR,
        srv.stations_url.as_deref().unwrap(),
    )
    .unwrap()
    .0
}

pub async fn join(
    dir: &Path,
    id: &str,
    srv: &Running,
    token: &updhub::link::Token,
) -> Result<Arc<Hub>, String> {
    let n = node(
        dir,
        id,
        NodeOpts {
            parent: Some(srv.url.clone()),
            ..Default::default()
        },
    );
    let data = n.data.clone();
    drop(n);
    updhub::link::join(&data.join("keys"), id, token)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Arc::new(Hub::open(&data).unwrap()))
}

/// A client presenting `cert`/`key` and trusting `ca` (PEM files).
pub fn client_with(ca: &Path, cert: &Path, key: &Path) -> reqwest::Client {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from_pem_file(ca).unwrap())
        .unwrap();
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_client_auth_cert(
        vec![rustls::pki_types::CertificateDer::from_pem_file(cert).unwrap()],
        rustls::pki_types::PrivateKeyDer::from_pem_file(key).unwrap(),
    )
    .unwrap();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .build()
        .unwrap()
}

/// Flip one byte in the middle of the stored (compressed) file of `id`.
pub fn flip(hub: &Hub, id: &BlobId) {
    let path = hub.store.blob_path(id);
    let mut raw = fs::read(&path).unwrap();
    let mid = raw.len() / 2;
    raw[mid] ^= 0x20;
    fs::write(&path, raw).unwrap();
}

/// The largest file blob of the served version (not the manifest).
pub fn a_file_blob(hub: &Hub) -> BlobId {
    let root = hub.db.published().unwrap().unwrap().root;
    let mut blobs = updhub::verify::version_blobs(&hub.store, &root).unwrap();
    blobs.retain(|b| *b != root.0);
    blobs.sort_by_key(|b| std::cmp::Reverse(hub.store.stored_len(b).unwrap()));
    blobs[0]
}

/// A parent with a published version of a copy of the sample zone (`dir/zone`) and a
/// license for 10 stations.
pub async fn licensed_parent(dir: &Path) -> Arc<Hub> {
    licensed_parent_of(dir, &sample_zone_copy(dir)).await
}

/// [`licensed_parent`] with the version mirrored from `zone`.
pub async fn licensed_parent_of(dir: &Path, zone: &Path) -> Arc<Hub> {
    let iss = issuer();
    let hub = node(
        dir,
        "parent",
        NodeOpts {
            zone: Some(zone),
            issuers: vec![issuer_hex(&iss)],
            ..Default::default()
        },
    );
    mirror_and_publish(&hub).await;
    updhub::hub::add_license_file(&hub, &key_file(dir, &iss, "K1", 10, 365))
        .await
        .unwrap();
    hub
}

/// The PostgreSQL database of a test whose nodes are members of one cluster, or `None`
/// after saying why it is skipped on SQLite (an embedded database has one member; the test
/// runs in its `twin`, e.g. "failover_pg"). Without a PostgreSQL server it fails
/// ([`pg_server_url`]).
pub fn cluster_database(test: &str, twin: &str) -> Option<String> {
    if !on_postgres() {
        eprintln!("SKIPPED {test} on SQLite: members of one cluster share a PostgreSQL database; it runs in {twin}");
        return None;
    }
    Some(new_pg_database())
}

/// `child`, reopened with `upstream.parents` set to the members `parents` in order (as an
/// admin writes it in updhub.toml).
pub fn with_parents(child: Arc<Hub>, parents: &[&str]) -> Arc<Hub> {
    let mut cfg = child.config.clone();
    cfg.upstream.parent = None;
    cfg.upstream.parents = parents.iter().map(|p| (*p).to_owned()).collect();
    let data = child.data.clone();
    fs::write(data.join("updhub.toml"), cfg.to_commented_toml()).unwrap();
    drop(child);
    Arc::new(Hub::open_with(&data, cfg).unwrap())
}

/// The cluster's lease row of `task` (`None`: the task never ran under a lease).
pub fn lease(hub: &Hub, task: &str) -> Option<updhub::leases::Lease> {
    hub.db
        .leases()
        .unwrap()
        .into_iter()
        .find(|l| l.task == task)
}

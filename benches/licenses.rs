//! Load test of the license paths (issue 3, "Benchmark"): station registrations over the
//! station route and grant operations over the interserver connection, against a donor and a
//! receiver running in this process on 127.0.0.1 with real TLS and real fsyncs.
//!
//! Run with `cargo bench --bench licenses`; figures and their reading are in
//! `benches/LICENSES.md`. A plain `main` rather than criterion: this is a load test that keeps
//! a fixed number of operations in flight, not a micro-benchmark.
//!
//! The run: a donor holding one key of 100,000 station licenses and a receiver that synced
//! from it once (so the donor knows it), both serving. Keep-alive connections are opened and
//! `WARMUP` registrations run unmeasured (the database is past its first WAL checkpoints, as on
//! a server that has been up a while). Then `OPS` operations run with `CONCURRENCY` in flight,
//! interleaved in a fixed pattern:
//! - `register`: a new station registers with the donor (`POST /v1/stations/register`) and
//!   takes one license (one ledger write, group-committed);
//! - `grants-get`: the receiver's `GET /v1/licenses/grants?since=CURSOR` over mutual TLS, with
//!   the interserver client the hub itself uses and the cursor the receiver holds (what its
//!   next sync would send; `LICBENCH_FULL_GET=1`: no cursor, the full array as before);
//! - `refresh`: what the receiver does on every sync and heartbeat
//!   (`license::api::refresh_from_parent`): fetch, verify the tokens, apply them;
//! - `donate`: the donor's admin donates 1 license (`Ledger::donate`, in-process, as the CLI
//!   does): the write-heavy grant operation.
//!
//! The table gives ops/s, p50, p99 and max per kind; then the conservation rule is checked on
//! both servers and PASS or FAIL printed (FAIL exits with 1; missing the performance goal
//! does not). The share of the CPUs other processes used meanwhile is printed too: on a
//! shared machine it explains most of the spread between runs.
//!
//! Settings, from the environment, with their defaults:
//! - `LICBENCH_OPS=20000`, `LICBENCH_CONCURRENCY=64`, `LICBENCH_WARMUP=2000`;
//! - `LICBENCH_SECONDS=120`: no operation starts after this;
//! - `LICBENCH_MIX=4,2,1,1`: register, grants-get, refresh, donate per round;
//! - `LICBENCH_SPREAD=1`: 1 donation in N goes to the receiver, the others to N - 1 other
//!   servers the donor knows; it sets how many tokens the receiver fetches per sync;
//! - `LICBENCH_FULL_GET=1`: `grants-get` asks without a cursor (every grant, as before schema 9);
//! - `LICBENCH_POOL=wide`: an interserver client that keeps every idle connection instead of
//!   the hub's (16);
//! - `LICBENCH_DIR`: where the data folders go (default: a temp folder);
//! - `LICBENCH_TRACE=FILE`: every measured operation as CSV (start, kind, latency);
//! - `RUST_LOG`: the hub's logs on stderr (default: errors only).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use updhub::config::Config;
use updhub::hub::{Hub, InitOptions};
use updhub::id::ServerId;
use updhub::license::ledger::Donation;
use updhub::license::LicenseKey;

/// Station licenses in the donor's key: far more than a run can use, so no request is
/// refused for lack of room and every refusal is a bug.
const KEY_STATIONS: u32 = 100_000;
/// The key's id.
const KEY_ID: &str = "BENCH-1";
/// Licenses per donation.
const DONATION: u32 = 1;
/// How long each grant runs: far past the default clock-skew margin (5 min), so no grant
/// ends during a run.
const GRANT_DAYS: i64 = 1;

/// The operations measured, in the order of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `POST /v1/stations/register` of a new station.
    Register,
    /// The receiver's `GET /v1/licenses/grants`.
    GrantsGet,
    /// The receiver's `refresh_from_parent`.
    Refresh,
    /// `Ledger::donate` on the donor.
    Donate,
}

const KINDS: [Kind; 4] = [Kind::Register, Kind::GrantsGet, Kind::Refresh, Kind::Donate];

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Register => "register",
            Kind::GrantsGet => "grants-get",
            Kind::Refresh => "refresh",
            Kind::Donate => "donate",
        }
    }
    fn index(self) -> usize {
        self as usize
    }
}

/// A setting from the environment, or its default.
fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The run's settings.
struct Settings {
    /// Operations to issue.
    ops: usize,
    /// Operations in flight at once.
    concurrency: usize,
    /// No operation starts after this.
    limit: Duration,
    /// One round of the interleaving pattern.
    pattern: Vec<Kind>,
    /// Every `spread`-th donation goes to the receiver, the others to `spread - 1` other
    /// servers the donor knows: this sets how many grants the receiver fetches per sync.
    spread: usize,
    /// Use an interserver client whose pool keeps every idle connection, instead of the hub's.
    wide_pool: bool,
    /// `grants-get` without a cursor: the full array, as before schema 9.
    full_get: bool,
    /// Registrations run before the measured operations.
    warmup: usize,
}

impl Settings {
    fn from_env() -> Settings {
        let mix: Vec<usize> = std::env::var("LICBENCH_MIX")
            .unwrap_or_else(|_| "4,2,1,1".into())
            .split(',')
            .map(|s| {
                s.trim()
                    .parse()
                    .expect("LICBENCH_MIX is four counts, e.g. 4,2,1,1")
            })
            .collect();
        assert_eq!(
            mix.len(),
            4,
            "LICBENCH_MIX is four counts: register,grants-get,refresh,donate"
        );
        // Spread each kind over the round (round-robin), not in blocks, so kinds overlap.
        let mut left = mix.clone();
        let mut pattern = Vec::new();
        while left.iter().any(|&n| n > 0) {
            for (k, n) in KINDS.iter().zip(left.iter_mut()) {
                if *n > 0 {
                    pattern.push(*k);
                    *n -= 1;
                }
            }
        }
        assert!(!pattern.is_empty(), "LICBENCH_MIX selects no operation");
        Settings {
            ops: env_or("LICBENCH_OPS", 20_000),
            concurrency: env_or("LICBENCH_CONCURRENCY", 64).max(1),
            limit: Duration::from_secs(env_or("LICBENCH_SECONDS", 120)),
            pattern,
            spread: env_or("LICBENCH_SPREAD", 1).max(1),
            wide_pool: std::env::var("LICBENCH_POOL").is_ok_and(|v| v == "wide"),
            full_get: std::env::var("LICBENCH_FULL_GET").is_ok_and(|v| v == "1"),
            warmup: env_or("LICBENCH_WARMUP", 2_000),
        }
    }
}

/// A running node: its station URL and how to stop it.
struct Node {
    stations_url: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Create a node in `dir/<id>` with the settings of a load test.
fn make_hub(
    dir: &Path,
    id: &str,
    keys_from: Option<PathBuf>,
    parent: Option<String>,
    issuer: &str,
) -> Arc<Hub> {
    let data = dir.join(id);
    // `init` writes the folder and opens it; we reopen with the benchmark's settings.
    drop(
        Hub::init(
            &data,
            InitOptions {
                keys_from,
                id: Some(ServerId::new(id).expect("valid id")),
                name: None,
                parent,
                zone: Some(updhub::config::default_zone()),
                database: None,
                issuers: Vec::new(),
            },
        )
        .expect("init"),
    );
    let mut cfg = Config::load(&data).expect("config");
    cfg.licenses.issuers = vec![issuer.to_owned()];
    // One client (127.0.0.1, or one peer id) sends everything: lift the per-peer limit.
    cfg.server.requests_per_second = 1_000_000;
    Arc::new(Hub::open_with(&data, cfg).expect("open"))
}

/// Serve `hub` (interserver + station listeners) on 127.0.0.1:0.
async fn serve(hub: Arc<Hub>, listener: tokio::net::TcpListener) -> Node {
    let stations = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let stations_url = format!("https://{}/", stations.local_addr().expect("addr"));
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(updhub::node::run(
        listener,
        Some(stations),
        hub,
        updhub::server::new_stats(),
        async {
            let _ = rx.await;
        },
    ));
    Node {
        stations_url,
        stop,
        task,
    }
}

impl Node {
    async fn shutdown(self) {
        let _ = self.stop.send(());
        self.task.await.expect("server task").expect("server");
    }
}

/// What the workers share.
struct Shared {
    settings: Settings,
    donor: Arc<Hub>,
    receiver: Arc<Hub>,
    /// The donor's station route.
    register_url: String,
    /// The donor's interserver base URL.
    donor_base: reqwest::Url,
    /// Stations client: server-only TLS trusting the cluster CA.
    stations: reqwest::Client,
    /// The receiver's interserver client (mutual TLS), as the hub builds it.
    interserver: reqwest::Client,
    /// Next operation number, over both phases (it names the stations).
    next: AtomicUsize,
    /// Stations that took a new license.
    registered: AtomicU64,
    /// Donations started, numbering them.
    donations: AtomicUsize,
    /// Licenses donated by successful donations.
    donated: AtomicU64,
    /// Of those, to the receiver.
    donated_to_receiver: AtomicU64,
    /// Bytes of `grants-get` answers, to show how the answer grows.
    grants_bytes: AtomicU64,
}

/// Latencies of one worker, per kind, and its failures.
#[derive(Default)]
struct Record {
    lat: [Vec<Duration>; 4],
    errors: [u64; 4],
    first_error: Option<String>,
    /// Every operation as (start since the clock started, kind, latency), for `LICBENCH_TRACE`.
    trace: Vec<(Duration, Kind, Duration)>,
}

/// Run operation number `i` of kind `kind`.
async fn one(s: &Shared, kind: Kind, i: usize) -> Result<(), String> {
    match kind {
        Kind::Register => {
            let station = format!("st-{i:07}");
            let r = s
                .stations
                .post(&s.register_url)
                .json(&serde_json::json!({"station": station, "secret": format!("bench-secret-{i:07}-0123456789")}))
                .send()
                .await
                .map_err(|e| format!("register: {e}"))?;
            let status = r.status();
            let body: serde_json::Value =
                r.json().await.map_err(|e| format!("register body: {e}"))?;
            if !status.is_success() || body["new"] != true {
                return Err(format!("register {station}: {status} {body}"));
            }
            s.registered.fetch_add(1, Ordering::Relaxed);
        }
        Kind::GrantsGet => {
            let url = if s.settings.full_get {
                s.donor_base.join("v1/licenses/grants").expect("joins")
            } else {
                // The cursor the receiver holds: what its next sync sends.
                let since = s
                    .receiver
                    .ledger
                    .grant_cursor(s.donor_base.as_str())
                    .map_err(|e| format!("grants cursor: {e}"))?;
                updhub::license::feed::grants_url(&s.donor_base, since.as_deref())
            };
            let r = s
                .interserver
                .get(url)
                .send()
                .await
                .map_err(|e| format!("grants: {e}"))?;
            let status = r.status();
            let body = r.bytes().await.map_err(|e| format!("grants body: {e}"))?;
            if !status.is_success() {
                return Err(format!(
                    "grants: {status} {}",
                    String::from_utf8_lossy(&body)
                ));
            }
            s.grants_bytes
                .fetch_add(body.len() as u64, Ordering::Relaxed);
        }
        Kind::Refresh => {
            updhub::license::api::refresh_from_parent(
                &s.receiver.ledger,
                &s.receiver.keys.verifying,
                &s.interserver,
                &s.donor_base,
            )
            .await
            .map_err(|e| format!("refresh: {e}"))?;
        }
        Kind::Donate => {
            let receiver = s.receiver.id().to_string();
            let n = s.donations.fetch_add(1, Ordering::Relaxed) % s.settings.spread;
            let to = if n == 0 {
                receiver.clone()
            } else {
                format!("peer-{n}")
            };
            let d = Donation {
                to: to.clone(),
                count: DONATION,
                until: Utc::now() + chrono::Duration::days(GRANT_DAYS),
                source: None,
                request_id: format!("bench-{i}"),
            };
            s.donor
                .ledger
                // The donor knows the receiver (it synced) and, in-process, the other peers.
                .donate(d, move |id| id == receiver || id.starts_with("peer-"))
                .await
                .map_err(|e| format!("donate: {e}"))?;
            s.donated.fetch_add(u64::from(DONATION), Ordering::Relaxed);
            if n == 0 {
                s.donated_to_receiver
                    .fetch_add(u64::from(DONATION), Ordering::Relaxed);
            }
        }
    }
    Ok(())
}

/// Run operations until `phase.end` are issued or `phase.deadline` passed.
async fn worker(s: Arc<Shared>, phase: Phase) -> Record {
    let mut rec = Record::default();
    loop {
        let i = s.next.fetch_add(1, Ordering::Relaxed);
        if i >= phase.end || Instant::now() >= phase.deadline {
            return rec;
        }
        let kind = phase
            .only
            .unwrap_or(s.settings.pattern[i % s.settings.pattern.len()]);
        let started = phase.started;
        let t = Instant::now();
        let res = one(&s, kind, i).await;
        let took = t.elapsed();
        rec.trace.push((t - started, kind, took));
        match res {
            Ok(()) => rec.lat[kind.index()].push(took),
            Err(e) => {
                rec.errors[kind.index()] += 1;
                rec.first_error.get_or_insert(e);
            }
        }
    }
}

/// The `p`th percentile of sorted latencies, in ms.
fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    // Nearest rank: the smallest value with at least p% of the samples at or below it.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1].as_secs_f64() * 1e3
}

/// Print one line of the table (sorts `lat`).
fn row(name: &str, lat: &mut [Duration], errors: u64, wall: f64) {
    lat.sort_unstable();
    println!(
        "{name:<12} {:>7} {:>5} {:>9.0} {:>8.2} {:>8.2} {:>8.2}",
        lat.len(),
        errors,
        lat.len() as f64 / wall,
        pct(lat, 50.0),
        pct(lat, 99.0),
        lat.last().map_or(f64::NAN, |d| d.as_secs_f64() * 1e3),
    );
}

/// Median time of a 4 KiB write + fdatasync in `dir`: the floor under one group commit.
fn fsync_probe(dir: &Path) -> f64 {
    use std::io::Write;
    let p = dir.join("fsync-probe");
    let mut f = std::fs::File::create(&p).expect("probe file");
    let mut v: Vec<f64> = (0..50)
        .map(|_| {
            let t = Instant::now();
            f.write_all(&[0u8; 4096]).expect("write");
            f.sync_data().expect("fdatasync");
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    let _ = std::fs::remove_file(&p);
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One phase of the run.
#[derive(Clone, Copy)]
struct Phase {
    /// Operation numbers stop here.
    end: usize,
    /// No operation starts after this.
    deadline: Instant,
    /// Run only this kind (the warm-up), not the pattern.
    only: Option<Kind>,
    /// The phase's clock.
    started: Instant,
}

/// Run a phase with `concurrency` workers; returns their records merged and the wall time.
async fn run_phase(s: &Arc<Shared>, phase: Phase) -> (Record, f64) {
    let workers: Vec<_> = (0..s.settings.concurrency)
        .map(|_| tokio::spawn(worker(s.clone(), phase)))
        .collect();
    let mut all = Record::default();
    for w in workers {
        let r = w.await.expect("worker");
        for k in 0..4 {
            all.lat[k].extend(r.lat[k].iter().copied());
            all.errors[k] += r.errors[k];
        }
        if all.first_error.is_none() {
            all.first_error = r.first_error;
        }
        all.trace.extend(r.trace);
    }
    (all, phase.started.elapsed().as_secs_f64())
}

/// CPU time in clock ticks since boot: (all CPUs busy, all CPUs in total, this process).
fn cpu_ticks() -> Option<(u64, u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    // user nice system idle iowait irq softirq steal (guest time is inside user).
    let cpu: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|x| x.parse().ok())
        .collect();
    if cpu.len() < 8 {
        return None;
    }
    let total: u64 = cpu.iter().sum();
    let busy = total - cpu[3] - cpu[4];
    let me = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name: state is field 3, utime 14, stime 15.
    let f: Vec<&str> = me.rsplit_once(')')?.1.split_whitespace().collect();
    let own = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some((busy, total, own))
}

/// Cores used by other processes between two [`cpu_ticks`] readings (they skew the figures).
fn other_cores(a: Option<(u64, u64, u64)>, b: Option<(u64, u64, u64)>, cores: usize) -> f64 {
    match (a, b) {
        (Some(a), Some(b)) if b.1 > a.1 => {
            let others = (b.0 - a.0).saturating_sub(b.2 - a.2);
            others as f64 / (b.1 - a.1) as f64 * cores as f64
        }
        _ => f64::NAN,
    }
}

/// Open the keep-alive connections before the clock starts: one per worker on each client.
/// Neither request writes: a station request with no credentials is refused before the
/// ledger, and a grants fetch only reads.
async fn open_connections(s: &Shared) {
    let grants = s.donor_base.join("v1/licenses/grants").expect("joins");
    let calls = (0..s.settings.concurrency).map(|_| async {
        let a = s.stations.post(&s.register_url).body("{}").send();
        let b = s.interserver.get(grants.clone()).send();
        let (a, b) = tokio::join!(a, b);
        a.expect("warm-up station request");
        b.expect("warm-up grants request");
    });
    futures_util::future::join_all(calls).await;
}

/// The conservation rule, on both sides; returns the failures.
async fn check(s: &Shared) -> Vec<String> {
    let mut bad = Vec::new();
    let warn = Duration::from_secs(3600);
    let registered = s.registered.load(Ordering::Relaxed);
    let donated = s.donated.load(Ordering::Relaxed);

    let donor = s.donor.ledger.status(warn).expect("donor status");
    for src in &donor {
        if src.used + src.donated > src.total {
            bad.push(format!(
                "donor {}: used {} + donated {} > total {}",
                src.source_id, src.used, src.donated, src.total
            ));
        }
    }
    match donor.iter().find(|x| x.source_id == KEY_ID) {
        Some(k) => {
            if k.used != registered {
                bad.push(format!(
                    "donor {KEY_ID}: status says {} used, {registered} stations were registered",
                    k.used
                ));
            }
            if k.donated != donated {
                bad.push(format!(
                    "donor {KEY_ID}: status says {} donated, {donated} were granted",
                    k.donated
                ));
            }
            if Some(k.free) != k.total.checked_sub(registered + donated) {
                bad.push(format!(
                    "donor {KEY_ID}: free {} != total - registered - donated",
                    k.free
                ));
            }
        }
        None => bad.push(format!("donor: key {KEY_ID} missing from status")),
    }
    let rows = s.donor.ledger.stations().expect("stations").len() as u64;
    if rows != registered {
        bad.push(format!(
            "donor: {rows} station rows, {registered} registrations succeeded"
        ));
    }

    // The receiver fetches once more, so it holds every grant made; then it must count
    // exactly what the donor says it donated.
    if let Err(e) = updhub::license::api::refresh_from_parent(
        &s.receiver.ledger,
        &s.receiver.keys.verifying,
        &s.interserver,
        &s.donor_base,
    )
    .await
    {
        bad.push(format!("receiver: final refresh failed: {e}"));
    }
    let recv = s.receiver.ledger.status(warn).expect("receiver status");
    let mut received = 0;
    for src in &recv {
        if src.used + src.donated > src.total {
            bad.push(format!(
                "receiver {}: used {} + donated {} > total {}",
                src.source_id, src.used, src.donated, src.total
            ));
        }
        if src.kind == "grant" && src.status == "active" {
            received += src.total;
        }
    }
    let to_receiver = s.donated_to_receiver.load(Ordering::Relaxed);
    if received != to_receiver {
        bad.push(format!(
            "receiver counts {received} licenses in active grants, the donor granted it {to_receiver}"
        ));
    }
    let outgoing: u64 = s
        .donor
        .ledger
        .grants(warn)
        .expect("donor grants")
        .outgoing
        .iter()
        .filter(|g| g.status == "active")
        .map(|g| g.count)
        .sum();
    if outgoing != donated {
        bad.push(format!(
            "donor lists {outgoing} licenses in active outgoing grants, {donated} were granted"
        ));
    }
    bad
}

fn main() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let ok = rt.block_on(run());
    std::process::exit(if ok { 0 } else { 1 });
}

async fn run() -> bool {
    let settings = Settings::from_env();
    let tmp = match std::env::var_os("LICBENCH_DIR") {
        Some(d) => {
            std::fs::create_dir_all(&d).expect("LICBENCH_DIR");
            tempfile::tempdir_in(d)
        }
        None => tempfile::tempdir(),
    }
    .expect("temp dir");
    let dir = tmp.path();

    // The donor: a key from a test issuer, the sample zone published so a child can sync.
    let issuer = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let issuer_hex = hex::encode(issuer.verifying_key().as_bytes());
    let donor = make_hub(dir, "donor", None, None, &issuer_hex);
    donor
        .mirror(None, false)
        .await
        .expect("mirror the sample zone");
    donor.publish(None).expect("publish");
    let now = Utc::now();
    let key = LicenseKey::issue(
        &issuer,
        KEY_ID,
        "updhub benchmark",
        KEY_STATIONS,
        now - chrono::Duration::days(1),
        now + chrono::Duration::days(30),
    );
    let key_file = dir.join("key.json");
    std::fs::write(
        &key_file,
        serde_json::to_vec_pretty(&key).expect("key json"),
    )
    .expect("write key");
    updhub::hub::add_license_file(&donor, &key_file)
        .await
        .expect("license add");
    let donor_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let donor_url = format!("https://{}/", donor_listener.local_addr().expect("addr"));
    let donor_node = serve(donor.clone(), donor_listener).await;

    // The receiver: same cluster, synced once so the donor knows it.
    let keys = dir.join("receiver-keys");
    donor.export_keys(&keys).expect("keys export");
    let receiver = make_hub(
        dir,
        "receiver",
        Some(keys),
        Some(donor_url.clone()),
        &issuer_hex,
    );
    updhub::child::sync_once(&receiver, &donor_url)
        .await
        .expect("first sync");
    let receiver_node = serve(
        receiver.clone(),
        tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind"),
    )
    .await;

    let ca = reqwest::Certificate::from_pem(
        &std::fs::read(donor.data.join("keys/ca.crt")).expect("ca.crt"),
    )
    .expect("ca");
    let stations = reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(ca)
        .build()
        .expect("station client");
    let interserver = if settings.wide_pool {
        // The hub's client, but keeping every idle connection (the hub's keeps 16).
        reqwest::Client::builder()
            .use_preconfigured_tls((*receiver.keys.client_tls).clone())
            .build()
            .expect("interserver client")
    } else {
        updhub::peer::client(&receiver.keys).expect("interserver client")
    };

    let fsync_ms = fsync_probe(dir);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "updhub license load test: {} ops after {} warm-up registrations, {} in flight, mix {} (per round), 1 donation in {} to the receiver, grants-get {}, {} interserver pool, {} cores, fdatasync {:.2} ms median in {}",
        settings.ops,
        settings.warmup,
        settings.concurrency,
        settings.pattern.iter().map(|k| k.name()).collect::<Vec<_>>().join(","),
        settings.spread,
        if settings.full_get { "without a cursor" } else { "with the receiver's cursor" },
        if settings.wide_pool { "wide" } else { "hub's" },
        cores,
        fsync_ms,
        dir.display(),
    );

    let limit = settings.limit;
    let shared = Arc::new(Shared {
        settings,
        donor: donor.clone(),
        receiver: receiver.clone(),
        register_url: format!("{}v1/stations/register", donor_node.stations_url),
        donor_base: reqwest::Url::parse(&donor_url).expect("url"),
        stations,
        interserver,
        next: AtomicUsize::new(0),
        registered: AtomicU64::new(0),
        donations: AtomicUsize::new(0),
        donated: AtomicU64::new(0),
        donated_to_receiver: AtomicU64::new(0),
        grants_bytes: AtomicU64::new(0),
    });
    open_connections(&shared).await;
    // Warm-up: registrations, not measured, so the database has grown past its first WAL
    // checkpoints, as on a server that has been running.
    let warm = shared.settings.warmup;
    let now = Instant::now();
    let (w, _) = run_phase(
        &shared,
        Phase {
            end: warm,
            deadline: now + limit,
            only: Some(Kind::Register),
            started: now,
        },
    )
    .await;
    if let Some(e) = w.first_error {
        println!("warm-up error: {e}");
    }
    let before = cpu_ticks();
    // Each warm-up worker took one number past the end on its way out.
    let first = shared.next.load(Ordering::Relaxed);
    let now = Instant::now();
    let (mut all, wall) = run_phase(
        &shared,
        Phase {
            end: first + shared.settings.ops,
            deadline: now + limit,
            only: None,
            started: now,
        },
    )
    .await;
    let others = other_cores(before, cpu_ticks(), cores);
    if let Some(path) = std::env::var_os("LICBENCH_TRACE") {
        // One line per operation, to see when the slow ones happen.
        all.trace.sort_by_key(|t| t.0);
        let csv: String = all
            .trace
            .iter()
            .map(|(at, k, took)| {
                format!(
                    "{:.3},{},{:.3}\n",
                    at.as_secs_f64() * 1e3,
                    k.name(),
                    took.as_secs_f64() * 1e3
                )
            })
            .collect();
        std::fs::write(&path, format!("start_ms,kind,latency_ms\n{csv}")).expect("LICBENCH_TRACE");
    }
    let issued = (shared.next.load(Ordering::Relaxed) - first).min(shared.settings.ops);

    println!("\nkind              ok   err     ops/s   p50 ms   p99 ms   max ms   (ops/s: ok / wall time of the mixed run)");
    let mut total: Vec<Duration> = Vec::new();
    let mut errors = 0;
    for k in KINDS {
        let i = k.index();
        total.extend(all.lat[i].iter().copied());
        errors += all.errors[i];
        if !all.lat[i].is_empty() || all.errors[i] > 0 {
            row(k.name(), &mut all.lat[i], all.errors[i], wall);
        }
    }
    row("all", &mut total, errors, wall);
    let gets = all.lat[Kind::GrantsGet.index()].len().max(1) as u64;
    println!(
        "\nwall {wall:.2} s; {issued} ops issued{}; grants-get answer {} bytes on average; other processes used {others:.2} of {cores} cores meanwhile{}",
        if issued < shared.settings.ops { " (stopped at the time limit)" } else { "" },
        shared.grants_bytes.load(Ordering::Relaxed) / gets,
        if others > 0.2 { " (figures disturbed: run again on a quiet machine)" } else { "" },
    );
    if let Some(e) = &all.first_error {
        println!("first error: {e}");
    }

    let bad = check(&shared).await;
    let registered = shared.registered.load(Ordering::Relaxed);
    let donated = shared.donated.load(Ordering::Relaxed);
    let to_receiver = shared.donated_to_receiver.load(Ordering::Relaxed);
    let goal = total.len() as f64 / wall >= 2000.0 && pct(&total, 99.0) <= 20.0;
    println!(
        "conservation: {registered} stations + {donated} donated of {KEY_STATIONS} at the donor; receiver holds {to_receiver} in grants: {}",
        if bad.is_empty() { "PASS" } else { "FAIL" }
    );
    for b in &bad {
        println!("  {b}");
    }
    println!(
        "goal (>= 2000 ops/s, p99 <= 20 ms, no errors): {}",
        if goal && errors == 0 {
            "MET"
        } else {
            "NOT MET"
        }
    );

    drop(shared);
    donor_node.shutdown().await;
    receiver_node.shutdown().await;
    bad.is_empty()
}

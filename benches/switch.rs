//! One switch for the whole cluster (issue 9 point 5): 20 children on loopback hold a staged
//! version; the time from its activation on the parent to the last child holding it active.
//!
//! Everything runs in this process with real listeners (TLS, HTTP, SQLite per node): a
//! parent serving the sample zone, `SWITCH_CHILDREN` (default 20) children each serving and
//! following it (sync interval 1 h: only the long-poll moves them), and one more child
//! that reported once and stopped, so the staged version waits for the admin's `activate`
//! (no child that stages holds activation back). Each of `RUNS` (default 7) runs publishes a
//! version, waits until every child has staged it, activates it and times until the last
//! child holds it active (polled every millisecond). Prints one line per run and the median.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use updhub::hub::{Hub, InitOptions};
use updhub::id::ServerId;

fn node(dir: &Path, id: &str, zone: Option<&Path>, parent: Option<String>) -> Arc<Hub> {
    let data = dir.join(id);
    Hub::init(
        &data,
        InitOptions {
            id: Some(ServerId::new(id).expect("valid id")),
            zone: zone.map(|z| z.display().to_string()),
            parent,
            ..Default::default()
        },
    )
    .expect("init");
    let mut cfg = updhub::config::Config::load(&data).expect("config");
    cfg.upstream.sync_interval = Duration::from_secs(3600);
    cfg.server.requests_per_second = 1_000_000;
    Arc::new(Hub::open_with(&data, cfg).expect("open"))
}

/// A child of `parent` enrolled by link (offline), as `link request/accept/import` do.
fn child(dir: &Path, id: &str, parent: &Hub, url: &str) -> Arc<Hub> {
    let n = node(dir, id, None, Some(url.to_owned()));
    let req = updhub::link::offline_request(&n).expect("request");
    let reply = updhub::link::offline_accept(parent, &req, "child").expect("accept");
    updhub::link::offline_import(&n, &reply).expect("import");
    let (data, config) = (n.data.clone(), n.config.clone());
    drop(n);
    Arc::new(Hub::open_with(&data, config).expect("reopen"))
}

async fn serve(hub: Arc<Hub>) -> (String, tokio::sync::oneshot::Sender<()>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("https://{}/", l.local_addr().expect("addr"));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(updhub::node::run(
        l,
        None,
        hub,
        updhub::server::new_stats(),
        async {
            let _ = rx.await;
        },
    ));
    (url, tx)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read zone") {
        let e = e.expect("entry");
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).expect("copy");
        }
    }
}

async fn wait(what: &str, f: impl Fn() -> bool) {
    let until = Instant::now() + Duration::from_secs(120);
    while !f() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn active(h: &Hub) -> u64 {
    h.db.published().ok().flatten().map_or(0, |p| p.number)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n: usize = std::env::var("SWITCH_CHILDREN")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(7);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run(n, runs));
}

async fn run(n: usize, runs: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let zone = dir.path().join("zone");
    copy_dir(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("mirror"),
        &zone,
    );
    let parent = node(dir.path(), "parent", Some(&zone), None);
    parent.mirror(None, false).await.expect("mirror");
    parent.publish(None).expect("publish");
    // A child counts as reporting for the whole run.
    parent
        .set_shared_setting("upstream.sync_interval", "1h")
        .expect("setting");
    let (url, parent_stop) = serve(parent.clone()).await;
    let mut children = Vec::new();
    let mut stops = Vec::new();
    for i in 0..n {
        let c = child(dir.path(), &format!("c{i:02}"), &parent, &url);
        let (_, stop) = serve(c.clone()).await;
        children.push(c);
        stops.push(stop);
    }
    let idle = child(dir.path(), "idle", &parent, &url);
    updhub::child::sync_once(&idle, &url)
        .await
        .expect("idle sync");
    wait("every child on version 1", || {
        children.iter().all(|c| active(c) == 1)
            && parent.db.cluster_children().map_or(0, |c| c.len()) == n + 1
    })
    .await;
    // The zone's next revision gives version 2; after that, rollbacks alternate the two
    // contents under new numbers (every child holds both: only the switch is timed).
    let text = std::fs::read_to_string(zone.join("zone.json")).expect("zone.json");
    std::fs::write(
        zone.join("zone.json"),
        text.replace("\"2026112401\"", "\"2026112402\""),
    )
    .expect("zone.json");
    parent.mirror(None, false).await.expect("mirror");
    let mut times = Vec::new();
    for r in 0..runs {
        let (p, _) = if r == 0 {
            parent.publish(None).expect("publish")
        } else {
            parent
                .publish_version(1 + (r as u64 + 1) % 2, None)
                .expect("publish")
        };
        let want = p.number;
        wait("every child staged it", || {
            parent
                .rollout()
                .ok()
                .flatten()
                .is_some_and(|r| r.staged.number == want && r.staged_by == n)
        })
        .await;
        let started = Instant::now();
        parent.activate_now().expect("activate");
        while !children.iter().all(|c| active(c) == want) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let s = started.elapsed().as_secs_f64();
        println!("run {r}: version {want} active on all {n} children {s:.3} s after activation");
        times.push(s);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "median {:.3} s, min {:.3} s, max {:.3} s over {runs} runs ({n} children; goal <= 1 s)",
        times[times.len() / 2],
        times[0],
        times[times.len() - 1]
    );
    for s in stops {
        let _ = s.send(());
    }
    let _ = parent_stop.send(());
    tokio::time::sleep(Duration::from_millis(200)).await;
}

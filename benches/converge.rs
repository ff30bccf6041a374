//! Publish to the last child (issue 10): the time from `publish` on a parent cluster to the
//! last of 20 children holding the new version active, the whole two-phase way (stage,
//! every child reports it staged, activation, switch).
//!
//! The parent cluster is two members sharing one PostgreSQL database (`UPDHUB_TEST_PG_URL`,
//! see `scripts/pg-throwaway.sh`): `p1`, where the admin publishes, and `p2`. Half of the
//! children follow `p1`, half `p2` (as a cluster DNS name spreads them); each child serves
//! and follows with a sync interval of 1 h, so only the long-poll moves it. Children of `p2`
//! wait for `p2` to learn of the version from the shared database (or at once, from the
//! cluster protocol). Every node runs in this process with real listeners and TLS.
//!
//! The same topology is measured twice in one process: with the cluster protocol on
//! (unicast on 127.0.0.1 between the two members) and off (every datagram lost: the
//! members converge through their database polls only).
//!
//! Each of `RUNS` (default 7) runs publishes the other of two contents under a new number
//! (every node holds both after the first runs: the figure is the cluster's reaction, not
//! the transfer) and times until the last child holds it active (polled every millisecond).

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{child_with, member_of, new_pg_database, node, start, NodeOpts, Running};
use updhub::hub::Hub;

fn active(h: &Hub) -> u64 {
    h.db.published().ok().flatten().map_or(0, |p| p.number)
}

async fn wait(what: &str, f: impl Fn() -> bool) {
    let until = Instant::now() + Duration::from_secs(120);
    while !f() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// `hub` reopened with the cluster protocol on unicast, on 127.0.0.1 at any free port (the
/// members find each other's ports in the shared database).
fn with_protocol(hub: Arc<Hub>) -> Arc<Hub> {
    let (data, mut cfg) = (hub.data.clone(), hub.config.clone());
    drop(hub);
    cfg.cluster.protocol = updhub::config::Protocol::Unicast;
    cfg.cluster.interface = std::net::Ipv4Addr::LOCALHOST;
    cfg.cluster.port = 0;
    Arc::new(Hub::open_with(&data, cfg).expect("reopen"))
}

/// One parent cluster with `n` children, the cluster protocol on or off; returns each run's
/// seconds, sorted.
async fn measure(label: &str, protocol: bool, n: usize, runs: usize) -> Vec<f64> {
    // Without UPDHUB_TEST_PG_URL this stops, naming the command that provides a server.
    let db = new_pg_database();
    let dir = tempfile::tempdir().expect("tempdir");
    let zone = common::sample_zone_copy(dir.path());
    let p1 = node(
        dir.path(),
        "p1",
        NodeOpts {
            zone: Some(&zone),
            database: Some(db.clone()),
            ..Default::default()
        },
    );
    let p2 = member_of(
        dir.path(),
        "p2",
        &p1,
        NodeOpts {
            zone: Some(&zone),
            database: Some(db),
            ..Default::default()
        },
    );
    let (p1, p2) = if protocol {
        (with_protocol(p1), with_protocol(p2))
    } else {
        (p1, p2)
    };
    p1.mirror(None, false).await.expect("mirror");
    p1.publish(None).expect("publish");
    // Children count as reporting for the whole run (they report at each long-poll answer).
    p1.set_shared_setting("upstream.sync_interval", "1h")
        .expect("setting");
    let parents: Vec<Running> = vec![start(p1.clone()).await, start(p2.clone()).await];
    // A child that finds nothing served retries only after its (long) sync interval.
    wait("p2 serving version 1", || active(&p2) == 1).await;
    let mut children: Vec<Arc<Hub>> = Vec::new();
    let mut running = Vec::new();
    for i in 0..n {
        let url = parents[i % 2].url.clone();
        let c = child_with(
            dir.path(),
            &format!("c{i:02}"),
            &p1,
            NodeOpts {
                parent: Some(url),
                ..Default::default()
            },
        );
        let mut cfg = c.config.clone();
        cfg.upstream.sync_interval = Duration::from_secs(3600);
        let c = Arc::new(Hub::open_with(&c.data, cfg).expect("reopen"));
        running.push(start(c.clone()).await);
        children.push(c);
    }
    wait("every child on version 1", || {
        children.iter().all(|c| active(c) == 1)
    })
    .await;
    eprintln!("{label}: {n} children on version 1");
    common::set_zone_revision(&zone, "2026112402");
    p1.mirror(None, false).await.expect("mirror");
    // Only the publisher publishes: p1 takes the role (p2 may have taken it first).
    p1.promote().expect("promote");
    let mut times = Vec::new();
    for r in 0..runs {
        let started = Instant::now();
        let (p, _) = if r == 0 {
            p1.publish(None).expect("publish")
        } else {
            p1.publish_version(1 + (r as u64 + 1) % 2, None)
                .expect("publish")
        };
        let want = p.number;
        while !children.iter().all(|c| active(c) == want) {
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "version {want} never reached every child"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let s = started.elapsed().as_secs_f64();
        println!(
            "{label} run {r}: version {want} active on all {n} children {s:.3} s after publish"
        );
        times.push(s);
    }
    for r in running {
        r.stop().await;
    }
    for p in parents {
        p.stop().await;
    }
    times.sort_by(f64::total_cmp);
    times
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let env = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(d)
    };
    let (n, runs) = (env("CONVERGE_CHILDREN", 20), env("RUNS", 7));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("UPDHUB_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .try_init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let with = rt.block_on(measure("protocol", true, n, runs));
    let without = rt.block_on(measure("polling only", false, n, runs));
    let med = |t: &[f64]| t[t.len() / 2];
    for (label, t) in [("protocol", &with), ("polling only", &without)] {
        println!(
            "{label}: median {:.3} s, min {:.3} s, max {:.3} s over {runs} runs ({n} children; goal <= 2 s)",
            med(t),
            t[0],
            t[t.len() - 1]
        );
    }
    println!(
        "polling only / protocol: {:.2}x",
        med(&without) / med(&with)
    );
}

//! Issue 10 point 5: the README's procedure for upgrading a running cluster one node at a
//! time ("Upgrading a running cluster"), run step by step on a parent cluster of two
//! members and two children that list both members (in opposite orders): every version
//! published while a member is down for its upgrade reaches both children, byte for byte,
//! so update distribution never stops; the upgraded publisher comes back a standby.
//!
//! Every node here runs this build, so "install the new updhub" is a restart of the node
//! from its data folder (a new process: a new `Hub`) and `updhub db upgrade` finds nothing
//! to do. The step that moves the schema under members of an older updhub still connected
//! is tested in tests/cluster_db.rs
//! (`a_node_never_upgrades_a_shared_database_under_older_nodes_but_db_upgrade_does`), and
//! `status`'s MIXED warning in the unit tests of `hub::mixed_versions`. Members share a
//! PostgreSQL database, so this runs in `rolling_upgrade_pg`.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use updhub::hub::Hub;

/// The members' lease TTL: short, so the test is short.
const TTL: Duration = Duration::from_secs(2);

fn active(hub: &Hub) -> u64 {
    hub.db.published().unwrap().map_or(0, |p| p.number)
}

/// `hub`'s process stopped: the same node opened again from its data folder, as a restart
/// with the new updhub installed does.
fn reopened(hub: Arc<Hub>) -> Arc<Hub> {
    let (data, config) = (hub.data.clone(), hub.config.clone());
    drop(hub);
    Arc::new(Hub::open_with(&data, config).unwrap())
}

/// Step 1 and the last step: `updhub cluster check` is green.
fn assert_checks_green(hub: &Hub) {
    let check = hub.cluster_check().unwrap();
    assert!(check.ok(), "cluster check: {check:?}");
    assert_eq!(check.alive.len(), 2, "{check:?}");
}

/// Revision `n` of the upstream zone (one product, new bytes each revision), in `dir`.
fn zone_revision(dir: &Path, n: u64) -> std::path::PathBuf {
    write_zone(
        dir,
        "av-bases",
        &format!("r{n}"),
        &[
            ("bases/main.db", noise(96 * 1024, n)),
            ("bases/daily.db", noise(8 * 1024, 100 + n)),
        ],
    )
}

/// Publish the zone's revision `n` on `publisher` and wait until both children hold it
/// active, byte for byte the same files as the publisher.
async fn published_reaches_both(
    publisher: &Hub,
    n: u64,
    children: [&Arc<Hub>; 2],
    dir: &Path,
) -> u64 {
    zone_revision(dir, n);
    let v = mirror_and_publish(publisher).await;
    wait_for(&format!("both children on version {}", v.number), || {
        children.iter().all(|c| active(c) == v.number)
    })
    .await;
    let want = tree(&checkout(publisher, dir, &format!("p{}", v.number)));
    for c in children {
        assert_eq!(
            tree(&checkout(c, dir, &format!("{}-{}", c.id(), v.number))),
            want,
            "{} holds version {} byte for byte",
            c.id(),
            v.number
        );
    }
    v.number
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_cluster_upgraded_one_node_at_a_time_keeps_distributing_updates() {
    let Some(url) = cluster_database(
        "a_running_cluster_upgraded_one_node_at_a_time_keeps_distributing_updates",
        "rolling_upgrade_pg",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let zone = zone_revision(dir.path(), 1);
    let opts = || NodeOpts {
        zone: Some(&zone),
        database: Some(url.clone()),
        lease_ttl: Some(TTL),
        ..Default::default()
    };
    let a = node(dir.path(), "a", opts());
    let b = member_of(dir.path(), "b", &a, opts());
    // Only admins publish here (no scheduled round moves versions under the test).
    a.set_shared_setting("upstream.mirror_interval", "0s")
        .unwrap();
    let sa = start(a.clone()).await;
    wait_for("a to be the publisher", || {
        a.publisher().unwrap().as_deref() == Some("a")
    })
    .await;
    let sb = start(b.clone()).await;
    assert_eq!(mirror_and_publish(&a).await.number, 1);
    let c1 = with_parents(child_of(dir.path(), "c1", &a, None), &[&sa.url, &sb.url]);
    let c2 = with_parents(child_of(dir.path(), "c2", &a, None), &[&sb.url, &sa.url]);
    let (r1, r2) = (start(c1.clone()).await, start(c2.clone()).await);
    wait_for("both children and b on version 1", || {
        active(&c1) == 1 && active(&c2) == 1 && active(&b) == 1
    })
    .await;

    // 1. `cluster check` is green before anything changes.
    wait_for("both members live with the same version", || {
        a.cluster_check().unwrap().ok()
    })
    .await;
    assert_checks_green(&a);

    // 2. A backup of each member, while it serves.
    for m in [&a, &b] {
        let archive = dir.path().join(format!("{}.tar.zst", m.id()));
        updhub::backup::backup(m, &archive).unwrap();
        assert!(archive.metadata().unwrap().len() > 0);
    }

    // 3. The standby first: stopped (its leases given back), upgraded, started again.
    let (a_url, b_url) = (sa.url.clone(), sb.url.clone());
    sb.stop().await;
    // While b is down, a version published reaches both children: c2, which lists b
    // first, gets it from a.
    let v2 = published_reaches_both(&a, 2, [&c1, &c2], dir.path()).await;
    let b = reopened(b);
    let loc = b.config.database_location(&b.data).unwrap();
    let (found, now, _) = updhub::db::Db::upgrade_at(&loc, b.id().clone()).unwrap();
    assert_eq!(found, now, "the same build: `db upgrade` has nothing to do");
    let sb = start_at(b.clone(), &b_url).await;
    wait_for("b back, serving the cluster's version", || active(&b) == v2).await;

    // 4. The publisher role to the upgraded member, then the old publisher the same way.
    let was = b.promote().unwrap();
    assert_eq!(was.as_deref(), Some("a"));
    let refused = a.publish(None).unwrap_err().to_string();
    assert!(refused.contains("cluster promote"), "{refused}");
    sa.stop().await;
    // While a is down, b publishes: c1, which lists a first, gets it from b.
    let v3 = published_reaches_both(&b, 3, [&c1, &c2], dir.path()).await;
    assert_eq!(v3, v2 + 1, "numbers go on from the shared database");
    let a = reopened(a);
    let loc = a.config.database_location(&a.data).unwrap();
    updhub::db::Db::upgrade_at(&loc, a.id().clone()).unwrap();
    let sa = start_at(a.clone(), &a_url).await;
    wait_for("a back, serving the cluster's version", || active(&a) == v3).await;
    assert_eq!(
        a.publisher().unwrap().as_deref(),
        Some("b"),
        "the old publisher comes back a standby"
    );

    // 5. `cluster check` green again, and the children go on with the upgraded cluster.
    wait_for("both members live again with the same version", || {
        a.cluster_check().unwrap().ok()
    })
    .await;
    assert_checks_green(&b);
    let v4 = published_reaches_both(&b, 4, [&c1, &c2], dir.path()).await;
    assert_eq!(v4, v3 + 1);
    let numbers: Vec<u64> = b.versions().unwrap().iter().map(|v| v.number).collect();
    assert_eq!(
        numbers,
        [4, 3, 2, 1],
        "one version per publish, none lost or doubled"
    );
    for r in [r1, r2, sa, sb] {
        r.stop().await;
    }
}

//! Issue 9 point 5: one switch for the whole cluster. A published version is staged first;
//! children fetch and verify it beside their active version and report it staged; the
//! parent activates it when the rule says so (every reporting child, or the quorum after
//! the stage timeout), and children long-polling the parent switch at once.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use updhub::child::sync_once;
use updhub::Hub;

/// `hub` reopened with a sync interval of an hour: whatever it does within a test comes
/// from a long-poll, not from its periodic sync.
fn slow(hub: Arc<Hub>) -> Arc<Hub> {
    let (data, mut cfg) = (hub.data.clone(), hub.config.clone());
    drop(hub);
    cfg.upstream.sync_interval = Duration::from_secs(3600);
    Arc::new(Hub::open_with(&data, cfg).unwrap())
}

fn active(hub: &Hub) -> u64 {
    hub.db.published().unwrap().map_or(0, |p| p.number)
}

fn staged(hub: &Hub) -> u64 {
    hub.db.staged().unwrap().map_or(0, |p| p.number)
}

/// A parent on a writable zone with version 1 active (no child yet, so at once), serving.
/// Its own sync interval, a [same] setting, is an hour: a child that reported counts as
/// reporting for the whole test, whatever the test's pace.
async fn parent(dir: &std::path::Path) -> (std::path::PathBuf, Arc<Hub>, Running) {
    let zone = sample_zone_copy(dir);
    let parent = zone_node(dir, "parent", &zone);
    let v1 = mirror_and_publish(&parent).await;
    assert_eq!(v1.number, 1);
    assert!(
        parent.rollout().unwrap().is_none(),
        "no child: active at once"
    );
    parent
        .set_shared_setting("upstream.sync_interval", "1h")
        .unwrap();
    let srv = start(parent.clone()).await;
    (zone, parent, srv)
}

/// The activation rule for the whole cluster: its quorum and stage timeout.
fn rule(parent: &Hub, quorum: &str, timeout: &str) {
    parent.set_shared_setting("publish.quorum", quorum).unwrap();
    parent
        .set_shared_setting("publish.stage_timeout", timeout)
        .unwrap();
}

/// The zone moves on and the parent publishes: version 2, staged while children report.
async fn publish_v2(zone: &std::path::Path, parent: &Hub) -> updhub::repo::Published {
    set_zone_revision(zone, "2026112402");
    let v2 = mirror_and_publish(parent).await;
    assert_eq!(v2.number, 2);
    v2
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_children_stage_one_cut_off_none_switches_before_the_quorum_rule_then_all_that_staged_do(
) {
    let dir = tempfile::tempdir().unwrap();
    let (zone, parent, srv) = parent(dir.path()).await;
    rule(&parent, "4", "1h");
    let mut kids = Vec::new();
    for id in ["c1", "c2", "c3", "c4", "cut"] {
        let c = child_of(dir.path(), id, &parent, Some(srv.url.clone()));
        let run = start(c.clone()).await;
        kids.push((c, run));
    }
    wait_for("five children on version 1, reported", || {
        kids.iter().all(|(c, _)| active(c) == 1) && parent.db.cluster_children().unwrap().len() == 5
    })
    .await;
    // One child is cut off: its server and its follow loop stop; its last report stands.
    let (cut, cut_run) = kids.pop().unwrap();
    cut_run.stop().await;

    let v2 = publish_v2(&zone, &parent).await;
    let r = parent
        .rollout()
        .unwrap()
        .expect("staged while children report");
    assert_eq!((r.staged.number, r.reporting), (2, 5));
    wait_for("four children staged version 2", || {
        kids.iter().all(|(c, _)| staged(c) == 2)
    })
    .await;
    wait_for("the parent heard of the four", || {
        parent.rollout().unwrap().unwrap().staged_by == 4
    })
    .await;
    // Staged, not switched: the cut-off child holds activation back until the timeout.
    for (c, _) in &kids {
        assert_eq!(active(c), 1, "{} switched before the rule said so", c.id());
    }
    assert_eq!(parent.db.cluster_published().unwrap().unwrap().number, 1);
    let r = parent.rollout().unwrap().unwrap();
    assert!(!r.activate, "{}", r.why);
    assert_eq!(r.needed, 4);
    assert_eq!(r.not_staged.len(), 1);
    assert_eq!(r.not_staged[0].child_id, "cut");
    assert_eq!(r.not_staged[0].active, Some(1));
    assert!(r.not_staged[0].reporting);
    let status = parent.status().unwrap();
    assert_eq!(
        status.rollout.as_ref().unwrap().not_staged[0].child_id,
        "cut"
    );

    // The stage timeout passes (the admin shortens it): 4 of 5 is the quorum.
    parent
        .set_shared_setting("publish.stage_timeout", "0s")
        .unwrap();
    wait_for("the four children switched to version 2", || {
        kids.iter().all(|(c, _)| active(c) == 2)
    })
    .await;
    assert_eq!(parent.db.cluster_published().unwrap().unwrap(), v2);
    assert!(parent.rollout().unwrap().is_none());
    for (c, _) in &kids {
        assert_eq!(c.db.published().unwrap().unwrap(), v2);
        assert_eq!(staged(c), 0, "the staged row is spent once active");
    }
    // The cut-off child keeps its version, and the parent names it.
    assert_eq!(active(&cut), 1);
    wait_for("the four reported version 2", || {
        let s = parent.status().unwrap();
        s.children.iter().filter(|c| c.in_sync).count() == 4
    })
    .await;
    let status = parent.status().unwrap();
    let named = status
        .children
        .iter()
        .find(|c| c.report.child_id == "cut")
        .unwrap();
    assert!(!named.in_sync);
    assert_eq!(named.report.number, Some(1));
    for (_, run) in kids {
        run.stop().await;
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_child_activates_at_once_after_its_report_and_one_that_cannot_stage_keeps_its_version(
) {
    let dir = tempfile::tempdir().unwrap();
    let Pair {
        zone,
        parent,
        srv,
        child,
        first,
        ..
    } = pair(dir.path()).await;
    assert_eq!(first.number, 1);
    // The child counts as reporting for the whole test, whatever its pace.
    parent
        .set_shared_setting("upstream.sync_interval", "1h")
        .unwrap();
    let v2 = publish_v2(&zone, &parent).await;
    assert!(
        parent.rollout().unwrap().is_some(),
        "staged: the child reports"
    );
    // The route answers the active version, the staged one beside it in a header; a bad
    // long-poll query is refused with the fix.
    let keys = parent.data.join("keys");
    let http = client_with(
        &keys.join("ca.crt"),
        &keys.join("node.crt"),
        &keys.join("node.key"),
    );
    let resp = http
        .get(format!("{}v1/published", srv.url))
        .send()
        .await
        .unwrap();
    let staged_doc = resp.headers()["x-updhub-staged"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: updhub::repo::Published = resp.json().await.unwrap();
    assert_eq!(body.number, 1);
    assert_eq!(
        updhub::repo::Published::parse(staged_doc.as_bytes(), "test").unwrap(),
        v2
    );
    let resp = http
        .get(format!("{}v1/published?wait=soon", srv.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let why = resp.text().await.unwrap();
    assert!(why.contains("not a whole number"), "{why}");

    // A blob of version 2 is missing on the parent: the child cannot stage it, keeps
    // version 1, and the parent names it with the reason.
    let m = parent.manifest(&v2.root).unwrap();
    let old = parent.manifest(&first.root).unwrap();
    let new_blob = m
        .blobs()
        .into_iter()
        .map(|(id, _)| id)
        .find(|id| !old.blobs().iter().any(|(o, _)| o == id))
        .expect("version 2 has a new blob");
    let path = parent.store.blob_path(&new_blob);
    let kept = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let err = sync_once(&child, &srv.url).await.unwrap_err().to_string();
    assert!(err.contains(&new_blob.to_string()), "{err}");
    assert_eq!((active(&child), staged(&child)), (1, 0));
    let last = child.status().unwrap().sync.unwrap().last_error.unwrap();
    assert!(last.contains("could not stage version 2"), "{last}");
    let rollout = parent.rollout().unwrap().unwrap();
    assert!(!rollout.activate);
    assert_eq!(rollout.not_staged[0].child_id, "child");
    assert!(
        rollout.not_staged[0].reason.contains("could not stage it")
            && rollout.not_staged[0].reason.contains(&new_blob.to_string()),
        "{}",
        rollout.not_staged[0].reason
    );

    // The blob is back: the child stages, reports, and the parent activates at once, so the
    // same sync switches.
    std::fs::write(&path, kept).unwrap();
    let r = sync_once(&child, &srv.url).await.unwrap();
    assert!(r.changed, "{r}");
    assert_eq!(child.db.published().unwrap().unwrap(), v2);
    assert_eq!(parent.db.cluster_published().unwrap().unwrap(), v2);
    assert!(parent.rollout().unwrap().is_none());
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_polling_children_stage_and_switch_without_waiting_a_sync_interval() {
    let dir = tempfile::tempdir().unwrap();
    let (zone, parent, srv) = parent(dir.path()).await;
    let mut kids = Vec::new();
    for id in ["a", "b"] {
        let c = slow(child_of(dir.path(), id, &parent, Some(srv.url.clone())));
        let run = start(c.clone()).await;
        kids.push((c, run));
    }
    wait_for("both children on version 1, reported", || {
        kids.iter().all(|(c, _)| active(c) == 1) && parent.db.cluster_children().unwrap().len() == 2
    })
    .await;
    // Their next sync is an hour away: only the long-poll brings them version 2, staged
    // first; the first report does not activate it, the second does, and the child that
    // reported first hears of the activation by its long-poll.
    let v2 = publish_v2(&zone, &parent).await;
    wait_for("both children switched to version 2", || {
        kids.iter().all(|(c, _)| active(c) == 2)
    })
    .await;
    for (c, _) in &kids {
        assert_eq!(c.db.published().unwrap().unwrap(), v2);
    }
    for (_, run) in kids {
        run.stop().await;
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grandchild_stages_and_switches_through_a_serving_child() {
    let dir = tempfile::tempdir().unwrap();
    let (zone, top, top_srv) = parent(dir.path()).await;
    let middle = slow(child_of(
        dir.path(),
        "middle",
        &top,
        Some(top_srv.url.clone()),
    ));
    let mid_srv = start(middle.clone()).await;
    wait_for("the middle on version 1", || active(&middle) == 1).await;
    let bottom = slow(child_of(
        dir.path(),
        "bottom",
        &middle,
        Some(mid_srv.url.clone()),
    ));
    let bottom_srv = start(bottom.clone()).await;
    wait_for("the bottom on version 1", || active(&bottom) == 1).await;
    // Another child of the top that reported once and never stages: activation waits.
    let idle = child_of(dir.path(), "idle", &top, None);
    sync_once(&idle, &top_srv.url).await.unwrap();

    let v2 = publish_v2(&zone, &top).await;
    wait_for("the middle and the bottom staged version 2", || {
        staged(&middle) == 2 && staged(&bottom) == 2
    })
    .await;
    wait_for("the middle heard the bottom staged it", || {
        middle
            .db
            .cluster_children()
            .unwrap()
            .iter()
            .any(|(c, s)| c.child_id == "bottom" && s.staged_number == Some(2))
    })
    .await;
    assert_eq!((active(&middle), active(&bottom)), (1, 1));
    assert_eq!(middle.status().unwrap().staged.unwrap().number, 2);

    // The admin activates it by hand; the idle child is named as not having staged it.
    let (p, behind) = top.activate_now().unwrap();
    assert_eq!(p, v2);
    assert_eq!(behind.len(), 1);
    assert_eq!(behind[0].child_id, "idle");
    wait_for("the middle and the bottom switched to version 2", || {
        active(&middle) == 2 && active(&bottom) == 2
    })
    .await;
    assert_eq!(bottom.db.published().unwrap().unwrap(), v2);
    assert_eq!(active(&idle), 1);
    let err = top.activate_now().unwrap_err().to_string();
    assert!(err.contains("no version is staged"), "{err}");
    bottom_srv.stop().await;
    mid_srv.stop().await;
    top_srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_of_two_members_of_a_parent_cluster_stage_and_switch_together() {
    // Members share a PostgreSQL database: the `_pg` twin runs this, the SQLite one cannot.
    let Some(url) = on_postgres().then(new_pg_database) else {
        eprintln!("SKIPPED: members of one cluster share a PostgreSQL database; two_phase_pg runs this test");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let zone = sample_zone_copy(dir.path());
    let opts = || NodeOpts {
        zone: Some(&zone),
        database: Some(url.clone()),
        ..Default::default()
    };
    let a = node(dir.path(), "a", opts());
    let b = member_of(dir.path(), "b", &a, opts());
    mirror_and_publish(&a).await;
    a.set_shared_setting("upstream.sync_interval", "1h")
        .unwrap();
    let (sa, sb) = (start(a.clone()).await, start(b.clone()).await);
    // A publishes below: only the cluster's publisher does, whichever member took the
    // role as they started (tests/failover.rs tests the role itself).
    a.promote().unwrap();
    wait_for("b to hold version 1", || active(&b) == 1).await;
    // One child on each member.
    let c1 = child_of(dir.path(), "c1", &a, Some(sa.url.clone()));
    let c2 = child_of(dir.path(), "c2", &a, Some(sb.url.clone()));
    let (r1, r2) = (start(c1.clone()).await, start(c2.clone()).await);
    wait_for("both children on version 1, reported", || {
        active(&c1) == 1 && active(&c2) == 1 && a.db.cluster_children().unwrap().len() == 2
    })
    .await;

    // A stages version 2; B fetches it from A beside its version 1, so the child reaching B
    // stages it from B; the last report, to either member, activates it for the cluster.
    let v2 = publish_v2(&zone, &a).await;
    wait_for("both children switched to version 2", || {
        active(&c1) == 2 && active(&c2) == 2
    })
    .await;
    assert_eq!(c2.db.published().unwrap().unwrap(), v2);
    assert_eq!(b.db.cluster_published().unwrap().unwrap(), v2);
    wait_for("b serves version 2", || active(&b) == 2).await;
    assert!(a.rollout().unwrap().is_none());
    for run in [r1, r2, sa, sb] {
        run.stop().await;
    }
}

/// `hub` closed and opened again from its data folder, as a restart does.
fn reopen(hub: Arc<Hub>) -> Arc<Hub> {
    let (data, cfg) = (hub.data.clone(), hub.config.clone());
    drop(hub);
    Arc::new(Hub::open_with(&data, cfg).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_and_a_child_restarted_between_stage_and_activate_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let (zone, parent, srv) = parent(dir.path()).await;
    rule(&parent, "1", "1h");
    let a = child_of(dir.path(), "a", &parent, None);
    let idle = child_of(dir.path(), "idle", &parent, None);
    for c in [&a, &idle] {
        sync_once(c, &srv.url).await.unwrap();
    }
    publish_v2(&zone, &parent).await;
    let r = sync_once(&a, &srv.url).await.unwrap();
    assert_eq!((r.staged, active(&a)), (Some(2), 1), "{r}");

    // Both restart while version 2 is staged: the child still holds it staged, the parent
    // still has it staged and, its timeout shortened meanwhile, activates it on start.
    let a = reopen(a);
    assert_eq!(staged(&a), 2);
    srv.stop().await;
    let parent = reopen(parent);
    assert_eq!(parent.rollout().unwrap().unwrap().staged.number, 2);
    parent
        .set_shared_setting("publish.stage_timeout", "0s")
        .unwrap();
    let srv = start(parent.clone()).await;
    wait_for("the restarted parent to activate version 2", || {
        parent.db.cluster_published().unwrap().unwrap().number == 2
    })
    .await;
    // The child switches without fetching anything: its staged blobs were kept.
    let r = sync_once(&a, &srv.url).await.unwrap();
    assert!(r.changed, "{r}");
    assert_eq!((r.blobs, active(&a), staged(&a)), (0, 2, 0));
    assert_eq!(active(&idle), 1);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staged_version_waiting_for_its_children_is_re_signed_before_it_expires_and_when_the_key_rotates(
) {
    let dir = tempfile::tempdir().unwrap();
    let (zone, parent, srv) = parent(dir.path()).await;
    let idle = child_of(dir.path(), "idle", &parent, None);
    sync_once(&idle, &srv.url).await.unwrap();
    set_zone_revision(&zone, "2026112402");
    parent.mirror(None, false).await.unwrap();
    // Valid for 4 s: half of it passes while the idle child holds activation back.
    let (v2, _) = parent.publish(Some(Duration::from_secs(4))).unwrap();
    assert_eq!(parent.rollout().unwrap().unwrap().staged, v2);
    wait_for("the parent to re-sign the staged version", || {
        // What the serving parent's re-sign task runs.
        parent.resign_if_due().unwrap();
        parent
            .db
            .cluster_staged()
            .unwrap()
            .is_some_and(|s| s.published.expires > v2.expires)
    })
    .await;
    let fresh = parent.db.cluster_staged().unwrap().unwrap().published;
    assert_eq!((fresh.number, fresh.root), (v2.number, v2.root));
    assert_eq!(parent.db.staged().unwrap().unwrap(), fresh);
    // The publisher key rotates (the parent stopped): the staged version is signed with
    // the new key too, or children that follow the rotation would refuse it.
    srv.stop().await;
    let (rotation, active_doc) = parent.rotate_publisher().unwrap();
    let active_doc = active_doc.unwrap();
    let staged_doc = parent.db.cluster_staged().unwrap().unwrap().published;
    assert_ne!(staged_doc.key, fresh.key, "{rotation:?}");
    assert_eq!(staged_doc.key, active_doc.key);
    assert_eq!(parent.db.staged().unwrap().unwrap(), staged_doc);
    // Activated, it keeps the span chosen at publish time.
    parent.activate_now().unwrap();
    assert_eq!(
        parent.db.published_validity().unwrap(),
        Some(Duration::from_secs(4))
    );
}

/// Issue 9 point 3: a staged rollout. The test group (rollout.canary) gets a version when
/// the activation rule lets it go; the others get it after rollout.soak, unless halted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_test_group_gets_a_version_first_the_others_after_the_soak_and_halt_stops_it() {
    let dir = tempfile::tempdir().unwrap();
    let (zone, parent, srv) = parent(dir.path()).await;
    let err = parent.halt_rollout().unwrap_err().to_string();
    assert!(err.contains("nothing to halt"), "{err}");
    parent
        .set_shared_setting("rollout.canary", r#"["canary"]"#)
        .unwrap();
    parent.set_shared_setting("rollout.soak", "1h").unwrap();
    let mut kids = Vec::new();
    for id in ["canary", "c1", "c2"] {
        let c = slow(child_of(dir.path(), id, &parent, Some(srv.url.clone())));
        let run = start(c.clone()).await;
        kids.push((c, run));
    }
    wait_for("three children on version 1, reported", || {
        kids.iter().all(|(c, _)| active(c) == 1) && parent.db.cluster_children().unwrap().len() == 3
    })
    .await;
    let (canary, others) = (kids[0].0.clone(), [kids[1].0.clone(), kids[2].0.clone()]);

    // Every child stages version 2; only the test group switches to it.
    publish_v2(&zone, &parent).await;
    wait_for("the test group switched to version 2", || {
        active(&canary) == 2
    })
    .await;
    wait_for("the others staged version 2", || {
        others.iter().all(|c| staged(c) == 2)
    })
    .await;
    let status = parent.status().unwrap();
    let (c, phase) = status.canary.clone().expect("a rollout in progress");
    assert_eq!(c.number, 2);
    assert!(
        matches!(phase, updhub::canary::Phase::Canary { .. }),
        "{phase:?}"
    );
    for c in &others {
        assert_eq!(active(c), 1, "{} got version 2 before the soak", c.id());
    }
    assert_eq!(parent.db.cluster_published().unwrap().unwrap().number, 1);

    // Halted, a soak that is over changes nothing.
    parent.halt_rollout().unwrap();
    parent.set_shared_setting("rollout.soak", "0s").unwrap();
    // Several rounds of the activation rule (every second) and long-poll ticks.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    for c in &others {
        assert_eq!(active(c), 1, "{} got version 2 while halted", c.id());
    }
    assert!(matches!(
        parent.status().unwrap().canary.unwrap().1,
        updhub::canary::Phase::Halted { .. }
    ));
    let err = parent.halt_rollout().unwrap_err().to_string();
    assert!(err.contains("halted already"), "{err}");

    // Resumed with the soak over: everyone switches, at once (long-poll, 1h sync interval).
    parent.resume_rollout().unwrap();
    wait_for("the others switched to version 2", || {
        others.iter().all(|c| active(c) == 2)
    })
    .await;
    assert_eq!(parent.db.cluster_published().unwrap().unwrap().number, 2);
    assert!(
        parent.status().unwrap().canary.is_none(),
        "the rollout ended"
    );

    // The next version (a rollback to version 1's content): release lets it go at once.
    parent.set_shared_setting("rollout.soak", "1h").unwrap();
    let (v3, _) = parent.publish_version(1, None).unwrap();
    wait_for("the test group switched to version 3", || {
        active(&canary) == 3
    })
    .await;
    assert!(others.iter().all(|c| active(c) == 2));
    parent.release_rollout().unwrap();
    wait_for("every child on version 3", || {
        kids.iter().all(|(c, _)| active(c) == v3.number)
    })
    .await;
    for (_, run) in kids {
        run.stop().await;
    }
    srv.stop().await;
}

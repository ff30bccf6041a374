//! Issue 9 points 1, 2 and 4 (per product): a serving parent mirrors on schedule and
//! publishes what changed, reading only the zone index when nothing did; products are
//! included or left out, frozen, delayed or taken on demand; one product rolls back alone.

mod common;

use std::fs;
use std::path::Path;

use common::*;
use updhub::products::{Mode, Take};

/// Point one product of a zone at `revision`.
fn set_product_revision(zone: &Path, product: &str, revision: &str) {
    let p = zone.join("zone.json");
    let mut v: serde_json::Value = serde_json::from_slice(&fs::read(&p).unwrap()).unwrap();
    for prod in v["products"].as_array_mut().unwrap() {
        if prod["name"] == product {
            prod["revision"] = revision.into();
        }
    }
    fs::write(p, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

/// The revision of each product in `hub`'s current version.
fn revisions(hub: &updhub::Hub) -> Vec<(String, String)> {
    let (_, m) = hub.current().unwrap().unwrap();
    let mut out: Vec<(String, String)> = m
        .entries
        .iter()
        .map(|e| (e.product.clone(), e.revision.clone()))
        .collect();
    out.dedup();
    out
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

/// A parent on a copy of the sample zone, version 1 published.
async fn published_parent(
    dir: &Path,
) -> (
    std::path::PathBuf,
    std::sync::Arc<updhub::Hub>,
    updhub::repo::Published,
) {
    let zone = sample_zone_copy(dir);
    let parent = zone_node(dir, "parent", &zone);
    let v1 = mirror_and_publish(&parent).await;
    (zone, parent, v1)
}

const OLD: &str = "2026112401";
const NEW: &str = "2026112402";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_serving_parent_mirrors_on_schedule_children_follow_and_an_unchanged_zone_is_read_no_further(
) {
    let dir = tempfile::tempdir().unwrap();
    let (zone, parent, v1) = published_parent(dir.path()).await;
    parent
        .set_shared_setting("upstream.mirror_interval", "1s")
        .unwrap();
    let srv = start(parent.clone()).await;
    let child = child_of(dir.path(), "child", &parent, Some(srv.url.clone()));
    let child_srv = start(child.clone()).await;

    // The upstream moves one product: the parent publishes by itself, the child follows.
    set_product_revision(&zone, "10-drwbases", NEW);
    wait_for("the scheduled mirror to publish version 2", || {
        parent.db.cluster_published().unwrap().unwrap().number == 2
    })
    .await;
    let v2 = parent.db.cluster_published().unwrap().unwrap();
    assert_ne!(v2.root, v1.root);
    // The scheduled mirror runs under the cluster's lease: a lone parent holds it.
    let lease = parent
        .db
        .leases()
        .unwrap()
        .into_iter()
        .find(|l| l.task == "scheduled mirror")
        .expect("the scheduled mirror's lease");
    assert_eq!(
        lease.holder.as_ref().map(|h| h.node.clone()),
        Some(parent.id().to_string())
    );
    assert_eq!(lease.period_ms, 1000);
    assert!(lease.runs >= 1 && lease.last_ok == Some(true), "{lease:?}");
    wait_for("the child to follow version 2", || {
        child
            .db
            .published()
            .unwrap()
            .is_some_and(|p| p.root == v2.root)
    })
    .await;
    assert_eq!(
        tree(&checkout(&child, dir.path(), "child-v2")),
        tree(&checkout(&parent, dir.path(), "parent-v2"))
    );
    assert!(revisions(&child).contains(&("10-drwbases".into(), NEW.into())));

    // Nothing new: the next rounds read zone.json only. Every product folder goes away, so a
    // round that read any file list or file would fail and say so.
    let before = parent.db.mirrored().unwrap().unwrap();
    for e in fs::read_dir(&zone).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            fs::remove_dir_all(e.path()).unwrap();
        }
    }
    wait_for("an unchanged round", || {
        parent.db.mirrored().unwrap().unwrap().checked_at > before.checked_at
    })
    .await;
    let after = parent.db.mirrored().unwrap().unwrap();
    assert_eq!(after.check_error, None);
    assert_eq!((after.root, after.at), (before.root, before.at));
    assert_eq!(parent.db.cluster_published().unwrap().unwrap().number, 2);
    assert!(parent.status().unwrap().upstream_warning.is_none());

    // A change the zone cannot deliver (its files are gone): the round fails, nothing is
    // published, and status says what went wrong.
    set_product_revision(&zone, "20-drwagent", NEW);
    wait_for("a failed round recorded", || {
        parent.db.mirrored().unwrap().unwrap().check_error.is_some()
    })
    .await;
    let warning = parent.status().unwrap().upstream_warning.unwrap();
    assert!(
        warning.contains("the last scheduled run failed") && warning.contains("20-drwagent"),
        "{warning}"
    );
    assert_eq!(parent.db.cluster_published().unwrap().unwrap().number, 2);
    assert_eq!(child.db.published().unwrap().unwrap().number, 2);
    child_srv.stop().await;
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_warns_when_the_zone_was_not_read_for_longer_than_stale_after() {
    let dir = tempfile::tempdir().unwrap();
    let (_zone, parent, _) = published_parent(dir.path()).await;
    assert!(parent.status().unwrap().upstream_warning.is_none());
    parent
        .set_shared_setting("upstream.stale_after", "1s")
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let w = parent.status().unwrap().upstream_warning.unwrap();
    assert!(
        w.starts_with("stale: the zone") && w.contains("upstream.stale_after is 1s"),
        "{w}"
    );
    // Reading the zone again, even with nothing new, makes it fresh.
    let u = parent.update().await.unwrap();
    assert!(u.mirrored.unchanged && u.published.is_none());
    assert!(parent.status().unwrap().upstream_warning.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_product_keeps_its_revision_while_the_others_move() {
    let dir = tempfile::tempdir().unwrap();
    let (zone, parent, _) = published_parent(dir.path()).await;
    parent
        .set_product_mode("10-drwbases", Mode::Frozen)
        .unwrap();
    set_zone_revision(&zone, NEW);
    let u = parent.update().await.unwrap();
    assert_eq!(u.published.unwrap().number, 2);
    assert_eq!(
        revisions(&parent),
        pairs(&[
            ("10-drwbases", OLD),
            ("20-drwagent", NEW),
            ("40-drwcsd", NEW),
            ("70-drwnews", NEW)
        ])
    );
    let d = parent.products().await.unwrap();
    let bases = d.iter().find(|d| d.product == "10-drwbases").unwrap();
    assert_eq!(
        (
            bases.mode,
            &bases.take,
            bases.current.as_deref(),
            bases.zone.as_deref()
        ),
        (Mode::Frozen, &Take::Keep, Some(OLD), Some(NEW))
    );
    // Frozen: nothing to release.
    let err = parent.release("10-drwbases").await.unwrap_err().to_string();
    assert!(err.contains("is frozen at revision 2026112401"), "{err}");
    // Thawed, it follows the zone at the next round.
    parent
        .set_product_mode("10-drwbases", Mode::Current)
        .unwrap();
    assert_eq!(parent.update().await.unwrap().published.unwrap().number, 3);
    assert!(revisions(&parent).iter().all(|(_, r)| r == NEW));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_product_waits_and_release_lets_it_go_as_does_its_delay() {
    let dir = tempfile::tempdir().unwrap();
    let (zone, parent, _) = published_parent(dir.path()).await;
    parent
        .set_product_mode("20-drwagent", Mode::Delayed)
        .unwrap();
    parent
        .set_product_mode("40-drwcsd", Mode::OnDemand)
        .unwrap();
    set_zone_revision(&zone, NEW);
    let started = chrono::Utc::now();
    parent.update().await.unwrap();
    assert_eq!(
        revisions(&parent),
        pairs(&[
            ("10-drwbases", NEW),
            ("20-drwagent", OLD),
            ("40-drwcsd", OLD),
            ("70-drwnews", NEW)
        ])
    );
    let d = parent.products().await.unwrap();
    let agent = d.iter().find(|d| d.product == "20-drwagent").unwrap();
    let w = agent.waiting.clone().unwrap();
    assert_eq!(w.revision, NEW);
    // publish.delay is a day by default.
    let until = w.until.unwrap();
    assert!(until >= started + chrono::Duration::hours(23), "{until}");
    let csd = d.iter().find(|d| d.product == "40-drwcsd").unwrap();
    assert_eq!(
        csd.waiting.as_ref().unwrap().until,
        None,
        "on demand: no date"
    );
    // Another round changes nothing: the waiting revisions go on waiting.
    let again = parent.update().await.unwrap();
    assert!(again.mirrored.unchanged && again.published.is_none());

    // release: the delayed product goes at once.
    let (rev, u) = parent.release("20-drwagent").await.unwrap();
    assert_eq!(rev, NEW);
    assert_eq!(u.published.unwrap().number, 3);
    assert!(revisions(&parent).contains(&("20-drwagent".into(), NEW.into())));
    assert!(revisions(&parent).contains(&("40-drwcsd".into(), OLD.into())));

    // A delay that ran out: the on-demand product stays, a delayed one goes by itself.
    parent.set_product_mode("40-drwcsd", Mode::Delayed).unwrap();
    parent.set_shared_setting("publish.delay", "1s").unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(parent.update().await.unwrap().published.unwrap().number, 4);
    assert!(revisions(&parent).iter().all(|(_, r)| r == NEW));

    // Excluded products leave the next version; unknown ones cannot be released.
    parent
        .set_shared_setting("upstream.products", r#"["*", "!70-*"]"#)
        .unwrap();
    parent.update().await.unwrap();
    assert!(revisions(&parent).iter().all(|(p, _)| p != "70-drwnews"));
    let err = parent.release("99-nothing").await.unwrap_err().to_string();
    assert!(
        err.contains("the zone offers no product \"99-nothing\""),
        "{err}"
    );
    let err = parent
        .set_shared_setting("upstream.products", r#"["!10-*"]"#)
        .unwrap_err()
        .to_string();
    assert!(err.contains("nothing would be mirrored"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_product_rolls_back_alone_stays_frozen_and_children_follow() {
    let dir = tempfile::tempdir().unwrap();
    let Pair {
        zone,
        parent,
        srv,
        child,
        ..
    } = pair(dir.path()).await;
    set_zone_revision(&zone, NEW);
    parent.update().await.unwrap();
    let (v3, new, rev) = parent
        .publish_product_version(1, "10-drwbases", None)
        .unwrap();
    assert!(new);
    assert_eq!((v3.number, rev.as_str()), (3, OLD));
    // The child reports: it stages version 3, which is then activated, and switches.
    updhub::child::sync_once(&child, &srv.url).await.unwrap();
    assert_eq!(
        revisions(&parent),
        pairs(&[
            ("10-drwbases", OLD),
            ("20-drwagent", NEW),
            ("40-drwcsd", NEW),
            ("70-drwnews", NEW)
        ])
    );
    updhub::child::sync_once(&child, &srv.url).await.unwrap();
    assert_eq!(child.db.published().unwrap().unwrap(), v3);
    assert_eq!(
        tree(&checkout(&child, dir.path(), "child-v3")),
        tree(&checkout(&parent, dir.path(), "parent-v3"))
    );
    // Frozen there: the next round leaves it.
    let u = parent.update().await.unwrap();
    assert!(u.published.is_none(), "{:?}", u.published);
    assert_eq!(
        parent.db.product_modes().unwrap().get("10-drwbases"),
        Some(&Mode::Frozen)
    );
    let err = parent
        .publish_product_version(1, "99-nothing", None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("version 1 holds no product \"99-nothing\""),
        "{err}"
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_version_rollback_is_not_undone_by_the_next_scheduled_round() {
    let dir = tempfile::tempdir().unwrap();
    let (zone, parent, v1) = published_parent(dir.path()).await;
    set_product_revision(&zone, "10-drwbases", NEW);
    assert_eq!(parent.update().await.unwrap().published.unwrap().number, 2);
    let (v3, new, frozen) = parent.rollback(1, None).unwrap();
    assert!(new);
    assert_eq!((v3.number, v3.root), (3, v1.root));
    assert_eq!(frozen, vec!["10-drwbases".to_owned()], "only what moved");
    // The zone still offers the newer revision; the round keeps the rollback.
    let u = parent.update().await.unwrap();
    assert!(u.published.is_none(), "{:?}", u.published);
    assert_eq!(
        parent.db.cluster_published().unwrap().unwrap().root,
        v1.root
    );
    // Thawed, the product moves forward again.
    parent
        .set_product_mode("10-drwbases", Mode::Current)
        .unwrap();
    assert_eq!(parent.update().await.unwrap().published.unwrap().number, 4);
}

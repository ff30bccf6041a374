//! A parent and its children end byte-identical; hierarchies of any depth; incremental updates.

mod common;

use std::sync::atomic::Ordering;

use common::*;
use updhub::child::sync_once;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parent_and_two_children_end_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let zone = sample_zone();
    let parent = zone_node(dir.path(), "parent", &zone);
    let published = mirror_and_publish(&parent).await;
    let srv = start(parent.clone()).await;
    let a = child_of(dir.path(), "child-a", &parent, None);
    let b = child_of(dir.path(), "child-b", &parent, None);
    for c in [&a, &b] {
        let r = sync_once(c, &srv.url).await.unwrap();
        assert!(r.changed);
        assert_eq!(r.root, published.root);
        assert_eq!(c.db.published().unwrap().unwrap().root, published.root);
    }
    let want = tree(&checkout(&parent, dir.path(), "parent"));
    assert!(want.len() > 50, "the sample zone has many files");
    assert_eq!(tree(&checkout(&a, dir.path(), "a")), want);
    assert_eq!(tree(&checkout(&b, dir.path(), "b")), want);
    // The parent knows both children hold its version.
    let status = parent.status().unwrap();
    assert_eq!(status.children.len(), 2);
    assert!(status
        .children
        .iter()
        .all(|c| c.in_sync && c.config_matches));
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_levels_grandchild_ends_identical() {
    let dir = tempfile::tempdir().unwrap();
    let zone = sample_zone_copy(dir.path());
    let parent = zone_node(dir.path(), "top", &zone);
    let v1 = mirror_and_publish(&parent).await;
    let top = start(parent.clone()).await;
    // The child runs `serve` with a parent in its config: it follows and serves on.
    let child = child_of(dir.path(), "middle", &parent, Some(top.url.clone()));
    let mid = start(child.clone()).await;
    wait_for("the middle node to follow the top", || {
        child.db.published().unwrap().map(|p| p.root) == Some(v1.root)
    })
    .await;
    let grandchild = child_of(dir.path(), "bottom", &child, None);
    let r = sync_once(&grandchild, &mid.url).await.unwrap();
    assert_eq!(r.root, v1.root);
    let want = tree(&checkout(&parent, dir.path(), "top"));
    assert_eq!(tree(&checkout(&grandchild, dir.path(), "bottom")), want);
    // The grandchild got the blobs from the middle node, not from the top.
    assert!(mid.stats.blob_bytes.load(Ordering::Relaxed) > 0);
    // An update at the top flows down both levels.
    set_zone_revision(&zone, "2026112402");
    let v2 = mirror_and_publish(&parent).await;
    assert_eq!(v2.number, 2);
    wait_for("the middle node to take version 2", || {
        child.db.published().unwrap().map(|p| p.number) == Some(2)
    })
    .await;
    let r = sync_once(&grandchild, &mid.url).await.unwrap();
    assert_eq!((r.number, r.root), (2, v2.root));
    // The middle node reported to the top, the grandchild to the middle, with the chain.
    let reports = child.status().unwrap().children;
    assert_eq!(reports.len(), 1);
    assert_eq!(
        reports[0].report.chain,
        vec!["middle".to_string(), "top".to_string()]
    );
    mid.stop().await;
    top.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_change_moves_only_new_blobs() {
    let dir = tempfile::tempdir().unwrap();
    let Pair {
        zone,
        parent,
        v1,
        srv,
        child,
        first,
    } = pair(dir.path()).await;
    let before: std::collections::BTreeSet<_> = blobs(&parent).into_iter().collect();
    let sent_before = srv.stats.blob_bytes.load(Ordering::Relaxed);
    assert_eq!(first.bytes, sent_before);

    set_zone_revision(&zone, "2026112402");
    let m = parent.mirror(None, false).await.unwrap();
    assert!(
        m.new_files > 0 && m.new_files < m.files,
        "an update changes some files, not all: {m}"
    );
    let (v2, new) = parent.publish(None).unwrap();
    assert!(new && v2.number == v1.number + 1);

    let second = sync_once(&child, &srv.url).await.unwrap();
    assert!(second.changed);
    // Exactly the blobs v2 has and v1 had not crossed the wire, counted on both ends.
    let m2 = parent.manifest(&v2.root).unwrap();
    let new_blobs: Vec<_> = m2
        .blobs()
        .into_iter()
        .filter(|(id, _)| !before.contains(id))
        .collect();
    assert!(!new_blobs.is_empty());
    let expected: u64 = new_blobs
        .iter()
        .map(|(id, _)| parent.store.stored_len(id).unwrap())
        .sum();
    assert_eq!(second.blobs, new_blobs.len() as u64);
    assert_eq!(second.bytes, expected);
    assert_eq!(
        srv.stats.blob_bytes.load(Ordering::Relaxed) - sent_before,
        expected
    );
    assert!(
        expected < first.bytes,
        "an update costs less than a full sync"
    );
    assert_eq!(
        tree(&checkout(&child, dir.path(), "child")),
        tree(&checkout(&parent, dir.path(), "parent"))
    );
    // Nothing new upstream: a sync moves nothing.
    let third = sync_once(&child, &srv.url).await.unwrap();
    assert!(!third.changed);
    assert_eq!(third.bytes, 0);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_and_https_zone_reproduce_the_same_root() {
    let dir = tempfile::tempdir().unwrap();
    let zone = sample_zone();
    let parent = zone_node(dir.path(), "parent", &zone);
    let v1 = mirror_and_publish(&parent).await;
    // Air-gapped: export as a zone folder, mirror it on another hub.
    let exported = dir.path().join("exported");
    parent.export_zone(&exported).unwrap();
    let other = zone_node(dir.path(), "other", &exported);
    let m = other.mirror(None, false).await.unwrap();
    assert_eq!(m.root, v1.root);
    // Chained: mirror another hub's /v1/zone over mutual TLS.
    let srv = start(parent.clone()).await;
    let chained = child_of(dir.path(), "chained", &parent, None);
    let m = chained
        .mirror(Some(&format!("{}v1/zone", srv.url)), false)
        .await
        .unwrap();
    assert_eq!(m.root, v1.root);
    // Every distinct blob crossed once (the same content at several paths is read once).
    let unique = parent.manifest(&v1.root).unwrap().blobs();
    assert_eq!(m.new_files, unique.len() as u64);
    assert_eq!(m.new_bytes, unique.iter().map(|b| b.1).sum::<u64>());
    srv.stop().await;
}

//! Issue 9 point 7: a store that heals. A flipped byte on a serving node is found (by
//! `verify`, by the background scrub, or when a child reports what it received), taken out of
//! service, fetched again from the parent, and never reaches a child; `publish` refuses to
//! sign a version whose blobs do not verify.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::*;
use updhub::child::{sync_once, SyncError};
use updhub::hub::Hub;
use updhub::store::StoreError;

/// A parent that published the sample zone and serves, and a linked child that synced. The
/// child follows no parent by itself when it serves (upstream.parent is not set): the test
/// syncs it, so each step is the test's.
async fn parent_and_child(dir: &Path) -> (Arc<Hub>, Running, Arc<Hub>) {
    let parent = zone_node(dir, "parent", &sample_zone());
    mirror_and_publish(&parent).await;
    let srv = start(parent.clone()).await;
    let child = child_of(dir, "child", &parent, None);
    sync_once(&child, &srv.url).await.unwrap();
    (parent, srv, child)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_finds_a_flipped_byte_and_the_next_sync_repairs_it_from_the_parent() {
    let dir = tempfile::tempdir().unwrap();
    let (parent, srv, child) = parent_and_child(dir.path()).await;
    let bad = a_file_blob(&child);
    flip(&child, &bad);

    // Found, with the version that needs it, and quarantined.
    let r = updhub::verify::scan(&child, 2, true).unwrap();
    assert_eq!(r.damaged.len(), 1, "{r:?}");
    assert_eq!(r.damaged[0].blob, bad);
    assert_eq!(r.damaged[0].versions, vec![1]);
    assert!(r.damaged[0].quarantined.is_some());
    assert!(!child.store.contains(&bad));
    let st = child.status().unwrap();
    let damage = st.store_damage.unwrap();
    assert!(damage.contains("misses 1 blob"), "{damage}");

    // The next sync notices and fetches it again, verified.
    let rep = sync_once(&child, &srv.url).await.unwrap();
    assert!(rep.repaired && !rep.changed, "{rep}");
    assert_eq!(rep.blobs, 1, "{rep}");
    assert!(rep.to_string().starts_with("repaired version 1"), "{rep}");
    child.store.verify(&bad).unwrap();
    let st = child.status().unwrap();
    assert!(
        st.store_damage
            .unwrap()
            .starts_with("the served version is whole"),
        "the quarantined copy is kept and said so"
    );
    // The child's copy is byte-identical to the parent's again.
    assert_eq!(
        tree(&checkout(&child, dir.path(), "child")),
        tree(&checkout(&parent, dir.path(), "parent"))
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_blob_on_a_serving_child_never_reaches_its_own_child() {
    let dir = tempfile::tempdir().unwrap();
    let (parent, psrv, child) = parent_and_child(dir.path()).await;
    // The child's scrub off: it would find the blob first, quarantine it and fetch it again
    // at once (tests/repair.rs), and this test is about what the grandchild is sent.
    let mut cfg = (*child.live()).clone();
    cfg.store.scrub_rate_mib = 0;
    let data = child.data.clone();
    drop(child);
    let child = Arc::new(Hub::open_with(&data, cfg).unwrap());
    let csrv = start(child.clone()).await;
    let bad = a_file_blob(&child);
    flip(&child, &bad);

    // A grandchild fetching from the child gets bytes that do not verify: it refuses them,
    // keeps nothing of them, and tells the child, which rechecks and quarantines the blob.
    let grandchild = child_of(dir.path(), "grandchild", &child, Some(csrv.url.clone()));
    let err = sync_once(&grandchild, &csrv.url).await.err().unwrap();
    assert!(
        matches!(err, SyncError::Store(StoreError::HashMismatch { .. }))
            || err
                .to_string()
                .contains(&format!("blob {bad} is not held here")),
        "{err}"
    );
    assert!(!grandchild.store.contains(&bad));
    assert!(grandchild.db.published().unwrap().is_none());
    assert!(!child.store.contains(&bad), "quarantined on the report");
    assert_eq!(child.store.quarantined().unwrap(), 1);
    // Asked again, the child answers 404 for it, never the damaged bytes.
    let client = updhub::peer::upstream_client(&grandchild.keys).unwrap();
    let r = client
        .get(format!("{}/v1/blobs/{bad}", csrv.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);

    // The child repairs from its parent at its next sync; then the grandchild gets it all.
    let rep = sync_once(&child, &psrv.url).await.unwrap();
    assert!(rep.repaired, "{rep}");
    sync_once(&grandchild, &csrv.url).await.unwrap();
    assert_eq!(
        tree(&checkout(&grandchild, dir.path(), "grandchild")),
        tree(&checkout(&parent, dir.path(), "parent"))
    );
    csrv.stop().await;
    psrv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_background_scrub_takes_a_damaged_blob_out_of_service_and_it_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let parent = zone_node(dir.path(), "parent", &sample_zone());
    mirror_and_publish(&parent).await;
    let psrv = start(parent.clone()).await;
    let child = child_of(dir.path(), "child", &parent, Some(psrv.url.clone()));
    sync_once(&child, &psrv.url).await.unwrap();
    let bad = a_file_blob(&child);
    flip(&child, &bad);
    // The scrub of a serving node (16 MiB/s by default; the sample zone is 2 MiB).
    let csrv = start(child.clone()).await;
    wait_for("the scrub to quarantine the blob", || {
        child.store.quarantined().unwrap() == 1
    })
    .await;
    // Fetched again from the parent: by the scrub's own repair, or the next sync.
    wait_for("the blob to be fetched again", || {
        child.store.contains(&bad)
    })
    .await;
    child.store.verify(&bad).unwrap();
    csrv.stop().await;
    psrv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_refuses_a_version_whose_blobs_do_not_verify() {
    let dir = tempfile::tempdir().unwrap();
    let parent = zone_node(dir.path(), "parent", &sample_zone());
    parent.mirror(None, false).await.unwrap();
    let root = parent.db.mirrored().unwrap().unwrap().root;
    let mut blobs = updhub::verify::version_blobs(&parent.store, &root).unwrap();
    blobs.retain(|b| *b != root.0);
    let bad = blobs[blobs.len() / 2];
    flip(&parent, &bad);
    let err = parent.publish(None).unwrap_err().to_string();
    assert!(
        err.contains(&bad.to_string()) && err.contains("is damaged"),
        "{err}"
    );
    assert!(err.contains("updhub verify --repair"), "{err}");
    assert!(parent.db.published().unwrap().is_none(), "nothing signed");
    // The repair a parent runs: quarantine, then mirror the zone again; then it publishes.
    let r = updhub::verify::scan(&parent, 2, true).unwrap();
    assert_eq!(r.damaged.len(), 1);
    parent.mirror(None, false).await.unwrap();
    parent.store.verify(&bad).unwrap();
    let (p, _) = parent.publish(None).unwrap();
    assert_eq!(p.number, 1);
}

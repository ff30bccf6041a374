//! Issue 10 point 4: backup and restore. A parent's archive is taken while it serves; the
//! parent dies after publishing once more; the restored parent continues its version
//! numbers past what its children hold, and they accept what it publishes. A child lost
//! after its backup is restored into a new folder, rejoins its parent with the same link
//! and catches up with what was published meanwhile.

mod common;

use std::sync::Arc;

use common::*;
use updhub::child::sync_once;
use updhub::Hub;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_restored_from_a_backup_taken_while_serving_publishes_past_its_children() {
    let dir = tempfile::tempdir().unwrap();
    let zone = sample_zone_copy(dir.path());
    let parent = zone_node(dir.path(), "parent", &zone);
    let v1 = mirror_and_publish(&parent).await;
    let srv = start(parent.clone()).await;
    let child = child_of(dir.path(), "child", &parent, None);
    sync_once(&child, &srv.url).await.unwrap();

    // The archive, while the parent serves.
    let archive = dir.path().join("parent.tar.zst");
    let m = updhub::backup::backup(&parent, &archive).unwrap();
    assert_eq!((m.server_id.as_str(), m.version), ("parent", Some(1)));
    assert_eq!(
        m.database,
        if on_postgres() { "postgres" } else { "sqlite" }
    );

    // The parent publishes once more (the backup does not know it), the child follows,
    // then the parent's machine is lost.
    set_zone_revision(&zone, "2026112402");
    let v2 = mirror_and_publish(&parent).await;
    assert_eq!(v2.number, 2);
    sync_once(&child, &srv.url).await.unwrap();
    assert_eq!(child.db.published().unwrap().unwrap(), v2);
    srv.stop().await;
    let (keys_before, data) = (parent.keys.ca.current_fp(), parent.data.clone());
    drop(parent);
    std::fs::remove_dir_all(&data).unwrap();

    // Restored into a new folder: the same node, keys and (embedded) database.
    let restored_dir = dir.path().join("restored");
    let r = updhub::backup::restore(&archive, &restored_dir).unwrap();
    assert_eq!(r.server_id, "parent");
    let err = updhub::backup::restore(&archive, &restored_dir)
        .unwrap_err()
        .to_string();
    assert!(err.contains("is not empty"), "{err}");
    let restored = Arc::new(Hub::open(&restored_dir).unwrap());
    assert_eq!(restored.keys.ca.current_fp(), keys_before);
    if on_postgres() {
        // The shared database still names the lost instance as live for a while: a node
        // with its id is refused until then (the restore of an embedded database forgets it).
        tokio::time::sleep(updhub::hub::MEMBER_ALIVE + std::time::Duration::from_secs(1)).await;
    }
    let srv = start(restored.clone()).await;

    // Its store is empty: it mirrors again and publishes. Its children hold version 2 (on
    // the embedded database the backup knew only version 1): the child reports it, and the
    // next number goes past it.
    let r = sync_once(&child, &srv.url).await;
    if on_postgres() {
        // The cluster's database is not in the archive: it kept version 2.
        assert_eq!(r.unwrap().number, 2);
    } else {
        let e = r.unwrap_err().to_string();
        assert!(e.contains("older than version 2 already accepted"), "{e}");
    }
    wait_for("the restored parent hears the child", || {
        restored
            .db
            .children()
            .unwrap()
            .iter()
            .any(|c| c.number == Some(2))
    })
    .await;
    // (The vendor went back to the first revision meanwhile: new content on both engines.)
    set_zone_revision(&zone, "2026112401");
    restored.mirror(None, false).await.unwrap();
    let (v3, new) = restored.publish(None).unwrap();
    assert!(new);
    assert_eq!((v3.number, v3.root), (3, v1.root));
    sync_once(&child, &srv.url).await.unwrap();
    assert_eq!(child.db.published().unwrap().unwrap(), v3);
    assert_eq!(
        tree(&checkout(&child, dir.path(), "child-v3")),
        tree(&checkout(&restored, dir.path(), "restored-v3"))
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_restored_from_its_backup_rejoins_its_parent_and_catches_up() {
    let dir = tempfile::tempdir().unwrap();
    let zone = sample_zone_copy(dir.path());
    let parent = zone_node(dir.path(), "parent", &zone);
    mirror_and_publish(&parent).await;
    let srv = start(parent.clone()).await;
    let child = child_of(dir.path(), "child", &parent, Some(srv.url.clone()));
    let csrv = start(child.clone()).await;
    wait_for("the child on version 1", || {
        child.db.published().unwrap().is_some_and(|p| p.number == 1)
    })
    .await;

    // The child's archive while it serves; then its machine is lost, and the parent
    // publishes meanwhile.
    let archive = dir.path().join("child.tar.zst");
    let m = updhub::backup::backup(&child, &archive).unwrap();
    assert_eq!((m.server_id.as_str(), m.version), ("child", Some(1)));
    csrv.stop().await;
    let data = child.data.clone();
    drop(child);
    std::fs::remove_dir_all(&data).unwrap();
    set_zone_revision(&zone, "2026112402");
    let v2 = mirror_and_publish(&parent).await;

    // Restored into a new folder: its keys and link certificate are back, its store is
    // empty. It syncs with the same link (the parent knows it) and fetches all of version 2.
    let restored_dir = dir.path().join("child-restored");
    updhub::backup::restore(&archive, &restored_dir).unwrap();
    let restored = Arc::new(Hub::open(&restored_dir).unwrap());
    assert!(restored.is_child());
    let r = sync_once(&restored, &srv.url).await.unwrap();
    assert_eq!(r.number, 2);
    assert!(r.blobs > 0, "its store was empty: {r:?}");
    assert_eq!(restored.db.published().unwrap().unwrap(), v2);
    assert_eq!(
        tree(&checkout(&restored, dir.path(), "restored-v2")),
        tree(&checkout(&parent, dir.path(), "parent-v2"))
    );
    // The parent hears from it again under its id.
    wait_for("the parent to hear the restored child on version 2", || {
        parent
            .db
            .children()
            .unwrap()
            .iter()
            .any(|c| c.child_id == "child" && c.number == Some(2))
    })
    .await;
    srv.stop().await;
}

#[test]
fn an_archive_that_is_not_a_backup_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.tar.zst");
    std::fs::write(&junk, b"not an archive").unwrap();
    let err = updhub::backup::restore(&junk, &dir.path().join("n"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("is not a usable updhub backup"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_backs_the_node_up_on_schedule_and_keeps_the_newest_archives() {
    let dir = tempfile::tempdir().unwrap();
    let zone = sample_zone_copy(dir.path());
    let node = zone_node(dir.path(), "parent", &zone);
    mirror_and_publish(&node).await;
    let (data, mut cfg) = (node.data.clone(), node.config.clone());
    drop(node);
    cfg.backup.every = std::time::Duration::from_millis(300);
    cfg.backup.keep = 2;
    let node = Arc::new(Hub::open_with(&data, cfg).unwrap());
    let archives = || {
        let mut v: Vec<_> = std::fs::read_dir(data.join("backups"))
            .map(|d| {
                d.filter_map(|e| e.ok().map(|e| e.path()))
                    // Not the work files of a backup being written (`.tmp…`).
                    .filter(|p| p.to_string_lossy().ends_with(".tar.zst"))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    let srv = start(node.clone()).await;
    wait_for("two archives", || archives().len() == 2).await;
    let first = archives();
    wait_for("a third run", || {
        archives().last().is_some_and(|a| !first.contains(a))
    })
    .await;
    srv.stop().await;
    let kept = archives();
    assert_eq!(
        kept.len(),
        2,
        "only the newest backup.keep archives stay: {kept:?}"
    );
    assert!(!kept.contains(&first[0]), "the oldest went");
    let m = updhub::backup::restore(kept.last().unwrap(), &dir.path().join("restored")).unwrap();
    assert_eq!((m.server_id.as_str(), m.version), ("parent", Some(1)));
}

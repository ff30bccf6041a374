//! Issue 9 point 4: a rollback moves forward. `publish --version N` publishes an earlier
//! version's content again under the next number, and children follow it byte for byte.

mod common;

use common::*;
use updhub::child::sync_once;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_publishes_the_old_content_as_number_plus_one_and_children_follow() {
    let dir = tempfile::tempdir().unwrap();
    let Pair {
        zone,
        parent,
        v1,
        srv,
        child,
        ..
    } = pair(dir.path()).await;
    let was = tree(&checkout(&parent, dir.path(), "v1"));
    set_zone_revision(&zone, "2026112402");
    let v2 = mirror_and_publish(&parent).await;
    assert_ne!(v2.root, v1.root);
    sync_once(&child, &srv.url).await.unwrap();
    assert_eq!(child.db.published().unwrap().unwrap().number, 2);

    // Back to version 1's content, as version 3.
    let (v3, new) = parent.publish_version(1, None).unwrap();
    assert!(new);
    assert_eq!((v3.number, v3.root), (3, v1.root));
    let r = sync_once(&child, &srv.url).await.unwrap();
    assert!(r.changed, "{r}");
    assert_eq!(child.db.published().unwrap().unwrap(), v3);
    assert_eq!(tree(&checkout(&child, dir.path(), "child-v3")), was);

    // Asking for the version in force again only re-signs it; an unknown one is named.
    let (again, new) = parent.publish_version(3, None).unwrap();
    assert!(!new);
    assert_eq!((again.number, again.root), (3, v1.root));
    let err = parent.publish_version(99, None).unwrap_err().to_string();
    assert!(err.contains("there is no version 99"), "{err}");
    // A plain publish goes forward to the mirrored content again.
    let (v4, _) = parent.publish(None).unwrap();
    assert_eq!((v4.number, v4.root), (4, v2.root));
    srv.stop().await;
}

//! A node that already stores a zone's content checks every entry of the zone as a fresh node
//! does: declared sizes against the stored content, files present in the zone, sizes within
//! the schema; and `publish` refuses a manifest whose sizes disagree with its blobs.

mod common;

use std::fs;
use std::path::Path;

use common::*;
use updhub::hub::Hub;

/// A node that has mirrored a small zone once; returns it and the zone.
async fn mirrored_node(dir: &Path) -> (std::sync::Arc<Hub>, std::path::PathBuf) {
    let zone = write_zone(
        dir,
        "p",
        "1",
        &[("a.vdb", noise(805, 1)), ("b.vdb", noise(3000, 2))],
    );
    let hub = zone_node(dir, "n", &zone);
    mirror_and_publish(&hub).await;
    (hub, zone)
}

/// Replace `a.vdb`'s size in the zone's file list.
fn declare_size(zone: &Path, size: &str) {
    let list = zone.join("p/1/files.json");
    let text = fs::read_to_string(&list)
        .unwrap()
        .replace("\"size\":805", &format!("\"size\":{size}"));
    assert!(text.contains(size));
    fs::write(&list, text).unwrap();
}

/// Mirror on the node that holds the blobs and on a fresh node; both must refuse, and the
/// node keeps its last good mirror. Returns the two errors.
async fn refused_by_both(dir: &Path, hub: &Hub, zone: &Path) -> (String, String) {
    let before = hub.db.mirrored().unwrap();
    let known = hub.mirror(None, false).await.unwrap_err().to_string();
    assert_eq!(
        hub.db.mirrored().unwrap().map(|m| m.root),
        before.map(|m| m.root),
        "the last good mirror stays"
    );
    let fresh = zone_node(dir, "fresh", zone);
    let new = fresh.mirror(None, false).await.unwrap_err().to_string();
    (known, new)
}

#[tokio::test]
async fn a_known_blob_declared_with_size_zero_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (hub, zone) = mirrored_node(dir.path()).await;
    declare_size(&zone, "0");
    let (known, fresh) = refused_by_both(dir.path(), &hub, &zone).await;
    assert!(
        known.contains("a.vdb") && known.contains("declares 0 bytes"),
        "{known}"
    );
    assert!(fresh.contains("a.vdb") && fresh.contains("0"), "{fresh}");
}

#[tokio::test]
async fn a_size_beyond_the_schema_maximum_is_refused_known_or_not() {
    let dir = tempfile::tempdir().unwrap();
    let (hub, zone) = mirrored_node(dir.path()).await;
    declare_size(&zone, "18446744073709551615");
    let (known, fresh) = refused_by_both(dir.path(), &hub, &zone).await;
    for err in [known, fresh] {
        assert!(
            err.contains("a.vdb") && err.contains("beyond the maximum"),
            "{err}"
        );
    }
}

#[tokio::test]
async fn a_known_blob_with_a_wrong_size_within_the_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (hub, zone) = mirrored_node(dir.path()).await;
    // Make the zone's file match its declared (wrong) size, so only the stored blob can tell.
    declare_size(&zone, "9000");
    fs::write(zone.join("p/1/data/a.vdb"), noise(9000, 3)).unwrap();
    let (known, _) = refused_by_both(dir.path(), &hub, &zone).await;
    assert!(
        known.contains("a.vdb") && known.contains("declares 9000 bytes") && known.contains("805"),
        "{known}"
    );
}

#[tokio::test]
async fn a_known_blob_missing_from_the_zone_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (hub, zone) = mirrored_node(dir.path()).await;
    let gone = zone.join("p/1/data/a.vdb");
    fs::remove_file(&gone).unwrap();
    let (known, fresh) = refused_by_both(dir.path(), &hub, &zone).await;
    for err in [known, fresh] {
        assert!(err.contains(&gone.display().to_string()), "{err}");
    }
}

#[tokio::test]
async fn publish_refuses_a_manifest_whose_sizes_disagree_with_its_blobs() {
    let dir = tempfile::tempdir().unwrap();
    let (hub, _) = mirrored_node(dir.path()).await;
    let (_, good) = hub.current().unwrap().unwrap();
    // A manifest that names the stored blob of a.vdb with another (schema-valid) size.
    let mut entries = good.entries.clone();
    entries[0].size = 806;
    let bad = updhub::repo::Manifest::new(entries).unwrap();
    let root = updhub::id::Root(hub.store.put_bytes(&bad.canonical_bytes()).unwrap());
    hub.db
        .set_mirrored(root, "test", 2, bad.total_size(), chrono::Utc::now())
        .unwrap();
    let err = hub.publish(None).unwrap_err().to_string();
    assert!(
        err.contains("p/a.vdb") && err.contains("declares 806 bytes") && err.contains("805"),
        "{err}"
    );
    assert_eq!(hub.versions().unwrap().len(), 1, "no version was published");
}

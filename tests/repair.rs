//! Issue 18 points 5 and 6: repair. Every blob a kept version needs that the store lacks
//! (quarantined, lost, or never restored) is fetched again from where it can be had (the
//! zone at the revision the version names, a member, the parent), by `verify --repair`, by
//! the scheduled round and by the scrub; the zone route never promises bytes it does not
//! have; a parent restored after a rollback heals and keeps the rollback and its freezes.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::*;
use updhub::config::Config;
use updhub::hub::Hub;
use updhub::id::{BlobId, Root};
use updhub::node::Task;

/// `hub` opened again without the background work that would race a test's own steps: no
/// scrub and no scheduled mirror (the test runs each round itself).
fn quiet(hub: Arc<Hub>) -> Arc<Hub> {
    let data = hub.data.clone();
    drop(hub);
    let mut cfg = Config::load(&data).unwrap();
    cfg.store.scrub_rate_mib = 0;
    cfg.upstream.mirror_interval = std::time::Duration::ZERO;
    std::fs::write(data.join("updhub.toml"), cfg.to_commented_toml()).unwrap();
    Arc::new(Hub::open_with(&data, cfg).unwrap())
}

/// The file blobs of version `root` (not its manifest).
fn file_blobs(hub: &Hub, root: &Root) -> Vec<BlobId> {
    let mut b = updhub::verify::version_blobs(&hub.store, root).unwrap();
    b.retain(|x| *x != root.0);
    b
}

/// A parent of a copy of the sample zone that published version 1 (revision 2026112401),
/// version 2 (2026112402) and rolled back to version 1's content as version 3, which froze
/// every product at 2026112401. Returns the parent, the zone and the three versions' roots.
async fn rolled_back(dir: &Path) -> (Arc<Hub>, std::path::PathBuf, Root, Root) {
    let zone = sample_zone_copy(dir);
    let parent = quiet(zone_node(dir, "parent", &zone));
    let v1 = mirror_and_publish(&parent).await;
    set_zone_revision(&zone, "2026112402");
    let v2 = mirror_and_publish(&parent).await;
    assert_ne!(v1.root, v2.root);
    let (v3, new, frozen) = parent.rollback(1, None).unwrap();
    assert!(new);
    assert_eq!((v3.number, v3.root), (3, v1.root));
    assert_eq!(frozen.len(), 4, "{frozen:?}");
    (parent, zone, v1.root, v2.root)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_repair_fetches_a_blob_serve_already_quarantined() {
    let dir = tempfile::tempdir().unwrap();
    let parent = quiet(zone_node(
        dir.path(),
        "parent",
        &sample_zone_copy(dir.path()),
    ));
    mirror_and_publish(&parent).await;
    // What serve does when a child reports the blob damaged or the scrub finds it.
    let bad = a_file_blob(&parent);
    parent.store.quarantine(&bad).unwrap().unwrap();
    assert!(parent
        .status()
        .unwrap()
        .store_damage
        .unwrap()
        .contains("misses 1 blob"));

    let out = updhub_bin()
        .arg("--data")
        .arg(&parent.data)
        .args(["verify", "--repair"])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(parent.store.contains(&bad), "not fetched again: {text}");
    parent.store.verify(&bad).unwrap();
    assert!(parent
        .status()
        .unwrap()
        .store_damage
        .unwrap()
        .starts_with("the served version is whole"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduled_round_repairs_a_quarantined_blob_of_a_frozen_product() {
    let dir = tempfile::tempdir().unwrap();
    let (parent, _zone, r1, r2) = rolled_back(dir.path()).await;
    // A blob only revision 2026112401 holds: the zone's current revision cannot give it.
    let newer = file_blobs(&parent, &r2);
    let bad = *file_blobs(&parent, &r1)
        .iter()
        .find(|b| !newer.contains(b))
        .unwrap();
    parent.store.quarantine(&bad).unwrap().unwrap();

    // One scheduled round (what the `scheduled mirror` task runs).
    let u = parent.update().await.unwrap();
    assert!(
        u.published.is_none(),
        "nothing new to publish: {}",
        u.mirrored
    );
    assert!(parent.store.contains(&bad), "the round did not repair");
    parent.store.verify(&bad).unwrap();
    // The rollback and the freezes stand.
    assert_eq!(parent.db.published().unwrap().unwrap().root, r1);
    assert_eq!(parent.db.product_modes().unwrap().len(), 4);
    // And updates go on: the next round is as good.
    parent.update().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scrub_repairs_what_it_quarantines() {
    let dir = tempfile::tempdir().unwrap();
    let (parent, _zone, r1, r2) = rolled_back(dir.path()).await;
    let newer = file_blobs(&parent, &r2);
    let bad = *file_blobs(&parent, &r1)
        .iter()
        .find(|b| !newer.contains(b))
        .unwrap();
    flip(&parent, &bad);
    let mut cfg = (*parent.live()).clone();
    cfg.store.scrub_rate_mib = 1024;
    let data = parent.data.clone();
    drop(parent);
    let parent = Arc::new(Hub::open_with(&data, cfg).unwrap());
    let mut scrub = updhub::node::Scrub::new(parent.clone());
    // A pass over the whole store: 1 GiB a round is more than the store holds.
    scrub.round().await;
    scrub.round().await;
    assert_eq!(
        parent.store.quarantined().unwrap(),
        1,
        "found and quarantined"
    );
    assert!(parent.store.contains(&bad), "and fetched again");
    parent.store.verify(&bad).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_zone_route_never_promises_bytes_it_does_not_have() {
    let dir = tempfile::tempdir().unwrap();
    let parent = quiet(zone_node(
        dir.path(),
        "parent",
        &sample_zone_copy(dir.path()),
    ));
    mirror_and_publish(&parent).await;
    let child = child_of(dir.path(), "child", &parent, None);
    let srv = start(parent.clone()).await;
    let client = updhub::peer::upstream_client(&child.keys).unwrap();
    let root = parent.db.published().unwrap().unwrap().root;
    let m = parent.manifest(&root).unwrap();
    let url = |id: BlobId| {
        let e = m.entries.iter().find(|e| e.blake3 == id).unwrap();
        format!(
            "{}v1/zone/{}/{}/data/{}",
            srv.url, e.product, e.revision, e.path
        )
    };
    let mut files = file_blobs(&parent, &root);
    files.sort_by_key(|b| std::cmp::Reverse(parent.store.content_size(b).unwrap()));

    // Quarantined: not found, rather than 200 with the stored length and then no byte.
    let gone = files[1];
    parent.store.quarantine(&gone).unwrap().unwrap();
    let r = client.get(url(gone)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 404);

    // Rotten between scrubs, as valid zstd of other content of the same size: the route
    // must not hand it over as good, and takes it out of service.
    let rotten = files[0];
    let mut other = parent.store.read_bytes(&rotten).unwrap();
    for b in other.iter_mut().step_by(97) {
        *b ^= 0x5a;
    }
    std::fs::write(
        parent.store.blob_path(&rotten),
        zstd::encode_all(&other[..], 3).unwrap(),
    )
    .unwrap();
    let r = client.get(url(rotten)).send().await.unwrap();
    let status = r.status().as_u16();
    let body = r.bytes().await;
    assert!(
        !(status == 200 && body.is_ok()),
        "a blob that does not verify was served whole as good ({status}, {} bytes)",
        body.map(|b| b.len()).unwrap_or(0)
    );
    wait_for("the route to quarantine the rotten blob", || {
        !parent.store.contains(&rotten)
    })
    .await;
    // A good one streams whole.
    let good = files[2];
    let r = client.get(url(good)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        r.bytes().await.unwrap().to_vec(),
        parent.store.read_bytes(&good).unwrap()
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_on_an_empty_store_names_the_blobs_kept_versions_miss() {
    let dir = tempfile::tempdir().unwrap();
    let parent = quiet(zone_node(
        dir.path(),
        "parent",
        &sample_zone_copy(dir.path()),
    ));
    mirror_and_publish(&parent).await;
    let blobs = parent.data.join("store").join("blobs");
    std::fs::remove_dir_all(&blobs).unwrap();
    std::fs::create_dir_all(&blobs).unwrap();

    let out = updhub_bin()
        .arg("--data")
        .arg(&parent.data)
        .arg("verify")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("missing"), "{text}");
    assert!(text.contains("verify --repair"), "{text}");

    // And the repair brings it all back from the zone.
    let out = updhub_bin()
        .arg("--data")
        .arg(&parent.data)
        .args(["verify", "--repair"])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    let root = parent.db.published().unwrap().unwrap().root;
    for b in updhub::verify::version_blobs(&parent.store, &root).unwrap() {
        parent.store.verify(&b).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_restored_after_a_rollback_heals_and_keeps_the_rollback_and_freezes() {
    let dir = tempfile::tempdir().unwrap();
    let (parent, _zone, r1, _r2) = rolled_back(dir.path()).await;
    let was = tree(&checkout(&parent, dir.path(), "v1"));
    let archive = dir.path().join("parent.tar.zst");
    updhub::backup::backup(&parent, &archive).unwrap();
    let data = parent.data.clone();
    drop(parent);
    std::fs::remove_dir_all(&data).unwrap();

    let restored_dir = dir.path().join("restored");
    updhub::backup::restore(&archive, &restored_dir).unwrap();
    let restored = quiet(Arc::new(Hub::open(&restored_dir).unwrap()));
    // The store is empty: mirror heals the kept versions from the zone at their revisions
    // (the zone now offers 2026112402; the frozen products stay at 2026112401).
    let s = restored.mirror(None, false).await.unwrap();
    assert_eq!(s.root, r1, "{s}");
    let (p, _) = restored.publish(None).unwrap();
    assert_eq!(p.root, r1);
    assert!(p.number >= 3);
    assert_eq!(
        restored.db.product_modes().unwrap().len(),
        4,
        "freezes kept"
    );
    assert_eq!(tree(&checkout(&restored, dir.path(), "restored")), was);
    // The next scheduled round keeps it there.
    let u = restored.update().await.unwrap();
    assert!(u.published.is_none(), "{}", u.mirrored);
    assert_eq!(restored.db.published().unwrap().unwrap().root, r1);
}

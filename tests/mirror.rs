//! Mirror is incremental and an interrupted run continues where it stopped.

mod common;

use std::fs;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_mirror_continues_where_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let mut files: Vec<(String, Vec<u8>)> = (0..9)
        .map(|i| (format!("small/{i}.vdb"), noise(20_000, i)))
        .collect();
    files.push(("big.vdb".into(), noise(8 * 1024 * 1024, 99)));
    let refs: Vec<(&str, Vec<u8>)> = files.iter().map(|(p, d)| (p.as_str(), d.clone())).collect();
    let zone = write_zone(dir.path(), "p", "1", &refs);
    // The big file is damaged upstream: the run fails on it after the small ones are in.
    let mut bad = files[9].1.clone();
    bad[123] ^= 1;
    fs::write(zone.join("p/1/data/big.vdb"), &bad).unwrap();
    let hub = zone_node(dir.path(), "n", &zone);
    assert!(hub.mirror(None, false).await.is_err());
    assert!(hub.db.mirrored().unwrap().is_none());
    // Upstream is repaired: the next run reads only what is not stored yet.
    fs::write(zone.join("p/1/data/big.vdb"), &files[9].1).unwrap();
    let s = hub.mirror(None, false).await.unwrap();
    assert_eq!(s.files, 10);
    assert!(
        s.new_files < 10,
        "verified blobs of the first run are kept: {s}"
    );
    assert!(s.new_files >= 1);
    // And a third run reads nothing.
    let s = hub.mirror(None, false).await.unwrap();
    assert_eq!((s.new_files, s.new_bytes, s.stored_bytes), (0, 0, 0));
    for id in blobs(&hub) {
        hub.store.verify(&id).unwrap();
    }
}

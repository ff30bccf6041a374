//! A failed checkout or export leaves nothing behind: the tree is written into a temp folder
//! and renamed into place only once whole.

mod common;

use std::fs;
use std::path::Path;

use common::*;
use updhub::hub::Hub;

/// A published node with 20 files, whose last file's blob is damaged in the store.
async fn damaged_node(dir: &Path) -> std::sync::Arc<Hub> {
    let files: Vec<(String, Vec<u8>)> = (0..20)
        .map(|i| (format!("f{i:02}.vdb"), noise(10_000, i)))
        .collect();
    let refs: Vec<(&str, Vec<u8>)> = files.iter().map(|(p, d)| (p.as_str(), d.clone())).collect();
    let zone = write_zone(dir, "p", "1", &refs);
    let hub = zone_node(dir, "n", &zone);
    mirror_and_publish(&hub).await;
    let last = updhub::id::BlobId::of(&files[19].1);
    fs::write(hub.store.blob_path(&last), b"not a zstd frame").unwrap();
    hub
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn a_failed_checkout_leaves_no_partial_tree() {
    let dir = tempfile::tempdir().unwrap();
    let hub = damaged_node(dir.path()).await;
    let out = dir.path().join("out");
    fs::create_dir(&out).unwrap();
    let before = entries(&out);
    let to = out.join("checkout");
    let err = hub.checkout(&to).unwrap_err().to_string();
    assert!(err.contains("corrupt"), "{err}");
    assert!(!to.exists(), "no partial tree at {}", to.display());
    assert_eq!(entries(&out), before, "no temp folder is left either");
}

#[tokio::test]
async fn a_failed_export_leaves_no_partial_zone() {
    let dir = tempfile::tempdir().unwrap();
    let hub = damaged_node(dir.path()).await;
    let out = dir.path().join("out");
    let to = out.join("zone");
    fs::create_dir_all(&to).unwrap();
    let err = hub.export_zone(&to).unwrap_err().to_string();
    assert!(err.contains("corrupt"), "{err}");
    assert_eq!(entries(&to), Vec::<String>::new(), "the target stays empty");
    assert_eq!(
        entries(&out),
        vec!["zone".to_owned()],
        "no temp folder is left"
    );
}

#[tokio::test]
async fn checkout_fills_an_empty_folder_and_refuses_a_full_one() {
    let dir = tempfile::tempdir().unwrap();
    let zone = write_zone(
        dir.path(),
        "p",
        "1",
        &[("a.vdb", noise(100, 1)), ("b/c.vdb", noise(200, 2))],
    );
    let hub = zone_node(dir.path(), "n", &zone);
    mirror_and_publish(&hub).await;
    let empty = dir.path().join("empty");
    fs::create_dir(&empty).unwrap();
    hub.checkout(&empty).unwrap();
    assert_eq!(
        tree(&empty),
        vec![
            ("p/a.vdb".to_owned(), noise(100, 1)),
            ("p/b/c.vdb".to_owned(), noise(200, 2))
        ]
    );
    let err = hub.checkout(&empty).unwrap_err().to_string();
    assert!(
        err.contains("not empty") && err.contains("nothing was written"),
        "{err}"
    );
    assert_eq!(
        entries(dir.path())
            .iter()
            .filter(|e| e.contains("updhub-partial"))
            .count(),
        0
    );
}

#[tokio::test]
async fn a_partial_tree_left_by_a_killed_checkout_is_removed_by_the_next_one() {
    let dir = tempfile::tempdir().unwrap();
    let zone = write_zone(dir.path(), "p", "1", &[("a.vdb", noise(100, 1))]);
    let hub = zone_node(dir.path(), "n", &zone);
    mirror_and_publish(&hub).await;
    let out = dir.path().join("out");
    // What a checkout killed mid-way leaves: its staging folder, which nobody holds any more.
    let left = out.join(".old.updhub-partial-AbC123");
    fs::create_dir_all(left.join("p")).unwrap();
    fs::write(left.join("p/a.vdb"), b"half").unwrap();
    // A checkout still being written by someone else, whose staging folder is held.
    let live = updhub::zone::Staging::new(&out.join("busy")).unwrap();
    hub.checkout(&out.join("new")).unwrap();
    assert!(!left.exists(), "the leftover is removed");
    assert!(live.path().exists(), "a live checkout's folder is kept");
    drop(live);
    assert_eq!(entries(&out), vec!["new".to_owned()]);
}

//! Only regular files inside a zone folder are read: a link out of the zone, a link to a
//! device and a FIFO are refused with an error naming the path, and a missing zone folder is
//! reported as missing.
#![cfg(unix)]

mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use common::*;
use updhub::hub::Hub;

/// A hand zone with `ok.vdb` and `odd.vdb` (declared as 5 bytes "hello"), and a node on it.
fn zone_with_odd_file(dir: &Path) -> (PathBuf, PathBuf, std::sync::Arc<Hub>) {
    let zone = write_zone(
        dir,
        "p",
        "1",
        &[("ok.vdb", noise(100, 1)), ("odd.vdb", b"hello".to_vec())],
    );
    let odd = zone.join("p/1/data/odd.vdb");
    fs::remove_file(&odd).unwrap();
    let hub = zone_node(dir, "n", &zone);
    (zone, odd, hub)
}

async fn refused(hub: &Hub, odd: &Path, why: &str) {
    let err = hub.mirror(None, false).await.unwrap_err().to_string();
    assert!(
        err.contains(&odd.display().to_string()) && err.contains(why),
        "{err}"
    );
    assert!(
        err.contains("only regular files inside the zone folder"),
        "{err}"
    );
    assert!(blobs(hub).is_empty(), "nothing is stored");
    assert!(hub.db.mirrored().unwrap().is_none());
}

#[tokio::test]
async fn a_link_out_of_the_zone_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_zone, odd, hub) = zone_with_odd_file(dir.path());
    // The target has exactly the declared content: only where it lives is wrong.
    let outside = dir.path().join("secret.txt");
    fs::write(&outside, b"hello").unwrap();
    symlink(&outside, &odd).unwrap();
    refused(&hub, &odd, "outside the zone folder").await;
}

#[tokio::test]
async fn a_folder_linked_out_of_the_zone_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let zone = write_zone(
        dir.path(),
        "p",
        "1",
        &[
            ("ok.vdb", noise(100, 1)),
            ("sub/odd.vdb", b"hello".to_vec()),
        ],
    );
    // A link in the middle of the path, not at its end.
    let sub = zone.join("p/1/data/sub");
    let elsewhere = dir.path().join("elsewhere");
    fs::rename(&sub, &elsewhere).unwrap();
    symlink(&elsewhere, &sub).unwrap();
    let hub = zone_node(dir.path(), "n", &zone);
    refused(&hub, &sub.join("odd.vdb"), "outside the zone folder").await;
}

#[tokio::test]
async fn a_link_to_dev_zero_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_zone, odd, hub) = zone_with_odd_file(dir.path());
    symlink("/dev/zero", &odd).unwrap();
    refused(&hub, &odd, "/dev/zero").await;
}

#[tokio::test]
async fn a_fifo_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_zone, odd, hub) = zone_with_odd_file(dir.path());
    let made = std::process::Command::new("mkfifo")
        .arg(&odd)
        .status()
        .unwrap();
    assert!(made.success());
    refused(&hub, &odd, "a FIFO").await;
}

#[tokio::test]
async fn a_link_to_a_file_inside_the_zone_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let (zone, odd, hub) = zone_with_odd_file(dir.path());
    let inside = zone.join("p/1/hello.txt");
    fs::write(&inside, b"hello").unwrap();
    symlink(&inside, &odd).unwrap();
    let s = hub.mirror(None, false).await.unwrap();
    assert_eq!(s.files, 2);
}

#[tokio::test]
async fn a_missing_zone_folder_is_named_as_missing() {
    let dir = tempfile::tempdir().unwrap();
    let hub = node(dir.path(), "n", NodeOpts::default());
    let gone = dir.path().join("no-such-zone");
    let err = hub
        .mirror(Some(gone.to_str().unwrap()), false)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no-such-zone") && err.contains("does not exist") && err.contains("--from"),
        "{err}"
    );
    assert!(!err.contains("incomplete"), "{err}");
    // A folder without zone.json is not a zone either.
    let empty = dir.path().join("empty");
    fs::create_dir(&empty).unwrap();
    let err = hub
        .mirror(Some(empty.to_str().unwrap()), false)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("holds no zone.json"), "{err}");
}

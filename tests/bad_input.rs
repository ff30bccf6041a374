//! Bad input of every kind gets a clear error naming the problem, and nothing stored changes.

mod common;

use std::fs;
use std::process::Command;

use common::*;
use updhub::hub::Hub;

fn assert_untouched(hub: &Hub) {
    assert!(blobs(hub).is_empty(), "no blob stored");
    assert!(
        hub.db.mirrored().unwrap().is_none(),
        "no mirror state recorded"
    );
}

async fn mirror_err(
    dir: &std::path::Path,
    zone: &std::path::Path,
) -> (std::sync::Arc<Hub>, String) {
    let hub = node(
        dir,
        "n",
        NodeOpts {
            zone: Some(zone),
            ..Default::default()
        },
    );
    let err = hub.mirror(None, false).await.unwrap_err().to_string();
    (hub, err)
}

#[tokio::test]
async fn a_malformed_zone_index_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let zone = sample_zone_copy(dir.path());
    fs::write(
        zone.join("zone.json"),
        b"{\"format\": \"updhub-zone/1\", \"products\": [",
    )
    .unwrap();
    let (hub, err) = mirror_err(dir.path(), &zone).await;
    assert!(
        err.contains("zone.json") && err.contains("not valid JSON"),
        "{err}"
    );
    assert_untouched(&hub);
}

#[tokio::test]
async fn a_zone_path_escaping_its_folder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let zone = write_zone(dir.path(), "p", "1", &[("a", b"x".to_vec())]);
    let list = zone.join("p/1/files.json");
    let text = fs::read_to_string(&list)
        .unwrap()
        .replace("\"a\"", "\"../../etc/passwd\"");
    fs::write(&list, text).unwrap();
    let (hub, err) = mirror_err(dir.path(), &zone).await;
    assert!(err.contains("files.json") && err.contains("'..'"), "{err}");
    assert_untouched(&hub);
}

#[tokio::test]
async fn a_missing_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let zone = write_zone(
        dir.path(),
        "p",
        "1",
        &[("a/b.vdb", noise(5000, 1)), ("c.vdb", noise(10, 2))],
    );
    fs::remove_file(zone.join("p/1/data/a/b.vdb")).unwrap();
    let (hub, err) = mirror_err(dir.path(), &zone).await;
    assert!(
        err.contains("a/b.vdb") && err.contains("incomplete"),
        "{err}"
    );
    assert_untouched(&hub);
}

#[tokio::test]
async fn a_size_mismatch_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let zone = write_zone(dir.path(), "p", "1", &[("a.vdb", noise(1000, 1))]);
    fs::write(zone.join("p/1/data/a.vdb"), noise(999, 1)).unwrap();
    let (hub, err) = mirror_err(dir.path(), &zone).await;
    assert!(
        err.contains("a.vdb declares 1000 bytes but has 999"),
        "{err}"
    );
    assert_untouched(&hub);
}

#[tokio::test]
async fn a_hash_mismatch_is_named_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let zone = write_zone(dir.path(), "p", "1", &[("a.vdb", noise(100_000, 1))]);
    let mut bad = noise(100_000, 1);
    bad[50_000] ^= 1;
    fs::write(zone.join("p/1/data/a.vdb"), &bad).unwrap();
    let (hub, err) = mirror_err(dir.path(), &zone).await;
    assert!(
        err.contains("a.vdb declares blake3") && err.contains("corrupt"),
        "{err}"
    );
    assert_untouched(&hub);
    assert_eq!(
        fs::read_dir(hub.data.join("store/tmp")).unwrap().count(),
        0,
        "no temp file left"
    );
}

#[tokio::test]
async fn a_failed_mirror_keeps_the_published_version() {
    let dir = tempfile::tempdir().unwrap();
    let zone = sample_zone_copy(dir.path());
    let hub = zone_node(dir.path(), "n", &zone);
    let v1 = mirror_and_publish(&hub).await;
    let before = blobs(&hub);
    set_zone_revision(&zone, "2026112402");
    fs::remove_dir_all(zone.join("40-drwcsd/2026112402/data")).unwrap();
    assert!(hub.mirror(None, false).await.is_err());
    assert_eq!(blobs(&hub), before);
    assert_eq!(hub.db.mirrored().unwrap().unwrap().root, v1.root);
    assert_eq!(
        hub.publish(None).unwrap().0.number,
        1,
        "publishing again keeps version 1"
    );
}

#[test]
fn bad_config_is_refused_by_the_binary_with_the_key_and_fix() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("n");
    let bin = env!("CARGO_BIN_EXE_updhub");
    let ok = Command::new(bin)
        .args(["--data", data.to_str().unwrap(), "init", "--id", "n1"])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let cfg = data.join("updhub.toml");
    let text = fs::read_to_string(&cfg).unwrap();
    for (from, to, expect) in [
        (
            "listen = \"127.0.0.1:8443\"",
            "listen = \"eight-four-four-three\"",
            "listen",
        ),
        ("parallel = 4", "parallel = 0", "upstream.parallel"),
        ("[publish]", "[publish]\ncolour = \"blue\"", "colour"),
    ] {
        fs::write(&cfg, text.replace(from, to)).unwrap();
        let out = Command::new(bin)
            .args(["--data", data.to_str().unwrap(), "status"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(err.contains("updhub.toml") && err.contains(expect), "{err}");
    }
    // init refuses to overwrite a node.
    let again = Command::new(bin)
        .args(["--data", data.to_str().unwrap(), "init"])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds a node"));
}

#[test]
fn an_unreadable_key_is_named_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let hub = node(dir.path(), "n", NodeOpts::default());
    let data = hub.data.clone();
    drop(hub);
    fs::write(
        data.join("keys/cluster.key"),
        b"-----BEGIN PRIVATE KEY-----\nnot a key\n",
    )
    .unwrap();
    let err = Hub::open(&data).err().unwrap().to_string();
    assert!(
        err.contains("cluster.key") && err.contains("keys export"),
        "{err}"
    );
    fs::remove_file(data.join("keys/node.crt")).unwrap();
    let err = Hub::open(&data).err().unwrap().to_string();
    assert!(
        err.contains("cluster.key") || err.contains("node.crt"),
        "{err}"
    );
    // keys from a folder with a bad file are refused before anything is written.
    let other = dir.path().join("other");
    let err = Hub::init(
        &other,
        updhub::hub::InitOptions {
            keys_from: Some(data.join("keys")),
            ..Default::default()
        },
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("cluster.key"), "{err}");
    assert!(!other.join("updhub.toml").exists());
}

#[tokio::test]
async fn an_unreachable_parent_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let hub = node(dir.path(), "n", NodeOpts::default());
    // A port that was free a moment ago.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = updhub::child::sync_once(&hub, &format!("https://127.0.0.1:{port}/"))
        .await
        .unwrap_err();
    assert!(err.retryable());
    assert!(
        err.to_string().contains("check the parent is running"),
        "{err}"
    );
    let err = updhub::child::sync_once(&hub, "http://127.0.0.1:1/")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("https://"), "{err}");
}

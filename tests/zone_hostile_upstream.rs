//! A hostile HTTPS upstream cannot make `mirror` read more than a file's declared size (plus
//! one byte), nor more than a sane cap for an index file.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use updhub::id::BlobId;
use updhub::zone::MAX_INDEX_BYTES;

/// What the hostile server sends for the data file or the file list.
#[derive(Clone, Copy)]
enum Hostile {
    /// `p/1/data/a.vdb` is endless (declared 1 KiB).
    Data,
    /// `p/1/files.json` is endless.
    Index,
    /// `p/1/data/a.vdb` sends half its bytes, then nothing, forever.
    Stall,
    /// As [`Hostile::Stall`], and `p/1/data/b.vdb` has other content than declared.
    StallAndFail,
}

/// How much garbage the server offers at most: far more than any bound under test.
const OFFERED: u64 = 512 << 20;

/// Serve a zone with one product `p` revision `1` holding `a.vdb` (declared 1 KiB) over the
/// cluster's mutual TLS, answering one document with endless garbage. Returns the zone URL
/// and the count of garbage bytes written.
async fn hostile_zone(hub: &updhub::hub::Hub, what: Hostile) -> (String, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}/v1/zone", listener.local_addr().unwrap());
    let acceptor = tokio_rustls::TlsAcceptor::from(hub.keys.server_tls.clone());
    let sent = Arc::new(AtomicU64::new(0));
    let counter = sent.clone();
    let data = vec![7u8; 1024];
    let mut list = vec![serde_json::json!(
        {"path": "a.vdb", "size": 1024, "blake3": BlobId::of(&data).to_hex()}
    )];
    if let Hostile::StallAndFail = what {
        // b.vdb is served with other content than declared: it fails while a.vdb stalls.
        list.push(serde_json::json!(
            {"path": "b.vdb", "size": 1000, "blake3": BlobId::of(&[8u8; 1000]).to_hex()}
        ));
    }
    let files = serde_json::to_vec(&serde_json::json!({
        "format": "updhub-files/1", "product": "p", "revision": "1", "files": list,
    }))
    .unwrap();
    let zone = serde_json::to_vec(&serde_json::json!({
        "format": "updhub-zone/1", "name": "hostile",
        "products": [{"name": "p", "revision": "1"}],
    }))
    .unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, sent) = (acceptor.clone(), counter.clone());
            let (zone, files) = (zone.clone(), files.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Some(path) = read_request_path(&mut tls).await else {
                    return;
                };
                let endless = match what {
                    Hostile::Data => path.ends_with("/data/a.vdb"),
                    Hostile::Index => path.ends_with("/files.json"),
                    Hostile::Stall | Hostile::StallAndFail => {
                        if path.ends_with("/data/a.vdb") {
                            let _ = tls
                                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1024\r\n\r\n")
                                .await;
                            let _ = tls.write_all(&[7u8; 512]).await;
                            let _ = tls.flush().await;
                            tokio::time::sleep(Duration::from_secs(3600)).await;
                            return;
                        }
                        false
                    }
                };
                if endless {
                    let _ = tls
                        .write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
                        .await;
                    let chunk = vec![0x5au8; 64 * 1024];
                    while sent.load(Ordering::SeqCst) < OFFERED {
                        if tls.write_all(&chunk).await.is_err() {
                            return;
                        }
                        sent.fetch_add(chunk.len() as u64, Ordering::SeqCst);
                    }
                    return;
                }
                let body = if path.ends_with("/zone.json") {
                    zone
                } else if path.ends_with("/files.json") {
                    files
                } else if path.ends_with("/b.vdb") {
                    vec![9u8; 1000]
                } else {
                    vec![7u8; 1024]
                };
                write_answer(&mut tls, "200 OK", &body).await;
            });
        }
    });
    (url, sent)
}

/// Garbage bytes the server wrote once the client has stopped reading (socket buffers let a
/// few MiB more through after the client's last read).
async fn settled(sent: &AtomicU64) -> u64 {
    tokio::time::sleep(Duration::from_millis(300)).await;
    sent.load(Ordering::SeqCst)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_file_from_an_https_upstream_is_cut_after_its_declared_size() {
    let dir = tempfile::tempdir().unwrap();
    let hub = node(dir.path(), "n", NodeOpts::default());
    let (url, sent) = hostile_zone(&hub, Hostile::Data).await;
    let err = hub.mirror(Some(&url), false).await.unwrap_err().to_string();
    assert!(
        err.contains("a.vdb") && err.contains("declares 1024 bytes but has more"),
        "{err}"
    );
    let sent = settled(&sent).await;
    assert!(
        sent < 32 << 20,
        "mirror read {sent} bytes for a file declared as 1 KiB"
    );
    assert!(blobs(&hub).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_file_list_from_an_https_upstream_is_cut_at_the_index_cap() {
    let dir = tempfile::tempdir().unwrap();
    let hub = node(dir.path(), "n", NodeOpts::default());
    let (url, sent) = hostile_zone(&hub, Hostile::Index).await;
    let err = hub.mirror(Some(&url), false).await.unwrap_err().to_string();
    assert!(
        err.contains("files.json") && err.contains("larger than"),
        "{err}"
    );
    let sent = settled(&sent).await;
    assert!(
        sent < MAX_INDEX_BYTES + (32 << 20),
        "mirror read {sent} bytes of a file list"
    );
    assert!(hub.db.mirrored().unwrap().is_none());
}

fn tmp_files(store: &Path) -> usize {
    std::fs::read_dir(store.join("tmp")).unwrap().count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_killed_mid_file_leaves_nothing_in_store_tmp_after_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let hub = node(dir.path(), "n", NodeOpts::default());
    let (url, _) = hostile_zone(&hub, Hostile::Stall).await;
    let store = hub.data.join("store");
    let mut mirror = std::process::Command::new(env!("CARGO_BIN_EXE_updhub"))
        .arg("--data")
        .arg(&hub.data)
        .args(["mirror", "--from", &url])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // The upstream stalls mid-file: the mirror holds a temp file open until it is killed.
    wait_for("the mirror's temp file", || tmp_files(&store) > 0).await;
    mirror.kill().unwrap(); // SIGKILL: no destructor runs
    mirror.wait().unwrap();
    assert!(
        tmp_files(&store) > 0,
        "the killed mirror left its temp file"
    );
    updhub::store::Store::open(&store).unwrap();
    assert_eq!(tmp_files(&store), 0, "the next open removed the leftover");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_mirror_stops_its_other_transfers_and_leaves_no_temp_file() {
    let dir = tempfile::tempdir().unwrap();
    let hub = node(dir.path(), "n", NodeOpts::default());
    let (url, _) = hostile_zone(&hub, Hostile::StallAndFail).await;
    // b.vdb fails while a.vdb is stalled mid-transfer: the run ends with b's error, and the
    // stalled transfer is stopped rather than left writing its temp file.
    let err = hub.mirror(Some(&url), false).await.unwrap_err().to_string();
    assert!(err.contains("b.vdb") && err.contains("blake3"), "{err}");
    assert_eq!(tmp_files(&hub.data.join("store")), 0);
    assert!(blobs(&hub).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_https_upstream_ends_the_mirror_with_an_error_instead_of_hanging_it() {
    let dir = tempfile::tempdir().unwrap();
    let hub = node(dir.path(), "n", NodeOpts::default());
    let (url, _) = hostile_zone(&hub, Hostile::Stall).await;
    // The upstream sends half of a.vdb, then nothing for an hour.
    let zone =
        updhub::zone::Zone::open_with_stall(&url, &hub.keys, Duration::from_secs(1)).unwrap();
    let policy = hub.policy().unwrap();
    let full = updhub::mirror::Run::Full;
    let err = updhub::mirror::mirror(&hub.store, &hub.db, &zone, 4, false, &policy, full)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("a.vdb") && err.contains("stopped sending"),
        "{err}"
    );
    assert_eq!(tmp_files(&hub.data.join("store")), 0);
    assert!(blobs(&hub).is_empty());
}

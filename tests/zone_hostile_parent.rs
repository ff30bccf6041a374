//! A hostile parent cannot make a child take more than zstd's bound of a blob's declared
//! size, nor keep the garbage in `store/partial`, nor more than a document's bound of the
//! published version.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use updhub::id::{BlobId, Root};
use updhub::repo::{Entry, Manifest, Published};

/// The blob's declared size.
const SIZE: u64 = 4 << 20;
/// Garbage offered at most: far more than the bound under test.
const OFFERED: u64 = 256 << 20;

/// A zstd skippable frame: valid zstd that decompresses to nothing.
fn skippable_frame(len: usize) -> Vec<u8> {
    let mut f = 0x184D_2A50u32.to_le_bytes().to_vec();
    f.extend_from_slice(&(len as u32).to_le_bytes());
    f.resize(f.len() + len, 0);
    f
}

/// Serve a correctly signed version with the cluster keys of `cluster`, answering requests
/// whose path starts with `endless` with endless bytes (skippable zstd frames). Returns the
/// URL and the count of garbage bytes written.
async fn hostile_parent(
    cluster: &updhub::hub::Hub,
    endless: &'static str,
) -> (String, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}/", listener.local_addr().unwrap());
    let acceptor = tokio_rustls::TlsAcceptor::from(cluster.keys.server_tls.clone());
    let manifest = Manifest::new(vec![Entry {
        product: "p".into(),
        revision: "1".into(),
        path: "big.vdb".into(),
        size: SIZE,
        blake3: BlobId::of(b"the real content"),
    }])
    .unwrap();
    let root: Root = manifest.root();
    let published = serde_json::to_vec(&Published::sign(
        root,
        1,
        chrono::Utc::now() + chrono::Duration::hours(1),
        &cluster.keys.signing,
    ))
    .unwrap();
    let manifest = manifest.canonical_bytes();
    let sent = Arc::new(AtomicU64::new(0));
    let counter = sent.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, sent) = (acceptor.clone(), counter.clone());
            let (published, manifest) = (published.clone(), manifest.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Some(path) = read_request_path(&mut tls).await else {
                    return;
                };
                if path.starts_with(endless) {
                    let _ = tls
                        .write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
                        .await;
                    let frame = skippable_frame(64 * 1024 - 8);
                    while sent.load(Ordering::SeqCst) < OFFERED {
                        if tls.write_all(&frame).await.is_err() {
                            return;
                        }
                        sent.fetch_add(frame.len() as u64, Ordering::SeqCst);
                    }
                    return;
                }
                let (status, body) = match path.as_str() {
                    "/v1/published" => ("200 OK", published),
                    p if p.starts_with("/v1/versions/") => ("200 OK", manifest),
                    _ => ("404 Not Found", Vec::new()),
                };
                write_answer(&mut tls, status, &body).await;
            });
        }
    });
    (url, sent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_sending_endless_garbage_for_a_blob_is_cut_at_the_zstd_bound() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = node(dir.path(), "parent", NodeOpts::default());
    let child = child_of(dir.path(), "child", &cluster, None);
    let (url, sent) = hostile_parent(&cluster, "/v1/blobs/").await;
    let err = updhub::child::sync_once(&child, &url)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("more than") && err.contains(&format!("declared {SIZE} bytes")),
        "{err}"
    );
    // Socket buffers let a few MiB more through after the child's last read.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent = sent.load(Ordering::SeqCst);
    assert!(
        sent < SIZE + (24 << 20),
        "the child took {sent} bytes for a blob of {SIZE}"
    );
    let partial = child.data.join("store/partial");
    let kept: u64 = std::fs::read_dir(&partial)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert_eq!(kept, 0, "no garbage is kept in {}", partial.display());
    assert!(child.db.published().unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_sending_an_endless_published_document_is_cut_at_its_bound() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = node(dir.path(), "parent", NodeOpts::default());
    let child = child_of(dir.path(), "child", &cluster, None);
    let (url, sent) = hostile_parent(&cluster, "/v1/published").await;
    let err = updhub::child::sync_once(&child, &url)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("longer than") && err.contains("v1/published"),
        "{err}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent = sent.load(Ordering::SeqCst);
    assert!(
        sent < updhub::peer::MAX_DOCUMENT + (24 << 20),
        "the child took {sent} bytes of a published document"
    );
    assert!(child.db.published().unwrap().is_none());
}

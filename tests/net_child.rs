//! A child against a parent it cannot use yet: of another cluster (the error says so and
//! says what to do), or busy (the child waits as told and tries again on its own).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use updhub::child::{sync_once, SyncError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_of_another_cluster_is_told_so_and_how_to_fix_it() {
    let dir = tempfile::tempdir().unwrap();
    let parent = zone_node(dir.path(), "parent", &sample_zone());
    mirror_and_publish(&parent).await;
    let srv = start(parent.clone()).await;
    // Made with `init` alone, not `init --keys-from`: its own cluster keys.
    let stranger = node(dir.path(), "stranger", NodeOpts::default());
    let err = sync_once(&stranger, &srv.url).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, SyncError::ForeignCluster { .. }),
        "named as a cluster mismatch: {msg}"
    );
    assert!(!err.retryable(), "retrying cannot help: {msg}");
    assert!(
        msg.contains("not issued by this node's cluster CA"),
        "names the cause: {msg}"
    );
    assert!(
        msg.contains("updhub keys export") && msg.contains("updhub init --keys-from"),
        "names the fix: {msg}"
    );
    assert!(
        !msg.contains("check the parent is running"),
        "no misleading advice: {msg}"
    );
    srv.stop().await;
}

/// A TLS front for `upstream` (the parent's listener) that answers the first `busy`
/// connections itself with `status` and a Retry-After, as a parent with no free slot does,
/// and passes every later connection through to the parent untouched.
async fn busy_front(
    parent: &updhub::hub::Hub,
    upstream: String,
    busy: usize,
    status: &'static str,
) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}/", listener.local_addr().unwrap());
    let acceptor = tokio_rustls::TlsAcceptor::from(parent.keys.server_tls.clone());
    let answered = Arc::new(AtomicUsize::new(0));
    let count = answered.clone();
    let upstream = upstream
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .to_owned();
    tokio::spawn(async move {
        loop {
            let (mut tcp, _) = listener.accept().await.unwrap();
            if count.load(Ordering::SeqCst) < busy {
                count.fetch_add(1, Ordering::SeqCst);
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let mut tls = acceptor.accept(tcp).await.unwrap();
                    let mut buf = vec![0u8; 4096];
                    let _ = tls.read(&mut buf).await;
                    let body = r#"{"error":"busy"}"#;
                    let resp = format!(
                        "HTTP/1.1 {status}\r\nretry-after: 1\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    tls.write_all(resp.as_bytes()).await.unwrap();
                    let _ = tls.shutdown().await;
                });
            } else {
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let mut up = tokio::net::TcpStream::connect(upstream).await.unwrap();
                    let _ = tokio::io::copy_bidirectional(&mut tcp, &mut up).await;
                });
            }
        }
    });
    (url, answered)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_waits_for_a_busy_parent_and_then_syncs() {
    let dir = tempfile::tempdir().unwrap();
    let parent = zone_node(dir.path(), "parent", &sample_zone());
    let published = mirror_and_publish(&parent).await;
    let srv = start(parent.clone()).await;
    for (status, id) in [
        ("503 Service Unavailable", "child-503"),
        ("429 Too Many Requests", "child-429"),
    ] {
        let (front, answered) = busy_front(&parent, srv.url.clone(), 3, status).await;
        let child = child_of(dir.path(), id, &parent, None);
        let started = std::time::Instant::now();
        let r = sync_once(&child, &front)
            .await
            .unwrap_or_else(|e| panic!("{status}: {e}"));
        assert_eq!(r.root, published.root);
        assert_eq!(
            answered.load(Ordering::SeqCst),
            3,
            "{status}: answered busy"
        );
        // Three Retry-After: 1 with jitter of at least half: the child did wait.
        assert!(
            started.elapsed() >= std::time::Duration::from_millis(1500),
            "{status}: the child honoured Retry-After"
        );
        assert_eq!(
            tree(&checkout(&child, dir.path(), id)),
            tree(&checkout(&parent, dir.path(), &format!("parent-{id}")))
        );
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirroring_the_zone_of_another_cluster_names_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    let parent = zone_node(dir.path(), "parent", &sample_zone());
    mirror_and_publish(&parent).await;
    let srv = start(parent.clone()).await;
    let stranger = node(dir.path(), "stranger", NodeOpts::default());
    let err = stranger
        .mirror(Some(&format!("{}v1/zone", srv.url)), false)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("not issued by this node's cluster CA") && err.contains("--keys-from"),
        "names the cause and the fix: {err}"
    );
    srv.stop().await;
}

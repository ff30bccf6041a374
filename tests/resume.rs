//! A transfer cut mid-blob resumes with Range on the next sync.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use updhub::child::{sync_once, SyncError};

/// A TCP proxy on 127.0.0.1:0 that forwards to `target` and cuts every connection once
/// `budget` bytes in total have flowed from the server to the client.
async fn cutting_proxy(target: std::net::SocketAddr, budget: u64) -> (String, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}/", listener.local_addr().unwrap());
    let sent = Arc::new(AtomicU64::new(0));
    let counter = sent.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let sent = counter.clone();
            tokio::spawn(async move {
                let mut server = TcpStream::connect(target).await.unwrap();
                let (mut cr, mut cw) = client.split();
                let (mut sr, mut sw) = server.split();
                let up = tokio::io::copy(&mut cr, &mut sw);
                let down = async {
                    let mut buf = vec![0u8; 16 * 1024];
                    loop {
                        let n = sr.read(&mut buf).await?;
                        if n == 0 {
                            return Ok::<_, std::io::Error>(());
                        }
                        let before = sent.fetch_add(n as u64, Ordering::SeqCst);
                        if before + n as u64 > budget {
                            let allowed = budget.saturating_sub(before) as usize;
                            cw.write_all(&buf[..allowed]).await?;
                            return Ok(()); // cut: drop both sides mid-transfer
                        }
                        cw.write_all(&buf[..n]).await?;
                    }
                };
                tokio::select! { _ = up => {}, _ = down => {} }
            });
        }
    });
    (url, sent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_dropped_mid_blob_resumes_and_completes() {
    let dir = tempfile::tempdir().unwrap();
    let big = noise(6 * 1024 * 1024, 7);
    let zone = write_zone(
        dir.path(),
        "10-drwbases",
        "1",
        &[
            ("bases/big.vdb", big.clone()),
            ("small.txt", b"hello".to_vec()),
        ],
    );
    let parent = zone_node(dir.path(), "parent", &zone);
    let v1 = mirror_and_publish(&parent).await;
    let srv = start(parent.clone()).await;
    let big_id = updhub::id::BlobId::of(&big);
    let stored = parent.store.stored_len(&big_id).unwrap();

    let addr: std::net::SocketAddr = srv
        .url
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let (proxy, _) = cutting_proxy(addr, 2 * 1024 * 1024).await;
    let child = child_of(dir.path(), "child", &parent, None);
    let err = sync_once(&child, &proxy).await.unwrap_err();
    assert!(matches!(err, SyncError::Network { .. }), "{err}");
    assert!(
        child.db.published().unwrap().is_none(),
        "no half-synced version becomes current"
    );
    assert!(!child.store.contains(&big_id));
    let partial = child.data.join("store/partial").join(big_id.to_hex());
    let held = std::fs::metadata(&partial).unwrap().len();
    assert!(
        held > 0 && held < stored,
        "a partial blob is kept: {held} of {stored}"
    );

    let sent_before = srv.stats.blob_bytes.load(Ordering::Relaxed);
    let r = sync_once(&child, &srv.url).await.unwrap();
    assert_eq!(r.root, v1.root);
    assert!(r.resumed >= 1, "{r}");
    assert!(srv.stats.range_requests.load(Ordering::Relaxed) >= 1);
    // Only the missing tail of the big blob crossed the wire the second time.
    let sent_after = srv.stats.blob_bytes.load(Ordering::Relaxed) - sent_before;
    assert!(
        sent_after <= stored - held + 1024,
        "resent {sent_after}, missing {}",
        stored - held
    );
    assert_eq!(child.store.read_bytes(&big_id).unwrap(), big);
    assert!(!partial.exists());
    srv.stop().await;
}

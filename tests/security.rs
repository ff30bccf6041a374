//! Trust: only the cluster CA gets through; signatures, expiry and rollback are enforced;
//! corrupt content never becomes current.

mod common;

use std::fs;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::Utc;
use common::*;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use updhub::child::{sync_once, SyncError};
use updhub::repo::{Published, RepoError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_another_ca_gets_no_byte() {
    let dir = tempfile::tempdir().unwrap();
    let zone = sample_zone();
    let parent = zone_node(dir.path(), "parent", &zone);
    mirror_and_publish(&parent).await;
    let srv = start(parent.clone()).await;

    // A stranger: its own cluster, its own CA.
    let stranger = node(dir.path(), "stranger", NodeOpts::default());
    let err = sync_once(&stranger, &srv.url).await.unwrap_err();
    assert!(matches!(err, SyncError::ForeignCluster { .. }), "{err}");
    assert!(blobs(&stranger).is_empty());
    assert!(stranger.db.published().unwrap().is_none());

    // Even a stranger that trusts our CA, presenting its own certificate, is refused at the
    // handshake; so is a client with no certificate at all.
    let ca = CertificateDer::from_pem_file(parent.data.join("keys/ca.crt")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let foreign_cert = CertificateDer::from_pem_file(stranger.data.join("keys/node.crt")).unwrap();
    let foreign_key = PrivateKeyDer::from_pem_file(stranger.data.join("keys/node.key")).unwrap();
    let with_cert = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots.clone())
        .with_client_auth_cert(vec![foreign_cert], foreign_key)
        .unwrap();
    let without = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let published = parent.db.published().unwrap().unwrap();
    let blob = parent.manifest(&published.root).unwrap().entries[0].blake3;
    for tls in [with_cert, without] {
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .build()
            .unwrap();
        for path in ["v1/published".to_string(), format!("v1/blobs/{blob}")] {
            let r = client.get(format!("{}{path}", srv.url)).send().await;
            assert!(
                r.is_err(),
                "{path} answered a stranger: {:?}",
                r.map(|r| r.status())
            );
        }
    }
    assert_eq!(srv.stats.blob_bytes.load(Ordering::Relaxed), 0);
    assert_eq!(srv.stats.blob_requests.load(Ordering::Relaxed), 0);
    // The server counts a refusal just after sending its alert: wait for the count.
    wait_for("five refused handshakes", || {
        srv.stats.rejected_handshakes.load(Ordering::Relaxed) >= 5
    })
    .await;

    // A member of the cluster (its keys copied) does get through; a child enrolled by
    // link does too (tests/links.rs).
    let member = member_of(dir.path(), "member", &parent, NodeOpts::default());
    sync_once(&member, &srv.url).await.unwrap();
    assert!(srv.stats.blob_bytes.load(Ordering::Relaxed) > 0);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_blob_is_detected_and_the_child_stays_on_its_version() {
    let dir = tempfile::tempdir().unwrap();
    let Pair {
        zone,
        parent,
        v1,
        srv,
        child,
        ..
    } = pair(dir.path()).await;

    set_zone_revision(&zone, "2026112402");
    let old: std::collections::BTreeSet<_> = blobs(&parent).into_iter().collect();
    let v2 = mirror_and_publish(&parent).await;
    let new_blob = parent
        .manifest(&v2.root)
        .unwrap()
        .blobs()
        .into_iter()
        .find(|(id, _)| !old.contains(id))
        .unwrap()
        .0;
    // Rot on the parent's disk: the stored frame now holds other content of the same size.
    let mut content = parent.store.read_bytes(&new_blob).unwrap();
    content[0] ^= 0xff;
    fs::write(
        parent.store.blob_path(&new_blob),
        zstd::encode_all(&content[..], 3).unwrap(),
    )
    .unwrap();

    let err = sync_once(&child, &srv.url).await.unwrap_err();
    assert!(err.to_string().contains(&new_blob.to_hex()), "{err}");
    // The child refuses the bytes (and reports them, so the parent quarantines the blob),
    // unless the parent's background scrub found the rot first: then it serves no byte of it.
    assert!(
        matches!(
            err,
            SyncError::Store(updhub::store::StoreError::HashMismatch { .. })
        ) || err.to_string().contains("is not held here"),
        "{err}"
    );
    assert!(!parent.store.contains(&new_blob), "quarantined either way");
    let cur = child.db.published().unwrap().unwrap();
    assert_eq!(
        (cur.number, cur.root),
        (1, v1.root),
        "the child stays on version 1"
    );
    assert!(!child.store.contains(&new_blob));
    assert!(child.status().unwrap().sync.unwrap().last_error.is_some());
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_older_version_and_an_expired_one_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let Pair {
        zone,
        parent,
        v1,
        srv,
        child,
        ..
    } = pair(dir.path()).await;
    set_zone_revision(&zone, "2026112402");
    let v2 = mirror_and_publish(&parent).await;
    sync_once(&child, &srv.url).await.unwrap();

    // The parent (or someone in its place) serves the old, validly signed version 1 again.
    parent.db.set_published(&v1, chrono::Utc::now()).unwrap();
    let err = sync_once(&child, &srv.url).await.unwrap_err();
    assert!(
        matches!(
            err,
            SyncError::Repo(RepoError::Rollback {
                number: 1,
                accepted: 2,
                ..
            })
        ),
        "{err}"
    );
    assert_eq!(child.db.published().unwrap().unwrap().root, v2.root);

    // A validly signed version 3 that has already expired.
    let expired = Published::sign(
        v1.root,
        3,
        Utc::now() - chrono::Duration::hours(1),
        &parent.keys.signing,
    );
    parent
        .db
        .set_published(&expired, chrono::Utc::now())
        .unwrap();
    let err = sync_once(&child, &srv.url).await.unwrap_err();
    assert!(
        matches!(err, SyncError::Repo(RepoError::Expired { number: 3, .. })),
        "{err}"
    );
    assert_eq!(child.db.published().unwrap().unwrap().number, 2);

    // A version signed by another key.
    let other = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let forged = Published::sign(v1.root, 9, Utc::now() + chrono::Duration::hours(1), &other);
    parent
        .db
        .set_published(&forged, chrono::Utc::now())
        .unwrap();
    let err = sync_once(&child, &srv.url).await.unwrap_err();
    assert!(
        matches!(err, SyncError::Repo(RepoError::BadSignature { .. })),
        "{err}"
    );
    assert_eq!(child.db.published().unwrap().unwrap().number, 2);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_parent_resigns_before_expiry_and_children_follow() {
    let dir = tempfile::tempdir().unwrap();
    let zone = sample_zone();
    let data = dir.path().join("parent");
    let parent = zone_node(dir.path(), "parent", &zone);
    drop(parent);
    let mut cfg = updhub::config::Config::load(&data).unwrap();
    cfg.publish.expires_in = Duration::from_secs(2);
    let parent = std::sync::Arc::new(updhub::Hub::open_with(&data, cfg).unwrap());
    let v1 = mirror_and_publish(&parent).await;
    let srv = start(parent.clone()).await;
    let child = child_of(dir.path(), "child", &parent, Some(srv.url.clone()));
    let follower = start(child.clone()).await;
    // Wait past the first expiry: the child must still hold a valid, re-signed version 1.
    tokio::time::sleep(Duration::from_secs(3)).await;
    wait_for("the child to hold a re-signed version", || {
        child
            .db
            .published()
            .unwrap()
            .is_some_and(|p| p.number == 1 && p.expires > v1.expires && p.expires > Utc::now())
    })
    .await;
    follower.stop().await;
    srv.stop().await;
    // With the parent gone, the child's version nears expiry and it says so.
    let p = child.db.published().unwrap().unwrap();
    assert!(child.expiry_warning(&p).is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_refuses_a_parent_that_syncs_through_it() {
    let dir = tempfile::tempdir().unwrap();
    let zone = sample_zone();
    let top = zone_node(dir.path(), "top", &zone);
    mirror_and_publish(&top).await;
    let top_srv = start(top.clone()).await;
    let mid = child_of(dir.path(), "mid", &top, Some(top_srv.url.clone()));
    let mid_srv = start(mid.clone()).await;
    wait_for("mid to follow top", || {
        mid.db.published().unwrap().is_some()
    })
    .await;
    let low = child_of(dir.path(), "low", &mid, Some(mid_srv.url.clone()));
    let low_srv = start(low.clone()).await;
    wait_for("low to follow mid", || {
        low.db.published().unwrap().is_some()
    })
    .await;
    // The top asks to enroll with mid, its own child: mid knows the top as its parent and
    // refuses (issue 18 item 4).
    let req = updhub::link::offline_request(&top).unwrap();
    let err = updhub::link::offline_accept(&mid, &req, "child")
        .unwrap_err()
        .to_string();
    assert!(err.contains("id top is this node's parent"), "{err}");
    // Low knows only mid: the top enrolls there and tries to take low as its parent, and
    // low's chain holds the top.
    let reply = updhub::link::offline_accept(&low, &req, "child").unwrap();
    updhub::link::offline_import(&top, &reply).unwrap();
    let top = std::sync::Arc::new(updhub::Hub::open(&top.data).unwrap());
    let err = sync_once(&top, &low_srv.url).await.unwrap_err();
    assert!(matches!(err, SyncError::Loop { .. }), "{err}");
    low_srv.stop().await;
    mid_srv.stop().await;
    top_srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_over_its_request_rate_gets_429() {
    let dir = tempfile::tempdir().unwrap();
    let zone = sample_zone();
    let data = dir.path().join("parent");
    drop(zone_node(dir.path(), "parent", &zone));
    let mut cfg = updhub::config::Config::load(&data).unwrap();
    cfg.server.requests_per_second = 5;
    let parent = std::sync::Arc::new(updhub::Hub::open_with(&data, cfg).unwrap());
    mirror_and_publish(&parent).await;
    let srv = start(parent.clone()).await;
    let client = updhub::peer::client(&parent.keys).unwrap();
    let mut statuses = Vec::new();
    for _ in 0..20 {
        statuses.push(
            client
                .get(format!("{}v1/published", srv.url))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16(),
        );
    }
    assert!(
        statuses.contains(&200) && statuses.contains(&429),
        "{statuses:?}"
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_whose_must_match_settings_differ_shows_as_drifted() {
    let dir = tempfile::tempdir().unwrap();
    let zone = sample_zone();
    let parent = zone_node(dir.path(), "parent", &zone);
    mirror_and_publish(&parent).await;
    let srv = start(parent.clone()).await;
    let good = child_of(dir.path(), "good", &parent, None);
    let drifted = child_of(dir.path(), "drifted", &parent, None);
    let mut cfg = updhub::config::Config::load(&drifted.data).unwrap();
    cfg.publish.expires_in = Duration::from_secs(3600);
    let drifted = std::sync::Arc::new(updhub::Hub::open_with(&drifted.data, cfg).unwrap());
    sync_once(&good, &srv.url).await.unwrap();
    sync_once(&drifted, &srv.url).await.unwrap();
    let children = parent.status().unwrap().children;
    let by_id = |id: &str| children.iter().find(|c| c.report.child_id == id).unwrap();
    assert!(by_id("good").config_matches);
    assert!(!by_id("drifted").config_matches);
    assert!(
        by_id("drifted").in_sync,
        "drift is about settings, not the version"
    );
    srv.stop().await;
}

#[tokio::test]
async fn a_running_parent_keeps_the_validity_chosen_at_publish() {
    let dir = tempfile::tempdir().unwrap();
    let zone = sample_zone();
    let parent = zone_node(dir.path(), "parent", &zone);
    parent.mirror(None, false).await.unwrap();
    let (p, _) = parent.publish(Some(Duration::from_secs(3600))).unwrap();
    // An hour is much shorter than the configured 7 days, but more than half of it is left:
    // nothing to re-sign, and the expiry the admin chose stays.
    assert!(parent.resign_if_due().unwrap().is_none());
    assert_eq!(parent.db.published().unwrap().unwrap().expires, p.expires);
}

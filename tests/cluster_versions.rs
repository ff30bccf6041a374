//! The members of a cluster share its versions and its published pointer, not their disks:
//! a member whose store lacks the cluster's published version fetches it from a member that
//! serves it, verified as a child verifies, and serves it only once it holds all of it.
//! Members share a PostgreSQL database (`UPDHUB_TEST_PG_URL`, which `.ci/run` starts);
//! without one each test says so and returns.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::*;
use updhub::repo::{Manifest, Published};
use updhub::Hub;

/// Two members on one database with shared keys: `a` mirrors `zone`, `b` has an empty store.
fn two_members(dir: &Path, url: &str, zone: &Path) -> (Arc<Hub>, Arc<Hub>) {
    let a = node(
        dir,
        "a",
        NodeOpts {
            zone: Some(zone),
            database: Some(url.to_owned()),
            ..Default::default()
        },
    );
    let keys = dir.join("cluster-keys");
    updhub::keys::copy_shared(&a.data.join("keys"), &keys).unwrap();
    let b = node(
        dir,
        "b",
        NodeOpts {
            keys_from: Some(&keys),
            zone: Some(zone),
            database: Some(url.to_owned()),
            ..Default::default()
        },
    );
    (a, b)
}

/// What `hub`'s interserver port answers at /v1/published.
async fn served(hub: &Hub, url: &str) -> Option<Published> {
    let client = updhub::peer::client(&hub.keys).unwrap();
    let resp = client
        .get(format!("{url}v1/published"))
        .send()
        .await
        .unwrap();
    if resp.status() == 404 {
        return None;
    }
    assert!(resp.status().is_success(), "{}", resp.status());
    Some(Published::parse(&resp.bytes().await.unwrap(), url).unwrap())
}

fn held(hub: &Hub) -> Option<Published> {
    hub.db.published().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_fetch_the_published_version_from_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let url = new_pg_database();
    let zone = sample_zone_copy(dir.path());
    let (a, b) = two_members(dir.path(), &url, &zone);
    let (sa, sb) = (start(a.clone()).await, start(b.clone()).await);

    // A publishes (as the publisher: either member may have taken the role as it
    // started); B's store has none of it, fetches it from A, and serves it.
    a.promote().unwrap();
    let v1 = mirror_and_publish(&a).await;
    assert!(blobs(&b).is_empty());
    wait_for("b to hold version 1", || held(&b).as_ref() == Some(&v1)).await;
    assert_eq!(served(&b, &sb.url).await.as_ref(), Some(&v1));
    assert_eq!(
        tree(&checkout(&b, dir.path(), "b-v1")),
        tree(&checkout(&a, dir.path(), "a-v1"))
    );
    // One list of versions for the cluster, whoever published.
    assert_eq!(
        b.versions()
            .unwrap()
            .iter()
            .map(|v| v.number)
            .collect::<Vec<_>>(),
        vec![1]
    );

    // B mirrors an update itself and publishes: the cluster's numbers go on, and A takes
    // from B only what it lacks. Only the publisher publishes: B takes the role first.
    set_zone_revision(&zone, "2026112402");
    b.promote().unwrap();
    let v2 = mirror_and_publish(&b).await;
    assert_eq!(v2.number, 2);
    wait_for("a to hold version 2", || held(&a).as_ref() == Some(&v2)).await;
    assert_eq!(served(&a, &sa.url).await.as_ref(), Some(&v2));
    let numbers: Vec<u64> = a.versions().unwrap().iter().map(|v| v.number).collect();
    assert_eq!(numbers, vec![2, 1]);
    assert_eq!(a.db.cluster_published().unwrap().as_ref(), Some(&v2));
    // The membership shows both on the same root.
    let members = a.db.members().unwrap();
    assert_eq!(members.len(), 2);
    assert!(members
        .iter()
        .all(|m| m.active_root.as_deref() == Some(v2.root.to_string().as_str())));

    // A member re-signs (its half-life passed): the other takes the fresh signature.
    let fresh = Published::sign(
        v2.root,
        v2.number,
        v2.expires + chrono::Duration::hours(1),
        &a.keys.signing,
    );
    assert!(a.db.renew(&fresh, chrono::Utc::now()).unwrap());
    wait_for("b to take the fresh signature", || {
        held(&b).map(|p| p.expires) == Some(fresh.expires)
    })
    .await;
    sa.stop().await;
    sb.stop().await;
}

/// Flip one byte in the middle of a stored blob file; returns the original bytes.
fn rot(hub: &Hub, id: &updhub::id::BlobId) -> Vec<u8> {
    let path = hub.store.blob_path(id);
    let orig = std::fs::read(&path).unwrap();
    let mut bad = orig.clone();
    let i = bad.len() / 2;
    bad[i] ^= 0x40;
    std::fs::write(&path, bad).unwrap();
    orig
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_gets_a_bad_blob_keeps_serving_what_it_holds() {
    let dir = tempfile::tempdir().unwrap();
    let url = new_pg_database();
    let zone = sample_zone_copy(dir.path());
    let (a, b) = two_members(dir.path(), &url, &zone);
    let sa = start(a.clone()).await;
    let v1 = mirror_and_publish(&a).await;
    let sb = start(b.clone()).await;
    wait_for("b to hold version 1", || held(&b).as_ref() == Some(&v1)).await;
    sb.stop().await;
    let tree_v1 = tree(&checkout(&a, dir.path(), "a-v1"));

    // While B is down, A publishes version 2, and one of its new blobs rots on A's disk
    // (or a member turned hostile serves a forged one).
    set_zone_revision(&zone, "2026112402");
    let v2 = mirror_and_publish(&a).await;
    let m1 = Manifest::parse(&a.store.read_bytes(&v1.root.0).unwrap(), &v1.root).unwrap();
    let m2 = Manifest::parse(&a.store.read_bytes(&v2.root.0).unwrap(), &v2.root).unwrap();
    let old: Vec<_> = m1.blobs().into_iter().map(|b| b.0).collect();
    let (new_blob, _) = m2
        .blobs()
        .into_iter()
        .find(|(id, _)| !old.contains(id))
        .expect("version 2 has a new blob");
    let orig = rot(&a, &new_blob);

    // B comes back: it refuses the bad blob and keeps serving version 1, in full.
    let sb = start(b.clone()).await;
    tokio::time::sleep(updhub::node::CATCH_UP_EVERY * 3).await;
    assert_eq!(held(&b).as_ref(), Some(&v1));
    assert_eq!(served(&b, &sb.url).await.as_ref(), Some(&v1));
    assert!(
        !b.store.contains(&new_blob),
        "a blob that did not verify is not kept"
    );
    let status = b.status().unwrap();
    assert_eq!(status.current.as_ref(), Some(&v1));
    assert_eq!(status.cluster_version.as_ref().map(|p| p.number), Some(2));
    assert_eq!(tree(&checkout(&b, dir.path(), "b-still-v1")), tree_v1);

    // Repaired on A: B catches up.
    std::fs::write(a.store.blob_path(&new_blob), orig).unwrap();
    wait_for("b to hold version 2", || held(&b).as_ref() == Some(&v2)).await;
    assert_eq!(served(&b, &sb.url).await.as_ref(), Some(&v2));
    sa.stop().await;
    sb.stop().await;
}

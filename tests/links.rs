//! Interserver links: nodes of other trust domains enroll with a one-time token and hold
//! no private key of their parent; their ids are bound to their certificates; a removed
//! link gets no byte; a child cannot sign versions its siblings or its own children accept.
//! Tried as an attacker would: forged certificates, replayed and tampered tokens, a second
//! node with the same id.

mod common;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use common::*;
use updhub::child::{sync_once, SyncError};
use updhub::license::GrantToken;
use updhub::link::{self, Token};
use updhub::repo::{Published, RepoError};
use updhub::Hub;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_enrolled_by_link_syncs_and_holds_no_private_key_of_its_parent() {
    let dir = tempfile::tempdir().unwrap();
    let parent = zone_node(dir.path(), "parent", &sample_zone());
    let v1 = mirror_and_publish(&parent).await;
    let srv = start_with_stations(parent.clone()).await;

    let child = enrolled(dir.path(), "branch", &parent, &srv).await;
    let report = sync_once(&child, &srv.url).await.unwrap();
    assert!(report.changed, "{report}");
    assert_eq!(child.db.published().unwrap().as_ref(), Some(&v1));
    assert_eq!(
        tree(&checkout(&child, dir.path(), "c")),
        tree(&checkout(&parent, dir.path(), "p"))
    );
    // Its own trust domain: none of the parent's private keys, its own CA and publisher key.
    let pk = parent.data.join("keys");
    let ck = child.data.join("keys");
    for secret in ["ca.key", "cluster.key", "server.key", "node.key"] {
        assert_ne!(
            std::fs::read(pk.join(secret)).unwrap(),
            std::fs::read(ck.join(secret)).unwrap(),
            "{secret}"
        );
    }
    assert_ne!(child.keys.verifying, parent.keys.verifying);
    assert_eq!(child.keys.publishers(), vec![parent.keys.verifying]);
    let walk = walkdir(&ck);
    assert!(
        walk.iter()
            .filter(|f| f.ends_with(".key"))
            .all(|f| !std::fs::read(f).unwrap().is_empty()
                && std::fs::read(f).unwrap() != std::fs::read(pk.join("ca.key")).unwrap()
                && std::fs::read(f).unwrap() != std::fs::read(pk.join("cluster.key")).unwrap()),
        "{walk:?}"
    );
    // The parent knows it by the certificate it issued.
    let links = link::list(&parent).unwrap();
    assert_eq!(links.len(), 1);
    assert_eq!(links[0].peer_id, "branch");
    assert_eq!(
        parent.db.children().unwrap()[0].child_id,
        "branch",
        "the report came from the bound id"
    );
    srv.stop().await;
}

fn walkdir(d: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(d).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walkdir(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn used_expired_and_tampered_tokens_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let parent = zone_node(dir.path(), "parent", &sample_zone());
    mirror_and_publish(&parent).await;
    let srv = start_with_stations(parent.clone()).await;

    // A token whose CA fingerprint was changed (a man in the middle, a wrong paste): the
    // node sends nothing, so the real token still works afterwards.
    let token = invite(&parent, &srv, None);
    let mut tampered = token.clone();
    tampered.ca = "0".repeat(64);
    let err = join(dir.path(), "n1", &srv, &tampered).await.err().unwrap();
    assert!(
        err.contains("fingerprint") && err.contains("nothing was sent"),
        "{err}"
    );
    join(dir.path(), "n2", &srv, &token).await.unwrap();

    // Used once: refused the second time, naming when and by whom.
    let err = join(dir.path(), "n3", &srv, &token).await.err().unwrap();
    assert!(
        err.contains("was used at") && err.contains("by n2"),
        "{err}"
    );

    // Expired.
    let id = updhub::id::ServerId::new("n4").unwrap();
    let (short, _) = link::invite(
        &parent,
        Some(&id),
        "child",
        Duration::from_millis(1),
        srv.stations_url.as_deref().unwrap(),
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let err = join(dir.path(), "n4", &srv, &short).await.err().unwrap();
    assert!(err.contains("expired"), "{err}");

    // A token for another id.
    let for_n5 = invite(&parent, &srv, Some("n5"));
    let err = join(dir.path(), "n6", &srv, &for_n5).await.err().unwrap();
    assert!(err.contains("the token is for node id n5"), "{err}");

    // A guessed secret.
    let mut guessed = invite(&parent, &srv, None);
    guessed.secret = "ab".repeat(32);
    let err = join(dir.path(), "n7", &srv, &guessed).await.err().unwrap();
    assert!(err.contains("not known"), "{err}");

    // Garbage pasted as a token.
    let err = Token::decode("updhub-link-1.bm9wZQ")
        .unwrap_err()
        .to_string();
    assert!(err.contains("damaged"), "{err}");
    assert_eq!(link::list(&parent).unwrap().len(), 1, "only n2 enrolled");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_link_gets_no_byte() {
    let dir = tempfile::tempdir().unwrap();
    let (parent, srv, child) = parent_and_linked_child(dir.path(), "branch").await;
    let served = srv.stats.blob_requests.load(Ordering::Relaxed);

    // Removed from another process (the CLI): the serving node re-reads the links.
    let cli = Hub::open(&parent.data).unwrap();
    link::remove(&cli, "branch").await.unwrap();
    tokio::time::sleep(updhub::node::LINKS_EVERY * 2).await;

    // Its open connection (the client's pool) is cut, and new ones fail the handshake.
    // Each connection still pooled by the child's client is cut at its next request; once
    // they are used up, the handshake of a new one is refused and the child is told why.
    let mut last = None;
    for _ in 0..20 {
        let err = sync_once(&child, &srv.url).await.err().unwrap();
        assert!(
            matches!(
                err,
                SyncError::Network { .. } | SyncError::LinkRemoved { .. }
            ),
            "{err}"
        );
        if matches!(err, SyncError::LinkRemoved { .. }) {
            last = Some(err);
            break;
        }
    }
    let err = last.expect("the child is told its link was removed");
    assert!(err.to_string().contains("link join"), "{err}");
    let fresh = updhub::peer::upstream_client(&child.keys).unwrap();
    assert!(fresh
        .get(format!("{}v1/published", srv.url))
        .send()
        .await
        .is_err());
    assert_eq!(srv.stats.blob_requests.load(Ordering::Relaxed), served);
    let links = link::list(&parent).unwrap();
    assert!(links[0].removed_at.is_some());
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_forged_for_an_enrolled_id_is_refused_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    let parent = zone_node(dir.path(), "parent", &sample_zone());
    mirror_and_publish(&parent).await;
    let srv = start_with_stations(parent.clone()).await;
    let victim = enrolled(dir.path(), "victim", &parent, &srv).await;
    sync_once(&victim, &srv.url).await.unwrap();

    // An attacker who got hold of the parent's CA key (as every child did when children
    // shared keys) makes a certificate for "victim" with a key of its own.
    let stolen = dir.path().join("stolen");
    parent.export_keys(&stolen).unwrap();
    updhub::keys::issue_node_cert(&stolen, &updhub::id::ServerId::new("victim").unwrap()).unwrap();
    let forged = client_with(
        &stolen.join("ca.crt"),
        &stolen.join("node.crt"),
        &stolen.join("node.key"),
    );
    for path in ["v1/published", "v1/licenses/grants"] {
        let r = forged
            .get(format!("{}{path}", srv.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{path}");
        let body = r.text().await.unwrap();
        assert!(
            body.contains("node id victim is enrolled") && body.contains("another key"),
            "{body}"
        );
    }
    let r = forged
        .post(format!("{}v1/licenses/return", srv.url))
        .json(&serde_json::json!({"grant_id": "g-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // The parent shows the refusal; the real victim keeps working.
    let links = link::list(&parent).unwrap();
    let (fp, _) = links[0].refused.clone().expect("the refusal is recorded");
    assert_ne!(fp, links[0].cert_fp);
    sync_once(&victim, &srv.url).await.unwrap();

    // Another enrolled child presenting a certificate for "victim" from its own CA: refused
    // at the handshake (the parent trusts only its own CA).
    let other = enrolled(dir.path(), "other", &parent, &srv).await;
    let own = dir.path().join("other-own");
    std::fs::create_dir_all(&own).unwrap();
    for f in [
        "ca.crt",
        "ca.key",
        "cluster.key",
        "cluster.pub",
        "server.crt",
        "server.key",
    ] {
        std::fs::copy(other.data.join("keys").join(f), own.join(f)).unwrap();
    }
    updhub::keys::issue_node_cert(&own, &updhub::id::ServerId::new("victim").unwrap()).unwrap();
    let self_made = client_with(
        &parent.data.join("keys/ca.crt"),
        &own.join("node.crt"),
        &own.join("node.key"),
    );
    assert!(self_made
        .get(format!("{}v1/published", srv.url))
        .send()
        .await
        .is_err());
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_node_with_an_enrolled_id_is_refused_and_the_first_keeps_working() {
    let dir = tempfile::tempdir().unwrap();
    let parent = zone_node(dir.path(), "parent", &sample_zone());
    mirror_and_publish(&parent).await;
    let srv = start_with_stations(parent.clone()).await;
    let first = enrolled(dir.path(), "branch", &parent, &srv).await;
    sync_once(&first, &srv.url).await.unwrap();

    let token = invite(&parent, &srv, None);
    let twin_dir = dir.path().join("twin");
    let err = join(&twin_dir, "branch", &srv, &token).await.err().unwrap();
    assert!(
        err.contains("node id branch is already enrolled here with another key"),
        "{err}"
    );
    assert!(err.contains("link remove branch"), "{err}");
    sync_once(&first, &srv.url).await.unwrap();
    assert_eq!(link::list(&parent).unwrap().len(), 1);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_cannot_sign_a_version_its_own_children_or_siblings_accept() {
    let dir = tempfile::tempdir().unwrap();
    let parent = zone_node(dir.path(), "parent", &sample_zone());
    let v1 = mirror_and_publish(&parent).await;
    let srv = start_with_stations(parent.clone()).await;
    let child = enrolled(dir.path(), "child", &parent, &srv).await;
    let sibling = enrolled(dir.path(), "sibling", &parent, &srv).await;
    sync_once(&child, &srv.url).await.unwrap();

    // The child serves on; a grandchild enrolls with it and learns the origin's publisher
    // key through that enrollment.
    let csrv = start_with_stations(child.clone()).await;
    let grandchild = enrolled(dir.path(), "grandchild", &child, &csrv).await;
    assert_eq!(grandchild.keys.publishers(), vec![parent.keys.verifying]);
    sync_once(&grandchild, &csrv.url).await.unwrap();
    assert_eq!(
        grandchild.db.published().unwrap().as_ref(),
        Some(&v1),
        "the signed document passes unchanged"
    );

    // The child turns hostile and signs a version 2 with its own key.
    let forged = Published::sign(
        v1.root,
        2,
        Utc::now() + chrono::Duration::hours(1),
        &child.keys.signing,
    );
    child.db.set_published(&forged, Utc::now()).unwrap();
    let err = sync_once(&grandchild, &csrv.url).await.err().unwrap();
    assert!(
        matches!(
            err,
            SyncError::Repo(RepoError::BadSignature { number: 2, .. })
        ),
        "{err}"
    );
    assert_eq!(grandchild.db.published().unwrap().unwrap().number, 1);
    // Its siblings do not accept its signature either.
    assert!(forged
        .verify_any(&sibling.keys.publishers(), Utc::now(), "test")
        .is_err());
    csrv.stop().await;
    srv.stop().await;
}

/// A parent that published the sample zone and holds key K1 (20 licenses) of its own
/// issuer, which it trusts.
async fn licensed_parent(dir: &Path) -> (Arc<Hub>, Published, ed25519_dalek::SigningKey) {
    let iss = issuer();
    let zone = sample_zone();
    let parent = node(
        dir,
        "parent",
        NodeOpts {
            zone: Some(&zone),
            issuers: vec![issuer_hex(&iss)],
            ..Default::default()
        },
    );
    let v1 = mirror_and_publish(&parent).await;
    updhub::hub::add_license_file(&parent, &key_file(dir, &iss, "K1", 20, 365))
        .await
        .unwrap();
    (parent, v1, iss)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn licenses_flow_down_three_links_and_the_bottom_verifies_the_whole_chain_offline() {
    use updhub::license::ledger::Donation;
    let dir = tempfile::tempdir().unwrap();
    let (parent, _, iss) = licensed_parent(dir.path()).await;
    let srv = start_with_stations(parent.clone()).await;
    let child = enrolled(dir.path(), "child", &parent, &srv).await;
    sync_once(&child, &srv.url).await.unwrap();
    let until = Utc::now() + chrono::Duration::days(1);
    let donate = |hub: Arc<Hub>, to: &str, count: u32, until: chrono::DateTime<Utc>| {
        let d = Donation {
            to: to.into(),
            count,
            until,
            source: None,
            request_id: hex::encode(rand::random::<[u8; 8]>()),
        };
        async move {
            hub.ledger
                .donate(d, |id| hub.db.knows_server(id).unwrap())
                .await
                .unwrap()
        }
    };
    let g = donate(parent.clone(), "child", 10, until).await;
    let r = sync_once(&child, &srv.url).await.unwrap();
    assert_eq!(r.grants, 1, "{r}");
    assert_eq!(source(&child, &g.grant_id).total, 10);

    // Each level donates on to its own linked child, signing with its own key; a sub-grant
    // ends within its grant (less the skew margin).
    let down = |from: Arc<Hub>, to: &'static str, count: u32, hours: i64| {
        let dir = dir.path().to_owned();
        async move {
            let srv = start_with_stations(from.clone()).await;
            let below = enrolled(&dir, to, &from, &srv).await;
            sync_once(&below, &srv.url).await.unwrap();
            let g = donate(from, to, count, until - chrono::Duration::hours(hours)).await;
            let r = sync_once(&below, &srv.url).await.unwrap();
            assert_eq!(r.grants, 1, "{r}");
            assert_eq!(source(&below, &g.grant_id).total, u64::from(count));
            (below, srv, g)
        }
    };
    let (grandchild, csrv, g2) = down(child.clone(), "grandchild", 4, 1).await;
    assert_eq!(source(&child, &g.grant_id).donated, 4);
    // A third level.
    let (bottom, gsrv, g3) = down(grandchild.clone(), "bottom", 3, 2).await;

    // The bottom's token carries the whole chain: the grandchild's grant, the child's grant
    // to it, the parent's grant to the child, and the license key file at the top.
    use updhub::license::chain::Proof;
    let above = |t: &GrantToken| match t.proof.clone() {
        Some(Proof::Grant(g)) => *g,
        other => panic!("a grant above {}: {other:?}", t.grant_id),
    };
    let (mid, top) = (above(&g3), above(&above(&g3)));
    assert_eq!(
        (mid.grant_id.as_str(), top.grant_id.as_str()),
        (g2.grant_id.as_str(), g.grant_id.as_str())
    );
    assert!(matches!(&top.proof, Some(Proof::Key(k)) if k.key_id == "K1"));
    // Each grant names the key of its receiver, as the link recorded it at enrollment.
    let hexkey = |h: &Hub| hex::encode(h.keys.verifying.as_bytes());
    assert_eq!(top.receiver_key, Some(hexkey(&child)));
    assert_eq!(mid.receiver_key, Some(hexkey(&grandchild)));
    assert_eq!(g3.receiver_key, Some(hexkey(&bottom)));
    // Offline, with nothing but the grandchild's key the bottom learned at enrollment and
    // the issuers it trusts (none, or the one that issued K1).
    let donor = bottom.keys.donor();
    assert_eq!(donor, grandchild.keys.verifying);
    g3.verify(&donor, "bottom", &[]).unwrap();
    g3.verify(&donor, "bottom", &[issuer_hex(&iss)]).unwrap();

    // A tampered middle link: the child (the middle of the chain) says the parent gave it
    // 20, re-signing its own grant over that claim. The bottom refuses, naming the link.
    let mut forged_top = top.clone();
    forged_top.count = 20;
    let mut forged_mid = mid.clone();
    forged_mid.count = 10;
    forged_mid.proof = Some(Proof::Grant(Box::new(forged_top)));
    let child_key = std::fs::read_to_string(dir.path().join("child/keys/cluster.key")).unwrap();
    let child_key: ed25519_dalek::SigningKey =
        ed25519_dalek::pkcs8::DecodePrivateKey::from_pkcs8_pem(&child_key).unwrap();
    forged_mid.sign(&child_key);
    let mut t = g3.clone();
    t.proof = Some(Proof::Grant(Box::new(forged_mid)));
    // The grandchild would have to re-sign its own grant to carry the forged chain.
    let gc_key = std::fs::read_to_string(dir.path().join("grandchild/keys/cluster.key")).unwrap();
    let gc_key: ed25519_dalek::SigningKey =
        ed25519_dalek::pkcs8::DecodePrivateKey::from_pkcs8_pem(&gc_key).unwrap();
    t.sign(&gc_key);
    let e = t.verify(&donor, "bottom", &[]).unwrap_err().to_string();
    assert!(e.contains(&format!("the grant {}", g.grant_id)), "{e}");
    assert!(e.contains("tampered with or forged"), "{e}");
    // The grandchild's sibling (another node with its own key) cannot carve from the
    // child's grant to the grandchild either.
    let mut t = g3.clone();
    t.sign(&child_key);
    let e = t
        .verify(&child.keys.verifying, "bottom", &[])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&format!("the grant {}", g2.grant_id)) && e.contains("receiver's key"),
        "{e}"
    );

    assert_conserved(&parent);
    assert_conserved(&child);
    assert_conserved(&grandchild);
    gsrv.stop().await;
    csrv.stop().await;
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_enrollment_round_trip_and_answers_for_other_requests_refused() {
    let dir = tempfile::tempdir().unwrap();
    let parent = zone_node(dir.path(), "parent", &sample_zone());
    let v1 = mirror_and_publish(&parent).await;
    let srv = start_with_stations(parent.clone()).await;
    let site = node(
        dir.path(),
        "airgap",
        NodeOpts {
            parent: Some(srv.url.clone()),
            ..Default::default()
        },
    );

    // Request 1 travels to the parent and back, but the site made request 2 meanwhile:
    // the answer to request 1 certifies another key, and is refused.
    let r1 = link::offline_request(&site).unwrap();
    let a1 = link::offline_accept(&parent, &r1, "child").unwrap();
    let r2 = link::offline_request(&site).unwrap();
    let err = link::offline_import(&site, &a1).unwrap_err().to_string();
    assert!(err.contains("certifies another key"), "{err}");
    // The id is enrolled (by answer 1): request 2 is refused until that link is removed.
    let err = link::offline_accept(&parent, &r2, "child")
        .unwrap_err()
        .to_string();
    assert!(err.contains("already enrolled"), "{err}");
    link::remove(&parent, "airgap").await.unwrap();
    let a2 = link::offline_accept(&parent, &r2, "child").unwrap();

    // An answer for another node is refused.
    let other = node(dir.path(), "other", NodeOpts::default());
    let err = link::offline_import(&other, &a2).unwrap_err().to_string();
    assert!(err.contains("this answer is for node airgap"), "{err}");

    // The right one: the CA fingerprint shown is the parent's, and the site syncs.
    let fp = link::offline_import(&site, &a2).unwrap();
    let parent_ca = std::fs::read(parent.data.join("keys/ca.crt")).unwrap();
    assert_eq!(fp, updhub::keys::pem_fp(&parent_ca).unwrap());
    let data = site.data.clone();
    drop(site);
    let site = Arc::new(Hub::open(&data).unwrap());
    sync_once(&site, &srv.url).await.unwrap();
    assert_eq!(site.db.published().unwrap().as_ref(), Some(&v1));
    // Importing twice: the request's key was used up.
    let err = link::offline_import(&site, &a2).unwrap_err().to_string();
    assert!(err.contains("made no link request"), "{err}");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_key_rotation_is_followed_down_the_links_and_the_old_key_refused_after() {
    use updhub::license::ledger::Donation;
    let dir = tempfile::tempdir().unwrap();
    let (parent, v1, _) = licensed_parent(dir.path()).await;
    let srv = start_with_stations(parent.clone()).await;
    let child = enrolled(dir.path(), "child", &parent, &srv).await;
    sync_once(&child, &srv.url).await.unwrap();
    // A grant, signed with the key about to rotate.
    let until = Utc::now() + chrono::Duration::days(1);
    let g = parent
        .ledger
        .donate(
            Donation {
                to: "child".into(),
                count: 5,
                until,
                source: None,
                request_id: "r1".into(),
            },
            |_| true,
        )
        .await
        .unwrap();
    sync_once(&child, &srv.url).await.unwrap();
    assert_eq!(source(&child, &g.grant_id).total, 5);
    let csrv = start_with_stations(child.clone()).await;
    let grandchild = enrolled(dir.path(), "grandchild", &child, &csrv).await;
    sync_once(&grandchild, &csrv.url).await.unwrap();

    // The publisher rotates its key (its server stopped, as `keys rotate` requires).
    srv.stop().await;
    let old_key = parent.keys.signing.clone();
    let data = parent.data.clone();
    drop(parent);
    let (rotation, resigned) = Hub::open(&data).unwrap().rotate_publisher().unwrap();
    let resigned = resigned.unwrap();
    assert_eq!((resigned.root, resigned.number), (v1.root, v1.number));
    let parent = Arc::new(Hub::open(&data).unwrap());
    assert_ne!(parent.keys.verifying, old_key.verifying_key());
    let srv = start_with_stations(parent.clone()).await;

    // The child follows the rotation, then its own child through it.
    sync_once(&child, &srv.url).await.unwrap();
    assert_eq!(child.keys.publishers(), vec![parent.keys.verifying]);
    assert_eq!(child.db.published().unwrap().unwrap(), resigned);
    sync_once(&grandchild, &csrv.url).await.unwrap();
    assert_eq!(grandchild.keys.publishers(), vec![parent.keys.verifying]);
    assert_eq!(grandchild.db.published().unwrap().unwrap(), resigned);
    // What they learned survives a restart: the publisher key, and the donor's key,
    // which is the same key on the origin.
    let reopened = Hub::open(&child.data).unwrap();
    assert_eq!(reopened.keys.publishers(), vec![parent.keys.verifying]);
    assert_eq!(reopened.keys.donor(), parent.keys.verifying);
    drop(reopened);
    // A renewal signed with the new key reaches the child.
    let later = until + chrono::Duration::days(1);
    parent
        .ledger
        .renew(g.grant_id.clone(), later)
        .await
        .unwrap();
    let r = sync_once(&child, &srv.url).await.unwrap();
    assert_eq!(r.grants, 1, "{r}");
    assert_eq!(
        source(&child, &g.grant_id).not_after.timestamp(),
        later.timestamp()
    );

    // The old key is trusted no more: a version 2 it signs is refused.
    let stale = Published::sign(
        v1.root,
        2,
        Utc::now() + chrono::Duration::hours(1),
        &old_key,
    );
    parent.db.set_published(&stale, Utc::now()).unwrap();
    let err = sync_once(&child, &srv.url).await.err().unwrap();
    assert!(
        matches!(
            err,
            SyncError::Repo(RepoError::BadSignature { number: 2, .. })
        ),
        "{err}"
    );

    // A rotation away from the new key that the new key did not sign is refused, and the
    // child keeps trusting the key it has.
    let attacker = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let mut forged = updhub::keys::Rotation::sign(&attacker, &attacker.verifying_key(), 2);
    forged.old = rotation.new.clone();
    let path = data.join("keys/rotations.json");
    let mut chain: Vec<updhub::keys::Rotation> =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    chain.push(forged);
    std::fs::write(&path, serde_json::to_vec(&chain).unwrap()).unwrap();
    let evil = Published::sign(
        v1.root,
        3,
        Utc::now() + chrono::Duration::hours(1),
        &attacker,
    );
    parent.db.set_published(&evil, Utc::now()).unwrap();
    let err = sync_once(&child, &srv.url).await.err().unwrap();
    assert!(matches!(err, SyncError::Rotation { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("not signed by the key it rotates away from"),
        "{err}"
    );
    assert_eq!(child.keys.publishers(), vec![parent.keys.verifying]);
    assert_eq!(child.db.published().unwrap().unwrap().number, 1);
    csrv.stop().await;
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_link_carries_licenses_both_ways_each_chain_verified() {
    use updhub::license::ledger::Donation;
    let dir = tempfile::tempdir().unwrap();
    let (hq, _, iss) = licensed_parent(dir.path()).await;
    let srv = start_with_stations(hq.clone()).await;
    // A neighbor: its own trust domain, its own license key of the same vendor, linked to
    // hq as a peer. It cannot be reached by hq: everything goes over its connection.
    let neighbor = enrolled_peer(
        dir.path(),
        "neighbor",
        &hq,
        &srv,
        NodeOpts {
            issuers: vec![issuer_hex(&iss)],
            ..Default::default()
        },
    )
    .await;
    assert_eq!(neighbor.keys.upstream.as_ref().unwrap().kind, "peer");
    updhub::hub::add_license_file(&neighbor, &key_file(dir.path(), &iss, "K2", 10, 365))
        .await
        .unwrap();
    let donation = |to: &str, count: u32, id: &str| Donation {
        to: to.into(),
        count,
        until: Utc::now() + chrono::Duration::days(2),
        source: None,
        request_id: id.into(),
    };
    // Each side knows the other: hq by the link it enrolled, the neighbor by its upstream.
    let to_neighbor = hq
        .ledger
        .donate(donation("neighbor", 5, "a"), |id| hq.knows_server(id))
        .await
        .unwrap();
    let to_hq = neighbor
        .ledger
        .donate(donation("parent", 3, "b"), |id| neighbor.knows_server(id))
        .await
        .unwrap();
    let back = neighbor
        .ledger
        .donate(donation("parent", 2, "c"), |id| neighbor.knows_server(id))
        .await
        .unwrap();
    // The grant to hq names hq's key as its receiver's, as learned at enrollment.
    assert_eq!(
        to_hq.receiver_key,
        Some(hex::encode(hq.keys.verifying.as_bytes()))
    );
    let url = srv.url.clone();
    let (got, gave) = link::exchange_licenses(&neighbor, &url, "parent")
        .await
        .unwrap();
    assert_eq!((got, gave), (1, 2));
    assert_eq!(source(&neighbor, &to_neighbor.grant_id).total, 5);
    assert_eq!(source(&hq, &to_hq.grant_id).total, 3);
    assert_eq!(source(&hq, &back.grant_id).total, 2);
    assert_eq!(source(&neighbor, "K2").donated, 5);

    // hq donates on from the neighbor's grant to its own linked child, which verifies the
    // chain up to the neighbor's key file.
    let child = enrolled(dir.path(), "child", &hq, &srv).await;
    sync_once(&child, &srv.url).await.unwrap();
    let sub = hq
        .ledger
        .donate(
            Donation {
                source: Some(to_hq.grant_id.clone()),
                until: Utc::now() + chrono::Duration::days(1),
                ..donation("child", 1, "d")
            },
            |id| hq.knows_server(id),
        )
        .await
        .unwrap();
    sync_once(&child, &srv.url).await.unwrap();
    assert_eq!(source(&child, &sub.grant_id).total, 1);

    // Both ways back: hq returns one grant, the neighbor revokes the other.
    updhub::license::api::return_grant(&hq.ledger, &hq.keys, None, &back.grant_id)
        .await
        .unwrap();
    link::exchange_licenses(&neighbor, &url, "parent")
        .await
        .unwrap();
    assert_eq!(source(&hq, &back.grant_id).status, "returned");
    assert_eq!(source(&neighbor, "K2").donated, 3, "the return settled");
    neighbor
        .ledger
        .revoke(to_hq.grant_id.clone())
        .await
        .unwrap();
    link::exchange_licenses(&neighbor, &url, "parent")
        .await
        .unwrap();
    assert_eq!(source(&hq, &to_hq.grant_id).status, "revoked");
    assert_eq!(
        source(&neighbor, "K2").donated,
        0,
        "revocation acknowledged"
    );
    for h in [&hq, &neighbor, &child] {
        assert_conserved(h);
    }

    // The neighbor cannot offer what is not its own: a grant naming another donor, or one
    // of a license key whose issuer hq does not trust, changes nothing at hq.
    let client = neighbor.client().unwrap();
    let offer = |body: String| {
        let client = client.clone();
        let url = format!("{url}/v1/licenses/offered");
        async move {
            let r = client.post(url).body(body).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let before = hq.ledger.status(Duration::from_secs(3600)).unwrap();
    let mut alien = to_neighbor.clone();
    alien.receiver = "parent".into();
    let (code, text) = offer(serde_json::to_string(&vec![alien]).unwrap()).await;
    assert_eq!(code, 400, "{text}");
    assert!(text.contains("a node offers only its own grants"), "{text}");
    // The neighbor's admin mints a key with an issuer of their own and signs a grant of it
    // with the neighbor's real key: the chain ends at an issuer hq does not trust.
    let rogue = issuer();
    let k3 = updhub::license::LicenseKey::issue(
        &rogue,
        "K3",
        "neighbor",
        500,
        Utc::now(),
        Utc::now() + chrono::Duration::days(30),
    );
    let mut minted = to_hq.clone();
    minted.grant_id = GrantToken::new_id();
    minted.source = "K3".into();
    minted.count = 500;
    minted.status = updhub::license::GrantStatus::Active;
    minted.revision = 1;
    minted.proof = Some(updhub::license::chain::Proof::Key(k3));
    let pem = std::fs::read_to_string(neighbor.data.join("keys/cluster.key")).unwrap();
    let neighbor_key: ed25519_dalek::SigningKey =
        ed25519_dalek::pkcs8::DecodePrivateKey::from_pkcs8_pem(&pem).unwrap();
    minted.sign(&neighbor_key);
    let (code, text) = offer(serde_json::to_string(&vec![minted]).unwrap()).await;
    assert_eq!(code, 400, "{text}");
    assert!(
        text.contains("license key K3") && text.contains("not trusted"),
        "{text}"
    );
    let (code, text) = offer("[{\"format\":1}]".into()).await;
    assert_eq!(code, 400, "{text}");
    assert!(text.contains("not a JSON list of grant tokens"), "{text}");
    assert_eq!(hq.ledger.status(Duration::from_secs(3600)).unwrap(), before);
    // A peer gets no updates.
    let r = client
        .get(format!("{url}/v1/published"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    srv.stop().await;
}

/// Issue 18 item 4: a token made without `--id` (the form the README and `serve`'s banner
/// showed) lets the enrolling node name itself; an id this node or its cluster knows is
/// refused at enrollment, naming who holds it, and the holder keeps working: this node's
/// own id (its members present a certificate by it), a member's, a child's that reported
/// (one made with `keys export`), a grant receiver's. A token made for such an id is not
/// made at all, nor is an offline answer for one. The token refused is not used up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_less_token_cannot_take_an_id_this_cluster_knows_and_the_holder_keeps_working() {
    let dir = tempfile::tempdir().unwrap();
    let (parent, _, _) = licensed_parent(dir.path()).await;
    let srv = start_with_stations(parent.clone()).await;
    // Member b: the cluster's keys; serving on the cluster's database, it records itself
    // there (here by hand: this test's database is the parent's SQLite file).
    let b = member_of(dir.path(), "b", &parent, NodeOpts::default());
    let row = b.member("b-instance", Utc::now(), "127.0.0.1:1").unwrap();
    parent
        .db
        .record_member(&row, updhub::hub::MEMBER_ALIVE)
        .unwrap()
        .unwrap();
    // A child made with `keys export` that reported, and a grant receiver.
    let c1 = member_of(
        dir.path(),
        "c1",
        &parent,
        NodeOpts {
            parent: Some(srv.url.clone()),
            ..Default::default()
        },
    );
    sync_once(&c1, &srv.url).await.unwrap();
    let grant = parent
        .ledger
        .donate(
            updhub::license::ledger::Donation {
                to: "r".into(),
                count: 3,
                until: Utc::now() + chrono::Duration::days(30),
                source: Some("K1".into()),
                request_id: "req-r".into(),
            },
            |_| true,
        )
        .await
        .unwrap()
        .grant_id;

    let token = invite(&parent, &srv, None);
    let newcomers = dir.path().join("newcomers");
    for (id, holder) in [
        ("parent", "id parent is this node's own id".to_owned()),
        ("b", "id b is a member of this cluster".to_owned()),
        ("c1", "id c1 is a child that reported on ".to_owned()),
        ("r", format!("id r is the receiver of grant {grant}")),
    ] {
        let err = join(&newcomers, id, &srv, &token).await.err().unwrap();
        assert!(err.contains("403") && err.contains(&holder), "{id}: {err}");
        assert!(err.contains("link invite --id"), "{id}: {err}");
        // Nor with a token made for the id, nor offline.
        let e = updhub::link::invite(
            &parent,
            Some(&updhub::id::ServerId::new(id).unwrap()),
            "child",
            HOUR,
            srv.stations_url.as_deref().unwrap(),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains(&holder), "{id}: {e}");
        let n = Hub::open(&newcomers.join(id)).unwrap();
        let req = link::offline_request(&n).unwrap();
        let e = link::offline_accept(&parent, &req, "child")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains(&holder), "{id}: {e}");
    }
    assert!(link::list(&parent).unwrap().is_empty());

    // The holders keep working: the parent's own certificate and member b's are served,
    // c1 syncs, r's grant is r's.
    for keys in [parent.data.join("keys"), b.data.join("keys")] {
        let client = client_with(
            &keys.join("ca.crt"),
            &keys.join("node.crt"),
            &keys.join("node.key"),
        );
        let r = client
            .get(format!("{}v1/published", srv.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", keys.display());
    }
    sync_once(&c1, &srv.url).await.unwrap();
    let to_r: Vec<_> = parent
        .ledger
        .grants(HOUR)
        .unwrap()
        .outgoing
        .into_iter()
        .filter(|g| g.receiver == "r")
        .collect();
    assert_eq!(to_r.len(), 1);
    // The token was not used up: a node with an id of its own enrolls with it.
    let fresh = join(&newcomers, "branch-2", &srv, &token).await.unwrap();
    sync_once(&fresh, &srv.url).await.unwrap();
    srv.stop().await;
}

/// After `link remove`, the id is the admin's to give again (the node was replaced): its
/// reports and grants do not hold it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_links_id_enrolls_again_though_it_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (parent, srv, _child) = parent_and_linked_child(dir.path(), "branch").await;
    assert_eq!(parent.db.children().unwrap()[0].child_id, "branch");
    link::remove(&parent, "branch").await.unwrap();
    let again = join(
        &dir.path().join("again"),
        "branch",
        &srv,
        &invite(&parent, &srv, None),
    )
    .await
    .unwrap();
    sync_once(&again, &srv.url).await.unwrap();
    srv.stop().await;
}

/// Issue 18 item 10: `link import` takes the answer file's `kind` and `parent_id` only when
/// they follow their rules (they are kept in link.json and printed); a damaged answer
/// changes nothing and the request's key stays for the right one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_answer_with_a_bad_kind_or_parent_id_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let parent = zone_node(dir.path(), "parent", &sample_zone());
    let site = node(dir.path(), "airgap", NodeOpts::default());
    let req = link::offline_request(&site).unwrap();
    let good = link::offline_accept(&parent, &req, "child").unwrap();
    let as_json = serde_json::to_value(&good).unwrap();
    let with = |field: &str, value: &str| -> link::EnrollReply {
        let mut v = as_json.clone();
        v[field] = serde_json::Value::String(value.to_owned());
        serde_json::from_value(v).unwrap()
    };
    for (field, value) in [
        ("kind", "king"),
        ("kind", "child\nINFO forged"),
        ("parent_id", ""),
        ("parent_id", "../x"),
        ("parent_id", "hq\0"),
        ("parent_id", "hq\n2026-12-08T00:00:00Z INFO enrolled"),
    ] {
        let err = link::offline_import(&site, &with(field, value))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("the link answer's {field}")) && !err.contains('\n'),
            "{field} {value:?}: {err}"
        );
        assert!(
            !site.data.join("keys/upstream").exists(),
            "{field} {value:?}"
        );
    }
    link::offline_import(&site, &good).unwrap();
    let kept: serde_json::Value =
        serde_json::from_slice(&std::fs::read(site.data.join("keys/upstream/link.json")).unwrap())
            .unwrap();
    assert_eq!(
        (kept["kind"].as_str(), kept["parent_id"].as_str()),
        (Some("child"), Some("parent"))
    );
}

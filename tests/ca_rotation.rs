//! Rotating the cluster CA with an overlap (`keys rotate-ca`): a child enrolled under the
//! old CA keeps syncing through the rotation (it learns the new CA over its link and
//! renews its certificate); after the overlap, certificates of the old CA are refused at
//! the handshake; a new CA the old one did not vouch for is refused; a removed link cannot
//! renew; a member without the new keys is named.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use tokio::io::AsyncWriteExt;
use updhub::child::sync_once;
use updhub::keys::ca::Issuer;
use updhub::keys::renewal::Learned;
use updhub::link;
use updhub::Hub;

const WEEK: Duration = Duration::from_secs(7 * 24 * 3600);

/// Stop `parent`'s server, run `keys rotate-ca` (or `--finish` when `overlap` is None) on
/// its data folder as the CLI would, and serve it again.
async fn rotate(
    parent: Arc<Hub>,
    srv: Running,
    overlap: Option<Duration>,
) -> (Arc<Hub>, Running, Vec<String>) {
    srv.stop().await;
    let data = parent.data.clone();
    drop(parent);
    let cli = Hub::open(&data).unwrap();
    let cut = match overlap {
        Some(o) => {
            cli.rotate_ca(o).unwrap();
            Vec::new()
        }
        None => cli.finish_ca_rotation().unwrap().1,
    };
    drop(cli);
    let parent = Arc::new(Hub::open(&data).unwrap());
    let srv = start_with_stations(parent.clone()).await;
    (parent, srv, cut)
}

fn upstream(child: &Hub) -> Arc<updhub::keys::UpstreamTls> {
    child.keys.upstream.as_ref().unwrap().tls()
}

fn link_of(parent: &Hub, id: &str) -> updhub::db::Link {
    link::list(parent)
        .unwrap()
        .into_iter()
        .find(|l| l.peer_id == id && l.removed_at.is_none())
        .unwrap()
}

fn cert_fp_of(path: &Path) -> String {
    updhub::keys::pem_fp(&std::fs::read(path).unwrap()).unwrap()
}

/// A client certificate for `id` minted with a CA's private key (as someone holding a
/// stolen `ca.key` would), written to `dir/minted.crt` and `dir/minted.key`.
fn mint(
    dir: &Path,
    ca_crt: &str,
    ca_key: &str,
    id: &str,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let ca_key = rcgen::KeyPair::from_pem(ca_key).unwrap();
    let ca = rcgen::CertificateParams::from_ca_cert_pem(ca_crt)
        .unwrap()
        .self_signed(&ca_key)
        .unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(rcgen::DnType::CommonName, id);
    p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let cert = p.signed_by(&key, &ca, &ca_key).unwrap();
    let (c, k) = (dir.join("minted.crt"), dir.join("minted.key"));
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    (c, k)
}

/// Mirror and publish, and activate at once: the version is staged while both children
/// report, and the late one never stages it (this file is about the CA; two_phase.rs is
/// about the switch).
async fn publish_active(parent: &Hub) -> updhub::repo::Published {
    let p = mirror_and_publish(parent).await;
    if parent.rollout().unwrap().is_some() {
        parent.activate_now().unwrap();
    }
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_enrolled_under_the_old_ca_keeps_syncing_through_the_rotation_and_old_ca_certificates_are_refused_after(
) {
    let dir = tempfile::tempdir().unwrap();
    let zone = sample_zone_copy(dir.path());
    let parent = zone_node(dir.path(), "parent", &zone);
    mirror_and_publish(&parent).await;
    let srv = start_with_stations(parent.clone()).await;
    let child = enrolled(dir.path(), "child", &parent, &srv).await;
    // A second child that sleeps through the whole overlap.
    let late = enrolled(dir.path(), "late", &parent, &srv).await;
    sync_once(&child, &srv.url).await.unwrap();
    sync_once(&late, &srv.url).await.unwrap();
    let pk = parent.data.join("keys");
    let old_ca_crt = std::fs::read_to_string(pk.join("ca.crt")).unwrap();
    let old_ca_key = std::fs::read_to_string(pk.join("ca.key")).unwrap();
    let old_ca_fp = updhub::keys::pem_fp(old_ca_crt.as_bytes()).unwrap();
    let up = child.data.join("keys/upstream");
    let old_link_fp = cert_fp_of(&up.join("link.crt"));
    assert_eq!(link_of(&parent, "child").cert_fp, old_link_fp);
    let kept = dir.path().join("old-link");
    std::fs::create_dir(&kept).unwrap();
    for f in ["ca.crt", "link.crt", "link.key"] {
        std::fs::copy(up.join(f), kept.join(f)).unwrap();
    }

    // 1. The rotation: a new CA, vouched for by the old one, a week of overlap.
    let (parent, srv, _) = rotate(parent, srv, Some(WEEK)).await;
    let new_ca_fp = parent.keys.ca.current_fp();
    assert_ne!(new_ca_fp, old_ca_fp);
    assert!(parent.keys.ca.overlap_at(chrono::Utc::now()).is_some());
    let rot = parent.status().unwrap().ca_rotation.unwrap();
    assert_eq!(
        (rot.old_ca.as_str(), rot.ended),
        (old_ca_fp.as_str(), false)
    );
    assert_eq!(rot.links_on_old_ca, vec!["child", "late"]);

    // 2. During the overlap: the child, trusting only the old CA, connects (the parent's
    // new server certificate carries the cross-certificate), gets version 2, learns the
    // new CA over its link and renews its certificate under it, keeping its id.
    set_zone_revision(&zone, "2026112402");
    let v2 = publish_active(&parent).await;
    let r = sync_once(&child, &srv.url).await.unwrap();
    assert_eq!((r.number, r.root), (2, v2.root));
    let tls = upstream(&child);
    assert_eq!(tls.ca.current_fp(), new_ca_fp);
    assert_eq!(
        tls.ca
            .overlap
            .as_ref()
            .map(|o| updhub::keys::cert_fp(&o.old)),
        Some(
            parent
                .keys
                .ca
                .overlap
                .as_ref()
                .map(|o| updhub::keys::cert_fp(&o.old))
                .unwrap()
        )
    );
    assert_eq!(
        tls.link_issuer,
        Some(Issuer::Current {
            fp: new_ca_fp.clone()
        })
    );
    let new_link_fp = cert_fp_of(&up.join("link.crt"));
    assert_ne!(new_link_fp, old_link_fp);
    let row = link_of(&parent, "child");
    assert_eq!(
        row.cert_fp, new_link_fp,
        "the link moved to the new certificate"
    );
    assert_eq!(
        row.issuer,
        Some(Issuer::Current {
            fp: new_ca_fp.clone()
        })
    );
    assert!(matches!(
        link_of(&parent, "late").issuer,
        Some(Issuer::Old { .. })
    ));
    assert_eq!(
        parent
            .status()
            .unwrap()
            .ca_rotation
            .unwrap()
            .links_on_old_ca,
        vec!["late"]
    );
    // One live link per id still: the old certificate is bound no more (refused, naming
    // the bound one), and the renewed child syncs on with the new one.
    let old = client_with(
        &kept.join("ca.crt"),
        &kept.join("link.crt"),
        &kept.join("link.key"),
    );
    let resp = old
        .get(format!("{}v1/published", srv.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert!(
        resp.text().await.unwrap().contains(&new_link_fp),
        "names the bound certificate"
    );
    assert_eq!(
        link::list(&parent)
            .unwrap()
            .iter()
            .filter(|l| l.removed_at.is_none())
            .count(),
        2
    );
    sync_once(&child, &srv.url).await.unwrap();
    // The late child, still on the old CA and its old certificate, is served too.
    let late_up = late.data.join("keys/upstream");
    let late_old = client_with(
        &late_up.join("ca.crt"),
        &late_up.join("link.crt"),
        &late_up.join("link.key"),
    );
    assert_eq!(
        late_old
            .get(format!("{}v1/published", srv.url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // A grandchild of the child notices nothing: the child's own CA did not change.
    let csrv = start_with_stations(child.clone()).await;
    let grandchild = enrolled(dir.path(), "grandchild", &child, &csrv).await;
    assert_eq!(sync_once(&grandchild, &csrv.url).await.unwrap().number, 2);
    csrv.stop().await;

    // 3. The overlap ends (`keys rotate-ca --finish`): the late child is named as cut off.
    let (parent, srv, cut) = rotate(parent, srv, None).await;
    assert_eq!(cut, vec!["late"]);
    assert!(parent.keys.ca.overlap.is_none());
    assert!(parent.status().unwrap().ca_rotation.is_none());
    set_zone_revision(&zone, "2026112401");
    let v3 = publish_active(&parent).await;
    let r = sync_once(&child, &srv.url).await.unwrap();
    assert_eq!((r.number, r.root), (3, v3.root));
    // The child took in the end of the overlap: it trusts only the new CA.
    assert!(upstream(&child).ca.overlap.is_none());
    assert!(!up.join("ca-old.crt").exists() && !up.join("ca-cross.crt").exists());
    assert_eq!(
        Hub::open(&child.data)
            .unwrap()
            .keys
            .upstream
            .unwrap()
            .tls()
            .ca
            .current_fp(),
        new_ca_fp
    );
    let reports = parent.db.children().unwrap();

    // 4. Certificates of the old CA are refused at the handshake and change nothing: the
    // late child's, the child's old one, and one minted with the stolen old `ca.key`.
    let served = srv.stats.blob_requests.load(Ordering::Relaxed);
    let links = link::list(&parent).unwrap();
    let err = sync_once(&late, &srv.url).await.unwrap_err();
    assert!(
        matches!(err, updhub::child::SyncError::ForeignCluster { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("CA rotation"), "{err}");
    let new_ca = pk.join("ca.crt");
    let (mc, mk) = mint(dir.path(), &old_ca_crt, &old_ca_key, "child");
    for (what, cert, key) in [
        (
            "the late child's",
            late_up.join("link.crt"),
            late_up.join("link.key"),
        ),
        (
            "the child's old",
            kept.join("link.crt"),
            kept.join("link.key"),
        ),
        ("a minted", mc.clone(), mk.clone()),
    ] {
        let c = client_with(&new_ca, &cert, &key);
        let r = c.get(format!("{}v1/published", srv.url)).send().await;
        assert!(
            r.is_err(),
            "{what} certificate of the old CA got an answer: {r:?}"
        );
    }
    assert_eq!(srv.stats.blob_requests.load(Ordering::Relaxed), served);
    assert_eq!(link::list(&parent).unwrap(), links);
    assert_eq!(parent.db.children().unwrap(), reports);
    srv.stop().await;
}

/// A parent that answers over the real link (its server certificate, its client check) but
/// offers `ca` as its CA: a forged rotation.
async fn forging_parent(parent: &Hub, ca: link::CaAnswer) -> (String, Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}/", listener.local_addr().unwrap());
    let acceptor = tokio_rustls::TlsAcceptor::from(parent.keys.server_tls.clone());
    let published = serde_json::to_vec(&parent.db.published().unwrap().unwrap()).unwrap();
    let ca = serde_json::to_vec(&ca).unwrap();
    let renewals = Arc::new(AtomicU64::new(0));
    let counter = renewals.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, published, ca, renewals) = (
                acceptor.clone(),
                published.clone(),
                ca.clone(),
                counter.clone(),
            );
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Some(path) = read_request_path(&mut tls).await else {
                    return;
                };
                let body = match path.as_str() {
                    "/v1/published" => published,
                    "/v1/ca" => ca,
                    "/v1/link/renew" => {
                        renewals.fetch_add(1, Ordering::SeqCst);
                        Vec::new()
                    }
                    _ => b"[]".to_vec(),
                };
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nx-updhub-ca: forged\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = tls.write_all(head.as_bytes()).await;
                let _ = tls.write_all(&body).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (url, renewals)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_ca_the_old_one_did_not_vouch_for_is_refused_and_the_child_keeps_working() {
    let dir = tempfile::tempdir().unwrap();
    let (parent, srv, child) = parent_and_linked_child(dir.path(), "child").await;
    let v1 = parent.db.published().unwrap().unwrap();
    let up = child.data.join("keys/upstream");
    let before: Vec<_> = ["ca.crt", "link.crt", "link.key"]
        .iter()
        .map(|f| std::fs::read(up.join(f)).unwrap())
        .collect();
    let trusted = upstream(&child).ca.current_fp();

    // An attacker's rotation: a CA with the parent's very name, "rotated" by a CA of the
    // attacker's (same name too), so only the signature tells them apart.
    let evil = dir.path().join("evil");
    updhub::keys::generate(&evil, &parent.config.server.name).unwrap();
    updhub::keys::ca::rotate(&evil, parent.id(), &parent.config.server.name, WEEK).unwrap();
    let forged = |cross: bool| link::CaAnswer {
        ca: std::fs::read_to_string(evil.join("ca.crt")).unwrap(),
        cross: cross.then(|| std::fs::read_to_string(evil.join("ca-cross.crt")).unwrap()),
    };
    for (cross, why) in [
        (true, "not vouched for by the old one"),
        (false, "no cross-certificate"),
    ] {
        let (url, renewals) = forging_parent(&parent, forged(cross)).await;
        let base = reqwest::Url::parse(&url).unwrap();
        let err = link::follow_ca(&child, &child.client().unwrap(), &base)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("refused") && err.contains(why), "{err}");
        // A sync through the forging parent still works with what the child trusts, and
        // takes nothing in.
        assert_eq!(sync_once(&child, &url).await.unwrap().number, v1.number);
        assert_eq!(renewals.load(Ordering::SeqCst), 0, "no renewal was asked");
        assert_eq!(upstream(&child).ca.current_fp(), trusted);
        assert!(upstream(&child).ca.overlap.is_none());
        let after: Vec<_> = ["ca.crt", "link.crt", "link.key"]
            .iter()
            .map(|f| std::fs::read(up.join(f)).unwrap())
            .collect();
        assert_eq!(after, before);
        assert!(!up.join("ca-old.crt").exists() && !up.join("ca-cross.crt").exists());
    }
    // And it keeps syncing from its real parent.
    sync_once(&child, &srv.url).await.unwrap();
    assert_eq!(
        link::follow_ca(
            &child,
            &child.client().unwrap(),
            &reqwest::Url::parse(&srv.url).unwrap()
        )
        .await
        .unwrap()
        .learned,
        Learned::Nothing
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_link_cannot_renew_its_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (parent, srv, child) = parent_and_linked_child(dir.path(), "child").await;
    let (parent, srv, _) = rotate(parent, srv, Some(WEEK)).await;
    let before = link_of(&parent, "child");
    assert!(matches!(before.issuer, Some(Issuer::Old { .. })));

    link::remove(&Hub::open(&parent.data).unwrap(), "child")
        .await
        .unwrap();
    tokio::time::sleep(updhub::node::LINKS_EVERY * 2).await;
    child.reset_client();
    let base = reqwest::Url::parse(&srv.url).unwrap();
    let err = link::follow_ca(&child, &child.client().unwrap(), &base)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("the parent's CA"), "{err}");
    // Nothing changed on either side: the link stays removed with its old certificate,
    // the child keeps its old certificate and learned no CA.
    let after = link::list(&parent).unwrap();
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].cert_fp, before.cert_fp);
    assert!(after[0].removed_at.is_some());
    assert!(upstream(&child).ca.overlap.is_none());
    // Nor can it renew in the database, should a connection have got in before the removal.
    let cert = updhub::keys::issue_link_cert(
        &parent.data.join("keys"),
        &updhub::keys::link_request("child").unwrap().1,
        "child",
    )
    .unwrap();
    let fp = updhub::keys::pem_fp(cert.as_bytes()).unwrap();
    let renewed = parent
        .db
        .renew_link(
            "child",
            &before.cert_fp,
            updhub::db::Binding {
                cert_fp: &fp,
                cert: &cert,
                grant_key: None,
            },
        )
        .unwrap();
    assert!(renewed.is_none());
    let err = link::renew(
        &parent,
        "child",
        &before.cert_fp,
        &updhub::keys::link_request("child").unwrap().1,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("no live link") && err.contains("enroll again"),
        "{err}"
    );
    assert_eq!(link::list(&parent).unwrap(), after);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_without_the_new_ca_is_named_until_it_imports_the_keys() {
    let url = new_pg_database();
    let dir = tempfile::tempdir().unwrap();
    let opts = || NodeOpts {
        database: Some(url.clone()),
        ..Default::default()
    };
    let a = node(dir.path(), "a", opts());
    let b = member_of(dir.path(), "b", &a, opts());
    let data = a.data.clone();
    drop(a);
    let r = Hub::open(&data).unwrap().rotate_ca(WEEK).unwrap();
    let a = Hub::open(&data).unwrap();
    a.record_member("ia", "127.0.0.1:1").unwrap();
    b.record_member("ib", "127.0.0.1:2").unwrap();
    let st = a.status().unwrap().ca_rotation.unwrap();
    assert_eq!(
        (st.new_ca, st.members_on_other_ca),
        (r.new_fp, vec!["b".to_owned()])
    );
    let check = a.cluster_check().unwrap();
    let f = check
        .findings
        .iter()
        .find(|f| f.what.contains("cluster CA"))
        .expect("cluster check names the CA difference");
    assert!(
        f.values.contains_key("b") && f.fix.contains("rotate-ca"),
        "{f:?}"
    );

    // b takes the new keys (`keys export` on a, `keys import` on b): named no more, and
    // its node certificate is the new CA's.
    let keys = dir.path().join("exported");
    a.export_keys(&keys).unwrap();
    let bdata = b.data.clone();
    drop(b);
    Hub::open(&bdata).unwrap().import_keys(&keys).unwrap();
    let b = Hub::open(&bdata).unwrap();
    b.record_member("ib", "127.0.0.1:2").unwrap();
    assert!(a
        .status()
        .unwrap()
        .ca_rotation
        .unwrap()
        .members_on_other_ca
        .is_empty());
    assert!(!a
        .cluster_check()
        .unwrap()
        .findings
        .iter()
        .any(|f| f.what.contains("cluster CA")));
    let node =
        updhub::keys::first_cert(&std::fs::read(bdata.join("keys/node.crt")).unwrap()).unwrap();
    assert_eq!(
        b.keys.ca.issuer_of(&node),
        Some(Issuer::Current {
            fp: b.keys.ca.current_fp()
        })
    );
    assert_eq!(b.keys.ca.current_fp(), a.keys.ca.current_fp());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_renewed_through_another_process_is_served_at_once_not_refused_as_a_conflict() {
    let dir = tempfile::tempdir().unwrap();
    let (parent, srv, child) = parent_and_linked_child(dir.path(), "child").await;
    let old_fp = link_of(&parent, "child").cert_fp;
    // The renewal lands through another process on the cluster's database (as it would on
    // another member); the serving node has not re-read the links yet.
    let other = Hub::open(&parent.data).unwrap();
    let up = child.data.join("keys/upstream");
    let csr = updhub::keys::renewal::begin(&up, "child").unwrap();
    let reply = link::renew(&other, "child", &old_fp, &csr).unwrap();
    updhub::keys::renewal::finish(&up, &reply.cert).unwrap();
    child
        .keys
        .upstream
        .as_ref()
        .unwrap()
        .reload(&child.data.join("keys"))
        .unwrap();
    child.reset_client();
    sync_once(&child, &srv.url).await.unwrap();
    let row = link_of(&parent, "child");
    assert_eq!(row.cert_fp, cert_fp_of(&up.join("link.crt")));
    assert_eq!(
        row.refused, None,
        "the renewed certificate was not taken for a forgery"
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_follows_the_ca_rotation_at_its_license_exchange() {
    let dir = tempfile::tempdir().unwrap();
    let parent = zone_node(dir.path(), "parent", &sample_zone());
    let srv = start_with_stations(parent.clone()).await;
    let neighbor = enrolled_peer(dir.path(), "neighbor", &parent, &srv, NodeOpts::default()).await;
    link::exchange_licenses(&neighbor, &srv.url, "parent")
        .await
        .unwrap();

    let (parent, srv, _) = rotate(parent, srv, Some(WEEK)).await;
    link::exchange_licenses(&neighbor, &srv.url, "parent")
        .await
        .unwrap();
    let tls = upstream(&neighbor);
    assert_eq!(tls.ca.current_fp(), parent.keys.ca.current_fp());
    assert_eq!(
        tls.link_issuer,
        Some(Issuer::Current {
            fp: parent.keys.ca.current_fp()
        })
    );
    assert_eq!(
        link_of(&parent, "neighbor").issuer,
        Some(Issuer::Current {
            fp: parent.keys.ca.current_fp()
        })
    );
    // After the overlap it still exchanges, with only the new CA.
    let (parent, srv, cut) = rotate(parent, srv, None).await;
    assert!(cut.is_empty());
    link::exchange_licenses(&neighbor, &srv.url, "parent")
        .await
        .unwrap();
    assert!(upstream(&neighbor).ca.overlap.is_none());
    drop(parent);
    srv.stop().await;
}

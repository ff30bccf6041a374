//! The rules of conservation against a hostile linked node (issue 18, point 1): grant
//! offers crafted as an attacker would, signed with a real linked node's own grant key and
//! sent over its real mutual-TLS link. Each is refused with a message naming the problem,
//! and the receiver's license counts do not move. Each test names the rule the offer would
//! break.

mod common;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use common::*;
use ed25519_dalek::Signer;
use updhub::hub::{add_license_file, Hub};
use updhub::license::chain::Proof;
use updhub::license::ledger::{Donation, SourceStatus};
use updhub::license::{GrantStatus, GrantToken, LicenseKey, GRANT_FORMAT};
use updhub::link;

fn donation(to: &str, count: u32, days: i64, source: Option<&str>) -> Donation {
    Donation {
        to: to.into(),
        count,
        until: Utc::now() + chrono::Duration::days(days),
        source: source.map(str::to_owned),
        request_id: hex::encode(rand::random::<[u8; 8]>()),
    }
}

/// The key a node signs its grants with (its cluster key), as its admin holds it.
fn grant_key(hub: &Hub) -> ed25519_dalek::SigningKey {
    let pem = std::fs::read_to_string(hub.data.join("keys/cluster.key")).unwrap();
    ed25519_dalek::pkcs8::DecodePrivateKey::from_pkcs8_pem(&pem).unwrap()
}

fn key_doc(path: &std::path::Path) -> LicenseKey {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// A grant token as a donor would fill it, unsigned.
fn token(donor: &str, receiver: &str, count: u32, days: i64, proof: Proof) -> GrantToken {
    let (source, parent_grant) = match &proof {
        Proof::Key(k) => (k.key_id.clone(), None),
        Proof::Grant(g) => (g.grant_id.clone(), Some(g.grant_id.clone())),
    };
    GrantToken {
        format: GRANT_FORMAT.into(),
        grant_id: GrantToken::new_id(),
        donor: donor.into(),
        receiver: receiver.into(),
        count,
        not_after: Utc::now() + chrono::Duration::days(days),
        source,
        parent_grant,
        revision: 1,
        status: GrantStatus::Active,
        receiver_key: None,
        proof: Some(proof),
        key: String::new(),
        signature: String::new(),
    }
}

/// A token of format 1 (no chain), signed as the schema says: ten lines.
fn format_1(t: &mut GrantToken, key: &ed25519_dalek::SigningKey) {
    t.format = "updhub-grant/1".into();
    t.proof = None;
    t.receiver_key = None;
    let text = format!(
        "{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\nActive",
        t.format,
        t.grant_id,
        t.donor,
        t.receiver,
        t.count,
        t.not_after.timestamp(),
        t.source,
        t.parent_grant.as_deref().unwrap_or("-"),
        t.revision
    );
    t.key = hex::encode(key.verifying_key().as_bytes());
    t.signature = hex::encode(key.sign(text.as_bytes()).to_bytes());
}

/// Offer `tokens` to the node at `url` with `client` (the attacker's real link).
async fn offer(client: &reqwest::Client, url: &str, tokens: &[GrantToken]) -> (u16, String) {
    let r = client
        .post(format!("{url}/v1/licenses/offered"))
        .body(serde_json::to_string(tokens).unwrap())
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn counts(hub: &Hub) -> Vec<SourceStatus> {
    hub.ledger.status(Duration::from_secs(3600)).unwrap()
}

fn free(hub: &Hub) -> u64 {
    counts(hub).iter().map(|s| s.free).sum()
}

/// hq (key K1, 50 stations, serving) and a neighbor linked to it as a peer (its own key K2,
/// 10 stations), holding a grant of 10 licenses of K1 from hq.
async fn hq_and_peer(
    dir: &std::path::Path,
    skew: Option<Duration>,
) -> (
    Arc<Hub>,
    Running,
    Arc<Hub>,
    GrantToken,
    ed25519_dalek::SigningKey,
) {
    let iss = issuer();
    let zone = sample_zone();
    let hq = node(
        dir,
        "hq",
        NodeOpts {
            zone: Some(&zone),
            issuers: vec![issuer_hex(&iss)],
            skew,
            ..Default::default()
        },
    );
    mirror_and_publish(&hq).await;
    add_license_file(&hq, &key_file(dir, &iss, "K1", 50, 365))
        .await
        .unwrap();
    let srv = start_with_stations(hq.clone()).await;
    let neighbor = enrolled_peer(
        dir,
        "neighbor",
        &hq,
        &srv,
        NodeOpts {
            issuers: vec![issuer_hex(&iss)],
            skew,
            ..Default::default()
        },
    )
    .await;
    add_license_file(&neighbor, &key_file(dir, &iss, "K2", 10, 365))
        .await
        .unwrap();
    let g1 = hq
        .ledger
        .donate(donation("neighbor", 10, 30, None), |id| hq.knows_server(id))
        .await
        .unwrap();
    link::exchange_licenses(&neighbor, &srv.url, "hq")
        .await
        .unwrap();
    assert_eq!(source(&neighbor, &g1.grant_id).total, 10);
    (hq, srv, neighbor, g1, iss)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_cannot_offer_licenses_from_nothing_from_the_receivers_own_key_or_under_bad_ids() {
    let dir = tempfile::tempdir().unwrap();
    let (hq, srv, neighbor, g1, _) = hq_and_peer(dir.path(), None).await;
    let nk = grant_key(&neighbor);
    let hq_key = hex::encode(hq.keys.verifying.as_bytes());
    let client = neighbor.client().unwrap();
    let k1 = key_doc(&dir.path().join("K1.json"));
    let k2 = key_doc(&dir.path().join("K2.json"));
    let before = counts(&hq);
    assert_eq!(free(&hq), 40);
    let signed = |mut t: GrantToken| {
        t.receiver_key = Some(hq_key.clone());
        t.sign(&nk);
        t
    };
    let refused = |code: u16, text: &str, want: u16, says: &[&str]| {
        assert_eq!(code, want, "{text}");
        for s in says {
            assert!(text.contains(s), "expected {s:?} in: {text}");
        }
        assert_eq!(counts(&hq), before, "the receiver's counts moved: {text}");
    };

    // 1. Format downgrade (rule: only the current format, which proves its chain): one
    //    token of format 1, no proof, 4,294,967,295 licenses "from nothing".
    let mut t = token("neighbor", "hq", u32::MAX, 30, Proof::Key(k2.clone()));
    t.source = "nothing".into();
    format_1(&mut t, &nk);
    let (code, text) = offer(&client, &srv.url, &[t]).await;
    refused(code, &text, 400, &["updhub-grant/1", "no downgrade"]);

    // 2. A grant carved from the receiver's own key (rule: never a key the receiver holds;
    //    every chain ends at a key held by the first donor's cluster). The neighbor holds
    //    K1's signed file: it travels in the proof of its grant from hq.
    let t = signed(token("neighbor", "hq", 50, 30, Proof::Key(k1.clone())));
    let (code, text) = offer(&client, &srv.url, &[t]).await;
    refused(
        code,
        &text,
        400,
        &["license key K1", "this cluster holds itself"],
    );

    // 3. A grant carved from a grant the receiver issued (rule: never a grant the receiver
    //    issued: licenses come back only by a revocation or a return).
    let t = signed(token(
        "neighbor",
        "hq",
        5,
        10,
        Proof::Grant(Box::new(g1.clone())),
    ));
    let (code, text) = offer(&client, &srv.url, &[t]).await;
    refused(
        code,
        &text,
        400,
        &[&g1.grant_id, "donated by this cluster itself"],
    );

    // 4. Ids outside ^g-[0-9a-f]{16}$ (rule: schema-valid ids): a line feed that would split
    //    rows of `license status`, 10,000 characters, Unicode.
    for id in [
        "g-0123456789abcdef\nK1 key 1000000 0 0 1000000".to_owned(),
        format!("g-{}", "a".repeat(10_000)),
        "g-0123456789abcdéf".to_owned(),
    ] {
        let mut t = token("neighbor", "hq", 3, 10, Proof::Key(k2.clone()));
        t.grant_id = id;
        let t = signed(t);
        let (code, text) = offer(&client, &srv.url, &[t]).await;
        refused(code, &text, 400, &["16 lowercase hex digits"]);
        assert!(
            !text.contains("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
            "{text}"
        );
    }

    // 5. An id equal to one of the receiver's own outgoing grants (rule: unique ids; a grant
    //    the receiver issued is never received back), on an otherwise good chain.
    let mut t = token("neighbor", "hq", 3, 10, Proof::Key(k2.clone()));
    t.grant_id = g1.grant_id.clone();
    let (code, text) = offer(&client, &srv.url, &[signed(t)]).await;
    refused(code, &text, 400, &["a grant this cluster donated itself"]);

    // 6. The same id twice in one offer (rule: unique ids: the second would be applied over
    //    the first unchecked).
    let t = signed(token("neighbor", "hq", 3, 10, Proof::Key(k2.clone())));
    let (code, text) = offer(&client, &srv.url, &[t.clone(), t]).await;
    refused(code, &text, 400, &["appears twice"]);

    // Other mutations, refused as before: a count above the key, an end after it, a grant
    // for another receiver, a middle link re-signed (its proof no longer matches).
    let t = signed(token("neighbor", "hq", 11, 10, Proof::Key(k2.clone())));
    let (code, text) = offer(&client, &srv.url, &[t]).await;
    refused(code, &text, 400, &["the key only 10"]);
    let t = signed(token("neighbor", "hq", 3, 400, Proof::Key(k2.clone())));
    let (code, text) = offer(&client, &srv.url, &[t]).await;
    refused(code, &text, 400, &["after the key"]);
    let t = signed(token(
        "neighbor",
        "elsewhere",
        3,
        10,
        Proof::Key(k2.clone()),
    ));
    let (code, text) = offer(&client, &srv.url, &[t]).await;
    refused(code, &text, 400, &["it is for server elsewhere"]);
    // The middle link: hq's grant to the neighbor said 40, re-signed with the neighbor's key
    // (the only one it has), and 30 carved from it.
    let mut inner = g1.clone();
    inner.count = 40;
    inner.sign(&nk);
    let t = signed(token(
        "neighbor",
        "hq",
        30,
        10,
        Proof::Grant(Box::new(inner)),
    ));
    let (code, text) = offer(&client, &srv.url, &[t]).await;
    refused(code, &text, 400, &["donated by this cluster itself"]);

    // A good grant of the neighbor's own key is taken: the route works, and the counts move
    // by exactly that grant.
    let good = signed(token("neighbor", "hq", 3, 10, Proof::Key(k2.clone())));
    let (code, text) = offer(&client, &srv.url, std::slice::from_ref(&good)).await;
    assert_eq!(code, 200, "{text}");
    assert_eq!(source(&hq, &good.grant_id).total, 3);
    assert_eq!(free(&hq), 43);
    assert_conserved(&hq);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_link_may_not_donate_to_its_parent() {
    // The first finding: a plain child offered one token of format 1 "from nothing"
    // of 4,294,967,295 licenses, signed with its own link key, and its parent counted them.
    // Rule: only a link allowed to donate that way (a child link carries licenses down).
    let dir = tempfile::tempdir().unwrap();
    let parent = licensed_parent(dir.path()).await;
    let srv = start_with_stations(parent.clone()).await;
    let child = enrolled(dir.path(), "c1", &parent, &srv).await;
    updhub::child::sync_once(&child, &srv.url).await.unwrap();
    let before = counts(&parent);
    let ck = grant_key(&child);
    let k1 = key_doc(&dir.path().join("K1.json"));
    let mut t = token("c1", "parent", u32::MAX, 30, Proof::Key(k1));
    t.source = "nothing".into();
    format_1(&mut t, &ck);
    let client = child.client().unwrap();
    let (code, text) = offer(&client, &srv.url, &[t]).await;
    assert_eq!(code, 403, "{text}");
    assert!(
        text.contains("c1 is linked to this cluster as a child")
            && text.contains("carries licenses down only"),
        "{text}"
    );
    assert_eq!(counts(&parent), before);
    assert_eq!(free(&parent), 10);
    // A child of the previous release offers its empty list with every sync: still fine.
    let (code, text) = offer(&client, &srv.url, &[]).await;
    assert_eq!(code, 200, "{text}");
    // The child does not take its parent for a receiver either.
    assert!(!child.knows_server("parent"));
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_is_carved_only_by_the_cluster_that_holds_it() {
    // The second finding, at a node that does not hold the key itself: v (a child
    // of the parent holding K1) passes 4 of its 6 licenses of K1 on to a, its peer. a then
    // holds K1's signed file (inside its grant's proof) and carves 10 licenses straight from
    // it. Rule: every chain ends at a key held by the first donor's cluster; v learned from
    // its own grant that K1 is held by the parent's cluster.
    let dir = tempfile::tempdir().unwrap();
    let parent = licensed_parent(dir.path()).await;
    let psrv = start_with_stations(parent.clone()).await;
    let v = enrolled(dir.path(), "v", &parent, &psrv).await;
    updhub::child::sync_once(&v, &psrv.url).await.unwrap();
    let g1 = parent
        .ledger
        .donate(donation("v", 6, 30, None), |id| parent.knows_server(id))
        .await
        .unwrap();
    updhub::child::sync_once(&v, &psrv.url).await.unwrap();
    let vsrv = start_with_stations(v.clone()).await;
    let a = enrolled_peer(dir.path(), "a", &v, &vsrv, NodeOpts::default()).await;
    let g2 = v
        .ledger
        .donate(donation("a", 4, 20, Some(g1.grant_id.as_str())), |id| {
            v.knows_server(id)
        })
        .await
        .unwrap();
    link::exchange_licenses(&a, &vsrv.url, "v").await.unwrap();
    assert_eq!(source(&a, &g2.grant_id).total, 4);
    let before = counts(&v);
    let ak = grant_key(&a);
    let v_key = hex::encode(v.keys.verifying.as_bytes());
    let client = a.client().unwrap();
    let stored: GrantToken =
        serde_json::from_str(&v.ledger.raw_token(&g2.grant_id).unwrap().unwrap()).unwrap();
    let k1 = match stored.proof.as_ref().unwrap() {
        Proof::Grant(g) => match g.proof.as_ref().unwrap() {
            Proof::Key(k) => k.clone(),
            Proof::Grant(_) => panic!("K1 above g1"),
        },
        Proof::Key(_) => panic!("g1 above g2"),
    };

    // A grant carved straight from K1, signed by a (the key-carved grant).
    let mut t = token("a", "v", 10, 10, Proof::Key(k1.clone()));
    t.receiver_key = Some(v_key.clone());
    t.sign(&ak);
    let (code, text) = offer(&client, &vsrv.url, &[t]).await;
    assert_eq!(code, 400, "{text}");
    assert!(
        text.contains("license key K1")
            && text.contains("held by the cluster of parent")
            && text.contains("carved from another's key"),
        "{text}"
    );
    assert_eq!(counts(&v), before);

    // The same with a forged first link that claims the parent donated K1 to a: v knows the
    // parent's grant key (it enrolled with it), and the link is signed with a's.
    let mut first = token("parent", "a", 10, 10, Proof::Key(k1));
    first.receiver_key = Some(hex::encode(ak.verifying_key().as_bytes()));
    first.sign(&ak);
    let mut t = token("a", "v", 10, 10, Proof::Grant(Box::new(first)));
    t.receiver_key = Some(v_key);
    t.sign(&ak);
    let (code, text) = offer(&client, &vsrv.url, &[t]).await;
    assert_eq!(code, 400, "{text}");
    assert!(
        text.contains("names parent as its donor") && text.contains("forged"),
        "{text}"
    );
    assert_eq!(counts(&v), before);
    assert_conserved(&v);
    vsrv.stop().await;
    psrv.stop().await;
}

/// Store `t` as received, as a build with the older rules did: straight into the ledger.
async fn received_under_old_rules(hub: &Hub, t: &GrantToken) {
    let t = t.clone();
    let margin = hub.ledger.margin();
    let ledger = hub.db.cluster_id().to_string();
    hub.ledger
        .write(move |c, now| {
            updhub::db::license_sources::insert_received_grant(
                c,
                &ledger,
                &updhub::db::license_sources::NewReceivedGrant {
                    grant_id: &t.grant_id,
                    donor: &t.donor,
                    count: t.count,
                    now,
                    not_after: t.not_after,
                    usable_until: (t.not_after - margin).timestamp(),
                    revision: t.revision,
                    document: &serde_json::to_string(&t).unwrap(),
                },
            )?;
            Ok(())
        })
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_taken_under_the_old_rules_are_flagged_and_stop_counting_when_the_node_starts() {
    let dir = tempfile::tempdir().unwrap();
    let (hq, srv, neighbor, _, _) = hq_and_peer(dir.path(), None).await;
    let nk = grant_key(&neighbor);
    let hq_key = hex::encode(hq.keys.verifying.as_bytes());
    let k1 = key_doc(&dir.path().join("K1.json"));
    let k2 = key_doc(&dir.path().join("K2.json"));
    // A good grant of the neighbor's own key, taken by the offer route.
    let mut good = token("neighbor", "hq", 3, 10, Proof::Key(k2));
    good.receiver_key = Some(hq_key.clone());
    good.sign(&nk);
    let (code, text) = offer(
        &neighbor.client().unwrap(),
        &srv.url,
        std::slice::from_ref(&good),
    )
    .await;
    assert_eq!(code, 200, "{text}");
    // What the previous release took: a format-1 grant "from nothing", and one carved from
    // hq's own key.
    let mut nothing = token(
        "neighbor",
        "hq",
        1000,
        30,
        Proof::Key(key_doc(&dir.path().join("K1.json"))),
    );
    nothing.source = "nothing".into();
    format_1(&mut nothing, &nk);
    let mut own = token("neighbor", "hq", 50, 30, Proof::Key(k1));
    own.receiver_key = Some(hq_key);
    own.sign(&nk);
    received_under_old_rules(&hq, &nothing).await;
    received_under_old_rules(&hq, &own).await;
    assert_eq!(free(&hq), 40 + 3 + 1000 + 50);
    // A station holds one of the licenses.
    let stations = srv.stations_url.clone().unwrap();
    let (code, body) = register(&station_client(&hq), &stations, "ws-1").await;
    assert_eq!(code, 200, "{body}");

    // The node restarts on the new release: before serving, every received grant is
    // checked against the rules.
    srv.stop().await;
    let srv = start_with_stations(hq.clone()).await;
    wait_for("the check at start", || {
        hq.ledger.flagged_grants().unwrap().len() == 2
    })
    .await;
    assert_eq!(source(&hq, &nothing.grant_id).status, "revoked");
    assert_eq!(source(&hq, &own.grant_id).status, "revoked");
    assert_eq!(source(&hq, &good.grant_id).status, "active");
    assert_eq!(
        free(&hq),
        40 + 3 - 1,
        "the station moved to a source that counts"
    );
    assert_conserved(&hq);
    let log = hq.ledger.log().unwrap();
    for g in [&nothing.grant_id, &own.grant_id] {
        assert!(
            log.iter()
                .any(|l| l.event == "grant_flagged" && &l.subject == g),
            "no audit row for {g}"
        );
    }
    let status = hq.status().unwrap();
    let flags: Vec<_> = status
        .license_flags
        .iter()
        .map(|f| (f.grant_id.clone(), f.reason.clone()))
        .collect();
    assert_eq!(flags.len(), 2, "{flags:?}");
    assert!(
        flags
            .iter()
            .any(|(g, r)| *g == nothing.grant_id && r.contains("no downgrade")),
        "{flags:?}"
    );
    assert!(
        flags
            .iter()
            .any(|(g, r)| *g == own.grant_id && r.contains("this cluster holds itself")),
        "{flags:?}"
    );
    // Checking again changes nothing.
    assert!(hq.ledger.check_received_grants().await.unwrap().is_empty());
    assert_eq!(hq.ledger.flagged_grants().unwrap().len(), 2);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_link_revokes_the_grants_out_frees_them_after_the_margin_and_stops_those_in() {
    let dir = tempfile::tempdir().unwrap();
    let skew = Some(Duration::from_secs(1));
    let (hq, srv, neighbor, g1, _) = hq_and_peer(dir.path(), skew).await;
    // A short grant out too, and one the neighbor donated to hq.
    let short = hq
        .ledger
        .donate(
            Donation {
                until: Utc::now() + chrono::Duration::seconds(4),
                ..donation("neighbor", 5, 1, None)
            },
            |id| hq.knows_server(id),
        )
        .await
        .unwrap();
    let back = neighbor
        .ledger
        .donate(donation("hq", 3, 10, None), |id| neighbor.knows_server(id))
        .await
        .unwrap();
    link::exchange_licenses(&neighbor, &srv.url, "hq")
        .await
        .unwrap();
    assert_eq!(source(&hq, &back.grant_id).total, 3);
    assert_eq!(source(&hq, "K1").donated, 15);

    let removed = link::remove(&hq, "neighbor").await.unwrap();
    let out: Vec<_> = removed
        .grants
        .out
        .iter()
        .map(|(g, n, at)| (g.clone(), *n, *at))
        .collect();
    assert_eq!(out.len(), 2, "{out:?}");
    for (g, n, end) in [
        (&g1.grant_id, 10, g1.not_after),
        (&short.grant_id, 5, short.not_after),
    ] {
        assert!(
            out.contains(&(g.clone(), n, end + chrono::Duration::seconds(1))),
            "{g}: {out:?}"
        );
    }
    assert_eq!(removed.grants.stopped, vec![(back.grant_id.clone(), 3)]);
    // The grants from the neighbor stopped counting; those out still count until the
    // neighbor can no longer use them.
    assert_eq!(source(&hq, &back.grant_id).status, "revoked");
    assert_eq!(source(&hq, &back.grant_id).free, 0);
    assert_eq!(source(&hq, "K1").donated, 15);
    let log = hq.ledger.log().unwrap();
    assert!(log.iter().any(|l| l.event == "grant_revoke_requested"
        && l.subject == g1.grant_id
        && l.details.contains("link of neighbor was removed")));
    assert!(log
        .iter()
        .any(|l| l.event == "grant_stopped_link_removed" && l.subject == back.grant_id));

    // Past the short grant's end plus the margin, the sweep frees it, with its row.
    let free_at = short.not_after + chrono::Duration::seconds(1);
    tokio::time::sleep(
        (free_at - Utc::now()).to_std().unwrap_or_default() + Duration::from_millis(300),
    )
    .await;
    hq.ledger.sweep_expiry().await.unwrap();
    assert_eq!(source(&hq, "K1").donated, 10);
    assert!(hq
        .ledger
        .log()
        .unwrap()
        .iter()
        .any(|l| l.event == "grant_expired" && l.subject == short.grant_id));
    assert_conserved(&hq);
    srv.stop().await;
}

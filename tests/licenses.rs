//! Station licenses: keys, stations, and time-limited donations between servers over real
//! mutual TLS; conservation under concurrency; expiry across downtime; revoke, return, renew.

mod common;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use common::*;
use updhub::child::sync_once;
use updhub::hub::{add_license_file, Hub};
use updhub::license::ledger::Donation;
use updhub::license::LicenseError;

fn donation(to: &str, count: u32, until: chrono::DateTime<Utc>, source: Option<&str>) -> Donation {
    Donation {
        to: to.into(),
        count,
        until,
        source: source.map(str::to_owned),
        request_id: hex::encode(rand::random::<[u8; 8]>()),
    }
}

async fn donate(hub: &Hub, d: Donation) -> Result<updhub::license::GrantToken, LicenseError> {
    hub.ledger
        .donate(d, |id| hub.db.knows_server(id).unwrap())
        .await
}

/// A parent with a published version and a key of `stations` licenses, serving.
async fn donor(
    dir: &std::path::Path,
    stations: u32,
    skew: Option<Duration>,
) -> (Arc<Hub>, Running, ed25519_dalek::SigningKey) {
    let iss = issuer();
    let zone = sample_zone();
    let hub = node(
        dir,
        "donor",
        NodeOpts {
            zone: Some(&zone),
            issuers: vec![issuer_hex(&iss)],
            skew,
            ..Default::default()
        },
    );
    mirror_and_publish(&hub).await;
    add_license_file(&hub, &key_file(dir, &iss, "K1", stations, 365))
        .await
        .unwrap();
    let srv = start_with_stations(hub.clone()).await;
    (hub, srv, iss)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn donations_flow_from_parent_to_child_to_grandchild() {
    let dir = tempfile::tempdir().unwrap();
    let (parent, psrv, _) = donor(dir.path(), 20, None).await;
    let child = child_of(dir.path(), "child", &parent, None);
    sync_once(&child, &psrv.url).await.unwrap();
    let until = Utc::now() + chrono::Duration::days(1);
    let g1 = donate(&parent, donation("child", 10, until, None))
        .await
        .unwrap();
    assert_eq!((g1.count, g1.source.as_str()), (10, "K1"));
    let r = sync_once(&child, &psrv.url).await.unwrap();
    assert_eq!(r.grants, 1, "the sync fetched the grant");
    let got = source(&child, &g1.grant_id);
    assert_eq!((got.total, got.free, got.not_after), (10, 10, g1.not_after));
    assert_eq!(
        got.usable_until,
        g1.not_after - chrono::Duration::minutes(5),
        "counted until end - skew margin"
    );

    // The child serves its own child and donates on from what it received.
    let csrv = start(child.clone()).await;
    let grandchild = child_with(dir.path(), "grandchild", &child, NodeOpts::default());
    sync_once(&grandchild, &csrv.url).await.unwrap();
    let err = donate(
        &child,
        donation("grandchild", 11, got.usable_until, Some(&g1.grant_id)),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("has 10 free licenses"), "{err}");
    let err = donate(
        &child,
        donation(
            "grandchild",
            4,
            until + chrono::Duration::hours(1),
            Some(&g1.grant_id),
        ),
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string().contains("can only be counted on until"),
        "{err}"
    );
    let g2 = donate(
        &child,
        donation("grandchild", 4, got.usable_until, Some(&g1.grant_id)),
    )
    .await
    .unwrap();
    assert_eq!(g2.parent_grant.as_deref(), Some(g1.grant_id.as_str()));
    sync_once(&grandchild, &csrv.url).await.unwrap();
    let gg = source(&grandchild, &g2.grant_id);
    assert_eq!((gg.total, gg.not_after), (4, got.usable_until));

    // The grandchild admits stations up to its grant and refuses the next with the reason.
    let gsrv = start_with_stations(grandchild.clone()).await;
    let stations = gsrv.stations_url.clone().unwrap();
    let client = station_client(&grandchild);
    for i in 0..4 {
        let (status, body) = register(&client, &stations, &format!("ws-{i}")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["license"], g2.grant_id.as_str());
    }
    let (status, body) = register(&client, &stations, "ws-4").await;
    assert_eq!(status, 409);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("no free station license"),
        "{body}"
    );
    // A station that registers again keeps its license and takes no other.
    let (status, body) = register(&client, &stations, "ws-0").await;
    assert_eq!((status, body["new"].as_bool()), (200, Some(false)));
    // Heartbeats need the station's own credentials; a stranger's secret is refused.
    let beat = |secret: &str| {
        client
            .post(format!("{stations}v1/stations/heartbeat"))
            .json(&serde_json::json!({"station": "ws-1", "secret": secret}))
            .send()
    };
    assert_eq!(
        beat("secret-of-ws-1-0123456789").await.unwrap().status(),
        200
    );
    assert_eq!(beat("not-the-secret-of-ws-1").await.unwrap().status(), 404);
    let (status, body) =
        register_with(&client, &stations, "ws-1", "another-secret-0123456789").await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("other credentials"),
        "{body}"
    );

    // Each level counts what it holds.
    let k = source(&parent, "K1");
    assert_eq!((k.total, k.donated, k.free), (20, 10, 10));
    let c = source(&child, &g1.grant_id);
    assert_eq!((c.donated, c.free), (4, 6));
    let g = source(&grandchild, &g2.grant_id);
    assert_eq!((g.used, g.free), (4, 0));
    assert_eq!(grandchild.ledger.stations().unwrap().len(), 4);
    for h in [&parent, &child, &grandchild] {
        assert_conserved(h);
    }
    // Stations not seen within station_ttl are purged and free their license.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let swept = grandchild
        .ledger
        .sweep(Duration::from_millis(1))
        .await
        .unwrap();
    assert_eq!(swept.stations_purged, 4);
    assert_eq!(source(&grandchild, &g2.grant_id).free, 4);
    assert!(grandchild
        .ledger
        .log()
        .unwrap()
        .iter()
        .any(|l| l.event == "station_purged"));
    gsrv.stop().await;
    csrv.stop().await;
    psrv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_donations_and_registrations_never_exceed_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let (parent, psrv, _) = donor(dir.path(), 300, None).await;
    let child = child_of(dir.path(), "child", &parent, None);
    sync_once(&child, &psrv.url).await.unwrap();
    let stations = psrv.stations_url.clone().unwrap();
    let client = station_client(&parent);
    let until = Utc::now() + chrono::Duration::days(1);
    for round in 0..2 {
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..1000 {
            let parent = parent.clone();
            let client = client.clone();
            let stations = stations.clone();
            tasks.spawn(async move {
                if i % 2 == 0 {
                    let (status, body) =
                        register(&client, &stations, &format!("r{round}-ws-{i}")).await;
                    match status {
                        200 => Ok(true),
                        409 => {
                            assert!(
                                body["error"]
                                    .as_str()
                                    .unwrap()
                                    .contains("no free station license"),
                                "{body}"
                            );
                            Ok(false)
                        }
                        s => Err(format!("station answered {s}: {body}")),
                    }
                } else {
                    match donate(&parent, donation("child", 1, until, None)).await {
                        Ok(_) => Ok(true),
                        Err(LicenseError::Refused(_)) => Ok(false),
                        Err(e) => Err(e.to_string()),
                    }
                }
            });
        }
        let mut granted = 0u64;
        let mut answered = 0;
        while let Some(r) = tasks.join_next().await {
            answered += 1;
            if r.unwrap().unwrap() {
                granted += 1;
            }
        }
        assert_eq!(answered, 1000, "no request lost");
        // Checked after every run: the key is exactly used up, never exceeded.
        let k = source(&parent, "K1");
        assert_eq!(k.used + k.donated, 300, "{k:?}");
        let stations_now = parent.ledger.stations().unwrap().len() as u64;
        let grants_now = parent
            .ledger
            .grants(Duration::from_secs(1))
            .unwrap()
            .outgoing
            .len() as u64;
        assert_eq!((k.used, k.donated), (stations_now, grants_now));
        if round == 0 {
            assert_eq!(granted, 300, "every license was handed out exactly once");
        } else {
            assert_eq!(granted, 0, "nothing is left in the second round");
        }
        assert_conserved(&parent);
    }
    // Retried requests allocate nothing twice: the same station, the same donation request.
    let (status, body) = register(&client, &stations, "r0-ws-0").await;
    assert!(status == 200 || status == 409, "{body}");
    let d = Donation {
        request_id: "fixed-id".into(),
        ..donation("child", 1, until, None)
    };
    let before = source(&parent, "K1");
    let _ = donate(&parent, d.clone()).await;
    let _ = donate(&parent, d).await;
    assert_eq!(source(&parent, "K1").donated, before.donated);
    psrv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_return_and_renew_change_both_sides() {
    let dir = tempfile::tempdir().unwrap();
    let (parent, psrv, _) = donor(dir.path(), 20, None).await;
    let child = child_of(dir.path(), "child", &parent, None);
    sync_once(&child, &psrv.url).await.unwrap();
    let hour = Utc::now() + chrono::Duration::hours(1);

    // Renew: a later end on both sides.
    let g = donate(&parent, donation("child", 5, hour, None))
        .await
        .unwrap();
    sync_once(&child, &psrv.url).await.unwrap();
    let later = hour + chrono::Duration::hours(1);
    let renewed = parent
        .ledger
        .renew(g.grant_id.clone(), later)
        .await
        .unwrap();
    assert_eq!(renewed.revision, 2);
    sync_once(&child, &psrv.url).await.unwrap();
    assert_eq!(source(&child, &g.grant_id).not_after, renewed.not_after);
    let err = parent
        .ledger
        .renew(g.grant_id.clone(), hour)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("renew only extends"), "{err}");

    // Revoke: the donor keeps counting until the receiver stops, then has them back.
    parent.ledger.revoke(g.grant_id.clone()).await.unwrap();
    assert_eq!(
        source(&parent, "K1").donated,
        5,
        "still counted until the receiver acknowledges"
    );
    sync_once(&child, &psrv.url).await.unwrap();
    let c = source(&child, &g.grant_id);
    assert_eq!((c.status.as_str(), c.free), ("revoked", 0));
    assert_eq!(source(&parent, "K1").donated, 0);
    let out = parent
        .ledger
        .grants(Duration::from_secs(1))
        .unwrap()
        .outgoing;
    assert_eq!(
        out.iter()
            .find(|o| o.grant_id == g.grant_id)
            .unwrap()
            .status,
        "revoked"
    );
    // Once acknowledged, a revoked grant is no longer sent on every sync.
    let pending = parent.ledger.tokens_for("child").unwrap();
    assert!(
        pending.iter().all(|t| t.grant_id != g.grant_id),
        "{pending:?}"
    );

    // Return: the receiver gives one back early.
    let g3 = donate(&parent, donation("child", 3, hour, None))
        .await
        .unwrap();
    sync_once(&child, &psrv.url).await.unwrap();
    assert_eq!(source(&parent, "K1").donated, 3);
    let mut cfg = updhub::config::Config::load(&child.data).unwrap();
    cfg.upstream.parent = Some(psrv.url.clone());
    drop(child);
    let child = Hub::open_with(&dir.path().join("child"), cfg).unwrap();
    assert!(updhub::license::api::return_grant(
        &child.ledger,
        &child.keys,
        child.config.upstream.parent.as_deref(),
        &g3.grant_id,
    )
    .await
    .unwrap());
    assert_eq!(source(&child, &g3.grant_id).status, "returned");
    assert_eq!(source(&parent, "K1").donated, 0);
    let err = updhub::license::api::return_grant(
        &child.ledger,
        &child.keys,
        child.config.upstream.parent.as_deref(),
        "g-0000000000000000",
    )
    .await
    .unwrap_err();
    assert!(matches!(err, LicenseError::NotFound(_)), "{err}");
    // Everything is in both audit trails.
    assert_logged(
        &parent,
        &[
            "grant_created",
            "grant_renewed",
            "grant_revoke_requested",
            "grant_revoked",
            "grant_returned",
        ],
    );
    assert_logged(
        &child,
        &[
            "grant_received",
            "grant_renewal_received",
            "grant_revoked_by_donor",
            "grant_return_started",
            "grant_returned",
        ],
    );
    psrv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_expiring_while_the_donor_is_down_stops_on_time_and_comes_back_on_restart() {
    let dir = tempfile::tempdir().unwrap();
    let skew = Some(Duration::from_secs(2));
    let (parent, psrv, _) = donor(dir.path(), 10, skew).await;
    let child = child_with(
        dir.path(),
        "child",
        &parent,
        NodeOpts {
            skew,
            ..Default::default()
        },
    );
    sync_once(&child, &psrv.url).await.unwrap();
    let end = Utc::now() + chrono::Duration::seconds(8);
    let g = donate(&parent, donation("child", 2, end, None))
        .await
        .unwrap();
    sync_once(&child, &psrv.url).await.unwrap();
    let csrv = start_with_stations(child.clone()).await;
    let client = station_client(&child);
    let stations = csrv.stations_url.clone().unwrap();
    assert_eq!(register(&client, &stations, "ws-a").await.0, 200);

    // The donor goes down.
    psrv.stop().await;
    let parent_data = parent.data.clone();
    drop(parent);
    // The receiver keeps its station while the grant lasts, then stops counting it at
    // end - margin, whether or not the donor is there to say so.
    assert_eq!(source(&child, &g.grant_id).used, 1);
    let stop_at = g.not_after - chrono::Duration::seconds(2);
    tokio::time::sleep(
        (stop_at - Utc::now()).to_std().unwrap_or_default() + Duration::from_millis(300),
    )
    .await;
    let (status, body) = register(&client, &stations, "ws-b").await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(source(&child, &g.grant_id).free, 0);
    wait_for("the receiver's sweep to drop the grant", || {
        source(&child, &g.grant_id).status == "expired"
    })
    .await;
    assert!(
        child.ledger.stations().unwrap().is_empty(),
        "the station lost its license with the grant"
    );

    // The donor still counts it (it was down), and gets it back on restart before serving.
    let reopened = Arc::new(Hub::open(&parent_data).unwrap());
    assert_eq!(source(&reopened, "K1").donated, 2);
    let reclaim_at = g.not_after + chrono::Duration::seconds(2);
    tokio::time::sleep(
        (reclaim_at - Utc::now()).to_std().unwrap_or_default() + Duration::from_millis(300),
    )
    .await;
    let psrv = start(reopened.clone()).await;
    wait_for("the donor's start sweep", || {
        source(&reopened, "K1").donated == 0
    })
    .await;
    assert!(reopened
        .ledger
        .log()
        .unwrap()
        .iter()
        .any(|l| l.event == "grant_expired" && l.subject == g.grant_id));
    assert_conserved(&reopened);
    assert_conserved(&child);
    psrv.stop().await;
    csrv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_license_input_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (parent, psrv, iss) = donor(dir.path(), 10, None).await;
    let child = child_of(dir.path(), "child", &parent, None);
    sync_once(&child, &psrv.url).await.unwrap();
    let log_len = || parent.ledger.log().unwrap().len();
    let state = || parent.ledger.status(Duration::from_secs(1)).unwrap();
    let (before_log, before) = (log_len(), state());

    // A key with a bad signature, an expired key, the same key twice, an untrusted issuer.
    let mut k: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("K1.json")).unwrap()).unwrap();
    k["key_id"] = "K2".into();
    let forged = dir.path().join("forged.json");
    std::fs::write(&forged, k.to_string()).unwrap();
    let expired = dir.path().join("expired.json");
    let now = Utc::now();
    let ek = updhub::license::LicenseKey::issue(
        &iss,
        "K3",
        "x",
        5,
        now - chrono::Duration::days(9),
        now - chrono::Duration::days(1),
    );
    std::fs::write(&expired, serde_json::to_vec(&ek).unwrap()).unwrap();
    let stranger = key_file(dir.path(), &issuer(), "K4", 5, 10);
    for (file, expect) in [
        (forged, "does not verify"),
        (expired, "expired"),
        (dir.path().join("K1.json"), "already added"),
        (stranger, "not trusted"),
        (dir.path().join("missing.json"), "cannot be read"),
    ] {
        let err = add_license_file(&parent, &file)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains(expect), "{file:?}: {err}");
    }
    // Donations: more than free, to an unknown server, a past period, past the key's end,
    // from an unknown key.
    let day = now + chrono::Duration::days(1);
    for (d, expect) in [
        (
            donation("child", 11, day, Some("K1")),
            "has 10 free licenses",
        ),
        (
            donation("child", 11, day, None),
            "no key or received grant has 11 free",
        ),
        (donation("nobody", 1, day, None), "unknown here"),
        (
            donation("child", 1, now - chrono::Duration::hours(1), None),
            "in the past",
        ),
        (
            donation("child", 1, now + chrono::Duration::days(400), Some("K1")),
            "can only be counted on until",
        ),
        (
            donation("child", 1, day, Some("K9")),
            "no license key or received grant 'K9'",
        ),
        (donation("child", 0, day, None), "at least 1"),
        (donation("donor", 1, day, None), "itself"),
    ] {
        let err = donate(&parent, d).await.unwrap_err().to_string();
        assert!(err.contains(expect), "{expect}: {err}");
    }
    // Grants: an unknown id, renewing past its source.
    let err = parent
        .ledger
        .renew("g-0123456789abcdef".into(), day)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("no grant g-0123456789abcdef"), "{err}");
    let err = parent
        .ledger
        .revoke("g-0123456789abcdef".into())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("no grant"), "{err}");
    assert_eq!(
        (log_len(), state()),
        (before_log, before),
        "nothing changed"
    );

    // A key that is not valid yet can be added, but neither donated from nor used.
    let fut = updhub::license::LicenseKey::issue(
        &iss,
        "FUT",
        "x",
        5,
        now + chrono::Duration::days(10),
        now + chrono::Duration::days(100),
    );
    parent.ledger.add_key(fut).await.unwrap();
    let err = donate(&parent, donation("child", 1, day, Some("FUT")))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("not valid before"), "{err}");
    assert_eq!(source(&parent, "FUT").free, 0);

    // Renewing a sub-grant past the grant it is carved from is refused.
    let g = donate(&parent, donation("child", 4, day, None))
        .await
        .unwrap();
    sync_once(&child, &psrv.url).await.unwrap();
    let csrv = start(child.clone()).await;
    let gc = child_of(dir.path(), "gc", &child, None);
    sync_once(&gc, &csrv.url).await.unwrap();
    let usable = source(&child, &g.grant_id).usable_until;
    let sub = donate(
        &child,
        donation(
            "gc",
            2,
            usable - chrono::Duration::hours(1),
            Some(&g.grant_id),
        ),
    )
    .await
    .unwrap();
    let err = child
        .ledger
        .renew(sub.grant_id.clone(), day + chrono::Duration::days(1))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot run past"), "{err}");
    // The append-only log cannot be rewritten, even by hand.
    let db = &parent.db;
    assert!(db.exec_raw("DELETE FROM license_log").is_err());
    assert!(db.exec_raw("UPDATE license_log SET event='x'").is_err());
    // Nor can conservation be broken by hand.
    let err = db
        .exec_raw("UPDATE license_sources SET donated = count + 1 WHERE source_id='K1'")
        .unwrap_err();
    assert!(err.to_string().contains("conservation"), "{err}");
    csrv.stop().await;
    psrv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciliation_flags_a_receiver_that_counts_more_than_it_was_given() {
    let dir = tempfile::tempdir().unwrap();
    let (parent, psrv, _) = donor(dir.path(), 20, None).await;
    let child = child_of(dir.path(), "child", &parent, None);
    sync_once(&child, &psrv.url).await.unwrap();
    let until = Utc::now() + chrono::Duration::days(1);
    let g = donate(&parent, donation("child", 10, until, None))
        .await
        .unwrap();
    sync_once(&child, &psrv.url).await.unwrap();
    let csrv = start_with_stations(child.clone()).await;
    let stations = csrv.stations_url.clone().unwrap();
    for s in ["ws-1", "ws-2", "ws-3"] {
        let (status, body) = register(&station_client(&child), &stations, s).await;
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(source(&child, &g.grant_id).used, 3);

    // The next sync reports what the child counts: the donor sees it, and all is well.
    sync_once(&child, &psrv.url).await.unwrap();
    let view = parent.ledger.grants(Duration::from_secs(3600)).unwrap();
    let out = view
        .outgoing
        .iter()
        .find(|o| o.grant_id == g.grant_id)
        .unwrap();
    let r = out.reported.as_ref().expect("the child reported the grant");
    assert_eq!((r.count, r.counted), (10, 3));
    assert!(view.mismatches.is_empty(), "{:?}", view.mismatches);

    // A receiver that malfunctions (or lies) reports more than it was given, and a grant
    // it was never given: both are flagged, in `license grants` and in `status`.
    let client = updhub::peer::upstream_client(&child.keys).unwrap();
    let forged = serde_json::json!({
        "root": null, "number": null, "hub_version": "x", "config_digest": "x", "chain": [],
        "grants": [
            {"grant_id": g.grant_id, "count": 10, "counted": 12},
            {"grant_id": "g-never", "count": 5, "counted": 5},
        ],
    });
    let resp = client
        .post(format!("{}v1/report", psrv.url))
        .json(&forged)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    let view = parent.ledger.grants(Duration::from_secs(3600)).unwrap();
    assert_eq!(view.mismatches.len(), 2, "{:?}", view.mismatches);
    assert!(
        view.mismatches[0].contains("child counts 12 licenses from grant"),
        "{:?}",
        view.mismatches
    );
    assert!(
        view.mismatches[1].contains("g-never") && view.mismatches[1].contains("never gave it"),
        "{:?}",
        view.mismatches
    );
    assert_eq!(parent.status().unwrap().license_mismatches, view.mismatches);
    // The next honest report clears them.
    sync_once(&child, &psrv.url).await.unwrap();
    let view = parent.ledger.grants(Duration::from_secs(3600)).unwrap();
    assert!(view.mismatches.is_empty(), "{:?}", view.mismatches);

    // A revocation: the sync that brings it reports after the child took it in (its three
    // stations no longer count the grant), so there is no false alarm.
    parent.ledger.revoke(g.grant_id.clone()).await.unwrap();
    sync_once(&child, &psrv.url).await.unwrap();
    let view = parent.ledger.grants(Duration::from_secs(3600)).unwrap();
    let out = view
        .outgoing
        .iter()
        .find(|o| o.grant_id == g.grant_id)
        .unwrap();
    assert_eq!(out.status, "revoked");
    assert_eq!(out.reported.as_ref().map(|r| r.counted), Some(0));
    assert!(view.mismatches.is_empty(), "{:?}", view.mismatches);
    csrv.stop().await;
    psrv.stop().await;
}

/// Add the demo license key shipped in mirror/licenses/ (as `serve` does on its first run).
async fn add_demo_key(hub: &Hub) -> Result<updhub::license::LicenseKey, updhub::error::Error> {
    updhub::hub::add_license_bytes(hub, updhub::hub::DEMO_LICENSE, "demo-license.json").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_node_trusts_no_issuer_until_told_and_a_serving_node_takes_the_change_without_a_restart(
) {
    let dir = tempfile::tempdir().unwrap();
    let n = node(dir.path(), "n", NodeOpts::default());
    assert!(n.config.licenses.issuers.is_empty());
    let srv = start(n.clone()).await;
    let iss = issuer();
    let hex = issuer_hex(&iss);
    let key = key_file(dir.path(), &iss, "K-OWN", 5, 30);

    // Any key is refused, naming its issuer and the fix.
    let err = add_license_file(&n, &key).await.unwrap_err().to_string();
    assert!(
        err.contains("not trusted")
            && err.contains(&hex)
            && err.contains("trusts no license issuer")
            && err.contains(&format!("updhub config set licenses.issuers '[\"{hex}\"]'"))
            && err.contains("updhub.toml"),
        "{err}"
    );
    // The demo key too, as the demo: not for production.
    let demo = updhub::config::DEMO_ISSUER.trim();
    let err = add_demo_key(&n).await.unwrap_err().to_string();
    assert!(
        err.contains("demo-license.json")
            && err.contains(demo)
            && err.contains("demo issuer")
            && err.contains("not for production"),
        "{err}"
    );
    assert!(n.ledger.status(Duration::from_secs(1)).unwrap().is_empty());
    assert!(!n.status().unwrap().demo_issuer_trusted);

    // `config set` from another process (here another handle on the same data folder):
    // the serving node applies it with no restart and takes the key.
    let admin = Hub::open(&n.data).unwrap();
    admin
        .set_shared_setting("licenses.issuers", &format!("[\"{hex}\"]"))
        .unwrap();
    wait_for("the serving node to apply licenses.issuers", || {
        n.live().licenses.issuers == [hex.clone()]
    })
    .await;
    add_license_file(&n, &key).await.unwrap();
    assert_eq!(source(&n, "K-OWN").total, 5);
    // Still no demo: trusting one issuer trusts no other.
    let err = add_demo_key(&n).await.unwrap_err().to_string();
    assert!(
        err.contains("holds 1 other issuer(s)")
            && err.contains(&format!("'[\"{hex}\",\"{demo}\"]'")),
        "{err}"
    );
    // Trusting the demo issuer on purpose takes the demo key, and status says so.
    admin
        .set_shared_setting("licenses.issuers", &format!("[\"{hex}\",\"{demo}\"]"))
        .unwrap();
    wait_for("the serving node to trust the demo issuer", || {
        n.live().trusts_demo_issuer()
    })
    .await;
    add_demo_key(&n).await.unwrap();
    assert_eq!(source(&n, "DEMO-0001").total, 50);
    assert!(n.status().unwrap().demo_issuer_trusted);
    srv.stop().await;
}

#[tokio::test]
async fn an_issuer_in_updhub_toml_is_trusted_by_the_next_command() {
    let dir = tempfile::tempdir().unwrap();
    let n = node(dir.path(), "n", NodeOpts::default());
    let iss = issuer();
    let key = key_file(dir.path(), &iss, "K-TOML", 3, 30);
    let err = add_license_file(&n, &key).await.unwrap_err().to_string();
    assert!(err.contains("not trusted"), "{err}");
    let data = n.data.clone();
    drop(n);
    // What the fix says: licenses.issuers in updhub.toml; a command reads it at start.
    let path = data.join("updhub.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("issuers = []"), "{text}");
    std::fs::write(
        &path,
        text.replace(
            "issuers = []",
            &format!("issuers = [\"{}\"]", issuer_hex(&iss)),
        ),
    )
    .unwrap();
    let n = Hub::open(&data).unwrap();
    add_license_file(&n, &key).await.unwrap();
    assert_eq!(source(&n, "K-TOML").total, 3);
    assert!(!n.status().unwrap().demo_issuer_trusted);
}

/// `GET /v1/licenses/grants{query}` on `url` as `hub` (its interserver client, mutual TLS):
/// the status and the JSON answer.
async fn fetch_grants(hub: &Hub, url: &str, query: &str) -> (u16, serde_json::Value) {
    let client = updhub::peer::upstream_client(&hub.keys).unwrap();
    let r = client
        .get(format!("{url}v1/licenses/grants{query}"))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// The grant ids of an answer's tokens.
fn ids(tokens: &serde_json::Value) -> Vec<String> {
    tokens
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["grant_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_fetches_only_the_grants_changed_since_its_cursor_and_in_full_when_it_cannot_trust_it(
) {
    const GRANTS: usize = 40;
    let dir = tempfile::tempdir().unwrap();
    let (parent, psrv, _) = donor(dir.path(), 200, None).await;
    let child = child_of(dir.path(), "child", &parent, None);
    sync_once(&child, &psrv.url).await.unwrap();
    let until = Utc::now() + chrono::Duration::days(1);
    let mut grants = Vec::new();
    for _ in 0..GRANTS {
        grants.push(
            donate(&parent, donation("child", 2, until, None))
                .await
                .unwrap(),
        );
    }
    let sync = || async { sync_once(&child, &psrv.url).await.unwrap().grants };
    assert_eq!(sync().await, GRANTS, "the grants made since the first sync");
    assert_eq!(sync().await, 0, "nothing changed: nothing sent");

    // A renewal and a new grant after the cursor: those two, and both are applied.
    let renewed = parent
        .ledger
        .renew(
            grants[3].grant_id.clone(),
            until + chrono::Duration::hours(1),
        )
        .await
        .unwrap();
    let extra = donate(&parent, donation("child", 1, until, None))
        .await
        .unwrap();
    assert_eq!(sync().await, 2);
    assert_eq!(
        source(&child, &grants[3].grant_id).not_after,
        renewed.not_after
    );
    assert_eq!(source(&child, &extra.grant_id).total, 1);

    // A revocation is sent with every fetch until the receiver acknowledges it.
    let revoked = &grants[5].grant_id;
    parent.ledger.revoke(revoked.clone()).await.unwrap();
    let cursor = child.ledger.grant_cursor(&psrv.url).unwrap().unwrap();
    for _ in 0..2 {
        let (status, body) = fetch_grants(&child, &psrv.url, &format!("?since={cursor}")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["full"], false);
        assert_eq!(
            ids(&body["tokens"]),
            std::slice::from_ref(revoked),
            "{body}"
        );
        assert_eq!(body["tokens"][0]["status"], "revoked");
        assert_ne!(body["cursor"], cursor.as_str(), "the revocation moved it");
    }
    assert_eq!(sync().await, 1, "the sync that acknowledges it");
    assert_eq!(source(&child, revoked).status, "revoked");
    assert_eq!(source(&parent, "K1").donated, 2 * GRANTS as u64 + 1 - 2);
    assert_eq!(sync().await, 0, "acknowledged: no longer sent");
    let active = GRANTS; // 40 - 1 revoked + 1 extra

    // Without `since`, today's answer: the array of every grant to act on.
    let (status, body) = fetch_grants(&child, &psrv.url, "").await;
    assert_eq!((status, body.as_array().map(Vec::len)), (200, Some(active)));
    // `since=` (a receiver without a cursor): all of them, with a cursor.
    let (status, body) = fetch_grants(&child, &psrv.url, "?since=").await;
    assert_eq!((status, &body["full"]), (200, &serde_json::json!(true)));
    assert_eq!(ids(&body["tokens"]).len(), active);
    assert_eq!(body["donor"], parent.db.cluster_id().as_str());

    // The cursor is kept in the receiver's database: a restart goes on from it.
    let data = child.data.clone();
    drop(child);
    let child = Arc::new(Hub::open(&data).unwrap());
    let sync = || async { sync_once(&child, &psrv.url).await.unwrap().grants };
    assert_eq!(
        sync().await,
        0,
        "a restarted receiver fetches nothing again"
    );
    // A lost cursor: one full answer, then only changes again.
    child.db.exec_raw("DELETE FROM grant_cursors").unwrap();
    assert_eq!(sync().await, active);
    assert_eq!(sync().await, 0);
    // The donor's ledger in another epoch (a node started serving on it, as after a restore
    // from a backup or onto another database): one full answer.
    parent.ledger.new_feed_epoch().await.unwrap();
    assert_eq!(sync().await, active);
    assert_eq!(sync().await, 0);

    // A cursor of another epoch, or ahead of the ledger: the full answer.
    let cursor = child.ledger.grant_cursor(&psrv.url).unwrap().unwrap();
    let (epoch, _) = cursor.split_once('.').unwrap();
    for other in [format!("{epoch}.999999"), format!("{}.1", "0".repeat(32))] {
        let (status, body) = fetch_grants(&child, &psrv.url, &format!("?since={other}")).await;
        assert_eq!((status, &body["full"]), (200, &serde_json::json!(true)));
        assert_eq!(ids(&body["tokens"]).len(), active, "{other}");
        assert_eq!(body["cursor"], cursor.as_str());
    }
    // A malformed one: refused, naming it and the fix.
    let (status, body) = fetch_grants(&child, &psrv.url, "?since=not-a-cursor").await;
    assert_eq!(status, 400);
    let e = body["error"].as_str().unwrap();
    assert!(
        e.contains("not-a-cursor") && e.contains("`since=` (empty)"),
        "{e}"
    );
    psrv.stop().await;
}

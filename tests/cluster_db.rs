//! Several nodes on one PostgreSQL database form one cluster: they share the license
//! ledger (keys, stations, grants, the audit log), record themselves as members, and are
//! compared by `cluster check`. Needs a PostgreSQL server (`UPDHUB_TEST_PG_URL`, which
//! `.ci/run` starts); without one each test says so and returns.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use updhub::db::{Db, Member};
use updhub::id::ServerId;
use updhub::Hub;

/// The schema number this build migrates to: the count of schemas/postgres/*.sql.
const SCHEMA: i64 = 18;

/// Three members of one cluster: shared keys (copied from the first), one database, a
/// license issuer they all trust.
fn three_members(
    dir: &Path,
    url: &str,
    iss: &ed25519_dalek::SigningKey,
) -> (Arc<Hub>, Arc<Hub>, Arc<Hub>) {
    fn opts<'a>(
        keys: Option<&'a Path>,
        url: &str,
        iss: &ed25519_dalek::SigningKey,
    ) -> NodeOpts<'a> {
        NodeOpts {
            keys_from: keys,
            issuers: vec![issuer_hex(iss)],
            database: Some(url.to_owned()),
            ..Default::default()
        }
    }
    let a = node(dir, "a", opts(None, url, iss));
    let keys = dir.join("cluster-keys");
    updhub::keys::copy_shared(&a.data.join("keys"), &keys).unwrap();
    let b = node(dir, "b", opts(Some(&keys), url, iss));
    let c = node(dir, "c", opts(Some(&keys), url, iss));
    (a, b, c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_added_on_one_member_licenses_stations_on_all_and_a_thousand_registrations_never_exceed_it(
) {
    let url = new_pg_database();
    let dir = tempfile::tempdir().unwrap();
    let iss = issuer();
    let (a, b, c) = three_members(dir.path(), &url, &iss);
    assert_eq!(a.db.cluster_id(), b.db.cluster_id());
    assert_eq!(b.db.cluster_id(), c.db.cluster_id());
    // Added on A, seen on B and C at once: no restart.
    let key = key_file(dir.path(), &iss, "K-SHARED", 600, 30);
    updhub::hub::add_license_file(&a, &key).await.unwrap();
    for n in [&b, &c] {
        assert_eq!(source(n, "K-SHARED").total, 600, "on {}", n.id());
    }
    // The same key again, on another member: refused, naming where it already is.
    let err = updhub::hub::add_license_file(&b, &key)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("already added to this cluster (by node a at"),
        "{err}"
    );

    let servers = [
        start_with_stations(a.clone()).await,
        start_with_stations(b.clone()).await,
        start_with_stations(c.clone()).await,
    ];
    let client = station_client(&a);
    // 1,000 registrations at once, spread over the three members, for 600 licenses.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..1000 {
        let client = client.clone();
        let url = servers[i % 3].stations_url.clone().unwrap();
        tasks.spawn(async move {
            let (status, body) = register(&client, &url, &format!("ws-{i}")).await;
            match status {
                200 => true,
                409 => {
                    let e = body["error"].as_str().unwrap_or_default().to_owned();
                    assert!(e.contains("no free station license"), "{body}");
                    false
                }
                s => panic!("station answered {s}: {body}"),
            }
        });
    }
    let mut admitted = 0;
    while let Some(r) = tasks.join_next().await {
        admitted += usize::from(r.unwrap());
    }
    assert_eq!(admitted, 600, "exactly the key's licenses are handed out");
    for n in [&a, &b, &c] {
        let s = source(n, "K-SHARED");
        assert_eq!((s.used, s.free), (600, 0), "on {}", n.id());
        assert_eq!(n.ledger.stations().unwrap().len(), 600);
        assert_conserved(n);
    }
    // A station registered on A reports in on B and keeps its license.
    let on_a = servers[0].stations_url.clone().unwrap();
    let (status, body) = register(&client, &on_a, "roaming").await;
    assert_eq!(status, 409, "the key is full: {body}");
    let (status, _) = register(&client, &on_a, "ws-0").await;
    let beat = client
        .post(format!(
            "{}v1/stations/heartbeat",
            servers[1].stations_url.clone().unwrap()
        ))
        .json(&serde_json::json!({"station": "ws-0", "secret": "secret-of-ws-0-0123456789"}))
        .send()
        .await
        .unwrap();
    assert_eq!((status, beat.status().as_u16()), (200, 200));
    // The audit log is the cluster's too, and each row names the node that wrote it.
    let log = c.ledger.log().unwrap();
    let added = log.iter().find(|r| r.event == "key_added").unwrap();
    assert_eq!(added.node_id, "a");
    for s in servers {
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_starting_at_once_on_an_empty_database_migrate_it_once() {
    let url = new_pg_database();
    let barrier = Arc::new(std::sync::Barrier::new(3));
    let handles: Vec<_> = ["m1", "m2", "m3"]
        .into_iter()
        .map(|id| {
            let (url, barrier) = (url.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                Db::open_postgres(&url, ServerId::new(id).unwrap())
                    .map(|db| db.cluster_id().to_string())
            })
        })
        .collect();
    let ids: Vec<String> = handles
        .into_iter()
        .map(|h| h.join().unwrap().unwrap())
        .collect();
    // One of them made the database and named the cluster; the others joined it.
    assert!(ids.iter().all(|i| *i == ids[0]), "{ids:?}");
    let db = Db::open_postgres(&url, ServerId::new("m4").unwrap()).unwrap();
    assert_eq!(db.cluster_id().as_str(), ids[0]);
    // The schema this build knows: one per migration file of schemas/postgres/.
    assert_eq!(db.schema_known(), SCHEMA);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_with_a_newer_or_foreign_schema_is_refused_with_the_fix() {
    let url = new_pg_database();
    let db = Db::open_postgres(&url, ServerId::new("n1").unwrap()).unwrap();
    db.exec_raw("UPDATE meta SET value='0000' WHERE key='schema_digest'")
        .unwrap();
    let err = Db::open_postgres(&url, ServerId::new("n1").unwrap())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("development build"), "{err}");
    db.exec_raw("UPDATE meta SET value='99' WHERE key='schema_version'")
        .unwrap();
    let err = Db::open_postgres(&url, ServerId::new("n1").unwrap())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("schema 99"), "{err}");
    assert!(err.contains("upgrade this node"), "{err}");
    // The URL's password never shows in a message.
    assert!(!err.contains(&password(&url)), "{err}");
}

fn password(url: &str) -> String {
    let after = url.split_once("://").unwrap().1;
    let userinfo = after.split_once('@').unwrap().0;
    userinfo.split_once(':').unwrap().1.to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_live_node_with_the_same_id_is_refused_naming_the_first() {
    let url = new_pg_database();
    let dir = tempfile::tempdir().unwrap();
    let iss = issuer();
    let (a, _, _) = three_members(dir.path(), &url, &iss);
    let srv = start(a.clone()).await;
    wait_for("a's membership row", || {
        a.db.members().unwrap().iter().any(|m| m.node_id == "a")
    })
    .await;
    // Another data folder claiming id "a" on the same database.
    let twin = node(
        &dir.path().join("elsewhere"),
        "a",
        NodeOpts {
            keys_from: Some(&a.data.join("keys")),
            database: Some(url.clone()),
            ..Default::default()
        },
    );
    let err = twin
        .record_member("other-process", "127.0.0.1:9")
        .unwrap_err()
        .to_string();
    assert!(err.contains("node id a is in use"), "{err}");
    assert!(
        err.contains(srv.url.trim_start_matches("https://").trim_end_matches('/')),
        "{err}"
    );
    srv.stop().await;
}

/// Record `m` for `hub`'s database as a member row, as a node of another build would.
fn record(hub: &Hub, m: &Member) {
    hub.db
        .record_member(m, Duration::from_secs(20))
        .unwrap()
        .unwrap();
}

fn me(hub: &Hub) -> Member {
    hub.member("test", chrono::Utc::now(), "127.0.0.1:1")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_check_is_green_for_equal_members_and_names_each_kind_of_difference() {
    let url = new_pg_database();
    let dir = tempfile::tempdir().unwrap();
    let iss = issuer();
    let (a, b, c) = three_members(dir.path(), &url, &iss);
    for n in [&a, &b, &c] {
        record(n, &me(n));
    }
    let check = a.cluster_check().unwrap();
    assert!(check.ok(), "{check:?}");
    assert_eq!(check.alive, ["a", "b", "c"]);

    let finding = |m: Member| {
        record(&c, &m);
        let check = a.cluster_check().unwrap();
        record(&c, &me(&c));
        assert_eq!(check.findings.len(), 1, "{check:?}");
        check.findings[0].clone()
    };
    // Each kind of mismatch, one at a time, on node c.
    let mut m = me(&c);
    m.updhub_version = "0.0.9".into();
    let f = finding(m);
    assert_eq!(f.what, "updhub version");
    assert_eq!(f.values["c"], "0.0.9");
    assert!(f.fix.contains("same updhub version"));

    let mut cfg = updhub::config::Config::load(&c.data).unwrap();
    cfg.licenses.station_ttl = Duration::from_secs(7200);
    let drifted = Hub::open_with(&c.data, cfg).unwrap();
    let f = finding(me(&drifted));
    assert_eq!(f.what, "setting licenses.station_ttl");
    assert!(f.fix.contains("updhub config set licenses.station_ttl"));
    drop(drifted);

    let mut cfg = updhub::config::Config::load(&c.data).unwrap();
    cfg.server.name = "other.example".into();
    let renamed = Hub::open_with(&c.data, cfg).unwrap();
    // The name is a [same] setting and its own check: both name it.
    record(&c, &me(&renamed));
    let check = a.cluster_check().unwrap();
    record(&c, &me(&c));
    let what: Vec<&str> = check.findings.iter().map(|f| f.what.as_str()).collect();
    assert!(what.contains(&"server name"), "{what:?}");
    drop(renamed);

    let mut m = me(&c);
    m.key_fp = "0123456789abcdef".into();
    assert_eq!(finding(m).what, "publisher key (fingerprint)");
    let mut m = me(&c);
    m.ca_fp = "0123456789abcdef".into();
    assert_eq!(finding(m).what, "cluster CA certificate (fingerprint)");
    let mut m = me(&c);
    m.active_root = Some("f".repeat(64));
    assert_eq!(finding(m).what, "repository root");

    // Green again once c is back in line; a member not heard from is left out.
    assert!(a.cluster_check().unwrap().ok());
    // b's last record five minutes ago by the database's clock (the row's time is the
    // database's, whatever the writer says).
    let mut old = me(&b);
    old.key_fp = "stale".into();
    let ago = chrono::Utc::now() - chrono::Duration::minutes(5);
    b.db.pin_clock_ms(Some(ago.timestamp_millis()));
    record(&b, &old);
    b.db.pin_clock_ms(None);
    let check = a.cluster_check().unwrap();
    assert!(check.ok(), "{check:?}");
    assert_eq!(check.gone, ["b"]);
}

/// A node of an older updhub: it made the database at schema 3 and stays connected until
/// told to stop.
fn older_node_on(url: &str) -> (std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/postgres");
    let old: Vec<String> = ["001-core.sql", "002-licenses.sql", "003-clock.sql"]
        .iter()
        .map(|f| std::fs::read_to_string(dir.join(f)).unwrap())
        .collect();
    let digest = blake3::hash(old.concat().as_bytes()).to_hex().to_string();
    let mut cfg: tokio_postgres::Config = url.parse().unwrap();
    cfg.application_name("updhub 0.0.9 old-node");
    let (stop, wait) = std::sync::mpsc::channel::<()>();
    let (ready_tx, ready) = std::sync::mpsc::channel::<()>();
    let h = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let client = rt.block_on(async {
            let (client, conn) = cfg.connect(tokio_postgres::NoTls).await.unwrap();
            tokio::spawn(conn);
            for sql in &old {
                client.batch_execute(sql).await.unwrap();
            }
            client
                .execute(
                    "INSERT INTO meta(key, value) VALUES ('schema_version', '3'), ('updhub_version', '0.0.9'), ('schema_digest', $1)",
                    &[&digest],
                )
                .await
                .unwrap();
            client
        });
        ready_tx.send(()).unwrap();
        let _ = wait.recv();
        drop(client);
    });
    ready.recv().unwrap();
    (stop, h)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_never_upgrades_a_shared_database_under_older_nodes_but_db_upgrade_does() {
    let url = new_pg_database();
    let (stop, old) = older_node_on(&url);
    let err = Db::open_postgres(&url, ServerId::new("new-node").unwrap())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("has schema 3"), "{err}");
    assert!(err.contains("old-node (updhub 0.0.9)"), "{err}");
    assert!(err.contains("updhub db upgrade"), "{err}");
    // On purpose: the admin upgrades the running cluster's database.
    let loc = updhub::db::Location::Postgres(url.clone());
    let (found, now, db) = Db::upgrade_at(&loc, ServerId::new("new-node").unwrap()).unwrap();
    assert_eq!((found, now), (3, SCHEMA));
    assert!(
        db.members().unwrap().is_empty(),
        "schema 4 and 5 tables are there"
    );
    // Again: nothing to do.
    let (found, now, _) = Db::upgrade_at(&loc, ServerId::new("new-node").unwrap()).unwrap();
    assert_eq!((found, now), (SCHEMA, SCHEMA));
    stop.send(()).unwrap();
    old.join().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_setting_changed_on_one_member_is_applied_on_the_others_without_a_restart() {
    let url = new_pg_database();
    let dir = tempfile::tempdir().unwrap();
    let iss = issuer();
    let (a, b, c) = three_members(dir.path(), &url, &iss);
    let servers = [
        start(a.clone()).await,
        start(b.clone()).await,
        start(c.clone()).await,
    ];
    let two_hours = Duration::from_secs(7200);
    assert_ne!(b.live().licenses.station_ttl, two_hours);
    let rev = a.set_shared_setting("licenses.station_ttl", "2h").unwrap();
    assert_eq!(a.live().licenses.station_ttl, two_hours);
    // The running members pick it up by themselves (they poll the revision).
    wait_for("b and c to apply the new station_ttl", || {
        b.live().licenses.station_ttl == two_hours && c.live().licenses.station_ttl == two_hours
    })
    .await;
    // updhub.toml is left as it was: the cluster's value is applied over it.
    assert_ne!(b.config.licenses.station_ttl, two_hours);
    // Every member's row shows it, so the cluster stays consistent.
    wait_for("the membership rows to show it", || {
        a.db.members()
            .unwrap()
            .iter()
            .all(|m| m.settings.contains("\"licenses.station_ttl\":7200"))
    })
    .await;
    assert!(a.cluster_check().unwrap().ok());

    // Bad input changes nothing and says what is wrong.
    let err = a
        .set_shared_setting("server.listen", "0.0.0.0:1")
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a setting the cluster shares"), "{err}");
    let err = a
        .set_shared_setting("licenses.station_ttl", "soon")
        .unwrap_err()
        .to_string();
    assert!(err.contains("licenses.station_ttl"), "{err}");
    let err = a
        .set_shared_setting("licenses.skew_margin", "30days")
        .unwrap_err()
        .to_string();
    assert!(err.contains("shorter than licenses.station_ttl"), "{err}");
    assert_eq!(a.db.settings_revision().unwrap(), rev);

    // A node that starts later opens with the cluster's value.
    let d = node(
        dir.path(),
        "d",
        NodeOpts {
            keys_from: Some(&a.data.join("keys")),
            database: Some(url.clone()),
            ..Default::default()
        },
    );
    assert_eq!(d.live().licenses.station_ttl, two_hours);
    for s in servers {
        s.stop().await;
    }
}

/// A donation of one license to `to`, for a day.
fn one_license_to(to: &str, n: usize) -> updhub::license::ledger::Donation {
    updhub::license::ledger::Donation {
        to: to.into(),
        count: 1,
        until: chrono::Utc::now() + chrono::Duration::days(1),
        source: None,
        request_id: format!("feed-{to}-{n}-{}", rand::random::<u32>()),
    }
}

/// What a receiver holds after applying answers: each grant's latest revision and status.
type Held = std::collections::BTreeMap<String, (u64, String)>;

/// Apply an answer's tokens to `held` as a receiver does: a token counts when it is newer
/// than what is held.
fn apply(held: &mut Held, tokens: &[String]) {
    for t in tokens {
        let v: serde_json::Value = serde_json::from_str(t).unwrap();
        let id = v["grant_id"].as_str().unwrap().to_owned();
        let rev = v["revision"].as_u64().unwrap();
        let status = v["status"].as_str().unwrap().to_owned();
        if held.get(&id).is_none_or(|h| h.0 < rev) {
            held.insert(id, (rev, status));
        }
    }
}

/// Fetch `receiver`'s feed from `hub` after `since`, apply it to `held`; the next cursor.
fn fetch_and_apply(
    hub: &Hub,
    receiver: &str,
    since: &updhub::license::feed::Since,
    held: &mut Held,
) -> updhub::license::feed::GrantCursor {
    let feed = hub
        .ledger
        .grant_feed(receiver, since)
        .unwrap()
        .expect("the ledger has an epoch");
    apply(held, &feed.tokens);
    feed.cursor
}

/// Run SQL on the test server's database `url` on a plain connection of its own.
async fn pg_value(url: &str, sql: &str) -> i64 {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client.query_one(sql, &[]).await.unwrap().get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_change_waiting_for_another_members_open_change_is_numbered_after_it_and_neither_is_skipped(
) {
    use updhub::license::feed::Since;
    let url = new_pg_database();
    let dir = tempfile::tempdir().unwrap();
    let iss = issuer();
    let (a, b, _) = three_members(dir.path(), &url, &iss);
    let key = key_file(dir.path(), &iss, "K-FEED", 100, 30);
    updhub::hub::add_license_file(&a, &key).await.unwrap();
    let known = |_: &str| true;
    let g1 = a
        .ledger
        .donate(one_license_to("r1", 1), known)
        .await
        .unwrap();
    let g2 = b
        .ledger
        .donate(one_license_to("r1", 2), known)
        .await
        .unwrap();
    a.ledger.ensure_feed_epoch().await.unwrap();
    let mut held = Held::new();
    let start = fetch_and_apply(&a, "r1", &Since::Start, &mut held);
    assert_eq!((start.seq, held.len()), (2, 2));

    // Member A's batch changes g1 (its trigger numbers the change 3 and holds r1's counter)
    // and stays open.
    let cluster = a.db.cluster_id().to_string();
    let (changed_tx, changed) = std::sync::mpsc::channel();
    let (commit_tx, commit) = std::sync::mpsc::channel::<()>();
    let commit = std::sync::Mutex::new(commit);
    let id1 = g1.grant_id.clone();
    let a2 = a.clone();
    let open = tokio::spawn(async move {
        a2.ledger
            .write(move |c, _| {
                c.exec(
            "UPDATE grants SET updated = updated + 1 WHERE server_id = $1 AND grant_id = $2",
            updhub::db::sql::args![cluster, id1],
        )?;
                let _ = changed_tx.send(());
                let _ = commit.lock().unwrap().recv();
                Ok(())
            })
            .await
    });
    tokio::task::spawn_blocking(move || changed.recv().unwrap())
        .await
        .unwrap();
    // Member B renews g2 meanwhile: its change waits for A's counter lock.
    let b2 = b.clone();
    let id2 = g2.grant_id.clone();
    let renew = tokio::spawn(async move {
        b2.ledger
            .renew(id2, chrono::Utc::now() + chrono::Duration::days(2))
            .await
    });
    while pg_value(
        &url,
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
    )
    .await
        == 0
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A reader now sees neither change: its cursor does not pass A's open one.
    let mid = fetch_and_apply(&a, "r1", &Since::After(start.clone()), &mut held);
    assert_eq!(mid, start, "no change is visible while the first is open");
    // A commits; then B's change is numbered after it, and the next fetch has both.
    commit_tx.send(()).unwrap();
    open.await.unwrap().unwrap();
    let renewed = renew.await.unwrap().unwrap();
    let end = fetch_and_apply(&a, "r1", &Since::After(mid), &mut held);
    assert_eq!(end.seq, 4, "A's change is 3, B's 4");
    let seqs: Vec<i64> = {
        let mut v = Vec::new();
        for g in [&g1.grant_id, &g2.grant_id] {
            v.push(
                pg_value(
                    &url,
                    &format!("SELECT seq FROM grant_changes WHERE grant_id = '{g}'"),
                )
                .await,
            );
        }
        v
    };
    assert_eq!(seqs, [3, 4]);
    assert_eq!(held[&g2.grant_id].0, u64::from(renewed.revision));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_fetching_while_two_members_change_grants_at_once_ends_with_the_donors_state() {
    use updhub::license::feed::Since;
    let url = new_pg_database();
    const GRANTS: usize = 40;
    const CHANGES: usize = 120;
    let dir = tempfile::tempdir().unwrap();
    let iss = issuer();
    let (a, b, c) = three_members(dir.path(), &url, &iss);
    let key = key_file(dir.path(), &iss, "K-FEED", 10_000, 30);
    updhub::hub::add_license_file(&a, &key).await.unwrap();
    let known = |_: &str| true;
    let mut ids = Vec::new();
    for n in 0..GRANTS {
        let m = if n % 2 == 0 { &a } else { &b };
        ids.push(
            m.ledger
                .donate(one_license_to("r1", n), known)
                .await
                .unwrap()
                .grant_id,
        );
    }
    c.ledger.ensure_feed_epoch().await.unwrap();
    let ids = Arc::new(ids);
    // The writers: on each member, several tasks at once (so batches fill), each change one
    // of: renew a grant to r1, revoke one, donate a new one to r1, or one to r2 (another
    // receiver's counter).
    let later = Arc::new(std::sync::atomic::AtomicI64::new(0));
    let mut writers = Vec::new();
    for (m, member) in [a.clone(), b.clone()].into_iter().enumerate() {
        for w in 0..4 {
            let (member, ids, later) = (member.clone(), ids.clone(), later.clone());
            writers.push(tokio::spawn(async move {
                for i in 0..CHANGES / 8 {
                    let n = (m * 4 + w) * 1000 + i;
                    let g = ids[(n * 7) % ids.len()].clone();
                    let res = match n % 4 {
                        0 | 1 => {
                            let s = later.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            let until = chrono::Utc::now()
                                + chrono::Duration::days(2)
                                + chrono::Duration::seconds(s);
                            member.ledger.renew(g, until).await.map(drop)
                        }
                        2 if i % 3 == 0 => member.ledger.revoke(g).await.map(drop),
                        2 => member
                            .ledger
                            .donate(one_license_to("r1", n), known)
                            .await
                            .map(drop),
                        _ => member
                            .ledger
                            .donate(one_license_to("r2", n), known)
                            .await
                            .map(drop),
                    };
                    // A renewal that lost to a later one, or of a revoked grant, is refused:
                    // that is the rule, not a failure of the feed.
                    if let Err(e) = res {
                        assert!(
                            matches!(e, updhub::license::LicenseError::Refused(_)),
                            "{e}"
                        );
                    }
                }
            }));
        }
    }
    // The reader, on the third member, fetches in a loop while they write.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (c, stop) = (c.clone(), stop.clone());
        tokio::task::spawn_blocking(move || {
            let mut held = Held::new();
            let mut since = fetch_and_apply(&c, "r1", &Since::Start, &mut held);
            let mut fetches = 1;
            loop {
                let done = stop.load(std::sync::atomic::Ordering::SeqCst);
                let next = fetch_and_apply(&c, "r1", &Since::After(since.clone()), &mut held);
                fetches += 1;
                let moved = next != since;
                since = next;
                // Once the writers are done, until a fetch brings nothing new.
                if done && !moved {
                    return (held, since, fetches);
                }
            }
        })
    };
    for w in writers {
        w.await.unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (held, _, fetches) = reader.await.unwrap();
    // The donor's state: every grant r1 has to act on, read in full.
    let mut donor = Held::new();
    fetch_and_apply(&a, "r1", &Since::Start, &mut donor);
    assert!(donor.len() > GRANTS, "new grants were made meanwhile");
    assert!(
        donor.values().any(|(rev, _)| *rev > 1),
        "renewals were made meanwhile"
    );
    assert!(
        donor.values().any(|(_, s)| s == "revoked"),
        "revocations were made meanwhile"
    );
    assert!(
        fetches > 2,
        "the reader fetched while they wrote ({fetches})"
    );
    let differ: Vec<_> = donor
        .iter()
        .filter(|(id, d)| held.get(*id) != Some(d))
        .map(|(id, d)| (id, d, held.get(id)))
        .collect();
    assert!(
        differ.is_empty() && held.len() == donor.len(),
        "the reader missed changes (grant, donor's, reader's): {differ:?}"
    );
}

//! `updhub cluster join`: a node that ran alone on its embedded database moves into a
//! cluster's database and loses nothing; a conflict (a key already there, a station id with
//! another secret, a server id taken) refuses the join and changes nothing on either side,
//! and so does a dry run. Each test runs twice: into a PostgreSQL database (skipped, saying
//! so, when `UPDHUB_TEST_PG_URL` is not set) and into an SQLite file.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use common::*;
use updhub::db::join::{Conflict, LEFT_OUT, TABLES};
use updhub::db::{ChildReport, Db, Location, Member};
use updhub::hub::{add_license_file, Hub};
use updhub::id::ServerId;
use updhub::license::ledger::Donation;

/// The engine of the cluster's database.
#[derive(Clone, Copy)]
enum Target {
    Postgres,
    Sqlite,
}

/// The cluster's database for a test: a fresh PostgreSQL database, or an SQLite file in
/// `dir`.
fn cluster_url(dir: &Path, target: Target) -> String {
    match target {
        Target::Postgres => new_pg_database(),
        Target::Sqlite => format!("sqlite:{}", dir.join("cluster.db").display()),
    }
}

fn location(url: &str) -> Location {
    match url.strip_prefix("sqlite:") {
        Some(p) => Location::Sqlite(PathBuf::from(p)),
        None => Location::Postgres(url.to_owned()),
    }
}

/// One row: column name → value as text.
type DumpRow = BTreeMap<String, Option<String>>;

/// Every row of every updhub table of the database at `url`, sorted, for comparisons.
fn dump(url: &str) -> BTreeMap<String, Vec<DumpRow>> {
    let tables: Vec<&str> = TABLES
        .iter()
        .map(|t| t.name)
        .chain(LEFT_OUT.iter().map(|l| l.0))
        .chain(["meta"])
        .collect();
    let mut out = BTreeMap::new();
    match location(url) {
        Location::Sqlite(p) => {
            let c = rusqlite::Connection::open_with_flags(
                &p,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )
            .unwrap();
            for t in tables {
                let mut st = c.prepare(&format!("SELECT * FROM {t}")).unwrap();
                let names: Vec<String> = st.column_names().iter().map(|n| n.to_string()).collect();
                let mut rows: Vec<DumpRow> = st
                    .query_map([], |r| {
                        Ok(names
                            .iter()
                            .enumerate()
                            .map(|(i, n)| {
                                let v = match r.get_ref(i).unwrap() {
                                    rusqlite::types::ValueRef::Null => None,
                                    rusqlite::types::ValueRef::Integer(i) => Some(i.to_string()),
                                    rusqlite::types::ValueRef::Text(t) => {
                                        Some(String::from_utf8_lossy(t).into_owned())
                                    }
                                    other => panic!("{t}.{n}: {other:?}"),
                                };
                                (n.clone(), v)
                            })
                            .collect())
                    })
                    .unwrap()
                    .map(Result::unwrap)
                    .collect();
                rows.sort();
                out.insert(t.to_owned(), rows);
            }
        }
        Location::Postgres(url) => {
            let url = url.clone();
            let tables: Vec<String> = tables.iter().map(|t| t.to_string()).collect();
            out = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                        .await
                        .unwrap();
                    tokio::spawn(conn);
                    let mut out = BTreeMap::new();
                    for t in tables {
                        let mut rows: Vec<DumpRow> = client
                            .simple_query(&format!("SELECT * FROM {t}"))
                            .await
                            .unwrap()
                            .into_iter()
                            .filter_map(|m| match m {
                                tokio_postgres::SimpleQueryMessage::Row(r) => Some(
                                    r.columns()
                                        .iter()
                                        .enumerate()
                                        .map(|(i, c)| {
                                            (c.name().to_owned(), r.get(i).map(str::to_owned))
                                        })
                                        .collect(),
                                ),
                                _ => None,
                            })
                            .collect();
                        rows.sort();
                        out.insert(t, rows);
                    }
                    out
                })
            })
            .join()
            .unwrap();
        }
    }
    out
}

fn secret(station: &str) -> String {
    format!("secret-of-{station}-0123456789")
}

async fn donate(hub: &Hub, to: &str, count: u32, days: i64, source: &str) -> String {
    hub.ledger
        .donate(
            Donation {
                to: to.into(),
                count,
                until: Utc::now() + chrono::Duration::days(days),
                source: Some(source.into()),
                request_id: hex::encode(rand::random::<[u8; 8]>()),
            },
            |_| true,
        )
        .await
        .unwrap()
        .grant_id
}

/// Add key `id` of `count` stations, valid for a year, signed by `iss`.
async fn add_key(hub: &Hub, dir: &Path, iss: &ed25519_dalek::SigningKey, id: &str, count: u32) {
    add_license_file(hub, &key_file(dir, iss, id, count, 365))
        .await
        .unwrap();
}

/// Register each of `stations` with its usual secret.
async fn register_all(hub: &Hub, stations: &[&str]) {
    for s in stations {
        hub.ledger
            .register_station((*s).into(), secret(s))
            .await
            .unwrap();
    }
}

/// A test's cluster: its database and its first node `a`, which trusts `iss` and holds key
/// K-A (100 stations), stations ws-1..3 and a grant.
struct Scene {
    dir: tempfile::TempDir,
    url: String,
    iss: ed25519_dalek::SigningKey,
    a: Arc<Hub>,
}

/// The cluster of a test on `target`.
async fn scene(target: Target) -> Scene {
    let dir = tempfile::tempdir().unwrap();
    let url = cluster_url(dir.path(), target);
    let iss = issuer();
    let a = node(
        dir.path(),
        "a",
        NodeOpts {
            issuers: vec![issuer_hex(&iss)],
            database: Some(url.clone()),
            ..Default::default()
        },
    );
    add_key(&a, dir.path(), &iss, "K-A", 100).await;
    register_all(&a, &["ws-1", "ws-2", "ws-3"]).await;
    donate(&a, "elsewhere", 5, 30, "K-A").await;
    Scene { dir, url, iss, a }
}

impl Scene {
    /// A lone node `n` on its embedded database, trusting the same issuer.
    fn lone_node(&self) -> Arc<Hub> {
        let zone = sample_zone();
        node(
            self.dir.path(),
            "n",
            NodeOpts {
                zone: Some(&zone),
                issuers: vec![issuer_hex(&self.iss)],
                database: Some("sqlite:updhub.db".into()),
                ..Default::default()
            },
        )
    }
}

/// Everything a join may change: node `n`'s database, the cluster's, and `n`'s updhub.toml.
#[derive(Debug, PartialEq)]
struct Sides {
    here: BTreeMap<String, Vec<DumpRow>>,
    cluster: BTreeMap<String, Vec<DumpRow>>,
    config: Vec<u8>,
}

fn sides(n_data: &Path, url: &str) -> Sides {
    Sides {
        here: dump(&format!("sqlite:{}", n_data.join("updhub.db").display())),
        cluster: dump(url),
        config: std::fs::read(n_data.join("updhub.toml")).unwrap(),
    }
}

/// Two tests of one scenario: into a PostgreSQL database, and into an SQLite file.
macro_rules! on_both_engines {
    ($scenario:ident: $pg:ident, $sqlite:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $pg() {
            $scenario(Target::Postgres).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $sqlite() {
            $scenario(Target::Sqlite).await;
        }
    };
}

/// `rows` of `table` from node `n`'s database as they read in the cluster's: the ledger's
/// under the cluster's id, the log without its numbers.
fn as_in_cluster(table: &str, rows: &[DumpRow], cluster: &str) -> Vec<DumpRow> {
    let ledger = TABLES
        .iter()
        .any(|t| t.name == table && t.owner == updhub::db::join::Owner::Cluster);
    rows.iter()
        .map(|r| {
            let mut r = r.clone();
            r.remove("seq");
            if ledger {
                r.insert("server_id".into(), Some(cluster.to_owned()));
            }
            r
        })
        .collect()
}

fn without_seq(rows: &[DumpRow]) -> Vec<DumpRow> {
    as_in_cluster("", rows, "")
}

/// Whether every row of `part` is in `whole` (as many times).
fn contains_all(whole: &[DumpRow], part: &[DumpRow]) -> bool {
    let mut left = whole.to_vec();
    part.iter().all(|r| match left.iter().position(|w| w == r) {
        Some(i) => {
            left.swap_remove(i);
            true
        }
        None => false,
    })
}

async fn heartbeat(client: &reqwest::Client, stations_url: &str, station: &str) -> u16 {
    client
        .post(format!("{stations_url}v1/stations/heartbeat"))
        .json(&serde_json::json!({"station": station, "secret": secret(station)}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn join_loses_nothing(target: Target) {
    let sc = scene(target).await;
    let (dir, url, iss, a) = (sc.dir.path(), &sc.url, &sc.iss, &sc.a);

    // The lone node: a version, keys, stations, grants in each state that still counts, a
    // key that ended (with a grant still being revoked against it), a child's report, a
    // sync state, a setting, and the audit log of all that.
    let n = sc.lone_node();
    mirror_and_publish(&n).await;
    let now = Utc::now();
    let short = updhub::license::LicenseKey::issue(
        iss,
        "K-OLD",
        "ACME Corp",
        4,
        now - chrono::Duration::days(1),
        now + chrono::Duration::seconds(3),
    );
    let short_file = dir.join("K-OLD.json");
    std::fs::write(&short_file, serde_json::to_vec(&short).unwrap()).unwrap();
    add_license_file(&n, &short_file).await.unwrap();
    register_all(&n, &["wn-1", "wn-2", "wn-3"]).await;
    n.ledger
        .donate(
            Donation {
                to: "x".into(),
                count: 1,
                until: now + chrono::Duration::seconds(2),
                source: Some("K-OLD".into()),
                request_id: "req-old".into(),
            },
            |_| true,
        )
        .await
        .unwrap();
    add_key(&n, dir, iss, "K-N", 10).await;
    register_all(&n, &["wn-4", "wn-5"]).await;
    donate(&n, "y", 3, 30, "K-N").await;
    let revoked = donate(&n, "z", 1, 30, "K-N").await;
    n.ledger.revoke(revoked).await.unwrap();
    // K-OLD ends: its stations move to K-N, its grant is being revoked.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let swept = n.ledger.sweep(Duration::from_secs(86400)).await.unwrap();
    assert_eq!(swept.ended_sources, 1, "{swept:?}");
    n.db.record_report(&ChildReport {
        child_id: "kid".into(),
        root: None,
        number: None,
        hub_version: "0.1.0".into(),
        config_digest: "0123".into(),
        chain: vec!["n".into()],
        reported_at: now,
    })
    .unwrap();
    n.db.record_sync("https://parent.example:8443", Some("just a test"), now)
        .unwrap();
    n.set_shared_setting("licenses.station_ttl", "14d").unwrap();
    let old = source(&n, "K-OLD");
    assert_eq!(
        (old.status.as_str(), old.used, old.donated),
        ("expired", 0, 1)
    );
    assert_eq!(source(&n, "K-N").used, 5);

    let mut both = a.ledger.status(Duration::from_secs(3600)).unwrap();
    both.extend(n.ledger.status(Duration::from_secs(3600)).unwrap());
    both.sort_by(|x, y| x.source_id.cmp(&y.source_id));
    let n_versions = serde_json::to_value(n.db.versions().unwrap()).unwrap();
    let n_published = n.db.published().unwrap().unwrap();
    let n_data = n.data.clone();
    drop(n);
    let before = sides(&n_data, url);

    let report = updhub::join::join(&n_data, url, false).unwrap();
    assert!(report.joined && !report.refused(), "{report:#?}");
    assert_eq!(report.cluster, "a");
    for t in &report.tables {
        assert_eq!(t.here, before.here[&t.table].len() as u64, "{t:?}");
        let added = t.added.unwrap_or(0);
        assert_eq!(t.cluster_after, Some(t.cluster_before + added), "{t:?}");
    }
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("setting licenses.station_ttl = 14d was set on this node")),
        "{:?}",
        report.notes
    );
    // The old database is the backup, as it was; updhub.toml names the cluster's.
    let after = sides(&n_data, url);
    assert_eq!(after.here, before.here);
    assert_eq!(
        updhub::config::Config::load(&n_data).unwrap().database.url,
        *url
    );

    // Every row of the node is in the cluster's database (the ledger's under the cluster's
    // id), and every row the cluster had is still there.
    for t in TABLES {
        let ours = as_in_cluster(t.name, &before.here[t.name], "a");
        let now_there = as_in_cluster(t.name, &after.cluster[t.name], "a");
        assert!(contains_all(&now_there, &ours), "{} lost rows", t.name);
        assert!(
            contains_all(
                &without_seq(&after.cluster[t.name]),
                &without_seq(&before.cluster[t.name])
            ),
            "{} lost the cluster's rows",
            t.name
        );
        let join_record = usize::from(t.name == "license_log");
        assert_eq!(
            after.cluster[t.name].len(),
            before.cluster[t.name].len() + before.here[t.name].len() + join_record,
            "{}",
            t.name
        );
    }

    // The node now runs on the cluster's ledger: both sides' keys with their counters,
    // conservation holding, its versions as they were, and it serves its stations.
    let n = Arc::new(Hub::open(&n_data).unwrap());
    assert_eq!(n.db.cluster_id().as_str(), "a");
    assert_eq!(n.ledger.status(Duration::from_secs(3600)).unwrap(), both);
    assert_eq!(a.ledger.status(Duration::from_secs(3600)).unwrap(), both);
    assert_conserved(&n);
    // Versions are the cluster's: its list and published version apply, this node's own
    // history stays in its old database, and it serves nothing until it holds the
    // cluster's version (it catches up from a member when it serves).
    assert_eq!(
        serde_json::to_value(n.db.versions().unwrap()).unwrap(),
        serde_json::to_value(a.db.versions().unwrap()).unwrap()
    );
    assert_eq!(n.db.published().unwrap(), None);
    assert_eq!(
        n.db.cluster_published().unwrap(),
        a.db.cluster_published().unwrap()
    );
    let old = Db::open(&n_data.join("updhub.db"), ServerId::new("n").unwrap()).unwrap();
    assert_eq!(
        serde_json::to_value(old.versions().unwrap()).unwrap(),
        n_versions
    );
    assert_eq!(old.published().unwrap().unwrap(), n_published);
    drop(old);
    assert_eq!(n.db.children().unwrap()[0].child_id, "kid");
    let log = n.ledger.log().unwrap();
    let entry = log.iter().find(|l| l.event == "node_joined").unwrap();
    assert_eq!((entry.subject.as_str(), entry.node_id.as_str()), ("n", "n"));

    let srv = start_with_stations(n.clone()).await;
    let stations = srv.stations_url.clone().unwrap();
    let client = station_client(&n);
    for s in ["wn-1", "wn-4", "ws-1"] {
        assert_eq!(heartbeat(&client, &stations, s).await, 200, "{s}");
    }
    let (status, body) = register(&client, &stations, "wn-new").await;
    assert_eq!(status, 200, "{body}");
    srv.stop().await;
}

on_both_engines!(join_loses_nothing:
    join_without_a_conflict_loses_nothing_on_postgresql,
    join_without_a_conflict_loses_nothing_into_an_sqlite_file);

async fn conflicts_change_nothing(target: Target) {
    let sc = scene(target).await;
    let (dir, url) = (sc.dir.path(), &sc.url);
    // Another server already recorded itself in the cluster as "n".
    let twin = Db::open_at(&location(url), ServerId::new("n").unwrap()).unwrap();
    twin.record_member(
        &Member {
            node_id: "n".into(),
            instance: "twin".into(),
            process: "twin".into(),
            updhub_version: env!("CARGO_PKG_VERSION").into(),
            schema_version: twin.schema_known(),
            server_name: "localhost".into(),
            key_fp: "k".into(),
            ca_fp: "c".into(),
            active_root: None,
            settings: "{}".into(),
            settings_digest: "d".into(),
            listen: "127.0.0.1:1".into(),
            started: Utc::now(),
            last_seen: Utc::now(),
        },
        Duration::from_secs(20),
    )
    .unwrap()
    .unwrap();
    drop(twin);

    // The lone node "n": the cluster's key K-A added here too, station ws-1 with another
    // secret, ws-2 with the same one.
    let n = sc.lone_node();
    add_license_file(&n, &dir.join("K-A.json")).await.unwrap();
    add_key(&n, dir, &sc.iss, "K-N", 10).await;
    n.ledger
        .register_station("ws-1".into(), "another-secret-0123456789".into())
        .await
        .unwrap();
    register_all(&n, &["ws-2"]).await;
    let n_data = n.data.clone();
    drop(n);
    let before = sides(&n_data, url);

    let report = updhub::join::join(&n_data, url, true).unwrap();
    assert!(report.refused() && !report.joined);
    let found: Vec<&Conflict> = report.conflicts.iter().map(|p| &p.conflict).collect();
    assert!(
        matches!(found[..], [
            Conflict::Source { id: ref k, ref added_by, .. },
            Conflict::Station { id: ref s1, same_secret: false },
            Conflict::Station { id: ref s2, same_secret: true },
            Conflict::NodeId { ref node, member_last_seen: Some(_), .. },
        ] if k == "K-A" && added_by == "a" && s1 == "ws-1" && s2 == "ws-2" && node == "n"),
        "{found:#?}"
    );

    // The real thing, as an admin runs it: refused with the same report, exit status 1.
    let out = updhub_bin()
        .arg("--data")
        .arg(&n_data)
        .args(["cluster", "join", "--database", url])
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(!out.status.success(), "{stdout}");
    for line in [
        "CONFLICT: license key K-A is already in the cluster (added by node a at ",
        "CONFLICT: station ws-1 is registered in the cluster with another secret",
        "CONFLICT: station ws-2 is registered both here and in the cluster, with the same secret",
        "CONFLICT: server id n is taken in the cluster (a member last seen at ",
        "4 conflict(s): the join is refused; nothing was changed",
    ] {
        assert!(stdout.contains(line), "{line:?} not in:\n{stdout}");
    }
    assert_eq!(stdout.matches("  fix: ").count(), 4, "{stdout}");
    assert!(
        stderr.contains("cluster join refused: 4 conflict(s)"),
        "{stderr}"
    );
    assert_eq!(
        sides(&n_data, url),
        before,
        "nothing changed on either side"
    );
}

on_both_engines!(conflicts_change_nothing:
    join_with_a_conflict_changes_nothing_on_postgresql,
    join_with_a_conflict_changes_nothing_into_an_sqlite_file);

/// Issue 18 item 4, as `cluster join` meets it: a lone node whose id the cluster knows as
/// another server's (a child that reported to a member, the receiver of a grant) is
/// refused, naming each, and nothing changes on either side.
async fn an_id_the_cluster_knows_as_another_servers_is_refused(target: Target) {
    let sc = scene(target).await;
    let url = &sc.url;
    sc.a.db
        .record_report(&ChildReport {
            child_id: "n".into(),
            root: None,
            number: None,
            hub_version: "0.1.0".into(),
            config_digest: "0123".into(),
            chain: vec!["a".into()],
            reported_at: Utc::now(),
        })
        .unwrap();
    let grant = donate(&sc.a, "n", 2, 30, "K-A").await;
    let n = sc.lone_node();
    let n_data = n.data.clone();
    drop(n);
    let before = sides(&n_data, url);
    let report = updhub::join::join(&n_data, url, false).unwrap();
    assert!(report.refused() && !report.joined);
    let [problem] = &report.conflicts[..] else {
        panic!("{:#?}", report.conflicts);
    };
    assert!(
        matches!(&problem.conflict, Conflict::NodeId { node, member_last_seen: None, known, .. }
            if node == "n" && known.len() == 2),
        "{problem:#?}"
    );
    assert!(
        problem.what.contains("server id n is taken in the cluster")
            && problem.what.contains("a child that reported on ")
            && problem
                .what
                .contains(&format!("the receiver of grant {grant} (active)")),
        "{}",
        problem.what
    );
    assert_eq!(
        sides(&n_data, url),
        before,
        "nothing changed on either side"
    );
}

on_both_engines!(an_id_the_cluster_knows_as_another_servers_is_refused:
    join_as_an_id_the_cluster_knows_is_refused_on_postgresql,
    join_as_an_id_the_cluster_knows_is_refused_into_an_sqlite_file);

async fn dry_run_changes_nothing(target: Target) {
    let sc = scene(target).await;
    let (dir, url) = (sc.dir.path(), &sc.url);
    let n = sc.lone_node();
    mirror_and_publish(&n).await;
    add_key(&n, dir, &sc.iss, "K-N", 10).await;
    register_all(&n, &["wn-1", "wn-2"]).await;
    let n_data = n.data.clone();
    drop(n);
    // A live member: n, made with keys of its own, will differ from it.
    sc.a.record_member("a-instance", "127.0.0.1:1").unwrap();
    let before = sides(&n_data, url);

    let report = updhub::join::join(&n_data, url, true).unwrap();
    assert!(
        report.dry_run && !report.joined && !report.refused(),
        "{report:#?}"
    );
    assert!(
        report.notes.iter().any(|n| n
            .contains("`cluster check` will report that the publisher key (fingerprint) differs")),
        "{:?}",
        report.notes
    );
    for t in &report.tables {
        assert_eq!(t.here, before.here[&t.table].len() as u64);
        assert_eq!(t.cluster_before, before.cluster[&t.table].len() as u64);
        assert_eq!(t.cluster_after, None);
        if let Some(added) = t.added {
            assert_eq!(added, t.here + u64::from(t.table == "license_log"), "{t:?}");
        }
    }
    assert_eq!(sides(&n_data, url), before);

    // An empty database is planned against as it is, and left empty.
    let empty = match target {
        Target::Postgres => new_pg_database(),
        Target::Sqlite => format!("sqlite:{}", dir.join("new.db").display()),
    };
    let report = updhub::join::join(&n_data, &empty, true).unwrap();
    assert!(!report.refused() && !report.joined, "{report:#?}");
    assert_eq!(report.cluster, "n");
    assert!(report
        .notes
        .iter()
        .any(|n| n.contains("the database is empty")));
    assert_eq!(
        Db::standing_at(&location(&empty), &ServerId::new("n").unwrap()).unwrap(),
        updhub::db::Standing::Empty
    );
    if let Location::Sqlite(p) = location(&empty) {
        assert!(!p.exists());
    }
    assert_eq!(sides(&n_data, url), before);
}

on_both_engines!(dry_run_changes_nothing:
    a_dry_run_changes_nothing_on_postgresql,
    a_dry_run_changes_nothing_into_an_sqlite_file);

async fn a_bad_copy_is_rolled_back(target: Target) {
    let sc = scene(target).await;
    let n = sc.lone_node();
    add_key(&n, sc.dir.path(), &sc.iss, "K-N", 10).await;
    register_all(&n, &["wn-1"]).await;
    // A counter that disagrees with the rows (a hand edit): the copy counts 1 station, the
    // original says 2, so the copy reads back differently and must not be kept.
    n.db.exec_raw("UPDATE license_sources SET used = 2 WHERE source_id = 'K-N'")
        .unwrap();
    let n_data = n.data.clone();
    drop(n);
    let before = sides(&n_data, &sc.url);
    let err = updhub::join::join(&n_data, &sc.url, false)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("rolled back and nothing changed")
            && err.contains("license_sources row (K-N) reads back as"),
        "{err}"
    );
    assert_eq!(sides(&n_data, &sc.url), before);
}

on_both_engines!(a_bad_copy_is_rolled_back:
    a_copy_that_reads_back_differently_is_rolled_back_on_postgresql,
    a_copy_that_reads_back_differently_is_rolled_back_in_an_sqlite_file);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_join_refuses_a_serving_node_a_node_on_postgresql_and_a_database_of_another_schema() {
    let dir = tempfile::tempdir().unwrap();
    let n = node(
        dir.path(),
        "n",
        NodeOpts {
            database: Some("sqlite:updhub.db".into()),
            ..Default::default()
        },
    );
    let n_data = n.data.clone();
    drop(n);
    let target = format!("sqlite:{}", dir.path().join("cluster.db").display());

    // Serving: the data folder's lock is held.
    let lock = updhub::lock::DataLock::take(&n_data, "serve").unwrap();
    let err = updhub::join::join(&n_data, &target, true)
        .unwrap_err()
        .to_string();
    assert!(err.contains("in use by another updhub"), "{err}");
    drop(lock);

    // A database of a newer updhub: refused as a conflict, nothing changed.
    let db = Db::create(&dir.path().join("cluster.db"), ServerId::new("a").unwrap()).unwrap();
    db.exec_raw("UPDATE meta SET value='99' WHERE key='schema_version'")
        .unwrap();
    drop(db);
    let before = sides(&n_data, &target);
    let report = updhub::join::join(&n_data, &target, false).unwrap();
    assert!(report.refused() && !report.joined);
    assert!(
        matches!(
            report.conflicts[0].conflict,
            Conflict::Schema { found: 99, .. }
        ),
        "{report:#?}"
    );
    assert!(report.conflicts[0].fix.contains("upgrade this node"));
    assert_eq!(sides(&n_data, &target), before);

    // A node already on PostgreSQL is no lone node (refused before any connection).
    let toml = n_data.join("updhub.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    std::fs::write(
        &toml,
        text.replace(
            "url = \"sqlite:updhub.db\"",
            "url = \"postgres://u:secret@127.0.0.1:1/x\"",
        ),
    )
    .unwrap();
    let err = updhub::join::join(&n_data, &target, true)
        .unwrap_err()
        .to_string();
    assert!(err.contains("already a PostgreSQL database"), "{err}");
    assert!(!err.contains("secret"), "{err}");
}

//! Issue 10 point 2, the rest: the cluster tasks that bound what grows, on serving nodes.
//! Children's reports, grant receivers' reports and task runs past
//! `server.report_retention` are purged ("purge reports"), never those of a child that still
//! counts for the two-phase switch, and a purged child no longer holds its version back from
//! GC. Audit-log rows past `licenses.log_retention` leave the log only through an archive
//! file ("archive license log"), which the database enforces. And three members of one
//! PostgreSQL database run the real tasks for twenty periods: each period once, and the
//! tasks go on within the TTL when the lease holder is killed.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::Utc;
use common::*;
use updhub::db::ChildReport;
use updhub::gc::Reason;
use updhub::Hub;

fn report(child: &str, root: updhub::id::Root, ago: chrono::Duration) -> ChildReport {
    ChildReport {
        child_id: child.into(),
        root: Some(root),
        number: Some(1),
        hub_version: env!("CARGO_PKG_VERSION").into(),
        config_digest: "d".into(),
        chain: vec![child.into()],
        reported_at: Utc::now() - ago,
    }
}

/// How many rows of `table` match `filter` (an UPDATE that changes nothing counts them).
fn count(hub: &Hub, table: &str, set: &str, filter: &str) -> u64 {
    hub.db
        .exec_raw(&format!("UPDATE {table} SET {set} WHERE {filter}"))
        .unwrap()
}

/// The reports of the receiver "gone-receiver".
fn gone_receiver_reports(hub: &Hub) -> u64 {
    count(
        hub,
        "grant_reports",
        "count=count",
        "receiver='gone-receiver'",
    )
}

/// The reasons GC keeps `root` for.
fn kept_for(hub: &Hub, root: &updhub::id::Root) -> Vec<Reason> {
    updhub::gc::run(hub, true)
        .unwrap()
        .kept
        .into_iter()
        .find(|k| k.root == *root)
        .map(|k| k.reasons)
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_past_their_retention_are_purged_but_never_a_child_that_counts() {
    let dir = tempfile::tempdir().unwrap();
    let zone = sample_zone_copy(dir.path());
    let hub = zone_node(dir.path(), "parent", &zone);
    let v1 = mirror_and_publish(&hub).await;
    // A child silent for 40 days, one quiet for 20 s (past the retention set below but
    // within the two-phase reporting window of 30 s: it still counts), one live.
    for (child, ago) in [
        ("silent", chrono::Duration::days(40)),
        ("quiet", chrono::Duration::seconds(20)),
        ("live", chrono::Duration::zero()),
    ] {
        hub.db.record_report(&report(child, v1.root, ago)).unwrap();
    }
    assert!(kept_for(&hub, &v1.root).contains(&Reason::Child("silent".into())));
    // A receiver's report of 40 days ago, and a task run of as long ago.
    let old = Utc::now() - chrono::Duration::days(40);
    hub.db
        .record_grant_reports(
            "gone-receiver",
            &[updhub::license::ledger::ReceiverCount {
                grant_id: "g-old".into(),
                count: 3,
                counted: 3,
                reported_at: None,
            }],
            old,
        )
        .unwrap();
    let cluster = hub.db.cluster_id().to_string();
    hub.db
        .exec_raw(&format!(
            "INSERT INTO task_runs(cluster_id, task, due_ms, node_id, instance, ok, result, at_ms)
             VALUES ('{cluster}', 'old task', 1, 'parent', 'i', 1, 'ran', {})",
            old.timestamp_millis()
        ))
        .unwrap();
    assert_eq!(gone_receiver_reports(&hub), 1);

    // A retention of 12 s: a period of a second (a 24th of it, at least a second).
    hub.set_shared_setting("server.report_retention", "12s")
        .unwrap();
    let srv = start(hub.clone()).await;
    wait_for("the silent child to be purged", || {
        hub.db.children().unwrap().len() == 2
    })
    .await;
    let left: BTreeSet<String> = hub
        .db
        .children()
        .unwrap()
        .into_iter()
        .map(|c| c.child_id)
        .collect();
    assert_eq!(
        left,
        BTreeSet::from(["live".to_owned(), "quiet".to_owned()]),
        "a child within the reporting window stays even past the retention"
    );
    assert_eq!(gone_receiver_reports(&hub), 0);
    assert_eq!(count(&hub, "task_runs", "ok=ok", "task='old task'"), 0);
    // The silent child no longer holds its version back; the others still do.
    let reasons = kept_for(&hub, &v1.root);
    assert!(
        !reasons.contains(&Reason::Child("silent".into())),
        "{reasons:?}"
    );
    assert!(
        reasons.contains(&Reason::Child("live".into())),
        "{reasons:?}"
    );
    let l = lease(&hub, "purge reports").expect("the purge runs under a lease");
    assert_eq!(
        l.holder.as_ref().map(|h| h.node.as_str()),
        Some("parent"),
        "alone on its database, the node holds the lease"
    );
    assert_eq!(l.period_ms, 1000);
    // The run is recorded in the transaction after the purge's own: wait for it.
    wait_for("the purge's run to be recorded with what it purged", || {
        hub.db
            .task_runs(Some("purge reports"), 100)
            .unwrap()
            .iter()
            .any(|r| {
                r.ok && r.result == "1 child report(s), 1 grant report(s), 1 task run(s) purged"
            })
    })
    .await;
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_log_rows_leave_the_log_only_through_an_archive_file() {
    let dir = tempfile::tempdir().unwrap();
    let iss = issuer();
    let hub = node(
        dir.path(),
        "parent",
        NodeOpts {
            issuers: vec![issuer_hex(&iss)],
            ..Default::default()
        },
    );
    for k in ["K1", "K2"] {
        updhub::hub::add_license_file(&hub, &key_file(dir.path(), &iss, k, 10, 365))
            .await
            .unwrap();
    }
    let rows = hub.ledger.log().unwrap();
    assert!(rows.len() >= 2, "{rows:?}");
    // By hand, the log cannot be rewritten or emptied: nothing is archived.
    let db = &hub.db;
    assert!(db.exec_raw("DELETE FROM license_log").is_err());
    assert!(db.exec_raw("UPDATE license_log SET event='x'").is_err());
    let first = rows[0].seq;
    let err = db
        .exec_raw(&format!("DELETE FROM license_log WHERE seq={first}"))
        .unwrap_err();
    assert!(err.to_string().contains("only once archived"), "{err}");

    // A run interrupted after it wrote its file and before its commit left that file; the
    // next run writes it again (here, over a damaged one) and then removes the rows.
    let archive_dir = hub.data.join("archive");
    let (from, upto) = (first, rows.last().unwrap().seq);
    let name = updhub::license::archive::file_name(from, upto);
    std::fs::create_dir_all(&archive_dir).unwrap();
    std::fs::write(archive_dir.join(&name), b"half a file").unwrap();
    let made = hub
        .ledger
        .archive_log(Utc::now() + chrono::Duration::seconds(1), &archive_dir)
        .await
        .unwrap();
    assert_eq!(made.len(), 1);
    let a = &made[0];
    assert_eq!(
        (
            a.from_seq,
            a.upto_seq,
            a.rows,
            a.file.as_str(),
            a.node_id.as_str()
        ),
        (from, upto, rows.len() as i64, name.as_str(), "parent")
    );
    let bytes = std::fs::read(archive_dir.join(&name)).unwrap();
    assert_eq!(blake3::hash(&bytes).to_hex().to_string(), a.blake3);
    assert_eq!(
        bytes,
        updhub::license::archive::encode(&rows).unwrap(),
        "the same rows, the same bytes"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(archive_dir.join(&name))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // The file holds the rows, one JSON object a line (what `zstd -dc FILE` prints).
    let text = String::from_utf8(zstd::decode_all(&bytes[..]).unwrap()).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), rows.len());
    for (l, r) in lines.iter().zip(&rows) {
        assert_eq!(
            (l["seq"].as_i64(), l["event"].as_str()),
            (Some(r.seq), Some(r.event.as_str()))
        );
    }
    // The log now holds only the row saying what was archived where.
    let now = hub.ledger.log().unwrap();
    assert_eq!(now.len(), 1, "{now:?}");
    assert_eq!(
        (now[0].event.as_str(), now[0].subject.as_str()),
        ("log_archived", name.as_str())
    );
    assert!(now[0].details.contains(&a.blake3), "{}", now[0].details);
    assert_eq!(hub.ledger.log_archives().unwrap(), made);
    // That row is not archived: it stays; the archive record cannot be changed or removed.
    let seq = now[0].seq;
    assert!(db
        .exec_raw(&format!("DELETE FROM license_log WHERE seq={seq}"))
        .is_err());
    assert!(db.exec_raw("DELETE FROM license_log").is_err());
    assert!(db.exec_raw("UPDATE license_log SET event='x'").is_err());
    assert!(db.exec_raw("DELETE FROM log_archives").is_err());
    assert!(db
        .exec_raw("UPDATE log_archives SET file='elsewhere'")
        .is_err());
    if on_postgres() {
        // TRUNCATE skips row triggers: refused by statement triggers of its own.
        assert!(db.exec_raw("TRUNCATE license_log").is_err());
        assert!(db.exec_raw("TRUNCATE log_archives").is_err());
    }
    assert_eq!(hub.ledger.log_archives().unwrap(), made);
    // Nothing older than the retention: a run archives nothing.
    let none = hub
        .ledger
        .archive_log(Utc::now() - chrono::Duration::days(1), &archive_dir)
        .await
        .unwrap();
    assert!(none.is_empty());

    // Serving, with a retention of 2 s (a period of a second), the node archives on its
    // own under the lease: the row above goes to the next file.
    hub.set_shared_setting("licenses.log_retention", "2s")
        .unwrap();
    let srv = start(hub.clone()).await;
    wait_for("the serving node to archive the older row", || {
        hub.ledger.log_archives().unwrap().len() >= 2
    })
    .await;
    srv.stop().await;
    let all = hub.ledger.log_archives().unwrap();
    assert_eq!(all[1].from_seq, seq, "{all:?}");
    for w in all.windows(2) {
        assert!(
            w[0].upto_seq < w[1].from_seq,
            "archives never overlap: {all:?}"
        );
    }
    for a in &all {
        assert!(archive_dir.join(&a.file).is_file(), "{a:?}");
    }
    let l = lease(&hub, "archive license log").expect("under a lease");
    assert!(l.runs >= 1 && l.last_ok == Some(true), "{l:?}");
}

/// The tasks of the three-member test below.
const TASKS: [&str; 4] = [
    "purge stations",
    "purge reports",
    "archive license log",
    "scheduled mirror",
];

/// Every recorded run seen: (task, period) to the node that ran it and when the run ended.
type Seen = BTreeMap<(String, i64), (String, i64)>;

/// Add the runs `db` records now to `seen`; a period recorded on two nodes fails.
fn observe(db: &updhub::db::Db, seen: &mut Seen) {
    for r in db.task_runs(None, 10_000).unwrap() {
        let prior = seen.insert((r.task.clone(), r.due_ms), (r.node.clone(), r.at_ms));
        assert!(
            prior.is_none_or(|(n, _)| n == r.node),
            "period {} of {} recorded on two nodes",
            r.due_ms,
            r.task
        );
    }
}

/// Observe until every task ran `n` periods.
fn wait_runs(db: &updhub::db::Db, n: usize, seen: &mut Seen) {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        observe(db, seen);
        if TASKS
            .iter()
            .all(|t| seen.keys().filter(|(task, _)| task == t).count() >= n)
        {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {n} runs of each task: {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Three serving members on one PostgreSQL database run the real cluster tasks ("purge
/// stations", "purge reports", "archive license log", "scheduled mirror") every second for
/// twenty periods. Each period of each task is recorded once (the database's key on
/// `task_runs` enforces it); the node that holds the most leases is killed halfway, and the
/// tasks go on on the others within the TTL, none twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_run_the_real_tasks_once_a_period_and_go_on_when_the_holder_dies() {
    const TEST: &str =
        "three_members_run_the_real_tasks_once_a_period_and_go_on_when_the_holder_dies";
    if !on_postgres() {
        eprintln!("SKIPPED {TEST} on SQLite: an embedded database has one node, which holds every lease (the tests above cover it); it runs in retention_pg");
        return;
    }
    let url = new_pg_database();
    let dir = tempfile::tempdir().unwrap();
    let zone = sample_zone_copy(dir.path());
    let ttl = Duration::from_secs(3);
    let iss = issuer();
    let opts = || NodeOpts {
        zone: Some(&zone),
        database: Some(url.clone()),
        lease_ttl: Some(ttl),
        issuers: vec![issuer_hex(&iss)],
        skew: Some(Duration::from_millis(100)),
        ..Default::default()
    };
    let m1 = node(dir.path(), "m1", opts());
    mirror_and_publish(&m1).await;
    updhub::hub::add_license_file(&m1, &key_file(dir.path(), &iss, "K1", 10, 365))
        .await
        .unwrap();
    let m2 = member_of(dir.path(), "m2", &m1, opts());
    let m3 = member_of(dir.path(), "m3", &m1, opts());
    // Every task once a second: a 24th of each retention, at least a second.
    for (k, v) in [
        ("licenses.station_ttl", "24s"),
        ("server.report_retention", "24s"),
        ("licenses.log_retention", "2s"),
        ("upstream.mirror_interval", "1s"),
    ] {
        m1.set_shared_setting(k, v).unwrap();
    }
    let hubs: BTreeMap<String, _> = [m1, m2, m3]
        .into_iter()
        .map(|h| (h.id().to_string(), h))
        .collect();
    let mut running = BTreeMap::new();
    for (id, h) in &hubs {
        running.insert(id.clone(), start(h.clone()).await);
    }
    let any = hubs["m2"].clone();
    let db = &any.db;
    // Every run recorded, read as it comes (the report purge bounds the history).
    let mut seen = Seen::new();
    tokio::task::block_in_place(|| wait_runs(db, 10, &mut seen));

    // Kill the member that holds the most leases, as a crash would: its leases hold until
    // they expire, then the others take them.
    let mut held: BTreeMap<String, usize> = BTreeMap::new();
    for l in db.leases().unwrap() {
        if let Some(h) = l.holder {
            *held.entry(h.node).or_default() += 1;
        }
    }
    let dead = held.iter().max_by_key(|(_, n)| **n).unwrap().0.clone();
    running.remove(&dead).unwrap().kill().await;
    let killed_at = Utc::now().timestamp_millis();
    tokio::task::block_in_place(|| wait_runs(db, 20, &mut seen));
    for (_, r) in running {
        r.stop().await;
    }
    observe(db, &mut seen);

    for task in TASKS {
        let dues: Vec<(i64, &String)> = seen
            .iter()
            .filter(|((t, _), _)| t == task)
            .map(|((_, d), (n, _))| (*d, n))
            .collect();
        // A period is also skipped, by design, when the run before it ended after its
        // boundary (a stalled node runs at the boundary after the end, never twice to catch
        // up); the run's recorded end, which set that boundary, shows it.
        let late = |a: i64, b: i64| {
            seen.get(&(task.to_string(), a * 1000))
                .is_some_and(|(_, at)| *at >= (b - 1) * 1000)
        };
        // The first period is due when the lease row was made; the others on boundaries.
        let ps: Vec<i64> = dues[1..].iter().map(|(d, _)| d / 1000).collect();
        assert!(
            dues[1..].iter().all(|(d, _)| d % 1000 == 0),
            "{task}: {dues:?}"
        );
        let gaps: Vec<(i64, i64)> = ps
            .windows(2)
            .map(|w| (w[0], w[1]))
            .filter(|(a, b)| b - a > 1)
            .collect();
        let ttl_periods = ttl.as_secs() as i64 + 2;
        assert!(
            gaps.iter().all(|(a, b)| (b - a <= ttl_periods
                && *a * 1000 <= killed_at + 1000
                && *b * 1000 >= killed_at)
                || late(*a, *b)),
            "{task}: periods skipped other than across the holder's death at {killed_at} or after a late run: {gaps:?}"
        );
        let after: Vec<_> = dues.iter().filter(|(d, _)| *d > killed_at + 1000).collect();
        assert!(after.len() >= 5, "{task} went on: {dues:?}");
        assert!(after.iter().all(|(_, n)| **n != dead), "{task}: {dues:?}");
        let l = db
            .leases()
            .unwrap()
            .into_iter()
            .find(|l| l.task == task)
            .unwrap();
        assert!(l.holder.is_none(), "released on stop: {l:?}");
        assert_eq!(
            l.runs as usize,
            dues.len(),
            "{task}: one history row per recorded run"
        );
        eprintln!(
            "{task}: {} periods, {} after {dead} died; ran on {:?}",
            dues.len(),
            after.len(),
            dues.iter()
                .map(|(_, n)| n.as_str())
                .collect::<BTreeSet<_>>()
        );
    }
    // The archives the task made cover each row once.
    let archives = any.ledger.log_archives().unwrap();
    assert!(!archives.is_empty(), "the log was archived");
    for w in archives.windows(2) {
        assert!(w[0].upto_seq < w[1].from_seq, "{archives:?}");
    }
}

//! Issue 10 point 3: a parent that can fail. One member of a top parent's cluster holds the
//! publisher role (a lease in the shared database); a standby takes it when the publisher
//! dies and publishes the next number, which children follow byte-identical; an old
//! publisher that comes back is a standby whose publish is refused; `cluster promote`
//! moves the role by hand; a child with `upstream.parents` syncs from the next parent while
//! the first is down and returns to the first when it is back. Members share a PostgreSQL
//! database, so the cluster tests run in `failover_pg`; on SQLite a lone node holds the role.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use updhub::hub::Hub;

/// The members' lease TTL: short, so a dead publisher is replaced within seconds.
const TTL: Duration = Duration::from_secs(2);

fn active(hub: &Hub) -> u64 {
    hub.db.published().unwrap().map_or(0, |p| p.number)
}

fn cluster_number(hub: &Hub) -> u64 {
    hub.db.cluster_published().unwrap().map_or(0, |p| p.number)
}

fn publisher(hub: &Hub) -> Option<String> {
    hub.publisher().unwrap()
}

/// The parent this child synced from last.
fn syncing_from(child: &Hub) -> Option<String> {
    child.db.sync_state().unwrap().map(|s| s.parent)
}

/// A member of the cluster on the PostgreSQL database `url`, mirroring `zone`, its leases
/// held for [`TTL`].
fn member_opts<'a>(zone: &'a std::path::Path, url: &str) -> NodeOpts<'a> {
    NodeOpts {
        zone: Some(zone),
        database: Some(url.to_owned()),
        lease_ttl: Some(TTL),
        ..Default::default()
    }
}

/// Two serving members a and b of one cluster on the PostgreSQL database `url`, mirroring
/// one zone on schedule every `mirror_every` ("0s": never), version 1 published; a is the
/// publisher, b a standby holding version 1.
async fn two_members(
    dir: &std::path::Path,
    url: &str,
    mirror_every: &str,
) -> (std::path::PathBuf, Arc<Hub>, Running, Arc<Hub>, Running) {
    let zone = sample_zone_copy(dir);
    let opts = || member_opts(&zone, url);
    let a = node(dir, "a", opts());
    assert_eq!(mirror_and_publish(&a).await.number, 1);
    let b = member_of(dir, "b", &a, opts());
    a.set_shared_setting("upstream.mirror_interval", mirror_every)
        .unwrap();
    let sa = start(a.clone()).await;
    wait_for("a to be the publisher", || {
        publisher(&a).as_deref() == Some("a")
    })
    .await;
    let sb = start(b.clone()).await;
    wait_for("b to hold version 1", || active(&b) == 1).await;
    assert_eq!(publisher(&b).as_deref(), Some("a"), "b is a standby");
    (zone, a, sa, b, sb)
}

/// A node alone on its database (the embedded SQLite one, or PostgreSQL) holds the role
/// as it serves, publishes on schedule and by hand, and `promote` takes nothing from
/// anyone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_serving_node_is_the_publisher() {
    let dir = tempfile::tempdir().unwrap();
    let zone = sample_zone_copy(dir.path());
    let a = zone_node(dir.path(), "a", &zone);
    // Nobody serves yet: the role is free and the admin publishes by hand.
    assert_eq!(publisher(&a), None);
    assert_eq!(mirror_and_publish(&a).await.number, 1);
    let sa = start(a.clone()).await;
    wait_for("a to be the publisher", || {
        publisher(&a).as_deref() == Some("a")
    })
    .await;
    assert_eq!(a.status().unwrap().publisher.as_deref(), Some("a"));
    set_zone_revision(&zone, "2026112402");
    assert_eq!(
        mirror_and_publish(&a).await.number,
        2,
        "the publisher publishes"
    );
    assert_eq!(a.promote().unwrap(), None, "it held the role already");
    let row = lease(&a, updhub::leases::PUBLISHER).unwrap();
    assert_eq!(row.holder.unwrap().node, "a");
    sa.stop().await;
    // Stopped, it gives the role back at once.
    assert_eq!(publisher(&a), None);
}

/// The publisher is killed (nothing given back): b takes the role once its lease expires,
/// its scheduled mirror publishes the changed zone as version 2, and a child that lists
/// both members gets it from b, byte-identical. a restarted is a standby: what it would
/// publish (its own older mirror, as a round started before it died would) is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standby_publishes_the_next_number_when_the_publisher_dies_and_the_old_one_comes_back_a_standby(
) {
    let Some(url) = cluster_database("the_standby_publishes_the_next_number_when_the_publisher_dies_and_the_old_one_comes_back_a_standby", "failover_pg") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (zone, a, sa, b, sb) = two_members(dir.path(), &url, "1s").await;
    let c = child_of(dir.path(), "c", &a, None);
    let c = with_parents(c, &[&sa.url, &sb.url]);
    let rc = start(c.clone()).await;
    wait_for("the child on version 1", || active(&c) == 1).await;
    wait_for("a to run the scheduled mirror", || {
        lease(&a, "scheduled mirror").is_some_and(|l| l.last_node.as_deref() == Some("a"))
    })
    .await;

    let a_url = sa.url.clone();
    sa.kill().await;
    wait_for("b to take the publisher role", || {
        publisher(&b).as_deref() == Some("b")
    })
    .await;
    set_zone_revision(&zone, "2026112402");
    wait_for("b's scheduled mirror to publish version 2", || {
        cluster_number(&b) == 2
    })
    .await;
    let mirror = lease(&b, "scheduled mirror").unwrap();
    assert_eq!(mirror.last_node.as_deref(), Some("b"), "{mirror:?}");
    // Each sync tries a first (refused: it is dead), then b.
    wait_for("the child on version 2, from b", || {
        active(&c) == 2 && syncing_from(&c) == Some(sb.url.clone())
    })
    .await;
    let v2 = b.db.cluster_published().unwrap().unwrap();
    assert_eq!(c.db.published().unwrap().unwrap(), v2);
    assert_eq!(
        tree(&checkout(&c, dir.path(), "c-out")),
        tree(&checkout(&b, dir.path(), "b-out")),
        "the child holds what the new publisher published, byte for byte"
    );
    assert_eq!(c.manifest(&v2.root).unwrap(), b.manifest(&v2.root).unwrap());

    // The old publisher comes back: a standby, serving what b published.
    let sa = start_at(a.clone(), &a_url).await;
    wait_for("a to serve version 2", || active(&a) == 2).await;
    assert_eq!(publisher(&a).as_deref(), Some("b"));
    // a's own last mirror is version 1's content: publishing it now would give the
    // cluster a version that undoes b's. Refused, naming the publisher and the fix.
    let e = a.publish(None).unwrap_err().to_string();
    assert!(
        e.contains("b is the cluster's publisher") && e.contains("cluster promote"),
        "{e}"
    );
    // b's scheduled mirror goes on; a never runs it, and no number is added or given twice.
    let runs = lease(&b, "scheduled mirror").unwrap().runs;
    wait_for("two more scheduled mirrors", || {
        lease(&b, "scheduled mirror").unwrap().runs >= runs + 2
    })
    .await;
    assert_eq!(
        lease(&b, "scheduled mirror").unwrap().last_node.as_deref(),
        Some("b")
    );
    let numbers: Vec<u64> = b.versions().unwrap().iter().map(|v| v.number).collect();
    assert_eq!(numbers.len(), 2, "{numbers:?}");
    assert!(numbers.contains(&1) && numbers.contains(&2), "{numbers:?}");
    assert_eq!(cluster_number(&a), 2);
    for r in [rc, sa, sb] {
        r.stop().await;
    }
}

/// A child lists both members: while the first is stopped it syncs from the second (and
/// gets the version published meanwhile), and it goes back to the first once that serves
/// again; its reports reach the cluster either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_with_two_parents_syncs_from_the_second_while_the_first_is_down_and_returns_to_it()
{
    let Some(url) = cluster_database(
        "a_child_with_two_parents_syncs_from_the_second_while_the_first_is_down_and_returns_to_it",
        "failover_pg",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (zone, a, sa, b, sb) = two_members(dir.path(), &url, "0s").await;
    let c = child_of(dir.path(), "c", &a, None);
    let c = with_parents(c, &[&sa.url, &sb.url]);
    let rc = start(c.clone()).await;
    wait_for("the child on version 1, from a", || {
        active(&c) == 1 && syncing_from(&c) == Some(sa.url.clone())
    })
    .await;

    // a stops (giving its role back): b is the publisher and publishes version 2.
    let a_url = sa.url.clone();
    sa.stop().await;
    wait_for("b to take the publisher role", || {
        publisher(&b).as_deref() == Some("b")
    })
    .await;
    set_zone_revision(&zone, "2026112402");
    let v2 = mirror_and_publish(&b).await;
    assert_eq!(v2.number, 2);
    wait_for("the child on version 2, from b", || {
        active(&c) == 2 && syncing_from(&c) == Some(sb.url.clone())
    })
    .await;
    let s = c.status().unwrap();
    assert_eq!(s.parents, [a_url.clone(), sb.url.clone()]);

    // a serves again where it was: the child goes back to it, and reports there.
    let sa = start_at(a.clone(), &a_url).await;
    wait_for("the child back on a", || {
        syncing_from(&c) == Some(a_url.clone())
    })
    .await;
    assert_eq!(active(&c), 2);
    // Each member keeps the reports it received: b has c's from while a was down (c
    // reported to a only before), a has c's since it came back.
    let reported = |m: &Hub| {
        m.db.children()
            .unwrap()
            .into_iter()
            .find(|r| r.child_id == "c")
            .map(|r| r.number)
    };
    assert!(reported(&b).is_some(), "c reported to b");
    wait_for("c to report version 2 to a", || {
        reported(&a) == Some(Some(2))
    })
    .await;
    for r in [rc, sa, sb] {
        r.stop().await;
    }
}

/// `updhub cluster promote` on b moves the role from a, which is alive: a steps down (its
/// publish is refused), and the scheduled mirror moves to b.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_promote_moves_the_publisher_role_to_this_member() {
    let Some(url) = cluster_database(
        "cluster_promote_moves_the_publisher_role_to_this_member",
        "failover_pg",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (_zone, a, sa, b, sb) = two_members(dir.path(), &url, "1s").await;
    wait_for("a to run the scheduled mirror", || {
        lease(&a, "scheduled mirror").is_some_and(|l| l.last_node.as_deref() == Some("a"))
    })
    .await;

    let out = updhub_bin()
        .arg("--data")
        .arg(&b.data)
        .args(["cluster", "promote"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("b is the cluster's publisher now; a held the role"),
        "{text}"
    );
    assert_eq!(publisher(&a).as_deref(), Some("b"));
    let e = a.publish(None).unwrap_err().to_string();
    assert!(e.contains("node a is a standby"), "{e}");
    wait_for("the scheduled mirror to run on b", || {
        lease(&b, "scheduled mirror").is_some_and(|l| l.last_node.as_deref() == Some("b"))
    })
    .await;
    assert_eq!(b.status().unwrap().publisher.as_deref(), Some("b"));
    for r in [sa, sb] {
        r.stop().await;
    }
}

/// `upstream.parents` names a server of another cluster (a typo, or a hostile server): its
/// version, even a higher number, is never taken; the sync fails naming that URL as another
/// trust domain, and a parent of the child's own cluster listed first or after it still
/// serves the child.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_of_another_cluster_in_the_list_is_refused_by_name_and_never_followed() {
    let dir = tempfile::tempdir().unwrap();
    let zone = sample_zone_copy(dir.path());
    let a = zone_node(dir.path(), "a", &zone);
    assert_eq!(mirror_and_publish(&a).await.number, 1);
    let sa = start(a.clone()).await;
    let c = child_of(dir.path(), "c", &a, None);
    // Another cluster further ahead: its version 2 would pass a numbers-only check.
    let x_zone = dir.path().join("x-zone");
    copy_dir(&zone, &x_zone);
    let x = zone_node(dir.path(), "x", &x_zone);
    mirror_and_publish(&x).await;
    set_zone_revision(&x_zone, "2026112402");
    assert_eq!(mirror_and_publish(&x).await.number, 2);
    let sx = start(x.clone()).await;

    // Listed first: refused by name, and the child syncs from its own parent.
    let parents = [sx.url.clone(), sa.url.clone()];
    let mut failed = Vec::new();
    let (i, _) = updhub::child::sync_first(&c, &parents, |url, e| {
        failed.push((url.to_owned(), e.to_string()));
    })
    .await
    .unwrap();
    assert_eq!(i, 1);
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].0, sx.url);
    assert_eq!(active(&c), 1);

    // Its own parent (listed first) down: the other cluster is all that answers, and
    // still refused.
    let parents = [sa.url.clone(), sx.url.clone()];
    sa.stop().await;
    let e = updhub::child::sync_first(&c, &parents, |_, _| {})
        .await
        .unwrap_err();
    assert!(
        matches!(e, updhub::child::SyncError::ForeignCluster { ref url, .. } if url.starts_with(&sx.url)),
        "{e}"
    );
    assert!(e.to_string().contains(&sx.url), "{e}");
    assert_eq!(
        c.db.published().unwrap().map(|p| (p.number, p.root)),
        a.db.published().unwrap().map(|p| (p.number, p.root)),
        "the child keeps its own cluster's version"
    );
    sx.stop().await;
}

/// A publisher that stalls (a long pause: its renewals stop, nothing is given back) past
/// its lease while a standby takes the role: when it wakes, its publish is refused in the
/// publish transaction, whatever time it read before the pause, and nothing is numbered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_that_stalled_past_its_lease_is_fenced_when_it_wakes() {
    let Some(url) = cluster_database(
        "a_publisher_that_stalled_past_its_lease_is_fenced_when_it_wakes",
        "failover_pg",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let zone = sample_zone_copy(dir.path());
    let a = node(dir.path(), "a", member_opts(&zone, &url));
    let v1 = mirror_and_publish(&a).await;
    let b = member_of(dir.path(), "b", &a, member_opts(&zone, &url));
    let (ha, hb) = (a.holder().unwrap(), b.holder().unwrap());
    let ttl = TTL.as_millis() as i64;
    let task = updhub::leases::PUBLISHER;
    // a holds the role, reads the time and stalls; b takes the role once a's lease expired
    // (by the database's clock), and holds it for a minute.
    let before = chrono::Utc::now();
    let (got, _, _) = a.db.acquire_lease(task, &ha, ttl, ttl).unwrap();
    assert_ne!(got, updhub::leases::Outcome::Refused);
    let (got, _, _) = b.db.acquire_lease(task, &hb, 60_000, ttl).unwrap();
    assert_eq!(got, updhub::leases::Outcome::Refused, "a's lease is live");
    wait_for("b to take the role once a's lease expired", || {
        b.db.acquire_lease(task, &hb, 60_000, ttl).unwrap().0 == updhub::leases::Outcome::Taken
    })
    .await;

    // a wakes with a reading of its own (another root) and publishes it, with the time it
    // read before the pause and with a time an hour ahead: refused both ways, naming b
    // (the fence reads the database's clock, not the time a gives).
    set_zone_revision(&zone, "2026112402");
    a.mirror(None, false).await.unwrap();
    let m = a.db.mirrored().unwrap().unwrap();
    assert_ne!(m.root, v1.root);
    for now in [before, chrono::Utc::now() + chrono::Duration::hours(1)] {
        let r =
            a.db.publish(&ha, m.root, m.files, m.bytes, TTL, now, false, |n| {
                updhub::repo::Published::sign(
                    m.root,
                    n,
                    now + chrono::Duration::days(1),
                    &a.keys.signing,
                )
            })
            .unwrap();
        assert_eq!(r.unwrap_err(), hb, "fenced at {now}");
    }
    assert_eq!(a.db.cluster_published().unwrap(), Some(v1));
    assert_eq!(a.versions().unwrap().len(), 1, "no number was given");
}

/// A copy of a member's data folder (a cloned machine) served as the same node: it would
/// hold the node's leases and the publisher role as one with the original. Once it has run
/// longer than the membership's liveness window, the younger process finds the other's row
/// and stops serving with the reason; the original goes on as the publisher.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_of_a_data_folder_served_as_the_same_node_stops_and_the_original_goes_on() {
    let Some(url) = cluster_database(
        "a_copy_of_a_data_folder_served_as_the_same_node_stops_and_the_original_goes_on",
        "failover_pg",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let zone = sample_zone_copy(dir.path());
    let a = node(dir.path(), "a", member_opts(&zone, &url));
    mirror_and_publish(&a).await;
    let sa = start(a.clone()).await;
    wait_for("a to be the publisher", || {
        publisher(&a).as_deref() == Some("a")
    })
    .await;
    // The copy: the same files, the same instance token, started after the original (in
    // another second: the membership stores start times in seconds, and two processes
    // started in the same one are not told apart).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let copied = dir.path().join("a-copy");
    copy_dir(&a.data, &copied);
    let copy = Arc::new(Hub::open(&copied).unwrap());
    assert_eq!(copy.id(), a.id());
    let sc = start(copy.clone()).await;
    let ended = tokio::time::timeout(
        updhub::hub::MEMBER_ALIVE + updhub::hub::MEMBER_EVERY * 4,
        sc.exited(),
    )
    .await
    .expect("the copy stops serving by itself");
    let why = ended.unwrap_err().to_string();
    assert!(
        why.contains("a copy of this data folder") && why.contains("this process started after it"),
        "{why}"
    );
    // The original serves on, as the publisher.
    tokio::time::sleep(updhub::hub::MEMBER_EVERY * 2).await;
    assert_eq!(publisher(&a).as_deref(), Some("a"));
    assert!(a.cluster_check().unwrap().alive.contains(&"a".to_owned()));
    sa.stop().await;
}

/// A task that counts its lease runner's rounds and its runs, under the name of a task the
/// serving members hold ("purge stations").
struct Probe {
    rounds: Arc<std::sync::atomic::AtomicU32>,
    runs: Arc<std::sync::atomic::AtomicU32>,
}

impl updhub::leases::ClusterTask for Probe {
    fn name(&self) -> &'static str {
        "purge stations"
    }

    fn period(&self) -> Option<Duration> {
        // The runner asks twice a round, before it takes or renews the lease.
        self.rounds
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Some(Duration::from_secs(1))
    }

    async fn run(&mut self, _due_ms: i64) -> Result<String, String> {
        self.runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok("ran".into())
    }
}

/// A member whose own clock is an hour ahead (the database's clock is right) beside a
/// healthy publisher: its publish is fenced, and it takes neither the publisher role nor a
/// task's lease from their holder, which stays the publisher.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_whose_clock_is_an_hour_ahead_takes_no_lease_from_a_healthy_holder() {
    let Some(url) = cluster_database(
        "a_member_whose_clock_is_an_hour_ahead_takes_no_lease_from_a_healthy_holder",
        "failover_pg",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let zone = sample_zone_copy(dir.path());
    let a = node(dir.path(), "a", member_opts(&zone, &url));
    let v1 = mirror_and_publish(&a).await;
    // b reads a zone of its own: the revision it moves to below must not reach a's
    // scheduled mirror, which would publish it as the publisher (and rightly so).
    let b_zone = dir.path().join("b-zone");
    copy_dir(&zone, &b_zone);
    let b = member_of(dir.path(), "b", &a, member_opts(&b_zone, &url));
    b.clock.set_offset(chrono::Duration::hours(1));
    let sa = start(a.clone()).await;
    wait_for(
        "a to be the publisher and to hold the purge's lease",
        || {
            publisher(&a).as_deref() == Some("a")
                && a.db.leases().unwrap().iter().any(|l| {
                    l.task == "purge stations"
                        && l.holder.as_ref().map(|h| h.node.as_str()) == Some("a")
                })
        },
    )
    .await;

    // b's publish of its own reading (another root) is fenced: a holds the role.
    set_zone_revision(&b_zone, "2026112402");
    b.mirror(None, false).await.unwrap();
    let e = b.publish(None).unwrap_err().to_string();
    assert!(e.contains("a is the cluster's publisher"), "{e}");
    assert_eq!(a.db.cluster_published().unwrap(), Some(v1));

    // b asks for the role: refused.
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let (role_tx, mut role) = tokio::sync::watch::channel(false);
    let holding = tokio::spawn(updhub::leases::hold_role(
        b.clone(),
        b.holder().unwrap(),
        TTL,
        updhub::leases::PUBLISHER,
        role_tx,
        stop.clone(),
    ));
    role.changed().await.unwrap();
    assert!(!*role.borrow(), "b took the role from a healthy publisher");

    // b runs the purge under its lease: a keeps the lease, b never runs it.
    let (rounds, runs) = (Arc::default(), Arc::default());
    let probe = Probe {
        rounds: Arc::clone(&rounds),
        runs: Arc::clone(&runs),
    };
    let running = tokio::spawn(updhub::leases::run(
        b.clone(),
        b.holder().unwrap(),
        TTL,
        probe,
        stop,
    ));
    wait_for("b's runner to try the lease three times", || {
        rounds.load(std::sync::atomic::Ordering::SeqCst) >= 6
    })
    .await;
    assert_eq!(
        runs.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "b ran a's task"
    );
    let purge =
        a.db.leases()
            .unwrap()
            .into_iter()
            .find(|l| l.task == "purge stations")
            .unwrap();
    assert_eq!(purge.holder.map(|h| h.node).as_deref(), Some("a"));
    assert!(!*role.borrow(), "b took the role from a healthy publisher");
    assert_eq!(publisher(&a).as_deref(), Some("a"));
    stop_tx.send(true).unwrap();
    holding.await.unwrap();
    running.await.unwrap();
    sa.stop().await;
}

/// Two copies of one data folder (the same instance token) started as the same node in
/// the same second: the start times (kept in seconds) cannot tell them apart, their
/// processes' ids can. Once past the membership's liveness window, one of them stops
/// serving with the reason; the other goes on as the publisher.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_copies_of_a_data_folder_started_in_the_same_second_are_told_apart() {
    let Some(url) = cluster_database(
        "two_copies_of_a_data_folder_started_in_the_same_second_are_told_apart",
        "failover_pg",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let zone = sample_zone_copy(dir.path());
    let a = node(dir.path(), "a", member_opts(&zone, &url));
    mirror_and_publish(&a).await;
    let copied = dir.path().join("a-copy");
    copy_dir(&a.data, &copied);
    let copy = Arc::new(Hub::open(&copied).unwrap());
    assert_eq!(
        (copy.id(), copy.instance().unwrap()),
        (a.id(), a.instance().unwrap())
    );
    // Both start early in one second, so their start times fall in it.
    while chrono::Utc::now().timestamp_subsec_millis() > 200 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let second = chrono::Utc::now().timestamp();
    let (sa, sc) = (start(a.clone()).await, start(copy.clone()).await);
    assert_eq!(
        chrono::Utc::now().timestamp(),
        second,
        "both started in one second"
    );
    let (ea, ec) = (sa.exited(), sc.exited());
    tokio::pin!(ea, ec);
    let (stopped, ended) = tokio::time::timeout(
        updhub::hub::MEMBER_ALIVE + updhub::hub::MEMBER_EVERY * 4,
        async {
            tokio::select! {
                r = &mut ea => ("a", r),
                r = &mut ec => ("the copy", r),
            }
        },
    )
    .await
    .expect("one of the two copies stops serving by itself");
    let why = ended.unwrap_err().to_string();
    assert!(
        why.contains("a copy of this data folder") && why.contains("stops serving"),
        "{stopped}: {why}"
    );
    // The other serves on, as the publisher.
    let other = async {
        if stopped == "a" {
            (&mut ec).await
        } else {
            (&mut ea).await
        }
    };
    assert!(
        tokio::time::timeout(updhub::hub::MEMBER_EVERY * 2, other)
            .await
            .is_err(),
        "both copies stopped"
    );
    assert_eq!(publisher(&a).as_deref(), Some("a"));
    assert!(a.cluster_check().unwrap().alive.contains(&"a".to_owned()));
}

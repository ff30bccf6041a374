//! Issue 10 point 1: the cluster protocol (`updhub::announce`), unicast on 127.0.0.1 only
//! (never multicast on the host's interfaces). A serving node drops and counts forged,
//! stale, replayed, foreign, malformed and its own datagrams, each in its counter, and
//! changes nothing for them; on one PostgreSQL database, a setting changed on one member is
//! applied by the others within a second of the change, a version published on one is
//! fetched at once, a member that stops is noticed; with the protocol off the members still
//! converge through the database polls.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use updhub::announce::wire::{self, Announcement};
use updhub::announce::Counts;
use updhub::config::Protocol;
use updhub::Hub;

/// `hub` reopened with the cluster protocol on `protocol`, on 127.0.0.1 at any free port,
/// announcing to `peers` besides the members the database lists.
fn with_protocol(hub: Arc<Hub>, protocol: Protocol, peers: Vec<String>) -> Arc<Hub> {
    let (data, mut cfg) = (hub.data.clone(), hub.config.clone());
    drop(hub);
    cfg.cluster.protocol = protocol;
    cfg.cluster.interface = std::net::Ipv4Addr::LOCALHOST;
    cfg.cluster.port = 0;
    cfg.cluster.peers = peers;
    std::fs::write(data.join("updhub.toml"), cfg.to_commented_toml()).unwrap();
    Arc::new(Hub::open_with(&data, cfg).unwrap())
}

/// Where `hub`'s serving node receives announcements, once it listens.
async fn udp_addr(hub: &Hub) -> std::net::SocketAddr {
    wait_for("the node to listen for announcements", || {
        hub.announce.local_addr().is_some()
    })
    .await;
    hub.announce.local_addr().unwrap()
}

/// Wait until `hub`'s counters of what it received read `want` (what it sent aside).
async fn expect_counts(hub: &Hub, want: Counts) {
    wait_for(&format!("the counters to read {want:?}"), || {
        let mut got = hub.announce.counts();
        got.sent = 0;
        got == want
    })
    .await;
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Forged, stale, replayed, foreign, malformed and own datagrams each change nothing and
/// are counted in their own counter; a genuine one from another member is taken. The
/// counters reach `updhub status` through the node's row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_datagrams_change_nothing_and_each_is_counted_in_its_counter() {
    let dir = tempfile::tempdir().unwrap();
    let zone = sample_zone_copy(dir.path());
    // The test listens as a peer of the node, to capture what it really sends.
    let capture = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let n1 = with_protocol(
        zone_node(dir.path(), "n1", &zone),
        Protocol::Unicast,
        vec![capture.local_addr().unwrap().to_string()],
    );
    let published = mirror_and_publish(&n1).await;
    let srv = start(n1.clone()).await;
    let to = udp_addr(&n1).await;
    let mut buf = [0u8; 2048];
    let (n, from) = tokio::time::timeout(Duration::from_secs(30), capture.recv_from(&mut buf))
        .await
        .expect("the node announces itself to its peer")
        .unwrap();
    assert_eq!(
        from, to,
        "announcements leave from the socket they are heard on"
    );
    let captured = buf[..n].to_vec();
    let key = &n1.keys.verifying;
    let cluster = n1.db.cluster_id().to_string();
    let real = wire::decode(&captured, key, &cluster).unwrap();
    assert_eq!(real.node, "n1");
    assert_eq!(
        real.active.map(|v| (v.n, v.root)),
        Some((published.number, published.root))
    );
    assert_eq!(real.rev, n1.settings_revision());

    let rev = n1.settings_revision();
    let send = |bytes: Vec<u8>| {
        let capture = &capture;
        async move {
            capture.send_to(&bytes, to).await.unwrap();
        }
    };
    // A member "n2" of the same cluster announcing a newer settings revision and version:
    // what the bad datagrams below claim, forged or replayed.
    let claim = |seq: u64| Announcement {
        node: "n2".into(),
        sender: "00000000000000aa".into(),
        started_ms: now_ms() - 1000,
        at_ms: now_ms(),
        seq,
        rev: rev + 100,
        active: Some(wire::Version {
            n: published.number + 100,
            root: published.root,
        }),
        ..real.clone()
    };
    let other_key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);

    // Forged: names this cluster's key, signed with another.
    send(wire::encode(&claim(1), &other_key).unwrap()).await;
    // Another cluster's: its own key, or this key under another cluster id.
    let theirs = Announcement {
        key: wire::key_fp(&other_key.verifying_key()),
        ..claim(1)
    };
    send(wire::encode(&theirs, &other_key).unwrap()).await;
    let elsewhere = Announcement {
        cluster: "another-cluster".into(),
        ..claim(1)
    };
    send(wire::encode(&elsewhere, &n1.keys.signing).unwrap()).await;
    // Stale: a minute old, and a minute ahead.
    for skew in [-60_000, 60_000] {
        let stale = Announcement {
            at_ms: now_ms() + skew,
            ..claim(1)
        };
        send(wire::encode(&stale, &n1.keys.signing).unwrap()).await;
    }
    // Garbage, and a datagram too long to be one.
    send(b"hello, cluster".to_vec()).await;
    send(vec![b'U'; 1500]).await;
    // Its own announcement, sent back to it.
    send(captured.clone()).await;
    expect_counts(
        &n1,
        Counts {
            bad_signature: 1,
            foreign: 2,
            stale: 2,
            malformed: 2,
            own: 1,
            ..Counts::default()
        },
    )
    .await;
    assert_eq!(n1.settings_revision(), rev, "nothing was applied");

    // A genuine one of n2 that claims nothing new (its settings and version are n1's) is
    // taken; the same datagram again is a replay, and so is an older one of that process.
    let genuine = Announcement {
        rev,
        active: real.active,
        ..claim(5)
    };
    let bytes = wire::encode(&genuine, &n1.keys.signing).unwrap();
    send(bytes.clone()).await;
    expect_counts(
        &n1,
        Counts {
            accepted: 1,
            bad_signature: 1,
            foreign: 2,
            stale: 2,
            malformed: 2,
            own: 1,
            ..Counts::default()
        },
    )
    .await;
    send(bytes).await;
    send(wire::encode(&claim(4), &n1.keys.signing).unwrap()).await;
    let all = Counts {
        accepted: 1,
        bad_signature: 1,
        foreign: 2,
        stale: 2,
        malformed: 2,
        own: 1,
        replayed: 2,
        ..Counts::default()
    };
    expect_counts(&n1, all).await;
    assert_eq!(n1.settings_revision(), rev, "nothing was applied");
    assert_eq!(
        n1.db.published().unwrap().map(|p| p.number),
        Some(published.number)
    );
    assert_eq!(n1.announce.heard_from(), vec!["n2".to_owned()]);

    // The counters reach `status` through the node's row (written every few seconds).
    wait_for("the counters in status", || {
        n1.status().unwrap().announcers.iter().any(|a| {
            let c: Counts = serde_json::from_value(a.counters.clone()).unwrap();
            a.node_id == "n1" && a.protocol == "unicast" && c.replayed == 2 && c.foreign == 2
        })
    })
    .await;
    srv.stop().await;
}

/// A new version on `hub`'s zone, mirrored and published.
async fn publish_next(
    hub: &Hub,
    zone: &std::path::Path,
    revision: &str,
) -> updhub::repo::Published {
    set_zone_revision(zone, revision);
    // Only the publisher publishes, and any serving member may hold the role: take it.
    hub.promote().unwrap();
    mirror_and_publish(hub).await
}

/// Wait until every one of `hubs` holds settings revision `rev`; fail if that takes a
/// second or more from `set_at`.
async fn applied_within_a_second(hubs: &[Arc<Hub>], set_at: Instant, rev: i64) {
    while hubs.iter().any(|h| h.settings_revision() < rev) {
        assert!(
            set_at.elapsed() < Duration::from_secs(1),
            "the members did not apply revision {rev} within a second: {:?}",
            hubs.iter()
                .map(|h| h.settings_revision())
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!(
        "revision {rev} applied on every member {} ms after it was set",
        set_at.elapsed().as_millis()
    );
}

/// `n` members m1, m2, … of one cluster on a new PostgreSQL database, m1 with a version
/// published, on `protocol`; `None` (the test skipped, saying why) on SQLite or without a
/// PostgreSQL server.
async fn members(
    test: &str,
    n: usize,
    protocol: Protocol,
) -> Option<(tempfile::TempDir, std::path::PathBuf, Vec<Arc<Hub>>)> {
    if !on_postgres() {
        eprintln!(
            "SKIPPED {test} on SQLite: an embedded database has one member; it runs in announce_pg"
        );
        return None;
    }
    let url = new_pg_database();
    let dir = tempfile::tempdir().unwrap();
    let zone = sample_zone_copy(dir.path());
    let opts = || NodeOpts {
        zone: Some(&zone),
        database: Some(url.clone()),
        ..Default::default()
    };
    let m1 = node(dir.path(), "m1", opts());
    mirror_and_publish(&m1).await;
    let mut hubs = vec![m1];
    for i in 2..=n {
        hubs.push(member_of(dir.path(), &format!("m{i}"), &hubs[0], opts()));
    }
    if protocol != Protocol::Off {
        hubs = hubs
            .into_iter()
            .map(|h| with_protocol(h, protocol, Vec::new()))
            .collect();
    }
    Some((dir, zone, hubs))
}

/// Three members of one cluster on unicast, finding each other in the database: a setting
/// changed on one is applied by the other two within one second of the change (the
/// database poll that would apply it runs every 5 s, and each applying node counts the
/// revision it applied because of an announcement); a version published on one is fetched
/// by the others after its announcement; a member that stops is noticed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_setting_changed_on_one_member_is_applied_by_the_others_within_a_second() {
    let Some((_dir, zone, hubs)) = members(
        "a_setting_changed_on_one_member_is_applied_by_the_others_within_a_second",
        3,
        Protocol::Unicast,
    )
    .await
    else {
        return;
    };
    let mut running = Vec::new();
    for h in &hubs {
        running.push(start(h.clone()).await);
    }
    for h in &hubs {
        wait_for("every member to hear the two others", || {
            h.announce.heard_from().len() == 2
        })
        .await;
    }
    assert!(
        updhub::hub::MEMBER_EVERY >= Duration::from_secs(5),
        "the database poll alone cannot apply a setting within a second"
    );
    let (m1, others) = (&hubs[0], &hubs[1..]);
    let applied = |hubs: &[Arc<Hub>]| -> Vec<u64> {
        hubs.iter()
            .map(|h| h.announce.counts().settings_applied)
            .collect()
    };

    let before = applied(others);
    let set_at = Instant::now();
    let rev = m1.set_shared_setting("upstream.stale_after", "3h").unwrap();
    applied_within_a_second(others, set_at, rev).await;
    // Counted just after the revision is applied (a poll applying it would count nothing).
    let want: Vec<u64> = before.iter().map(|n| n + 1).collect();
    wait_for(
        "each to count the revision it applied on an announcement",
        || applied(others) == want,
    )
    .await;

    // The same from the command line: `updhub config set` is another process of m1, which
    // announces once after the change; every member applies it, m1's server too.
    let before = applied(&hubs);
    let cli = Arc::new(Hub::open(&m1.data).unwrap());
    let set_at = Instant::now();
    let rev = cli
        .set_shared_setting("upstream.stale_after", "4h")
        .unwrap();
    assert_eq!(updhub::announce::once(&cli).await.unwrap(), 3);
    applied_within_a_second(&hubs, set_at, rev).await;
    let want: Vec<u64> = before.iter().map(|n| n + 1).collect();
    wait_for(
        "each to count the revision it applied on an announcement",
        || applied(&hubs) == want,
    )
    .await;
    drop(cli);

    // A new version published on m1 is fetched by the others when they hear of it.
    let v2 = publish_next(m1, &zone, "2026112402").await;
    let published_at = Instant::now();
    for h in others {
        wait_for("every member to serve the new version", || {
            h.db.published().unwrap().map(|p| p.root) == Some(v2.root)
        })
        .await;
        assert!(h.announce.counts().catch_ups >= 1, "{}", h.id());
    }
    eprintln!(
        "version {} served by every member {} ms after it was published (protocol on)",
        v2.number,
        published_at.elapsed().as_millis()
    );

    // m3 stops: the others notice within a few periods.
    running.pop().unwrap().stop().await;
    for h in &hubs[..2] {
        wait_for("m3 to be noticed silent", || {
            h.announce.counts().silent == vec!["m3".to_owned()]
        })
        .await;
    }
    for r in running {
        r.stop().await;
    }
}

/// With the protocol off (the default), nothing is sent or heard, and the members still
/// converge through the database: a setting and a new version reach the other member.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_protocol_off_the_members_still_converge_through_the_database() {
    let Some((_dir, zone, hubs)) = members(
        "with_the_protocol_off_the_members_still_converge_through_the_database",
        2,
        Protocol::Off,
    )
    .await
    else {
        return;
    };
    let (m1, m2) = (hubs[0].clone(), hubs[1].clone());
    assert_eq!(m2.config.cluster.protocol, Protocol::Off);
    let r1 = start(m1.clone()).await;
    let r2 = start(m2.clone()).await;
    m1.set_shared_setting("upstream.stale_after", "3h").unwrap();
    let v2 = publish_next(&m1, &zone, "2026112402").await;
    let published_at = Instant::now();
    wait_for("m2 to apply the setting through the database", || {
        m2.live().upstream.stale_after == Duration::from_secs(3 * 3600)
    })
    .await;
    wait_for("m2 to serve the new version", || {
        m2.db.published().unwrap().map(|p| p.root) == Some(v2.root)
    })
    .await;
    eprintln!(
        "the setting and version {} both on m2 {} ms after the version was published (protocol off: the polls)",
        v2.number,
        published_at.elapsed().as_millis()
    );
    for h in [&m1, &m2] {
        assert_eq!(h.announce.counts(), Counts::default());
        assert_eq!(h.announce.local_addr(), None);
    }
    assert!(m1.status().unwrap().announcers.is_empty());
    r1.stop().await;
    r2.stop().await;
}

/// A node on the multicast group with `cluster.interface` 127.0.0.1, serving inside a user
/// and network namespace made for the test (never on the host's own interfaces), with the
/// group routed on lo: `script` (bash) runs there with `$UPDHUB`, `$D` (the node's data
/// folder) and `wait_log TEXT` (waits for TEXT in `$D/serve.log`), after `start_serve`
/// starts the node with debug logs. Returns that log once the script succeeded; `None`
/// after saying why the test is skipped (namespaces not allowed; or PostgreSQL, whose
/// server is outside the namespace).
fn in_namespace(test: &str, script: &str) -> Option<String> {
    if on_postgres() {
        eprintln!("SKIPPED {test} on PostgreSQL: the database server is outside the test's network namespace; it runs in announce (SQLite)");
        return None;
    }
    let allowed = std::process::Command::new("unshare")
        .args(["-rn", "true"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !allowed {
        eprintln!("SKIPPED {test}: `unshare -rn` (an unprivileged user and network namespace) is not allowed here, and multicast is never sent on the host's own interfaces");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let zone = sample_zone_copy(dir.path());
    let n1 = zone_node(dir.path(), "n1", &zone);
    let (data, mut cfg) = (n1.data.clone(), n1.config.clone());
    drop(n1);
    cfg.cluster.protocol = Protocol::Multicast;
    cfg.cluster.interface = std::net::Ipv4Addr::LOCALHOST;
    std::fs::write(data.join("updhub.toml"), cfg.to_commented_toml()).unwrap();
    let script = format!(
        r#"
        set -e
        ip link set lo up
        ip link set lo multicast on
        ip route add 224.0.0.0/4 dev lo
        start_serve() {{
            UPDHUB_LOG=updhub=debug "$UPDHUB" --data "$D" serve --listen 127.0.0.1:0 --station-listen 127.0.0.1:0 > "$D/serve.log" 2>&1 &
            pid=$!
        }}
        wait_log() {{
            i=0
            until grep -q "$1" "$D/serve.log"; do
                i=$((i + 1))
                if [ $i -gt 300 ]; then kill $pid; echo "not in the log: $1"; cat "$D/serve.log"; exit 3; fi
                sleep 0.1
            done
        }}
        {script}
        kill $pid
        wait $pid || true
    "#
    );
    let out = std::process::Command::new("unshare")
        .args(["-rn", "bash", "-c", &script])
        .env("UPDHUB", env!("CARGO_BIN_EXE_updhub"))
        .env("D", &data)
        .output()
        .unwrap();
    let log = std::fs::read_to_string(data.join("serve.log")).unwrap_or_default();
    assert!(
        out.status.success(),
        "{}\n{}\n{log}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some(log)
}

/// Multicast: a node serving on the group hears `updhub config set`, run on its data
/// folder, announce the change to the group, and applies it (inside a network namespace).
#[test]
fn a_change_announced_to_the_multicast_group_is_heard_inside_a_network_namespace() {
    let Some(log) = in_namespace(
        "a_change_announced_to_the_multicast_group_is_heard_inside_a_network_namespace",
        r#"
        start_serve
        wait_log "cluster protocol: multicast on UDP"
        "$UPDHUB" --data "$D" config set upstream.stale_after 2d
        wait_log "revision 1 applied (announced by member n1)"
        "#,
    ) else {
        return;
    };
    assert!(
        log.contains(
            "cluster protocol: multicast on UDP 127.0.0.1:11111 and group 232.0.0.1:11111 on 127.0.0.1"
        ),
        "{log}"
    );
}

/// `cluster.interface` set to the internal network's address: a datagram that reaches this
/// host at its address on another network (here 10.9.9.9, a second address: a namespace
/// may not make a second interface) is not heard at all, while the group and this node's
/// own interface address (where `cluster.peers` send) are.
#[test]
fn with_an_interface_set_the_protocol_hears_nothing_from_another_network() {
    let Some(log) = in_namespace(
        "with_an_interface_set_the_protocol_hears_nothing_from_another_network",
        r#"
        ip addr add 10.9.9.9/32 dev lo
        start_serve
        wait_log "cluster protocol: multicast on UDP"
        echo junk > /dev/udp/10.9.9.9/11111
        echo junk > /dev/udp/127.0.0.1/11111
        wait_log "a datagram from 127.0.0.1:[0-9]* dropped: not an updhub announcement"
        "#,
    ) else {
        return;
    };
    // Sent first: a socket that heard both would have logged it first.
    assert!(!log.contains("a datagram from 10.9.9.9"), "{log}");
    // The group is heard too: the node's own announcements come back on it.
    assert!(log.contains("dropped: this node sent it"), "{log}");
}

/// Issue 18 item 10: what a validly signed announcement may carry. Made with the cluster's
/// key (an insider, or a stolen key): node ids that break the id rule (empty, `../x`, a
/// NUL, a line feed that would forge log lines) are dropped and counted, never heard; a
/// flood of new node ids leaves the members heard, the SILENT list and `status` bounded,
/// and the node says it capped them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announcements_with_bad_ids_are_dropped_and_a_flood_of_new_ids_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let zone = sample_zone_copy(dir.path());
    let capture = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let n1 = with_protocol(
        zone_node(dir.path(), "n1", &zone),
        Protocol::Unicast,
        vec![capture.local_addr().unwrap().to_string()],
    );
    // A short period: the flood's members fall silent within a second.
    let (data, mut cfg) = (n1.data.clone(), n1.config.clone());
    drop(n1);
    cfg.cluster.announce_every = Duration::from_millis(200);
    let n1 = Arc::new(Hub::open_with(&data, cfg).unwrap());
    mirror_and_publish(&n1).await;
    let srv = start(n1.clone()).await;
    let to = udp_addr(&n1).await;
    let mut buf = [0u8; 2048];
    let (n, _) = tokio::time::timeout(Duration::from_secs(30), capture.recv_from(&mut buf))
        .await
        .expect("the node announces itself")
        .unwrap();
    let real = wire::decode(&buf[..n], &n1.keys.verifying, n1.db.cluster_id().as_str()).unwrap();
    let signed = |node: &str, seq: u64| {
        let a = Announcement {
            node: node.to_owned(),
            sender: "00000000000000bb".into(),
            at_ms: now_ms(),
            seq,
            ..real.clone()
        };
        wire::encode(&a, &n1.keys.signing).unwrap()
    };

    for bad in [
        "",
        "../x",
        "n2\0",
        "n2\n2026-12-08T00:00:00Z  INFO updhub: enrolled hq",
    ] {
        capture.send_to(&signed(bad, 1), to).await.unwrap();
    }
    wait_for("four datagrams with bad ids dropped", || {
        n1.announce.counts().bad_field == 4
    })
    .await;
    let c = n1.announce.counts();
    assert_eq!(c.accepted, 0, "{c:?}");
    assert!(n1.announce.heard_from().is_empty());

    // 600 new members, 60 at a time (the socket's buffer is not the thing tested).
    let flood = 600u64;
    let name = |i: u64| format!("flood-{i:04}-{}", "x".repeat(40));
    for chunk in 0..flood / 60 {
        for i in chunk * 60..(chunk + 1) * 60 {
            capture.send_to(&signed(&name(i), i + 1), to).await.unwrap();
        }
        wait_for("the chunk taken", || {
            n1.announce.counts().accepted >= (chunk + 1) * 60
        })
        .await;
    }
    let c = n1.announce.counts();
    assert!(c.capped > 0, "{c:?}");
    assert!(n1.announce.heard_from().len() <= 256);
    // Silent after three periods: the SILENT list names a few and counts the rest.
    wait_for("the flood silent", || n1.announce.counts().silent_more > 0).await;
    let c = n1.announce.counts();
    assert!(c.silent.len() <= 16, "{} named", c.silent.len());
    assert!(c.to_string().contains("CAPPED"), "{c}");
    // `status` shows the counters through the node's row, bounded.
    wait_for("the capped counters in status", || {
        n1.status().unwrap().announcers.iter().any(|a| {
            let c: Counts = serde_json::from_value(a.counters.clone()).unwrap();
            a.node_id == "n1" && c.capped > 0 && c.silent_more > 0
        })
    })
    .await;
    let shown = serde_json::to_string(&n1.status().unwrap().announcers).unwrap();
    assert!(
        shown.len() < 4000,
        "{} bytes of announcers in status",
        shown.len()
    );
    srv.stop().await;
}

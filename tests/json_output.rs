//! Every `--json` command of the binary on a node that has lived a little: a child enrolled
//! by link, a grant out to it, a station, a second version staged with a canary rollout, and
//! (on PostgreSQL) a second member. A fresh node has none of these, and each has broken a
//! command's JSON before (`status --json` and `link list --json` failed on every parent with
//! a link: the CA issuer could not be written).

mod common;

use common::*;
use serde_json::Value;

/// Run the binary on `data` with `args`; its stdout parsed as JSON, after checking it
/// succeeded.
fn json(data: &std::path::Path, args: &[&str]) -> Value {
    let out = updhub_bin()
        .arg("--data")
        .arg(data)
        .args(args)
        .output()
        .unwrap();
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "updhub {args:?} failed:\n{o}\n{e}");
    serde_json::from_str(&o)
        .unwrap_or_else(|err| panic!("updhub {args:?}: not JSON ({err}):\n{o}\n{e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_json_command_writes_json_on_a_parent_with_links_grants_members_and_a_rollout() {
    let dir = tempfile::tempdir().unwrap();
    let zone = sample_zone_copy(dir.path());
    let iss = issuer();
    let database = test_database();
    let parent = node(
        dir.path(),
        "parent",
        NodeOpts {
            zone: Some(&zone),
            issuers: vec![issuer_hex(&iss)],
            database: database.clone(),
            ..Default::default()
        },
    );
    mirror_and_publish(&parent).await;
    updhub::hub::add_license_file(&parent, &key_file(dir.path(), &iss, "K1", 10, 365))
        .await
        .unwrap();
    // A second member shares the database (an embedded one has a single member).
    let member = database.as_ref().map(|url| {
        member_of(
            dir.path(),
            "b",
            &parent,
            NodeOpts {
                database: Some(url.clone()),
                issuers: vec![issuer_hex(&iss)],
                ..Default::default()
            },
        )
    });
    let srv = start_with_stations(parent.clone()).await;
    let member_srv = match &member {
        Some(b) => Some(start(b.clone()).await),
        None => None,
    };
    let child = enrolled(dir.path(), "c1", &parent, &srv).await;
    updhub::child::sync_once(&child, &srv.url).await.unwrap();
    let (reg, body) = register(
        &station_client(&parent),
        srv.stations_url.as_deref().unwrap(),
        "ws-1",
    )
    .await;
    assert_eq!(reg, 200, "{body}");
    let p = &parent.data;

    // A grant out to the linked child, and a canary rollout of a staged version 2.
    let out = updhub_bin()
        .arg("--data")
        .arg(p)
        .args([
            "license", "donate", "--to", "c1", "--count", "2", "--for", "30d",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = updhub_bin()
        .arg("--data")
        .arg(p)
        .args(["config", "set", "rollout.canary", "[\"c1\"]"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The child takes the grant at its next round.
    updhub::child::sync_once(&child, &srv.url).await.unwrap();
    // Only the cluster's publisher publishes; either member may hold the role as both start.
    parent.promote().unwrap();
    set_zone_revision(&zone, "2026112402");
    let v2 = mirror_and_publish(&parent).await;
    assert_eq!(v2.number, 2);

    let status = json(p, &["status", "--json"]);
    assert_eq!(status["role"], "parent", "{status:#}");
    let links = json(p, &["link", "list", "--json"]);
    let text = links.to_string();
    assert!(
        text.contains("\"c1\"") && text.contains("\"current\""),
        "{links:#}"
    );
    let grants = json(p, &["license", "grants", "--json"]);
    assert!(grants.to_string().contains("\"c1\""), "{grants:#}");
    json(p, &["license", "status", "--json"]);
    let log = json(p, &["license", "log", "--json"]);
    assert!(log.to_string().contains("grant_created"), "{log:#}");
    let stations = json(p, &["stations", "--json"]);
    assert!(stations.to_string().contains("ws-1"), "{stations:#}");
    let versions = json(p, &["versions", "--json"]);
    assert!(
        versions.as_array().is_some_and(|v| v.len() >= 2),
        "{versions:#}"
    );
    json(p, &["products", "--json"]);
    let rollout = json(p, &["rollout", "status", "--json"]);
    assert!(rollout.to_string().contains("c1"), "{rollout:#}");
    json(p, &["config", "show", "--json"]);
    json(p, &["cluster", "tasks", "--json"]);
    json(p, &["cluster", "tasks", "--json", "--history", "3"]);
    json(p, &["verify", "--json"]);
    json(p, &["gc", "--dry-run", "--json"]);
    // `cluster check` exits non-zero when members differ; here they agree.
    if member.is_some() {
        wait_for("member b alive", || {
            json(p, &["cluster", "check", "--json"])["alive"]
                .to_string()
                .contains("\"b\"")
        })
        .await;
    }
    let check = json(p, &["cluster", "check", "--json"]);
    assert_eq!(check["findings"], serde_json::json!([]), "{check:#}");
    // The child's own view: a received grant, a parent, a link.
    let c = &child.data;
    let cs = json(c, &["status", "--json"]);
    assert_eq!(cs["cluster_id"], "c1", "{cs:#}");
    assert!(json(c, &["license", "grants", "--json"])
        .to_string()
        .contains("\"parent\""));
    json(c, &["link", "list", "--json"]);
    // The dry run of a join into a new database plans and changes nothing; `activate` last,
    // as it changes state.
    if database.is_none() {
        let target = format!("sqlite:{}", dir.path().join("new-cluster.db").display());
        let plan = json(
            c,
            &[
                "cluster",
                "join",
                "--database",
                &target,
                "--dry-run",
                "--json",
            ],
        );
        assert!(plan.is_object(), "{plan:#}");
    }
    let act = json(p, &["activate", "--json"]);
    assert!(act.is_object(), "{act:#}");
    srv.stop().await;
    if let Some(m) = member_srv {
        m.stop().await;
    }
}

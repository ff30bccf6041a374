//! The child's report (`POST /v1/report`) between nodes of different releases: unknown
//! fields are ignored, and a bad field is a 400 that names it, never a 500.

mod common;

use common::*;

/// Post a report to `parent_url` as `child` (its cluster certificate).
async fn post_report(
    child: &updhub::hub::Hub,
    parent_url: &str,
    body: &serde_json::Value,
) -> (u16, String) {
    let client = updhub::peer::upstream_client(&child.keys).unwrap();
    let r = client
        .post(format!("{parent_url}v1/report"))
        .json(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn report(number: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "root": null,
        "number": number,
        "hub_version": "0.1.0",
        "config_digest": "d",
        "chain": [],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_with_fields_of_a_newer_release_is_taken() {
    let dir = tempfile::tempdir().unwrap();
    let parent = zone_node(dir.path(), "parent", &sample_zone());
    let srv = start(parent.clone()).await;
    let child = child_of(dir.path(), "newer-child", &parent, None);
    let mut body = report(7.into());
    body["disk_free"] = 123.into();
    body["features"] = serde_json::json!({"delta": true});
    let (status, text) = post_report(&child, &srv.url, &body).await;
    assert_eq!(status, 200, "{text}");
    let children = parent.status().unwrap().children;
    assert_eq!(children.len(), 1);
    assert_eq!(children[0].report.child_id, "newer-child");
    assert_eq!(children[0].report.number, Some(7));
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_with_a_version_number_too_large_is_a_400_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let parent = zone_node(dir.path(), "parent", &sample_zone());
    let srv = start(parent.clone()).await;
    let child = child_of(dir.path(), "child", &parent, None);
    for n in [u64::MAX, i64::MAX as u64 + 1] {
        let (status, text) = post_report(&child, &srv.url, &report(n.into())).await;
        assert_eq!(status, 400, "number {n}: {text}");
        assert!(
            text.contains("`number`") && text.contains(&n.to_string()),
            "the message names the field and the value: {text}"
        );
    }
    assert!(
        parent.status().unwrap().children.is_empty(),
        "nothing recorded"
    );
    // The largest number the database holds is still taken.
    let (status, text) = post_report(&child, &srv.url, &report((i64::MAX as u64).into())).await;
    assert_eq!(status, 200, "{text}");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_call_with_fields_of_a_newer_release_is_not_refused_for_them() {
    let dir = tempfile::tempdir().unwrap();
    let parent = zone_node(dir.path(), "parent", &sample_zone());
    let srv = start(parent.clone()).await;
    let child = child_of(dir.path(), "newer-child", &parent, None);
    let client = updhub::peer::upstream_client(&child.keys).unwrap();
    for action in ["ack", "return"] {
        let r = client
            .post(format!("{}v1/licenses/{action}", srv.url))
            .json(&serde_json::json!({"grant_id": "no-such-grant", "reason": "upgrade"}))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        assert!(
            !text.contains("unknown field"),
            "{action}: refused for a new field: {status} {text}"
        );
        assert!(
            text.contains("no-such-grant"),
            "{action}: judged on its grant id: {status} {text}"
        );
    }
    srv.stop().await;
}

//! Issue 9 point 8: updates for stations. The station port serves the node's active version,
//! and nothing else, to registered stations that authenticate with their own credentials:
//! `updhub station fetch` writes the same files as `checkout`; unknown stations and wrong
//! secrets get 401 and no byte; an older version's blobs are 404; Range resumes a blob; a
//! new publish reaches the station; a damaged blob is never served.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use common::*;
use updhub::child::sync_once;
use updhub::hub::{add_license_file, Hub};
use updhub::license::api::StationCredentials;
use updhub::repo::RepoError;
use updhub::station::{Connection, FetchOptions, StationError};

/// A parent on a copy of the sample zone (`DIR/zone`), with a license for 10 stations,
/// serving both ports; station `ws-1` registered.
struct Setup {
    dir: tempfile::TempDir,
    zone: PathBuf,
    hub: Arc<Hub>,
    srv: Running,
    stations: String,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let hub = licensed_parent(dir.path()).await;
    // No background scrub: it would find a blob a test damages, quarantine it and fetch it
    // again from the zone at once (tests/repair.rs), racing what the test checks.
    let mut cfg = (*hub.live()).clone();
    cfg.store.scrub_rate_mib = 0;
    let data = hub.data.clone();
    drop(hub);
    let hub = std::sync::Arc::new(updhub::Hub::open_with(&data, cfg).unwrap());
    let zone = dir.path().join("zone");
    let srv = start_with_stations(hub.clone()).await;
    let stations = srv.stations_url.clone().unwrap();
    let (status, body) = register(&station_client(&hub), &stations, "ws-1").await;
    assert_eq!(status, 200, "{body}");
    Setup {
        dir,
        zone,
        hub,
        srv,
        stations,
    }
}

/// The secret `common::register` registers a station with.
fn secret_of(id: &str) -> String {
    format!("secret-of-{id}-0123456789")
}

fn connection(s: &Setup, id: &str, secret: &str) -> Connection {
    Connection {
        url: s.stations.clone(),
        creds: StationCredentials {
            station: id.into(),
            secret: secret.into(),
        },
        ca_pem: fs::read(s.hub.data.join("keys/ca.crt")).unwrap(),
    }
}

fn options(s: &Setup, out: &Path, store: Option<PathBuf>) -> FetchOptions {
    FetchOptions {
        publishers: s.hub.keys.publishers(),
        out: out.to_owned(),
        store,
        parallel: 4,
    }
}

/// GET (or HEAD) a station route with `creds` and an optional Range: status, headers, body.
async fn get(
    s: &Setup,
    method: reqwest::Method,
    route: &str,
    creds: Option<(&str, &str)>,
    range: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let mut req =
        station_client(&s.hub).request(method, format!("{}v1/station/{route}", s.stations));
    if let Some((id, secret)) = creds {
        req = req.basic_auth(id, Some(secret));
    }
    if let Some(r) = range {
        req = req.header(reqwest::header::RANGE, r);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.bytes().await.unwrap().to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_station_fetches_the_active_version_as_checkout_writes_it_and_follows_a_new_publish() {
    let s = setup().await;
    let d = s.dir.path();
    let v1 = s.hub.db.published().unwrap().unwrap();

    // The command itself, as an admin runs it.
    fs::write(d.join("ws-1.secret"), format!("{}\n", secret_of("ws-1"))).unwrap();
    let out1 = d.join("station-v1");
    let args: Vec<String> = vec![
        "station".into(),
        "fetch".into(),
        "--url".into(),
        s.stations.clone(),
        "--id".into(),
        "ws-1".into(),
        "--secret-file".into(),
        d.join("ws-1.secret").display().to_string(),
        "--ca".into(),
        s.hub.data.join("keys/ca.crt").display().to_string(),
        "--publisher-key".into(),
        s.hub.data.join("keys/cluster.pub").display().to_string(),
        "--out".into(),
        out1.display().to_string(),
    ];
    let run = tokio::task::spawn_blocking(move || updhub_bin().args(args).output().unwrap())
        .await
        .unwrap();
    let said = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(said.starts_with("version 1 (root "), "{said}");
    let checked_out = tree(&checkout(&s.hub, d, "v1"));
    assert_eq!(tree(&out1), checked_out, "byte for byte as checkout");

    // With a kept store, the next fetch takes only what it lacks.
    let store = d.join("station-store");
    let conn = connection(&s, "ws-1", &secret_of("ws-1"));
    let r = updhub::station::fetch(&conn, options(&s, &d.join("a"), Some(store.clone())))
        .await
        .unwrap();
    assert_eq!((r.number, r.root), (1, v1.root));
    assert!(r.blobs > 0 && r.received > 0, "{r}");
    assert_eq!(tree(&d.join("a")), checked_out);

    // A new publish: the station gets the new version, fetching only the changed blobs.
    set_zone_revision(&s.zone, "2026112402");
    let v2 = mirror_and_publish(&s.hub).await;
    let r2 = updhub::station::fetch(&conn, options(&s, &d.join("b"), Some(store)))
        .await
        .unwrap();
    assert_eq!((r2.number, r2.root), (2, v2.root));
    assert!(r2.blobs > 0 && r2.blobs < r.blobs + 1, "{r2}");
    assert_eq!(tree(&d.join("b")), tree(&checkout(&s.hub, d, "v2")));

    // Version 1 is no longer served to stations: its manifest and its own blobs are 404.
    let creds = Some(("ws-1", secret_of("ws-1")));
    let creds = creds.as_ref().map(|(i, s)| (*i, s.as_str()));
    let old = updhub::verify::version_blobs(&s.hub.store, &v1.root).unwrap();
    let new = updhub::verify::version_blobs(&s.hub.store, &v2.root).unwrap();
    let only_old = old.iter().find(|b| !new.contains(b)).unwrap();
    assert!(s.hub.store.contains(only_old), "the store still holds it");
    let (status, _, body) = get(
        &s,
        reqwest::Method::GET,
        &format!("blobs/{only_old}"),
        creds,
        None,
    )
    .await;
    assert_eq!(status, 404);
    let body = String::from_utf8_lossy(&body);
    assert!(body.contains("not part of the active version"), "{body}");
    let (status, _, _) = get(
        &s,
        reqwest::Method::GET,
        &format!("versions/{}", v1.root),
        creds,
        None,
    )
    .await;
    assert_eq!(status, 404);
    // The active one's documents are: the signed document and the manifest by either name.
    let (status, _, doc) = get(&s, reqwest::Method::GET, "published", creds, None).await;
    assert_eq!(status, 200);
    let doc = updhub::repo::Published::parse(&doc, "test").unwrap();
    assert_eq!(doc, v2);
    let (_, _, m1) = get(&s, reqwest::Method::GET, "manifest", creds, None).await;
    let (_, _, m2) = get(
        &s,
        reqwest::Method::GET,
        &format!("versions/{}", v2.root),
        creds,
        None,
    )
    .await;
    assert_eq!(m1, m2);
    updhub::repo::Manifest::parse(&m1, &v2.root).unwrap();
    s.srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_station_or_a_wrong_secret_gets_401_and_no_byte() {
    let s = setup().await;
    let blob = a_file_blob(&s.hub);
    let route = format!("blobs/{blob}");
    for (creds, says) in [
        (None, "need the station's credentials"),
        (
            Some(("ws-9", "secret-of-ws-9-0123456789")),
            "station ws-9 is not registered here",
        ),
        (
            Some(("ws-1", "not-the-secret-0123456789")),
            "station ws-1 is not registered here with this secret",
        ),
        (Some(("ws-1", "short")), "16 to 256"),
    ] {
        for route in [route.as_str(), "published", "manifest"] {
            let (status, headers, body) = get(&s, reqwest::Method::GET, route, creds, None).await;
            assert_eq!(status, 401, "{route}");
            assert!(headers.contains_key(reqwest::header::WWW_AUTHENTICATE));
            let body = String::from_utf8_lossy(&body);
            assert!(body.contains(says), "{body}");
        }
    }
    assert_eq!(
        s.srv.stats.blob_bytes.load(Ordering::Relaxed),
        0,
        "no blob byte sent"
    );

    // The client names the refusal and writes nothing.
    let out = s.dir.path().join("never");
    let conn = connection(&s, "ws-1", "not-the-secret-0123456789");
    let err = updhub::station::fetch(&conn, options(&s, &out, None))
        .await
        .unwrap_err();
    assert!(matches!(err, StationError::Refused { .. }), "{err}");
    assert!(err.to_string().contains("refused station ws-1"), "{err}");
    assert!(!out.exists());
    s.srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_request_resumes_a_blob_as_the_interserver_route_sends_it() {
    let s = setup().await;
    let blob = a_file_blob(&s.hub);
    let stored = fs::read(s.hub.store.blob_path(&blob)).unwrap();
    let secret = secret_of("ws-1");
    let creds = Some(("ws-1", secret.as_str()));
    let route = format!("blobs/{blob}");

    let (status, headers, whole) = get(&s, reqwest::Method::GET, &route, creds, None).await;
    assert_eq!(status, 200);
    assert_eq!(whole, stored, "the stored zstd frame as it is");
    assert_eq!(headers[reqwest::header::ACCEPT_RANGES], "bytes");

    let from = stored.len() / 3;
    let (status, headers, rest) = get(
        &s,
        reqwest::Method::GET,
        &route,
        creds,
        Some(&format!("bytes={from}-")),
    )
    .await;
    assert_eq!(status, 206);
    assert_eq!(rest, stored[from..]);
    assert_eq!(
        headers[reqwest::header::CONTENT_RANGE],
        format!("bytes {from}-{}/{}", stored.len() - 1, stored.len()).as_str()
    );
    let (status, headers, none) = get(&s, reqwest::Method::HEAD, &route, creds, None).await;
    assert_eq!(status, 200);
    assert!(none.is_empty());
    assert_eq!(
        headers[reqwest::header::CONTENT_LENGTH],
        stored.len().to_string().as_str()
    );
    let (status, _, _) = get(
        &s,
        reqwest::Method::GET,
        &route,
        creds,
        Some(&format!("bytes={}-", stored.len())),
    )
    .await;
    assert_eq!(status, 416);
    assert_eq!(s.srv.stats.range_requests.load(Ordering::Relaxed), 1);
    s.srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_blob_is_never_served_to_a_station() {
    let s = setup().await;
    let bad = a_file_blob(&s.hub);
    flip(&s.hub, &bad);

    // The station gets bytes that do not verify: it keeps nothing, writes nothing, and tells
    // the server, which rechecks and quarantines the blob (its scrub is off, see `setup`).
    let out = s.dir.path().join("never");
    let conn = connection(&s, "ws-1", &secret_of("ws-1"));
    let err = updhub::station::fetch(&conn, options(&s, &out, None))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("hash") || err.contains(&format!("blob {bad} is not held here")),
        "{err}"
    );
    assert!(!out.exists());
    assert!(!s.hub.store.contains(&bad), "quarantined on the report");
    assert_eq!(s.hub.store.quarantined().unwrap(), 1);
    // Asked again, the server answers 404 for it, never the damaged bytes.
    let secret = secret_of("ws-1");
    let (status, _, _) = get(
        &s,
        reqwest::Method::GET,
        &format!("blobs/{bad}"),
        Some(("ws-1", &secret)),
        None,
    )
    .await;
    assert_eq!(status, 404);

    // A station's reports cannot make the server rehash a blob over and over.
    let root = s.hub.db.published().unwrap().unwrap().root;
    let client = station_client(&s.hub);
    let report = || {
        client
            .post(format!("{}v1/station/blobs/{}/damaged", s.stations, root))
            .basic_auth("ws-1", Some(&secret))
            .send()
    };
    let first: serde_json::Value = report().await.unwrap().json().await.unwrap();
    assert_eq!(first["here"], "intact", "{first}");
    let again: serde_json::Value = report().await.unwrap().json().await.unwrap();
    assert_eq!(again["here"], "rechecked recently", "{again}");
    s.srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_station_of_a_child_cluster_checks_the_origins_signature() {
    let s = setup().await;
    let d = s.dir.path();
    let iss = issuer();
    let child = child_with(
        d,
        "child",
        &s.hub,
        NodeOpts {
            issuers: vec![issuer_hex(&iss)],
            ..Default::default()
        },
    );
    sync_once(&child, &s.srv.url).await.unwrap();
    add_license_file(&child, &key_file(d, &iss, "C1", 5, 365))
        .await
        .unwrap();
    let csrv = start_with_stations(child.clone()).await;
    let stations = csrv.stations_url.clone().unwrap();
    let (status, body) = register(&station_client(&child), &stations, "ws-2").await;
    assert_eq!(status, 200, "{body}");

    // What the child's admin hands its stations: the origin's key, not the child's own.
    let data = child.data.clone();
    let listed = tokio::task::spawn_blocking(move || {
        updhub_bin()
            .arg("--data")
            .arg(data)
            .args(["keys", "publishers"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(listed.status.success());
    let listed = String::from_utf8(listed.stdout).unwrap();
    assert_eq!(
        listed,
        format!("{}\n", hex::encode(s.hub.keys.verifying.as_bytes()))
    );

    let conn = Connection {
        url: stations,
        creds: StationCredentials {
            station: "ws-2".into(),
            secret: secret_of("ws-2"),
        },
        ca_pem: fs::read(child.data.join("keys/ca.crt")).unwrap(),
    };
    let fetch = |publishers, out: &str| {
        updhub::station::fetch(
            &conn,
            FetchOptions {
                publishers,
                out: d.join(out),
                store: None,
                parallel: 4,
            },
        )
    };
    let r = fetch(
        updhub::station::parse_publishers(&listed).unwrap(),
        "from-child",
    )
    .await
    .unwrap();
    assert_eq!(r.number, 1);
    assert_eq!(
        tree(&d.join("from-child")),
        tree(&checkout(&s.hub, d, "origin"))
    );
    // The child's own cluster key did not sign the version: refused, nothing written.
    let err = fetch(vec![child.keys.verifying], "never")
        .await
        .unwrap_err();
    assert!(
        matches!(err, StationError::Repo(RepoError::BadSignature { .. })),
        "{err}"
    );
    assert!(!d.join("never").exists());
    // The parent's CA does not vouch for the child's station port: named, nothing sent.
    let foreign = Connection {
        ca_pem: fs::read(s.hub.data.join("keys/ca.crt")).unwrap(),
        ..conn
    };
    let err = updhub::station::fetch(
        &foreign,
        FetchOptions {
            publishers: s.hub.keys.publishers(),
            out: d.join("never"),
            store: None,
            parallel: 4,
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(err, StationError::Untrusted { .. }), "{err}");
    assert!(err.to_string().contains("--ca must be"), "{err}");
    csrv.stop().await;
    s.srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_station_follows_a_publisher_key_rotation_from_the_key_it_was_given() {
    let s = setup().await;
    let d = s.dir.path();
    let conn = connection(&s, "ws-1", &secret_of("ws-1"));
    let given = s.hub.keys.publishers();
    updhub::station::fetch(&conn, options(&s, &d.join("before"), None))
        .await
        .unwrap();

    // The publisher rotates its key (its server stopped, as `keys rotate` requires).
    let Setup { dir, hub, srv, .. } = s;
    srv.stop().await;
    let data = hub.data.clone();
    drop(hub);
    let (_, resigned) = Hub::open(&data).unwrap().rotate_publisher().unwrap();
    let hub = Arc::new(Hub::open(&data).unwrap());
    let srv = start_with_stations(hub.clone()).await;
    let conn = Connection {
        url: srv.stations_url.clone().unwrap(),
        ..conn
    };
    let fetch = |publishers, out: &str| {
        updhub::station::fetch(
            &conn,
            FetchOptions {
                publishers,
                out: dir.path().join(out),
                store: None,
                parallel: 4,
            },
        )
    };

    // With the old key, the station follows the signed rotation and says which key is in
    // force now.
    let r = fetch(given, "after").await.unwrap();
    assert_eq!(r.number, resigned.unwrap().number);
    assert_eq!(r.rotated, vec![hex::encode(hub.keys.verifying.as_bytes())]);
    assert!(
        r.to_string().contains("the publisher key was rotated"),
        "{r}"
    );
    assert_eq!(
        tree(&dir.path().join("after")),
        tree(&dir.path().join("before"))
    );
    // A key the rotations do not start from is refused: nothing written.
    let stranger = ed25519_dalek::SigningKey::from_bytes(&[7; 32]).verifying_key();
    let err = fetch(vec![stranger], "never").await.unwrap_err();
    assert!(
        matches!(err, StationError::Repo(RepoError::BadSignature { .. })),
        "{err}"
    );
    assert!(!dir.path().join("never").exists());
    srv.stop().await;
}

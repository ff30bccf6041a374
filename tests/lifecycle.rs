//! The binary's life cycle and its data folder: signals, a lost database, many admin
//! commands at once, one server per data folder, a mistyped --data, bounded spans, and a
//! closed output pipe (issue 6, defects 2-6 and 10).

mod common;

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use updhub::hub::{Hub, InitOptions};

fn bin() -> Command {
    let mut c = common::updhub_bin();
    c.env("UPDHUB_LOG", "info");
    c
}

fn updhub(data: &Path, args: &[&str]) -> Output {
    bin().arg("--data").arg(data).args(args).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A parent node with one published version, made through the library.
async fn parent(dir: &Path) -> std::path::PathBuf {
    let data = dir.join("p");
    let hub = Hub::init(
        &data,
        InitOptions {
            zone: Some(common::sample_zone().display().to_string()),
            ..Default::default()
        },
    )
    .unwrap();
    common::mirror_and_publish(&hub).await;
    data
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig}");
}

#[tokio::test]
async fn sigterm_stops_serve_gracefully_and_leaves_a_complete_database_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = parent(dir.path()).await;
    let (child, _) = common::spawn_serve(&data, Stdio::piped());
    signal(&child, "-TERM");
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "exit {:?}: {err}", out.status);
    assert!(err.contains("shutting down"), "{err}");
    // The write-ahead log was checkpointed: updhub.db alone holds every version.
    let copy = dir.path().join("copy");
    fs::create_dir(&copy).unwrap();
    fs::copy(data.join("updhub.db"), copy.join("updhub.db")).unwrap();
    let c = rusqlite::Connection::open(copy.join("updhub.db")).unwrap();
    let versions: i64 = c
        .query_row("SELECT count(*) FROM versions", [], |r| r.get(0))
        .unwrap();
    assert_eq!(versions, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_a_transfer_in_flight_ends_cleanly_and_the_child_syncs_after_restart() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let data = parent(dir.path()).await;
    let hub = Hub::open(&data).unwrap();
    let child = common::child_of(dir.path(), "c", &hub, None);
    let blob = *common::blobs(&hub)
        .iter()
        .max_by_key(|b| hub.store.stored_len(b).unwrap())
        .unwrap();
    let (server, url) = common::spawn_serve(&data, Stdio::piped());
    // A child's transfer that takes a few bytes, then stops reading: it is in flight.
    let addr = url
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .to_owned();
    let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(child.keys.upstream_tls());
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let mut s = tls.connect(name, tcp).await.unwrap();
    s.write_all(format!("GET /v1/blobs/{blob} HTTP/1.1\r\nhost: localhost\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut first = [0u8; 64];
    assert!(s.read(&mut first).await.unwrap() > 0);
    assert!(String::from_utf8_lossy(&first).starts_with("HTTP/1.1 200"));
    signal(&server, "-TERM");
    let out = server.wait_with_output().unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "exit {:?}: {err}", out.status);
    assert!(err.contains("shutting down"), "{err}");
    // The transfer was finished or cut within the grace period, never left holding the
    // server: its connection ends.
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest).await;
    // The parent comes back whole, and the child syncs every blob from it.
    let (mut again, url) = common::spawn_serve(&data, Stdio::null());
    let report = updhub::child::sync_once(&child, &url).await.unwrap();
    assert!(report.changed, "{report}");
    assert_eq!(common::blobs(&child), common::blobs(&hub));
    signal(&again, "-TERM");
    assert!(again.wait().unwrap().success());
}

#[tokio::test]
async fn a_lost_database_is_an_error_and_is_never_recreated() {
    let dir = tempfile::tempdir().unwrap();
    let data = parent(dir.path()).await;
    let db = data.join("updhub.db");
    let whole = fs::read(&db).unwrap();
    for (how, bytes) in [
        ("is empty (0 bytes)", Some(Vec::new())),
        ("is truncated", Some(whole[..whole.len() / 2].to_vec())),
        ("is missing", None),
    ] {
        match &bytes {
            Some(b) => fs::write(&db, b).unwrap(),
            None => fs::remove_file(&db).unwrap(),
        }
        for args in [&["status"][..], &["serve", "--listen", "127.0.0.1:0"]] {
            let out = updhub(&data, args);
            let err = stderr(&out);
            assert!(!out.status.success(), "{args:?} with a db that {how}");
            assert!(
                err.contains(how)
                    && err
                        .to_lowercase()
                        .contains("restore updhub.db from a backup"),
                "{args:?}: {err}"
            );
        }
        // Nothing was recreated in its place.
        match &bytes {
            Some(b) => assert_eq!(&fs::read(&db).unwrap(), b),
            None => assert!(!db.exists()),
        }
    }
    // Put the file back: the node is whole again.
    fs::write(&db, &whole).unwrap();
    let out = updhub(&data, &["versions", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[tokio::test]
async fn sixty_concurrent_admin_commands_wait_for_each_other_instead_of_failing() {
    let dir = tempfile::tempdir().unwrap();
    let data = parent(dir.path()).await;
    {
        // A license key of the test's own issuer, trusted on purpose.
        let hub = Hub::open(&data).unwrap();
        let iss = common::issuer();
        hub.set_shared_setting(
            "licenses.issuers",
            &format!("[\"{}\"]", common::issuer_hex(&iss)),
        )
        .unwrap();
        let key = common::key_file(dir.path(), &iss, "K-60", 50, 365);
        updhub::hub::add_license_file(&hub, &key).await.unwrap();
        hub.db
            .record_report(&updhub::db::ChildReport {
                child_id: "branch".into(),
                root: None,
                number: None,
                hub_version: "0".into(),
                config_digest: String::new(),
                chain: vec![],
                reported_at: chrono::Utc::now(),
            })
            .unwrap();
    }
    // 40 donations of one license each, and 20 read-only commands, all at once.
    let mut procs = Vec::new();
    for i in 0..60 {
        let mut c = bin();
        c.arg("--data").arg(&data);
        if i % 3 == 2 {
            c.args(["license", "status", "--json"]);
        } else {
            c.args([
                "license", "donate", "--to", "branch", "--count", "1", "--for", "1d",
            ]);
        }
        procs.push(
            c.stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
    }
    let failed: Vec<String> = procs
        .into_iter()
        .map(|p| p.wait_with_output().unwrap())
        .filter(|o| !o.status.success())
        .map(|o| stderr(&o))
        .collect();
    assert!(
        failed.is_empty(),
        "{} failed: {:?}",
        failed.len(),
        failed.first()
    );
    let hub = Hub::open(&data).unwrap();
    assert_eq!(common::source(&hub, "K-60").donated, 40);
}

#[tokio::test]
async fn read_only_commands_run_while_another_process_holds_the_write_lock() {
    let dir = tempfile::tempdir().unwrap();
    let data = parent(dir.path()).await;
    // Another writer holds the write lock for the whole test: a command that tried to write
    // would wait for it and fail; one that only reads runs beside it.
    let writer = rusqlite::Connection::open(data.join("updhub.db")).unwrap();
    writer.execute_batch("BEGIN IMMEDIATE").unwrap();
    for args in [
        &["status"][..],
        &["versions"],
        &["license", "status"],
        &["license", "grants"],
        &["license", "log"],
        &["stations"],
    ] {
        let out = updhub(&data, args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    }
    writer.execute_batch("ROLLBACK").unwrap();
}

#[tokio::test]
async fn a_second_server_on_one_data_folder_is_refused_naming_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let data = parent(dir.path()).await;
    let (mut first, _) = common::spawn_serve(&data, Stdio::piped());
    let out = updhub(
        &data,
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--station-listen",
            "127.0.0.1:0",
        ],
    );
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("in use by another updhub") && err.contains(&format!("pid {}", first.id())),
        "{err}"
    );
    // sync on the same folder is refused too.
    let out = updhub(
        &data,
        &["sync", "--once", "--parent", "https://127.0.0.1:1"],
    );
    assert!(
        stderr(&out).contains("in use by another updhub"),
        "{}",
        stderr(&out)
    );
    signal(&first, "-TERM");
    assert!(first.wait().unwrap().success());
    // Once it stopped, the folder is free again.
    let (mut again, _) = common::spawn_serve(&data, Stdio::piped());
    signal(&again, "-TERM");
    assert!(again.wait().unwrap().success());
}

#[test]
fn serve_on_an_explicit_data_folder_without_a_node_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let typo = dir.path().join("updhub-dta");
    let out = updhub(&typo, &["serve", "--listen", "127.0.0.1:0"]);
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("holds no updhub node") && err.contains("init"),
        "{err}"
    );
    assert!(
        !typo.exists(),
        "nothing may be created at a mistyped --data"
    );
    // UPDHUB_DATA is explicit too.
    let out = bin()
        .env("UPDHUB_DATA", &typo)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(!typo.exists());
}

#[tokio::test]
async fn a_set_up_that_fails_halfway_leaves_no_node_behind() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("updhub-data");
    let new = Hub::begin_init(
        &data,
        InitOptions {
            zone: Some(dir.path().join("no-such-zone").display().to_string()),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(new.hub.mirror(None, false).await.is_err());
    drop(new);
    assert!(!data.exists());
    let left: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[tokio::test]
async fn spans_and_dates_past_any_calendar_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let data = parent(dir.path()).await;
    for args in [
        &["publish", "--expires-in", "300000y"][..],
        &[
            "license", "donate", "--to", "x", "--count", "1", "--for", "300000y",
        ],
        &[
            "license",
            "donate",
            "--to",
            "x",
            "--count",
            "1",
            "--until",
            "+99999-01-01",
        ],
    ] {
        let out = updhub(&data, args);
        let err = stderr(&out);
        assert!(!out.status.success(), "{args:?}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(
            err.contains("too long") || err.contains("too far"),
            "{args:?}: {err}"
        );
    }
    let cfg = data.join("updhub.toml");
    let text = fs::read_to_string(&cfg).unwrap();
    let bad = text.replacen("expires_in = \"7days\"", "expires_in = \"300000y\"", 1);
    assert_ne!(bad, text, "the config names publish.expires_in");
    fs::write(&cfg, bad).unwrap();
    let out = updhub(&data, &["publish"]);
    let err = stderr(&out);
    assert!(
        !err.contains("panicked") && err.contains("publish.expires_in"),
        "{err}"
    );
}

#[tokio::test]
async fn a_closed_output_pipe_ends_the_command_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let data = parent(dir.path()).await;
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = bin()
        .arg("--data")
        .arg(&data)
        .args(["versions"])
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "{:?}: {err}", out.status);
    assert!(err.is_empty(), "{err}");
}

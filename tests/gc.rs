//! Issue 9 point 6: retention and garbage collection of the blob store while serving. GC
//! during a child's full sync loses nothing and frees the old versions' blobs; retention keeps
//! the last N versions plus the active and the mirrored ones; young blobs and live transfers
//! are spared; a collected version cannot be rolled back to, and says so.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::*;
use updhub::child::sync_once;
use updhub::config::Config;
use updhub::hub::Hub;
use updhub::id::BlobId;

/// Reopen `hub` with its `[store]` settings changed by `f` (written to updhub.toml too).
fn with_store(hub: Arc<Hub>, f: impl FnOnce(&mut updhub::config::StoreSection)) -> Arc<Hub> {
    let mut cfg: Config = hub.config.clone();
    f(&mut cfg.store);
    let data = hub.data.clone();
    fs::write(data.join("updhub.toml"), cfg.to_commented_toml()).unwrap();
    drop(hub);
    Arc::new(Hub::open_with(&data, cfg).unwrap())
}

/// Point the hand zone at revision `n`: one file shared by every revision, and `unique`
/// files of its own (so a sync moves many blobs).
fn zone_revision(dir: &Path, n: u64, unique: usize) -> std::path::PathBuf {
    let mut files: Vec<(String, Vec<u8>)> = vec![("shared.bin".into(), noise(200_000, 1))];
    for i in 0..unique {
        files.push((format!("r/f{i:03}.bin"), noise(20_000, n * 1000 + i as u64)));
    }
    let files: Vec<(&str, Vec<u8>)> = files.iter().map(|(p, d)| (p.as_str(), d.clone())).collect();
    write_zone(dir, "10-drwbases", &format!("20261124{n:02}"), &files)
}

/// A parent that published versions 1..=`versions` of the hand zone (one revision each),
/// with `store` settings applied.
async fn parent_with_versions(
    dir: &Path,
    versions: u64,
    unique: usize,
    store: impl FnOnce(&mut updhub::config::StoreSection),
) -> Arc<Hub> {
    let zone = zone_revision(dir, 1, unique);
    let parent = with_store(zone_node(dir, "parent", &zone), store);
    mirror_and_publish(&parent).await;
    for n in 2..=versions {
        zone_revision(dir, n, unique);
        mirror_and_publish(&parent).await;
    }
    parent
}

/// Store settings keeping the last `n` versions and sparing nothing for its age: the old
/// versions' blobs are garbage the moment a run starts.
fn keep_last(n: usize) -> impl FnOnce(&mut updhub::config::StoreSection) {
    move |s| {
        s.keep_versions = n;
        s.gc_grace = Duration::ZERO;
    }
}

/// Every blob version `number` of `hub` needs (by the one function that says it).
fn blobs_of(hub: &Hub, number: u64) -> BTreeSet<BlobId> {
    let v = hub
        .versions()
        .unwrap()
        .into_iter()
        .find(|v| v.number == number)
        .unwrap();
    updhub::verify::version_blobs(&hub.store, &v.root)
        .unwrap()
        .into_iter()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_while_a_full_sync_is_running_loses_nothing_and_frees_the_old_versions_blobs() {
    let dir = tempfile::tempdir().unwrap();
    let parent = parent_with_versions(dir.path(), 4, 120, keep_last(1)).await;
    let live: BTreeSet<BlobId> = blobs_of(&parent, 4);
    let mut old: BTreeSet<BlobId> = BTreeSet::new();
    for n in 1..=3 {
        old.extend(blobs_of(&parent, n).difference(&live).copied());
    }
    let old_bytes: u64 = old
        .iter()
        .map(|b| parent.store.stored_len(b).unwrap())
        .sum();
    assert!(old.len() > 300, "{} old blobs", old.len());
    assert!(
        live.contains(&BlobId::of(&noise(200_000, 1))),
        "the shared file"
    );
    let want = tree(&checkout(&parent, dir.path(), "parent"));
    let srv = start(parent.clone()).await;
    // The child keeps the default grace: what its sync fetched but has not recorded yet is
    // young, so its own collector leaves it alone.
    let child = child_of(dir.path(), "child", &parent, None);
    let sync = {
        let (child, url) = (child.clone(), srv.url.clone());
        tokio::spawn(async move { sync_once(&child, &url).await })
    };
    let (mut freed, mut removed, mut dropped) = (0u64, 0u64, BTreeSet::new());
    let mut rounds = 0;
    let mut during = 0;
    loop {
        let running = !sync.is_finished();
        let (p, c) = (parent.clone(), child.clone());
        let (rp, rc) = tokio::task::spawn_blocking(move || {
            (
                updhub::gc::run(&p, false).unwrap(),
                updhub::gc::run(&c, false).unwrap(),
            )
        })
        .await
        .unwrap();
        freed += rp.bytes;
        removed += rp.blobs;
        dropped.extend(rp.dropped_versions);
        assert_eq!(rc.blobs, 0, "the child removed a blob: {rc:?}");
        rounds += 1;
        during += u32::from(running);
        if sync.is_finished() || rounds >= 1000 {
            break;
        }
    }
    let r = sync.await.unwrap().unwrap();
    assert!(r.changed, "{r}");
    eprintln!("{rounds} gc rounds on both nodes, {during} of them during the sync");
    // The child holds the whole version, byte for byte.
    assert_eq!(child.db.published().unwrap().unwrap().number, 4);
    assert_eq!(tree(&checkout(&child, dir.path(), "child")), want);
    // The parent freed exactly the old versions' blobs, and reported what it freed.
    assert_eq!(removed, old.len() as u64);
    assert_eq!(freed, old_bytes);
    assert_eq!(dropped, BTreeSet::from([1, 2, 3]));
    for b in &old {
        assert!(!parent.store.contains(b), "old blob {b} still stored");
    }
    for b in &live {
        assert!(parent.store.contains(b), "live blob {b} was removed");
    }
    // The history stays; the parent serves on.
    assert_eq!(parent.versions().unwrap().len(), 4);
    assert_eq!(tree(&checkout(&parent, dir.path(), "parent-after")), want);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_keeps_the_last_n_the_active_and_the_mirrored_and_a_dry_run_removes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let parent = parent_with_versions(dir.path(), 4, 5, keep_last(2)).await;
    // Revision 5 mirrored, not published.
    zone_revision(dir.path(), 5, 5);
    let mirrored = parent.mirror(None, false).await.unwrap().root;
    let roots = |ns: &[u64]| -> BTreeSet<updhub::id::Root> {
        let v = parent.versions().unwrap();
        ns.iter()
            .map(|n| v.iter().find(|v| v.number == *n).unwrap().root)
            .collect()
    };
    let mut kept_blobs: BTreeSet<BlobId> = blobs_of(&parent, 3);
    kept_blobs.extend(blobs_of(&parent, 4));
    kept_blobs.extend(
        updhub::verify::version_blobs(&parent.store, &mirrored)
            .unwrap()
            .into_iter(),
    );
    let before = blobs(&parent);
    let gone: BTreeSet<BlobId> = before
        .iter()
        .filter(|b| !kept_blobs.contains(b))
        .copied()
        .collect();
    let gone_bytes: u64 = gone
        .iter()
        .map(|b| parent.store.stored_len(b).unwrap())
        .sum();

    let dry = updhub::gc::run(&parent, true).unwrap();
    assert!(dry.dry_run);
    assert_eq!(blobs(&parent), before, "a dry run removes nothing");
    let mut want_roots = roots(&[3, 4]);
    want_roots.insert(mirrored);
    let kept: BTreeSet<_> = dry.kept.iter().map(|k| k.root).collect();
    assert_eq!(kept, want_roots);
    let reasons = |r: &updhub::gc::Report, root| {
        r.kept
            .iter()
            .find(|k| k.root == root)
            .unwrap()
            .reasons
            .clone()
    };
    use updhub::gc::Reason;
    let v4 = *roots(&[4]).iter().next().unwrap();
    assert_eq!(
        reasons(&dry, v4),
        vec![Reason::Recent, Reason::Active, Reason::Published]
    );
    assert_eq!(reasons(&dry, mirrored), vec![Reason::Mirrored]);
    assert_eq!(dry.dropped_versions, vec![1, 2], "what would go");
    assert_eq!((dry.blobs, dry.bytes), (gone.len() as u64, gone_bytes));
    assert!(
        updhub::gc::last(&parent.data).is_none(),
        "a dry run leaves no summary"
    );

    let real = updhub::gc::run(&parent, false).unwrap();
    assert_eq!((real.blobs, real.bytes), (dry.blobs, dry.bytes));
    assert_eq!(real.dropped_versions, vec![1, 2]);
    let after: BTreeSet<BlobId> = blobs(&parent).into_iter().collect();
    assert_eq!(after, kept_blobs, "exactly the kept versions' blobs stay");
    let last = updhub::gc::last(&parent.data).unwrap();
    assert_eq!((last.blobs, last.bytes), (real.blobs, real.bytes));
    assert_eq!(
        parent.status().unwrap().last_gc.unwrap().dropped_versions,
        vec![1, 2]
    );
    // Kept versions roll back; the mirrored one publishes.
    let (p, _) = parent.publish_version(3, None).unwrap();
    assert_eq!(p.number, 5);
    let (p, _) = parent.publish(None).unwrap();
    assert_eq!((p.number, p.root), (6, mirrored));
    // Now the last two are 5 (version 3's content) and 6 (the mirrored): version 4 goes,
    // and a run after that finds nothing more.
    let again = updhub::gc::run(&parent, false).unwrap();
    assert_eq!(again.dropped_versions, vec![4]);
    assert!(again.blobs > 0);
    assert_eq!(updhub::gc::run(&parent, false).unwrap().blobs, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreferenced_blob_younger_than_grace_is_kept_and_a_reused_one_is_young_again() {
    let dir = tempfile::tempdir().unwrap();
    let hub =
        parent_with_versions(dir.path(), 1, 3, |s| s.gc_grace = Duration::from_secs(3600)).await;
    let set_age = |id: &BlobId, age: Duration| {
        let f = fs::File::open(hub.store.blob_path(id)).unwrap();
        f.set_modified(SystemTime::now() - age).unwrap();
    };
    // As an in-progress mirror leaves it: stored, named by no version yet.
    let orphan = hub
        .store
        .put_bytes(b"written by a mirror still running")
        .unwrap();
    let r = updhub::gc::run(&hub, false).unwrap();
    assert_eq!((r.blobs, r.young), (0, 1));
    assert!(hub.store.contains(&orphan));
    // Old, then reused by a mirror or sync (`hold`): young again, kept.
    set_age(&orphan, Duration::from_secs(7200));
    assert!(hub.store.hold(&orphan));
    let r = updhub::gc::run(&hub, false).unwrap();
    assert_eq!((r.blobs, r.young), (0, 1));
    // Old and unreused: removed; the version's own blobs, as old, stay.
    set_age(&orphan, Duration::from_secs(7200));
    for b in blobs_of(&hub, 1) {
        set_age(&b, Duration::from_secs(7200));
    }
    let r = updhub::gc::run(&hub, false).unwrap();
    assert_eq!((r.blobs, r.young), (1, 0));
    assert!(!hub.store.contains(&orphan));
    for b in blobs_of(&hub, 1) {
        assert!(hub.store.contains(&b));
    }
    // A transfer's partial file: kept while its transfer holds it, removed once it is
    // abandoned and old.
    let data = noise(100_000, 9);
    let id = BlobId::of(&data);
    let mut inc = hub
        .store
        .receive(id, data.len() as u64, "blob".into())
        .unwrap();
    inc.write(&zstd::bulk::compress(&data, 3).unwrap()[..1000])
        .unwrap();
    let partial = hub.data.join("store/partial").join(id.to_hex());
    let old = |p: &Path| {
        fs::File::options()
            .append(true)
            .open(p)
            .unwrap()
            .set_modified(SystemTime::now() - Duration::from_secs(7200))
            .unwrap()
    };
    old(&partial);
    let r = updhub::gc::run(&hub, false).unwrap();
    assert_eq!(r.partial_files, 0, "a live transfer's file is kept");
    drop(inc);
    old(&partial);
    let r = updhub::gc::run(&hub, false).unwrap();
    assert_eq!(r.partial_files, 1);
    assert!(!partial.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_a_collected_version_says_it_is_gone_and_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let parent = parent_with_versions(dir.path(), 3, 2, keep_last(1)).await;
    let r = updhub::gc::run(&parent, false).unwrap();
    assert_eq!(r.dropped_versions, vec![1, 2]);
    let err = parent.publish_version(1, None).unwrap_err().to_string();
    assert!(
        err.contains("version 1")
            && err.contains("removed by garbage collection")
            && err.contains("store.keep_versions")
            && err.contains("updhub mirror"),
        "{err}"
    );
    // Nothing changed: version 3 is still the one published.
    assert_eq!(parent.db.published().unwrap().unwrap().number, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gc_command_runs_beside_a_live_serve_on_the_same_data_folder() {
    let dir = tempfile::tempdir().unwrap();
    let parent = parent_with_versions(dir.path(), 2, 2, keep_last(1)).await;
    let data = parent.data.clone();
    let want = tree(&checkout(&parent, dir.path(), "before"));
    drop(parent);
    let (mut serve, _url) = spawn_serve(&data, std::process::Stdio::null());
    let out = updhub_bin()
        .arg("--data")
        .arg(&data)
        .args(["gc", "--json"])
        .output()
        .unwrap();
    let _ = serve.kill();
    let _ = serve.wait();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["dropped_versions"], serde_json::json!([1]), "{r}");
    assert!(r["bytes"].as_u64().unwrap() > 0, "{r}");
    let hub = Hub::open(&data).unwrap();
    assert_eq!(tree(&checkout(&hub, dir.path(), "after")), want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_collects_by_itself_every_gc_every() {
    let dir = tempfile::tempdir().unwrap();
    let parent = parent_with_versions(dir.path(), 2, 3, |s| {
        keep_last(1)(s);
        s.gc_every = Duration::from_millis(200);
    })
    .await;
    let old: Vec<BlobId> = blobs_of(&parent, 1)
        .difference(&blobs_of(&parent, 2))
        .copied()
        .collect();
    assert!(!old.is_empty());
    let want = tree(&checkout(&parent, dir.path(), "before"));
    let srv = start(parent.clone()).await;
    wait_for("serve's periodic gc to remove version 1's blobs", || {
        old.iter().all(|b| !parent.store.contains(b))
    })
    .await;
    wait_for("the last gc in status", || {
        parent.status().unwrap().last_gc.is_some()
    })
    .await;
    assert_eq!(tree(&checkout(&parent, dir.path(), "after")), want);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_removes_nothing_while_the_served_versions_manifest_is_out_of_service() {
    let dir = tempfile::tempdir().unwrap();
    let parent = parent_with_versions(dir.path(), 2, 3, keep_last(1)).await;
    let active = parent.db.published().unwrap().unwrap().root;
    // The scrub found the served version's manifest damaged and took it out of service:
    // which blobs that version needs is unknown until it is fetched again.
    parent.store.quarantine(&active.0).unwrap().unwrap();
    let before = blobs(&parent);
    let err = updhub::gc::run(&parent, false).unwrap_err().to_string();
    assert!(
        err.contains("removed nothing")
            && err.contains(&active.to_string())
            && err.contains("verify --repair"),
        "{err}"
    );
    assert_eq!(blobs(&parent), before);
    // The repair (a parent mirrors again) brings the manifest back; gc goes on.
    parent.mirror(None, false).await.unwrap();
    let r = updhub::gc::run(&parent, false).unwrap();
    assert_eq!(r.dropped_versions, vec![1]);
    assert!(parent.store.contains(&active.0));
}

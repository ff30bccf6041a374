//! Issue 10 point 4: backup and restore. A parent's archive is taken while it serves; the
//! parent dies after publishing once more; the restored parent continues its version
//! numbers past what its children hold, and they accept what it publishes. A child lost
//! after its backup is restored into a new folder, rejoins its parent with the same link
//! and catches up with what was published meanwhile.

mod common;

use std::sync::Arc;

use common::*;
use updhub::child::sync_once;
use updhub::Hub;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_restored_from_a_backup_taken_while_serving_publishes_past_its_children() {
    let dir = tempfile::tempdir().unwrap();
    let zone = sample_zone_copy(dir.path());
    let parent = zone_node(dir.path(), "parent", &zone);
    let v1 = mirror_and_publish(&parent).await;
    let srv = start(parent.clone()).await;
    let child = child_of(dir.path(), "child", &parent, None);
    sync_once(&child, &srv.url).await.unwrap();

    // The archive, while the parent serves.
    let archive = dir.path().join("parent.tar.zst");
    let m = updhub::backup::backup(&parent, &archive).unwrap();
    assert_eq!((m.server_id.as_str(), m.version), ("parent", Some(1)));
    assert_eq!(
        m.database,
        if on_postgres() { "postgres" } else { "sqlite" }
    );

    // The parent publishes once more (the backup does not know it), the child follows,
    // then the parent's machine is lost.
    set_zone_revision(&zone, "2026112402");
    let v2 = mirror_and_publish(&parent).await;
    assert_eq!(v2.number, 2);
    sync_once(&child, &srv.url).await.unwrap();
    assert_eq!(child.db.published().unwrap().unwrap(), v2);
    srv.stop().await;
    let (keys_before, data) = (parent.keys.ca.current_fp(), parent.data.clone());
    drop(parent);
    std::fs::remove_dir_all(&data).unwrap();

    // Restored into a new folder: the same node, keys and (embedded) database.
    let restored_dir = dir.path().join("restored");
    let r = updhub::backup::restore(&archive, &restored_dir).unwrap();
    assert_eq!(r.server_id, "parent");
    let err = updhub::backup::restore(&archive, &restored_dir)
        .unwrap_err()
        .to_string();
    assert!(err.contains("is not empty"), "{err}");
    let restored = Arc::new(Hub::open(&restored_dir).unwrap());
    assert_eq!(restored.keys.ca.current_fp(), keys_before);
    if on_postgres() {
        // The shared database still names the lost instance as live for a while: a node
        // with its id is refused until then (the restore of an embedded database forgets it).
        tokio::time::sleep(updhub::hub::MEMBER_ALIVE + std::time::Duration::from_secs(1)).await;
    }
    let srv = start(restored.clone()).await;

    // Its store is empty: it mirrors again and publishes. Its children hold version 2 (on
    // the embedded database the backup knew only version 1): the child reports it, and the
    // next number goes past it.
    let r = sync_once(&child, &srv.url).await;
    if on_postgres() {
        // The cluster's database is not in the archive: it kept version 2.
        assert_eq!(r.unwrap().number, 2);
    } else {
        let e = r.unwrap_err().to_string();
        assert!(e.contains("older than version 2 already accepted"), "{e}");
    }
    wait_for("the restored parent hears the child", || {
        restored
            .db
            .children()
            .unwrap()
            .iter()
            .any(|c| c.number == Some(2))
    })
    .await;
    // (The vendor went back to the first revision meanwhile: new content on both engines.)
    set_zone_revision(&zone, "2026112401");
    restored.mirror(None, false).await.unwrap();
    let (v3, new) = restored.publish(None).unwrap();
    assert!(new);
    assert_eq!((v3.number, v3.root), (3, v1.root));
    sync_once(&child, &srv.url).await.unwrap();
    assert_eq!(child.db.published().unwrap().unwrap(), v3);
    assert_eq!(
        tree(&checkout(&child, dir.path(), "child-v3")),
        tree(&checkout(&restored, dir.path(), "restored-v3"))
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_restored_from_its_backup_rejoins_its_parent_and_catches_up() {
    let dir = tempfile::tempdir().unwrap();
    let zone = sample_zone_copy(dir.path());
    let parent = zone_node(dir.path(), "parent", &zone);
    mirror_and_publish(&parent).await;
    let srv = start(parent.clone()).await;
    let child = child_of(dir.path(), "child", &parent, Some(srv.url.clone()));
    let csrv = start(child.clone()).await;
    wait_for("the child on version 1", || {
        child.db.published().unwrap().is_some_and(|p| p.number == 1)
    })
    .await;

    // The child's archive while it serves; then its machine is lost, and the parent
    // publishes meanwhile.
    let archive = dir.path().join("child.tar.zst");
    let m = updhub::backup::backup(&child, &archive).unwrap();
    assert_eq!((m.server_id.as_str(), m.version), ("child", Some(1)));
    csrv.stop().await;
    let data = child.data.clone();
    drop(child);
    std::fs::remove_dir_all(&data).unwrap();
    set_zone_revision(&zone, "2026112402");
    let v2 = mirror_and_publish(&parent).await;

    // Restored into a new folder: its keys and link certificate are back, its store is
    // empty. It syncs with the same link (the parent knows it) and fetches all of version 2.
    let restored_dir = dir.path().join("child-restored");
    updhub::backup::restore(&archive, &restored_dir).unwrap();
    let restored = Arc::new(Hub::open(&restored_dir).unwrap());
    assert!(restored.is_child());
    let r = sync_once(&restored, &srv.url).await.unwrap();
    assert_eq!(r.number, 2);
    assert!(r.blobs > 0, "its store was empty: {r:?}");
    assert_eq!(restored.db.published().unwrap().unwrap(), v2);
    assert_eq!(
        tree(&checkout(&restored, dir.path(), "restored-v2")),
        tree(&checkout(&parent, dir.path(), "parent-v2"))
    );
    // The parent hears from it again under its id.
    wait_for("the parent to hear the restored child on version 2", || {
        parent
            .db
            .children()
            .unwrap()
            .iter()
            .any(|c| c.child_id == "child" && c.number == Some(2))
    })
    .await;
    srv.stop().await;
}

#[test]
fn an_archive_that_is_not_a_backup_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.tar.zst");
    std::fs::write(&junk, b"not an archive").unwrap();
    let err = updhub::backup::restore(&junk, &dir.path().join("n"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("is not a usable updhub backup"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_backs_the_node_up_on_schedule_and_keeps_the_newest_archives() {
    let dir = tempfile::tempdir().unwrap();
    let zone = sample_zone_copy(dir.path());
    let node = zone_node(dir.path(), "parent", &zone);
    mirror_and_publish(&node).await;
    let (data, mut cfg) = (node.data.clone(), node.config.clone());
    drop(node);
    cfg.backup.every = std::time::Duration::from_millis(300);
    cfg.backup.keep = 2;
    let node = Arc::new(Hub::open_with(&data, cfg).unwrap());
    let archives = || {
        let mut v: Vec<_> = std::fs::read_dir(data.join("backups"))
            .map(|d| {
                d.filter_map(|e| e.ok().map(|e| e.path()))
                    // Not the work files of a backup being written (`.tmp…`).
                    .filter(|p| p.to_string_lossy().ends_with(".tar.zst"))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    let srv = start(node.clone()).await;
    wait_for("two archives", || archives().len() == 2).await;
    let first = archives();
    wait_for("a third run", || {
        archives().last().is_some_and(|a| !first.contains(a))
    })
    .await;
    srv.stop().await;
    let kept = archives();
    assert_eq!(
        kept.len(),
        2,
        "only the newest backup.keep archives stay: {kept:?}"
    );
    assert!(!kept.contains(&first[0]), "the oldest went");
    let m = updhub::backup::restore(kept.last().unwrap(), &dir.path().join("restored")).unwrap();
    assert_eq!((m.server_id.as_str(), m.version), ("parent", Some(1)));
}

// Issue 18 point 2: hostile archives. Each is refused with a message naming the problem;
// nothing is written outside the target, the target is left as it was (no debris), and a
// good archive restores into it afterwards.

/// One entry of a crafted archive: its header is written as given (names are copied into
/// the header as bytes, so `..` and absolute names get through, as a hostile tool makes them).
struct Raw {
    name: Vec<u8>,
    kind: tar::EntryType,
    link: Vec<u8>,
    data: Box<dyn std::io::Read>,
    size: u64,
}

fn file(name: &str, data: Vec<u8>) -> Raw {
    Raw {
        name: name.as_bytes().to_vec(),
        kind: tar::EntryType::Regular,
        link: Vec::new(),
        size: data.len() as u64,
        data: Box::new(std::io::Cursor::new(data)),
    }
}

fn special(name: &str, kind: tar::EntryType, link: &str) -> Raw {
    Raw {
        name: name.as_bytes().to_vec(),
        kind,
        link: link.as_bytes().to_vec(),
        size: 0,
        data: Box::new(std::io::empty()),
    }
}

/// A zstd-compressed tar of `entries`, as `to`.
fn pack(to: &std::path::Path, entries: Vec<Raw>) {
    let out = std::fs::File::create(to).unwrap();
    let enc = zstd::Encoder::new(out, 1).unwrap().auto_finish();
    let mut tar = tar::Builder::new(enc);
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(e.kind);
        h.set_size(e.size);
        h.set_mode(0o600);
        h.set_mtime(1);
        let g = h.as_gnu_mut().unwrap();
        g.name[..e.name.len()].copy_from_slice(&e.name);
        g.linkname[..e.link.len()].copy_from_slice(&e.link);
        h.set_cksum();
        tar.append(&h, e.data).unwrap();
    }
    tar.into_inner().unwrap();
}

/// The entries of an archive `backup` wrote: its manifest (JSON) and its files, in order.
fn entries_of(archive: &std::path::Path) -> (serde_json::Value, Vec<(String, Vec<u8>)>) {
    use std::io::Read;
    let dec = zstd::Decoder::new(std::fs::File::open(archive).unwrap()).unwrap();
    let mut tar = tar::Archive::new(dec);
    let mut files = Vec::new();
    for e in tar.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        files.push((name, data));
    }
    let (_, json) = files.remove(0);
    (serde_json::from_slice(&json).unwrap(), files)
}

/// The archive `manifest` + `files` in the previous release's format (no digests), plus
/// `extra` at the end: what the hostile cases start from.
fn v1(manifest: &serde_json::Value, files: &[(String, Vec<u8>)], extra: Vec<Raw>) -> Vec<Raw> {
    let mut m = manifest.clone();
    m["format"] = "updhub-backup/1".into();
    if files.iter().any(|(n, _)| n == "database.sqlite") {
        m["database"] = "sqlite".into();
    }
    m.as_object_mut().unwrap().remove("entries");
    let mut out = vec![file(
        "updhub-backup.json",
        serde_json::to_vec_pretty(&m).unwrap(),
    )];
    out.extend(files.iter().map(|(n, d)| file(n, d.clone())));
    out.extend(extra);
    out
}

/// `manifest` with its entries' sizes and digests made to fit `files` again (what a forger
/// does: the digests are a check against damage, not a signature).
fn relisted(manifest: &serde_json::Value, files: &[(String, Vec<u8>)]) -> serde_json::Value {
    let mut m = manifest.clone();
    if files.iter().any(|(n, _)| n == "database.sqlite") {
        m["database"] = "sqlite".into();
    }
    m["entries"] = files
        .iter()
        .map(|(n, d)| {
            serde_json::json!({"name": n, "size": d.len(), "blake3": blake3::hash(d).to_hex().to_string()})
        })
        .collect();
    m
}

/// Every file under `dir` (relative names), for "nothing else was written".
fn listing(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            out.push(p.strip_prefix(dir).unwrap().display().to_string());
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn hostile_archives_are_refused_naming_the_problem_and_leave_everything_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let node = node(dir.path(), "n", NodeOpts::default());
    let good = dir.path().join("good.tar.zst");
    updhub::backup::backup(&node, &good).unwrap();
    drop(node);
    let (manifest, files) = entries_of(&good);
    assert!(manifest["entries"]
        .as_array()
        .is_some_and(|e| !e.is_empty()));
    assert!(files.iter().any(|(n, _)| n.starts_with("keys/")));

    // What a hostile archive aims at, outside the target.
    let victim = dir.path().join("victim");
    std::fs::create_dir(&victim).unwrap();
    let victim_db = victim.join("victim.sqlite");
    if std::fs::copy(dir.path().join("n").join("updhub.db"), &victim_db).is_err() {
        // On PostgreSQL the node has no file of its own: an SQLite file stands in.
        let c = rusqlite::Connection::open(&victim_db).unwrap();
        c.execute_batch("CREATE TABLE precious (x); INSERT INTO precious VALUES (1);")
            .unwrap();
    }
    let victim_bytes = std::fs::read(&victim_db).unwrap();
    let abs = victim.join("abs-escape");
    let config = files
        .iter()
        .find(|(n, _)| n == "updhub.toml")
        .unwrap()
        .1
        .clone();
    let with_url = |url: &str| -> Vec<(String, Vec<u8>)> {
        let text = String::from_utf8(config.clone()).unwrap();
        let mut changed = false;
        let text: String = text
            .lines()
            .map(|l| {
                if l.starts_with("url = ") || l.starts_with("url_file = ") {
                    changed = true;
                    format!("url = {url:?}")
                } else {
                    l.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        assert!(changed, "the configuration names its database");
        let mut f = files.clone();
        f.iter_mut().find(|(n, _)| n == "updhub.toml").unwrap().1 = text.into_bytes();
        if !f.iter().any(|(n, _)| n == "database.sqlite") {
            // A PostgreSQL node's archive: give it a database to place.
            let db = std::fs::read(&victim_db).unwrap();
            f.push(("database.sqlite".into(), db));
        }
        f
    };
    // The links aim the database at the victim (restore deleted rows in what they named).
    let no_db: Vec<_> = files
        .iter()
        .filter(|(n, _)| n != "database.sqlite")
        .cloned()
        .collect();
    let deep = format!("keys/{}x", "d/".repeat(40));
    let long_name = format!("keys/{}x", "d/".repeat(800));
    let mut long = file("././@LongLink", long_name.into_bytes());
    long.kind = tar::EntryType::GNULongName;
    let mut huge = file("keys/zeros.key", Vec::new());
    huge.size = 64 << 20;
    huge.data = Box::new(std::io::Read::take(std::io::repeat(0), 64 << 20));
    let mut big_manifest = manifest.clone();
    big_manifest["note"] = " ".repeat(8 << 20).into();
    let victim_s = victim_db.display().to_string();
    let abs_s = abs.display().to_string();

    let mut v2_extra = files.clone();
    v2_extra.push(("keys/extra.key".into(), b"not listed".to_vec()));
    let mut v2_dup = files.clone();
    v2_dup.push(files[0].clone());
    let mut v2_wrong_size = manifest.clone();
    v2_wrong_size["entries"][0]["size"] = 1.into();
    let db_outside = with_url("sqlite:../victim/victim.sqlite");
    let db_absolute = with_url(&format!("sqlite:{victim_s}"));

    let cases: Vec<(&str, Vec<Raw>, &str)> = vec![
        (
            "symlink database",
            v1(
                &manifest,
                &no_db,
                vec![special(
                    "database.sqlite",
                    tar::EntryType::Symlink,
                    &victim_s,
                )],
            ),
            "is a symbolic link",
        ),
        (
            "hard link database",
            v1(
                &manifest,
                &no_db,
                vec![special("database.sqlite", tar::EntryType::Link, &victim_s)],
            ),
            "is a hard link",
        ),
        (
            "fifo",
            v1(
                &manifest,
                &files,
                vec![special("keys/pipe", tar::EntryType::Fifo, "")],
            ),
            "is a FIFO",
        ),
        (
            "dot-dot name",
            v1(&manifest, &files, vec![file("../escape", b"x".to_vec())]),
            "climbs out",
        ),
        (
            "absolute name",
            v1(&manifest, &files, vec![file(&abs_s, b"x".to_vec())]),
            "absolute name",
        ),
        (
            "unknown name",
            v1(&manifest, &files, vec![file("notes.txt", b"x".to_vec())]),
            "is not a file a backup holds",
        ),
        (
            "huge declared size",
            v1(&manifest, &files, vec![huge]),
            "declares 67108864 bytes",
        ),
        (
            "deep nesting",
            v1(&manifest, &files, vec![file(&deep, b"x".to_vec())]),
            "nested deeper than 3",
        ),
        (
            "long-name nesting",
            v1(&manifest, &files, vec![long, file("keys/x", b"x".to_vec())]),
            "long-name extension",
        ),
        (
            "huge manifest",
            vec![file(
                "updhub-backup.json",
                serde_json::to_vec(&big_manifest).unwrap(),
            )],
            "more than the 1048576 a manifest may hold",
        ),
        (
            "database.url ../",
            v1(&manifest, &db_outside, vec![]),
            "not a plain name inside the data folder",
        ),
        (
            "database.url absolute",
            v1(&manifest, &db_absolute, vec![]),
            "not a plain name inside the data folder",
        ),
        (
            "database.url ../ with digests",
            {
                let mut v = vec![file(
                    "updhub-backup.json",
                    serde_json::to_vec(&relisted(&manifest, &db_outside)).unwrap(),
                )];
                v.extend(db_outside.iter().map(|(n, d)| file(n, d.clone())));
                v
            },
            "not a plain name inside the data folder",
        ),
        (
            "an entry its manifest does not list",
            {
                let mut v = vec![file(
                    "updhub-backup.json",
                    serde_json::to_vec(&manifest).unwrap(),
                )];
                v.extend(v2_extra.iter().map(|(n, d)| file(n, d.clone())));
                v
            },
            "is not listed in its updhub-backup.json",
        ),
        (
            "an entry twice",
            {
                let mut v = vec![file(
                    "updhub-backup.json",
                    serde_json::to_vec(&manifest).unwrap(),
                )];
                v.extend(v2_dup.iter().map(|(n, d)| file(n, d.clone())));
                v
            },
            "is in it twice",
        ),
        (
            "a size its manifest does not list",
            {
                let mut v = vec![file(
                    "updhub-backup.json",
                    serde_json::to_vec(&v2_wrong_size).unwrap(),
                )];
                v.extend(files.iter().map(|(n, d)| file(n, d.clone())));
                v
            },
            "its updhub-backup.json says 1",
        ),
        (
            "an entry missing",
            {
                let mut v = vec![file(
                    "updhub-backup.json",
                    serde_json::to_vec(&manifest).unwrap(),
                )];
                v.extend(
                    files[..files.len() - 1]
                        .iter()
                        .map(|(n, d)| file(n, d.clone())),
                );
                v
            },
            "is not in it",
        ),
    ];

    let parent = dir.path().join("restores");
    std::fs::create_dir(&parent).unwrap();
    for (i, (what, entries, expect)) in cases.into_iter().enumerate() {
        let archive = dir.path().join(format!("case-{i}.tar.zst"));
        pack(&archive, entries);
        // Half into a folder that does not exist, half into an empty one.
        let target = parent.join(format!("t{i}"));
        if i % 2 == 1 {
            std::fs::create_dir(&target).unwrap();
        }
        let before = listing(dir.path());
        let err = updhub::backup::restore(&archive, &target)
            .expect_err(what)
            .to_string();
        assert!(err.contains(expect), "{what}: {err}");
        assert!(
            err.contains("is not a usable updhub backup"),
            "{what}: {err}"
        );
        assert_eq!(
            listing(dir.path()),
            before,
            "{what}: nothing written anywhere"
        );
        assert_eq!(std::fs::read(&victim_db).unwrap(), victim_bytes, "{what}");
        assert!(
            !abs.exists() && !dir.path().join("escape").exists(),
            "{what}"
        );
        // A retry with a good archive works in the same place.
        updhub::backup::restore(&good, &target).unwrap();
        Hub::open(&target).unwrap();
    }
}

#[test]
fn a_bit_flipped_archive_is_refused_and_leaves_no_debris() {
    let dir = tempfile::tempdir().unwrap();
    let node = node(dir.path(), "n", NodeOpts::default());
    let good = dir.path().join("good.tar.zst");
    updhub::backup::backup(&node, &good).unwrap();
    drop(node);
    let bytes = std::fs::read(&good).unwrap();
    let target = dir.path().join("restored");
    // Past the zstd frame header (whose flips zstd refuses on its own), through the end.
    for k in 1..=24 {
        let at = 20 + (bytes.len() - 21) * k / 24;
        let mut flipped = bytes.clone();
        flipped[at] ^= 0x10;
        let archive = dir.path().join("flipped.tar.zst");
        std::fs::write(&archive, &flipped).unwrap();
        // A flip can leave what the frame decodes to unchanged (a match copied from another
        // run of zeros, say): then the archive is intact, byte for byte, and restores. Any
        // other flip is damage and must be refused.
        let decoded = |b: &[u8]| zstd::stream::decode_all(b).ok();
        if decoded(&flipped) == decoded(&bytes) {
            updhub::backup::restore(&archive, &target).unwrap();
            std::fs::remove_dir_all(&target).unwrap();
            continue;
        }
        let err = updhub::backup::restore(&archive, &target)
            .expect_err(&format!("a bit flipped at {at} of {}", bytes.len()))
            .to_string();
        assert!(
            err.contains("is not a usable updhub backup"),
            "at {at}: {err}"
        );
        assert!(!target.exists(), "at {at}: nothing left behind");
        let debris: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(debris.is_empty(), "at {at}: {debris:?}");
    }
    updhub::backup::restore(&good, &target).unwrap();
}

#[test]
fn an_archive_of_the_previous_release_restores_checked_by_its_form_and_database() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let node = node(dir.path(), "n", NodeOpts::default());
    let (id, fp) = (node.id().to_string(), node.keys.ca.current_fp());
    let data = node.data.clone();
    // As the previous release wrote it: a manifest without digests, the configuration and
    // the keys folder as tar's own entries (folder entries too), the database's online copy.
    let old = dir.path().join("old.tar.zst");
    {
        let enc = zstd::Encoder::new(std::fs::File::create(&old).unwrap(), 3)
            .unwrap()
            .auto_finish();
        let mut tar = tar::Builder::new(enc);
        tar.follow_symlinks(false);
        let sqlite = !on_postgres();
        let m = serde_json::json!({
            "format": "updhub-backup/1",
            "server_id": id,
            "cluster_id": node.db.cluster_id().to_string(),
            "taken": chrono::Utc::now(),
            "updhub_version": "0.1.0",
            "version": null,
            "database": if sqlite { "sqlite" } else { "postgres" },
            "note": "the store (blobs) is not in the archive",
        });
        let json = serde_json::to_vec_pretty(&m).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_size(json.len() as u64);
        h.set_mode(0o600);
        h.set_mtime(1);
        h.set_cksum();
        tar.append_data(&mut h, "updhub-backup.json", &json[..])
            .unwrap();
        tar.append_path_with_name(data.join("updhub.toml"), "updhub.toml")
            .unwrap();
        tar.append_dir_all("keys", data.join("keys")).unwrap();
        if sqlite {
            let copy = dir.path().join("copy.sqlite");
            let src = rusqlite::Connection::open(data.join("updhub.db")).unwrap();
            let mut dst = rusqlite::Connection::open(&copy).unwrap();
            rusqlite::backup::Backup::new(&src, &mut dst)
                .unwrap()
                .run_to_completion(256, std::time::Duration::from_millis(10), None)
                .unwrap();
            drop((src, dst));
            tar.append_path_with_name(&copy, "database.sqlite").unwrap();
        }
        tar.into_inner().unwrap().flush().unwrap();
    }
    drop(node);
    let target = dir.path().join("restored");
    let m = updhub::backup::restore(&old, &target).unwrap();
    assert_eq!(m.server_id, id);
    assert!(!m.verified(), "an archive without digests says so");
    let restored = Hub::open(&target).unwrap();
    assert_eq!(restored.keys.ca.current_fp(), fp);
    assert_eq!(restored.id().as_str(), id);
}

//! `backup` and `restore`: one consistent archive of a node (its configuration, keys and
//! embedded database, taken with SQLite's online backup while the node serves), and a node
//! brought back from it into a new data folder. The store is not in the archive: its
//! content is what the zone or the parent holds (a restored parent mirrors again, a child
//! syncs). On PostgreSQL the archive holds the configuration and keys, and says that the
//! shared database has its own backup (pg_dump): its rows are the cluster's, not the node's.
//!
//! An archive is a hostile input to `restore` (it crosses machines and time): restore takes
//! only regular files with the names a backup writes, bounded in size, count and depth, each
//! checked against the blake3 digest its manifest lists (the zstd frame carries a checksum
//! too), into a temporary folder beside the target that is renamed into place only when the
//! node opens there. A refused archive leaves the target as it was.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::db::Location;
use crate::durable;
use crate::error::Error;
use crate::hub::Hub;

/// The format of [`Manifest`]: archives with a digest of every entry.
pub const FORMAT: &str = "updhub-backup/2";
/// The format the previous release wrote: no digests (restored with every other check, and
/// the embedded database's integrity check in their place).
pub const FORMAT_V1: &str = "updhub-backup/1";
/// The manifest's name inside the archive.
const MANIFEST: &str = "updhub-backup.json";
/// The embedded database's name inside the archive.
const DATABASE: &str = "database.sqlite";
/// The keys folder's name, in the data folder and in the archive.
const KEYS: &str = "keys";

/// Bounds on what `restore` reads, each checked before the bytes are read or written.
pub mod limits {
    /// The manifest: a few hundred bytes per entry.
    pub const MANIFEST: u64 = 1 << 20;
    /// Entries in an archive: a node's keys folder holds a dozen files.
    pub const ENTRIES: usize = 256;
    /// One configuration, database URL or key file (a rotations log included).
    pub const SMALL_FILE: u64 = 4 << 20;
    /// The embedded database (far past any node's: a bound against a declared size, not a
    /// quota).
    pub const DATABASE: u64 = 1 << 40;
    /// Components of a name: `keys/upstream/link.key` is the deepest a backup writes.
    pub const DEPTH: usize = 3;
    /// Bytes of a name.
    pub const NAME: usize = 200;
    /// What may follow the last entry (tar's end blocks).
    pub const TRAILER: u64 = 64 << 10;
    /// zstd's window: 16 MiB of decoder memory at most (backup compresses at level 3, a
    /// 2 MiB window).
    pub const WINDOW_LOG: u32 = 24;
}

/// What an archive holds, written first into it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`FORMAT`] ([`FORMAT_V1`] in an archive of the previous release).
    pub format: String,
    /// The node.
    pub server_id: String,
    /// Its cluster.
    pub cluster_id: String,
    /// When the archive was taken.
    pub taken: DateTime<Utc>,
    /// The updhub that took it.
    pub updhub_version: String,
    /// The cluster's newest version number then (the version counter a restored parent
    /// continues from).
    pub version: Option<u64>,
    /// "sqlite": the database is in the archive; "postgres": it is not (see `note`).
    pub database: String,
    /// What the archive leaves out and how to bring that back.
    pub note: String,
    /// Every other entry of the archive, in order, with its size and digest (empty in a
    /// [`FORMAT_V1`] archive).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entries: Vec<Entry>,
}

/// One file of an archive, as its manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Its name in the archive and in the data folder (`updhub.toml`, `keys/ca.key`, …).
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// The blake3 digest of its content, hex.
    pub blake3: String,
}

impl Manifest {
    /// Whether the archive carries a digest of every entry (false for the previous
    /// release's archives, whose content restore can check only by its structure).
    pub fn verified(&self) -> bool {
        self.format == FORMAT
    }
}

/// Errors of backup and restore.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// Reading or writing a file failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// SQLite's online backup failed.
    #[error("backing up the database {path}: {source}; retry (a busy database is retried for a while first)")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// The error.
        source: rusqlite::Error,
    },
    /// The archive is not one `backup` wrote, or is damaged.
    #[error("{path} is not a usable updhub backup: {why}; nothing was restored (the target folder is as it was): restore an archive `updhub backup` wrote, as it wrote it")]
    Bad {
        /// The archive.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// The node's files cannot be archived as they are.
    #[error("cannot back up {path}: {why}")]
    Unfit {
        /// The file.
        path: PathBuf,
        /// Why, and the fix.
        why: String,
    },
    /// The folder to restore into holds something.
    #[error(
        "{0} is not empty: restore into a new or empty folder, so nothing there is overwritten"
    )]
    NotEmpty(PathBuf),
}

impl BackupError {
    /// Whether retrying may help.
    pub fn retryable(&self) -> bool {
        matches!(self, BackupError::Sqlite { .. } | BackupError::Io { .. })
    }
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BackupError {
    let what = what.into();
    move |source| BackupError::Io { what, source }
}

/// What a name in an archive is, by the rules a backup writes names with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `updhub.toml`.
    Config,
    /// `database.sqlite`.
    Database,
    /// A file of `keys/` or `keys/upstream/`.
    Key,
    /// The file `database.url_file` names (known once the configuration is read).
    UrlFile,
}

impl Kind {
    /// The most bytes a file of this kind may hold.
    fn limit(self) -> u64 {
        match self {
            Kind::Database => limits::DATABASE,
            _ => limits::SMALL_FILE,
        }
    }
}

/// Why `name` is no name a backup writes, if it is not: a relative path of at most
/// [`limits::DEPTH`] plain components (no `..`, no root, no dot names).
fn plain_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > limits::NAME {
        return Err(format!(
            "an entry's name is empty or longer than {} bytes",
            limits::NAME
        ));
    }
    let mut depth = 0;
    for c in Path::new(name).components() {
        depth += 1;
        match c {
            Component::Normal(part) => {
                let part = part.to_string_lossy();
                let ok = !part.starts_with('.')
                    && part
                        .chars()
                        .all(|ch| ch.is_ascii_alphanumeric() || "._-".contains(ch));
                if !ok {
                    return Err(format!("the entry {name:?} has a name no backup writes"));
                }
            }
            Component::ParentDir => {
                return Err(format!(
                    "the entry {name:?} climbs out of the folder (`..`)"
                ))
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!("the entry {name:?} has an absolute name"))
            }
            Component::CurDir => {
                return Err(format!("the entry {name:?} has a name no backup writes"))
            }
        }
        if depth > limits::DEPTH {
            return Err(format!(
                "the entry {:?}… is nested deeper than {} levels",
                &name[..name.len().min(60)],
                limits::DEPTH
            ));
        }
    }
    Ok(())
}

/// The kind of the file `name`, or why it is none a backup writes. `url_file`: the name
/// `database.url_file` gives, once the configuration is known.
fn kind_of(name: &str, url_file: Option<&str>) -> Result<Kind, String> {
    plain_name(name)?;
    let parts: Vec<&str> = name.split('/').collect();
    Ok(match parts.as_slice() {
        [n] if *n == crate::config::FILE => Kind::Config,
        [n] if *n == DATABASE => Kind::Database,
        [k, _] | [k, "upstream", _] if *k == KEYS => Kind::Key,
        _ if Some(name) == url_file => Kind::UrlFile,
        _ => return Err(format!("the entry {name:?} is not a file a backup holds")),
    })
}

/// The relative path `database.url_file` or a `sqlite:` URL names, if it stays inside the
/// data folder; otherwise why not.
fn inside(setting: &str, value: &Path) -> Result<String, String> {
    let text = value.to_str().unwrap_or("");
    plain_name(text).map_err(|_| {
        format!(
            "its updhub.toml sets {setting} to {:?}, which is not a plain name inside the data folder: a restore writes only there (set it to a file name in the folder, e.g. \"database-url\" or \"sqlite:updhub.db\", before taking the backup)",
            value.display()
        )
    })?;
    Ok(text.to_owned())
}

/// Copy `from` into `to` (a new file, owner-only) while hashing it; at most `limit` bytes.
fn copy_hashed(from: &Path, to: &Path, limit: u64) -> Result<(u64, String), BackupError> {
    let src = fs::File::open(from).map_err(io(format!("reading {}", from.display())))?;
    let mut dst = new_file(to).map_err(io(format!("writing {}", to.display())))?;
    let mut h = blake3::Hasher::new();
    let n = copy_into(&mut src.take(limit + 1), &mut dst, &mut h)
        .map_err(io(format!("copying {}", from.display())))?;
    if n > limit {
        return Err(BackupError::Unfit {
            path: from.to_owned(),
            why: format!("it is larger than {limit} bytes, more than such a file ever holds; remove what does not belong there"),
        });
    }
    Ok((n, h.finalize().to_hex().to_string()))
}

/// A new owner-only file (failing if the name exists).
fn new_file(path: &Path) -> io::Result<fs::File> {
    let mut o = fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(durable::SECRET);
    }
    o.open(path)
}

/// Copy `r` into `w` and `h` in large chunks; the bytes copied.
fn copy_into(r: &mut impl Read, w: &mut impl Write, h: &mut blake3::Hasher) -> io::Result<u64> {
    let mut buf = vec![0u8; 256 << 10];
    let mut n = 0u64;
    loop {
        let k = match r.read(&mut buf) {
            Ok(0) => return Ok(n),
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        h.update(&buf[..k]);
        w.write_all(&buf[..k])?;
        n += k as u64;
    }
}

/// `backup --to FILE`: write `hub`'s archive (zstd-compressed tar) to `to`, atomically
/// (a temporary file beside it, owner-only from its creation, renamed when whole). Safe
/// while `serve` runs: the files are first copied (and hashed) into a work folder, so the
/// digests the manifest lists are those of the bytes archived.
///
/// # Errors
/// File, database and archive errors; a key or setting no restore would take.
pub fn backup(hub: &Hub, to: &Path) -> Result<Manifest, Error> {
    let dir = to
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let work = tempfile::tempdir_in(dir)
        .map_err(io(format!("making a work folder in {}", dir.display())))?;
    let location = hub.config.database_location(&hub.data)?;
    // (name in the archive, its copy in the work folder), in archive order.
    let mut files: Vec<(String, PathBuf)> = vec![(
        crate::config::FILE.to_owned(),
        hub.data.join(crate::config::FILE),
    )];
    if let Some(f) = &hub.config.database.url_file {
        let name = inside("database.url_file", f).map_err(|why| BackupError::Unfit {
            path: hub.data.join(f),
            why,
        })?;
        files.push((name, hub.data.join(f)));
    }
    files.extend(key_files(&hub.data.join(KEYS))?);
    let (database, note) = match &location {
        Location::Sqlite(_) => ("sqlite", "the store (blobs) is not in the archive: a restored parent runs `updhub mirror`, then `updhub publish` (the next number); a restored child syncs from its parent".to_owned()),
        Location::Postgres(_) => ("postgres", "the cluster's PostgreSQL database is not in the archive: back it up with pg_dump (it holds every member's rows); the store is not in it either: a member fetches the cluster's version from the others".to_owned()),
    };
    let mut entries = Vec::new();
    let mut copies = Vec::new();
    for (i, (name, from)) in files.iter().enumerate() {
        let copy = work.path().join(i.to_string());
        let (size, blake3) = copy_hashed(from, &copy, limits::SMALL_FILE)?;
        entries.push(Entry {
            name: name.clone(),
            size,
            blake3,
        });
        copies.push(copy);
    }
    if let Location::Sqlite(path) = &location {
        let copy = work.path().join(DATABASE);
        online_backup(path, &copy)?;
        let mut h = blake3::Hasher::new();
        let mut f = fs::File::open(&copy).map_err(io("reading the database copy"))?;
        let size =
            copy_into(&mut f, &mut io::sink(), &mut h).map_err(io("hashing the database copy"))?;
        entries.push(Entry {
            name: DATABASE.into(),
            size,
            blake3: h.finalize().to_hex().to_string(),
        });
        copies.push(copy);
    }
    let manifest = Manifest {
        format: FORMAT.into(),
        server_id: hub.id().to_string(),
        cluster_id: hub.db.cluster_id().to_string(),
        taken: Utc::now(),
        updhub_version: env!("CARGO_PKG_VERSION").into(),
        version: hub.versions()?.first().map(|v| v.number),
        database: database.into(),
        note,
        entries,
    };
    // The archive holds private keys: owner-only from its creation.
    let mut out = durable::AtomicFile::create(to, durable::SECRET).map_err(io(format!(
        "making a temporary file beside {}",
        to.display()
    )))?;
    {
        let mut enc = zstd::Encoder::new(&mut out, 3).map_err(io("starting the compressor"))?;
        // A checksum of the whole frame: restore refuses a damaged archive before its end.
        enc.include_checksum(true)
            .map_err(io("starting the compressor"))?;
        let mut tar = tar::Builder::new(enc);
        let json = serde_json::to_vec_pretty(&manifest).expect("manifest serializes");
        append(&mut tar, MANIFEST, json.len() as u64, &json[..])?;
        for (e, copy) in manifest.entries.iter().zip(&copies) {
            let f = fs::File::open(copy).map_err(io(format!("reading the copy of {}", e.name)))?;
            append(&mut tar, &e.name, e.size, f)?;
        }
        tar.into_inner()
            .map_err(io("finishing the archive"))?
            .finish()
            .map_err(io("finishing the archive"))?;
    }
    out.commit()
        .map_err(io(format!("writing {}", to.display())))?;
    Ok(manifest)
}

/// The files of the keys folder `keys` (and its `upstream/`), as (name in the archive,
/// path). Temporary files (dot names) of writes in flight are left out.
fn key_files(keys: &Path) -> Result<Vec<(String, PathBuf)>, BackupError> {
    let mut out = Vec::new();
    let mut folders = vec![(KEYS.to_owned(), keys.to_owned())];
    while let Some((prefix, dir)) = folders.pop() {
        let mut names: Vec<_> = fs::read_dir(&dir)
            .map_err(io(format!("listing {}", dir.display())))?
            .map(|e| e.map(|e| (e.file_name(), e.path())))
            .collect::<Result<_, _>>()
            .map_err(io(format!("listing {}", dir.display())))?;
        names.sort();
        for (n, path) in names {
            let n = n.to_string_lossy().into_owned();
            if n.starts_with('.') {
                continue;
            }
            let name = format!("{prefix}/{n}");
            let meta =
                fs::symlink_metadata(&path).map_err(io(format!("reading {}", path.display())))?;
            if meta.is_dir() && prefix == KEYS && n == "upstream" {
                folders.push((name, path));
                continue;
            }
            let fit = meta.is_file() && kind_of(&name, None) == Ok(Kind::Key);
            if !fit {
                return Err(BackupError::Unfit {
                    path,
                    why: "the keys folder holds only regular files (and upstream/) with plain names; move this out of it".into(),
                });
            }
            out.push((name, path));
        }
    }
    Ok(out)
}

/// Append a regular file `name` of `size` bytes read from `data` (owner-only, now).
fn append<W: Write>(
    tar: &mut tar::Builder<W>,
    name: &str,
    size: u64,
    data: impl Read,
) -> Result<(), BackupError> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(size);
    h.set_mode(0o600);
    h.set_mtime(Utc::now().timestamp().max(0) as u64);
    h.set_cksum();
    tar.append_data(&mut h, name, data)
        .map_err(io(format!("adding {name}")))
}

/// SQLite's online backup of `from` into `to`: a consistent copy while other connections
/// (a serving node) write.
fn online_backup(from: &Path, to: &Path) -> Result<(), BackupError> {
    let err = |source| BackupError::Sqlite {
        path: from.to_owned(),
        source,
    };
    let src = crate::db::connect(from).map_err(err)?;
    let mut dst = rusqlite::Connection::open(to).map_err(err)?;
    let b = rusqlite::backup::Backup::new(&src, &mut dst).map_err(err)?;
    b.run_to_completion(256, std::time::Duration::from_millis(10), None)
        .map_err(err)?;
    Ok(())
}

/// `restore FILE --data DIR`: unpack the archive `from` into the new or empty folder `data`
/// and check that the node opens there. Returns the archive's manifest.
///
/// Everything is checked first and written into a temporary folder beside `data`, renamed
/// into place at the end: a refused or failed restore leaves `data` as it was.
///
/// # Errors
/// A folder that holds something; an archive that is not a backup, is damaged, or holds
/// anything a backup does not write (named with the problem); file errors.
pub fn restore(from: &Path, data: &Path) -> Result<Manifest, Error> {
    let target = match fs::symlink_metadata(data) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => data.to_owned(),
        Err(e) => return Err(io(format!("examining {}", data.display()))(e).into()),
        Ok(_) => {
            let real =
                fs::canonicalize(data).map_err(io(format!("examining {}", data.display())))?;
            let empty = fs::read_dir(&real).is_ok_and(|mut d| d.next().is_none());
            if !empty {
                return Err(BackupError::NotEmpty(data.to_owned()).into());
            }
            real
        }
    };
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&parent).map_err(io(format!("creating {}", parent.display())))?;
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Beside the target, so the last step is one rename; removed if anything fails.
    let work = tempfile::Builder::new()
        .prefix(&format!(".{name}.restore-"))
        .tempdir_in(&parent)
        .map_err(io(format!("making a work folder in {}", parent.display())))?;
    let manifest = unpack(from, work.path())?;
    settle(from, &manifest, work.path())?;
    for d in [
        work.path().join(KEYS).join("upstream"),
        work.path().join(KEYS),
    ] {
        if d.is_dir() {
            durable::sync_dir(&d).map_err(io(format!("syncing {}", d.display())))?;
        }
    }
    durable::sync_dir(work.path()).map_err(io(format!("syncing {}", work.path().display())))?;
    if let Ok(m) = fs::metadata(&target) {
        // An empty folder the admin made (its mode chosen for the service): the restored
        // one takes its place with the same mode.
        fs::set_permissions(work.path(), m.permissions())
            .map_err(io(format!("setting the mode of {}", work.path().display())))?;
    }
    let staged = work.keep();
    if let Err(e) = durable::rename(&staged, &target) {
        let _ = fs::remove_dir_all(&staged);
        return Err(io(format!(
            "moving the restored node into {} (did something write there meanwhile?)",
            data.display()
        ))(e)
        .into());
    }
    Ok(manifest)
}

/// Read, check and write the archive `from` into the (new, empty) folder `root`: every
/// check passes before a file is written, and a digest mismatch is found before the end.
fn unpack(from: &Path, root: &Path) -> Result<Manifest, BackupError> {
    let bad = |why: String| BackupError::Bad {
        path: from.to_owned(),
        why,
    };
    let damaged = |e: io::Error| bad(format!("it is damaged or cut short ({e})"));
    let file = fs::File::open(from).map_err(io(format!("opening {}", from.display())))?;
    let mut dec =
        zstd::Decoder::new(file).map_err(|e| bad(format!("not zstd-compressed ({e})")))?;
    dec.window_log_max(limits::WINDOW_LOG)
        .map_err(|e| bad(format!("not zstd-compressed ({e})")))?;
    let mut tar = tar::Archive::new(dec);
    let mut entries = tar
        .entries()
        .map_err(|e| bad(format!("not a tar archive ({e})")))?
        // No long-name or pax extensions, which the tar crate would read whole into memory:
        // a backup writes none, and each header is judged as it is.
        .raw(true);

    let mut first = match entries.next() {
        None => return Err(bad(format!("it is empty (it holds no {MANIFEST})"))),
        Some(e) => e.map_err(|e| bad(format!("not a tar archive ({e})")))?,
    };
    let name = entry_name(&first).map_err(&bad)?;
    if name != MANIFEST || !is_regular(first.header().entry_type()) {
        return Err(bad(format!("it does not start with {MANIFEST}")));
    }
    let size = first
        .header()
        .entry_size()
        .map_err(|e| bad(format!("its {MANIFEST} has a damaged header ({e})")))?;
    if size > limits::MANIFEST {
        return Err(bad(format!(
            "its {MANIFEST} declares {size} bytes, more than the {} a manifest may hold",
            limits::MANIFEST
        )));
    }
    let mut json = Vec::new();
    (&mut first)
        .take(limits::MANIFEST)
        .read_to_end(&mut json)
        .map_err(damaged)?;
    drop(first);
    let manifest: Manifest = serde_json::from_slice(&json)
        .map_err(|e| bad(format!("its {MANIFEST} is unreadable ({e})")))?;
    let listed = check_manifest(&manifest).map_err(&bad)?;

    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut url_file: Option<String> = None;
    for entry in entries {
        let mut entry = entry.map_err(damaged)?;
        let name = entry_name(&entry).map_err(&bad)?;
        let t = entry.header().entry_type();
        if t.is_dir() && manifest.entries.is_empty() {
            // The previous release archived the keys folder with its folder entries.
            if name.trim_end_matches('/') == KEYS || name.trim_end_matches('/') == "keys/upstream" {
                continue;
            }
        }
        if !is_regular(t) {
            return Err(bad(format!(
                "the entry {name:?} is {}; a backup holds only regular files",
                type_name(t)
            )));
        }
        let kind = kind_of(&name, url_file.as_deref()).map_err(&bad)?;
        if !seen.insert(name.clone()) {
            return Err(bad(format!("the entry {name:?} is in it twice")));
        }
        let size = entry
            .header()
            .entry_size()
            .map_err(|e| bad(format!("the entry {name:?} has a damaged header ({e})")))?;
        if size > kind.limit() {
            return Err(bad(format!(
                "the entry {name:?} declares {size} bytes, more than the {} such a file may hold",
                kind.limit()
            )));
        }
        let want = match &listed {
            Some(l) => {
                let Some(e) = l.get(name.as_str()) else {
                    return Err(bad(format!(
                        "the entry {name:?} is not listed in its {MANIFEST}"
                    )));
                };
                if e.size != size {
                    return Err(bad(format!(
                        "the entry {name:?} has {size} bytes, its {MANIFEST} says {}",
                        e.size
                    )));
                }
                Some(e.blake3.as_str())
            }
            None => None,
        };
        let path = root.join(&name);
        if let Some(p) = path.parent() {
            fs::create_dir_all(p).map_err(io(format!("creating {}", p.display())))?;
        }
        let mut out = new_file(&path).map_err(io(format!("writing {}", path.display())))?;
        let mut h = blake3::Hasher::new();
        if kind == Kind::Database {
            let mut header = [0u8; 100];
            entry.read_exact(&mut header).map_err(|_| {
                bad(format!("the entry {DATABASE} is not an SQLite database (it is shorter than its header)"))
            })?;
            check_sqlite_header(&header, size).map_err(&bad)?;
            h.update(&header);
            out.write_all(&header)
                .map_err(io(format!("writing {}", path.display())))?;
        }
        copy_into(&mut entry, &mut out, &mut h).map_err(damaged)?;
        if let Some(want) = want {
            if h.finalize().to_hex().as_str() != want {
                return Err(bad(format!(
                    "the entry {name:?} is damaged: its content does not match the digest its {MANIFEST} lists"
                )));
            }
        }
        out.sync_all()
            .map_err(io(format!("syncing {}", path.display())))?;
        if kind == Kind::Config {
            // The configuration comes before the file its `database.url_file` names.
            let text = fs::read_to_string(&path)
                .map_err(|e| bad(format!("its {} is not text ({e})", crate::config::FILE)))?;
            let cfg = crate::config::Config::parse(&text, Path::new(crate::config::FILE))
                .map_err(|e| bad(format!("its {} does not load ({e})", crate::config::FILE)))?;
            if let Some(f) = &cfg.database.url_file {
                url_file = Some(inside("database.url_file", f).map_err(&bad)?);
            }
        }
    }
    if let Some(l) = &listed {
        if let Some(missing) = l.keys().find(|n| !seen.contains(**n)) {
            return Err(bad(format!(
                "it is cut short: {missing:?}, listed in its {MANIFEST}, is not in it"
            )));
        }
    }
    if !seen.contains(crate::config::FILE) {
        return Err(bad(format!("it holds no {}", crate::config::FILE)));
    }
    // Read to the end: the zstd frame's checksum is checked there.
    let mut rest = tar.into_inner();
    let n =
        io::copy(&mut (&mut rest).take(limits::TRAILER + 1), &mut io::sink()).map_err(damaged)?;
    if n > limits::TRAILER {
        return Err(bad("it goes on after its last entry".into()));
    }
    Ok(manifest)
}

/// The checks of a manifest on its own; the entries it lists by name (None for the
/// previous release's format, which lists none).
fn check_manifest(m: &Manifest) -> Result<Option<BTreeMap<&str, &Entry>>, String> {
    let listed = match m.format.as_str() {
        FORMAT => {
            if m.entries.len() > limits::ENTRIES {
                return Err(format!(
                    "its {MANIFEST} lists {} entries, more than the {} a backup writes",
                    m.entries.len(),
                    limits::ENTRIES
                ));
            }
            let mut l = BTreeMap::new();
            for e in &m.entries {
                plain_name(&e.name)?;
                if e.blake3.len() != 64 || !e.blake3.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(format!(
                        "its {MANIFEST} lists {:?} without a blake3 digest",
                        e.name
                    ));
                }
                if l.insert(e.name.as_str(), e).is_some() {
                    return Err(format!("its {MANIFEST} lists {:?} twice", e.name));
                }
            }
            Some(l)
        }
        FORMAT_V1 if m.entries.is_empty() => None,
        f => {
            return Err(format!(
                "its format is {f:?}; this updhub reads {FORMAT:?} and the previous release's {FORMAT_V1:?}"
            ))
        }
    };
    match (m.database.as_str(), &listed) {
        ("sqlite", Some(l)) if !l.contains_key(DATABASE) => Err(format!(
            "its {MANIFEST} says it holds the database but lists no {DATABASE}"
        )),
        ("postgres", Some(l)) if l.contains_key(DATABASE) => Err(format!(
            "its {MANIFEST} says the database is PostgreSQL but lists a {DATABASE}"
        )),
        ("sqlite" | "postgres", _) => Ok(listed),
        (d, _) => Err(format!(
            "its {MANIFEST} names the database {d:?}, neither \"sqlite\" nor \"postgres\""
        )),
    }
}

/// The name of an entry, as UTF-8.
fn entry_name<R: Read>(e: &tar::Entry<'_, R>) -> Result<String, String> {
    let raw = e.path_bytes();
    let name = std::str::from_utf8(&raw)
        .map_err(|_| "an entry's name is not UTF-8".to_owned())?
        .to_owned();
    if name.len() > limits::NAME {
        return Err(format!(
            "an entry's name is longer than {} bytes",
            limits::NAME
        ));
    }
    Ok(name)
}

fn is_regular(t: tar::EntryType) -> bool {
    matches!(t, tar::EntryType::Regular | tar::EntryType::Continuous)
}

/// What an entry of type `t` is, in words.
fn type_name(t: tar::EntryType) -> String {
    use tar::EntryType as T;
    match t {
        T::Symlink => "a symbolic link".into(),
        T::Link => "a hard link".into(),
        T::Fifo => "a FIFO (named pipe)".into(),
        T::Char | T::Block => "a device".into(),
        T::Directory => "a folder".into(),
        T::GNULongName | T::GNULongLink => "a GNU long-name extension".into(),
        T::XHeader | T::XGlobalHeader => "a pax extension header".into(),
        T::GNUSparse => "a sparse file".into(),
        other => format!("an entry of type {:?}", other.as_byte() as char),
    }
}

/// The checks of an SQLite file's header, before its body is read: the magic, and the size
/// the header declares (page size times page count, where the count is valid) against the
/// entry's.
fn check_sqlite_header(h: &[u8; 100], size: u64) -> Result<(), String> {
    if &h[..16] != b"SQLite format 3\0" {
        return Err(format!("the entry {DATABASE} is not an SQLite database"));
    }
    let be32 = |at: usize| u32::from_be_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]]);
    let page = match u16::from_be_bytes([h[16], h[17]]) {
        1 => 65536u64,
        n => u64::from(n),
    };
    let pages = u64::from(be32(28));
    if pages > 0 && be32(24) == be32(92) && pages * page != size {
        return Err(format!(
            "the entry {DATABASE} has {size} bytes, its SQLite header says {}",
            pages * page
        ));
    }
    Ok(())
}

/// After the files are in `root`: the database where the configuration says (inside the
/// folder), the lost instance forgotten, and the node opened there.
fn settle(from: &Path, manifest: &Manifest, root: &Path) -> Result<(), Error> {
    let bad = |why: String| BackupError::Bad {
        path: from.to_owned(),
        why,
    };
    let config = crate::config::Config::load(root)
        .map_err(|e| bad(format!("its {} does not load ({e})", crate::config::FILE)))?;
    let copy = root.join(DATABASE);
    let has_copy = copy.exists();
    match config.database.url.strip_prefix("sqlite:") {
        Some(file) if config.database.url_file.is_none() => {
            inside("database.url", Path::new(file)).map_err(&bad)?;
        }
        _ => {}
    }
    match config
        .database_location(root)
        .map_err(|e| bad(e.to_string()))?
    {
        Location::Sqlite(db) => {
            if let Ok(rel) = db.strip_prefix(root) {
                inside("the database", rel).map_err(&bad)?;
            } else {
                return Err(bad(format!(
                    "its database would be {}, outside the data folder",
                    db.display()
                ))
                .into());
            }
            if !has_copy {
                return Err(bad(format!(
                    "its {} names an embedded database but the archive holds none",
                    crate::config::FILE
                ))
                .into());
            }
            // The copy names the instance that was running when it was taken as this node's
            // live membership: that instance is gone (this is its restore), and a fresh
            // `serve` would otherwise be refused as a second live node with its id.
            let c = rusqlite::Connection::open(&copy)
                .map_err(|e| bad(format!("its {DATABASE} cannot be opened ({e})")))?;
            c.execute(
                "DELETE FROM members WHERE node_id = ?1",
                [manifest.server_id.as_str()],
            )
            .map_err(|e| bad(format!("its {DATABASE} is not an updhub database ({e})")))?;
            drop(c);
            if db != copy {
                if let Some(p) = db.parent() {
                    fs::create_dir_all(p).map_err(io(format!("creating {}", p.display())))?;
                }
                fs::rename(&copy, &db).map_err(io(format!("placing {}", db.display())))?;
            }
        }
        Location::Postgres(_) if has_copy => {
            return Err(bad(format!(
                "it holds an embedded database but its {} names PostgreSQL",
                crate::config::FILE
            ))
            .into())
        }
        Location::Postgres(_) => {}
    }
    // The node must open: keys, configuration and database all there and whole.
    let hub = Hub::open(root)?;
    if !manifest.verified() {
        // No digests in the previous release's archives: the database's own check of its
        // pages stands in for them.
        hub.db
            .check_integrity()
            .map_err(|e| bad(format!("its database is damaged ({e})")))?;
    }
    hub.db.checkpoint()?;
    Ok(())
}

/// One scheduled backup of `hub` (`backup.every`): an archive named by node and time in
/// `backup.dir`, then all but the newest `backup.keep` of this node's archives there removed.
/// Returns the archive written and those removed.
///
/// # Errors
/// See [`backup`]; a folder that cannot be made or listed.
pub fn scheduled(hub: &Hub) -> Result<(PathBuf, Vec<PathBuf>), Error> {
    let live = hub.live();
    let dir = hub.data.join(&live.backup.dir);
    fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
    let prefix = format!("updhub-{}-", hub.id());
    // The time in the name sorts as it reads: the newest archive is the last name.
    let name = format!(
        "{prefix}{}.tar.zst",
        Utc::now().format("%Y%m%dT%H%M%S%.3fZ")
    );
    let to = dir.join(name);
    backup(hub, &to)?;
    let mut ours: Vec<PathBuf> = fs::read_dir(&dir)
        .map_err(io(format!("listing {}", dir.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".tar.zst"))
        })
        .collect();
    ours.sort();
    let old = ours.len().saturating_sub(live.backup.keep);
    let mut removed = Vec::new();
    for p in ours.into_iter().take(old) {
        fs::remove_file(&p).map_err(io(format!("removing {}", p.display())))?;
        removed.push(p);
    }
    Ok((to, removed))
}

//! `backup` and `restore`: one consistent archive of a node (its configuration, keys and
//! embedded database, taken with SQLite's online backup while the node serves), and a node
//! brought back from it into a new data folder. The store is not in the archive: its
//! content is what the zone or the parent holds (a restored parent mirrors again, a child
//! syncs). On PostgreSQL the archive holds the configuration and keys, and says that the
//! shared database has its own backup (pg_dump): its rows are the cluster's, not the node's.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::db::Location;
use crate::error::Error;
use crate::hub::Hub;

/// The format of [`Manifest`].
pub const FORMAT: &str = "updhub-backup/1";
/// The manifest's name inside the archive.
const MANIFEST: &str = "updhub-backup.json";
/// The embedded database's name inside the archive.
const DATABASE: &str = "database.sqlite";

/// What an archive holds, written first into it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`FORMAT`].
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
    #[error("{path} is not a usable updhub backup: {why}")]
    Bad {
        /// The archive.
        path: PathBuf,
        /// Why.
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

/// `backup --to FILE`: write `hub`'s archive (zstd-compressed tar) to `to`, atomically
/// (a temporary file beside it, renamed when whole). Safe while `serve` runs.
///
/// # Errors
/// File, database and archive errors.
pub fn backup(hub: &Hub, to: &Path) -> Result<Manifest, Error> {
    let dir = to
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let work = tempfile::tempdir_in(dir)
        .map_err(io(format!("making a work folder in {}", dir.display())))?;
    let location = hub.config.database_location(&hub.data)?;
    let (database, note) = match &location {
        Location::Sqlite(path) => {
            online_backup(path, &work.path().join(DATABASE))?;
            ("sqlite", "the store (blobs) is not in the archive: a restored parent runs `updhub mirror`, then `updhub publish` (the next number); a restored child syncs from its parent".to_owned())
        }
        Location::Postgres(_) => ("postgres", "the cluster's PostgreSQL database is not in the archive: back it up with pg_dump (it holds every member's rows); the store is not in it either: a member fetches the cluster's version from the others".to_owned()),
    };
    let manifest = Manifest {
        format: FORMAT.into(),
        server_id: hub.id().to_string(),
        cluster_id: hub.db.cluster_id().to_string(),
        taken: Utc::now(),
        updhub_version: env!("CARGO_PKG_VERSION").into(),
        version: hub.versions()?.first().map(|v| v.number),
        database: database.into(),
        note,
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .map_err(io(format!("making a temporary file in {}", dir.display())))?;
    {
        let enc = zstd::Encoder::new(tmp.as_file_mut(), 3)
            .map_err(io("starting the compressor"))?
            .auto_finish();
        let mut tar = tar::Builder::new(enc);
        tar.follow_symlinks(false);
        let json = serde_json::to_vec_pretty(&manifest).expect("manifest serializes");
        append_bytes(&mut tar, MANIFEST, &json)?;
        let cfg = hub.data.join(crate::config::FILE);
        tar.append_path_with_name(&cfg, crate::config::FILE)
            .map_err(io(format!("adding {}", cfg.display())))?;
        if let Some(f) = &hub.config.database.url_file {
            let p = hub.data.join(f);
            tar.append_path_with_name(&p, f)
                .map_err(io(format!("adding {}", p.display())))?;
        }
        tar.append_dir_all("keys", hub.data.join("keys"))
            .map_err(io("adding the keys folder"))?;
        if database == "sqlite" {
            tar.append_path_with_name(work.path().join(DATABASE), DATABASE)
                .map_err(io("adding the database copy"))?;
        }
        tar.into_inner()
            .map_err(io("finishing the archive"))?
            .flush()
            .map_err(io("finishing the archive"))?;
    }
    tmp.as_file()
        .sync_all()
        .map_err(io(format!("syncing {}", to.display())))?;
    // The archive holds private keys: readable by its owner only.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o600))
            .map_err(io(format!("restricting {}", to.display())))?;
    }
    tmp.persist(to)
        .map_err(|e| io(format!("writing {}", to.display()))(e.error))?;
    Ok(manifest)
}

fn append_bytes<W: Write>(
    tar: &mut tar::Builder<W>,
    name: &str,
    bytes: &[u8],
) -> Result<(), BackupError> {
    let mut h = tar::Header::new_gnu();
    h.set_size(bytes.len() as u64);
    h.set_mode(0o600);
    h.set_mtime(Utc::now().timestamp().max(0) as u64);
    h.set_cksum();
    tar.append_data(&mut h, name, bytes)
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
/// # Errors
/// A folder that holds something, an archive that is not a backup, or file errors.
pub fn restore(from: &Path, data: &Path) -> Result<Manifest, Error> {
    let bad = |why: String| BackupError::Bad {
        path: from.to_owned(),
        why,
    };
    if fs::read_dir(data).is_ok_and(|mut d| d.next().is_some()) {
        return Err(BackupError::NotEmpty(data.to_owned()).into());
    }
    fs::create_dir_all(data).map_err(io(format!("creating {}", data.display())))?;
    let file = fs::File::open(from).map_err(io(format!("opening {}", from.display())))?;
    let dec = zstd::Decoder::new(file).map_err(|e| bad(format!("not zstd-compressed ({e})")))?;
    let mut tar = tar::Archive::new(dec);
    let mut manifest: Option<Manifest> = None;
    for entry in tar
        .entries()
        .map_err(|e| bad(format!("not a tar archive ({e})")))?
    {
        let mut entry = entry.map_err(|e| bad(format!("damaged ({e})")))?;
        let path = entry
            .path()
            .map_err(|e| bad(format!("a bad name ({e})")))?
            .into_owned();
        if path == Path::new(MANIFEST) {
            let mut json = Vec::new();
            entry
                .read_to_end(&mut json)
                .map_err(|e| bad(format!("damaged ({e})")))?;
            let m: Manifest = serde_json::from_slice(&json)
                .map_err(|e| bad(format!("its {MANIFEST} is unreadable ({e})")))?;
            if m.format != FORMAT {
                return Err(bad(format!(
                    "format {:?}, this updhub reads {FORMAT:?}",
                    m.format
                ))
                .into());
            }
            manifest = Some(m);
            continue;
        }
        if manifest.is_none() {
            return Err(bad(format!("it does not start with {MANIFEST}")).into());
        }
        // `unpack_in` refuses names that leave the folder (`..`, absolute paths).
        if path == Path::new(DATABASE) {
            // Put in place once the configuration says where the database lives.
            entry
                .unpack(data.join(DATABASE))
                .map_err(io(format!("unpacking {}", path.display())))?;
        } else if !entry
            .unpack_in(data)
            .map_err(io(format!("unpacking {}", path.display())))?
        {
            return Err(bad(format!("{} would land outside the folder", path.display())).into());
        }
    }
    let manifest = manifest.ok_or_else(|| bad(format!("it holds no {MANIFEST}")))?;
    let config = crate::config::Config::load(data)?;
    if let Location::Sqlite(db) = config.database_location(data)? {
        let copy = data.join(DATABASE);
        if manifest.database == "sqlite" {
            // The copy names the instance that was running when it was taken as this node's
            // live membership: that instance is gone (this is its restore), and a fresh
            // `serve` would otherwise be refused as a second live node with its id.
            let c = rusqlite::Connection::open(&copy).map_err(|source| BackupError::Sqlite {
                path: copy.clone(),
                source,
            })?;
            c.execute(
                "DELETE FROM members WHERE node_id = ?1",
                [manifest.server_id.as_str()],
            )
            .map_err(|source| BackupError::Sqlite {
                path: copy.clone(),
                source,
            })?;
            drop(c);
            fs::rename(&copy, &db).map_err(io(format!("placing {}", db.display())))?;
        }
    }
    // The node must open: keys, configuration and database all there and whole.
    Hub::open(data)?;
    Ok(manifest)
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

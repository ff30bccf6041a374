//! Upstream zones: the GUS layout that `mirror` reads, from a local folder or over HTTPS
//! (another updhub's `/v1/zone`), and `export`, which writes a version back out as a zone.
//!
//! ```text
//! ZONE/zone.json                          products and their current revision
//! ZONE/<product>/<revision>/files.json    path, size, blake3 of every file
//! ZONE/<product>/<revision>/data/<path>   the files
//! ```
//! JSON Schemas of both index files are in `schemas/`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::id::BlobId;
use crate::keys::ClusterKeys;
use crate::repo::{check_name, check_path, check_size, Manifest};
use crate::store::{Store, StoreError};

/// Format tag of `zone.json`.
pub const ZONE_FORMAT: &str = "updhub-zone/1";
/// Format tag of `files.json`.
pub const FILES_FORMAT: &str = "updhub-files/1";

/// Most bytes read for one index file (`zone.json`, `files.json`): room for about 300,000
/// files in one product revision, far beyond a real zone, and still bounded memory.
pub const MAX_INDEX_BYTES: u64 = crate::peer::MAX_INDEX;

/// Most product revisions [`Zone::revisions`] lists: far more than a zone keeps, and a
/// bound on what a repair reads to find a lost manifest.
pub const MAX_LISTED_REVISIONS: usize = 4096;

/// How long an HTTPS upstream may send no byte before a mirror gives up on it (a mirror run
/// from cron must end, not hang on a stalled upstream).
pub const STALL: Duration = Duration::from_secs(60);

/// Errors reading or writing zones.
#[derive(Debug, thiserror::Error)]
pub enum ZoneError {
    /// An index file is malformed.
    #[error("zone {what}: {why}; the upstream zone is damaged or of another format, fix it or mirror again later")]
    Bad {
        /// The index file.
        what: String,
        /// What is wrong.
        why: String,
    },
    /// A file or index is missing or unreadable.
    #[error("zone {what}: cannot be read ({why}); the upstream zone is incomplete, mirror again once it is whole")]
    Unreadable {
        /// The file.
        what: String,
        /// Why.
        why: String,
    },
    /// The zone folder does not exist or holds no zone.
    #[error("zone folder {path}: {why}")]
    NoZone {
        /// The folder.
        path: PathBuf,
        /// What is wrong, and the fix.
        why: String,
    },
    /// A path in a zone folder is not a regular file inside the zone folder.
    #[error("zone {path}: {why}; only regular files inside the zone folder are read, put the file itself there")]
    NotAFile {
        /// The path.
        path: PathBuf,
        /// What it is instead.
        why: String,
    },
    /// An HTTP zone failed.
    #[error("zone {url}: {why}; check the URL and that the zone is reachable, then run again")]
    Http {
        /// The URL.
        url: String,
        /// Why.
        why: String,
    },
    /// An index file is larger than any real one.
    #[error("zone {what}: larger than {limit} bytes, the most updhub reads for an index file; it is not a zone index or the upstream is damaged or hostile; check the zone URL or folder")]
    IndexTooLarge {
        /// The index file.
        what: String,
        /// [`MAX_INDEX_BYTES`].
        limit: u64,
    },
    /// Writing a zone or checkout folder failed.
    #[error("{path}: {why}")]
    Export {
        /// The folder.
        path: PathBuf,
        /// Why and the fix.
        why: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// `zone.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneIndex {
    /// Always [`ZONE_FORMAT`].
    pub format: String,
    /// A human name, for logs and messages (required and non-empty, as in the schema).
    pub name: String,
    /// Each product at its current revision.
    pub products: Vec<ZoneProduct>,
}

/// One product in `zone.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneProduct {
    /// Product name.
    pub name: String,
    /// Its current revision.
    pub revision: String,
}

/// `files.json` of one product revision.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileList {
    /// Always [`FILES_FORMAT`].
    pub format: String,
    /// Product name.
    pub product: String,
    /// Revision.
    pub revision: String,
    /// Files sorted by path.
    pub files: Vec<ZoneFile>,
}

/// One file in `files.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneFile {
    /// Relative path.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// blake3 of the content.
    pub blake3: BlobId,
}

impl ZoneIndex {
    fn check(&self, what: &str) -> Result<(), ZoneError> {
        let bad = |why: String| ZoneError::Bad {
            what: what.to_owned(),
            why,
        };
        if self.format != ZONE_FORMAT {
            return Err(bad(format!(
                "format is '{}', expected '{ZONE_FORMAT}'",
                self.format
            )));
        }
        if self.name.is_empty() {
            return Err(bad("its name is empty; give the zone a name".into()));
        }
        if self.products.is_empty() {
            return Err(bad("lists no products".into()));
        }
        let mut seen = BTreeSet::new();
        for p in &self.products {
            check_name(&p.name).map_err(&bad)?;
            check_name(&p.revision).map_err(&bad)?;
            if !seen.insert(&p.name) {
                return Err(bad(format!("product {} is listed twice", p.name)));
            }
        }
        Ok(())
    }
}

impl FileList {
    fn check(&self, what: &str, product: &ZoneProduct) -> Result<(), ZoneError> {
        let bad = |why: String| ZoneError::Bad {
            what: what.to_owned(),
            why,
        };
        if self.format != FILES_FORMAT {
            return Err(bad(format!(
                "format is '{}', expected '{FILES_FORMAT}'",
                self.format
            )));
        }
        if self.product != product.name || self.revision != product.revision {
            return Err(bad(format!(
                "it describes {}/{} but sits at {}/{}",
                self.product, self.revision, product.name, product.revision
            )));
        }
        for (i, f) in self.files.iter().enumerate() {
            check_path(&f.path).map_err(&bad)?;
            check_size(f.size).map_err(|why| bad(format!("'{}': {why}", f.path)))?;
            if i > 0 && self.files[i - 1].path >= f.path {
                return Err(bad(format!(
                    "files are not sorted by path, or listed twice, at '{}'",
                    f.path
                )));
            }
        }
        Ok(())
    }
}

/// Where a zone is.
#[derive(Debug, Clone)]
pub enum Zone {
    /// A local folder, and the real paths of its folders found so far.
    Folder(PathBuf, RealDirs),
    /// An https:// base URL, fetched with the cluster's client certificate.
    Http {
        /// Base URL, e.g. `https://parent:8443/v1/zone`.
        base: reqwest::Url,
        /// The client.
        client: reqwest::Client,
    },
}

fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, ZoneError> {
    serde_json::from_slice(bytes).map_err(|e| ZoneError::Bad {
        what: what.to_owned(),
        why: format!("not valid JSON of the zone format: {e}"),
    })
}

impl Zone {
    /// A zone from a folder path or an https:// URL.
    ///
    /// # Errors
    /// A URL that does not parse, or plain http.
    pub fn open(spec: &str, keys: &ClusterKeys) -> Result<Zone, ZoneError> {
        Zone::open_with_stall(spec, keys, STALL)
    }

    /// [`Zone::open`], giving up on an HTTPS upstream that sends no byte for `stall`.
    ///
    /// # Errors
    /// As [`Zone::open`].
    pub fn open_with_stall(
        spec: &str,
        keys: &ClusterKeys,
        stall: Duration,
    ) -> Result<Zone, ZoneError> {
        if spec.starts_with("http://") {
            return Err(ZoneError::Http {
                url: spec.to_owned(),
                why: "plain http is not allowed; use https://".into(),
            });
        }
        if spec.starts_with("https://") {
            let base = reqwest::Url::parse(spec).map_err(|e| ZoneError::Http {
                url: spec.to_owned(),
                why: e.to_string(),
            })?;
            let client =
                crate::peer::stalling_client(keys, stall).map_err(|why| ZoneError::Http {
                    url: spec.to_owned(),
                    why,
                })?;
            return Ok(Zone::Http { base, client });
        }
        Ok(Zone::Folder(PathBuf::from(spec), RealDirs::default()))
    }

    /// How to name this zone to a person.
    pub fn describe(&self) -> String {
        match self {
            Zone::Folder(p, _) => p.display().to_string(),
            Zone::Http { base, .. } => base.to_string(),
        }
    }

    fn url(base: &reqwest::Url, parts: &[&str]) -> reqwest::Url {
        let mut u = base.clone();
        {
            let mut seg = u.path_segments_mut().expect("https URLs have paths");
            seg.pop_if_empty();
            for p in parts {
                seg.extend(p.split('/'));
            }
        }
        u
    }

    async fn fetch_small(&self, parts: &[&str]) -> Result<Vec<u8>, ZoneError> {
        match self {
            Zone::Folder(root, dirs) => {
                let rel = parts.iter().collect::<PathBuf>();
                let (f, _) = open_in_zone(root, dirs, &rel)?;
                let p = root.join(&rel);
                let mut out = Vec::new();
                f.take(MAX_INDEX_BYTES + 1)
                    .read_to_end(&mut out)
                    .map_err(|e| ZoneError::Unreadable {
                        what: p.display().to_string(),
                        why: e.to_string(),
                    })?;
                if out.len() as u64 > MAX_INDEX_BYTES {
                    return Err(ZoneError::IndexTooLarge {
                        what: p.display().to_string(),
                        limit: MAX_INDEX_BYTES,
                    });
                }
                Ok(out)
            }
            Zone::Http { base, client } => {
                let url = Self::url(base, parts);
                let http = |why: String| ZoneError::Http {
                    url: url.to_string(),
                    why,
                };
                let too_large = || ZoneError::IndexTooLarge {
                    what: url.to_string(),
                    limit: MAX_INDEX_BYTES,
                };
                let resp = client
                    .get(url.clone())
                    .send()
                    .await
                    .map_err(|e| http(crate::child::error_chain(&e)))?;
                if !resp.status().is_success() {
                    return Err(http(format!("answered {}", resp.status())));
                }
                crate::peer::read_body(resp, MAX_INDEX_BYTES)
                    .await
                    .map_err(|e| match e {
                        crate::peer::ReadError::TooLarge => too_large(),
                        crate::peer::ReadError::Network(why) => http(why),
                    })
            }
        }
    }

    /// Read and check `zone.json`.
    ///
    /// # Errors
    /// Unreadable or malformed index.
    pub async fn index(&self) -> Result<ZoneIndex, ZoneError> {
        if let Zone::Folder(root, _) = self {
            let meta = fs::metadata(root).map_err(|e| no_zone(root, &e))?;
            if !meta.is_dir() {
                return Err(ZoneError::NoZone {
                    path: root.clone(),
                    why: "it is not a folder; a zone is a folder that holds zone.json".into(),
                });
            }
            if fs::symlink_metadata(root.join("zone.json")).is_err() {
                return Err(ZoneError::NoZone {
                    path: root.clone(),
                    why: "it holds no zone.json, so it is not a zone; give the folder that holds zone.json".into(),
                });
            }
        }
        let what = format!("{}/zone.json", self.describe().trim_end_matches('/'));
        let idx: ZoneIndex = parse_json(&self.fetch_small(&["zone.json"]).await?, &what)?;
        idx.check(&what)?;
        Ok(idx)
    }

    /// Read and check one product revision's `files.json`.
    ///
    /// # Errors
    /// Unreadable or malformed list.
    pub async fn files(&self, product: &ZoneProduct) -> Result<FileList, ZoneError> {
        let what = format!(
            "{}/{}/{}/files.json",
            self.describe().trim_end_matches('/'),
            product.name,
            product.revision
        );
        let list: FileList = parse_json(
            &self
                .fetch_small(&[&product.name, &product.revision, "files.json"])
                .await?,
            &what,
        )?;
        list.check(&what, product)?;
        Ok(list)
    }

    /// Check a file is there, a regular file inside the zone, with its declared size, where
    /// that is cheap (folders), so a missing or truncated file is found before anything is
    /// stored. Mirror checks every entry so, whether its content is stored already or not.
    ///
    /// # Errors
    /// A missing file, anything but a regular file inside the zone folder, or a size mismatch.
    pub fn precheck(&self, product: &ZoneProduct, file: &ZoneFile) -> Result<(), ZoneError> {
        if let Zone::Folder(root, dirs) = self {
            let rel = data_path(Path::new(""), &product.name, &product.revision, &file.path);
            let p = root.join(&rel);
            let (_, meta) = locate_in_zone(root, dirs, &rel)?;
            if meta.len() != file.size {
                return Err(StoreError::SizeMismatch {
                    what: format!("zone {}", p.display()),
                    declared: file.size,
                    actual: meta.len(),
                }
                .into());
            }
        }
        Ok(())
    }

    /// Open one file's content as a blocking reader (used on a blocking thread). At most the
    /// declared size plus one byte is read from a remote answer (the one byte tells "longer"),
    /// and once `cancel` fires the reader ends at its next read (a stalled remote read too).
    ///
    /// # Errors
    /// A missing file, anything but a regular file inside a zone folder, a failed request, or
    /// an answer longer than declared.
    pub async fn open_file(
        &self,
        product: &ZoneProduct,
        file: &ZoneFile,
        cancel: &CancellationToken,
    ) -> Result<Box<dyn Read + Send>, ZoneError> {
        let path = file.path.as_str();
        match self {
            Zone::Folder(root, dirs) => {
                let rel = data_path(Path::new(""), &product.name, &product.revision, path);
                let (f, _) = open_in_zone(root, dirs, &rel)?;
                Ok(Box::new(Cancellable {
                    inner: f,
                    cancel: cancel.clone(),
                }))
            }
            Zone::Http { base, client } => {
                let url = Self::url(base, &[&product.name, &product.revision, "data", path]);
                let http = |why: String| ZoneError::Http {
                    url: url.to_string(),
                    why,
                };
                let resp = client
                    .get(url.clone())
                    .send()
                    .await
                    .map_err(|e| http(crate::child::error_chain(&e)))?;
                if !resp.status().is_success() {
                    return Err(http(format!("answered {}", resp.status())));
                }
                if resp.content_length().is_some_and(|n| n > file.size) {
                    return Err(StoreError::TooLong {
                        what: self.label(product, path),
                        declared: file.size,
                    }
                    .into());
                }
                let stream = resp
                    .bytes_stream()
                    .map_err(|e| {
                        if e.is_timeout() {
                            io::Error::new(
                                io::ErrorKind::TimedOut,
                                "the upstream stopped sending; check it, then run mirror again",
                            )
                        } else {
                            io::Error::other(e)
                        }
                    })
                    .take_until(Box::pin(cancel.clone().cancelled_owned()));
                let reader = tokio_util::io::StreamReader::new(stream);
                Ok(Box::new(
                    tokio_util::io::SyncIoBridge::new(reader).take(file.size.saturating_add(1)),
                ))
            }
        }
    }

    /// Every product revision this zone can still give, by product: what its index offers
    /// now and, for a folder, every `<product>/<revision>/` that holds a `files.json` (a
    /// zone keeps past revisions beside the current one; an HTTPS zone offers its current
    /// revisions only). At most [`MAX_LISTED_REVISIONS`] are listed. The lists themselves
    /// are read and checked by [`Zone::files`], as a mirror reads them.
    ///
    /// # Errors
    /// An unreadable or malformed index.
    pub async fn revisions(&self) -> Result<BTreeMap<String, BTreeSet<String>>, ZoneError> {
        let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for p in self.index().await?.products {
            out.entry(p.name).or_default().insert(p.revision);
        }
        let Zone::Folder(root, _) = self else {
            return Ok(out);
        };
        let named_dirs = |dir: &Path| -> Vec<(String, PathBuf)> {
            let Ok(entries) = fs::read_dir(dir) else {
                return Vec::new();
            };
            entries
                .flatten()
                // Not followed: a link in a zone folder is refused wherever it is read.
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .filter_map(|e| {
                    let name = e.file_name().to_str()?.to_owned();
                    check_name(&name).ok()?;
                    Some((name, e.path()))
                })
                .collect()
        };
        let mut listed = out.values().map(BTreeSet::len).sum::<usize>();
        for (product, dir) in named_dirs(root) {
            for (revision, rdir) in named_dirs(&dir) {
                if listed >= MAX_LISTED_REVISIONS {
                    return Ok(out);
                }
                if rdir.join("files.json").is_file()
                    && out.entry(product.clone()).or_default().insert(revision)
                {
                    listed += 1;
                }
            }
        }
        Ok(out)
    }

    /// A label for one file in messages.
    pub fn label(&self, product: &ZoneProduct, path: &str) -> String {
        format!(
            "zone {}: {}/{}/{}",
            self.describe(),
            product.name,
            product.revision,
            path
        )
    }
}

/// A reader that fails once its token is cancelled, so a stopped mirror's workers end.
struct Cancellable<R> {
    /// The file.
    inner: R,
    /// Fires when the mirror stops.
    cancel: CancellationToken,
}

impl<R: Read> Read for Cancellable<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.cancel.is_cancelled() {
            return Err(io::Error::other("the mirror run was stopped"));
        }
        self.inner.read(buf)
    }
}

/// The real path (links resolved) of each folder of a folder zone met so far, keyed by its
/// path as given; the zone folder itself is the entry of the empty path. Files of one folder
/// share one lookup, so checking every file of a large zone costs about one `lstat` each.
#[derive(Debug, Clone, Default)]
pub struct RealDirs(Arc<Mutex<HashMap<PathBuf, PathBuf>>>);

impl RealDirs {
    fn real(&self, dir: &Path) -> io::Result<PathBuf> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = map.get(dir) {
            return Ok(r.clone());
        }
        let r = dir.canonicalize()?;
        map.insert(dir.to_owned(), r.clone());
        Ok(r)
    }
}

/// Find `rel` under the zone folder `root`: its real path and metadata, if and only if it is
/// a regular file whose real path (all links resolved) is inside the zone folder. A link out
/// of the zone, a FIFO, a device or a folder is refused naming the path: following them would
/// ingest files from elsewhere, read forever (`/dev/zero`) or block forever (a FIFO).
///
/// # Errors
/// A missing zone folder, a missing file, or anything but a regular file in the zone.
fn locate_in_zone(
    root: &Path,
    dirs: &RealDirs,
    rel: &Path,
) -> Result<(PathBuf, fs::Metadata), ZoneError> {
    let real_root = dirs.real(root).map_err(|e| no_zone(root, &e))?;
    let p = root.join(rel);
    let unreadable = |e: io::Error| ZoneError::Unreadable {
        what: p.display().to_string(),
        why: e.to_string(),
    };
    let (Some(parent), Some(name)) = (p.parent(), p.file_name()) else {
        return Err(unreadable(io::ErrorKind::NotFound.into()));
    };
    let mut real = dirs.real(parent).map_err(unreadable)?.join(name);
    let mut meta = fs::symlink_metadata(&real).map_err(unreadable)?;
    if meta.file_type().is_symlink() {
        real = real.canonicalize().map_err(unreadable)?;
        meta = fs::symlink_metadata(&real).map_err(unreadable)?;
    }
    if !real.starts_with(&real_root) {
        return Err(ZoneError::NotAFile {
            path: p.clone(),
            why: format!(
                "it leads to {}, outside the zone folder {}",
                real.display(),
                real_root.display()
            ),
        });
    }
    check_regular(&p, &meta)?;
    Ok((real, meta))
}

/// Open `rel` under the zone folder `root` for reading, under the rules of
/// [`locate_in_zone`].
///
/// # Errors
/// As [`locate_in_zone`].
fn open_in_zone(
    root: &Path,
    dirs: &RealDirs,
    rel: &Path,
) -> Result<(fs::File, fs::Metadata), ZoneError> {
    let (real, _) = locate_in_zone(root, dirs, rel)?;
    let p = root.join(rel);
    let unreadable = |e: io::Error| ZoneError::Unreadable {
        what: p.display().to_string(),
        why: e.to_string(),
    };
    let mut opts = fs::OpenOptions::new();
    opts.read(true);
    // The real path has no link left to follow; O_NOFOLLOW makes sure none was put there
    // since, and O_NONBLOCK that opening a FIFO put there since returns at once.
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    }
    let f = opts.open(&real).map_err(unreadable)?;
    // Check what was opened, not what was looked at: it may have been swapped meanwhile.
    let meta = f.metadata().map_err(unreadable)?;
    check_regular(&p, &meta)?;
    Ok((f, meta))
}

/// Refuse anything but a regular file, saying what it is.
fn check_regular(p: &Path, meta: &fs::Metadata) -> Result<(), ZoneError> {
    if meta.is_file() {
        return Ok(());
    }
    let ft = meta.file_type();
    let what = if ft.is_dir() {
        "a folder"
    } else if is_fifo(&ft) {
        "a FIFO (named pipe)"
    } else {
        "a device, socket or other special file"
    };
    Err(ZoneError::NotAFile {
        path: p.to_owned(),
        why: format!("it is {what}, not a regular file"),
    })
}

fn is_fifo(ft: &fs::FileType) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        ft.is_fifo()
    }
    #[cfg(not(unix))]
    {
        let _ = ft;
        false
    }
}

/// The error for a zone folder that cannot be opened, with the fix.
fn no_zone(root: &Path, e: &io::Error) -> ZoneError {
    let why = match e.kind() {
        io::ErrorKind::NotFound => "it does not exist; check the path given to `mirror --from` or upstream.zone in updhub.toml".to_owned(),
        _ => format!("it cannot be opened ({e}); check the path and its permissions"),
    };
    ZoneError::NoZone {
        path: root.to_owned(),
        why,
    }
}

fn data_path(root: &Path, product: &str, revision: &str, path: &str) -> PathBuf {
    root.join(product).join(revision).join("data").join(path)
}

/// The zone index and file lists that describe a manifest (products at their revisions).
pub fn describe_manifest(m: &Manifest) -> (ZoneIndex, Vec<FileList>) {
    let mut lists: Vec<FileList> = Vec::new();
    for e in &m.entries {
        if lists.last().map(|l| l.product != e.product).unwrap_or(true) {
            lists.push(FileList {
                format: FILES_FORMAT.into(),
                product: e.product.clone(),
                revision: e.revision.clone(),
                files: Vec::new(),
            });
        }
        lists
            .last_mut()
            .expect("pushed above")
            .files
            .push(ZoneFile {
                path: e.path.clone(),
                size: e.size,
                blake3: e.blake3,
            });
    }
    let index = ZoneIndex {
        format: ZONE_FORMAT.into(),
        name: format!("updhub export of {}", m.root()),
        products: lists
            .iter()
            .map(|l| ZoneProduct {
                name: l.product.clone(),
                revision: l.revision.clone(),
            })
            .collect(),
    };
    (index, lists)
}

fn write_json(path: &Path, v: &impl Serialize) -> Result<(), ZoneError> {
    let data = serde_json::to_vec_pretty(v).expect("index serializes");
    fs::write(path, data).map_err(|e| ZoneError::Export {
        path: path.to_owned(),
        why: e.to_string(),
    })
}

/// Write version `m` as a zone in `dir` (air-gapped transfer, or hub chaining). The zone is
/// written into a temp folder beside `dir` and renamed onto it once whole, so a failed or
/// interrupted export leaves no partial zone; `zone.json` is also written last.
///
/// # Errors
/// A non-empty target folder, a missing or corrupt blob, a blob whose size is not the one
/// the manifest declares, or write errors.
pub fn export(store: &Store, m: &Manifest, dir: &Path) -> Result<(), ZoneError> {
    let staging = Staging::new(dir)?;
    let (index, lists) = describe_manifest(m);
    for list in &lists {
        let base = staging.path().join(&list.product).join(&list.revision);
        for f in &list.files {
            let what = format!("{}/{}", list.product, f.path);
            extract(
                store,
                &f.blake3,
                f.size,
                &base.join("data").join(&f.path),
                &what,
            )?;
        }
        write_json(&base.join("files.json"), list)?;
    }
    write_json(&staging.path().join("zone.json"), &index)?;
    staging.finish()
}

/// Write version `m` as a plain tree `dir/<product>/<path>`, through a temp folder renamed
/// onto `dir` once whole, like [`export`].
///
/// # Errors
/// A non-empty target folder, a missing or corrupt blob, a blob whose size is not the one
/// the manifest declares, or write errors.
pub fn checkout(store: &Store, m: &Manifest, dir: &Path) -> Result<u64, ZoneError> {
    checkout_into(store, m, Staging::new(dir)?)
}

/// [`checkout`] into a staging folder the caller made first (so a long fetch learns before
/// it starts that the target folder is not usable).
///
/// # Errors
/// As [`checkout`].
pub fn checkout_into(store: &Store, m: &Manifest, staging: Staging) -> Result<u64, ZoneError> {
    for e in &m.entries {
        let what = format!("{}/{}", e.product, e.path);
        let dest = staging.path().join(&e.product).join(&e.path);
        extract(store, &e.blake3, e.size, &dest, &what)?;
    }
    staging.finish()?;
    Ok(m.entries.len() as u64)
}

/// Extract one blob and check it has the size the manifest declares for it.
fn extract(
    store: &Store,
    id: &BlobId,
    size: u64,
    dest: &Path,
    what: &str,
) -> Result<(), ZoneError> {
    let actual = store.extract_to(id, dest)?;
    if actual != size {
        return Err(StoreError::SizeMismatch {
            what: format!("the manifest entry {what} (blob {id})"),
            declared: size,
            actual,
        }
        .into());
    }
    Ok(())
}

/// A folder being written: a hidden temp folder beside the target, removed if dropped before
/// [`Staging::finish`] renames it onto the target.
pub struct Staging {
    /// The temp folder (its guard removes it on failure).
    tmp: tempfile::TempDir,
    /// The temp folder opened and locked while it is written: the kernel drops the lock if
    /// the process dies, which is how the next staging in the same place tells a folder left
    /// by a killed checkout from one being written (see [`clean_staging`]).
    _lock: Option<fs::File>,
    /// The target folder.
    dest: PathBuf,
}

/// The part of a staging folder's name after the target's name.
const STAGING_MARK: &str = ".updhub-partial-";

/// Remove the staging folders in `parent` that no live process holds (left by a killed
/// checkout or export).
fn clean_staging(parent: &Path) {
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') || !name.contains(STAGING_MARK) {
            continue;
        }
        // Not following links: only a real folder of ours is removed.
        if !e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            continue;
        }
        let path = e.path();
        let Ok(dir) = fs::File::open(&path) else {
            continue;
        };
        if dir.try_lock().is_ok() {
            match fs::remove_dir_all(&path) {
                Ok(()) => {
                    tracing::info!(folder = %path.display(), "removed a partial tree left by a stopped checkout or export")
                }
                Err(e) => {
                    tracing::warn!(folder = %path.display(), error = %e, "cannot remove a partial tree left by a stopped checkout or export")
                }
            }
        }
    }
}

/// Open and lock a new staging folder; `None` where folders cannot be locked. Returns
/// `Ok(None)` too if another process's [`clean_staging`] removed it before the lock was taken
/// (`gone` is then set).
fn lock_staging(path: &Path, gone: &mut bool) -> io::Result<Option<fs::File>> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let dir = fs::File::open(path)?;
        if dir.lock().is_err() {
            return Ok(None);
        }
        let ours = dir.metadata()?;
        *gone = !fs::symlink_metadata(path)
            .map(|m| m.dev() == ours.dev() && m.ino() == ours.ino())
            .unwrap_or(false);
        Ok(Some(dir))
    }
    #[cfg(not(unix))]
    {
        let _ = (path, gone);
        Ok(None)
    }
}

impl Staging {
    /// Check that `dir` is new or an empty folder, and make the temp folder beside it.
    ///
    /// # Errors
    /// The target holds files or is not a folder, or its parent cannot be written.
    pub fn new(dir: &Path) -> Result<Staging, ZoneError> {
        let err = |why: String| ZoneError::Export {
            path: dir.to_owned(),
            why,
        };
        // An existing target is named by its canonical path, so "." or "a/.." have a name.
        let dest = match fs::symlink_metadata(dir) {
            Ok(meta) => {
                if !meta.is_dir() {
                    return Err(err(
                        "it exists and is not a folder; choose an empty or new folder, nothing was written".into(),
                    ));
                }
                if fs::read_dir(dir)
                    .map_err(|e| err(e.to_string()))?
                    .next()
                    .is_some()
                {
                    return Err(err(
                        "the folder is not empty; choose an empty or new folder, nothing was written".into(),
                    ));
                }
                dir.canonicalize().map_err(|e| err(e.to_string()))?
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => dir.to_owned(),
            Err(e) => return Err(err(e.to_string())),
        };
        let name = dest
            .file_name()
            .ok_or_else(|| err("it names no folder; give a folder path".into()))?
            .to_string_lossy()
            .into_owned();
        let parent = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        fs::create_dir_all(&parent).map_err(|e| {
            err(format!(
                "cannot create {} ({e}); check the path and permissions",
                parent.display()
            ))
        })?;
        clean_staging(&parent);
        let prefix = format!(".{name}{STAGING_MARK}");
        let mut b = tempfile::Builder::new();
        b.prefix(&prefix);
        // Made like any new folder (subject to the umask), not owner-only like a temp folder.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            b.permissions(fs::Permissions::from_mode(0o777));
        }
        loop {
            let tmp = b.tempdir_in(&parent).map_err(|e| {
                err(format!(
                    "cannot create a temp folder in {} ({e}); check that it is writable",
                    parent.display()
                ))
            })?;
            let mut gone = false;
            let lock = lock_staging(tmp.path(), &mut gone)
                .map_err(|e| err(format!("cannot open {} ({e})", tmp.path().display())))?;
            if gone {
                // Removed by another process's clean_staging before we locked it; forget it
                // (its guard must not remove whatever may now have its name) and try again.
                let _ = tmp.keep();
                continue;
            }
            return Ok(Staging {
                tmp,
                _lock: lock,
                dest,
            });
        }
    }

    /// Where to write.
    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    /// Rename the whole temp folder onto the target (an empty folder is replaced).
    ///
    /// # Errors
    /// The rename fails, e.g. because files appeared in the target meanwhile.
    pub fn finish(self) -> Result<(), ZoneError> {
        fs::rename(self.tmp.path(), &self.dest).map_err(|e| ZoneError::Export {
            path: self.dest.clone(),
            why: format!("cannot move the finished tree into place ({e}); make sure the folder is still empty or new and run again"),
        })?;
        let _ = self.tmp.keep();
        if let Some(parent) = self.dest.parent().filter(|p| !p.as_os_str().is_empty()) {
            crate::store::sync_dir(parent)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_checks() {
        let ok = ZoneIndex {
            format: ZONE_FORMAT.into(),
            name: "z".into(),
            products: vec![ZoneProduct {
                name: "10-a".into(),
                revision: "1".into(),
            }],
        };
        ok.check("z").unwrap();
        let mut twice = ok.clone();
        twice.products.push(twice.products[0].clone());
        assert!(twice.check("z").unwrap_err().to_string().contains("twice"));
        let mut bad = ok.clone();
        bad.products[0].name = "../x".into();
        assert!(bad.check("z").is_err());
        let mut unnamed = ok.clone();
        unnamed.name = String::new();
        assert!(unnamed.check("z").unwrap_err().to_string().contains("name"));
    }

    #[test]
    fn zone_index_without_its_required_name_is_refused() {
        let err = parse_json::<ZoneIndex>(
            br#"{"format": "updhub-zone/1", "products": [{"name": "a", "revision": "1"}]}"#,
            "z/zone.json",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("z/zone.json") && err.contains("missing field `name`"),
            "{err}"
        );
    }

    #[test]
    fn file_list_must_be_sorted_and_safe() {
        let p = ZoneProduct {
            name: "a".into(),
            revision: "1".into(),
        };
        let f = |path: &str| ZoneFile {
            path: path.into(),
            size: 1,
            blake3: BlobId::of(b"x"),
        };
        let mut l = FileList {
            format: FILES_FORMAT.into(),
            product: "a".into(),
            revision: "1".into(),
            files: vec![f("a"), f("b/c")],
        };
        l.check("f", &p).unwrap();
        l.files.reverse();
        assert!(l.check("f", &p).is_err());
        l.files = vec![f("../../etc/passwd")];
        assert!(l.check("f", &p).is_err());
    }

    #[test]
    fn export_and_checkout_refuse_a_size_the_blob_does_not_have() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("store")).unwrap();
        let id = store.put_bytes(b"hello").unwrap();
        let m = Manifest::new(vec![crate::repo::Entry {
            product: "p".into(),
            revision: "1".into(),
            path: "a.vdb".into(),
            size: 6,
            blake3: id,
        }])
        .unwrap();
        let out = dir.path().join("zone");
        let err = export(&store, &m, &out).unwrap_err().to_string();
        assert!(
            err.contains("p/a.vdb") && err.contains("declares 6 bytes but has 5"),
            "{err}"
        );
        assert!(!out.exists(), "nothing is exported");
        let err = checkout(&store, &m, &out).unwrap_err().to_string();
        assert!(err.contains("declares 6 bytes but has 5"), "{err}");
        assert!(!out.exists(), "nothing is checked out");
    }

    #[test]
    fn file_list_sizes_follow_the_schema_maximum() {
        let p = ZoneProduct {
            name: "a".into(),
            revision: "1".into(),
        };
        let mut l = FileList {
            format: FILES_FORMAT.into(),
            product: "a".into(),
            revision: "1".into(),
            files: vec![ZoneFile {
                path: "x".into(),
                size: crate::store::MAX_SIZE,
                blake3: BlobId::of(b"x"),
            }],
        };
        l.check("f", &p).unwrap();
        l.files[0].size += 1;
        let err = l.check("f", &p).unwrap_err().to_string();
        assert!(
            err.contains("'x'") && err.contains("beyond the maximum"),
            "{err}"
        );
    }
}

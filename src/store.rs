//! Content-addressed blob store: every blob is a zstd frame of its content, named by the
//! blake3 hash of that content, under `store/blobs/<first byte>/<hash>`.
//!
//! Writes are durable and atomic: a temp file in `store/tmp/` (removed by its guard on
//! failure, and locked while written so that [`Store::open`] removes the ones a killed process
//! left), fsync, rename into place, fsync the folder. Content is hashed and compressed while
//! it streams through in [`CHUNK`]-sized pieces, so no blob is ever held whole in memory.
//!
//! A blob's file age (mtime) is what garbage collection ([`crate::gc`]) spares young blobs
//! by: writing a blob or reusing it ([`Store::hold`]) makes it young, and
//! [`Store::collect`] removes an old one in two steps that a concurrent reuse cannot race.

use std::fs::{self, File};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use crate::id::BlobId;

/// Read and write size of the hot path: large enough that syscalls and hashing stay cheap.
pub const CHUNK: usize = 256 * 1024;

/// zstd level for stored blobs: level 3 is zstd's own default, the best speed/size balance.
pub const ZSTD_LEVEL: i32 = 3;

/// Largest content size a blob may declare: 2^53-1, the largest integer JSON carries exactly
/// (the `maximum` of `size` in `schemas/files.schema.json` and `schemas/manifest.schema.json`).
pub const MAX_SIZE: u64 = (1 << 53) - 1;

/// Most bytes the stored (zstd) form of `size` bytes of content can take: zstd's own worst-case
/// bound. A peer that sends more is not sending one of our blobs, whatever it claims.
pub fn stored_bound(size: u64) -> Option<u64> {
    if size > MAX_SIZE {
        return None;
    }
    let n = usize::try_from(size).ok()?;
    match zstd::zstd_safe::compress_bound(n) {
        0 => None,
        b => u64::try_from(b).ok(),
    }
}

/// Errors of the blob store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file system operation failed.
    #[error(
        "{path}: {source}; check that the folder exists, is writable and the disk is not full"
    )]
    Io {
        /// The file or folder involved.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// Reading the source of a blob failed.
    #[error("{what}: reading failed: {source}; the source is unreadable or the connection broke, run again to continue")]
    Source {
        /// Names the content being stored.
        what: String,
        /// The underlying error.
        source: io::Error,
    },
    /// The content is longer than declared (reading stopped one byte past the declared size).
    #[error("{what} declares {declared} bytes but has more; the copy was changed or the source is not what it claims, fetch it again")]
    TooLong {
        /// Names the content.
        what: String,
        /// Size the index declares.
        declared: u64,
    },
    /// A declared size is beyond what a blob may hold.
    #[error("{what} declares {declared} bytes, more than the {MAX_SIZE} a blob may hold; the index is damaged, fix it at its source")]
    TooLarge {
        /// Names the content.
        what: String,
        /// Size the index declares.
        declared: u64,
    },
    /// The content is not as long as declared.
    #[error("{what} declares {declared} bytes but has {actual}; the copy is incomplete or was changed, fetch it again")]
    SizeMismatch {
        /// Names the content.
        what: String,
        /// Size the index declares.
        declared: u64,
        /// Size read.
        actual: u64,
    },
    /// The content hash does not match.
    #[error("{what} declares blake3 {declared} but its content hashes to {actual}; the copy is corrupt, fetch it again")]
    HashMismatch {
        /// Names the content.
        what: String,
        /// Hash the index declares.
        declared: BlobId,
        /// Hash computed.
        actual: BlobId,
    },
    /// Another transfer is receiving the same blob right now.
    #[error("blob {0} is being received by another transfer right now; it is stored when that one ends (try again then)")]
    Busy(BlobId),
    /// The blob is not in the store.
    #[error("blob {0} is not in the store; run `updhub mirror` or `updhub sync` to fetch it")]
    Missing(BlobId),
    /// A stored blob fails verification.
    #[error("stored blob {id} ({path}) is corrupt: {why}; run `updhub verify --repair`: it quarantines the blob and fetches it again")]
    Corrupt {
        /// The blob.
        id: BlobId,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

/// What a caller expects of incoming content, checked before the blob is stored.
#[derive(Debug, Clone)]
pub struct Expect {
    /// Names the content in errors, e.g. "zone mirror: 10-drwbases/2026112401/a.vdb".
    pub what: String,
    /// Declared uncompressed size.
    pub size: u64,
    /// Declared blake3 of the content.
    pub id: BlobId,
}

/// The result of storing one blob.
#[derive(Debug, Clone, Copy)]
pub struct Stored {
    /// The blob's id.
    pub id: BlobId,
    /// Uncompressed size.
    pub size: u64,
    /// Size on disk (compressed).
    pub stored_bytes: u64,
}

/// A content-addressed store rooted at one folder.
#[derive(Debug, Clone)]
pub struct Store {
    /// `<data>/store`.
    dir: PathBuf,
}

impl Store {
    /// Open (and create if needed) the store under `dir`, removing temp files that no live
    /// process owns ([`Store::clean_tmp`]).
    ///
    /// # Errors
    /// Fails if the folders cannot be created.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Store, StoreError> {
        let dir = dir.into();
        for sub in ["blobs", "tmp", "partial"] {
            let p = dir.join(sub);
            fs::create_dir_all(&p).map_err(io_err(&p))?;
        }
        let store = Store { dir };
        store.clean_tmp()?;
        Ok(store)
    }

    /// Where blob `id` lives (whether or not it exists).
    pub fn blob_path(&self, id: &BlobId) -> PathBuf {
        self.dir.join("blobs").join(id.fanout()).join(id.to_hex())
    }

    fn partial_path(&self, id: &BlobId) -> PathBuf {
        self.dir.join("partial").join(id.to_hex())
    }

    /// Whether blob `id` is stored.
    pub fn contains(&self, id: &BlobId) -> bool {
        self.blob_path(id).is_file()
    }

    /// Compressed size on disk of a stored blob.
    ///
    /// # Errors
    /// [`StoreError::Missing`] if the blob is not stored.
    pub fn stored_len(&self, id: &BlobId) -> Result<u64, StoreError> {
        fs::metadata(self.blob_path(id))
            .map(|m| m.len())
            .map_err(|_| StoreError::Missing(*id))
    }

    /// A new temp file in `store/tmp/`, locked for as long as it is open.
    ///
    /// The lock is how [`Store::open`] tells a live writer's file from one left by a killed
    /// process: the kernel drops a lock when its process dies (even by SIGKILL), and unlike
    /// a pid in the name it cannot be fooled by a reused pid or another pid namespace.
    fn temp(&self) -> Result<NamedTempFile, StoreError> {
        let tmp = self.dir.join("tmp");
        loop {
            let f = tempfile::Builder::new()
                .prefix("put-")
                .tempfile_in(&tmp)
                .map_err(io_err(&tmp))?;
            if let Err(e) = f.as_file().lock() {
                // A file system without locks: write unlocked; clean_tmp cannot lock there
                // either, so it leaves such files alone rather than remove a live one.
                static WARNED: std::sync::Once = std::sync::Once::new();
                WARNED.call_once(|| {
                    tracing::warn!(folder = %tmp.display(), error = %e, "cannot lock temp files; temp files of killed runs will not be removed automatically");
                });
                return Ok(f);
            }
            // Between creating and locking, another process's open may have found the file
            // unlocked and removed it: then the path no longer names our file; take another.
            if still_named(&f)? {
                return Ok(f);
            }
        }
    }

    /// Remove the temp files no live process owns (left by a killed or crashed writer).
    /// Returns how many were removed.
    ///
    /// # Errors
    /// The folder cannot be listed.
    pub fn clean_tmp(&self) -> Result<usize, StoreError> {
        let tmp = self.dir.join("tmp");
        let mut removed = 0;
        for e in fs::read_dir(&tmp).map_err(io_err(&tmp))? {
            let e = e.map_err(io_err(&tmp))?;
            let path = e.path();
            if !e.file_type().map(|t| t.is_file()).unwrap_or(false) {
                continue;
            }
            let Ok(f) = File::open(&path) else { continue };
            match f.try_lock() {
                // Nobody holds it: remove it while we hold the lock, so a writer that created
                // it but has not locked it yet sees it gone (see `temp`).
                Ok(()) => {
                    if fs::remove_file(&path).is_ok() {
                        removed += 1;
                    }
                }
                Err(fs::TryLockError::WouldBlock) => {}
                Err(fs::TryLockError::Error(e)) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot lock a temp file to check it; left in place");
                }
            }
        }
        if removed > 0 {
            tracing::info!(removed, folder = %tmp.display(), "removed temp files left by a stopped process");
        }
        Ok(removed)
    }

    /// Fsync the temp file, rename it to the blob's place and fsync the folder, so that a crash
    /// leaves either no blob or the whole blob, never a torn one.
    fn commit(&self, tmp: NamedTempFile, id: &BlobId) -> Result<(), StoreError> {
        let dest = self.blob_path(id);
        // Blobs are public update content: readable like the files a child receives (temp
        // files start owner-only), so backup tools or a web server under another user work.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o644))
                .map_err(io_err(tmp.path()))?;
        }
        tmp.as_file().sync_all().map_err(io_err(tmp.path()))?;
        let folder = dest.parent().expect("blob path has a parent");
        fs::create_dir_all(folder).map_err(io_err(folder))?;
        tmp.persist(&dest).map_err(|e| StoreError::Io {
            path: dest.clone(),
            source: e.error,
        })?;
        sync_dir(folder)
    }

    /// Stream `src` into the store: hash and compress while reading, verify against `expect`.
    /// Nothing is stored unless size and hash match, and at most the declared size plus one
    /// byte is read from `src` (the one byte tells "longer"). `progress` gets the bytes read
    /// per chunk.
    ///
    /// # Errors
    /// Source read errors, a size or hash mismatch, or file system errors.
    pub fn put_reader(
        &self,
        src: impl Read,
        expect: Option<&Expect>,
        progress: &mut dyn FnMut(u64),
    ) -> Result<Stored, StoreError> {
        self.put_inner(src, expect.map(|e| e.size), expect, false, progress)
    }

    /// [`Store::put_reader`] with the content size known in advance (`pledged`), which goes
    /// into the zstd frame header so [`Store::content_size`] can read it back cheaply.
    fn put_inner(
        &self,
        src: impl Read,
        pledged: Option<u64>,
        expect: Option<&Expect>,
        replace: bool,
        progress: &mut dyn FnMut(u64),
    ) -> Result<Stored, StoreError> {
        let what = || expect.map_or_else(|| "content".to_owned(), |e| e.what.clone());
        if let Some(e) = expect {
            if e.size > MAX_SIZE {
                return Err(StoreError::TooLarge {
                    what: what(),
                    declared: e.size,
                });
            }
        }
        // The bound is on the reader itself, so no code path below can read past it.
        let mut src = src.take(expect.map_or(u64::MAX, |e| e.size + 1));
        let tmp = self.temp()?;
        let tmp_path = tmp.path().to_owned();
        let mut enc =
            zstd::stream::write::Encoder::new(tmp, ZSTD_LEVEL).map_err(io_err(&tmp_path))?;
        enc.set_pledged_src_size(pledged)
            .map_err(io_err(&tmp_path))?;
        let mut hasher = blake3::Hasher::new();
        let mut buf = vec![0u8; CHUNK];
        let mut size = 0u64;
        loop {
            let n = match src.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(StoreError::Source {
                        what: what(),
                        source,
                    })
                }
            };
            size += n as u64;
            if let Some(e) = expect {
                if size > e.size {
                    return Err(StoreError::TooLong {
                        what: what(),
                        declared: e.size,
                    });
                }
            }
            hasher.update(&buf[..n]);
            enc.write_all(&buf[..n]).map_err(io_err(&tmp_path))?;
            progress(n as u64);
        }
        let id = BlobId::from(hasher.finalize());
        if let Some(e) = expect {
            if size != e.size {
                return Err(StoreError::SizeMismatch {
                    what: what(),
                    declared: e.size,
                    actual: size,
                });
            }
            if id != e.id {
                return Err(StoreError::HashMismatch {
                    what: what(),
                    declared: e.id,
                    actual: id,
                });
            }
        }
        let tmp = enc.finish().map_err(io_err(&tmp_path))?;
        let stored_bytes = tmp.as_file().metadata().map_err(io_err(&tmp_path))?.len();
        // Already stored: reused, so its age is refreshed like any reuse (see `hold`).
        if replace || !self.hold(&id) {
            self.commit(tmp, &id)?;
        }
        Ok(Stored {
            id,
            size,
            stored_bytes,
        })
    }

    /// Store a small in-memory blob (a manifest).
    ///
    /// # Errors
    /// File system errors.
    pub fn put_bytes(&self, data: &[u8]) -> Result<BlobId, StoreError> {
        Ok(self
            .put_inner(data, Some(data.len() as u64), None, false, &mut |_| {})?
            .id)
    }

    /// Open the stored (compressed) bytes of a blob, for serving them as they are.
    ///
    /// # Errors
    /// [`StoreError::Missing`] if the blob is not stored.
    pub fn open_stored(&self, id: &BlobId) -> Result<File, StoreError> {
        File::open(self.blob_path(id)).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => StoreError::Missing(*id),
            _ => StoreError::Io {
                path: self.blob_path(id),
                source: e,
            },
        })
    }

    /// Decompress a blob into `out`, verifying its hash on the way; returns its size.
    ///
    /// # Errors
    /// Missing or corrupt blob, or a write error on `out`.
    pub fn read_into(&self, id: &BlobId, out: &mut dyn Write) -> Result<u64, StoreError> {
        let path = self.blob_path(id);
        let file = self.open_stored(id)?;
        let corrupt = |why: String| StoreError::Corrupt {
            id: *id,
            path: path.clone(),
            why,
        };
        let mut dec =
            zstd::stream::read::Decoder::with_buffer(BufReader::with_capacity(CHUNK, file))
                .map_err(|e| corrupt(e.to_string()))?;
        let mut hasher = blake3::Hasher::new();
        let mut buf = vec![0u8; CHUNK];
        let mut size = 0u64;
        loop {
            let n = match dec.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(corrupt(format!("zstd: {e}"))),
            };
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n]).map_err(|source| StoreError::Io {
                path: PathBuf::from("<output>"),
                source,
            })?;
            size += n as u64;
        }
        let actual = BlobId::from(hasher.finalize());
        if actual != *id {
            return Err(corrupt(format!("its content hashes to {actual}")));
        }
        Ok(size)
    }

    /// Decompress and verify a small blob into memory (manifests only: they are small).
    ///
    /// # Errors
    /// Missing or corrupt blob.
    pub fn read_bytes(&self, id: &BlobId) -> Result<Vec<u8>, StoreError> {
        let mut out = Vec::new();
        self.read_into(id, &mut out)?;
        Ok(out)
    }

    /// The content size of a stored blob, from its zstd frame header where the header holds
    /// it (every blob this store writes does), else by decompressing it; such a blob (written
    /// by an older updhub, or received from one) is then rewritten with its size in the
    /// header, so the cost is paid once.
    ///
    /// # Errors
    /// Missing or corrupt blob.
    pub fn content_size(&self, id: &BlobId) -> Result<u64, StoreError> {
        match frame_content_size(&self.blob_path(id)) {
            Ok(Some(n)) => Ok(n),
            Ok(None) => {
                let size = self.verify(id)?;
                self.add_size_header(id, size)?;
                Ok(size)
            }
            Err(StoreError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                Err(StoreError::Missing(*id))
            }
            Err(e) => Err(e),
        }
    }

    /// Rewrite a verified blob of `size` bytes with its size in the frame header.
    fn add_size_header(&self, id: &BlobId, size: u64) -> Result<(), StoreError> {
        let path = self.blob_path(id);
        let dec = zstd::stream::read::Decoder::with_buffer(BufReader::with_capacity(
            CHUNK,
            self.open_stored(id)?,
        ))
        .map_err(io_err(&path))?;
        let expect = Expect {
            what: format!("stored blob {id}"),
            size,
            id: *id,
        };
        self.put_inner(dec, Some(size), Some(&expect), true, &mut |_| {})?;
        Ok(())
    }

    /// Verify a stored blob: decompress and hash it; returns its size.
    ///
    /// # Errors
    /// Missing or corrupt blob.
    pub fn verify(&self, id: &BlobId) -> Result<u64, StoreError> {
        self.read_into(id, &mut io::sink())
    }

    /// Write a blob's content to `dest` atomically (temp file beside it, fsync, rename).
    ///
    /// # Errors
    /// Missing or corrupt blob, or file system errors.
    pub fn extract_to(&self, id: &BlobId, dest: &Path) -> Result<u64, StoreError> {
        let folder = dest.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(folder).map_err(io_err(folder))?;
        let mut tmp = NamedTempFile::new_in(folder).map_err(io_err(folder))?;
        let size = {
            let mut w = io::BufWriter::with_capacity(CHUNK, tmp.as_file_mut());
            let size = self.read_into(id, &mut w)?;
            w.flush().map_err(io_err(dest))?;
            size
        };
        tmp.as_file().sync_all().map_err(io_err(dest))?;
        tmp.persist(dest).map_err(|e| StoreError::Io {
            path: dest.to_owned(),
            source: e.error,
        })?;
        Ok(size)
    }

    /// Start (or resume) receiving the stored form of blob `id` from a peer.
    /// Returns the receiver and how many bytes a previous, interrupted attempt already holds.
    /// The partial file never grows past the zstd bound of `size` ([`stored_bound`]) and the
    /// content never past `size`, whatever the peer sends.
    ///
    /// # Errors
    /// A size beyond [`MAX_SIZE`], or file system errors.
    pub fn receive(&self, id: BlobId, size: u64, what: String) -> Result<Incoming, StoreError> {
        let max_stored = stored_bound(size).ok_or_else(|| StoreError::TooLarge {
            what: what.clone(),
            declared: size,
        })?;
        let path = self.partial_path(&id);
        let sink = HashSink::new(size, what.clone());
        let file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io_err(&path))?;
        // One transfer per blob at a time: two writers appending to one partial file would
        // interleave their bytes (each verifies only its own stream). The lock goes with the
        // file handle, so a killed transfer leaves none.
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(StoreError::Busy(id)),
            // A file system without locks: go on, as temp files do.
            Err(fs::TryLockError::Error(_)) => {}
        }
        let mut inc = Incoming {
            file: io::BufWriter::with_capacity(CHUNK, file),
            path,
            decoder: zstd::stream::write::Decoder::new(sink).map_err(io_err(&self.dir))?,
            received: 0,
            max_stored,
            id,
            what: what.clone(),
            store: self.clone(),
        };
        // Replay what an earlier attempt saved through the decoder so the hash covers it; if
        // that part is damaged or longer than any blob of this size, start over rather than
        // fail forever.
        let have = fs::File::open(&inc.path).map_err(io_err(&inc.path))?;
        let held = have.metadata().map_err(io_err(&inc.path))?.len();
        if held > max_stored {
            return self.restart(id, size, what);
        }
        let mut reader = BufReader::with_capacity(CHUNK, have);
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = reader.read(&mut buf).map_err(io_err(&inc.path))?;
            if n == 0 {
                break;
            }
            if inc.decoder.write_all(&buf[..n]).is_err() {
                return self.restart(id, size, what);
            }
            inc.received += n as u64;
        }
        Ok(inc)
    }

    fn restart(&self, id: BlobId, size: u64, what: String) -> Result<Incoming, StoreError> {
        let path = self.partial_path(&id);
        fs::remove_file(&path).map_err(io_err(&path))?;
        self.receive(id, size, what)
    }

    /// Move a damaged blob out of the store into `store/quarantine/` (kept for inspection,
    /// never served: every route reads blobs from `blobs/`), so the next mirror or sync
    /// fetches it again. Returns where it went; None when it was not stored.
    ///
    /// # Errors
    /// File system errors.
    pub fn quarantine(&self, id: &BlobId) -> Result<Option<PathBuf>, StoreError> {
        let from = self.blob_path(id);
        let dir = self.dir.join("quarantine");
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let to = dir.join(format!(
            "{}.{}",
            id.to_hex(),
            chrono::Utc::now().format("%Y%m%dT%H%M%S%.fZ")
        ));
        match fs::rename(&from, &to) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&from)(e)),
        }
        if let Some(fan) = from.parent() {
            sync_dir(fan)?;
        }
        sync_dir(&dir)?;
        Ok(Some(to))
    }

    /// How many damaged blobs sit in `store/quarantine/`.
    ///
    /// # Errors
    /// The folder cannot be listed.
    pub fn quarantined(&self) -> Result<usize, StoreError> {
        let dir = self.dir.join("quarantine");
        match fs::read_dir(&dir) {
            Ok(entries) => Ok(entries.count()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(io_err(&dir)(e)),
        }
    }

    /// Verify every blob of `ids` (decompress and rehash), on `threads` threads at once.
    /// Returns the damaged ones with what is wrong, in `ids` order, and the content bytes
    /// verified. A blob removed meanwhile (garbage collection) is not damaged.
    pub fn verify_many(&self, ids: &[BlobId], threads: usize) -> (Vec<(BlobId, String)>, u64) {
        let next = std::sync::atomic::AtomicUsize::new(0);
        let bytes = std::sync::atomic::AtomicU64::new(0);
        let damaged = std::sync::Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for _ in 0..threads.max(1) {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(id) = ids.get(i) else { break };
                    match self.verify(id) {
                        Ok(n) => {
                            bytes.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                        }
                        Err(StoreError::Missing(_)) => {}
                        Err(e) => {
                            let why = match e {
                                StoreError::Corrupt { why, .. } => why,
                                e => e.to_string(),
                            };
                            damaged
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner)
                                .push((i, *id, why));
                        }
                    }
                });
            }
        });
        let mut damaged = damaged
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        damaged.sort_by_key(|d| d.0);
        (
            damaged.into_iter().map(|(_, id, why)| (id, why)).collect(),
            bytes.into_inner(),
        )
    }

    /// Whether blob `id` is stored, refreshing its age if it is: a mirror or a sync that
    /// finds a blob already stored and reuses it calls this, so garbage collection (which
    /// spares blobs younger than `store.gc_grace`) cannot remove it between the check and
    /// the version that needs it being recorded.
    pub fn hold(&self, id: &BlobId) -> bool {
        let path = self.blob_path(id);
        match File::open(&path) {
            // Setting the time needs no write access to the file, only to own it.
            Ok(f) => {
                if let Err(e) = f.set_modified(std::time::SystemTime::now()) {
                    tracing::warn!(path = %path.display(), error = %e, "cannot refresh a reused blob's age; garbage collection may take it for unused");
                }
                true
            }
            Err(_) => false,
        }
    }

    /// How long ago blob `id` was written or last reused ([`Store::hold`]); zero for a time
    /// in the future (a clock set back).
    ///
    /// # Errors
    /// [`StoreError::Missing`] if the blob is not stored.
    pub fn age(&self, id: &BlobId) -> Result<std::time::Duration, StoreError> {
        let m = fs::metadata(self.blob_path(id)).map_err(|_| StoreError::Missing(*id))?;
        Ok(age_of(&m))
    }

    /// Remove blob `id` if it is at least `grace` old, safely against a concurrent
    /// [`Store::hold`]: the blob is first renamed out of `blobs/` (a reader that opened it
    /// keeps reading: the file lives on until closed), then its age is read again from the
    /// moved file; a blob reused in between is put back. Returns what happened.
    ///
    /// # Errors
    /// File system errors.
    pub fn collect(
        &self,
        id: &BlobId,
        grace: std::time::Duration,
    ) -> Result<Collected, StoreError> {
        let from = self.blob_path(id);
        let meta = match fs::metadata(&from) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Collected::Gone),
            Err(e) => return Err(io_err(&from)(e)),
        };
        if age_of(&meta) < grace {
            return Ok(Collected::Young);
        }
        let trash = self.dir.join("gc");
        fs::create_dir_all(&trash).map_err(io_err(&trash))?;
        // Unique per process and call: two collectors never move onto each other's file.
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let to = trash.join(format!(
            "{}.{}.{}",
            id.to_hex(),
            std::process::id(),
            SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        match fs::rename(&from, &to) {
            Ok(()) => {}
            // Another collector was first.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Collected::Gone),
            Err(e) => return Err(io_err(&from)(e)),
        }
        self.settle(id, &to, grace)
    }

    /// A blob moved to `store/gc/` by [`Store::collect`]: put back if it was reused (young
    /// again) and no copy took its place, else removed.
    fn settle(
        &self,
        id: &BlobId,
        moved: &Path,
        grace: std::time::Duration,
    ) -> Result<Collected, StoreError> {
        // Another collector (`serve`'s and `updhub gc` at once) may settle this file first.
        let gone = |e: io::Error, path: &Path| match e.kind() {
            io::ErrorKind::NotFound => Ok(Collected::Gone),
            _ => Err(io_err(path)(e)),
        };
        let meta = match fs::metadata(moved) {
            Ok(m) => m,
            Err(e) => return gone(e, moved),
        };
        let dest = self.blob_path(id);
        if age_of(&meta) < grace && !dest.exists() {
            return match fs::rename(moved, &dest) {
                Ok(()) => Ok(Collected::Young),
                Err(e) => gone(e, &dest),
            };
        }
        match fs::remove_file(moved) {
            Ok(()) => Ok(Collected::Removed(meta.len())),
            Err(e) => gone(e, moved),
        }
    }

    /// Settle the blobs a collector killed mid-way left in `store/gc/` (see
    /// [`Store::collect`]); returns how many were removed.
    ///
    /// # Errors
    /// File system errors.
    pub fn settle_collected(&self, grace: std::time::Duration) -> Result<usize, StoreError> {
        let trash = self.dir.join("gc");
        let entries = match fs::read_dir(&trash) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(io_err(&trash)(e)),
        };
        let mut removed = 0;
        for e in entries {
            let path = e.map_err(io_err(&trash))?.path();
            let id = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.split('.').next())
                .and_then(|h| h.parse::<BlobId>().ok());
            match id {
                Some(id) => {
                    if matches!(self.settle(&id, &path, grace), Ok(Collected::Removed(_))) {
                        removed += 1;
                    }
                }
                None => {
                    let _ = fs::remove_file(&path);
                }
            }
        }
        Ok(removed)
    }

    /// Remove partial files (interrupted transfers) untouched for `grace` that no transfer
    /// holds (the lock [`Store::receive`] takes); returns how many and their bytes.
    ///
    /// # Errors
    /// The folder cannot be listed.
    pub fn clean_partial(&self, grace: std::time::Duration) -> Result<(u64, u64), StoreError> {
        let dir = self.dir.join("partial");
        let (mut n, mut bytes) = (0, 0);
        for e in fs::read_dir(&dir).map_err(io_err(&dir))? {
            let path = e.map_err(io_err(&dir))?.path();
            let Ok(f) = File::open(&path) else { continue };
            let Ok(meta) = f.metadata() else { continue };
            if !meta.is_file() || age_of(&meta) < grace {
                continue;
            }
            // A live transfer holds the lock: its file is left alone. Removed while we hold
            // it, so a transfer starting now waits (Busy) rather than append to a dead file.
            if f.try_lock().is_ok() && fs::remove_file(&path).is_ok() {
                n += 1;
                bytes += meta.len();
            }
        }
        Ok((n, bytes))
    }

    /// Every stored blob id (for `verify` and garbage collection).
    ///
    /// # Errors
    /// File system errors.
    pub fn list(&self) -> Result<Vec<BlobId>, StoreError> {
        let mut out = Vec::new();
        let blobs = self.dir.join("blobs");
        for fan in fs::read_dir(&blobs).map_err(io_err(&blobs))? {
            let fan = fan.map_err(io_err(&blobs))?.path();
            for f in fs::read_dir(&fan).map_err(io_err(&fan))? {
                let f = f.map_err(io_err(&fan))?;
                if let Some(id) = f.file_name().to_str().and_then(|s| s.parse().ok()) {
                    out.push(id);
                }
            }
        }
        out.sort();
        Ok(out)
    }
}

/// What [`Store::collect`] did with one blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Collected {
    /// Removed; its stored bytes are freed.
    Removed(u64),
    /// Younger than the grace delay (perhaps reused meanwhile): kept.
    Young,
    /// Not stored (another collector removed it first).
    Gone,
}

/// How long ago a file was modified; zero for a time in the future.
fn age_of(m: &fs::Metadata) -> std::time::Duration {
    m.modified()
        .ok()
        .and_then(|t| std::time::SystemTime::now().duration_since(t).ok())
        .unwrap_or_default()
}

/// Whether a locked temp file is still the file its path names.
fn still_named(f: &NamedTempFile) -> Result<bool, StoreError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let ours = f.as_file().metadata().map_err(io_err(f.path()))?;
        Ok(fs::metadata(f.path())
            .map(|m| m.dev() == ours.dev() && m.ino() == ours.ino())
            .unwrap_or(false))
    }
    // Elsewhere an open file cannot be removed, so it is always still there.
    #[cfg(not(unix))]
    {
        let _ = f;
        Ok(true)
    }
}

/// The content size a zstd file's first frame header declares, if it declares one.
fn frame_content_size(path: &Path) -> Result<Option<u64>, StoreError> {
    // A frame header is at most 18 bytes (ZSTD_FRAMEHEADERSIZE_MAX).
    let mut head = Vec::with_capacity(18);
    File::open(path)
        .and_then(|f| f.take(18).read_to_end(&mut head))
        .map_err(io_err(path))?;
    Ok(zstd::zstd_safe::get_frame_content_size(&head).unwrap_or(None))
}

/// Fsync a folder so that a rename into it survives a crash.
///
/// # Errors
/// File system errors.
pub fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    crate::durable::sync_dir(dir).map_err(io_err(dir))
}

/// Hashes and counts decompressed bytes; refuses more than the declared size so a hostile
/// peer cannot fill the disk or memory with a decompression bomb.
struct HashSink {
    hasher: blake3::Hasher,
    size: u64,
    limit: u64,
    what: String,
}

impl HashSink {
    fn new(limit: u64, what: String) -> Self {
        HashSink {
            hasher: blake3::Hasher::new(),
            size: 0,
            limit,
            what,
        }
    }
}

impl Write for HashSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.size += buf.len() as u64;
        if self.size > self.limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} decompresses to more than the declared {} bytes",
                    self.what, self.limit
                ),
            ));
        }
        self.hasher.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A blob being received in its stored (zstd) form: written to `store/partial/<hash>` as it
/// arrives, decompressed and hashed on the fly, moved into the store only once verified.
/// An interrupted transfer leaves the partial file, and [`Store::receive`] resumes from it.
pub struct Incoming {
    /// The partial file, opened for append; buffered because network chunks are small.
    /// Whatever reaches it is a prefix of the stored form, which is all a resume needs.
    file: io::BufWriter<File>,
    /// Its path.
    path: PathBuf,
    /// Decompresses into the hashing sink.
    decoder: zstd::stream::write::Decoder<'static, HashSink>,
    /// Stored bytes held so far (the offset to resume from).
    received: u64,
    /// Most stored bytes a blob of the declared size can take ([`stored_bound`]).
    max_stored: u64,
    /// The expected blob.
    id: BlobId,
    /// Names the blob in errors.
    what: String,
    /// Where it goes when done.
    store: Store,
}

impl Incoming {
    /// Bytes of the stored form already held; a resumed request asks for the rest from here.
    pub fn offset(&self) -> u64 {
        self.received
    }

    /// Drop what was received so far (the peer does not support resuming).
    ///
    /// # Errors
    /// File system errors.
    pub fn reset(self) -> Result<Incoming, StoreError> {
        let (store, id, size, what) = (
            self.store.clone(),
            self.id,
            self.decoder.get_ref().limit,
            self.what.clone(),
        );
        drop(self.file);
        store.restart(id, size, what)
    }

    /// Take the next chunk of the stored form.
    ///
    /// # Errors
    /// Corrupt data (it is discarded so the next attempt starts clean) or file system errors.
    pub fn write(&mut self, chunk: &[u8]) -> Result<(), StoreError> {
        if self.received + chunk.len() as u64 > self.max_stored {
            let _ = fs::remove_file(&self.path);
            return Err(StoreError::Corrupt {
                id: self.id,
                path: self.path.clone(),
                why: format!(
                    "the peer sent more than {} bytes, the most zstd needs for the declared {} bytes of content; it is not this blob",
                    self.max_stored,
                    self.decoder.get_ref().limit
                ),
            });
        }
        if let Err(e) = self.decoder.write_all(chunk) {
            let _ = fs::remove_file(&self.path);
            return Err(StoreError::Corrupt {
                id: self.id,
                path: self.path.clone(),
                why: format!("received data does not decompress: {e}"),
            });
        }
        self.file.write_all(chunk).map_err(io_err(&self.path))?;
        self.received += chunk.len() as u64;
        Ok(())
    }

    /// Check size and hash, then move the blob into the store durably.
    ///
    /// # Errors
    /// A size or hash mismatch (the partial file is discarded) or file system errors.
    pub fn finish(mut self) -> Result<Stored, StoreError> {
        let flushed = self.decoder.flush();
        let sink = self.decoder.get_ref();
        let actual = BlobId::from(sink.hasher.finalize());
        let (size, limit) = (sink.size, sink.limit);
        let fail = |e: StoreError| {
            let _ = fs::remove_file(&self.path);
            Err(e)
        };
        if let Err(e) = flushed {
            return fail(StoreError::Corrupt {
                id: self.id,
                path: self.path.clone(),
                why: format!("received data does not decompress: {e}"),
            });
        }
        if size != limit {
            return fail(StoreError::SizeMismatch {
                what: self.what.clone(),
                declared: limit,
                actual: size,
            });
        }
        if actual != self.id {
            return fail(StoreError::HashMismatch {
                what: self.what.clone(),
                declared: self.id,
                actual,
            });
        }
        self.file.flush().map_err(io_err(&self.path))?;
        // Content and hash are right; the frame header must not claim another size either,
        // since content_size() trusts it (it can, with concatenated frames).
        match frame_content_size(&self.path) {
            Ok(Some(n)) if n != limit => {
                return fail(StoreError::Corrupt {
                    id: self.id,
                    path: self.path.clone(),
                    why: format!(
                        "its zstd header claims {n} bytes of content but it holds {limit}"
                    ),
                })
            }
            Ok(_) => {}
            Err(e) => return fail(e),
        }
        self.file.get_ref().sync_all().map_err(io_err(&self.path))?;
        let dest = self.store.blob_path(&self.id);
        let folder = dest.parent().expect("blob path has a parent").to_owned();
        fs::create_dir_all(&folder).map_err(io_err(&folder))?;
        fs::rename(&self.path, &dest).map_err(io_err(&dest))?;
        sync_dir(&folder)?;
        Ok(Stored {
            id: self.id,
            size,
            stored_bytes: self.received,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path().join("store")).unwrap();
        (dir, s)
    }

    #[test]
    fn put_and_read_back() {
        let (_d, s) = store();
        let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        let st = s.put_reader(&data[..], None, &mut |_| {}).unwrap();
        assert_eq!(st.id, BlobId::of(&data));
        assert_eq!(st.size, data.len() as u64);
        assert!(st.stored_bytes < st.size, "compressible data must shrink");
        assert_eq!(s.read_bytes(&st.id).unwrap(), data);
        assert_eq!(s.list().unwrap(), vec![st.id]);
    }

    #[test]
    fn verify_finds_a_flipped_byte_and_quarantine_takes_the_blob_out_of_service() {
        let (_d, s) = store();
        let ids: Vec<BlobId> = (0..12u32)
            .map(|n| {
                let data: Vec<u8> = (0..50_000u32)
                    .map(|i| ((i * (n + 1)) % 253) as u8)
                    .collect();
                s.put_bytes(&data).unwrap()
            })
            .collect();
        let (damaged, bytes) = s.verify_many(&ids, 3);
        assert!(damaged.is_empty(), "{damaged:?}");
        assert_eq!(bytes, 12 * 50_000);
        // One byte flipped in the middle of the compressed file of blob 5.
        let path = s.blob_path(&ids[5]);
        let mut raw = fs::read(&path).unwrap();
        let mid = raw.len() / 2;
        raw[mid] ^= 0x01;
        fs::write(&path, &raw).unwrap();
        let (damaged, _) = s.verify_many(&ids, 3);
        assert_eq!(damaged.len(), 1, "{damaged:?}");
        assert_eq!(damaged[0].0, ids[5]);
        assert!(
            damaged[0].1.starts_with("zstd") || damaged[0].1.contains("hashes to"),
            "{}",
            damaged[0].1
        );
        let moved = s.quarantine(&ids[5]).unwrap().unwrap();
        assert!(moved.starts_with(s.dir.join("quarantine")));
        assert_eq!(
            fs::read(&moved).unwrap(),
            raw,
            "kept as it was, for inspection"
        );
        assert!(!s.contains(&ids[5]));
        assert!(matches!(s.verify(&ids[5]), Err(StoreError::Missing(_))));
        assert_eq!(
            s.quarantine(&ids[5]).unwrap(),
            None,
            "twice: nothing to move"
        );
        // Gone from the store: a verify run counts it neither damaged nor verified.
        let (damaged, bytes) = s.verify_many(&ids, 2);
        assert!(damaged.is_empty());
        assert_eq!(bytes, 11 * 50_000);
    }

    #[test]
    fn collect_spares_young_blobs_and_a_killed_collectors_leftovers_are_settled() {
        let (_d, s) = store();
        let hour = std::time::Duration::from_secs(3600);
        let age = |id: &BlobId, by: std::time::Duration| {
            File::open(s.blob_path(id))
                .unwrap()
                .set_modified(std::time::SystemTime::now() - by)
                .unwrap();
        };
        let a = s.put_bytes(b"blob a").unwrap();
        assert_eq!(s.collect(&a, hour).unwrap(), Collected::Young);
        age(&a, 2 * hour);
        assert!(s.age(&a).unwrap() >= 2 * hour);
        assert!(s.hold(&a), "reused: young again");
        assert_eq!(s.collect(&a, hour).unwrap(), Collected::Young);
        age(&a, 2 * hour);
        let len = s.stored_len(&a).unwrap();
        assert_eq!(s.collect(&a, hour).unwrap(), Collected::Removed(len));
        assert!(!s.contains(&a) && !s.hold(&a));
        assert_eq!(s.collect(&a, hour).unwrap(), Collected::Gone);
        // A collector killed between its move and its second look: a blob reused meanwhile
        // (young) goes back, an old one is removed.
        let (young, old) = (s.put_bytes(b"young").unwrap(), s.put_bytes(b"old").unwrap());
        age(&old, 2 * hour);
        let trash = s.dir.join("gc");
        fs::create_dir_all(&trash).unwrap();
        for id in [young, old] {
            fs::rename(s.blob_path(&id), trash.join(format!("{}.1.0", id.to_hex()))).unwrap();
        }
        assert_eq!(s.settle_collected(hour).unwrap(), 1);
        assert!(s.contains(&young) && !s.contains(&old));
        assert_eq!(fs::read_dir(&trash).unwrap().count(), 0);
    }

    #[test]
    fn one_transfer_per_blob_at_a_time() {
        let (_d, s) = store();
        let data = b"the same blob, fetched twice at once".to_vec();
        let id = BlobId::of(&data);
        let first = s.receive(id, data.len() as u64, "first".into()).unwrap();
        // A second transfer of the same blob would append to the same partial file.
        assert!(matches!(
            s.receive(id, data.len() as u64, "second".into()),
            Err(StoreError::Busy(b)) if b == id
        ));
        drop(first);
        let again = s.receive(id, data.len() as u64, "again".into()).unwrap();
        assert_eq!(again.offset(), 0);
    }

    #[test]
    fn mismatch_stores_nothing() {
        let (_d, s) = store();
        let e = Expect {
            what: "x".into(),
            size: 5,
            id: BlobId::of(b"hellp"),
        };
        let err = s
            .put_reader(&b"hello"[..], Some(&e), &mut |_| {})
            .unwrap_err();
        assert!(matches!(err, StoreError::HashMismatch { .. }), "{err}");
        let e = Expect { size: 4, ..e };
        let err = s
            .put_reader(&b"hello"[..], Some(&e), &mut |_| {})
            .unwrap_err();
        assert!(
            matches!(err, StoreError::TooLong { declared: 4, .. }),
            "{err}"
        );
        assert!(s.list().unwrap().is_empty());
        assert_eq!(
            fs::read_dir(s.dir.join("tmp")).unwrap().count(),
            0,
            "temp files are cleaned up"
        );
    }

    #[test]
    fn receive_resumes_after_interruption() {
        let (_d, src) = store();
        let (_d2, dst) = store();
        let data: Vec<u8> = (0..3_000_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let st = src.put_reader(&data[..], None, &mut |_| {}).unwrap();
        let stored = fs::read(src.blob_path(&st.id)).unwrap();
        let cut = stored.len() / 3;
        let mut inc = dst.receive(st.id, st.size, "b".into()).unwrap();
        inc.write(&stored[..cut]).unwrap();
        drop(inc);
        let mut inc = dst.receive(st.id, st.size, "b".into()).unwrap();
        assert_eq!(inc.offset(), cut as u64);
        inc.write(&stored[cut..]).unwrap();
        inc.finish().unwrap();
        assert_eq!(dst.read_bytes(&st.id).unwrap(), data);
    }

    #[test]
    fn receive_rejects_wrong_content() {
        let (_d, src) = store();
        let (_d2, dst) = store();
        let st = src.put_bytes(b"the real content").unwrap();
        let fake = src
            .put_reader(&b"a fake content!!"[..], None, &mut |_| {})
            .unwrap();
        let mut inc = dst.receive(st, 16, "b".into()).unwrap();
        inc.write(&fs::read(src.blob_path(&fake.id)).unwrap())
            .unwrap();
        assert!(matches!(
            inc.finish().unwrap_err(),
            StoreError::HashMismatch { .. }
        ));
        assert!(!dst.contains(&st));
    }

    #[test]
    fn open_removes_leftover_temp_files_but_not_a_live_writers() {
        let (d, s) = store();
        let leftover = s.dir.join("tmp").join("put-leftover");
        fs::write(&leftover, b"half a blob").unwrap();
        let live = s.temp().unwrap();
        let again = Store::open(d.path().join("store")).unwrap();
        assert!(!leftover.exists(), "a file nobody holds is removed");
        assert!(live.path().exists(), "a live writer's file is kept");
        assert_eq!(again.clean_tmp().unwrap(), 0);
        drop(live);
        assert_eq!(fs::read_dir(s.dir.join("tmp")).unwrap().count(), 0);
    }

    /// A reader that counts what is pulled from it.
    struct Counting<R> {
        inner: R,
        pulled: std::sync::Arc<std::sync::atomic::AtomicU64>,
    }

    impl<R: Read> Read for Counting<R> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.inner.read(buf)?;
            self.pulled
                .fetch_add(n as u64, std::sync::atomic::Ordering::SeqCst);
            Ok(n)
        }
    }

    #[test]
    fn put_reader_reads_at_most_one_byte_past_the_declared_size() {
        let (_d, s) = store();
        let pulled = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        // 64 MiB offered for a file declared as 1 KiB.
        let src = Counting {
            inner: io::repeat(7).take(64 << 20),
            pulled: pulled.clone(),
        };
        let e = Expect {
            what: "zone z: p/1/a.vdb".into(),
            size: 1024,
            id: BlobId::of(&[7u8; 1024]),
        };
        let err = s.put_reader(src, Some(&e), &mut |_| {}).unwrap_err();
        assert!(
            matches!(err, StoreError::TooLong { declared: 1024, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("p/1/a.vdb"), "{err}");
        assert_eq!(pulled.load(std::sync::atomic::Ordering::SeqCst), 1025);
    }

    #[test]
    fn put_reader_refuses_a_size_beyond_the_schema_maximum() {
        let (_d, s) = store();
        let e = Expect {
            what: "x".into(),
            size: u64::MAX,
            id: BlobId::of(b""),
        };
        let err = s.put_reader(&b""[..], Some(&e), &mut |_| {}).unwrap_err();
        assert!(matches!(err, StoreError::TooLarge { .. }), "{err}");
    }

    /// A zstd skippable frame: valid zstd that decompresses to nothing, so only a bound on
    /// the stored bytes stops a peer sending them forever.
    fn skippable_frame(len: usize) -> Vec<u8> {
        let mut f = 0x184D_2A50u32.to_le_bytes().to_vec();
        f.extend_from_slice(&(len as u32).to_le_bytes());
        f.resize(f.len() + len, 0);
        f
    }

    #[test]
    fn receive_stops_a_peer_sending_more_than_the_zstd_bound() {
        let (_d, s) = store();
        let size = 1_000_000u64;
        let bound = stored_bound(size).unwrap();
        let mut inc = s.receive(BlobId::of(b"x"), size, "blob x".into()).unwrap();
        let frame = skippable_frame(64 * 1024);
        let mut sent = 0u64;
        let err = loop {
            match inc.write(&frame) {
                Ok(()) => sent += frame.len() as u64,
                Err(e) => break e,
            }
            assert!(sent <= 100 * bound, "the receiver took {sent} bytes");
        };
        assert!(sent <= bound, "{sent} > {bound}");
        assert!(err.to_string().contains("more than"), "{err}");
        drop(inc);
        assert!(
            !s.partial_path(&BlobId::of(b"x")).exists(),
            "the garbage is not kept"
        );
    }

    #[test]
    fn receive_discards_a_partial_file_longer_than_the_bound() {
        let (_d, s) = store();
        let id = BlobId::of(b"x");
        let bound = stored_bound(100).unwrap();
        fs::write(s.partial_path(&id), skippable_frame(bound as usize + 10)).unwrap();
        let inc = s.receive(id, 100, "blob x".into()).unwrap();
        assert_eq!(inc.offset(), 0, "an over-long partial file is started over");
    }

    #[test]
    fn receive_refuses_content_longer_than_declared() {
        let (_d, src) = store();
        let (_d2, dst) = store();
        let data = vec![1u8; 500_000];
        let st = src.put_reader(&data[..], None, &mut |_| {}).unwrap();
        let stored = fs::read(src.blob_path(&st.id)).unwrap();
        let mut inc = dst.receive(st.id, 1000, "b".into()).unwrap();
        let err = inc.write(&stored).unwrap_err();
        assert!(
            err.to_string().contains("more than the declared 1000"),
            "{err}"
        );
    }

    #[test]
    fn content_size_comes_from_the_header_and_matches() {
        let (_d, s) = store();
        let data = noise_bytes(300_000);
        let e = Expect {
            what: "x".into(),
            size: data.len() as u64,
            id: BlobId::of(&data),
        };
        let st = s.put_reader(&data[..], Some(&e), &mut |_| {}).unwrap();
        assert_eq!(s.content_size(&st.id).unwrap(), 300_000);
        assert_eq!(
            frame_content_size(&s.blob_path(&st.id)).unwrap(),
            Some(300_000),
            "the size is in the frame header"
        );
        let m = s.put_bytes(b"manifest").unwrap();
        assert_eq!(s.content_size(&m).unwrap(), 8);
        assert!(matches!(
            s.content_size(&BlobId::of(b"none")),
            Err(StoreError::Missing(_))
        ));
    }

    #[test]
    fn a_blob_without_its_size_in_the_header_gets_it_once() {
        // As an older updhub wrote them: a zstd stream with no content size.
        let (_d, s) = store();
        let data = noise_bytes(200_000);
        let id = BlobId::of(&data);
        let mut enc = zstd::stream::write::Encoder::new(Vec::new(), ZSTD_LEVEL).unwrap();
        enc.write_all(&data).unwrap();
        let old = enc.finish().unwrap();
        assert!(matches!(
            zstd::zstd_safe::get_frame_content_size(&old),
            Ok(None)
        ));
        fs::create_dir_all(s.blob_path(&id).parent().unwrap()).unwrap();
        fs::write(s.blob_path(&id), &old).unwrap();
        assert_eq!(s.content_size(&id).unwrap(), 200_000);
        assert_eq!(
            frame_content_size(&s.blob_path(&id)).unwrap(),
            Some(200_000),
            "the blob now carries its size"
        );
        assert_eq!(s.read_bytes(&id).unwrap(), data);
        assert_eq!(fs::read_dir(s.dir.join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn receive_refuses_a_header_that_lies_about_the_size() {
        // Two frames: the first header says 100 bytes, the whole content is 150.
        let (_d, s) = store();
        let data = noise_bytes(150);
        let mut two = zstd::bulk::compress(&data[..100], 3).unwrap();
        two.extend(zstd::bulk::compress(&data[100..], 3).unwrap());
        let id = BlobId::of(&data);
        let mut inc = s.receive(id, 150, "b".into()).unwrap();
        inc.write(&two).unwrap();
        let err = inc.finish().unwrap_err();
        assert!(err.to_string().contains("header claims 100"), "{err}");
        assert!(!s.contains(&id));
    }

    fn noise_bytes(len: usize) -> Vec<u8> {
        (0..len as u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect()
    }
}

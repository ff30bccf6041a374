//! Durable file writes: a file appears whole under its name or not at all, survives a crash
//! once written, and is never readable by anyone its final mode does not allow.
//!
//! Every write goes the same way: a temporary file beside the destination, created with the
//! destination's final mode (a secret is never, even for a moment, readable by others),
//! fsynced, renamed over the destination, and the folder fsynced (the rename itself is only
//! durable then). A guard removes the temporary file if anything fails or the writer is
//! dropped. [`Batch`] does the same for many files with one pass of fsyncs, so a caller can
//! make them all durable before it records the state that names them.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Owner-only: private keys, link keys, archives that hold them.
pub const SECRET: u32 = 0o600;
/// Readable by all: public content (certificates are kept owner-only with the rest of
/// `keys/`, so this is for content like blobs and exports).
pub const PUBLIC: u32 = 0o644;

/// A file being written to `dest`: bytes go to a temporary file beside it, created with its
/// final mode; [`AtomicFile::commit`] puts it in place. Dropped uncommitted, the temporary
/// file is removed.
#[derive(Debug)]
pub struct AtomicFile {
    /// The temporary file; its own drop guard removes it until it is persisted.
    tmp: tempfile::NamedTempFile,
    /// Where it goes.
    dest: PathBuf,
}

/// The folder `path` is in (`.` for a bare name).
fn folder_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

impl AtomicFile {
    /// A new temporary file for `dest`, in its folder, with permissions `mode` from the start.
    ///
    /// # Errors
    /// The folder does not exist or cannot be written.
    pub fn create(dest: &Path, mode: u32) -> io::Result<AtomicFile> {
        let folder = folder_of(dest);
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let prefix = format!(".{name}.");
        let mut b = tempfile::Builder::new();
        // A dot name says "not a finished file" to anyone listing the folder.
        b.prefix(&prefix).suffix(".tmp");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // The mode is given to open(2) itself: no window with a wider one.
            b.permissions(fs::Permissions::from_mode(mode));
        }
        let tmp = b.tempfile_in(folder)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // The umask may have narrowed it; this only ever widens up to `mode`, so that a
            // public file is readable as it would be if the umask were 022.
            tmp.as_file()
                .set_permissions(fs::Permissions::from_mode(mode))?;
        }
        #[cfg(not(unix))]
        let _ = mode;
        #[cfg(test)]
        hook::created(tmp.path(), tmp.as_file());
        Ok(AtomicFile {
            tmp,
            dest: dest.to_owned(),
        })
    }

    /// The open temporary file (to read back, or to sync).
    pub fn file(&self) -> &File {
        self.tmp.as_file()
    }

    /// Where it goes.
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// Fsync, rename over the destination, fsync the folder.
    ///
    /// # Errors
    /// Any of the three steps; the temporary file is then removed and the destination is
    /// as it was.
    pub fn commit(self) -> io::Result<()> {
        self.tmp.as_file().sync_all()?;
        let folder = folder_of(&self.dest).to_owned();
        self.tmp.persist(&self.dest).map_err(|e| e.error)?;
        sync_dir(&folder)
    }

    /// [`AtomicFile::commit`], but fail with `AlreadyExists` rather than replace a file
    /// already at the destination.
    ///
    /// # Errors
    /// See [`AtomicFile::commit`].
    pub fn commit_new(self) -> io::Result<()> {
        self.tmp.as_file().sync_all()?;
        let folder = folder_of(&self.dest).to_owned();
        self.tmp
            .persist_noclobber(&self.dest)
            .map_err(|e| e.error)?;
        sync_dir(&folder)
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tmp.as_file_mut().write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.tmp.as_file_mut().write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.tmp.as_file_mut().flush()
    }
}

/// Write `bytes` to `path` durably and atomically, with permissions `mode` from the start
/// (see the module's note), replacing what was there.
///
/// # Errors
/// File system errors; the destination is then as it was.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let mut f = AtomicFile::create(path, mode)?;
    f.write_all(bytes)?;
    f.commit()
}

/// [`write_atomic`], failing with `AlreadyExists` rather than replace an existing file.
///
/// # Errors
/// See [`write_atomic`].
pub fn write_new(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let mut f = AtomicFile::create(path, mode)?;
    f.write_all(bytes)?;
    f.commit_new()
}

/// Rename `from` to `to` (a file written durably already) and fsync the folders involved,
/// so the move survives a crash.
///
/// # Errors
/// File system errors.
pub fn rename(from: &Path, to: &Path) -> io::Result<()> {
    fs::rename(from, to)?;
    let (a, b) = (folder_of(from), folder_of(to));
    sync_dir(b)?;
    if a != b {
        sync_dir(a)?;
    }
    Ok(())
}

/// The permission bits of the file at `path` (to replace it with a file of the same mode);
/// [`SECRET`] where the platform has none.
///
/// # Errors
/// The file cannot be examined.
pub fn mode_of(path: &Path) -> io::Result<u32> {
    let m = fs::metadata(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        Ok(m.permissions().mode() & 0o7777)
    }
    #[cfg(not(unix))]
    {
        let _ = m;
        Ok(SECRET)
    }
}

/// Fsync a folder: the names created, renamed or removed in it are durable after this.
///
/// # Errors
/// The folder cannot be opened or synced.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Many files made durable together: each is written through [`Batch::create`], then
/// [`Batch::commit`] fsyncs them all, renames them all and fsyncs each folder once. Until the
/// commit returns, none of them is in place; dropped uncommitted, every temporary file is
/// removed. Record the state that names the files only after the commit.
#[derive(Debug, Default)]
pub struct Batch {
    /// The files written so far, in order.
    files: Vec<AtomicFile>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Batch {
        Batch::default()
    }

    /// A new file of the batch, to write into.
    ///
    /// # Errors
    /// See [`AtomicFile::create`].
    pub fn create(&mut self, dest: &Path, mode: u32) -> io::Result<&mut AtomicFile> {
        let f = AtomicFile::create(dest, mode)?;
        self.files.push(f);
        Ok(self.files.last_mut().expect("just pushed"))
    }

    /// Add a file written on its own.
    pub fn push(&mut self, f: AtomicFile) {
        self.files.push(f);
    }

    /// Add `bytes` as the content of `dest`.
    ///
    /// # Errors
    /// See [`AtomicFile::create`].
    pub fn write(&mut self, dest: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
        self.create(dest, mode)?.write_all(bytes)
    }

    /// How many files the batch holds.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Fsync every file, then rename each into place, then fsync each folder once. Returns
    /// how many files were put in place.
    ///
    /// # Errors
    /// File system errors. A failure before the renames leaves every destination as it was;
    /// one during them leaves the earlier files in place (each whole) and removes the rest.
    pub fn commit(self) -> io::Result<usize> {
        for f in &self.files {
            f.file().sync_all()?;
        }
        let mut folders = BTreeSet::new();
        let n = self.files.len();
        for f in self.files {
            folders.insert(folder_of(&f.dest).to_owned());
            f.tmp.persist(&f.dest).map_err(|e| e.error)?;
        }
        for d in &folders {
            sync_dir(d)?;
        }
        Ok(n)
    }
}

/// Lets a test see each temporary file as it is created, before a byte is written to it.
#[cfg(test)]
pub(crate) mod hook {
    use std::cell::RefCell;
    use std::path::{Path, PathBuf};

    thread_local! {
        static SEEN: RefCell<Option<Vec<(PathBuf, u32, u64)>>> = const { RefCell::new(None) };
    }

    /// Called by [`super::AtomicFile::create`]: what another process would see of the new
    /// temporary file (its mode as `stat` tells it by name, and its size).
    pub(crate) fn created(path: &Path, _file: &std::fs::File) {
        SEEN.with(|s| {
            if let Some(v) = s.borrow_mut().as_mut() {
                #[cfg(unix)]
                let (mode, len) = {
                    use std::os::unix::fs::PermissionsExt;
                    let m = std::fs::symlink_metadata(path).expect("the temp file is there");
                    (m.permissions().mode() & 0o7777, m.len())
                };
                #[cfg(not(unix))]
                let (mode, len) = (0, 0);
                v.push((path.to_owned(), mode, len));
            }
        });
    }

    /// Run `f` and return every temporary file [`super::AtomicFile`] created on this thread
    /// meanwhile: (path, mode, size) at creation.
    pub(crate) fn watch<T>(f: impl FnOnce() -> T) -> (T, Vec<(PathBuf, u32, u64)>) {
        SEEN.with(|s| *s.borrow_mut() = Some(Vec::new()));
        let r = f();
        let seen = SEEN.with(|s| s.borrow_mut().take()).unwrap_or_default();
        (r, seen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    fn mode(p: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    #[cfg(unix)]
    fn a_file_has_its_final_mode_from_creation_and_after() {
        let d = tempfile::tempdir().unwrap();
        let secret = d.path().join("s.key");
        let ((), seen) = hook::watch(|| write_atomic(&secret, b"k", SECRET).unwrap());
        assert_eq!(seen.len(), 1);
        assert_eq!((seen[0].1, seen[0].2), (0o600, 0), "{seen:?}");
        assert!(!seen[0].0.exists(), "the temporary file was renamed");
        assert_eq!(mode(&secret), 0o600);
        assert_eq!(fs::read(&secret).unwrap(), b"k");
        let public = d.path().join("p");
        write_atomic(&public, b"p", PUBLIC).unwrap();
        assert_eq!(mode(&public), 0o644);
    }

    #[test]
    fn a_dropped_writer_leaves_nothing_and_the_old_file_whole() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        write_atomic(&p, b"old", SECRET).unwrap();
        {
            let mut f = AtomicFile::create(&p, SECRET).unwrap();
            f.write_all(b"half").unwrap();
        }
        assert_eq!(fs::read(&p).unwrap(), b"old");
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
        let e = write_new(&p, b"new", SECRET).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&p).unwrap(), b"old");
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_batch_puts_nothing_in_place_before_its_commit_and_everything_after() {
        let d = tempfile::tempdir().unwrap();
        let sub = d.path().join("ab");
        fs::create_dir(&sub).unwrap();
        let names: Vec<PathBuf> = (0..5)
            .map(|i| if i % 2 == 0 { d.path() } else { &sub }.join(format!("f{i}")))
            .collect();
        let mut b = Batch::new();
        for (i, n) in names.iter().enumerate() {
            b.write(n, format!("{i}").as_bytes(), PUBLIC).unwrap();
        }
        assert!(names.iter().all(|n| !n.exists()));
        assert_eq!(b.commit().unwrap(), 5);
        for (i, n) in names.iter().enumerate() {
            assert_eq!(fs::read_to_string(n).unwrap(), i.to_string());
        }
        let mut b = Batch::new();
        b.write(&d.path().join("never"), b"x", PUBLIC).unwrap();
        drop(b);
        let left: Vec<_> = fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(left.is_empty(), "{left:?}");
        assert!(!d.path().join("never").exists());
    }
}

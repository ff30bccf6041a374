//! The data folder's lock: one `serve` (or `sync`) per data folder. Two servers on one folder
//! would follow, receive and sweep the same store and database at once.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::error::Error;

/// The lock file's name inside the data folder.
pub const FILE: &str = "updhub.lock";

/// An exclusive lock on a data folder, held until dropped (or the process dies: the kernel
/// releases it, so a killed server never leaves a stale lock).
#[derive(Debug)]
pub struct DataLock {
    /// The open, locked file; closing it releases the lock.
    _file: File,
}

impl DataLock {
    /// Take the lock for `command` (`serve`, `sync`), or fail at once naming the holder.
    ///
    /// # Errors
    /// Another process holds it, or the lock file cannot be opened.
    pub fn take(data: &Path, command: &str) -> Result<DataLock, Error> {
        let path: PathBuf = data.join(FILE);
        let io = |source| Error::Io {
            what: format!("opening the lock file {}", path.display()),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(Error::Data {
                    path: data.to_owned(),
                    why: format!(
                        "this data folder is in use by another updhub ({}); one data folder serves one node: stop that process first, or pass another --data",
                        if holder.is_empty() { "its pid is not known yet".to_owned() } else { holder.to_owned() }
                    ),
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        // Ours now: say who holds it, for the next one that asks.
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        writeln!(file, "`{command}`, pid {}", std::process::id()).map_err(io)?;
        file.flush().map_err(io)?;
        Ok(DataLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_naming_the_holder_and_freed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let first = DataLock::take(dir.path(), "serve").unwrap();
        // flock locks belong to the open file, so a second open in this process conflicts
        // exactly as another process would.
        let err = DataLock::take(dir.path(), "sync").unwrap_err().to_string();
        assert!(err.contains("in use by another updhub"), "{err}");
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        assert!(err.contains("`serve`"), "{err}");
        drop(first);
        DataLock::take(dir.path(), "sync").unwrap();
    }
}

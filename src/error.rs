//! The crate error: every module's error in one enum, which knows the HTTP status it maps to
//! and whether retrying can help. Policy: module errors are `thiserror` enums whose messages
//! name the thing, the problem and the fix; `anyhow` appears only in tests and benches.

use crate::child::SyncError;
use crate::config::ConfigError;
use crate::db::DbError;
use crate::gc::GcError;
use crate::keys::KeyError;
use crate::license::LicenseError;
use crate::mirror::MirrorError;
use crate::repo::RepoError;
use crate::station::StationError;
use crate::store::StoreError;
use crate::zone::ZoneError;

/// Any updhub error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Keys and certificates.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// Database.
    #[error(transparent)]
    Db(#[from] DbError),
    /// Blob store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Manifests and published versions.
    #[error(transparent)]
    Repo(#[from] RepoError),
    /// Zones.
    #[error(transparent)]
    Zone(#[from] ZoneError),
    /// Mirror runs.
    #[error(transparent)]
    Mirror(#[from] MirrorError),
    /// Child sync.
    #[error(transparent)]
    Sync(#[from] SyncError),
    /// Licenses.
    #[error(transparent)]
    License(#[from] LicenseError),
    /// Garbage collection.
    #[error(transparent)]
    Gc(#[from] GcError),
    /// The station commands.
    #[error(transparent)]
    Station(#[from] StationError),
    /// Backup and restore.
    #[error(transparent)]
    Backup(#[from] crate::backup::BackupError),
    /// A data folder problem.
    #[error("{path}: {why}")]
    Data {
        /// The folder or file.
        path: std::path::PathBuf,
        /// What is wrong and the fix.
        why: String,
    },
    /// A command that needs a state this node is not in.
    #[error("{0}")]
    State(String),
    /// Another process serves this node from a copy of its data folder (the same instance
    /// token); `yields` when this process is the younger one, which stops serving.
    #[error("{why}")]
    Copied {
        /// What was found, and the fix.
        why: String,
        /// Whether this process is the one that stops: it started after the other (by the
        /// database's clock, in seconds), or in the same second with the greater process id.
        yields: bool,
    },
    /// An I/O failure outside the store (listening, printing).
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl Error {
    /// Whether the same call may succeed later without anyone changing anything.
    pub fn retryable(&self) -> bool {
        match self {
            Error::Sync(e) => e.retryable(),
            Error::Station(e) => e.retryable(),
            Error::Backup(e) => e.retryable(),
            Error::License(e) => {
                matches!(
                    e,
                    LicenseError::Network { .. }
                        | LicenseError::Db { .. }
                        | LicenseError::Busy { .. }
                )
            }
            Error::Zone(ZoneError::Http { .. }) | Error::Io { .. } => true,
            Error::Db(DbError::Busy { .. }) => true,
            Error::Store(StoreError::Io { .. }) | Error::Store(StoreError::Source { .. }) => true,
            _ => false,
        }
    }

    /// The HTTP status this error maps to when it answers a request.
    pub fn http_status(&self) -> u16 {
        match self {
            Error::License(e) => e.http_status(),
            Error::Store(StoreError::Missing(_)) => 404,
            Error::State(_) => 404,
            Error::Repo(_) | Error::Zone(ZoneError::Bad { .. }) => 400,
            _ => 500,
        }
    }
}

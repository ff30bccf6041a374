//! Archiving the audit log: rows past `licenses.log_retention` are written to a file, then
//! leave the log in one transaction that records the archive (the only delete the schema's
//! trigger allows: of rows an archive covers) and logs what went where.
//!
//! The file comes first and is durable before the transaction: a run interrupted between
//! the two leaves a file and every row still in the log, and the next run writes the same
//! rows to the same name with the same bytes. A file is zstd-compressed JSON lines, one
//! [`LogRow`] a line, oldest first: `zstd -dc FILE` reads it.

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::ledger::{Ledger, LogRow};
use super::LicenseError;
use crate::db;

/// Most rows in one archive file (a run writes several when more are due).
pub const MAX_ROWS: i64 = 50_000;

/// One archive of the log, as `log_archives` records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogArchive {
    /// The first row's sequence number.
    pub from_seq: i64,
    /// The last row's sequence number.
    pub upto_seq: i64,
    /// How many rows it holds.
    pub rows: i64,
    /// The file's name, in `licenses.log_archive_dir` of `node_id`.
    pub file: String,
    /// The blake3 digest (hex) of the file's bytes.
    pub blake3: String,
    /// When its rows left the log.
    pub at: DateTime<Utc>,
    /// The node that wrote the file (it is on that node's disk).
    pub node_id: String,
}

/// Archiving failed.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The archive folder or file could not be written.
    #[error("audit-log archive {path}: {source}; check that licenses.log_archive_dir is writable and the disk not full (the rows stay in the log until it is)")]
    Io {
        /// The folder or file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The database refused or failed.
    #[error(transparent)]
    License(#[from] LicenseError),
}

/// The file name of the rows `from..=upto`: fixed by the range, so a run that writes the
/// same rows again writes the same file.
pub fn file_name(from: i64, upto: i64) -> String {
    format!("license-log-{from:012}-{upto:012}.jsonl.zst")
}

/// `rows` as an archive file's bytes: JSON lines, zstd-compressed (the same rows, the
/// same bytes).
///
/// # Errors
/// A compressor failure.
pub fn encode(rows: &[LogRow]) -> std::io::Result<Vec<u8>> {
    let mut text = Vec::new();
    for r in rows {
        serde_json::to_writer(&mut text, r).map_err(std::io::Error::other)?;
        text.push(b'\n');
    }
    zstd::encode_all(&text[..], 3)
}

/// Write `bytes` to `dir/name` atomically and durably, readable by its owner only: a
/// temporary file beside it, synced, renamed over, and the folder synced.
fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), ArchiveError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| ArchiveError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let to = dir.join(name);
    // A NamedTempFile is created with mode 0600 and removed if anything below fails.
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io(dir))?;
    tmp.write_all(bytes).map_err(io(&to))?;
    tmp.as_file().sync_all().map_err(io(&to))?;
    tmp.persist(&to).map_err(|e| io(&to)(e.error))?;
    crate::store::sync_dir(dir).map_err(|e| ArchiveError::Io {
        path: dir.to_owned(),
        source: std::io::Error::other(e),
    })
}

impl Ledger {
    /// Archive the log's rows written before `before` into files in `dir`, at most
    /// [`MAX_ROWS`] a file, each file durable before its rows leave the log; returns the
    /// archives made (none when no row is that old).
    ///
    /// # Errors
    /// A file that cannot be written (nothing leaves the log then), or a database failure.
    pub async fn archive_log(
        &self,
        before: DateTime<Utc>,
        dir: &Path,
    ) -> Result<Vec<LogArchive>, ArchiveError> {
        let mut made = Vec::new();
        loop {
            let server = self.server.to_string();
            let rows = self.read(|c| Ok(db::license_log::past(c, &server, before, MAX_ROWS)?))?;
            let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
                return Ok(made);
            };
            let (from_seq, upto_seq, n) = (first.seq, last.seq, rows.len() as i64);
            let name = file_name(from_seq, upto_seq);
            let bytes = encode(&rows).map_err(|source| ArchiveError::Io {
                path: dir.join(&name),
                source,
            })?;
            write_file(dir, &name, &bytes)?;
            let a = LogArchive {
                from_seq,
                upto_seq,
                rows: n,
                file: name,
                blake3: blake3::hash(&bytes).to_hex().to_string(),
                at: Utc::now(),
                node_id: String::new(),
            };
            let place = dir.display().to_string();
            let recorded = self
                .write(move |c, _| {
                    let (recorded, deleted) = db::license_log::archive(c, &server, &a)?;
                    // A row of the range that was not in the file (one whose transaction
                    // committed after the read) would leave the log unarchived: refused,
                    // and the next run writes the range again with it.
                    if deleted != n as u64 {
                        return Err(LicenseError::Refused(format!(
                            "archiving the license log: {} rows of seq {from_seq}..{upto_seq} are in the log but {n} in {}; nothing was removed, the next run archives the range again",
                            deleted, a.file
                        )));
                    }
                    db::license_log::append(
                        c,
                        &server,
                        "log_archived",
                        &a.file,
                        &format!(
                            "{n} rows, seq {from_seq}..{upto_seq}, blake3 {}, in {place}",
                            a.blake3
                        ),
                    )?;
                    Ok(recorded)
                })
                .await?;
            made.push(recorded);
            // A short batch took every row that was due; going on would archive the row
            // just logged when `before` is in the future.
            if n < MAX_ROWS {
                return Ok(made);
            }
        }
    }

    /// The archives of the log, oldest first.
    ///
    /// # Errors
    /// Database errors.
    pub fn log_archives(&self) -> Result<Vec<LogArchive>, LicenseError> {
        self.read(|c| Ok(db::license_log::archives(c, self.server.as_str())?))
    }
}

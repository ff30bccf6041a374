//! Archiving the audit log: rows past `licenses.log_retention` are written to a file, then
//! leave the log in one transaction that records the archive (the only delete the schema's
//! trigger allows: of rows an archive covers) and logs what went where.
//!
//! The file comes first and is durable before the transaction: a run interrupted between
//! the two leaves a file and every row still in the log, and the next run writes the same
//! rows to the same name with the same bytes (or, when more rows came due meanwhile, a
//! longer range under another name, and removes the shorter file, which no archive
//! records). A file is zstd-compressed JSON lines, one [`LogRow`] a line, oldest first:
//! `zstd -dc FILE` reads it.

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
    format!("{}{upto:012}{SUFFIX}", file_prefix(from))
}

/// How the name of every file of rows from `from` on starts.
fn file_prefix(from: i64) -> String {
    format!("license-log-{from:012}-")
}

/// How every archive file's name ends.
const SUFFIX: &str = ".jsonl.zst";

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
    crate::durable::write_atomic(&to, bytes, crate::durable::SECRET).map_err(io(&to))
}

/// Remove the files in `dir` of other ranges starting at `from` than `name`: written by a run
/// interrupted before its commit while the rows due were fewer (or more), never recorded
/// (a recorded archive's rows left the log, and row `from` is still in it). Left behind,
/// they would look like a second archive of the same rows. A failure is only logged.
fn remove_strays(dir: &Path, from: i64, name: &str) {
    let prefix = file_prefix(from);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let stray = e.file_name().to_string_lossy().into_owned();
        if stray != name && stray.starts_with(&prefix) && stray.ends_with(SUFFIX) {
            match std::fs::remove_file(e.path()) {
                Ok(()) => tracing::info!(
                    "removed {stray} from {}: an audit-log archive interrupted before its commit, superseded by {name}",
                    dir.display()
                ),
                Err(err) => tracing::warn!(
                    "could not remove {stray} from {} ({err}): an audit-log archive interrupted before its commit, superseded by {name}; delete it by hand",
                    dir.display()
                ),
            }
        }
    }
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
        while let Some(file) = self.write_next(before, dir)? {
            let full = file.rows >= MAX_ROWS;
            made.push(self.commit(file, dir).await?);
            // A short batch took every row that was due; going on would archive the row
            // just logged when `before` is in the future.
            if !full {
                break;
            }
        }
        Ok(made)
    }

    /// The first step of a batch: the oldest rows due (at most [`MAX_ROWS`]) read and
    /// written, durably, to their file in `dir`, and the archive that will record them;
    /// `None` when no row is due. Nothing leaves the log until [`Ledger::commit`].
    fn write_next(
        &self,
        before: DateTime<Utc>,
        dir: &Path,
    ) -> Result<Option<LogArchive>, ArchiveError> {
        let server = self.server.to_string();
        let rows = self.read(|c| Ok(db::license_log::past(c, &server, before, MAX_ROWS)?))?;
        let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
            return Ok(None);
        };
        let (from_seq, upto_seq) = (first.seq, last.seq);
        let name = file_name(from_seq, upto_seq);
        let bytes = encode(&rows).map_err(|source| ArchiveError::Io {
            path: dir.join(&name),
            source,
        })?;
        write_file(dir, &name, &bytes)?;
        remove_strays(dir, from_seq, &name);
        Ok(Some(LogArchive {
            from_seq,
            upto_seq,
            rows: rows.len() as i64,
            file: name,
            blake3: blake3::hash(&bytes).to_hex().to_string(),
            at: Utc::now(),
            node_id: String::new(),
        }))
    }

    /// The second step: in one transaction, record the written file's archive, remove the
    /// rows it covers and log that it did; refused (nothing removed) when the log no longer
    /// holds exactly the rows the file does (another member archived them meanwhile, or a
    /// row of the range committed after the read).
    async fn commit(&self, a: LogArchive, dir: &Path) -> Result<LogArchive, ArchiveError> {
        let server = self.server.to_string();
        let (from_seq, upto_seq, n) = (a.from_seq, a.upto_seq, a.rows);
        let place = dir.display().to_string();
        Ok(self
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
            .await?)
    }

    /// The archives of the log, oldest first.
    ///
    /// # Errors
    /// Database errors.
    pub fn log_archives(&self) -> Result<Vec<LogArchive>, LicenseError> {
        self.read(|c| Ok(db::license_log::archives(c, self.server.as_str())?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    /// Two members' ledgers on one database, with a few rows in the log.
    async fn two_members(dir: &Path) -> (Ledger, Ledger) {
        let server = crate::id::ServerId::new("n1").unwrap();
        let db = crate::db::Db::create(&dir.join("t.db"), server.clone()).unwrap();
        let signing = Arc::new(ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng));
        let open = || {
            Ledger::open(
                &db,
                server.clone(),
                signing.clone(),
                Duration::from_secs(60),
            )
            .unwrap()
        };
        let (a, b) = (open(), open());
        add_key(&a, "K1").await;
        (a, b)
    }

    async fn add_key(l: &Ledger, id: &str) {
        let now = Utc::now();
        let signing = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
        let key = crate::license::LicenseKey::issue(
            &signing,
            id,
            "ACME",
            5,
            now - chrono::Duration::days(1),
            now + chrono::Duration::days(1),
        );
        l.add_key(key).await.unwrap();
    }

    /// The seqs a recorded archive's file holds, read back from `dir`.
    fn seqs_in(dir: &Path, a: &LogArchive) -> Vec<i64> {
        let bytes = std::fs::read(dir.join(&a.file)).unwrap();
        assert_eq!(blake3::hash(&bytes).to_hex().to_string(), a.blake3);
        let text = String::from_utf8(zstd::decode_all(&bytes[..]).unwrap()).unwrap();
        text.lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["seq"]
                    .as_i64()
                    .unwrap()
            })
            .collect()
    }

    #[tokio::test]
    async fn two_members_archiving_at_once_leave_one_record_of_each_row_and_no_gap() {
        // The lease expired mid-run: both members read the same rows and wrote their files
        // before either committed. The second commit is refused and removes nothing.
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = two_members(dir.path()).await;
        let (da, db_) = (dir.path().join("a"), dir.path().join("b"));
        let due = Utc::now() + chrono::Duration::seconds(1);
        let logged: Vec<i64> = a.log().unwrap().iter().map(|r| r.seq).collect();
        let fa = a.write_next(due, &da).unwrap().unwrap();
        let fb = b.write_next(due, &db_).unwrap().unwrap();
        assert_eq!((fa.from_seq, fa.upto_seq), (fb.from_seq, fb.upto_seq));
        let recorded = a.commit(fa, &da).await.unwrap();
        assert!(b.commit(fb, &db_).await.is_err());
        assert_eq!(a.log_archives().unwrap(), vec![recorded.clone()]);
        assert_eq!(seqs_in(&da, &recorded), logged);

        // Again, and this time rows were logged between the two reads: the later member's
        // file holds more rows than remain in its range. Refused; those rows stay in the
        // log until the next run archives them, in a file of their own.
        add_key(&a, "K2").await;
        let before: Vec<i64> = a.log().unwrap().iter().map(|r| r.seq).collect();
        let due = Utc::now() + chrono::Duration::seconds(1);
        let fa = a.write_next(due, &da).unwrap().unwrap();
        add_key(&a, "K3").await;
        let fb = b
            .write_next(due + chrono::Duration::seconds(1), &db_)
            .unwrap()
            .unwrap();
        assert!(fb.rows > fa.rows);
        let second = a.commit(fa, &da).await.unwrap();
        let err = b.commit(fb, &db_).await.unwrap_err().to_string();
        assert!(err.contains("nothing was removed"), "{err}");
        let left: Vec<i64> = a.log().unwrap().iter().map(|r| r.seq).collect();
        let third = b
            .archive_log(Utc::now() + chrono::Duration::seconds(1), &db_)
            .await
            .unwrap();
        assert_eq!(third.len(), 1);
        // Every row ever logged but the last (which says the last archive was made) is in
        // exactly one recorded file.
        let mut archived: Vec<i64> = seqs_in(&da, &recorded);
        archived.extend(seqs_in(&da, &second));
        archived.extend(seqs_in(&db_, &third[0]));
        let mut sorted = archived.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted, archived, "no row in two files");
        for s in before.iter().chain(&left) {
            assert!(
                archived.contains(s),
                "seq {s} was never archived: {archived:?}"
            );
        }
        assert_eq!(a.log().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_run_interrupted_before_its_commit_leaves_no_stray_file_once_a_longer_range_is_archived(
    ) {
        // Killed between its file and its commit; more rows came due before the next run,
        // whose file (a longer range, so another name) is the one recorded.
        let dir = tempfile::tempdir().unwrap();
        let (a, _) = two_members(dir.path()).await;
        let da = dir.path().join("a");
        let lost = a
            .write_next(Utc::now() + chrono::Duration::seconds(1), &da)
            .unwrap()
            .unwrap();
        add_key(&a, "K2").await;
        let made = a
            .archive_log(Utc::now() + chrono::Duration::seconds(1), &da)
            .await
            .unwrap();
        assert_eq!(made.len(), 1);
        assert_eq!(made[0].from_seq, lost.from_seq);
        assert!(made[0].upto_seq > lost.upto_seq);
        let mut files: Vec<String> = std::fs::read_dir(&da)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        assert_eq!(files, vec![made[0].file.clone()], "only the recorded file");
    }
}

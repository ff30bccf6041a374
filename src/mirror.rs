//! `mirror`: pull a zone into the store. Streaming (hash + compress while reading), verified
//! against the zone's declared size and hash, incremental (stored blobs are not read again)
//! and so resumable: an interrupted run keeps every verified blob and continues from there.

use std::sync::Arc;
use std::time::Instant;

use futures_util::{stream, StreamExt, TryStreamExt};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::db::{Db, DbError, Mirrored};
use crate::id::Root;
use crate::repo::{Entry, Manifest, RepoError};
use crate::store::{Expect, Store, StoreError};
use crate::zone::{Zone, ZoneError, ZoneProduct};

/// Errors of a mirror run.
#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    /// The zone is bad.
    #[error(transparent)]
    Zone(#[from] ZoneError),
    /// The store failed or content did not verify.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The manifest could not be built.
    #[error(transparent)]
    Repo(#[from] RepoError),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// A worker thread died.
    #[error("mirror worker failed: {0}")]
    Worker(String),
}

/// What a mirror run did.
#[derive(Debug, Clone, Serialize)]
pub struct MirrorSummary {
    /// The manifest root of what was mirrored.
    pub root: Root,
    /// Files in the zone.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Files read this run (not already stored).
    pub new_files: u64,
    /// Their bytes.
    pub new_bytes: u64,
    /// Compressed bytes written to the store this run.
    pub stored_bytes: u64,
    /// Wall time.
    pub seconds: f64,
}

impl std::fmt::Display for MirrorSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "mirrored {} files, {} bytes, {} new files, {} new bytes ({} stored), in {:.2} s; root {}",
            self.files, self.bytes, self.new_files, self.new_bytes, self.stored_bytes, self.seconds, self.root
        )
    }
}

/// Mirror `zone` into `store` and record the result as the next version to publish.
/// With `progress`, a bar is drawn on a terminal.
///
/// # Errors
/// A bad zone, a missing file, a size or hash mismatch, or store and database errors. The
/// recorded mirror state is unchanged unless every file verified.
pub async fn mirror(
    store: &Store,
    db: &Db,
    zone: &Zone,
    parallel: usize,
    progress: bool,
) -> Result<MirrorSummary, MirrorError> {
    let started = Instant::now();
    let index = zone.index().await?;
    // Read and check every file list, and what can be checked cheaply of every file, before
    // storing anything: a malformed zone leaves the store as it was.
    let mut work: Vec<(ZoneProduct, crate::zone::ZoneFile)> = Vec::new();
    let mut entries = Vec::new();
    for product in &index.products {
        let list = zone.files(product).await?;
        for f in list.files {
            entries.push(Entry {
                product: product.name.clone(),
                revision: product.revision.clone(),
                path: f.path.clone(),
                size: f.size,
                blake3: f.blake3,
            });
            if !store.contains(&f.blake3) {
                zone.precheck(product, &f)?;
                work.push((product.clone(), f));
            }
        }
    }
    let manifest = Manifest::new(entries)?;
    // The same content may sit at several paths: read it once.
    work.sort_by_key(|w| w.1.blake3);
    work.dedup_by(|a, b| a.1.blake3 == b.1.blake3);
    // Largest first, so no big file is left compressing alone at the end of the run.
    work.sort_by_key(|w| std::cmp::Reverse(w.1.size));
    let new_bytes: u64 = work.iter().map(|w| w.1.size).sum();
    let bar = Arc::new(if progress {
        let b = ProgressBar::new(new_bytes);
        b.set_style(
            ProgressStyle::with_template(
                "{spinner} mirror [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        b
    } else {
        ProgressBar::hidden()
    });
    let new_files = work.len() as u64;
    let stored: Vec<u64> = stream::iter(work)
        .map(|(product, f)| {
            let store = store.clone();
            let bar = bar.clone();
            async move {
                let reader = zone.open_file(&product, &f).await?;
                let expect = Expect {
                    what: zone.label(&product, &f.path),
                    size: f.size,
                    id: f.blake3,
                };
                let st = tokio::task::spawn_blocking(move || {
                    store.put_reader(reader, Some(&expect), &mut |n| bar.inc(n))
                })
                .await
                .map_err(|e| MirrorError::Worker(e.to_string()))??;
                Ok::<_, MirrorError>(st.stored_bytes)
            }
        })
        .buffer_unordered(parallel.max(1))
        .try_collect()
        .await?;
    bar.finish_and_clear();
    let root = Root(store.put_bytes(&manifest.canonical_bytes())?);
    let files = manifest.entries.len() as u64;
    let bytes = manifest.total_size();
    db.set_mirrored(&Mirrored {
        root,
        zone: zone.describe(),
        files,
        bytes,
    })?;
    Ok(MirrorSummary {
        root,
        files,
        bytes,
        new_files,
        new_bytes,
        stored_bytes: stored.iter().sum(),
        seconds: started.elapsed().as_secs_f64(),
    })
}

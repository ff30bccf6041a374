//! `mirror`: pull a zone into the store. Streaming (hash + compress while reading), verified
//! against the zone's declared size and hash, incremental (stored blobs are not read again)
//! and so resumable: an interrupted run keeps every verified blob and continues from there.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use futures_util::{stream, StreamExt};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::db::{Db, DbError, Mirrored};
use crate::id::{BlobId, Root};
use crate::products::{Decision, Policy, Take};
use crate::repo::{Entry, Manifest, RepoError};
use crate::store::{Expect, Store, StoreError};
use crate::zone::{FileList, Zone, ZoneError, ZoneFile, ZoneProduct};

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
    /// A zone entry names stored content but declares another size for it.
    #[error("{what} declares {declared} bytes, but its blake3 {id} names content of {actual} bytes, already in the store; the zone's files.json is wrong, fix it upstream and mirror again")]
    KnownSize {
        /// The zone file.
        what: String,
        /// Its blake3.
        id: BlobId,
        /// The size the zone declares.
        declared: u64,
        /// The size of the stored content.
        actual: u64,
    },
    /// A manifest entry's size disagrees with its blob.
    #[error("manifest {root}: {path} declares {declared} bytes but blob {id} holds {actual}; this version cannot be served, run `updhub mirror` from a good zone, then publish")]
    ManifestSize {
        /// The manifest.
        root: Root,
        /// The entry, `product/path`.
        path: String,
        /// Its blob.
        id: BlobId,
        /// The size the entry declares.
        declared: u64,
        /// The blob's size.
        actual: u64,
    },
    /// The run was stopped before it finished.
    /// A blob of the version to publish does not verify.
    #[error("manifest {root}: {path} (blob {id}) is damaged: {why}; nothing was published: run `updhub verify --repair` (it quarantines the blob and fetches it again), then publish")]
    Damaged {
        /// The version's root.
        root: Root,
        /// The file that needs the blob.
        path: String,
        /// The blob.
        id: BlobId,
        /// What is wrong.
        why: String,
    },
    #[error("the mirror run was stopped before it finished; run it again to continue")]
    Stopped,
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
    /// Whether the run stopped after the zone index: the products policy would take exactly
    /// what was mirrored last time (a scheduled run, see [`Run::IfChanged`]).
    pub unchanged: bool,
    /// What the products policy decided for each product.
    pub products: Vec<Decision>,
}

/// How much of the zone a run reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Run {
    /// Every file list, and every stored blob's size checked: `updhub mirror`.
    Full,
    /// Only the zone index when the policy would take what was mirrored last time: the
    /// scheduled run of `serve`.
    IfChanged,
}

impl std::fmt::Display for MirrorSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.unchanged {
            return write!(
                f,
                "zone unchanged: {} files, {} bytes, root {} (read the zone index only, in {:.3} s)",
                self.files, self.bytes, self.root, self.seconds
            );
        }
        write!(
            f,
            "mirrored {} files, {} bytes, {} new files, {} new bytes ({} stored), in {:.2} s; root {}",
            self.files, self.bytes, self.new_files, self.new_bytes, self.stored_bytes, self.seconds, self.root
        )
    }
}

/// Mirror `zone` into `store` as the products `policy` decides (each product at the zone's
/// revision, or kept as the active version holds it, or left out) and record the result as
/// the next version to publish. With `progress`, a bar is drawn on a terminal.
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
    policy: &Policy,
    run: Run,
) -> Result<MirrorSummary, MirrorError> {
    let started = Instant::now();
    let index = zone.index().await?;
    let now = chrono::Utc::now();
    let products = policy.decide(&index, now);
    let waiting: Vec<(String, String)> = products
        .iter()
        .filter_map(|d| Some((d.product.clone(), d.waiting.as_ref()?.revision.clone())))
        .collect();
    db.note_offered(&waiting, now)?;
    // A scheduled run reuses what the last run mirrored from this zone: a zone never changes
    // a revision's files once it offered them, so only products at a new revision are read.
    let last = match run {
        Run::IfChanged => last_mirrored(store, db, zone)?,
        Run::Full => None,
    };
    if let Some((last, manifest)) = &last {
        if crate::products::unchanged(policy, &products, manifest) {
            let last = last.clone();
            db.set_checked(now, None)?;
            return Ok(MirrorSummary {
                root: last.root,
                files: last.files,
                bytes: last.bytes,
                new_files: 0,
                new_bytes: 0,
                stored_bytes: 0,
                seconds: started.elapsed().as_secs_f64(),
                unchanged: true,
                products,
            });
        }
    }
    // Read every file list the policy takes, then check each entry the same way whether its
    // content is new or already stored, before storing anything: a malformed zone leaves the
    // store as it was.
    let mut lists = Vec::new();
    let mut kept = Vec::new();
    for d in &products {
        let reuse = last.as_ref().map(|(_, m)| {
            m.entries
                .iter()
                .filter(|e| {
                    e.product == d.product && Some(e.revision.as_str()) == d.zone.as_deref()
                })
                .cloned()
                .collect::<Vec<_>>()
        });
        match d.take {
            Take::Zone if reuse.as_ref().is_some_and(|r| !r.is_empty()) => {
                kept.extend(reuse.expect("just checked"));
            }
            Take::Zone => {
                let product = index
                    .products
                    .iter()
                    .find(|p| p.name == d.product)
                    .expect("the zone offers what the policy takes from it");
                lists.push((product.clone(), zone.files(product).await?));
            }
            Take::Keep => kept.extend(policy.kept(&d.product)),
            Take::Leave => {}
        }
    }
    let (check_zone, check_store) = (zone.clone(), store.clone());
    let (mut entries, mut work) = tokio::task::spawn_blocking(move || {
        check_entries(&check_zone, &check_store, lists, parallel)
    })
    .await
    .map_err(|e| MirrorError::Worker(e.to_string()))??;
    // Kept and reused files are those of the active version or of the last run: their blobs
    // are stored (publish checks them again).
    entries.extend(kept);
    let manifest = Manifest::new(entries)?;
    // The same content may sit at several paths: read it once.
    work.sort_by_key(|w| w.1.blake3);
    work.dedup_by(|a, b| a.1.blake3 == b.1.blake3);
    // Largest first, so no big file is left compressing alone at the end of the run.
    work.sort_by_key(|w| std::cmp::Reverse(w.1.size));
    // Each size is at most 2^53-1 (checked with the file list), but their sum is checked too.
    let new_bytes = work
        .iter()
        .try_fold(0u64, |acc, w| acc.checked_add(w.1.size))
        .ok_or_else(|| RepoError::BadManifest {
            what: zone.describe(),
            why: "its file sizes add up to more than 2^64 bytes; the zone is damaged".into(),
        })?;
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
    // On the first failure (or if this future is dropped) the token stops every worker, and
    // the loop below waits for each to end: no worker outlives the run, so none is left
    // writing a temp file nobody will remove.
    let cancel = CancellationToken::new();
    let _stop_on_drop = cancel.clone().drop_guard();
    let mut runs = stream::iter(work)
        .map(|(product, f)| {
            let store = store.clone();
            let bar = bar.clone();
            let cancel = cancel.clone();
            async move {
                let reader = tokio::select! {
                    r = zone.open_file(&product, &f, &cancel) => r?,
                    () = cancel.cancelled() => return Err(MirrorError::Stopped),
                };
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
        .buffer_unordered(parallel.max(1));
    let mut stored = Vec::new();
    let mut failed = None;
    while let Some(r) = runs.next().await {
        match r {
            Ok(n) => stored.push(n),
            Err(e) => {
                cancel.cancel();
                failed.get_or_insert(e);
            }
        }
    }
    if let Some(e) = failed {
        bar.abandon();
        return Err(e);
    }
    bar.finish_and_clear();
    // Every blob once more, just before the run is recorded: a run longer than
    // `store.gc_grace` may have seen an early blob collected; it is then read again next run.
    let (st, canonical, ids) = (
        store.clone(),
        manifest.canonical_bytes(),
        manifest
            .blobs()
            .into_iter()
            .map(|(id, _)| id)
            .collect::<Vec<_>>(),
    );
    let root = tokio::task::spawn_blocking(move || {
        hold_all(&st, ids)?;
        st.put_bytes(&canonical)
    })
    .await
    .map_err(|e| MirrorError::Worker(e.to_string()))??;
    let root = Root(root);
    let files = manifest.entries.len() as u64;
    let bytes = manifest.total_size();
    db.set_mirrored(root, &zone.describe(), files, bytes, chrono::Utc::now())?;
    Ok(MirrorSummary {
        root,
        files,
        bytes,
        new_files,
        new_bytes,
        stored_bytes: stored.iter().sum(),
        seconds: started.elapsed().as_secs_f64(),
        unchanged: false,
        products,
    })
}

/// The last mirror run and its manifest, if it mirrored `zone` and the manifest is still
/// stored and whole.
fn last_mirrored(
    store: &Store,
    db: &Db,
    zone: &Zone,
) -> Result<Option<(Mirrored, Manifest)>, MirrorError> {
    let Some(last) = db.mirrored()? else {
        return Ok(None);
    };
    if last.zone != zone.describe() || !store.contains(&last.root.0) {
        return Ok(None);
    }
    let bytes = store.read_bytes(&last.root.0)?;
    Ok(Manifest::parse(&bytes, &last.root).ok().map(|m| (last, m)))
}

/// What a zone's entries make: the manifest entries, and the files whose content is not
/// stored yet (to read).
type Checked = (Vec<Entry>, Vec<(ZoneProduct, ZoneFile)>);

/// Check every entry of every file list: the file is in the zone with its declared size
/// (where that is cheap: folders), and content already stored has the declared size. Stored
/// sizes are read by `parallel` threads: a blob from an older updhub is rewritten once, with
/// an fsync, and those add up on a large store.
fn check_entries(
    zone: &Zone,
    store: &Store,
    lists: Vec<(ZoneProduct, FileList)>,
    parallel: usize,
) -> Result<Checked, MirrorError> {
    let mut entries = Vec::new();
    let mut work = Vec::new();
    let mut known = Vec::new();
    for (product, list) in lists {
        for f in list.files {
            zone.precheck(&product, &f)?;
            entries.push(Entry {
                product: product.name.clone(),
                revision: product.revision.clone(),
                path: f.path.clone(),
                size: f.size,
                blake3: f.blake3,
            });
            // Reused: its age is refreshed so garbage collection leaves it until the version
            // that needs it is recorded.
            if store.hold(&f.blake3) {
                known.push((product.clone(), f));
            } else {
                work.push((product.clone(), f));
            }
        }
    }
    let next = AtomicUsize::new(0);
    let check_one = |product: &ZoneProduct, f: &ZoneFile| -> Result<(), MirrorError> {
        let actual = store.content_size(&f.blake3)?;
        if actual != f.size {
            return Err(MirrorError::KnownSize {
                what: zone.label(product, &f.path),
                id: f.blake3,
                declared: f.size,
                actual,
            });
        }
        Ok(())
    };
    let check_known = || -> Result<(), MirrorError> {
        while let Some((product, f)) = known.get(next.fetch_add(1, Ordering::Relaxed)) {
            if let Err(e) = check_one(product, f) {
                // The other threads stop at their next entry.
                next.store(known.len(), Ordering::Relaxed);
                return Err(e);
            }
        }
        Ok(())
    };
    std::thread::scope(|scope| {
        let threads: Vec<_> = (0..parallel.max(1))
            .map(|_| scope.spawn(check_known))
            .collect();
        threads.into_iter().try_for_each(|t| {
            t.join()
                .unwrap_or_else(|_| Err(MirrorError::Worker("a check thread panicked".into())))
        })
    })?;
    Ok((entries, work))
}

/// Refresh the age of every blob of `ids` ([`Store::hold`]), so garbage collection spares
/// them until the version that needs them is recorded.
///
/// # Errors
/// [`StoreError::Missing`] for the first one not stored (collected meanwhile).
pub fn hold_all(store: &Store, ids: impl IntoIterator<Item = BlobId>) -> Result<(), StoreError> {
    ids.into_iter()
        .try_for_each(|id| store.hold(&id).then_some(()).ok_or(StoreError::Missing(id)))
}

/// Check that every blob of manifest `m` is stored, verifies (decompressed and rehashed, on
/// every core) and has the size the manifest declares, so no version is signed that its
/// children would refuse.
///
/// # Errors
/// A missing blob, [`MirrorError::Damaged`] or [`MirrorError::ManifestSize`].
pub fn check_stored(store: &Store, root: Root, m: &Manifest) -> Result<(), MirrorError> {
    let ids: Vec<BlobId> = m.blobs().into_iter().map(|(id, _)| id).collect();
    if let Some(id) = ids.iter().find(|id| !store.contains(id)) {
        return Err(StoreError::Missing(*id).into());
    }
    let threads = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
    // The file that needs a blob, for the messages.
    let path_of = |id: BlobId| {
        m.entries
            .iter()
            .find(|e| e.blake3 == id)
            .map(|e| format!("{}/{}", e.product, e.path))
            .expect("a blob of the manifest has an entry")
    };
    if let Some((id, why)) = store.verify_many(&ids, threads).0.into_iter().next() {
        return Err(MirrorError::Damaged {
            root,
            path: path_of(id),
            id,
            why,
        });
    }
    for (id, size) in m.blobs() {
        let actual = store.content_size(&id)?;
        if actual != size {
            return Err(MirrorError::ManifestSize {
                root,
                path: path_of(id),
                id,
                declared: size,
                actual,
            });
        }
    }
    Ok(())
}

//! `updhub verify [--repair]`: rehash the store, name every damaged blob and the versions
//! that need it, and every blob a kept version needs that the store lacks; with `--repair`,
//! take damaged blobs out of service (quarantine) and fetch them and the lacking ones again
//! ([`crate::repair::repair`]: from the parent, or the zone at the version's revisions, or a
//! member).
//!
//! Which blobs a version needs is [`version_blobs`], the one place that knows it (the
//! manifest and each file's blob today; a later change splits large files into chunks).

use std::collections::BTreeMap;
use std::time::Instant;

use serde::Serialize;

use crate::hub::Hub;
use crate::id::{BlobId, Root};
use crate::repo::Manifest;
use crate::store::{Store, StoreError};

/// Every blob version `root` needs, with its content size where the manifest declares it:
/// the manifest itself first (its size unknown until read), then each file's.
///
/// # Errors
/// A missing or damaged manifest, or one that does not parse.
pub fn version_blobs(store: &Store, root: &Root) -> Result<Vec<BlobId>, StoreError> {
    let bytes = store.read_bytes(&root.0)?;
    let m = Manifest::parse(&bytes, root).map_err(|e| StoreError::Corrupt {
        id: root.0,
        path: store.blob_path(&root.0),
        why: e.to_string(),
    })?;
    Ok(std::iter::once(root.0)
        .chain(m.blobs().into_iter().map(|(id, _)| id))
        .collect())
}

/// One damaged blob.
#[derive(Debug, Clone, Serialize)]
pub struct Damaged {
    /// The blob.
    pub blob: BlobId,
    /// What is wrong.
    pub why: String,
    /// The versions held here that need it.
    pub versions: Vec<u64>,
    /// Where it was moved (`store/quarantine/`), when it was.
    pub quarantined: Option<String>,
}

/// What a verify run found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Blobs verified.
    pub blobs: usize,
    /// Their content bytes.
    pub bytes: u64,
    /// Wall time.
    pub seconds: f64,
    /// The damaged ones.
    pub damaged: Vec<Damaged>,
    /// Versions whose manifest could not be read, with why (their blobs were verified as
    /// stored blobs, but not attributed to them).
    pub unreadable: Vec<(u64, String)>,
    /// Blobs the kept versions need that the store lacks (not counting the damaged ones,
    /// which a quarantine takes out of the store too): a restore, a removed file, a blob
    /// quarantined earlier by `serve`.
    pub missing: Vec<crate::repair::Missing>,
}

/// Rehash every stored blob on `threads` threads; with `quarantine`, move each damaged one
/// out of service. Then look up every blob the kept versions need ([`crate::repair::lacking`]).
///
/// # Errors
/// The store or the database cannot be read, or a quarantine move fails.
pub fn scan(hub: &Hub, threads: usize, quarantine: bool) -> Result<Report, crate::Error> {
    let started = Instant::now();
    let ids = hub.store.list()?;
    let (found, bytes) = hub.store.verify_many(&ids, threads);
    let mut needed_by: BTreeMap<BlobId, Vec<u64>> = BTreeMap::new();
    let mut unreadable = Vec::new();
    if !found.is_empty() {
        for v in hub.versions()? {
            match version_blobs(&hub.store, &v.root) {
                Ok(blobs) => {
                    for b in blobs {
                        needed_by.entry(b).or_default().push(v.number);
                    }
                }
                Err(StoreError::Missing(_)) => {}
                Err(e) => {
                    needed_by.entry(v.root.0).or_default().push(v.number);
                    unreadable.push((v.number, e.to_string()));
                }
            }
        }
    }
    let mut damaged = Vec::new();
    for (blob, why) in found {
        let quarantined = if quarantine {
            hub.store
                .quarantine(&blob)?
                .map(|p| p.display().to_string())
        } else {
            None
        };
        damaged.push(Damaged {
            blob,
            why,
            versions: needed_by.remove(&blob).unwrap_or_default(),
            quarantined,
        });
    }
    let mut missing = crate::repair::lacking(hub)?;
    missing.retain(|m| !damaged.iter().any(|d| d.blob == m.blob));
    Ok(Report {
        missing,
        blobs: ids.len(),
        bytes,
        seconds: started.elapsed().as_secs_f64(),
        damaged,
        unreadable,
    })
}

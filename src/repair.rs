//! Repair: every blob that a kept version needs and the store lacks is fetched again from
//! wherever it can be had, and the one place that knows what "kept" and "needs" mean for
//! it. A damaged blob is first taken out of service (quarantined by `verify`, the scrub or
//! a route that finds it), so damaged and lost blobs are repaired alike.
//!
//! Where a blob comes from:
//! - a child: its parents (`upstream.parents`, in order), as a sync fetches;
//! - a top parent: the zone, at the revision the version names (a zone folder keeps past
//!   revisions, so a frozen or rolled-back product's files are there), then the cluster's
//!   live members (they serve the same versions).
//!
//! A version whose manifest is gone (a restored node's store is empty) gets it back from
//! the same places; from a zone it is rebuilt: the manifest is the sorted list of each
//! product's files at one revision, so the combination of the zone's revisions whose
//! manifest hashes to the version's root is that manifest, found exactly.
//!
//! `verify --repair`, the scheduled round (and `mirror`, `update`, `publish`), and the
//! scrub call [`repair`]; `verify` reports [`lacking`].

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use futures_util::{stream, StreamExt};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::error::Error;
use crate::gc::{keep_roots, Reason, Sources};
use crate::hub::Hub;
use crate::id::{BlobId, Root};
use crate::repo::{Entry, Manifest};
use crate::store::{Expect, Store, StoreError};
use crate::zone::{FileList, Zone, ZoneFile, ZoneProduct};

/// Most combinations of revisions tried to rebuild one lost manifest from a zone (each is
/// a sum of two numbers; a full manifest is built only for one whose file count and bytes
/// match the version's).
const MAX_TRIES: usize = 1 << 20;

/// A version this node must hold whole, and what is known of it.
#[derive(Debug, Clone)]
struct Target {
    root: Root,
    /// Its version numbers here, newest first.
    numbers: Vec<u64>,
    /// Its file count and bytes, from its version row or the mirror row.
    size: Option<(u64, u64)>,
}

/// The versions whose content this node keeps (the retention of [`keep_roots`]), but not
/// one kept only because a child reported holding it: that copy is the child's, and a
/// parent keeps it only so as not to collect it while the child may still fetch it.
fn targets(hub: &Hub) -> Result<Vec<Target>, Error> {
    let sources = Sources::read(hub)?;
    let mirrored = hub.db.mirrored()?;
    let mut out: Vec<Target> = keep_roots(&sources)
        .into_iter()
        .filter(|(_, why)| why.iter().any(|r| !matches!(r, Reason::Child(_))))
        .map(|(root, _)| {
            let rows: Vec<_> = sources.versions.iter().filter(|v| v.root == root).collect();
            let mut numbers: Vec<u64> = rows.iter().map(|v| v.number).collect();
            numbers.sort_unstable_by(|a, b| b.cmp(a));
            let size = rows.first().map(|v| (v.files, v.bytes)).or_else(|| {
                mirrored
                    .as_ref()
                    .filter(|m| m.root == root)
                    .map(|m| (m.files, m.bytes))
            });
            Target {
                root,
                numbers,
                size,
            }
        })
        .collect();
    // The newest first: the version served now is repaired before rollback targets.
    out.sort_by_key(|t| std::cmp::Reverse(t.numbers.first().copied().unwrap_or(u64::MAX)));
    Ok(out)
}

/// Version `root`'s manifest from the store; None when it is not stored, or stored damaged
/// (then it is quarantined, so it is fetched again like any damaged blob).
fn stored_manifest(store: &Store, root: &Root) -> Result<Option<Manifest>, StoreError> {
    let bytes = match store.read_bytes(&root.0) {
        Ok(b) => b,
        Err(StoreError::Missing(_)) => return Ok(None),
        Err(StoreError::Corrupt { why, .. }) => {
            tracing::error!("the manifest of version root {root} is damaged ({why}); quarantined, fetching it again");
            store.quarantine(&root.0)?;
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    match Manifest::parse(&bytes, root) {
        Ok(m) => Ok(Some(m)),
        Err(e) => {
            tracing::error!("the manifest of version root {root} does not parse ({e}); quarantined, fetching it again");
            store.quarantine(&root.0)?;
            Ok(None)
        }
    }
}

/// A blob a kept version needs that the store lacks.
#[derive(Debug, Clone, Serialize)]
pub struct Missing {
    /// The blob.
    pub blob: BlobId,
    /// The version numbers here that need it (none for the last mirror run, unpublished).
    pub versions: Vec<u64>,
    /// Whether it is a version's manifest (its other blobs are not known until it is back).
    pub manifest: bool,
}

/// Every blob that a kept version needs and the store lacks (a damaged blob counts once
/// quarantined), in blob order. Reads each kept manifest and looks each blob up, reading
/// no content.
///
/// # Errors
/// Database or store errors.
pub fn lacking(hub: &Hub) -> Result<Vec<Missing>, Error> {
    let mut found: BTreeMap<BlobId, (BTreeSet<u64>, bool)> = BTreeMap::new();
    let mut seen: HashSet<BlobId> = HashSet::new();
    for t in targets(hub)? {
        let lacks: Vec<(BlobId, bool)> = match stored_manifest(&hub.store, &t.root)? {
            None => vec![(t.root.0, true)],
            Some(m) => m
                .blobs()
                .into_iter()
                .filter(|(id, _)| !seen.contains(id) && !hub.store.contains(id))
                .map(|(id, _)| (id, false))
                .collect(),
        };
        for (id, manifest) in lacks {
            let e = found.entry(id).or_default();
            e.0.extend(&t.numbers);
            e.1 |= manifest;
        }
        seen.insert(t.root.0);
    }
    Ok(found
        .into_iter()
        .map(|(blob, (versions, manifest))| Missing {
            blob,
            versions: versions.into_iter().collect(),
            manifest,
        })
        .collect())
}

/// What one [`repair`] did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Repaired {
    /// Blobs fetched again (manifests included).
    pub blobs: u64,
    /// Their stored bytes.
    pub bytes: u64,
    /// Of those, lost manifests brought back (from a peer, or rebuilt from the zone).
    pub manifests: u64,
    /// What could not be repaired, and why; each names the version.
    pub failed: Vec<String>,
}

impl std::fmt::Display for Repaired {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.blobs == 0 && self.failed.is_empty() {
            return f.write_str("every kept version is whole here");
        }
        write!(
            f,
            "fetched {} blob(s) again, {} bytes stored",
            self.blobs, self.bytes
        )?;
        if self.manifests > 0 {
            write!(f, " ({} of them lost manifests)", self.manifests)?;
        }
        if !self.failed.is_empty() {
            write!(f, "; not repaired: {}", self.failed.join("; "))?;
        }
        Ok(())
    }
}

/// Where a repair fetches from, read once per run.
enum Origin {
    /// A child: its parents' URLs.
    Parents(Vec<String>),
    /// A top parent: its zone (None when it cannot be opened) and its live members.
    Zone(Option<Zone>, Vec<(String, String)>),
}

/// Live members of this node's cluster other than itself: (node id, HOST:PORT).
fn live_members(hub: &Hub) -> Result<Vec<(String, String)>, Error> {
    Ok(hub
        .db
        .live_members(crate::hub::MEMBER_ALIVE)?
        .into_iter()
        .filter(|m| m.node_id != hub.id().as_str())
        .map(|m| (m.node_id, m.listen))
        .collect())
}

/// Make the store hold every blob each kept version needs: what it lacks (a quarantined
/// damaged blob, a lost one, everything after a restore) is fetched again, verified, from
/// the parents (a child), or from the zone at the revision the version names, then the
/// live members (a top parent). What cannot be had anywhere is named in the result; only
/// database and local store failures are errors.
///
/// # Errors
/// Database or store errors.
pub async fn repair(hub: &Hub) -> Result<Repaired, Error> {
    let mut done = Repaired::default();
    let targets = targets(hub)?;
    if targets.is_empty() {
        return Ok(done);
    }
    let parents = hub.config.upstream.parent_urls();
    let from = if parents.is_empty() {
        let live = hub.live();
        let zone = match Zone::open(&live.upstream.zone, &hub.keys) {
            Ok(z) => Some(z),
            Err(e) => {
                done.failed.push(format!("the zone cannot be opened: {e}"));
                None
            }
        };
        Origin::Zone(zone, live_members(hub)?)
    } else {
        Origin::Parents(parents)
    };
    let parallel = hub.live().upstream.parallel.max(1);
    for t in targets {
        let store = hub.store.clone();
        let root = t.root;
        let manifest = off_runtime(move || stored_manifest(&store, &root)).await?;
        let name = version_name(&t);
        if let Some(m) = &manifest {
            if m.blobs().iter().all(|(id, _)| hub.store.contains(id)) {
                continue;
            }
        }
        match &from {
            Origin::Parents(urls) => {
                let mut last = None;
                for url in urls {
                    match peer_fetch(crate::child::Parent::new(hub, url), hub, &t, parallel).await {
                        Ok(n) => {
                            count(&mut done, n, manifest.is_none());
                            last = None;
                            break;
                        }
                        Err(e) => last = Some(format!("parent {url}: {e}")),
                    }
                }
                if let Some(why) = last {
                    done.failed.push(format!("{name}: {why}"));
                }
            }
            Origin::Zone(zone, members) => {
                let mut manifest = manifest;
                let mut why = Vec::new();
                if let (None, Some(z)) = (&manifest, zone) {
                    match rebuild(z, &t).await {
                        Ok(Some(m)) => {
                            let (store, bytes) = (hub.store.clone(), m.canonical_bytes());
                            let put = off_runtime(move || {
                                let id = store.put_bytes(&bytes)?;
                                Ok::<_, StoreError>((id, store.stored_len(&id)?))
                            })
                            .await?;
                            done.blobs += 1;
                            done.bytes += put.1;
                            done.manifests += 1;
                            tracing::info!("{name}: its lost manifest was rebuilt from the zone's revisions");
                            manifest = Some(m);
                        }
                        Ok(None) => why.push(format!(
                            "its manifest is lost and no combination of the zone's revisions makes it ({})",
                            z.describe()
                        )),
                        Err(e) => why.push(format!("its manifest is lost and the zone cannot rebuild it: {e}")),
                    }
                }
                if let (Some(m), Some(z)) = (&manifest, zone) {
                    let (n, failed) = from_zone(z, &hub.store, m, parallel).await;
                    count(&mut done, n, false);
                    why.extend(failed);
                }
                let whole = |m: &Option<Manifest>| {
                    m.as_ref()
                        .is_some_and(|m| m.blobs().iter().all(|(id, _)| hub.store.contains(id)))
                };
                if whole(&manifest) {
                    continue;
                }
                let mut healed = false;
                for (node, addr) in members {
                    let member = crate::child::Parent::member(hub, addr).await;
                    match peer_fetch(member, hub, &t, parallel).await {
                        Ok(n) => {
                            count(&mut done, n, manifest.is_none());
                            healed = true;
                            break;
                        }
                        Err(e) => why.push(format!("member {node} ({addr}): {e}")),
                    }
                }
                if !healed {
                    if why.is_empty() {
                        why.push("neither the zone nor a live member could give it".into());
                    }
                    done.failed.push(format!("{name}: {}", why.join("; ")));
                }
            }
        }
    }
    if !done.failed.is_empty() {
        tracing::warn!("repair: {done}");
    } else if done.blobs > 0 {
        // Callers say it where it is news (a mirror, the scrub, `verify` prints it).
        tracing::debug!("repair: {done}");
    }
    Ok(done)
}

/// How to name a version in messages.
fn version_name(t: &Target) -> String {
    match t.numbers.as_slice() {
        [] => format!("the mirrored root {}", t.root),
        [n] => format!("version {n} (root {})", t.root),
        ns => format!(
            "versions {} (root {})",
            ns.iter()
                .rev()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            t.root
        ),
    }
}

/// Add what one source gave.
fn count(done: &mut Repaired, (blobs, bytes): (u64, u64), manifest: bool) {
    done.blobs += blobs;
    done.bytes += bytes;
    if manifest {
        done.blobs += 1;
        done.manifests += 1;
    }
}

/// What the store lacks of `t`, from a parent or member (its manifest too), as a sync
/// fetches it: each blob decompressed and hashed as it streams in. Returns blobs and bytes.
async fn peer_fetch(
    peer: Result<crate::child::Parent, crate::child::SyncError>,
    hub: &Hub,
    t: &Target,
    parallel: usize,
) -> Result<(u64, u64), crate::child::SyncError> {
    let peer = peer?;
    let (_, fetched) =
        crate::child::fetch_version(Some(&peer), &hub.store, t.root, parallel).await?;
    Ok((fetched.blobs, fetched.bytes))
}

/// Fetch each blob of `m` the store lacks from the zone, at the revision of an entry that
/// names it, verified against the entry's size and hash. Returns (blobs, stored bytes)
/// and what failed.
async fn from_zone(
    zone: &Zone,
    store: &Store,
    m: &Manifest,
    parallel: usize,
) -> ((u64, u64), Vec<String>) {
    let mut entries: HashMap<BlobId, Vec<Entry>> = HashMap::new();
    for e in &m.entries {
        entries.entry(e.blake3).or_default().push(e.clone());
    }
    let lacking: Vec<(BlobId, Vec<Entry>)> = entries
        .into_iter()
        .filter(|(id, _)| !store.contains(id))
        .collect();
    // Owned per transfer: the futures run on the runtime's threads.
    let results: Vec<Result<u64, String>> = stream::iter(lacking)
        .map(|(id, candidates)| {
            let (zone, store) = (zone.clone(), store.clone());
            async move {
                let mut why = String::new();
                // The same content may sit at several paths: any of them will do.
                for e in &candidates {
                    match from_zone_one(&zone, &store, e).await {
                        Ok(n) => return Ok(n),
                        Err(e) => why = e,
                    }
                }
                Err(format!("blob {id}: {why}"))
            }
        })
        .buffer_unordered(parallel)
        .collect()
        .await;
    let mut n = (0, 0);
    let mut failed = Vec::new();
    for r in results {
        match r {
            Ok(bytes) => {
                n.0 += 1;
                n.1 += bytes;
            }
            Err(e) => failed.push(e),
        }
    }
    (n, failed)
}

/// One entry's file from the zone at its revision into the store; its stored bytes.
async fn from_zone_one(zone: &Zone, store: &Store, e: &Entry) -> Result<u64, String> {
    let product = ZoneProduct {
        name: e.product.clone(),
        revision: e.revision.clone(),
    };
    let file = ZoneFile {
        path: e.path.clone(),
        size: e.size,
        blake3: e.blake3,
    };
    let cancel = CancellationToken::new();
    let reader = zone
        .open_file(&product, &file, &cancel)
        .await
        .map_err(|e| e.to_string())?;
    let expect = Expect {
        what: zone.label(&product, &file.path),
        size: file.size,
        id: file.blake3,
    };
    let store = store.clone();
    off_runtime(move || store.put_reader(reader, Some(&expect), &mut |_| {}))
        .await
        .map(|st| st.stored_bytes)
        .map_err(|e| e.to_string())
}

/// Rebuild the lost manifest of `t` from the zone: each product at one of the zone's
/// revisions, or absent; the one combination whose manifest hashes to the root is it.
/// Combinations whose file count or bytes exceed the version's are not built.
async fn rebuild(zone: &Zone, t: &Target) -> Result<Option<Manifest>, crate::zone::ZoneError> {
    let mut lists: Vec<Vec<FileList>> = Vec::new();
    for (product, revisions) in zone.revisions().await? {
        let mut of_product = Vec::new();
        for revision in revisions {
            let p = ZoneProduct {
                name: product.clone(),
                revision,
            };
            // A revision whose list is unreadable is not a candidate; the others still are.
            match zone.files(&p).await {
                Ok(l) => of_product.push(l),
                Err(e) => tracing::debug!("repair: {e}"),
            }
        }
        if !of_product.is_empty() {
            lists.push(of_product);
        }
    }
    let root = t.root;
    let want = t.size;
    off_runtime(move || search(&lists, root, want)).await
}

/// The depth-first search of [`rebuild`], bounded by [`MAX_TRIES`].
fn search(
    lists: &[Vec<FileList>],
    root: Root,
    want: Option<(u64, u64)>,
) -> Result<Option<Manifest>, crate::zone::ZoneError> {
    let sums = lists
        .iter()
        .map(|ls| {
            ls.iter()
                .map(|l| {
                    let bytes = l.files.iter().fold(0u64, |a, f| a.saturating_add(f.size));
                    (l.files.len() as u64, bytes)
                })
                .collect()
        })
        .collect();
    let mut s = Search {
        lists,
        sums,
        root,
        want,
        pick: vec![None; lists.len()],
        tries: 0,
    };
    Ok(s.walk(0, (0, 0)))
}

/// The state of one [`search`].
struct Search<'a> {
    /// Each product's revisions' file lists.
    lists: &'a [Vec<FileList>],
    /// Each list's file count and bytes.
    sums: Vec<Vec<(u64, u64)>>,
    /// The root to find.
    root: Root,
    /// Its version's file count and bytes, when known.
    want: Option<(u64, u64)>,
    /// The revision taken of each product so far (None: left out).
    pick: Vec<Option<usize>>,
    /// Combinations tried.
    tries: usize,
}

impl Search<'_> {
    /// Try every choice for products `i..`, with `have` files and bytes from those before.
    fn walk(&mut self, i: usize, have: (u64, u64)) -> Option<Manifest> {
        self.tries += 1;
        if self.tries > MAX_TRIES {
            return None;
        }
        if let Some(w) = self.want {
            if have.0 > w.0 || have.1 > w.1 {
                return None;
            }
        }
        if i == self.lists.len() {
            if self.want.is_some_and(|w| w != have) || have.0 == 0 {
                return None;
            }
            let entries: Vec<Entry> = self
                .pick
                .iter()
                .enumerate()
                .filter_map(|(p, c)| c.map(|c| &self.lists[p][c]))
                .flat_map(|l| {
                    l.files.iter().map(|f| Entry {
                        product: l.product.clone(),
                        revision: l.revision.clone(),
                        path: f.path.clone(),
                        size: f.size,
                        blake3: f.blake3,
                    })
                })
                .collect();
            return Manifest::new(entries)
                .ok()
                .filter(|m| m.root() == self.root);
        }
        for c in std::iter::once(None).chain((0..self.lists[i].len()).map(Some)) {
            self.pick[i] = c;
            let add = c.map_or((0, 0), |c| self.sums[i][c]);
            let next = (have.0.saturating_add(add.0), have.1.saturating_add(add.1));
            if let Some(m) = self.walk(i + 1, next) {
                return Some(m);
            }
        }
        self.pick[i] = None;
        None
    }
}

/// Run `f` on the blocking pool (store reads and writes: file I/O and fsync).
async fn off_runtime<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(product: &str, revision: &str, files: &[&[u8]]) -> FileList {
        FileList {
            format: crate::zone::FILES_FORMAT.into(),
            product: product.into(),
            revision: revision.into(),
            files: files
                .iter()
                .enumerate()
                .map(|(i, c)| ZoneFile {
                    path: format!("f{i}"),
                    size: c.len() as u64,
                    blake3: BlobId::of(c),
                })
                .collect(),
        }
    }

    #[test]
    fn a_lost_manifest_is_found_among_the_zones_revisions_by_its_root() {
        let a = vec![list("a", "1", &[b"a1"]), list("a", "2", &[b"a2", b"a2b"])];
        let b = vec![list("b", "1", &[b"b1"]), list("b", "2", &[b"b22"])];
        // a at 1, b at 2: as a rollback of one product leaves it.
        let entries = |ls: &[&FileList]| -> Vec<Entry> {
            ls.iter()
                .flat_map(|l| {
                    l.files.iter().map(|f| Entry {
                        product: l.product.clone(),
                        revision: l.revision.clone(),
                        path: f.path.clone(),
                        size: f.size,
                        blake3: f.blake3,
                    })
                })
                .collect()
        };
        let m = Manifest::new(entries(&[&a[0], &b[1]])).unwrap();
        let lists = vec![a.clone(), b.clone()];
        let size = Some((m.entries.len() as u64, m.total_size()));
        assert_eq!(search(&lists, m.root(), size).unwrap(), Some(m.clone()));
        assert_eq!(search(&lists, m.root(), None).unwrap(), Some(m.clone()));
        // Without product b: found too (a product may be left out).
        let only_a = Manifest::new(entries(&[&a[1]])).unwrap();
        assert_eq!(search(&lists, only_a.root(), None).unwrap(), Some(only_a));
        // A root no combination makes: none, never a wrong manifest.
        assert_eq!(
            search(&lists, Root(BlobId::of(b"other")), size).unwrap(),
            None
        );
    }
}

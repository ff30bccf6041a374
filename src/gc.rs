//! Retention and garbage collection of this node's blob store, while it serves: which
//! versions are kept ([`keep_roots`], the one place that says it), and the sweep that
//! removes every blob none of them needs, sparing young blobs (a mirror or sync in progress).
//!
//! Version rows stay in the database when their content is collected: `updhub versions`
//! keeps the history, and `publish --version N` of a collected version says it is gone and
//! what to do. Only the blob store (per node) shrinks, so each node collects its own store:
//! the keep set reads the cluster's shared rows, and no lease is needed.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::db::{DbError, VersionRow};
use crate::hub::Hub;
use crate::id::{BlobId, Root};
use crate::store::{Collected, StoreError};

/// Errors of garbage collection.
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    /// A kept version's manifest cannot be read, so which blobs it needs is unknown: nothing
    /// is removed rather than guess.
    #[error("garbage collection removed nothing: the manifest of kept root {root} ({reasons}) cannot be read ({why}), so the blobs it needs are not known; run `updhub verify --repair` (or let the next sync fetch it), then gc again")]
    Unreadable {
        /// The root.
        root: Root,
        /// Why it is kept.
        reasons: String,
        /// What is wrong.
        why: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The summary of the last run cannot be written.
    #[error("{path}: cannot write the summary of the last garbage collection ({source}); check that the data folder is writable")]
    Summary {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Why a root is kept.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Among the last `store.keep_versions` versions by number.
    Recent,
    /// The version this node serves (its held, active version).
    Active,
    /// The cluster's published version (a member that lags has not switched to it yet).
    Published,
    /// The last mirror run's root, not yet published.
    Mirrored,
    /// Staged (two-phase switch): children fetch it now, and it becomes active soon.
    Staged,
    /// A child reported it as its current version.
    Child(String),
    /// Replaced less than `store.gc_grace` ago: a child may be syncing it right now.
    Grace,
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::Recent => f.write_str("recent"),
            Reason::Active => f.write_str("active"),
            Reason::Published => f.write_str("published"),
            Reason::Mirrored => f.write_str("mirrored"),
            Reason::Staged => f.write_str("staged"),
            Reason::Child(c) => write!(f, "held by child {c}"),
            Reason::Grace => f.write_str("replaced within gc_grace"),
        }
    }
}

/// Everything the keep set is computed from, read in one place ([`Sources::read`]).
#[derive(Debug, Clone)]
pub struct Sources {
    /// The versions table, any order.
    pub versions: Vec<VersionRow>,
    /// The version this node serves.
    pub active: Option<Root>,
    /// The cluster's published version.
    pub published: Option<Root>,
    /// The last mirror run's root.
    pub mirrored: Option<Root>,
    /// The staged versions: the cluster's, and the one this node staged from its parent.
    pub staged: Vec<Root>,
    /// Each child's reported current root.
    pub children: Vec<(String, Root)>,
    /// `store.keep_versions`.
    pub keep_versions: usize,
    /// `store.gc_grace`.
    pub grace: Duration,
    /// The time the run takes as now.
    pub now: DateTime<Utc>,
}

impl Sources {
    /// Read the sources of `hub`'s keep set from its database and live settings.
    ///
    /// # Errors
    /// Database errors.
    pub fn read(hub: &Hub) -> Result<Sources, DbError> {
        let live = hub.live();
        Ok(Sources {
            versions: hub.db.versions()?,
            active: hub.db.published()?.map(|p| p.root),
            published: hub.db.cluster_published()?.map(|p| p.root),
            mirrored: hub.db.mirrored()?.map(|m| m.root),
            staged: hub
                .db
                .cluster_staged()?
                .map(|s| s.published.root)
                .into_iter()
                .chain(hub.db.staged()?.map(|p| p.root))
                .collect(),
            children: hub
                .db
                .children()?
                .into_iter()
                .filter_map(|c| c.root.map(|r| (c.child_id, r)))
                .collect(),
            keep_versions: live.store.keep_versions,
            grace: live.store.gc_grace,
            now: Utc::now(),
        })
    }
}

/// The roots retention keeps, each with why. The sources, one by one:
/// - the last `keep_versions` versions by number (the versions table): rollback targets;
/// - the version this node serves (`published` row of this node): stations and children
///   fetch it;
/// - the cluster's published version: a member that lags switches to it soon;
/// - the last mirror run's root (`mirrored`): `publish` signs it next;
/// - the staged versions (the cluster's, and this node's from its parent): children fetch
///   them now, and they become active at the switch;
/// - every root a child last reported as current (children table): it may fetch a
///   missing blob of it again (a repair);
/// - every version replaced (its successor by number created) less than `grace` ago: a
///   child may be in the middle of syncing it.
///
/// A root kept for any reason keeps every version number it carries (a rollback republishes
/// a root under a new number).
pub fn keep_roots(s: &Sources) -> BTreeMap<Root, Vec<Reason>> {
    let mut keep: BTreeMap<Root, Vec<Reason>> = BTreeMap::new();
    let mut add = |root: Root, why: Reason| {
        let reasons = keep.entry(root).or_default();
        if !reasons.contains(&why) {
            reasons.push(why);
        }
    };
    let mut by_number: Vec<&VersionRow> = s.versions.iter().collect();
    by_number.sort_by_key(|v| std::cmp::Reverse(v.number));
    for v in by_number.iter().take(s.keep_versions) {
        add(v.root, Reason::Recent);
    }
    let grace = chrono::Duration::from_std(s.grace).unwrap_or(chrono::Duration::MAX);
    // Newest first: each version was replaced when the one before it in this list came.
    for pair in by_number.windows(2) {
        let (successor, v) = (pair[0], pair[1]);
        if s.now - successor.created < grace {
            add(v.root, Reason::Grace);
        }
    }
    if let Some(r) = s.active {
        add(r, Reason::Active);
    }
    if let Some(r) = s.published {
        add(r, Reason::Published);
    }
    if let Some(r) = s.mirrored {
        add(r, Reason::Mirrored);
    }
    for r in &s.staged {
        add(*r, Reason::Staged);
    }
    for (child, r) in &s.children {
        add(*r, Reason::Child(child.clone()));
    }
    for reasons in keep.values_mut() {
        reasons.sort();
    }
    keep
}

/// One kept root in a report.
#[derive(Debug, Clone, Serialize)]
pub struct Kept {
    /// The root.
    pub root: Root,
    /// The version numbers it carries (none: mirrored and not published yet).
    pub numbers: Vec<u64>,
    /// Why it is kept.
    pub reasons: Vec<Reason>,
    /// The blobs it needs, its manifest included (0: not held here).
    pub blobs: usize,
}

/// What one garbage collection did (or, with `dry_run`, would do).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Nothing was removed: this says what would be.
    pub dry_run: bool,
    /// When it ran.
    pub at: DateTime<Utc>,
    /// The keep set, newest version first.
    pub kept: Vec<Kept>,
    /// Versions whose content this run removed, or would remove in a dry run (their rows
    /// stay, for history).
    pub dropped_versions: Vec<u64>,
    /// Blobs removed.
    pub blobs: u64,
    /// Their bytes on disk (compressed).
    pub bytes: u64,
    /// Blobs no kept version needs that were spared as younger than `store.gc_grace`.
    pub young: u64,
    /// Interrupted transfers' partial files removed (untouched for `store.gc_grace`).
    pub partial_files: u64,
    /// Their bytes.
    pub partial_bytes: u64,
    /// Blobs the keep set needs.
    pub needed: u64,
    /// Wall time.
    pub seconds: f64,
}

/// What `status` shows of the last garbage collection.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Last {
    /// When it ran.
    pub at: DateTime<Utc>,
    /// Blobs removed.
    pub blobs: u64,
    /// Bytes freed (blobs and partial files).
    pub bytes: u64,
    /// Versions whose content went.
    pub dropped_versions: Vec<u64>,
}

/// The file in the data folder holding the last run's [`Last`].
pub const LAST_FILE: &str = "last-gc.json";

/// Collect the garbage of `hub`'s store: compute the keep set, then remove every stored
/// blob none of its versions needs (by [`crate::verify::version_blobs`]) unless it was
/// written or reused less than `store.gc_grace` ago. Safe while the node serves and syncs,
/// and from another process on the same data folder. With `dry_run`, nothing is removed.
///
/// # Errors
/// A kept version's manifest cannot be read (nothing is removed then), or store and
/// database errors.
pub fn run(hub: &Hub, dry_run: bool) -> Result<Report, GcError> {
    let started = Instant::now();
    let sources = Sources::read(hub)?;
    let grace = sources.grace;
    if !dry_run {
        hub.store.settle_collected(grace)?;
    }
    let keep = keep_roots(&sources);
    let mut needed: HashSet<BlobId> = HashSet::new();
    let mut kept = Vec::new();
    for (root, reasons) in &keep {
        let blobs = match crate::verify::version_blobs(&hub.store, root) {
            Ok(b) => b,
            // Never held here, collected before, or quarantined and beyond repair (an old
            // version the zone no longer has): none of its blobs is needed; whatever later
            // repairs its manifest fetches them again too. The version this node serves is
            // different: its manifest comes back at the next sync or `verify --repair`, and
            // must find its blobs.
            Err(StoreError::Missing(_)) if !reasons.contains(&Reason::Active) => Vec::new(),
            // Damaged (not yet quarantined): `verify --repair` settles it either way.
            Err(e) => return Err(unreadable(root, reasons, &e.to_string())),
        };
        let mut numbers: Vec<u64> = sources
            .versions
            .iter()
            .filter(|v| v.root == *root)
            .map(|v| v.number)
            .collect();
        numbers.sort_unstable_by(|a, b| b.cmp(a));
        kept.push(Kept {
            root: *root,
            numbers,
            reasons: reasons.clone(),
            blobs: blobs.len(),
        });
        needed.extend(blobs);
    }
    kept.sort_by_key(|k| std::cmp::Reverse(k.numbers.first().copied().unwrap_or(u64::MAX)));
    let mut report = Report {
        dry_run,
        at: sources.now,
        kept,
        dropped_versions: Vec::new(),
        blobs: 0,
        bytes: 0,
        young: 0,
        partial_files: 0,
        partial_bytes: 0,
        needed: needed.len() as u64,
        seconds: 0.0,
    };
    // Listed after the keep set was read: a blob stored since is young, and one reused
    // since was refreshed (`Store::hold`), so either way it is spared.
    let mut removed: HashSet<BlobId> = HashSet::new();
    for id in hub.store.list()? {
        if needed.contains(&id) {
            continue;
        }
        let outcome = if dry_run {
            match hub.store.age(&id) {
                Ok(a) if a < grace => Collected::Young,
                Ok(_) => Collected::Removed(hub.store.stored_len(&id).unwrap_or(0)),
                Err(_) => Collected::Gone,
            }
        } else {
            hub.store.collect(&id, grace)?
        };
        match outcome {
            Collected::Removed(n) => {
                report.blobs += 1;
                report.bytes += n;
                removed.insert(id);
            }
            Collected::Young => report.young += 1,
            Collected::Gone => {}
        }
    }
    if !dry_run {
        (report.partial_files, report.partial_bytes) = hub.store.clean_partial(grace)?;
    }
    let mut dropped: Vec<u64> = sources
        .versions
        .iter()
        .filter(|v| removed.contains(&v.root.0))
        .map(|v| v.number)
        .collect();
    dropped.sort_unstable();
    report.dropped_versions = dropped;
    report.seconds = started.elapsed().as_secs_f64();
    if !dry_run {
        write_last(hub, &report)?;
    }
    Ok(report)
}

fn unreadable(root: &Root, reasons: &[Reason], why: &str) -> GcError {
    GcError::Unreadable {
        root: *root,
        reasons: reasons
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        why: why.to_owned(),
    }
}

/// Keep the run's summary for `status` (temp file, fsync, rename: never a torn file).
fn write_last(hub: &Hub, r: &Report) -> Result<(), GcError> {
    let path = hub.data.join(LAST_FILE);
    let last = Last {
        at: r.at,
        blobs: r.blobs,
        bytes: r.bytes + r.partial_bytes,
        dropped_versions: r.dropped_versions.clone(),
    };
    let fail = |source| GcError::Summary {
        path: path.clone(),
        source,
    };
    let json = serde_json::to_vec(&last).map_err(|e| fail(e.into()))?;
    crate::durable::write_atomic(&path, &json, crate::durable::SECRET).map_err(fail)
}

/// The last garbage collection of the node in `data` (None: none yet, or unreadable).
pub fn last(data: &std::path::Path) -> Option<Last> {
    let bytes = std::fs::read(data.join(LAST_FILE)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(n: u8) -> Root {
        Root(BlobId::of(&[n]))
    }

    const HOUR: Duration = Duration::from_secs(3600);

    /// Versions 1..=n, root(i) each, created `hours_apart` hours apart, the last one
    /// created `last_ago` before now.
    fn sources(n: u8, hours_apart: i64, last_ago: chrono::Duration) -> Sources {
        let now = Utc::now();
        let versions = (1..=n)
            .map(|i| VersionRow {
                number: u64::from(i),
                root: root(i),
                files: 1,
                bytes: 1,
                created: now - last_ago - chrono::Duration::hours(hours_apart * i64::from(n - i)),
            })
            .collect();
        Sources {
            versions,
            active: Some(root(n)),
            published: Some(root(n)),
            mirrored: None,
            staged: Vec::new(),
            children: Vec::new(),
            keep_versions: 2,
            grace: HOUR,
            now,
        }
    }

    fn roots(k: &BTreeMap<Root, Vec<Reason>>) -> Vec<Root> {
        k.keys().copied().collect()
    }

    #[test]
    fn keeps_the_last_n_and_the_active_and_nothing_else_once_grace_passed() {
        let s = sources(6, 24, chrono::Duration::hours(5));
        let k = keep_roots(&s);
        let mut want = vec![root(5), root(6)];
        want.sort();
        assert_eq!(roots(&k), want);
        assert_eq!(
            k[&root(6)],
            vec![Reason::Recent, Reason::Active, Reason::Published]
        );
        assert_eq!(k[&root(5)], vec![Reason::Recent]);
    }

    #[test]
    fn a_version_replaced_within_grace_is_kept() {
        // Version 6 came 10 minutes ago: version 5 was current until then.
        let mut s = sources(6, 24, chrono::Duration::minutes(10));
        s.keep_versions = 1;
        let k = keep_roots(&s);
        assert_eq!(k[&root(5)], vec![Reason::Grace]);
        assert!(!k.contains_key(&root(4)), "replaced a day before");
    }

    #[test]
    fn mirrored_children_and_a_lagging_active_version_are_kept_by_root() {
        let mut s = sources(6, 24, chrono::Duration::hours(5));
        s.keep_versions = 1;
        s.active = Some(root(3));
        s.mirrored = Some(root(9));
        s.children = vec![("c1".into(), root(2)), ("c2".into(), root(2))];
        let k = keep_roots(&s);
        assert_eq!(k[&root(3)], vec![Reason::Active]);
        assert_eq!(k[&root(9)], vec![Reason::Mirrored]);
        assert_eq!(
            k[&root(2)],
            vec![Reason::Child("c1".into()), Reason::Child("c2".into())]
        );
        assert_eq!(k.len(), 4, "{k:?}");
    }

    #[test]
    fn a_rolled_back_root_is_kept_under_its_new_number() {
        // Version 4 republished version 1's content.
        let mut s = sources(4, 24, chrono::Duration::hours(5));
        s.versions[3].root = root(1);
        s.active = Some(root(1));
        s.published = Some(root(1));
        s.keep_versions = 1;
        let k = keep_roots(&s);
        assert_eq!(roots(&k), vec![root(1)]);
    }

    #[test]
    fn an_empty_table_keeps_only_what_is_named() {
        let s = Sources {
            versions: Vec::new(),
            active: None,
            published: None,
            mirrored: Some(root(1)),
            staged: vec![root(2)],
            children: Vec::new(),
            keep_versions: 5,
            grace: Duration::ZERO,
            now: Utc::now(),
        };
        let k = keep_roots(&s);
        assert_eq!(roots(&k), vec![root(1), root(2)]);
        assert_eq!(k[&root(2)], vec![Reason::Staged]);
    }
}

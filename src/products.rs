//! The products policy: which revision of each zone product the next version holds. The
//! zone offers each product at one revision; `upstream.products` says which products are
//! mirrored at all, and the mode an admin sets per product (`updhub products set`) says
//! whether a new revision is taken now (current), never (frozen), after `publish.delay`
//! (delayed) or when asked (on demand). Everything here is pure: the database rows and the
//! active version come in as arguments, decisions go out.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::repo::{Entry, Manifest};
use crate::zone::ZoneIndex;

/// What an admin set for a product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Follows the zone: a new revision is taken at the next run.
    Current,
    /// Keeps the revision it has, whatever the zone says.
    Frozen,
    /// A new revision waits `publish.delay` (or `updhub release`).
    Delayed,
    /// A new revision is taken only when an admin asks (`updhub release`).
    OnDemand,
}

impl Mode {
    /// The word used in the database, the CLI and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Current => "current",
            Mode::Frozen => "frozen",
            Mode::Delayed => "delayed",
            Mode::OnDemand => "on-demand",
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> Result<Mode, String> {
        Ok(match s {
            "current" => Mode::Current,
            "frozen" => Mode::Frozen,
            "delayed" => Mode::Delayed,
            "on-demand" => Mode::OnDemand,
            other => {
                return Err(format!(
                    "{other:?} is not a product mode; use current, frozen, delayed or on-demand"
                ))
            }
        })
    }
}

/// `upstream.products`: glob patterns, `!` excluding; the last pattern a product matches
/// decides, and a product no pattern matches is not mirrored.
#[derive(Debug, Clone)]
pub struct Filter(Vec<(bool, glob::Pattern)>);

impl Filter {
    /// Parse the patterns.
    ///
    /// # Errors
    /// A malformed pattern, or a list that mirrors nothing, described for the config error.
    pub fn new(patterns: &[String]) -> Result<Filter, String> {
        let mut out = Vec::new();
        for p in patterns {
            let (include, glob) = match p.strip_prefix('!') {
                Some(rest) => (false, rest),
                None => (true, p.as_str()),
            };
            if glob.is_empty() {
                return Err(format!(
                    "{p:?} is an empty pattern; write a product name or a glob such as \"10-*\" (\"!NAME\" excludes)"
                ));
            }
            let pat = glob::Pattern::new(glob).map_err(|e| {
                format!("{p:?} is not a glob pattern ({e}); e.g. \"10-*\" or \"!70-drwnews\"")
            })?;
            out.push((include, pat));
        }
        if !out.iter().any(|(include, _)| *include) {
            return Err("no pattern includes a product, so nothing would be mirrored; start the list with \"*\" and exclude with \"!NAME\", e.g. [\"*\", \"!70-drwnews\"]".into());
        }
        Ok(Filter(out))
    }

    /// Whether `product` is mirrored.
    pub fn includes(&self, product: &str) -> bool {
        self.0
            .iter()
            .rev()
            .find(|(_, p)| p.matches(product))
            .is_some_and(|(include, _)| *include)
    }
}

/// A revision the zone offered for a delayed or on-demand product (`product_revisions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offered {
    /// When a run first saw it: a delayed revision is due `publish.delay` later.
    pub first_seen: DateTime<Utc>,
    /// When an admin released it, if they did.
    pub released: Option<DateTime<Utc>>,
}

/// Everything a decision depends on.
#[derive(Debug, Clone)]
pub struct Policy {
    /// `upstream.products`.
    pub filter: Filter,
    /// Products with a mode other than current.
    pub modes: BTreeMap<String, Mode>,
    /// `publish.delay`.
    pub delay: Duration,
    /// Revisions offered for delayed and on-demand products, by (product, revision).
    pub offered: BTreeMap<(String, String), Offered>,
    /// The version the cluster serves now: what a product that does not move keeps.
    pub active: Option<Manifest>,
}

/// What the next version does with one product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "take")]
pub enum Take {
    /// The zone's revision.
    Zone,
    /// The active version's files for it, as they are.
    Keep,
    /// Nothing: not mirrored.
    Leave,
}

/// A new revision that is not taken yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Waiting {
    /// The zone's revision.
    pub revision: String,
    /// When it is taken by itself (delayed); none: when an admin releases it (on demand).
    pub until: Option<DateTime<Utc>>,
}

/// One product's decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// The product.
    pub product: String,
    /// Its mode.
    pub mode: Mode,
    /// Whether `upstream.products` includes it.
    pub included: bool,
    /// The revision the zone offers, if it has the product.
    pub zone: Option<String>,
    /// The revision the active version holds, if any.
    pub current: Option<String>,
    /// What the next version takes.
    #[serde(flatten)]
    pub take: Take,
    /// A revision that waits.
    pub waiting: Option<Waiting>,
}

impl Decision {
    /// The revision the next version holds, if it holds the product.
    pub fn next_revision(&self) -> Option<&str> {
        match self.take {
            Take::Zone => self.zone.as_deref(),
            Take::Keep => self.current.as_deref(),
            Take::Leave => None,
        }
    }
}

impl Policy {
    /// The revision of each product in the active version.
    fn current(&self) -> BTreeMap<&str, &str> {
        self.active
            .iter()
            .flat_map(|m| &m.entries)
            .map(|e| (e.product.as_str(), e.revision.as_str()))
            .collect()
    }

    /// Decide every product the zone offers or the active version holds, in name order.
    pub fn decide(&self, index: &ZoneIndex, now: DateTime<Utc>) -> Vec<Decision> {
        let current = self.current();
        let zone: BTreeMap<&str, &str> = index
            .products
            .iter()
            .map(|p| (p.name.as_str(), p.revision.as_str()))
            .collect();
        let names: BTreeSet<&str> = zone.keys().chain(current.keys()).copied().collect();
        names
            .into_iter()
            .map(|name| {
                let mode = self.modes.get(name).copied().unwrap_or(Mode::Current);
                let (zrev, crev) = (zone.get(name).copied(), current.get(name).copied());
                let included = self.filter.includes(name);
                let (take, waiting) = if !included {
                    (Take::Leave, None)
                } else {
                    self.take(name, mode, zrev, crev, now)
                };
                Decision {
                    product: name.to_owned(),
                    mode,
                    included,
                    zone: zrev.map(str::to_owned),
                    current: crev.map(str::to_owned),
                    take,
                    waiting,
                }
            })
            .collect()
    }

    fn take(
        &self,
        name: &str,
        mode: Mode,
        zone: Option<&str>,
        current: Option<&str>,
        now: DateTime<Utc>,
    ) -> (Take, Option<Waiting>) {
        let Some(z) = zone else {
            // The zone dropped the product: only a frozen one stays.
            return match (mode, current) {
                (Mode::Frozen, Some(_)) => (Take::Keep, None),
                _ => (Take::Leave, None),
            };
        };
        if current == Some(z) {
            return (Take::Zone, None);
        }
        let offered = self.offered.get(&(name.to_owned(), z.to_owned()));
        let released = offered.is_some_and(|o| o.released.is_some());
        match mode {
            Mode::Current => (Take::Zone, None),
            // Nothing to keep yet: a frozen product's first revision is taken.
            Mode::Frozen if current.is_none() => (Take::Zone, None),
            Mode::Frozen => (Take::Keep, None),
            Mode::Delayed => {
                let first_seen = offered.map_or(now, |o| o.first_seen);
                let until = first_seen
                    + chrono::Duration::from_std(self.delay).unwrap_or(chrono::Duration::MAX);
                if released || until <= now {
                    (Take::Zone, None)
                } else {
                    let waiting = Some(Waiting {
                        revision: z.to_owned(),
                        until: Some(until),
                    });
                    let take = if current.is_some() {
                        Take::Keep
                    } else {
                        Take::Leave
                    };
                    (take, waiting)
                }
            }
            Mode::OnDemand if released => (Take::Zone, None),
            Mode::OnDemand => {
                let take = if current.is_some() {
                    Take::Keep
                } else {
                    Take::Leave
                };
                let waiting = Some(Waiting {
                    revision: z.to_owned(),
                    until: None,
                });
                (take, waiting)
            }
        }
    }

    /// The active version's files of `product`, which a [`Take::Keep`] carries over.
    pub fn kept(&self, product: &str) -> Vec<Entry> {
        self.active
            .iter()
            .flat_map(|m| &m.entries)
            .filter(|e| e.product == product)
            .cloned()
            .collect()
    }
}

/// Whether `decisions` make the same content as `last` (the last mirrored manifest): the
/// same products at the same revisions, and the same files for each product kept. A zone
/// never changes a revision's files once it offered them (a new content is a new revision),
/// so a run can stop after reading the index.
pub fn unchanged(policy: &Policy, decisions: &[Decision], last: &Manifest) -> bool {
    let mut last_revs: BTreeMap<&str, &str> = BTreeMap::new();
    for e in &last.entries {
        last_revs.insert(&e.product, &e.revision);
    }
    let next: BTreeMap<&str, &str> = decisions
        .iter()
        .filter_map(|d| d.next_revision().map(|r| (d.product.as_str(), r)))
        .collect();
    if next != last_revs {
        return false;
    }
    decisions.iter().filter(|d| d.take == Take::Keep).all(|d| {
        let kept = policy.kept(&d.product);
        let before: Vec<&Entry> = last
            .entries
            .iter()
            .filter(|e| e.product == d.product)
            .collect();
        kept.iter().eq(before)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::BlobId;
    use crate::zone::ZoneProduct;

    fn index(products: &[(&str, &str)]) -> ZoneIndex {
        ZoneIndex {
            format: crate::zone::ZONE_FORMAT.into(),
            name: "test".into(),
            products: products
                .iter()
                .map(|(n, r)| ZoneProduct {
                    name: (*n).into(),
                    revision: (*r).into(),
                })
                .collect(),
        }
    }

    fn manifest(products: &[(&str, &str)]) -> Manifest {
        Manifest::new(
            products
                .iter()
                .map(|(n, r)| Entry {
                    product: (*n).into(),
                    revision: (*r).into(),
                    path: "base.vdb".into(),
                    size: 1,
                    blake3: BlobId(*blake3::hash(format!("{n}{r}").as_bytes()).as_bytes()),
                })
                .collect(),
        )
        .unwrap()
    }

    fn policy(active: &[(&str, &str)]) -> Policy {
        Policy {
            filter: Filter::new(&["*".into()]).unwrap(),
            modes: BTreeMap::new(),
            delay: Duration::from_secs(3600),
            offered: BTreeMap::new(),
            active: Some(manifest(active)),
        }
    }

    fn takes(p: &Policy, zone: &[(&str, &str)], now: DateTime<Utc>) -> Vec<(String, Take)> {
        p.decide(&index(zone), now)
            .into_iter()
            .map(|d| (d.product, d.take))
            .collect()
    }

    #[test]
    fn the_last_matching_pattern_decides_and_no_match_excludes() {
        let f = Filter::new(&["*".into(), "!70-*".into(), "70-keep".into()]).unwrap();
        assert!(f.includes("10-drwbases"));
        assert!(!f.includes("70-drwnews"));
        assert!(f.includes("70-keep"));
        let only = Filter::new(&["10-*".into()]).unwrap();
        assert!(!only.includes("20-drwagent"));
        let err = Filter::new(&["!10-*".into()]).unwrap_err();
        assert!(err.contains("nothing would be mirrored"), "{err}");
        let err = Filter::new(&["[".into()]).unwrap_err();
        assert!(err.contains("not a glob pattern"), "{err}");
    }

    #[test]
    fn a_frozen_product_keeps_its_revision_while_others_move() {
        let mut p = policy(&[("10-bases", "1"), ("20-agent", "1")]);
        p.modes.insert("10-bases".into(), Mode::Frozen);
        let t = takes(&p, &[("10-bases", "2"), ("20-agent", "2")], Utc::now());
        assert_eq!(
            t,
            vec![
                ("10-bases".into(), Take::Keep),
                ("20-agent".into(), Take::Zone)
            ]
        );
        // Dropped by the zone: a frozen product stays, a current one goes.
        let t = takes(&p, &[], Utc::now());
        assert_eq!(
            t,
            vec![
                ("10-bases".into(), Take::Keep),
                ("20-agent".into(), Take::Leave)
            ]
        );
    }

    #[test]
    fn a_delayed_revision_waits_until_its_time_or_its_release() {
        let now = Utc::now();
        let mut p = policy(&[("10-bases", "1")]);
        p.modes.insert("10-bases".into(), Mode::Delayed);
        let d = &p.decide(&index(&[("10-bases", "2")]), now)[0];
        assert_eq!(d.take, Take::Keep);
        let w = d.waiting.clone().unwrap();
        assert_eq!(w.revision, "2");
        assert_eq!(w.until, Some(now + chrono::Duration::hours(1)));
        // Seen an hour ago: due now.
        let seen = Offered {
            first_seen: now - chrono::Duration::hours(1),
            released: None,
        };
        p.offered.insert(("10-bases".into(), "2".into()), seen);
        assert_eq!(takes(&p, &[("10-bases", "2")], now)[0].1, Take::Zone);
        // Seen a minute ago but released.
        let released = Offered {
            first_seen: now - chrono::Duration::minutes(1),
            released: Some(now),
        };
        p.offered.insert(("10-bases".into(), "2".into()), released);
        assert_eq!(takes(&p, &[("10-bases", "2")], now)[0].1, Take::Zone);
    }

    #[test]
    fn an_on_demand_product_moves_only_when_released_and_excluded_ones_go() {
        let now = Utc::now();
        let mut p = policy(&[("10-bases", "1")]);
        p.modes.insert("10-bases".into(), Mode::OnDemand);
        p.modes.insert("30-new".into(), Mode::OnDemand);
        let t = takes(&p, &[("10-bases", "2"), ("30-new", "1")], now);
        assert_eq!(
            t,
            vec![
                ("10-bases".into(), Take::Keep),
                ("30-new".into(), Take::Leave)
            ]
        );
        p.offered.insert(
            ("30-new".into(), "1".into()),
            Offered {
                first_seen: now,
                released: Some(now),
            },
        );
        assert_eq!(takes(&p, &[("30-new", "1")], now)[1].1, Take::Zone);
        p.filter = Filter::new(&["*".into(), "!10-*".into()]).unwrap();
        assert_eq!(takes(&p, &[("10-bases", "2")], now)[0].1, Take::Leave);
    }

    #[test]
    fn the_same_revisions_as_last_time_are_unchanged() {
        let p = policy(&[("10-bases", "1"), ("20-agent", "1")]);
        let now = Utc::now();
        let last = manifest(&[("10-bases", "1"), ("20-agent", "1")]);
        let same = p.decide(&index(&[("10-bases", "1"), ("20-agent", "1")]), now);
        assert!(unchanged(&p, &same, &last));
        let moved = p.decide(&index(&[("10-bases", "2"), ("20-agent", "1")]), now);
        assert!(!unchanged(&p, &moved, &last));
        let fewer = p.decide(&index(&[("10-bases", "1")]), now);
        assert!(!unchanged(&p, &fewer, &last));
    }
}

//! One switch for the whole cluster (the two-phase switch): a published version is staged
//! first, every child fetches and verifies it beside its active version and reports it
//! staged, and this module alone decides when the parent activates it ([`decide`]).
//!
//! The rule: activate when every reporting child has staged it; once `publish.stage_timeout`
//! has passed since it was staged, when `publish.quorum` of them have; at once when no
//! child reports. A child is *reporting* when it takes part in the two-phase switch and
//! reported within [`reporting_window`] (three sync intervals, at least 30 s): a child that
//! stopped or was cut off drops out of the count after that, and is named until then.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::PublishSection;
use crate::db::{ChildReport, ChildStage, Staged};
use crate::error::Error;
use crate::hub::Hub;
use crate::repo::Published;

/// The shortest span within which a child must have reported to count as reporting.
pub const REPORTING_MIN: Duration = Duration::from_secs(30);

/// How recently a child must have reported to count: three sync intervals (a child
/// reports after every sync), at least [`REPORTING_MIN`].
pub fn reporting_window(sync_interval: Duration) -> Duration {
    (sync_interval * 3).max(REPORTING_MIN)
}

/// A staged version waiting for activation, as `publish`, `status` and `activate` show it.
#[derive(Debug, Clone, Serialize)]
pub struct Rollout {
    /// The staged version.
    pub staged: Published,
    /// When it was staged.
    pub staged_at: DateTime<Utc>,
    /// Children counted (two-phase, reported within the window).
    pub reporting: usize,
    /// Of those, the ones holding it staged.
    pub staged_by: usize,
    /// How many must hold it once the stage timeout has passed (`publish.quorum`).
    pub needed: usize,
    /// When the stage timeout passes.
    pub timeout_at: DateTime<Utc>,
    /// Every child that has not staged it, with the reason.
    pub not_staged: Vec<NotStaged>,
    /// Whether the rule says to activate it now.
    pub activate: bool,
    /// Why (or why not yet).
    pub why: String,
}

/// A child that has not staged the staged version.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct NotStaged {
    /// The child's id.
    pub child_id: String,
    /// The version it holds active.
    pub active: Option<u64>,
    /// Whether it counts (reported within the window).
    pub reporting: bool,
    /// Why it has not staged it.
    pub reason: String,
}

/// The activation rule (see the module's text) for `staged`, given every child's last
/// report, at `now`.
pub fn decide(
    staged: &Staged,
    children: &[(ChildReport, ChildStage)],
    publish: &PublishSection,
    sync_interval: Duration,
    now: DateTime<Utc>,
) -> Rollout {
    let window = chrono::Duration::from_std(reporting_window(sync_interval))
        .unwrap_or(chrono::Duration::MAX);
    let timeout =
        chrono::Duration::from_std(publish.stage_timeout).unwrap_or(chrono::Duration::MAX);
    let root = staged.published.root;
    let mut reporting = 0;
    let mut staged_by = 0;
    let mut not_staged = Vec::new();
    for (c, s) in children.iter().filter(|(_, s)| s.two_phase) {
        let counts = now - c.reported_at < window;
        // That very version (a rollback reuses a root under a new number, which a child
        // must take in as such).
        let n = staged.published.number;
        let holds = (s.staged_number == Some(n) && s.staged_root == Some(root))
            || (c.number >= Some(n) && c.root == Some(root));
        reporting += usize::from(counts);
        if holds {
            staged_by += usize::from(counts);
            continue;
        }
        let reason = match (&s.stage_error, counts) {
            (Some(e), _) => format!("could not stage it: {e}"),
            (None, true) => format!("not staged yet (last report at {})", c.reported_at),
            (None, false) => format!(
                "no report since {}: not counted (a child counts when it reported within {})",
                c.reported_at,
                humantime::format_duration(reporting_window(sync_interval))
            ),
        };
        not_staged.push(NotStaged {
            child_id: c.child_id.clone(),
            active: c.number,
            reporting: counts,
            reason,
        });
    }
    let needed = publish.quorum.needed(reporting);
    let timeout_at = staged
        .staged_at
        .checked_add_signed(timeout)
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    let (activate, why) = if reporting == 0 {
        (true, "no child reports".to_owned())
    } else if staged_by == reporting {
        (
            true,
            format!("all {reporting} reporting children staged it"),
        )
    } else if now >= timeout_at && staged_by >= needed {
        (
            true,
            format!(
                "the stage timeout passed and {staged_by} of {reporting} reporting children staged it (quorum {}: {needed})",
                publish.quorum
            ),
        )
    } else if now >= timeout_at {
        (
            false,
            format!(
                "the stage timeout passed but only {staged_by} of {reporting} reporting children staged it (quorum {}: {needed}); `updhub activate` activates it anyway",
                publish.quorum
            ),
        )
    } else {
        (
            false,
            format!(
                "{staged_by} of {reporting} reporting children staged it; waiting for all of them, or for {needed} after the stage timeout at {timeout_at}"
            ),
        )
    };
    Rollout {
        staged: staged.published.clone(),
        staged_at: staged.staged_at,
        reporting,
        staged_by,
        needed,
        timeout_at,
        not_staged,
        activate,
        why,
    }
}

impl Hub {
    /// The cluster's staged version and where its activation stands (None: nothing staged).
    ///
    /// # Errors
    /// Database errors.
    pub fn rollout(&self) -> Result<Option<Rollout>, Error> {
        let Some(staged) = self.db.cluster_staged()? else {
            return Ok(None);
        };
        let live = self.live();
        Ok(Some(decide(
            &staged,
            &self.db.cluster_children()?,
            &live.publish,
            live.upstream.sync_interval,
            Utc::now(),
        )))
    }

    /// Whether a version published now is staged first: the cluster has an active version,
    /// no child holds a newer one, and some child reports (else there is no one to wait
    /// for, and it is active at once).
    pub(crate) fn stages_first(&self) -> Result<bool, Error> {
        let Some(active) = self.db.cluster_published()? else {
            return Ok(false);
        };
        // Children that hold a newer number than the active one (a parent restored from an
        // older backup) refuse the active version, so they could never stage: at once.
        if self
            .db
            .cluster_children()?
            .iter()
            .any(|(c, _)| c.number.is_some_and(|n| n > active.number))
        {
            return Ok(false);
        }
        let live = self.live();
        let window = chrono::Duration::from_std(reporting_window(live.upstream.sync_interval))
            .unwrap_or(chrono::Duration::MAX);
        let now = Utc::now();
        Ok(self
            .db
            .cluster_children()?
            .iter()
            .any(|(c, s)| s.two_phase && now - c.reported_at < window))
    }

    /// Apply the activation rule: activate the staged version if it says so. A top parent
    /// calls this when a child reports and periodically; returns what it activated.
    ///
    /// # Errors
    /// Database errors.
    pub fn evaluate_activation(&self) -> Result<Option<Published>, Error> {
        if self.is_child() {
            return Ok(None);
        }
        let Some(r) = self.rollout()? else {
            return Ok(None);
        };
        if !r.activate {
            return Ok(None);
        }
        // A staged rollout: the test group gets it first, everyone after the soak.
        if !self.live().rollout.canary.is_empty() {
            match self.canary_phase()? {
                None => {
                    if self
                        .db
                        .start_canary(r.staged.number, self.id().as_str(), Utc::now())?
                    {
                        tracing::info!(
                            "version {} goes to the test group ({}) first: {}; every child gets it after {} (rollout.soak) unless `updhub rollout halt`",
                            r.staged.number,
                            self.live().rollout.canary.join(", "),
                            r.why,
                            humantime::format_duration(self.live().rollout.soak)
                        );
                        self.versions_moved();
                    }
                    return Ok(None);
                }
                Some((_, crate::canary::Phase::Everyone)) => {}
                Some(_) => return Ok(None),
            }
        }
        let p = self.db.activate(Some(r.staged.number), Utc::now())?;
        if let Some(p) = &p {
            tracing::info!(
                "activated version {} (root {}): {}",
                p.number,
                p.root,
                r.why
            );
            self.versions_moved();
        }
        Ok(p)
    }

    /// `activate`: activate the staged version now, whatever the rule says (the admin's
    /// override). Returns it and the children that had not staged it (they fetch it when
    /// they next sync).
    ///
    /// # Errors
    /// Nothing staged, a child node, or database errors.
    pub fn activate_now(&self) -> Result<(Published, Vec<NotStaged>), Error> {
        if self.is_child() {
            return Err(Error::State(
                "this node follows a parent (upstream.parent is set): it activates what its parent activates".into(),
            ));
        }
        let r = self.rollout()?.ok_or_else(|| {
            Error::State(
                "no version is staged: `updhub publish` stages one (`updhub status` shows the active one)".into(),
            )
        })?;
        let p = self
            .db
            .activate(Some(r.staged.number), Utc::now())?
            .ok_or_else(|| {
                Error::State(format!(
                    "version {} was activated or replaced meanwhile; run `updhub status`",
                    r.staged.number
                ))
            })?;
        self.versions_moved();
        Ok((p, r.not_staged))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Quorum;
    use crate::id::{BlobId, Root};

    fn child(
        id: &str,
        at: DateTime<Utc>,
        staged: Option<Root>,
        err: Option<&str>,
    ) -> (ChildReport, ChildStage) {
        (
            ChildReport {
                child_id: id.into(),
                root: None,
                number: Some(1),
                hub_version: String::new(),
                config_digest: String::new(),
                chain: Vec::new(),
                reported_at: at,
            },
            ChildStage {
                two_phase: true,
                staged_number: staged.map(|_| 2),
                staged_root: staged,
                stage_error: err.map(str::to_owned),
            },
        )
    }

    #[test]
    fn activation_waits_for_every_reporting_child_then_for_the_quorum_after_the_timeout() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let now = Utc::now();
        let root = Root(BlobId::of(b"v2"));
        let staged = Staged {
            published: Published::sign(root, 2, now + chrono::Duration::days(1), &key),
            staged_at: now,
            validity: Duration::from_secs(86400),
        };
        let mut publish = PublishSection {
            quorum: Quorum::Percent(75),
            ..Default::default()
        };
        let si = Duration::from_secs(3600);
        let old = now - chrono::Duration::hours(4);
        let mut kids = vec![
            child("a", now, Some(root), None),
            child("b", now, Some(root), None),
            child("c", now, Some(root), None),
            child("d", now, None, Some("disk full")),
            child("gone", old, None, None),
        ];
        let r = decide(&staged, &kids, &publish, si, now);
        assert!(!r.activate, "{}", r.why);
        assert_eq!((r.reporting, r.staged_by, r.needed), (4, 3, 3));
        assert_eq!(r.not_staged.len(), 2);
        assert!(r.not_staged[0].reason.contains("disk full"));
        assert!(!r.not_staged[1].reporting);
        // After the timeout, 3 of 4 make 75 %.
        let later = now + chrono::Duration::from_std(publish.stage_timeout).unwrap();
        assert!(decide(&staged, &kids, &publish, si, later).activate);
        publish.quorum = Quorum::All;
        assert!(!decide(&staged, &kids, &publish, si, later).activate);
        // Every reporting child staged it: at once.
        kids[3] = child("d", now, Some(root), None);
        assert!(decide(&staged, &kids, &publish, si, now).activate);
        // No child reports: at once.
        assert!(decide(&staged, &kids[4..], &publish, si, now).activate);
    }

    #[test]
    fn quorums_count_children() {
        assert_eq!(Quorum::All.needed(5), 5);
        assert_eq!(Quorum::Count(4).needed(5), 4);
        assert_eq!(Quorum::Count(9).needed(5), 5);
        assert_eq!(Quorum::Percent(80).needed(5), 4);
        assert_eq!(Quorum::Percent(50).needed(3), 2);
        for (s, q) in [
            ("all", Quorum::All),
            ("4", Quorum::Count(4)),
            ("80%", Quorum::Percent(80)),
        ] {
            assert_eq!(Quorum::try_from(s.to_owned()).unwrap(), q);
            assert_eq!(q.to_string(), s);
        }
        let e = Quorum::try_from("lots".to_owned()).unwrap_err();
        assert!(e.contains("not a quorum"), "{e}");
        assert!(Quorum::try_from("120%".to_owned()).is_err());
    }
}

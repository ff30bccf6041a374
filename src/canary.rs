//! Staged rollout: a version the activation rule lets go goes first to the test group of
//! children (`rollout.canary`), and to every child once `rollout.soak` has passed, unless an
//! admin halts it (`updhub rollout halt|resume|release`). Pure: the rollout's row and the
//! time come in, its phase goes out.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

/// The cluster's rollout of one version (`canary` table).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Canary {
    /// The version rolled out.
    pub number: u64,
    /// When the test group got it; the soak counts from here (moved on by a resume, so a
    /// halt does not count as soak time).
    pub started_at: DateTime<Utc>,
    /// When an admin halted it, if it is halted.
    pub halted_at: Option<DateTime<Utc>>,
    /// When an admin released it to everyone, if they did.
    pub released_at: Option<DateTime<Utc>>,
    /// Who did the last of these.
    pub by: String,
}

/// Where a rollout stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "phase")]
pub enum Phase {
    /// Only the test group has it; everyone gets it at `until`.
    Canary {
        /// When the soak ends.
        until: DateTime<Utc>,
    },
    /// An admin stopped it: the test group keeps it, nobody else gets it.
    Halted {
        /// Since when.
        since: DateTime<Utc>,
    },
    /// Everyone gets it.
    Everyone,
}

impl Canary {
    /// The phase at `now`, with `soak` (`rollout.soak`).
    pub fn phase(&self, soak: Duration, now: DateTime<Utc>) -> Phase {
        if self.released_at.is_some() {
            return Phase::Everyone;
        }
        if let Some(since) = self.halted_at {
            return Phase::Halted { since };
        }
        let until = self
            .started_at
            .checked_add_signed(chrono::Duration::from_std(soak).unwrap_or(chrono::Duration::MAX))
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        if now >= until {
            Phase::Everyone
        } else {
            Phase::Canary { until }
        }
    }

    /// Resumed at `now`: the soak goes on where the halt stopped it.
    pub fn resumed(&self, now: DateTime<Utc>) -> Canary {
        let Some(halted) = self.halted_at else {
            return self.clone();
        };
        Canary {
            started_at: self.started_at + (now - halted),
            halted_at: None,
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_group_soaks_then_everyone_gets_it_unless_halted() {
        let t0 = Utc::now();
        let soak = Duration::from_secs(3600);
        let c = Canary {
            number: 2,
            started_at: t0,
            halted_at: None,
            released_at: None,
            by: "hq".into(),
        };
        let until = t0 + chrono::Duration::hours(1);
        assert_eq!(c.phase(soak, t0), Phase::Canary { until });
        assert_eq!(c.phase(soak, until), Phase::Everyone);
        // Halted 10 minutes in, for 30 minutes: the soak ends 30 minutes later.
        let h = Canary {
            halted_at: Some(t0 + chrono::Duration::minutes(10)),
            ..c.clone()
        };
        assert!(matches!(h.phase(soak, until), Phase::Halted { .. }));
        let r = h.resumed(t0 + chrono::Duration::minutes(40));
        assert_eq!(
            r.phase(soak, until),
            Phase::Canary {
                until: until + chrono::Duration::minutes(30)
            }
        );
        // Released: everyone at once, halted or not.
        let rel = Canary {
            released_at: Some(t0),
            ..h
        };
        assert_eq!(rel.phase(soak, t0), Phase::Everyone);
    }
}

/// What `rollout status` shows: the test group, the version rolled out and its phase.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// `rollout.canary`.
    pub canary: Vec<String>,
    /// `rollout.soak`.
    #[serde(with = "humantime_serde")]
    pub soak: Duration,
    /// The staged version and where its activation stands, if one is staged.
    pub staged: Option<crate::switch::Rollout>,
    /// The rollout of the staged version to the test group, if it started.
    pub rollout: Option<Canary>,
    /// Its phase now.
    pub phase: Option<Phase>,
}

impl crate::hub::Hub {
    /// The rollout of the cluster's staged version to the test group: its row and phase,
    /// when one is in progress for that version.
    ///
    /// # Errors
    /// Database errors.
    pub fn canary_phase(&self) -> Result<Option<(Canary, Phase)>, crate::Error> {
        let Some(staged) = self.db.cluster_staged()? else {
            return Ok(None);
        };
        Ok(self
            .db
            .canary()?
            .filter(|c| c.number == staged.published.number)
            .map(|c| {
                let phase = c.phase(self.live().rollout.soak, Utc::now());
                (c, phase)
            }))
    }

    /// What `GET /v1/published` answers `child`: the active and staged documents, except
    /// that a child of the test group gets the staged version as its active one while the
    /// rollout holds the others back.
    ///
    /// # Errors
    /// Database errors.
    pub fn published_for(
        &self,
        child: &str,
    ) -> Result<
        (
            Option<crate::repo::Published>,
            Option<crate::repo::Published>,
        ),
        crate::Error,
    > {
        let (active, staged) = (self.db.published()?, self.db.staged()?);
        if self.is_child() || !self.live().rollout.canary.iter().any(|c| c == child) {
            return Ok((active, staged));
        }
        // Until the version is active for everyone, the test group holds it as active (also
        // in the moment between the soak's end and the activation: it never goes back).
        match (self.canary_phase()?, staged) {
            (Some(_), Some(s)) => Ok((Some(s), None)),
            (_, staged) => Ok((active, staged)),
        }
    }

    /// `rollout status`.
    ///
    /// # Errors
    /// Database errors.
    pub fn rollout_status(&self) -> Result<Status, crate::Error> {
        let live = self.live();
        let current = self.canary_phase()?;
        Ok(Status {
            canary: live.rollout.canary.clone(),
            soak: live.rollout.soak,
            staged: self.rollout()?,
            phase: current.as_ref().map(|(_, p)| p.clone()),
            rollout: current.map(|(c, _)| c),
        })
    }

    /// `rollout halt`: the test group keeps the version, nobody else gets it.
    ///
    /// # Errors
    /// No rollout in its test phase, or database errors.
    pub fn halt_rollout(&self) -> Result<Canary, crate::Error> {
        self.change_rollout("halt", |c, phase, now| match phase {
            Phase::Canary { .. } => Ok(Canary {
                halted_at: Some(now),
                ..c.clone()
            }),
            Phase::Halted { since } => Err(format!("it is halted already, since {since}; `updhub rollout resume` or `release`")),
            Phase::Everyone => Err("its soak is over: every child gets it now; `updhub publish --version N` rolls back".into()),
        })
    }

    /// `rollout resume`: the soak goes on where the halt stopped it.
    ///
    /// # Errors
    /// No halted rollout, or database errors.
    pub fn resume_rollout(&self) -> Result<Canary, crate::Error> {
        self.change_rollout("resume", |c, phase, now| match phase {
            Phase::Halted { .. } => Ok(c.resumed(now)),
            _ => Err("it is not halted".into()),
        })
    }

    /// `rollout release`: every child gets the version now.
    ///
    /// # Errors
    /// No rollout in progress, or database errors.
    pub fn release_rollout(&self) -> Result<Canary, crate::Error> {
        let c = self.change_rollout("release", |c, phase, now| match phase {
            Phase::Everyone => Err("every child gets it already".into()),
            _ => Ok(Canary {
                released_at: Some(now),
                ..c.clone()
            }),
        })?;
        self.evaluate_activation()?;
        Ok(c)
    }

    fn change_rollout(
        &self,
        what: &str,
        f: impl FnOnce(&Canary, &Phase, DateTime<Utc>) -> Result<Canary, String>,
    ) -> Result<Canary, crate::Error> {
        let state = |why: String| crate::Error::State(why);
        let (c, phase) = self.canary_phase()?.ok_or_else(|| {
            state(format!(
                "nothing to {what}: no version is rolling out to the test group (rollout.canary); `updhub rollout status` shows where things stand"
            ))
        })?;
        let now = Utc::now();
        let mut changed = f(&c, &phase, now).map_err(|why| {
            state(format!(
                "cannot {what} the rollout of version {}: {why}",
                c.number
            ))
        })?;
        changed.by = self.id().to_string();
        if !self.db.set_canary(&changed)? {
            return Err(state(format!(
                "version {}'s rollout was replaced meanwhile; `updhub rollout status`",
                c.number
            )));
        }
        self.versions_moved();
        Ok(changed)
    }
}

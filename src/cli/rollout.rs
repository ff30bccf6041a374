//! `rollout status|halt|resume|release`: the staged rollout to the test group of children.

use clap::Subcommand;

use super::{out, print_json, Result};
use crate::canary::{Canary, Phase};
use crate::Hub;

/// `rollout` subcommands.
#[derive(Subcommand)]
pub enum RolloutCommand {
    /// The test group (rollout.canary), the staged version and where its rollout stands.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Stop the rollout: the test group keeps the version, nobody else gets it.
    Halt,
    /// Go on with a halted rollout: the soak continues where the halt stopped it.
    Resume,
    /// Every child gets the version now, soak or halt notwithstanding.
    Release,
}

/// Run a `rollout` subcommand.
pub(super) fn rollout(data: &std::path::Path, command: RolloutCommand) -> Result<()> {
    let hub = Hub::open(data)?;
    match command {
        RolloutCommand::Status { json } => {
            let s = hub.rollout_status()?;
            if json {
                return print_json(&s);
            }
            if s.canary.is_empty() {
                out!("no test group (rollout.canary is empty): a version goes to every child when it is activated");
            } else {
                out!(
                    "test group: {} (rollout.canary); the others get a version {} (rollout.soak) after it",
                    s.canary.join(", "),
                    humantime::format_duration(s.soak)
                );
            }
            match &s.staged {
                Some(r) => super::render::rollout(r)?,
                None => out!("no version is staged"),
            }
            if let (Some(c), Some(p)) = (&s.rollout, &s.phase) {
                out!("{}", describe(c, p));
            }
        }
        RolloutCommand::Halt => {
            let c = hub.halt_rollout()?;
            out!("halted the rollout of version {}: the test group keeps it, no other child gets it until `updhub rollout resume` or `release`", c.number);
        }
        RolloutCommand::Resume => {
            let c = hub.resume_rollout()?;
            let p = c.phase(hub.live().rollout.soak, chrono::Utc::now());
            out!("resumed: {}", describe(&c, &p));
        }
        RolloutCommand::Release => {
            let c = hub.release_rollout()?;
            out!(
                "released version {} to every child: it is activated, and children switch to it at once",
                c.number
            );
        }
    }
    Ok(())
}

/// One line on a rollout's phase, for `rollout` and `status`.
pub(super) fn describe(c: &Canary, p: &Phase) -> String {
    match p {
        Phase::Canary { until } => format!(
            "version {} is with the test group since {}; every child gets it at {until} unless `updhub rollout halt`",
            c.number, c.started_at
        ),
        Phase::Halted { since } => format!(
            "version {}'s rollout is HALTED since {since} (by {}): the test group keeps it, no other child gets it; `updhub rollout resume` or `release`",
            c.number, c.by
        ),
        Phase::Everyone => format!("version {} goes to every child", c.number),
    }
}

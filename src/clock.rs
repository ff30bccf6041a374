//! This node's own clock: the real time, plus an offset that tests set to play a member
//! whose clock is wrong (it is zero otherwise; nothing configures it).
//!
//! What one node decides alone reads this clock (the times it signs, its own schedules).
//! What the members of a cluster must agree on (the leases, the publish fence, who is
//! alive) reads the database's clock instead ([`crate::db::Db::now`]), so a member whose
//! clock is wrong still agrees with the others.

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Utc};

/// A node's clock (see the module's documentation).
#[derive(Debug, Default)]
pub struct Clock {
    /// How far it is from the real time, milliseconds (ahead if positive).
    offset_ms: AtomicI64,
}

impl Clock {
    /// The time by this clock.
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + chrono::Duration::milliseconds(self.offset_ms.load(Ordering::Relaxed))
    }

    /// Set this clock `by` ahead of the real time (behind if negative): tests use it to play
    /// a member whose clock is wrong.
    pub fn set_offset(&self, by: chrono::Duration) {
        self.offset_ms
            .store(by.num_milliseconds(), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_offset_moves_the_clock_by_that_much() {
        let c = Clock::default();
        let real = Utc::now();
        assert!((c.now() - real).num_seconds().abs() < 5);
        c.set_offset(chrono::Duration::hours(1));
        let ahead = c.now() - Utc::now();
        assert!(ahead > chrono::Duration::minutes(59), "{ahead}");
    }
}

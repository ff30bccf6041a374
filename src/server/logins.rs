//! Failed station logins: counted per client address and per station id in the cluster's
//! database (so a guesser who spreads tries over the members is counted once), and past a
//! bound within a window every login of that address or id gets 429 with Retry-After until
//! the window has passed, the right secret too. Failures are logged as a rate: one line per
//! interval, not one per failure.

use std::collections::HashSet;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::db::{Db, DbError, LoginSubject};

/// The wall clock the login windows are measured by: the system's, or (tests) the system's
/// moved by an offset the test sets.
#[derive(Clone, Default)]
pub struct Clock {
    /// Milliseconds added to the system time; `None`: the system clock as it is.
    ahead: Option<Arc<AtomicI64>>,
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.ahead {
            None => f.write_str("Clock(system)"),
            Some(a) => write!(f, "Clock(system + {} ms)", a.load(Ordering::Relaxed)),
        }
    }
}

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock { ahead: None }
    }

    /// The system clock, moved forward by [`Clock::advance`] (its clones move with it).
    pub fn manual() -> Clock {
        Clock {
            ahead: Some(Arc::new(AtomicI64::new(0))),
        }
    }

    /// Move a manual clock forward by `by`; the system clock does not move.
    pub fn advance(&self, by: Duration) {
        if let Some(a) = &self.ahead {
            a.fetch_add(ms(by), Ordering::Relaxed);
        }
    }

    /// Now, in unix milliseconds.
    pub fn now_ms(&self) -> i64 {
        chrono::Utc::now().timestamp_millis()
            + self.ahead.as_ref().map_or(0, |a| a.load(Ordering::Relaxed))
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The bounds of failed station logins.
#[derive(Debug, Clone)]
pub struct LoginLimits {
    /// Failed logins of one station id within `window` after which its logins get 429: a
    /// guesser gets this many tries per window, across the cluster.
    pub per_station: u64,
    /// Failed logins from one address within `window` after which its logins get 429
    /// (higher than `per_station`: stations behind one NAT share an address).
    pub per_address: u64,
    /// How long a window lasts from its first failure.
    pub window: Duration,
    /// How often the failures are summed up in the log.
    pub log_every: Duration,
    /// What the windows are measured by.
    pub clock: Clock,
}

impl Default for LoginLimits {
    fn default() -> Self {
        LoginLimits {
            // 10 tries per 5 minutes is 2,880 a day against a 20+-character secret: nothing;
            // a station with a stale secret is told so long before.
            per_station: 10,
            per_address: 50,
            window: Duration::from_secs(300),
            log_every: Duration::from_secs(60),
            clock: Clock::system(),
        }
    }
}

/// How often a node deletes the rows of windows that have passed.
const PURGE_EVERY_MS: i64 = 60_000;

/// Addresses and station ids remembered for one log line, at most (the line names a few
/// and counts the rest).
const NAMES_KEPT: usize = 1024;

/// The failed logins of one listener, and their log.
pub(crate) struct Throttle {
    limits: LoginLimits,
    /// When this node last purged the passed windows (unix ms).
    purged_ms: AtomicI64,
    log: Mutex<FailureLog>,
}

/// What the next log line sums up.
struct FailureLog {
    since: Instant,
    failed: u64,
    throttled: u64,
    addresses: HashSet<String>,
    stations: HashSet<String>,
}

impl FailureLog {
    fn new() -> FailureLog {
        FailureLog {
            since: Instant::now(),
            failed: 0,
            throttled: 0,
            addresses: HashSet::new(),
            stations: HashSet::new(),
        }
    }

    fn note(&mut self, address: &str, station: &str) {
        if self.addresses.len() < NAMES_KEPT {
            self.addresses.insert(address.to_owned());
        }
        if self.stations.len() < NAMES_KEPT {
            self.stations.insert(station.to_owned());
        }
    }
}

impl Throttle {
    pub(crate) fn new(limits: LoginLimits) -> Throttle {
        Throttle {
            limits,
            purged_ms: AtomicI64::new(0),
            log: Mutex::new(FailureLog::new()),
        }
    }

    /// The start of the oldest window that still counts at `now_ms`, exclusive.
    fn since(&self, now_ms: i64) -> i64 {
        now_ms - ms(self.limits.window)
    }

    /// How long `station` from `address` must wait before it may log in again, `None` when
    /// it may now. Blocking: it reads the database.
    ///
    /// # Errors
    /// Database errors.
    pub(crate) fn wait(
        &self,
        db: &Db,
        address: &str,
        station: &str,
    ) -> Result<Option<Duration>, DbError> {
        let now = self.limits.clock.now_ms();
        let rows = db.login_failures(station, address, self.since(now))?;
        let until = rows
            .iter()
            .filter(|r| {
                r.failures
                    >= match r.subject {
                        LoginSubject::Station => self.limits.per_station,
                        LoginSubject::Address => self.limits.per_address,
                    }
            })
            .map(|r| r.window_start_ms + ms(self.limits.window))
            .max();
        let Some(until) = until else {
            return Ok(None);
        };
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        log.throttled += 1;
        log.note(address, station);
        drop(log);
        Ok(Some(Duration::from_millis(
            u64::try_from(until - now).unwrap_or(0).max(1),
        )))
    }

    /// Count a failed login of `station` from `address`. Blocking: it writes the database.
    ///
    /// # Errors
    /// Database errors.
    pub(crate) fn failed(&self, db: &Db, address: &str, station: &str) -> Result<(), DbError> {
        let now = self.limits.clock.now_ms();
        tracing::debug!(%address, %station, "station credentials refused: unknown station or wrong secret");
        {
            let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
            log.failed += 1;
            log.note(address, station);
        }
        db.record_login_failure(station, address, now, self.since(now))?;
        let last = self.purged_ms.load(Ordering::Relaxed);
        if now - last >= PURGE_EVERY_MS
            && self
                .purged_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            db.purge_login_failures(self.since(now))?;
        }
        Ok(())
    }

    /// Write the log line of the failures since the last one, once `log_every` has passed
    /// since it (or at once when `now`): one line however many there were.
    pub(crate) fn flush_log(&self, now: bool) {
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        if log.failed + log.throttled == 0 {
            log.since = Instant::now();
            return;
        }
        if !now && log.since.elapsed() < self.limits.log_every {
            return;
        }
        let done = std::mem::replace(&mut *log, FailureLog::new());
        drop(log);
        let some = |names: &HashSet<String>| {
            let mut v: Vec<&str> = names.iter().map(String::as_str).collect();
            v.sort_unstable();
            let more = v.len().saturating_sub(5);
            v.truncate(5);
            if more > 0 {
                format!("{} and {more} more", v.join(", "))
            } else {
                v.join(", ")
            }
        };
        tracing::info!(
            failed = done.failed,
            throttled = done.throttled,
            "failed station logins: {} wrong credentials and {} answered 429 in the last {:.0?}, from {} address(es) ({}) for {} station id(s) ({}); past {} failures of an id or {} of an address within {:?}, its logins wait out the window",
            done.failed,
            done.throttled,
            done.since.elapsed(),
            done.addresses.len(),
            some(&done.addresses),
            done.stations.len(),
            some(&done.stations),
            self.limits.per_station,
            self.limits.per_address,
            self.limits.window,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_with_its_clones_and_the_system_one_does_not() {
        let c = Clock::manual();
        let d = c.clone();
        let before = d.now_ms();
        c.advance(Duration::from_secs(3600));
        assert!(d.now_ms() - before >= 3_600_000);
        let s = Clock::system();
        s.advance(Duration::from_secs(3600));
        assert!(s.now_ms() < before + 3_600_000);
    }
}

//! A small circuit breaker for the cache, and a shorter leash for a table in trouble
//! ([`TableBreaker`]).
//!
//! The cache's breaker: After a few consecutive failures the cache is
//! skipped for a cool-down (requests go straight to the table instead of each paying
//! the Redis timeout); then one probe request is let through, and its success closes
//! the breaker again.
//!
//! A probe can vanish without reporting: its request's future is dropped when the client
//! closes the connection or the invocation is cut short, and neither `record_success`
//! nor `record_failure` runs. So probing has a deadline, after which the next caller
//! probes instead; a late report from the first probe still counts.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// Consecutive failures that open the breaker.
pub const FAILURE_THRESHOLD: u32 = 3;
/// How long an open breaker skips the cache before probing.
pub const COOL_DOWN: Duration = Duration::from_secs(1);
/// How long a probe may stay out before it counts as abandoned. A probe is one cache
/// call bounded by the command timeout (50 ms by default); one slower than this only
/// means a second probe goes out beside it.
pub const PROBE_DEADLINE: Duration = COOL_DOWN;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// One probe is out; everyone else still skips the cache until it reports or
    /// `until`, when it counts as abandoned.
    Probing {
        until: Instant,
    },
}

/// Thread-safe; one per cache.
#[derive(Debug)]
pub struct Breaker {
    state: Mutex<State>,
}

impl Default for Breaker {
    fn default() -> Self {
        Self {
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }
}

impl Breaker {
    /// Whether this caller may use the cache now.
    pub fn allow(&self) -> bool {
        let mut state = self.lock();
        let now = Instant::now();
        match *state {
            State::Closed { .. } => true,
            State::Open { until } | State::Probing { until } if now >= until => {
                *state = State::Probing {
                    until: now + PROBE_DEADLINE,
                };
                true
            }
            State::Open { .. } | State::Probing { .. } => false,
        }
    }

    pub fn record_success(&self) {
        *self.lock() = State::Closed { failures: 0 };
    }

    pub fn record_failure(&self) {
        let mut state = self.lock();
        *state = match *state {
            State::Closed { failures } if failures + 1 < FAILURE_THRESHOLD => State::Closed {
                failures: failures + 1,
            },
            _ => State::Open {
                until: Instant::now() + COOL_DOWN,
            },
        };
    }

    /// Whether the cache is being skipped.
    pub fn is_open(&self) -> bool {
        !matches!(*self.lock(), State::Closed { .. })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is a plain value; a panic elsewhere cannot leave it half-written.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// How long a table read may take while the table is in trouble (after
/// [`FAILURE_THRESHOLD`] consecutive reads it could not answer), instead of the store's
/// whole timeout. A healthy DynamoDB answers a `GetItem` in single-digit milliseconds,
/// so a read that answers within this ends the trouble at once.
pub const TROUBLED_TABLE_DEADLINE: Duration = Duration::from_millis(250);

/// The table's breaker. Unlike the cache's, it never skips the table: a miss has nowhere
/// else to get a fresh answer. It only stops every miss from paying the store's full
/// timeout (3 s, retries included) while the table keeps failing: during a timeout storm
/// each read gets [`TROUBLED_TABLE_DEADLINE`] and the miss is answered (a last-known-good
/// copy as `STALE`, or 503) at once. Every read still tries the table, so the first one
/// it answers in time closes the breaker: no cool-down keeps serving `STALE` after the
/// table is back.
#[derive(Debug, Default)]
pub struct TableBreaker {
    /// Consecutive reads the table did not answer.
    failures: AtomicU32,
}

impl TableBreaker {
    /// The deadline for the next read: `None` (the store's own timeout) while the table
    /// answers, [`TROUBLED_TABLE_DEADLINE`] while it is in trouble.
    pub fn deadline(&self) -> Option<Duration> {
        (self.failures.load(Ordering::Relaxed) >= FAILURE_THRESHOLD)
            .then_some(TROUBLED_TABLE_DEADLINE)
    }

    /// Records whether a read got an answer (an item, none, or one it could not serve:
    /// each means the table is up) or not (error, throttling, timeout).
    pub fn record(&self, answered: bool) {
        if answered {
            self.failures.store(0, Ordering::Relaxed);
        } else {
            // Saturating: a long outage must not wrap the count back to "healthy".
            let _ = self
                .failures
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_add(1));
        }
    }

    /// Whether reads currently get the short deadline.
    pub fn is_open(&self) -> bool {
        self.deadline().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn opens_after_consecutive_failures_and_closes_after_a_good_probe() {
        let breaker = Breaker::default();
        // GIVEN failures below the threshold THEN it stays closed
        for _ in 1..FAILURE_THRESHOLD {
            assert!(breaker.allow());
            breaker.record_failure();
        }
        assert!(!breaker.is_open());
        // WHEN one more fails THEN the cache is skipped for the cool-down
        breaker.record_failure();
        assert!(!breaker.allow());
        tokio::time::advance(COOL_DOWN - Duration::from_millis(1)).await;
        assert!(!breaker.allow());
        // THEN exactly one probe goes through
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(breaker.allow());
        assert!(!breaker.allow());
        // AND its success closes the breaker
        breaker.record_success();
        assert!(breaker.allow() && breaker.allow());
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_reopens_at_once() {
        let breaker = Breaker::default();
        for _ in 0..FAILURE_THRESHOLD {
            breaker.record_failure();
        }
        tokio::time::advance(COOL_DOWN).await;
        assert!(breaker.allow());
        breaker.record_failure();
        assert!(!breaker.allow());
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_dropped_before_it_reports_does_not_keep_the_cache_skipped() {
        // GIVEN an open breaker whose cool-down has passed
        let breaker = Breaker::default();
        for _ in 0..FAILURE_THRESHOLD {
            breaker.record_failure();
        }
        tokio::time::advance(COOL_DOWN).await;
        // WHEN the probe's request is dropped mid-call (its client went away): it never
        // records a success or a failure
        let probe = async {
            assert!(breaker.allow(), "the first caller is the probe");
            std::future::pending::<()>().await;
            breaker.record_success();
        };
        let abandoned = tokio::time::timeout(Duration::from_millis(10), probe).await;
        assert!(abandoned.is_err(), "the probe was dropped mid-flight");
        // THEN the cache stays skipped only until the probe deadline
        assert!(!breaker.allow());
        tokio::time::advance(PROBE_DEADLINE - Duration::from_millis(11)).await;
        assert!(!breaker.allow());
        tokio::time::advance(Duration::from_millis(1)).await;
        // AND then one new probe goes through, and its success closes the breaker
        assert!(breaker.allow());
        assert!(!breaker.allow());
        breaker.record_success();
        assert!(!breaker.is_open());
        assert!(breaker.allow() && breaker.allow());
    }

    #[tokio::test(start_paused = true)]
    async fn a_late_report_from_an_abandoned_probe_still_counts() {
        // GIVEN a probe past its deadline and a second probe out
        let breaker = Breaker::default();
        for _ in 0..FAILURE_THRESHOLD {
            breaker.record_failure();
        }
        tokio::time::advance(COOL_DOWN).await;
        assert!(breaker.allow());
        tokio::time::advance(PROBE_DEADLINE).await;
        assert!(breaker.allow());
        // WHEN the first one reports a failure THEN the breaker is open for a cool-down
        breaker.record_failure();
        assert!(!breaker.allow());
        tokio::time::advance(COOL_DOWN).await;
        assert!(breaker.allow());
    }

    #[test]
    fn the_table_breaker_shortens_reads_after_consecutive_failures_and_one_answer_closes_it() {
        let table = TableBreaker::default();
        // GIVEN failures below the threshold THEN reads keep the store's own timeout
        for _ in 1..FAILURE_THRESHOLD {
            table.record(false);
            assert_eq!(table.deadline(), None);
        }
        // WHEN one more read gets no answer THEN reads get the short deadline
        table.record(false);
        assert_eq!(table.deadline(), Some(TROUBLED_TABLE_DEADLINE));
        // AND however long the outage, one answer closes it at once
        for _ in 0..1_000 {
            table.record(false);
        }
        assert!(table.is_open());
        table.record(true);
        assert_eq!(table.deadline(), None);
    }

    #[test]
    fn a_success_resets_the_count() {
        let breaker = Breaker::default();
        for _ in 0..10 {
            breaker.record_failure();
            breaker.record_success();
        }
        assert!(!breaker.is_open());
    }
}

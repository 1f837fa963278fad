//! When a delivery is tried again, and the one place that decides what a delivery's result
//! means: done, tried again later as its own job, or given up.

use std::time::Duration;

use tokio::time::Instant;

use crate::actions::Outcome;
use crate::error::{Error, Result};

/// Delay before attempt `n + 1` after attempt `n` failed: seconds, then minutes, then hours,
/// capped at 12 h, the longest SQS can hide a message.
pub(crate) const SCHEDULE: &[Duration] = &[
    Duration::from_secs(10),
    Duration::from_secs(60),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(12 * 3600),
];

/// The longest any delivery waits (what SQS visibility allows).
pub(crate) const MAX_DELAY: Duration = Duration::from_secs(12 * 3600);

/// The shortest attempt worth making: with less time left before the deadline, no request is
/// sent (it could only time out) and the delivery is deferred without counting an attempt.
pub(crate) const MIN_ATTEMPT: Duration = Duration::from_secs(1);

/// Kept free between the end of the last attempt and the invocation's deadline, to record the
/// attempt (circuit, audit, claim) and queue its retry: a few round trips to DynamoDB and SQS,
/// with room for the SDK's own retries.
pub const WRAP_UP: Duration = Duration::from_secs(5);

/// When attempts must be over, for work that had `lease` left before the invocation's deadline
/// at `now`: [`WRAP_UP`] earlier (at once, when not even that is left).
pub(crate) fn attempt_deadline(now: Instant, lease: Duration) -> Instant {
    now + lease.saturating_sub(WRAP_UP)
}

/// The wait before the next attempt: the schedule, or longer when the endpoint asked.
pub(crate) fn retry_delay(failed_attempt: u32, retry_after: Option<Duration>) -> Duration {
    let index = (failed_attempt.max(1) as usize - 1).min(SCHEDULE.len() - 1);
    SCHEDULE[index]
        .max(retry_after.unwrap_or_default())
        .min(MAX_DELAY)
}

/// What becomes of a delivery after one run.
#[derive(Debug)]
pub enum Next {
    /// Delivered (or found delivered before).
    Done(Outcome),
    /// Run again after `wait` as attempt `attempt`.
    Later {
        /// The attempt the next run is.
        attempt: u32,
        /// How long until it is due.
        wait: Duration,
    },
    /// No attempt will succeed, or none is left: dead-letter the delivery with this reason.
    GiveUp(Error),
}

/// What the result of `attempt` (out of `max_attempts`) means. A passing failure, the
/// endpoint's or ours (a claim, a secret, the table), spends the attempt and is tried again on
/// the schedule until none is left; a deferral (an open circuit, no time left) waits without
/// spending one; anything else is final.
pub fn next(result: Result<Outcome>, attempt: u32, max_attempts: u32) -> Next {
    match result {
        Ok(outcome) => Next::Done(outcome),
        Err(Error::Deferred { wait, .. }) => Next::Later { attempt, wait },
        Err(Error::Retryable {
            message,
            retry_after,
        }) => {
            if attempt < max_attempts {
                Next::Later {
                    attempt: attempt + 1,
                    wait: retry_delay(attempt, retry_after),
                }
            } else {
                Next::GiveUp(Error::permanent(format!(
                    "gave up after {attempt} attempts: {message}"
                )))
            }
        }
        Err(error @ (Error::Permanent { .. } | Error::Rejected { .. })) => Next::GiveUp(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::Label;

    #[test]
    fn the_schedule_grows_is_capped_and_yields_to_a_longer_retry_after() {
        assert_eq!(retry_delay(1, None), Duration::from_secs(10));
        assert_eq!(retry_delay(3, None), Duration::from_secs(300));
        assert_eq!(retry_delay(40, None), MAX_DELAY);
        assert_eq!(
            retry_delay(1, Some(Duration::from_secs(120))),
            Duration::from_secs(120)
        );
        assert_eq!(
            retry_delay(5, Some(Duration::from_secs(1))),
            Duration::from_secs(2 * 3600)
        );
        assert_eq!(
            retry_delay(1, Some(Duration::from_secs(999_999))),
            MAX_DELAY
        );
        assert!(SCHEDULE.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn attempts_end_the_wrap_up_before_the_deadline_or_at_once() {
        let now = Instant::now();
        assert_eq!(
            attempt_deadline(now, WRAP_UP + Duration::from_secs(20)),
            now + Duration::from_secs(20)
        );
        assert_eq!(attempt_deadline(now, WRAP_UP), now);
        assert_eq!(attempt_deadline(now, Duration::from_secs(1)), now);
    }

    #[test]
    fn failures_spend_attempts_deferrals_do_not_and_the_last_failure_gives_up() {
        let delivered = Outcome::new(Label::Delivered, "crm 200");
        assert!(matches!(next(Ok(delivered), 1, 3), Next::Done(_)));
        let busy = || Error::Retryable {
            message: "crm answered 503".into(),
            retry_after: Some(Duration::from_secs(90)),
        };
        assert!(matches!(
            next(Err(busy()), 1, 3),
            Next::Later { attempt: 2, wait } if wait == Duration::from_secs(90)
        ));
        assert!(matches!(
            next(Err(busy()), 3, 3),
            Next::GiveUp(Error::Permanent { message }) if message == "gave up after 3 attempts: crm answered 503"
        ));
        let open = Error::deferred("circuit open", Duration::from_secs(30));
        assert!(matches!(
            next(Err(open), 3, 3),
            Next::Later { attempt: 3, wait } if wait == Duration::from_secs(30)
        ));
        assert!(matches!(
            next(Err(Error::permanent("crm answered 404")), 1, 3),
            Next::GiveUp(Error::Permanent { .. })
        ));
    }
}

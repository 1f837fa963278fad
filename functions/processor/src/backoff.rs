//! How long a message stays invisible after a retryable failure.

use std::time::Duration;

/// The first delay; each further receive doubles it.
pub const BASE: Duration = Duration::from_secs(2);

/// The longest SQS can hide a message (12 h).
pub const MAX_VISIBILITY: Duration = Duration::from_secs(43_200);

/// Exponential backoff from the receive count, with "equal jitter" (half fixed, half random, so
/// retries of one burst spread out yet never come back at once), capped at `cap`, and never
/// shorter than what the failing party asked for with Retry-After (up to what SQS allows).
/// `random` is in `[0, 1)`.
pub fn visibility_delay(
    receive_count: u32,
    retry_after: Option<Duration>,
    cap: Duration,
    random: f64,
) -> Duration {
    let exponent = receive_count.saturating_sub(1).min(20);
    let full = BASE.saturating_mul(1 << exponent).min(cap);
    let jittered = full / 2 + full.mul_f64(random.clamp(0.0, 1.0) / 2.0);
    jittered.max(retry_after.unwrap_or_default().min(MAX_VISIBILITY))
}

/// The visibility timeout that hides a message for `delay`, in the whole seconds SQS takes:
/// rounded up, so a message waiting for its time never comes back a moment early (at 0 it would
/// come back at once, again and again until due), and at most `MAX_VISIBILITY`.
pub fn visibility_timeout_secs(delay: Duration) -> i32 {
    let millis = delay.min(MAX_VISIBILITY).as_millis();
    i32::try_from(millis.div_ceil(1000)).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAP: Duration = Duration::from_secs(900);

    #[test]
    fn a_wait_is_rounded_up_to_whole_seconds() {
        assert_eq!(visibility_timeout_secs(Duration::from_millis(800)), 1);
        assert_eq!(visibility_timeout_secs(Duration::from_millis(2001)), 3);
        assert_eq!(visibility_timeout_secs(Duration::from_secs(30)), 30);
        assert_eq!(visibility_timeout_secs(Duration::ZERO), 0);
        assert_eq!(visibility_timeout_secs(Duration::from_secs(90_000)), 43_200);
    }

    #[test]
    fn delays_double_per_receive_within_the_jitter_band() {
        for receive in 1..=6 {
            let full = BASE * (1 << (receive - 1));
            assert_eq!(visibility_delay(receive, None, CAP, 0.0), full / 2);
            assert_eq!(visibility_delay(receive, None, CAP, 1.0), full);
        }
    }

    #[test]
    fn the_cap_bounds_the_backoff_and_retry_after_is_a_floor() {
        assert_eq!(visibility_delay(40, None, CAP, 1.0), CAP);
        assert_eq!(
            visibility_delay(1, Some(Duration::from_secs(30)), CAP, 0.0),
            Duration::from_secs(30)
        );
        assert_eq!(
            visibility_delay(1, Some(Duration::from_secs(5000)), CAP, 0.0),
            Duration::from_secs(5000)
        );
        assert_eq!(
            visibility_delay(1, Some(Duration::from_secs(90_000)), CAP, 0.0),
            MAX_VISIBILITY
        );
    }
}

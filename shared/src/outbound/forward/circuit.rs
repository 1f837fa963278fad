//! A circuit breaker per downstream endpoint, shared by every processor instance through one
//! item of the state table, so that a failing endpoint is spared by all of them at once rather
//! than rediscovered by each.
//!
//! The state machine (attribute `state`):
//!
//! ```text
//!                  failures / requests >= failure_ratio
//!                  and requests >= min_requests
//!        closed ───────────────────────────────────────► open
//!          ▲                                           │  ▲
//!          │ probe succeeds          open_until passes:│  │ probe fails
//!          │                    one caller takes the   │  │
//!          │                    probe (conditional)    ▼  │
//!          └──────────────────────────────────────── half_open
//!                                        probe_until passes (holder crashed):
//!                                        the next caller takes the probe over
//! ```
//!
//! - **closed**: deliveries go ahead. Each outcome is `ADD`ed to `request_count` /
//!   `failure_count` of the current fixed window, on condition that the window is still current.
//!   Once the window is older than `window`, one conditional write starts a new window; an
//!   instance that loses that race adds its outcome into the window the winner started. After a
//!   failure that brings the window over the policy's threshold, a write conditional on "still
//!   closed, same window" opens the circuit with `open_until = now + open_for`.
//! - **open**: callers are told to defer until `open_until`. The first caller at or after it
//!   moves the circuit to half-open with a conditional write, which only one caller can win.
//! - **half_open**: one delivery (the probe) is in flight; everyone else defers until
//!   `probe_until`. The probe's success closes the circuit with a fresh window and zero counts;
//!   its failure opens it again for `open_for`. A probe never recorded (its holder crashed) lapses
//!   at `probe_until`, after which the next caller takes the probe over.
//!
//! Outcomes that arrive after the state they were permitted under has gone (a delivery permitted
//! while closed finishing after the circuit opened, a probe that outlived its lease and was taken
//! over) are dropped: the circuit has already moved on from what they describe. A probe carries
//! its lease (`probe_until`) as its token, and settles the circuit only while that lease is the
//! current one.
//!
//! Times are epoch milliseconds of the caller's `now`; the instances' clocks are assumed to agree
//! to well within the durations of the policy. Every DynamoDB failure is `Retryable`; losing a
//! conditional write is not a failure, only news that another instance got there first.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::error::Result;
use crate::state::circuits::{
    Changed, CircuitChange, CircuitRecord, CircuitState, CircuitStore, DynamoCircuits,
};
use crate::state::table::epoch_millis;
use crate::telemetry;

/// Conditional writes one outcome may lose in a row before it is given up; losing twice already
/// takes a third instance starting a window in between.
const ATTEMPTS: usize = 3;

/// When a circuit opens and how it recovers.
///
/// The default opens at 50 % failures over at least 10 requests in a 60 s window, for 30 s, with
/// a 30 s probe lease. Convoy opens at 70 %; this errs earlier because opening costs little here
/// (a deferred delivery waits on the queue, it is not lost) while staying closed keeps sending
/// every other delivery, and its retries, into an endpoint that is failing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CircuitPolicy {
    /// Share of failed requests in a window (0.0 to 1.0) at which the circuit opens.
    pub failure_ratio: f64,
    /// Fewest requests in a window before its ratio counts, so a few early failures cannot
    /// open the circuit on their own.
    pub min_requests: u32,
    /// Length of the fixed counting window; older outcomes stop counting.
    pub window: Duration,
    /// How long an opened circuit defers every delivery before one probe may try.
    pub open_for: Duration,
    /// How long a probe may stay unrecorded before another caller takes it over; should exceed
    /// the delivery timeout, so a probe still in flight is not joined by a second one.
    pub probe_lease: Duration,
}

impl Default for CircuitPolicy {
    fn default() -> Self {
        Self {
            failure_ratio: 0.5,
            min_requests: 10,
            window: Duration::from_secs(60),
            open_for: Duration::from_secs(30),
            probe_lease: Duration::from_secs(30),
        }
    }
}

/// Whether a delivery may go now; hand it back to [`CircuitBreaker::record`] with the outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Permit {
    /// Closed: go ahead.
    Closed,
    /// Half-open: this caller is the one probe, and its outcome decides the circuit.
    Probe {
        /// The end of its lease (`probe_until`, epoch ms), which no later probe shares: the
        /// outcome counts only while this lease is the current one.
        lease: u64,
    },
    /// Open: defer the delivery until then.
    Open {
        /// How long from `now` until a delivery may be tried again.
        retry_after: Duration,
    },
}

/// Circuits, one record per endpoint, shared by all instances through a [`CircuitStore`].
#[derive(Clone)]
pub struct CircuitBreaker {
    store: Arc<dyn CircuitStore>,
    policy: CircuitPolicy,
}

impl std::fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// The circuit as stored; times are epoch milliseconds. A missing item is a closed circuit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed,
    Open { until: u64 },
    HalfOpen { until: u64 },
}

/// What a permit request must do, given the stored state.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Decision {
    /// Answer without writing.
    Grant(Permit),
    /// Try to become the probe.
    TakeProbe,
}

impl CircuitBreaker {
    /// Circuits in the DynamoDB table `table`, opened and recovered per `policy`.
    pub fn new(
        ddb: aws_sdk_dynamodb::Client,
        table: impl Into<String>,
        policy: CircuitPolicy,
    ) -> Self {
        Self::over(Arc::new(DynamoCircuits::new(ddb, table)), policy)
    }

    /// Circuits in `store`, opened and recovered per `policy`.
    pub fn over(store: Arc<dyn CircuitStore>, policy: CircuitPolicy) -> Self {
        Self { store, policy }
    }

    /// May a delivery to `endpoint` go now? `now` is passed in so tests control time
    /// (production passes `SystemTime::now()`). Nothing is written unless a probe is due; then
    /// the caller whose conditional write applies is the probe.
    pub async fn permit(&self, endpoint: &str, now: SystemTime) -> Result<Permit> {
        let now_ms = epoch_millis(now);
        let state = State::of(&self.store.load(endpoint).await?);
        match decide(state, now_ms) {
            Decision::Grant(permit) => Ok(permit),
            Decision::TakeProbe => match self.take_probe(endpoint, now).await? {
                Changed::Applied(record) => Ok(Permit::Probe {
                    lease: record.probe_until.unwrap_or_default(),
                }),
                // Someone else got there first: answer from what they left.
                Changed::Lost(current) => Ok(match decide(State::of(&current), now_ms) {
                    Decision::Grant(permit) => permit,
                    Decision::TakeProbe => Permit::Open {
                        retry_after: self.policy.probe_lease,
                    },
                }),
            },
        }
    }

    /// Records the outcome of a delivery made under `permit`. An `Open` permit made no delivery,
    /// so there is nothing to record.
    pub async fn record(
        &self,
        endpoint: &str,
        permit: &Permit,
        success: bool,
        now: SystemTime,
    ) -> Result<()> {
        match permit {
            Permit::Closed => self.count(endpoint, success, now).await,
            Permit::Probe { lease } => self.settle_probe(endpoint, *lease, success, now).await,
            Permit::Open { .. } => Ok(()),
        }
    }

    /// Moves an open circuit past `open_until`, or a half-open one whose probe lapsed, to
    /// half-open with a fresh lease. Of concurrent callers only one change applies.
    async fn take_probe(&self, endpoint: &str, now: SystemTime) -> Result<Changed> {
        let change = CircuitChange::TakeProbe {
            now: epoch_millis(now),
            probe_until: after(now, self.policy.probe_lease),
        };
        let changed = self.store.change(endpoint, change, now).await?;
        if matches!(changed, Changed::Applied(_)) {
            telemetry::count_circuit_change(endpoint, "half-open");
        }
        Ok(changed)
    }

    /// Closes the circuit on the probe's success, reopens it on its failure. Conditional on still
    /// being half-open under this probe's `lease`, so a probe settled late cannot undo what another
    /// probe decided, nor decide for one that holds the lease now.
    async fn settle_probe(
        &self,
        endpoint: &str,
        lease: u64,
        success: bool,
        now: SystemTime,
    ) -> Result<()> {
        let change = CircuitChange::SettleProbe {
            lease,
            success,
            now: epoch_millis(now),
            open_until: after(now, self.policy.open_for),
        };
        if let Changed::Applied(_) = self.store.change(endpoint, change, now).await? {
            let state = if success { "closed" } else { "open" };
            telemetry::count_circuit_change(endpoint, state);
        }
        Ok(())
    }

    /// Counts an outcome into the current window of a closed circuit (starting a window when
    /// there is none or it is stale), then opens the circuit if a failure tipped the window.
    async fn count(&self, endpoint: &str, success: bool, now: SystemTime) -> Result<()> {
        let failed = !success;
        let floor = epoch_millis(now).saturating_sub(millis(self.policy.window));
        for _ in 0..ATTEMPTS {
            let count = CircuitChange::Count { failed, floor };
            let counted = match self.store.change(endpoint, count, now).await? {
                Changed::Applied(record) => record,
                // Closed (or no record) but the window is stale: start one with this outcome.
                Changed::Lost(current) if State::of(&current) == State::Closed => {
                    let start = CircuitChange::StartWindow {
                        failed,
                        floor,
                        now: epoch_millis(now),
                    };
                    match self.store.change(endpoint, start, now).await? {
                        Changed::Applied(record) => record,
                        // Another instance started it first: count into theirs.
                        Changed::Lost(_) => continue,
                    }
                }
                // Open or half-open: a late outcome of a delivery permitted before it opened.
                Changed::Lost(_) => return Ok(()),
            };
            if failed {
                self.open_if_tipped(endpoint, &counted, now).await?;
            }
            return Ok(());
        }
        tracing::warn!(
            endpoint,
            "circuit outcome dropped: the window kept changing"
        );
        Ok(())
    }

    /// Opens the circuit when the window `counted` (as the count left it) is over the threshold,
    /// on condition that it is still closed in that same window.
    async fn open_if_tipped(
        &self,
        endpoint: &str,
        counted: &CircuitRecord,
        now: SystemTime,
    ) -> Result<()> {
        if !tipped(&self.policy, counted.request_count, counted.failure_count) {
            return Ok(());
        }
        let Some(window_start) = counted.window_start else {
            return Ok(());
        };
        let open = CircuitChange::Open {
            window_start,
            open_until: after(now, self.policy.open_for),
        };
        // Lost: another instance opened it already, or a new window began.
        if let Changed::Applied(_) = self.store.change(endpoint, open, now).await? {
            tracing::warn!(endpoint, "circuit opened");
            telemetry::count_circuit_change(endpoint, "open");
        }
        Ok(())
    }
}

impl State {
    /// The state a record stands for; a missing record is closed.
    fn of(record: &CircuitRecord) -> Self {
        match record.state {
            Some(CircuitState::Open) => Self::Open {
                until: record.open_until.unwrap_or_default(),
            },
            Some(CircuitState::HalfOpen) => Self::HalfOpen {
                until: record.probe_until.unwrap_or_default(),
            },
            Some(CircuitState::Closed) | None => Self::Closed,
        }
    }
}

/// What a caller at `now_ms` may do under `state`.
fn decide(state: State, now_ms: u64) -> Decision {
    match state {
        State::Closed => Decision::Grant(Permit::Closed),
        State::Open { until } | State::HalfOpen { until } if now_ms < until => {
            Decision::Grant(Permit::Open {
                retry_after: Duration::from_millis(until - now_ms),
            })
        }
        State::Open { .. } | State::HalfOpen { .. } => Decision::TakeProbe,
    }
}

/// Whether a window with these counts opens the circuit.
fn tipped(policy: &CircuitPolicy, requests: u64, failures: u64) -> bool {
    requests > 0
        && requests >= u64::from(policy.min_requests)
        && failures as f64 / requests as f64 >= policy.failure_ratio
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Epoch milliseconds of `now + duration`.
fn after(now: SystemTime, duration: Duration) -> u64 {
    epoch_millis(now).saturating_add(millis(duration))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> CircuitPolicy {
        CircuitPolicy::default()
    }

    #[test]
    fn a_window_tips_only_at_the_ratio_over_enough_requests() {
        let p = policy();
        assert!(!tipped(&p, 9, 9), "below min_requests even at 100 %");
        assert!(!tipped(&p, 10, 4));
        assert!(tipped(&p, 10, 5), "the ratio itself opens");
        assert!(tipped(&p, 12, 12));
        assert!(!tipped(&p, 0, 0));
        let convoy = CircuitPolicy {
            failure_ratio: 0.7,
            ..p
        };
        assert!(tipped(&convoy, 10, 7), "7/10 is exactly 70 %");
        assert!(!tipped(&convoy, 10, 6));
        let eager = CircuitPolicy {
            min_requests: 0,
            ..p
        };
        assert!(!tipped(&eager, 0, 0), "no requests, nothing to judge");
    }

    #[test]
    fn open_and_half_open_defer_until_their_deadline_then_offer_the_probe() {
        assert_eq!(decide(State::Closed, 5), Decision::Grant(Permit::Closed));
        assert_eq!(
            decide(State::Open { until: 10_000 }, 4_000),
            Decision::Grant(Permit::Open {
                retry_after: Duration::from_secs(6)
            })
        );
        assert_eq!(
            decide(State::HalfOpen { until: 10_000 }, 9_999),
            Decision::Grant(Permit::Open {
                retry_after: Duration::from_millis(1)
            })
        );
        assert_eq!(
            decide(State::Open { until: 10_000 }, 10_000),
            Decision::TakeProbe
        );
        assert_eq!(
            decide(State::HalfOpen { until: 10_000 }, 10_001),
            Decision::TakeProbe
        );
    }

    use crate::state::circuits::MemoryCircuits;

    const ENDPOINT: &str = "crm";
    const SECOND: Duration = Duration::from_secs(1);

    /// Two instances sharing circuits in memory; a probe lease unlike `open_for`.
    fn two_instances() -> (CircuitBreaker, CircuitBreaker) {
        let store = Arc::new(MemoryCircuits::default());
        let policy = CircuitPolicy {
            probe_lease: 20 * SECOND,
            ..policy()
        };
        (
            CircuitBreaker::over(store.clone(), policy),
            CircuitBreaker::over(store, policy),
        )
    }

    async fn deliver(breaker: &CircuitBreaker, success: bool, now: SystemTime) {
        let permit = breaker.permit(ENDPOINT, now).await.unwrap();
        assert_eq!(permit, Permit::Closed, "a delivery at {now:?}");
        breaker
            .record(ENDPOINT, &permit, success, now)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn failures_of_two_instances_open_it_and_both_defer() {
        let (a, b) = two_instances();
        let t0 = SystemTime::now();
        for i in 0..9 {
            deliver(if i % 2 == 0 { &a } else { &b }, false, t0).await;
        }
        assert_eq!(a.permit(ENDPOINT, t0).await.unwrap(), Permit::Closed);
        deliver(&b, false, t0).await;
        let open = Permit::Open {
            retry_after: 30 * SECOND,
        };
        assert_eq!(a.permit(ENDPOINT, t0).await.unwrap(), open);
        assert_eq!(b.permit(ENDPOINT, t0).await.unwrap(), open);
    }

    #[tokio::test]
    async fn one_caller_probes_its_outcome_decides_and_a_lapsed_probe_is_taken_over() {
        let (a, b) = two_instances();
        let t0 = SystemTime::now();
        for _ in 0..10 {
            deliver(&a, false, t0).await;
        }
        let t1 = t0 + 30 * SECOND;
        let probe = a.permit(ENDPOINT, t1).await.unwrap();
        assert!(matches!(probe, Permit::Probe { .. }), "{probe:?}");
        assert_eq!(
            b.permit(ENDPOINT, t1).await.unwrap(),
            Permit::Open {
                retry_after: 20 * SECOND
            },
            "one probe at a time"
        );
        // The probe fails: open again for `open_for`.
        a.record(ENDPOINT, &probe, false, t1).await.unwrap();
        assert_eq!(
            b.permit(ENDPOINT, t1).await.unwrap(),
            Permit::Open {
                retry_after: 30 * SECOND
            }
        );
        // The next probe's holder crashes; after its lease another caller takes it over, and
        // the first one's late outcome no longer counts.
        let t2 = t1 + 30 * SECOND;
        let crashed = a.permit(ENDPOINT, t2).await.unwrap();
        let t3 = t2 + 20 * SECOND;
        let taken = b.permit(ENDPOINT, t3).await.unwrap();
        assert!(matches!(taken, Permit::Probe { .. }) && taken != crashed);
        a.record(ENDPOINT, &crashed, true, t3).await.unwrap();
        assert!(matches!(
            a.permit(ENDPOINT, t3).await.unwrap(),
            Permit::Open { .. }
        ));
        // The current probe succeeds: closed, with a fresh window.
        b.record(ENDPOINT, &taken, true, t3).await.unwrap();
        assert_eq!(a.permit(ENDPOINT, t3).await.unwrap(), Permit::Closed);
        for _ in 0..9 {
            deliver(&a, false, t3).await;
        }
        assert_eq!(a.permit(ENDPOINT, t3).await.unwrap(), Permit::Closed);
    }

    #[tokio::test]
    async fn a_new_window_forgets_the_old_failures() {
        let (a, _) = two_instances();
        let t0 = SystemTime::now();
        for _ in 0..9 {
            deliver(&a, false, t0).await;
        }
        let t1 = t0 + 61 * SECOND;
        deliver(&a, false, t1).await;
        assert_eq!(
            a.permit(ENDPOINT, t1).await.unwrap(),
            Permit::Closed,
            "one failure in the new window"
        );
    }
}

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

use std::time::{Duration, SystemTime};

use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{ReturnValue, ReturnValuesOnConditionCheckFailure};

use crate::error::Result;
use crate::state::table::{self, epoch_millis, epoch_secs, n, s, Item, EXPIRES_AT};

const SORT_KEY: &str = "circuit";
const CLOSED: &str = "closed";
const OPEN: &str = "open";
const HALF_OPEN: &str = "half_open";

/// How long an endpoint's record outlives its last write: long enough to outlast any outage
/// worth remembering, short enough that retired endpoints leave the table.
const RECORD_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

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

/// Circuits in the state table, one item per endpoint, shared by all instances.
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    ddb: aws_sdk_dynamodb::Client,
    table: String,
    policy: CircuitPolicy,
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

/// How a conditional write went.
enum Written {
    /// It applied; the item as it is now.
    Applied(Item),
    /// Its condition failed; the item as it was (empty when there is none).
    Lost(Item),
}

impl CircuitBreaker {
    /// Circuits in `table`, opened and recovered per `policy`.
    pub fn new(
        ddb: aws_sdk_dynamodb::Client,
        table: impl Into<String>,
        policy: CircuitPolicy,
    ) -> Self {
        Self {
            ddb,
            table: table.into(),
            policy,
        }
    }

    /// May a delivery to `endpoint` go now? `now` is passed in so tests control time
    /// (production passes `SystemTime::now()`). Nothing is written unless a probe is due; then
    /// the caller whose conditional write applies is the probe.
    pub async fn permit(&self, endpoint: &str, now: SystemTime) -> Result<Permit> {
        let now_ms = epoch_millis(now);
        let state = self.load(endpoint).await?;
        match decide(state, now_ms) {
            Decision::Grant(permit) => Ok(permit),
            Decision::TakeProbe => match self.take_probe(endpoint, now).await? {
                Written::Applied(item) => Ok(Permit::Probe {
                    lease: number(&item, "probe_until"),
                }),
                // Someone else got there first: answer from what they left.
                Written::Lost(current) => Ok(match decide(State::of(&current), now_ms) {
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

    /// The stored state, read strongly consistent so a just-opened circuit is seen at once.
    async fn load(&self, endpoint: &str) -> Result<State> {
        let out = self
            .ddb
            .get_item()
            .table_name(&self.table)
            .key("pk", s(&record_key(endpoint)))
            .key("sk", s(SORT_KEY))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| crate::aws::unavailable("read the circuit", e))?;
        Ok(State::of(&out.item.unwrap_or_default()))
    }

    /// Moves an open circuit past `open_until`, or a half-open one whose probe lapsed, to
    /// half-open with a fresh lease. Of concurrent callers only one write applies.
    async fn take_probe(&self, endpoint: &str, now: SystemTime) -> Result<Written> {
        let request = self
            .update(endpoint, now)
            .update_expression(
                "SET #state = :half_open, probe_until = :until, #exp = :exp REMOVE open_until",
            )
            .condition_expression(
                "(#state = :open AND open_until <= :now) OR (#state = :half_open AND probe_until <= :now)",
            )
            .expression_attribute_values(":open", s(OPEN))
            .expression_attribute_values(":half_open", s(HALF_OPEN))
            .expression_attribute_values(":now", n(epoch_millis(now)))
            .expression_attribute_values(":until", n(after(now, self.policy.probe_lease)));
        self.apply(request, "take the circuit probe").await
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
        let request = self
            .update(endpoint, now)
            .condition_expression("#state = :half_open AND probe_until = :lease")
            .expression_attribute_values(":half_open", s(HALF_OPEN))
            .expression_attribute_values(":lease", n(lease));
        let request = if success {
            request
                .update_expression(
                    "SET #state = :closed, window_start = :now, request_count = :zero, \
                     failure_count = :zero, #exp = :exp REMOVE open_until, probe_until",
                )
                .expression_attribute_values(":closed", s(CLOSED))
                .expression_attribute_values(":now", n(epoch_millis(now)))
                .expression_attribute_values(":zero", n(0))
        } else {
            request
                .update_expression(
                    "SET #state = :open, open_until = :until, #exp = :exp REMOVE probe_until",
                )
                .expression_attribute_values(":open", s(OPEN))
                .expression_attribute_values(":until", n(after(now, self.policy.open_for)))
        };
        self.apply(request, "settle the circuit probe").await?;
        Ok(())
    }

    /// Counts an outcome into the current window of a closed circuit (starting a window when
    /// there is none or it is stale), then opens the circuit if a failure tipped the window.
    async fn count(&self, endpoint: &str, success: bool, now: SystemTime) -> Result<()> {
        let failed = u64::from(!success);
        let floor = epoch_millis(now).saturating_sub(millis(self.policy.window));
        for _ in 0..ATTEMPTS {
            let add = self
                .update(endpoint, now)
                .update_expression("ADD request_count :one, failure_count :failed SET #exp = :exp")
                .condition_expression("#state = :closed AND window_start > :floor")
                .expression_attribute_values(":closed", s(CLOSED))
                .expression_attribute_values(":floor", n(floor))
                .expression_attribute_values(":one", n(1))
                .expression_attribute_values(":failed", n(failed));
            let counted = match self.apply(add, "count the delivery").await? {
                Written::Applied(item) => item,
                // Closed (or no record) but the window is stale: start one with this outcome.
                Written::Lost(current) if State::of(&current) == State::Closed => {
                    let start = self
                        .update(endpoint, now)
                        .update_expression(
                            "SET #state = :closed, window_start = :now, request_count = :one, \
                             failure_count = :failed, #exp = :exp",
                        )
                        .condition_expression(
                            "attribute_not_exists(#state) OR (#state = :closed AND window_start <= :floor)",
                        )
                        .expression_attribute_values(":closed", s(CLOSED))
                        .expression_attribute_values(":floor", n(floor))
                        .expression_attribute_values(":now", n(epoch_millis(now)))
                        .expression_attribute_values(":one", n(1))
                        .expression_attribute_values(":failed", n(failed));
                    match self.apply(start, "start a circuit window").await? {
                        Written::Applied(item) => item,
                        // Another instance started it first: count into theirs.
                        Written::Lost(_) => continue,
                    }
                }
                // Open or half-open: a late outcome of a delivery permitted before it opened.
                Written::Lost(_) => return Ok(()),
            };
            if !success {
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
    async fn open_if_tipped(&self, endpoint: &str, counted: &Item, now: SystemTime) -> Result<()> {
        let (requests, failures) = (
            number(counted, "request_count"),
            number(counted, "failure_count"),
        );
        if !tipped(&self.policy, requests, failures) {
            return Ok(());
        }
        let Some(window) = counted.get("window_start") else {
            return Ok(());
        };
        let request = self
            .update(endpoint, now)
            .update_expression("SET #state = :open, open_until = :until, #exp = :exp")
            .condition_expression("#state = :closed AND window_start = :window")
            .expression_attribute_values(":closed", s(CLOSED))
            .expression_attribute_values(":window", window.clone())
            .expression_attribute_values(":open", s(OPEN))
            .expression_attribute_values(":until", n(after(now, self.policy.open_for)));
        // Lost: another instance opened it already, or a new window began.
        self.apply(request, "open the circuit").await?;
        Ok(())
    }

    /// An update of `endpoint`'s item that also renews its TTL; every expression built on it
    /// uses `#state` and `#exp`.
    fn update(&self, endpoint: &str, now: SystemTime) -> UpdateItemFluentBuilder {
        self.ddb
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&record_key(endpoint)))
            .key("sk", s(SORT_KEY))
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#exp", EXPIRES_AT)
            .expression_attribute_values(":exp", n(epoch_secs(now) + RECORD_TTL.as_secs()))
    }

    /// Sends a conditional update, telling a lost condition apart from a failure.
    async fn apply(&self, request: UpdateItemFluentBuilder, what: &str) -> Result<Written> {
        let result = request
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => Ok(Written::Applied(out.attributes.unwrap_or_default())),
            Err(e) => match e.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(lost)) => {
                    Ok(Written::Lost(lost.item.clone().unwrap_or_default()))
                }
                _ => Err(crate::aws::unavailable(what, e)),
            },
        }
    }
}

impl State {
    /// Reads the state from an item; a missing item, or one in no known state, is closed, so a
    /// damaged record lets deliveries through rather than holding them forever.
    fn of(item: &Item) -> Self {
        match table::text(item, "state") {
            Some(OPEN) => Self::Open {
                until: number(item, "open_until"),
            },
            Some(HALF_OPEN) => Self::HalfOpen {
                until: number(item, "probe_until"),
            },
            _ => Self::Closed,
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

/// The item's partition key.
fn record_key(endpoint: &str) -> String {
    format!("circuit#{endpoint}")
}

/// A number attribute, 0 when absent or malformed.
fn number(item: &Item, name: &str) -> u64 {
    table::number(item, name).unwrap_or_default()
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

    #[test]
    fn stored_state_is_read_back_and_unknown_state_counts_as_closed() {
        let item = |pairs: &[(&str, aws_sdk_dynamodb::types::AttributeValue)]| -> Item {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect()
        };
        assert_eq!(State::of(&Item::new()), State::Closed);
        assert_eq!(
            State::of(&item(&[("state", s(OPEN)), ("open_until", n(42))])),
            State::Open { until: 42 }
        );
        assert_eq!(
            State::of(&item(&[("state", s(HALF_OPEN)), ("probe_until", n(7))])),
            State::HalfOpen { until: 7 }
        );
        assert_eq!(State::of(&item(&[("state", s(CLOSED))])), State::Closed);
        assert_eq!(State::of(&item(&[("state", s("garbled"))])), State::Closed);
    }

    #[test]
    fn records_are_keyed_per_endpoint() {
        assert_eq!(record_key("crm"), "circuit#crm");
        assert_ne!(record_key("a"), record_key("b"));
    }
}

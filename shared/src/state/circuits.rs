//! Circuit breaker records, one per forwarding endpoint: the store behind
//! [`crate::outbound::forward::circuit::CircuitBreaker`], which decides what each change means.
//!
//! Every change is one conditional write; the condition and the change of each are stated once,
//! in [`CircuitChange`], and both stores apply them the same way. Times are epoch milliseconds.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{ReturnValue, ReturnValuesOnConditionCheckFailure};

use super::records::CIRCUIT;
use super::table::{self, epoch_secs, n, s, Item, EXPIRES_AT};
use super::StoreFuture;

/// How long an endpoint's record outlives its last write: long enough to outlast any outage
/// worth remembering, short enough that retired endpoints leave the table.
const RECORD_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

const CLOSED: &str = "closed";
const OPEN: &str = "open";
const HALF_OPEN: &str = "half_open";

/// The circuit as stored. A missing record is a closed circuit with no window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CircuitRecord {
    /// Where it stands; `None` when nothing was ever stored.
    pub state: Option<CircuitState>,
    /// When the closed circuit's counting window began.
    pub window_start: Option<u64>,
    /// Requests counted in that window.
    pub request_count: u64,
    /// Failures counted in that window.
    pub failure_count: u64,
    /// Until when an open circuit defers deliveries.
    pub open_until: Option<u64>,
    /// Until when a half-open circuit's probe holds its lease.
    pub probe_until: Option<u64>,
}

/// The three states of a circuit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    /// Deliveries go ahead and are counted.
    Closed,
    /// Deliveries are deferred until `open_until`.
    Open,
    /// One probe delivery is in flight until `probe_until`.
    HalfOpen,
}

impl CircuitState {
    fn as_str(self) -> &'static str {
        match self {
            Self::Closed => CLOSED,
            Self::Open => OPEN,
            Self::HalfOpen => HALF_OPEN,
        }
    }

    fn parse(text: &str) -> Option<Self> {
        [Self::Closed, Self::Open, Self::HalfOpen]
            .into_iter()
            .find(|state| state.as_str() == text)
    }
}

/// One conditional change of a circuit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitChange {
    /// If open past `open_until`, or half-open past `probe_until` (the probe lapsed), at `now`:
    /// half-open with a probe lease until `probe_until`.
    TakeProbe {
        /// The caller's time.
        now: u64,
        /// The new probe's lease.
        probe_until: u64,
    },
    /// If still half-open under the probe lease `lease`: closed with a fresh window from `now` on
    /// the probe's success, open until `open_until` on its failure.
    SettleProbe {
        /// The lease the probe was given.
        lease: u64,
        /// Whether the probe delivery succeeded.
        success: bool,
        /// The caller's time.
        now: u64,
        /// Until when a failed probe opens the circuit.
        open_until: u64,
    },
    /// If closed with a window that began after `floor`: one more request, and a failure when
    /// `failed`.
    Count {
        /// Whether the delivery failed.
        failed: bool,
        /// Windows that began at or before this are stale.
        floor: u64,
    },
    /// If never stored, or closed with a window at or before `floor`: a new window from `now`
    /// holding this one outcome.
    StartWindow {
        /// Whether the delivery failed.
        failed: bool,
        /// Windows that began at or before this are stale.
        floor: u64,
        /// The caller's time, the window's start.
        now: u64,
    },
    /// If still closed in the window that began at `window_start`: open until `open_until`.
    Open {
        /// The window whose counts tipped the circuit.
        window_start: u64,
        /// Until when it stays open.
        open_until: u64,
    },
}

/// How a conditional change went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Changed {
    /// It applied; the record as it is now.
    Applied(CircuitRecord),
    /// Its condition failed; the record as it is (the default when there is none).
    Lost(CircuitRecord),
}

/// The circuit records.
pub trait CircuitStore: Send + Sync {
    /// The record of `endpoint`, read strongly consistent so a just-opened circuit is seen at once.
    fn load<'a>(&'a self, endpoint: &'a str) -> StoreFuture<'a, CircuitRecord>;

    /// Applies `change` to the record of `endpoint` if its condition holds; `now` dates the write
    /// (the record's time-to-live runs from it).
    fn change<'a>(
        &'a self,
        endpoint: &'a str,
        change: CircuitChange,
        now: SystemTime,
    ) -> StoreFuture<'a, Changed>;
}

/// Circuits in the state table.
#[derive(Debug, Clone)]
pub(crate) struct DynamoCircuits {
    ddb: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoCircuits {
    /// Circuits in `table`.
    pub fn new(ddb: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            ddb,
            table: table.into(),
        }
    }

    /// An update of `endpoint`'s item that also renews its TTL; every expression built on it
    /// uses `#state` and `#exp`.
    fn update(&self, endpoint: &str, now: SystemTime) -> UpdateItemFluentBuilder {
        self.ddb
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&CIRCUIT.pk(endpoint)))
            .key("sk", s(CIRCUIT.sk))
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#exp", EXPIRES_AT)
            .expression_attribute_values(":exp", n(epoch_secs(now) + RECORD_TTL.as_secs()))
    }

    /// `change` as a DynamoDB conditional update.
    fn request(
        &self,
        endpoint: &str,
        change: CircuitChange,
        now: SystemTime,
    ) -> UpdateItemFluentBuilder {
        let update = self.update(endpoint, now);
        match change {
            CircuitChange::TakeProbe { now, probe_until } => update
                .update_expression(
                    "SET #state = :half_open, probe_until = :until, #exp = :exp REMOVE open_until",
                )
                .condition_expression(
                    "(#state = :open AND open_until <= :now) OR \
                     (#state = :half_open AND probe_until <= :now)",
                )
                .expression_attribute_values(":open", s(OPEN))
                .expression_attribute_values(":half_open", s(HALF_OPEN))
                .expression_attribute_values(":now", n(now))
                .expression_attribute_values(":until", n(probe_until)),
            CircuitChange::SettleProbe {
                lease,
                success,
                now,
                open_until,
            } => {
                let update = update
                    .condition_expression("#state = :half_open AND probe_until = :lease")
                    .expression_attribute_values(":half_open", s(HALF_OPEN))
                    .expression_attribute_values(":lease", n(lease));
                if success {
                    update
                        .update_expression(
                            "SET #state = :closed, window_start = :now, request_count = :zero, \
                             failure_count = :zero, #exp = :exp REMOVE open_until, probe_until",
                        )
                        .expression_attribute_values(":closed", s(CLOSED))
                        .expression_attribute_values(":now", n(now))
                        .expression_attribute_values(":zero", n(0))
                } else {
                    update
                        .update_expression(
                            "SET #state = :open, open_until = :until, #exp = :exp \
                             REMOVE probe_until",
                        )
                        .expression_attribute_values(":open", s(OPEN))
                        .expression_attribute_values(":until", n(open_until))
                }
            }
            CircuitChange::Count { failed, floor } => update
                .update_expression("ADD request_count :one, failure_count :failed SET #exp = :exp")
                .condition_expression("#state = :closed AND window_start > :floor")
                .expression_attribute_values(":closed", s(CLOSED))
                .expression_attribute_values(":floor", n(floor))
                .expression_attribute_values(":one", n(1))
                .expression_attribute_values(":failed", n(u64::from(failed))),
            CircuitChange::StartWindow { failed, floor, now } => update
                .update_expression(
                    "SET #state = :closed, window_start = :now, request_count = :one, \
                     failure_count = :failed, #exp = :exp",
                )
                .condition_expression(
                    "attribute_not_exists(#state) OR (#state = :closed AND window_start <= :floor)",
                )
                .expression_attribute_values(":closed", s(CLOSED))
                .expression_attribute_values(":floor", n(floor))
                .expression_attribute_values(":now", n(now))
                .expression_attribute_values(":one", n(1))
                .expression_attribute_values(":failed", n(u64::from(failed))),
            CircuitChange::Open {
                window_start,
                open_until,
            } => update
                .update_expression("SET #state = :open, open_until = :until, #exp = :exp")
                .condition_expression("#state = :closed AND window_start = :window")
                .expression_attribute_values(":closed", s(CLOSED))
                .expression_attribute_values(":window", n(window_start))
                .expression_attribute_values(":open", s(OPEN))
                .expression_attribute_values(":until", n(open_until)),
        }
    }
}

impl CircuitStore for DynamoCircuits {
    fn load<'a>(&'a self, endpoint: &'a str) -> StoreFuture<'a, CircuitRecord> {
        Box::pin(async move {
            let out = self
                .ddb
                .get_item()
                .table_name(&self.table)
                .key("pk", s(&CIRCUIT.pk(endpoint)))
                .key("sk", s(CIRCUIT.sk))
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| crate::aws::unavailable("read the circuit", e))?;
            Ok(read_record(&out.item.unwrap_or_default()))
        })
    }

    fn change<'a>(
        &'a self,
        endpoint: &'a str,
        change: CircuitChange,
        now: SystemTime,
    ) -> StoreFuture<'a, Changed> {
        Box::pin(async move {
            let result = self
                .request(endpoint, change, now)
                .return_values(ReturnValue::AllNew)
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .send()
                .await;
            match result {
                Ok(out) => Ok(Changed::Applied(read_record(
                    &out.attributes.unwrap_or_default(),
                ))),
                Err(e) => match e.as_service_error() {
                    Some(UpdateItemError::ConditionalCheckFailedException(lost)) => Ok(
                        Changed::Lost(read_record(&lost.item.clone().unwrap_or_default())),
                    ),
                    _ => Err(crate::aws::unavailable("change the circuit", e)),
                },
            }
        })
    }
}

/// A stored item as a record. An item in no known state reads as closed with its counts, so a
/// damaged record lets deliveries through rather than holding them forever.
fn read_record(item: &Item) -> CircuitRecord {
    CircuitRecord {
        state: table::text(item, "state")
            .map(|s| CircuitState::parse(s).unwrap_or(CircuitState::Closed)),
        window_start: table::number(item, "window_start"),
        request_count: table::number(item, "request_count").unwrap_or_default(),
        failure_count: table::number(item, "failure_count").unwrap_or_default(),
        open_until: table::number(item, "open_until"),
        probe_until: table::number(item, "probe_until"),
    }
}

/// Circuits in memory, for tests of the breaker's logic: one lock makes each change as atomic as
/// DynamoDB's conditional update, and the conditions are the same.
#[derive(Debug, Default)]
pub struct MemoryCircuits {
    records: Mutex<HashMap<String, CircuitRecord>>,
}

impl MemoryCircuits {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, CircuitRecord>> {
        self.records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Applies `change` to `record` when its condition holds; whether it did.
fn apply(record: &mut CircuitRecord, change: CircuitChange) -> bool {
    use CircuitState::{Closed, HalfOpen, Open};
    let at = |value: Option<u64>, bound: u64, cmp: fn(u64, u64) -> bool| {
        value.is_some_and(|v| cmp(v, bound))
    };
    match change {
        CircuitChange::TakeProbe { now, probe_until } => {
            let due = (record.state == Some(Open) && at(record.open_until, now, |v, b| v <= b))
                || (record.state == Some(HalfOpen) && at(record.probe_until, now, |v, b| v <= b));
            if due {
                record.state = Some(HalfOpen);
                record.probe_until = Some(probe_until);
                record.open_until = None;
            }
            due
        }
        CircuitChange::SettleProbe {
            lease,
            success,
            now,
            open_until,
        } => {
            let current = record.state == Some(HalfOpen) && record.probe_until == Some(lease);
            if current {
                record.probe_until = None;
                if success {
                    *record = CircuitRecord {
                        state: Some(Closed),
                        window_start: Some(now),
                        ..CircuitRecord::default()
                    };
                } else {
                    record.state = Some(Open);
                    record.open_until = Some(open_until);
                }
            }
            current
        }
        CircuitChange::Count { failed, floor } => {
            let current =
                record.state == Some(Closed) && at(record.window_start, floor, |v, b| v > b);
            if current {
                record.request_count += 1;
                record.failure_count += u64::from(failed);
            }
            current
        }
        CircuitChange::StartWindow { failed, floor, now } => {
            let stale = record.state.is_none()
                || (record.state == Some(Closed) && at(record.window_start, floor, |v, b| v <= b));
            if stale {
                record.state = Some(Closed);
                record.window_start = Some(now);
                record.request_count = 1;
                record.failure_count = u64::from(failed);
            }
            stale
        }
        CircuitChange::Open {
            window_start,
            open_until,
        } => {
            let same = record.state == Some(Closed) && record.window_start == Some(window_start);
            if same {
                record.state = Some(Open);
                record.open_until = Some(open_until);
            }
            same
        }
    }
}

impl CircuitStore for MemoryCircuits {
    fn load<'a>(&'a self, endpoint: &'a str) -> StoreFuture<'a, CircuitRecord> {
        let record = self.lock().get(endpoint).copied().unwrap_or_default();
        Box::pin(std::future::ready(Ok(record)))
    }

    fn change<'a>(
        &'a self,
        endpoint: &'a str,
        change: CircuitChange,
        _now: SystemTime,
    ) -> StoreFuture<'a, Changed> {
        let mut records = self.lock();
        let before = records.get(endpoint).copied().unwrap_or_default();
        let mut after = before;
        let changed = if apply(&mut after, change) {
            records.insert(endpoint.to_owned(), after);
            Changed::Applied(after)
        } else {
            Changed::Lost(before)
        };
        Box::pin(std::future::ready(Ok(changed)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_state_is_read_back_and_unknown_state_counts_as_closed() {
        let item = |pairs: &[(&str, aws_sdk_dynamodb::types::AttributeValue)]| -> Item {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect()
        };
        assert_eq!(read_record(&Item::new()), CircuitRecord::default());
        let open = read_record(&item(&[("state", s(OPEN)), ("open_until", n(42))]));
        assert_eq!(
            (open.state, open.open_until),
            (Some(CircuitState::Open), Some(42))
        );
        let garbled = read_record(&item(&[("state", s("garbled"))]));
        assert_eq!(garbled.state, Some(CircuitState::Closed));
    }

    #[test]
    fn records_are_keyed_per_endpoint() {
        assert_eq!(CIRCUIT.pk("crm"), "circuit#crm");
        assert_ne!(CIRCUIT.pk("a"), CIRCUIT.pk("b"));
    }
}

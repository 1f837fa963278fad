//! The processor: runs the actions for each queued event, concurrently with a bound, and reports
//! partial batch failures.
//!
//! A retryable failure reports the record failed (SQS delivers it again) after stretching its
//! visibility with a jittered exponential backoff; a permanent one sends it to the DLQ with its
//! reason and acknowledges it, so a poison message never blocks its batch. On a FIFO queue, once a
//! record of a message group fails, the rest of that group in the batch is reported failed too, so
//! order within the group holds.

pub mod backoff;
pub mod failure;
pub mod forwarding;
pub mod partner_event;
pub mod record;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_config::SdkConfig;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use futures_util::stream::{self, StreamExt};
use genesys_relay::actions::delivery_status::{self, StatusChecks};
use genesys_relay::actions::ActionDeps;
use genesys_relay::clock::Clock;
use genesys_relay::config::ProcessorConfig;
use genesys_relay::dead_letter::{self, Letter};
use genesys_relay::inbound::jobs::{JobQueue, SqsJobs};
use genesys_relay::state::claims::DynamoClaims;
use genesys_relay::state::conversations::{Conversations, DynamoConversations};
use genesys_relay::state::idempotency::{lease_until, Idempotency};
use genesys_relay::telemetry::{Function, Label};
use genesys_relay::{telemetry, Error};
use lambda_runtime::LambdaEvent;
use tracing::Instrument;

/// Clients and settings built once per cold start.
pub struct Deps {
    /// Validated settings.
    pub config: ProcessorConfig,
    /// For visibility backoff and the DLQ.
    pub sqs: aws_sdk_sqs::Client,
    /// For claim checks.
    pub s3: aws_sdk_s3::Client,
    /// Idempotency claims.
    pub idempotency: Idempotency,
    /// Per-conversation context of EventBridge events, and their order.
    pub conversations: Arc<dyn Conversations>,
    /// What the actions use.
    pub actions: ActionDeps,
    /// Where the processor's own jobs go (forwarding retries; status checks hold the same
    /// queue): the main queue.
    pub jobs: Arc<dyn JobQueue>,
    /// The time retry budgets are measured by (tests move it forward instead of waiting).
    pub clock: Clock,
}

impl Deps {
    /// Builds every client from one AWS configuration and one HTTP client (resolving the rules'
    /// wrap-up code names, see [`ActionDeps::new`]).
    pub async fn new(
        config: ProcessorConfig,
        aws: &SdkConfig,
        http: reqwest::Client,
    ) -> genesys_relay::Result<Self> {
        let ddb = aws_sdk_dynamodb::Client::new(aws);
        let sqs = aws_sdk_sqs::Client::new(aws);
        let jobs: Arc<dyn JobQueue> = Arc::new(SqsJobs::new(sqs.clone(), &config.queue_url));
        Ok(Self {
            s3: genesys_relay::aws::s3_client(aws),
            idempotency: Idempotency::for_actions(
                Arc::new(DynamoClaims::new(
                    ddb.clone(),
                    config.actions.table_name.clone(),
                )),
                &config.actions,
            ),
            conversations: Arc::new(DynamoConversations::new(
                ddb,
                config.actions.table_name.clone(),
                config.context_ttl,
            )),
            actions: ActionDeps::new(&config.actions, aws, http)
                .await?
                .with_status_checks(Some(StatusChecks::over(
                    Arc::clone(&jobs),
                    config.actions.status_check_schedule.clone(),
                ))),
            sqs,
            jobs,
            clock: genesys_relay::clock::system(),
            config,
        })
    }
}

/// A record SQS must deliver again, and how long it stays hidden first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retry {
    /// The record's message id.
    pub message_id: String,
    /// The visibility backoff chosen; `None` leaves the queue's own visibility timeout (a record
    /// deferred behind its message group, or one whose dead letter could not be written).
    pub delay: Option<Duration>,
}

/// Handles one batch; returns the records SQS must deliver again.
pub async fn handle(
    event: LambdaEvent<SqsEvent>,
    deps: &Deps,
) -> Result<SqsBatchResponse, lambda_runtime::Error> {
    let lease = lease_until(event.context.deadline);
    let mut response = SqsBatchResponse::default();
    for retry in run_batch(&event.payload.records, deps, lease).await {
        response.add_failure(retry.message_id);
    }
    Ok(response)
}

/// Runs the records of one batch, concurrently by message group; `lease` bounds each idempotency
/// claim. Returns the records to deliver again with the backoff chosen for each (already applied
/// to their visibility), so what was decided can be checked without waiting for it.
pub async fn run_batch(records: &[SqsMessage], deps: &Deps, lease: Duration) -> Vec<Retry> {
    let groups = message_groups(records);
    // The futures are made by an iterator, not a stream combinator, so the handler's future stays
    // `Send` for any caller that spawns it.
    let work: Vec<_> = groups
        .into_iter()
        .map(|group| process_group(group, deps, lease))
        .collect();
    stream::iter(work)
        .buffer_unordered(deps.config.concurrency)
        .flat_map(stream::iter)
        .collect()
        .await
}

/// Records in batch order, grouped by FIFO message group; on a standard queue every record is
/// its own group.
pub fn message_groups(records: &[SqsMessage]) -> Vec<Vec<&SqsMessage>> {
    let mut groups: Vec<(Option<&str>, Vec<&SqsMessage>)> = Vec::new();
    for record in records {
        match record.attributes.get("MessageGroupId").map(String::as_str) {
            Some(group) => match groups.iter_mut().find(|(g, _)| *g == Some(group)) {
                Some((_, members)) => members.push(record),
                None => groups.push((Some(group), vec![record])),
            },
            None => groups.push((None, vec![record])),
        }
    }
    groups.into_iter().map(|(_, members)| members).collect()
}

/// Processes a group in order; returns the records to deliver again.
async fn process_group(group: Vec<&SqsMessage>, deps: &Deps, lease: Duration) -> Vec<Retry> {
    let mut retries = Vec::new();
    for record in group {
        let message_id = record.message_id.clone().unwrap_or_default();
        if !retries.is_empty() {
            tracing::info!(message_id = %message_id, "earlier record of its message group failed; deferred");
            retries.push(Retry {
                message_id,
                delay: None,
            });
            continue;
        }
        // Every line about the record carries its message id and the X-Ray trace it came with
        // (the receiver's, through the message's AWSTraceHeader).
        let span = tracing::info_span!(
            "record",
            message_id = %message_id,
            trace = record
                .attributes
                .get("AWSTraceHeader")
                .map(String::as_str)
                .unwrap_or("")
        );
        if let Settled::Again(delay) = settle(record, deps, lease).instrument(span).await {
            retries.push(Retry { message_id, delay });
        }
    }
    retries
}

/// What became of a record.
enum Settled {
    /// Succeeded, or dead-lettered with its reason.
    Done,
    /// To be delivered again, after this backoff when one was chosen.
    Again(Option<Duration>),
}

/// Runs one record and decides what becomes of it.
async fn settle(record: &SqsMessage, deps: &Deps, lease: Duration) -> Settled {
    let id = record.message_id.as_deref().unwrap_or_default();
    let failure = match record::process(record, deps, lease).await {
        Ok(()) => return Settled::Done,
        Err(failure) => failure,
    };
    let delay = match &failure.error {
        // Not tried: it waits exactly its time.
        Error::Deferred { wait, .. } => (*wait).min(backoff::MAX_VISIBILITY),
        Error::Retryable { retry_after, .. } => backoff::visibility_delay(
            record::receive_count(record),
            *retry_after,
            deps.config.max_backoff,
            fastrand::f64(),
        ),
        Error::Permanent { .. } | Error::Rejected { .. } => {
            return dead_letter_record(record, &failure.action, &failure.error, deps).await;
        }
    };
    let queued_for = queued_for(record, (deps.clock)());
    if queued_for + delay > deps.config.retry_budget {
        let spent = Error::permanent(format!(
            "retried for {} s, and the retry budget (RETRY_BUDGET_SECS) is {} s; last failure: {}",
            queued_for.as_secs(),
            deps.config.retry_budget.as_secs(),
            failure.error
        ));
        return dead_letter_record(record, &failure.action, &spent, deps).await;
    }
    tracing::warn!(message_id = %id, action = %failure.action, reason = %failure.error, retry_in_secs = backoff::visibility_timeout_secs(delay), "will retry");
    telemetry::count_outcome(Function::Processor, &failure.action, Label::Retry);
    delay_visibility(record, delay, deps).await;
    Settled::Again(Some(delay))
}

/// How long the record's work has been due: since SQS's `SentTimestamp` (acceptance, or the
/// redrive that brought it back, which starts a new budget), or since a delayed job's own due
/// time when that is later (a status check or delivery waiting for its time is not failing).
fn queued_for(record: &SqsMessage, now: SystemTime) -> Duration {
    let sent_ms = record
        .attributes
        .get("SentTimestamp")
        .and_then(|ms| ms.parse::<u64>().ok());
    let attribute = |name: &str| {
        record
            .message_attributes
            .get(name)
            .and_then(|a| a.string_value.as_deref())
    };
    let due_ms = forwarding::job_of(record)
        .map(|job| job.not_before_ms)
        .or_else(|| {
            attribute(delivery_status::CHECK_ATTRIBUTE)
                .and_then(delivery_status::StatusCheck::parse)
                .map(|check| check.not_before_ms)
        });
    sent_ms
        .into_iter()
        .chain(due_ms)
        .max()
        .map(|ms| UNIX_EPOCH + Duration::from_millis(ms))
        .and_then(|since| now.duration_since(since).ok())
        .unwrap_or_default()
}

/// Sends the record to the DLQ with its reason; done with when stored, else (even that failed) it
/// comes back after the queue's visibility timeout and is tried again.
async fn dead_letter_record(
    record: &SqsMessage,
    action: &str,
    error: &Error,
    deps: &Deps,
) -> Settled {
    let id = record.message_id.as_deref().unwrap_or_default();
    let attributes = record
        .message_attributes
        .iter()
        .filter_map(|(name, value)| Some((name.clone(), value.string_value.clone()?)));
    let letter =
        Letter::new(record.body.as_deref().unwrap_or_default(), attributes).from_message(id);
    match dead_letter::send(&deps.sqs, &deps.config.dlq_url, letter, action, error).await {
        Ok(()) => {
            tracing::error!(message_id = %id, action, class = %error.class(), reason = %error, "dead-lettered");
            telemetry::count_outcome(Function::Processor, action, Label::DeadLettered);
            Settled::Done
        }
        Err(failure) => {
            tracing::error!(message_id = %id, reason = %failure, "could not dead-letter; will retry");
            Settled::Again(None)
        }
    }
}

async fn delay_visibility(record: &SqsMessage, delay: Duration, deps: &Deps) {
    let Some(receipt) = record.receipt_handle.as_deref() else {
        return;
    };
    let result = deps
        .sqs
        .change_message_visibility()
        .queue_url(&deps.config.queue_url)
        .receipt_handle(receipt)
        .visibility_timeout(backoff::visibility_timeout_secs(delay))
        .send()
        .await;
    if let Err(e) = result {
        // The message still comes back, after the queue's own visibility timeout.
        tracing::warn!(reason = %aws_sdk_sqs::error::DisplayErrorContext(&e), "could not delay the retry");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::event::sqs::SqsMessageAttribute;
    use genesys_relay::outbound::forward;

    fn record(sent_ms: u64, attribute: Option<(&str, String)>) -> SqsMessage {
        let mut record = SqsMessage::default();
        record
            .attributes
            .insert("SentTimestamp".into(), sent_ms.to_string());
        if let Some((name, value)) = attribute {
            let mut attribute = SqsMessageAttribute::default();
            attribute.string_value = Some(value);
            attribute.data_type = Some("String".into());
            record.message_attributes.insert(name.into(), attribute);
        }
        record
    }

    #[test]
    fn the_retry_budget_counts_from_when_the_work_is_due() {
        let sent_ms = 1_800_000_000_000;
        let now = UNIX_EPOCH + Duration::from_millis(sent_ms) + Duration::from_secs(6 * 3600 + 1);
        // An event: failing since it was queued.
        assert_eq!(
            queued_for(&record(sent_ms, None), now),
            Duration::from_secs(6 * 3600 + 1)
        );
        // A status check due six hours after it was queued has waited, not failed.
        let due = sent_ms + 6 * 3600 * 1000;
        let check = record(
            sent_ms,
            Some((delivery_status::CHECK_ATTRIBUTE, format!("SM1;5;{due}"))),
        );
        assert_eq!(queued_for(&check, now), Duration::from_secs(1));
        let job = record(sent_ms, Some((forward::ATTRIBUTE, format!("crm;3;{due}"))));
        assert_eq!(queued_for(&job, now), Duration::from_secs(1));
        // Not due yet: nothing spent.
        let early = UNIX_EPOCH + Duration::from_millis(sent_ms + 1000);
        assert_eq!(queued_for(&check, early), Duration::ZERO);
    }
}

//! Forwarding in the processor: one delivery per (event, endpoint), each retried on its own.
//!
//! A delivery that must wait (the retry schedule, an endpoint's Retry-After, an open circuit) is
//! put back on the queue as its own message, a *job* naming the endpoint, the attempt and the
//! time before which it must not run, and the original is acknowledged. So a failing endpoint
//! never holds back or repeats another, retries are not limited by the queue's receive count,
//! and an open circuit defers deliveries instead of dead-lettering them. SQS delays a message at
//! most 15 minutes; a job received early hides itself until its time.
//!
//! The event is forwarded as the queued payload's own text (a form body as a JSON object of its
//! fields). Every attempt ends [`WRAP_UP`] before the invocation's deadline at the latest, whatever
//! the endpoint's `timeoutSecs`: a slow endpoint then yields a retryable timeout, queued as its
//! own job like any other, instead of the invocation being stopped mid-batch.

use std::borrow::Cow;
use std::time::{Duration, SystemTime};

use aws_lambda_events::event::sqs::SqsMessage;
use aws_sdk_sqs::types::MessageAttributeValue;
use genesys_relay::actions::forward::{
    retry_delay, ForwardError, ForwardJob, Forwarder, NAME_PREFIX,
};
use genesys_relay::actions::{claim_content, run_once};
use genesys_relay::inbound::event::{EventKey, EventTime};
use genesys_relay::inbound::queue::{Envelope, MediaType, Source};
use genesys_relay::outbound::forward::envelope::RawEvent;
use genesys_relay::state::table::epoch_millis;
use genesys_relay::{dead_letter, telemetry, Error, Result};
use serde_json::{Map, Value};
use tokio::time::Instant;

use crate::failure::Failure;
use crate::Deps;
use genesys_relay::telemetry::{Function, Label};

/// The message attribute that makes a message a forwarding job: `endpoint;attempt;not-before-ms`.
pub const ATTRIBUTE: &str = "forward";

/// Longest delay SQS puts on a message.
const MAX_SQS_DELAY: Duration = Duration::from_secs(900);

/// Kept free between the end of the last attempt and the invocation's deadline, to record the
/// attempt (circuit, audit, claim) and queue its retry: a few round trips to DynamoDB and SQS,
/// with room for the SDK's own retries.
pub const WRAP_UP: Duration = Duration::from_secs(5);

/// When attempts must be over, for work that had `lease` left before the invocation's deadline
/// at `now`: [`WRAP_UP`] earlier (at once, when not even that is left).
pub fn attempt_deadline(now: Instant, lease: Duration) -> Instant {
    now + lease.saturating_sub(WRAP_UP)
}

/// A pending delivery to one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// Endpoint name.
    pub endpoint: String,
    /// The attempt it will be.
    pub attempt: u32,
    /// Epoch ms before which it must not run.
    pub not_before_ms: u64,
}

impl Job {
    /// Reads the attribute; `None` when malformed (the message is then processed as an event).
    pub fn parse(value: &str) -> Option<Self> {
        let mut parts = value.split(';');
        let endpoint = parts.next().filter(|e| !e.is_empty())?.to_owned();
        let attempt = parts.next()?.parse().ok()?;
        let not_before_ms = parts.next()?.parse().ok()?;
        parts.next().is_none().then_some(Self {
            endpoint,
            attempt,
            not_before_ms,
        })
    }

    fn encode(&self) -> String {
        format!("{};{};{}", self.endpoint, self.attempt, self.not_before_ms)
    }
}

/// The event type endpoints subscribe to: the Genesys topic when the body names one.
pub fn event_type(envelope: &Envelope, event: &Value) -> String {
    match envelope.source {
        Source::TwilioStatus => "twilio.message-status".to_owned(),
        Source::GenesysWebhook | Source::GenesysEventBridge => event
            .get("topicName")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .unwrap_or("genesys.webhook")
            .to_owned(),
    }
}

fn is_form(envelope: &Envelope) -> bool {
    envelope.content_type == MediaType::Form
}

fn form_fields(payload: &str) -> Value {
    let fields: Map<String, Value> = form_urlencoded::parse(payload.as_bytes())
        .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
        .collect();
    Value::Object(fields)
}

/// The event as JSON, for choosing endpoints and reading its time: the body parsed, or a form's
/// fields as an object. Not what is delivered (see [`event_text`]): parsing rounds large numbers
/// and keeps one of duplicate keys.
pub fn event_value(envelope: &Envelope, payload: &str) -> Value {
    if is_form(envelope) {
        return form_fields(payload);
    }
    serde_json::from_str(payload).unwrap_or(Value::String(payload.to_owned()))
}

/// The event's JSON text as delivered: a JSON body exactly as queued, a form's fields as a JSON
/// object.
pub fn event_text<'a>(envelope: &Envelope, payload: &'a str) -> Cow<'a, str> {
    if is_form(envelope) {
        Cow::Owned(form_fields(payload).to_string())
    } else {
        Cow::Borrowed(payload)
    }
}

/// First deliveries of an event to every endpoint that wants it.
pub async fn fan_out(
    record: &SqsMessage,
    envelope: &Envelope,
    payload: &str,
    deps: &Deps,
    lease: Duration,
) -> Result<(), Failure> {
    let Some(forwarder) = &deps.actions.forward else {
        return Ok(());
    };
    let deadline = attempt_deadline(Instant::now(), lease);
    let event = event_value(envelope, payload);
    let text = event_text(envelope, payload);
    let kind = event_type(envelope, &event);
    for endpoint in forwarder.endpoints_for(&kind) {
        let job = Job {
            endpoint: endpoint.to_owned(),
            attempt: 1,
            not_before_ms: 0,
        };
        let target = Target {
            event: &event,
            text: &text,
            kind: &kind,
            deadline,
        };
        deliver(
            record, envelope, payload, target, &job, forwarder, deps, lease,
        )
        .await?;
    }
    Ok(())
}

/// A job taken from the queue: waits if it is early, else delivers.
pub async fn run_job(
    record: &SqsMessage,
    envelope: &Envelope,
    payload: &str,
    job: Job,
    deps: &Deps,
    lease: Duration,
) -> Result<(), Failure> {
    let action = format!("{NAME_PREFIX}{}", job.endpoint);
    let Some(forwarder) = &deps.actions.forward else {
        return Err(Failure {
            action,
            error: Error::permanent("forwarding is not configured"),
        });
    };
    let deadline = attempt_deadline(Instant::now(), lease);
    let now = epoch_millis(SystemTime::now());
    if job.not_before_ms > now {
        let wait = Duration::from_millis(job.not_before_ms - now);
        return Err(Failure {
            action,
            error: Error::Retryable {
                message: "not due yet".into(),
                retry_after: Some(wait),
            },
        });
    }
    let event = event_value(envelope, payload);
    let text = event_text(envelope, payload);
    let kind = event_type(envelope, &event);
    let target = Target {
        event: &event,
        text: &text,
        kind: &kind,
        deadline,
    };
    deliver(
        record, envelope, payload, target, &job, forwarder, deps, lease,
    )
    .await
}

/// What one delivery carries and by when its attempt must end.
#[derive(Clone, Copy)]
struct Target<'a> {
    /// The event parsed, for its time.
    event: &'a Value,
    /// The event's text, as delivered.
    text: &'a str,
    /// Its type.
    kind: &'a str,
    /// See [`ForwardJob::deadline`].
    deadline: Instant,
}

#[allow(clippy::too_many_arguments)]
async fn deliver(
    record: &SqsMessage,
    envelope: &Envelope,
    payload: &str,
    target: Target<'_>,
    job: &Job,
    forwarder: &Forwarder,
    deps: &Deps,
    lease: Duration,
) -> Result<(), Failure> {
    let action = format!("{NAME_PREFIX}{}", job.endpoint);
    let fail = |error: Error| Failure {
        action: action.clone(),
        error,
    };
    // The receiver queues only JSON it parsed, so this guards against a queue written otherwise:
    // what cannot be forwarded unchanged is not forwarded at all.
    let event = match RawEvent::new(target.text) {
        Ok(event) => event,
        Err(error) => {
            return give_up(record, &job.endpoint, &action, &error, deps)
                .await
                .map_err(fail)
        }
    };
    let occurred_at = target
        .event
        .pointer("/eventBody/eventTime")
        .and_then(EventTime::from_json)
        .and_then(|t| {
            time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(t.0) * 1_000_000).ok()
        })
        .unwrap_or(envelope.received_at);
    let forward_job = ForwardJob {
        event_key: &envelope.event_key,
        source: envelope.source.as_str(),
        event_type: target.kind,
        occurred_at,
        event,
        attempt: job.attempt,
        deadline: target.deadline,
    };
    let result = run_once(
        &deps.idempotency,
        &action,
        &envelope.event_key,
        &claim_content(envelope.source, payload),
        lease,
        || forwarder.deliver(&job.endpoint, &forward_job),
    )
    .await;
    match result {
        Ok(outcome) => {
            tracing::info!(action = %action, event_key = %envelope.event_key, outcome = %outcome.label, detail = %outcome.detail, "action done");
            Ok(())
        }
        Err(ForwardError::Defer(wait)) => requeue(
            record,
            &envelope.event_key,
            job.attempt,
            &job.endpoint,
            wait,
            deps,
        )
        .await
        .map_err(fail),
        Err(ForwardError::OutOfTime) => {
            tracing::warn!(action = %action, event_key = %envelope.event_key, attempt = job.attempt, "no time left in this invocation; delivery postponed");
            requeue(
                record,
                &envelope.event_key,
                job.attempt,
                &job.endpoint,
                Duration::ZERO,
                deps,
            )
            .await
            .map_err(fail)
        }
        Err(ForwardError::Retry {
            reason,
            retry_after,
        }) if job.attempt < forwarder.max_attempts() => {
            let wait = retry_delay(job.attempt, retry_after);
            tracing::warn!(action = %action, event_key = %envelope.event_key, attempt = job.attempt, reason = %reason, retry_in_secs = wait.as_secs(), "delivery will be retried");
            requeue(
                record,
                &envelope.event_key,
                job.attempt + 1,
                &job.endpoint,
                wait,
                deps,
            )
            .await
            .map_err(fail)
        }
        Err(ForwardError::Retry { reason, .. }) => {
            let error =
                Error::permanent(format!("gave up after {} attempts: {reason}", job.attempt));
            give_up(record, &job.endpoint, &action, &error, deps)
                .await
                .map_err(fail)
        }
        Err(ForwardError::Fail(error @ Error::Retryable { .. })) => Err(fail(error)),
        Err(ForwardError::Fail(error)) => give_up(record, &job.endpoint, &action, &error, deps)
            .await
            .map_err(fail),
    }
}

/// The record's own string attributes, without a job marker.
fn original_attributes(record: &SqsMessage) -> impl Iterator<Item = (String, String)> + '_ {
    record
        .message_attributes
        .iter()
        .filter(|(name, _)| name.as_str() != ATTRIBUTE)
        .filter_map(|(name, value)| Some((name.clone(), value.string_value.clone()?)))
}

/// Puts a job for `endpoint` back on the queue to run after `wait`. On a FIFO queue (no
/// per-message delay, and order matters) the record itself is retried instead.
async fn requeue(
    record: &SqsMessage,
    key: &EventKey,
    attempt: u32,
    endpoint: &str,
    wait: Duration,
    deps: &Deps,
) -> Result<()> {
    if deps.config.queue_url.ends_with(".fifo") {
        return Err(Error::Retryable {
            message: format!("delivery to {endpoint} must wait"),
            retry_after: Some(wait),
        });
    }
    let job = Job {
        endpoint: endpoint.to_owned(),
        attempt,
        not_before_ms: epoch_millis(SystemTime::now() + wait),
    };
    let attributes = original_attributes(record)
        .chain(std::iter::once((ATTRIBUTE.to_owned(), job.encode())))
        .map(|(name, value)| {
            let value = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build();
            value
                .map(|v| (name, v))
                .map_err(|e| Error::permanent(format!("attribute: {e}")))
        })
        .collect::<Result<std::collections::HashMap<_, _>>>()?;
    deps.sqs
        .send_message()
        .queue_url(&deps.config.queue_url)
        .message_body(record.body.clone().unwrap_or_default())
        .set_message_attributes(Some(attributes))
        .delay_seconds(wait.min(MAX_SQS_DELAY).as_secs() as i32)
        .send()
        .await
        .map_err(|e| genesys_relay::aws::unavailable("queue the retry", e))?;
    tracing::info!(endpoint, event_key = %key, attempt, wait_secs = wait.as_secs(), "delivery queued for later");
    Ok(())
}

/// Dead-letters one endpoint's delivery of the event with its reason, as that endpoint's job
/// (attempt 1, due at once): a redrive makes this delivery again and nothing else, however long
/// after the event, so no other action (an SMS, another endpoint) runs twice.
async fn give_up(
    record: &SqsMessage,
    endpoint: &str,
    action: &str,
    error: &Error,
    deps: &Deps,
) -> Result<()> {
    let body = record.body.as_deref().unwrap_or_default();
    let job = Job {
        endpoint: endpoint.to_owned(),
        attempt: 1,
        not_before_ms: 0,
    };
    let attributes =
        original_attributes(record).chain(std::iter::once((ATTRIBUTE.to_owned(), job.encode())));
    dead_letter::send(
        &deps.sqs,
        &deps.config.dlq_url,
        body,
        attributes,
        action,
        error,
    )
    .await?;
    tracing::error!(action, class = %error.class(), reason = %error, "delivery dead-lettered");
    telemetry::count_outcome(Function::Processor, "forward", Label::DeadLettered);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn a_json_body_is_delivered_as_queued_and_a_form_as_an_object() {
        let mut envelope = Envelope {
            event_key: EventKey::from_parts(&["k"]),
            source: Source::GenesysWebhook,
            received_at: time::OffsetDateTime::UNIX_EPOCH,
            content_type: MediaType::Json,
            correlation_id: None,
            group_id: "g".into(),
        };
        let json = r#" {"n": 1.50, "n": 12345678901234567890123} "#;
        assert!(matches!(event_text(&envelope, json), Cow::Borrowed(t) if t == json));
        envelope.content_type = MediaType::Form;
        assert_eq!(
            event_text(&envelope, "MessageSid=SM1&MessageStatus=sent"),
            r#"{"MessageSid":"SM1","MessageStatus":"sent"}"#
        );
    }

    #[test]
    fn jobs_round_trip_and_malformed_ones_are_not_jobs() {
        let job = Job {
            endpoint: "crm".into(),
            attempt: 3,
            not_before_ms: 1_700_000_000_000,
        };
        assert_eq!(Job::parse(&job.encode()), Some(job));
        for bad in ["", "crm", "crm;x;1", ";1;1", "crm;1;1;extra"] {
            assert_eq!(Job::parse(bad), None, "{bad}");
        }
    }
}

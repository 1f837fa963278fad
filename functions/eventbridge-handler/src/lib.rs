//! The EventBridge handler: puts the events of the Genesys Cloud EventBridge integration that the
//! rules act on onto the main queue, where the processor acts on them.
//!
//! It does no business work itself, as the receiver does none: the processor stores the
//! `.outbound` context, texts the customer on an `.acw`, and forwards, with the retries by time,
//! deferrals and dead letters every queued event has. So a Twilio, Genesys or state-table outage
//! of hours keeps the event on the queue rather than spending Lambda's three asynchronous
//! attempts in three minutes, and an `.acw` that arrives before its `.outbound` waits on the
//! queue for it. The handler fails (Lambda retries the event, then its on-failure destination
//! keeps it) only when the queue does not take the event; an event that is not a Genesys event is
//! dead-lettered with its reason; one no rule acts on is counted and dropped.

use aws_config::SdkConfig;
use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use genesys_relay::config::{EventBridgeConfig, DEFAULT_CLAIM_CHECK_THRESHOLD_BYTES};
use genesys_relay::inbound::event::{EventKey, GenesysDetail};
use genesys_relay::inbound::partner_event::{event_key, message_group, Topic};
use genesys_relay::inbound::queue::{Envelope, MediaType, QueueSender, Source};
use genesys_relay::rules::Rules;
use genesys_relay::telemetry::{Function, Label};
use genesys_relay::{dead_letter, telemetry, Error};
use lambda_runtime::LambdaEvent;
use serde_json::Value;
use time::OffsetDateTime;

/// The input: an EventBridge event; its detail is read as a Genesys event inside, so that one
/// that is not becomes a dead letter with a reason rather than a runtime error.
pub type Input = EventBridgeEvent<Value>;

/// Clients and settings built once per cold start.
pub struct Deps {
    /// Validated settings.
    pub config: EventBridgeConfig,
    /// For dead letters.
    pub sqs: aws_sdk_sqs::Client,
    /// The main queue, with the claim-check bucket for events larger than a queue message.
    pub queue: QueueSender,
}

impl Deps {
    /// Builds every client from one AWS configuration.
    pub fn new(config: EventBridgeConfig, aws: &SdkConfig) -> Self {
        Self {
            queue: QueueSender::from_aws(
                aws,
                config.queue_url.clone(),
                config.claim_check_bucket.clone(),
                DEFAULT_CLAIM_CHECK_THRESHOLD_BYTES,
            ),
            sqs: aws_sdk_sqs::Client::new(aws),
            config,
        }
    }
}

/// Why the rules act on an event: what the processor will do with it, for logs and metrics;
/// `None` when nothing will.
pub fn wanted_for(detail: &GenesysDetail, rules: &Rules) -> Option<&'static str> {
    let forwarded = rules
        .forward
        .as_ref()
        .is_some_and(|forward| forward.wants(&detail.topic_name));
    match Topic::of(&detail.topic_name) {
        Some(topic) if rules.sms_on_wrapup.is_some() => Some(topic.name()),
        _ if forwarded => Some("forward"),
        _ => None,
    }
}

/// Handles one event. `Err` only when the queue did not take it (Lambda retries it, then its
/// on-failure destination keeps it); everything else ends here, queued, ignored or dead-lettered.
pub async fn handle(event: LambdaEvent<Input>, deps: &Deps) -> Result<(), lambda_runtime::Error> {
    let input = &event.payload;
    let detail: GenesysDetail = match serde_json::from_value(input.detail.clone()) {
        Ok(detail) => detail,
        Err(e) => {
            let error = Error::permanent(format!("detail is not a Genesys event: {e}"));
            return dead_letter(input, None, "decode", &error, deps).await;
        }
    };
    let key = event_key(&detail);
    let Some(purpose) = wanted_for(&detail, &deps.config.rules) else {
        tracing::info!(topic = %detail.topic_name, "no rule acts on the topic");
        telemetry::count_outcome(Function::EventBridgeHandler, "none", Label::Ignored);
        return Ok(());
    };
    let envelope = Envelope {
        event_key: key.clone(),
        source: Source::GenesysEventBridge,
        received_at: OffsetDateTime::now_utc(),
        content_type: MediaType::Json,
        correlation_id: detail.metadata.correlation_id.clone(),
        group_id: message_group(&detail, &key),
    };
    // The detail as it came, not as the model reads it: fields the model does not name are kept
    // for the endpoints that receive it.
    let body = input.detail.to_string();
    match deps.queue.send(&envelope, body).await {
        Ok(()) => {
            tracing::info!(topic = %detail.topic_name, event_key = %key, purpose, "queued");
            telemetry::count_outcome(Function::EventBridgeHandler, purpose, Label::Queued);
            Ok(())
        }
        Err(error @ Error::Retryable { .. }) => {
            tracing::warn!(event_key = %key, reason = %error, "will retry");
            telemetry::count_outcome(Function::EventBridgeHandler, purpose, Label::Retry);
            Err(error.into())
        }
        Err(error) => dead_letter(input, Some(&key), "queue", &error, deps).await,
    }
}

/// Sends the event to the DLQ with its reason, marked as the handler's (a redrive puts it back on
/// the event bus) and with the reasons of earlier failures when it is a replay; if even that
/// fails, the invocation fails so Lambda retries it and, in the end, its on-failure destination
/// keeps it.
async fn dead_letter(
    input: &Input,
    key: Option<&EventKey>,
    action: &str,
    error: &Error,
    deps: &Deps,
) -> Result<(), lambda_runtime::Error> {
    let body = serde_json::to_string(input).unwrap_or_default();
    let mut attributes = vec![
        ("source".to_owned(), "genesys-eventbridge".to_owned()),
        ("detail-type".to_owned(), input.detail_type.clone()),
    ];
    if let Some(key) = key {
        attributes.push(("event-key".to_owned(), key.as_str().to_owned()));
    }
    if let Some(previous) = input
        .resources
        .as_deref()
        .and_then(dead_letter::previous_error_in)
    {
        attributes.push((
            dead_letter::attr::PREVIOUS_ERROR.to_owned(),
            previous.to_owned(),
        ));
    }
    let letter = dead_letter::Letter::new(&body, attributes)
        .from_message(input.id.as_deref().unwrap_or_default());
    dead_letter::send_from(
        dead_letter::Origin::EventBridgeHandler,
        &deps.sqs,
        &deps.config.dlq_url,
        letter,
        action,
        error,
    )
    .await?;
    tracing::error!(action, class = %error.class(), reason = %error, "dead-lettered");
    telemetry::count_outcome(Function::EventBridgeHandler, action, Label::DeadLettered);
    Ok(())
}

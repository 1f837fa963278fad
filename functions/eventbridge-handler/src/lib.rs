//! The EventBridge handler: acts on events from the Genesys Cloud EventBridge integration.
//!
//! The customer's number arrives on `.outbound`; the wrap-up code arrives later on `.acw`. The
//! handler stores the `.outbound` context per conversation and, on an `.acw` with a configured
//! code, texts the customer with it. An `.acw` that arrives first is retried (an error: Lambda
//! retries the event, then sends it to the DLQ), never dropped and never texted to the wrong
//! party. Unknown topics are counted and ignored; an event that cannot be read goes to the DLQ with
//! its reason. An event a forwarding endpoint wants is put on the main queue, where the processor
//! delivers it like any other.

pub mod topic;

use aws_config::SdkConfig;
use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use genesys_relay::actions::delivery_status::StatusChecks;
use genesys_relay::actions::sms_on_wrapup::{self, WrapupContext};
use genesys_relay::actions::{event_content, run_once, ActionDeps, Outcome};
use genesys_relay::config::EventBridgeConfig;
use genesys_relay::config::DEFAULT_CLAIM_CHECK_THRESHOLD_BYTES;
use genesys_relay::conversation_store::{Applied, ContactRef, ConversationStore, OutboundContext};
use genesys_relay::event::{EventKey, GenesysDetail};
use genesys_relay::idempotency::{lease_until, Idempotency};
use genesys_relay::queue::{Envelope, QueueSender, Source};
use genesys_relay::{dead_letter, telemetry, Error, Result};
use lambda_runtime::LambdaEvent;
use serde_json::{json, Value};
use time::OffsetDateTime;

use topic::{body_str, event_key, Topic};

/// The input: an EventBridge event; its detail is read as a Genesys event inside, so that one
/// that is not becomes a dead letter with a reason rather than a runtime error.
pub type Input = EventBridgeEvent<Value>;

/// Clients and settings built once per cold start.
pub struct Deps {
    /// Validated settings.
    pub config: EventBridgeConfig,
    /// For dead letters.
    pub sqs: aws_sdk_sqs::Client,
    /// Idempotency claims.
    pub idempotency: Idempotency,
    /// Per-conversation context and ordering.
    pub conversations: ConversationStore,
    /// What the actions use.
    pub actions: ActionDeps,
    /// The main queue, for events to forward (when the rules forward any).
    pub queue: Option<QueueSender>,
}

impl Deps {
    /// Builds every client from one AWS configuration and one HTTP client (resolving the rules'
    /// wrap-up code names, see [`ActionDeps::new`]).
    pub async fn new(
        config: EventBridgeConfig,
        aws: &SdkConfig,
        http: reqwest::Client,
    ) -> Result<Self> {
        let ddb = aws_sdk_dynamodb::Client::new(aws);
        let table = config.actions.table_name.clone();
        Ok(Self {
            sqs: aws_sdk_sqs::Client::new(aws),
            idempotency: Idempotency::for_actions(ddb.clone(), &config.actions),
            conversations: ConversationStore::new(ddb, table, config.context_ttl),
            actions: ActionDeps::new(&config.actions, aws, http)
                .await?
                .with_status_checks(config.queue_url.as_ref().map(|url| {
                    StatusChecks::new(
                        aws_sdk_sqs::Client::new(aws),
                        url,
                        config.actions.status_check_schedule.clone(),
                    )
                })),
            queue: config.queue_url.clone().map(|url| {
                QueueSender::new(
                    aws_sdk_sqs::Client::new(aws),
                    url,
                    None,
                    DEFAULT_CLAIM_CHECK_THRESHOLD_BYTES,
                )
            }),
            config,
        })
    }
}

/// Handles one event. `Err` only for what may pass (Lambda retries it, then dead-letters it);
/// everything else ends here, acted on, ignored or dead-lettered.
pub async fn handle(event: LambdaEvent<Input>, deps: &Deps) -> Result<(), lambda_runtime::Error> {
    let lease = lease_until(event.context.deadline);
    let input = &event.payload;
    let detail: GenesysDetail = match serde_json::from_value(input.detail.clone()) {
        Ok(detail) => detail,
        Err(e) => {
            let error = Error::permanent(format!("detail is not a Genesys event: {e}"));
            return dead_letter(input, None, "decode", &error, deps).await;
        }
    };
    let key = event_key(&detail);
    match queue_for_forwarding(&detail, &key, deps).await {
        Ok(()) => {}
        Err(error @ Error::Retryable { .. }) => return Err(error.into()),
        Err(error) => return dead_letter(input, Some(&key), "forward", &error, deps).await,
    }
    let Some(topic) = Topic::of(&detail.topic_name) else {
        tracing::info!(topic = %detail.topic_name, "topic not acted on");
        telemetry::count_outcome("eventbridge-handler", "none", "ignored");
        return Ok(());
    };
    let result = match topic {
        Topic::Outbound => outbound(&detail, deps).await,
        Topic::Acw => wrapup(&detail, &key, lease, deps).await,
    };
    match result {
        Ok(outcome) => {
            tracing::info!(
                topic = topic.name(),
                event_key = %key,
                correlation_id = detail.metadata.correlation_id.as_deref().unwrap_or(""),
                outcome = outcome.label,
                detail = %outcome.detail,
                "event done"
            );
            telemetry::count_outcome("eventbridge-handler", topic.name(), outcome.label);
            Ok(())
        }
        Err(error @ Error::Retryable { .. }) => {
            tracing::warn!(topic = topic.name(), event_key = %key, reason = %error, "will retry");
            telemetry::count_outcome("eventbridge-handler", topic.name(), "retry");
            Err(error.into())
        }
        Err(error) => dead_letter(input, Some(&key), topic.name(), &error, deps).await,
    }
}

/// Puts the event on the main queue when an endpoint wants it: the processor delivers it, with
/// the retries, deferrals and dead letters of every forwarded event. A repeat is harmless: each
/// (event, endpoint) delivery is claimed once.
async fn queue_for_forwarding(detail: &GenesysDetail, key: &EventKey, deps: &Deps) -> Result<()> {
    let (Some(forwarder), Some(queue)) = (&deps.actions.forward, &deps.queue) else {
        return Ok(());
    };
    if forwarder.endpoints_for(&detail.topic_name).is_empty() {
        return Ok(());
    }
    let body = serde_json::to_string(detail)
        .map_err(|e| Error::permanent(format!("cannot encode the event: {e}")))?;
    let envelope = Envelope {
        event_key: key.clone(),
        source: Source::GenesysEventBridge,
        received_at: OffsetDateTime::now_utc(),
        content_type: "application/json".into(),
        correlation_id: detail.metadata.correlation_id.clone(),
        group_id: body_str(detail, "conversationId")
            .unwrap_or(key.as_str())
            .to_owned(),
    };
    queue.send(&envelope, body).await?;
    tracing::info!(topic = %detail.topic_name, event_key = %key, "queued for forwarding");
    Ok(())
}

/// Stores what the wrap-up will need, when the rules text anyone at all.
async fn outbound(detail: &GenesysDetail, deps: &Deps) -> Result<Outcome> {
    let Some(rule) = &deps.actions.rules.sms_on_wrapup else {
        return Ok(Outcome::new("ignored", "no smsOnWrapup rule"));
    };
    let conversation = required(detail, "conversationId")?;
    let Some(time) = detail.event_time() else {
        return Err(Error::permanent("outbound event has no eventTime"));
    };
    let body = json!({ "eventBody": detail.event_body });
    let Some(customer_number) = rule.customer_number(&body) else {
        return Err(Error::permanent(format!(
            "outbound event of {conversation} carries no customer number"
        )));
    };
    let context = OutboundContext {
        customer_number,
        participant_id: body_str(detail, "participantId").map(str::to_owned),
        campaign_id: body_str(detail, "outboundCampaignId").map(str::to_owned),
        contact: body_str(detail, "outboundContactListId")
            .zip(body_str(detail, "outboundContactId"))
            .map(|(list, contact)| ContactRef {
                contact_list_id: list.to_owned(),
                contact_id: contact.to_owned(),
            }),
    };
    Ok(
        match deps
            .conversations
            .record_outbound(conversation, &context, time.0)
            .await?
        {
            Applied::Yes(()) => Outcome::new("stored", conversation),
            Applied::Stale => Outcome::new("stale", conversation),
        },
    )
}

/// Texts the customer when the wrap-up code is configured and the `.outbound` context is known.
async fn wrapup(
    detail: &GenesysDetail,
    key: &EventKey,
    lease: std::time::Duration,
    deps: &Deps,
) -> Result<Outcome> {
    let Some(rule) = &deps.actions.rules.sms_on_wrapup else {
        return Ok(Outcome::new("ignored", "no smsOnWrapup rule"));
    };
    let code = body_str(detail, "wrapupCode").unwrap_or_default();
    let Some(template_key) = deps.actions.select_template(code).await? else {
        return Ok(Outcome::new(
            "ignored",
            format!("wrap-up code {code:?} is not configured"),
        ));
    };
    let conversation = required(detail, "conversationId")?;
    let Some(time) = detail.event_time() else {
        return Err(Error::permanent("acw event has no eventTime"));
    };
    let context = match deps
        .conversations
        .record_wrapup(conversation, time.0)
        .await?
    {
        Applied::Stale => return Ok(Outcome::new("stale", conversation)),
        Applied::Yes(None) => {
            return Err(Error::retryable(format!(
                "wrap-up of {conversation} arrived before its outbound event"
            )))
        }
        Applied::Yes(Some(context)) => context,
    };
    let wrapup = WrapupContext {
        conversation_id: conversation.to_owned(),
        participant_id: context.participant_id,
        wrapup_code: code.to_owned(),
        template_key,
        campaign_id: context.campaign_id,
        customer_number: context.customer_number,
        contact: None,
        contact_ref: context.contact,
    };
    let payload = event_content(detail);
    run_once(
        &deps.idempotency,
        sms_on_wrapup::NAME,
        key,
        &payload,
        lease,
        || sms_on_wrapup::run(&wrapup, key, rule, &deps.actions),
    )
    .await
}

fn required<'a>(detail: &'a GenesysDetail, field: &str) -> Result<&'a str> {
    body_str(detail, field).ok_or_else(|| Error::permanent(format!("event has no {field}")))
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
    match dead_letter::send_from(
        dead_letter::Origin::EventBridgeHandler,
        &deps.sqs,
        &deps.config.dlq_url,
        &body,
        attributes,
        action,
        error,
    )
    .await
    {
        Ok(()) => {
            tracing::error!(action, class = error.class(), reason = %error, "dead-lettered");
            telemetry::count_outcome("eventbridge-handler", action, "dead-lettered");
            Ok(())
        }
        Err(failure) => Err(failure.into()),
    }
}

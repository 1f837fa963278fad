//! One queue record: decode it, resolve its claim check, decide which actions apply, and run
//! each exactly once in effect through an idempotency claim.

use std::time::Duration;

use aws_lambda_events::event::sqs::SqsMessage;
use genesys_relay::actions::delivery_status::{self, StatusCallback};
use genesys_relay::actions::sms_on_wrapup::{self, wrapup_code_of, WrapupContext};
use genesys_relay::actions::{claim_content, run_once, Outcome};
use genesys_relay::inbound::event::EventKey;
use genesys_relay::inbound::queue::{self, Envelope, MediaType, Payload, Source};
use genesys_relay::outbound::twilio::Sender;
use genesys_relay::{telemetry, Error, Result};
use sha2::{Digest, Sha256};

use crate::failure::{at, Failure, DECODE};
use crate::{forwarding, partner_event, Deps};
use genesys_relay::telemetry::{Function, Label};

/// An action chosen for a record.
enum Planned {
    Sms(WrapupContext),
    Status(StatusCallback),
    /// One status event of a Twilio Event Streams body, under its own key: a body can carry
    /// several, each to be applied once.
    StreamStatus(StatusCallback, EventKey),
}

impl Planned {
    fn name(&self) -> &'static str {
        match self {
            Self::Sms(_) => sms_on_wrapup::NAME,
            Self::Status(_) | Self::StreamStatus(..) => delivery_status::NAME,
        }
    }

    /// The idempotency key: the record's event key, unless the action has its own.
    fn key<'a>(&'a self, envelope: &'a Envelope) -> &'a EventKey {
        match self {
            Self::StreamStatus(_, key) => key,
            _ => &envelope.event_key,
        }
    }
}

/// The receive count SQS reports (1 on the first delivery).
pub fn receive_count(record: &SqsMessage) -> u32 {
    record
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

/// Runs every action that applies to `record`; `lease` bounds each idempotency claim.
pub async fn process(record: &SqsMessage, deps: &Deps, lease: Duration) -> Result<(), Failure> {
    let body = record.body.as_deref().unwrap_or_default();
    let attribute = |name: &str| {
        record
            .message_attributes
            .get(name)
            .and_then(|a| a.string_value.clone())
    };
    let job = forwarding::job_of(record);
    // A scheduled status check carries no event: it reads the message's status back from Twilio.
    let check = attribute(delivery_status::CHECK_ATTRIBUTE)
        .and_then(|v| delivery_status::StatusCheck::parse(&v));
    if let Some(check) = check {
        let name = delivery_status::CHECK_NAME;
        let now = (deps.clock)();
        let outcome =
            delivery_status::run_check(&check, now, &deps.actions, &deps.idempotency, lease)
                .await
                .map_err(at(name))?;
        tracing::info!(action = name, message_sid = %check.message_sid, attempt = check.attempt, outcome = %outcome.label, detail = %outcome.detail, "action done");
        telemetry::count_outcome(Function::Processor, name, outcome.label);
        return Ok(());
    }
    let (envelope, payload) = queue::decode(body, attribute).map_err(at(DECODE))?;
    let payload = resolve(payload, deps).await.map_err(at(DECODE))?;
    if let Some(job) = job {
        return forwarding::run_job(record, &envelope, &payload, job, deps, lease).await;
    }
    if envelope.source == Source::GenesysEventBridge {
        partner_event::act(&envelope.event_key, &payload, deps, lease).await?;
        return forwarding::fan_out(record, &envelope, &payload, deps, lease).await;
    }
    let planned = plan(&envelope, &payload, deps).await.map_err(at(DECODE))?;
    if planned.is_empty() {
        tracing::info!(event_key = %envelope.event_key, source = envelope.source.as_str(), "no SMS or status action applies");
        telemetry::count_outcome(Function::Processor, "none", Label::Skipped);
    }
    for action in planned {
        let name = action.name();
        let outcome = run_once(
            &deps.idempotency,
            name,
            action.key(&envelope),
            &claim_content(envelope.source, &payload),
            lease,
            || run(&action, &envelope, receive_count(record), deps),
        )
        .await
        .map_err(at(name))?;
        tracing::info!(
            action = name,
            event_key = %envelope.event_key,
            correlation_id = envelope.correlation_id.as_deref().unwrap_or(""),
            outcome = %outcome.label,
            detail = %outcome.detail,
            "action done"
        );
        telemetry::count_outcome(Function::Processor, name, outcome.label);
    }
    forwarding::fan_out(record, &envelope, &payload, deps, lease).await
}

async fn run(action: &Planned, envelope: &Envelope, attempt: u32, deps: &Deps) -> Result<Outcome> {
    match action {
        Planned::Sms(context) => {
            let rule = deps
                .actions
                .rules
                .sms_on_wrapup
                .as_ref()
                .ok_or_else(|| Error::permanent("smsOnWrapup is not configured"))?;
            sms_on_wrapup::run(context, &envelope.event_key, rule, &deps.actions).await
        }
        Planned::Status(callback) | Planned::StreamStatus(callback, _) => {
            delivery_status::run(callback, attempt, &deps.actions).await
        }
    }
}

/// The payload itself: inline, or fetched from S3 and checked against its hash.
async fn resolve(payload: Payload, deps: &Deps) -> Result<String> {
    let check = match payload {
        Payload::Inline(body) => return Ok(body),
        Payload::ClaimCheck(check) => check,
    };
    let object = deps
        .s3
        .get_object()
        .bucket(&check.bucket)
        .key(&check.key)
        .send()
        .await
        .map_err(|e| {
            if e.as_service_error().is_some_and(|s| s.is_no_such_key()) {
                Error::permanent(format!(
                    "claim check s3://{}/{} is gone",
                    check.bucket, check.key
                ))
            } else {
                genesys_relay::aws::unavailable("read the claim check", e)
            }
        })?;
    let bytes = object
        .body
        .collect()
        .await
        .map_err(|e| Error::retryable(format!("could not read the claim check body: {e}")))?
        .into_bytes();
    if hex::encode(Sha256::digest(&bytes)) != check.sha256 {
        return Err(Error::permanent(format!(
            "claim check s3://{}/{} does not match its hash",
            check.bucket, check.key
        )));
    }
    String::from_utf8(bytes.to_vec()).map_err(|_| Error::permanent("claim check is not UTF-8"))
}

/// Whether an Event Streams status event is about an SMS this relay sends: its sender is the
/// rules' (`messagingServiceSid` or `from`). The subscription covers the whole Twilio account, and
/// statuses of other applications' messages are theirs, not work for this relay.
fn sent_by_relay(data: &serde_json::Map<String, serde_json::Value>, deps: &Deps) -> bool {
    let Some(rule) = &deps.actions.rules.sms_on_wrapup else {
        return false;
    };
    let field = |name: &str| data.get(name).and_then(serde_json::Value::as_str);
    match &rule.sender {
        Sender::MessagingService(service) => field("messagingServiceSid") == Some(service.as_str()),
        Sender::From(from) => field("from") == Some(from.as_str()),
    }
}

/// Which actions apply to this event under the rules.
async fn plan(envelope: &Envelope, payload: &str, deps: &Deps) -> Result<Vec<Planned>> {
    match envelope.source {
        Source::GenesysWebhook => {
            let body: serde_json::Value = serde_json::from_str(payload)
                .map_err(|e| Error::permanent(format!("webhook body is not JSON: {e}")))?;
            let (Some(rule), Some(code)) = (
                deps.actions.rules.sms_on_wrapup.as_ref(),
                wrapup_code_of(&body),
            ) else {
                return Ok(Vec::new());
            };
            match deps.actions.select_template(&code).await? {
                Some(key) => Ok(vec![Planned::Sms(WrapupContext::from_body(
                    &body, rule, code, key,
                )?)]),
                None => Ok(Vec::new()),
            }
        }
        Source::TwilioStatus if envelope.content_type == MediaType::Form => {
            Ok(vec![Planned::Status(StatusCallback::from_form(payload)?)])
        }
        // Any other body on the Twilio route is JSON (the receiver accepts nothing else there): an
        // Event Streams webhook sink's CloudEvents. Each status event is keyed by the body's key,
        // the message and the status, so a redelivered body is a duplicate and two statuses in
        // one body are both applied.
        Source::TwilioStatus => {
            Ok(
                StatusCallback::from_event_stream(payload, |data| sent_by_relay(data, deps))?
                    .into_iter()
                    .map(|callback| {
                        let key = EventKey::from_parts(&[
                            envelope.event_key.as_str(),
                            &callback.message_sid,
                            &callback.status,
                        ]);
                        Planned::StreamStatus(callback, key)
                    })
                    .collect(),
            )
        }
        // Acted on by `partner_event` before any plan is made.
        Source::GenesysEventBridge => Ok(Vec::new()),
    }
}

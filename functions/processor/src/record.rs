//! One queue record: decode it, resolve its claim check, decide which actions apply, and run
//! each exactly once in effect through an idempotency claim.

use std::time::Duration;

use aws_lambda_events::event::sqs::SqsMessage;
use genesys_relay::actions::delivery_status::{self, StatusCallback};
use genesys_relay::actions::sms_on_wrapup::{self, WrapupContext};
use genesys_relay::actions::{run_once, Outcome};
use genesys_relay::queue::{self, Envelope, Payload, Source};
use genesys_relay::{telemetry, Error, Result};
use sha2::{Digest, Sha256};

use crate::{forwarding, Deps};

/// Label of failures that happen before any action is chosen.
pub const DECODE: &str = "decode";

/// A failure, with the action it happened in.
#[derive(Debug)]
pub struct Failure {
    /// Action name, or [`DECODE`].
    pub action: String,
    /// What went wrong; its class decides retry or dead-letter.
    pub error: Error,
}

fn at(action: &'static str) -> impl Fn(Error) -> Failure {
    move |error| Failure {
        action: action.to_owned(),
        error,
    }
}

/// An action chosen for a record.
enum Planned {
    Sms(WrapupContext),
    Status(StatusCallback),
}

impl Planned {
    fn name(&self) -> &'static str {
        match self {
            Self::Sms(_) => sms_on_wrapup::NAME,
            Self::Status(_) => delivery_status::NAME,
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
    let job = attribute(forwarding::ATTRIBUTE).and_then(|v| forwarding::Job::parse(&v));
    let (envelope, payload) = queue::decode(body, attribute).map_err(at(DECODE))?;
    let payload = resolve(payload, deps).await.map_err(at(DECODE))?;
    if let Some(job) = job {
        return forwarding::run_job(record, &envelope, &payload, job, deps, lease).await;
    }
    let planned = plan(&envelope, &payload, deps).map_err(at(DECODE))?;
    if planned.is_empty() {
        tracing::info!(event_key = %envelope.event_key, source = envelope.source.as_str(), "no SMS or status action applies");
        telemetry::count_outcome("processor", "none", "skipped");
    }
    for action in planned {
        let name = action.name();
        let outcome = run_once(
            &deps.idempotency,
            name,
            &envelope.event_key,
            payload.as_bytes(),
            lease,
            || run(&action, &envelope, receive_count(record), deps),
        )
        .await
        .map_err(at(name))?;
        tracing::info!(
            action = name,
            event_key = %envelope.event_key,
            correlation_id = envelope.correlation_id.as_deref().unwrap_or(""),
            outcome = outcome.label,
            detail = %outcome.detail,
            "action done"
        );
        telemetry::count_outcome("processor", name, outcome.label);
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
        Planned::Status(callback) => delivery_status::run(callback, attempt, &deps.actions).await,
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
                Error::retryable(format!(
                    "could not read the claim check: {}",
                    aws_sdk_s3::error::DisplayErrorContext(&e)
                ))
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

/// Which actions apply to this event under the rules.
fn plan(envelope: &Envelope, payload: &str, deps: &Deps) -> Result<Vec<Planned>> {
    match envelope.source {
        Source::GenesysWebhook => {
            let body: serde_json::Value = serde_json::from_str(payload)
                .map_err(|e| Error::permanent(format!("webhook body is not JSON: {e}")))?;
            match deps
                .actions
                .rules
                .sms_on_wrapup
                .as_ref()
                .and_then(|rule| WrapupContext::from_body(&body, rule))
            {
                Some(context) => Ok(vec![Planned::Sms(context?)]),
                None => Ok(Vec::new()),
            }
        }
        Source::TwilioStatus if envelope.content_type == "application/x-www-form-urlencoded" => {
            Ok(vec![Planned::Status(StatusCallback::from_form(payload)?)])
        }
        // Twilio's JSON webhooks carry no status to write back; EventBridge events were acted on by
        // the EventBridge handler and are here only to be forwarded.
        Source::TwilioStatus | Source::GenesysEventBridge => Ok(Vec::new()),
    }
}

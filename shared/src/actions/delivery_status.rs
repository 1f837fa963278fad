//! Write a Twilio delivery status onto the Genesys conversation the SMS followed up.
//!
//! Statuses only move forward (a late `sent` never overwrites `delivered`) and duplicates are
//! no-ops. A callback for a message the ledger does not know yet is retried a few times, since it
//! can race the ledger write, then dead-lettered.
//!
//! A status arrives either as Twilio's form-encoded status callback or as JSON from a Twilio Event
//! Streams webhook sink (CloudEvents); both become the same [`StatusCallback`].
//!
//! One writer per message at a time writes onto the conversation (a lease on the ledger record,
//! see `state::sms`): a status arriving while another is being written is left to that writer,
//! which writes it next, so the last write to reach Genesys is always the newest status.
//!
//! Twilio does not retry a callback answered with an error, so each SMS also gets scheduled status
//! checks ([`StatusCheck`]): delayed messages on the main queue that read the message back from
//! Twilio while the ledger holds no final status, and apply what they read exactly as a callback.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use serde_json::Value;

use super::{run_once, status_attributes, ActionDeps, Outcome};
use crate::error::{Error, Result};
use crate::inbound::event::EventKey;
use crate::inbound::jobs::{Job, JobQueue, MAX_DELAY};
use crate::outbound::twilio::{known_status, status_rank};
use crate::state::idempotency::Idempotency;
use crate::state::sms::{Advance, SmsRecord, Written};
use crate::state::table::epoch_millis;
use crate::telemetry::{self, Label};

/// The action's name (idempotency, logs, metrics, dead-letter attributes).
pub const NAME: &str = "delivery_status";

/// How many deliveries of a callback for an unknown message are retried before it is dead-lettered.
pub const UNKNOWN_SID_ATTEMPTS: u32 = 5;

/// The fields of a Twilio status callback that matter here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusCallback {
    /// `MessageSid`.
    pub message_sid: String,
    /// `MessageStatus`.
    pub status: String,
    /// `ErrorCode`, when Twilio gave one (30003..30008 for delivery errors).
    pub error_code: Option<String>,
}

impl StatusCallback {
    /// Reads a form-encoded callback; one without `MessageSid` or `MessageStatus` is permanent.
    pub fn from_form(body: &str) -> Result<Self> {
        let field = |name: &str| {
            form_urlencoded::parse(body.as_bytes())
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
                .filter(|v| !v.is_empty())
        };
        Ok(Self {
            message_sid: field("MessageSid")
                .ok_or_else(|| Error::permanent("status callback has no MessageSid"))?,
            status: field("MessageStatus")
                .ok_or_else(|| Error::permanent("status callback has no MessageStatus"))?,
            error_code: field("ErrorCode"),
        })
    }

    /// Reads the JSON body of a Twilio Event Streams webhook sink: one CloudEvent, or an array of
    /// them when the sink batches events. Each `com.twilio.messaging.message.*` event (outbound
    /// message status) becomes one callback, in body order, a repeat of the same callback counted
    /// once; other event types (inbound messages, Verify, Conversations, the sink's test event...)
    /// carry no outbound message status and are skipped, and so are status events of messages the
    /// relay did not send (`sent_by_relay` says no to their `data`: an Event Streams subscription
    /// covers the whole account). A body that is not a CloudEvent or an array of them, or a status
    /// event without a message sid, is permanent: no retry fixes it.
    pub fn from_event_stream(
        body: &str,
        sent_by_relay: impl Fn(&serde_json::Map<String, Value>) -> bool,
    ) -> Result<Vec<Self>> {
        let body: Value = serde_json::from_str(body)
            .map_err(|e| Error::permanent(format!("Twilio JSON callback is not JSON: {e}")))?;
        let events: Vec<&Value> = match &body {
            Value::Array(events) => events.iter().collect(),
            Value::Object(_) => vec![&body],
            _ => return Err(not_cloud_events("it is neither an object nor an array")),
        };
        let mut callbacks: Vec<Self> = Vec::new();
        for (index, event) in events.into_iter().enumerate() {
            let kind = cloud_event_type(event)
                .map_err(|why| not_cloud_events(&format!("event {index} {why}")))?;
            let Some(suffix) = kind.strip_prefix(MESSAGE_STATUS_TYPE) else {
                continue;
            };
            if !event
                .get("data")
                .and_then(Value::as_object)
                .is_some_and(&sent_by_relay)
            {
                continue;
            }
            let callback = Self::from_status_event(suffix, event.get("data"))
                .map_err(|why| Error::permanent(format!("event {index} ({kind}) {why}")))?;
            if !callbacks.contains(&callback) {
                callbacks.push(callback);
            }
        }
        Ok(callbacks)
    }

    /// One `com.twilio.messaging.message.<suffix>` event's `data` (schema `Messaging.MessageStatus`).
    ///
    /// The status is the one the event type names, in the form's vocabulary (lower case, `_`),
    /// since the type is what the subscription selected and Twilio's own published example of a
    /// `delivered` event carries `messageStatus: QUEUED`; the upper-case `data.messageStatus` is
    /// read only when the type names no status this relay knows. `errorCode` is an integer in the
    /// schema but a string in some versions; both become the form's string.
    fn from_status_event(suffix: &str, data: Option<&Value>) -> Result<Self, String> {
        let text = |name: &str| {
            data.and_then(|d| d.get(name))
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        let message_sid = text("messageSid").ok_or("has no data.messageSid")?;
        let named = suffix.trim().to_ascii_lowercase().replace('-', "_");
        let status = match text("messageStatus") {
            Some(reported) if status_rank(&named).is_none() => {
                reported.to_ascii_lowercase().replace('-', "_")
            }
            _ => named,
        };
        if status.is_empty() {
            return Err("names no status".to_owned());
        }
        let error_code = match data.and_then(|d| d.get("errorCode")) {
            Some(Value::Number(code)) => Some(code.to_string()),
            Some(Value::String(code)) => Some(code.trim().to_owned()).filter(|c| !c.is_empty()),
            _ => None,
        };
        Ok(Self {
            message_sid: message_sid.to_owned(),
            status,
            error_code,
        })
    }
}

/// The Event Streams types that report an outbound message's status; the rest of the type names
/// the status (`com.twilio.messaging.message.delivered`).
const MESSAGE_STATUS_TYPE: &str = "com.twilio.messaging.message.";

/// The `type` of a CloudEvent (an object with a `specversion` and a non-empty `type`), or why the
/// value is not one.
fn cloud_event_type(event: &Value) -> Result<&str, &'static str> {
    if !event.is_object() {
        return Err("is not an object");
    }
    if !event.get("specversion").is_some_and(Value::is_string) {
        return Err("has no specversion");
    }
    event
        .get("type")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or("has no type")
}

/// The refusal of a body that is not Event Streams' JSON, with the reason for the dead letter.
fn not_cloud_events(why: &str) -> Error {
    Error::permanent(format!(
        "Twilio JSON callback is not a CloudEvent or an array of CloudEvents: {why}"
    ))
}

/// How long a writer holds a message's write-back lease: longer than the slowest write-back (a
/// token request and the PATCH, each made twice after a 401, each bounded by the HTTP client's
/// 10 s timeout), so a lease runs out only when its writer died.
pub(crate) const WRITER_LEASE: Duration = Duration::from_secs(60);

/// Applies one callback; `attempt` is how many times it has been delivered (1 the first time).
pub async fn run(callback: &StatusCallback, attempt: u32, deps: &ActionDeps) -> Result<Outcome> {
    let Some((status, rank)) = known_status(&callback.status) else {
        return Ok(Outcome::new(
            Label::Ignored,
            format!(
                "status {} is not an outbound delivery status",
                callback.status
            ),
        ));
    };
    let sid = &callback.message_sid;
    let record = match deps
        .sms
        .advance(sid, status, rank, callback.error_code.as_deref())
        .await?
    {
        Advance::Write(record) => record,
        Advance::Stale => {
            return Ok(Outcome::new(
                Label::Stale,
                format!("{sid} is already at this status or beyond"),
            ))
        }
        Advance::Unknown if attempt < UNKNOWN_SID_ATTEMPTS => {
            return Err(Error::retryable(format!(
                "no SMS record for {sid} yet (attempt {attempt})"
            )));
        }
        Advance::Unknown => {
            return Err(Error::permanent(format!(
                "no SMS record for {sid} after {attempt} attempts"
            )));
        }
    };
    let Some(participant) = record.participant_id else {
        return Ok(Outcome::new(
            Label::Ignored,
            format!("{sid} has no participant to write onto"),
        ));
    };
    write_back(sid, &participant, deps).await
}

/// Writes the newest status the ledger holds onto the conversation, as the message's only writer:
/// under its lease, and again after each write for as long as a newer status arrived meanwhile.
/// When another writer holds the lease, the status is left to it.
async fn write_back(sid: &str, participant: &str, deps: &ActionDeps) -> Result<Outcome> {
    let token = writer_token()?;
    let Some(record) = deps
        .sms
        .take_writer(sid, &token, SystemTime::now(), WRITER_LEASE)
        .await?
    else {
        return Ok(Outcome::new(
            Label::HandedOff,
            format!("{sid}: the writer at work writes this status after its own"),
        ));
    };
    let result = write_under_lease(record, participant, &token, deps).await;
    if result.is_err() {
        // The retry of this status (or of a later one, or a status check) writes what is left.
        if let Err(release) = deps.sms.release_writer(sid, &token).await {
            tracing::warn!(action = NAME, message_sid = %sid, reason = %release, "could not give the write-back lease back; it runs out by itself");
        }
    }
    result
}

/// The writes of [`write_back`], by the writer `token`, starting from `record`.
async fn write_under_lease(
    mut record: SmsRecord,
    participant: &str,
    token: &str,
    deps: &ActionDeps,
) -> Result<Outcome> {
    let sid = record.message_sid.clone();
    let prefix = &deps.rules.delivery_status.attribute_prefix;
    let mut wrote: Option<String> = None;
    // Ranks only grow, so a few rounds cover every status a message can go through.
    for _ in 0..8 {
        let rank = if record.written_rank >= record.status_rank {
            // Written meanwhile by a writer before this one: only give the lease back.
            record.written_rank
        } else {
            let attributes = status_attributes(
                prefix,
                &[
                    ("status", record.status.as_str()),
                    ("messageSid", sid.as_str()),
                    ("errorCode", record.error_code.as_deref().unwrap_or("")),
                ],
            );
            deps.genesys
                .patch_participant_attributes(&record.conversation_id, participant, &attributes)
                .await?;
            telemetry::count_sms_status(&record.status);
            wrote = Some(record.status.clone());
            record.status_rank
        };
        match deps
            .sms
            .written(&sid, token, rank, SystemTime::now(), WRITER_LEASE)
            .await?
        {
            Written::Done => {
                return Ok(match wrote {
                    Some(status) => Outcome::new(Label::Written, format!("{sid}={status}")),
                    None => Outcome::new(
                        Label::Stale,
                        format!("{sid}={} was written already", record.status),
                    ),
                })
            }
            Written::Newer(newer) => record = newer,
            Written::Lost => {
                tracing::warn!(action = NAME, message_sid = %sid, "the write-back lease ran out while writing; the writer that took it writes the rest");
                return Ok(Outcome::new(
                    Label::Written,
                    format!("{sid}={}", wrote.unwrap_or(record.status)),
                ));
            }
        }
    }
    Err(Error::retryable(format!(
        "status of {sid} kept changing while it was written"
    )))
}

/// A name for one writer, unique across every running function.
fn writer_token() -> Result<String> {
    let mut bytes = [0_u8; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| Error::retryable("no randomness for the write-back lease"))?;
    Ok(hex::encode(bytes))
}

/// The name status checks run under (idempotency, logs, metrics, dead-letter attributes).
pub const CHECK_NAME: &str = "status_check";

/// The message attribute that makes a queue message a status check:
/// `<MessageSid>;<attempt>;<not-before epoch ms>`.
pub const CHECK_ATTRIBUTE: &str = "status-check";

/// When each check is due by default (`STATUS_CHECK_SCHEDULE_SECS`): the first this long after
/// the SMS, each further one this long after the check before (1 min, 5 min, 30 min, 2 h, 6 h). After the last, about 8 h 36 min after the
/// SMS, checks stop and the status is left as it is (logged): a message still short of a final
/// status by then is one whose carrier reports no delivery.
pub(crate) const DEFAULT_CHECK_SCHEDULE: [Duration; 5] = [
    Duration::from_secs(60),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(6 * 3600),
];

/// One scheduled check of a message's delivery status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusCheck {
    /// Twilio's message sid.
    pub message_sid: String,
    /// Which check this is, 1 for the first.
    pub attempt: u32,
    /// Epoch ms before which it must not run.
    pub not_before_ms: u64,
}

impl StatusCheck {
    /// The first check of a message sent at `now`, by `schedule`; `None` for an empty schedule.
    pub fn first(message_sid: &str, now: SystemTime, schedule: &[Duration]) -> Option<Self> {
        Some(Self {
            message_sid: message_sid.to_owned(),
            attempt: 1,
            not_before_ms: epoch_millis(now + *schedule.first()?),
        })
    }

    /// The check after this one, run at `now`; `None` once `schedule` is over.
    pub fn next(&self, now: SystemTime, schedule: &[Duration]) -> Option<Self> {
        let wait = schedule.get(usize::try_from(self.attempt).ok()?)?;
        Some(Self {
            message_sid: self.message_sid.clone(),
            attempt: self.attempt + 1,
            not_before_ms: epoch_millis(now + *wait),
        })
    }

    /// Reads the attribute; `None` when malformed (the message is then processed as an event).
    pub fn parse(value: &str) -> Option<Self> {
        let mut parts = value.split(';');
        let message_sid = parts.next().filter(|s| !s.is_empty())?.to_owned();
        let attempt = parts.next()?.parse().ok().filter(|a| *a >= 1)?;
        let not_before_ms = parts.next()?.parse().ok()?;
        parts.next().is_none().then_some(Self {
            message_sid,
            attempt,
            not_before_ms,
        })
    }

    /// The attribute's value.
    pub fn encode(&self) -> String {
        format!(
            "{};{};{}",
            self.message_sid, self.attempt, self.not_before_ms
        )
    }

    /// The idempotency key: one run per check, however often SQS delivers it.
    pub fn key(&self) -> EventKey {
        EventKey::from_parts(&[CHECK_NAME, &self.message_sid, &self.attempt.to_string()])
    }
}

/// Puts status checks on the main queue, delayed until they are due.
#[derive(Clone)]
pub struct StatusChecks {
    queue: Arc<dyn JobQueue>,
    schedule: Vec<Duration>,
}

impl std::fmt::Debug for StatusChecks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatusChecks")
            .field("schedule", &self.schedule)
            .finish_non_exhaustive()
    }
}

impl StatusChecks {
    /// Checks queued on `queue`, due by `schedule`.
    pub fn over(queue: Arc<dyn JobQueue>, schedule: Vec<Duration>) -> Self {
        Self { queue, schedule }
    }

    /// The waits between checks.
    pub(crate) fn schedule_of_checks(&self) -> &[Duration] {
        &self.schedule
    }

    /// Whether the queue is FIFO, which takes no per-message delay.
    pub fn is_fifo(&self) -> bool {
        self.queue.is_fifo()
    }

    /// Queues `check`, delayed as long as SQS allows up to its time. A FIFO queue takes no
    /// per-message delay: there the check is received early and waits again, like any early one.
    pub async fn schedule(&self, check: &StatusCheck, now: SystemTime) -> Result<()> {
        let body = serde_json::json!({"statusCheck": check.message_sid, "attempt": check.attempt});
        // Rounded up: a check must never come back a moment early, only to be queued again.
        let wait_ms = check.not_before_ms.saturating_sub(epoch_millis(now));
        let job = Job {
            body: body.to_string(),
            attributes: vec![(CHECK_ATTRIBUTE.to_owned(), check.encode())],
            delay: Duration::from_secs(wait_ms.div_ceil(1000)).min(MAX_DELAY),
            fifo: Some((
                format!("{CHECK_NAME}-{}", check.message_sid),
                format!("{}-{}", check.message_sid, check.attempt),
            )),
        };
        self.queue.send(&job).await.map_err(|e| {
            Error::retryable(format!(
                "could not queue status check {} of {}: {e}",
                check.attempt, check.message_sid
            ))
        })
    }
}

/// Queues the first status check of an SMS just sent and recorded, so its status reaches the
/// conversation even if every callback is lost. A failure is logged, not returned: the SMS is out,
/// and its callbacks still write its status.
pub(crate) async fn schedule_first_check(record: &SmsRecord, deps: &ActionDeps) {
    let Some(checks) = &deps.status_checks else {
        return;
    };
    if record.participant_id.is_none() {
        return;
    }
    let now = SystemTime::now();
    let Some(check) = StatusCheck::first(&record.message_sid, now, checks.schedule_of_checks())
    else {
        return;
    };
    if let Err(error) = checks.schedule(&check, now).await {
        tracing::error!(action = CHECK_NAME, message_sid = %record.message_sid, reason = %error, "SMS sent but its status check not scheduled");
    }
}

/// Whether a status is one a message does not leave on its own (delivered, undelivered, failed,
/// canceled, partially delivered, read).
fn is_final(status: &str) -> bool {
    status_rank(status).is_some_and(|rank| rank >= FINAL_RANK)
}

/// The rank of the first final statuses (see `twilio::status_rank`).
const FINAL_RANK: u8 = 3;

/// Whether the ledger holds a final status and it is on the conversation: nothing left to check.
fn settled(record: &SmsRecord) -> bool {
    is_final(&record.status) && record.written_rank >= record.status_rank
}

/// Runs a status check taken from the queue at `now`, once in effect (an idempotency claim on
/// the check, held for `lease`).
///
/// A check not due yet is put back on the queue for the rest of its wait (SQS delays a message
/// 15 minutes at most), as a new message, so waiting never counts as a retry; on a FIFO queue,
/// which takes no per-message delay, it is deferred by the wait, and the processor hides it
/// until then.
///
/// A due one reads the message back from Twilio while the ledger holds no final status, and
/// applies what it reads exactly as a callback would be ([`run`]); a final status not yet on the
/// conversation is written from the ledger. Unless the status is then final and written, the next
/// check is queued, until the schedule ends.
pub async fn run_check(
    check: &StatusCheck,
    now: SystemTime,
    deps: &ActionDeps,
    idempotency: &Idempotency,
    lease: Duration,
) -> Result<Outcome> {
    let now_ms = epoch_millis(now);
    if check.not_before_ms > now_ms {
        let wait = Duration::from_millis(check.not_before_ms - now_ms);
        return match &deps.status_checks {
            Some(checks) if !checks.is_fifo() => {
                checks.schedule(check, now).await?;
                Ok(Outcome::new(
                    Label::Postponed,
                    format!("{} due in {} s", check.message_sid, wait.as_secs()),
                ))
            }
            _ => Err(Error::deferred(
                format!(
                    "status check {} of {} is not due yet",
                    check.attempt, check.message_sid
                ),
                wait,
            )),
        };
    }
    let payload = check.encode();
    run_once(
        idempotency,
        CHECK_NAME,
        &check.key(),
        payload.as_bytes(),
        lease,
        || check_now(check, now, deps),
    )
    .await
}

/// A due check: see [`run_check`].
async fn check_now(check: &StatusCheck, now: SystemTime, deps: &ActionDeps) -> Result<Outcome> {
    let sid = &check.message_sid;
    let Some(record) = deps.sms.get(sid).await? else {
        return Ok(Outcome::new(
            Label::Ignored,
            format!("{sid} has no SMS record"),
        ));
    };
    if record.participant_id.is_none() {
        return Ok(Outcome::new(
            Label::Ignored,
            format!("{sid} has no participant to write onto"),
        ));
    }
    if settled(&record) {
        return Ok(Outcome::new(
            Label::Settled,
            format!("{sid}={}", record.status),
        ));
    }
    let callback = if is_final(&record.status) {
        StatusCallback {
            message_sid: sid.clone(),
            status: record.status,
            error_code: record.error_code,
        }
    } else {
        let read = deps.twilio.fetch_status(sid).await?;
        StatusCallback {
            message_sid: sid.clone(),
            status: read.status,
            error_code: read.error_code,
        }
    };
    let outcome = run(&callback, UNKNOWN_SID_ATTEMPTS, deps).await?;
    if deps.sms.get(sid).await?.is_some_and(|r| settled(&r)) {
        return Ok(outcome);
    }
    let next = deps
        .status_checks
        .as_ref()
        .and_then(|checks| Some((check.next(now, checks.schedule_of_checks())?, checks)));
    match next {
        Some((next, checks)) => {
            checks.schedule(&next, now).await?;
            tracing::info!(action = CHECK_NAME, message_sid = %sid, status = %callback.status, next_attempt = next.attempt, "status not final yet; checking again later");
        }
        _ => {
            tracing::warn!(action = CHECK_NAME, message_sid = %sid, status = %callback.status, attempt = check.attempt, "status checks end here; the status stays as it is");
        }
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Twilio's published example of the event, from the "Delivered" section of
    /// https://www.twilio.com/docs/events/event-types/messaging/outbound-message as published with
    /// schema `Messaging.MessageStatus/7`: the section's second example, whose `messageStatus` is
    /// `DELIVERED` (the first carries `QUEUED`; the fields after `messagingServiceSid` are as in
    /// the first). A webhook sink posts a JSON array of such events
    /// ("the body of each webhook is a JSON array of CloudEvents":
    /// https://www.twilio.com/en-us/blog/validate-twilio-event-streams-webhooks-php), or one event
    /// when the sink does not batch, signed with `X-Twilio-Signature` over the URL carrying
    /// `bodySHA256` (https://www.twilio.com/docs/events/webhook-quickstart).
    const DOCS_DELIVERED: &str = r#"{
      "specversion" : "1.0",
      "type" : "com.twilio.messaging.message.delivered",
      "source" : "AB00000000000000000000000001",
      "id" : "NO00000000000000000000000001",
      "dataschema" : "https://events-schemas.twilio.com/Messaging.MessageStatus/7",
      "datacontenttype" : "2025-10-08T07:17:02.363Z",
      "data" : {
        "messageSid" : "SM0000000000000000000000000000001",
        "timestamp" : "2025-01-01T00:00:00.000Z",
        "accountSid" : "AC0000000000000000000000000000001",
        "eventName" : "com.twilio.messaging.message.delivered",
        "apiVersion" : "2010-04-01",
        "from" : "+11234567890",
        "to" : "+12345678901",
        "messageStatus" : "DELIVERED",
        "messagingServiceSid" : "MG0000000000000000000000000000001",
        "body" : "Ahoy!",
        "statusCallBackUrl" : "https://mycompany.com/an-endpoint",
        "mnc" : "090",
        "mcc" : "310",
        "numberOfSegments" : 1,
        "dateUpdated" : "2025-01-01T00:01:00.000Z"
      }
    }"#;

    fn status_event(kind: &str, sid: &str, data: serde_json::Value) -> serde_json::Value {
        let mut data = data;
        data["messageSid"] = sid.into();
        serde_json::json!({"specversion": "1.0", "type": kind, "source": "/2010-04-01/Accounts/AC1/Messages/SM1.json",
                           "id": format!("EZ{sid}"), "data": data})
    }

    fn callback(sid: &str, status: &str, error_code: Option<&str>) -> StatusCallback {
        StatusCallback {
            message_sid: sid.into(),
            status: status.into(),
            error_code: error_code.map(str::to_owned),
        }
    }

    #[test]
    fn twilios_published_delivered_event_is_a_delivered_callback_batched_or_not() {
        let delivered = callback("SM0000000000000000000000000000001", "delivered", None);
        assert_eq!(
            StatusCallback::from_event_stream(&format!("[{DOCS_DELIVERED}]"), |_| true).unwrap(),
            std::slice::from_ref(&delivered)
        );
        assert_eq!(
            StatusCallback::from_event_stream(DOCS_DELIVERED, |_| true).unwrap(),
            std::slice::from_ref(&delivered)
        );
        // The section's other example: the type says delivered, the data says QUEUED.
        let queued = DOCS_DELIVERED.replace("\"DELIVERED\"", "\"QUEUED\"");
        assert_eq!(
            StatusCallback::from_event_stream(&queued, |_| true).unwrap(),
            [delivered]
        );
    }

    #[test]
    fn every_status_event_of_a_batch_is_read_and_other_types_are_skipped() {
        use serde_json::json;
        let body = json!([
            status_event("com.twilio.messaging.message.sent", "SM1", json!({"messageStatus": "SENT"})),
            {"specversion": "1.0", "type": "com.twilio.messaging.inbound-message.received", "id": "EZ2",
             "data": {"messageSid": "SM2", "body": "STOP"}},
            {"specversion": "1.0", "type": "com.twilio.accountsecurity.verify.message.delivered",
             "data": {"message_status": "DELIVERED"}},
            {"specversion": "1.0", "type": "com.twilio.conversations.delivery.updated", "data": {"Status": "read"}},
            status_event("com.twilio.messaging.message.undelivered", "SM3",
                         json!({"messageStatus": "UNDELIVERED", "errorCode": 30003})),
            status_event("com.twilio.messaging.message.failed", "SM4",
                         json!({"messageStatus": "FAILED", "errorCode": "30008"})),
            status_event("com.twilio.messaging.message.read", "SM1", json!({"messageStatus": "READ", "errorCode": null})),
            status_event("com.twilio.messaging.message.sent", "SM1", json!({"messageStatus": "SENT"})),
        ]);
        assert_eq!(
            StatusCallback::from_event_stream(&body.to_string(), |_| true).unwrap(),
            [
                callback("SM1", "sent", None),
                callback("SM3", "undelivered", Some("30003")),
                callback("SM4", "failed", Some("30008")),
                callback("SM1", "read", None),
            ],
            "the repeated sent counts once"
        );
        let only_others = json!([{"specversion": "1.0", "type": "com.twilio.messaging.inbound-message.received",
                                   "data": {"messageSid": "SM2"}}]);
        assert!(
            StatusCallback::from_event_stream(&only_others.to_string(), |_| true)
                .unwrap()
                .is_empty()
        );
        assert!(StatusCallback::from_event_stream("[]", |_| true)
            .unwrap()
            .is_empty());
        // A type naming a status this relay does not know falls back to the data's status.
        let odd = status_event(
            "com.twilio.messaging.message.updated",
            "SM5",
            json!({"messageStatus": "SENT"}),
        );
        assert_eq!(
            StatusCallback::from_event_stream(&odd.to_string(), |_| true).unwrap(),
            [callback("SM5", "sent", None)]
        );
    }

    #[test]
    fn status_events_of_messages_the_relay_did_not_send_are_skipped() {
        use serde_json::json;
        let body = json!([
            status_event(
                "com.twilio.messaging.message.delivered",
                "SM1",
                json!({"from": "+15005550006"})
            ),
            status_event(
                "com.twilio.messaging.message.delivered",
                "SM2",
                json!({"from": "+15005550007"})
            ),
            status_event("com.twilio.messaging.message.delivered", "SM3", json!({})),
        ]);
        let ours = |data: &serde_json::Map<String, serde_json::Value>| {
            data.get("from").and_then(|v| v.as_str()) == Some("+15005550006")
        };
        assert_eq!(
            StatusCallback::from_event_stream(&body.to_string(), ours).unwrap(),
            [callback("SM1", "delivered", None)]
        );
    }

    #[test]
    fn a_body_that_is_not_cloud_events_is_permanent_with_its_reason() {
        let refuse = |body: &str| {
            let error = StatusCallback::from_event_stream(body, |_| true).unwrap_err();
            assert_eq!(error.class(), "permanent", "{body}");
            error.to_string()
        };
        assert!(refuse("{not json").contains("not JSON"));
        assert!(refuse("\"delivered\"").contains("neither an object nor an array"));
        assert!(
            refuse(r#"{"MessageSid": "SM1", "MessageStatus": "delivered"}"#)
                .contains("no specversion")
        );
        assert!(refuse(r#"[{"specversion": "1.0"}]"#).contains("no type"));
        assert!(refuse(&format!("[{DOCS_DELIVERED}, 7]")).contains("event 1 is not an object"));
        let no_sid = r#"[{"specversion": "1.0", "type": "com.twilio.messaging.message.sent", "data": {"messageStatus": "SENT"}}]"#;
        assert!(refuse(no_sid).contains("no data.messageSid"));
    }

    #[test]
    fn status_checks_round_trip_and_malformed_ones_are_not_checks() {
        let check = StatusCheck {
            message_sid: "SM1".into(),
            attempt: 3,
            not_before_ms: 1_700_000_000_000,
        };
        assert_eq!(check.encode(), "SM1;3;1700000000000");
        assert_eq!(StatusCheck::parse(&check.encode()), Some(check));
        for bad in [
            "",
            "SM1",
            "SM1;1",
            ";1;1",
            "SM1;0;1",
            "SM1;x;1",
            "SM1;1;1;extra",
        ] {
            assert_eq!(StatusCheck::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn checks_follow_the_schedule_then_stop() {
        let sent = std::time::UNIX_EPOCH + Duration::from_secs(1_000);
        let mut check = StatusCheck::first("SM1", sent, &DEFAULT_CHECK_SCHEDULE).unwrap();
        assert_eq!((check.attempt, check.not_before_ms), (1, 1_060_000));
        let mut waits = Vec::new();
        let mut now = sent + Duration::from_secs(60);
        while let Some(next) = check.next(now, &DEFAULT_CHECK_SCHEDULE) {
            waits.push((next.not_before_ms - epoch_millis(now)) / 1000);
            now = std::time::UNIX_EPOCH + Duration::from_millis(next.not_before_ms);
            check = next;
        }
        assert_eq!(waits, [300, 1800, 7200, 21600]);
        assert_eq!(check.attempt, DEFAULT_CHECK_SCHEDULE.len() as u32);
        // One run per check, however often it is delivered; another attempt is another run.
        let again = StatusCheck::parse(&check.encode()).unwrap();
        assert_eq!(check.key(), again.key());
        assert_ne!(
            check.key(),
            StatusCheck::first("SM1", sent, &DEFAULT_CHECK_SCHEDULE)
                .unwrap()
                .key()
        );
    }

    #[test]
    fn final_statuses_end_the_checks() {
        for status in [
            "delivered",
            "undelivered",
            "failed",
            "canceled",
            "partially_delivered",
            "read",
        ] {
            assert!(is_final(status), "{status}");
        }
        for status in [
            "queued",
            "accepted",
            "scheduled",
            "sending",
            "sent",
            "received",
            "bogus",
        ] {
            assert!(!is_final(status), "{status}");
        }
    }

    #[test]
    fn a_callback_form_is_read_and_incomplete_ones_are_permanent() {
        let cb = StatusCallback::from_form(
            "MessageSid=SM1&MessageStatus=undelivered&ErrorCode=30003&To=%2B1",
        )
        .unwrap();
        assert_eq!(cb.message_sid, "SM1");
        assert_eq!(cb.status, "undelivered");
        assert_eq!(cb.error_code.as_deref(), Some("30003"));
        assert_eq!(
            StatusCallback::from_form("MessageStatus=sent")
                .unwrap_err()
                .class(),
            "permanent"
        );
        assert_eq!(
            StatusCallback::from_form("MessageSid=SM1&ErrorCode=")
                .unwrap_err()
                .class(),
            "permanent"
        );
    }

    #[tokio::test]
    async fn a_check_is_queued_rounded_up_to_its_time_and_at_most_sqs_delay() {
        use crate::inbound::jobs::MemoryJobs;
        let jobs = Arc::new(MemoryJobs::default());
        let checks = StatusChecks::over(jobs.clone(), DEFAULT_CHECK_SCHEDULE.to_vec());
        let now = SystemTime::now();
        let soon = StatusCheck {
            message_sid: "SM1".into(),
            attempt: 1,
            not_before_ms: epoch_millis(now) + 1_500,
        };
        let later = StatusCheck {
            attempt: 2,
            not_before_ms: epoch_millis(now) + 7_200_000,
            ..soon.clone()
        };
        checks.schedule(&soon, now).await.unwrap();
        checks.schedule(&later, now).await.unwrap();
        let sent = jobs.sent();
        assert_eq!(
            sent[0].delay,
            Duration::from_secs(2),
            "never a moment early"
        );
        assert_eq!(sent[1].delay, MAX_DELAY, "queued again for the rest");
        assert_eq!(
            sent[0].attributes,
            [(CHECK_ATTRIBUTE.to_owned(), soon.encode())]
        );
        assert_eq!(StatusCheck::parse(&sent[1].attributes[0].1), Some(later));
    }
}

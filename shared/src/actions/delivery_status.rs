//! Write a Twilio delivery status onto the Genesys conversation the SMS followed up.
//!
//! Statuses only move forward (a late `sent` never overwrites `delivered`) and duplicates are
//! no-ops. A callback for a message the ledger does not know yet is retried a few times, since it
//! can race the ledger write, then dead-lettered.
//!
//! A status arrives either as Twilio's form-encoded status callback or as JSON from a Twilio Event
//! Streams webhook sink (CloudEvents); both become the same [`StatusCallback`].

use serde_json::Value;

use super::{status_attributes, ActionDeps, Outcome};
use crate::error::{Error, Result};
use crate::sms_store::Advance;
use crate::twilio::status_rank;

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

/// Applies one callback; `attempt` is how many times it has been delivered (1 the first time).
pub async fn run(callback: &StatusCallback, attempt: u32, deps: &ActionDeps) -> Result<Outcome> {
    let Some(rank) = status_rank(&callback.status) else {
        return Ok(Outcome::new(
            "ignored",
            format!(
                "status {} is not an outbound delivery status",
                callback.status
            ),
        ));
    };
    let sid = &callback.message_sid;
    let mut record = match deps
        .sms
        .advance(sid, &callback.status, rank, callback.error_code.as_deref())
        .await?
    {
        Advance::Write(record) => record,
        Advance::Stale => {
            return Ok(Outcome::new(
                "stale",
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
    let Some(participant) = record.participant_id.clone() else {
        return Ok(Outcome::new(
            "ignored",
            format!("{sid} has no participant to write onto"),
        ));
    };
    let prefix = &deps.rules.delivery_status.attribute_prefix;
    // Write until the newest status seen is the one written: a newer callback racing this one
    // makes `mark_written` fail, and the loop writes that newer status too.
    for _ in 0..8 {
        let attributes = status_attributes(
            prefix,
            &[
                ("status", record.status.as_str()),
                ("messageSid", sid.as_str()),
                ("errorCode", record.error_code.as_deref().unwrap_or("")),
            ],
        );
        deps.genesys
            .patch_participant_attributes(&record.conversation_id, &participant, &attributes)
            .await?;
        if deps.sms.mark_written(sid, record.status_rank).await? {
            return Ok(Outcome::new("written", format!("{sid}={}", record.status)));
        }
        match deps.sms.get(sid).await? {
            Some(newer) if newer.written_rank < newer.status_rank => record = newer,
            _ => return Ok(Outcome::new("written", format!("{sid}={}", record.status))),
        }
    }
    Err(Error::retryable(format!(
        "status of {sid} kept changing while it was written"
    )))
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
}

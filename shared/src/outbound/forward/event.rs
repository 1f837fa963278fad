//! The queued event as endpoints receive it: its type, its time and its JSON text.

use std::borrow::Cow;

use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::inbound::event::EventTime;
use crate::inbound::queue::{Envelope, MediaType, Source};

/// One queued event, read once for all of its deliveries.
#[derive(Debug)]
pub struct Event<'a> {
    /// Its queue envelope.
    pub envelope: &'a Envelope,
    /// The payload as queued (what its claims hash).
    pub payload: &'a str,
    /// Its type, which endpoints subscribe to.
    pub kind: String,
    /// Its JSON text, as delivered.
    pub text: Cow<'a, str>,
    /// When it happened (or was received).
    pub occurred_at: OffsetDateTime,
}

impl<'a> Event<'a> {
    /// Reads the queued `payload` of `envelope`.
    pub fn new(envelope: &'a Envelope, payload: &'a str) -> Self {
        let value = event_value(envelope, payload);
        let occurred_at = value
            .pointer("/eventBody/eventTime")
            .and_then(EventTime::from_json)
            .and_then(|t| {
                OffsetDateTime::from_unix_timestamp_nanos(i128::from(t.0) * 1_000_000).ok()
            })
            .unwrap_or(envelope.received_at);
        Self {
            envelope,
            payload,
            kind: event_type(envelope, &value),
            text: event_text(envelope, payload),
            occurred_at,
        }
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
/// fields as an object. Not what is delivered (see `event_text`): parsing rounds large numbers
/// and keeps one of duplicate keys.
pub fn event_value(envelope: &Envelope, payload: &str) -> Value {
    if is_form(envelope) {
        return form_fields(payload);
    }
    serde_json::from_str(payload).unwrap_or(Value::String(payload.to_owned()))
}

/// The event's JSON text as delivered: a JSON body exactly as queued, a form's fields as a JSON
/// object.
pub(crate) fn event_text<'a>(envelope: &Envelope, payload: &'a str) -> Cow<'a, str> {
    if is_form(envelope) {
        Cow::Owned(form_fields(payload).to_string())
    } else {
        Cow::Borrowed(payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inbound::event::EventKey;

    fn envelope(content_type: MediaType) -> Envelope {
        Envelope {
            event_key: EventKey::from_parts(&["k"]),
            source: Source::GenesysWebhook,
            received_at: OffsetDateTime::UNIX_EPOCH,
            content_type,
            correlation_id: None,
            group_id: "g".into(),
        }
    }

    #[test]
    fn a_json_body_is_delivered_as_queued_and_a_form_as_an_object() {
        let json = r#" {"n": 1.50, "n": 12345678901234567890123} "#;
        let envelope_json = envelope(MediaType::Json);
        assert!(matches!(event_text(&envelope_json, json), Cow::Borrowed(t) if t == json));
        assert_eq!(
            event_text(
                &envelope(MediaType::Form),
                "MessageSid=SM1&MessageStatus=sent"
            ),
            r#"{"MessageSid":"SM1","MessageStatus":"sent"}"#
        );
    }

    #[test]
    fn the_type_is_the_topic_and_the_time_the_event_time_else_the_receipt() {
        let envelope = envelope(MediaType::Json);
        let body = r#"{"topicName": "v2.detail.events.conversation.x.acw", "eventBody": {"eventTime": 1700000000000}}"#;
        let event = Event::new(&envelope, body);
        assert_eq!(event.kind, "v2.detail.events.conversation.x.acw");
        assert_eq!(event.occurred_at.unix_timestamp(), 1_700_000_000);
        let bare = Event::new(&envelope, "{}");
        assert_eq!(bare.kind, "genesys.webhook");
        assert_eq!(bare.occurred_at, OffsetDateTime::UNIX_EPOCH);
    }
}

//! The SQS message envelope: what the receiver stores and the processor reads back.
//!
//! The body is the payload exactly as received, so signatures and hashes stay checkable
//! downstream; everything else rides in message attributes. A body SQS cannot carry (too large
//! with its attributes, or holding characters SQS refuses) is put in S3 and the message carries a
//! claim check instead. Every value that reaches SQS is kept within SQS's limits here, so a message
//! never fails at `SendMessage` for its content: a send failure is `Retryable` (the receiver
//! answers 503 and the sender tries again), and a body that cannot be carried at all is `Rejected`.

use std::collections::HashMap;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_sqs::types::{
    MessageAttributeValue, MessageSystemAttributeNameForSends, MessageSystemAttributeValue,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::error::{Error, Rejection, Result};
use crate::inbound::event::EventKey;

/// Attribute names; SQS allows letters, digits, `-`, `_` and `.`.
pub mod attr {
    /// The event key (dedup key).
    pub const EVENT_KEY: &str = "event-key";
    /// Where the event came from; see [`super::Source`].
    pub const SOURCE: &str = "source";
    /// When the receiver accepted it (RFC 3339, UTC).
    pub const RECEIVED_AT: &str = "received-at";
    /// The Content-Type it arrived with.
    pub const CONTENT_TYPE: &str = "content-type";
    /// Correlation id for tracing, when known.
    pub const CORRELATION_ID: &str = "correlation-id";
    /// Present when the body is a claim check (value `s3`).
    pub const CLAIM_CHECK: &str = "claim-check";
}

/// Prefix of claim-check objects in the bucket (the template's lifecycle rule expires it).
pub(crate) const CLAIM_CHECK_PREFIX: &str = "claim-checks/";

/// The largest SQS message, body and attributes (name, type and value) together. Queues may be
/// configured larger today, but this is the limit every queue honours.
pub(crate) const SQS_MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// Longest id put in an attribute or a message group id (SQS's limit for group ids).
pub(crate) const MAX_ID_LEN: usize = 128;

/// The data type of every attribute this module writes.
const STRING: &str = "String";

/// `value` made safe to carry as an id (correlation id, message group id): kept when it is 1 to
/// `MAX_ID_LEN` visible ASCII characters, else replaced by `sha256:<hex of it>`, which stays
/// traceable (hash the id you are looking for) while an over-long or control-laden value never
/// reaches SQS. `None` when it is blank: SQS refuses empty attribute values.
pub fn bounded_id(value: &str) -> Option<String> {
    let value = value.trim();
    if value.is_empty() {
        None
    } else if value.len() <= MAX_ID_LEN && value.bytes().all(|b| b.is_ascii_graphic()) {
        Some(value.to_owned())
    } else {
        Some(format!(
            "sha256:{}",
            hex::encode(Sha256::digest(value.as_bytes()))
        ))
    }
}

/// The first character SQS refuses in a message body, with its byte offset. SQS takes only
/// `#x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD | #x10000-#x10FFFF` (XML's characters); a Rust
/// string holds no surrogates, so the C0 controls and U+FFFE / U+FFFF are what remain.
pub(crate) fn refused_char(body: &str) -> Option<(usize, char)> {
    body.char_indices().find(|&(_, c)| {
        !matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
    })
}

/// Where an event came from, which decides how the processor reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A Genesys webhook (JSON).
    GenesysWebhook,
    /// A Twilio message status callback (form or JSON).
    TwilioStatus,
    /// An event from the Genesys EventBridge integration, queued for forwarding (body: its detail).
    GenesysEventBridge,
}

impl Source {
    /// The attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::GenesysWebhook => "genesys-webhook",
            Self::TwilioStatus => "twilio-status",
            Self::GenesysEventBridge => "genesys-eventbridge",
        }
    }

    /// Reads an attribute value.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "genesys-webhook" => Some(Self::GenesysWebhook),
            "twilio-status" => Some(Self::TwilioStatus),
            "genesys-eventbridge" => Some(Self::GenesysEventBridge),
            _ => None,
        }
    }
}

/// What a payload is: the two media types the receiver takes (a JSON body, `+json` types
/// included, or a form), and what events from the EventBridge integration are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaType {
    /// `application/json`, or any `application/*+json`.
    Json,
    /// `application/x-www-form-urlencoded` (Twilio's status callbacks).
    Form,
}

impl MediaType {
    /// The media type of a `Content-Type` value's type and subtype (lowercase, no parameters);
    /// `None` for one the relay does not take.
    pub fn parse(media_type: &str) -> Option<Self> {
        if media_type == "application/x-www-form-urlencoded" {
            Some(Self::Form)
        } else if media_type == "application/json"
            || (media_type.starts_with("application/") && media_type.ends_with("+json"))
        {
            Some(Self::Json)
        } else {
            None
        }
    }

    /// The media type as stored and sent on.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Json => "application/json",
            Self::Form => "application/x-www-form-urlencoded",
        }
    }
}

/// Everything known about one accepted event apart from its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// Dedup key.
    pub event_key: EventKey,
    /// Origin.
    pub source: Source,
    /// When it was accepted.
    pub received_at: OffsetDateTime,
    /// What the payload is.
    pub content_type: MediaType,
    /// Correlation id, when the sender gave one.
    pub correlation_id: Option<String>,
    /// FIFO message group (the conversation id when known, else the event key); ignored on a
    /// standard queue.
    pub group_id: String,
}

/// Where a large payload was put instead of the message body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimCheck {
    /// Bucket name.
    pub bucket: String,
    /// Object key.
    pub key: String,
    /// Payload size in bytes.
    pub size: usize,
    /// Hex SHA-256 of the payload, so the reader can tell it got the right bytes.
    pub sha256: String,
}

/// The message body: the payload itself, or a claim check for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// The payload as received.
    Inline(String),
    /// The payload is in S3.
    ClaimCheck(ClaimCheck),
}

/// Sends envelopes to the main queue, with S3 for bodies SQS cannot carry.
#[derive(Debug, Clone)]
pub struct QueueSender {
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    fifo: bool,
    claim_checks: Option<(aws_sdk_s3::Client, String)>,
    inline_max: usize,
}

impl QueueSender {
    /// A sender for `queue_url`; `claim_checks` is the S3 client and bucket for bodies over
    /// `inline_max` bytes and for any other body SQS cannot carry (see [`Self::send`]).
    pub fn new(
        sqs: aws_sdk_sqs::Client,
        queue_url: impl Into<String>,
        claim_checks: Option<(aws_sdk_s3::Client, String)>,
        inline_max: usize,
    ) -> Self {
        let queue_url = queue_url.into();
        Self {
            fifo: crate::aws::is_fifo_queue(&queue_url),
            sqs,
            queue_url,
            claim_checks,
            inline_max,
        }
    }

    /// A sender for `queue_url` built from one AWS configuration, with claim checks in `bucket`
    /// when one is configured: what the receiver and the EventBridge handler queue with.
    pub fn from_aws(
        aws: &aws_config::SdkConfig,
        queue_url: impl Into<String>,
        bucket: Option<String>,
        inline_max: usize,
    ) -> Self {
        let claim_checks = bucket.map(|bucket| (crate::aws::s3_client(aws), bucket));
        Self::new(
            aws_sdk_sqs::Client::new(aws),
            queue_url,
            claim_checks,
            inline_max,
        )
    }

    /// The largest body this sender can queue, given the receiver's own `limit`: without a
    /// claim-check bucket, nothing larger than one SQS message. A cheap first bound only: `send`
    /// still refuses a body that is over the limit once its attributes are counted.
    pub fn max_body(&self, limit: usize) -> usize {
        match self.claim_checks {
            Some(_) => limit,
            None => limit.min(self.inline_max),
        }
    }

    /// Stores one event; returns only once SQS has accepted it.
    ///
    /// The body goes inline when it is at most the claim-check threshold, fits in
    /// `SQS_MAX_MESSAGE_BYTES` together with its attributes, and holds only characters SQS
    /// takes; otherwise it goes to S3 behind a claim check. Without a claim-check bucket such a
    /// body is `Rejected` as too large to carry (413), never retried against a queue that would
    /// refuse it forever.
    pub async fn send(&self, envelope: &Envelope, body: String) -> Result<()> {
        let inline_size = body.len() + attributes_size(&attribute_pairs(envelope, false)?);
        let refused = refused_char(&body);
        let payload = if body.len() <= self.inline_max
            && inline_size <= SQS_MAX_MESSAGE_BYTES
            && refused.is_none()
        {
            Payload::Inline(body)
        } else if let Some((s3, bucket)) = &self.claim_checks {
            Payload::ClaimCheck(put_claim_check(s3, bucket, envelope, body).await?)
        } else {
            let why = match refused {
                Some((at, c)) => format!(
                    "body holds U+{:04X} at byte {at}, which an SQS message cannot carry",
                    u32::from(c)
                ),
                None => format!(
                    "body is {} bytes ({inline_size} with its message attributes); a queue message \
                     takes at most {}",
                    body.len(),
                    self.inline_max.min(SQS_MAX_MESSAGE_BYTES)
                ),
            };
            return Err(Error::rejected(
                Rejection::PayloadTooLarge,
                format!("{why}, and no claim-check bucket is configured"),
            ));
        };
        let (message_body, attributes) = encode(envelope, &payload)?;
        let mut request = self
            .sqs
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(message_body)
            .set_message_attributes(Some(attributes));
        if let Some(trace) = crate::telemetry::trace_header() {
            // The event's path stays one X-Ray trace: Lambda starts the processor's segment from
            // the message's AWSTraceHeader.
            let value = MessageSystemAttributeValue::builder()
                .data_type("String")
                .string_value(trace)
                .build()
                .map_err(|e| Error::permanent(format!("trace header attribute: {e}")))?;
            request = request.message_system_attributes(
                MessageSystemAttributeNameForSends::AwsTraceHeader,
                value,
            );
        }
        if self.fifo {
            let group = bounded_id(&envelope.group_id)
                .unwrap_or_else(|| envelope.event_key.as_str().to_owned());
            request = request
                .message_group_id(group)
                .message_deduplication_id(envelope.event_key.as_str());
        }
        request
            .send()
            .await
            .map_err(|e| crate::aws::unavailable("send the message to the queue", e))?;
        Ok(())
    }
}

/// Stores `body` in the claim-check bucket, under a key derived from its content.
async fn put_claim_check(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    envelope: &Envelope,
    body: String,
) -> Result<ClaimCheck> {
    let sha256 = hex::encode(Sha256::digest(body.as_bytes()));
    // Content-addressed: a retried delivery of the same body rewrites the same object.
    let key = format!("{CLAIM_CHECK_PREFIX}{sha256}");
    let size = body.len();
    s3.put_object()
        .bucket(bucket)
        .key(&key)
        .content_type(envelope.content_type.as_str())
        .body(ByteStream::from(body.into_bytes()))
        .send()
        .await
        .map_err(|e| crate::aws::unavailable("store the claim check", e))?;
    Ok(ClaimCheck {
        bucket: bucket.to_owned(),
        key,
        size,
        sha256,
    })
}

/// The SQS body and attributes for an envelope and its payload. The correlation id is passed
/// through [`bounded_id`], so no caller can put an unbounded value in an attribute.
pub fn encode(
    envelope: &Envelope,
    payload: &Payload,
) -> Result<(String, HashMap<String, MessageAttributeValue>)> {
    let (body, claim_check) = match payload {
        Payload::Inline(body) => (body.clone(), false),
        Payload::ClaimCheck(check) => (
            serde_json::to_string(check)
                .map_err(|e| Error::permanent(format!("cannot encode claim check: {e}")))?,
            true,
        ),
    };
    let attributes = attribute_pairs(envelope, claim_check)?
        .into_iter()
        .map(|(name, value)| {
            let value = MessageAttributeValue::builder()
                .data_type(STRING)
                .string_value(value)
                .build()
                .map_err(|e| Error::permanent(format!("attribute {name}: {e}")))?;
            Ok((name.to_owned(), value))
        })
        .collect::<Result<_>>()?;
    Ok((body, attributes))
}

/// The attribute names and values [`encode`] writes.
fn attribute_pairs(envelope: &Envelope, claim_check: bool) -> Result<Vec<(&'static str, String)>> {
    let received_at = envelope
        .received_at
        .format(&Rfc3339)
        .map_err(|e| Error::permanent(format!("cannot format received-at: {e}")))?;
    let mut pairs = vec![
        (attr::EVENT_KEY, envelope.event_key.as_str().to_owned()),
        (attr::SOURCE, envelope.source.as_str().to_owned()),
        (attr::RECEIVED_AT, received_at),
        (
            attr::CONTENT_TYPE,
            envelope.content_type.as_str().to_owned(),
        ),
    ];
    if let Some(id) = envelope.correlation_id.as_deref().and_then(bounded_id) {
        pairs.push((attr::CORRELATION_ID, id));
    }
    if claim_check {
        pairs.push((attr::CLAIM_CHECK, "s3".to_owned()));
    }
    Ok(pairs)
}

/// What attributes add to a message's size: SQS counts each one's name, type and value.
fn attributes_size(pairs: &[(&str, String)]) -> usize {
    pairs
        .iter()
        .map(|(name, value)| name.len() + STRING.len() + value.len())
        .sum()
}

/// Reads a message back; `attribute` looks up a string attribute by name. A message that does not
/// decode is `Permanent`: retrying cannot fix it.
pub fn decode(
    body: &str,
    attribute: impl Fn(&str) -> Option<String>,
) -> Result<(Envelope, Payload)> {
    let required = |name: &str| {
        attribute(name).ok_or_else(|| Error::permanent(format!("message has no {name} attribute")))
    };
    let event_key = EventKey::from_stored(&required(attr::EVENT_KEY)?);
    let source_raw = required(attr::SOURCE)?;
    let source = Source::parse(&source_raw)
        .ok_or_else(|| Error::permanent(format!("unknown source {source_raw:?}")))?;
    let received_at = OffsetDateTime::parse(&required(attr::RECEIVED_AT)?, &Rfc3339)
        .map_err(|_| Error::permanent("received-at is not RFC 3339"))?;
    let payload = if attribute(attr::CLAIM_CHECK).is_some() {
        Payload::ClaimCheck(
            serde_json::from_str(body)
                .map_err(|_| Error::permanent("claim check body is malformed"))?,
        )
    } else {
        Payload::Inline(body.to_owned())
    };
    let envelope = Envelope {
        group_id: event_key.as_str().to_owned(),
        event_key,
        source,
        received_at,
        content_type: {
            let raw = required(attr::CONTENT_TYPE)?;
            MediaType::parse(&raw)
                .ok_or_else(|| Error::permanent(format!("unknown content type {raw:?}")))?
        },
        // Bounded as `encode` bounds it, so a decoded envelope encodes to the same message.
        correlation_id: attribute(attr::CORRELATION_ID)
            .as_deref()
            .and_then(bounded_id),
    };
    Ok((envelope, payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope() -> Envelope {
        Envelope {
            event_key: EventKey::from_parts(&["c1", "42"]),
            source: Source::GenesysWebhook,
            received_at: OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap(),
            content_type: MediaType::Json,
            correlation_id: Some("corr".into()),
            group_id: "c1".into(),
        }
    }

    fn lookup(
        attrs: &HashMap<String, MessageAttributeValue>,
    ) -> impl Fn(&str) -> Option<String> + '_ {
        |name| {
            attrs
                .get(name)
                .and_then(|v| v.string_value().map(str::to_owned))
        }
    }

    #[test]
    fn inline_and_claim_check_messages_round_trip() {
        let check = ClaimCheck {
            bucket: "b".into(),
            key: "claim-checks/x".into(),
            size: 3,
            sha256: "ab".into(),
        };
        for payload in [
            Payload::Inline("{\"a\":1}".into()),
            Payload::ClaimCheck(check),
        ] {
            let (body, attrs) = encode(&envelope(), &payload).unwrap();
            let (decoded, decoded_payload) = decode(&body, lookup(&attrs)).unwrap();
            assert_eq!(decoded_payload, payload);
            assert_eq!(decoded.event_key, envelope().event_key);
            assert_eq!(decoded.received_at, envelope().received_at);
            assert_eq!(decoded.correlation_id.as_deref(), Some("corr"));
        }
    }

    #[test]
    fn ids_are_kept_hashed_or_dropped() {
        assert_eq!(bounded_id(" corr-1 ").as_deref(), Some("corr-1"));
        assert_eq!(bounded_id("  "), None);
        let hashed = |v: &str| format!("sha256:{}", hex::encode(Sha256::digest(v.as_bytes())));
        for bad in [
            "x".repeat(MAX_ID_LEN + 1),
            "a b".into(),
            "bad\u{1}id".into(),
            "é".into(),
        ] {
            assert_eq!(bounded_id(&bad), Some(hashed(&bad)), "{bad:?}");
        }
        let max = "x".repeat(MAX_ID_LEN);
        assert_eq!(bounded_id(&max).as_deref(), Some(max.as_str()));
        // Idempotent, so a decoded envelope encodes to the same attributes.
        let once = bounded_id(&"x".repeat(500)).unwrap();
        assert_eq!(bounded_id(&once).as_deref(), Some(once.as_str()));
    }

    #[test]
    fn characters_sqs_refuses_are_found() {
        assert_eq!(
            refused_char("{\"a\":\"tab\there\r\n\u{D7FF}\u{E000}\u{FFFD}\u{10FFFF}\"}"),
            None
        );
        assert_eq!(refused_char("ab\u{FFFF}"), Some((2, '\u{FFFF}')));
        assert_eq!(refused_char("\u{FFFE}"), Some((0, '\u{FFFE}')));
        assert_eq!(refused_char("a=\u{1}"), Some((2, '\u{1}')));
        assert_eq!(refused_char("\u{0}"), Some((0, '\u{0}')));
        assert_eq!(refused_char("\u{B}"), Some((0, '\u{B}')));
    }

    #[test]
    fn an_unbounded_correlation_id_never_reaches_an_attribute() {
        let mut long = envelope();
        long.correlation_id = Some("c".repeat(10_000));
        let (body, attrs) = encode(&long, &Payload::Inline("{}".into())).unwrap();
        let stored = lookup(&attrs)(attr::CORRELATION_ID).unwrap();
        assert!(stored.starts_with("sha256:") && stored.len() <= MAX_ID_LEN);
        let (decoded, _) = decode(&body, lookup(&attrs)).unwrap();
        assert_eq!(decoded.correlation_id.as_deref(), Some(stored.as_str()));
        // A blank one is left out rather than sent empty, which SQS refuses.
        long.correlation_id = Some(" ".into());
        let (_, attrs) = encode(&long, &Payload::Inline("{}".into())).unwrap();
        assert!(!attrs.contains_key(attr::CORRELATION_ID));
        // The size SQS counts is name, type and value of each attribute.
        let pairs = attribute_pairs(&envelope(), false).unwrap();
        let counted: usize = attrs_len(
            &encode(&envelope(), &Payload::Inline("{}".into()))
                .unwrap()
                .1,
        );
        assert_eq!(attributes_size(&pairs), counted);
    }

    fn attrs_len(attrs: &HashMap<String, MessageAttributeValue>) -> usize {
        attrs
            .iter()
            .map(|(name, v)| {
                name.len() + v.data_type().len() + v.string_value().unwrap_or("").len()
            })
            .sum()
    }

    #[test]
    fn a_stored_event_key_is_read_back_verbatim() {
        let mut escaped = envelope();
        escaped.event_key = EventKey::from_parts(&["x:y", "z"]);
        let (body, attrs) = encode(&escaped, &Payload::Inline("{}".into())).unwrap();
        let (decoded, _) = decode(&body, lookup(&attrs)).unwrap();
        assert_eq!(decoded.event_key, escaped.event_key);
    }

    #[test]
    fn a_message_without_its_attributes_is_permanent() {
        let (body, mut attrs) = encode(&envelope(), &Payload::Inline("{}".into())).unwrap();
        attrs.remove(attr::SOURCE);
        let err = decode(&body, lookup(&attrs)).unwrap_err();
        assert_eq!(err.class(), "permanent");
        assert!(err.to_string().contains("source"), "{err}");
    }
}

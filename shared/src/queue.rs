//! The SQS message envelope: what the receiver stores and the processor reads back.
//!
//! The body is the payload exactly as received, so signatures and hashes stay checkable
//! downstream; everything else rides in message attributes. A body too large for SQS is put in S3
//! and the message carries a claim check instead. Sending is all-or-nothing from the caller's view:
//! any failure is `Retryable`, so the receiver answers 503 and the sender tries again.

use std::collections::HashMap;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_sqs::types::MessageAttributeValue;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::event::EventKey;

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
pub const CLAIM_CHECK_PREFIX: &str = "claim-checks/";

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

/// Everything known about one accepted event apart from its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// Dedup key.
    pub event_key: EventKey,
    /// Origin.
    pub source: Source,
    /// When it was accepted.
    pub received_at: OffsetDateTime,
    /// Content type as received.
    pub content_type: String,
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

/// Sends envelopes to the main queue, with S3 for large bodies.
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
    /// `inline_max` bytes.
    pub fn new(
        sqs: aws_sdk_sqs::Client,
        queue_url: impl Into<String>,
        claim_checks: Option<(aws_sdk_s3::Client, String)>,
        inline_max: usize,
    ) -> Self {
        let queue_url = queue_url.into();
        Self {
            fifo: queue_url.ends_with(".fifo"),
            sqs,
            queue_url,
            claim_checks,
            inline_max,
        }
    }

    /// The largest body this sender can queue, given the receiver's own `limit`: without a
    /// claim-check bucket, nothing larger than one SQS message.
    pub fn max_body(&self, limit: usize) -> usize {
        match self.claim_checks {
            Some(_) => limit,
            None => limit.min(self.inline_max),
        }
    }

    /// Stores one event; returns only once SQS has accepted it.
    pub async fn send(&self, envelope: &Envelope, body: String) -> Result<()> {
        let payload = if body.len() <= self.inline_max {
            Payload::Inline(body)
        } else {
            Payload::ClaimCheck(self.put_claim_check(envelope, body).await?)
        };
        let (message_body, attributes) = encode(envelope, &payload)?;
        let mut request = self
            .sqs
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(message_body)
            .set_message_attributes(Some(attributes));
        if self.fifo {
            request = request
                .message_group_id(&envelope.group_id)
                .message_deduplication_id(envelope.event_key.as_str());
        }
        request.send().await.map_err(|e| {
            Error::retryable(format!(
                "SQS did not accept the message: {}",
                aws_sdk_sqs::error::DisplayErrorContext(&e)
            ))
        })?;
        Ok(())
    }

    async fn put_claim_check(&self, envelope: &Envelope, body: String) -> Result<ClaimCheck> {
        let Some((s3, bucket)) = &self.claim_checks else {
            return Err(Error::permanent(
                "body exceeds the SQS limit and no claim-check bucket is configured",
            ));
        };
        let sha256 = hex::encode(Sha256::digest(body.as_bytes()));
        // Content-addressed: a retried delivery of the same body rewrites the same object.
        let key = format!("{CLAIM_CHECK_PREFIX}{sha256}");
        let size = body.len();
        s3.put_object()
            .bucket(bucket)
            .key(&key)
            .content_type(&envelope.content_type)
            .body(ByteStream::from(body.into_bytes()))
            .send()
            .await
            .map_err(|e| {
                Error::retryable(format!(
                    "S3 did not store the claim check: {}",
                    aws_sdk_s3::error::DisplayErrorContext(&e)
                ))
            })?;
        Ok(ClaimCheck {
            bucket: bucket.clone(),
            key,
            size,
            sha256,
        })
    }
}

/// The SQS body and attributes for an envelope and its payload.
pub fn encode(
    envelope: &Envelope,
    payload: &Payload,
) -> Result<(String, HashMap<String, MessageAttributeValue>)> {
    let received_at = envelope
        .received_at
        .format(&Rfc3339)
        .map_err(|e| Error::permanent(format!("cannot format received-at: {e}")))?;
    let mut pairs = vec![
        (attr::EVENT_KEY, envelope.event_key.as_str().to_owned()),
        (attr::SOURCE, envelope.source.as_str().to_owned()),
        (attr::RECEIVED_AT, received_at),
        (attr::CONTENT_TYPE, envelope.content_type.clone()),
    ];
    if let Some(id) = &envelope.correlation_id {
        pairs.push((attr::CORRELATION_ID, id.clone()));
    }
    let body = match payload {
        Payload::Inline(body) => body.clone(),
        Payload::ClaimCheck(check) => {
            pairs.push((attr::CLAIM_CHECK, "s3".to_owned()));
            serde_json::to_string(check)
                .map_err(|e| Error::permanent(format!("cannot encode claim check: {e}")))?
        }
    };
    let attributes = pairs
        .into_iter()
        .map(|(name, value)| {
            let value = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .map_err(|e| Error::permanent(format!("attribute {name}: {e}")))?;
            Ok((name.to_owned(), value))
        })
        .collect::<Result<_>>()?;
    Ok((body, attributes))
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
    let event_key = EventKey::from_parts(&[required(attr::EVENT_KEY)?]);
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
        content_type: required(attr::CONTENT_TYPE)?,
        correlation_id: attribute(attr::CORRELATION_ID),
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
            content_type: "application/json".into(),
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
    fn a_message_without_its_attributes_is_permanent() {
        let (body, mut attrs) = encode(&envelope(), &Payload::Inline("{}".into())).unwrap();
        attrs.remove(attr::SOURCE);
        let err = decode(&body, lookup(&attrs)).unwrap_err();
        assert_eq!(err.class(), "permanent");
        assert!(err.to_string().contains("source"), "{err}");
    }
}

//! Permanent failures go to the DLQ with their reason, so they can be read and replayed.
//!
//! The original body and attributes are kept (a redrive puts the message back as it was) and
//! four attributes name the failure; SQS allows ten, the queue envelope uses at most six.

use std::collections::HashMap;

use crate::error::{Error, Result};
use aws_sdk_sqs::types::MessageAttributeValue;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Attribute names added to a dead-lettered message.
pub mod attr {
    /// `rejected`, `retryable` or `permanent`.
    pub const ERROR_CLASS: &str = "error-class";
    /// The reason, truncated.
    pub const ERROR_MESSAGE: &str = "error-message";
    /// The action that failed, or `decode`.
    pub const ACTION: &str = "action";
    /// When it was dead-lettered (RFC 3339).
    pub const FAILED_AT: &str = "failed-at";
}

const MAX_MESSAGE: usize = 1000;

/// Sends `body` with its original string `attributes` to the DLQ, naming `error` and `action`;
/// an error means it was not stored.
pub async fn send(
    sqs: &aws_sdk_sqs::Client,
    dlq_url: &str,
    body: &str,
    attributes: impl IntoIterator<Item = (String, String)>,
    action: &str,
    error: &Error,
) -> Result<()> {
    let mut attributes: HashMap<String, MessageAttributeValue> = attributes
        .into_iter()
        .filter_map(|(name, value)| Some((name, string(&value)?)))
        .collect();
    let mut reason = error.to_string();
    if reason.len() > MAX_MESSAGE {
        let cut = (0..=MAX_MESSAGE)
            .rev()
            .find(|i| reason.is_char_boundary(*i))
            .unwrap_or_default();
        reason.truncate(cut);
    }
    let failed_at = OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default();
    for (name, value) in [
        (attr::ERROR_CLASS, error.class()),
        (attr::ERROR_MESSAGE, reason.as_str()),
        (attr::ACTION, action),
        (attr::FAILED_AT, failed_at.as_str()),
    ] {
        if let Some(value) = string(value) {
            attributes.insert(name.to_owned(), value);
        }
    }
    sqs.send_message()
        .queue_url(dlq_url)
        .message_body(body)
        .set_message_attributes(Some(attributes))
        .send()
        .await
        .map_err(|e| {
            Error::retryable(format!(
                "DLQ did not accept the message: {}",
                aws_sdk_sqs::error::DisplayErrorContext(&e)
            ))
        })?;
    Ok(())
}

fn string(value: &str) -> Option<MessageAttributeValue> {
    if value.is_empty() {
        return None;
    }
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .ok()
}

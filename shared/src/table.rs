//! The state table's shared vocabulary: attribute constructors, the TTL attribute and how a
//! DynamoDB failure is classified.

use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::AttributeValue;

use crate::error::Error;

/// Name of the TTL attribute (epoch seconds), on every record kind in the table.
pub const EXPIRES_AT: &str = "expires_at";

/// A string attribute.
pub fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

/// A number attribute.
pub fn n(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// Seconds since the epoch (what DynamoDB TTL reads).
pub fn epoch_secs(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// Milliseconds since the epoch.
pub fn epoch_millis(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// A DynamoDB call that failed outright: the table may be back on the next try.
pub fn dynamo_error<E: std::error::Error + Send + Sync + 'static>(
    what: &str,
    e: aws_sdk_dynamodb::error::SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>,
) -> Error {
    Error::retryable(format!(
        "could not {what}: {}",
        aws_sdk_dynamodb::error::DisplayErrorContext(&e)
    ))
}

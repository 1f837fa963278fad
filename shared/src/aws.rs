//! AWS SDK configuration shared by every function: explicit timeouts and a bounded retry budget,
//! so a struggling dependency turns into a fast 503 instead of an API Gateway timeout.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};

use crate::error::Error;

fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .operation_attempt_timeout(Duration::from_secs(2))
        .operation_timeout(Duration::from_secs(4))
        .build()
}

/// Configuration from the Lambda environment (region, role credentials, and `AWS_ENDPOINT_URL`
/// when set, which points every client at a local AWS).
pub async fn load() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(timeouts())
        .retry_config(RetryConfig::standard().with_max_attempts(3))
        .load()
        .await
}

/// Configuration for a local AWS (moto server) at `endpoint`, with dummy credentials: what the
/// tests and the local stack use, so they never reach a real account.
pub async fn local(endpoint: &str) -> SdkConfig {
    let credentials =
        aws_sdk_secretsmanager::config::Credentials::new("test", "test", None, None, "local");
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(credentials)
        .timeout_config(timeouts())
        .retry_config(RetryConfig::standard().with_max_attempts(2))
        .load()
        .await
}

/// An S3 client; path-style addressing when the endpoint is overridden, as local AWS needs.
pub fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
    let s3 = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(config.endpoint_url().is_some())
        .build();
    aws_sdk_s3::Client::from_conf(s3)
}

/// Whether `queue_url` names a FIFO queue (SQS requires the `.fifo` suffix of them), whose
/// messages need a group and a deduplication id and take no delay of their own.
pub fn is_fifo_queue(queue_url: &str) -> bool {
    queue_url.ends_with(".fifo")
}

/// An AWS call that failed outright (throttled, unreachable, a 5xx, a timeout): the service may
/// answer the next try, so it is retryable. `what` says what was being done ("send the message to
/// the queue"); the SDK's error context (service code, message, request id) follows. Failures a
/// caller can tell apart (a conditional check, a missing key) are matched before this.
pub fn unavailable(what: &str, error: impl std::error::Error) -> Error {
    Error::retryable(format!(
        "could not {what}: {}",
        aws_sdk_sqs::error::DisplayErrorContext(error)
    ))
}

//! Response bodies: `202 {"id", "status": "accepted"}` or `{"error": {"code", "message"}}`.

use std::time::Duration;

use genesys_relay::Error;
use lambda_http::{Body, Response};
use serde_json::json;

/// How long a sender is asked to wait after a 503 when the failing dependency gave no hint.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(5);

/// The HTTP status for an error: its rejection's 4xx, 503 for retryable or deferred, 500 for
/// permanent.
pub fn status_of(error: &Error) -> u16 {
    match error {
        Error::Rejected { kind, .. } => kind.status(),
        Error::Retryable { .. } | Error::Deferred { .. } => 503,
        Error::Permanent { .. } => 500,
    }
}

/// The answer to an error. A 5xx tells the client only that it should retry; details stay in logs.
pub fn error(error: &Error, allow: Option<&str>) -> Response<Body> {
    let status = status_of(error);
    let (code, message) = match error {
        Error::Rejected { kind, message } => (kind.code(), message.as_str()),
        Error::Retryable { .. } | Error::Deferred { .. } => {
            ("unavailable", "the event was not stored; retry later")
        }
        Error::Permanent { .. } => ("internal_error", "the event was not stored; retry later"),
    };
    let mut builder = Response::builder().status(status);
    let retry_after = match error {
        Error::Retryable { retry_after, .. } => Some(retry_after.unwrap_or(DEFAULT_RETRY_AFTER)),
        Error::Deferred { wait, .. } => Some(*wait),
        _ => None,
    };
    if let Some(wait) = retry_after {
        builder = builder.header("retry-after", wait.as_secs().max(1));
    }
    if let Some(allow) = allow {
        builder = builder.header("allow", allow);
    }
    json_response(
        builder,
        &json!({"error": {"code": code, "message": message}}),
    )
}

/// `202 Accepted` naming the event key, sent only after the queue took the event.
pub fn accepted(event_key: &str) -> Response<Body> {
    json_response(
        Response::builder().status(202),
        &json!({"id": event_key, "status": "accepted"}),
    )
}

/// `200` for the health route.
pub fn healthy() -> Response<Body> {
    json_response(Response::builder().status(200), &json!({"status": "ok"}))
}

fn json_response(builder: http::response::Builder, body: &serde_json::Value) -> Response<Body> {
    let text = body.to_string();
    builder
        .header("content-type", "application/json")
        .body(Body::Text(text.clone()))
        .unwrap_or_else(|_| {
            // Only an invalid header could fail the builder; never let that pass as a success.
            let mut fallback = Response::new(Body::Text(text));
            *fallback.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
            fallback
        })
}

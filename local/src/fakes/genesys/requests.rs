//! What the Platform API handlers share on the way in: the bearer token check, the record of each
//! authenticated call, and a JSON body read into the operation's request model.

use std::sync::MutexGuard;
use std::time::Instant;

use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::responses::{api_error, bad_request, Refusal};
use super::{lock, Inner, Shared};

/// One authenticated request to the Platform API other than the attributes PATCH, as received, so
/// a test can check what a client asked for, not only what it ended up with.
#[derive(Debug, Clone, PartialEq)]
pub struct IntegrationCall {
    /// `GET`, `POST`, `PUT`, `PATCH`...
    pub method: String,
    /// The path, e.g. `/api/v2/integrations`.
    pub path: String,
    /// The raw query string, if any.
    pub query: Option<String>,
    /// The JSON body, when one was sent and parsed.
    pub body: Option<Value>,
    /// The bearer token it was sent with.
    pub token: String,
}

/// Whether the request's `Content-Type` is `expected`, parameters aside.
pub(super) fn content_type_is(headers: &HeaderMap, expected: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(expected))
}

fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

/// The bearer token of a request when this server issued it and it has neither expired nor been
/// revoked; otherwise the 401 Genesys answers.
pub(super) fn authorized(inner: &mut Inner, headers: &HeaderMap) -> Result<String, Refusal> {
    let valid = bearer_token(headers).filter(|token| {
        inner
            .valid_tokens
            .get(token)
            .is_some_and(|expires| Instant::now() < *expires)
    });
    valid.ok_or_else(|| {
        api_error(
            inner,
            StatusCode::UNAUTHORIZED,
            "bad.credentials",
            "Invalid login credentials.",
        )
        .into()
    })
}

/// The state once an organization, integrations or directory request is counted, its token
/// checked and the call recorded (its body as sent, before any check of it); or the 401.
pub(super) fn admit<'a>(
    shared: &'a Shared,
    request: &Parts,
    body: &[u8],
) -> Result<MutexGuard<'a, Inner>, Refusal> {
    let mut inner = lock(shared);
    inner.requests += 1;
    let token = authorized(&mut inner, &request.headers)?;
    let body = if body.is_empty() {
        None
    } else {
        serde_json::from_slice(body).ok()
    };
    inner.integration_calls.push(IntegrationCall {
        method: request.method.to_string(),
        path: request.uri.path().to_owned(),
        query: request.uri.query().map(str::to_owned),
        body,
        token,
    });
    Ok(inner)
}

/// The body read into `T`, the request model of the operation, or the 400 Genesys answers: the
/// body must be `application/json` and a JSON object (serde would also take a struct from an
/// array) holding only the model's fields, with their types.
pub(super) fn json_body<T: DeserializeOwned>(
    inner: &mut Inner,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<T, Refusal> {
    if !content_type_is(headers, "application/json") {
        return Err(api_error(
            inner,
            StatusCode::BAD_REQUEST,
            "bad.request",
            "The request body must be application/json.",
        )
        .into());
    }
    let object = match serde_json::from_slice(body) {
        Ok(Value::Object(object)) => object,
        Ok(_) => return Err(bad_request(inner, "the body must be a JSON object")),
        Err(e) => return Err(bad_request(inner, &format!("malformed JSON: {e}"))),
    };
    T::deserialize(Value::Object(object)).map_err(|e| bad_request(inner, &e.to_string()))
}

/// For an optional field whose model type is not nullable: absent is `None`, `null` is refused as
/// a wrong type. Use with `#[serde(default, deserialize_with = "present")]`.
pub(super) fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

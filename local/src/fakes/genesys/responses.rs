//! How the fake answers, shared by every API area: Genesys' error JSON (`message`, `code`,
//! `status`, `contextId`), the `ININ-Correlation-Id` and `inin-ratelimit-*` headers, scripted
//! failures, the 404 and 405 answers, and the paged `...EntityListing` shape.

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use serde_json::{json, Value};

use super::{lock, Inner, Shared};

/// A scripted answer to the next PATCH (or token request), given before any checking or
/// recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Answer with this status and Genesys' error JSON (no body for a 2xx).
    Status(u16),
    /// Answer 429 like Genesys' rate limiter, with `Retry-After` when given.
    TooManyRequests {
        /// Seconds for the `Retry-After` header; `None` leaves the header out.
        retry_after_secs: Option<u64>,
    },
}

/// An answer refusing a request, boxed because a `Response` is large; handlers return it as
/// their `Err` so that each check can end the request with `?`.
pub(super) struct Refusal(Box<Response>);

impl From<Response> for Refusal {
    fn from(response: Response) -> Self {
        Self(Box::new(response))
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        *self.0
    }
}

/// What an API handler answers: the success, or the refusal of one of its checks.
pub(super) type Answer = Result<Response, Refusal>;

/// Genesys' error JSON with a correlation id.
pub(super) fn api_error(
    inner: &mut Inner,
    status: StatusCode,
    code: &str,
    message: &str,
) -> Response {
    let body = json!({
        "message": message,
        "code": code,
        "status": status.as_u16(),
        "contextId": correlation_id(inner),
        "details": [],
        "errors": [],
    });
    with_api_headers(inner, (status, axum::Json(body)).into_response())
}

/// A 400 `bad.request` saying why the request could not be understood.
pub(super) fn bad_request(inner: &mut Inner, why: &str) -> Refusal {
    let message = format!("The request could not be understood by the server: {why}");
    api_error(inner, StatusCode::BAD_REQUEST, "bad.request", &message).into()
}

/// A fresh correlation id, unique to this server.
pub(super) fn correlation_id(inner: &mut Inner) -> String {
    inner.correlation += 1;
    format!("fake-{}-{:08}", inner.port, inner.correlation)
}

/// `response` with the headers every Platform API answer carries.
pub(super) fn with_api_headers(inner: &mut Inner, mut response: Response) -> Response {
    let correlation = correlation_id(inner);
    let count = inner.patch_requests.to_string();
    let headers = response.headers_mut();
    for (name, value) in [
        ("inin-correlation-id", correlation.as_str()),
        ("inin-ratelimit-count", count.as_str()),
        ("inin-ratelimit-allowed", "300"),
        ("inin-ratelimit-reset", "60"),
    ] {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    }
    response
}

/// A 200 answer with a JSON body and the API headers.
pub(super) fn json_answer(inner: &mut Inner, body: Value) -> Answer {
    Ok(with_api_headers(inner, axum::Json(body).into_response()))
}

/// The error code Genesys gives a status when nothing more specific applies.
fn default_code(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "bad.request",
        401 => "bad.credentials",
        403 => "missing.any.permissions",
        404 => "not.found",
        409 => "conflict",
        429 => "too.many.requests",
        500 => "internal.server.error",
        502 => "bad.gateway",
        503 => "service.unavailable",
        504 => "gateway.timeout",
        _ => "error",
    }
}

/// The answer a test scripted, shaped as Genesys would send it.
pub(super) fn scripted(inner: &mut Inner, reply: Reply) -> Response {
    match reply {
        Reply::TooManyRequests { retry_after_secs } => {
            let message = match retry_after_secs {
                Some(secs) => {
                    format!(
                        "Rate limit exceeded the maximum. Retry the request in [{secs}] seconds"
                    )
                }
                None => "Rate limit exceeded the maximum.".to_owned(),
            };
            let mut response = api_error(
                inner,
                StatusCode::TOO_MANY_REQUESTS,
                "too.many.requests",
                &message,
            );
            if let Some(secs) = retry_after_secs {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            response
        }
        Reply::Status(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            if status.is_success() {
                return with_api_headers(inner, status.into_response());
            }
            let message = status
                .canonical_reason()
                .unwrap_or("scripted failure")
                .to_owned();
            api_error(inner, status, default_code(status), &message)
        }
    }
}

/// The router's fallback: a path the fake does not serve.
pub(super) async fn not_found(State(shared): State<Shared>) -> Response {
    let message = "The requested resource was not found.";
    refused(&shared, StatusCode::NOT_FOUND, "not.found", message)
}

/// A served path asked with a method it does not take.
async fn method_not_allowed(State(shared): State<Shared>) -> Response {
    let message = "HTTP method not allowed";
    refused(
        &shared,
        StatusCode::METHOD_NOT_ALLOWED,
        "method.not.allowed",
        message,
    )
}

/// Counts a request the router refuses before any handler sees it, and answers why.
fn refused(shared: &Shared, status: StatusCode, code: &str, message: &str) -> Response {
    let mut inner = lock(shared);
    inner.requests += 1;
    api_error(&mut inner, status, code, message)
}

/// `routes` answering every method they do not name with Genesys' 405, HEAD included: axum would
/// otherwise hand HEAD to the GET handler, and HEAD is no operation of the Platform API.
pub(super) fn only(routes: MethodRouter<Shared>) -> MethodRouter<Shared> {
    routes.head(method_not_allowed).fallback(method_not_allowed)
}

/// One page of an `...EntityListing` as Genesys pages its collections: `entities` of that page,
/// `pageSize`, `pageNumber`, `total`, `pageCount` and the page URIs (`nextUri` / `previousUri`
/// where they exist). `path` is the collection's path with its filters, ending in `?` or `&`;
/// `page_number` is at least 1.
pub(super) fn entity_listing(
    path: &str,
    all: Vec<Value>,
    page_size: u64,
    page_number: u64,
) -> Value {
    let total = all.len() as u64;
    let page_count = total.div_ceil(page_size);
    let skip = usize::try_from(page_number.saturating_sub(1).saturating_mul(page_size))
        .unwrap_or(usize::MAX);
    let take = usize::try_from(page_size).unwrap_or(usize::MAX);
    let entities: Vec<Value> = all.into_iter().skip(skip).take(take).collect();
    let page_uri = |page: u64| format!("{path}pageSize={page_size}&pageNumber={page}");
    let mut body = json!({
        "entities": entities,
        "pageSize": page_size,
        "pageNumber": page_number,
        "total": total,
        "pageCount": page_count,
        "firstUri": page_uri(1),
        "selfUri": page_uri(page_number),
        "lastUri": page_uri(page_count.max(1)),
    });
    if page_number < page_count {
        body["nextUri"] = page_uri(page_number + 1).into();
    }
    if page_number > 1 {
        body["previousUri"] = page_uri(page_number - 1).into();
    }
    body
}

//! Fake Genesys Cloud: the login service and the Platform API on one local port.
//!
//! It checks the real request shapes (reference/genesys.md) and answers like Genesys:
//! - `POST /oauth/token` needs `Authorization: Basic base64(client_id:client_secret)` and the form
//!   body `grant_type=client_credentials`; it answers `{"access_token", "token_type": "bearer",
//!   "expires_in"}` with a unique token. An unknown client id gets 400 `invalid_client`, a wrong
//!   secret or missing authentication 401 `invalid_client`, a bad grant 400.
//! - `PATCH /api/v2/conversations/{cid}/participants/{pid}/attributes` needs a bearer token this
//!   server issued that has neither expired nor been revoked (else 401), `Content-Type:
//!   application/json` and exactly `{"attributes": {string: string}}` (else 400). It answers
//!   `202 Accepted` with no body, which is what Genesys' API definition declares for this
//!   operation.
//! - Other paths get 404 and other methods 405, with Genesys' error JSON (`message`, `code`,
//!   `status`). Every answer carries `ININ-Correlation-Id`; API answers also `inin-ratelimit-*`.
//!
//! Failures can be scripted per PATCH ([`FakeGenesys::script_patch`]) and per token request
//! ([`FakeGenesys::script_token`]); tokens can be expired at once
//! ([`FakeGenesys::expire_tokens`]) and the client secret rotated
//! ([`FakeGenesys::set_client_secret`]). The server stops when the value is dropped.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};

use super::server::{self, lock, Served};

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

/// One PATCH the fake accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patch {
    /// The conversation id from the path.
    pub conversation_id: String,
    /// The participant id from the path.
    pub participant_id: String,
    /// The attributes from the body.
    pub attributes: BTreeMap<String, String>,
    /// The bearer token it was sent with.
    pub token: String,
}

struct Inner {
    client_id: String,
    client_secret: String,
    lifetime: Duration,
    token_delay: Duration,
    /// Issued tokens still honoured, with their expiry.
    valid_tokens: HashMap<String, Instant>,
    tokens_issued: usize,
    token_requests: usize,
    patch_requests: usize,
    requests: usize,
    script: VecDeque<Reply>,
    token_script: VecDeque<Reply>,
    patches: Vec<Patch>,
    correlation: u64,
    port: u16,
}

type Shared = Arc<Mutex<Inner>>;

/// A running fake Genesys Cloud on 127.0.0.1; stopped when dropped.
pub struct FakeGenesys {
    shared: Shared,
    served: Served,
}

impl FakeGenesys {
    /// Starts a server on a free port that knows one OAuth client and issues tokens valid for
    /// `token_lifetime_secs`.
    pub async fn start(client_id: &str, client_secret: &str, token_lifetime_secs: u64) -> Self {
        let (listener, port) = server::bind().await;
        let shared: Shared = Arc::new(Mutex::new(Inner {
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            lifetime: Duration::from_secs(token_lifetime_secs),
            token_delay: Duration::ZERO,
            valid_tokens: HashMap::new(),
            tokens_issued: 0,
            token_requests: 0,
            patch_requests: 0,
            requests: 0,
            script: VecDeque::new(),
            token_script: VecDeque::new(),
            patches: Vec::new(),
            correlation: 0,
            port,
        }));
        let app = Router::new()
            .route("/oauth/token", any(token))
            .route(
                "/api/v2/conversations/{conversation_id}/participants/{participant_id}/attributes",
                any(patch_attributes),
            )
            .fallback(not_found)
            .with_state(Arc::clone(&shared));
        Self {
            shared,
            served: server::serve(listener, port, app),
        }
    }

    /// Base URL of both the login service and the API, e.g. `http://127.0.0.1:40123`.
    pub fn base_url(&self) -> String {
        self.served.base_url.clone()
    }

    /// Endpoints aiming a client at this server.
    pub fn endpoints(&self) -> genesys_relay::genesys::GenesysEndpoints {
        genesys_relay::genesys::GenesysEndpoints::local(&self.served.base_url)
    }

    /// Queues answers for the next PATCHes, one each, before normal handling.
    pub fn script_patch(&self, replies: Vec<Reply>) {
        lock(&self.shared).script.extend(replies);
    }

    /// Queues answers for the next token requests, one each, before normal handling (a login
    /// outage or throttling).
    pub fn script_token(&self, replies: Vec<Reply>) {
        lock(&self.shared).token_script.extend(replies);
    }

    /// Makes every token issued so far invalid, as if they all expired now.
    pub fn expire_tokens(&self) {
        lock(&self.shared).valid_tokens.clear();
    }

    /// Rotates the OAuth client secret: only the new one is accepted from now on.
    pub fn set_client_secret(&self, secret: &str) {
        lock(&self.shared).client_secret = secret.to_owned();
    }

    /// Delays every token answer, so concurrent callers surely overlap a token request.
    pub fn set_token_delay(&self, delay: Duration) {
        lock(&self.shared).token_delay = delay;
    }

    /// How many tokens were issued.
    pub fn tokens_issued(&self) -> usize {
        lock(&self.shared).tokens_issued
    }

    /// How many requests reached `/oauth/token`, refused ones included.
    pub fn token_requests(&self) -> usize {
        lock(&self.shared).token_requests
    }

    /// How many requests reached the attributes path, refused and scripted ones included.
    pub fn patch_requests(&self) -> usize {
        lock(&self.shared).patch_requests
    }

    /// The PATCHes accepted, in order.
    pub fn patches(&self) -> Vec<Patch> {
        lock(&self.shared).patches.clone()
    }

    /// How many requests of any kind reached the server.
    pub fn requests(&self) -> usize {
        lock(&self.shared).requests
    }
}

/// Genesys' error JSON with a correlation id.
fn api_error(inner: &mut Inner, status: StatusCode, code: &str, message: &str) -> Response {
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

fn correlation_id(inner: &mut Inner) -> String {
    inner.correlation += 1;
    format!("fake-{}-{:08}", inner.port, inner.correlation)
}

fn with_api_headers(inner: &mut Inner, mut response: Response) -> Response {
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

fn login_error(inner: &mut Inner, status: StatusCode, error: &str, description: &str) -> Response {
    let body =
        json!({"error": error, "description": description, "error_description": description});
    let mut response = (status, axum::Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(&correlation_id(inner)) {
        response.headers_mut().insert("inin-correlation-id", value);
    }
    response
}

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

fn content_type_is(headers: &HeaderMap, expected: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(expected))
}

/// The (id, secret) of a Basic `Authorization` header.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

async fn token(
    State(shared): State<Shared>,
    method: Method,
    headers: HeaderMap,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Response {
    let delay = {
        let mut inner = lock(&shared);
        inner.requests += 1;
        inner.token_requests += 1;
        if let Some(reply) = inner.token_script.pop_front() {
            return scripted(&mut inner, reply);
        }
        if method != Method::POST {
            return login_error(
                &mut inner,
                StatusCode::METHOD_NOT_ALLOWED,
                "invalid_request",
                "the token endpoint takes POST only",
            );
        }
        if !content_type_is(&headers, "application/x-www-form-urlencoded") {
            return login_error(
                &mut inner,
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "the body must be application/x-www-form-urlencoded",
            );
        }
        let Some((id, secret)) = basic_credentials(&headers) else {
            return login_error(
                &mut inner,
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "client authentication (Basic) is required",
            );
        };
        if id != inner.client_id {
            return login_error(
                &mut inner,
                StatusCode::BAD_REQUEST,
                "invalid_client",
                "client not found",
            );
        }
        if secret != inner.client_secret {
            return login_error(
                &mut inner,
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "authentication failed",
            );
        }
        match form {
            Ok(Form(fields))
                if fields.get("grant_type").map(String::as_str) == Some("client_credentials") => {}
            Ok(Form(fields)) if fields.contains_key("grant_type") => {
                return login_error(
                    &mut inner,
                    StatusCode::BAD_REQUEST,
                    "unsupported_grant_type",
                    "grant type not supported",
                )
            }
            _ => {
                return login_error(
                    &mut inner,
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "grant_type is required",
                )
            }
        }
        inner.token_delay
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let mut inner = lock(&shared);
    inner.tokens_issued += 1;
    let token = format!("fake-token-{}-{}", inner.port, inner.tokens_issued);
    let lifetime = inner.lifetime;
    inner
        .valid_tokens
        .insert(token.clone(), Instant::now() + lifetime);
    let body =
        json!({"access_token": token, "token_type": "bearer", "expires_in": lifetime.as_secs()});
    let mut response = axum::Json(body).into_response();
    if let Ok(value) = HeaderValue::from_str(&correlation_id(&mut inner)) {
        response.headers_mut().insert("inin-correlation-id", value);
    }
    response
}

/// The attributes of a body that is exactly `{"attributes": {string: string}}`, else why not.
fn attributes_of(body: &[u8]) -> Result<BTreeMap<String, String>, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| format!("malformed JSON: {e}"))?;
    let Value::Object(mut top) = value else {
        return Err("the body must be a JSON object".into());
    };
    let attributes = top
        .remove("attributes")
        .ok_or("the body must hold `attributes`")?;
    if let Some(extra) = top.keys().next() {
        return Err(format!("unknown field `{extra}`"));
    }
    let Value::Object(attributes) = attributes else {
        return Err("`attributes` must be an object".into());
    };
    attributes
        .into_iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k, s)),
            _ => Err(format!("attribute `{k}` must be a string")),
        })
        .collect()
}

async fn patch_attributes(
    State(shared): State<Shared>,
    method: Method,
    Path((conversation_id, participant_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut inner = lock(&shared);
    inner.requests += 1;
    if method != Method::PATCH {
        return api_error(
            &mut inner,
            StatusCode::METHOD_NOT_ALLOWED,
            "method.not.allowed",
            "HTTP method not allowed",
        );
    }
    inner.patch_requests += 1;
    if let Some(reply) = inner.script.pop_front() {
        return scripted(&mut inner, reply);
    }
    let token = match bearer_token(&headers) {
        Some(token) => token,
        None => {
            return api_error(
                &mut inner,
                StatusCode::UNAUTHORIZED,
                "bad.credentials",
                "Invalid login credentials.",
            )
        }
    };
    let valid = inner
        .valid_tokens
        .get(&token)
        .is_some_and(|expires| Instant::now() < *expires);
    if !valid {
        return api_error(
            &mut inner,
            StatusCode::UNAUTHORIZED,
            "bad.credentials",
            "Invalid login credentials.",
        );
    }
    if !content_type_is(&headers, "application/json") {
        return api_error(
            &mut inner,
            StatusCode::BAD_REQUEST,
            "bad.request",
            "The request body must be application/json.",
        );
    }
    let attributes = match attributes_of(&body) {
        Ok(attributes) => attributes,
        Err(why) => {
            return api_error(
                &mut inner,
                StatusCode::BAD_REQUEST,
                "bad.request",
                &format!("The request could not be understood by the server: {why}"),
            )
        }
    };
    inner.patches.push(Patch {
        conversation_id,
        participant_id,
        attributes,
        token,
    });
    with_api_headers(&mut inner, StatusCode::ACCEPTED.into_response())
}

fn scripted(inner: &mut Inner, reply: Reply) -> Response {
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

async fn not_found(State(shared): State<Shared>) -> Response {
    let mut inner = lock(&shared);
    inner.requests += 1;
    api_error(
        &mut inner,
        StatusCode::NOT_FOUND,
        "not.found",
        "The requested resource was not found.",
    )
}

//! Fake Genesys Cloud: the login service and the Platform API on one local port.
//!
//! It checks the real request shapes (the Genesys Cloud Platform API) and answers like Genesys:
//! - `POST /oauth/token` needs `Authorization: Basic base64(client_id:client_secret)` and the form
//!   body `grant_type=client_credentials`; it answers `{"access_token", "token_type": "bearer",
//!   "expires_in"}` with a unique token. An unknown client id gets 400 `invalid_client`, a wrong
//!   secret or missing authentication 401 `invalid_client`, a bad grant 400.
//! - `PATCH /api/v2/conversations/{cid}/participants/{pid}/attributes` needs a bearer token this
//!   server issued that has neither expired nor been revoked (else 401), `Content-Type:
//!   application/json` and exactly `{"attributes": {string: string}}` (else 400). It answers
//!   `202 Accepted` with no body, which is what Genesys' API definition declares for this
//!   operation.
//! - `GET /api/v2/organizations/me` answers the organization (`id`, `name`), whose id names the
//!   EventBridge partner event source.
//! - The integrations API, as Genesys' platform-client SDKs describe it (IntegrationsApi:
//!   getIntegrations, postIntegrations, getIntegration, patchIntegration,
//!   getIntegrationConfigCurrent, putIntegrationConfigCurrent):
//!   - `GET /api/v2/integrations?pageSize&pageNumber&integrationType` answers an
//!     `IntegrationEntityListing` (`entities`, `pageSize`, `pageNumber`, `total`, `pageCount`,
//!     `firstUri`, `selfUri`, `lastUri`, and `nextUri` / `previousUri` where they exist).
//!   - `POST /api/v2/integrations` takes a `CreateIntegrationRequest` (`integrationType.id`
//!     required, `name` optional) and answers the new `Integration`, `DISABLED` with config
//!     version 1.
//!   - `GET /api/v2/integrations/{id}` answers the `Integration`; `PATCH` takes
//!     `{"intendedState": "ENABLED" | "DISABLED" | "DELETED"}`.
//!   - `GET /api/v2/integrations/{id}/config/current` answers the `IntegrationConfiguration`
//!     (`name`, `version`, `properties`, `advanced`, `notes`, `credentials`); `PUT` replaces it
//!     only when its `version` is the current one (else 409, as Genesys answers a stale version)
//!     and increments the version. For `amazon-eventbridge-source` the properties must hold
//!     `awsAccountId` (12 digits), `awsAccountRegion`, `eventSourceSuffix` and `eventFilter` (a
//!     non-empty list of topic patterns).
//!
//!   Each needs a valid bearer token (else 401) and, with a body, `Content-Type:
//!   application/json` and no unknown fields (else 400). Every authenticated call is recorded
//!   ([`FakeGenesys::integration_calls`]).
//! - Other paths get 404 and other methods 405, with Genesys' error JSON (`message`, `code`,
//!   `status`). Every answer carries `ININ-Correlation-Id`; API answers also `inin-ratelimit-*`.
//!
//! Failures can be scripted per PATCH ([`FakeGenesys::script_patch`]) and per token request
//! ([`FakeGenesys::script_token`]); the next PATCH can be held on its way in until the test lets
//! it through ([`FakeGenesys::hold_next_patch`]), so it lands after later ones whatever the
//! machine's load; tokens can be expired at once
//! ([`FakeGenesys::expire_tokens`]) and the client secret rotated
//! ([`FakeGenesys::set_client_secret`]). Integrations can be seeded
//! ([`FakeGenesys::add_integration`]) and a concurrent edit of a configuration simulated
//! ([`FakeGenesys::race_config_updates`]). Every answer can be made to wait as a distant service
//! would ([`FakeGenesys::set_latency`]). The server stops when the value is dropped.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};

use super::server::{self, lock, Latency, Served};

mod directory;

pub use directory::WrapupCode;

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

/// A PATCH held on its way in ([`FakeGenesys::hold_next_patch`]): it is neither checked nor
/// recorded until released (or until this is dropped), as a request slow on the network would be.
pub struct HeldPatch {
    arrived: Option<tokio::sync::oneshot::Receiver<()>>,
    release: tokio::sync::oneshot::Sender<()>,
}

impl HeldPatch {
    /// Waits until the held PATCH has reached the fake.
    pub async fn arrived(&mut self) {
        if let Some(arrived) = self.arrived.take() {
            let _ = arrived.await;
        }
    }

    /// Lets the PATCH through: it is handled (checked, recorded, answered) now.
    pub fn release(self) {
        let _ = self.release.send(());
    }
}

/// The fake's side of a [`HeldPatch`].
struct Gate {
    arrived: tokio::sync::oneshot::Sender<()>,
    release: tokio::sync::oneshot::Receiver<()>,
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

/// The organization id the fake answers on `GET /api/v2/organizations/me`.
pub const ORG_ID: &str = "5c8d1f0e-7a2b-4e6c-9d3f-1b0a2c4e6f80";

/// The integration type of the Amazon EventBridge integration, whose properties are checked.
pub const EVENTBRIDGE_TYPE: &str = "amazon-eventbridge-source";

/// One integration the fake holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Integration {
    /// Its id, as `POST /api/v2/integrations` answered it.
    pub id: String,
    /// The integration type id, e.g. `amazon-eventbridge-source`.
    pub integration_type: String,
    /// `ENABLED`, `DISABLED` or `DELETED`.
    pub intended_state: String,
    /// The current configuration; its `name` is the integration's name.
    pub config: IntegrationConfig,
}

/// The current configuration of an integration.
#[derive(Debug, Clone, PartialEq)]
pub struct IntegrationConfig {
    /// The integration's name.
    pub name: String,
    /// Incremented by every accepted PUT; a PUT must name the current one.
    pub version: u64,
    /// The type-specific settings (a JSON object).
    pub properties: Value,
    /// Advanced settings (a JSON object).
    pub advanced: Value,
    /// Free text.
    pub notes: String,
    /// Credential references by name (a JSON object).
    pub credentials: Value,
}

/// One authenticated request to the Platform API other than the attributes PATCH, as received.
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
    gates: VecDeque<Gate>,
    patches: Vec<Patch>,
    correlation: u64,
    port: u16,
    integrations: Vec<Integration>,
    integration_calls: Vec<IntegrationCall>,
    integrations_created: u64,
    config_races: usize,
    wrapup_codes: Vec<WrapupCode>,
    contacts: HashMap<(String, String), directory::Columns>,
}

type Shared = Arc<Mutex<Inner>>;

/// An answer refusing a request, boxed because a `Response` is large.
type Refusal = Box<Response>;

/// A running fake Genesys Cloud on 127.0.0.1; stopped when dropped.
pub struct FakeGenesys {
    shared: Shared,
    latency: Latency,
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
            gates: VecDeque::new(),
            patches: Vec::new(),
            correlation: 0,
            port,
            integrations: Vec::new(),
            integration_calls: Vec::new(),
            integrations_created: 0,
            config_races: 0,
            wrapup_codes: Vec::new(),
            contacts: HashMap::new(),
        }));
        let latency = Latency::default();
        let app = latency.apply(Router::new()
            .route("/oauth/token", any(token))
            .route(
                "/api/v2/conversations/{conversation_id}/participants/{participant_id}/attributes",
                any(patch_attributes),
            )
            .route("/api/v2/organizations/me", any(organization_me))
            .route("/api/v2/integrations", any(integrations_collection))
            .route(
                "/api/v2/integrations/{integration_id}",
                any(integration_item),
            )
            .route(
                "/api/v2/integrations/{integration_id}/config/current",
                any(integration_config),
            )
            .route("/api/v2/routing/wrapupcodes", any(directory::wrapup_codes))
            .route(
                "/api/v2/outbound/contactlists/{contact_list_id}/contacts/{contact_id}",
                any(directory::contact),
            )
            .fallback(not_found)
            )
            .with_state(Arc::clone(&shared));
        Self {
            shared,
            latency,
            served: server::serve(listener, port, app),
        }
    }

    /// Base URL of both the login service and the API, e.g. `http://127.0.0.1:40123`.
    pub fn base_url(&self) -> String {
        self.served.base_url.clone()
    }

    /// Endpoints aiming a client at this server.
    pub fn endpoints(&self) -> genesys_relay::config::GenesysEndpoints {
        genesys_relay::config::GenesysEndpoints::local(&self.served.base_url)
    }

    /// Queues answers for the next PATCHes, one each, before normal handling.
    pub fn script_patch(&self, replies: Vec<Reply>) {
        lock(&self.shared).script.extend(replies);
    }

    /// Holds the next PATCH that arrives (after those already held) until the returned handle
    /// releases it, so a test can make it land after PATCHes sent later, every run.
    pub fn hold_next_patch(&self) -> HeldPatch {
        let (arrived_tx, arrived_rx) = tokio::sync::oneshot::channel();
        let (release_tx, release_rx) = tokio::sync::oneshot::channel();
        lock(&self.shared).gates.push_back(Gate {
            arrived: arrived_tx,
            release: release_rx,
        });
        HeldPatch {
            arrived: Some(arrived_rx),
            release: release_tx,
        }
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

    /// Makes every answer (token, API, refusal or 404) wait `latency` first, as a service across a
    /// network would; it adds to [`FakeGenesys::set_token_delay`]. `Duration::ZERO` (the default)
    /// answers at once.
    pub fn set_latency(&self, latency: Duration) {
        self.latency.set(latency);
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

    /// The organization id `GET /api/v2/organizations/me` answers.
    pub fn org_id(&self) -> &'static str {
        ORG_ID
    }

    /// The integrations held, in creation order.
    pub fn integrations(&self) -> Vec<Integration> {
        lock(&self.shared).integrations.clone()
    }

    /// The authenticated organization and integrations requests, in order.
    pub fn integration_calls(&self) -> Vec<IntegrationCall> {
        lock(&self.shared).integration_calls.clone()
    }

    /// Adds an integration as if an administrator had created it (disabled, empty configuration)
    /// and returns its id.
    pub fn add_integration(&self, integration_type: &str, name: &str) -> String {
        let mut inner = lock(&self.shared);
        new_integration(&mut inner, integration_type, name).id
    }

    /// Adds a wrap-up code as an administrator would (organization codes have UUID ids).
    pub fn add_wrapup_code(&self, id: &str, name: &str) {
        lock(&self.shared).wrapup_codes.push(WrapupCode {
            id: id.to_owned(),
            name: name.to_owned(),
        });
    }

    /// Deletes the wrap-up code with this id.
    pub fn remove_wrapup_code(&self, id: &str) {
        lock(&self.shared).wrapup_codes.retain(|c| c.id != id);
    }

    /// Puts a contact with these columns into a contact list.
    pub fn add_contact(&self, contact_list_id: &str, contact_id: &str, columns: Value) {
        let columns = match columns {
            Value::Object(map) => map,
            _ => serde_json::Map::new(),
        };
        lock(&self.shared)
            .contacts
            .insert((contact_list_id.to_owned(), contact_id.to_owned()), columns);
    }

    /// The authenticated requests whose path starts with `prefix`, e.g.
    /// `/api/v2/routing/wrapupcodes`.
    pub fn calls_to(&self, prefix: &str) -> Vec<IntegrationCall> {
        lock(&self.shared)
            .integration_calls
            .iter()
            .filter(|c| c.path.starts_with(prefix))
            .cloned()
            .collect()
    }

    /// Makes the next `count` configuration PUTs that name the current version lose a race: the
    /// version moves on as if someone else saved first, and the PUT gets 409.
    pub fn race_config_updates(&self, count: usize) {
        lock(&self.shared).config_races += count;
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
    let gate = (method == Method::PATCH)
        .then(|| lock(&shared).gates.pop_front())
        .flatten();
    if let Some(gate) = gate {
        let _ = gate.arrived.send(());
        // A dropped handle lets the PATCH through too.
        let _ = gate.release.await;
    }
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
    let token = match authorized(&mut inner, &headers) {
        Ok(token) => token,
        Err(refused) => return *refused,
    };
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

/// The bearer token of a request when this server issued it and it has neither expired nor been
/// revoked; otherwise the 401 Genesys answers.
fn authorized(inner: &mut Inner, headers: &HeaderMap) -> Result<String, Refusal> {
    let valid = bearer_token(headers).filter(|token| {
        inner
            .valid_tokens
            .get(token)
            .is_some_and(|expires| Instant::now() < *expires)
    });
    valid.ok_or_else(|| {
        Box::new(api_error(
            inner,
            StatusCode::UNAUTHORIZED,
            "bad.credentials",
            "Invalid login credentials.",
        ))
    })
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

fn method_not_allowed(inner: &mut Inner) -> Response {
    api_error(
        inner,
        StatusCode::METHOD_NOT_ALLOWED,
        "method.not.allowed",
        "HTTP method not allowed",
    )
}

fn bad_request(inner: &mut Inner, why: &str) -> Response {
    api_error(
        inner,
        StatusCode::BAD_REQUEST,
        "bad.request",
        &format!("The request could not be understood by the server: {why}"),
    )
}

fn integration_not_found(inner: &mut Inner, id: &str) -> Response {
    api_error(
        inner,
        StatusCode::NOT_FOUND,
        "not.found",
        &format!("Integration {id} not found."),
    )
}

/// Checks the token of an organization or integrations request and records the request: the
/// common start of those handlers, after the method check.
fn admit(
    inner: &mut Inner,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), Refusal> {
    let token = authorized(inner, headers)?;
    let body = if body.is_empty() {
        None
    } else {
        serde_json::from_slice(body).ok()
    };
    inner.integration_calls.push(IntegrationCall {
        method: method.to_string(),
        path: uri.path().to_owned(),
        query: uri.query().map(str::to_owned),
        body,
        token,
    });
    Ok(())
}

/// The fields of a JSON object body holding only `allowed` fields, else the 400 to answer.
fn json_object(
    inner: &mut Inner,
    headers: &HeaderMap,
    body: &[u8],
    allowed: &[&str],
) -> Result<serde_json::Map<String, Value>, Refusal> {
    if !content_type_is(headers, "application/json") {
        return Err(Box::new(api_error(
            inner,
            StatusCode::BAD_REQUEST,
            "bad.request",
            "The request body must be application/json.",
        )));
    }
    let fields = match serde_json::from_slice(body) {
        Ok(Value::Object(fields)) => fields,
        Ok(_) => {
            return Err(Box::new(bad_request(
                inner,
                "the body must be a JSON object",
            )))
        }
        Err(e) => {
            return Err(Box::new(bad_request(
                inner,
                &format!("malformed JSON: {e}"),
            )))
        }
    };
    if let Some(unknown) = fields.keys().find(|k| !allowed.contains(&k.as_str())) {
        let why = format!("unknown field `{unknown}`");
        return Err(Box::new(bad_request(inner, &why)));
    }
    Ok(fields)
}

/// One page of an `...EntityListing` as Genesys pages its collections: `entities` of that page,
/// `pageSize`, `pageNumber`, `total`, `pageCount` and the page URIs (`nextUri` / `previousUri`
/// where they exist). `path` is the collection's path with its filters, ending in `?` or `&`.
fn entity_listing(path: &str, all: Vec<Value>, page_size: u64, page_number: u64) -> Value {
    let total = all.len() as u64;
    let page_count = total.div_ceil(page_size);
    let skip = usize::try_from((page_number - 1).saturating_mul(page_size)).unwrap_or(usize::MAX);
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

/// The decoded `name=value` pairs of a query string.
fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(name), percent_decode(value))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match (bytes[i], escaped) {
            (_, Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b'+', None) => {
                out.push(b' ');
                i += 1;
            }
            (byte, None) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An `Integration` as the API shows it.
fn integration_json(integration: &Integration) -> Value {
    let reported = if integration.intended_state == "ENABLED" {
        "ACTIVE"
    } else {
        "INACTIVE"
    };
    json!({
        "id": integration.id,
        "name": integration.config.name,
        "integrationType": {
            "id": integration.integration_type,
            "selfUri": format!("/api/v2/integrations/types/{}", integration.integration_type),
        },
        "notes": integration.config.notes,
        "intendedState": integration.intended_state,
        "config": {"current": {
            "id": integration.id,
            "name": integration.config.name,
            "version": integration.config.version,
            "selfUri": format!("/api/v2/integrations/{}/config/current", integration.id),
        }},
        "reportedState": {"code": reported},
        "attributes": {},
        "selfUri": format!("/api/v2/integrations/{}", integration.id),
    })
}

/// An `IntegrationConfiguration` as the API shows it.
fn config_json(integration: &Integration) -> Value {
    let config = &integration.config;
    json!({
        "id": integration.id,
        "name": config.name,
        "version": config.version,
        "properties": config.properties,
        "advanced": config.advanced,
        "notes": config.notes,
        "credentials": config.credentials,
        "selfUri": format!("/api/v2/integrations/{}/config/current", integration.id),
    })
}

fn new_integration(inner: &mut Inner, integration_type: &str, name: &str) -> Integration {
    inner.integrations_created += 1;
    let id = format!(
        "{:08x}-0000-4000-8000-{:012x}",
        inner.port, inner.integrations_created
    );
    let integration = Integration {
        id,
        integration_type: integration_type.to_owned(),
        intended_state: "DISABLED".to_owned(),
        config: IntegrationConfig {
            name: name.to_owned(),
            version: 1,
            properties: json!({}),
            advanced: json!({}),
            notes: String::new(),
            credentials: json!({}),
        },
    };
    inner.integrations.push(integration.clone());
    integration
}

/// The index of a live (not deleted) integration.
fn find_integration(inner: &Inner, id: &str) -> Option<usize> {
    inner
        .integrations
        .iter()
        .position(|i| i.id == id && i.intended_state != "DELETED")
}

async fn organization_me(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let mut inner = lock(&shared);
    inner.requests += 1;
    if method != Method::GET {
        return method_not_allowed(&mut inner);
    }
    if let Err(refused) = admit(&mut inner, &method, &uri, &headers, &[]) {
        return *refused;
    }
    let body = json!({
        "id": ORG_ID,
        "name": "Fake Genesys organization",
        "thirdPartyOrgName": "fake-org",
        "domain": "fake-org",
        "state": "active",
        "selfUri": format!("/api/v2/organizations/{ORG_ID}"),
    });
    with_api_headers(&mut inner, axum::Json(body).into_response())
}

async fn integrations_collection(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut inner = lock(&shared);
    inner.requests += 1;
    if method != Method::GET && method != Method::POST {
        return method_not_allowed(&mut inner);
    }
    if let Err(refused) = admit(&mut inner, &method, &uri, &headers, &body) {
        return *refused;
    }
    if method == Method::GET {
        list_integrations(&mut inner, uri.query().unwrap_or_default())
    } else {
        create_integration(&mut inner, &headers, &body)
    }
}

fn list_integrations(inner: &mut Inner, query: &str) -> Response {
    let params = query_pairs(query);
    let param = |name: &str| {
        params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let positive = |name: &str, default: u64| match param(name) {
        None => Ok(default),
        Some(value) => value
            .parse::<u64>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| format!("`{name}` must be a positive integer")),
    };
    let (page_size, page_number) = match (positive("pageSize", 25), positive("pageNumber", 1)) {
        (Ok(size), Ok(number)) => (size, number),
        (Err(why), _) | (_, Err(why)) => return bad_request(inner, &why),
    };
    let type_filter = param("integrationType").map(str::to_owned);
    let matching: Vec<&Integration> = inner
        .integrations
        .iter()
        .filter(|i| i.intended_state != "DELETED")
        .filter(|i| {
            type_filter
                .as_deref()
                .is_none_or(|t| t == i.integration_type)
        })
        .collect();
    let mut path = "/api/v2/integrations?".to_owned();
    if let Some(t) = &type_filter {
        path.push_str(&format!("integrationType={t}&"));
    }
    let entities: Vec<Value> = matching.into_iter().map(integration_json).collect();
    let body = entity_listing(&path, entities, page_size, page_number);
    with_api_headers(inner, axum::Json(body).into_response())
}

fn create_integration(inner: &mut Inner, headers: &HeaderMap, body: &[u8]) -> Response {
    let allowed = ["id", "name", "integrationType", "selfUri"];
    let fields = match json_object(inner, headers, body, &allowed) {
        Ok(fields) => fields,
        Err(refused) => return *refused,
    };
    let type_id = fields
        .get("integrationType")
        .and_then(|t| t.get("id"))
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty());
    let Some(type_id) = type_id else {
        return bad_request(inner, "`integrationType.id` is required");
    };
    let name = match fields.get("name") {
        None if type_id == EVENTBRIDGE_TYPE => "Amazon EventBridge Source".to_owned(),
        None => type_id.to_owned(),
        Some(Value::String(name)) if !name.trim().is_empty() => name.clone(),
        Some(_) => return bad_request(inner, "`name` must be a non-empty string"),
    };
    let integration = new_integration(inner, type_id, &name);
    with_api_headers(
        inner,
        axum::Json(integration_json(&integration)).into_response(),
    )
}

async fn integration_item(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    Path(integration_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut inner = lock(&shared);
    inner.requests += 1;
    if method != Method::GET && method != Method::PATCH {
        return method_not_allowed(&mut inner);
    }
    if let Err(refused) = admit(&mut inner, &method, &uri, &headers, &body) {
        return *refused;
    }
    let Some(index) = find_integration(&inner, &integration_id) else {
        return integration_not_found(&mut inner, &integration_id);
    };
    if method == Method::PATCH {
        let allowed = [
            "id",
            "name",
            "integrationType",
            "notes",
            "intendedState",
            "config",
            "reportedState",
            "attributes",
            "selfUri",
        ];
        let fields = match json_object(&mut inner, &headers, &body, &allowed) {
            Ok(fields) => fields,
            Err(refused) => return *refused,
        };
        let state = match fields.get("intendedState").and_then(Value::as_str) {
            Some(state @ ("ENABLED" | "DISABLED" | "DELETED")) => state.to_owned(),
            Some(_) => {
                let why = "`intendedState` must be ENABLED, DISABLED or DELETED";
                return bad_request(&mut inner, why);
            }
            None => return bad_request(&mut inner, "`intendedState` is required"),
        };
        inner.integrations[index].intended_state = state;
    }
    let body = integration_json(&inner.integrations[index]);
    with_api_headers(&mut inner, axum::Json(body).into_response())
}

async fn integration_config(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    Path(integration_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut inner = lock(&shared);
    inner.requests += 1;
    if method != Method::GET && method != Method::PUT {
        return method_not_allowed(&mut inner);
    }
    if let Err(refused) = admit(&mut inner, &method, &uri, &headers, &body) {
        return *refused;
    }
    let Some(index) = find_integration(&inner, &integration_id) else {
        return integration_not_found(&mut inner, &integration_id);
    };
    if method == Method::PUT {
        if let Err(refused) = put_config(&mut inner, index, &headers, &body) {
            return *refused;
        }
    }
    let body = config_json(&inner.integrations[index]);
    with_api_headers(&mut inner, axum::Json(body).into_response())
}

/// Applies a configuration PUT to integration `index`, or answers why not.
fn put_config(
    inner: &mut Inner,
    index: usize,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), Refusal> {
    let allowed = [
        "id",
        "name",
        "version",
        "properties",
        "advanced",
        "notes",
        "credentials",
        "selfUri",
    ];
    let fields = json_object(inner, headers, body, &allowed)?;
    let Some(version) = fields.get("version").and_then(Value::as_u64) else {
        return Err(Box::new(bad_request(
            inner,
            "`version` is required and must be an integer",
        )));
    };
    let mut current = inner.integrations[index].config.version;
    if inner.config_races > 0 && version == current {
        inner.config_races -= 1;
        current += 1;
        inner.integrations[index].config.version = current;
    }
    if version != current {
        let message = format!(
            "The version supplied ({version}) does not match the current version ({current})."
        );
        return Err(Box::new(api_error(
            inner,
            StatusCode::CONFLICT,
            "conflict",
            &message,
        )));
    }
    let checked = config_update(&inner.integrations[index], &fields);
    let config = checked.map_err(|why| Box::new(bad_request(inner, &why)))?;
    inner.integrations[index].config = config;
    Ok(())
}

/// The configuration a PUT of `fields` leaves, or why the fields are not acceptable.
fn config_update(
    integration: &Integration,
    fields: &serde_json::Map<String, Value>,
) -> Result<IntegrationConfig, String> {
    let object = |field: &str| match fields.get(field) {
        None => Ok(json!({})),
        Some(value @ Value::Object(_)) => Ok(value.clone()),
        Some(_) => Err(format!("`{field}` must be an object")),
    };
    let name = match fields.get("name") {
        None => integration.config.name.clone(),
        Some(Value::String(name)) if !name.trim().is_empty() => name.clone(),
        Some(_) => return Err("`name` must be a non-empty string".into()),
    };
    let notes = match fields.get("notes") {
        None => String::new(),
        Some(Value::String(notes)) => notes.clone(),
        Some(_) => return Err("`notes` must be a string".into()),
    };
    let properties = object("properties")?;
    let advanced = object("advanced")?;
    let credentials = object("credentials")?;
    let references_are_ids = credentials.as_object().is_none_or(|c| {
        c.values()
            .all(|v| v.get("id").is_some_and(Value::is_string))
    });
    if !references_are_ids {
        return Err("each credential must be an object with an `id`".into());
    }
    if integration.integration_type == EVENTBRIDGE_TYPE {
        check_eventbridge_properties(&properties)?;
    }
    Ok(IntegrationConfig {
        name,
        version: integration.config.version + 1,
        properties,
        advanced,
        notes,
        credentials,
    })
}

/// The properties the Amazon EventBridge integration needs, as Genesys' own Terraform module for
/// it sets them (`awsAccountId`, `awsAccountRegion`, `eventSourceSuffix`, `eventFilter`).
fn check_eventbridge_properties(properties: &Value) -> Result<(), String> {
    let text = |name: &str| {
        properties
            .get(name)
            .and_then(Value::as_str)
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| format!("property `{name}` must be a non-empty string"))
    };
    let account = text("awsAccountId")?;
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return Err("property `awsAccountId` must be 12 digits".into());
    }
    text("awsAccountRegion")?;
    text("eventSourceSuffix")?;
    let topics = properties.get("eventFilter").and_then(Value::as_array);
    let valid = topics.is_some_and(|topics| {
        !topics.is_empty()
            && topics
                .iter()
                .all(|t| t.as_str().is_some_and(|t| !t.trim().is_empty()))
    });
    if !valid {
        return Err("property `eventFilter` must be a non-empty list of topic patterns".into());
    }
    Ok(())
}

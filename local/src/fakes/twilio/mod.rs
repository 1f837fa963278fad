//! Fake Twilio: the Messages API of one account on a local port, and its API keys (see `keys`).
//!
//! It checks the real request shape (Twilio's Messages API) and answers like Twilio, in this order:
//! - `/2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json` for its account reads a message back
//!   (see below);
//! - a path other than `/2010-04-01/Accounts/{AccountSid}/Messages.json` for its account gets 404
//!   with Twilio's error JSON (code 20404); another method than POST gets 405 (code 20004);
//! - missing or unknown HTTP Basic credentials get 401 (code 20003) with
//!   `WWW-Authenticate: Basic realm="Twilio API"`;
//! - a body that is not `application/x-www-form-urlencoded` gets 400: Twilio reads no parameters
//!   from it, so it says `To` is missing (code 21604);
//! - a missing `To` gets 400 (21604), neither `From` nor `MessagingServiceSid` 400 (21603), no
//!   `Body` 400 (21602), a `To` that is not E.164 400 (21211), a body over 1,600 characters 400
//!   (21617);
//! - a request that passed every check while the fake is down ([`FakeTwilio::set_down`]) gets 503;
//! - otherwise it takes the next scripted [`Reply`], if any
//!   ([`FakeTwilio::script`]), else one drawn at random when [`Faults`] are set
//!   ([`FakeTwilio::set_faults`]);
//! - otherwise the message is created: 201 with Twilio's message resource (`sid` = `SM` + 32 hex,
//!   `status` `queued`, or `accepted` when only a Messaging Service was given, `num_segments` as a
//!   string, `date_created` in RFC 2822, `error_code`/`error_message` null).
//!
//! Reading a message back takes GET only (else 405, code 20004) and the same HTTP Basic
//! credentials (else 401); a sid it never created gets 404 (code 20404). It answers 200 with the
//! message resource as it is now: its status moves on as its status callbacks are posted
//! ([`FakeTwilio::send_status_callbacks`]) or as a test sets it ([`FakeTwilio::set_status`]), with
//! `error_code` an integer or null. Scripted replies and drawn faults apply to creations only.
//!
//! Every request is recorded ([`FakeTwilio::requests`]), every created message too
//! ([`FakeTwilio::messages`]); accepted credentials can be rotated ([`FakeTwilio::set_auth`]), and
//! every answer can be made to wait as a distant service would ([`FakeTwilio::set_latency`]). The
//! server stops when the value is dropped.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::server::{self, lock, Latency, Served};

mod keys;

pub use keys::ApiKey;

const API_VERSION: &str = "2010-04-01";
const FORM: &str = "application/x-www-form-urlencoded";

/// A scripted answer to the next request that passes every check, consumed one per request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Answer this status with Twilio's error JSON; the code is 20003 for 401 and 20000 + status
    /// otherwise (20404, 20429, 20500, ...). No message is created.
    Status(u16),
    /// Answer 429 with code 20429, as Twilio's concurrency limiter does, and `Retry-After` when
    /// given. No message is created.
    TooManyRequests {
        /// Seconds for the `Retry-After` header; `None` leaves the header out.
        retry_after_secs: Option<u64>,
    },
    /// Answer `http` with Twilio's error JSON carrying `code` (e.g. 400 / 21610). No message is
    /// created.
    Error {
        /// The HTTP status.
        http: u16,
        /// Twilio's error code.
        code: u32,
    },
    /// Answer `http` with exactly `body` (JSON content type when it parses as JSON, else HTML), to
    /// stand in for a proxy's page or a damaged answer. No message is created.
    Raw {
        /// The HTTP status.
        http: u16,
        /// The body, as is.
        body: String,
    },
    /// Wait this long, then create the message and answer 201 as usual: a client that timed out
    /// meanwhile never learns that its SMS went out, as with the real service.
    Hang(Duration),
    /// Create the message and answer 201 as usual (to let a request through between scripted
    /// failures).
    Created,
}

/// One request as it reached the server, whatever the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// The HTTP method.
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The user of the HTTP Basic credentials, if any could be decoded (an API key SID or an
    /// account SID).
    pub auth_user: Option<String>,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
    /// The form fields, decoded, in order; empty unless the body was form-encoded.
    pub form: Vec<(String, String)>,
    /// The status answered; `None` while the answer is still pending (a [`Reply::Hang`]).
    pub status: Option<u16>,
    /// The scripted or drawn reply it was given, if any.
    pub reply: Option<Reply>,
}

impl RecordedRequest {
    /// The first value of a form field.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// One message the fake created (answered 201).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedMessage {
    /// `SM` + 32 hex.
    pub sid: String,
    /// `To`.
    pub to: String,
    /// `From`, when given.
    pub from: Option<String>,
    /// `MessagingServiceSid`, when given.
    pub messaging_service_sid: Option<String>,
    /// `Body`.
    pub body: String,
    /// `StatusCallback`, when given.
    pub status_callback: Option<String>,
    /// The Basic user the request authenticated as.
    pub auth_user: String,
    /// When it was created, to place it against faults injected meanwhile.
    pub created_at: Instant,
    /// Its status now, as reading it back answers.
    pub status: String,
    /// The error code of its status, as reading it back answers.
    pub error_code: Option<u32>,
    /// `date_created`, RFC 2822.
    pub date_created: String,
}

/// Failures drawn at random, each with its probability, for requests that pass every check and
/// find no scripted reply: a provider having a bad day, as a soak test needs it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Faults {
    /// Share answered 503 (Twilio's error JSON, code 20503); no message is created.
    pub server_error: f64,
    /// Share answered 429 with `Retry-After: retry_after_secs`; no message is created.
    pub too_many_requests: f64,
    /// The `Retry-After` of those 429s.
    pub retry_after_secs: u64,
    /// Share answered only after `hang` (a [`Reply::Hang`]): longer than the client waits, the
    /// message is still created, as when Twilio took it but the answer was lost.
    pub timeout: f64,
    /// How long those requests hang.
    pub hang: Duration,
}

impl Faults {
    /// The reply for a draw `r` in `[0, 1)`, `None` for a normal answer.
    fn reply(&self, r: f64) -> Option<Reply> {
        let mut bound = self.server_error;
        if r < bound {
            return Some(Reply::Status(503));
        }
        bound += self.too_many_requests;
        if r < bound {
            return Some(Reply::TooManyRequests {
                retry_after_secs: Some(self.retry_after_secs),
            });
        }
        bound += self.timeout;
        (r < bound).then_some(Reply::Hang(self.hang))
    }
}

struct Inner {
    account_sid: String,
    auth: Vec<(String, String)>,
    /// Auth Token that signs status callbacks, when they are sent.
    callbacks: Option<String>,
    callbacks_answered: Vec<u16>,
    /// Woken each time a status callback has been answered.
    callback_answered: Arc<tokio::sync::Notify>,
    script: VecDeque<Reply>,
    requests: Vec<RecordedRequest>,
    messages: Vec<CreatedMessage>,
    port: u16,
    /// Random failures and the generator that draws them ([`FakeTwilio::set_faults`]).
    faults: Option<(Faults, fastrand::Rng)>,
    /// Every creation answered 503 ([`FakeTwilio::set_down`]).
    down: bool,
    /// The account's API keys.
    keys: Vec<ApiKey>,
}

impl Inner {
    /// The next scripted reply, else a drawn fault, else `None` (create the message).
    fn next_reply(&mut self) -> Option<Reply> {
        if self.down {
            return Some(Reply::Status(503));
        }
        if let Some(reply) = self.script.pop_front() {
            return Some(reply);
        }
        let (faults, rng) = self.faults.as_mut()?;
        faults.reply(rng.f64())
    }
}

type Shared = Arc<Mutex<Inner>>;

/// A running fake Twilio on 127.0.0.1; stopped when dropped.
pub struct FakeTwilio {
    shared: Shared,
    latency: Latency,
    served: Served,
}

impl FakeTwilio {
    /// Starts a server on a free port for the account `account_sid`, accepting the HTTP Basic
    /// `(user, password)` pairs in `auth` (API key SID and secret, or account SID and Auth Token).
    pub async fn start(account_sid: impl Into<String>, auth: Vec<(String, String)>) -> Self {
        let (listener, port) = server::bind().await;
        // A key given up front is one of the account's keys, listed and deletable like the rest.
        let keys = auth
            .iter()
            .filter(|(user, _)| user.starts_with("SK"))
            .map(|(sid, secret)| ApiKey {
                sid: sid.clone(),
                friendly_name: "given at start".into(),
                secret: secret.clone(),
                date_created: rfc2822_now(),
            })
            .collect();
        let shared: Shared = Arc::new(Mutex::new(Inner {
            account_sid: account_sid.into(),
            auth,
            callbacks: None,
            callbacks_answered: Vec::new(),
            callback_answered: Arc::default(),
            script: VecDeque::new(),
            requests: Vec::new(),
            messages: Vec::new(),
            port,
            faults: None,
            down: false,
            keys,
        }));
        let latency = Latency::default();
        let app = latency
            .apply(Router::new().fallback(handle))
            .with_state(Arc::clone(&shared));
        Self {
            shared,
            latency,
            served: server::serve(listener, port, app),
        }
    }

    /// The API base to give the client (`TWILIO_API_BASE`), e.g. `http://127.0.0.1:40123`.
    pub fn base_url(&self) -> String {
        self.served.base_url.clone()
    }

    /// The account this fake serves.
    pub fn account_sid(&self) -> String {
        lock(&self.shared).account_sid.clone()
    }

    /// The path messages are created at.
    pub fn messages_path(&self) -> String {
        format!(
            "/{API_VERSION}/Accounts/{}/Messages.json",
            lock(&self.shared).account_sid
        )
    }

    /// Queues answers for the next requests that pass every check, one each, after those already
    /// queued.
    pub fn script(&self, replies: Vec<Reply>) {
        lock(&self.shared).script.extend(replies);
    }

    /// From now on, after each message created with a `StatusCallback`, posts `sent` then
    /// `delivered` to it, form-encoded and signed with `auth_token` as Twilio does; the message
    /// takes each status as it is posted, whatever the answer (Twilio does not retry a callback
    /// answered with an error).
    pub fn send_status_callbacks(&self, auth_token: &str) {
        lock(&self.shared).callbacks = Some(auth_token.to_owned());
    }

    /// Waits until `count` status callbacks have been answered (they are posted after the send's
    /// answer, on their own), woken by each answer rather than polling; their statuses, in order.
    pub async fn callbacks_answered_at_least(&self, count: usize) -> Vec<u16> {
        loop {
            let notify = Arc::clone(&lock(&self.shared).callback_answered);
            let answered = notify.notified();
            tokio::pin!(answered);
            answered.as_mut().enable();
            let so_far = self.callbacks_answered();
            if so_far.len() >= count {
                return so_far;
            }
            answered.await;
        }
    }

    /// The HTTP status each status callback was answered with, in order.
    pub fn callbacks_answered(&self) -> Vec<u16> {
        lock(&self.shared).callbacks_answered.clone()
    }

    /// Makes every answer, refusals and scripted replies included, wait `latency` first, as a
    /// service across a network would; `Duration::ZERO` (the default) answers at once.
    pub fn set_latency(&self, latency: Duration) {
        self.latency.set(latency);
    }

    /// From now on, draws a failure for every request that passes the checks and finds no
    /// scripted reply, from a generator seeded with `seed` so a run can be repeated.
    pub fn set_faults(&self, faults: Faults, seed: u64) {
        lock(&self.shared).faults = Some((faults, fastrand::Rng::with_seed(seed)));
    }

    /// While `down`, answers every creation that passes the checks 503 (code 20503), before any
    /// scripted reply or drawn fault: an outage of the Messages API. Reading messages back still
    /// works, as Twilio's API is not one service.
    pub fn set_down(&self, down: bool) {
        lock(&self.shared).down = down;
    }

    /// Replaces the accepted credentials (a rotated or revoked key): only these work from now on.
    pub fn set_auth(&self, auth: Vec<(String, String)>) {
        lock(&self.shared).auth = auth;
    }

    /// The account's API keys now.
    pub fn keys(&self) -> Vec<ApiKey> {
        lock(&self.shared).keys.clone()
    }

    /// Every request received, in order, refused ones included.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared).requests.clone()
    }

    /// The messages created, in order.
    pub fn messages(&self) -> Vec<CreatedMessage> {
        lock(&self.shared).messages.clone()
    }

    /// Moves a message to `status` (with `error_code`), as Twilio does when the carrier reports
    /// back, without posting a callback: what reading the message back answers from now on.
    /// `false` when no message has this sid.
    pub fn set_status(&self, sid: &str, status: &str, error_code: Option<u32>) -> bool {
        set_message_status(&self.shared, sid, status, error_code)
    }

    /// The requests that read a message back, in order.
    pub fn fetches(&self) -> Vec<RecordedRequest> {
        lock(&self.shared)
            .requests
            .iter()
            .filter(|r| r.path.contains("/Messages/"))
            .cloned()
            .collect()
    }
}

fn set_message_status(shared: &Shared, sid: &str, status: &str, error_code: Option<u32>) -> bool {
    let mut inner = lock(shared);
    let Some(message) = inner.messages.iter_mut().find(|m| m.sid == sid) else {
        return false;
    };
    message.status = status.to_owned();
    message.error_code = error_code;
    true
}

/// Twilio's error JSON.
fn twilio_error(status: u16, code: u32, message: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = json!({
        "code": code,
        "message": message,
        "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
        "status": status.as_u16(),
    });
    (status, axum::Json(body)).into_response()
}

fn default_code(status: u16) -> u32 {
    if status == 401 {
        20003
    } else {
        20000 + u32::from(status)
    }
}

fn default_message(status: u16) -> &'static str {
    match status {
        401 => "Authenticate",
        403 => "Forbidden",
        404 => "The requested resource was not found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// The user and password of an `Authorization: Basic` header.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

fn is_form(content_type: Option<&str>) -> bool {
    content_type
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(FORM))
}

/// Decodes an `application/x-www-form-urlencoded` body (`+` is a space).
fn parse_form(body: &[u8]) -> Vec<(String, String)> {
    let mut url = reqwest::Url::parse("http://form.invalid/").expect("a static URL");
    url.set_query(Some(&String::from_utf8_lossy(body)));
    url.query_pairs()
        .map(|(key, value)| (key.into_owned(), value.into_owned()))
        .collect()
}

/// `^\+[1-9]\d{1,14}$`, written out here so the fake does not trust the product's own check.
fn is_e164(number: &str) -> bool {
    number.strip_prefix('+').is_some_and(|digits| {
        (2..=15).contains(&digits.len())
            && !digits.starts_with('0')
            && digits.bytes().all(|b| b.is_ascii_digit())
    })
}

/// A rough segment count: ASCII as GSM-7 (160, then 153 each), anything else as UCS-2 (70, then
/// 67 each). GSM-7's two-septet characters are counted once; the product's own count is exact.
fn approximate_segments(body: &str) -> usize {
    let (units, single, split) = if body.is_ascii() {
        (body.len(), 160, 153)
    } else {
        (body.encode_utf16().count(), 70, 67)
    };
    if units <= single {
        1
    } else {
        units.div_ceil(split)
    }
}

fn new_sid(inner: &Inner) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let digest = Sha256::digest(format!(
        "{}/{}/{}/{nanos}",
        inner.account_sid,
        inner.port,
        inner.messages.len()
    ));
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("SM{hex}")
}

fn rfc2822_now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc2822)
        .unwrap_or_default()
}

/// What a request asks for, once it passed the checks.
struct Submission {
    to: String,
    from: Option<String>,
    messaging_service_sid: Option<String>,
    body: String,
    status_callback: Option<String>,
    auth_user: String,
}

async fn handle(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let form = if is_form(content_type.as_deref()) {
        parse_form(&body)
    } else {
        Vec::new()
    };
    let credentials = basic_credentials(&headers);
    let index = {
        let mut inner = lock(&shared);
        inner.requests.push(RecordedRequest {
            method: method.to_string(),
            path: uri.path().to_owned(),
            auth_user: credentials.as_ref().map(|(user, _)| user.clone()),
            content_type: content_type.clone(),
            form: form.clone(),
            status: None,
            reply: None,
        });
        inner.requests.len() - 1
    };
    // The answer is worked out in a task of its own, so a client that gives up (a timeout) does
    // not stop it: the message is still created, as the real service would.
    let work = tokio::spawn(async move {
        let response = answer(
            &shared,
            index,
            &method,
            uri.path(),
            credentials,
            content_type.as_deref(),
            form,
        )
        .await;
        lock(&shared).requests[index].status = Some(response.status().as_u16());
        response
    });
    work.await
        .unwrap_or_else(|_| twilio_error(500, 20500, "the fake failed"))
}

async fn answer(
    shared: &Shared,
    index: usize,
    method: &Method,
    path: &str,
    credentials: Option<(String, String)>,
    content_type: Option<&str>,
    form: Vec<(String, String)>,
) -> Response {
    if let Some(sid) = fetched_sid(shared, path) {
        return fetch(shared, method, &sid, credentials);
    }
    if let Some(response) = keys::answer(shared, method, path, credentials.clone(), &form) {
        return response;
    }
    let submission = match check(shared, method, path, credentials, content_type, form) {
        Ok(submission) => submission,
        Err(refusal) => return refusal.into_response(),
    };
    let reply = {
        let mut inner = lock(shared);
        let reply = inner.next_reply();
        inner.requests[index].reply.clone_from(&reply);
        reply
    };
    match reply {
        None | Some(Reply::Created) => {}
        Some(Reply::Hang(delay)) => tokio::time::sleep(delay).await,
        Some(Reply::Status(status)) => {
            return twilio_error(status, default_code(status), default_message(status))
        }
        Some(Reply::TooManyRequests { retry_after_secs }) => {
            let mut response = twilio_error(429, 20429, "Too Many Requests");
            if let Some(secs) = retry_after_secs {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            return response;
        }
        Some(Reply::Error { http, code }) => {
            return twilio_error(http, code, &format!("Scripted error {code}"))
        }
        Some(Reply::Raw { http, body }) => {
            let status = StatusCode::from_u16(http).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let content_type = if serde_json::from_str::<Value>(&body).is_ok() {
                "application/json; charset=utf-8"
            } else {
                "text/html; charset=utf-8"
            };
            return (status, [(header::CONTENT_TYPE, content_type)], body).into_response();
        }
    }
    create(shared, submission)
}

/// A request the checks turned down: Twilio's error, and for a 401 its `WWW-Authenticate`.
struct Refusal {
    status: u16,
    code: u32,
    message: String,
}

impl Refusal {
    fn new(status: u16, code: u32, message: &str) -> Self {
        Self {
            status,
            code,
            message: message.to_owned(),
        }
    }

    fn into_response(self) -> Response {
        let mut response = twilio_error(self.status, self.code, &self.message);
        if self.status == 401 {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"Twilio API\""),
            );
        }
        response
    }
}

/// The message sid of a read-back path of this account
/// (`/2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json`), if the path is one.
fn fetched_sid(shared: &Shared, path: &str) -> Option<String> {
    let prefix = format!(
        "/{API_VERSION}/Accounts/{}/Messages/",
        lock(shared).account_sid
    );
    let sid = path.strip_prefix(&prefix)?.strip_suffix(".json")?;
    (!sid.is_empty() && !sid.contains('/')).then(|| sid.to_owned())
}

/// Reads a message back: GET with valid credentials, for a message this fake created.
fn fetch(
    shared: &Shared,
    method: &Method,
    sid: &str,
    credentials: Option<(String, String)>,
) -> Response {
    let inner = lock(shared);
    if method != Method::GET {
        return Refusal::new(405, 20004, "Method not allowed").into_response();
    }
    if !credentials.is_some_and(|(user, password)| {
        inner.auth.iter().any(|(u, p)| *u == user && *p == password)
    }) {
        return Refusal::new(401, 20003, "Authenticate").into_response();
    }
    let Some(message) = inner.messages.iter().find(|m| m.sid == sid) else {
        return Refusal::new(
            404,
            20404,
            &format!(
                "The requested resource /{API_VERSION}/Accounts/{}/Messages/{sid}.json was not found",
                inner.account_sid
            ),
        )
        .into_response();
    };
    let body = resource(&inner.account_sid, message, &rfc2822_now());
    (StatusCode::OK, axum::Json(body)).into_response()
}

/// Twilio's message resource for `message` as it is now.
fn resource(account_sid: &str, message: &CreatedMessage, date_updated: &str) -> Value {
    let sid = &message.sid;
    json!({
        "account_sid": account_sid,
        "api_version": API_VERSION,
        "body": message.body,
        "date_created": message.date_created,
        "date_sent": null,
        "date_updated": date_updated,
        "direction": "outbound-api",
        "error_code": message.error_code,
        "error_message": message.error_code.map(|code| format!("Error {code}")),
        "from": message.from,
        "messaging_service_sid": message.messaging_service_sid,
        "num_media": "0",
        "num_segments": approximate_segments(&message.body).to_string(),
        "price": null,
        "price_unit": "USD",
        "sid": sid,
        "status": message.status,
        "subresource_uris": {"media": format!("/{API_VERSION}/Accounts/{account_sid}/Messages/{sid}/Media.json")},
        "to": message.to,
        "uri": format!("/{API_VERSION}/Accounts/{account_sid}/Messages/{sid}.json"),
    })
}

/// The checks Twilio makes before it takes a message, in its order.
fn check(
    shared: &Shared,
    method: &Method,
    path: &str,
    credentials: Option<(String, String)>,
    content_type: Option<&str>,
    form: Vec<(String, String)>,
) -> Result<Submission, Refusal> {
    let inner = lock(shared);
    let expected = format!(
        "/{API_VERSION}/Accounts/{}/Messages.json",
        inner.account_sid
    );
    if path != expected {
        return Err(Refusal::new(
            404,
            20404,
            &format!("The requested resource {path} was not found"),
        ));
    }
    if method != Method::POST {
        return Err(Refusal::new(405, 20004, "Method not allowed"));
    }
    let Some((user, _)) = credentials
        .filter(|(user, password)| inner.auth.iter().any(|(u, p)| u == user && p == password))
    else {
        return Err(Refusal::new(401, 20003, "Authenticate"));
    };
    if !is_form(content_type) {
        return Err(Refusal::new(
            400,
            21604,
            &format!(
                "A 'To' phone number is required. (parameters are read from {FORM} bodies only)"
            ),
        ));
    }
    let field = |name: &str| {
        form.iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
            .filter(|value| !value.is_empty())
    };
    let Some(to) = field("To") else {
        return Err(Refusal::new(400, 21604, "A 'To' phone number is required."));
    };
    let from = field("From");
    let messaging_service_sid = field("MessagingServiceSid");
    if from.is_none() && messaging_service_sid.is_none() {
        return Err(Refusal::new(
            400,
            21603,
            "A 'From' phone number is required.",
        ));
    }
    let Some(body) = field("Body") else {
        return Err(Refusal::new(400, 21602, "Message body is required."));
    };
    if !is_e164(&to) {
        return Err(Refusal::new(
            400,
            21211,
            &format!("The 'To' number {to} is not a valid phone number."),
        ));
    }
    if body.chars().count() > 1600 {
        return Err(Refusal::new(
            400,
            21617,
            "The concatenated message body exceeds the 1600 character limit.",
        ));
    }
    Ok(Submission {
        to,
        from,
        messaging_service_sid,
        body,
        status_callback: field("StatusCallback"),
        auth_user: user,
    })
}

/// Records the message and answers Twilio's 201 message resource.
fn create(shared: &Shared, submission: Submission) -> Response {
    let mut inner = lock(shared);
    let sid = new_sid(&inner);
    let account_sid = inner.account_sid.clone();
    let now = rfc2822_now();
    let status = if submission.from.is_none() {
        "accepted"
    } else {
        "queued"
    };
    let message = CreatedMessage {
        sid,
        to: submission.to,
        from: submission.from,
        messaging_service_sid: submission.messaging_service_sid,
        body: submission.body,
        status_callback: submission.status_callback,
        auth_user: submission.auth_user,
        created_at: Instant::now(),
        status: status.to_owned(),
        error_code: None,
        date_created: now.clone(),
    };
    let body = resource(&account_sid, &message, &now);
    if let (Some(token), Some(url)) = (inner.callbacks.clone(), message.status_callback.clone()) {
        tokio::spawn(send_callbacks(
            Arc::clone(shared),
            token,
            url,
            message.clone(),
            account_sid.clone(),
        ));
    }
    inner.messages.push(message);
    (StatusCode::CREATED, axum::Json(body)).into_response()
}

/// Posts `sent` then `delivered` for `message` to `url`, signed like Twilio's own callbacks.
async fn send_callbacks(
    shared: Shared,
    token: String,
    url: String,
    message: CreatedMessage,
    account_sid: String,
) {
    let client = reqwest::Client::new();
    for status in ["sent", "delivered"] {
        set_message_status(&shared, &message.sid, status, None);
        let params: Vec<(String, String)> = [
            ("AccountSid", account_sid.as_str()),
            ("ApiVersion", API_VERSION),
            ("From", message.from.as_deref().unwrap_or_default()),
            ("MessageSid", message.sid.as_str()),
            ("MessageStatus", status),
            ("SmsSid", message.sid.as_str()),
            ("SmsStatus", status),
            ("To", message.to.as_str()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let signature = genesys_relay::inbound::auth::twilio::sign(token.as_bytes(), &url, &params);
        let answered = match client
            .post(&url)
            .header("X-Twilio-Signature", signature)
            .form(&params)
            .send()
            .await
        {
            Ok(response) => response.status().as_u16(),
            Err(_) => 0,
        };
        let mut inner = lock(&shared);
        inner.callbacks_answered.push(answered);
        inner.callback_answered.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_split_the_draws_in_their_order_and_leave_the_rest_alone() {
        let faults = Faults {
            server_error: 0.05,
            too_many_requests: 0.02,
            retry_after_secs: 2,
            timeout: 0.01,
            hang: Duration::from_secs(11),
        };
        let too_many = Some(Reply::TooManyRequests {
            retry_after_secs: Some(2),
        });
        let hang = Some(Reply::Hang(Duration::from_secs(11)));
        assert_eq!(faults.reply(0.0), Some(Reply::Status(503)));
        assert_eq!(faults.reply(0.049), Some(Reply::Status(503)));
        assert_eq!(faults.reply(0.05), too_many);
        assert_eq!(faults.reply(0.069), too_many);
        assert_eq!(faults.reply(0.07), hang);
        assert_eq!(faults.reply(0.079), hang);
        assert_eq!(faults.reply(0.08), None);
        assert_eq!(faults.reply(0.999), None);
    }
}

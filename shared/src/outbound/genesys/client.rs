//! The Genesys Cloud Platform API client: one OAuth token shared by every call, refreshed before
//! it expires and once when Genesys refuses it, and every failure classified into the product's
//! error taxonomy so the caller never looks at a status code.
//!
//! The client never sleeps or retries a throttled or failed call itself: it answers
//! [`Error::Retryable`] with the delay Genesys asked for, and the queue does the waiting, so a
//! Lambda never burns its time budget in a sleep.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, ACCEPT};
use reqwest::{Response, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::credentials::GenesysCredentials;
use super::token::{AccessToken, TokenResponse, TokenSlot};
use crate::config::GenesysEndpoints;
use crate::error::{Error, Result};
use crate::secrets::CachedSecret;

/// The wait Genesys' own SDKs use when a retryable answer carries no `Retry-After`.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(3);
/// The longest id accepted in a URL path (Genesys ids are 36-character UUIDs).
pub const MAX_ID_LEN: usize = 128;
/// How much of an error body is read: enough for Genesys' error JSON, bounded against a
/// misbehaving proxy.
const MAX_BODY_BYTES: usize = 64 * 1024;
/// How much of Genesys' error message is kept in our error.
const MAX_DETAIL_CHARS: usize = 300;
/// Entities asked for per page of a listing (Genesys' usual maximum).
const PAGE_SIZE: u32 = 100;
/// Pages read at most, so a server that never stops paging cannot hold an invocation.
const MAX_PAGES: u32 = 50;

/// A wrap-up code as Genesys lists it: events carry its `id`, people know its `name`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct WrapupCode {
    /// The id `.acw` events carry: a UUID, or the literal id of a dialer system code.
    pub id: String,
    /// The name agents pick.
    #[serde(default)]
    pub name: String,
}

/// One page of `GET /api/v2/routing/wrapupcodes` (the SDKs' `WrapupCodeEntityListing`).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WrapupCodeListing {
    #[serde(default)]
    entities: Vec<WrapupCode>,
    #[serde(default)]
    page_count: Option<u32>,
}

/// The part of the SDKs' `DialerContact` the relay reads: the contact list's columns.
#[derive(Deserialize)]
struct DialerContact {
    #[serde(default)]
    data: serde_json::Map<String, serde_json::Value>,
}

/// A client of one Genesys Cloud organization. Build it once per cold start and share it (it is
/// `Send + Sync`): the access token is cached inside, and concurrent callers wait for one token
/// request instead of each making their own.
pub struct GenesysClient {
    http: reqwest::Client,
    endpoints: GenesysEndpoints,
    credentials: Arc<CachedSecret<GenesysCredentials>>,
    tokens: Mutex<TokenSlot>,
}

#[derive(Serialize)]
struct AttributesBody<'a> {
    attributes: &'a BTreeMap<String, String>,
}

/// What the token endpoint said about a set of credentials.
enum TokenOutcome {
    Issued {
        token: SecretString,
        requested_at: Instant,
        lifetime: Duration,
    },
    /// The OAuth client itself was refused (401, or 400 `invalid_client`): the secret may have
    /// been rotated under us.
    ClientRefused(String),
}

impl GenesysClient {
    /// A client over a shared HTTP client (see [`crate::outbound::http::client`], whose timeouts turn a
    /// hung Genesys into a retryable failure) and the credentials secret. Nothing is fetched until
    /// the first call.
    pub fn new(
        http: reqwest::Client,
        endpoints: GenesysEndpoints,
        credentials: Arc<CachedSecret<GenesysCredentials>>,
    ) -> Self {
        Self {
            http,
            endpoints,
            credentials,
            tokens: Mutex::new(TokenSlot::default()),
        }
    }

    /// A client over credentials known up front (the CLI's environment, the local stack): they are
    /// never read again, so a refused client fails at once.
    pub fn with_credentials(
        http: reqwest::Client,
        endpoints: GenesysEndpoints,
        credentials: GenesysCredentials,
    ) -> Self {
        let label = format!("OAuth client {}", credentials.client_id);
        Self::new(
            http,
            endpoints,
            Arc::new(CachedSecret::fixed(label, credentials)),
        )
    }

    /// The endpoints this client talks to, for startup logs.
    pub fn endpoints(&self) -> &GenesysEndpoints {
        &self.endpoints
    }

    /// Merges string attributes into a participant of a conversation (what a flow or script reads
    /// back, e.g. the SMS delivery status). Genesys merges the given keys and keeps the others, so
    /// sending the same attributes twice is harmless: the call is safe to retry.
    ///
    /// Ids must be plain Genesys ids (letters, digits and `-`); anything else is refused as
    /// [`Error::Permanent`] before any request is made.
    pub async fn patch_participant_attributes(
        &self,
        conversation_id: &str,
        participant_id: &str,
        attributes: &BTreeMap<String, String>,
    ) -> Result<()> {
        check_id("conversation", conversation_id)?;
        check_id("participant", participant_id)?;
        let url = format!(
            "{}/api/v2/conversations/{conversation_id}/participants/{participant_id}/attributes",
            self.endpoints.api_base
        );
        let body = AttributesBody { attributes };
        let operation = "participant attributes update";
        let (response, token) = self
            .authorized(operation, |token| {
                self.http
                    .patch(&url)
                    .bearer_auth(token)
                    .header(ACCEPT, "application/json")
                    .json(&body)
            })
            .await?;
        successful(operation, response, &token).await.map(drop)
    }

    /// Every wrap-up code of the organization (`GET /api/v2/routing/wrapupcodes`, page by page),
    /// or those whose name matches `name` as Genesys' `name` filter understands it (not
    /// necessarily exactly: callers compare names themselves). Needs `routing:wrapupCode:view`.
    pub async fn wrapup_codes(&self, name: Option<&str>) -> Result<Vec<WrapupCode>> {
        let operation = "wrap-up code listing";
        let base = format!("{}/api/v2/routing/wrapupcodes", self.endpoints.api_base);
        let mut codes = Vec::new();
        for page in 1..=MAX_PAGES {
            let mut url = reqwest::Url::parse(&base).map_err(|e| {
                Error::permanent(format!("Genesys {operation}: bad API base URL: {e}"))
            })?;
            url.query_pairs_mut()
                .append_pair("pageSize", &PAGE_SIZE.to_string())
                .append_pair("pageNumber", &page.to_string());
            if let Some(name) = name {
                url.query_pairs_mut().append_pair("name", name);
            }
            let (response, token) = self
                .authorized(operation, |token| {
                    self.http
                        .get(url.clone())
                        .bearer_auth(token)
                        .header(ACCEPT, "application/json")
                })
                .await?;
            let listing: WrapupCodeListing = read_json(operation, response, &token).await?;
            let last =
                listing.entities.is_empty() || listing.page_count.is_none_or(|count| page >= count);
            codes.extend(listing.entities);
            if last {
                return Ok(codes);
            }
        }
        Err(Error::permanent(format!(
            "Genesys {operation}: more than {MAX_PAGES} pages of {PAGE_SIZE}"
        )))
    }

    /// The columns of an outbound contact (`GET /api/v2/outbound/contactlists/{listId}/contacts/
    /// {contactId}`, the `DialerContact`'s `data`), or `None` when Genesys no longer has it.
    /// Needs `outbound:contact:view`.
    pub(crate) async fn contact_columns(
        &self,
        contact_list_id: &str,
        contact_id: &str,
    ) -> Result<Option<serde_json::Map<String, serde_json::Value>>> {
        check_id("contact list", contact_list_id)?;
        check_id("contact", contact_id)?;
        let operation = "outbound contact read";
        let url = format!(
            "{}/api/v2/outbound/contactlists/{contact_list_id}/contacts/{contact_id}",
            self.endpoints.api_base
        );
        let (response, token) = self
            .authorized(operation, |token| {
                self.http
                    .get(&url)
                    .bearer_auth(token)
                    .header(ACCEPT, "application/json")
            })
            .await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let contact: DialerContact = read_json(operation, response, &token).await?;
        Ok(Some(contact.data))
    }

    /// Gets an access token now (cached for the calls that follow): a command checks its OAuth
    /// client before its first call, so a refused client is one clear error, not a note.
    pub async fn sign_in(&self) -> Result<()> {
        self.token(None).await.map(drop)
    }

    /// A Platform API call this client has no operation of its own for (the CLI's integration
    /// setup): `method` on `path` under the API base, with an optional JSON body; answers the JSON
    /// body, `Null` when empty. The same token cache, 401 retry, failure classification and
    /// scrubbing as every other call; `operation` names the call in errors and logs.
    pub async fn call(
        &self,
        operation: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<serde_json::Value> {
        let url = format!("{}{path}", self.endpoints.api_base);
        let (response, token) = self
            .authorized(operation, |token| {
                let request = self
                    .http
                    .request(method.clone(), &url)
                    .bearer_auth(token)
                    .header(ACCEPT, "application/json");
                match body {
                    Some(body) => request.json(body),
                    None => request,
                }
            })
            .await?;
        let response = successful(operation, response, &token).await?;
        let headers = response.headers().clone();
        let answer = response
            .bytes()
            .await
            .map_err(|e| transport_error(operation, &e))?;
        if answer.is_empty() {
            return Ok(serde_json::Value::Null);
        }
        serde_json::from_slice(&answer).map_err(|e| {
            Error::retryable(format!(
                "Genesys {operation}: the answer is not JSON ({e}){}",
                correlation_suffix(&headers)
            ))
        })
    }

    /// Sends the request `build` makes with a valid access token; when Genesys refuses the token,
    /// fetches a new one and sends once more. Answers whatever Genesys answered then, with the
    /// token it was sent with (to scrub it from error details).
    async fn authorized(
        &self,
        operation: &str,
        build: impl Fn(&str) -> reqwest::RequestBuilder,
    ) -> Result<(Response, Arc<AccessToken>)> {
        let send = |token: &AccessToken| {
            let request = build(token.secret.expose_secret());
            async move {
                request
                    .send()
                    .await
                    .map_err(|e| transport_error(operation, &e))
            }
        };
        let token = self.token(None).await?;
        let response = send(&token).await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok((response, token));
        }
        log_failure(operation, response.status(), response.headers());
        tracing::info!("Genesys refused the access token; fetching a new one and retrying once");
        let token = self.token(Some(token.generation)).await?;
        let response = send(&token).await?;
        if response.status() == StatusCode::UNAUTHORIZED {
            self.tokens.lock().await.discard(token.generation);
            let headers = response.headers().clone();
            log_failure(operation, response.status(), &headers);
            return Err(Error::permanent(format!(
                "Genesys {operation}: a newly issued access token was refused (HTTP 401); \
                 check that GENESYS_REGION (or the base URL overrides) matches the OAuth \
                 client's organization{}",
                correlation_suffix(&headers)
            )));
        }
        Ok((response, token))
    }

    /// A usable access token: the cached one while fresh, else a new one. `refused` names the
    /// generation Genesys just refused, which is never handed back. The lock is held across the
    /// token request, so concurrent callers share it.
    async fn token(&self, refused: Option<u64>) -> Result<Arc<AccessToken>> {
        let mut slot = self.tokens.lock().await;
        if let Some(token) = slot.usable(Instant::now(), refused) {
            return Ok(token);
        }
        if let Some(generation) = refused {
            slot.discard(generation);
        }
        let (token, requested_at, lifetime) = self.fetch_token().await?;
        tracing::debug!(
            lifetime_secs = lifetime.as_secs(),
            "fetched a Genesys access token"
        );
        Ok(slot.store(token, requested_at, lifetime))
    }

    /// Asks for a token with the current credentials; when the OAuth client is refused, re-reads
    /// the secret (a rotation may have happened) and tries once more with what it now holds.
    async fn fetch_token(&self) -> Result<(SecretString, Instant, Duration)> {
        let credentials = self.credentials.current().await?;
        let reason = match self.request_token(&credentials).await? {
            TokenOutcome::Issued {
                token,
                requested_at,
                lifetime,
            } => return Ok((token, requested_at, lifetime)),
            TokenOutcome::ClientRefused(reason) => reason,
        };
        tracing::warn!(
            client_id = %credentials.client_id,
            %reason,
            "Genesys refused the OAuth client; re-reading its secret in case it was rotated"
        );
        self.credentials.invalidate().await;
        let reread = self.credentials.current().await?;
        if reread.same_as(&credentials) {
            return Err(misconfigured(&credentials, &reason));
        }
        match self.request_token(&reread).await? {
            TokenOutcome::Issued {
                token,
                requested_at,
                lifetime,
            } => Ok((token, requested_at, lifetime)),
            TokenOutcome::ClientRefused(reason) => Err(misconfigured(&reread, &reason)),
        }
    }

    async fn request_token(&self, credentials: &GenesysCredentials) -> Result<TokenOutcome> {
        let operation = "token request";
        let url = format!("{}/oauth/token", self.endpoints.login_base);
        let requested_at = Instant::now();
        let response = self
            .http
            .post(url)
            .basic_auth(
                &credentials.client_id,
                Some(credentials.client_secret().expose_secret()),
            )
            .header(ACCEPT, "application/json")
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .map_err(|e| transport_error(operation, &e))?;
        let status = response.status();
        let headers = response.headers().clone();
        if status.is_success() {
            let body = response
                .bytes()
                .await
                .map_err(|e| transport_error(operation, &e))?;
            let parsed: TokenResponse = serde_json::from_slice(&body).map_err(|_| {
                Error::retryable(format!(
                    "Genesys {operation}: the answer is not token JSON \
                     (access_token, expires_in){}",
                    correlation_suffix(&headers)
                ))
            })?;
            if parsed.access_token.expose_secret().is_empty() {
                return Err(Error::retryable(format!(
                    "Genesys {operation}: the answer holds an empty access_token{}",
                    correlation_suffix(&headers)
                )));
            }
            if let Some(kind) = parsed
                .token_type
                .as_deref()
                .filter(|t| !t.eq_ignore_ascii_case("bearer"))
            {
                tracing::warn!(token_type = %kind, "Genesys issued a token that is not a bearer token; sending it as one");
            }
            return Ok(TokenOutcome::Issued {
                token: parsed.access_token,
                requested_at,
                lifetime: Duration::from_secs(parsed.expires_in),
            });
        }
        let body = read_bounded(response).await;
        log_failure(operation, status, &headers);
        let detail = ErrorDetail::parse(&body)
            .scrubbed(&[credentials.client_secret().expose_secret().to_owned()]);
        let client_refused = status == StatusCode::UNAUTHORIZED
            || (status == StatusCode::BAD_REQUEST
                && detail.code.as_deref() == Some("invalid_client"));
        if client_refused {
            return Ok(TokenOutcome::ClientRefused(format!(
                "HTTP {}{}{}",
                status.as_u16(),
                detail.describe(),
                correlation_suffix(&headers)
            )));
        }
        Err(classify(operation, status, &headers, &detail))
    }
}

impl std::fmt::Debug for GenesysClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GenesysClient")
            .field("endpoints", &self.endpoints)
            .finish_non_exhaustive()
    }
}

fn misconfigured(credentials: &GenesysCredentials, reason: &str) -> Error {
    Error::permanent(format!(
        "Genesys refused OAuth client {} even after the secret was read again ({reason}); \
         check the client id and secret in the Genesys credentials secret",
        credentials.client_id
    ))
}

/// The answer itself when it is a success, else the error it means for the caller.
async fn successful(operation: &str, response: Response, token: &AccessToken) -> Result<Response> {
    if response.status().is_success() {
        return Ok(response);
    }
    let status = response.status();
    let headers = response.headers().clone();
    let answer = read_bounded(response).await;
    log_failure(operation, status, &headers);
    let detail = ErrorDetail::parse(&answer).scrubbed(&[token.secret.expose_secret().to_owned()]);
    Err(classify(operation, status, &headers, &detail))
}

/// A successful answer's JSON body as `T`; a body of another shape is retryable (a proxy's page
/// or a passing fault), never taken as an empty answer.
async fn read_json<T: serde::de::DeserializeOwned>(
    operation: &str,
    response: Response,
    token: &AccessToken,
) -> Result<T> {
    let response = successful(operation, response, token).await?;
    let headers = response.headers().clone();
    let body = response
        .bytes()
        .await
        .map_err(|e| transport_error(operation, &e))?;
    serde_json::from_slice(&body).map_err(|e| {
        Error::retryable(format!(
            "Genesys {operation}: the answer is not of the expected shape ({e}){}",
            correlation_suffix(&headers)
        ))
    })
}

/// Refuses ids that are not plain Genesys ids, so no event (or answer) can steer a request to
/// another path.
pub fn check_id(kind: &str, id: &str) -> Result<()> {
    let plain = !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if plain {
        return Ok(());
    }
    let shown: String = id.chars().take(64).collect();
    Err(Error::permanent(format!(
        "{kind} id {shown:?} is not a Genesys id (1 to {MAX_ID_LEN} letters, digits or '-')"
    )))
}

/// The fields Genesys puts in an error body: `message`/`code` from the Platform API,
/// `error`/`description` (or `error_description`) from the login service.
#[derive(Debug, Default)]
pub(crate) struct ErrorDetail {
    code: Option<String>,
    message: Option<String>,
}

impl ErrorDetail {
    /// Whatever of the two fields the body holds; nothing for a body that is not such JSON.
    fn parse(body: &[u8]) -> Self {
        #[derive(Deserialize)]
        struct Loose {
            #[serde(default)]
            code: Option<serde_json::Value>,
            #[serde(default)]
            error: Option<serde_json::Value>,
            #[serde(default)]
            message: Option<serde_json::Value>,
            #[serde(default)]
            description: Option<serde_json::Value>,
            #[serde(default)]
            error_description: Option<serde_json::Value>,
        }
        fn text(value: Option<serde_json::Value>) -> Option<String> {
            match value? {
                serde_json::Value::String(s) if !s.trim().is_empty() => Some(s),
                _ => None,
            }
        }
        match serde_json::from_slice::<Loose>(body) {
            Ok(loose) => Self {
                code: text(loose.code).or(text(loose.error)),
                message: text(loose.message)
                    .or(text(loose.error_description))
                    .or(text(loose.description)),
            },
            Err(_) => Self::default(),
        }
    }

    /// Removes any occurrence of the given secrets, shortens and flattens the text, so an error
    /// message can go to logs and dead-letter reasons as is.
    fn scrubbed(self, secrets: &[String]) -> Self {
        let clean = |s: String| {
            let mut s = s;
            for secret in secrets.iter().filter(|x| !x.is_empty()) {
                s = s.replace(secret.as_str(), "[redacted]");
            }
            let flat: String = s
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .take(MAX_DETAIL_CHARS)
                .collect();
            flat.trim().to_owned()
        };
        Self {
            code: self.code.map(clean),
            message: self.message.map(clean),
        }
    }

    /// ` (code): message`, or what of it is known.
    fn describe(&self) -> String {
        match (&self.code, &self.message) {
            (Some(code), Some(message)) => format!(" {code}: {message}"),
            (Some(code), None) => format!(" {code}"),
            (None, Some(message)) => format!(": {message}"),
            (None, None) => String::new(),
        }
    }
}

/// Decides what a failed answer means for the caller.
pub(crate) fn classify(
    operation: &str,
    status: StatusCode,
    headers: &HeaderMap,
    detail: &ErrorDetail,
) -> Error {
    let code = status.as_u16();
    let context = format!(
        "Genesys {operation}: HTTP {code}{}{}",
        detail.describe(),
        correlation_suffix(headers)
    );
    match code {
        429 | 502 | 503 | 504 => Error::Retryable {
            message: context,
            retry_after: Some(
                crate::outbound::http::retry_after(headers).unwrap_or(DEFAULT_RETRY_AFTER),
            ),
        },
        408 | 500..=599 => Error::Retryable {
            message: context,
            retry_after: crate::outbound::http::retry_after(headers),
        },
        404 => Error::permanent(format!(
            "Genesys {operation}: not found (HTTP 404){}",
            correlation_suffix(headers)
        )),
        _ => Error::permanent(context),
    }
}

fn transport_error(operation: &str, error: &reqwest::Error) -> Error {
    let what = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "failed"
    };
    let chain = crate::error::chain(error);
    tracing::warn!(operation, reason = %chain, "Genesys {what}");
    Error::retryable(format!("Genesys {operation} {what}: {chain}"))
}

async fn read_bounded(mut response: Response) -> Vec<u8> {
    let mut body = Vec::new();
    while body.len() < MAX_BODY_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    body.truncate(MAX_BODY_BYTES);
    body
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn correlation_suffix(headers: &HeaderMap) -> String {
    header(headers, "inin-correlation-id")
        .map(|id| {
            let id: String = id.chars().take(64).collect();
            format!(" (correlation id {id})")
        })
        .unwrap_or_default()
}

/// One log line per failed answer, with what Genesys support asks for in a ticket (the
/// correlation id) and the rate-limit state.
fn log_failure(operation: &str, status: StatusCode, headers: &HeaderMap) {
    if status == StatusCode::TOO_MANY_REQUESTS {
        crate::telemetry::count_throttled(crate::telemetry::Provider::Genesys);
    }
    tracing::warn!(
        operation,
        status = status.as_u16(),
        correlation_id = header(headers, "inin-correlation-id").unwrap_or(""),
        ratelimit_count = header(headers, "inin-ratelimit-count").unwrap_or(""),
        ratelimit_allowed = header(headers, "inin-ratelimit-allowed").unwrap_or(""),
        ratelimit_reset = header(headers, "inin-ratelimit-reset").unwrap_or(""),
        retry_after = header(headers, "retry-after").unwrap_or(""),
        "Genesys call failed"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    fn status(code: u16) -> StatusCode {
        StatusCode::from_u16(code).unwrap()
    }

    fn retry_after_of(error: &Error) -> Option<Duration> {
        match error {
            Error::Retryable { retry_after, .. } => *retry_after,
            other => panic!("expected retryable, got {other:?}"),
        }
    }

    #[test]
    fn plain_ids_pass_and_odd_ones_are_refused() {
        assert!(check_id("conversation", "2f7b0c1e-0b5e-4c2f-9d3a-6c1b2a3d4e5f").is_ok());
        assert!(check_id("conversation", "ABCdef123").is_ok());
        for bad in [
            "",
            "../users",
            "a/b",
            "a b",
            "a%2Fb",
            "a?b",
            "a#b",
            "a.b",
            "é",
            "a\nb",
            &"a".repeat(MAX_ID_LEN + 1),
        ] {
            let err = check_id("participant", bad).unwrap_err();
            assert_eq!(err.class(), "permanent", "{bad:?}");
            assert!(err.to_string().starts_with("participant id"), "{err}");
        }
        assert!(check_id("participant", &"a".repeat(MAX_ID_LEN)).is_ok());
    }

    #[test]
    fn throttling_and_gateway_errors_wait_as_told_or_three_seconds() {
        let none = ErrorDetail::default();
        for code in [429, 502, 503, 504] {
            let told = classify("op", status(code), &headers(&[("retry-after", "7")]), &none);
            assert_eq!(
                retry_after_of(&told),
                Some(Duration::from_secs(7)),
                "{code}"
            );
            let silent = classify("op", status(code), &HeaderMap::new(), &none);
            assert_eq!(retry_after_of(&silent), Some(DEFAULT_RETRY_AFTER), "{code}");
        }
    }

    #[test]
    fn other_server_errors_and_request_timeouts_are_retryable() {
        let none = ErrorDetail::default();
        for code in [500, 501, 599, 408] {
            let error = classify("op", status(code), &HeaderMap::new(), &none);
            assert_eq!(retry_after_of(&error), None, "{code}");
        }
    }

    #[test]
    fn client_errors_are_permanent_and_say_what_genesys_said() {
        let detail = ErrorDetail::parse(
            br#"{"message":"Missing permission conversation:participant:wrapup","code":"missing.any.permissions","status":403,"contextId":"x"}"#,
        );
        let error = classify(
            "op",
            status(403),
            &headers(&[("inin-correlation-id", "corr-42")]),
            &detail,
        );
        assert_eq!(error.class(), "permanent");
        let text = error.to_string();
        assert!(text.contains("403"), "{text}");
        assert!(text.contains("missing.any.permissions"), "{text}");
        assert!(text.contains("Missing permission"), "{text}");
        assert!(text.contains("corr-42"), "{text}");

        let not_found = classify("op", status(404), &HeaderMap::new(), &detail);
        assert_eq!(not_found.class(), "permanent");
        assert!(not_found.to_string().contains("not found"), "{not_found}");

        for code in [400, 409, 415, 422] {
            assert_eq!(
                classify(
                    "op",
                    status(code),
                    &HeaderMap::new(),
                    &ErrorDetail::default()
                )
                .class(),
                "permanent",
                "{code}"
            );
        }
    }

    #[test]
    fn login_error_bodies_are_understood() {
        let detail = ErrorDetail::parse(
            br#"{"error":"invalid_client","description":"client not found","error_description":"client not found"}"#,
        );
        assert_eq!(detail.code.as_deref(), Some("invalid_client"));
        assert_eq!(detail.message.as_deref(), Some("client not found"));
    }

    #[test]
    fn error_details_never_echo_secrets_and_stay_short() {
        let body = format!(
            r#"{{"message":"token tok-123 is bad\n{}","code":"bad.tok-123"}}"#,
            "x".repeat(1_000)
        );
        let detail = ErrorDetail::parse(body.as_bytes()).scrubbed(&["tok-123".to_owned()]);
        let text = detail.describe();
        assert!(!text.contains("tok-123"), "{text}");
        assert!(text.contains("[redacted]"), "{text}");
        assert!(!text.contains('\n'), "{text}");
        assert!(text.len() < 2 * MAX_DETAIL_CHARS, "{}", text.len());
    }

    #[test]
    fn bodies_that_are_not_error_json_give_no_detail() {
        for body in [
            &b"<html>bad gateway</html>"[..],
            b"",
            b"[1,2]",
            br#"{"code":7}"#,
        ] {
            let detail = ErrorDetail::parse(body);
            assert_eq!(detail.describe(), "", "{body:?}");
        }
    }
}

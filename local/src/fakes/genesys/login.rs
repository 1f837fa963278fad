//! The login service's token endpoint, `POST /oauth/token`, for the client credentials grant.
//!
//! It needs `Authorization: Basic base64(client_id:client_secret)` and the form body
//! `grant_type=client_credentials`, and answers `{"access_token", "token_type": "bearer",
//! "expires_in"}` with a unique token. An unknown client id gets 400 `invalid_client`, a wrong
//! secret or missing authentication 401 `invalid_client`, a bad grant 400, another method 405,
//! each as `{"error", "description", "error_description"}`.

use std::time::Instant;

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::Deserialize;
use serde_json::json;

use super::requests::content_type_is;
use super::responses::{correlation_id, scripted};
use super::{lock, Inner, Shared};

/// The form of a client credentials token request (RFC 6749 section 4.4.2). Unknown parameters
/// such as `scope` pass, as RFC 6749 section 3.2 has the server ignore them.
#[derive(Deserialize)]
pub(super) struct TokenRequest {
    grant_type: Option<String>,
}

/// Why a token request is refused: its status, OAuth error code and description.
type Refused = (StatusCode, &'static str, &'static str);

/// `POST /oauth/token`.
pub(super) async fn token(
    State(shared): State<Shared>,
    headers: HeaderMap,
    form: Result<Form<TokenRequest>, FormRejection>,
) -> Response {
    let delay = {
        let mut inner = lock(&shared);
        if let Some(reply) = arrive(&mut inner) {
            return reply;
        }
        if let Err((status, error, description)) = check(&inner, &headers, form) {
            return login_error(&mut inner, status, error, description);
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
    with_correlation(&mut inner, axum::Json(body).into_response())
}

/// Any other method on the token endpoint: counted and scripted like a POST, then refused.
pub(super) async fn wrong_method(State(shared): State<Shared>) -> Response {
    let mut inner = lock(&shared);
    if let Some(reply) = arrive(&mut inner) {
        return reply;
    }
    login_error(
        &mut inner,
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request",
        "the token endpoint takes POST only",
    )
}

/// Counts a token request and takes the next scripted answer, if any.
fn arrive(inner: &mut Inner) -> Option<Response> {
    inner.requests += 1;
    inner.token_requests += 1;
    let reply = inner.token_script.pop_front()?;
    Some(scripted(inner, reply))
}

/// Checks a token request in the order the login service does: body type, client
/// authentication, then the grant.
fn check(
    inner: &Inner,
    headers: &HeaderMap,
    form: Result<Form<TokenRequest>, FormRejection>,
) -> Result<(), Refused> {
    if !content_type_is(headers, "application/x-www-form-urlencoded") {
        return Err((
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    let Some((id, secret)) = basic_credentials(headers) else {
        return Err((
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication (Basic) is required",
        ));
    };
    let expected = if id == inner.client_id {
        Some(&inner.client_secret)
    } else {
        inner.other_clients.get(&id)
    };
    let Some(expected) = expected else {
        return Err((
            StatusCode::BAD_REQUEST,
            "invalid_client",
            "client not found",
        ));
    };
    if secret != *expected {
        return Err((
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "authentication failed",
        ));
    }
    // The form is refused when a parameter repeats, which RFC 6749 section 3.1 forbids.
    let Ok(Form(form)) = form else {
        return Err((
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the form could not be read",
        ));
    };
    match form.grant_type.as_deref() {
        Some("client_credentials") => Ok(()),
        Some(_) => Err((
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "grant type not supported",
        )),
        None => Err((
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "grant_type is required",
        )),
    }
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

/// The login service's OAuth error JSON.
fn login_error(inner: &mut Inner, status: StatusCode, error: &str, description: &str) -> Response {
    let body =
        json!({"error": error, "description": description, "error_description": description});
    with_correlation(inner, (status, axum::Json(body)).into_response())
}

/// `response` with the correlation id every login answer carries.
fn with_correlation(inner: &mut Inner, mut response: Response) -> Response {
    if let Ok(value) = HeaderValue::from_str(&correlation_id(inner)) {
        response.headers_mut().insert("inin-correlation-id", value);
    }
    response
}

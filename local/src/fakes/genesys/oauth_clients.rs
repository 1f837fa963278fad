//! `POST /api/v2/oauth/clients/{clientId}/secret` (OAuthApi.postOauthClientSecret), which a
//! rotation of the relay's Genesys credentials calls on the standby client. It takes no body,
//! needs a valid bearer token, sets the client's secret to a new random value, refusing the old
//! one at once as Genesys does, and answers the `OAuthClient` with its new `secret`; an unknown
//! client gets 404.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::requests::admit;
use super::responses::{api_error, bad_request, json_answer, Answer};
use super::Shared;

/// `POST /api/v2/oauth/clients/{clientId}/secret`.
pub(super) async fn regenerate_secret(
    State(shared): State<Shared>,
    Path(client_id): Path<String>,
    request: Parts,
    body: Bytes,
) -> Answer {
    let mut inner = admit(&shared, &request, &body)?;
    if !body.is_empty() {
        return Err(bad_request(&mut inner, "this operation takes no body"));
    }
    let regenerated = inner.secrets_regenerated;
    inner.secrets_regenerated += 1;
    let digest = Sha256::digest(format!("{}/{client_id}/{regenerated}", inner.port));
    let secret: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    if client_id == inner.client_id {
        inner.client_secret.clone_from(&secret);
    } else if let Some(stored) = inner.other_clients.get_mut(&client_id) {
        stored.clone_from(&secret);
    } else {
        let message = format!("OAuth client {client_id} not found.");
        return Err(api_error(&mut inner, StatusCode::NOT_FOUND, "not.found", &message).into());
    }
    let body = json!({
        "id": client_id,
        "name": format!("client {client_id}"),
        "accessTokenValiditySeconds": inner.lifetime.as_secs(),
        "authorizedGrantType": "CLIENT-CREDENTIALS",
        "secret": secret,
        "state": "active",
        "selfUri": format!("/api/v2/oauth/clients/{client_id}"),
    });
    json_answer(&mut inner, body)
}

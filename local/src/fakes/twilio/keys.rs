//! The API keys and the account resource of the fake Twilio, as a key rotation uses them:
//!
//! - `POST /2010-04-01/Accounts/{AccountSid}/Keys.json` (form, optional `FriendlyName` of at most
//!   64 characters, else 400 with Twilio's invalid-parameter code 21201) creates a key: 201
//!   with `sid` (`SK` + 32 hex), `friendly_name`, `date_created`, `date_updated` and `secret`, the
//!   only time the secret is shown. The key then authenticates like any credential.
//! - `GET .../Keys.json` lists the keys (`keys`, without secrets, and Twilio's paging fields).
//! - `DELETE .../Keys/{Sid}.json` deletes one: 204, or 404 (code 20404) for an unknown key; the
//!   key stops authenticating at once.
//! - `GET /2010-04-01/Accounts/{AccountSid}.json` reads the account with any working credential.
//!
//! Keys are managed with the account SID and Auth Token only: a request authenticated with an API
//! key gets 401 (code 20003), as a standard key cannot manage keys. Any other method on these paths
//! gets 405 (code 20004).

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{lock, rfc2822_now, Inner, Refusal, Shared, API_VERSION};

/// One API key of the account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// `SK` + 32 hex.
    pub sid: String,
    /// Its name.
    pub friendly_name: String,
    /// Its secret.
    pub secret: String,
    /// `date_created`, RFC 2822.
    pub date_created: String,
}

/// The longest `FriendlyName` Twilio takes.
const MAX_NAME: usize = 64;

/// Twilio's code for an invalid parameter.
const INVALID_PARAMETER: u32 = 21201;

/// The answer to a keys or account request, `None` when `path` is neither.
pub(super) fn answer(
    shared: &Shared,
    method: &Method,
    path: &str,
    credentials: Option<(String, String)>,
    form: &[(String, String)],
) -> Option<Response> {
    let mut inner = lock(shared);
    let account = format!("/{API_VERSION}/Accounts/{}", inner.account_sid);
    let rest = path.strip_prefix(&account)?;
    if rest == ".json" {
        return Some(read_account(&inner, method, credentials));
    }
    let target = if rest == "/Keys.json" {
        None
    } else {
        let sid = rest.strip_prefix("/Keys/")?.strip_suffix(".json")?;
        Some(sid.to_owned())
    };
    let allowed: &[Method] = match target {
        None => &[Method::GET, Method::POST],
        Some(_) => &[Method::DELETE],
    };
    if !allowed.contains(method) {
        return Some(Refusal::new(405, 20004, "Method not allowed").into_response());
    }
    let is_main = credentials.as_ref().is_some_and(|(user, password)| {
        *user == inner.account_sid && inner.auth.iter().any(|(u, p)| u == user && p == password)
    });
    if !is_main {
        return Some(Refusal::new(401, 20003, "Authenticate").into_response());
    }
    Some(match (target, method.as_str()) {
        (None, "POST") => create(&mut inner, form),
        (None, _) => list(&inner),
        (Some(sid), _) => delete(&mut inner, &sid),
    })
}

fn read_account(inner: &Inner, method: &Method, credentials: Option<(String, String)>) -> Response {
    if method != Method::GET {
        return Refusal::new(405, 20004, "Method not allowed").into_response();
    }
    if !credentials.is_some_and(|(user, password)| {
        inner.auth.iter().any(|(u, p)| *u == user && *p == password)
    }) {
        return Refusal::new(401, 20003, "Authenticate").into_response();
    }
    let body = json!({
        "sid": inner.account_sid,
        "friendly_name": "genesys-relay local account",
        "status": "active",
        "type": "Full",
        "owner_account_sid": inner.account_sid,
        "date_created": rfc2822_now(),
        "date_updated": rfc2822_now(),
        "uri": format!("/{API_VERSION}/Accounts/{}.json", inner.account_sid),
    });
    (StatusCode::OK, axum::Json(body)).into_response()
}

fn create(inner: &mut Inner, form: &[(String, String)]) -> Response {
    let name = form
        .iter()
        .find(|(k, _)| k == "FriendlyName")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    if name.chars().count() > MAX_NAME {
        return Refusal::new(
            400,
            INVALID_PARAMETER,
            "FriendlyName must be at most 64 characters",
        )
        .into_response();
    }
    let digest = Sha256::digest(format!(
        "{}/{}/{}/{:?}",
        inner.account_sid,
        inner.port,
        inner.keys.len(),
        std::time::SystemTime::now()
    ));
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    let key = ApiKey {
        sid: format!("SK{}", &hex[..32]),
        friendly_name: name,
        secret: hex[32..].to_owned(),
        date_created: rfc2822_now(),
    };
    inner.auth.push((key.sid.clone(), key.secret.clone()));
    inner.keys.push(key.clone());
    let mut body = resource(&key);
    body["secret"] = Value::String(key.secret);
    (StatusCode::CREATED, axum::Json(body)).into_response()
}

fn resource(key: &ApiKey) -> Value {
    json!({
        "sid": key.sid,
        "friendly_name": key.friendly_name,
        "date_created": key.date_created,
        "date_updated": key.date_created,
    })
}

fn list(inner: &Inner) -> Response {
    let uri = format!("/{API_VERSION}/Accounts/{}/Keys.json", inner.account_sid);
    let keys: Vec<Value> = inner.keys.iter().map(resource).collect();
    let body = json!({
        "keys": keys,
        "first_page_uri": format!("{uri}?PageSize=50&Page=0"),
        "next_page_uri": null,
        "previous_page_uri": null,
        "page": 0,
        "page_size": 50,
        "start": 0,
        "end": inner.keys.len().saturating_sub(1),
        "uri": format!("{uri}?PageSize=50&Page=0"),
    });
    (StatusCode::OK, axum::Json(body)).into_response()
}

fn delete(inner: &mut Inner, sid: &str) -> Response {
    let Some(index) = inner.keys.iter().position(|k| k.sid == sid) else {
        return Refusal::new(
            404,
            20404,
            &format!(
                "The requested resource /{API_VERSION}/Accounts/{}/Keys/{sid}.json was not found",
                inner.account_sid
            ),
        )
        .into_response();
    };
    let key = inner.keys.remove(index);
    inner.auth.retain(|(user, _)| *user != key.sid);
    StatusCode::NO_CONTENT.into_response()
}

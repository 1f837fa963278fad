//! The integrations themselves, as Genesys' platform-client SDKs describe them (IntegrationsApi:
//! getIntegrations, postIntegrations, getIntegration, patchIntegration):
//! - `GET /api/v2/integrations?pageSize&pageNumber&integrationType` answers an
//!   `IntegrationEntityListing`; other parameters of the operation are ignored.
//! - `POST /api/v2/integrations` takes a `CreateIntegrationRequest` (`integrationType.id`
//!   required, `name` optional) and answers the new `Integration`, `DISABLED` with config
//!   version 1.
//! - `GET /api/v2/integrations/{id}` answers the `Integration`; `PATCH` takes the `Integration`
//!   model, of which only `intendedState` (`ENABLED`, `DISABLED` or `DELETED`) is required and
//!   used.
//!
//! Each needs a valid bearer token (else 401) and, with a body, `Content-Type: application/json`
//! and only the model's fields (else 400).

use std::sync::MutexGuard;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::{json, Value};

use super::integration_config::IntegrationConfig;
use super::requests::{admit, json_body, present};
use super::responses::{api_error, bad_request, entity_listing, json_answer, Answer, Refusal};
use super::{Inner, Shared};

/// The integration type of the Amazon EventBridge integration, the one the relay's setup creates
/// and whose properties the fake checks.
pub const EVENTBRIDGE_TYPE: &str = "amazon-eventbridge-source";

/// One integration the fake holds, for a test to check what a setup left behind.
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

/// The query of getIntegrations the fake acts on. The operation takes more (`sortBy`, `expand`,
/// `nextPage`, `previousPage`, `ids`, `reportedState`); those are accepted and ignored, so no
/// `deny_unknown_fields`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct IntegrationsQuery {
    page_size: Option<u64>,
    page_number: Option<u64>,
    integration_type: Option<String>,
}

/// The body of postIntegrations: Genesys' `CreateIntegrationRequest` (`id`, `name`,
/// `integrationType`, `selfUri`). `id` and `selfUri` are the server's to set and pass unread.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CreateIntegrationRequest {
    integration_type: IntegrationTypeRef,
    #[serde(default, deserialize_with = "present")]
    name: Option<String>,
    #[serde(rename = "id")]
    _id: Option<IgnoredAny>,
    #[serde(rename = "selfUri")]
    _self_uri: Option<IgnoredAny>,
}

/// The `IntegrationType` a create request names. Only its `id` is read; the model's other fields
/// (name, description, provider...) a client may send back pass unread, and flattening them makes
/// serde take this from a JSON object only.
#[derive(Deserialize)]
struct IntegrationTypeRef {
    id: String,
    #[serde(flatten)]
    _rest: IgnoredAny,
}

/// The body of patchIntegration: Genesys' `Integration` model. Only `intendedState` changes
/// anything; the other fields are the model's and pass unread.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct IntegrationUpdate {
    intended_state: IntendedState,
    #[serde(rename = "id")]
    _id: Option<IgnoredAny>,
    #[serde(rename = "name")]
    _name: Option<IgnoredAny>,
    #[serde(rename = "integrationType")]
    _integration_type: Option<IgnoredAny>,
    #[serde(rename = "notes")]
    _notes: Option<IgnoredAny>,
    #[serde(rename = "config")]
    _config: Option<IgnoredAny>,
    #[serde(rename = "reportedState")]
    _reported_state: Option<IgnoredAny>,
    #[serde(rename = "attributes")]
    _attributes: Option<IgnoredAny>,
    #[serde(rename = "selfUri")]
    _self_uri: Option<IgnoredAny>,
}

/// The states an integration can be set to.
#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "UPPERCASE")]
enum IntendedState {
    Enabled,
    Disabled,
    Deleted,
}

impl IntendedState {
    fn as_str(self) -> &'static str {
        match self {
            Self::Enabled => "ENABLED",
            Self::Disabled => "DISABLED",
            Self::Deleted => "DELETED",
        }
    }
}

/// `GET /api/v2/integrations`.
pub(super) async fn list(
    State(shared): State<Shared>,
    request: Parts,
    query: Result<Query<IntegrationsQuery>, QueryRejection>,
    body: Bytes,
) -> Answer {
    let mut inner = admit(&shared, &request, &body)?;
    let Query(query) = query.map_err(|e| bad_request(&mut inner, &e.body_text()))?;
    let positive = |name: &str, value: Option<u64>, default: u64| match value {
        None => Ok(default),
        Some(n) if n >= 1 => Ok(n),
        Some(_) => Err(format!("`{name}` must be a positive integer")),
    };
    let paging = (
        positive("pageSize", query.page_size, 25),
        positive("pageNumber", query.page_number, 1),
    );
    let (page_size, page_number) = match paging {
        (Ok(size), Ok(number)) => (size, number),
        (Err(why), _) | (_, Err(why)) => return Err(bad_request(&mut inner, &why)),
    };
    let type_filter = query.integration_type;
    let entities: Vec<Value> = inner
        .integrations
        .iter()
        .filter(|i| i.intended_state != "DELETED")
        .filter(|i| {
            type_filter
                .as_deref()
                .is_none_or(|t| t == i.integration_type)
        })
        .map(integration_json)
        .collect();
    let mut path = "/api/v2/integrations?".to_owned();
    if let Some(t) = &type_filter {
        path.push_str(&format!("integrationType={t}&"));
    }
    let body = entity_listing(&path, entities, page_size, page_number);
    json_answer(&mut inner, body)
}

/// `POST /api/v2/integrations`.
pub(super) async fn create(State(shared): State<Shared>, request: Parts, body: Bytes) -> Answer {
    let mut inner = admit(&shared, &request, &body)?;
    let create: CreateIntegrationRequest = json_body(&mut inner, &request.headers, &body)?;
    let type_id = create.integration_type.id;
    if type_id.is_empty() {
        return Err(bad_request(&mut inner, "`integrationType.id` is required"));
    }
    let name = match create.name {
        None if type_id == EVENTBRIDGE_TYPE => "Amazon EventBridge Source".to_owned(),
        None => type_id.clone(),
        Some(name) if !name.trim().is_empty() => name,
        Some(_) => return Err(bad_request(&mut inner, "`name` must be a non-empty string")),
    };
    let integration = new_integration(&mut inner, &type_id, &name);
    json_answer(&mut inner, integration_json(&integration))
}

/// `GET /api/v2/integrations/{integrationId}`.
pub(super) async fn get_one(State(shared): State<Shared>, on: OnIntegration) -> Answer {
    let (mut inner, index) = admit_live(&shared, &on)?;
    let body = integration_json(&inner.integrations[index]);
    json_answer(&mut inner, body)
}

/// `PATCH /api/v2/integrations/{integrationId}`.
pub(super) async fn update(State(shared): State<Shared>, on: OnIntegration) -> Answer {
    let (mut inner, index) = admit_live(&shared, &on)?;
    let (_, request, body) = &on;
    let update: IntegrationUpdate = json_body(&mut inner, &request.headers, body)?;
    inner.integrations[index].intended_state = update.intended_state.as_str().to_owned();
    let body = integration_json(&inner.integrations[index]);
    json_answer(&mut inner, body)
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

/// Adds a disabled integration with an empty configuration at version 1.
pub(super) fn new_integration(
    inner: &mut Inner,
    integration_type: &str,
    name: &str,
) -> Integration {
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

/// A request on one integration (`/api/v2/integrations/{integrationId}...`): the id from the
/// path, the request and its body.
pub(super) type OnIntegration = (Path<String>, Parts, Bytes);

/// The state and the index of the live (not deleted) integration a request names, once the
/// request is admitted; or the 401, or Genesys' 404.
pub(super) fn admit_live<'a>(
    shared: &'a Shared,
    (Path(id), request, body): &OnIntegration,
) -> Result<(MutexGuard<'a, Inner>, usize), Refusal> {
    let mut inner = admit(shared, request, body)?;
    let found = inner
        .integrations
        .iter()
        .position(|i| i.id == *id && i.intended_state != "DELETED");
    match found {
        Some(index) => Ok((inner, index)),
        None => {
            let message = format!("Integration {id} not found.");
            Err(api_error(&mut inner, StatusCode::NOT_FOUND, "not.found", &message).into())
        }
    }
}

//! An integration's current configuration (IntegrationsApi: getIntegrationConfigCurrent,
//! putIntegrationConfigCurrent):
//! - `GET /api/v2/integrations/{id}/config/current` answers the `IntegrationConfiguration`
//!   (`name`, `version`, `properties`, `advanced`, `notes`, `credentials`).
//! - `PUT` replaces it only when its `version` is the current one (else 409, as Genesys answers a
//!   stale version) and increments the version. For `amazon-eventbridge-source` the properties
//!   must hold `awsAccountId` (12 digits), `awsAccountRegion`, `eventSourceSuffix` and
//!   `eventFilter` (a non-empty list of topic patterns).
//!
//! Both need a valid bearer token (else 401); the PUT needs `Content-Type: application/json` and
//! only the model's fields (else 400).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::integrations::{admit_live, Integration, OnIntegration, EVENTBRIDGE_TYPE};
use super::requests::{json_body, present};
use super::responses::{api_error, bad_request, json_answer, Answer, Refusal};
use super::{Inner, Shared};

/// The current configuration of an integration, for a test to check what a setup saved.
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

/// The body of putIntegrationConfigCurrent: Genesys' `IntegrationConfiguration` model. `version`
/// is required; a missing `name` keeps the current one, other missing fields are emptied. `id`
/// and `selfUri` are the server's to set and pass unread.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct IntegrationConfiguration {
    version: u64,
    #[serde(default, deserialize_with = "present")]
    name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    properties: Option<Map<String, Value>>,
    #[serde(default, deserialize_with = "present")]
    advanced: Option<Map<String, Value>>,
    #[serde(default, deserialize_with = "present")]
    notes: Option<String>,
    #[serde(default, deserialize_with = "present")]
    credentials: Option<BTreeMap<String, CredentialInfo>>,
    #[serde(rename = "id")]
    _id: Option<IgnoredAny>,
    #[serde(rename = "selfUri")]
    _self_uri: Option<IgnoredAny>,
}

/// A credential reference of a configuration, Genesys' `CredentialInfo`: it needs the `id` of a
/// stored credential. The model's other fields (`name`, `type`, dates...) are kept as sent.
#[derive(Deserialize)]
struct CredentialInfo {
    id: String,
    #[serde(flatten)]
    rest: Map<String, Value>,
}

/// The properties of the Amazon EventBridge integration, as Genesys' own Terraform module for it
/// sets them. Other properties are kept as sent: only these decide where events go.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventBridgeProperties {
    aws_account_id: String,
    aws_account_region: String,
    event_source_suffix: String,
    event_filter: Vec<String>,
}

/// `GET /api/v2/integrations/{integrationId}/config/current`.
pub(super) async fn current(State(shared): State<Shared>, on: OnIntegration) -> Answer {
    let (mut inner, index) = admit_live(&shared, &on)?;
    let body = config_json(&inner.integrations[index]);
    json_answer(&mut inner, body)
}

/// `PUT /api/v2/integrations/{integrationId}/config/current`.
pub(super) async fn replace(State(shared): State<Shared>, on: OnIntegration) -> Answer {
    let (mut inner, index) = admit_live(&shared, &on)?;
    let (_, request, body) = &on;
    let update = json_body(&mut inner, &request.headers, body)?;
    check_version(&mut inner, index, &update)?;
    let config = config_update(&inner.integrations[index], update)
        .map_err(|why| bad_request(&mut inner, &why))?;
    inner.integrations[index].config = config;
    let body = config_json(&inner.integrations[index]);
    json_answer(&mut inner, body)
}

/// Refuses a PUT that does not name the current version with Genesys' 409; a race scripted with
/// `race_config_updates` moves the version on first, as a concurrent save would.
fn check_version(
    inner: &mut Inner,
    index: usize,
    update: &IntegrationConfiguration,
) -> Result<(), Refusal> {
    let version = update.version;
    let mut current = inner.integrations[index].config.version;
    if inner.config_races > 0 && version == current {
        inner.config_races -= 1;
        current += 1;
        inner.integrations[index].config.version = current;
    }
    if version == current {
        return Ok(());
    }
    let message =
        format!("The version supplied ({version}) does not match the current version ({current}).");
    Err(api_error(inner, StatusCode::CONFLICT, "conflict", &message).into())
}

/// The configuration a PUT of `update` leaves, or why its values are not acceptable.
fn config_update(
    integration: &Integration,
    update: IntegrationConfiguration,
) -> Result<IntegrationConfig, String> {
    let name = match update.name {
        None => integration.config.name.clone(),
        Some(name) if !name.trim().is_empty() => name,
        Some(_) => return Err("`name` must be a non-empty string".into()),
    };
    let properties = update.properties.unwrap_or_default();
    if integration.integration_type == EVENTBRIDGE_TYPE {
        check_eventbridge_properties(&properties)?;
    }
    let credentials: Map<String, Value> = update
        .credentials
        .unwrap_or_default()
        .into_iter()
        .map(|(name, credential)| {
            let mut fields = credential.rest;
            fields.insert("id".to_owned(), Value::String(credential.id));
            (name, Value::Object(fields))
        })
        .collect();
    Ok(IntegrationConfig {
        name,
        version: integration.config.version + 1,
        properties: Value::Object(properties),
        advanced: Value::Object(update.advanced.unwrap_or_default()),
        notes: update.notes.unwrap_or_default(),
        credentials: Value::Object(credentials),
    })
}

/// Checks the properties the Amazon EventBridge integration needs.
fn check_eventbridge_properties(properties: &Map<String, Value>) -> Result<(), String> {
    let properties = EventBridgeProperties::deserialize(Value::Object(properties.clone()))
        .map_err(|e| format!("properties: {e}"))?;
    let text = |name: &str, value: &str| {
        if value.trim().is_empty() {
            Err(format!("property `{name}` must be a non-empty string"))
        } else {
            Ok(())
        }
    };
    text("awsAccountId", &properties.aws_account_id)?;
    let account = &properties.aws_account_id;
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return Err("property `awsAccountId` must be 12 digits".into());
    }
    text("awsAccountRegion", &properties.aws_account_region)?;
    text("eventSourceSuffix", &properties.event_source_suffix)?;
    let topics = &properties.event_filter;
    if topics.is_empty() || topics.iter().any(|t| t.trim().is_empty()) {
        return Err("property `eventFilter` must be a non-empty list of topic patterns".into());
    }
    Ok(())
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

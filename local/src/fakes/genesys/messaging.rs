//! `PATCH /api/v2/conversations/messaging/integrations/open/{integrationId}`
//! (ConversationsApi.patchConversationsMessagingIntegrationsOpenIntegrationId), where a rotation
//! of an Open Messaging webhook secret gives Genesys the new token. The body is an
//! `OpenIntegrationUpdateRequest` (fields as in the Platform API SDKs' model of that name); any
//! other field is a 400. It needs a valid bearer token; an integration the fake does not hold
//! gets 404. It answers the `OpenIntegration`, and from then on Genesys signs its outbound
//! webhooks with the new token.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::json;

use super::requests::{admit, json_body, present};
use super::responses::{api_error, json_answer, Answer};
use super::Shared;

/// The Platform API's `OpenIntegrationUpdateRequest`; the fields the fake does not keep are
/// taken as they come.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct OpenIntegrationUpdateRequest {
    #[serde(default, deserialize_with = "present")]
    name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    outbound_notification_webhook_url: Option<String>,
    #[serde(default, deserialize_with = "present")]
    outbound_notification_webhook_signature_secret_token: Option<String>,
    #[serde(default, deserialize_with = "present")]
    webhook_headers: Option<BTreeMap<String, String>>,
    #[serde(rename = "id")]
    _id: Option<IgnoredAny>,
    #[serde(rename = "supportedContent")]
    _supported_content: Option<IgnoredAny>,
    #[serde(rename = "messagingSetting")]
    _messaging_setting: Option<IgnoredAny>,
    #[serde(rename = "selfUri")]
    _self_uri: Option<IgnoredAny>,
}

/// `PATCH /api/v2/conversations/messaging/integrations/open/{integrationId}`.
pub(super) async fn update_open(
    State(shared): State<Shared>,
    Path(integration_id): Path<String>,
    request: Parts,
    body: Bytes,
) -> Answer {
    let mut inner = admit(&shared, &request, &body)?;
    let update: OpenIntegrationUpdateRequest = json_body(&mut inner, &request.headers, &body)?;
    let Some(token) = inner.open_integrations.get_mut(&integration_id) else {
        let message = format!("Open messaging integration {integration_id} not found.");
        return Err(api_error(&mut inner, StatusCode::NOT_FOUND, "not.found", &message).into());
    };
    if let Some(new) = update.outbound_notification_webhook_signature_secret_token {
        *token = new;
    }
    let token = token.clone();
    let body = json!({
        "id": integration_id,
        "name": update.name.unwrap_or_else(|| "Open Messaging".into()),
        "outboundNotificationWebhookUrl": update.outbound_notification_webhook_url.unwrap_or_default(),
        "outboundNotificationWebhookSignatureSecretToken": token,
        "webhookHeaders": update.webhook_headers.unwrap_or_default(),
        "status": "Active",
        "selfUri": format!("/api/v2/conversations/messaging/integrations/open/{integration_id}"),
    });
    json_answer(&mut inner, body)
}

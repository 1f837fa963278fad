//! `GET /api/v2/organizations/me` (OrganizationApi.getOrganizationsMe): the organization whose id
//! names the EventBridge partner event source.

use axum::extract::State;
use axum::http::request::Parts;
use serde_json::json;

use super::requests::admit;
use super::responses::{json_answer, Answer};
use super::Shared;

/// The organization id the fake answers on `GET /api/v2/organizations/me`, so a test can predict
/// the partner event source name a setup derives from it.
pub const ORG_ID: &str = "5c8d1f0e-7a2b-4e6c-9d3f-1b0a2c4e6f80";

/// `GET /api/v2/organizations/me`.
pub(super) async fn me(State(shared): State<Shared>, request: Parts) -> Answer {
    let mut inner = admit(&shared, &request, &[])?;
    let body = json!({
        "id": ORG_ID,
        "name": "Fake Genesys organization",
        "thirdPartyOrgName": "fake-org",
        "domain": "fake-org",
        "state": "active",
        "selfUri": format!("/api/v2/organizations/{ORG_ID}"),
    });
    json_answer(&mut inner, body)
}

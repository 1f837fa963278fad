//! `GET /api/v2/outbound/contactlists/{contactListId}/contacts/{contactId}`
//! (OutboundApi.getOutboundContactlistContact), where the relay reads the columns of the contact
//! an outbound call was for. It answers the `DialerContact` (`id`, `contactListId`, `data` = the
//! columns, `callable`...), or 404. It needs a valid bearer token and takes no query parameters
//! (else 400).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::requests::admit;
use super::responses::{api_error, bad_request, json_answer, Answer};
use super::Shared;

/// The columns a seeded contact holds.
pub(super) type Columns = Map<String, Value>;

/// The query of getOutboundContactlistContact, which has no parameters: any is refused.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NoParameters {}

/// `GET /api/v2/outbound/contactlists/{contactListId}/contacts/{contactId}`.
pub(super) async fn contact(
    State(shared): State<Shared>,
    Path((list_id, contact_id)): Path<(String, String)>,
    request: Parts,
    query: Result<Query<NoParameters>, QueryRejection>,
) -> Answer {
    let mut inner = admit(&shared, &request, &[])?;
    if query.is_err() {
        let why = "this operation takes no query parameters";
        return Err(bad_request(&mut inner, why));
    }
    let key = (list_id, contact_id);
    let Some(data) = inner.contacts.get(&key).cloned() else {
        let (list_id, contact_id) = key;
        let message = format!("Contact {contact_id} not found in contact list {list_id}.");
        return Err(api_error(&mut inner, StatusCode::NOT_FOUND, "not.found", &message).into());
    };
    let (list_id, contact_id) = key;
    let body = json!({
        "id": contact_id,
        "name": "",
        "contactListId": list_id,
        "data": data,
        "callable": true,
        "phoneNumberStatus": {},
        "contactableStatus": {},
        "selfUri": format!("/api/v2/outbound/contactlists/{list_id}/contacts/{contact_id}"),
    });
    json_answer(&mut inner, body)
}

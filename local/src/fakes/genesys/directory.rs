//! The fake's read-only directories the relay looks things up in, shaped as Genesys' SDKs
//! describe them (RoutingApi.getRoutingWrapupcodes, OutboundApi.getOutboundContactlistContact):
//! - `GET /api/v2/routing/wrapupcodes?pageSize&pageNumber&sortBy&sortOrder&name&id&divisionId`
//!   answers a `WrapupCodeEntityListing`. Like Genesys, `name` filters by a case-insensitive
//!   partial match, so a client must compare names itself; `id` may repeat.
//! - `GET /api/v2/outbound/contactlists/{contactListId}/contacts/{contactId}` answers the
//!   `DialerContact` (`id`, `contactListId`, `data` = the columns, `callable`...), or 404.
//!
//! Both need a valid bearer token and refuse unknown query parameters with 400.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use super::{
    admit, api_error, bad_request, entity_listing, lock, method_not_allowed, query_pairs,
    with_api_headers, Shared,
};

/// The query parameters Genesys' wrap-up code listing takes.
const WRAPUP_QUERY: &[&str] = &[
    "pageSize",
    "pageNumber",
    "sortBy",
    "sortOrder",
    "name",
    "id",
    "divisionId",
];

/// One wrap-up code the fake holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrapupCode {
    /// Its id (a UUID for an organization's code).
    pub id: String,
    /// Its name.
    pub name: String,
}

pub(super) async fn wrapup_codes(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let mut inner = lock(&shared);
    inner.requests += 1;
    if method != Method::GET {
        return method_not_allowed(&mut inner);
    }
    if let Err(refused) = admit(&mut inner, &method, &uri, &headers, &[]) {
        return *refused;
    }
    let params = query_pairs(uri.query().unwrap_or_default());
    if let Some((unknown, _)) = params
        .iter()
        .find(|(n, _)| !WRAPUP_QUERY.contains(&n.as_str()))
    {
        let why = format!("unknown query parameter `{unknown}`");
        return bad_request(&mut inner, &why);
    }
    let param = |name: &str| {
        params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let number = |name: &str, default: u64, max: u64| match param(name) {
        None => Ok(default),
        Some(v) => v
            .parse::<u64>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| format!("`{name}` must be an integer from 1 to {max}")),
    };
    let (page_size, page_number) = match (
        number("pageSize", 25, 500),
        number("pageNumber", 1, u64::MAX),
    ) {
        (Ok(size), Ok(page)) => (size, page),
        (Err(why), _) | (_, Err(why)) => return bad_request(&mut inner, &why),
    };
    let name = param("name").map(str::to_lowercase);
    let ids: Vec<&str> = params
        .iter()
        .filter(|(n, _)| n == "id")
        .map(|(_, v)| v.as_str())
        .collect();
    let matching: Vec<&WrapupCode> = inner
        .wrapup_codes
        .iter()
        .filter(|c| {
            name.as_deref()
                .is_none_or(|n| c.name.to_lowercase().contains(n))
        })
        .filter(|c| ids.is_empty() || ids.contains(&c.id.as_str()))
        .collect();
    let entities: Vec<Value> = matching
        .into_iter()
        .map(|c| {
            json!({
                "id": c.id,
                "name": c.name,
                "division": {"id": "d0e1f2a3-b4c5-4d6e-8f7a-9b0c1d2e3f4a", "name": "Home", "selfUri": "/api/v2/authorization/divisions/d0e1f2a3-b4c5-4d6e-8f7a-9b0c1d2e3f4a"},
                "dateCreated": "2026-01-05T10:00:00.000Z",
                "createdBy": "admin",
                "selfUri": format!("/api/v2/routing/wrapupcodes/{}", c.id),
            })
        })
        .collect();
    let body = entity_listing(
        "/api/v2/routing/wrapupcodes?",
        entities,
        page_size,
        page_number,
    );
    with_api_headers(&mut inner, axum::Json(body).into_response())
}

pub(super) async fn contact(
    State(shared): State<Shared>,
    Path((list_id, contact_id)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let mut inner = lock(&shared);
    inner.requests += 1;
    if method != Method::GET {
        return method_not_allowed(&mut inner);
    }
    if let Err(refused) = admit(&mut inner, &method, &uri, &headers, &[]) {
        return *refused;
    }
    if uri.query().is_some_and(|q| !q.is_empty()) {
        return bad_request(&mut inner, "this operation takes no query parameters");
    }
    let Some(data) = inner
        .contacts
        .get(&(list_id.clone(), contact_id.clone()))
        .cloned()
    else {
        let message = format!("Contact {contact_id} not found in contact list {list_id}.");
        return api_error(&mut inner, StatusCode::NOT_FOUND, "not.found", &message);
    };
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
    with_api_headers(&mut inner, axum::Json(body).into_response())
}

/// The columns a seeded contact holds.
pub(super) type Columns = Map<String, Value>;

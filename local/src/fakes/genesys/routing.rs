//! `GET /api/v2/routing/wrapupcodes?pageSize&pageNumber&sortBy&sortOrder&name&id&divisionId`
//! (RoutingApi.getRoutingWrapupcodes), where the relay looks up the codes its rules name. It
//! answers a `WrapupCodeEntityListing`. Like Genesys, `name` filters by a case-insensitive partial
//! match, so a client must compare names itself; `id` and `divisionId` may repeat. It needs a valid
//! bearer token and refuses unknown query parameters with 400.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::request::Parts;
use serde::Deserialize;
use serde_json::{json, Value};

use super::requests::admit;
use super::responses::{bad_request, entity_listing, json_answer, Answer};
use super::Shared;

/// One wrap-up code the fake holds, as an administrator would have set it up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrapupCode {
    /// Its id (a UUID for an organization's code).
    pub id: String,
    /// Its name.
    pub name: String,
}

/// A query parameter of getRoutingWrapupcodes; serde refuses any other name. The query is read as
/// a list of (name, value) pairs rather than a struct because `id` and `divisionId` are lists
/// Genesys takes as repeated parameters, which a struct would refuse as duplicate fields.
#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub(super) enum WrapupCodeParameter {
    PageSize,
    PageNumber,
    SortBy,
    SortOrder,
    Name,
    Id,
    DivisionId,
}

/// The decoded query of a wrap-up code listing.
type WrapupCodeQuery = Vec<(WrapupCodeParameter, String)>;

/// `GET /api/v2/routing/wrapupcodes`.
pub(super) async fn wrapup_codes(
    State(shared): State<Shared>,
    request: Parts,
    query: Result<Query<WrapupCodeQuery>, QueryRejection>,
) -> Answer {
    let mut inner = admit(&shared, &request, &[])?;
    let Query(params) = query.map_err(|e| bad_request(&mut inner, &e.body_text()))?;
    let values = |wanted: WrapupCodeParameter| {
        params
            .iter()
            .filter(move |(name, _)| *name == wanted)
            .map(|(_, value)| value.as_str())
    };
    let number = |param, name: &str, default: u64, max: u64| match values(param).next() {
        None => Ok(default),
        Some(v) => v
            .parse::<u64>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| format!("`{name}` must be an integer from 1 to {max}")),
    };
    let paging = (
        number(WrapupCodeParameter::PageSize, "pageSize", 25, 500),
        number(WrapupCodeParameter::PageNumber, "pageNumber", 1, u64::MAX),
    );
    let (page_size, page_number) = match paging {
        (Ok(size), Ok(page)) => (size, page),
        (Err(why), _) | (_, Err(why)) => return Err(bad_request(&mut inner, &why)),
    };
    let name = values(WrapupCodeParameter::Name)
        .next()
        .map(str::to_lowercase);
    let ids: Vec<&str> = values(WrapupCodeParameter::Id).collect();
    let entities: Vec<Value> = inner
        .wrapup_codes
        .iter()
        .filter(|c| {
            name.as_deref()
                .is_none_or(|n| c.name.to_lowercase().contains(n))
        })
        .filter(|c| ids.is_empty() || ids.contains(&c.id.as_str()))
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
    json_answer(&mut inner, body)
}

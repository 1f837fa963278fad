//! Which route a request is for; an unknown path is 404 and a wrong method 405.

use genesys_relay::{Error, Rejection};
use http::Method;

/// Routes the receiver serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `POST /webhooks/genesys`
    GenesysWebhook,
    /// `POST /webhooks/twilio/status`
    TwilioStatus,
    /// `GET /health`
    Health,
}

impl Route {
    /// The path as documented, which is also the path signed URLs are built from.
    pub fn path(self) -> &'static str {
        match self {
            Self::GenesysWebhook => "/webhooks/genesys",
            Self::TwilioStatus => "/webhooks/twilio/status",
            Self::Health => "/health",
        }
    }

    fn method(self) -> Method {
        match self {
            Self::Health => Method::GET,
            Self::GenesysWebhook | Self::TwilioStatus => Method::POST,
        }
    }
}

/// The route for `method` and `path` (stage prefix already removed; a trailing slash is tolerated).
pub fn route(method: &Method, path: &str) -> Result<Route, Error> {
    let path = match path.trim_end_matches('/') {
        "" => "/",
        trimmed => trimmed,
    };
    let route = [Route::GenesysWebhook, Route::TwilioStatus, Route::Health]
        .into_iter()
        .find(|r| r.path() == path)
        .ok_or_else(|| Error::rejected(Rejection::NotFound, format!("no route for {path}")))?;
    if *method == route.method() || (route == Route::Health && *method == Method::HEAD) {
        Ok(route)
    } else {
        Err(Error::rejected(
            Rejection::MethodNotAllowed,
            format!("{path} accepts {} only", route.method()),
        ))
    }
}

/// Removes an API Gateway stage prefix (`/prod/webhooks/genesys` → `/webhooks/genesys`).
pub fn strip_stage<'a>(path: &'a str, stage: Option<&str>) -> &'a str {
    match stage.filter(|s| !s.is_empty() && *s != "$default") {
        Some(stage) => path
            .strip_prefix('/')
            .and_then(|p| p.strip_prefix(stage))
            .filter(|rest| rest.starts_with('/'))
            .unwrap_or(path),
        None => path,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_routes_resolve_and_others_are_404_or_405() {
        assert_eq!(
            route(&Method::POST, "/webhooks/genesys").unwrap(),
            Route::GenesysWebhook
        );
        assert_eq!(
            route(&Method::POST, "/webhooks/twilio/status/").unwrap(),
            Route::TwilioStatus
        );
        assert_eq!(route(&Method::GET, "/health").unwrap(), Route::Health);
        let status = |m: Method, p: &str| match route(&m, p) {
            Err(Error::Rejected { kind, .. }) => kind.status(),
            other => panic!("expected a rejection, got {other:?}"),
        };
        assert_eq!(status(Method::GET, "/webhooks/genesys"), 405);
        assert_eq!(status(Method::POST, "/health"), 405);
        assert_eq!(status(Method::POST, "/webhooks/other"), 404);
        assert_eq!(status(Method::GET, "/"), 404);
    }

    #[test]
    fn stage_prefixes_are_removed_only_when_present() {
        assert_eq!(
            strip_stage("/prod/webhooks/genesys", Some("prod")),
            "/webhooks/genesys"
        );
        assert_eq!(
            strip_stage("/webhooks/genesys", Some("prod")),
            "/webhooks/genesys"
        );
        assert_eq!(strip_stage("/production/x", Some("prod")), "/production/x");
        assert_eq!(
            strip_stage("/webhooks/genesys", Some("$default")),
            "/webhooks/genesys"
        );
    }
}

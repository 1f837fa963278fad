//! The receiver: authenticates Genesys webhooks and Twilio status callbacks, stores them on SQS
//! and answers fast. It does no business work; the processor does.

pub mod response;
pub mod routing;
pub mod webhook;

use aws_config::SdkConfig;
use genesys_relay::config::ReceiverConfig;
use genesys_relay::inbound::auth::Keys;
use genesys_relay::inbound::queue::QueueSender;
use genesys_relay::outbound::twilio::TwilioSecret;
use genesys_relay::secrets::CachedSecret;
use genesys_relay::telemetry::{self, Function, Label};
use genesys_relay::Error;
use lambda_http::{Body, Request, RequestExt, Response};

use routing::Route;
use webhook::Inbound;

/// Clients and settings built once per cold start and shared by every invocation.
pub struct Deps {
    /// Validated settings.
    pub config: ReceiverConfig,
    /// The main queue (and claim-check bucket).
    pub queue: QueueSender,
    /// Keys of the Genesys route: every live version's.
    pub genesys_keys: CachedSecret<Keys>,
    /// Twilio auth token(s) and shared keys.
    pub twilio_keys: CachedSecret<Keys>,
}

impl Deps {
    /// Builds every client from one AWS configuration.
    pub fn new(config: ReceiverConfig, aws: &SdkConfig) -> Self {
        let secrets_client = aws_sdk_secretsmanager::Client::new(aws);
        Self {
            queue: QueueSender::from_aws(
                aws,
                config.queue_url.clone(),
                config.claim_check_bucket.clone(),
                config.claim_check_threshold_bytes,
            ),
            // Read overlapping: during a rotation, and for a grace period after it, a request
            // signed with the old or the new key is accepted, so the sender switches at its pace.
            genesys_keys: CachedSecret::overlapping(
                secrets_client.clone(),
                config.genesys_secret_arn.clone(),
                config.secrets,
                Keys::parse,
                Keys::merge,
            ),
            twilio_keys: CachedSecret::new(
                secrets_client,
                config.twilio_secret_arn.clone(),
                config.secrets,
                TwilioSecret::signing_keys,
            ),
            config,
        }
    }
}

/// Answers one request. Never fails: every outcome, errors included, is an HTTP response, and
/// each is logged as one line.
pub async fn handle(request: Request, deps: &Deps) -> Response<Body> {
    let stage = stage(&request);
    let path = routing::strip_stage(request.raw_http_path(), stage.as_deref()).to_owned();
    let route = match routing::route(request.method(), &path) {
        Ok(route) => route,
        Err(error) => {
            let allow = match &error {
                Error::Rejected {
                    kind: genesys_relay::Rejection::MethodNotAllowed,
                    ..
                } => Some(if path.trim_end_matches('/') == Route::Health.path() {
                    "GET, HEAD"
                } else {
                    "POST"
                }),
                _ => None,
            };
            // The path is the caller's to choose: it is logged, never made a metric dimension.
            log_outcome(&path, &error, None);
            count(UNROUTED, &error);
            return response::error(&error, allow);
        }
    };
    if route == Route::Health {
        tracing::debug!(route = route.path(), status = 200, "healthy");
        return response::healthy();
    }
    let inbound = Inbound {
        route,
        url: signed_url(&request, route, deps),
        headers: request.headers(),
        body: body_bytes(request.body()),
        request_id: request_id(&request),
    };
    match webhook::accept(inbound, deps).await {
        Ok(accepted) => {
            tracing::info!(
                route = route.path(),
                status = 202,
                event_key = %accepted.event_key,
                correlation_id = accepted.correlation_id.as_deref().unwrap_or(""),
                "accepted"
            );
            telemetry::count_outcome(Function::Receiver, route.path(), Label::Queued);
            response::accepted(accepted.event_key.as_str())
        }
        Err(error) => {
            log_outcome(route.path(), &error, request_id(&request).as_deref());
            count(route.path(), &error);
            response::error(&error, None)
        }
    }
}

/// The route dimension of requests to no route.
const UNROUTED: &str = "unrouted";

/// Counts a request that was not stored: a rejection by its code, a 503 as a retry the sender
/// makes, a 500 as a failure.
fn count(route: &str, error: &Error) {
    match error {
        Error::Rejected { kind, .. } => telemetry::count_rejection(route, kind.code()),
        Error::Retryable { .. } | Error::Deferred { .. } => {
            telemetry::count_outcome(Function::Receiver, route, Label::Retry)
        }
        Error::Permanent { .. } => {
            telemetry::count_outcome(Function::Receiver, route, Label::Failed)
        }
    }
}

fn log_outcome(path: &str, error: &Error, request_id: Option<&str>) {
    let status = response::status_of(error);
    let request_id = request_id.unwrap_or("");
    match error {
        Error::Rejected { .. } => {
            tracing::warn!(route = path, status, class = %error.class(), request_id, reason = %error, "rejected")
        }
        _ => {
            tracing::error!(route = path, status, class = %error.class(), request_id, reason = %error, "not stored")
        }
    }
}

/// The URL the sender called: the configured public base URL and the route, or the request's
/// own URL (rebuilt from its Host header), with the query string either way.
fn signed_url(request: &Request, route: Route, deps: &Deps) -> String {
    match &deps.config.public_base_url {
        Some(base) => match request.uri().query() {
            Some(query) => format!("{base}{}?{query}", route.path()),
            None => format!("{base}{}", route.path()),
        },
        None => request.uri().to_string(),
    }
}

fn body_bytes(body: &Body) -> &[u8] {
    match body {
        Body::Empty => &[],
        Body::Text(text) => text.as_bytes(),
        Body::Binary(bytes) => bytes,
        _ => &[],
    }
}

fn stage(request: &Request) -> Option<String> {
    use lambda_http::request::RequestContext;
    match request.request_context_ref()? {
        RequestContext::ApiGatewayV2(ctx) => ctx.stage.clone(),
        RequestContext::ApiGatewayV1(ctx) => ctx.stage.clone(),
        _ => None,
    }
}

fn request_id(request: &Request) -> Option<String> {
    use lambda_http::request::RequestContext;
    match request.request_context_ref()? {
        RequestContext::ApiGatewayV2(ctx) => ctx.request_id.clone(),
        RequestContext::ApiGatewayV1(ctx) => ctx.request_id.clone(),
        _ => None,
    }
}

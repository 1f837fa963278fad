//! The webhook pipeline: content type → size → authenticate → parse → event key → queue.
//!
//! The order matters: cheap refusals first, authentication before any parsing of the payload,
//! and the 202 only after the queue has the event.

use std::time::SystemTime;

use genesys_relay::actions::delivery_status::StatusCallback;
use genesys_relay::inbound::auth::{Keys, Scheme, SignedRequest};
use genesys_relay::inbound::event::{self, EventKey};
use genesys_relay::inbound::queue::{self, Envelope, MediaType, Source};
use genesys_relay::secrets::CachedSecret;
use genesys_relay::{Error, Rejection, Result};
use http::HeaderMap;
use serde_json::Value;
use time::OffsetDateTime;

use crate::routing::Route;
use crate::Deps;

/// One POST to a webhook route, as the handler saw it.
pub struct Inbound<'a> {
    /// Which webhook route.
    pub route: Route,
    /// The URL the sender called, as it signed it (Twilio signs the URL).
    pub url: String,
    /// Request headers.
    pub headers: &'a HeaderMap,
    /// The raw body.
    pub body: &'a [u8],
    /// Fallback correlation id (the API Gateway request id).
    pub request_id: Option<String>,
}

/// What was accepted, for the response and the log line.
pub struct Accepted {
    /// The event key returned to the sender.
    pub event_key: EventKey,
    /// The correlation id the message carries.
    pub correlation_id: Option<String>,
}

/// Runs the pipeline; `Ok` means the queue has the event.
pub async fn accept(inbound: Inbound<'_>, deps: &Deps) -> Result<Accepted> {
    let content_type = accepted_content_type(inbound.route, &media_type(inbound.headers)?)?;
    let limit = deps.queue.max_body(deps.config.max_body_bytes);
    if inbound.body.len() > limit {
        return Err(Error::rejected(
            Rejection::PayloadTooLarge,
            format!(
                "body is {} bytes; the maximum is {limit}",
                inbound.body.len()
            ),
        ));
    }
    let text = std::str::from_utf8(inbound.body)
        .map_err(|_| Error::rejected(Rejection::BadRequest, "body is not valid UTF-8"))?;

    let signed = SignedRequest {
        url: &inbound.url,
        headers: inbound.headers,
        body: inbound.body,
    };
    match inbound.route {
        Route::TwilioStatus => authenticate(&Scheme::Twilio, &deps.twilio_keys, &signed).await?,
        _ => authenticate(&deps.config.genesys_auth, &deps.genesys_keys, &signed).await?,
    }

    let parsed = parse(inbound.route, content_type, text, inbound.headers, deps)?;
    // Taken from the request, so bounded before it reaches an attribute or a log line.
    let correlation_id = parsed
        .correlation_id
        .or(inbound.request_id)
        .as_deref()
        .and_then(queue::bounded_id);
    let envelope = Envelope {
        group_id: parsed
            .group_id
            .unwrap_or_else(|| parsed.event_key.as_str().to_owned()),
        event_key: parsed.event_key,
        source: parsed.source,
        received_at: OffsetDateTime::now_utc(),
        content_type,
        correlation_id: correlation_id.clone(),
    };
    deps.queue.send(&envelope, text.to_owned()).await?;
    Ok(Accepted {
        event_key: envelope.event_key,
        correlation_id,
    })
}

/// Verifies with the cached keys; after a mismatch, verifies again with fresher keys (read again,
/// rate-limited, or already read again by a concurrent request) in case the secret was rotated.
async fn authenticate(
    scheme: &Scheme,
    secret: &CachedSecret<Keys>,
    request: &SignedRequest<'_>,
) -> Result<()> {
    let keys = secret.current().await?;
    let now = SystemTime::now();
    match scheme.verify(request, &keys, now) {
        Ok(()) => Ok(()),
        Err(failure) if failure.may_be_rotation() => match secret.fresher_than(&keys).await? {
            Some(fresh) => scheme.verify(request, &fresh, now).map_err(Error::from),
            None => Err(failure.into()),
        },
        Err(failure) => Err(failure.into()),
    }
}

/// The media type of the request, lower-cased and without parameters. It is stored as a message
/// attribute, so anything but an RFC 6838 `type/subtype` (names of at most 127 characters) is
/// refused here rather than carried.
fn media_type(headers: &HeaderMap) -> Result<String> {
    let media_type = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            Error::rejected(
                Rejection::UnsupportedMediaType,
                "a Content-Type header is required",
            )
        })?;
    match media_type.split_once('/') {
        Some((kind, subtype)) if is_media_name(kind) && is_media_name(subtype) => Ok(media_type),
        _ => Err(Error::rejected(
            Rejection::UnsupportedMediaType,
            "the Content-Type is not a valid media type",
        )),
    }
}

/// An RFC 6838 `restricted-name`: a letter or digit, then up to 126 of letters, digits and
/// `!#$&-^_.+`.
fn is_media_name(name: &str) -> bool {
    const MAX: usize = 127;
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
        && name.len() <= MAX
        && bytes.all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
}

/// What the route takes of the request's media type; anything else is 415.
fn accepted_content_type(route: Route, media_type: &str) -> Result<MediaType> {
    match (route, MediaType::parse(media_type)) {
        (Route::GenesysWebhook, Some(MediaType::Json)) => return Ok(MediaType::Json),
        (Route::TwilioStatus, Some(parsed)) => return Ok(parsed),
        _ => {}
    }
    let expected = match route {
        Route::TwilioStatus => "application/x-www-form-urlencoded or application/json",
        _ => "application/json",
    };
    Err(Error::rejected(
        Rejection::UnsupportedMediaType,
        format!("{media_type} is not accepted here; send {expected}"),
    ))
}

struct Parsed {
    source: Source,
    event_key: EventKey,
    correlation_id: Option<String>,
    group_id: Option<String>,
}

fn parse(
    route: Route,
    media_type: MediaType,
    text: &str,
    headers: &HeaderMap,
    deps: &Deps,
) -> Result<Parsed> {
    if route == Route::TwilioStatus && media_type == MediaType::Form {
        return parse_twilio_form(text);
    }
    let body: Value = serde_json::from_str(text).map_err(|e| {
        Error::rejected(
            Rejection::BadRequest,
            format!("body is not valid JSON: {e}"),
        )
    })?;
    let signed_id = signed_event_id(&deps.config.genesys_auth, headers);
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    match route {
        Route::TwilioStatus => Ok(Parsed {
            source: Source::TwilioStatus,
            event_key: EventKey::digest(text.as_bytes()),
            correlation_id: header("i-twilio-idempotency-token"),
            group_id: None,
        }),
        _ => Ok(Parsed {
            source: Source::GenesysWebhook,
            event_key: deps
                .config
                .event_key
                .derive(&body, signed_id, text.as_bytes()),
            correlation_id: event::correlation_id(&body)
                .map(str::to_owned)
                .or_else(|| header("inin-correlation-id"))
                .or_else(|| header("x-correlation-id")),
            group_id: event::conversation_id(&body).map(str::to_owned),
        }),
    }
}

/// The sender's own event id, when the Genesys route's signature covers it: only Standard
/// Webhooks signs `webhook-id`. Under any other scheme the header is not authenticated, and keying
/// on it would let one captured request be replayed as a new event with each fresh id.
fn signed_event_id<'h>(scheme: &Scheme, headers: &'h HeaderMap) -> Option<&'h str> {
    match scheme {
        Scheme::StandardWebhooks => headers
            .get("webhook-id")
            .and_then(|v| v.to_str().ok())
            .map(str::trim),
        Scheme::HmacHeader(_) | Scheme::Basic | Scheme::Bearer(_) | Scheme::Twilio => None,
    }
}

/// A Twilio status callback: its key is the message and the status it reports, so a retried
/// callback is recognised and a new status is not. The key joins them like any other parts
/// (escaping `:` and `%`, so it is injective); message sids (`SM`/`MM` + 32 hex digits) and
/// statuses (a fixed vocabulary) hold neither, so it reads `<MessageSid>:<MessageStatus>`.
fn parse_twilio_form(text: &str) -> Result<Parsed> {
    // The processor reads the same form with the same reader; what it would refuse is refused
    // here, as the sender's mistake.
    let callback = StatusCallback::from_form(text)
        .map_err(|e| Error::rejected(Rejection::BadRequest, e.to_string()))?;
    tracing::debug!(message_sid = %callback.message_sid, status = %callback.status, "twilio status callback");
    Ok(Parsed {
        source: Source::TwilioStatus,
        event_key: EventKey::from_parts(&[callback.message_sid.as_str(), callback.status.as_str()]),
        correlation_id: Some(callback.message_sid.clone()),
        group_id: Some(callback.message_sid),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const JSON: &str = "application/json";
    const FORM: &str = "application/x-www-form-urlencoded";

    fn headers(content_type: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(http::header::CONTENT_TYPE, content_type.parse().unwrap());
        h
    }

    #[test]
    fn content_types_are_checked_per_route() {
        let check = |route, ct: &str| {
            accepted_content_type(route, &media_type(&headers(ct)).unwrap()).is_ok()
        };
        assert!(check(
            Route::GenesysWebhook,
            "application/json; charset=utf-8"
        ));
        assert!(check(Route::GenesysWebhook, "Application/Cloudevents+JSON"));
        assert!(!check(Route::GenesysWebhook, "text/plain"));
        assert!(!check(Route::GenesysWebhook, FORM));
        assert!(check(Route::TwilioStatus, FORM));
        assert!(!check(Route::TwilioStatus, "text/xml"));
        assert!(media_type(&HeaderMap::new()).is_err());
    }

    #[test]
    fn media_types_that_could_not_be_carried_are_refused() {
        let long = format!("application/{}+json", "x".repeat(200));
        for bad in [
            long.as_str(),
            "application",
            "/json",
            "application/+json",
            "app lication/json",
        ] {
            let err = media_type(&headers(bad)).unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::Rejected {
                        kind: Rejection::UnsupportedMediaType,
                        ..
                    }
                ),
                "{bad}"
            );
        }
        let max = format!("application/{}", "x".repeat(127));
        assert_eq!(media_type(&headers(&max)).unwrap(), max);
        assert_eq!(
            media_type(&headers("application/vnd.genesys+json; v=2")).unwrap(),
            "application/vnd.genesys+json"
        );
    }

    #[test]
    fn only_a_signed_webhook_id_is_an_event_id() {
        let mut h = headers(JSON);
        h.insert("webhook-id", " msg_1 ".parse().unwrap());
        assert_eq!(
            signed_event_id(&Scheme::StandardWebhooks, &h),
            Some("msg_1")
        );
        for unsigned in [
            Scheme::HmacHeader(genesys_relay::inbound::auth::HmacHeader::genesys_open_messaging()),
            Scheme::Basic,
            Scheme::Bearer(genesys_relay::inbound::auth::Bearer::authorization()),
            Scheme::Twilio,
        ] {
            assert_eq!(signed_event_id(&unsigned, &h), None, "{}", unsigned.name());
        }
    }

    #[test]
    fn a_twilio_callback_is_keyed_by_message_and_status() {
        let parsed =
            parse_twilio_form("MessageSid=SM123&MessageStatus=delivered&To=%2B14158675309")
                .unwrap();
        assert_eq!(parsed.event_key.as_str(), "SM123:delivered");
        assert_eq!(parsed.group_id.as_deref(), Some("SM123"));
        assert!(parse_twilio_form("MessageStatus=sent").is_err());
        assert!(parse_twilio_form("MessageSid=SM1&MessageStatus=").is_err());
    }
}

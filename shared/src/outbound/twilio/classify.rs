//! What a failed send means, per Twilio's documented error codes (its error dictionary): whether a
//! retry can help, and how the failure maps onto the product's one error taxonomy.

use std::time::Duration;

use serde::Deserialize;

use crate::error::Error;
use crate::telemetry::mask_phone;

/// `To` is not a valid phone number.
const INVALID_TO: u32 = 21211;
/// The recipient replied STOP: the account may not text this number again.
const OPTED_OUT: u32 = 21610;
/// `To` is not a mobile number.
const NOT_MOBILE: u32 = 21614;
/// Too many concurrent requests: never processed, always safe to retry.
const TOO_MANY_REQUESTS: u32 = 20429;
/// The longest error message kept from Twilio's answer, in characters.
const MAX_MESSAGE_CHARS: usize = 300;

/// Why a message was not sent, in the three shapes the caller has to tell apart.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Twilio refused this message and retrying cannot help: the code comes from Twilio's error body,
    /// or is 21211 for a number failing the E.164 pre-check, 21617 for a body over 1,600 characters
    /// and 21602 for an empty one. The message has phone numbers masked.
    #[error("Twilio refused the message (code {code}): {message}")]
    Refused {
        /// Twilio's error code (`https://www.twilio.com/docs/errors/<code>`).
        code: u32,
        /// Twilio's explanation, phone numbers masked.
        message: String,
    },
    /// Twilio could not take the message now: try again later. After a 5xx or a timeout the
    /// message may nevertheless have been sent, and Twilio has no idempotency key, so a retry can
    /// text the customer twice; after a 429 (code 20429) it was never processed.
    #[error("Twilio is unavailable: {reason}")]
    Unavailable {
        /// The wait Twilio asked for in `Retry-After`, when it did.
        retry_after: Option<Duration>,
        /// What happened, for logs.
        reason: String,
    },
    /// The credentials or the configuration are wrong (a 401 even after re-reading the secret, a
    /// 403, a malformed secret, a wrong account or API base): no message will go out until a person
    /// fixes it.
    #[error("Twilio is misconfigured: {0}")]
    Misconfigured(String),
}

impl SendError {
    /// Twilio's error code, for records and for the caller's own decisions.
    pub fn code(&self) -> Option<u32> {
        match self {
            Self::Refused { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether the recipient opted out (21610): the caller records it and never texts them again.
    pub fn is_opt_out(&self) -> bool {
        self.code() == Some(OPTED_OUT)
    }

    /// Whether the number can never receive an SMS (21211 invalid, 21614 not mobile): worth
    /// reporting back to the contact center rather than dead-lettering as a fault.
    pub fn is_undeliverable_number(&self) -> bool {
        matches!(self.code(), Some(INVALID_TO | NOT_MOBILE))
    }

    /// The class this failure takes in the product's taxonomy (`retryable` or `permanent`), for
    /// logs written before the conversion.
    pub fn class(&self) -> &'static str {
        match self {
            Self::Unavailable { .. } => "retryable",
            Self::Refused { .. } | Self::Misconfigured(_) => "permanent",
        }
    }

    /// A failure of the request itself (no answer from Twilio). A timeout or a dropped
    /// connection may come after Twilio took the message; a builder error means the API base is
    /// not a usable URL.
    pub(crate) fn from_transport(error: &reqwest::Error) -> Self {
        if error.is_builder() {
            return Self::Misconfigured(format!("cannot build the request: {error}"));
        }
        let what = if error.is_connect() {
            "could not connect; the message was not sent"
        } else if error.is_timeout() {
            "timed out; the message may have been sent"
        } else {
            "failed; the message may have been sent"
        };
        Self::Unavailable {
            retry_after: None,
            reason: format!("request {what} ({})", crate::error::chain(error)),
        }
    }

    /// A failure reading the credentials secret, kept in its class: Secrets Manager being
    /// unreachable passes, a missing or malformed secret does not.
    pub(crate) fn from_credentials(error: Error) -> Self {
        match error {
            Error::Retryable {
                message,
                retry_after,
            } => Self::Unavailable {
                retry_after,
                reason: format!("Twilio credentials: {message}"),
            },
            other => Self::Misconfigured(format!("Twilio credentials: {other}")),
        }
    }
}

impl From<SendError> for Error {
    fn from(error: SendError) -> Self {
        match error {
            SendError::Unavailable {
                retry_after,
                ref reason,
            } => Error::Retryable {
                message: format!("Twilio is unavailable: {reason}"),
                retry_after,
            },
            SendError::Refused { .. } | SendError::Misconfigured(_) => {
                Error::permanent(error.to_string())
            }
        }
    }
}

/// Twilio's error body: `{"code": 21211, "message": "...", "more_info": "...", "status": 400}`.
#[derive(Deserialize)]
struct ErrorBody {
    code: Option<u32>,
    message: Option<String>,
}

/// Masks every phone-number-like run (an optional `+` and six or more digits) in a text from
/// Twilio, whose error messages quote the `To` number.
fn mask_numbers(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        let digits = run.chars().filter(char::is_ascii_digit).count();
        if digits >= 6 {
            out.push_str(&mask_phone(run));
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if c.is_ascii_digit() || (c == '+' && run.is_empty()) {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

/// What an answer other than a success means. A 401 reaching here has already been retried with
/// freshly read credentials.
pub(crate) fn classify(status: u16, headers: &reqwest::header::HeaderMap, body: &str) -> SendError {
    let parsed: Option<ErrorBody> = serde_json::from_str(body).ok();
    let code = parsed.as_ref().and_then(|b| b.code);
    let message = parsed
        .and_then(|b| b.message)
        .map(|m| mask_numbers(&m.chars().take(MAX_MESSAGE_CHARS).collect::<String>()))
        .unwrap_or_else(|| "no error message".to_owned());
    let code_text = code.map_or_else(|| "no code".to_owned(), |c| format!("code {c}"));
    if status == 429 || code == Some(TOO_MANY_REQUESTS) {
        crate::telemetry::count_throttled(crate::telemetry::Provider::Twilio);
        return SendError::Unavailable {
            retry_after: crate::outbound::http::retry_after(headers),
            reason: format!(
                "too many requests (HTTP {status}, {code_text}); the message was not processed"
            ),
        };
    }
    if status >= 500 {
        return SendError::Unavailable {
            retry_after: crate::outbound::http::retry_after(headers),
            reason: format!(
                "HTTP {status} ({code_text}: {message}); the message may have been sent"
            ),
        };
    }
    match (status, code) {
        (401, _) => SendError::Misconfigured(format!(
            "the credentials were refused (HTTP 401, {code_text}) even after re-reading the secret"
        )),
        (403, _) => SendError::Misconfigured(format!(
            "the credentials may not send messages (HTTP 403, {code_text}: {message})"
        )),
        (404, _) => SendError::Misconfigured(format!(
            "no such account or API path (HTTP 404, {code_text}); check accountSid and the API base"
        )),
        (400..=499, Some(code)) => SendError::Refused { code, message },
        _ => SendError::Misconfigured(format!(
            "unexpected answer HTTP {status} without a Twilio error body; check the API base"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};

    fn error_body(code: u32, message: &str, status: u16) -> String {
        serde_json::json!({"code": code, "message": message,
            "more_info": format!("https://www.twilio.com/docs/errors/{code}"), "status": status})
        .to_string()
    }

    fn retry_after(secs: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_str(secs).unwrap());
        headers
    }

    #[test]
    fn too_many_requests_is_retryable_with_its_delay() {
        let error = classify(
            429,
            &retry_after("7"),
            &error_body(20429, "Too Many Requests", 429),
        );
        assert!(
            matches!(error, SendError::Unavailable { retry_after: Some(d), .. } if d == Duration::from_secs(7)),
            "{error:?}"
        );
        // The code alone is enough, whatever the HTTP status.
        let error = classify(
            400,
            &HeaderMap::new(),
            &error_body(20429, "Too Many Requests", 400),
        );
        assert!(
            matches!(
                error,
                SendError::Unavailable {
                    retry_after: None,
                    ..
                }
            ),
            "{error:?}"
        );
        // And so is the status alone, even without a body.
        let error = classify(429, &HeaderMap::new(), "");
        assert!(matches!(error, SendError::Unavailable { .. }), "{error:?}");
    }

    #[test]
    fn server_errors_are_retryable_and_say_the_message_may_be_out() {
        for status in [500, 502, 503, 504] {
            let error = classify(status, &HeaderMap::new(), "<html>oops</html>");
            let SendError::Unavailable {
                reason,
                retry_after,
            } = &error
            else {
                panic!("{status}: {error:?}");
            };
            assert!(reason.contains("may have been sent"), "{reason}");
            assert_eq!(*retry_after, None);
        }
        let error = classify(503, &retry_after("3"), "");
        assert!(
            matches!(error, SendError::Unavailable { retry_after: Some(d), .. } if d == Duration::from_secs(3))
        );
    }

    #[test]
    fn documented_permanent_codes_are_refusals() {
        for code in [21211, 21408, 21610, 21614, 21617, 21606] {
            let error = classify(400, &HeaderMap::new(), &error_body(code, "no", 400));
            assert_eq!(error.code(), Some(code), "{error:?}");
            assert!(matches!(error, SendError::Refused { .. }));
            assert_eq!(error.class(), "permanent");
            assert_eq!(Error::from(error).class(), "permanent");
        }
    }

    #[test]
    fn opt_out_and_undeliverable_numbers_are_recognised() {
        let refused = |code| SendError::Refused {
            code,
            message: String::new(),
        };
        assert!(refused(21610).is_opt_out());
        assert!(!refused(21610).is_undeliverable_number());
        assert!(refused(21211).is_undeliverable_number());
        assert!(refused(21614).is_undeliverable_number());
        assert!(!refused(21614).is_opt_out());
        assert!(!refused(21408).is_undeliverable_number());
        let unavailable = SendError::Unavailable {
            retry_after: None,
            reason: String::new(),
        };
        assert_eq!(unavailable.code(), None);
        assert!(!unavailable.is_opt_out() && !unavailable.is_undeliverable_number());
    }

    #[test]
    fn auth_and_addressing_failures_are_misconfiguration() {
        for (status, code) in [(401, 20003), (403, 20403), (404, 20404)] {
            let error = classify(status, &HeaderMap::new(), &error_body(code, "no", status));
            assert!(
                matches!(error, SendError::Misconfigured(_)),
                "{status}: {error:?}"
            );
            assert_eq!(Error::from(error).class(), "permanent");
        }
        let error = classify(400, &HeaderMap::new(), "<html>not twilio</html>");
        assert!(matches!(error, SendError::Misconfigured(_)), "{error:?}");
    }

    #[test]
    fn unavailable_maps_to_retryable_keeping_the_delay() {
        let error = Error::from(SendError::Unavailable {
            retry_after: Some(Duration::from_secs(9)),
            reason: "busy".into(),
        });
        assert!(
            matches!(&error, Error::Retryable { retry_after: Some(d), .. } if *d == Duration::from_secs(9)),
            "{error:?}"
        );
    }

    #[test]
    fn numbers_in_twilio_messages_are_masked() {
        let body = error_body(
            21211,
            "The 'To' number +14158675309 is not a valid phone number.",
            400,
        );
        let error = classify(400, &HeaderMap::new(), &body);
        let text = error.to_string();
        assert!(!text.contains("8675309"), "{text}");
        assert!(
            text.contains("+14*******09") && text.contains("21211"),
            "{text}"
        );
        assert_eq!(
            mask_numbers("code 21610 for 447700900123."),
            "code 21610 for 44********23."
        );
        assert_eq!(mask_numbers("a+b 1+2"), "a+b 1+2");
    }

    #[test]
    fn credential_read_failures_keep_their_class() {
        let error = SendError::from_credentials(Error::retryable("throttled"));
        assert!(matches!(error, SendError::Unavailable { .. }), "{error:?}");
        let error = SendError::from_credentials(Error::permanent("field `authToken` is missing"));
        assert!(
            matches!(&error, SendError::Misconfigured(m) if m.contains("authToken")),
            "{error:?}"
        );
    }
}

//! The Messages API client: one form POST per SMS, one GET to read a message's status back,
//! credentials from Secrets Manager, and one retry after a 401 so a rotated API key takes effect
//! without an outage.

use std::fmt;
use std::sync::Arc;

use secrecy::ExposeSecret;
use serde::Deserialize;

use super::classify::{classify, SendError};
use super::credentials::{Sender, TwilioCredentials};
use super::e164::is_e164;
use super::segments::{segments, MAX_BODY_CHARS};
use crate::secrets::CachedSecret;
use crate::telemetry::mask_phone;

/// Twilio's API; overridden (`TWILIO_API_BASE`) to point tests and local stacks at a fake.
pub const DEFAULT_API_BASE: &str = "https://api.twilio.com";

/// Twilio's error code for an invalid `To`, used for numbers failing the local E.164 check.
const INVALID_TO: u32 = 21211;
/// Twilio's error code for a missing body.
const BODY_REQUIRED: u32 = 21602;
/// Twilio's error code for a body over 1,600 characters.
const BODY_TOO_LONG: u32 = 21617;

/// One SMS to send. `Debug` masks the number and leaves the body out: both are personal data.
#[derive(Clone)]
pub struct OutboundSms {
    /// The recipient, E.164.
    pub to: String,
    /// Who it is sent from.
    pub sender: Sender,
    /// The text, 1 to 1,600 characters.
    pub body: String,
    /// Where Twilio posts delivery statuses, when they are wanted.
    pub status_callback: Option<String>,
}

impl fmt::Debug for OutboundSms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutboundSms")
            .field("to", &mask_phone(&self.to))
            .field("sender", &self.sender)
            .field("body_chars", &self.body.chars().count())
            .field("status_callback", &self.status_callback)
            .finish()
    }
}

/// What Twilio answered when it took a message: the SID ties later status callbacks to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMessage {
    /// The message SID (`SM…`).
    pub sid: String,
    /// The initial status (`queued`, `accepted`, `scheduled`…); no callback repeats it.
    pub status: String,
    /// The segments Twilio will bill, when it said.
    pub segments: Option<u32>,
}

/// The part of Twilio's message resource that is kept.
#[derive(Deserialize)]
struct MessageResource {
    sid: String,
    status: String,
    #[serde(default)]
    num_segments: Option<Count>,
}

/// A message's delivery status as Twilio reports it when asked (not in a callback).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageStatus {
    /// The message SID.
    pub sid: String,
    /// Its status now (`queued`, `sent`, `delivered`, `undelivered`...).
    pub status: String,
    /// The error code of a failed delivery (30003..30008), as the callback's `ErrorCode` text.
    pub error_code: Option<String>,
}

/// The part of a fetched message resource that is read.
#[derive(Deserialize)]
struct FetchedResource {
    sid: String,
    status: String,
    /// An integer or null in Twilio's JSON; a string is accepted too.
    #[serde(default)]
    error_code: Option<serde_json::Value>,
}

impl FetchedResource {
    fn into_status(self) -> MessageStatus {
        let error_code = match self.error_code {
            Some(serde_json::Value::Number(code)) => Some(code.to_string()),
            Some(serde_json::Value::String(code)) => {
                Some(code.trim().to_owned()).filter(|c| !c.is_empty())
            }
            _ => None,
        };
        MessageStatus {
            sid: self.sid,
            status: self.status,
            error_code,
        }
    }
}

/// Whether `sid` is a message SID (`SM` or `MM` and 32 hex digits), so nothing else is ever put
/// into a request path.
fn is_message_sid(sid: &str) -> bool {
    (sid.starts_with("SM") || sid.starts_with("MM"))
        && sid.len() == 34
        && sid[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// `num_segments` is a string in Twilio's JSON; a number is accepted too.
#[derive(Deserialize)]
#[serde(untagged)]
enum Count {
    Text(String),
    Number(u32),
}

impl Count {
    fn value(&self) -> Option<u32> {
        match self {
            Self::Text(text) => text.trim().parse().ok(),
            Self::Number(n) => Some(*n),
        }
    }
}

/// Sends SMS through Twilio's Messages API; build once per cold start and share.
pub struct TwilioClient {
    http: reqwest::Client,
    api_base: String,
    credentials: Arc<CachedSecret<TwilioCredentials>>,
}

impl TwilioClient {
    /// A client over the shared HTTP client (whose timeouts bound every send), calling `api_base`
    /// ([`DEFAULT_API_BASE`] in production) with the credentials in `credentials`.
    pub fn new(
        http: reqwest::Client,
        api_base: impl Into<String>,
        credentials: Arc<CachedSecret<TwilioCredentials>>,
    ) -> Self {
        let api_base = api_base.into().trim_end_matches('/').to_owned();
        Self {
            http,
            api_base,
            credentials,
        }
    }

    /// Sends one SMS. A number that is not E.164 or a body that is empty or over 1,600 characters
    /// is refused before any request (as Twilio would refuse it). A 401 makes the secret be read
    /// again and, if it changed, the request be made once more, so a rotated key takes effect at
    /// once; a second 401 is [`SendError::Misconfigured`].
    ///
    /// There is no idempotency key for message creation: after a timeout or a 5xx the message may
    /// have been sent, yet the answer is [`SendError::Unavailable`], so a caller that retries it
    /// may text the customer twice. That window is accepted and documented, not hidden.
    pub async fn send(&self, sms: &OutboundSms) -> Result<SentMessage, SendError> {
        let to = mask_phone(&sms.to);
        let result = self.send_checked(sms, &to).await;
        match &result {
            Ok(sent) => tracing::info!(
                to = %to,
                message_sid = %sent.sid,
                status = %sent.status,
                segments = ?sent.segments,
                "Twilio accepted the SMS"
            ),
            Err(error) => tracing::warn!(
                to = %to,
                code = ?error.code(),
                class = %error.class(),
                reason = %error,
                "SMS not sent"
            ),
        }
        result
    }

    async fn send_checked(&self, sms: &OutboundSms, to: &str) -> Result<SentMessage, SendError> {
        precheck(sms)?;
        let (encoding, count) = segments(&sms.body);
        tracing::info!(to = %to, encoding = %encoding, segments = count, "sending SMS through Twilio");

        let credentials = self.credentials().await?;
        let mut response = self.post(&credentials, sms).await?;
        if response.status() == reqwest::StatusCode::UNAUTHORIZED {
            tracing::warn!(
                to = %to,
                user = %credentials.basic_auth().0,
                "Twilio refused the credentials; reading the secret again"
            );
            self.credentials.invalidate().await;
            let fresh = self.credentials().await?;
            if fresh.same_auth(&credentials) {
                return Err(SendError::Misconfigured(
                    "the credentials were refused (HTTP 401) and the secret holds no others".into(),
                ));
            }
            response = self.post(&fresh, sms).await?;
        }
        read_answer(response).await
    }

    /// Reads a message's status back (`GET /2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json`),
    /// for when its status callbacks were lost: Twilio does not retry a callback answered with an
    /// error. A 401 is handled as in [`TwilioClient::send`]; 429, 5xx and transport failures are
    /// `Retryable`, anything else (no such message, refused credentials) `Permanent`.
    pub async fn fetch_status(&self, sid: &str) -> crate::Result<MessageStatus> {
        if !is_message_sid(sid) {
            return Err(crate::Error::permanent(format!(
                "{sid:?} is not a Twilio message SID"
            )));
        }
        let credentials = self.credentials().await?;
        let mut response = self.get_message(&credentials, sid).await?;
        if response.status() == reqwest::StatusCode::UNAUTHORIZED {
            tracing::warn!(
                user = %credentials.basic_auth().0,
                "Twilio refused the credentials; reading the secret again"
            );
            self.credentials.invalidate().await;
            let fresh = self.credentials().await?;
            if !fresh.same_auth(&credentials) {
                response = self.get_message(&fresh, sid).await?;
            }
        }
        let status = response.status();
        if status.is_success() {
            let body = response.bytes().await.map_err(|e| {
                crate::Error::retryable(format!("Twilio's answer for {sid} could not be read: {e}"))
            })?;
            let resource: FetchedResource = serde_json::from_slice(&body).map_err(|_| {
                crate::Error::permanent(format!(
                    "Twilio's answer for {sid} is not a message resource"
                ))
            })?;
            return Ok(resource.into_status());
        }
        let headers = response.headers().clone();
        let body = response.text().await.unwrap_or_default();
        Err(
            match (status.as_u16(), classify(status.as_u16(), &headers, &body)) {
                (404, _) => crate::Error::permanent(format!(
                    "Twilio has no message {sid} in this account (HTTP 404)"
                )),
                (_, unavailable @ SendError::Unavailable { .. }) => unavailable.into(),
                (http, other) => crate::Error::permanent(format!(
                    "Twilio did not answer the status of {sid} (HTTP {http}): {other}"
                )),
            },
        )
    }

    /// The fetch-message request: HTTP Basic auth, JSON answer.
    async fn get_message(
        &self,
        credentials: &TwilioCredentials,
        sid: &str,
    ) -> Result<reqwest::Response, SendError> {
        let url = format!(
            "{}/2010-04-01/Accounts/{}/Messages/{sid}.json",
            self.api_base, credentials.account_sid
        );
        let (user, password) = credentials.basic_auth();
        self.http
            .get(url)
            .basic_auth(user, Some(password.expose_secret()))
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| SendError::from_transport(&e))
    }

    async fn credentials(&self) -> Result<Arc<TwilioCredentials>, SendError> {
        self.credentials
            .current()
            .await
            .map_err(SendError::from_credentials)
    }

    /// The create-message request: form-encoded (Twilio ignores JSON bodies), HTTP Basic auth.
    async fn post(
        &self,
        credentials: &TwilioCredentials,
        sms: &OutboundSms,
    ) -> Result<reqwest::Response, SendError> {
        let url = format!(
            "{}/2010-04-01/Accounts/{}/Messages.json",
            self.api_base, credentials.account_sid
        );
        let mut form = vec![
            ("To", sms.to.as_str()),
            sms.sender.form_field(),
            ("Body", sms.body.as_str()),
        ];
        if let Some(callback) = &sms.status_callback {
            form.push(("StatusCallback", callback.as_str()));
        }
        let (user, password) = credentials.basic_auth();
        self.http
            .post(url)
            .basic_auth(user, Some(password.expose_secret()))
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&form)
            .send()
            .await
            .map_err(|e| SendError::from_transport(&e))
    }
}

/// Refuses, without a request, what Twilio would refuse anyway, with Twilio's own codes.
fn precheck(sms: &OutboundSms) -> Result<(), SendError> {
    if !is_e164(&sms.to) {
        return Err(SendError::Refused {
            code: INVALID_TO,
            message: format!("'To' {} is not an E.164 number", mask_phone(&sms.to)),
        });
    }
    let chars = sms.body.chars().count();
    if chars == 0 {
        return Err(SendError::Refused {
            code: BODY_REQUIRED,
            message: "the body is empty".into(),
        });
    }
    if chars > MAX_BODY_CHARS {
        return Err(SendError::Refused {
            code: BODY_TOO_LONG,
            message: format!(
                "the body has {chars} characters; at most {MAX_BODY_CHARS} are allowed"
            ),
        });
    }
    if let Some(problem) = sms.sender.problem() {
        return Err(SendError::Misconfigured(problem.into()));
    }
    Ok(())
}

/// Turns Twilio's answer into the sent message or the failure it means.
async fn read_answer(response: reqwest::Response) -> Result<SentMessage, SendError> {
    let status = response.status();
    let headers = response.headers().clone();
    if status.is_success() {
        // Twilio took the message: whatever goes wrong from here must not lead to a resend.
        let not_sent_again = |detail: String| {
            SendError::Misconfigured(format!(
                "Twilio answered HTTP {} but {detail}; the SMS was probably sent, so it is not retried",
                status.as_u16()
            ))
        };
        let body = response
            .bytes()
            .await
            .map_err(|e| not_sent_again(format!("its body could not be read ({e})")))?;
        let message: MessageResource = serde_json::from_slice(&body)
            .map_err(|_| not_sent_again("its body is not a message resource".into()))?;
        return Ok(SentMessage {
            sid: message.sid,
            status: message.status,
            segments: message.num_segments.as_ref().and_then(Count::value),
        });
    }
    let body = response.text().await.unwrap_or_default();
    Err(classify(status.as_u16(), &headers, &body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sms(to: &str, body: &str) -> OutboundSms {
        OutboundSms {
            to: to.into(),
            sender: Sender::From("+14155550100".into()),
            body: body.into(),
            status_callback: None,
        }
    }

    #[test]
    fn prechecks_use_twilio_codes() {
        assert!(precheck(&sms("+14158675309", "hi")).is_ok());
        assert_eq!(
            precheck(&sms("4158675309", "hi")).unwrap_err().code(),
            Some(21211)
        );
        assert_eq!(
            precheck(&sms("+14158675309", "")).unwrap_err().code(),
            Some(21602)
        );
        assert!(precheck(&sms("+14158675309", &"é".repeat(1600))).is_ok());
        assert_eq!(
            precheck(&sms("+14158675309", &"a".repeat(1601)))
                .unwrap_err()
                .code(),
            Some(21617)
        );
        let mut bad_sender = sms("+14158675309", "hi");
        bad_sender.sender = Sender::MessagingService("MG-not-a-sid".into());
        assert!(matches!(
            precheck(&bad_sender),
            Err(SendError::Misconfigured(_))
        ));
    }

    #[test]
    fn a_refused_number_is_not_repeated_in_full() {
        let error = precheck(&sms("14158675309", "hi")).unwrap_err().to_string();
        assert!(!error.contains("8675309"), "{error}");
    }

    #[test]
    fn debug_hides_the_number_and_the_body() {
        let debug = format!("{:?}", sms("+14158675309", "your secret code is 1234"));
        assert!(
            !debug.contains("8675309") && !debug.contains("secret code"),
            "{debug}"
        );
    }

    #[test]
    fn only_message_sids_reach_a_request_path() {
        assert!(is_message_sid("SM0123456789abcdef0123456789ABCDEF"));
        assert!(is_message_sid("MM0123456789abcdef0123456789abcdef"));
        for bad in [
            "",
            "SM123",
            "AC0123456789abcdef0123456789abcdef",
            "SM0123456789abcdef0123456789abcdeg",
            "SM0123456789abcdef0123456789abc/..",
            "SM0123456789abcdef0123456789abcdef0",
        ] {
            assert!(!is_message_sid(bad), "{bad}");
        }
    }

    #[test]
    fn a_fetched_error_code_is_read_as_a_number_or_a_string() {
        let read = |json: &str| {
            serde_json::from_str::<FetchedResource>(json)
                .unwrap()
                .into_status()
        };
        let undelivered = read(r#"{"sid":"SM1","status":"undelivered","error_code":30003}"#);
        assert_eq!(undelivered.status, "undelivered");
        assert_eq!(undelivered.error_code.as_deref(), Some("30003"));
        assert_eq!(
            read(r#"{"sid":"SM1","status":"failed","error_code":"30008"}"#)
                .error_code
                .as_deref(),
            Some("30008")
        );
        assert_eq!(
            read(r#"{"sid":"SM1","status":"delivered","error_code":null}"#).error_code,
            None
        );
        assert_eq!(read(r#"{"sid":"SM1","status":"sent"}"#).error_code, None);
    }

    #[test]
    fn num_segments_is_read_as_a_string_or_a_number() {
        let parse = |json: &str| {
            serde_json::from_str::<MessageResource>(json)
                .unwrap()
                .num_segments
                .and_then(|c| c.value())
        };
        assert_eq!(
            parse(r#"{"sid":"SM1","status":"queued","num_segments":"2"}"#),
            Some(2)
        );
        assert_eq!(
            parse(r#"{"sid":"SM1","status":"queued","num_segments":3}"#),
            Some(3)
        );
        assert_eq!(
            parse(r#"{"sid":"SM1","status":"queued","num_segments":null}"#),
            None
        );
        assert_eq!(parse(r#"{"sid":"SM1","status":"queued"}"#), None);
    }
}

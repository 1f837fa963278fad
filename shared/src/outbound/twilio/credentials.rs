//! The Twilio credentials secret, what the receiver and the processor each read of it, and the
//! sender a message goes out from.

use std::collections::BTreeMap;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::inbound::auth::Keys;
use crate::secret_json::parse_json;

/// Whether `sid` is `prefix` followed by 32 hex digits, the shape of every Twilio SID. Checked
/// before a SID goes into a URL path or a form, so a placeholder fails at the first read of the
/// secret instead of as a puzzling 404 from Twilio.
pub(crate) fn is_sid(sid: &str, prefix: &str) -> bool {
    sid.strip_prefix(prefix)
        .is_some_and(|hex| hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The Twilio credentials secret as stored in Secrets Manager: one JSON object, read by the
/// receiver to verify Twilio's signatures ([`TwilioSecret::signing_keys`]) and by the processor to
/// send ([`TwilioCredentials::parse`]):
///
/// ```json
/// {"accountSid": "AC…", "authToken": "…", "secondaryAuthToken": "…", "sharedKeys": {"KS…": "…"},
///  "apiKeySid": "SK…", "apiKeySecret": "…", "messagingServiceSid": "MG…", "from": "+1…"}
/// ```
///
/// Every field may be absent, and a blank value counts as absent (the deployment template's
/// placeholder leaves some empty); each reader then requires what it needs, naming the field and
/// never a value.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TwilioSecret {
    #[serde(default)]
    account_sid: Option<String>,
    #[serde(default)]
    auth_token: Option<SecretString>,
    #[serde(default)]
    secondary_auth_token: Option<SecretString>,
    #[serde(default)]
    shared_keys: BTreeMap<String, SecretString>,
    #[serde(default)]
    api_key_sid: Option<String>,
    #[serde(default)]
    api_key_secret: Option<SecretString>,
    #[serde(default)]
    messaging_service_sid: Option<String>,
    #[serde(default)]
    from: Option<String>,
}

impl TwilioSecret {
    /// The keys Twilio's signatures are checked with: the Auth Token, a `secondaryAuthToken`
    /// during a token rotation, and `sharedKeys` by id. Usable as a
    /// [`crate::secrets::CachedSecret`] parser.
    pub fn signing_keys(raw: &SecretString) -> Result<Keys> {
        let secret: Self = parse_json(raw)?;
        let secrets: Vec<SecretString> = present_secret(secret.auth_token)
            .into_iter()
            .chain(present_secret(secret.secondary_auth_token))
            .collect();
        if secrets.is_empty() && secret.shared_keys.is_empty() {
            return Err(Error::permanent(
                "field `authToken` is missing or empty (Twilio signs callbacks with it), and there \
                 are no `sharedKeys`",
            ));
        }
        Ok(Keys {
            secrets,
            shared_keys: secret.shared_keys,
        })
    }
}

/// The credentials messages are sent with, checked from a [`TwilioSecret`].
/// `Debug` shows SIDs only: the token and the key secret print as redacted.
#[derive(Debug)]
pub struct TwilioCredentials {
    /// The account messages are created in; part of every request path.
    pub account_sid: String,
    auth_token: SecretString,
    api_key: Option<(String, SecretString)>,
    /// A Messaging Service to send from when the rules name no sender.
    pub messaging_service_sid: Option<String>,
    /// A number (or sender ID) to send from when the rules name no sender.
    pub from: Option<String>,
}

/// `Some` only for a value that is not blank.
fn present(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

/// `Some` only for a secret that is not blank.
fn present_secret(value: Option<SecretString>) -> Option<SecretString> {
    value.filter(|v| !v.expose_secret().trim().is_empty())
}

impl TwilioCredentials {
    /// Parses and checks the secret for sending; usable as a [`crate::secrets::CachedSecret`]
    /// parser. Errors name the offending field, never a value.
    pub fn parse(raw: &SecretString) -> Result<Self> {
        let raw: TwilioSecret = parse_json(raw)?;
        let account_sid = present(raw.account_sid).unwrap_or_default();
        if !is_sid(&account_sid, "AC") {
            return Err(Error::permanent(
                "field `accountSid` is not `AC` followed by 32 hex digits",
            ));
        }
        let api_key = match (present(raw.api_key_sid), present_secret(raw.api_key_secret)) {
            (None, None) => None,
            (Some(sid), Some(secret)) if is_sid(&sid, "SK") => Some((sid, secret)),
            (Some(_), Some(_)) => {
                return Err(Error::permanent(
                    "field `apiKeySid` is not `SK` followed by 32 hex digits",
                ))
            }
            _ => {
                return Err(Error::permanent(
                    "fields `apiKeySid` and `apiKeySecret` must both be set or both be empty",
                ))
            }
        };
        let auth_token = present_secret(raw.auth_token);
        let auth_token = match (auth_token, &api_key) {
            (Some(token), _) => token,
            // Sending only needs the API key; the token is then just unused here.
            (None, Some(_)) => SecretString::from(String::new()),
            (None, None) => {
                return Err(Error::permanent(
                    "field `authToken` is missing or empty, and there is no API key",
                ))
            }
        };
        let messaging_service_sid = present(raw.messaging_service_sid);
        if messaging_service_sid
            .as_deref()
            .is_some_and(|sid| !is_sid(sid, "MG"))
        {
            return Err(Error::permanent(
                "field `messagingServiceSid` is not `MG` followed by 32 hex digits",
            ));
        }
        Ok(Self {
            account_sid,
            auth_token,
            api_key,
            messaging_service_sid,
            from: present(raw.from),
        })
    }

    /// The HTTP Basic user and password: the API key when there is one (it can be revoked alone,
    /// which is what makes rotation possible), else the account SID and Auth Token.
    pub(crate) fn basic_auth(&self) -> (&str, &SecretString) {
        match &self.api_key {
            Some((sid, secret)) => (sid, secret),
            None => (&self.account_sid, &self.auth_token),
        }
    }

    /// The account SID and Auth Token: what creates and deletes API keys, which a standard key
    /// cannot do.
    pub(crate) fn main_auth(&self) -> Result<(&str, &SecretString)> {
        if self.auth_token.expose_secret().is_empty() {
            return Err(Error::permanent(
                "field `authToken` is empty: rotating the API key needs the Auth Token, which \
                 creates and deletes keys",
            ));
        }
        Ok((&self.account_sid, &self.auth_token))
    }

    /// The SID of the API key messages are sent with, if any.
    pub(crate) fn api_key_sid(&self) -> Option<&str> {
        self.api_key.as_ref().map(|(sid, _)| sid.as_str())
    }

    /// Whether both would send the same Basic credentials, so retrying a 401 with `other` is
    /// pointless.
    pub(crate) fn same_auth(&self, other: &Self) -> bool {
        let (user, password) = self.basic_auth();
        let (other_user, other_password) = other.basic_auth();
        user == other_user && password.expose_secret() == other_password.expose_secret()
    }
}

/// Who a message is sent from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sender {
    /// A number, short code or alphanumeric sender ID owned by the account (`From`).
    From(String),
    /// A Messaging Service (`MessagingServiceSid`, `MG` + 32 hex), which chooses the number.
    MessagingService(String),
}

impl Sender {
    /// The form field and value Twilio expects for this sender.
    pub(crate) fn form_field(&self) -> (&'static str, &str) {
        match self {
            Self::From(from) => ("From", from),
            Self::MessagingService(sid) => ("MessagingServiceSid", sid),
        }
    }

    /// What is wrong with this sender, if anything. A wrong sender is configuration: the client
    /// checks it before spending a request, and settings can check it at init to fail early.
    pub fn problem(&self) -> Option<&'static str> {
        match self {
            Self::From(from) if from.trim().is_empty() => Some("the sender `From` is empty"),
            Self::MessagingService(sid) if !is_sid(sid, "MG") => {
                Some("the Messaging Service SID is not `MG` followed by 32 hex digits")
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const AC: &str = "AC0123456789abcdef0123456789abcdef";
    const SK: &str = "SK0123456789abcdef0123456789abcdef";
    const MG: &str = "MG0123456789abcdef0123456789abcdef";

    fn parse(value: serde_json::Value) -> Result<TwilioCredentials> {
        TwilioCredentials::parse(&SecretString::from(value.to_string()))
    }

    #[test]
    fn an_api_key_is_preferred_for_basic_auth() {
        let creds = parse(
            json!({"accountSid": AC, "authToken": "tok-value", "apiKeySid": SK,
            "apiKeySecret": "key-secret-value"}),
        )
        .unwrap();
        let (user, password) = creds.basic_auth();
        assert_eq!((user, password.expose_secret()), (SK, "key-secret-value"));
    }

    #[test]
    fn empty_api_key_fields_mean_account_sid_and_token() {
        let creds = parse(
            json!({"accountSid": AC, "authToken": "tok-value", "apiKeySid": "", "apiKeySecret": ""}),
        )
        .unwrap();
        let (user, password) = creds.basic_auth();
        assert_eq!((user, password.expose_secret()), (AC, "tok-value"));
        let creds = parse(json!({"accountSid": AC, "authToken": "tok-value"})).unwrap();
        assert_eq!(creds.basic_auth().0, AC);
    }

    #[test]
    fn the_template_placeholder_and_half_keys_are_refused_by_field_name() {
        let cases = [
            (
                json!({"accountSid": "AC...", "authToken": "CHANGE_ME", "apiKeySid": "", "apiKeySecret": ""}),
                "accountSid",
            ),
            (json!({"authToken": "tok-value"}), "accountSid"),
            (json!({"accountSid": AC}), "authToken"),
            (json!({"accountSid": AC, "authToken": ""}), "authToken"),
            (
                json!({"accountSid": AC, "authToken": "tok-value", "apiKeySid": SK}),
                "apiKeySecret",
            ),
            (
                json!({"accountSid": AC, "authToken": "t", "apiKeySid": "SK1", "apiKeySecret": "key-secret-value"}),
                "apiKeySid",
            ),
            (
                json!({"accountSid": AC, "authToken": "tok-value", "messagingServiceSid": "MG1"}),
                "messagingServiceSid",
            ),
        ];
        for (value, field) in cases {
            let err = parse(value.clone()).unwrap_err();
            assert_eq!(err.class(), "permanent");
            let text = err.to_string();
            assert!(text.contains(field), "{value}: {text}");
            assert!(
                !text.contains("tok-value") && !text.contains("key-secret-value"),
                "{text}"
            );
        }
    }

    #[test]
    fn signing_keys_take_both_tokens_and_shared_keys_and_name_what_is_missing() {
        let keys = TwilioSecret::signing_keys(&SecretString::from(
            json!({"accountSid": AC, "authToken": "t1", "secondaryAuthToken": "t2",
                   "sharedKeys": {"KS1": "k"}})
            .to_string(),
        ))
        .unwrap();
        assert_eq!(keys.secrets.len(), 2);
        assert_eq!(keys.shared_keys.keys().collect::<Vec<_>>(), ["KS1"]);
        // An API key sends but cannot verify: the receiver needs the token (or SharedKeys).
        let api_key_only = json!({"accountSid": AC, "authToken": " ", "apiKeySid": SK,
                                  "apiKeySecret": "key-secret-value"});
        let raw = SecretString::from(api_key_only.to_string());
        assert!(TwilioCredentials::parse(&raw).is_ok());
        let err = TwilioSecret::signing_keys(&raw).unwrap_err().to_string();
        assert!(err.contains("authToken"), "{err}");
        let err = TwilioSecret::signing_keys(&SecretString::from(r#"{"authToken": 12345678}"#))
            .unwrap_err()
            .to_string();
        assert!(!err.contains("12345678"), "{err}");
    }

    #[test]
    fn debug_never_shows_the_token_or_the_key_secret() {
        let creds = parse(
            json!({"accountSid": AC, "authToken": "tok-value", "apiKeySid": SK,
            "apiKeySecret": "key-secret-value"}),
        )
        .unwrap();
        let debug = format!("{creds:?}");
        assert!(debug.contains(AC) && debug.contains(SK), "{debug}");
        assert!(
            !debug.contains("tok-value") && !debug.contains("key-secret-value"),
            "{debug}"
        );
    }

    #[test]
    fn rotated_credentials_are_told_apart() {
        let old = parse(
            json!({"accountSid": AC, "authToken": "t", "apiKeySid": SK, "apiKeySecret": "one"}),
        )
        .unwrap();
        let same = parse(
            json!({"accountSid": AC, "authToken": "t", "apiKeySid": SK, "apiKeySecret": "one"}),
        )
        .unwrap();
        let new = parse(
            json!({"accountSid": AC, "authToken": "t", "apiKeySid": SK, "apiKeySecret": "two"}),
        )
        .unwrap();
        assert!(old.same_auth(&same));
        assert!(!old.same_auth(&new));
    }

    #[test]
    fn senders_are_checked_before_use() {
        assert_eq!(Sender::MessagingService(MG.into()).problem(), None);
        assert!(Sender::MessagingService("MG123".into()).problem().is_some());
        assert!(Sender::MessagingService(SK.into()).problem().is_some());
        assert_eq!(Sender::From("+14155550100".into()).problem(), None);
        assert!(Sender::From("  ".into()).problem().is_some());
        assert_eq!(
            Sender::MessagingService(MG.into()).form_field(),
            ("MessagingServiceSid", MG)
        );
    }
}

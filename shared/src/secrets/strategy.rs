//! How each kind of credential rotates, chosen by the secret's `genesys-relay:rotation` tag:
//!
//! - `webhook` (a receiver route's HMAC key, Standard Webhooks secret, Basic password or bearer
//!   token) and `forward-signing` (a `whsec_` secret deliveries are signed with): a new random
//!   value of the same form. Readers take the current, pending and (for a grace period) previous
//!   values at once, so the sender or receiver at the other end switches at its own pace. A
//!   `webhook` secret tagged `genesys-relay:open-messaging-integration` with an integration id is
//!   pushed to that Genesys Open Messaging integration at `setSecret`.
//! - `twilio-api-key`: a new API key, created with the account's Auth Token, tested with an
//!   authenticated read, and made current; a key no version uses any more is deleted once the
//!   grace period has passed since it was replaced.
//! - `genesys-oauth`: two OAuth clients used in turn, since regenerating a client's secret
//!   invalidates the old one at once. The secret names the standby client (`standbyClientId`);
//!   rotation regenerates the standby's secret with the admin client, tests it with a token
//!   request and switches to it, so the client in use is never touched.

use std::time::{Duration, SystemTime};

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Map, Value};

use super::versions::{Described, SecretVersions};
use crate::config::GenesysEndpoints;
use crate::error::{Error, Result};
use crate::inbound::auth::Keys;
use crate::outbound::genesys::{check_id, GenesysClient, GenesysCredentials};
use crate::outbound::twilio::{Basic, TwilioCredentials, TwilioKeys};
use crate::secret_json::parse_json;

/// The tag naming a secret's rotation strategy.
pub const STRATEGY_TAG: &str = "genesys-relay:rotation";

/// The tag naming the Genesys Open Messaging integration a `webhook` secret signs for.
pub const OPEN_MESSAGING_TAG: &str = "genesys-relay:open-messaging-integration";

/// The random bytes of a generated secret.
const SECRET_BYTES: usize = 32;

/// What the strategies call: the providers and the admin credentials.
pub struct Providers {
    /// One HTTP client for every call.
    pub http: reqwest::Client,
    /// Twilio's API (`TWILIO_API_BASE`).
    pub twilio_api_base: String,
    /// The Genesys organization.
    pub genesys: GenesysEndpoints,
    /// The Genesys OAuth client allowed to regenerate client secrets and update Open Messaging
    /// integrations (`GENESYS_ADMIN_SECRET_ARN`); only the rotator reads it.
    pub genesys_admin: Option<GenesysClient>,
}

impl Providers {
    fn admin(&self, why: &str) -> Result<&GenesysClient> {
        self.genesys_admin.as_ref().ok_or_else(|| {
            Error::permanent(format!(
                "{why} needs the Genesys admin client: set GENESYS_ADMIN_SECRET_ARN"
            ))
        })
    }
}

/// A kind of credential, and so how it rotates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Strategy {
    /// A shared secret (webhook or signing): a new random value of the same form.
    SharedSecret {
        /// The Open Messaging integration to push a new webhook secret to.
        open_messaging: Option<String>,
    },
    /// The Twilio API key messages are sent with.
    TwilioApiKey,
    /// Two Genesys OAuth clients used in turn.
    GenesysOAuth,
}

impl Strategy {
    /// The strategy a secret's tags name.
    pub fn of(secret: &str, described: &Described) -> Result<Self> {
        let open_messaging = described.tags.get(OPEN_MESSAGING_TAG).cloned();
        if let Some(id) = &open_messaging {
            check_id("Open Messaging integration", id)?;
        }
        match described.tags.get(STRATEGY_TAG).map(String::as_str) {
            Some("webhook") => Ok(Self::SharedSecret { open_messaging }),
            Some("forward-signing") => Ok(Self::SharedSecret {
                open_messaging: None,
            }),
            Some("twilio-api-key") => Ok(Self::TwilioApiKey),
            Some("genesys-oauth") => Ok(Self::GenesysOAuth),
            Some(other) => Err(Error::permanent(format!(
                "secret {secret}: tag {STRATEGY_TAG} is {other:?}; expected webhook, \
                 forward-signing, twilio-api-key or genesys-oauth"
            ))),
            None => Err(Error::permanent(format!(
                "secret {secret} has no {STRATEGY_TAG} tag naming how it rotates"
            ))),
        }
    }

    /// The new value, made from the current one (`createSecret`). `token` names what is created
    /// with the provider, so a step run again finds what a failed run left behind.
    pub async fn create(
        &self,
        current: &SecretString,
        token: &str,
        providers: &Providers,
    ) -> Result<SecretString> {
        match self {
            Self::SharedSecret { .. } => new_shared_value(current),
            Self::TwilioApiKey => {
                let credentials = TwilioCredentials::parse(current)?;
                let (user, password) = credentials.main_auth()?;
                let main = Basic { user, password };
                let keys = TwilioKeys::new(
                    providers.http.clone(),
                    &providers.twilio_api_base,
                    &credentials.account_sid,
                );
                let name = key_name(token);
                // A run that failed after creating its key left it unused: its secret is lost.
                for orphan in keys.named(main, &name).await? {
                    keys.delete(main, &orphan).await?;
                }
                let key = keys.create(main, &name).await?;
                with_api_key(current, &key.sid, &key.secret)
            }
            Self::GenesysOAuth => {
                let (in_use, standby) = genesys_clients(current)?;
                let admin = providers.admin("rotating Genesys OAuth credentials")?;
                let answer = admin
                    .call(
                        "OAuth client secret regeneration",
                        reqwest::Method::POST,
                        &format!("/api/v2/oauth/clients/{standby}/secret"),
                        None,
                    )
                    .await?;
                let secret = answer
                    .get("secret")
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| {
                        Error::permanent("the regenerated OAuth client carries no `secret`")
                    })?;
                Ok(SecretString::from(
                    json!({"clientId": standby, "clientSecret": secret, "standbyClientId": in_use})
                        .to_string(),
                ))
            }
        }
    }

    /// Makes the provider use the pending value where it must be told (`setSecret`).
    pub async fn set(&self, pending: &SecretString, providers: &Providers) -> Result<()> {
        let Self::SharedSecret {
            open_messaging: Some(integration),
        } = self
        else {
            return Ok(());
        };
        let token = first_key(pending)?;
        providers
            .admin("pushing an Open Messaging webhook secret")?
            .call(
                "Open Messaging integration update",
                reqwest::Method::PATCH,
                &format!("/api/v2/conversations/messaging/integrations/open/{integration}"),
                Some(&json!({
                    "outboundNotificationWebhookSignatureSecretToken": token.expose_secret()
                })),
            )
            .await
            .map(drop)
    }

    /// Proves the pending value works (`testSecret`).
    pub async fn test(&self, pending: &SecretString, providers: &Providers) -> Result<()> {
        match self {
            Self::SharedSecret { .. } => first_key(pending).map(drop),
            Self::TwilioApiKey => {
                let credentials = TwilioCredentials::parse(pending)?;
                let (user, password) = credentials.basic_auth();
                TwilioKeys::new(
                    providers.http.clone(),
                    &providers.twilio_api_base,
                    &credentials.account_sid,
                )
                .check(Basic { user, password })
                .await
            }
            Self::GenesysOAuth => {
                GenesysClient::with_credentials(
                    providers.http.clone(),
                    providers.genesys.clone(),
                    GenesysCredentials::parse(pending)?,
                )
                .sign_in()
                .await
            }
        }
    }

    /// Cleans up once the pending value is current (`finishSecret`): deletes the Twilio keys no
    /// version uses any more, `grace` after they were replaced.
    pub async fn finish(
        &self,
        secret: &str,
        versions: &dyn SecretVersions,
        providers: &Providers,
        grace: Duration,
        now: SystemTime,
    ) -> Result<()> {
        if *self != Self::TwilioApiKey {
            return Ok(());
        }
        let described = versions.describe(secret).await?;
        let mut keys = Vec::new();
        for version in &described.versions {
            let key = match versions.value(secret, &version.id).await? {
                Some(value) => TwilioCredentials::parse(&value)
                    .ok()
                    .and_then(|c| c.api_key_sid().map(str::to_owned)),
                None => None,
            };
            keys.push((version, key));
        }
        let in_use: Vec<&str> = keys
            .iter()
            .filter(|(v, _)| !v.stages.is_empty())
            .filter_map(|(_, k)| k.as_deref())
            .collect();
        let current = described
            .with_stage(super::versions::CURRENT)
            .ok_or_else(|| Error::permanent(format!("secret {secret} has no current version")))?;
        let main = TwilioCredentials::parse(
            &versions
                .value(secret, &current.id)
                .await?
                .ok_or_else(|| Error::permanent("the current version holds no value"))?,
        )?;
        let (user, password) = main.main_auth()?;
        let client = TwilioKeys::new(
            providers.http.clone(),
            &providers.twilio_api_base,
            &main.account_sid,
        );
        for (index, (version, key)) in keys.iter().enumerate() {
            let Some(key) = key.as_deref() else { continue };
            if !version.stages.is_empty() || in_use.contains(&key) {
                continue;
            }
            // Replaced when the next version that does not hold it was made.
            let replaced = keys[index + 1..]
                .iter()
                .find(|(_, k)| k.as_deref() != Some(key))
                .map(|(v, _)| v.created);
            match replaced {
                Some(at) if now >= at + grace => {
                    client.delete(Basic { user, password }, key).await?;
                    tracing::info!(secret, key, "deleted a rotated-out Twilio API key");
                }
                _ => tracing::info!(
                    secret,
                    key,
                    "a rotated-out Twilio API key is kept until its grace period ends"
                ),
            }
        }
        Ok(())
    }
}

/// The friendly name of the Twilio key a rotation creates.
fn key_name(token: &str) -> String {
    let short: String = token
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(32)
        .collect();
    format!("genesys-relay {short}")
}

fn random_bytes() -> Result<[u8; SECRET_BYTES]> {
    let mut bytes = [0u8; SECRET_BYTES];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| Error::retryable("no random bytes available"))?;
    Ok(bytes)
}

/// A new value of the same form as `current`: a `whsec_` secret, `user:password` with a new
/// password for the same user, or a token. A rotation list (`{"secrets": [...]}`) takes the form
/// of its first value.
pub fn new_shared_value(current: &SecretString) -> Result<SecretString> {
    let first = first_key(current)?;
    let first = first.expose_secret();
    let bytes = random_bytes()?;
    let value = if first.starts_with("whsec_") {
        format!("whsec_{}", STANDARD.encode(bytes))
    } else if let Some((user, _)) = first.split_once(':') {
        format!("{user}:{}", URL_SAFE_NO_PAD.encode(bytes))
    } else {
        URL_SAFE_NO_PAD.encode(bytes)
    };
    Ok(SecretString::from(value))
}

/// The first key a webhook or signing secret holds.
fn first_key(value: &SecretString) -> Result<SecretString> {
    Keys::parse(value)?
        .secrets
        .into_iter()
        .next()
        .ok_or_else(|| Error::permanent("holds no key"))
}

/// The Twilio secret with its API key replaced; every other field kept as it was.
fn with_api_key(current: &SecretString, sid: &str, secret: &SecretString) -> Result<SecretString> {
    let mut fields: Map<String, Value> = parse_json(current)?;
    fields.insert("apiKeySid".into(), Value::String(sid.to_owned()));
    fields.insert(
        "apiKeySecret".into(),
        Value::String(secret.expose_secret().to_owned()),
    );
    Ok(SecretString::from(Value::Object(fields).to_string()))
}

/// The client in use and the standby one a Genesys secret names.
fn genesys_clients(current: &SecretString) -> Result<(String, String)> {
    let in_use = GenesysCredentials::parse(current)?.client_id;
    let fields: Map<String, Value> = parse_json(current)?;
    let standby = fields
        .get("standbyClientId")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            Error::permanent(
                "field `standbyClientId` is missing: rotation switches between two OAuth clients",
            )
        })?;
    check_id("OAuth client", standby)?;
    if standby == in_use {
        return Err(Error::permanent(
            "field `standbyClientId` names the client in use",
        ));
    }
    Ok((in_use, standby.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    #[test]
    fn a_new_shared_value_keeps_the_form_of_the_current_one() {
        let whsec = new_shared_value(&secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")).unwrap();
        let whsec = whsec.expose_secret();
        assert!(whsec.starts_with("whsec_"));
        assert_eq!(STANDARD.decode(&whsec[6..]).unwrap().len(), SECRET_BYTES);
        let basic = new_shared_value(&secret("genesys:old-password")).unwrap();
        let (user, password) = basic.expose_secret().split_once(':').unwrap();
        assert_eq!(user, "genesys");
        assert_ne!(password, "old-password");
        let token = new_shared_value(&secret(r#"{"secrets": ["a-token", "older"]}"#)).unwrap();
        assert_eq!(token.expose_secret().len(), 43);
        assert_ne!(
            new_shared_value(&secret("t")).unwrap().expose_secret(),
            new_shared_value(&secret("t")).unwrap().expose_secret()
        );
        assert!(new_shared_value(&secret(r#"{"secrets": []}"#)).is_err());
    }

    #[test]
    fn a_twilio_value_changes_only_its_key() {
        let current = secret(
            r#"{"accountSid": "AC1", "authToken": "tok", "apiKeySid": "SKold", "apiKeySecret": "old", "from": "+1"}"#,
        );
        let new = with_api_key(&current, "SKnew", &secret("new-secret")).unwrap();
        let value: Value = serde_json::from_str(new.expose_secret()).unwrap();
        assert_eq!(
            value,
            json!({"accountSid": "AC1", "authToken": "tok", "apiKeySid": "SKnew", "apiKeySecret": "new-secret", "from": "+1"})
        );
    }

    #[test]
    fn genesys_rotation_needs_a_standby_client_other_than_the_one_in_use() {
        let ok = secret(r#"{"clientId": "a-1", "clientSecret": "s", "standbyClientId": "b-2"}"#);
        assert_eq!(
            genesys_clients(&ok).unwrap(),
            ("a-1".to_owned(), "b-2".to_owned())
        );
        for bad in [
            r#"{"clientId": "a-1", "clientSecret": "s"}"#,
            r#"{"clientId": "a-1", "clientSecret": "s", "standbyClientId": "a-1"}"#,
            r#"{"clientId": "a-1", "clientSecret": "s", "standbyClientId": "../x"}"#,
        ] {
            assert!(genesys_clients(&secret(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_tag_names_the_strategy() {
        let mut described = Described::default();
        assert!(Strategy::of("s", &described).is_err());
        described.tags.insert(STRATEGY_TAG.into(), "webhook".into());
        described
            .tags
            .insert(OPEN_MESSAGING_TAG.into(), "8d1c-42".into());
        assert_eq!(
            Strategy::of("s", &described).unwrap(),
            Strategy::SharedSecret {
                open_messaging: Some("8d1c-42".into())
            }
        );
        described
            .tags
            .insert(STRATEGY_TAG.into(), "twilio-api-key".into());
        assert_eq!(
            Strategy::of("s", &described).unwrap(),
            Strategy::TwilioApiKey
        );
        described.tags.insert(STRATEGY_TAG.into(), "other".into());
        assert!(Strategy::of("s", &described).is_err());
    }

    #[test]
    fn key_names_carry_the_rotation_token() {
        assert_eq!(
            key_name("0f6a2c1e-3b7d-4e58-9a10-2b3c4d5e6f70"),
            "genesys-relay 0f6a2c1e3b7d4e589a102b3c4d5e6f70"
        );
    }
}

//! The OAuth client (client credentials grant) the relay signs in to Genesys Cloud with, as kept
//! in Secrets Manager: `{"clientId": "...", "clientSecret": "..."}`.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::error::{Error, Result};

/// A Genesys OAuth client. The id is not secret (it shows in Genesys' audit logs and is useful in
/// ours); the secret is a [`SecretString`] and never appears in `Debug` output or messages.
#[derive(Clone)]
pub struct GenesysCredentials {
    /// The OAuth client id.
    pub client_id: String,
    client_secret: SecretString,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    client_id: String,
    client_secret: SecretString,
}

impl GenesysCredentials {
    /// Credentials from values already at hand (the CLI, tests); checked like a parsed secret.
    pub fn new(client_id: impl Into<String>, client_secret: SecretString) -> Result<Self> {
        let client_id = client_id.into().trim().to_owned();
        if client_id.is_empty() {
            return Err(Error::permanent("field `clientId` is empty"));
        }
        // Basic authentication joins id and secret with ':'; an id holding one cannot be sent.
        if client_id.contains(':') || client_id.chars().any(char::is_control) {
            return Err(Error::permanent(
                "field `clientId` holds ':' or a control character",
            ));
        }
        if client_secret.expose_secret().is_empty() {
            return Err(Error::permanent("field `clientSecret` is empty"));
        }
        Ok(Self {
            client_id,
            client_secret,
        })
    }

    /// Parses the secret's JSON; a [`crate::secrets::CachedSecret`] parser, so the credentials are
    /// checked once per read instead of on every token request. Errors name fields, never values.
    pub fn parse(raw: &SecretString) -> Result<Self> {
        let raw: Raw = crate::secret_json::parse_json(raw)?;
        Self::new(raw.client_id, raw.client_secret)
    }

    /// The client secret, for the token request only.
    pub(crate) fn client_secret(&self) -> &SecretString {
        &self.client_secret
    }

    /// Whether a re-read secret still holds exactly these credentials: then asking Genesys again
    /// with them cannot succeed where the last attempt failed.
    pub(crate) fn same_as(&self, other: &Self) -> bool {
        self.client_id == other.client_id
            && self.client_secret.expose_secret() == other.client_secret.expose_secret()
    }
}

impl std::fmt::Debug for GenesysCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GenesysCredentials")
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    #[test]
    fn parses_the_documented_shape() {
        let creds =
            GenesysCredentials::parse(&secret(r#"{"clientId":"c-1","clientSecret":"s3cret"}"#))
                .unwrap();
        assert_eq!(creds.client_id, "c-1");
        assert_eq!(creds.client_secret().expose_secret(), "s3cret");
    }

    #[test]
    fn errors_name_the_field_and_never_a_value() {
        let err = GenesysCredentials::parse(&secret(r#"{"clientId":"c-1"}"#))
            .unwrap_err()
            .to_string();
        assert!(err.contains("clientSecret"), "{err}");

        let err = GenesysCredentials::parse(&secret(r#"{"clientId":"c-1","clientSecret":""}"#))
            .unwrap_err()
            .to_string();
        assert!(err.contains("clientSecret"), "{err}");

        let err = GenesysCredentials::parse(&secret(
            r#"{"clientId":"leaky:id","clientSecret":"hunter2"}"#,
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("clientId"), "{err}");
        assert!(!err.contains("leaky") && !err.contains("hunter2"), "{err}");

        let err = GenesysCredentials::parse(&secret(r#"{"clientId":"c","clientSecret":42424242}"#))
            .unwrap_err()
            .to_string();
        assert!(!err.contains("42424242"), "{err}");

        assert!(GenesysCredentials::parse(&secret("not json hunter2")).is_err());
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let creds = GenesysCredentials::new("c-1", secret("hunter2")).unwrap();
        let shown = format!("{creds:?}");
        assert!(shown.contains("c-1"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn sameness_compares_id_and_secret() {
        let a = GenesysCredentials::new("c-1", secret("one")).unwrap();
        assert!(a.same_as(&GenesysCredentials::new("c-1", secret("one")).unwrap()));
        assert!(!a.same_as(&GenesysCredentials::new("c-1", secret("two")).unwrap()));
        assert!(!a.same_as(&GenesysCredentials::new("c-2", secret("one")).unwrap()));
    }
}

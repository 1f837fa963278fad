//! Twilio API keys, for rotating the key messages are sent with: create one
//! (`POST /2010-04-01/Accounts/{AccountSid}/Keys.json`, whose answer is the only time its secret is
//! shown), list them, delete one (`DELETE .../Keys/{Sid}.json`), and check that a credential
//! authenticates (`GET /2010-04-01/Accounts/{AccountSid}.json`, which any working credential may
//! read). Keys are managed with the account's Auth Token: a standard API key cannot manage keys.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::error::{Error, Result};

/// The most pages of keys read when looking for one by name.
const MAX_PAGES: usize = 20;

/// HTTP Basic credentials of a Twilio request: an account SID and its Auth Token, or an API key
/// SID and its secret.
#[derive(Clone, Copy)]
pub struct Basic<'a> {
    /// The user: `AC…` or `SK…`.
    pub user: &'a str,
    /// The password: the Auth Token or the key's secret.
    pub password: &'a SecretString,
}

/// A key just created: the only time Twilio shows its secret.
pub struct NewKey {
    /// `SK…`.
    pub sid: String,
    /// The key's secret.
    pub secret: SecretString,
}

#[derive(Deserialize)]
struct CreatedKey {
    sid: String,
    secret: SecretString,
}

#[derive(Deserialize)]
struct KeyPage {
    #[serde(default)]
    keys: Vec<ListedKey>,
    #[serde(default)]
    next_page_uri: Option<String>,
}

#[derive(Deserialize)]
struct ListedKey {
    sid: String,
    #[serde(default)]
    friendly_name: Option<String>,
}

#[derive(Deserialize)]
struct TwilioError {
    #[serde(default)]
    code: Option<u32>,
    #[serde(default)]
    message: Option<String>,
}

/// The API keys of one account.
#[derive(Debug, Clone)]
pub struct TwilioKeys {
    http: reqwest::Client,
    api_base: String,
    account_sid: String,
}

impl TwilioKeys {
    /// The keys of `account_sid` on Twilio's API at `api_base`.
    pub fn new(http: reqwest::Client, api_base: &str, account_sid: &str) -> Self {
        Self {
            http,
            api_base: api_base.trim_end_matches('/').to_owned(),
            account_sid: account_sid.to_owned(),
        }
    }

    fn url(&self, rest: &str) -> String {
        format!(
            "{}/2010-04-01/Accounts/{}{rest}",
            self.api_base, self.account_sid
        )
    }

    /// Creates a key named `friendly_name`.
    pub async fn create(&self, main: Basic<'_>, friendly_name: &str) -> Result<NewKey> {
        let response = self
            .http
            .post(self.url("/Keys.json"))
            .basic_auth(main.user, Some(main.password.expose_secret()))
            .form(&[("FriendlyName", friendly_name)])
            .send()
            .await
            .map_err(|e| transport("key creation", &e))?;
        let created: CreatedKey =
            json("key creation", success("key creation", response).await?).await?;
        Ok(NewKey {
            sid: created.sid,
            secret: created.secret,
        })
    }

    /// The SIDs of the keys named `friendly_name`.
    pub async fn named(&self, main: Basic<'_>, friendly_name: &str) -> Result<Vec<String>> {
        let mut url = format!("{}?PageSize=100", self.url("/Keys.json"));
        let mut found = Vec::new();
        for _ in 0..MAX_PAGES {
            let response = self
                .http
                .get(&url)
                .basic_auth(main.user, Some(main.password.expose_secret()))
                .send()
                .await
                .map_err(|e| transport("key listing", &e))?;
            let page: KeyPage =
                json("key listing", success("key listing", response).await?).await?;
            found.extend(
                page.keys
                    .into_iter()
                    .filter(|k| k.friendly_name.as_deref() == Some(friendly_name))
                    .map(|k| k.sid),
            );
            match page.next_page_uri {
                Some(next) if !next.is_empty() => url = format!("{}{next}", self.api_base),
                _ => return Ok(found),
            }
        }
        Err(Error::permanent(format!(
            "Twilio key listing: more than {MAX_PAGES} pages"
        )))
    }

    /// Deletes key `sid`; a key already gone counts as deleted.
    pub async fn delete(&self, main: Basic<'_>, sid: &str) -> Result<()> {
        if !super::credentials::is_sid(sid, "SK") {
            return Err(Error::permanent(
                "a key SID is `SK` followed by 32 hex digits",
            ));
        }
        let response = self
            .http
            .delete(self.url(&format!("/Keys/{sid}.json")))
            .basic_auth(main.user, Some(main.password.expose_secret()))
            .send()
            .await
            .map_err(|e| transport("key deletion", &e))?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(());
        }
        success("key deletion", response).await.map(drop)
    }

    /// Whether `credentials` authenticate: reads the account with them.
    pub async fn check(&self, credentials: Basic<'_>) -> Result<()> {
        let response = self
            .http
            .get(self.url(".json"))
            .basic_auth(credentials.user, Some(credentials.password.expose_secret()))
            .send()
            .await
            .map_err(|e| transport("account read", &e))?;
        success("account read", response).await.map(drop)
    }
}

fn transport(operation: &str, error: &reqwest::Error) -> Error {
    Error::retryable(format!(
        "Twilio {operation}: {}",
        crate::error::chain(error)
    ))
}

async fn json<T: for<'de> Deserialize<'de>>(
    operation: &str,
    response: reqwest::Response,
) -> Result<T> {
    let body = response
        .bytes()
        .await
        .map_err(|e| transport(operation, &e))?;
    serde_json::from_slice(&body)
        .map_err(|e| Error::retryable(format!("Twilio {operation}: unexpected answer ({e})")))
}

/// The response when it is a success; else what its failure means: throttling and outages may
/// pass, a refused credential or a refused request will not.
async fn success(operation: &str, response: reqwest::Response) -> Result<reqwest::Response> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let retry_after = crate::outbound::http::retry_after(response.headers());
    let body = response.bytes().await.unwrap_or_default();
    let error: Option<TwilioError> = serde_json::from_slice(&body).ok();
    let detail = match &error {
        Some(TwilioError {
            code: Some(code),
            message,
        }) => format!(": {} (code {code})", message.as_deref().unwrap_or("")),
        _ => String::new(),
    };
    let message = format!("Twilio {operation} answered {}{detail}", status.as_u16());
    Err(match status.as_u16() {
        429 | 500..=599 => Error::Retryable {
            message,
            retry_after,
        },
        _ => Error::permanent(message),
    })
}

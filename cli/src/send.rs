//! `relay send`: signs a body the way a real sender would and POSTs it, so a user can prove that a
//! deployed receiver route accepts (or refuses) genuine-looking traffic without waiting for
//! Genesys or Twilio to call it.
//!
//! Every signature comes from the receiver's own signers (`genesys_relay::inbound::auth`), so what this
//! command produces is by construction what the receiver verifies. The secret is read from the
//! command line or, better, from an environment variable, and never appears in the output: the
//! response body is scrubbed of it too, in case the endpoint echoes headers.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use genesys_relay::inbound::auth::{self, Encoding, HmacHeader};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::output::Report;

/// Content type of Twilio's callbacks, whose parameters are part of the Twilio signature.
const FORM: &str = "application/x-www-form-urlencoded";
/// How much of the answer is shown: enough for any error JSON, bounded against a huge page.
const MAX_SHOWN_BYTES: usize = 16 * 1024;
/// How long the whole exchange may take; a test send should fail fast against a dead endpoint.
const TIMEOUT: Duration = Duration::from_secs(30);
/// How long to wait for the connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How the request is authenticated, one per receiver scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scheme {
    /// HMAC-SHA256 of the body in one header (Genesys Open Messaging's `X-Hub-Signature-256`).
    Hmac,
    /// Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature`; secret `whsec_...`.
    StandardWebhooks,
    /// `Authorization: Basic`; the secret is `user:password`.
    Basic,
    /// `Authorization: Bearer <secret>`.
    Bearer,
    /// `X-Twilio-Signature` over the URL and form parameters; the secret is the Auth Token.
    Twilio,
    /// No authentication (to check that the route refuses it).
    None,
}

impl Scheme {
    /// The name shown in output, as typed on the command line.
    fn name(self) -> &'static str {
        match self {
            Self::Hmac => "hmac",
            Self::StandardWebhooks => "standard-webhooks",
            Self::Basic => "basic",
            Self::Bearer => "bearer",
            Self::Twilio => "twilio",
            Self::None => "none",
        }
    }
}

/// How the `hmac` scheme writes its digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HmacEncoding {
    /// Standard base64 with padding (Genesys Open Messaging).
    Base64,
    /// Lowercase hexadecimal (GitHub-style senders).
    Hex,
}

/// Arguments of `relay send`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "The secret never appears in the output. Prefer --secret-env: a value \
given with --secret is visible to other users in the process list.\n\n\
Example:\n  GENESYS_WEBHOOK_SECRET=... relay send --url https://abc123.execute-api.us-east-1.amazonaws.com/webhooks/genesys \\\n    \
--file events/receiver-genesys-webhook.json --secret-env GENESYS_WEBHOOK_SECRET"
)]
pub struct Args {
    /// The full URL to POST to, query string included (Twilio signs it exactly as given).
    #[arg(long)]
    pub url: String,
    /// The body: the file's raw bytes, or, for an API Gateway event JSON such as
    /// events/receiver-*.json, its `body` and its content-type header.
    #[arg(long, value_name = "PATH")]
    pub file: PathBuf,
    /// How to authenticate the request, as the receiver route is configured.
    #[arg(long, value_enum, default_value_t = Scheme::Hmac)]
    pub scheme: Scheme,
    /// The secret: HMAC secret, `whsec_` key, `user:password`, token or Twilio Auth Token.
    #[arg(long, value_name = "VALUE", value_parser = parse_secret, conflicts_with = "secret_env")]
    pub secret: Option<SecretString>,
    /// The environment variable holding the secret.
    #[arg(long, value_name = "VAR")]
    pub secret_env: Option<String>,
    /// The Content-Type to send [default: the event's, else application/x-www-form-urlencoded
    /// for twilio, application/json otherwise].
    #[arg(long, value_name = "CT")]
    pub content_type: Option<String>,
    /// An extra header, repeatable.
    #[arg(long = "header", value_name = "NAME:VALUE")]
    pub headers: Vec<String>,
    /// The header that carries the `hmac` signature.
    #[arg(long, value_name = "NAME", default_value = "X-Hub-Signature-256")]
    pub hmac_header: String,
    /// How the `hmac` digest is written.
    #[arg(long, value_enum, value_name = "ENCODING", default_value_t = HmacEncoding::Base64)]
    pub hmac_encoding: HmacEncoding,
    /// Text before the `hmac` digest (give "" for none).
    #[arg(long, value_name = "PREFIX", default_value = "sha256=")]
    pub hmac_prefix: String,
    /// The `webhook-id` for standard-webhooks [default: `msg_` + random].
    #[arg(long, value_name = "ID")]
    pub webhook_id: Option<String>,
}

fn parse_secret(value: &str) -> Result<SecretString, String> {
    Ok(SecretString::from(value.to_owned()))
}

/// The body to send and, when the file was an API Gateway event, the content type it carried.
#[derive(Debug)]
struct Payload {
    body: Vec<u8>,
    content_type: Option<String>,
    from_event: bool,
}

/// What signing added: the headers, and the URL actually called (Twilio's JSON form adds
/// `bodySHA256` to it).
struct Signed {
    headers: Vec<(HeaderName, HeaderValue)>,
    url: String,
}

/// Signs the file's body per `args.scheme`, POSTs it to `args.url` and reports the answer. A
/// status other than 2xx is an error (exit code 1) that carries the status and the answer.
pub async fn run(args: Args) -> anyhow::Result<Report> {
    let secret = resolve_secret(&args)?;
    let payload = load_payload(&args.file)?;
    let content_type = args
        .content_type
        .clone()
        .or_else(|| payload.content_type.clone())
        .unwrap_or_else(|| default_content_type(args.scheme).to_owned());
    let content_type_value = HeaderValue::from_str(&content_type)
        .with_context(|| format!("content type {content_type:?} is not a valid header value"))?;
    let parsed = reqwest::Url::parse(&args.url)
        .with_context(|| format!("--url {:?} is not a URL", args.url))?;
    if parsed.scheme() != "http" && parsed.scheme() != "https" {
        bail!("--url must be an http or https URL");
    }

    let now = SystemTime::now();
    let signed = sign(&args, secret.as_ref(), &payload.body, &content_type, now)?;
    let mut headers = extra_headers(&args.headers, &signed.headers)?;
    headers.insert(CONTENT_TYPE, content_type_value);
    for (name, value) in &signed.headers {
        headers.insert(name.clone(), value.clone());
    }

    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(TIMEOUT)
        .user_agent(concat!("genesys-relay-cli/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("cannot build the HTTP client")?;
    let response = client
        .post(&signed.url)
        .headers(headers.clone())
        .body(payload.body.clone())
        .send()
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "POST {} failed: {}",
                signed.url,
                genesys_relay::error::chain(&e)
            )
        })?;
    let status = response.status();
    let answer = response.bytes().await.map_err(|e| {
        anyhow::anyhow!(
            "reading the answer failed: {}",
            genesys_relay::error::chain(&e)
        )
    })?;
    let shown = scrub(&shown_text(&answer), secret.as_ref(), args.scheme);

    let status_line = format!(
        "HTTP {} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or_default()
    );
    if !status.is_success() {
        let detail = if shown.is_empty() {
            String::new()
        } else {
            format!(": {shown}")
        };
        bail!("{} answered {status_line}{detail}", signed.url);
    }

    let mut header_names: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
    header_names.sort_unstable();
    let signature: Vec<String> = signed
        .headers
        .iter()
        .filter(|(name, _)| *name != AUTHORIZATION)
        .filter_map(|(name, value)| Some(format!("{name}: {}", value.to_str().ok()?)))
        .collect();
    let mut text = vec![format!(
        "POST {} ({} bytes, {content_type}, scheme {})",
        signed.url,
        payload.body.len(),
        args.scheme.name()
    )];
    if payload.from_event {
        text.push(format!(
            "body and content type taken from the API Gateway event {}",
            args.file.display()
        ));
    }
    text.extend(signature.iter().cloned());
    text.push(crate::output::ok(&status_line));
    if !shown.is_empty() {
        text.push(shown.clone());
    }
    let json = json!({
        "url": signed.url,
        "scheme": args.scheme.name(),
        "content_type": content_type,
        "bytes_sent": payload.body.len(),
        "from_event": payload.from_event,
        "headers": header_names,
        "status": status.as_u16(),
        "response": shown,
    });
    Ok(Report::new(text, json))
}

/// The secret from `--secret` or `--secret-env`; required by every scheme but `none`. Errors name
/// the flag or the variable, never a value.
fn resolve_secret(args: &Args) -> anyhow::Result<Option<SecretString>> {
    let secret = match (&args.secret, &args.secret_env) {
        (Some(secret), _) => Some(secret.clone()),
        (None, Some(var)) => {
            let value = std::env::var(var).with_context(|| {
                format!("environment variable {var} (from --secret-env) is not set")
            })?;
            Some(SecretString::from(value))
        }
        (None, None) => None,
    };
    let secret = secret.filter(|s| !s.expose_secret().is_empty());
    if secret.is_none() && args.scheme != Scheme::None {
        bail!(
            "scheme {} needs a secret: give --secret-env <VAR> (or --secret <VALUE>)",
            args.scheme.name()
        );
    }
    Ok(secret)
}

/// The body to send: an API Gateway event's `body` (base64-decoded when `isBase64Encoded`) with
/// its content-type header, or else the file's bytes as they are.
fn load_payload(path: &Path) -> anyhow::Result<Payload> {
    let raw = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let Ok(Value::Object(event)) = serde_json::from_slice::<Value>(&raw) else {
        return Ok(Payload {
            body: raw,
            content_type: None,
            from_event: false,
        });
    };
    let (Some(_), Some(body)) = (event.get("requestContext"), event.get("body")) else {
        return Ok(Payload {
            body: raw,
            content_type: None,
            from_event: false,
        });
    };
    let text = match body {
        Value::String(text) => text.as_str(),
        Value::Null => "",
        _ => bail!("{}: the event's `body` is not a string", path.display()),
    };
    let body = if event.get("isBase64Encoded") == Some(&Value::Bool(true)) {
        BASE64
            .decode(text)
            .with_context(|| format!("{}: the event's `body` is not base64", path.display()))?
    } else {
        text.as_bytes().to_vec()
    };
    Ok(Payload {
        body,
        content_type: event_header(&event, "content-type"),
        from_event: true,
    })
}

/// A header of an API Gateway event, by case-insensitive name, from `headers` or (REST API
/// events) `multiValueHeaders`.
fn event_header(event: &serde_json::Map<String, Value>, name: &str) -> Option<String> {
    let find = |field: &str| {
        event
            .get(field)?
            .as_object()?
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.clone())
    };
    match find("headers") {
        Some(Value::String(value)) => Some(value),
        _ => match find("multiValueHeaders")? {
            Value::Array(values) => values.first()?.as_str().map(str::to_owned),
            _ => None,
        },
    }
}

fn default_content_type(scheme: Scheme) -> &'static str {
    if scheme == Scheme::Twilio {
        FORM
    } else {
        "application/json"
    }
}

/// The headers `scheme` adds, computed with the receiver's own signers.
fn sign(
    args: &Args,
    secret: Option<&SecretString>,
    body: &[u8],
    content_type: &str,
    now: SystemTime,
) -> anyhow::Result<Signed> {
    let mut url = args.url.clone();
    let Some(secret) = secret.filter(|_| args.scheme != Scheme::None) else {
        return Ok(Signed {
            headers: Vec::new(),
            url,
        });
    };
    let key = secret.expose_secret();
    let headers = match args.scheme {
        Scheme::None => Vec::new(),
        Scheme::Hmac => {
            let header =
                HeaderName::from_bytes(args.hmac_header.as_bytes()).with_context(|| {
                    format!("--hmac-header {:?} is not a header name", args.hmac_header)
                })?;
            let signer = HmacHeader {
                header: header.clone(),
                encoding: match args.hmac_encoding {
                    HmacEncoding::Base64 => Encoding::Base64,
                    HmacEncoding::Hex => Encoding::Hex,
                },
                prefix: Some(args.hmac_prefix.clone()).filter(|p| !p.is_empty()),
            };
            vec![(header, value(signer.sign(key.as_bytes(), body))?)]
        }
        Scheme::StandardWebhooks => {
            let id = match &args.webhook_id {
                Some(id) => id.clone(),
                None => format!("msg_{}", random_id()),
            };
            let timestamp = now
                .duration_since(UNIX_EPOCH)
                .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
                .unwrap_or_default();
            let signature =
                auth::standard_webhooks::sign(key, &id, timestamp, body).map_err(|_| {
                    anyhow::anyhow!(
                        "the standard-webhooks secret must be `whsec_` followed by base64"
                    )
                })?;
            vec![
                (HeaderName::from_static("webhook-id"), value(id)?),
                (
                    HeaderName::from_static("webhook-timestamp"),
                    value(timestamp.to_string())?,
                ),
                (
                    HeaderName::from_static("webhook-signature"),
                    value(signature)?,
                ),
            ]
        }
        Scheme::Basic => {
            if !key.contains(':') {
                bail!("the basic secret must be `user:password`");
            }
            let mut header = value(format!("Basic {}", BASE64.encode(key)))?;
            header.set_sensitive(true);
            vec![(AUTHORIZATION, header)]
        }
        Scheme::Bearer => {
            let mut header = HeaderValue::from_str(&format!("Bearer {key}"))
                .map_err(|_| anyhow::anyhow!("the bearer token is not a valid header value"))?;
            header.set_sensitive(true);
            vec![(AUTHORIZATION, header)]
        }
        Scheme::Twilio => {
            let params: Vec<(String, String)> = if is_form(content_type) {
                if std::str::from_utf8(body).is_err() {
                    bail!("a form body must be UTF-8 text for the twilio scheme");
                }
                form_urlencoded::parse(body).into_owned().collect()
            } else {
                // Twilio's form for other bodies: the URL carries the body's SHA-256 and is
                // signed without parameters.
                let digest: String = Sha256::digest(body)
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                let separator = if url.contains('?') { '&' } else { '?' };
                url = format!("{url}{separator}bodySHA256={digest}");
                Vec::new()
            };
            let signature = auth::twilio::sign(key.as_bytes(), &url, &params);
            vec![(
                HeaderName::from_static("x-twilio-signature"),
                value(signature)?,
            )]
        }
    };
    Ok(Signed { headers, url })
}

fn value(text: String) -> anyhow::Result<HeaderValue> {
    HeaderValue::from_str(&text).context("a signature header is not a valid header value")
}

/// Whether the body is a form, as the receiver decides it for Twilio.
fn is_form(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case(FORM))
}

/// 24 random letters and digits, as Standard Webhooks message ids look.
fn random_id() -> String {
    std::iter::repeat_with(fastrand::alphanumeric)
        .take(24)
        .collect()
}

/// The `--header NAME:VALUE` arguments, refusing the content type (it has its own flag) and any
/// header the scheme sets, which would silently replace or contradict the signature.
fn extra_headers(
    raw: &[String],
    signed: &[(HeaderName, HeaderValue)],
) -> anyhow::Result<HeaderMap> {
    let mut headers = HeaderMap::new();
    for item in raw {
        let Some((name, value)) = item.split_once(':') else {
            bail!("--header {item:?} is not NAME:VALUE");
        };
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .with_context(|| format!("--header {:?}: not a header name", name.trim()))?;
        if name == CONTENT_TYPE {
            bail!("give the content type with --content-type, not --header");
        }
        if signed.iter().any(|(signed, _)| *signed == name) {
            bail!("--header {name} would replace a header the scheme sets");
        }
        let value = HeaderValue::from_str(value.trim())
            .with_context(|| format!("--header {name}: not a valid header value"))?;
        headers.append(name, value);
    }
    Ok(headers)
}

/// The answer as text, cut to a readable size.
fn shown_text(answer: &[u8]) -> String {
    let cut = &answer[..answer.len().min(MAX_SHOWN_BYTES)];
    let mut text = String::from_utf8_lossy(cut).trim().to_owned();
    if answer.len() > MAX_SHOWN_BYTES {
        text.push_str(&format!(
            " [... {} more bytes]",
            answer.len() - MAX_SHOWN_BYTES
        ));
    }
    text
}

/// `text` without the secret (nor, for basic, its base64 form), should the endpoint echo it.
fn scrub(text: &str, secret: Option<&SecretString>, scheme: Scheme) -> String {
    let Some(secret) = secret.map(ExposeSecret::expose_secret) else {
        return text.to_owned();
    };
    let mut clean = text.replace(secret, "[redacted]");
    if scheme == Scheme::Basic {
        clean = clean.replace(&BASE64.encode(secret), "[redacted]");
    }
    clean
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_headers_are_found_in_either_form_and_any_case() {
        let event = json!({
            "headers": {"Content-Type": "application/json"},
        });
        let Value::Object(event) = event else {
            panic!()
        };
        assert_eq!(
            event_header(&event, "content-type").as_deref(),
            Some("application/json")
        );
        let rest = json!({"multiValueHeaders": {"content-type": ["text/plain"]}});
        let Value::Object(rest) = rest else { panic!() };
        assert_eq!(
            event_header(&rest, "content-type").as_deref(),
            Some("text/plain")
        );
    }

    #[test]
    fn scrub_removes_the_secret_and_its_basic_form() {
        let secret = SecretString::from("user:pa55");
        let echoed = format!("got user:pa55 and {}", BASE64.encode("user:pa55"));
        let clean = scrub(&echoed, Some(&secret), Scheme::Basic);
        assert_eq!(clean, "got [redacted] and [redacted]");
    }

    #[test]
    fn form_detection_ignores_parameters_and_case() {
        assert!(is_form("Application/X-WWW-Form-Urlencoded; charset=utf-8"));
        assert!(!is_form("application/json"));
    }
}

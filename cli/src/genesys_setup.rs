//! `relay genesys setup-eventbridge`: creates or updates the Genesys Cloud Amazon EventBridge
//! integration, so the conversation events the relay acts on reach the user's AWS account without
//! clicking through the Genesys admin UI, and so running it again converges instead of piling up
//! integrations.
//!
//! The requests are those of Genesys' Platform API as its own SDKs and tools make them:
//! - `GET /api/v2/integrations` (IntegrationsApi.getIntegrations: `pageSize`, `pageNumber`,
//!   `integrationType` filter; answers an `IntegrationEntityListing` with `entities`,
//!   `pageCount`...), from platform-client-sdk-javascript `docs/IntegrationsApi.md` and
//!   platform-client-sdk-go `integrationentitylisting.go`.
//! - `POST /api/v2/integrations` with a `CreateIntegrationRequest` (`name`, `integrationType.id`),
//!   platform-client-sdk-go `createintegrationrequest.go`.
//! - `GET` then `PUT /api/v2/integrations/{id}/config/current` with an `IntegrationConfiguration`
//!   (`name`, `version`, `properties`, `advanced`, `notes`, `credentials`): the PUT names the
//!   version just read, and a stale version is answered 409 (or 400 "does not match the current
//!   version"), which terraform-provider-genesyscloud (`util.IsVersionMismatch`,
//!   `updateIntegrationConfigFromResourceData`) answers by reading the version again and retrying.
//! - `PATCH /api/v2/integrations/{id}` with `{"intendedState": "ENABLED"}`, as
//!   terraform-provider-genesyscloud `resource_genesyscloud_integration.go` enables one.
//! - The properties of `amazon-eventbridge-source` (`awsAccountId`, `awsAccountRegion`,
//!   `eventSourceSuffix`, `eventFilter` = a list of topic patterns) are those of Genesys' Terraform
//!   module GenesysCloudDevOps/aws-event-bridge-module `main.tf`.
//! - `GET /api/v2/organizations/me` (OrganizationApi.getOrganizationsMe) gives the organization id
//!   that names the partner event source, `aws.partner/genesys.com/cloud/{orgId}/{suffix}`
//!   (GenesysCloudBlueprints/aws-eventbridge-analytics-detail-events-blueprint).

use anyhow::{anyhow, bail, Context};
use genesys_relay::genesys::{GenesysCredentials, GenesysEndpoints};
use reqwest::header::ACCEPT;
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

use crate::output::Report;

/// The Genesys integration type that streams events to Amazon EventBridge.
pub const INTEGRATION_TYPE: &str = "amazon-eventbridge-source";
/// The topics the relay needs: the customer's number on `.outbound`, the wrap-up code on `.acw`.
pub const DEFAULT_TOPICS: [&str; 2] = [
    "v2.detail.events.conversation.{id}.outbound",
    "v2.detail.events.conversation.{id}.acw",
];
/// The notes written on a configuration that has none, so an administrator knows what it feeds.
const NOTES: &str = "Streams conversation events to genesys-relay on Amazon EventBridge.";
/// Page size of the integrations listing.
const PAGE_SIZE: u32 = 100;
/// Pages read at most, so a server that never stops paging cannot keep the command running.
const MAX_PAGES: u32 = 100;
/// PUTs of the configuration tried at most when someone else saves it in between.
const CONFIG_ATTEMPTS: usize = 3;
/// The configuration version of a newly created integration: a dry run cannot read the current
/// one, so its planned PUT names this one, keeping the body what the API takes (an integer).
const NEW_CONFIG_VERSION: u64 = 1;
/// How much of a Genesys error message is shown.
const MAX_DETAIL_CHARS: usize = 300;

/// The `relay genesys` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Create or update the Amazon EventBridge integration that streams conversation events to
    /// your AWS account.
    #[command(
        long_about = "Create or update the Genesys Cloud `amazon-eventbridge-source` \
integration that streams conversation events to a partner event source in your AWS account, \
then enable it. An integration of that type with the same --name is updated, so running the \
command again is safe.\n\n\
Genesys OAuth client credentials (client credentials grant) come from GENESYS_CLIENT_ID and \
GENESYS_CLIENT_SECRET; the client needs the permissions integrations:integration:view, \
integrations:integration:add and integrations:integration:edit. GENESYS_API_BASE and \
GENESYS_LOGIN_BASE override the region's base URLs.\n\n\
Afterwards, accept the partner event source aws.partner/genesys.com/cloud/<orgId>/<suffix> in the \
EventBridge console of that account and region, and deploy with GenesysEventBusName set to it."
    )]
    SetupEventbridge(SetupArgs),
    /// List the organization's wrap-up codes with their ids, and the SmsWrapupCodes value (ids)
    /// the stack's EventBridge rule needs for the rules' templates.
    #[command(
        long_about = "List the organization's wrap-up codes (id and name) and, given the rules \
(--rules, or RULES / RULES_FILE), the ids their templates select and the SmsWrapupCodes value to \
deploy with: .acw events carry a wrap-up code's id, not its name, and the EventBridge rule filters \
on what the events carry.\n\n\
Genesys OAuth client credentials come from GENESYS_CLIENT_ID and GENESYS_CLIENT_SECRET; the client \
needs routing:wrapupCode:view. GENESYS_API_BASE and GENESYS_LOGIN_BASE override the region's base \
URLs."
    )]
    WrapupCodes(crate::wrapup_codes::Args),
}

/// Arguments of `relay genesys setup-eventbridge`.
#[derive(Debug, clap::Args)]
pub struct SetupArgs {
    /// The AWS account (12 digits) that receives the events.
    #[arg(long, value_name = "AWS_ACCOUNT_ID")]
    pub account: String,
    /// The AWS region of the partner event source, e.g. us-east-1.
    #[arg(long, value_name = "REGION")]
    pub aws_region: String,
    /// The event source suffix: the last part of the partner event source's name.
    #[arg(long, value_name = "SUFFIX")]
    pub suffix: String,
    /// A topic pattern to stream, repeatable.
    #[arg(
        long = "topic",
        value_name = "PATTERN",
        default_values = DEFAULT_TOPICS
    )]
    pub topics: Vec<String>,
    /// The integration's name; an integration of this type and name is updated.
    #[arg(long, value_name = "NAME", default_value = "genesys-relay")]
    pub name: String,
    /// The Genesys Cloud region domain of the organization.
    #[arg(long, value_name = "DOMAIN", default_value = "mypurecloud.com")]
    pub genesys_region: String,
    /// Print the requests that would be made, without sending any.
    #[arg(long)]
    pub dry_run: bool,
}

/// What the command reads from the environment, gathered in one place so that tests can give it
/// without touching the process environment.
#[derive(Debug, Clone, Default)]
pub struct GenesysEnv {
    /// `GENESYS_CLIENT_ID`.
    pub client_id: Option<String>,
    /// `GENESYS_CLIENT_SECRET`.
    pub client_secret: Option<SecretString>,
    /// `GENESYS_API_BASE`: replaces `https://api.{region}`.
    pub api_base: Option<String>,
    /// `GENESYS_LOGIN_BASE`: replaces `https://login.{region}`.
    pub login_base: Option<String>,
}

impl GenesysEnv {
    /// The values of this process's environment.
    pub fn from_process() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        Self {
            client_id: var("GENESYS_CLIENT_ID"),
            client_secret: var("GENESYS_CLIENT_SECRET").map(SecretString::from),
            api_base: var("GENESYS_API_BASE"),
            login_base: var("GENESYS_LOGIN_BASE"),
        }
    }
}

/// Runs a `relay genesys` subcommand with the process environment.
pub async fn run(command: Command) -> anyhow::Result<Report> {
    match command {
        Command::SetupEventbridge(args) => {
            setup_eventbridge(&args, &GenesysEnv::from_process()).await
        }
        Command::WrapupCodes(args) => {
            crate::wrapup_codes::run(&args, &GenesysEnv::from_process()).await
        }
    }
}

/// The integration's desired state, checked before anything is sent.
struct Desired {
    properties: Value,
    partner_prefix: String,
}

/// One planned or made request.
struct Step {
    method: Method,
    path: String,
    body: Option<Value>,
    when: &'static str,
}

/// Creates or updates the EventBridge integration named `args.name`, configures it and enables
/// it; with `--dry-run`, only describes those requests and makes none.
pub async fn setup_eventbridge(args: &SetupArgs, env: &GenesysEnv) -> anyhow::Result<Report> {
    let desired = desired(args)?;
    let endpoints = GenesysEndpoints::for_region(&args.genesys_region)
        .map_err(|reason| anyhow!("--genesys-region {reason}"))?
        .with_overrides(env.api_base.clone(), env.login_base.clone());
    if args.dry_run {
        return Ok(plan(args, &desired, &endpoints));
    }

    let (client_id, secret) = credentials(env)?;
    let http = genesys_relay::http::client().context("cannot build the HTTP client")?;
    let token = request_token(&http, &endpoints, &client_id, &secret).await?;
    let api = Api {
        http,
        base: endpoints.api_base.clone(),
        token,
        secret,
    };

    let mut notes = Vec::new();
    let org_id = match api
        .call(Method::GET, "/api/v2/organizations/me", None)
        .await
    {
        Ok(org) => org.get("id").and_then(Value::as_str).map(str::to_owned),
        Err(error) => {
            notes.push(format!("could not read the organization id: {error:#}"));
            None
        }
    };

    let (id, created) = match find_integration(&api, &args.name).await? {
        Some(id) => (id, false),
        None => {
            let body = json!({"name": args.name, "integrationType": {"id": INTEGRATION_TYPE}});
            let integration = api
                .call(Method::POST, "/api/v2/integrations", Some(&body))
                .await?;
            let id = integration
                .get("id")
                .and_then(Value::as_str)
                .filter(|id| !id.is_empty())
                .ok_or_else(|| anyhow!("Genesys created the integration but answered no id"))?;
            (id.to_owned(), true)
        }
    };
    check_id(&id)?;
    let version = configure(&api, &id, &args.name, &desired.properties).await?;
    let enabled = api
        .call(
            Method::PATCH,
            &format!("/api/v2/integrations/{id}"),
            Some(&json!({"intendedState": "ENABLED"})),
        )
        .await?;
    let state = enabled
        .get("intendedState")
        .and_then(Value::as_str)
        .unwrap_or("ENABLED")
        .to_owned();

    let source = org_id
        .as_deref()
        .map(|org| format!("{}/{org}/{}", desired.partner_prefix, args.suffix));
    let action = if created { "created" } else { "updated" };
    let mut text = vec![
        crate::output::ok(&format!(
            "{action} integration {id} ({INTEGRATION_TYPE} \"{}\"), configuration version {version}, {state}",
            args.name
        )),
        format!(
            "streams {} to AWS account {} in {}",
            args.topics.join(", "),
            args.account,
            args.aws_region
        ),
    ];
    match &source {
        Some(source) => text.push(format!(
            "next: accept the partner event source {source} in the EventBridge console \
             (account {}, region {}), then deploy with GenesysEventBusName={source}",
            args.account, args.aws_region
        )),
        None => text.push(format!(
            "next: accept the partner event source {}/<orgId>/{} in the EventBridge console \
             (account {}, region {}); the organization id could not be read",
            desired.partner_prefix, args.suffix, args.account, args.aws_region
        )),
    }
    text.extend(notes.iter().cloned());
    let json = json!({
        "integration_id": id,
        "action": action,
        "integration_type": INTEGRATION_TYPE,
        "name": args.name,
        "config_version": version,
        "intended_state": state,
        "properties": desired.properties,
        "org_id": org_id,
        "partner_event_source": source,
        "notes": notes,
    });
    Ok(Report::new(text, json))
}

/// Checks the arguments and builds the properties; every problem is caught before a request.
fn desired(args: &SetupArgs) -> anyhow::Result<Desired> {
    if args.account.len() != 12 || !args.account.bytes().all(|b| b.is_ascii_digit()) {
        bail!("--account must be a 12-digit AWS account id");
    }
    let region_ok = !args.aws_region.is_empty()
        && args.aws_region.len() <= 32
        && args
            .aws_region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && args.aws_region.contains('-');
    if !region_ok {
        bail!("--aws-region must be an AWS region such as us-east-1");
    }
    // Partner event source names allow letters, digits and . - _ (and / between their parts).
    let suffix_ok = !args.suffix.is_empty()
        && args.suffix.len() <= 64
        && args
            .suffix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    if !suffix_ok {
        bail!("--suffix must be 1 to 64 letters, digits, '.', '-' or '_'");
    }
    if args.name.trim().is_empty() {
        bail!("--name must not be empty");
    }
    if args.topics.is_empty() || args.topics.iter().any(|t| t.trim().is_empty()) {
        bail!("--topic must name a topic pattern, e.g. v2.detail.events.conversation.{{id}}.acw");
    }
    Ok(Desired {
        properties: json!({
            "awsAccountId": args.account,
            "awsAccountRegion": args.aws_region,
            "eventSourceSuffix": args.suffix,
            "eventFilter": args.topics,
        }),
        partner_prefix: "aws.partner/genesys.com/cloud".to_owned(),
    })
}

/// The requests a real run makes, for `--dry-run`.
fn plan(args: &SetupArgs, desired: &Desired, endpoints: &GenesysEndpoints) -> Report {
    let listing = format!(
        "/api/v2/integrations?pageSize={PAGE_SIZE}&pageNumber=1&integrationType={INTEGRATION_TYPE}"
    );
    let steps = [
        Step {
            method: Method::GET,
            path: "/api/v2/organizations/me".to_owned(),
            body: None,
            when: "reads the organization id",
        },
        Step {
            method: Method::GET,
            path: listing,
            body: None,
            when: "finds an integration of this type and name, page by page",
        },
        Step {
            method: Method::POST,
            path: "/api/v2/integrations".to_owned(),
            body: Some(json!({"name": args.name, "integrationType": {"id": INTEGRATION_TYPE}})),
            when: "only when none exists",
        },
        Step {
            method: Method::GET,
            path: "/api/v2/integrations/{integrationId}/config/current".to_owned(),
            body: None,
            when: "reads the configuration version",
        },
        Step {
            method: Method::PUT,
            path: "/api/v2/integrations/{integrationId}/config/current".to_owned(),
            body: Some(json!({
                "name": args.name,
                "version": NEW_CONFIG_VERSION,
                "properties": desired.properties,
                "advanced": {},
                "notes": NOTES,
                "credentials": {},
            })),
            when: "version is the one the GET above reads (1 for a new integration); keeps \
                   existing advanced settings, credentials and notes",
        },
        Step {
            method: Method::PATCH,
            path: "/api/v2/integrations/{integrationId}".to_owned(),
            body: Some(json!({"intendedState": "ENABLED"})),
            when: "enables it",
        },
    ];
    let mut text = vec![format!(
        "dry run: nothing is sent; a real run signs in at {}/oauth/token (client credentials) \
         and then calls {}:",
        endpoints.login_base, endpoints.api_base
    )];
    for step in &steps {
        text.push(format!("{} {}  ({})", step.method, step.path, step.when));
        if let Some(body) = &step.body {
            text.push(format!("    {body}"));
        }
    }
    text.push(format!(
        "partner event source: {}/<orgId>/{} (the organization id is not known in a dry run; \
         a real run reads it from GET /api/v2/organizations/me)",
        desired.partner_prefix, args.suffix
    ));
    let json = json!({
        "dry_run": true,
        "login_base": endpoints.login_base,
        "api_base": endpoints.api_base,
        "requests": steps.iter().map(|s| json!({
            "method": s.method.as_str(),
            "path": s.path,
            "body": s.body,
            "when": s.when,
        })).collect::<Vec<_>>(),
        "partner_event_source": Value::Null,
        "partner_event_source_pattern":
            format!("{}/<orgId>/{}", desired.partner_prefix, args.suffix),
    });
    Report::new(text, json)
}

/// The OAuth client from the environment, checked as the relay checks its own.
fn credentials(env: &GenesysEnv) -> anyhow::Result<(String, SecretString)> {
    let (Some(id), Some(secret)) = (&env.client_id, &env.client_secret) else {
        bail!("set GENESYS_CLIENT_ID and GENESYS_CLIENT_SECRET to a Genesys OAuth client (client credentials grant)");
    };
    let checked = GenesysCredentials::new(id.clone(), secret.clone())
        .map_err(|e| anyhow!("GENESYS_CLIENT_ID / GENESYS_CLIENT_SECRET: {e}"))?;
    Ok((checked.client_id, secret.clone()))
}

/// An access token by the client credentials grant.
async fn request_token(
    http: &reqwest::Client,
    endpoints: &GenesysEndpoints,
    client_id: &str,
    secret: &SecretString,
) -> anyhow::Result<SecretString> {
    let url = format!("{}/oauth/token", endpoints.login_base);
    let response = http
        .post(&url)
        .basic_auth(client_id, Some(secret.expose_secret()))
        .header(ACCEPT, "application/json")
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .map_err(|e| {
            anyhow!(
                "cannot reach the Genesys login service at {url}: {}",
                genesys_relay::error::chain(&e)
            )
        })?;
    let status = response.status();
    let correlation = correlation(response.headers());
    let body = response.bytes().await.unwrap_or_default();
    if !status.is_success() {
        let detail = describe(&body, secret);
        let refused = status == StatusCode::UNAUTHORIZED
            || (status == StatusCode::BAD_REQUEST && detail.contains("invalid_client"));
        if refused {
            bail!(
                "Genesys refused OAuth client {client_id} (HTTP {}{detail}){correlation}: check \
                 GENESYS_CLIENT_ID and GENESYS_CLIENT_SECRET, and that --genesys-region is the \
                 region of the client's organization",
                status.as_u16()
            );
        }
        bail!(
            "Genesys token request failed: HTTP {}{detail}{correlation}",
            status.as_u16()
        );
    }
    let token = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("access_token")?.as_str().map(str::to_owned))
        .filter(|t| !t.is_empty())
        .ok_or_else(|| anyhow!("the Genesys token answer holds no access_token{correlation}"))?;
    Ok(SecretString::from(token))
}

/// The Platform API with one access token.
struct Api {
    http: reqwest::Client,
    base: String,
    token: SecretString,
    secret: SecretString,
}

/// A failed API call: the status decides what the caller may do about it.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    message: String,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ApiError {}

impl Api {
    /// Sends one request and returns its JSON answer (`null` when empty); anything but 2xx is an
    /// [`ApiError`] saying what Genesys said and what to check.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let mut request = self
            .http
            .request(method.clone(), &url)
            .bearer_auth(self.token.expose_secret())
            .header(ACCEPT, "application/json");
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| anyhow!("{method} {url} failed: {}", genesys_relay::error::chain(&e)))?;
        let status = response.status();
        let correlation = correlation(response.headers());
        let answer = response.bytes().await.map_err(|e| {
            anyhow!(
                "{method} {url}: reading the answer failed: {}",
                genesys_relay::error::chain(&e)
            )
        })?;
        if status.is_success() {
            if answer.is_empty() {
                return Ok(Value::Null);
            }
            return serde_json::from_slice(&answer)
                .with_context(|| format!("{method} {path}: the answer is not JSON{correlation}"));
        }
        let detail = describe(&answer, &self.secret);
        let hint = match status.as_u16() {
            401 => "; the access token was refused: check that --genesys-region matches the OAuth client's organization",
            403 => "; the OAuth client lacks a permission: it needs integrations:integration:view, :add and :edit",
            429 => "; Genesys is rate limiting: run the command again in a minute (it is safe to repeat)",
            500..=599 => "; Genesys had a problem: run the command again (it is safe to repeat)",
            _ => "",
        };
        Err(ApiError {
            status,
            message: format!(
                "{method} {path}: HTTP {}{detail}{correlation}{hint}",
                status.as_u16()
            ),
        }
        .into())
    }
}

/// The id of the one live integration of our type named `name`, reading every page.
async fn find_integration(api: &Api, name: &str) -> anyhow::Result<Option<String>> {
    let mut found = Vec::new();
    for page in 1..=MAX_PAGES {
        let path = format!(
            "/api/v2/integrations?pageSize={PAGE_SIZE}&pageNumber={page}&integrationType={INTEGRATION_TYPE}"
        );
        let listing = api.call(Method::GET, &path, None).await?;
        let entities = listing
            .get("entities")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        // The type is checked here too: a Genesys that ignores the filter lists every type.
        found.extend(
            entities
                .iter()
                .filter(|e| {
                    e.pointer("/integrationType/id").and_then(Value::as_str)
                        == Some(INTEGRATION_TYPE)
                })
                .filter(|e| e.get("name").and_then(Value::as_str) == Some(name))
                .filter(|e| e.get("intendedState").and_then(Value::as_str) != Some("DELETED"))
                .filter_map(|e| e.get("id").and_then(Value::as_str).map(str::to_owned)),
        );
        let page_count = listing.get("pageCount").and_then(Value::as_u64);
        let last = match page_count {
            Some(count) => u64::from(page) >= count,
            None => entities.len() < PAGE_SIZE as usize,
        };
        if last || entities.is_empty() {
            return match found.len() {
                0 => Ok(None),
                1 => Ok(found.pop()),
                _ => bail!(
                    "several {INTEGRATION_TYPE} integrations are named {name:?} ({}); rename or \
                     delete the extra ones, or choose another --name",
                    found.join(", ")
                ),
            };
        }
    }
    bail!("the integrations listing did not end after {MAX_PAGES} pages")
}

/// Writes the desired properties onto the integration's current configuration (keeping its
/// advanced settings, credentials and notes) and returns the new version. A version that moved on
/// between the read and the write is read again, a few times.
async fn configure(api: &Api, id: &str, name: &str, properties: &Value) -> anyhow::Result<Value> {
    let path = format!("/api/v2/integrations/{id}/config/current");
    let mut last_error = None;
    for _ in 0..CONFIG_ATTEMPTS {
        let current = api.call(Method::GET, &path, None).await?;
        let version = current
            .get("version")
            .filter(|v| v.is_u64())
            .cloned()
            .ok_or_else(|| anyhow!("GET {path}: the configuration has no version"))?;
        let kept = |field: &str| {
            current
                .get(field)
                .filter(|v| v.is_object())
                .cloned()
                .unwrap_or_else(|| json!({}))
        };
        let notes = current
            .get("notes")
            .and_then(Value::as_str)
            .filter(|n| !n.trim().is_empty())
            .unwrap_or(NOTES);
        let body = json!({
            "name": name,
            "version": version,
            "properties": properties,
            "advanced": kept("advanced"),
            "notes": notes,
            "credentials": kept("credentials"),
        });
        match api.call(Method::PUT, &path, Some(&body)).await {
            Ok(saved) => return Ok(saved.get("version").cloned().unwrap_or(Value::Null)),
            Err(error) if is_version_conflict(&error) => last_error = Some(error),
            Err(error) => return Err(error),
        }
    }
    let error = last_error.unwrap_or_else(|| anyhow!("no attempt was made"));
    Err(error.context(format!(
        "the configuration kept changing while it was being saved ({CONFIG_ATTEMPTS} attempts)"
    )))
}

/// Whether Genesys refused a configuration PUT for naming a stale version.
fn is_version_conflict(error: &anyhow::Error) -> bool {
    error.downcast_ref::<ApiError>().is_some_and(|e| {
        e.status == StatusCode::CONFLICT
            || (e.status == StatusCode::BAD_REQUEST
                && e.message.contains("does not match the current version"))
    })
}

/// Refuses an id that could steer a request to another path.
fn check_id(id: &str) -> anyhow::Result<()> {
    let plain = !id.is_empty()
        && id.len() <= genesys_relay::genesys::MAX_ID_LEN
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if plain {
        Ok(())
    } else {
        bail!("Genesys answered an integration id that is not a plain id")
    }
}

/// ` code: message` from a Genesys error body (Platform API `code`/`message`, login service
/// `error`/`error_description`), without the client secret and bounded.
fn describe(body: &[u8], secret: &SecretString) -> String {
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(body) else {
        return String::new();
    };
    let text = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| fields.get(*n)?.as_str().filter(|s| !s.trim().is_empty()))
            .map(str::to_owned)
    };
    let code = text(&["code", "error"]);
    let message = text(&["message", "error_description", "description"]);
    let joined = match (code, message) {
        (Some(code), Some(message)) => format!(" {code}: {message}"),
        (Some(code), None) => format!(" {code}"),
        (None, Some(message)) => format!(": {message}"),
        (None, None) => String::new(),
    };
    let exposed = secret.expose_secret();
    let clean = if exposed.is_empty() {
        joined
    } else {
        joined.replace(exposed, "[redacted]")
    };
    clean
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_DETAIL_CHARS)
        .collect()
}

/// ` (correlation id X)` when Genesys sent one: what its support asks for.
fn correlation(headers: &reqwest::header::HeaderMap) -> String {
    headers
        .get("inin-correlation-id")
        .and_then(|v| v.to_str().ok())
        .map(|id| format!(" (correlation id {id})"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_hides_the_secret() {
        let secret = SecretString::from("hunter2");
        let body = br#"{"error":"invalid_client","error_description":"bad hunter2"}"#;
        assert_eq!(describe(body, &secret), " invalid_client: bad [redacted]");
    }

    #[test]
    fn version_conflicts_are_recognised() {
        let conflict = anyhow::Error::from(ApiError {
            status: StatusCode::CONFLICT,
            message: "x".into(),
        });
        assert!(is_version_conflict(&conflict));
        let other = anyhow::Error::from(ApiError {
            status: StatusCode::BAD_REQUEST,
            message: "bad".into(),
        });
        assert!(!is_version_conflict(&other));
    }
}

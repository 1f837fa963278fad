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
use genesys_relay::config::GenesysEndpoints;
use genesys_relay::outbound::genesys::{check_id, GenesysClient, GenesysCredentials};
use reqwest::Method;
use secrecy::SecretString;
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
    /// The relay's Genesys client for these credentials in `region` (with the base URL overrides);
    /// `needs` names the permissions the command's OAuth client needs, for the error when the
    /// credentials are missing.
    pub fn client(&self, region: &str, needs: &str) -> anyhow::Result<GenesysClient> {
        let endpoints = GenesysEndpoints::for_region(region)
            .map_err(|reason| anyhow!("--genesys-region {reason}"))?
            .with_overrides(self.api_base.clone(), self.login_base.clone());
        let (Some(id), Some(secret)) = (&self.client_id, &self.client_secret) else {
            bail!(
                "set GENESYS_CLIENT_ID and GENESYS_CLIENT_SECRET to a Genesys OAuth client \
                 (client credentials grant) with {needs}"
            );
        };
        let credentials = GenesysCredentials::new(id.clone(), secret.clone())
            .map_err(|e| anyhow!("GENESYS_CLIENT_ID / GENESYS_CLIENT_SECRET: {e}"))?;
        let http =
            genesys_relay::outbound::http::client().context("cannot build the HTTP client")?;
        Ok(GenesysClient::with_credentials(
            http,
            endpoints,
            credentials,
        ))
    }

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

    let api = Api(env.client(
        &args.genesys_region,
        "integrations:integration:view, :add and :edit",
    )?);
    api.0.sign_in().await.map_err(Api::explain)?;

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
    check_id("integration", &id).map_err(|e| anyhow!("Genesys answered {e}"))?;
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

/// The Platform API through the relay's Genesys client, its failures told in the command's terms.
struct Api(GenesysClient);

impl Api {
    /// Sends one request and returns its JSON answer (`null` when empty); a failure says what
    /// Genesys said and what to check.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let operation = format!("{method} {}", path.split('?').next().unwrap_or(path));
        self.0
            .call(&operation, method, path, body)
            .await
            .map_err(Self::explain)
    }

    /// The error with what to check or do about it.
    fn explain(error: genesys_relay::Error) -> anyhow::Error {
        let text = error.to_string();
        let hint = if text.contains("refused OAuth client") {
            "check GENESYS_CLIENT_ID and GENESYS_CLIENT_SECRET, and that --genesys-region \
                     is the region of the client's organization"
        } else if text.contains("access token was refused") {
            "check that --genesys-region matches the OAuth client's organization"
        } else if text.contains("HTTP 403") {
            "the OAuth client lacks a permission: it needs \
                     integrations:integration:view, :add and :edit"
        } else if matches!(error, genesys_relay::Error::Retryable { .. }) {
            "Genesys is busy or had a problem: run the command again (it is safe to repeat)"
        } else {
            ""
        };
        match hint {
            "" => anyhow!(error),
            hint => anyhow!(error).context(hint),
        }
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

/// Whether Genesys refused a configuration PUT for naming a stale version: 409, or 400 "does not
/// match the current version" (as terraform-provider-genesyscloud's `IsVersionMismatch` reads it).
fn is_version_conflict(error: &anyhow::Error) -> bool {
    let text = format!("{error:#}");
    text.contains("HTTP 409") || text.contains("does not match the current version")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_conflicts_are_recognised() {
        let conflict = anyhow!(genesys_relay::Error::permanent(
            "Genesys PUT /api/v2/integrations/x/config/current: HTTP 409 conflict"
        ));
        assert!(is_version_conflict(&conflict));
        let stale = anyhow!(genesys_relay::Error::permanent(
            "Genesys PUT ...: HTTP 400 bad.request: Version 3 does not match the current version"
        ));
        assert!(is_version_conflict(&stale));
        let other = anyhow!(genesys_relay::Error::permanent(
            "Genesys PUT ...: HTTP 400 bad"
        ));
        assert!(!is_version_conflict(&other));
    }
}

//! The actions: small, idempotent units the processor runs (forwarding, whose parts belong
//! together, lives in [`crate::outbound::forward`]).
//!
//! Each returns an [`Outcome`] (stored as the idempotency result and counted in metrics) or an
//! error whose class decides retry or dead-letter.

pub mod delivery_status;
pub mod sms_on_wrapup;
pub mod wrapup_codes;

use std::borrow::Cow;
use std::collections::BTreeMap;

use std::sync::Arc;

use aws_config::SdkConfig;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::time::Instant;

use crate::actions::wrapup_codes::WrapupTemplates;
use crate::config::ActionsConfig;
use crate::error::Result;
use crate::inbound::event::{EventKey, GenesysDetail};
use crate::inbound::queue::Source;
use crate::outbound::forward::Forwarder;
use crate::outbound::genesys::{GenesysClient, GenesysCredentials};
use crate::outbound::twilio::{TwilioClient, TwilioCredentials};
use crate::rules::Rules;
use crate::secrets::CachedSecret;
use crate::state::idempotency::{Claim, Idempotency};
use crate::state::opt_outs::{DynamoOptOuts, OptOuts};
use crate::state::sms::{DynamoSmsLedger, SmsLedger};
use crate::telemetry::Label;

/// Clients and rules the actions share; built once per cold start.
pub struct ActionDeps {
    /// Twilio Messages API.
    pub twilio: TwilioClient,
    /// Genesys Cloud API.
    pub genesys: GenesysClient,
    /// The SMS ledger.
    pub sms: Arc<dyn SmsLedger>,
    /// The numbers never to text again.
    pub opt_outs: Arc<dyn OptOuts>,
    /// What triggers what.
    pub rules: Rules,
    /// Which template each wrap-up code selects, when the rules text anyone.
    pub wrapups: Option<WrapupTemplates>,
    /// The receiver's public Twilio status URL, given to Twilio as `StatusCallback`.
    pub status_callback_url: Option<String>,
    /// Delivery to downstream services, when the rules name any.
    pub forward: Option<Forwarder>,
    /// Where each SMS's status checks are queued, so a lost callback is read back from Twilio;
    /// `None` (no main queue known) schedules none. See [`ActionDeps::with_status_checks`].
    pub status_checks: Option<delivery_status::StatusChecks>,
}

impl ActionDeps {
    /// Builds every client once, from the settings, one AWS configuration and one HTTP client, and
    /// resolves the wrap-up code names the rules use (a name Genesys does not know stops here).
    pub async fn new(
        config: &ActionsConfig,
        aws: &SdkConfig,
        http: reqwest::Client,
    ) -> Result<Self> {
        let secrets = aws_sdk_secretsmanager::Client::new(aws);
        let twilio_credentials = Arc::new(CachedSecret::new(
            secrets.clone(),
            config.twilio_secret_arn.clone(),
            config.secrets,
            TwilioCredentials::parse,
        ));
        let genesys_credentials = Arc::new(CachedSecret::new(
            secrets,
            config.genesys_secret_arn.clone(),
            config.secrets,
            GenesysCredentials::parse,
        ));
        let forward = match &config.rules.forward {
            Some(rule) => Some(Forwarder::new(rule, config, aws)?),
            None => None,
        };
        let genesys = GenesysClient::new(http.clone(), config.genesys.clone(), genesys_credentials);
        let wrapups = config
            .rules
            .sms_on_wrapup
            .as_ref()
            .map(WrapupTemplates::new);
        if let Some(wrapups) = wrapups.as_ref().filter(|w| w.has_names()) {
            wrapups.resolve(&genesys).await?;
        }
        Ok(Self {
            twilio: TwilioClient::new(http, config.twilio_api_base.clone(), twilio_credentials),
            genesys,
            sms: Arc::new(DynamoSmsLedger::new(
                aws_sdk_dynamodb::Client::new(aws),
                config.table_name.clone(),
                config.sms_record_ttl,
            )),
            opt_outs: Arc::new(DynamoOptOuts::new(
                aws_sdk_dynamodb::Client::new(aws),
                config.table_name.clone(),
            )),
            rules: config.rules.clone(),
            wrapups,
            status_callback_url: config.status_callback_url.clone(),
            forward,
            status_checks: None,
        })
    }

    /// Queues each SMS's status checks with `checks` (on the main queue, which only the
    /// functions' own settings name).
    pub fn with_status_checks(mut self, checks: Option<delivery_status::StatusChecks>) -> Self {
        self.status_checks = checks;
        self
    }
}

impl ActionDeps {
    /// The template key a wrap-up code arriving now selects; `None` when the rules do not text
    /// for it (or text nobody).
    pub async fn select_template(&self, code: &str) -> Result<Option<String>> {
        match &self.wrapups {
            Some(wrapups) => wrapups.select(code, &self.genesys, Instant::now()).await,
            None => Ok(None),
        }
    }
}

/// How an action ended, for logs, metrics and repeats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// What became of it.
    pub label: Label,
    /// A detail safe to log (a message sid, a reason); never a phone number.
    pub detail: String,
}

impl Outcome {
    /// An outcome with a detail.
    pub fn new(label: Label, detail: impl Into<String>) -> Self {
        Self {
            label,
            detail: detail.into(),
        }
    }

    /// The form stored as the idempotency result.
    pub fn stored(&self) -> String {
        format!("{}:{}", self.label.as_str(), self.detail)
    }
}

/// Participant attributes under the configured prefix, stamped with `updatedAt`.
pub fn status_attributes(prefix: &str, pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    let now = OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default();
    pairs
        .iter()
        .map(|(k, v)| (format!("{prefix}{k}"), (*v).to_owned()))
        .chain(std::iter::once((format!("{prefix}updatedAt"), now)))
        .collect()
}

/// What every action's claim hashes to tell "the same event again" (a duplicate) from "another
/// event under the same key" (a conflict): the payload as received, except for events from the
/// EventBridge integration, whose envelope (`id`, `time`, `detail.timestamp`) changes with every
/// redelivery while the event does not: theirs is the event body, which their key is made from.
/// One definition, so the SMS and every forwarding endpoint judge a redelivery alike.
pub fn claim_content(source: Source, payload: &str) -> Cow<'_, [u8]> {
    if source == Source::GenesysEventBridge {
        if let Ok(detail) = serde_json::from_str::<GenesysDetail>(payload) {
            return Cow::Owned(event_content(&detail));
        }
    }
    Cow::Borrowed(payload.as_bytes())
}

/// The content of an EventBridge event that its claims hash: its body (see [`claim_content`]).
pub fn event_content(detail: &GenesysDetail) -> Vec<u8> {
    serde_json::to_vec(&detail.event_body).unwrap_or_default()
}

/// Runs `work` under an idempotency claim on `(name, key)`: a repeat returns the stored outcome
/// (labelled `duplicate`), a failure releases the claim so a retry can run.
pub async fn run_once<F, Fut, E>(
    idempotency: &Idempotency,
    name: &str,
    key: &EventKey,
    payload: &[u8],
    lease: std::time::Duration,
    work: F,
) -> Result<Outcome, E>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<Outcome, E>>,
    E: From<crate::Error>,
{
    let token = match idempotency.claim(name, key, payload, lease).await? {
        Claim::Completed(stored) => return Ok(Outcome::new(Label::Duplicate, stored)),
        Claim::Acquired(token) => token,
    };
    match work().await {
        Ok(outcome) => {
            // The work is done; failing now would redo it. A lost completion only shortens the
            // protection to the lease.
            if let Err(error) = idempotency.complete(&token, &outcome.stored()).await {
                tracing::error!(action = name, event_key = %key, reason = %error, "could not record completion");
            }
            Ok(outcome)
        }
        Err(error) => {
            if let Err(release) = idempotency.release(&token).await {
                tracing::error!(action = name, event_key = %key, reason = %release, "could not release the claim");
            }
            Err(error)
        }
    }
}

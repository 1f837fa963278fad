//! The endpoints and one delivery attempt to one of them: signed with Standard Webhooks,
//! optionally encrypted, through SSRF-guarded connections, behind a circuit breaker per
//! endpoint, each attempt audited.
//!
//! An attempt's result is the product's [`Error`]: `Retryable` for what may pass (408, 425, 429,
//! 5xx, a timeout, no connection), `Deferred` when no request was sent (the circuit is open, too
//! little time is left), `Permanent` for the rest. A 410 Gone disables the endpoint: its
//! deliveries are dead-lettered from then on.
//!
//! An endpoint URL the egress policy refuses on its face (scheme, credentials, an address or a
//! name like `localhost` that is not public) stops [`Forwarder::new`], so a misconfigured
//! endpoint fails the function at init rather than at its first delivery; names that need DNS
//! are judged at each connection, since what they resolve to can change. Each attempt ends by its
//! deadline at the latest, whatever the endpoint's own timeout, so a slow endpoint comes back as
//! a retryable timeout instead of holding the invocation until Lambda stops it.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use secrecy::{ExposeSecret, SecretString};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::circuit::{CircuitBreaker, Permit};
use super::envelope::{self, Delivery, EncryptionKey, RawEvent};
use super::event::Event;
use super::schedule::MIN_ATTEMPT;
use super::ssrf::{guarded_client, EgressPolicy, GuardedResolver, SsrfError};
use crate::actions::Outcome;
use crate::config::ActionsConfig;
use crate::error::{Error, Result};
use crate::inbound::auth::Keys;
use crate::rules::{Endpoint, EndpointAuth, Forward};
use crate::secrets::{self, CachedSecret};
use crate::state::endpoints::{Attempt as AttemptRecord, DynamoEndpoints, EndpointRecords};
use crate::telemetry;
use crate::telemetry::{Function, Label};

/// One attempt to deliver an event.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    /// The event.
    pub event: &'a Event<'a>,
    /// Which attempt this is (1 the first time).
    pub number: u32,
    /// When the attempt must be over, whatever the endpoint's own timeout: the caller's
    /// deadline less the time it needs afterwards to record the outcome and queue a retry.
    pub deadline: Instant,
}

/// The credentials an endpoint's requests carry, read from their secret when needed.
enum Credentials {
    /// `user:password`, sent as HTTP Basic.
    Basic(CachedSecret<SecretString>),
    /// A token, sent as a bearer token.
    Bearer(CachedSecret<SecretString>),
}

impl Credentials {
    /// `request` with the credentials on.
    async fn apply(&self, request: reqwest::RequestBuilder) -> Result<reqwest::RequestBuilder> {
        Ok(match self {
            Self::Basic(cache) => {
                let secret = cache.current().await?;
                let (user, password) = secret
                    .expose_secret()
                    .split_once(':')
                    .unwrap_or((secret.expose_secret(), ""));
                request.basic_auth(user, Some(password))
            }
            Self::Bearer(cache) => {
                let secret = cache.current().await?;
                request.bearer_auth(secret.expose_secret())
            }
        })
    }
}

struct EndpointRuntime {
    rule: Endpoint,
    url: reqwest::Url,
    auth: Option<Credentials>,
    signing: Option<CachedSecret<Keys>>,
    encryption: Option<CachedSecret<EncryptionKey>>,
    slots: Arc<Semaphore>,
}

/// Delivers events to the configured endpoints.
pub struct Forwarder {
    endpoints: Vec<EndpointRuntime>,
    max_attempts: u32,
    http: reqwest::Client,
    policy: Arc<EgressPolicy>,
    circuit: CircuitBreaker,
    records: Arc<dyn EndpointRecords>,
}

/// The parsed `user:password` or token of an endpoint's credentials.
fn credential(raw: &SecretString) -> Result<SecretString> {
    let value = raw.expose_secret().trim();
    if value.is_empty() {
        return Err(Error::permanent("is empty"));
    }
    Ok(SecretString::from(value.to_owned()))
}

impl Forwarder {
    /// Builds the runtime of every endpoint (its URL, secrets read lazily, slots) and the
    /// SSRF-guarded client, circuit breaker and stores they share. An endpoint whose URL the
    /// egress policy refuses without resolving anything is a permanent error naming it.
    pub fn new(rule: &Forward, config: &ActionsConfig, aws: &SdkConfig) -> Result<Self> {
        let policy = Arc::new(config.egress.clone());
        let http = guarded_client(
            GuardedResolver::new(Arc::clone(&policy)),
            crate::outbound::http::REQUEST_TIMEOUT,
        )
        .map_err(|e| Error::permanent(format!("cannot build the forwarding HTTP client: {e}")))?;
        let ddb = aws_sdk_dynamodb::Client::new(aws);
        let table = config.table_name.clone();
        let circuit = CircuitBreaker::new(ddb.clone(), table.clone(), config.circuit);
        let records = Arc::new(DynamoEndpoints::new(ddb, table));
        let secrets_client = aws_sdk_secretsmanager::Client::new(aws);
        let secrets_policy = config.secrets;
        let cache = |arn: &str| (secrets_client.clone(), arn.to_owned(), secrets_policy);
        let endpoints = rule
            .endpoints
            .iter()
            .map(|endpoint| {
                let url = endpoint.url.clone();
                // Refused on its face now means refused at every delivery: fail at init instead.
                policy.check_url(&url).map_err(|e| {
                    Error::permanent(format!(
                        "forward endpoint {}: target refused: {e}",
                        endpoint.name
                    ))
                })?;
                let secret = |arn: &str| {
                    let (client, arn, policy) = cache(arn);
                    CachedSecret::new(
                        client,
                        arn,
                        policy,
                        credential as secrets::Parser<SecretString>,
                    )
                };
                let auth = match &endpoint.auth {
                    EndpointAuth::None => None,
                    EndpointAuth::Basic { secret_arn } => {
                        Some(Credentials::Basic(secret(secret_arn)))
                    }
                    EndpointAuth::Bearer { secret_arn } => {
                        Some(Credentials::Bearer(secret(secret_arn)))
                    }
                };
                // Signed with every live version's key: during a rotation, and for a grace
                // period after it, the endpoint verifies with whichever key it holds.
                let signing = endpoint.signing_secret_arn.as_deref().map(|arn| {
                    let (client, arn, policy) = cache(arn);
                    CachedSecret::overlapping(client, arn, policy, Keys::parse, Keys::merge)
                });
                let encryption = endpoint.encryption_key_arn.as_deref().map(|arn| {
                    let (client, arn, policy) = cache(arn);
                    CachedSecret::new(client, arn, policy, EncryptionKey::parse)
                });
                Ok(EndpointRuntime {
                    rule: endpoint.clone(),
                    url,
                    auth,
                    signing,
                    encryption,
                    slots: Arc::new(Semaphore::new(endpoint.concurrency)),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            endpoints,
            max_attempts: rule.max_attempts,
            http,
            policy,
            circuit,
            records,
        })
    }

    /// Attempts per delivery before it is dead-lettered.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The names of the endpoints that receive `event_type`.
    pub(crate) fn endpoints_for(&self, event_type: &str) -> Vec<&str> {
        self.endpoints
            .iter()
            .filter(|e| e.rule.wants(event_type))
            .map(|e| e.rule.name.as_str())
            .collect()
    }

    /// Makes `attempt` at delivering its event to the endpoint named `name`.
    pub async fn deliver(&self, name: &str, attempt: Attempt<'_>) -> Result<Outcome> {
        let endpoint = self
            .endpoints
            .iter()
            .find(|e| e.rule.name == name)
            .ok_or_else(|| Error::permanent(format!("no forward endpoint named {name}")))?;
        // The receiver queues only JSON it parsed, so this guards against a queue written
        // otherwise: what cannot be forwarded unchanged is not forwarded at all.
        let event = RawEvent::new(&attempt.event.text)?;
        if let Some(since) = self.records.disabled_since(name).await? {
            return Err(Error::permanent(format!(
                "endpoint {name} is disabled (410 Gone at {since})"
            )));
        }
        self.policy.check_url(&endpoint.url).map_err(Error::from)?;
        let out_of_time = || {
            Error::deferred(
                "no time left for an attempt before the invocation's deadline",
                Duration::ZERO,
            )
        };
        if time_left(attempt.deadline) < MIN_ATTEMPT {
            return Err(out_of_time());
        }
        let permit = self.circuit.permit(name, SystemTime::now()).await?;
        if let Permit::Open { retry_after } = permit {
            return Err(Error::deferred(
                format!("circuit open; deferred for {}s", retry_after.as_secs()),
                retry_after,
            ));
        }
        let queued = attempt.event;
        let delivery = Delivery {
            version: "1".into(),
            delivery_id: envelope::delivery_id(name, queued.envelope.event_key.as_str()),
            event_key: queued.envelope.event_key.as_str().to_owned(),
            source: queued.envelope.source.as_str().to_owned(),
            event_type: queued.kind.clone(),
            occurred_at: queued.occurred_at.format(&Rfc3339).unwrap_or_default(),
            attempt: attempt.number,
            event,
        };
        let request = self.request(endpoint, &delivery).await?;
        // Waiting for a slot (other deliveries to this endpoint) eats into the same deadline.
        let _slot = match tokio::time::timeout_at(attempt.deadline, endpoint.slots.acquire()).await
        {
            Ok(slot) => slot.map_err(|_| Error::retryable("endpoint slots closed"))?,
            Err(_) => return Err(out_of_time()),
        };
        let left = time_left(attempt.deadline);
        if left < MIN_ATTEMPT {
            return Err(out_of_time());
        }
        let configured = Duration::from_secs(endpoint.rule.timeout_secs);
        let timeout = configured.min(left);
        let started = Instant::now();
        let answer = request.timeout(timeout).send().await;
        let latency = started.elapsed();
        let cut_short = (timeout < configured).then_some(timeout);
        let answer = self.classify(name, answer, cut_short).await;
        if let Err(error) = self
            .circuit
            .record(name, &permit, !answer.endpoint_failed, SystemTime::now())
            .await
        {
            tracing::warn!(endpoint = name, reason = %error, "could not record the circuit outcome");
        }
        let label = match &answer.result {
            Ok(_) => Label::Delivered,
            Err(_) if answer.endpoint_failed => Label::Retry,
            Err(_) => Label::Failed,
        };
        tracing::info!(
            endpoint = name,
            delivery_id = %delivery.delivery_id,
            status = answer.status.as_deref().unwrap_or("none"),
            latency_ms = latency.as_millis() as u64,
            attempt = attempt.number,
            outcome = %label,
            "forward attempt"
        );
        telemetry::count_outcome(Function::Processor, "forward", label);
        telemetry::record_forward_attempt(name, label, latency.as_millis() as u64);
        if let Err(error) = self
            .audit(
                name,
                &delivery,
                answer.status.as_deref(),
                latency,
                label.as_str(),
            )
            .await
        {
            tracing::warn!(endpoint = name, reason = %error, "could not record the attempt");
        }
        answer.result
    }

    /// The signed (and maybe encrypted) request, without its timeout: that is set when it is
    /// sent, from the time left then.
    async fn request(
        &self,
        endpoint: &EndpointRuntime,
        delivery: &Delivery<RawEvent<'_>>,
    ) -> Result<reqwest::RequestBuilder> {
        let key = match &endpoint.encryption {
            Some(cache) => Some(cache.current().await?),
            None => None,
        };
        let body = envelope::body(delivery, key.as_deref())?;
        let mut request = self
            .http
            .post(endpoint.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        match &endpoint.signing {
            Some(cache) => {
                let keys = cache.current().await?;
                let timestamp = OffsetDateTime::now_utc().unix_timestamp();
                for (name, value) in envelope::signature_headers(
                    &delivery.delivery_id,
                    timestamp,
                    &body,
                    &keys.secrets,
                )? {
                    request = request.header(name, value);
                }
            }
            // Unsigned deliveries still carry their id, so receivers can deduplicate retries.
            None => request = request.header("webhook-id", &delivery.delivery_id),
        }
        if let Some(credentials) = &endpoint.auth {
            request = credentials.apply(request).await?;
        }
        Ok(request.body(body))
    }

    /// What an answer means, and its status for the audit. `cut_short` is the timeout when the
    /// deadline made it shorter than the endpoint's own, so a timeout says why it came early.
    async fn classify(
        &self,
        name: &str,
        answer: reqwest::Result<reqwest::Response>,
        cut_short: Option<Duration>,
    ) -> Answer {
        let response = match answer {
            Ok(response) => response,
            Err(error) => {
                if let Some(refused) = SsrfError::find(&error) {
                    return Answer {
                        result: Err(Error::from(refused.clone())),
                        status: None,
                        endpoint_failed: false,
                    };
                }
                let what = match (error.is_timeout(), cut_short) {
                    (true, Some(timeout)) => format!(
                        "timed out after {} ms, cut short to end before the invocation's deadline",
                        timeout.as_millis()
                    ),
                    (true, None) => "timed out".to_owned(),
                    (false, _) => "could not be reached".to_owned(),
                };
                return Answer {
                    result: Err(Error::Retryable {
                        message: format!("{name} {what}"),
                        retry_after: None,
                    }),
                    status: None,
                    endpoint_failed: true,
                };
            }
        };
        let status = response.status().as_u16();
        let retry_after = crate::outbound::http::retry_after(response.headers());
        let endpoint_failed = matches!(status, 408 | 425 | 429 | 500..=599);
        let result = match status {
            200..=299 => Ok(Outcome::new(Label::Delivered, format!("{name} {status}"))),
            410 => match self.disable(name).await {
                Ok(()) => Err(Error::permanent(format!(
                    "{name} answered 410 Gone; endpoint disabled"
                ))),
                Err(error) => Err(error),
            },
            _ if endpoint_failed => Err(Error::Retryable {
                message: format!("{name} answered {status}"),
                retry_after,
            }),
            _ => {
                let text = response.text().await.unwrap_or_default();
                let summary: String = text
                    .chars()
                    .take(200)
                    .collect::<String>()
                    .replace(['\n', '\r'], " ");
                Err(Error::permanent(format!(
                    "{name} answered {status}: {summary}"
                )))
            }
        };
        Answer {
            result,
            status: Some(status.to_string()),
            endpoint_failed,
        }
    }

    async fn disable(&self, name: &str) -> Result<()> {
        let now = OffsetDateTime::now_utc()
            .format(&Rfc3339)
            .unwrap_or_default();
        self.records.disable(name, &now).await?;
        tracing::error!(endpoint = name, "endpoint answered 410 Gone; disabled");
        telemetry::count_outcome(Function::Processor, "forward", Label::Disabled);
        Ok(())
    }

    async fn audit(
        &self,
        name: &str,
        delivery: &Delivery<RawEvent<'_>>,
        status: Option<&str>,
        latency: Duration,
        outcome: &str,
    ) -> Result<()> {
        let attempt = AttemptRecord {
            delivery_id: delivery.delivery_id.clone(),
            event_key: delivery.event_key.clone(),
            attempt: delivery.attempt,
            status: status.unwrap_or("none").to_owned(),
            outcome: outcome.to_owned(),
            latency_ms: u64::try_from(latency.as_millis()).unwrap_or(u64::MAX),
        };
        self.records
            .record_attempt(name, &attempt, SystemTime::now())
            .await
    }
}

/// What an endpoint's answer means.
struct Answer {
    /// The attempt's result.
    result: Result<Outcome>,
    /// The HTTP status, for the audit; `None` when there was no answer.
    status: Option<String>,
    /// Whether the endpoint failed in a way that may pass (which counts against its circuit).
    endpoint_failed: bool,
}

/// How long until `deadline`; zero once it has passed.
fn time_left(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

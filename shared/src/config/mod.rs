//! Typed configuration from the environment, checked once at init.
//!
//! Environment variables carry names, ARNs and endpoints, never secret values. A missing or
//! malformed setting fails at init with a message naming the variable, so a bad deployment is
//! caught by its first cold start instead of by its first event.

mod genesys_region;

pub use genesys_region::{GenesysEndpoints, REGIONS};

use std::time::Duration;

use crate::inbound::auth::{Bearer, Encoding, HmacHeader, Scheme};
use crate::inbound::event::EventKeyRule;
use crate::outbound::forward::circuit::CircuitPolicy;
use crate::outbound::forward::ssrf::EgressPolicy;
use crate::rules::Rules;

/// Largest body the receiver accepts unless `MAX_BODY_BYTES` says otherwise (1 MiB).
pub(crate) const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
/// Bodies above this size go to S3 and travel as a claim check: SQS takes at most 256 KiB,
/// attributes included (the queue also claim-checks any body that would pass that limit with its
/// attributes, or that holds characters SQS refuses).
pub const DEFAULT_CLAIM_CHECK_THRESHOLD_BYTES: usize = 240 * 1024;
/// Default age after which a cached secret is read again (the Powertools default).
pub(crate) const DEFAULT_SECRETS_MAX_AGE: Duration = Duration::from_secs(300);
/// Default least interval between forced re-reads of a secret after a failed verification.
pub(crate) const DEFAULT_SECRETS_REFRESH_INTERVAL: Duration = Duration::from_secs(60);

/// How long a rotated-out webhook or signing key stays accepted by default: a day for senders to
/// switch to the new one.
pub(crate) const DEFAULT_PREVIOUS_GRACE: Duration = Duration::from_secs(24 * 3600);

/// A setting that is missing or malformed; the message names the variable and never a secret.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {name} {problem}")]
pub struct ConfigError {
    /// The environment variable at fault.
    pub name: &'static str,
    /// What is wrong with it.
    pub problem: String,
}

/// Reads settings through a lookup function, so tests never mutate the process environment.
pub struct Env<F>(F);

impl Env<fn(&str) -> Option<String>> {
    /// Settings from the process environment.
    pub fn process() -> Self {
        Env(|name| std::env::var(name).ok())
    }
}

impl<F: Fn(&str) -> Option<String>> Env<F> {
    /// Settings from any lookup (a map in tests).
    pub fn from_fn(lookup: F) -> Self {
        Env(lookup)
    }

    /// The value exactly as set, blank included (a blank value can mean "none").
    pub fn raw(&self, name: &str) -> Option<String> {
        (self.0)(name)
    }

    /// The value when set and not blank.
    pub fn optional(&self, name: &'static str) -> Option<String> {
        self.raw(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// The value, or an error naming the variable.
    pub fn required(&self, name: &'static str) -> Result<String, ConfigError> {
        self.optional(name).ok_or(ConfigError {
            name,
            problem: "is required but not set".into(),
        })
    }

    /// A parsed value, or the default when unset.
    pub fn parsed<T: std::str::FromStr>(
        &self,
        name: &'static str,
        default: T,
        expected: &str,
    ) -> Result<T, ConfigError> {
        match self.optional(name) {
            None => Ok(default),
            Some(raw) => raw.parse().map_err(|_| ConfigError {
                name,
                problem: format!("must be {expected} (got {raw:?})"),
            }),
        }
    }

    /// A whole number of seconds, or the default.
    pub fn seconds(&self, name: &'static str, default: Duration) -> Result<Duration, ConfigError> {
        self.parsed(name, default.as_secs(), "a whole number of seconds")
            .map(Duration::from_secs)
    }
}

/// How secrets are cached; shared by every function that reads Secrets Manager.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecretsPolicy {
    /// Age after which a cached value is read again (`SECRETS_MAX_AGE_SECS`).
    pub max_age: Duration,
    /// Least interval between re-reads forced by a failed verification
    /// (`SECRETS_REFRESH_MIN_INTERVAL_SECS`), so bad requests cannot hammer Secrets Manager.
    pub refresh_min_interval: Duration,
    /// How long after a rotation the previous webhook or signing key is still accepted
    /// (`SECRETS_PREVIOUS_GRACE_SECS`), for senders that switch at their own pace; also how long
    /// a rotated-out Twilio API key lives before it is deleted.
    pub previous_grace: Duration,
}

impl SecretsPolicy {
    /// Reads the policy, with the documented defaults.
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        Ok(Self {
            max_age: env.seconds("SECRETS_MAX_AGE_SECS", DEFAULT_SECRETS_MAX_AGE)?,
            refresh_min_interval: env.seconds(
                "SECRETS_REFRESH_MIN_INTERVAL_SECS",
                DEFAULT_SECRETS_REFRESH_INTERVAL,
            )?,
            previous_grace: env.seconds("SECRETS_PREVIOUS_GRACE_SECS", DEFAULT_PREVIOUS_GRACE)?,
        })
    }
}

impl Default for SecretsPolicy {
    fn default() -> Self {
        Self {
            max_age: DEFAULT_SECRETS_MAX_AGE,
            refresh_min_interval: DEFAULT_SECRETS_REFRESH_INTERVAL,
            previous_grace: DEFAULT_PREVIOUS_GRACE,
        }
    }
}

/// How long "this event's SMS was sent" is remembered by default: the main queue's retention
/// (4 days) + the dead-letter queue's (14 days) + 14 days to replay from an archive + 3 days of
/// margin. A redrive or replay within it finds the SMS sent and sends nothing.
pub(crate) const DEFAULT_SMS_WINDOW: Duration = Duration::from_secs(35 * 24 * 3600);

/// The shortest SMS window accepted: queue + dead-letter queue retention, the longest an event
/// can wait in the pipeline before a redrive brings it back.
pub(crate) const MIN_SMS_WINDOW: Duration = Duration::from_secs(18 * 24 * 3600);

/// How long a conversation's `.outbound` context waits for its wrap-up by default.
pub(crate) const DEFAULT_CONTEXT_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// How long a failing event is retried by default before it is dead-lettered with its reason.
pub(crate) const DEFAULT_RETRY_BUDGET: Duration = Duration::from_secs(6 * 3600);

/// The longest retry budget accepted: well inside the main queue's 4-day retention, so SQS never
/// drops a message that is still being retried.
pub(crate) const MAX_RETRY_BUDGET: Duration = Duration::from_secs(3 * 24 * 3600);

/// `STATUS_CHECK_SCHEDULE_SECS`: at most 10 waits of 1 s to 12 h; unset is the default schedule,
/// `off` none.
fn check_schedule<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
) -> Result<Vec<Duration>, ConfigError> {
    let Some(text) = env.optional("STATUS_CHECK_SCHEDULE_SECS") else {
        return Ok(crate::actions::delivery_status::DEFAULT_CHECK_SCHEDULE.to_vec());
    };
    let problem = || ConfigError {
        name: "STATUS_CHECK_SCHEDULE_SECS",
        problem: "must be `off` or at most 10 comma-separated whole seconds, each from 1 to 43200"
            .into(),
    };
    if text.eq_ignore_ascii_case("off") {
        return Ok(Vec::new());
    }
    let waits: Vec<Duration> = text
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            t.parse::<u64>()
                .ok()
                .filter(|secs| (1..=43_200).contains(secs))
                .map(Duration::from_secs)
                .ok_or_else(problem)
        })
        .collect::<Result<_, _>>()?;
    if waits.len() > 10 {
        return Err(problem());
    }
    let lease = crate::actions::delivery_status::WRITER_LEASE;
    if waits.iter().sum::<Duration>() <= lease {
        return Err(ConfigError {
            name: "STATUS_CHECK_SCHEDULE_SECS",
            problem: format!(
                "must reach past {} s in all: a status left to a writer that died is written by \
                 the first check after that writer's lease runs out",
                lease.as_secs()
            ),
        });
    }
    Ok(waits)
}

/// Everything the receiver needs to know, validated.
#[derive(Debug, Clone)]
pub struct ReceiverConfig {
    /// The main queue (`QUEUE_URL`); a `.fifo` URL turns on message groups and deduplication ids.
    pub queue_url: String,
    /// Bucket for claim checks of bodies SQS cannot carry, too large or holding characters SQS
    /// refuses (`CLAIM_CHECK_BUCKET`); without it such bodies are refused with 413.
    pub claim_check_bucket: Option<String>,
    /// Largest accepted body (`MAX_BODY_BYTES`).
    pub max_body_bytes: usize,
    /// Bodies above this size go to S3 (`CLAIM_CHECK_THRESHOLD_BYTES`), as do bodies that would
    /// not fit in one SQS message with their attributes.
    pub claim_check_threshold_bytes: usize,
    /// How Genesys webhooks authenticate (`GENESYS_WEBHOOK_AUTH` and its options).
    pub genesys_auth: Scheme,
    /// The secret holding the Genesys webhook key(s) (`GENESYS_WEBHOOK_SECRET_ARN`).
    pub genesys_secret_arn: String,
    /// The secret holding the Twilio auth token(s) (`TWILIO_SECRET_ARN`).
    pub twilio_secret_arn: String,
    /// The public URL prefix Twilio calls (`PUBLIC_BASE_URL`), needed behind a custom domain;
    /// without it the URL is rebuilt from the request's Host header.
    pub public_base_url: Option<String>,
    /// How the dedup key is derived from a Genesys webhook body (`EVENT_KEY_POINTERS`); the
    /// `webhook-id` header takes part only under `standard-webhooks`, which signs it.
    pub event_key: EventKeyRule,
    /// Secret caching (`SECRETS_MAX_AGE_SECS`, `SECRETS_REFRESH_MIN_INTERVAL_SECS`).
    pub secrets: SecretsPolicy,
}

impl ReceiverConfig {
    /// Reads and validates every receiver setting.
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let max_body_bytes = env.parsed(
            "MAX_BODY_BYTES",
            DEFAULT_MAX_BODY_BYTES,
            "a number of bytes",
        )?;
        if max_body_bytes == 0 {
            return Err(ConfigError {
                name: "MAX_BODY_BYTES",
                problem: "must be greater than 0".into(),
            });
        }
        let claim_check_threshold_bytes = env.parsed(
            "CLAIM_CHECK_THRESHOLD_BYTES",
            DEFAULT_CLAIM_CHECK_THRESHOLD_BYTES,
            "a number of bytes",
        )?;
        if claim_check_threshold_bytes == 0 || claim_check_threshold_bytes > 256 * 1024 {
            return Err(ConfigError {
                name: "CLAIM_CHECK_THRESHOLD_BYTES",
                problem: "must be between 1 and 262144 (the SQS message limit)".into(),
            });
        }
        let public_base_url = url(env, "PUBLIC_BASE_URL")?;
        Ok(Self {
            queue_url: env.required("QUEUE_URL")?,
            claim_check_bucket: env.optional("CLAIM_CHECK_BUCKET"),
            max_body_bytes,
            claim_check_threshold_bytes,
            genesys_auth: genesys_auth(env)?,
            genesys_secret_arn: env.required("GENESYS_WEBHOOK_SECRET_ARN")?,
            twilio_secret_arn: env.required("TWILIO_SECRET_ARN")?,
            public_base_url,
            event_key: EventKeyRule::parse(
                env.optional("EVENT_KEY_POINTERS").as_deref().unwrap_or(""),
            )
            .map_err(|problem| ConfigError {
                name: "EVENT_KEY_POINTERS",
                problem,
            })?,
            secrets: SecretsPolicy::from_env(env)?,
        })
    }
}

/// The Genesys route's scheme: `hmac` (default), `standard-webhooks`, `basic` or `bearer`.
fn genesys_auth<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Scheme, ConfigError> {
    let scheme = env
        .optional("GENESYS_WEBHOOK_AUTH")
        .unwrap_or_else(|| "hmac".into());
    match scheme.as_str() {
        "hmac" => {
            let default = HmacHeader::genesys_open_messaging();
            let header = match env.optional("GENESYS_HMAC_HEADER") {
                None => default.header,
                Some(name) => header_name("GENESYS_HMAC_HEADER", &name)?,
            };
            let encoding = match env.optional("GENESYS_HMAC_ENCODING").as_deref() {
                None => default.encoding,
                Some("base64") => Encoding::Base64,
                Some("hex") => Encoding::Hex,
                Some(other) => {
                    return Err(ConfigError {
                        name: "GENESYS_HMAC_ENCODING",
                        problem: format!("must be base64 or hex (got {other:?})"),
                    })
                }
            };
            // Unset keeps the Open Messaging prefix; "none" means the header holds the bare digest.
            let prefix = match env.raw("GENESYS_HMAC_PREFIX") {
                None => default.prefix,
                Some(p) if p.trim().is_empty() || p.trim() == "none" => None,
                Some(p) => Some(p.trim().to_owned()),
            };
            Ok(Scheme::HmacHeader(HmacHeader {
                header,
                encoding,
                prefix,
            }))
        }
        "standard-webhooks" => Ok(Scheme::StandardWebhooks),
        "basic" => Ok(Scheme::Basic),
        "bearer" => {
            let header = match env.optional("GENESYS_BEARER_HEADER") {
                None => http::header::AUTHORIZATION,
                Some(name) => header_name("GENESYS_BEARER_HEADER", &name)?,
            };
            Ok(Scheme::Bearer(Bearer { header }))
        }
        other => Err(ConfigError {
            name: "GENESYS_WEBHOOK_AUTH",
            problem: format!(
                "must be one of hmac, standard-webhooks, basic, bearer (got {other:?})"
            ),
        }),
    }
}

fn header_name(name: &'static str, raw: &str) -> Result<http::HeaderName, ConfigError> {
    http::HeaderName::from_bytes(raw.as_bytes()).map_err(|_| ConfigError {
        name,
        problem: format!("is not a valid HTTP header name (got {raw:?})"),
    })
}

/// The Genesys organization: `GENESYS_REGION`, with `GENESYS_API_BASE` and `GENESYS_LOGIN_BASE`
/// overrides for local stand-ins.
fn genesys_endpoints<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
) -> Result<GenesysEndpoints, ConfigError> {
    let region = env
        .optional("GENESYS_REGION")
        .unwrap_or_else(|| "mypurecloud.com".into());
    Ok(GenesysEndpoints::for_region(&region)
        .map_err(|problem| ConfigError {
            name: "GENESYS_REGION",
            problem,
        })?
        .with_overrides(
            url(env, "GENESYS_API_BASE")?,
            url(env, "GENESYS_LOGIN_BASE")?,
        ))
}

/// Twilio's API: `TWILIO_API_BASE`, for local stand-ins, else Twilio's own.
fn twilio_api_base<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<String, ConfigError> {
    Ok(url(env, "TWILIO_API_BASE")?.unwrap_or_else(|| "https://api.twilio.com".into()))
}

/// The rotation function's settings.
#[derive(Debug, Clone)]
pub struct RotatorConfig {
    /// Twilio's API, where API keys are created and deleted.
    pub twilio_api_base: String,
    /// The Genesys organization whose OAuth clients and Open Messaging integrations rotate.
    pub genesys: GenesysEndpoints,
    /// The Genesys OAuth client allowed to regenerate client secrets and update Open Messaging
    /// integrations (`GENESYS_ADMIN_SECRET_ARN`); unset, only Twilio keys and secrets that need
    /// no Genesys call rotate.
    pub genesys_admin_secret_arn: Option<String>,
    /// Secret caching, and the grace period a replaced Twilio key lives.
    pub secrets: SecretsPolicy,
}

impl RotatorConfig {
    /// Reads and validates the rotator's settings.
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        Ok(Self {
            twilio_api_base: twilio_api_base(env)?,
            genesys: genesys_endpoints(env)?,
            genesys_admin_secret_arn: env.optional("GENESYS_ADMIN_SECRET_ARN"),
            secrets: SecretsPolicy::from_env(env)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> Env<impl Fn(&str) -> Option<String>> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Env::from_fn(move |k| map.get(k).cloned())
    }

    #[test]
    fn status_checks_outlast_a_dead_writers_lease() {
        let schedule = |value: &str| check_schedule(&env(&[("STATUS_CHECK_SCHEDULE_SECS", value)]));
        assert_eq!(
            check_schedule(&env(&[])).unwrap(),
            crate::actions::delivery_status::DEFAULT_CHECK_SCHEDULE.to_vec()
        );
        assert_eq!(
            schedule("2, 5,15,45").unwrap(),
            [2, 5, 15, 45].map(Duration::from_secs).to_vec()
        );
        assert!(schedule("off").unwrap().is_empty());
        let short = schedule("2,5,15").unwrap_err();
        assert!(short.to_string().contains("lease"), "{short}");
        for bad in ["0,120", "x", "43201", "1,1,1,1,1,1,1,1,1,1,100"] {
            assert!(schedule(bad).is_err(), "{bad}");
        }
    }

    const MINIMAL: &[(&str, &str)] = &[
        ("QUEUE_URL", "http://localhost/q"),
        ("GENESYS_WEBHOOK_SECRET_ARN", "arn:g"),
        ("TWILIO_SECRET_ARN", "arn:t"),
    ];

    #[test]
    fn minimal_settings_take_the_documented_defaults() {
        let config = ReceiverConfig::from_env(&env(MINIMAL)).unwrap();
        assert_eq!(config.max_body_bytes, 1_048_576);
        assert_eq!(config.claim_check_threshold_bytes, 245_760);
        assert_eq!(config.secrets, SecretsPolicy::default());
        assert!(config.claim_check_bucket.is_none());
        match config.genesys_auth {
            Scheme::HmacHeader(h) => {
                assert_eq!(h.header.as_str(), "x-hub-signature-256");
                assert_eq!(h.prefix.as_deref(), Some("sha256="));
            }
            other => panic!("expected hmac, got {}", other.name()),
        }
    }

    #[test]
    fn a_missing_variable_is_named() {
        let err = ReceiverConfig::from_env(&env(&MINIMAL[1..])).unwrap_err();
        assert_eq!(err.name, "QUEUE_URL");
        assert!(err.to_string().contains("QUEUE_URL is required"), "{err}");
    }

    #[test]
    fn malformed_values_are_named_with_what_was_expected() {
        for (name, value) in [
            ("MAX_BODY_BYTES", "lots"),
            ("MAX_BODY_BYTES", "0"),
            ("CLAIM_CHECK_THRESHOLD_BYTES", "300000"),
            ("GENESYS_WEBHOOK_AUTH", "magic"),
            ("GENESYS_HMAC_ENCODING", "base32"),
            ("GENESYS_HMAC_HEADER", "bad header"),
            ("SECRETS_MAX_AGE_SECS", "-1"),
            ("PUBLIC_BASE_URL", "example.com"),
            ("EVENT_KEY_POINTERS", "eventBody/id"),
        ] {
            let mut pairs = MINIMAL.to_vec();
            pairs.push((name, value));
            let err = ReceiverConfig::from_env(&env(&pairs)).unwrap_err();
            assert_eq!(err.name, name, "{err}");
        }
    }

    #[test]
    fn hmac_options_and_bearer_header_are_read() {
        let mut pairs = MINIMAL.to_vec();
        pairs.extend([
            ("GENESYS_HMAC_HEADER", "X-Signature"),
            ("GENESYS_HMAC_ENCODING", "hex"),
            ("GENESYS_HMAC_PREFIX", ""),
        ]);
        match ReceiverConfig::from_env(&env(&pairs)).unwrap().genesys_auth {
            Scheme::HmacHeader(h) => {
                assert_eq!(h.header.as_str(), "x-signature");
                assert_eq!(h.encoding, Encoding::Hex);
                assert_eq!(h.prefix, None);
            }
            other => panic!("expected hmac, got {}", other.name()),
        }
        let mut pairs = MINIMAL.to_vec();
        pairs.extend([
            ("GENESYS_WEBHOOK_AUTH", "bearer"),
            ("GENESYS_BEARER_HEADER", "X-Api-Key"),
        ]);
        match ReceiverConfig::from_env(&env(&pairs)).unwrap().genesys_auth {
            Scheme::Bearer(b) => assert_eq!(b.header.as_str(), "x-api-key"),
            other => panic!("expected bearer, got {}", other.name()),
        }
    }
}

/// Settings of the actions the processor runs.
#[derive(Debug, Clone)]
pub struct ActionsConfig {
    /// The state table (`TABLE_NAME`): idempotency records, SMS ledger, opt-outs.
    pub table_name: String,
    /// Twilio credentials secret (`TWILIO_SECRET_ARN`).
    pub twilio_secret_arn: String,
    /// Twilio API base (`TWILIO_API_BASE`), overridable for tests.
    pub twilio_api_base: String,
    /// Genesys OAuth client secret (`GENESYS_SECRET_ARN`).
    pub genesys_secret_arn: String,
    /// Genesys API and login endpoints (`GENESYS_REGION`, `GENESYS_API_BASE`, `GENESYS_LOGIN_BASE`).
    pub genesys: GenesysEndpoints,
    /// The receiver's public status URL given to Twilio (`STATUS_CALLBACK_URL`).
    pub status_callback_url: Option<String>,
    /// How long an action's result is remembered (`IDEMPOTENCY_WINDOW_SECS`).
    pub idempotency_window: Duration,
    /// How long an SMS ledger record lives (`SMS_RECORD_TTL_SECS`).
    pub sms_record_ttl: Duration,
    /// How long "this event's SMS was sent" is remembered (`SMS_IDEMPOTENCY_WINDOW_SECS`): longer
    /// than every path back into the pipeline, so no redrive or replay texts a customer twice.
    pub sms_window: Duration,
    /// Waits between the status checks after each SMS (`STATUS_CHECK_SCHEDULE_SECS`, seconds,
    /// comma-separated; `off` turns checks off).
    pub status_check_schedule: Vec<Duration>,
    /// What triggers what (`RULES` inline JSON or `RULES_FILE`).
    pub rules: Rules,
    /// Secret caching.
    pub secrets: SecretsPolicy,
    /// Where forwarded requests may go (`FORWARD_ALLOW_CIDRS`, `FORWARD_ALLOW_HTTP_LOOPBACK`).
    pub egress: EgressPolicy,
    /// When a failing endpoint's circuit opens.
    pub circuit: CircuitPolicy,
}

impl ActionsConfig {
    /// Reads and validates the action settings.
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let genesys = genesys_endpoints(env)?;
        let rules = rules(env)?;
        let sms_window = env.seconds("SMS_IDEMPOTENCY_WINDOW_SECS", DEFAULT_SMS_WINDOW)?;
        if sms_window < MIN_SMS_WINDOW {
            return Err(ConfigError {
                name: "SMS_IDEMPOTENCY_WINDOW_SECS",
                problem: format!(
                    "must be at least {} (18 days: the main queue's 4 days of retention plus the \
                     dead-letter queue's 14, during which a redrive can bring an event back)",
                    MIN_SMS_WINDOW.as_secs()
                ),
            });
        }
        Ok(Self {
            table_name: env.required("TABLE_NAME")?,
            twilio_secret_arn: env.required("TWILIO_SECRET_ARN")?,
            twilio_api_base: twilio_api_base(env)?,
            genesys_secret_arn: env.required("GENESYS_SECRET_ARN")?,
            genesys,
            status_callback_url: url(env, "STATUS_CALLBACK_URL")?,
            idempotency_window: env.seconds(
                "IDEMPOTENCY_WINDOW_SECS",
                crate::state::idempotency::DEFAULT_WINDOW,
            )?,
            sms_record_ttl: env
                .seconds("SMS_RECORD_TTL_SECS", Duration::from_secs(7 * 24 * 3600))?,
            sms_window,
            status_check_schedule: check_schedule(env)?,
            rules,
            secrets: SecretsPolicy::from_env(env)?,
            egress: EgressPolicy::new(
                env.parsed("FORWARD_ALLOW_HTTP_LOOPBACK", false, "true or false")?,
                EgressPolicy::parse_allow_list(
                    env.optional("FORWARD_ALLOW_CIDRS").as_deref().unwrap_or(""),
                )
                .map_err(|problem| ConfigError {
                    name: "FORWARD_ALLOW_CIDRS",
                    problem,
                })?,
            ),
            circuit: CircuitPolicy::default(),
        })
    }
}

/// The rules, from `RULES` (inline JSON) or `RULES_FILE`; none when neither is set.
fn rules<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Rules, ConfigError> {
    match (env.optional("RULES"), env.optional("RULES_FILE")) {
        (Some(_), Some(_)) => Err(ConfigError {
            name: "RULES",
            problem: "and RULES_FILE are both set; set one".into(),
        }),
        (Some(json), None) => Rules::parse(&json).map_err(|e| ConfigError {
            name: "RULES",
            problem: e.to_string(),
        }),
        (None, Some(path)) => {
            let json = std::fs::read_to_string(&path).map_err(|e| ConfigError {
                name: "RULES_FILE",
                problem: format!("cannot be read ({path}): {e}"),
            })?;
            Rules::parse(&json).map_err(|e| ConfigError {
                name: "RULES_FILE",
                problem: e.to_string(),
            })
        }
        (None, None) => Ok(Rules::default()),
    }
}

/// The processor's settings.
#[derive(Debug, Clone)]
pub struct ProcessorConfig {
    /// The queue it consumes (`QUEUE_URL`), for visibility backoff.
    pub queue_url: String,
    /// Where permanent failures go, with their reason (`DLQ_URL`).
    pub dlq_url: String,
    /// Records processed at once (`PROCESSOR_CONCURRENCY`).
    pub concurrency: usize,
    /// Longest visibility backoff after a retryable failure (`MAX_BACKOFF_SECS`).
    pub max_backoff: Duration,
    /// How long an event keeps being retried, counted from when it was queued
    /// (`RETRY_BUDGET_SECS`); then it is dead-lettered with its last reason.
    pub retry_budget: Duration,
    /// How long a conversation's `.outbound` context waits for its wrap-up (`CONTEXT_TTL_SECS`).
    pub context_ttl: Duration,
    /// Action settings.
    pub actions: ActionsConfig,
}

impl ProcessorConfig {
    /// Reads and validates the processor settings.
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let concurrency = env.parsed(
            "PROCESSOR_CONCURRENCY",
            10_usize,
            "a whole number from 1 to 100",
        )?;
        if !(1..=100).contains(&concurrency) {
            return Err(ConfigError {
                name: "PROCESSOR_CONCURRENCY",
                problem: "must be from 1 to 100".into(),
            });
        }
        let max_backoff = env.seconds("MAX_BACKOFF_SECS", Duration::from_secs(900))?;
        if max_backoff > Duration::from_secs(43_200) {
            return Err(ConfigError {
                name: "MAX_BACKOFF_SECS",
                problem: "must be at most 43200 (the SQS visibility limit)".into(),
            });
        }
        let retry_budget = env.seconds("RETRY_BUDGET_SECS", DEFAULT_RETRY_BUDGET)?;
        if retry_budget > MAX_RETRY_BUDGET || retry_budget < max_backoff {
            return Err(ConfigError {
                name: "RETRY_BUDGET_SECS",
                problem: format!(
                    "must be from MAX_BACKOFF_SECS ({}) to {} (3 days, inside the queue's 4-day \
                     retention)",
                    max_backoff.as_secs(),
                    MAX_RETRY_BUDGET.as_secs()
                ),
            });
        }
        Ok(Self {
            queue_url: env.required("QUEUE_URL")?,
            dlq_url: env.required("DLQ_URL")?,
            concurrency,
            max_backoff,
            retry_budget,
            context_ttl: env.seconds("CONTEXT_TTL_SECS", DEFAULT_CONTEXT_TTL)?,
            actions: ActionsConfig::from_env(env)?,
        })
    }
}

fn url<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
    name: &'static str,
) -> Result<Option<String>, ConfigError> {
    match env.optional(name) {
        Some(u) if u.starts_with("https://") || u.starts_with("http://") => {
            Ok(Some(u.trim_end_matches('/').to_owned()))
        }
        Some(u) => Err(ConfigError {
            name,
            problem: format!("must be an absolute http(s) URL (got {u:?})"),
        }),
        None => Ok(None),
    }
}

/// The EventBridge handler's settings: it only queues what the rules act on, so it needs neither
/// the state table nor any provider's credentials.
#[derive(Debug, Clone)]
pub struct EventBridgeConfig {
    /// Where events that are not Genesys events go, with their reason (`DLQ_URL`).
    pub dlq_url: String,
    /// The main queue (`QUEUE_URL`), where the processor acts on each event.
    pub queue_url: String,
    /// Where events too large for one queue message are stored (`CLAIM_CHECK_BUCKET`).
    pub claim_check_bucket: Option<String>,
    /// Which events are acted on (`RULES` or `RULES_FILE`): the same rules the processor reads.
    pub rules: Rules,
}

impl EventBridgeConfig {
    /// Reads and validates the EventBridge handler settings.
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        Ok(Self {
            dlq_url: env.required("DLQ_URL")?,
            queue_url: env.required("QUEUE_URL")?,
            claim_check_bucket: env.optional("CLAIM_CHECK_BUCKET"),
            rules: rules(env)?,
        })
    }
}

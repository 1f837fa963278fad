//! Secret values from Secrets Manager, cached and rotation-aware.
//!
//! Values are read with `VersionStage=AWSCURRENT` explicitly, kept for a bounded age, and parsed
//! once into typed values. After a failed verification a caller may force one re-read, at most once
//! per interval, so a rotated secret takes effect within seconds while bad requests cannot hammer
//! Secrets Manager. Values are `SecretString`s: they cannot be printed by accident.

use std::sync::Arc;

use secrecy::SecretString;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::config::SecretsPolicy;
use crate::error::{Error, Result};

/// Turns a raw secret string into a typed value; errors name fields, never values.
pub type Parser<T> = fn(&SecretString) -> Result<T>;

/// One secret, cached as its parsed value.
pub struct CachedSecret<T> {
    /// `None` for a value given up front ([`CachedSecret::fixed`]), which is never read again.
    client: Option<aws_sdk_secretsmanager::Client>,
    arn: String,
    policy: SecretsPolicy,
    parse: Parser<T>,
    state: Mutex<State<T>>,
}

struct State<T> {
    value: Option<(Arc<T>, Instant)>,
    /// Set when a downstream refused the cached value: it must not be served again.
    invalidated: bool,
    last_forced: Option<Instant>,
}

impl<T> CachedSecret<T> {
    /// A cache for the secret `arn`; nothing is read until first use.
    pub fn new(
        client: aws_sdk_secretsmanager::Client,
        arn: impl Into<String>,
        policy: SecretsPolicy,
        parse: Parser<T>,
    ) -> Self {
        Self {
            client: Some(client),
            arn: arn.into(),
            policy,
            parse,
            state: Mutex::new(State {
                value: None,
                invalidated: false,
                last_forced: None,
            }),
        }
    }

    /// A value known up front (the CLI's environment), served as is: a client built on it is the
    /// same client the functions use, and a refused value fails instead of being read again.
    /// `label` names it in messages, as an ARN would.
    pub fn fixed(label: impl Into<String>, value: T) -> Self {
        Self {
            client: None,
            arn: label.into(),
            policy: SecretsPolicy::default(),
            parse: |_| Err(Error::permanent("a fixed value is never parsed")),
            state: Mutex::new(State {
                value: Some((Arc::new(value), Instant::now())),
                invalidated: false,
                last_forced: None,
            }),
        }
    }

    /// The current value, read again once it is older than the policy's max age. Concurrent
    /// callers wait for one read instead of each making their own. When Secrets Manager cannot be
    /// reached but a value that was never refused is cached, that value is kept (with a warning).
    pub async fn current(&self) -> Result<Arc<T>> {
        let mut state = self.state.lock().await;
        if let Some((value, fetched_at)) = &state.value {
            if !state.invalidated && fetched_at.elapsed() < self.policy.max_age {
                return Ok(Arc::clone(value));
            }
        }
        match self.refresh(&mut state).await {
            Ok(value) => Ok(value),
            Err(error @ Error::Retryable { .. }) => match &state.value {
                Some((value, _)) if !state.invalidated => {
                    tracing::warn!(secret = %self.arn, reason = %error, "Secrets Manager unreachable; keeping the cached value");
                    Ok(Arc::clone(value))
                }
                _ => Err(error),
            },
            Err(error) => Err(error),
        }
    }

    /// Marks the cached value as refused by a downstream (an HTTP 401): the next [`Self::current`]
    /// reads the secret again, so a rotated credential is picked up on the first retry.
    pub async fn invalidate(&self) {
        self.state.lock().await.invalidated = true;
    }

    /// Reads the secret again after a verification failed with the cached value, unless a forced
    /// read happened within the policy's interval; `None` means "not now, keep the answer".
    pub async fn reread_after_failure(&self) -> Result<Option<Arc<T>>> {
        let mut state = self.state.lock().await;
        let now = Instant::now();
        if !may_force(state.last_forced, now, self.policy.refresh_min_interval) {
            return Ok(None);
        }
        state.last_forced = Some(now);
        self.refresh(&mut state).await.map(Some)
    }

    async fn refresh(&self, state: &mut State<T>) -> Result<Arc<T>> {
        let Some(client) = &self.client else {
            return state
                .value
                .as_ref()
                .map(|(value, _)| Arc::clone(value))
                .ok_or_else(|| Error::permanent(format!("{} holds no value", self.arn)));
        };
        let raw = fetch(client, &self.arn).await?;
        let value = Arc::new(
            (self.parse)(&raw)
                .map_err(|e| Error::permanent(format!("secret {}: {e}", self.arn)))?,
        );
        state.value = Some((Arc::clone(&value), Instant::now()));
        state.invalidated = false;
        Ok(value)
    }
}

fn may_force(last_forced: Option<Instant>, now: Instant, interval: std::time::Duration) -> bool {
    last_forced.is_none_or(|at| now.duration_since(at) >= interval)
}

/// Reads the `AWSCURRENT` version of a secret. Not found or not a string is a deployment error
/// (permanent); anything else may pass (retryable).
pub async fn fetch(client: &aws_sdk_secretsmanager::Client, arn: &str) -> Result<SecretString> {
    let output = client
        .get_secret_value()
        .secret_id(arn)
        .version_stage("AWSCURRENT")
        .send()
        .await
        .map_err(|e| {
            let service = e.as_service_error();
            if service.is_some_and(|s| s.is_resource_not_found_exception()) {
                Error::permanent(format!("secret {arn} does not exist"))
            } else {
                crate::aws::unavailable(&format!("read secret {arn}"), e)
            }
        })?;
    output
        .secret_string
        .map(SecretString::from)
        .ok_or_else(|| Error::permanent(format!("secret {arn} holds no string value")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn forced_rereads_are_limited_to_one_per_interval() {
        let now = Instant::now();
        let minute = Duration::from_secs(60);
        assert!(may_force(None, now, minute));
        assert!(!may_force(Some(now), now + Duration::from_secs(59), minute));
        assert!(may_force(Some(now), now + minute, minute));
    }
}

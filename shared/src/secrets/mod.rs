//! Secret values from Secrets Manager, cached and rotation-aware, and their rotation.
//!
//! Values are read with `VersionStage=AWSCURRENT` explicitly, kept for a bounded age, and parsed
//! once into typed values. After a failed verification a caller may force one re-read, at most once
//! per interval, so a rotated secret takes effect within seconds while bad requests cannot hammer
//! Secrets Manager. Values are `SecretString`s: they cannot be printed by accident.
//!
//! A key that a sender switches at its own pace (a webhook secret, a signing secret) is read
//! *overlapping* ([`CachedSecret::overlapping`]): the current value, the pending one while a
//! rotation brings it in, and the previous one for a grace period after, so no request fails while
//! either side changes. [`versions`] reads and moves the labels; [`rotation`] runs Secrets Manager's
//! four-step protocol with a [`strategy`] per kind of credential.

pub mod rotation;
pub mod strategy;
pub mod versions;

use std::sync::Arc;

use secrecy::SecretString;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::config::SecretsPolicy;
use crate::error::{Error, Result};
use versions::{SecretVersions, SecretsManagerVersions, CURRENT, PENDING, PREVIOUS};

/// Turns a raw secret string into a typed value; errors name fields, never values.
pub type Parser<T> = fn(&SecretString) -> Result<T>;

/// One secret, cached as its parsed value.
pub struct CachedSecret<T> {
    /// `None` for a value given up front ([`CachedSecret::fixed`]), which is never read again.
    client: Option<aws_sdk_secretsmanager::Client>,
    arn: String,
    policy: SecretsPolicy,
    parse: Parser<T>,
    /// Set for a key read overlapping: how the live values become one.
    merge: Option<fn(Vec<T>) -> T>,
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
            merge: None,
            state: Mutex::new(State {
                value: None,
                invalidated: false,
                last_forced: None,
            }),
        }
    }

    /// A cache for a key that may change at either end at its own pace: its value is every live
    /// version, parsed and joined by `merge`: the current one, the pending one during a rotation,
    /// and the previous one until the policy's `previous_grace` after the current one was made.
    pub fn overlapping(
        client: aws_sdk_secretsmanager::Client,
        arn: impl Into<String>,
        policy: SecretsPolicy,
        parse: Parser<T>,
        merge: fn(Vec<T>) -> T,
    ) -> Self {
        Self {
            merge: Some(merge),
            ..Self::new(client, arn, policy, parse)
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
            merge: None,
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

    /// A value newer than `seen`, the one a verification just failed with: the cached value when
    /// another caller has read the secret again since `seen` was served (concurrent failures
    /// during a rotation share one read), else one read now, at most once per the policy's
    /// interval; `None` means "nothing newer now, keep the answer".
    pub async fn fresher_than(&self, seen: &Arc<T>) -> Result<Option<Arc<T>>> {
        let mut state = self.state.lock().await;
        if let Some((value, _)) = &state.value {
            if !state.invalidated && !Arc::ptr_eq(value, seen) {
                return Ok(Some(Arc::clone(value)));
            }
        }
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
        let parse = |raw: &SecretString| {
            (self.parse)(raw).map_err(|e| Error::permanent(format!("secret {}: {e}", self.arn)))
        };
        let value = match self.merge {
            None => parse(&fetch(client, &self.arn).await?)?,
            Some(merge) => {
                let versions = SecretsManagerVersions::new(client.clone());
                let live = live_values(
                    &versions,
                    &self.arn,
                    self.policy.previous_grace,
                    std::time::SystemTime::now(),
                )
                .await?;
                let mut parsed = Vec::with_capacity(live.len());
                for (stage, raw) in live {
                    match parse(&raw) {
                        Ok(value) => parsed.push(value),
                        // The current value must parse; a bad pending or previous one is left out.
                        Err(error) if stage == CURRENT => return Err(error),
                        Err(error) => {
                            tracing::warn!(secret = %self.arn, stage, reason = %error, "left out a version that does not parse")
                        }
                    }
                }
                merge(parsed)
            }
        };
        let value = Arc::new(value);
        state.value = Some((Arc::clone(&value), Instant::now()));
        state.invalidated = false;
        Ok(value)
    }
}

/// The values a key is accepted in now, with their labels, current first: the current version,
/// the pending one (a rotation under way), and the previous one until `grace` after the current
/// one was created (the rotation that replaced it).
pub async fn live_values(
    versions: &dyn SecretVersions,
    secret: &str,
    grace: std::time::Duration,
    now: std::time::SystemTime,
) -> Result<Vec<(&'static str, SecretString)>> {
    let described = versions::Described {
        versions: versions.versions(secret).await?,
        ..versions::Described::default()
    };
    let current = described
        .with_stage(CURRENT)
        .ok_or_else(|| Error::permanent(format!("secret {secret} has no {CURRENT} version")))?;
    let mut wanted = vec![(CURRENT, current)];
    if let Some(pending) = described.half_rotated() {
        wanted.push((PENDING, pending));
    }
    if let Some(previous) = described.with_stage(PREVIOUS) {
        if now < current.created + grace {
            wanted.push((PREVIOUS, previous));
        }
    }
    let mut live = Vec::with_capacity(wanted.len());
    for (stage, version) in wanted {
        match versions.value(secret, &version.id).await? {
            Some(value) => live.push((stage, value)),
            None if stage == CURRENT => {
                return Err(Error::permanent(format!(
                    "secret {secret}: the {CURRENT} version holds no value"
                )))
            }
            // A rotation that has not stored its value yet.
            None => {}
        }
    }
    Ok(live)
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

    #[tokio::test]
    async fn the_live_values_are_current_pending_and_previous_within_its_grace() {
        use std::time::{Duration, SystemTime, UNIX_EPOCH};
        use versions::MemoryVersions;
        let at = |secs| UNIX_EPOCH + Duration::from_secs(secs);
        let stages = |live: Vec<(&'static str, SecretString)>| {
            live.into_iter()
                .map(|(stage, value)| {
                    (
                        stage,
                        secrecy::ExposeSecret::expose_secret(&value).to_owned(),
                    )
                })
                .collect::<Vec<_>>()
        };
        let versions = MemoryVersions::new("v1", "old", at(0), &[]);
        let grace = Duration::from_secs(600);
        let live = |now: SystemTime| live_values(&versions, "s", grace, now);
        assert_eq!(
            stages(live(at(1)).await.unwrap()),
            [(CURRENT, "old".to_owned())]
        );
        // A rotation under way whose value is not stored yet adds nothing.
        versions.start_rotation("v2", at(100));
        assert_eq!(live(at(100)).await.unwrap().len(), 1);
        versions
            .put_pending("s", "v2", &SecretString::from("new"))
            .await
            .unwrap();
        assert_eq!(
            stages(live(at(101)).await.unwrap()),
            [(CURRENT, "old".to_owned()), (PENDING, "new".to_owned())]
        );
        versions.promote("s", "v2", Some("v1")).await.unwrap();
        assert_eq!(
            stages(live(at(699)).await.unwrap()),
            [(CURRENT, "new".to_owned()), (PREVIOUS, "old".to_owned())]
        );
        assert_eq!(
            stages(live(at(700)).await.unwrap()),
            [(CURRENT, "new".to_owned())],
            "the previous value is refused once its grace has passed"
        );
    }
}

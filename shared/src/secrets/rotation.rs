//! Secrets Manager's rotation protocol: `createSecret`, `setSecret`, `testSecret` and
//! `finishSecret`, each for one `ClientRequestToken` (the version being brought in).
//!
//! Secrets Manager retries a step that failed, and may invoke one that already succeeded, so
//! every step checks what is done first: the pending value is made once per token, a step on a
//! version already current does nothing, and `finishSecret` moves `AWSCURRENT` to the token's
//! version (`AWSPREVIOUS` follows) only if it is not there yet. A failure before `finishSecret`
//! leaves `AWSCURRENT` where it was, so traffic keeps flowing on the current credential.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Deserialize;

use super::strategy::{Providers, Strategy};
use super::versions::{SecretVersions, CURRENT, PENDING};
use crate::error::{Error, Result};

/// One step of a rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Step {
    /// Make the new value and store it as pending.
    #[serde(rename = "createSecret")]
    Create,
    /// Tell the provider about the pending value, where it must be told.
    #[serde(rename = "setSecret")]
    Set,
    /// Prove the pending value works.
    #[serde(rename = "testSecret")]
    Test,
    /// Make the pending value current.
    #[serde(rename = "finishSecret")]
    Finish,
}

/// The event Secrets Manager invokes a rotation function with.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RotationEvent {
    /// Which step.
    pub step: Step,
    /// The secret's ARN.
    pub secret_id: String,
    /// The version being brought in.
    pub client_request_token: String,
}

/// What a step did, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Done {
    /// The step's work was done now.
    Now,
    /// The step found its work done already.
    Already,
}

/// Runs rotation steps.
pub struct Rotator {
    versions: Arc<dyn SecretVersions>,
    providers: Providers,
    grace: Duration,
}

impl Rotator {
    /// Steps on the secrets `versions` reads, calling `providers`; a replaced credential that
    /// must be deleted (a Twilio key) lives `grace` after it was replaced.
    pub fn new(versions: Arc<dyn SecretVersions>, providers: Providers, grace: Duration) -> Self {
        Self {
            versions,
            providers,
            grace,
        }
    }

    /// Runs `event`'s step at `now`.
    pub async fn run(&self, event: &RotationEvent, now: SystemTime) -> Result<Done> {
        let secret = event.secret_id.as_str();
        let token = event.client_request_token.as_str();
        let described = self.versions.describe(secret).await?;
        let strategy = Strategy::of(secret, &described)?;
        match described.version(token) {
            Some(version) if version.has(CURRENT) => return Ok(Done::Already),
            Some(version) if !version.has(PENDING) => {
                return Err(Error::permanent(format!(
                    "secret {secret}: version {token} is neither {PENDING} nor {CURRENT}"
                )))
            }
            // Secrets Manager makes the version before `createSecret`; a caller may leave that to
            // `createSecret` itself, but no other step.
            None if event.step != Step::Create => {
                return Err(Error::permanent(format!(
                    "secret {secret} has no version {token} to rotate to"
                )))
            }
            _ => {}
        }
        let current = described
            .with_stage(CURRENT)
            .ok_or_else(|| Error::permanent(format!("secret {secret} has no {CURRENT} version")))?;
        let pending = self.versions.value(secret, token).await?;
        match (event.step, pending) {
            (Step::Create, Some(_)) => Ok(Done::Already),
            (Step::Create, None) => {
                let value = self
                    .versions
                    .value(secret, &current.id)
                    .await?
                    .ok_or_else(|| {
                        Error::permanent(format!(
                            "secret {secret}: the {CURRENT} version holds no value"
                        ))
                    })?;
                // Boxed: the strategies' futures are deep, and each step needs only one of them.
                let new = Box::pin(strategy.create(&value, token, &self.providers)).await?;
                self.versions.put_pending(secret, token, &new).await?;
                Ok(Done::Now)
            }
            (_, None) => Err(Error::permanent(format!(
                "secret {secret}: version {token} holds no value; createSecret has not run"
            ))),
            (Step::Set, Some(value)) => {
                Box::pin(strategy.set(&value, &self.providers)).await?;
                Ok(Done::Now)
            }
            (Step::Test, Some(value)) => {
                Box::pin(strategy.test(&value, &self.providers)).await?;
                Ok(Done::Now)
            }
            (Step::Finish, Some(_)) => {
                self.versions
                    .promote(secret, token, Some(&current.id))
                    .await?;
                strategy
                    .finish(
                        secret,
                        self.versions.as_ref(),
                        &self.providers,
                        self.grace,
                        now,
                    )
                    .await?;
                Ok(Done::Now)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::GenesysEndpoints;
    use crate::secrets::strategy::STRATEGY_TAG;
    use crate::secrets::versions::{MemoryVersions, PREVIOUS};
    use std::time::UNIX_EPOCH;

    const SECRET: &str = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:relay/webhook";

    fn rotator(versions: Arc<MemoryVersions>) -> Rotator {
        let providers = Providers {
            http: reqwest::Client::new(),
            twilio_api_base: "http://127.0.0.1:9".into(),
            genesys: GenesysEndpoints::local("http://127.0.0.1:9"),
            genesys_admin: None,
        };
        Rotator::new(versions, providers, Duration::from_secs(3600))
    }

    /// A webhook secret at version `v1`, not rotating.
    fn webhook_secret() -> Arc<MemoryVersions> {
        Arc::new(MemoryVersions::new(
            "v1",
            "old-token",
            at(0),
            &[(STRATEGY_TAG, "webhook")],
        ))
    }

    fn event(step: Step, token: &str) -> RotationEvent {
        RotationEvent {
            step,
            secret_id: SECRET.into(),
            client_request_token: token.into(),
        }
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[tokio::test]
    async fn the_four_steps_bring_in_a_new_value_and_each_is_safe_to_run_again() {
        let versions = webhook_secret();
        let rotator = rotator(Arc::clone(&versions));
        versions.start_rotation("v2", at(100));
        for step in [Step::Create, Step::Set, Step::Test] {
            assert_eq!(
                rotator.run(&event(step, "v2"), at(100)).await.unwrap(),
                Done::Now
            );
            assert_eq!(
                versions.snapshot().with_stage(CURRENT).unwrap().id,
                "v1",
                "{step:?} leaves the current version in place"
            );
        }
        let created = versions.value_of("v2").unwrap();
        assert_ne!(created, "old-token");
        assert_eq!(
            rotator
                .run(&event(Step::Create, "v2"), at(101))
                .await
                .unwrap(),
            Done::Already,
            "the pending value is made once per token"
        );
        assert_eq!(versions.value_of("v2").unwrap(), created);
        assert_eq!(
            rotator
                .run(&event(Step::Finish, "v2"), at(102))
                .await
                .unwrap(),
            Done::Now
        );
        let after = versions.snapshot();
        assert_eq!(after.with_stage(CURRENT).unwrap().id, "v2");
        assert_eq!(after.with_stage(PREVIOUS).unwrap().id, "v1");
        for step in [Step::Create, Step::Set, Step::Test, Step::Finish] {
            assert_eq!(
                rotator.run(&event(step, "v2"), at(103)).await.unwrap(),
                Done::Already,
                "{step:?} again after the rotation"
            );
        }
    }

    #[tokio::test]
    async fn steps_refuse_a_version_that_is_not_being_rotated_to() {
        let versions = webhook_secret();
        let rotator = rotator(Arc::clone(&versions));
        for step in [Step::Set, Step::Test, Step::Finish] {
            let error = rotator.run(&event(step, "nope"), at(1)).await.unwrap_err();
            assert_eq!(error.class(), "permanent", "{step:?}");
        }
        versions.start_rotation("v2", at(1));
        let error = rotator
            .run(&event(Step::Test, "v2"), at(1))
            .await
            .unwrap_err();
        assert!(
            error.to_string().contains("createSecret has not run"),
            "{error}"
        );
        assert_eq!(versions.snapshot().with_stage(CURRENT).unwrap().id, "v1");
    }

    #[tokio::test]
    async fn a_secret_without_a_strategy_tag_is_not_rotated() {
        let versions = Arc::new(MemoryVersions::new("v1", "x", at(0), &[]));
        versions.start_rotation("v2", at(1));
        let error = rotator(Arc::clone(&versions))
            .run(&event(Step::Create, "v2"), at(1))
            .await
            .unwrap_err();
        assert!(error.to_string().contains(STRATEGY_TAG), "{error}");
        assert!(versions.value_of("v2").is_none());
    }

    #[test]
    fn the_event_reads_as_secrets_manager_sends_it() {
        let event: RotationEvent = serde_json::from_str(
            r#"{"Step": "finishSecret", "SecretId": "arn:x", "ClientRequestToken": "t-1", "RotationToken": "r"}"#,
        )
        .unwrap();
        assert_eq!(event.step, Step::Finish);
        assert_eq!(event.client_request_token, "t-1");
    }
}

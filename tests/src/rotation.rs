//! Driving a rotation as Secrets Manager would: tagging a secret with its strategy and invoking
//! the rotator with each step.

use std::collections::HashMap;

use genesys_relay::config::{Env, RotatorConfig};
use genesys_relay::secrets::rotation::{RotationEvent, Step};
use genesys_relay::secrets::strategy::STRATEGY_TAG;
use lambda_runtime::{Context, LambdaEvent};

use crate::providers::http_client;
use crate::LocalAws;

/// A rotation token as Secrets Manager makes them (32 to 64 characters).
pub fn token(n: u32) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

/// Tags `secret` with `value` under `key`.
pub async fn tag_with(aws: &LocalAws, secret: &str, key: &str, value: &str) {
    aws.secrets()
        .tag_resource()
        .secret_id(secret)
        .tags(
            aws_sdk_secretsmanager::types::Tag::builder()
                .key(key)
                .value(value)
                .build(),
        )
        .send()
        .await
        .expect("tag the secret");
}

/// Names how `secret` rotates.
pub async fn tag(aws: &LocalAws, secret: &str, strategy: &str) {
    tag_with(aws, secret, STRATEGY_TAG, strategy).await;
}

/// A rotator with `settings` on `aws`.
pub fn rotator(aws: &LocalAws, settings: &[(&str, String)]) -> rotator::Deps {
    let env: HashMap<String, String> = settings
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    let config =
        RotatorConfig::from_env(&Env::from_fn(|k| env.get(k).cloned())).expect("valid settings");
    rotator::Deps::new(config, &aws.sdk, http_client())
}

/// Runs one step; the error's text when it fails.
pub async fn step(
    deps: &rotator::Deps,
    secret: &str,
    step: Step,
    token: &str,
) -> Result<(), String> {
    let event = RotationEvent {
        step,
        secret_id: secret.to_owned(),
        client_request_token: token.to_owned(),
    };
    rotator::handle(LambdaEvent::new(event, Context::default()), deps)
        .await
        .map_err(|e| e.to_string())
}

/// Runs the four steps in order, each succeeding.
pub async fn rotate(deps: &rotator::Deps, secret: &str, token: &str) {
    for s in [Step::Create, Step::Set, Step::Test, Step::Finish] {
        if let Err(error) = step(deps, secret, s, token).await {
            panic!("{s:?} failed: {error}");
        }
    }
}

/// The value of `secret`'s version `version`.
pub async fn version_value(aws: &LocalAws, secret: &str, version: &str) -> String {
    aws.secrets()
        .get_secret_value()
        .secret_id(secret)
        .version_id(version)
        .send()
        .await
        .expect("read the version")
        .secret_string
        .expect("a string value")
}

/// The value of `secret` under `stage`.
pub async fn stage_value(aws: &LocalAws, secret: &str, stage: &str) -> String {
    aws.secrets()
        .get_secret_value()
        .secret_id(secret)
        .version_stage(stage)
        .send()
        .await
        .expect("read the stage")
        .secret_string
        .expect("a string value")
}

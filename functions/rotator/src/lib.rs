//! The rotator: Secrets Manager invokes it with each step of a rotation (`createSecret`,
//! `setSecret`, `testSecret`, `finishSecret`) of every secret that names it; the secret's
//! `genesys-relay:rotation` tag says how that credential rotates
//! ([`genesys_relay::secrets::strategy`]).
//!
//! A step that fails fails the invocation: Secrets Manager retries it, and after its retries marks
//! the rotation failed with `AWSCURRENT` still on the old value, which keeps working.

use std::sync::Arc;

use aws_config::SdkConfig;
use genesys_relay::clock::Clock;
use genesys_relay::config::RotatorConfig;
use genesys_relay::outbound::genesys::{GenesysClient, GenesysCredentials};
use genesys_relay::secrets::rotation::{Done, RotationEvent, Rotator};
use genesys_relay::secrets::strategy::Providers;
use genesys_relay::secrets::versions::{SecretVersions, SecretsManagerVersions};
use genesys_relay::secrets::CachedSecret;
use lambda_runtime::LambdaEvent;

/// Clients built once per cold start.
pub struct Deps {
    /// Runs the steps.
    pub rotator: Rotator,
    /// The time, for grace periods (tests move it forward instead of waiting).
    pub clock: Clock,
}

impl Deps {
    /// Builds the clients from one AWS configuration and one HTTP client; the Genesys admin
    /// client is read from its secret at its first use.
    pub fn new(config: RotatorConfig, aws: &SdkConfig, http: reqwest::Client) -> Self {
        let secrets = aws_sdk_secretsmanager::Client::new(aws);
        let genesys_admin = config.genesys_admin_secret_arn.as_ref().map(|arn| {
            GenesysClient::new(
                http.clone(),
                config.genesys.clone(),
                Arc::new(CachedSecret::new(
                    secrets.clone(),
                    arn.clone(),
                    config.secrets,
                    GenesysCredentials::parse,
                )),
            )
        });
        let versions: Arc<dyn SecretVersions> = Arc::new(SecretsManagerVersions::new(secrets));
        let providers = Providers {
            http,
            twilio_api_base: config.twilio_api_base,
            genesys: config.genesys,
            genesys_admin,
        };
        Self {
            rotator: Rotator::new(versions, providers, config.secrets.previous_grace),
            clock: genesys_relay::clock::system(),
        }
    }
}

/// Runs one rotation step.
pub async fn handle(
    event: LambdaEvent<RotationEvent>,
    deps: &Deps,
) -> Result<(), lambda_runtime::Error> {
    let step = &event.payload;
    match deps.rotator.run(step, (deps.clock)()).await {
        Ok(done) => {
            let outcome = match done {
                Done::Now => "done",
                Done::Already => "already done",
            };
            tracing::info!(secret = %step.secret_id, version = %step.client_request_token, step = ?step.step, outcome, "rotation step");
            Ok(())
        }
        Err(error) => {
            tracing::error!(secret = %step.secret_id, version = %step.client_request_token, step = ?step.step, class = %error.class(), reason = %error, "rotation step failed");
            Err(error.into())
        }
    }
}

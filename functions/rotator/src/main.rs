use genesys_relay::config::{Env, RotatorConfig};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use rotator::{handle, Deps};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = RotatorConfig::from_env(&Env::process())?;
    let deps = Deps::new(
        config,
        &genesys_relay::aws::load().await,
        genesys_relay::outbound::http::client()?,
    );
    lambda_runtime::run(service_fn(|event: LambdaEvent<_>| handle(event, &deps))).await
}

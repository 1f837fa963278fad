use eventbridge_handler::{handle, Deps};
use genesys_relay::config::{Env, EventBridgeConfig};
use lambda_runtime::{service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = EventBridgeConfig::from_env(&Env::process())?;
    let deps = Deps::new(config, &genesys_relay::aws::load().await);
    lambda_runtime::run(service_fn(|event: LambdaEvent<_>| handle(event, &deps))).await
}

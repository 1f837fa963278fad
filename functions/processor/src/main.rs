use genesys_relay::config::{Env, ProcessorConfig};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use processor::{handle, Deps};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = ProcessorConfig::from_env(&Env::process())?;
    let http = genesys_relay::outbound::http::client()?;
    let deps = Deps::new(config, &genesys_relay::aws::load().await, http).await?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<_>| handle(event, &deps))).await
}

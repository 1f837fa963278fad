use genesys_relay::config::{Env, ReceiverConfig};
use lambda_http::{service_fn, Error};
use receiver::{handle, Deps};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let config = ReceiverConfig::from_env(&Env::process())?;
    let deps = Deps::new(config, &genesys_relay::aws::load().await);
    lambda_http::run(service_fn(|request| async {
        Ok::<_, Error>(handle(request, &deps).await)
    }))
    .await
}

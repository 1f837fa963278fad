//! Twilio and Genesys stand-ins with their credentials in Secrets Manager, and the settings that
//! point the action clients at them: what every test of the actions starts from.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;

use crate::fakes::genesys::FakeGenesys;
use crate::fakes::twilio::FakeTwilio;
use crate::LocalAws;

/// Twilio account of the fake.
pub const TWILIO_ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
/// Its Auth Token.
pub const TWILIO_TOKEN: &str = "twilio-auth-token";
/// Name of the Twilio credentials secret.
pub const TWILIO_SECRET: &str = "twilio";
/// Name of the state table the settings name.
pub const TABLE: &str = "state";

/// The running fakes and their secrets' ARNs.
pub struct Providers {
    /// Fake Twilio.
    pub twilio: FakeTwilio,
    /// Fake Genesys Cloud.
    pub genesys: FakeGenesys,
    twilio_arn: String,
    genesys_arn: String,
}

impl Providers {
    /// Starts both fakes, stores their credentials in `aws` and creates the state table.
    pub async fn start(aws: &LocalAws) -> Self {
        aws.table(TABLE).await;
        let twilio_credentials = json!({"accountSid": TWILIO_ACCOUNT, "authToken": TWILIO_TOKEN});
        let twilio_arn = aws
            .secret(TWILIO_SECRET, &twilio_credentials.to_string())
            .await;
        let genesys_credentials = json!({"clientId": "relay", "clientSecret": "s3cret"});
        let genesys_arn = aws
            .secret("genesys", &genesys_credentials.to_string())
            .await;
        let twilio = FakeTwilio::start(
            TWILIO_ACCOUNT,
            vec![(TWILIO_ACCOUNT.into(), TWILIO_TOKEN.into())],
        )
        .await;
        let genesys = FakeGenesys::start("relay", "s3cret", 3600).await;
        Self {
            twilio,
            genesys,
            twilio_arn,
            genesys_arn,
        }
    }

    /// Settings for the action clients (table, secrets, provider base URLs), to extend per test.
    pub fn settings(&self) -> HashMap<&'static str, String> {
        HashMap::from([
            ("TABLE_NAME", TABLE.to_owned()),
            ("TWILIO_SECRET_ARN", self.twilio_arn.clone()),
            ("GENESYS_SECRET_ARN", self.genesys_arn.clone()),
            ("TWILIO_API_BASE", self.twilio.base_url()),
            ("GENESYS_API_BASE", self.genesys.base_url()),
            ("GENESYS_LOGIN_BASE", self.genesys.base_url()),
        ])
    }
}

/// The HTTP client the tests give the functions: short timeouts, so a hung fake fails fast.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("an HTTP client")
}

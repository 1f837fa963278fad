//! An event's X-Ray trace: the receiver's invocation trace header goes onto the queued message as
//! its `AWSTraceHeader`, where Lambda picks it up for the processor's invocation. Its own test
//! binary, since the header comes from the process environment as the Lambda runtime sets it.

use std::collections::HashMap;

use genesys_relay::config::{Env, ReceiverConfig};
use relay_tests::{http_api_request, sign, test_secrets, LocalAws};

const TRACE: &str = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";

#[tokio::test]
async fn the_receivers_trace_header_travels_with_the_queued_event() {
    let aws = LocalAws::start().await;
    let queue_url = aws.queue("main").await;
    let secret = aws
        .secret("genesys-webhook", test_secrets::GENESYS_WEBHOOK)
        .await;
    let env: HashMap<&str, String> = HashMap::from([
        ("QUEUE_URL", queue_url.clone()),
        ("GENESYS_WEBHOOK_SECRET_ARN", secret.clone()),
        ("TWILIO_SECRET_ARN", secret),
    ]);
    let config = ReceiverConfig::from_env(&Env::from_fn(|k| env.get(k).cloned())).unwrap();
    let deps = receiver::Deps::new(config, &aws.sdk);
    // What the Lambda runtime does at the start of each invocation.
    std::env::set_var("_X_AMZN_TRACE_ID", TRACE);
    let body = r#"{"eventBody": {"conversationId": "c1"}}"#;
    let signature = sign::hub_signature(test_secrets::GENESYS_WEBHOOK, body);
    let request = http_api_request(
        "POST",
        "/webhooks/genesys",
        &[
            ("content-type", "application/json"),
            ("x-hub-signature-256", &signature),
        ],
        body,
    );
    assert_eq!(receiver::handle(request, &deps).await.status(), 202);
    let messages = aws.messages(&queue_url).await;
    assert_eq!(messages.len(), 1);
    let attributes = messages[0].attributes().unwrap();
    assert_eq!(
        attributes
            .get(&aws_sdk_sqs::types::MessageSystemAttributeName::AwsTraceHeader)
            .map(String::as_str),
        Some(TRACE)
    );
}

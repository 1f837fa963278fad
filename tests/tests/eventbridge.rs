//! The EventBridge handler against a local AWS and local Twilio and Genesys servers.

use eventbridge_handler::{handle, Deps, Input};
use genesys_relay::config::{Env, EventBridgeConfig};
use genesys_relay::dead_letter;
use lambda_runtime::{Context, LambdaEvent};
use relay_tests::providers::{http_client, Providers};
use relay_tests::{attribute, sample_event, LocalAws};
use serde_json::{json, Value};

/// The customer in events/eventbridge-outbound.json.
const CUSTOMER: &str = "+14158675309";
const RULES: &str = r#"{"smsOnWrapup": {"templates": {"ININ-OUTBOUND-NO-ANSWER": "Sorry we missed you ({{campaignId}})."}, "from": "+15005550006"}}"#;

struct Stack {
    aws: LocalAws,
    dlq_url: String,
    providers: Providers,
    deps: Deps,
}

async fn stack() -> Stack {
    let aws = LocalAws::start().await;
    let dlq_url = aws.queue("dlq").await;
    let providers = Providers::start(&aws).await;
    let mut env = providers.settings();
    env.extend([("DLQ_URL", dlq_url.clone()), ("RULES", RULES.into())]);
    let config = EventBridgeConfig::from_env(&Env::from_fn(|k| env.get(k).cloned()))
        .expect("valid settings");
    let deps = Deps::new(config, &aws.sdk, http_client())
        .await
        .expect("clients");
    Stack {
        aws,
        dlq_url,
        providers,
        deps,
    }
}

/// A sample event from `events/`, with `edit` applied to its JSON.
fn event(file: &str, edit: impl FnOnce(&mut Value)) -> Input {
    let mut value: Value = serde_json::from_str(&sample_event(file)).unwrap();
    edit(&mut value);
    serde_json::from_value(value).unwrap()
}

fn outbound() -> Input {
    event("eventbridge-outbound.json", |_| {})
}

fn acw() -> Input {
    event("eventbridge-acw.json", |_| {})
}

impl Stack {
    async fn deliver(&self, input: Input) -> Result<(), lambda_runtime::Error> {
        handle(LambdaEvent::new(input, Context::default()), &self.deps).await
    }
}

#[tokio::test]
async fn outbound_then_a_configured_wrapup_texts_the_customer_once() {
    let stack = stack().await;
    stack.deliver(outbound()).await.unwrap();
    assert!(
        stack.providers.twilio.messages().is_empty(),
        "nothing is sent before the wrap-up"
    );
    stack.deliver(acw()).await.unwrap();
    let sent = stack.providers.twilio.messages();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to, CUSTOMER);
    assert_eq!(
        sent[0].body,
        "Sorry we missed you (a7b8c9d0-e1f2-4a3b-8c4d-5e6f7a8b9c0d)."
    );
}

#[tokio::test]
async fn a_wrapup_before_its_outbound_event_is_retried_then_succeeds() {
    let stack = stack().await;
    let error = stack
        .deliver(acw())
        .await
        .expect_err("retried, not dropped");
    assert!(error.to_string().contains("before its outbound"), "{error}");
    assert!(
        stack.providers.twilio.messages().is_empty(),
        "nobody is texted without the outbound context"
    );
    stack.deliver(outbound()).await.unwrap();
    stack.deliver(acw()).await.unwrap();
    assert_eq!(stack.providers.twilio.messages().len(), 1);
    assert_eq!(stack.providers.twilio.messages()[0].to, CUSTOMER);
}

#[tokio::test]
async fn a_redelivered_copy_with_a_new_eventbridge_id_sends_nothing_more() {
    let stack = stack().await;
    stack.deliver(outbound()).await.unwrap();
    stack.deliver(acw()).await.unwrap();
    let copy = event("eventbridge-acw-redelivered.json", |_| {});
    stack.deliver(copy).await.unwrap();
    assert_eq!(stack.providers.twilio.messages().len(), 1);
}

#[tokio::test]
async fn a_wrapup_code_that_is_not_configured_does_nothing() {
    let stack = stack().await;
    stack.deliver(outbound()).await.unwrap();
    let sale = event("eventbridge-acw-other-code.json", |_| {});
    stack.deliver(sale).await.unwrap();
    assert!(stack.providers.twilio.requests().is_empty());
    assert!(stack.aws.messages(&stack.dlq_url).await.is_empty());
}

#[tokio::test]
async fn an_older_event_arriving_late_does_not_overwrite_newer_state() {
    let stack = stack().await;
    stack.deliver(outbound()).await.unwrap();
    // An earlier outbound event of the same conversation, for another number, arrives late.
    let older = event("eventbridge-outbound-stale.json", |_| {});
    stack.deliver(older).await.unwrap();
    stack.deliver(acw()).await.unwrap();
    assert_eq!(
        stack.providers.twilio.messages()[0].to,
        CUSTOMER,
        "the newer context stood"
    );

    // A wrap-up older than one already applied is stale: no second SMS.
    let stale = event("eventbridge-acw.json", |v| {
        v["detail"]["eventBody"]["eventTime"] = json!(1795150798000_i64)
    });
    stack.deliver(stale).await.unwrap();
    assert_eq!(stack.providers.twilio.messages().len(), 1);
}

#[tokio::test]
async fn unknown_topics_are_ignored_and_unreadable_events_dead_lettered() {
    let stack = stack().await;
    let end = event("eventbridge-customer-end.json", |_| {});
    stack.deliver(end).await.unwrap();
    assert!(stack.aws.messages(&stack.dlq_url).await.is_empty());

    let unreadable = event("eventbridge-acw.json", |v| {
        v["detail"] = json!({"unexpected": true})
    });
    stack.deliver(unreadable).await.unwrap();
    let dead = stack.aws.messages(&stack.dlq_url).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(
        attribute(&dead[0], dead_letter::attr::ERROR_CLASS).as_deref(),
        Some("permanent")
    );
    assert!(attribute(&dead[0], dead_letter::attr::ERROR_MESSAGE)
        .unwrap()
        .contains("not a Genesys event"));
    assert!(stack.providers.twilio.requests().is_empty());
}

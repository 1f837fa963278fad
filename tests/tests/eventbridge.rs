//! The EventBridge path against a local AWS and local Twilio and Genesys servers: the handler
//! queues what the rules act on, the processor acts on it.

use std::time::Duration;

use eventbridge_handler::{handle, Deps, Input};
use genesys_relay::clock;
use genesys_relay::config::{Env, EventBridgeConfig, ProcessorConfig};
use genesys_relay::dead_letter;
use lambda_runtime::{Context, LambdaEvent};
use relay_tests::fakes::twilio::Reply;
use relay_tests::providers::{http_client, Providers};
use relay_tests::{attribute, sample_event, LocalAws};
use serde_json::{json, Value};

/// The customer in events/eventbridge-outbound.json.
const CUSTOMER: &str = "+14158675309";
const RULES: &str = r#"{"smsOnWrapup": {"templates": {"ININ-OUTBOUND-NO-ANSWER": "Sorry we missed you ({{campaignId}})."}, "from": "+15005550006"}}"#;

struct Stack {
    aws: LocalAws,
    queue_url: String,
    dlq_url: String,
    providers: Providers,
    handler: Deps,
    processor: processor::Deps,
}

async fn stack() -> Stack {
    stack_on("main", "dlq").await
}

/// A stack on the queues named `main` and `dlq` (`.fifo` names make FIFO queues).
async fn stack_on(main: &str, dlq: &str) -> Stack {
    let aws = LocalAws::start().await;
    let dlq_url = aws.queue(dlq).await;
    let queue_url = aws.queue(main).await;
    let providers = Providers::start(&aws).await;
    let mut env = providers.settings();
    env.extend([
        ("QUEUE_URL", queue_url.clone()),
        ("DLQ_URL", dlq_url.clone()),
        ("RULES", RULES.into()),
    ]);
    let env = Env::from_fn(|k| env.get(k).cloned());
    let handler = Deps::new(
        EventBridgeConfig::from_env(&env).expect("valid settings"),
        &aws.sdk,
    );
    let processor = processor::Deps::new(
        ProcessorConfig::from_env(&env).expect("valid settings"),
        &aws.sdk,
        http_client(),
    )
    .await
    .expect("clients");
    Stack {
        aws,
        queue_url,
        dlq_url,
        providers,
        handler,
        processor,
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
    /// The rule invokes the handler with `input`.
    async fn invoke(&self, input: Input) -> Result<(), lambda_runtime::Error> {
        handle(LambdaEvent::new(input, Context::default()), &self.handler).await
    }

    /// The processor runs over what the main queue shows now; what failed is made visible again
    /// at once. Returns the number of records and of failures.
    async fn process(&self) -> (usize, usize) {
        let batch = self.aws.receive_batch(&self.queue_url, 60).await;
        let response = processor::handle(
            LambdaEvent::new(batch.clone(), Context::default()),
            &self.processor,
        )
        .await
        .expect("handler");
        let failed: Vec<_> = batch
            .records
            .iter()
            .filter(|r| {
                response
                    .batch_item_failures
                    .iter()
                    .any(|f| Some(&f.item_identifier) == r.message_id.as_ref())
            })
            .collect();
        self.aws.show_again(&self.queue_url, failed.clone()).await;
        (batch.records.len(), failed.len())
    }

    /// The handler, then the processor until the queue is empty.
    async fn deliver(&self, input: Input) {
        self.invoke(input).await.expect("queued");
        for round in 0.. {
            assert!(round < 10, "the queue drains");
            if self.process().await == (0, 0) {
                return;
            }
        }
    }

    async fn queued(&self) -> usize {
        self.aws.messages(&self.queue_url).await.len()
    }
}

#[tokio::test]
async fn outbound_then_a_configured_wrapup_texts_the_customer_once() {
    let stack = stack().await;
    stack.deliver(outbound()).await;
    assert!(
        stack.providers.twilio.messages().is_empty(),
        "nothing is sent before the wrap-up"
    );
    stack.deliver(acw()).await;
    let sent = stack.providers.twilio.messages();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to, CUSTOMER);
    assert_eq!(
        sent[0].body,
        "Sorry we missed you (a7b8c9d0-e1f2-4a3b-8c4d-5e6f7a8b9c0d)."
    );
}

#[tokio::test]
async fn a_wrapup_before_its_outbound_event_waits_on_the_queue_then_texts() {
    let stack = stack().await;
    stack.invoke(acw()).await.expect("queued");
    assert_eq!(stack.process().await, (1, 1), "retried, not dropped");
    assert!(
        stack.providers.twilio.messages().is_empty(),
        "nobody is texted without the outbound context"
    );
    stack.deliver(outbound()).await;
    assert_eq!(stack.providers.twilio.messages().len(), 1);
    assert_eq!(stack.providers.twilio.messages()[0].to, CUSTOMER);
    assert!(stack.aws.messages(&stack.dlq_url).await.is_empty());
}

#[tokio::test]
async fn on_a_fifo_queue_a_wrapup_before_its_outbound_event_is_not_stuck_behind_it() {
    // The `.outbound` the wrap-up waits for is queued after it: in one message group it could
    // never be received while the wrap-up waits, and the wrap-up would be dead-lettered at the
    // retry budget.
    let stack = stack_on("main.fifo", "dlq.fifo").await;
    stack.invoke(acw()).await.expect("queued");
    assert_eq!(stack.process().await, (1, 1), "retried, not dropped");
    stack.invoke(outbound()).await.expect("queued");
    // Rounds until the text goes out (the SMS's status check then waits on the queue, as a FIFO
    // queue holds no delayed message).
    for round in 0.. {
        assert!(round < 5, "the wrap-up is texted");
        stack.process().await;
        if !stack.providers.twilio.messages().is_empty() {
            break;
        }
    }
    stack.process().await;
    let sent = stack.providers.twilio.messages();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to, CUSTOMER);
    assert!(stack.aws.messages(&stack.dlq_url).await.is_empty());
}

#[tokio::test]
async fn a_wrapup_whose_outbound_never_comes_is_dead_lettered_with_the_reason_at_the_budget() {
    let mut stack = stack().await;
    stack.invoke(acw()).await.expect("queued");
    assert_eq!(stack.process().await, (1, 1));
    stack.processor.clock = clock::ahead(stack.processor.config.retry_budget);
    assert_eq!(stack.process().await, (1, 0), "dead-lettered");
    let letters = stack.aws.messages(&stack.dlq_url).await;
    assert_eq!(letters.len(), 1);
    let reason = attribute(&letters[0], dead_letter::attr::ERROR_MESSAGE).unwrap();
    assert!(reason.contains("retry budget"), "{reason}");
    assert!(reason.contains("before its outbound"), "{reason}");
    assert!(stack.providers.twilio.messages().is_empty());
}

#[tokio::test]
async fn a_twilio_outage_longer_than_lambdas_retries_keeps_the_wrapup_queued_then_texts_once() {
    let mut stack = stack().await;
    stack.deliver(outbound()).await;
    stack.invoke(acw()).await.expect("queued");
    // Lambda's asynchronous retries of a failing invocation are spent within about three
    // minutes; on the queue, the wrap-up is retried for the retry budget.
    for minutes in [0, 1, 3, 10, 30, 90] {
        stack.providers.twilio.script(vec![Reply::Status(503)]);
        stack.processor.clock = clock::ahead(Duration::from_secs(minutes * 60));
        assert_eq!(stack.process().await, (1, 1), "at {minutes} min");
    }
    assert!(stack.aws.messages(&stack.dlq_url).await.is_empty());
    assert_eq!(stack.process().await, (1, 0), "Twilio is back");
    let sent = stack.providers.twilio.messages();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to, CUSTOMER);
}

#[tokio::test]
async fn a_redelivered_copy_with_a_new_eventbridge_id_sends_nothing_more() {
    let stack = stack().await;
    stack.deliver(outbound()).await;
    stack.deliver(acw()).await;
    let copy = event("eventbridge-acw-redelivered.json", |_| {});
    stack.deliver(copy).await;
    assert_eq!(stack.providers.twilio.messages().len(), 1);
}

#[tokio::test]
async fn a_wrapup_code_that_is_not_configured_does_nothing() {
    let stack = stack().await;
    stack.deliver(outbound()).await;
    let sale = event("eventbridge-acw-other-code.json", |_| {});
    stack.deliver(sale).await;
    assert!(stack.providers.twilio.requests().is_empty());
    assert!(stack.aws.messages(&stack.dlq_url).await.is_empty());
}

#[tokio::test]
async fn an_older_event_arriving_late_does_not_overwrite_newer_state() {
    let stack = stack().await;
    stack.deliver(outbound()).await;
    // An earlier outbound event of the same conversation, for another number, arrives late.
    let older = event("eventbridge-outbound-stale.json", |_| {});
    stack.deliver(older).await;
    stack.deliver(acw()).await;
    assert_eq!(
        stack.providers.twilio.messages()[0].to,
        CUSTOMER,
        "the newer context stood"
    );

    // A wrap-up older than one already applied is stale: no second SMS.
    let stale = event("eventbridge-acw.json", |v| {
        v["detail"]["eventBody"]["eventTime"] = json!(1795150798000_i64)
    });
    stack.deliver(stale).await;
    assert_eq!(stack.providers.twilio.messages().len(), 1);
}

#[tokio::test]
async fn unknown_topics_are_not_queued_and_unreadable_events_dead_lettered() {
    let stack = stack().await;
    let end = event("eventbridge-customer-end.json", |_| {});
    stack.invoke(end).await.expect("handled");
    assert_eq!(stack.queued().await, 0, "no rule acts on it");
    assert!(stack.aws.messages(&stack.dlq_url).await.is_empty());

    let unreadable = event("eventbridge-acw.json", |v| {
        v["detail"] = json!({"unexpected": true})
    });
    stack.invoke(unreadable).await.expect("handled");
    let dead = stack.aws.messages(&stack.dlq_url).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(
        attribute(&dead[0], dead_letter::attr::ERROR_CLASS).as_deref(),
        Some("permanent")
    );
    assert!(attribute(&dead[0], dead_letter::attr::ERROR_MESSAGE)
        .unwrap()
        .contains("not a Genesys event"));
    assert_eq!(stack.queued().await, 0);
    assert!(stack.providers.twilio.requests().is_empty());
}

#[tokio::test]
async fn the_detail_is_queued_as_it_came_and_the_handler_fails_when_the_queue_does_not_take_it() {
    let mut stack = stack().await;
    // A field the model does not name stays in what is queued (and forwarded).
    let extended = event("eventbridge-outbound.json", |v| {
        v["detail"]["extension"] = json!({"tier": "gold"})
    });
    stack.invoke(extended).await.expect("queued");
    let queued = stack.aws.messages(&stack.queue_url).await;
    let body: Value = serde_json::from_str(queued[0].body.as_deref().unwrap()).unwrap();
    assert_eq!(body["extension"]["tier"], "gold", "{body}");

    // With the queue unreachable the invocation fails, so Lambda retries it.
    stack.aws.stop();
    assert!(stack.invoke(acw()).await.is_err());
}

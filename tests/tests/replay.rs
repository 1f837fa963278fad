//! Paths back into the pipeline, over time: a redrive long after the event, an outage of many
//! minutes, a redelivered EventBridge copy. Time is moved forward through the functions' clocks
//! and the queue's own timestamps, never waited for.

use std::collections::HashMap;
use std::time::Duration;

use aws_lambda_events::event::sqs::SqsEvent;
use genesys_relay::clock;
use genesys_relay::config::{Env, EventBridgeConfig, ProcessorConfig};
use genesys_relay::dead_letter;
use genesys_relay::inbound::event::EventKey;
use genesys_relay::inbound::queue::{Envelope, MediaType, QueueSender, Source};
use lambda_runtime::{Context, LambdaEvent};
use processor::backoff;
use relay_tests::fakes::downstream::Downstream;
use relay_tests::fakes::twilio::Reply;
use relay_tests::providers::{http_client, Providers};
use relay_tests::{attribute, sample_event, LocalAws};
use serde_json::{json, Value};
use time::OffsetDateTime;

const CUSTOMER: &str = "+14158675309";
const HOUR: Duration = Duration::from_secs(3600);

struct Stack {
    aws: LocalAws,
    queue_url: String,
    dlq_url: String,
    providers: Providers,
    downstream: Downstream,
    env: HashMap<&'static str, String>,
}

/// A local AWS, the providers and a downstream endpoint `crm` that wants every event.
async fn stack() -> Stack {
    let aws = LocalAws::start().await;
    let queue_url = aws.queue("main").await;
    let dlq_url = aws.queue("dlq").await;
    let providers = Providers::start(&aws).await;
    let downstream = Downstream::start().await;
    let rules = json!({
        "smsOnWrapup": {"templates": {"ININ-OUTBOUND-NO-ANSWER": "Sorry we missed you."}, "from": "+15005550006"},
        "forward": {"endpoints": [{"name": "crm", "url": downstream.url("/crm")}]}
    });
    let mut env = providers.settings();
    env.extend([
        ("QUEUE_URL", queue_url.clone()),
        ("DLQ_URL", dlq_url.clone()),
        ("FORWARD_ALLOW_HTTP_LOOPBACK", "true".into()),
        ("RULES", rules.to_string()),
    ]);
    Stack {
        aws,
        queue_url,
        dlq_url,
        providers,
        downstream,
        env,
    }
}

impl Stack {
    async fn processor(&self) -> processor::Deps {
        self.processor_with(&[]).await
    }

    /// The processor of a stack deployed with `overrides` over this one's settings.
    async fn processor_with(&self, overrides: &[(&str, &str)]) -> processor::Deps {
        let mut env = self.env.clone();
        env.extend(overrides.iter().map(|(k, v)| (*k, (*v).to_owned())));
        let config = ProcessorConfig::from_env(&Env::from_fn(|k| env.get(k).cloned()))
            .expect("valid settings");
        processor::Deps::new(config, &self.aws.sdk, http_client())
            .await
            .expect("clients")
    }

    fn handler(&self) -> eventbridge_handler::Deps {
        let config = EventBridgeConfig::from_env(&Env::from_fn(|k| self.env.get(k).cloned()))
            .expect("valid settings");
        eventbridge_handler::Deps::new(config, &self.aws.sdk)
    }

    async fn enqueue_wrapup(&self) {
        self.enqueue_wrapup_on(&self.queue_url).await;
    }

    /// The wrap-up event as the receiver queues it, onto `queue_url`.
    async fn enqueue_wrapup_on(&self, queue_url: &str) {
        let body = json!({
            "topicName": "v2.detail.events.conversation.c1.acw",
            "eventBody": {"conversationId": "c1", "participantId": "p1", "eventTime": 1795150799000_i64,
                          "wrapupCode": "ININ-OUTBOUND-NO-ANSWER", "addressTo": format!("tel:{CUSTOMER}")}
        });
        let envelope = Envelope {
            event_key: EventKey::from_parts(&["c1", "acw"]),
            source: Source::GenesysWebhook,
            received_at: OffsetDateTime::now_utc(),
            content_type: MediaType::Json,
            correlation_id: None,
            group_id: "c1".into(),
        };
        QueueSender::new(self.aws.sqs(), queue_url.to_owned(), None, 240 * 1024)
            .send(&envelope, body.to_string())
            .await
            .expect("enqueue");
    }

    /// Runs the processor over what the main queue shows now; returns the failed ids.
    async fn process(&self, deps: &processor::Deps) -> (SqsEvent, Vec<String>) {
        self.process_queue(deps, &self.queue_url).await
    }

    /// Runs the processor `deps` over what `queue_url` shows now; returns the failed ids.
    async fn process_queue(
        &self,
        deps: &processor::Deps,
        queue_url: &str,
    ) -> (SqsEvent, Vec<String>) {
        let batch = self.aws.receive_batch(queue_url, 60).await;
        let response = processor::handle(LambdaEvent::new(batch.clone(), Context::default()), deps)
            .await
            .expect("handler");
        let failed = response
            .batch_item_failures
            .into_iter()
            .map(|f| f.item_identifier)
            .collect();
        (batch, failed)
    }

    /// What `relay dlq redrive` does for a queue-shaped letter: the body and attributes back on
    /// the main queue, the letter deleted. `letters` were received from the DLQ (and are hidden
    /// there until deleted).
    async fn redrive(&self, letters: &[aws_sdk_sqs::types::Message]) {
        self.redrive_into(letters, &self.queue_url).await;
    }

    /// [`Self::redrive`] onto `queue_url`, another stack's main queue.
    async fn redrive_into(&self, letters: &[aws_sdk_sqs::types::Message], queue_url: &str) {
        let sqs = self.aws.sqs();
        for letter in letters {
            sqs.send_message()
                .queue_url(queue_url)
                .message_body(letter.body.clone().unwrap_or_default())
                .set_message_attributes(letter.message_attributes.clone())
                .send()
                .await
                .expect("send back");
            sqs.delete_message()
                .queue_url(&self.dlq_url)
                .receipt_handle(letter.receipt_handle.clone().unwrap_or_default())
                .send()
                .await
                .expect("delete");
        }
    }
}

/// The default of the template's `MaxReceiveCount` parameter: after that many receives SQS moves
/// a message to the DLQ whatever the processor decided.
fn template_max_receive_count() -> u32 {
    let template = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml"),
    )
    .expect("template.yaml");
    let parameter = template
        .split("\n  MaxReceiveCount:\n")
        .nth(1)
        .expect("a MaxReceiveCount parameter");
    parameter
        .lines()
        .find_map(|line| line.trim().strip_prefix("Default:"))
        .and_then(|value| value.trim().parse().ok())
        .expect("its default")
}

#[tokio::test]
async fn a_redrive_long_after_the_event_never_texts_the_customer_again() {
    let stack = stack().await;
    // The endpoint refuses the delivery: forwarding gives up and dead-letters it.
    stack.downstream.always("/crm", 400);
    let deps = stack.processor().await;
    stack.enqueue_wrapup().await;
    let (_, failed) = stack.process(&deps).await;
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(stack.providers.twilio.messages().len(), 1);
    let letters = stack.aws.messages(&stack.dlq_url).await;
    assert_eq!(letters.len(), 1);
    assert_eq!(
        attribute(&letters[0], dead_letter::attr::ACTION).as_deref(),
        Some("forward:crm")
    );
    assert_eq!(
        attribute(&letters[0], genesys_relay::outbound::forward::ATTRIBUTE).as_deref(),
        Some("crm;1;0"),
        "the letter is that endpoint's delivery alone"
    );

    // Two days later (past the general 24-hour idempotency window), the endpoint is fixed and
    // the operator redrives the dead letter.
    let mut later = stack.processor().await;
    later.idempotency = later
        .idempotency
        .clone()
        .with_clock(clock::ahead(48 * HOUR));
    later.clock = clock::ahead(48 * HOUR);
    stack.downstream.always("/crm", 200);
    stack.redrive(&letters).await;
    let (_, failed) = stack.process(&later).await;
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(
        stack.providers.twilio.messages().len(),
        1,
        "the customer is not texted again"
    );
    let delivered: Vec<_> = stack
        .downstream
        .received("/crm")
        .into_iter()
        .filter(|r| r.status == 200)
        .collect();
    assert_eq!(delivered.len(), 1, "the failed delivery is made, once");
    assert!(stack.aws.messages(&stack.dlq_url).await.is_empty());
}

/// A stack deleted with its data kept (the template's `DataDeletionPolicy` default), then a new
/// stack that takes its table over (`ExistingStateTableName`): redriving the old stack's letters
/// into the new stack texts no one again. A new stack with a table of its own would.
#[tokio::test]
async fn a_new_stack_that_takes_over_the_kept_table_redrives_old_letters_without_texting_again() {
    let stack = stack().await;
    stack.downstream.always("/crm", 200);
    let old = stack.processor().await;
    stack.enqueue_wrapup().await;
    let (_, failed) = stack.process(&old).await;
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(stack.providers.twilio.messages().len(), 1);
    // The old processor texted, then kept dying before it could delete the message (a timeout,
    // each receive), until SQS moved the event to the dead-letter queue as it was queued.
    stack.enqueue_wrapup_on(&stack.dlq_url).await;
    let letters = stack.aws.messages(&stack.dlq_url).await;
    assert_eq!(letters.len(), 1);

    // The stack is deleted; a new one comes up with queues of its own and the kept table.
    let new_queue = stack.aws.queue("main-new").await;
    let new_dlq = stack.aws.queue("dlq-new").await;
    let table = stack.env["TABLE_NAME"].clone();
    let new = stack
        .processor_with(&[
            ("QUEUE_URL", &new_queue),
            ("DLQ_URL", &new_dlq),
            ("TABLE_NAME", &table),
        ])
        .await;
    stack.redrive_into(&letters, &new_queue).await;
    let (_, failed) = stack.process_queue(&new, &new_queue).await;
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(
        stack.providers.twilio.messages().len(),
        1,
        "the customer is not texted again"
    );
    assert_eq!(
        stack.downstream.received("/crm").len(),
        1,
        "nor forwarded again"
    );
    assert!(stack.aws.messages(&new_dlq).await.is_empty());

    // What the kept table prevents: a new stack with a table of its own takes the same event
    // for a new one.
    stack.aws.table("state-new").await;
    let fresh = stack
        .processor_with(&[
            ("QUEUE_URL", &new_queue),
            ("DLQ_URL", &new_dlq),
            ("TABLE_NAME", "state-new"),
        ])
        .await;
    stack.enqueue_wrapup_on(&new_queue).await;
    let (_, failed) = stack.process_queue(&fresh, &new_queue).await;
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(stack.providers.twilio.messages().len(), 2);
}

#[tokio::test]
async fn a_ten_minute_twilio_outage_dead_letters_nothing_and_texts_once_after() {
    let stack = stack().await;
    stack.downstream.always("/crm", 200);
    let mut deps = stack.processor().await;
    stack.enqueue_wrapup().await;
    // Twilio answers 503 to everything for ten minutes of the processor's time. Each receive,
    // the clock moves on by the shortest backoff the processor may have chosen (so there are
    // at least as many receives as there would be), and the message is made visible at once.
    let mut elapsed = Duration::ZERO;
    let mut receives = 0;
    while elapsed < Duration::from_secs(600) {
        stack.providers.twilio.script(vec![Reply::Status(503)]);
        deps.clock = clock::ahead(elapsed);
        let (batch, failed) = stack.process(&deps).await;
        assert_eq!(batch.records.len(), 1, "the event is still queued");
        assert_eq!(failed.len(), 1, "retried, not dead-lettered");
        receives += 1;
        elapsed += backoff::visibility_delay(receives, None, deps.config.max_backoff, 0.0);
        let sqs = stack.aws.sqs();
        sqs.change_message_visibility()
            .queue_url(&stack.queue_url)
            .receipt_handle(batch.records[0].receipt_handle.clone().unwrap_or_default())
            .visibility_timeout(0)
            .send()
            .await
            .expect("visible again");
    }
    assert!(stack.aws.messages(&stack.dlq_url).await.is_empty());
    let backstop = template_max_receive_count();
    assert!(
        receives < backstop,
        "{receives} receives must stay under the template's MaxReceiveCount ({backstop}), or SQS \
         moves the event to the DLQ without a reason"
    );
    // Twilio is back.
    deps.clock = clock::ahead(elapsed);
    let (_, failed) = stack.process(&deps).await;
    assert!(failed.is_empty(), "{failed:?}");
    let sent: Vec<_> = stack
        .providers
        .twilio
        .messages()
        .into_iter()
        .filter(|m| m.to == CUSTOMER)
        .collect();
    assert_eq!(sent.len(), 1);
    assert!(stack.aws.messages(&stack.dlq_url).await.is_empty());
    assert_eq!(stack.downstream.received("/crm").len(), 1);
}

#[tokio::test]
async fn a_spent_retry_budget_dead_letters_with_the_reason() {
    let stack = stack().await;
    let mut deps = stack.processor().await;
    stack.enqueue_wrapup().await;
    stack.providers.twilio.script(vec![Reply::Status(503)]);
    deps.clock = clock::ahead(deps.config.retry_budget);
    let (_, failed) = stack.process(&deps).await;
    assert!(failed.is_empty(), "dead-lettered, not retried");
    let letters = stack.aws.messages(&stack.dlq_url).await;
    assert_eq!(letters.len(), 1);
    let reason = attribute(&letters[0], dead_letter::attr::ERROR_MESSAGE).unwrap();
    assert!(reason.contains("retry budget"), "{reason}");
    assert!(reason.contains("503"), "{reason}");
}

/// The copy is what Genesys' redelivery (a new `id`, `time` and `detail.timestamp`) or a replay
/// from the stack's archive (which adds `replay-name`) brings.
#[tokio::test]
async fn an_eventbridge_copy_differing_only_in_its_envelope_is_a_duplicate_everywhere() {
    let stack = stack().await;
    stack.downstream.always("/crm", 200);
    let handler = stack.handler();
    let deps = stack.processor().await;
    let original: Value = serde_json::from_str(&sample_event("eventbridge-acw.json")).unwrap();
    let mut copy = original.clone();
    copy["id"] = json!("0d3e1c2b-9a8f-4e7d-8c6b-5a4f3e2d1c0b");
    copy["time"] = json!("2026-11-22T05:02:00Z");
    copy["detail"]["timestamp"] = json!("2026-11-22T05:02:00.123Z");
    copy["replay-name"] = json!("genesys-relay-replay");
    let outbound: Value = serde_json::from_str(&sample_event("eventbridge-outbound.json")).unwrap();
    for event in [outbound, original, copy] {
        let input = serde_json::from_value(event).unwrap();
        eventbridge_handler::handle(LambdaEvent::new(input, Context::default()), &handler)
            .await
            .expect("handled");
    }
    // Both copies reach one batch: the second waits for the first's claim, then is a duplicate;
    // a wrap-up processed before its outbound event waits for it.
    for round in 0.. {
        assert!(round < 10, "the queue drains");
        let (batch, failed) = stack.process(&deps).await;
        if batch.records.is_empty() {
            break;
        }
        for record in batch
            .records
            .iter()
            .filter(|r| failed.contains(r.message_id.as_ref().unwrap_or(&String::new())))
        {
            stack
                .aws
                .sqs()
                .change_message_visibility()
                .queue_url(&stack.queue_url)
                .receipt_handle(record.receipt_handle.clone().unwrap_or_default())
                .visibility_timeout(0)
                .send()
                .await
                .expect("visible again");
        }
    }
    let letters = stack.aws.messages(&stack.dlq_url).await;
    assert!(
        letters.is_empty(),
        "{:?}",
        letters
            .iter()
            .map(|l| attribute(l, dead_letter::attr::ERROR_MESSAGE))
            .collect::<Vec<_>>()
    );
    assert_eq!(stack.providers.twilio.messages().len(), 1);
    let acw: Vec<_> = stack
        .downstream
        .received("/crm")
        .into_iter()
        .filter(|r| String::from_utf8_lossy(&r.body).contains(".acw"))
        .collect();
    assert_eq!(acw.len(), 1, "the copy is not delivered again");
}

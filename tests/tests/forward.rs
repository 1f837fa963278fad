//! Forwarding through the processor, against a local AWS and a local downstream service.

use std::collections::HashMap;

use aws_lambda_events::event::sqs::SqsEvent;
use base64::Engine;
use genesys_relay::actions::forward::recent_attempts;
use genesys_relay::config::{Env, EventBridgeConfig, ProcessorConfig};
use genesys_relay::dead_letter;
use genesys_relay::event::EventKey;
use genesys_relay::forward::circuit::CircuitPolicy;
use genesys_relay::forward::envelope::{self, Delivery, EncryptionKey};
use genesys_relay::queue::{Envelope, QueueSender, Source};
use lambda_runtime::{Context, LambdaEvent};
use processor::forwarding;
use processor::{handle, Deps};
use relay_tests::fakes::downstream::{Downstream, Reply};
use relay_tests::providers::{http_client, Providers};
use relay_tests::{attribute, sample_event, sign, LocalAws};
use serde_json::{json, Value};
use time::OffsetDateTime;

const SIGNING: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const KEY_BYTES: [u8; 32] = [7; 32];

struct Stack {
    aws: LocalAws,
    queue_url: String,
    dlq_url: String,
    downstream: Downstream,
    deps: Deps,
    eventbridge: eventbridge_handler::Deps,
    sender: QueueSender,
    _providers: Providers,
}

/// A stack whose rules forward to the given endpoints (JSON objects without secrets ARNs filled).
async fn stack(
    endpoints: impl FnOnce(&Downstream, &HashMap<&str, String>) -> Value,
    circuit: CircuitPolicy,
) -> Stack {
    let aws = LocalAws::start().await;
    let dlq_url = aws.queue("dlq").await;
    let queue_url = aws.queue("main").await;
    let providers = Providers::start(&aws).await;
    let key =
        json!({"keyId": "k1", "key": base64::engine::general_purpose::STANDARD.encode(KEY_BYTES)});
    let arns = HashMap::from([
        ("signing", aws.secret("signing", SIGNING).await),
        ("token", aws.secret("token", "downstream-token").await),
        ("key", aws.secret("key", &key.to_string()).await),
    ]);
    let downstream = Downstream::start().await;
    let rules = json!({"forward": {"endpoints": endpoints(&downstream, &arns)}});
    let mut env = providers.settings();
    env.extend([
        ("QUEUE_URL", queue_url.clone()),
        ("DLQ_URL", dlq_url.clone()),
        ("FORWARD_ALLOW_HTTP_LOOPBACK", "true".into()),
        ("RULES", rules.to_string()),
    ]);
    let lookup = Env::from_fn(|k| env.get(k).cloned());
    let mut config = ProcessorConfig::from_env(&lookup).expect("valid settings");
    config.actions.circuit = circuit;
    let http = http_client();
    let deps = Deps::new(config, &aws.sdk, http.clone())
        .await
        .expect("clients");
    let eventbridge_config = EventBridgeConfig::from_env(&lookup).expect("valid settings");
    let eventbridge = eventbridge_handler::Deps::new(eventbridge_config, &aws.sdk, http)
        .await
        .expect("clients");
    let sender = QueueSender::new(aws.sqs(), queue_url.clone(), None, 240 * 1024);
    Stack {
        aws,
        queue_url,
        dlq_url,
        downstream,
        deps,
        eventbridge,
        sender,
        _providers: providers,
    }
}

fn endpoint(downstream: &Downstream, name: &str, extra: Value) -> Value {
    let mut value = json!({"name": name, "url": downstream.url(&format!("/{name}"))});
    if let (Some(target), Some(extra)) = (value.as_object_mut(), extra.as_object()) {
        target.extend(extra.clone());
    }
    value
}

const TOPIC: &str = "v2.detail.events.conversation.c1.acw";

impl Stack {
    async fn enqueue(&self, conversation: &str) -> EventKey {
        let body = json!({"topicName": TOPIC, "eventBody": {"conversationId": conversation, "eventTime": 1795150799000_i64}});
        let key = EventKey::from_parts(&[conversation, "fwd"]);
        let envelope = Envelope {
            event_key: key.clone(),
            source: Source::GenesysWebhook,
            received_at: OffsetDateTime::now_utc(),
            content_type: "application/json".into(),
            correlation_id: None,
            group_id: conversation.into(),
        };
        self.sender.send(&envelope, body.to_string()).await.unwrap();
        key
    }

    async fn process(&self, batch: SqsEvent) -> Vec<String> {
        let response = handle(LambdaEvent::new(batch, Context::default()), &self.deps)
            .await
            .unwrap();
        response
            .batch_item_failures
            .into_iter()
            .map(|f| f.item_identifier)
            .collect()
    }

    async fn process_queue(&self) -> (SqsEvent, Vec<String>) {
        let batch = self.aws.receive_batch(&self.queue_url, 60).await;
        let failed = self.process(batch.clone()).await;
        (batch, failed)
    }

    async fn delayed(&self) -> u64 {
        let out = self
            .aws
            .sqs()
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .attribute_names(
                aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesDelayed,
            )
            .send()
            .await
            .unwrap();
        let attributes = out.attributes.unwrap_or_default();
        attributes
            .get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesDelayed)
            .and_then(|v| v.parse().ok())
            .unwrap_or_default()
    }
}

/// The batch's record turned into a due job for `endpoint` (what the queue hands back later).
fn as_job(batch: &SqsEvent, endpoint: &str, attempt: u32) -> SqsEvent {
    let mut job = batch.clone();
    let mut attribute = aws_lambda_events::event::sqs::SqsMessageAttribute::default();
    attribute.string_value = Some(format!("{endpoint};{attempt};0"));
    attribute.data_type = Some("String".into());
    job.records[0]
        .message_attributes
        .insert(forwarding::ATTRIBUTE.into(), attribute);
    job
}

#[tokio::test]
async fn with_two_endpoints_one_failing_the_healthy_one_receives_exactly_once() {
    let stack = stack(
        |d, arns| {
            json!([
                endpoint(d, "good", json!({"signingSecretArn": arns["signing"], "auth": {"type": "bearer", "secretArn": arns["token"]}})),
                endpoint(d, "bad", json!({})),
            ])
        },
        CircuitPolicy::default(),
    )
    .await;
    stack.downstream.always("/bad", 503);
    let key = stack.enqueue("c1").await;
    let (batch, failed) = stack.process_queue().await;
    assert!(
        failed.is_empty(),
        "each endpoint retries on its own: {failed:?}"
    );

    let good = stack.downstream.received("/good");
    assert_eq!(good.len(), 1);
    let request = &good[0];
    assert_eq!(request.headers["authorization"], "Bearer downstream-token");
    assert_eq!(request.headers["content-type"], "application/json");
    let id = &request.headers["webhook-id"];
    let timestamp: i64 = request.headers["webhook-timestamp"].parse().unwrap();
    let body = String::from_utf8(request.body.clone()).unwrap();
    assert_eq!(
        request.headers["webhook-signature"],
        sign::standard_webhooks(SIGNING, id, timestamp, &body)
    );
    let delivery: Delivery = serde_json::from_str(&body).unwrap();
    assert_eq!(delivery.version, "1");
    assert_eq!(&delivery.delivery_id, id);
    assert_eq!(delivery.event_key, key.as_str());
    assert_eq!(delivery.event_type, TOPIC);
    assert_eq!(delivery.attempt, 1);
    assert_eq!(delivery.event["eventBody"]["conversationId"], "c1");

    assert_eq!(stack.downstream.received("/bad").len(), 1);
    assert_eq!(
        stack.delayed().await,
        1,
        "the failed delivery waits on the queue as its own job"
    );

    // The job comes back due: only the failing endpoint is tried again.
    stack.downstream.always("/bad", 200);
    assert!(stack.process(as_job(&batch, "bad", 2)).await.is_empty());
    let retried = stack.downstream.received("/bad");
    assert_eq!(retried.len(), 2);
    let second: Delivery = serde_json::from_slice(&retried[1].body).unwrap();
    assert_eq!(second.attempt, 2);
    assert_eq!(
        retried[1].headers["webhook-id"], retried[0].headers["webhook-id"],
        "one delivery id across retries"
    );
    assert_eq!(
        stack.downstream.received("/good").len(),
        1,
        "the healthy endpoint is not sent again"
    );

    // A redelivered original changes nothing.
    assert!(stack.process(batch).await.is_empty());
    assert_eq!(stack.downstream.received("/good").len(), 1);
    assert_eq!(stack.downstream.received("/bad").len(), 2);

    let attempts = recent_attempts(&stack.aws.dynamodb(), "state", "bad", 10)
        .await
        .unwrap();
    let outcomes: Vec<_> = attempts
        .iter()
        .map(|a| (a.attempt, a.status.as_str(), a.outcome.as_str()))
        .collect();
    assert_eq!(outcomes, [(2, "200", "delivered"), (1, "503", "retry")]);
}

#[tokio::test]
async fn an_early_job_waits_and_a_job_out_of_attempts_is_dead_lettered() {
    let stack = stack(
        |d, _| json!([endpoint(d, "bad", json!({}))]),
        CircuitPolicy::default(),
    )
    .await;
    stack.downstream.script(
        "/bad",
        vec![Reply::RetryAfter {
            status: 429,
            secs: 120,
        }],
    );
    stack.enqueue("c1").await;
    let (batch, failed) = stack.process_queue().await;
    assert!(failed.is_empty());
    assert_eq!(stack.delayed().await, 1);

    // Not due yet: reported failed (hidden again), nothing sent.
    let mut early = as_job(&batch, "bad", 2);
    let not_before = genesys_relay::table::epoch_millis(std::time::SystemTime::now()) + 60_000;
    early.records[0]
        .message_attributes
        .get_mut(forwarding::ATTRIBUTE)
        .unwrap()
        .string_value = Some(format!("bad;2;{not_before}"));
    assert_eq!(stack.process(early).await.len(), 1);
    assert_eq!(stack.downstream.received("/bad").len(), 1);

    // The last attempt fails too: dead-lettered with the reason, not retried.
    stack.downstream.always("/bad", 500);
    assert!(stack.process(as_job(&batch, "bad", 8)).await.is_empty());
    let dead = stack.aws.messages(&stack.dlq_url).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(
        attribute(&dead[0], dead_letter::attr::ACTION).as_deref(),
        Some("forward:bad")
    );
    assert!(attribute(&dead[0], dead_letter::attr::ERROR_MESSAGE)
        .unwrap()
        .contains("gave up after 8 attempts"));
    assert!(
        attribute(&dead[0], forwarding::ATTRIBUTE).is_none(),
        "a redrive runs the event afresh"
    );
}

#[tokio::test]
async fn an_encrypted_delivery_decrypts_with_the_key_and_names_it() {
    let stack = stack(
        |d, arns| {
            json!([endpoint(
                d,
                "vault",
                json!({"encryptionKeyArn": arns["key"]})
            )])
        },
        CircuitPolicy::default(),
    )
    .await;
    stack.enqueue("c1").await;
    assert!(stack.process_queue().await.1.is_empty());
    let received = stack.downstream.received("/vault");
    let body: Value = serde_json::from_slice(&received[0].body).unwrap();
    assert_eq!(body["encrypted"]["alg"], "A256GCM");
    assert_eq!(body["encrypted"]["kid"], "k1");
    assert!(
        !String::from_utf8_lossy(&received[0].body).contains("conversationId"),
        "nothing readable on the wire"
    );
    let delivery = envelope::decrypt(
        &received[0].body,
        &EncryptionKey::from_bytes("k1", KEY_BYTES),
    )
    .unwrap();
    assert_eq!(delivery.event["eventBody"]["conversationId"], "c1");
}

#[tokio::test]
async fn a_410_disables_the_endpoint_and_its_deliveries_are_dead_lettered() {
    let stack = stack(
        |d, _| json!([endpoint(d, "gone", json!({}))]),
        CircuitPolicy::default(),
    )
    .await;
    stack.downstream.always("/gone", 410);
    stack.enqueue("c1").await;
    assert!(stack.process_queue().await.1.is_empty());
    stack.enqueue("c2").await;
    assert!(stack.process_queue().await.1.is_empty());
    assert_eq!(
        stack.downstream.received("/gone").len(),
        1,
        "a disabled endpoint is not called again"
    );
    let reasons: Vec<String> = stack
        .aws
        .messages(&stack.dlq_url)
        .await
        .iter()
        .filter_map(|m| attribute(m, dead_letter::attr::ERROR_MESSAGE))
        .collect();
    assert_eq!(reasons.len(), 2);
    assert!(
        reasons.iter().any(|r| r.contains("410 Gone")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("disabled")),
        "{reasons:?}"
    );
}

#[tokio::test]
async fn an_open_circuit_defers_deliveries_without_calling_the_endpoint() {
    let policy = CircuitPolicy {
        min_requests: 2,
        ..CircuitPolicy::default()
    };
    let stack = stack(|d, _| json!([endpoint(d, "flaky", json!({}))]), policy).await;
    stack.downstream.always("/flaky", 503);
    for conversation in ["c1", "c2"] {
        stack.enqueue(conversation).await;
        assert!(stack.process_queue().await.1.is_empty());
    }
    assert_eq!(stack.downstream.received("/flaky").len(), 2);
    stack.enqueue("c3").await;
    assert!(stack.process_queue().await.1.is_empty());
    assert_eq!(
        stack.downstream.received("/flaky").len(),
        2,
        "the open circuit kept the request back"
    );
    assert_eq!(
        stack.delayed().await,
        3,
        "every delivery waits on the queue"
    );
    assert!(
        stack.aws.messages(&stack.dlq_url).await.is_empty(),
        "deferred, not dead-lettered"
    );
}

#[tokio::test]
async fn an_endpoint_pointing_inside_is_refused_and_dead_lettered() {
    let stack = stack(
        |_, _| json!([{"name": "metadata", "url": "https://169.254.169.254/latest/meta-data/"}]),
        CircuitPolicy::default(),
    )
    .await;
    stack.enqueue("c1").await;
    assert!(stack.process_queue().await.1.is_empty());
    let dead = stack.aws.messages(&stack.dlq_url).await;
    assert_eq!(dead.len(), 1);
    let reason = attribute(&dead[0], dead_letter::attr::ERROR_MESSAGE).unwrap();
    assert!(reason.contains("169.254.169.254"), "{reason}");
}

#[tokio::test]
async fn an_eventbridge_event_is_forwarded_through_the_queue() {
    let stack = stack(
        |d, _| {
            json!([endpoint(
                d,
                "acw",
                json!({"eventTypes": ["v2.detail.events.conversation.{id}.acw"]})
            )])
        },
        CircuitPolicy::default(),
    )
    .await;
    for file in ["eventbridge-outbound.json", "eventbridge-acw.json"] {
        let event: eventbridge_handler::Input = serde_json::from_str(&sample_event(file)).unwrap();
        eventbridge_handler::handle(
            LambdaEvent::new(event, Context::default()),
            &stack.eventbridge,
        )
        .await
        .unwrap();
    }
    let (batch, failed) = stack.process_queue().await;
    assert_eq!(
        batch.records.len(),
        1,
        "only the event an endpoint wants is queued"
    );
    assert_eq!(
        batch.records[0].message_attributes["source"]
            .string_value
            .as_deref(),
        Some("genesys-eventbridge")
    );
    assert!(failed.is_empty(), "{failed:?}");
    let received = stack.downstream.received("/acw");
    assert_eq!(received.len(), 1);
    let delivery: Delivery = serde_json::from_slice(&received[0].body).unwrap();
    assert_eq!(delivery.source, "genesys-eventbridge");
    assert_eq!(
        delivery.event_type,
        "v2.detail.events.conversation.7f1c3a52-8a4b-4c1e-9d2f-0b6e5a1c9e11.acw"
    );
    assert_eq!(
        delivery.event["eventBody"]["wrapupCode"],
        "ININ-OUTBOUND-NO-ANSWER"
    );
    assert_eq!(
        delivery.occurred_at, "2026-11-20T04:59:59Z",
        "eventTime 1795150799000 ms"
    );
}

#[tokio::test]
async fn another_4xx_is_dead_lettered_at_once_with_a_summary_of_the_answer() {
    let stack = stack(
        |d, arns| {
            json!([endpoint(
                d,
                "strict",
                json!({"auth": {"type": "basic", "secretArn": arns["token"]}})
            )])
        },
        CircuitPolicy::default(),
    )
    .await;
    stack.downstream.script("/strict", vec![Reply::Status(422)]);
    stack.enqueue("c1").await;
    assert!(stack.process_queue().await.1.is_empty());
    let received = stack.downstream.received("/strict");
    assert_eq!(received.len(), 1, "not retried");
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("downstream-token:")
    );
    assert_eq!(received[0].headers["authorization"], expected);
    assert_eq!(stack.delayed().await, 0);
    let dead = stack.aws.messages(&stack.dlq_url).await;
    assert_eq!(dead.len(), 1);
    let reason = attribute(&dead[0], dead_letter::attr::ERROR_MESSAGE).unwrap();
    assert_eq!(reason, "strict answered 422: ok");
}

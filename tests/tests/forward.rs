//! Forwarding through the processor, against a local AWS and a local downstream service.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use aws_lambda_events::event::sqs::SqsEvent;
use base64::Engine;
use genesys_relay::config::{Env, EventBridgeConfig, ProcessorConfig, ReceiverConfig};
use genesys_relay::dead_letter;
use genesys_relay::inbound::event::EventKey;
use genesys_relay::inbound::queue::{Envelope, MediaType, QueueSender, Source};
use genesys_relay::outbound::forward;
use genesys_relay::outbound::forward::circuit::CircuitPolicy;
use genesys_relay::outbound::forward::envelope::{self, Delivery, EncryptionKey};
use genesys_relay::secrets::rotation::Step;
use genesys_relay::state::endpoints::{DynamoEndpoints, EndpointRecords};
use lambda_runtime::{Context, LambdaEvent};
use processor::{handle, Deps};
use relay_tests::fakes::downstream::{Downstream, Reply, HELD};
use relay_tests::providers::{http_client, Providers};
use relay_tests::rotation;
use relay_tests::{attribute, http_api_request, sample_event, sign, test_secrets, LocalAws};
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
    let deps = Deps::new(config, &aws.sdk, http).await.expect("clients");
    let eventbridge_config = EventBridgeConfig::from_env(&lookup).expect("valid settings");
    let eventbridge = eventbridge_handler::Deps::new(eventbridge_config, &aws.sdk);
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
            content_type: MediaType::Json,
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
        .insert(forward::ATTRIBUTE.into(), attribute);
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

    let attempts = DynamoEndpoints::new(stack.aws.dynamodb(), "state")
        .recent_attempts("bad", 10)
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
    let not_before =
        genesys_relay::state::table::epoch_millis(std::time::SystemTime::now()) + 60_000;
    early.records[0]
        .message_attributes
        .get_mut(forward::ATTRIBUTE)
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
    assert_eq!(
        attribute(&dead[0], forward::ATTRIBUTE).as_deref(),
        Some("bad;1;0"),
        "a redrive makes this endpoint's delivery again, from attempt 1, and nothing else"
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

/// Builds the processor with one more endpoint next to a valid one; the init error, if any.
async fn init_error(
    aws: &LocalAws,
    providers: &Providers,
    url: &str,
    loopback: bool,
) -> Option<String> {
    let rules = json!({"forward": {"endpoints": [
        {"name": "crm", "url": "https://crm.example.com/hook"},
        {"name": "suspect", "url": url},
    ]}});
    let mut env = providers.settings();
    env.extend([
        ("QUEUE_URL", "http://127.0.0.1:1/queue/main".to_owned()),
        ("DLQ_URL", "http://127.0.0.1:1/queue/dlq".to_owned()),
        ("FORWARD_ALLOW_HTTP_LOOPBACK", loopback.to_string()),
        ("RULES", rules.to_string()),
    ]);
    let config = ProcessorConfig::from_env(&Env::from_fn(|k| env.get(k).cloned())).unwrap();
    Deps::new(config, &aws.sdk, http_client())
        .await
        .err()
        .map(|e| e.to_string())
}

#[tokio::test]
async fn an_endpoint_refused_on_its_face_stops_the_processor_at_init() {
    let aws = LocalAws::start().await;
    let providers = Providers::start(&aws).await;
    for (url, loopback, named) in [
        (
            "https://169.254.169.254/latest/meta-data/?token=s3cret",
            true,
            "169.254.169.254",
        ),
        ("https://10.1.2.3:8443/hook?token=s3cret", false, "10.1.2.3"),
        (
            "https://[fd00:ec2::254]/?token=s3cret",
            false,
            "fd00:ec2::254",
        ),
        ("https://[2001::1]/?token=s3cret", false, "2001::1"),
        ("https://192.88.99.1/?token=s3cret", false, "192.88.99.1"),
        ("https://localhost/hook?token=s3cret", false, "localhost"),
        (
            "https://hooks.localhost/?token=s3cret",
            false,
            "hooks.localhost",
        ),
        ("http://crm.example.com/hook?token=s3cret", false, "http"),
        ("http://crm.example.com/hook?token=s3cret", true, "http"),
        ("http://127.0.0.1:8080/hook?token=s3cret", false, "http"),
        (
            "https://user:s3cret@crm.example.com/hook",
            false,
            "credentials",
        ),
    ] {
        let err = init_error(&aws, &providers, url, loopback)
            .await
            .unwrap_or_else(|| panic!("{url} must stop the function at init"));
        assert!(err.contains("forward endpoint suspect"), "{url}: {err}");
        assert!(err.contains(named), "{url}: {err}");
        assert!(!err.contains("s3cret"), "{url}: {err}");
    }
    // Names are resolved, and judged, at each delivery: DNS can change.
    for (url, loopback) in [
        ("https://hooks.internal.example/", false),
        ("https://93.184.216.34/hook", false),
        ("http://127.0.0.1:8080/hook", true),
        ("http://localhost:8080/hook", true),
    ] {
        assert_eq!(
            init_error(&aws, &providers, url, loopback).await,
            None,
            "{url}"
        );
    }
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

/// A receiver writing to the stack's queue, with the sample events' Genesys webhook secret.
async fn receiver(stack: &Stack) -> receiver::Deps {
    let genesys = stack
        .aws
        .secret("genesys-webhook", test_secrets::GENESYS_WEBHOOK)
        .await;
    let twilio = stack
        .aws
        .secret(
            "twilio-receiver",
            &json!({"accountSid": "AC0123", "authToken": test_secrets::TWILIO_AUTH_TOKEN})
                .to_string(),
        )
        .await;
    let env = HashMap::from([
        ("QUEUE_URL", stack.queue_url.clone()),
        ("GENESYS_WEBHOOK_SECRET_ARN", genesys),
        ("TWILIO_SECRET_ARN", twilio),
    ]);
    let config = ReceiverConfig::from_env(&Env::from_fn(|k| env.get(k).cloned())).unwrap();
    receiver::Deps::new(config, &stack.aws.sdk)
}

/// Splits a plain delivery body into its head (as JSON, the event taken out) and the event's text
/// exactly as it is on the wire.
fn split_event(body: &[u8]) -> (Value, String) {
    let text = std::str::from_utf8(body).unwrap();
    let at = text.find(r#","event":"#).expect("an event member");
    let event = text[at + r#","event":"#.len()..]
        .strip_suffix('}')
        .expect("the event is the last member");
    let head: Value = serde_json::from_str(&format!("{}}}", &text[..at])).unwrap();
    (head, event.to_owned())
}

#[tokio::test]
async fn a_webhook_body_reaches_the_endpoint_byte_for_byte_signed_or_encrypted() {
    let stack = stack(
        |d, arns| {
            json!([
                endpoint(d, "exact", json!({"signingSecretArn": arns["signing"]})),
                endpoint(d, "sealed", json!({"encryptionKeyArn": arns["key"]})),
            ])
        },
        CircuitPolicy::default(),
    )
    .await;
    let receiver = receiver(&stack).await;
    // Parsing and serializing again would round the integer, keep one `dup` and drop the zero.
    let sent = r#"{"big": 123456789012345678901234567890, "dup": 1, "dup": 2, "f": 1.10}"#;
    let signature = sign::hub_signature(test_secrets::GENESYS_WEBHOOK, sent);
    let request = http_api_request(
        "POST",
        "/webhooks/genesys",
        &[
            ("content-type", "application/json"),
            ("x-hub-signature-256", &signature),
        ],
        sent,
    );
    assert_eq!(receiver::handle(request, &receiver).await.status(), 202);
    let (_, failed) = stack.process_queue().await;
    assert!(failed.is_empty(), "{failed:?}");

    let exact = stack.downstream.received("/exact");
    assert_eq!(exact.len(), 1);
    let (head, event) = split_event(&exact[0].body);
    assert_eq!(event, sent, "the event as received, not as parsed");
    assert_eq!(head["version"], "1");
    assert_eq!(head["type"], "genesys.webhook");
    assert_eq!(head["attempt"], 1);
    let body = String::from_utf8(exact[0].body.clone()).unwrap();
    let id = &exact[0].headers["webhook-id"];
    let timestamp: i64 = exact[0].headers["webhook-timestamp"].parse().unwrap();
    assert_eq!(
        exact[0].headers["webhook-signature"],
        sign::standard_webhooks(SIGNING, id, timestamp, &body),
        "signed over the bytes sent"
    );

    // Encrypted, the same bytes are inside the ciphertext: opened here with aws-lc-rs alone.
    let sealed = stack.downstream.received("/sealed");
    assert_eq!(sealed.len(), 1);
    let wire: Value = serde_json::from_slice(&sealed[0].body).unwrap();
    let standard = base64::engine::general_purpose::STANDARD;
    let nonce = standard
        .decode(wire["encrypted"]["nonce"].as_str().unwrap())
        .unwrap();
    let mut plain = standard
        .decode(wire["encrypted"]["ciphertext"].as_str().unwrap())
        .unwrap();
    use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
    let opened = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &KEY_BYTES).unwrap())
        .open_in_place(
            Nonce::try_assume_unique_for_key(&nonce).unwrap(),
            Aad::from(wire["deliveryId"].as_str().unwrap().as_bytes()),
            &mut plain,
        )
        .unwrap();
    let (head, event) = split_event(opened);
    assert_eq!(event, sent);
    assert_eq!(head["deliveryId"], wire["deliveryId"]);
}

/// A context whose invocation ends `left` from now.
fn ending_in(left: Duration) -> Context {
    let mut context = Context::default();
    context.deadline = genesys_relay::state::table::epoch_millis(SystemTime::now() + left);
    context
}

#[tokio::test]
async fn a_slow_endpoint_is_cut_off_before_the_deadline_and_its_delivery_queued_for_later() {
    let stack = stack(
        |d, _| json!([endpoint(d, "slow", json!({"timeoutSecs": 300}))]),
        CircuitPolicy::default(),
    )
    .await;
    // The endpoint never answers, and would be given 300 s: far past the invocation's end.
    stack.downstream.script("/slow", vec![Reply::Hold]);
    stack.enqueue("c1").await;
    let batch = stack.aws.receive_batch(&stack.queue_url, 60).await;
    let context = ending_in(forward::WRAP_UP + Duration::from_secs(2));

    // Only a guard against hanging; the assertions are on what the handler did.
    let response = tokio::time::timeout(
        Duration::from_secs(60),
        handle(LambdaEvent::new(batch, context), &stack.deps),
    )
    .await
    .expect("the handler returns before the invocation's deadline")
    .unwrap();
    assert!(
        response.batch_item_failures.is_empty(),
        "the record is done with: its delivery waits as its own job"
    );
    let received = stack.downstream.received("/slow");
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].status, HELD);
    assert_eq!(
        stack.delayed().await,
        1,
        "the retry waits on the queue for its schedule"
    );
    assert!(stack.aws.messages(&stack.dlq_url).await.is_empty());
    let attempts = DynamoEndpoints::new(stack.aws.dynamodb(), "state")
        .recent_attempts("slow", 10)
        .await
        .unwrap();
    let outcomes: Vec<_> = attempts
        .iter()
        .map(|a| (a.attempt, a.status.as_str(), a.outcome.as_str()))
        .collect();
    assert_eq!(outcomes, [(1, "none", "retry")]);
}

#[tokio::test]
async fn with_no_time_left_for_an_attempt_the_delivery_is_postponed_uncounted() {
    let stack = stack(
        |d, _| json!([endpoint(d, "late", json!({}))]),
        CircuitPolicy::default(),
    )
    .await;
    stack.enqueue("c1").await;
    let batch = stack.aws.receive_batch(&stack.queue_url, 60).await;
    let response = handle(
        LambdaEvent::new(batch, ending_in(forward::WRAP_UP)),
        &stack.deps,
    )
    .await
    .unwrap();
    assert!(response.batch_item_failures.is_empty());
    assert!(
        stack.downstream.received("/late").is_empty(),
        "no request that could only time out"
    );
    assert!(
        DynamoEndpoints::new(stack.aws.dynamodb(), "state")
            .recent_attempts("late", 10)
            .await
            .unwrap()
            .is_empty(),
        "no attempt made"
    );

    // Queued at once, as the same attempt, and delivered by the next invocation.
    let (job, failed) = stack.process_queue().await;
    assert_eq!(job.records.len(), 1);
    let marker = job.records[0].message_attributes[forward::ATTRIBUTE]
        .string_value
        .clone()
        .unwrap();
    assert!(marker.starts_with("late;1;"), "{marker}");
    assert!(failed.is_empty(), "{failed:?}");
    let received = stack.downstream.received("/late");
    assert_eq!(received.len(), 1);
    let delivery: Delivery = serde_json::from_slice(&received[0].body).unwrap();
    assert_eq!(delivery.attempt, 1);
}

#[tokio::test]
async fn a_delivery_held_elsewhere_waits_as_its_own_job_and_the_record_is_acknowledged() {
    let stack = stack(
        |d, _| json!([endpoint(d, "crm", json!({}))]),
        CircuitPolicy::default(),
    )
    .await;
    let key = stack.enqueue("c1").await;
    let body = json!({"topicName": TOPIC, "eventBody": {"conversationId": "c1", "eventTime": 1795150799000_i64}});
    // Another invocation holds this delivery's claim (it is delivering right now).
    stack
        .deps
        .idempotency
        .claim(
            "forward:crm",
            &key,
            body.to_string().as_bytes(),
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    let (_, failed) = stack.process_queue().await;
    assert!(failed.is_empty(), "the record is not retried as a whole");
    assert!(stack.downstream.received("/crm").is_empty());
    assert_eq!(
        stack.delayed().await,
        1,
        "the delivery waits on the queue as its own job"
    );
}

#[tokio::test]
async fn during_a_signing_secret_rotation_each_delivery_carries_the_old_and_the_new_signature() {
    let stack = stack(
        |d, arns| {
            json!([endpoint(
                d,
                "crm",
                json!({"signingSecretArn": arns["signing"]})
            )])
        },
        CircuitPolicy::default(),
    )
    .await;
    rotation::tag(&stack.aws, "signing", "forward-signing").await;
    let rotator = rotation::rotator(&stack.aws, &[]);
    let t = rotation::token(1);
    rotation::step(&rotator, "signing", Step::Create, &t)
        .await
        .unwrap();
    let new = rotation::version_value(&stack.aws, "signing", &t).await;
    assert!(new.starts_with("whsec_") && new != SIGNING);

    stack.enqueue("c1").await;
    let (_, failed) = stack.process_queue().await;
    assert!(failed.is_empty(), "{failed:?}");
    let received = stack.downstream.received("/crm");
    assert_eq!(received.len(), 1);
    let delivery = &received[0];
    let body = String::from_utf8(delivery.body.clone()).unwrap();
    let id = &delivery.headers["webhook-id"];
    let timestamp: i64 = delivery.headers["webhook-timestamp"].parse().unwrap();
    assert_eq!(
        delivery.headers["webhook-signature"],
        format!(
            "{} {}",
            sign::standard_webhooks(SIGNING, id, timestamp, &body),
            sign::standard_webhooks(&new, id, timestamp, &body)
        ),
        "an endpoint verifies with whichever secret it holds"
    );
}

//! JSON Twilio callbacks (an Event Streams webhook sink's CloudEvents), from the signed POST to the
//! receiver through the queue to the processor, against a local AWS and local Twilio and Genesys
//! servers: their message-status events are written back like form status callbacks.

use std::collections::HashMap;

use aws_lambda_events::event::sqs::SqsEvent;
use genesys_relay::config::{Env, ProcessorConfig, ReceiverConfig};
use genesys_relay::dead_letter;
use genesys_relay::inbound::event::EventKey;
use genesys_relay::inbound::queue::{attr, Envelope, MediaType, QueueSender, Source};
use genesys_relay::state::sms::SmsRecord;
use lambda_http::Body;
use lambda_runtime::{Context, LambdaEvent};
use relay_tests::fakes::genesys::FakeGenesys;
use relay_tests::fakes::twilio::FakeTwilio;
use relay_tests::providers::{http_client, Providers, TWILIO_ACCOUNT, TWILIO_TOKEN};
use relay_tests::{attribute, sign, test_secrets, LocalAws};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

const CUSTOMER: &str = "+14158675309";
const SENDER: &str = "+15005550006";
const PUBLIC_BASE: &str = "https://relay.example.com";
const RULES: &str = r#"{"smsOnWrapup": {"templates": {"ININ-OUTBOUND-NO-ANSWER": "Sorry we missed you, {{contact.firstName}}."}, "from": "+15005550006"}}"#;

struct Stack {
    aws: LocalAws,
    queue_url: String,
    dlq_url: String,
    twilio: FakeTwilio,
    genesys: FakeGenesys,
    processor: processor::Deps,
    receiver: receiver::Deps,
}

async fn stack() -> Stack {
    let aws = LocalAws::start().await;
    let dlq_url = aws.queue("dlq").await;
    let queue_url = aws.queue("main").await;
    let providers = Providers::start(&aws).await;
    let mut env = providers.settings();
    env.extend([
        ("QUEUE_URL", queue_url.clone()),
        ("DLQ_URL", dlq_url.clone()),
        (
            "STATUS_CALLBACK_URL",
            format!("{PUBLIC_BASE}/webhooks/twilio/status"),
        ),
        ("RULES", RULES.into()),
    ]);
    let config =
        ProcessorConfig::from_env(&Env::from_fn(|k| env.get(k).cloned())).expect("valid settings");
    let processor = processor::Deps::new(config, &aws.sdk, http_client())
        .await
        .expect("clients");

    // The receiver verifies Twilio's signature with the same account's Auth Token.
    let genesys_arn = aws
        .secret("genesys-webhook", test_secrets::GENESYS_WEBHOOK)
        .await;
    let receiver_env: HashMap<&str, String> = HashMap::from([
        ("QUEUE_URL", queue_url.clone()),
        ("GENESYS_WEBHOOK_SECRET_ARN", genesys_arn),
        ("TWILIO_SECRET_ARN", env["TWILIO_SECRET_ARN"].clone()),
        ("PUBLIC_BASE_URL", PUBLIC_BASE.to_owned()),
    ]);
    let config = ReceiverConfig::from_env(&Env::from_fn(|k| receiver_env.get(k).cloned()))
        .expect("valid receiver settings");
    let receiver = receiver::Deps::new(config, &aws.sdk);

    let Providers {
        twilio, genesys, ..
    } = providers;
    Stack {
        aws,
        queue_url,
        dlq_url,
        twilio,
        genesys,
        processor,
        receiver,
    }
}

/// A CloudEvent shaped like Twilio's published `Messaging.MessageStatus` examples
/// (https://www.twilio.com/docs/events/event-types/messaging/outbound-message).
fn status_event(sid: &str, status: &str, error_code: Option<u32>) -> Value {
    let mut data = json!({
        "messageSid": sid, "timestamp": "2026-11-22T05:00:00.000Z", "accountSid": TWILIO_ACCOUNT,
        "eventName": format!("com.twilio.messaging.message.{status}"), "apiVersion": "2010-04-01",
        "from": SENDER, "to": CUSTOMER, "messageStatus": status.to_ascii_uppercase(),
        "numberOfSegments": 1, "dateUpdated": "2026-11-22T05:00:00.000Z"
    });
    if let Some(code) = error_code {
        data["errorCode"] = code.into();
    }
    json!({
        "specversion": "1.0",
        "type": format!("com.twilio.messaging.message.{status}"),
        "source": format!("/2010-04-01/Accounts/{TWILIO_ACCOUNT}/Messages/{sid}.json"),
        "id": format!("EZ{}", &sha256_hex(&format!("{sid}:{status}"))[..32]),
        "dataschema": "https://events-schemas.twilio.com/Messaging.MessageStatus/7",
        "datacontenttype": "application/json",
        "time": "2026-11-22T05:00:00.000Z",
        "data": data
    })
}

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// An inbound SMS, which Event Streams also delivers and which is not a status.
fn inbound_event() -> Value {
    json!({
        "specversion": "1.0", "type": "com.twilio.messaging.inbound-message.received",
        "source": "/2010-04-01/Accounts/AC1/Messages/SM9.json", "id": "EZ9",
        "data": {"messageSid": "SMffffffffffffffffffffffffffffffff", "from": CUSTOMER, "to": SENDER, "body": "Thanks"}
    })
}

/// The POST an Event Streams webhook sink makes: JSON, with the body's SHA-256 in the URL and
/// `X-Twilio-Signature` over that URL (the receiver's public base URL is what Twilio called).
fn event_stream_post(body: &str) -> lambda_http::Request {
    let digest = sha256_hex(body);
    let query = format!("bodySHA256={digest}");
    let url = format!("{PUBLIC_BASE}/webhooks/twilio/status?{query}");
    let signature = sign::twilio(TWILIO_TOKEN, &url, &[]);
    let event = json!({
        "version": "2.0", "routeKey": "$default", "rawPath": "/webhooks/twilio/status",
        "rawQueryString": query, "queryStringParameters": {"bodySHA256": digest},
        "headers": {"host": "abc123.execute-api.us-east-1.amazonaws.com", "x-forwarded-proto": "https",
                    "content-type": "application/json; charset=utf-8", "x-twilio-signature": signature,
                    "user-agent": "Twilio-Event-Streams"},
        "requestContext": {"accountId": "123456789012", "apiId": "abc123",
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com", "domainPrefix": "abc123",
            "http": {"method": "POST", "path": "/webhooks/twilio/status", "protocol": "HTTP/1.1",
                     "sourceIp": "203.0.113.10", "userAgent": "Twilio-Event-Streams"},
            "requestId": "req-events", "routeKey": "$default", "stage": "$default",
            "time": "22/Nov/2026:05:00:00 +0000", "timeEpoch": 1795150800000_i64},
        "body": body, "isBase64Encoded": false
    });
    lambda_http::request::from_str(&event.to_string()).expect("a valid HTTP API event")
}

fn error_code(response: &lambda_http::Response<Body>) -> String {
    match response.body() {
        Body::Text(text) => serde_json::from_str::<Value>(text).expect("JSON")["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        other => panic!("expected a text body, got {other:?}"),
    }
}

impl Stack {
    /// POSTs `events` to the receiver as a webhook sink would; returns the HTTP status.
    async fn post_events(&self, events: &Value) -> u16 {
        let response =
            receiver::handle(event_stream_post(&events.to_string()), &self.receiver).await;
        response.status().as_u16()
    }

    /// Everything visible on the main queue, processed as one batch; returns the failed ids.
    async fn process_queue(&self) -> Vec<String> {
        let batch = self.aws.receive_batch(&self.queue_url, 60).await;
        self.process(batch).await
    }

    /// Runs the processor on `batch`; returns the failed ids.
    async fn process(&self, batch: SqsEvent) -> Vec<String> {
        let response =
            processor::handle(LambdaEvent::new(batch, Context::default()), &self.processor)
                .await
                .expect("handler");
        response
            .batch_item_failures
            .into_iter()
            .map(|f| f.item_identifier)
            .collect()
    }

    /// Sends one SMS the way the relay does: a configured wrap-up, through the processor.
    async fn send_sms(&self, conversation: &str) -> String {
        let body = json!({
            "topicName": format!("v2.detail.events.conversation.{conversation}.acw"),
            "eventBody": {"conversationId": conversation, "participantId": format!("p-{conversation}"),
                          "wrapupCode": "ININ-OUTBOUND-NO-ANSWER", "addressTo": format!("tel:{CUSTOMER}")},
            "contact": {"firstName": "Ada"}
        });
        let envelope = Envelope {
            event_key: EventKey::from_parts(&[conversation, "acw"]),
            source: Source::GenesysWebhook,
            received_at: OffsetDateTime::now_utc(),
            content_type: MediaType::Json,
            correlation_id: None,
            group_id: conversation.into(),
        };
        QueueSender::new(self.aws.sqs(), self.queue_url.clone(), None, 240 * 1024)
            .send(&envelope, body.to_string())
            .await
            .expect("enqueue");
        let failed = self.process_queue().await;
        assert!(failed.is_empty(), "{failed:?}");
        self.twilio
            .messages()
            .into_iter()
            .last()
            .expect("an SMS was sent")
            .sid
    }

    /// Puts a sent SMS straight into the ledger, as the SMS action records one.
    async fn ledger_sms(&self, sid: &str, conversation: &str) {
        self.processor
            .actions
            .sms
            .record_sent(
                &SmsRecord {
                    message_sid: sid.into(),
                    conversation_id: conversation.into(),
                    participant_id: Some(format!("p-{conversation}")),
                    event_key: format!("{conversation}:acw"),
                    status: "queued".into(),
                    error_code: None,
                    status_rank: 0,
                    written_rank: 0,
                },
                std::time::SystemTime::now(),
            )
            .await
            .expect("ledger write");
    }

    /// The `sms.status` values written onto a conversation, oldest first.
    fn statuses(&self, conversation: &str) -> Vec<String> {
        self.genesys
            .patches()
            .into_iter()
            .filter(|p| p.conversation_id == conversation)
            .filter_map(|p| p.attributes.get("sms.status").cloned())
            .collect()
    }
}

#[tokio::test]
async fn a_delivered_event_from_a_webhook_sink_is_written_back_like_a_form_callback() {
    let stack = stack().await;
    let sid = stack.send_sms("c1").await;

    let body = json!([status_event(&sid, "delivered", None)]);
    assert_eq!(stack.post_events(&body).await, 202);
    let batch = stack.aws.receive_batch(&stack.queue_url, 60).await;
    assert_eq!(batch.records.len(), 1);
    let stored = |name: &str| {
        batch.records[0]
            .message_attributes
            .get(name)
            .and_then(|a| a.string_value.clone())
    };
    assert_eq!(stored(attr::SOURCE).as_deref(), Some("twilio-status"));
    assert_eq!(
        stored(attr::CONTENT_TYPE).as_deref(),
        Some("application/json")
    );
    assert_eq!(
        stored(attr::EVENT_KEY),
        Some(format!("sha256:{}", sha256_hex(&body.to_string())))
    );

    let failed = stack.process(batch).await;
    assert!(failed.is_empty(), "{failed:?}");
    let last = stack.genesys.patches().pop().expect("status written back");
    assert_eq!(
        (last.conversation_id.as_str(), last.participant_id.as_str()),
        ("c1", "p-c1")
    );
    assert_eq!(last.attributes["sms.status"], "delivered");
    assert_eq!(last.attributes["sms.messageSid"], sid);
    assert_eq!(last.attributes["sms.errorCode"], "");

    // Twilio delivers at least once: the same body again changes nothing.
    let written = stack.genesys.patches().len();
    assert_eq!(stack.post_events(&body).await, 202);
    assert!(stack.process_queue().await.is_empty());
    assert_eq!(stack.genesys.patches().len(), written);
    assert!(stack.aws.messages(&stack.dlq_url).await.is_empty());
}

#[tokio::test]
async fn every_status_of_a_batched_body_is_applied_and_other_event_types_are_skipped() {
    let stack = stack().await;
    let (first, second) = (
        "SM11111111111111111111111111111111",
        "SM22222222222222222222222222222222",
    );
    stack.ledger_sms(first, "c1").await;
    stack.ledger_sms(second, "c2").await;

    let body = json!([
        status_event(first, "sent", None),
        inbound_event(),
        status_event(second, "undelivered", Some(30003)),
        status_event(first, "delivered", None),
        status_event(first, "sent", None),
    ]);
    assert_eq!(stack.post_events(&body).await, 202);
    let failed = stack.process_queue().await;
    assert!(failed.is_empty(), "{failed:?}");

    assert_eq!(
        stack.statuses("c1"),
        ["sent", "delivered"],
        "both statuses of one message in one body are applied, in order"
    );
    assert_eq!(stack.statuses("c2"), ["undelivered"]);
    let undelivered = stack
        .genesys
        .patches()
        .into_iter()
        .find(|p| p.conversation_id == "c2")
        .unwrap();
    assert_eq!(undelivered.attributes["sms.errorCode"], "30003");

    // A later body that only repeats old news, in another order, writes nothing.
    let written = stack.genesys.patches().len();
    let stale = json!([
        status_event(first, "sent", None),
        status_event(second, "sent", None)
    ]);
    assert_eq!(stack.post_events(&stale).await, 202);
    assert!(stack.process_queue().await.is_empty());
    assert_eq!(stack.genesys.patches().len(), written);

    // A body with no status event at all is acknowledged with nothing to do.
    assert_eq!(stack.post_events(&json!([inbound_event()])).await, 202);
    assert!(stack.process_queue().await.is_empty());
    assert_eq!(stack.genesys.patches().len(), written);
    assert!(stack.aws.messages(&stack.dlq_url).await.is_empty());
}

#[tokio::test]
async fn a_json_body_that_is_not_cloud_events_is_dead_lettered_and_broken_json_is_a_400() {
    let stack = stack().await;

    let broken = receiver::handle(event_stream_post("[{\"specversion\": "), &stack.receiver).await;
    assert_eq!(broken.status(), 400);
    assert_eq!(error_code(&broken), "bad_request");
    assert!(stack.aws.messages(&stack.queue_url).await.is_empty());

    let not_events = json!({"MessageSid": "SM1", "MessageStatus": "delivered"});
    assert_eq!(stack.post_events(&not_events).await, 202);
    let failed = stack.process_queue().await;
    assert!(
        failed.is_empty(),
        "acknowledged once dead-lettered: {failed:?}"
    );
    let dead = stack.aws.messages(&stack.dlq_url).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(
        attribute(&dead[0], dead_letter::attr::ERROR_CLASS).as_deref(),
        Some("permanent")
    );
    assert_eq!(
        attribute(&dead[0], dead_letter::attr::ACTION).as_deref(),
        Some("decode")
    );
    let reason = attribute(&dead[0], dead_letter::attr::ERROR_MESSAGE).unwrap();
    assert!(reason.contains("CloudEvent"), "{reason}");
    assert!(stack.genesys.patches().is_empty());
}

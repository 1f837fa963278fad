//! Scheduled status checks: a delivery status whose callback was lost is read back from Twilio
//! and written onto the conversation, with checks repeated on a schedule until the status is
//! final, and none once it is.
//!
//! The checks are delayed queue messages. Every SendMessage the functions make passes through a
//! recorder on its way to the local AWS, so a test reads what was scheduled and when, builds the
//! record a delayed check becomes once due, and moves the processor's clock instead of waiting.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_sdk_sqs::types::{Message, MessageAttributeValue};
use axum::body::Body;
use axum::extract::Request;
use genesys_relay::config::{Env, ProcessorConfig};
use genesys_relay::inbound::event::EventKey;
use genesys_relay::inbound::queue::{Envelope, MediaType, QueueSender, Source};
use lambda_runtime::{Context, LambdaEvent};
use processor::{handle, Deps};
use relay_tests::fakes::genesys::FakeGenesys;
use relay_tests::fakes::server::{self, Served};
use relay_tests::fakes::twilio::FakeTwilio;
use relay_tests::providers::{Providers, TWILIO_ACCOUNT, TWILIO_TOKEN};
use relay_tests::{lambda_record, LocalAws};
use serde_json::{json, Value};
use time::OffsetDateTime;

const CONVERSATION: &str = "c-check";
const PARTICIPANT: &str = "p-check";
const RULES: &str = r#"{"smsOnWrapup": {"templates": {"ININ-OUTBOUND-NO-ANSWER": "Sorry we missed you."}, "from": "+15005550006"}}"#;
/// The wire name of a status check's marker attribute.
const CHECK: &str = "status-check";

/// The SendMessage requests (their JSON bodies) that reached the local AWS through it.
#[derive(Clone, Default)]
struct Sent(Arc<Mutex<Vec<Value>>>);

impl Sent {
    /// The status checks scheduled so far: (attribute value, `DelaySeconds`), in order.
    fn checks(&self) -> Vec<(String, i64)> {
        self.0
            .lock()
            .expect("recorder")
            .iter()
            .filter_map(|request| {
                let value = request
                    .pointer(&format!("/MessageAttributes/{CHECK}/StringValue"))?
                    .as_str()?
                    .to_owned();
                Some((value, request["DelaySeconds"].as_i64().unwrap_or(0)))
            })
            .collect()
    }
}

/// A relay to the local AWS that records every SendMessage on the way.
async fn recorder(upstream: String) -> (Served, Sent) {
    let (listener, port) = server::bind().await;
    let sent = Sent::default();
    let client = reqwest::Client::new();
    let seen = sent.clone();
    let app = axum::Router::new().fallback(move |request: Request| {
        let (upstream, client, seen) = (upstream.clone(), client.clone(), seen.clone());
        async move {
            let (parts, body) = request.into_parts();
            let bytes = axum::body::to_bytes(body, usize::MAX)
                .await
                .unwrap_or_default();
            let target = parts
                .headers
                .get("x-amz-target")
                .and_then(|v| v.to_str().ok());
            if target == Some("AmazonSQS.SendMessage") {
                if let Ok(request) = serde_json::from_slice(&bytes) {
                    seen.0.lock().expect("recorder").push(request);
                }
            }
            server::relay(
                &client,
                &upstream,
                Request::from_parts(parts, Body::from(bytes)),
            )
            .await
        }
    });
    (server::serve(listener, port, app), sent)
}

struct Stack {
    aws: LocalAws,
    queue_url: String,
    twilio: FakeTwilio,
    genesys: FakeGenesys,
    deps: Deps,
    sender: QueueSender,
    sent: Sent,
    _recorder: Served,
    /// Answers every status callback 503, as the receiver does while AWS is unreachable.
    _unavailable: Served,
}

async fn stack() -> Stack {
    let aws = LocalAws::start().await;
    let dlq_url = aws.queue("dlq").await;
    let queue_url = aws.queue("main").await;
    let providers = Providers::start(&aws).await;
    let (listener, port) = server::bind().await;
    let unavailable = server::serve(
        listener,
        port,
        axum::Router::new().fallback(|| async { axum::http::StatusCode::SERVICE_UNAVAILABLE }),
    );
    let mut env = providers.settings();
    env.extend([
        ("QUEUE_URL", queue_url.clone()),
        ("DLQ_URL", dlq_url),
        (
            "STATUS_CALLBACK_URL",
            format!("{}/webhooks/twilio/status", unavailable.base_url),
        ),
        ("RULES", RULES.into()),
    ]);
    let config =
        ProcessorConfig::from_env(&Env::from_fn(|k| env.get(k).cloned())).expect("valid settings");
    let (relay, sent) = recorder(aws.endpoint.clone()).await;
    let through_recorder = genesys_relay::aws::local(&relay.base_url).await;
    let deps = Deps::new(
        config,
        &through_recorder,
        relay_tests::providers::http_client(),
    )
    .await
    .expect("clients");
    let sender = QueueSender::new(aws.sqs(), queue_url.clone(), None, 240 * 1024);
    let Providers {
        twilio, genesys, ..
    } = providers;
    Stack {
        aws,
        queue_url,
        twilio,
        genesys,
        deps,
        sender,
        sent,
        _recorder: relay,
        _unavailable: unavailable,
    }
}

fn envelope(key: EventKey, source: Source, content_type: MediaType) -> Envelope {
    Envelope {
        event_key: key,
        source,
        received_at: OffsetDateTime::now_utc(),
        content_type,
        correlation_id: None,
        group_id: CONVERSATION.into(),
    }
}

fn epoch_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as u64
}

/// A scheduled check's attribute: (sid, attempt, not-before epoch ms).
fn parse_check(value: &str) -> (String, u32, u64) {
    let parts: Vec<&str> = value.split(';').collect();
    assert_eq!(parts.len(), 3, "{value}");
    (
        parts[0].to_owned(),
        parts[1].parse().expect("attempt"),
        parts[2].parse().expect("not-before"),
    )
}

/// The record SQS hands the processor once the check `value` is due.
fn check_record(value: &str) -> SqsMessage {
    let attribute = MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .expect("attribute");
    lambda_record(
        Message::builder()
            .message_id(format!("check-{value}"))
            .body("{}")
            .message_attributes(CHECK, attribute)
            .build(),
    )
}

impl Stack {
    /// Texts the customer (a configured wrap-up) and returns the message sid.
    async fn send_sms(&self) -> String {
        let body = json!({
            "eventBody": {"conversationId": CONVERSATION, "participantId": PARTICIPANT,
                          "wrapupCode": "ININ-OUTBOUND-NO-ANSWER", "addressTo": "tel:+14158675309"}
        })
        .to_string();
        let key = EventKey::from_parts(&[CONVERSATION, "acw"]);
        let envelope = envelope(key, Source::GenesysWebhook, MediaType::Json);
        self.sender.send(&envelope, body).await.expect("enqueue");
        let batch = self.aws.receive_batch(&self.queue_url, 60).await;
        assert!(self.process(batch.records).await.is_empty());
        let sent = self.twilio.messages();
        assert_eq!(sent.len(), 1);
        sent[0].sid.clone()
    }

    /// Runs one invocation of the processor on `records`; returns the ids reported failed.
    async fn process(&self, records: Vec<SqsMessage>) -> Vec<String> {
        let mut batch = SqsEvent::default();
        batch.records = records;
        handle(LambdaEvent::new(batch, Context::default()), &self.deps)
            .await
            .expect("handler")
            .batch_item_failures
            .into_iter()
            .map(|f| f.item_identifier)
            .collect()
    }

    /// Runs the check `value` with the processor's clock `ahead` of now.
    async fn run_check(&mut self, value: &str, ahead: Duration) {
        self.deps.clock = genesys_relay::clock::ahead(ahead);
        let failed = self.process(vec![check_record(value)]).await;
        assert!(failed.is_empty(), "check {value} failed");
    }

    /// The `sms.status` of each PATCH Genesys took for the conversation, in order.
    fn statuses_written(&self) -> Vec<String> {
        self.genesys
            .patches()
            .into_iter()
            .filter(|p| p.conversation_id == CONVERSATION && p.participant_id == PARTICIPANT)
            .filter_map(|p| p.attributes.get("sms.status").cloned())
            .collect()
    }

    /// Waits until the local Twilio has posted `count` status callbacks (it posts them on its own
    /// after answering the send); the timeout only guards against a hang.
    async fn callbacks_posted(&self, count: usize) -> Vec<u16> {
        tokio::time::timeout(
            Duration::from_secs(30),
            self.twilio.callbacks_answered_at_least(count),
        )
        .await
        .unwrap_or_else(|_| panic!("the local Twilio did not post {count} status callbacks"))
    }
}

#[tokio::test]
async fn a_status_whose_callback_was_lost_is_read_back_and_written() {
    let mut stack = stack().await;
    stack.twilio.send_status_callbacks(TWILIO_TOKEN);
    let before = epoch_ms(SystemTime::now());
    let sid = stack.send_sms().await;
    let after = epoch_ms(SystemTime::now());

    // Both callbacks were answered 503 (AWS was away) and Twilio does not retry them: no status
    // reaches the queue, and the conversation has none.
    assert_eq!(stack.callbacks_posted(2).await, [503, 503]);
    assert!(stack.statuses_written().is_empty());

    // The SMS scheduled its first check a minute on.
    let scheduled = stack.sent.checks();
    assert_eq!(scheduled.len(), 1, "{scheduled:?}");
    let (value, delay) = scheduled[0].clone();
    assert_eq!(delay, 60);
    let (check_sid, attempt, not_before) = parse_check(&value);
    assert_eq!((check_sid.as_str(), attempt), (sid.as_str(), 1));
    assert!((before + 60_000..=after + 60_000).contains(&not_before));

    // Due, it reads the message back from Twilio and writes the status as a callback would.
    stack.run_check(&value, Duration::from_secs(60)).await;
    let fetches = stack.twilio.fetches();
    assert_eq!(fetches.len(), 1);
    assert_eq!(fetches[0].method, "GET");
    assert_eq!(
        fetches[0].path,
        format!("/2010-04-01/Accounts/{TWILIO_ACCOUNT}/Messages/{sid}.json")
    );
    assert_eq!(fetches[0].auth_user.as_deref(), Some(TWILIO_ACCOUNT));
    assert_eq!(fetches[0].status, Some(200));
    assert_eq!(stack.statuses_written(), ["delivered"]);
    let last = stack.genesys.patches().pop().expect("a PATCH");
    assert_eq!(last.attributes["sms.messageSid"], sid);

    // Final and written: no further check. The same check delivered again does nothing.
    assert_eq!(stack.sent.checks().len(), 1);
    stack.run_check(&value, Duration::from_secs(61)).await;
    assert_eq!(stack.twilio.fetches().len(), 1);
    assert_eq!(stack.statuses_written(), ["delivered"]);
    assert_eq!(stack.sent.checks().len(), 1);
}

#[tokio::test]
async fn a_check_finding_no_final_status_checks_again_on_schedule_until_the_cap() {
    let mut stack = stack().await;
    let sid = stack.send_sms().await;
    let (first, _) = stack.sent.checks()[0].clone();
    assert!(stack.twilio.set_status(&sid, "sent", None));

    // The first check finds `sent`: it writes it, and schedules the second 5 minutes on.
    let mut clock = Duration::from_secs(60);
    let start = epoch_ms(SystemTime::now());
    stack.run_check(&first, clock).await;
    assert_eq!(stack.statuses_written(), ["sent"]);
    let (second, delay) = stack.sent.checks()[1].clone();
    assert_eq!(delay, 300);
    let (_, attempt, not_before) = parse_check(&second);
    assert_eq!(attempt, 2);
    let due = start + (clock + Duration::from_secs(300)).as_millis() as u64;
    assert!((due..due + 10_000).contains(&not_before), "{second}");

    // Still `sent` 5 minutes later: nothing new to write; the third is due 30 minutes on, more
    // than SQS delays a message, so it is queued for the 15 minutes SQS allows.
    clock += Duration::from_secs(300);
    stack.run_check(&second, clock).await;
    assert_eq!(stack.statuses_written(), ["sent"]);
    let (third, delay) = stack.sent.checks()[2].clone();
    assert_eq!(delay, 900);
    let (_, attempt, not_before) = parse_check(&third);
    assert_eq!(attempt, 3);
    let due = start + (clock + Duration::from_secs(1800)).as_millis() as u64;
    assert!((due..due + 10_000).contains(&not_before), "{third}");

    // Received after those 15 minutes, it is not due: it is queued again for the rest of its
    // wait, unchanged, without asking Twilio.
    let fetches = stack.twilio.fetches().len();
    stack
        .run_check(&third, clock + Duration::from_secs(900))
        .await;
    assert_eq!(stack.sent.checks()[3], (third.clone(), 900));
    assert_eq!(stack.twilio.fetches().len(), fetches);

    // Due, it finds the message undelivered: written with its error code, and no more checks.
    stack.twilio.set_status(&sid, "undelivered", Some(30003));
    stack
        .run_check(&third, clock + Duration::from_secs(1800))
        .await;
    assert_eq!(stack.statuses_written(), ["sent", "undelivered"]);
    let last = stack.genesys.patches().pop().expect("a PATCH");
    assert_eq!(last.attributes["sms.errorCode"], "30003");
    assert_eq!(stack.sent.checks().len(), 4);
}

#[tokio::test]
async fn the_last_check_of_the_schedule_schedules_no_other() {
    let mut stack = stack().await;
    let sid = stack.send_sms().await;
    stack.twilio.set_status(&sid, "sent", None);
    let now = epoch_ms(SystemTime::now());
    stack
        .run_check(&format!("{sid};5;{now}"), Duration::ZERO)
        .await;
    assert_eq!(stack.statuses_written(), ["sent"]);
    assert_eq!(stack.sent.checks().len(), 1, "only the SMS's first check");
}

#[tokio::test]
async fn a_check_after_a_final_status_was_written_does_nothing() {
    let mut stack = stack().await;
    let sid = stack.send_sms().await;
    let (first, _) = stack.sent.checks()[0].clone();

    // The callback arrived and was written.
    let body = format!(
        "MessageSid={sid}&MessageStatus=delivered&AccountSid={TWILIO_ACCOUNT}&To=%2B14158675309"
    );
    let envelope = envelope(
        EventKey::from_parts(&[sid.as_str(), "delivered"]),
        Source::TwilioStatus,
        MediaType::Form,
    );
    stack.sender.send(&envelope, body).await.expect("enqueue");
    let batch = stack.aws.receive_batch(&stack.queue_url, 60).await;
    assert!(stack.process(batch.records).await.is_empty());
    assert_eq!(stack.statuses_written(), ["delivered"]);

    stack.run_check(&first, Duration::from_secs(60)).await;
    assert!(stack.twilio.fetches().is_empty(), "Twilio is not asked");
    assert_eq!(stack.statuses_written(), ["delivered"], "nothing written");
    assert_eq!(stack.sent.checks().len(), 1, "nothing scheduled");
}

#[tokio::test]
async fn reading_a_message_back_answers_its_status_as_twilio_does() {
    let stack = stack().await;
    let sid = stack.send_sms().await;
    let twilio = &stack.deps.actions.twilio;

    let read = twilio.fetch_status(&sid).await.expect("a status");
    assert_eq!(
        (read.sid.as_str(), read.status.as_str()),
        (sid.as_str(), "queued")
    );
    assert_eq!(read.error_code, None);
    stack.twilio.set_status(&sid, "undelivered", Some(30003));
    let read = twilio.fetch_status(&sid).await.expect("a status");
    assert_eq!(read.status, "undelivered");
    assert_eq!(read.error_code.as_deref(), Some("30003"));

    // A message the account never sent: permanent, as retrying cannot make it exist.
    let unknown = format!("SM{}", "0".repeat(32));
    let error = twilio.fetch_status(&unknown).await.unwrap_err();
    assert_eq!(error.class(), "permanent");
    assert!(error.to_string().contains("404"), "{error}");
    // Something that is not a message sid never reaches a request path.
    let requests = stack.twilio.requests().len();
    let error = twilio.fetch_status("SM../Keys").await.unwrap_err();
    assert_eq!(error.class(), "permanent");
    assert_eq!(stack.twilio.requests().len(), requests);

    // The local Twilio checks the request as Twilio does: credentials, then the method.
    let url = format!(
        "{}/2010-04-01/Accounts/{TWILIO_ACCOUNT}/Messages/{sid}.json",
        stack.twilio.base_url()
    );
    let http = reqwest::Client::new();
    let anonymous = http.get(&url).send().await.expect("an answer");
    assert_eq!(anonymous.status(), 401);
    let post = http
        .post(&url)
        .basic_auth(TWILIO_ACCOUNT, Some(TWILIO_TOKEN))
        .send()
        .await
        .expect("an answer");
    assert_eq!(post.status(), 405);
    let body: Value = post.json().await.expect("Twilio's error JSON");
    assert_eq!(body["code"], 20004);
}

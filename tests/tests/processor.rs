//! The processor against a local AWS and local Twilio and Genesys servers that check the real
//! request shapes.

use std::collections::BTreeSet;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use genesys_relay::config::{Env, ProcessorConfig};
use genesys_relay::dead_letter;
use genesys_relay::inbound::event::EventKey;
use genesys_relay::inbound::queue::{
    self, attr, Envelope, MediaType, Payload, QueueSender, Source,
};
use lambda_runtime::{Context, LambdaEvent};
use processor::{handle, Deps};
use relay_tests::fakes::genesys::FakeGenesys;
use relay_tests::fakes::twilio::{FakeTwilio, Reply};
use relay_tests::providers::{http_client, Providers, TWILIO_ACCOUNT, TWILIO_SECRET};
use relay_tests::{attribute, lambda_record, LocalAws};
use serde_json::json;
use time::OffsetDateTime;

const CUSTOMER: &str = "+14158675309";
const SENDER: &str = "+15005550006";
const STATUS_URL: &str = "https://relay.example.com/webhooks/twilio/status";
const RULES: &str = r#"{"smsOnWrapup": {"templates": {"ININ-OUTBOUND-NO-ANSWER": "Sorry we missed you, {{contact.firstName}}."}, "from": "+15005550006"}}"#;

struct Stack {
    aws: LocalAws,
    queue_url: String,
    dlq_url: String,
    twilio: FakeTwilio,
    genesys: FakeGenesys,
    deps: Deps,
    sender: QueueSender,
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
        ("STATUS_CALLBACK_URL", STATUS_URL.into()),
        ("RULES", RULES.into()),
    ]);
    let config =
        ProcessorConfig::from_env(&Env::from_fn(|k| env.get(k).cloned())).expect("valid settings");
    let deps = Deps::new(config, &aws.sdk, http_client())
        .await
        .expect("clients");
    let sender = QueueSender::new(aws.sqs(), queue_url.clone(), None, 240 * 1024);
    let Providers {
        twilio, genesys, ..
    } = providers;
    Stack {
        aws,
        queue_url,
        dlq_url,
        twilio,
        genesys,
        deps,
        sender,
    }
}

fn wrapup_body(conversation: &str, number: &str) -> String {
    json!({
        "topicName": format!("v2.detail.events.conversation.{conversation}.acw"),
        "eventBody": {"conversationId": conversation, "participantId": format!("p-{conversation}"),
                      "wrapupCode": "ININ-OUTBOUND-NO-ANSWER", "addressTo": format!("tel:{number}"),
                      "outboundCampaignId": "camp-1"},
        "contact": {"firstName": "Ada"}
    })
    .to_string()
}

fn envelope(key: EventKey, source: Source, content_type: MediaType, group: &str) -> Envelope {
    Envelope {
        event_key: key,
        source,
        received_at: OffsetDateTime::now_utc(),
        content_type,
        correlation_id: None,
        group_id: group.into(),
    }
}

impl Stack {
    async fn enqueue_wrapup(&self, conversation: &str, number: &str) {
        let body = wrapup_body(conversation, number);
        let key = EventKey::from_parts(&[conversation, "acw"]);
        let envelope = envelope(key, Source::GenesysWebhook, MediaType::Json, conversation);
        self.sender.send(&envelope, body).await.expect("enqueue");
    }

    async fn enqueue_callback(&self, sid: &str, status: &str) {
        let body = format!(
            "MessageSid={sid}&MessageStatus={status}&AccountSid={TWILIO_ACCOUNT}&To=%2B14158675309"
        );
        let envelope = envelope(
            EventKey::from_parts(&[sid, status]),
            Source::TwilioStatus,
            MediaType::Form,
            sid,
        );
        self.sender.send(&envelope, body).await.expect("enqueue");
    }

    /// Everything visible on the main queue, processed as one batch; returns the failed ids.
    async fn process_queue(&self) -> (SqsEvent, Vec<String>) {
        let batch = self.aws.receive_batch(&self.queue_url, 60).await;
        let failed = self.process(batch.clone()).await;
        (batch, failed)
    }

    async fn process(&self, batch: SqsEvent) -> Vec<String> {
        let response = handle(LambdaEvent::new(batch, Context::default()), &self.deps)
            .await
            .expect("handler");
        response
            .batch_item_failures
            .into_iter()
            .map(|f| f.item_identifier)
            .collect()
    }

    fn last_status(&self, conversation: &str) -> Option<String> {
        self.genesys
            .patches()
            .into_iter()
            .rev()
            .find(|p| p.conversation_id == conversation)
            .and_then(|p| p.attributes.get("sms.status").cloned())
    }
}

#[tokio::test]
async fn a_configured_wrapup_texts_the_customer_and_the_delivery_status_is_written_back() {
    let stack = stack().await;
    stack.enqueue_wrapup("c1", CUSTOMER).await;
    let (_, failed) = stack.process_queue().await;
    assert!(failed.is_empty(), "{failed:?}");

    let sent = stack.twilio.messages();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to, CUSTOMER);
    assert_eq!(sent[0].from.as_deref(), Some(SENDER));
    assert_eq!(sent[0].body, "Sorry we missed you, Ada.");
    assert_eq!(sent[0].status_callback.as_deref(), Some(STATUS_URL));
    assert_eq!(sent[0].auth_user, TWILIO_ACCOUNT);
    let sid = sent[0].sid.clone();

    // Callbacks arrive together and out of order; the furthest status wins.
    stack.enqueue_callback(&sid, "delivered").await;
    stack.enqueue_callback(&sid, "sent").await;
    let (_, failed) = stack.process_queue().await;
    assert!(failed.is_empty(), "{failed:?}");
    let patches = stack.genesys.patches();
    assert!(!patches.is_empty());
    let last = patches.last().unwrap();
    assert_eq!(
        (last.conversation_id.as_str(), last.participant_id.as_str()),
        ("c1", "p-c1")
    );
    assert_eq!(last.attributes["sms.status"], "delivered");
    assert_eq!(last.attributes["sms.messageSid"], sid);
    assert!(last.attributes.contains_key("sms.updatedAt"));

    // A late, lower status changes nothing.
    let written = stack.genesys.patches().len();
    stack.enqueue_callback(&sid, "sending").await;
    let (_, failed) = stack.process_queue().await;
    assert!(failed.is_empty());
    assert_eq!(stack.genesys.patches().len(), written);
    assert_eq!(stack.last_status("c1").as_deref(), Some("delivered"));
}

#[tokio::test]
async fn the_same_message_delivered_twice_sends_one_sms() {
    let stack = stack().await;
    stack.enqueue_wrapup("c1", CUSTOMER).await;
    let (batch, failed) = stack.process_queue().await;
    assert!(failed.is_empty());
    assert!(stack.process(batch).await.is_empty());
    assert_eq!(stack.twilio.messages().len(), 1);
}

#[tokio::test]
async fn a_twilio_500_is_retried_and_the_retry_sends_exactly_once() {
    let stack = stack().await;
    stack.twilio.script(vec![Reply::Status(500)]);
    stack.enqueue_wrapup("c1", CUSTOMER).await;
    let (mut batch, failed) = stack.process_queue().await;
    let id = batch.records[0].message_id.clone().unwrap();
    assert_eq!(failed, [id]);
    assert!(stack.twilio.messages().is_empty());

    batch.records[0]
        .attributes
        .insert("ApproximateReceiveCount".into(), "2".into());
    assert!(stack.process(batch).await.is_empty());
    assert_eq!(stack.twilio.messages().len(), 1);
    assert_eq!(stack.twilio.requests().len(), 2);
}

#[tokio::test]
async fn a_429_retry_after_keeps_the_message_hidden_at_least_that_long() {
    let stack = stack().await;
    stack.twilio.script(vec![Reply::TooManyRequests {
        retry_after_secs: Some(30),
    }]);
    stack.enqueue_wrapup("c1", CUSTOMER).await;
    // Received with a 1 s visibility: without the backoff it would be back after 1 s.
    let batch = stack.aws.receive_batch(&stack.queue_url, 1).await;
    let id = batch.records[0].message_id.clone().unwrap();
    let retries = processor::run_batch(&batch.records, &stack.deps, Duration::from_secs(30)).await;
    // The first receive's own backoff is 1 to 2 s; Twilio's Retry-After is the floor.
    assert_eq!(
        retries,
        [processor::Retry {
            message_id: id,
            delay: Some(Duration::from_secs(30)),
        }]
    );
    assert!(
        stack.aws.messages(&stack.queue_url).await.is_empty(),
        "hidden by the backoff, not by the 1 s of the receive"
    );
}

#[tokio::test]
async fn an_opted_out_number_is_written_back_remembered_and_never_texted_again() {
    let stack = stack().await;
    stack.twilio.script(vec![Reply::Error {
        http: 400,
        code: 21610,
    }]);
    stack.enqueue_wrapup("c1", CUSTOMER).await;
    let (_, failed) = stack.process_queue().await;
    assert!(
        failed.is_empty(),
        "an opt-out is an expected outcome, not a failure"
    );
    let patch = stack
        .genesys
        .patches()
        .pop()
        .expect("rejection written back");
    assert_eq!(patch.attributes["sms.status"], "rejected");
    assert_eq!(patch.attributes["sms.reason"], "opted-out");
    assert_eq!(patch.attributes["sms.errorCode"], "21610");

    stack.enqueue_wrapup("c2", CUSTOMER).await;
    let (_, failed) = stack.process_queue().await;
    assert!(failed.is_empty());
    assert_eq!(
        stack.twilio.requests().len(),
        1,
        "the opted-out number is not texted again"
    );
    assert_eq!(stack.last_status("c2").as_deref(), Some("rejected"));
    assert!(stack.aws.messages(&stack.dlq_url).await.is_empty());
}

#[tokio::test]
async fn a_genesys_token_expiring_mid_batch_costs_one_refresh() {
    let stack = stack().await;
    for conversation in ["c1", "c2", "c3"] {
        stack.enqueue_wrapup(conversation, CUSTOMER).await;
    }
    assert!(stack.process_queue().await.1.is_empty());
    let sids: Vec<String> = stack.twilio.messages().into_iter().map(|m| m.sid).collect();
    assert_eq!(sids.len(), 3);
    stack.enqueue_callback(&sids[0], "sent").await;
    assert!(stack.process_queue().await.1.is_empty());
    assert_eq!(stack.genesys.tokens_issued(), 1);

    stack.genesys.expire_tokens();
    for sid in &sids {
        stack.enqueue_callback(sid, "delivered").await;
    }
    let (_, failed) = stack.process_queue().await;
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(
        stack.genesys.tokens_issued(),
        2,
        "one refresh for the whole batch"
    );
    for conversation in ["c1", "c2", "c3"] {
        assert_eq!(
            stack.last_status(conversation).as_deref(),
            Some("delivered"),
            "{conversation}"
        );
    }
}

#[tokio::test]
async fn a_rotated_twilio_secret_is_read_after_the_401_and_the_send_succeeds() {
    let stack = stack().await;
    stack.enqueue_wrapup("c1", CUSTOMER).await;
    assert!(stack.process_queue().await.1.is_empty());

    let rotated = "rotated-auth-token";
    stack
        .aws
        .secrets()
        .put_secret_value()
        .secret_id(TWILIO_SECRET)
        .secret_string(json!({"accountSid": TWILIO_ACCOUNT, "authToken": rotated}).to_string())
        .send()
        .await
        .expect("rotate");
    stack
        .twilio
        .set_auth(vec![(TWILIO_ACCOUNT.into(), rotated.into())]);

    stack.enqueue_wrapup("c2", CUSTOMER).await;
    let (_, failed) = stack.process_queue().await;
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(stack.twilio.messages().len(), 2);
    let statuses: Vec<_> = stack.twilio.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [Some(201), Some(401), Some(201)]);
}

#[tokio::test]
async fn a_poison_message_is_dead_lettered_with_its_reason_while_its_batch_succeeds() {
    let stack = stack().await;
    stack.enqueue_wrapup("c1", CUSTOMER).await;
    // No envelope attributes at all.
    stack
        .aws
        .sqs()
        .send_message()
        .queue_url(&stack.queue_url)
        .message_body("garbage")
        .send()
        .await
        .unwrap();
    // A configured wrap-up without a customer number.
    let no_number =
        json!({"eventBody": {"conversationId": "c9", "wrapupCode": "ININ-OUTBOUND-NO-ANSWER"}})
            .to_string();
    let env = envelope(
        EventKey::from_parts(&["c9"]),
        Source::GenesysWebhook,
        MediaType::Json,
        "c9",
    );
    stack.sender.send(&env, no_number).await.unwrap();

    let (batch, failed) = stack.process_queue().await;
    assert_eq!(batch.records.len(), 3);
    assert!(
        failed.is_empty(),
        "poison is acknowledged once dead-lettered: {failed:?}"
    );
    assert_eq!(
        stack.twilio.messages().len(),
        1,
        "the good record still ran"
    );

    let dead = stack.aws.messages(&stack.dlq_url).await;
    assert_eq!(dead.len(), 2);
    for message in &dead {
        assert_eq!(
            attribute(message, dead_letter::attr::ERROR_CLASS).as_deref(),
            Some("permanent")
        );
        assert_eq!(
            attribute(message, dead_letter::attr::ACTION).as_deref(),
            Some("decode")
        );
        assert!(attribute(message, dead_letter::attr::FAILED_AT).is_some());
    }
    let reasons: BTreeSet<String> = dead
        .iter()
        .filter_map(|m| attribute(m, dead_letter::attr::ERROR_MESSAGE))
        .collect();
    assert!(
        reasons.iter().any(|r| r.contains("event-key")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("customer number")),
        "{reasons:?}"
    );
    // The original attributes travel along, so a redrive puts the message back as it was.
    let kept = dead
        .iter()
        .find(|m| attribute(m, attr::SOURCE).is_some())
        .expect("envelope kept");
    assert_eq!(attribute(kept, attr::EVENT_KEY).as_deref(), Some("c9"));
}

#[tokio::test]
async fn on_a_fifo_queue_a_failed_record_defers_the_rest_of_its_group() {
    let stack = stack().await;
    stack.twilio.script(vec![Reply::Status(503)]);
    let record = |id: &str, group: &str, body: String| {
        let env = envelope(
            EventKey::from_parts(&[id]),
            Source::GenesysWebhook,
            MediaType::Json,
            group,
        );
        let (body, attributes) = queue::encode(&env, &Payload::Inline(body)).unwrap();
        let message = aws_sdk_sqs::types::Message::builder()
            .message_id(id)
            .body(body)
            .set_message_attributes(Some(attributes))
            .attributes(
                aws_sdk_sqs::types::MessageSystemAttributeName::MessageGroupId,
                group,
            )
            .attributes(
                aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount,
                "1",
            )
            .build();
        lambda_record(message)
    };
    let unconfigured = |conversation: &str| {
        json!({"eventBody": {"conversationId": conversation, "wrapupCode": "Sale", "addressTo": CUSTOMER}}).to_string()
    };
    let mut batch = SqsEvent::default();
    batch.records = vec![
        record("a1", "conv-a", wrapup_body("conv-a", CUSTOMER)),
        record("b1", "conv-b", unconfigured("conv-b")),
        record("a2", "conv-a", unconfigured("conv-a")),
    ];
    let failed: BTreeSet<String> = stack.process(batch).await.into_iter().collect();
    assert_eq!(failed, BTreeSet::from(["a1".to_owned(), "a2".to_owned()]));
    assert!(stack.twilio.messages().is_empty());
}

#[tokio::test]
async fn on_fifo_queues_every_letter_is_readable_and_a_redelivered_failure_is_kept_once() {
    let stack = stack_on("main.fifo", "dlq.fifo").await;
    // More failing records of one conversation than a receive returns: were the letters one
    // message group, those past the first receive would stay hidden behind the ones it holds.
    let records: Vec<SqsMessage> = (0..11)
        .map(|n| {
            let key = format!("c9-{n}");
            let no_number = json!({"eventBody": {"conversationId": "c9", "wrapupCode": "ININ-OUTBOUND-NO-ANSWER", "n": n}})
                .to_string();
            let env = envelope(
                EventKey::from_parts(&[key.as_str()]),
                Source::GenesysWebhook,
                MediaType::Json,
                "c9",
            );
            let (body, attributes) = queue::encode(&env, &Payload::Inline(no_number)).unwrap();
            lambda_record(
                aws_sdk_sqs::types::Message::builder()
                    .message_id(key)
                    .body(body)
                    .set_message_attributes(Some(attributes))
                    .attributes(
                        aws_sdk_sqs::types::MessageSystemAttributeName::MessageGroupId,
                        "c9",
                    )
                    .attributes(
                        aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount,
                        "1",
                    )
                    .build(),
            )
        })
        .collect();
    let mut batch = SqsEvent::default();
    batch.records = records;
    let failed = stack.process(batch.clone()).await;
    assert!(
        failed.is_empty(),
        "dead-lettered and acknowledged: {failed:?}"
    );
    // The same records again, as when the acknowledgement was lost: their second letters are
    // dropped by the DLQ's deduplication.
    assert!(stack.process(batch).await.is_empty());

    let dead = stack.aws.messages(&stack.dlq_url).await;
    assert_eq!(dead.len(), 11, "one letter per record, every one readable");
    let keys: BTreeSet<String> = dead
        .iter()
        .filter_map(|letter| attribute(letter, attr::EVENT_KEY))
        .collect();
    assert_eq!(keys.len(), 11);
    for letter in &dead {
        assert_eq!(
            attribute(letter, dead_letter::attr::ERROR_CLASS).as_deref(),
            Some("permanent")
        );
    }
}

#[tokio::test]
async fn a_callback_for_an_unknown_message_is_retried_then_dead_lettered() {
    let stack = stack().await;
    stack
        .enqueue_callback("SM00000000000000000000000000000000", "delivered")
        .await;
    let (mut batch, failed) = stack.process_queue().await;
    assert_eq!(
        failed.len(),
        1,
        "the callback may have raced the ledger write: retried"
    );
    assert!(stack.aws.messages(&stack.dlq_url).await.is_empty());

    let attempts = genesys_relay::actions::delivery_status::UNKNOWN_SID_ATTEMPTS.to_string();
    batch.records[0]
        .attributes
        .insert("ApproximateReceiveCount".into(), attempts);
    assert!(
        stack.process(batch).await.is_empty(),
        "dead-lettered and acknowledged"
    );
    let dead = stack.aws.messages(&stack.dlq_url).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(
        attribute(&dead[0], dead_letter::attr::ACTION).as_deref(),
        Some("delivery_status")
    );
    assert!(attribute(&dead[0], dead_letter::attr::ERROR_MESSAGE)
        .unwrap()
        .contains("no SMS record"));
}

#[tokio::test]
async fn a_claim_checked_payload_is_fetched_from_s3_and_processed() {
    let stack = stack().await;
    stack.aws.bucket("claims").await;
    let sender = QueueSender::new(
        stack.aws.sqs(),
        stack.queue_url.clone(),
        Some((stack.aws.s3(), "claims".into())),
        1024,
    );
    let mut body: serde_json::Value = serde_json::from_str(&wrapup_body("c1", CUSTOMER)).unwrap();
    body["padding"] = json!("x".repeat(4096));
    let env = envelope(
        EventKey::from_parts(&["c1", "big"]),
        Source::GenesysWebhook,
        MediaType::Json,
        "c1",
    );
    sender.send(&env, body.to_string()).await.unwrap();

    let (batch, failed) = stack.process_queue().await;
    assert!(
        attribute_of(&batch, attr::CLAIM_CHECK).is_some(),
        "the message carried a claim check"
    );
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(stack.twilio.messages().len(), 1);
}

fn attribute_of(batch: &SqsEvent, name: &str) -> Option<String> {
    batch
        .records
        .first()?
        .message_attributes
        .get(name)?
        .string_value
        .clone()
}

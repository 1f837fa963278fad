//! The status a conversation ends with is the newest one, however the write-backs interleave:
//! a slow `sent` PATCH never lands last over `delivered`.

use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use genesys_relay::config::{Env, ProcessorConfig};
use genesys_relay::inbound::event::EventKey;
use genesys_relay::inbound::queue::{Envelope, MediaType, QueueSender, Source};
use lambda_runtime::{Context, LambdaEvent};
use processor::{handle, Deps};
use relay_tests::fakes::genesys::FakeGenesys;
use relay_tests::fakes::twilio::FakeTwilio;
use relay_tests::providers::{Providers, TWILIO_ACCOUNT};
use relay_tests::LocalAws;
use serde_json::json;
use time::OffsetDateTime;

const CONVERSATION: &str = "c-order";
const PARTICIPANT: &str = "p-order";
const RULES: &str = r#"{"smsOnWrapup": {"templates": {"ININ-OUTBOUND-NO-ANSWER": "Sorry we missed you."}, "from": "+15005550006"}}"#;

struct Stack {
    aws: LocalAws,
    queue_url: String,
    twilio: FakeTwilio,
    genesys: FakeGenesys,
    deps: Deps,
    sender: QueueSender,
}

async fn stack() -> Stack {
    let aws = LocalAws::start().await;
    let dlq_url = aws.queue("dlq").await;
    let queue_url = aws.queue("main").await;
    let providers = Providers::start(&aws).await;
    let mut env = providers.settings();
    env.extend([
        ("QUEUE_URL", queue_url.clone()),
        ("DLQ_URL", dlq_url),
        (
            "STATUS_CALLBACK_URL",
            "https://relay.example.com/webhooks/twilio/status".into(),
        ),
        ("RULES", RULES.into()),
    ]);
    let config =
        ProcessorConfig::from_env(&Env::from_fn(|k| env.get(k).cloned())).expect("valid settings");
    // The held PATCH waits for the other record's whole processing: a timeout longer than that,
    // so the hold never turns into a client timeout on a loaded machine.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client");
    let deps = Deps::new(config, &aws.sdk, http).await.expect("clients");
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

    /// The status callbacks `statuses` of `sid`, as the queue hands them to the processor, in
    /// that order.
    async fn callbacks(&self, sid: &str, statuses: &[&str]) -> Vec<SqsMessage> {
        for status in statuses {
            let body = format!(
                "MessageSid={sid}&MessageStatus={status}&AccountSid={TWILIO_ACCOUNT}&To=%2B14158675309"
            );
            let envelope = envelope(
                EventKey::from_parts(&[sid, status]),
                Source::TwilioStatus,
                MediaType::Form,
            );
            self.sender.send(&envelope, body).await.expect("enqueue");
        }
        let mut records = self.aws.receive_batch(&self.queue_url, 60).await.records;
        assert_eq!(records.len(), statuses.len());
        let status_of = |record: &SqsMessage| {
            let body = record.body.clone().unwrap_or_default();
            statuses
                .iter()
                .position(|s| body.contains(&format!("MessageStatus={s}&")))
                .expect("a callback of the test")
        };
        records.sort_by_key(status_of);
        records
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

    /// The `sms.status` of each PATCH Genesys took for the conversation, in the order it took
    /// them; the last is what the conversation holds.
    fn statuses_written(&self) -> Vec<String> {
        self.genesys
            .patches()
            .into_iter()
            .filter(|p| p.conversation_id == CONVERSATION && p.participant_id == PARTICIPANT)
            .filter_map(|p| p.attributes.get("sms.status").cloned())
            .collect()
    }
}

#[tokio::test]
async fn a_slow_sent_write_never_lands_last_over_delivered() {
    let stack = stack().await;
    let sid = stack.send_sms().await;
    let [sent, delivered]: [SqsMessage; 2] = stack
        .callbacks(&sid, &["sent", "delivered"])
        .await
        .try_into()
        .expect("two callbacks");

    // The `sent` write-back's PATCH is held on its way to Genesys while `delivered` is processed
    // from start to end, so without one writer at a time it lands after `delivered`, every run.
    let mut held = stack.genesys.hold_next_patch();
    let (sent_failed, delivered_failed) = tokio::join!(stack.process(vec![sent]), async {
        held.arrived().await;
        let failed = stack.process(vec![delivered]).await;
        held.release();
        failed
    });
    assert!(sent_failed.is_empty(), "{sent_failed:?}");
    assert!(delivered_failed.is_empty(), "{delivered_failed:?}");

    let written = stack.statuses_written();
    assert_eq!(
        written.last().map(String::as_str),
        Some("delivered"),
        "the conversation must end with the newest status; Genesys took {written:?}"
    );
    let last = stack.genesys.patches().pop().expect("a PATCH");
    assert_eq!(last.attributes["sms.messageSid"], sid);

    // Both callbacks are done: a late `sent` writes nothing more.
    let before = stack.genesys.patches().len();
    let late = stack.callbacks(&sid, &["sending"]).await;
    assert!(stack.process(late).await.is_empty());
    assert_eq!(stack.genesys.patches().len(), before);
}

#[tokio::test]
async fn a_status_arriving_behind_a_failed_write_is_written_by_the_next_callback() {
    let stack = stack().await;
    let sid = stack.send_sms().await;
    let [sent, delivered]: [SqsMessage; 2] = stack
        .callbacks(&sid, &["sent", "delivered"])
        .await
        .try_into()
        .expect("two callbacks");

    // `sent` holds the writer's lease while its PATCH is on its way; `delivered` arrives then
    // and is left to that writer, whose PATCH then fails: nothing newer reaches Genesys yet.
    stack
        .genesys
        .script_patch(vec![relay_tests::fakes::genesys::Reply::Status(503)]);
    let mut held = stack.genesys.hold_next_patch();
    let (sent_failed, delivered_failed) = tokio::join!(stack.process(vec![sent.clone()]), async {
        held.arrived().await;
        let failed = stack.process(vec![delivered]).await;
        held.release();
        failed
    });
    assert_eq!(sent_failed.len(), 1, "the failed write is retried");
    assert!(delivered_failed.is_empty(), "{delivered_failed:?}");
    assert!(stack.statuses_written().is_empty());

    // The retried `sent` finds `delivered` waiting and writes that, not its own status.
    assert!(stack.process(vec![sent]).await.is_empty());
    assert_eq!(stack.statuses_written(), ["delivered"]);
}

#[tokio::test]
async fn a_status_is_recorded_and_written_in_twilios_spelling_however_it_arrives() {
    let stack = stack().await;
    let sid = stack.send_sms().await;
    let shouted = stack.callbacks(&sid, &["DELIVERED"]).await;
    assert!(stack.process(shouted).await.is_empty());
    assert_eq!(stack.statuses_written(), ["delivered"]);

    // The ledger holds the one spelling, so the same status in Twilio's own case is a duplicate.
    let repeated = stack.callbacks(&sid, &["delivered"]).await;
    assert!(stack.process(repeated).await.is_empty());
    assert_eq!(stack.statuses_written(), ["delivered"]);
}

#[tokio::test]
async fn the_write_back_lease_has_one_holder_and_runs_out_only_after_its_time() {
    use genesys_relay::state::sms::{Advance, DynamoSmsLedger, SmsLedger, SmsRecord, Written};
    use std::time::SystemTime;

    let aws = LocalAws::start().await;
    aws.table("state").await;
    let store = DynamoSmsLedger::new(aws.dynamodb(), "state", Duration::from_secs(3600));
    let sid = "SM0123456789abcdef0123456789abcdef";
    let t0 = SystemTime::now();
    store
        .record_sent(
            &SmsRecord {
                message_sid: sid.into(),
                conversation_id: CONVERSATION.into(),
                participant_id: Some(PARTICIPANT.into()),
                event_key: "k".into(),
                status: "queued".into(),
                error_code: None,
                status_rank: 0,
                written_rank: 0,
            },
            t0,
        )
        .await
        .expect("recorded");
    let lease = Duration::from_secs(60);
    assert!(matches!(
        store.advance(sid, "sent", 2, None).await.expect("advance"),
        Advance::Write(_)
    ));

    // One holder at a time, until its lease runs out.
    let first = store.take_writer(sid, "a", t0, lease).await.expect("take");
    assert_eq!(first.map(|r| r.status), Some("sent".to_owned()));
    let during = t0 + Duration::from_secs(59);
    assert_eq!(
        store
            .take_writer(sid, "b", during, lease)
            .await
            .expect("take"),
        None
    );

    // A status seen while `a` writes keeps the lease with `a`, which gets it to write next.
    assert!(matches!(
        store
            .advance(sid, "delivered", 3, None)
            .await
            .expect("advance"),
        Advance::Write(_)
    ));
    match store
        .written(sid, "a", 2, during, lease)
        .await
        .expect("written")
    {
        Written::Newer(record) => assert_eq!(record.status, "delivered"),
        other => panic!("expected the newer status, got {other:?}"),
    }
    // A late `sent` meanwhile finds `delivered` unwritten: it is told to write, not that it is
    // stale, and the lease still keeps it from racing `a`.
    match store.advance(sid, "sent", 2, None).await.expect("advance") {
        Advance::Write(record) => assert_eq!(record.status, "delivered"),
        other => panic!("expected the pending write, got {other:?}"),
    }
    let later = during + Duration::from_secs(30);
    assert_eq!(
        store
            .take_writer(sid, "b", later, lease)
            .await
            .expect("take"),
        None
    );

    // `a` died: its lease runs out, and `b` takes over what is left.
    let expired = during + lease + Duration::from_millis(1);
    let taken = store
        .take_writer(sid, "b", expired, lease)
        .await
        .expect("take");
    assert_eq!(
        taken.map(|r| (r.status, r.written_rank)),
        Some(("delivered".to_owned(), 2))
    );
    assert_eq!(
        store
            .written(sid, "a", 3, expired, lease)
            .await
            .expect("written"),
        Written::Lost
    );
    assert_eq!(
        store
            .written(sid, "b", 3, expired, lease)
            .await
            .expect("written"),
        Written::Done
    );
    assert_eq!(
        store
            .advance(sid, "delivered", 3, None)
            .await
            .expect("advance"),
        Advance::Stale
    );
    // Given back: the next writer takes it at once.
    assert!(store
        .take_writer(sid, "c", expired, lease)
        .await
        .expect("take")
        .is_some());
}

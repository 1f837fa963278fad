//! Wrap-up codes as Genesys sends them (ids), rules written with the names people know, and
//! templates filled from the outbound contact list, on the webhook and the EventBridge paths,
//! against a local AWS and the local Genesys and Twilio.

use std::collections::HashMap;

use aws_lambda_events::event::sqs::SqsEvent;
use genesys_relay::config::{Env, EventBridgeConfig, ProcessorConfig};
use genesys_relay::dead_letter;
use genesys_relay::inbound::event::EventKey;
use genesys_relay::inbound::queue::{Envelope, MediaType, QueueSender, Source};
use lambda_runtime::{Context, LambdaEvent};
use relay_tests::providers::{http_client, Providers};
use relay_tests::{attribute, sample_event, LocalAws};
use serde_json::{json, Value};
use time::OffsetDateTime;

/// "Callback Requested" in the organization, as `events/eventbridge-acw-org-code.json` carries it.
const CALLBACK_ID: &str = "6f2d9c1e-4b7a-4e3f-8d5c-1a9b3e7f2c64";
/// Where `events/eventbridge-outbound.json` says the contact is.
const CONTACT_LIST: &str = "b8c9d0e1-f2a3-4b4c-9d5e-6f7a8b9c0d1e";
const CONTACT: &str = "c9d0e1f2a3b4c5d6e7f8a9b0c1d2e3f4";
const CUSTOMER: &str = "+14158675309";
const BY_NAME: &str = r#"{"smsOnWrapup": {"templates": {
    "Callback Requested": "Hi {{contact.firstName|there}}, we will call you back.",
    "ININ-OUTBOUND-NO-ANSWER": "Sorry we missed you, {{contact.firstName}}."},
  "from": "+15005550006"}}"#;

struct Setup {
    aws: LocalAws,
    queue_url: String,
    dlq_url: String,
    providers: Providers,
}

/// A local AWS and providers whose Genesys knows "Callback Requested" and a code whose name only
/// contains it (Genesys' `name` filter matches both).
async fn setup() -> Setup {
    let aws = LocalAws::start().await;
    let queue_url = aws.queue("main").await;
    let dlq_url = aws.queue("dlq").await;
    let providers = Providers::start(&aws).await;
    let genesys = &providers.genesys;
    genesys.add_wrapup_code(
        "0a4c6e8f-1b3d-4f5a-9c7e-2b4d6f8a0c1e",
        "Callback Requested - Spanish",
    );
    genesys.add_wrapup_code(CALLBACK_ID, "Callback Requested");
    genesys.add_wrapup_code("0c5e2f7a-3b1d-4e8f-9a6c-2d4b8e1f7a30", "Sale");
    Setup {
        aws,
        queue_url,
        dlq_url,
        providers,
    }
}

impl Setup {
    fn env(&self, rules: &str) -> HashMap<&'static str, String> {
        let mut env = self.providers.settings();
        env.extend([
            ("QUEUE_URL", self.queue_url.clone()),
            ("DLQ_URL", self.dlq_url.clone()),
            ("RULES", rules.to_owned()),
        ]);
        env
    }

    async fn processor(&self, rules: &str) -> genesys_relay::Result<processor::Deps> {
        let env = self.env(rules);
        let config = ProcessorConfig::from_env(&Env::from_fn(|k| env.get(k).cloned()))
            .expect("valid settings");
        processor::Deps::new(config, &self.aws.sdk, http_client()).await
    }

    /// The EventBridge path under `rules`: the handler, and the processor that acts on what it
    /// queues (resolving the rules' names at init).
    async fn eventbridge(&self, rules: &str) -> genesys_relay::Result<EventBridgePath> {
        let env = self.env(rules);
        let config = EventBridgeConfig::from_env(&Env::from_fn(|k| env.get(k).cloned()))
            .expect("valid settings");
        Ok(EventBridgePath {
            handler: eventbridge_handler::Deps::new(config, &self.aws.sdk),
            processor: self.processor(rules).await?,
        })
    }

    /// The rule invokes the handler with the sample event `file`; the processor runs over the
    /// queue.
    async fn deliver(&self, path: &EventBridgePath, file: &str) {
        let input: Value = serde_json::from_str(&sample_event(file)).unwrap();
        let input = serde_json::from_value(input).unwrap();
        eventbridge_handler::handle(LambdaEvent::new(input, Context::default()), &path.handler)
            .await
            .expect("queued");
        let batch: SqsEvent = self.aws.receive_batch(&self.queue_url, 60).await;
        let response =
            processor::handle(LambdaEvent::new(batch, Context::default()), &path.processor)
                .await
                .expect("handler");
        assert!(response.batch_item_failures.is_empty());
    }

    /// Queues a wrap-up webhook carrying `code`, then runs the processor over the queue.
    async fn webhook_wrapup(&self, deps: &processor::Deps, conversation: &str, code: &str) {
        let body = json!({
            "topicName": format!("v2.detail.events.conversation.{conversation}.acw"),
            "eventBody": {"conversationId": conversation, "participantId": "p1",
                          "wrapupCode": code, "addressTo": format!("tel:{CUSTOMER}")},
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
        let batch: SqsEvent = self.aws.receive_batch(&self.queue_url, 60).await;
        let response = processor::handle(LambdaEvent::new(batch, Context::default()), deps)
            .await
            .expect("handler");
        assert!(response.batch_item_failures.is_empty());
    }

    fn listings(&self) -> usize {
        self.providers
            .genesys
            .calls_to("/api/v2/routing/wrapupcodes")
            .len()
    }

    fn texts(&self) -> Vec<String> {
        self.providers
            .twilio
            .messages()
            .into_iter()
            .map(|m| m.body)
            .collect()
    }
}

/// The two functions of the EventBridge path.
struct EventBridgePath {
    handler: eventbridge_handler::Deps,
    processor: processor::Deps,
}

#[tokio::test]
async fn a_rule_keyed_by_name_texts_for_the_codes_id_on_the_webhook_path() {
    let setup = setup().await;
    let deps = setup
        .processor(BY_NAME)
        .await
        .expect("names resolve at init");
    let calls = setup
        .providers
        .genesys
        .calls_to("/api/v2/routing/wrapupcodes");
    assert_eq!(calls.len(), 1, "one name, one lookup");
    let query = calls[0].query.as_deref().unwrap_or_default();
    assert!(query.contains("name=Callback+Requested"), "{query}");

    setup.webhook_wrapup(&deps, "c1", CALLBACK_ID).await;
    assert_eq!(setup.texts(), ["Hi Ada, we will call you back."]);

    // The code whose name merely contains the configured one texts nobody.
    setup
        .webhook_wrapup(&deps, "c2", "0a4c6e8f-1b3d-4f5a-9c7e-2b4d6f8a0c1e")
        .await;
    assert_eq!(setup.texts().len(), 1);
}

#[tokio::test]
async fn a_rule_keyed_by_name_texts_for_the_codes_id_on_the_eventbridge_path() {
    let setup = setup().await;
    setup.providers.genesys.add_contact(
        CONTACT_LIST,
        CONTACT,
        json!({"firstName": "Grace", "phone": CUSTOMER}),
    );
    let path = setup
        .eventbridge(BY_NAME)
        .await
        .expect("names resolve at init");
    setup.deliver(&path, "eventbridge-outbound.json").await;
    setup.deliver(&path, "eventbridge-acw-org-code.json").await;
    let sent = setup.providers.twilio.messages();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to, CUSTOMER);
    assert_eq!(sent[0].body, "Hi Grace, we will call you back.");
    let reads = setup
        .providers
        .genesys
        .calls_to("/api/v2/outbound/contactlists/");
    assert_eq!(reads.len(), 1);
    assert_eq!(
        reads[0].path,
        format!("/api/v2/outbound/contactlists/{CONTACT_LIST}/contacts/{CONTACT}")
    );

    // Another organization code is not configured: nothing sent, nothing dead-lettered.
    setup
        .deliver(&path, "eventbridge-acw-other-code.json")
        .await;
    assert_eq!(setup.providers.twilio.messages().len(), 1);
    assert!(setup.aws.messages(&setup.dlq_url).await.is_empty());
}

#[tokio::test]
async fn a_name_genesys_does_not_know_stops_the_function_at_init_naming_it() {
    let setup = setup().await;
    let rules = r#"{"smsOnWrapup": {"templates": {"Call Back Later": "hi", "Callback Requested": "hi"}, "from": "+15005550006"}}"#;
    let Err(error) = setup.processor(rules).await else {
        panic!("refused at init")
    };
    let text = error.to_string();
    assert!(text.contains("\"Call Back Later\""), "{text}");
    assert!(!text.contains("\"Callback Requested\""), "{text}");

    // Rules keyed by ids alone never ask Genesys.
    let before = setup.listings();
    let ids = format!(
        r#"{{"smsOnWrapup": {{"templates": {{"{CALLBACK_ID}": "hi", "ININ-OUTBOUND-BUSY": "hi"}}, "from": "+15005550006"}}}}"#
    );
    setup.processor(&ids).await.expect("ids need no lookup");
    assert_eq!(setup.listings(), before);
}

#[tokio::test]
async fn a_code_made_again_under_its_name_is_found_by_one_limited_refresh() {
    let setup = setup().await;
    let deps = setup.processor(BY_NAME).await.expect("init");
    let genesys = &setup.providers.genesys;
    genesys.remove_wrapup_code(CALLBACK_ID);
    let recreated = "7d3e5f7a-9b1c-4d2e-8f4a-6b8c0d2e4f6a";
    genesys.add_wrapup_code(recreated, "Callback Requested");

    setup.webhook_wrapup(&deps, "c1", recreated).await;
    assert_eq!(setup.texts(), ["Hi Ada, we will call you back."]);
    assert_eq!(setup.listings(), 2, "init, then one refresh");

    // Unknown ids keep arriving: no more lookups within the interval, and nobody is texted.
    for n in 0..3 {
        setup
            .webhook_wrapup(
                &deps,
                &format!("u{n}"),
                "1e2d3c4b-5a69-4788-9a0b-1c2d3e4f5a6b",
            )
            .await;
    }
    assert_eq!(setup.listings(), 2);
    assert_eq!(setup.texts().len(), 1);
}

#[tokio::test]
async fn a_template_is_filled_from_the_contact_list_only_when_needed_and_never_sent_half_filled() {
    let setup = setup().await;
    // The contact is gone from the list: `{{contact.firstName}}` has no value and no fallback.
    let path = setup.eventbridge(BY_NAME).await.expect("init");
    setup.deliver(&path, "eventbridge-outbound.json").await;
    setup.deliver(&path, "eventbridge-acw.json").await;
    assert!(
        setup.providers.twilio.requests().is_empty(),
        "no half-filled SMS"
    );
    let dead = setup.aws.messages(&setup.dlq_url).await;
    assert_eq!(dead.len(), 1);
    let reason = attribute(&dead[0], dead_letter::attr::ERROR_MESSAGE).unwrap();
    assert!(reason.contains("{{contact.firstName}}"), "{reason}");
    assert_eq!(
        attribute(&dead[0], dead_letter::attr::ERROR_CLASS).as_deref(),
        Some("permanent")
    );

    // With a fallback the same gap is filled.
    setup.deliver(&path, "eventbridge-acw-org-code.json").await;
    assert_eq!(setup.texts(), ["Hi there, we will call you back."]);
}

#[tokio::test]
async fn a_template_without_columns_reads_no_contact() {
    let setup = setup().await;
    let plain = r#"{"smsOnWrapup": {"templates": {"ININ-OUTBOUND-NO-ANSWER": "Sorry we missed you ({{campaignId}})."}, "from": "+15005550006"}}"#;
    let path = setup.eventbridge(plain).await.expect("init");
    setup.deliver(&path, "eventbridge-outbound.json").await;
    setup.deliver(&path, "eventbridge-acw.json").await;
    assert_eq!(
        setup.texts(),
        ["Sorry we missed you (a7b8c9d0-e1f2-4a3b-8c4d-5e6f7a8b9c0d)."]
    );
    assert!(setup
        .providers
        .genesys
        .calls_to("/api/v2/outbound/contactlists/")
        .is_empty());
}

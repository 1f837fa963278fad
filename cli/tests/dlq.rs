//! `relay dlq` against a local AWS: dead letters shaped as the functions, Lambda, EventBridge and
//! SQS write them.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::types::{MessageAttributeValue, QueueAttributeName};
use genesys_relay::config::{Env, EventBridgeConfig};
use genesys_relay::dead_letter;
use genesys_relay::error::Error;
use lambda_runtime::{Context, LambdaEvent};
use relay_cli::dlq::{self, Command};
use relay_tests::{attribute, sample_event, LocalAws};
use serde_json::{json, Value};

const DEAD_LETTER_ATTRIBUTES: [&str; 4] = ["error-class", "error-message", "action", "failed-at"];

/// A main queue, its dead-letter queue, and `count` dead letters on it; `n` in each body, event
/// key and reason tells them apart.
struct Setup {
    aws: LocalAws,
    main: String,
    dlq: String,
}

fn original_attributes(n: usize) -> Vec<(String, String)> {
    [
        ("event-key", format!("key-{n}")),
        ("source", "genesys-webhook".to_owned()),
        ("received-at", "2026-11-22T05:00:00Z".to_owned()),
        ("content-type", "application/json".to_owned()),
        ("correlation-id", format!("corr-{n}")),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect()
}

async fn setup(count: usize) -> Setup {
    let aws = LocalAws::start().await;
    let main = aws.queue("relay-main").await;
    let dlq = aws.queue("relay-dlq").await;
    for n in 0..count {
        dead_letter::send(
            &aws.sqs(),
            &dlq,
            dead_letter::Letter::new(
                &format!(r#"{{"n":{n},"text":"hello"}}"#),
                original_attributes(n),
            ),
            "sms",
            &Error::permanent(format!("twilio refused message {n}")),
        )
        .await
        .expect("dead-lettered");
    }
    Setup { aws, main, dlq }
}

impl Setup {
    async fn run(&self, command: Command) -> anyhow::Result<relay_cli::output::Report> {
        dlq::run_with(command, &self.aws.sdk).await
    }

    fn list(&self, limit: u32) -> Command {
        Command::List {
            queue: self.dlq.clone(),
            limit,
            handler: None,
        }
    }

    fn redrive(&self, limit: Option<u32>, dry_run: bool) -> Command {
        Command::Redrive {
            queue: self.dlq.clone(),
            to: self.main.clone(),
            bus: None,
            handler: None,
            limit,
            dry_run,
        }
    }

    /// Ids of everything on the DLQ, read with `relay dlq list`, which leaves them there.
    async fn dlq_ids(&self) -> BTreeSet<String> {
        let report = self.run(self.list(100)).await.expect("list");
        ids(&report.json["messages"], "message_id")
    }
}

fn ids(values: &Value, field: &str) -> BTreeSet<String> {
    values
        .as_array()
        .expect("an array")
        .iter()
        .map(|value| {
            let id = if field.is_empty() {
                value
            } else {
                &value[field]
            };
            id.as_str().expect("an id").to_owned()
        })
        .collect()
}

fn message_ids(messages: &[aws_sdk_sqs::types::Message]) -> BTreeSet<String> {
    messages
        .iter()
        .map(|m| m.message_id.clone().expect("message id"))
        .collect()
}

#[tokio::test]
async fn on_a_fifo_dlq_list_says_how_many_letters_wait_behind_their_group_and_redrive_moves_all() {
    let aws = LocalAws::start().await;
    let main = aws.queue("relay-main.fifo").await;
    let dlq = aws.queue("relay-dlq.fifo").await;
    // Messages SQS moved after MaxReceiveCount keep their group: eleven of one conversation.
    for n in 0..11 {
        let mut request = aws
            .sqs()
            .send_message()
            .queue_url(&dlq)
            .message_body(format!(r#"{{"n":{n}}}"#))
            .message_group_id("conversation-1")
            .message_deduplication_id(format!("moved-{n}"));
        for (name, value) in original_attributes(n) {
            request = request.message_attributes(
                name,
                aws_sdk_sqs::types::MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(value)
                    .build()
                    .unwrap(),
            );
        }
        request.send().await.unwrap();
    }
    let s = Setup { aws, main, dlq };
    let listed = s.run(s.list(50)).await.expect("list");
    let seen = listed.json["count"].as_u64().unwrap();
    assert!(
        seen < 11,
        "a FIFO queue hides what waits behind a held message: {seen}"
    );
    assert_eq!(listed.json["hidden"].as_u64().unwrap() + seen, 11);
    assert!(listed
        .text
        .iter()
        .any(|line| line.contains("behind another of their message group")));

    let redriven = s.run(s.redrive(None, false)).await.expect("redrive");
    assert_eq!(redriven.json["moved"], 11, "{}", redriven.json);
    assert!(s.aws.messages(&s.dlq).await.is_empty());
    let depth = s
        .aws
        .sqs()
        .get_queue_attributes()
        .queue_url(&s.main)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap_or_default();
    assert_eq!(
        depth
            .get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            .map(String::as_str),
        Some("11"),
        "every letter is back on the main queue"
    );
}

#[tokio::test]
async fn list_shows_dead_letters_with_their_reason_and_leaves_them_on_the_queue() {
    let s = setup(3).await;
    let report = s.run(s.list(10)).await.expect("list");

    assert_eq!(report.json["count"], 3);
    let messages = report.json["messages"].as_array().expect("messages");
    let keys: BTreeSet<&str> = messages
        .iter()
        .map(|m| m["event_key"].as_str().expect("event key"))
        .collect();
    assert_eq!(keys, BTreeSet::from(["key-0", "key-1", "key-2"]));
    for message in messages {
        assert_eq!(message["source"], "genesys-webhook");
        assert_eq!(message["error_class"], "permanent");
        assert_eq!(message["action"], "sms");
        assert!(message["failed_at"].as_str().is_some_and(|t| t.len() >= 20));
        assert!(message["error_message"]
            .as_str()
            .is_some_and(|m| m.starts_with("twilio refused message ")));
    }
    let text = report.text.join("\n");
    assert!(text.contains("key-1") && text.contains("twilio refused message 1"));

    // Nothing was consumed and nothing stays hidden: all three can be received right away.
    let listed = ids(&report.json["messages"], "message_id");
    assert_eq!(message_ids(&s.aws.messages(&s.dlq).await), listed);
}

#[tokio::test]
async fn list_stops_at_its_limit_and_truncates_long_reasons_in_text_only() {
    let s = setup(3).await;
    let long = format!("upstream said: {}", "x".repeat(300));
    dead_letter::send(
        &s.aws.sqs(),
        &s.dlq,
        dead_letter::Letter::new("{}", original_attributes(9)),
        "sms",
        &Error::permanent(long.clone()),
    )
    .await
    .expect("dead-lettered");

    let limited = s.run(s.list(2)).await.expect("list");
    assert_eq!(limited.json["count"], 2);

    let all = s.run(s.list(10)).await.expect("list");
    let messages = all.json["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 4);
    assert!(messages.iter().any(|m| m["error_message"] == long.as_str()));
    assert!(!all.text.join("\n").contains(&long));
    assert!(all
        .text
        .iter()
        .any(|line| line.contains("upstream said: xxx")));
}

#[tokio::test]
async fn show_prints_one_message_in_full_and_leaves_it_on_the_queue() {
    let s = setup(3).await;
    let listed = s.run(s.list(10)).await.expect("list");
    let target = listed.json["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .find(|m| m["event_key"] == "key-2")
        .expect("key-2 listed");
    let id = target["message_id"].as_str().expect("id").to_owned();

    let report = s
        .run(Command::Show {
            queue: s.dlq.clone(),
            message_id: id.clone(),
            handler: None,
        })
        .await
        .expect("show");

    assert_eq!(report.json["message_id"], id.as_str());
    assert_eq!(
        report.json["attributes"]["error-message"],
        "twilio refused message 2"
    );
    assert_eq!(report.json["attributes"]["correlation-id"], "corr-2");
    assert_eq!(report.json["body_json"]["n"], 2);
    assert!(report.json["system_attributes"]["SentTimestamp"].is_string());
    let text = report.text.join("\n");
    assert!(text.contains("reason      twilio refused message 2"));
    assert!(text.contains("\"n\": 2"), "body pretty-printed: {text}");

    assert_eq!(s.aws.messages(&s.dlq).await.len(), 3);
}

#[tokio::test]
async fn show_of_an_unknown_id_fails_naming_it() {
    let s = setup(2).await;
    let error = s
        .run(Command::Show {
            queue: s.dlq.clone(),
            message_id: "no-such-message".into(),
            handler: None,
        })
        .await
        .expect_err("unknown id");
    assert!(format!("{error:#}").contains("no-such-message"));
    assert_eq!(s.aws.messages(&s.dlq).await.len(), 2);
}

#[tokio::test]
async fn dry_run_lists_what_would_move_and_moves_nothing() {
    let s = setup(3).await;
    let report = s.run(s.redrive(None, true)).await.expect("dry run");

    assert_eq!(report.json["dry_run"], true);
    assert_eq!(report.json["would_move"], 3);
    let limited = s.run(s.redrive(Some(1), true)).await.expect("dry run");
    assert_eq!(limited.json["would_move"], 1);

    assert!(s.aws.messages(&s.main).await.is_empty());
    assert_eq!(s.aws.messages(&s.dlq).await.len(), 3);
}

#[tokio::test]
async fn limited_redrive_moves_exactly_that_many_with_their_original_attributes_only() {
    let s = setup(5).await;
    let before = s.dlq_ids().await;

    let report = s.run(s.redrive(Some(2), false)).await.expect("redrive");

    assert_eq!(report.json["moved"], 2);
    assert_eq!(report.json["failed"], 0);
    assert_eq!(report.json["method"], "receive-send-delete");
    let moved = ids(&report.json["moved_message_ids"], "");
    assert_eq!(moved.len(), 2);
    assert!(moved.is_subset(&before));

    // Exactly those left the DLQ.
    let remaining = s.dlq_ids().await;
    assert_eq!(remaining, &before - &moved);

    // And arrived on the main queue as the original events.
    let arrived = s.aws.messages(&s.main).await;
    assert_eq!(arrived.len(), 2);
    for message in &arrived {
        let body: Value =
            serde_json::from_str(message.body.as_deref().expect("body")).expect("json body");
        let n = body["n"].as_u64().expect("n") as usize;
        for (name, value) in original_attributes(n) {
            assert_eq!(attribute(message, &name).as_deref(), Some(value.as_str()));
        }
        for name in DEAD_LETTER_ATTRIBUTES {
            assert_eq!(
                attribute(message, name),
                None,
                "{name} must not be redriven"
            );
        }
    }
}

#[tokio::test]
async fn redrive_without_limit_falls_back_and_moves_everything() {
    let s = setup(12).await;
    let report = s.run(s.redrive(None, false)).await.expect("redrive");

    assert_eq!(report.json["method"], "receive-send-delete");
    assert!(report.json["fallback_reason"]
        .as_str()
        .is_some_and(|r| r.contains("StartMessageMoveTask")));
    assert_eq!(report.json["moved"], 12);
    assert_eq!(report.json["failed"], 0);
    assert!(report.text[0].contains("receive-send-delete"));

    assert!(s.aws.messages(&s.dlq).await.is_empty());
    let keys: BTreeSet<String> = s
        .aws
        .messages(&s.main)
        .await
        .iter()
        .map(|m| attribute(m, "event-key").expect("event key"))
        .collect();
    assert_eq!(keys, (0..12).map(|n| format!("key-{n}")).collect());
}

#[tokio::test]
async fn a_failing_send_moves_nothing_and_deletes_nothing() {
    let s = setup(3).await;
    let missing = format!("{}/123456789012/no-such-queue", s.aws.endpoint);
    for limit in [None, Some(2)] {
        let error = s
            .run(Command::Redrive {
                queue: s.dlq.clone(),
                to: missing.clone(),
                bus: None,
                handler: None,
                limit,
                dry_run: false,
            })
            .await
            .expect_err("a redrive that moved nothing fails");
        assert!(
            error.to_string().contains("not moved cleanly"),
            "limit {limit:?}: {error}"
        );
        // Every failed message is visible again at once, for the next attempt.
        assert_eq!(s.dlq_ids().await.len(), 3, "limit {limit:?}");
    }
    assert!(s.aws.messages(&s.main).await.is_empty());
    assert_eq!(s.aws.messages(&s.dlq).await.len(), 3);
}

#[tokio::test]
async fn the_binary_lists_as_json() {
    let s = setup(2).await;
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_relay"))
        .args(["dlq", "list", "--queue", &s.dlq, "--json"])
        .env("AWS_ENDPOINT_URL", &s.aws.endpoint)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .output()
        .expect("relay runs");

    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json: Value = serde_json::from_slice(&output.stdout).expect("JSON on stdout");
    assert_eq!(json["count"], 2);
    assert_eq!(json["messages"][0]["error_class"], "permanent");
    assert_eq!(s.aws.messages(&s.dlq).await.len(), 2);
}

#[test]
fn dlq_help_exits_zero_and_names_the_commands() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_relay"))
        .args(["dlq", "--help"])
        .output()
        .expect("relay runs");
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for command in ["list", "show", "redrive"] {
        assert!(help.contains(command), "{help}");
    }
}

// ---------------------------------------------------------------- every shape

/// Sources the test bus's rule passes on, as the stack's rule passes Genesys events. Not an
/// `aws.` source: EventBridge takes those only from AWS and its partners, never from PutEvents.
const TEST_SOURCE: &str = "genesys-relay.test/cloud/org/relay";
const BUS: &str = "genesys-relay-test";
const RULE: &str = "genesys-events";
const RESOURCE: &str = "arn:aws:example:us-east-1:123456789012:thing/1";
const FUNCTION_ARN: &str =
    "arn:aws:lambda:us-east-1:123456789012:function:relay-EventBridgeHandler:$LATEST";

/// The sample `.acw` event from `events/`, from [`TEST_SOURCE`], with one resource and `edit`
/// applied.
fn genesys_event(edit: impl FnOnce(&mut Value)) -> Value {
    let mut event: Value =
        serde_json::from_str(&sample_event("eventbridge-acw.json")).expect("json");
    event["source"] = json!(TEST_SOURCE);
    event["resources"] = json!([RESOURCE]);
    edit(&mut event);
    event
}

/// A bus whose rule passes [`TEST_SOURCE`] events to a queue (the stack's rule invokes the
/// handler instead); returns that queue, where replayed events arrive.
async fn event_bus(aws: &LocalAws) -> String {
    use aws_sdk_eventbridge::types::Target;
    let events = aws_sdk_eventbridge::Client::new(&aws.sdk);
    events
        .create_event_bus()
        .name(BUS)
        .send()
        .await
        .expect("bus");
    let queue = aws.queue("handler-stand-in").await;
    let arn = queue_arn(aws, &queue).await;
    events
        .put_rule()
        .name(RULE)
        .event_bus_name(BUS)
        .event_pattern(json!({"source": [{"prefix": "genesys-relay.test/"}]}).to_string())
        .send()
        .await
        .expect("rule");
    events
        .put_targets()
        .rule(RULE)
        .event_bus_name(BUS)
        .targets(
            Target::builder()
                .id("queue")
                .arn(arn)
                .build()
                .expect("target"),
        )
        .send()
        .await
        .expect("target");
    queue
}

async fn queue_arn(aws: &LocalAws, url: &str) -> String {
    aws.sqs()
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("attributes")
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .expect("arn")
}

/// Sends a message as another writer (Lambda, EventBridge) would: a body and string attributes.
async fn put(aws: &LocalAws, queue: &str, body: &str, attributes: &[(&str, &str)]) {
    let attributes = attributes
        .iter()
        .map(|(name, value)| {
            let value = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(*value)
                .build()
                .expect("attribute");
            ((*name).to_owned(), value)
        })
        .collect();
    aws.sqs()
        .send_message()
        .queue_url(queue)
        .message_body(body)
        .set_message_attributes(Some(attributes))
        .send()
        .await
        .expect("sent");
}

/// The eventbridge-handler, with its DLQ.
fn handler(s: &Setup) -> eventbridge_handler::Deps {
    let env = [
        ("QUEUE_URL", s.main.clone()),
        ("DLQ_URL", s.dlq.clone()),
        ("RULES", "{}".to_owned()),
    ];
    let lookup = |name: &str| env.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone());
    let config = EventBridgeConfig::from_env(&Env::from_fn(lookup)).expect("settings");
    eventbridge_handler::Deps::new(config, &s.aws.sdk)
}

/// Hands `event` to the handler as Lambda would.
async fn deliver(deps: &eventbridge_handler::Deps, event: Value) {
    let input: eventbridge_handler::Input = serde_json::from_value(event).expect("an event");
    eventbridge_handler::handle(LambdaEvent::new(input, Context::default()), deps)
        .await
        .expect("handled (dead-lettered)");
}

/// A main queue whose redrive policy moves a message to `dlq` on its second receive, and one
/// message so moved: a letter SQS wrote, with the envelope and no reason.
async fn sqs_move(aws: &LocalAws, dlq: &str) {
    let source = aws.queue("relay-main-with-policy").await;
    let policy = json!({"deadLetterTargetArn": queue_arn(aws, dlq).await, "maxReceiveCount": 1});
    aws.sqs()
        .set_queue_attributes()
        .queue_url(&source)
        .attributes(QueueAttributeName::RedrivePolicy, policy.to_string())
        .send()
        .await
        .expect("redrive policy");
    let attributes: Vec<(String, String)> = original_attributes(7);
    let attributes: Vec<(&str, &str)> = attributes
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    put(
        aws,
        &source,
        r#"{"n":7,"text":"retried too often"}"#,
        &attributes,
    )
    .await;
    for _ in 0..2 {
        // The first receive counts one; the second finds the count spent and moves it.
        aws.sqs()
            .receive_message()
            .queue_url(&source)
            .visibility_timeout(0)
            .send()
            .await
            .expect("receive");
    }
}

/// A DLQ holding one letter of each shape and one of none, the functions' written by the
/// functions themselves.
struct Shapes {
    s: Setup,
    target: String,
}

async fn shapes() -> Shapes {
    let s = setup(1).await; // the processor's letter: key-0
    let target = event_bus(&s.aws).await;
    let deps = handler(&s);

    // The handler's letter: a detail it cannot read.
    deliver(
        &deps,
        genesys_event(|e| e["detail"] = json!({"unexpected": "handler"})),
    )
    .await;
    // Lambda's on-failure record of a handler invocation that failed three times.
    let record = json!({
        "version": "1.0",
        "timestamp": "2026-11-22T05:01:00.000Z",
        "requestContext": {
            "requestId": "c0ffee00-0000-4000-8000-000000000001",
            "functionArn": FUNCTION_ARN,
            "condition": "RetriesExhausted",
            "approximateInvokeCount": 3
        },
        "requestPayload": genesys_event(|e| e["detail"]["eventBody"]["wrapupCode"] = json!("on-failure")),
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": {"errorType": "Retryable", "errorMessage": "wrap-up arrived before its outbound event"}
    });
    put(&s.aws, &s.dlq, &record.to_string(), &[]).await;
    // EventBridge's dead letter of an event it could not deliver to the rule's target.
    let rule_arn = format!("arn:aws:events:us-east-1:123456789012:rule/{BUS}/{RULE}");
    put(
        &s.aws,
        &s.dlq,
        &genesys_event(|e| e["detail"]["eventBody"]["wrapupCode"] = json!("rule")).to_string(),
        &[
            ("RULE_ARN", &rule_arn),
            ("TARGET_ARN", FUNCTION_ARN),
            ("ERROR_CODE", "SDK_CLIENT_ERROR"),
            ("ERROR_MESSAGE", "Lambda throttled the invocation"),
            ("EXHAUSTED_RETRY_CONDITION", "MaximumRetryAttempts"),
            ("RETRY_ATTEMPTS", "10"),
        ],
    )
    .await;
    // SQS's move after too many receives.
    sqs_move(&s.aws, &s.dlq).await;
    // And something nobody here writes.
    put(
        &s.aws,
        &s.dlq,
        "not a letter anyone here writes",
        &[("note", "stray")],
    )
    .await;

    Shapes { s, target }
}

impl Shapes {
    fn redrive(&self, bus: Option<&str>) -> Command {
        Command::Redrive {
            queue: self.s.dlq.clone(),
            to: self.s.main.clone(),
            bus: bus.map(str::to_owned),
            handler: None,
            limit: None,
            dry_run: false,
        }
    }
}

/// The listed letters by origin.
fn by_origin(report: &relay_cli::output::Report) -> std::collections::BTreeMap<String, Value> {
    report.json["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| (m["origin"].as_str().expect("origin").to_owned(), m.clone()))
        .collect()
}

/// Makes messages that [`LocalAws::messages`] received (and so hid) visible again.
async fn visible_again(aws: &LocalAws, queue: &str, messages: &[aws_sdk_sqs::types::Message]) {
    for message in messages {
        aws.sqs()
            .change_message_visibility()
            .queue_url(queue)
            .receipt_handle(message.receipt_handle.clone().expect("receipt"))
            .visibility_timeout(0)
            .send()
            .await
            .expect("visible again");
    }
}

fn event_body(message: &aws_sdk_sqs::types::Message) -> Value {
    serde_json::from_str(message.body.as_deref().expect("body")).expect("json")
}

#[tokio::test]
async fn list_and_show_describe_every_shape() {
    let x = shapes().await;
    let report = x.s.run(x.s.list(10)).await.expect("list");
    let letters = by_origin(&report);
    assert_eq!(
        letters.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "eventbridge-handler",
            "eventbridge-rule",
            "lambda-on-failure",
            "processor",
            "sqs-redrive-policy",
            "unknown"
        ]
    );

    let processor = &letters["processor"];
    assert_eq!(processor["event_key"], "key-0");
    assert_eq!(processor["error_message"], "twilio refused message 0");
    assert_eq!(processor["replay"], "main-queue");

    let handler = &letters["eventbridge-handler"];
    assert_eq!(handler["action"], "decode");
    assert!(handler["error_message"]
        .as_str()
        .is_some_and(|m| m.contains("not a Genesys event")));
    assert_eq!(
        handler["detail_type"],
        "v2.detail.events.conversation.{id}.acw"
    );
    assert_eq!(handler["source"], TEST_SOURCE);
    assert_eq!(handler["replay"], "event-bus");

    let on_failure = &letters["lambda-on-failure"];
    assert_eq!(on_failure["error_class"], "RetriesExhausted");
    assert_eq!(on_failure["failed_at"], "2026-11-22T05:01:00.000Z");
    let reason = on_failure["error_message"].as_str().expect("reason");
    assert!(reason.contains("after 3 attempt(s)") && reason.contains("before its outbound event"));
    assert!(
        on_failure["event_key"]
            .as_str()
            .is_some_and(|k| k.starts_with("sha256:")),
        "{on_failure}"
    );
    assert_eq!(on_failure["replay"], "event-bus");

    let rule = &letters["eventbridge-rule"];
    assert_eq!(rule["error_class"], "SDK_CLIENT_ERROR");
    assert!(rule["error_message"]
        .as_str()
        .is_some_and(|m| m.contains("Lambda throttled the invocation")));
    assert_eq!(rule["replay_bus"], BUS);

    let moved = &letters["sqs-redrive-policy"];
    assert_eq!(moved["event_key"], "key-7");
    assert!(moved["error_message"]
        .as_str()
        .is_some_and(|m| m.contains("redrive policy")));
    assert_eq!(moved["replay"], "main-queue");

    let unknown = &letters["unknown"];
    assert_eq!(unknown["replay"], "none");
    assert!(unknown["not_replayable"].as_str().is_some());

    let text = report.text.join("\n");
    for origin in letters.keys() {
        assert!(text.contains(origin.as_str()), "{origin} listed: {text}");
    }

    let id = on_failure["message_id"].as_str().expect("id").to_owned();
    let shown =
        x.s.run(Command::Show {
            queue: x.s.dlq.clone(),
            message_id: id,
            handler: None,
        })
        .await
        .expect("show");
    assert_eq!(shown.json["origin"], "lambda-on-failure");
    assert_eq!(
        shown.json["event"]["detail"]["eventBody"]["wrapupCode"],
        "on-failure"
    );
    let text = shown.text.join("\n");
    assert!(text.contains("origin      lambda-on-failure"), "{text}");
    assert!(text.contains("redrive to  the event bus (--bus)"), "{text}");

    // A dry run says where each would go, and sends nothing.
    let dry =
        x.s.run(Command::Redrive {
            queue: x.s.dlq.clone(),
            to: x.s.main.clone(),
            bus: Some(BUS.into()),
            handler: None,
            limit: None,
            dry_run: true,
        })
        .await
        .expect("dry run");
    assert_eq!(dry.json["would_move"], 5);
    assert_eq!(dry.json["would_keep"], 1);
    assert_eq!(x.s.aws.messages(&x.s.dlq).await.len(), 6);
}

#[tokio::test]
async fn redrive_sends_each_shape_back_to_where_it_is_processed_and_keeps_the_rest() {
    let x = shapes().await;
    let report = x.s.run(x.redrive(Some(BUS))).await.expect("redrive");

    assert_eq!(report.json["moved"], 5, "{}", report.json);
    assert_eq!(report.json["to_queue"], 2);
    assert_eq!(report.json["to_bus"][BUS], 3);
    assert_eq!(report.json["failed"], 0);
    assert_eq!(report.json["kept"], 1);
    assert_eq!(report.json["kept_letters"][0]["origin"], "unknown");
    assert!(report.text.join("\n").contains("kept"));

    // Queued letters: on the main queue as the original messages, with where they failed.
    let queued = x.s.aws.messages(&x.s.main).await;
    assert_eq!(queued.len(), 2);
    for message in &queued {
        let n = event_body(message)["n"].as_u64().expect("n") as usize;
        for (name, value) in original_attributes(n) {
            assert_eq!(attribute(message, &name).as_deref(), Some(value.as_str()));
        }
        for name in DEAD_LETTER_ATTRIBUTES.into_iter().chain(["origin"]) {
            assert_eq!(
                attribute(message, name),
                None,
                "{name} must not be redriven"
            );
        }
        let previous = attribute(message, "previous-error").expect("previous-error");
        match n {
            0 => assert!(previous.contains("twilio refused message 0"), "{previous}"),
            _ => assert!(previous.contains("redrive policy"), "{previous}"),
        }
    }

    // Events: on the bus, where the rule passes them to its target as they were.
    let arrived = x.s.aws.messages(&x.target).await;
    assert_eq!(arrived.len(), 3);
    let mut codes = BTreeSet::new();
    for message in &arrived {
        let event = event_body(message);
        assert_eq!(event["source"], TEST_SOURCE);
        assert_eq!(
            event["detail-type"],
            "v2.detail.events.conversation.{id}.acw"
        );
        assert_eq!(event["time"], "2026-11-22T05:00:00Z");
        let resources = event["resources"].as_array().expect("resources");
        assert_eq!(resources[0], RESOURCE, "original resources kept: {event}");
        let previous = resources[1]
            .as_str()
            .and_then(|r| r.strip_prefix(dead_letter::PREVIOUS_ERROR_RESOURCE))
            .expect("the history rides along");
        match event["detail"]["eventBody"]["wrapupCode"].as_str() {
            Some(code @ "on-failure") => {
                assert!(previous.contains("before its outbound event"), "{previous}");
                codes.insert(code.to_owned());
            }
            Some(code @ "rule") => {
                assert!(previous.contains("Lambda throttled"), "{previous}");
                codes.insert(code.to_owned());
            }
            _ => {
                assert_eq!(event["detail"], json!({"unexpected": "handler"}));
                assert!(previous.contains("not a Genesys event"), "{previous}");
                codes.insert("handler".to_owned());
            }
        }
    }
    assert_eq!(codes.len(), 3);

    // The one that cannot be redriven is still there, as it was.
    let left = x.s.aws.messages(&x.s.dlq).await;
    assert_eq!(left.len(), 1);
    assert_eq!(
        left[0].body.as_deref(),
        Some("not a letter anyone here writes")
    );
    assert_eq!(attribute(&left[0], "note").as_deref(), Some("stray"));
}

#[tokio::test]
async fn without_a_bus_only_rule_dead_letters_go_back_and_other_events_stay_with_their_reason() {
    let x = shapes().await;
    let report = x.s.run(x.redrive(None)).await.expect("redrive");

    assert_eq!(report.json["to_queue"], 2);
    assert_eq!(report.json["to_bus"][BUS], 1, "the rule's own bus");
    assert_eq!(report.json["kept"], 3);
    let kept: BTreeSet<&str> = report.json["kept_letters"]
        .as_array()
        .expect("kept")
        .iter()
        .map(|k| k["origin"].as_str().expect("origin"))
        .collect();
    assert_eq!(
        kept,
        BTreeSet::from(["eventbridge-handler", "lambda-on-failure", "unknown"])
    );
    assert!(report.json["kept_letters"]
        .as_array()
        .expect("kept")
        .iter()
        .filter(|k| k["origin"] != "unknown")
        .all(|k| k["why"].as_str().is_some_and(|w| w.contains("--bus"))));

    let arrived = x.s.aws.messages(&x.target).await;
    assert_eq!(arrived.len(), 1);
    assert_eq!(
        event_body(&arrived[0])["detail"]["eventBody"]["wrapupCode"],
        "rule"
    );

    // The kept letters read as before: reasons intact.
    let listed = by_origin(&x.s.run(x.s.list(10)).await.expect("list"));
    assert_eq!(listed.len(), 3);
    assert!(listed["eventbridge-handler"]["error_message"]
        .as_str()
        .is_some_and(|m| m.contains("not a Genesys event")));
    assert_eq!(
        listed["lambda-on-failure"]["error_class"],
        "RetriesExhausted"
    );
}

#[tokio::test]
async fn a_partner_event_cannot_be_put_back_and_stays_with_its_reason() {
    let s = setup(0).await;
    let deps = handler(&s);
    let mut partner = genesys_event(|e| e["detail"] = json!({"unexpected": "partner"}));
    partner["source"] = json!("aws.partner/genesys.com/cloud/org/relay");
    deliver(&deps, partner).await;

    let report = s
        .run(Command::Redrive {
            queue: s.dlq.clone(),
            to: s.main.clone(),
            bus: Some(BUS.into()),
            handler: None,
            limit: None,
            dry_run: false,
        })
        .await
        .expect("redrive");
    assert_eq!(report.json["moved"], 0);
    assert_eq!(report.json["kept"], 1);
    assert!(report.json["kept_letters"][0]["why"]
        .as_str()
        .is_some_and(|w| w.contains("aws.")));

    let left = s.aws.messages(&s.dlq).await;
    assert_eq!(left.len(), 1);
    assert!(attribute(&left[0], "error-message").is_some_and(|m| m.contains("not a Genesys event")));
    assert_eq!(
        attribute(&left[0], "origin").as_deref(),
        Some("eventbridge-handler")
    );
}

#[tokio::test]
async fn a_replayed_event_that_fails_again_keeps_every_earlier_reason() {
    let s = setup(0).await;
    let target = event_bus(&s.aws).await;
    let deps = handler(&s);
    // An event the handler cannot read: each replay fails the same way.
    deliver(
        &deps,
        genesys_event(|e| e["detail"] = json!({"unexpected": "again"})),
    )
    .await;

    for round in 1..=3 {
        let report = s
            .run(Command::Redrive {
                queue: s.dlq.clone(),
                to: s.main.clone(),
                bus: Some(BUS.into()),
                handler: None,
                limit: None,
                dry_run: false,
            })
            .await
            .expect("redrive");
        assert_eq!(
            report.json["to_bus"][BUS], 1,
            "round {round}: {}",
            report.json
        );
        let arrived = s.aws.messages(&target).await;
        assert_eq!(arrived.len(), 1);
        s.aws
            .sqs()
            .delete_message()
            .queue_url(&target)
            .receipt_handle(arrived[0].receipt_handle.clone().expect("receipt"))
            .send()
            .await
            .expect("deleted");
        // The handler runs the replay, which fails again and is dead-lettered anew.
        deliver(&deps, event_body(&arrived[0])).await;
        let letters = s.aws.messages(&s.dlq).await;
        assert_eq!(letters.len(), 1);
        assert!(attribute(&letters[0], "error-message")
            .is_some_and(|m| m.contains("not a Genesys event")));
        let previous = attribute(&letters[0], "previous-error").expect("history");
        let lines: Vec<&str> = previous.lines().collect();
        assert_eq!(
            lines.len(),
            round,
            "one line per earlier failure: {previous}"
        );
        assert!(lines
            .iter()
            .all(|line| line.contains("in decode") && line.contains("not a Genesys event")));
        visible_again(&s.aws, &s.dlq, &letters).await;
    }
}

// ---------------------------------------------------------------- redrive ends

#[tokio::test]
async fn a_redrive_into_its_own_queue_ends_after_the_letters_present_at_the_start() {
    let s = setup(12).await;
    let report = s
        .run(Command::Redrive {
            queue: s.dlq.clone(),
            to: s.dlq.clone(),
            bus: None,
            handler: None,
            limit: None,
            dry_run: false,
        })
        .await
        .expect("redrive");
    assert_eq!(report.json["budget"], 12);
    assert_eq!(report.json["moved"], 12);
    // Each came straight back; the queue holds them once, with where they failed.
    let letters = s.aws.messages(&s.dlq).await;
    assert_eq!(letters.len(), 12);
    assert!(letters
        .iter()
        .all(|m| attribute(m, "previous-error").is_some_and(|p| p.contains("twilio refused"))));
}

#[tokio::test]
async fn a_letter_that_comes_back_in_the_same_run_is_not_moved_again() {
    let s = setup(12).await;
    // One letter is held by another reader: counted as present, never received, so the run's
    // budget outlasts the letters it can move and it meets the ones coming back.
    s.aws
        .sqs()
        .receive_message()
        .queue_url(&s.dlq)
        .visibility_timeout(600)
        .send()
        .await
        .expect("held");
    let report = s
        .run(Command::Redrive {
            queue: s.dlq.clone(),
            to: s.dlq.clone(),
            bus: None,
            handler: None,
            limit: None,
            dry_run: false,
        })
        .await
        .expect("redrive");
    assert_eq!(report.json["budget"], 12);
    assert_eq!(report.json["moved"], 11, "{}", report.json);
    assert_eq!(
        report.json["returned"], 11,
        "each copy met once, left alone"
    );
    assert!(report.text.join("\n").contains("came back during this run"));
    assert_eq!(s.aws.messages(&s.dlq).await.len(), 11);
}

#[tokio::test]
async fn redrive_ends_while_a_consumer_keeps_dead_lettering_what_it_moves() {
    const LETTERS: usize = 15;
    let s = setup(LETTERS).await;
    // The processor, failing every message again: each moved letter is dead-lettered anew.
    let redead = Arc::new(AtomicUsize::new(0));
    let consumer = {
        let (sqs, main, dlq, redead) = (s.aws.sqs(), s.main.clone(), s.dlq.clone(), redead.clone());
        tokio::spawn(async move {
            while redead.load(Ordering::SeqCst) < LETTERS {
                let out = sqs
                    .receive_message()
                    .queue_url(&main)
                    .max_number_of_messages(10)
                    .wait_time_seconds(1)
                    .message_attribute_names("All")
                    .send()
                    .await
                    .expect("receive");
                for message in out.messages.unwrap_or_default() {
                    let attributes = message
                        .message_attributes
                        .clone()
                        .unwrap_or_default()
                        .into_iter()
                        .filter_map(|(n, v)| Some((n, v.string_value?)));
                    dead_letter::send(
                        &sqs,
                        &dlq,
                        dead_letter::Letter::new(
                            message.body.as_deref().unwrap_or_default(),
                            attributes,
                        ),
                        "sms",
                        &Error::permanent("twilio refused it again"),
                    )
                    .await
                    .expect("dead-lettered again");
                    sqs.delete_message()
                        .queue_url(&main)
                        .receipt_handle(message.receipt_handle.expect("receipt"))
                        .send()
                        .await
                        .expect("deleted");
                    redead.fetch_add(1, Ordering::SeqCst);
                }
            }
        })
    };

    let report = tokio::time::timeout(Duration::from_secs(120), s.run(s.redrive(None, false)))
        .await
        .expect("the redrive ends")
        .expect("redrive");
    assert_eq!(
        report.json["moved"], LETTERS,
        "each letter moved once: {}",
        report.json
    );
    let returned = report.json["returned"].as_u64().expect("returned") as usize;
    assert!(returned <= LETTERS);

    tokio::time::timeout(Duration::from_secs(120), consumer)
        .await
        .expect("the consumer re-dead-lettered every one")
        .expect("consumer");
    // Every letter is back, once, with its new reason and its first one.
    let letters = s.aws.messages(&s.dlq).await;
    assert_eq!(letters.len(), LETTERS);
    for letter in &letters {
        assert_eq!(
            attribute(letter, "error-message").as_deref(),
            Some("twilio refused it again")
        );
        let n = event_body(letter)["n"].as_u64().expect("n");
        let previous = attribute(letter, "previous-error").expect("history");
        assert!(
            previous.contains(&format!("twilio refused message {n}")),
            "{previous}"
        );
    }
}

#[tokio::test]
async fn identical_letters_present_at_the_start_are_all_moved() {
    // The same event dead-lettered twice within one second: the letters are alike to the byte
    // (the envelope's `received-at` has whole seconds), and both were there when the run began.
    let s = setup(0).await;
    for _ in 0..2 {
        dead_letter::send(
            &s.aws.sqs(),
            &s.dlq,
            dead_letter::Letter::new(r#"{"n":1}"#, original_attributes(1)),
            "sms",
            &Error::permanent("no customer number"),
        )
        .await
        .expect("dead-lettered");
    }
    let report = s.run(s.redrive(None, false)).await.expect("redrive");
    assert_eq!(report.json["moved"], 2, "{}", report.json);
    assert_eq!(report.json["returned"], 0);
    assert_eq!(s.aws.messages(&s.main).await.len(), 2);
}

#[tokio::test]
async fn letters_of_one_event_for_different_deliveries_are_all_moved_in_one_run() {
    let s = setup(0).await;
    for endpoint in ["a", "b"] {
        let mut attributes = original_attributes(1);
        attributes.push(("forward".to_owned(), format!("{endpoint};1;0")));
        dead_letter::send(
            &s.aws.sqs(),
            &s.dlq,
            dead_letter::Letter::new(r#"{"n":1}"#, attributes),
            &format!("forward:{endpoint}"),
            &Error::permanent("gave up"),
        )
        .await
        .expect("dead-lettered");
    }
    let report = s.run(s.redrive(None, false)).await.expect("redrive");
    assert_eq!(report.json["moved"], 2, "{}", report.json);
    assert_eq!(report.json["returned"], 0);
    let jobs: BTreeSet<String> = s
        .aws
        .messages(&s.main)
        .await
        .iter()
        .map(|m| attribute(m, "forward").expect("the job goes back too"))
        .collect();
    assert_eq!(
        jobs,
        BTreeSet::from(["a;1;0".to_owned(), "b;1;0".to_owned()])
    );
}

// ---------------------------------------------------------------- partner events

/// A Genesys partner event's source (and its bus's name): EventBridge refuses PutEvents of it.
const PARTNER_SOURCE: &str = "aws.partner/genesys.com/cloud/org/relay";
const HANDLER: &str = "relay-EventBridgeHandler";
const HANDLER_ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:relay-EventBridgeHandler";

/// What the stand-in for Lambda was asked: the function in the path, the invocation type header
/// and the payload.
#[derive(Debug, Clone)]
struct Invocation {
    function: String,
    invocation_type: Option<String>,
    payload: Value,
}

/// Lambda's Invoke API on 127.0.0.1, as the SDK calls it: records each call and answers with the
/// status set (202, accepted for asynchronous invocation, unless told otherwise).
struct FakeLambda {
    served: relay_tests::fakes::server::Served,
    calls: Arc<std::sync::Mutex<Vec<Invocation>>>,
    status: Arc<std::sync::Mutex<u16>>,
}

impl FakeLambda {
    async fn start() -> Self {
        use axum::extract::{Path, State};
        use axum::http::{HeaderMap, StatusCode};
        use relay_tests::fakes::server::{bind, lock, serve};

        type Shared = (
            Arc<std::sync::Mutex<Vec<Invocation>>>,
            Arc<std::sync::Mutex<u16>>,
        );
        async fn invoke(
            State((calls, status)): State<Shared>,
            Path(function): Path<String>,
            headers: HeaderMap,
            body: String,
        ) -> (StatusCode, HeaderMap, String) {
            let invocation_type = headers
                .get("x-amz-invocation-type")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let payload = serde_json::from_str(&body).unwrap_or(Value::String(body));
            lock(&calls).push(Invocation {
                function: function.clone(),
                invocation_type,
                payload,
            });
            let status = StatusCode::from_u16(*lock(&status)).expect("a status");
            let mut answer = HeaderMap::new();
            if status == StatusCode::NOT_FOUND {
                answer.insert(
                    "x-amzn-errortype",
                    "ResourceNotFoundException".parse().expect("header"),
                );
                let body =
                    json!({"Type": "User", "Message": format!("Function not found: {function}")});
                return (status, answer, body.to_string());
            }
            (status, answer, String::new())
        }

        let calls = Arc::new(std::sync::Mutex::new(Vec::new()));
        let status = Arc::new(std::sync::Mutex::new(202));
        let app = axum::Router::new()
            .route(
                "/2015-03-31/functions/{function}/invocations",
                axum::routing::post(invoke),
            )
            .with_state((calls.clone(), status.clone()));
        let (listener, port) = bind().await;
        Self {
            served: serve(listener, port, app),
            calls,
            status,
        }
    }

    fn answer(&self, status: u16) {
        *relay_tests::fakes::server::lock(&self.status) = status;
    }

    /// The calls so far, forgetting them.
    fn take(&self) -> Vec<Invocation> {
        std::mem::take(&mut *relay_tests::fakes::server::lock(&self.calls))
    }
}

/// Runs the `relay` binary with `args` against the local AWS, its Lambda calls going to `lambda`
/// (AWS_ENDPOINT_URL_LAMBDA), with `env` set too.
async fn relay(
    aws: &LocalAws,
    lambda: &FakeLambda,
    args: &[&str],
    env: &[(&str, &str)],
) -> std::process::Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_relay"));
    command
        .args(args)
        .env_remove("RELAY_EVENT_BUS")
        .env_remove("RELAY_EVENTBRIDGE_HANDLER")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")
        .env("AWS_ENDPOINT_URL", &aws.endpoint)
        .env("AWS_ENDPOINT_URL_LAMBDA", &lambda.served.base_url)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .envs(env.iter().copied());
    // Off the runtime's thread, which serves the stand-in for Lambda meanwhile.
    tokio::task::spawn_blocking(move || command.output().expect("relay runs"))
        .await
        .expect("relay finished")
}

/// A DLQ holding a partner event in each shape that holds an event, the handler's letter written
/// by the handler itself; the events as they were first delivered, by shape.
struct Partners {
    s: Setup,
    handler: eventbridge_handler::Deps,
    delivered: std::collections::BTreeMap<&'static str, Value>,
}

/// The shape a replayed partner event came from, by what its detail holds.
fn partner_shape(event: &Value) -> &'static str {
    match event["detail"]["eventBody"]["wrapupCode"].as_str() {
        Some("on-failure") => "lambda-on-failure",
        Some("rule") => "eventbridge-rule",
        _ => "eventbridge-handler",
    }
}

async fn partners() -> Partners {
    let s = setup(0).await;
    let deps = handler(&s);
    let partner = |edit: &dyn Fn(&mut Value)| {
        genesys_event(|e| {
            e["source"] = json!(PARTNER_SOURCE);
            edit(e);
        })
    };
    let handler_event = partner(&|e| e["detail"] = json!({"unexpected": "partner"}));
    deliver(&deps, handler_event.clone()).await;
    let on_failure_event =
        partner(&|e| e["detail"]["eventBody"]["wrapupCode"] = json!("on-failure"));
    let record = json!({
        "version": "1.0",
        "timestamp": "2026-11-22T05:01:00.000Z",
        "requestContext": {
            "requestId": "c0ffee00-0000-4000-8000-000000000002",
            "functionArn": FUNCTION_ARN,
            "condition": "RetriesExhausted",
            "approximateInvokeCount": 3
        },
        "requestPayload": on_failure_event,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": {"errorType": "Retryable", "errorMessage": "wrap-up arrived before its outbound event"}
    });
    put(&s.aws, &s.dlq, &record.to_string(), &[]).await;
    let rule_event = partner(&|e| e["detail"]["eventBody"]["wrapupCode"] = json!("rule"));
    let rule_arn = format!("arn:aws:events:us-east-1:123456789012:rule/{PARTNER_SOURCE}/{RULE}");
    put(
        &s.aws,
        &s.dlq,
        &rule_event.to_string(),
        &[
            ("RULE_ARN", &rule_arn),
            ("TARGET_ARN", FUNCTION_ARN),
            ("ERROR_CODE", "SDK_CLIENT_ERROR"),
            ("ERROR_MESSAGE", "Lambda throttled the invocation"),
        ],
    )
    .await;
    Partners {
        s,
        handler: deps,
        delivered: [
            ("eventbridge-handler", handler_event),
            ("lambda-on-failure", on_failure_event),
            ("eventbridge-rule", rule_event),
        ]
        .into(),
    }
}

impl Partners {
    fn redrive(&self, bus: Option<&str>, handler: Option<&str>, dry_run: bool) -> Command {
        Command::Redrive {
            queue: self.s.dlq.clone(),
            to: self.s.main.clone(),
            bus: bus.map(str::to_owned),
            handler: handler.map(str::to_owned),
            limit: None,
            dry_run,
        }
    }

    fn list(&self, handler: Option<&str>) -> Command {
        Command::List {
            queue: self.s.dlq.clone(),
            limit: 10,
            handler: handler.map(str::to_owned),
        }
    }

    /// Each letter's reason, by origin, as `relay dlq list` reads it.
    async fn reasons(&self) -> std::collections::BTreeMap<String, String> {
        by_origin(&self.s.run(self.list(None)).await.expect("list"))
            .into_iter()
            .map(|(origin, m)| {
                (
                    origin,
                    m["error_message"].as_str().expect("reason").to_owned(),
                )
            })
            .collect()
    }
}

#[tokio::test]
async fn partner_events_are_replayed_by_invoking_the_handler_asynchronously() {
    let p = partners().await;
    let lambda = FakeLambda::start().await;
    let (dlq, main) = (p.s.dlq.as_str(), p.s.main.as_str());
    // --bus given too: an `aws.` source goes to the handler all the same. The handler comes from
    // the environment, as an ARN.
    let output = relay(
        &p.s.aws,
        &lambda,
        &[
            "dlq", "redrive", "--queue", dlq, "--to", main, "--bus", BUS, "--json",
        ],
        &[("RELAY_EVENTBRIDGE_HANDLER", HANDLER_ARN)],
    )
    .await;
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).expect("JSON on stdout");
    assert_eq!(report["moved"], 3, "{report}");
    assert_eq!(report["to_handler"][HANDLER_ARN], 3);
    assert_eq!(report["to_bus"], json!({}));
    assert_eq!(report["failed"], 0);
    assert_eq!(report["kept"], 0);

    // The handler got each event as EventBridge delivers it, with the history riding along.
    let calls = lambda.take();
    assert_eq!(calls.len(), 3, "{calls:?}");
    let mut shapes = BTreeSet::new();
    for call in &calls {
        assert_eq!(call.function, HANDLER_ARN);
        assert_eq!(call.invocation_type.as_deref(), Some("Event"));
        let shape = partner_shape(&call.payload);
        shapes.insert(shape);
        let mut payload = call.payload.clone();
        let resources = payload["resources"].take();
        let mut delivered = p.delivered[shape].clone();
        delivered["resources"] = Value::Null;
        assert_eq!(payload, delivered, "{shape}: every field intact");
        for field in [
            "version",
            "id",
            "detail-type",
            "source",
            "account",
            "time",
            "region",
        ] {
            assert!(payload[field].is_string(), "{shape}: {field}");
        }
        assert_eq!(payload["source"], PARTNER_SOURCE);
        let resources = resources.as_array().expect("resources");
        assert_eq!(resources.len(), 2, "{shape}: {resources:?}");
        assert_eq!(resources[0], RESOURCE, "{shape}: original resources kept");
        let previous = resources[1]
            .as_str()
            .and_then(|r| r.strip_prefix(dead_letter::PREVIOUS_ERROR_RESOURCE))
            .expect("the history rides along");
        let reason = match shape {
            "eventbridge-handler" => "not a Genesys event",
            "lambda-on-failure" => "before its outbound event",
            _ => "Lambda throttled",
        };
        assert!(previous.contains(reason), "{shape}: {previous}");
    }
    assert_eq!(shapes.len(), 3);

    // Every letter left the DLQ.
    assert!(p.s.dlq_ids().await.is_empty());
    assert!(p.s.aws.messages(main).await.is_empty());

    // A replay that fails again is dead-lettered anew, with the reason it failed the first time.
    let replay = calls
        .iter()
        .find(|call| partner_shape(&call.payload) == "eventbridge-handler")
        .expect("the handler's letter replayed");
    deliver(&p.handler, replay.payload.clone()).await;
    let letters = p.s.aws.messages(dlq).await;
    assert_eq!(letters.len(), 1);
    let previous = attribute(&letters[0], "previous-error").expect("history");
    assert_eq!(previous.lines().count(), 1, "{previous}");
    assert!(previous.contains("in decode") && previous.contains("not a Genesys event"));
}

#[tokio::test]
async fn a_partner_event_the_handler_does_not_accept_stays_with_its_reason() {
    let p = partners().await;
    let lambda = FakeLambda::start().await;
    let before = p.reasons().await;
    assert_eq!(before.len(), 3);
    let (dlq, main) = (p.s.dlq.as_str(), p.s.main.as_str());
    let args = [
        "dlq",
        "redrive",
        "--queue",
        dlq,
        "--to",
        main,
        "--handler",
        HANDLER,
    ];

    for (status, says) in [
        (404, "ResourceNotFoundException"),
        (200, "answered HTTP 200, not 202"),
        (500, "HTTP 500"),
    ] {
        lambda.answer(status);
        let output = relay(&p.s.aws, &lambda, &args, &[]).await;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{status}: {stdout}");
        assert!(stderr.contains("not moved cleanly"), "{status}: {stderr}");
        assert!(stdout.contains("failed 3"), "{status}: {stdout}");
        assert!(
            stdout.matches(says).count() >= 3,
            "{status}: each letter's reason: {stdout}"
        );
        let calls = lambda.take();
        assert!(calls.len() >= 3, "{status}: {calls:?}");
        assert!(calls.iter().all(
            |call| call.function == HANDLER && call.invocation_type.as_deref() == Some("Event")
        ));
        // Nothing left the DLQ, and every letter reads as before.
        assert_eq!(p.reasons().await, before, "{status}");
    }
    assert!(p.s.aws.messages(main).await.is_empty());

    // Once the handler takes them, they go.
    lambda.answer(202);
    let output = relay(&p.s.aws, &lambda, &args, &[]).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(lambda.take().len(), 3);
    assert!(p.s.dlq_ids().await.is_empty());
}

#[tokio::test]
async fn list_show_and_dry_run_name_the_handler_partner_events_go_to() {
    let p = partners().await;

    // Without a handler named, they go to one all the same, once it is given.
    let listed = p.s.run(p.list(None)).await.expect("list");
    for (origin, letter) in by_origin(&listed) {
        assert_eq!(letter["replay"], "handler", "{origin}");
        assert_eq!(letter["replay_handler"], Value::Null, "{origin}");
        assert_eq!(letter["not_replayable"], Value::Null, "{origin}");
    }
    assert!(listed.text.join("\n").contains("handler (--handler)"));

    let listed = p.s.run(p.list(Some(HANDLER))).await.expect("list");
    let letters = by_origin(&listed);
    assert_eq!(letters.len(), 3);
    for (origin, letter) in &letters {
        assert_eq!(letter["replay"], "handler", "{origin}");
        assert_eq!(letter["replay_handler"], HANDLER, "{origin}");
        assert_eq!(letter["source"], PARTNER_SOURCE, "{origin}");
    }
    let text = listed.text.join("\n");
    assert!(text.contains("REPLAY TO") && text.contains(&format!("handler {HANDLER}")));

    let shown =
        p.s.run(Command::Show {
            queue: p.s.dlq.clone(),
            message_id: letters["lambda-on-failure"]["message_id"]
                .as_str()
                .expect("id")
                .to_owned(),
            handler: Some(HANDLER.into()),
        })
        .await
        .expect("show");
    assert_eq!(shown.json["replay"], "handler");
    assert_eq!(shown.json["replay_handler"], HANDLER);
    assert_eq!(shown.json["event"], p.delivered["lambda-on-failure"]);
    let text = shown.text.join("\n");
    assert!(
        text.contains(&format!("redrive to  handler {HANDLER}")),
        "{text}"
    );

    // A dry run says so, sends nothing, and without a handler keeps them with why.
    let dry =
        p.s.run(p.redrive(Some(BUS), Some(HANDLER), true))
            .await
            .expect("dry run");
    assert_eq!(dry.json["would_move"], 3);
    assert_eq!(dry.json["handler"], HANDLER);
    for message in dry.json["messages"].as_array().expect("messages") {
        assert_eq!(message["redrive_to"], format!("handler {HANDLER}"));
    }
    assert!(dry.text.join("\n").contains(&format!("handler {HANDLER}")));

    let dry =
        p.s.run(p.redrive(Some(BUS), None, true))
            .await
            .expect("dry run");
    assert_eq!(dry.json["would_keep"], 3);
    for message in dry.json["messages"].as_array().expect("messages") {
        let why = message["kept_because"].as_str().expect("why");
        assert!(why.contains("aws.") && why.contains("--handler"), "{why}");
    }
    assert_eq!(p.s.dlq_ids().await.len(), 3);
}

#[tokio::test]
async fn other_events_go_onto_the_bus_given_else_to_the_handler() {
    let x = shapes().await;
    let redrive_to =
        |report: &relay_cli::output::Report| -> std::collections::BTreeMap<String, Value> {
            report.json["messages"]
                .as_array()
                .expect("messages")
                .iter()
                .map(|m| {
                    (
                        m["origin"].as_str().expect("origin").to_owned(),
                        m["redrive_to"].clone(),
                    )
                })
                .collect()
        };
    let dry_run = |bus: Option<&str>| Command::Redrive {
        queue: x.s.dlq.clone(),
        to: x.s.main.clone(),
        bus: bus.map(str::to_owned),
        handler: Some(HANDLER.into()),
        limit: None,
        dry_run: true,
    };

    let to = redrive_to(&x.s.run(dry_run(None)).await.expect("dry run"));
    for origin in [
        "eventbridge-handler",
        "lambda-on-failure",
        "eventbridge-rule",
    ] {
        assert_eq!(to[origin], format!("handler {HANDLER}"), "{origin}");
    }
    assert_eq!(to["processor"], x.s.main.as_str());
    assert_eq!(to["unknown"], Value::Null);

    let to = redrive_to(&x.s.run(dry_run(Some(BUS))).await.expect("dry run"));
    for origin in [
        "eventbridge-handler",
        "lambda-on-failure",
        "eventbridge-rule",
    ] {
        assert_eq!(to[origin], format!("event bus {BUS}"), "{origin}");
    }
    assert_eq!(x.s.aws.messages(&x.s.dlq).await.len(), 6);
}

//! `relay dlq` against a local AWS: dead letters shaped as the functions write them.

use std::collections::BTreeSet;

use genesys_relay::dead_letter;
use genesys_relay::error::Error;
use relay_cli::dlq::{self, Command};
use relay_tests::{attribute, LocalAws};
use serde_json::Value;

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
            &format!(r#"{{"n":{n},"text":"hello"}}"#),
            original_attributes(n),
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
        dlq::run_with(command, &self.aws.sqs()).await
    }

    fn list(&self, limit: u32) -> Command {
        Command::List {
            queue: self.dlq.clone(),
            limit,
        }
    }

    fn redrive(&self, limit: Option<u32>, dry_run: bool) -> Command {
        Command::Redrive {
            queue: self.dlq.clone(),
            to: self.main.clone(),
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
        "{}",
        original_attributes(9),
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

//! `relay local demo`: the local stack, a scenario played against it, and a report of what the
//! pipeline did, checked against what the scenario expects.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use genesys_relay::inbound::auth::HmacHeader;
use serde_json::{json, Value};

use super::stack::{project_root, Choices, ProcessorRuns, QueueType, Stack, WEBHOOK_SECRET};
use crate::output::{check_rows, checks_json, Check, Report};

/// The rules the demo runs with: text the customer when a call wraps up unanswered (a dialer
/// code, keyed by its literal id) or with the organization's "Callback Requested" code (keyed by
/// its name, resolved to its id at start; the first name comes from the outbound contact list).
pub const RULES: &str = r#"{"smsOnWrapup": {"templates": {
    "ININ-OUTBOUND-NO-ANSWER": "Sorry we missed your call. Reply to this text to talk to us.",
    "Callback Requested": "Hi {{contact.firstName|there}}, we will call you back."},
  "from": "+15005550006"}}"#;

/// What the EventBridge customer is texted: their first name from the local contact list.
const CALLBACK_TEXT: &str = "Hi Grace, we will call you back.";

/// The webhook's conversation and customer; the EventBridge samples in `events/` bring another.
const WEBHOOK_CONVERSATION: &str = "3f0e9c7a-5b1d-4e2f-8a6c-9d0b1e2f3a4b";
const EVENTBRIDGE_CONVERSATION: &str = "7f1c3a52-8a4b-4c1e-9d2f-0b6e5a1c9e11";
const WEBHOOK_CUSTOMER: &str = "+14155550100";
const EVENTBRIDGE_CUSTOMER: &str = "+14158675309";

fn step(text: &str) {
    eprintln!("demo: {text}");
}

/// Runs the demo on `port` (0: any free port), on queues of `queue_type`.
pub async fn run(port: u16, queue_type: QueueType) -> Result<Report> {
    let root = project_root()?;
    let port = if port == 0 {
        std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port()
    } else {
        port
    };
    step("starting the local stack (local AWS from template.yaml, Twilio, Genesys, the three functions)");
    let choices = Choices {
        queue_type,
        ..Choices::default()
    };
    let stack = Stack::up_with(&root, port, RULES, ProcessorRuns::default(), choices).await?;
    step(&format!("receiver on {}", stack.receiver_url));
    let http = reqwest::Client::new();
    let url = format!("{}/webhooks/genesys", stack.receiver_url);
    let signer = HmacHeader::genesys_open_messaging();

    let wrapup = json!({
        "topicName": format!("v2.detail.events.conversation.{WEBHOOK_CONVERSATION}.acw"),
        "eventBody": {"conversationId": WEBHOOK_CONVERSATION, "participantId": "5c2d1e0f-9a8b-4c7d-8e6f-5a4b3c2d1e0f",
                      "wrapupCode": "ININ-OUTBOUND-NO-ANSWER", "addressTo": format!("tel:{WEBHOOK_CUSTOMER}"), "eventTime": 1795150800000_i64},
        "metadata": {"CorrelationId": "demo-webhook"}
    })
    .to_string();
    let signature = signer.sign(WEBHOOK_SECRET.as_bytes(), wrapup.as_bytes());
    let mut answers = Vec::new();
    for (what, signature) in [
        ("a signed wrap-up webhook", signature.clone()),
        ("the same webhook again (a duplicate)", signature),
        (
            "a webhook with a bad signature",
            signer.sign(b"not-the-secret", wrapup.as_bytes()),
        ),
    ] {
        let response = http
            .post(&url)
            .header("content-type", "application/json")
            .header(signer.header.as_str(), signature)
            .body(wrapup.clone())
            .send()
            .await
            .context("the local receiver did not answer")?;
        step(&format!("sent {what}: {}", response.status().as_u16()));
        answers.push(response.status().as_u16());
    }

    step(
        "putting .acw (\"Callback Requested\", by id) on the local event bus before its .outbound",
    );
    let retries = stack.counters.retries.load(Ordering::Relaxed);
    put_event(
        &http,
        &stack,
        &root.join("events/eventbridge-acw-org-code.json"),
    )
    .await?;
    wait_for_a_retry(&stack, retries).await?;
    step("the wrap-up waits on the queue for its context; putting .outbound");
    put_event(
        &http,
        &stack,
        &root.join("events/eventbridge-outbound.json"),
    )
    .await?;

    step("putting a poison message (no envelope) on the main queue");
    let poison = aws_sdk_sqs::Client::new(&stack.aws)
        .send_message()
        .queue_url(&stack.resources.queue_url)
        .message_body("this is not an event");
    let poison = if genesys_relay::aws::is_fifo_queue(&stack.resources.queue_url) {
        poison
            .message_group_id("poison")
            .message_deduplication_id("poison")
    } else {
        poison
    };
    poison.send().await?;

    step("waiting until the pipeline is quiet");
    wait_until_quiet(&stack).await?;
    report(&stack, &answers).await
}

/// PutEvents of a sample event from `events/` to the local bus.
async fn put_event(http: &reqwest::Client, stack: &Stack, file: &std::path::Path) -> Result<()> {
    let event: Value = serde_json::from_str(&std::fs::read_to_string(file)?)?;
    let (status, taken) = super::stack::put_event(
        http,
        &stack.endpoint,
        &stack.resources.event_bus,
        event["source"].as_str().unwrap_or_default(),
        event["detail-type"].as_str().unwrap_or_default(),
        &event["detail"],
    )
    .await;
    if !taken {
        bail!(
            "the local event bus refused {} (HTTP {status})",
            file.display()
        );
    }
    Ok(())
}

/// Waits (at most 60 s) until the processor has reported a record failed since it had reported
/// `before`: the `.acw` tried without its context.
async fn wait_for_a_retry(stack: &Stack, before: u64) -> Result<()> {
    let retried = async {
        loop {
            // Made before the count is read, so a retry reported in between still wakes it.
            let notified = stack.counters.retried.notified();
            if stack.counters.retries.load(Ordering::Relaxed) != before {
                return;
            }
            notified.await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), retried)
        .await
        .map_err(|_| anyhow::anyhow!("the .acw was not tried within 60 s"))
}

/// Waits until no queue holds work, every SMS has had its callbacks, and that stays so.
async fn wait_until_quiet(stack: &Stack) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut quiet_rounds = 0;
    while quiet_rounds < 3 {
        if Instant::now() > deadline {
            bail!("the pipeline did not settle within 120 s");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let pending = stack.queue_depth(&stack.resources.queue_url).await?
            + stack
                .queue_depth(&stack.resources.event_target_queue_url)
                .await?;
        let callbacks_done =
            stack.twilio.callbacks_answered().len() == 2 * stack.twilio.messages().len();
        quiet_rounds = if pending == 0 && callbacks_done {
            quiet_rounds + 1
        } else {
            0
        };
    }
    Ok(())
}

async fn report(stack: &Stack, answers: &[u16]) -> Result<Report> {
    let receiver: BTreeMap<u16, u64> = stack
        .counters
        .answers
        .lock()
        .map(|a| a.clone())
        .unwrap_or_default();
    let accepted = receiver.get(&202).copied().unwrap_or_default();
    let rejected: u64 = receiver
        .iter()
        .filter(|(status, _)| (400..500).contains(*status))
        .map(|(_, n)| n)
        .sum();
    let sms = stack.twilio.messages();
    let mut last_status: BTreeMap<String, String> = BTreeMap::new();
    for patch in stack.genesys.patches() {
        if let Some(status) = patch.attributes.get("sms.status") {
            last_status.insert(patch.conversation_id.clone(), status.clone());
        }
    }
    let dead = dead_letters(stack).await?;
    let callbacks = stack.twilio.callbacks_answered();
    let retries = stack.counters.retries.load(Ordering::Relaxed);
    // The wrap-up webhook was accepted this many times; each acceptance beyond its one SMS was a
    // duplicate the pipeline suppressed.
    let webhook_accepted = answers.iter().filter(|status| **status == 202).count();
    let webhook_sms = sms.iter().filter(|m| m.to == WEBHOOK_CUSTOMER).count();
    let duplicates = webhook_accepted.saturating_sub(webhook_sms);

    let checks = vec![
        Check::new(
            "webhooks answered",
            format!("{answers:?}"),
            "[202, 202, 401]",
            answers == [202, 202, 401],
        ),
        Check::new(
            "accepted by the receiver",
            accepted,
            "6 (2 webhooks, 4 status callbacks)",
            accepted == 6,
        ),
        Check::new(
            "rejected by the receiver",
            rejected,
            "1 (bad signature)",
            rejected == 1,
        ),
        Check::new(
            "SMS sent",
            sms.len().to_string(),
            "2 (webhook, EventBridge)",
            sms.len() == 2,
        ),
        Check::new(
            "EventBridge text (code by name, contact list)",
            format!(
                "{:?}",
                sms.iter()
                    .filter(|m| m.to == EVENTBRIDGE_CUSTOMER)
                    .map(|m| m.body.as_str())
                    .collect::<Vec<_>>()
            ),
            format!("[{CALLBACK_TEXT:?}]"),
            sms.iter()
                .filter(|m| m.to == EVENTBRIDGE_CUSTOMER)
                .map(|m| m.body.as_str())
                .eq([CALLBACK_TEXT]),
        ),
        Check::new(
            "duplicates suppressed",
            duplicates,
            "1 (the repeated webhook sent nothing)",
            duplicates == 1 && webhook_sms == 1,
        ),
        Check::new(
            "status callbacks answered",
            format!("{callbacks:?}"),
            "four 202s",
            callbacks == [202, 202, 202, 202],
        ),
        Check::new(
            "wrap-up retried before its .outbound",
            retries,
            "at least 1",
            retries >= 1,
        ),
        Check::new(
            "status written back to Genesys",
            format!("{last_status:?}"),
            "delivered on both conversations",
            [WEBHOOK_CONVERSATION, EVENTBRIDGE_CONVERSATION]
                .iter()
                .all(|c| last_status.get(*c).map(String::as_str) == Some("delivered")),
        ),
        Check::new(
            "dead-letter queue",
            format!("{} message(s)", dead.len()),
            "1: the poison message, with its reason",
            dead.len() == 1 && dead[0].1.contains("event-key"),
        ),
    ];
    let (rows, failed) = check_rows(&checks);
    let mut text = vec![String::new()];
    text.extend(rows);
    for (id, reason) in &dead {
        text.push(format!("      dead letter {id}: {reason}"));
    }
    text.push(String::new());
    text.push(format!(
        "demo: {} passed, {failed} failed",
        checks.len() - failed
    ));
    let json = json!({
        "checks": checks_json(&checks),
        "smsSent": sms.len(), "accepted": accepted, "duplicatesSuppressed": duplicates, "rejected": rejected,
        "deadLetters": dead.iter().map(|(id, reason)| json!({"messageId": id, "reason": reason})).collect::<Vec<_>>(),
        "passed": checks.len() - failed, "failed": failed,
    });
    let report = Report::new(text, json);
    if failed > 0 {
        crate::output::print(&report, false);
        bail!("{failed} of the demo's checks failed");
    }
    Ok(report)
}

/// The messages of the DLQs (message id, reason), read without consuming them.
async fn dead_letters(stack: &Stack) -> Result<Vec<(String, String)>> {
    let sqs = aws_sdk_sqs::Client::new(&stack.aws);
    let mut letters = Vec::new();
    for queue in stack.resources.dead_letter_queues() {
        letters.extend(crate::dlq::read_all(&sqs, queue).await?);
    }
    Ok(letters
        .iter()
        .map(|letter| {
            let reason = letter
                .attribute(genesys_relay::dead_letter::attr::ERROR_MESSAGE)
                .unwrap_or_default();
            (letter.id().to_owned(), reason.to_owned())
        })
        .collect())
}

//! `relay local soak`: many events through the local stack while things go wrong, then the
//! pipeline's guarantees checked event by event.
//!
//! The faults: a tenth of the deliveries repeat an earlier event; the local Twilio answers 5 % of
//! sends 503, 2 % 429 with `Retry-After`, and lets 1 % hang past the client's timeout (the message
//! is still created, as when Twilio took it and the answer was lost); the local AWS is cut for a
//! few seconds mid-run (the receiver must answer 503 and the sender retry); the local Twilio
//! answers every send 503 for a minute and a half early on (longer than the first retries, far
//! inside the retry budget); one processor
//! invocation is killed while an SMS send is in flight, between claim and completion; 1 % of the
//! events are poison (a configured wrap-up with no customer number); a tenth of the eligible events
//! come through the local event bus (`.outbound` then `.acw`, some the other way round) instead of
//! the webhook.
//!
//! The invariants: every accepted event ends exactly once, completed or in the DLQ with a reason;
//! none is lost; the SMS sent equal the unique eligible events, where a second SMS is allowed only
//! inside the crash window `idempotency` documents (after the send, before the completion is
//! stored: the killed invocation, one stopped at its deadline, a send whose answer was lost, a
//! completion or acknowledgement that could not be written while AWS was away), and each is
//! counted, and no event is texted more than twice; the Twilio outage dead-letters nothing; every
//! SMS's final status is the last write on its conversation, through the bus as through the
//! webhook (an `.acw` before its `.outbound` waits for it on the queue); and a redrive of the whole DLQ at the
//! end texts no one again and puts every poison event back in the DLQ, its first reason kept.
//!
//! Every connection stays on 127.0.0.1; the run is bounded in events and in time.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use aws_sdk_sqs::types::QueueAttributeName;
use genesys_relay::inbound::auth::HmacHeader;
use genesys_relay::inbound::event::EventKey;
use genesys_relay::inbound::event::GenesysDetail;

use relay_local::fakes::downstream::Downstream;
use relay_local::fakes::twilio::{Faults, Reply};
use serde_json::{json, Value};

mod verify;

use super::demo::RULES;
use super::stack::{
    project_root, put_event as put_bus_event, Choices, ProcessorRuns, QueueType, Stack,
    WEBHOOK_SECRET,
};
use crate::output::{check_rows, checks_json, Check, Report};
use verify::{dead_letters, verify, Verdict};

/// The wrap-up code the rules text for.
const ELIGIBLE_CODE: &str = "ININ-OUTBOUND-NO-ANSWER";
/// A wrap-up code the rules do not text for: the local organization's "Sale" (events carry ids).
const OTHER_CODE: &str = "0c5e2f7a-3b1d-4e8f-9a6c-2d4b8e1f7a30";
/// Share of deliveries that repeat an earlier event.
const DUPLICATES: f64 = 0.10;
/// Share of events that are poison.
const POISON: f64 = 0.01;
/// Share of events with a code the rules do not text for.
const OTHER: f64 = 0.05;
/// The local Twilio's failures.
const TWILIO_FAULTS: Faults = Faults {
    server_error: 0.05,
    too_many_requests: 0.02,
    retry_after_secs: 2,
    timeout: 0.01,
    // Past the client's 10 s request timeout.
    hang: Duration::from_secs(11),
};
/// How the stack runs the processor: several pollers, as Lambda scales out, and a short function
/// timeout and visibility timeout (the template's are 30 s and 200 s), so that the killed batch
/// comes back within the run. The timeout stays above the HTTP client's 10 s, as in the template.
/// Where the soak's forwarding endpoint listens on the local downstream service.
const ENDPOINT_PATH: &str = "/crm";
/// Share of deliveries the endpoint answers 503 (each retried as its own job, 10 s later first).
const ENDPOINT_FAULTS: f64 = 0.05;

const RUNS: ProcessorRuns = ProcessorRuns {
    pollers: 4,
    timeout: Duration::from_secs(15),
    visibility: Some(Duration::from_secs(20)),
};
/// Concurrent senders.
const SENDERS: usize = 16;
/// Fewer events would leave the killed invocation nothing in flight to catch.
const MIN_EVENTS: usize = 100;
/// Messages in the main queue above which the senders wait: the local AWS's receive slows with
/// the square of the queue's length, and a soak is about steady load, not a backlog.
const MAX_BACKLOG: usize = 100;
/// Attempts per delivery before the sender gives up (about a minute of backing off).
const ATTEMPTS: u32 = 40;
/// Share of the eligible events sent through the local event bus rather than the webhook.
const BUS: f64 = 0.1;
/// Share of those whose `.acw` is put before their `.outbound` (it waits on the queue for it).
const ACW_FIRST: f64 = 0.3;
/// The source of Genesys partner events, as in `events/eventbridge-*.json`.
const BUS_SOURCE: &str = "aws.partner/genesys.com/cloud/32aa5e1b-7c4d-4e8f-9a0b-1c2d3e4f5a6b/relay";
/// The status the local Twilio leaves every message in, through its callbacks.
const FINAL_STATUS: &str = "delivered";
/// A completion or acknowledgement can fail this long after the link to AWS was cut: the SDK's
/// operation timeout (4 s) with a margin.
const OUTAGE_REACH: Duration = Duration::from_secs(6);

/// What to run.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Deliveries to send, duplicates included.
    pub events: usize,
    /// Seed of every random choice (events, duplicates, Twilio's faults).
    pub seed: u64,
    /// How long the local AWS is cut.
    pub outage: Duration,
    /// How long the local Twilio answers every send 503.
    pub twilio_outage: Duration,
    /// Deliveries per second: a steady load the local AWS keeps up with, so the run measures the
    /// pipeline and not a backlog.
    pub rate: u32,
    /// The queues' kind.
    pub queue_type: QueueType,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A configured wrap-up code: one SMS.
    Eligible,
    /// Another code: no SMS.
    Other,
    /// A configured code and no number: dead-lettered with its reason.
    Poison,
}

/// How an event reaches the stack.
#[derive(Debug, Clone, PartialEq)]
enum Route {
    /// A signed Genesys webhook.
    Webhook,
    /// PutEvents on the local event bus: these details in this order (an `.outbound` and an
    /// `.acw`); a repeat puts the `.acw` again.
    Bus {
        first: Value,
        second: Value,
        acw_first: bool,
    },
}

/// One unique event.
#[derive(Debug)]
struct Event {
    kind: Kind,
    number: String,
    conversation: String,
    /// The webhook body, or the `.acw` detail for the bus.
    body: String,
    key: EventKey,
    route: Route,
}

/// The events and the order they are delivered in (indexes, duplicates repeated).
fn plan(settings: &Settings) -> (Vec<Event>, Vec<usize>) {
    let mut rng = fastrand::Rng::with_seed(settings.seed);
    let repeats = (settings.events as f64 * DUPLICATES).round() as usize;
    let unique = settings.events.saturating_sub(repeats).max(1);
    let events: Vec<Event> = (0..unique)
        .map(|n| {
            let draw = rng.f64();
            let kind = if draw < POISON {
                Kind::Poison
            } else if draw < POISON + OTHER {
                Kind::Other
            } else {
                Kind::Eligible
            };
            let number = format!("+1555{n:07}");
            let conversation = format!("soak-{}-{n:07}", settings.seed);
            let code = if kind == Kind::Other {
                OTHER_CODE
            } else {
                ELIGIBLE_CODE
            };
            let mut detail = json!({"conversationId": conversation, "participantId": format!("participant-{n}"),
                "wrapupCode": code, "eventTime": 1_795_150_800_000_i64 + n as i64});
            if kind != Kind::Poison {
                detail["addressTo"] = json!(format!("tel:{number}"));
            }
            let acw = json!({
                "topicName": format!("v2.detail.events.conversation.{conversation}.acw"),
                "version": "2",
                "eventBody": detail,
                "metadata": {"CorrelationId": format!("soak-{n}")}
            });
            let body = acw.to_string();
            let bus = kind == Kind::Eligible && rng.f64() < BUS;
            let (key, route) = if bus {
                let outbound = json!({
                    "topicName": format!("v2.detail.events.conversation.{conversation}.outbound"),
                    "version": "2",
                    "eventBody": {"conversationId": conversation, "participantId": format!("participant-{n}"),
                        "eventTime": 1_795_150_700_000_i64 + n as i64, "direction": "OUTBOUND",
                        "dnis": number, "addressTo": format!("tel:{number}")},
                    "metadata": {"CorrelationId": format!("soak-{n}")}
                });
                let acw_first = rng.f64() < ACW_FIRST;
                let (first, second) = if acw_first {
                    (acw.clone(), outbound)
                } else {
                    (outbound, acw.clone())
                };
                // The handler keys an event by its content (topic, time, conversation,
                // participant, correlation id).
                let key = serde_json::from_value::<GenesysDetail>(acw).map_or_else(
                    |_| EventKey::digest(body.as_bytes()),
                    |detail| genesys_relay::inbound::partner_event::event_key(&detail),
                );
                (
                    key,
                    Route::Bus {
                        first,
                        second,
                        acw_first,
                    },
                )
            } else {
                // The local stack sets no EVENT_KEY_POINTERS and the webhook carries no id, so
                // the receiver keys each event by its body's digest.
                (EventKey::digest(body.as_bytes()), Route::Webhook)
            };
            Event {
                kind,
                number,
                conversation,
                body,
                key,
                route,
            }
        })
        .collect();
    // Each repeat follows its original within the next couple of hundred deliveries.
    let mut order: Vec<(f64, usize)> = (0..unique).map(|n| (n as f64, n)).collect();
    for _ in 0..repeats {
        let original = rng.usize(0..unique);
        order.push((original as f64 + 0.5 + rng.f64() * 200.0, original));
    }
    order.sort_by(|a, b| a.0.total_cmp(&b.0));
    (events, order.into_iter().map(|(_, n)| n).collect())
}

/// How one delivery went from the sender's side.
#[derive(Debug, Default, Clone, Copy)]
struct Sent {
    accepted: bool,
    attempts: u32,
    /// 503 answers before the last one.
    unavailable: u32,
    last_status: u16,
}

/// Posts `body` until it is accepted, retrying what a sender should retry (503, 5xx, 429, a
/// connection that failed) with a capped, jittered backoff.
async fn deliver(http: &reqwest::Client, url: &str, body: &str) -> Sent {
    let signer = HmacHeader::genesys_open_messaging();
    let signature = signer.sign(WEBHOOK_SECRET.as_bytes(), body.as_bytes());
    let mut sent = Sent::default();
    while sent.attempts < ATTEMPTS {
        sent.attempts += 1;
        let status = http
            .post(url)
            .header("content-type", "application/json")
            .header(signer.header.as_str(), &signature)
            .body(body.to_owned())
            .send()
            .await
            .map_or(0, |r| r.status().as_u16());
        sent.last_status = status;
        match status {
            202 => {
                sent.accepted = true;
                return sent;
            }
            503 => sent.unavailable += 1,
            0 | 429 | 500..=599 => {}
            _ => return sent,
        }
        let backoff =
            Duration::from_millis(100 << sent.attempts.min(5)).min(Duration::from_secs(2));
        tokio::time::sleep(backoff.mul_f64(0.5 + fastrand::f64() / 2.0)).await;
    }
    sent
}

/// Puts one Genesys event detail on the local bus, as Genesys's partner source would, until the
/// bus takes it (bounded like a webhook delivery).
async fn put_event(http: &reqwest::Client, to: &Destination, detail: &Value, sent: &mut Sent) {
    let topic = detail["topicName"].as_str().unwrap_or_default();
    let kind = topic.rsplit('.').next().unwrap_or_default();
    let detail_type = format!("v2.detail.events.conversation.{{id}}.{kind}");
    let mut attempts = 0;
    while attempts < ATTEMPTS {
        attempts += 1;
        sent.attempts += 1;
        let (status, taken) = put_bus_event(
            http,
            &to.endpoint,
            &to.bus,
            BUS_SOURCE,
            &detail_type,
            detail,
        )
        .await;
        sent.last_status = status;
        if taken {
            sent.accepted = true;
            return;
        }
        sent.accepted = false;
        let backoff = Duration::from_millis(100 << attempts.min(5)).min(Duration::from_secs(2));
        tokio::time::sleep(backoff.mul_f64(0.5 + fastrand::f64() / 2.0)).await;
    }
}

/// Sends an event through the bus: its two details in their order the first time (a moment
/// apart, as Genesys emits them), the `.acw` alone for a repeat.
async fn deliver_bus(
    http: &reqwest::Client,
    to: &Destination,
    event: &Event,
    repeat: bool,
) -> Sent {
    let mut sent = Sent::default();
    let Route::Bus {
        first,
        second,
        acw_first,
    } = &event.route
    else {
        return sent;
    };
    if repeat {
        let acw = if *acw_first { first } else { second };
        put_event(http, to, acw, &mut sent).await;
        return sent;
    }
    put_event(http, to, first, &mut sent).await;
    if !sent.accepted {
        return sent;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    put_event(http, to, second, &mut sent).await;
    sent
}

/// Where the senders deliver: the receiver's webhook route and the local event bus.
#[derive(Debug, Clone)]
struct Destination {
    webhook: String,
    endpoint: String,
    bus: String,
}

/// What the senders share with the run: how many deliveries are done (the fault schedule follows
/// it) and the main queue's backlog, which they hold back for.
#[derive(Debug, Default)]
struct Load {
    delivered: AtomicUsize,
    backlog: AtomicUsize,
}

/// Runs the senders: at most `rate` deliveries a second, and none while the queue holds more than
/// [`MAX_BACKLOG`] messages.
fn send_all(
    to: Destination,
    events: Arc<Vec<Event>>,
    order: Arc<Vec<usize>>,
    rate: u32,
    load: Arc<Load>,
) -> tokio::task::JoinHandle<Vec<(usize, Sent)>> {
    let interval = Duration::from_secs(1) / rate.max(1);
    tokio::spawn(async move {
        let http = reqwest::Client::new();
        let next = Arc::new(AtomicUsize::new(0));
        let due = Arc::new(Mutex::new(tokio::time::Instant::now()));
        let results = Arc::new(Mutex::new(Vec::with_capacity(order.len())));
        let started = Arc::new(Mutex::new(HashSet::new()));
        let senders: Vec<_> = (0..SENDERS)
            .map(|_| {
                let (http, to, started, events, order, load) = (
                    http.clone(),
                    to.clone(),
                    Arc::clone(&started),
                    Arc::clone(&events),
                    Arc::clone(&order),
                    Arc::clone(&load),
                );
                let (next, due, results) =
                    (Arc::clone(&next), Arc::clone(&due), Arc::clone(&results));
                tokio::spawn(async move {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(&event) = order.get(i) else { break };
                        while load.backlog.load(Ordering::Relaxed) > MAX_BACKLOG {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        let slot = due.lock().map_or_else(
                            |_| tokio::time::Instant::now(),
                            |mut due| {
                                let slot = (*due).max(tokio::time::Instant::now());
                                *due = slot + interval;
                                slot
                            },
                        );
                        tokio::time::sleep_until(slot).await;
                        let sent = if events[event].route == Route::Webhook {
                            deliver(&http, &to.webhook, &events[event].body).await
                        } else {
                            let repeat = started
                                .lock()
                                .is_ok_and(|mut started| !started.insert(event));
                            deliver_bus(&http, &to, &events[event], repeat).await
                        };
                        if let Ok(mut results) = results.lock() {
                            results.push((event, sent));
                        }
                        load.delivered.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for sender in senders {
            let _ = sender.await;
        }
        let collected = results.lock().map(|r| r.clone()).unwrap_or_default();
        collected
    })
}

/// Waits until `target` deliveries are done (or the senders are, or `until` has come: the senders
/// may be held back by a backlog only the end of an outage clears).
async fn reach(
    load: &Load,
    target: usize,
    senders: &tokio::task::JoinHandle<Vec<(usize, Sent)>>,
    until: Option<Instant>,
) {
    while load.delivered.load(Ordering::Relaxed) < target
        && !senders.is_finished()
        && until.is_none_or(|until| Instant::now() < until)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Keeps the backlog up to date, and prints the deliveries made and the backlog at every tenth of
/// the run.
async fn watch(load: Arc<Load>, total: usize, sqs: aws_sdk_sqs::Client, queue_url: String) {
    let mut shown = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let counted = sqs
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await;
        // While AWS is away there is no figure: the senders go on and meet the receiver's 503s,
        // which is what the outage is there to show.
        let backlog = counted.map_or(0, |out| {
            out.attributes
                .unwrap_or_default()
                .values()
                .filter_map(|v| v.parse::<usize>().ok())
                .sum()
        });
        load.backlog.store(backlog, Ordering::Relaxed);
        let done = load.delivered.load(Ordering::Relaxed);
        if done * 10 / total.max(1) > shown {
            shown = done * 10 / total.max(1);
            step(&format!(
                "{done} of {total} delivered; {} messages in the queue",
                load.backlog.load(Ordering::Relaxed)
            ));
        }
    }
}

/// When the local AWS was cut and restored.
#[derive(Debug, Clone, Copy)]
struct Outage {
    from: Instant,
    to: Instant,
}

impl Outage {
    /// Whether a message created at `at` may have had its completion or acknowledgement fail
    /// because AWS was away.
    fn reaches(&self, at: Instant) -> bool {
        at + OUTAGE_REACH >= self.from && at <= self.to
    }
}

/// Makes the local Twilio hold the next send, then kills the processor invocation waiting on a
/// send (between its claim and its completion); returns the bodies of the batch killed.
async fn kill_mid_send(stack: &Stack) -> Result<Vec<String>> {
    stack
        .twilio
        .script(vec![Reply::Hang(Duration::from_secs(3))]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        for request in stack.twilio.requests().iter().rev() {
            if request.status.is_some() {
                continue;
            }
            let Some(to) = request.field("To") else {
                continue;
            };
            let killed = stack.invocations.kill_holding(to);
            if !killed.is_empty() {
                return Ok(killed);
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    bail!("no processor invocation was waiting on Twilio within 60 s")
}

/// Waits until the queues are empty (the main queue's count includes the delayed status checks),
/// Twilio has answered every send and read, and every callback was posted, three checks in a row.
pub(super) async fn wait_until_drained(stack: &Stack, limit: Duration) -> Result<()> {
    let deadline = Instant::now() + limit;
    let mut quiet = 0;
    while quiet < 3 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let pending = stack.queue_depth(&stack.resources.queue_url).await?
            + stack
                .queue_depth(&stack.resources.event_target_queue_url)
                .await?;
        let sends_open = stack
            .twilio
            .requests()
            .iter()
            .filter(|r| r.status.is_none())
            .count();
        let callbacks = stack.twilio.callbacks_answered().len();
        let callbacks_due = 2 * stack.twilio.messages().len();
        if Instant::now() > deadline {
            bail!(
                "the pipeline did not drain within {} s: {pending} messages queued, {sends_open} Twilio sends unanswered, {callbacks} of {callbacks_due} status callbacks posted",
                limit.as_secs()
            );
        }
        quiet = if pending == 0 && sends_open == 0 && callbacks >= callbacks_due {
            quiet + 1
        } else {
            0
        };
    }
    Ok(())
}

fn step(text: &str) {
    eprintln!("soak: {text}");
}

/// Runs the soak.
pub async fn run(settings: Settings) -> Result<Report> {
    if settings.events < MIN_EVENTS {
        bail!("a soak needs at least {MIN_EVENTS} events, so that every fault has some to meet");
    }
    let started = Instant::now();
    let root = project_root()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let (events, order) = plan(&settings);
    step(&format!(
        "{} deliveries: {} unique events ({} eligible, {} other codes, {} poison) and {} repeats; seed {}",
        order.len(),
        events.len(),
        events.iter().filter(|e| e.kind == Kind::Eligible).count(),
        events.iter().filter(|e| e.kind == Kind::Other).count(),
        events.iter().filter(|e| e.kind == Kind::Poison).count(),
        order.len() - events.len(),
        settings.seed
    ));
    let downstream = Downstream::start().await;
    downstream.set_faults(ENDPOINT_PATH, ENDPOINT_FAULTS, settings.seed);
    let rules = rules_forwarding_to(&downstream.url(ENDPOINT_PATH))?;
    let choices = Choices {
        queue_type: settings.queue_type,
        ..Choices::default()
    };
    let stack = Stack::up_with(&root, port, &rules, RUNS, choices).await?;
    stack.twilio.set_faults(TWILIO_FAULTS, settings.seed);
    step(&format!(
        "stack up in {:.1} s; sending",
        started.elapsed().as_secs_f64()
    ));

    let (events, order) = (Arc::new(events), Arc::new(order));
    let load = Arc::new(Load::default());
    let watcher = tokio::spawn(watch(
        Arc::clone(&load),
        order.len(),
        aws_sdk_sqs::Client::new(&stack.aws),
        stack.resources.queue_url.clone(),
    ));
    let senders = send_all(
        Destination {
            webhook: format!("{}/webhooks/genesys", stack.receiver_url),
            endpoint: stack.endpoint.clone(),
            bus: stack.resources.event_bus.clone(),
        },
        Arc::clone(&events),
        Arc::clone(&order),
        settings.rate,
        Arc::clone(&load),
    );

    reach(&load, order.len() * 10 / 100, &senders, None).await;
    step(&format!(
        "the local Twilio answers every send 503 for {} s",
        settings.twilio_outage.as_secs()
    ));
    let twilio_sends_before = stack.twilio.requests().len();
    stack.twilio.set_down(true);
    let twilio_down = Instant::now();
    let twilio_back = twilio_down + settings.twilio_outage;

    reach(&load, order.len() * 35 / 100, &senders, Some(twilio_back)).await;
    step(&format!(
        "cutting the local AWS for {} s",
        settings.outage.as_secs()
    ));
    let from = Instant::now();
    stack.aws_link.cut();
    tokio::time::sleep(settings.outage).await;
    stack
        .aws_link
        .restore()
        .await
        .context("restoring the local AWS")?;
    let outage = Outage {
        from,
        to: Instant::now(),
    };
    step("local AWS back");

    // The kill needs Twilio up: bring it back when its outage is over.
    tokio::time::sleep_until(tokio::time::Instant::from_std(twilio_back)).await;
    stack.twilio.set_down(false);
    let twilio_outage = (twilio_sends_before, stack.twilio.requests().len());
    step("local Twilio back");

    reach(&load, order.len() * 60 / 100, &senders, None).await;
    let killed = kill_mid_send(&stack).await?;
    step(&format!(
        "killed a processor invocation mid-send ({} records)",
        killed.len()
    ));

    let results = senders.await.context("the senders stopped")?;
    watcher.abort();
    step(&format!(
        "all sent in {:.1} s; waiting for the pipeline to drain",
        started.elapsed().as_secs_f64()
    ));
    let limit = Duration::from_secs(300) + Duration::from_millis(100) * order.len() as u32;
    wait_until_drained(&stack, limit).await?;
    step(&format!(
        "drained at {:.1} s; checking",
        started.elapsed().as_secs_f64()
    ));

    let mut report = verify(&stack, &events, &results, &killed, outage, twilio_outage).await?;
    step(&format!(
        "redriving the DLQ at {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    redrive_and_check(&stack, &events, &results, limit, &mut report).await?;
    forwarding_checks(&downstream, &events, &results, &mut report);
    let (rows, failed) = check_rows(&report.checks);
    let mut text = vec![String::new()];
    text.extend(rows);
    text.push(String::new());
    text.extend(
        report
            .figures
            .iter()
            .map(|(name, value)| format!("  {name}: {value}")),
    );
    text.push(format!(
        "soak: {} passed, {failed} failed, in {:.0} s",
        report.checks.len() - failed,
        started.elapsed().as_secs_f64()
    ));
    let json = json!({
        "checks": checks_json(&report.checks),
        "figures": report.figures.iter().cloned().collect::<BTreeMap<_, _>>(),
        "seconds": started.elapsed().as_secs_f64(),
        "passed": report.checks.len() - failed, "failed": failed,
    });
    let output = Report::new(text, json);
    if failed > 0 {
        crate::output::print(&output, false);
        bail!("{failed} of the soak's checks failed");
    }
    Ok(output)
}

/// Sends the whole DLQ back with `relay dlq redrive` (in-process), drains again, and checks that
/// it ended having moved every letter, that no one was texted again, and that each poison event
/// is back in the DLQ with its reason and the earlier one.
async fn redrive_and_check(
    stack: &Stack,
    events: &[Event],
    results: &[(usize, Sent)],
    limit: Duration,
    report: &mut Verdict,
) -> Result<()> {
    let before = dead_letters(stack).await?;
    let sms_before = stack.twilio.messages().len();
    let mut moved = 0;
    for queue in stack.resources.dead_letter_queues() {
        let redrive = crate::dlq::Command::Redrive {
            queue: queue.to_owned(),
            to: stack.resources.queue_url.clone(),
            bus: None,
            handler: None,
            limit: None,
            dry_run: false,
        };
        let outcome = tokio::time::timeout(
            Duration::from_secs(300),
            crate::dlq::run_with(redrive, &stack.aws),
        )
        .await
        .context("the DLQ redrive did not end within 300 s")?
        .context("the DLQ redrive failed")?;
        moved += outcome.json["moved"].as_u64().unwrap_or(0) as usize;
    }
    step(&format!(
        "redrive moved {moved} of {} letters; draining again",
        before.len()
    ));
    wait_until_drained(stack, limit).await?;
    let after = dead_letters(stack).await?;
    let sms_after = stack.twilio.messages().len();

    let accepted: HashSet<usize> = results
        .iter()
        .filter(|(_, sent)| sent.accepted)
        .map(|(event, _)| *event)
        .collect();
    let poison: Vec<&str> = events
        .iter()
        .enumerate()
        .filter(|(n, e)| e.kind == Kind::Poison && accepted.contains(n))
        .map(|(_, e)| e.key.as_str())
        .collect();
    let back = poison
        .iter()
        .filter(|key| {
            after.iter().any(|l| {
                l.key == **key
                    && !l.reason.is_empty()
                    && !l.previous.is_empty()
                    && before.iter().any(|b| b.key == **key)
            })
        })
        .count();
    report.checks.extend([
        Check::new(
            "DLQ redrive ended, every letter moved",
            format!("{moved} of {}", before.len()),
            "all the letters present",
            moved == before.len(),
        ),
        Check::new(
            "SMS after the redrive",
            sms_after,
            format!("{sms_before}, as before it"),
            sms_after == sms_before,
        ),
        Check::new(
            "poison dead-lettered again, earlier reason kept",
            format!("{back} of {}", poison.len()),
            "all (reason and previous-error)",
            back == poison.len(),
        ),
    ]);
    report.figures.extend([
        ("dead letters redriven", moved.to_string()),
        ("dead letters after the redrive", after.len().to_string()),
    ]);
    Ok(())
}

fn count(statuses: &[u16]) -> BTreeMap<u16, usize> {
    let mut counts = BTreeMap::new();
    for status in statuses {
        *counts.entry(*status).or_default() += 1;
    }
    counts
}

/// The demo's rules plus one forwarding endpoint for every wrap-up: forwarding runs under the
/// same faults as the rest, and its own.
fn rules_forwarding_to(url: &str) -> Result<String> {
    let mut rules: Value = serde_json::from_str(RULES).context("the demo's rules")?;
    rules["forward"] = json!({"endpoints": [{
        "name": "crm", "url": url,
        "eventTypes": ["v2.detail.events.conversation.{id}.acw"]}]});
    Ok(rules.to_string())
}

/// Forwarding's invariants: every accepted event that reached its actions (all but the poison)
/// was delivered to the endpoint with a 2xx answer, under one delivery id (`webhook-id`) however
/// often it was retried; the endpoint's injected 503s were met.
fn forwarding_checks(
    downstream: &Downstream,
    events: &[Event],
    results: &[(usize, Sent)],
    report: &mut Verdict,
) {
    let received = downstream.received(ENDPOINT_PATH);
    let mut ids_by_key: HashMap<String, HashSet<String>> = HashMap::new();
    let mut delivered: HashSet<String> = HashSet::new();
    let mut answered_2xx: HashMap<String, usize> = HashMap::new();
    for request in &received {
        let Some(key) = serde_json::from_slice::<Value>(&request.body)
            .ok()
            .and_then(|body| body.get("eventKey")?.as_str().map(str::to_owned))
        else {
            continue;
        };
        let id = request
            .headers
            .get("webhook-id")
            .cloned()
            .unwrap_or_default();
        ids_by_key
            .entry(key.clone())
            .or_default()
            .insert(id.clone());
        if (200..300).contains(&request.status) {
            delivered.insert(key);
            *answered_2xx.entry(id).or_default() += 1;
        }
    }
    let accepted: HashSet<usize> = results
        .iter()
        .filter(|(_, sent)| sent.accepted)
        .map(|(event, _)| *event)
        .collect();
    let wanted: Vec<&Event> = events
        .iter()
        .enumerate()
        .filter(|(n, e)| accepted.contains(n) && e.kind != Kind::Poison)
        .map(|(_, e)| e)
        .collect();
    let missing = wanted
        .iter()
        .filter(|e| !delivered.contains(e.key.as_str()))
        .count();
    let split = ids_by_key.values().filter(|ids| ids.len() > 1).count();
    let faults = received.iter().filter(|r| r.status == 503).count();
    let repeated = answered_2xx.values().map(|n| n - 1).sum::<usize>();
    report.checks.extend([
        Check::new(
            "forwarded: delivered with a 2xx answer",
            format!("{} of {}", wanted.len() - missing, wanted.len()),
            "every accepted event but the poison",
            missing == 0,
        ),
        Check::new(
            "forwarded: events under more than one delivery id",
            split,
            "0 (a retry is the same delivery)",
            split == 0,
        ),
        Check::new(
            "forward endpoint: 503s injected and met",
            faults,
            "at least 1",
            faults > 0,
        ),
    ]);
    report
        .figures
        .push(("forward requests", received.len().to_string()));
    report.figures.push((
        "forward deliveries answered 2xx again (crash window, same delivery id)",
        repeated.to_string(),
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_is_seeded_and_mixes_what_it_promises() {
        let settings = Settings {
            events: 2000,
            seed: 7,
            outage: Duration::from_secs(1),
            twilio_outage: Duration::from_secs(1),
            rate: 10,
            queue_type: QueueType::Standard,
        };
        let (events, order) = plan(&settings);
        let (again, order_again) = plan(&settings);
        assert_eq!(order, order_again);
        assert_eq!(events[10].body, again[10].body);
        assert_eq!(order.len(), 2000);
        assert_eq!(events.len(), 1800);
        let poison = events.iter().filter(|e| e.kind == Kind::Poison).count();
        let other = events.iter().filter(|e| e.kind == Kind::Other).count();
        assert!((5..=40).contains(&poison), "{poison} poison");
        assert!((50..=150).contains(&other), "{other} other");
        // Each event's first delivery is the original, at its own place.
        let first: HashMap<usize, usize> = order
            .iter()
            .enumerate()
            .rev()
            .map(|(i, n)| (*n, i))
            .collect();
        for (n, i) in &first {
            assert_eq!(order[*i], *n);
        }
        assert_eq!(first.len(), 1800);
        assert!(
            first.iter().all(|(n, i)| *i >= *n),
            "an original comes no earlier than its number"
        );
        assert!(events
            .iter()
            .filter(|e| e.kind == Kind::Poison)
            .all(|e| !e.body.contains("addressTo")));
    }

    #[test]
    fn the_outage_reaches_sends_just_before_it_and_during_it() {
        let from = Instant::now() + Duration::from_secs(100);
        let outage = Outage {
            from,
            to: from + Duration::from_secs(5),
        };
        assert!(outage.reaches(from - Duration::from_secs(5)));
        assert!(outage.reaches(from + Duration::from_secs(3)));
        assert!(!outage.reaches(from - Duration::from_secs(10)));
        assert!(!outage.reaches(from + Duration::from_secs(6)));
    }
}

//! How long the processor takes for one wrap-up record, and for a batch of ten, when every call to
//! Twilio takes 50 ms.
//!
//! The stack is the one the processor tests build (`tests/tests/processor.rs`): a local AWS
//! (moto server) for DynamoDB and Secrets Manager, and the local Twilio and Genesys Cloud, here
//! with 50 ms added to every answer. Each record is a Genesys wrap-up webhook with a configured
//! code, so it sends one SMS (Genesys is not called for a send). The records are encoded with
//! `queue::encode` exactly as the receiver sends them and handed to `processor::handle` as the SQS
//! event Lambda would deliver; SQS polling is not part of the timing, as in Lambda.
//!
//! One warm-up round (secrets, connections) is not counted; then each round times one record, then
//! a batch of ten distinct records, with fresh event keys every time. The bench prints the median
//! of each and their ratio; the target is a batch at most 1.5x one record, which only concurrent
//! processing can meet (ten sequential sends would take ten times 50 ms).
//!
//! It then runs the same rounds with no added latency, to show what the local AWS and the CPU
//! cost on their own: the part of the batch time that the 50 ms provider latency does not explain.
//! For each batch it also reads (on Linux, from `/proc`) the CPU time used by the moto server and
//! by this process (the processor, the AWS SDK and the local Twilio and Genesys).
//!
//! Every connection stays on 127.0.0.1. Run: `cargo bench -p processor --bench batch`.

use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::SqsEvent;
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};
use genesys_relay::config::{Env, ProcessorConfig};
use genesys_relay::event::EventKey;
use genesys_relay::queue::{self, Envelope, Payload, Source};
use lambda_runtime::{Context, LambdaEvent};
use processor::{handle, Deps};
use relay_tests::fakes::genesys::FakeGenesys;
use relay_tests::fakes::twilio::FakeTwilio;
use relay_tests::providers::{http_client, Providers};
use relay_tests::{lambda_record, LocalAws};
use serde_json::json;
use time::OffsetDateTime;

/// What every answer of the local Twilio and Genesys waits.
const LATENCY: Duration = Duration::from_millis(50);
/// Records in a batch (the SQS event source mapping's default batch size).
const BATCH: usize = 10;
/// Timed rounds under `cargo bench`; one when run as a test.
const ROUNDS: usize = 7;
/// The target from the issue: a batch costs at most this many single records.
const TARGET_RATIO: f64 = 1.5;
const STATUS_URL: &str = "https://relay.example.com/webhooks/twilio/status";
const RULES: &str = r#"{"smsOnWrapup": {"templates": {"ININ-OUTBOUND-NO-ANSWER": "Sorry we missed you, {{contact.firstName}}."}, "from": "+15005550006"}}"#;

/// The processor and what it talks to; the servers stop when this is dropped.
struct Stack {
    _aws: LocalAws,
    twilio: FakeTwilio,
    genesys: FakeGenesys,
    deps: Deps,
    /// Conversations handed out so far, so every record has a fresh event key.
    conversations: usize,
}

impl Stack {
    async fn start() -> Self {
        let aws = LocalAws::start().await;
        let queue_url = aws.queue("main").await;
        let dlq_url = aws.queue("dlq").await;
        let providers = Providers::start(&aws).await;
        let mut env = providers.settings();
        env.extend([
            ("QUEUE_URL", queue_url),
            ("DLQ_URL", dlq_url),
            ("STATUS_CALLBACK_URL", STATUS_URL.into()),
            ("RULES", RULES.into()),
        ]);
        let config = ProcessorConfig::from_env(&Env::from_fn(|k| env.get(k).cloned()))
            .expect("valid settings");
        let deps = Deps::new(config, &aws.sdk, http_client()).expect("clients");
        let Providers {
            twilio, genesys, ..
        } = providers;
        Self {
            _aws: aws,
            twilio,
            genesys,
            deps,
            conversations: 0,
        }
    }

    /// An SQS event of `count` wrap-up webhooks, each for a new conversation and number.
    /// Sets the latency of every answer of the local Twilio and Genesys.
    fn set_latency(&self, latency: Duration) {
        self.twilio.set_latency(latency);
        self.genesys.set_latency(latency);
    }

    fn wrapups(&mut self, count: usize) -> SqsEvent {
        let mut event = SqsEvent::default();
        event.records = (0..count)
            .map(|_| {
                self.conversations += 1;
                wrapup_record(self.conversations)
            })
            .collect();
        event
    }

    /// Runs `event` through the handler and returns how long it took; panics unless every record
    /// succeeded and sent its SMS, so a figure always stands for the full work.
    async fn time(&self, event: SqsEvent) -> Duration {
        let count = event.records.len();
        let sent_before = self.twilio.messages().len();
        let start = Instant::now();
        let response = handle(LambdaEvent::new(event, Context::default()), &self.deps)
            .await
            .expect("handler");
        let elapsed = start.elapsed();
        assert!(
            response.batch_item_failures.is_empty(),
            "records failed: {:?}",
            response.batch_item_failures
        );
        assert_eq!(
            self.twilio.messages().len(),
            sent_before + count,
            "one SMS per record"
        );
        elapsed
    }
}

/// A wrap-up webhook for conversation `n` as the receiver queues it, in the shape Lambda delivers.
fn wrapup_record(n: usize) -> aws_lambda_events::event::sqs::SqsMessage {
    let conversation = format!("bench-conversation-{n}");
    let body = json!({
        "topicName": format!("v2.detail.events.conversation.{conversation}.acw"),
        "eventBody": {"conversationId": conversation, "participantId": format!("p-{n}"),
                      "wrapupCode": "ININ-OUTBOUND-NO-ANSWER",
                      "addressTo": format!("tel:+1415{:07}", n % 10_000_000),
                      "outboundCampaignId": "camp-1"},
        "contact": {"firstName": "Ada"}
    })
    .to_string();
    let envelope = Envelope {
        event_key: EventKey::from_parts(&[conversation.as_str(), "acw"]),
        source: Source::GenesysWebhook,
        received_at: OffsetDateTime::now_utc(),
        content_type: "application/json".into(),
        correlation_id: None,
        group_id: conversation.clone(),
    };
    let (body, attributes) =
        queue::encode(&envelope, &Payload::Inline(body)).expect("an encodable envelope");
    let message = Message::builder()
        .message_id(format!("message-{n}"))
        .receipt_handle(format!("receipt-{n}"))
        .body(body)
        .set_message_attributes(Some(attributes))
        .attributes(MessageSystemAttributeName::ApproximateReceiveCount, "1")
        .build();
    lambda_record(message)
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The machine's load averages (1, 5, 15 minutes), when the system reports them.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// CPU time (user + system) a process used so far, from `/proc/<pid>/stat`; `None` where there is
/// no such file. Counted in clock ticks of 10 ms (Linux's `USER_HZ` is 100).
fn cpu_time(pid: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses: state is field 3, utime 14, stime 15.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// CPU time used so far by this process and by its children (the moto server).
fn cpu_times() -> Option<(Duration, Duration)> {
    let mut children = Duration::ZERO;
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let listed = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        for pid in listed.split_whitespace() {
            children += cpu_time(pid).unwrap_or_default();
        }
    }
    Some((cpu_time("self")?, children))
}

/// Medians of one round series, and the CPU used per batch.
struct Measured {
    one: Duration,
    batch: Duration,
    /// CPU per batch of this process and of moto, when the system reports them.
    batch_cpu: Option<(Duration, Duration)>,
}

/// Times `rounds` rounds of one record then one batch.
async fn measure(stack: &mut Stack, rounds: usize, label: &str) -> Measured {
    let (mut ones, mut batches) = (Vec::new(), Vec::new());
    let mut cpu = Some((Duration::ZERO, Duration::ZERO));
    for round in 1..=rounds {
        let event = stack.wrapups(1);
        let one = stack.time(event).await;
        let event = stack.wrapups(BATCH);
        let before = cpu_times();
        let batch = stack.time(event).await;
        cpu = match (cpu, before, cpu_times()) {
            (Some((own, moto)), Some((own0, moto0)), Some((own1, moto1))) => {
                Some((own + (own1 - own0), moto + (moto1 - moto0)))
            }
            _ => None,
        };
        println!(
            "processor ({label}): round {round}: one record {:.1} ms, batch of {BATCH} {:.1} ms",
            millis(one),
            millis(batch)
        );
        ones.push(one);
        batches.push(batch);
    }
    let per_round = u32::try_from(rounds).unwrap_or(u32::MAX);
    Measured {
        one: median(ones),
        batch: median(batches),
        batch_cpu: cpu.map(|(own, moto)| (own / per_round, moto / per_round)),
    }
}

/// `; CPU per batch: ...` when known.
fn cpu_note(measured: &Measured) -> String {
    match measured.batch_cpu {
        Some((own, moto)) => format!(
            "; CPU per batch: moto {:.0} ms, this process {:.0} ms",
            millis(moto),
            millis(own)
        ),
        None => String::new(),
    }
}

async fn run(rounds: usize) {
    let started = Instant::now();
    println!("processor: load average before the run: {}", load_average());
    let mut stack = Stack::start().await;
    println!(
        "processor: stack up in {:.1} s (moto, local Twilio and Genesys)",
        started.elapsed().as_secs_f64()
    );

    // Warm-up: secrets read, connections to DynamoDB and Twilio opened.
    let event = stack.wrapups(1);
    stack.time(event).await;
    let event = stack.wrapups(BATCH);
    stack.time(event).await;

    let with_latency = format!("{} ms per answer", LATENCY.as_millis());
    stack.set_latency(LATENCY);
    let loaded = measure(&mut stack, rounds, &with_latency).await;
    stack.set_latency(Duration::ZERO);
    let bare = measure(&mut stack, rounds, "no added latency").await;

    let ratio = loaded.batch.as_secs_f64() / loaded.one.as_secs_f64();
    let verdict = if ratio <= TARGET_RATIO {
        "met"
    } else {
        "NOT met"
    };
    println!(
        "processor: no added latency (local AWS and CPU only): one record {:.0} ms, batch of {BATCH} {:.0} ms{}",
        millis(bare.one),
        millis(bare.batch),
        cpu_note(&bare)
    );
    println!(
        "processor: one record {:.0} ms, batch of {BATCH} {:.0} ms, ratio {ratio:.2} (target <= {TARGET_RATIO}: {verdict}; {with_latency}; medians of {rounds} rounds{})",
        millis(loaded.one),
        millis(loaded.batch),
        cpu_note(&loaded)
    );
    println!(
        "processor: done in {:.1} s; load average after the run: {}",
        started.elapsed().as_secs_f64(),
        load_average()
    );
}

fn main() {
    // `cargo bench` passes `--bench`; run as a test (`cargo test --benches`), one round checks
    // that the bench still works.
    let rounds = if std::env::args().any(|arg| arg == "--bench") {
        ROUNDS
    } else {
        println!(
            "processor: run as a test: one round, to check that the bench works; for figures run `cargo bench -p processor --bench batch`"
        );
        1
    };
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(run(rounds));
}

//! How long the processor takes for one wrap-up record, and for a batch of ten, when every call to
//! Twilio takes 50 ms: once with its state in DynamoDB on the local AWS (moto server), once in the
//! relay's in-memory stores, each call answered after 5 ms.
//!
//! The stack is the one the processor tests build (`tests/tests/processor.rs`): a local AWS
//! (moto server) for DynamoDB and Secrets Manager, and the local Twilio and Genesys Cloud, here
//! with 50 ms added to every answer. Each record is a Genesys wrap-up webhook with a configured
//! code, so it sends one SMS (Genesys is not called for a send). The records are encoded with
//! `queue::encode` exactly as the receiver sends them and handed to `processor::handle` as the SQS
//! event Lambda would deliver; SQS polling is not part of the timing, as in Lambda.
//!
//! moto works through DynamoDB calls about one after the other, so the batch figure against it
//! mostly measures moto. The target (a batch at most 1.5x one record, which only concurrent
//! processing can meet: ten sequential sends would take ten times 50 ms) is judged on the run
//! against the in-memory stores (`memory.rs`), which, like DynamoDB, answer concurrent calls in
//! parallel. Their 5 ms per call is an assumption (DynamoDB's usual single-digit milliseconds in
//! the region), not measured against AWS. The moto figures are printed beside it.
//!
//! Per backend, one warm-up round (secrets, connections) is not counted; a repeat of a processed
//! record must send nothing; then each round times one record, then a batch of ten distinct
//! records, with fresh event keys every time. The bench prints the median of each and their ratio.
//! It then runs the same rounds with no added Twilio and Genesys latency, to show what DynamoDB and
//! the CPU cost on their own. For each batch it also reads (on Linux, from `/proc`) the CPU time
//! used by the moto server and by this process (the processor, the AWS SDK, the local Twilio and
//! Genesys, and the in-memory stores).
//!
//! Every connection stays on 127.0.0.1. Run: `cargo bench -p processor --bench batch`.

mod memory;

use std::time::{Duration, Instant};

use anyhow::{anyhow, ensure, Context as _};
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};
use genesys_relay::actions::delivery_status::StatusChecks;
use genesys_relay::config::{Env, ProcessorConfig};
use genesys_relay::inbound::event::EventKey;
use genesys_relay::inbound::queue::{self, Envelope, MediaType, Payload, Source};
use genesys_relay::state::idempotency::Idempotency;
use lambda_runtime::{Context, LambdaEvent};
use processor::{handle, Deps};
use relay_tests::fakes::genesys::FakeGenesys;
use relay_tests::fakes::twilio::FakeTwilio;
use relay_tests::providers::{http_client, Providers};
use relay_tests::{lambda_record, LocalAws};
use serde_json::json;
use time::OffsetDateTime;

use memory::{Counts, MemoryState};

/// What every answer of the local Twilio and Genesys waits.
const LATENCY: Duration = Duration::from_millis(50);
/// What every call to the in-memory stores waits: assumed, DynamoDB's usual in-region latency.
const DYNAMODB_LATENCY: Duration = Duration::from_millis(5);
/// Records in a batch (the SQS event source mapping's default batch size).
const BATCH: usize = 10;
/// Timed rounds under `cargo bench`; one when run as a test.
const ROUNDS: usize = 7;
/// The target from the issue: a batch costs at most this many single records.
const TARGET_RATIO: f64 = 1.5;
const STATUS_URL: &str = "https://relay.example.com/webhooks/twilio/status";
const RULES: &str = r#"{"smsOnWrapup": {"templates": {"ININ-OUTBOUND-NO-ANSWER": "Sorry we missed you, {{contact.firstName}}."}, "from": "+15005550006"}}"#;

/// Where the processor's state is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Moto,
    Memory,
}

impl Backend {
    fn label(self) -> &'static str {
        match self {
            Self::Moto => "DynamoDB on moto",
            Self::Memory => "in-memory stores",
        }
    }

    /// The calls the in-memory stores must have answered for `records` records that each sent
    /// their SMS: the idempotency claim and its completion, the opt-out check, the SMS ledger
    /// write and the first status check queued. None when the processor uses moto.
    fn memory_calls(self, records: usize) -> Counts {
        match self {
            Self::Moto => Counts::default(),
            Self::Memory => Counts {
                claims: records,
                settled: records,
                ledger: records,
                opt_outs: records,
                jobs: records,
            },
        }
    }
}

/// The processor and what it talks to; the servers stop when this is dropped.
struct Stack {
    _aws: LocalAws,
    twilio: FakeTwilio,
    genesys: FakeGenesys,
    /// The processor with every AWS call going to moto.
    on_moto: Deps,
    /// The processor with its state in memory (the other AWS calls going to moto).
    in_memory: Deps,
    memory: MemoryState,
    /// Conversations handed out so far, so every record has a fresh event key.
    conversations: usize,
}

impl Stack {
    async fn start() -> anyhow::Result<Self> {
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
        let config = ProcessorConfig::from_env(&Env::from_fn(|k| env.get(k).cloned()))?;
        let on_moto = Deps::new(config.clone(), &aws.sdk, http_client()).await?;
        let memory = MemoryState::new(DYNAMODB_LATENCY);
        let mut in_memory = Deps::new(config.clone(), &aws.sdk, http_client()).await?;
        in_memory.idempotency = Idempotency::for_actions(memory.claims.clone(), &config.actions);
        in_memory.actions.sms = memory.ledger.clone();
        in_memory.actions.opt_outs = memory.opt_outs.clone();
        in_memory.jobs = memory.jobs.clone();
        in_memory.actions.status_checks = Some(StatusChecks::over(
            memory.jobs.clone(),
            config.actions.status_check_schedule.clone(),
        ));
        let Providers {
            twilio, genesys, ..
        } = providers;
        Ok(Self {
            _aws: aws,
            twilio,
            genesys,
            on_moto,
            in_memory,
            memory,
            conversations: 0,
        })
    }

    /// Sets the latency of every answer of the local Twilio and Genesys.
    fn set_latency(&self, latency: Duration) {
        self.twilio.set_latency(latency);
        self.genesys.set_latency(latency);
    }

    /// An SQS event of `count` wrap-up webhooks, each for a new conversation and number.
    fn wrapups(&mut self, count: usize) -> anyhow::Result<SqsEvent> {
        let mut event = SqsEvent::default();
        event.records = (0..count)
            .map(|_| {
                self.conversations += 1;
                wrapup_record(self.conversations)
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(event)
    }

    /// Runs `event` through the processor on `backend` and returns how long it took; fails unless
    /// every record succeeded and sent its SMS, so a figure always stands for the full work.
    async fn time(&self, backend: Backend, event: SqsEvent) -> anyhow::Result<Duration> {
        let count = event.records.len();
        self.process(backend, event, count, backend.memory_calls(count))
            .await
    }

    /// Runs the last record again: its idempotency record is complete, so it must send nothing.
    /// In memory that takes one claim, which finds the completed record.
    async fn check_repeat(&self, backend: Backend) -> anyhow::Result<()> {
        let mut event = SqsEvent::default();
        event.records = vec![wrapup_record(self.conversations)?];
        let calls = match backend {
            Backend::Moto => Counts::default(),
            Backend::Memory => Counts {
                claims: 1,
                ..Counts::default()
            },
        };
        self.process(backend, event, 0, calls)
            .await
            .context("a repeated record")?;
        Ok(())
    }

    /// Runs `event`, checks that every record succeeded, that `sms` messages were sent and that
    /// the in-memory stores answered exactly `calls`, and returns how long the processor took.
    async fn process(
        &self,
        backend: Backend,
        event: SqsEvent,
        sms: usize,
        calls: Counts,
    ) -> anyhow::Result<Duration> {
        let deps = match backend {
            Backend::Moto => &self.on_moto,
            Backend::Memory => &self.in_memory,
        };
        let sent_before = self.twilio.messages().len();
        let served_before = self.memory.counts();
        let start = Instant::now();
        let response = handle(LambdaEvent::new(event, Context::default()), deps)
            .await
            .map_err(|e| anyhow!("the handler failed: {e}"))?;
        let elapsed = start.elapsed();
        let served = self.memory.counts().since(served_before);
        ensure!(
            response.batch_item_failures.is_empty(),
            "records failed on {}: {:?}",
            backend.label(),
            response.batch_item_failures
        );
        let sent = self.twilio.messages().len() - sent_before;
        ensure!(sent == sms, "{sent} SMS sent, expected {sms}");
        ensure!(
            served == calls,
            "the in-memory stores answered {served:?}, expected {calls:?}"
        );
        Ok(elapsed)
    }
}

/// A wrap-up webhook for conversation `n` as the receiver queues it, in the shape Lambda delivers.
/// The same `n` always gives the same event key and payload.
fn wrapup_record(n: usize) -> anyhow::Result<SqsMessage> {
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
        content_type: MediaType::Json,
        correlation_id: None,
        group_id: conversation.clone(),
    };
    let (body, attributes) = queue::encode(&envelope, &Payload::Inline(body))?;
    let message = Message::builder()
        .message_id(format!("message-{n}"))
        .receipt_handle(format!("receipt-{n}"))
        .body(body)
        .set_message_attributes(Some(attributes))
        .attributes(MessageSystemAttributeName::ApproximateReceiveCount, "1")
        .build();
    Ok(lambda_record(message))
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

impl Measured {
    fn ratio(&self) -> f64 {
        self.batch.as_secs_f64() / self.one.as_secs_f64()
    }

    /// `; CPU per batch: ...` when known.
    fn cpu_note(&self) -> String {
        match self.batch_cpu {
            Some((own, moto)) => format!(
                "; CPU per batch: moto {:.0} ms, this process {:.0} ms",
                millis(moto),
                millis(own)
            ),
            None => String::new(),
        }
    }
}

/// Times `rounds` rounds of one record then one batch, on `backend`.
async fn measure(
    stack: &mut Stack,
    backend: Backend,
    rounds: usize,
    label: &str,
) -> anyhow::Result<Measured> {
    let (mut ones, mut batches) = (Vec::new(), Vec::new());
    let mut cpu = Some((Duration::ZERO, Duration::ZERO));
    for round in 1..=rounds {
        let event = stack.wrapups(1)?;
        let one = stack.time(backend, event).await?;
        let event = stack.wrapups(BATCH)?;
        let before = cpu_times();
        let batch = stack.time(backend, event).await?;
        cpu = match (cpu, before, cpu_times()) {
            (Some((own, moto)), Some((own0, moto0)), Some((own1, moto1))) => {
                Some((own + (own1 - own0), moto + (moto1 - moto0)))
            }
            _ => None,
        };
        println!(
            "processor ({}, {label}): round {round}: one record {:.1} ms, batch of {BATCH} {:.1} ms",
            backend.label(),
            millis(one),
            millis(batch)
        );
        ones.push(one);
        batches.push(batch);
    }
    let per_round = u32::try_from(rounds).unwrap_or(u32::MAX);
    Ok(Measured {
        one: median(ones),
        batch: median(batches),
        batch_cpu: cpu.map(|(own, moto)| (own / per_round, moto / per_round)),
    })
}

/// Warms `backend` up, checks that a repeat sends nothing, then measures with and without the
/// Twilio and Genesys latency.
async fn measure_backend(
    stack: &mut Stack,
    backend: Backend,
    rounds: usize,
) -> anyhow::Result<(Measured, Measured)> {
    // Warm-up: secrets read, connections to DynamoDB and Twilio opened.
    stack.set_latency(Duration::ZERO);
    let event = stack.wrapups(1)?;
    stack.time(backend, event).await?;
    let event = stack.wrapups(BATCH)?;
    stack.time(backend, event).await?;
    stack.check_repeat(backend).await?;

    stack.set_latency(LATENCY);
    let loaded = measure(stack, backend, rounds, &latency_label()).await?;
    stack.set_latency(Duration::ZERO);
    let bare = measure(stack, backend, rounds, "no added latency").await?;
    Ok((loaded, bare))
}

fn latency_label() -> String {
    format!("{} ms per Twilio/Genesys answer", LATENCY.as_millis())
}

async fn run(rounds: usize) -> anyhow::Result<()> {
    let started = Instant::now();
    println!("processor: load average before the run: {}", load_average());
    let mut stack = Stack::start().await?;
    println!(
        "processor: stack up in {:.1} s (moto, in-memory stores, local Twilio and Genesys)",
        started.elapsed().as_secs_f64()
    );
    let assumed = DYNAMODB_LATENCY.as_millis();
    println!(
        "processor: the in-memory stores (the relay's own, its logic's test stores) and queue answer concurrent calls in parallel, each after {assumed} ms, an assumed figure for DynamoDB and SQS in the same region, not measured against AWS; Secrets Manager is read from moto"
    );

    let (moto, moto_bare) = measure_backend(&mut stack, Backend::Moto, rounds).await?;
    let (in_memory, in_memory_bare) = measure_backend(&mut stack, Backend::Memory, rounds).await?;

    println!(
        "processor: DynamoDB on moto, no added latency (moto and CPU only): one record {:.0} ms, batch of {BATCH} {:.0} ms{}",
        millis(moto_bare.one),
        millis(moto_bare.batch),
        moto_bare.cpu_note()
    );
    println!(
        "processor: in-memory stores, no added latency ({assumed} ms per store call and CPU only): one record {:.0} ms, batch of {BATCH} {:.0} ms{}",
        millis(in_memory_bare.one),
        millis(in_memory_bare.batch),
        in_memory_bare.cpu_note()
    );
    let moto_ratio = moto.ratio();
    println!(
        "processor: DynamoDB on moto: one record {:.0} ms, batch of {BATCH} {:.0} ms, ratio {moto_ratio:.2} ({} {TARGET_RATIO}, but the target is judged on the in-memory line: moto serves DynamoDB calls about one at a time; {}; medians of {rounds} rounds{})",
        millis(moto.one),
        millis(moto.batch),
        if moto_ratio <= TARGET_RATIO { "within" } else { "above" },
        latency_label(),
        moto.cpu_note()
    );
    let ratio = in_memory.ratio();
    let verdict = if ratio <= TARGET_RATIO {
        "met"
    } else {
        "NOT met"
    };
    println!(
        "processor: in-memory stores: one record {:.0} ms, batch of {BATCH} {:.0} ms, ratio {ratio:.2} (target <= {TARGET_RATIO}: {verdict}, judged on this line; {}, {assumed} ms per store call (assumed); medians of {rounds} rounds{})",
        millis(in_memory.one),
        millis(in_memory.batch),
        latency_label(),
        in_memory.cpu_note()
    );
    println!(
        "processor: done in {:.1} s; load average after the run: {}",
        started.elapsed().as_secs_f64(),
        load_average()
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
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
        .build()?
        .block_on(run(rounds))
}

//! How long the processor takes for one wrap-up record, and for a batch of ten, when every call to
//! Twilio takes 50 ms: once with DynamoDB on the local AWS (moto server), once with DynamoDB on an
//! in-memory stand-in that serves requests concurrently, each after 5 ms.
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
//! against the stand-in (`dynamodb.rs`), which, like DynamoDB, serves concurrent requests in
//! parallel. Its 5 ms per request is an assumption (DynamoDB's usual single-digit milliseconds in
//! the region), not measured against AWS. The moto figures are printed beside it.
//!
//! Per backend, one warm-up round (secrets, connections) is not counted; a repeat of a processed
//! record must send nothing; then each round times one record, then a batch of ten distinct
//! records, with fresh event keys every time. The bench prints the median of each and their ratio.
//! It then runs the same rounds with no added Twilio and Genesys latency, to show what DynamoDB and
//! the CPU cost on their own. For each batch it also reads (on Linux, from `/proc`) the CPU time
//! used by the moto server and by this process (the processor, the AWS SDK, the local Twilio and
//! Genesys, and the stand-in).
//!
//! Every connection stays on 127.0.0.1. Run: `cargo bench -p processor --bench batch`.

mod dynamodb;

use std::time::{Duration, Instant};

use anyhow::{anyhow, ensure, Context as _};
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};
use genesys_relay::config::{Env, ProcessorConfig};
use genesys_relay::inbound::event::EventKey;
use genesys_relay::inbound::queue::{self, Envelope, Payload, Source};
use lambda_runtime::{Context, LambdaEvent};
use processor::{handle, Deps};
use relay_tests::fakes::genesys::FakeGenesys;
use relay_tests::fakes::twilio::FakeTwilio;
use relay_tests::providers::{http_client, Providers, TABLE};
use relay_tests::{lambda_record, LocalAws};
use serde_json::json;
use time::OffsetDateTime;

use dynamodb::{Counts, DynamoStandIn};

/// What every answer of the local Twilio and Genesys waits.
const LATENCY: Duration = Duration::from_millis(50);
/// What every answer of the DynamoDB stand-in waits: assumed, DynamoDB's usual in-region latency.
const DYNAMODB_LATENCY: Duration = Duration::from_millis(5);
/// Records in a batch (the SQS event source mapping's default batch size).
const BATCH: usize = 10;
/// Timed rounds under `cargo bench`; one when run as a test.
const ROUNDS: usize = 7;
/// The target from the issue: a batch costs at most this many single records.
const TARGET_RATIO: f64 = 1.5;
const STATUS_URL: &str = "https://relay.example.com/webhooks/twilio/status";
const RULES: &str = r#"{"smsOnWrapup": {"templates": {"ININ-OUTBOUND-NO-ANSWER": "Sorry we missed you, {{contact.firstName}}."}, "from": "+15005550006"}}"#;

/// Where the processor's DynamoDB calls go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Moto,
    StandIn,
}

impl Backend {
    fn label(self) -> &'static str {
        match self {
            Self::Moto => "DynamoDB on moto",
            Self::StandIn => "DynamoDB stand-in",
        }
    }

    /// The DynamoDB requests the stand-in must have answered for `records` records that each
    /// sent their SMS: the idempotency claim and the SMS ledger write (PutItem), the opt-out check
    /// (GetItem) and the idempotency completion (UpdateItem). None when the processor uses moto.
    fn stand_in_calls(self, records: usize) -> Counts {
        match self {
            Self::Moto => Counts::default(),
            Self::StandIn => Counts {
                put_item: 2 * records,
                get_item: records,
                update_item: records,
                ..Counts::default()
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
    /// The processor with its DynamoDB calls going to the stand-in (the rest relayed to moto).
    on_stand_in: Deps,
    stand_in: DynamoStandIn,
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
        let stand_in = DynamoStandIn::start(TABLE, DYNAMODB_LATENCY, &aws.endpoint).await?;
        let stand_in_sdk = genesys_relay::aws::local(stand_in.base_url()).await;
        let on_stand_in = Deps::new(config, &stand_in_sdk, http_client()).await?;
        let Providers {
            twilio, genesys, ..
        } = providers;
        Ok(Self {
            _aws: aws,
            twilio,
            genesys,
            on_moto,
            on_stand_in,
            stand_in,
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
        self.process(backend, event, count, backend.stand_in_calls(count))
            .await
    }

    /// Runs the last record again: its idempotency record is complete, so it must send nothing.
    /// On the stand-in that takes one conditional put, refused with the stored record returned.
    async fn check_repeat(&self, backend: Backend) -> anyhow::Result<()> {
        let mut event = SqsEvent::default();
        event.records = vec![wrapup_record(self.conversations)?];
        let calls = match backend {
            Backend::Moto => Counts::default(),
            Backend::StandIn => Counts {
                condition_failed: 1,
                ..Counts::default()
            },
        };
        self.process(backend, event, 0, calls)
            .await
            .context("a repeated record")?;
        Ok(())
    }

    /// Runs `event`, checks that every record succeeded, that `sms` messages were sent and that
    /// the stand-in answered exactly `calls`, and returns how long the processor took.
    async fn process(
        &self,
        backend: Backend,
        event: SqsEvent,
        sms: usize,
        calls: Counts,
    ) -> anyhow::Result<Duration> {
        let deps = match backend {
            Backend::Moto => &self.on_moto,
            Backend::StandIn => &self.on_stand_in,
        };
        let sent_before = self.twilio.messages().len();
        let served_before = self.stand_in.counts();
        let start = Instant::now();
        let response = handle(LambdaEvent::new(event, Context::default()), deps)
            .await
            .map_err(|e| anyhow!("the handler failed: {e}"))?;
        let elapsed = start.elapsed();
        let served = self.stand_in.counts().since(served_before);
        ensure!(
            served.refused == 0,
            "the DynamoDB stand-in refused requests: {:?}",
            self.stand_in.refusals()
        );
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
            "the DynamoDB stand-in answered {served:?}, expected {calls:?}"
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
        content_type: "application/json".into(),
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
        "processor: stack up in {:.1} s (moto, DynamoDB stand-in, local Twilio and Genesys)",
        started.elapsed().as_secs_f64()
    );
    let assumed = DYNAMODB_LATENCY.as_millis();
    println!(
        "processor: the DynamoDB stand-in keeps the table in memory in this process, serves requests concurrently and answers each after {assumed} ms, an assumed figure for DynamoDB in the same region, not measured against AWS; other AWS calls (Secrets Manager) go on to moto"
    );

    let (moto, moto_bare) = measure_backend(&mut stack, Backend::Moto, rounds).await?;
    let (stand_in, stand_in_bare) = measure_backend(&mut stack, Backend::StandIn, rounds).await?;

    println!(
        "processor: DynamoDB on moto, no added latency (moto and CPU only): one record {:.0} ms, batch of {BATCH} {:.0} ms{}",
        millis(moto_bare.one),
        millis(moto_bare.batch),
        moto_bare.cpu_note()
    );
    println!(
        "processor: DynamoDB stand-in, no added latency ({assumed} ms per DynamoDB call and CPU only): one record {:.0} ms, batch of {BATCH} {:.0} ms{}",
        millis(stand_in_bare.one),
        millis(stand_in_bare.batch),
        stand_in_bare.cpu_note()
    );
    let moto_ratio = moto.ratio();
    println!(
        "processor: DynamoDB on moto: one record {:.0} ms, batch of {BATCH} {:.0} ms, ratio {moto_ratio:.2} ({} {TARGET_RATIO}, but the target is judged on the stand-in line: moto serves DynamoDB calls about one at a time; {}; medians of {rounds} rounds{})",
        millis(moto.one),
        millis(moto.batch),
        if moto_ratio <= TARGET_RATIO { "within" } else { "above" },
        latency_label(),
        moto.cpu_note()
    );
    let ratio = stand_in.ratio();
    let verdict = if ratio <= TARGET_RATIO {
        "met"
    } else {
        "NOT met"
    };
    println!(
        "processor: DynamoDB stand-in: one record {:.0} ms, batch of {BATCH} {:.0} ms, ratio {ratio:.2} (target <= {TARGET_RATIO}: {verdict}, judged on this line; {}, {assumed} ms per DynamoDB call (assumed); medians of {rounds} rounds{})",
        millis(stand_in.one),
        millis(stand_in.batch),
        latency_label(),
        stand_in.cpu_note()
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

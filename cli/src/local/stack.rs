//! The whole pipeline on one machine: a local AWS (moto server from the project's `.venv`, reached
//! through a link that can be cut), the stack's resources created from `template.yaml`, local
//! Twilio and Genesys servers, the receiver on an HTTP port, the processor fed from the queue as
//! an event source mapping and Lambda would (concurrent pollers, a deadline per invocation), and
//! the EventBridge handler fed from the rule's target queue. Dropping the stack stops all of it.

use std::collections::HashMap;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use aws_config::SdkConfig;
use aws_lambda_events::event::sqs::SqsEvent;
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageSystemAttributeName, QueueAttributeName,
};
use genesys_relay::config::{Env, EventBridgeConfig, ProcessorConfig, ReceiverConfig};
use lambda_runtime::{Context, LambdaEvent};
use relay_local::fakes::genesys::FakeGenesys;
use relay_local::fakes::twilio::FakeTwilio;
use relay_local::lambda_record;
use relay_local::tcp_link::TcpLink;
use serde::Deserialize;
use serde_json::json;
use tokio::task::{AbortHandle, JoinHandle};

use super::counters::Counters;
use super::http;

/// Twilio account and Auth Token of the local Twilio (the template's Twilio secret holds them
/// locally, see `scripts/local_resources.py`).
pub const TWILIO_ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
/// The local Twilio Auth Token, which also signs its status callbacks.
pub const TWILIO_TOKEN: &str = "test-auth-token";
/// The local Genesys webhook secret of the default `hmac` scheme (its HMAC key).
pub const WEBHOOK_SECRET: &str = "test-webhook-secret";
/// The local Genesys webhook secret under `standard-webhooks`: `whsec_` and a base64 key.
pub const STANDARD_WEBHOOKS_SECRET: &str = "whsec_Z2VuZXN5cy1yZWxheSBsb2NhbCB3ZWJob29rIGtleSE=";
/// The local Genesys webhook secret under `basic`: `user:password`.
pub const BASIC_SECRET: &str = "relay:test-webhook-password";
/// The local Genesys webhook secret under `bearer`: the token.
pub const BEARER_SECRET: &str = "test-webhook-token";
/// The id of the local organization's "Callback Requested" wrap-up code (as
/// `events/eventbridge-acw-org-code.json` carries it).
pub const CALLBACK_REQUESTED_ID: &str = "6f2d9c1e-4b7a-4e3f-8d5c-1a9b3e7f2c64";
/// The sample webhook `relay send` is shown sending to the local receiver.
pub const SAMPLE_WEBHOOK: &str = "events/receiver-genesys-webhook.json";

/// How the local receiver authenticates Genesys webhooks (`GENESYS_WEBHOOK_AUTH`), so that every
/// scheme a deployment may choose can be tried on this machine; each comes with a local secret of
/// the form that scheme needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum GenesysAuth {
    /// Standard Webhooks signatures; the secret is a `whsec_` key.
    StandardWebhooks,
    /// `Authorization: Basic`; the secret is `user:password`.
    Basic,
    /// `Authorization: Bearer`; the secret is the token.
    Bearer,
    /// HMAC-SHA256 of the body in `X-Hub-Signature-256`; the secret is the HMAC key.
    #[default]
    Hmac,
}

impl GenesysAuth {
    /// Every scheme, for tests.
    pub const ALL: [Self; 4] = [
        Self::StandardWebhooks,
        Self::Basic,
        Self::Bearer,
        Self::Hmac,
    ];

    /// The `GENESYS_WEBHOOK_AUTH` value (also the `--genesys-auth` and `relay send --scheme` one).
    pub fn name(self) -> &'static str {
        match self {
            Self::StandardWebhooks => "standard-webhooks",
            Self::Basic => "basic",
            Self::Bearer => "bearer",
            Self::Hmac => "hmac",
        }
    }

    /// The local webhook secret, in the form the scheme needs.
    pub fn secret(self) -> &'static str {
        match self {
            Self::StandardWebhooks => STANDARD_WEBHOOKS_SECRET,
            Self::Basic => BASIC_SECRET,
            Self::Bearer => BEARER_SECRET,
            Self::Hmac => WEBHOOK_SECRET,
        }
    }
}

/// The kind of the main and dead-letter queues (the template's `QueueType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum QueueType {
    /// Standard queues.
    #[default]
    Standard,
    /// FIFO queues, with a standard dead-letter queue for the EventBridge side.
    Fifo,
}

impl QueueType {
    /// The parameter's value.
    pub fn name(self) -> &'static str {
        match self {
            Self::Standard => "standard",
            Self::Fifo => "fifo",
        }
    }
}

/// What a deployment chooses that the local stack takes as well.
#[derive(Debug, Clone, Copy, Default)]
pub struct Choices {
    /// How the receiver authenticates Genesys webhooks.
    pub auth: GenesysAuth,
    /// The queues' kind.
    pub queue_type: QueueType,
}

/// What `scripts/local_resources.py` created.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resources {
    /// The main queue.
    pub queue_url: String,
    /// The dead-letter queue.
    pub dlq_url: String,
    /// The EventBridge side's dead-letter queue: its own with FIFO queues, else the one above.
    pub event_dlq_url: String,
    /// The state table.
    pub table: String,
    /// The claim-check bucket.
    pub bucket: String,
    /// Secrets.
    pub genesys_webhook_secret_arn: String,
    /// Secrets.
    pub twilio_secret_arn: String,
    /// Secrets.
    pub genesys_secret_arn: String,
    /// The local event bus carrying the template's rule.
    pub event_bus: String,
    /// The queue the rule delivers to, polled in place of the handler's invocation.
    pub event_target_queue_url: String,
    /// Receives before the main queue dead-letters a message.
    pub max_receive_count: u32,
    /// Records per processor invocation.
    pub batch_size: i32,
}

impl Resources {
    /// The dead-letter queues: one, or with FIFO queues two.
    pub fn dead_letter_queues(&self) -> Vec<&str> {
        let mut queues = vec![self.dlq_url.as_str()];
        if self.event_dlq_url != self.dlq_url {
            queues.push(self.event_dlq_url.as_str());
        }
        queues
    }
}

/// How the stack runs the processor, standing in for the event source mapping and Lambda.
#[derive(Debug, Clone, Copy)]
pub struct ProcessorRuns {
    /// Concurrent pollers, each invoking the processor with one batch at a time (the event source
    /// mapping scales out to several).
    pub pollers: usize,
    /// The function timeout: an invocation still running then is stopped, as Lambda stops it,
    /// and its batch comes back after the visibility timeout.
    pub timeout: Duration,
    /// How long a received message stays hidden; `None` keeps the queue's own setting.
    pub visibility: Option<Duration>,
}

impl Default for ProcessorRuns {
    /// The template's processor: a 30 s timeout, behind the queue's visibility timeout.
    fn default() -> Self {
        Self {
            pollers: 2,
            timeout: Duration::from_secs(30),
            visibility: None,
        }
    }
}

/// Processor invocations under way, so that one can be killed mid-batch as a crash would, and
/// the records of those stopped at their deadline.
#[derive(Debug, Default)]
pub struct Invocations {
    running: Mutex<HashMap<u64, (AbortHandle, Vec<String>)>>,
    next: AtomicU64,
    timed_out: Mutex<Vec<String>>,
}

impl Invocations {
    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<u64, (AbortHandle, Vec<String>)>> {
        self.running
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn start(&self, task: AbortHandle, bodies: Vec<String>) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.running().insert(id, (task, bodies));
        id
    }

    /// Ends an invocation's entry; its record bodies, unless it was killed meanwhile.
    fn end(&self, id: u64) -> Vec<String> {
        self.running()
            .remove(&id)
            .map(|(_, bodies)| bodies)
            .unwrap_or_default()
    }

    fn timed_out_with(&self, bodies: Vec<String>) {
        self.timed_out
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .extend(bodies);
    }

    /// The record bodies of every invocation stopped at its deadline: like a killed one's, their
    /// SMS may go out twice (sent, not yet recorded as done).
    pub fn timed_out(&self) -> Vec<String> {
        self.timed_out
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Kills every invocation holding a record whose body contains `needle`, as a crash would;
    /// returns the bodies of the batches killed. Nothing of them is deleted: the records come
    /// back after the visibility timeout.
    pub fn kill_holding(&self, needle: &str) -> Vec<String> {
        let mut running = self.running();
        let doomed: Vec<u64> = running
            .iter()
            .filter(|(_, (_, bodies))| bodies.iter().any(|b| b.contains(needle)))
            .map(|(id, _)| *id)
            .collect();
        let mut killed = Vec::new();
        for id in doomed {
            if let Some((task, bodies)) = running.remove(&id) {
                task.abort();
                killed.extend(bodies);
            }
        }
        killed
    }
}

/// A running local stack.
pub struct Stack {
    moto: Child,
    /// The relay every client reaches the local AWS through; cut it to take "AWS" away.
    pub aws_link: TcpLink,
    /// The local AWS endpoint (the link's address).
    pub endpoint: String,
    /// SDK configuration pointing at it.
    pub aws: SdkConfig,
    /// What was created there.
    pub resources: Resources,
    /// The local Twilio.
    pub twilio: FakeTwilio,
    /// The local Genesys Cloud.
    pub genesys: FakeGenesys,
    /// `http://127.0.0.1:<port>`, where the receiver's routes are served.
    pub receiver_url: String,
    /// How the receiver authenticates Genesys webhooks; the webhook secret is `genesys_auth.secret()`.
    pub genesys_auth: GenesysAuth,
    /// What the functions did.
    pub counters: Arc<Counters>,
    /// Processor invocations under way.
    pub invocations: Arc<Invocations>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Stack {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        let _ = self.moto.kill();
        let _ = self.moto.wait();
    }
}

/// The project directory (where `template.yaml` and `.venv` are).
pub fn project_root() -> Result<PathBuf> {
    let mut dir = std::env::current_dir()?;
    loop {
        if dir.join("template.yaml").exists() && dir.join("scripts/local_resources.py").exists() {
            return Ok(dir);
        }
        if !dir.pop() {
            bail!("run relay local from the genesys-relay project (no template.yaml found above the current directory)");
        }
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn wait_for_port(port: u16, limit: Duration, child: &mut Child, what: &str) -> Result<()> {
    let deadline = Instant::now() + limit;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(status) = child.try_wait()? {
            bail!("{what} exited ({status}) before listening on port {port}");
        }
        if Instant::now() > deadline {
            bail!(
                "{what} did not listen on port {port} within {}s",
                limit.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// The `relay send` command line that posts the sample webhook (under `root`) to the receiver at
/// `receiver_url`, signed for `auth` with its local secret: what `relay local up` prints.
pub fn send_command(receiver_url: &str, root: &Path, auth: GenesysAuth) -> String {
    format!(
        "relay send --url {receiver_url}/webhooks/genesys --file {} --scheme {} --secret {}",
        root.join(SAMPLE_WEBHOOK).display(),
        auth.name(),
        auth.secret()
    )
}

/// The settings the local stack gives its functions, as the template sets their environment:
/// the created resources, the local Twilio and Genesys, and the Genesys webhook auth scheme.
pub fn function_settings(
    resources: &Resources,
    twilio_base: &str,
    genesys_base: &str,
    receiver_url: &str,
    rules: &str,
    auth: GenesysAuth,
) -> HashMap<&'static str, String> {
    HashMap::from([
        ("QUEUE_URL", resources.queue_url.clone()),
        ("DLQ_URL", resources.dlq_url.clone()),
        ("TABLE_NAME", resources.table.clone()),
        ("CLAIM_CHECK_BUCKET", resources.bucket.clone()),
        ("GENESYS_WEBHOOK_AUTH", auth.name().to_owned()),
        (
            "GENESYS_WEBHOOK_SECRET_ARN",
            resources.genesys_webhook_secret_arn.clone(),
        ),
        ("TWILIO_SECRET_ARN", resources.twilio_secret_arn.clone()),
        ("GENESYS_SECRET_ARN", resources.genesys_secret_arn.clone()),
        ("TWILIO_API_BASE", twilio_base.to_owned()),
        ("GENESYS_API_BASE", genesys_base.to_owned()),
        ("GENESYS_LOGIN_BASE", genesys_base.to_owned()),
        ("PUBLIC_BASE_URL", receiver_url.to_owned()),
        (
            "STATUS_CALLBACK_URL",
            format!("{receiver_url}/webhooks/twilio/status"),
        ),
        ("RULES", rules.to_owned()),
        ("STATUS_CHECK_SCHEDULE_SECS", LOCAL_STATUS_CHECKS.to_owned()),
        // Local forwarding endpoints (the soak's) listen on plain HTTP on loopback.
        ("FORWARD_ALLOW_HTTP_LOOPBACK", "true".to_owned()),
        // Secrets are read again every 2 s, so a rotation on the local stack shows at once.
        ("SECRETS_MAX_AGE_SECS", "2".to_owned()),
    ])
}

/// The local stack's status-check schedule: seconds where production waits minutes to hours, so
/// a demo or soak sees every SMS's status read back without waiting an hour; the last check comes
/// after a dead writer's 60 s lease has run out, as production's do.
pub const LOCAL_STATUS_CHECKS: &str = "2,5,15,45";

impl Stack {
    /// Starts everything with the default `hmac` webhook scheme; `port` is the receiver's,
    /// `rules` the rules JSON the functions get.
    pub async fn up(root: &Path, port: u16, rules: &str, runs: ProcessorRuns) -> Result<Self> {
        Self::up_with(root, port, rules, runs, Choices::default()).await
    }

    /// Starts everything as a deployment making `choices` would run: the receiver enforcing
    /// their Genesys webhook scheme (with that scheme's local secret), on queues of their kind.
    pub async fn up_with(
        root: &Path,
        port: u16,
        rules: &str,
        runs: ProcessorRuns,
        choices: Choices,
    ) -> Result<Self> {
        let Choices { auth, queue_type } = choices;
        let python = root.join(".venv/bin/python");
        if !python.exists() {
            bail!(
                "{} is missing: run `make tools` (or scripts/tools.sh) first",
                python.display()
            );
        }
        let moto_port = free_port()?;
        let mut moto = Command::new(&python)
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &moto_port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting the local AWS (moto server)")?;
        wait_for_port(moto_port, Duration::from_secs(30), &mut moto, "moto server")?;
        let aws_link = TcpLink::start(moto_port)
            .await
            .context("starting the link to the local AWS")?;
        let endpoint = aws_link.url();
        let genesys = local_genesys().await;
        // The local pollers take batches of 10, as the soak's kill and redelivery checks expect.
        let parameters = json!({
            "SmsWrapupCodes": sms_wrapup_codes(rules, &genesys).await?,
            "BatchSize": "10",
            "QueueType": queue_type.name(),
        });
        let created = Command::new(&python)
            .arg(root.join("scripts/local_resources.py"))
            .arg(&endpoint)
            .env("LOCAL_GENESYS_WEBHOOK_SECRET", auth.secret())
            .env("LOCAL_PARAMETERS", parameters.to_string())
            .output()
            .context("creating the stack's resources from template.yaml")?;
        if !created.status.success() {
            bail!(
                "creating the resources failed: {}",
                String::from_utf8_lossy(&created.stderr)
            );
        }
        let resources: Resources =
            serde_json::from_slice(&created.stdout).context("reading the created resources")?;
        let aws = genesys_relay::aws::local(&endpoint).await;

        let twilio = FakeTwilio::start(
            TWILIO_ACCOUNT,
            vec![(TWILIO_ACCOUNT.into(), TWILIO_TOKEN.into())],
        )
        .await;
        twilio.send_status_callbacks(TWILIO_TOKEN);
        let receiver_url = format!("http://127.0.0.1:{port}");

        let settings = function_settings(
            &resources,
            &twilio.base_url(),
            &genesys.base_url(),
            &receiver_url,
            rules,
            auth,
        );
        let env = Env::from_fn(|name| settings.get(name).cloned());
        let http_client = genesys_relay::outbound::http::client()?;
        let receiver = receiver::Deps::new(ReceiverConfig::from_env(&env)?, &aws);
        let processor =
            processor::Deps::new(ProcessorConfig::from_env(&env)?, &aws, http_client).await?;
        // The template gives the EventBridge handler the EventBridge side's dead-letter queue.
        let mut handler_settings = settings.clone();
        handler_settings.insert("DLQ_URL", resources.event_dlq_url.clone());
        let handler_env = Env::from_fn(|name| handler_settings.get(name).cloned());
        let handler =
            eventbridge_handler::Deps::new(EventBridgeConfig::from_env(&handler_env)?, &aws);

        let counters = Arc::new(Counters::default());
        let invocations = Arc::new(Invocations::default());
        let processor = Arc::new(processor);
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .with_context(|| format!("port {port} is taken; pass --port"))?;
        let mut tasks = vec![
            tokio::spawn(http::serve(
                listener,
                Arc::new(receiver),
                Arc::clone(&counters),
            )),
            tokio::spawn(feed_eventbridge_handler(
                aws.clone(),
                resources.clone(),
                Arc::new(handler),
                Arc::clone(&counters),
            )),
        ];
        let poller = Poller {
            sqs: aws_sdk_sqs::Client::new(&aws),
            resources: resources.clone(),
            runs,
            deps: processor,
            counters: Arc::clone(&counters),
            invocations: Arc::clone(&invocations),
        };
        for _ in 0..runs.pollers.max(1) {
            tasks.push(tokio::spawn(poller.clone().run()));
        }
        Ok(Self {
            moto,
            aws_link,
            endpoint,
            aws,
            resources,
            twilio,
            genesys,
            receiver_url,
            genesys_auth: auth,
            counters,
            invocations,
            tasks,
        })
    }

    /// The `relay send` command line that posts the sample webhook (under `root`) to this
    /// stack's receiver, signed for its scheme with its secret.
    pub fn send_command(&self, root: &Path) -> String {
        send_command(&self.receiver_url, root, self.genesys_auth)
    }

    /// Messages on a queue: visible and in flight.
    pub async fn queue_depth(&self, url: &str) -> Result<u64> {
        let out = aws_sdk_sqs::Client::new(&self.aws)
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
            .send()
            .await?;
        Ok(out
            .attributes
            .unwrap_or_default()
            .values()
            .filter_map(|v| v.parse::<u64>().ok())
            .sum())
    }
}

async fn receive(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    max: i32,
    visibility: Option<Duration>,
) -> Option<SqsEvent> {
    let out = sqs
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(max.clamp(1, 10))
        .set_visibility_timeout(visibility.map(|v| i32::try_from(v.as_secs()).unwrap_or(i32::MAX)))
        .wait_time_seconds(1)
        .message_attribute_names("All")
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await;
    let Ok(out) = out else {
        // The local AWS is away (or cut): poll again shortly, as the event source mapping does.
        tokio::time::sleep(Duration::from_millis(250)).await;
        return None;
    };
    let messages = out.messages.unwrap_or_default();
    if messages.is_empty() {
        return None;
    }
    let mut event = SqsEvent::default();
    event.records = messages.into_iter().map(lambda_record).collect();
    Some(event)
}

async fn delete(sqs: &aws_sdk_sqs::Client, url: &str, receipt: Option<&str>) {
    if let Some(receipt) = receipt {
        let _ = sqs
            .delete_message()
            .queue_url(url)
            .receipt_handle(receipt)
            .send()
            .await;
    }
}

/// One poller of the SQS event source mapping: batches to the processor, each invocation under
/// its deadline; deletes what the processor did not report failed. A batch whose invocation
/// failed, timed out or was killed is left alone, so it comes back after the visibility timeout
/// (and the queue's redrive policy dead-letters what keeps failing).
#[derive(Clone)]
struct Poller {
    sqs: aws_sdk_sqs::Client,
    resources: Resources,
    runs: ProcessorRuns,
    deps: Arc<processor::Deps>,
    counters: Arc<Counters>,
    invocations: Arc<Invocations>,
}

impl Poller {
    async fn run(self) {
        let url = &self.resources.queue_url;
        loop {
            let Some(batch) = receive(
                &self.sqs,
                url,
                self.resources.batch_size,
                self.runs.visibility,
            )
            .await
            else {
                continue;
            };
            self.counters.batches.fetch_add(1, Ordering::Relaxed);
            let receipts: Vec<(String, Option<String>)> = batch
                .records
                .iter()
                .map(|r| {
                    (
                        r.message_id.clone().unwrap_or_default(),
                        r.receipt_handle.clone(),
                    )
                })
                .collect();
            let Some(failed) = self.invoke(batch).await else {
                self.counters.batches_lost.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            if !failed.is_empty() {
                self.counters
                    .retries
                    .fetch_add(failed.len() as u64, Ordering::Relaxed);
                self.counters.retried.notify_waiters();
            }
            let done: Vec<DeleteMessageBatchRequestEntry> = receipts
                .into_iter()
                .filter(|(id, _)| !failed.contains(id))
                .enumerate()
                .filter_map(|(n, (_, receipt))| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(n.to_string())
                        .receipt_handle(receipt?)
                        .build()
                        .ok()
                })
                .collect();
            if !done.is_empty() {
                let _ = self
                    .sqs
                    .delete_message_batch()
                    .queue_url(url)
                    .set_entries(Some(done))
                    .send()
                    .await;
            }
        }
    }

    /// Runs one invocation; the ids it reported failed, or `None` when it did not finish.
    async fn invoke(&self, batch: SqsEvent) -> Option<Vec<String>> {
        let bodies = batch
            .records
            .iter()
            .map(|r| r.body.clone().unwrap_or_default())
            .collect();
        let mut context = Context::default();
        let deadline = SystemTime::now() + self.runs.timeout;
        context.deadline = deadline
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let deps = Arc::clone(&self.deps);
        let task = tokio::spawn(async move {
            processor::handle(LambdaEvent::new(batch, context), &deps).await
        });
        let abort = task.abort_handle();
        let id = self.invocations.start(abort.clone(), bodies);
        let outcome = tokio::time::timeout(self.runs.timeout, task).await;
        let bodies = self.invocations.end(id);
        match outcome {
            Ok(Ok(Ok(response))) => Some(
                response
                    .batch_item_failures
                    .into_iter()
                    .map(|f| f.item_identifier)
                    .collect(),
            ),
            Ok(Ok(Err(error))) => {
                tracing::warn!(%error, "processor invocation failed");
                None
            }
            Ok(Err(killed)) => {
                tracing::warn!(%killed, "processor invocation killed");
                None
            }
            Err(_) => {
                abort.abort();
                self.invocations.timed_out_with(bodies);
                tracing::warn!("processor invocation timed out");
                None
            }
        }
    }
}

/// PutEvents of one event on the local bus `bus`, through the local AWS's JSON API at `endpoint`,
/// as the Genesys partner source puts them (a source PutEvents over the SDK would sign for an
/// account the local AWS does not check). Answers the HTTP status (0 when no answer came) and
/// whether the bus took the event.
pub async fn put_event(
    http: &reqwest::Client,
    endpoint: &str,
    bus: &str,
    source: &str,
    detail_type: &str,
    detail: &serde_json::Value,
) -> (u16, bool) {
    let entry = json!({"Entries": [{
        "Source": source, "DetailType": detail_type,
        "Detail": detail.to_string(), "EventBusName": bus}]});
    let answer = http
        .post(endpoint)
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amz-target", "AWSEvents.PutEvents")
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/events/aws4_request, SignedHeaders=host, Signature=0",
        )
        .body(entry.to_string())
        .send()
        .await;
    match answer {
        Ok(response) => {
            let status = response.status().as_u16();
            let taken = response
                .json::<serde_json::Value>()
                .await
                .is_ok_and(|a| a["FailedEntryCount"].as_u64() == Some(0));
            (status, taken)
        }
        Err(_) => (0, false),
    }
}

/// Lambda's asynchronous invocation by the rule: each event to the handler; a failed one is tried
/// again shortly, twice, then sent to the DLQ (the function's on-failure destination).
async fn feed_eventbridge_handler(
    aws: SdkConfig,
    resources: Resources,
    deps: Arc<eventbridge_handler::Deps>,
    counters: Arc<Counters>,
) {
    const ATTEMPTS: u32 = 3;
    let sqs = aws_sdk_sqs::Client::new(&aws);
    loop {
        let Some(batch) = receive(&sqs, &resources.event_target_queue_url, 10, None).await else {
            continue;
        };
        for record in batch.records {
            counters.events.fetch_add(1, Ordering::Relaxed);
            let receipt = record.receipt_handle.clone();
            let attempt: u32 = record
                .attributes
                .get("ApproximateReceiveCount")
                .and_then(|v| v.parse().ok())
                .unwrap_or(1);
            let body = record.body.unwrap_or_default();
            let outcome = match serde_json::from_str::<eventbridge_handler::Input>(&body) {
                Ok(event) => {
                    eventbridge_handler::handle(LambdaEvent::new(event, Context::default()), &deps)
                        .await
                        .map_err(|e| e.to_string())
                }
                Err(e) => Err(format!("not an EventBridge event: {e}")),
            };
            match outcome {
                Ok(()) => delete(&sqs, &resources.event_target_queue_url, receipt.as_deref()).await,
                Err(reason) if attempt >= ATTEMPTS => {
                    let error = genesys_relay::Error::permanent(format!(
                        "failed {attempt} times: {reason}"
                    ));
                    let sent = genesys_relay::dead_letter::send_from(
                        genesys_relay::dead_letter::Origin::EventBridgeHandler,
                        &sqs,
                        &resources.event_dlq_url,
                        genesys_relay::dead_letter::Letter::new(&body, []),
                        "eventbridge-handler",
                        &error,
                    )
                    .await;
                    if sent.is_ok() {
                        delete(&sqs, &resources.event_target_queue_url, receipt.as_deref()).await;
                    }
                }
                Err(_) => {
                    if let Some(receipt) = receipt {
                        let _ = sqs
                            .change_message_visibility()
                            .queue_url(&resources.event_target_queue_url)
                            .receipt_handle(receipt)
                            .visibility_timeout(1)
                            .send()
                            .await;
                    }
                }
            }
        }
    }
}

/// The local Genesys organization: the OAuth client the local secrets name, and the directory the
/// samples in `events/` refer to (the "Callback Requested" and "Sale" codes of
/// `eventbridge-acw-org-code.json` and `eventbridge-acw-other-code.json`, the contact of
/// `eventbridge-outbound.json`), so rules keyed by name and templates with contact columns work
/// locally as they would against Genesys.
async fn local_genesys() -> FakeGenesys {
    let genesys = FakeGenesys::start("local-client", "local-secret", 3600).await;
    genesys.add_wrapup_code(CALLBACK_REQUESTED_ID, "Callback Requested");
    genesys.add_wrapup_code("0c5e2f7a-3b1d-4e8f-9a6c-2d4b8e1f7a30", "Sale");
    genesys.add_contact(
        "b8c9d0e1-f2a3-4b4c-9d5e-6f7a8b9c0d1e",
        "c9d0e1f2a3b4c5d6e7f8a9b0c1d2e3f4",
        json!({"firstName": "Grace", "lastName": "Hopper", "phone": "+14158675309"}),
    );
    genesys
}

/// The `SmsWrapupCodes` the stack's rule filters on: the ids the rules' templates select, names
/// resolved through the local Genesys as `relay genesys wrapup-codes` resolves them.
async fn sms_wrapup_codes(rules: &str, genesys: &FakeGenesys) -> Result<String> {
    let rules = genesys_relay::rules::Rules::parse(rules).map_err(|e| anyhow::anyhow!(e))?;
    let Some(rule) = rules.sms_on_wrapup else {
        return Ok("ININ-OUTBOUND-NO-ANSWER".to_owned());
    };
    let credentials = genesys_relay::outbound::genesys::GenesysCredentials::new(
        "local-client",
        secrecy::SecretString::from("local-secret".to_owned()),
    )?;
    let client = genesys_relay::outbound::genesys::GenesysClient::with_credentials(
        genesys_relay::outbound::http::client()?,
        genesys.endpoints(),
        credentials,
    );
    let templates = genesys_relay::actions::wrapup_codes::WrapupTemplates::new(&rule);
    templates.resolve(&client).await?;
    Ok(templates
        .ids()
        .into_iter()
        .map(|(id, _)| id)
        .collect::<Vec<_>>()
        .join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::http::{HeaderMap, HeaderName, HeaderValue};
    use base64::engine::general_purpose::STANDARD as BASE64;
    use base64::Engine as _;
    use clap::Parser;
    use genesys_relay::inbound::auth::{standard_webhooks, HmacHeader, SignedRequest};

    const BODY: &[u8] = br#"{"eventBody":{"conversationId":"c-1"}}"#;
    const RECEIVER: &str = "http://127.0.0.1:3000";

    fn resources() -> Resources {
        Resources {
            queue_url: "http://127.0.0.1:1/queue/main".into(),
            dlq_url: "http://127.0.0.1:1/queue/dlq".into(),
            event_dlq_url: "http://127.0.0.1:1/queue/dlq".into(),
            table: "table".into(),
            bucket: "bucket".into(),
            genesys_webhook_secret_arn: "arn:aws:secretsmanager:us-east-1:1:secret:g".into(),
            twilio_secret_arn: "arn:aws:secretsmanager:us-east-1:1:secret:t".into(),
            genesys_secret_arn: "arn:aws:secretsmanager:us-east-1:1:secret:o".into(),
            event_bus: "bus".into(),
            event_target_queue_url: "http://127.0.0.1:1/queue/target".into(),
            max_receive_count: 5,
            batch_size: 10,
        }
    }

    /// The receiver configuration the local stack builds for `auth`.
    fn receiver_config(auth: GenesysAuth) -> ReceiverConfig {
        let settings = function_settings(
            &resources(),
            "http://127.0.0.1:2",
            "http://127.0.0.1:3",
            RECEIVER,
            "{}",
            auth,
        );
        ReceiverConfig::from_env(&Env::from_fn(|name| settings.get(name).cloned()))
            .expect("the local settings are valid")
    }

    /// The headers a sender using `scheme` (a `GENESYS_WEBHOOK_AUTH` value) attaches for `secret`.
    fn signed_headers(scheme: &str, secret: &str, now: i64) -> HeaderMap {
        let pairs: Vec<(&'static str, String)> = match scheme {
            "hmac" => {
                let signer = HmacHeader::genesys_open_messaging();
                vec![("x-hub-signature-256", signer.sign(secret.as_bytes(), BODY))]
            }
            "standard-webhooks" => vec![
                ("webhook-id", "msg_local".into()),
                ("webhook-timestamp", now.to_string()),
                (
                    "webhook-signature",
                    standard_webhooks::sign(secret, "msg_local", now, BODY)
                        .expect("a whsec_ secret"),
                ),
            ],
            "basic" => vec![("authorization", format!("Basic {}", BASE64.encode(secret)))],
            "bearer" => vec![("authorization", format!("Bearer {secret}"))],
            other => panic!("no signer for {other}"),
        };
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(
                HeaderName::from_static(name),
                HeaderValue::from_str(&value).unwrap(),
            );
        }
        headers
    }

    fn accepts(auth: GenesysAuth, scheme: &str, secret: &str) -> bool {
        let config = receiver_config(auth);
        let keys = genesys_relay::inbound::auth::Keys::parse(&secrecy::SecretString::from(
            auth.secret().to_owned(),
        ))
        .expect("the local secret is a valid webhook secret");
        let now = SystemTime::now();
        let seconds = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let headers = signed_headers(scheme, secret, seconds);
        let request = SignedRequest {
            url: &format!("{RECEIVER}/webhooks/genesys"),
            headers: &headers,
            body: BODY,
        };
        config.genesys_auth.verify(&request, &keys, now).is_ok()
    }

    #[test]
    fn each_scheme_configures_a_receiver_that_accepts_requests_signed_for_it() {
        for auth in GenesysAuth::ALL {
            assert!(
                accepts(auth, auth.name(), auth.secret()),
                "{} refused its own request",
                auth.name()
            );
            for other in GenesysAuth::ALL.into_iter().filter(|o| *o != auth) {
                assert!(
                    !accepts(auth, other.name(), other.secret()),
                    "{} accepted a {} request",
                    auth.name(),
                    other.name()
                );
            }
        }
    }

    #[test]
    fn the_default_scheme_is_hmac_with_the_documented_secret() {
        assert_eq!(GenesysAuth::default(), GenesysAuth::Hmac);
        assert_eq!(GenesysAuth::Hmac.secret(), WEBHOOK_SECRET);
    }

    #[derive(Parser)]
    struct Relay {
        #[command(subcommand)]
        command: RelayCommand,
    }

    #[derive(clap::Subcommand)]
    enum RelayCommand {
        Send(crate::send::Args),
    }

    #[test]
    fn the_printed_send_command_is_a_relay_send_with_the_matching_scheme_and_secret() {
        use clap::ValueEnum as _;
        use secrecy::ExposeSecret as _;
        let root = Path::new("/srv/genesys-relay");
        for auth in GenesysAuth::ALL {
            let line = send_command(RECEIVER, root, auth);
            let RelayCommand::Send(args) = Relay::try_parse_from(line.split_whitespace())
                .unwrap_or_else(|e| panic!("{line}: {e}"))
                .command;
            assert_eq!(args.url, format!("{RECEIVER}/webhooks/genesys"));
            assert_eq!(args.file, root.join(SAMPLE_WEBHOOK));
            let scheme = args.scheme.to_possible_value().unwrap();
            assert_eq!(scheme.get_name(), auth.name(), "{line}");
            let secret = args.secret.expect("--secret is given");
            assert_eq!(secret.expose_secret(), auth.secret(), "{line}");
        }
    }
}

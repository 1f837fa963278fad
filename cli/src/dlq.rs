//! `relay dlq`: read a dead-letter queue without consuming it, and move its messages back to the
//! queue they came from so the processor runs them again (its claims make a replay safe).
//!
//! Reading a queue means receiving, which hides a message; every read here makes what it received
//! visible again at once, so a look never takes a message away from a redrive or a consumer for
//! longer than the look itself.

use std::collections::{HashMap, HashSet};
use std::fmt::Display;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, ListMessageMoveTasksResultEntry, Message,
    MessageAttributeValue, MessageSystemAttributeName, QueueAttributeName,
};
use clap::Subcommand;
use genesys_relay::dead_letter::attr as dead;
use genesys_relay::queue::attr as envelope;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};

use crate::output::{self, Report};

/// What an operator does with a dead-letter queue: look at why messages failed, then put them back
/// once the cause is fixed.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
#[command(
    after_help = "AWS access comes from the environment, as for the AWS CLI: AWS_PROFILE or \
AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_REGION, and AWS_ENDPOINT_URL for a local AWS."
)]
pub enum Command {
    /// Show dead letters with the reason they failed, leaving them on the queue.
    List {
        /// The dead-letter queue's URL.
        #[arg(long, value_name = "URL")]
        queue: String,
        /// Show at most this many.
        #[arg(long, value_name = "N", default_value_t = 10,
              value_parser = clap::value_parser!(u32).range(1..))]
        limit: u32,
    },
    /// Show one dead letter in full (body and every attribute), leaving it on the queue.
    Show {
        /// The dead-letter queue's URL.
        #[arg(long, value_name = "URL")]
        queue: String,
        /// The message id, as `relay dlq list` shows it.
        message_id: String,
    },
    /// Move dead letters back to the queue they came from, so they are processed again.
    ///
    /// Without --limit, SQS moves them itself (StartMessageMoveTask). Where that is refused or
    /// not implemented, and whenever --limit is given, each message is received, sent to --to
    /// with its original attributes (the dead-letter ones dropped, so the processor sees the
    /// original event), and deleted from the dead-letter queue only once that send succeeded: a
    /// message whose send fails stays where it is.
    Redrive {
        /// The dead-letter queue's URL.
        #[arg(long, value_name = "URL")]
        queue: String,
        /// Where to move them: the queue they came from.
        #[arg(long, value_name = "URL")]
        to: String,
        /// Move at most this many.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        limit: Option<u32>,
        /// Show what would be moved, and move nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Runs a command with an SQS client configured from the environment.
pub async fn run(command: Command) -> anyhow::Result<Report> {
    let config = genesys_relay::aws::load().await;
    run_with(command, &aws_sdk_sqs::Client::new(&config)).await
}

/// Runs a command with a given SQS client, so tests can point it at a local AWS.
pub async fn run_with(command: Command, sqs: &aws_sdk_sqs::Client) -> anyhow::Result<Report> {
    match command {
        Command::List { queue, limit } => list(sqs, &queue, limit as usize).await,
        Command::Show { queue, message_id } => show(sqs, &queue, &message_id).await,
        Command::Redrive {
            queue,
            to,
            limit,
            dry_run,
        } => {
            let limit = limit.map(|n| n as usize);
            if dry_run {
                dry_run_report(sqs, &queue, &to, limit).await
            } else {
                redrive(sqs, &queue, &to, limit).await
            }
        }
    }
}

/// How long a look hides what it received, should making it visible again fail.
const PEEK_VISIBILITY_SECS: i32 = 30;
/// How long a redrive holds a message: enough to send and delete a batch of ten one by one.
const MOVE_VISIBILITY_SECS: i32 = 120;
/// Long polling asks every SQS server, so an empty answer means an empty queue; kept under the
/// SDK's per-attempt timeout.
const LONG_POLL_SECS: i32 = 1;
/// SQS's batch size.
const BATCH: usize = 10;
/// How often a running move task is asked how far it got.
const TASK_POLL: Duration = Duration::from_secs(2);
/// Reasons are cut to this many characters in a listing (`--json` and `show` have them whole).
const REASON_WIDTH: usize = 60;

const METHOD_TASK: &str = "message-move-task";
const METHOD_BY_HAND: &str = "receive-send-delete";

/// A received dead letter.
struct Letter {
    id: String,
    receipt: String,
    body: String,
    attributes: HashMap<String, MessageAttributeValue>,
    system: HashMap<MessageSystemAttributeName, String>,
}

impl Letter {
    fn from_message(message: Message) -> Option<Self> {
        Some(Self {
            id: message.message_id?,
            receipt: message.receipt_handle?,
            body: message.body.unwrap_or_default(),
            attributes: message.message_attributes.unwrap_or_default(),
            system: message.attributes.unwrap_or_default(),
        })
    }

    fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes.get(name)?.string_value()
    }

    /// The attributes it had before it was dead-lettered, as the processor expects them.
    fn original_attributes(&self) -> HashMap<String, MessageAttributeValue> {
        let added = [
            dead::ERROR_CLASS,
            dead::ERROR_MESSAGE,
            dead::ACTION,
            dead::FAILED_AT,
        ];
        self.attributes
            .iter()
            .filter(|(name, _)| !added.contains(&name.as_str()))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect()
    }

    fn summary(&self) -> Value {
        json!({
            "message_id": self.id,
            "event_key": self.attribute(envelope::EVENT_KEY),
            "source": self.attribute(envelope::SOURCE),
            "error_class": self.attribute(dead::ERROR_CLASS),
            "action": self.attribute(dead::ACTION),
            "failed_at": self.attribute(dead::FAILED_AT),
            "error_message": self.attribute(dead::ERROR_MESSAGE),
        })
    }
}

/// An attribute value as text; binary ones are only described.
fn attribute_text(value: &MessageAttributeValue) -> String {
    match (value.string_value(), value.binary_value()) {
        (Some(text), _) => text.to_owned(),
        (None, Some(bytes)) => format!("({}, {} bytes)", value.data_type, bytes.as_ref().len()),
        (None, None) => format!("({})", value.data_type),
    }
}

/// An AWS failure in one line: the service's code and message when it answered, else the chain
/// of causes (timeouts, connection failures) without the raw response dump.
fn describe<E>(error: &SdkError<E>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match (error.code(), error.message()) {
        (Some(code), Some(message)) => return format!("{code}: {message}"),
        (Some(code), None) => return code.to_owned(),
        _ => {}
    }
    if let SdkError::ServiceError(service) = error {
        return format!("HTTP {}", service.raw().status().as_u16());
    }
    let mut text = error.to_string();
    let mut cause = std::error::Error::source(error);
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}

fn aws_error<E>(what: impl Display, error: &SdkError<E>) -> anyhow::Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    anyhow!("{what}: {}", describe(error))
}

/// Receives up to `max` messages (at most ten), hiding them for `visibility_secs`.
async fn receive(
    sqs: &aws_sdk_sqs::Client,
    queue: &str,
    max: usize,
    visibility_secs: i32,
) -> anyhow::Result<Vec<Letter>> {
    let out = sqs
        .receive_message()
        .queue_url(queue)
        .max_number_of_messages(max.clamp(1, BATCH) as i32)
        .visibility_timeout(visibility_secs)
        .wait_time_seconds(LONG_POLL_SECS)
        .message_attribute_names("All")
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .map_err(|e| aws_error(format_args!("could not read {queue}"), &e))?;
    Ok(out
        .messages
        .unwrap_or_default()
        .into_iter()
        .filter_map(Letter::from_message)
        .collect())
}

/// Makes received messages visible again now; returns how many could not be (those reappear
/// when their visibility timeout ends).
async fn release<'a>(
    sqs: &aws_sdk_sqs::Client,
    queue: &str,
    letters: impl IntoIterator<Item = &'a Letter>,
) -> usize {
    let letters: Vec<&Letter> = letters.into_iter().collect();
    let mut unreleased = 0;
    for chunk in letters.chunks(BATCH) {
        let entries: Vec<_> = chunk
            .iter()
            .enumerate()
            .filter_map(|(i, letter)| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(&letter.receipt)
                    .visibility_timeout(0)
                    .build()
                    .ok()
            })
            .collect();
        unreleased += chunk.len() - entries.len();
        match sqs
            .change_message_visibility_batch()
            .queue_url(queue)
            .set_entries(Some(entries))
            .send()
            .await
        {
            Ok(out) => unreleased += out.failed.len(),
            Err(_) => unreleased += chunk.len(),
        }
    }
    unreleased
}

/// What a look at a queue saw.
struct Peeked {
    letters: Vec<Letter>,
    /// Messages still hidden for up to [`PEEK_VISIBILITY_SECS`] because the release failed.
    unreleased: usize,
}

/// Reads up to `limit` distinct messages (all when `None`, or until one satisfies `found`) and
/// makes them visible again before returning, also when a read failed.
async fn peek(
    sqs: &aws_sdk_sqs::Client,
    queue: &str,
    limit: Option<usize>,
    found: impl Fn(&Letter) -> bool,
) -> anyhow::Result<Peeked> {
    let mut letters: Vec<Letter> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let read = async {
        loop {
            let want = limit.map_or(BATCH, |l| l.saturating_sub(letters.len()).min(BATCH));
            if want == 0 {
                return Ok(());
            }
            let mut fresh = false;
            let mut done = false;
            for letter in receive(sqs, queue, want, PEEK_VISIBILITY_SECS).await? {
                match index.get(&letter.id) {
                    // Seen again after its timeout: only the newest receipt handle counts.
                    Some(&i) => letters[i].receipt = letter.receipt,
                    None => {
                        fresh = true;
                        done |= found(&letter);
                        index.insert(letter.id.clone(), letters.len());
                        letters.push(letter);
                    }
                }
            }
            if !fresh || done {
                return Ok::<(), anyhow::Error>(());
            }
        }
    }
    .await;
    let unreleased = release(sqs, queue, &letters).await;
    read?;
    Ok(Peeked {
        letters,
        unreleased,
    })
}

fn unreleased_note(peeked: &Peeked) -> Option<String> {
    (peeked.unreleased > 0).then(|| {
        format!(
            "note: {} message(s) could not be made visible again; they reappear within {PEEK_VISIBILITY_SECS} s",
            peeked.unreleased
        )
    })
}

/// One line of text, at most `max` characters.
fn clip(text: &str, max: usize) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() <= max {
        line
    } else {
        let cut: String = line.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

/// The text (`headline`, the letters' table, any note on messages left hidden) and the JSON
/// summaries of what `peek` read, as `list` and a dry run both show them.
fn described(headline: String, peeked: &Peeked) -> (Vec<String>, Vec<Value>) {
    let mut text = vec![headline];
    if !peeked.letters.is_empty() {
        text.extend(table(&peeked.letters));
    }
    text.extend(unreleased_note(peeked));
    (text, peeked.letters.iter().map(Letter::summary).collect())
}

/// Dead letters as aligned columns, one per line, with a header.
fn table(letters: &[Letter]) -> Vec<String> {
    const HEADER: [&str; 7] = [
        "MESSAGE ID",
        "EVENT KEY",
        "SOURCE",
        "CLASS",
        "ACTION",
        "FAILED AT",
        "REASON",
    ];
    let field = |letter: &Letter, name: &str| letter.attribute(name).unwrap_or("-").to_owned();
    let rows: Vec<[String; 7]> = std::iter::once(HEADER.map(str::to_owned))
        .chain(letters.iter().map(|letter| {
            [
                letter.id.clone(),
                field(letter, envelope::EVENT_KEY),
                field(letter, envelope::SOURCE),
                field(letter, dead::ERROR_CLASS),
                field(letter, dead::ACTION),
                field(letter, dead::FAILED_AT),
                clip(&field(letter, dead::ERROR_MESSAGE), REASON_WIDTH),
            ]
        }))
        .collect();
    let mut widths = [0; 7];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    rows.iter()
        .map(|row| {
            let line: Vec<String> = row
                .iter()
                .zip(widths)
                .map(|(cell, width)| format!("{cell:width$}"))
                .collect();
            line.join("  ").trim_end().to_owned()
        })
        .collect()
}

async fn list(sqs: &aws_sdk_sqs::Client, queue: &str, limit: usize) -> anyhow::Result<Report> {
    let peeked = peek(sqs, queue, Some(limit), |_| false).await?;
    let (text, messages) = described(
        format!(
            "{} dead letter(s) on {queue}, left on the queue",
            peeked.letters.len()
        ),
        &peeked,
    );
    Ok(Report::new(
        text,
        json!({"queue": queue, "count": messages.len(), "messages": messages}),
    ))
}

async fn show(sqs: &aws_sdk_sqs::Client, queue: &str, id: &str) -> anyhow::Result<Report> {
    let peeked = peek(sqs, queue, None, |letter| letter.id == id).await?;
    let note = unreleased_note(&peeked);
    let Some(letter) = peeked.letters.into_iter().find(|letter| letter.id == id) else {
        bail!(
            "no message {id} on {queue} (already redriven or deleted, or held by another reader)"
        );
    };
    let mut attributes: Vec<(String, String)> = letter
        .attributes
        .iter()
        .map(|(name, value)| (name.clone(), attribute_text(value)))
        .collect();
    attributes.sort();
    let mut system: Vec<(String, String)> = letter
        .system
        .iter()
        .map(|(name, value)| (name.as_str().to_owned(), value.clone()))
        .collect();
    system.sort();
    let body_json = serde_json::from_str::<Value>(&letter.body).ok();
    let body = body_json
        .as_ref()
        .and_then(|value| serde_json::to_string_pretty(value).ok())
        .unwrap_or_else(|| letter.body.clone());

    let reason = letter.attribute(dead::ERROR_MESSAGE).unwrap_or("-");
    let mut text = vec![
        format!("message id  {}", letter.id),
        format!(
            "failed      {} in {} at {}",
            letter.attribute(dead::ERROR_CLASS).unwrap_or("-"),
            letter.attribute(dead::ACTION).unwrap_or("-"),
            letter.attribute(dead::FAILED_AT).unwrap_or("-"),
        ),
        format!("reason      {reason}"),
        "attributes".to_owned(),
    ];
    let width = |pairs: &[(String, String)]| pairs.iter().map(|(n, _)| n.len()).max();
    let pad = width(&attributes).unwrap_or(0);
    text.extend(
        attributes
            .iter()
            .map(|(name, value)| format!("  {name:pad$}  {value}")),
    );
    text.push("system attributes".to_owned());
    let pad = width(&system).unwrap_or(0);
    text.extend(
        system
            .iter()
            .map(|(name, value)| format!("  {name:pad$}  {value}")),
    );
    text.push("body".to_owned());
    text.extend(body.lines().map(|line| format!("  {line}")));
    text.extend(note);

    let json = json!({
        "queue": queue,
        "message_id": letter.id,
        "attributes": attributes.into_iter().collect::<std::collections::BTreeMap<_, _>>(),
        "system_attributes": system.into_iter().collect::<std::collections::BTreeMap<_, _>>(),
        "body": letter.body,
        "body_json": body_json,
    });
    Ok(Report::new(text, json))
}

async fn dry_run_report(
    sqs: &aws_sdk_sqs::Client,
    queue: &str,
    to: &str,
    limit: Option<usize>,
) -> anyhow::Result<Report> {
    let peeked = peek(sqs, queue, limit, |_| false).await?;
    let (text, messages) = described(
        format!(
            "dry run: would move {} message(s) from {queue} to {to}; nothing moved",
            peeked.letters.len()
        ),
        &peeked,
    );
    Ok(Report::new(
        text,
        json!({
            "dry_run": true,
            "queue": queue,
            "to": to,
            "would_move": messages.len(),
            "messages": messages,
        }),
    ))
}

async fn redrive(
    sqs: &aws_sdk_sqs::Client,
    queue: &str,
    to: &str,
    limit: Option<usize>,
) -> anyhow::Result<Report> {
    let fallback_reason = match limit {
        Some(_) => "--limit was given".to_owned(),
        None => match start_move_task(sqs, queue, to).await {
            Ok(task) => return await_move_task(sqs, queue, to, task).await,
            Err(reason) => reason,
        },
    };
    let total = match limit {
        Some(limit) => Some(limit as u64),
        None if output::interactive() => approximate_count(sqs, queue).await,
        None => None,
    };
    let bar = progress(total);
    let mut tally = Tally::default();
    let moving = tally.move_by_hand(sqs, queue, to, limit, &bar).await;
    bar.finish_and_clear();
    let unreleased = release(sqs, queue, &tally.held).await;
    moving.with_context(|| {
        format!(
            "redrive stopped after moving {} message(s) to {to}",
            tally.moved.len()
        )
    })?;
    let failed = tally.failed.len() + tally.not_deleted.len();
    let report = tally.report(queue, to, &fallback_reason, unreleased);
    if failed > 0 {
        // The counts matter to whoever runs this: show them, then fail the command.
        crate::output::print(&report, false);
        anyhow::bail!("{failed} message(s) were not moved cleanly; see above");
    }
    Ok(report)
}

/// A running move task, started by SQS.
struct MoveTask {
    source_arn: String,
    handle: String,
}

/// Starts an SQS-side move; the error is why it could not be used.
async fn start_move_task(
    sqs: &aws_sdk_sqs::Client,
    queue: &str,
    to: &str,
) -> Result<MoveTask, String> {
    let source_arn = queue_arn(sqs, queue).await?;
    let destination_arn = queue_arn(sqs, to).await?;
    let out = sqs
        .start_message_move_task()
        .source_arn(&source_arn)
        .destination_arn(destination_arn)
        .send()
        .await
        .map_err(|e| format!("StartMessageMoveTask failed: {}", describe(&e)))?;
    Ok(MoveTask {
        source_arn,
        handle: out.task_handle.unwrap_or_default(),
    })
}

async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<String, String> {
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| format!("could not read the ARN of {url}: {}", describe(&e)))?
        .attributes
        .and_then(|mut attributes| attributes.remove(&QueueAttributeName::QueueArn))
        .ok_or_else(|| format!("{url} has no ARN"))
}

/// How many messages SQS says the queue holds, for the progress bar only.
async fn approximate_count(sqs: &aws_sdk_sqs::Client, queue: &str) -> Option<u64> {
    sqs.get_queue_attributes()
        .queue_url(queue)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .ok()?
        .attributes?
        .get(&QueueAttributeName::ApproximateNumberOfMessages)?
        .parse()
        .ok()
}

/// A progress bar on a terminal's stderr; elsewhere nothing, so scripts get clean output.
fn progress(total: Option<u64>) -> ProgressBar {
    if !output::interactive() {
        return ProgressBar::hidden();
    }
    let (bar, template) = match total {
        Some(total) => (
            ProgressBar::new(total),
            "{spinner} redrive [{bar:30}] {pos}/{len} {msg}",
        ),
        None => (ProgressBar::new_spinner(), "{spinner} redrive: {pos} {msg}"),
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// Follows a move task until it ends; SQS moves the messages, so this only reports.
async fn await_move_task(
    sqs: &aws_sdk_sqs::Client,
    queue: &str,
    to: &str,
    task: MoveTask,
) -> anyhow::Result<Report> {
    let bar = progress(None);
    bar.set_message("(SQS move task; interrupting this does not stop it)");
    let entry = loop {
        let out = sqs
            .list_message_move_tasks()
            .source_arn(&task.source_arn)
            .max_results(1)
            .send()
            .await
            .map_err(|e| {
                aws_error(
                    format_args!(
                        "move task {} started, but its progress is unknown",
                        task.handle
                    ),
                    &e,
                )
            })?;
        let Some(entry) = out.results.unwrap_or_default().into_iter().next() else {
            bail!(
                "move task {} started, but SQS does not list it",
                task.handle
            );
        };
        if let Some(total) = entry.approximate_number_of_messages_to_move {
            bar.set_length(total.max(0) as u64);
        }
        bar.set_position(entry.approximate_number_of_messages_moved.max(0) as u64);
        if !matches!(entry.status(), Some("RUNNING" | "CANCELLING")) {
            break entry;
        }
        tokio::time::sleep(TASK_POLL).await;
    };
    bar.finish_and_clear();
    Ok(task_report(queue, to, &task.handle, &entry))
}

fn task_report(
    queue: &str,
    to: &str,
    handle: &str,
    entry: &ListMessageMoveTasksResultEntry,
) -> Report {
    let status = entry.status().unwrap_or("UNKNOWN");
    let moved = entry.approximate_number_of_messages_moved.max(0);
    let failed = match status {
        "COMPLETED" => 0,
        _ => entry
            .approximate_number_of_messages_to_move
            .map_or(0, |total| (total - moved).max(0)),
    };
    let mut text = vec![format!(
        "{} {moved} message(s) from {queue} to {to} ({METHOD_TASK}, status {status})",
        output::ok("moved")
    )];
    if let Some(reason) = entry.failure_reason() {
        text.push(format!("{} {reason}", output::bad("task failed:")));
    }
    Report::new(
        text,
        json!({
            "method": METHOD_TASK,
            "queue": queue,
            "to": to,
            "task_handle": handle,
            "status": status,
            "moved": moved,
            "failed": failed,
            "failure_reason": entry.failure_reason(),
        }),
    )
}

/// The progress of a redrive done message by message.
#[derive(Default)]
struct Tally {
    moved: Vec<String>,
    /// Sent, but still on the dead-letter queue too; the processor's claims absorb the copy.
    not_deleted: Vec<(String, String)>,
    failed: Vec<(String, String)>,
    /// Messages whose send failed, kept hidden so this run does not try them again, then released.
    held: Vec<Letter>,
    /// Why the run ended before the queue was empty or the limit reached.
    stopped: Option<String>,
}

impl Tally {
    /// Receives, sends and deletes until the limit, an empty queue, or a batch of which nothing
    /// could be sent (the destination refuses everything: going on would only repeat that).
    async fn move_by_hand(
        &mut self,
        sqs: &aws_sdk_sqs::Client,
        queue: &str,
        to: &str,
        limit: Option<usize>,
        bar: &ProgressBar,
    ) -> anyhow::Result<()> {
        let mut seen = HashSet::new();
        loop {
            let tried = self.moved.len() + self.not_deleted.len() + self.failed.len();
            let want = limit.map_or(BATCH, |l| l.saturating_sub(tried).min(BATCH));
            if want == 0 {
                return Ok(());
            }
            let batch: Vec<Letter> = receive(sqs, queue, want, MOVE_VISIBILITY_SECS)
                .await?
                .into_iter()
                .filter(|letter| seen.insert(letter.id.clone()))
                .collect();
            if batch.is_empty() {
                return Ok(());
            }
            let mut sent_any = false;
            for letter in batch {
                match send(sqs, to, &letter).await {
                    Ok(()) => {
                        sent_any = true;
                        let deleted = sqs
                            .delete_message()
                            .queue_url(queue)
                            .receipt_handle(&letter.receipt)
                            .send()
                            .await;
                        match deleted {
                            Ok(_) => self.moved.push(letter.id),
                            Err(e) => self.not_deleted.push((letter.id, describe(&e))),
                        }
                    }
                    Err(error) => {
                        self.failed.push((letter.id.clone(), error));
                        self.held.push(letter);
                    }
                }
                bar.inc(1);
            }
            if !sent_any {
                self.stopped = Some(format!("{to} accepted none of the last batch"));
                return Ok(());
            }
        }
    }

    fn report(self, queue: &str, to: &str, fallback_reason: &str, unreleased: usize) -> Report {
        let mut text = vec![
            format!(
                "{} {} message(s) from {queue} to {to} ({METHOD_BY_HAND}: {fallback_reason})",
                output::ok("moved"),
                self.moved.len()
            ),
            format!(
                "{} {} (left on the dead-letter queue)",
                if self.failed.is_empty() {
                    "failed".to_owned()
                } else {
                    output::bad("failed")
                },
                self.failed.len()
            ),
        ];
        text.extend(
            self.failed
                .iter()
                .map(|(id, error)| format!("  {id}: {}", clip(error, 200))),
        );
        if !self.not_deleted.is_empty() {
            text.push(format!(
                "{} {} sent but not deleted from the dead-letter queue (a redrive later sends them again; the processor runs them once)",
                output::bad("warning:"),
                self.not_deleted.len()
            ));
        }
        text.extend(self.stopped.iter().map(|why| format!("stopped: {why}")));
        if unreleased > 0 {
            text.push(format!(
                "note: {unreleased} failed message(s) stay hidden for up to {MOVE_VISIBILITY_SECS} s"
            ));
        }
        let pairs = |pairs: &[(String, String)]| -> Vec<Value> {
            pairs
                .iter()
                .map(|(id, error)| json!({"message_id": id, "error": error}))
                .collect()
        };
        let json = json!({
            "method": METHOD_BY_HAND,
            "fallback_reason": fallback_reason,
            "queue": queue,
            "to": to,
            "moved": self.moved.len(),
            "failed": self.failed.len(),
            "moved_message_ids": self.moved,
            "failures": pairs(&self.failed),
            "not_deleted": pairs(&self.not_deleted),
            "stopped": self.stopped,
        });
        Report::new(text, json)
    }
}

/// Sends a dead letter to `to` as it was before it failed. On a FIFO queue it keeps its group,
/// and its dead-letter message id deduplicates a repeated redrive.
async fn send(sqs: &aws_sdk_sqs::Client, to: &str, letter: &Letter) -> Result<(), String> {
    let attributes = letter.original_attributes();
    let mut request = sqs
        .send_message()
        .queue_url(to)
        .message_body(&letter.body)
        .set_message_attributes((!attributes.is_empty()).then_some(attributes));
    if to.ends_with(".fifo") {
        let group = letter
            .system
            .get(&MessageSystemAttributeName::MessageGroupId)
            .ok_or("the destination is a FIFO queue and the message has no group id")?;
        request = request
            .message_group_id(group)
            .message_deduplication_id(&letter.id);
    }
    request.send().await.map(|_| ()).map_err(|e| describe(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_keeps_one_line_and_marks_the_cut() {
        assert_eq!(clip("a\nb  c", 10), "a b c");
        assert_eq!(clip("abcdefghij", 5), "abcd…");
        assert_eq!(clip("ééééé", 5), "ééééé");
    }
}

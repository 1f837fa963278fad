//! `relay secrets`: where each rotating secret stands (strategy, schedule, versions and their
//! staging labels, a rotation left half done), and a rotation started by hand and followed to its
//! end.
//!
//! A rotation is Secrets Manager's: `RotateSecret` invokes the secret's rotation function with
//! its four steps, and the rotation is done when `AWSCURRENT` is on the version `RotateSecret`
//! named. Following it is reading the secret's versions again and again; what those readings mean
//! is decided by [`Follower`], a pure function of successive readings and the time spent, so it
//! is tested without waiting for anything.

use std::time::{Duration, SystemTime};

use anyhow::{anyhow, bail};
use aws_config::SdkConfig;
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType};
use clap::Subcommand;
use genesys_relay::clock::{self, Clock};
use genesys_relay::secrets::strategy::STRATEGY_TAG;
use genesys_relay::secrets::versions::{
    Described, SecretVersions, SecretsManagerVersions, Version, CURRENT, PENDING, PREVIOUS,
};
use serde_json::{json, Value};

use crate::output::{self, Report};

/// What an operator does with rotating secrets: check that rotations happen and none is stuck,
/// and rotate one now (a leaked credential, a test of the rotation function).
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
#[command(
    after_help = "AWS access comes from the environment, as for the AWS CLI: AWS_PROFILE or \
AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_REGION, and AWS_ENDPOINT_URL for a local AWS."
)]
pub enum Command {
    /// Show each rotating secret: strategy, schedule, versions with their labels, and whether a
    /// rotation is half done.
    Status {
        /// The secrets to show (name or ARN); without it, every secret tagged
        /// `genesys-relay:rotation`.
        #[arg(long = "secret-id", value_name = "ID")]
        secret_ids: Vec<String>,
    },
    /// Rotate a secret now with its rotation function, and follow the rotation until AWSCURRENT
    /// is on the new version.
    ///
    /// Refused while a rotation of the secret is half done (a version holds AWSPENDING and not
    /// AWSCURRENT), unless --discard-pending. Fails, saying what is known, when the new version loses AWSPENDING without
    /// becoming current, or when the timeout passes first (the rotation may still finish: see the
    /// rotation function's logs, and `relay secrets status`).
    Rotate {
        /// The secret (name or ARN).
        #[arg(long, value_name = "ID")]
        secret_id: String,
        /// How long to follow the rotation before giving up on it.
        #[arg(long, value_name = "N", default_value_t = 300,
              value_parser = clap::value_parser!(u64).range(1..))]
        timeout_secs: u64,
        /// Take AWSPENDING off the version of a rotation left half done, and rotate anew. Only
        /// for a rotation that failed: one still running would lose its version.
        #[arg(long)]
        discard_pending: bool,
    },
}

/// How a rotation is followed: how long to wait between readings, and the clock that measures the
/// time spent, both passed in so tests neither wait nor depend on the time.
#[derive(Clone)]
pub struct Polling {
    /// The wait between two readings of the secret's versions.
    pub interval: Duration,
    /// What tells the time.
    pub clock: Clock,
}

impl Default for Polling {
    /// Every two seconds, on the system's clock: a rotation takes seconds to minutes, and each
    /// reading costs two calls.
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(2),
            clock: clock::system(),
        }
    }
}

/// Runs a command with AWS clients configured from the environment.
pub async fn run(command: Command) -> anyhow::Result<Report> {
    run_with(
        command,
        &genesys_relay::aws::load().await,
        &Polling::default(),
    )
    .await
}

/// Runs a command with clients made from `aws`, following a rotation with `polling`, so tests
/// can point it at a local AWS and follow without waiting. Progress goes to standard error as it
/// happens; the report holds the outcome.
pub async fn run_with(
    command: Command,
    aws: &SdkConfig,
    polling: &Polling,
) -> anyhow::Result<Report> {
    let client = aws_sdk_secretsmanager::Client::new(aws);
    let versions = SecretsManagerVersions::new(client.clone());
    match command {
        Command::Status { secret_ids } => {
            let secrets = if secret_ids.is_empty() {
                tagged(&client).await?
            } else {
                let mut named = Vec::new();
                for id in &secret_ids {
                    named.push(identify(&client, id).await?);
                }
                named
            };
            let mut shown = Vec::new();
            for secret in secrets {
                let described = versions.describe(&secret.arn).await?;
                shown.push((secret, described));
            }
            Ok(status_report(&shown))
        }
        Command::Rotate {
            secret_id,
            timeout_secs,
            discard_pending,
        } => {
            let rotation = Rotation {
                secret: &secret_id,
                timeout: Duration::from_secs(timeout_secs),
                discard_pending,
            };
            let mut emit = |line: &str| eprintln!("{line}");
            rotate(&client, &versions, &rotation, polling, &mut emit).await
        }
    }
}

/// A secret's names.
#[derive(Debug, Clone)]
struct Named {
    name: String,
    arn: String,
}

/// Every secret tagged with the rotation strategy. `ListSecrets` matches a `tag-key` filter as a
/// prefix, so the tag is checked again.
async fn tagged(client: &aws_sdk_secretsmanager::Client) -> anyhow::Result<Vec<Named>> {
    let filter = Filter::builder()
        .key(FilterNameStringType::TagKey)
        .values(STRATEGY_TAG)
        .build();
    let mut pages = client
        .list_secrets()
        .filters(filter)
        .into_paginator()
        .send();
    let mut found = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| failed("ListSecrets", &e))?;
        for entry in page.secret_list() {
            if !entry.tags().iter().any(|t| t.key() == Some(STRATEGY_TAG)) {
                continue;
            }
            if let (Some(name), Some(arn)) = (entry.name(), entry.arn()) {
                found.push(Named {
                    name: name.to_owned(),
                    arn: arn.to_owned(),
                });
            }
        }
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(found)
}

/// The names of the secret `id` (a name or an ARN).
async fn identify(client: &aws_sdk_secretsmanager::Client, id: &str) -> anyhow::Result<Named> {
    let out = client
        .describe_secret()
        .secret_id(id)
        .send()
        .await
        .map_err(|e| failed(&format!("DescribeSecret of {id}"), &e))?;
    Ok(Named {
        name: out.name().unwrap_or(id).to_owned(),
        arn: out.arn().unwrap_or(id).to_owned(),
    })
}

/// An AWS failure in one line: the service's code and message when it answered, else the chain of
/// causes (a timeout, a refused connection).
fn failed<E>(what: &str, error: &SdkError<E>) -> anyhow::Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let why = match (error.code(), error.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        _ => genesys_relay::error::chain(error),
    };
    anyhow!("{what} failed: {why}")
}

/// How many deprecated versions a listing shows (the newest); `--json` has them all.
const SHOWN_DEPRECATED: usize = 3;
/// The width of the field names in a listing.
const FIELD: usize = 14;

/// A time as RFC 3339 in UTC, to the second.
fn rfc3339(at: SystemTime) -> String {
    let seconds = match at.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(since) => i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_secs()).unwrap_or(i64::MAX),
    };
    time::OffsetDateTime::from_unix_timestamp(seconds)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("{seconds} s after 1970"))
}

/// A version's labels in words: `deprecated` when it has none.
fn stages_text(stages: &[String]) -> String {
    if stages.is_empty() {
        "deprecated".to_owned()
    } else {
        stages.join(",")
    }
}

/// Where AWSCURRENT is, in words.
fn current_text(described: &Described) -> String {
    described
        .with_stage(CURRENT)
        .map_or_else(|| "no version".to_owned(), |v| format!("version {}", v.id))
}

/// The half-done rotation of a secret, in words; `None` when there is none.
fn half_rotated_text(described: &Described) -> Option<String> {
    described.half_rotated().map(|pending| {
        format!(
            "version {} holds {PENDING} since {} and {CURRENT} is on {}",
            pending.id,
            rfc3339(pending.created),
            current_text(described)
        )
    })
}

fn version_json(version: &Version) -> Value {
    json!({
        "id": version.id,
        "stages": version.stages,
        "deprecated": version.stages.is_empty(),
        "created": rfc3339(version.created),
    })
}

/// The versions a listing shows, newest first: every labelled one and the newest deprecated
/// ones; and how many deprecated ones it leaves out.
fn shown_versions(described: &Described) -> (Vec<&Version>, usize) {
    let mut shown = Vec::new();
    let mut deprecated = 0;
    for version in described.versions.iter().rev() {
        if !version.stages.is_empty() {
            shown.push(version);
        } else {
            deprecated += 1;
            if deprecated <= SHOWN_DEPRECATED {
                shown.push(version);
            }
        }
    }
    (shown, deprecated.saturating_sub(SHOWN_DEPRECATED))
}

fn status_report(secrets: &[(Named, Described)]) -> Report {
    let mut text = Vec::new();
    if secrets.is_empty() {
        text.push(format!("no secret is tagged {STRATEGY_TAG}"));
    }
    let field = |name: &str, value: String| format!("  {name:<FIELD$} {value}");
    for (secret, described) in secrets {
        if !text.is_empty() {
            text.push(String::new());
        }
        text.push(format!("{} ({})", secret.name, secret.arn));
        let strategy = described.tags.get(STRATEGY_TAG).map_or_else(
            || output::bad(&format!("none (no {STRATEGY_TAG} tag)")),
            Clone::clone,
        );
        text.push(field("strategy", strategy));
        let enabled = if described.rotation_enabled {
            "enabled".to_owned()
        } else {
            output::bad("disabled")
        };
        text.push(field("rotation", enabled));
        let time_or = |at: Option<SystemTime>, none: &str| at.map_or(none.to_owned(), rfc3339);
        text.push(field(
            "last rotated",
            time_or(described.last_rotated, "never"),
        ));
        text.push(field(
            "next rotation",
            time_or(described.next_rotation, "not scheduled"),
        ));
        let in_progress = half_rotated_text(described).map_or_else(
            || "no".to_owned(),
            |what| output::bad(&format!("half done: {what}")),
        );
        text.push(field("rotating", in_progress));
        let (shown, hidden) = shown_versions(described);
        let width = shown
            .iter()
            .map(|v| stages_text(&v.stages).len())
            .max()
            .unwrap_or(0);
        text.push(field("versions", "newest first".to_owned()));
        for version in shown {
            text.push(format!(
                "    {}  {:<width$}  {}",
                version.id,
                stages_text(&version.stages),
                rfc3339(version.created)
            ));
        }
        if hidden > 0 {
            text.push(format!(
                "    ({hidden} older deprecated version(s) not shown; --json lists them)"
            ));
        }
    }
    let json: Vec<Value> = secrets
        .iter()
        .map(|(secret, described)| {
            let pending = described.half_rotated();
            json!({
                "name": secret.name,
                "arn": secret.arn,
                "strategy": described.tags.get(STRATEGY_TAG),
                "rotation_enabled": described.rotation_enabled,
                "last_rotated": described.last_rotated.map(rfc3339),
                "next_rotation": described.next_rotation.map(rfc3339),
                "half_rotated": pending.map(|v| v.id.clone()),
                "half_rotated_detail": half_rotated_text(described),
                "current": described.with_stage(CURRENT).map(|v| v.id.clone()),
                "versions": described.versions.iter().rev().map(version_json).collect::<Vec<_>>(),
            })
        })
        .collect();
    Report::new(text, json!({ "secrets": json }))
}

/// Where a followed rotation stands after a reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Not finished: read again.
    Following,
    /// AWSCURRENT is on the new version.
    Rotated,
    /// It will not finish while followed; why, with what is known.
    Failed(String),
}

/// What a reading showed: lines for the operator (what moved since the last reading) and where
/// the rotation stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// What changed, one line each.
    pub lines: Vec<String>,
    /// Where it stands.
    pub outcome: Outcome,
}

/// Reads successive states of a secret during one rotation and says what moved and whether the
/// rotation finished, was undone, or ran out of time. Pure: the readings and the time spent are
/// passed in.
#[derive(Debug, Clone)]
pub struct Follower {
    token: String,
    timeout: Duration,
    /// The version AWSCURRENT was on at the last reading.
    current: Option<String>,
    /// The new version's labels at the last reading; `None` while it does not exist.
    seen: Option<Vec<String>>,
}

impl Follower {
    /// Follows the rotation to version `token`, started when the secret was `before`, for at most
    /// `timeout`.
    pub fn new(token: &str, before: &Described, timeout: Duration) -> Self {
        Self {
            token: token.to_owned(),
            timeout,
            current: before.with_stage(CURRENT).map(|v| v.id.clone()),
            seen: before.version(token).map(|v| v.stages.clone()),
        }
    }

    /// The version the rotation brings in.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Takes the reading `now`, made `elapsed` after the rotation started.
    pub fn observe(&mut self, now: &Described, elapsed: Duration) -> Observed {
        let token = self.token.clone();
        let mut lines = Vec::new();
        let new = now.version(&token);
        match (new, &self.seen) {
            (Some(v), None) => lines.push(format!(
                "version {token} created ({})",
                stages_text(&v.stages)
            )),
            (Some(v), Some(before)) if *before != v.stages => lines.push(format!(
                "version {token}: {} -> {}",
                stages_text(before),
                stages_text(&v.stages)
            )),
            (None, Some(_)) => lines.push(format!("version {token} is gone")),
            _ => {}
        }
        let current = now.with_stage(CURRENT).map(|v| v.id.clone());
        if current != self.current {
            let previous = now
                .with_stage(PREVIOUS)
                .map_or(String::new(), |v| format!(" ({PREVIOUS} on {})", v.id));
            lines.push(format!(
                "{CURRENT} moved to {}{previous}",
                current_text(now)
            ));
            self.current = current;
        }
        let had_pending = self
            .seen
            .as_ref()
            .is_some_and(|s| s.iter().any(|s| s == PENDING));
        self.seen = new.map(|v| v.stages.clone());
        let outcome = if new.is_some_and(|v| v.has(CURRENT)) {
            lines.push(format!(
                "rotation finished: {CURRENT} is on version {token}"
            ));
            Outcome::Rotated
        } else if had_pending && !new.is_some_and(|v| v.has(PENDING)) {
            let pending = now.with_stage(PENDING).map_or(String::new(), |v| {
                format!("; {PENDING} is on version {}", v.id)
            });
            Outcome::Failed(format!(
                "version {token} lost {PENDING} without becoming {CURRENT} (the rotation was \
                 cancelled or undone); {CURRENT} is on {}{pending}",
                current_text(now)
            ))
        } else if elapsed >= self.timeout {
            let state = match new {
                None => format!(
                    "version {token} was never created (the rotation function's createSecret \
                     has not run)"
                ),
                Some(v) => format!(
                    "version {token} holds {} (the rotation function has not finished)",
                    stages_text(&v.stages)
                ),
            };
            Outcome::Failed(format!(
                "no {CURRENT} on version {token} after {} s: {state}; {CURRENT} is on {}; see the \
                 rotation function's logs and `relay secrets status`",
                elapsed.as_secs(),
                current_text(now)
            ))
        } else {
            Outcome::Following
        };
        Observed { lines, outcome }
    }
}

/// How a rotation ended that finished.
#[derive(Debug, Clone)]
pub struct Followed {
    /// What moved, in order, each line with the seconds since the rotation started.
    pub progress: Vec<String>,
    /// The time it took.
    pub elapsed: Duration,
}

/// Reads `secret` through `versions` every `polling.interval` and hands each reading to
/// `follower`, passing each line of progress to `emit` as it comes, until the rotation finished
/// (`Ok`) or failed (`Err`, with what is known).
pub async fn follow(
    versions: &dyn SecretVersions,
    secret: &str,
    mut follower: Follower,
    polling: &Polling,
    emit: &mut (dyn FnMut(&str) + Send),
) -> anyhow::Result<Followed> {
    let started = (polling.clock)();
    let mut progress = Vec::new();
    loop {
        let described = versions.describe(secret).await.map_err(|e| {
            anyhow!(
                "a rotation of {secret} to version {} was started but could not be followed: {e}",
                follower.token()
            )
        })?;
        let elapsed = (polling.clock)()
            .duration_since(started)
            .unwrap_or_default();
        let observed = follower.observe(&described, elapsed);
        for line in observed.lines {
            let line = format!("[{:>4} s] {line}", elapsed.as_secs());
            emit(&line);
            progress.push(line);
        }
        match observed.outcome {
            Outcome::Following => tokio::time::sleep(polling.interval).await,
            Outcome::Rotated => return Ok(Followed { progress, elapsed }),
            Outcome::Failed(why) => bail!("rotation of {secret} failed: {why}"),
        }
    }
}

/// A rotation asked for.
struct Rotation<'a> {
    secret: &'a str,
    timeout: Duration,
    /// Whether a rotation left half done is discarded rather than refused.
    discard_pending: bool,
}

/// Starts a rotation with the secret's configured rotation function and follows it.
async fn rotate(
    client: &aws_sdk_secretsmanager::Client,
    versions: &SecretsManagerVersions,
    rotation: &Rotation<'_>,
    polling: &Polling,
    emit: &mut (dyn FnMut(&str) + Send),
) -> anyhow::Result<Report> {
    let secret = rotation.secret;
    let before = versions.describe(secret).await?;
    if let (Some(pending), Some(what)) = (before.half_rotated(), half_rotated_text(&before)) {
        if !rotation.discard_pending {
            bail!(
                "a rotation of {secret} is already half done: {what}. Let it finish, or, if it \
                 failed, rotate with --discard-pending"
            );
        }
        client
            .update_secret_version_stage()
            .secret_id(secret)
            .version_stage(PENDING)
            .remove_from_version_id(&pending.id)
            .send()
            .await
            .map_err(|e| failed(&format!("UpdateSecretVersionStage of {secret}"), &e))?;
        emit(&format!(
            "took {PENDING} off version {} (a rotation left half done)",
            pending.id
        ));
    }
    let out = client
        .rotate_secret()
        .secret_id(secret)
        .send()
        .await
        .map_err(|e| failed(&format!("RotateSecret of {secret}"), &e))?;
    let token = out
        .version_id()
        .ok_or_else(|| anyhow!("RotateSecret of {secret} named no new version"))?;
    emit(&format!(
        "rotation of {secret} started: the new version is {token}"
    ));
    let previous = before.with_stage(CURRENT).map(|v| v.id.clone());
    let follower = Follower::new(token, &before, rotation.timeout);
    let followed = follow(versions, secret, follower, polling, emit).await?;
    let text = vec![format!(
        "{} {secret}: {CURRENT} is on version {token} (was {}) after {} s",
        output::ok("rotated"),
        previous.as_deref().unwrap_or("on no version"),
        followed.elapsed.as_secs()
    )];
    let json = json!({
        "secret": secret,
        "arn": out.arn(),
        "version": token,
        "previous": previous,
        "elapsed_secs": followed.elapsed.as_secs_f64(),
        "progress": followed.progress,
    });
    Ok(Report::new(text, json))
}

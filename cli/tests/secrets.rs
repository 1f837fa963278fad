//! `relay secrets` against a local AWS (moto server): rotating secrets found by their tag, their
//! versions and a half-done rotation shown, a rotation refused while one is half done, started
//! and followed to its end; and how a rotation is followed, over hand-built readings.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use genesys_relay::secrets::versions::{Described, MemoryVersions, Version, CURRENT, PENDING};
use relay_cli::output::Report;
use relay_cli::secrets::{self, follow, Command, Follower, Outcome, Polling};
use relay_tests::rotation::{tag, tag_with, token};
use relay_tests::LocalAws;
use serde_json::Value;

/// Following without waiting: a millisecond between readings, on the system's clock.
fn quick() -> Polling {
    Polling {
        interval: Duration::from_millis(1),
        clock: genesys_relay::clock::system(),
    }
}

async fn run(aws: &LocalAws, command: Command) -> anyhow::Result<Report> {
    secrets::run_with(command, &aws.sdk, &quick()).await
}

fn status(ids: &[&str]) -> Command {
    Command::Status {
        secret_ids: ids.iter().map(|id| (*id).to_owned()).collect(),
    }
}

fn rotate(secret: &str) -> Command {
    Command::Rotate {
        secret_id: secret.to_owned(),
        timeout_secs: 30,
        discard_pending: false,
    }
}

/// Stores `value` as version `token` of `secret` with `stages`.
async fn put(aws: &LocalAws, secret: &str, value: &str, token: &str, stages: &[&str]) {
    aws.secrets()
        .put_secret_value()
        .secret_id(secret)
        .secret_string(value)
        .client_request_token(token)
        .set_version_stages(Some(stages.iter().map(|s| (*s).to_owned()).collect()))
        .send()
        .await
        .expect("put a version");
}

/// A secret `name` tagged to rotate as a webhook secret, with a second version made current.
async fn rotating(aws: &LocalAws, name: &str) -> String {
    let arn = aws.secret(name, "first").await;
    tag(aws, &arn, "webhook").await;
    put(aws, &arn, "second", &token(1), &[CURRENT]).await;
    arn
}

/// A rotating secret `name` whose rotation to version `token(2)` was left half done.
async fn half_rotated(aws: &LocalAws, name: &str) -> String {
    let arn = rotating(aws, name).await;
    put(aws, &arn, "next", &token(2), &[PENDING]).await;
    arn
}

/// The one secret a status report shows.
fn only(report: &Report) -> &Value {
    let secrets = report.json["secrets"].as_array().expect("secrets");
    assert_eq!(secrets.len(), 1, "{secrets:?}");
    &secrets[0]
}

/// The labels of each version in a status report, newest first.
fn stages(secret: &Value) -> Vec<(String, Vec<String>)> {
    secret["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .map(|v| {
            let stages = v["stages"].as_array().expect("stages");
            (
                v["id"].as_str().expect("id").to_owned(),
                stages
                    .iter()
                    .map(|s| s.as_str().expect("a stage").to_owned())
                    .collect(),
            )
        })
        .collect()
}

#[tokio::test]
async fn status_lists_only_tagged_secrets_with_their_stages() {
    let aws = LocalAws::start().await;
    let arn = rotating(&aws, "relay/webhook").await;
    // ListSecrets matches the tag key as a prefix: a longer key is not the rotation tag.
    let lookalike = aws.secret("relay/lookalike", "x").await;
    tag_with(&aws, &lookalike, "genesys-relay:rotation-not", "webhook").await;
    aws.secret("relay/untagged", "x").await;

    let report = run(&aws, status(&[])).await.expect("status");
    let secret = only(&report);
    assert_eq!(secret["name"], "relay/webhook");
    assert_eq!(secret["arn"], arn.as_str());
    assert_eq!(secret["strategy"], "webhook");
    assert_eq!(secret["half_rotated"], Value::Null);
    assert_eq!(secret["current"], token(1).as_str());
    let versions = stages(secret);
    assert_eq!(versions.len(), 2, "{versions:?}");
    assert_eq!(versions[0], (token(1), vec![CURRENT.to_owned()]));
    assert_eq!(versions[1].1, vec!["AWSPREVIOUS".to_owned()]);

    let text = report.text.join("\n");
    assert!(text.contains(&format!("relay/webhook ({arn})")), "{text}");
    assert!(text.contains("  strategy       webhook"), "{text}");
    assert!(text.contains("  rotating       no"), "{text}");
    assert!(
        text.contains(&format!("    {}  AWSCURRENT ", token(1))),
        "{text}"
    );
    assert!(!text.contains("relay/untagged") && !text.contains("relay/lookalike"));

    // Named, an untagged secret is shown too, its missing tag said.
    let report = run(&aws, status(&["relay/untagged"]))
        .await
        .expect("status");
    assert_eq!(only(&report)["strategy"], Value::Null);
    assert!(report
        .text
        .join("\n")
        .contains("none (no genesys-relay:rotation tag)"));
}

#[tokio::test]
async fn status_shows_few_deprecated_versions_in_text_and_all_in_json() {
    let aws = LocalAws::start().await;
    let arn = rotating(&aws, "relay/signing").await;
    for n in 2..=6 {
        put(&aws, &arn, &format!("value {n}"), &token(n), &[CURRENT]).await;
    }

    let report = run(&aws, status(&[&arn])).await.expect("status");
    let versions = stages(only(&report));
    assert_eq!(versions.len(), 7, "{versions:?}");
    let deprecated = versions.iter().filter(|(_, s)| s.is_empty()).count();
    assert_eq!(deprecated, 5);

    let text = report.text.join("\n");
    assert_eq!(text.matches("  deprecated  ").count(), 3, "{text}");
    assert!(
        text.contains("(2 older deprecated version(s) not shown"),
        "{text}"
    );
}

#[tokio::test]
async fn status_reports_a_half_done_rotation() {
    let aws = LocalAws::start().await;
    let arn = half_rotated(&aws, "relay/twilio").await;

    let report = run(&aws, status(&["relay/twilio"])).await.expect("status");
    let secret = only(&report);
    assert_eq!(secret["arn"], arn.as_str());
    assert_eq!(secret["half_rotated"], token(2).as_str());
    assert_eq!(secret["current"], token(1).as_str());
    let text = report.text.join("\n");
    assert!(
        text.contains(&format!(
            "half done: version {} holds AWSPENDING since",
            token(2)
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("and AWSCURRENT is on version {}", token(1))),
        "{text}"
    );
}

/// The number of versions `secret` has, deprecated ones included.
async fn version_count(aws: &LocalAws, secret: &str) -> usize {
    aws.secrets()
        .list_secret_version_ids()
        .secret_id(secret)
        .include_deprecated(true)
        .send()
        .await
        .expect("list versions")
        .versions()
        .len()
}

#[tokio::test]
async fn rotate_refuses_while_a_rotation_is_half_done() {
    let aws = LocalAws::start().await;
    let arn = half_rotated(&aws, "relay/oauth").await;

    let error = run(&aws, rotate(&arn)).await.expect_err("refused");
    let message = format!("{error:#}");
    assert!(message.contains("already half done"), "{message}");
    assert!(message.contains(&token(2)), "{message}");
    // Nothing was started: no new version, the labels where they were.
    assert_eq!(version_count(&aws, &arn).await, 3);
    assert_eq!(
        relay_tests::rotation::stage_value(&aws, &arn, CURRENT).await,
        "second"
    );
}

#[tokio::test]
async fn rotate_discards_a_half_done_rotation_when_asked() {
    let aws = LocalAws::start().await;
    let arn = half_rotated(&aws, "relay/oauth").await;

    let command = Command::Rotate {
        secret_id: arn.clone(),
        timeout_secs: 30,
        discard_pending: true,
    };
    let report = run(&aws, command).await.expect("rotated");
    let version = report.json["version"].as_str().expect("new version");

    let status = run(&aws, status(&[&arn])).await.expect("status");
    let secret = only(&status);
    assert_eq!(secret["current"], version);
    assert_eq!(secret["half_rotated"], Value::Null);
    let discarded = stages(secret)
        .into_iter()
        .find(|(id, _)| *id == token(2))
        .expect("the discarded version");
    assert!(!discarded.1.iter().any(|s| s == PENDING), "{discarded:?}");
}

#[tokio::test]
async fn rotate_follows_the_rotation_until_the_new_version_is_current() {
    let aws = LocalAws::start().await;
    let arn = rotating(&aws, "relay/webhook").await;

    let report = run(&aws, rotate("relay/webhook")).await.expect("rotated");
    let version = report.json["version"].as_str().expect("new version");
    assert_ne!(version, token(1));
    assert_eq!(report.json["previous"], token(1).as_str());
    let progress: Vec<&str> = report.json["progress"]
        .as_array()
        .expect("progress")
        .iter()
        .map(|l| l.as_str().expect("a line"))
        .collect();
    assert!(
        progress.iter().any(|l| l.ends_with(&format!(
            "AWSCURRENT moved to version {version} (AWSPREVIOUS on {})",
            token(1)
        ))),
        "{progress:?}"
    );
    assert!(
        progress.last().is_some_and(|l| l.ends_with(&format!(
            "rotation finished: AWSCURRENT is on version {version}"
        ))),
        "{progress:?}"
    );
    assert!(report.text[0].contains(&format!("AWSCURRENT is on version {version}")));

    let status = run(&aws, status(&[&arn])).await.expect("status");
    assert_eq!(only(&status)["current"], version);
}

#[tokio::test]
async fn rotate_reports_what_secrets_manager_refused() {
    let aws = LocalAws::start().await;
    let arn = rotating(&aws, "relay/deleted").await;
    aws.secrets()
        .delete_secret()
        .secret_id(&arn)
        .send()
        .await
        .expect("schedule the deletion");

    let error = run(&aws, rotate(&arn)).await.expect_err("refused");
    let message = format!("{error:#}");
    assert!(
        message.contains("RotateSecret of") && message.contains("InvalidRequestException"),
        "{message}"
    );

    let missing = run(&aws, rotate("relay/nothing"))
        .await
        .expect_err("no secret");
    assert!(
        format!("{missing:#}").contains("does not exist"),
        "{missing:#}"
    );
}

/// A reading with versions `(id, stages, created seconds)`.
fn reading(versions: &[(&str, &[&str], u64)]) -> Described {
    Described {
        versions: versions
            .iter()
            .map(|(id, stages, at)| Version {
                id: (*id).to_owned(),
                stages: stages.iter().map(|s| (*s).to_owned()).collect(),
                created: SystemTime::UNIX_EPOCH + Duration::from_secs(*at),
            })
            .collect(),
        rotation_enabled: true,
        ..Described::default()
    }
}

const TIMEOUT: Duration = Duration::from_secs(300);

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn a_rotation_is_followed_through_each_step_to_its_end() {
    let before = reading(&[("old", &[CURRENT], 1)]);
    let mut follower = Follower::new("new", &before, TIMEOUT);

    // Not created yet: the rotation function's createSecret has not run.
    let first = follower.observe(&before, secs(0));
    assert_eq!((first.lines.len(), first.outcome), (0, Outcome::Following));

    let pending = reading(&[("old", &[CURRENT], 1), ("new", &[PENDING], 2)]);
    let created = follower.observe(&pending, secs(2));
    assert_eq!(created.lines, ["version new created (AWSPENDING)"]);
    assert_eq!(created.outcome, Outcome::Following);
    // Nothing moved, nothing said.
    assert!(follower.observe(&pending, secs(4)).lines.is_empty());

    let done = reading(&[
        ("old", &["AWSPREVIOUS"], 1),
        ("new", &[PENDING, CURRENT], 2),
    ]);
    let finished = follower.observe(&done, secs(6));
    assert_eq!(
        finished.lines,
        [
            "version new: AWSPENDING -> AWSPENDING,AWSCURRENT",
            "AWSCURRENT moved to version new (AWSPREVIOUS on old)",
            "rotation finished: AWSCURRENT is on version new",
        ]
    );
    assert_eq!(finished.outcome, Outcome::Rotated);
}

#[test]
fn a_rotation_that_finished_counts_even_when_seen_after_the_timeout() {
    let before = reading(&[("old", &[CURRENT], 1)]);
    let mut follower = Follower::new("new", &before, TIMEOUT);
    let done = reading(&[("old", &["AWSPREVIOUS"], 1), ("new", &[CURRENT], 2)]);
    assert_eq!(follower.observe(&done, secs(900)).outcome, Outcome::Rotated);
}

#[test]
fn a_pending_version_that_vanishes_fails_the_rotation() {
    let before = reading(&[("old", &[CURRENT], 1)]);
    let mut follower = Follower::new("new", &before, TIMEOUT);
    let pending = reading(&[("old", &[CURRENT], 1), ("new", &[PENDING], 2)]);
    assert_eq!(
        follower.observe(&pending, secs(1)).outcome,
        Outcome::Following
    );

    let gone = follower.observe(&before, secs(2));
    assert_eq!(gone.lines, ["version new is gone"]);
    let Outcome::Failed(why) = gone.outcome else {
        panic!("{:?}", gone.outcome)
    };
    assert!(
        why.contains("lost AWSPENDING without becoming AWSCURRENT"),
        "{why}"
    );
    assert!(why.contains("AWSCURRENT is on version old"), "{why}");

    // Unlabelled rather than gone, the same.
    let mut follower = Follower::new("new", &before, TIMEOUT);
    follower.observe(&pending, secs(1));
    let unlabelled = reading(&[("old", &[CURRENT], 1), ("new", &[], 2)]);
    let dropped = follower.observe(&unlabelled, secs(2));
    assert_eq!(dropped.lines, ["version new: AWSPENDING -> deprecated"]);
    assert!(matches!(dropped.outcome, Outcome::Failed(_)));
}

#[test]
fn the_timeout_says_how_far_the_rotation_got() {
    let before = reading(&[("old", &[CURRENT], 1)]);
    let mut never = Follower::new("new", &before, TIMEOUT);
    assert_eq!(
        never.observe(&before, secs(299)).outcome,
        Outcome::Following
    );
    let Outcome::Failed(why) = never.observe(&before, secs(300)).outcome else {
        panic!("not timed out")
    };
    assert!(why.contains("after 300 s"), "{why}");
    assert!(why.contains("version new was never created"), "{why}");

    let mut stuck = Follower::new("new", &before, TIMEOUT);
    let pending = reading(&[("old", &[CURRENT], 1), ("new", &[PENDING], 2)]);
    let Outcome::Failed(why) = stuck.observe(&pending, secs(301)).outcome else {
        panic!("not timed out")
    };
    assert!(why.contains("version new holds AWSPENDING"), "{why}");
    assert!(why.contains("AWSCURRENT is on version old"), "{why}");
}

#[tokio::test]
async fn following_gives_up_when_the_clock_passes_the_timeout() {
    let start = SystemTime::UNIX_EPOCH + secs(1_000_000);
    let versions = MemoryVersions::new("old", "v1", start, &[]);
    versions.start_rotation("new", start);
    let before = versions.snapshot();
    // Each look at the clock is a minute later.
    let ticks = Arc::new(AtomicU64::new(0));
    let polling = Polling {
        interval: Duration::from_millis(1),
        clock: Arc::new(move || start + secs(60 * ticks.fetch_add(1, Ordering::SeqCst))),
    };
    let mut emitted = Vec::new();
    let mut emit = |line: &str| emitted.push(line.to_owned());

    let follower = Follower::new("new", &before, TIMEOUT);
    let error = follow(&versions, "s", follower, &polling, &mut emit)
        .await
        .expect_err("timed out");
    let message = format!("{error:#}");
    assert!(message.contains("after 300 s"), "{message}");
    assert!(
        message.contains("version new holds AWSPENDING"),
        "{message}"
    );
    assert!(emitted.is_empty(), "{emitted:?}");
}

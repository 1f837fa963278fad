//! `relay local rotation-soak`: events through the local stack while every kind of credential the
//! relay holds rotates (the webhook secret, a forwarding signing secret, the Twilio API key twice,
//! the Genesys OAuth clients), each through the rotator's four steps, with the sender and the
//! forwarding endpoint switching to a new secret in the middle of its rotation as a real one would.
//!
//! The checks: no validly signed webhook was refused; every event was texted exactly once, its
//! delivery status written back and forwarded once, each delivery verifying with the key the
//! endpoint held when it arrived; every rotation ended with its new version current, and the
//! processor sent with the rotated Twilio key.
//!
//! Every connection stays on 127.0.0.1; the run is bounded in events and in time.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use genesys_relay::config::{Env, RotatorConfig};
use genesys_relay::inbound::auth::HmacHeader;
use genesys_relay::secrets::rotation::{RotationEvent, Step};
use genesys_relay::secrets::strategy::STRATEGY_TAG;
use lambda_runtime::{Context, LambdaEvent};
use relay_local::fakes::downstream::Downstream;
use serde_json::{json, Value};

use super::demo::RULES;
use super::stack::{project_root, ProcessorRuns, Stack, WEBHOOK_SECRET};
use crate::output::{check_rows, checks_json, Check, Report};

/// Where the forwarding endpoint listens on the local downstream service.
const ENDPOINT_PATH: &str = "/crm";
/// The forwarding signing secret, by name (the processor reads it by name as by ARN).
const SIGNING_SECRET: &str = "genesys-relay/forward/crm-signing";
/// Its first value.
const FIRST_SIGNING_KEY: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// The standby Genesys OAuth client and the admin client of the local organization.
const STANDBY_CLIENT: (&str, &str) = ("local-standby", "local-standby-secret");
const ADMIN_CLIENT: (&str, &str) = ("local-admin", "local-admin-secret");
/// The wrap-up code the demo's rules text for.
const ELIGIBLE_CODE: &str = "ININ-OUTBOUND-NO-ANSWER";
/// Pause between two steps of a rotation, so traffic flows through each stage.
const STEP_PAUSE: Duration = Duration::from_millis(700);
/// Attempts per webhook before the sender gives up.
const ATTEMPTS: u32 = 30;

/// What to run.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Events to send.
    pub events: usize,
    /// Events per second.
    pub rate: u32,
}

fn step(text: &str) {
    eprintln!("rotation-soak: {text}");
}

/// A secret being rotated, and the token of its rotation.
struct Rotation {
    secret: String,
    token: String,
}

/// The sender's key, which it switches to the new value mid-rotation, and what it was answered.
#[derive(Default)]
struct Sender {
    key: Mutex<String>,
    answers: Mutex<Vec<u16>>,
}

/// The endpoint's verification key over time: (from when, key).
#[derive(Default)]
struct EndpointKeys(Mutex<Vec<(Instant, String)>>);

impl EndpointKeys {
    fn switch(&self, key: &str) {
        lock(&self.0).push((Instant::now(), key.to_owned()));
    }

    /// The key the endpoint held at `at` (a delivery logged just before a switch is checked
    /// against both).
    fn held_at(&self, at: Instant) -> Vec<String> {
        let keys = lock(&self.0);
        let mut held: Vec<String> = keys
            .iter()
            .filter(|(from, _)| *from <= at)
            .map(|(_, key)| key.clone())
            .collect();
        held.reverse();
        held.truncate(2);
        held
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The demo's rules and a forwarding endpoint whose deliveries are signed.
fn rules(url: &str) -> Result<String> {
    let mut rules: Value = serde_json::from_str(RULES).context("the demo's rules")?;
    rules["forward"] = json!({"endpoints": [{
        "name": "crm", "url": url, "signingSecretArn": SIGNING_SECRET,
        "eventTypes": ["v2.detail.events.conversation.{id}.acw"]}]});
    Ok(rules.to_string())
}

fn body(n: usize) -> (String, String) {
    let conversation = format!("rotation-{n:06}");
    let number = format!("+1555{n:07}");
    let body = json!({
        "topicName": format!("v2.detail.events.conversation.{conversation}.acw"),
        "version": "2",
        "eventBody": {"conversationId": conversation, "participantId": format!("participant-{n}"),
            "wrapupCode": ELIGIBLE_CODE, "eventTime": 1_795_150_800_000_i64 + n as i64,
            "addressTo": format!("tel:{number}")},
    });
    (body.to_string(), number)
}

/// Sends every event at `rate`, each signed with the sender's key at its time, retrying what a
/// sender retries.
async fn send_all(url: String, settings: Settings, sender: Arc<Sender>) {
    let http = reqwest::Client::new();
    let signer = HmacHeader::genesys_open_messaging();
    let gap = Duration::from_secs(1) / settings.rate.max(1);
    let mut sends = Vec::new();
    for n in 0..settings.events {
        let (http, url, sender, signer) = (
            http.clone(),
            url.clone(),
            Arc::clone(&sender),
            signer.clone(),
        );
        sends.push(tokio::spawn(async move {
            let (body, _) = body(n);
            for attempt in 0..ATTEMPTS {
                let key = lock(&sender.key).clone();
                let signature = signer.sign(key.as_bytes(), body.as_bytes());
                let status = http
                    .post(&url)
                    .header("content-type", "application/json")
                    .header(signer.header.as_str(), &signature)
                    .body(body.clone())
                    .send()
                    .await
                    .map_or(0, |r| r.status().as_u16());
                lock(&sender.answers).push(status);
                if status != 503 && status != 0 {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100 << attempt.min(4))).await;
            }
        }));
        tokio::time::sleep(gap).await;
    }
    for send in sends {
        let _ = send.await;
    }
}

/// The rotation function, in process, against the stack's AWS and providers.
fn rotation_function(stack: &Stack, admin_arn: &str) -> Result<rotator::Deps> {
    let settings = HashMap::from([
        ("TWILIO_API_BASE", stack.twilio.base_url()),
        ("GENESYS_API_BASE", stack.genesys.base_url()),
        ("GENESYS_LOGIN_BASE", stack.genesys.base_url()),
        ("GENESYS_ADMIN_SECRET_ARN", admin_arn.to_owned()),
    ]);
    let config = RotatorConfig::from_env(&Env::from_fn(|k| settings.get(k).cloned()))?;
    Ok(rotator::Deps::new(
        config,
        &stack.aws,
        genesys_relay::outbound::http::client()?,
    ))
}

async fn run_step(deps: &rotator::Deps, rotation: &Rotation, step: Step) -> Result<()> {
    let event = RotationEvent {
        step,
        secret_id: rotation.secret.clone(),
        client_request_token: rotation.token.clone(),
    };
    rotator::handle(LambdaEvent::new(event, Context::default()), deps)
        .await
        .map_err(|e| anyhow::anyhow!("{step:?} of {}: {e}", rotation.secret))
}

/// Runs a rotation's four steps, calling `switch` with the new value once it exists (where the
/// other party starts using it), pausing between steps while traffic flows.
async fn rotate(
    deps: &rotator::Deps,
    secrets: &aws_sdk_secretsmanager::Client,
    rotation: &Rotation,
    switch: impl FnOnce(&str),
) -> Result<()> {
    run_step(deps, rotation, Step::Create).await?;
    let new = secrets
        .get_secret_value()
        .secret_id(&rotation.secret)
        .version_id(&rotation.token)
        .send()
        .await?
        .secret_string
        .context("the pending version holds no value")?;
    switch(&new);
    for step in [Step::Set, Step::Test, Step::Finish] {
        tokio::time::sleep(STEP_PAUSE).await;
        run_step(deps, rotation, step).await?;
    }
    tokio::time::sleep(STEP_PAUSE).await;
    Ok(())
}

async fn tag(secrets: &aws_sdk_secretsmanager::Client, secret: &str, strategy: &str) -> Result<()> {
    secrets
        .tag_resource()
        .secret_id(secret)
        .tags(
            aws_sdk_secretsmanager::types::Tag::builder()
                .key(STRATEGY_TAG)
                .value(strategy)
                .build(),
        )
        .send()
        .await?;
    Ok(())
}

/// Tags the stack's secrets with their strategies and sets up what rotation needs once: the
/// standby and admin Genesys clients, and the forwarding signing secret. Answers the admin
/// secret's ARN.
async fn prepare(stack: &Stack, secrets: &aws_sdk_secretsmanager::Client) -> Result<String> {
    let resources = &stack.resources;
    tag(secrets, &resources.genesys_webhook_secret_arn, "webhook").await?;
    tag(secrets, &resources.twilio_secret_arn, "twilio-api-key").await?;
    stack.genesys.add_client(STANDBY_CLIENT.0, STANDBY_CLIENT.1);
    stack.genesys.add_client(ADMIN_CLIENT.0, ADMIN_CLIENT.1);
    secrets
        .put_secret_value()
        .secret_id(&resources.genesys_secret_arn)
        .secret_string(
            json!({"clientId": "local-client", "clientSecret": "local-secret",
                "standbyClientId": STANDBY_CLIENT.0})
            .to_string(),
        )
        .send()
        .await?;
    tag(secrets, &resources.genesys_secret_arn, "genesys-oauth").await?;
    secrets
        .create_secret()
        .name(SIGNING_SECRET)
        .secret_string(FIRST_SIGNING_KEY)
        .send()
        .await?;
    tag(secrets, SIGNING_SECRET, "forward-signing").await?;
    let admin = secrets
        .create_secret()
        .name("genesys-relay/genesys-admin")
        .secret_string(
            json!({"clientId": ADMIN_CLIENT.0, "clientSecret": ADMIN_CLIENT.1}).to_string(),
        )
        .send()
        .await?;
    admin.arn.context("the admin secret's ARN")
}

/// Runs the rotation soak.
pub async fn run(settings: Settings) -> Result<Report> {
    if settings.events < 20 {
        bail!("a rotation soak needs at least 20 events, so that traffic meets every rotation");
    }
    let started = Instant::now();
    let root = project_root()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let downstream = Downstream::start().await;
    let rules = rules(&downstream.url(ENDPOINT_PATH))?;
    let runs = ProcessorRuns {
        pollers: 2,
        ..ProcessorRuns::default()
    };
    let stack = Stack::up(&root, port, &rules, runs).await?;
    let secrets = aws_sdk_secretsmanager::Client::new(&stack.aws);
    let admin = prepare(&stack, &secrets).await?;
    let deps = rotation_function(&stack, &admin)?;
    let twilio_key_before = stack.twilio.keys().len();
    step(&format!(
        "stack up in {:.1} s; sending {} events at {}/s while rotating",
        started.elapsed().as_secs_f64(),
        settings.events,
        settings.rate
    ));

    let sender = Arc::new(Sender::default());
    *lock(&sender.key) = WEBHOOK_SECRET.to_owned();
    let endpoint_keys = Arc::new(EndpointKeys::default());
    endpoint_keys.switch(FIRST_SIGNING_KEY);
    let sending = tokio::spawn(send_all(
        format!("{}/webhooks/genesys", stack.receiver_url),
        settings,
        Arc::clone(&sender),
    ));

    let mut tokens = 0u32;
    let mut next = |secret: &str| {
        tokens += 1;
        Rotation {
            secret: secret.to_owned(),
            token: format!("7a3f9c20-5b1e-4d8a-9f6b-{tokens:012}"),
        }
    };
    let resources = stack.resources.clone();
    let mut twilio = vec![next(&resources.twilio_secret_arn)];
    step("rotating the Twilio API key (1 of 2)");
    rotate(&deps, &secrets, &twilio[0], |_| {}).await?;
    let webhook = next(&resources.genesys_webhook_secret_arn);
    step("rotating the webhook secret (the sender switches once the new value exists)");
    rotate(&deps, &secrets, &webhook, |new| {
        *lock(&sender.key) = new.to_owned()
    })
    .await?;
    let signing = next(SIGNING_SECRET);
    step("rotating the signing secret (the endpoint switches once the new value exists)");
    rotate(&deps, &secrets, &signing, |new| endpoint_keys.switch(new)).await?;
    let genesys = next(&resources.genesys_secret_arn);
    step("rotating the Genesys OAuth clients");
    rotate(&deps, &secrets, &genesys, |_| {}).await?;
    twilio.push(next(&resources.twilio_secret_arn));
    step("rotating the Twilio API key (2 of 2)");
    rotate(&deps, &secrets, &twilio[1], |_| {}).await?;
    // The processor's token lapses: it signs in again with the client the secret names now.
    stack.genesys.expire_tokens();

    sending.await.context("the sender stopped")?;
    step(&format!(
        "all sent at {:.1} s; waiting for the pipeline to drain",
        started.elapsed().as_secs_f64()
    ));
    super::soak::wait_until_drained(&stack, Duration::from_secs(120)).await?;

    let mut checks = Vec::new();
    let answers = lock(&sender.answers).clone();
    let refused = answers.iter().filter(|s| **s == 401).count();
    let accepted = answers.iter().filter(|s| **s == 202).count();
    checks.push(Check::new(
        "validly signed webhooks refused",
        refused,
        "0",
        refused == 0,
    ));
    checks.push(Check::new(
        "events accepted",
        accepted,
        format!("{}", settings.events),
        accepted == settings.events,
    ));
    let messages = stack.twilio.messages();
    let mut per_number: BTreeMap<String, usize> = BTreeMap::new();
    for message in &messages {
        *per_number.entry(message.to.clone()).or_default() += 1;
    }
    let texted_once = (0..settings.events)
        .filter(|n| per_number.get(&body(*n).1) == Some(&1))
        .count();
    checks.push(Check::new(
        "events texted exactly once",
        texted_once,
        format!("{} (nothing lost, nothing twice)", settings.events),
        texted_once == settings.events && messages.len() == settings.events,
    ));
    let written: HashSet<String> = stack
        .genesys
        .patches()
        .iter()
        .map(|p| p.conversation_id.clone())
        .collect();
    checks.push(Check::new(
        "conversations with a status written back",
        written.len(),
        format!("{}", settings.events),
        written.len() == settings.events,
    ));
    let received = downstream.received(ENDPOINT_PATH);
    let ids: HashSet<&String> = received
        .iter()
        .filter(|r| (200..300).contains(&r.status))
        .filter_map(|r| r.headers.get("webhook-id"))
        .collect();
    checks.push(Check::new(
        "events forwarded",
        ids.len(),
        format!("{}", settings.events),
        ids.len() == settings.events,
    ));
    let unverified = received
        .iter()
        .filter(|r| !verifies(r, &endpoint_keys.held_at(r.at)))
        .count();
    checks.push(Check::new(
        "deliveries the endpoint could not verify",
        unverified,
        "0",
        unverified == 0,
    ));
    let mut rotated = 0;
    let all = [&webhook, &signing, &genesys, &twilio[0], &twilio[1]];
    for rotation in all {
        let current = secrets
            .get_secret_value()
            .secret_id(&rotation.secret)
            .version_stage("AWSCURRENT")
            .send()
            .await?;
        let expected = if std::ptr::eq(rotation, &twilio[0]) {
            twilio[1].token.as_str()
        } else {
            rotation.token.as_str()
        };
        rotated += usize::from(current.version_id() == Some(expected));
    }
    checks.push(Check::new(
        "rotations finished with the new version current",
        rotated,
        format!("{}", all.len()),
        rotated == all.len(),
    ));
    let keys: HashSet<String> = stack.twilio.keys().into_iter().map(|k| k.sid).collect();
    let sent_with_rotated_key = messages
        .iter()
        .filter(|m| keys.contains(&m.auth_user))
        .count();
    checks.push(Check::new(
        "messages sent with a rotated Twilio key",
        sent_with_rotated_key,
        "at least one",
        sent_with_rotated_key > 0 && stack.twilio.keys().len() == twilio_key_before + 2,
    ));

    let (rows, failed) = check_rows(&checks);
    let mut text = vec![String::new()];
    text.extend(rows);
    text.push(format!(
        "rotation-soak: {} passed, {failed} failed, in {:.0} s",
        checks.len() - failed,
        started.elapsed().as_secs_f64()
    ));
    let json = json!({
        "checks": checks_json(&checks),
        "seconds": started.elapsed().as_secs_f64(),
        "passed": checks.len() - failed, "failed": failed,
    });
    let output = Report::new(text, json);
    if failed > 0 {
        crate::output::print(&output, false);
        bail!("{failed} of the rotation soak's checks failed");
    }
    Ok(output)
}

/// Whether one of the delivery's signatures verifies with one of `keys`.
fn verifies(delivery: &relay_local::fakes::downstream::Received, keys: &[String]) -> bool {
    let (Some(id), Some(timestamp), Some(signatures)) = (
        delivery.headers.get("webhook-id"),
        delivery
            .headers
            .get("webhook-timestamp")
            .and_then(|t| t.parse::<i64>().ok()),
        delivery.headers.get("webhook-signature"),
    ) else {
        return false;
    };
    keys.iter().any(|key| {
        genesys_relay::outbound::forward::envelope::signature_headers(
            id,
            timestamp,
            &delivery.body,
            &[secrecy::SecretString::from(key.clone())],
        )
        .ok()
        .and_then(|headers| {
            headers
                .into_iter()
                .find(|(name, _)| *name == "webhook-signature")
                .map(|(_, value)| value)
        })
        .is_some_and(|expected| signatures.split(' ').any(|s| s == expected))
    })
}

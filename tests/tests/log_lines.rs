//! Every log line an invocation writes is a JSON object that carries the invocation's X-Ray trace
//! id, as deployed: Lambda's JSON log format, so the functions' own subscriber writes JSON, and
//! active tracing, so every invocation comes with a trace id.
//!
//! Nothing of that is re-created here. The subscriber is the one each `main.rs` installs
//! (`init_default_subscriber` is `init_default_subscriber_with_writer` on stdout), set up by the
//! environment Lambda gives it, writing into memory instead of stdout. The functions run under
//! `lambda_runtime::run` and `lambda_http::run`, as their `main.rs` runs them: the runtime polls
//! a local Runtime API for invocations whose `Lambda-Runtime-Trace-Id` header carries the trace
//! id, wraps each in its `TracingLayer` span and posts the handler's answer back. The handlers
//! are the real ones over a local AWS and local Twilio and Genesys, on events that make them log
//! at every level: accepted and refused requests, events queued, ignored and dead-lettered,
//! records sent, retried and dead-lettered.
//!
//! The subscriber and the environment are the process's, so this file holds one test.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use genesys_relay::config::{Env, EventBridgeConfig, ProcessorConfig, ReceiverConfig};
use genesys_relay::inbound::event::EventKey;
use genesys_relay::inbound::queue::{Envelope, MediaType, QueueSender, Source};
use lambda_runtime::{service_fn, LambdaEvent};
use relay_tests::fakes::server::{self, lock};
use relay_tests::providers::{http_client, Providers, TWILIO_ACCOUNT};
use relay_tests::{sample_event, test_secrets, LocalAws};
use serde_json::{json, Value};
use time::OffsetDateTime;

const RULES: &str = r#"{"smsOnWrapup": {"templates": {"ININ-OUTBOUND-NO-ANSWER": "Sorry we missed you, {{contact.firstName}}."}, "from": "+15005550006"}}"#;
const CUSTOMER: &str = "+14158675309";
/// The log level Lambda passes the functions by default (the template's `ApplicationLogLevel`).
const LOG_LEVEL: &str = "INFO";
/// Longest a function may take over its invocations before the test gives up on it.
const RUN_LIMIT: Duration = Duration::from_secs(60);

/// The log lines the subscriber wrote, in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        lock(&self.0).extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// The lines written since the last call, removed.
    fn take(&self) -> Vec<String> {
        let bytes = std::mem::take(&mut *lock(&self.0));
        String::from_utf8(bytes)
            .expect("UTF-8 log lines")
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

/// One invocation as the Runtime API hands it out.
#[derive(Clone)]
struct Invocation {
    request_id: String,
    trace_id: String,
    event: String,
}

impl Invocation {
    /// Invocation `n` of `function` with `event`; each has its own request and trace id.
    fn new(function: &str, n: u32, event: impl Into<String>) -> Self {
        let tag = match function {
            "receiver" => 1,
            "eventbridge" => 2,
            _ => 3,
        };
        Self {
            request_id: format!("{function}-{n}"),
            trace_id: format!(
                "Root=1-5759e988-bd862e3fe1be46a99427{tag}{n:03};Parent=53995c3f42cd8ad8;Sampled=1"
            ),
            event: event.into(),
        }
    }
}

/// What the function posted back for an invocation: `response` or `error`, and the body.
#[derive(Debug)]
struct Answer {
    request_id: String,
    kind: &'static str,
    body: String,
}

/// A local Lambda Runtime API: hands out the invocations queued on it, then an answer the runtime
/// cannot read (a deadline that is no number), which ends its loop with an error, so each
/// function runs exactly the invocations it was given.
#[derive(Default)]
struct RuntimeApi {
    pending: VecDeque<Invocation>,
    answers: Vec<Answer>,
    deadline_ms: u64,
}

type Api = Arc<Mutex<RuntimeApi>>;

/// `GET /invocation/next`: the next invocation, with the headers Lambda sends.
async fn next(State(api): State<Api>) -> Response {
    let mut api = lock(&api);
    match api.pending.pop_front() {
        Some(invocation) => (
            [
                ("lambda-runtime-aws-request-id", invocation.request_id),
                ("lambda-runtime-deadline-ms", api.deadline_ms.to_string()),
                (
                    "lambda-runtime-invoked-function-arn",
                    "arn:aws:lambda:us-east-1:123456789012:function:genesys-relay".to_owned(),
                ),
                ("lambda-runtime-trace-id", invocation.trace_id),
            ],
            invocation.event,
        )
            .into_response(),
        None => (
            [
                ("lambda-runtime-aws-request-id", "end"),
                ("lambda-runtime-deadline-ms", "end"),
            ],
            "",
        )
            .into_response(),
    }
}

/// `POST /invocation/{id}/response`: the handler's answer.
async fn response(State(api): State<Api>, Path(id): Path<String>, body: String) -> Response {
    answer(&api, id, "response", body)
}

/// `POST /invocation/{id}/error`: the handler's error.
async fn error(State(api): State<Api>, Path(id): Path<String>, body: String) -> Response {
    answer(&api, id, "error", body)
}

/// Keeps what the function posted back.
fn answer(api: &Api, request_id: String, kind: &'static str, body: String) -> Response {
    lock(api).answers.push(Answer {
        request_id,
        kind,
        body,
    });
    axum::http::StatusCode::ACCEPTED.into_response()
}

/// Runs a function (`run`: its runtime loop) over `invocations`; returns its answers and the log
/// lines it wrote, each parsed, checked to carry its invocation's request and trace id, and
/// grouped by invocation.
async fn invoke<F>(
    api: &Api,
    captured: &Captured,
    invocations: &[Invocation],
    run: F,
) -> (Vec<Answer>, HashMap<String, Vec<Value>>)
where
    F: Future<Output = Result<(), lambda_runtime::Error>>,
{
    // Lines written while building the stack are a cold start's: no invocation is under way.
    captured.take();
    lock(api).pending.extend(invocations.iter().cloned());
    let ended = tokio::time::timeout(RUN_LIMIT, run)
        .await
        .expect("the function runs its invocations");
    assert!(
        ended.is_err(),
        "the runtime loop ends at the unreadable invocation"
    );
    let answers = std::mem::take(&mut lock(api).answers);
    assert_eq!(
        answers.iter().map(|a| &a.request_id).collect::<Vec<_>>(),
        invocations
            .iter()
            .map(|i| &i.request_id)
            .collect::<Vec<_>>(),
        "every invocation is answered: {answers:?}"
    );
    let lines = captured.take();
    let mut by_invocation: HashMap<String, Vec<Value>> = HashMap::new();
    for line in &lines {
        let parsed: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("a log line that is not JSON ({e}): {line}"));
        let invocation = invocation_of(&parsed).unwrap_or_else(|| {
            panic!("a log line without the invocation's span: {line}\nall lines:\n{lines:#?}")
        });
        let expected = invocations
            .iter()
            .find(|i| i.request_id == invocation.0)
            .unwrap_or_else(|| panic!("a log line of no invocation: {line}"));
        assert_eq!(
            invocation.1.as_deref(),
            Some(expected.trace_id.as_str()),
            "a log line without its invocation's trace id: {line}"
        );
        by_invocation.entry(invocation.0).or_default().push(parsed);
    }
    (answers, by_invocation)
}

/// The request id and trace id of the invocation span a JSON log line carries: the span fields
/// are in `span` (the innermost span) and `spans` (all of them, outermost first).
fn invocation_of(line: &Value) -> Option<(String, Option<String>)> {
    let spans = line["spans"].as_array().into_iter().flatten();
    std::iter::once(&line["span"])
        .chain(spans)
        .find_map(|span| {
            let request = span["requestId"].as_str()?;
            Some((
                request.to_owned(),
                span["xrayTraceId"].as_str().map(str::to_owned),
            ))
        })
}

/// The lines of `invocation` at `level` (`INFO`, `WARN`, `ERROR`) whose message is `message`.
fn count(
    lines: &HashMap<String, Vec<Value>>,
    invocation: &Invocation,
    level: &str,
    message: &str,
) -> usize {
    lines
        .get(&invocation.request_id)
        .into_iter()
        .flatten()
        .filter(|line| line["level"] == level && line["fields"]["message"] == message)
        .count()
}

/// The levels of all lines.
fn levels(lines: &HashMap<String, Vec<Value>>) -> Vec<String> {
    let mut levels: Vec<String> = lines
        .values()
        .flatten()
        .filter_map(|line| line["level"].as_str().map(str::to_owned))
        .collect();
    levels.sort();
    levels.dedup();
    levels
}

/// `events/eventbridge-acw.json` with its detail replaced by `edit`'s.
fn eventbridge_event(edit: impl FnOnce(&mut Value)) -> String {
    let mut event: Value =
        serde_json::from_str(&sample_event("eventbridge-acw.json")).expect("a sample event");
    edit(&mut event["detail"]);
    event.to_string()
}

#[test]
fn every_log_line_of_an_invocation_is_json_with_its_trace_id() {
    // Bound before the runtime starts, so the environment below is complete before any thread
    // could read it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a local port");
    let port = listener.local_addr().expect("local address").port();
    listener.set_nonblocking(true).expect("non-blocking");
    // What Lambda sets for the functions (the template's `LoggingConfig`, and the Runtime API),
    // and nothing else that steers the subscriber.
    std::env::set_var("AWS_LAMBDA_LOG_FORMAT", "JSON");
    std::env::set_var("AWS_LAMBDA_LOG_LEVEL", LOG_LEVEL);
    std::env::remove_var("RUST_LOG");
    std::env::set_var("AWS_LAMBDA_RUNTIME_API", format!("127.0.0.1:{port}"));
    std::env::set_var("AWS_LAMBDA_FUNCTION_NAME", "genesys-relay");
    std::env::set_var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128");
    std::env::set_var("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST");
    let captured = Captured::default();
    let writer = captured.clone();
    lambda_runtime::tracing::init_default_subscriber_with_writer(move || writer.clone());
    // The runtime `#[tokio::main]` builds.
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(run(listener, port, captured));
}

/// Runs the receiver, the EventBridge handler and the processor, one after the other, each over
/// its invocations, checking every line each writes.
async fn run(listener: std::net::TcpListener, port: u16, captured: Captured) {
    let api: Api = Arc::default();
    lock(&api).deadline_ms = (SystemTime::now() + Duration::from_secs(300))
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as u64;
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(response),
        )
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .with_state(Arc::clone(&api));
    let listener = tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
    let _runtime_api = server::serve(listener, port, app);

    let aws = LocalAws::start().await;
    let queue_url = aws.queue("main").await;
    let dlq_url = aws.queue("dlq").await;
    let providers = Providers::start(&aws).await;
    let genesys_webhook = aws
        .secret("genesys-webhook", test_secrets::GENESYS_WEBHOOK)
        .await;
    let mut settings = providers.settings();
    settings.extend([
        ("QUEUE_URL", queue_url.clone()),
        ("DLQ_URL", dlq_url),
        ("RULES", RULES.to_owned()),
        (
            "STATUS_CALLBACK_URL",
            "https://relay.example.com/webhooks/twilio/status".to_owned(),
        ),
        ("GENESYS_WEBHOOK_SECRET_ARN", genesys_webhook),
    ]);
    // Queued before any invocation, so they carry no invocation's trace header.
    queue_other_work(&aws, &queue_url).await;

    // The receiver: a request accepted, one refused, one it cannot store (it reads Twilio's keys
    // from a secret that is not there, and a request it cannot check is one it does not store).
    let mut receiver_settings = settings.clone();
    receiver_settings.insert("TWILIO_SECRET_ARN", "no-such-secret".to_owned());
    let deps = receiver::Deps::new(
        ReceiverConfig::from_env(&Env::from_fn(|k| receiver_settings.get(k).cloned()))
            .expect("receiver settings"),
        &aws.sdk,
    );
    let requests = [
        Invocation::new("receiver", 1, sample_event("receiver-genesys-webhook.json")),
        Invocation::new(
            "receiver",
            2,
            sample_event("receiver-genesys-bad-signature.json"),
        ),
        Invocation::new("receiver", 3, sample_event("receiver-twilio-status.json")),
    ];
    let (answers, lines) = invoke(
        &api,
        &captured,
        &requests,
        lambda_http::run(lambda_http::service_fn(|request| async {
            Ok::<_, lambda_http::Error>(receiver::handle(request, &deps).await)
        })),
    )
    .await;
    let statuses: Vec<Value> = answers
        .iter()
        .map(|a| {
            serde_json::from_str::<Value>(&a.body).expect("a JSON answer")["statusCode"].clone()
        })
        .collect();
    assert_eq!(
        statuses,
        [json!(202), json!(401), json!(500)],
        "{answers:?}"
    );
    assert_eq!(
        count(&lines, &requests[0], "INFO", "accepted"),
        1,
        "{lines:#?}"
    );
    assert_eq!(
        count(&lines, &requests[1], "WARN", "rejected"),
        1,
        "{lines:#?}"
    );
    assert_eq!(
        count(&lines, &requests[2], "ERROR", "not stored"),
        1,
        "{lines:#?}"
    );

    // The EventBridge handler: an event queued, one no rule acts on, one dead-lettered.
    let deps = eventbridge_handler::Deps::new(
        EventBridgeConfig::from_env(&Env::from_fn(|k| settings.get(k).cloned()))
            .expect("EventBridge handler settings"),
        &aws.sdk,
    );
    let events = [
        Invocation::new("eventbridge", 1, sample_event("eventbridge-acw.json")),
        Invocation::new(
            "eventbridge",
            2,
            eventbridge_event(|detail| {
                detail["topicName"] =
                    json!("v2.users.3b9e6f21-5d7a-4f0c-8e2b-9a1d4c6e8f30.presence");
            }),
        ),
        Invocation::new(
            "eventbridge",
            3,
            eventbridge_event(|detail| *detail = json!("not a Genesys event")),
        ),
    ];
    let (answers, lines) = invoke(
        &api,
        &captured,
        &events,
        lambda_runtime::run(service_fn(|event: LambdaEvent<_>| {
            eventbridge_handler::handle(event, &deps)
        })),
    )
    .await;
    assert!(answers.iter().all(|a| a.kind == "response"), "{answers:?}");
    assert_eq!(count(&lines, &events[0], "INFO", "queued"), 1, "{lines:#?}");
    assert_eq!(
        count(&lines, &events[1], "INFO", "no rule acts on the topic"),
        1,
        "{lines:#?}"
    );
    assert_eq!(
        count(&lines, &events[2], "ERROR", "dead-lettered"),
        1,
        "{lines:#?}"
    );

    // The processor, on one batch of everything queued: texted, retried, dead-lettered.
    let batch = aws.receive_batch(&queue_url, 60).await;
    assert_eq!(batch.records.len(), 5, "{batch:?}");
    let deps = processor::Deps::new(
        ProcessorConfig::from_env(&Env::from_fn(|k| settings.get(k).cloned()))
            .expect("processor settings"),
        &aws.sdk,
        http_client(),
    )
    .await
    .expect("processor clients");
    let batches = [Invocation::new(
        "processor",
        1,
        serde_json::to_string(&batch).expect("an SQS event"),
    )];
    let (answers, lines) = invoke(
        &api,
        &captured,
        &batches,
        lambda_runtime::run(service_fn(|event: LambdaEvent<_>| {
            processor::handle(event, &deps)
        })),
    )
    .await;
    assert_eq!(answers[0].kind, "response", "{answers:?}");
    assert_eq!(providers.twilio.messages().len(), 1, "the wrap-up texted");
    assert_eq!(
        count(&lines, &batches[0], "INFO", "SMS sent"),
        1,
        "{lines:#?}"
    );
    assert!(
        count(&lines, &batches[0], "WARN", "will retry") >= 1,
        "{lines:#?}"
    );
    assert!(
        count(&lines, &batches[0], "ERROR", "dead-lettered") >= 1,
        "{lines:#?}"
    );
    assert_eq!(levels(&lines), ["ERROR", "INFO", "WARN"]);
    // A record's lines also name the trace it was queued under: the receiver's, here.
    let queued_under = |line: &Value| {
        line["spans"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|span| span["trace"] == requests[0].trace_id.as_str())
    };
    assert!(lines.values().flatten().any(queued_under), "{lines:#?}");
}

/// Puts on the main queue what the processor gets besides the functions' events: a wrap-up that
/// texts the customer, a status callback for a message not recorded (retried), and a message
/// that is no event (dead-lettered).
async fn queue_other_work(aws: &LocalAws, queue_url: &str) {
    let sender = QueueSender::new(aws.sqs(), queue_url.to_owned(), None, 240 * 1024);
    let envelope = |key: &str, source, content_type| Envelope {
        event_key: EventKey::from_parts(&[key]),
        source,
        received_at: OffsetDateTime::now_utc(),
        content_type,
        correlation_id: None,
        group_id: key.to_owned(),
    };
    let wrapup = json!({
        "topicName": "v2.detail.events.conversation.c1.acw",
        "eventBody": {"conversationId": "c1", "participantId": "p-c1",
                      "wrapupCode": "ININ-OUTBOUND-NO-ANSWER", "addressTo": format!("tel:{CUSTOMER}")},
        "contact": {"firstName": "Ada"}
    });
    sender
        .send(
            &envelope("c1", Source::GenesysWebhook, MediaType::Json),
            wrapup.to_string(),
        )
        .await
        .expect("queued");
    sender
        .send(
            &envelope("SM0000:delivered", Source::TwilioStatus, MediaType::Form),
            format!(
                "MessageSid=SM00000000000000000000000000000000&MessageStatus=delivered&AccountSid={TWILIO_ACCOUNT}&To=%2B14158675309"
            ),
        )
        .await
        .expect("queued");
    aws.sqs()
        .send_message()
        .queue_url(queue_url)
        .message_body("no event")
        .send()
        .await
        .expect("queued");
}

//! `relay send` against a local server that records what it receives: every scheme's signature is
//! checked with signers written independently of the product's (`relay_tests::sign`) and with the
//! receiver's own verifier, and the secret never shows in what the command prints.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use clap::Parser;
use genesys_relay::inbound::auth::{Bearer, HmacHeader, Keys, Scheme, SignedRequest};
use relay_cli::send;
use relay_tests::fakes::server::{self, Served};
use relay_tests::sign;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const HMAC_SECRET: &str = "test-webhook-secret";
const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const TWILIO_TOKEN: &str = "test-auth-token";

/// One request as the server received it.
#[derive(Debug, Clone)]
struct Received {
    method: String,
    path_and_query: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Runs the receiver's own verification of this request as sent to `url`.
    fn verify(&self, scheme: &Scheme, url: &str, secret: &str) -> bool {
        let request = SignedRequest {
            url,
            headers: &self.headers,
            body: &self.body,
        };
        scheme
            .verify(&request, &Keys::from_secrets([secret]), SystemTime::now())
            .is_ok()
    }
}

type Log = Arc<Mutex<Vec<Received>>>;

/// A local server answering 200 `{"accepted":true}`, 500 on `/fail`, and echoing the request's
/// `Authorization` on `/echo`.
struct Recorder {
    base: String,
    log: Log,
    _served: Served,
}

impl Recorder {
    async fn start() -> Self {
        let (listener, port) = server::bind().await;
        let log: Log = Arc::default();
        let app = axum::Router::new()
            .fallback(record)
            .with_state(Arc::clone(&log));
        let served = server::serve(listener, port, app);
        Self {
            base: served.base_url.clone(),
            log,
            _served: served,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn received(&self) -> Vec<Received> {
        self.log.lock().unwrap().clone()
    }

    fn only(&self) -> Received {
        let received = self.received();
        assert_eq!(received.len(), 1, "{received:?}");
        received[0].clone()
    }
}

async fn record(State(log): State<Log>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body: Bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let received = Received {
        method: parts.method.to_string(),
        path_and_query: parts
            .uri
            .path_and_query()
            .map_or_else(String::new, |p| p.to_string()),
        headers: parts.headers.clone(),
        body: body.to_vec(),
    };
    log.lock().unwrap().push(received);
    match parts.uri.path() {
        "/fail" => (StatusCode::INTERNAL_SERVER_ERROR, "boom: queue unavailable").into_response(),
        "/echo" => {
            let auth = parts
                .headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            (StatusCode::UNAUTHORIZED, format!("refused {auth}")).into_response()
        }
        _ => axum::Json(json!({"accepted": true})).into_response(),
    }
}

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: send::Args,
}

fn args(list: &[&str]) -> send::Args {
    let argv = std::iter::once("relay-send").chain(list.iter().copied());
    Cli::try_parse_from(argv).expect("valid arguments").args
}

/// A file holding `content`, unique to this call.
fn file(content: &[u8]) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("relay-send-{}-{n}.body", std::process::id()));
    std::fs::write(&path, content).unwrap();
    path
}

fn event_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../events")
        .join(name)
}

fn event(name: &str) -> Value {
    serde_json::from_str(&relay_tests::sample_event(name)).unwrap()
}

const JSON_BODY: &str = r#"{"topicName":"v2.detail.events.conversation.c1.acw","eventBody":{"wrapupCode":"ININ-OUTBOUND-NO-ANSWER"}}"#;

/// Sends with `extra` arguments and returns the report, checking that the secret is absent.
async fn send_ok(
    url: &str,
    body: &Path,
    extra: &[&str],
    secret: &str,
) -> relay_cli::output::Report {
    let mut list = vec!["--url", url, "--file", body.to_str().unwrap()];
    list.extend_from_slice(extra);
    let report = send::run(args(&list)).await.expect("the send succeeds");
    assert_secret_absent(&format!("{:?} {}", report.text, report.json), secret);
    report
}

fn assert_secret_absent(shown: &str, secret: &str) {
    assert!(!shown.contains(secret), "the secret shows in: {shown}");
    assert!(
        !shown.contains(&STANDARD.encode(secret)),
        "the secret's base64 shows in: {shown}"
    );
}

#[tokio::test]
async fn hmac_signs_the_body_as_genesys_open_messaging_does() {
    let server = Recorder::start().await;
    let url = server.url("/webhooks/genesys");
    let body = file(JSON_BODY.as_bytes());
    let report = send_ok(&url, &body, &["--secret", HMAC_SECRET], HMAC_SECRET).await;

    let got = server.only();
    assert_eq!(got.method, "POST");
    assert_eq!(got.path_and_query, "/webhooks/genesys");
    assert_eq!(got.body, JSON_BODY.as_bytes());
    assert_eq!(got.header("content-type"), Some("application/json"));
    assert_eq!(
        got.header("x-hub-signature-256"),
        Some(sign::hub_signature(HMAC_SECRET, JSON_BODY).as_str())
    );
    let receiver = Scheme::HmacHeader(HmacHeader::genesys_open_messaging());
    assert!(got.verify(&receiver, &url, HMAC_SECRET));
    assert!(!got.verify(&receiver, &url, "another-secret"));

    assert_eq!(report.json["status"], 200);
    assert_eq!(report.json["scheme"], "hmac");
    assert_eq!(report.json["response"], r#"{"accepted":true}"#);
    assert!(report.text.iter().any(|line| line.contains("HTTP 200")));
}

#[tokio::test]
async fn hmac_header_encoding_and_prefix_can_be_chosen() {
    let server = Recorder::start().await;
    let url = server.url("/hooks");
    let body = file(JSON_BODY.as_bytes());
    let extra = [
        "--secret",
        HMAC_SECRET,
        "--hmac-header",
        "X-Signature",
        "--hmac-encoding",
        "hex",
        "--hmac-prefix",
        "",
    ];
    send_ok(&url, &body, &extra, HMAC_SECRET).await;

    let got = server.only();
    let base64_form = sign::hub_signature(HMAC_SECRET, JSON_BODY);
    let digest = STANDARD
        .decode(base64_form.trim_start_matches("sha256="))
        .unwrap();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(got.header("x-signature"), Some(hex.as_str()));
    assert!(got.header("x-hub-signature-256").is_none());
}

#[tokio::test]
async fn standard_webhooks_signs_a_fresh_id_and_timestamp() {
    let server = Recorder::start().await;
    let url = server.url("/sw");
    let body = file(JSON_BODY.as_bytes());
    send_ok(
        &url,
        &body,
        &["--scheme", "standard-webhooks", "--secret", WHSEC],
        WHSEC,
    )
    .await;

    let got = server.only();
    let id = got.header("webhook-id").unwrap().to_owned();
    assert!(id.starts_with("msg_") && id.len() > 10, "{id}");
    let timestamp: i64 = got.header("webhook-timestamp").unwrap().parse().unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((now - timestamp).abs() <= 60, "{timestamp} vs {now}");
    assert_eq!(
        got.header("webhook-signature"),
        Some(sign::standard_webhooks(WHSEC, &id, timestamp, JSON_BODY).as_str())
    );
    assert!(got.verify(&Scheme::StandardWebhooks, &url, WHSEC));
}

#[tokio::test]
async fn standard_webhooks_uses_a_given_id_and_refuses_a_bad_secret() {
    let server = Recorder::start().await;
    let url = server.url("/sw");
    let body = file(JSON_BODY.as_bytes());
    let extra = [
        "--scheme",
        "standard-webhooks",
        "--secret",
        WHSEC,
        "--webhook-id",
        "msg_fixed",
    ];
    send_ok(&url, &body, &extra, WHSEC).await;
    assert_eq!(server.only().header("webhook-id"), Some("msg_fixed"));

    let bad = "whsec_not*base64";
    let list = [
        "--url",
        &url,
        "--file",
        body.to_str().unwrap(),
        "--scheme",
        "standard-webhooks",
        "--secret",
        bad,
    ];
    let error = send::run(args(&list)).await.unwrap_err().to_string();
    assert!(error.contains("whsec_"), "{error}");
    assert!(!error.contains(bad), "{error}");
    assert_eq!(server.received().len(), 1, "nothing more was sent");
}

#[tokio::test]
async fn basic_sends_user_and_password() {
    let server = Recorder::start().await;
    let url = server.url("/da");
    let body = file(JSON_BODY.as_bytes());
    let secret = "relay:s3cret-pass";
    send_ok(
        &url,
        &body,
        &["--scheme", "basic", "--secret", secret],
        secret,
    )
    .await;

    let got = server.only();
    let expected = format!("Basic {}", STANDARD.encode(secret));
    assert_eq!(got.header("authorization"), Some(expected.as_str()));
    assert!(got.verify(&Scheme::Basic, &url, secret));

    let list = [
        "--url",
        &url,
        "--file",
        body.to_str().unwrap(),
        "--scheme",
        "basic",
        "--secret",
        "no-colon-here",
    ];
    let error = send::run(args(&list)).await.unwrap_err().to_string();
    assert!(error.contains("user:password"), "{error}");
    assert!(!error.contains("no-colon-here"), "{error}");
}

#[tokio::test]
async fn bearer_sends_the_token() {
    let server = Recorder::start().await;
    let url = server.url("/da");
    let body = file(JSON_BODY.as_bytes());
    let token = "tok-0123456789";
    send_ok(
        &url,
        &body,
        &["--scheme", "bearer", "--secret", token],
        token,
    )
    .await;

    let got = server.only();
    let expected = format!("Bearer {token}");
    assert_eq!(got.header("authorization"), Some(expected.as_str()));
    assert!(got.verify(&Scheme::Bearer(Bearer::authorization()), &url, token));
}

#[tokio::test]
async fn twilio_signs_the_full_url_and_the_sorted_form_parameters() {
    let server = Recorder::start().await;
    let url = server.url("/webhooks/twilio/status?route=sms&x=1");
    let event_file = event_path("receiver-twilio-status.json");
    let report = send_ok(
        &url,
        &event_file,
        &["--scheme", "twilio", "--secret", TWILIO_TOKEN],
        TWILIO_TOKEN,
    )
    .await;
    assert_eq!(report.json["from_event"], true);

    let got = server.only();
    assert_eq!(got.path_and_query, "/webhooks/twilio/status?route=sms&x=1");
    let expected_body = event("receiver-twilio-status.json")["body"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(got.body, expected_body.as_bytes());
    assert_eq!(
        got.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    let params: Vec<(String, String)> = form_urlencoded::parse(&got.body).into_owned().collect();
    assert!(params.len() > 5);
    let pairs: Vec<(&str, &str)> = params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        got.header("x-twilio-signature"),
        Some(sign::twilio(TWILIO_TOKEN, &url, &pairs).as_str())
    );
    assert!(got.verify(&Scheme::Twilio, &url, TWILIO_TOKEN));
    assert!(!got.verify(
        &Scheme::Twilio,
        &server.url("/webhooks/twilio/status"),
        TWILIO_TOKEN
    ));
}

#[tokio::test]
async fn twilio_with_a_json_body_signs_its_digest_in_the_url() {
    let server = Recorder::start().await;
    let url = server.url("/webhooks/twilio/events");
    let body = file(JSON_BODY.as_bytes());
    let extra = [
        "--scheme",
        "twilio",
        "--secret",
        TWILIO_TOKEN,
        "--content-type",
        "application/json",
    ];
    send_ok(&url, &body, &extra, TWILIO_TOKEN).await;

    let got = server.only();
    let digest: String = Sha256::digest(JSON_BODY.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let called = format!("{url}?bodySHA256={digest}");
    assert_eq!(
        got.path_and_query,
        format!("/webhooks/twilio/events?bodySHA256={digest}")
    );
    assert_eq!(
        got.header("x-twilio-signature"),
        Some(sign::twilio(TWILIO_TOKEN, &called, &[]).as_str())
    );
    assert!(got.verify(&Scheme::Twilio, &called, TWILIO_TOKEN));
}

#[tokio::test]
async fn none_sends_no_authentication_but_the_extra_headers() {
    let server = Recorder::start().await;
    let url = server.url("/open");
    let body = file(b"plain text body");
    let extra = [
        "--scheme",
        "none",
        "--content-type",
        "text/plain",
        "--header",
        "X-Relay-Test: one",
        "--header",
        "X-Other:two",
    ];
    send_ok(&url, &body, &extra, "unused").await;

    let got = server.only();
    assert_eq!(got.body, b"plain text body");
    assert_eq!(got.header("content-type"), Some("text/plain"));
    assert_eq!(got.header("x-relay-test"), Some("one"));
    assert_eq!(got.header("x-other"), Some("two"));
    for name in [
        "authorization",
        "x-hub-signature-256",
        "webhook-signature",
        "x-twilio-signature",
    ] {
        assert!(got.header(name).is_none(), "{name}");
    }
}

#[tokio::test]
async fn an_api_gateway_event_sends_its_body_with_its_content_type() {
    let server = Recorder::start().await;
    let url = server.url("/webhooks/genesys");
    let sample = event("receiver-genesys-webhook.json");
    let report = send_ok(
        &url,
        &event_path("receiver-genesys-webhook.json"),
        &["--secret", HMAC_SECRET],
        HMAC_SECRET,
    )
    .await;
    assert_eq!(report.json["from_event"], true);

    let got = server.only();
    assert_eq!(got.body, sample["body"].as_str().unwrap().as_bytes());
    assert_eq!(got.header("content-type"), Some("application/json"));
    // The sample was signed by Genesys' scheme with the documented test secret: same bytes, same
    // signature.
    assert_eq!(
        got.header("x-hub-signature-256"),
        sample["headers"]["x-hub-signature-256"].as_str()
    );
}

#[tokio::test]
async fn a_base64_encoded_event_body_is_decoded() {
    let server = Recorder::start().await;
    let event = json!({
        "requestContext": {"requestId": "r"},
        "headers": {"Content-Type": "application/json"},
        "body": STANDARD.encode(JSON_BODY),
        "isBase64Encoded": true,
    });
    let body = file(event.to_string().as_bytes());
    send_ok(
        &server.url("/x"),
        &body,
        &["--secret", HMAC_SECRET],
        HMAC_SECRET,
    )
    .await;
    let got = server.only();
    assert_eq!(got.body, JSON_BODY.as_bytes());
    assert_eq!(
        got.header("x-hub-signature-256"),
        Some(sign::hub_signature(HMAC_SECRET, JSON_BODY).as_str())
    );
}

#[tokio::test]
async fn a_non_2xx_answer_is_an_error_with_the_status_and_the_answer() {
    let server = Recorder::start().await;
    let body = file(JSON_BODY.as_bytes());
    let url = server.url("/fail");
    let list = [
        "--url",
        &url,
        "--file",
        body.to_str().unwrap(),
        "--secret",
        HMAC_SECRET,
    ];
    let error = format!("{:#}", send::run(args(&list)).await.unwrap_err());
    assert!(error.contains("HTTP 500"), "{error}");
    assert!(error.contains("boom: queue unavailable"), "{error}");
    assert_secret_absent(&error, HMAC_SECRET);
    assert_eq!(server.received().len(), 1);
}

#[tokio::test]
async fn an_answer_echoing_the_credentials_is_scrubbed() {
    let server = Recorder::start().await;
    let body = file(JSON_BODY.as_bytes());
    let url = server.url("/echo");
    let secret = "relay:echoed-password";
    let list = [
        "--url",
        &url,
        "--file",
        body.to_str().unwrap(),
        "--scheme",
        "basic",
        "--secret",
        secret,
    ];
    let error = format!("{:#}", send::run(args(&list)).await.unwrap_err());
    assert!(error.contains("HTTP 401"), "{error}");
    assert!(error.contains("refused Basic [redacted]"), "{error}");
    assert_secret_absent(&error, secret);
}

#[tokio::test]
async fn a_scheme_without_a_secret_is_refused_before_sending() {
    let server = Recorder::start().await;
    let body = file(JSON_BODY.as_bytes());
    let url = server.url("/x");
    let error = send::run(args(&["--url", &url, "--file", body.to_str().unwrap()]))
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("--secret-env"), "{error}");

    let missing = "RELAY_SEND_TEST_SURELY_UNSET_VARIABLE";
    let list = [
        "--url",
        &url,
        "--file",
        body.to_str().unwrap(),
        "--secret-env",
        missing,
    ];
    let error = send::run(args(&list)).await.unwrap_err().to_string();
    assert!(error.contains(missing), "{error}");
    assert!(server.received().is_empty());
}

#[tokio::test]
async fn headers_that_would_contradict_the_signature_are_refused() {
    let server = Recorder::start().await;
    let body = file(JSON_BODY.as_bytes());
    let url = server.url("/x");
    for header in [
        "X-Hub-Signature-256: forged",
        "Content-Type: text/plain",
        "no-colon",
    ] {
        let list = [
            "--url",
            &url,
            "--file",
            body.to_str().unwrap(),
            "--secret",
            HMAC_SECRET,
            "--header",
            header,
        ];
        assert!(send::run(args(&list)).await.is_err(), "{header}");
    }
    assert!(server.received().is_empty());
}

/// Runs the `relay` binary without blocking the runtime that serves the recorder.
async fn relay(argv: Vec<String>, env: Vec<(&'static str, String)>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_relay"))
            .args(&argv)
            .envs(env)
            .output()
            .expect("the relay binary runs")
    })
    .await
    .unwrap()
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_sends_the_sample_event_and_its_signature_verifies() {
    let server = Recorder::start().await;
    let url = server.url("/webhooks/genesys");
    let file = event_path("receiver-genesys-webhook.json");
    let argv = strings(&[
        "send",
        "--url",
        &url,
        "--file",
        file.to_str().unwrap(),
        "--secret",
        HMAC_SECRET,
    ]);
    let output = relay(argv.clone(), vec![]).await;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("HTTP 200"), "{stdout}");
    assert_secret_absent(&stdout, HMAC_SECRET);
    assert_secret_absent(&stderr, HMAC_SECRET);

    let got = server.only();
    let body = event("receiver-genesys-webhook.json")["body"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(got.body, body.as_bytes());
    assert_eq!(
        got.header("x-hub-signature-256"),
        Some(sign::hub_signature(HMAC_SECRET, &body).as_str())
    );
    let receiver = Scheme::HmacHeader(HmacHeader::genesys_open_messaging());
    assert!(got.verify(&receiver, &url, HMAC_SECRET));

    let mut json_argv = argv;
    json_argv.push("--json".into());
    let output = relay(json_argv, vec![]).await;
    assert!(output.status.success());
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["status"], 200);
    assert_eq!(report["from_event"], true);
    assert_secret_absent(&report.to_string(), HMAC_SECRET);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_exits_1_on_a_non_2xx_answer() {
    let server = Recorder::start().await;
    let url = server.url("/fail");
    let body = file(JSON_BODY.as_bytes());
    let argv = strings(&[
        "send",
        "--url",
        &url,
        "--file",
        body.to_str().unwrap(),
        "--secret-env",
        "RELAY_TEST_WEBHOOK_SECRET",
    ]);
    let env = vec![("RELAY_TEST_WEBHOOK_SECRET", HMAC_SECRET.to_owned())];
    let output = relay(argv, env).await;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("HTTP 500"), "{stderr}");
    assert_secret_absent(&stdout, HMAC_SECRET);
    assert_secret_absent(&stderr, HMAC_SECRET);
    // The secret came from the environment and signed the body.
    assert_eq!(
        server.only().header("x-hub-signature-256"),
        Some(sign::hub_signature(HMAC_SECRET, JSON_BODY).as_str())
    );
}

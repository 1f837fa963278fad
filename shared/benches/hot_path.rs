//! The receiver's per-request CPU work, without network I/O, against the floor it cannot beat.
//!
//! For Genesys-like JSON bodies of 1 KB, 16 KB and 200 KB (generated deterministically), each
//! size is measured two ways in one criterion group, so the report shows them side by side:
//! - `baseline`: HMAC-SHA256 of the body with the `hmac` and `sha2` crates directly, plus
//!   `serde_json::from_slice::<Value>`: the least any authenticated JSON webhook costs;
//! - `hot_path`: what `functions/receiver/src/webhook.rs` does per request once the body is in
//!   memory: the UTF-8 check, `Scheme::HmacHeader(HmacHeader::genesys_open_messaging()).verify`,
//!   the JSON parse, the event key (`EventKeyRule::derive`), the correlation and conversation ids,
//!   the envelope, the body copy handed to the queue and `queue::encode`.
//!
//! Left out: the content-type and size checks (a header lookup and a length compare), the cached
//! secret lookup, and the SQS/S3 calls themselves.
//!
//! After criterion's report, the bench prints one line per size with the median time of each and
//! their ratio (target: hot path at most 2x baseline), measured again with `std::time::Instant`
//! over interleaved samples so the figure is visible without reading criterion's files.
//!
//! Run: `cargo bench -p genesys-relay --bench hot_path`.

use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime};

use criterion::{BenchmarkId, Criterion, Throughput};
use genesys_relay::inbound::auth::{HmacHeader, Keys, Scheme, SignedRequest};
use genesys_relay::inbound::event::{self, EventKeyRule};
use genesys_relay::inbound::queue::{self, Envelope, MediaType, Payload, Source};
use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderValue};
use serde_json::{json, Value};
use sha2::Sha256;
use time::OffsetDateTime;

/// The webhook secret the bodies are signed with.
const SECRET: &str = "bench-webhook-secret";
/// The URL the sender called (the HMAC scheme does not sign it; the request carries it anyway).
const URL: &str = "https://relay.example.com/webhooks/genesys";
/// `EVENT_KEY_POINTERS` as a deployment would set it.
const EVENT_KEY_POINTERS: &str = "/eventBody/conversationId,/eventBody/eventTime";
/// Body sizes: a small notification, a conversation with a long history, and one just under the
/// default claim-check threshold (240 KB), so it still goes inline.
const SIZES: [(&str, usize); 3] = [("1KB", 1024), ("16KB", 16 * 1024), ("200KB", 200 * 1024)];
/// The target from the issue: the hot path costs at most this many baselines.
const TARGET_RATIO: f64 = 2.0;

/// A deterministic xorshift64 generator, so every run benchmarks the same bytes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A UUID-shaped id, as Genesys uses for conversations, participants and users.
    fn uuid(&mut self) -> String {
        let (a, b) = (self.next(), self.next());
        format!(
            "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            b >> 52,
            b & 0xffff_ffff_ffff
        )
    }

    /// An E.164 US number.
    fn phone(&mut self) -> String {
        format!("+1415{:07}", self.next() % 10_000_000)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }

    /// Free text of exactly `len` bytes (plain ASCII words, nothing JSON must escape), like an
    /// agent's wrap-up notes.
    fn notes(&mut self, len: usize) -> String {
        const WORDS: &[&str] = &[
            "customer",
            "asked",
            "about",
            "the",
            "invoice",
            "call",
            "back",
            "tomorrow",
            "no",
            "answer",
            "left",
            "voicemail",
            "account",
            "updated",
            "follow",
            "up",
            "by",
            "SMS",
        ];
        let mut text = String::with_capacity(len + 16);
        while text.len() < len {
            text.push_str(self.pick(WORDS));
            text.push(' ');
        }
        text.truncate(len);
        text
    }
}

/// One participant of a conversation, shaped like the participants of a Genesys conversation
/// detail event: ids, purpose, addresses, times, attributes and sessions with segments.
fn participant(rng: &mut Rng, index: u64) -> Value {
    let start = 1_700_000_000_000_u64 + index * 7_919;
    let purpose = rng.pick(&["customer", "agent", "acd", "ivr", "outbound"]);
    json!({
        "participantId": rng.uuid(),
        "participantName": rng.pick(&["Ada Lovelace", "Grace Hopper", "Alan Turing", "Outbound Campaign"]),
        "purpose": purpose,
        "userId": rng.uuid(),
        "externalContactId": rng.uuid(),
        "ani": format!("tel:{}", rng.phone()),
        "dnis": format!("tel:{}", rng.phone()),
        "attributes": {
            "contact.firstName": rng.pick(&["Ada", "Grace", "Alan", "Edsger"]),
            "contact.accountNumber": format!("{:010}", rng.next() % 10_000_000_000),
            "dialerContactListId": rng.uuid(),
        },
        "sessions": [{
            "sessionId": rng.uuid(),
            "mediaType": rng.pick(&["voice", "message", "callback"]),
            "direction": rng.pick(&["inbound", "outbound"]),
            "provider": "Edge",
            "segments": [
                {"segmentType": "dialing", "segmentStart": start, "segmentEnd": start + 4_000, "disconnectType": null},
                {"segmentType": "interact", "segmentStart": start + 4_000, "segmentEnd": start + 95_000,
                 "queueId": rng.uuid(), "wrapUpCode": rng.pick(&["ININ-OUTBOUND-NO-ANSWER", "ININ-OUTBOUND-BUSY", "ININ-WRAP-UP-TIMEOUT"]),
                 "disconnectType": rng.pick(&["client", "endpoint", "peer"])}
            ]
        }]
    })
}

/// A Genesys `.acw` detail event of exactly `target` bytes: the event itself, padded with
/// participants until one more would pass `target`, then wrap-up notes for the bytes left. The
/// same `target` always gives the same bytes.
fn genesys_body(target: usize) -> String {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ target as u64);
    let conversation = rng.uuid();
    let mut detail = json!({
        "topicName": format!("v2.detail.events.conversation.{conversation}.acw"),
        "version": "2",
        "eventBody": {
            "eventTime": 1_700_000_123_456_u64,
            "conversationId": conversation,
            "participantId": rng.uuid(),
            "communicationId": rng.uuid(),
            "queueId": rng.uuid(),
            "userId": rng.uuid(),
            "wrapupCode": "ININ-OUTBOUND-NO-ANSWER",
            "wrapupDurationMs": 8_500,
            "addressTo": format!("tel:{}", rng.phone()),
            "outboundCampaignId": rng.uuid(),
            "divisionId": rng.uuid(),
            "wrapupNotes": "",
            "participants": []
        },
        "metadata": {"CorrelationId": rng.uuid()},
        "timestamp": "2023-11-14T22:15:23.456Z"
    });
    let mut body = detail.to_string();
    for index in 0.. {
        let mut grown = detail.clone();
        if let Some(list) = grown["eventBody"]["participants"].as_array_mut() {
            list.push(participant(&mut rng, index));
        }
        let text = grown.to_string();
        if text.len() > target {
            break;
        }
        detail = grown;
        body = text;
    }
    if let Some(missing) = target.checked_sub(body.len()) {
        detail["eventBody"]["wrapupNotes"] = rng.notes(missing).into();
        body = detail.to_string();
    }
    assert_eq!(body.len(), target, "body of the requested size");
    body
}

/// One request as the receiver holds it once API Gateway delivered it.
struct Request {
    body: Vec<u8>,
    headers: HeaderMap,
}

impl Request {
    fn new(target: usize) -> Self {
        let body = genesys_body(target).into_bytes();
        let signature = HmacHeader::genesys_open_messaging().sign(SECRET.as_bytes(), &body);
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(
            "x-hub-signature-256",
            HeaderValue::from_str(&signature).expect("a visible-ASCII signature"),
        );
        Self { body, headers }
    }
}

/// What stays the same from one request to the next (built at cold start in the receiver).
struct Receiver {
    scheme: Scheme,
    keys: Keys,
    rule: EventKeyRule,
}

impl Receiver {
    fn new() -> Self {
        Self {
            scheme: Scheme::HmacHeader(HmacHeader::genesys_open_messaging()),
            keys: Keys::from_secrets([SECRET]),
            rule: EventKeyRule::parse(EVENT_KEY_POINTERS).expect("valid pointers"),
        }
    }

    /// The receiver's work for one Genesys webhook, up to the SQS message it would send.
    fn hot_path(&self, request: &Request) -> (String, usize) {
        let text = std::str::from_utf8(&request.body).expect("UTF-8 body");
        let signed = SignedRequest {
            url: URL,
            headers: &request.headers,
            body: &request.body,
        };
        self.scheme
            .verify(&signed, &self.keys, SystemTime::now())
            .expect("authentic request");
        let body: Value = serde_json::from_str(text).expect("JSON body");
        let webhook_id = request
            .headers
            .get("webhook-id")
            .and_then(|v| v.to_str().ok());
        let event_key = self.rule.derive(&body, webhook_id, text.as_bytes());
        let envelope = Envelope {
            group_id: event::conversation_id(&body)
                .map(str::to_owned)
                .unwrap_or_else(|| event_key.as_str().to_owned()),
            event_key,
            source: Source::GenesysWebhook,
            received_at: OffsetDateTime::now_utc(),
            content_type: MediaType::Json,
            correlation_id: event::correlation_id(&body).map(str::to_owned),
        };
        let (message, attributes) =
            queue::encode(&envelope, &Payload::Inline(text.to_owned())).expect("encodable");
        (message, attributes.len())
    }
}

/// The floor: HMAC-SHA256 over the body and a JSON parse, nothing else.
fn baseline(body: &[u8]) -> (Vec<u8>, Value) {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("any key length");
    mac.update(body);
    let digest = mac.finalize().into_bytes().to_vec();
    let parsed = serde_json::from_slice::<Value>(body).expect("JSON body");
    (digest, parsed)
}

fn criterion_groups(c: &mut Criterion, receiver: &Receiver, requests: &[(&str, Request)]) {
    for (label, request) in requests {
        let mut group = c.benchmark_group(format!("receiver/{label}"));
        group.throughput(Throughput::Bytes(request.body.len() as u64));
        group.bench_with_input(
            BenchmarkId::new("baseline", request.body.len()),
            request,
            |b, request| b.iter(|| baseline(black_box(&request.body))),
        );
        group.bench_with_input(
            BenchmarkId::new("hot_path", request.body.len()),
            request,
            |b, request| b.iter(|| receiver.hot_path(black_box(request))),
        );
        group.finish();
    }
}

/// Median time per call of `f`, over `samples` samples of `iterations` calls each; the two
/// closures alternate sample by sample so that drift in the machine's speed hits both alike.
fn interleaved_medians(
    samples: usize,
    iterations: u32,
    mut a: impl FnMut(),
    mut b: impl FnMut(),
) -> (Duration, Duration) {
    let time = |f: &mut dyn FnMut()| {
        let start = Instant::now();
        for _ in 0..iterations {
            f();
        }
        start.elapsed() / iterations
    };
    let (mut first, mut second) = (Vec::new(), Vec::new());
    for _ in 0..samples {
        first.push(time(&mut a));
        second.push(time(&mut b));
    }
    first.sort();
    second.sort();
    (first[samples / 2], second[samples / 2])
}

/// Prints, per size, the median of each and the ratio against the target.
fn print_ratios(receiver: &Receiver, requests: &[(&str, Request)]) {
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into());
    println!();
    println!(
        "hot path / baseline (medians of 21 interleaved samples of about 100 ms each; load average {load}):"
    );
    for (label, request) in requests {
        // Calibrate so one sample of the baseline takes about 100 ms.
        let start = Instant::now();
        let mut calls = 0_u32;
        while start.elapsed() < Duration::from_millis(50) {
            black_box(baseline(black_box(&request.body)));
            calls += 1;
        }
        let iterations = (calls * 2).max(1);
        let (base, hot) = interleaved_medians(
            21,
            iterations,
            || {
                black_box(baseline(black_box(&request.body)));
            },
            || {
                black_box(receiver.hot_path(black_box(request)));
            },
        );
        let ratio = hot.as_secs_f64() / base.as_secs_f64();
        let verdict = if ratio <= TARGET_RATIO {
            "met"
        } else {
            "NOT met"
        };
        println!(
            "receiver {label:>5} ({} bytes): baseline {:.2} us, hot path {:.2} us, ratio {ratio:.2} (target <= {TARGET_RATIO}: {verdict})",
            request.body.len(),
            base.as_secs_f64() * 1e6,
            hot.as_secs_f64() * 1e6,
        );
    }
}

fn main() {
    let receiver = Receiver::new();
    let requests: Vec<(&str, Request)> = SIZES
        .iter()
        .map(|(label, size)| (*label, Request::new(*size)))
        .collect();
    // Both paths must accept every body before anything is timed.
    for (_, request) in &requests {
        baseline(&request.body);
        receiver.hot_path(request);
    }

    let mut c = Criterion::default().configure_from_args();
    criterion_groups(&mut c, &receiver, &requests);
    c.final_summary();

    // `cargo bench` passes `--bench`; `cargo test --benches` and `--list` do not, and only want
    // each benchmark checked once, which criterion did above.
    if std::env::args().any(|arg| arg == "--bench") {
        print_ratios(&receiver, &requests);
    }
}

//! The receiver against a local AWS: what is stored, and what is refused without storing anything.

use std::collections::HashMap;

use genesys_relay::config::{Env, ReceiverConfig};
use genesys_relay::inbound::queue::{attr, ClaimCheck};
use lambda_http::{Body, Response};
use receiver::{handle, Deps};
use relay_tests::{attribute, http_api_request, sample_event, sign, test_secrets, LocalAws};
use serde_json::{json, Value};

struct Stack {
    aws: LocalAws,
    queue_url: String,
    deps: Deps,
}

const BUCKET: &str = "claim-checks-test";

async fn stack(queue_name: &str, genesys_secret: &str, settings: &[(&str, &str)]) -> Stack {
    let aws = LocalAws::start().await;
    let queue_url = aws.queue(queue_name).await;
    aws.bucket(BUCKET).await;
    let genesys_arn = aws.secret("genesys-webhook", genesys_secret).await;
    let twilio_arn = aws
        .secret(
            "twilio",
            &json!({"accountSid": "AC0123", "authToken": test_secrets::TWILIO_AUTH_TOKEN})
                .to_string(),
        )
        .await;
    let env: HashMap<String, String> = [
        ("QUEUE_URL", queue_url.as_str()),
        ("CLAIM_CHECK_BUCKET", BUCKET),
        ("GENESYS_WEBHOOK_SECRET_ARN", genesys_arn.as_str()),
        ("TWILIO_SECRET_ARN", twilio_arn.as_str()),
    ]
    .into_iter()
    .chain(settings.iter().copied())
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let config = ReceiverConfig::from_env(&Env::from_fn(move |k| env.get(k).cloned()))
        .expect("valid settings");
    let deps = Deps::new(config, &aws.sdk);
    Stack {
        aws,
        queue_url,
        deps,
    }
}

async fn default_stack() -> Stack {
    stack("main", test_secrets::GENESYS_WEBHOOK, &[]).await
}

fn body_json(response: &Response<Body>) -> Value {
    match response.body() {
        Body::Text(text) => serde_json::from_str(text).expect("JSON body"),
        other => panic!("expected a text body, got {other:?}"),
    }
}

fn error_code(response: &Response<Body>) -> String {
    let body = body_json(response);
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    body["error"]["code"]
        .as_str()
        .expect("error.code")
        .to_owned()
}

fn genesys_post(body: &str) -> lambda_http::Request {
    let signature = sign::hub_signature(test_secrets::GENESYS_WEBHOOK, body);
    http_api_request(
        "POST",
        "/webhooks/genesys",
        &[
            ("content-type", "application/json"),
            ("x-hub-signature-256", &signature),
        ],
        body,
    )
}

#[tokio::test]
async fn a_signed_genesys_webhook_is_queued_with_its_attributes() {
    let stack = stack(
        "main",
        test_secrets::GENESYS_WEBHOOK,
        &[(
            "EVENT_KEY_POINTERS",
            "/eventBody/conversationId,/eventBody/eventTime",
        )],
    )
    .await;
    let event = sample_event("receiver-genesys-webhook.json");
    let request = lambda_http::request::from_str(&event).unwrap();
    let sent_body = serde_json::from_str::<Value>(&event).unwrap()["body"]
        .as_str()
        .unwrap()
        .to_owned();

    let response = handle(request, &stack.deps).await;
    assert_eq!(response.status(), 202);
    let key = "7f1c3a52-8a4b-4c1e-9d2f-0b6e5a1c9e11:1795150799000";
    assert_eq!(
        body_json(&response),
        json!({"id": key, "status": "accepted"})
    );

    let messages = stack.aws.messages(&stack.queue_url).await;
    assert_eq!(messages.len(), 1);
    let message = &messages[0];
    assert_eq!(message.body.as_deref(), Some(sent_body.as_str()));
    assert_eq!(attribute(message, attr::EVENT_KEY).as_deref(), Some(key));
    assert_eq!(
        attribute(message, attr::SOURCE).as_deref(),
        Some("genesys-webhook")
    );
    assert_eq!(
        attribute(message, attr::CONTENT_TYPE).as_deref(),
        Some("application/json")
    );
    assert_eq!(
        attribute(message, attr::CORRELATION_ID).as_deref(),
        Some("7272e4f0-1c2d-4b3a-9e8f-6a5b4c3d2e1f")
    );
    let received_at = attribute(message, attr::RECEIVED_AT).expect("received-at");
    time::OffsetDateTime::parse(&received_at, &time::format_description::well_known::Rfc3339)
        .expect("RFC 3339");
    assert!(attribute(message, attr::CLAIM_CHECK).is_none());
}

#[tokio::test]
async fn every_sample_event_gets_its_documented_answer() {
    let stack = default_stack().await;
    for (file, status) in [
        ("receiver-genesys-webhook.json", 202),
        ("receiver-genesys-bad-signature.json", 401),
        ("receiver-genesys-malformed.json", 400),
        ("receiver-twilio-status.json", 202),
    ] {
        let request = lambda_http::request::from_str(&sample_event(file)).unwrap();
        let response = handle(request, &stack.deps).await;
        assert_eq!(response.status(), status, "{file}: {:?}", response.body());
    }
    let messages = stack.aws.messages(&stack.queue_url).await;
    let sources: Vec<_> = messages
        .iter()
        .filter_map(|m| attribute(m, attr::SOURCE))
        .collect();
    assert_eq!(sources, ["genesys-webhook", "twilio-status"]);
    let twilio = &messages[1];
    assert_eq!(
        attribute(twilio, attr::EVENT_KEY).as_deref(),
        Some("SM0123456789abcdef0123456789abcdef:delivered")
    );
}

#[tokio::test]
async fn refused_requests_get_their_status_and_store_nothing() {
    let stack = stack(
        "main",
        test_secrets::GENESYS_WEBHOOK,
        &[("MAX_BODY_BYTES", "2048")],
    )
    .await;
    let body = r#"{"eventBody":{"conversationId":"c1"}}"#;
    let signature = sign::hub_signature(test_secrets::GENESYS_WEBHOOK, body);
    let big = format!(r#"{{"pad":"{}"}}"#, "x".repeat(4096));
    let cases = [
        (
            http_api_request(
                "POST",
                "/webhooks/genesys",
                &[("content-type", "application/json")],
                body,
            ),
            401,
            "unauthorized",
        ),
        (
            http_api_request(
                "POST",
                "/webhooks/genesys",
                &[
                    ("content-type", "text/plain"),
                    ("x-hub-signature-256", &signature),
                ],
                body,
            ),
            415,
            "unsupported_media_type",
        ),
        (genesys_post(&big), 413, "payload_too_large"),
        (genesys_post("{not json"), 400, "bad_request"),
        (
            genesys_post(r#"{"eventBody":{"conversationId":"c2"}}"#),
            202,
            "",
        ),
        (
            http_api_request("POST", "/webhooks/elsewhere", &[], body),
            404,
            "not_found",
        ),
        (
            http_api_request("GET", "/webhooks/genesys", &[], ""),
            405,
            "method_not_allowed",
        ),
        (
            http_api_request(
                "POST",
                "/webhooks/twilio/status",
                &[("content-type", "application/x-www-form-urlencoded")],
                "MessageSid=SM1&MessageStatus=sent",
            ),
            401,
            "unauthorized",
        ),
    ];
    for (request, status, code) in cases {
        let response = handle(request, &stack.deps).await;
        assert_eq!(response.status(), status, "{:?}", response.body());
        if status != 202 {
            assert_eq!(error_code(&response), code);
            assert_eq!(response.headers()["content-type"], "application/json");
        }
        if status == 405 {
            assert_eq!(response.headers()["allow"], "POST");
        }
    }
    // Only the one valid request was stored.
    assert_eq!(stack.aws.messages(&stack.queue_url).await.len(), 1);
}

#[tokio::test]
async fn a_body_too_large_for_sqs_travels_as_a_claim_check_in_s3() {
    let stack = default_stack().await;
    let body = json!({"eventBody": {"conversationId": "c-large"}, "pad": "y".repeat(300 * 1024)})
        .to_string();
    let response = handle(genesys_post(&body), &stack.deps).await;
    assert_eq!(response.status(), 202, "{:?}", response.body());

    let messages = stack.aws.messages(&stack.queue_url).await;
    assert_eq!(messages.len(), 1);
    assert_eq!(
        attribute(&messages[0], attr::CLAIM_CHECK).as_deref(),
        Some("s3")
    );
    let check: ClaimCheck =
        serde_json::from_str(messages[0].body.as_deref().unwrap()).expect("claim check body");
    assert_eq!(check.bucket, BUCKET);
    assert_eq!(check.size, body.len());
    let object = stack
        .aws
        .s3()
        .get_object()
        .bucket(&check.bucket)
        .key(&check.key)
        .send()
        .await
        .expect("object");
    let stored = object.body.collect().await.unwrap().into_bytes();
    assert_eq!(stored.as_ref(), body.as_bytes());

    // Without a claim-check bucket the same body cannot be carried: 413, and nothing stored.
    let mut settings = stack.deps.config.clone();
    settings.claim_check_bucket = None;
    let without_bucket = Deps::new(settings, &stack.aws.sdk);
    let response = handle(genesys_post(&body), &without_bucket).await;
    assert_eq!(response.status(), 413);
    assert_eq!(error_code(&response), "payload_too_large");
    assert!(stack.aws.messages(&stack.queue_url).await.is_empty());
}

#[tokio::test]
async fn a_queue_that_cannot_take_the_event_is_a_503_with_retry_after() {
    // A queue that does not exist.
    let missing = stack("main", test_secrets::GENESYS_WEBHOOK, &[]).await;
    let mut settings = missing.deps.config.clone();
    settings.queue_url = format!("{}/123456789012/no-such-queue", missing.aws.endpoint);
    let deps = Deps::new(settings, &missing.aws.sdk);
    let response = handle(genesys_post(r#"{"a":1}"#), &deps).await;
    assert_eq!(response.status(), 503);
    assert_eq!(error_code(&response), "unavailable");
    assert!(
        response.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );

    // AWS unreachable after the secret was cached: still 503, never 2xx.
    let mut stack = default_stack().await;
    assert_eq!(
        handle(genesys_post(r#"{"a":1}"#), &stack.deps)
            .await
            .status(),
        202
    );
    stack.aws.stop();
    let response = handle(genesys_post(r#"{"a":2}"#), &stack.deps).await;
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
}

#[tokio::test]
async fn a_fifo_queue_groups_by_conversation_and_dedups_by_event_key() {
    let stack = stack("main.fifo", test_secrets::GENESYS_WEBHOOK, &[]).await;
    let body = r#"{"eventBody":{"conversationId":"conv-42","eventTime":1}}"#;
    let response = handle(genesys_post(body), &stack.deps).await;
    assert_eq!(response.status(), 202);
    let key = body_json(&response)["id"].as_str().unwrap().to_owned();
    assert_eq!(handle(genesys_post(body), &stack.deps).await.status(), 202);

    let messages = stack.aws.messages(&stack.queue_url).await;
    assert_eq!(
        messages.len(),
        1,
        "SQS deduplicated the repeat by the event key"
    );
    let system = messages[0].attributes.as_ref().expect("system attributes");
    use aws_sdk_sqs::types::MessageSystemAttributeName as A;
    assert_eq!(
        system.get(&A::MessageGroupId).map(String::as_str),
        Some("conv-42")
    );
    assert_eq!(system.get(&A::MessageDeduplicationId), Some(&key));
}

#[tokio::test]
async fn a_rotated_secret_takes_effect_without_waiting_for_the_cache() {
    // No grace period: the replaced secret stops working at once (with one, it is accepted for
    // that long; see tests/tests/rotation.rs).
    let stack = stack(
        "main",
        test_secrets::GENESYS_WEBHOOK,
        &[("SECRETS_PREVIOUS_GRACE_SECS", "0")],
    )
    .await;
    assert_eq!(
        handle(genesys_post(r#"{"n":1}"#), &stack.deps)
            .await
            .status(),
        202
    );

    let rotated = "rotated-webhook-secret";
    stack
        .aws
        .secrets()
        .put_secret_value()
        .secret_id("genesys-webhook")
        .secret_string(rotated)
        .send()
        .await
        .expect("rotate");
    let body = r#"{"n":2}"#;
    let signature = sign::hub_signature(rotated, body);
    let request = http_api_request(
        "POST",
        "/webhooks/genesys",
        &[
            ("content-type", "application/json"),
            ("x-hub-signature-256", &signature),
        ],
        body,
    );
    assert_eq!(handle(request, &stack.deps).await.status(), 202);
    // The old secret no longer verifies.
    assert_eq!(
        handle(genesys_post(r#"{"n":3}"#), &stack.deps)
            .await
            .status(),
        401
    );
}

#[tokio::test]
async fn standard_webhooks_use_the_webhook_id_as_the_event_key() {
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let stack = stack(
        "main",
        secret,
        &[("GENESYS_WEBHOOK_AUTH", "standard-webhooks")],
    )
    .await;
    let body = r#"{"eventBody":{"conversationId":"c7"}}"#;
    let send_as = |id: &str, signed_id: &str, timestamp: i64| {
        let signature = sign::standard_webhooks(secret, signed_id, timestamp, body);
        http_api_request(
            "POST",
            "/webhooks/genesys",
            &[
                ("content-type", "application/json"),
                ("webhook-id", id),
                ("webhook-timestamp", &timestamp.to_string()),
                ("webhook-signature", &signature),
            ],
            body,
        )
    };
    let send = |timestamp: i64| {
        send_as(
            "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W",
            "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W",
            timestamp,
        )
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let response = handle(send(now), &stack.deps).await;
    assert_eq!(response.status(), 202);
    assert_eq!(
        body_json(&response)["id"],
        "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"
    );
    assert_eq!(
        handle(send(now - 3600), &stack.deps).await.status(),
        401,
        "a replayed timestamp is refused"
    );
    // The id is signed: another id on the same captured signature is refused, and only a
    // message the sender signed under a new id is a new event.
    assert_eq!(
        handle(
            send_as("msg_forged", "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", now),
            &stack.deps
        )
        .await
        .status(),
        401
    );
    let response = handle(send_as("msg_second", "msg_second", now), &stack.deps).await;
    assert_eq!(response.status(), 202);
    assert_eq!(body_json(&response)["id"], "msg_second");
}

#[tokio::test]
async fn basic_auth_and_rest_api_events_are_served() {
    let stack = stack(
        "main",
        "genesys:data-action-password",
        &[("GENESYS_WEBHOOK_AUTH", "basic")],
    )
    .await;
    use base64::Engine;
    let good = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("genesys:data-action-password")
    );
    let bad = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("genesys:guess")
    );
    let rest = |authorization: &str| {
        let event = json!({
            "resource": "/webhooks/genesys", "path": "/webhooks/genesys", "httpMethod": "POST",
            "headers": {"Content-Type": "application/json", "Authorization": authorization, "Host": "abc.execute-api.us-east-1.amazonaws.com"},
            "multiValueHeaders": {"Content-Type": ["application/json"], "Authorization": [authorization], "Host": ["abc.execute-api.us-east-1.amazonaws.com"]},
            "queryStringParameters": null, "multiValueQueryStringParameters": null, "pathParameters": null, "stageVariables": null,
            "requestContext": {"accountId": "123456789012", "resourceId": "r1", "stage": "prod", "requestId": "rest-1",
                "identity": {"sourceIp": "203.0.113.10"}, "resourcePath": "/webhooks/genesys", "httpMethod": "POST", "apiId": "abc", "path": "/prod/webhooks/genesys"},
            "body": "{\"eventBody\":{\"conversationId\":\"c9\"}}", "isBase64Encoded": false
        });
        lambda_http::request::from_str(&event.to_string()).unwrap()
    };
    assert_eq!(handle(rest(&good), &stack.deps).await.status(), 202);
    assert_eq!(handle(rest(&bad), &stack.deps).await.status(), 401);
    let health = handle(http_api_request("GET", "/health", &[], ""), &stack.deps).await;
    assert_eq!(health.status(), 200);
    assert_eq!(stack.aws.messages(&stack.queue_url).await.len(), 1);
}

/// A signed Genesys webhook (default `hmac` scheme) with extra headers.
fn genesys_post_with(body: &str, extra: &[(&str, &str)]) -> lambda_http::Request {
    let signature = sign::hub_signature(test_secrets::GENESYS_WEBHOOK, body);
    let mut headers = vec![
        ("content-type", "application/json"),
        ("x-hub-signature-256", signature.as_str()),
    ];
    headers.extend_from_slice(extra);
    http_api_request("POST", "/webhooks/genesys", &headers, body)
}

fn sha256_key(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex_lower(&sha2::Sha256::digest(bytes)))
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn an_unsigned_webhook_id_never_chooses_the_event_key() {
    // The default scheme signs the body only: a captured request replayed with fresh
    // `webhook-id` values must still be the same event, which the FIFO queue then drops.
    let fifo = stack("main.fifo", test_secrets::GENESYS_WEBHOOK, &[]).await;
    let body = r#"{"eventBody":{"conversationId":"conv-replay","wrapupCode":"X"}}"#;
    let mut ids = Vec::new();
    for webhook_id in ["msg_original", "msg_replay_1", "msg_replay_2"] {
        let response = handle(
            genesys_post_with(body, &[("webhook-id", webhook_id)]),
            &fifo.deps,
        )
        .await;
        assert_eq!(response.status(), 202, "{:?}", response.body());
        ids.push(body_json(&response)["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids, vec![sha256_key(body.as_bytes()); 3]);
    let messages = fifo.aws.messages(&fifo.queue_url).await;
    assert_eq!(messages.len(), 1, "the replays were deduplicated");
    assert_eq!(
        attribute(&messages[0], attr::EVENT_KEY).as_deref(),
        Some(ids[0].as_str())
    );

    // The same holds for the schemes that sign nothing at all.
    for (scheme, secret, authorization) in [
        (
            "bearer",
            "a-static-token",
            "Bearer a-static-token".to_owned(),
        ),
        ("basic", "genesys:pw", {
            use base64::Engine;
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode("genesys:pw")
            )
        }),
    ] {
        let other = stack("main", secret, &[("GENESYS_WEBHOOK_AUTH", scheme)]).await;
        let send = |webhook_id: &str| {
            http_api_request(
                "POST",
                "/webhooks/genesys",
                &[
                    ("content-type", "application/json"),
                    ("authorization", authorization.as_str()),
                    ("webhook-id", webhook_id),
                ],
                body,
            )
        };
        let first = handle(send("msg_a"), &other.deps).await;
        let second = handle(send("msg_b"), &other.deps).await;
        assert_eq!(first.status(), 202, "{scheme}");
        assert_eq!(
            body_json(&first)["id"],
            body_json(&second)["id"],
            "{scheme}"
        );
        assert_eq!(
            body_json(&first)["id"],
            sha256_key(body.as_bytes()),
            "{scheme}"
        );
    }
}

#[tokio::test]
async fn pointer_values_that_join_alike_are_different_events() {
    let stack = stack(
        "main.fifo",
        test_secrets::GENESYS_WEBHOOK,
        &[("EVENT_KEY_POINTERS", "/a,/b")],
    )
    .await;
    let mut ids = Vec::new();
    for body in [
        r#"{"a":"x:y","b":"z"}"#,
        r#"{"a":"x","b":"y:z"}"#,
        r#"{"a":"plain","b":"42"}"#,
    ] {
        let response = handle(genesys_post(body), &stack.deps).await;
        assert_eq!(response.status(), 202, "{:?}", response.body());
        ids.push(body_json(&response)["id"].as_str().unwrap().to_owned());
    }
    assert_ne!(ids[0], ids[1]);
    assert_eq!(ids[2], "plain:42", "plain values stay readable");
    assert_eq!(stack.aws.messages(&stack.queue_url).await.len(), 3);
}

#[tokio::test]
async fn attribute_values_taken_from_the_request_are_bounded() {
    let stack = stack("main.fifo", test_secrets::GENESYS_WEBHOOK, &[]).await;
    let long_header = "c".repeat(4000);
    let response = handle(
        genesys_post_with(r#"{"n":1}"#, &[("x-correlation-id", long_header.as_str())]),
        &stack.deps,
    )
    .await;
    assert_eq!(response.status(), 202, "{:?}", response.body());
    // A control character in the body's correlation id (SQS refuses it in an attribute).
    let body = r#"{"n":2,"metadata":{"CorrelationId":"bad\u0001id"}}"#;
    assert_eq!(handle(genesys_post(body), &stack.deps).await.status(), 202);
    // A conversation id too long for a FIFO message group.
    let long_conversation = "v".repeat(300);
    let body = format!(r#"{{"n":3,"eventBody":{{"conversationId":"{long_conversation}"}}}}"#);
    assert_eq!(handle(genesys_post(&body), &stack.deps).await.status(), 202);

    let messages = stack.aws.messages(&stack.queue_url).await;
    assert_eq!(messages.len(), 3);
    let stored = |n: u8| {
        messages
            .iter()
            .find(|m| {
                m.body
                    .as_deref()
                    .is_some_and(|b| b.starts_with(&format!("{{\"n\":{n}")))
            })
            .unwrap_or_else(|| panic!("message {n}"))
    };
    let correlation = |n: u8| attribute(stored(n), attr::CORRELATION_ID).expect("correlation id");
    assert_eq!(correlation(1), sha256_key(long_header.as_bytes()));
    assert_eq!(correlation(2), sha256_key("bad\u{1}id".as_bytes()));
    assert_eq!(correlation(3), "req-test", "the API Gateway request id");
    use aws_sdk_sqs::types::MessageSystemAttributeName as A;
    let group = stored(3).attributes.as_ref().unwrap()[&A::MessageGroupId].clone();
    assert_eq!(group, sha256_key(long_conversation.as_bytes()));

    // A media type longer than RFC 6838 allows never reaches an attribute.
    let content_type = format!("application/{}+json", "x".repeat(200));
    let signature = sign::hub_signature(test_secrets::GENESYS_WEBHOOK, "{}");
    let request = http_api_request(
        "POST",
        "/webhooks/genesys",
        &[
            ("content-type", content_type.as_str()),
            ("x-hub-signature-256", signature.as_str()),
        ],
        "{}",
    );
    let response = handle(request, &stack.deps).await;
    assert_eq!(response.status(), 415);
    assert_eq!(error_code(&response), "unsupported_media_type");
}

#[tokio::test]
async fn the_claim_check_decision_counts_the_attributes() {
    // At the highest threshold a body that fits alone is too large with its attributes.
    let stack = stack(
        "main",
        test_secrets::GENESYS_WEBHOOK,
        &[("CLAIM_CHECK_THRESHOLD_BYTES", "262144")],
    )
    .await;
    let prefix = r#"{"eventBody":{"conversationId":"c-edge"},"pad":""#;
    let body = format!("{prefix}{}\"}}", "p".repeat(262_144 - 64 - prefix.len()));
    assert!(body.len() < 262_144);
    let response = handle(genesys_post(&body), &stack.deps).await;
    assert_eq!(response.status(), 202, "{:?}", response.body());
    let messages = stack.aws.messages(&stack.queue_url).await;
    assert_eq!(messages.len(), 1);
    assert_eq!(
        attribute(&messages[0], attr::CLAIM_CHECK).as_deref(),
        Some("s3")
    );
    let size = messages[0].body.as_deref().unwrap().len()
        + messages[0]
            .message_attributes
            .as_ref()
            .unwrap()
            .iter()
            .map(|(name, value)| {
                name.len() + value.data_type.len() + value.string_value.as_deref().unwrap().len()
            })
            .sum::<usize>();
    assert!(size <= 262_144, "{size}");

    // Without a bucket it cannot be carried: 413, nothing stored.
    let mut settings = stack.deps.config.clone();
    settings.claim_check_bucket = None;
    let without_bucket = Deps::new(settings, &stack.aws.sdk);
    let response = handle(genesys_post(&body), &without_bucket).await;
    assert_eq!(response.status(), 413, "{:?}", response.body());
    assert_eq!(error_code(&response), "payload_too_large");
    assert!(stack.aws.messages(&stack.queue_url).await.is_empty());
}

#[tokio::test]
async fn a_body_with_characters_sqs_refuses_travels_as_a_claim_check() {
    let stack = default_stack().await;
    // Valid JSON and valid UTF-8, but U+FFFF is outside what an SQS message body may hold.
    let body = "{\"eventBody\":{\"conversationId\":\"c-nonchar\"},\"note\":\"a\u{FFFF}b\"}";
    let response = handle(genesys_post(body), &stack.deps).await;
    assert_eq!(response.status(), 202, "{:?}", response.body());
    let messages = stack.aws.messages(&stack.queue_url).await;
    assert_eq!(messages.len(), 1);
    assert_eq!(
        attribute(&messages[0], attr::CLAIM_CHECK).as_deref(),
        Some("s3")
    );
    let check: ClaimCheck = serde_json::from_str(messages[0].body.as_deref().unwrap()).unwrap();
    let object = stack
        .aws
        .s3()
        .get_object()
        .bucket(&check.bucket)
        .key(&check.key)
        .send()
        .await
        .expect("object");
    let stored = object.body.collect().await.unwrap().into_bytes();
    assert_eq!(stored.as_ref(), body.as_bytes());

    // Without a bucket the body cannot be carried at all: 413 naming why, never a 503 that the
    // sender would retry forever.
    let mut settings = stack.deps.config.clone();
    settings.claim_check_bucket = None;
    let without_bucket = Deps::new(settings, &stack.aws.sdk);
    let response = handle(genesys_post(body), &without_bucket).await;
    assert_eq!(response.status(), 413, "{:?}", response.body());
    assert_eq!(error_code(&response), "payload_too_large");
    assert!(
        body_json(&response)["error"]["message"]
            .as_str()
            .unwrap()
            .contains("U+FFFF"),
        "{:?}",
        response.body()
    );
    assert!(stack.aws.messages(&stack.queue_url).await.is_empty());
}

//! The Twilio client against the fake Twilio, with its credentials read from Secrets Manager on a
//! local AWS: the request it makes, how each answer is classified, and credential rotation.

use std::sync::Arc;
use std::time::{Duration, Instant};

use genesys_relay::config::SecretsPolicy;
use genesys_relay::outbound::twilio::{
    OutboundSms, SendError, Sender, SentMessage, TwilioClient, TwilioCredentials,
};
use genesys_relay::secrets::CachedSecret;
use relay_tests::fakes::twilio::{FakeTwilio, Reply};
use relay_tests::{free_port, LocalAws};
use serde_json::{json, Value};

const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
const OTHER_ACCOUNT: &str = "ACfedcba9876543210fedcba9876543210";
const AUTH_TOKEN: &str = "auth-token-value";
const KEY_1: &str = "SK11111111111111111111111111111111";
const KEY_1_SECRET: &str = "key-one-secret-value";
const KEY_2: &str = "SK22222222222222222222222222222222";
const KEY_2_SECRET: &str = "key-two-secret-value";
const SERVICE: &str = "MG0123456789abcdef0123456789abcdef";
const TO: &str = "+14158675309";
const FROM: &str = "+14155550100";
const CALLBACK: &str = "https://relay.example.com/twilio/status";

fn api_key_secret(sid: &str, secret: &str) -> Value {
    json!({"accountSid": ACCOUNT, "authToken": AUTH_TOKEN, "apiKeySid": sid, "apiKeySecret": secret})
}

fn pair(user: &str, password: &str) -> Vec<(String, String)> {
    vec![(user.to_owned(), password.to_owned())]
}

struct Setup {
    aws: LocalAws,
    secret_arn: String,
    credentials: Arc<CachedSecret<TwilioCredentials>>,
    fake: FakeTwilio,
    client: TwilioClient,
}

impl Setup {
    /// Replaces the secret's `AWSCURRENT` value, as a rotation does.
    async fn rotate_secret(&self, value: Value) {
        self.aws
            .secrets()
            .put_secret_value()
            .secret_id(&self.secret_arn)
            .secret_string(value.to_string())
            .send()
            .await
            .expect("put a new secret value");
    }
}

async fn setup_with(
    secret: Value,
    accepted: Vec<(String, String)>,
    http: reqwest::Client,
) -> Setup {
    let aws = LocalAws::start().await;
    let secret_arn = aws.secret("twilio", &secret.to_string()).await;
    let credentials = Arc::new(CachedSecret::new(
        aws.secrets(),
        secret_arn.clone(),
        SecretsPolicy::default(),
        TwilioCredentials::parse,
    ));
    let fake = FakeTwilio::start(ACCOUNT, accepted).await;
    let client = TwilioClient::new(http, fake.base_url(), Arc::clone(&credentials));
    Setup {
        aws,
        secret_arn,
        credentials,
        fake,
        client,
    }
}

/// The usual setup: an API key in the secret, the fake accepting it, the product's HTTP client.
async fn setup() -> Setup {
    setup_with(
        api_key_secret(KEY_1, KEY_1_SECRET),
        pair(KEY_1, KEY_1_SECRET),
        genesys_relay::outbound::http::client().expect("HTTP client"),
    )
    .await
}

fn sms(body: &str) -> OutboundSms {
    OutboundSms {
        to: TO.into(),
        sender: Sender::From(FROM.into()),
        body: body.into(),
        status_callback: None,
    }
}

fn assert_sm_sid(sid: &str) {
    assert!(
        sid.len() == 34 && sid.starts_with("SM") && sid[2..].bytes().all(|b| b.is_ascii_hexdigit()),
        "{sid}"
    );
}

async fn send_ok(setup: &Setup, sms: &OutboundSms) -> SentMessage {
    match setup.client.send(sms).await {
        Ok(sent) => sent,
        Err(error) => panic!("expected a sent message, got {error:?}"),
    }
}

async fn send_err(setup: &Setup, sms: &OutboundSms) -> SendError {
    match setup.client.send(sms).await {
        Ok(sent) => panic!("expected a failure, got {sent:?}"),
        Err(error) => error,
    }
}

#[tokio::test]
async fn sends_a_form_authenticated_with_the_api_key() {
    let setup = setup().await;
    let body = "Thanks for your call & see you at 10:30 + bring ID? 100% ok=yes";
    let mut message = sms(body);
    message.status_callback = Some(CALLBACK.into());

    let sent = send_ok(&setup, &message).await;

    let requests = setup.fake.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let request = &requests[0];
    assert_eq!(request.method, "POST");
    assert_eq!(
        request.path,
        format!("/2010-04-01/Accounts/{ACCOUNT}/Messages.json")
    );
    assert_eq!(request.auth_user.as_deref(), Some(KEY_1));
    assert!(
        request
            .content_type
            .as_deref()
            .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded")),
        "{:?}",
        request.content_type
    );
    let mut names: Vec<&str> = request.form.iter().map(|(k, _)| k.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["Body", "From", "StatusCallback", "To"]);
    assert_eq!(request.field("To"), Some(TO));
    assert_eq!(request.field("From"), Some(FROM));
    assert_eq!(request.field("Body"), Some(body));
    assert_eq!(request.field("StatusCallback"), Some(CALLBACK));
    assert_eq!(request.status, Some(201));

    let messages = setup.fake.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(sent.sid, messages[0].sid);
    assert_sm_sid(&sent.sid);
    assert_eq!(sent.status, "queued");
    assert_eq!(sent.segments, Some(1));
    assert_eq!(messages[0].body, body);
    assert_eq!(messages[0].status_callback.as_deref(), Some(CALLBACK));
    assert_eq!(messages[0].messaging_service_sid, None);
}

#[tokio::test]
async fn without_an_api_key_the_account_sid_and_auth_token_authenticate() {
    let setup = setup_with(
        json!({"accountSid": ACCOUNT, "authToken": AUTH_TOKEN, "apiKeySid": "", "apiKeySecret": ""}),
        pair(ACCOUNT, AUTH_TOKEN),
        genesys_relay::outbound::http::client().expect("HTTP client"),
    )
    .await;

    let sent = send_ok(&setup, &sms("Your callback is booked.")).await;

    let requests = setup.fake.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].auth_user.as_deref(), Some(ACCOUNT));
    assert_eq!(requests[0].field("StatusCallback"), None);
    assert_eq!(setup.fake.messages()[0].sid, sent.sid);
}

#[tokio::test]
async fn a_messaging_service_sender_sends_its_sid_instead_of_from() {
    let setup = setup().await;
    let body = "x".repeat(200);
    let mut message = sms(&body);
    message.sender = Sender::MessagingService(SERVICE.into());

    let sent = send_ok(&setup, &message).await;

    let request = &setup.fake.requests()[0];
    assert_eq!(request.field("MessagingServiceSid"), Some(SERVICE));
    assert_eq!(request.field("From"), None);
    let created = &setup.fake.messages()[0];
    assert_eq!(created.messaging_service_sid.as_deref(), Some(SERVICE));
    assert_eq!(created.from, None);
    // Twilio answers `accepted` for a Messaging Service, and counts segments as a string.
    assert_eq!(sent.status, "accepted");
    assert_eq!(sent.segments, Some(2));
}

#[tokio::test]
async fn a_server_error_is_unavailable_and_not_retried_inside_the_client() {
    let setup = setup().await;
    setup.fake.script(vec![Reply::Status(500)]);

    let error = send_err(&setup, &sms("hello")).await;

    let SendError::Unavailable {
        retry_after,
        reason,
    } = &error
    else {
        panic!("{error:?}");
    };
    assert_eq!(*retry_after, None);
    assert!(reason.contains("may have been sent"), "{reason}");
    assert_eq!(error.class(), "retryable");
    assert_eq!(setup.fake.requests().len(), 1);
    assert!(setup.fake.messages().is_empty());
    assert_eq!(genesys_relay::Error::from(error).class(), "retryable");
}

#[tokio::test]
async fn too_many_requests_waits_as_long_as_twilio_says() {
    let setup = setup().await;
    setup.fake.script(vec![Reply::TooManyRequests {
        retry_after_secs: Some(7),
    }]);

    let error = send_err(&setup, &sms("hello")).await;

    assert!(
        matches!(&error, SendError::Unavailable { retry_after: Some(d), .. } if *d == Duration::from_secs(7)),
        "{error:?}"
    );
    match genesys_relay::Error::from(error) {
        genesys_relay::Error::Retryable { retry_after, .. } => {
            assert_eq!(retry_after, Some(Duration::from_secs(7)));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(setup.fake.requests().len(), 1);
}

#[tokio::test]
async fn code_20429_without_retry_after_is_unavailable_with_no_delay() {
    let setup = setup().await;
    setup.fake.script(vec![Reply::Error {
        http: 429,
        code: 20429,
    }]);

    let error = send_err(&setup, &sms("hello")).await;

    assert!(
        matches!(&error, SendError::Unavailable { retry_after: None, reason } if reason.contains("not processed")),
        "{error:?}"
    );
}

#[tokio::test]
async fn an_opted_out_recipient_is_refused_for_good() {
    let setup = setup().await;
    setup.fake.script(vec![Reply::Error {
        http: 400,
        code: 21610,
    }]);

    let error = send_err(&setup, &sms("hello")).await;

    assert!(
        matches!(error, SendError::Refused { code: 21610, .. }),
        "{error:?}"
    );
    assert!(error.is_opt_out());
    assert!(!error.is_undeliverable_number());
    assert_eq!(error.code(), Some(21610));
    assert_eq!(genesys_relay::Error::from(error).class(), "permanent");
    assert_eq!(setup.fake.requests().len(), 1);
    assert!(setup.fake.messages().is_empty());
}

#[tokio::test]
async fn invalid_and_non_mobile_numbers_are_undeliverable_other_refusals_are_not() {
    let setup = setup().await;
    setup.fake.script(vec![
        Reply::Error {
            http: 400,
            code: 21211,
        },
        Reply::Error {
            http: 400,
            code: 21614,
        },
        Reply::Error {
            http: 400,
            code: 21408,
        },
    ]);

    for code in [21211, 21614] {
        let error = send_err(&setup, &sms("hello")).await;
        assert_eq!(error.code(), Some(code), "{error:?}");
        assert!(error.is_undeliverable_number(), "{error:?}");
        assert!(!error.is_opt_out());
    }
    let error = send_err(&setup, &sms("hello")).await;
    assert!(
        matches!(error, SendError::Refused { code: 21408, .. }),
        "{error:?}"
    );
    assert!(!error.is_undeliverable_number());
    assert_eq!(setup.fake.requests().len(), 3);
}

#[tokio::test]
async fn bad_numbers_and_bodies_are_refused_without_a_request() {
    let setup = setup().await;
    let mut bad_number = sms("hello");
    for to in [
        "4158675309",
        "+1 415 867 5309",
        "+04158675309",
        "+1234567890123456",
        "",
    ] {
        bad_number.to = to.into();
        let error = send_err(&setup, &bad_number).await;
        assert!(
            matches!(error, SendError::Refused { code: 21211, .. }),
            "{to:?}: {error:?}"
        );
        assert!(error.is_undeliverable_number());
    }
    let error = send_err(&setup, &sms(&"a".repeat(1601))).await;
    assert!(
        matches!(error, SendError::Refused { code: 21617, .. }),
        "{error:?}"
    );
    let error = send_err(&setup, &sms("")).await;
    assert!(
        matches!(error, SendError::Refused { code: 21602, .. }),
        "{error:?}"
    );
    assert!(
        setup.fake.requests().is_empty(),
        "{:?}",
        setup.fake.requests()
    );

    // The limit itself is allowed, in characters rather than bytes.
    send_ok(&setup, &sms(&"é".repeat(1600))).await;
    assert_eq!(setup.fake.requests().len(), 1);
}

#[tokio::test]
async fn a_hung_twilio_is_unavailable_within_the_client_timeout() {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .expect("HTTP client");
    let setup = setup_with(
        api_key_secret(KEY_1, KEY_1_SECRET),
        pair(KEY_1, KEY_1_SECRET),
        http,
    )
    .await;
    // Read the secret first, so the clock below times the Twilio request alone.
    setup.credentials.current().await.expect("credentials");
    setup
        .fake
        .script(vec![Reply::Hang(Duration::from_secs(30))]);

    let started = Instant::now();
    let error = send_err(&setup, &sms("hello")).await;
    let elapsed = started.elapsed();

    assert!(
        matches!(&error, SendError::Unavailable { retry_after: None, reason } if reason.contains("timed out")),
        "{error:?}"
    );
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
    assert_eq!(setup.fake.requests().len(), 1);
    assert_eq!(setup.fake.requests()[0].status, None, "still hanging");
}

#[tokio::test]
async fn nothing_listening_is_unavailable() {
    let aws = LocalAws::start().await;
    let arn = aws
        .secret("twilio", &api_key_secret(KEY_1, KEY_1_SECRET).to_string())
        .await;
    let credentials = Arc::new(CachedSecret::new(
        aws.secrets(),
        arn,
        SecretsPolicy::default(),
        TwilioCredentials::parse,
    ));
    let closed = format!("http://127.0.0.1:{}", free_port());
    let client = TwilioClient::new(
        genesys_relay::outbound::http::client().expect("HTTP client"),
        closed,
        credentials,
    );

    let error = client.send(&sms("hello")).await.expect_err("no server");

    assert!(
        matches!(&error, SendError::Unavailable { reason, .. } if reason.contains("could not connect")),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_rotated_api_key_is_picked_up_after_one_401() {
    let setup = setup().await;
    // The cache holds key 1 ...
    setup.credentials.current().await.expect("credentials");
    // ... when the key is rotated: the secret gets key 2 and Twilio stops accepting key 1.
    setup
        .rotate_secret(api_key_secret(KEY_2, KEY_2_SECRET))
        .await;
    setup.fake.set_auth(pair(KEY_2, KEY_2_SECRET));

    let sent = send_ok(&setup, &sms("hello")).await;

    let requests = setup.fake.requests();
    let seen: Vec<(Option<&str>, Option<u16>)> = requests
        .iter()
        .map(|r| (r.auth_user.as_deref(), r.status))
        .collect();
    assert_eq!(seen, [(Some(KEY_1), Some(401)), (Some(KEY_2), Some(201))]);
    let messages = setup.fake.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].sid, sent.sid);
    assert_eq!(messages[0].auth_user, KEY_2);

    // The new key stays cached: the next send needs no second attempt.
    send_ok(&setup, &sms("again")).await;
    let requests = setup.fake.requests();
    assert_eq!(requests.len(), 3);
    assert_eq!(requests[2].auth_user.as_deref(), Some(KEY_2));
    assert_eq!(requests[2].status, Some(201));
}

#[tokio::test]
async fn a_second_401_after_rereading_the_secret_is_misconfigured() {
    let setup = setup().await;
    setup.credentials.current().await.expect("credentials");
    setup
        .rotate_secret(api_key_secret(KEY_2, KEY_2_SECRET))
        .await;
    setup.fake.set_auth(pair(KEY_2, "a-different-secret"));

    let error = send_err(&setup, &sms("hello")).await;

    assert!(matches!(error, SendError::Misconfigured(_)), "{error:?}");
    let text = error.to_string();
    assert!(
        !text.contains(KEY_1_SECRET) && !text.contains(KEY_2_SECRET),
        "{text}"
    );
    assert_eq!(genesys_relay::Error::from(error).class(), "permanent");
    let users: Vec<Option<String>> = setup
        .fake
        .requests()
        .into_iter()
        .map(|r| r.auth_user)
        .collect();
    assert_eq!(users, [Some(KEY_1.to_owned()), Some(KEY_2.to_owned())]);
    assert!(setup.fake.messages().is_empty());
}

#[tokio::test]
async fn a_revoked_key_with_nothing_new_in_the_secret_is_misconfigured_after_one_request() {
    let setup = setup().await;
    setup.fake.set_auth(pair(KEY_2, KEY_2_SECRET));

    let error = send_err(&setup, &sms("hello")).await;

    assert!(matches!(error, SendError::Misconfigured(_)), "{error:?}");
    // The secret was re-read, found unchanged, and the refused key was not tried again.
    assert_eq!(setup.fake.requests().len(), 1);
}

#[tokio::test]
async fn a_placeholder_secret_is_misconfigured_without_a_request() {
    let setup = setup_with(
        json!({"accountSid": "AC...", "authToken": "CHANGE_ME", "apiKeySid": "", "apiKeySecret": ""}),
        pair(KEY_1, KEY_1_SECRET),
        genesys_relay::outbound::http::client().expect("HTTP client"),
    )
    .await;

    let error = send_err(&setup, &sms("hello")).await;

    assert!(
        matches!(&error, SendError::Misconfigured(m) if m.contains("accountSid")),
        "{error:?}"
    );
    assert!(!error.to_string().contains("CHANGE_ME"), "{error}");
    assert!(setup.fake.requests().is_empty());
}

#[tokio::test]
async fn another_account_or_a_forbidden_key_is_misconfigured() {
    let mut secret = api_key_secret(KEY_1, KEY_1_SECRET);
    secret["accountSid"] = OTHER_ACCOUNT.into();
    let setup = setup_with(
        secret,
        pair(KEY_1, KEY_1_SECRET),
        genesys_relay::outbound::http::client().expect("HTTP client"),
    )
    .await;
    let error = send_err(&setup, &sms("hello")).await;
    assert!(
        matches!(&error, SendError::Misconfigured(m) if m.contains("404")),
        "{error:?}"
    );
    assert_eq!(setup.fake.requests()[0].status, Some(404));

    let setup = setup_with(
        api_key_secret(KEY_1, KEY_1_SECRET),
        pair(KEY_1, KEY_1_SECRET),
        genesys_relay::outbound::http::client().expect("HTTP client"),
    )
    .await;
    setup.fake.script(vec![Reply::Status(403)]);
    let error = send_err(&setup, &sms("hello")).await;
    assert!(
        matches!(&error, SendError::Misconfigured(m) if m.contains("403")),
        "{error:?}"
    );
}

#[tokio::test]
async fn an_unreadable_success_is_permanent_so_the_sms_is_not_sent_twice() {
    let setup = setup().await;
    setup.fake.script(vec![Reply::Raw {
        http: 201,
        body: "<html>created</html>".into(),
    }]);

    let error = send_err(&setup, &sms("hello")).await;

    assert!(
        matches!(&error, SendError::Misconfigured(m) if m.contains("not retried")),
        "{error:?}"
    );
    assert_eq!(genesys_relay::Error::from(error).class(), "permanent");
}

/// The fake itself refuses what Twilio refuses, so the tests above prove the real request shape.
#[tokio::test]
async fn the_fake_refuses_what_twilio_refuses() {
    let fake = FakeTwilio::start(ACCOUNT, pair(KEY_1, KEY_1_SECRET)).await;
    let http = reqwest::Client::new();
    let url = format!("{}{}", fake.base_url(), fake.messages_path());
    let valid = [("To", TO), ("From", FROM), ("Body", "hi")];

    async fn code_of(response: reqwest::Response) -> (u16, Option<u64>) {
        let status = response.status().as_u16();
        let body: Value = response.json().await.expect("Twilio error JSON");
        (status, body["code"].as_u64())
    }

    let response = http.post(&url).form(&valid).send().await.expect("answer");
    assert_eq!(
        response
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some("Basic realm=\"Twilio API\"")
    );
    assert_eq!(code_of(response).await, (401, Some(20003)));

    let wrong = http
        .post(&url)
        .basic_auth(KEY_1, Some("wrong"))
        .form(&valid)
        .send()
        .await
        .expect("answer");
    assert_eq!(code_of(wrong).await, (401, Some(20003)));

    let other_account = format!(
        "{}/2010-04-01/Accounts/{OTHER_ACCOUNT}/Messages.json",
        fake.base_url()
    );
    let response = http
        .post(other_account)
        .basic_auth(KEY_1, Some(KEY_1_SECRET))
        .form(&valid)
        .send()
        .await
        .expect("answer");
    assert_eq!(code_of(response).await, (404, Some(20404)));

    let response = http
        .post(&url)
        .basic_auth(KEY_1, Some(KEY_1_SECRET))
        .json(&json!({"To": TO, "From": FROM, "Body": "hi"}))
        .send()
        .await
        .expect("answer");
    assert_eq!(code_of(response).await, (400, Some(21604)));

    let response = http
        .post(&url)
        .basic_auth(KEY_1, Some(KEY_1_SECRET))
        .form(&[("To", TO), ("Body", "hi")])
        .send()
        .await
        .expect("answer");
    assert_eq!(code_of(response).await, (400, Some(21603)));

    let response = http
        .post(&url)
        .basic_auth(KEY_1, Some(KEY_1_SECRET))
        .form(&[("From", FROM), ("Body", "hi")])
        .send()
        .await
        .expect("answer");
    assert_eq!(code_of(response).await, (400, Some(21604)));

    let response = http
        .get(&url)
        .basic_auth(KEY_1, Some(KEY_1_SECRET))
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status().as_u16(), 405);

    assert!(fake.messages().is_empty());
    assert_eq!(fake.requests().len(), 7);

    let response = http
        .post(&url)
        .basic_auth(KEY_1, Some(KEY_1_SECRET))
        .form(&valid)
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status().as_u16(), 201);
    let created: Value = response.json().await.expect("message JSON");
    assert_eq!(created["num_segments"], "1");
    assert_eq!(created["error_code"], Value::Null);
    assert!(
        time::OffsetDateTime::parse(
            created["date_created"].as_str().expect("date_created"),
            &time::format_description::well_known::Rfc2822
        )
        .is_ok(),
        "{created}"
    );
    assert_eq!(fake.messages().len(), 1);
    assert_eq!(created["sid"], fake.messages()[0].sid);
}

//! The Genesys client against the fake Genesys Cloud, with its credentials read from Secrets
//! Manager on a local AWS: sign-in, token reuse and refresh, rotation, and how every failure is
//! classified.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use genesys_relay::config::GenesysEndpoints;
use genesys_relay::config::SecretsPolicy;
use genesys_relay::outbound::genesys::{GenesysClient, GenesysCredentials};
use genesys_relay::secrets::CachedSecret;
use genesys_relay::Error;
use relay_tests::fakes::genesys::{FakeGenesys, Patch, Reply};
use relay_tests::{free_port, LocalAws};
use serde_json::json;

const CLIENT_ID: &str = "6f3c2a4e-0d1b-4c5a-9e8f-7a6b5c4d3e2f";
const SECRET: &str = "first-client-secret";
const CONVERSATION: &str = "2f7b0c1e-0b5e-4c2f-9d3a-6c1b2a3d4e5f";
const PARTICIPANT: &str = "9fb2d3c4-1a2b-4c3d-8e9f-0a1b2c3d4e5f";

struct Setup {
    aws: LocalAws,
    fake: FakeGenesys,
    arn: String,
    client: Arc<GenesysClient>,
}

fn credentials(client_id: &str, secret: &str) -> String {
    json!({"clientId": client_id, "clientSecret": secret}).to_string()
}

fn client_for(aws: &LocalAws, arn: &str, endpoints: GenesysEndpoints) -> Arc<GenesysClient> {
    let secret = CachedSecret::new(
        aws.secrets(),
        arn,
        SecretsPolicy::default(),
        GenesysCredentials::parse,
    );
    let http = genesys_relay::outbound::http::client().expect("HTTP client");
    Arc::new(GenesysClient::new(http, endpoints, Arc::new(secret)))
}

/// A fake that knows `CLIENT_ID`/`SECRET`, and a client whose secret holds `stored`.
async fn setup_with(stored: &str) -> Setup {
    let aws = LocalAws::start().await;
    let fake = FakeGenesys::start(CLIENT_ID, SECRET, 3_600).await;
    let arn = aws.secret("genesys-oauth", stored).await;
    let client = client_for(&aws, &arn, fake.endpoints());
    Setup {
        aws,
        fake,
        arn,
        client,
    }
}

async fn setup() -> Setup {
    setup_with(&credentials(CLIENT_ID, SECRET)).await
}

fn attributes(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn status_attributes() -> BTreeMap<String, String> {
    attributes(&[("smsStatus", "delivered"), ("smsSid", "SM0123")])
}

async fn patch(client: &GenesysClient) -> genesys_relay::Result<()> {
    client
        .patch_participant_attributes(CONVERSATION, PARTICIPANT, &status_attributes())
        .await
}

fn retry_after(result: genesys_relay::Result<()>) -> Option<Duration> {
    match result {
        Err(Error::Retryable { retry_after, .. }) => retry_after,
        other => panic!("expected a retryable failure, got {other:?}"),
    }
}

fn permanent_message(result: genesys_relay::Result<()>) -> String {
    match result {
        Err(Error::Permanent { message }) => message,
        other => panic!("expected a permanent failure, got {other:?}"),
    }
}

async fn rotate_secret(setup: &Setup, value: &str) {
    setup
        .aws
        .secrets()
        .put_secret_value()
        .secret_id(&setup.arn)
        .secret_string(value)
        .send()
        .await
        .expect("put a new secret version");
}

#[tokio::test]
async fn signs_in_once_and_patches_with_the_bearer_token_and_a_json_body() {
    let s = setup().await;
    patch(&s.client).await.expect("the patch is accepted");

    // The fake only issues a token for Basic authentication with this client and
    // grant_type=client_credentials, and only records a PATCH with a valid bearer token,
    // Content-Type application/json and a {"attributes": {...}} body.
    assert_eq!(s.fake.token_requests(), 1);
    assert_eq!(s.fake.tokens_issued(), 1);
    let patches = s.fake.patches();
    assert_eq!(
        patches,
        vec![Patch {
            conversation_id: CONVERSATION.into(),
            participant_id: PARTICIPANT.into(),
            attributes: status_attributes(),
            token: patches[0].token.clone(),
        }]
    );
    assert!(patches[0].token.starts_with("fake-token-"));
    assert_eq!(s.fake.requests(), 2);
}

#[tokio::test]
async fn the_token_is_reused_across_calls() {
    let s = setup().await;
    for i in 0..5 {
        let attrs = attributes(&[("attempt", &i.to_string())]);
        s.client
            .patch_participant_attributes(CONVERSATION, PARTICIPANT, &attrs)
            .await
            .expect("accepted");
    }
    assert_eq!(s.fake.tokens_issued(), 1);
    assert_eq!(s.fake.token_requests(), 1);
    let patches = s.fake.patches();
    assert_eq!(patches.len(), 5);
    assert!(patches.iter().all(|p| p.token == patches[0].token));
    assert_eq!(patches[4].attributes, attributes(&[("attempt", "4")]));
}

#[tokio::test]
async fn a_token_expired_mid_series_is_replaced_once_and_the_call_retried() {
    let s = setup().await;
    patch(&s.client).await.expect("first call");
    s.fake.expire_tokens();
    patch(&s.client)
        .await
        .expect("refused once, then accepted with a new token");
    patch(&s.client).await.expect("third call");

    assert_eq!(s.fake.tokens_issued(), 2);
    // 1 accepted + (1 refused with 401 + 1 retried) + 1 accepted.
    assert_eq!(s.fake.patch_requests(), 4);
    let patches = s.fake.patches();
    assert_eq!(patches.len(), 3);
    assert_ne!(patches[1].token, patches[0].token);
    assert_eq!(patches[2].token, patches[1].token);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_callers_share_one_token_request() {
    let s = setup().await;
    // A slow login makes every caller arrive while the first token request is in flight.
    s.fake.set_token_delay(Duration::from_millis(300));
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..10 {
        let client = Arc::clone(&s.client);
        calls.spawn(async move {
            let attrs = attributes(&[("caller", &i.to_string())]);
            client
                .patch_participant_attributes(CONVERSATION, PARTICIPANT, &attrs)
                .await
        });
    }
    while let Some(result) = calls.join_next().await {
        result.expect("task").expect("accepted");
    }
    assert_eq!(s.fake.token_requests(), 1);
    assert_eq!(s.fake.tokens_issued(), 1);
    assert_eq!(s.fake.patches().len(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_callers_refused_the_same_token_share_one_refresh() {
    let s = setup().await;
    patch(&s.client).await.expect("warm-up call");
    s.fake.expire_tokens();
    s.fake.set_token_delay(Duration::from_millis(300));
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let client = Arc::clone(&s.client);
        calls.spawn(async move { patch(&client).await });
    }
    while let Some(result) = calls.join_next().await {
        result.expect("task").expect("accepted after the refresh");
    }
    assert_eq!(s.fake.tokens_issued(), 2);
    assert_eq!(s.fake.token_requests(), 2);
    let patches = s.fake.patches();
    assert_eq!(patches.len(), 11);
    assert!(patches[1..].iter().all(|p| p.token == patches[1].token));
}

#[tokio::test]
async fn throttling_is_retryable_after_the_delay_genesys_asks_for() {
    let s = setup().await;
    s.fake.script_patch(vec![Reply::TooManyRequests {
        retry_after_secs: Some(7),
    }]);
    assert_eq!(
        retry_after(patch(&s.client).await),
        Some(Duration::from_secs(7))
    );
    // The client leaves the waiting to the queue: one request, nothing recorded.
    assert_eq!(s.fake.patch_requests(), 1);
    assert!(s.fake.patches().is_empty());

    patch(&s.client).await.expect("the next call goes through");
    assert_eq!(s.fake.patches().len(), 1);
    assert_eq!(s.fake.tokens_issued(), 1);
}

#[tokio::test]
async fn outages_without_retry_after_are_retryable_after_three_seconds() {
    let s = setup().await;
    s.fake.script_patch(vec![
        Reply::Status(503),
        Reply::Status(502),
        Reply::Status(504),
        Reply::TooManyRequests {
            retry_after_secs: None,
        },
    ]);
    for _ in 0..4 {
        assert_eq!(
            retry_after(patch(&s.client).await),
            Some(Duration::from_secs(3))
        );
    }
    assert_eq!(s.fake.patch_requests(), 4);
}

#[tokio::test]
async fn other_server_errors_are_retryable_without_a_delay() {
    let s = setup().await;
    s.fake.script_patch(vec![Reply::Status(500)]);
    assert_eq!(retry_after(patch(&s.client).await), None);
}

#[tokio::test]
async fn a_missing_conversation_or_participant_is_permanent() {
    let s = setup().await;
    s.fake.script_patch(vec![Reply::Status(404)]);
    let message = permanent_message(patch(&s.client).await);
    assert!(message.contains("not found"), "{message}");
    assert!(message.contains("correlation id fake-"), "{message}");
    assert_eq!(s.fake.patch_requests(), 1);
}

#[tokio::test]
async fn refused_requests_are_permanent_with_what_genesys_said() {
    let s = setup().await;
    s.fake
        .script_patch(vec![Reply::Status(403), Reply::Status(400)]);
    let forbidden = permanent_message(patch(&s.client).await);
    assert!(forbidden.contains("403"), "{forbidden}");
    assert!(forbidden.contains("missing.any.permissions"), "{forbidden}");
    assert!(forbidden.contains("correlation id fake-"), "{forbidden}");
    let bad = permanent_message(patch(&s.client).await);
    assert!(bad.contains("400") && bad.contains("bad.request"), "{bad}");
    for message in [&forbidden, &bad] {
        assert!(!message.contains("fake-token"), "{message}");
        assert!(!message.contains(SECRET), "{message}");
    }
    // Neither answer is a token problem: no second token was fetched.
    assert_eq!(s.fake.tokens_issued(), 1);
}

#[tokio::test]
async fn a_rotated_client_secret_is_picked_up_without_an_outage() {
    let s = setup().await;
    patch(&s.client).await.expect("with the first secret");

    // Rotation: the new secret is stored and Genesys accepts only it; the old token dies.
    rotate_secret(&s, &credentials(CLIENT_ID, "second-client-secret")).await;
    s.fake.set_client_secret("second-client-secret");
    s.fake.expire_tokens();

    patch(&s.client)
        .await
        .expect("401, the cached secret refused, the secret read again, then accepted");
    assert_eq!(s.fake.token_requests(), 3);
    assert_eq!(s.fake.tokens_issued(), 2);
    assert_eq!(s.fake.patches().len(), 2);

    patch(&s.client).await.expect("the new token is reused");
    assert_eq!(s.fake.tokens_issued(), 2);
}

#[tokio::test]
async fn a_secret_that_stays_wrong_is_permanent_after_one_more_try() {
    let s = setup().await;
    patch(&s.client).await.expect("with the first secret");

    // Genesys moved to a secret that the stored one still does not match.
    rotate_secret(&s, &credentials(CLIENT_ID, "also-wrong")).await;
    s.fake.set_client_secret("third-client-secret");
    s.fake.expire_tokens();

    let message = permanent_message(patch(&s.client).await);
    assert!(message.contains(CLIENT_ID), "{message}");
    assert!(!message.contains("also-wrong"), "{message}");
    // The cached secret, then the re-read one: two refused token requests, no more.
    assert_eq!(s.fake.token_requests(), 3);
    assert_eq!(s.fake.tokens_issued(), 1);
}

#[tokio::test]
async fn unchanged_wrong_credentials_are_permanent_without_asking_twice() {
    let s = setup_with(&credentials(CLIENT_ID, "wrong-secret")).await;
    let message = permanent_message(patch(&s.client).await);
    assert!(message.contains("401"), "{message}");
    assert!(!message.contains("wrong-secret"), "{message}");
    assert_eq!(s.fake.token_requests(), 1);
    assert_eq!(s.fake.patch_requests(), 0);

    let s = setup_with(&credentials("unknown-client", SECRET)).await;
    let message = permanent_message(patch(&s.client).await);
    assert!(message.contains("invalid_client"), "{message}");
    assert_eq!(s.fake.token_requests(), 1);
    assert_eq!(s.fake.patch_requests(), 0);
}

#[tokio::test]
async fn a_login_outage_is_retryable() {
    let s = setup().await;
    s.fake.script_token(vec![
        Reply::Status(503),
        Reply::TooManyRequests {
            retry_after_secs: Some(11),
        },
    ]);
    assert_eq!(
        retry_after(patch(&s.client).await),
        Some(Duration::from_secs(3))
    );
    assert_eq!(
        retry_after(patch(&s.client).await),
        Some(Duration::from_secs(11))
    );
    assert_eq!(s.fake.patch_requests(), 0);
    patch(&s.client).await.expect("login is back");
    assert_eq!(s.fake.tokens_issued(), 1);
}

#[tokio::test]
async fn odd_ids_are_refused_without_a_request() {
    let s = setup().await;
    let attrs = status_attributes();
    for (conversation, participant) in [
        ("", PARTICIPANT),
        (CONVERSATION, ""),
        ("../../users/me", PARTICIPANT),
        (CONVERSATION, "a/b"),
        ("a%2Fb", PARTICIPANT),
        (CONVERSATION, "a?b=c"),
        ("a b", PARTICIPANT),
        (CONVERSATION, "a#b"),
        ("conversa\u{0074}ion\u{00e9}", PARTICIPANT),
    ] {
        let result = s
            .client
            .patch_participant_attributes(conversation, participant, &attrs)
            .await;
        let message = permanent_message(result);
        assert!(message.contains("not a Genesys id"), "{message}");
    }
    assert_eq!(s.fake.requests(), 0);
}

#[tokio::test]
async fn an_unreachable_genesys_is_retryable() {
    let aws = LocalAws::start().await;
    let arn = aws
        .secret("genesys-oauth", &credentials(CLIENT_ID, SECRET))
        .await;
    let nobody = format!("http://127.0.0.1:{}", free_port());
    let client = client_for(&aws, &arn, GenesysEndpoints::local(&nobody));
    assert_eq!(retry_after(patch(&client).await), None);
}

#[tokio::test]
async fn the_fake_refuses_token_requests_of_the_wrong_shape() {
    let fake = FakeGenesys::start(CLIENT_ID, SECRET, 3_600).await;
    let http = reqwest::Client::new();
    let url = format!("{}/oauth/token", fake.base_url());
    let grant = [("grant_type", "client_credentials")];

    let get = http.get(&url).basic_auth(CLIENT_ID, Some(SECRET)).send();
    assert_eq!(get.await.unwrap().status(), 405);

    let anonymous = http.post(&url).form(&grant).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let body: serde_json::Value = anonymous.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");

    let wrong_secret = http.post(&url).basic_auth(CLIENT_ID, Some("nope"));
    assert_eq!(
        wrong_secret.form(&grant).send().await.unwrap().status(),
        401
    );

    let unknown = http.post(&url).basic_auth("someone-else", Some(SECRET));
    let unknown = unknown.form(&grant).send().await.unwrap();
    assert_eq!(unknown.status(), 400);
    let body: serde_json::Value = unknown.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");

    let password = http.post(&url).basic_auth(CLIENT_ID, Some(SECRET));
    let password = password.form(&[("grant_type", "password")]).send();
    assert_eq!(password.await.unwrap().status(), 400);

    let as_json = http.post(&url).basic_auth(CLIENT_ID, Some(SECRET));
    let as_json = as_json
        .json(&json!({"grant_type": "client_credentials"}))
        .send();
    assert_eq!(as_json.await.unwrap().status(), 400);

    assert_eq!(fake.tokens_issued(), 0);

    let good = http.post(&url).basic_auth(CLIENT_ID, Some(SECRET));
    let good = good.form(&grant).send().await.unwrap();
    assert_eq!(good.status(), 200);
    let body: serde_json::Value = good.json().await.unwrap();
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 3_600);
    assert!(body["access_token"].is_string());
    assert_eq!(fake.tokens_issued(), 1);
}

#[tokio::test]
async fn the_fake_refuses_patches_of_the_wrong_shape() {
    let fake = FakeGenesys::start(CLIENT_ID, SECRET, 3_600).await;
    let http = reqwest::Client::new();
    let token: serde_json::Value = http
        .post(format!("{}/oauth/token", fake.base_url()))
        .basic_auth(CLIENT_ID, Some(SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["access_token"].as_str().unwrap().to_owned();
    let url = format!(
        "{}/api/v2/conversations/{CONVERSATION}/participants/{PARTICIPANT}/attributes",
        fake.base_url()
    );
    let good = json!({"attributes": {"smsStatus": "sent"}});

    let anonymous = http.patch(&url).json(&good).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert!(anonymous.headers().contains_key("inin-correlation-id"));
    let forged = http.patch(&url).bearer_auth("not-issued").json(&good);
    assert_eq!(forged.send().await.unwrap().status(), 401);

    let as_text = http
        .patch(&url)
        .bearer_auth(&token)
        .header("content-type", "text/plain")
        .body(good.to_string());
    assert_eq!(as_text.send().await.unwrap().status(), 400);
    for body in [
        json!({"attributes": {"smsStatus": 1}}),
        json!({"attrs": {"smsStatus": "sent"}}),
        json!({"attributes": {"smsStatus": "sent"}, "extra": true}),
        json!({"attributes": ["sent"]}),
    ] {
        let response = http.patch(&url).bearer_auth(&token).json(&body).send();
        assert_eq!(response.await.unwrap().status(), 400, "{body}");
    }
    let put = http.put(&url).bearer_auth(&token).json(&good).send();
    assert_eq!(put.await.unwrap().status(), 405);
    assert!(fake.patches().is_empty());

    let accepted = http.patch(&url).bearer_auth(&token).json(&good).send();
    let accepted = accepted.await.unwrap();
    assert_eq!(accepted.status(), 202);
    assert!(accepted.headers().contains_key("inin-ratelimit-allowed"));
    assert!(accepted.bytes().await.unwrap().is_empty());
    assert_eq!(fake.patches().len(), 1);

    fake.expire_tokens();
    let expired = http.patch(&url).bearer_auth(&token).json(&good).send();
    assert_eq!(expired.await.unwrap().status(), 401);
    assert_eq!(fake.patches().len(), 1);
}

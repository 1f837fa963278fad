//! Credential rotation against Secrets Manager on a local AWS and the local Twilio: each strategy's
//! four steps in order and again, the overlap during which old and new credentials both work, a
//! failed test that leaves the current credential in place, and what happens after the grace
//! period.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use genesys_relay::config::{Env, ReceiverConfig, SecretsPolicy};
use genesys_relay::outbound::genesys::{GenesysClient, GenesysCredentials};
use genesys_relay::outbound::twilio::{OutboundSms, Sender, TwilioClient, TwilioCredentials};
use genesys_relay::secrets::rotation::Step;
use genesys_relay::secrets::strategy::OPEN_MESSAGING_TAG;
use genesys_relay::secrets::{CachedSecret, Parser};
use relay_tests::fakes::genesys::FakeGenesys;
use relay_tests::fakes::twilio::FakeTwilio;
use relay_tests::providers::{http_client, TWILIO_ACCOUNT, TWILIO_TOKEN};
use relay_tests::rotation::{
    rotate, rotator, stage_value as value, step, tag, tag_with, token, version_value,
};
use relay_tests::{http_api_request, sign, LocalAws};
use serde_json::{json, Value};

const GRACE_SECS: u64 = 3600;
const KEY_0: &str = "SK00000000000000000000000000000000";

fn receiver_deps(
    aws: &LocalAws,
    queue_url: &str,
    genesys_arn: &str,
    grace: Duration,
) -> receiver::Deps {
    let env: HashMap<&str, String> = HashMap::from([
        ("QUEUE_URL", queue_url.to_owned()),
        ("GENESYS_WEBHOOK_SECRET_ARN", genesys_arn.to_owned()),
        ("TWILIO_SECRET_ARN", genesys_arn.to_owned()),
        ("SECRETS_MAX_AGE_SECS", "0".to_owned()),
        ("SECRETS_PREVIOUS_GRACE_SECS", grace.as_secs().to_string()),
    ]);
    let config = ReceiverConfig::from_env(&Env::from_fn(|k| env.get(k).cloned())).unwrap();
    receiver::Deps::new(config, &aws.sdk)
}

async fn post_signed(deps: &receiver::Deps, key: &str) -> u16 {
    let body = r#"{"topicName": "v2.detail.events.conversation.c1.acw", "eventBody": {"conversationId": "c1"}}"#;
    let signature = sign::hub_signature(key, body);
    let request = http_api_request(
        "POST",
        "/webhooks/genesys",
        &[
            ("content-type", "application/json"),
            ("x-hub-signature-256", &signature),
        ],
        body,
    );
    receiver::handle(request, deps).await.status().as_u16()
}

#[tokio::test]
async fn a_webhook_secret_is_accepted_old_and_new_through_the_rotation_and_old_only_within_the_grace(
) {
    let aws = LocalAws::start().await;
    let queue_url = aws.queue("main").await;
    let arn = aws.secret("genesys-webhook", "old-webhook-secret").await;
    tag(&aws, &arn, "webhook").await;
    let deps = rotator(
        &aws,
        &[("SECRETS_PREVIOUS_GRACE_SECS", GRACE_SECS.to_string())],
    );
    let receiver = receiver_deps(&aws, &queue_url, &arn, Duration::from_secs(GRACE_SECS));
    let t = token(1);

    step(&deps, &arn, Step::Create, &t).await.unwrap();
    let new = version_value(&aws, &arn, &t).await;
    assert_ne!(new, "old-webhook-secret");
    assert_eq!(value(&aws, &arn, "AWSCURRENT").await, "old-webhook-secret");
    // The sender may switch as soon as the new value exists: both are accepted.
    assert_eq!(post_signed(&receiver, "old-webhook-secret").await, 202);
    assert_eq!(post_signed(&receiver, &new).await, 202);

    for s in [Step::Set, Step::Test, Step::Finish] {
        step(&deps, &arn, s, &t).await.unwrap();
    }
    assert_eq!(value(&aws, &arn, "AWSCURRENT").await, new);
    assert_eq!(value(&aws, &arn, "AWSPREVIOUS").await, "old-webhook-secret");
    assert_eq!(post_signed(&receiver, &new).await, 202);
    assert_eq!(
        post_signed(&receiver, "old-webhook-secret").await,
        202,
        "within the grace period"
    );
    // Every step again is a no-op.
    for s in [Step::Create, Step::Set, Step::Test, Step::Finish] {
        step(&deps, &arn, s, &t).await.unwrap();
    }
    assert_eq!(value(&aws, &arn, "AWSCURRENT").await, new);

    let past_grace = receiver_deps(&aws, &queue_url, &arn, Duration::ZERO);
    assert_eq!(post_signed(&past_grace, &new).await, 202);
    assert_eq!(
        post_signed(&past_grace, "old-webhook-secret").await,
        401,
        "after the grace period the old secret is refused"
    );
}

/// The secret `arn` as a client holds it, read again at every use: what a rotation moved shows
/// at once.
fn read_afresh<T>(aws: &LocalAws, arn: &str, parse: Parser<T>) -> Arc<CachedSecret<T>> {
    let policy = SecretsPolicy {
        max_age: Duration::ZERO,
        ..SecretsPolicy::default()
    };
    Arc::new(CachedSecret::new(aws.secrets(), arn, policy, parse))
}

fn twilio_secret(key_sid: &str, key_secret: &str) -> String {
    json!({"accountSid": TWILIO_ACCOUNT, "authToken": TWILIO_TOKEN, "apiKeySid": key_sid,
        "apiKeySecret": key_secret, "from": "+14155550100"})
    .to_string()
}

async fn send(client: &TwilioClient) -> String {
    client
        .send(&OutboundSms {
            to: "+14155550123".into(),
            sender: Sender::From("+14155550100".into()),
            body: "hello".into(),
            status_callback: None,
        })
        .await
        .unwrap()
        .sid
}

fn key_of(secret: &str) -> String {
    serde_json::from_str::<Value>(secret).unwrap()["apiKeySid"]
        .as_str()
        .unwrap()
        .to_owned()
}

struct TwilioSetup {
    aws: LocalAws,
    twilio: FakeTwilio,
    arn: String,
    sender: TwilioClient,
}

async fn twilio_setup() -> TwilioSetup {
    let aws = LocalAws::start().await;
    let twilio = FakeTwilio::start(
        TWILIO_ACCOUNT,
        vec![
            (TWILIO_ACCOUNT.into(), TWILIO_TOKEN.into()),
            (KEY_0.into(), "key-0-secret".into()),
        ],
    )
    .await;
    let arn = aws
        .secret("twilio", &twilio_secret(KEY_0, "key-0-secret"))
        .await;
    tag(&aws, &arn, "twilio-api-key").await;
    let sender = TwilioClient::new(
        http_client(),
        twilio.base_url(),
        read_afresh(&aws, &arn, TwilioCredentials::parse),
    );
    TwilioSetup {
        aws,
        twilio,
        arn,
        sender,
    }
}

#[tokio::test]
async fn a_twilio_key_rotates_while_sending_goes_on_and_replaced_keys_go_after_the_grace() {
    let TwilioSetup {
        aws,
        twilio,
        arn,
        sender,
    } = twilio_setup().await;
    let mut deps = rotator(
        &aws,
        &[
            ("TWILIO_API_BASE", twilio.base_url()),
            ("SECRETS_PREVIOUS_GRACE_SECS", GRACE_SECS.to_string()),
        ],
    );
    let sent_with = |twilio: &FakeTwilio| {
        twilio
            .messages()
            .last()
            .map(|m| m.auth_user.clone())
            .unwrap()
    };

    send(&sender).await;
    assert_eq!(sent_with(&twilio), KEY_0);
    let t1 = token(1);
    step(&deps, &arn, Step::Create, &t1).await.unwrap();
    let key_1 = key_of(&version_value(&aws, &arn, &t1).await);
    assert_ne!(key_1, KEY_0);
    assert!(twilio.keys().iter().any(|k| k.sid == key_1));
    // Running createSecret again keeps the one new key.
    step(&deps, &arn, Step::Create, &t1).await.unwrap();
    assert_eq!(twilio.keys().len(), 2);
    send(&sender).await;
    assert_eq!(
        sent_with(&twilio),
        KEY_0,
        "the current key until finishSecret"
    );
    for s in [Step::Set, Step::Test, Step::Finish] {
        step(&deps, &arn, s, &t1).await.unwrap();
    }
    send(&sender).await;
    assert_eq!(sent_with(&twilio), key_1);
    assert!(
        twilio.keys().iter().any(|k| k.sid == KEY_0),
        "the previous key stays"
    );

    // The second rotation leaves the first key unused, but within its grace: kept.
    rotate(&deps, &arn, &token(2)).await;
    let key_2 = key_of(&value(&aws, &arn, "AWSCURRENT").await);
    assert!(twilio.keys().iter().any(|k| k.sid == KEY_0));
    send(&sender).await;
    assert_eq!(sent_with(&twilio), key_2);

    // Hours later, the third deletes every key no version uses that was replaced before the
    // grace period: the first two. The previous and the current stay.
    deps.clock = genesys_relay::clock::ahead(Duration::from_secs(2 * GRACE_SECS));
    rotate(&deps, &arn, &token(3)).await;
    let key_3 = key_of(&value(&aws, &arn, "AWSCURRENT").await);
    let mut left: Vec<String> = twilio.keys().into_iter().map(|k| k.sid).collect();
    left.sort();
    let mut expected = vec![key_2.clone(), key_3.clone()];
    expected.sort();
    assert_eq!(left, expected);
    send(&sender).await;
    assert_eq!(sent_with(&twilio), key_3);
}

#[tokio::test]
async fn a_failed_test_leaves_the_current_key_in_place_and_in_use() {
    let TwilioSetup {
        aws,
        twilio,
        arn,
        sender,
    } = twilio_setup().await;
    let deps = rotator(
        &aws,
        &[
            ("TWILIO_API_BASE", twilio.base_url()),
            ("SECRETS_PREVIOUS_GRACE_SECS", GRACE_SECS.to_string()),
        ],
    );
    let t = token(1);
    step(&deps, &arn, Step::Create, &t).await.unwrap();
    let new_key = key_of(&version_value(&aws, &arn, &t).await);
    // The new key is revoked before it is tested.
    let revoke = reqwest::Client::new()
        .delete(format!(
            "{}/2010-04-01/Accounts/{TWILIO_ACCOUNT}/Keys/{new_key}.json",
            twilio.base_url()
        ))
        .basic_auth(TWILIO_ACCOUNT, Some(TWILIO_TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), 204);
    step(&deps, &arn, Step::Set, &t).await.unwrap();
    let failure = step(&deps, &arn, Step::Test, &t).await.unwrap_err();
    assert!(failure.contains("401"), "{failure}");
    assert_eq!(key_of(&value(&aws, &arn, "AWSCURRENT").await), KEY_0);
    send(&sender).await;
    assert_eq!(twilio.messages().last().unwrap().auth_user, KEY_0);
}

/// A Genesys organization with the relay's two clients and an admin client, its credentials
/// secrets, and a Genesys client reading the relay's secret as the processor does.
struct GenesysSetup {
    aws: LocalAws,
    genesys: FakeGenesys,
    arn: String,
    rotator: rotator::Deps,
    client: GenesysClient,
}

/// A rotator calling `genesys` with its admin client (`relay-admin`), whose secret it stores.
async fn genesys_rotator(aws: &LocalAws, genesys: &FakeGenesys) -> rotator::Deps {
    let admin = aws
        .secret(
            "genesys-admin",
            &json!({"clientId": "relay-admin", "clientSecret": "admin-secret"}).to_string(),
        )
        .await;
    rotator(
        aws,
        &[
            ("GENESYS_API_BASE", genesys.base_url()),
            ("GENESYS_LOGIN_BASE", genesys.base_url()),
            ("GENESYS_ADMIN_SECRET_ARN", admin),
        ],
    )
}

async fn genesys_setup() -> GenesysSetup {
    let aws = LocalAws::start().await;
    let genesys = FakeGenesys::start("relay-a", "secret-a", 3600).await;
    genesys.add_client("relay-b", "secret-b");
    genesys.add_client("relay-admin", "admin-secret");
    let arn = aws
        .secret(
            "genesys",
            &json!({"clientId": "relay-a", "clientSecret": "secret-a", "standbyClientId": "relay-b"})
                .to_string(),
        )
        .await;
    tag(&aws, &arn, "genesys-oauth").await;
    let rotator = genesys_rotator(&aws, &genesys).await;
    let client = GenesysClient::new(
        http_client(),
        genesys.endpoints(),
        read_afresh(&aws, &arn, GenesysCredentials::parse),
    );
    GenesysSetup {
        aws,
        genesys,
        arn,
        rotator,
        client,
    }
}

fn client_of(secret: &str) -> (String, String) {
    let value: Value = serde_json::from_str(secret).unwrap();
    (
        value["clientId"].as_str().unwrap().to_owned(),
        value["clientSecret"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn genesys_credentials_switch_between_two_clients_and_the_one_in_use_is_never_regenerated() {
    let GenesysSetup {
        aws,
        genesys,
        arn,
        rotator,
        client,
    } = genesys_setup().await;
    client.wrapup_codes(None).await.unwrap();

    let t1 = token(1);
    step(&rotator, &arn, Step::Create, &t1).await.unwrap();
    let (standby, new_secret) = client_of(&version_value(&aws, &arn, &t1).await);
    assert_eq!(standby, "relay-b");
    assert_eq!(genesys.client_secret_of("relay-b").unwrap(), new_secret);
    assert_eq!(
        genesys.client_secret_of("relay-a").unwrap(),
        "secret-a",
        "the client in use keeps its secret"
    );
    step(&rotator, &arn, Step::Create, &t1).await.unwrap();
    assert_eq!(
        genesys.client_secret_of("relay-b").unwrap(),
        new_secret,
        "createSecret again regenerates nothing"
    );
    sign_in_again(&client, &genesys).await;
    for s in [Step::Set, Step::Test, Step::Finish] {
        step(&rotator, &arn, s, &t1).await.unwrap();
    }
    assert_eq!(
        client_of(&value(&aws, &arn, "AWSCURRENT").await).0,
        "relay-b"
    );
    sign_in_again(&client, &genesys).await;

    // The next rotation regenerates the first client, now the standby one.
    rotate(&rotator, &arn, &token(2)).await;
    let (in_use, secret) = client_of(&value(&aws, &arn, "AWSCURRENT").await);
    assert_eq!(in_use, "relay-a");
    assert_ne!(secret, "secret-a");
    sign_in_again(&client, &genesys).await;
}

/// What the processor does after a rotation: its token lapses, it signs in again with whatever
/// the secret holds now, and the call goes through.
async fn sign_in_again(client: &GenesysClient, genesys: &FakeGenesys) {
    genesys.expire_tokens();
    client.wrapup_codes(None).await.unwrap();
}

#[tokio::test]
async fn a_failed_genesys_test_leaves_the_current_client_in_place() {
    let GenesysSetup {
        aws,
        genesys,
        arn,
        rotator,
        client,
    } = genesys_setup().await;
    let t = token(1);
    step(&rotator, &arn, Step::Create, &t).await.unwrap();
    // Someone regenerates the standby client's secret again before the test.
    genesys.add_client("relay-b", "changed-elsewhere");
    step(&rotator, &arn, Step::Set, &t).await.unwrap();
    let failure = step(&rotator, &arn, Step::Test, &t).await.unwrap_err();
    assert!(failure.contains("refused"), "{failure}");
    assert_eq!(
        client_of(&value(&aws, &arn, "AWSCURRENT").await).0,
        "relay-a"
    );
    sign_in_again(&client, &genesys).await;
}

#[tokio::test]
async fn an_open_messaging_secret_is_pushed_to_genesys_and_both_are_accepted_meanwhile() {
    let aws = LocalAws::start().await;
    let queue_url = aws.queue("main").await;
    let genesys = FakeGenesys::start("relay-admin", "admin-secret", 3600).await;
    genesys.add_open_integration("5a8f0b3c-1d2e-4f60-8a9b-0c1d2e3f4a5b", "old-token");
    let arn = aws.secret("genesys-webhook", "old-token").await;
    tag(&aws, &arn, "webhook").await;
    tag_with(
        &aws,
        &arn,
        OPEN_MESSAGING_TAG,
        "5a8f0b3c-1d2e-4f60-8a9b-0c1d2e3f4a5b",
    )
    .await;
    let rotator = genesys_rotator(&aws, &genesys).await;
    let receiver = receiver_deps(&aws, &queue_url, &arn, Duration::from_secs(GRACE_SECS));
    let t = token(1);
    step(&rotator, &arn, Step::Create, &t).await.unwrap();
    let new = version_value(&aws, &arn, &t).await;
    assert_eq!(
        genesys
            .open_integration_token("5a8f0b3c-1d2e-4f60-8a9b-0c1d2e3f4a5b")
            .unwrap(),
        "old-token",
        "Genesys learns the new token at setSecret"
    );
    step(&rotator, &arn, Step::Set, &t).await.unwrap();
    assert_eq!(
        genesys
            .open_integration_token("5a8f0b3c-1d2e-4f60-8a9b-0c1d2e3f4a5b")
            .unwrap(),
        new
    );
    // Genesys signs with the new token from now on; a webhook already in flight with the old.
    assert_eq!(post_signed(&receiver, &new).await, 202);
    assert_eq!(post_signed(&receiver, "old-token").await, 202);
    for s in [Step::Test, Step::Finish] {
        step(&rotator, &arn, s, &t).await.unwrap();
    }
    assert_eq!(value(&aws, &arn, "AWSCURRENT").await, new);
    assert_eq!(post_signed(&receiver, &new).await, 202);
}

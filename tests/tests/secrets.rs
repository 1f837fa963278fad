//! The secrets cache against Secrets Manager on a local AWS.

use std::time::Duration;

use genesys_relay::config::SecretsPolicy;
use genesys_relay::inbound::auth::Keys;
use genesys_relay::secrets::CachedSecret;
use relay_tests::LocalAws;
use secrecy::ExposeSecret;

fn first_key(keys: &genesys_relay::inbound::auth::Keys) -> String {
    keys.secrets[0].expose_secret().to_owned()
}

#[tokio::test]
async fn an_expired_value_is_kept_while_secrets_manager_is_unreachable() {
    let mut aws = LocalAws::start().await;
    let arn = aws.secret("webhook", "v1").await;
    let policy = SecretsPolicy {
        max_age: Duration::ZERO,
        refresh_min_interval: Duration::from_secs(60),
        ..SecretsPolicy::default()
    };
    let cache = CachedSecret::new(aws.secrets(), arn, policy, Keys::parse);
    assert_eq!(first_key(&cache.current().await.unwrap()), "v1");

    aws.stop();
    assert_eq!(
        first_key(&cache.current().await.unwrap()),
        "v1",
        "stale beats down"
    );

    // A value a downstream refused is never served stale.
    cache.invalidate().await;
    assert_eq!(cache.current().await.unwrap_err().class(), "retryable");
}

#[tokio::test]
async fn the_current_version_is_read_after_a_rotation() {
    let aws = LocalAws::start().await;
    let arn = aws.secret("webhook", "v1").await;
    let cache = CachedSecret::new(aws.secrets(), arn, SecretsPolicy::default(), Keys::parse);
    assert_eq!(first_key(&cache.current().await.unwrap()), "v1");
    aws.secrets()
        .put_secret_value()
        .secret_id("webhook")
        .secret_string("v2")
        .send()
        .await
        .unwrap();
    assert_eq!(
        first_key(&cache.current().await.unwrap()),
        "v1",
        "cached within its max age"
    );
    cache.invalidate().await;
    assert_eq!(first_key(&cache.current().await.unwrap()), "v2");
    // A forced re-read after a failed verification happens at most once per interval.
    let seen = cache.current().await.unwrap();
    let fresh = cache.fresher_than(&seen).await.unwrap();
    assert!(fresh.is_some());
    assert!(cache.fresher_than(&fresh.unwrap()).await.unwrap().is_none());
}

#[tokio::test]
async fn a_failure_with_keys_another_request_has_since_replaced_is_checked_against_the_new_ones() {
    let aws = LocalAws::start().await;
    let arn = aws.secret("webhook", "v1").await;
    let cache = CachedSecret::new(aws.secrets(), arn, SecretsPolicy::default(), Keys::parse);
    // Two requests signed with a rotated key arrive together; both read the cached keys.
    let first = cache.current().await.unwrap();
    let second = cache.current().await.unwrap();
    aws.secrets()
        .put_secret_value()
        .secret_id("webhook")
        .secret_string("v2")
        .send()
        .await
        .unwrap();
    // The first one's failure reads the secret again ...
    let fresh = cache.fresher_than(&first).await.unwrap().unwrap();
    assert_eq!(first_key(&fresh), "v2");
    // ... and the second one's, inside the re-read interval, gets those keys instead of a refusal.
    let shared = cache.fresher_than(&second).await.unwrap();
    assert_eq!(shared.as_deref().map(first_key).as_deref(), Some("v2"));
}

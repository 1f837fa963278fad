//! The DynamoDB claim store on a local AWS, through `Idempotency`: the conditional writes hold the
//! semantics the in-memory store's unit tests (`shared/src/state/idempotency.rs`) check.

use std::time::Duration;

use genesys_relay::clock;
use genesys_relay::inbound::event::EventKey;
use genesys_relay::state::idempotency::{Claim, Idempotency};
use relay_tests::LocalAws;

async fn store() -> (LocalAws, Idempotency) {
    let aws = LocalAws::start().await;
    aws.table("state").await;
    let idempotency = Idempotency::new(aws.dynamodb(), "state", Duration::from_secs(3600));
    (aws, idempotency)
}

const LEASE: Duration = Duration::from_secs(60);

#[tokio::test]
async fn of_concurrent_claims_on_one_key_exactly_one_runs() {
    let (aws, _) = store().await;
    let (_relay, ddb) = aws.serialized_dynamodb().await;
    let idempotency = Idempotency::new(ddb, "state", Duration::from_secs(3600));
    let key = EventKey::from_parts(&["conv-1", "1700000000000"]);
    let claims = futures_util::future::join_all(
        (0..8).map(|_| idempotency.claim("sms_on_wrapup", &key, b"payload", LEASE)),
    )
    .await;
    let acquired = claims
        .iter()
        .filter(|c| matches!(c, Ok(Claim::Acquired(_))))
        .count();
    let busy = claims
        .iter()
        .filter(|c| matches!(c, Err(e) if e.class() == "retryable"))
        .count();
    assert_eq!((acquired, busy), (1, 7), "{claims:?}");
}

#[tokio::test]
async fn a_completed_claim_returns_its_result_and_a_released_one_runs_again() {
    let (_aws, idempotency) = store().await;
    let key = EventKey::from_parts(&["k1"]);
    let Claim::Acquired(token) = idempotency.claim("a", &key, b"p", LEASE).await.unwrap() else {
        panic!("first claim acquires");
    };
    idempotency.complete(&token, "SM123").await.unwrap();
    assert_eq!(
        idempotency.claim("a", &key, b"p", LEASE).await.unwrap(),
        Claim::Completed("SM123".into())
    );
    // Another action on the same event is independent.
    assert!(matches!(
        idempotency.claim("b", &key, b"p", LEASE).await.unwrap(),
        Claim::Acquired(_)
    ));

    let other = EventKey::from_parts(&["k2"]);
    let Claim::Acquired(token) = idempotency.claim("a", &other, b"p", LEASE).await.unwrap() else {
        panic!("claim acquires");
    };
    idempotency.release(&token).await.unwrap();
    assert!(matches!(
        idempotency.claim("a", &other, b"p", LEASE).await.unwrap(),
        Claim::Acquired(_)
    ));
}

#[tokio::test]
async fn the_same_key_with_another_payload_is_permanent() {
    let (_aws, idempotency) = store().await;
    let key = EventKey::from_parts(&["k"]);
    let Claim::Acquired(token) = idempotency.claim("a", &key, b"one", LEASE).await.unwrap() else {
        panic!("claim acquires");
    };
    idempotency.complete(&token, "done").await.unwrap();
    let error = idempotency
        .claim("a", &key, b"two", LEASE)
        .await
        .unwrap_err();
    assert_eq!(error.class(), "permanent", "{error}");
}

#[tokio::test]
async fn an_expired_lease_or_window_can_be_taken_over() {
    let (aws, idempotency) = store().await;
    let key = EventKey::from_parts(&["crashed"]);
    // A claimant that crashed: its lease (zero) has already run out.
    assert!(matches!(
        idempotency
            .claim("a", &key, b"p", Duration::ZERO)
            .await
            .unwrap(),
        Claim::Acquired(_)
    ));
    // The same table a moment later.
    let later = || {
        Idempotency::new(aws.dynamodb(), "state", Duration::from_secs(3600))
            .with_clock(clock::ahead(Duration::from_secs(2)))
    };
    assert!(matches!(
        later().claim("a", &key, b"p", LEASE).await.unwrap(),
        Claim::Acquired(_)
    ));

    // A completed record past its window counts as absent even though TTL has not deleted it.
    let short = Idempotency::new(aws.dynamodb(), "state", Duration::ZERO);
    let key = EventKey::from_parts(&["old"]);
    let Claim::Acquired(token) = short.claim("a", &key, b"p", LEASE).await.unwrap() else {
        panic!("claim acquires");
    };
    short.complete(&token, "x").await.unwrap();
    assert!(matches!(
        later().claim("a", &key, b"p", LEASE).await.unwrap(),
        Claim::Acquired(_)
    ));
}

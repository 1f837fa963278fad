//! The per-endpoint circuit breaker against DynamoDB on a local AWS. Two breakers on one table
//! stand for two processor instances running at once; time is driven through `now`.
//!
//! DynamoDB applies each conditional write atomically; moto does not (its threaded server checks
//! a condition and applies the update in separate steps, so two concurrent writes can both pass).
//! The breakers therefore reach moto through `LocalAws::serialized_dynamodb`, which hands it one
//! request at a time: every request is atomic as in DynamoDB, while the breakers' calls still
//! interleave.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use aws_sdk_dynamodb::types::AttributeValue;
use futures_util::future::join_all;
use genesys_relay::outbound::forward::circuit::{CircuitBreaker, CircuitPolicy, Permit};
use genesys_relay::state::table::{self, epoch_millis, epoch_secs, text, Item};
use relay_tests::fakes::server::Served;
use relay_tests::LocalAws;

const ENDPOINT: &str = "crm";
const SECOND: Duration = Duration::from_secs(1);

/// The default thresholds, with a probe lease unlike `open_for` so the two can be told apart.
fn policy() -> CircuitPolicy {
    CircuitPolicy {
        failure_ratio: 0.5,
        min_requests: 10,
        window: Duration::from_secs(60),
        open_for: Duration::from_secs(30),
        probe_lease: Duration::from_secs(20),
    }
}

/// A local AWS with the state table, a relay to it, and two breakers (instances) sharing it.
async fn two_instances() -> (LocalAws, Served, CircuitBreaker, CircuitBreaker) {
    let aws = LocalAws::start().await;
    aws.table("state").await;
    let (relay, ddb) = aws.serialized_dynamodb().await;
    let a = CircuitBreaker::new(ddb.clone(), "state", policy());
    let b = CircuitBreaker::new(ddb, "state", policy());
    (aws, relay, a, b)
}

fn open_for(retry_after: Duration) -> Permit {
    Permit::Open { retry_after }
}

/// One delivery through `breaker` as the forward action makes it: permit (which must be
/// `Closed`), then the outcome.
async fn deliver(breaker: &CircuitBreaker, success: bool, now: SystemTime) {
    let permit = breaker.permit(ENDPOINT, now).await.unwrap();
    assert_eq!(permit, Permit::Closed, "a delivery at {now:?}");
    breaker
        .record(ENDPOINT, &permit, success, now)
        .await
        .unwrap();
}

/// Both instances' answer at `now`.
async fn both(a: &CircuitBreaker, b: &CircuitBreaker, now: SystemTime) -> (Permit, Permit) {
    (
        a.permit(ENDPOINT, now).await.unwrap(),
        b.permit(ENDPOINT, now).await.unwrap(),
    )
}

/// Opens the circuit at `now` with `min_requests` failures, half from each instance.
async fn trip(a: &CircuitBreaker, b: &CircuitBreaker, now: SystemTime) {
    for i in 0..10 {
        deliver(if i % 2 == 0 { a } else { b }, false, now).await;
    }
    assert_eq!(
        both(a, b, now).await,
        (open_for(30 * SECOND), open_for(30 * SECOND))
    );
}

/// The endpoint's item as stored.
async fn stored(aws: &LocalAws, endpoint: &str) -> HashMap<String, AttributeValue> {
    aws.dynamodb()
        .get_item()
        .table_name("state")
        .key("pk", AttributeValue::S(format!("circuit#{endpoint}")))
        .key("sk", AttributeValue::S("circuit".into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .unwrap_or_default()
}

fn number(item: &Item, name: &str) -> Option<u64> {
    table::number(item, name)
}

#[tokio::test]
async fn stays_closed_below_min_requests_even_when_every_delivery_fails() {
    let (aws, _relay, a, b) = two_instances().await;
    let t0 = SystemTime::now();
    for i in 0..9 {
        deliver(if i % 2 == 0 { &a } else { &b }, false, t0 + i * SECOND).await;
    }
    assert_eq!(
        both(&a, &b, t0 + 9 * SECOND).await,
        (Permit::Closed, Permit::Closed)
    );
    let item = stored(&aws, ENDPOINT).await;
    assert_eq!(
        (
            number(&item, "request_count"),
            number(&item, "failure_count")
        ),
        (Some(9), Some(9)),
        "both instances count into one window: {item:?}"
    );
}

#[tokio::test]
async fn opens_when_both_instances_failures_reach_the_ratio_and_both_then_defer() {
    let (aws, _relay, a, b) = two_instances().await;
    let t0 = SystemTime::now();
    for _ in 0..6 {
        deliver(&a, true, t0).await;
    }
    for _ in 0..5 {
        deliver(&b, false, t0).await;
    }
    deliver(&a, true, t0).await;
    // 13 requests, 6 failed: 46 %.
    deliver(&b, false, t0).await;
    assert_eq!(both(&a, &b, t0).await, (Permit::Closed, Permit::Closed));
    // 14 requests, 7 failed: 50 %, and from two instances.
    let t1 = t0 + 2 * SECOND;
    deliver(&a, false, t1).await;
    assert_eq!(
        both(&a, &b, t1).await,
        (open_for(30 * SECOND), open_for(30 * SECOND))
    );
    assert_eq!(
        both(&a, &b, t1 + 10 * SECOND).await,
        (open_for(20 * SECOND), open_for(20 * SECOND))
    );
    let almost = t1 + 30 * SECOND - Duration::from_millis(1);
    assert_eq!(
        both(&a, &b, almost).await,
        (
            open_for(Duration::from_millis(1)),
            open_for(Duration::from_millis(1))
        )
    );

    // Late outcomes of deliveries permitted before it opened, or never made, change nothing.
    b.record(ENDPOINT, &Permit::Closed, true, t1 + SECOND)
        .await
        .unwrap();
    a.record(ENDPOINT, &open_for(SECOND), false, t1 + SECOND)
        .await
        .unwrap();
    assert_eq!(
        a.permit(ENDPOINT, t1 + 10 * SECOND).await.unwrap(),
        open_for(20 * SECOND)
    );
    let item = stored(&aws, ENDPOINT).await;
    assert_eq!(text(&item, "state"), Some("open"), "{item:?}");
    assert_eq!(
        number(&item, "open_until"),
        Some(epoch_millis(t1 + 30 * SECOND))
    );
}

#[tokio::test]
async fn after_open_for_exactly_one_concurrent_caller_probes_and_its_success_closes() {
    let (aws, _relay, a, b) = two_instances().await;
    let t0 = SystemTime::now();
    trip(&a, &b, t0).await;

    let t1 = t0 + 30 * SECOND;
    let breakers: Vec<&CircuitBreaker> = (0..8).map(|i| if i % 2 == 0 { &a } else { &b }).collect();
    let permits = join_all(breakers.iter().map(|breaker| breaker.permit(ENDPOINT, t1))).await;
    let permits: Vec<Permit> = permits.into_iter().map(Result::unwrap).collect();
    let probes: Vec<usize> = (0..permits.len())
        .filter(|&i| matches!(permits[i], Permit::Probe { .. }))
        .collect();
    assert_eq!(probes.len(), 1, "{permits:?}");
    assert!(
        permits
            .iter()
            .all(|p| matches!(p, Permit::Probe { .. }) || *p == open_for(20 * SECOND)),
        "everyone else waits out the probe lease: {permits:?}"
    );
    // While the probe is in flight, both instances keep deferring.
    assert_eq!(
        both(&a, &b, t1 + 5 * SECOND).await,
        (open_for(15 * SECOND), open_for(15 * SECOND))
    );

    let prober = breakers[probes[0]];
    let t2 = t1 + 2 * SECOND;
    prober
        .record(ENDPOINT, &permits[probes[0]], true, t2)
        .await
        .unwrap();
    assert_eq!(both(&a, &b, t2).await, (Permit::Closed, Permit::Closed));
    let item = stored(&aws, ENDPOINT).await;
    assert_eq!(text(&item, "state"), Some("closed"));
    assert_eq!(
        (
            number(&item, "request_count"),
            number(&item, "failure_count")
        ),
        (Some(0), Some(0)),
        "counters reset: {item:?}"
    );
    assert!(!item.contains_key("open_until") && !item.contains_key("probe_until"));

    // The old failures are gone: nine new ones stay below min_requests.
    for i in 0..9 {
        deliver(if i % 2 == 0 { &a } else { &b }, false, t2).await;
    }
    assert_eq!(both(&a, &b, t2).await, (Permit::Closed, Permit::Closed));
}

#[tokio::test]
async fn a_failed_probe_reopens_the_circuit_for_open_for() {
    let (_aws, _relay, a, b) = two_instances().await;
    let t0 = SystemTime::now();
    trip(&a, &b, t0).await;

    let t1 = t0 + 30 * SECOND;
    let probe = a.permit(ENDPOINT, t1).await.unwrap();
    assert!(matches!(probe, Permit::Probe { .. }), "{probe:?}");
    let t2 = t1 + 3 * SECOND;
    a.record(ENDPOINT, &probe, false, t2).await.unwrap();
    assert_eq!(
        both(&a, &b, t2).await,
        (open_for(30 * SECOND), open_for(30 * SECOND))
    );
    assert_eq!(
        both(&a, &b, t2 + 29 * SECOND).await,
        (open_for(SECOND), open_for(SECOND))
    );
    assert!(matches!(
        b.permit(ENDPOINT, t2 + 30 * SECOND).await.unwrap(),
        Permit::Probe { .. }
    ));
}

#[tokio::test]
async fn a_crashed_probe_lapses_after_its_lease_and_another_caller_takes_it() {
    let (_aws, _relay, a, b) = two_instances().await;
    let t0 = SystemTime::now();
    trip(&a, &b, t0).await;

    let t1 = t0 + 30 * SECOND;
    // `a` takes the probe and is not heard from until its lease has lapsed.
    let stale = a.permit(ENDPOINT, t1).await.unwrap();
    assert!(matches!(stale, Permit::Probe { .. }), "{stale:?}");
    assert_eq!(
        b.permit(ENDPOINT, t1 + 19 * SECOND).await.unwrap(),
        open_for(SECOND)
    );
    let t2 = t1 + 20 * SECOND;
    let probe = b.permit(ENDPOINT, t2).await.unwrap();
    assert!(matches!(probe, Permit::Probe { .. }), "{probe:?}");
    assert_ne!(probe, stale, "the new probe has its own lease");
    assert_eq!(
        a.permit(ENDPOINT, t2).await.unwrap(),
        open_for(20 * SECOND),
        "the new probe has its own lease"
    );
    // The lapsed probe's failure arrives late: it no longer decides anything.
    a.record(ENDPOINT, &stale, false, t2 + SECOND / 2)
        .await
        .unwrap();
    assert_eq!(
        both(&a, &b, t2 + SECOND / 2).await,
        (
            open_for(20 * SECOND - SECOND / 2),
            open_for(20 * SECOND - SECOND / 2)
        ),
        "still half-open under the new probe"
    );
    b.record(ENDPOINT, &probe, true, t2 + SECOND).await.unwrap();
    assert_eq!(
        both(&a, &b, t2 + SECOND).await,
        (Permit::Closed, Permit::Closed)
    );
}

#[tokio::test]
async fn a_new_window_forgets_old_failures_and_is_started_once() {
    let (aws, _relay, a, b) = two_instances().await;
    let t0 = SystemTime::now();
    for i in 0..9 {
        deliver(if i % 2 == 0 { &a } else { &b }, false, t0).await;
    }

    // A window later both instances fail at once; only one of them may start the new window.
    let t1 = t0 + 60 * SECOND;
    let (ra, rb) = tokio::join!(
        a.record(ENDPOINT, &Permit::Closed, false, t1),
        b.record(ENDPOINT, &Permit::Closed, false, t1)
    );
    ra.unwrap();
    rb.unwrap();
    assert_eq!(both(&a, &b, t1).await, (Permit::Closed, Permit::Closed));
    let item = stored(&aws, ENDPOINT).await;
    assert_eq!(
        (
            number(&item, "window_start"),
            number(&item, "request_count"),
            number(&item, "failure_count")
        ),
        (Some(epoch_millis(t1)), Some(2), Some(2)),
        "neither outcome lost, none of the old ones kept: {item:?}"
    );

    for i in 0..7 {
        deliver(if i % 2 == 0 { &a } else { &b }, false, t1 + SECOND).await;
    }
    assert_eq!(
        both(&a, &b, t1 + SECOND).await,
        (Permit::Closed, Permit::Closed)
    );
    deliver(&a, false, t1 + SECOND).await;
    assert_eq!(
        both(&a, &b, t1 + SECOND).await,
        (open_for(30 * SECOND), open_for(30 * SECOND))
    );
}

#[tokio::test]
async fn successes_keep_it_closed() {
    let (aws, _relay, a, b) = two_instances().await;
    let t0 = SystemTime::now();
    // Two successes to every failure, over three times min_requests.
    for i in 0..30 {
        deliver(if i % 2 == 0 { &a } else { &b }, i % 3 != 2, t0).await;
    }
    assert_eq!(both(&a, &b, t0).await, (Permit::Closed, Permit::Closed));
    let item = stored(&aws, ENDPOINT).await;
    assert_eq!(
        (
            number(&item, "request_count"),
            number(&item, "failure_count")
        ),
        (Some(30), Some(10))
    );
}

#[tokio::test]
async fn each_endpoint_has_one_item_that_expires_a_week_after_its_last_write() {
    let (aws, _relay, a, b) = two_instances().await;
    let t0 = SystemTime::now();
    assert!(
        stored(&aws, ENDPOINT).await.is_empty(),
        "asking alone writes nothing"
    );
    assert_eq!(a.permit(ENDPOINT, t0).await.unwrap(), Permit::Closed);
    assert!(stored(&aws, ENDPOINT).await.is_empty());

    trip(&a, &b, t0).await;
    assert_eq!(a.permit("billing", t0).await.unwrap(), Permit::Closed);

    let later = t0 + 3600 * SECOND;
    assert_eq!(
        b.permit(ENDPOINT, later).await.unwrap(),
        Permit::Probe {
            lease: epoch_millis(later + 20 * SECOND)
        }
    );
    let item = stored(&aws, ENDPOINT).await;
    assert_eq!(text(&item, "pk"), Some("circuit#crm"));
    assert_eq!(text(&item, "sk"), Some("circuit"));
    assert_eq!(text(&item, "state"), Some("half_open"));
    assert_eq!(
        number(&item, "probe_until"),
        Some(epoch_millis(later + 20 * SECOND))
    );
    assert_eq!(
        number(&item, "expires_at"),
        Some(epoch_secs(later) + 7 * 24 * 3600)
    );
}

#[tokio::test]
async fn dynamodb_failures_are_retryable() {
    let aws = LocalAws::start().await;
    let breaker = CircuitBreaker::new(aws.dynamodb(), "no-such-table", policy());
    let now = SystemTime::now();
    let error = breaker.permit(ENDPOINT, now).await.unwrap_err();
    assert_eq!(error.class(), "retryable", "{error}");
    for permit in [Permit::Closed, Permit::Probe { lease: 1 }] {
        let error = breaker
            .record(ENDPOINT, &permit, false, now)
            .await
            .unwrap_err();
        assert_eq!(error.class(), "retryable", "{permit:?}: {error}");
    }
}

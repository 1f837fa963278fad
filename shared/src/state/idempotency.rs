//! Claim / complete / release on DynamoDB, with the semantics of AWS Powertools' idempotency.
//!
//! Each (action, event key) pair is one record. A claim is a conditional put that succeeds only
//! when no live record exists, so of two concurrent claims exactly one runs. A completed record
//! returns its stored result to every repeat within the window; an in-progress record is leased
//! for the claimant's remaining invocation time, after which another attempt may take it over.
//! A retryable failure releases (deletes) the claim so the retry can run.
//!
//! The window between a side effect (an SMS) and `complete` is where a crash can still repeat
//! the effect: the lease expires and the retry runs again. Providers without an idempotency key
//! (Twilio) cannot close that window from this side.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use crate::clock::{self, Clock};
use crate::config::ActionsConfig;
use crate::error::{Error, Result};
use crate::inbound::event::EventKey;
use crate::state::claims::{ClaimRecord, ClaimStatus, ClaimStore, DynamoClaims};
use crate::state::records::IDEMPOTENCY;
use crate::state::table::{epoch_millis, epoch_secs};

/// Default idempotency window.
pub(crate) const DEFAULT_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// Lease used when an invocation has no deadline (local runs, tests).
pub(crate) const DEFAULT_LEASE: Duration = Duration::from_secs(60);

/// The lease for claims made in an invocation that must end by `deadline_ms` (epoch ms, as the
/// Lambda context gives it): its remaining time.
pub fn lease_until(deadline_ms: u64) -> Duration {
    let now = epoch_millis(SystemTime::now());
    match deadline_ms.checked_sub(now) {
        Some(left) if deadline_ms > 0 => Duration::from_millis(left),
        _ => DEFAULT_LEASE,
    }
}

/// What a claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This caller owns the work: run it, then `complete` or `release`.
    Acquired(ClaimToken),
    /// The work was done already; here is its stored result.
    Completed(String),
}

/// Proof of a claim, needed to complete or release it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimToken {
    key: String,
    window: Duration,
}

/// Idempotency claims, over a [`ClaimStore`].
#[derive(Clone)]
pub struct Idempotency {
    store: Arc<dyn ClaimStore>,
    window: Duration,
    /// Actions remembered longer than `window`, e.g. the SMS, which no redrive may repeat.
    windows: Vec<(String, Duration)>,
    clock: Clock,
}

impl std::fmt::Debug for Idempotency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Idempotency")
            .field("window", &self.window)
            .field("windows", &self.windows)
            .finish_non_exhaustive()
    }
}

impl Idempotency {
    /// Records in the DynamoDB table `table`, kept for `window` after completion.
    pub fn new(ddb: aws_sdk_dynamodb::Client, table: impl Into<String>, window: Duration) -> Self {
        Self::over(Arc::new(DynamoClaims::new(ddb, table)), window)
    }

    /// Records in `store`, kept for `window` after completion.
    pub fn over(store: Arc<dyn ClaimStore>, window: Duration) -> Self {
        Self {
            store,
            window,
            windows: Vec::new(),
            clock: clock::system(),
        }
    }

    /// Records for the actions as configured: the general window, and the SMS's own, which
    /// outlives every path back into the pipeline; forwarding deliveries keep it too, so a replay
    /// weeks later delivers nothing an endpoint already has.
    pub fn for_actions(store: Arc<dyn ClaimStore>, config: &ActionsConfig) -> Self {
        Self::over(store, config.idempotency_window)
            .with_window(crate::actions::sms_on_wrapup::NAME, config.sms_window)
            .with_window(crate::outbound::forward::NAME_PREFIX, config.sms_window)
    }

    /// Remembers `action`'s results for `window` instead of the general one; an `action` ending in
    /// `:` names every action it prefixes (`forward:` for each endpoint's deliveries).
    pub(crate) fn with_window(mut self, action: &str, window: Duration) -> Self {
        self.windows.retain(|(name, _)| name != action);
        self.windows.push((action.to_owned(), window));
        self
    }

    /// Reads the time from `clock` (tests move it forward instead of waiting).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    fn window_for(&self, action: &str) -> Duration {
        self.windows
            .iter()
            .find(|(name, _)| {
                name == action || (name.ends_with(':') && action.starts_with(name.as_str()))
            })
            .map_or(self.window, |(_, window)| *window)
    }

    /// Claims `(action, key)` for `lease` (the invocation's remaining time). `payload` is hashed:
    /// the same key with a different payload is a `Permanent` error, since it means two different
    /// events were given one key. A live claim held by someone else is `Retryable`.
    pub async fn claim(
        &self,
        action: &str,
        key: &EventKey,
        payload: &[u8],
        lease: Duration,
    ) -> Result<Claim> {
        let window = self.window_for(action);
        let validation = hex::encode(Sha256::digest(payload));
        let now = (self.clock)();
        let record = ClaimRecord {
            key: record_key(action, key),
            action: action.to_owned(),
            event_key: key.as_str().to_owned(),
            status: ClaimStatus::InProgress,
            validation,
            data: None,
            expires_at: epoch_secs(now) + window.as_secs(),
            lease_until_ms: epoch_millis(now) + lease.as_millis() as u64,
        };
        match self.store.put_unless_live(&record, now).await? {
            None => Ok(Claim::Acquired(ClaimToken {
                key: record.key,
                window,
            })),
            Some(existing) => existing_claim(action, key, &record.validation, &existing),
        }
    }

    /// Marks the work done and stores its result for repeats.
    pub async fn complete(&self, token: &ClaimToken, result: &str) -> Result<()> {
        let expires = epoch_secs((self.clock)()) + token.window.as_secs();
        self.store.complete(&token.key, result, expires).await
    }

    /// Gives the claim up so a retry can run (after a retryable failure, or before dead-lettering).
    pub async fn release(&self, token: &ClaimToken) -> Result<()> {
        self.store.delete(&token.key).await
    }
}

/// Decides what an existing, live record means for this claim.
fn existing_claim(
    action: &str,
    key: &EventKey,
    validation: &str,
    existing: &ClaimRecord,
) -> Result<Claim> {
    if !existing.validation.is_empty() && existing.validation != validation {
        return Err(Error::permanent(format!(
            "event key {key} was already used for {action} with a different payload"
        )));
    }
    match existing.status {
        ClaimStatus::Completed => Ok(Claim::Completed(existing.data.clone().unwrap_or_default())),
        ClaimStatus::InProgress => Err(Error::Retryable {
            message: format!("{action} for {key} is already in progress"),
            retry_after: None,
        }),
    }
}

/// The record's partition key: hashed, so any event key fits and none leaks into key names.
fn record_key(action: &str, key: &EventKey) -> String {
    let mut hash = Sha256::new();
    hash.update(action.as_bytes());
    hash.update([0x1f]);
    hash.update(key.as_str().as_bytes());
    IDEMPOTENCY.pk(&hex::encode(hash.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::claims::MemoryClaims;

    const LEASE: Duration = Duration::from_secs(60);

    /// Claims in memory, and the same claims seen `later` by a clock moved on.
    fn claims() -> (Arc<MemoryClaims>, Idempotency) {
        let store = Arc::new(MemoryClaims::default());
        let idempotency = Idempotency::over(store.clone(), DEFAULT_WINDOW);
        (store, idempotency)
    }

    fn later(idempotency: &Idempotency, by: Duration) -> Idempotency {
        idempotency.clone().with_clock(clock::ahead(by))
    }

    fn record(status: ClaimStatus, validation: &str, data: Option<&str>) -> ClaimRecord {
        ClaimRecord {
            key: "idem#k".into(),
            action: "sms".into(),
            event_key: "k".into(),
            status,
            validation: validation.into(),
            data: data.map(str::to_owned),
            expires_at: u64::MAX,
            lease_until_ms: u64::MAX,
        }
    }

    #[test]
    fn windows_apply_to_their_action_or_the_actions_they_prefix() {
        let long = Duration::from_secs(35 * 24 * 3600);
        let (_, idempotency) = claims();
        let idempotency = idempotency
            .with_window("sms_on_wrapup", long)
            .with_window("forward:", long);
        assert_eq!(idempotency.window_for("sms_on_wrapup"), long);
        assert_eq!(idempotency.window_for("forward:crm"), long);
        assert_eq!(idempotency.window_for("delivery_status"), DEFAULT_WINDOW);
        assert_eq!(idempotency.window_for("sms_on_wrapup_x"), DEFAULT_WINDOW);
    }

    #[test]
    fn record_keys_differ_per_action_and_event() {
        let a = EventKey::from_parts(&["a"]);
        let b = EventKey::from_parts(&["b"]);
        assert_ne!(record_key("sms", &a), record_key("sms", &b));
        assert_ne!(record_key("sms", &a), record_key("status", &a));
        assert!(record_key("sms", &a).starts_with(IDEMPOTENCY.pk_prefix));
    }

    #[test]
    fn an_existing_record_returns_its_result_rejects_reuse_or_asks_to_wait() {
        let key = EventKey::from_parts(&["k"]);
        let done = record(ClaimStatus::Completed, "h1", Some("SM1"));
        assert_eq!(
            existing_claim("sms", &key, "h1", &done).unwrap(),
            Claim::Completed("SM1".into())
        );
        let reused = existing_claim("sms", &key, "h2", &done).unwrap_err();
        assert_eq!(reused.class(), "permanent");
        let busy = record(ClaimStatus::InProgress, "h1", None);
        assert_eq!(
            existing_claim("sms", &key, "h1", &busy)
                .unwrap_err()
                .class(),
            "retryable"
        );
    }

    #[tokio::test]
    async fn of_concurrent_claims_on_one_key_exactly_one_runs() {
        let (_, idempotency) = claims();
        let key = EventKey::from_parts(&["conv-1"]);
        let mut acquired = 0;
        let mut busy = 0;
        let attempts: Vec<_> = (0..8)
            .map(|_| {
                let (idempotency, key) = (idempotency.clone(), key.clone());
                tokio::spawn(async move { idempotency.claim("sms", &key, b"payload", LEASE).await })
            })
            .collect();
        for attempt in attempts {
            match attempt.await.unwrap() {
                Ok(Claim::Acquired(_)) => acquired += 1,
                Err(e) if e.class() == "retryable" => busy += 1,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!((acquired, busy), (1, 7));
    }

    #[tokio::test]
    async fn a_completed_claim_answers_repeats_and_a_released_one_runs_again() {
        let (store, idempotency) = claims();
        let key = EventKey::from_parts(&["k"]);
        let Claim::Acquired(token) = idempotency.claim("sms", &key, b"p", LEASE).await.unwrap()
        else {
            panic!("acquired")
        };
        idempotency.complete(&token, "SM1").await.unwrap();
        assert_eq!(
            idempotency.claim("sms", &key, b"p", LEASE).await.unwrap(),
            Claim::Completed("SM1".into())
        );
        let stored = store.get(&record_key("sms", &key)).unwrap();
        assert_eq!(stored.status, ClaimStatus::Completed);

        let other = EventKey::from_parts(&["other"]);
        let Claim::Acquired(token) = idempotency.claim("sms", &other, b"p", LEASE).await.unwrap()
        else {
            panic!("acquired")
        };
        idempotency.release(&token).await.unwrap();
        assert!(matches!(
            idempotency.claim("sms", &other, b"p", LEASE).await.unwrap(),
            Claim::Acquired(_)
        ));
    }

    #[tokio::test]
    async fn a_key_reused_for_another_payload_is_refused_as_permanent() {
        let (_, idempotency) = claims();
        let key = EventKey::from_parts(&["k"]);
        idempotency.claim("sms", &key, b"one", LEASE).await.unwrap();
        let error = idempotency
            .claim("sms", &key, b"two", LEASE)
            .await
            .unwrap_err();
        assert_eq!(error.class(), "permanent");
    }

    #[tokio::test]
    async fn a_lease_or_a_window_that_ran_out_is_taken_over_and_not_before() {
        let (_, idempotency) = claims();
        let key = EventKey::from_parts(&["crashed"]);
        // A claimant that crashed: its lease is a minute.
        idempotency.claim("sms", &key, b"p", LEASE).await.unwrap();
        let within = later(&idempotency, LEASE - Duration::from_secs(1));
        assert!(within.claim("sms", &key, b"p", LEASE).await.is_err());
        let after = later(&idempotency, LEASE + Duration::from_secs(1));
        assert!(matches!(
            after.claim("sms", &key, b"p", LEASE).await.unwrap(),
            Claim::Acquired(_)
        ));

        // A completed record counts for its window, and not after it.
        let window = Duration::from_secs(3600);
        let short = idempotency.clone().with_window("status", window);
        let key = EventKey::from_parts(&["old"]);
        let Claim::Acquired(token) = short.claim("status", &key, b"p", LEASE).await.unwrap() else {
            panic!("acquired")
        };
        short.complete(&token, "x").await.unwrap();
        let inside = later(&short, window - Duration::from_secs(1));
        assert_eq!(
            inside.claim("status", &key, b"p", LEASE).await.unwrap(),
            Claim::Completed("x".into())
        );
        let outside = later(&short, window + Duration::from_secs(1));
        assert!(matches!(
            outside.claim("status", &key, b"p", LEASE).await.unwrap(),
            Claim::Acquired(_)
        ));
    }
}

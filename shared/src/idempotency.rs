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

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;
use sha2::{Digest, Sha256};

use crate::clock::{self, Clock};
use crate::config::ActionsConfig;
use crate::error::{Error, Result};
use crate::event::EventKey;
use crate::table::{self, epoch_millis, epoch_secs, n, s, Item, EXPIRES_AT};

/// Default idempotency window.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(24 * 3600);

const IN_PROGRESS: &str = "INPROGRESS";
const COMPLETED: &str = "COMPLETED";

/// Lease used when an invocation has no deadline (local runs, tests).
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);

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
    pk: String,
    window: Duration,
}

/// Idempotency records in the state table.
#[derive(Clone)]
pub struct Idempotency {
    ddb: aws_sdk_dynamodb::Client,
    table: String,
    window: Duration,
    /// Actions remembered longer than `window`, e.g. the SMS, which no redrive may repeat.
    windows: Vec<(String, Duration)>,
    clock: Clock,
}

impl std::fmt::Debug for Idempotency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Idempotency")
            .field("table", &self.table)
            .field("window", &self.window)
            .field("windows", &self.windows)
            .finish_non_exhaustive()
    }
}

impl Idempotency {
    /// Records in `table`, kept for `window` after completion.
    pub fn new(ddb: aws_sdk_dynamodb::Client, table: impl Into<String>, window: Duration) -> Self {
        Self {
            ddb,
            table: table.into(),
            window,
            windows: Vec::new(),
            clock: clock::system(),
        }
    }

    /// Records for the actions as configured: the general window, and the SMS's own, which
    /// outlives every path back into the pipeline; forwarding deliveries keep it too, so a replay
    /// weeks later delivers nothing an endpoint already has.
    pub fn for_actions(ddb: aws_sdk_dynamodb::Client, config: &ActionsConfig) -> Self {
        Self::new(ddb, config.table_name.clone(), config.idempotency_window)
            .with_window(crate::actions::sms_on_wrapup::NAME, config.sms_window)
            .with_window(crate::actions::forward::NAME_PREFIX, config.sms_window)
    }

    /// Remembers `action`'s results for `window` instead of the general one; an `action` ending in
    /// `:` names every action it prefixes (`forward:` for each endpoint's deliveries).
    pub fn with_window(mut self, action: &str, window: Duration) -> Self {
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
        let pk = record_key(action, key);
        let window = self.window_for(action);
        let validation = hex::encode(Sha256::digest(payload));
        let now = (self.clock)();
        let (now_s, now_ms) = (epoch_secs(now), epoch_millis(now));
        let result = self
            .ddb
            .put_item()
            .table_name(&self.table)
            .item("pk", s(&pk))
            .item("sk", s("idempotency"))
            .item("status", s(IN_PROGRESS))
            .item("action", s(action))
            .item("event_key", s(key.as_str()))
            .item("validation", s(&validation))
            .item(EXPIRES_AT, n(now_s + window.as_secs()))
            .item("in_progress_expiration", n(now_ms + lease.as_millis() as u64))
            .condition_expression(
                "attribute_not_exists(pk) OR #exp < :now OR (#status = :in_progress AND in_progress_expiration < :now_ms)",
            )
            .expression_attribute_names("#exp", EXPIRES_AT)
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":now", n(now_s))
            .expression_attribute_values(":now_ms", n(now_ms))
            .expression_attribute_values(":in_progress", s(IN_PROGRESS))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Claim::Acquired(ClaimToken { pk, window })),
            Err(e) => {
                let existing = e
                    .as_service_error()
                    .filter(|s| s.is_conditional_check_failed_exception())
                    .map(|s| match s {
                        aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(c) => {
                            c.item.clone().unwrap_or_default()
                        }
                        _ => HashMap::new(),
                    });
                match existing {
                    Some(item) => existing_claim(action, key, &validation, &item),
                    None => Err(crate::aws::unavailable("claim the idempotency record", e)),
                }
            }
        }
    }

    /// Marks the work done and stores its result for repeats.
    pub async fn complete(&self, token: &ClaimToken, result: &str) -> Result<()> {
        let expires = epoch_secs((self.clock)()) + token.window.as_secs();
        self.ddb
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&token.pk))
            .key("sk", s("idempotency"))
            .update_expression("SET #status = :completed, #data = :data, #exp = :exp REMOVE in_progress_expiration")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#data", "data")
            .expression_attribute_names("#exp", EXPIRES_AT)
            .expression_attribute_values(":completed", s(COMPLETED))
            .expression_attribute_values(":data", s(result))
            .expression_attribute_values(":exp", n(expires))
            .send()
            .await
            .map_err(|e| crate::aws::unavailable("complete the idempotency record", e))?;
        Ok(())
    }

    /// Gives the claim up so a retry can run (after a retryable failure, or before dead-lettering).
    pub async fn release(&self, token: &ClaimToken) -> Result<()> {
        self.ddb
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(&token.pk))
            .key("sk", s("idempotency"))
            .send()
            .await
            .map_err(|e| crate::aws::unavailable("release the idempotency record", e))?;
        Ok(())
    }
}

/// Decides what an existing, live record means for this claim.
fn existing_claim(action: &str, key: &EventKey, validation: &str, item: &Item) -> Result<Claim> {
    let text = |name: &str| table::text(item, name);
    if text("validation").is_some_and(|stored| stored != validation) {
        return Err(Error::permanent(format!(
            "event key {key} was already used for {action} with a different payload"
        )));
    }
    match text("status") {
        Some(COMPLETED) => Ok(Claim::Completed(
            text("data").unwrap_or_default().to_owned(),
        )),
        _ => Err(Error::Retryable {
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
    format!("idem#{}", hex::encode(hash.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(pairs: &[(&str, &str)]) -> Item {
        pairs.iter().map(|(k, v)| (k.to_string(), s(v))).collect()
    }

    #[test]
    fn windows_apply_to_their_action_or_the_actions_they_prefix() {
        let ddb = aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::Config::builder()
                .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
                .build(),
        );
        let long = Duration::from_secs(35 * 24 * 3600);
        let idempotency = Idempotency::new(ddb, "t", DEFAULT_WINDOW)
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
        assert!(record_key("sms", &a).starts_with("idem#"));
    }

    #[test]
    fn an_existing_record_returns_its_result_rejects_reuse_or_asks_to_wait() {
        let key = EventKey::from_parts(&["k"]);
        let done = item(&[("status", COMPLETED), ("validation", "h1"), ("data", "SM1")]);
        assert_eq!(
            existing_claim("sms", &key, "h1", &done).unwrap(),
            Claim::Completed("SM1".into())
        );
        let reused = existing_claim("sms", &key, "h2", &done).unwrap_err();
        assert_eq!(reused.class(), "permanent");
        let busy = item(&[("status", IN_PROGRESS), ("validation", "h1")]);
        assert_eq!(
            existing_claim("sms", &key, "h1", &busy)
                .unwrap_err()
                .class(),
            "retryable"
        );
    }
}

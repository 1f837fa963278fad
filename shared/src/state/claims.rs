//! Idempotency claim records: the store behind [`crate::state::idempotency::Idempotency`].
//!
//! The store does three things, each atomic: write a claim unless a live one holds the key, mark
//! a claim completed, delete it. Everything else about claims (payload hashes, windows, what an
//! existing claim means for the caller) is decided above it, once, for both implementations.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::SystemTime;

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;

use super::records::IDEMPOTENCY;
use super::StoreFuture;
use crate::error::{Error, Result};
use crate::state::table::{self, epoch_millis, epoch_secs, n, s, Item, EXPIRES_AT};

/// Where a claim stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimStatus {
    /// Its claimant is running the work, until `lease_until_ms`.
    InProgress,
    /// The work is done; the record holds its result.
    Completed,
}

impl ClaimStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::InProgress => "INPROGRESS",
            Self::Completed => "COMPLETED",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        [Self::InProgress, Self::Completed]
            .into_iter()
            .find(|status| status.as_str() == text)
    }
}

/// One claim record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRecord {
    /// The record's key (see `IDEMPOTENCY`).
    pub key: String,
    /// The action claimed, for people reading the table.
    pub action: String,
    /// The event key, for people reading the table.
    pub event_key: String,
    /// Where it stands.
    pub status: ClaimStatus,
    /// The hash of the payload it was claimed for.
    pub validation: String,
    /// The work's result, once completed.
    pub data: Option<String>,
    /// When it stops counting (epoch seconds; the table's TTL deletes it some time after).
    pub expires_at: u64,
    /// When an in-progress claim's lease runs out (epoch milliseconds).
    pub lease_until_ms: u64,
}

impl ClaimRecord {
    /// Whether the record still holds its key at `now`: not past its window, and either completed
    /// or within its claimant's lease. The DynamoDB store's condition says the same.
    pub(crate) fn is_live(&self, now: SystemTime) -> bool {
        self.expires_at >= epoch_secs(now)
            && (self.status == ClaimStatus::Completed || self.lease_until_ms >= epoch_millis(now))
    }
}

/// The claim records.
pub trait ClaimStore: Send + Sync {
    /// Writes `record` unless a live record holds its key at `now`; answers that live record when
    /// one does (and writes nothing).
    fn put_unless_live<'a>(
        &'a self,
        record: &'a ClaimRecord,
        now: SystemTime,
    ) -> StoreFuture<'a, Option<ClaimRecord>>;

    /// Marks the claim `key` completed with `data`, counting until `expires_at`.
    fn complete<'a>(&'a self, key: &'a str, data: &'a str, expires_at: u64) -> StoreFuture<'a, ()>;

    /// Deletes the claim `key`, so the next claim of it runs.
    fn delete<'a>(&'a self, key: &'a str) -> StoreFuture<'a, ()>;
}

/// Claims in the state table.
#[derive(Debug, Clone)]
pub struct DynamoClaims {
    ddb: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoClaims {
    /// Claims in `table`.
    pub fn new(ddb: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            ddb,
            table: table.into(),
        }
    }
}

impl ClaimStore for DynamoClaims {
    fn put_unless_live<'a>(
        &'a self,
        record: &'a ClaimRecord,
        now: SystemTime,
    ) -> StoreFuture<'a, Option<ClaimRecord>> {
        Box::pin(async move {
            let result = self
                .ddb
                .put_item()
                .table_name(&self.table)
                .item("pk", s(&record.key))
                .item("sk", s(IDEMPOTENCY.sk))
                .item("status", s(record.status.as_str()))
                .item("action", s(&record.action))
                .item("event_key", s(&record.event_key))
                .item("validation", s(&record.validation))
                .item(EXPIRES_AT, n(record.expires_at))
                .item("in_progress_expiration", n(record.lease_until_ms))
                .condition_expression(
                    "attribute_not_exists(pk) OR #exp < :now OR \
                     (#status = :in_progress AND in_progress_expiration < :now_ms)",
                )
                .expression_attribute_names("#exp", EXPIRES_AT)
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":now", n(epoch_secs(now)))
                .expression_attribute_values(":now_ms", n(epoch_millis(now)))
                .expression_attribute_values(":in_progress", s(ClaimStatus::InProgress.as_str()))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .send()
                .await;
            match result {
                Ok(_) => Ok(None),
                Err(e) => match e.as_service_error() {
                    Some(PutItemError::ConditionalCheckFailedException(failed)) => {
                        let item = failed.item.clone().unwrap_or_default();
                        read_record(&record.key, &item).map(Some)
                    }
                    _ => Err(crate::aws::unavailable("claim the idempotency record", e)),
                },
            }
        })
    }

    fn complete<'a>(&'a self, key: &'a str, data: &'a str, expires_at: u64) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.ddb
                .update_item()
                .table_name(&self.table)
                .key("pk", s(key))
                .key("sk", s(IDEMPOTENCY.sk))
                .update_expression(
                    "SET #status = :completed, #data = :data, #exp = :exp \
                     REMOVE in_progress_expiration",
                )
                .expression_attribute_names("#status", "status")
                .expression_attribute_names("#data", "data")
                .expression_attribute_names("#exp", EXPIRES_AT)
                .expression_attribute_values(":completed", s(ClaimStatus::Completed.as_str()))
                .expression_attribute_values(":data", s(data))
                .expression_attribute_values(":exp", n(expires_at))
                .send()
                .await
                .map_err(|e| crate::aws::unavailable("complete the idempotency record", e))?;
            Ok(())
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.ddb
                .delete_item()
                .table_name(&self.table)
                .key("pk", s(key))
                .key("sk", s(IDEMPOTENCY.sk))
                .send()
                .await
                .map_err(|e| crate::aws::unavailable("release the idempotency record", e))?;
            Ok(())
        })
    }
}

/// A stored claim read back; one the relay could not have written is an error, not a guess.
fn read_record(key: &str, item: &Item) -> Result<ClaimRecord> {
    let text = |name: &str| table::text(item, name).map(str::to_owned);
    let status = text("status")
        .as_deref()
        .and_then(ClaimStatus::parse)
        .ok_or_else(|| Error::permanent(format!("idempotency record {key} has no known status")))?;
    Ok(ClaimRecord {
        key: key.to_owned(),
        action: text("action").unwrap_or_default(),
        event_key: text("event_key").unwrap_or_default(),
        status,
        validation: text("validation").unwrap_or_default(),
        data: text("data"),
        expires_at: table::number(item, EXPIRES_AT).unwrap_or_default(),
        lease_until_ms: table::number(item, "in_progress_expiration").unwrap_or_default(),
    })
}

/// Claims in memory, for tests of the logic above the store: one lock makes each operation as
/// atomic as DynamoDB's conditional writes.
#[derive(Debug, Default)]
pub struct MemoryClaims {
    records: Mutex<HashMap<String, ClaimRecord>>,
}

impl MemoryClaims {
    /// The record under `key`, if any (for tests' assertions).
    pub fn get(&self, key: &str) -> Option<ClaimRecord> {
        self.lock().get(key).cloned()
    }

    /// Every record (for tests' assertions).
    pub fn all(&self) -> Vec<ClaimRecord> {
        self.lock().values().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, ClaimRecord>> {
        self.records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl ClaimStore for MemoryClaims {
    fn put_unless_live<'a>(
        &'a self,
        record: &'a ClaimRecord,
        now: SystemTime,
    ) -> StoreFuture<'a, Option<ClaimRecord>> {
        let mut records = self.lock();
        let answer = match records.get(&record.key) {
            Some(existing) if existing.is_live(now) => Some(existing.clone()),
            _ => {
                records.insert(record.key.clone(), record.clone());
                None
            }
        };
        Box::pin(std::future::ready(Ok(answer)))
    }

    fn complete<'a>(&'a self, key: &'a str, data: &'a str, expires_at: u64) -> StoreFuture<'a, ()> {
        // As DynamoDB's update does, a missing record is created.
        let mut records = self.lock();
        let record = records
            .entry(key.to_owned())
            .or_insert_with(|| ClaimRecord {
                key: key.to_owned(),
                action: String::new(),
                event_key: String::new(),
                status: ClaimStatus::Completed,
                validation: String::new(),
                data: None,
                expires_at,
                lease_until_ms: 0,
            });
        record.status = ClaimStatus::Completed;
        record.data = Some(data.to_owned());
        record.expires_at = expires_at;
        record.lease_until_ms = 0;
        Box::pin(std::future::ready(Ok(())))
    }

    fn delete<'a>(&'a self, key: &'a str) -> StoreFuture<'a, ()> {
        self.lock().remove(key);
        Box::pin(std::future::ready(Ok(())))
    }
}

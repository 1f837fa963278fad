//! Forwarding endpoint records: endpoints disabled by a 410 Gone, and the recent delivery attempts
//! to each (what operators read to see why deliveries fail).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use super::records::{ATTEMPTS, ENDPOINT_DISABLED};
use super::table::{self, epoch_millis, epoch_secs, n, s, Item, EXPIRES_AT};
use super::StoreFuture;

/// How long an attempt is kept.
pub(crate) const ATTEMPT_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// One delivery attempt, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The delivery.
    pub delivery_id: String,
    /// The event delivered.
    pub event_key: String,
    /// Which attempt.
    pub attempt: u32,
    /// The HTTP status, or `none` when there was no answer.
    pub status: String,
    /// `delivered`, `retry` or `failed`.
    pub outcome: String,
    /// How long the request took.
    pub latency_ms: u64,
}

/// The endpoint records.
pub trait EndpointRecords: Send + Sync {
    /// Disables `endpoint` from `since` (RFC 3339) on: its deliveries are dead-lettered.
    fn disable<'a>(&'a self, endpoint: &'a str, since: &'a str) -> StoreFuture<'a, ()>;

    /// When `endpoint` was disabled, if it is.
    fn disabled_since<'a>(&'a self, endpoint: &'a str) -> StoreFuture<'a, Option<String>>;

    /// Records an attempt made at `now`.
    fn record_attempt<'a>(
        &'a self,
        endpoint: &'a str,
        attempt: &'a Attempt,
        now: SystemTime,
    ) -> StoreFuture<'a, ()>;

    /// The most recent attempts to `endpoint`, newest first, at most `limit`.
    fn recent_attempts<'a>(
        &'a self,
        endpoint: &'a str,
        limit: usize,
    ) -> StoreFuture<'a, Vec<Attempt>>;
}

/// Endpoint records in the state table.
#[derive(Debug, Clone)]
pub struct DynamoEndpoints {
    ddb: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoEndpoints {
    /// Records in `table`.
    pub fn new(ddb: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            ddb,
            table: table.into(),
        }
    }
}

/// An attempt's sort key: its time first, so a query reads them in order.
fn attempt_sk(attempt: &Attempt, now: SystemTime) -> String {
    format!(
        "{:013}#{}#{}",
        epoch_millis(now),
        attempt.delivery_id,
        attempt.attempt
    )
}

impl EndpointRecords for DynamoEndpoints {
    fn disable<'a>(&'a self, endpoint: &'a str, since: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.ddb
                .put_item()
                .table_name(&self.table)
                .item("pk", s(&ENDPOINT_DISABLED.pk(endpoint)))
                .item("sk", s(ENDPOINT_DISABLED.sk))
                .item("since", s(since))
                .send()
                .await
                .map_err(|e| crate::aws::unavailable("disable the endpoint", e))?;
            Ok(())
        })
    }

    fn disabled_since<'a>(&'a self, endpoint: &'a str) -> StoreFuture<'a, Option<String>> {
        Box::pin(async move {
            let out = self
                .ddb
                .get_item()
                .table_name(&self.table)
                .key("pk", s(&ENDPOINT_DISABLED.pk(endpoint)))
                .key("sk", s(ENDPOINT_DISABLED.sk))
                .send()
                .await
                .map_err(|e| crate::aws::unavailable("read the endpoint state", e))?;
            Ok(out
                .item
                .map(|item| table::text(&item, "since").unwrap_or_default().to_owned()))
        })
    }

    fn record_attempt<'a>(
        &'a self,
        endpoint: &'a str,
        attempt: &'a Attempt,
        now: SystemTime,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.ddb
                .put_item()
                .table_name(&self.table)
                .item("pk", s(&ATTEMPTS.pk(endpoint)))
                .item("sk", s(&attempt_sk(attempt, now)))
                .item("delivery_id", s(&attempt.delivery_id))
                .item("event_key", s(&attempt.event_key))
                .item("attempt", n(attempt.attempt.into()))
                .item("status", s(&attempt.status))
                .item("latency_ms", n(attempt.latency_ms))
                .item("outcome", s(&attempt.outcome))
                .item(EXPIRES_AT, n(epoch_secs(now) + ATTEMPT_TTL.as_secs()))
                .send()
                .await
                .map_err(|e| crate::aws::unavailable("record the attempt", e))?;
            Ok(())
        })
    }

    fn recent_attempts<'a>(
        &'a self,
        endpoint: &'a str,
        limit: usize,
    ) -> StoreFuture<'a, Vec<Attempt>> {
        Box::pin(async move {
            let out = self
                .ddb
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(&ATTEMPTS.pk(endpoint)))
                .scan_index_forward(false)
                .limit(i32::try_from(limit).unwrap_or(i32::MAX))
                .send()
                .await
                .map_err(|e| crate::aws::unavailable("read the attempts", e))?;
            Ok(out
                .items
                .unwrap_or_default()
                .iter()
                .map(read_attempt)
                .collect())
        })
    }
}

fn read_attempt(item: &Item) -> Attempt {
    let text = |name: &str| table::text(item, name).unwrap_or_default().to_owned();
    Attempt {
        delivery_id: text("delivery_id"),
        event_key: text("event_key"),
        attempt: table::number(item, "attempt").unwrap_or_default(),
        status: text("status"),
        outcome: text("outcome"),
        latency_ms: table::number(item, "latency_ms").unwrap_or_default(),
    }
}

/// Endpoint records in memory, for tests.
#[derive(Debug, Default)]
pub struct MemoryEndpoints {
    disabled: Mutex<HashMap<String, String>>,
    /// Attempts by endpoint, by sort key (their time first).
    attempts: Mutex<HashMap<String, Vec<(String, Attempt)>>>,
}

impl EndpointRecords for MemoryEndpoints {
    fn disable<'a>(&'a self, endpoint: &'a str, since: &'a str) -> StoreFuture<'a, ()> {
        self.disabled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(endpoint.to_owned(), since.to_owned());
        Box::pin(std::future::ready(Ok(())))
    }

    fn disabled_since<'a>(&'a self, endpoint: &'a str) -> StoreFuture<'a, Option<String>> {
        let since = self
            .disabled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(endpoint)
            .cloned();
        Box::pin(std::future::ready(Ok(since)))
    }

    fn record_attempt<'a>(
        &'a self,
        endpoint: &'a str,
        attempt: &'a Attempt,
        now: SystemTime,
    ) -> StoreFuture<'a, ()> {
        let mut attempts = self
            .attempts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let list = attempts.entry(endpoint.to_owned()).or_default();
        let sk = attempt_sk(attempt, now);
        list.retain(|(existing, _)| *existing != sk);
        list.push((sk, attempt.clone()));
        list.sort_by(|a, b| a.0.cmp(&b.0));
        Box::pin(std::future::ready(Ok(())))
    }

    fn recent_attempts<'a>(
        &'a self,
        endpoint: &'a str,
        limit: usize,
    ) -> StoreFuture<'a, Vec<Attempt>> {
        let recent = self
            .attempts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(endpoint)
            .map(|list| {
                list.iter()
                    .rev()
                    .take(limit)
                    .map(|(_, a)| a.clone())
                    .collect()
            })
            .unwrap_or_default();
        Box::pin(std::future::ready(Ok(recent)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(id: &str, n: u32) -> Attempt {
        Attempt {
            delivery_id: id.into(),
            event_key: "k".into(),
            attempt: n,
            status: "503".into(),
            outcome: "retry".into(),
            latency_ms: 5,
        }
    }

    #[tokio::test]
    async fn attempts_read_back_newest_first_and_a_disabled_endpoint_says_since_when() {
        let store = MemoryEndpoints::default();
        let t0 = SystemTime::now();
        store
            .record_attempt("crm", &attempt("d1", 1), t0)
            .await
            .unwrap();
        store
            .record_attempt("crm", &attempt("d1", 2), t0 + Duration::from_secs(10))
            .await
            .unwrap();
        let recent = store.recent_attempts("crm", 1).await.unwrap();
        assert_eq!(recent, [attempt("d1", 2)]);
        assert!(store.recent_attempts("other", 5).await.unwrap().is_empty());
        assert_eq!(store.disabled_since("crm").await.unwrap(), None);
        store.disable("crm", "2026-12-02T00:00:00Z").await.unwrap();
        assert_eq!(
            store.disabled_since("crm").await.unwrap().as_deref(),
            Some("2026-12-02T00:00:00Z")
        );
    }
}

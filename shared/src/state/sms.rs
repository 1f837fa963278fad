//! The SMS ledger: which conversation each sent message belongs to, and the delivery status seen
//! and written back so far.
//!
//! Two ranks make status write-back both forward-only and retry-safe: `status_rank` is the
//! furthest status seen, `written_rank` the furthest written onto the Genesys conversation. A
//! callback is stale only when both have reached it and nothing seen is left unwritten, so a
//! write-back that failed is retried, and a late `sent` never overwrites `delivered`.
//!
//! Ranks alone cannot order the writes themselves: two PATCHes in flight at once may reach Genesys
//! in either order. So one writer at a time holds a lease on the record (`writer`, `writer_until`
//! in epoch ms), taken and given back with conditional writes. The writer gives it back only in
//! the same atomic write that says nothing newer is waiting; otherwise it keeps it and writes the
//! newer status too. A status arriving meanwhile is left to that writer instead of racing it, and
//! the last write to reach Genesys carries the furthest status seen.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use super::records::SMS;
use super::StoreFuture;
use crate::error::{Error, Result};
use crate::state::table::{self, epoch_millis, epoch_secs, n, s, Item, EXPIRES_AT};

/// What the ledger knows of one sent SMS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsRecord {
    /// Twilio's message sid (`SM...`).
    pub message_sid: String,
    /// The conversation the SMS followed up.
    pub conversation_id: String,
    /// The participant whose attributes carry the status, when known.
    pub participant_id: Option<String>,
    /// The event that caused the SMS.
    pub event_key: String,
    /// Furthest status seen.
    pub status: String,
    /// Error code of that status, when Twilio gave one.
    pub error_code: Option<String>,
    /// Rank of `status` (see `twilio::status_rank`).
    pub status_rank: u8,
    /// Rank of the status last written onto the conversation.
    pub written_rank: u8,
}

/// The ledger. Each operation is one atomic conditional write (or a strongly consistent read).
pub trait SmsLedger: Send + Sync {
    /// Records a message just sent at `now` (status from Twilio's answer, rank 0 written).
    fn record_sent<'a>(&'a self, record: &'a SmsRecord, now: SystemTime) -> StoreFuture<'a, ()>;

    /// Applies a status callback: moves `status_rank` forward when `rank` is higher, and says
    /// whether there is something to write back.
    fn advance<'a>(
        &'a self,
        message_sid: &'a str,
        status: &'a str,
        rank: u8,
        error_code: Option<&'a str>,
    ) -> StoreFuture<'a, Advance>;

    /// The record as it is now.
    fn get<'a>(&'a self, message_sid: &'a str) -> StoreFuture<'a, Option<SmsRecord>>;

    /// Takes the write-back lease of a message for `lease` from `now`, unless another writer
    /// holds one that has not run out. `token` names this writer in the later calls. Returns the
    /// record as it is now, or `None` when someone else is writing (or the record is gone).
    fn take_writer<'a>(
        &'a self,
        message_sid: &'a str,
        token: &'a str,
        now: SystemTime,
        lease: Duration,
    ) -> StoreFuture<'a, Option<SmsRecord>>;

    /// Notes that the writer `token` put the status of rank `rank` on the conversation. When
    /// nothing newer was seen meanwhile, the lease is given back in the same write; otherwise the
    /// writer keeps it for another `lease` from `now` and gets the newer record to write.
    fn written<'a>(
        &'a self,
        message_sid: &'a str,
        token: &'a str,
        rank: u8,
        now: SystemTime,
        lease: Duration,
    ) -> StoreFuture<'a, Written>;

    /// Gives the lease back without writing (the write failed and will be retried); a lease
    /// already lost is left alone.
    fn release_writer<'a>(&'a self, message_sid: &'a str, token: &'a str) -> StoreFuture<'a, ()>;
}

/// The ledger in the state table.
#[derive(Debug, Clone)]
pub struct DynamoSmsLedger {
    ddb: aws_sdk_dynamodb::Client,
    table: String,
    ttl: Duration,
}

/// Whether a status callback moved the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Advance {
    /// The record's status is newer than what was written back: write it. This is the record as
    /// it is now, so a late callback that finds a newer status still unwritten (its writer
    /// failed) writes that one, never its own.
    Write(SmsRecord),
    /// A duplicate, or older than what was written back, with nothing left unwritten.
    Stale,
    /// No such message (yet): the callback may have raced the record's write.
    Unknown,
}

/// How a write-back ended, for the writer holding the lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// Nothing newer was seen: the lease is given back.
    Done,
    /// A newer status was seen while writing: write this record too (the lease is kept).
    Newer(SmsRecord),
    /// The lease ran out and another writer took it: what is left to write is that writer's.
    Lost,
}

impl DynamoSmsLedger {
    /// The ledger in `table`; records live for `ttl`.
    pub fn new(ddb: aws_sdk_dynamodb::Client, table: impl Into<String>, ttl: Duration) -> Self {
        Self {
            ddb,
            table: table.into(),
            ttl,
        }
    }
}

impl SmsLedger for DynamoSmsLedger {
    fn record_sent<'a>(&'a self, record: &'a SmsRecord, now: SystemTime) -> StoreFuture<'a, ()> {
        Box::pin(self.put_sent(record, now))
    }

    fn advance<'a>(
        &'a self,
        message_sid: &'a str,
        status: &'a str,
        rank: u8,
        error_code: Option<&'a str>,
    ) -> StoreFuture<'a, Advance> {
        Box::pin(self.update_status(message_sid, status, rank, error_code))
    }

    fn get<'a>(&'a self, message_sid: &'a str) -> StoreFuture<'a, Option<SmsRecord>> {
        Box::pin(self.read(message_sid))
    }

    fn take_writer<'a>(
        &'a self,
        message_sid: &'a str,
        token: &'a str,
        now: SystemTime,
        lease: Duration,
    ) -> StoreFuture<'a, Option<SmsRecord>> {
        Box::pin(self.take_lease(message_sid, token, now, lease))
    }

    fn written<'a>(
        &'a self,
        message_sid: &'a str,
        token: &'a str,
        rank: u8,
        now: SystemTime,
        lease: Duration,
    ) -> StoreFuture<'a, Written> {
        Box::pin(self.mark_written(message_sid, token, rank, now, lease))
    }

    fn release_writer<'a>(&'a self, message_sid: &'a str, token: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(self.give_back(message_sid, token))
    }
}

impl DynamoSmsLedger {
    async fn put_sent(&self, record: &SmsRecord, now: SystemTime) -> Result<()> {
        let mut request = self
            .ddb
            .put_item()
            .table_name(&self.table)
            .item("pk", s(&message_pk(&record.message_sid)))
            .item("sk", s(SMS.sk))
            .item("message_sid", s(&record.message_sid))
            .item("conversation_id", s(&record.conversation_id))
            .item("event_key", s(&record.event_key))
            .item("status", s(&record.status))
            .item("status_rank", n(record.status_rank.into()))
            .item("written_rank", n(0))
            .item(EXPIRES_AT, n(epoch_secs(now) + self.ttl.as_secs()));
        if let Some(participant) = &record.participant_id {
            request = request.item("participant_id", s(participant));
        }
        request
            .send()
            .await
            .map_err(|e| crate::aws::unavailable("record the SMS", e))?;
        Ok(())
    }

    async fn update_status(
        &self,
        message_sid: &str,
        status: &str,
        rank: u8,
        error_code: Option<&str>,
    ) -> Result<Advance> {
        let mut request = self
            .ddb
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&message_pk(message_sid)))
            .key("sk", s(SMS.sk))
            .condition_expression(
                "attribute_exists(pk) AND (status_rank < :r OR (status_rank = :r AND written_rank < :r))",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":status", s(status))
            .expression_attribute_values(":r", n(rank.into()))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .return_values_on_condition_check_failure(
                aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld,
            );
        request = match error_code.filter(|c| !c.is_empty()) {
            Some(code) => request
                .update_expression("SET #status = :status, status_rank = :r, error_code = :code")
                .expression_attribute_values(":code", s(code)),
            None => request
                .update_expression("SET #status = :status, status_rank = :r REMOVE error_code"),
        };
        match request.send().await {
            Ok(out) => Ok(Advance::Write(parse_record(
                &out.attributes.unwrap_or_default(),
            )?)),
            Err(e) => {
                let failed = e.as_service_error().and_then(|err| match err {
                    aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(c) => {
                        Some(c.item.clone().unwrap_or_default())
                    }
                    _ => None,
                });
                match failed {
                    Some(old) if old.is_empty() => Ok(Advance::Unknown),
                    Some(old) => {
                        let record = parse_record(&old)?;
                        Ok(if record.written_rank < record.status_rank {
                            Advance::Write(record)
                        } else {
                            Advance::Stale
                        })
                    }
                    None => Err(crate::aws::unavailable("advance the SMS status", e)),
                }
            }
        }
    }

    async fn read(&self, message_sid: &str) -> Result<Option<SmsRecord>> {
        let out = self
            .ddb
            .get_item()
            .table_name(&self.table)
            .key("pk", s(&message_pk(message_sid)))
            .key("sk", s(SMS.sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| crate::aws::unavailable("read the SMS record", e))?;
        out.item.map(|item| parse_record(&item)).transpose()
    }

    async fn take_lease(
        &self,
        message_sid: &str,
        token: &str,
        now: SystemTime,
        lease: Duration,
    ) -> Result<Option<SmsRecord>> {
        let result = self
            .lease_update(message_sid, token)
            .update_expression("SET #writer = :token, #until = :until")
            .condition_expression(
                "attribute_exists(pk) AND (attribute_not_exists(#until) OR #until <= :now)",
            )
            .expression_attribute_values(":until", n(epoch_millis(now + lease)))
            .expression_attribute_values(":now", n(epoch_millis(now)))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(out) => parse_record(&out.attributes.unwrap_or_default()).map(Some),
            Err(e) if is_condition_failure(&e) => Ok(None),
            Err(e) => Err(crate::aws::unavailable("take the SMS write-back lease", e)),
        }
    }

    async fn mark_written(
        &self,
        message_sid: &str,
        token: &str,
        rank: u8,
        now: SystemTime,
        lease: Duration,
    ) -> Result<Written> {
        let done = self
            .lease_update(message_sid, token)
            .update_expression("SET written_rank = :r REMOVE #writer, #until")
            .condition_expression("#writer = :token AND status_rank <= :r")
            .expression_attribute_values(":r", n(rank.into()))
            .send()
            .await;
        match done {
            Ok(_) => return Ok(Written::Done),
            Err(e) if is_condition_failure(&e) => {}
            Err(e) => return Err(crate::aws::unavailable("mark the SMS status written", e)),
        }
        let kept = self
            .lease_update(message_sid, token)
            .update_expression("SET written_rank = :r, #until = :until")
            .condition_expression("#writer = :token")
            .expression_attribute_values(":r", n(rank.into()))
            .expression_attribute_values(":until", n(epoch_millis(now + lease)))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await;
        match kept {
            Ok(out) => parse_record(&out.attributes.unwrap_or_default()).map(Written::Newer),
            Err(e) if is_condition_failure(&e) => Ok(Written::Lost),
            Err(e) => Err(crate::aws::unavailable("mark the SMS status written", e)),
        }
    }

    /// An update of a message's record naming its write-back lease (`#writer`, `#until`) and the
    /// writer `token` (`:token`): what every lease operation starts from.
    fn lease_update(
        &self,
        message_sid: &str,
        token: &str,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        self.ddb
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&message_pk(message_sid)))
            .key("sk", s(SMS.sk))
            .expression_attribute_names("#writer", WRITER)
            .expression_attribute_names("#until", WRITER_UNTIL)
            .expression_attribute_values(":token", s(token))
    }

    async fn give_back(&self, message_sid: &str, token: &str) -> Result<()> {
        let result = self
            .lease_update(message_sid, token)
            .update_expression("REMOVE #writer, #until")
            .condition_expression("#writer = :token")
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failure(&e) => Ok(()),
            Err(e) => Err(crate::aws::unavailable(
                "give back the SMS write-back lease",
                e,
            )),
        }
    }
}

/// The attribute naming the writer that holds a record's write-back lease.
const WRITER: &str = "writer";
/// Until when (epoch ms) that writer holds it.
const WRITER_UNTIL: &str = "writer_until";

/// Whether an update failed only because its condition did not hold.
fn is_condition_failure(
    e: &aws_sdk_dynamodb::error::SdkError<
        aws_sdk_dynamodb::operation::update_item::UpdateItemError,
        aws_sdk_dynamodb::config::http::HttpResponse,
    >,
) -> bool {
    e.as_service_error()
        .is_some_and(|s| s.is_conditional_check_failed_exception())
}

fn message_pk(sid: &str) -> String {
    SMS.pk(sid)
}

fn parse_record(item: &Item) -> Result<SmsRecord> {
    let text = |name: &str| table::text(item, name).map(str::to_owned);
    let rank = |name: &str| table::number::<u8>(item, name).unwrap_or_default();
    let required = |name: &str| {
        text(name).ok_or_else(|| Error::permanent(format!("SMS record has no {name}")))
    };
    Ok(SmsRecord {
        message_sid: required("message_sid")?,
        conversation_id: required("conversation_id")?,
        participant_id: text("participant_id"),
        event_key: required("event_key")?,
        status: required("status")?,
        error_code: text("error_code"),
        status_rank: rank("status_rank"),
        written_rank: rank("written_rank"),
    })
}

/// The ledger in memory, for tests of the logic above it: one lock makes each operation as atomic
/// as DynamoDB's conditional writes, and the conditions are the same.
#[derive(Debug, Default)]
pub struct MemorySmsLedger {
    records: Mutex<HashMap<String, Held>>,
}

/// A record and its write-back lease.
#[derive(Debug, Clone)]
struct Held {
    record: SmsRecord,
    /// The writer holding the lease and until when (epoch ms).
    writer: Option<(String, u64)>,
}

impl MemorySmsLedger {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Held>> {
        self.records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn now<T: Send + 'static>(value: T) -> StoreFuture<'static, T> {
        Box::pin(std::future::ready(Ok(value)))
    }
}

impl SmsLedger for MemorySmsLedger {
    fn record_sent<'a>(&'a self, record: &'a SmsRecord, _now: SystemTime) -> StoreFuture<'a, ()> {
        let mut stored = record.clone();
        stored.written_rank = 0;
        stored.error_code = None;
        self.lock().insert(
            record.message_sid.clone(),
            Held {
                record: stored,
                writer: None,
            },
        );
        Self::now(())
    }

    fn advance<'a>(
        &'a self,
        message_sid: &'a str,
        status: &'a str,
        rank: u8,
        error_code: Option<&'a str>,
    ) -> StoreFuture<'a, Advance> {
        let mut records = self.lock();
        let Some(held) = records.get_mut(message_sid) else {
            return Self::now(Advance::Unknown);
        };
        let record = &mut held.record;
        let moves =
            record.status_rank < rank || (record.status_rank == rank && record.written_rank < rank);
        if moves {
            record.status = status.to_owned();
            record.status_rank = rank;
            record.error_code = error_code.filter(|c| !c.is_empty()).map(str::to_owned);
            return Self::now(Advance::Write(record.clone()));
        }
        Self::now(if record.written_rank < record.status_rank {
            Advance::Write(record.clone())
        } else {
            Advance::Stale
        })
    }

    fn get<'a>(&'a self, message_sid: &'a str) -> StoreFuture<'a, Option<SmsRecord>> {
        Self::now(self.lock().get(message_sid).map(|h| h.record.clone()))
    }

    fn take_writer<'a>(
        &'a self,
        message_sid: &'a str,
        token: &'a str,
        now: SystemTime,
        lease: Duration,
    ) -> StoreFuture<'a, Option<SmsRecord>> {
        let mut records = self.lock();
        let Some(held) = records.get_mut(message_sid) else {
            return Self::now(None);
        };
        if held
            .writer
            .as_ref()
            .is_some_and(|(_, until)| *until > epoch_millis(now))
        {
            return Self::now(None);
        }
        held.writer = Some((token.to_owned(), epoch_millis(now + lease)));
        Self::now(Some(held.record.clone()))
    }

    fn written<'a>(
        &'a self,
        message_sid: &'a str,
        token: &'a str,
        rank: u8,
        now: SystemTime,
        lease: Duration,
    ) -> StoreFuture<'a, Written> {
        let mut records = self.lock();
        let Some(held) = records
            .get_mut(message_sid)
            .filter(|h| h.writer.as_ref().is_some_and(|(writer, _)| writer == token))
        else {
            return Self::now(Written::Lost);
        };
        held.record.written_rank = rank;
        if held.record.status_rank <= rank {
            held.writer = None;
            return Self::now(Written::Done);
        }
        held.writer = Some((token.to_owned(), epoch_millis(now + lease)));
        Self::now(Written::Newer(held.record.clone()))
    }

    fn release_writer<'a>(&'a self, message_sid: &'a str, token: &'a str) -> StoreFuture<'a, ()> {
        if let Some(held) = self.lock().get_mut(message_sid) {
            if held
                .writer
                .as_ref()
                .is_some_and(|(writer, _)| writer == token)
            {
                held.writer = None;
            }
        }
        Self::now(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: Duration = Duration::from_secs(60);

    fn sent(sid: &str) -> SmsRecord {
        SmsRecord {
            message_sid: sid.into(),
            conversation_id: "c".into(),
            participant_id: Some("p".into()),
            event_key: "k".into(),
            status: "queued".into(),
            error_code: None,
            status_rank: 1,
            written_rank: 0,
        }
    }

    #[tokio::test]
    async fn statuses_only_move_forward_and_an_unwritten_one_is_handed_on() {
        let ledger = MemorySmsLedger::default();
        let now = SystemTime::now();
        assert_eq!(
            ledger.advance("SM1", "sent", 2, None).await.unwrap(),
            Advance::Unknown,
            "a callback before the record"
        );
        ledger.record_sent(&sent("SM1"), now).await.unwrap();
        let Advance::Write(delivered) = ledger.advance("SM1", "delivered", 4, None).await.unwrap()
        else {
            panic!("moves forward")
        };
        assert_eq!(delivered.status_rank, 4);
        // A late `sent` finds `delivered` seen and not written yet: it writes that, not itself.
        let Advance::Write(late) = ledger.advance("SM1", "sent", 2, None).await.unwrap() else {
            panic!("hands on the unwritten status")
        };
        assert_eq!(late.status, "delivered");
        // Once written, a repeat is stale.
        ledger.take_writer("SM1", "w", now, LEASE).await.unwrap();
        assert_eq!(
            ledger.written("SM1", "w", 4, now, LEASE).await.unwrap(),
            Written::Done
        );
        assert_eq!(
            ledger.advance("SM1", "delivered", 4, None).await.unwrap(),
            Advance::Stale
        );
        assert_eq!(
            ledger.advance("SM1", "sent", 2, None).await.unwrap(),
            Advance::Stale
        );
    }

    #[tokio::test]
    async fn one_writer_at_a_time_and_a_newer_status_goes_to_it() {
        let ledger = MemorySmsLedger::default();
        let now = SystemTime::now();
        ledger.record_sent(&sent("SM1"), now).await.unwrap();
        ledger.advance("SM1", "sent", 2, None).await.unwrap();
        assert!(ledger
            .take_writer("SM1", "a", now, LEASE)
            .await
            .unwrap()
            .is_some());
        assert!(
            ledger
                .take_writer("SM1", "b", now, LEASE)
                .await
                .unwrap()
                .is_none(),
            "held by a"
        );
        // `delivered` arrives while a writes `sent`: a keeps the lease and gets it to write.
        ledger.advance("SM1", "delivered", 4, None).await.unwrap();
        let Written::Newer(newer) = ledger.written("SM1", "a", 2, now, LEASE).await.unwrap() else {
            panic!("newer")
        };
        assert_eq!(newer.status, "delivered");
        assert_eq!(
            ledger.written("SM1", "a", 4, now, LEASE).await.unwrap(),
            Written::Done
        );
        // A writer that outlived its lease finds it taken.
        let later = now + LEASE + Duration::from_secs(1);
        ledger.take_writer("SM1", "a", now, LEASE).await.unwrap();
        assert!(ledger
            .take_writer("SM1", "b", later, LEASE)
            .await
            .unwrap()
            .is_some());
        assert_eq!(
            ledger.written("SM1", "a", 4, later, LEASE).await.unwrap(),
            Written::Lost
        );
        ledger.release_writer("SM1", "a").await.unwrap();
        assert!(
            ledger
                .take_writer("SM1", "c", later, LEASE)
                .await
                .unwrap()
                .is_none(),
            "a's release leaves b's lease alone"
        );
    }
}

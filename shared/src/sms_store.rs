//! The SMS ledger in the state table: which conversation each sent message belongs to, the
//! delivery status seen and written back so far, and the numbers that opted out.
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

use std::time::{Duration, SystemTime};

use aws_sdk_dynamodb::types::AttributeValue;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::table::{self, epoch_millis, epoch_secs, n, s, Item, EXPIRES_AT};

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

/// The ledger.
#[derive(Debug, Clone)]
pub struct SmsStore {
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

impl SmsStore {
    /// The ledger in `table`; records live for `ttl`.
    pub fn new(ddb: aws_sdk_dynamodb::Client, table: impl Into<String>, ttl: Duration) -> Self {
        Self {
            ddb,
            table: table.into(),
            ttl,
        }
    }

    fn expires_at(&self) -> AttributeValue {
        n(epoch_secs(SystemTime::now()) + self.ttl.as_secs())
    }

    /// Records a message just sent (status from Twilio's answer, rank 0 written).
    pub async fn record_sent(&self, record: &SmsRecord) -> Result<()> {
        let mut request = self
            .ddb
            .put_item()
            .table_name(&self.table)
            .item("pk", s(&message_pk(&record.message_sid)))
            .item("sk", s("sms"))
            .item("message_sid", s(&record.message_sid))
            .item("conversation_id", s(&record.conversation_id))
            .item("event_key", s(&record.event_key))
            .item("status", s(&record.status))
            .item("status_rank", n(record.status_rank.into()))
            .item("written_rank", n(0))
            .item(EXPIRES_AT, self.expires_at());
        if let Some(participant) = &record.participant_id {
            request = request.item("participant_id", s(participant));
        }
        request
            .send()
            .await
            .map_err(|e| crate::aws::unavailable("record the SMS", e))?;
        Ok(())
    }

    /// Applies a status callback: moves `status_rank` forward when `rank` is higher, and says
    /// whether there is something to write back.
    pub async fn advance(
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
            .key("sk", s("sms"))
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

    /// The record as it is now (strongly consistent).
    pub async fn get(&self, message_sid: &str) -> Result<Option<SmsRecord>> {
        let out = self
            .ddb
            .get_item()
            .table_name(&self.table)
            .key("pk", s(&message_pk(message_sid)))
            .key("sk", s("sms"))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| crate::aws::unavailable("read the SMS record", e))?;
        out.item.map(|item| parse_record(&item)).transpose()
    }

    /// Takes the write-back lease of a message for `lease` from `now`, unless another writer holds
    /// one that has not run out. `token` names this writer in the later calls. Returns the record
    /// as it is now, or `None` when someone else is writing (or the record is gone).
    pub async fn take_writer(
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

    /// Notes that the writer `token` put the status of rank `rank` on the conversation. When
    /// nothing newer was seen meanwhile, the lease is given back in the same write; otherwise the
    /// writer keeps it for another `lease` from `now` and gets the newer record to write.
    pub async fn written(
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
            .key("sk", s("sms"))
            .expression_attribute_names("#writer", WRITER)
            .expression_attribute_names("#until", WRITER_UNTIL)
            .expression_attribute_values(":token", s(token))
    }

    /// Gives the lease back without writing (the write failed and will be retried); a lease
    /// already lost is left alone.
    pub async fn release_writer(&self, message_sid: &str, token: &str) -> Result<()> {
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

    /// Remembers that a number opted out (Twilio 21610), so it is never texted again.
    pub async fn remember_opt_out(&self, number: &str) -> Result<()> {
        self.ddb
            .put_item()
            .table_name(&self.table)
            .item("pk", s(&opt_out_pk(number)))
            .item("sk", s("opt-out"))
            .send()
            .await
            .map_err(|e| crate::aws::unavailable("remember the opt-out", e))?;
        Ok(())
    }

    /// Whether a number opted out.
    pub async fn has_opted_out(&self, number: &str) -> Result<bool> {
        let out = self
            .ddb
            .get_item()
            .table_name(&self.table)
            .key("pk", s(&opt_out_pk(number)))
            .key("sk", s("opt-out"))
            .send()
            .await
            .map_err(|e| crate::aws::unavailable("read the opt-out list", e))?;
        Ok(out.item.is_some())
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
    format!("sms#{sid}")
}

/// Opt-outs are keyed by a hash: the table never holds a phone number in clear.
fn opt_out_pk(number: &str) -> String {
    format!(
        "optout#{}",
        hex::encode(Sha256::digest(number.trim().as_bytes()))
    )
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

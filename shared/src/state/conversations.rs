//! Per-conversation state for the EventBridge stream: the context the `.outbound` event carries
//! (the customer's number, the campaign) kept until the `.acw` event needs it, and an ordering
//! guard so that an older event arriving late never overwrites newer state.
//!
//! Each kind of event keeps its own latest applied event time on the conversation's record; an
//! event is applied only when its time is at least that (equal passes, so a retried event goes
//! through again and idempotency keeps it from acting twice).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};

use super::records::CONVERSATION;
use super::StoreFuture;
use crate::error::Result;
use crate::state::table::{self, epoch_secs, n, s, EXPIRES_AT};

/// What the `.outbound` event says about the call, needed when it wraps up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundContext {
    /// The customer's number, as the rules found it.
    pub customer_number: String,
    /// The customer's participant, whose attributes carry the SMS status.
    pub participant_id: Option<String>,
    /// The outbound campaign.
    pub campaign_id: Option<String>,
    /// Where the contact's columns are, for templates that use them.
    pub contact: Option<ContactRef>,
}

/// An outbound contact, as the `.outbound` event names it (`outboundContactListId`,
/// `outboundContactId`): its columns are read from Genesys only when a template needs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactRef {
    /// The contact list.
    pub contact_list_id: String,
    /// The contact within it.
    pub contact_id: String,
}

/// Whether an event was applied, or is older than what was already applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied<T> {
    /// Applied; for a wrap-up, the stored outbound context if the `.outbound` event came first.
    Yes(T),
    /// An event of the same kind with a later time was applied already.
    Stale,
}

/// The conversation records. `now` dates the update (each record lives its time-to-live after
/// its last one).
pub trait Conversations: Send + Sync {
    /// Stores the `.outbound` context of `conversation_id` unless a later `.outbound` was stored;
    /// the fields the context leaves out keep their stored values.
    fn record_outbound<'a>(
        &'a self,
        conversation_id: &'a str,
        context: &'a OutboundContext,
        event_time: i64,
        now: SystemTime,
    ) -> StoreFuture<'a, Applied<()>>;

    /// Notes a wrap-up of `conversation_id` unless a later one was noted, and returns the stored
    /// outbound context (`None` while the `.outbound` event has not arrived).
    fn record_wrapup<'a>(
        &'a self,
        conversation_id: &'a str,
        event_time: i64,
        now: SystemTime,
    ) -> StoreFuture<'a, Applied<Option<OutboundContext>>>;
}

/// Conversation records in the state table.
#[derive(Debug, Clone)]
pub struct DynamoConversations {
    ddb: aws_sdk_dynamodb::Client,
    table: String,
    ttl: Duration,
}

impl DynamoConversations {
    /// Records in `table`, kept for `ttl` after their last update.
    pub fn new(ddb: aws_sdk_dynamodb::Client, table: impl Into<String>, ttl: Duration) -> Self {
        Self {
            ddb,
            table: table.into(),
            ttl,
        }
    }
}

impl Conversations for DynamoConversations {
    fn record_outbound<'a>(
        &'a self,
        conversation_id: &'a str,
        context: &'a OutboundContext,
        event_time: i64,
        now: SystemTime,
    ) -> StoreFuture<'a, Applied<()>> {
        Box::pin(self.outbound(conversation_id, context, event_time, now))
    }

    fn record_wrapup<'a>(
        &'a self,
        conversation_id: &'a str,
        event_time: i64,
        now: SystemTime,
    ) -> StoreFuture<'a, Applied<Option<OutboundContext>>> {
        Box::pin(self.wrapup(conversation_id, event_time, now))
    }
}

impl DynamoConversations {
    async fn outbound(
        &self,
        conversation_id: &str,
        context: &OutboundContext,
        event_time: i64,
        now: SystemTime,
    ) -> Result<Applied<()>> {
        let mut sets = vec!["customer_number = :number"];
        let mut values = vec![(":number", s(&context.customer_number))];
        if let Some(participant) = &context.participant_id {
            sets.push("participant_id = :participant");
            values.push((":participant", s(participant)));
        }
        if let Some(campaign) = &context.campaign_id {
            sets.push("campaign_id = :campaign");
            values.push((":campaign", s(campaign)));
        }
        if let Some(contact) = &context.contact {
            sets.push("contact_list_id = :contact_list, contact_id = :contact");
            values.push((":contact_list", s(&contact.contact_list_id)));
            values.push((":contact", s(&contact.contact_id)));
        }
        let applied = self
            .apply(
                conversation_id,
                "outbound_time",
                event_time,
                now,
                &sets,
                values,
            )
            .await?;
        Ok(match applied {
            Some(_) => Applied::Yes(()),
            None => Applied::Stale,
        })
    }

    async fn wrapup(
        &self,
        conversation_id: &str,
        event_time: i64,
        now: SystemTime,
    ) -> Result<Applied<Option<OutboundContext>>> {
        let item = self
            .apply(
                conversation_id,
                "acw_time",
                event_time,
                now,
                &[],
                Vec::new(),
            )
            .await?;
        Ok(match item {
            None => Applied::Stale,
            Some(item) => {
                let text = |name: &str| table::text(&item, name).map(str::to_owned);
                Applied::Yes(
                    text("customer_number").map(|customer_number| OutboundContext {
                        customer_number,
                        participant_id: text("participant_id"),
                        campaign_id: text("campaign_id"),
                        contact: text("contact_list_id").zip(text("contact_id")).map(
                            |(contact_list_id, contact_id)| ContactRef {
                                contact_list_id,
                                contact_id,
                            },
                        ),
                    }),
                )
            }
        })
    }

    /// Sets `time_field` to `event_time` and the other `sets` when the event is not older than the
    /// last one of its kind; returns the record as updated, or `None` when stale.
    async fn apply(
        &self,
        conversation_id: &str,
        time_field: &str,
        event_time: i64,
        now: SystemTime,
        sets: &[&str],
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<Option<table::Item>> {
        let expires_at = epoch_secs(now) + self.ttl.as_secs();
        let mut expression = String::from("SET #time = :time, #exp = :exp");
        for set in sets {
            expression.push_str(", ");
            expression.push_str(set);
        }
        let mut request = self
            .ddb
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&CONVERSATION.pk(conversation_id)))
            .key("sk", s(CONVERSATION.sk))
            .update_expression(expression)
            .condition_expression("attribute_not_exists(#time) OR #time <= :time")
            .expression_attribute_names("#time", time_field)
            .expression_attribute_names("#exp", EXPIRES_AT)
            .expression_attribute_values(":time", AttributeValue::N(event_time.to_string()))
            .expression_attribute_values(":exp", n(expires_at))
            .return_values(ReturnValue::AllNew);
        for (name, value) in values {
            request = request.expression_attribute_values(name, value);
        }
        match request.send().await {
            Ok(out) => Ok(Some(out.attributes.unwrap_or_default())),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(crate::aws::unavailable("update the conversation record", e)),
        }
    }
}

/// Conversation records in memory, for tests of the logic above the store: one lock makes each
/// update as atomic as DynamoDB's conditional update.
#[derive(Debug, Default)]
pub struct MemoryConversations {
    records: Mutex<HashMap<String, Stored>>,
}

/// A conversation's record as the table holds it.
#[derive(Debug, Clone, Default)]
struct Stored {
    customer_number: Option<String>,
    participant_id: Option<String>,
    campaign_id: Option<String>,
    contact: Option<ContactRef>,
    outbound_time: Option<i64>,
    acw_time: Option<i64>,
}

impl MemoryConversations {
    /// Applies `update` to the record of `conversation_id` when `event_time` is not older than
    /// the time `time` reads from it; returns the record as updated, or `None` when stale.
    fn apply(
        &self,
        conversation_id: &str,
        event_time: i64,
        time: fn(&mut Stored) -> &mut Option<i64>,
        update: impl FnOnce(&mut Stored),
    ) -> Option<Stored> {
        let mut records = self
            .records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let record = records.entry(conversation_id.to_owned()).or_default();
        let last = time(record);
        if last.is_some_and(|last| last > event_time) {
            return None;
        }
        *last = Some(event_time);
        update(record);
        Some(record.clone())
    }
}

impl Conversations for MemoryConversations {
    fn record_outbound<'a>(
        &'a self,
        conversation_id: &'a str,
        context: &'a OutboundContext,
        event_time: i64,
        _now: SystemTime,
    ) -> StoreFuture<'a, Applied<()>> {
        let applied = self.apply(
            conversation_id,
            event_time,
            |r| &mut r.outbound_time,
            |record| {
                record.customer_number = Some(context.customer_number.clone());
                if let Some(participant) = &context.participant_id {
                    record.participant_id = Some(participant.clone());
                }
                if let Some(campaign) = &context.campaign_id {
                    record.campaign_id = Some(campaign.clone());
                }
                if let Some(contact) = &context.contact {
                    record.contact = Some(contact.clone());
                }
            },
        );
        let applied = match applied {
            Some(_) => Applied::Yes(()),
            None => Applied::Stale,
        };
        Box::pin(std::future::ready(Ok(applied)))
    }

    fn record_wrapup<'a>(
        &'a self,
        conversation_id: &'a str,
        event_time: i64,
        _now: SystemTime,
    ) -> StoreFuture<'a, Applied<Option<OutboundContext>>> {
        let applied = match self.apply(conversation_id, event_time, |r| &mut r.acw_time, |_| {}) {
            None => Applied::Stale,
            Some(record) => {
                Applied::Yes(
                    record
                        .customer_number
                        .map(|customer_number| OutboundContext {
                            customer_number,
                            participant_id: record.participant_id,
                            campaign_id: record.campaign_id,
                            contact: record.contact,
                        }),
                )
            }
        };
        Box::pin(std::future::ready(Ok(applied)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(number: &str, participant: Option<&str>) -> OutboundContext {
        OutboundContext {
            customer_number: number.into(),
            participant_id: participant.map(str::to_owned),
            campaign_id: Some("camp".into()),
            contact: None,
        }
    }

    #[tokio::test]
    async fn a_wrapup_finds_the_context_and_an_older_event_never_overwrites_a_newer_one() {
        let store = MemoryConversations::default();
        let now = SystemTime::now();
        // The wrap-up first: noted, no context yet.
        assert_eq!(
            store.record_wrapup("c", 20, now).await.unwrap(),
            Applied::Yes(None)
        );
        let newer = context("+1555", Some("p1"));
        assert_eq!(
            store.record_outbound("c", &newer, 10, now).await.unwrap(),
            Applied::Yes(())
        );
        // An older .outbound for another number arrives late: stale, the newer context stands.
        let older = context("+1999", None);
        assert_eq!(
            store.record_outbound("c", &older, 5, now).await.unwrap(),
            Applied::Stale
        );
        // The same wrap-up again (a retry) passes and now finds the context.
        assert_eq!(
            store.record_wrapup("c", 20, now).await.unwrap(),
            Applied::Yes(Some(newer.clone()))
        );
        // An older wrap-up is stale.
        assert_eq!(
            store.record_wrapup("c", 19, now).await.unwrap(),
            Applied::Stale
        );
        // A later .outbound without a participant keeps the stored one.
        store
            .record_outbound("c", &context("+1777", None), 30, now)
            .await
            .unwrap();
        let Applied::Yes(Some(kept)) = store.record_wrapup("c", 40, now).await.unwrap() else {
            panic!("context")
        };
        assert_eq!(kept.customer_number, "+1777");
        assert_eq!(kept.participant_id.as_deref(), Some("p1"));
    }
}

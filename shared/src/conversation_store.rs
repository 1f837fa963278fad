//! Per-conversation state for the EventBridge stream: the context the `.outbound` event carries
//! (the customer's number, the campaign) kept until the `.acw` event needs it, and an ordering
//! guard so that an older event arriving late never overwrites newer state.
//!
//! Each kind of event keeps its own latest applied event time on the conversation's record; an
//! event is applied only when its time is at least that (equal passes, so a retried event goes
//! through again and idempotency keeps it from acting twice).

use std::time::{Duration, SystemTime};

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};

use crate::error::Result;
use crate::table::{self, epoch_secs, n, s, EXPIRES_AT};

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

/// Conversation records in the state table.
#[derive(Debug, Clone)]
pub struct ConversationStore {
    ddb: aws_sdk_dynamodb::Client,
    table: String,
    ttl: Duration,
}

impl ConversationStore {
    /// Records in `table`, kept for `ttl` after their last update.
    pub fn new(ddb: aws_sdk_dynamodb::Client, table: impl Into<String>, ttl: Duration) -> Self {
        Self {
            ddb,
            table: table.into(),
            ttl,
        }
    }

    /// Stores the `.outbound` context of `conversation_id` unless a later `.outbound` was stored.
    pub async fn record_outbound(
        &self,
        conversation_id: &str,
        context: &OutboundContext,
        event_time: i64,
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
            .apply(conversation_id, "outbound_time", event_time, &sets, values)
            .await?;
        Ok(match applied {
            Some(_) => Applied::Yes(()),
            None => Applied::Stale,
        })
    }

    /// Notes a wrap-up of `conversation_id` unless a later one was noted, and returns the stored
    /// outbound context (`None` while the `.outbound` event has not arrived).
    pub async fn record_wrapup(
        &self,
        conversation_id: &str,
        event_time: i64,
    ) -> Result<Applied<Option<OutboundContext>>> {
        let item = self
            .apply(conversation_id, "acw_time", event_time, &[], Vec::new())
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
        sets: &[&str],
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<Option<table::Item>> {
        let expires_at = epoch_secs(SystemTime::now()) + self.ttl.as_secs();
        let mut expression = String::from("SET #time = :time, #exp = :exp");
        for set in sets {
            expression.push_str(", ");
            expression.push_str(set);
        }
        let mut request = self
            .ddb
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&format!("conv#{conversation_id}")))
            .key("sk", s("context"))
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

//! Events from the Genesys Cloud EventBridge integration: the topics the relay acts on, and the
//! key that recognises a re-delivered copy. The EventBridge handler reads them to decide what to
//! queue, the processor to act on what was queued, alike.

use serde_json::Value;

use crate::inbound::event::{EventKey, GenesysDetail};

/// The topics the relay acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic {
    /// `v2.detail.events.conversation.{id}.outbound`: the customer's number and campaign.
    Outbound,
    /// `v2.detail.events.conversation.{id}.acw`: after-call work, with the wrap-up code.
    Acw,
}

impl Topic {
    /// The topic of a concrete topic name; `None` for topics the relay does not act on.
    pub fn of(topic_name: &str) -> Option<Self> {
        if !topic_name.starts_with("v2.detail.events.conversation.") {
            return None;
        }
        if topic_name.ends_with(".outbound") {
            Some(Self::Outbound)
        } else if topic_name.ends_with(".acw") {
            Some(Self::Acw)
        } else {
            None
        }
    }

    /// Name for logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Self::Outbound => "outbound",
            Self::Acw => "acw",
        }
    }
}

/// A string field of the event body.
pub fn body_str<'a>(detail: &'a GenesysDetail, field: &str) -> Option<&'a str> {
    detail
        .event_body
        .get(field)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// The dedup key, from the event's content rather than the EventBridge `id`: Genesys re-delivers
/// an event under a new `id`, and that copy must be recognised.
pub fn event_key(detail: &GenesysDetail) -> EventKey {
    let time = detail
        .event_time()
        .map(|t| t.0.to_string())
        .unwrap_or_default();
    EventKey::from_parts(&[
        detail.topic_name.as_str(),
        time.as_str(),
        body_str(detail, "conversationId").unwrap_or_default(),
        body_str(detail, "participantId").unwrap_or_default(),
        detail
            .metadata
            .correlation_id
            .as_deref()
            .unwrap_or_default(),
    ])
}

/// The FIFO message group of an event: its conversation, and for a topic the relay acts on, that
/// topic too. An `.acw` waits on the queue for its conversation's `.outbound` context, so in one
/// group the `.outbound` queued behind it could never be received: a deadlock until the retry
/// budget dead-letters the wrap-up. Events of one topic and conversation stay in order. An event
/// of no conversation is a group of its own (`key`).
pub fn message_group(detail: &GenesysDetail, key: &EventKey) -> String {
    match (
        body_str(detail, "conversationId"),
        Topic::of(&detail.topic_name),
    ) {
        (Some(conversation), Some(topic)) => format!("{conversation}.{}", topic.name()),
        (Some(conversation), None) => conversation.to_owned(),
        (None, _) => key.as_str().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn detail(topic: &str, correlation: &str) -> GenesysDetail {
        serde_json::from_value(json!({"topicName": topic, "version": "2",
            "eventBody": {"eventTime": 1, "conversationId": "c", "participantId": "p"},
            "metadata": {"CorrelationId": correlation}}))
        .unwrap()
    }

    #[test]
    fn an_outbound_is_never_grouped_behind_the_wrapup_waiting_for_it() {
        let acw = detail("v2.detail.events.conversation.c.acw", "x");
        let outbound = detail("v2.detail.events.conversation.c.outbound", "x");
        let key = event_key(&acw);
        assert_eq!(message_group(&acw, &key), "c.acw");
        assert_eq!(message_group(&outbound, &key), "c.outbound");
        // Topics only forwarded keep their conversation's order.
        let other = detail("v2.detail.events.conversation.c.customer.start", "x");
        assert_eq!(message_group(&other, &key), "c");
        let mut orphan = detail("v2.detail.events.conversation.c.acw", "x");
        orphan.event_body = json!({});
        assert_eq!(message_group(&orphan, &key), key.as_str());
    }

    #[test]
    fn topics_are_recognised_by_their_concrete_name() {
        assert_eq!(
            Topic::of("v2.detail.events.conversation.c1.outbound"),
            Some(Topic::Outbound)
        );
        assert_eq!(
            Topic::of("v2.detail.events.conversation.c1.acw"),
            Some(Topic::Acw)
        );
        assert_eq!(
            Topic::of("v2.detail.events.conversation.c1.customer.end"),
            None
        );
        assert_eq!(Topic::of("v2.audits.entitytype.x.entityid.y"), None);
    }

    #[test]
    fn the_key_follows_the_content() {
        let a = detail("v2.detail.events.conversation.c.acw", "x");
        assert_eq!(event_key(&a), event_key(&a.clone()));
        assert_ne!(
            event_key(&a),
            event_key(&detail("v2.detail.events.conversation.c.acw", "y"))
        );
        assert_ne!(
            event_key(&a),
            event_key(&detail("v2.detail.events.conversation.c.outbound", "x"))
        );
    }
}

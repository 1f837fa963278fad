//! Genesys Cloud event models and the event key used for deduplication.
//!
//! The EventBridge `detail` follows the real integration (Genesys' EventBridge documentation): `topicName`,
//! `version`, `eventBody`, `metadata.CorrelationId`, `timestamp`. Webhook bodies are whatever JSON
//! the sender chose, so they stay a `serde_json::Value` and are read through JSON pointers.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// The `detail` of an event from the Genesys Cloud EventBridge integration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GenesysDetail {
    /// The concrete topic, with real ids (e.g. `v2.detail.events.conversation.<id>.acw`).
    pub topic_name: String,
    /// Schema version of the body; "2" for detail events.
    #[serde(default)]
    pub version: String,
    /// The event itself; its fields depend on the topic.
    pub event_body: Value,
    /// Genesys' correlation id, for tracing one event across systems.
    #[serde(default)]
    pub metadata: Metadata,
    /// When Genesys emitted the event (ISO 8601).
    #[serde(default)]
    pub timestamp: Option<String>,
}

/// Metadata Genesys attaches to each event.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    /// Genesys' id for following one event through its systems.
    #[serde(rename = "CorrelationId", default)]
    pub correlation_id: Option<String>,
}

impl GenesysDetail {
    /// When the event happened: `eventBody.eventTime` in either of its real forms.
    pub fn event_time(&self) -> Option<EventTime> {
        self.event_body
            .get("eventTime")
            .and_then(EventTime::from_json)
    }
}

/// An event time in epoch milliseconds, read from epoch milliseconds (detail events) or an ISO
/// 8601 string (audit events): Genesys uses both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct EventTime(pub i64);

impl EventTime {
    /// Reads either form; anything else is `None`.
    pub fn from_json(value: &Value) -> Option<Self> {
        match value {
            Value::Number(n) => n.as_i64().map(EventTime),
            Value::String(s) => OffsetDateTime::parse(s, &Rfc3339)
                .ok()
                .map(|t| EventTime((t.unix_timestamp_nanos() / 1_000_000) as i64)),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for EventTime {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        EventTime::from_json(&value).ok_or_else(|| {
            serde::de::Error::custom("eventTime must be epoch milliseconds or an ISO 8601 string")
        })
    }
}

/// The key that identifies one event for deduplication, safe to use as an SQS
/// `MessageDeduplicationId` (at most 128 printable ASCII characters).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EventKey(String);

/// Prefix of hashed keys; a readable key never starts with it, so the two kinds cannot meet.
const HASHED: &str = "sha256:";

impl EventKey {
    /// Longest key SQS accepts as a deduplication id.
    pub const MAX_LEN: usize = 128;

    /// A key from readable parts, kept readable when it fits and hashed when it does not.
    ///
    /// Distinct non-empty lists of parts give distinct keys: each part has its `%` and `:`
    /// percent-escaped (`%25`, `%3A`) before the parts are joined with `:`, so `["x:y", "z"]` and
    /// `["x", "y:z"]` no longer meet, while ids, numbers and dotted names read as they are. A
    /// joined text that is empty, unprintable, longer than [`Self::MAX_LEN`] or that would look
    /// like a hashed key is replaced by `sha256:<hex of the joined text>`.
    pub fn from_parts<S: AsRef<str>>(parts: &[S]) -> Self {
        let joined = parts
            .iter()
            .map(|part| escape(part.as_ref()))
            .collect::<Vec<_>>()
            .join(":");
        if Self::is_valid(&joined) && !joined.starts_with(HASHED) {
            EventKey(joined)
        } else {
            Self::digest(joined.as_bytes())
        }
    }

    /// A key that is the SHA-256 of the given bytes, for content with no id of its own.
    pub fn digest(bytes: &[u8]) -> Self {
        EventKey(format!("{HASHED}{}", hex::encode(Sha256::digest(bytes))))
    }

    /// A key read back from where an earlier [`EventKey`] was stored (a message attribute): kept
    /// verbatim, since escaping it again would change it; hashed only if it is not a valid key.
    pub fn from_stored(stored: &str) -> Self {
        if Self::is_valid(stored) {
            EventKey(stored.to_owned())
        } else {
            Self::digest(stored.as_bytes())
        }
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn is_valid(key: &str) -> bool {
        !key.is_empty() && key.len() <= Self::MAX_LEN && key.bytes().all(|b| b.is_ascii_graphic())
    }
}

/// One part of a joined key, with the separator and the escape character escaped.
fn escape(part: &str) -> std::borrow::Cow<'_, str> {
    if part.contains(['%', ':']) {
        part.replace('%', "%25").replace(':', "%3A").into()
    } else {
        part.into()
    }
}

impl std::fmt::Display for EventKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// How a webhook's event key is derived: configured JSON pointers into the body when they all
/// resolve, else an event id the signature covers (the Standard Webhooks `webhook-id`), else the
/// SHA-256 of the raw body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventKeyRule {
    pointers: Vec<String>,
}

impl EventKeyRule {
    /// Parses a comma-separated list of JSON pointers (`/eventBody/conversationId,/eventBody/eventTime`).
    pub fn parse(list: &str) -> Result<Self, String> {
        let pointers: Vec<String> = list
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect();
        if let Some(bad) = pointers.iter().find(|p| !p.starts_with('/')) {
            return Err(format!(
                "holds {bad:?}, which is not a JSON pointer (it must start with '/')"
            ));
        }
        Ok(Self { pointers })
    }

    /// The key for one webhook.
    ///
    /// `signed_id` must be an id the request's signature covers (the Standard Webhooks
    /// `webhook-id`), or `None`: an unsigned header would let anyone holding one captured request
    /// replay it as a new event by changing the id. A pointer that is missing, `null`, empty or not
    /// a scalar does not resolve, and then the whole rule gives way: an absent value is never
    /// keyed as an empty one.
    pub fn derive(&self, body: &Value, signed_id: Option<&str>, raw: &[u8]) -> EventKey {
        if !self.pointers.is_empty() {
            let parts: Option<Vec<String>> = self
                .pointers
                .iter()
                .map(|p| body.pointer(p).and_then(scalar_text))
                .collect();
            if let Some(parts) = parts {
                return EventKey::from_parts(&parts);
            }
        }
        match signed_id.map(str::trim).filter(|id| !id.is_empty()) {
            Some(id) => EventKey::from_parts(&[id]),
            None => EventKey::digest(raw),
        }
    }
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Where a conversation id can stand in a Genesys body: an EventBridge-shaped detail, a flat
/// body, or a nested conversation object.
const CONVERSATION_ID_POINTERS: &[&str] = &[
    "/eventBody/conversationId",
    "/conversationId",
    "/conversation/id",
];

/// The conversation a body is about, used to keep one conversation's events in order.
pub fn conversation_id(body: &Value) -> Option<&str> {
    CONVERSATION_ID_POINTERS
        .iter()
        .find_map(|p| body.pointer(p).and_then(Value::as_str))
        .filter(|s| !s.is_empty())
}

/// Genesys' correlation id when the body carries one (`metadata.CorrelationId`).
pub fn correlation_id(body: &Value) -> Option<&str> {
    body.pointer("/metadata/CorrelationId")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn detail(event_time: Value) -> Value {
        json!({"topicName": "v2.detail.events.conversation.c1.acw", "version": "2",
               "eventBody": {"eventTime": event_time, "conversationId": "c1", "wrapupCode": "X"},
               "metadata": {"CorrelationId": "corr-1"}, "timestamp": "2022-04-06T09:30:45.013Z"})
    }

    #[test]
    fn detail_reads_epoch_millis_and_iso_event_times_alike() {
        let millis: GenesysDetail =
            serde_json::from_value(detail(json!(1649237504949_i64))).unwrap();
        let iso: GenesysDetail =
            serde_json::from_value(detail(json!("2022-04-06T09:31:44.949Z"))).unwrap();
        assert_eq!(millis.event_time(), Some(EventTime(1649237504949)));
        assert_eq!(iso.event_time(), Some(EventTime(1649237504949)));
        assert_eq!(millis.metadata.correlation_id.as_deref(), Some("corr-1"));
        assert_eq!(EventTime::from_json(&json!("yesterday")), None);
        assert!(serde_json::from_value::<EventTime>(json!(true)).is_err());
    }

    #[test]
    fn pointers_win_when_they_all_resolve() {
        let rule = EventKeyRule::parse("/eventBody/conversationId, /eventBody/eventTime").unwrap();
        let body = detail(json!(1649237504949_i64));
        assert_eq!(
            rule.derive(&body, Some("msg_1"), b"raw").as_str(),
            "c1:1649237504949"
        );
    }

    #[test]
    fn signed_id_then_body_hash_are_the_fallbacks() {
        let rule = EventKeyRule::parse("/missing").unwrap();
        let body = json!({"a": 1});
        assert_eq!(
            rule.derive(&body, Some("msg_p5jXN8AQM9LWM0D4loKWxJek"), b"{}")
                .as_str(),
            "msg_p5jXN8AQM9LWM0D4loKWxJek"
        );
        let hashed = rule.derive(&body, None, b"{\"a\": 1}");
        assert_eq!(
            hashed.as_str(),
            format!("sha256:{}", hex::encode(Sha256::digest(b"{\"a\": 1}")))
        );
        assert_ne!(hashed, rule.derive(&body, None, b"{\"a\": 2}"));
    }

    #[test]
    fn keys_too_long_or_unprintable_are_hashed_to_a_valid_dedup_id() {
        let long = "x".repeat(200);
        for key in [
            EventKey::from_parts(&[long.as_str()]),
            EventKey::from_parts(&["with space"]),
        ] {
            assert!(key.as_str().starts_with("sha256:"));
            assert!(key.as_str().len() <= EventKey::MAX_LEN);
        }
        assert!(EventKeyRule::parse("eventBody").is_err());
    }

    #[test]
    fn joined_parts_never_collide() {
        let a = EventKey::from_parts(&["x:y", "z"]);
        let b = EventKey::from_parts(&["x", "y:z"]);
        assert_ne!(a, b);
        assert_eq!(a.as_str(), "x%3Ay:z");
        assert_eq!(b.as_str(), "x:y%3Az");
        // The escape character is escaped too, so an escaped-looking value stays distinct.
        assert_ne!(
            EventKey::from_parts(&["x%3Ay", "z"]),
            EventKey::from_parts(&["x:y", "z"])
        );
        // Arity counts: a trailing empty part is not the same as no part.
        assert_ne!(
            EventKey::from_parts(&["x", ""]),
            EventKey::from_parts(&["x"])
        );
        // A readable key cannot pose as the hash of something else.
        let body_hash = EventKey::digest(b"{}");
        let hex = &body_hash.as_str()["sha256:".len()..];
        assert_ne!(EventKey::from_parts(&["sha256", hex]), body_hash);
        // Long joins are hashed over the escaped text, so they stay apart as well.
        let long = "y".repeat(150);
        assert_ne!(
            EventKey::from_parts(&[format!("x:{long}").as_str(), "z"]),
            EventKey::from_parts(&["x", format!("{long}:z").as_str()])
        );
        // Ids, numbers and dotted names read as before.
        assert_eq!(
            EventKey::from_parts(&["c1", "1649237504949", "v2.detail.acw"]).as_str(),
            "c1:1649237504949:v2.detail.acw"
        );
    }

    #[test]
    fn pointer_values_that_would_join_alike_give_distinct_keys() {
        let rule = EventKeyRule::parse("/a,/b").unwrap();
        let first = rule.derive(&json!({"a": "x:y", "b": "z"}), None, b"1");
        let second = rule.derive(&json!({"a": "x", "b": "y:z"}), None, b"2");
        assert_ne!(first, second);
        // A missing value and an empty one both give way to the body hash: neither is keyed.
        let missing = rule.derive(&json!({"a": "x"}), None, br#"{"a":"x"}"#);
        let empty = rule.derive(&json!({"a": "x", "b": ""}), None, br#"{"a":"x","b":""}"#);
        assert_eq!(missing, EventKey::digest(br#"{"a":"x"}"#));
        assert_eq!(empty, EventKey::digest(br#"{"a":"x","b":""}"#));
        assert_ne!(missing, empty);
    }

    #[test]
    fn a_stored_key_reads_back_as_itself() {
        for key in [
            EventKey::from_parts(&["x:y", "z"]),
            EventKey::from_parts(&["c1", "42"]),
            EventKey::digest(b"{}"),
        ] {
            assert_eq!(EventKey::from_stored(key.as_str()), key);
        }
        assert!(EventKey::from_stored("not a key")
            .as_str()
            .starts_with("sha256:"));
        assert!(EventKey::from_stored("").as_str().starts_with("sha256:"));
    }

    #[test]
    fn conversation_and_correlation_ids_are_found_where_genesys_puts_them() {
        let body = detail(json!(1));
        assert_eq!(conversation_id(&body), Some("c1"));
        assert_eq!(
            conversation_id(&json!({"conversation": {"id": "c2"}})),
            Some("c2")
        );
        assert_eq!(conversation_id(&json!({"conversationId": ""})), None);
        assert_eq!(correlation_id(&body), Some("corr-1"));
    }
}

//! Genesys event parsing and the queue envelope: `GenesysDetail`, `EventTime::from_json` on every
//! JSON node, `EventKeyRule::parse` / `derive`, `conversation_id`, and `queue::decode` with fuzzed
//! message attributes.
//!
//! Input: optional `name: value` head lines (queue attributes, plus `pointers` for an event-key
//! rule and `webhook-id`), an empty line, then the body; without an empty line it is all body.
#![no_main]

use genesys_relay::inbound::event::{
    conversation_id, correlation_id, EventKey, EventKeyRule, EventTime, GenesysDetail,
};
use genesys_relay::inbound::queue::{self, Source};
use libfuzzer_sys::fuzz_target;
use relay_fuzz::Sections;
use serde_json::Value;

const DEFAULT_RULE: &str = "/eventBody/conversationId, /eventBody/eventTime";

fn valid_key(key: &EventKey) -> bool {
    let s = key.as_str();
    !s.is_empty() && s.len() <= EventKey::MAX_LEN && s.bytes().all(|b| b.is_ascii_graphic())
}

/// Whether any number in `value` is a float.
fn has_float(value: &Value) -> bool {
    match value {
        Value::Number(n) => n.is_f64(),
        Value::Array(items) => items.iter().any(has_float),
        Value::Object(map) => map.values().any(has_float),
        _ => false,
    }
}

/// `EventTime::from_json` on every node, with its invariants, to a bounded depth.
fn walk(value: &Value, depth: usize) {
    let time = EventTime::from_json(value);
    match value {
        Value::Number(n) => assert_eq!(time, n.as_i64().map(EventTime)),
        Value::String(_) => {}
        _ => assert_eq!(time, None),
    }
    if depth == 0 {
        return;
    }
    match value {
        Value::Array(items) => items.iter().for_each(|v| walk(v, depth - 1)),
        Value::Object(map) => map.values().for_each(|v| walk(v, depth - 1)),
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let sections = Sections::split(data);
    let fields: Vec<(String, String)> = sections
        .fields()
        .map(|(name, value)| {
            (
                String::from_utf8_lossy(name).into_owned(),
                String::from_utf8_lossy(value).into_owned(),
            )
        })
        .collect();
    let field = |name: &str| {
        fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let body = sections.body;

    // Straight from bytes, as the handlers deserialize.
    let _ = serde_json::from_slice::<GenesysDetail>(body);
    if let Ok(time) = serde_json::from_slice::<EventTime>(body) {
        let value: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(EventTime::from_json(&value), Some(time));
    }

    let rule_text = field("pointers").unwrap_or_else(|| DEFAULT_RULE.to_owned());
    let rule = EventKeyRule::parse(&rule_text);
    if let Ok(rule) = &rule {
        // Without a parsable body the key still comes from the id or the raw bytes.
        let key = rule.derive(&Value::Null, field("webhook-id").as_deref(), body);
        assert!(valid_key(&key), "{key}");
    }

    if let Ok(value) = serde_json::from_slice::<Value>(body) {
        walk(&value, 64);
        if let Some(id) = conversation_id(&value) {
            assert!(!id.is_empty());
        }
        if let Some(id) = correlation_id(&value) {
            assert!(!id.is_empty());
        }
        if let Ok(detail) = serde_json::from_value::<GenesysDetail>(value.clone()) {
            let _ = detail.event_time();
            // Serialize and Deserialize agree (field names, defaults, nulls)...
            let again: GenesysDetail =
                serde_json::from_value(serde_json::to_value(&detail).unwrap()).unwrap();
            assert_eq!(again, detail);
            // ...and through text too, but for floats: without serde_json's `float_roundtrip`
            // feature a float may read back one ULP off, which is not this crate's to test.
            let text = serde_json::to_string(&detail).unwrap();
            let again: GenesysDetail = serde_json::from_str(&text).unwrap();
            if !has_float(&detail.event_body) {
                assert_eq!(again, detail);
            } else {
                assert_eq!(again.topic_name, detail.topic_name);
                assert_eq!(again.version, detail.version);
                assert_eq!(again.metadata, detail.metadata);
                assert_eq!(again.timestamp, detail.timestamp);
            }
        }
        if let Ok(rule) = &rule {
            let webhook_id = field("webhook-id");
            let key = rule.derive(&value, webhook_id.as_deref(), body);
            assert!(valid_key(&key), "{key}");
            assert_eq!(rule.derive(&value, webhook_id.as_deref(), body), key);
            // The key is usable as an attribute and reads back as itself.
            assert_eq!(EventKey::from_stored(key.as_str()), key);
        }
    }

    // The queue envelope: decode, and a decoded message encodes and decodes to itself.
    let text = String::from_utf8_lossy(body);
    if let Ok((envelope, payload)) = queue::decode(&text, field) {
        assert!(valid_key(&envelope.event_key));
        assert_eq!(envelope.group_id, envelope.event_key.as_str());
        assert_eq!(
            Source::parse(envelope.source.as_str()),
            Some(envelope.source)
        );
        let (message_body, attributes) = queue::encode(&envelope, &payload).unwrap();
        let lookup = |name: &str| {
            attributes
                .get(name)
                .and_then(|v| v.string_value())
                .map(str::to_owned)
        };
        let (envelope2, payload2) = queue::decode(&message_body, lookup).unwrap();
        assert_eq!(envelope2, envelope);
        assert_eq!(payload2, payload);
    }
});

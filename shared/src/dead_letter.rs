//! Permanent failures go to the DLQ with their reason, so they can be read and replayed.
//!
//! The original body and attributes are kept (a redrive puts the message back as it was), and
//! attributes name the failure and the function that wrote the letter ([`attr::ORIGIN`]): one DLQ
//! holds queued messages and EventBridge events, and a redrive must know which it has.
//!
//! A letter that failed before carries the earlier reasons in [`attr::PREVIOUS_ERROR`]
//! ([`history`]): `relay dlq redrive` sets it on what it puts back (on an event, through a marked
//! entry of `resources`, see [`previous_error_resource`]), and [`send_from`] keeps it, so a replay
//! that fails again never loses why it failed the first time.
//!
//! On a FIFO DLQ (a `.fifo` URL) each letter is a message group of its own, so every letter can
//! be read (a FIFO queue shows one message of a group at a time) and none waits behind another,
//! and it is deduplicated by the message it was and the action ([`Letter`]), so a letter sent
//! twice (its first send taken but unanswered) is kept once.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::inbound::queue::attr as envelope;
use aws_sdk_sqs::types::MessageAttributeValue;
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Attribute names added to a dead-lettered message.
pub mod attr {
    /// `rejected`, `retryable` or `permanent`.
    pub const ERROR_CLASS: &str = "error-class";
    /// The reason, truncated.
    pub const ERROR_MESSAGE: &str = "error-message";
    /// The action that failed, or `decode`.
    pub const ACTION: &str = "action";
    /// When it was dead-lettered (RFC 3339).
    pub const FAILED_AT: &str = "failed-at";
    /// Which function wrote the letter ([`super::Origin`]), which decides where a redrive sends it.
    pub const ORIGIN: &str = "origin";
    /// The failures before this one, newest first, one per line ([`super::history`]).
    pub const PREVIOUS_ERROR: &str = "previous-error";
}

/// The function that dead-lettered a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A queued message (the body and envelope as the receiver stored them): replayed on the
    /// main queue.
    Processor,
    /// An EventBridge event (the whole event as the body): replayed on the event bus.
    EventBridgeHandler,
}

impl Origin {
    /// The attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Processor => "processor",
            Self::EventBridgeHandler => "eventbridge-handler",
        }
    }

    /// Reads an attribute value.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "processor" => Some(Self::Processor),
            "eventbridge-handler" => Some(Self::EventBridgeHandler),
            _ => None,
        }
    }
}

/// SQS refuses a message with more message attributes than this.
pub(crate) const MAX_ATTRIBUTES: usize = 10;

/// Longest reason kept in [`attr::ERROR_MESSAGE`].
const MAX_MESSAGE: usize = 1000;

/// Longest [`history`]: it fits an EventBridge `resources` entry (2048 characters) with its marker.
pub(crate) const MAX_HISTORY: usize = 1800;

/// Marks the `resources` entry of a replayed event that carries its [`history`] (an event has no
/// attributes; the handler reads it back with [`previous_error_in`]).
pub const PREVIOUS_ERROR_RESOURCE: &str = "genesys-relay:previous-error:";

/// Attributes dropped, first to last, when a letter would carry more than [`MAX_ATTRIBUTES`]:
/// tracing only; a time the letter's own `SentTimestamp` repeats; the origin, which a letter
/// holding the queue envelope shows anyway. Then attributes named nowhere here (another
/// component's, such as the processor's forwarding job), in name order.
const DROPPED_FIRST: [&str; 3] = [envelope::CORRELATION_ID, attr::FAILED_AT, attr::ORIGIN];

/// What a redrive and the next reader need; never dropped.
const KEPT: [&str; 10] = [
    envelope::EVENT_KEY,
    envelope::SOURCE,
    envelope::RECEIVED_AT,
    envelope::CONTENT_TYPE,
    envelope::CLAIM_CHECK,
    "detail-type",
    attr::ERROR_CLASS,
    attr::ERROR_MESSAGE,
    attr::ACTION,
    attr::PREVIOUS_ERROR,
];

/// What is dead-lettered: a message as it came, and where it came from.
#[derive(Debug, Clone, Default)]
pub struct Letter<'a> {
    /// The original body, kept so a redrive puts it back as it was.
    pub body: &'a str,
    /// The original string attributes.
    pub attributes: HashMap<String, String>,
    /// The id of the message it was (a record's, an event's): with the action, what a FIFO DLQ
    /// deduplicates the letter by. Empty when it had none (then the body stands in).
    pub id: &'a str,
}

impl<'a> Letter<'a> {
    /// The letter of `body` and its `attributes`.
    pub fn new(body: &'a str, attributes: impl IntoIterator<Item = (String, String)>) -> Self {
        Self {
            body,
            attributes: attributes.into_iter().collect(),
            ..Self::default()
        }
    }

    /// The letter as the message `id`.
    pub fn from_message(self, id: &'a str) -> Self {
        Self { id, ..self }
    }

    /// Its FIFO deduplication id for `action`, also its message group: a hash, as ids and
    /// actions may hold characters SQS refuses there and together exceed its 128 characters.
    fn deduplication_id(&self, action: &str) -> String {
        let mut hash = Sha256::new();
        for part in [self.id, action] {
            hash.update(part.as_bytes());
            hash.update([0]);
        }
        if self.id.is_empty() {
            hash.update(self.body.as_bytes());
        }
        hex::encode(hash.finalize())
    }
}

/// The processor's dead-lettering: [`send_from`] with [`Origin::Processor`].
pub async fn send(
    sqs: &aws_sdk_sqs::Client,
    dlq_url: &str,
    letter: Letter<'_>,
    action: &str,
    error: &Error,
) -> Result<()> {
    send_from(Origin::Processor, sqs, dlq_url, letter, action, error).await
}

/// Sends `letter` to the DLQ, naming `origin`, `error` and `action`; an error means it was not
/// stored.
///
/// An earlier failure the attributes still name (a letter put back with its dead-letter
/// attributes, as the SQS console's redrive does) moves into [`attr::PREVIOUS_ERROR`] instead of
/// being overwritten. Past `MAX_ATTRIBUTES`, the least needed attributes are left out rather
/// than the letter being refused.
pub async fn send_from(
    origin: Origin,
    sqs: &aws_sdk_sqs::Client,
    dlq_url: &str,
    letter: Letter<'_>,
    action: &str,
    error: &Error,
) -> Result<()> {
    let failed_at = OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default();
    let deduplication_id = letter.deduplication_id(action);
    let attributes = letter_attributes(letter.attributes, origin, action, error, &failed_at)
        .into_iter()
        .filter_map(|(name, value)| Some((name, string(&value)?)))
        .collect();
    let mut request = sqs
        .send_message()
        .queue_url(dlq_url)
        .message_body(letter.body)
        .set_message_attributes(Some(attributes));
    if crate::aws::is_fifo_queue(dlq_url) {
        request = request
            .message_group_id(&deduplication_id)
            .message_deduplication_id(deduplication_id);
    }
    request
        .send()
        .await
        .map_err(|e| crate::aws::unavailable("send the message to the DLQ", e))?;
    Ok(())
}

/// The attributes of a letter: the original ones (empty values dropped, as SQS refuses them),
/// the failure's, and the history, within [`MAX_ATTRIBUTES`].
fn letter_attributes(
    mut attributes: HashMap<String, String>,
    origin: Origin,
    action: &str,
    error: &Error,
    failed_at: &str,
) -> HashMap<String, String> {
    attributes.retain(|_, value| !value.is_empty());
    if let Some(message) = attributes.get(attr::ERROR_MESSAGE) {
        let earlier = entry(
            attributes
                .get(attr::ERROR_CLASS)
                .map_or("failed", String::as_str),
            attributes.get(attr::ACTION).map(String::as_str),
            attributes.get(attr::FAILED_AT).map(String::as_str),
            message,
        );
        let previous = history(
            &earlier,
            attributes.get(attr::PREVIOUS_ERROR).map(String::as_str),
        );
        attributes.insert(attr::PREVIOUS_ERROR.to_owned(), previous);
    }
    let reason = clip_bytes(&error.to_string(), MAX_MESSAGE);
    for (name, value) in [
        (attr::ERROR_CLASS, error.class().as_str()),
        (attr::ERROR_MESSAGE, reason.as_str()),
        (attr::ACTION, action),
        (attr::FAILED_AT, failed_at),
        (attr::ORIGIN, origin.as_str()),
    ] {
        if value.is_empty() {
            attributes.remove(name);
        } else {
            attributes.insert(name.to_owned(), value.to_owned());
        }
    }
    let mut others: Vec<String> = attributes
        .keys()
        .filter(|name| !KEPT.contains(&name.as_str()) && !DROPPED_FIRST.contains(&name.as_str()))
        .cloned()
        .collect();
    others.sort();
    let droppable = DROPPED_FIRST
        .iter()
        .map(|name| (*name).to_owned())
        .chain(others);
    for name in droppable {
        if attributes.len() <= MAX_ATTRIBUTES {
            break;
        }
        attributes.remove(&name);
    }
    attributes
}

/// One failure as a line of [`history`]: `<class> in <action> at <time>: <reason>`.
pub fn entry(class: &str, action: Option<&str>, at: Option<&str>, reason: &str) -> String {
    let mut line = class.to_owned();
    if let Some(action) = action.filter(|a| !a.is_empty()) {
        line.push_str(" in ");
        line.push_str(action);
    }
    if let Some(at) = at.filter(|a| !a.is_empty()) {
        line.push_str(" at ");
        line.push_str(at);
    }
    line.push_str(": ");
    line.push_str(reason);
    one_line(&line)
}

/// The failures of a letter, newest first, one per line: `latest` (a line from [`entry`]) before
/// the `earlier` history. Past `MAX_HISTORY` bytes the middle goes, never the first failure:
/// the newest line and the oldest are kept, shortened if need be.
pub fn history(latest: &str, earlier: Option<&str>) -> String {
    let mut lines: Vec<String> = std::iter::once(one_line(latest))
        .chain(
            earlier
                .into_iter()
                .flat_map(str::lines)
                .map(one_line)
                .filter(|line| !line.is_empty()),
        )
        .collect();
    let joined = lines.join("\n");
    if joined.len() <= MAX_HISTORY || lines.len() < 2 {
        return clip_bytes(&joined, MAX_HISTORY);
    }
    let oldest = lines.pop().unwrap_or_default();
    let newest = lines.swap_remove(0);
    let half = (MAX_HISTORY - ELIDED.len() - 2) / 2;
    format!(
        "{}\n{ELIDED}\n{}",
        clip_bytes(&newest, half),
        clip_bytes(&oldest, half)
    )
}

/// Stands for the failures [`history`] left out.
const ELIDED: &str = "…";

/// The `resources` entry that carries `history` on a replayed event.
pub fn previous_error_resource(history: &str) -> String {
    format!(
        "{PREVIOUS_ERROR_RESOURCE}{}",
        clip_bytes(history, MAX_HISTORY)
    )
}

/// The history an event carries in its `resources`, if it was replayed after a failure.
pub fn previous_error_in(resources: &[String]) -> Option<&str> {
    resources
        .iter()
        .find_map(|resource| resource.strip_prefix(PREVIOUS_ERROR_RESOURCE))
        .filter(|history| !history.is_empty())
}

/// `text` with every run of whitespace (line breaks too) made one space, and without the
/// characters SQS refuses in an attribute (other controls, U+FFFE, U+FFFF).
fn one_line(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .filter(|c| !c.is_control() && !matches!(c, '\u{FFFE}' | '\u{FFFF}'))
        .collect()
}

/// `text` cut to at most `max` bytes, on a character boundary.
fn clip_bytes(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let cut = (0..=max)
        .rev()
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or_default();
    text[..cut].to_owned()
}

fn string(value: &str) -> Option<MessageAttributeValue> {
    if value.is_empty() {
        return None;
    }
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(names: &[&str]) -> HashMap<String, String> {
        names
            .iter()
            .map(|name| ((*name).to_owned(), format!("{name}-value")))
            .collect()
    }

    #[test]
    fn a_fifo_letter_is_deduplicated_by_its_message_and_action() {
        let letter = |body, id| Letter::new(body, []).from_message(id);
        let once = letter("{}", "m1").deduplication_id("sms");
        assert_eq!(once, letter("{}", "m1").deduplication_id("sms"), "stable");
        assert_eq!(once.len(), 64, "within SQS's 128 characters");
        assert_ne!(once, letter("{}", "m1").deduplication_id("forward:crm"));
        assert_ne!(once, letter("{}", "m2").deduplication_id("sms"));
        // Without an id, the body tells letters apart.
        assert_ne!(
            letter("{\"a\":1}", "").deduplication_id("sms"),
            letter("{\"a\":2}", "").deduplication_id("sms")
        );
    }

    #[test]
    fn a_letter_names_its_failure_and_origin() {
        let attributes = letter_attributes(
            pairs(&["event-key", "source"]),
            Origin::EventBridgeHandler,
            "decode",
            &Error::permanent("bad detail"),
            "2026-11-22T05:00:00Z",
        );
        assert_eq!(attributes["origin"], "eventbridge-handler");
        assert_eq!(attributes["error-class"], "permanent");
        assert_eq!(attributes["error-message"], "bad detail");
        assert_eq!(attributes["action"], "decode");
        assert_eq!(attributes["failed-at"], "2026-11-22T05:00:00Z");
        assert_eq!(attributes["event-key"], "event-key-value");
        assert!(!attributes.contains_key("previous-error"));
    }

    #[test]
    fn an_earlier_failure_still_attached_becomes_history_and_keeps_older_history() {
        let mut original = pairs(&["event-key"]);
        original.extend([
            ("error-class".to_owned(), "permanent".to_owned()),
            ("error-message".to_owned(), "first reason".to_owned()),
            ("action".to_owned(), "sms".to_owned()),
            ("failed-at".to_owned(), "2026-11-22T05:00:00Z".to_owned()),
            (
                "previous-error".to_owned(),
                "older: the very first".to_owned(),
            ),
        ]);
        let attributes = letter_attributes(
            original,
            Origin::Processor,
            "sms",
            &Error::permanent("second reason"),
            "2026-11-22T06:00:00Z",
        );
        assert_eq!(attributes["error-message"], "second reason");
        assert_eq!(
            attributes["previous-error"],
            "permanent in sms at 2026-11-22T05:00:00Z: first reason\nolder: the very first"
        );
    }

    #[test]
    fn over_ten_attributes_the_least_needed_go_first() {
        let full = [
            "event-key",
            "source",
            "received-at",
            "content-type",
            "correlation-id",
            "claim-check",
            "forward",
            "previous-error",
        ];
        let attributes = letter_attributes(
            pairs(&full),
            Origin::Processor,
            "sms",
            &Error::permanent("no"),
            "2026-11-22T05:00:00Z",
        );
        assert_eq!(attributes.len(), MAX_ATTRIBUTES);
        for gone in DROPPED_FIRST {
            assert!(!attributes.contains_key(gone), "{gone} left out");
        }
        assert!(
            attributes.contains_key("forward"),
            "another component's kept"
        );
        for kept in KEPT {
            if kept != "detail-type" {
                assert!(attributes.contains_key(kept), "{kept} kept");
            }
        }

        let mut more = pairs(&full);
        more.extend(pairs(&["zz-extra"]));
        let attributes =
            letter_attributes(more, Origin::Processor, "sms", &Error::permanent("no"), "t");
        assert_eq!(attributes.len(), MAX_ATTRIBUTES);
        assert!(
            !attributes.contains_key("forward"),
            "the others go in name order"
        );
        assert!(attributes.contains_key("zz-extra"));
    }

    #[test]
    fn a_long_reason_is_cut_on_a_character_boundary() {
        let attributes = letter_attributes(
            HashMap::new(),
            Origin::Processor,
            "sms",
            &Error::permanent("é".repeat(800)),
            "t",
        );
        assert!(attributes["error-message"].len() <= MAX_MESSAGE);
        assert!(attributes["error-message"].starts_with('é'));
    }

    #[test]
    fn history_never_loses_the_first_failure() {
        let mut history_so_far = entry("permanent", Some("sms"), None, "the first failure");
        for n in 0..50 {
            let latest = entry(
                "permanent",
                Some("sms"),
                None,
                &format!("failure {n} {}", "x".repeat(100)),
            );
            history_so_far = history(&latest, Some(&history_so_far));
            assert!(history_so_far.len() <= MAX_HISTORY);
        }
        assert!(history_so_far.starts_with("permanent in sms: failure 49"));
        assert!(history_so_far.ends_with("permanent in sms: the first failure"));
    }

    #[test]
    fn history_rides_in_an_event_resource() {
        let resources = vec![
            "arn:aws:example".to_owned(),
            previous_error_resource("permanent in decode: no\nolder"),
        ];
        assert_eq!(
            previous_error_in(&resources),
            Some("permanent in decode: no\nolder")
        );
        assert_eq!(previous_error_in(&resources[..1]), None);
        assert!(previous_error_resource(&"y".repeat(5000)).chars().count() <= 2048);
    }

    #[test]
    fn history_lines_hold_nothing_sqs_refuses() {
        let line = entry("permanent", None, None, "a\u{0}b\r\nc\u{FFFF}");
        assert_eq!(line, "permanent: ab c");
    }

    #[test]
    fn origins_round_trip() {
        for origin in [Origin::Processor, Origin::EventBridgeHandler] {
            assert_eq!(Origin::parse(origin.as_str()), Some(origin));
        }
        assert_eq!(Origin::parse("other"), None);
    }
}

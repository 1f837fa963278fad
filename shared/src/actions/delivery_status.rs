//! Write a Twilio delivery status onto the Genesys conversation the SMS followed up.
//!
//! Statuses only move forward (a late `sent` never overwrites `delivered`) and duplicates are
//! no-ops. A callback for a message the ledger does not know yet is retried a few times, since it
//! can race the ledger write, then dead-lettered.

use super::{status_attributes, ActionDeps, Outcome};
use crate::error::{Error, Result};
use crate::sms_store::Advance;
use crate::twilio::status_rank;

/// The action's name (idempotency, logs, metrics, dead-letter attributes).
pub const NAME: &str = "delivery_status";

/// How many deliveries of a callback for an unknown message are retried before it is dead-lettered.
pub const UNKNOWN_SID_ATTEMPTS: u32 = 5;

/// The fields of a Twilio status callback that matter here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusCallback {
    /// `MessageSid`.
    pub message_sid: String,
    /// `MessageStatus`.
    pub status: String,
    /// `ErrorCode`, when Twilio gave one (30003..30008 for delivery errors).
    pub error_code: Option<String>,
}

impl StatusCallback {
    /// Reads a form-encoded callback; one without `MessageSid` or `MessageStatus` is permanent.
    pub fn from_form(body: &str) -> Result<Self> {
        let field = |name: &str| {
            form_urlencoded::parse(body.as_bytes())
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
                .filter(|v| !v.is_empty())
        };
        Ok(Self {
            message_sid: field("MessageSid")
                .ok_or_else(|| Error::permanent("status callback has no MessageSid"))?,
            status: field("MessageStatus")
                .ok_or_else(|| Error::permanent("status callback has no MessageStatus"))?,
            error_code: field("ErrorCode"),
        })
    }
}

/// Applies one callback; `attempt` is how many times it has been delivered (1 the first time).
pub async fn run(callback: &StatusCallback, attempt: u32, deps: &ActionDeps) -> Result<Outcome> {
    let Some(rank) = status_rank(&callback.status) else {
        return Ok(Outcome::new(
            "ignored",
            format!(
                "status {} is not an outbound delivery status",
                callback.status
            ),
        ));
    };
    let sid = &callback.message_sid;
    let mut record = match deps
        .sms
        .advance(sid, &callback.status, rank, callback.error_code.as_deref())
        .await?
    {
        Advance::Write(record) => record,
        Advance::Stale => {
            return Ok(Outcome::new(
                "stale",
                format!("{sid} is already at this status or beyond"),
            ))
        }
        Advance::Unknown if attempt < UNKNOWN_SID_ATTEMPTS => {
            return Err(Error::retryable(format!(
                "no SMS record for {sid} yet (attempt {attempt})"
            )));
        }
        Advance::Unknown => {
            return Err(Error::permanent(format!(
                "no SMS record for {sid} after {attempt} attempts"
            )));
        }
    };
    let Some(participant) = record.participant_id.clone() else {
        return Ok(Outcome::new(
            "ignored",
            format!("{sid} has no participant to write onto"),
        ));
    };
    let prefix = &deps.rules.delivery_status.attribute_prefix;
    // Write until the newest status seen is the one written: a newer callback racing this one
    // makes `mark_written` fail, and the loop writes that newer status too.
    for _ in 0..8 {
        let attributes = status_attributes(
            prefix,
            &[
                ("status", record.status.as_str()),
                ("messageSid", sid.as_str()),
                ("errorCode", record.error_code.as_deref().unwrap_or("")),
            ],
        );
        deps.genesys
            .patch_participant_attributes(&record.conversation_id, &participant, &attributes)
            .await?;
        if deps.sms.mark_written(sid, record.status_rank).await? {
            return Ok(Outcome::new("written", format!("{sid}={}", record.status)));
        }
        match deps.sms.get(sid).await? {
            Some(newer) if newer.written_rank < newer.status_rank => record = newer,
            _ => return Ok(Outcome::new("written", format!("{sid}={}", record.status))),
        }
    }
    Err(Error::retryable(format!(
        "status of {sid} kept changing while it was written"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_callback_form_is_read_and_incomplete_ones_are_permanent() {
        let cb = StatusCallback::from_form(
            "MessageSid=SM1&MessageStatus=undelivered&ErrorCode=30003&To=%2B1",
        )
        .unwrap();
        assert_eq!(cb.message_sid, "SM1");
        assert_eq!(cb.status, "undelivered");
        assert_eq!(cb.error_code.as_deref(), Some("30003"));
        assert_eq!(
            StatusCallback::from_form("MessageStatus=sent")
                .unwrap_err()
                .class(),
            "permanent"
        );
        assert_eq!(
            StatusCallback::from_form("MessageSid=SM1&ErrorCode=")
                .unwrap_err()
                .class(),
            "permanent"
        );
    }
}

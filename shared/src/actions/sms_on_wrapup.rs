//! Text the customer when an outbound call wraps up with a configured code.
//!
//! Opted-out (21610) and undeliverable (21211, 21614) numbers are expected outcomes, not
//! failures: the reason is written onto the conversation and the event is done; opt-outs are
//! remembered so the number is never texted again. Twilio has no idempotency key, so a crash
//! between the send and the idempotency record's completion can repeat the SMS (see
//! `idempotency`).

use serde_json::{Map, Value};

use super::{status_attributes, ActionDeps, Outcome};
use crate::error::{Error, Result};
use crate::event::{conversation_id, EventKey};
use crate::rules::{render, SmsOnWrapup, TemplateValues};
use crate::sms_store::SmsRecord;
use crate::telemetry::mask_phone;
use crate::twilio::{status_rank, OutboundSms, Sender};

/// The action's name (idempotency, logs, metrics, dead-letter attributes).
pub const NAME: &str = "sms_on_wrapup";

/// Everything the SMS needs, from one event or from correlated ones.
#[derive(Debug, Clone, PartialEq)]
pub struct WrapupContext {
    /// The conversation that wrapped up.
    pub conversation_id: String,
    /// The participant whose attributes receive the SMS status.
    pub participant_id: Option<String>,
    /// The wrap-up code.
    pub wrapup_code: String,
    /// The outbound campaign, when known.
    pub campaign_id: Option<String>,
    /// The customer's number.
    pub customer_number: String,
    /// Contact-list fields, when known.
    pub contact: Option<Map<String, Value>>,
}

fn first_str(body: &Value, pointers: &[&str]) -> Option<String> {
    pointers.iter().find_map(|p| {
        body.pointer(p)?
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    })
}

impl WrapupContext {
    /// The context of a webhook body that carries a configured wrap-up code; `None` when the body
    /// is not such a wrap-up. A configured wrap-up without a conversation or number is permanent.
    pub fn from_body(body: &Value, rule: &SmsOnWrapup) -> Option<Result<Self>> {
        let code = first_str(
            body,
            &["/eventBody/wrapupCode", "/wrapupCode", "/wrapup/code"],
        )?;
        rule.template_for(&code)?;
        let Some(conversation) = conversation_id(body) else {
            return Some(Err(Error::permanent(format!(
                "wrap-up {code} names no conversation"
            ))));
        };
        let Some(number) = rule.customer_number(body) else {
            return Some(Err(Error::permanent(format!(
                "wrap-up {code} on conversation {conversation} carries no customer number"
            ))));
        };
        let contact = ["/eventBody/contact", "/contact"]
            .iter()
            .find_map(|p| body.pointer(p)?.as_object().cloned());
        Some(Ok(Self {
            conversation_id: conversation.to_owned(),
            participant_id: first_str(body, &["/eventBody/participantId", "/participantId"]),
            wrapup_code: code,
            campaign_id: first_str(
                body,
                &[
                    "/eventBody/outboundCampaignId",
                    "/outboundCampaignId",
                    "/campaignId",
                ],
            ),
            customer_number: number,
            contact,
        }))
    }
}

/// Sends the SMS for `context` (whose code `rule` lists) and records it.
pub async fn run(
    context: &WrapupContext,
    key: &EventKey,
    rule: &SmsOnWrapup,
    deps: &ActionDeps,
) -> Result<Outcome> {
    let masked = mask_phone(&context.customer_number);
    if deps.sms.has_opted_out(&context.customer_number).await? {
        tracing::info!(action = NAME, event_key = %key, to = %masked, "number opted out earlier; not texting");
        write_rejection(context, "opted-out", "21610", deps).await?;
        return Ok(Outcome::new("rejected", "opted-out"));
    }
    let template = rule.template_for(&context.wrapup_code).ok_or_else(|| {
        Error::permanent(format!(
            "no template for wrap-up code {}",
            context.wrapup_code
        ))
    })?;
    let body = render(
        template,
        &TemplateValues {
            wrapup_code: &context.wrapup_code,
            conversation_id: &context.conversation_id,
            campaign_id: context.campaign_id.as_deref(),
            contact: context.contact.as_ref(),
        },
    );
    let sender = match (&rule.messaging_service_sid, &rule.from) {
        (Some(service), _) => Sender::MessagingService(service.clone()),
        (None, Some(from)) => Sender::From(from.clone()),
        (None, None) => return Err(Error::permanent("smsOnWrapup has no sender")),
    };
    let sms = OutboundSms {
        to: context.customer_number.clone(),
        sender,
        body,
        status_callback: deps.status_callback_url.clone(),
    };
    match deps.twilio.send(&sms).await {
        Ok(sent) => {
            let record = SmsRecord {
                message_sid: sent.sid.clone(),
                conversation_id: context.conversation_id.clone(),
                participant_id: context.participant_id.clone(),
                event_key: key.as_str().to_owned(),
                status: sent.status.clone(),
                error_code: None,
                status_rank: status_rank(&sent.status).unwrap_or_default(),
                written_rank: 0,
            };
            // The SMS is out: failing the event now would send it again, so a ledger write that
            // fails is logged, and the status callbacks for it end in the DLQ with their reason.
            if let Err(error) = deps.sms.record_sent(&record).await {
                tracing::error!(action = NAME, event_key = %key, message_sid = %sent.sid, reason = %error, "SMS sent but not recorded");
            }
            tracing::info!(action = NAME, event_key = %key, message_sid = %sent.sid, to = %masked, "SMS sent");
            Ok(Outcome::new("sent", sent.sid))
        }
        Err(error) if error.is_opt_out() || error.is_undeliverable_number() => {
            let code = error.code().unwrap_or_default().to_string();
            let reason = if error.is_opt_out() {
                "opted-out"
            } else {
                "undeliverable-number"
            };
            if error.is_opt_out() {
                deps.sms.remember_opt_out(&context.customer_number).await?;
            }
            tracing::info!(action = NAME, event_key = %key, to = %masked, code = %code, reason, "Twilio refused the number");
            write_rejection(context, reason, &code, deps).await?;
            Ok(Outcome::new("rejected", reason))
        }
        Err(error) => Err(error.into()),
    }
}

/// Writes `sms.status=rejected` with the reason onto the conversation, when the participant is known.
async fn write_rejection(
    context: &WrapupContext,
    reason: &str,
    code: &str,
    deps: &ActionDeps,
) -> Result<()> {
    let Some(participant) = &context.participant_id else {
        tracing::warn!(action = NAME, conversation_id = %context.conversation_id, reason, "no participant to write the rejection onto");
        return Ok(());
    };
    let prefix = &deps.rules.delivery_status.attribute_prefix;
    let attributes = status_attributes(
        prefix,
        &[
            ("status", "rejected"),
            ("reason", reason),
            ("errorCode", code),
        ],
    );
    deps.genesys
        .patch_participant_attributes(&context.conversation_id, participant, &attributes)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::Rules;
    use serde_json::json;

    fn rule() -> SmsOnWrapup {
        Rules::parse(r#"{"smsOnWrapup": {"templates": {"ININ-OUTBOUND-NO-ANSWER": "hi"}, "from": "+15005550006"}}"#)
            .unwrap()
            .sms_on_wrapup
            .unwrap()
    }

    #[test]
    fn a_configured_wrapup_yields_its_context() {
        let body = json!({"eventBody": {"conversationId": "c1", "participantId": "p1", "wrapupCode": "ININ-OUTBOUND-NO-ANSWER",
            "addressTo": "tel:+14158675309", "outboundCampaignId": "camp"}, "contact": {"firstName": "Ada"}});
        let context = WrapupContext::from_body(&body, &rule()).unwrap().unwrap();
        assert_eq!(context.conversation_id, "c1");
        assert_eq!(context.participant_id.as_deref(), Some("p1"));
        assert_eq!(context.customer_number, "+14158675309");
        assert_eq!(context.campaign_id.as_deref(), Some("camp"));
        assert_eq!(context.contact.unwrap()["firstName"], "Ada");
    }

    #[test]
    fn other_codes_are_not_applicable_and_missing_fields_are_permanent() {
        let other = json!({"eventBody": {"conversationId": "c1", "wrapupCode": "Sale", "addressTo": "+14158675309"}});
        assert!(WrapupContext::from_body(&other, &rule()).is_none());
        assert!(WrapupContext::from_body(&json!({"a": 1}), &rule()).is_none());
        let no_number =
            json!({"eventBody": {"conversationId": "c1", "wrapupCode": "ININ-OUTBOUND-NO-ANSWER"}});
        assert_eq!(
            WrapupContext::from_body(&no_number, &rule())
                .unwrap()
                .unwrap_err()
                .class(),
            "permanent"
        );
    }
}

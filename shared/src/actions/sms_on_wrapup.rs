//! Text the customer when an outbound call wraps up with a configured code.
//!
//! Opted-out (21610) and undeliverable (21211, 21614) numbers are expected outcomes, not
//! failures: the reason is written onto the conversation and the event is done; opt-outs are
//! remembered so the number is never texted again. Twilio has no idempotency key, so a crash
//! between the send and the idempotency record's completion can repeat the SMS (see
//! `idempotency`).

use std::time::SystemTime;

use serde_json::{Map, Value};

use super::{status_attributes, ActionDeps, Outcome};
use crate::error::{Error, Result};
use crate::inbound::event::{conversation_id, EventKey};
use crate::outbound::twilio::{status_rank, OutboundSms};
use crate::rules::{needs_contact, render, SmsOnWrapup, TemplateValues};
use crate::state::conversations::ContactRef;
use crate::state::sms::SmsRecord;
use crate::telemetry::mask_phone;
use crate::telemetry::Label;

/// The action's name (idempotency, logs, metrics, dead-letter attributes).
pub const NAME: &str = "sms_on_wrapup";

/// Everything the SMS needs, from one event or from correlated ones.
#[derive(Debug, Clone, PartialEq)]
pub struct WrapupContext {
    /// The conversation that wrapped up.
    pub conversation_id: String,
    /// The participant whose attributes receive the SMS status.
    pub participant_id: Option<String>,
    /// The wrap-up code as the event carries it (an id, or a name in a custom webhook).
    pub wrapup_code: String,
    /// The key of the rule's template this code selects (an id or a name, as the rules wrote it).
    pub template_key: String,
    /// The outbound campaign, when known.
    pub campaign_id: Option<String>,
    /// The customer's number.
    pub customer_number: String,
    /// Contact-list columns the event itself carries.
    pub contact: Option<Map<String, Value>>,
    /// Where to read the columns when the event does not carry them.
    pub contact_ref: Option<ContactRef>,
}

fn first_str(body: &Value, pointers: &[&str]) -> Option<String> {
    pointers.iter().find_map(|p| {
        body.pointer(p)?
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    })
}

/// The wrap-up code a webhook body carries, if it is a wrap-up at all.
pub fn wrapup_code_of(body: &Value) -> Option<String> {
    first_str(
        body,
        &["/eventBody/wrapupCode", "/wrapupCode", "/wrapup/code"],
    )
}

impl WrapupContext {
    /// The context of a webhook body whose wrap-up `code` selects the template `template_key`. A
    /// configured wrap-up without a conversation or number is permanent.
    pub fn from_body(
        body: &Value,
        rule: &SmsOnWrapup,
        code: String,
        template_key: String,
    ) -> Result<Self> {
        let Some(conversation) = conversation_id(body) else {
            return Err(Error::permanent(format!(
                "wrap-up {code} names no conversation"
            )));
        };
        let Some(number) = rule.customer_number(body) else {
            return Err(Error::permanent(format!(
                "wrap-up {code} on conversation {conversation} carries no customer number"
            )));
        };
        let contact = ["/eventBody/contact", "/contact"]
            .iter()
            .find_map(|p| body.pointer(p)?.as_object().cloned());
        let contact_ref = first_str(
            body,
            &["/eventBody/outboundContactListId", "/outboundContactListId"],
        )
        .zip(first_str(
            body,
            &["/eventBody/outboundContactId", "/outboundContactId"],
        ))
        .map(|(contact_list_id, contact_id)| ContactRef {
            contact_list_id,
            contact_id,
        });
        Ok(Self {
            conversation_id: conversation.to_owned(),
            participant_id: first_str(body, &["/eventBody/participantId", "/participantId"]),
            wrapup_code: code,
            template_key,
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
            contact_ref,
        })
    }
}

/// Sends the SMS for `context` (whose template `rule` holds) and records it. A template whose
/// placeholders cannot all be filled sends nothing: the event is dead-lettered naming them.
pub async fn run(
    context: &WrapupContext,
    key: &EventKey,
    rule: &SmsOnWrapup,
    deps: &ActionDeps,
) -> Result<Outcome> {
    let masked = mask_phone(&context.customer_number);
    if deps
        .opt_outs
        .has_opted_out(&context.customer_number)
        .await?
    {
        tracing::info!(action = NAME, event_key = %key, to = %masked, "number opted out earlier; not texting");
        write_rejection(context, "opted-out", "21610", deps).await?;
        return Ok(Outcome::new(Label::Rejected, "opted-out"));
    }
    let template = rule.template(&context.template_key).ok_or_else(|| {
        Error::permanent(format!(
            "no template for wrap-up code {}",
            context.wrapup_code
        ))
    })?;
    let contact = match (&context.contact, &context.contact_ref) {
        (None, Some(at)) if needs_contact(template) => {
            let columns = deps
                .genesys
                .contact_columns(&at.contact_list_id, &at.contact_id)
                .await?;
            if columns.is_none() {
                tracing::warn!(action = NAME, event_key = %key, contact_list_id = %at.contact_list_id, contact_id = %at.contact_id, "the outbound contact is gone from its list");
            }
            columns
        }
        (carried, _) => carried.clone(),
    };
    let body = render(
        template,
        &TemplateValues {
            wrapup_code: &context.wrapup_code,
            conversation_id: &context.conversation_id,
            campaign_id: context.campaign_id.as_deref(),
            contact: contact.as_ref(),
        },
    )
    .map_err(|missing| {
        Error::permanent(format!(
            "wrap-up {} on conversation {}: not texted, {missing}",
            context.wrapup_code, context.conversation_id
        ))
    })?;
    let sms = OutboundSms {
        to: context.customer_number.clone(),
        sender: rule.sender.clone(),
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
            if let Err(error) = deps.sms.record_sent(&record, SystemTime::now()).await {
                tracing::error!(action = NAME, event_key = %key, message_sid = %sent.sid, reason = %error, "SMS sent but not recorded");
            }
            super::delivery_status::schedule_first_check(&record, deps).await;
            tracing::info!(action = NAME, event_key = %key, message_sid = %sent.sid, to = %masked, "SMS sent");
            Ok(Outcome::new(Label::Sent, sent.sid))
        }
        Err(error) if error.is_opt_out() || error.is_undeliverable_number() => {
            let code = error.code().unwrap_or_default().to_string();
            let reason = if error.is_opt_out() {
                "opted-out"
            } else {
                "undeliverable-number"
            };
            if error.is_opt_out() {
                deps.opt_outs.remember(&context.customer_number).await?;
            }
            tracing::info!(action = NAME, event_key = %key, to = %masked, code = %code, reason, "Twilio refused the number");
            write_rejection(context, reason, &code, deps).await?;
            Ok(Outcome::new(Label::Rejected, reason))
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

    fn context_of(body: &Value) -> Result<WrapupContext> {
        let code = wrapup_code_of(body).unwrap();
        WrapupContext::from_body(body, &rule(), code.clone(), code)
    }

    #[test]
    fn a_configured_wrapup_yields_its_context() {
        let body = json!({"eventBody": {"conversationId": "c1", "participantId": "p1", "wrapupCode": "ININ-OUTBOUND-NO-ANSWER",
            "addressTo": "tel:+14158675309", "outboundCampaignId": "camp", "outboundContactListId": "l1", "outboundContactId": "k1"},
            "contact": {"firstName": "Ada"}});
        let context = context_of(&body).unwrap();
        assert_eq!(context.conversation_id, "c1");
        assert_eq!(context.participant_id.as_deref(), Some("p1"));
        assert_eq!(context.customer_number, "+14158675309");
        assert_eq!(context.campaign_id.as_deref(), Some("camp"));
        assert_eq!(context.contact.unwrap()["firstName"], "Ada");
        assert_eq!(
            context.contact_ref,
            Some(ContactRef {
                contact_list_id: "l1".into(),
                contact_id: "k1".into()
            })
        );
    }

    #[test]
    fn bodies_without_a_code_are_no_wrapups_and_missing_fields_are_permanent() {
        assert!(wrapup_code_of(&json!({"a": 1})).is_none());
        assert_eq!(
            wrapup_code_of(&json!({"eventBody": {"wrapupCode": "Sale"}})).as_deref(),
            Some("Sale")
        );
        let no_number =
            json!({"eventBody": {"conversationId": "c1", "wrapupCode": "ININ-OUTBOUND-NO-ANSWER"}});
        assert_eq!(context_of(&no_number).unwrap_err().class(), "permanent");
    }
}

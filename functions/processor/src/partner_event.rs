//! Events of the Genesys Cloud EventBridge integration, queued by the EventBridge handler.
//!
//! The customer's number arrives on `.outbound`; the wrap-up code arrives later on `.acw`. The
//! `.outbound` context is stored per conversation (a later event's context is never overwritten
//! by an older one), and an `.acw` with a configured code texts the customer with it, once. An
//! `.acw` that arrives first fails as retryable and waits on the queue for its `.outbound`, within
//! the retry budget, never dropped and never texted to the wrong party.

use std::time::Duration;

use genesys_relay::actions::sms_on_wrapup::{self, WrapupContext};
use genesys_relay::actions::{event_content, run_once, Outcome};
use genesys_relay::inbound::event::{EventKey, GenesysDetail};
use genesys_relay::inbound::partner_event::{body_str, Topic};
use genesys_relay::rules::SmsOnWrapup;
use genesys_relay::state::conversations::{Applied, ContactRef, OutboundContext};
use genesys_relay::{telemetry, Error, Result};
use serde_json::json;

use crate::failure::{at, Failure, DECODE};
use crate::Deps;
use genesys_relay::telemetry::{Function, Label};

/// Action label of storing a conversation's `.outbound` context.
pub const CONTEXT: &str = "conversation-context";

/// Acts on one queued EventBridge event (`payload` is its `detail`) when the rules text anyone;
/// an event of another topic is here only to be forwarded.
pub async fn act(
    key: &EventKey,
    payload: &str,
    deps: &Deps,
    lease: Duration,
) -> Result<(), Failure> {
    let detail: GenesysDetail = serde_json::from_str(payload)
        .map_err(|e| Error::permanent(format!("detail is not a Genesys event: {e}")))
        .map_err(at(DECODE))?;
    let (Some(topic), Some(rule)) = (
        Topic::of(&detail.topic_name),
        deps.actions.rules.sms_on_wrapup.as_ref(),
    ) else {
        return Ok(());
    };
    let (name, outcome) = match topic {
        Topic::Outbound => (CONTEXT, outbound(&detail, rule, deps).await),
        Topic::Acw => (
            sms_on_wrapup::NAME,
            wrapup(&detail, key, rule, deps, lease).await,
        ),
    };
    let outcome = outcome.map_err(at(name))?;
    tracing::info!(
        action = name,
        topic = topic.name(),
        event_key = %key,
        correlation_id = detail.metadata.correlation_id.as_deref().unwrap_or(""),
        outcome = %outcome.label,
        detail = %outcome.detail,
        "action done"
    );
    telemetry::count_outcome(Function::Processor, name, outcome.label);
    Ok(())
}

/// Stores what the wrap-up will need.
async fn outbound(detail: &GenesysDetail, rule: &SmsOnWrapup, deps: &Deps) -> Result<Outcome> {
    let conversation = required(detail, "conversationId")?;
    let Some(time) = detail.event_time() else {
        return Err(Error::permanent("outbound event has no eventTime"));
    };
    let body = json!({ "eventBody": detail.event_body });
    let Some(customer_number) = rule.customer_number(&body) else {
        return Err(Error::permanent(format!(
            "outbound event of {conversation} carries no customer number"
        )));
    };
    let context = OutboundContext {
        customer_number,
        participant_id: body_str(detail, "participantId").map(str::to_owned),
        campaign_id: body_str(detail, "outboundCampaignId").map(str::to_owned),
        contact: body_str(detail, "outboundContactListId")
            .zip(body_str(detail, "outboundContactId"))
            .map(|(list, contact)| ContactRef {
                contact_list_id: list.to_owned(),
                contact_id: contact.to_owned(),
            }),
    };
    Ok(
        match deps
            .conversations
            .record_outbound(conversation, &context, time.0, (deps.clock)())
            .await?
        {
            Applied::Yes(()) => Outcome::new(Label::Stored, conversation),
            Applied::Stale => Outcome::new(Label::Stale, conversation),
        },
    )
}

/// Texts the customer when the wrap-up code is configured and the `.outbound` context is known.
/// The SMS claim is taken before the wrap-up is noted, so a replay of an event whose SMS was sent
/// is a duplicate even after the conversation's context has expired.
async fn wrapup(
    detail: &GenesysDetail,
    key: &EventKey,
    rule: &SmsOnWrapup,
    deps: &Deps,
    lease: Duration,
) -> Result<Outcome> {
    let code = body_str(detail, "wrapupCode").unwrap_or_default();
    let Some(template_key) = deps.actions.select_template(code).await? else {
        return Ok(Outcome::new(
            Label::Ignored,
            format!("wrap-up code {code:?} is not configured"),
        ));
    };
    let conversation = required(detail, "conversationId")?;
    let Some(time) = detail.event_time() else {
        return Err(Error::permanent("acw event has no eventTime"));
    };
    run_once(
        &deps.idempotency,
        sms_on_wrapup::NAME,
        key,
        &event_content(detail),
        lease,
        || async {
            let context = match deps
                .conversations
                .record_wrapup(conversation, time.0, (deps.clock)())
                .await?
            {
                Applied::Stale => return Ok(Outcome::new(Label::Stale, conversation)),
                Applied::Yes(None) => {
                    return Err(Error::retryable(format!(
                        "wrap-up of {conversation} arrived before its outbound event"
                    )))
                }
                Applied::Yes(Some(context)) => context,
            };
            let wrapup = WrapupContext {
                conversation_id: conversation.to_owned(),
                participant_id: context.participant_id,
                wrapup_code: code.to_owned(),
                template_key,
                campaign_id: context.campaign_id,
                customer_number: context.customer_number,
                contact: None,
                contact_ref: context.contact,
            };
            sms_on_wrapup::run(&wrapup, key, rule, &deps.actions).await
        },
    )
    .await
}

fn required<'a>(detail: &'a GenesysDetail, field: &str) -> Result<&'a str> {
    body_str(detail, field).ok_or_else(|| Error::permanent(format!("event has no {field}")))
}

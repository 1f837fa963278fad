//! The queue's side of forwarding: reading a job off a record, and dead-lettering a delivery
//! that gives up. What a delivery is and when it runs again is [`genesys_relay::outbound::forward`]'s.

use std::time::Duration;

use aws_lambda_events::event::sqs::SqsMessage;
use genesys_relay::dead_letter::{self, Letter};
use genesys_relay::inbound::queue::Envelope;
use genesys_relay::outbound::forward::{Context, Event, Forwarder, Job, Message, Settled};
use genesys_relay::telemetry::{Function, Label};
use genesys_relay::{telemetry, Error, Result};

use crate::failure::Failure;
use crate::Deps;

/// The forwarding job a record carries, if it is one (a malformed marker is not: the record is
/// then processed as an event).
pub fn job_of(record: &SqsMessage) -> Option<Job> {
    record
        .message_attributes
        .get(genesys_relay::outbound::forward::ATTRIBUTE)
        .and_then(|a| a.string_value.as_deref())
        .and_then(Job::parse)
}

/// The first deliveries of an event to every endpoint that wants it.
pub async fn fan_out(
    record: &SqsMessage,
    envelope: &Envelope,
    payload: &str,
    deps: &Deps,
    lease: Duration,
) -> Result<(), Failure> {
    let Some(forwarder) = &deps.actions.forward else {
        return Ok(());
    };
    let event = Event::new(envelope, payload);
    for job in forwarder.first_jobs(&event) {
        run(record, &event, &job, forwarder, deps, lease).await?;
    }
    Ok(())
}

/// A job taken from the queue.
pub async fn run_job(
    record: &SqsMessage,
    envelope: &Envelope,
    payload: &str,
    job: Job,
    deps: &Deps,
    lease: Duration,
) -> Result<(), Failure> {
    let Some(forwarder) = &deps.actions.forward else {
        return Err(Failure {
            action: job.action(),
            error: Error::permanent("forwarding is not configured"),
        });
    };
    run(
        record,
        &Event::new(envelope, payload),
        &job,
        forwarder,
        deps,
        lease,
    )
    .await
}

async fn run(
    record: &SqsMessage,
    event: &Event<'_>,
    job: &Job,
    forwarder: &Forwarder,
    deps: &Deps,
    lease: Duration,
) -> Result<(), Failure> {
    let fail = |error| Failure {
        action: job.action(),
        error,
    };
    let message = Message::new(
        record.body.as_deref().unwrap_or_default(),
        record
            .message_attributes
            .iter()
            .filter_map(|(name, value)| Some((name.clone(), value.string_value.clone()?))),
    );
    let context = Context {
        idempotency: &deps.idempotency,
        jobs: deps.jobs.as_ref(),
        lease,
        now: (deps.clock)(),
    };
    match forwarder.run(context, event, &message, job).await {
        Ok(Settled::Done) => Ok(()),
        Ok(Settled::GiveUp(error)) => give_up(record, &message, job, &error, deps)
            .await
            .map_err(fail),
        Err(error) => Err(fail(error)),
    }
}

/// Dead-letters one endpoint's delivery of the event with its reason, as that endpoint's first
/// job: a redrive makes this delivery again and nothing else, however long after the event, so
/// no other action (an SMS, another endpoint) runs twice.
async fn give_up(
    record: &SqsMessage,
    message: &Message<'_>,
    job: &Job,
    error: &Error,
    deps: &Deps,
) -> Result<()> {
    let action = job.action();
    let letter = Letter::new(
        message.body,
        message.attributes_of(&Job::first(&job.endpoint)),
    )
    .from_message(record.message_id.as_deref().unwrap_or_default());
    dead_letter::send(&deps.sqs, &deps.config.dlq_url, letter, &action, error).await?;
    tracing::error!(action, class = %error.class(), reason = %error, "delivery dead-lettered");
    telemetry::count_outcome(Function::Processor, "forward", Label::DeadLettered);
    Ok(())
}

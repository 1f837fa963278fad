//! Forwarding: one delivery per (event, endpoint), signed, optionally encrypted, retried on its
//! own schedule, behind an SSRF policy and a circuit breaker per endpoint.
//!
//! - [`ssrf`]: which addresses a delivery may connect to.
//! - [`circuit`]: when an endpoint is left alone for a while.
//! - [`envelope`]: the signed (and maybe encrypted) body and headers an endpoint receives.
//! - [`forwarder`]: the endpoints and one attempt at one of them.
//! - [`event`]: the queued event as endpoints see it (type, time, JSON text).
//! - [`job`]: a delivery waiting on the queue, and the message that carries it.
//! - [`schedule`]: the retry schedule, and the one place that decides what a result means.
//!
//! A delivery that must wait (the retry schedule, an endpoint's Retry-After, an open circuit) is
//! put back on the queue as its own job and the original is acknowledged. So a failing endpoint
//! never holds back or repeats another, retries are not limited by the queue's receive count, and
//! an open circuit defers deliveries instead of dead-lettering them. SQS delays a message at most
//! 15 minutes; a job received early hides itself until its time. Which queue carries jobs, and where a delivery that gives up goes, is the caller's.

pub mod circuit;
pub mod envelope;
pub mod event;
pub mod forwarder;
pub mod job;
pub mod schedule;
pub mod ssrf;

use std::time::{Duration, SystemTime};

use tokio::time::Instant;

pub use event::Event;
pub use forwarder::{Attempt, Forwarder};
pub use job::{Job, Message, ATTRIBUTE, NAME_PREFIX};
pub use schedule::{Next, WRAP_UP};

use crate::actions::{claim_content, run_once};
use crate::error::{Error, Result};
use crate::inbound::jobs::JobQueue;
use crate::state::idempotency::Idempotency;
use crate::state::table::epoch_millis;

/// What became of a run of a job.
#[derive(Debug)]
pub enum Settled {
    /// Delivered, found delivered before, or queued to run again later.
    Done,
    /// No attempt will succeed, or none is left: the caller dead-letters the delivery with this
    /// reason (as [`Job::first`], so that a redrive makes this delivery again and nothing else).
    GiveUp(Error),
}

/// What a delivery runs with besides the forwarder.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    /// Claims, so a delivery happens once in effect.
    pub idempotency: &'a Idempotency,
    /// Where jobs for later go.
    pub jobs: &'a dyn JobQueue,
    /// How long the invocation has left: bounds the claim, and the attempt ends [`WRAP_UP`]
    /// before it.
    pub lease: Duration,
    /// The time now.
    pub now: SystemTime,
}

impl Forwarder {
    /// The first deliveries of `event`: one job per endpoint that wants it, due at once.
    pub fn first_jobs(&self, event: &Event<'_>) -> Vec<Job> {
        self.endpoints_for(&event.kind)
            .into_iter()
            .map(Job::first)
            .collect()
    }

    /// Runs `job` for `event`, which came in `message`. An early job is deferred (its message
    /// hides until it is due); a due one is delivered once in effect (a claim on the endpoint's action and the event key) and what
    /// its result means is decided by [`schedule::next`]: done, queued to run later as its own
    /// job, or given up. An error when the job could not be queued (on a FIFO queue, where no job
    /// is queued, the record itself waits).
    pub async fn run(
        &self,
        context: Context<'_>,
        event: &Event<'_>,
        message: &Message<'_>,
        job: &Job,
    ) -> Result<Settled> {
        if let Some(wait) = job.wait_at(context.now) {
            return Err(Error::deferred("not due yet", wait));
        }
        let action = job.action();
        let key = &event.envelope.event_key;
        let attempt = Attempt {
            event,
            number: job.attempt,
            deadline: schedule::attempt_deadline(Instant::now(), context.lease),
        };
        let result = run_once(
            context.idempotency,
            &action,
            key,
            &claim_content(event.envelope.source, event.payload),
            context.lease,
            || self.deliver(&job.endpoint, attempt),
        )
        .await;
        match schedule::next(result, job.attempt, self.max_attempts()) {
            Next::Done(outcome) => {
                tracing::info!(action = %action, event_key = %key, outcome = %outcome.label, detail = %outcome.detail, "action done");
                Ok(Settled::Done)
            }
            Next::Later { attempt, wait } => {
                if context.jobs.is_fifo() {
                    return Err(Error::Retryable {
                        message: format!("delivery to {} must wait", job.endpoint),
                        retry_after: Some(wait),
                    });
                }
                let later = Job {
                    endpoint: job.endpoint.clone(),
                    attempt,
                    not_before_ms: epoch_millis(context.now + wait),
                };
                context.jobs.send(&message.job(&later, wait)).await?;
                tracing::info!(action = %action, event_key = %key, attempt, wait_secs = wait.as_secs(), "delivery queued for later");
                Ok(Settled::Done)
            }
            Next::GiveUp(error) => Ok(Settled::GiveUp(error)),
        }
    }
}

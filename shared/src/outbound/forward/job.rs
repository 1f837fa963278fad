//! A delivery waiting on the main queue: the queued event's own message again, marked with the
//! endpoint, the attempt and the time before which it must not run.

use std::time::{Duration, SystemTime};

use crate::inbound::jobs;
use crate::state::table::epoch_millis;

/// The message attribute that makes a message a forwarding job: `endpoint;attempt;not-before-ms`.
pub const ATTRIBUTE: &str = "forward";

/// Action name prefix; the endpoint's name follows (`forward:crm`).
pub const NAME_PREFIX: &str = "forward:";

/// A pending delivery to one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// Endpoint name.
    pub endpoint: String,
    /// The attempt it will be.
    pub attempt: u32,
    /// Epoch ms before which it must not run.
    pub not_before_ms: u64,
}

impl Job {
    /// The first delivery to `endpoint`, due at once: what an event fans out to, and what a
    /// dead letter carries so that a redrive makes this delivery again and nothing else.
    pub fn first(endpoint: &str) -> Self {
        Self {
            endpoint: endpoint.to_owned(),
            attempt: 1,
            not_before_ms: 0,
        }
    }

    /// Reads the attribute; `None` when malformed (the message is then processed as an event).
    pub fn parse(value: &str) -> Option<Self> {
        let mut parts = value.split(';');
        let endpoint = parts.next().filter(|e| !e.is_empty())?.to_owned();
        let attempt = parts.next()?.parse().ok()?;
        let not_before_ms = parts.next()?.parse().ok()?;
        parts.next().is_none().then_some(Self {
            endpoint,
            attempt,
            not_before_ms,
        })
    }

    /// The attribute's value.
    pub fn encode(&self) -> String {
        format!("{};{};{}", self.endpoint, self.attempt, self.not_before_ms)
    }

    /// The action name its claim and logs use.
    pub fn action(&self) -> String {
        format!("{NAME_PREFIX}{}", self.endpoint)
    }

    /// How long until it is due at `now`; `None` once it is.
    pub(crate) fn wait_at(&self, now: SystemTime) -> Option<Duration> {
        let now = epoch_millis(now);
        (self.not_before_ms > now).then(|| Duration::from_millis(self.not_before_ms - now))
    }
}

/// The queued message a delivery came from, as a job or a dead letter carries it again.
#[derive(Debug, Clone)]
pub struct Message<'a> {
    /// Its body, unchanged.
    pub body: &'a str,
    /// Its string attributes, without a job marker.
    pub attributes: Vec<(String, String)>,
}

impl<'a> Message<'a> {
    /// The message of `body` and `attributes`, dropping any job marker among them.
    pub fn new(body: &'a str, attributes: impl IntoIterator<Item = (String, String)>) -> Self {
        Self {
            body,
            attributes: attributes
                .into_iter()
                .filter(|(name, _)| name != ATTRIBUTE)
                .collect(),
        }
    }

    /// Its attributes marked as `job`.
    pub fn attributes_of(&self, job: &Job) -> Vec<(String, String)> {
        self.attributes
            .iter()
            .cloned()
            .chain(std::iter::once((ATTRIBUTE.to_owned(), job.encode())))
            .collect()
    }

    /// The message that runs `job` after `wait`: SQS holds it back for up to its longest delay,
    /// and a job received early waits out the rest.
    pub fn job(&self, job: &Job, wait: Duration) -> jobs::Job {
        jobs::Job {
            body: self.body.to_owned(),
            attributes: self.attributes_of(job),
            delay: wait.min(jobs::MAX_DELAY),
            fifo: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn jobs_round_trip_and_malformed_ones_are_not_jobs() {
        let job = Job {
            endpoint: "crm".into(),
            attempt: 3,
            not_before_ms: 1_700_000_000_000,
        };
        assert_eq!(Job::parse(&job.encode()), Some(job));
        for bad in ["", "crm", "crm;x;1", ";1;1", "crm;1;1;extra"] {
            assert_eq!(Job::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn an_early_job_waits_the_rest_and_a_due_one_not_at_all() {
        let job = Job {
            endpoint: "crm".into(),
            attempt: 2,
            not_before_ms: 10_000,
        };
        let at = |ms| UNIX_EPOCH + Duration::from_millis(ms);
        assert_eq!(job.wait_at(at(4_000)), Some(Duration::from_secs(6)));
        assert_eq!(job.wait_at(at(10_000)), None);
    }

    #[test]
    fn a_job_message_keeps_the_original_and_replaces_an_old_marker() {
        let message = Message::new(
            "body",
            [
                ("source".to_owned(), "genesys-webhook".to_owned()),
                (ATTRIBUTE.to_owned(), "crm;1;0".to_owned()),
            ],
        );
        let queued = message.job(
            &Job {
                endpoint: "crm".into(),
                attempt: 2,
                not_before_ms: 5,
            },
            Duration::from_secs(3600),
        );
        assert_eq!(queued.body, "body");
        assert_eq!(
            queued.attributes,
            [
                ("source".to_owned(), "genesys-webhook".to_owned()),
                (ATTRIBUTE.to_owned(), "crm;2;5".to_owned())
            ]
        );
        assert_eq!(queued.delay, jobs::MAX_DELAY);
    }
}

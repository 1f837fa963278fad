//! Work put back on the main queue for later (a status check, a delivery retry): what the
//! processor sends itself, behind a narrow trait so that logic and benchmarks can keep it in
//! memory while the functions send it to SQS.

use std::sync::Mutex;
use std::time::Duration;

use aws_sdk_sqs::types::MessageAttributeValue;

use crate::error::Error;
use crate::state::StoreFuture;

/// The longest delay SQS puts on a message; a job due later is received early and waits again.
pub(crate) const MAX_DELAY: Duration = Duration::from_secs(900);

/// One message for later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// The message body.
    pub body: String,
    /// String attributes; the one naming the job's kind tells the processor what to do.
    pub attributes: Vec<(String, String)>,
    /// How long SQS keeps it back (at most `MAX_DELAY`; ignored on a FIFO queue).
    pub delay: Duration,
    /// On a FIFO queue: its message group and deduplication id.
    pub fifo: Option<(String, String)>,
}

/// Where jobs go.
pub trait JobQueue: Send + Sync {
    /// Whether the queue is FIFO, which takes no per-message delay.
    fn is_fifo(&self) -> bool;

    /// Queues `job`; returns once the queue has it.
    fn send<'a>(&'a self, job: &'a Job) -> StoreFuture<'a, ()>;
}

/// Jobs on an SQS queue.
#[derive(Debug, Clone)]
pub struct SqsJobs {
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SqsJobs {
    /// Jobs on `queue_url`.
    pub fn new(sqs: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        Self {
            sqs,
            queue_url: queue_url.into(),
        }
    }
}

impl JobQueue for SqsJobs {
    fn is_fifo(&self) -> bool {
        crate::aws::is_fifo_queue(&self.queue_url)
    }

    fn send<'a>(&'a self, job: &'a Job) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut request = self
                .sqs
                .send_message()
                .queue_url(&self.queue_url)
                .message_body(&job.body);
            for (name, value) in &job.attributes {
                let attribute = MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(value)
                    .build()
                    .map_err(|e| Error::permanent(format!("job attribute {name}: {e}")))?;
                request = request.message_attributes(name, attribute);
            }
            request = match &job.fifo {
                Some((group, dedup)) if self.is_fifo() => request
                    .message_group_id(group)
                    .message_deduplication_id(dedup),
                _ => request.delay_seconds(job.delay.min(MAX_DELAY).as_secs() as i32),
            };
            request
                .send()
                .await
                .map_err(|e| crate::aws::unavailable("queue the job", e))?;
            Ok(())
        })
    }
}

/// Jobs kept in memory, for tests and benchmarks.
#[derive(Debug, Default)]
pub struct MemoryJobs {
    sent: Mutex<Vec<Job>>,
}

impl MemoryJobs {
    /// Every job sent so far, oldest first.
    pub fn sent(&self) -> Vec<Job> {
        self.sent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl JobQueue for MemoryJobs {
    fn is_fifo(&self) -> bool {
        false
    }

    fn send<'a>(&'a self, job: &'a Job) -> StoreFuture<'a, ()> {
        self.sent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(job.clone());
        Box::pin(std::future::ready(Ok(())))
    }
}

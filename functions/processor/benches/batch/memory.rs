//! The processor's state and its own queue in memory, each call answered after a fixed latency,
//! as DynamoDB and SQS answer concurrent requests in parallel: the relay's own in-memory stores
//! (the ones its logic is tested against) behind a delay, counting the calls.
//!
//! moto works through DynamoDB calls about one after the other, so against it a batch mostly
//! measures moto's throughput; against these stores the batch figure is about the processor's
//! own concurrency.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use genesys_relay::inbound::jobs::{Job, JobQueue, MemoryJobs};
use genesys_relay::state::claims::{ClaimRecord, ClaimStore, MemoryClaims};
use genesys_relay::state::opt_outs::{MemoryOptOuts, OptOuts};
use genesys_relay::state::sms::{Advance, MemorySmsLedger, SmsLedger, SmsRecord, Written};
use genesys_relay::state::StoreFuture;

/// Store calls answered so far, by kind.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Idempotency claims written or found live.
    pub claims: usize,
    /// Idempotency claims completed or released.
    pub settled: usize,
    /// SMS ledger calls.
    pub ledger: usize,
    /// Opt-out list calls.
    pub opt_outs: usize,
    /// Jobs queued (status checks).
    pub jobs: usize,
}

impl Counts {
    /// What was answered since `before`.
    pub fn since(self, before: Self) -> Self {
        Self {
            claims: self.claims - before.claims,
            settled: self.settled - before.settled,
            ledger: self.ledger - before.ledger,
            opt_outs: self.opt_outs - before.opt_outs,
            jobs: self.jobs - before.jobs,
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    claims: AtomicUsize,
    settled: AtomicUsize,
    ledger: AtomicUsize,
    opt_outs: AtomicUsize,
    jobs: AtomicUsize,
}

/// An in-memory store behind a delay.
pub struct Delayed<S> {
    inner: S,
    latency: Duration,
    counters: Arc<Counters>,
}

/// The stores the SMS path uses, sharing one latency and one set of counters.
pub struct MemoryState {
    /// Idempotency claims.
    pub claims: Arc<Delayed<MemoryClaims>>,
    /// The SMS ledger.
    pub ledger: Arc<Delayed<MemorySmsLedger>>,
    /// The opt-out list.
    pub opt_outs: Arc<Delayed<MemoryOptOuts>>,
    /// The main queue, for the jobs the processor queues itself.
    pub jobs: Arc<Delayed<MemoryJobs>>,
    counters: Arc<Counters>,
}

impl MemoryState {
    /// Empty stores answering every call after `latency`.
    pub fn new(latency: Duration) -> Self {
        let counters = Arc::new(Counters::default());
        Self {
            claims: Arc::new(Delayed {
                inner: MemoryClaims::default(),
                latency,
                counters: Arc::clone(&counters),
            }),
            ledger: Arc::new(Delayed {
                inner: MemorySmsLedger::default(),
                latency,
                counters: Arc::clone(&counters),
            }),
            opt_outs: Arc::new(Delayed {
                inner: MemoryOptOuts::default(),
                latency,
                counters: Arc::clone(&counters),
            }),
            jobs: Arc::new(Delayed {
                inner: MemoryJobs::default(),
                latency,
                counters: Arc::clone(&counters),
            }),
            counters,
        }
    }

    /// The calls answered so far.
    pub fn counts(&self) -> Counts {
        let read = |c: &AtomicUsize| c.load(Ordering::Relaxed);
        Counts {
            claims: read(&self.counters.claims),
            settled: read(&self.counters.settled),
            ledger: read(&self.counters.ledger),
            opt_outs: read(&self.counters.opt_outs),
            jobs: read(&self.counters.jobs),
        }
    }
}

impl<S: Sync> Delayed<S> {
    /// Waits the latency, counts the call, then makes it: the store changes when the call is
    /// answered, as a remote one does.
    fn after<'a, T: Send + 'a>(
        &'a self,
        counter: fn(&Counters) -> &AtomicUsize,
        call: impl FnOnce(&'a S) -> StoreFuture<'a, T> + Send + 'a,
    ) -> StoreFuture<'a, T> {
        Box::pin(async move {
            tokio::time::sleep(self.latency).await;
            counter(&self.counters).fetch_add(1, Ordering::Relaxed);
            call(&self.inner).await
        })
    }
}

impl ClaimStore for Delayed<MemoryClaims> {
    fn put_unless_live<'a>(
        &'a self,
        record: &'a ClaimRecord,
        now: SystemTime,
    ) -> StoreFuture<'a, Option<ClaimRecord>> {
        self.after(|c| &c.claims, move |s| s.put_unless_live(record, now))
    }

    fn complete<'a>(&'a self, key: &'a str, data: &'a str, expires_at: u64) -> StoreFuture<'a, ()> {
        self.after(|c| &c.settled, move |s| s.complete(key, data, expires_at))
    }

    fn delete<'a>(&'a self, key: &'a str) -> StoreFuture<'a, ()> {
        self.after(|c| &c.settled, move |s| s.delete(key))
    }
}

impl SmsLedger for Delayed<MemorySmsLedger> {
    fn record_sent<'a>(&'a self, record: &'a SmsRecord, now: SystemTime) -> StoreFuture<'a, ()> {
        self.after(|c| &c.ledger, move |s| s.record_sent(record, now))
    }

    fn advance<'a>(
        &'a self,
        message_sid: &'a str,
        status: &'a str,
        rank: u8,
        error_code: Option<&'a str>,
    ) -> StoreFuture<'a, Advance> {
        self.after(
            |c| &c.ledger,
            move |s| s.advance(message_sid, status, rank, error_code),
        )
    }

    fn get<'a>(&'a self, message_sid: &'a str) -> StoreFuture<'a, Option<SmsRecord>> {
        self.after(|c| &c.ledger, move |s| s.get(message_sid))
    }

    fn take_writer<'a>(
        &'a self,
        message_sid: &'a str,
        token: &'a str,
        now: SystemTime,
        lease: Duration,
    ) -> StoreFuture<'a, Option<SmsRecord>> {
        self.after(
            |c| &c.ledger,
            move |s| s.take_writer(message_sid, token, now, lease),
        )
    }

    fn written<'a>(
        &'a self,
        message_sid: &'a str,
        token: &'a str,
        rank: u8,
        now: SystemTime,
        lease: Duration,
    ) -> StoreFuture<'a, Written> {
        self.after(
            |c| &c.ledger,
            move |s| s.written(message_sid, token, rank, now, lease),
        )
    }

    fn release_writer<'a>(&'a self, message_sid: &'a str, token: &'a str) -> StoreFuture<'a, ()> {
        self.after(|c| &c.ledger, move |s| s.release_writer(message_sid, token))
    }
}

impl OptOuts for Delayed<MemoryOptOuts> {
    fn remember<'a>(&'a self, number: &'a str) -> StoreFuture<'a, ()> {
        self.after(|c| &c.opt_outs, move |s| s.remember(number))
    }

    fn has_opted_out<'a>(&'a self, number: &'a str) -> StoreFuture<'a, bool> {
        self.after(|c| &c.opt_outs, move |s| s.has_opted_out(number))
    }
}

impl JobQueue for Delayed<MemoryJobs> {
    fn is_fifo(&self) -> bool {
        self.inner.is_fifo()
    }

    fn send<'a>(&'a self, job: &'a Job) -> StoreFuture<'a, ()> {
        self.after(|c| &c.jobs, move |s| s.send(job))
    }
}

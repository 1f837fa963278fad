//! What the local stack's functions did, counted as they run: read by the demo's and the soak's
//! reports, written by the stack's pollers and the receiver's HTTP front.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

/// What the stack's functions did, for the report.
#[derive(Debug, Default)]
pub struct Counters {
    /// Receiver answers by status.
    pub answers: Mutex<BTreeMap<u16, u64>>,
    /// Processor invocations.
    pub batches: AtomicU64,
    /// Processor invocations that did not finish: stopped at their deadline, or killed.
    pub batches_lost: AtomicU64,
    /// Records the processor reported failed, to be retried.
    pub retries: AtomicU64,
    /// Woken each time the processor reports records failed, so a waiter needs no polling.
    pub retried: tokio::sync::Notify,
    /// EventBridge handler invocations.
    pub events: AtomicU64,
}

//! What comes in: who may send it (authentication), what it is (event models and the event key,
//! the EventBridge topics), and how it is queued and read back (the envelope and claim checks,
//! written and read in one place, and the jobs the processor queues for itself).

pub mod auth;
pub mod event;
pub mod jobs;
pub mod partner_event;
pub mod queue;

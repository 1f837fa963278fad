//! Shared core of genesys-relay: everything the receiver, processor and EventBridge handler share.
//!
//! # Layout
//!
//! - [`config`], [`error`]: typed settings checked at init, and the one error taxonomy (rejected,
//!   retryable, deferred, permanent) that decides every answer, retry and dead letter.
//! - [`inbound`]: what comes in: authentication of webhooks and callbacks, the event models and
//!   the event key, the EventBridge topics, the queue envelope and claim checks.
//! - [`outbound`]: what goes out: the Twilio and Genesys Cloud clients and forwarding to downstream
//!   services (SSRF policy, circuit breaker, signed envelopes, attempts, jobs and their schedule,
//!   all in [`outbound::forward`]), over one HTTP client.
//! - [`state`]: the single DynamoDB table: every record kind listed in [`state::records`], each
//!   behind a narrow trait with a DynamoDB and an in-memory store that keep the same conditional
//!   semantics; the idempotency logic over the claims.
//! - [`actions`]: the idempotent units the processor runs (the SMS on wrap-up, the delivery
//!   status write-back; forwarding runs the same way from [`outbound::forward`]) and what they
//!   share.
//! - [`rules`]: which events trigger which actions, parsed from the `RULES` JSON.
//! - [`secrets`], [`secret_json`], [`aws`], [`clock`], [`dead_letter`], [`telemetry`]: cached,
//!   rotation-aware secrets and the one way their JSON is read; the AWS SDK configuration and
//!   error mapping; the time, passed in; the dead-letter format; masked logs and metrics.
//!
//! New code goes where its concern lives: a new provider under `outbound`, a new sender's
//! authentication under `inbound::auth`, a new record kind in `state::records` and its own store
//! under `state`, a new action under `actions`.
#![warn(missing_docs)]

pub mod actions;
pub mod aws;
pub mod clock;
pub mod config;
pub mod dead_letter;
pub mod error;
pub mod inbound;
pub mod outbound;
pub mod rules;
pub mod secret_json;
pub mod secrets;
pub mod state;
pub mod telemetry;

pub use error::{Error, Rejection, Result};

//! Shared core of genesys-relay: everything the receiver, processor and EventBridge handler share.

pub mod actions;
pub mod auth;
pub mod aws;
pub mod clock;
pub mod config;
pub mod dead_letter;
pub mod error;
pub mod event;
pub mod forward;
pub mod genesys;
pub mod http;
pub mod idempotency;
pub mod partner_event;
pub mod queue;
pub mod rules;
pub mod secrets;
pub mod state;
pub mod table;
pub mod telemetry;
pub mod twilio;
pub mod wrapup_codes;

pub use error::{Error, Rejection, Result};

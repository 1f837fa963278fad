//! Shared core of genesys-relay: everything the receiver, processor and EventBridge handler share.

pub mod auth;
pub mod aws;
pub mod config;
pub mod error;
pub mod event;
pub mod queue;
pub mod secrets;
pub mod telemetry;

pub use error::{Error, Rejection, Result};

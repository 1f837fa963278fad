//! A record's failure and the action it happened in: what the batch handler turns into a retry
//! or a dead letter, whichever module the failure came from.

use genesys_relay::Error;

/// Label of failures that happen before any action is chosen.
pub const DECODE: &str = "decode";

/// A failure, with the action it happened in.
#[derive(Debug)]
pub struct Failure {
    /// Action name, or [`DECODE`].
    pub action: String,
    /// What went wrong; its class decides retry or dead-letter.
    pub error: Error,
}

/// Labels an error with the action it happened in.
pub fn at(action: &'static str) -> impl Fn(Error) -> Failure {
    move |error| Failure {
        action: action.to_owned(),
        error,
    }
}

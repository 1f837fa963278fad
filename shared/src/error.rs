//! The one error taxonomy of genesys-relay.
//!
//! Every failure in the product is one of four kinds, and the kind alone decides what happens next:
//! a [`Error::Rejected`] request is answered 4xx and never retried, a [`Error::Retryable`] failure is
//! answered 503 (or retried from the queue), a [`Error::Deferred`] piece of work was not tried and
//! waits its time without spending an attempt, and a [`Error::Permanent`] failure is dead-lettered
//! with its reason. Nothing else in the code base decides between those outcomes.

use std::time::Duration;

/// Why a client's request was refused; each maps to one HTTP status and a stable error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// The request is malformed (bad JSON, bad form, not UTF-8).
    BadRequest,
    /// Authentication failed or was missing.
    Unauthorized,
    /// No such route.
    NotFound,
    /// The route exists but not for this method.
    MethodNotAllowed,
    /// The body is larger than the configured maximum.
    PayloadTooLarge,
    /// The content type is not the one the route accepts.
    UnsupportedMediaType,
}

impl Rejection {
    /// The HTTP status that answers this rejection.
    pub fn status(self) -> u16 {
        match self {
            Self::BadRequest => 400,
            Self::Unauthorized => 401,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::PayloadTooLarge => 413,
            Self::UnsupportedMediaType => 415,
        }
    }

    /// The machine-readable code put in error bodies, stable across releases.
    pub fn code(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::Unauthorized => "unauthorized",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
        }
    }
}

/// A failure, classified by what must happen next.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The client's mistake: answer 4xx, never retry.
    #[error("{message}")]
    Rejected {
        /// Which rejection, hence which status and code.
        kind: Rejection,
        /// A message safe to show the client (no secrets, no signatures).
        message: String,
    },
    /// A passing failure of ours or a dependency's: the sender (or the queue) must try again.
    #[error("{message}")]
    Retryable {
        /// What failed, for logs.
        message: String,
        /// How long to wait before trying again, when the failing party said so.
        retry_after: Option<Duration>,
    },
    /// Not tried, and not failed: the work waits `wait` and is tried then, spending no attempt
    /// (a job not yet due, an endpoint behind an open circuit, too little time left to try).
    #[error("{message}")]
    Deferred {
        /// Why it waits, for logs.
        message: String,
        /// How long it waits.
        wait: Duration,
    },
    /// A failure that no retry will fix: dead-letter it with this reason.
    #[error("{message}")]
    Permanent {
        /// What failed, for logs and the dead-letter reason.
        message: String,
    },
}

impl Error {
    /// A client-side rejection with a message the client will see.
    pub fn rejected(kind: Rejection, message: impl Into<String>) -> Self {
        Self::Rejected {
            kind,
            message: message.into(),
        }
    }

    /// A passing failure with no hint of when to retry.
    pub fn retryable(message: impl Into<String>) -> Self {
        Self::Retryable {
            message: message.into(),
            retry_after: None,
        }
    }

    /// Work that waits `wait` before it is tried, spending no attempt.
    pub fn deferred(message: impl Into<String>, wait: Duration) -> Self {
        Self::Deferred {
            message: message.into(),
            wait,
        }
    }

    /// A failure that retrying cannot fix.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self::Permanent {
            message: message.into(),
        }
    }

    /// The class, as logs, metrics and dead-letter attributes name it.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Rejected { .. } => ErrorClass::Rejected,
            Self::Retryable { .. } => ErrorClass::Retryable,
            Self::Deferred { .. } => ErrorClass::Deferred,
            Self::Permanent { .. } => ErrorClass::Permanent,
        }
    }
}

/// The class of an [`Error`]: what decides an answer, a retry or a dead letter, named in logs,
/// metrics and dead-letter attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The sender's mistake (a 4xx).
    Rejected,
    /// May pass: retry.
    Retryable,
    /// Not tried yet: wait.
    Deferred,
    /// Will not pass: dead-letter with the reason.
    Permanent,
}

impl ErrorClass {
    /// The name logs, metrics and dead letters carry.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rejected => "rejected",
            Self::Retryable => "retryable",
            Self::Deferred => "deferred",
            Self::Permanent => "permanent",
        }
    }
}

impl std::fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Compared with the name it carries, as dead-letter attributes and assertions hold it.
impl PartialEq<&str> for ErrorClass {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// Result with the product's error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error and its causes on one line, `error: cause: cause`: the part that says what happened
/// (a refused connection, an expired certificate) is often a few levels under an HTTP or SDK
/// client's own message, which leaves it out.
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_rejection_has_a_distinct_4xx_status_and_code() {
        let all = [
            Rejection::BadRequest,
            Rejection::Unauthorized,
            Rejection::NotFound,
            Rejection::MethodNotAllowed,
            Rejection::PayloadTooLarge,
            Rejection::UnsupportedMediaType,
        ];
        let statuses: std::collections::BTreeSet<_> = all.iter().map(|r| r.status()).collect();
        let codes: std::collections::BTreeSet<_> = all.iter().map(|r| r.code()).collect();
        assert_eq!(statuses.len(), all.len());
        assert_eq!(codes.len(), all.len());
        assert!(all.iter().all(|r| (400..500).contains(&r.status())));
    }

    #[test]
    fn a_chain_reads_the_error_then_each_cause() {
        let cause = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let top = std::io::Error::other(Wrapper(cause));
        assert_eq!(chain(&top), "wrapped: refused");
    }

    #[derive(Debug)]
    struct Wrapper(std::io::Error);

    impl std::fmt::Display for Wrapper {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("wrapped")
        }
    }

    impl std::error::Error for Wrapper {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn class_names_follow_the_variant() {
        assert_eq!(
            Error::rejected(Rejection::BadRequest, "x").class(),
            "rejected"
        );
        assert_eq!(Error::retryable("x").class(), "retryable");
        assert_eq!(Error::deferred("x", Duration::ZERO).class(), "deferred");
        assert_eq!(Error::permanent("x").class(), "permanent");
    }
}

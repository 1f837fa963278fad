//! Forwarding: signed, optionally encrypted, retried delivery of events to downstream HTTP
//! services, with a circuit breaker per endpoint and SSRF protection.

pub mod circuit;
pub mod envelope;
pub mod ssrf;

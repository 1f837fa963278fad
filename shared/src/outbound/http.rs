//! The outbound HTTP client shared by the Twilio and Genesys clients: rustls only, explicit
//! timeouts, so a hung provider turns into a retryable failure instead of a Lambda timeout.

use std::time::Duration;

/// How long to wait for a TCP + TLS connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long one request may take in all.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A client with the product's timeouts; build once per cold start and share.
pub fn client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .user_agent(concat!("genesys-relay/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// The delay a `Retry-After` header asks for, in its delta-seconds form (the form Twilio and
/// Genesys send).
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

//! Genesys Cloud: the Platform API client the actions write back through.
//!
//! Sign-in is the OAuth client-credentials grant against `https://login.{region}`, with the client
//! id and secret read from Secrets Manager; calls go to `https://api.{region}`. The access token
//! is cached, shared by concurrent callers, replaced shortly before it expires and once when
//! Genesys refuses it; a refused OAuth client makes the secret be read again, so rotating the
//! client secret causes no outage. Every failure is an [`crate::Error`]: throttling and outages
//! are retryable (with Genesys' `Retry-After`, or 3 s), anything a retry cannot fix is permanent.

mod client;
mod credentials;
mod token;

pub use client::{check_id, GenesysClient, WrapupCode, DEFAULT_RETRY_AFTER, MAX_ID_LEN};
pub use credentials::GenesysCredentials;

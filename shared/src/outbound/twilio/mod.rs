//! Twilio Programmable Messaging: sending an SMS, deciding what a failure means, and ordering the
//! delivery statuses that come back.
//!
//! Every failure of [`TwilioClient::send`] is a [`SendError`], and every [`SendError`] maps onto the
//! product's one error taxonomy ([`crate::Error`]), so the caller never decides on its own whether
//! a Twilio answer is worth a retry.

mod classify;
mod client;
mod credentials;
mod e164;
mod keys;
mod segments;
mod status;

pub use classify::SendError;
pub use client::{MessageStatus, OutboundSms, SentMessage, TwilioClient, DEFAULT_API_BASE};
pub use credentials::{Sender, TwilioCredentials, TwilioSecret};
pub use e164::is_e164;
pub use keys::{Basic, NewKey, TwilioKeys};
pub use segments::{segments, SmsEncoding, MAX_BODY_CHARS};
pub use status::{known_status, status_advances, status_rank};

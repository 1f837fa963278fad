//! Local stand-ins for the services genesys-relay talks to: Twilio, Genesys Cloud and downstream
//! HTTP services. Each checks the real request shapes and records what it received; the local
//! stack runs them, and the tests drive them.

pub mod fakes;

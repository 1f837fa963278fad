//! Local HTTP servers standing in for Twilio and Genesys Cloud; each checks the real request
//! shapes (Twilio's and Genesys Cloud's published APIs) and records what it received.

pub mod downstream;
pub mod genesys;
pub mod server;
pub mod twilio;

//! What goes out: the Twilio and Genesys Cloud clients and forwarding to downstream services,
//! over one HTTP client.

pub mod forward;
pub mod genesys;
pub mod http;
pub mod twilio;

//! `relay`: the genesys-relay command line. Each command is a module with its clap arguments and
//! a `run` that returns what to print; `main` only parses, runs and prints. `relay local` (the
//! local stack, demo and soak) is built only with the `local` feature, so the operator's binary
//! links no fakes.

pub mod dlq;
pub mod genesys_setup;
#[cfg(feature = "local")]
pub mod local;
pub mod output;
pub mod secrets;
pub mod send;
pub mod wrapup_codes;

//! `relay`: the genesys-relay command line. Each command is a module with its clap arguments and
//! a `run` that returns what to print; `main` only parses, runs and prints.

pub mod dlq;
pub mod genesys_setup;
pub mod local;
pub mod output;
pub mod send;
pub mod wrapup_codes;

//! The state table and the stores over it.
//!
//! One DynamoDB table holds every record kind the relay keeps; [`records`] lists them with their
//! keys and lifetimes. Each kind is reached through a narrow trait with two implementations that
//! keep the same conditional semantics: one over DynamoDB, for the functions, and one in memory,
//! for tests of the logic above it, which then run in milliseconds and move time by a clock
//! instead of waiting.

pub mod circuits;
pub mod claims;
pub mod conversations;
pub mod endpoints;
pub mod idempotency;
pub mod opt_outs;
pub mod records;
pub mod sms;
pub mod table;

use std::future::Future;
use std::pin::Pin;

use crate::error::Result;

/// What a store's operations return: a boxed future, so stores can be used behind `dyn`.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

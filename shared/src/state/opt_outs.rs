//! The numbers that opted out (Twilio error 21610: the customer replied STOP), so none is texted
//! again. Keyed by a hash: the table never holds a phone number in clear.

use std::collections::HashSet;
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use super::records::OPT_OUT;
use super::StoreFuture;
use crate::state::table::s;

/// The opt-out list.
pub trait OptOuts: Send + Sync {
    /// Remembers that `number` opted out.
    fn remember<'a>(&'a self, number: &'a str) -> StoreFuture<'a, ()>;

    /// Whether `number` opted out.
    fn has_opted_out<'a>(&'a self, number: &'a str) -> StoreFuture<'a, bool>;
}

/// The opt-out list in the state table.
#[derive(Debug, Clone)]
pub(crate) struct DynamoOptOuts {
    ddb: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoOptOuts {
    /// The list in `table`.
    pub fn new(ddb: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            ddb,
            table: table.into(),
        }
    }
}

impl OptOuts for DynamoOptOuts {
    fn remember<'a>(&'a self, number: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.ddb
                .put_item()
                .table_name(&self.table)
                .item("pk", s(&key(number)))
                .item("sk", s(OPT_OUT.sk))
                .send()
                .await
                .map_err(|e| crate::aws::unavailable("remember the opt-out", e))?;
            Ok(())
        })
    }

    fn has_opted_out<'a>(&'a self, number: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let out = self
                .ddb
                .get_item()
                .table_name(&self.table)
                .key("pk", s(&key(number)))
                .key("sk", s(OPT_OUT.sk))
                .send()
                .await
                .map_err(|e| crate::aws::unavailable("read the opt-out list", e))?;
            Ok(out.item.is_some())
        })
    }
}

/// The opt-out list in memory, for tests.
#[derive(Debug, Default)]
pub struct MemoryOptOuts {
    keys: Mutex<HashSet<String>>,
}

impl OptOuts for MemoryOptOuts {
    fn remember<'a>(&'a self, number: &'a str) -> StoreFuture<'a, ()> {
        self.keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key(number));
        Box::pin(std::future::ready(Ok(())))
    }

    fn has_opted_out<'a>(&'a self, number: &'a str) -> StoreFuture<'a, bool> {
        let known = self
            .keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(&key(number));
        Box::pin(std::future::ready(Ok(known)))
    }
}

/// The record's key: a hash of the number, trimmed.
fn key(number: &str) -> String {
    OPT_OUT.pk(&hex::encode(Sha256::digest(number.trim().as_bytes())))
}

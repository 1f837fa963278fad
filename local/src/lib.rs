//! Local stand-ins for the services genesys-relay talks to: Twilio, Genesys Cloud and downstream
//! HTTP services. Each checks the real request shapes and records what it received; the local
//! stack runs them, and the tests drive them.

pub mod fakes;
pub mod tcp_link;

use aws_lambda_events::event::sqs::{SqsMessage, SqsMessageAttribute};

/// A received SQS message in the shape of a Lambda SQS event record.
pub fn lambda_record(message: aws_sdk_sqs::types::Message) -> SqsMessage {
    let mut record = SqsMessage::default();
    record.message_id = message.message_id;
    record.receipt_handle = message.receipt_handle;
    record.body = message.body;
    record.md5_of_body = message.md5_of_body;
    record.event_source = Some("aws:sqs".into());
    record.attributes = message
        .attributes
        .unwrap_or_default()
        .into_iter()
        .map(|(name, value)| (name.as_str().to_owned(), value))
        .collect();
    record.message_attributes = message
        .message_attributes
        .unwrap_or_default()
        .into_iter()
        .map(|(name, value)| {
            let mut attribute = SqsMessageAttribute::default();
            attribute.string_value = value.string_value;
            attribute.data_type = Some(value.data_type);
            (name, attribute)
        })
        .collect();
    record
}

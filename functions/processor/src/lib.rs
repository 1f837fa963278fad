//! The processor: reads the main queue in batches and reports partial batch failures.
//!
//! This release decodes each message's envelope and logs it; a message that does not decode is
//! reported as a batch item failure, so the queue's redrive policy moves it to the DLQ after
//! `maxReceiveCount` receives instead of it being dropped. The actions run here once they land.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use genesys_relay::queue::{self, Envelope};
use lambda_runtime::LambdaEvent;

/// Handles one batch; only undecodable records are reported failed.
pub async fn handle(
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, lambda_runtime::Error> {
    let mut response = SqsBatchResponse::default();
    for record in &event.payload.records {
        let id = record.message_id.clone().unwrap_or_default();
        match decode(record) {
            Ok(envelope) => tracing::info!(
                message_id = %id,
                event_key = %envelope.event_key,
                source = envelope.source.as_str(),
                correlation_id = envelope.correlation_id.as_deref().unwrap_or(""),
                "decoded"
            ),
            Err(error) => {
                tracing::error!(message_id = %id, class = error.class(), reason = %error, "undecodable message");
                response.add_failure(id);
            }
        }
    }
    Ok(response)
}

fn decode(record: &SqsMessage) -> genesys_relay::Result<Envelope> {
    let body = record.body.as_deref().unwrap_or_default();
    let attribute = |name: &str| {
        record
            .message_attributes
            .get(name)
            .and_then(|a| a.string_value.clone())
    };
    queue::decode(body, attribute).map(|(envelope, _payload)| envelope)
}

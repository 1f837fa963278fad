//! The EventBridge handler: receives events from the Genesys Cloud EventBridge integration.
//!
//! This release parses the real envelope and logs one line per event; correlation and actions
//! run here once they land. A body that does not parse fails the invocation, so Lambda retries
//! it and then sends it to the on-failure destination (the DLQ).

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use genesys_relay::event::GenesysDetail;
use lambda_runtime::LambdaEvent;

/// The input type: an EventBridge event whose detail is a Genesys event.
pub type GenesysEvent = EventBridgeEvent<GenesysDetail>;

/// Handles one event.
pub async fn handle(event: LambdaEvent<GenesysEvent>) -> Result<(), lambda_runtime::Error> {
    let detail = &event.payload.detail;
    tracing::info!(
        detail_type = %event.payload.detail_type,
        topic = %detail.topic_name,
        event_time = detail.event_time().map(|t| t.0).unwrap_or_default(),
        correlation_id = detail.metadata.correlation_id.as_deref().unwrap_or(""),
        "received"
    );
    Ok(())
}

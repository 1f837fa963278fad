//! Every file in `events/` deserializes into its handler's input type and reads as what it claims to be.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::sqs::SqsEvent;
use genesys_relay::inbound::event::GenesysDetail;
use genesys_relay::secrets::rotation::RotationEvent;
use relay_tests::sample_event;

fn event_files() -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../events");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("events/")
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        // env.json holds the functions' settings for `sam local invoke`, not an event.
        .filter(|name| name.ends_with(".json") && name != "env.json")
        .collect();
    names.sort();
    names
}

#[test]
fn every_sample_event_is_its_handlers_input() {
    let files = event_files();
    assert!(files.len() >= 7, "{files:?}");
    for name in files {
        let text = sample_event(&name);
        if name.starts_with("receiver-") {
            let request =
                lambda_http::request::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(request.method(), "POST", "{name}");
        } else if name.starts_with("processor-") {
            let event: SqsEvent =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!event.records.is_empty(), "{name}");
            for record in &event.records {
                let attribute = |n: &str| {
                    record
                        .message_attributes
                        .get(n)
                        .and_then(|a| a.string_value.clone())
                };
                genesys_relay::inbound::queue::decode(
                    record.body.as_deref().unwrap_or_default(),
                    attribute,
                )
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            }
        } else if name.starts_with("eventbridge-") {
            let event: EventBridgeEvent<GenesysDetail> =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(
                event.source.starts_with("aws.partner/genesys.com/cloud/"),
                "{name}"
            );
            assert!(event.detail.event_time().is_some(), "{name}");
            assert!(
                event
                    .detail_type
                    .starts_with("v2.detail.events.conversation.{id}."),
                "{name}: detail-type is the topic pattern"
            );
        } else if name.starts_with("rotator-") {
            let event: RotationEvent =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(
                (32..=64).contains(&event.client_request_token.len()),
                "{name}: a token Secrets Manager would make"
            );
        } else {
            panic!(
                "{name}: name it after its function (receiver-, processor-, eventbridge-, rotator-)"
            );
        }
    }
}

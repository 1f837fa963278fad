//! Form and attribute parsers: Twilio's status callback (`StatusCallback::from_form`), the
//! processor's forwarding-job attribute (`Job::parse`) and how the processor reads a queued body
//! as an event (`event_value`, `event_type`).
#![no_main]

use genesys_relay::actions::delivery_status::StatusCallback;
use genesys_relay::inbound::event::EventKey;
use genesys_relay::inbound::queue::{Envelope, MediaType, Source};
use genesys_relay::outbound::forward::event::{event_type, event_value};
use genesys_relay::outbound::forward::Job;
use libfuzzer_sys::fuzz_target;
use time::OffsetDateTime;

fn envelope(source: Source, content_type: MediaType) -> Envelope {
    let event_key = EventKey::from_parts(&["fuzz"]);
    Envelope {
        group_id: event_key.as_str().to_owned(),
        event_key,
        source,
        received_at: OffsetDateTime::UNIX_EPOCH,
        content_type,
        correlation_id: None,
    }
}

fn check_job(value: &str) {
    let Some(job) = Job::parse(value) else {
        return;
    };
    assert!(!job.endpoint.is_empty() && !job.endpoint.contains(';'));
    // The form `Job::encode` writes reads back as the same job.
    assert_eq!(Job::parse(&job.encode()), Some(job));
}

fuzz_target!(|data: &[u8]| {
    // As text when it is UTF-8 (as the processor reads a queued body), else lossily.
    let text = String::from_utf8_lossy(data);
    let text: &str = &text;

    // Status callbacks: the fields are those of the decoded form, however it was encoded.
    let callback = StatusCallback::from_form(text);
    if let Ok(callback) = &callback {
        assert!(!callback.message_sid.is_empty() && !callback.status.is_empty());
        assert!(callback.error_code.as_deref() != Some(""));
    }
    let pairs: Vec<(String, String)> = form_urlencoded::parse(text.as_bytes())
        .into_owned()
        .collect();
    let reencoded = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&pairs)
        .finish();
    assert_eq!(StatusCallback::from_form(&reencoded).ok(), callback.ok());

    // Forwarding jobs: the whole text and each line.
    check_job(text);
    text.lines().take(64).for_each(check_job);

    // A queued body as the processor reads it.
    let form = envelope(Source::TwilioStatus, MediaType::Form);
    let event = event_value(&form, text);
    let fields = event.as_object().expect("a form reads as an object");
    assert!(fields.len() <= pairs.len());
    assert_eq!(event_type(&form, &event), "twilio.message-status");
    for source in [Source::GenesysWebhook, Source::GenesysEventBridge] {
        let json = envelope(source, MediaType::Json);
        let event = event_value(&json, text);
        assert!(!event_type(&json, &event).is_empty());
    }
});

//! Routing rules and templates: `Rules::parse` on arbitrary text (JSON, URLs, placeholders), the
//! parsed rules' own lookups, `render` and `type_matches`.
#![no_main]

use genesys_relay::rules::{render, type_matches, Rules, TemplateValues};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Map, Value};

const EVENT_TYPES: &[&str] = &[
    "v2.detail.events.conversation.7f1c3a52-8a4b-4c1e-9d2f-0b6e5a1c9e11.acw",
    "v2.detail.events.conversation.7f1c3a52-8a4b-4c1e-9d2f-0b6e5a1c9e11.customer.end",
    "genesys.webhook",
    "twilio.message-status",
    "",
];

fn contact() -> Map<String, Value> {
    let Value::Object(map) =
        json!({"firstName": "Ann", "score": 3, "vip": true, "none": null, "tags": ["a"]})
    else {
        unreachable!()
    };
    map
}

/// Text without `{{` renders as it is; a template either renders whole or names what it misses.
fn check_render(template: &str, filled: &TemplateValues<'_>) {
    let empty = render(template, &TemplateValues::default());
    if !template.contains("{{") {
        assert_eq!(empty.as_deref(), Ok(template));
        assert_eq!(render(template, filled).as_deref(), Ok(template));
    } else {
        if let Err(error) = empty {
            assert!(!error.missing.is_empty());
        }
        let _ = render(template, filled);
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let contact = contact();
    let filled = TemplateValues {
        wrapup_code: "ININ-OUTBOUND-NO-ANSWER",
        conversation_id: "7f1c3a52-8a4b-4c1e-9d2f-0b6e5a1c9e11",
        campaign_id: Some("a7b8c9d0"),
        contact: Some(&contact),
    };
    let body = json!({
        "eventBody": {"addressTo": "tel:+14158675309", "dnis": "+14158675309"},
        "contact": {"phone": " tel: +447700900123 "},
        "customerNumber": 5,
    });

    if let Ok(rules) = Rules::parse(&text) {
        if let Some(sms) = &rules.sms_on_wrapup {
            assert!(!sms.templates.is_empty());
            for (code, template) in &sms.templates {
                assert_eq!(sms.template(code), Some(template.as_str()));
                check_render(template, &filled);
            }
            if let Some(number) = sms.customer_number(&body) {
                assert!(!number.is_empty() && number.trim() == number);
            }
        }
        if let Some(forward) = &rules.forward {
            assert!((1..=50).contains(&forward.max_attempts));
            for endpoint in &forward.endpoints {
                assert!(!endpoint.name.is_empty() && endpoint.name.len() <= 64);
                assert!(!endpoint.event_types.is_empty());
                for event_type in EVENT_TYPES {
                    let _ = endpoint.wants(event_type);
                }
                if endpoint.event_types.iter().any(|t| t == "*") {
                    assert!(EVENT_TYPES.iter().all(|t| endpoint.wants(t)));
                }
            }
        }
    }

    check_render(&text, &filled);
    for line in text.lines().take(64) {
        assert!(type_matches(line, line));
        assert!(type_matches("*", line));
        for event_type in EVENT_TYPES {
            let _ = type_matches(line, event_type);
        }
    }
});

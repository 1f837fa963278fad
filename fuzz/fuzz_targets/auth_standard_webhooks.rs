//! Standard Webhooks verification: never panics (whatever the headers and the clock), and a
//! message signed with `standard_webhooks::sign` inside the replay window always verifies.
#![no_main]

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use genesys_relay::inbound::auth::standard_webhooks::{self, TOLERANCE_SECS};
use genesys_relay::inbound::auth::{AuthFailure, Keys, Scheme, SignedRequest};
use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use relay_fuzz::{system_time, Request};

/// The key of the specification's own test vector.
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const NOW: i64 = 1_614_265_330;
const ID: HeaderName = HeaderName::from_static("webhook-id");
const TIMESTAMP: HeaderName = HeaderName::from_static("webhook-timestamp");
const SIGNATURE: HeaderName = HeaderName::from_static("webhook-signature");

fuzz_target!(|data: &[u8]| {
    let req = Request::parse(data);
    let scheme = Scheme::StandardWebhooks;
    let keys = Keys::from_secrets([SECRET, "whsec_not base64!"]);
    let fuzzed = SignedRequest {
        url: &req.url,
        headers: &req.headers,
        body: &req.body,
    };

    // Any clock the input names, including before 1970 and the far future.
    if let Some(now) = req.now.and_then(system_time) {
        let _ = scheme.verify(&fuzzed, &keys, now);
    }
    let now = system_time(NOW).unwrap();
    let _ = scheme.verify(&fuzzed, &keys, now);
    assert!(scheme
        .verify(&fuzzed, &Keys::from_secrets(["whsec_", "%%%"]), now)
        .is_err());

    // Property: our own signature verifies within the window, alongside any fuzzed entries.
    let id = req
        .headers
        .get(&ID)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .unwrap_or("msg_fuzz")
        .to_owned();
    let skew = (req.body.len() as i64 % (2 * TOLERANCE_SECS as i64 + 1)) - TOLERANCE_SECS as i64;
    let other_entries = req
        .headers
        .get(&SIGNATURE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let signed_at = |secret: &str, timestamp: i64, body: &[u8]| -> HeaderMap {
        let signature = standard_webhooks::sign(secret, &id, timestamp, body).unwrap();
        let mut headers = req.headers.clone();
        headers.insert(ID, HeaderValue::from_str(&id).unwrap());
        headers.insert(TIMESTAMP, HeaderValue::from(timestamp));
        headers.insert(
            SIGNATURE,
            HeaderValue::from_str(&format!("{other_entries} {signature}")).unwrap(),
        );
        headers
    };
    let check = |headers: &HeaderMap, body: &[u8], keys: &Keys| {
        let signed = SignedRequest {
            url: &req.url,
            headers,
            body,
        };
        scheme.verify(&signed, keys, now)
    };

    let headers = signed_at(SECRET, NOW + skew, &req.body);
    assert_eq!(check(&headers, &req.body, &keys), Ok(()));

    // The same signature on another body, or outside the window, is refused.
    let mut other_body = req.body.clone();
    other_body.push(b'x');
    assert!(check(&headers, &other_body, &keys).is_err());
    let late = NOW + TOLERANCE_SECS as i64 + 1 + skew.abs();
    let headers = signed_at(SECRET, late, &req.body);
    assert_eq!(
        check(&headers, &req.body, &keys),
        Err(AuthFailure::StaleTimestamp)
    );

    // A key made from the input, as `whsec_` + base64 and as bare base64.
    if !req.url.is_empty() {
        let encoded = BASE64.encode(req.url.as_bytes());
        for secret in [format!("whsec_{encoded}"), encoded] {
            let headers = signed_at(&secret, NOW - skew, &req.body);
            let own = Keys::from_secrets([secret]);
            assert_eq!(check(&headers, &req.body, &own), Ok(()));
        }
    }
});

//! HMAC-in-a-header verification (Genesys Open Messaging's `X-Hub-Signature-256` and a hex
//! variant): never panics, and a signature made by the scheme's own `sign` always verifies.
#![no_main]

use genesys_relay::inbound::auth::{AuthFailure, Encoding, HmacHeader, Keys, Scheme, SignedRequest};
use http::HeaderName;
use libfuzzer_sys::fuzz_target;
use relay_fuzz::{system_time, Request};

const SECRETS: [&str; 2] = ["It's a Secret to Everybody", "rotated-secret"];
const NOW: i64 = 1_795_150_800;

fn schemes() -> [HmacHeader; 3] {
    [
        HmacHeader::genesys_open_messaging(),
        HmacHeader {
            header: HeaderName::from_static("x-signature"),
            encoding: Encoding::Hex,
            prefix: None,
        },
        HmacHeader {
            header: HeaderName::from_static("x-signature"),
            encoding: Encoding::Hex,
            prefix: Some("v1=".to_owned()),
        },
    ]
}

fuzz_target!(|data: &[u8]| {
    let req = Request::parse(data);
    let now = system_time(NOW).unwrap();
    let keys = Keys::from_secrets(SECRETS);
    let fuzzed = SignedRequest {
        url: &req.url,
        headers: &req.headers,
        body: &req.body,
    };
    // A key derived from the input (any length, including empty and longer than a block).
    let own_keys = Keys::from_secrets([req.url.as_str()]);

    for hmac in schemes() {
        let scheme = Scheme::HmacHeader(hmac.clone());
        let _ = scheme.verify(&fuzzed, &keys, now);
        assert_eq!(
            scheme.verify(&fuzzed, &Keys::default(), now),
            Err(AuthFailure::NoKeys)
        );

        let verify_with = |signature: &str, keys: &Keys| {
            let headers = req.headers_with(&hmac.header, signature);
            let signed = SignedRequest {
                url: &req.url,
                headers: &headers,
                body: &req.body,
            };
            scheme.verify(&signed, keys, now)
        };

        for secret in SECRETS {
            let signature = hmac.sign(secret.as_bytes(), &req.body);
            assert_eq!(verify_with(&signature, &keys), Ok(()), "{signature}");
            // The prefix matches case-insensitively, and hex digits in either case.
            let prefix = hmac.prefix.as_deref().unwrap_or_default();
            let digest = &signature[prefix.len()..];
            let digest = match hmac.encoding {
                Encoding::Hex => digest.to_ascii_uppercase(),
                Encoding::Base64 => digest.to_owned(),
            };
            let shouted = format!("{}{digest}", prefix.to_ascii_uppercase());
            assert_eq!(verify_with(&shouted, &keys), Ok(()), "{shouted}");
        }
        let forged = hmac.sign(b"not a configured secret", &req.body);
        assert_eq!(verify_with(&forged, &keys), Err(AuthFailure::Mismatch));

        let own = hmac.sign(req.url.as_bytes(), &req.body);
        assert_eq!(verify_with(&own, &own_keys), Ok(()));
    }
});

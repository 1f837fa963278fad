//! Static credentials (`Authorization: Basic`, `Authorization: Bearer`, a token in a custom
//! header): never panics, the configured credentials are accepted in every spelling the schemes
//! allow, and a credential made from the input verifies against itself and nothing else.
#![no_main]

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use genesys_relay::inbound::auth::{AuthFailure, Bearer, Keys, Scheme, SignedRequest};
use http::header::AUTHORIZATION;
use http::{HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use relay_fuzz::{system_time, Request};

const BASIC: &str = "genesys:correct horse battery staple";
const TOKEN: &str = "token-0123456789";
const API_KEY: HeaderName = HeaderName::from_static("x-api-key");

fuzz_target!(|data: &[u8]| {
    let req = Request::parse(data);
    let now = system_time(1_795_150_800).unwrap();
    let keys = Keys::from_secrets([BASIC, TOKEN]);
    let basic = Scheme::Basic;
    let bearer = Scheme::Bearer(Bearer::authorization());
    let api_key = Scheme::Bearer(Bearer { header: API_KEY });
    let schemes = [&basic, &bearer, &api_key];

    let fuzzed = SignedRequest {
        url: &req.url,
        headers: &req.headers,
        body: &req.body,
    };
    for scheme in schemes {
        let _ = scheme.verify(&fuzzed, &keys, now);
        assert!(scheme.verify(&fuzzed, &Keys::default(), now).is_err());
    }

    let check = |scheme: &Scheme, name: &HeaderName, value: &str, keys: &Keys| {
        let Ok(value) = HeaderValue::from_str(value) else {
            return Err(AuthFailure::Malformed("not a header value"));
        };
        let mut headers = req.headers.clone();
        headers.insert(name.clone(), value);
        let signed = SignedRequest {
            url: &req.url,
            headers: &headers,
            body: &req.body,
        };
        scheme.verify(&signed, keys, now)
    };

    // The configured credentials, whatever else the request carries.
    let encoded = BASE64.encode(BASIC);
    for value in [format!("Basic {encoded}"), format!("bAsIc \t {encoded}  ")] {
        assert_eq!(check(&basic, &AUTHORIZATION, &value, &keys), Ok(()));
        assert!(check(&bearer, &AUTHORIZATION, &value, &keys).is_err());
    }
    for value in [format!("Bearer {TOKEN}"), format!("BEARER   {TOKEN}\t")] {
        assert_eq!(check(&bearer, &AUTHORIZATION, &value, &keys), Ok(()));
        assert!(check(&basic, &AUTHORIZATION, &value, &keys).is_err());
    }
    assert_eq!(check(&api_key, &API_KEY, TOKEN, &keys), Ok(()));
    assert_eq!(
        check(&bearer, &AUTHORIZATION, &format!("Bearer {TOKEN}x"), &keys),
        Err(AuthFailure::Mismatch)
    );

    // A credential made from the body: it verifies against itself, and not against the others.
    let Ok(own) = std::str::from_utf8(&req.body) else {
        return;
    };
    if own.is_empty() {
        return;
    }
    let own_keys = Keys::from_secrets([own]);
    let own_basic = format!("Basic {}", BASE64.encode(own));
    assert_eq!(check(&basic, &AUTHORIZATION, &own_basic, &own_keys), Ok(()));
    if own != BASIC {
        assert_eq!(
            check(&basic, &AUTHORIZATION, &own_basic, &keys),
            Err(AuthFailure::Mismatch)
        );
    }
    let visible = own.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b));
    if visible && own.trim() == own {
        assert_eq!(
            check(&bearer, &AUTHORIZATION, &format!("Bearer {own}"), &own_keys),
            Ok(())
        );
        assert_eq!(check(&api_key, &API_KEY, own, &own_keys), Ok(()));
        if own != TOKEN && own != BASIC {
            assert_eq!(
                check(&api_key, &API_KEY, own, &keys),
                Err(AuthFailure::Mismatch)
            );
        }
    }
});

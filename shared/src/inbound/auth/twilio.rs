//! Twilio's `X-Twilio-Signature`, as twilio-python 9.13 `request_validator.py` checks it.
//!
//! The signed string is the full URL followed by every form parameter, sorted by name then value,
//! as `name + value` with no separators (a repeated identical pair counts once: the library sorts a
//! `set` of values, and the official repeated-parameter vector only matches that way). The MAC is
//! HMAC-SHA1 with the Auth Token, or the algorithm and SharedKey named by
//! `X-Twilio-Webhooks-Signature-Settings`; the result is base64. The URL is tried with its port
//! stripped and with the default port added, as Twilio's own validators do. A JSON body is not in
//! the signed string: the URL carries `bodySHA256=<hex>`, checked against the body.

use std::collections::BTreeSet;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderName};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};

use super::ct::{ct_eq, hmac_sha1, hmac_sha256, matches_any};
use super::{header_str, secret_bytes, AuthFailure, Keys, SignedRequest};

const SIGNATURE: HeaderName = HeaderName::from_static("x-twilio-signature");
const SIGNATURE_SETTINGS: HeaderName =
    HeaderName::from_static("x-twilio-webhooks-signature-settings");
const BODY_SHA256: &str = "bodySHA256";
const FORM: &str = "application/x-www-form-urlencoded";

/// The MAC Twilio signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// HMAC-SHA1: the Auth Token signature, and the default when no algorithm is named.
    HmacSha1,
    /// HMAC-SHA256: offered for SharedKey signing (`algorithm=HMAC_SHA256`).
    HmacSha256,
}

impl Algorithm {
    /// The algorithm a settings header names; case-insensitive like the library's `.upper()`.
    fn parse(name: &str) -> Result<Self, AuthFailure> {
        if name.eq_ignore_ascii_case("HMAC_SHA1") {
            Ok(Self::HmacSha1)
        } else if name.eq_ignore_ascii_case("HMAC_SHA256") {
            Ok(Self::HmacSha256)
        } else {
            Err(AuthFailure::unsupported_algorithm(name))
        }
    }

    /// The MAC of `data` under `key`.
    fn mac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            Self::HmacSha1 => hmac_sha1(key, &[data]),
            Self::HmacSha256 => hmac_sha256(key, &[data]),
        }
    }
}

/// The `X-Twilio-Signature` an Auth Token `token` puts on a request to `url` with form `params`
/// (HMAC-SHA1, the default); for tests and the CLI.
pub fn sign(token: &[u8], url: &str, params: &[(String, String)]) -> String {
    sign_with(Algorithm::HmacSha1, token, url, params)
}

/// The `X-Twilio-Signature` under `algorithm` and `key` (an Auth Token, or a SharedKey's secret as
/// UTF-8 bytes); for tests and fuzzing, where a SharedKey signs.
pub fn sign_with(
    algorithm: Algorithm,
    key: &[u8],
    url: &str,
    params: &[(String, String)],
) -> String {
    let pairs: BTreeSet<(&str, &str)> = params
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    BASE64.encode(algorithm.mac(key, &signed_string(url, &pairs)))
}

/// Accepts the request when its signature matches any usable key on either port form of the URL
/// and, for a body not sent as a form, the body's SHA-256 equals the URL's `bodySHA256`.
pub(crate) fn verify(req: &SignedRequest<'_>, keys: &Keys) -> Result<(), AuthFailure> {
    let (algorithm, secrets) = signing_keys(req.headers, keys)?;
    let presented = BASE64
        .decode(header_str(req.headers, &SIGNATURE)?)
        .map_err(|_| AuthFailure::Malformed("X-Twilio-Signature is not base64"))?;
    if presented.is_empty() {
        return Err(AuthFailure::Malformed("empty X-Twilio-Signature"));
    }

    let mut pairs = BTreeSet::new();
    let mut body_matches = true;
    if is_form(req.headers) {
        if std::str::from_utf8(req.body).is_err() {
            return Err(AuthFailure::Malformed("form body is not UTF-8"));
        }
        pairs = form_urlencoded::parse(req.body).collect();
    } else if let Some(digest) = query_value(req.url, BODY_SHA256) {
        let actual = hex::encode(Sha256::digest(req.body));
        body_matches = ct_eq(actual.as_bytes(), digest.to_ascii_lowercase().as_bytes());
    } else if !req.body.is_empty() {
        return Err(AuthFailure::Malformed(
            "body is neither a form nor covered by bodySHA256",
        ));
    }

    let pairs: BTreeSet<(&str, &str)> = pairs
        .iter()
        .map(|(n, v)| (n.as_ref(), v.as_ref()))
        .collect();
    let signed: Vec<Vec<u8>> = port_variants(req.url)
        .iter()
        .map(|url| signed_string(url, &pairs))
        .collect();
    let expected = secrets
        .iter()
        .flat_map(|key| signed.iter().map(|data| algorithm.mac(key, data)));
    if !matches_any(expected, &presented) {
        Err(AuthFailure::Mismatch)
    } else if !body_matches {
        Err(AuthFailure::BodyDigestMismatch)
    } else {
        Ok(())
    }
}

/// The algorithm and keys to try. No settings header, or one without `algorithm=`, means HMAC-SHA1
/// with the Auth Tokens. Otherwise the named algorithm with the SharedKey named by `key=`, or the
/// Auth Tokens if no key is named. An unknown key id may be a SharedKey newer than our secrets.
fn signing_keys<'k>(
    headers: &HeaderMap,
    keys: &'k Keys,
) -> Result<(Algorithm, Vec<&'k [u8]>), AuthFailure> {
    let settings = match headers.get(&SIGNATURE_SETTINGS) {
        None => Settings::default(),
        Some(_) => Settings::parse(header_str(headers, &SIGNATURE_SETTINGS)?),
    };
    let Some(algorithm) = settings.algorithm else {
        return Ok((
            Algorithm::HmacSha1,
            secret_bytes(keys.require_secrets()?).collect(),
        ));
    };
    let algorithm = Algorithm::parse(algorithm)?;
    match settings.key {
        // twilio-python 9.13 request_validator.py: HMAC key = SharedKey secret.encode("utf-8") (raw UTF-8, no base64 decode).
        Some(id) => match keys.shared_keys.get(id) {
            Some(secret) => Ok((algorithm, vec![secret.expose_secret().as_bytes()])),
            None if keys.shared_keys.is_empty() => Err(AuthFailure::NoKeys),
            None => Err(AuthFailure::UnknownKey),
        },
        None => Ok((algorithm, secret_bytes(keys.require_secrets()?).collect())),
    }
}

/// The fields of `X-Twilio-Webhooks-Signature-Settings: key=<id>,algorithm=<name>`.
#[derive(Debug, Default, PartialEq, Eq)]
struct Settings<'h> {
    key: Option<&'h str>,
    algorithm: Option<&'h str>,
}

impl<'h> Settings<'h> {
    /// Comma-separated `name=value` fields, trimmed; unknown and empty fields are ignored, the
    /// first of a repeated field wins (as the library's loop returns the first `algorithm`).
    fn parse(value: &'h str) -> Self {
        let mut settings = Self::default();
        for (name, field) in value.split(',').filter_map(|part| part.split_once('=')) {
            let field = field.trim();
            if field.is_empty() {
                continue;
            }
            match name.trim() {
                "key" => settings.key = settings.key.or(Some(field)),
                "algorithm" => settings.algorithm = settings.algorithm.or(Some(field)),
                _ => {}
            }
        }
        settings
    }
}

/// True when the body is a form, whose parameters are then part of the signed string.
fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case(FORM))
}

/// The first decoded value of query parameter `name` in `url`.
fn query_value(url: &str, name: &str) -> Option<String> {
    let (_, rest) = url.split_once('?')?;
    let query = rest.split('#').next().unwrap_or_default();
    form_urlencoded::parse(query.as_bytes())
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.into_owned())
}

/// The URL, then each pair as name + value; `pairs` is already sorted and free of duplicates.
fn signed_string(url: &str, pairs: &BTreeSet<(&str, &str)>) -> Vec<u8> {
    let mut data = url.as_bytes().to_vec();
    for (name, value) in pairs {
        data.extend_from_slice(name.as_bytes());
        data.extend_from_slice(value.as_bytes());
    }
    data
}

/// The URL with its port stripped, and with the scheme's default port added (443 for https, 80
/// otherwise) when it has none; a URL with an explicit port keeps it in the second form.
/// Anything that does not parse as `scheme://authority...` is tried as given.
fn port_variants(url: &str) -> Vec<String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return vec![url.to_owned()];
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let (userinfo, host_port) = match authority.rfind('@') {
        Some(at) => authority.split_at(at + 1),
        None => ("", authority),
    };
    let (host, port) = split_port(host_port);
    let default_port = if scheme.eq_ignore_ascii_case("https") {
        "443"
    } else {
        "80"
    };
    let without = format!("{scheme}://{userinfo}{host}{tail}");
    let with = format!(
        "{scheme}://{userinfo}{host}:{}{tail}",
        port.unwrap_or(default_port)
    );
    vec![without, with]
}

/// `host` and its numeric port, if `host_port` ends with `:<digits>` outside IPv6 brackets.
fn split_port(host_port: &str) -> (&str, Option<&str>) {
    match host_port.rfind(':') {
        Some(colon) if !host_port[colon..].contains(']') => {
            let port = &host_port[colon + 1..];
            if port.is_empty() {
                (&host_port[..colon], None)
            } else if port.bytes().all(|b| b.is_ascii_digit()) {
                (&host_port[..colon], Some(port))
            } else {
                (host_port, None)
            }
        }
        _ => (host_port, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inbound::auth::Scheme;
    use http::HeaderValue;
    use secrecy::SecretString;
    use std::time::SystemTime;

    const TOKEN: &str = "12345";
    const URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";
    const BODY_JSON: &str = r#"{"property": "value", "boolean": true}"#;
    const BODY_HASH: &str = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620";

    fn call_params() -> Vec<(String, String)> {
        [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675309"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
        ]
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect()
    }

    fn repeated_params() -> Vec<(String, String)> {
        [
            ("Sid", "CA123"),
            ("SidAccount", "AC123"),
            ("Digits", "5678"),
            ("Digits", "1234"),
            ("Digits", "1234"),
        ]
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect()
    }

    fn form_body(params: &[(String, String)]) -> String {
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params)
            .finish()
    }

    /// Runs the full scheme on a request; `settings` adds the SharedKey header.
    fn check(
        url: &str,
        content_type: Option<&str>,
        body: &str,
        signature: &str,
        settings: Option<&str>,
        keys: &Keys,
    ) -> Result<(), AuthFailure> {
        let mut headers = HeaderMap::new();
        headers.insert(SIGNATURE, HeaderValue::from_str(signature).unwrap());
        if let Some(content_type) = content_type {
            headers.insert(CONTENT_TYPE, HeaderValue::from_str(content_type).unwrap());
        }
        if let Some(settings) = settings {
            headers.insert(SIGNATURE_SETTINGS, HeaderValue::from_str(settings).unwrap());
        }
        let req = SignedRequest {
            url,
            headers: &headers,
            body: body.as_bytes(),
        };
        Scheme::Twilio.verify(&req, keys, SystemTime::now())
    }

    fn check_form(
        url: &str,
        params: &[(String, String)],
        signature: &str,
        keys: &Keys,
    ) -> Result<(), AuthFailure> {
        check(url, Some(FORM), &form_body(params), signature, None, keys)
    }

    fn token() -> Keys {
        Keys::from_secrets([TOKEN])
    }

    fn tampered(mut params: Vec<(String, String)>) -> Vec<(String, String)> {
        params[0].1.push('9');
        params
    }

    /// One official vector: `sign` reproduces it, the full scheme accepts it, and a tampered
    /// parameter or a wrong token is rejected.
    fn assert_vector(url: &str, params: &[(String, String)], signature: &str) {
        assert_eq!(sign(TOKEN.as_bytes(), url, params), signature);
        assert_eq!(check_form(url, params, signature, &token()), Ok(()));
        assert_eq!(
            check_form(url, &tampered(params.to_vec()), signature, &token()),
            Err(AuthFailure::Mismatch)
        );
        assert_eq!(
            check_form(url, params, signature, &Keys::from_secrets(["54321"])),
            Err(AuthFailure::Mismatch)
        );
    }

    #[test]
    fn vector_https_url_without_port() {
        assert_vector(URL, &call_params(), "RSOYDt4T1cUTdK1PDd93/VVr8B8=");
    }

    #[test]
    fn vector_https_url_with_port_443() {
        assert_vector(
            "https://mycompany.com:443/myapp.php?foo=1&bar=2",
            &call_params(),
            "kvajT1Ptam85bY51eRf/AJRuM3w=",
        );
    }

    #[test]
    fn vector_http_url_with_port_80() {
        assert_vector(
            "http://mycompany.com:80/myapp.php?foo=1&bar=2",
            &call_params(),
            "0ZXoZLH/DfblKGATFgpif+LLRf4=",
        );
    }

    #[test]
    fn vector_http_url_with_custom_port_1234() {
        assert_vector(
            "http://mycompany.com:1234/myapp.php?foo=1&bar=2",
            &call_params(),
            "Zmvh+3yNM1Phv2jhDCwEM3q5ebU=",
        );
    }

    #[test]
    fn vector_repeated_params() {
        assert_vector(URL, &repeated_params(), "IK+Dwps556ElfBT0I3Rgjkr1wJU=");
        // Dropping one distinct value of the repeated name changes the signature.
        let mut fewer = repeated_params();
        fewer.retain(|(n, v)| !(n == "Digits" && v == "5678"));
        assert_eq!(
            check_form(URL, &fewer, "IK+Dwps556ElfBT0I3Rgjkr1wJU=", &token()),
            Err(AuthFailure::Mismatch)
        );
    }

    #[test]
    fn vector_body_sha256() {
        let url = format!("{URL}&bodySHA256={BODY_HASH}");
        let signature = "a9nBmqA0ju/hNViExpshrM61xv4=";
        assert_eq!(hex::encode(Sha256::digest(BODY_JSON)), BODY_HASH);
        assert_eq!(sign(TOKEN.as_bytes(), &url, &[]), signature);
        assert_eq!(
            check(
                &url,
                Some("application/json"),
                BODY_JSON,
                signature,
                None,
                &token()
            ),
            Ok(())
        );
        // Tampered body: the signature is fine, the digest is not.
        let body = BODY_JSON.replace("true", "false");
        assert_eq!(
            check(
                &url,
                Some("application/json"),
                &body,
                signature,
                None,
                &token()
            ),
            Err(AuthFailure::BodyDigestMismatch)
        );
        // Wrong token.
        assert_eq!(
            check(
                &url,
                Some("application/json"),
                BODY_JSON,
                signature,
                None,
                &Keys::from_secrets(["54321"])
            ),
            Err(AuthFailure::Mismatch)
        );
    }

    #[test]
    fn either_port_form_of_the_url_is_accepted() {
        // Signed without the port, received with the default port, and the reverse.
        let with_port = "https://mycompany.com:443/myapp.php?foo=1&bar=2";
        assert_eq!(
            check_form(
                with_port,
                &call_params(),
                "RSOYDt4T1cUTdK1PDd93/VVr8B8=",
                &token()
            ),
            Ok(())
        );
        assert_eq!(
            check_form(
                URL,
                &call_params(),
                "kvajT1Ptam85bY51eRf/AJRuM3w=",
                &token()
            ),
            Ok(())
        );
        let http_plain = "http://mycompany.com/myapp.php?foo=1&bar=2";
        assert_eq!(
            check_form(
                http_plain,
                &call_params(),
                "0ZXoZLH/DfblKGATFgpif+LLRf4=",
                &token()
            ),
            Ok(())
        );
        // A different path is not a port variant.
        let other = "https://mycompany.com/other.php?foo=1&bar=2";
        assert_eq!(
            check_form(
                other,
                &call_params(),
                "RSOYDt4T1cUTdK1PDd93/VVr8B8=",
                &token()
            ),
            Err(AuthFailure::Mismatch)
        );
    }

    #[test]
    fn any_active_auth_token_is_accepted_during_rotation() {
        let keys = Keys::from_secrets(["old-token", TOKEN]);
        assert_eq!(
            check_form(URL, &call_params(), "RSOYDt4T1cUTdK1PDd93/VVr8B8=", &keys),
            Ok(())
        );
    }

    #[test]
    fn form_content_type_parameters_are_honoured() {
        let body = form_body(&call_params());
        let signature = "RSOYDt4T1cUTdK1PDd93/VVr8B8=";
        let with_charset = Some("Application/X-WWW-Form-Urlencoded; charset=utf-8");
        assert_eq!(
            check(URL, with_charset, &body, signature, None, &token()),
            Ok(())
        );
        // The same body not declared as a form is not signed by the URL alone.
        assert!(matches!(
            check(URL, Some("text/plain"), &body, signature, None, &token()),
            Err(AuthFailure::Malformed(_))
        ));
        assert!(matches!(
            check(URL, None, &body, signature, None, &token()),
            Err(AuthFailure::Malformed(_))
        ));
    }

    #[test]
    fn empty_body_signs_the_url_alone() {
        let signature = sign(TOKEN.as_bytes(), URL, &[]);
        assert_eq!(check(URL, None, "", &signature, None, &token()), Ok(()));
        assert_eq!(
            check(URL, Some(FORM), "", &signature, None, &token()),
            Ok(())
        );
    }

    #[test]
    fn form_values_are_signed_decoded() {
        let params = vec![("Body".to_owned(), "Hello wörld & more+".to_owned())];
        let signature = sign(TOKEN.as_bytes(), URL, &params);
        let body = form_body(&params);
        assert!(body.contains('+') && body.contains('%'));
        assert_eq!(
            check(URL, Some(FORM), &body, &signature, None, &token()),
            Ok(())
        );
        assert!(matches!(
            check(URL, Some(FORM), "", &signature, None, &token()),
            Err(AuthFailure::Mismatch)
        ));
    }

    #[test]
    fn shared_key_matches_independent_vector() {
        // Computed with twilio-python 9.13's RequestValidator("shared-key-secret")
        // .compute_signature(url, params, "HMAC_SHA256").
        let url = "https://relay.example.com/twilio/status";
        let params: Vec<(String, String)> = [
            ("AccountSid", "AC123"),
            ("MessageSid", "SM456"),
            ("MessageStatus", "delivered"),
        ]
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect();
        let signature = "2JulVgzoFp7aCCoWQFErMy6fQLsAaZfT6l8rX6RbcdM=";
        assert_eq!(
            sign_with(Algorithm::HmacSha256, b"shared-key-secret", url, &params),
            signature
        );

        let mut keys = token();
        keys.shared_keys
            .insert("KSabc".into(), SecretString::from("shared-key-secret"));
        let body = form_body(&params);
        let settings = Some("key=KSabc,algorithm=HMAC_SHA256");
        assert_eq!(
            check(url, Some(FORM), &body, signature, settings, &keys),
            Ok(())
        );
        assert_eq!(
            check(
                url,
                Some(FORM),
                &body,
                signature,
                Some(" key = KSabc , algorithm = hmac_sha256 "),
                &keys
            ),
            Ok(())
        );
        // Tampered parameter, and the right key id holding another secret.
        assert_eq!(
            check(
                url,
                Some(FORM),
                &form_body(&tampered(params.clone())),
                signature,
                settings,
                &keys
            ),
            Err(AuthFailure::Mismatch)
        );
        keys.shared_keys
            .insert("KSabc".into(), SecretString::from("rotated-secret"));
        assert_eq!(
            check(url, Some(FORM), &body, signature, settings, &keys),
            Err(AuthFailure::Mismatch)
        );
    }

    #[test]
    fn shared_key_header_selects_algorithm_and_key() {
        let url = URL;
        let params = call_params();
        let body = form_body(&params);
        let mut keys = token();
        keys.shared_keys
            .insert("KS1".into(), SecretString::from("shared"));

        // The Auth Token's SHA1 signature is not accepted when the header names a SharedKey.
        let sha1_token = sign(TOKEN.as_bytes(), url, &params);
        assert_eq!(
            check(
                url,
                Some(FORM),
                &body,
                &sha1_token,
                Some("key=KS1,algorithm=HMAC_SHA256"),
                &keys
            ),
            Err(AuthFailure::Mismatch)
        );
        // SHA1 with the SharedKey when the header says so.
        let sha1_shared = sign_with(Algorithm::HmacSha1, b"shared", url, &params);
        assert_eq!(
            check(
                url,
                Some(FORM),
                &body,
                &sha1_shared,
                Some("key=KS1,algorithm=HMAC_SHA1"),
                &keys
            ),
            Ok(())
        );
        // No algorithm= (or an empty header) means SHA1 with the Auth Token.
        for settings in ["key=KS1", "", "algorithm="] {
            assert_eq!(
                check(url, Some(FORM), &body, &sha1_token, Some(settings), &keys),
                Ok(()),
                "{settings:?}"
            );
        }
        // Named algorithm without key= uses the Auth Tokens.
        let sha256_token = sign_with(Algorithm::HmacSha256, TOKEN.as_bytes(), url, &params);
        assert_eq!(
            check(
                url,
                Some(FORM),
                &body,
                &sha256_token,
                Some("algorithm=HMAC_SHA256"),
                &keys
            ),
            Ok(())
        );
    }

    #[test]
    fn shared_key_failures_are_classified() {
        let params = call_params();
        let body = form_body(&params);
        let signature = sign_with(Algorithm::HmacSha256, b"shared", URL, &params);
        let mut keys = token();
        keys.shared_keys
            .insert("KS1".into(), SecretString::from("shared"));

        let unknown = check(
            URL,
            Some(FORM),
            &body,
            &signature,
            Some("key=KS2,algorithm=HMAC_SHA256"),
            &keys,
        );
        assert_eq!(unknown, Err(AuthFailure::UnknownKey));
        assert_eq!(
            check(
                URL,
                Some(FORM),
                &body,
                &signature,
                Some("key=KS1,algorithm=HMAC_MD5"),
                &keys
            ),
            Err(AuthFailure::UnsupportedAlgorithm("HMAC_MD5".into()))
        );
        assert_eq!(
            check(
                URL,
                Some(FORM),
                &body,
                &signature,
                Some("key=KS1,algorithm=HMAC_SHA256"),
                &token()
            ),
            Err(AuthFailure::NoKeys)
        );
    }

    #[test]
    fn header_problems_are_reported() {
        let body = form_body(&call_params());
        assert!(matches!(
            check(URL, Some(FORM), &body, "not base64!", None, &token()),
            Err(AuthFailure::Malformed(_))
        ));
        assert!(matches!(
            check(URL, Some(FORM), &body, "", None, &token()),
            Err(AuthFailure::Malformed(_))
        ));
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(FORM));
        let req = SignedRequest {
            url: URL,
            headers: &headers,
            body: body.as_bytes(),
        };
        assert_eq!(
            verify(&req, &token()),
            Err(AuthFailure::MissingHeader("x-twilio-signature".into()))
        );
        assert_eq!(verify(&req, &Keys::default()), Err(AuthFailure::NoKeys));

        headers.insert(
            SIGNATURE,
            HeaderValue::from_static("RSOYDt4T1cUTdK1PDd93/VVr8B8="),
        );
        let not_utf8 = [b'a', b'=', 0xff];
        let req = SignedRequest {
            url: URL,
            headers: &headers,
            body: &not_utf8,
        };
        assert!(matches!(
            verify(&req, &token()),
            Err(AuthFailure::Malformed(_))
        ));
    }

    #[test]
    fn port_variants_cover_both_forms() {
        assert_eq!(
            port_variants("https://mycompany.com/myapp.php?foo=1"),
            [
                "https://mycompany.com/myapp.php?foo=1",
                "https://mycompany.com:443/myapp.php?foo=1"
            ]
        );
        assert_eq!(
            port_variants("http://h:8080"),
            ["http://h", "http://h:8080"]
        );
        assert_eq!(
            port_variants("http://h?x=a:1"),
            ["http://h?x=a:1", "http://h:80?x=a:1"]
        );
        assert_eq!(
            port_variants("https://u:p@h:443/x"),
            ["https://u:p@h/x", "https://u:p@h:443/x"]
        );
        assert_eq!(
            port_variants("https://[::1]:8443/x"),
            ["https://[::1]/x", "https://[::1]:8443/x"]
        );
        assert_eq!(
            port_variants("https://[::1]/x"),
            ["https://[::1]/x", "https://[::1]:443/x"]
        );
    }

    #[test]
    fn port_variants_never_panic_on_odd_input() {
        for url in [
            "",
            "://",
            "https://",
            "https://:",
            "https://h:/",
            "https://h:x/",
            "no scheme",
            "https://@",
            "ünï://çödé:1/ü",
        ] {
            let variants = port_variants(url);
            assert!(!variants.is_empty(), "{url:?}");
        }
    }

    #[test]
    fn settings_parse_takes_first_fields_and_ignores_noise() {
        assert_eq!(
            Settings::parse("key=KS1,algorithm=HMAC_SHA256"),
            Settings {
                key: Some("KS1"),
                algorithm: Some("HMAC_SHA256")
            }
        );
        assert_eq!(
            Settings::parse("junk, algorithm = A ,algorithm=B,key="),
            Settings {
                key: None,
                algorithm: Some("A")
            }
        );
        assert_eq!(Settings::parse(""), Settings::default());
    }
}

//! Static credentials, as Genesys Architect data actions send them: HTTP Basic (`user:password`)
//! or a token in `Authorization: Bearer` or in a user-defined header.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use http::header::AUTHORIZATION;
use http::HeaderName;
use secrecy::SecretString;

use super::ct::ct_eq_secret;
use super::{header_str, secret_bytes, AuthFailure, Keys, SignedRequest};

/// A static token in `header`: `Authorization: Bearer <token>` when `header` is `authorization`,
/// otherwise the header's whole value is the token (Genesys lets a data action send any header).
#[derive(Debug, Clone)]
pub struct Bearer {
    /// The header that carries the token.
    pub header: HeaderName,
}

impl Bearer {
    /// The standard `Authorization: Bearer <token>` form.
    pub fn authorization() -> Self {
        Self {
            header: AUTHORIZATION,
        }
    }

    /// Accepts the request when the presented token equals any configured secret.
    pub(crate) fn verify(&self, req: &SignedRequest<'_>, keys: &Keys) -> Result<(), AuthFailure> {
        let secrets = keys.require_secrets()?;
        let value = header_str(req.headers, &self.header)?;
        let token = if self.header == AUTHORIZATION {
            credentials(value, "Bearer")?
        } else {
            value
        };
        if token.is_empty() {
            return Err(AuthFailure::Malformed("empty token"));
        }
        matches_a_secret(token.as_bytes(), secrets)
    }
}

/// Accepts `Authorization: Basic base64(user:password)` when it equals any `user:password` secret.
pub(crate) fn verify_basic(req: &SignedRequest<'_>, keys: &Keys) -> Result<(), AuthFailure> {
    let secrets = keys.require_secrets()?;
    let encoded = credentials(header_str(req.headers, &AUTHORIZATION)?, "Basic")?;
    let decoded = BASE64
        .decode(encoded)
        .map_err(|_| AuthFailure::Malformed("basic credentials are not base64"))?;
    if decoded.is_empty() {
        return Err(AuthFailure::Malformed("empty basic credentials"));
    }
    matches_a_secret(&decoded, secrets)
}

/// The credentials after an `Authorization` scheme word, which matches case-insensitively.
fn credentials<'v>(value: &'v str, scheme: &str) -> Result<&'v str, AuthFailure> {
    let (word, rest) = value
        .split_once(|c: char| c.is_ascii_whitespace())
        .unwrap_or((value, ""));
    if word.eq_ignore_ascii_case(scheme) {
        Ok(rest.trim())
    } else {
        Err(AuthFailure::Malformed("unexpected authorization scheme"))
    }
}

/// Compares in constant time against every secret (no early exit), then reports the outcome.
fn matches_a_secret(presented: &[u8], secrets: &[SecretString]) -> Result<(), AuthFailure> {
    let found = secret_bytes(secrets).fold(false, |found, secret| {
        found | ct_eq_secret(presented, secret)
    });
    if found {
        Ok(())
    } else {
        Err(AuthFailure::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inbound::auth::Scheme;
    use http::{HeaderMap, HeaderValue};
    use std::time::SystemTime;

    fn check(
        scheme: &Scheme,
        header: &HeaderName,
        value: &str,
        keys: &Keys,
    ) -> Result<(), AuthFailure> {
        let mut headers = HeaderMap::new();
        headers.insert(header.clone(), HeaderValue::from_str(value).unwrap());
        let req = SignedRequest {
            url: "https://relay.example.com/da",
            headers: &headers,
            body: b"{}",
        };
        scheme.verify(&req, keys, SystemTime::now())
    }

    fn basic(value: &str, keys: &Keys) -> Result<(), AuthFailure> {
        check(&Scheme::Basic, &AUTHORIZATION, value, keys)
    }

    #[test]
    fn basic_accepts_rfc7617_example_credentials() {
        // RFC 7617 section 2: "Aladdin:open sesame".
        let keys = Keys::from_secrets(["Aladdin:open sesame"]);
        assert_eq!(basic("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==", &keys), Ok(()));
        assert_eq!(basic("basic   QWxhZGRpbjpvcGVuIHNlc2FtZQ==", &keys), Ok(()));
        assert_eq!(basic("BASIC QWxhZGRpbjpvcGVuIHNlc2FtZQ==", &keys), Ok(()));
    }

    #[test]
    fn basic_rejects_wrong_password_as_mismatch() {
        let keys = Keys::from_secrets(["Aladdin:open sesame"]);
        let wrong = BASE64.encode("Aladdin:open sesam");
        assert_eq!(
            basic(&format!("Basic {wrong}"), &keys),
            Err(AuthFailure::Mismatch)
        );
        let other_user = BASE64.encode("Jafar:open sesame");
        assert_eq!(
            basic(&format!("Basic {other_user}"), &keys),
            Err(AuthFailure::Mismatch)
        );
    }

    #[test]
    fn basic_accepts_any_active_credential_during_rotation() {
        let keys = Keys::from_secrets(["relay:old", "relay:new"]);
        assert_eq!(
            basic(&format!("Basic {}", BASE64.encode("relay:new")), &keys),
            Ok(())
        );
        assert_eq!(
            basic(&format!("Basic {}", BASE64.encode("relay:old")), &keys),
            Ok(())
        );
    }

    #[test]
    fn basic_rejects_malformed_headers() {
        let keys = Keys::from_secrets(["Aladdin:open sesame"]);
        for value in [
            "Bearer QWxhZGRpbjpvcGVuIHNlc2FtZQ==",
            "Basic",
            "Basic ",
            "Basic !!!",
            "QWxhZGRpbjpvcGVuIHNlc2FtZQ==",
            "Basicx QWxh",
        ] {
            assert!(
                matches!(basic(value, &keys), Err(AuthFailure::Malformed(_))),
                "{value:?}"
            );
        }
    }

    #[test]
    fn basic_reports_missing_authorization() {
        let headers = HeaderMap::new();
        let req = SignedRequest {
            url: "https://relay.example.com/da",
            headers: &headers,
            body: b"",
        };
        assert_eq!(
            Scheme::Basic.verify(&req, &Keys::from_secrets(["a:b"]), SystemTime::now()),
            Err(AuthFailure::MissingHeader("authorization".into()))
        );
    }

    #[test]
    fn bearer_in_authorization_needs_the_scheme_word() {
        let scheme = Scheme::Bearer(Bearer::authorization());
        let keys = Keys::from_secrets(["tok-123"]);
        assert_eq!(
            check(&scheme, &AUTHORIZATION, "Bearer tok-123", &keys),
            Ok(())
        );
        assert_eq!(
            check(&scheme, &AUTHORIZATION, "bearer tok-123", &keys),
            Ok(())
        );
        assert_eq!(
            check(&scheme, &AUTHORIZATION, "Bearer tok-124", &keys),
            Err(AuthFailure::Mismatch)
        );
        assert_eq!(
            check(&scheme, &AUTHORIZATION, "Bearer tok-12", &keys),
            Err(AuthFailure::Mismatch)
        );
        for value in ["tok-123", "Basic tok-123", "Bearer", "Bearer   "] {
            assert!(
                matches!(
                    check(&scheme, &AUTHORIZATION, value, &keys),
                    Err(AuthFailure::Malformed(_))
                ),
                "{value:?}"
            );
        }
    }

    #[test]
    fn bearer_in_custom_header_is_the_raw_value() {
        let header = HeaderName::from_static("x-relay-token");
        let scheme = Scheme::Bearer(Bearer {
            header: header.clone(),
        });
        let keys = Keys::from_secrets(["old-token", "tok-123"]);
        assert_eq!(check(&scheme, &header, "tok-123", &keys), Ok(()));
        assert_eq!(check(&scheme, &header, "old-token", &keys), Ok(()));
        assert_eq!(
            check(&scheme, &header, "Bearer tok-123", &keys),
            Err(AuthFailure::Mismatch)
        );
        assert!(matches!(
            check(&scheme, &header, "", &keys),
            Err(AuthFailure::Malformed(_))
        ));
        let headers = HeaderMap::new();
        let req = SignedRequest {
            url: "https://relay.example.com/da",
            headers: &headers,
            body: b"",
        };
        assert_eq!(
            scheme.verify(&req, &keys, SystemTime::now()),
            Err(AuthFailure::MissingHeader("x-relay-token".into()))
        );
    }
}

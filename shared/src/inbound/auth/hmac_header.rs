//! HMAC-SHA256 of the raw body carried in one header, optionally after a fixed prefix: the
//! GitHub-style signature that Genesys Open Messaging sends as `X-Hub-Signature-256: sha256=<BASE64>`.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use http::HeaderName;

use super::ct::{hmac_sha256, matches_any};
use super::{header_str, secret_bytes, AuthFailure, Keys, SignedRequest};

/// How the digest is written in the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Hexadecimal, compared case-insensitively (decoded before comparison).
    Hex,
    /// Standard base64 with padding, as Genesys Open Messaging sends.
    Base64,
}

/// An HMAC-SHA256-over-the-body signature in `header`, written as `prefix` + encoded digest,
/// keyed with each secret's UTF-8 bytes.
#[derive(Debug, Clone)]
pub struct HmacHeader {
    /// The header that carries the signature.
    pub header: HeaderName,
    /// How the digest is encoded.
    pub encoding: Encoding,
    /// Text before the digest, e.g. `sha256=`; matched case-insensitively.
    pub prefix: Option<String>,
}

impl HmacHeader {
    /// Genesys Open Messaging outbound webhooks: `X-Hub-Signature-256: sha256=<BASE64>`.
    pub fn genesys_open_messaging() -> Self {
        Self {
            header: HeaderName::from_static("x-hub-signature-256"),
            encoding: Encoding::Base64,
            prefix: Some("sha256=".to_owned()),
        }
    }

    /// The full header value a sender holding `secret` would put on `body`, for tests and the CLI.
    pub fn sign(&self, secret: &[u8], body: &[u8]) -> String {
        let mac = hmac_sha256(secret, &[body]);
        let digest = match self.encoding {
            Encoding::Hex => hex::encode(mac),
            Encoding::Base64 => BASE64.encode(mac),
        };
        format!("{}{digest}", self.prefix.as_deref().unwrap_or_default())
    }

    /// Accepts the request when the header's digest equals the HMAC of the body under any secret.
    pub(crate) fn verify(&self, req: &SignedRequest<'_>, keys: &Keys) -> Result<(), AuthFailure> {
        let secrets = keys.require_secrets()?;
        let presented = self.decode(header_str(req.headers, &self.header)?)?;
        let expected = secret_bytes(secrets).map(|secret| hmac_sha256(secret, &[req.body]));
        if matches_any(expected, &presented) {
            Ok(())
        } else {
            Err(AuthFailure::Mismatch)
        }
    }

    /// The raw digest bytes in a header value, after the prefix.
    fn decode(&self, value: &str) -> Result<Vec<u8>, AuthFailure> {
        let digest = match self.prefix.as_deref() {
            Some(prefix) => strip_prefix_ignore_case(value, prefix).ok_or(
                AuthFailure::Malformed("signature lacks the expected prefix"),
            )?,
            None => value,
        };
        if digest.is_empty() {
            return Err(AuthFailure::Malformed("empty signature"));
        }
        match self.encoding {
            Encoding::Hex => hex::decode(digest)
                .map_err(|_| AuthFailure::Malformed("signature is not hexadecimal")),
            Encoding::Base64 => BASE64
                .decode(digest)
                .map_err(|_| AuthFailure::Malformed("signature is not base64")),
        }
    }
}

/// `value` without `prefix`, compared ASCII-case-insensitively; `None` if it does not start so.
fn strip_prefix_ignore_case<'v>(value: &'v str, prefix: &str) -> Option<&'v str> {
    let head = value.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &value[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, HeaderValue};

    const SECRET: &str = "genesys-secret-token";
    const BODY: &[u8] =
        br#"{"channel":{"id":"f5b3a8c0","platform":"Open","type":"Private"},"text":"Hello"}"#;
    // Computed independently with Python: base64(hmac.new(SECRET, BODY, sha256).digest()).
    const BODY_SIGNATURE_B64: &str = "sha256=0EC4kEoenOM9BFmcO4yonCNvsuqPFS9Tf1vn7TbECZQ=";
    const BODY_SIGNATURE_HEX: &str =
        "d040b8904a1e9ce33d04599c3b8ca89c236fb2ea8f152f537f5be7ed36c40994";

    fn check(
        scheme: &HmacHeader,
        value: &str,
        body: &[u8],
        keys: &Keys,
    ) -> Result<(), AuthFailure> {
        let mut headers = HeaderMap::new();
        headers.insert(scheme.header.clone(), HeaderValue::from_str(value).unwrap());
        scheme.verify(
            &SignedRequest {
                url: "https://relay.example.com/om",
                headers: &headers,
                body,
            },
            keys,
        )
    }

    fn hex_scheme(prefix: Option<&str>) -> HmacHeader {
        HmacHeader {
            header: HeaderName::from_static("x-signature"),
            encoding: Encoding::Hex,
            prefix: prefix.map(str::to_owned),
        }
    }

    #[test]
    fn genesys_signature_matches_independent_vector() {
        let scheme = HmacHeader::genesys_open_messaging();
        assert_eq!(scheme.sign(SECRET.as_bytes(), BODY), BODY_SIGNATURE_B64);
        assert_eq!(
            check(
                &scheme,
                BODY_SIGNATURE_B64,
                BODY,
                &Keys::from_secrets([SECRET])
            ),
            Ok(())
        );
    }

    #[test]
    fn genesys_rejects_tampered_body() {
        let scheme = HmacHeader::genesys_open_messaging();
        let mut tampered = BODY.to_vec();
        let last = tampered.len() - 3;
        tampered[last] = b'X';
        assert_eq!(
            check(
                &scheme,
                BODY_SIGNATURE_B64,
                &tampered,
                &Keys::from_secrets([SECRET])
            ),
            Err(AuthFailure::Mismatch)
        );
    }

    #[test]
    fn genesys_rejects_wrong_secret_as_possible_rotation() {
        let scheme = HmacHeader::genesys_open_messaging();
        let failure = check(
            &scheme,
            BODY_SIGNATURE_B64,
            BODY,
            &Keys::from_secrets(["old-secret"]),
        )
        .unwrap_err();
        assert_eq!(failure, AuthFailure::Mismatch);
        assert!(failure.may_be_rotation());
    }

    #[test]
    fn any_active_secret_is_accepted_during_rotation() {
        let scheme = HmacHeader::genesys_open_messaging();
        let keys = Keys::from_secrets(["old-secret", SECRET]);
        assert_eq!(check(&scheme, BODY_SIGNATURE_B64, BODY, &keys), Ok(()));
    }

    #[test]
    fn hex_digest_is_compared_case_insensitively() {
        let scheme = hex_scheme(Some("sha256="));
        let keys = Keys::from_secrets([SECRET]);
        assert_eq!(
            scheme.sign(SECRET.as_bytes(), BODY),
            format!("sha256={BODY_SIGNATURE_HEX}")
        );
        let upper = format!("SHA256={}", BODY_SIGNATURE_HEX.to_ascii_uppercase());
        assert_eq!(check(&scheme, &upper, BODY, &keys), Ok(()));
    }

    #[test]
    fn header_without_prefix_configuration_holds_bare_digest() {
        let scheme = hex_scheme(None);
        let keys = Keys::from_secrets([SECRET]);
        assert_eq!(scheme.sign(SECRET.as_bytes(), BODY), BODY_SIGNATURE_HEX);
        assert_eq!(check(&scheme, BODY_SIGNATURE_HEX, BODY, &keys), Ok(()));
        assert!(matches!(
            check(
                &scheme,
                &format!("sha256={BODY_SIGNATURE_HEX}"),
                BODY,
                &keys
            ),
            Err(AuthFailure::Malformed(_))
        ));
    }

    #[test]
    fn missing_header_is_reported_by_name() {
        let scheme = HmacHeader::genesys_open_messaging();
        let headers = HeaderMap::new();
        let req = SignedRequest {
            url: "https://relay.example.com/om",
            headers: &headers,
            body: BODY,
        };
        assert_eq!(
            scheme.verify(&req, &Keys::from_secrets([SECRET])),
            Err(AuthFailure::MissingHeader("x-hub-signature-256".into()))
        );
    }

    #[test]
    fn malformed_values_are_rejected_without_panicking() {
        let scheme = HmacHeader::genesys_open_messaging();
        let keys = Keys::from_secrets([SECRET]);
        for value in [
            "",
            "sha256=",
            "sha1=0EC4kEoenOM9BFmcO4yonCNvsuqPFS9Tf1vn7TbECZQ=",
            "sha256=!!!",
            "sha2",
            "é",
        ] {
            let mut headers = HeaderMap::new();
            headers.insert(
                scheme.header.clone(),
                HeaderValue::from_bytes(value.as_bytes()).unwrap(),
            );
            let req = SignedRequest {
                url: "https://relay.example.com/om",
                headers: &headers,
                body: BODY,
            };
            assert!(
                matches!(scheme.verify(&req, &keys), Err(AuthFailure::Malformed(_))),
                "{value:?}"
            );
        }
        let hex = hex_scheme(Some("sha256="));
        assert!(matches!(
            check(&hex, "sha256=zz", BODY, &keys),
            Err(AuthFailure::Malformed(_))
        ));
    }

    #[test]
    fn truncated_digest_does_not_match() {
        let scheme = HmacHeader::genesys_open_messaging();
        let keys = Keys::from_secrets([SECRET]);
        let full = BASE64
            .decode(&BODY_SIGNATURE_B64["sha256=".len()..])
            .unwrap();
        let truncated = format!("sha256={}", BASE64.encode(&full[..16]));
        assert_eq!(
            check(&scheme, &truncated, BODY, &keys),
            Err(AuthFailure::Mismatch)
        );
    }
}

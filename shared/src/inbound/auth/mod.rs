//! Inbound authentication: proves that a webhook really comes from the party a route trusts.
//!
//! Each route names one [`Scheme`] and holds its [`Keys`]; the receiver calls [`Scheme::verify`]
//! on the raw request before anything else reads it. Every failure is an [`AuthFailure`], which
//! becomes a 401 ([`Rejection::Unauthorized`]) and never carries a secret or a signature.
//! All secret-derived comparisons go through the constant-time helpers in `ct`.

pub mod basic;
mod ct;
pub mod hmac_header;
pub mod standard_webhooks;
pub mod twilio;

use std::collections::BTreeMap;
use std::time::SystemTime;

use http::{HeaderMap, HeaderName};
use secrecy::{ExposeSecret, SecretString};

use crate::error::{Error, Rejection};
use crate::secret_json::parse_json;

pub use basic::Bearer;
pub use hmac_header::{Encoding, HmacHeader};

/// The parts of an inbound request that signatures cover, borrowed so verification copies nothing.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    /// The full public URL the sender called, query string included (Twilio signs it).
    pub url: &'a str,
    /// The request headers as received.
    pub headers: &'a HeaderMap,
    /// The raw body bytes, before any parsing (signatures cover the exact bytes).
    pub body: &'a [u8],
}

/// The secret material for one route; several active values at once allow rotation.
#[derive(Debug, Clone, Default)]
pub struct Keys {
    /// Secrets tried in turn: HMAC secrets, `whsec_` keys, `user:password` pairs, bearer tokens or
    /// Twilio Auth Tokens, depending on the scheme.
    pub secrets: Vec<SecretString>,
    /// Twilio SharedKeys by key id, chosen by the `X-Twilio-Webhooks-Signature-Settings` header.
    pub shared_keys: BTreeMap<String, SecretString>,
}

impl Keys {
    /// Keys holding only `secrets`, the common case (everything but Twilio SharedKeys).
    pub fn from_secrets<I, S>(secrets: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            secrets: secrets
                .into_iter()
                .map(|s| SecretString::from(s.into()))
                .collect(),
            shared_keys: BTreeMap::new(),
        }
    }

    /// Keys of a route from its secret: either one bare value, or `{"secrets": ["new", "old"]}`
    /// while rotating. Errors name the field, never a value.
    pub fn parse(raw: &SecretString) -> crate::error::Result<Self> {
        #[derive(serde::Deserialize)]
        struct Rotating {
            secrets: Vec<SecretString>,
        }
        let text = raw.expose_secret().trim();
        let secrets = if text.starts_with('{') {
            parse_json::<Rotating>(raw)?.secrets
        } else {
            vec![SecretString::from(text.to_owned())]
        };
        if secrets.is_empty() || secrets.iter().any(|s| s.expose_secret().is_empty()) {
            return Err(Error::permanent("holds an empty key"));
        }
        Ok(Self {
            secrets,
            shared_keys: BTreeMap::new(),
        })
    }

    /// The keys of every live version of a secret as one set, the first version's first: during a
    /// rotation's overlap a request signed with either the old or the new key is accepted, and a
    /// delivery is signed with both.
    pub fn merge(all: Vec<Self>) -> Self {
        let mut merged = Self::default();
        for keys in all {
            merged.secrets.extend(keys.secrets);
            for (id, key) in keys.shared_keys {
                merged.shared_keys.entry(id).or_insert(key);
            }
        }
        merged
    }

    /// The secrets, or [`AuthFailure::NoKeys`] when the route has none (a configuration fault that
    /// must show in the logs rather than look like a bad signature).
    fn require_secrets(&self) -> Result<&[SecretString], AuthFailure> {
        if self.secrets.is_empty() {
            Err(AuthFailure::NoKeys)
        } else {
            Ok(&self.secrets)
        }
    }
}

/// How a route authenticates its callers, chosen by configuration.
#[derive(Debug, Clone)]
pub enum Scheme {
    /// HMAC-SHA256 of the body in one header (Genesys Open Messaging's `X-Hub-Signature-256`).
    HmacHeader(HmacHeader),
    /// The Standard Webhooks spec: `webhook-id`, `webhook-timestamp`, `webhook-signature`.
    StandardWebhooks,
    /// `Authorization: Basic`, as Genesys data actions can send; secrets are `user:password`.
    Basic,
    /// A static token, in `Authorization: Bearer` or a user-defined header.
    Bearer(Bearer),
    /// Twilio's `X-Twilio-Signature` (Auth Token or SharedKey), for status callbacks.
    Twilio,
}

impl Scheme {
    /// Checks `req` against `keys`; `now` bounds replay for timestamped schemes. `Ok` means the
    /// request is authentic; on any doubt it is an error, never a panic.
    pub fn verify(
        &self,
        req: &SignedRequest<'_>,
        keys: &Keys,
        now: SystemTime,
    ) -> Result<(), AuthFailure> {
        match self {
            Self::HmacHeader(scheme) => scheme.verify(req, keys),
            Self::StandardWebhooks => standard_webhooks::verify(req, keys, now),
            Self::Basic => basic::verify_basic(req, keys),
            Self::Bearer(scheme) => scheme.verify(req, keys),
            Self::Twilio => twilio::verify(req, keys),
        }
    }

    /// A stable short name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Self::HmacHeader(_) => "hmac_header",
            Self::StandardWebhooks => "standard_webhooks",
            Self::Basic => "basic",
            Self::Bearer(_) => "bearer",
            Self::Twilio => "twilio",
        }
    }
}

/// Why a request failed authentication. Messages are safe to log and to return: they never hold
/// a secret, a signature or a credential (free text is `&'static str` for that reason).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    /// A header the scheme needs is absent.
    #[error("missing authentication header `{0}`")]
    MissingHeader(String),
    /// A header is present but unparsable (wrong scheme word, bad encoding, bad timestamp...).
    #[error("malformed authentication: {0}")]
    Malformed(&'static str),
    /// Well-formed, but no configured key produces it: a forgery, or a key rotated at the sender.
    #[error("signature or credentials do not match")]
    Mismatch,
    /// The signature is valid but the body is not the one its signed digest names (Twilio JSON).
    #[error("request body does not match its signed digest")]
    BodyDigestMismatch,
    /// The signed timestamp is too far from now: a replay, or a badly skewed clock.
    #[error("timestamp outside the accepted window")]
    StaleTimestamp,
    /// The request names a signature algorithm this code does not implement.
    #[error("unsupported signature algorithm `{0}`")]
    UnsupportedAlgorithm(String),
    /// The route has no key of the kind the request needs (a configuration fault).
    #[error("no key configured for this route")]
    NoKeys,
    /// The request names a key id (Twilio SharedKey) that is not configured, e.g. a new one.
    #[error("the signing key named by the request is not configured")]
    UnknownKey,
    /// Keys are configured but none is usable (e.g. a `whsec_` secret that is not base64).
    #[error("no configured key is usable")]
    InvalidKey,
}

impl AuthFailure {
    /// True when re-reading the route's secrets could turn this failure into a success: a
    /// mismatch (the sender may already sign with a rotated secret) or an unknown key id (the
    /// sender may sign with a SharedKey created after the secrets were loaded).
    pub fn may_be_rotation(&self) -> bool {
        matches!(self, Self::Mismatch | Self::UnknownKey)
    }

    /// An [`AuthFailure::UnsupportedAlgorithm`] holding a bounded, printable copy of the
    /// caller-supplied name, so that it can be logged and echoed without injection.
    fn unsupported_algorithm(name: &str) -> Self {
        let clean = name
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
            .take(32)
            .collect();
        Self::UnsupportedAlgorithm(clean)
    }
}

impl From<AuthFailure> for Error {
    fn from(failure: AuthFailure) -> Self {
        Error::rejected(
            Rejection::Unauthorized,
            format!("authentication failed: {failure}"),
        )
    }
}

/// The trimmed value of header `name` as text: missing gives [`AuthFailure::MissingHeader`],
/// anything but visible ASCII gives [`AuthFailure::Malformed`].
fn header_str<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Result<&'h str, AuthFailure> {
    let value = headers
        .get(name)
        .ok_or_else(|| AuthFailure::MissingHeader(name.as_str().to_owned()))?;
    value
        .to_str()
        .map(str::trim)
        .map_err(|_| AuthFailure::Malformed("authentication header is not visible ASCII"))
}

/// The UTF-8 bytes of each secret, the HMAC key or credential most schemes use.
fn secret_bytes(secrets: &[SecretString]) -> impl Iterator<Item = &[u8]> {
    secrets.iter().map(|s| s.expose_secret().as_bytes())
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_come_from_a_bare_value_or_a_rotation_list() {
        let secret = |s: &str| SecretString::from(s.to_owned());
        assert_eq!(Keys::parse(&secret("s3cret")).unwrap().secrets.len(), 1);
        let keys = Keys::parse(&secret(r#"{"secrets": ["new", "old"]}"#)).unwrap();
        let values: Vec<_> = keys
            .secrets
            .iter()
            .map(|s| s.expose_secret().to_owned())
            .collect();
        assert_eq!(values, ["new", "old"]);
        assert!(Keys::parse(&secret(r#"{"secrets": []}"#)).is_err());
        assert!(Keys::parse(&secret(r#"{"secrets": [""]}"#)).is_err());
        let err = Keys::parse(&secret(r#"{"secrets": "hunter2-value"}"#))
            .unwrap_err()
            .to_string();
        assert!(!err.contains("hunter2"), "{err}");
    }

    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(
                HeaderName::from_static(name),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn only_mismatch_and_unknown_key_may_be_rotation() {
        assert!(AuthFailure::Mismatch.may_be_rotation());
        assert!(AuthFailure::UnknownKey.may_be_rotation());
        for other in [
            AuthFailure::MissingHeader("x".into()),
            AuthFailure::Malformed("x"),
            AuthFailure::BodyDigestMismatch,
            AuthFailure::StaleTimestamp,
            AuthFailure::UnsupportedAlgorithm("x".into()),
            AuthFailure::NoKeys,
            AuthFailure::InvalidKey,
        ] {
            assert!(!other.may_be_rotation(), "{other:?}");
        }
    }

    #[test]
    fn auth_failure_becomes_unauthorized_without_secrets() {
        let secret = "very-secret-value";
        let scheme = Scheme::HmacHeader(HmacHeader::genesys_open_messaging());
        let signature = HmacHeader::genesys_open_messaging().sign(b"other-secret", b"{}");
        let map = headers(&[("x-hub-signature-256", &signature)]);
        let req = SignedRequest {
            url: "https://relay.example.com/x",
            headers: &map,
            body: b"{}",
        };
        let failure = scheme
            .verify(&req, &Keys::from_secrets([secret]), SystemTime::now())
            .unwrap_err();
        assert_eq!(failure, AuthFailure::Mismatch);

        let error = Error::from(failure);
        let Error::Rejected { kind, message } = &error else {
            panic!("not rejected: {error:?}")
        };
        assert_eq!(*kind, Rejection::Unauthorized);
        assert_eq!(kind.status(), 401);
        assert!(!message.contains(secret));
        assert!(!message.contains(&signature["sha256=".len()..]));
    }

    #[test]
    fn unsupported_algorithm_names_are_sanitised() {
        let failure = AuthFailure::unsupported_algorithm("HMAC_MD5\r\n<script>");
        assert_eq!(
            failure,
            AuthFailure::UnsupportedAlgorithm("HMAC_MD5script".into())
        );
        let AuthFailure::UnsupportedAlgorithm(long) =
            AuthFailure::unsupported_algorithm(&"A".repeat(500))
        else {
            panic!("wrong variant")
        };
        assert_eq!(long.len(), 32);
    }

    #[test]
    fn scheme_names_are_distinct() {
        let names = [
            Scheme::HmacHeader(HmacHeader::genesys_open_messaging()).name(),
            Scheme::StandardWebhooks.name(),
            Scheme::Basic.name(),
            Scheme::Bearer(Bearer::authorization()).name(),
            Scheme::Twilio.name(),
        ];
        let unique: std::collections::BTreeSet<_> = names.iter().collect();
        assert_eq!(unique.len(), names.len());
    }

    #[test]
    fn keys_debug_does_not_show_secrets() {
        let mut keys = Keys::from_secrets(["first-secret"]);
        keys.shared_keys
            .insert("KS1".into(), SecretString::from("shared-secret"));
        let shown = format!("{keys:?}");
        assert!(!shown.contains("first-secret"));
        assert!(!shown.contains("shared-secret"));
    }

    #[test]
    fn every_scheme_reports_no_keys_when_none_are_configured() {
        let map = headers(&[
            ("authorization", "Basic dXNlcjpwYXNz"),
            ("x-hub-signature-256", "sha256=AAAA"),
            ("webhook-id", "msg_1"),
            ("webhook-timestamp", "1614265330"),
            ("webhook-signature", "v1,AAAA"),
            ("x-twilio-signature", "AAAA"),
        ]);
        let req = SignedRequest {
            url: "https://relay.example.com/x",
            headers: &map,
            body: b"",
        };
        let now = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_614_265_330);
        for scheme in [
            Scheme::HmacHeader(HmacHeader::genesys_open_messaging()),
            Scheme::StandardWebhooks,
            Scheme::Basic,
            Scheme::Bearer(Bearer::authorization()),
            Scheme::Twilio,
        ] {
            assert_eq!(
                scheme.verify(&req, &Keys::default(), now),
                Err(AuthFailure::NoKeys)
            );
        }
    }

    #[test]
    fn no_scheme_accepts_or_panics_on_arbitrary_input() {
        // Deterministic xorshift so a failure is reproducible.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let alphabet = b"aZ09+/=,;: .-_v1whsec_BasicBearer\t\x80\xff%&?#[]@";
        let names = [
            "authorization",
            "x-hub-signature-256",
            "webhook-id",
            "webhook-timestamp",
            "webhook-signature",
            "x-twilio-signature",
            "x-twilio-webhooks-signature-settings",
            "content-type",
        ];
        let mut keys = Keys::from_secrets(["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "a:b"]);
        keys.shared_keys
            .insert("KS1".into(), SecretString::from("shared"));
        let schemes = [
            Scheme::HmacHeader(HmacHeader::genesys_open_messaging()),
            Scheme::StandardWebhooks,
            Scheme::Basic,
            Scheme::Bearer(Bearer::authorization()),
            Scheme::Twilio,
        ];
        for _ in 0..2000 {
            let mut random = |max: u64| -> Vec<u8> {
                let len = next() % max;
                (0..len)
                    .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                    .collect()
            };
            let mut map = HeaderMap::new();
            for name in names {
                if let Ok(value) = HeaderValue::from_bytes(&random(48)) {
                    map.insert(HeaderName::from_static(name), value);
                }
            }
            let url = String::from_utf8_lossy(&random(40)).into_owned();
            let body = random(40);
            let req = SignedRequest {
                url: &url,
                headers: &map,
                body: &body,
            };
            for scheme in &schemes {
                assert!(scheme.verify(&req, &keys, SystemTime::now()).is_err());
            }
        }
    }

    #[test]
    fn header_str_distinguishes_missing_from_malformed() {
        let mut map = HeaderMap::new();
        let name = HeaderName::from_static("x-test");
        assert_eq!(
            header_str(&map, &name),
            Err(AuthFailure::MissingHeader("x-test".into()))
        );
        map.insert(
            name.clone(),
            HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap(),
        );
        assert!(matches!(
            header_str(&map, &name),
            Err(AuthFailure::Malformed(_))
        ));
        map.insert(name.clone(), HeaderValue::from_static("  value "));
        assert_eq!(header_str(&map, &name), Ok("value"));
    }
}

//! The delivery envelope: the versioned JSON body a downstream receives, its Standard Webhooks
//! signature headers, and optional AES-256-GCM encryption of the body.
//!
//! A delivery is signed over the exact bytes sent, so a receiver verifies before it parses. When
//! an endpoint has an encryption key, the body becomes
//! `{"version":"1","deliveryId":..,"encrypted":{"alg":"A256GCM","kid":..,"nonce":..,"ciphertext":..}}`:
//! the delivery id stays in clear (receivers deduplicate without decrypting) and is bound to the
//! ciphertext as associated data, so it cannot be swapped onto another delivery's ciphertext.
//!
//! The event is embedded as the JSON text that was received, byte for byte (`RawEvent`):
//! parsing and re-serializing it would round numbers beyond f64 (`123456789012345678901234567890`
//! would arrive as `1.2345678901234568e+29`) and collapse duplicate keys.

use std::borrow::Cow;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use secrecy::zeroize::Zeroize;
use secrecy::{ExposeSecret, SecretSlice, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Rejection, Result};
use crate::inbound::auth::standard_webhooks;
use crate::secret_json::parse_json;

/// The envelope version receivers switch on; bumped only for incompatible changes.
pub const VERSION: &str = "1";

/// The `alg` of an encrypted body, named as in JOSE so receivers recognise it.
pub(crate) const ALG: &str = "A256GCM";

/// The header carrying the delivery id: Standard Webhooks receivers deduplicate on it.
pub(crate) const WEBHOOK_ID: &str = "webhook-id";
/// The header carrying the signing time, which receivers bound to stop replays.
pub(crate) const WEBHOOK_TIMESTAMP: &str = "webhook-timestamp";
/// The header carrying one `v1,<base64>` signature per active secret.
pub(crate) const WEBHOOK_SIGNATURE: &str = "webhook-signature";

/// AES-256 needs exactly this many key bytes; anything else is a configuration mistake.
const KEY_LEN: usize = 32;
/// The GCM tag appended to every ciphertext.
const TAG_LEN: usize = 16;
const DELIVERY_ID_PREFIX: &str = "dlv_";
/// Separates endpoint and event key in the hashed input, so `("ab", "c")` and `("a", "bc")`
/// never share an id (neither URLs nor event keys contain a unit separator).
const SEPARATOR: u8 = 0x1f;

/// The JSON body a downstream receives, versioned so the shape can evolve without breaking
/// receivers that check `version`. The sender builds it around the event as received
/// (`Delivery<RawEvent>`); receivers read it back with the event parsed (`Delivery`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery<E = serde_json::Value> {
    /// The envelope version, [`VERSION`].
    pub version: String,
    /// Stable across retries of one delivery (see [`delivery_id`]), so receivers can deduplicate.
    pub delivery_id: String,
    /// The key that identifies the event upstream, for receivers that correlate across endpoints.
    pub event_key: String,
    /// Where the event came from (a Genesys Cloud organisation or topic), for routing on receipt.
    pub source: String,
    /// The event type, so receivers can dispatch without looking into `event`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// When the event happened upstream (RFC 3339), which differs from when it was delivered.
    pub occurred_at: String,
    /// 1 for the first attempt: lets receivers tell a retry from a new delivery in their logs.
    pub attempt: u32,
    /// The event itself, as received. Last on the wire, after everything a receiver routes on.
    pub event: E,
}

/// An event's JSON text exactly as it was received, to be embedded in a delivery byte for byte.
/// Only [`RawEvent::new`] makes one, and it checks the text is one JSON value, so the envelope
/// around it is always valid JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawEvent<'a>(&'a str);

impl<'a> RawEvent<'a> {
    /// Checks that `text` is a single JSON value (whitespace around it allowed, as JSON allows it
    /// inside the envelope too). Text that is not JSON cannot be embedded without changing it, so
    /// it is a permanent error; the message gives the position only, never the content.
    pub fn new(text: &'a str) -> Result<Self> {
        serde_json::from_str::<serde::de::IgnoredAny>(text).map_err(|e| {
            Error::permanent(format!(
                "event is not valid JSON (line {}, column {}); it cannot be forwarded unchanged",
                e.line(),
                e.column()
            ))
        })?;
        Ok(Self(text))
    }
}

/// What a delivery's `event` can be: anything that yields the JSON text to embed.
pub trait EventJson {
    /// The JSON text of the event, embedded in the envelope as is.
    fn json_text(&self) -> Result<Cow<'_, str>>;
}

impl EventJson for RawEvent<'_> {
    fn json_text(&self) -> Result<Cow<'_, str>> {
        Ok(Cow::Borrowed(self.0))
    }
}

impl EventJson for serde_json::Value {
    /// A parsed event, serialized: for tools and tests that build deliveries from values.
    fn json_text(&self) -> Result<Cow<'_, str>> {
        serde_json::to_string(self)
            .map(Cow::Owned)
            .map_err(|e| Error::permanent(format!("event does not serialize: {e}")))
    }
}

/// Everything of a delivery but its event, in wire order, borrowed for serialization.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Head<'a> {
    version: &'a str,
    delivery_id: &'a str,
    event_key: &'a str,
    source: &'a str,
    #[serde(rename = "type")]
    event_type: &'a str,
    occurred_at: &'a str,
    attempt: u32,
}

/// The delivery as JSON: the head serialized, then `"event":` and the event's text unchanged.
fn plain_json<E: EventJson>(delivery: &Delivery<E>) -> Result<Vec<u8>> {
    let head = Head {
        version: &delivery.version,
        delivery_id: &delivery.delivery_id,
        event_key: &delivery.event_key,
        source: &delivery.source,
        event_type: &delivery.event_type,
        occurred_at: &delivery.occurred_at,
        attempt: delivery.attempt,
    };
    let event = delivery.event.json_text()?;
    let mut json = serde_json::to_vec(&head)
        .map_err(|e| Error::permanent(format!("delivery does not serialize: {e}")))?;
    // A struct always serializes as `{...}`: reopen it to append the event as the last member.
    if json.pop() != Some(b'}') {
        return Err(Error::permanent("delivery head is not a JSON object"));
    }
    json.reserve(event.len() + 10);
    json.extend_from_slice(br#","event":"#);
    json.extend_from_slice(event.as_bytes());
    json.push(b'}');
    Ok(json)
}

/// A stable id per (endpoint, event key): every retry of one delivery reuses it, so receivers
/// can deduplicate on `webhook-id`, while the same event sent to two endpoints gets two ids.
/// `dlv_` followed by 32 hex digits of SHA-256(endpoint, 0x1f, event key).
pub fn delivery_id(endpoint: &str, event_key: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(endpoint.as_bytes());
    hasher.update([SEPARATOR]);
    hasher.update(event_key.as_bytes());
    let digest = hasher.finalize();
    format!("{DELIVERY_ID_PREFIX}{}", hex::encode(&digest[..16]))
}

/// An AES-256-GCM key from Secrets Manager. The key is random bytes, never a passphrase, so no
/// key derivation is needed and a weak human-chosen key cannot slip in. Its bytes are zeroed on
/// drop and redacted from `Debug`.
#[derive(Debug, Clone)]
pub struct EncryptionKey {
    /// Named in every encrypted body, so receivers holding several keys (during a rotation)
    /// know which one to use.
    pub key_id: String,
    key: SecretSlice<u8>,
}

impl EncryptionKey {
    /// Parses the secret `{"keyId": "k1", "key": "<base64 of exactly 32 random bytes>"}`.
    /// Errors name the faulty field and never echo a value, since they end up in logs.
    pub fn parse(raw: &SecretString) -> Result<Self> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Stored {
            key_id: String,
            key: SecretString,
        }
        let stored: Stored = parse_json(raw)?;
        if stored.key_id.trim().is_empty() {
            return Err(Error::permanent("field `keyId` is empty"));
        }
        let encoded = stored.key.expose_secret().trim();
        let mut decoded = Vec::with_capacity(encoded.len());
        if BASE64.decode_vec(encoded, &mut decoded).is_err() {
            decoded.zeroize();
            return Err(Error::permanent("field `key` is not standard base64"));
        }
        let key = SecretSlice::from(decoded);
        let len = key.expose_secret().len();
        if len != KEY_LEN {
            return Err(Error::permanent(format!(
                "field `key` must decode to exactly {KEY_LEN} bytes, not {len}"
            )));
        }
        Ok(Self {
            key_id: stored.key_id,
            key,
        })
    }

    /// A key from raw bytes, for tests that generate keys themselves.
    pub fn from_bytes(key_id: &str, bytes: [u8; KEY_LEN]) -> Self {
        let mut bytes = bytes;
        let key = SecretSlice::from(bytes.to_vec());
        bytes.zeroize();
        Self {
            key_id: key_id.to_owned(),
            key,
        }
    }

    /// The AEAD key; built per use so the long-lived copy stays in zeroizing memory.
    fn aead(&self) -> Result<LessSafeKey> {
        UnboundKey::new(&AES_256_GCM, self.key.expose_secret())
            .map(LessSafeKey::new)
            .map_err(|_| Error::permanent("encryption key is not a valid AES-256 key"))
    }
}

/// The wire shape of an encrypted delivery.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EncryptedBody {
    version: String,
    delivery_id: String,
    encrypted: Sealed,
}

/// The sealed delivery: `ciphertext` is the AES-256-GCM output with its 16-byte tag appended.
#[derive(Serialize, Deserialize)]
struct Sealed {
    alg: String,
    kid: String,
    nonce: String,
    ciphertext: String,
}

/// What goes on the wire: the delivery as JSON, or, with a key, the delivery encrypted under a
/// fresh random 96-bit nonce with its id as associated data. A random nonce per message is safe
/// for far more messages than one key will ever seal (the GCM bound is 2^32). Either way the
/// event's text is the one the delivery holds, unchanged (encrypted, it is inside the ciphertext).
pub fn body<E: EventJson>(delivery: &Delivery<E>, key: Option<&EncryptionKey>) -> Result<Vec<u8>> {
    let plain = plain_json(delivery)?;
    let Some(key) = key else {
        return Ok(plain);
    };

    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| Error::retryable("no randomness available for an encryption nonce"))?;
    let mut sealed = plain;
    key.aead()?
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(delivery.delivery_id.as_bytes()),
            &mut sealed,
        )
        .map_err(|_| Error::permanent("delivery could not be encrypted"))?;

    let wire = EncryptedBody {
        version: VERSION.to_owned(),
        delivery_id: delivery.delivery_id.clone(),
        encrypted: Sealed {
            alg: ALG.to_owned(),
            kid: key.key_id.clone(),
            nonce: BASE64.encode(nonce),
            ciphertext: BASE64.encode(&sealed),
        },
    };
    serde_json::to_vec(&wire)
        .map_err(|e| Error::permanent(format!("encrypted delivery does not serialize: {e}")))
}

/// Decrypts an encrypted body as a receiver does. Any change to the nonce, the
/// ciphertext or the clear `deliveryId` fails authentication; a malformed body is
/// [`Rejection::BadRequest`], one that does not authenticate under `key` is
/// [`Rejection::Unauthorized`].
pub fn decrypt(body: &[u8], key: &EncryptionKey) -> Result<Delivery> {
    let bad = |message: String| Error::rejected(Rejection::BadRequest, message);
    let unauthenticated = |message: String| Error::rejected(Rejection::Unauthorized, message);

    // serde messages can quote input; report the position only.
    let wire: EncryptedBody = serde_json::from_slice(body).map_err(|e| {
        bad(format!(
            "body is not an encrypted delivery (line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    if wire.version != VERSION {
        return Err(bad(format!(
            "unsupported envelope version `{}`",
            wire.version
        )));
    }
    let sealed = wire.encrypted;
    if sealed.alg != ALG {
        return Err(bad(format!("unsupported encryption `{}`", sealed.alg)));
    }
    if sealed.kid != key.key_id {
        return Err(unauthenticated(format!(
            "body is encrypted with key `{}`, not `{}`",
            sealed.kid, key.key_id
        )));
    }
    let nonce = BASE64
        .decode(&sealed.nonce)
        .ok()
        .and_then(|n| Nonce::try_assume_unique_for_key(&n).ok())
        .ok_or_else(|| bad(format!("nonce is not base64 of {NONCE_LEN} bytes")))?;
    let mut ciphertext = BASE64
        .decode(&sealed.ciphertext)
        .map_err(|_| bad("ciphertext is not base64".to_owned()))?;
    if ciphertext.len() < TAG_LEN {
        return Err(bad("ciphertext is shorter than its tag".to_owned()));
    }

    let plain = key
        .aead()?
        .open_in_place(
            nonce,
            Aad::from(wire.delivery_id.as_bytes()),
            &mut ciphertext,
        )
        .map_err(|_| {
            unauthenticated(format!(
                "ciphertext does not authenticate under key `{}`",
                key.key_id
            ))
        })?;
    let delivery: Delivery = serde_json::from_slice(plain).map_err(|e| {
        bad(format!(
            "decrypted body is not a delivery (line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    if delivery.delivery_id != wire.delivery_id {
        return Err(bad(
            "decrypted delivery id differs from the clear one".to_owned()
        ));
    }
    Ok(delivery)
}

/// Standard Webhooks headers for `body`: `webhook-id` is the delivery id (the receiver's
/// deduplication key), `webhook-timestamp` the signing time in Unix seconds, and
/// `webhook-signature` one `v1,` signature per secret, space-separated, so a receiver holding
/// either the old or the new secret accepts the message during a rotation. No secret at all, or
/// a secret that is not `whsec_` + base64, is a configuration fault (the message names its
/// position, never its value).
pub fn signature_headers(
    delivery_id: &str,
    timestamp: i64,
    body: &[u8],
    secrets: &[SecretString],
) -> Result<Vec<(&'static str, String)>> {
    if secrets.is_empty() {
        return Err(Error::permanent("no webhook signing secret configured"));
    }
    let signatures = secrets
        .iter()
        .enumerate()
        .map(|(at, secret)| {
            standard_webhooks::sign(secret.expose_secret(), delivery_id, timestamp, body).map_err(
                |_| {
                    Error::permanent(format!(
                        "webhook signing secret {} of {} is not whsec_ + base64",
                        at + 1,
                        secrets.len()
                    ))
                },
            )
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(vec![
        (WEBHOOK_ID, delivery_id.to_owned()),
        (WEBHOOK_TIMESTAMP, timestamp.to_string()),
        (WEBHOOK_SIGNATURE, signatures.join(" ")),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const KEY_BYTES: [u8; 32] = [7; 32];

    fn key() -> EncryptionKey {
        EncryptionKey::from_bytes("k1", KEY_BYTES)
    }

    fn delivery() -> Delivery {
        Delivery {
            version: VERSION.to_owned(),
            delivery_id: delivery_id("https://example.com/hook", "conv-1:v3"),
            event_key: "conv-1:v3".to_owned(),
            source: "genesys-cloud".to_owned(),
            event_type: "v2.detail.events.conversation.{id}.customer.start".to_owned(),
            occurred_at: "2026-03-01T12:00:00Z".to_owned(),
            attempt: 1,
            event: json!({"conversationId": "conv-1", "text": "hello there"}),
        }
    }

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    fn wire(body: &[u8]) -> serde_json::Value {
        serde_json::from_slice(body).unwrap()
    }

    fn to_bytes(value: &serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(value).unwrap()
    }

    /// Flips one bit of byte `at` of a base64 field of `encrypted`.
    fn flip(body: &[u8], field: &str, at: usize) -> Vec<u8> {
        let mut value = wire(body);
        let mut bytes = BASE64
            .decode(value["encrypted"][field].as_str().unwrap())
            .unwrap();
        bytes[at] ^= 0x01;
        value["encrypted"][field] = json!(BASE64.encode(&bytes));
        to_bytes(&value)
    }

    fn field_len(body: &[u8], field: &str) -> usize {
        BASE64
            .decode(wire(body)["encrypted"][field].as_str().unwrap())
            .unwrap()
            .len()
    }

    #[test]
    fn decimals_in_the_event_reach_the_endpoint_unchanged() {
        // Seventeen significant digits, the most an f64 needs, from a fixed linear congruential
        // sequence: the inputs where a fast but inexact decimal parser is off by one step.
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..20_000 {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let mantissa = 10_000_000_000_000_000 + (state >> 11) % 90_000_000_000_000_000;
            let exponent = (state % 40) as i32 - 20;
            let text = format!("{mantissa}e{exponent}");
            let exact: f64 = text.parse().unwrap();
            let mut sent = delivery();
            sent.event = serde_json::from_str(&format!(r#"{{"amount": {text}}}"#)).unwrap();
            let arrived = wire(&body(&sent, None).unwrap());
            assert_eq!(arrived["event"]["amount"].as_f64(), Some(exact), "{text}");
        }
    }

    /// An event whose JSON text a parse and re-serialize would change.
    const LOSSY: &str =
        "{\"big\": 123456789012345678901234567890, \"dup\": 1, \"dup\": 2, \"f\": 1.10}";

    fn raw_delivery(text: &str) -> Delivery<RawEvent<'_>> {
        let d = delivery();
        Delivery {
            version: d.version,
            delivery_id: d.delivery_id,
            event_key: d.event_key,
            source: d.source,
            event_type: d.event_type,
            occurred_at: d.occurred_at,
            attempt: d.attempt,
            event: RawEvent::new(text).unwrap(),
        }
    }

    /// What the body holds after `"event":`, up to its closing brace.
    fn event_text(body: &[u8]) -> &str {
        let text = std::str::from_utf8(body).unwrap();
        let at = text.find(r#","event":"#).unwrap() + r#","event":"#.len();
        text[at..].strip_suffix('}').unwrap()
    }

    #[test]
    fn a_raw_event_is_embedded_byte_for_byte() {
        for text in [
            LOSSY,
            " \n{\"a\" : [1 , 2]}\t\r\n",
            "12345678901234567890.000",
            "\"x\"",
        ] {
            let body = body(&raw_delivery(text), None).unwrap();
            assert_eq!(event_text(&body), text);
            // Still one valid JSON document, with the event last.
            let value = wire(&body);
            assert_eq!(value["deliveryId"], json!(delivery().delivery_id));
            assert_eq!(value["attempt"], 1);
        }
    }

    #[test]
    fn an_encrypted_raw_event_seals_the_same_bytes() {
        let plain = body(&raw_delivery(LOSSY), None).unwrap();
        let sealed = wire(&body(&raw_delivery(LOSSY), Some(&key())).unwrap());
        let nonce = BASE64
            .decode(sealed["encrypted"]["nonce"].as_str().unwrap())
            .unwrap();
        let mut opened = BASE64
            .decode(sealed["encrypted"]["ciphertext"].as_str().unwrap())
            .unwrap();
        let aad = delivery().delivery_id;
        let opened = key()
            .aead()
            .unwrap()
            .open_in_place(
                Nonce::try_assume_unique_for_key(&nonce).unwrap(),
                Aad::from(aad.as_bytes()),
                &mut opened,
            )
            .unwrap()
            .to_vec();
        assert_eq!(opened, plain);
        assert_eq!(event_text(&opened), LOSSY);
    }

    #[test]
    fn text_that_is_not_one_json_value_is_refused_permanently_without_echoing_it() {
        for text in [
            "",
            "   ",
            "{\"a\": 1",
            "{\"a\": 1} {}",
            "secret-not-json",
            "{\"a\": 1},",
        ] {
            let err = RawEvent::new(text).unwrap_err();
            assert!(matches!(err, Error::Permanent { .. }), "{text:?}: {err:?}");
            let message = err.to_string();
            assert!(message.contains("not valid JSON"), "{message}");
            assert!(!message.contains("secret"), "{message}");
        }
    }

    #[test]
    fn a_parsed_event_serializes_as_serde_would() {
        let body = body(&delivery(), None).unwrap();
        assert_eq!(body, serde_json::to_vec(&delivery()).unwrap());
    }

    #[test]
    fn delivery_id_is_stable_and_distinct_per_endpoint_and_key() {
        let id = delivery_id("https://a.example/hook", "k1");
        assert_eq!(id, delivery_id("https://a.example/hook", "k1"));
        assert!(id.starts_with("dlv_"));
        let hex = &id[4..];
        assert_eq!(hex.len(), 32);
        assert!(hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        assert_ne!(id, delivery_id("https://b.example/hook", "k1"));
        assert_ne!(id, delivery_id("https://a.example/hook", "k2"));
        // The separator keeps the boundary between endpoint and key.
        assert_ne!(delivery_id("ab", "c"), delivery_id("a", "bc"));
    }

    #[test]
    fn delivery_id_is_sha256_of_endpoint_separator_key() {
        let digest = Sha256::digest(b"e\x1fk");
        assert_eq!(
            delivery_id("e", "k"),
            format!("dlv_{}", hex::encode(&digest[..16]))
        );
    }

    #[test]
    fn delivery_serializes_with_the_documented_field_names() {
        let value = serde_json::to_value(delivery()).unwrap();
        let mut names: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "attempt",
                "deliveryId",
                "event",
                "eventKey",
                "occurredAt",
                "source",
                "type",
                "version"
            ]
        );
        assert_eq!(value["version"], "1");
        assert_eq!(
            value["type"],
            "v2.detail.events.conversation.{id}.customer.start"
        );
        assert_eq!(value["occurredAt"], "2026-03-01T12:00:00Z");
        assert_eq!(value["attempt"], 1);
        let back: Delivery = serde_json::from_value(value).unwrap();
        assert_eq!(back, delivery());
    }

    #[test]
    fn without_a_key_the_body_is_the_delivery_json() {
        let body = body(&delivery(), None).unwrap();
        let back: Delivery = serde_json::from_slice(&body).unwrap();
        assert_eq!(back, delivery());
    }

    #[test]
    fn encryption_round_trips() {
        let body = body(&delivery(), Some(&key())).unwrap();
        assert_eq!(decrypt(&body, &key()).unwrap(), delivery());
    }

    #[test]
    fn encrypted_body_has_the_documented_shape_and_hides_the_event() {
        let plain = body(&delivery(), None).unwrap();
        let body = body(&delivery(), Some(&key())).unwrap();
        let value = wire(&body);
        let mut names: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        names.sort_unstable();
        assert_eq!(names, ["deliveryId", "encrypted", "version"]);
        assert_eq!(value["version"], "1");
        assert_eq!(value["deliveryId"], json!(delivery().delivery_id));
        assert_eq!(value["encrypted"]["alg"], "A256GCM");
        assert_eq!(value["encrypted"]["kid"], "k1");
        assert_eq!(field_len(&body, "nonce"), 12);
        assert_eq!(field_len(&body, "ciphertext"), plain.len() + 16);
        let text = String::from_utf8(body).unwrap();
        assert!(!text.contains("hello there"), "{text}");
        assert!(!text.contains("conv-1"), "{text}");
    }

    #[test]
    fn each_encryption_uses_a_fresh_nonce() {
        let first = wire(&body(&delivery(), Some(&key())).unwrap());
        let second = wire(&body(&delivery(), Some(&key())).unwrap());
        assert_ne!(first["encrypted"]["nonce"], second["encrypted"]["nonce"]);
        assert_ne!(
            first["encrypted"]["ciphertext"],
            second["encrypted"]["ciphertext"]
        );
    }

    #[test]
    fn tampering_with_any_byte_of_nonce_or_ciphertext_fails() {
        let body = body(&delivery(), Some(&key())).unwrap();
        for field in ["nonce", "ciphertext"] {
            for at in 0..field_len(&body, field) {
                let err = decrypt(&flip(&body, field, at), &key()).unwrap_err();
                assert!(
                    matches!(
                        err,
                        Error::Rejected {
                            kind: Rejection::Unauthorized,
                            ..
                        }
                    ),
                    "{field}[{at}]: {err:?}"
                );
            }
        }
    }

    #[test]
    fn a_changed_delivery_id_fails() {
        let body = body(&delivery(), Some(&key())).unwrap();
        let mut value = wire(&body);
        value["deliveryId"] = json!(delivery_id("https://example.com/hook", "conv-2:v1"));
        assert!(decrypt(&to_bytes(&value), &key()).is_err());
        // A body sealed for another delivery cannot be passed off under this id either.
        let mut other = delivery();
        other.delivery_id = delivery_id("https://example.com/hook", "conv-2:v1");
        let mut value = wire(&body);
        value["encrypted"] = wire(&super::body(&other, Some(&key())).unwrap())["encrypted"].clone();
        assert!(decrypt(&to_bytes(&value), &key()).is_err());
    }

    #[test]
    fn a_wrong_key_fails() {
        let body = body(&delivery(), Some(&key())).unwrap();
        let same_id = EncryptionKey::from_bytes("k1", [8; 32]);
        assert!(matches!(
            decrypt(&body, &same_id),
            Err(Error::Rejected {
                kind: Rejection::Unauthorized,
                ..
            })
        ));
        let other_id = EncryptionKey::from_bytes("k2", KEY_BYTES);
        let err = decrypt(&body, &other_id).unwrap_err().to_string();
        assert!(err.contains("k1") && err.contains("k2"), "{err}");
    }

    #[test]
    fn malformed_encrypted_bodies_are_rejected() {
        let body = body(&delivery(), Some(&key())).unwrap();
        let plain = super::body(&delivery(), None).unwrap();
        let mut cases = vec![plain, b"not json".to_vec(), Vec::new()];
        for (path, replacement) in [
            ("version", json!("2")),
            ("alg", json!("A128GCM")),
            ("nonce", json!("not base64!")),
            ("nonce", json!(BASE64.encode([0u8; 8]))),
            ("ciphertext", json!("***")),
            ("ciphertext", json!(BASE64.encode([0u8; 15]))),
        ] {
            let mut value = wire(&body);
            if path == "version" {
                value[path] = replacement;
            } else {
                value["encrypted"][path] = replacement;
            }
            cases.push(to_bytes(&value));
        }
        for case in cases {
            let err = decrypt(&case, &key()).unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::Rejected {
                        kind: Rejection::BadRequest,
                        ..
                    }
                ),
                "{err:?}"
            );
        }
    }

    #[test]
    fn a_valid_key_secret_parses() {
        let raw = secret(&format!(
            r#"{{"keyId": "k1", "key": "{}"}}"#,
            BASE64.encode(KEY_BYTES)
        ));
        let parsed = EncryptionKey::parse(&raw).unwrap();
        assert_eq!(parsed.key_id, "k1");
        let body = body(&delivery(), Some(&parsed)).unwrap();
        assert_eq!(decrypt(&body, &key()).unwrap(), delivery());
    }

    #[test]
    fn key_parse_errors_name_the_field_and_never_the_key() {
        let short = BASE64.encode([0x5a; 16]);
        let long = BASE64.encode([0x5a; 33]);
        let almost = BASE64.encode([0x5a; 31]);
        let cases = [
            (
                format!(r#"{{"keyId":"k1","key":"{short}"}}"#),
                "`key`",
                short.clone(),
            ),
            (
                format!(r#"{{"keyId":"k1","key":"{long}"}}"#),
                "`key`",
                long.clone(),
            ),
            (
                format!(r#"{{"keyId":"k1","key":"{almost}"}}"#),
                "`key`",
                almost.clone(),
            ),
            (
                r#"{"keyId":"k1","key":"correct horse battery staple!!"}"#.to_owned(),
                "`key`",
                "horse".to_owned(),
            ),
            (
                format!(r#"{{"key":"{}"}}"#, BASE64.encode(KEY_BYTES)),
                "keyId",
                BASE64.encode(KEY_BYTES),
            ),
            (r#"{"keyId":"k1"}"#.to_owned(), "key", "k1\"".to_owned()),
            (
                format!(r#"{{"keyId":" ","key":"{}"}}"#, BASE64.encode(KEY_BYTES)),
                "keyId",
                BASE64.encode(KEY_BYTES),
            ),
            (
                r#"{"keyId":"k1","key":12345678901234}"#.to_owned(),
                "",
                "12345678901234".to_owned(),
            ),
            ("s3cr3t-not-json".to_owned(), "", "s3cr3t".to_owned()),
        ];
        for (raw, names, value) in cases {
            let err = EncryptionKey::parse(&secret(&raw)).unwrap_err();
            assert!(matches!(err, Error::Permanent { .. }), "{err:?}");
            let text = err.to_string();
            assert!(text.contains(names), "{raw}: {text}");
            assert!(!text.contains(&value), "{raw}: {text}");
        }
    }

    #[test]
    fn debug_never_shows_the_key() {
        let shown = format!("{:?}", key());
        assert!(shown.contains("k1"), "{shown}");
        assert!(!shown.contains("7, 7"), "{shown}");
        assert!(!shown.contains(&BASE64.encode(KEY_BYTES)), "{shown}");
    }

    #[test]
    fn signature_headers_are_the_three_standard_webhooks_headers() {
        let secrets = [secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")];
        let headers = signature_headers("dlv_1", 1_614_265_330, b"{}", &secrets).unwrap();
        let names: Vec<&str> = headers.iter().map(|(name, _)| *name).collect();
        assert_eq!(
            names,
            ["webhook-id", "webhook-timestamp", "webhook-signature"]
        );
        assert_eq!(headers[0].1, "dlv_1");
        assert_eq!(headers[1].1, "1614265330");
        assert!(headers[2].1.starts_with("v1,"));
    }

    #[test]
    fn signature_headers_need_a_usable_secret_and_never_show_it() {
        assert!(signature_headers("dlv_1", 1, b"{}", &[]).is_err());
        let secrets = [
            secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            secret("whsec_not*base64*value"),
        ];
        let err = signature_headers("dlv_1", 1, b"{}", &secrets)
            .unwrap_err()
            .to_string();
        assert!(err.contains("2 of 2"), "{err}");
        assert!(!err.contains("base64*value"), "{err}");
    }
}

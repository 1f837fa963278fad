//! The delivery envelope checked against code independent of the product: signatures are
//! recomputed with the tests crate's own HMAC, and encrypted bodies are opened (and sealed) with
//! aws-lc-rs directly, as a receiver would.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use genesys_relay::outbound::forward::envelope::{
    self, body, decrypt, delivery_id, signature_headers, Delivery, EncryptionKey,
};
use relay_tests::sign;
use secrecy::SecretString;
use serde_json::{json, Value};

const NEW_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
const OLD_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const KEY: [u8; 32] = [
    0x60, 0x3d, 0xeb, 0x10, 0x15, 0xca, 0x71, 0xbe, 0x2b, 0x73, 0xae, 0xf0, 0x85, 0x7d, 0x77, 0x81,
    0x1f, 0x35, 0x2c, 0x07, 0x3b, 0x61, 0x08, 0xd7, 0x2d, 0x98, 0x10, 0xa3, 0x09, 0x14, 0xdf, 0xf4,
];

fn delivery(attempt: u32) -> Delivery {
    let endpoint = "https://crm.example.com/genesys";
    let event_key = "3b0f2c1e-conversation:customer.start";
    Delivery {
        version: envelope::VERSION.to_owned(),
        delivery_id: delivery_id(endpoint, event_key),
        event_key: event_key.to_owned(),
        source: "genesys-cloud".to_owned(),
        event_type: "v2.detail.events.conversation.{id}.customer.start".to_owned(),
        occurred_at: "2026-03-01T12:00:00.250Z".to_owned(),
        attempt,
        event: json!({"conversationId": "3b0f2c1e", "participants": [{"purpose": "customer"}]}),
    }
}

fn secrets(values: &[&str]) -> Vec<SecretString> {
    values
        .iter()
        .map(|v| SecretString::from((*v).to_owned()))
        .collect()
}

fn header<'h>(headers: &'h [(&'static str, String)], name: &str) -> &'h str {
    headers
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {name} header in {headers:?}"))
}

/// Opens an encrypted body with aws-lc-rs alone, as the README tells receivers to.
fn open_independently(wire: &[u8], key: [u8; 32]) -> Delivery {
    let value: Value = serde_json::from_slice(wire).unwrap();
    let sealed = &value["encrypted"];
    assert_eq!(sealed["alg"], "A256GCM");
    let nonce = STANDARD.decode(sealed["nonce"].as_str().unwrap()).unwrap();
    let mut ciphertext = STANDARD
        .decode(sealed["ciphertext"].as_str().unwrap())
        .unwrap();
    let aad = value["deliveryId"].as_str().unwrap().as_bytes().to_vec();
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &key).unwrap());
    let plain = key
        .open_in_place(
            Nonce::try_assume_unique_for_key(&nonce).unwrap(),
            Aad::from(aad),
            &mut ciphertext,
        )
        .unwrap();
    serde_json::from_slice(plain).unwrap()
}

#[test]
fn the_signature_matches_an_independent_hmac() {
    let delivery = delivery(1);
    let wire = body(&delivery, None).unwrap();
    let timestamp = 1_772_366_400;
    let headers = signature_headers(
        &delivery.delivery_id,
        timestamp,
        &wire,
        &secrets(&[NEW_SECRET]),
    )
    .unwrap();
    assert_eq!(header(&headers, "webhook-id"), delivery.delivery_id);
    assert_eq!(header(&headers, "webhook-timestamp"), "1772366400");
    let text = std::str::from_utf8(&wire).unwrap();
    assert_eq!(
        header(&headers, "webhook-signature"),
        sign::standard_webhooks(NEW_SECRET, &delivery.delivery_id, timestamp, text)
    );
}

#[test]
fn during_rotation_both_signatures_are_sent_and_each_verifies() {
    let delivery = delivery(2);
    let wire = body(&delivery, None).unwrap();
    let text = std::str::from_utf8(&wire).unwrap();
    let timestamp = 1_772_366_401;
    let headers = signature_headers(
        &delivery.delivery_id,
        timestamp,
        &wire,
        &secrets(&[NEW_SECRET, OLD_SECRET]),
    )
    .unwrap();
    let listed: Vec<&str> = header(&headers, "webhook-signature").split(' ').collect();
    assert_eq!(listed.len(), 2, "{listed:?}");
    for (entry, secret) in listed.iter().zip([NEW_SECRET, OLD_SECRET]) {
        assert_eq!(
            *entry,
            sign::standard_webhooks(secret, &delivery.delivery_id, timestamp, text)
        );
    }
    assert_ne!(listed[0], listed[1]);
}

#[test]
fn both_official_vectors_come_out_of_signature_headers() {
    let vectors = [
        (
            OLD_SECRET,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            r#"{"test": 2432232314}"#,
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        ),
        (
            NEW_SECRET,
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            1_649_367_553,
            r#"{"email":"test@example.com","username":"test_user"}"#,
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=",
        ),
    ];
    for (secret, id, timestamp, body, expected) in vectors {
        let headers =
            signature_headers(id, timestamp, body.as_bytes(), &secrets(&[secret])).unwrap();
        assert_eq!(header(&headers, "webhook-signature"), expected);
        assert_eq!(header(&headers, "webhook-id"), id);
        assert_eq!(header(&headers, "webhook-timestamp"), timestamp.to_string());
    }
}

#[test]
fn an_encrypted_body_opens_with_aws_lc_directly_and_its_signature_verifies() {
    let delivery = delivery(3);
    let key = EncryptionKey::from_bytes("2026-03", KEY);
    let wire = body(&delivery, Some(&key)).unwrap();

    let value: Value = serde_json::from_slice(&wire).unwrap();
    assert_eq!(value["version"], "1");
    assert_eq!(value["deliveryId"], json!(delivery.delivery_id));
    assert_eq!(value["encrypted"]["kid"], "2026-03");
    assert_eq!(open_independently(&wire, KEY), delivery);

    // The signature covers the bytes on the wire, ciphertext included.
    let timestamp = 1_772_366_402;
    let headers = signature_headers(
        &delivery.delivery_id,
        timestamp,
        &wire,
        &secrets(&[NEW_SECRET]),
    )
    .unwrap();
    assert_eq!(
        header(&headers, "webhook-signature"),
        sign::standard_webhooks(
            NEW_SECRET,
            &delivery.delivery_id,
            timestamp,
            std::str::from_utf8(&wire).unwrap()
        )
    );
}

#[test]
fn a_body_sealed_with_aws_lc_directly_decrypts() {
    let delivery = delivery(1);
    let nonce = [0x42; 12];
    let mut ciphertext = serde_json::to_vec(&delivery).unwrap();
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &KEY).unwrap())
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(delivery.delivery_id.as_bytes()),
            &mut ciphertext,
        )
        .unwrap();
    let wire = serde_json::to_vec(&json!({
        "version": "1",
        "deliveryId": delivery.delivery_id,
        "encrypted": {
            "alg": "A256GCM",
            "kid": "2026-03",
            "nonce": STANDARD.encode(nonce),
            "ciphertext": STANDARD.encode(&ciphertext),
        }
    }))
    .unwrap();
    let key = EncryptionKey::from_bytes("2026-03", KEY);
    assert_eq!(decrypt(&wire, &key).unwrap(), delivery);

    // Sealed without the delivery id as associated data: not accepted.
    let mut unbound = serde_json::to_vec(&delivery).unwrap();
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &KEY).unwrap())
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::empty(),
            &mut unbound,
        )
        .unwrap();
    let mut value: Value = serde_json::from_slice(&wire).unwrap();
    value["encrypted"]["ciphertext"] = json!(STANDARD.encode(&unbound));
    assert!(decrypt(&serde_json::to_vec(&value).unwrap(), &key).is_err());
}

#[test]
fn a_key_secret_from_secrets_manager_parses_into_the_same_key() {
    let raw = SecretString::from(format!(
        r#"{{"keyId":"2026-03","key":"{}"}}"#,
        STANDARD.encode(KEY)
    ));
    let key = EncryptionKey::parse(&raw).unwrap();
    assert_eq!(key.key_id, "2026-03");
    let wire = body(&delivery(1), Some(&key)).unwrap();
    assert_eq!(open_independently(&wire, KEY), delivery(1));
}

#[test]
fn retries_keep_the_delivery_id() {
    let first = delivery(1);
    let retry = delivery(4);
    assert_eq!(first.delivery_id, retry.delivery_id);
    assert_ne!(
        first.delivery_id,
        delivery_id("https://other.example.com/hook", &first.event_key)
    );
}

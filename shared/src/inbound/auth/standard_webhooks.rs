//! The Standard Webhooks signature (standard-webhooks/standard-webhooks): HMAC-SHA256 over
//! `{webhook-id}.{webhook-timestamp}.{body}`, keyed with the decoded `whsec_` secret, in a
//! space-separated list of `v1,<base64>` entries, with a ±300 s replay window.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD as BASE64};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use http::HeaderName;
use secrecy::ExposeSecret;

use super::ct::{hmac_sha256, matches_any};
use super::{header_str, AuthFailure, Keys, SignedRequest};

/// How far the signed timestamp may be from now, either way (the reference libraries' value).
pub const TOLERANCE_SECS: u64 = 300;

const ID: HeaderName = HeaderName::from_static("webhook-id");
const TIMESTAMP: HeaderName = HeaderName::from_static("webhook-timestamp");
const SIGNATURE: HeaderName = HeaderName::from_static("webhook-signature");
const SECRET_PREFIX: &str = "whsec_";
const VERSION: &str = "v1";

/// Secrets are read with or without base64 padding: their encoding is configuration, not input.
const SECRET_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The `webhook-signature` value (`v1,<base64>`) that `secret` (`whsec_...` or bare base64) puts
/// on a message; for tests and the CLI. Fails only when the secret is not base64.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Result<String, AuthFailure> {
    let key = decode_secret(secret).ok_or(AuthFailure::InvalidKey)?;
    let mac = hmac_sha256(
        &key,
        &signed_parts(id.as_bytes(), &timestamp.to_string(), body),
    );
    Ok(format!("{VERSION},{}", BASE64.encode(mac)))
}

/// Accepts the request when its timestamp is within [`TOLERANCE_SECS`] of `now` and any `v1`
/// signature in the header equals the HMAC under any usable key.
pub(crate) fn verify(
    req: &SignedRequest<'_>,
    keys: &Keys,
    now: SystemTime,
) -> Result<(), AuthFailure> {
    let secrets = keys.require_secrets()?;
    let id = header_str(req.headers, &ID)?;
    let timestamp = parse_timestamp(header_str(req.headers, &TIMESTAMP)?)?;
    let signatures = parse_signatures(header_str(req.headers, &SIGNATURE)?)?;
    if timestamp.abs_diff(unix_seconds(now)) > TOLERANCE_SECS {
        return Err(AuthFailure::StaleTimestamp);
    }

    let usable: Vec<Vec<u8>> = secrets
        .iter()
        .filter_map(|secret| decode_secret(secret.expose_secret()))
        .collect();
    if usable.len() < secrets.len() {
        tracing::warn!(
            unusable = secrets.len() - usable.len(),
            "standard webhooks secret is not whsec_ + base64; skipped"
        );
    }
    if usable.is_empty() {
        return Err(AuthFailure::InvalidKey);
    }

    // The reference libraries sign the timestamp as the integer they parsed, so do the same.
    let timestamp = timestamp.to_string();
    let parts = signed_parts(id.as_bytes(), &timestamp, req.body);
    let expected: Vec<Vec<u8>> = usable.iter().map(|key| hmac_sha256(key, &parts)).collect();
    let mut found = false;
    for signature in &signatures {
        // Non-short-circuiting: every presented signature is checked against every key.
        found |= matches_any(&expected, signature);
    }
    if found {
        Ok(())
    } else {
        Err(AuthFailure::Mismatch)
    }
}

/// The message pieces in signing order: `id`, `.`, `timestamp`, `.`, `body`.
fn signed_parts<'p>(id: &'p [u8], timestamp: &'p str, body: &'p [u8]) -> [&'p [u8]; 5] {
    [id, b".", timestamp.as_bytes(), b".", body]
}

/// The HMAC key in a `whsec_<base64>` (or bare base64) secret; `None` if it is not base64 or empty.
fn decode_secret(secret: &str) -> Option<Vec<u8>> {
    let encoded = secret.trim();
    let encoded = encoded.strip_prefix(SECRET_PREFIX).unwrap_or(encoded);
    SECRET_BASE64
        .decode(encoded)
        .ok()
        .filter(|key| !key.is_empty())
}

/// Unix seconds: plain ASCII digits only (no sign, no fraction), within `i64`.
fn parse_timestamp(value: &str) -> Result<i64, AuthFailure> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AuthFailure::Malformed(
            "webhook-timestamp is not unix seconds",
        ));
    }
    value
        .parse()
        .map_err(|_| AuthFailure::Malformed("webhook-timestamp is out of range"))
}

/// The decoded digests of every well-formed `v1,<base64>` entry; other versions are skipped as the
/// spec says. No usable entry at all is malformed (a re-read of the secrets could not help).
fn parse_signatures(value: &str) -> Result<Vec<Vec<u8>>, AuthFailure> {
    let decoded: Vec<Vec<u8>> = value
        .split_ascii_whitespace()
        .filter_map(|entry| entry.split_once(','))
        .filter(|(version, _)| *version == VERSION)
        .filter_map(|(_, signature)| BASE64.decode(signature).ok())
        .filter(|digest| !digest.is_empty())
        .collect();
    if decoded.is_empty() {
        Err(AuthFailure::Malformed(
            "webhook-signature has no v1 signature",
        ))
    } else {
        Ok(decoded)
    }
}

/// `now` as signed Unix seconds, negative before 1970 rather than a panic.
fn unix_seconds(now: SystemTime) -> i64 {
    match now.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_secs()).map_or(i64::MIN, |s| -s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, HeaderValue};
    use std::time::Duration;

    struct Vector {
        secret: &'static str,
        id: &'static str,
        timestamp: i64,
        body: &'static str,
        signature: &'static str,
    }

    // Both official vectors from the tests of the Standard Webhooks reference libraries.
    const VECTOR_1: Vector = Vector {
        secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        id: "msg_p5jXN8AQM9LWM0D4loKWxJek",
        timestamp: 1_614_265_330,
        body: r#"{"test": 2432232314}"#,
        signature: "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    };
    const VECTOR_2: Vector = Vector {
        secret: "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
        id: "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
        timestamp: 1_649_367_553,
        body: r#"{"email":"test@example.com","username":"test_user"}"#,
        signature: "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=",
    };

    fn at(seconds: i64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(u64::try_from(seconds).unwrap())
    }

    fn check_parts(
        id: &str,
        timestamp: &str,
        signature: &str,
        body: &str,
        keys: &Keys,
        now: SystemTime,
    ) -> Result<(), AuthFailure> {
        let mut headers = HeaderMap::new();
        headers.insert(ID, HeaderValue::from_str(id).unwrap());
        headers.insert(TIMESTAMP, HeaderValue::from_str(timestamp).unwrap());
        headers.insert(SIGNATURE, HeaderValue::from_str(signature).unwrap());
        let req = SignedRequest {
            url: "https://relay.example.com/sw",
            headers: &headers,
            body: body.as_bytes(),
        };
        verify(&req, keys, now)
    }

    fn check_vector(v: &Vector, signature: &str, now: SystemTime) -> Result<(), AuthFailure> {
        let keys = Keys::from_secrets([v.secret]);
        check_parts(
            v.id,
            &v.timestamp.to_string(),
            signature,
            v.body,
            &keys,
            now,
        )
    }

    #[test]
    fn official_vector_1_verifies() {
        assert_eq!(
            check_vector(&VECTOR_1, VECTOR_1.signature, at(VECTOR_1.timestamp)),
            Ok(())
        );
    }

    #[test]
    fn official_vector_2_verifies() {
        assert_eq!(
            check_vector(&VECTOR_2, VECTOR_2.signature, at(VECTOR_2.timestamp)),
            Ok(())
        );
    }

    #[test]
    fn sign_reproduces_both_official_vectors() {
        for v in [&VECTOR_1, &VECTOR_2] {
            assert_eq!(
                sign(v.secret, v.id, v.timestamp, v.body.as_bytes()).unwrap(),
                v.signature
            );
        }
    }

    #[test]
    fn secret_without_whsec_prefix_is_accepted() {
        let bare = VECTOR_1.secret.trim_start_matches("whsec_");
        assert_eq!(
            sign(
                bare,
                VECTOR_1.id,
                VECTOR_1.timestamp,
                VECTOR_1.body.as_bytes()
            )
            .unwrap(),
            VECTOR_1.signature
        );
        let keys = Keys::from_secrets([bare]);
        let ts = VECTOR_1.timestamp.to_string();
        assert_eq!(
            check_parts(
                VECTOR_1.id,
                &ts,
                VECTOR_1.signature,
                VECTOR_1.body,
                &keys,
                at(VECTOR_1.timestamp)
            ),
            Ok(())
        );
    }

    #[test]
    fn any_listed_signature_may_match() {
        let header = format!("v1,Zm9vYmFy v2,abc {} v1a,xyz", VECTOR_1.signature);
        assert_eq!(
            check_vector(&VECTOR_1, &header, at(VECTOR_1.timestamp)),
            Ok(())
        );
    }

    #[test]
    fn any_active_key_may_match_during_rotation() {
        let keys = Keys::from_secrets([VECTOR_2.secret, VECTOR_1.secret]);
        let ts = VECTOR_1.timestamp.to_string();
        assert_eq!(
            check_parts(
                VECTOR_1.id,
                &ts,
                VECTOR_1.signature,
                VECTOR_1.body,
                &keys,
                at(VECTOR_1.timestamp)
            ),
            Ok(())
        );
    }

    #[test]
    fn wrong_key_is_a_mismatch_that_may_be_rotation() {
        let keys = Keys::from_secrets([VECTOR_2.secret]);
        let ts = VECTOR_1.timestamp.to_string();
        let failure = check_parts(
            VECTOR_1.id,
            &ts,
            VECTOR_1.signature,
            VECTOR_1.body,
            &keys,
            at(VECTOR_1.timestamp),
        )
        .unwrap_err();
        assert_eq!(failure, AuthFailure::Mismatch);
        assert!(failure.may_be_rotation());
    }

    #[test]
    fn tampered_body_id_or_timestamp_do_not_match() {
        let keys = Keys::from_secrets([VECTOR_1.secret]);
        let ts = VECTOR_1.timestamp.to_string();
        let now = at(VECTOR_1.timestamp);
        assert_eq!(
            check_parts(
                VECTOR_1.id,
                &ts,
                VECTOR_1.signature,
                r#"{"test": 2432232315}"#,
                &keys,
                now
            ),
            Err(AuthFailure::Mismatch)
        );
        assert_eq!(
            check_parts(
                "msg_other",
                &ts,
                VECTOR_1.signature,
                VECTOR_1.body,
                &keys,
                now
            ),
            Err(AuthFailure::Mismatch)
        );
        let shifted = (VECTOR_1.timestamp + 1).to_string();
        assert_eq!(
            check_parts(
                VECTOR_1.id,
                &shifted,
                VECTOR_1.signature,
                VECTOR_1.body,
                &keys,
                now
            ),
            Err(AuthFailure::Mismatch)
        );
    }

    #[test]
    fn empty_and_bare_v1_signatures_are_rejected() {
        let now = at(VECTOR_1.timestamp);
        for header in ["", " ", "v1,", "v1", "v1, ", ","] {
            let result = check_vector(&VECTOR_1, header, now);
            assert!(
                matches!(result, Err(AuthFailure::Malformed(_))),
                "{header:?}: {result:?}"
            );
        }
    }

    #[test]
    fn truncated_signatures_are_rejected() {
        let now = at(VECTOR_1.timestamp);
        let digest = BASE64.decode(&VECTOR_1.signature[3..]).unwrap();
        // A valid prefix of the real digest: the bug that compared up to the shorter length.
        for len in [1, 16, 31] {
            let header = format!("v1,{}", BASE64.encode(&digest[..len]));
            assert_eq!(
                check_vector(&VECTOR_1, &header, now),
                Err(AuthFailure::Mismatch),
                "{len}"
            );
        }
        // The base64 text cut short no longer decodes at all.
        let cut = &VECTOR_1.signature[..VECTOR_1.signature.len() - 2];
        assert!(check_vector(&VECTOR_1, cut, now).is_err());
    }

    #[test]
    fn wrong_version_prefix_is_rejected() {
        let now = at(VECTOR_1.timestamp);
        let b64 = &VECTOR_1.signature[3..];
        for header in [
            format!("v2,{b64}"),
            format!("V1,{b64}"),
            format!("v1a,{b64}"),
            format!("v1={b64}"),
            b64.to_owned(),
        ] {
            assert!(check_vector(&VECTOR_1, &header, now).is_err(), "{header}");
        }
    }

    #[test]
    fn non_base64_signature_is_rejected() {
        let now = at(VECTOR_1.timestamp);
        for header in [
            "v1,not base64!",
            "v1,!!!!",
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE",
        ] {
            assert!(check_vector(&VECTOR_1, header, now).is_err(), "{header}");
        }
    }

    #[test]
    fn timestamp_tolerance_is_300_seconds_each_way() {
        let ts = VECTOR_1.timestamp;
        assert_eq!(
            check_vector(&VECTOR_1, VECTOR_1.signature, at(ts + 300)),
            Ok(())
        );
        assert_eq!(
            check_vector(&VECTOR_1, VECTOR_1.signature, at(ts - 300)),
            Ok(())
        );
        assert_eq!(
            check_vector(&VECTOR_1, VECTOR_1.signature, at(ts + 301)),
            Err(AuthFailure::StaleTimestamp)
        );
        assert_eq!(
            check_vector(&VECTOR_1, VECTOR_1.signature, at(ts - 301)),
            Err(AuthFailure::StaleTimestamp)
        );
        assert!(!AuthFailure::StaleTimestamp.may_be_rotation());
    }

    #[test]
    fn malformed_timestamps_are_rejected_without_panicking() {
        let keys = Keys::from_secrets([VECTOR_1.secret]);
        for ts in [
            "",
            "abc",
            "-1614265330",
            "+1614265330",
            "1614265330.5",
            "99999999999999999999999",
        ] {
            let result = check_parts(
                VECTOR_1.id,
                ts,
                VECTOR_1.signature,
                VECTOR_1.body,
                &keys,
                at(VECTOR_1.timestamp),
            );
            assert!(
                matches!(
                    result,
                    Err(AuthFailure::Malformed(_)) | Err(AuthFailure::MissingHeader(_))
                ),
                "{ts:?}: {result:?}"
            );
        }
        // Extreme but valid values only ever fail as stale.
        let max = i64::MAX.to_string();
        let result = check_parts(
            VECTOR_1.id,
            &max,
            VECTOR_1.signature,
            VECTOR_1.body,
            &keys,
            UNIX_EPOCH - Duration::from_secs(10),
        );
        assert_eq!(result, Err(AuthFailure::StaleTimestamp));
    }

    #[test]
    fn missing_headers_are_reported_by_name() {
        let keys = Keys::from_secrets([VECTOR_1.secret]);
        for missing in [&ID, &TIMESTAMP, &SIGNATURE] {
            let mut headers = HeaderMap::new();
            headers.insert(ID, HeaderValue::from_static(VECTOR_1.id));
            headers.insert(TIMESTAMP, HeaderValue::from_static("1614265330"));
            headers.insert(SIGNATURE, HeaderValue::from_static(VECTOR_1.signature));
            headers.remove(missing);
            let req = SignedRequest {
                url: "https://relay.example.com/sw",
                headers: &headers,
                body: VECTOR_1.body.as_bytes(),
            };
            assert_eq!(
                verify(&req, &keys, at(VECTOR_1.timestamp)),
                Err(AuthFailure::MissingHeader(missing.as_str().to_owned()))
            );
        }
    }

    #[test]
    fn unusable_secrets_are_skipped_and_alone_are_invalid() {
        let ts = VECTOR_1.timestamp.to_string();
        let now = at(VECTOR_1.timestamp);
        let only_bad = Keys::from_secrets(["whsec_not*base64", "whsec_"]);
        assert_eq!(
            check_parts(
                VECTOR_1.id,
                &ts,
                VECTOR_1.signature,
                VECTOR_1.body,
                &only_bad,
                now
            ),
            Err(AuthFailure::InvalidKey)
        );
        let mixed = Keys::from_secrets(["whsec_not*base64", VECTOR_1.secret]);
        assert_eq!(
            check_parts(
                VECTOR_1.id,
                &ts,
                VECTOR_1.signature,
                VECTOR_1.body,
                &mixed,
                now
            ),
            Ok(())
        );
        assert_eq!(
            sign("whsec_not*base64", "id", 1, b""),
            Err(AuthFailure::InvalidKey)
        );
    }

    #[test]
    fn unix_seconds_handles_times_before_the_epoch() {
        assert_eq!(unix_seconds(UNIX_EPOCH - Duration::from_secs(5)), -5);
        assert_eq!(unix_seconds(at(1_614_265_330)), 1_614_265_330);
    }
}

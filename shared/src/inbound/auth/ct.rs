//! The MAC and constant-time comparison primitives every scheme shares, so that no scheme carries
//! its own copy of the code that decides whether a secret-derived value matches.

use hmac::digest::core_api::BlockSizeUser;
use hmac::digest::{Digest, Key, KeyInit, Mac};
use hmac::SimpleHmac;
use sha1::Sha1;
use sha2::Sha256;
use subtle::{Choice, ConstantTimeEq};

/// Constant-time equality of two byte strings; different lengths never match (unlike a compare
/// that stops at the shorter length, which let `v1,` pass in one reference crate).
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    bool::from(a.ct_eq(b))
}

/// Constant-time equality of a presented credential and a stored one, compared as SHA-256 digests
/// so that neither the content nor the length of the stored secret shows in the timing.
pub(crate) fn ct_eq_secret(presented: &[u8], secret: &[u8]) -> bool {
    ct_eq(&Sha256::digest(presented), &Sha256::digest(secret))
}

/// True when `presented` equals any of `expected`, checking every candidate (no early exit), so the
/// timing does not tell which key or URL variant matched.
pub(crate) fn matches_any<I, E>(expected: I, presented: &[u8]) -> bool
where
    I: IntoIterator<Item = E>,
    E: AsRef<[u8]>,
{
    let found = expected
        .into_iter()
        .fold(Choice::from(0), |acc, candidate| {
            acc | candidate.as_ref().ct_eq(presented)
        });
    bool::from(found)
}

/// HMAC-SHA256 of the concatenated `parts`.
pub(crate) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    hmac::<Sha256>(key, parts)
}

/// HMAC-SHA1 of the concatenated `parts` (Twilio's legacy Auth Token signature).
pub(crate) fn hmac_sha1(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    hmac::<Sha1>(key, parts)
}

/// HMAC over `parts` with a key of any length.
///
/// `new_from_slice` returns a `Result` although HMAC accepts every key length, so the key is
/// brought to the block size here exactly as RFC 2104 section 2 says (a longer key is hashed
/// first, then zero-padded) and the infallible constructor is used: no unwrap on any input.
fn hmac<D: Digest + BlockSizeUser>(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut block = Key::<SimpleHmac<D>>::default();
    let hashed;
    let source: &[u8] = if key.len() > block.len() {
        hashed = D::digest(key);
        &hashed
    } else {
        key
    };
    block
        .iter_mut()
        .zip(source)
        .for_each(|(slot, byte)| *slot = *byte);
    let mut mac = <SimpleHmac<D> as KeyInit>::new(&block);
    for part in parts {
        Mac::update(&mut mac, part);
    }
    mac.finalize().into_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_sha256_matches_rfc4231_short_key() {
        // RFC 4231 test case 2.
        let mac = hmac_sha256(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn hmac_sha256_matches_rfc4231_key_longer_than_block() {
        // RFC 4231 test case 6: a 131-byte key must be hashed before use.
        let key = [0xaa_u8; 131];
        let mac = hmac_sha256(
            &key,
            &[b"Test Using Larger Than Block-Size Key - Hash Key First"],
        );
        assert_eq!(
            hex::encode(mac),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn hmac_sha1_matches_rfc2202_vectors() {
        // RFC 2202 test cases 2 and 6 (the latter with an 80-byte key).
        assert_eq!(
            hex::encode(hmac_sha1(b"Jefe", &[b"what do ya want for nothing?"])),
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
        );
        assert_eq!(
            hex::encode(hmac_sha1(
                &[0xaa_u8; 80],
                &[b"Test Using Larger Than Block-Size Key - Hash Key First"]
            )),
            "aa4ae5e15272d00e95705637ce8a3b55ed402112"
        );
    }

    #[test]
    fn ct_eq_requires_equal_length() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"ab"));
        assert!(!ct_eq(b"", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
    }

    #[test]
    fn ct_eq_secret_compares_content() {
        assert!(ct_eq_secret(b"token", b"token"));
        assert!(!ct_eq_secret(b"token", b"token2"));
        assert!(!ct_eq_secret(b"", b"token"));
    }

    #[test]
    fn matches_any_finds_a_match_anywhere_and_nothing_otherwise() {
        assert!(matches_any([b"one".as_slice(), b"two"], b"two"));
        assert!(!matches_any([b"one".as_slice(), b"two"], b"tw"));
        assert!(!matches_any(Vec::<Vec<u8>>::new(), b""));
    }
}

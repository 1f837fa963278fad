//! The E.164 check Twilio applies to `To`, done locally so a malformed number never costs a request.

/// Whether `number` is E.164 (`^\+[1-9]\d{1,14}$`): a number that fails this is refused by Twilio
/// with 21211 anyway, so it is refused before any request is made.
pub fn is_e164(number: &str) -> bool {
    let Some(digits) = number.strip_prefix('+') else {
        return false;
    };
    let bytes = digits.as_bytes();
    (2..=15).contains(&bytes.len())
        && matches!(bytes.first(), Some(b'1'..=b'9'))
        && bytes.iter().all(u8::is_ascii_digit)
}

#[cfg(test)]
mod tests {
    use super::is_e164;

    #[test]
    fn accepts_plus_then_two_to_fifteen_digits_not_starting_with_zero() {
        for good in ["+14158675309", "+447700900123", "+12", "+123456789012345"] {
            assert!(is_e164(good), "{good}");
        }
    }

    #[test]
    fn refuses_everything_else() {
        for bad in [
            "",
            "+",
            "+1",
            "14158675309",
            "+04158675309",
            "+1234567890123456",
            "+1 415 867 5309",
            "+1-415-867-5309",
            "+1415867530x",
            " +14158675309",
            "+14158675309 ",
            "+١٢٣٤٥٦",
            "whatsapp:+14158675309",
        ] {
            assert!(!is_e164(bad), "{bad:?}");
        }
    }
}

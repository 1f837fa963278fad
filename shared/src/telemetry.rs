//! What may appear in logs: phone numbers only masked, secrets never.

/// Masks a phone number for logs, keeping just enough to tell numbers apart when debugging
/// (`+14158675309` → `+14*******09`). Anything short is masked whole.
pub fn mask_phone(number: &str) -> String {
    let chars: Vec<char> = number.trim().chars().collect();
    let plus = usize::from(chars.first() == Some(&'+'));
    let digits = &chars[plus..];
    if digits.len() < 6 {
        return "*".repeat(chars.len().max(1));
    }
    let (head, tail) = (2, 2);
    let mut masked: String = chars[..plus].iter().collect();
    masked.extend(&digits[..head]);
    masked.extend(std::iter::repeat_n('*', digits.len() - head - tail));
    masked.extend(&digits[digits.len() - tail..]);
    masked
}

#[cfg(test)]
mod tests {
    use super::mask_phone;

    #[test]
    fn keeps_only_the_ends_of_a_number() {
        assert_eq!(mask_phone("+14158675309"), "+14*******09");
        assert_eq!(mask_phone("447700900123"), "44********23");
        assert_eq!(mask_phone("+123"), "****");
        assert_eq!(mask_phone(""), "*");
        assert!(!mask_phone("+14158675309").contains("867"));
    }
}

//! How many SMS segments a body costs: Twilio bills per segment, and one character outside the
//! GSM-7 alphabet turns the whole message into UCS-2, which more than halves the room per segment.

use std::fmt;

/// The longest body Twilio accepts, in characters; a longer one is refused with 21617.
pub const MAX_BODY_CHARS: usize = 1600;

/// The GSM 03.38 default alphabet: one septet each.
const GSM7_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
/// The GSM 03.38 extension table: an escape septet plus one, so two septets each.
const GSM7_EXTENSION: &str = "\u{0C}^{}\\[~]|€";

/// The encoding a body is sent in, which decides the room per segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmsEncoding {
    /// Every character is in the GSM-7 alphabet: 160 septets in one segment, 153 per segment when
    /// split (the rest is the concatenation header).
    Gsm7,
    /// At least one character is not: 70 UTF-16 code units in one segment, 67 when split.
    Ucs2,
}

impl fmt::Display for SmsEncoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Gsm7 => "GSM-7",
            Self::Ucs2 => "UCS-2",
        })
    }
}

/// The septets a character costs in GSM-7, or `None` when it forces UCS-2.
fn gsm7_cost(c: char) -> Option<u32> {
    if GSM7_BASIC.contains(c) {
        Some(1)
    } else if GSM7_EXTENSION.contains(c) {
        Some(2)
    } else {
        None
    }
}

/// Packs units of the given costs into segments: everything in one when it fits `single`, else
/// greedily into segments of `split`, never cutting an escape pair or a surrogate pair in two
/// (which is why a split message can need one segment more than a plain division says).
fn pack(costs: impl Iterator<Item = u32> + Clone, single: u32, split: u32) -> u32 {
    let total: u32 = costs.clone().sum();
    if total == 0 {
        return 0;
    }
    if total <= single {
        return 1;
    }
    let (mut segments, mut used) = (1, 0);
    for cost in costs {
        if used + cost > split {
            segments += 1;
            used = 0;
        }
        used += cost;
    }
    segments
}

/// The encoding and segment count of `body`, as Twilio will bill it; logged before each send so a
/// template that unexpectedly turned UCS-2 (a curly quote, an emoji) shows up. An empty body takes
/// no segment.
pub fn segments(body: &str) -> (SmsEncoding, u32) {
    let gsm7: Option<Vec<u32>> = body.chars().map(gsm7_cost).collect();
    match gsm7 {
        Some(costs) => (SmsEncoding::Gsm7, pack(costs.into_iter(), 160, 153)),
        None => {
            let units = body.chars().map(|c| c.len_utf16() as u32);
            (SmsEncoding::Ucs2, pack(units, 70, 67))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gsm7_fits_160_in_one_segment_and_153_per_segment_after() {
        assert_eq!(segments(""), (SmsEncoding::Gsm7, 0));
        assert_eq!(segments("a"), (SmsEncoding::Gsm7, 1));
        assert_eq!(segments(&"a".repeat(160)), (SmsEncoding::Gsm7, 1));
        assert_eq!(segments(&"a".repeat(161)), (SmsEncoding::Gsm7, 2));
        assert_eq!(segments(&"a".repeat(306)), (SmsEncoding::Gsm7, 2));
        assert_eq!(segments(&"a".repeat(307)), (SmsEncoding::Gsm7, 3));
        assert_eq!(segments(&"a".repeat(1600)), (SmsEncoding::Gsm7, 11));
    }

    #[test]
    fn gsm7_accented_letters_and_greek_stay_gsm7() {
        assert_eq!(
            segments("Ça va? ¿Qué tal? ΔΦΓ £5 @home_x §1"),
            (SmsEncoding::Gsm7, 1)
        );
        assert_eq!(segments("line\r\nbreak"), (SmsEncoding::Gsm7, 1));
    }

    #[test]
    fn gsm7_extension_characters_count_twice() {
        for c in ['^', '{', '}', '\\', '[', '~', ']', '|', '€', '\u{0C}'] {
            let body = format!("{}{c}", "a".repeat(158));
            assert_eq!(
                segments(&body),
                (SmsEncoding::Gsm7, 1),
                "{c:?} in 160 septets"
            );
            let body = format!("{}{c}", "a".repeat(159));
            assert_eq!(
                segments(&body),
                (SmsEncoding::Gsm7, 2),
                "{c:?} in 161 septets"
            );
        }
        assert_eq!(segments(&"€".repeat(80)), (SmsEncoding::Gsm7, 1));
        assert_eq!(segments(&"€".repeat(81)), (SmsEncoding::Gsm7, 2));
    }

    #[test]
    fn gsm7_never_splits_an_escape_pair() {
        // 152 septets, then a two-septet character that would straddle the 153 boundary.
        let body = format!("{}€{}", "a".repeat(152), "a".repeat(10));
        assert_eq!(segments(&body), (SmsEncoding::Gsm7, 2));
        // 152 + 2 + 151 = 305 septets: a plain division says 2 segments, the pair pushes it to 3.
        let body = format!("{}€{}", "a".repeat(152), "a".repeat(152));
        assert_eq!(segments(&body), (SmsEncoding::Gsm7, 3));
    }

    #[test]
    fn ucs2_fits_70_in_one_segment_and_67_per_segment_after() {
        assert_eq!(segments(&"ж".repeat(70)), (SmsEncoding::Ucs2, 1));
        assert_eq!(segments(&"ж".repeat(71)), (SmsEncoding::Ucs2, 2));
        assert_eq!(segments(&"ж".repeat(134)), (SmsEncoding::Ucs2, 2));
        assert_eq!(segments(&"ж".repeat(135)), (SmsEncoding::Ucs2, 3));
    }

    #[test]
    fn one_non_gsm_character_turns_the_whole_body_ucs2() {
        let body = format!("{}’", "a".repeat(69));
        assert_eq!(segments(&body), (SmsEncoding::Ucs2, 1));
        let body = format!("{}’", "a".repeat(70));
        assert_eq!(segments(&body), (SmsEncoding::Ucs2, 2));
        assert_eq!(segments("back`tick").0, SmsEncoding::Ucs2);
    }

    #[test]
    fn emoji_count_as_two_utf16_units_and_are_not_split() {
        assert_eq!(segments("😀").0, SmsEncoding::Ucs2);
        assert_eq!(segments(&"😀".repeat(35)), (SmsEncoding::Ucs2, 1));
        assert_eq!(segments(&"😀".repeat(36)), (SmsEncoding::Ucs2, 2));
        // 66 units then a surrogate pair: it cannot share the first 67-unit segment.
        let body = format!("{}😀{}", "ж".repeat(66), "ж".repeat(10));
        assert_eq!(segments(&body), (SmsEncoding::Ucs2, 2));
        let body = format!("{}😀{}", "ж".repeat(66), "ж".repeat(66));
        assert_eq!(segments(&body), (SmsEncoding::Ucs2, 3));
    }
}

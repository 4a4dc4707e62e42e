//! Text a person types (names, passwords): no control characters, no bidirectional
//! overrides (they make a name display as something else), and something visible.

/// Unicode bidirectional embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Format characters that display as nothing: zero-width space and joiners, marks, word
/// joiner and invisible operators, the byte-order mark, soft hyphen and the like.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}' | '\u{180B}'
            ..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{2060}'..='\u{2064}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}' | '\u{FFA0}'
    ) || is_bidi_control(c)
}

/// Why `s` cannot be a name or password a person typed, if it cannot.
pub fn refusal(s: &str) -> Option<&'static str> {
    if s.chars().any(char::is_control) {
        return Some("must not contain control characters");
    }
    if s.chars().any(is_bidi_control) {
        return Some("must not contain bidirectional override characters");
    }
    if s.chars().all(|c| c.is_whitespace() || is_invisible(c)) {
        return Some("must contain visible characters");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_person_may_type() {
        for ok in ["billing", "Äpfel Key", "👩\u{200D}💻 team", "نام\u{200C}ها", "a b"] {
            assert_eq!(refusal(ok), None, "{ok:?}");
        }
        for bad in
            ["\0\0\0", "a\u{0007}b", "\u{200B}\u{200B}", "\u{FEFF}", "admin\u{202E}txt.exe", "x\u{2066}y", " \u{200D} "]
        {
            assert!(refusal(bad).is_some(), "{bad:?}");
        }
    }
}

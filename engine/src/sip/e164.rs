//! E.164 normalisation.

/// Normalise a dialled or presented number to E.164 with a leading `+`.
/// Accepts `+15551234567`, `15551234567`, `tel:+1-555-123-4567`,
/// `sip:+15551234567@host` user parts. Returns `None` for anything that is
/// not 6–15 digits.
pub fn normalize(raw: &str) -> Option<String> {
    let s = raw.trim();
    let s = strip_scheme(s);
    let s = s.split([';', '@']).next().unwrap_or("");
    let mut digits = String::with_capacity(16);
    for (i, c) in s.chars().enumerate() {
        match c {
            '0'..='9' => digits.push(c),
            '+' if i == 0 => {}
            '-' | '.' | ' ' | '(' | ')' => {}
            _ => return None,
        }
    }
    if !(6..=15).contains(&digits.len()) {
        return None;
    }
    Some(format!("+{digits}"))
}

/// Drop a leading `tel:`, `sip:` or `sips:` (URI schemes are case-insensitive).
fn strip_scheme(s: &str) -> &str {
    for scheme in ["tel:", "sip:", "sips:"] {
        match (s.get(..scheme.len()), s.get(scheme.len()..)) {
            (Some(head), Some(rest)) if head.eq_ignore_ascii_case(scheme) => return rest,
            _ => {}
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn accepted_forms() {
        let cases = [
            ("+15551234567", "+15551234567"),
            ("15551234567", "+15551234567"),
            ("tel:+1-555-123-4567", "+15551234567"),
            ("TEL:+1.555.123.4567", "+15551234567"),
            ("+1 (555) 123-4567", "+15551234567"),
            ("  +15551234567\t", "+15551234567"),
            ("+15551234567;npdi", "+15551234567"),
            ("+15551234567;npdi;rn=+15559990000", "+15551234567"),
            ("tel:+15551234567;phone-context=example.com", "+15551234567"),
            ("+15551234567@carrier.example", "+15551234567"),
            ("sip:+15551234567@host", "+15551234567"),
            ("sips:+15551234567@host;user=phone", "+15551234567"),
            ("+123456", "+123456"),
            ("+123456789012345", "+123456789012345"),
        ];
        for (raw, want) in cases {
            assert_eq!(normalize(raw).as_deref(), Some(want), "{raw:?}");
        }
    }

    #[test]
    fn rejected_forms() {
        let cases = [
            "",
            "   ",
            "+",
            "tel:",
            "sip:@host",
            "+12345",
            "12345",
            "+1234567890123456",
            "+1555CALLNOW",
            "+1555123456x",
            "1+5551234567",
            "++15551234567",
            "alice@example.com",
            "sip:alice@example.com",
            "+1555１２３4567",
            ";npdi",
            "+()-. ",
        ];
        for raw in cases {
            assert_eq!(normalize(raw), None, "{raw:?}");
        }
    }
}

//! The header-section checks the rsip parser leaves out, run on the raw
//! bytes before it (RFC 3261 §7, §18.3, §20; the RFC 4475 torture tests):
//!
//! - the header section is UTF-8 (rsip stops reading headers at the first
//!   line that is not, silently dropping the rest);
//! - a request line is exactly `Method SP Request-URI SP SIP-Version`:
//!   single spaces, none trailing, no `<>` or quotes in the URI (RFC 4475
//!   lwsstart, trws, ltgtruri); a version other than 2.0 is refused with
//!   505 (badvers); a method rsip cannot represent is refused with 501,
//!   or 400 when its CSeq names another method (intmeth, esc02, mismatch02);
//! - every header line has a colon (rsip skips those without);
//! - To, From, Call-ID, CSeq and Max-Forwards appear once (multi01);
//! - every `Content-Length` is a number and they agree (ncl, mcl01), and
//!   a datagram holds at least the body it announces (clerr). Without one,
//!   the body is the rest of the datagram (§18.3), which rsip would drop.

use std::str::FromStr;

use rsipstack::sip::Method;

use super::message::MessageError;

/// Headers that must not appear more than once, with their compact forms.
const SINGLE: [(&str, &str); 5] = [
    ("To", "t"),
    ("From", "f"),
    ("Call-ID", "i"),
    ("CSeq", ""),
    ("Max-Forwards", ""),
];

/// What the checks learned about the message's body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Head {
    /// Offset of the body (after the blank line).
    pub body_start: usize,
    /// The agreed `Content-Length`, if the message has one.
    pub content_length: Option<usize>,
}

/// Check the start line and header section of `data`. `Ok(None)` when
/// there is no blank line (rsip reports that case itself).
pub(crate) fn check(data: &[u8]) -> Result<Option<Head>, MessageError> {
    let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let section = data.get(..end).unwrap_or_default();
    let text = std::str::from_utf8(section)
        .map_err(|_| MessageError::Parse("header section is not UTF-8".into()))?;
    // Lines end at LF with an optional CR before it, as rsip splits them
    // (a bare LF must not hide a header from these checks).
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let start = lines.next().unwrap_or_default();
    let mut counts = [0usize; SINGLE.len()];
    let mut content_length: Option<usize> = None;
    let mut cseq_method: Option<String> = None;
    for (name, value) in logical_headers(lines)? {
        for (i, (long, short)) in SINGLE.iter().enumerate() {
            if name.eq_ignore_ascii_case(long)
                || (!short.is_empty() && name.eq_ignore_ascii_case(short))
            {
                counts[i] += 1;
                if counts[i] > 1 {
                    return Err(MessageError::Repeated(long));
                }
                if i < 2 && !quotes_balanced(&value) {
                    // RFC 4475 quotbal: an unterminated display name.
                    return Err(MessageError::Parse(format!(
                        "unterminated quoted string in {long}"
                    )));
                }
            }
        }
        if name.eq_ignore_ascii_case("Content-Length") || name.eq_ignore_ascii_case("l") {
            let value = value.trim();
            if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                return Err(MessageError::BadContentLength);
            }
            // More digits than a usize holds is more body than any datagram.
            let len = value
                .parse::<usize>()
                .map_err(|_| MessageError::Truncated)?;
            if content_length.is_some_and(|prev| prev != len) {
                return Err(MessageError::BadContentLength);
            }
            content_length = Some(len);
        }
        if name.eq_ignore_ascii_case("CSeq") {
            cseq_method = value.split_whitespace().nth(1).map(str::to_owned);
        }
    }
    if !start.starts_with("SIP/") {
        request_line(start, cseq_method.as_deref())?;
    }
    let body_start = end + 4;
    if let Some(len) = content_length {
        if data.len().saturating_sub(body_start) < len {
            return Err(MessageError::Truncated);
        }
    }
    Ok(Some(Head {
        body_start,
        content_length,
    }))
}

/// Header lines as (name, value), folded continuation lines joined; a line
/// without a colon is an error (rsip would skip it silently).
fn logical_headers<'a>(
    lines: impl Iterator<Item = &'a str>,
) -> Result<Vec<(&'a str, String)>, MessageError> {
    let mut out: Vec<(&str, String)> = Vec::new();
    for line in lines {
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = out.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
                continue;
            }
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| MessageError::Parse("header line without a colon".into()))?;
        out.push((name.trim(), value.trim().to_string()));
    }
    Ok(out)
}

/// Whether every `"` opens and closes a quoted string (`\"` inside one
/// is an escaped quote).
fn quotes_balanced(value: &str) -> bool {
    let (mut quoted, mut escaped) = (false, false);
    for c in value.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            _ => {}
        }
    }
    !quoted
}

/// `Method SP Request-URI SP SIP-Version`, strictly.
fn request_line(line: &str, cseq_method: Option<&str>) -> Result<(), MessageError> {
    let parts: Vec<&str> = line.split(' ').collect();
    let [method, uri, version] = parts[..] else {
        return Err(MessageError::BadStartLine);
    };
    let bad = |s: &str| s.is_empty() || s.contains(|c: char| c.is_whitespace());
    if bad(method) || bad(uri) || bad(version) || uri.contains(['<', '>', '"']) {
        return Err(MessageError::BadStartLine);
    }
    if !version.eq_ignore_ascii_case("SIP/2.0") {
        let numeric = version
            .get(..4)
            .is_some_and(|p| p.eq_ignore_ascii_case("SIP/"))
            && version
                .get(4..)
                .and_then(|v| v.split_once('.'))
                .is_some_and(|(major, minor)| is_digits(major) && is_digits(minor));
        return Err(if numeric {
            MessageError::VersionNotSupported
        } else {
            MessageError::BadStartLine
        });
    }
    if Method::from_str(method).is_err() {
        // An extension method rsip has no variant for. Its CSeq must
        // still name it (RFC 4475 mismatch02: 400 before 501).
        return Err(match cseq_method {
            Some(m) if m == method => MessageError::UnknownMethod(method.to_string()),
            Some(_) => MessageError::CSeqMismatch,
            None => MessageError::MissingHeader("CSeq"),
        });
    }
    Ok(())
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(start: &str, headers: &str, body: &str) -> Vec<u8> {
        format!("{start}\r\n{headers}\r\n{body}").into_bytes()
    }

    const OK_HEADERS: &str = "Via: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:a@b>\r\nFrom: <sip:c@d>;tag=1\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n";

    #[test]
    fn well_formed_request_passes() {
        let m = msg("OPTIONS sip:a@b SIP/2.0", OK_HEADERS, "");
        assert_eq!(
            check(&m),
            Ok(Some(Head {
                body_start: m.len(),
                content_length: None
            }))
        );
    }

    #[test]
    fn request_line_spacing_and_uri_brackets() {
        for start in [
            "OPTIONS  sip:a@b SIP/2.0",
            "OPTIONS sip:a@b SIP/2.0 ",
            "OPTIONS sip:a@b\tSIP/2.0",
            "OPTIONS <sip:a@b> SIP/2.0",
            "OPTIONS sip:a@b; lr SIP/2.0",
            "OPTIONS sip:a@b",
            "OPTIONS sip:a@b HTTP/1.1",
        ] {
            assert_eq!(
                check(&msg(start, OK_HEADERS, "")),
                Err(MessageError::BadStartLine),
                "{start:?}"
            );
        }
        assert_eq!(
            check(&msg("OPTIONS sip:a@b SIP/7.0", OK_HEADERS, "")),
            Err(MessageError::VersionNotSupported)
        );
        assert!(check(&msg("OPTIONS sip:a@b sip/2.0", OK_HEADERS, "")).is_ok());
        // Responses keep their free-form reason phrase, even empty.
        assert!(check(&msg("SIP/2.0 100 ", OK_HEADERS, "")).is_ok());
    }

    #[test]
    fn unknown_method_is_501_unless_cseq_disagrees() {
        let h = OK_HEADERS.replace("1 OPTIONS", "1 NEWMETHOD");
        assert_eq!(
            check(&msg("NEWMETHOD sip:a@b SIP/2.0", &h, "")),
            Err(MessageError::UnknownMethod("NEWMETHOD".into()))
        );
        assert_eq!(
            check(&msg("NEWMETHOD sip:a@b SIP/2.0", OK_HEADERS, "")),
            Err(MessageError::CSeqMismatch)
        );
    }

    #[test]
    fn content_length_rules() {
        let with = |cl: &str, body: &str| {
            check(&msg(
                "OPTIONS sip:a@b SIP/2.0",
                &format!("{OK_HEADERS}{cl}\r\n"),
                body,
            ))
        };
        assert!(with("Content-Length: 2", "hi").is_ok());
        assert!(
            with("Content-Length: 2", "hi there").is_ok(),
            "extra bytes are ignored"
        );
        assert_eq!(
            with("Content-Length: 9", "hi"),
            Err(MessageError::Truncated)
        );
        assert_eq!(
            with("Content-Length: -1", ""),
            Err(MessageError::BadContentLength)
        );
        assert_eq!(
            with("Content-Length: 2\r\nl: 3", "hi!"),
            Err(MessageError::BadContentLength)
        );
        assert!(with("Content-Length: 2\r\nl: 2", "hi").is_ok());
        assert_eq!(
            with("Content-Length: 99999999999999999999999", ""),
            Err(MessageError::Truncated)
        );
    }

    #[test]
    fn repeated_single_headers_and_colonless_lines() {
        let twice = format!("{OK_HEADERS}t: <sip:e@f>\r\n");
        assert_eq!(
            check(&msg("OPTIONS sip:a@b SIP/2.0", &twice, "")),
            Err(MessageError::Repeated("To"))
        );
        let junk = format!("{OK_HEADERS}Foobar roobar\r\n");
        assert!(matches!(
            check(&msg("OPTIONS sip:a@b SIP/2.0", &junk, "")),
            Err(MessageError::Parse(_))
        ));
        let folded = format!("{OK_HEADERS}Subject: a\r\n b\r\n");
        assert!(check(&msg("OPTIONS sip:a@b SIP/2.0", &folded, "")).is_ok());
    }

    #[test]
    fn a_bare_lf_still_ends_a_header_line() {
        // Found by the sip_message fuzz target: a second CSeq after a line
        // that ends in a bare LF.
        let h = format!("{OK_HEADERS}Subject: x\r\n y\nCSeq: 2 OPTIONS\r\n");
        assert_eq!(
            check(&msg("OPTIONS sip:a@b SIP/2.0", &h, "")),
            Err(MessageError::Repeated("CSeq"))
        );
    }

    #[test]
    fn unterminated_display_name_is_refused() {
        let bad = OK_HEADERS.replace("To: <sip:a@b>", "To: \"Mr. J. User <sip:a@b>");
        assert!(matches!(
            check(&msg("OPTIONS sip:a@b SIP/2.0", &bad, "")),
            Err(MessageError::Parse(_))
        ));
        let escaped = OK_HEADERS.replace("To: <sip:a@b>", "To: \"J \\\"R\\\"\" <sip:a@b>");
        assert!(check(&msg("OPTIONS sip:a@b SIP/2.0", &escaped, "")).is_ok());
        assert!(
            quotes_balanced("\"a \\\\\" <sip:x>"),
            "an escaped backslash ends the escape"
        );
        assert!(!quotes_balanced("\"a \\\" <sip:x>"));
    }

    #[test]
    fn non_utf8_header_section_is_refused() {
        let mut m = msg("OPTIONS sip:a@b SIP/2.0", OK_HEADERS, "");
        m.splice(10..10, [0xff, 0xfe]);
        assert!(matches!(check(&m), Err(MessageError::Parse(_))));
        let body = [msg("OPTIONS sip:a@b SIP/2.0", OK_HEADERS, ""), vec![0xff]].concat();
        assert!(check(&body).is_ok(), "a binary body is fine");
    }
}

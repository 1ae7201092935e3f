//! Tolerant front end to `rtc-sdp`.
//!
//! `rtc-sdp` follows RFC 8866's grammar to the letter: session-level lines
//! must come in the RFC's order, `t=` is required, `u=` must be a URL, the
//! `o=` fields must be numbers, and an unknown line type is an error. SIP
//! peers are not that tidy, so [`parse`] first normalises the text:
//!
//! - lines may end in CRLF, LF or CR; blank lines are skipped;
//! - every line must be `<lower-case letter>=<value>` without control
//!   characters (tab allowed), and the first must be `v=`; anything else is
//!   an error, so garbage is rejected rather than guessed at;
//! - lines Maskline never reads nor forwards are dropped before parsing:
//!   `i=`, `u=`, `e=`, `p=`, `k=`, `r=`, `z=` and unknown types (RFC 8866 §5
//!   lets a parser ignore those);
//! - `o=` and `s=` are replaced by placeholders (`o=- 0 0 IN IP4 0.0.0.0`,
//!   `s=-`): Maskline writes its own, so a peer's odd origin (spaces in the
//!   user name, a session id above `u64`) cannot fail a call;
//! - session-level lines are put in RFC order (`v o s c b t a`), only the
//!   first session-level `c=` is kept, and `t=0 0` is added when missing.
//!
//! Media sections are passed through in their own order: `rtc-sdp` accepts
//! their lines in any order.

use std::io::Cursor;

use rtc_sdp::SessionDescription;

use super::SdpError;

/// Largest SDP body accepted, in bytes.
pub const MAX_SDP_LEN: usize = 64 * 1024;

const PLACEHOLDER_ORIGIN: &str = "o=- 0 0 IN IP4 0.0.0.0";
const PLACEHOLDER_NAME: &str = "s=-";
const DEFAULT_TIMING: &str = "t=0 0";

/// Parse an SDP body from the network into an `rtc-sdp` description.
pub(super) fn parse(body: &[u8]) -> Result<SessionDescription, SdpError> {
    let text = normalize(body)?;
    SessionDescription::unmarshal(&mut Cursor::new(text.as_bytes()))
        .map_err(|e| SdpError::Invalid(e.to_string()))
}

/// Rewrite `body` into SDP text that `rtc-sdp` accepts (see module docs).
fn normalize(body: &[u8]) -> Result<String, SdpError> {
    if body.len() > MAX_SDP_LEN {
        return Err(SdpError::TooLarge {
            len: body.len(),
            max: MAX_SDP_LEN,
        });
    }
    let mut version: Option<&str> = None;
    let mut connection: Option<&str> = None;
    let mut bandwidth = Vec::new();
    let mut timing = Vec::new();
    let mut attributes = Vec::new();
    let mut media = Vec::new();

    let lines = body
        .split(|b| *b == b'\n')
        .enumerate()
        .flat_map(|(index, line)| {
            // A lone CR also ends a line; CRLF leaves an empty piece, skipped below.
            line.split(|b| *b == b'\r')
                .map(move |piece| (index + 1, piece))
        });
    for (line_no, raw) in lines {
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let kind = match raw {
            [kind, b'=', ..] if kind.is_ascii_lowercase() => *kind,
            _ => return Err(SdpError::MalformedLine { line: line_no }),
        };
        if version.is_none() && kind != b'v' {
            return Err(SdpError::MissingVersion);
        }
        if !keeps(kind) {
            continue;
        }
        if raw.iter().any(|b| b.is_ascii_control() && *b != b'\t') {
            return Err(SdpError::MalformedLine { line: line_no });
        }
        let line = std::str::from_utf8(raw).map_err(|_| SdpError::NotUtf8 { line: line_no })?;
        if kind == b'm' || !media.is_empty() {
            // Inside media sections: passed on in order.
            media.push(line);
            continue;
        }
        match kind {
            b'v' if version.is_none() => version = Some(line),
            b'c' if connection.is_none() => connection = Some(line),
            b'c' => {}
            b'b' => bandwidth.push(line),
            b't' => timing.push(line),
            b'a' => attributes.push(line),
            // A second v=: rtc-sdp rejects it where it stands.
            _ => attributes.push(line),
        }
    }

    let Some(version) = version else {
        return Err(SdpError::Empty);
    };
    if timing.is_empty() {
        timing.push(DEFAULT_TIMING);
    }
    let mut out = String::with_capacity(body.len() + 64);
    let session = [version, PLACEHOLDER_ORIGIN, PLACEHOLDER_NAME]
        .into_iter()
        .chain(connection)
        .chain(bandwidth)
        .chain(timing)
        .chain(attributes)
        .chain(media);
    for line in session {
        out.push_str(line);
        out.push_str("\r\n");
    }
    Ok(out)
}

/// Line types passed on to rtc-sdp (`o=`/`s=` are replaced by placeholders).
fn keeps(kind: u8) -> bool {
    matches!(kind, b'v' | b'c' | b'b' | b't' | b'a' | b'm')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> Result<String, SdpError> {
        normalize(s.as_bytes())
    }

    #[test]
    fn reorders_session_lines_and_adds_timing() {
        let got = norm(
            "v=0\no=x 1 2 IN IP4 1.2.3.4\ns=-\na=sendrecv\nb=AS:64\n\
             c=IN IP4 1.2.3.4\nc=IN IP4 9.9.9.9\nm=audio 4000 RTP/AVP 0\n",
        );
        assert_eq!(
            got.as_deref(),
            Ok(
                "v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nb=AS:64\r\n\
                t=0 0\r\na=sendrecv\r\nm=audio 4000 RTP/AVP 0\r\n"
            )
        );
    }

    #[test]
    fn drops_lines_never_read() {
        let got = norm(
            "v=0\r\no=+1555 x y IN IP4 a\r\ns=+1555\r\ni=+1555\r\nu=not a url\r\n\
             e=a@b\r\np=+1555\r\nk=clear:x\r\nt=0 0\r\nr=7d 1h 0 25h\r\nz=0 -1h\r\n\
             y=0123\r\nm=audio 1 RTP/AVP 0\r\ni=+1555\r\n",
        );
        let got = got.unwrap_or_default();
        assert!(!got.contains("1555"), "{got}");
        assert!(!got.contains("r=") && !got.contains("z=") && !got.contains("y="));
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(norm(""), Err(SdpError::Empty));
        assert_eq!(norm("\r\n\r\n  \n"), Err(SdpError::Empty));
        assert_eq!(
            norm("hello world"),
            Err(SdpError::MalformedLine { line: 1 })
        );
        assert_eq!(
            norm("o=- 0 0 IN IP4 1.1.1.1"),
            Err(SdpError::MissingVersion)
        );
        assert_eq!(norm("V=0"), Err(SdpError::MalformedLine { line: 1 }));
        assert_eq!(
            norm("v=0\r\na=x\0y"),
            Err(SdpError::MalformedLine { line: 2 })
        );
        assert_eq!(
            normalize(b"v=0\na=\xff\xfe"),
            Err(SdpError::NotUtf8 { line: 2 })
        );
        let big = vec![b'a'; MAX_SDP_LEN + 1];
        assert!(matches!(normalize(&big), Err(SdpError::TooLarge { .. })));
    }

    #[test]
    fn non_utf8_in_dropped_lines_is_fine() {
        assert!(normalize(b"v=0\ns=\xe9t\xe9\ni=Jos\xe9\nm=audio 1 RTP/AVP 0\n").is_ok());
    }
}

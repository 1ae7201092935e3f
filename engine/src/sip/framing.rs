//! SIP over TCP stream framing (RFC 3261 §18.3).
//!
//! A stream carries messages back to back: the header section ends at the
//! first CRLFCRLF and `Content-Length` (compact form `l`) gives the body
//! length, which is mandatory on streams. CRLFs before a start-line are
//! keep-alives (RFC 5626 §4.4.1: a client pings with CRLFCRLF, the server
//! answers CRLF).
//!
//! Split as in mini-redis: [`check`] finds the length of the next frame
//! without copying, [`parse_frame`] splits exactly that frame off the buffer.
//! Any error other than [`FramingError::Incomplete`] leaves the stream out of
//! sync: the connection should be closed.

use bytes::{Bytes, BytesMut};

/// One unit read off a SIP stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// One whole SIP message: start-line, headers, blank line and body.
    Message(Bytes),
    /// A run of CRLFs between messages: a keep-alive ping or pong (RFC 5626).
    KeepAlive,
}

/// Why no frame could be taken off the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FramingError {
    /// The buffer holds only part of a frame: read more bytes.
    #[error("incomplete frame: more bytes needed")]
    Incomplete,
    /// The header section exceeds [`Limits::max_header`] (or no CRLFCRLF
    /// came within it).
    #[error("SIP header section too large")]
    HeaderTooLarge,
    /// `Content-Length` exceeds [`Limits::max_body`].
    #[error("SIP body too large")]
    BodyTooLarge,
    /// The message has no `Content-Length` header (mandatory on streams).
    #[error("missing Content-Length on a stream transport")]
    MissingContentLength,
    /// `Content-Length` is not a number, or two of them disagree.
    #[error("invalid Content-Length")]
    BadContentLength,
}

/// Size limits for one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest header section in bytes, start-line and blank line included.
    pub max_header: usize,
    /// Largest body in bytes.
    pub max_body: usize,
}

impl Default for Limits {
    /// 16 KiB of headers, 64 KiB of body.
    fn default() -> Self {
        Limits {
            max_header: 16 * 1024,
            max_body: 64 * 1024,
        }
    }
}

/// Length in bytes of the frame at the start of `buf`, without consuming it.
///
/// A frame starting with CR or LF is a keep-alive run; anything else is a
/// message. Returns [`FramingError::Incomplete`] when more bytes are needed.
pub fn check(buf: &[u8], limits: &Limits) -> Result<usize, FramingError> {
    match buf.first() {
        None => Err(FramingError::Incomplete),
        Some(b'\r' | b'\n') => keep_alive_len(buf),
        Some(_) => message_len(buf, limits),
    }
}

/// Split exactly one frame off the front of `buf`.
///
/// `Ok(None)` when the buffer holds only part of a frame (read more and call
/// again); the buffer is left untouched in that case and on error.
pub fn parse_frame(buf: &mut BytesMut, limits: &Limits) -> Result<Option<Frame>, FramingError> {
    let len = match check(buf, limits) {
        Ok(len) => len,
        Err(FramingError::Incomplete) => return Ok(None),
        Err(e) => return Err(e),
    };
    let keep_alive = matches!(buf.first(), Some(b'\r' | b'\n'));
    let frame = buf.split_to(len).freeze();
    Ok(Some(if keep_alive {
        Frame::KeepAlive
    } else {
        Frame::Message(frame)
    }))
}

/// The leading run of CR/LF bytes. A CR at the very end of the buffer is left
/// for later, as it may be the first half of the next CRLF.
fn keep_alive_len(buf: &[u8]) -> Result<usize, FramingError> {
    let run = buf
        .iter()
        .take_while(|b| matches!(b, b'\r' | b'\n'))
        .count();
    let len = if run == buf.len() && buf.last() == Some(&b'\r') {
        run - 1
    } else {
        run
    };
    if len == 0 {
        Err(FramingError::Incomplete)
    } else {
        Ok(len)
    }
}

/// Header section up to and including CRLFCRLF, plus the body.
fn message_len(buf: &[u8], limits: &Limits) -> Result<usize, FramingError> {
    let window = buf.get(..limits.max_header).unwrap_or(buf);
    let Some(end) = window.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Err(if buf.len() >= limits.max_header {
            FramingError::HeaderTooLarge
        } else {
            FramingError::Incomplete
        });
    };
    let header_len = end + 4;
    if header_len > limits.max_header {
        return Err(FramingError::HeaderTooLarge);
    }
    let headers = buf.get(..end).ok_or(FramingError::Incomplete)?;
    let body_len = content_length(headers)?;
    if body_len > limits.max_body {
        return Err(FramingError::BodyTooLarge);
    }
    let total = header_len + body_len;
    if buf.len() < total {
        Err(FramingError::Incomplete)
    } else {
        Ok(total)
    }
}

/// The `Content-Length` / `l` value of a header section (start-line first,
/// no trailing blank line). Repeated headers must agree.
fn content_length(headers: &[u8]) -> Result<usize, FramingError> {
    let mut found: Option<usize> = None;
    // The first line is the start-line; folded continuation lines start with
    // whitespace and so never match a header name.
    for line in headers.split(|&b| b == b'\n').skip(1) {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = line.split_at(colon);
        let name = name.trim_ascii();
        if !(name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l")) {
            continue;
        }
        let value = value.get(1..).unwrap_or_default().trim_ascii();
        let len = parse_length(value)?;
        match found {
            Some(prev) if prev != len => return Err(FramingError::BadContentLength),
            _ => found = Some(len),
        }
    }
    found.ok_or(FramingError::MissingContentLength)
}

/// Decimal digits only; a number too big for `usize` is too big a body.
fn parse_length(value: &[u8]) -> Result<usize, FramingError> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return Err(FramingError::BadContentLength);
    }
    value.iter().try_fold(0usize, |acc, &d| {
        acc.checked_mul(10)
            .and_then(|acc| acc.checked_add(usize::from(d - b'0')))
            .ok_or(FramingError::BodyTooLarge)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &[u8] = b"INVITE sip:bob@example.com SIP/2.0\r\n\
Via: SIP/2.0/TCP 10.0.0.1:5060;branch=z9hG4bK1\r\n\
Call-ID: a@b\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 10\r\n\
\r\n\
v=0\r\no=x\r\n";

    const OPTIONS: &[u8] = b"OPTIONS sip:x@y SIP/2.0\r\nCall-ID: c\r\ncontent-length:0\r\n\r\n";

    fn frames(buf: &mut BytesMut) -> Vec<Frame> {
        let mut out = Vec::new();
        while let Some(frame) = parse_frame(buf, &Limits::default()).unwrap() {
            out.push(frame);
        }
        out
    }

    fn message(bytes: &[u8]) -> Frame {
        Frame::Message(Bytes::copy_from_slice(bytes))
    }

    #[test]
    fn one_message() {
        assert_eq!(check(INVITE, &Limits::default()), Ok(INVITE.len()));
        let mut buf = BytesMut::from(INVITE);
        assert_eq!(frames(&mut buf), vec![message(INVITE)]);
        assert!(buf.is_empty());
    }

    #[test]
    fn two_messages_coalesced_in_one_read() {
        let mut buf = BytesMut::new();
        buf.extend_from_slice(INVITE);
        buf.extend_from_slice(OPTIONS);
        assert_eq!(frames(&mut buf), vec![message(INVITE), message(OPTIONS)]);
        assert!(buf.is_empty());
    }

    #[test]
    fn message_fed_byte_by_byte() {
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for (i, &b) in INVITE.iter().enumerate() {
            buf.extend_from_slice(&[b]);
            let frame = parse_frame(&mut buf, &Limits::default()).unwrap();
            if i + 1 < INVITE.len() {
                assert_eq!(frame, None, "frame emitted early at byte {i}");
            }
            got.extend(frame);
        }
        assert_eq!(got, vec![message(INVITE)]);
        assert!(buf.is_empty());
    }

    #[test]
    fn message_split_at_every_position() {
        for split in 0..=INVITE.len() {
            let (a, b) = INVITE.split_at(split);
            let mut buf = BytesMut::from(a);
            let mut got = frames(&mut buf);
            buf.extend_from_slice(b);
            got.extend(frames(&mut buf));
            assert_eq!(got, vec![message(INVITE)], "split at {split}");
        }
    }

    #[test]
    fn body_split_waits_for_the_whole_body() {
        let header_len = INVITE.len() - 10;
        let mut buf = BytesMut::from(&INVITE[..header_len + 4]);
        assert_eq!(
            check(&buf, &Limits::default()),
            Err(FramingError::Incomplete)
        );
        assert_eq!(parse_frame(&mut buf, &Limits::default()), Ok(None));
        assert_eq!(
            buf.len(),
            header_len + 4,
            "buffer untouched while incomplete"
        );
        buf.extend_from_slice(&INVITE[header_len + 4..]);
        assert_eq!(frames(&mut buf), vec![message(INVITE)]);
    }

    #[test]
    fn crlf_keep_alives_between_messages() {
        let mut buf = BytesMut::new();
        buf.extend_from_slice(b"\r\n\r\n");
        buf.extend_from_slice(INVITE);
        buf.extend_from_slice(b"\r\n");
        buf.extend_from_slice(OPTIONS);
        assert_eq!(
            frames(&mut buf),
            vec![
                Frame::KeepAlive,
                message(INVITE),
                Frame::KeepAlive,
                message(OPTIONS)
            ]
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn lone_trailing_cr_waits_for_its_lf() {
        assert_eq!(
            check(b"\r", &Limits::default()),
            Err(FramingError::Incomplete)
        );
        assert_eq!(check(b"\r\n\r", &Limits::default()), Ok(2));
        assert_eq!(check(b"\r\n\r\n", &Limits::default()), Ok(4));
        assert_eq!(check(b"\r\nINVITE", &Limits::default()), Ok(2));
    }

    #[test]
    fn missing_content_length_is_an_error() {
        let msg = b"OPTIONS sip:x@y SIP/2.0\r\nCall-ID: c\r\n\r\n";
        assert_eq!(
            check(msg, &Limits::default()),
            Err(FramingError::MissingContentLength)
        );
        let mut buf = BytesMut::from(&msg[..]);
        assert_eq!(
            parse_frame(&mut buf, &Limits::default()),
            Err(FramingError::MissingContentLength)
        );
    }

    #[test]
    fn content_length_in_the_start_line_does_not_count() {
        let msg = b"Content-Length: 0\r\nCall-ID: c\r\n\r\n";
        assert_eq!(
            check(msg, &Limits::default()),
            Err(FramingError::MissingContentLength)
        );
    }

    #[test]
    fn absurd_content_length_is_body_too_large() {
        for value in ["65537", "4294967296", "99999999999999999999999999999"] {
            let msg = format!("OPTIONS sip:x@y SIP/2.0\r\nContent-Length: {value}\r\n\r\n");
            assert_eq!(
                check(msg.as_bytes(), &Limits::default()),
                Err(FramingError::BodyTooLarge),
                "{value}"
            );
        }
        let msg = b"OPTIONS sip:x@y SIP/2.0\r\nContent-Length: 65536\r\n\r\n";
        assert_eq!(
            check(msg, &Limits::default()),
            Err(FramingError::Incomplete)
        );
    }

    #[test]
    fn bad_or_conflicting_content_length() {
        for headers in [
            "Content-Length: abc\r\n",
            "Content-Length: -1\r\n",
            "Content-Length:\r\n",
            "Content-Length: 1 2\r\n",
            "Content-Length: 0\r\nl: 3\r\n",
        ] {
            let msg = format!("OPTIONS sip:x@y SIP/2.0\r\n{headers}\r\n");
            assert_eq!(
                check(msg.as_bytes(), &Limits::default()),
                Err(FramingError::BadContentLength),
                "{headers:?}"
            );
        }
        let agreeing = b"OPTIONS sip:x@y SIP/2.0\r\nContent-Length: 0\r\nl: 0\r\n\r\n";
        assert_eq!(check(agreeing, &Limits::default()), Ok(agreeing.len()));
    }

    #[test]
    fn header_over_the_limit_without_crlfcrlf() {
        let limits = Limits {
            max_header: 64,
            max_body: 1024,
        };
        let mut buf = b"OPTIONS sip:x@y SIP/2.0\r\nX-Filler: ".to_vec();
        while buf.len() < 63 {
            buf.push(b'a');
        }
        assert_eq!(check(&buf, &limits), Err(FramingError::Incomplete));
        buf.push(b'a');
        assert_eq!(check(&buf, &limits), Err(FramingError::HeaderTooLarge));
        buf.extend_from_slice(&[b'a'; 10_000]);
        assert_eq!(check(&buf, &limits), Err(FramingError::HeaderTooLarge));
    }

    #[test]
    fn header_section_exactly_at_the_limit_fits() {
        let limits = Limits {
            max_header: OPTIONS.len(),
            max_body: 0,
        };
        assert_eq!(check(OPTIONS, &limits), Ok(OPTIONS.len()));
        let tighter = Limits {
            max_header: OPTIONS.len() - 1,
            max_body: 0,
        };
        assert_eq!(check(OPTIONS, &tighter), Err(FramingError::HeaderTooLarge));
    }

    #[test]
    fn compact_l_and_case_insensitive_names() {
        let compact = b"MESSAGE sip:x@y SIP/2.0\r\nCall-ID: c\r\nl:  2\r\n\r\nhi";
        assert_eq!(check(compact, &Limits::default()), Ok(compact.len()));
        let shouting = b"MESSAGE sip:x@y SIP/2.0\r\nCONTENT-LENGTH : 2\r\n\r\nhiMESSAGE";
        assert_eq!(check(shouting, &Limits::default()), Ok(shouting.len() - 7));
        let mut buf = BytesMut::from(&compact[..]);
        assert_eq!(frames(&mut buf), vec![message(compact)]);
    }

    #[test]
    fn truncations_never_panic() {
        let mut all = INVITE.to_vec();
        all.extend_from_slice(b"\r\n");
        all.extend_from_slice(OPTIONS);
        for end in 0..=all.len() {
            for start in 0..=end {
                let _ = check(&all[start..end], &Limits::default());
            }
        }
    }
}

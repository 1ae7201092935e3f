//! The HTTP `Range` request header (RFC 9110 §14.2), single byte ranges
//! only: what an `<audio>` element sends to seek.
//!
//! A header that is absent, malformed, in another unit or asks for several
//! ranges is ignored (the whole file is served, as RFC 9110 allows); a
//! well-formed range that starts past the end is unsatisfiable (416).

/// Bytes `start..=end` of a file (inclusive, as in `Content-Range`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte.
    pub start: u64,
    /// Last byte (inclusive).
    pub end: u64,
}

impl ByteRange {
    /// Number of bytes in the range.
    pub fn len(&self) -> u64 {
        self.end - self.start + 1
    }

    /// Never true: a range holds at least one byte.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The `Content-Range` value for a file of `total` bytes.
    pub fn content_range(&self, total: u64) -> String {
        format!("bytes {}-{}/{total}", self.start, self.end)
    }
}

/// What to serve for a request's `Range` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeRequest {
    /// The whole file (200).
    Full,
    /// One range (206).
    Partial(ByteRange),
    /// No byte of the file satisfies it (416).
    Unsatisfiable,
}

/// Resolve a `Range` header value against a file of `len` bytes.
pub fn parse(header: Option<&str>, len: u64) -> RangeRequest {
    let Some(value) = header else {
        return RangeRequest::Full;
    };
    let value = value.trim();
    let Some((unit, spec)) = value.split_once('=') else {
        return RangeRequest::Full;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
        return RangeRequest::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeRequest::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    let number = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    if first.is_empty() {
        // Suffix: the last `n` bytes.
        let Some(n) = number(last) else {
            return RangeRequest::Full;
        };
        if n == 0 || len == 0 {
            return RangeRequest::Unsatisfiable;
        }
        return RangeRequest::Partial(ByteRange {
            start: len - n.min(len),
            end: len - 1,
        });
    }
    let Some(start) = number(first) else {
        return RangeRequest::Full;
    };
    let end = if last.is_empty() {
        None
    } else {
        match number(last) {
            Some(e) if e >= start => Some(e),
            _ => return RangeRequest::Full,
        }
    };
    if start >= len {
        return RangeRequest::Unsatisfiable;
    }
    RangeRequest::Partial(ByteRange {
        start,
        end: end.map_or(len - 1, |e| e.min(len - 1)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(start: u64, end: u64) -> RangeRequest {
        RangeRequest::Partial(ByteRange { start, end })
    }

    #[test]
    fn the_three_forms() {
        assert_eq!(parse(Some("bytes=0-99"), 1000), part(0, 99));
        assert_eq!(parse(Some("bytes=500-"), 1000), part(500, 999));
        assert_eq!(parse(Some("bytes=-100"), 1000), part(900, 999));
        assert_eq!(parse(Some("bytes=0-0"), 1000), part(0, 0));
        assert_eq!(parse(Some("bytes=999-999"), 1000), part(999, 999));
    }

    #[test]
    fn ends_are_clipped_to_the_file() {
        assert_eq!(parse(Some("bytes=900-5000"), 1000), part(900, 999));
        assert_eq!(parse(Some("bytes=-5000"), 1000), part(0, 999));
        assert_eq!(parse(Some("bytes=0-18446744073709551615"), 10), part(0, 9));
    }

    #[test]
    fn past_the_end_is_unsatisfiable() {
        assert_eq!(
            parse(Some("bytes=1000-"), 1000),
            RangeRequest::Unsatisfiable
        );
        assert_eq!(
            parse(Some("bytes=1000-2000"), 1000),
            RangeRequest::Unsatisfiable
        );
        assert_eq!(parse(Some("bytes=-0"), 1000), RangeRequest::Unsatisfiable);
        assert_eq!(parse(Some("bytes=0-"), 0), RangeRequest::Unsatisfiable);
        assert_eq!(parse(Some("bytes=-5"), 0), RangeRequest::Unsatisfiable);
    }

    #[test]
    fn what_is_ignored_serves_the_whole_file() {
        for h in [
            None,
            Some(""),
            Some("bytes"),
            Some("bytes="),
            Some("bytes=-"),
            Some("bytes=a-b"),
            Some("bytes=5-1"),
            Some("bytes=+5-9"),
            Some("bytes=0-1,5-6"),
            Some("items=0-9"),
            Some("bytes=99999999999999999999-"),
        ] {
            assert_eq!(parse(h, 1000), RangeRequest::Full, "{h:?}");
        }
    }

    #[test]
    fn tolerant_of_case_and_spaces() {
        assert_eq!(parse(Some(" Bytes = 10 - 19 "), 1000), part(10, 19));
    }

    #[test]
    fn lengths_and_content_range() {
        let r = ByteRange { start: 10, end: 19 };
        assert_eq!(r.len(), 10);
        assert!(!r.is_empty());
        assert_eq!(r.content_range(1000), "bytes 10-19/1000");
    }
}

//! SDP errors.

/// Why an SDP body could not be read or rewritten.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SdpError {
    /// The body is empty or holds only blank lines.
    #[error("empty SDP body")]
    Empty,
    /// The body is larger than [`MAX_SDP_LEN`](super::MAX_SDP_LEN).
    #[error("SDP body of {len} bytes is over the {max}-byte limit")]
    TooLarge {
        /// Size of the body, in bytes.
        len: usize,
        /// The limit, in bytes.
        max: usize,
    },
    /// A line is not `<letter>=<value>` or holds control characters.
    #[error("SDP line {line} is not `<type>=<value>`")]
    MalformedLine {
        /// 1-based line number.
        line: usize,
    },
    /// A line that Maskline reads is not UTF-8.
    #[error("SDP line {line} is not UTF-8")]
    NotUtf8 {
        /// 1-based line number.
        line: usize,
    },
    /// The first line is not `v=`.
    #[error("SDP does not start with `v=`")]
    MissingVersion,
    /// `rtc-sdp` rejected the description (a bad value or a line where none
    /// may be). The message is rtc-sdp's and may quote the offending line.
    #[error("invalid SDP: {0}")]
    Invalid(String),
    /// There is no `m=audio` line.
    #[error("SDP has no audio m-line")]
    NoAudio,
    /// Neither the audio m-line nor the session has a `c=` address.
    #[error("SDP has no connection address for the audio stream")]
    NoConnection,
    /// The connection address is not an IP literal (e.g. a host name).
    #[error("SDP connection address {0:?} is not an IP address")]
    UnsupportedAddress(String),
    /// `a=rtcp` is not `<port> [IN IP4|IP6 <address>]`.
    #[error("malformed a=rtcp attribute")]
    BadRtcp,
    /// The RTP port is 65535, so there is no port for RTCP after it.
    #[error("RTP port {0} leaves no port for RTCP")]
    PortOutOfRange(u16),
}

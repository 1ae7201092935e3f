//! Real-looking SDP bodies shared by the SDP tests.

/// SIPp's built-in `uac` scenario offer.
pub const SIPP: &str = "v=0\r\n\
o=user1 53655765 2353687637 IN IP4 127.0.0.1\r\n\
s=-\r\n\
c=IN IP4 127.0.0.1\r\n\
t=0 0\r\n\
m=audio 6000 RTP/AVP 0\r\n\
a=rtpmap:0 PCMU/8000\r\n";

/// baresip 3.x offer: Opus, G.711, telephone-event, a=rtcp, rtcp-mux.
pub const BARESIP: &str = "v=0\r\n\
o=- 1815849779 3044474483 IN IP4 192.168.1.20\r\n\
s=-\r\n\
c=IN IP4 192.168.1.20\r\n\
t=0 0\r\n\
a=tool:baresip 3.10.1\r\n\
m=audio 10018 RTP/AVP 96 0 8 101\r\n\
b=AS:96\r\n\
a=rtpmap:96 opus/48000/2\r\n\
a=fmtp:96 stereo=1;sprop-stereo=1;useinbandfec=1\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=rtcp:10019\r\n\
a=sendrecv\r\n\
a=label:1\r\n\
a=rtcp-rsize\r\n\
a=ssrc:3344812591 cname:4b9f1a3c-alice@192.168.1.20\r\n\
a=mid:1\r\n\
a=rtcp-mux\r\n\
a=ptime:20\r\n";

/// A carrier answer: session-level c=, telephone-event, ptime/maxptime.
pub const CARRIER: &str = "v=0\r\n\
o=- 1234567890 1234567891 IN IP4 67.231.5.10\r\n\
s=SIP Call\r\n\
c=IN IP4 67.231.5.12\r\n\
t=0 0\r\n\
m=audio 28016 RTP/AVP 0 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n\
a=maxptime:150\r\n\
a=sendrecv\r\n";

/// A carrier SDP that a strict RFC 8866 parser rejects: LF line ends, no
/// `t=`, `b=` before `c=`, a session attribute before `c=`, an unknown
/// `y=` line, an o= user name with a space, a u= that is not a URL and
/// trailing blank lines.
pub const CARRIER_QUIRKS: &str = "v=0\n\
o=Sonus UAC 18446744073709551616 1 IN IP4 203.0.113.5\n\
s=SIP Media Capabilities\n\
u=see our website\n\
b=AS:80\n\
a=sendonly\n\
c=IN IP4 203.0.113.5\n\
y=0123456789\n\
m=audio 30000 RTP/AVP 18 0 101\n\
a=rtpmap:18 G729/8000\n\
a=fmtp:18 annexb=no\n\
a=rtpmap:0 PCMU/8000\n\
a=rtpmap:101 telephone-event/8000\n\
\n\n";

/// The caller's number (+1 415 555 0101) everywhere SDP can carry text.
pub const PRIVACY: &str = "v=0\r\n\
o=+14155550101 2890844526 2890842807 IN IP4 198.51.100.7\r\n\
s=Call from +14155550101\r\n\
i=Alice Smith +14155550101\r\n\
u=http://example.com/users/14155550101\r\n\
e=alice.14155550101@example.com (Alice Smith)\r\n\
p=+1 415 555 0101\r\n\
c=IN IP4 198.51.100.7\r\n\
b=AS:64\r\n\
t=0 0\r\n\
a=tool:softphone-14155550101\r\n\
a=group:BUNDLE 0\r\n\
a=msid-semantic: WMS 14155550101\r\n\
a=ice-ufrag:14155550101\r\n\
a=fingerprint:sha-256 14:15:55:50:10:1A\r\n\
m=audio 49170 RTP/AVP 0 8 101\r\n\
i=audio from 4155550101\r\n\
c=IN IP4 198.51.100.7\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=rtcp:49171 IN IP4 198.51.100.8\r\n\
a=candidate:1 1 UDP 2130706431 198.51.100.7 49170 typ host\r\n\
a=ice-pwd:415555010141555501014155\r\n\
a=ice-options:trickle\r\n\
a=setup:actpass\r\n\
a=ssrc:11111 cname:+14155550101\r\n\
a=ssrc-group:FID 11111 22222\r\n\
a=msid:14155550101 audio0\r\n\
a=mid:0\r\n\
a=label:+14155550101\r\n\
a=X-nat:0 +14155550101\r\n\
a=sendrecv\r\n\
m=video 49180 RTP/AVP 96\r\n\
i=camera of +14155550101\r\n\
c=IN IP4 198.51.100.7\r\n\
a=rtpmap:96 H264/90000\r\n\
a=label:+14155550101\r\n";

/// Linphone putting the call on hold: sendonly with c=0.0.0.0.
pub const HOLD_SENDONLY: &str = "v=0\r\n\
o=bob 3456 3458 IN IP4 192.0.2.44\r\n\
s=Talk\r\n\
c=IN IP4 0.0.0.0\r\n\
t=0 0\r\n\
m=audio 7078 RTP/AVP 0 8 101\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=sendonly\r\n";

/// IPv6 offer with an RTCP address of its own.
pub const IPV6: &str = "v=0\r\n\
o=- 1 1 IN IP6 2001:db8::10\r\n\
s=-\r\n\
c=IN IP6 2001:db8::10\r\n\
t=0 0\r\n\
m=audio 5004 RTP/AVP 0\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtcp:5005 IN IP6 2001:db8::11\r\n";

/// Video first, then audio, a second audio and T.38.
pub const VIDEO_FIRST: &str = "v=0\r\n\
o=- 7 7 IN IP4 192.0.2.10\r\n\
s=-\r\n\
c=IN IP4 192.0.2.10\r\n\
t=0 0\r\n\
m=video 5006/2 RTP/AVP 96 97\r\n\
a=rtpmap:96 H264/90000\r\n\
a=fmtp:96 profile-level-id=42e01f\r\n\
a=rtpmap:97 VP8/90000\r\n\
a=rtcp-fb:96 nack\r\n\
a=sendrecv\r\n\
m=audio 5004 RTP/AVP 8 0\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=ptime:20\r\n\
m=audio 5010 RTP/AVP 0\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=sendrecv\r\n\
m=image 5008 udptl t38\r\n\
c=IN IP4 192.0.2.11\r\n\
a=T38FaxVersion:0\r\n\
a=T38MaxBitRate:14400\r\n";

/// Valid SDP without an audio stream.
pub const NO_AUDIO: &str = "v=0\r\n\
o=- 7 7 IN IP4 192.0.2.10\r\n\
s=-\r\n\
c=IN IP4 192.0.2.10\r\n\
t=0 0\r\n\
m=video 5006 RTP/AVP 96\r\n\
a=rtpmap:96 H264/90000\r\n";

/// Every fixture that holds an audio stream.
pub const ALL_WITH_AUDIO: &[&str] = &[
    SIPP,
    BARESIP,
    CARRIER,
    CARRIER_QUIRKS,
    PRIVACY,
    HOLD_SENDONLY,
    IPV6,
    VIDEO_FIRST,
];

//! Reading where a peer wants its audio: [`remote_media`].

use std::net::{IpAddr, SocketAddr};

use rtc_sdp::{MediaDescription, SessionDescription};

use super::parse::parse;
use super::{Direction, MediaTarget, SdpError};

/// Parse `body`, return the first audio m-line's target.
///
/// `c=` at media level wins over session level; `a=rtcp:<port> [IN IP4
/// addr]` is honoured (else port + 1); `a=rtcp-mux` sets `rtcp_mux`. A port
/// of 0 or `c=0.0.0.0` means hold/disabled: the target is still returned,
/// with direction [`Direction::Inactive`] when the port is 0 (see
/// [`MediaTarget`] for the exact rules).
pub fn remote_media(body: &[u8]) -> Result<MediaTarget, SdpError> {
    let desc = parse(body)?;
    let index = first_audio(&desc).ok_or(SdpError::NoAudio)?;
    let media = desc
        .media_descriptions
        .get(index)
        .ok_or(SdpError::NoAudio)?;
    let address = connection_address(&desc, media).ok_or(SdpError::NoConnection)?;
    let ip = parse_ip(address).ok_or_else(|| SdpError::UnsupportedAddress(address.to_owned()))?;
    // rtc-sdp parsed the port as a u16, so this cannot fail.
    let port = u16::try_from(media.media_name.port.value)
        .map_err(|_| SdpError::Invalid("m= port out of range".to_owned()))?;
    let rtp = SocketAddr::new(ip, port);
    let rtcp = if port == 0 {
        rtp
    } else {
        match media.attribute("rtcp") {
            Some(value) => parse_rtcp(value.unwrap_or(""), ip)?,
            None => SocketAddr::new(
                ip,
                port.checked_add(1).ok_or(SdpError::PortOutOfRange(port))?,
            ),
        }
    };
    let payload_types = media
        .media_name
        .formats
        .iter()
        .filter_map(|f| f.parse::<u8>().ok())
        .filter(|pt| *pt <= 127)
        .collect();
    Ok(MediaTarget {
        rtp,
        rtcp,
        rtcp_mux: media.has_attribute("rtcp-mux"),
        direction: effective_direction(&desc, media, ip, port),
        payload_types,
    })
}

/// Index of the first `m=audio` section.
pub(super) fn first_audio(desc: &SessionDescription) -> Option<usize> {
    desc.media_descriptions
        .iter()
        .position(|m| m.media_name.media == "audio")
}

/// The `c=` address that applies to `media` (media level, else session).
pub(super) fn connection_address<'a>(
    desc: &'a SessionDescription,
    media: &'a MediaDescription,
) -> Option<&'a str> {
    let of = |c: &'a Option<rtc_sdp::description::common::ConnectionInformation>| {
        c.as_ref()
            .and_then(|c| c.address.as_ref())
            .map(|a| a.address.as_str())
    };
    of(&media.connection_information).or_else(|| of(&desc.connection_information))
}

/// An IP literal from a `c=` address, without multicast `/ttl/count`
/// suffixes or IPv6 brackets.
pub(super) fn parse_ip(address: &str) -> Option<IpAddr> {
    let host = address.split('/').next().unwrap_or(address);
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    host.parse().ok()
}

/// The direction the attributes state: media level, else session level,
/// else `sendrecv`.
pub(super) fn stated_direction(desc: &SessionDescription, media: &MediaDescription) -> Direction {
    let find = |attrs: &[rtc_sdp::description::common::Attribute]| {
        attrs.iter().find_map(|a| Direction::from_attribute(&a.key))
    };
    find(&media.attributes)
        .or_else(|| find(&desc.attributes))
        .unwrap_or(Direction::SendRecv)
}

/// [`stated_direction`] corrected for a disabled port and a hold address.
pub(super) fn effective_direction(
    desc: &SessionDescription,
    media: &MediaDescription,
    ip: IpAddr,
    port: u16,
) -> Direction {
    if port == 0 {
        return Direction::Inactive;
    }
    let stated = stated_direction(desc, media);
    if ip.is_unspecified() {
        stated.without_recv()
    } else {
        stated
    }
}

/// `a=rtcp:<port> [IN IP4|IP6 <address>]` (RFC 3605).
fn parse_rtcp(value: &str, default_ip: IpAddr) -> Result<SocketAddr, SdpError> {
    let fields: Vec<&str> = value.split_whitespace().collect();
    let (port, ip) = match fields.as_slice() {
        [port] => (port, default_ip),
        [port, net, addr_type, addr]
            if net.eq_ignore_ascii_case("IN")
                && (addr_type.eq_ignore_ascii_case("IP4")
                    || addr_type.eq_ignore_ascii_case("IP6")) =>
        {
            (port, parse_ip(addr).ok_or(SdpError::BadRtcp)?)
        }
        _ => return Err(SdpError::BadRtcp),
    };
    let port = port.parse::<u16>().map_err(|_| SdpError::BadRtcp)?;
    Ok(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sdp::fixtures::*;

    fn target(sdp: &str) -> Result<MediaTarget, SdpError> {
        remote_media(sdp.as_bytes())
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn sipp_default_offer() {
        assert_eq!(
            target(SIPP),
            Ok(MediaTarget {
                rtp: addr("127.0.0.1:6000"),
                rtcp: addr("127.0.0.1:6001"),
                rtcp_mux: false,
                direction: Direction::SendRecv,
                payload_types: vec![0],
            })
        );
    }

    #[test]
    fn baresip_offer_with_rtcp_attribute_and_mux() {
        assert_eq!(
            target(BARESIP),
            Ok(MediaTarget {
                rtp: addr("192.168.1.20:10018"),
                rtcp: addr("192.168.1.20:10019"),
                rtcp_mux: true,
                direction: Direction::SendRecv,
                payload_types: vec![96, 0, 8, 101],
            })
        );
    }

    #[test]
    fn carrier_session_level_connection_and_direction() {
        let t = target(CARRIER);
        assert_eq!(t.as_ref().map(|t| t.rtp), Ok(addr("67.231.5.12:28016")));
        assert_eq!(t.as_ref().map(|t| t.direction), Ok(Direction::SendRecv));
        assert_eq!(t.map(|t| t.payload_types), Ok(vec![0, 101]));
    }

    #[test]
    fn quirky_carrier_is_accepted() {
        let t = target(CARRIER_QUIRKS);
        assert_eq!(t.as_ref().map(|t| t.rtp), Ok(addr("203.0.113.5:30000")));
        assert_eq!(t.map(|t| t.direction), Ok(Direction::SendOnly));
    }

    #[test]
    fn media_level_connection_and_rtcp_address_win() {
        let t = target(PRIVACY);
        assert_eq!(t.as_ref().map(|t| t.rtp), Ok(addr("198.51.100.7:49170")));
        assert_eq!(t.map(|t| t.rtcp), Ok(addr("198.51.100.8:49171")));
    }

    #[test]
    fn hold_variants() {
        let t = target(HOLD_SENDONLY);
        assert_eq!(t.as_ref().map(|t| t.rtp), Ok(addr("0.0.0.0:7078")));
        assert_eq!(t.map(|t| t.direction), Ok(Direction::SendOnly));
        // RFC 2543 hold: no attribute, c=0.0.0.0 → the peer only sends.
        let old = SIPP.replace("c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0");
        assert_eq!(target(&old).map(|t| t.direction), Ok(Direction::SendOnly));
        let recvonly = format!("{old}a=recvonly\r\n");
        assert_eq!(
            target(&recvonly).map(|t| t.direction),
            Ok(Direction::Inactive)
        );
        let disabled = SIPP.replace("m=audio 6000", "m=audio 0");
        let t = target(&disabled);
        assert_eq!(t.as_ref().map(|t| t.rtp), Ok(addr("127.0.0.1:0")));
        assert_eq!(t.as_ref().map(|t| t.rtcp), Ok(addr("127.0.0.1:0")));
        assert_eq!(t.map(|t| t.direction), Ok(Direction::Inactive));
    }

    #[test]
    fn session_level_direction_applies_unless_media_overrides() {
        let session = SIPP.replace("t=0 0\r\n", "t=0 0\r\na=recvonly\r\n");
        assert_eq!(
            target(&session).map(|t| t.direction),
            Ok(Direction::RecvOnly)
        );
        let both = format!("{session}a=inactive\r\n");
        assert_eq!(target(&both).map(|t| t.direction), Ok(Direction::Inactive));
    }

    #[test]
    fn ipv6() {
        let t = target(IPV6);
        assert_eq!(t.as_ref().map(|t| t.rtp), Ok(addr("[2001:db8::10]:5004")));
        assert_eq!(t.map(|t| t.rtcp), Ok(addr("[2001:db8::11]:5005")));
    }

    #[test]
    fn first_audio_line_is_used_even_after_video() {
        let t = target(VIDEO_FIRST);
        assert_eq!(t.as_ref().map(|t| t.rtp.port()), Ok(5004));
        assert_eq!(t.map(|t| t.payload_types), Ok(vec![8, 0]));
    }

    #[test]
    fn errors() {
        assert_eq!(target(""), Err(SdpError::Empty));
        assert_eq!(target(NO_AUDIO), Err(SdpError::NoAudio));
        let no_c = SIPP.replace("c=IN IP4 127.0.0.1\r\n", "");
        assert_eq!(target(&no_c), Err(SdpError::NoConnection));
        let fqdn = SIPP.replace("c=IN IP4 127.0.0.1", "c=IN IP4 media.example.com");
        assert_eq!(
            target(&fqdn),
            Err(SdpError::UnsupportedAddress("media.example.com".into()))
        );
        for bad in [
            "a=rtcp:",
            "a=rtcp:x",
            "a=rtcp:70000",
            "a=rtcp:5 IN IP4",
            "a=rtcp:5 IN IP4 host",
        ] {
            let sdp = format!("{SIPP}{bad}\r\n");
            assert_eq!(target(&sdp), Err(SdpError::BadRtcp), "{bad}");
        }
        let top = SIPP.replace("m=audio 6000", "m=audio 65535");
        assert_eq!(target(&top), Err(SdpError::PortOutOfRange(65535)));
        let bad_port = SIPP.replace("m=audio 6000", "m=audio 99999");
        assert!(matches!(target(&bad_port), Err(SdpError::Invalid(_))));
    }

    #[test]
    fn multicast_suffix_and_odd_payload_tokens() {
        let sdp = SIPP
            .replace("c=IN IP4 127.0.0.1", "c=IN IP4 224.2.1.1/127")
            .replace("RTP/AVP 0", "RTP/AVP 0 x 200 101");
        let t = target(&sdp);
        assert_eq!(t.as_ref().map(|t| t.rtp), Ok(addr("224.2.1.1:6000")));
        assert_eq!(t.map(|t| t.payload_types), Ok(vec![0, 101]));
    }
}

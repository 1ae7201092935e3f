//! Rewriting a peer's SDP for the other leg: [`rewrite`].
//!
//! Privacy is the product, so attributes are kept by an allow-list, not
//! dropped by a deny-list: whatever a peer invents (`a=tool`, ICE, DTLS,
//! `a=ssrc … cname:`, `a=msid`, `a=label`, vendor extensions) never reaches
//! the other party.

use std::net::IpAddr;

use rtc_sdp::description::common::{Address, Attribute, ConnectionInformation};
use rtc_sdp::description::session::Origin;
use rtc_sdp::SessionDescription;

use super::parse::parse;
use super::target::{connection_address, effective_direction, first_audio, parse_ip};
use super::{Direction, RewriteParams, SdpError};

/// Session-level attributes that survive.
const SESSION_ATTRIBUTES: &[&str] = &[
    "sendrecv", "sendonly", "recvonly", "inactive", "ptime", "maxptime",
];

/// Attributes of the first audio m-line that survive.
const AUDIO_ATTRIBUTES: &[&str] = &[
    "rtpmap", "fmtp", "ptime", "maxptime", "sendrecv", "sendonly", "recvonly", "inactive",
    "rtcp-mux", "rtcp",
];

/// Rewrite a peer's SDP for the other leg so that every address points at
/// Maskline and nothing identifies the original party.
///
/// - `o=maskline <session_id> <session_version> IN IP4|IP6 <local_ip>`,
///   `s=maskline`; `i=`, `u=`, `e=`, `p=`, `k=`, `r=`, `z=` are dropped;
///   `b=` and `t=` stay.
/// - Session-level attributes: only direction, `ptime` and `maxptime` stay.
/// - Session-level `c=` (always written) and every media-level `c=` become
///   `IN IP4|IP6 <local_ip>`.
/// - The first audio m-line gets `rtp_port` (protocol and payload list
///   unchanged) and keeps only `rtpmap`, `fmtp`, `ptime`, `maxptime`,
///   direction, `rtcp-mux` and `a=rtcp` (rewritten to `rtp_port + 1`).
///   When its peer was on hold by address (`c=0.0.0.0`), the direction is
///   made explicit (`sendonly`/`inactive`), since the address is now ours.
///   If its port is 0 (rejected), it stays 0 and `a=rtcp` is dropped.
/// - Every other m-line (video, a second audio, T.38) is disabled: port 0,
///   only its `rtpmap` attributes kept.
///
/// The output is CRLF-terminated. Errors: those of parsing, [`SdpError::NoAudio`]
/// and [`SdpError::PortOutOfRange`] when `rtp_port` is 65535.
pub fn rewrite(body: &[u8], p: &RewriteParams) -> Result<Vec<u8>, SdpError> {
    let rtcp_port = p
        .rtp_port
        .checked_add(1)
        .ok_or(SdpError::PortOutOfRange(p.rtp_port))?;
    let mut desc = parse(body)?;
    let audio = first_audio(&desc).ok_or(SdpError::NoAudio)?;
    let held = held_direction(&desc, audio);
    let local = local_connection(p.local_ip);

    desc.origin = Origin {
        username: "maskline".to_owned(),
        session_id: p.session_id,
        session_version: p.session_version,
        network_type: local.network_type.clone(),
        address_type: local.address_type.clone(),
        unicast_address: p.local_ip.to_string(),
    };
    desc.session_name = "maskline".to_owned();
    desc.session_information = None;
    desc.uri = None;
    desc.email_address = None;
    desc.phone_number = None;
    desc.encryption_key = None;
    desc.time_zones.clear();
    desc.connection_information = Some(local.clone());
    desc.attributes
        .retain(|a| SESSION_ATTRIBUTES.contains(&a.key.as_str()));
    for time in &mut desc.time_descriptions {
        time.repeat_times.clear();
    }

    for (index, media) in desc.media_descriptions.iter_mut().enumerate() {
        media.media_title = None;
        media.encryption_key = None;
        if media.connection_information.is_some() {
            media.connection_information = Some(local.clone());
        }
        let port = &mut media.media_name.port;
        port.range = None;
        if index != audio {
            port.value = 0;
            media.attributes.retain(|a| a.key == "rtpmap");
            continue;
        }
        let rejected = port.value == 0;
        if !rejected {
            port.value =
                isize::try_from(p.rtp_port).map_err(|_| SdpError::PortOutOfRange(p.rtp_port))?;
        }
        media.attributes.retain(|a| {
            AUDIO_ATTRIBUTES.contains(&a.key.as_str()) && !(rejected && a.key == "rtcp")
        });
        for attr in &mut media.attributes {
            if attr.key == "rtcp" {
                attr.value = Some(rtcp_port.to_string());
            }
        }
        if let (Some(direction), false) = (held, rejected) {
            media
                .attributes
                .retain(|a| Direction::from_attribute(&a.key).is_none());
            media
                .attributes
                .push(Attribute::new(direction.as_attribute().to_owned(), None));
        }
    }
    Ok(desc.marshal().into_bytes())
}

/// The audio stream's effective direction when its peer put it on hold by
/// address (`c=0.0.0.0` / `c=::`), which the rewrite would otherwise lose.
fn held_direction(desc: &SessionDescription, audio: usize) -> Option<Direction> {
    let media = desc.media_descriptions.get(audio)?;
    let ip = connection_address(desc, media).and_then(parse_ip)?;
    if !ip.is_unspecified() {
        return None;
    }
    let port = u16::try_from(media.media_name.port.value).ok()?;
    Some(effective_direction(desc, media, ip, port))
}

/// `c=IN IP4|IP6 <ip>`.
fn local_connection(ip: IpAddr) -> ConnectionInformation {
    ConnectionInformation {
        network_type: "IN".to_owned(),
        address_type: if ip.is_ipv6() { "IP6" } else { "IP4" }.to_owned(),
        address: Some(Address {
            address: ip.to_string(),
            ttl: None,
            range: None,
        }),
    }
}

#[cfg(test)]
mod tests;

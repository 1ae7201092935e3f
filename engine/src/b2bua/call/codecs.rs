//! Codec negotiation across the legs. The callee is offered the caller's
//! codecs first, plus those Maskline can transcode to (PCMU, PCMA, Opus)
//! that the caller did not offer. When the callee picks one of the
//! caller's codecs, media is relayed untouched; when it picks one of the
//! extras, the caller is answered with its own preferred transcodable
//! codec and the relay transcodes ([`TranscodePlan`]).

use crate::media::codec::payload_map;
use crate::media::codec::Codec;
use crate::media::transcoding::TranscodePlan;
use crate::sdp;

fn transcodable(c: Codec) -> bool {
    matches!(c, Codec::Pcmu | Codec::Pcma | Codec::Opus)
}

fn rtpmap(pt: u8, c: Codec) -> String {
    match c.rtpmap_channels() {
        Some(ch) => format!("{pt} {}/{}/{ch}", c.rtpmap_name(), c.clock_rate()),
        None => format!("{pt} {}/{}", c.rtpmap_name(), c.clock_rate()),
    }
}

/// The caller's codecs Maskline can relay, record and transcode (PCMU,
/// PCMA, Opus and telephone-event), in its order; empty: nothing to offer.
pub(super) fn supported(a_codecs: &[(u8, Codec)]) -> Vec<(u8, Codec)> {
    a_codecs
        .iter()
        .copied()
        .filter(|(_, c)| transcodable(*c) || matches!(c, Codec::TelephoneEvent { .. }))
        .collect()
}

/// The offer for the callee: the caller's (already rewritten) offer reduced
/// to what Maskline can honour, plus the transcodable codecs it lacks.
pub(super) fn offer_for_b(rewritten: &[u8], a_codecs: &[(u8, Codec)]) -> Vec<u8> {
    let keep: KeepList = a_codecs.iter().map(|(pt, _)| (*pt, None)).collect();
    let rewritten = sdp::keep_payloads(rewritten, &keep);
    if !a_codecs.iter().any(|(_, c)| transcodable(*c)) {
        return rewritten;
    }
    let used: Vec<u8> = a_codecs.iter().map(|(pt, _)| *pt).collect();
    let mut extra = Vec::new();
    for (pt, c) in [(0u8, Codec::Pcmu), (8, Codec::Pcma)] {
        if !a_codecs.iter().any(|(_, x)| *x == c) && !used.contains(&pt) {
            extra.push((pt, rtpmap(pt, c)));
        }
    }
    if !a_codecs.iter().any(|(_, x)| *x == Codec::Opus) {
        if let Some(pt) = (96u8..=127).rev().find(|p| !used.contains(p)) {
            extra.push((pt, rtpmap(pt, Codec::Opus)));
        }
    }
    sdp::add_payloads(&rewritten, &extra)
}

/// Payload types (with an `a=rtpmap` value to add if missing) the
/// caller's answer keeps.
pub(super) type KeepList = Vec<(u8, Option<String>)>;

/// Decide from the callee's answer whether the legs need transcoding.
/// Returns the plan and the payload list the caller's answer must keep.
pub(super) fn plan_from_answer(
    a_codecs: &[(u8, Codec)],
    b_answer: &[u8],
) -> Option<(TranscodePlan, KeepList)> {
    let b_map = payload_map(b_answer);
    let (pb, cb) = sdp::audio_payloads(b_answer).into_iter().find_map(|pt| {
        b_map
            .iter()
            .find(|(p, c)| *p == pt && c.is_audio())
            .copied()
    })?;
    if a_codecs.iter().any(|(_, c)| *c == cb) || !transcodable(cb) {
        return None; // a common codec: relay as is
    }
    let (pa, ca) = a_codecs.iter().copied().find(|(_, c)| transcodable(*c))?;
    let event = |m: &[(u8, Codec)]| {
        m.iter().find_map(|(p, c)| match c {
            Codec::TelephoneEvent { rate } => Some((*p, *rate)),
            _ => None,
        })
    };
    let events = event(a_codecs).zip(event(&b_map));
    let mut keep = vec![(pa, Some(rtpmap(pa, ca)))];
    if let Some(((pe, _), _)) = events {
        keep.push((pe, None));
    }
    Some((
        TranscodePlan {
            a: (pa, ca),
            b: (pb, cb),
            events,
        },
        keep,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const A_OPUS: &str = "v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 20002 RTP/AVP 111 101\r\na=rtpmap:111 opus/48000/2\r\na=rtpmap:101 telephone-event/48000\r\n";

    #[test]
    fn opus_caller_pcmu_callee_is_transcoded() {
        let a = payload_map(A_OPUS.as_bytes());
        let offer = String::from_utf8(offer_for_b(A_OPUS.as_bytes(), &a)).unwrap();
        assert!(
            offer.contains("m=audio 20002 RTP/AVP 111 101 0 8\r\n"),
            "{offer}"
        );
        let b_answer = b"v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 9000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n";
        let (plan, keep) = plan_from_answer(&a, b_answer).unwrap();
        assert_eq!(plan.a, (111, Codec::Opus));
        assert_eq!(plan.b, (0, Codec::Pcmu));
        assert_eq!(plan.events, Some(((101, 48000), (101, 8000))));
        assert_eq!(keep[0], (111, Some("111 opus/48000/2".into())));
    }

    #[test]
    fn common_codec_is_relayed() {
        let a = payload_map(b"m=audio 1 RTP/AVP 0 8\r\n");
        let offer = String::from_utf8(offer_for_b(b"m=audio 1 RTP/AVP 0 8\r\n", &a)).unwrap();
        assert!(
            offer.contains("opus/48000/2"),
            "Opus offered as an extra: {offer}"
        );
        assert!(plan_from_answer(&a, b"m=audio 2 RTP/AVP 8\r\n").is_none());
        let g729_and_pcmu = payload_map(b"m=audio 1 RTP/AVP 18 0\r\na=rtpmap:18 G729/8000\r\n");
        assert!(supported(&payload_map(b"m=audio 1 RTP/AVP 18\r\n")).is_empty());
        let offer = offer_for_b(
            b"m=audio 1 RTP/AVP 18 0\r\na=rtpmap:18 G729/8000\r\n",
            &supported(&g729_and_pcmu),
        );
        let offer = String::from_utf8(offer).unwrap();
        assert!(
            offer.starts_with("m=audio 1 RTP/AVP 0 8 "),
            "G.729 dropped: {offer}"
        );
        assert!(!offer.contains("G729"));
    }
}

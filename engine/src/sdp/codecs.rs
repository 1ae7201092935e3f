//! Payload-list edits on SDP that Maskline itself wrote (the output of
//! [`super::rewrite`]: CRLF lines, one audio m-line first), used when the
//! legs need transcoding: offer the callee extra codecs Maskline can
//! transcode to, and answer the caller with the one codec of its own offer
//! that Maskline transcodes from.

/// The payload types of the first audio m-line, in order.
pub fn audio_payloads(sdp: &[u8]) -> Vec<u8> {
    lines(sdp)
        .find_map(|l| l.strip_prefix("m=audio "))
        .map(|m| {
            m.split_whitespace()
                .skip(2)
                .filter_map(|t| t.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Append payload types (with their `a=rtpmap` value, e.g.
/// `"0 PCMU/8000"`) to the first audio m-line; types already there are
/// skipped.
pub fn add_payloads(sdp: &[u8], extra: &[(u8, String)]) -> Vec<u8> {
    let present = audio_payloads(sdp);
    let extra: Vec<&(u8, String)> = extra
        .iter()
        .filter(|(pt, _)| !present.contains(pt))
        .collect();
    if extra.is_empty() {
        return sdp.to_vec();
    }
    let mut out = String::new();
    let mut in_audio = false;
    let mut added = false;
    for line in lines(sdp) {
        if line.starts_with("m=") {
            if in_audio && !added {
                push_rtpmaps(&mut out, &extra);
                added = true;
            }
            in_audio = line.starts_with("m=audio ") && !added;
            if in_audio {
                out.push_str(line);
                for (pt, _) in &extra {
                    out.push_str(&format!(" {pt}"));
                }
                out.push_str("\r\n");
                continue;
            }
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    if in_audio && !added {
        push_rtpmaps(&mut out, &extra);
    }
    out.into_bytes()
}

fn push_rtpmaps(out: &mut String, extra: &[&(u8, String)]) {
    for (_, map) in extra {
        out.push_str(&format!("a=rtpmap:{map}\r\n"));
    }
}

/// Reduce the first audio m-line to `keep` (payload type and the
/// `a=rtpmap` value to add when the SDP has none for it), dropping the
/// `a=rtpmap`/`a=fmtp` lines of every other type on that m-line.
pub fn keep_payloads(sdp: &[u8], keep: &[(u8, Option<String>)]) -> Vec<u8> {
    let kept: Vec<u8> = keep.iter().map(|(pt, _)| *pt).collect();
    let mut out = String::new();
    let mut in_audio = false;
    let mut done_audio = false;
    let mut have_map: Vec<u8> = Vec::new();
    let attr_pt = |line: &str, prefix: &str| -> Option<u8> {
        line.strip_prefix(prefix)?
            .split([' ', '/'])
            .next()?
            .parse()
            .ok()
    };
    let finish = |out: &mut String, have_map: &[u8]| {
        for (pt, map) in keep {
            if let (false, Some(map)) = (have_map.contains(pt), map) {
                out.push_str(&format!("a=rtpmap:{map}\r\n"));
            }
        }
    };
    for line in lines(sdp) {
        if line.starts_with("m=") {
            if in_audio {
                finish(&mut out, &have_map);
                done_audio = true;
            }
            in_audio = line.starts_with("m=audio ") && !done_audio;
            if in_audio {
                let head: Vec<&str> = line.split_whitespace().take(3).collect();
                out.push_str(&head.join(" "));
                for pt in &kept {
                    out.push_str(&format!(" {pt}"));
                }
                out.push_str("\r\n");
                continue;
            }
        }
        if in_audio {
            if let Some(pt) = attr_pt(line, "a=rtpmap:").or_else(|| attr_pt(line, "a=fmtp:")) {
                if !kept.contains(&pt) {
                    continue;
                }
                if line.starts_with("a=rtpmap:") {
                    have_map.push(pt);
                }
            }
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    if in_audio {
        finish(&mut out, &have_map);
    }
    out.into_bytes()
}

fn lines(sdp: &[u8]) -> impl Iterator<Item = &str> {
    std::str::from_utf8(sdp)
        .unwrap_or("")
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPUS_ONLY: &str = "v=0\r\no=maskline 1 1 IN IP4 127.0.0.1\r\ns=maskline\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 20002 RTP/AVP 111 101\r\na=rtpmap:111 opus/48000/2\r\na=fmtp:111 useinbandfec=1\r\na=rtpmap:101 telephone-event/48000\r\na=sendrecv\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\n";

    #[test]
    fn add_then_keep() {
        let offer = add_payloads(
            OPUS_ONLY.as_bytes(),
            &[(0, "0 PCMU/8000".into()), (111, "111 opus/48000/2".into())],
        );
        let text = String::from_utf8(offer.clone()).unwrap();
        assert!(
            text.contains("m=audio 20002 RTP/AVP 111 101 0\r\n"),
            "{text}"
        );
        assert!(
            text.contains("a=rtpmap:0 PCMU/8000\r\nm=video"),
            "rtpmap stays in the audio section: {text}"
        );
        assert_eq!(audio_payloads(&offer), vec![111, 101, 0]);

        let answer = keep_payloads(&offer, &[(111, None), (101, None)]);
        let text = String::from_utf8(answer).unwrap();
        assert!(text.contains("m=audio 20002 RTP/AVP 111 101\r\n"));
        assert!(!text.contains("PCMU"));
        assert!(text.contains("a=fmtp:111 useinbandfec=1"));
        assert!(
            text.contains("a=rtpmap:96 VP8/90000"),
            "other m-lines untouched"
        );

        let pcmu = keep_payloads(OPUS_ONLY.as_bytes(), &[(0, Some("0 PCMU/8000".into()))]);
        let text = String::from_utf8(pcmu).unwrap();
        assert!(
            text.contains("m=audio 20002 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
                || text.contains("a=rtpmap:0 PCMU/8000"),
            "{text}"
        );
        assert!(!text.contains("opus"));
        assert_eq!(audio_payloads(text.as_bytes()), vec![0]);
    }
}

//! Codecs across the legs: the callee is offered the caller's codecs plus
//! the PCMU, PCMA and Opus the caller lacks; when it picks one the caller
//! did not offer, the caller is answered with its own codec and the relay
//! transcodes. Asserted on the wire with raw peers: the SDP of each leg,
//! then real audio both ways (Opus encoded and decoded here with libopus
//! through `audiopus`, PCMU with the suite's own G.711), identified by
//! frequency with Goertzel, plus the payload types and timestamp clocks
//! each side receives. When the callee picks a common codec the payloads
//! cross byte for byte; a caller offering nothing Maskline handles gets 488.

use std::f64::consts::PI;
use std::net::SocketAddr;
use std::time::Duration;

use audiopus::coder::{Decoder, Encoder};
use audiopus::{Application, Channels, SampleRate};
use maskline_e2e::audio::tone_share;
use maskline_e2e::media::{
    parse_rtp, rtp_packet, send_tone, ulaw_decode, RtpView, Tone, FRAME, PCMU_RATE, PTIME, PT_PCMU,
};
use maskline_e2e::{
    bounded, BridgedCall, CallEnds, Dialog, E2eError, Maskline, OutgoingInvite, Result,
    RtpEndpoint, SipMessage, SipPeer, StartOptions, PARTY_A, PARTY_B, WAIT,
};
use tokio::net::UdpSocket;
use tokio::time::{interval_at, timeout_at, Instant, MissedTickBehavior};

use crate::LOOPBACK;

/// Overall bound of one test.
const LIMIT: Duration = Duration::from_secs(20);
/// Party A's tone.
const A_HZ: f64 = 440.0;
/// Party B's tone.
const B_HZ: f64 = 1000.0;
/// Peak amplitude of the tones (about -12 dBFS).
const AMPLITUDE: f64 = 8_000.0;
/// The payload type the callers give Opus.
const PT_OPUS: u8 = 111;
/// Opus's RTP clock and the rate the test encodes and decodes at.
const OPUS_RATE: u32 = 48_000;
/// Samples in a 20 ms Opus frame at 48 kHz (mono).
const OPUS_FRAME: usize = 960;
/// Packets each party sends (one second).
const PACKETS: usize = 50;
/// Transcoded packets each side must receive: a resampler or codec may
/// hold back the first frame or so.
const TRANSCODED_AT_LEAST: usize = PACKETS - 2;
/// Packets left out of the audio check while the codecs settle.
const WARM_UP: usize = 10;
/// How long the last packet may take to cross the relay.
const CROSS_WITHIN: Duration = Duration::from_secs(3);
/// Largest decoded Opus packet: 120 ms at 48 kHz, stereo.
const MAX_DECODED: usize = 5_760 * 2;

fn lo(port: u16) -> SocketAddr {
    SocketAddr::from((LOOPBACK, port))
}

fn token() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// An SDP for `rtp` whose audio line lists `formats` (e.g. `"111"`)
/// followed by the `attrs` lines (e.g. `a=rtpmap:111 opus/48000/2`).
fn sdp(owner: &str, rtp: SocketAddr, formats: &str, attrs: &[&str]) -> String {
    let ip = rtp.ip();
    let mut body = format!(
        "v=0\r\n\
         o={owner} 1700000000 1700000000 IN IP4 {ip}\r\n\
         s=-\r\n\
         c=IN IP4 {ip}\r\n\
         t=0 0\r\n\
         m=audio {port} RTP/AVP {formats}\r\n",
        port = rtp.port()
    );
    for a in attrs {
        body.push_str(a);
        body.push_str("\r\n");
    }
    body.push_str("a=ptime:20\r\na=sendrecv\r\n");
    body
}

/// The formats of the first `m=audio` line.
fn audio_formats(sdp: &str) -> Vec<String> {
    sdp.lines()
        .find_map(|l| l.trim().strip_prefix("m=audio "))
        .map(|rest| {
            rest.split_whitespace()
                .skip(2)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The encoding of payload type `pt` per its `a=rtpmap` (e.g. `PCMU/8000`).
fn rtpmap(sdp: &str, pt: &str) -> Option<String> {
    let prefix = format!("a=rtpmap:{pt} ");
    sdp.lines()
        .find_map(|l| l.trim().strip_prefix(prefix.as_str()))
        .map(|e| e.trim().to_string())
}

/// Sends an INVITE from `peer` to `server` dialling `dialled` as `caller`
/// with `body` as its SDP offer.
async fn invite_with_sdp(
    peer: &mut SipPeer,
    server: SocketAddr,
    dialled: &str,
    caller: &str,
    body: &str,
) -> Result<OutgoingInvite> {
    let local = peer.local_addr();
    let tag = format!("a{}", token());
    let branch = format!("z9hG4bK{}", token());
    let call_id = format!("{}@{}", token(), local.ip());
    let uri = format!("sip:{dialled}@{server}");
    let from = format!("<sip:{caller}@{local}>;tag={tag}");
    let contact = format!("sip:{caller}@{local}");
    let text = format!(
        "INVITE {uri} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch={branch};rport\r\n\
         Max-Forwards: 70\r\n\
         From: {from}\r\n\
         To: <sip:{dialled}@{server}>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <{contact}>\r\n\
         P-Asserted-Identity: <sip:{caller}@{ip}>\r\n\
         Allow: INVITE, ACK, CANCEL, BYE, OPTIONS\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: {len}\r\n\r\n{body}",
        ip = local.ip(),
        len = body.len(),
    );
    peer.send_raw(text.as_bytes()).await?;
    Ok(OutgoingInvite {
        call_id,
        from,
        tag,
        branch,
        cseq: 1,
        uri,
        contact,
        text,
    })
}

/// Answers `invite` 200 with `body` as the SDP answer and waits for the ACK.
async fn answer_with_sdp(
    peer: &mut SipPeer,
    invite: &SipMessage,
    owner: &str,
    body: &str,
) -> Result<Dialog> {
    let tag = format!("b{}", token());
    let contact = format!("sip:{owner}@{}", peer.local_addr());
    let dialog = Dialog::from_uas(invite, &tag, &contact)?;
    peer.respond(
        invite,
        200,
        "OK",
        Some(&tag),
        &[format!("Contact: <{contact}>")],
        Some(body),
    )
    .await?;
    let call_id = dialog.call_id.clone();
    peer.recv_where(&format!("the ACK for {call_id}"), WAIT, |m| {
        m.method() == Some("ACK") && m.call_id() == Some(call_id.as_str())
    })
    .await?;
    Ok(dialog)
}

/// An SDP offer or answer: the audio formats and their attribute lines.
type Media<'a> = (&'a str, &'a [&'a str]);

const OPUS_ONLY: Media = ("111", &["a=rtpmap:111 opus/48000/2"]);
const PCMU_ONLY: Media = ("0", &["a=rtpmap:0 PCMU/8000"]);
const PCMU_AND_OPUS: Media = (
    "0 111",
    &["a=rtpmap:0 PCMU/8000", "a=rtpmap:111 opus/48000/2"],
);
const G729_ONLY: Media = ("18", &["a=rtpmap:18 G729/8000", "a=fmtp:18 annexb=no"]);

/// A call through Maskline on a new session: A offers `offer`, the callee
/// on the trunk answers 200 with `answer`, A is answered and ACKs.
async fn call_with(ml: &Maskline, offer: Media<'_>, answer: Media<'_>) -> Result<BridgedCall> {
    let session = ml.api().create_session(PARTY_A, PARTY_B, None).await?;
    let ends = CallEnds::slot(ml, 0);
    let mut callee = SipPeer::bind(ml.trunk_addr(), ml.sip_addr()).await?;
    let caller_rtp = RtpEndpoint::bind(lo(ends.caller_rtp)).await?;
    let callee_rtp = RtpEndpoint::bind(lo(ends.callee_rtp)).await?;
    let mut caller = SipPeer::bind(lo(ends.caller_sip), ml.sip_addr()).await?;
    let offer_sdp = sdp(PARTY_A, caller_rtp.local_addr(), offer.0, offer.1);
    let invite = invite_with_sdp(
        &mut caller,
        ml.sip_addr(),
        &session.masked_number,
        PARTY_A,
        &offer_sdp,
    )
    .await?;
    let callee_invite = match callee.recv_request("INVITE").await {
        Ok(m) => m,
        Err(e) => {
            let got = caller
                .final_response(&invite, Duration::from_millis(500))
                .await
                .map(|m| m.raw_text())
                .unwrap_or_else(|_| "(nothing)".into());
            return Err(E2eError::Unexpected(format!(
                "no INVITE reached the trunk ({e}); the caller got:\n{got}"
            )));
        }
    };
    let answer_sdp = sdp(PARTY_B, callee_rtp.local_addr(), answer.0, answer.1);
    let (callee_dialog, answered) = tokio::join!(
        answer_with_sdp(&mut callee, &callee_invite, PARTY_B, &answer_sdp),
        caller.answered(&invite, WAIT)
    );
    let callee_dialog = callee_dialog?;
    let (caller_answer, caller_dialog) = answered?;
    Ok(BridgedCall {
        caller,
        callee,
        caller_rtp,
        callee_rtp,
        caller_dialog,
        callee_dialog,
        invite,
        callee_invite,
        caller_answer,
    })
}

/// Sample `n` of a `freq_hz` sine at `rate`.
fn sine(freq_hz: f64, rate: u32, n: usize) -> i16 {
    let t = n as f64 / f64::from(rate);
    (AMPLITUDE * (2.0 * PI * freq_hz * t).sin()).round() as i16
}

fn opus_error(what: &str, e: audiopus::Error) -> E2eError {
    E2eError::Unexpected(format!("libopus {what}: {e}"))
}

/// Sends `count` 20 ms Opus packets (mono, 48 kHz, PT 111, timestamps
/// +960) of a `freq_hz` tone from `socket` to `dest`, the first at `start`.
async fn send_opus_tone(
    socket: &UdpSocket,
    dest: SocketAddr,
    freq_hz: f64,
    count: usize,
    start: Instant,
) -> Result<()> {
    let encoder = Encoder::new(SampleRate::Hz48000, Channels::Mono, Application::Voip)
        .map_err(|e| opus_error("encoder", e))?;
    let ssrc: u32 = rand::random();
    let seq0: u16 = rand::random::<u16>() & 0x7fff;
    let ts0: u32 = rand::random::<u32>() & 0x7fff_ffff;
    let mut tick = interval_at(start, PTIME);
    tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut out = vec![0u8; 1500];
    for k in 0..count {
        let frame: Vec<i16> = (k * OPUS_FRAME..(k + 1) * OPUS_FRAME)
            .map(|n| sine(freq_hz, OPUS_RATE, n))
            .collect();
        let len = encoder
            .encode(&frame, &mut out)
            .map_err(|e| opus_error("encode", e))?;
        let payload = out.get(..len).unwrap_or_default();
        let pkt = rtp_packet(
            PT_OPUS,
            k == 0,
            seq0.wrapping_add(k as u16),
            ts0.wrapping_add((k * OPUS_FRAME) as u32),
            ssrc,
            payload,
        );
        tick.tick().await;
        socket
            .send_to(&pkt, dest)
            .await
            .map_err(|e| E2eError::io(format!("sending Opus to {dest}"), e))?;
    }
    Ok(())
}

/// RTP packets arriving on `socket` until `count` have come or `deadline`
/// passes; RTCP (payload types 72–76 in the RTP view) is skipped.
async fn receive_rtp(socket: &UdpSocket, count: usize, deadline: Instant) -> Result<Vec<RtpView>> {
    let mut got = Vec::with_capacity(count);
    let mut buf = vec![0u8; 2048];
    while got.len() < count {
        let (len, _) = match timeout_at(deadline, socket.recv_from(&mut buf)).await {
            Err(_) => break,
            Ok(r) => r.map_err(|e| E2eError::io("receiving RTP", e))?,
        };
        if let Some(v) = buf.get(..len).and_then(parse_rtp) {
            if !(72..=76).contains(&v.pt) {
                got.push(v);
            }
        }
    }
    Ok(got)
}

/// At least `at_least` packets came, all of payload type `pt`, each one
/// sequence number and `ts_step` timestamp units after the one before.
fn assert_stream(pkts: &[RtpView], at_least: usize, pt: u8, ts_step: u32, what: &str) {
    let summary = || {
        pkts.iter()
            .map(|p| {
                format!(
                    "pt={} seq={} ts={} len={}",
                    p.pt,
                    p.seq,
                    p.ts,
                    p.payload.len()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(
        pkts.len() >= at_least,
        "{what}: {} packets arrived, want at least {at_least}:\n{}",
        pkts.len(),
        summary()
    );
    assert!(
        pkts.iter().all(|p| p.pt == pt),
        "{what}: every packet must have PT {pt}:\n{}",
        summary()
    );
    for pair in pkts.windows(2) {
        let [a, b] = pair else { continue };
        assert!(
            b.seq.wrapping_sub(a.seq) == 1 && b.ts.wrapping_sub(a.ts) == ts_step,
            "{what}: seq {} → {} and ts {} → {}; want +1 and +{ts_step}:\n{}",
            a.seq,
            b.seq,
            a.ts,
            b.ts,
            summary()
        );
    }
}

/// Every 100 ms window of `samples` (at `rate`) after the first
/// `skip` samples has most of its energy at `want` and next to none at
/// `other`.
fn assert_tone(samples: &[i16], rate: u32, skip: usize, want: f64, other: f64, what: &str) {
    let window = (rate / 10) as usize;
    let mut at = skip;
    let mut checked = 0;
    while let Some(w) = samples.get(at..at + window) {
        let (share, leak) = (tone_share(w, rate, want), tone_share(w, rate, other));
        assert!(
            share > 0.8 && leak < 0.05,
            "{what}: the window at sample {at} has {share:.3} of its energy at {want} Hz \
             and {leak:.3} at {other} Hz"
        );
        checked += 1;
        at += window;
    }
    assert!(
        checked >= 3,
        "{what}: only {checked} whole windows in {} samples",
        samples.len()
    );
}

/// Issue: the caller offers only Opus, the callee answers only PCMU.
/// The callee is offered `111 0 8`; the caller is answered with Opus
/// alone; A's Opus tone reaches B as PCMU (PT 0, +160 per packet) and
/// B's PCMU tone reaches A as Opus (PT 111, +960 per packet), each still
/// its own frequency.
#[tokio::test]
async fn opus_caller_and_pcmu_callee_are_transcoded_both_ways() -> Result<()> {
    bounded(LIMIT, async {
        let ml = Maskline::start(StartOptions::default()).await?;
        let mut call = call_with(&ml, OPUS_ONLY, PCMU_ONLY).await?;

        let to_b = call.callee_invite.body_text();
        assert_eq!(
            audio_formats(&to_b),
            ["111", "0", "8"],
            "B must be offered A's Opus, then PCMU and PCMA:\n{to_b}"
        );
        assert_eq!(
            rtpmap(&to_b, "111").as_deref(),
            Some("opus/48000/2"),
            "{to_b}"
        );
        assert_eq!(rtpmap(&to_b, "0").as_deref(), Some("PCMU/8000"), "{to_b}");
        assert_eq!(rtpmap(&to_b, "8").as_deref(), Some("PCMA/8000"), "{to_b}");
        let to_a = call.caller_answer.body_text();
        assert_eq!(
            audio_formats(&to_a),
            ["111"],
            "A must be answered with its own Opus only:\n{to_a}"
        );
        assert_eq!(
            rtpmap(&to_a, "111").as_deref(),
            Some("opus/48000/2"),
            "{to_a}"
        );
        assert!(
            !to_a.contains("PCMU") && !to_a.contains("PCMA"),
            "B's codec must not reach A:\n{to_a}"
        );

        let (a_side, b_side) = call.relay_addrs()?;
        let start = Instant::now();
        let deadline = start + PTIME * PACKETS as u32 + CROSS_WITHIN;
        let (a_sent, b_sent, at_b, at_a) = tokio::join!(
            send_opus_tone(call.caller_rtp.socket(), a_side, A_HZ, PACKETS, start),
            send_tone(
                call.callee_rtp.socket(),
                b_side,
                Tone::new(B_HZ),
                PACKETS,
                start,
                |_| false
            ),
            receive_rtp(call.callee_rtp.socket(), TRANSCODED_AT_LEAST, deadline),
            receive_rtp(call.caller_rtp.socket(), TRANSCODED_AT_LEAST, deadline),
        );
        a_sent?;
        b_sent?;
        let (at_b, at_a) = (at_b?, at_a?);

        assert_stream(&at_b, TRANSCODED_AT_LEAST, PT_PCMU, FRAME as u32, "at B");
        assert!(
            at_b.iter().all(|p| p.payload.len() == FRAME),
            "B must get 20 ms (160-byte) PCMU payloads"
        );
        let pcm_b: Vec<i16> = at_b
            .iter()
            .flat_map(|p| p.payload.iter().map(|&b| ulaw_decode(b)))
            .collect();
        assert_tone(
            &pcm_b,
            PCMU_RATE,
            WARM_UP * FRAME,
            A_HZ,
            B_HZ,
            "A's tone at B",
        );

        assert_stream(
            &at_a,
            TRANSCODED_AT_LEAST,
            PT_OPUS,
            OPUS_FRAME as u32,
            "at A",
        );
        let mut decoder = Decoder::new(SampleRate::Hz48000, Channels::Mono)
            .map_err(|e| opus_error("decoder", e))?;
        let mut pcm_a = Vec::new();
        let mut buf = vec![0i16; MAX_DECODED];
        for p in &at_a {
            let n = decoder
                .decode(Some(p.payload.as_slice()), buf.as_mut_slice(), false)
                .map_err(|e| opus_error(&format!("decoding packet seq {}", p.seq), e))?;
            assert_eq!(
                n, OPUS_FRAME,
                "A must get 20 ms Opus frames (seq {})",
                p.seq
            );
            pcm_a.extend_from_slice(buf.get(..n).unwrap_or_default());
        }
        assert_tone(
            &pcm_a,
            OPUS_RATE,
            WARM_UP * OPUS_FRAME,
            B_HZ,
            A_HZ,
            "B's tone at A",
        );

        call.caller_hangs_up().await
    })
    .await
}

/// Issue: when the callee picks a codec the caller offered (A offers
/// PCMU and Opus, B answers PCMU), nothing is transcoded: the payloads
/// reach the other side byte for byte, in order, still PT 0.
#[tokio::test]
async fn a_common_codec_is_relayed_untouched() -> Result<()> {
    bounded(LIMIT, async {
        let ml = Maskline::start(StartOptions::default()).await?;
        let mut call = call_with(&ml, PCMU_AND_OPUS, PCMU_ONLY).await?;
        let to_b = call.callee_invite.body_text();
        let formats = audio_formats(&to_b);
        assert_eq!(
            formats.get(..2),
            Some(&["0".to_string(), "111".to_string()][..]),
            "B must be offered A's codecs first, in A's order:\n{to_b}"
        );
        let to_a = call.caller_answer.body_text();
        assert_eq!(audio_formats(&to_a), ["0"], "{to_a}");
        assert_eq!(rtpmap(&to_a, "0").as_deref(), Some("PCMU/8000"), "{to_a}");

        let (a_side, b_side) = call.relay_addrs()?;
        let (a_tone, b_tone) = (Tone::new(A_HZ), Tone::new(B_HZ));
        let start = Instant::now();
        let deadline = start + PTIME * PACKETS as u32 + CROSS_WITHIN;
        let (a_sent, b_sent, at_b, at_a) = tokio::join!(
            send_tone(
                call.caller_rtp.socket(),
                a_side,
                a_tone,
                PACKETS,
                start,
                |_| false
            ),
            send_tone(
                call.callee_rtp.socket(),
                b_side,
                b_tone,
                PACKETS,
                start,
                |_| false
            ),
            receive_rtp(call.callee_rtp.socket(), PACKETS, deadline),
            receive_rtp(call.caller_rtp.socket(), PACKETS, deadline),
        );
        a_sent?;
        b_sent?;
        let (at_b, at_a) = (at_b?, at_a?);
        for (what, got, tone) in [("at B", &at_b, a_tone), ("at A", &at_a, b_tone)] {
            assert_stream(got, PACKETS, PT_PCMU, FRAME as u32, what);
            let want: Vec<Vec<u8>> = (0..PACKETS).map(|k| tone.pcmu_frame(k)).collect();
            let payloads: Vec<Vec<u8>> = got.iter().map(|p| p.payload.clone()).collect();
            assert!(
                payloads == want,
                "{what}: the payloads must be the ones sent, byte for byte and in order"
            );
        }
        call.caller_hangs_up().await
    })
    .await
}

/// Issue: a caller offering only G.729, which Maskline can neither relay
/// for recording nor transcode, is refused with 488 Not Acceptable Here.
#[tokio::test]
async fn a_caller_offering_only_g729_gets_488() -> Result<()> {
    bounded(LIMIT, async {
        let ml = Maskline::start(StartOptions::default()).await?;
        let session = ml.api().create_session(PARTY_A, PARTY_B, None).await?;
        let ends = CallEnds::slot(&ml, 0);
        let mut caller = SipPeer::bind(lo(ends.caller_sip), ml.sip_addr()).await?;
        let offer = sdp(PARTY_A, lo(ends.caller_rtp), G729_ONLY.0, G729_ONLY.1);
        let invite = invite_with_sdp(
            &mut caller,
            ml.sip_addr(),
            &session.masked_number,
            PARTY_A,
            &offer,
        )
        .await?;
        let resp = caller.final_response(&invite, WAIT).await?;
        assert_eq!(resp.status(), Some(488), "{}", resp.raw_text());
        assert!(resp.to_tag().is_some(), "{}", resp.raw_text());
        Ok(())
    })
    .await
}

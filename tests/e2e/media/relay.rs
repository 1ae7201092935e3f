//! What the relay does with packets: media timeout on a silent leg,
//! strict source after latching, RFC 4733 telephone-events passed through.

use std::net::SocketAddr;
use std::time::Duration;

use maskline_e2e::media::{
    dtmf_digits, dtmf_packets, parse_rtp, rtp_packet, send_tone, RtpView, Tone, PTIME, PT_PCMU,
    PT_TELEPHONE_EVENT,
};
use maskline_e2e::{
    bounded, bridge_call, BridgedCall, CallEnds, E2eError, Maskline, Result, StartOptions, PARTY_A,
    PARTY_B,
};
use serde_json::Value;
use tokio::net::UdpSocket;
use tokio::time::{interval, timeout_at, Instant};

use super::{ended_call, live_call_id, B_HZ, MEDIA_LIMIT};

/// How long a packet may take to cross the relay.
const CROSS_WITHIN: Duration = Duration::from_secs(5);

async fn plain_call(ml: &Maskline) -> Result<(BridgedCall, String)> {
    let session = ml.api().create_session(PARTY_A, PARTY_B, None).await?;
    let call = bridge_call(
        ml,
        CallEnds::slot(ml, 0),
        PARTY_A,
        PARTY_B,
        &session.masked_number,
    )
    .await?;
    let id = live_call_id(ml, &session.id).await?;
    Ok((call, id))
}

/// The next RTP packet on `socket` before `deadline` (`None` at the
/// deadline); datagrams that are not RTP are skipped.
async fn next_rtp(socket: &UdpSocket, deadline: Instant) -> Result<Option<RtpView>> {
    let mut buf = vec![0u8; 2048];
    loop {
        let (len, _) = match timeout_at(deadline, socket.recv_from(&mut buf)).await {
            Err(_) => return Ok(None),
            Ok(r) => r.map_err(|e| E2eError::io("receiving RTP", e))?,
        };
        if let Some(v) = buf.get(..len).and_then(parse_rtp) {
            return Ok(Some(v));
        }
    }
}

async fn send(socket: &UdpSocket, pkt: &[u8], dest: SocketAddr) -> Result<()> {
    socket
        .send_to(pkt, dest)
        .await
        .map(|_| ())
        .map_err(|e| E2eError::io(format!("sending RTP to {dest}"), e))
}

/// Issue 4 media safety: with `[rtp] media_timeout_secs = 2`, a bridged
/// call whose caller stops sending RTP (while the callee keeps talking) is
/// hung up no sooner than 2 s later: BYE to both legs with
/// `Reason: Q.850;cause=102`, the call ends `MEDIA_TIMEOUT` by `system`.
#[tokio::test]
async fn a_leg_that_stops_sending_rtp_is_hung_up_with_media_timeout() -> Result<()> {
    bounded(MEDIA_LIMIT, async {
        let ml = Maskline::start(StartOptions {
            media_timeout_secs: Some(2),
            ..StartOptions::default()
        })
        .await?;
        let (mut call, id) = plain_call(&ml).await?;
        call.exchange_rtp().await?;
        let a_stopped = Instant::now();
        let (_, to_b_side) = call.relay_addrs()?;
        let within = Duration::from_secs(7);
        let b_talks = send_tone(
            call.callee_rtp.socket(),
            to_b_side,
            Tone::new(B_HZ),
            400,
            Instant::now(),
            |_| false,
        );
        let byes = async {
            tokio::join!(
                call.caller.expect_bye(&call.caller_dialog, within),
                call.callee.expect_bye(&call.callee_dialog, within)
            )
        };
        let (a_bye, b_bye) = tokio::select! {
            byes = byes => byes,
            talked = b_talks => {
                return Err(E2eError::Unexpected(format!(
                    "B sent 8 s of RTP and no BYE came ({talked:?})"
                )))
            }
        };
        let elapsed = a_stopped.elapsed();
        let (a_bye, b_bye) = (a_bye?, b_bye?);
        assert!(
            elapsed >= Duration::from_millis(1900),
            "hung up {elapsed:?} after A's last packet; the media timeout is 2 s"
        );
        for (who, bye) in [("A", &a_bye), ("B", &b_bye)] {
            let reason = bye.header("reason").unwrap_or_default();
            let q850_102 = reason
                .to_ascii_lowercase()
                .replace(' ', "")
                .contains("cause=102");
            assert!(
                q850_102 && reason.starts_with("Q.850"),
                "{who}'s BYE must carry Reason: Q.850;cause=102:\n{}",
                bye.raw_text()
            );
        }
        let ended = ended_call(&ml, &id).await?;
        assert_eq!(
            ended.get("hangup_cause").and_then(Value::as_str),
            Some("MEDIA_TIMEOUT"),
            "{ended}"
        );
        assert_eq!(
            ended.get("hangup_by").and_then(Value::as_str),
            Some("system"),
            "{ended}"
        );
        Ok(())
    })
    .await
}

/// Issue 4 media safety: once A's RTP has latched, packets sent to the
/// same relay port from a third socket are dropped, while A's own keep
/// flowing. Each intruding packet is sent just before one of A's, to the
/// same relay socket, so by the time A's last packet reaches B every
/// intruder has been handled: no wait is needed to prove an absence.
#[tokio::test]
async fn after_latching_packets_from_a_third_address_do_not_reach_b() -> Result<()> {
    bounded(MEDIA_LIMIT, async {
        let ml = Maskline::start(StartOptions::default()).await?;
        let (call, _id) = plain_call(&ml).await?;
        let (to_a_side, _) = call.relay_addrs()?;
        let a = call.caller_rtp.socket();
        let b = call.callee_rtp.socket();
        let intruder = UdpSocket::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .map_err(|e| E2eError::io("binding the intruder", e))?;
        let (a_ssrc, x_ssrc): (u32, u32) = (rand::random(), rand::random());
        let frame = |tag: u8, i: u16| {
            let mut p = vec![tag; 160];
            p[1..3].copy_from_slice(&i.to_be_bytes());
            p
        };
        let a_pkt = |i: u16| {
            rtp_packet(
                PT_PCMU,
                i == 0,
                i,
                160 * u32::from(i),
                a_ssrc,
                &frame(b'A', i),
            )
        };
        let x_pkt = |i: u16| {
            rtp_packet(
                PT_PCMU,
                false,
                5000 + i,
                90_000 + 160 * u32::from(i),
                x_ssrc,
                &frame(b'X', i),
            )
        };

        // Latch A: its first packet crosses.
        send(a, &a_pkt(0), to_a_side).await?;
        let deadline = Instant::now() + CROSS_WITHIN;
        loop {
            match next_rtp(b, deadline).await? {
                Some(v) if v.payload == frame(b'A', 0) => break,
                Some(_) => continue,
                None => return Err(E2eError::timeout("A's first packet at B", CROSS_WITHIN)),
            }
        }

        const N: u16 = 20;
        let sender = async {
            let mut tick = interval(PTIME);
            for i in 1..=N {
                tick.tick().await;
                send(&intruder, &x_pkt(i), to_a_side).await?;
                send(a, &a_pkt(i), to_a_side).await?;
            }
            Ok::<_, E2eError>(())
        };
        let receiver = async {
            let deadline = Instant::now() + CROSS_WITHIN + PTIME * u32::from(N);
            let mut from_a = Vec::new();
            let mut from_x = Vec::new();
            while let Some(v) = next_rtp(b, deadline).await? {
                match v.payload.first() {
                    Some(b'A') => from_a.push(v.payload),
                    Some(b'X') => from_x.push(v.payload),
                    _ => {}
                }
                if from_a.last() == Some(&frame(b'A', N)) {
                    break;
                }
            }
            Ok::<_, E2eError>((from_a, from_x))
        };
        let (sent, got) = tokio::join!(sender, receiver);
        sent?;
        let (from_a, from_x) = got?;
        let want: Vec<Vec<u8>> = (1..=N).map(|i| frame(b'A', i)).collect();
        assert_eq!(from_a, want, "A's packets must all reach B, in order");
        assert!(
            from_x.is_empty(),
            "{} packets from the third address reached B",
            from_x.len()
        );
        Ok(())
    })
    .await
}

/// Whether an SDP offers payload type `pt` on its audio line with
/// `a=rtpmap:<pt> <encoding>`.
fn declares(sdp: &str, pt: u8, encoding: &str) -> bool {
    let pt = pt.to_string();
    let on_m_line = sdp.lines().any(|l| {
        l.trim()
            .strip_prefix("m=audio ")
            .is_some_and(|rest| rest.split_whitespace().skip(2).any(|f| f == pt))
    });
    let rtpmap = format!("a=rtpmap:{pt} {encoding}");
    on_m_line && sdp.lines().any(|l| l.trim().eq_ignore_ascii_case(&rtpmap))
}

/// Issue 4 DTMF: both legs' SDPs carry telephone-event on PT 101; the
/// RFC 4733 packets A sends for "159#*0" (updates, marker, three end
/// packets per digit) reach B unchanged and in order, and read back as
/// the same digits.
#[tokio::test]
async fn rfc4733_digits_from_a_reach_b_unchanged() -> Result<()> {
    bounded(MEDIA_LIMIT, async {
        let ml = Maskline::start(StartOptions::default()).await?;
        let (call, _id) = plain_call(&ml).await?;
        for (what, sdp) in [
            ("the INVITE to B", call.callee_invite.body_text()),
            ("the 200 to A", call.caller_answer.body_text()),
        ] {
            assert!(
                declares(&sdp, PT_TELEPHONE_EVENT, "telephone-event/8000"),
                "{what} must offer telephone-event on PT 101:\n{sdp}"
            );
        }
        let (to_a_side, _) = call.relay_addrs()?;
        let digits = "159#*0";
        let packets = dtmf_packets(digits, rand::random());
        let sent: Vec<RtpView> = packets.iter().filter_map(|p| parse_rtp(p)).collect();
        let sender = async {
            let mut tick = interval(PTIME);
            for p in &packets {
                tick.tick().await;
                send(call.caller_rtp.socket(), p, to_a_side).await?;
            }
            Ok::<_, E2eError>(())
        };
        let receiver = async {
            let deadline = Instant::now() + CROSS_WITHIN + PTIME * packets.len() as u32;
            let mut got = Vec::new();
            while got.len() < packets.len() {
                match next_rtp(call.callee_rtp.socket(), deadline).await? {
                    Some(v) if v.pt == PT_TELEPHONE_EVENT => got.push(v),
                    Some(_) => {}
                    None => break,
                }
            }
            Ok::<_, E2eError>(got)
        };
        let (s, r) = tokio::join!(sender, receiver);
        s?;
        let got = r?;
        let fields = |v: &[RtpView]| -> Vec<(u8, bool, Vec<u8>)> {
            v.iter()
                .map(|p| (p.pt, p.marker, p.payload.clone()))
                .collect()
        };
        assert_eq!(
            fields(&got),
            fields(&sent),
            "B must get A's telephone-event packets unchanged (PT, marker, payload), in order"
        );
        assert_eq!(dtmf_digits(&got), digits);
        Ok(())
    })
    .await
}

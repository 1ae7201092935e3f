//! Mid-call and early-dialog media: hold/unhold by re-INVITE, 183 early media.

use std::time::Duration;

use maskline_e2e::sip::{media_addr, sdp_body};
use maskline_e2e::{
    bounded, dial, Dialog, E2eError, Result, RtpEndpoint, SipPeer, StartOptions, PARTY_A, PARTY_B,
    WAIT,
};

use super::{
    assert_relay, both_succeed, call_over, direction, lo, new_tag, party_a_uac, received, requests,
    str_field, trunk_uas, with_session, FLOW_LIMIT,
};

/// Issue: re-INVITE hold/unhold from A. B gets each re-INVITE in its own
/// dialog with SDP pointing at Maskline (`a=sendonly`, then `a=sendrecv`);
/// A gets B's answers (`a=recvonly`, then `a=sendrecv`) pointing at
/// Maskline too; every 200 is ACKed on both sides; A's BYE reaches B.
#[tokio::test]
async fn hold_and_unhold_from_a_are_relayed_with_sdp_through_maskline() -> Result<()> {
    bounded(FLOW_LIMIT, async {
        let (ml, session) = with_session(StartOptions::default()).await?;
        let a_media = lo(ml.ports().sipp(0).media);
        let b_media = lo(ml.ports().sipp(1).media);
        let b = trunk_uas(&ml, "uas_hold_unhold.xml", false, &[]).await?;
        let a = party_a_uac(
            &ml,
            "uac_hold_unhold.xml",
            &session.masked_number,
            false,
            "party_a",
        )?;
        let (a, b) = both_succeed(a, b).await?;

        let at_b = received(&b)?;
        let invites = requests(&at_b, "INVITE");
        let [first, hold, unhold] = invites.as_slice() else {
            panic!(
                "B must get the INVITE and two re-INVITEs:\n{}",
                b.describe()
            );
        };
        for (m, want) in [(hold, "sendonly"), (unhold, "sendrecv")] {
            assert_eq!(
                m.call_id(),
                first.call_id(),
                "re-INVITE in B's dialog:\n{}",
                m.raw_text()
            );
            assert!(
                m.to_tag().is_some(),
                "re-INVITE in B's dialog:\n{}",
                m.raw_text()
            );
            assert_eq!(direction(&m.body_text()), Some(want), "{}", m.raw_text());
            assert_relay(m, &ml, a_media, "re-INVITE to B");
        }
        let acked: Vec<u32> = requests(&at_b, "ACK")
            .iter()
            .filter_map(|m| m.cseq())
            .map(|c| c.0)
            .collect();
        let invited: Vec<u32> = invites
            .iter()
            .filter_map(|m| m.cseq())
            .map(|c| c.0)
            .collect();
        assert_eq!(acked, invited, "B's 200s are each ACKed:\n{}", b.describe());
        assert_eq!(requests(&at_b, "BYE").len(), 1, "{}", b.describe());

        let at_a = received(&a)?;
        for (cseq, want) in [(2, "recvonly"), (3, "sendrecv")] {
            let Some(ok) = at_a
                .iter()
                .find(|m| m.status() == Some(200) && m.cseq() == Some((cseq, "INVITE")))
            else {
                panic!("no 200 for A's re-INVITE {cseq}:\n{}", a.describe());
            };
            assert_eq!(direction(&ok.body_text()), Some(want), "{}", ok.raw_text());
            assert_relay(ok, &ml, b_media, "200 to A's re-INVITE");
        }
        let call = call_over(&ml, &session.id, 1).await?;
        assert_eq!(str_field(&call, "state"), Some("completed"), "{call}");
        Ok(())
    })
    .await
}

/// Issue: 183 early media. B answers 183 with SDP and sends RTP before it
/// answers: A gets the 183 with SDP pointing at Maskline and receives those
/// packets; then B's 200 answers A, and the call hangs up normally.
#[tokio::test]
async fn early_media_on_183_reaches_a_before_the_answer() -> Result<()> {
    bounded(FLOW_LIMIT, async {
        let (ml, session) = with_session(StartOptions::default()).await?;
        let p = *ml.ports();
        let mut callee = SipPeer::bind(ml.trunk_addr(), ml.sip_addr()).await?;
        let a_rtp = RtpEndpoint::bind(lo(p.rtp(0))).await?;
        let b_rtp = RtpEndpoint::bind(lo(p.rtp(1))).await?;
        let (mut caller, inv) =
            dial(&ml, p.peer(0), PARTY_A, &session.masked_number, p.rtp(0)).await?;
        let b_inv = callee.recv_request("INVITE").await?;
        let b_relay = media_addr(&b_inv.body_text())
            .ok_or_else(|| E2eError::Unexpected(format!("no SDP in\n{}", b_inv.raw_text())))?;

        let tag = new_tag();
        let contact = format!("sip:{PARTY_B}@{}", callee.local_addr());
        let contact_line = format!("Contact: <{contact}>");
        let sdp = sdp_body(PARTY_B, b_rtp.local_addr());
        callee
            .respond(
                &b_inv,
                183,
                "Session Progress",
                Some(&tag),
                std::slice::from_ref(&contact_line),
                Some(&sdp),
            )
            .await?;
        let early = caller
            .recv_where("183 with SDP", WAIT, |m| {
                m.status() == Some(183) && m.call_id() == Some(inv.call_id.as_str())
            })
            .await?;
        assert_relay(&early, &ml, b_rtp.local_addr(), "183 to A");

        // B is not answered yet: its early media must reach A.
        let sent = b_rtp.send_stream(b_relay, 2, 10).await?;
        a_rtp
            .expect_payloads(&sent, Duration::from_secs(3))
            .await
            .map_err(|e| E2eError::Unexpected(format!("early media B → A: {e}")))?;

        callee
            .respond(&b_inv, 200, "OK", Some(&tag), &[contact_line], Some(&sdp))
            .await?;
        let (ok, mut a_dialog) = caller.answered(&inv, WAIT).await?;
        assert_relay(&ok, &ml, b_rtp.local_addr(), "200 to A");
        let b_call_id = b_inv.call_id().unwrap_or_default().to_string();
        callee
            .recv_where("B's ACK", WAIT, |m| {
                m.method() == Some("ACK") && m.call_id() == Some(b_call_id.as_str())
            })
            .await?;
        let b_dialog = Dialog::from_uas(&b_inv, &tag, &contact)?;
        let (resp, bye) = tokio::join!(
            caller.bye(&mut a_dialog),
            callee.expect_bye(&b_dialog, WAIT)
        );
        assert_eq!(resp?.status(), Some(200));
        bye?;
        Ok(())
    })
    .await
}

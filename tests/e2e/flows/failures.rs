//! Failures: B's error responses relayed with a Q.850 `Reason`, redirects,
//! no answer, and INVITEs refused before any call exists.

use std::time::Duration;

use maskline_e2e::{
    bounded, dial, InviteSpec, Maskline, Result, Session, SipMessage, SipPeer, StartOptions,
    PARTY_A, PARTY_B, WAIT,
};

use super::{
    call_over, lo, new_tag, party_a_uac, reason_cause, received, str_field, with_session,
    FLOW_LIMIT, SIPP_WITHIN,
};

/// One call from `caller` that the raw callee on the trunk fails with
/// `status` (plus `extra` header lines). Checks that B's failure is ACKed
/// on its INVITE's branch and returns A's final response.
async fn failed_call(
    caller: &mut SipPeer,
    callee: &mut SipPeer,
    ml: &Maskline,
    session: &Session,
    (status, reason): (u16, &str),
    extra: &[String],
) -> Result<SipMessage> {
    let inv = caller
        .invite(&InviteSpec {
            dialled: session.masked_number.clone(),
            caller: PARTY_A.into(),
            rtp: lo(ml.ports().rtp(0)),
        })
        .await?;
    let b_inv = callee.recv_request("INVITE").await?;
    callee
        .respond(&b_inv, status, reason, Some(&new_tag()), extra, None)
        .await?;
    let b_call_id = b_inv.call_id().unwrap_or_default().to_string();
    let ack = callee
        .recv_where("the ACK for B's failure", WAIT, |m| {
            m.method() == Some("ACK") && m.call_id() == Some(b_call_id.as_str())
        })
        .await?;
    assert_eq!(ack.top_branch(), b_inv.top_branch(), "{}", ack.raw_text());
    caller.final_response(&inv, WAIT).await
}

/// Issue: B's failure responses reach A with the same status and the
/// RFC 3398 Q.850 cause in `Reason`; the call ends `failed`, by B.
#[tokio::test]
async fn failures_from_b_reach_a_with_the_same_status_and_q850_reason() -> Result<()> {
    bounded(FLOW_LIMIT, async {
        let (ml, session) = with_session(StartOptions::default()).await?;
        let mut callee = SipPeer::bind(ml.trunk_addr(), ml.sip_addr()).await?;
        let mut caller = SipPeer::bind(lo(ml.ports().peer(0)), ml.sip_addr()).await?;
        let cases: [(u16, &str, &[u16]); 4] = [
            (486, "Busy Here", &[17]),
            (480, "Temporarily Unavailable", &[18, 19, 20]),
            (404, "Not Found", &[1]),
            (503, "Service Unavailable", &[41, 34]),
        ];
        for (n, (status, reason, causes)) in (1..).zip(cases) {
            let resp = failed_call(
                &mut caller,
                &mut callee,
                &ml,
                &session,
                (status, reason),
                &[],
            )
            .await?;
            assert_eq!(resp.status(), Some(status), "{}", resp.raw_text());
            let cause = reason_cause(&resp);
            assert!(
                cause
                    .as_ref()
                    .is_some_and(|(p, c)| p == "Q.850" && causes.contains(c)),
                "B's {status} must reach A with Reason: Q.850;cause={causes:?}, got {cause:?}:\n{}",
                resp.raw_text()
            );
            let call = call_over(&ml, &session.id, n).await?;
            assert_eq!(str_field(&call, "state"), Some("failed"), "{call}");
            assert_eq!(str_field(&call, "hangup_by"), Some("b"), "{call}");
        }
        Ok(())
    })
    .await
}

/// Issue: a redirect from B is not followed and not shown: A gets 480 and
/// nothing of B's Contact.
#[tokio::test]
async fn redirect_from_b_reaches_a_as_480_without_b_contact() -> Result<()> {
    bounded(FLOW_LIMIT, async {
        let (ml, session) = with_session(StartOptions::default()).await?;
        let mut callee = SipPeer::bind(ml.trunk_addr(), ml.sip_addr()).await?;
        let mut caller = SipPeer::bind(lo(ml.ports().peer(0)), ml.sip_addr()).await?;
        let target = "+14155559876";
        let contact = vec![format!("Contact: <sip:{target}@10.9.8.7:5070>")];
        let resp = failed_call(
            &mut caller,
            &mut callee,
            &ml,
            &session,
            (302, "Moved Temporarily"),
            &contact,
        )
        .await?;
        assert_eq!(resp.status(), Some(480), "{}", resp.raw_text());
        maskline_e2e::assert_absent(&resp.raw, target, "the 480 to A");
        assert!(
            maskline_e2e::find_bytes(&resp.raw, b"10.9.8.7").is_none(),
            "{}",
            resp.raw_text()
        );
        assert_eq!(
            reason_cause(&resp).map(|r| r.0),
            Some("Q.850".to_string()),
            "{}",
            resp.raw_text()
        );
        call_over(&ml, &session.id, 1).await?;
        Ok(())
    })
    .await
}

/// Issue: no answer. With `ring_timeout_secs = 2`, B rings and never
/// answers: A gets 480 with `Reason: Q.850;cause=19`, B gets a CANCEL on its
/// INVITE's branch (answered 200 + 487, then ACKed by Maskline).
#[tokio::test]
async fn no_answer_gives_a_480_cause_19_and_cancels_b() -> Result<()> {
    bounded(FLOW_LIMIT, async {
        let (ml, session) = with_session(StartOptions {
            ring_timeout_secs: 2,
            ..StartOptions::default()
        })
        .await?;
        let p = *ml.ports();
        let mut callee = SipPeer::bind(ml.trunk_addr(), ml.sip_addr()).await?;
        let (mut caller, inv) =
            dial(&ml, p.peer(0), PARTY_A, &session.masked_number, p.rtp(0)).await?;
        let b_inv = callee.recv_request("INVITE").await?;
        let tag = new_tag();
        callee
            .respond(&b_inv, 180, "Ringing", Some(&tag), &[], None)
            .await?;

        let (resp, cancel) = tokio::join!(
            caller.final_response(&inv, Duration::from_secs(6)),
            callee.recv_request_within("CANCEL", Duration::from_secs(6))
        );
        let (resp, cancel) = (resp?, cancel?);
        assert_eq!(resp.status(), Some(480), "{}", resp.raw_text());
        assert_eq!(
            reason_cause(&resp),
            Some(("Q.850".to_string(), 19)),
            "{}",
            resp.raw_text()
        );
        assert_eq!(
            cancel.top_branch(),
            b_inv.top_branch(),
            "{}",
            cancel.raw_text()
        );
        assert_eq!(cancel.call_id(), b_inv.call_id(), "{}", cancel.raw_text());
        callee
            .respond(&cancel, 200, "OK", Some(&tag), &[], None)
            .await?;
        callee
            .respond(&b_inv, 487, "Request Terminated", Some(&tag), &[], None)
            .await?;
        let b_call_id = b_inv.call_id().unwrap_or_default().to_string();
        callee
            .recv_where("the ACK for 487", WAIT, |m| {
                m.method() == Some("ACK") && m.call_id() == Some(b_call_id.as_str())
            })
            .await?;

        let call = call_over(&ml, &session.id, 1).await?;
        assert_eq!(str_field(&call, "state"), Some("failed"), "{call}");
        assert_eq!(
            str_field(&call, "hangup_cause"),
            Some("NO_ANSWER"),
            "{call}"
        );
        Ok(())
    })
    .await
}

/// Issue: INVITEs refused before any call exists: Max-Forwards 0 → 483,
/// `Require: 100rel` → 420 with `Unsupported: 100rel` (both checked by the
/// SIPp scenarios). Neither reaches the trunk: the first INVITE the trunk
/// sees is that of the normal call made afterwards, the session's only call.
#[tokio::test]
async fn max_forwards_0_gets_483_and_require_100rel_gets_420() -> Result<()> {
    bounded(FLOW_LIMIT, async {
        let (ml, session) = with_session(StartOptions::default()).await?;
        let p = *ml.ports();
        let mut trunk = SipPeer::bind(ml.trunk_addr(), ml.sip_addr()).await?;
        for (scenario, status) in [
            ("uac_expect_483_max_forwards.xml", 483),
            ("uac_expect_420_100rel.xml", 420),
        ] {
            let run = party_a_uac(
                &ml,
                scenario,
                &session.masked_number,
                false,
                &format!("expect_{status}"),
            )?;
            let out = run.finish(SIPP_WITHIN).await?;
            assert!(out.succeeded(), "expected {status}:\n{}", out.describe());
            let at_a = received(&out)?;
            let Some(resp) = at_a.iter().find(|m| m.status().is_some_and(|s| s >= 200)) else {
                panic!("no final response:\n{}", out.describe());
            };
            assert_eq!(resp.status(), Some(status), "{}", resp.raw_text());
            if status == 420 {
                let unsupported = resp.header("unsupported").unwrap_or_default();
                assert!(
                    unsupported.split(',').any(|t| t.trim() == "100rel"),
                    "{}",
                    resp.raw_text()
                );
            }
        }

        let (mut caller, inv) =
            dial(&ml, p.peer(0), PARTY_A, &session.masked_number, p.rtp(0)).await?;
        let b_inv = trunk.recv_request("INVITE").await?;
        let (b_dialog, answered) = tokio::join!(
            trunk.answer(&b_inv, PARTY_B, lo(p.rtp(1))),
            caller.answered(&inv, WAIT)
        );
        let (b_dialog, (_, mut a_dialog)) = (b_dialog?, answered?);
        let (resp, bye) =
            tokio::join!(caller.bye(&mut a_dialog), trunk.expect_bye(&b_dialog, WAIT));
        assert_eq!(resp?.status(), Some(200));
        bye?;
        let mut invite_calls: Vec<String> = trunk
            .received()
            .iter()
            .filter(|d| d.starts_with(b"INVITE "))
            .filter_map(|d| SipMessage::parse(d, ml.sip_addr()).ok())
            .filter_map(|m| m.call_id().map(str::to_string))
            .collect();
        invite_calls.dedup();
        assert_eq!(
            invite_calls.len(),
            1,
            "the trunk got INVITEs of other calls: {invite_calls:?}"
        );
        call_over(&ml, &session.id, 1).await?;
        Ok(())
    })
    .await
}

//! Bridged calls: masking of the caller ID, RTP relay, hang-up either way,
//! both directions, with the raw peer and with SIPp.

use std::time::Duration;

use maskline_e2e::{
    assert_absent, bounded, bridge_call, wait_for, CallEnds, Maskline, Result, Session, SipMessage,
    Sipp, SippOptions, StartOptions, PARTY_A, PARTY_B,
};
use serde_json::Value;

use crate::{
    assert_masked_outbound_leg, assert_media_anchored, digits, header_user, LOOPBACK, TEST_LIMIT,
};

async fn with_session() -> Result<(Maskline, Session)> {
    let ml = Maskline::start(StartOptions::default()).await?;
    let session = ml.api().create_session(PARTY_A, PARTY_B, None).await?;
    Ok((ml, session))
}

/// Once the call is over the session shows it: one call, none active.
async fn assert_session_counts_one_finished_call(ml: &Maskline, id: &str) -> Result<()> {
    wait_for(
        "the session to show call_count 1 and no active call",
        Duration::from_secs(5),
        || async {
            let s = ml.api().get_session(id).await?;
            let done = s.get("call_count").and_then(Value::as_u64) == Some(1)
                && s.get("active_call_id").is_some_and(Value::is_null);
            Ok(done.then_some(()))
        },
    )
    .await
}

/// Issue items 1–3: A calls the masked number; B's leg shows only the
/// masked number (nothing of A anywhere in what B receives, SDP included),
/// with new Call-ID and tags; RTP flows both ways unchanged through the
/// relay; A's BYE reaches B.
#[tokio::test]
async fn a_calls_b_masked_with_rtp_both_ways_then_a_hangs_up() -> Result<()> {
    bounded(TEST_LIMIT, async {
        let (ml, session) = with_session().await?;
        let masked = session.masked_number.clone();
        let mut call = bridge_call(&ml, CallEnds::slot(&ml, 0), PARTY_A, PARTY_B, &masked).await?;
        assert_masked_outbound_leg(&call, &masked, PARTY_A, PARTY_B);
        assert_media_anchored(&call, ml.ports().maskline_rtp());
        call.exchange_rtp().await?;
        call.caller_hangs_up().await?;
        assert_absent(
            &call.callee.received_bytes(),
            PARTY_A,
            "what the callee received during the whole call",
        );
        assert_absent(
            &call.caller.received_bytes(),
            PARTY_B,
            "what the caller received during the whole call",
        );
        assert_session_counts_one_finished_call(&ml, &session.id).await
    })
    .await
}

/// Issue item 3, other way: B's BYE tears down A's leg.
#[tokio::test]
async fn callee_hangs_up_and_the_caller_gets_bye() -> Result<()> {
    bounded(TEST_LIMIT, async {
        let (ml, session) = with_session().await?;
        let mut call = bridge_call(
            &ml,
            CallEnds::slot(&ml, 0),
            PARTY_A,
            PARTY_B,
            &session.masked_number,
        )
        .await?;
        call.callee_hangs_up().await?;
        assert_session_counts_one_finished_call(&ml, &session.id).await
    })
    .await
}

/// Issue item 4: B calls the masked number (dialled without `+`) and A is
/// dialled, seeing only the masked number; media flows; A hangs up.
#[tokio::test]
async fn b_calls_the_masked_number_and_a_is_dialled() -> Result<()> {
    bounded(TEST_LIMIT, async {
        let (ml, session) = with_session().await?;
        let masked = session.masked_number.clone();
        let mut call = bridge_call(
            &ml,
            CallEnds::slot(&ml, 0),
            PARTY_B,
            PARTY_A,
            digits(&masked),
        )
        .await?;
        assert_masked_outbound_leg(&call, &masked, PARTY_B, PARTY_A);
        assert_media_anchored(&call, ml.ports().maskline_rtp());
        call.exchange_rtp().await?;
        call.callee_hangs_up().await?;
        assert_absent(&call.callee.received_bytes(), PARTY_B, "what A received");
        Ok(())
    })
    .await
}

/// Issue item 1 with SIPp on both sides: a SIPp UAC as party A (its INVITE
/// carries A's number in every header that could leak and in the SDP), a
/// SIPp UAS as the callee on the trunk. The UAS's message log must show the
/// masked number in From and P-Asserted-Identity and no trace of A.
#[tokio::test]
async fn sipp_a_calls_sipp_callee_on_the_trunk() -> Result<()> {
    bounded(TEST_LIMIT, async {
        let (ml, session) = with_session().await?;
        let ports = *ml.ports();
        let mut callee = Sipp::spawn(
            &SippOptions::uas("uas_answer.xml", LOOPBACK, ports.sipp(1), ports.trunk()),
            ml.dir(),
            "callee_uas",
        )?;
        callee.wait_listening(Duration::from_secs(5)).await?;
        let caller = Sipp::spawn(
            &SippOptions::uac(
                "uac_masked_call.xml",
                LOOPBACK,
                ports.sipp(0),
                ml.sip_addr(),
                &session.masked_number,
            )
            .key("caller", PARTY_A),
            ml.dir(),
            "party_a_uac",
        )?;
        let a = caller.finish(Duration::from_secs(25)).await?;
        let b = callee.finish(Duration::from_secs(10)).await?;
        assert!(a.succeeded(), "{}\n\n{}", a.describe(), b.describe());
        assert!(b.succeeded(), "{}\n\n{}", b.describe(), a.describe());

        let received = b.received();
        let invite = received
            .iter()
            .find(|m| m.starts_with("INVITE "))
            .map(|m| SipMessage::parse(m.as_bytes(), ml.sip_addr()));
        let invite = match invite {
            Some(Ok(m)) => m,
            other => panic!(
                "no parsable INVITE in the callee's log ({other:?}):\n{}",
                b.describe()
            ),
        };
        let masked = digits(&session.masked_number);
        assert_eq!(
            header_user(&invite, "from"),
            Some(masked),
            "{}",
            invite.raw_text()
        );
        assert_eq!(
            header_user(&invite, "p-asserted-identity"),
            Some(masked),
            "{}",
            invite.raw_text()
        );
        assert_eq!(
            invite
                .request_uri()
                .and_then(maskline_e2e::sip::uri_user)
                .map(digits),
            Some(digits(PARTY_B)),
            "{}",
            invite.raw_text()
        );
        assert!(
            received.iter().any(|m| m.starts_with("BYE ")),
            "A's BYE must reach the callee:\n{}",
            b.describe()
        );
        assert_absent(
            b.messages.as_bytes(),
            PARTY_A,
            "the SIPp callee's message log",
        );
        Ok(())
    })
    .await
}

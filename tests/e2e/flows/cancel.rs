//! CANCEL before the answer, and CANCEL crossing the 200 either way.

use maskline_e2e::{bounded, Result, SipMessage, StartOptions};
use reqwest::Method;

use super::{
    assert_responses, both_succeed, call_over, first_request, party_a_uac, received, requests,
    str_field, trunk_uas, with_session, FLOW_LIMIT,
};

/// Issue: CANCEL before answer. A's INVITE rings at B (180), A cancels: A
/// gets 200 for the CANCEL and 487 for the INVITE; B gets a CANCEL for its
/// INVITE (same Call-ID, branch and CSeq), answers 487 and gets the ACK;
/// the call ends `cancelled`, hung up by A.
#[tokio::test]
async fn cancel_while_ringing_is_relayed_and_the_call_ends_cancelled_by_a() -> Result<()> {
    bounded(FLOW_LIMIT, async {
        let (ml, session) = with_session(StartOptions::default()).await?;
        let b = trunk_uas(&ml, "uas_ring_then_487_on_cancel.xml", false, &[]).await?;
        let a = party_a_uac(
            &ml,
            "uac_cancel_while_ringing.xml",
            &session.masked_number,
            false,
            "party_a",
        )?;
        let (a, b) = both_succeed(a, b).await?;

        assert_responses(&a, &[(200, "CANCEL"), (487, "INVITE")], &[(200, "INVITE")]);

        let at_b = received(&b)?;
        let invite = first_request(&at_b, "INVITE", &b)?;
        let cancel = first_request(&at_b, "CANCEL", &b)?;
        assert_eq!(cancel.call_id(), invite.call_id(), "{}", b.describe());
        assert_eq!(
            cancel.top_branch(),
            invite.top_branch(),
            "CANCEL must be on the INVITE's branch:\n{}",
            b.describe()
        );
        assert_eq!(
            cancel.cseq().map(|c| c.0),
            invite.cseq().map(|c| c.0),
            "{}",
            b.describe()
        );
        let ack = first_request(&at_b, "ACK", &b)?;
        assert_eq!(
            ack.top_branch(),
            invite.top_branch(),
            "the ACK for 487 is on the INVITE's branch:\n{}",
            b.describe()
        );
        assert!(requests(&at_b, "BYE").is_empty(), "{}", b.describe());

        let call = call_over(&ml, &session.id, 1).await?;
        let id = str_field(&call, "id").unwrap_or_default();
        let call = ml
            .api()
            .expect_status(Method::GET, &format!("/v1/calls/{id}"), None, 200)
            .await?;
        assert_eq!(str_field(&call, "state"), Some("cancelled"), "{call}");
        assert_eq!(str_field(&call, "hangup_by"), Some("a"), "{call}");
        Ok(())
    })
    .await
}

/// Issue: CANCEL crossing the 200, CANCEL first. Maskline has cancelled B
/// when B's 200 (sent before B saw the CANCEL) arrives: B gets an ACK for
/// it and then a BYE; A gets 487 and never a 200; nothing is left up.
#[tokio::test]
async fn cancel_crossing_b_200_acks_then_byes_b() -> Result<()> {
    bounded(FLOW_LIMIT, async {
        let (ml, session) = with_session(StartOptions::default()).await?;
        let b = trunk_uas(&ml, "uas_answer_after_cancel.xml", false, &[]).await?;
        let a = party_a_uac(
            &ml,
            "uac_cancel_while_ringing.xml",
            &session.masked_number,
            false,
            "party_a",
        )?;
        let (a, b) = both_succeed(a, b).await?;

        assert_responses(&a, &[(200, "CANCEL"), (487, "INVITE")], &[(200, "INVITE")]);

        let at_b = received(&b)?;
        let invite = first_request(&at_b, "INVITE", &b)?;
        let order: Vec<&str> = at_b.iter().filter_map(SipMessage::method).collect();
        assert_eq!(
            order,
            ["INVITE", "CANCEL", "ACK", "BYE"],
            "{}",
            b.describe()
        );
        let ack = first_request(&at_b, "ACK", &b)?;
        let bye = first_request(&at_b, "BYE", &b)?;
        for m in [ack, bye] {
            assert_eq!(m.call_id(), invite.call_id(), "{}", b.describe());
            assert!(
                m.to_tag().is_some(),
                "in the dialog of B's 200:\n{}",
                m.raw_text()
            );
        }
        assert_eq!(
            ack.cseq(),
            invite.cseq().map(|(n, _)| (n, "ACK")),
            "{}",
            b.describe()
        );

        let call = call_over(&ml, &session.id, 1).await?;
        assert_eq!(str_field(&call, "state"), Some("cancelled"), "{call}");
        assert_eq!(str_field(&call, "hangup_by"), Some("a"), "{call}");
        Ok(())
    })
    .await
}

/// Issue: CANCEL crossing the 200, 200 first. A's CANCEL arrives after
/// Maskline answered A: it gets 200 and changes nothing; A ACKs and hangs
/// up with BYE, which reaches B; nothing is left up.
#[tokio::test]
async fn cancel_after_the_200_changes_nothing_and_a_hangs_up() -> Result<()> {
    bounded(FLOW_LIMIT, async {
        let (ml, session) = with_session(StartOptions::default()).await?;
        let b = trunk_uas(&ml, "uas_answer.xml", false, &[]).await?;
        let a = party_a_uac(
            &ml,
            "uac_cancel_after_answer.xml",
            &session.masked_number,
            false,
            "party_a",
        )?;
        let (a, b) = both_succeed(a, b).await?;

        let answered = [(200, "INVITE"), (200, "CANCEL"), (200, "BYE")];
        assert_responses(&a, &answered, &[(487, "INVITE")]);
        let at_b = received(&b)?;
        let order: Vec<&str> = at_b.iter().filter_map(SipMessage::method).collect();
        assert_eq!(order, ["INVITE", "ACK", "BYE"], "{}", b.describe());

        let call = call_over(&ml, &session.id, 1).await?;
        assert_eq!(str_field(&call, "state"), Some("completed"), "{call}");
        assert_eq!(str_field(&call, "hangup_by"), Some("a"), "{call}");
        Ok(())
    })
    .await
}

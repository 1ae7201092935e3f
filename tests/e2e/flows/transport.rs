//! SIP over TCP: toward a TCP trunk and from a caller on TCP.

use maskline_e2e::{bounded, Result, SippOutcome, StartOptions};

use super::{
    assert_responses, both_succeed, call_over, first_request, party_a_uac, received, str_field,
    trunk_uas, with_session, FLOW_LIMIT,
};

/// Whether every message in a SIPp trace went over TCP.
fn all_tcp(outcome: &SippOutcome) -> bool {
    let kinds: Vec<&str> = outcome
        .messages
        .lines()
        .filter(|l| l.contains(" message received") || l.contains(" message sent"))
        .collect();
    !kinds.is_empty() && kinds.iter().all(|l| l.starts_with("TCP "))
}

/// Issue: a TCP carrier. With the trunk's `transport = "tcp"`, the B-leg
/// INVITE reaches the SIPp callee listening on TCP (Via says TCP) and the
/// call completes, BYE included.
#[tokio::test]
async fn b_leg_goes_over_tcp_to_a_tcp_trunk() -> Result<()> {
    bounded(FLOW_LIMIT, async {
        let (ml, session) = with_session(StartOptions {
            trunk_transport: "tcp".into(),
            ..StartOptions::default()
        })
        .await?;
        let b = trunk_uas(&ml, "uas_answer.xml", true, &[]).await?;
        let a = party_a_uac(
            &ml,
            "uac_masked_call.xml",
            &session.masked_number,
            false,
            "party_a",
        )?;
        let (_a, b) = both_succeed(a, b).await?;
        assert!(
            all_tcp(&b),
            "the trunk leg must be TCP only:\n{}",
            b.describe()
        );
        let at_b = received(&b)?;
        for method in ["INVITE", "ACK", "BYE"] {
            let m = first_request(&at_b, method, &b)?;
            assert!(
                m.header("via")
                    .is_some_and(|v| v.starts_with("SIP/2.0/TCP ")),
                "{}",
                m.raw_text()
            );
        }
        let call = call_over(&ml, &session.id, 1).await?;
        assert_eq!(str_field(&call, "state"), Some("completed"), "{call}");
        Ok(())
    })
    .await
}

/// Issue: A calls in over TCP (SIPp `-t t1`); the call completes with every
/// response on A's connection, and the B leg stays on the UDP trunk.
#[tokio::test]
async fn a_calls_in_over_tcp() -> Result<()> {
    bounded(FLOW_LIMIT, async {
        let (ml, session) = with_session(StartOptions::default()).await?;
        let b = trunk_uas(&ml, "uas_answer.xml", false, &[]).await?;
        let a = party_a_uac(
            &ml,
            "uac_masked_call.xml",
            &session.masked_number,
            true,
            "party_a",
        )?;
        let (a, b) = both_succeed(a, b).await?;
        assert!(all_tcp(&a), "A's side must be TCP only:\n{}", a.describe());
        assert_responses(&a, &[(200, "INVITE"), (200, "BYE")], &[]);
        let at_b = received(&b)?;
        let invite = first_request(&at_b, "INVITE", &b)?;
        assert!(
            invite
                .header("via")
                .is_some_and(|v| v.starts_with("SIP/2.0/UDP ")),
            "{}",
            invite.raw_text()
        );
        let call = call_over(&ml, &session.id, 1).await?;
        assert_eq!(str_field(&call, "state"), Some("completed"), "{call}");
        Ok(())
    })
    .await
}

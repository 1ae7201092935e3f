//! One live call per session across nodes: while node B carries a
//! session's call, node A refuses new calls for it with 486.

use maskline_e2e::{bounded, wait_for, InviteSpec, Result, SipPeer, PARTY_A, PARTY_B, WAIT};

use super::{busy_logged, call_through, cluster_db, two_nodes, wait_not_busy, PROPAGATION};
use crate::TEST_LIMIT;

/// Gap 4 of issue #9: a call for a session bridged on node B makes node A
/// answer 486 to the session's parties (A knows from the store, not from
/// its engine); once B's call ends, A takes calls for it again.
#[tokio::test]
async fn a_session_busy_on_b_is_busy_on_a_until_the_call_ends() -> Result<()> {
    bounded(TEST_LIMIT, async {
        let db = cluster_db()?;
        let (a, b) = two_nodes(&db).await?;
        let session = a.api().create_session(PARTY_A, PARTY_B, None).await?;
        let mut call = call_through(&b, &session.masked_number).await?;
        wait_for(
            "A to know the session is busy on B",
            PROPAGATION,
            || async { Ok((busy_logged(&a, &session.id) == Some(true)).then_some(())) },
        )
        .await?;

        // Party B calls the masked number through node A: busy.
        let mut probe =
            SipPeer::bind(([127, 0, 0, 1], a.ports().peer(5)).into(), a.sip_addr()).await?;
        let inv = probe
            .invite(&InviteSpec {
                dialled: session.masked_number.clone(),
                caller: PARTY_B.to_string(),
                rtp: ([127, 0, 0, 1], 9).into(),
            })
            .await?;
        assert_eq!(probe.final_response(&inv, WAIT).await?.status(), Some(486));

        call.caller_hangs_up().await?;
        wait_not_busy(&a, &session.id).await?;
        assert_eq!(busy_logged(&a, &session.id), Some(false), "A saw it end");
        let mut again = call_through(&a, &session.masked_number).await?;
        again.exchange_rtp().await?;
        again.caller_hangs_up().await
    })
    .await
}

//! Issue item 8: open sessions survive a restart and stay routable.

use maskline_e2e::{
    bounded, bridge_call, CallEnds, Maskline, Result, StartOptions, PARTY_A, PARTY_B,
};
use serde_json::Value;

use crate::{assert_masked_outbound_leg, TEST_LIMIT};

#[tokio::test]
async fn restart_keeps_open_sessions_routable() -> Result<()> {
    bounded(TEST_LIMIT, async {
        let mut ml = Maskline::start(StartOptions::default()).await?;
        let session = ml.api().create_session(PARTY_A, PARTY_B, None).await?;
        let status = ml.stop().await?;
        assert!(
            status.success(),
            "SIGTERM should end maskline cleanly, got {status}"
        );
        ml.start_again().await?;

        let s = ml.api().get_session(&session.id).await?;
        assert_eq!(s.get("state").and_then(Value::as_str), Some("open"), "{s}");
        assert_eq!(
            s.get("masked_number").and_then(Value::as_str),
            Some(session.masked_number.as_str()),
            "{s}"
        );
        let mut call = bridge_call(
            &ml,
            CallEnds::slot(&ml, 0),
            PARTY_A,
            PARTY_B,
            &session.masked_number,
        )
        .await?;
        assert_masked_outbound_leg(&call, &session.masked_number, PARTY_A, PARTY_B);
        call.exchange_rtp().await?;
        call.caller_hangs_up().await
    })
    .await
}
